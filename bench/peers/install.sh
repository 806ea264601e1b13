#!/usr/bin/env bash
# Installs what the peer benchmarks need, only what is missing: beanstalkd
# and redis-server from Debian, BullMQ from npm (into the bench cache, not
# the source tree), and the beanstalkd client built from
# beanstalk_bench.c. Prints nothing on a second run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$NQB_ROOT/scripts/deps.sh"

nq_install_deps beanstalkd redis-server gcc
# Debian's nodejs and npm only where no Node is installed already (a
# NodeSource nodejs bundles npm and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
	nq_install_deps nodejs npm
fi

mkdir -p "$NQB_CACHE/bullmq"
src=$NQB_ROOT/bench/peers
# The lock file pins every package; npm ci installs exactly those.
if ! cmp -s "$src/bullmq/package-lock.json" \
	"$NQB_CACHE/bullmq/package-lock.json" ||
	[ ! -d "$NQB_CACHE/bullmq/node_modules/bullmq" ]; then
	nqb_log "installing BullMQ into $NQB_CACHE/bullmq"
	cp "$src/bullmq/package.json" "$src/bullmq/package-lock.json" \
		"$NQB_CACHE/bullmq/"
	(cd "$NQB_CACHE/bullmq" &&
		npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# Node resolves 'bullmq' next to the script, so the script runs from there.
cp "$src/bullmq/bench.mjs" "$NQB_CACHE/bullmq/bench.mjs"

if [ ! -x "$NQB_CACHE/beanstalk_bench" ] ||
	[ "$src/beanstalk_bench.c" -nt "$NQB_CACHE/beanstalk_bench" ]; then
	gcc -O2 -Wall -Wextra -Werror -pthread \
		-o "$NQB_CACHE/beanstalk_bench" "$src/beanstalk_bench.c"
fi
