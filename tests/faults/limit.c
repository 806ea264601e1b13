/*
 * The judge of the limits scenario: a queue's max_in_flight is never
 * exceeded while workers and the broker are killed and stopped.
 *
 * It is judged on the runs, the view of the service behind the workers,
 * because that is what the limit promises ("never more than N at once
 * against the mail server"), and because a broker whose count is right but
 * whose leases are not (a lease it forgot at recovery while its worker runs
 * on, two leases under one count) passes a check of its own count. A run
 * starts after its lease was granted and ends before its completion is
 * sent, so while no fault touches it the broker counts its lease the whole
 * time. Runs at once above the limit are an overrun; it is explained when,
 * at every moment of it, the runs whose lease the broker surely still
 * counted are within the limit, and the others ran on after a fault or a
 * lapse took their lease away: a SIGSTOPped worker's or a killed
 * nq-worker's command, a run that a broker restart cut off, a lease that
 * lapsed. The checker says when each run's lease stopped counting and why
 * (fs_span), as it explains duplicates; an overrun nothing explains fails.
 *
 * The broker's own view, sampled every 10 ms by faultsim sample, is the
 * cross-check: its leased count may never pass the limit, with no
 * exception, and the limit it reports must be the file's. It also shows that
 * the limit is used: while jobs waited ready (away from broker restarts) the
 * mean leased must be close to the limit, or a broker that leases nothing would
 * pass.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"

/* The mean leased while work waits must reach this share of the limit. */
#define LIMIT_USED_SHARE 0.8
/* ... over at least this many samples (1 s at 10 ms), or nothing waited. */
#define LIMIT_MIN_WAITING 100
#define LIMIT_DETAILS 5
#define LIMIT_WHYS 8

/* A change of the runs at once, or a sample of the broker's (probe). */
typedef struct ev {
	uint64_t t;
	int dtotal, dheld; /* runs at once, of them with their lease held */
	int why;           /* -1, or the cause whose count moves by dwhy */
	int dwhy;
	bool probe;
} ev;

typedef struct sweep {
	const char *names[LIMIT_WHYS];
	int active[LIMIT_WHYS];    /* runs past their lease, by cause, now */
	size_t in_eps[LIMIT_WHYS]; /* overruns each cause took part in */
	size_t nwhy;
	ev *ev;
	size_t nev, capev;
	uint64_t t_first;
	double sum_runs;
	size_t nprobes;
} sweep;

static int ev_add(sweep *s, ev e)
{
	if (s->nev == s->capev) {
		size_t cap = s->capev ? s->capev * 2 : 1024;
		ev *v = realloc(s->ev, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		s->ev = v;
		s->capev = cap;
	}
	s->ev[s->nev++] = e;
	return 0;
}

static int why_index(sweep *s, const char *name)
{
	for (size_t i = 0; i < s->nwhy; i++)
		if (strcmp(s->names[i], name) == 0)
			return (int)i;
	if (s->nwhy == LIMIT_WHYS)
		return (int)s->nwhy -
		       1; /* more causes than expected: the last */
	s->names[s->nwhy] = name;
	return (int)s->nwhy++;
}

/* A run: held from its start, and past held_end counted under its cause
 * (from the start when its lease never counted while it ran). */
static int span_events(sweep *s, const fs_span *sp)
{
	if (sp->end <= sp->start)
		return 0; /* its end is unknown: left out */
	bool cut = sp->why && sp->held_end < sp->end;
	int w = cut ? why_index(s, sp->why) : -1;
	bool never = cut && sp->held_end <= sp->start;
	int rv = ev_add(s, never ? (ev){sp->start, 1, 0, w, 1, false}
	                         : (ev){sp->start, 1, 1, -1, 0, false});
	if (rv == 0 && cut && !never)
		rv = ev_add(s, (ev){sp->held_end, 0, -1, w, 1, false});
	if (rv == 0)
		rv = ev_add(s, cut ? (ev){sp->end, -1, 0, w, -1, false}
		                   : (ev){sp->end, -1, -1, -1, 0, false});
	return rv;
}

/* Ends before samples before starts at one moment: a run that ends as
 * another starts was not at once with it. */
static int ev_order(const void *x, const void *y)
{
	const ev *a = x, *b = y;
	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	int ra = a->dtotal + a->dheld, rb = b->dtotal + b->dheld;
	return ra < rb ? -1 : ra > rb;
}

static bool quiet_at(const fs_window *q, size_t n, uint64_t t)
{
	for (size_t i = 0; i < n; i++)
		if (q[i].t0 <= t && t <= q[i].t1)
			return true;
	return false;
}

/* One sample of the broker: its count may never pass the limit, and the
 * limit it reports (when it reports one) must be the queues file's, also
 * after a restart. */
static void judge_sample(
    fs_limit *l, uint64_t leased, bool reported, uint64_t limit)
{
	l->samples++;
	if (leased > l->max_leased)
		l->max_leased = leased;
	if (leased > l->limit && l->over++ < LIMIT_DETAILS)
		printf("  ! the broker had %" PRIu64
		       " jobs of the queue leased "
		       "at once, its max_in_flight is %" PRIu64 "\n",
		    leased, l->limit);
	if (reported && limit != l->limit && l->wrong_limit++ < LIMIT_DETAILS)
		printf("  ! the broker reported max_in_flight %" PRIu64
		       ", the queues file says %" PRIu64 "\n",
		    limit, l->limit);
}

/* Q lines of samples.log: the broker's count, and for the samples taken
 * while work waited a probe of the runs at once. */
static int read_samples(sweep *s, const char *dir, const fs_window *quiet,
    size_t nquiet, fs_limit *l)
{
	char path[4096], line[256];
	uint64_t t0, t1, leased, ready, limit;
	double sum = 0;
	snprintf(path, sizeof path, "%s/samples.log", dir);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f)) {
		int got = sscanf(line,
		    "Q %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
		    " %" SCNu64,
		    &t0, &t1, &leased, &ready, &limit);
		if (got < 4)
			continue;
		judge_sample(l, leased, got == 5, limit);
		if (ready == 0 || quiet_at(quiet, nquiet, t0))
			continue;
		l->waiting++;
		sum += (double)leased;
		if (ev_add(s, (ev){t0 / 2 + t1 / 2, 0, 0, -1, 0, true}) != 0) {
			fclose(f);
			return NQ_ENOMEM;
		}
	}
	if (f)
		fclose(f);
	l->mean_leased = l->waiting ? sum / (double)l->waiting : -1;
	l->used = l->waiting >= LIMIT_MIN_WAITING &&
	          l->mean_leased >= LIMIT_USED_SHARE * (double)l->limit;
	return 0;
}

