/* Handlers of the api socket: enqueue, get, wait, cancel, stats, pause,
 * resume, list. Each runs on the core thread inside the group. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define MAX_BATCH 10000
#define MAX_TEXT 256 /* content type, keys, traceparent */
#define MAX_REF 2048 /* payload_ref */
#define MAX_ATTEMPTS_LIMIT 1000
#define MAX_TIMEOUT_MS (24ull * 3600 * 1000)
#define MAX_WAIT_MS 60000

/* Parses a job id from a request; sets the reply status when it is bad. */
static bool parse_id(broker *b, broker_op *op, const char *text, uint64_t *id)
{
	if (nqi_id_parse(text, id) == 0)
		return true;
	broker_set_status(
	    b, op, NQ_EINVAL, "job id '%.40s' is not 16 hex digits", text);
	return false;
}

/* Reads the job a request names; finishes the op with NOT_FOUND when it is
 * not there. Returns NQ_ESTORE only for store failures. */
static int read_named(
    broker *b, broker_op *op, const char *text, Nq__V1__Job **job)
{
	uint64_t id;
	*job = NULL;
	if (!parse_id(b, op, text, &id))
		return NQ_OK;
	int rv = broker_job_read(b, id, job);
	if (rv == NQ_ENOTFOUND)
		broker_set_status(b, op, NQ_ENOTFOUND,
		    "job %s not found (never "
		    "enqueued, or deleted after its result_ttl)",
		    text);
	else if (rv == NQ_EINTERNAL)
		broker_set_status(b, op, NQ_EINTERNAL,
		    "job %s: stored record does "
		    "not decode",
		    text);
	return rv == NQ_ESTORE || rv == NQ_ENOMEM ? rv : NQ_OK;
}

/* ---- enqueue ---- */

static const char *check_text(const char *s, size_t max)
{
	return s && strlen(s) > max ? "too long" : NULL;
}

/* Returns a message naming what is wrong with the spec, or NULL. */
const char *broker_spec_invalid(
    const broker *b, const Nq__V1__JobSpec *s, char *buf, size_t len)
{
	const char *bad;
	if (!nqi_name_valid(s->queue))
		return snprintf(buf, len,
		           "queue name '%.40s' must match "
		           "[A-Za-z0-9._-]{1,128}",
		           s->queue),
		       buf;
	if (!nqi_name_valid(s->type))
		return snprintf(buf, len,
		           "type name '%.40s' must match "
		           "[A-Za-z0-9._-]{1,128}",
		           s->type),
		       buf;
	if (s->payload.len > b->cfg.max_payload)
		return snprintf(buf, len,
		           "payload is %zu bytes, limit is %llu "
		           "(--max-payload); send larger data by claim check "
		           "(--offload-above with --blob-dir)",
		           s->payload.len,
		           (unsigned long long)b->cfg.max_payload),
		       buf;
	if (check_text(s->content_type, MAX_TEXT) ||
	    check_text(s->idempotency_key, MAX_TEXT) ||
	    check_text(s->ordering_key, MAX_TEXT) ||
	    check_text(s->group_key, MAX_TEXT) ||
	    check_text(s->traceparent, MAX_TEXT) ||
	    check_text(s->replay_of, MAX_TEXT))
		return snprintf(buf, len,
		           "content_type, idempotency_key, "
		           "ordering_key, group_key, traceparent and "
		           "replay_of are "
		           "limited to "
		           "%d bytes",
		           MAX_TEXT),
		       buf;
	if (s->unique && (bad = broker_unique_refuses(s)) != NULL)
		return bad;
	if (check_text(s->schedule, NQI_NAME_MAX))
		return snprintf(buf, len, "schedule is limited to %d bytes",
		           NQI_NAME_MAX),
		       buf;
	if (check_text(s->payload_ref, MAX_REF))
		return snprintf(buf, len, "payload_ref is limited to %d bytes",
		           MAX_REF),
		       buf;
	if (s->max_attempts > MAX_ATTEMPTS_LIMIT)
		return snprintf(buf, len,
		           "max_attempts %u is over the limit "
		           "of %d",
		           s->max_attempts, MAX_ATTEMPTS_LIMIT),
		       buf;
	if (s->timeout_ms > MAX_TIMEOUT_MS)
		return snprintf(buf, len,
		           "timeout of %llu ms is over the "
		           "limit of 24h",
		           (unsigned long long)s->timeout_ms),
		       buf;
	return NULL;
}

static int idem_key(const Nq__V1__JobSpec *s, uint8_t *buf, size_t *len)
{
	size_t q = strlen(s->queue), k = strlen(s->idempotency_key);
	memcpy(buf, s->queue, q);
	buf[q] = 0;
	memcpy(buf + q + 1, s->idempotency_key, k);
	*len = q + 1 + k;
	return NQ_OK;
}

/* Looks the unique key up; *id is the job it returns, or 0 when none
 * holds it (broker_unique_holder). */
