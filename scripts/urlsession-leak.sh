#!/usr/bin/env bash
# Where URLSession's memory goes per request on Linux, measured side by side in one run.
#
#   scripts/urlsession-leak.sh [SMALL] [LARGE] [CONCURRENCY]     (defaults 10000 60000 16)
#
# The minimal URLSession loop (scripts/urlsession-ceiling.swift: keyassign's session
# configuration, nothing else) POSTs SMALL and then LARGE requests at a release sandbox; peak
# RSS (/usr/bin/time %M) of each gives bytes per request. Then the same two runs with the
# diagnostic LD_PRELOAD probe scripts/leak/curl-url-cleanup-probe.c, which makes the
# curl_free(CURLU *) in FoundationNetworking's CFURLSessionCurlHostIsEqual free the parsed URL
# parts (curl_url_cleanup). "growth" = (RSS(LARGE) - RSS(SMALL)) / (LARGE - SMALL).
# A baseline whose growth stays near 0 with the probe shows that this one call is the leak.
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

"$bin" sandbox --state-dir "$dir/s" --generate-keys 10 >"$dir/s.out" 2>"$dir/s.err" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$dir/s/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$dir/s/port")"
key=$(cat "$dir/s/api-key")

peak_kb() { # PRELOAD REQUESTS -> peak RSS in KB
    LD_PRELOAD=$1 /usr/bin/time -f %M -o "$dir/rss" "$dir/ceiling" "$url" "$key" "$2" "$conc" >/dev/null
    cat "$dir/rss"
}

printf '%-34s %12s %12s %16s\n' "URLSession loop, concurrency $conc" "RSS@$small" "RSS@$large" "growth B/request"
for variant in baseline probe; do
    preload=""; [ "$variant" = probe ] && preload="$dir/probe.so"
    a=$(peak_kb "$preload" "$small")
    b=$(peak_kb "$preload" "$large")
    label="as shipped (curl_free(CURLU*))"; [ "$variant" = probe ] && label="probe (curl_url_cleanup)"
    printf '%-34s %9s KB %9s KB %16s\n' "$label" "$a" "$b" "$(( (b - a) * 1024 / (large - small) ))"
done
