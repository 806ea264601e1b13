#!/usr/bin/env bash
# Runs nq on this machine, on loopback: installs what is missing, builds,
# starts nq-dlq, one nq-broker and two nq-workers, enqueues a few example jobs and
# shows them finishing. Then it keeps the services running so you can send
# more; Ctrl-C stops them cleanly.
#
# State and logs go to ./.nq-data (stores, broker.log, dlq.log, worker-*.log).
# NQ_BUILD_DIR (default build) picks another build directory.
#
# ./quickstart.sh NAME runs the example examples/NAME instead (its own
# queues file, workers and service; state and logs in ./.nq-data/NAME):
# order-confirmation, thumbnails or nightly-reconciliation.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
. scripts/deps.sh

DATA=$ROOT/.nq-data
BUILD=$ROOT/${NQ_BUILD_DIR:-build}
BROKER=$BUILD/broker/nq-broker
WORKER=$BUILD/worker/nq-worker
DLQ=$BUILD/dlq/nq-dlq
NQCTL=$BUILD/client/nqctl/nqctl
HANDLERS=$ROOT/examples/handlers
PORTS=(7400 7401 7402 7403 7410 7480 7481 7482 7483)
PIDS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "quickstart: $*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Stops what we started, last first: workers drain and hand back their
# jobs, then the broker, then nq-dlq. SIGTERM, then wait for each to exit.
stop_all() {
	trap - INT TERM EXIT
	local i
	if [ "${#PIDS[@]}" -gt 0 ]; then
		say "stopping"
	fi
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null || true
		wait "${PIDS[i]}" 2>/dev/null || true
	done
	PIDS=()
}

on_signal() {
	stop_all
	echo "stopped; the jobs stay in $DATA/broker for next time"
	exit 0
}

# Starts "$@" in the background with its output in $DATA/$name.log.
start() {
	local name=$1
	shift
	"$@" >"$DATA/$name.log" 2>&1 &
	PIDS+=("$!")
	echo "started $name (pid $!): $*"
}

# Waits until nqctl gets an answer from the broker (10 s at most).
wait_for_broker() {
	local i
	for ((i = 0; i < 50; i++)); do
		if "$NQCTL" stats >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "${PIDS[-1]}" 2>/dev/null ||
			die "nq-broker exited; see $DATA/broker.log:$(echo; tail -5 "$DATA/broker.log")"
		sleep 0.2
	done
	die "nq-broker did not answer within 10 s; see $DATA/broker.log"
}

build() {
	say "installing missing packages and building ($BUILD)"
	nq_install_deps
	nq_configure "$BUILD"
	# Only the programs: a quickstart need not wait for the tests to build.
	nq_build "$BUILD" nq-broker nq-worker nq-dlq nqctl >/dev/null ||
		{ nq_build "$BUILD" nq-broker nq-worker nq-dlq nqctl; exit 1; }
	local b
	for b in "$BROKER" "$WORKER" "$DLQ" "$NQCTL"; do
		[ -x "$b" ] || die "$b was not built"
	done
}

start_services() {
	local p worker_args
	for p in "${PORTS[@]}"; do
		port_busy "$p" && die "port $p is in use; is another nq-broker running?"
	done
	mkdir -p "$DATA"
	say "starting nq-dlq, nq-broker and two nq-workers (logs in .nq-data/)"
	# Jobs that fail for good are handed from the broker to nq-dlq.
	start dlq "$DLQ" --data-dir "$DATA/dlq"
	start broker "$BROKER" --data-dir "$DATA/broker"
	wait_for_broker
	# nq-worker runs each command with /bin/sh -c, hence the quotes.
	worker_args=(--queues emails,reports --concurrency 4
		--handler "send-email='$HANDLERS/send-email.sh'"
		--handler "build-report='$HANDLERS/flaky-report.sh'")
	# Each worker serves its own /metrics, /healthz and /readyz.
	start worker-1 "$WORKER" "${worker_args[@]}" --http 127.0.0.1:7482
	start worker-2 "$WORKER" "${worker_args[@]}" --http 127.0.0.1:7483
}

# Runs an nqctl command, echoing it first the way you would type it.
ctl() {
	local a line="\$ nqctl"
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9._/=:,-]*) line+=" '$a'" ;;
		*) line+=" $a" ;;
		esac
	done
	echo "$line" >&2
	"$NQCTL" "$@"
}

JOBS=()

enqueue_examples() {
	say "enqueueing example jobs"
	JOBS+=("$(ctl enqueue emails send-email \
		--payload '{"to":"ada@example.com","subject":"Welcome to nq"}')")
	JOBS+=("$(ctl enqueue emails send-email --priority 5 \
		--payload '{"to":"grace@example.com","subject":"Your invoice"}')")
	JOBS+=("$(ctl enqueue emails send-email \
		--idempotency-key welcome-linus \
		--payload '{"to":"linus@example.com","subject":"Welcome to nq"}')")
	# Fails twice, then succeeds: watch the retries in the worker logs.
	JOBS+=("$(ctl enqueue reports build-report \
		--payload '{"report":"weekly","fail_attempts":2}')")
	# No recipient: the handler exits 65 (permanent), so the job goes dead
	# at once instead of being retried.
	JOBS+=("$(ctl enqueue emails send-email --max-attempts 3 \
		--payload '{"subject":"nobody to send this to"}')")
	printf 'job ids: %s\n' "${JOBS[*]}"
}

