/* Batches: jobs enqueued under a batch id, then sealed; callbacks enqueued
 * exactly once when the sealed batch completes. The batch record (database
 * "batches") counts the jobs added and how each ended, so that the end of
 * a job costs one small record, whatever the batch's size. The index maps
 * each job of a batch not yet ended to its batch (rebuilt at recovery from
 * the records), so that a job's end, the plain success's too, finds its
 * batch without reading the job, and a cancel finds the batch's jobs. A
 * group reads each record it touches once, changes it in place and writes
 * it back before its commit (broker_batches_flush): the end that completes
 * a batch and the callbacks it enqueues (at the group's end,
 * broker_batches_fire) are in one commit, so a crash can neither lose them
 * nor enqueue them twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define BY_STATE_MAX 10000 /* pending jobs a get reads for their states */

typedef struct broker_batch_slot {
	uint64_t id;
	Nq__V1__Batch *rec; /* in the group arena */
	bool dirty;         /* written back before the commit */
	bool drop;          /* made by this group and not kept */
	bool fire;          /* completed: callbacks to enqueue */
	uint64_t last;      /* the job whose end completed it (0: a seal) */
	const char *queue;  /* its queue, in the arena */
} broker_batch_slot;

/* ---- the jobs of batches not ended ---- */

static size_t job_slot(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static void batched_insert(
    struct broker_batched *v, size_t cap, struct broker_batched e)
{
	size_t i = job_slot(e.job, cap);
	while (v[i].job && v[i].job != e.job)
		i = (i + 1) & (cap - 1);
	v[i] = e;
}

static int batched_grow(broker_index *x)
{
	size_t cap = x->capbatched ? x->capbatched * 2 : 1024;
	struct broker_batched *v = calloc(cap, sizeof *v);
	if (!v)
		return NQ_ENOMEM;
	for (size_t i = 0; i < x->capbatched; i++)
		if (x->batched[i].job)
			batched_insert(v, cap, x->batched[i]);
	free(x->batched);
	x->batched = v;
	x->capbatched = cap;
	return NQ_OK;
}

int broker_batched_add(broker_index *x, uint64_t job, const char *batch)
{
	uint64_t id;
	if (nqi_id_parse(batch, &id) != 0)
		return NQ_OK; /* refused at enqueue: never stored */
	if ((x->nbatched + 1) * 2 > x->capbatched && batched_grow(x) != 0)
		return NQ_ENOMEM;
	batched_insert(
	    x->batched, x->capbatched, (struct broker_batched){job, id});
	x->nbatched++;
	return NQ_OK;
}

/* Takes job out; its batch in *batch. The entries after it move back. */
static bool batched_take(broker_index *x, uint64_t job, uint64_t *batch)
{
	size_t cap = x->capbatched, i;
	if (!cap)
		return false;
	for (i = job_slot(job, cap); x->batched[i].job != job;
	     i = (i + 1) & (cap - 1))
		if (!x->batched[i].job)
			return false;
	*batch = x->batched[i].batch;
	x->batched[i].job = 0;
	x->nbatched--;
	for (size_t j = (i + 1) & (cap - 1); x->batched[j].job;
	     j = (j + 1) & (cap - 1)) {
		struct broker_batched moved = x->batched[j];
		x->batched[j].job = 0;
		batched_insert(x->batched, cap, moved);
	}
	return true;
}

void broker_batched_clear(broker_index *x)
{
	if (x->capbatched)
		memset(x->batched, 0, x->capbatched * sizeof *x->batched);
	x->nbatched = 0;
}

/* ---- the group's records ---- */

static broker_batch_slot *slot_find(broker *b, uint64_t id)
{
	for (size_t i = 0; i < b->core.nbatches; i++)
		if (b->core.batches[i].id == id)
			return &b->core.batches[i];
	return NULL;
}

static broker_batch_slot *slot_add(broker *b, uint64_t id, Nq__V1__Batch *r)
{
	if (NQI_GROW(b->core.batches, b->core.capbatches, b->core.nbatches + 1,
	        8) != 0)
		return NULL;
	broker_batch_slot *s = &b->core.batches[b->core.nbatches++];
	*s = (broker_batch_slot){id, r, false, false, false, 0, NULL};
	return s;
}

/* The record of batch id: NQ_ENOTFOUND, NQ_EINTERNAL (does not decode),
 * NQ_ESTORE or NQ_ENOMEM otherwise. */
static int batch_load(broker *b, uint64_t id, broker_batch_slot **out)
{
	uint8_t key[8];
	if ((*out = slot_find(b, id)) != NULL)
		return NQ_OK;
	nqi_be64_put(key, id);
	MDB_val k = {8, key}, v;
	int rc = mdb_get(b->core.txn, b->db_batches, &k, &v);
	if (rc == MDB_NOTFOUND)
		return NQ_ENOTFOUND;
	if (rc != 0)
		return NQ_ESTORE;
	Nq__V1__Batch *r =
	    nq__v1__batch__unpack(&b->core.arena->pb, v.mv_size, v.mv_data);
	if (!r)
		return NQ_EINTERNAL;
	return (*out = slot_add(b, id, r)) ? NQ_OK : NQ_ENOMEM;
}

static void batch_touch(broker *b, broker_batch_slot *s)
{
	s->dirty = true;
	b->core.dirty = true;
}

int broker_batches_flush(broker *b)
{
	for (size_t i = 0; i < b->core.nbatches; i++) {
		broker_batch_slot *s = &b->core.batches[i];
		uint8_t key[8];
		if (!s->dirty || s->drop)
			continue;
		nqi_be64_put(key, s->id);
		size_t len = nq__v1__batch__get_packed_size(s->rec);
		MDB_val k = {8, key}, v = {len, NULL};
		if (mdb_put(b->core.txn, b->db_batches, &k, &v, MDB_RESERVE))
			return NQ_ESTORE;
		nq__v1__batch__pack(s->rec, v.mv_data);
		s->dirty = false;
	}
	return NQ_OK;
}

void broker_batches_forget(broker *b)
{
	b->core.nbatches = 0;
}

/* ---- counts and completion ---- */

static uint64_t *end_count(Nq__V1__Batch *r, int state)
{
	switch (state) {
	case NQ_STATE_SUCCEEDED:
		return &r->succeeded;
	case NQ_STATE_DEAD:
		return &r->dead;
	case NQ_STATE_CANCELED:
		return &r->canceled;
	case NQ_STATE_EXPIRED:
		return &r->expired;
	default:
		return NULL;
	}
}

static uint64_t ended_of(const Nq__V1__Batch *r)
{
	return r->succeeded + r->dead + r->canceled + r->expired;
}

static bool completes(const Nq__V1__Batch *r)
{
	return r->sealed && !r->completed_us && ended_of(r) >= r->total;
}

/* The batch's counts as JSON, the callbacks' parent result. */
static char *counts_json(broker *b, const Nq__V1__Batch *r)
{
	char buf[320];
	snprintf(buf, sizeof buf,
	    "{\"batch\":\"%s\",\"total\":%llu,\"succeeded\":%llu,"
	    "\"dead\":%llu,\"canceled\":%llu,\"expired\":%llu}",
	    r->id, (unsigned long long)r->total,
	    (unsigned long long)r->succeeded, (unsigned long long)r->dead,
	    (unsigned long long)r->canceled, (unsigned long long)r->expired);
	return nqi_arena_strdup(b->core.arena, buf);
}

/* The family each callback job starts with: one parent result, named by
 * the batch, holding its counts. */
static Nq__V1__JobFamily *callback_family(broker *b, const Nq__V1__Batch *r)
{
	static const Nq__V1__JobFamily finit = NQ__V1__JOB_FAMILY__INIT;
	static const Nq__V1__ParentResult pinit = NQ__V1__PARENT_RESULT__INIT;
	Nq__V1__JobFamily *f = nqi_arena_alloc(b->core.arena, sizeof *f);
	Nq__V1__ParentResult *p = nqi_arena_alloc(b->core.arena, sizeof *p);
	Nq__V1__ParentResult **v = nqi_arena_alloc(b->core.arena, sizeof *v);
	char *counts = counts_json(b, r);
	if (!f || !p || !v || !counts)
		return NULL;
	*f = finit;
	*p = pinit;
	p->id = r->id;
	p->state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	p->result = (ProtobufCBinaryData){strlen(counts), (uint8_t *)counts};
	v[0] = p;
	f->parent_results = v;
	f->n_parent_results = 1;
	return f;
}

/* The queue batch_completed is published on: the callback's, else the
 * last job's. */
static const char *event_queue(const broker_batch_slot *s)
{
	const Nq__V1__Batch *r = s->rec;
	if (r->on_complete)
		return r->on_complete->queue;
	if (r->on_success)
		return r->on_success->queue;
	return s->queue ? s->queue : "";
}

/* Enqueues the callbacks of a completed batch, with its event. */
static int batch_fire(broker *b, broker_batch_slot *s)
{
	Nq__V1__Batch *r = s->rec;
	Nq__V1__JobFamily *f = callback_family(b, r);
	char *last = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
	int rv = f && last ? NQ_OK : NQ_ENOMEM;
	s->fire = false;
	if (rv == 0 && r->on_complete)
		rv = broker_enqueue_callback(
		    b, r->on_complete, f, &r->on_complete_id);
	if (rv == 0 && r->on_success && r->succeeded == r->total)
		rv = broker_enqueue_callback(
		    b, r->on_success, f, &r->on_success_id);
	if (rv != 0)
		return rv;
	last[0] = '\0';
	if (s->last)
		nqi_id_format(s->last, last);
	nqi_info("NQ-BATCH-COMPLETED", NQI_S("batch", r->id),
	    NQI_U("total", r->total), NQI_U("succeeded", r->succeeded),
	    NQI_U("dead", r->dead), NQI_U("canceled", r->canceled),
	    NQI_U("expired", r->expired));
	broker_batch_event(b, r->id, event_queue(s), last,
	    (const char *)f->parent_results[0]->result.data);
	return NQ_OK;
}

/* Every job of the sealed batch ended (last: the job whose end did it, of
 * queue; 0 at a seal). Its callbacks are enqueued in this group: at once
 * (now), or at its end (broker_batches_fire) when a job's end did it,
 * since the enqueue may grow the queues its caller holds. */
static int batch_complete(
    broker *b, broker_batch_slot *s, uint64_t last, const char *queue, bool now)
{
	uint8_t key[8];
	Nq__V1__Batch *r = s->rec;
	r->completed_us = nqi_now_us();
	batch_touch(b, s);
	s->fire = true;
	s->last = last;
	s->queue = queue ? nqi_arena_strdup(b->core.arena, queue) : NULL;
	/* Kept readable as long as a finished job is by default. */
	nqi_be64_put(key, s->id);
	int rv = broker_expiry_put(b,
	    nqi_us_plus_ms(r->completed_us, b->cfg.result_ttl_ms), 'b', key, 8);
	return rv == 0 && now ? batch_fire(b, s) : rv;
}

int broker_batches_fire(broker *b)
{
	int rv = NQ_OK;
	for (size_t i = 0; rv == 0 && i < b->core.nbatches; i++)
		if (b->core.batches[i].fire)
			rv = batch_fire(b, &b->core.batches[i]);
	return rv;
}

int broker_batch_ended(broker *b, uint64_t id, int state, const char *queue)
{
	uint64_t batch;
	broker_batch_slot *s;
	if (!batched_take(&b->core.index, id, &batch))
		return NQ_OK;
	int rv = batch_load(b, batch, &s);
	if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
		return NQ_OK; /* gone: nobody counts */
	uint64_t *c = rv == 0 ? end_count(s->rec, state) : NULL;
	if (!c)
		return rv;
	(*c)++;
	batch_touch(b, s);
	return completes(s->rec) ? batch_complete(b, s, id, queue, false)
	                         : NQ_OK;
}

/* ---- jobs joining ---- */

/* The batch a request or a spec names: *s, or why not (its status in
 * *err). */
static const char *batch_named(broker *b, const char *text,
    broker_batch_slot **s, int *err, char *why, size_t len)
{
	uint64_t id;
	*s = NULL;
	*err = NQ_EINVAL;
	if (nqi_id_parse(text, &id) != 0)
		return snprintf(why, len,
		           "batch id '%.40s' is not 16 hex digits", text),
		       why;
	*err = batch_load(b, id, s);
	if (*err == NQ_ENOTFOUND)
		return snprintf(why, len,
		           "batch %s not found (never created, or deleted "
		           "after it completed)",
		           text),
		       why;
	if (*err == NQ_EINTERNAL)
		return snprintf(why, len,
		           "batch %s: stored record does not decode", text),
		       why;
	return *err ? "store failed" : NULL;
}

const char *broker_batch_refuses(
    broker *b, const Nq__V1__JobSpec *spec, int *err, char *why, size_t len)
{
	broker_batch_slot *s;
	const char *bad =
	    batch_named(b, broker_batch_of(spec), &s, err, why, len);
	if (bad)
		return bad;
	*err = NQ_EPRECOND;
	if (s->rec->sealed)
		return snprintf(why, len,
		           "batch %s is sealed; it takes no more jobs",
		           s->rec->id),
		       why;
	*err = NQ_OK;
	return NULL;
}

int broker_batch_join(broker *b, const Nq__V1__Job *job)
{
	uint64_t id;
	broker_batch_slot *s;
	if (nqi_id_parse(broker_batch_of(job->spec), &id) != 0)
		return NQ_EINTERNAL; /* broker_batch_refuses parsed it */
	int rv = batch_load(b, id, &s);
	if (rv != 0)
		return rv;
	s->rec->total++;
	batch_touch(b, s);
	return broker_batched_add(
	    &b->core.index, broker_job_id(job), broker_batch_of(job->spec));
}

/* ---- create, seal ---- */

/* What is wrong with callback spec s (NULL: nothing, or none). */
static const char *callback_invalid(broker *b, const char *name,
    const Nq__V1__JobSpec *s, int *err, char *why, size_t len)
{
	char inner[400];
	const char *bad;
	*err = NQ_EINVAL;
	if (!s)
		return NULL;
	if ((bad = broker_spec_invalid(b, s, inner, sizeof inner)) != NULL)
		return snprintf(why, len, "%s: %s", name, bad), why;
	if (broker_batch_of(s)[0] || broker_nparents(s) ||
	    s->idempotency_key[0])
		return snprintf(why, len,
		           "%s: a callback may not name a batch, parents or "
		           "an idempotency key",
		           name),
		       why;
	*err = NQ_EPRECOND;
	if (broker_policy_refuses(
	        broker_policy_named(b, s->queue), s, inner, sizeof inner))
		return snprintf(why, len, "%s: %s", name, inner), why;
	*err = NQ_OK;
	return NULL;
}

/* A new batch with the callbacks of c, not yet sealed: *s, or why not. */
static const char *batch_create(broker *b, Nq__V1__BatchCreateRequest *c,
    broker_batch_slot **s, int *err, char *why, size_t len)
{
	static const Nq__V1__Batch init = NQ__V1__BATCH__INIT;
	const char *bad;
	*s = NULL;
	if ((bad = callback_invalid(
	         b, "on_success", c->on_success, err, why, len)) ||
	    (bad = callback_invalid(
	         b, "on_complete", c->on_complete, err, why, len)))
		return bad;
	Nq__V1__Batch *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	char *ids = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
	uint64_t id = broker_next_id(b, nqi_now_us());
	*err = NQ_ENOMEM;
	if (!r || !ids || !(*s = slot_add(b, id, r)))
		return "broker out of memory";
	*r = init;
	nqi_id_format(id, ids);
	r->id = ids;
	r->created_us = id;
	r->on_success = c->on_success;
	r->on_complete = c->on_complete;
	batch_touch(b, *s);
	*err = NQ_OK;
	return NULL;
}

static int batch_seal(broker *b, broker_batch_slot *s)
{
	if (s->rec->sealed)
		return NQ_OK;
	s->rec->sealed = true;
	batch_touch(b, s);
	return completes(s->rec) ? batch_complete(b, s, 0, NULL, true) : NQ_OK;
}

/* Names batch id in spec (its Dependencies made when it has none). */
static int join(broker *b, Nq__V1__JobSpec *spec, char *id)
{
	static const Nq__V1__Dependencies init = NQ__V1__DEPENDENCIES__INIT;
	if (!spec->depends && (spec->depends = nqi_arena_alloc(b->core.arena,
	                           sizeof *spec->depends)) != NULL)
		*spec->depends = init;
	if (!spec->depends)
		return NQ_ENOMEM;
	spec->depends->batch_id = id;
	return NQ_OK;
}

const char *broker_batch_for_enqueue(
    broker *b, broker_op *op, char **id, int *err, char *why, size_t len)
{
	Nq__V1__EnqueueRequest *req = op->req->enqueue;
	broker_batch_slot *s;
	for (size_t i = 0; i < req->n_jobs; i++)
		if (broker_batch_of(req->jobs[i])[0]) {
			*err = NQ_EINVAL;
			return "a request that creates a batch may not name "
			       "another in its jobs";
		}
	const char *bad = batch_create(b, req->batch, &s, err, why, len);
	if (bad)
		return bad;
	for (size_t i = 0; i < req->n_jobs; i++)
		if (join(b, req->jobs[i], s->rec->id) != 0) {
			*err = NQ_ENOMEM;
			return "broker out of memory";
		}
	op->specs = NULL; /* packed before they named the batch */
	*id = s->rec->id;
	return NULL;
}

int broker_batch_enqueued(broker *b, broker_op *op, char **id)
{
	uint64_t n;
	broker_batch_slot *s;
	if (nqi_id_parse(*id, &n) != 0 || !(s = slot_find(b, n)))
		return NQ_EINTERNAL;
	if (s->rec->total == 0) {
		s->drop = true; /* every job was refused: nothing stored */
		*id = (char *)"";
		return NQ_OK;
	}
	return op->req->enqueue->batch->seal ? batch_seal(b, s) : NQ_OK;
}

/* ---- requests ---- */

/* The batch as a reply shows it: with its jobs not ended. A batch whose
 * callbacks this group has still to enqueue (s->fire) is shown as not yet
 * completed, so that a completed batch always names its callbacks' jobs. */
static Nq__V1__Batch *shown(broker *b, const broker_batch_slot *s)
{
	const Nq__V1__Batch *r = s->rec;
	Nq__V1__Batch *c = nqi_arena_alloc(b->core.arena, sizeof *c);
	if (!c)
		return NULL;
	*c = *r;
	if (s->fire)
		c->completed_us = 0;
	uint64_t ended = ended_of(r);
	c->pending = r->total > ended ? r->total - ended : 0;
	return c;
}

static int answer(broker *b, broker_op *op, const broker_batch_slot *s,
    uint32_t canceled, Nq__V1__Reply__BodyCase body)
{
	static const Nq__V1__BatchReply init = NQ__V1__BATCH_REPLY__INIT;
	Nq__V1__BatchReply *rep = nqi_arena_alloc(b->core.arena, sizeof *rep);
	if (!rep || !(*rep = init, rep->batch = shown(b, s)))
		return NQ_ENOMEM;
	rep->canceled = canceled;
	op->reply->body_case = body;
	/* Every batch body of Reply is a BatchReply. */
	if (body == NQ__V1__REPLY__BODY_BATCH_CREATE)
		op->reply->batch_create = rep;
	else if (body == NQ__V1__REPLY__BODY_BATCH_SEAL)
		op->reply->batch_seal = rep;
	else if (body == NQ__V1__REPLY__BODY_BATCH_GET)
		op->reply->batch_get = rep;
	else
		op->reply->batch_cancel = rep;
	broker_finish(b, op);
	return NQ_OK;
}

/* A refusal answered (NQ_OK), or a store failure that fails the group. */
static int refuse(broker *b, broker_op *op, int err, const char *why)
{
	if (err == NQ_ESTORE || err == NQ_ENOMEM)
		return err;
	broker_set_status(b, op, err, "%s", why);
	broker_finish(b, op);
	return NQ_OK;
}

int broker_on_batch_create(broker *b, broker_op *op)
{
	char why[500];
	int err;
	broker_batch_slot *s;
	Nq__V1__BatchCreateRequest *c = op->req->batch_create;
	const char *bad = batch_create(b, c, &s, &err, why, sizeof why);
	if (bad)
		return refuse(b, op, err, bad);
	int rv = c->seal ? batch_seal(b, s) : NQ_OK;
	return rv != 0 ? rv
	               : answer(b, op, s, 0, NQ__V1__REPLY__BODY_BATCH_CREATE);
}

/* Seal and get: the batch the request names, sealed first when seal. */
static int named(broker *b, broker_op *op, const char *id,
    Nq__V1__Reply__BodyCase body, bool seal)
{
	char why[200];
	int err;
	broker_batch_slot *s;
	const char *bad = batch_named(b, id, &s, &err, why, sizeof why);
	if (bad)
		return refuse(b, op, err, bad);
	int rv = seal ? batch_seal(b, s) : NQ_OK;
	return rv != 0 ? rv : answer(b, op, s, 0, body);
}

static int batch_job_ids(broker *b, uint64_t id, uint64_t **ids, size_t *n);

/* Get: the pending jobs by state, read one by one up to a bound. */
static int by_state(broker *b, uint64_t id, Nq__V1__Batch *shown_rec)
{
	uint64_t *ids;
	size_t n;
	int rv = batch_job_ids(b, id, &ids, &n);
	for (size_t i = 0; rv == 0 && n <= BY_STATE_MAX && i < n; i++) {
		Nq__V1__Job *job;
		rv = broker_job_read(b, ids[i], &job);
		if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL) {
			rv = NQ_OK;
			continue;
		}
		if (rv != 0)
			break;
		uint64_t *c =
		    job->state == NQ__V1__JOB_STATE__JOB_STATE_WAITING
		        ? &shown_rec->waiting
		    : job->state == NQ__V1__JOB_STATE__JOB_STATE_SCHEDULED
		        ? &shown_rec->scheduled
		    : job->state == NQ__V1__JOB_STATE__JOB_STATE_READY
		        ? &shown_rec->ready
		        : &shown_rec->leased;
		(*c)++;
	}
	free(ids);
	return rv;
}

