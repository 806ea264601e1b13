"""examples/nightly-reconciliation, headless: the example's schedule made
per-second (its clock started at a past night, NQ_TEST_CRON_CLOCK, so that
every tick names the same day), a generated day of accounts, some
mismatched and one whose statement comes late; then the report's totals
against the data, each mismatched account in nq-dlq exactly once with its
amounts, the late one reconciled on a retry, the fan-out run again adding
nothing, and the ticks after the first reconciling nothing again: one day
job, one batch, one job per account, one report."""
import base64
import datetime
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from daemons import PYTHON, ROOT, call, check, fail, run_test  # noqa: E402

EX = os.path.join(ROOT, "examples", "nightly-reconciliation")
ACCOUNTS, MISMATCHED = 24, 4
# The schedules' clock starts at 02:29:57 UTC three nights ago (in the past,
# so that the ticks' jobs are due at once), and every tick names the day before.
_NIGHT = datetime.datetime.combine(
    datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=3),
    datetime.time(2, 29, 57), datetime.timezone.utc)
NIGHT = int(_NIGHT.timestamp())
DAY = (_NIGHT.date() - datetime.timedelta(days=1)).isoformat()
TICKS = 4  # ticks seen to succeed before the checks: 3 after the first


def queues_file(path):
    """The example's queues file, its schedule every second."""
    text = open(os.path.join(EX, "queues.yaml")).read()
    text, n = re.subn(r'cron: "[^"]*"', 'cron: "* * * * * *"', text)
    if n != 1:
        fail("the example's queues.yaml has no one cron line")
    with open(path, "w") as f:
        f.write(text)


def jobs(ds, queue):
    """Every job of the queue (admin list, paged)."""
    out, after = [], ""
    while True:
        st, r = call(ds.http, "GET", f"/v1/jobs?queue={queue}&limit=500&after={after}")
        if st != 200:
            fail(f"list {queue}: {st} {r}")
        out += r["jobs"]
        after = r.get("next_after_id", "")
        if not after:
            return out


def result(job):
    return json.loads(base64.b64decode(job["result"])) if job.get("result") else None


