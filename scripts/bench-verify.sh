#!/usr/bin/env bash
# Measures `keyassign verify` end to end (release build): what loading a public key costs
# and what checking one stored reply costs, for 2048- and 4096-bit keys, printed beside
# OpenSSL's own raw RSA verify rate measured in the same run (the floor we cannot beat).
#
#   scripts/bench-verify.sh            # N=10000 replies per run
#   N=2000 scripts/bench-verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
KEYS=50
FIXTURES=Tests/KeyAssignTests/Fixtures

swift build -c release --product keyassign >/dev/null
BIN="$(swift build -c release --show-bin-path)/keyassign"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A 4096-bit key pair and one reply signed with it, the way the server signs.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$work/p4096.pem" 2>/dev/null
openssl pkey -in "$work/p4096.pem" -pubout -out "$work/k4096.pem"
b64=$(printf %s '{"code":800,"message":"License key assigned","timestamp":1708999933}' | base64 -w0)
sig=$(printf %s "$b64" | openssl dgst -sha256 -sign "$work/p4096.pem" | base64 -w0)
printf '{"response":{"code":800,"message":"License key assigned","timestamp":1708999933},"response_base64":"%s","private_key_used":"global","signature":"%s"}' \
    "$b64" "$sig" > "$work/reply-4096.json"

make_copies() {  # make_copies SOURCE DIR: N copies of one reply
    mkdir -p "$2"
    local content i
    content=$(<"$1")
    for ((i = 1; i <= N; i++)); do printf '%s' "$content" > "$2/r$i.json"; done
}
make_copies "$FIXTURES/reply-800.json" "$work/r2048"
make_copies "$work/reply-4096.json" "$work/r4096"

# Best of 3 wall-clock milliseconds for a command (its exit status is ignored: some
# measurements deliberately check untrusted replies).
best_ms() {
    local best=999999999 run start end
    for run in 1 2 3; do
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        end=$(date +%s%N)
        (( (end - start) / 1000000 < best )) && best=$(( (end - start) / 1000000 ))
    done
    echo "$best"
}

key_specs() {  # key_specs PEM COUNT: COUNT --public-key options naming the same file
    local i
    for ((i = 1; i <= $2; i++)); do printf -- '--public-key\nk%d=%s\n' "$i" "$1"; done
}

per_key_us() {  # per_key_us PEM: extra cost of each additional key file, in microseconds
    local one many
    mapfile -t specs < <(key_specs "$1" "$KEYS")
    one=$(best_ms "$BIN" verify --public-key "global=$1" "$FIXTURES/reply-800.json")
    many=$(best_ms "$BIN" verify --public-key "global=$1" "${specs[@]}" "$FIXTURES/reply-800.json")
    echo $(( (many - one) * 1000 / KEYS ))
}

per_reply_us() {  # per_reply_us PEM DIR: cost of each reply beyond the first, in microseconds
    local one all
    one=$(best_ms "$BIN" verify --public-key "$1" "$2/r1.json")
    all=$(best_ms "$BIN" verify --public-key "$1" "$2"/r*.json)
    echo "$(( (all - one) * 1000 / (N - 1) )) $one $all"
}

openssl_us() {  # openssl_us BITS: OpenSSL's raw RSA verify time (openssl speed), in microseconds
    openssl speed -seconds 2 "rsa$1" 2>/dev/null | awk -v bits="$1" '$1 == "rsa" && $2 == bits { printf "%.1f", 1e6 / $7 }'
}

read -r r2048 one2048 all2048 < <(per_reply_us "$FIXTURES/docs-demo-global-public.pem" "$work/r2048")
read -r r4096 one4096 all4096 < <(per_reply_us "$work/k4096.pem" "$work/r4096")
k2048=$(per_key_us "$FIXTURES/docs-demo-global-public.pem")
k4096=$(per_key_us "$work/k4096.pem")
o2048=$(openssl_us 2048)
o4096=$(openssl_us 4096)

echo "keyassign verify, release build, $N stored replies per run, best of 3 (wall clock, one thread)"
printf '%-8s %22s %26s %30s %26s\n' "key" "load one key (us)" "keyassign per reply (us)" "openssl speed raw verify (us)" "process, 1 reply / N (ms)"
printf '%-8s %22s %26s %30s %26s\n' "RSA2048" "$k2048" "$r2048" "$o2048" "$one2048 / $all2048"
printf '%-8s %22s %26s %30s %26s\n' "RSA4096" "$k4096" "$r4096" "$o4096" "$one4096 / $all4096"
echo "per reply = (time for N replies - time for 1) / (N - 1): file read + JSON + base64 + RSA verify + payload check"
echo "load one key = (time with $((KEYS + 1)) keys - time with 1) / $KEYS: file read + PEM decode + checks"
