# Sourced by ./quickstart.sh order-confirmation (which defines start, say,
# ctl, DATA, WORKER, NQCTL and PYTHON): a worker for the orders queue, the
# checkout on 127.0.0.1:7490, a few orders placed.
# shellcheck shell=bash
EXAMPLE_PORTS=(7490)

example_start() {
	local ex=$1
	"$PYTHON" "$ex/confirm.py" --db "$DATA/shop.db" --seed tea=100 mugs=20 honey=50
	# nq-worker runs each command with /bin/sh -c, hence the quotes.
	start worker "$WORKER" --queues orders --concurrency 8 --http 127.0.0.1:7482 \
		--handler "order.confirm=$PYTHON '$ex/confirm.py' --db '$DATA/shop.db' --outbox '$DATA/outbox'"
	start checkout "$PYTHON" "$ex/checkout.py" --listen 127.0.0.1:7490 --nq http://127.0.0.1:7480
	wait_for_port 7490
}

ORDER_JOBS=()

# Places order A-$1 with curl, the way a shop's front end would.
order() {
	local body answer
	body=$(printf '{"order_id":"A-%s","email":"%s@example.com","items":[{"sku":"%s","qty":%s}]}' "$@")
	echo "\$ curl -s -X POST 127.0.0.1:7490/orders -d '$body'" >&2
	answer=$(curl -s -X POST 127.0.0.1:7490/orders -d "$body")
	echo "$answer"
	ORDER_JOBS+=("$(printf '%s' "$answer" | sed -n 's/.*"job_id": *"\([0-9a-f]*\)".*/\1/p')")
}

example_demo() {
	say "placing four orders: each is answered at once, before its e-mail is out"
	order 1001 ada tea 2
	order 1002 grace mugs 1
	order 1003 linus honey 3
	order 1004 barbara tea 1
	say "the first order sent again (a retried request): the same job, duplicate"
	order 1001 ada tea 2
	say "waiting for the confirmations (nqctl wait ID)"
	local id
	for id in "${ORDER_JOBS[@]::4}"; do
		"$NQCTL" wait "$id" >/dev/null 2>&1 || true
		"$NQCTL" get "$id" | sed -n 's/^\(state\|result\): /  /p' | paste -sd' '
	done
	say "the outbox, a maildir: one e-mail per order ($DATA/outbox/new)"
	ls "$DATA/outbox/new"
	cat "$DATA/outbox/new/${ORDER_JOBS[0]}.order"
	say "the stock, in SQLite ($DATA/shop.db)"
	"$PYTHON" -c 'import sqlite3, sys
for sku, qty in sqlite3.connect(sys.argv[1]).execute("SELECT * FROM stock"):
    print(f"  {sku}: {qty}")' "$DATA/shop.db"
}

example_next_steps() {
	local NQCTL="./${BUILD#"$ROOT"/}/client/nqctl/nqctl" DATA=".nq-data/${DATA##*/}"
	cat <<EOT

$(say "the shop is open")
Place an order (the order id is the unique key: send it twice, get one job):
  curl -s -X POST 127.0.0.1:7490/orders -d '{"order_id":"B-1","email":"you@example.com","items":[{"sku":"mugs","qty":2}]}'
Watch the mail provider's limits at work (max_in_flight 4, rate 50/s):
  for i in \$(seq 100); do curl -s -X POST 127.0.0.1:7490/orders -d "{\"order_id\":\"C-\$i\",\"email\":\"c\$i@example.com\",\"items\":[{\"sku\":\"tea\",\"qty\":1}]}"; done
  $NQCTL stats orders        $NQCTL queue show orders
The e-mails and the stock:
  ls $DATA/outbox/new | wc -l
Press Ctrl-C to stop the checkout, the worker, the broker and nq-dlq.
EOT
}
