"""examples/order-confirmation, headless: 200 orders through the checkout
service, the worker SIGKILLed mid-job twice, then exactly one e-mail and
one stock change per order, and the checkout's answers as quick with a
slow mail handler as with a quick one."""
import collections
import os
import signal
import sqlite3
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from daemons import PYTHON, ROOT, call, check, fail, median, quantile, run_test, wait_job  # noqa: E402

EX = os.path.join(ROOT, "examples", "order-confirmation")
SKUS = {"tea": 5000, "mugs": 3000, "honey": 2000}
SLOW_S = 1.0  # the slowed handler's mail delay


def make_order(i):
    sku = list(SKUS)[i % len(SKUS)]
    items = [{"sku": sku, "qty": 1 + i % 3}]
    if i % 4 == 0:
        items.append({"sku": "honey" if sku != "honey" else "tea", "qty": 1})
    return {"order_id": f"A-{1000 + i}", "email": f"buyer{i}@example.com", "items": items}


def place(checkout, orders, clients=8):
    """Places the orders from a few client threads: {order_id: job_id}, answer times."""
    jobs, times, errors, lock = {}, [], [], threading.Lock()
    unplaced = list(orders)

    def client():
        while True:
            with lock:
                if not unplaced:
                    return
                o = unplaced.pop()
            t0 = time.monotonic()
            st, body = call(checkout, "POST", "/orders", o)
            dt = time.monotonic() - t0
            with lock:
                if st != 202:
                    errors.append((o["order_id"], st, body))
                    continue
                jobs[o["order_id"]] = body
                times.append(dt)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(f"checkout refused orders: {errors[:3]}")
    return jobs, times


def mails(outbox):
    d = os.path.join(outbox, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def in_delivery(outbox):
    d = os.path.join(outbox, "tmp")
    return os.listdir(d) if os.path.isdir(d) else []


def young_delivery(outbox, young):
    """A mail in delivery for less than young seconds: its handler is mid-job."""
    now = time.time()
    for name in in_delivery(outbox):
        try:
            if now - os.stat(os.path.join(outbox, "tmp", name)).st_mtime < young:
                return True
        except FileNotFoundError:
            pass
    return False


def kill_mid_job(worker, outbox, what, young):
    """SIGKILL of the worker while a handler is between its two steps."""
    end = time.monotonic() + 30
    while not young_delivery(outbox, young):
        if time.monotonic() > end:
            fail(f"{what}: no handler was mid-job within 30 s")
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    print(f"{what}: worker SIGKILLed with {len(in_delivery(outbox))} mail(s) in delivery, "
          f"{len(mails(outbox))} delivered", flush=True)


def main():
    run_test("order-confirmation", run)


def run(ds):
    db, outbox = os.path.join(ds.dir, "shop.db"), os.path.join(ds.dir, "outbox")
    handler = (f"order.confirm={PYTHON} {EX}/confirm.py --db {db} --outbox {outbox}")
    seed = [f"{k}={v}" for k, v in SKUS.items()]
    if os.spawnv(os.P_WAIT, PYTHON, [PYTHON, f"{EX}/confirm.py", "--db", db, "--seed", *seed]):
        fail("seeding the stock failed")
    ds.start_nq(os.path.join(EX, "queues.yaml"))
    _, checkout = ds.start_service("checkout", [PYTHON, f"{EX}/checkout.py", "--listen",
                                                "127.0.0.1:0", "--nq", ds.http])
    orders = [make_order(i) for i in range(200)]

    # 40 orders while the mail handler takes SLOW_S a mail: a checkout that
    # waited for it would take that long and more.
    worker = ds.start_worker("worker-1", "orders", 8, [handler],
                             {"ORDER_MAIL_DELAY": str(SLOW_S)})
    jobs, slow_times = place(checkout, orders[:40])
    check(median(slow_times) < SLOW_S / 2,
          f"with a slow mail handler the checkout still answers at once "
          f"(p50 {median(slow_times) * 1000:.1f} ms)")
    kill_mid_job(worker, outbox, "kill 1", SLOW_S / 2)

    # The other 160 with a quick handler; a second kill half way.
    worker = ds.start_worker("worker-2", "orders", 8, [handler], {"ORDER_MAIL_DELAY": "0.02"})
    more, fast_times = place(checkout, orders[40:])
    jobs.update(more)
    end = time.monotonic() + 30
    while len(mails(outbox)) < 100 and time.monotonic() < end:
        time.sleep(0.01)
    kill_mid_job(worker, outbox, "kill 2", 1.0)
    ds.start_worker("worker-3", "orders", 8, [handler], {"ORDER_MAIL_DELAY": "0.02"})

    # A checkout sent again (a client's retry) is the same job.
    again, _ = place(checkout, orders[::10])
    check(all(again[o]["duplicate"] and again[o]["job_id"] == jobs[o]["job_id"] for o in again),
          f"{len(again)} orders checked out again: each answered with its first job, duplicate")
    check(len({j["job_id"] for j in jobs.values()}) == 200, "200 orders, 200 distinct jobs")

    ended = {o: wait_job(ds.http, j["job_id"]) for o, j in jobs.items()}
    bad = [(o, j["state"]) for o, j in ended.items() if j["state"] != "succeeded"]
    check(not bad, f"every order's job succeeded {bad[:3]}")
    reran = [o for o, j in ended.items() if j["attempt"] > 1]
    check(len(reran) >= 2, f"the kills cut jobs short: {len(reran)} ran again")
    # A killed handler leaves its half-delivered mail in tmp/ (a maildir's
    # readers ignore it): a job stopped after its stock change, before its mail.
    check(len(in_delivery(outbox)) >= 1,
          f"{len(in_delivery(outbox))} job(s) were killed between their two steps")

    check_outbox(outbox, jobs, orders)
    check_stock(db, jobs, orders)
    check_speed(slow_times, fast_times)


def check_outbox(outbox, jobs, orders):
    in_box = mails(outbox)
    per_order = collections.Counter()
    for name in in_box:
        text = open(os.path.join(outbox, "new", name)).read()
        oid = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("X-Order-Id:")]
        per_order[oid[0] if oid else "?"] += 1
        check_quiet(name == jobs[oid[0]]["job_id"] + ".order", f"{name} is its order's job's")
    check(len(in_box) == 200 and set(per_order) == {o["order_id"] for o in orders}
          and set(per_order.values()) == {1}, f"exactly one e-mail per order ({len(in_box)})")