int broker_on_batch_seal(broker *b, broker_op *op)
{
	return named(b, op, op->req->batch_seal->id,
	    NQ__V1__REPLY__BODY_BATCH_SEAL, true);
}

int broker_on_batch_get(broker *b, broker_op *op)
{
	int rv = named(b, op, op->req->batch_get->id,
	    NQ__V1__REPLY__BODY_BATCH_GET, false);
	Nq__V1__BatchReply *r = op->reply ? op->reply->batch_get : NULL;
	if (rv != 0 || op->reply->body_case != NQ__V1__REPLY__BODY_BATCH_GET ||
	    !r)
		return rv;
	uint64_t id;
	return nqi_id_parse(r->batch->id, &id) == 0 ? by_state(b, id, r->batch)
	                                            : NQ_OK;
}

/* The ids of the batch's jobs not ended, in *ids (malloc'd). */
static int batch_job_ids(broker *b, uint64_t id, uint64_t **ids, size_t *n)
{
	const broker_index *x = &b->core.index;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	for (size_t i = 0; i < x->capbatched; i++) {
		if (!x->batched[i].job || x->batched[i].batch != id)
			continue;
		if (NQI_GROW(*ids, cap, *n + 1, 256) != 0)
			return NQ_ENOMEM;
		(*ids)[(*n)++] = x->batched[i].job;
	}
	return NQ_OK;
}

