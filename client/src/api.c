/*
 * The producer and operator calls on the api socket: enqueue, get, wait,
 * cancel, stats, pause and resume. Arguments are checked here first, so
 * that a bad one returns NQ_EINVAL with a reason before anything is sent.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nqi/blob.h"
#include "nqi/queue_fields.h"
#include "nqi/util.h"

#define NAME_RULE "[A-Za-z0-9._-]{1,128}"

static int check_name(const char *what, const char *name, char *err)
{
	if (nqi_name_valid(name))
		return NQ_OK;
	if (!name)
		return nqc_fail(err, NQ_EINVAL, "%s is missing", what);
	return nqc_fail(err, NQ_EINVAL,
	    "%s \"%.140s\" is not a valid name "
	    "(" NAME_RULE ")",
	    what, name);
}

/* Checks a job id and writes its canonical lowercase form. */
static int check_id(const char *id, char canon[NQ_ID_MAX], char *err)
{
	uint64_t v;
	if (!id)
		return nqc_fail(err, NQ_EINVAL, "job id is missing");
	if (nqi_id_parse(id, &v) != 0)
		return nqc_fail(err, NQ_EINVAL,
		    "job id \"%.40s\" is not 16 hex digits", id);
	nqi_id_format(v, canon);
	return NQ_OK;
}

static int check_client(nq_client *c)
{
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	return NQ_OK;
}

static char *str_in(const char *s)
{
	return s ? (char *)s : (char *)protobuf_c_empty_string;
}

/* check_name of a field of job i. The label is formatted only for a name
 * that fails: this runs for every job of every enqueue, where two formats
 * cost more than the rest of the checks. */
static int check_job_name(
    size_t i, const char *field, const char *name, char *err)
{
	char what[40];
	if (nqi_name_valid(name))
		return NQ_OK;
	snprintf(what, sizeof what, "job %zu: %s", i, field);
	return check_name(what, name, err);
}

static int check_spec(const nq_job_spec *s, size_t i, char *err)
{
	int rv;
	if (!s)
		return nqc_fail(err, NQ_EINVAL, "job spec %zu is NULL", i);
	if ((rv = check_job_name(i, "queue", s->queue, err)) != 0 ||
	    (rv = check_job_name(i, "type", s->type, err)) != 0)
		return rv;
	if (!s->payload && s->payload_len)
		return nqc_fail(err, NQ_EINVAL,
		    "job %zu: payload is NULL but payload_len is %zu", i,
		    s->payload_len);
	if (s->payload_sha256 && *s->payload_sha256 &&
	    !nqi_sha256_valid(s->payload_sha256))
		return nqc_fail(err, NQ_EINVAL,
		    "job %zu: payload_sha256 is not 64 lowercase hex digits",
		    i);
	return NQ_OK;
}

/* Fills the wire form of a spec; it borrows every pointer of s, and
 * unique is its Unique when it sets a scope or a window, dep its
 * Dependencies when it has parents (before: the earlier job of its
 * request it waits for, or NULL). */
static void spec_to_pb(const nq_job_spec *s, Nq__V1__JobSpec *pb,
    Nq__V1__Unique *unique, Nq__V1__Dependencies *dep, uint32_t *before)
{
	nq__v1__job_spec__init(pb);
	pb->queue = str_in(s->queue);
	pb->type = str_in(s->type);
	pb->payload.data = (uint8_t *)s->payload;
	pb->payload.len = s->payload_len;
	pb->content_type = str_in(s->content_type);
	pb->schema_version = s->schema_version;
	pb->priority = s->priority;
	pb->run_at_us = s->run_at_us;
	pb->delay_ms = s->delay_ms;
	pb->max_attempts = s->max_attempts;
	pb->timeout_ms = s->timeout_ms;
	pb->idempotency_key = str_in(s->idempotency_key);
	pb->ordering_key = str_in(s->ordering_key);
	pb->traceparent = str_in(s->traceparent);
	pb->payload_ref = str_in(s->payload_ref);
	pb->deadline_us = s->deadline_us;
	pb->replay_of = str_in(s->replay_of);
	pb->group_key = str_in(s->group_key);
	if (s->unique_scope || s->unique_window_ms) {
		nq__v1__unique__init(unique);
		unique->scope = (Nq__V1__UniqueScope)s->unique_scope;
		unique->window_ms = s->unique_window_ms;
		pb->unique = unique;
	}
	pb->payload_size = s->payload_size;
	pb->payload_sha256 = str_in(s->payload_sha256);
	pb->finish_within_ms = s->finish_within_ms;
	if (before || (s->depends_on && s->n_depends_on) ||
	    s->run_on_parent_failure || (s->batch_id && *s->batch_id)) {
		nq__v1__dependencies__init(dep);
		dep->depends_on = (char **)s->depends_on;
		dep->n_depends_on = s->depends_on ? s->n_depends_on : 0;
		dep->on_parent_failure =
		    s->run_on_parent_failure
		        ? NQ__V1__PARENT_FAILURE__PARENT_FAILURE_RUN
		        : NQ__V1__PARENT_FAILURE__PARENT_FAILURE_CANCEL;
		dep->depends_on_index = before;
		dep->n_depends_on_index = before ? 1 : 0;
		dep->batch_id = str_in(s->batch_id);
		pb->depends = dep;
	}
}

/* Copies an id cut to fit as "%s" would: once per job of every enqueue,
 * where a format costs more than the copy. */
