/*
 * The low-level worker protocol: fetch and extend on the work socket,
 * completions on the results socket. The nqc_ forms write errors to a
 * buffer of the caller's, so the worker's threads can share one client;
 * the public forms wrap them with the client's last error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nqi/leases.h"
#include "nqi/util.h"

#define NAME_RULE "[A-Za-z0-9._-]{1,128}"
/* More jobs than this in one fetch is a mistake, not a batch size. */
#define FETCH_MAX_JOBS 4096
#define FETCH_MAX_QUEUES 256

static int check_worker_id(const char *id, char *err)
{
	if (nqi_name_valid(id))
		return NQ_OK;
	return nqc_fail(err, NQ_EINVAL,
	    "worker id \"%.140s\" is not a valid "
	    "name (" NAME_RULE ")",
	    id ? id : "");
}

static int fetch_check(const char *worker_id, const char *const *queues,
    size_t nqueues, uint32_t max_jobs, char *err)
{
	int rv = check_worker_id(worker_id, err);
	if (rv != NQ_OK)
		return rv;
	if (!queues || nqueues == 0 || nqueues > FETCH_MAX_QUEUES)
		return nqc_fail(err, NQ_EINVAL,
		    "fetch needs 1 to %d queues, got %zu", FETCH_MAX_QUEUES,
		    queues ? nqueues : 0);
	for (size_t i = 0; i < nqueues; i++)
		if (!nqi_name_valid(queues[i]))
			return nqc_fail(err, NQ_EINVAL,
			    "queue \"%.140s\" is "
			    "not a valid name (" NAME_RULE ")",
			    queues[i] ? queues[i] : "");
	if (max_jobs == 0 || max_jobs > FETCH_MAX_JOBS)
		return nqc_fail(err, NQ_EINVAL,
		    "max_jobs is %u, must be 1 to %d", max_jobs,
		    FETCH_MAX_JOBS);
	return NQ_OK;
}

/* Wraps the jobs of a fetch reply, which stay in its arena: the wrappers
 * go there too, and the arena goes with the last job freed. Takes the
 * arena in every case. */
static int fetch_take(Nq__V1__FetchReply *fr, nqi_arena *arena, nq_job ***jobs,
    size_t *n, char *err)
{
	size_t k = fr->n_jobs;
	nq_job **v = NULL;
	nqc_jobs_mem *mem = NULL;
	nq_job *w = k ? nqi_arena_alloc(arena, k * sizeof *w) : NULL;
	if (k && (!w || !(v = calloc(k, sizeof *v)) ||
	             !(mem = malloc(sizeof *mem)))) {
		free(v);
		nqi_arena_free(arena);
		return nqc_fail(err, NQ_ENOMEM, "out of memory");
	}
	if (mem) {
		atomic_init(&mem->refs, (int)k);
		mem->arena = arena;
	} else {
		nqi_arena_free(arena); /* no job holds it */
	}
	for (size_t i = 0; i < k; i++) {
		w[i].pb = fr->jobs[i];
		w[i].mem = mem;
		w[i].slot = NULL;
		v[i] = &w[i];
	}
	*jobs = v;
	*n = k;
	return NQ_OK;
}

int nqc_fetch(nq_client *c, nng_ctx *ctx, uint64_t reply_ms,
    const char *worker_id, const char *const *queues, size_t nqueues,
    uint32_t max_jobs, uint64_t wait_ms, uint64_t lease_ms, nq_job ***jobs,
    size_t *n, char *err)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest body = NQ__V1__FETCH_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	nqi_arena *arena = NULL;
	int rv = fetch_check(worker_id, queues, nqueues, max_jobs, err);
	if (rv != NQ_OK)
		return rv;
	if (wait_ms > NQC_WAIT_CAP_MS)
		wait_ms = NQC_WAIT_CAP_MS;
	body.worker_id = (char *)worker_id;
	body.queues = (char **)queues;
	body.n_queues = nqueues;
	body.max_jobs = max_jobs;
	body.wait_ms = wait_ms;
	body.lease_ms = lease_ms;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &body;
	/* The broker parks the request for up to wait_ms before replying. */
	if (!reply_ms)
		reply_ms = wait_ms + c->timeout_ms;
	rv = nqc_call_arena(c, NQC_WORK, ctx, &req, reply_ms, &r, &arena, err);
	if (rv == NQ_OK)
		rv = nqc_expect(
		    c, NQC_WORK, r, NQ__V1__REPLY__BODY_FETCH, "fetch", err);
	if (rv == NQ_OK && !r->fetch)
		rv = nqc_fail(err, NQ_EPROTO, "reply to fetch is empty");
	if (rv == NQ_OK)
		return fetch_take(r->fetch, arena, jobs, n, err);
	if (r)
		nqi_arena_free(arena);
	return rv;
}

NQ_API int nq_fetch(nq_client *c, const char *worker_id,
    const char *const *queues, size_t nqueues, uint32_t max_jobs,
    uint64_t wait_ms, uint64_t lease_ms, nq_job ***jobs, size_t *n)
{
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	if (!jobs || !n)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "jobs and n must not be NULL");
	if (nqc_one_broker(c, "nq_fetch"))
		return NQ_EINVAL;
	return nqc_fetch(c, NULL, 0, worker_id, queues, nqueues, max_jobs,
	    wait_ms, lease_ms, jobs, n, c->last_error);
}

