#!/bin/sh
# nq-worker handler for jobs of type build-report: one that fails sometimes,
# to show retries with backoff.
#
# Payload (JSON on stdin): {"report":"weekly","fail_attempts":2}
# fails attempts 1..fail_attempts as if a database timed out, then succeeds.
# Without fail_attempts it fails at random, half the time. A failure exits
# 1, which counts as a failed attempt: the broker retries the job after a
# backoff (1 s, 2 s, 4 s, ... with full jitter) until max_attempts.
set -eu

payload=$(cat)
report=$(printf '%s' "$payload" |
	sed -n 's/.*"report"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
fail_attempts=$(printf '%s' "$payload" |
	sed -n 's/.*"fail_attempts"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
attempt=${NQ_ATTEMPT:-1}

if [ -n "$fail_attempts" ]; then
	fail=$([ "$attempt" -le "$fail_attempts" ] && echo 1 || echo 0)
else
	fail=$(($(od -An -N1 -tu1 /dev/urandom) % 2))
fi

sleep 0.2
if [ "$fail" -eq 1 ]; then
	echo "attempt $attempt: reports database timed out after 30s" >&2
	exit 1
fi
printf '{"report":"%s","rows":1042,"attempt":%s}\n' "${report:-daily}" "$attempt"
