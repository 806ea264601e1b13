#!/usr/bin/env bash
# What a dependency hop costs nq-broker (--sync=always): a chain of
# NQ_BENCH_CHAIN_LINKS jobs (default 10,000) enqueued in one request
# (nq_enqueue_chain), run link by link by nq-chain-latency on one slot,
# which prints the per-link latency (the success of one link to the fetch
# that returns the next) p50/p99/max. Then what a batch costs: in each of
# NQ_BENCH_BATCH_RUNS runs (3), NQ_BENCH_BATCH_JOBS no-op jobs (100,000)
# plain and then as a batch with an on_complete callback, side by side
# (nq-batch-latency): end to end and their ratio, and the last job's
# completion to the callback's fetch (p50 and the largest over the runs).
# Prints markdown.
#
#   bench/workflows.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers/lib.sh"

LINKS=${NQ_BENCH_CHAIN_LINKS:-10000}
JOBS=${NQ_BENCH_BATCH_JOBS:-100000}
RUNS=${NQ_BENCH_BATCH_RUNS:-3}
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
for b in "$build/broker/nq-broker" "$build/bench/nq-chain-latency" \
	"$build/bench/nq-batch-latency"; do
	[ -x "$b" ] || { nqb_log "$b missing: build nq first"; exit 1; }
done
nqb_mktemp
api=$(nqb_free_port) work=$(nqb_free_port) results=$(nqb_free_port)
nqb_start "$NQB_TMP/broker.log" "$build/broker/nq-broker" \
	--api "tcp://127.0.0.1:$api" --work "tcp://127.0.0.1:$work" \
	--results "tcp://127.0.0.1:$results" --events "" --http "" \
	--dlq "" --data-dir "$NQB_TMP/data" --sync always --log-level warn
pid=$NQB_LAST_PID
nqb_wait_port "$api" nq-broker
line=$("$build/bench/nq-chain-latency" --api "tcp://127.0.0.1:$api" \
	--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
	--links "$LINKS")
batch=$("$build/bench/nq-batch-latency" --api "tcp://127.0.0.1:$api" \
	--work "tcp://127.0.0.1:$work" --results "tcp://127.0.0.1:$results" \
	--jobs "$JOBS" --runs "$RUNS" --broker-pid "$pid")
nqb_stop "$pid"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '## A chain of %s jobs, one link at a time\n\n' "$LINKS"
echo "| links | hop p50 ms | p99 | max | total s |"
echo "|---:|---:|---:|---:|---:|"
printf '| %s | %s | %s | %s | %s |\n' "$(nqb_field links "$line")" \
	"$(nqb_field hop_p50_ms "$line")" "$(nqb_field hop_p99_ms "$line")" \
	"$(nqb_field hop_max_ms "$line")" "$(nqb_field total_s "$line")"
echo
printf '## %s no-op jobs as a batch with on_complete, against plain\n\n' "$JOBS"
echo "| run | plain s | batch s | batch / plain | broker CPU s plain | batch | batch / plain | last job to callback ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
while read -r l; do
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
		"$(nqb_field run "$l")" "$(nqb_field plain_s "$l")" \
		"$(nqb_field batch_s "$l")" "$(nqb_field ratio "$l")" \
		"$(nqb_field plain_cpu_s "$l")" "$(nqb_field batch_cpu_s "$l")" \
		"$(nqb_field cpu_ratio "$l")" "$(nqb_field callback_ms "$l")"
done <<<"$batch"
cbs=$(for l in $(nqb_field callback_ms "$batch"); do echo "$l"; done | sort -n)
n=$(echo "$cbs" | wc -l)
printf '\nlast job to callback: p50 %s ms, largest (p99 of %s runs) %s ms\n' \
	"$(echo "$cbs" | sed -n "$(((n + 1) / 2))p")" "$n" "$(echo "$cbs" | tail -n 1)"
