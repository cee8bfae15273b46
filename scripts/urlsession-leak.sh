#!/usr/bin/env bash
# Where URLSession's memory goes per request on Linux, measured side by side in one run.
#
#   scripts/urlsession-leak.sh [SMALL] [LARGE] [CONCURRENCY]     (defaults 10000 60000 16)
#
# The minimal URLSession loop (scripts/urlsession-ceiling.swift: keyassign's session
# configuration, nothing else) POSTs SMALL and then LARGE requests at a release sandbox; peak
# RSS (/usr/bin/time %M) of each gives bytes per request. Then the same two runs under two
# diagnostic LD_PRELOAD libraries (never part of keyassign):
#   probe: scripts/leak/curl-url-cleanup-probe.c turns curl_free() on a CURLU handle into
#          curl_url_cleanup() (frees the URL parts the handle parsed);
#   fixed: scripts/leak/host-check-fixed.c replaces FoundationNetworking's
#          CFURLSessionCurlHostIsEqual (called through its PLT) with a copy that uses
#          curl_url_cleanup() instead of curl_free().
# "growth" = (RSS(LARGE) - RSS(SMALL)) / (LARGE - SMALL). Growth near 0 under both shows that
# this one call is the leak, and what replacing that one function would save.
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-10000}
large=${2:-60000}
conc=${3:-16}
dir=$(mktemp -d /tmp/keyassign-urlsession-leak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

swift build -c release --product keyassign >&2
bin="$(swift build -c release --show-bin-path)/keyassign"
swiftc -O scripts/urlsession-ceiling.swift -o "$dir/ceiling" >&2
cc -O2 -shared -fPIC scripts/leak/curl-url-cleanup-probe.c -o "$dir/probe.so" -ldl
cc -O2 -shared -fPIC scripts/leak/host-check-fixed.c -o "$dir/fixed.so" -ldl

"$bin" sandbox --state-dir "$dir/s" --generate-keys 10 >"$dir/s.out" 2>"$dir/s.err" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$dir/s/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$dir/s/port")"
key=$(cat "$dir/s/api-key")

peak_kb() { # PRELOAD REQUESTS -> peak RSS in KB
    LD_PRELOAD=$1 /usr/bin/time -f %M -o "$dir/rss" "$dir/ceiling" "$url" "$key" "$2" "$conc" >/dev/null
    cat "$dir/rss"
}

printf '%-40s %12s %12s %16s\n' "URLSession loop, concurrency $conc" "RSS@$small" "RSS@$large" "growth B/request"
for variant in baseline probe fixed; do
    case $variant in
        baseline) preload=""; label="as shipped" ;;
        probe) preload="$dir/probe.so"; label="probe: curl_free(CURLU*) cleans up" ;;
        fixed) preload="$dir/fixed.so"; label="fixed CFURLSessionCurlHostIsEqual" ;;
    esac
    a=$(peak_kb "$preload" "$small")
    b=$(peak_kb "$preload" "$large")
    printf '%-40s %9s KB %9s KB %16s\n' "$label" "$a" "$b" "$(( (b - a) * 1024 / (large - small) ))"
done
