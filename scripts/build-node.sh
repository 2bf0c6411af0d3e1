#!/usr/bin/env bash
# Everything the test cluster's real node needs (test/harness/node.ts), built
# or installed once and cached beside the control plane:
#   - Debian packages: containerd, runc, the CNI plugins, iptables and
#     conntrack (kube-proxy), podman and mmdebstrap (the images), iproute2;
#   - kubelet, kube-scheduler and kube-proxy at the control plane's version,
#     from the Go module proxy (scripts/build-control-plane.sh);
#   - CoreDNS from the Go module proxy, into the same bin directory;
#   - the images the tests run, from Debian packages (scripts/build-images.sh).
# Idempotent: a second run checks versions and stamps and builds nothing.
# The last line printed is the bin directory.
#
# Environment: KILN_CACHE (default $HOME/.cache/kiln), KILN_NODE_REBUILD=1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COREDNS_VERSION=v1.13.1
log() { echo "build-node: $*" >&2; }

# With their recommends, as they were installed when the node and the image builds were first made to work here.
bash "$ROOT/scripts/apt-install.sh" build-node containerd runc containernetworking-plugins iptables conntrack iproute2 podman mmdebstrap uidmap gcc libc6-dev
# Debian starts containerd as a service where an init system runs; the node runs its own.

start=$(date +%s)
BIN=$(bash "$ROOT/scripts/build-control-plane.sh" kubelet kube-scheduler kube-proxy | tail -1)

stamp="$COREDNS_VERSION $(go env GOVERSION)"
if [[ ${KILN_NODE_REBUILD:-0} == 1 || ! -x "$BIN/coredns" || ! -f "$BIN/.coredns.stamp" || $(<"$BIN/.coredns.stamp") != "$stamp" ]]; then
  log "coredns: building github.com/coredns/coredns@$COREDNS_VERSION"
  t=$(date +%s)
  tmp=$(mktemp -d)
  # Outside any module: `go install pkg@version` builds with CoreDNS's own go.mod.
  (cd "$tmp" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION")
  mv -f "$tmp/coredns" "$BIN/coredns"
  rm -rf "$tmp"
  echo "$stamp" >"$BIN/.coredns.stamp"
  log "coredns: built in $(($(date +%s) - t))s"
fi

bash "$ROOT/scripts/build-images.sh" >/dev/null
log "node ready in $(($(date +%s) - start))s"
echo "$BIN"