static int idem_find(
    broker *b, const Nq__V1__JobSpec *s, uint64_t now_us, uint64_t *id)
{
	uint8_t key[NQI_NAME_MAX + 1 + MAX_TEXT];
	size_t klen;
	*id = 0;
	idem_key(s, key, &klen);
	MDB_val k = {klen, key}, v;
	int rc = mdb_get(b->core.txn, b->db_idem, &k, &v);
	if (rc == MDB_NOTFOUND)
		return NQ_OK;
	if (rc != 0)
		return NQ_ESTORE;
	return broker_unique_holder(b, v.mv_data, v.mv_size, now_us, id);
}

static int idem_put(
    broker *b, const Nq__V1__JobSpec *s, uint64_t id, uint64_t now_us)
{
	uint8_t key[NQI_NAME_MAX + 1 + MAX_TEXT], val[17];
	size_t klen, vlen;
	uint64_t until;
	idem_key(s, key, &klen);
	broker_unique_value(b, s, id, now_us, val, &vlen, &until);
	MDB_val k = {klen, key}, v = {vlen, val};
	if (mdb_put(b->core.txn, b->db_idem, &k, &v, 0) != 0)
		return NQ_ESTORE;
	/* A scope without a bound ends with the job's record at the latest. */
	return until ? broker_expiry_put(b, until, 'i', key, klen) : NQ_OK;
}

int broker_idem_forget(broker *b, const Nq__V1__JobSpec *s, uint64_t id)
{
	uint8_t key[NQI_NAME_MAX + 1 + MAX_TEXT];
	size_t klen;
	if (!s->idempotency_key[0] || strlen(s->queue) > NQI_NAME_MAX ||
	    strlen(s->idempotency_key) > MAX_TEXT)
		return NQ_OK; /* no key, or none this long was ever taken */
	idem_key(s, key, &klen);
	MDB_val k = {klen, key}, v;
	int rc = mdb_get(b->core.txn, b->db_idem, &k, &v);
	/* After its scope the key may name a newer job. */
	if (rc == 0 && v.mv_size >= 16 && nqi_be64_get(v.mv_data) == id) {
		rc = mdb_del(b->core.txn, b->db_idem, &k, NULL);
		b->core.dirty = true;
	}
	return rc == 0 || rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}

uint64_t broker_next_id(broker *b, uint64_t now)
{
	uint64_t id = now > b->core.last_id ? now : b->core.last_id + 1;
	/* Ids are microseconds; shards of one map make them in classes of
	 * their own, so that an id names one job across the shards (and
	 * in the one nq-dlq that stores them all by id). */
	if (b->cfg.shard_number >= 0)
		id +=
		    (uint64_t)(b->cfg.shard_number + 64 - (int)(id % 64)) % 64;
	b->core.last_id = id;
	return id;
}

static Nq__V1__Job *job_new(broker *b, Nq__V1__JobSpec *spec, uint64_t id,
    uint64_t now_us, const nqi_policy *pol)
{
	static const Nq__V1__Job init = NQ__V1__JOB__INIT;
	Nq__V1__Job *job = nqi_arena_alloc(b->core.arena, sizeof *job);
	char *ids = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
	if (!job || !ids)
		return NULL;
	*job = init;
	nqi_id_format(id, ids);
	job->id = ids;
	job->spec = spec;
	/* The id is the creation time, made unique: leases of jobs whose
	 * records are not decoded take it from there. */
	job->created_us = id;
	job->max_attempts = spec->max_attempts ? spec->max_attempts
	                                       : (uint32_t)pol->max_attempts;
	job->timeout_ms = spec->timeout_ms ? spec->timeout_ms : pol->timeout;
	job->run_at_us = spec->run_at_us
	                     ? spec->run_at_us
	                     : nqi_us_plus_ms(now_us, spec->delay_ms);
	job->state = NQ__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
	return job;
}

/* Whether the queue at qi (-1: none yet) holds its policy's max_depth
 * (none: unlimited). */
static bool queue_full(broker *b, int qi, const nqi_policy *pol)
{
	if (qi < 0 || !(pol->set & NQI_PK_BIT(max_depth)))
		return false;
	broker_queue *q = &b->core.index.queues[qi];
	return q->ready + q->scheduled + q->leased >= pol->max_depth;
}

void broker_op_prepack(const broker *b, broker_op *op)
{
	char why[400];
	Nq__V1__EnqueueRequest *e = op->req ? op->req->enqueue : NULL;
	if (!op->arena || !e ||
	    op->req->body_case != NQ__V1__REQUEST__BODY_ENQUEUE ||
	    e->n_jobs > MAX_BATCH)
		return;
	const nqi_flat_plan *plan =
	    broker_flat_plan(&nq__v1__job_spec__descriptor);
	op->specs = nqi_arena_alloc(op->arena, e->n_jobs * sizeof *op->specs);
	for (size_t i = 0; op->specs && i < e->n_jobs; i++) {
		op->specs[i].data = NULL;
		if (broker_spec_invalid(b, e->jobs[i], why, sizeof why))
			continue; /* refused on the core thread */
		size_t len = nqi_flat_size(plan, &e->jobs[i]->base);
		uint8_t *p =
		    nqi_arena_alloc(op->arena, BROKER_RAW_HEADROOM + len);
		if (!p)
			continue; /* packed on the core thread instead */
		p += BROKER_RAW_HEADROOM;
		nqi_flat_pack(plan, &e->jobs[i]->base, p);
		op->specs[i].data =
		    broker_len_prefix(p, len, &op->specs[i].len);
	}
}

