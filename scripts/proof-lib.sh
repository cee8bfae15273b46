# Shared by scripts/bench, bench-sandbox.sh, soak, crashloop and diskfull: sourced, never run.
# Every helper talks only to 127.0.0.1 and registers what it starts so the EXIT trap
# stops it; every wait is bounded in count and time.

proof_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
proof_pids=()
proof_mounts=()
proof_failures=0

proof_cleanup() {
    local p m
    for p in "${proof_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${proof_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for m in "${proof_mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [ -n "${proof_dir:-}" ] && [ "${KEEP:-0}" = 0 ]; then rm -rf "$proof_dir"; fi
}

# proof_setup NAME: a fresh work dir in $proof_dir, the trap, and the tools the script needs
# (installed with apt-get when missing, as on a fresh CI machine).
proof_setup() {
    proof_dir=$(mktemp -d "/tmp/keyassign-$1.XXXXXX")
    trap proof_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local need=() tool pkg
    for tool in sqlite3:sqlite3 jq:jq curl:curl bc:bc "${PROOF_EXTRA_TOOLS[@]}"; do
        pkg=${tool#*:}; tool=${tool%%:*}
        command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing ${need[*]}" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    fi
}

# Sets $bin to a release keyassign (SKIP_BUILD=1 reuses the last build; KEYASSIGN_BIN overrides).
proof_build() {
    if [ -n "${KEYASSIGN_BIN:-}" ]; then
        bin=$KEYASSIGN_BIN
    else
        if [ "${SKIP_BUILD:-0}" = 0 ]; then
            (cd "$proof_root" && swift build -c release --product keyassign >&2)
        fi
        local dir
        dir=$(cd "$proof_root" && swift build -c release --show-bin-path)
        bin=$dir/keyassign
    fi
    [ -x "$bin" ] || { echo "no keyassign binary at $bin" >&2; exit 1; }
}

now() { date +%s.%N; }

# start_sandbox STATE_DIR ARGS...: sets $url and $sandbox_pid (not in a subshell, so the
# trap knows the pid).
start_sandbox() {
    local state=$1; shift
    "$bin" sandbox --state-dir "$state" --host 127.0.0.1 "$@" >"$state.out" 2>"$state.err" &
    sandbox_pid=$!
    proof_pids+=("$sandbox_pid")
    local i
    for i in $(seq 1 600); do [ -s "$state/port" ] && break; sleep 0.05; done
    [ -s "$state/port" ] || { echo "sandbox did not start: $(cat "$state.err")" >&2; exit 1; }
    url="http://127.0.0.1:$(cat "$state/port")"
}

# proof_stop PID: stops a process this script started and forgets it, so that the EXIT trap
# never signals a pid the system has since given to another process.
proof_stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local p kept=()
    for p in "${proof_pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    proof_pids=("${kept[@]}")
}

stop_sandbox() { proof_stop "$sandbox_pid"; }

# make_csv KEYS_FILE COUNT OUT: an export whose keys are the first COUNT of the inventory.
make_csv() {
    { printf 'license_key,owner_name,email\r\n'
      head -n "$2" "$1" | awk '{printf "%s,\"Doe, Jane %d\",jane%d@example.com\r\n", $0, NR, NR}'; } >"$3"
}

# ledger STATE_DIR OUT: the sandbox's own account of what it received and assigned.
ledger() { curl -sf --max-time 30 "http://127.0.0.1:$(cat "$1/port")/__sandbox/ledger" >"$2"; }

# server_assigned LEDGER OUT: the keys the sandbox assigned, sorted.
server_assigned() { jq -r '.keys | to_entries[] | select(.value.assigned) | .key' "$1" | sort >"$2"; }

# keys_assigned_twice STATE_DIR: how many keys the sandbox's assignment log holds more than once.
keys_assigned_twice() { jq -r '.license_key' "$1/assignments.jsonl" | sort | uniq -d | wc -l; }

# check NAME EXPECTED ACTUAL: one assertion, printed; a failure is counted, not fatal, so
# the whole table shows.
check() {
    if [ "$2" = "$3" ]; then
        printf '  ok    %-70s %s\n' "$1" "$3"
    else
        printf '  FAIL  %-70s expected %s, got %s\n' "$1" "$2" "$3"
        proof_failures=$((proof_failures + 1))
    fi
}

proof_finish() {
    if [ "$proof_failures" -gt 0 ]; then
        echo "$1: $proof_failures assertion(s) failed (work dir kept: $proof_dir)" >&2
        KEEP=1
        exit 1
    fi
    echo "$1: all assertions hold"
}
