#!/usr/bin/env bash
# What a dependency hop costs nq-broker (--sync=always): a chain of
# NQ_BENCH_CHAIN_LINKS jobs (default 10,000) enqueued in one request
# (nq_enqueue_chain), run link by link by nq-chain-latency on one slot,
# which prints the per-link latency (the success of one link to the fetch
# that returns the next) p50/p99/max. Prints markdown.
#
#   bench/workflows.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers/lib.sh"

LINKS=${NQ_BENCH_CHAIN_LINKS:-10000}
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
for b in "$build/broker/nq-broker" "$build/bench/nq-chain-latency"; do
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
nqb_stop "$pid"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '## A chain of %s jobs, one link at a time\n\n' "$LINKS"
echo "| links | hop p50 ms | p99 | max | total s |"
echo "|---:|---:|---:|---:|---:|"
printf '| %s | %s | %s | %s | %s |\n' "$(nqb_field links "$line")" \
	"$(nqb_field hop_p50_ms "$line")" "$(nqb_field hop_p99_ms "$line")" \
	"$(nqb_field hop_max_ms "$line")" "$(nqb_field total_s "$line")"
