/*
 * nq-cron-lateness: how late a broker's cron ticks are. Leases every job of
 * one queue for a while (the jobs of schedules, whose run_at is their
 * tick) and prints one line:
 *
 *   cron_lateness jobs=N ticks=T enq_p50_ms= enq_p99_ms= enq_max_ms=
 *       seen_p50_ms= seen_p99_ms= seen_max_ms=
 *
 * enq: from the tick to the job's creation in the broker's core (its id);
 * seen: from the tick to this tool's fetch returning it (after the commit,
 * plus the fetch's own delay). Jobs of the first --skip seconds are left
 * out (the broker's start).
 *
 *   nq-cron-lateness --api URL --work URL --queue Q --seconds N [--skip S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq/nq.h"

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double p)
{
	return n ? (double)v[(size_t)(p * (double)(n - 1))] / 1000.0 : 0;
}

int main(int argc, char **argv)
{
	const char *api = NULL, *work = NULL, *queue = "cron";
	int seconds = 20, skip = 3;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--api"))
			api = argv[i + 1];
		else if (!strcmp(argv[i], "--work"))
			work = argv[i + 1];
		else if (!strcmp(argv[i], "--queue"))
			queue = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--skip"))
			skip = atoi(argv[i + 1]);
	}
	nq_client_opts o = {.api_url = api, .work_url = work};
	nq_client *c;
	if (nq_client_open(&c, &o) != NQ_OK)
		return 1;
	size_t cap = 1 << 20, n = 0;
	int64_t *enq = malloc(cap * sizeof *enq),
	        *seen = malloc(cap * sizeof *seen);
	uint64_t t0 = now_us(), from = t0 + (uint64_t)skip * 1000000,
	         end = t0 + (uint64_t)seconds * 1000000;
	uint64_t first_tick = UINT64_MAX, last_tick = 0;
	const char *qs[] = {queue};
	while (now_us() < end && enq && seen) {
		nq_job **jobs = NULL;
		size_t got = 0;
		if (nq_fetch(c, "lateness", qs, 1, 1000, 200, 3600000, &jobs,
		        &got) != NQ_OK)
			continue;
		uint64_t t = now_us();
		for (size_t i = 0; i < got && n < cap; i++) {
			uint64_t tick = nq_job_run_at_us(jobs[i]);
			if (tick < from)
				continue;
			enq[n] = (int64_t)(nq_job_created_us(jobs[i]) - tick);
			seen[n++] = (int64_t)(t - tick);
			if (tick < first_tick)
				first_tick = tick;
			if (tick > last_tick)
				last_tick = tick;
		}
		nq_jobs_free(jobs, got);
	}
	qsort(enq, n, sizeof *enq, cmp);
	qsort(seen, n, sizeof *seen, cmp);
	printf("cron_lateness jobs=%zu ticks=%llu enq_p50_ms=%.1f "
	       "enq_p99_ms=%.1f enq_max_ms=%.1f seen_p50_ms=%.1f "
	       "seen_p99_ms=%.1f seen_max_ms=%.1f\n",
	    n,
	    n ? (unsigned long long)((last_tick - first_tick) / 1000000 + 1)
	      : 0,
	    pct(enq, n, 0.5), pct(enq, n, 0.99), pct(enq, n, 1),
	    pct(seen, n, 0.5), pct(seen, n, 0.99), pct(seen, n, 1));
	nq_client_close(c);
	free(enq);
	free(seen);
	return 0;
}
