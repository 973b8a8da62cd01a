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
    # which overruns a short -fuzztime and ends the run with "context
    # deadline exceeded"; a second of minimisation is plenty here.
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s
  done
done
