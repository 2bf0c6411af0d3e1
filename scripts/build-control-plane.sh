#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kubectl, etcd, etcdutl; or the binaries named as arguments, e.g. the node's kubelet,
# kube-scheduler and kube-proxy) from the Go module proxy, using the tools module in
# test/controlplane/, into a cache directory outside the work tree:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/controlplane/<k8s version>/bin/
#
# Idempotent: when every binary is already there and reports the expected
# version, nothing is built. Also copies the VolumeSnapshot CRDs shipped in
# the github.com/kubernetes-csi/external-snapshotter/client/v8 module into
#   ${KILN_CACHE:-$HOME/.cache/kiln}/controlplane/<k8s version>/crds/
# The last line printed is always the bin directory.
#
# Environment:
#   KILN_CACHE             cache root (default $HOME/.cache/kiln)
#   KILN_CP_REBUILD=1      rebuild even if the binaries look fine
#   KILN_CP_JOBS           go build -p value (default 2)
set -euo pipefail

KUBE_VERSION=v1.34.4
# Commit of the v1.34.4 tag, as hack/lib/version.sh would stamp it.
KUBE_GIT_COMMIT=${KUBE_GIT_COMMIT:-}
ETCD_VERSION=3.6.4
ETCD_GIT_SHA=${ETCD_GIT_SHA:-}
SNAPSHOTTER_MODULE=github.com/kubernetes-csi/external-snapshotter/client/v8
SNAPSHOTTER_VERSION=${KILN_SNAPSHOTTER_VERSION:-v8.4.0}
BUILD_DATE=1970-01-01T00:00:00Z

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODDIR="$ROOT/test/controlplane"
CACHE_ROOT=${KILN_CACHE:-$HOME/.cache/kiln}
OUT="$CACHE_ROOT/controlplane/$KUBE_VERSION"
BIN="$OUT/bin"
CRD_DIR="$OUT/crds"
JOBS=${KILN_CP_JOBS:-2}

log() { echo "build-control-plane: $*" >&2; }

mkdir -p "$BIN" "$CRD_DIR"

# One build at a time per cache dir (vitest globalSetup and `cluster up` may race).
exec 9>"$OUT/.lock"
flock 9

# --- VolumeSnapshot CRDs ----------------------------------------------------
copy_snapshot_crds() {
  local want=(snapshot.storage.k8s.io_volumesnapshotclasses.yaml
    snapshot.storage.k8s.io_volumesnapshotcontents.yaml
    snapshot.storage.k8s.io_volumesnapshots.yaml)
  local have=1 f
  for f in "${want[@]}"; do [[ -s "$CRD_DIR/$f" ]] || have=0; done
  if [[ $have == 1 && -f "$CRD_DIR/.version" && $(<"$CRD_DIR/.version") == "$SNAPSHOTTER_VERSION" ]]; then
    return 0
  fi
  log "fetching VolumeSnapshot CRDs from $SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION"
  local dir tmp
  # Run outside any module so go.mod/go.sum are untouched; the checksum
  # database still verifies the download.
  tmp=$(mktemp -d)
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json \
    "$SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || dir=
  rmdir "$tmp"
  if [[ -z $dir || ! -d "$dir/config/crd" ]]; then
    log "WARNING: could not locate config/crd in $SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION; skipping snapshot CRDs"
    return 0
  fi
  for f in "${want[@]}"; do
    install -m 0644 "$dir/config/crd/$f" "$CRD_DIR/$f"
  done
  echo "$SNAPSHOTTER_VERSION" >"$CRD_DIR/.version"
}

copy_snapshot_crds