static const nqi_policy *policy_for(
    broker *b, int qi, const Nq__V1__JobSpec *spec)
{
	return qi >= 0 ? broker_policy_of(b, &b->core.index.queues[qi])
	               : broker_policy_named(b, spec->queue);
}

/* What the queue's policy, its depth and the parents say of a valid spec
 * of queue qi: NULL when it may be stored, else the refusal (in why, its
 * status in *err; NQ_ESTORE or NQ_ENOMEM fail the group). d gets the
 * parents. */
static const char *admit(broker *b, const Nq__V1__JobSpec *spec, int qi,
    const nqi_policy *pol, broker_deps *d, int *err, char *why, size_t len)
{
	*err = NQ_EPRECOND;
	if (broker_policy_refuses(pol, spec, why, len))
		return why;
	*err = NQ_EEXHAUSTED;
	if (queue_full(b, qi, pol))
		return snprintf(why, len,
		           "queue %s is at its max depth; retry later",
		           spec->queue),
		       why;
	const char *bad;
	if (broker_batch_of(spec)[0] &&
	    (bad = broker_batch_refuses(b, spec, err, why, len)) != NULL)
		return bad;
	*err = NQ_OK;
	return broker_nparents(spec)
	           ? broker_deps_check(b, spec, d, err, why, len)
	           : NULL;
}

/* A new job was stored: its counters and event. */
static void count_new(broker *b, const Nq__V1__Job *job)
{
	broker_queue *q = broker_totals_at(
	    b, broker_queue_get(&b->core.index, job->spec->queue));
	if (q)
		q->enqueued_total++;
	b->core.jobs_stored++;
	broker_event(b, BROKER_EV_ENQUEUED, job, NULL);
}

int broker_enqueue_one(broker *b, Nq__V1__JobSpec *spec,
    const ProtobufCBinaryData *packed, Nq__V1__EnqueueResult *res,
    uint64_t now_us)
{
	char why[400];
	uint64_t id = 0;
	if (spec->replay_of[0] && broker_batch_of(spec)[0]) {
		/* Its batch counted the end of the job it replays. */
		spec->depends->batch_id = (char *)"";
		packed = NULL;
	}
	/* A spec packed before the core took it up was checked then. */
	const char *bad = packed && packed->data
	                      ? NULL
	                      : broker_spec_invalid(b, spec, why, sizeof why);
	if (bad) {
		res->status = broker_status_new(b, NQ_EINVAL, bad);
		return NQ_OK;
	}
	bool keyed = spec->idempotency_key && spec->idempotency_key[0];
	if (keyed && idem_find(b, spec, now_us, &id) != 0)
		return NQ_ESTORE;
	if (id) {
		res->id = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
		if (!res->id)
			return NQ_ENOMEM;
		nqi_id_format(id, res->id);
		res->duplicate = true;
		return NQ_OK;
	}
	int qi = broker_queue_find(&b->core.index, spec->queue);
	const nqi_policy *pol = policy_for(b, qi, spec);
	broker_deps deps = {NULL, 0};
	int err;
	if ((bad = admit(b, spec, qi, pol, &deps, &err, why, sizeof why))) {
		if (err == NQ_ESTORE || err == NQ_ENOMEM)
			return err;
		res->status = broker_status_new(b, err, bad);
		return NQ_OK;
	}
	id = broker_next_id(b, now_us);
	Nq__V1__Job *job = job_new(b, spec, id, now_us, pol);
	if (!job)
		return NQ_ENOMEM;
	/* The queue's priority changes the spec: it is packed again. */
	if (!spec->priority && pol->priority) {
		spec->priority = (int32_t)pol->priority;
		packed = NULL;
	}
	if (packed && packed->data) {
		b->core.packed_spec = spec;
		b->core.packed_spec_bytes = *packed;
	}
	int rv = deps.n ? broker_deps_enqueue(b, job, &deps)
	                : broker_job_requeue_at(b, job, job->run_at_us, now_us);
	b->core.packed_spec = NULL;
	if (rv == 0 && (spec->deadline_us || spec->finish_within_ms))
		rv = broker_deadline_add(b, job);
	if (rv == 0 && keyed)
		rv = idem_put(b, spec, id, now_us);
	if (rv == 0 && broker_batch_of(spec)[0])
		rv = broker_batch_join(b, job);
	if (rv != 0)
		return rv;
	count_new(b, job);
	res->id = job->id;
	if (spec->replay_of[0])
		broker_event(b, BROKER_EV_REPLAYED, job, NULL);
	return NQ_OK;
}

int broker_enqueue_callback(
    broker *b, Nq__V1__JobSpec *spec, Nq__V1__JobFamily *family, char **id)
{
	const nqi_policy *pol = broker_policy_named(b, spec->queue);
	uint64_t now = nqi_now_us();
	Nq__V1__Job *job = job_new(b, spec, broker_next_id(b, now), now, pol);
	if (!job)
		return NQ_ENOMEM;
	if (!spec->priority && pol->priority)
		spec->priority = (int32_t)pol->priority;
	job->family = family;
	int rv = broker_job_requeue(b, job, job->run_at_us);
	if (rv == 0 && (spec->deadline_us || spec->finish_within_ms))
		rv = broker_deadline_add(b, job);
	if (rv != 0)
		return rv;
	count_new(b, job);
	*id = job->id;
	return NQ_OK;
}

