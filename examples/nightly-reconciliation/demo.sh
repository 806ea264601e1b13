# Sourced by ./quickstart.sh nightly-reconciliation (which defines start,
# say, ctl, DATA, WORKER, NQCTL and PYTHON): yesterday's ledger and bank
# statements generated into $DATA/data, a worker for the ledger queue and a
# pool for the accounts, the nightly tick triggered now (twice).
# shellcheck shell=bash

example_start() {
	local ex=$1 day
	day=$(date -u -d yesterday +%F)
	[ -d "$DATA/data/$day" ] ||
		"$PYTHON" "$ex/gen_data.py" --out "$DATA/data" --day "$day" --accounts 50 --mismatched 5
	# nq-worker runs each command with /bin/sh -c, hence the quotes.
	local nightly="$PYTHON '$ex/nightly.py' --nq http://127.0.0.1:7480"
	start ledger "$WORKER" --queues ledger --concurrency 2 --http 127.0.0.1:7482 \
		--handler "ledger.reconcile=$nightly tick" \
		--handler "ledger.reconcile_day=$nightly --data '$DATA/data' fan-out" \
		--handler "ledger.report=$nightly --out '$DATA/out' report"
	start reconcile "$WORKER" --queues reconcile --concurrency 4 --http 127.0.0.1:7483 \
		--handler "ledger.reconcile_account=$PYTHON '$ex/reconcile_account.py' --data '$DATA/data' --out '$DATA/out'"
}

# Triggers the schedule and waits for its tick's job: its result.
tick() {
	local id
	id=$(ctl cron trigger nightly-reconciliation)
	"$NQCTL" wait "$id" >/dev/null 2>&1 || true
	"$NQCTL" get "$id" | sed -n 's/^\(state\|result\): /  /p' | paste -sd' '
}

example_demo() {
	local day i report
	day=$(date -u -d yesterday +%F)
	report=$DATA/out/$day/report.txt
	say "the schedule: every night at 02:30 UTC"
	ctl cron list
	say "tonight's tick, now: it names the day ($day) and fans it out"
	tick
	for ((i = 0; i < 100; i++)); do
		[ -f "$report" ] && break
		sleep 0.2
	done
	say "the batch's on_complete wrote the report ($report)"
	cat "$report" 2>/dev/null || echo "no report yet; see $DATA/*.log"
	say "a second tick for the same day: the day's job exists, nothing runs twice"
	tick
	say "the mismatched accounts went to nq-dlq at once, with the amounts"
	sleep 0.5 # the handoff to nq-dlq takes a moment
	ctl dlq list --queue reconcile || true
}

example_next_steps() {
	local NQCTL="./${BUILD#"$ROOT"/}/client/nqctl/nqctl" DATA=".nq-data/${DATA##*/}" day
	day=$(date -u -d '2 days ago' +%F)
	cat <<EOT

$(say "the ledger is open")
Look at the day's batch, a dead account, the report:
  $NQCTL batch list       $NQCTL dlq show ID       cat $DATA/out/*/report.json
Reconcile a day by hand (its data under $DATA/data/DAY; once per day):
  python3 examples/nightly-reconciliation/gen_data.py --out $DATA/data --day $day
  $NQCTL enqueue ledger ledger.reconcile --payload '{"day": "$day"}'
Press Ctrl-C to stop the workers, the broker and nq-dlq.
EOT
}
