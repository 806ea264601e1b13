/*
 * A client of more than one broker (nq_client_opts.brokers): one client
 * per shard of the map, and the routing the calls of api.c share. A call
 * about a queue goes to the queue's shard; an enqueue is split by the
 * queue of each job, one request per shard; a call about a job id asks
 * the shards in turn (an id does not name its shard), and the first that
 * has the job answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "shards.h"

int nqc_shards_open(nq_client *c, const nq_client_opts *o)
{
	nq_client_opts sub = *o;
	int rv = nqs_parse(o->brokers, &c->map, c->last_error, NQC_ERR_MAX);
	if (rv != NQ_OK)
		return rv;
	if (!(c->shard = calloc(c->map->n, sizeof *c->shard)))
		return NQ_ENOMEM;
	sub.brokers = NULL;
	for (size_t i = 0; i < c->map->n && rv == NQ_OK; i++) {
		const nqs_shard *s = &c->map->shards[i];
		sub.api_url = s->url[NQS_API];
		sub.work_url = s->url[NQS_WORK];
		sub.results_url = s->url[NQS_RESULTS];
		rv = nq_client_open(&c->shard[i], &sub);
	}
	return rv;
}

void nqc_shards_close(nq_client *c)
{
	for (size_t i = 0; c->shard && i < c->map->n; i++)
		nq_client_close(c->shard[i]);
	free(c->shard);
	nqs_free(c->map);
}

size_t nqc_owner(const nq_client *c, const char *queue)
{
	return nqs_owner(c->map, queue);
}

int nqc_relay(nq_client *c, size_t k, int rv)
{
	const char *why = nq_client_last_error(c->shard[k]);
	if (rv != NQ_OK)
		snprintf(c->last_error, sizeof c->last_error, "shard %s: %s",
		    c->map->shards[k].name, *why ? why : nq_strerror(rv));
	return rv;
}

/* Whether a shard's answer says the job is not there (ask the next). */
static bool elsewhere(int rv)
{
	return rv == NQ_ENOTFOUND;
}

int nqc_locate(nq_client *c, const char *id, size_t *shard, nq_job **out)
{
	int rv = NQ_ENOTFOUND, unreached = NQ_OK;
	size_t miss = 0;
	for (size_t k = 0; k < c->map->n; k++) {
		nq_job *job = NULL;
		rv = nq_get(c->shard[k], id, &job);
		if (rv == NQ_OK) {
			*shard = k;
			if (out)
				*out = job;
			else
				nq_job_free(job);
			return NQ_OK;
		}
		if (!elsewhere(rv) && unreached == NQ_OK) {
			unreached = nqc_relay(c, k, rv);
			miss = k;
		}
	}
	/* A shard that did not answer may hold it: say so, not "not found". */
	if (unreached != NQ_OK)
		return nqc_relay(c, miss, unreached);
	return nqc_fail(c->last_error, NQ_ENOTFOUND,
	    "job %s is on none of the %zu shards", id, c->map->n);
}

/* A chain is one all-or-none request: every job on one shard. */
static int chain_check(
    nq_client *c, const nq_job_spec *specs, size_t n, const size_t *owner)
{
	for (size_t i = 1; i < n; i++)
		if (owner[i] != owner[0])
			return nqc_fail(c->last_error, NQ_EINVAL,
			    "a chain stays on one shard: job 0 (queue %s) is "
			    "on shard %s, job %zu (queue %s) on shard %s; pin "
			    "their queues to one shard in the map",
			    specs[0].queue, c->map->shards[owner[0]].name, i,
			    specs[i].queue, c->map->shards[owner[i]].name);
	return NQ_OK;
}

/* A parent not found on a child's shard: name the rule it broke. */
static void parents_hint(
    nq_client *c, const nq_job_spec *s, size_t k, nq_enqueue_result *res)
{
	if (res->err != NQ_ENOTFOUND || !s->n_depends_on)
		return;
	size_t n = strlen(res->message);
	snprintf(res->message + n, sizeof res->message - n,
	    " (a job's parents must be on its queue's shard, %s)",
	    c->map->shards[k].name);
}

/* The jobs of shard k, as one request; their results back in place. */
static int enqueue_on(nq_client *c, size_t k, const nq_job_spec *specs,
    size_t n, const size_t *owner, nq_enqueue_result *results, bool chain)
{
	nq_job_spec *sub = calloc(n, sizeof *sub);
	nq_enqueue_result *res = calloc(n, sizeof *res);
	size_t m = 0;
	int rv = sub && res ? NQ_OK : NQ_ENOMEM;
	for (size_t i = 0; rv == NQ_OK && i < n; i++)
		if (owner[i] == k)
			sub[m++] = specs[i];
	if (rv == NQ_OK && m)
		rv = nqc_relay(c, k,
		    chain ? nq_enqueue_chain(c->shard[k], sub, m, res)
		          : nq_enqueue_batch(c->shard[k], sub, m, res));
	for (size_t i = 0, j = 0; m && i < n; i++) {
		if (owner[i] != k)
			continue;
		if (rv == NQ_OK) {
			results[i] = res[j];
			parents_hint(c, &specs[i], k, &results[i]);
		} else {
			results[i] = (nq_enqueue_result){.err = rv};
			snprintf(results[i].message, sizeof results[i].message,
			    "%.150s", c->last_error);
		}
		j++;
	}
	free(sub);
	free(res);
	return rv;
}

int nqc_enqueue_sharded(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results, bool chain)
{
	size_t *owner = calloc(n ? n : 1, sizeof *owner);
	int rv = owner ? NQ_OK : NQ_ENOMEM, first = NQ_OK;
	char why[NQC_ERR_MAX] = "";
	for (size_t i = 0; rv == NQ_OK && i < n; i++)
		owner[i] = nqc_owner(c, specs[i].queue);
	if (rv == NQ_OK && chain && n)
		rv = chain_check(c, specs, n, owner);
	/* One request per shard; the first failure is returned, and the
	 * results of the shards that answered still say what they took. */
	for (size_t k = 0; rv == NQ_OK && k < c->map->n; k++) {
		int krv = enqueue_on(c, k, specs, n, owner, results, chain);
		if (krv != NQ_OK && first == NQ_OK) {
			first = krv;
			memcpy(why, c->last_error, sizeof why);
		}
	}
	free(owner);
	if (rv == NQ_OK && first != NQ_OK) {
		memcpy(c->last_error, why, sizeof why);
		rv = first;
	}
	return rv;
}

int nqc_one_broker(nq_client *c, const char *what)
{
	if (!c->map)
		return NQ_OK;
	return nqc_fail(c->last_error, NQ_EINVAL,
	    "%s needs one broker, and this client has a shard map: open a "
	    "client per shard",
	    what);
}