/*
 * A chain in one request: the spec's depends_on_index (positions of
 * earlier jobs of the request) become ids in its depends_on. NULL, or the
 * refusal (why, *err), when a position is not an earlier job or names one
 * that was refused: the chain stops there.
 */
static const char *chain_ids(broker *b, Nq__V1__JobSpec *spec,
    const Nq__V1__EnqueueResult *res, size_t i, int *err, char *why, size_t len)
{
	Nq__V1__Dependencies *dep = spec->depends;
	size_t n = dep->n_depends_on, k = dep->n_depends_on_index;
	char **ids = nqi_arena_alloc(b->core.arena, (n + k) * sizeof *ids);
	*err = NQ_EINVAL;
	if (!ids) {
		*err = NQ_ENOMEM;
		return "broker out of memory";
	}
	if (n)
		memcpy(ids, dep->depends_on, n * sizeof *ids);
	for (size_t j = 0; j < k; j++) {
		uint32_t at = dep->depends_on_index[j];
		if (at >= i)
			return snprintf(why, len,
			           "depends_on_index %u of job %zu must name "
			           "an "
			           "earlier job of the request",
			           at, i),
			       why;
		if (res[at].status || !res[at].id) {
			*err = NQ_EPRECOND;
			return snprintf(why, len,
			           "job %u of the request, which job %zu "
			           "depends on, was refused",
			           at, i),
			       why;
		}
		ids[n + j] = res[at].id;
	}
	dep->depends_on = ids;
	dep->n_depends_on = n + k;
	dep->n_depends_on_index = 0;
	return NULL;
}

/* Enqueues job i of the request: res[0..i) are the results so far. */
static int enqueue_at(broker *b, broker_op *op, Nq__V1__EnqueueResult *res,
    size_t i, uint64_t now)
{
	char why[200];
	int err;
	Nq__V1__JobSpec *spec = op->req->enqueue->jobs[i];
	const ProtobufCBinaryData *packed = op->specs ? &op->specs[i] : NULL;
	if (spec->depends && spec->depends->n_depends_on_index) {
		const char *bad =
		    chain_ids(b, spec, res, i, &err, why, sizeof why);
		if (bad && err == NQ_ENOMEM)
			return err;
		if (bad) {
			res[i].status = broker_status_new(b, err, bad);
			return NQ_OK;
		}
		packed = NULL; /* the spec changed */
	}
	return broker_enqueue_one(b, spec, packed, &res[i], now);
}

/*
 * An all-or-none request: every spec is checked before any is stored
 * (depends_on_index only names earlier jobs of it). A refusal is answered
 * in every result, and nothing is stored. *refused: so.
 */
static int check_all(
    broker *b, broker_op *op, Nq__V1__EnqueueResult *res, bool *refused)
{
	Nq__V1__EnqueueRequest *req = op->req->enqueue;
	char why[400];
	int err = NQ_OK;
	const char *bad = NULL;
	size_t i;
	*refused = false;
	for (i = 0; !bad && i < req->n_jobs; i++) {
		Nq__V1__JobSpec *s = req->jobs[i];
		broker_deps d;
		for (size_t k = 0;
		     s->depends && k < s->depends->n_depends_on_index; k++)
			if (s->depends->depends_on_index[k] >= i)
				bad = "depends_on_index must name an earlier "
				      "job of the request";
		err = NQ_EINVAL;
		if (!bad)
			bad = broker_spec_invalid(b, s, why, sizeof why);
		int qi = broker_queue_find(&b->core.index, s->queue);
		if (!bad)
			bad = admit(b, s, qi, policy_for(b, qi, s), &d, &err,
			    why, sizeof why);
	}
	if (!bad)
		return NQ_OK;
	if (err == NQ_ESTORE || err == NQ_ENOMEM)
		return err;
	*refused = true;
	for (size_t k = 0; k < req->n_jobs; k++)
		res[k].status = k == i - 1
		                    ? broker_status_new(b, err, bad)
		                    : broker_status_new(b, NQ_EPRECOND,
		                          "not enqueued: another job of this "
		                          "all-or-none request was refused");
	return NQ_OK;
}

/* EnqueueRequest.batch: the new batch the jobs join (*id), or the
 * request answered with why not. */
static int enqueue_batch(broker *b, broker_op *op, char **id)
{
	char why[400];
	int err;
	const char *bad =
	    broker_batch_for_enqueue(b, op, id, &err, why, sizeof why);
	if (!bad)
		return NQ_OK;
	if (err == NQ_ESTORE || err == NQ_ENOMEM)
		return err;
	broker_set_status(b, op, err, "%s", bad);
	broker_finish(b, op);
	return NQ_OK;
}

