#!/usr/bin/env bash
# Build test/yaml-check (the Go YAML readers kiln's output is checked against:
# kustomize's kyaml, go-yaml v3, kubectl's sigs.k8s.io/yaml) from the Go module
# proxy into a cache directory outside the work tree:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/yaml-check/<hash of its sources>/yaml-check
#
# Idempotent: an existing binary for the same sources is reused. The last line
# printed is the binary's path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$ROOT/test/yaml-check"
HASH=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)
OUT="${KILN_CACHE:-$HOME/.cache/kiln}/yaml-check/$HASH"
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
if [[ ! -x "$OUT/yaml-check" ]]; then
  echo "build-yaml-check: building $SRC" >&2
  (cd "$SRC" && GOFLAGS=-mod=mod go build -trimpath -o "$OUT/yaml-check.tmp" .)
  mv "$OUT/yaml-check.tmp" "$OUT/yaml-check"
fi
echo "$OUT/yaml-check"
