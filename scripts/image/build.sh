#!/usr/bin/env bash
# Build the Boxoffice image with podman, daemonless, as `make image-test` does:
#   scripts/image/build.sh            build $IMAGE:$TAG from the Dockerfile
# The base is BASE_IMAGE (the official Python slim image) when it can be pulled; otherwise a
# local base is built from Debian's packages with mmdebstrap (no container registry needed).
# Storage is vfs and builds run with chroot isolation: no overlay mounts, no user namespaces,
# no cgroup delegation, which a nested sandbox or a CI runner may not give.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/boxoffice/boxoffice}
TAG=${TAG:-dev}
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}
LOCAL_BASE=${LOCAL_BASE:-localhost/boxoffice-base:3.11-bookworm}
SUITE=${SUITE:-bookworm}
VAR=${VAR:-var/image}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/image/containers.conf}
podman() { command podman --storage-driver vfs "$@"; }

mkdir -p "$VAR"

base=$BASE_IMAGE
if podman image exists "$BASE_IMAGE"; then
  echo "base: $BASE_IMAGE (present)"
elif timeout 60 podman pull --quiet "$BASE_IMAGE" >/dev/null 2>"$VAR/pull.log"; then
  echo "base: $BASE_IMAGE (pulled)"
else
  echo "base: $BASE_IMAGE cannot be pulled ($(tail -1 "$VAR/pull.log")); using $LOCAL_BASE"
  base=$LOCAL_BASE
  if ! podman image exists "$LOCAL_BASE"; then
    # CPython 3.11 from Debian (the same minor version as the official image), `python` on
    # PATH, pip for the build stage, groupadd/useradd for the runtime stage. No docs, man
    # pages or apt lists: only what a service needs.
    mmdebstrap --variant=minbase \
      --include=python3,python-is-python3,python3-pip,ca-certificates,passwd \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      "$SUITE" "$VAR/base.tar"
    podman import --change 'CMD ["python"]' "$VAR/base.tar" "$LOCAL_BASE" >/dev/null
    rm -f "$VAR/base.tar"
  fi
fi

# A TLS-inspecting proxy's CA (the system bundle) reaches the build as a secret, never a layer.
secret=()
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  secret=(--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt)
fi
podman build --isolation chroot --network host \
  --build-arg BASE_IMAGE="$base" "${secret[@]}" \
  -t "$IMAGE:$TAG" -f Dockerfile .
podman image inspect "$IMAGE:$TAG" --format '{{.Size}}' >"$VAR/size"
echo "built $IMAGE:$TAG on $base, $(numfmt --to=iec "$(cat "$VAR/size")")B"
