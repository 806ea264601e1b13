#!/usr/bin/env bash
# Makes localhost/debian:bookworm-slim where no image registry is reachable:
# a Debian 12 minbase from debootstrap, slimmed the way Debian's own
# bookworm-slim is (no downloaded .debs, package lists or caches, logs,
# backups of dpkg's and debconf's databases, docs but the copyright files,
# man pages or locales), imported into podman. About 30 s;
# does nothing when the image exists already.
#
#   deploy/container/make-base.sh [IMAGE]
set -euo pipefail
image=${1:-localhost/debian:bookworm-slim}
if podman image exists "$image"; then
	exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
	"$root"/var/lib/apt/lists/* \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
	"$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/* \
	"$root"/usr/share/lintian/*
find "$root"/var/log -type f -delete
find "$root"/usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete
tar -C "$root" -c . | podman import - "$image" >/dev/null 2>&1
echo "make-base.sh: $image: $(podman image inspect --format '{{.Size}}' "$image") bytes"
