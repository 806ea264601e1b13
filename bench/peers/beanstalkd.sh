#!/usr/bin/env bash
# Runs one workload against a fresh beanstalkd on 127.0.0.1 and prints the
# bench line.
#
#   bench/peers/beanstalkd.sh fsync-always|fsync-50ms|memory A|B
#
# fsync-always is -b DIR -f 0 (fsync on every binlog write); fsync-50ms is
# -b DIR alone, beanstalkd's default of one fsync at most every 50 ms (a
# crash may lose the last 50 ms of confirmed puts); memory has no binlog
# (a restart loses every job), beanstalkd at its fastest. Run install.sh
# first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage="usage: beanstalkd.sh fsync-always|fsync-50ms|memory A|B"
mode=${1:?$usage}
workload=${2:?$usage}
nqb_mktemp
dir=$NQB_TMP
case $mode in
fsync-always) store=(-b "$dir/binlog" -f 0) ;;
fsync-50ms) store=(-b "$dir/binlog") ;;
memory) store=() ;;
*) nqb_log "unknown beanstalkd mode '$mode' (fsync-always, fsync-50ms, memory)"; exit 2 ;;
esac
case $workload in
A) load=(--jobs "$(nqb_client_jobs)" --batch "$NQB_A_BATCH") ;;
B) load=(--rate "$NQB_B_RATE" --duration-ms "$((NQB_B_SECONDS * 1000))"
	--batch 1 --producers "$NQB_B_PRODUCERS") ;;
*) nqb_log "unknown workload '$workload' (A, B)"; exit 2 ;;
esac

client=$NQB_CACHE/beanstalk_bench
[ -x "$client" ] || { nqb_log "$client missing: run bench/peers/install.sh"; exit 1; }
mkdir -p "$dir/binlog"
port=$(nqb_free_port)
nqb_start "$dir/beanstalkd.log" beanstalkd -l 127.0.0.1 -p "$port" "${store[@]}"
pid=$NQB_LAST_PID
nqb_wait_port "$port" beanstalkd
# One beanstalkd connection serves one reserve at a time: --concurrency
# connections per worker process.
nqb_run_server "$pid" --tube "$client" --port "$port" --workers "$NQB_WORKERS" \
	--concurrency "$NQB_BS_CONCURRENCY" --payload-size "$NQB_PAYLOAD" \
	--max-time-ms "$((NQB_RUN_TIMEOUT * 1000))" "${load[@]}"
