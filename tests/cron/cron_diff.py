#!/usr/bin/python3
"""Checks nq's cron ticks (the cron_next tool) against croniter.

croniter walks the local calendar (naive datetimes, so its own DST
arithmetic plays no part); Python's zoneinfo maps each local time to its
instant by nq's rules: a local time in a DST gap fires at the first valid
instant after the gap, one that occurs twice fires at its first
occurrence, and a tick is the first such instant after the start.

Random expressions at random instants of 2000-2035, then instants near the
DST transitions of several zones. Exits 1 on the first mismatches (listed),
0 when every answer agrees. Usage: cron_diff.py PATH/TO/cron_next [SEED]
"""
import random
import subprocess
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter, CroniterBadDateError

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney",
         "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo",
         "Europe/London", "Pacific/Chatham", "America/Havana",
         "Asia/Kathmandu", "America/Los_Angeles"]
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney",
             "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Chatham",
             "America/Havana", "America/Los_Angeles"]
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()
# (lo, hi) of each field, seconds first
RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]

BAD = ["* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *",
       "* * 0 * *", "* * 32 * *", "* * * 13 * ", "* * * * 8", "5-2 * * * *",
       "*/0 * * * *", "a * * * *", "* * * foo *", "1,,2 * * * *",
       "0 0 30 2 *", "0 0 31 4,6,9,11 *", "61 * * * * *", "- * * * *"]


def rand_value(r, fi):
    lo, hi = RANGES[fi]
    v = r.randint(lo, hi)
    if fi == 4 and r.random() < 0.3:
        return MONTHS[v - 1].upper() if r.random() < 0.5 else MONTHS[v - 1]
    if fi == 5 and r.random() < 0.3:
        return DAYS[v]
    return str(v)


