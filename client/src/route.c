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

int nqc_ask_shards(nq_client *c, const char *what, const char *id,
    nqc_ask_fn fn, void *arg, size_t *shard)
{
	int unreached = NQ_OK;
	size_t miss = 0;
	for (size_t k = 0; k < c->map->n; k++) {
		int rv = fn(c->shard[k], arg);
		if (rv == NQ_OK) {
			*shard = k;
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
	    "%s %s is on none of the %zu shards", what, id, c->map->n);
}

typedef struct get_ask {
	const char *id;
	nq_job **out;
} get_ask;

static int get_one(nq_client *shard, void *arg)
{
	get_ask *a = arg;
	return nq_get(shard, a->id, a->out);
}

int nqc_locate(nq_client *c, const char *id, size_t *shard, nq_job **out)
{
	nq_job *job = NULL;
	get_ask a = {id, &job};
	int rv = nqc_ask_shards(c, "job", id, get_one, &a, shard);
	if (rv == NQ_OK && out)
		*out = job;
	else
		nq_job_free(job);
	return rv;
}

/* The queue of part p of g (NULL: g has none there): 0 is the batch's
 * own, 1 and 2 its callbacks, then the jobs. */
static const char *part_queue(const nqc_group *g, size_t p)
{
	if (p == 0)
		return g->queue && *g->queue ? g->queue : NULL;
	if (p <= 2)
		return g->callback[p - 1] ? g->callback[p - 1]->queue : NULL;
	return g->specs[p - 3].queue;
}

/* How an error names part p. */
static void part_name(size_t p, char *out, size_t len)
{
	static const char *const names[] = {
	    "the batch", "on_success", "on_complete"};
	if (p < 3)
		snprintf(out, len, "%s", names[p]);
	else
		snprintf(out, len, "job %zu", p - 3);
}

int nqc_one_shard(nq_client *c, const nqc_group *g, size_t *shard)
{
	size_t first = SIZE_MAX;
	for (size_t p = 0; p < 3 + g->n; p++) {
		const char *q = part_queue(g, p);
		size_t k = q ? nqc_owner(c, q) : 0;
		char one[32], two[32];
		if (!q)
			continue;
		if (first == SIZE_MAX) {
			first = p;
			*shard = k;
		}
		if (k == *shard)
			continue;
		part_name(first, one, sizeof one);
		part_name(p, two, sizeof two);
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "%s stays on one shard: %s (queue %s) is on shard %s, %s "
		    "(queue %s) on shard %s; pin their queues to one shard in "
		    "the map",
		    g->rule, one, part_queue(g, first),
		    c->map->shards[*shard].name, two, q,
		    c->map->shards[k].name);
	}
	if (first == SIZE_MAX)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "%s on a shard map needs a queue to find its shard: give "
		    "a callback or the batch's queue (nq_batch_create_in, "
		    "nqctl batch create --queue Q)",
		    g->rule);
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

/* Where a batch named by jobs of one call is, looked up once. */
typedef struct batch_memo {
	const char *id; /* NULL: none looked up yet */
	size_t shard;
	bool found;
} batch_memo;

/* A job refused on shard k for its batch, which another shard has: name
 * the rule it broke, and both shards. The error path alone pays for the
 * lookup (a batch get on each shard), once per batch of the call. */
static void batch_hint(nq_client *c, const nq_job_spec *s, size_t k,
    nq_enqueue_result *res, batch_memo *m)
{
	if (res->err != NQ_ENOTFOUND || !s->batch_id || !*s->batch_id)
		return;
	if (!m->id || strcmp(m->id, s->batch_id) != 0) {
		m->id = s->batch_id;
		m->found = false;
		for (size_t j = 0; j < c->map->n && !m->found; j++)
			if (j != k && nq_batch_get(c->shard[j], s->batch_id,
			                  NULL) == NQ_OK) {
				m->shard = j;
				m->found = true;
			}
	}
	if (!m->found)
		return;
	res->err = NQ_EINVAL;
	const char *home = c->map->shards[m->shard].name;
	snprintf(res->message, sizeof res->message,
	    "batch %.16s is on shard %.20s, queue %.20s on shard %.20s: a "
	    "batch's jobs stay on its shard",
	    s->batch_id, home, s->queue, c->map->shards[k].name);
}

/* The jobs of shard k, as one request; their results back in place. */
static int enqueue_on(nq_client *c, size_t k, const nq_job_spec *specs,
    size_t n, const size_t *owner, nq_enqueue_result *results, bool chain)
{
	nq_job_spec *sub = calloc(n, sizeof *sub);
	nq_enqueue_result *res = calloc(n, sizeof *res);
	batch_memo memo = {0};
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
			batch_hint(c, &specs[i], k, &results[i], &memo);
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
	size_t home;
	for (size_t i = 0; rv == NQ_OK && i < n; i++)
		owner[i] = nqc_owner(c, specs[i].queue);
	if (rv == NQ_OK && chain)
		rv = nqc_one_shard(c,
		    &(nqc_group){"a chain", NULL, {NULL, NULL}, specs, n},
		    &home);
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

/* Merges page (np, ascending ids) into out (*n, ascending), keeping the
 * cap lowest; *dropped when some did not fit. */
static int merge_page(nq_batch_info *out, size_t *n, const nq_batch_info *page,
    size_t np, size_t cap, bool *dropped)
{
	nq_batch_info *v = malloc(cap * sizeof *v);
	size_t i = 0, j = 0, m = 0;
	if (!v)
		return NQ_ENOMEM;
	while (m < cap && (i < *n || j < np))
		v[m++] =
		    j == np || (i < *n && strcmp(out[i].id, page[j].id) < 0)
		        ? out[i++]
		        : page[j++];
	*dropped = *dropped || i < *n || j < np;
	memcpy(out, v, m * sizeof *v);
	*n = m;
	free(v);
	return NQ_OK;
}

int nqc_batch_list_sharded(nq_client *c, const char *after_id, size_t cap,
    nq_batch_info *out, size_t *n, char *next)
{
	/* Each shard's first page after after_id, merged by id: ids are
	 * unique over the shards (--shard-number), so the pages are one
	 * list, oldest first, and the cursor stays an id. */
	size_t page = cap < NQC_BATCH_PAGE_MAX ? cap : NQC_BATCH_PAGE_MAX;
	nq_batch_info *v = calloc(page, sizeof *v);
	bool more = false;
	int rv = v ? NQ_OK : NQ_ENOMEM;
	char from[NQ_ID_MAX]; /* next may be after_id's buffer */
	snprintf(from, sizeof from, "%s", after_id ? after_id : "");
	*n = 0;
	next[0] = '\0';
	for (size_t k = 0; rv == NQ_OK && k < c->map->n; k++) {
		size_t got = 0;
		char after[NQ_ID_MAX];
		rv = nqc_relay(c, k,
		    nq_batch_list(c->shard[k], from, page, v, &got, after));
		more = more || (rv == NQ_OK && after[0]);
		if (rv == NQ_OK)
			rv = merge_page(out, n, v, got, page, &more);
	}
	free(v);
	if (rv == NQ_ENOMEM)
		return nqc_fail(c->last_error, rv, "out of memory");
	if (rv == NQ_OK)
		snprintf(
		    next, NQ_ID_MAX, "%s", more && *n ? out[*n - 1].id : "");
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
