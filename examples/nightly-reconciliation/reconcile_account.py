#!/usr/bin/env python3
"""The ledger.reconcile_account handler, run by nq-worker once per account
and day (payload {"day": "2026-12-01", "account": "ACC-0007"}):

    nq-worker --queues reconcile \\
      --handler 'ledger.reconcile_account=python3 reconcile_account.py --data DATA --out OUT'

Compares DATA/<day>/ledger/<account>.csv with DATA/<day>/bank/<account>.csv
entry by entry (by reference). An entry the bank booked a day after the
ledger is settled late, not a mismatch. Anything else that differs (an
amount, an entry on one side only) cannot be resolved by running again:
the handler exits 65, so the job goes to nq-dlq at once, its error
naming the account, the amounts and the reason. A file that cannot be
read yet (the statement not delivered) exits 75: retried with backoff.
On success it prints the account's totals as JSON, the job's result.
Either way the outcome is written to OUT/<day>/accounts/<account>.json
(whole or not at all: a rename), for the day's report; a run again
writes the same file again.
"""
import argparse
import csv
import datetime
import json
import os
import sys


def read(path):
    with open(path, newline="") as f:
        return {r["reference"]: (datetime.date.fromisoformat(r["date"]), int(r["amount_cents"]))
                for r in csv.DictReader(f)}


def cents(n):
    return f"{n / 100:.2f}"


def differences(ledger, bank):
    """(late, problems): entries settled a day late, and what cannot be resolved."""
    late, problems = 0, []
    for ref in sorted(ledger.keys() | bank.keys()):
        if ref not in bank:
            problems.append(f"{ref}: {cents(ledger[ref][1])} in the ledger, not at the bank")
        elif ref not in ledger:
            problems.append(f"{ref}: {cents(bank[ref][1])} at the bank, not in the ledger")
        elif ledger[ref][1] != bank[ref][1]:
            problems.append(f"{ref}: {cents(ledger[ref][1])} in the ledger, "
                            f"{cents(bank[ref][1])} at the bank")
        elif bank[ref][0] - ledger[ref][0] == datetime.timedelta(days=1):
            late += 1
        elif bank[ref][0] != ledger[ref][0]:
            problems.append(f"{ref}: booked {ledger[ref][0]} in the ledger, "
                            f"{bank[ref][0]} at the bank")
    return late, problems


def outcome(out, day, account, status, lt, bt, entries, late, problems):
    path = os.path.join(out, day, "accounts", f"{account}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"account": account, "day": day, "status": status, "ledger_cents": lt,
                   "bank_cents": bt, "entries": entries, "settled_late": late,
                   "problems": problems}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main():
    p = argparse.ArgumentParser(description="the ledger.reconcile_account handler")
    p.add_argument("--data", required=True, help="DATA/<day>/{ledger,bank}/<account>.csv")
    p.add_argument("--out", required=True, help="OUT/<day>/accounts/<account>.json")
    a = p.parse_args()
    try:
        job = json.load(sys.stdin)
        day, account = job["day"], job["account"]
        datetime.date.fromisoformat(day)
    except (ValueError, KeyError, TypeError) as e:
        print(f"not a reconciliation job: {e!r}", file=sys.stderr)
        return 65
    base = os.path.join(a.data, day)
    try:
        ledger = read(os.path.join(base, "ledger", f"{account}.csv"))
        bank = read(os.path.join(base, "bank", f"{account}.csv"))
    except OSError as e:
        print(f"account {account} {day}: cannot read yet: {e}", file=sys.stderr)
        return 75  # the statement may not be there yet: try again later
    lt, bt = sum(v[1] for v in ledger.values()), sum(v[1] for v in bank.values())
    late, problems = differences(ledger, bank)
    outcome(a.out, day, account, "mismatch" if problems else "reconciled", lt, bt,
            len(ledger), late, problems)
    if problems:
        print(f"account {account} {day}: ledger {cents(lt)}, bank {cents(bt)}, "
              f"differs by {cents(bt - lt)}: {'; '.join(problems)}", file=sys.stderr)
        return 65
    print(json.dumps({"account": account, "day": day, "entries": len(ledger),
                      "total_cents": lt, "settled_late": late}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
