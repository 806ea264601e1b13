#!/usr/bin/env bash
# Checks the image as shipped, beyond what topology.sh runs: its labels,
# that every service starts as the non-root user (the image carries only
# the libraries the base lacks, so a missing one shows here), and that its
# trimmed ICU data (deploy/container/icu-data.txt) still answers the cron:
#
# - the broker from the image, with a queues file of per-second schedules
#   in America/New_York and Australia/Lord_Howe, enqueues their ticks;
# - when the host's build has the cron tests (NQ_BUILD_DIR, default build),
#   they run against the image's libicudata: test_cron, the check against
#   croniter (cron_diff.py, when python3-croniter is there) and every zone
#   of the host's tzdata, whose next ticks must be those of Debian's whole
#   ICU data.
#
#   tests/deploy/image.sh [IMAGE]     (default localhost/nq:dev; root)
set -euo pipefail
image=${1:-localhost/nq:dev}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${NQ_BUILD_DIR:-build}
[[ $build = /* ]] || build=$root/$build
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
once=("${podman[@]}" run --rm --network=host --ulimit nofile=1024:1024
	--ulimit nproc=1024:1024)
name=nqimage-$$
dir=$(mktemp -d)
log() { echo "image: $*"; }
fail() {
	log "FAIL: $*"
	"${podman[@]}" logs --tail 20 "$name" 2>&1 || true
	exit 1
}
cleanup() {
	"${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

want=$(sed -n 's/^project(nq VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
got=$(podman image inspect --format \
	'{{index .Config.Labels "org.opencontainers.image.version"}}' "$image")
[ "$got" = "$want" ] || fail "version label $got, not $want"
user=$("${once[@]}" "$image" id -u)
[ "$user" = 10001 ] || fail "the image runs as uid $user, not 10001"
for s in nq-broker nq-dlq nq-worker nqctl; do
	"${once[@]}" "$image" "$s" --help >/dev/null 2>&1 || fail "$s --help fails in the image"
done
log "version $got, uid $user, every service starts"

# Ports below the kernel's range for outgoing connections.
port=$((20000 + RANDOM % 9000))
api=tcp://127.0.0.1:$port
cat >"$dir/queues.yaml" <<'EOF'
schedules:
  east: { cron: "* * * * * *", zone: America/New_York, queue: tick, type: east }
  howe: { cron: "* * * * * *", zone: Australia/Lord_Howe, queue: tick, type: howe }
EOF
chmod 0644 "$dir/queues.yaml"
"${podman[@]}" run -d --name "$name" --network=host --ulimit nofile=1024:1024 \
	--ulimit nproc=1024:1024 -v "$dir/queues.yaml:/etc/nq/queues.yaml:ro" \
	"$image" nq-broker --api "$api" --work "tcp://127.0.0.1:$((port + 1))" \
	--results "tcp://127.0.0.1:$((port + 2))" --events "" --http "" --dlq "" \
	--data-dir /var/lib/nq/data --queues-config /etc/nq/queues.yaml >/dev/null
ready=0
for _ in $(seq 60); do
	[ "$("${podman[@]}" inspect --format '{{.State.Running}}' "$name")" = true ] ||
		fail "the broker with schedules in zones stopped"
	ready=$("${once[@]}" "$image" nqctl --api "$api" --json stats tick 2>/dev/null |
		tr -d ' \n' | sed -n 's/.*"ready":\([0-9]*\).*/\1/p' || true)
	[ "${ready:-0}" -ge 4 ] && break
	sleep 0.5
done
[ "${ready:-0}" -ge 4 ] || fail "the schedules in zones enqueued ${ready:-0} jobs, not 4"
log "the broker's schedules in America/New_York and Australia/Lord_Howe tick ($ready jobs)"

next=$build/tests/cron/cron_next
if [ ! -x "$next" ] || [ ! -x "$build/tests/cron/test_cron" ]; then
	log "SKIPPED the cron tests on the image's ICU data: no $next (build nq first)"
	exit 0
fi
# The image's libicudata, put where the host's loader takes it first.
lib=$("${once[@]}" "$image" sh -c "ldconfig -p | awk '/libicudata/ {print \$NF; exit}'")
"${podman[@]}" create --name "$name-cp" "$image" >/dev/null
"${podman[@]}" cp "$name-cp:$lib" "$dir/" >/dev/null
"${podman[@]}" rm "$name-cp" >/dev/null
export LD_LIBRARY_PATH=$dir
[[ $(ldd "$next") = *"$dir/libicudata"* ]] ||
	fail "cron_next does not take the image's libicudata"
"$build/tests/cron/test_cron" >"$dir/test_cron.txt" 2>&1 || {
	cat "$dir/test_cron.txt"
	fail "test_cron fails on the image's ICU data"
}
if /usr/bin/python3 -c 'import croniter' 2>/dev/null; then
	/usr/bin/python3 "$root/tests/cron/cron_diff.py" "$next" | tail -1 ||
		fail "cron_diff.py fails on the image's ICU data"
else
	log "SKIPPED cron_diff.py: python3-croniter is not installed"
fi
# Every zone name of tzdata, at three instants: the same next tick (or
# the same refusal) as with Debian's whole data.
(cd /usr/share/zoneinfo && find . -type f -o -type l) | sed 's|^\./||' |
	grep -v '^posix/\|^right/\|\.tab$\|^leap\|^tzdata\|^SECURITY\|^iso3166' |
	while read -r z; do
		for t in 946684800 1700000000 2000000000; do
			printf '0 30 2 * 3 *\t%s\t%s\n' "$z" "$t"
		done
	done >"$dir/zones.txt"
"$next" <"$dir/zones.txt" >"$dir/image.out"
LD_LIBRARY_PATH='' "$next" <"$dir/zones.txt" >"$dir/debian.out"
cmp -s "$dir/image.out" "$dir/debian.out" ||
	fail "next ticks differ from Debian's ICU data: $(diff "$dir/image.out" "$dir/debian.out" | head -5)"
log "test_cron, cron_diff.py and $(($(wc -l <"$dir/zones.txt") / 3)) zones agree on the image's ICU data"
echo "image: ok"
