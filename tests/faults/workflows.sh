# shellcheck shell=bash
# The workflows scenario (sourced by tests/faults/run): beside the usual
# load, `faultsim workflows` (tests/faults/workflows.c) enqueues sealed
# batches with on_success and on_complete callbacks and chains of five
# links to the queue wf, runs them on its own worker and, once the load
# is done, waits for every one of them and checks: each callback enqueued
# exactly once (on_success only for a batch with no failed job), the
# batch's counts right, no child started before its parent ended, no job
# left waiting. The broker is SIGKILLed meanwhile; the process itself is
# never hit.

WF_PID=""

# wf_start SECONDS: the workflows process, for as long as the load runs.
wf_start() {
	"$FS" workflows --api "$API" --work "$WORK" --results "$RES" \
		--duration-ms $(($1 * 1000)) >"$D/workflows.log" 2>&1 &
	WF_PID=$!
}

# wf_wait: its verdict; a failure fails the scenario.
wf_wait() {
	[ -n "$WF_PID" ] || return 0
	wait "$WF_PID" || bad "workflows: $(tail -n 1 "$D/workflows.log")"
	WF_PID=""
	say "$(tail -n 1 "$D/workflows.log")"
}