static void copy_id(char dst[NQ_ID_MAX], const char *src)
{
	size_t n = strnlen(src, NQ_ID_MAX - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void result_from_pb(
    const Nq__V1__EnqueueResult *er, nq_enqueue_result *res)
{
	const Nq__V1__Status *st = er ? er->status : NULL;
	memset(res, 0, sizeof *res);
	res->err = st ? nqi_err_from_code(st->code) : NQ_OK;
	if (res->err != NQ_OK)
		snprintf(res->message, sizeof res->message, "%s",
		    st->message && st->message[0] ? st->message
		                                  : nq_strerror(res->err));
	if (er) {
		copy_id(res->id, str_in(er->id));
		res->duplicate = er->duplicate;
	}
}

/* A batch an enqueue creates (EnqueueRequest.batch): the request, with
 * room for its callbacks' specs, and the id the reply names. */
typedef struct nq_batch_new {
	Nq__V1__BatchCreateRequest req;
	Nq__V1__JobSpec pb[2];
	Nq__V1__Unique unique[2];
	Nq__V1__Dependencies dep[2];
	char *id;
} nq_batch_new;

/* Fills b->req from the callbacks (NULL: none); they are checked. */
static int batch_new(nq_client *c, nq_batch_new *b,
    const nq_job_spec *on_success, const nq_job_spec *on_complete, bool seal)
{
	const nq_job_spec *cbs[2] = {on_success, on_complete};
	Nq__V1__JobSpec **slots[2] = {&b->req.on_success, &b->req.on_complete};
	nq__v1__batch_create_request__init(&b->req);
	b->req.seal = seal;
	for (int i = 0; i < 2; i++) {
		int rv = cbs[i] ? check_spec(cbs[i], (size_t)i, c->last_error)
		                : NQ_OK;
		if (rv != NQ_OK)
			return rv;
		if (!cbs[i])
			continue;
		spec_to_pb(cbs[i], &b->pb[i], &b->unique[i], &b->dep[i], NULL);
		*slots[i] = &b->pb[i];
	}
	return NQ_OK;
}

/* Sends the packed specs and reads one result per spec. */
/* A pipelined enqueue (nq_enqueue_batch_send): the call in flight, or,
 * when it could not be pipelined, the outcome of the whole enqueue. */
struct nq_enqueue_pending {
	nqc_pending call;
	nq_enqueue_result *results;
	size_t n;
	bool done; /* send did it all: nothing in flight */
};

/* The request of an enqueue of pbs, in *req and *body. */
static void enqueue_request(Nq__V1__Request *req, Nq__V1__EnqueueRequest *body,
    Nq__V1__JobSpec **pbs, size_t n, bool all_or_none, nq_batch_new *batch)
{
	*req = (Nq__V1__Request)NQ__V1__REQUEST__INIT;
	*body = (Nq__V1__EnqueueRequest)NQ__V1__ENQUEUE_REQUEST__INIT;
	body->jobs = pbs;
	body->n_jobs = n;
	body->all_or_none = all_or_none;
	body->batch = batch ? &batch->req : NULL;
	req->body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req->enqueue = body;
}

/* Reads the reply r of an enqueue of n jobs (rv: how the call ended) into
 * results, and frees it. */
static int enqueue_answer(nq_client *c, int rv, Nq__V1__Reply *r,
    nqi_arena *arena, size_t n, nq_enqueue_result *results, nq_batch_new *batch)
{
	if (rv == NQ_OK)
		rv = nqc_expect(c, NQC_API, r, NQ__V1__REPLY__BODY_ENQUEUE,
		    "enqueue", c->last_error);
	if (rv == NQ_OK && (!r->enqueue || r->enqueue->n_results != n))
		rv = nqc_fail(c->last_error, NQ_EPROTO,
		    "enqueue reply holds %zu results for %zu jobs",
		    r->enqueue ? r->enqueue->n_results : 0, n);
	for (size_t i = 0; rv == NQ_OK && i < n; i++)
		result_from_pb(r->enqueue->results[i], &results[i]);
	if (rv == NQ_OK && batch)
		snprintf(
		    batch->id, NQ_ID_MAX, "%s", str_in(r->enqueue->batch_id));
	if (r)
		nqi_arena_free(arena);
	return rv;
}

static int enqueue_call(nq_client *c, Nq__V1__JobSpec **pbs, size_t n,
    nq_enqueue_result *results, bool all_or_none, nq_batch_new *batch)
{
	Nq__V1__Request req;
	Nq__V1__EnqueueRequest body;
	Nq__V1__Reply *r = NULL;
	nqi_arena *arena = NULL;
	enqueue_request(&req, &body, pbs, n, all_or_none, batch);
	int rv = nqc_call_arena(
	    c, NQC_API, NULL, &req, c->timeout_ms, &r, &arena, c->last_error);
	return enqueue_answer(c, rv, r, arena, n, results, batch);
}

/* Sends the enqueue of pbs for p; its answer comes in its wait. */
static int enqueue_send(
    nq_client *c, Nq__V1__JobSpec **pbs, size_t n, nq_enqueue_pending *p)
{
	Nq__V1__Request req;
	Nq__V1__EnqueueRequest body;
	enqueue_request(&req, &body, pbs, n, false, NULL);
	return nqc_call_send(
	    c, NQC_API, &req, c->timeout_ms, &p->call, c->last_error);
}

/* rv is how the enqueue call ended. The blobs of jobs the broker did not
 * take (refused, or a duplicate, whose existing job has its own) are
 * removed, and all of them when the request failed; those of a request
 * whose fate is unknown (no reply in time) are kept, since the jobs may
 * exist. The others now belong to their jobs. */
static void offload_settle(
    char **refs, size_t n, int rv, const nq_enqueue_result *results)
{
	bool unknown = rv == NQ_ETIMEDOUT || rv == NQ_ECLOSED;
	for (size_t i = 0; i < n; i++) {
		bool unused = rv == NQ_OK ? results[i].err != NQ_OK ||
		                                results[i].duplicate
		                          : !unknown;
		if (unused)
			nqc_offload_undo(refs[i]);
		else
			free(refs[i]);
	}
}

static int check_specs(nq_client *c, const nq_job_spec *specs, size_t n,
    const nq_enqueue_result *results)
{
	if (n && (!specs || !results))
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "specs and results must not be NULL");
	for (size_t i = 0; i < n; i++) {
		int rv = check_spec(&specs[i], i, c->last_error);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* nq_enqueue_batch; chain: each job waits for the one before it, and the
 * request is all or none. */
static int enqueue_specs(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results, bool chain, nq_batch_new *batch,
    nq_enqueue_pending *pend)
{
	uint32_t *before = NULL;
	Nq__V1__Dependencies *dep = NULL;
	Nq__V1__JobSpec *pb = NULL;
	Nq__V1__JobSpec **pbs = NULL;
	char **refs = NULL;
	Nq__V1__Unique *uq = NULL;
	int rv;
	if ((rv = check_client(c)) != 0)
		return rv;
	if ((rv = check_specs(c, specs, n, results)) != 0)
		return rv;
	if (n == 0)
		return NQ_OK;
	if (c->map)
		return nqc_enqueue_sharded(c, specs, n, results, chain);
	pb = calloc(n, sizeof *pb);
	pbs = calloc(n, sizeof *pbs);
	uq = calloc(n, sizeof *uq);
	dep = calloc(n, sizeof *dep);
	before = chain ? calloc(n, sizeof *before) : NULL;
	/* Without offloading, enqueues pay nothing for it. */
	refs = c->blob_dir ? calloc(n, sizeof *refs) : NULL;
	if (!pb || !pbs || !uq || (c->blob_dir && !refs) ||
	    (chain && !before)) {
		rv = nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && rv == NQ_OK; i++) {
		if (chain)
			before[i] = (uint32_t)(i - 1);
		spec_to_pb(&specs[i], &pb[i], &uq[i], &dep[i],
		    chain && i > 0 ? &before[i] : NULL);
		pbs[i] = &pb[i];
		if (refs)
			rv = nqc_offload(
			    c, &specs[i], &pb[i], &refs[i], c->last_error);
	}
	if (rv == NQ_OK && pend && !refs)
		rv = enqueue_send(c, pbs, n, pend);
	else if (rv == NQ_OK)
		rv = enqueue_call(c, pbs, n, results, chain, batch);
	if (refs)
		offload_settle(refs, n, rv, results);
out:
	free(before);
	free(dep);
	free(pb);
	free(pbs);
	free(refs);
	free(uq);
	return rv;
}

NQ_API int nq_enqueue_batch(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results)
{
	return enqueue_specs(c, specs, n, results, false, NULL, NULL);
}

NQ_API int nq_enqueue_batch_send(nq_client *c, const nq_job_spec *specs,
    size_t n, nq_enqueue_result *results, nq_enqueue_pending **out)
{
	if (!out)
		return NQ_EINVAL;
	*out = NULL;
	nq_enqueue_pending *p = calloc(1, sizeof *p);
	if (!p)
		return c ? nqc_fail(c->last_error, NQ_ENOMEM, "out of memory")
		         : NQ_EINVAL;
	p->results = results;
	p->n = n;
	/* Sharded, offloading or empty: done here, in whole. */
	bool pipelined = c && !c->map && !c->blob_dir && n > 0;
	int rv = enqueue_specs(
	    c, specs, n, results, false, NULL, pipelined ? p : NULL);
	if (rv != NQ_OK) {
		free(p);
		return rv;
	}
	p->done = !pipelined;
	*out = p;
	return NQ_OK;
}

NQ_API int nq_enqueue_batch_wait(nq_client *c, nq_enqueue_pending *p)
{
	if (!p)
		return NQ_EINVAL;
	if (!c) {
		if (!p->done)
			nqc_call_drop(&p->call);
		free(p);
		return NQ_EINVAL;
	}
	int rv = NQ_OK;
	if (!p->done) {
		Nq__V1__Reply *r = NULL;
		nqi_arena *arena = NULL;
		nqc_begin(c);
		rv = nqc_call_finish(c, &p->call, &r, &arena, c->last_error);
		rv = enqueue_answer(c, rv, r, arena, p->n, p->results, NULL);
	}
	free(p);
	return rv;
}

NQ_API int nq_enqueue_chain(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results)
{
	return enqueue_specs(c, specs, n, results, true, NULL, NULL);
}

NQ_API int nq_enqueue(
    nq_client *c, const nq_job_spec *spec, char id[NQ_ID_MAX], bool *duplicate)
{
	nq_enqueue_result res;
	if (c && !spec) {
		nqc_begin(c);
		return nqc_fail(c->last_error, NQ_EINVAL, "job spec is NULL");
	}
	int rv = nq_enqueue_batch(c, spec, 1, &res);
	if (rv != NQ_OK)
		return rv;
	if (res.err != NQ_OK)
		return nqc_fail(c->last_error, res.err, "%s", res.message);
	if (id)
		memcpy(id, res.id, NQ_ID_MAX);
	if (duplicate)
		*duplicate = res.duplicate;
	return NQ_OK;
}

/* One call on the api socket whose reply must carry body `want` (what
 * names the call in errors). As nqc_call: whenever *reply is set the
 * caller frees it, whatever this returns. */
static int api_call(nq_client *c, Nq__V1__Request *req, uint64_t reply_ms,
    Nq__V1__Reply__BodyCase want, const char *what, Nq__V1__Reply **reply)
{
	int rv =
	    nqc_call(c, NQC_API, NULL, req, reply_ms, reply, c->last_error);
	if (rv == NQ_OK)
		rv = nqc_expect(c, NQC_API, *reply, want, what, c->last_error);
	return rv;
}

/* Takes the job out of a reply body (slot may be NULL) so that it
 * outlives the reply. */
static int take_job(
    nq_client *c, Nq__V1__Job **slot, const char *what, nq_job **out)
{
	Nq__V1__Job *pb = slot ? *slot : NULL;
	if (!pb)
		return nqc_fail(c->last_error, NQ_EPROTO,
		    "reply to %s carries no job", what);
	*slot = NULL;
	if (nqc_job_wrap(pb, out) != 0)
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	return NQ_OK;
}

/* Where the body of a Get or Wait reply holds its job (NULL if none). */
static Nq__V1__Job **job_slot(Nq__V1__Reply *r)
{
	if (r->body_case == NQ__V1__REPLY__BODY_GET && r->get)
		return &r->get->job;
	if (r->body_case == NQ__V1__REPLY__BODY_WAIT && r->wait)
		return &r->wait->job;
	return NULL;
}

/* api_call for a request answered by one job, which goes to *out. */
static int job_call(nq_client *c, Nq__V1__Request *req, uint64_t reply_ms,
    Nq__V1__Reply__BodyCase want, const char *what, nq_job **out)
{
	Nq__V1__Reply *r = NULL;
	int rv = api_call(c, req, reply_ms, want, what, &r);
	if (rv == NQ_OK)
		rv = take_job(c, job_slot(r), what, out);
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

/* The checks of get and wait: a client, an out pointer, a job id, whose
 * canonical form goes to canon. */
static int check_job_args(
    nq_client *c, const char *id, nq_job **out, char canon[NQ_ID_MAX])
{
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!out)
		return nqc_fail(c->last_error, NQ_EINVAL, "out is NULL");
	return check_id(id, canon, c->last_error);
}

NQ_API int nq_get(nq_client *c, const char *id, nq_job **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__GetRequest body = NQ__V1__GET_REQUEST__INIT;
	char canon[NQ_ID_MAX];
	size_t k;
	int rv = check_job_args(c, id, out, canon);
	if (rv != 0)
		return rv;
	if (c->map)
		return nqc_locate(c, canon, &k, out);
	body.id = canon;
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &body;
	return job_call(
	    c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_GET, "get", out);
}

/* One Wait request of at most NQC_WAIT_CAP_MS; the job as it is then. */
static int wait_once(
    nq_client *c, const char *canon, uint64_t wait_ms, nq_job **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__WaitRequest body = NQ__V1__WAIT_REQUEST__INIT;
	body.id = (char *)canon;
	body.timeout_ms = wait_ms;
	req.body_case = NQ__V1__REQUEST__BODY_WAIT;
	req.wait = &body;
	/* The reply may legitimately take the whole wait, so the transport
	 * timeout runs on top of it. */
	return job_call(c, &req, wait_ms + c->timeout_ms,
	    NQ__V1__REPLY__BODY_WAIT, "wait", out);
}

/* Sleeps before asking again when the broker answered a wait at once, so a
 * broker that does not park waits cannot make this a busy loop. */
static void wait_pause(uint64_t asked_ms, uint64_t timeout_ms, uint64_t spent)
{
	uint64_t pause_ms = 100;
	if (nqi_mono_ms() - asked_ms >= 50 ||
	    (timeout_ms && spent >= timeout_ms))
		return;
	if (timeout_ms && timeout_ms - spent < pause_ms)
		pause_ms = timeout_ms - spent;
	nng_msleep((nng_duration)pause_ms);
}

NQ_API int nq_wait(
    nq_client *c, const char *id, uint64_t timeout_ms, nq_job **out)
{
	char canon[NQ_ID_MAX];
	uint64_t start = nqi_mono_ms();
	nq_state st = NQ_STATE_UNSPECIFIED;
	size_t k;
	int rv = check_job_args(c, id, out, canon);
	if (rv != 0)
		return rv;
	if (c->map && (rv = nqc_locate(c, canon, &k, NULL)) != NQ_OK)
		return rv;
	if (c->map)
		return nqc_relay(
		    c, k, nq_wait(c->shard[k], canon, timeout_ms, out));
	for (;;) {
		uint64_t spent = nqi_mono_ms() - start;
		if (timeout_ms && spent >= timeout_ms)
			return nqc_fail(c->last_error, NQ_ETIMEDOUT,
			    "job %s is still %s after %llu ms", canon,
			    nq_state_name(st), (unsigned long long)timeout_ms);
		uint64_t left =
		    timeout_ms ? timeout_ms - spent : NQC_WAIT_CAP_MS;
		uint64_t asked = nqi_mono_ms();
		nq_job *job;
		rv = wait_once(c, canon,
		    left < NQC_WAIT_CAP_MS ? left : NQC_WAIT_CAP_MS, &job);
		if (rv != NQ_OK)
			return rv;
		st = nq_job_state(job);
		if (nq_state_is_final(st)) {
			*out = job;
			return NQ_OK;
		}
		nq_job_free(job);
		wait_pause(asked, timeout_ms, nqi_mono_ms() - start);
	}
}

NQ_API int nq_cancel(nq_client *c, const char *id, nq_job **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__CancelRequest body = NQ__V1__CANCEL_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	char canon[NQ_ID_MAX];
	nq_job *job = NULL;
	int rv;
	if ((rv = check_client(c)) != 0)
		return rv;
	if ((rv = check_id(id, canon, c->last_error)) != 0)
		return rv;
	if (c->map) {
		size_t k;
		if ((rv = nqc_locate(c, canon, &k, NULL)) != NQ_OK)
			return rv;
		return nqc_relay(c, k, nq_cancel(c->shard[k], canon, out));
	}
	body.id = canon;
	req.body_case = NQ__V1__REQUEST__BODY_CANCEL;
	req.cancel = &body;
	rv = nqc_call(c, NQC_API, NULL, &req, c->timeout_ms, &r, c->last_error);
	/* A refused cancel (EPRECOND) still reports the job as it is. */
	if ((rv == NQ_OK || rv == NQ_EPRECOND) && out) {
		Nq__V1__Job **slot =
		    r->body_case == NQ__V1__REPLY__BODY_CANCEL && r->cancel
		        ? &r->cancel->job
		        : NULL;
		if (rv == NQ_OK || (slot && *slot)) {
			int trv = take_job(c, slot, "cancel", &job);
			rv = trv ? trv : rv;
		}
	}
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	if (job)
		*out = job;
	return rv;
}

NQ_API int nq_cancel_bulk(nq_client *c, const char *queue, nq_state state,
    const char *type, uint32_t *canceled)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__CancelRequest body = NQ__V1__CANCEL_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	int rv = check_client(c);
	if (rv == 0)
		rv = check_name("queue", queue, c->last_error);
	if (rv == 0 && type && type[0])
		rv = check_name("type", type, c->last_error);
	if (rv != 0)
		return rv;
	if (c->map) {
		size_t k = nqc_owner(c, queue);
		return nqc_relay(c, k,
		    nq_cancel_bulk(c->shard[k], queue, state, type, canceled));
	}
	body.queue = (char *)queue;
	body.state = (Nq__V1__JobState)state;
	body.type = (char *)(type ? type : "");
	req.body_case = NQ__V1__REQUEST__BODY_CANCEL;
	req.cancel = &body;
	rv = nqc_call(c, NQC_API, NULL, &req, c->timeout_ms, &r, c->last_error);
	if (rv == NQ_OK)
		rv = nqc_expect(c, NQC_API, r, NQ__V1__REPLY__BODY_CANCEL,
		    "cancel", c->last_error);
	if (rv == NQ_OK && canceled)
		*canceled = r->cancel->canceled;
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

/* The client and the queue of a queue call; with every_ok, NULL or ""
 * (every queue) passes too. */
static int check_queue(nq_client *c, const char *queue, bool every_ok)
{
	int rv = check_client(c);
	if (rv == 0 && !(every_ok && (!queue || !queue[0])))
		rv = check_name("queue", queue, c->last_error);
	return rv;
}

static int queue_call(nq_client *c, const char *queue, bool pause)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__PauseRequest p = NQ__V1__PAUSE_REQUEST__INIT;
	Nq__V1__ResumeRequest q = NQ__V1__RESUME_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	int rv = check_queue(c, queue, false);
	if (rv != 0)
		return rv;
	if (c->map) {
		size_t k = nqc_owner(c, queue);
		return nqc_relay(c, k,
		    pause ? nq_pause(c->shard[k], queue)
		          : nq_resume(c->shard[k], queue));
	}
	p.queue = q.queue = (char *)queue;
	req.body_case =
	    pause ? NQ__V1__REQUEST__BODY_PAUSE : NQ__V1__REQUEST__BODY_RESUME;
	if (pause)
		req.pause = &p;
	else
		req.resume = &q;
	rv = api_call(c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_QUEUE,
	    pause ? "pause" : "resume", &r);
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

NQ_API int nq_pause(nq_client *c, const char *queue)
{
	return queue_call(c, queue, true);
}

NQ_API int nq_resume(nq_client *c, const char *queue)
{
	return queue_call(c, queue, false);
}

/* A policy reply as decoded, and its rows across queues. */
struct nq_queue_policy {
	Nq__V1__Reply *reply;
	const Nq__V1__QueuePolicyReply *body;
	size_t nrows;
	nq_queue_policy *more; /* the next shard's, with a shard map */
};

/* Takes the policy reply r into *out (or frees it when out is NULL). */
static int policy_take(nq_client *c, Nq__V1__Reply *r,
    const Nq__V1__QueuePolicyReply *body, nq_queue_policy **out)
{
	nq_queue_policy *p = NULL;
	if (!body) {
		nq__v1__reply__free_unpacked(r, NULL);
		return nqc_fail(c->last_error, NQ_EPROTO,
		    "reply to a policy request carries no policy");
	}
	if (out && !(p = malloc(sizeof *p))) {
		nq__v1__reply__free_unpacked(r, NULL);
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	}
	if (!out) {
		nq__v1__reply__free_unpacked(r, NULL);
		return NQ_OK;
	}
	p->reply = r;
	p->body = body;
	p->more = NULL;
	p->nrows = 0;
	for (size_t i = 0; i < body->n_queues; i++)
		p->nrows += body->queues[i]->n_values;
	*out = p;
	return NQ_OK;
}

/* Sends a policy request; the reply's body of case body goes to *out. */
static int policy_call(nq_client *c, Nq__V1__Request *req,
    Nq__V1__Reply__BodyCase body, const char *what, nq_queue_policy **out)
{
	Nq__V1__Reply *r = NULL;
	int rv = api_call(c, req, c->timeout_ms, body, what, &r);
	if (rv != NQ_OK) {
		if (r)
			nq__v1__reply__free_unpacked(r, NULL);
		return rv;
	}
	const Nq__V1__QueuePolicyReply *b =
	    body == NQ__V1__REPLY__BODY_POLICY_GET   ? r->policy_get
	    : body == NQ__V1__REPLY__BODY_POLICY_SET ? r->policy_set
	                                             : r->policy_reset;
	return policy_take(c, r, b, out);
}

/* Keeps only the queues of p that shard k owns: every shard reads the
 * same queues file, and the owner's policy is the one that applies. */
static void policy_keep_owned(nq_client *c, nq_queue_policy *p, size_t k)
{
	Nq__V1__QueuePolicyReply *b = (Nq__V1__QueuePolicyReply *)p->body;
	size_t kept = 0;
	p->nrows = 0;
	for (size_t i = 0; i < b->n_queues; i++) {
		Nq__V1__QueuePolicy *q = b->queues[i];
		if (nqc_owner(c, str_in(q->queue)) != k) {
			nq__v1__queue_policy__free_unpacked(q, NULL);
			continue;
		}
		p->nrows += q->n_values;
		b->queues[kept++] = q;
	}
	b->n_queues = kept;
}

/* The policy of queue on its shard, or of every queue, each from its
 * own shard, chained. */
static int policy_get_sharded(
    nq_client *c, const char *queue, nq_queue_policy **out)
{
	nq_queue_policy *head = NULL, **tail = &head;
	int rv = NQ_OK;
	if (queue && *queue) {
		size_t k = nqc_owner(c, queue);
		return nqc_relay(
		    c, k, nq_queue_policy_get(c->shard[k], queue, out));
	}
	for (size_t k = 0; k < c->map->n && rv == NQ_OK; k++) {
		rv =
		    nqc_relay(c, k, nq_queue_policy_get(c->shard[k], "", tail));
		if (rv != NQ_OK)
			break;
		policy_keep_owned(c, *tail, k);
		head->nrows += head != *tail ? (*tail)->nrows : 0;
		tail = &(*tail)->more;
	}
	if (rv != NQ_OK) {
		nq_queue_policy_free(head);
		return rv;
	}
	*out = head;
	return NQ_OK;
}

NQ_API int nq_queue_policy_get(
    nq_client *c, const char *queue, nq_queue_policy **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicyGetRequest g =
	    NQ__V1__QUEUE_POLICY_GET_REQUEST__INIT;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!out)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "out must not be NULL");
	if (c->map)
		return policy_get_sharded(c, queue, out);
	g.queue = str_in(queue);
	req.body_case = NQ__V1__REQUEST__BODY_POLICY_GET;
	req.policy_get = &g;
	return policy_call(
	    c, &req, NQ__V1__REPLY__BODY_POLICY_GET, "queue policy", out);
}

NQ_API int nq_queue_policy_set(nq_client *c, const char *queue,
    const char *const *pairs, size_t n, nq_queue_policy **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicySetRequest s =
	    NQ__V1__QUEUE_POLICY_SET_REQUEST__INIT;
	int rv = check_queue(c, queue, false);
	if (rv != 0)
		return rv;
	if (n == 0 || !pairs || n > 64)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "give 1 to 64 KEY=VALUE pairs");
	if (c->map) {
		size_t k = nqc_owner(c, queue);
		return nqc_relay(c, k,
		    nq_queue_policy_set(c->shard[k], queue, pairs, n, out));
	}
	Nq__V1__PolicySetting v[64], *pv[64];
	char keys[64][96];
	for (size_t i = 0; i < n; i++) {
		const char *eq = pairs[i] ? strchr(pairs[i], '=') : NULL;
		if (!eq || eq == pairs[i] || eq - pairs[i] >= 96)
			return nqc_fail(c->last_error, NQ_EINVAL,
			    "'%.80s' is not KEY=VALUE",
			    pairs[i] ? pairs[i] : "(null)");
		nq__v1__policy_setting__init(&v[i]);
		snprintf(keys[i], sizeof keys[i], "%.*s", (int)(eq - pairs[i]),
		    pairs[i]);
		v[i].key = keys[i];
		v[i].value = (char *)eq + 1;
		pv[i] = &v[i];
	}
	s.queue = (char *)queue;
	s.n_settings = n;
	s.settings = pv;
	req.body_case = NQ__V1__REQUEST__BODY_POLICY_SET;
	req.policy_set = &s;
	return policy_call(
	    c, &req, NQ__V1__REPLY__BODY_POLICY_SET, "queue set", out);
}

