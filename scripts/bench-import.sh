#!/usr/bin/env bash
# Import benchmark: keyassign import vs sqlite3's own .import, same file, same run.
#
#   scripts/bench-import.sh [ROWS]     (default 1000000, about 80 MB)
#
# Generates the export once into $BENCH_DIR (default /tmp/keyassign-bench), builds the
# release binary, then times, each into an empty database:
#   keyassign import --db K.sqlite FILE
#   sqlite3 S.sqlite ".import --csv --skip 1 FILE t"   (WAL, license_key TEXT UNIQUE NOT NULL)
# and prints both wall times, the ratio and keyassign's peak RSS (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dir=${BENCH_DIR:-/tmp/keyassign-bench}
mkdir -p "$dir"
csv="$dir/export-$rows.csv"

if [ ! -x /usr/bin/time ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time
fi
command -v sqlite3 >/dev/null || { echo "bench: sqlite3 CLI not found" >&2; exit 1; }

if [ ! -s "$csv" ]; then
    echo "generating $rows rows into $csv" >&2
    python3 scripts/gen-export.py "$rows" "$csv.tmp" && mv "$csv.tmp" "$csv"
fi
echo "input: $csv, $(wc -c <"$csv") bytes, $rows rows" >&2

swift build -c release --product keyassign >&2
bin="$(swift build -c release --show-bin-path)/keyassign"

now() { date +%s.%N; }

# keyassign
rm -f "$dir"/k.sqlite*
t0=$(now)
/usr/bin/time -v -o "$dir/time.txt" "$bin" import --db "$dir/k.sqlite" "$csv" >"$dir/import.out"
t1=$(now)
k=$(echo "$t1 - $t0" | bc -l)
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$dir/time.txt")
queued=$(sqlite3 "$dir/k.sqlite" "SELECT count(*) FROM work")

# sqlite3 .import into a WAL table with a unique key, as close to our work as the CLI gets
rm -f "$dir"/s.sqlite*
sqlite3 "$dir/s.sqlite" "PRAGMA journal_mode=WAL; CREATE TABLE t (license_key TEXT UNIQUE NOT NULL, owner_name TEXT, email TEXT);" >/dev/null
t0=$(now)
sqlite3 "$dir/s.sqlite" ".import --csv --skip 1 $csv t"
t1=$(now)
s=$(echo "$t1 - $t0" | bc -l)
loaded=$(sqlite3 "$dir/s.sqlite" "SELECT count(*) FROM t")

printf '%-40s %8.2f s  (%s rows queued, peak RSS %.1f MB)\n' "keyassign import" "$k" "$queued" "$(echo "$rss_kb / 1024" | bc -l)"
printf '%-40s %8.2f s  (%s rows)\n' "sqlite3 .import --csv (WAL, UNIQUE key)" "$s" "$loaded"
printf '%-40s %8.2f   (goal <= 1.00; RSS goal < 64 MB)\n' "ratio keyassign / sqlite3" "$(echo "$k / $s" | bc -l)"
tail -1 "$dir/import.out"
