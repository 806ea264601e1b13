#!/bin/sh
# nq-worker handler for jobs of type send-email.
#
# Reads the job payload as JSON on stdin, e.g.
#   {"to":"ada@example.com","subject":"Welcome"}
# and "sends" it (this example only pretends, taking a moment as a mail
# server would). The result printed on stdout is stored with the job.
#
# Exit status is the nq-worker contract: 0 success, 75 retry later,
# 65 permanent failure (no point retrying), anything else a failed attempt
# that is retried with backoff. The message on stderr is kept as the
# attempt's error.
set -eu

payload=$(cat)

# A field of a flat JSON object; enough for this example, without jq.
field() {
	printf '%s' "$payload" |
		sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"
}

to=$(field to)
subject=$(field subject)

if [ -z "$to" ]; then
	echo "payload has no \"to\" address; nothing to send" >&2
	exit 65
fi
case "$to" in
*@*) ;;
*)
	echo "\"$to\" is not an email address" >&2
	exit 65
	;;
esac

sleep 0.3
printf '{"delivered_to":"%s","subject":"%s","message_id":"<%s.%s@nq.example>"}\n' \
	"$to" "${subject:-}" "${NQ_JOB_ID:-local}" "${NQ_ATTEMPT:-1}"
