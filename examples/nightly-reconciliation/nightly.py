#!/usr/bin/env python3
"""The nightly reconciliation's own jobs (queue ledger), run by nq-worker:

    nq-worker --queues ledger \\
      --handler 'ledger.reconcile=python3 nightly.py --nq URL tick' \\
      --handler 'ledger.reconcile_day=python3 nightly.py --nq URL --data DATA fan-out' \\
      --handler 'ledger.report=python3 nightly.py --out OUT report'

tick     ledger.reconcile, the cron schedule's job (payload {}; or
         {"day": "2026-12-01"} by hand): names the day, the one before the
         tick (UTC), and enqueues ledger.reconcile_day {"day": D} with the
         unique key reconcile:D. A second tick for the day is a duplicate
         and adds nothing.
fan-out  ledger.reconcile_day: one request that makes a sealed batch of one
         ledger.reconcile_account job per account of the day (unique key
         reconcile:D:ACCOUNT, so a rerun of this job adds nothing either),
         whose on_complete callback is ledger.report {"day": D}.
report   ledger.report: the batch's counts (the file $NQ_PARENT_RESULTS
         names) and each account's outcome (OUT/D/accounts/) make
         OUT/D/report.json and OUT/D/report.txt.

nq's JSON API through the Python standard library. Exit 75 (retried with
backoff) when nq or the day's ledger is not there yet, 65 (nq-dlq at
once) for a job no retry can fix.
"""
import argparse
import datetime
import json
import os
import sys
import urllib.error
import urllib.request

KEEP = "7d"  # how long a day's keys hold: the queues' result_ttl


class Retry(Exception):
    """Fails this attempt; nq retries it with backoff (exit 75)."""


class Permanent(Exception):
    """Fails the job for good: nq-dlq at once (exit 65)."""