def until(what, cond, timeout=60):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            fail(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def main():
    run_test("nightly-reconciliation", run)


def run(ds):
    data, out, qf = (os.path.join(ds.dir, d) for d in ("data", "out", "queues.yaml"))
    subprocess.run([PYTHON, f"{EX}/gen_data.py", "--out", data, "--day", DAY, "--accounts",
                    str(ACCOUNTS), "--mismatched", str(MISMATCHED), "--seed", "17"], check=True)
    expected = json.load(open(os.path.join(data, DAY, "expected.json")))["accounts"]
    queues_file(qf)
    ds.env["NQ_TEST_CRON_CLOCK"] = str(NIGHT)
    ds.start_nq(qf)
    nightly = f"{PYTHON} {EX}/nightly.py --nq {ds.http}"
    ds.start_worker("ledger", "ledger", 2, [
        f"ledger.reconcile={nightly} tick",
        f"ledger.reconcile_day={nightly} --data {data} fan-out",
        f"ledger.report={nightly} --out {out} report"])
    # One good account's statement comes late: held back until its job failed once.
    late = sorted(a for a, e in expected.items() if "mismatch" not in e)[0]
    bank = os.path.join(data, DAY, "bank", f"{late}.csv")
    os.rename(bank, bank + ".late")
    ds.start_worker("reconcile", "reconcile", 4, [
        f"ledger.reconcile_account={PYTHON} {EX}/reconcile_account.py --data {data} --out {out}"])

    failed = until("the late statement's job failing", lambda: [
        j for j in jobs(ds, "reconcile")
        if j["state"] in ("scheduled", "ready", "leased") and j.get("errors")])
    os.rename(bank + ".late", bank)
    msg = failed[0]["errors"][-1]["message"]
    check(len(failed) == 1 and late in msg and "cannot read yet" in msg,
          f"the account whose statement is late failed and waits for a retry: {msg}")
    report_path = os.path.join(out, DAY, "report.json")
    until("the day's report", lambda: os.path.exists(report_path))
    ticks = lambda: [j for j in jobs(ds, "ledger")  # noqa: E731
                     if j["spec"]["type"] == "ledger.reconcile" and j["state"] == "succeeded"]
    until(f"{TICKS} ticks", lambda: len(ticks()) >= TICKS)
    # The fan-out run again, as after a worker killed before it completed:
    again = subprocess.run([PYTHON, f"{EX}/nightly.py", "--nq", ds.http, "--data", data,
                            "fan-out"], input=json.dumps({"day": DAY}), capture_output=True,
                           text=True)
    rerun = json.loads(again.stdout or "{}")
    check(again.returncode == 0 and rerun.get("enqueued") == 0 and rerun.get("batch") == ""
          and rerun.get("enqueued_before") == ACCOUNTS,
          f"the day's fan-out run again adds no job and keeps no batch: {rerun or again.stderr}")
    check_ticks(ds, ticks(), late)
    check_report(json.load(open(report_path)), expected)
    check_dlq(ds, expected)
    print(open(os.path.join(out, DAY, "report.txt")).read(), flush=True)


def check_ticks(ds, ticked, late):
    days = {result(j)["day"] for j in ticked}
    day_jobs = {result(j)["reconcile_day"] for j in ticked}
    firsts = [j for j in ticked if not result(j)["duplicate"]]
    check(days == {DAY} and len(day_jobs) == 1 and len(firsts) == 1,
          f"{len(ticked)} ticks named the day {days}, one of them enqueued its job, the "
          f"others found it ({len(day_jobs)} day job)")
    ledger = jobs(ds, "ledger")
    kinds = {}
    for j in ledger:
        kinds.setdefault(j["spec"]["type"], []).append(j)
    check(len(kinds.get("ledger.reconcile_day", [])) == 1
          and len(kinds.get("ledger.report", [])) == 1,
          "one fan-out and one report for the day, whatever the ticks")
    st, b = call(ds.http, "GET", "/v1/batches")
    check(st == 200 and len(b["batches"]) == 1 and int(b["batches"][0]["total"]) == ACCOUNTS
          and b["batches"][0]["on_complete_id"] == kinds["ledger.report"][0]["id"],
          f"one batch of {ACCOUNTS} accounts, its on_complete the report")
    accounts = jobs(ds, "reconcile")
    check(len(accounts) == ACCOUNTS, f"one job per account ({len(accounts)})")
    retried = [j for j in accounts if j["attempt"] > 1]
    check(len(retried) == 1 and retried[0]["state"] == "succeeded"
          and result(retried[0])["account"] == late,
          f"the late statement's account reconciled on attempt {retried[0]['attempt']}")


def check_report(rep, expected):
    bad = {a for a, e in expected.items() if "mismatch" in e}
    check(rep["day"] == DAY and rep["accounts"] == ACCOUNTS
          and rep["reconciled"] == ACCOUNTS - MISMATCHED and rep["mismatched"] == MISMATCHED
          and rep["failed_without_outcome"] == 0,
          f"the report counts {rep['accounts']} accounts, {rep['reconciled']} reconciled, "
          f"{rep['mismatched']} mismatched")
    want = {k: sum(e[k] for e in expected.values()) for k in ("ledger_cents", "bank_cents")}
    check(rep["ledger_cents"] == want["ledger_cents"] and rep["bank_cents"] == want["bank_cents"]
          and rep["reconciled_cents"] == sum(e["ledger_cents"] for a, e in expected.items()
                                             if a not in bad),
          f"its totals are the data's ({rep['ledger_cents']} and {rep['bank_cents']} cents)")
    got = {m["account"]: m for m in rep["mismatches"]}
    check(set(got) == bad and all(got[a]["ledger_cents"] == expected[a]["ledger_cents"]
                                  and got[a]["bank_cents"] == expected[a]["bank_cents"]
                                  and expected[a]["mismatch"]["reference"] in got[a]["problems"][0]
                                  for a in bad),
          "it names each mismatched account with its amounts and the entry")


def dlq_entries(ds):
    st, r = call(ds.http, "GET", "/v1/dlq/jobs?queue=reconcile&limit=500")
    return r.get("jobs", []) if st == 200 else []


def check_dlq(ds, expected):
    bad = {a for a, e in expected.items() if "mismatch" in e}
    until("the mismatched accounts in nq-dlq", lambda: len(dlq_entries(ds)) >= MISMATCHED)
    entries = dlq_entries(ds)
    by_account = {}
    for e in entries:
        st, full = call(ds.http, "GET", f"/v1/dlq/jobs/{e['job']['id']}")
        by_account.setdefault(full["job"]["spec"]["payload"]["account"], []).append(full)
    check(set(by_account) == bad and all(len(v) == 1 for v in by_account.values()),
          f"each mismatched account is in nq-dlq exactly once ({len(entries)} entries)")
    wrong = []
    for acc, (e,) in by_account.items():
        msg = e["job"]["errors"][-1]["message"]
        amounts = [f"{expected[acc][k] / 100:.2f}" for k in ("ledger_cents", "bank_cents")]
        if e["reason"] != "non_retryable" or e["job"]["attempt"] != 1 or acc not in msg \
                or expected[acc]["mismatch"]["reference"] not in msg \
                or not all(x in msg for x in amounts):
            wrong.append(f"{acc}: {e['reason']} after {e['job']['attempt']} attempt(s): {msg!r}")
    print(f"nq-dlq, one of them: {msg}", flush=True)
    check(not wrong, f"each failed once, for good, naming account, amounts and entry {wrong[:2]}")

if __name__ == "__main__":
    main()
