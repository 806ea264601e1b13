#!/bin/bash
# make-store.sh BUILD_DIR OUT_DIR: writes the store fixture of this release.
#
# Runs today's nq-broker, nq-dlq, nq-worker and nqctl (from BUILD_DIR) on
# ipc:// sockets in a temp dir and leaves a job in every state: ready (one
# with a unique key, one with an idempotency key), scheduled, leased when
# the broker is killed, succeeded with a result, dead and held by nq-dlq,
# dead and not yet handed over, canceled, waiting on a parent, a cron
# schedule's job and its state; a paused queue and a policy value set at run
# time. Then it SIGKILLs the broker and the worker mid-lease and writes into
# OUT_DIR both stores compacted (mdb_copy -c), the queues file they ran
# with, jobs.json: each job as `nqctl get --json` showed it just before
# the kill, by its role, cron.json (`cron list`) and dlq.json (`dlq show`
# of the dead job nq-dlq holds). test_store_upgrade opens a copy of OUT_DIR.
#
# Run it once per store format, into tests/fixtures/store-<name>/ (HACKING.md,
# "A store format change"); never over a committed fixture.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUT_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
out=$2
[ ! -e "$out" ] || { echo "$out exists: a committed fixture stays" >&2; exit 2; }
tmp=$(mktemp -d)
declare -A pid job # by daemon name; job ids by role
cleanup() {
	for p in "${pid[@]}"; do kill -9 -- "-$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

api=ipc://$tmp/api.sock
dlq=ipc://$tmp/dlq.sock
ctl() { "$build/client/nqctl/nqctl" --api "$api" --dlq "$dlq" "$@"; }
# Starts a daemon in its own process group (setsid execs it in place:
# $! is its pid and its group), logging to $tmp/NAME.log.
spawn() {
	name=$1
	shift
	setsid "$@" >"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
}
# Polls CMD until it succeeds, at most 20 s.
until_ok() {
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 200 ] || { echo "timed out: $*" >&2; tail "$tmp"/*.log >&2; exit 1; }
		sleep 0.1
	done
}
state_is() { ctl --json get "$1" | grep -q "\"state\": *\"$2\""; }
pending_is() { ctl --json stats up-dead | grep -q "\"dead_pending\": *$1[,}]"; }

# A schedule that ticks once, a few seconds from now (and again a year
# later, skipped when missed): its state is a real tick and its job.
at=$(date -u -d @$(($(date +%s) + 4)) '+%S %M %H %d %m')
cat >"$tmp/queues.yaml" <<YAML
schedules:
  up-tick:
    cron: "$at *"
    zone: UTC
    queue: up-cron
    type: tick
    missed: skip
YAML

spawn dlq "$build/dlq/nq-dlq" --listen "$dlq" --broker "$api" \
	--data-dir "$tmp/dlq" --http ""
spawn broker "$build/broker/nq-broker" --api "$api" --work "ipc://$tmp/work.sock" \
	--results "ipc://$tmp/results.sock" --events "" --http "" --dlq "$dlq" \
	--data-dir "$tmp/broker" --queues-config "$tmp/queues.yaml" \
	--result-ttl 876000h --idempotency-window 876000h
until_ok ctl stats
until_ok ctl dlq stats

ctl queue set up-ready max_attempts=4 >/dev/null
ctl pause up-paused >/dev/null
job[ready1]=$(ctl enqueue up-ready echo --payload '{"n":1}')
job[ready2]=$(ctl enqueue up-ready echo --priority 5 --unique-key up-key \
	--unique-scope queued)
job[ready3]=$(ctl enqueue up-ready echo --idempotency-key up-idem)
job[scheduled]=$(ctl enqueue up-sched echo --at 2099-01-01T00:00:00Z)
job[canceled]=$(ctl enqueue up-sched echo --at 2099-01-01T00:00:00Z)
ctl cancel "${job[canceled]}" >/dev/null
job[parent]=$(ctl enqueue up-paused echo --payload '{"parent":true}')
job[waiting]=$(ctl enqueue up-ready echo --after "${job[parent]}")
job[leased]=$(ctl enqueue up-lease sleep)
job[succeeded]=$(ctl enqueue up-done echo --payload '{"n":2}')
job[in_dlq]=$(ctl enqueue up-dead fail --max-attempts 1)

spawn worker "$build/worker/nq-worker" --work "ipc://$tmp/work.sock" \
	--results "ipc://$tmp/results.sock" --queues up-lease,up-done,up-dead \
	--handler 'sleep=exec sleep 600' --handler 'echo=printf result-42' \
	--handler 'fail=echo broken >&2; exit 3' --concurrency 4 --http ""
until_ok state_is "${job[succeeded]}" succeeded
until_ok state_is "${job[leased]}" leased
until_ok state_is "${job[in_dlq]}" dead
until_ok ctl dlq show "${job[in_dlq]}"
mkdir -p "$tmp/out"
ctl --json dlq show "${job[in_dlq]}" >"$tmp/out/dlq.json"

# nq-dlq stops: the next dead job waits in the broker's handoff.
kill -TERM "${pid[dlq]}"
wait "${pid[dlq]}" || true
job[pending]=$(ctl enqueue up-dead fail --max-attempts 1)
until_ok state_is "${job[pending]}" dead
until_ok pending_is 1
ticked() { ctl --json cron list | grep -q '"last_job_id":"'; }
until_ok ticked
job[tick]=$(ctl --json cron list | sed -n 's/.*"last_job_id":"\([0-9a-f]*\)".*/\1/p')

{
	printf '{\n'
	sep=""
	for role in ready1 ready2 ready3 scheduled canceled parent waiting \
		leased succeeded in_dlq pending tick; do
		printf '%s"%s": ' "$sep" "$role"
		ctl --json get "${job[$role]}"
		sep=","
	done
	printf '}\n'
} >"$tmp/out/jobs.json"
ctl --json cron list >"$tmp/out/cron.json"

kill -9 -- "-${pid[broker]}" "-${pid[worker]}"
mkdir -p "$out/broker" "$out/dlq"
mdb_copy -c "$tmp/broker" "$out/broker"
mdb_copy -c "$tmp/dlq" "$out/dlq"
cp "$tmp/queues.yaml" "$tmp"/out/*.json "$out/"
ls -l "$out" "$out/broker" "$out/dlq"
