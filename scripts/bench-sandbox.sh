#!/usr/bin/env bash
# Throughput of the sandbox license server on loopback, measured with wrk (keep-alive).
# Three runs against one release sandbox, side by side:
#   assign      POST assign-license-key with varied keys (signed 800/801 replies, signature cache on)
#   baseline A  GET of an unknown path (404): the HTTP stack alone, no parsing, state or signing
#   baseline B  the same assign load against a sandbox started with --no-signature-cache (one RSA
#               signature per reply), to show what the cache buys
# Usage: scripts/bench-sandbox.sh [DURATION_SECONDS] [CONNECTIONS]
# Env: SKIP_BUILD=1 reuses the release build (KEYASSIGN_BIN overrides); KEYS=N inventory size
# (default 20000).
set -euo pipefail
PROOF_EXTRA_TOOLS=(wrk:wrk)
source "$(dirname "$0")/proof-lib.sh"
duration="${1:-10}"
connections="${2:-32}"
threads=2
keys="${KEYS:-20000}"
proof_setup bench-sandbox
proof_build
work=$proof_dir

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

ledger_summary() { # STATE_DIR
    ledger "$1" "$work/ledger.json"
    jq -r '"    ledger: \(.totals.requests) requests, \(.totals.assigned) assigned, replies by code \(.totals.replies_by_code | tojson), rate_limited \(.rate_limited)"' "$work/ledger.json"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "load before the run (the machine is shared):$(uptime | sed 's/.*load average//')"
echo "wrk: -t$threads -c$connections -d${duration}s keep-alive; inventory $keys generated keys; $bin"
echo

start_sandbox "$work/cached" --generate-keys "$keys"
export SANDBOX_STATE="$work/cached"
run_wrk "assign (signed, cache on)" "$url" "$work/assign.lua"
ledger_summary "$work/cached"
run_wrk "baseline A: 404 path (HTTP only)" "$url/nope"
echo "    (baseline A's non-2xx are its 404s, by design)"
stop_sandbox

start_sandbox "$work/uncached" --generate-keys "$keys" --no-signature-cache
export SANDBOX_STATE="$work/uncached"
run_wrk "baseline B: assign, no sig cache" "$url" "$work/assign.lua"
ledger_summary "$work/uncached"
stop_sandbox