def rand_item(r, fi, few):
    lo, hi = RANGES[fi]
    k = r.random()
    if k < 0.35:
        return rand_value(r, fi)
    if k < 0.55:
        a, b = sorted((r.randint(lo, hi), r.randint(lo, hi)))
        return "%d-%d" % (a, b)
    if k < 0.7:
        return "*/%d" % r.randint(1, max(2, (hi - lo) // 2))
    if k < 0.85:
        a, b = sorted((r.randint(lo, hi), r.randint(lo, hi)))
        return "%d-%d/%d" % (a, b, r.randint(1, 5))
    return "%d/%d" % (r.randint(lo, hi), r.randint(1, 7))


def rand_field(r, fi, dense):
    """A field; dense fields (seconds and minutes near DST dates) are
    mostly '*' or small steps so that ticks land inside the transition."""
    if r.random() < (0.6 if dense or fi >= 3 else 0.25):
        return "?" if fi in (3, 5) and r.random() < 0.1 else "*"
    n = 1 if r.random() < 0.7 else r.randint(2, 3)
    return ",".join(rand_item(r, fi, dense) for _ in range(n))


def reaches_7(item):
    """Whether a day-of-week item, as croniter expands it (a range up to
    7 for "*/s" and "a/s"), holds 7."""
    if "/" not in item:
        return False
    base, step = item.split("/")
    if "-" in base:
        return False
    lo = 0 if base == "*" else int(base)
    return (7 - lo) % int(step) == 0


def croniter_ok(expr):
    """croniter's six-field form leaves a day of week 7 (Sunday) unmapped,
    so that it never matches: such expressions are left out."""
    f = expr.split()
    return len(f) == 5 or not any(reaches_7(i) for i in f[5].split(","))


def rand_expr(r, near_dst=False):
    while True:
        e = rand_expr_any(r, near_dst)
        if croniter_ok(e):
            return e


def rand_expr_any(r, near_dst):
    six = r.random() < 0.4
    f = [rand_field(r, i, near_dst and i < 2) for i in range(6)]
    if near_dst and r.random() < 0.7:
        # hours around the transitions (0-4 local)
        f[2] = r.choice(["*", "0-4", "1,2,3", "2", "1", "*/2", "3", "0"])
    if not six:
        f = f[1:]
    return " ".join(f)


def to_croniter(expr):
    f = expr.replace("?", "*").split()
    if len(f) == 6:  # croniter has the seconds last
        f = f[1:] + f[:1]
    return " ".join(f)


def local(t, tz):
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def instant(w, tz):
    """nq's instant of local time w: its first occurrence, or the first
    valid instant after the gap it falls in."""
    first = int(w.replace(tzinfo=tz, fold=0).timestamp())
    if local(first, tz) == w:
        return first
    lo = int(w.replace(tzinfo=tz, fold=1).timestamp())  # before the gap
    hi = first  # after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local(mid, tz) > w:
            hi = mid
        else:
            lo = mid
    return hi


def croniter_next(expr, w):
    """croniter's next local time after w. When both day fields restrict,
    croniter ORs them by taking the earlier of two searches, but gives up
    when one of them finds nothing ("31 of September or a Tuesday"): then
    the other one is the answer."""
    try:
        return croniter(expr, w).get_next(datetime)
    except CroniterBadDateError:
        f = expr.split()
        x = croniter.expand(expr)[0]
        if x[2] == ["*"] or x[4] == ["*"]:
            raise
        for i in (2, 4):
            try:
                g = list(f)
                g[i] = "*"
                return croniter(" ".join(g), w).get_next(datetime)
            except CroniterBadDateError:
                pass
        raise


def oracle(expr, zone, after):
    tz = ZoneInfo(zone)
    w = local(after, tz)
    for _ in range(100000):
        try:
            w = croniter_next(to_croniter(expr), w)
        except CroniterBadDateError:
            return "never"
        t = instant(w, tz)
        if t > after:
            return str(t)
    return "none"


def croniter_skipped(expr, zone, ans, want):
    """croniter jumps over a match now and then: from a day of the month
    past the month's end (day 31 of a February) it lands a few days into
    the next month, skipping its first days. nq's earlier answer stands
    when croniter, asked again from just before it, finds exactly it."""
    if not ans.isdigit() or not want.isdigit() or int(ans) >= int(want):
        return False
    return oracle(expr, zone, int(ans) - 1) == ans


def transitions(zone, years):
    """Instants where the zone's offset changes, found hour by hour."""
    tz = ZoneInfo(zone)
    out = []
    for y in years:
        t = int(datetime(y, 1, 1, tzinfo=timezone.utc).timestamp())
        end = int(datetime(y + 1, 1, 1, tzinfo=timezone.utc).timestamp())
        prev = datetime.fromtimestamp(t, tz).utcoffset()
        while t < end:
            t += 3600
            off = datetime.fromtimestamp(t, tz).utcoffset()
            if off != prev:
                out.append(t)
            prev = off
    return out


def cases(seed):
    r = random.Random(seed)
    lo = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp())
    hi = int(datetime(2035, 1, 1, tzinfo=timezone.utc).timestamp())
    out = [(e, "UTC", lo) for e in BAD]
    out += [(e, z, r.randint(lo, hi)) for e in ("0 0 * * *",)
            for z in ("Mars/Olympus", "Europe/Nowhere", "")]
    for _ in range(3000):
        out.append((rand_expr(r), r.choice(ZONES), r.randint(lo, hi)))
    for zone in DST_ZONES:
        for tr in transitions(zone, (2007, 2016, 2018, 2024, 2025)):
            for _ in range(30):
                out.append((rand_expr(r, True), zone,
                            tr + r.randint(-3 * 3600, 2 * 3600)))
    return out


def main():
    tool = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 13
    asked = cases(seed)
    text = "".join("%s\t%s\t%d\n" % c for c in asked)
    got = subprocess.run([tool], input=text, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(got) == len(asked), "cron_next answered %d of %d" % (
        len(got), len(asked))
    bad = skipped = 0
    for (expr, zone, after), ans in zip(asked, got):
        try:
            if not zone:
                raise ValueError("no zone")
            ZoneInfo(zone)
            want = oracle(expr, zone, after)
        except Exception as e:  # croniter or zoneinfo refuses it
            want = "error"
            if not ans.startswith("error"):
                print("MISMATCH %r %s %d: nq %s, croniter refuses (%s)" % (
                    expr, zone, after, ans, e))
                bad += 1
            continue
        if want == "never" and ans.startswith("error no date matches"):
            continue
        if ans != want and croniter_skipped(expr, zone, ans, want):
            skipped += 1
            continue
        if ans != want:
            print("MISMATCH %r %s %d (%s): nq %s, croniter %s" % (
                expr, zone, after, local(after, ZoneInfo(zone)), ans, want))
            bad += 1
        if bad >= 20:
            break
    print("%d cases, %d mismatches, %d ticks croniter skips (seed %d)" % (
        len(asked), bad, skipped, seed))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
