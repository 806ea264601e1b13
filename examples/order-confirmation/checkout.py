#!/usr/bin/env python3
"""A tiny checkout service: takes an order, hands its confirmation to nq,
answers at once.

    POST /orders  {"order_id": "A-1001", "email": "ada@example.com",
                   "items": [{"sku": "tea", "qty": 2}]}
    -> 202 {"order_id": "A-1001", "job_id": "...", "duplicate": false}

The order id is the job's unique key, so a checkout sent twice (a client
that retried after a lost answer, a double click) is one job: the second
answer names the same job, "duplicate": true. The answer comes once nq has
the job on disk, not once the e-mail is out: the mail provider's speed
never reaches the shop's customers. Standard library only.
"""
import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORDER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_order(order):
    """The reason an order is refused, or None."""
    if not isinstance(order, dict):
        return "the body is not a JSON object"
    if not ORDER_ID.fullmatch(str(order.get("order_id", ""))):
        return "order_id: 1-64 of A-Z a-z 0-9 . _ -"
    if "@" not in str(order.get("email", "")):
        return "email: not an address"
    items = order.get("items")
    if not isinstance(items, list) or not items:
        return "items: a non-empty list"
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("sku"), str) \
                or not isinstance(it.get("qty"), int) or it["qty"] < 1:
            return "items: each {\"sku\": text, \"qty\": a positive integer}"
    return None


class Nq:
    """nq's JSON API (README "JSON API"): one call, enqueue."""

    def __init__(self, url, token=None, queue="orders"):
        self.url = url.rstrip("/")
        self.token = token
        self.queue = queue

    def enqueue_confirmation(self, order):
        spec = {"type": "order.confirm", "payload": order,
                "idempotency_key": order["order_id"]}
        req = urllib.request.Request(
            f"{self.url}/v1/queues/{self.queue}/jobs", method="POST",
            data=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


class Checkout(BaseHTTPRequestHandler):
    nq = None  # set by main
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/orders":
            return self.answer(404, {"error": "POST /orders"})
        try:
            n = int(self.headers.get("Content-Length") or 0)
            order = json.loads(self.rfile.read(n)) if 0 < n <= 65536 else None
        except ValueError:
            order = None
        why = check_order(order) if order is not None else "a JSON body of at most 64 KiB"
        if why:
            return self.answer(400, {"error": why})
        try:
            job = self.nq.enqueue_confirmation(order)
        except urllib.error.HTTPError as e:
            # nq refused or could not store it: the order is not taken.
            return self.answer(503, {"error": "nq: " + e.read().decode(errors="replace")})
        except OSError as e:
            return self.answer(503, {"error": f"nq unreachable: {e}"})
        self.answer(202, {"order_id": order["order_id"], "job_id": job["id"],
                          "duplicate": job.get("duplicate", False)})

    def log_message(self, fmt, *args):
        pass  # one line per order would drown the logs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:7490", help="ADDR:PORT (port 0: any)")
    p.add_argument("--nq", default="http://127.0.0.1:7480", help="nq-broker's HTTP address")
    p.add_argument("--token-file", help="a producer token of nq")
    p.add_argument("--ready-file", help="written with the bound address once listening")
    a = p.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    Checkout.nq = Nq(a.nq, token)
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Checkout)
    srv.daemon_threads = True
    addr = "http://%s:%d" % srv.server_address[:2]
    print(f"checkout listening on {addr}", flush=True)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(addr + "\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
