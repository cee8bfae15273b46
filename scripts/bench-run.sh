#!/usr/bin/env bash
# Runner benchmark: `keyassign run` against a release `keyassign sandbox` on loopback, with
# the transport's ceiling measured in the same run as the baseline.
#
#   scripts/bench-run.sh [ROWS] [CONCURRENCY]      (defaults 20000, 64)
#
# 1. baseline: wrk (keep-alive, same concurrency) POSTing form bodies at the same sandbox:
#    signed replies/s the sandbox can serve to a client that does no work at all;
# 2. ceiling: scripts/urlsession-ceiling.swift, a minimal URLSession loop (same session
#    configuration as keyassign, no database, no verification) POSTing ROWS requests at the
#    same sandbox with 1 and 2 sessions: what URLSession/libcurl itself allows here, the
#    figure keyassign can at best approach. CPU per request/row (user+sys) is printed too,
#    since the machine is shared and wall-clock rates move with its load;
# 3. keyassign run --rate 0: verified rows/s, every reply signature-checked and every
#    attempt committed (ROWS fresh keys, all 800s);
# 4. rate checks, the SAME burst on both sides (BURST, default 2): 2,000 rows at --rate 50
#    (goal 40 s ± 2%) and 100 rows at --rate 5 (goal 20 s ± 2%), each against a sandbox
#    limited to the same rate and burst; wall time and 429s (goal 0). Skip with RATE_CHECK=0.
#    keyassign keeps one of the B tokens in reserve (sends at most B − 1 back-to-back): the
#    server counts a request when it ARRIVES and arrival times jitter by a few ms even on
#    loopback, so two requests sent exactly 1/R apart can arrive closer; the server's spare
#    token absorbs up to 1/R of that. A burst of 1 leaves no spare, so BURST=1 shows 429s.
#    Scheduling delays on an overloaded machine (load average far above the core count)
#    can exceed 1/R (20 ms at 50/s) too, so each check prints the load average it ran under.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-20000}
conc=${2:-64}
dir=$(mktemp -d /tmp/keyassign-bench-run.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

swift build -c release --product keyassign >&2
bin="$(swift build -c release --show-bin-path)/keyassign"
now() { date +%s.%N; }

start_sandbox() { # STATE_DIR ARGS...   (sets $url; not run in a subshell, so $pids keeps the pid)
    local state=$1; shift
    "$bin" sandbox --state-dir "$state" "$@" >"$state.out" 2>"$state.err" &
    pids+=($!)
    for _ in $(seq 1 200); do [ -s "$state/port" ] && break; sleep 0.05; done
    url="http://127.0.0.1:$(cat "$state/port")"
}

queue_keys() { # STATE_DIR DB COUNT
    { echo "license_key,owner_name,email"; head -n "$3" "$1/keys.txt" | awk '{printf "%s,\"Doe, Jane %d\",jane%d@example.com\n", $0, NR, NR}'; } >"$2.csv"
    "$bin" import --db "$2" "$2.csv" >/dev/null
}

# --- throughput ------------------------------------------------------------------------
start_sandbox "$dir/s1" --generate-keys $((rows + 5000))
export KEYASSIGN_API_KEY=$(cat "$dir/s1/api-key")

cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Bearer $KEYASSIGN_API_KEY"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, "api_key=$KEYASSIGN_API_KEY&license_key=bench-unknown-" .. counter .. "&owner_name=Jane%20Doe")
end
LUA
wrk_out=$(wrk -t1 -c"$conc" -d5s -s "$dir/post.lua" "$url/api/v1/assign-license-key")
wrk_rps=$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')

ceiling="$(swift build -c release --show-bin-path)/urlsession-ceiling"
if [ ! -x "$ceiling" ] || [ scripts/urlsession-ceiling.swift -nt "$ceiling" ]; then
    swiftc -O scripts/urlsession-ceiling.swift -o "$ceiling" >&2
fi
ceiling_line() { # SESSIONS: prints one line
    /usr/bin/time -f "%U %S" -o "$dir/ceiling.time" "$ceiling" "$url" "$KEYASSIGN_API_KEY" "$rows" "$conc" "$1" >"$dir/ceiling.out"
    local rps secs cpu
    read -r rps _ secs <"$dir/ceiling.out"
    cpu=$(awk '{print $1 + $2}' "$dir/ceiling.time")
    printf '%-58s %10.0f req/s   (%s requests in %.2f s, %.3f ms CPU each)\n' \
        "ceiling: minimal URLSession loop -c$conc, $1 session(s)" "$rps" "$rows" "$secs" "$(echo "$cpu * 1000 / $rows" | bc -l)"
}
ceiling_out="$(ceiling_line 1; ceiling_line 2)"

queue_keys "$dir/s1" "$dir/run.sqlite" "$rows"
t0=$(now)
set +e
/usr/bin/time -f "%U %S" -o "$dir/run.time" "$bin" run --db "$dir/run.sqlite" --server "$url" --public-key "$dir/s1/public.pem" \
    --rate 0 --concurrency "$conc" --summary-json "$dir/summary.json" --quiet
status=$?
set -e
t1=$(now)
secs=$(echo "$t1 - $t0" | bc -l)
assigned=$(sqlite3 "$dir/run.sqlite" "SELECT count(*) FROM work WHERE state = 'assigned'")
run_cpu=$(awk '{print $1 + $2}' "$dir/run.time")

echo "load average after the throughput runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf '%-58s %10.0f req/s\n' "baseline: wrk -c$conc, sandbox replies (no verification)" "$wrk_rps"
echo "$ceiling_out"
printf '%-58s %10.0f rows/s  (%s of %s assigned in %.2f s, exit %s, %.3f ms CPU each)\n' \
    "keyassign run --rate 0 --concurrency $conc (verified)" "$(echo "$assigned / $secs" | bc -l)" "$assigned" "$rows" "$secs" "$status" \
    "$(echo "$run_cpu * 1000 / $rows" | bc -l)"

# --- rate ------------------------------------------------------------------------------
rate_check() { # NAME ROWS RATE
    local name=$1 count=$2 rate=$3 burst=${BURST:-2}
    start_sandbox "$dir/$name" --generate-keys "$count" --rate "$rate" --burst "$burst"
    local url2=$url
    KEYASSIGN_API_KEY=$(cat "$dir/$name/api-key")
    export KEYASSIGN_API_KEY
    queue_keys "$dir/$name" "$dir/$name.sqlite" "$count"
    local t0 t1 status secs limited assigned goal
    t0=$(now)
    set +e
    "$bin" run --db "$dir/$name.sqlite" --server "$url2" --public-key "$dir/$name/public.pem" \
        --rate "$rate" --burst "$burst" --concurrency 8 --quiet
    status=$?
    set -e
    t1=$(now)
    secs=$(echo "$t1 - $t0" | bc -l)
    limited=$(sqlite3 "$dir/$name.sqlite" "SELECT count(*) FROM attempts WHERE http_status = 429")
    assigned=$(sqlite3 "$dir/$name.sqlite" "SELECT count(*) FROM work WHERE state = 'assigned'")
    goal=$(echo "$count / $rate" | bc -l)
    printf '%-58s %10.2f s       (goal %.0f s ± 2%%: %.1f-%.1f; %s assigned, %s 429s, exit %s; load %s)\n' \
        "keyassign run --rate $rate --burst $burst, $count rows, sandbox same" "$secs" "$goal" \
        "$(echo "$goal * 0.98" | bc -l)" "$(echo "$goal * 1.02" | bc -l)" "$assigned" "$limited" "$status" \
        "$(cut -d' ' -f1 /proc/loadavg)"
}

if [ "${RATE_CHECK:-1}" != 0 ]; then
    rate_check rate50 2000 50
    rate_check rate5 100 5
fi
