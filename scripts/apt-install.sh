#!/usr/bin/env bash
# apt-install.sh <tag> <package>...: install the Debian packages that are not
# installed yet, never prompting: debconf is non-interactive (slapd's postinst
# asks for a domain and admin password otherwise), dpkg keeps existing config
# files, and apt reads no stdin. Used by test-all.sh and build-node.sh.
set -euo pipefail
tag=$1
shift
need=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
((${#need[@]})) || exit 0
echo "$tag: installing Debian packages: ${need[*]}" >&2
SUDO=""
[[ $(id -u) == 0 ]] || SUDO=sudo
# `env` so the variables survive sudo, which resets the environment.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
  apt-get install -y -qq \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${need[@]}" </dev/null >/dev/null
