/*
 * nq-chain-latency: the cost of a dependency hop. Enqueues a chain of N
 * jobs (nq_enqueue_chain: each waits for the one before it), then runs it
 * link by link on one slot, and prints one line:
 *
 *   chain_latency links=N hop_p50_ms= hop_p99_ms= hop_max_ms= total_s=
 *
 * hop: from this tool sending the success of link i-1 to the fetch that
 * returns link i, which the broker released in the completion's commit
 * and leased in the next one (both durable with --sync=always).
 *
 *   nq-chain-latency --api URL --work URL --results URL [--links N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq/nq.h"

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	return n ? (double)v[(size_t)(p * (double)(n - 1))] / 1000.0 : 0;
}

/* Leases the next link (waiting for it) and completes it; *sent: when. */
static int run_link(nq_client *c, uint64_t *hop, uint64_t *sent)
{
	const char *qs[] = {"chain"};
	nq_job **jobs = NULL;
	size_t got = 0;
	for (int tries = 0; got == 0 && tries < 30; tries++)
		if (nq_fetch(c, "chain", qs, 1, 1, 1000, 60000, &jobs, &got) !=
		    NQ_OK)
			return 1;
	if (got != 1)
		return 1;
	if (*sent)
		*hop = mono_us() - *sent;
	nq_completion done = {.id = nq_job_id(jobs[0]),
	    .lease_token = nq_job_lease_token(jobs[0]),
	    .outcome = NQ_OUTCOME_SUCCEEDED};
	*sent = mono_us();
	int rv = nq_complete(c, "chain", &done, 1);
	nq_jobs_free(jobs, got);
	return rv != NQ_OK;
}

int main(int argc, char **argv)
{
	const char *api = NULL, *work = NULL, *results = NULL;
	size_t links = 10000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--api"))
			api = argv[i + 1];
		else if (!strcmp(argv[i], "--work"))
			work = argv[i + 1];
		else if (!strcmp(argv[i], "--results"))
			results = argv[i + 1];
		else if (!strcmp(argv[i], "--links"))
			links = (size_t)atol(argv[i + 1]);
	}
	nq_client_opts o = {
	    .api_url = api, .work_url = work, .results_url = results};
	nq_client *c;
	if (links < 2 || links > 10000 || nq_client_open(&c, &o) != NQ_OK)
		return 2;
	nq_job_spec *specs = calloc(links, sizeof *specs);
	nq_enqueue_result *res = calloc(links, sizeof *res);
	uint64_t *hops = calloc(links, sizeof *hops), sent = 0;
	int rv = specs && res && hops ? 0 : 1;
	for (size_t i = 0; rv == 0 && i < links; i++)
		specs[i] = (nq_job_spec){.queue = "chain", .type = "link"};
	if (rv == 0 && (nq_enqueue_chain(c, specs, links, res) != NQ_OK ||
	                   res[links - 1].err != NQ_OK)) {
		fprintf(stderr, "chain_latency: enqueue: %s %s\n",
		    nq_client_last_error(c), res[links - 1].message);
		rv = 1;
	}
	uint64_t t0 = mono_us();
	for (size_t i = 0; rv == 0 && i < links; i++)
		rv = run_link(c, &hops[i], &sent);
	double total = (double)(mono_us() - t0) / 1e6;
	qsort(hops + 1, links - 1, sizeof *hops, cmp);
	if (rv == 0)
		printf(
		    "chain_latency links=%zu hop_p50_ms=%.2f hop_p99_ms=%.2f "
		    "hop_max_ms=%.2f total_s=%.1f\n",
		    links, pct(hops + 1, links - 1, 0.5),
		    pct(hops + 1, links - 1, 0.99), pct(hops + 1, links - 1, 1),
		    total);
	nq_client_close(c);
	free(specs);
	free(res);
	free(hops);
	return rv;
}
