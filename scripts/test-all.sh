#!/usr/bin/env bash
# README command 2 (and .ci/run): install everything the tests need on a fresh
# Debian machine, then run every test. Safe to re-run: installed packages,
# node_modules and the control-plane binaries (cached outside the work tree,
# in ${KILN_CACHE:-~/.cache/kiln}) are reused.
# Debian packages: git, openssl, time, ca-certificates, util-linux (setpriv),
# and the servers the runtime-agent tests start privately in temp dirs
# (test/harness/slapd.ts, postgres.ts): slapd + ldap-utils and postgresql-15;
# python3-yaml (PyYAML with libyaml) reads kiln's output in test/unit/yaml-readers.test.ts.
# scripts/build-node.sh installs the real node's packages (containerd, runc, CNI
# plugins, iptables, conntrack, podman, mmdebstrap) the same way.
# The install never prompts: debconf is non-interactive (slapd's postinst asks
# for a domain and admin password otherwise), dpkg keeps existing config files,
# and apt reads no stdin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/apt-install.sh test-all git openssl time ca-certificates util-linux slapd ldap-utils postgresql-15 python3-yaml
command -v go >/dev/null || { echo "test-all: Go is required to build the control plane (https://go.dev/dl); none on PATH" >&2; exit 1; }

echo "test-all: npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "test-all: control-plane binaries"
start=$(date +%s)
bash scripts/build-control-plane.sh >/dev/null
echo "test-all: control plane ready in $(( $(date +%s) - start ))s"

# The real node (test/node/): containerd, runc, CNI plugins, kubelet, kube-scheduler,
# kube-proxy, CoreDNS and the images its pods run, all built here (cached).
echo "test-all: node binaries and images"
start=$(date +%s)
bash scripts/build-node.sh >/dev/null
echo "test-all: node ready in $(( $(date +%s) - start ))s"

# Gitea, the real forge the review-mode pull-request test (test/integration/gitea-review.test.ts) runs against.
echo "test-all: gitea"
start=$(date +%s)
bash scripts/build-gitea.sh >/dev/null
echo "test-all: gitea ready in $(( $(date +%s) - start ))s"

# Flux's source-controller and kustomize-controller, which apply what git mode commits (test/integration/flux.test.ts).
echo "test-all: flux"
start=$(date +%s)
bash scripts/build-flux.sh >/dev/null
echo "test-all: flux ready in $(( $(date +%s) - start ))s"

echo "test-all: typecheck"
npm run -s typecheck

echo "test-all: lint and format"
npm run -s lint
npm run -s format:check

echo "test-all: tests"
npm run -s test:report