NQ_API int nq_queue_policy_reset(nq_client *c, const char *queue,
    const char *const *keys, size_t n, nq_queue_policy **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicyResetRequest r =
	    NQ__V1__QUEUE_POLICY_RESET_REQUEST__INIT;
	int rv = check_queue(c, queue, false);
	if (rv != 0)
		return rv;
	if (n && !keys)
		return nqc_fail(c->last_error, NQ_EINVAL, "keys is NULL");
	if (c->map) {
		size_t k = nqc_owner(c, queue);
		return nqc_relay(c, k,
		    nq_queue_policy_reset(c->shard[k], queue, keys, n, out));
	}
	r.queue = (char *)queue;
	r.n_keys = n;
	r.keys = (char **)keys;
	req.body_case = NQ__V1__REQUEST__BODY_POLICY_RESET;
	req.policy_reset = &r;
	return policy_call(
	    c, &req, NQ__V1__REPLY__BODY_POLICY_RESET, "queue reset", out);
}

NQ_API size_t nq_queue_policy_rows(const nq_queue_policy *p)
{
	return p ? p->nrows : 0;
}

NQ_API int nq_queue_policy_row(const nq_queue_policy *p, size_t i,
    const char **queue, const char **key, const char **value,
    const char **source)
{
	if (!p)
		return NQ_EINVAL;
	/* With a shard map, the rows past p's own are its next shard's. */
	size_t own = 0;
	for (size_t k = 0; k < p->body->n_queues; k++)
		own += p->body->queues[k]->n_values;
	if (i >= own)
		return nq_queue_policy_row(
		    p->more, i - own, queue, key, value, source);
	size_t q = 0;
	while (i >= p->body->queues[q]->n_values)
		i -= p->body->queues[q++]->n_values;
	const Nq__V1__QueuePolicy *qp = p->body->queues[q];
	const Nq__V1__PolicyValue *v = qp->values[i];
	if (queue)
		*queue = str_in(qp->queue);
	if (key)
		*key = str_in(v->key);
	if (value)
		*value = str_in(v->value);
	if (source)
		*source = str_in(v->source);
	return NQ_OK;
}

