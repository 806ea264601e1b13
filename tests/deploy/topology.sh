#!/usr/bin/env bash
# Runs the topology of deploy/k8s from the image, each service a container
# on loopback (host network): two nq-broker shards (a and b, one shard map)
# on volumes of their own, nq-dlq on another serving both, three nq-worker
# pools of one fetching from both shards; tokens and the queues file
# mounted where the manifests mount them. Enqueues jobs to a queue of each
# shard and sees every one finish and a dead one reach nq-dlq; checks that
# every metric the alerts and the ScaledObject query is on each broker's
# /metrics; then kills broker a's container (SIGKILL) while jobs run,
# starts it again on the same volume and checks that every job the shards
# had confirmed is there and finishes.
#
#   tests/deploy/topology.sh [IMAGE]     (default localhost/nq:dev; root)
set -euo pipefail
image=${1:-localhost/nq:dev}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
# Processes here may not raise rlimits: set them at or below the current.
once=("${podman[@]}" run --rm --network=host --ulimit nofile=1024:1024
	--ulimit nproc=1024:1024)
run=("${podman[@]}" run -d --network=host --ulimit nofile=1024:1024
	--ulimit nproc=1024:1024)
# Fixed ports below the kernel's range for outgoing connections, so the
# restarted broker binds the addresses the workers keep dialing.
# Shard a's sockets are base..base+3, b's base+10..base+13: each broker's
# api, work, results and events ports follow each other, so the map names
# only the api URLs.
base=$((20000 + RANDOM % 9000))
shard_port() { case $1 in a) echo "$base" ;; b) echo $((base + 10)) ;; esac; }
bhttp_of() { echo "127.0.0.1:$(($(shard_port "$1") + 4))"; }
map="a=tcp://127.0.0.1:$base,b=tcp://127.0.0.1:$((base + 10))"
dlq=tcp://127.0.0.1:$((base + 5)) dhttp=127.0.0.1:$((base + 6))
prefix=nqtopo-$$
dir=$(mktemp -d)
names=()

