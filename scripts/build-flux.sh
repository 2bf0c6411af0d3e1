#!/usr/bin/env bash
# Flux's source-controller and kustomize-controller, built from the Go module
# proxy for the end-to-end git-mode tests (test/harness/flux.ts), with the CRDs
# their modules ship:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/flux/<version>/bin/{source-controller,kustomize-controller}
#   ${KILN_CACHE:-$HOME/.cache/kiln}/flux/<version>/crds/*.yaml
#
# Each controller's go.mod has `replace` directives, which `go install pkg@version`
# refuses, so each is built inside a wrapper module (test/flux/<controller>/) that
# repeats them. v1.9.6 is the newest release whose go.mod builds with the
# machine's Go 1.26 (v1.10 asks for Go 1.27). Idempotent: a binary is reused when
# its stamp (version, wrapper go.mod/go.sum, Go version) matches. The last line
# printed is the version directory.
#
# Environment: KILN_CACHE (default $HOME/.cache/kiln), KILN_FLUX_REBUILD=1, KILN_CP_JOBS (go build -p, default 2).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLUX_VERSION=v1.9.6
OUT="${KILN_CACHE:-$HOME/.cache/kiln}/flux/$FLUX_VERSION"
BIN="$OUT/bin"
CRDS="$OUT/crds"
JOBS=${KILN_CP_JOBS:-2}
log() { echo "build-flux: $*" >&2; }

mkdir -p "$BIN" "$CRDS"
exec 9>"$OUT/.lock"
flock 9

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

start=$(date +%s)
built=0
for name in source-controller kustomize-controller; do
  moddir="$ROOT/test/flux/$name"
  module="github.com/fluxcd/$name"
  stamp=$({
    echo "$name $FLUX_VERSION"
    go env GOVERSION
    cat "$moddir/go.mod" "$moddir/go.sum"
  } | sha256sum | cut -d' ' -f1)
  if [[ ${KILN_FLUX_REBUILD:-0} != 1 && -x "$BIN/$name" && -f "$BIN/.$name.stamp" && $(<"$BIN/.$name.stamp") == "$stamp" ]]; then
    continue
  fi
  log "$name: building $module@$FLUX_VERSION (-p $JOBS)"
  t=$(date +%s)
  (cd "$moddir" && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/.$name.tmp" "$module")
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  echo "$stamp" >"$BIN/.$name.stamp"
  # The CRDs of the same module version the binary was built from.
  dir=$(cd "$moddir" && go list -m -f '{{.Dir}}' "$module")
  install -m 0644 "$dir"/config/crd/bases/*.yaml "$CRDS/"
  log "$name: built in $(($(date +%s) - t))s"
  built=$((built + 1))
done
if ((built == 0)); then log "up to date: Flux source-controller and kustomize-controller $FLUX_VERSION ($(($(date +%s) - start))s)"; fi
echo "$OUT"
