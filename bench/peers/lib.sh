# shellcheck shell=bash disable=SC2034
# Sourced by the bench scripts: the workloads, free loopback ports, servers
# started in the background and always stopped again, and runs bounded in
# time. Every server binds 127.0.0.1 only.

NQB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Where the peers' clients are built and BullMQ is installed: outside the
# source tree, so that node_modules never lands in a commit.
NQB_CACHE=${NQ_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nq-bench}
# The longest one run of one system may take, in seconds.
NQB_RUN_TIMEOUT=${NQ_BENCH_RUN_TIMEOUT:-300}

# Workload A, throughput: 100,000 no-op jobs of 100 bytes, one producer
# sending batches, 4 worker processes.
NQB_A_JOBS=${NQ_BENCH_A_JOBS:-100000}
NQB_A_BATCH=${NQ_BENCH_A_BATCH:-1000}
NQB_WORKERS=${NQ_BENCH_WORKERS:-4}
NQB_PAYLOAD=100
# Jobs each worker process runs at once, per system, each at the setting
# that gave it the most end-to-end jobs/s on a 2-core machine (tried: 16,
# 64, 256 slots; 1, 4, 16 connections). nq: handler slots of libnq's
# worker; BullMQ: the Worker's concurrency; beanstalkd serves one reserve
# per connection at a time, so its workers hold this many connections (one
# thread each).
NQB_NQ_CONCURRENCY=${NQ_BENCH_NQ_CONCURRENCY:-1024}
NQB_BULLMQ_CONCURRENCY=${NQ_BENCH_BULLMQ_CONCURRENCY:-64}
NQB_BS_CONCURRENCY=${NQ_BENCH_BS_CONCURRENCY:-4}
# Workload B, latency: 1,000 jobs/s for 10 s, one job per enqueue, sent by
# NQB_B_PRODUCERS connections so that no system falls behind the schedule
# while one enqueue waits for its fsync.
NQB_B_RATE=${NQ_BENCH_B_RATE:-1000}
NQB_B_SECONDS=${NQ_BENCH_B_SECONDS:-10}
NQB_B_PRODUCERS=${NQ_BENCH_B_PRODUCERS:-4}

NQB_PIDS=()
NQB_TMP=""

nqb_log() {
	echo "bench: $*" >&2
}

# Makes NQB_TMP a fresh temp dir for this script's servers, removed on
# exit. Not to be called in $(...): the variable must reach this shell.
nqb_mktemp() {
	if [ -z "$NQB_TMP" ]; then
		NQB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/nq-bench.XXXXXX")
	fi
}

# Stops every server this script started (by pid, never by name) and
# removes the temp dir.
nqb_cleanup() {
	local pid
	for pid in "${NQB_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${NQB_PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	NQB_PIDS=()
	if [ -n "$NQB_TMP" ]; then
		rm -rf "$NQB_TMP"
		NQB_TMP=""
	fi
}
trap nqb_cleanup EXIT
trap 'exit 130' INT TERM

# Stops one server started with nqb_start.
nqb_stop() {
	local pid=$1 keep=() p
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${NQB_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	NQB_PIDS=("${keep[@]}")
}

nqb_port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a loopback TCP port that nothing listens on, below the kernel's
# range of ports for outgoing connections: a port in that range may be the
# local end of some connection at the moment a server binds it. A server's
# ports are all picked before it binds one, so the ports handed out are
# kept in $NQB_TMP/ports and never handed out twice.
nqb_free_port() {
	local p lo=32768 given=${NQB_TMP:+$NQB_TMP/ports}
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	[ "$lo" -gt 21000 ] 2>/dev/null || lo=32768
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % (lo - 20000)))
		[ -z "$given" ] || ! grep -qx "$p" "$given" 2>/dev/null || continue
		if ! nqb_port_open "$p"; then
			[ -z "$given" ] || echo "$p" >>"$given"
			echo "$p"
			return 0
		fi
	done
	nqb_log "found no free port"
	return 1
}

