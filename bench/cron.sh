#!/usr/bin/env bash
# What cron schedules cost nq-broker (--sync=always). Prints markdown.
#
#   bench/cron.sh [lateness|overhead|all]      # default all
#
# lateness: NQ_BENCH_CRON_SCHEDULES schedules (default 10,000), each
#   ticking every second into queue "cron", on one broker for
#   NQ_BENCH_CRON_SECONDS seconds (default 20; the first 3 left out);
#   nq-cron-lateness leases the jobs as they come and measures each tick's
#   lateness (to the job's creation in the core, and to the fetch that
#   returned it); the broker's CPU (utime + stime) over the run.
# overhead: workload A (bench/nq.sh sync-always A) without a queues file,
#   then with 1,000 schedules (every minute, spread over the 60 seconds,
#   into a queue the bench does not fetch), NQ_BENCH_PAIRS pairs (default
#   3) in alternating order. Target: the mean end-to-end rate with the
#   schedules within 5% of the one without. NQ_BENCH_CRON_EXPR sets their
#   expression instead (printf of the schedule's number % 60), e.g.
#   '* * * * * *' for every second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers/lib.sh"

what=${1:-all}
case $what in
lateness | overhead | all) ;;
*) nqb_log "unknown part '$what' (lateness, overhead, all)"; exit 2 ;;
esac
SCHEDULES=${NQ_BENCH_CRON_SCHEDULES:-10000}
SECONDS_RUN=${NQ_BENCH_CRON_SECONDS:-20}
PAIRS=${NQ_BENCH_PAIRS:-3}
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
nqb_mktemp

# schedules N CRON...: a queues file of N schedules into queue "cron",
# the i-th with the expression printf makes of CRON and i % 60.
schedules() {
	local n=$1 fmt=$2
	echo "schedules:"
	awk -v n="$n" -v f="$fmt" 'BEGIN { for (i = 0; i < n; i++) {
		e = sprintf(f, i % 60)
		printf "  s%05d: {cron: \"%s\", queue: cron, type: t}\n", i, e } }'
}

clock_ticks() { getconf CLK_TCK; }
# utime + stime of a process, in clock ticks.
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

lateness() {
	local file=$NQB_TMP/every-second.yaml api work results pid c0 c1 line
	schedules "$SCHEDULES" '* * * * * *' >"$file"
	api=$(nqb_free_port) work=$(nqb_free_port) results=$(nqb_free_port)
	nqb_start "$NQB_TMP/broker.log" "$build/broker/nq-broker" \
		--api "tcp://127.0.0.1:$api" --work "tcp://127.0.0.1:$work" \
		--results "tcp://127.0.0.1:$results" --events "" --http "" \
		--dlq "" --data-dir "$NQB_TMP/data-late" --sync always \
		--log-level warn --queues-config "$file"
	pid=$NQB_LAST_PID
	nqb_wait_port "$api" nq-broker
	c0=$(cpu_of "$pid")
	line=$("$build/bench/nq-cron-lateness" --api "tcp://127.0.0.1:$api" \
		--work "tcp://127.0.0.1:$work" --queue cron \
		--seconds "$SECONDS_RUN" --skip 3)
	c1=$(cpu_of "$pid")
	nqb_stop "$pid"
	printf '## %s schedules ticking every second, %s s\n\n' "$SCHEDULES" "$SECONDS_RUN"
	echo "| jobs | ticks | enqueue p50 ms | p99 | max | fetched p50 ms | p99 | max | broker CPU |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n\n' \
		"$(nqb_field jobs "$line")" "$(nqb_field ticks "$line")" \
		"$(nqb_field enq_p50_ms "$line")" "$(nqb_field enq_p99_ms "$line")" \
		"$(nqb_field enq_max_ms "$line")" "$(nqb_field seen_p50_ms "$line")" \
		"$(nqb_field seen_p99_ms "$line")" "$(nqb_field seen_max_ms "$line")" \
		"$(awk -v d=$((c1 - c0)) -v t="$(clock_ticks)" -v s="$SECONDS_RUN" \
			'BEGIN { printf "%.0f%% of a core", 100 * d / t / s }')"
}

overhead() {
	local file=$NQB_TMP/every-minute.yaml i side line without=() with=()
	local expr=${NQ_BENCH_CRON_EXPR:-%d * * * * *}
	schedules 1000 "$expr" >"$file"
	printf '## Workload A with 1,000 schedules (%s) and without\n\n' "$expr"
	echo "| pair | without e2e jobs/s | with e2e jobs/s |"
	echo "|---:|---:|---:|"
	for i in $(seq "$PAIRS"); do
		if [ $((i % 2)) = 1 ]; then order="without with"; else order="with without"; fi
		for side in $order; do
			if [ "$side" = without ]; then
				line=$("$here/nq.sh" sync-always A) || line=""
				without+=("$(nqb_field e2e_per_s "$line")")
			else
				line=$(NQ_BENCH_QUEUES_CONFIG=$file "$here/nq.sh" sync-always A) || line=""
				with+=("$(nqb_field e2e_per_s "$line")")
			fi
		done
		echo "| $i | ${without[-1]} | ${with[-1]} |"
	done
	local a b
	a=$(printf '%s\n' "${without[@]}" | awk '$1 != "-" { s += $1; n++ } END { if (n) printf "%.1f", s / n }')
	b=$(printf '%s\n' "${with[@]}" | awk '$1 != "-" { s += $1; n++ } END { if (n) printf "%.1f", s / n }')
	echo "| mean | $a | $b |"
	echo
	awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "with / without: %.3f (target: at least 0.95): %s\n\n", b / a, (b / a >= 0.95 ? "met" : "MISSED") }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
[ "$what" = overhead ] || lateness
[ "$what" = lateness ] || overhead
