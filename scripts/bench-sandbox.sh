#!/usr/bin/env bash
# Throughput of the sandbox license server on loopback, measured with wrk (keep-alive).
# Three runs against one release sandbox, side by side:
#   assign      POST assign-license-key with varied keys (signed 800/801 replies, signature cache on)
#   baseline A  GET of an unknown path (404): the HTTP stack alone, no parsing, state or signing
#   baseline B  the same assign load against a sandbox started with --no-signature-cache (one RSA
#               signature per reply), to show what the cache buys
# Usage: scripts/bench-sandbox.sh [DURATION_SECONDS] [CONNECTIONS]
# Env: SKIP_BUILD=1 reuses .build/release/keyassign; KEYS=N inventory size (default 20000).
set -euo pipefail

cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-32}"
threads=2
keys="${KEYS:-20000}"

command -v wrk >/dev/null || { echo "bench-sandbox: wrk is not installed" >&2; exit 1; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    swift build -c release --product keyassign >&2
fi
binary=.build/release/keyassign

work="$(mktemp -d /tmp/keyassign-bench-sandbox.XXXXXX)"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# Starts a sandbox on a fresh state dir ($1) with extra flags; sets server_pid and url.
start_server() {
    local state="$1"; shift
    "$binary" sandbox --state-dir "$state" --generate-keys "$keys" "$@" >"$state.out" 2>"$state.err" &
    server_pid=$!
    for _ in $(seq 1 200); do
        [[ -s "$state/port" ]] && break
        sleep 0.05
    done
    [[ -s "$state/port" ]] || { echo "bench-sandbox: sandbox did not start:" >&2; cat "$state.err" >&2; exit 1; }
    url="http://127.0.0.1:$(cat "$state/port")"
}

# The API key is read by the Lua script from the state dir: it never goes on a command line.
cat >"$work/assign.lua" <<'LUA'
local state = os.getenv("SANDBOX_STATE")
local counter = 1
function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
end
function init(args)
    keys = {}
    for line in io.lines(state .. "/keys.txt") do keys[#keys + 1] = line end
    local file = assert(io.open(state .. "/api-key"))
    apikey = file:read("*l")
    file:close()
    -- Threads start at opposite ends of the inventory so that both assign keys.
    i = (tid or 1) * math.floor(#keys / 2)
end
function request()
    i = i + 1
    local key = keys[i % #keys + 1]
    -- One request in ten names a key the server does not know.
    if i % 10 == 0 then key = "UNKNOWN-" .. i end
    return wrk.format("POST", "/api/v1/assign-license-key",
        { ["Content-Type"] = "application/x-www-form-urlencoded" },
        "api_key=" .. apikey .. "&license_key=" .. key .. "&owner_name=Bench+User&email=bench%40example.com")
end
LUA

run_wrk() { # label, url, [lua]
    local label="$1" target="$2" script="${3:-}"
    local out="$work/$label.wrk"
    if [[ -n "$script" ]]; then
        wrk -t"$threads" -c"$connections" -d"${duration}s" -s "$script" "$target" >"$out"
    else
        wrk -t"$threads" -c"$connections" -d"${duration}s" "$target" >"$out"
    fi
    local rps latency errors non2xx
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    latency="$(awk '/^    Latency/ {print $2}' "$out")"
    errors="$(grep -o 'Socket errors:.*' "$out" || echo 'Socket errors: none')"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$out")"
    printf '%-34s %12s req/s   avg latency %-9s non-2xx %-8s %s\n' "$label" "$rps" "$latency" "${non2xx:-0}" "$errors"
}

ledger_summary() {
    curl -s "$1/__sandbox/ledger" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = d["totals"]
print("    ledger: %d requests, %d assigned, replies by code %s, rate_limited %d" % (
    t["requests"], t["assigned"], json.dumps(t["replies_by_code"], sort_keys=True), d["rate_limited"]))'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "load before the run (the machine is shared):$(uptime | sed 's/.*load average//')"
echo "wrk: -t$threads -c$connections -d${duration}s keep-alive; inventory $keys generated keys; release build"
echo

start_server "$work/cached"
export SANDBOX_STATE="$work/cached"
run_wrk "assign (signed, cache on)" "$url" "$work/assign.lua"
ledger_summary "$url"
run_wrk "baseline A: 404 path (HTTP only)" "$url/nope"
echo "    (baseline A's non-2xx are its 404s, by design)"
stop_server

start_server "$work/uncached" --no-signature-cache
export SANDBOX_STATE="$work/uncached"
run_wrk "baseline B: assign, no sig cache" "$url" "$work/assign.lua"
ledger_summary "$url"
stop_server
