#!/usr/bin/env bash
# What the deployment must allow for, measured on the image as deployed:
#
#   bench/deploy.sh [JOBS]      (default 1,000,000; root, podman)
#
# - the image's size (goal: under 100 MB);
# - the broker's time from container start to /readyz 200 with JOBS ready
#   jobs in its store (what the startup probe must allow), its memory
#   then, and how long a SIGTERM stop takes (terminationGracePeriodSeconds);
# - the broker's CPU and peak memory through workload A (NQ_BENCH_A_JOBS
#   no-op jobs, 4 workers), what its resource requests are sized from.
#
# The image is NQ_DEPLOY_TAG (default localhost/nq:dev), built first by
# deploy/container/build.sh when missing; nq-bench and nqctl come from
# NQ_BUILD_DIR (default build). With NQ_BENCH_COLD=1 the page cache is
# dropped before the second start (as on a node that just took the pod),
# which slows the whole machine for a moment. Prints one line:
#
#   bench deploy image_mb=S jobs=N store_mib=D cold=0|1 start_to_ready_s=T ready_rss_mib=R ready_anon_mib=H stop_s=P a_jobs=J a_cpu_s=C a_peak_rss_mib=M
set -euo pipefail
. "$(dirname "$0")/peers/lib.sh"
jobs=${1:-1000000}
tag=${NQ_DEPLOY_TAG:-localhost/nq:dev}
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$NQB_ROOT/$build
bench=$build/bench/nq-bench nqctl=$build/client/nqctl/nqctl
for b in "$bench" "$nqctl"; do
	[ -x "$b" ] || { nqb_log "$b missing: build nq first (./test.sh configure build)"; exit 1; }
done
podman image exists "$tag" || "$NQB_ROOT/deploy/container/build.sh" "$tag" >&2
image_mb=$(($(podman image inspect --format '{{.Size}}' "$tag") / 1000000))

nqb_mktemp
dir=$NQB_TMP
mkdir -p "$dir/vol"
chown 10001:10001 "$dir/vol"
# Ports below the kernel's range for outgoing connections: the broker is
# started twice on the same ones.
port=$((20000 + RANDOM % 9000))
api=tcp://127.0.0.1:$port work=tcp://127.0.0.1:$((port + 1))
results=tcp://127.0.0.1:$((port + 2)) http=127.0.0.1:$((port + 3))
name=nqbench-deploy-$$
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
trap '"${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true; nqb_cleanup' EXIT

start_broker() {
	"${podman[@]}" run -d --name "$name" --network=host \
		--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		-v "$dir/vol:/var/lib/nq" "$tag" nq-broker --api "$api" \
		--work "$work" --results "$results" --events "" --http "$http" \
		--dlq "" --data-dir /var/lib/nq/data --log-level warn >/dev/null
}
wait_ready() {
	for _ in $(seq 12000); do
		curl -sf "http://$http/readyz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	nqb_log "the broker never turned ready"; exit 1
}
broker_pid() { "${podman[@]}" inspect --format '{{.State.Pid}}' "$name"; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
status_mib() { awk -v k="$2:" '$1 == k {printf "%d", $2 / 1024}' "/proc/$1/status"; }
now() { date +%s.%N; }
stop_broker() {
	local t0
	t0=$(now)
	"${podman[@]}" stop -t 60 "$name" >/dev/null
	"${podman[@]}" rm "$name" >/dev/null
	echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}'
}

# Workload A against the broker in its container: CPU and peak memory.
start_broker
wait_ready
pid=$(broker_pid)
cpu0=$(cpu_s "$pid")
"$bench" --api "$api" --work "$work" --results "$results" \
	--jobs "$NQB_A_JOBS" --batch "$NQB_A_BATCH" --workers "$NQB_WORKERS" \
	--concurrency "$NQB_NQ_CONCURRENCY" --payload-size "$NQB_PAYLOAD" \
	--broker-pid "$pid" --max-time "${NQB_RUN_TIMEOUT}s" >"$dir/a.txt"
a_cpu=$(echo "$(cpu_s "$pid") $cpu0" | awk '{printf "%.2f", $1 - $2}')
a_rss=$(sed -n 's/.*broker_peak_rss_mib=\([0-9.]*\).*/\1/p' "$dir/a.txt")
nqb_log "workload A: $(cat "$dir/a.txt")"

# JOBS ready jobs in a paused queue (nq-bench's side queue), then a stop
# and a start on the same volume.
"$nqctl" --api "$api" pause fill >/dev/null
"$bench" --api "$api" --work "$work" --results "$results" --jobs 1000 \
	--batch 1000 --workers 1 --side-queue fill --side-jobs "$jobs" \
	--max-time "${NQB_RUN_TIMEOUT}s" >/dev/null
stop_s=$(stop_broker)
store_mib=$(($(stat -c %s "$dir/vol/data/data.mdb") / 1048576))
cold=${NQ_BENCH_COLD:-0}
if [ "$cold" = 1 ]; then
	sync
	echo 3 >/proc/sys/vm/drop_caches
fi
t0=$(now)
start_broker
wait_ready
ready_s=$(echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}')
pid=$(broker_pid)
ready=$("$nqctl" --api "$api" --json stats fill | tr -d ' \n' |
	sed -n 's/.*"ready":\([0-9]*\).*/\1/p')
[ "$ready" = "$jobs" ] || { nqb_log "the store held $ready ready jobs, not $jobs"; exit 1; }
echo "bench deploy image_mb=$image_mb jobs=$jobs store_mib=$store_mib cold=$cold" \
	"start_to_ready_s=$ready_s" \
	"ready_rss_mib=$(status_mib "$pid" VmRSS) ready_anon_mib=$(status_mib "$pid" RssAnon)" \
	"stop_s=$stop_s a_jobs=$NQB_A_JOBS a_cpu_s=$a_cpu a_peak_rss_mib=$a_rss"