int broker_on_enqueue(broker *b, broker_op *op)
{
	static const Nq__V1__EnqueueReply rinit = NQ__V1__ENQUEUE_REPLY__INIT;
	static const Nq__V1__EnqueueResult init = NQ__V1__ENQUEUE_RESULT__INIT;
	Nq__V1__EnqueueRequest *req = op->req->enqueue;
	size_t n = req->n_jobs;
	if (n == 0 || n > MAX_BATCH) {
		broker_set_status(b, op, NQ_EINVAL,
		    "enqueue takes 1 to %d jobs, got "
		    "%zu",
		    MAX_BATCH, n);
		broker_finish(b, op);
		return NQ_OK;
	}
	Nq__V1__EnqueueReply *rep = nqi_arena_alloc(b->core.arena, sizeof *rep);
	Nq__V1__EnqueueResult *res =
	    nqi_arena_alloc(b->core.arena, n * sizeof *res);
	Nq__V1__EnqueueResult **ptrs =
	    nqi_arena_alloc(b->core.arena, n * sizeof *ptrs);
	if (!rep || !res || !ptrs)
		return NQ_ENOMEM;
	*rep = rinit;
	uint64_t now = nqi_now_us();
	bool refused = false;
	for (size_t i = 0; i < n; i++) {
		res[i] = init;
		ptrs[i] = &res[i];
	}
	int rv = req->all_or_none ? check_all(b, op, res, &refused) : NQ_OK;
	if (rv == 0 && !refused && req->batch &&
	    (rv = enqueue_batch(b, op, &rep->batch_id)) != 0)
		return rv;
	if (op->settled)
		return NQ_OK; /* the batch was refused */
	for (size_t i = 0; rv == 0 && !refused && i < n; i++)
		rv = enqueue_at(b, op, res, i, now);
	if (rv == 0 && !refused && req->batch)
		rv = broker_batch_enqueued(b, op, &rep->batch_id);
	if (rv != 0)
		return rv;
	rep->n_results = n;
	rep->results = ptrs;
	return BROKER_ANSWER(b, op, ENQUEUE, enqueue, rep);
}

/* ---- get, wait, cancel ---- */

/* The job as the requester may see it: a live lease token completes the
 * job it names, so only workers and admins see it (everyone, when the
 * broker has no tokens). A copy hides it: the job may be shared. */
static Nq__V1__Job *job_for(broker *b, broker_op *op, Nq__V1__Job *job)
{
	if (!job->lease_token ||
	    nqi_auth_check(b->auth, op->req->token, NQI_ROLE_WORKER) == NQ_OK)
		return job;
	Nq__V1__Job *copy = nqi_arena_alloc(b->core.arena, sizeof *copy);
	if (copy) {
		*copy = *job;
		copy->lease_token = 0;
	}
	return copy;
}

static void reply_job(
    broker *b, broker_op *op, Nq__V1__Job *job, Nq__V1__Reply__BodyCase body)
{
	static const Nq__V1__GetReply ginit = NQ__V1__GET_REPLY__INIT;
	static const Nq__V1__CancelReply cinit = NQ__V1__CANCEL_REPLY__INIT;
	Nq__V1__GetReply *g = NULL;
	Nq__V1__CancelReply *c = NULL;
	job = job_for(b, op, job);
	if (job && body == NQ__V1__REPLY__BODY_CANCEL &&
	    (c = nqi_arena_alloc(b->core.arena, sizeof *c)) != NULL) {
		*c = cinit;
		c->job = job;
		op->reply->cancel = c;
	} else if (job && body != NQ__V1__REPLY__BODY_CANCEL &&
	           (g = nqi_arena_alloc(b->core.arena, sizeof *g)) != NULL) {
		*g = ginit;
		g->job = job;
		if (body == NQ__V1__REPLY__BODY_WAIT)
			op->reply->wait = g;
		else
			op->reply->get = g;
	}
	if (!g && !c) {
		broker_set_status(b, op, NQ_ENOMEM, "broker out of memory");
		return;
	}
	op->reply->body_case = body;
}

int broker_on_get(broker *b, broker_op *op)
{
	Nq__V1__Job *job;
	int rv = read_named(b, op, op->req->get->id, &job);
	if (job) {
		if (op->req->get->omit_payload)
			job->spec->payload.len = 0;
		reply_job(b, op, job, NQ__V1__REPLY__BODY_GET);
	}
	broker_finish(b, op);
	return rv;
}

/* Answers a wait with job as it is now (none: read_named said why); a
 * stopping broker answers one that has not ended as stopped_cb does, so
 * that every wait cut short by the stop hears the same. */
static void wait_answer(broker *b, broker_op *op, Nq__V1__Job *job)
{
	if (job && b->in.stopping && !nq_state_is_final((nq_state)job->state))
		broker_set_status(b, op, NQ_EUNAVAIL, BROKER_STOPPING);
	else if (job)
		reply_job(b, op, job, NQ__V1__REPLY__BODY_WAIT);
	broker_finish(b, op);
}

int broker_on_wait(broker *b, broker_op *op)
{
	Nq__V1__Job *job;
	Nq__V1__WaitRequest *w = op->req->wait;
	int rv = read_named(b, op, w->id, &job);
	if (!job || nq_state_is_final((nq_state)job->state) || b->in.stopping) {
		wait_answer(b, op, job);
		return rv;
	}
	if (!broker_park(b, op))
		return rv;
	uint64_t ms = w->timeout_ms && w->timeout_ms < MAX_WAIT_MS
	                  ? w->timeout_ms
	                  : MAX_WAIT_MS;
	op->deadline_ms = nqi_mono_ms() + ms;
	op->wait_id = broker_job_id(job);
	op->settled = true;
	op->reply = NULL; /* rebuilt in the group that answers it */
	op->next = b->core.parked_wait;
	b->core.parked_wait = op;
	return NQ_OK;
}

