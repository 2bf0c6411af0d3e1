#!/usr/bin/env bash
# Build Gitea (a real Git forge for the review-mode pull-request tests,
# test/integration/gitea-review.test.ts) from the Go module proxy, using the tools
# module in test/gitea/, into a cache directory outside the work tree:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/gitea/<version>/bin/gitea
#   ${KILN_CACHE:-$HOME/.cache/kiln}/gitea/<version>/{options,templates}/
#
# API only: no front-end assets (no `bindata` tag, no npm build); the REST API and
# Git's smart HTTP need none. Without bindata Gitea reads its options (locales,
# licences, readme templates) and templates from STATIC_ROOT_PATH at run time, and
# refuses to start without the locales, so those two directories are copied from
# the module beside bin/: the harness points STATIC_ROOT_PATH at <version>/. SQLite comes from modernc.org/sqlite, Gitea's default
# driver since v1.27 (the cgo mattn driver needs the sqlite_mattn tag), so the build
# is CGO_ENABLED=0 like the control plane's and needs no C compiler.
#
# Idempotent: when the binary is there with a stamp matching go.mod/go.sum, flags
# and Go version, nothing is built. The last line printed is always the binary's path.
#
# Environment:
#   KILN_CACHE               cache root (default $HOME/.cache/kiln)
#   KILN_GITEA_REBUILD=1     rebuild even if the stamp matches
#   KILN_GITEA_JOBS          go build -p value (default 2)
set -euo pipefail

GITEA_VERSION=1.27.3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODDIR="$ROOT/test/gitea"
CACHE_ROOT=${KILN_CACHE:-$HOME/.cache/kiln}
OUT="$CACHE_ROOT/gitea/$GITEA_VERSION"
BIN="$OUT/bin"
JOBS=${KILN_GITEA_JOBS:-2}

log() { echo "build-gitea: $*" >&2; }

command -v go >/dev/null || { log "Go is required (https://go.dev/dl); none on PATH"; exit 1; }
mkdir -p "$BIN"

# One build at a time per cache dir (test-all.sh and a test run may race).
exec 9>"$OUT/.lock"
flock 9

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Gitea's Makefile stamps the version and tags the same way (LDFLAGS).
TAGS=
LDFLAGS="-s -w -X main.Version=$GITEA_VERSION -X main.Tags=$TAGS"
PKG=gitea.dev

stamp() {
  {
    echo "gitea $GITEA_VERSION $PKG CGO_ENABLED=$CGO_ENABLED tags=$TAGS"
    echo "$LDFLAGS"
    (cd "$MODDIR" && go env GOVERSION)
    cat "$MODDIR/go.mod" "$MODDIR/go.sum"
  } | sha256sum | cut -d' ' -f1
}

check_bin() {
  [[ -x "$BIN/gitea" ]] || return 1
  [[ -f "$BIN/.gitea.stamp" && $(<"$BIN/.gitea.stamp") == "$(stamp)" ]] || return 1
  local out
  out=$("$BIN/gitea" --version 2>/dev/null) || return 1
  [[ $out == *"version $GITEA_VERSION "* ]]
}

check_data() {
  [[ -f "$OUT/options/locale/locale_en-US.json" && -d "$OUT/templates" ]]
}

# The data directories of the same module version the binary was built from.
copy_data() {
  local src dir
  src=$(cd "$MODDIR" && go list -m -f '{{.Dir}}' "$PKG")
  for dir in options templates; do
    rm -rf "$OUT/.$dir.tmp" "$OUT/$dir"
    cp -R "$src/$dir" "$OUT/.$dir.tmp"
    chmod -R u+w "$OUT/.$dir.tmp" # the module cache is read-only
    mv "$OUT/.$dir.tmp" "$OUT/$dir"
  done
}

start=$(date +%s)
if [[ ${KILN_GITEA_REBUILD:-0} != 1 ]] && check_bin; then
  check_data || copy_data
  log "up to date: Gitea $GITEA_VERSION ($(($(date +%s) - start))s)"
else
  log "building $PKG (code.gitea.io/gitea@v$GITEA_VERSION, -p $JOBS)"
  (cd "$MODDIR" && go build -p "$JOBS" -trimpath -tags "$TAGS" -ldflags "$LDFLAGS" -o "$BIN/.gitea.tmp" "$PKG")
  mv -f "$BIN/.gitea.tmp" "$BIN/gitea"
  copy_data
  stamp >"$BIN/.gitea.stamp"
  if ! check_bin || ! check_data; then
    log "ERROR: $BIN/gitea does not report version $GITEA_VERSION: $("$BIN/gitea" --version 2>&1 | head -1)"
    exit 1
  fi
  log "built in $(($(date +%s) - start))s: $("$BIN/gitea" --version 2>/dev/null | head -1)"
fi
echo "$BIN/gitea"
