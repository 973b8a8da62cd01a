#!/usr/bin/env bash
# Runs every fuzz target in the repository for FUZZTIME (default 10s) each.
# Targets are found by name (func FuzzXxx in *_test.go), so a new one is
# picked up without editing this file.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
grep -rlE '^func Fuzz[A-Za-z0-9_]*\(' --include='*_test.go' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz: $pkg $target ($fuzztime)"
    # New "interesting" inputs are minimised for up to 60 s by default,
    # which overruns a short -fuzztime; a second of minimisation is plenty.
    # Go's fuzzer can still end a time-bounded run with "context deadline
    # exceeded" when the time runs out while a worker is busy, with no
    # failing input: that run is repeated once. A real failure writes its
    # input under testdata/fuzz and is never retried.
    for try in 1 2; do
      if out=$(go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s 2>&1); then
        echo "$out" | tail -n 2
        break
      fi
      echo "$out"
      if [ "$try" = 1 ] && echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input written'; then
        echo "fuzz: $target: the fuzzer's own deadline error, no failing input; running it once more"
        continue
      fi
      exit 1
    done
  done
done