NQ_API void nq_queue_policy_free(nq_queue_policy *p)
{
	if (!p)
		return;
	nq_queue_policy_free(p->more);
	nq__v1__reply__free_unpacked(p->reply, NULL);
	free(p);
}

/* The stats reply as decoded: every accessor reads it. */
struct nq_queue_stats {
	Nq__V1__Reply *reply;
	char **worker_queues; /* each worker's queues joined by commas */
};

/* Each worker's queues joined by commas, for nq_worker_stats. */
static int join_worker_queues(nq_queue_stats *s)
{
	const Nq__V1__StatsReply *sr = s->reply->stats;
	s->worker_queues = calloc(sr->n_workers + 1, sizeof(char *));
	for (size_t k = 0; s->worker_queues && k < sr->n_workers; k++) {
		const Nq__V1__WorkerStats *w = sr->workers[k];
		size_t len = 1;
		for (size_t i = 0; i < w->n_queues; i++)
			len += strlen(w->queues[i]) + 1;
		char *out = s->worker_queues[k] = calloc(1, len);
		if (!out)
			return NQ_ENOMEM;
		for (size_t i = 0; i < w->n_queues; i++)
			strcat(strcat(out, i ? "," : ""), w->queues[i]);
	}
	return s->worker_queues ? NQ_OK : NQ_ENOMEM;
}