bool broker_has_waiter(broker *b, uint64_t id)
{
	for (broker_op *op = b->core.parked_wait; op; op = op->next)
		if (op->wait_id == id)
			return true;
	return false;
}

void broker_wake_waiters(broker *b, uint64_t id, Nq__V1__Job *job)
{
	broker_op **pp = &b->core.parked_wait;
	while (*pp) {
		broker_op *op = *pp;
		if (op->wait_id != id) {
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		op->reply = broker_reply_new(b);
		if (op->reply)
			reply_job(b, op, job, NQ__V1__REPLY__BODY_WAIT);
		broker_finish(b, op);
	}
}

void broker_drop_waits(broker *b, uint32_t pipe_id)
{
	broker_op **pp = &b->core.parked_wait;
	while (*pp) {
		broker_op *op = *pp;
		if (op->pipe_id != pipe_id) {
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		broker_finish(b, op); /* no reply: no one would read it */
	}
}

/* Answers parked waits whose time is up with the job as it is now. */
int broker_expire_waits(broker *b, uint64_t now_ms)
{
	broker_op **pp = &b->core.parked_wait;
	while (*pp) {
		broker_op *op = *pp;
		if (op->deadline_ms > now_ms && !b->in.stopping) {
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		op->reply = broker_reply_new(b);
		if (!op->reply)
			return NQ_ENOMEM;
		Nq__V1__Job *job;
		int rv = read_named(b, op, op->req->wait->id, &job);
		wait_answer(b, op, job);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Cancels job as a cancel by id or in bulk would: a waiting one ends
 * canceled, a leased one is marked (its worker stops it). *done: it was
 * in a state that can be canceled. */
int broker_cancel_job(broker *b, Nq__V1__Job *job, bool *done)
{
	int st = (int)job->state;
	*done = st == NQ_STATE_READY || st == NQ_STATE_SCHEDULED ||
	        st == NQ_STATE_LEASED || st == NQ_STATE_WAITING;
	if (st == NQ_STATE_LEASED)
		return broker_cancel_leased(b, job);
	if (!*done)
		return NQ_OK;
	return broker_end_waiting(
	    b, job, NQ_STATE_CANCELED, nqi_now_us(), true);
}

static bool cancel_match(const Nq__V1__CancelRequest *c, const Nq__V1__Job *job)
{
	return strcmp(job->spec->queue, c->queue) == 0 &&
	       job->state == c->state && !job->cancel_requested &&
	       (!c->type[0] || strcmp(job->spec->type, c->type) == 0);
}

/* The ids of the jobs a bulk cancel names, in *ids (malloc'd). One scan
 * of the jobs table: bulk cancels are rare, and so none is missed (a job
 * waiting behind its ordering key is in no ready heap). */
static int cancel_ids(
    broker *b, const Nq__V1__CancelRequest *c, uint64_t **ids, size_t *n)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if (mdb_cursor_open(b->core.txn, b->db_jobs, &cur) != 0)
		return NQ_ESTORE;
	int rv = NQ_OK, rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0 && rv == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		broker_record_view(&v);
		Nq__V1__Job *job =
		    nq__v1__job__unpack(NULL, v.mv_size, v.mv_data);
		bool take =
		    job && job->spec && k.mv_size == 8 && cancel_match(c, job);
		if (job)
			nq__v1__job__free_unpacked(job, NULL);
		if (take && NQI_GROW(*ids, cap, *n + 1, 64) != 0)
			rv = NQ_ENOMEM;
		else if (take)
			(*ids)[(*n)++] = nqi_be64_get(k.mv_data);
	}
	mdb_cursor_close(cur);
	return rv != 0 ? rv : rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}

static const char *cancel_bulk_check(const Nq__V1__CancelRequest *c)
{
	if (!nqi_name_valid(c->queue))
		return "a cancel names a job id, or a queue and a state";
	if (c->state != NQ__V1__JOB_STATE__JOB_STATE_READY &&
	    c->state != NQ__V1__JOB_STATE__JOB_STATE_SCHEDULED &&
	    c->state != NQ__V1__JOB_STATE__JOB_STATE_LEASED &&
	    c->state != NQ__V1__JOB_STATE__JOB_STATE_WAITING)
		return "a cancel in bulk takes state ready, scheduled, "
		       "waiting or leased";
	return NULL;
}

/* Cancels every job of a queue in a state (of a type); answers how many. */
static int cancel_bulk(broker *b, broker_op *op)
{
	static const Nq__V1__CancelReply init = NQ__V1__CANCEL_REPLY__INIT;
	const Nq__V1__CancelRequest *c = op->req->cancel;
	const char *bad = cancel_bulk_check(c);
	uint64_t *ids = NULL;
	size_t n = 0;
	if (bad) {
		broker_set_status(b, op, NQ_EINVAL, "%s", bad);
		broker_finish(b, op);
		return NQ_OK;
	}
	Nq__V1__CancelReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	int rv = r ? cancel_ids(b, c, &ids, &n) : NQ_ENOMEM;
	if (r)
		*r = init;
	for (size_t i = 0; rv == 0 && i < n; i++) {
		Nq__V1__Job *job;
		bool done = false;
		rv = broker_job_read(b, ids[i], &job);
		if (rv == 0)
			rv = broker_cancel_job(b, job, &done);
		else if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
			rv = NQ_OK;
		if (rv == 0 && done)
			r->canceled++;
	}
	free(ids);
	if (rv != 0)
		return rv;
	return BROKER_ANSWER(b, op, CANCEL, cancel, r);
}

int broker_on_cancel(broker *b, broker_op *op)
{
	Nq__V1__Job *job;
	bool done;
	if (!op->req->cancel->id[0])
		return cancel_bulk(b, op);
	int rv = read_named(b, op, op->req->cancel->id, &job);
	if (!job) {
		broker_finish(b, op);
		return rv;
	}
	int st = (int)job->state;
	rv = broker_cancel_job(b, job, &done);
	if (!done)
		broker_set_status(b, op, NQ_EPRECOND,
		    "job %s is %s; only scheduled, ready, waiting or leased "
		    "jobs can be canceled",
		    job->id, nq_state_name((nq_state)st));
	reply_job(b, op, job, NQ__V1__REPLY__BODY_CANCEL);
	broker_finish(b, op);
	return rv;
}

/* ---- stats, pause, resume, list ---- */

/* The largest groups of q in s, "other" last when it counts any; strings
 * and rows live in the arena until the reply is sent. */
static int queue_stats_groups(
    broker *b, const broker_queue *q, Nq__V1__QueueStats *s)
{
	static const Nq__V1__GroupStats init = NQ__V1__GROUP_STATS__INIT;
	broker_group_row rows[BROKER_TOP_GROUPS + 1];
	bool other;
	size_t n = broker_top_groups(q, rows, &other);
	n += other; /* only a full top has "other", in the slot after it */
	if (n == 0)
		return 0;
	s->groups = nqi_arena_alloc(b->core.arena, n * sizeof *s->groups);
	Nq__V1__GroupStats *g = nqi_arena_alloc(b->core.arena, n * sizeof *g);
	if (!s->groups || !g)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(rows[i].key) + 1;
		g[i] = init;
		if (!(g[i].group = nqi_arena_alloc(b->core.arena, len)))
			return NQ_ENOMEM;
		memcpy(g[i].group, rows[i].key, len);
		g[i].ready = rows[i].ready;
		g[i].leased = rows[i].leased;
		s->groups[i] = &g[i];
	}
	s->n_groups = n;
	return 0;
}

static Nq__V1__QueueStats *queue_stats(broker *b, broker_queue *q)
{
	static const Nq__V1__QueueStats init = NQ__V1__QUEUE_STATS__INIT;
	Nq__V1__QueueStats *s = nqi_arena_alloc(b->core.arena, sizeof *s);
	if (!s)
		return NULL;
	*s = init;
	s->queue = q->name;
	s->paused = q->paused;
	broker_gate_gauges(b, q);
	broker_latency_gauges(q, nqi_now_us());
#define STATS_COPY_(name, kind, ...) NQI_QF_CORE_##kind(s->name = q->name;)
	NQI_QUEUE_FIELDS(STATS_COPY_)
#undef STATS_COPY_
	s->oldest_ready_us = broker_oldest_ready_us(q);
	return queue_stats_groups(b, q, s) == 0 ? s : NULL;
}

int broker_on_stats(broker *b, broker_op *op)
{
	static const Nq__V1__StatsReply init = NQ__V1__STATS_REPLY__INIT;
	static const Nq__V1__BrokerStats binit = NQ__V1__BROKER_STATS__INIT;
	const char *want = op->req->stats->queue;
	broker_index *x = &b->core.index;
	Nq__V1__StatsReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__BrokerStats *bs = nqi_arena_alloc(b->core.arena, sizeof *bs);
	Nq__V1__QueueStats **qs =
	    nqi_arena_alloc(b->core.arena, (x->nqueues + 1) * sizeof *qs);
	if (!r || !bs || !qs)
		return NQ_ENOMEM;
	*r = init;
	*bs = binit;
	for (size_t i = 0; i < x->nqueues; i++) {
		if (want && want[0] && strcmp(want, x->queues[i].name) != 0)
			continue;
		if (!(qs[r->n_queues++] = queue_stats(b, &x->queues[i])))
			return NQ_ENOMEM;
	}
	r->queues = qs;
	bs->commits = nqi_store_commits(b->store);
	bs->uptime_ms = nqi_mono_ms() - b->started_ms;
	bs->jobs_stored = b->core.jobs_stored;
	bs->version = (char *)NQ_VERSION;
	r->broker = bs;
	if (broker_workers_stats(b, want, r) != NQ_OK)
		return NQ_ENOMEM;
	return BROKER_ANSWER(b, op, STATS, stats, r);
}

/* Stores the queue's settings (NQI_QUEUE_SETTINGS) in its QueueConfig:
 * the record is read, changed and written back, so that the fields this
 * broker does not keep stay as they were. A record that does not decode
 * is replaced. */
int broker_queue_settings_store(broker *b, const broker_queue *q)
{
	Nq__V1__QueueConfig init = NQ__V1__QUEUE_CONFIG__INIT, *cfg = NULL;
	MDB_val k = {strlen(q->name), (void *)q->name}, v;
	int rc = mdb_get(b->core.txn, b->db_queues, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return NQ_ESTORE;
	if (rc == 0)
		cfg = nq__v1__queue_config__unpack(
		    &b->core.arena->pb, v.mv_size, v.mv_data);
	if (!cfg)
		cfg = &init;
#define SETTING_PUT_(name, type) cfg->name = q->name;
	NQI_QUEUE_SETTINGS(SETTING_PUT_)
#undef SETTING_PUT_
	if (broker_policy_put(b, q, cfg) != 0)
		return NQ_ENOMEM;
	v.mv_size = nq__v1__queue_config__get_packed_size(cfg);
	if (!(v.mv_data = nqi_arena_alloc(b->core.arena, v.mv_size + 1)))
		return NQ_ENOMEM;
	nq__v1__queue_config__pack(cfg, v.mv_data);
	if (mdb_put(b->core.txn, b->db_queues, &k, &v, 0) != 0)
		return NQ_ESTORE;
	b->core.dirty = true;
	return NQ_OK;
}

/* Pauses or resumes a queue; the flag survives a restart. */
static int queue_set_paused(
    broker *b, broker_op *op, const char *name, bool paused)
{
	static const Nq__V1__QueueReply init = NQ__V1__QUEUE_REPLY__INIT;
	if (!nqi_name_valid(name)) {
		broker_set_status(b, op, NQ_EINVAL,
		    "queue name '%.40s' must match "
		    "[A-Za-z0-9._-]{1,128}",
		    name);
		broker_finish(b, op);
		return NQ_OK;
	}
	int qi = broker_queue_get(&b->core.index, name);
	Nq__V1__QueueReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	if (qi < 0 || !r)
		return NQ_ENOMEM;
	broker_queue *q = &b->core.index.queues[qi];
	bool was = q->paused;
	q->paused = paused;
	int rv = broker_queue_settings_store(b, q);
	if (rv != 0) {
		q->paused = was;
		return rv;
	}
	if (!paused)
		b->core.woken = true;
	nqi_info(paused ? "NQ-QUEUE-PAUSED" : "NQ-QUEUE-RESUMED",
	    NQI_S("queue", name));
	*r = init;
	r->queue = q->name;
	r->paused = paused;
	return BROKER_ANSWER(b, op, QUEUE, queue, r);
}

int broker_on_pause(broker *b, broker_op *op)
{
	return queue_set_paused(b, op, op->req->pause->queue, true);
}

int broker_on_resume(broker *b, broker_op *op)
{
	return queue_set_paused(b, op, op->req->resume->queue, false);
}

static bool list_match(const Nq__V1__ListRequest *l, const Nq__V1__Job *job)
{
	if (l->queue && l->queue[0] && strcmp(l->queue, job->spec->queue) != 0)
		return false;
	if (l->type && l->type[0] && strcmp(l->type, job->spec->type) != 0)
		return false;
	return !l->state || l->state == job->state;
}

int broker_on_list(broker *b, broker_op *op)
{
	static const Nq__V1__ListReply init = NQ__V1__LIST_REPLY__INIT;
	Nq__V1__ListRequest *l = op->req->list;
	uint32_t limit = !l->limit ? 100 : l->limit < 1000 ? l->limit : 1000;
	uint64_t after = 0;
	if (l->after_id && l->after_id[0] &&
	    !parse_id(b, op, l->after_id, &after)) {
		broker_finish(b, op);
		return NQ_OK;
	}
	Nq__V1__ListReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__Job **jobs =
	    nqi_arena_alloc(b->core.arena, limit * sizeof *jobs);
	char *next = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
	MDB_cursor *cur;
	if (!r || !jobs || !next)
		return NQ_ENOMEM;
	*r = init;
	r->jobs = jobs;
	if (mdb_cursor_open(b->core.txn, b->db_jobs, &cur) != 0)
		return NQ_ESTORE;
	uint8_t key[8];
	nqi_be64_put(key, after + 1);
	MDB_val k = {8, key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* Bounded scan: a filter that matches little stops after 100k rows,
	 * and the reply says where to go on. */
	for (int seen = 0; rc == 0 && r->n_jobs < limit && seen < 100000;
	     seen++) {
		broker_record_view(&v);
		Nq__V1__Job *job = nq__v1__job__unpack(
		    &b->core.arena->pb, v.mv_size, v.mv_data);
		if (job && job->spec && list_match(l, job)) {
			job->spec->payload.len = 0;
			jobs[r->n_jobs++] = job;
		}
		after = k.mv_size == 8 ? nqi_be64_get(k.mv_data) : after;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	next[0] = '\0';
	if (rc == 0)
		nqi_id_format(after, next);
	r->next_after_id = next;
	return BROKER_ANSWER(b, op, LIST, list, r);
}
