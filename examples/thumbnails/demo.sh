# Sourced by ./quickstart.sh thumbnails (which defines start, say, ctl,
# DATA, WORKER, NQCTL and PYTHON): the broker deletes blobs in
# $DATA/blobs, a pool of two slots for the thumbnails queue, the upload
# service on 127.0.0.1:7491 watching $DATA/drop, a few images sent.
# shellcheck shell=bash
EXAMPLE_PORTS=(7491)
mkdir -p "$DATA/blobs"
EXAMPLE_BROKER_ARGS=(--blob-dir "$DATA/blobs")

example_start() {
	local ex=$1
	start pool "$WORKER" --queues thumbnails --concurrency 2 --http 127.0.0.1:7482 \
		--handler "image.thumbnail=$PYTHON '$ex/thumbnail.py' --thumbs '$DATA/thumbs'"
	start uploads "$PYTHON" "$ex/upload.py" --listen 127.0.0.1:7491 \
		--nq http://127.0.0.1:7480 --blob-dir "$DATA/blobs" --thumbs "$DATA/thumbs" \
		--drop "$DATA/drop"
	wait_for_port 7491
}

THUMB_JOBS=()

# Uploads image $2 as user $1 with curl -F.
upload() {
	local answer
	echo "\$ curl -s -F user=$1 -F image=@$2 127.0.0.1:7491/uploads" >&2
	answer=$(curl -s -F "user=$1" -F "image=@$2" 127.0.0.1:7491/uploads)
	echo "$answer"
	THUMB_JOBS+=("$(printf '%s' "$answer" | sed -n 's/.*"job_id": *"\([0-9a-f]*\)".*/\1/p')")
}

example_demo() {
	local s=$DATA/samples id f convert
	convert=$(command -v convert-im6.q16 || command -v convert)
	mkdir -p "$s" "$DATA/drop/bob"
	"$convert" -size 1600x1200 gradient:navy-orange -swirl 120 "$s/sunset.jpg"
	"$convert" -size 600x900 gradient:green-yellow "$s/tall.png"
	"$convert" -size 300x200 gradient:purple-white "$s/small.webp"
	{ head -c 33 "$s/tall.png"; head -c 4000 /dev/urandom; } >"$s/broken.png"
	say "uploading four images, one of them corrupt: each answered at once"
	upload ada "$s/sunset.jpg"
	upload ada "$s/tall.png"
	upload grace "$s/small.webp"
	upload grace "$s/broken.png"
	say "a file dropped into $DATA/drop/bob/ is uploaded too"
	cp "$s/sunset.jpg" "$DATA/drop/bob/.part" && mv "$DATA/drop/bob/.part" "$DATA/drop/bob/sunset.jpg"
	sleep 1.5
	ls "$DATA/drop/bob/.sent"
	say "waiting for the pool (nqctl wait ID)"
	for id in "${THUMB_JOBS[@]}"; do
		"$NQCTL" wait "$id" >/dev/null 2>&1 || true
		printf '%s  ' "$id"
		"$NQCTL" get "$id" | sed -n 's/^state: //p'
	done
	say "the thumbnails ($DATA/thumbs/JOB/)"
	for f in "$DATA"/thumbs/*/*.png; do
		"$convert" "$f" -format "%d: %f %wx%h\n" info: | sed "s,$DATA/thumbs/,,"
	done
	say "the corrupt image went to nq-dlq at once, with the reason"
	sleep 0.5 # the handoff to nq-dlq takes a moment
	ctl dlq show "${THUMB_JOBS[3]}" || true
}

example_next_steps() {
	local NQCTL="./${BUILD#"$ROOT"/}/client/nqctl/nqctl" DATA=".nq-data/${DATA##*/}"
	cat <<EOT

$(say "uploads are open")
Upload (the user is the job's group_key: fairness takes turns between users):
  curl -s -F user=you -F image=@photo.jpg 127.0.0.1:7491/uploads
  mkdir -p $DATA/drop/you && cp photo.jpg $DATA/drop/you/   # a drop, as user "you"
Look:
  $NQCTL stats thumbnails     $NQCTL dlq list --queue thumbnails
  ls $DATA/thumbs
Press Ctrl-C to stop the upload service, the pool, the broker and nq-dlq.
EOT
}