# --- build ----------------------------------------------------------------
declare -A PKG=(
  [etcd]=go.etcd.io/etcd/server/v3
  [etcdutl]=go.etcd.io/etcd/etcdutl/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
)
# Arguments name the binaries to build (scripts/build-node.sh asks for the node's); default the control plane.
if (($#)); then ORDER=("$@"); else ORDER=(etcd etcdutl kubectl kube-apiserver kube-controller-manager); fi
for name in "${ORDER[@]}"; do [[ -n ${PKG[$name]:-} ]] || { log "unknown binary: $name"; exit 2; }; done

MAJOR=${KUBE_VERSION#v}; MAJOR=${MAJOR%%.*}
MINOR=${KUBE_VERSION#v*.}; MINOR=${MINOR%%.*}

# Same -X set as upstream hack/lib/version.sh (kube::version::ldflags).
kube_ldflags() {
  local key val
  local -a pairs=(buildDate "$BUILD_DATE" gitVersion "$KUBE_VERSION" gitMajor "$MAJOR" gitMinor "$MINOR")
  # The module zip carries no commit; leave gitCommit empty rather than the
  # "$Format:%H$" placeholder unless KUBE_GIT_COMMIT is given.
  if [[ -n $KUBE_GIT_COMMIT ]]; then
    pairs+=(gitCommit "$KUBE_GIT_COMMIT" gitTreeState clean)
  else
    pairs+=(gitCommit "" gitTreeState archive)
  fi
  local flags="-s -w"
  while ((${#pairs[@]})); do
    key=${pairs[0]} val=${pairs[1]}
    pairs=("${pairs[@]:2}")
    flags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
  done
  echo "$flags"
}

# etcdutl has a tools module of its own (its go.mod's replace directives rule out
# `go install ...@version`; test/controlplane/etcdutl/go.mod says more).
moddir() { if [[ $1 == etcdutl ]]; then echo "$MODDIR/etcdutl"; else echo "$MODDIR"; fi; }
is_etcd() { [[ $1 == etcd || $1 == etcdutl ]]; }

etcd_ldflags() {
  local flags="-s -w"
  [[ -n $ETCD_GIT_SHA ]] && flags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_GIT_SHA"
  echo "$flags"
}

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
TAGS=selinux,notest,grpcnotrace

# --- version checks --------------------------------------------------------
# A binary is reused when it reports the expected version and was built from
# the same go.mod/go.sum, flags and Go version (stamp file next to it).
stamp() {
  local name=$1
  {
    echo "$name ${PKG[$name]} $TAGS"
    if is_etcd "$name"; then etcd_ldflags; else kube_ldflags; fi
    (cd "$MODDIR" && go env GOVERSION)
    cat "$(moddir "$name")/go.mod" "$(moddir "$name")/go.sum"
  } | sha256sum | cut -d' ' -f1
}

check_bin() {
  local name=$1 out
  [[ -x "$BIN/$name" ]] || return 1
  [[ -f "$BIN/.$name.stamp" && $(<"$BIN/.$name.stamp") == "$(stamp "$name")" ]] || return 1
  case $name in
    kube-apiserver | kube-controller-manager | kubelet | kube-scheduler | kube-proxy)
      out=$("$BIN/$name" --version 2>/dev/null) || return 1
      [[ $out == "Kubernetes $KUBE_VERSION" ]] ;;
    kubectl)
      out=$("$BIN/$name" version --client 2>/dev/null) || return 1
      [[ $out == *"Client Version: $KUBE_VERSION"* ]] ;;
    etcd)
      out=$("$BIN/$name" --version 2>/dev/null) || return 1
      [[ $out == *"etcd Version: $ETCD_VERSION"* ]] ;;
    etcdutl)
      out=$("$BIN/$name" version 2>/dev/null) || return 1
      [[ $out == *"etcdutl version: $ETCD_VERSION"* ]] ;;
    *) return 1 ;;
  esac
}

total_start=$(date +%s)
built=0
for name in "${ORDER[@]}"; do
  if [[ ${KILN_CP_REBUILD:-0} != 1 ]] && check_bin "$name"; then
    continue
  fi
  if is_etcd "$name"; then ldflags=$(etcd_ldflags); else ldflags=$(kube_ldflags); fi
  log "$name: building ${PKG[$name]} (-p $JOBS)"
  start=$(date +%s)
  (cd "$(moddir "$name")" && go build -p "$JOBS" -trimpath -tags "$TAGS" -ldflags "$ldflags" \
    -o "$BIN/.$name.tmp" "${PKG[$name]}")
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  stamp "$name" >"$BIN/.$name.stamp"
  if ! check_bin "$name"; then
    log "ERROR: $BIN/$name does not report the expected version"
    exit 1
  fi
  log "$name: built in $(($(date +%s) - start))s"
  built=$((built + 1))
done

if ((built > 0)); then
  log "built $built binaries in $(($(date +%s) - total_start))s"
  for name in "${ORDER[@]}"; do
    case $name in
      kubectl) log "$name: $("$BIN/$name" version --client 2>/dev/null | head -1)" ;;
      etcdutl) log "$name: $("$BIN/$name" version 2>/dev/null | head -1)" ;;
      *) log "$name: $("$BIN/$name" --version 2>/dev/null | head -1)" ;;
    esac
  done
else
  log "up to date: Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION ($(($(date +%s) - total_start))s)"
fi
echo "$BIN"