static void free_worker_queues(nq_queue_stats *s)
{
	for (size_t k = 0; s->worker_queues && k < s->reply->stats->n_workers;
	     k++)
		free(s->worker_queues[k]);
	free(s->worker_queues);
}

/* Copies the broker's numbers out; takes the reply into *out. */
static int stats_take(nq_client *c, Nq__V1__Reply *r, nq_queue_stats **out,
    size_t *n, nq_broker_stats *broker)
{
	const Nq__V1__StatsReply *sr = r->stats;
	nq_queue_stats *s = malloc(sizeof *s);
	if (!s)
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	s->reply = r;
	if (join_worker_queues(s) != NQ_OK) {
		free_worker_queues(s);
		free(s);
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	}
	if (broker) {
		memset(broker, 0, sizeof *broker);
		if (sr->broker) {
			broker->commits = sr->broker->commits;
			broker->uptime_ms = sr->broker->uptime_ms;
			broker->jobs_stored = sr->broker->jobs_stored;
		}
	}
	*out = s;
	*n = sr->n_queues;
	return NQ_OK;
}

/* Adds queue b's numbers to a's: counts add up; a time (_us) is the
 * earliest one set, a limit or a state (in_flight_limit, breaker_state)
 * the larger; paused when paused on either. */
static void queue_stats_add(Nq__V1__QueueStats *a, const Nq__V1__QueueStats *b)
{
	const ProtobufCMessageDescriptor *d = &nq__v1__queue_stats__descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_UINT64 ||
		    f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		uint64_t *x = (uint64_t *)((char *)a + f->offset);
		uint64_t y = *(const uint64_t *)((const char *)b + f->offset);
		size_t len = strlen(f->name);
		if (len > 3 && strcmp(f->name + len - 3, "_us") == 0)
			*x = !*x || (y && y < *x) ? y : *x;
		else if (strstr(f->name, "_limit") || strstr(f->name, "_state"))
			*x = y > *x ? y : *x;
		else
			*x += y;
	}
	a->paused = a->paused || b->paused;
}

/* Appends *p to the array *arr of *n pointers. */
static int ptr_append(void ***arr, size_t *n, void *p)
{
	void **grown = realloc(*arr, (*n + 1) * sizeof *grown);
	if (!grown)
		return NQ_ENOMEM;
	grown[(*n)++] = p;
	*arr = grown;
	return NQ_OK;
}

/* Merges stats reply src into dst (both decoded with the default
 * allocator): a queue dst has too adds up, the others and src's workers
 * move over; src is freed. */