log() { echo "topology: $*"; }
fail() {
	log "FAIL: $*"
	local n
	for n in "${names[@]}"; do
		echo "--- $n"
		"${podman[@]}" logs --tail 20 "$n" 2>&1 || true
	done
	exit 1
}
cleanup() {
	local n
	for n in "${names[@]}"; do
		"${podman[@]}" rm -f -t 0 "$n" >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir"/broker-a "$dir"/broker-b "$dir"/dlq "$dir"/secret
for role in producer worker admin dlq; do
	echo "topology-$role-$RANDOM$RANDOM" >"$dir/secret/$role"
done
cp "$dir/secret/worker" "$dir/secret/worker-token"
cp "$dir/secret/dlq" "$dir/secret/dlq-token"
chown -R 10001:10001 "$dir"/broker-a "$dir"/broker-b "$dir"/dlq
chmod 0444 "$dir"/secret/*
secret=(-v "$dir/secret:/etc/nq/secret:ro")
queues=(-v "$root/deploy/k8s/base/queues.yaml:/etc/nq/queues/queues.yaml:ro")

# Runs nqctl from the image against the broker and nq-dlq as an admin.
nqctl() {
	"${once[@]}" "${secret[@]}" "$image" \
		nqctl --brokers "$map" --dlq "$dlq" --token-file /etc/nq/secret/admin "$@"
}

wait_ready() {
	local addr=$1 i
	for i in $(seq 600); do
		curl -sf "http://$addr/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "$addr/readyz never answered 200"
}

# start_broker SHARD: its ids are its number modulo 64 (--shard-number).
start_broker() {
	local s=$1 p number
	p=$(shard_port "$s")
	number=$([ "$s" = a ] && echo 1 || echo 2)
	names+=("$prefix-broker-$s")
	"${run[@]}" --name "$prefix-broker-$s" -v "$dir/broker-$s:/var/lib/nq" \
		"${queues[@]}" "${secret[@]}" "$image" nq-broker \
		--api "tcp://127.0.0.1:$p" --work "tcp://127.0.0.1:$((p + 1))" \
		--results "tcp://127.0.0.1:$((p + 2))" \
		--events "tcp://127.0.0.1:$((p + 3))" --shard-number "$number" \
		--http "$(bhttp_of "$s")" --dlq "$dlq" \
		--dlq-token-file /etc/nq/secret/dlq-token \
		--data-dir /var/lib/nq/data --queues-config /etc/nq/queues/queues.yaml \
		--producer-tokens /etc/nq/secret/producer \
		--worker-tokens /etc/nq/secret/worker \
		--admin-tokens /etc/nq/secret/admin >/dev/null
	wait_ready "$(bhttp_of "$s")"
}

names+=("$prefix-dlq")
"${run[@]}" --name "$prefix-dlq" -v "$dir/dlq:/var/lib/nq" "${secret[@]}" \
	"$image" nq-dlq --listen "$dlq" --brokers "$map" --http "$dhttp" \
	--data-dir /var/lib/nq/data --producer-tokens /etc/nq/secret/dlq \
	--admin-tokens /etc/nq/secret/admin >/dev/null
wait_ready "$dhttp"
start_broker a
start_broker b
# A queue of each shard, as the map places them.
read -r qa qb < <("${once[@]}" "$image" nqctl --brokers "$map" --json shard \
	default emails reports images billing search |
	python3 -c 'import json, sys
s = json.load(sys.stdin)
print(next(r["queue"] for r in s if r["shard"] == "a"),
      next(r["queue"] for r in s if r["shard"] == "b"))')
[ -n "$qa" ] && [ -n "$qb" ] || fail "no queue of each shard"
log "queue $qa is on shard a, $qb on shard b"
for i in 1 2 3; do
	names+=("$prefix-worker-$i")
	"${run[@]}" --name "$prefix-worker-$i" "${secret[@]}" "$image" nq-worker \
		--brokers "$map" --queues "$qa,$qb" --concurrency 4 \
		--http "127.0.0.1:$((base + 6 + i))" --grace 5s \
		--token-file /etc/nq/secret/worker-token \
		--handler 'quick=cat >/dev/null' --handler 'slow=sleep 0.2' \
		--handler 'doomed=echo no such user >&2; exit 65' >/dev/null
	wait_ready "127.0.0.1:$((base + 6 + i))"
done
log "2 broker shards, nq-dlq and 3 workers up from $image (ports $base-$((base + 14)))"

# Enqueues COUNT jobs of TYPE from one container, to the queues of both
# shards in turn; prints the confirmed ids.
enqueue() {
	"${once[@]}" "${secret[@]}" "$image" sh -c '
		for i in $(seq "$1"); do
			q=$4; [ $((i % 2)) = 0 ] && q=$5
			nqctl --brokers "$2" --token-file /etc/nq/secret/producer \
				enqueue "$q" "$3" --payload "{\"n\":$i}" || exit 1
		done' sh "$1" "$map" "$2" "$qa" "$qb"
}

# Waits until every id in file $1 has state $2 (checked in one container).
wait_state() {
	local ids=$1 want=$2 i left
	for i in $(seq 120); do
		left=$("${once[@]}" "${secret[@]}" \
			-v "$ids:/ids:ro" "$image" sh -c '
			n=0
			while read -r id; do
				nqctl --brokers "$1" --token-file /etc/nq/secret/admin --json \
					get "$id" | grep -q "\"state\": *\"$2\"" || n=$((n + 1))
			done </ids
			echo $n' sh "$map" "$want")
		[ "$left" = 0 ] && return 0
		sleep 1
	done
	fail "$left jobs of $ids never reached $want"
}

enqueue 200 quick >"$dir/quick.ids"
[ "$(wc -l <"$dir/quick.ids")" = 200 ] || fail "enqueue confirmed $(wc -l <"$dir/quick.ids") of 200"
enqueue 1 doomed >"$dir/doomed.ids"
wait_state "$dir/quick.ids" succeeded
log "200 jobs succeeded"
# Each shard ran its own queue's jobs.
for s in a b; do
	q=$([ "$s" = a ] && echo "$qa" || echo "$qb")
	n=$(curl -sf "http://$(bhttp_of "$s")/metrics" |
		awk -v q="$q" '$1 ~ /^nq_jobs_succeeded_total\{/ && index($1, "queue=\"" q "\"") {n += $2} END {print n + 0}')
	[ "$n" -ge 100 ] || fail "shard $s ran $n jobs of $q, not 100"
	log "shard $s ran $n jobs of queue $q"
done
doomed=$(cat "$dir/doomed.ids")
for i in $(seq 100); do
	nqctl dlq show "$doomed" >/dev/null 2>&1 && break
	[ "$i" = 100 ] && fail "dead job $doomed never reached nq-dlq"
	sleep 0.2
done
log "dead job $doomed is in nq-dlq"

# The alerts and the autoscaler ask for metrics the broker really exports,
# in an exposition promtool takes.
for s in a b; do
	curl -sf "http://$(bhttp_of "$s")/metrics" >"$dir/metrics"
	promtool check metrics <"$dir/metrics" || fail "promtool check metrics fails"
	for m in $(grep -ho 'nq_[a-z_]*' "$root/deploy/alerts/nq.rules.yml" \
		"$root/deploy/k8s/autoscaling/keda/scaledobject.yaml" | sort -u); do
		grep -q "^$m[{ ]" "$dir/metrics" || fail "broker $s exports no $m"
	done
done
log "every metric the alerts and the ScaledObject use is on each broker's /metrics"

# Kill the broker while the workers run jobs: 300 slow jobs take the 12
# slots about 5 s.
enqueue 300 slow >"$dir/slow.ids"
[ "$(wc -l <"$dir/slow.ids")" = 300 ] || fail "enqueue confirmed $(wc -l <"$dir/slow.ids") of 300"
sleep 1
"${podman[@]}" kill --signal KILL "$prefix-broker-a" >/dev/null
"${podman[@]}" rm -f "$prefix-broker-a" >/dev/null
names=("${names[@]/$prefix-broker-a/}")
log "broker a killed with jobs running; starting it again on its volume"
rm -f "$dir/broker-a/ready"
start_broker a
wait_state "$dir/slow.ids" succeeded
wait_state "$dir/quick.ids" succeeded
log "all 500 confirmed jobs there and succeeded after the restart: none lost"
for i in 1 2 3; do
	n=$(curl -sf "http://127.0.0.1:$((base + 6 + i))/metrics" |
		awk '/^nq_worker_jobs_total/ {n += $2} END {print n + 0}')
	[ "$n" -gt 0 ] || fail "worker $i ran no job"
	log "worker $i ran $n jobs"
done
echo "topology: ok"
