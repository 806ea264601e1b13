#!/usr/bin/env bash
# Builds the nq image from this checkout with podman and prints its size.
#
#   deploy/container/build.sh [TAG]      (default localhost/nq:dev)
#
# BASE (default localhost/debian) is the repository whose bookworm-slim is
# the base; the local one is made first by make-base.sh (no registry is
# reached then: --pull=never). Build isolation is chroot, which works where
# podman's default does not (hybrid cgroups). A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-localhost/nq:dev}
base=${BASE:-localhost/debian}
pull=()
if [ "$base" = localhost/debian ]; then
	deploy/container/make-base.sh "$base:bookworm-slim"
	pull=(--pull=never)
fi
version=$(sed -n 's/^project(nq VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
podman build "${pull[@]}" --isolation=chroot -q \
	--build-arg BASE="$base" --build-arg NQ_VERSION="$version" \
	--build-arg NQ_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	-t "$tag" -f deploy/container/Containerfile . >/dev/null
echo "build.sh: $tag $(podman image inspect --format '{{.Size}}' "$tag") bytes"