/* One overrun ended: explained by the causes of the runs past their
 * lease at its peak, unless the held runs passed the limit. */
static void overrun_end(sweep *s, fs_limit *l, bool bad, const bool *at_peak)
{
	if (bad) {
		l->unexplained++;
		return;
	}
	for (size_t w = 0; w < s->nwhy; w++)
		s->in_eps[w] += at_peak[w];
}

static void overrun_bad(
    const sweep *s, const fs_limit *l, uint64_t t, int total, int held)
{
	if (l->unexplained >= LIMIT_DETAILS)
		return;
	printf("  ! %.3f s after the first run: %d runs at once, %d of them "
	       "with a lease the broker still held; max_in_flight is %" PRIu64
	       "\n",
	    (double)(t - s->t_first) / 1e6, total, held, l->limit);
}

static void run_sweep(sweep *s, fs_limit *l)
{
	int total = 0, held = 0, peak = 0;
	bool in = false, bad = false, at_peak[LIMIT_WHYS] = {false};
	for (size_t i = 0; i < s->nev; i++) {
		const ev *e = &s->ev[i];
		if (e->probe) {
			s->sum_runs += total;
			s->nprobes++;
			continue;
		}
		total += e->dtotal;
		held += e->dheld;
		if (e->why >= 0)
			s->active[e->why] += e->dwhy;
		if ((uint64_t)total > l->max_runs)
			l->max_runs = (uint64_t)total;
		if ((uint64_t)held > l->max_held)
			l->max_held = (uint64_t)held;
		if ((uint64_t)total <= l->limit) {
			if (in)
				overrun_end(s, l, bad, at_peak);
			in = false;
			continue;
		}
		if (!in) {
			in = true;
			bad = false;
			peak = 0;
			l->overruns++;
		}
		if ((uint64_t)held > l->limit && !bad) {
			overrun_bad(s, l, e->t, total, held);
			bad = true;
		}
		if (total > peak) {
			peak = total;
			for (size_t w = 0; w < s->nwhy; w++)
				at_peak[w] = s->active[w] > 0;
		}
	}
	if (in)
		overrun_end(s, l, bad, at_peak);
}

static void explained_text(const sweep *s, fs_limit *l)
{
	size_t used = 0, len = sizeof l->explained_by;
	l->explained_by[0] = '\0';
	for (size_t w = 0; w < s->nwhy && used < len; w++) {
		if (!s->in_eps[w])
			continue;
		int n = snprintf(l->explained_by + used, len - used, "%s%s %zu",
		    used ? ", " : "", s->names[w], s->in_eps[w]);
		used += n > 0 ? (size_t)n : 0;
	}
	if (!l->explained_by[0])
		snprintf(l->explained_by, len, "-");
}

int fs_limit_check(const char *dir, const fs_span *spans, size_t n,
    const fs_window *quiet, size_t nquiet, fs_limit *out)
{
	sweep s = {.t_first = UINT64_MAX};
	int rv = 0;
	for (size_t i = 0; rv == 0 && i < n; i++) {
		rv = span_events(&s, &spans[i]);
		if (spans[i].start < s.t_first)
			s.t_first = spans[i].start;
	}
	if (rv == 0)
		rv = read_samples(&s, dir, quiet, nquiet, out);
	if (rv != 0)
		goto out;
	qsort(s.ev, s.nev, sizeof *s.ev, ev_order);
	run_sweep(&s, out);
	explained_text(&s, out);
	out->mean_runs = s.nprobes ? s.sum_runs / (double)s.nprobes : -1;
	if (!out->used)
		printf(
		    "  ! the limit was not used: %.2f leased on average over "
		    "%zu samples while jobs waited ready (at least %.1f over "
		    "%d wanted)\n",
		    out->mean_leased, out->waiting,
		    LIMIT_USED_SHARE * (double)out->limit, LIMIT_MIN_WAITING);
out:
	free(s.ev);
	return rv;
}

size_t fs_limit_violations(const fs_limit *l)
{
	return l->unexplained + l->over + l->wrong_limit + (l->used ? 0 : 1);
}