static int stats_merge(Nq__V1__StatsReply *dst, Nq__V1__Reply *r)
{
	Nq__V1__StatsReply *src = r->stats;
	size_t kept = 0;
	int rv = NQ_OK;
	for (size_t i = 0; i < src->n_queues; i++) {
		Nq__V1__QueueStats *q = src->queues[i], *mine = NULL;
		for (size_t j = 0; !mine && j < dst->n_queues; j++)
			if (strcmp(dst->queues[j]->queue, q->queue) == 0)
				mine = dst->queues[j];
		if (mine)
			queue_stats_add(mine, q);
		if (mine || rv != NQ_OK ||
		    (rv = ptr_append(
		         (void ***)&dst->queues, &dst->n_queues, q)) != NQ_OK)
			src->queues[kept++] = q; /* freed with src */
	}
	src->n_queues = kept;
	for (size_t i = 0; rv == NQ_OK && i < src->n_workers; i++)
		rv = ptr_append(
		    (void ***)&dst->workers, &dst->n_workers, src->workers[i]);
	if (rv == NQ_OK)
		src->n_workers = 0;
	if (dst->broker && src->broker) {
		dst->broker->commits += src->broker->commits;
		dst->broker->jobs_stored += src->broker->jobs_stored;
		if (src->broker->uptime_ms < dst->broker->uptime_ms)
			dst->broker->uptime_ms = src->broker->uptime_ms;
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

static int stats_call(nq_client *c, const char *queue, Nq__V1__Reply **out);

/* Stats of every shard, added up into the first shard's reply. */
static int stats_sharded(nq_client *c, const char *queue, Nq__V1__Reply **out)
{
	Nq__V1__Reply *all = NULL, *r = NULL;
	int rv = NQ_OK;
	for (size_t k = 0; k < c->map->n && rv == NQ_OK; k++) {
		nqc_begin(c->shard[k]);
		rv = nqc_relay(c, k, stats_call(c->shard[k], queue, &r));
		if (rv == NQ_OK && !all)
			all = r;
		else if (rv == NQ_OK)
			rv = stats_merge(all->stats, r);
		else if (r)
			nq__v1__reply__free_unpacked(r, NULL);
		r = NULL;
	}
	if (rv != NQ_OK && all)
		nq__v1__reply__free_unpacked(all, NULL);
	if (rv == NQ_OK)
		*out = all;
	return rv;
}

/* One Stats request; *out gets the reply (which carries stats) or, on an
 * error with a reply, that reply for the caller to free. */
static int stats_call(nq_client *c, const char *queue, Nq__V1__Reply **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest body = NQ__V1__STATS_REQUEST__INIT;
	if (c->map)
		return stats_sharded(c, queue, out);
	body.queue = str_in(queue);
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &body;
	int rv = api_call(
	    c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_STATS, "stats", out);
	if (rv == NQ_OK && !(*out)->stats)
		rv = nqc_fail(c->last_error, NQ_EPROTO,
		    "reply to stats carries no stats");
	return rv;
}

NQ_API int nq_stats(nq_client *c, const char *queue, nq_queue_stats **out,
    size_t *n, nq_broker_stats *broker)
{
	int rv = check_queue(c, queue, true);
	if (rv != 0)
		return rv;
	if (!out || !n)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "out and n must not be NULL");
	Nq__V1__Reply *r = NULL;
	rv = stats_call(c, queue, &r);
	if (rv == NQ_OK && (rv = stats_take(c, r, out, n, broker)) == NQ_OK)
		r = NULL;
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

NQ_API void nq_queue_stats_free(nq_queue_stats *s)
{
	if (!s)
		return;
	free_worker_queues(s);
	nq__v1__reply__free_unpacked(s->reply, NULL);
	free(s);
}

static const Nq__V1__QueueStats *queue_at(const nq_queue_stats *s, size_t i)
{
	const Nq__V1__StatsReply *sr = s ? s->reply->stats : NULL;
	return sr && i < sr->n_queues ? sr->queues[i] : NULL;
}

NQ_API const char *nq_queue_stats_queue(const nq_queue_stats *s, size_t i)
{
	const Nq__V1__QueueStats *q = queue_at(s, i);
	return q ? str_in(q->queue) : NULL;
}

NQ_API bool nq_queue_stats_paused(const nq_queue_stats *s, size_t i)
{
	const Nq__V1__QueueStats *q = queue_at(s, i);
	return q && q->paused;
}

/* The uint64 field called name of message m of type d, read through the
 * descriptor, so that a counter added to the proto needs no code here. */
static int u64_field(const ProtobufCMessageDescriptor *d, const void *m,
    const char *name, uint64_t *out)
{
	const ProtobufCFieldDescriptor *f =
	    name ? protobuf_c_message_descriptor_get_field_by_name(d, name)
	         : NULL;
	if (!m || !f || f->type != PROTOBUF_C_TYPE_UINT64 ||
	    f->label == PROTOBUF_C_LABEL_REPEATED || !out)
		return NQ_EINVAL;
	*out = *(const uint64_t *)((const char *)m + f->offset);
	return NQ_OK;
}

NQ_API int nq_queue_stats_get(
    const nq_queue_stats *s, size_t i, const char *field, uint64_t *out)
{
	return u64_field(
	    &nq__v1__queue_stats__descriptor, queue_at(s, i), field, out);
}

NQ_API int nq_queue_stats_broker(
    const nq_queue_stats *s, const char *field, uint64_t *out)
{
	const void *m = s && s->reply->stats ? s->reply->stats->broker : NULL;
	return u64_field(&nq__v1__broker_stats__descriptor, m, field, out);
}

NQ_API const char *nq_queue_stats_field(size_t k)
{
	const ProtobufCMessageDescriptor *d = &nq__v1__queue_stats__descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type == PROTOBUF_C_TYPE_UINT64 &&
		    f->label != PROTOBUF_C_LABEL_REPEATED && k-- == 0)
			return f->name;
	}
	return NULL;
}

NQ_API size_t nq_queue_stats_workers(const nq_queue_stats *s)
{
	return s ? s->reply->stats->n_workers : 0;
}

NQ_API int nq_queue_stats_worker(
    const nq_queue_stats *s, size_t k, nq_worker_stats *out)
{
	if (!out || k >= nq_queue_stats_workers(s))
		return NQ_EINVAL;
	const Nq__V1__WorkerStats *w = s->reply->stats->workers[k];
	*out = (nq_worker_stats){str_in(w->worker_id), s->worker_queues[k],
	    w->free_slots, w->leased, w->last_seen_us};
	return NQ_OK;
}

NQ_API size_t nq_queue_stats_groups(const nq_queue_stats *s, size_t i)
{
	const Nq__V1__QueueStats *q = queue_at(s, i);
	return q ? q->n_groups : 0;
}

NQ_API int nq_queue_stats_group(const nq_queue_stats *s, size_t i, size_t k,
    const char **name, uint64_t *ready, uint64_t *leased)
{
	const Nq__V1__QueueStats *q = queue_at(s, i);
	if (!q || k >= q->n_groups || !name || !ready || !leased)
		return NQ_EINVAL;
	*name = str_in(q->groups[k]->group);
	*ready = q->groups[k]->ready;
	*leased = q->groups[k]->leased;
	return NQ_OK;
}

NQ_API double nq_dead_letter_ratio(const nq_queue_stats *s, size_t i)
{
	const Nq__V1__QueueStats *q = queue_at(s, i);
	return q ? nqi_dead_letter_ratio(q->succeeded_total, q->dead_total) : 0;
}

/* ---- list ---- */

struct nq_job_list {
	Nq__V1__Reply *reply; /* owns the jobs */
	nq_job *jobs; /* wrappers of the reply's jobs, not freed one by one */
	size_t n;
	/* An id; with a shard map and no queue, "SHARD:ID" (SHARD's jobs
	 * after ID), "SHARD:" (from SHARD's first). */
	char next[NQ_ID_MAX + 132];
};

static int list_check(nq_client *c, const nq_list_opts *o, char *after)
{
	int rv = check_client(c);
	if (rv == 0 && !o)
		rv = nqc_fail(c->last_error, NQ_EINVAL, "opts is NULL");
	if (rv == 0 && o->queue && o->queue[0])
		rv = check_name("queue", o->queue, c->last_error);
	if (rv == 0 && o->type && o->type[0])
		rv = check_name("type", o->type, c->last_error);
	if (rv == 0 && (o->state < 0 || o->state > NQ_STATE_WAITING))
		rv = nqc_fail(c->last_error, NQ_EINVAL,
		    "state %d is not a "
		    "job state",
		    (int)o->state);
	after[0] = '\0';
	if (rv == 0 && o->after_id && o->after_id[0])
		rv = check_id(o->after_id, after, c->last_error);
	return rv;
}

