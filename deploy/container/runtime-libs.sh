#!/usr/bin/env bash
# Copies into the tree OUT the shared libraries FILEs need at run time that
# the base image lacks: every library ldd resolves for them (so the
# libraries of libraries too) whose soname is not in BASE_LIBS (the sonames
# the loader knew before the build stage installed anything), each with the
# copyright file of its Debian package. Only the files the loader maps are
# shipped, not whole packages (no configuration, plugins or tools).
# Libraries found under OUT (nq's own, copied there first) are skipped.
#
#   runtime-libs.sh BASE_LIBS OUT FILE...
set -euo pipefail
base=$1 out=$2
shift 2
ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
	while read -r soname path; do
		case $path in "$out"/*) continue ;; esac
		grep -qxF "$soname" "$base" && continue
		dir=$(readlink -f "$(dirname "$path")")
		mkdir -p "$out$dir"
		cp -L "$path" "$out$dir/$soname"
		# The package of a path that ends in /soname (a pattern: an
		# absolute path would have to be the one dpkg recorded).
		pkg=$(dpkg -S "*/$soname" 2>/dev/null | sed -n 's/:.*//p' | sed -n 1p)
		[ -n "$pkg" ] || { echo "runtime-libs.sh: $path: no Debian package" >&2; exit 1; }
		doc=/usr/share/doc/$pkg
		mkdir -p "$out$doc"
		cp "$doc/copyright" "$out$doc/"
		echo "runtime-libs.sh: $soname $(stat -L -c %s "$path") bytes ($pkg)"
	done
