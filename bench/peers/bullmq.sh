#!/usr/bin/env bash
# Runs one workload against a fresh redis-server on 127.0.0.1 with BullMQ
# and prints the bench line.
#
#   bench/peers/bullmq.sh none|aof-always A|B
#
# none: no RDB snapshots and no AOF (a restart loses every job). aof-always:
# appendonly yes, appendfsync always (Redis fsyncs the AOF before it
# replies). Run install.sh first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mode=${1:?usage: bullmq.sh none|aof-always A|B}
workload=${2:?usage: bullmq.sh none|aof-always A|B}
case $mode in
none) persist=(--save '' --appendonly no) ;;
aof-always) persist=(--save '' --appendonly yes --appendfsync always) ;;
*) nqb_log "unknown Redis mode '$mode' (none, aof-always)"; exit 2 ;;
esac
case $workload in
A) load=(--jobs "$(nqb_client_jobs)" --batch "$NQB_A_BATCH") ;;
B) load=(--rate "$NQB_B_RATE" --duration-ms "$((NQB_B_SECONDS * 1000))"
	--batch 1 --producers "$NQB_B_PRODUCERS") ;;
*) nqb_log "unknown workload '$workload' (A, B)"; exit 2 ;;
esac

script=$NQB_CACHE/bullmq/bench.mjs
[ -f "$script" ] || { nqb_log "$script missing: run bench/peers/install.sh"; exit 1; }
nqb_mktemp
dir=$NQB_TMP
port=$(nqb_free_port)
nqb_start "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$port" \
	--dir "$dir" --daemonize no "${persist[@]}"
pid=$NQB_LAST_PID
nqb_wait_port "$port" redis-server
nqb_run_server "$pid" --queue node "$script" --port "$port" --workers "$NQB_WORKERS" \
	--concurrency "$NQB_BULLMQ_CONCURRENCY" --payload-size "$NQB_PAYLOAD" \
	--max-time-ms "$((NQB_RUN_TIMEOUT * 1000))" "${load[@]}"