NQ_API void nq_jobs_free(nq_job **jobs, size_t n)
{
	if (!jobs)
		return;
	for (size_t i = 0; i < n; i++)
		nq_job_free(jobs[i]);
	free(jobs);
}

/* Takes the results of the first n_results leases: a broker answers at
 * most its limit of them, in order; the rest go in the next request. */
static int extend_results(const Nq__V1__ExtendReply *er, size_t n, int *results,
    bool *stop, size_t *answered, char *err)
{
	if (!er || er->n_results == 0 || er->n_results > n)
		return nqc_fail(err, NQ_EPROTO,
		    "extend reply holds %zu results for %zu leases",
		    er ? er->n_results : 0, n);
	for (size_t i = 0; i < er->n_results; i++) {
		const Nq__V1__Status *st = er->results[i];
		results[i] = st ? nqi_err_from_code(st->code) : NQ_OK;
		if (stop)
			stop[i] = i < er->n_stop && er->stop[i];
	}
	*answered = er->n_results;
	return NQ_OK;
}

/* One Extend request for n leases (1 to NQI_LEASES_MAX); *answered gets
 * how many of them, from the first, the reply holds results for. */
static int extend_once(nq_client *c, nng_ctx *ctx, const char *worker_id,
    const nqc_lease *leases, size_t n, uint64_t lease_ms, int *results,
    bool *stop, size_t *answered, char *err)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__ExtendRequest body = NQ__V1__EXTEND_REQUEST__INIT;
	Nq__V1__LeaseRef *refs = calloc(n, sizeof *refs);
	Nq__V1__LeaseRef **prefs = calloc(n, sizeof *prefs);
	Nq__V1__JobProgress *prog = calloc(n, sizeof *prog);
	Nq__V1__Reply *r = NULL;
	int rv = NQ_OK;
	if (!refs || !prefs || !prog) {
		rv = nqc_fail(err, NQ_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		nq__v1__lease_ref__init(&refs[i]);
		refs[i].id = (char *)leases[i].id;
		refs[i].lease_token = leases[i].token;
		if (leases[i].has_progress) {
			nq__v1__job_progress__init(&prog[i]);
			prog[i].pct = leases[i].pct;
			prog[i].note =
			    (char *)(leases[i].note ? leases[i].note : "");
			refs[i].progress = &prog[i];
		}
		prefs[i] = &refs[i];
	}
	body.leases = prefs;
	body.n_leases = n;
	body.lease_ms = lease_ms;
	body.worker_id = (char *)(worker_id ? worker_id : "");
	req.body_case = NQ__V1__REQUEST__BODY_EXTEND;
	req.extend = &body;
	rv = nqc_call(c, NQC_WORK, ctx, &req, c->timeout_ms, &r, err);
	if (rv == NQ_OK)
		rv = nqc_expect(
		    c, NQC_WORK, r, NQ__V1__REPLY__BODY_EXTEND, "extend", err);
	if (rv == NQ_OK)
		rv = extend_results(r->extend, n, results, stop, answered, err);
out:
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	free(refs);
	free(prefs);
	free(prog);
	return rv;
}

/* The broker extends at most NQI_LEASES_MAX leases per request: more go
 * out as several requests, one after another, so none is left to lapse
 * unseen. */
int nqc_extend(nq_client *c, nng_ctx *ctx, const char *worker_id,
    const nqc_lease *leases, size_t n, uint64_t lease_ms, int *results,
    bool *stop, char *err)
{
	size_t done = 0;
	int rv = NQ_OK;
	while (rv == NQ_OK && done < n) {
		size_t k = n - done, answered = 0;
		rv = extend_once(c, ctx, worker_id, leases + done,
		    k < NQI_LEASES_MAX ? k : NQI_LEASES_MAX, lease_ms,
		    results + done, stop ? stop + done : NULL, &answered, err);
		done += answered;
	}
	return rv;
}

/* With a shard map, the shard that holds the lease extends it: each is
 * asked in turn. NQ_EPRECOND once every shard answered it holds none (a
 * probe of every shard's work socket), else the first shard's error. */
static int extend_sharded(
    nq_client *c, const char *id, uint64_t lease_token, uint64_t lease_ms)
{
	int first = NQ_OK;
	for (size_t k = 0; k < c->map->n; k++) {
		int rv = nq_extend(c->shard[k], id, lease_token, lease_ms);
		if (rv == NQ_OK || rv == NQ_EINVAL)
			return nqc_relay(c, k, rv);
		if (rv != NQ_EPRECOND && rv != NQ_ENOTFOUND && first == NQ_OK)
			first = nqc_relay(c, k, rv);
	}
	return first != NQ_OK ? first
	                      : nqc_fail(c->last_error, NQ_EPRECOND,
	                            "lease of job %s: held by no shard", id);
}

