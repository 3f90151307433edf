#!/usr/bin/env bash
# Builds every image the compose files of this directory run, from Debian's packages alone,
# for a machine that cannot pull from a registry (FluxCode's compose test runs on one):
#
#   fluxcode-local/debian:bookworm    Debian (debootstrap, minbase) with CA certificates
#   fluxcode-local/fluxcode:latest    deploy/Dockerfile with that Debian as both its build and
#                                     runtime base; the binary is compiled on this machine
#                                     (CGO off, the Dockerfile's flags) and taken as "prebuilt"
#   fluxcode-local/postgres:15        stand-ins for postgres:15-alpine, redis:7-alpine and
#   fluxcode-local/redis:7            caddy:2-alpine made from Debian's postgresql-15,
#   fluxcode-local/caddy:2            redis-server and caddy; they behave as the compose files
#                                     use the official images (deploy/local-images/)
#
# Usage (as root, from anywhere):   deploy/local-images.sh
# then run the compose files with the image variables it prints last, for example
#   deploy/local-images.sh | tail -n 4 >> deploy/.env.infra.local
#
# Needs: docker with BuildKit (docker buildx, or the docker build of Debian's docker.io),
# debootstrap, go. Nothing is pulled: debootstrap reads the Debian mirror (DEBIAN_MIRROR,
# default: the first Debian mirror of this machine's apt sources). The Debian file systems
# are cached as tar files in LOCAL_IMAGES_CACHE (default /var/cache/fluxcode-local-images):
# the first run takes a few minutes, a later one only rebuilds FluxCode.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${LOCAL_IMAGES_CACHE:-/var/cache/fluxcode-local-images}
suite=bookworm

say() { echo "local-images: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (debootstrap needs it)"
for cmd in docker debootstrap go tar; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is missing; on Debian: apt-get install docker.io debootstrap (and Go from go.dev)"
done
docker info >/dev/null 2>&1 || die "the docker daemon does not answer; start it (dockerd, or systemctl start docker)"

# A BuildKit build: only BuildKit skips the Dockerfile stage that compiles FluxCode. The docker
# CLI from version 23 on has it through the buildx plugin; Debian 12's docker.io (20.10) has it
# built in, which its own /usr/bin/docker uses with DOCKER_BUILDKIT=1.
build() {
  if docker buildx version >/dev/null 2>&1; then
    DOCKER_BUILDKIT=1 docker build "$@"
  elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
    DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
  else
    die "docker build needs BuildKit here: install the buildx plugin (docker-buildx), or Debian 12's docker.io"
  fi
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1 | tr -d ' ' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# rootfs NAME PACKAGES: a Debian minbase with PACKAGES, as the tar file it prints. The file
# name carries a hash of the suite and packages, so a changed list builds a new one.
rootfs() {
  local name=$1 packages=$2 hash tarball dir
  hash=$(printf '%s %s' "$suite" "$packages" | sha256sum | cut -c1-12)
  tarball="$cache/$name-$suite-$hash.tar"
  if [ ! -s "$tarball" ]; then
    say "debootstrap $name ($packages); takes a few minutes, once"
    mkdir -p "$cache/debs"
    dir=$(mktemp -d "$cache/$name.XXXXXX")
    # Packages' maintainer scripts must not start services inside the chroot.
    debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
      "$suite" "$dir" "$(mirror)" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap failed (log: $dir.log)"; }
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
      "$dir"/var/lib/postgresql/15/main "$dir"/etc/postgresql/15/main
    tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir" "$dir.log"
    # Older recipes of the same name are of no further use.
    find "$cache" -maxdepth 1 -name "$name-$suite-*.tar" ! -name "$(basename "$tarball")" -delete
  fi
  echo "$tarball"
}

# import TARBALL TAG: TAG from the root file system, unless TAG already is that tarball.
import() {
  local tarball=$1 tag=$2 id
  id=$(basename "$tarball" .tar)
  if [ "$(docker image inspect --format '{{index .Config.Labels "fluxcode.rootfs"}}' "$tag" 2>/dev/null)" = "$id" ]; then
    return
  fi
  say "import $tag"
  docker import --change "LABEL fluxcode.rootfs=$id" --change 'CMD ["bash"]' "$tarball" "$tag" >/dev/null
}

# All in one function, read whole before it runs: editing this file while it runs (a long
# debootstrap) does not change what the running copy does next.
main() {
  local base services s version commit old
  base=fluxcode-local/debian:$suite
  services=fluxcode-local/debian-services:$suite
  import "$(rootfs base ca-certificates)" "$base"
  # tzdata: PostgreSQL needs the zone database for TZ; wget: the Caddy health check;
  # redis-tools: redis-cli for the Redis health check.
  import "$(rootfs services ca-certificates,tzdata,postgresql-15,redis-server,redis-tools,caddy,wget)" "$services"

  for s in postgres:15 redis:7 caddy:2; do
    say "build fluxcode-local/$s"
    build -q --build-arg BASE="$services" -t "fluxcode-local/$s" -f "$here/local-images/${s%%:*}.Dockerfile" "$here/local-images" >/dev/null
  done

  # FluxCode: compiled here with the flags of the Dockerfile's build stage, taken by its
  # "prebuilt" stage (deploy/prebuilt/ is git-ignored but for its .gitignore).
  version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)
  say "compile fluxcode $version"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/fluxcode/fluxcode/internal/app.Version=${version} -X github.com/fluxcode/fluxcode/internal/app.Commit=${commit}" \
    -o deploy/prebuilt/fluxcode ./cmd/fluxcode)
  say "build fluxcode-local/fluxcode:latest"
  old=$(docker image inspect --format '{{.Id}}' fluxcode-local/fluxcode:latest 2>/dev/null || true)
  build -q -f "$here/Dockerfile" --build-arg GO_IMAGE="$base" --build-arg RUNTIME_IMAGE="$base" \
    --build-arg BINARY_FROM=prebuilt -t fluxcode-local/fluxcode:latest "$root" >/dev/null
  # Each build of a new binary leaves the previous image untagged: drop it unless a
  # container still uses it.
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' fluxcode-local/fluxcode:latest)" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi

  # The image variables of the compose files, for an env file.
  cat <<EOF
FLUXCODE_IMAGE=fluxcode-local/fluxcode:latest
POSTGRES_IMAGE=fluxcode-local/postgres:15
REDIS_IMAGE=fluxcode-local/redis:7
CADDY_IMAGE=fluxcode-local/caddy:2
EOF
}

main "$@"
