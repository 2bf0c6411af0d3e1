#!/usr/bin/env bash
# Build the container images the test node runs, all from Debian packages and
# this repository (no registry is reachable), as OCI archives:
#
#   ${KILN_CACHE:-$HOME/.cache/kiln}/images/<file>.oci.tar
#
#   registry.k8s.io/pause:3.10        pause.oci.tar      static C binary (images/pause)
#   docker.io/library/postgres:17     postgres-17.oci.tar  trixie's postgresql-17 (images/postgres)
#   docker.io/library/node:24-slim    node-24-slim.oci.tar bookworm + the npm `node` package's binary (images/node)
#   docker.io/library/kiln:<version>  kiln.oci.tar       the repository's Dockerfile, FROM that node image
#   localhost/kiln-test/directory:openldap  directory-openldap.oci.tar  bookworm's slapd (images/directory)
#
# Each archive has a .stamp next to it: the sha256 of its inputs (this script,
# its files under images/, for kiln the git-tracked files the Dockerfile
# copies and the node image's stamp). An archive is rebuilt only when its
# stamp changes; KILN_IMAGES_REBUILD=1 rebuilds all. Podman's storage lives in
# the cache too (${KILN_CACHE}/podman), with its own containers.conf and
# registries.conf, so the host's container configuration does not matter.
# Per-image build seconds go to stderr; the last stdout line is the images dir.
#
# Environment:
#   KILN_CACHE             cache root (default $HOME/.cache/kiln)
#   KILN_IMAGES_REBUILD=1  rebuild every image
#   KILN_IMAGES            space-separated subset to build: pause postgres node kiln directory (default: all)
#   KILN_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/build-images.sh"
CACHE_ROOT=${KILN_CACHE:-$HOME/.cache/kiln}
OUT="$CACHE_ROOT/images"
STATE="$CACHE_ROOT/podman"
WORK="$CACHE_ROOT/images-work"
MIRROR=${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MIRROR_SECURITY=${MIRROR%/debian}/debian-security
# npm for the node image: the `node` npm package ships the runtime only.
NPM_VERSION=11.6.2
KILN_VERSION=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$ROOT/package.json" | head -n1)
NODE_BIN="$ROOT/node_modules/node/bin/node"

log() { echo "build-images: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- tools ------------------------------------------------------------------
missing=()
for tool in podman mmdebstrap gcc sha256sum flock tar git npm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
RUNC=/usr/sbin/runc
[[ -x $RUNC ]] || RUNC=$(command -v runc || true)
[[ -n $RUNC ]] || missing+=(runc)
if ((${#missing[@]})); then
  die "missing tool(s): ${missing[*]} (Debian: apt-get install -y podman runc mmdebstrap gcc libc6-dev git; npm comes with Node.js)"
fi
[[ -n $KILN_VERSION ]] || die "no version in $ROOT/package.json"

mkdir -p "$OUT" "$STATE" "$WORK"
# One build at a time per cache dir (vitest globalSetup and `cluster up` may race).
exec 9>"$OUT/.lock"
flock 9

# --- podman -----------------------------------------------------------------
# default_ulimits = []: raising rlimits needs CAP_SYS_RESOURCE, which the
# sandbox lacks. cgroupfs: no systemd here. crun refuses hybrid cgroups, so
# runc is passed explicitly.
cat >"$STATE/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
# Short names (FROM node:24-slim) resolve to docker.io, found in local storage; nothing is pulled.
cat >"$STATE/registries.conf" <<'EOF'
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_REGISTRIES_CONF="$STATE/registries.conf"

# overlay when the kernel mounts it here, else vfs (slower, a full copy per layer).
# The choice is remembered: storage made by one driver cannot be opened by the other.
if [[ ! -s $STATE/driver ]]; then
  probe=$(mktemp -d "$WORK/overlay-probe.XXXXXX")
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    echo overlay >"$STATE/driver"
  else
    log "overlay mount failed here: using the vfs storage driver"
    echo vfs >"$STATE/driver"
  fi
  rm -rf "$probe"
fi
PODMAN=(podman --root "$STATE/root" --runroot "$STATE/run" --runtime "$RUNC" --storage-driver "$(<"$STATE/driver")" --cgroup-manager cgroupfs)

# --- helpers ----------------------------------------------------------------
# sha256 of stdin
digest() { sha256sum | cut -c1-64; }

# Hash of this script plus the files of images/<dir>, plus any extra words.
input_stamp() {
  local dir=$1
  shift
  {
    sha256sum <"$SELF"
    (cd "$ROOT" && find "images/$dir" -type f -print0 | sort -z | xargs -0 sha256sum)
    printf '%s\n' "$@"
  } | digest
}

# Debian root file system as a tar, through mmdebstrap; docs, man pages and
# translations are left out (copyright files stay).
debian_rootfs() {
  local suite=$1 variant=$2 tar=$3
  shift 3
  mmdebstrap --quiet --variant="$variant" --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='APT::Install-Recommends "false"' \
    "$@" "$suite" "$tar" \
    "deb $MIRROR $suite main" \
    "deb $MIRROR $suite-updates main" \
    "deb $MIRROR_SECURITY $suite-security main" >&2
}

# Import a root file system tar as a build base; prints its name.
import_base() {
  local name=$1 tar=$2
  "${PODMAN[@]}" import --quiet "$tar" "$name" >/dev/null
  rm -f "$tar"
  echo "$name"
}

# build_image <key> <image name> <archive file> <stamp>: runs build_<key>
# unless the archive's stamp is current, then saves the archive.
build_image() {
  local key=$1 name=$2 file=$3 stamp=$4
  local archive="$OUT/$file"
  if [[ ${KILN_IMAGES_REBUILD:-} != 1 && -s $archive && -f $archive.stamp && $(<"$archive.stamp") == "$stamp" ]]; then
    log "$name: up to date ($file)"
    return 0
  fi
  local t0=$SECONDS
  log "$name: building"
  "build_$key" "$name"
  rm -f "$archive.tmp"
  "${PODMAN[@]}" save --quiet --format oci-archive -o "$archive.tmp" "$name"
  mv "$archive.tmp" "$archive"
  echo "$stamp" >"$archive.stamp"
  log "$name: built in $((SECONDS - t0)) s, $(du -m "$archive" | cut -f1) MiB ($file)"
}

# An image another build starts FROM must be in podman's storage, even when
# only its archive survived (a wiped podman root, a cache copied elsewhere).
ensure_loaded() {
  local name=$1 file=$2
  "${PODMAN[@]}" image exists "$name" || "${PODMAN[@]}" load --quiet -i "$OUT/$file" >/dev/null
}

# --- images -----------------------------------------------------------------
build_pause() {
  local ctx="$WORK/pause"
  rm -rf "$ctx" && mkdir -p "$ctx"
  gcc -static -Os -s -Wall -Werror -o "$ctx/pause" "$ROOT/images/pause/pause.c"
  cp "$ROOT/images/pause/Containerfile" "$ctx/"
  "${PODMAN[@]}" build --quiet --pull=never --network=none -t "$1" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_postgres() {
  local tar="$WORK/postgres-rootfs.tar"
  # The official image's postgres is uid/gid 999 (the chart runs as 999):
  # create it before postgresql-common would pick another id, and keep the
  # package from creating a cluster (the entrypoint runs initdb into PGDATA).
  debian_rootfs trixie apt "$tar" --include=postgresql-17 \
    --essential-hook='echo "postgres:x:999:" >>"$1/etc/group"' \
    --essential-hook='echo "postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/bash" >>"$1/etc/passwd"' \
    --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/kiln.conf"' \
    --customize-hook='rm -rf "$1"/etc/postgresql/* "$1"/var/lib/postgresql/[0-9]*' \
    --customize-hook='mkdir -p "$1/var/lib/postgresql/data" "$1/var/run/postgresql" "$1/docker-entrypoint-initdb.d" && chown 999:999 "$1/var/lib/postgresql" "$1/var/lib/postgresql/data" "$1/var/run/postgresql" && chmod 1777 "$1/var/lib/postgresql/data" && chmod 3777 "$1/var/run/postgresql"'
  local base
  base=$(import_base localhost/kiln-build/postgres-rootfs:17 "$tar")
  "${PODMAN[@]}" build --quiet --pull=never --network=none --build-arg "BASE=$base" -t "$1" "$ROOT/images/postgres" >/dev/null
}

npm_tarball() {
  local tgz="$WORK/npm-$NPM_VERSION.tgz"
  [[ -s $tgz ]] || (cd "$WORK" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
  echo "$tgz"
}

build_node() {
  local tar="$WORK/node-rootfs.tar" npm_tgz
  npm_tgz=$(npm_tarball)
  # minbase: bookworm-slim's package set (it has useradd for the node user).
  debian_rootfs bookworm minbase "$tar" \
    --customize-hook="install -m 0755 '$NODE_BIN' \"\$1/usr/local/bin/node\"" \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$npm_tgz' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1 --no-same-owner" \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
    --customize-hook='chroot "$1" groupadd --gid 1000 node && chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  local base
  base=$(import_base localhost/kiln-build/node-rootfs:24 "$tar")
  "${PODMAN[@]}" build --quiet --pull=never --network=none --build-arg "BASE=$base" --build-arg "NODE_VERSION=$NODE_VERSION" -t "$1" "$ROOT/images/node" >/dev/null
}

build_kiln() {
  ensure_loaded docker.io/library/node:24-slim node-24-slim.oci.tar
  # npm ci inside the build trusts what npm trusts here: where the registry is
  # reached through a TLS-intercepting proxy, its CA is only in the host's
  # bundle. A bind mount over the base image's (empty) /usr/local/etc, where
  # npm reads its global config, applies to the RUN steps only: nothing of it
  # is committed to the image.
  local ca trust=() etc="$WORK/build-npm-etc"
  ca=$(npm config get cafile 2>/dev/null || true)
  [[ -f $ca ]] || ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
  if [[ -f $ca ]]; then
    rm -rf "$etc" && mkdir -p "$etc"
    cp "$ca" "$etc/ca.pem"
    echo "cafile=/usr/local/etc/ca.pem" >"$etc/npmrc"
    trust=(--volume "$etc:/usr/local/etc:ro")
  fi
  # Host network: the Dockerfile's apt-get and npm ci reach the Debian mirror and the npm registry.
  "${PODMAN[@]}" build --quiet --pull=never --network=host "${trust[@]}" -t "$1" -f "$ROOT/Dockerfile" "$ROOT" >/dev/null
}

build_directory() {
  local tar="$WORK/directory-rootfs.tar"
  debian_rootfs bookworm apt "$tar" --include=slapd,ldap-utils,openssl \
    --customize-hook='rm -rf "$1"/etc/ldap/slapd.d/* "$1"/var/lib/ldap/*' \
    --customize-hook='echo "ds:x:11111:0:directory server:/opt/opendj:/usr/sbin/nologin" >>"$1/etc/passwd"' \
    --customize-hook='mkdir -p "$1/opt/opendj/data" && chown -R 11111:0 "$1/opt/opendj" && chmod -R 0770 "$1/opt/opendj"'
  local base
  base=$(import_base localhost/kiln-build/directory-rootfs:bookworm "$tar")
  "${PODMAN[@]}" build --quiet --pull=never --network=none --build-arg "BASE=$base" -t "$1" "$ROOT/images/directory" >/dev/null
}

# --- stamps and order -------------------------------------------------------
[[ -x $NODE_BIN ]] || die "$NODE_BIN missing: run npm ci in $ROOT (the node image takes its runtime from the npm \`node\` package)"
NODE_VERSION=$("$NODE_BIN" --version)
NODE_VERSION=${NODE_VERSION#v}
[[ $NODE_VERSION == 24.* ]] || die "$NODE_BIN is Node $NODE_VERSION, the node:24-slim image needs 24.x"

want=" ${KILN_IMAGES:-pause postgres node kiln directory} "
wants() { [[ $want == *" $1 "* ]]; }

t_all=$SECONDS
wants pause && build_image pause registry.k8s.io/pause:3.10 pause.oci.tar "$(input_stamp pause)"
wants postgres && build_image postgres docker.io/library/postgres:17 postgres-17.oci.tar "$(input_stamp postgres)"
node_stamp=$(input_stamp node "node $NODE_VERSION $(sha256sum "$NODE_BIN" | cut -c1-64)" "npm $NPM_VERSION")
if wants node || wants kiln; then
  build_image node docker.io/library/node:24-slim node-24-slim.oci.tar "$node_stamp"
fi
if wants kiln; then
  # The files the Dockerfile copies (COPY lines without --from), as tracked by
  # git, at their working-tree content. Except test/ and bench/: the build
  # stage compiles them (bench imports test harnesses) but the runtime stage
  # takes none of their output, so a test edit need not rebuild the image.
  mapfile -t kiln_sources < <(sed -n 's/^COPY \([^-][^ ]*\( [^ ]*\)*\) [^ ]*$/\1/p' "$ROOT/Dockerfile" | tr ' ' '\n' | grep -v -e '^test/' -e '^bench/' | sort -u)
  kiln_stamp=$(
    {
      echo "node $node_stamp" "version $KILN_VERSION"
      sha256sum <"$SELF"
      cd "$ROOT" && sha256sum Dockerfile .dockerignore && git ls-files -z -- "${kiln_sources[@]}" | xargs -0 sha256sum
    } | digest
  )
  build_image kiln "docker.io/library/kiln:$KILN_VERSION" kiln.oci.tar "$kiln_stamp"
fi
wants directory && build_image directory localhost/kiln-test/directory:openldap directory-openldap.oci.tar "$(input_stamp directory)"
# Layers only an earlier build of an image used.
"${PODMAN[@]}" image prune --force >/dev/null
log "done in $((SECONDS - t_all)) s"
echo "$OUT"
