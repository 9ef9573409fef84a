#!/usr/bin/env bash
# Runs every fuzz target of the module, each for a duration or a number of
# inputs (go test's -fuzztime):
#   scripts/fuzz.sh 200000x   # what CI runs: a fixed count of inputs per target
#   scripts/fuzz.sh 5m        # the long runs done before a parser change is released
# Crashers are kept by the go tool under the package's testdata/fuzz/.
#
# Go 1.26's fuzz coordinator has a race at the end of a duration run
# (go.dev/issue/75804, fixed in Go 1.27): it can fail a target with a bare
# "context deadline exceeded" although no input failed. A count has no
# deadline, so CI uses one. In duration mode such a bare failure, with no
# new crasher written, is reported as that race and not as a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-200000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $target ($t)"
    corpus="$dir/testdata/fuzz/$target"
    before=$(find "$corpus" -type f 2>/dev/null | wc -l || true)
    if go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$t" >"$log" 2>&1; then
      continue
    fi
    after=$(find "$corpus" -type f 2>/dev/null | wc -l || true)
    if [[ "$t" != *x ]] && [ "$after" -eq "$before" ] &&
      grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
      echo "  (ended by Go's fuzz coordinator race, go.dev/issue/75804: no input failed)"
      continue
    fi
    cat "$log"
    exit 1
  done
done
