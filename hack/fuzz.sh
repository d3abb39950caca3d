#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME each (default 10m), one after the
# other, then copies the corpus the fuzzer grew into the package's
# testdata/fuzz folder so it is committed and replayed by `go test`.
# Usage: FUZZTIME=10m [FUZZFLAGS=-parallel=1] hack/fuzz.sh [package-pattern]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10m}
pattern=${1:-./internal/...}
cache=$(go env GOCACHE)/fuzz
for pkg in $(go list "$pattern"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    printf '[fuzz] %s %s for %s\n' "$pkg" "$target" "$fuzztime" >&2
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ${FUZZFLAGS:-} "$pkg"
    if [ -d "$cache/$pkg/$target" ]; then
      mkdir -p "$dir/testdata/fuzz/$target"
      cp -n "$cache/$pkg/$target"/* "$dir/testdata/fuzz/$target/" 2>/dev/null || true
      printf '[fuzz] corpus of %s: %d inputs in %s\n' "$target" "$(ls "$dir/testdata/fuzz/$target" | wc -l)" "${dir#$PWD/}/testdata/fuzz/$target" >&2
    fi
  done
done
