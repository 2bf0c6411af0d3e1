#!/usr/bin/env bash
# The controller-runtime peer operator of bench/apply (bench/peer-operator/),
# built once per content of its module:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/peer-operator/<stamp>/bin/peer-operator
#
# The stamp is the hash of the module's go.mod, go.sum and main.go and of the Go
# version, so an edit builds anew and an unchanged tree reuses the binary
# (a cold build takes a few minutes on 2 cores; a warm one nothing). The last
# line printed is the binary's path.
#
# Environment: KILN_CACHE (default $HOME/.cache/kiln), KILN_PEER_REBUILD=1, KILN_CP_JOBS (go build -p, default 2).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD="$ROOT/bench/peer-operator"
JOBS=${KILN_CP_JOBS:-2}
log() { echo "build-peer-operator: $*" >&2; }

stamp=$({
  go env GOVERSION
  cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/main.go"
} | sha256sum | cut -c1-16)
OUT="${KILN_CACHE:-$HOME/.cache/kiln}/peer-operator/$stamp"
BIN="$OUT/bin"
mkdir -p "$BIN"
exec 9>"$OUT/.lock"
flock 9

if [[ ${KILN_PEER_REBUILD:-0} != 1 && -x "$BIN/peer-operator" ]]; then
  log "up to date ($stamp)"
else
  log "building bench/peer-operator (-p $JOBS)"
  t=$(date +%s)
  # -mod=readonly: go.sum pins every dependency; a missing one is an error, not a silent download of something newer.
  (cd "$MOD" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$BIN/.peer-operator.tmp" .)
  mv -f "$BIN/.peer-operator.tmp" "$BIN/peer-operator"
  log "built in $(($(date +%s) - t))s"
fi
echo "$BIN/peer-operator"