def check_stock(db_path, jobs, orders):
    db = sqlite3.connect(db_path)
    moves = collections.defaultdict(list)
    for job_id, order_id, sku, qty in db.execute("SELECT * FROM moves"):
        moves[order_id].append((job_id, sku, qty))
    want = dict(SKUS)
    bad = []
    for o in orders:
        got = sorted((s, q) for _, s, q in moves[o["order_id"]])
        if got != sorted((it["sku"], it["qty"]) for it in o["items"]) or \
                {j for j, _, _ in moves[o["order_id"]]} != {jobs[o["order_id"]]["job_id"]}:
            bad.append(o["order_id"])
        for it in o["items"]:
            want[it["sku"]] -= it["qty"]
    check(not bad and len(moves) == 200, f"exactly one stock change per order {bad[:3]}")
    stock = dict(db.execute("SELECT sku, qty FROM stock"))
    check(stock == want, f"stock is what the orders left: {stock}")


def check_speed(slow, fast):
    # Medians of 40 and 160 answers; the bounds are loose on purpose.
    ms = lambda x: f"{x * 1000:.1f} ms"  # noqa: E731
    print(f"checkout answers, mail handler slow ({SLOW_S} s a mail): p50 {ms(median(slow))} "
          f"p90 {ms(quantile(slow, 0.9))}; quick: p50 {ms(median(fast))} "
          f"p90 {ms(quantile(fast, 0.9))}", flush=True)
    check(median(slow) < max(3 * median(fast), median(fast) + 0.2),
          "the checkout's answer time does not depend on the mail handler")


def check_quiet(cond, msg):
    if not cond:
        fail(msg)


if __name__ == "__main__":
    main()
