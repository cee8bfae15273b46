#!/usr/bin/env bash
# Measures reply verification in process, in a release build: loading a public key, and
# checking one reply envelope (strict JSON + base64 + RSA + payload checks), one thread and
# all cores, for 2048- and 4096-bit keys. Printed beside two baselines from the same run:
# the bare RSA check done through the same OpenSSL calls in the same process, and
# `openssl speed` (OpenSSL's own benchmark of the raw RSA verify).
#
#   scripts/bench-verify.sh          # 20000 verifications per row
#   ITERATIONS=5000 scripts/bench-verify.sh
#
# The measuring code is Sources/BenchVerify (an executable target, built in release here).
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=${ITERATIONS:-20000}

swift build -c release --product BenchVerify >/dev/null
"$(swift build -c release --show-bin-path)/BenchVerify" "$ITERATIONS" | sed -n '/^in-process/,/^RSA4096/p'

cores=$(nproc)
echo
echo "baseline: openssl speed, raw RSA verify (no envelope, no per-call set-up); all cores = -multi $cores"
echo "(if all cores is not about $cores x one thread here either, the machine is busy, not our locking)"
for bits in 2048 4096; do
    one=$(openssl speed -seconds 2 "rsa$bits" 2>/dev/null | awk -v b="$bits" '$1 == "rsa" && $2 == b { print $7 }')
    all=$(openssl speed -seconds 2 -multi "$cores" "rsa$bits" 2>/dev/null | awk -v b="$bits" '$1 == "rsa" && $2 == b { print $7 }')
    awk -v b="$bits" -v one="$one" -v all="$all" 'BEGIN {
        printf "RSA%-5d %16s %20s %20.1f %18.0f %22s %24.0f\n", b, "-", "-", 1e6 / one, one, "-", all }'
done
