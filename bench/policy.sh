#!/usr/bin/env bash
# What queue policies cost nq-broker (--sync=always), measured in pairs of
# runs that alternate, so that other load on the machine falls on both
# sides alike (each pair in the other order than the one before). Prints
# markdown tables and the load average.
#
#   bench/policy.sh [overhead|rate|all]       # default all
#
# overhead: workload A without a queues file, then with one whose limits
#   never bind (every queue: max_in_flight 1000000, rate 10000000/s, burst
#   1000000, types [noop]); NQ_BENCH_PAIRS pairs (default 5). Target: the
#   mean end-to-end rate with the file within 5% of the one without.
# rate: a queue "limited" (rate 1000/s, burst 10) filled with
#   NQ_BENCH_SIDE_JOBS jobs (default 100000) next to the bench's own queue
#   (no limit) of NQ_BENCH_POLICY_JOBS jobs (default 1000000), the workers
#   fetching both; against a solo run of the unlimited queue alone with the
#   same queues file; NQ_BENCH_RATE_PAIRS pairs (default 3). Targets: the
#   limited queue starts within 2% of 1000/s, the unlimited one keeps at
#   least 90% of its solo end-to-end rate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers/lib.sh"

what=${1:-all}
case $what in
overhead | rate | all) ;;
*) nqb_log "unknown part '$what' (overhead, rate, all)"; exit 2 ;;
esac
PAIRS=${NQ_BENCH_PAIRS:-5}
RATE_PAIRS=${NQ_BENCH_RATE_PAIRS:-3}
POLICY_JOBS=${NQ_BENCH_POLICY_JOBS:-1000000}
SIDE_JOBS=${NQ_BENCH_SIDE_JOBS:-100000}
nqb_mktemp
cat >"$NQB_TMP/loose.yaml" <<'EOF'
queues:
  "*":
    max_in_flight: 1000000
    rate: 10000000/s
    burst: 1000000
    types: [noop]
EOF
cat >"$NQB_TMP/limited.yaml" <<'EOF'
queues:
  limited:
    rate: 1000/s
    burst: 10
EOF

load() {
	cut -d' ' -f1-3 /proc/loadavg
}

# One run of bench/nq.sh sync-always A with the queues file $1 ("" for
# none) and the nq-bench flags after it; prints its bench line.
run() {
	local file=$1
	shift
	NQ_BENCH_QUEUES_CONFIG=$file "$here/nq.sh" sync-always A "$@"
}

# The two sides of pair $1 in the order they run: $2 first in odd pairs,
# $3 first in even ones, so that neither always has the warmer machine.
order() {
	if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi
}

# The mean of the figures given, without those of failed runs ("-").
mean() {
	printf '%s\n' "$@" | grep -v '^-$' |
		awk '{ s += $1; n++ } END { if (n) printf "%.1f\n", s / n; else print "-" }'
}

# judge LABEL A B MIN: B / A against the target "at least MIN".
judge() {
	awk -v l="$1" -v a="$2" -v b="$3" -v m="$4" 'BEGIN { if (a > 0) {
		printf "%s: %.3f (target: at least %.3f): %s\n", l, b / a, m,
			(b / a >= m ? "met" : "MISSED") } }'
}

# The head of a part: its title, what it runs, the load average.
part_head() {
	printf '## %s\n\n' "$1"
	[ -z "${2:-}" ] || printf '%s\n\n' "$2"
	printf 'load average before: %s\n\n' "$(load)"
}

overhead() {
	local i side line without=() with=()
	part_head "Workload A with a queues file whose limits do not bind"
	echo "| pair | without file e2e jobs/s | with file e2e jobs/s |"
	echo "|---:|---:|---:|"
	for i in $(seq "$PAIRS"); do
		for side in $(order "$i" without with); do
			if [ "$side" = without ]; then
				line=$(run "") || line=""
				without+=("$(nqb_field e2e_per_s "$line")")
			else
				line=$(run "$NQB_TMP/loose.yaml") || line=""
				with+=("$(nqb_field e2e_per_s "$line")")
			fi
		done
		echo "| $i | ${without[-1]} | ${with[-1]} |"
	done
	local a b
	a=$(mean "${without[@]}")
	b=$(mean "${with[@]}")
	echo "| mean | $a | $b |"
	echo
	judge "with / without" "$a" "$b" 0.95
	echo "load average after: $(load)"
	echo
}

rate() {
	local i part line started solo=() mixed=() side=()
	local side_flags=(--side-queue limited --side-jobs "$SIDE_JOBS")
	part_head "A rate-limited queue (1000/s, burst 10) next to an unlimited one" \
		"$POLICY_JOBS jobs in the unlimited queue; the workers of the mixed run also fetch \"limited\", filled with $SIDE_JOBS jobs first."
	echo "| pair | solo e2e jobs/s | mixed e2e jobs/s | limited queue starts/s | its starts |"
	echo "|---:|---:|---:|---:|---:|"
	for i in $(seq "$RATE_PAIRS"); do
		for part in $(order "$i" solo mixed); do
			if [ "$part" = solo ]; then
				line=$(NQ_BENCH_A_JOBS=$POLICY_JOBS run "$NQB_TMP/limited.yaml") ||
					line=""
				solo+=("$(nqb_field e2e_per_s "$line")")
			else
				line=$(NQ_BENCH_A_JOBS=$POLICY_JOBS run "$NQB_TMP/limited.yaml" \
					"${side_flags[@]}") || line=""
				mixed+=("$(nqb_field e2e_per_s "$line")")
				side+=("$(nqb_field side_per_s "$line")")
				started=$(nqb_field side_started "$line")
			fi
		done
		echo "| $i | ${solo[-1]} | ${mixed[-1]} | ${side[-1]} | $started |"
	done
	local a b r
	a=$(mean "${solo[@]}")
	b=$(mean "${mixed[@]}")
	r=$(mean "${side[@]}")
	echo "| mean | $a | $b | $r | |"
	echo
	judge "unlimited queue, mixed / solo" "$a" "$b" 0.90
	printf '%s\n' "${side[@]}" | grep -v '^-$' | awk '
		{ d = $1 / 1000 - 1; if (d < 0) d = -d; if (d > worst) worst = d; n++ }
		END { if (n) printf "limited queue, farthest run from 1000/s: %.2f%% " \
			"(target: within 2%%): %s\n", worst * 100,
			(worst <= 0.02 ? "met" : "MISSED") }'
	echo "load average after: $(load)"
	echo
}

[ "$what" = rate ] || overhead
[ "$what" = overhead ] || rate