NQ_API int nq_extend(
    nq_client *c, const char *id, uint64_t lease_token, uint64_t lease_ms)
{
	uint64_t v;
	int res = NQ_OK; /* nqc_extend sets it whenever it returns NQ_OK */
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	if (c->map)
		return extend_sharded(c, id, lease_token, lease_ms);
	if (!id || nqi_id_parse(id, &v) != 0)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "job id \"%.40s\" is not 16 hex digits", id ? id : "");
	if (lease_token == 0)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "job %s: lease token is 0 (not a leased job)", id);
	nqc_lease lease = {.id = id, .token = lease_token};
	int rv = nqc_extend(
	    c, NULL, "", &lease, 1, lease_ms, &res, NULL, c->last_error);
	if (rv != NQ_OK)
		return rv;
	if (res != NQ_OK)
		return nqc_fail(c->last_error, res, "lease of job %s: %s", id,
		    res == NQ_EPRECOND ? "no longer held" : nq_strerror(res));
	return NQ_OK;
}

static int completion_check(const nq_completion *it, size_t i, char *err)
{
	uint64_t v;
	if (!it->id || nqi_id_parse(it->id, &v) != 0)
		return nqc_fail(err, NQ_EINVAL,
		    "completion %zu: job id "
		    "\"%.40s\" is not 16 hex digits",
		    i, it->id ? it->id : "");
	if (it->outcome < NQ_OUTCOME_SUCCEEDED ||
	    it->outcome > NQ_OUTCOME_RELEASED)
		return nqc_fail(err, NQ_EINVAL,
		    "completion %zu: outcome %d "
		    "is not SUCCEEDED, FAILED or RELEASED",
		    i, (int)it->outcome);
	if (!it->result && it->result_len)
		return nqc_fail(err, NQ_EINVAL,
		    "completion %zu: result is "
		    "NULL but result_len is %zu",
		    i, it->result_len);
	return NQ_OK;
}

static void completion_to_pb(const nq_completion *it, Nq__V1__Completion *pb)
{
	nq__v1__completion__init(pb);
	pb->id = (char *)it->id;
	pb->lease_token = it->lease_token;
	pb->outcome = (Nq__V1__Outcome)it->outcome;
	pb->result.data = (uint8_t *)it->result;
	pb->result.len = it->result_len;
	pb->error = (char *)(it->error ? it->error : "");
	pb->non_retryable = it->non_retryable;
	pb->schema_rejected = it->schema_rejected;
	pb->retry_after_ms = it->retry_after_ms;
	pb->started_us = it->started_us;
	pb->finished_us = it->finished_us;
}

/* Packs and pushes one CompletionBatch; blocks up to the request timeout
 * while no broker takes it. */
static int complete_send(
    nq_client *c, Nq__V1__CompletionBatch *b, size_t n, char *err)
{
	nng_socket s;
	nng_msg *msg;
	int rv;
	b->version = NQI_PROTOCOL_VERSION;
	b->token = c->token ? c->token : (char *)protobuf_c_empty_string;
	if ((rv = nqc_socket(c, NQC_RESULTS, &s, err)) != NQ_OK)
		return rv;
	if ((rv = nqi_completions_msg_pack(b, &msg)) != NQ_OK)
		return nqc_fail(err, rv, "out of memory packing completions");
	if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
		nng_msg_free(msg);
		if (rv == NNG_ETIMEDOUT)
			return nqc_fail(err, NQ_ETIMEDOUT,
			    "results %s: no "
			    "broker took the batch of %zu within %llu ms",
			    nqc_url(c, NQC_RESULTS), n,
			    (unsigned long long)c->timeout_ms);
		return nqc_fail(err, nqi_err_from_nng(rv), "results %s: %s",
		    nqc_url(c, NQC_RESULTS), nng_strerror(rv));
	}
	return NQ_OK;
}

int nqc_complete(nq_client *c, const char *worker_id,
    const nq_completion *items, size_t n, char *err)
{
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion *pb = NULL;
	Nq__V1__Completion **ppb = NULL;
	int rv = check_worker_id(worker_id, err);
	if (rv != NQ_OK)
		return rv;
	if (n && !items)
		return nqc_fail(err, NQ_EINVAL, "items is NULL");
	for (size_t i = 0; i < n; i++)
		if ((rv = completion_check(&items[i], i, err)) != NQ_OK)
			return rv;
	if (n == 0)
		return NQ_OK;
	pb = calloc(n, sizeof *pb);
	ppb = calloc(n, sizeof *ppb);
	if (!pb || !ppb) {
		rv = nqc_fail(err, NQ_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		completion_to_pb(&items[i], &pb[i]);
		ppb[i] = &pb[i];
	}
	b.worker_id = (char *)worker_id;
	b.completions = ppb;
	b.n_completions = n;
	rv = complete_send(c, &b, n, err);
out:
	free(pb);
	free(ppb);
	return rv;
}

NQ_API int nq_complete(
    nq_client *c, const char *worker_id, const nq_completion *items, size_t n)
{
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	if (nqc_one_broker(c, "nq_complete"))
		return NQ_EINVAL;
	return nqc_complete(c, worker_id, items, n, c->last_error);
}
