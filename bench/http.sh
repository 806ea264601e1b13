#!/usr/bin/env bash
# Enqueue over HTTP (the JSON API) beside the NNG api, against one fresh
# nq-broker in one run, and prints one bench line per measurement:
#   http_single  single-job POSTs from 16 keep-alive connections: jobs/s,
#                p50/p99 of one POST
#   nng_single   single-job enqueues from 16 producer connections (nq-bench
#                --batch 1 --producers 16): jobs/s
#   http_batch   POSTs of 1,000 jobs: jobs/s
#   nng_batch    enqueue requests of 1,000 jobs (nq-bench --batch 1000):
#                jobs/s
#
#   bench/http.sh [sync-always|sync-none]     (default sync-always)
#
# NQ_BENCH_HTTP_JOBS (default 20000) single jobs and NQ_BENCH_HTTP_BATCH_JOBS
# (default 100000) batched jobs per measurement. The binaries come from
# NQ_BUILD_DIR (default build); the HTTP client is node (http_load.mjs).
set -euo pipefail
. "$(dirname "$0")/peers/lib.sh"

case ${1:-sync-always} in
sync-always) sync=always ;;
sync-none) sync=none ;;
*) nqb_log "unknown mode '$1' (sync-always, sync-none)"; exit 2 ;;
esac
single=${NQ_BENCH_HTTP_JOBS:-20000}
batched=${NQ_BENCH_HTTP_BATCH_JOBS:-100000}
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
broker=$build/broker/nq-broker
bench=$build/bench/nq-bench
for b in "$broker" "$bench"; do
	[ -x "$b" ] || { nqb_log "$b missing: build nq first (./test.sh configure build)"; exit 1; }
done
command -v node >/dev/null || { nqb_log "node missing (scripts/deps.sh)"; exit 1; }
nqb_mktemp
dir=$NQB_TMP
api=$(nqb_free_port) work=$(nqb_free_port) results=$(nqb_free_port)
http=$(nqb_free_port)
nqb_start "$dir/broker.log" "$broker" --api "tcp://127.0.0.1:$api" \
	--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
	--events "" --http "127.0.0.1:$http" --dlq "" \
	--data-dir "$dir/data" --sync "$sync" --log-level warn
nqb_wait_port "$api" nq-broker
nqb_wait_port "$http" nq-broker

nng() { # JOBS BATCH PRODUCERS: the enqueue rate of nq-bench --backlog
	local line
	line=$(nqb_run "$bench" --api "tcp://127.0.0.1:$api" \
		--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
		--workers 1 --concurrency 256 --payload-size "$NQB_PAYLOAD" \
		--backlog --jobs "$1" --batch "$2" --producers "$3")
	echo "jobs=$1 batch=$2 producers=$3 jobs_per_s=$(nqb_field enqueue_per_s "$line")"
}
load=$NQB_ROOT/bench/http_load.mjs
node "$load" single "http://127.0.0.1:$http" "$single" 16
echo "bench nng_single $(nng "$single" 1 16)"
node "$load" batch "http://127.0.0.1:$http" "$batched" 1000
echo "bench nng_batch $(nng "$batched" 1000 1)"