/* Wraps the reply's jobs; takes the reply. */
static int list_take(nq_client *c, Nq__V1__Reply *r, nq_job_list **out)
{
	const Nq__V1__ListReply *lr = r->list;
	nq_job_list *l = calloc(1, sizeof *l);
	size_t n = lr ? lr->n_jobs : 0;
	if (l && n)
		l->jobs = calloc(n, sizeof *l->jobs);
	if (!l || (n && !l->jobs)) {
		free(l);
		nq__v1__reply__free_unpacked(r, NULL);
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		l->jobs[i].pb = lr->jobs[i];
	l->n = n;
	l->reply = r;
	snprintf(l->next, sizeof l->next, "%s",
	    lr && lr->next_after_id ? lr->next_after_id : "");
	*out = l;
	return NQ_OK;
}

/* The shard and id of a sharded list's cursor ("SHARD:ID", "SHARD:" or
 * empty: the first shard's first job). */
static int list_cursor(
    nq_client *c, const char *after, size_t *k, const char **id)
{
	const char *colon = after ? strchr(after, ':') : NULL;
	*k = 0;
	*id = "";
	if (!after || !*after)
		return NQ_OK;
	for (size_t i = 0; colon && i < c->map->n; i++) {
		const char *name = c->map->shards[i].name;
		if (strlen(name) == (size_t)(colon - after) &&
		    strncmp(name, after, (size_t)(colon - after)) == 0) {
			*k = i;
			*id = colon + 1;
			return NQ_OK;
		}
	}
	return nqc_fail(c->last_error, NQ_EINVAL,
	    "after_id \"%.60s\" is not a cursor of this shard map "
	    "(SHARD:ID)",
	    after);
}

/* A page of the jobs of every shard, one shard after another. */
static int list_sharded(
    nq_client *c, const nq_list_opts *opts, nq_job_list **out)
{
	nq_list_opts o = *opts;
	size_t k;
	int rv;
	if (opts->queue && opts->queue[0]) {
		k = nqc_owner(c, opts->queue);
		return nqc_relay(c, k, nq_list(c->shard[k], opts, out));
	}
	if ((rv = list_cursor(c, opts->after_id, &k, &o.after_id)) != NQ_OK)
		return rv;
	if ((rv = nqc_relay(c, k, nq_list(c->shard[k], &o, out))) != NQ_OK)
		return rv;
	nq_job_list *l = *out;
	char next[NQ_ID_MAX];
	snprintf(next, sizeof next, "%.31s", l->next);
	if (next[0])
		snprintf(l->next, sizeof l->next, "%.128s:%.31s",
		    c->map->shards[k].name, next);
	else if (k + 1 < c->map->n)
		snprintf(l->next, sizeof l->next,
		    "%.128s:", c->map->shards[k + 1].name);
	return NQ_OK;
}

NQ_API int nq_list(nq_client *c, const nq_list_opts *opts, nq_job_list **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__ListRequest body = NQ__V1__LIST_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	char after[NQ_ID_MAX];
	if (c && c->map && opts && out) {
		nqc_begin(c);
		return list_sharded(c, opts, out);
	}
	int rv = list_check(c, opts, after);
	if (rv == 0 && !out)
		rv = nqc_fail(c->last_error, NQ_EINVAL, "out is NULL");
	if (rv != 0)
		return rv;
	body.queue = str_in(opts->queue);
	body.type = str_in(opts->type);
	body.state = (Nq__V1__JobState)opts->state;
	body.limit = opts->limit;
	body.after_id = after;
	req.body_case = NQ__V1__REQUEST__BODY_LIST;
	req.list = &body;
	rv = api_call(
	    c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_LIST, "list", &r);
	if (rv == NQ_OK && r->list) {
		for (size_t i = 0; i < r->list->n_jobs; i++)
			if (!r->list->jobs[i] || !r->list->jobs[i]->spec)
				rv = nqc_fail(c->last_error, NQ_EPROTO,
				    "list reply holds a job without a spec");
	}
	if (rv == NQ_OK)
		return list_take(c, r, out);
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

/* ---- cron ---- */

struct nq_cron_list {
	Nq__V1__Reply *reply;
	const Nq__V1__CronListReply *body;
	nq_cron_list *more; /* the next shard's, with a shard map */
};

/* The schedules of every shard's queues file, one shard after another. */
static int cron_list_sharded(nq_client *c, nq_cron_list **out)
{
	nq_cron_list *head = NULL, **tail = &head;
	int rv = NQ_OK;
	for (size_t k = 0; k < c->map->n && rv == NQ_OK; k++)
		if ((rv = nqc_relay(
		         c, k, nq_cron_list_get(c->shard[k], tail))) == NQ_OK)
			tail = &(*tail)->more;
	if (rv != NQ_OK)
		nq_cron_list_free(head);
	else
		*out = head;
	return rv;
}

NQ_API int nq_cron_list_get(nq_client *c, nq_cron_list **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__CronListRequest l = NQ__V1__CRON_LIST_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	nq_cron_list *cl;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!out)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "out must not be NULL");
	if (c->map)
		return cron_list_sharded(c, out);
	req.body_case = NQ__V1__REQUEST__BODY_CRON_LIST;
	req.cron_list = &l;
	rv = api_call(c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_CRON_LIST,
	    "cron list", &r);
	if (rv == NQ_OK && !(cl = calloc(1, sizeof *cl)))
		rv = nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	if (rv != NQ_OK) {
		if (r)
			nq__v1__reply__free_unpacked(r, NULL);
		return rv;
	}
	cl->reply = r;
	cl->body = r->cron_list;
	cl->more = NULL;
	*out = cl;
	return NQ_OK;
}

NQ_API size_t nq_cron_list_count(const nq_cron_list *l)
{
	return l && l->body ? l->body->n_schedules + nq_cron_list_count(l->more)
	                    : 0;
}

NQ_API int nq_cron_list_row(const nq_cron_list *l, size_t i, nq_cron_row *out)
{
	if (!out || i >= nq_cron_list_count(l))
		return NQ_EINVAL;
	if (i >= l->body->n_schedules)
		return nq_cron_list_row(l->more, i - l->body->n_schedules, out);
	const Nq__V1__CronSchedule *s = l->body->schedules[i];
	*out = (nq_cron_row){str_in(s->name), str_in(s->cron), str_in(s->zone),
	    str_in(s->queue), str_in(s->type), str_in(s->missed),
	    s->last_tick_us, s->next_tick_us, str_in(s->last_job_id),
	    (nq_state)s->last_job_state};
	return NQ_OK;
}

NQ_API void nq_cron_list_free(nq_cron_list *l)
{
	if (!l)
		return;
	nq_cron_list_free(l->more);
	nq__v1__reply__free_unpacked(l->reply, NULL);
	free(l);
}

NQ_API int nq_cron_trigger(nq_client *c, const char *name, char *id_out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__CronTriggerRequest t = NQ__V1__CRON_TRIGGER_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!name || !*name || !id_out)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "name and id_out must not be NULL");
	/* With a shard map: the shard whose queues file has it. */
	for (size_t k = 0; c->map && k < c->map->n; k++) {
		rv =
		    nqc_relay(c, k, nq_cron_trigger(c->shard[k], name, id_out));
		if (rv != NQ_ENOTFOUND || k + 1 == c->map->n)
			return rv;
	}
	t.name = (char *)name;
	req.body_case = NQ__V1__REQUEST__BODY_CRON_TRIGGER;
	req.cron_trigger = &t;
	rv = api_call(c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_CRON_TRIGGER,
	    "cron trigger", &r);
	if (rv == NQ_OK)
		snprintf(id_out, NQ_ID_MAX, "%s", str_in(r->cron_trigger->id));
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

NQ_API size_t nq_job_list_count(const nq_job_list *l)
{
	return l ? l->n : 0;
}

NQ_API const nq_job *nq_job_list_at(const nq_job_list *l, size_t i)
{
	return l && i < l->n ? &l->jobs[i] : NULL;
}

NQ_API const char *nq_job_list_next(const nq_job_list *l)
{
	return l ? l->next : "";
}

NQ_API void nq_job_list_free(nq_job_list *l)
{
	if (!l)
		return;
	if (l->reply)
		nq__v1__reply__free_unpacked(l->reply, NULL);
	free(l->jobs);
	free(l);
}

/* ---- batches ---- */

NQ_API int nq_batch_enqueue(nq_client *c, const nq_job_spec *specs, size_t n,
    const nq_job_spec *on_success, const nq_job_spec *on_complete,
    nq_enqueue_result *results, char *batch_id)
{
	nq_batch_new b;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!batch_id || n == 0)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "a batch enqueue takes jobs and a batch_id to fill");
	if ((rv = batch_new(c, &b, on_success, on_complete, true)) != 0)
		return rv;
	batch_id[0] = '\0';
	if (c->map) {
		/* One request, so one shard: the jobs' and the callbacks'. */
		size_t k;
		nqc_group g = {
		    "a batch", NULL, {on_success, on_complete}, specs, n};
		if ((rv = check_specs(c, specs, n, results)) != 0 ||
		    (rv = nqc_one_shard(c, &g, &k)) != 0)
			return rv;
		return nqc_relay(c, k,
		    nq_batch_enqueue(c->shard[k], specs, n, on_success,
		        on_complete, results, batch_id));
	}
	b.id = batch_id;
	return enqueue_specs(c, specs, n, results, false, &b, NULL);
}

