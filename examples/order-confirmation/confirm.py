#!/usr/bin/env python3
"""The order.confirm handler, run by nq-worker once per job (the order as
JSON on stdin, the job id in NQ_JOB_ID):

    nq-worker --queues orders --handler 'order.confirm=python3 confirm.py --db shop.db --outbox outbox'

It takes the order's items off the stock (SQLite) and writes the
confirmation e-mail to the outbox (a maildir). A job can run twice (its
worker killed mid-job, a lease lost), so both steps are keyed on the job
id and a second run changes nothing twice: the stock moves are stored
with the job id as primary key in the transaction that changes the stock,
and the e-mail is delivered under the job id's file name with link(2),
which refuses a name that exists. Two runs at once are safe too.

    python3 confirm.py --db shop.db --seed tea=100 mugs=20   # stock to start with
"""
import argparse
import json
import os
import sqlite3
import sys
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS moves (job_id TEXT NOT NULL, order_id TEXT NOT NULL,
  sku TEXT NOT NULL, qty INTEGER NOT NULL, PRIMARY KEY (job_id, sku));
"""


def open_db(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    return db


def take_stock(db, job_id, order):
    """Once per job: the moves and the stock change commit together."""
    db.execute("BEGIN IMMEDIATE")  # one writer at a time; a rerun waits here
    try:
        if db.execute("SELECT 1 FROM moves WHERE job_id = ?", (job_id,)).fetchone():
            db.execute("ROLLBACK")
            return False
        for it in order["items"]:
            db.execute("INSERT INTO moves VALUES (?, ?, ?, ?)",
                       (job_id, order["order_id"], it["sku"], it["qty"]))
            db.execute("INSERT INTO stock VALUES (?, 0) ON CONFLICT DO NOTHING", (it["sku"],))
            db.execute("UPDATE stock SET qty = qty - ? WHERE sku = ?", (it["qty"], it["sku"]))
        db.execute("COMMIT")
        return True
    except BaseException:
        db.execute("ROLLBACK")
        raise


def compose(job_id, order):
    lines = [f"  {it['qty']} x {it['sku']}" for it in order["items"]]
    return "\r\n".join([
        "From: shop@example.com",
        f"To: {order['email']}",
        f"Subject: Order {order['order_id']} confirmed",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}",
        f"Message-ID: <{job_id}@shop.example>",
        f"X-Order-Id: {order['order_id']}",
        "",
        f"Thank you for your order {order['order_id']}:",
        *lines, ""]).encode()


def deliver(outbox, job_id, message, delay):
    """Once per job: a maildir delivery (tmp/, then link into new/)."""
    name = f"{job_id}.order"
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(outbox, sub), exist_ok=True)
    if any(os.path.exists(os.path.join(outbox, s, name)) for s in ("new", "cur")):
        return False
    tmp = os.path.join(outbox, "tmp", f"{name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(message)
        f.flush()
        os.fsync(f.fileno())
    time.sleep(delay)  # the mail provider taking its time
    try:
        os.link(tmp, os.path.join(outbox, "new", name))
        delivered = True
    except FileExistsError:
        delivered = False  # a run beside this one was first
    os.unlink(tmp)
    return delivered


def main():
    p = argparse.ArgumentParser(description="the order.confirm handler")
    p.add_argument("--db", required=True)
    p.add_argument("--outbox", help="the maildir of outgoing mail")
    p.add_argument("--seed", nargs="*", metavar="SKU=QTY", help="set the stock and exit")
    a = p.parse_args()
    db = open_db(a.db)
    if a.seed is not None:
        for s in a.seed:
            sku, qty = s.split("=")
            db.execute("INSERT OR REPLACE INTO stock VALUES (?, ?)", (sku, int(qty)))
        return 0
    job_id = os.environ["NQ_JOB_ID"]
    try:
        order = json.load(sys.stdin)
        order["order_id"], order["email"], order["items"][0]["sku"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        print(f"not an order: {e!r}", file=sys.stderr)
        return 65  # permanent: no retry can fix the payload
    delay = float(os.environ.get("ORDER_MAIL_DELAY", "0.05"))
    took = take_stock(db, job_id, order)
    sent = deliver(a.outbox, job_id, compose(job_id, order), delay)
    print(json.dumps({"order_id": order["order_id"], "stock_taken": took, "mail_sent": sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