def call(base, method, path, body=None):
    req = urllib.request.Request(base.rstrip("/") + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    token = os.environ.get("NQ_TOKEN")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        if e.code in (429, 503, 504):
            raise Retry(f"nq {method} {path}: {e.code} {text}")
        raise Permanent(f"nq {method} {path}: {e.code} {text}")
    except OSError as e:
        raise Retry(f"nq {method} {path}: {e}")


def payload():
    try:
        text = sys.stdin.read()
        p = json.loads(text) if text.strip() else {}  # the schedule sets none
        if "day" in p:
            datetime.date.fromisoformat(p["day"])
        return p
    except (ValueError, TypeError) as e:
        raise Permanent(f"not a reconciliation payload: {e!r}")


def tick(a):
    p = payload()
    day = p.get("day")
    if not day:
        # The schedule's job has the tick as its run_at: the day before it.
        job = call(a.nq, "GET", f"/v1/jobs/{os.environ['NQ_JOB_ID']}?omit_payload=true")
        at = datetime.datetime.fromtimestamp(int(job["spec"]["run_at_us"]) / 1e6,
                                             datetime.timezone.utc)
        day = (at.date() - datetime.timedelta(days=1)).isoformat()
    r = call(a.nq, "POST", "/v1/queues/ledger/jobs", {
        "type": "ledger.reconcile_day", "payload": {"day": day},
        "idempotency_key": f"reconcile:{day}", "unique": {"scope": "window", "window_ms": KEEP}})
    return {"day": day, "reconcile_day": r["id"], "duplicate": r.get("duplicate", False)}


def fan_out(a):
    day = payload()["day"]
    ledger = os.path.join(a.data, day, "ledger")
    try:
        accounts = sorted(f[:-4] for f in os.listdir(ledger) if f.endswith(".csv"))
    except OSError as e:
        raise Retry(f"day {day}: the ledger's export is not there yet: {e}")
    if not accounts:
        raise Permanent(f"day {day}: no accounts in {ledger}")
    jobs = [{"type": "ledger.reconcile_account", "payload": {"day": day, "account": acc},
             "idempotency_key": f"reconcile:{day}:{acc}",
             "unique": {"scope": "window", "window_ms": KEEP}} for acc in accounts]
    # All in one request: the batch, its jobs and the seal commit together
    # or not at all. A rerun finds every key taken, and then no batch is kept.
    r = call(a.nq, "POST", "/v1/queues/reconcile/jobs", {
        "jobs": jobs, "all_or_none": True,
        "batch": {"on_complete": {"queue": "ledger", "type": "ledger.report",
                                  "payload": {"day": day}}, "seal": True}})
    refused = [(acc, res["status"]) for acc, res in zip(accounts, r["results"])
               if (res.get("status") or {}).get("code", "OK") != "OK"]
    if refused:  # nothing was stored: all or none
        raise Retry(f"day {day}: nq refused {len(refused)} account(s): {refused[:3]}")
    new = sum(1 for res in r["results"] if not res.get("duplicate"))
    return {"day": day, "batch": r.get("batch_id", ""), "accounts": len(accounts),
            "enqueued": new, "enqueued_before": len(accounts) - new}


def write_atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def cents(n):
    return f"{n / 100:,.2f}"


def report(a):
    day = payload()["day"]
    with open(os.environ["NQ_PARENT_RESULTS"]) as f:
        (batch_id, counts), = json.load(f).items()  # the batch, its one parent
    d = os.path.join(a.out, day, "accounts")
    outcomes = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d))
                if f.endswith(".json")] if os.path.isdir(d) else []
    ok = [o for o in outcomes if o["status"] == "reconciled"]
    bad = [o for o in outcomes if o["status"] == "mismatch"]
    rep = {"day": day, "batch": batch_id, "report_job": os.environ.get("NQ_JOB_ID", ""),
           "accounts": counts["total"], "reconciled": counts["succeeded"],
           "failed": counts["dead"] + counts["canceled"] + counts["expired"],
           "mismatched": len(bad),
           "failed_without_outcome": counts["dead"] + counts["canceled"] + counts["expired"]
           - len(bad),
           "ledger_cents": sum(o["ledger_cents"] for o in outcomes),
           "bank_cents": sum(o["bank_cents"] for o in outcomes),
           "reconciled_cents": sum(o["ledger_cents"] for o in ok),
           "settled_late": sum(o["settled_late"] for o in ok),
           "mismatches": [{k: o[k] for k in ("account", "ledger_cents", "bank_cents", "problems")}
                          for o in bad]}
    lines = [f"Reconciliation of {day} (batch {batch_id})",
             f"  accounts {rep['accounts']}: {rep['reconciled']} reconciled "
             f"({cents(rep['reconciled_cents'])}, {rep['settled_late']} entries settled a day "
             f"late), {rep['mismatched']} mismatched, "
             f"{rep['failed_without_outcome']} failed otherwise (see nq-dlq)"]
    for m in rep["mismatches"]:
        lines.append(f"  {m['account']}: ledger {cents(m['ledger_cents'])}, bank "
                     f"{cents(m['bank_cents'])}: {'; '.join(m['problems'])}")
    write_atomic(os.path.join(a.out, day, "report.txt"), "\n".join(lines) + "\n")
    write_atomic(os.path.join(a.out, day, "report.json"), json.dumps(rep, indent=1) + "\n")
    return {k: rep[k] for k in ("day", "batch", "accounts", "reconciled", "mismatched")}


def main():
    p = argparse.ArgumentParser(description="the nightly reconciliation's jobs")
    p.add_argument("--nq", default="http://127.0.0.1:7480", help="nq-broker's HTTP address")
    p.add_argument("--data", help="DATA/<day>/ledger/<account>.csv (fan-out)")
    p.add_argument("--out", help="OUT/<day>/: the accounts' outcomes and the report (report)")
    p.add_argument("step", choices=["tick", "fan-out", "report"])
    a = p.parse_args()
    try:
        result = {"tick": tick, "fan-out": fan_out, "report": report}[a.step](a)
    except Retry as e:
        print(e, file=sys.stderr)
        return 75
    except Permanent as e:
        print(e, file=sys.stderr)
        return 65
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