static int cancel_jobs(broker *b, uint64_t id, uint32_t *canceled)
{
	uint64_t *ids;
	size_t n;
	int rv = batch_job_ids(b, id, &ids, &n);
	for (size_t i = 0; rv == 0 && i < n; i++) {
		Nq__V1__Job *job;
		bool done = false;
		rv = broker_job_read(b, ids[i], &job);
		if (rv == 0 && !job->cancel_requested)
			rv = broker_cancel_job(b, job, &done);
		else if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
			rv = NQ_OK;
		if (rv == 0 && done)
			(*canceled)++;
	}
	free(ids);
	return rv;
}

int broker_on_batch_cancel(broker *b, broker_op *op)
{
	char why[200];
	int err;
	uint32_t canceled = 0;
	broker_batch_slot *s;
	const char *bad = batch_named(
	    b, op->req->batch_cancel->id, &s, &err, why, sizeof why);
	if (bad)
		return refuse(b, op, err, bad);
	/* Sealed first: no job joins while its jobs are canceled, and the
	 * last one's end completes it. */
	s->rec->cancel_requested = true;
	batch_touch(b, s);
	int rv = batch_seal(b, s);
	if (rv == 0)
		rv = cancel_jobs(b, s->id, &canceled);
	return rv != 0 ? rv
	               : answer(b, op, s, canceled,
	                     NQ__V1__REPLY__BODY_BATCH_CANCEL);
}

