#!/usr/bin/env bash
# Build the image with buildah (chroot isolation, no daemon) on a locally made base.
# Needs root, Debian's package mirror and a package index for pip (this machine's pip settings
# are passed in as build secrets and read-only volumes by pipconf.py).
# Usage: deploy/image/build.sh IMAGE_TAG BASE_IMAGE PYTHON
set -euo pipefail
tag=${1:?usage: build.sh IMAGE_TAG BASE_IMAGE PYTHON}
base=${2:?base image}
python=${3:-python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT

mapfile -t pip_args < <("$python" "$here/pipconf.py" "$python" "$secrets/pip.conf")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(git -C "$root" remote get-url origin 2>/dev/null || echo unknown)

buildah bud --isolation chroot --layers \
    --build-arg "BASE_IMAGE=$base" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "SOURCE_URL=$source_url" \
    "${pip_args[@]}" \
    --tag "$tag" --file "$root/Dockerfile" "$root"
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image: $tag $((size / 1000 / 1000)) MB ($size bytes, uncompressed)"
