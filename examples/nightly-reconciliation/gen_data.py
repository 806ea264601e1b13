#!/usr/bin/env python3
"""Generates a day of ledger and bank statement CSVs for the nightly
reconciliation example, some accounts mismatched on purpose:

    python3 gen_data.py --out data --day 2026-12-01 --accounts 50 --mismatched 5 --seed 7

writes data/2026-12-01/ledger/ACC-0001.csv, data/2026-12-01/bank/ACC-0001.csv, ...
and data/2026-12-01/expected.json: what a correct reconciliation finds
(per account its totals, and for each mismatched one why), for a test to
compare with. Amounts are in cents. Each CSV: reference,date,amount_cents.

Some accounts also differ in a way that resolves: the bank booked an
entry a day later than the ledger (settlement lag), which reconciles.
"""
import argparse
import csv
import datetime
import json
import os
import random


def day_entries(rng, account, day, n):
    return [{"reference": f"{account}-{day:%Y%m%d}-{i:04d}", "date": day.isoformat(),
             "amount_cents": rng.choice([-1, 1]) * rng.randint(100, 250_000)}
            for i in range(n)]


def spoil(rng, ledger, bank):
    """One mismatch that cannot be resolved; its description."""
    kind = rng.choice(["amount", "missing_at_bank", "unknown_at_bank"])
    if kind == "amount":
        e = rng.choice(bank)
        was = e["amount_cents"]
        e["amount_cents"] = was + rng.choice([-1, 1]) * rng.randint(1, 5000)
        return {"kind": kind, "reference": e["reference"], "ledger_cents": was,
                "bank_cents": e["amount_cents"]}
    if kind == "missing_at_bank":
        e = bank.pop(rng.randrange(len(bank)))
        return {"kind": kind, "reference": e["reference"], "ledger_cents": e["amount_cents"],
                "bank_cents": 0}
    e = {"reference": f"BANK-{rng.randrange(10**8):08d}", "date": bank[0]["date"],
         "amount_cents": rng.randint(100, 90_000)}
    bank.append(e)
    return {"kind": kind, "reference": e["reference"], "ledger_cents": 0,
            "bank_cents": e["amount_cents"]}


def write_csv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["reference", "date", "amount_cents"])
        w.writeheader()
        w.writerows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--day", default=datetime.date.today().isoformat())
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--mismatched", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    day = datetime.date.fromisoformat(a.day)
    accounts = [f"ACC-{i:04d}" for i in range(1, a.accounts + 1)]
    bad = set(rng.sample(accounts, a.mismatched))
    expected = {"day": a.day, "accounts": {}}
    for acc in accounts:
        ledger = day_entries(rng, acc, day, rng.randint(3, 40))
        bank = [dict(e) for e in ledger]
        rng.shuffle(bank)  # a statement in its own order
        if rng.random() < 0.2:  # booked a day late at the bank: resolves
            rng.choice(bank)["date"] = (day + datetime.timedelta(days=1)).isoformat()
        entry = {"ledger_cents": sum(e["amount_cents"] for e in ledger)}
        if acc in bad:
            entry["mismatch"] = spoil(rng, ledger, bank)
        entry["bank_cents"] = sum(e["amount_cents"] for e in bank)
        expected["accounts"][acc] = entry
        write_csv(os.path.join(a.out, a.day, "ledger", f"{acc}.csv"), ledger)
        write_csv(os.path.join(a.out, a.day, "bank", f"{acc}.csv"), bank)
    with open(os.path.join(a.out, a.day, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print(f"{a.out}/{a.day}: {len(accounts)} accounts, {len(bad)} mismatched")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
