#!/usr/bin/env bash
# Runs one workload against a fresh nq-broker on free 127.0.0.1 ports and
# prints the bench line of nq-bench.
#
#   bench/nq.sh sync-always|sync-none A|B|C|C0 [NQ-BENCH FLAGS...]
#
# sync-always is --sync=always (fsync before every confirm, the default);
# sync-none skips fsync (a crash loses recent writes). A and B are the
# workloads of bench/peers; C enqueues NQ_BENCH_C_JOBS (default 1,000,000)
# jobs with no worker running and then drains them with 4 workers; C0 does
# the same with NQ_BENCH_A_JOBS jobs, the near-empty baseline for C. Flags
# after the workload go to nq-bench as they are. With NQ_BENCH_QUEUES_CONFIG
# the broker reads that queues file (--queues-config); NQ_BENCH_BROKER_ARGS
# adds flags of its own (e.g. "--result-ttl 1s"). The binaries come from
# NQ_BUILD_DIR (default build).
set -euo pipefail
. "$(dirname "$0")/peers/lib.sh"

mode=${1:?usage: nq.sh sync-always|sync-none A|B|C|C0}
workload=${2:?usage: nq.sh sync-always|sync-none A|B|C|C0}
case $mode in
sync-always) sync=always ;;
sync-none) sync=none ;;
*) nqb_log "unknown nq mode '$mode' (sync-always, sync-none)"; exit 2 ;;
esac
case $workload in
A) load=(--jobs "$(nqb_client_jobs)" --batch "$NQB_A_BATCH") ;;
B) load=(--rate "$NQB_B_RATE" --duration "${NQB_B_SECONDS}s" --batch 1
	--producers "$NQB_B_PRODUCERS") ;;
C) load=(--backlog --jobs "${NQ_BENCH_C_JOBS:-1000000}" --batch "$NQB_A_BATCH") ;;
C0) load=(--backlog --jobs "$NQB_A_JOBS" --batch "$NQB_A_BATCH") ;;
*) nqb_log "unknown workload '$workload' (A, B, C, C0)"; exit 2 ;;
esac
shift 2
load+=("$@")
policy=()
[ -z "${NQ_BENCH_QUEUES_CONFIG:-}" ] || policy=(--queues-config "$NQ_BENCH_QUEUES_CONFIG")
read -r -a extra <<<"${NQ_BENCH_BROKER_ARGS:-}"
policy+=("${extra[@]}")

build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
broker=$build/broker/nq-broker
bench=$build/bench/nq-bench
for b in "$broker" "$bench"; do
	[ -x "$b" ] || { nqb_log "$b missing: build nq first (./test.sh configure build)"; exit 1; }
done
nqb_mktemp
dir=$NQB_TMP
api=$(nqb_free_port) work=$(nqb_free_port) results=$(nqb_free_port)
events=$(nqb_free_port) http=$(nqb_free_port)
# The broker as deployed, events and /metrics included; no nq-dlq is
# running, so dead jobs (there are none) would stay in the broker.
nqb_start "$dir/broker.log" "$broker" --api "tcp://127.0.0.1:$api" \
	--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
	--events "tcp://127.0.0.1:$events" --http "127.0.0.1:$http" --dlq "" \
	--data-dir "$dir/data" --sync "$sync" --log-level warn "${policy[@]}"
pid=$NQB_LAST_PID
nqb_wait_port "$api" nq-broker

# The seconds of the broker's core thread by stage so far
# (nq_core_seconds_total): "apply commit reply".
core_seconds() {
	{ curl -sf "http://127.0.0.1:$http/metrics" || true; } | awk '
		/^nq_core_seconds_total\{stage="apply"\}/ { a = $2 }
		/^nq_core_seconds_total\{stage="commit"\}/ { c = $2 }
		/^nq_core_seconds_total\{stage="reply"\}/ { r = $2 }
		END { print a + 0, c + 0, r + 0 }'
}

before=$(core_seconds)
line=$(nqb_run_server "$pid" --queue "$bench" --api "tcp://127.0.0.1:$api" \
	--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
	--workers "$NQB_WORKERS" --concurrency "$NQB_NQ_CONCURRENCY" \
	--payload-size "$NQB_PAYLOAD" --broker-pid "$pid" \
	--max-time "${NQB_RUN_TIMEOUT}s" "${load[@]}")
after=$(core_seconds)
# The share of the run the core thread was busy, and committing: a core
# near 100% bounds the rate; the rest of its time it waited for requests.
echo "$line $(awk -v b="$before" -v a="$after" \
	-v jobs="$(nqb_field jobs "$line")" -v e2e="$(nqb_field e2e_per_s "$line")" '
	BEGIN {
		split(b, x, " "); split(a, y, " ")
		run = e2e > 0 ? jobs / e2e : 0
		busy = (y[1] - x[1]) + (y[2] - x[2]) + (y[3] - x[3])
		b = 0; c = 0; r = 0
		if (run > 0) {
			b = busy / run * 100; c = (y[2] - x[2]) / run * 100
			r = (y[3] - x[3]) / run * 100
		}
		printf "core_busy_pct=%.0f core_commit_pct=%.0f core_reply_pct=%.0f", b, c, r
	}')"