# "state, attempt N" of a job, from nqctl's text output; a dead job that
# nq-dlq holds says so.
job_line() {
	"$NQCTL" get "$1" 2>/dev/null |
		awk -F': ' '$1 == "state" { s = $2 } $1 == "attempt" { a = $2 }
			$1 == "in_dlq" { d = ", kept in nq-dlq" }
			END { printf "%-10s after %s attempt(s)%s", s, a, d }'
}

show_results() {
	local id
	say "waiting for each job to end (nqctl wait ID)"
	for id in "${JOBS[@]}"; do
		"$NQCTL" wait "$id" >/dev/null 2>&1 || true
		printf '%s  %s\n' "$id" "$(job_line "$id")"
	done
	say "a closer look: the job that failed twice"
	ctl get "${JOBS[3]}" || true
	say "the one that died went to the dead-letter service"
	sleep 0.5 # the handoff to nq-dlq takes a moment
	ctl dlq show "${JOBS[4]}" || true
	say "queue stats"
	ctl stats || true
}

print_next_steps() {
	local NQCTL="./${BUILD#"$ROOT"/}/client/nqctl/nqctl"
	cat <<EOT

$(say "nq is running")
Enqueue more (each prints the job id; --wait blocks until it ends):
  $NQCTL enqueue emails send-email --payload '{"to":"you@example.com","subject":"Hi"}'
  $NQCTL enqueue reports build-report --payload '{"report":"daily"}' --wait
  $NQCTL enqueue emails send-email --delay 30s --payload '{"to":"later@example.com"}'
Look at jobs and queues:
  $NQCTL get ID          $NQCTL --json get ID
  $NQCTL wait ID         $NQCTL stats
  $NQCTL pause emails    $NQCTL resume emails
Dead letters (jobs that failed for good):
  $NQCTL dlq list        $NQCTL dlq show ID      $NQCTL dlq replay ID
Watch it work:
  $NQCTL events          $NQCTL top
  curl -s 127.0.0.1:7480/metrics | grep nq_queue
  tail -f .nq-data/broker.log .nq-data/worker-1.log .nq-data/worker-2.log

Press Ctrl-C to stop the workers, the broker and nq-dlq.
EOT
}

# The interpreter of the examples: Debian's, when there is one.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

# Waits until something listens on 127.0.0.1:$1 (10 s at most).
wait_for_port() {
	local i
	for ((i = 0; i < 50; i++)); do
		port_busy "$1" && return 0
		sleep 0.2
	done
	die "nothing listens on port $1; see the logs in $DATA"
}

# Runs examples/$1: its demo.sh names its ports and broker flags and
# starts its workers and service (example_start), shows it working
# (example_demo) and says what to try next (example_next_steps).
run_example() {
	local p dir=$ROOT/examples/$1
	DATA=$DATA/$1
	EXAMPLE_PORTS=() EXAMPLE_BROKER_ARGS=()
	. "$dir/demo.sh"
	nq_install_deps "${NQ_EXAMPLE_PACKAGES[@]}"
	for p in "${PORTS[@]}" "${EXAMPLE_PORTS[@]}"; do
		port_busy "$p" && die "port $p is in use; is another nq-broker running?"
	done
	mkdir -p "$DATA"
	say "starting nq-dlq and nq-broker with $1's queues file (logs in .nq-data/$1/)"
	start dlq "$DLQ" --data-dir "$DATA/dlq"
	start broker "$BROKER" --data-dir "$DATA/broker" \
		--queues-config "$dir/queues.yaml" "${EXAMPLE_BROKER_ARGS[@]}"
	wait_for_broker
	example_start "$dir"
	example_demo "$dir"
	example_next_steps "$dir"
}

main() {
	local example=${1:-}
	if [ -n "$example" ] && [ ! -f "examples/$example/demo.sh" ]; then
		die "no example $example; there are: $(cd examples && ls */demo.sh | sed 's,/demo.sh,,' | tr '\n' ' ')"
	fi
	build
	trap on_signal INT TERM
	trap stop_all EXIT
	if [ -n "$example" ]; then
		run_example "$example"
	else
		start_services
		enqueue_examples
		show_results
		print_next_steps
	fi
	# Runs until Ctrl-C, or until a service exits on its own.
	wait -n "${PIDS[@]}" || true
	echo "quickstart: a service exited; see the logs in $DATA" >&2
	stop_all
	exit 1
}

main "$@"