# Waits up to 10 s until something listens on the port.
nqb_wait_port() {
	local port=$1 what=$2
	for _ in $(seq 200); do
		nqb_port_open "$port" && return 0
		sleep 0.05
	done
	nqb_log "$what does not listen on 127.0.0.1:$port after 10 s"
	local log
	for log in "$NQB_TMP"/*.log; do
		[ -f "$log" ] && tail -n 5 "$log" | sed "s|^|bench: ${log##*/}: |" >&2
	done
	return 1
}

# nqb_start LOG CMD...: starts a server in the background with its output
# in LOG; its pid goes to NQB_LAST_PID and into the cleanup list.
nqb_start() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	NQB_LAST_PID=$!
	NQB_PIDS+=("$NQB_LAST_PID")
}

# How many client processes run one workload at once (NQ_BENCH_CLIENTS,
# default 1), each on its own queue with its share of the jobs: a second
# client that raises the rate shows that one client did not drive the
# server at its limit.
NQB_CLIENTS=${NQ_BENCH_CLIENTS:-1}

# A's job count for one of NQB_CLIENTS clients.
nqb_client_jobs() {
	echo $(((NQB_A_JOBS + NQB_CLIENTS - 1) / NQB_CLIENTS))
}

# CPU time (user + system, in clock ticks) a process has used so far.
nqb_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# nqb_run_server PID QUEUE_FLAG CMD...: runs NQB_CLIENTS copies of the
# bench client CMD at once, the i-th with "QUEUE_FLAG bench-i" added, and
# prints one bench line: jobs and rates summed, latencies of the first
# client, clients=N and server_cpu_pct, the share of one core the server
# PID used per second of the run (its CPU time over jobs / e2e_per_s: the
# clients' start and stop take no server time worth counting).
nqb_run_server() {
	local pid=$1 flag=$2 i c0 c1 line lines=() outs=() clients=() rc=0
	shift 2
	c0=$(nqb_cpu_ticks "$pid")
	for i in $(seq "$NQB_CLIENTS"); do
		outs+=("$(mktemp "${TMPDIR:-/tmp}/nq-bench-client.XXXXXX")")
		nqb_run "$@" "$flag" "bench-$i" >"${outs[-1]}" &
		clients+=($!)
	done
	for i in "${clients[@]}"; do
		wait "$i" || rc=1
	done
	c1=$(nqb_cpu_ticks "$pid")
	for i in "${outs[@]}"; do
		line=$(cat "$i")
		rm -f "$i"
		[ -n "$line" ] && lines+=("$line")
	done
	[ "$rc" = 0 ] && [ "${#lines[@]}" = "$NQB_CLIENTS" ] || return 1
	printf '%s\n' "${lines[@]}" | awk -v n="$NQB_CLIENTS" \
		-v cpu_s="$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))" '
		function field(k,   i, kv) {
			for (i = 2; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == k) return kv[2]
			}
			return ""
		}
		NR == 1 { first = $0 }
		{ jobs += field("jobs"); enq += field("enqueue_per_s"); e2e += field("e2e_per_s") }
		END {
			$0 = first
			line = "bench jobs=" jobs " enqueue_per_s=" enq " e2e_per_s=" e2e
			for (i = 2; i <= NF; i++)
				if ($i !~ /^(jobs|enqueue_per_s|e2e_per_s)=/) line = line " " $i
			pct = e2e > 0 ? cpu_s / 1000 / (jobs / e2e) * 100 : 0
			printf "%s clients=%d server_cpu_pct=%.0f\n", line, n, pct
		}'
}

# The value of key=value in a bench line, or "-".
nqb_field() {
	local v
	v=$(sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2")
	echo "${v:--}"
}

# Runs a bench client bounded by NQB_RUN_TIMEOUT and prints the last line
# that starts with "bench ", or nothing (with the client's output on
# stderr) when it failed.
nqb_run() {
	local out rc
	set +e
	out=$(timeout --kill-after=10 "$NQB_RUN_TIMEOUT" "$@" 2>&1)
	rc=$?
	set -e
	if [ "$rc" -ne 0 ] || ! grep -q '^bench ' <<<"$out"; then
		nqb_log "run failed (exit $rc): $*"
		printf '%s\n' "$out" | tail -20 >&2
		return 1
	fi
	grep '^bench ' <<<"$out" | tail -1
}