static void callback_from_pb(
    const Nq__V1__JobSpec *s, const char *id, nq_batch_callback *out)
{
	memset(out, 0, sizeof *out);
	if (!s)
		return;
	snprintf(out->queue, sizeof out->queue, "%s", str_in(s->queue));
	snprintf(out->type, sizeof out->type, "%s", str_in(s->type));
	snprintf(out->job_id, sizeof out->job_id, "%s", str_in(id));
}

static void batch_from_pb(const Nq__V1__Batch *b, nq_batch_info *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!b)
		return;
	snprintf(out->id, sizeof out->id, "%s", str_in(b->id));
	out->sealed = b->sealed;
	out->cancel_requested = b->cancel_requested;
	out->created_us = b->created_us;
	out->completed_us = b->completed_us;
	out->total = b->total;
	out->pending = b->pending;
	out->succeeded = b->succeeded;
	out->dead = b->dead;
	out->canceled = b->canceled;
	out->expired = b->expired;
	out->waiting = b->waiting;
	out->scheduled = b->scheduled;
	out->ready = b->ready;
	out->leased = b->leased;
	callback_from_pb(b->on_success, b->on_success_id, &out->on_success);
	callback_from_pb(b->on_complete, b->on_complete_id, &out->on_complete);
}

/* Reply bodies of the batch calls, all BatchReply but list. */
static Nq__V1__BatchReply *batch_reply(Nq__V1__Reply *r)
{
	switch (r->body_case) {
	case NQ__V1__REPLY__BODY_BATCH_CREATE:
		return r->batch_create;
	case NQ__V1__REPLY__BODY_BATCH_SEAL:
		return r->batch_seal;
	case NQ__V1__REPLY__BODY_BATCH_GET:
		return r->batch_get;
	case NQ__V1__REPLY__BODY_BATCH_CANCEL:
		return r->batch_cancel;
	default:
		return NULL;
	}
}

/* One batch call whose reply is a BatchReply: into out and canceled. */
static int batch_call(nq_client *c, Nq__V1__Request *req,
    Nq__V1__Reply__BodyCase want, const char *what, nq_batch_info *out,
    uint32_t *canceled)
{
	Nq__V1__Reply *r = NULL;
	int rv = api_call(c, req, c->timeout_ms, want, what, &r);
	Nq__V1__BatchReply *b = rv == NQ_OK ? batch_reply(r) : NULL;
	if (rv == NQ_OK && !b)
		rv =
		    nqc_fail(c->last_error, NQ_EPROTO, "%s: empty reply", what);
	if (b)
		batch_from_pb(b->batch, out);
	if (b && canceled)
		*canceled = b->canceled;
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

NQ_API int nq_batch_create(nq_client *c, const nq_job_spec *on_success,
    const nq_job_spec *on_complete, bool seal, char *id)
{
	return nq_batch_create_in(c, NULL, on_success, on_complete, seal, id);
}

NQ_API int nq_batch_create_in(nq_client *c, const char *queue,
    const nq_job_spec *on_success, const nq_job_spec *on_complete, bool seal,
    char *id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	nq_batch_new b;
	nq_batch_info info;
	size_t k;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!id)
		return nqc_fail(
		    c->last_error, NQ_EINVAL, "id must not be NULL");
	if ((queue && *queue &&
	        (rv = check_name("queue", queue, c->last_error)) != 0) ||
	    (rv = batch_new(c, &b, on_success, on_complete, seal)) != 0)
		return rv;
	/* The batch lives on one shard, which its callbacks are enqueued
	 * on: theirs, and queue's. */
	if (c->map && (rv = nqc_one_shard(c,
	                   &(nqc_group){"a batch", queue,
	                       {on_success, on_complete}, NULL, 0},
	                   &k)) != 0)
		return rv;
	if (c->map)
		return nqc_relay(c, k,
		    nq_batch_create_in(
		        c->shard[k], queue, on_success, on_complete, seal, id));
	req.body_case = NQ__V1__REQUEST__BODY_BATCH_CREATE;
	req.batch_create = &b.req;
	rv = batch_call(c, &req, NQ__V1__REPLY__BODY_BATCH_CREATE,
	    "batch create", &info, NULL);
	if (rv == NQ_OK)
		memcpy(id, info.id, NQ_ID_MAX);
	return rv;
}

/* Seal, get and cancel: a BatchRef. */
typedef struct batch_ref {
	const char *id;
	Nq__V1__Request__BodyCase body;
	Nq__V1__Reply__BodyCase want;
	const char *what;
	nq_batch_info *out;
	uint32_t *canceled;
} batch_ref;

/* The call of a on the one broker of c. */
static int batch_ref_one(nq_client *c, void *arg)
{
	const batch_ref *a = arg;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__BatchRef ref = NQ__V1__BATCH_REF__INIT;
	nqc_begin(c);
	ref.id = (char *)a->id;
	req.body_case = a->body;
	if (a->body == NQ__V1__REQUEST__BODY_BATCH_SEAL)
		req.batch_seal = &ref;
	else if (a->body == NQ__V1__REQUEST__BODY_BATCH_GET)
		req.batch_get = &ref;
	else
		req.batch_cancel = &ref;
	return batch_call(c, &req, a->want, a->what, a->out, a->canceled);
}

static int batch_ref_call(nq_client *c, const char *id,
    Nq__V1__Request__BodyCase body, Nq__V1__Reply__BodyCase want,
    const char *what, nq_batch_info *out, uint32_t *canceled)
{
	batch_ref a = {id, body, want, what, out, canceled};
	size_t k;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!id || !*id)
		return nqc_fail(c->last_error, NQ_EINVAL, "no batch id");
	/* A batch id does not name its shard: the one that has it answers,
	 * and the others, which have no such batch, change nothing. */
	if (c->map)
		return nqc_ask_shards(c, "batch", id, batch_ref_one, &a, &k);
	return batch_ref_one(c, &a);
}

NQ_API int nq_batch_seal(nq_client *c, const char *id, nq_batch_info *out)
{
	return batch_ref_call(c, id, NQ__V1__REQUEST__BODY_BATCH_SEAL,
	    NQ__V1__REPLY__BODY_BATCH_SEAL, "batch seal", out, NULL);
}

NQ_API int nq_batch_get(nq_client *c, const char *id, nq_batch_info *out)
{
	return batch_ref_call(c, id, NQ__V1__REQUEST__BODY_BATCH_GET,
	    NQ__V1__REPLY__BODY_BATCH_GET, "batch get", out, NULL);
}

NQ_API int nq_batch_cancel(
    nq_client *c, const char *id, nq_batch_info *out, uint32_t *canceled)
{
	return batch_ref_call(c, id, NQ__V1__REQUEST__BODY_BATCH_CANCEL,
	    NQ__V1__REPLY__BODY_BATCH_CANCEL, "batch cancel", out, canceled);
}

NQ_API int nq_batch_list(nq_client *c, const char *after_id, size_t cap,
    nq_batch_info *out, size_t *n, char *next)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__BatchListRequest l = NQ__V1__BATCH_LIST_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	int rv = check_client(c);
	if (rv != 0)
		return rv;
	if (!out || !n || !next || cap == 0)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "out, n and next must not be NULL, cap not 0");
	if (c->map)
		return nqc_batch_list_sharded(c, after_id, cap, out, n, next);
	l.limit = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
	l.after_id = str_in(after_id);
	req.body_case = NQ__V1__REQUEST__BODY_BATCH_LIST;
	req.batch_list = &l;
	rv = api_call(c, &req, c->timeout_ms, NQ__V1__REPLY__BODY_BATCH_LIST,
	    "batch list", &r);
	*n = 0;
	next[0] = '\0';
	for (size_t i = 0;
	     rv == NQ_OK && i < r->batch_list->n_batches && i < cap; i++)
		batch_from_pb(r->batch_list->batches[i], &out[(*n)++]);
	if (rv == NQ_OK)
		snprintf(next, NQ_ID_MAX, "%s",
		    str_in(r->batch_list->next_after_id));
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}
