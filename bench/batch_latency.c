/*
 * nq-batch-latency: what a batch costs. Per run, N plain jobs and then a
 * batch of N jobs with an on_complete callback, each enqueued in requests
 * of 1,000 and run to the end by this tool (fetches of 1,000, their
 * completions streamed); prints one line per run:
 *
 *   batch_latency run=I jobs=N plain_s= batch_s= ratio= callback_ms=
 *                 [plain_cpu_s= batch_cpu_s= cpu_ratio=]
 *
 * plain_s: first enqueue to the broker counting every job succeeded;
 * batch_s: batch creation to the fetch that returns the callback;
 * callback_ms: the last job's completion sent to that fetch (the broker
 * counts the end, enqueues the callback in the same commit, and leases
 * it in the next); with --broker-pid, the broker's CPU time (user and
 * system) in each, which a loaded machine disturbs less than the clock.
 *
 *   nq-batch-latency --api URL --work URL --results URL [--jobs N]
 *                    [--runs R] [--broker-pid PID]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nq/nq.h"

#define PER_REQUEST 1000

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int broker_pid;

/* The broker's CPU time so far, in seconds (0 without --broker-pid). */
static double broker_cpu_s(void)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, st = 0;
	if (!broker_pid)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", broker_pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* after the command's ")": state, then fields 4.. to utime (14) */
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
	              "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	              "%llu %llu",
	              &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Enqueues n jobs of queue q (in batch, when not NULL). */
static int enqueue_all(nq_client *c, const char *q, const char *batch, size_t n)
{
	nq_job_spec specs[PER_REQUEST];
	nq_enqueue_result res[PER_REQUEST];
	for (size_t i = 0; i < PER_REQUEST; i++)
		specs[i] = (nq_job_spec){
		    .queue = q, .type = "noop", .batch_id = batch};
	for (size_t done = 0; done < n;) {
		size_t k = n - done < PER_REQUEST ? n - done : PER_REQUEST;
		if (nq_enqueue_batch(c, specs, k, res) != NQ_OK ||
		    res[k - 1].err != NQ_OK) {
			fprintf(stderr, "batch_latency: enqueue: %s %s\n",
			    nq_client_last_error(c), res[k - 1].message);
			return 1;
		}
		done += k;
	}
	return 0;
}

/* Fetches up to 1,000 jobs of q (waiting up to wait_ms) and completes
 * them; *got: how many. */
static int run_some(nq_client *c, const char *q, uint64_t wait_ms, size_t *got)
{
	static nq_completion done[PER_REQUEST];
	const char *qs[] = {q};
	nq_job **jobs = NULL;
	*got = 0;
	if (nq_fetch(c, "bench", qs, 1, PER_REQUEST, wait_ms, 60000, &jobs,
	        got) != NQ_OK)
		return 1;
	for (size_t i = 0; i < *got; i++)
		done[i] = (nq_completion){.id = nq_job_id(jobs[i]),
		    .lease_token = nq_job_lease_token(jobs[i]),
		    .outcome = NQ_OUTCOME_SUCCEEDED};
	int rv = *got ? nq_complete(c, "bench", done, *got) : NQ_OK;
	nq_jobs_free(jobs, *got);
	return rv != NQ_OK;
}

/* Runs n jobs of q; *last: when the last completion went. */
static int run_all(nq_client *c, const char *q, size_t n, uint64_t *last)
{
	for (size_t ran = 0, got; ran < n; ran += got) {
		if (run_some(c, q, 1000, &got) != 0)
			return 1;
		*last = mono_us();
	}
	return 0;
}

static uint64_t succeeded(nq_client *c, const char *q)
{
	nq_queue_stats *s = NULL;
	size_t n = 0;
	uint64_t v = 0;
	if (nq_stats(c, q, &s, &n, NULL) == NQ_OK && n == 1)
		nq_queue_stats_get(s, 0, "succeeded", &v);
	nq_queue_stats_free(s);
	return v;
}

static int plain_run(nq_client *c, int run, size_t n, double *secs)
{
	char q[32];
	uint64_t last = 0, t0 = mono_us();
	snprintf(q, sizeof q, "plain%d", run);
	if (enqueue_all(c, q, NULL, n) != 0 || run_all(c, q, n, &last) != 0)
		return 1;
	while (succeeded(c, q) < n)
		;
	*secs = (double)(mono_us() - t0) / 1e6;
	return 0;
}

static int batch_run(
    nq_client *c, int run, size_t n, double *secs, double *callback_ms)
{
	char q[32], cbq[32], id[NQ_ID_MAX];
	uint64_t last = 0, t0 = mono_us();
	size_t got = 0;
	snprintf(q, sizeof q, "batch%d", run);
	snprintf(cbq, sizeof cbq, "callback%d", run);
	nq_job_spec cb = {.queue = cbq, .type = "report"};
	if (nq_batch_create(c, NULL, &cb, false, id) != NQ_OK ||
	    enqueue_all(c, q, id, n) != 0 || nq_batch_seal(c, id, NULL) != 0)
		return 1;
	if (run_all(c, q, n, &last) != 0)
		return 1;
	for (int tries = 0; got == 0 && tries < 30; tries++)
		if (run_some(c, cbq, 1000, &got) != 0)
			return 1;
	uint64_t now = mono_us();
	*secs = (double)(now - t0) / 1e6;
	*callback_ms = (double)(now - last) / 1000.0;
	return got == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *api = NULL, *work = NULL, *results = NULL;
	size_t jobs = 100000;
	int runs = 3;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--api"))
			api = argv[i + 1];
		else if (!strcmp(argv[i], "--work"))
			work = argv[i + 1];
		else if (!strcmp(argv[i], "--results"))
			results = argv[i + 1];
		else if (!strcmp(argv[i], "--jobs"))
			jobs = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--runs"))
			runs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--broker-pid"))
			broker_pid = atoi(argv[i + 1]);
	}
	nq_client_opts o = {.api_url = api,
	    .work_url = work,
	    .results_url = results,
	    .timeout_ms = 60000};
	nq_client *c;
	if (jobs < 1 || runs < 1 || nq_client_open(&c, &o) != NQ_OK)
		return 2;
	int rv = 0;
	for (int r = 0; rv == 0 && r < runs; r++) {
		double plain = 0, batch = 0, cb = 0, c0 = broker_cpu_s(), c1,
		       c2;
		rv = plain_run(c, r, jobs, &plain);
		c1 = broker_cpu_s();
		if (rv == 0)
			rv = batch_run(c, r, jobs, &batch, &cb);
		c2 = broker_cpu_s();
		if (rv == 0)
			printf("batch_latency run=%d jobs=%zu plain_s=%.2f "
			       "batch_s=%.2f ratio=%.3f callback_ms=%.2f "
			       "plain_cpu_s=%.2f batch_cpu_s=%.2f "
			       "cpu_ratio=%.3f\n",
			    r, jobs, plain, batch, batch / plain, cb, c1 - c0,
			    c2 - c1, c1 > c0 ? (c2 - c1) / (c1 - c0) : 0);
		fflush(stdout);
	}
	if (rv != 0)
		fprintf(stderr, "batch_latency: %s\n", nq_client_last_error(c));
	nq_client_close(c);
	return rv;
}