int broker_on_batch_list(broker *b, broker_op *op)
{
	static const Nq__V1__BatchListReply init =
	    NQ__V1__BATCH_LIST_REPLY__INIT;
	const Nq__V1__BatchListRequest *l = op->req->batch_list;
	uint32_t limit = l->limit ? l->limit : LIST_DEFAULT;
	uint64_t after = 0;
	if (l->after_id[0] && nqi_id_parse(l->after_id, &after) != 0)
		return refuse(
		    b, op, NQ_EINVAL, "after_id is not 16 hex digits");
	if (limit > LIST_MAX)
		limit = LIST_MAX;
	Nq__V1__BatchListReply *rep =
	    nqi_arena_alloc(b->core.arena, sizeof *rep);
	Nq__V1__Batch **v = nqi_arena_alloc(b->core.arena, limit * sizeof *v);
	MDB_cursor *cur;
	uint8_t key[8];
	if (!rep || !v)
		return NQ_ENOMEM;
	*rep = init;
	nqi_be64_put(key, after + 1);
	MDB_val k = {8, key}, d;
	if (mdb_cursor_open(b->core.txn, b->db_batches, &cur) != 0)
		return NQ_ESTORE;
	int rv = NQ_OK, rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	for (; rc == 0 && rv == 0 && rep->n_batches < limit;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		broker_batch_slot *s;
		if (k.mv_size != 8)
			continue;
		rv = batch_load(b, nqi_be64_get(k.mv_data), &s);
		if (rv == NQ_EINTERNAL)
			rv = NQ_OK; /* a record that does not decode: skipped */
		else if (rv == 0 && !(v[rep->n_batches++] = shown(b, s)))
			rv = NQ_ENOMEM;
	}
	mdb_cursor_close(cur);
	if (rv != 0)
		return rv;
	if (rc == 0 && rep->n_batches == limit)
		rep->next_after_id = v[limit - 1]->id;
	rep->batches = v;
	return BROKER_ANSWER(b, op, BATCH_LIST, batch_list, rep);
}

/* ---- expiry ---- */

int broker_batch_expire(broker *b, uint64_t id)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	broker_batch_slot *s = slot_find(b, id);
	if (s)
		s->drop = true; /* not written back */
	int rc = mdb_del(b->core.txn, b->db_batches, &k, NULL);
	b->core.dirty = true;
	return rc == 0 || rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}
