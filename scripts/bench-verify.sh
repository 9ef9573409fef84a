#!/usr/bin/env bash
# Compares `mbtool verify` with sha1sum over the same message bytes, in the
# same run, alternating the two (see shared BENCHMARKING.md):
#
#   scripts/bench-verify.sh [SIZE] [ROUNDS]    # SIZE in bytes, default 1 GiB
#
# It generates a dump of SIZE message bytes and the same messages as files
# (go test ./verify -run TestGenerateBenchData), warms the page cache for
# both, then times `sha1sum` over the files (one process, as a backup
# script would) and `mbtool verify` over the dump ROUNDS times each (default
# 5), and prints the medians, their ratio and verify's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
rounds=${2:-5}
dir=$(mktemp -d /tmp/bench-verify.XXXXXX)
trap 'rm -rf "$dir"' EXIT

go build -o "$dir/mbtool" .
go test ./verify -count=1 -run '^TestGenerateBenchData$' -args -benchdata "$dir" -benchsize "$size" >/dev/null
( cd "$dir/msgs" && find . -type f | sort > "$dir/files" )
nfiles=$(wc -l < "$dir/files")
dumpsize=$(stat -c %s "$dir/bench.dlist")
echo "dump: $dumpsize bytes, $nfiles message files, $(nproc) CPUs"

# Warm the cache the same way for both sides.
cat "$dir/bench.dlist" > /dev/null
( cd "$dir/msgs" && xargs -a "$dir/files" cat > /dev/null )

sha=() ver=() rss=()
for i in $(seq "$rounds"); do
  s=$( { /usr/bin/time -f %e bash -c "cd '$dir/msgs' && xargs -a '$dir/files' sha1sum > /dev/null" ; } 2>&1 | tail -1 )
  sha+=("$s")
  out=$( { /usr/bin/time -f '%e %M' "$dir/mbtool" verify -q "$dir/bench.dlist" > /dev/null ; } 2>&1 | tail -1 )
  ver+=("${out% *}")
  rss+=("${out#* }")
  echo "round $i: sha1sum ${s}s, verify ${out% *}s (max RSS ${out#* } KiB)"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms=$(median "${sha[@]}")
mv=$(median "${ver[@]}")
mr=$(median "${rss[@]}")
awk -v s="$ms" -v v="$mv" -v r="$mr" -v b="$size" 'BEGIN {
  printf "median: sha1sum %.2fs (%.0f MB/s), verify %.2fs (%.0f MB/s): verify is %.2fx sha1sum; verify peak RSS %.1f MiB\n",
    s, b/s/1e6, v, b/v/1e6, s/v, r/1024 }'
