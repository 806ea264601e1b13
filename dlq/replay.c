/*
 * Replay: puts dead entries back on the broker with libnq, one replay
 * request at a time on a thread of its own (it waits on the network and
 * on its pacing, which the core must never do).
 *
 * Each entry is enqueued as its original JobSpec with fresh attempts, to
 * run now, linked to the entry by replay_of and keyed
 * "replay:<entry id>:<n>" (n: the entry's replays + 1). An entry leaves
 * the DLQ only after the broker confirmed its enqueue (OK or duplicate), in
 * a commit of the core. When the broker's answer is lost, the entry stays
 * and a later replay sends the same key, which the broker answers as a
 * duplicate: an entry is never enqueued twice.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "nqi/log.h"
#include "nqi/tls.h"
#include "nqi/util.h"

#define BATCH_MAX 100
/* With --all, failures are listed one by one up to this many. */
#define ALL_RESULTS_MAX 1000

typedef struct replay_run {
	dlq *d;
	dlq_op *op;
	const Nq__V1__DlqReplayRequest *r;
	const char *queue; /* --all of one queue; NULL: every queue */
	uint64_t *ids;     /* named entries, in order */
	size_t nids, next;
	/* --all: position in the time (or queue) index, and its end as it
	 * was when the replay began, so newly dead jobs are not chased */
	bool started, have_pos;
	uint64_t pos_at, pos_id, end_at, end_id;
	bool empty;
	/* pacing */
	uint64_t start_ms, sent;
	/* outcome */
	Nq__V1__EnqueueResult **results;
	size_t nresults, capresults;
	uint32_t replayed, failed;
	int stop_err;
	char stop_why[256];
} replay_run;

/* ---- outcome ---- */

static int add_result(
    replay_run *run, int err, const char *id, bool dup, const char *msg)
{
	static const Nq__V1__EnqueueResult init = NQ__V1__ENQUEUE_RESULT__INIT;
	static const Nq__V1__Status sinit = NQ__V1__STATUS__INIT;
	nqi_arena *m = &run->op->mem;
	if (run->nresults == run->capresults) {
		size_t cap = run->capresults ? run->capresults * 2 : 64;
		Nq__V1__EnqueueResult **v =
		    nqi_arena_zalloc(m, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		if (run->nresults)
			memcpy(v, run->results, run->nresults * sizeof *v);
		run->results = v;
		run->capresults = cap;
	}
	Nq__V1__EnqueueResult *r = nqi_arena_zalloc(m, sizeof *r);
	Nq__V1__Status *s = nqi_arena_zalloc(m, sizeof *s);
	if (!r || !s)
		return NQ_ENOMEM;
	*r = init;
	*s = sinit;
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	if ((msg && *msg && !(s->message = nqi_arena_strdup(m, msg))) ||
	    (id && *id && !(r->id = nqi_arena_strdup(m, id))))
		return NQ_ENOMEM;
	r->status = s;
	r->duplicate = dup;
	run->results[run->nresults++] = r;
	return NQ_OK;
}

/* An entry that was not replayed: named ids get a result each; with
 * --all the first ALL_RESULTS_MAX failures do, their message naming the
 * entry. */
static int note_failed(replay_run *run, uint64_t id, int err, const char *why)
{
	char eid[NQ_ID_MAX], msg[400];
	run->failed++;
	if (!run->ids && run->nresults >= ALL_RESULTS_MAX)
		return NQ_OK;
	nqi_id_format(id, eid);
	snprintf(msg, sizeof msg, "entry %s: %s", eid, why);
	return add_result(run, err, NULL, false, msg);
}

/* ---- which entries ---- */

static const char *check_request(const Nq__V1__DlqReplayRequest *r)
{
	if (r->n_ids && r->all)
		return "name the entries to replay or all of them, not both";
	if (!r->n_ids && !r->all)
		return "name the entries to replay, or all";
	if (r->queue[0] && !r->all)
		return "queue only narrows a replay of all";
	if (r->queue[0] && !nqi_name_valid(r->queue))
		return "queue is not a name of 1 to 128 characters "
		       "[A-Za-z0-9._-]";
	if (!isfinite(r->rate_per_s) || r->rate_per_s < 0)
		return "rate_per_s must be a positive number of entries per "
		       "second, or 0 for no limit";
	return NULL;
}

/* Named entries must all exist and be named once, or nothing is
 * replayed. */
static int check_ids(replay_run *run)
{
	const Nq__V1__DlqReplayRequest *r = run->r;
	dlq *d = run->d;
	MDB_txn *txn = NULL;
	run->ids = nqi_arena_zalloc(&run->op->mem, r->n_ids * sizeof *run->ids);
	if (!run->ids)
		return NQ_ENOMEM;
	int rv = nqi_store_begin(d->store, false, &txn);
	for (size_t i = 0; rv == 0 && i < r->n_ids; i++) {
		uint64_t id = 0;
		if (nqi_id_parse(r->ids[i], &id) != 0) {
			dlq_op_status(run->op, NQ_EINVAL,
			    "id '%.40s' is not 16 "
			    "hex digits; nothing was replayed",
			    r->ids[i]);
			rv = NQ_EINVAL;
		} else if (!dlq_store_has(d, txn, id)) {
			dlq_op_status(run->op, NQ_ENOTFOUND,
			    "no DLQ entry has "
			    "id %.40s; nothing was replayed",
			    r->ids[i]);
			rv = NQ_ENOTFOUND;
		}
		for (size_t k = 0; rv == 0 && k < i; k++)
			if (run->ids[k] == id) {
				dlq_op_status(run->op, NQ_EINVAL,
				    "id %.40s is "
				    "named twice",
				    r->ids[i]);
				rv = NQ_EINVAL;
			}
		run->ids[i] = id;
	}
	if (txn)
		mdb_txn_abort(txn);
	run->nids = r->n_ids;
	return rv;
}

/* Notes where the index ends now; an empty DLQ has nothing to replay. */
static int all_begin(replay_run *run, MDB_txn *txn)
{
	dlq_walk w;
	int rv = dlq_walk_open(run->d, txn, run->queue, true, 0, 0, &w);
	if (rv == 0)
		rv = dlq_walk_prev(&w, &run->end_at, &run->end_id);
	dlq_walk_close(&w);
	run->started = true;
	if (rv == NQ_ENOTFOUND) {
		run->empty = true;
		return NQ_OK;
	}
	return rv;
}

static bool past_end(const replay_run *run, uint64_t at, uint64_t id)
{
	return at > run->end_at || (at == run->end_at && id > run->end_id);
}

/* The next up to max entries: named ones in order, or with --all the
 * oldest ones after the last position. */
static int next_batch(replay_run *run, uint64_t *ids, size_t max, size_t *n)
{
	MDB_txn *txn;
	size_t k = 0;
	if (run->r->n_ids) {
		while (k < max && run->next < run->nids)
			ids[k++] = run->ids[run->next++];
		*n = k;
		return NQ_OK;
	}
	int rv = nqi_store_begin(run->d->store, false, &txn);
	if (rv != 0)
		return rv;
	if (!run->started)
		rv = all_begin(run, txn);
	while (rv == 0 && !run->empty && k < max) {
		uint64_t at, id;
		rv = dlq_store_next_oldest(run->d, txn, run->queue,
		    !run->have_pos, run->pos_at, run->pos_id, &at, &id);
		if (rv != 0 || past_end(run, at, id))
			break;
		ids[k++] = id;
		run->have_pos = true;
		run->pos_at = at;
		run->pos_id = id;
	}
	mdb_txn_abort(txn);
	*n = k;
	return rv == NQ_ENOTFOUND ? NQ_OK : rv;
}

/* ---- pacing and stopping ---- */

static bool stopping(dlq *d)
{
	pthread_mutex_lock(&d->mu);
	bool s = d->replay_stopping;
	pthread_mutex_unlock(&d->mu);
	return s;
}

/* Waits until the next n entries may go at the asked rate. Returns false
 * when nq-dlq began to stop meanwhile. */
static bool pace(replay_run *run)
{
	dlq *d = run->d;
	double rate = run->r->rate_per_s;
	if (rate <= 0)
		return !stopping(d);
	uint64_t due =
	    run->start_ms + (uint64_t)((double)run->sent * 1000.0 / rate);
	pthread_mutex_lock(&d->mu);
	while (!d->replay_stopping && nqi_mono_ms() < due) {
		struct timespec ts = nqi_realtime_in(due - nqi_mono_ms());
		pthread_cond_timedwait(&d->replay_cv, &d->mu, &ts);
	}
	bool ok = !d->replay_stopping;
	pthread_mutex_unlock(&d->mu);
	return ok;
}

static size_t batch_size(double rate)
{
	if (rate <= 0 || rate >= BATCH_MAX * 10)
		return BATCH_MAX;
	return rate < 10 ? 1 : (size_t)(rate / 10);
}

/* ---- one batch ---- */

typedef struct batch {
	nqi_arena mem; /* entries and strings of this batch only */
	size_t nin;    /* the entries asked for, in order */
	uint64_t in[BATCH_MAX];
	int slot[BATCH_MAX]; /* their index in specs; -1: no longer here */
	size_t n;            /* entries found, in specs */
	uint64_t ids[BATCH_MAX];
	Nq__V1__DeadJob *entries[BATCH_MAX];
	nq_job_spec specs[BATCH_MAX];
	nq_enqueue_result res[BATCH_MAX];
	uint64_t confirmed[BATCH_MAX];
	size_t nconfirmed;
} batch;

static const char *or_null(const char *s)
{
	return s && *s ? s : NULL;
}

/* The entry's original spec, to run now with fresh attempts. */
static int spec_from(batch *b, size_t i, uint64_t id)
{
	const Nq__V1__DeadJob *e = b->entries[i];
	const Nq__V1__JobSpec *o = e->job->spec;
	nq_job_spec *s = &b->specs[i];
	char eid[NQ_ID_MAX], key[80];
	nqi_id_format(id, eid);
	snprintf(key, sizeof key, "replay:%s:%u", eid, e->replays + 1);
	*s = (nq_job_spec){
	    .queue = o->queue,
	    .type = o->type,
	    .payload = o->payload.data,
	    .payload_len = o->payload.len,
	    .content_type = or_null(o->content_type),
	    .schema_version = o->schema_version,
	    .priority = o->priority,
	    .max_attempts = o->max_attempts,
	    .timeout_ms = o->timeout_ms,
	    .ordering_key = or_null(o->ordering_key),
	    .traceparent = or_null(o->traceparent),
	    .payload_ref = or_null(o->payload_ref),
	    .payload_size = o->payload_size,
	    .payload_sha256 = or_null(o->payload_sha256),
	    /* a deadline already passed would expire it at once */
	    .deadline_us = o->deadline_us > nqi_now_us() ? o->deadline_us : 0,
	    .idempotency_key = nqi_arena_strdup(&b->mem, key),
	    .replay_of = nqi_arena_strdup(&b->mem, eid),
	};
	return s->idempotency_key && s->replay_of ? NQ_OK : NQ_ENOMEM;
}

/* Reads the entries; one purged or replayed meanwhile gets slot -1. */
static int batch_load(replay_run *run, batch *b, const uint64_t *ids, size_t n)
{
	MDB_txn *txn = NULL;
	int rv = nqi_store_begin(run->d->store, false, &txn);
	for (size_t i = 0; rv == 0 && i < n; i++) {
		Nq__V1__DeadJob *e;
		b->in[b->nin] = ids[i];
		b->slot[b->nin++] = -1;
		rv = dlq_store_get(run->d, txn, ids[i], &b->mem.pb, &e);
		if (rv == NQ_ENOTFOUND ||
		    (rv == 0 && (!e->job || !e->job->spec))) {
			rv = NQ_OK;
			continue;
		}
		if (rv != 0)
			break;
		b->slot[b->nin - 1] = (int)b->n;
		b->ids[b->n] = ids[i];
		b->entries[b->n] = e;
		rv = spec_from(b, b->n, ids[i]);
		b->n++;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rv;
}

static const char *const gone_why = "no longer in the DLQ (purged or "
                                    "replayed meanwhile)";

/* One answer of the broker: a confirmed entry may leave the DLQ. */
static int batch_result(replay_run *run, batch *b, int slot)
{
	const nq_enqueue_result *res = &b->res[slot];
	char eid[NQ_ID_MAX];
	if (res->err != NQ_OK)
		return note_failed(run, b->ids[slot], res->err,
		    res->message[0] ? res->message : nq_strerror(res->err));
	nqi_id_format(b->ids[slot], eid);
	b->confirmed[b->nconfirmed++] = b->ids[slot];
	nqi_info("NQ-DLQ-REPLAYED", NQI_S("id", eid), NQI_S("as", res->id),
	    NQI_B("duplicate", res->duplicate),
	    NQI_S("queue", b->entries[slot]->job->spec->queue));
	return run->r->n_ids
	           ? add_result(run, NQ_OK, res->id, res->duplicate, NULL)
	           : NQ_OK;
}

/* The outcome of every entry asked for, in the order asked; err (not 0)
 * when the broker took none of them. */
static int batch_results(replay_run *run, batch *b, int err)
{
	for (size_t k = 0; k < b->nin; k++) {
		int slot = b->slot[k], rv;
		if (slot < 0)
			rv = note_failed(run, b->in[k], NQ_ENOTFOUND, gone_why);
		else if (err)
			rv = note_failed(run, b->in[k], err, run->stop_why);
		else
			rv = batch_result(run, b, slot);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Asks the core to drop the confirmed entries and waits for its commit. */
static int batch_remove(replay_run *run, batch *b)
{
	dlq *d = run->d;
	if (b->nconfirmed == 0)
		return NQ_OK;
	dlq_op *op = dlq_op_alloc(DLQ_OP_REPLAYED);
	if (!op)
		return NQ_ENOMEM;
	op->ids = b->confirmed;
	op->nids = b->nconfirmed;
	dlq_post(d, op);
	pthread_mutex_lock(&d->mu);
	while (!op->done)
		pthread_cond_wait(&d->done_cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	int rv = op->rv;
	dlq_op_free(op);
	return rv;
}

/* Removes what the broker confirmed; a failed removal stops the run. */
static int batch_remove_all(replay_run *run, batch *b)
{
	int err = batch_remove(run, b);
	run->replayed += (uint32_t)b->nconfirmed;
	if (err == 0)
		return NQ_OK;
	run->stop_err = err;
	snprintf(run->stop_why, sizeof run->stop_why,
	    "the broker took %zu "
	    "entries but nq-dlq could not remove them (%s); replaying them "
	    "again is answered by the broker as a duplicate",
	    b->nconfirmed, nq_strerror(err));
	return NQ_OK;
}

/* Entries counted as not replayed when the run stops early. */
static int fail_rest(replay_run *run, int err, const char *why)
{
	uint64_t ids[BATCH_MAX];
	size_t n;
	int rv;
	do {
		if ((rv = next_batch(run, ids, BATCH_MAX, &n)) != 0)
			return rv;
		for (size_t i = 0; rv == 0 && i < n; i++)
			rv = note_failed(run, ids[i], err, why);
	} while (rv == 0 && n > 0);
	return rv;
}

/* Whether err is one shard's failure (libnq then filled every item's
 * result), not one of the whole request. */
static bool shard_failed(const dlq *d, int err)
{
	if (!d->cfg.brokers || !*d->cfg.brokers)
		return false;
	return err == NQ_ECONNECT || err == NQ_ETIMEDOUT ||
	       err == NQ_EUNAVAIL || err == NQ_ECLOSED;
}

/* One round trip to the broker. A transport failure stops the run: the
 * batch and every entry after it stay in the DLQ (with a shard map, those
 * a shard that answered took leave it). */
static int replay_batch(replay_run *run, const uint64_t *ids, size_t n)
{
	batch *b = calloc(1, sizeof *b);
	int err = NQ_OK;
	if (!b)
		return NQ_ENOMEM;
	nqi_arena_init(&b->mem, DLQ_MEM_BLOCK, 0);
	int rv = batch_load(run, b, ids, n);
	if (rv == 0 && b->n) {
		err = nq_enqueue_batch(run->d->broker, b->specs, b->n, b->res);
		run->sent += b->n;
	}
	if (rv == 0 && err) {
		const char *why = nq_client_last_error(run->d->broker);
		run->stop_err = err;
		snprintf(run->stop_why, sizeof run->stop_why,
		    "the broker at "
		    "%s did not take them: %s%s%s",
		    dlq_broker_where(&run->d->cfg), nq_strerror(err),
		    *why ? ": " : "", why);
	}
	/* With a shard map, one shard that failed leaves the others'
	 * results good: each item says whether its shard took it. */
	bool per_item = err && shard_failed(run->d, err);
	if (rv == 0)
		rv = batch_results(run, b, per_item ? 0 : err);
	if (rv == 0 && (!err || per_item))
		rv = batch_remove_all(run, b);
	nqi_arena_fini(&b->mem);
	free(b);
	return rv;
}

static int run_batches(replay_run *run)
{
	uint64_t ids[BATCH_MAX];
	size_t max = batch_size(run->r->rate_per_s), n;
	int rv;
	run->start_ms = nqi_mono_ms();
	while ((rv = next_batch(run, ids, max, &n)) == 0 && n > 0) {
		if (!pace(run)) {
			run->stop_err = NQ_EUNAVAIL;
			snprintf(run->stop_why, sizeof run->stop_why,
			    "nq-dlq is shutting down");
		}
		for (size_t i = 0; rv == 0 && run->stop_err && i < n; i++)
			rv = note_failed(
			    run, ids[i], run->stop_err, run->stop_why);
		if (rv == 0 && !run->stop_err)
			rv = replay_batch(run, ids, n);
		if (rv != 0 || run->stop_err)
			break;
	}
	if (rv == 0 && run->stop_err)
		rv = fail_rest(run, run->stop_err, run->stop_why);
	return rv;
}

static int reply_body(replay_run *run)
{
	static const Nq__V1__DlqReplayReply init =
	    NQ__V1__DLQ_REPLAY_REPLY__INIT;
	Nq__V1__DlqReplayReply *r = nqi_arena_zalloc(&run->op->mem, sizeof *r);
	if (!r)
		return NQ_ENOMEM;
	*r = init;
	r->replayed = run->replayed;
	r->failed = run->failed;
	r->results = run->results;
	r->n_results = run->nresults;
	run->op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_REPLAY;
	run->op->reply.dlq_replay = r;
	if (run->stop_err)
		dlq_op_status(run->op, run->stop_err,
		    "replayed %u, not "
		    "replayed %u (they stay in the DLQ): %s",
		    run->replayed, run->failed, run->stop_why);
	return NQ_OK;
}

int dlq_on_replay(dlq *d, dlq_op *op)
{
	replay_run run = {.d = d, .op = op, .r = op->req->dlq_replay};
	const char *bad = check_request(run.r);
	if (bad) {
		dlq_op_status(op, NQ_EINVAL, "%s", bad);
		return NQ_OK;
	}
	run.queue = run.r->queue[0] ? run.r->queue : NULL;
	int rv = run.r->n_ids ? check_ids(&run) : NQ_OK;
	if (rv != 0)
		return dlq_op_failed(op) ? NQ_OK : rv;
	rv = run_batches(&run);
	if (rv == 0)
		rv = reply_body(&run);
	nqi_info("NQ-DLQ-REPLAY", NQI_U("replayed", run.replayed),
	    NQI_U("failed", run.failed), NQI_B("all", run.r->all),
	    NQI_S("queue", run.queue ? run.queue : "*"));
	return rv;
}

/* ---- the thread ---- */

static void refuse(dlq_op *op, const char *why)
{
	dlq_op_status(op, NQ_EUNAVAIL, "%s; nothing was replayed", why);
	dlq_conn_reply(op->conn, op);
}

static void *replay_main(void *arg)
{
	dlq *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->rp_head && !d->replay_stopping)
			pthread_cond_wait(&d->replay_cv, &d->mu);
		dlq_op *op = d->rp_head;
		bool stop = d->replay_stopping;
		if (stop)
			d->rp_head = d->rp_tail = NULL;
		else if (op && !(d->rp_head = op->next))
			d->rp_tail = NULL;
		pthread_mutex_unlock(&d->mu);
		if (stop) {
			for (dlq_op *next; op; op = next) {
				next = op->next;
				refuse(op, "nq-dlq is shutting down");
			}
			return NULL;
		}
		op->next = NULL;
		int rv = dlq_on_replay(d, op);
		if (rv != 0 && !dlq_op_failed(op))
			dlq_op_status(
			    op, rv, "replay failed: %s", nq_strerror(rv));
		dlq_conn_reply(op->conn, op);
	}
}

void dlq_replay_post(dlq *d, dlq_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&d->mu);
	bool refused = d->replay_stopping || !d->replay_running;
	if (!refused) {
		if (d->rp_tail)
			d->rp_tail->next = op;
		else
			d->rp_head = op;
		d->rp_tail = op;
		pthread_cond_broadcast(&d->replay_cv);
	}
	pthread_mutex_unlock(&d->mu);
	if (refused)
		refuse(op, "nq-dlq is shutting down");
}

const char *dlq_broker_where(const dlq_config *c)
{
	return c->brokers && *c->brokers ? c->brokers : c->broker_url;
}

int dlq_replay_start(dlq *d, char *err, size_t errlen)
{
	const char *src = d->cfg.token_file;
	int rv =
	    src && *src ? nqi_token_read(src, &d->token, err, errlen) : NQ_OK;
	if (rv != 0)
		return rv;
	nq_client_opts o = {
	    .api_url = d->cfg.broker_url,
	    .brokers =
	        d->cfg.brokers && *d->cfg.brokers ? d->cfg.brokers : NULL,
	    .token = d->token,
	    .timeout_ms = (int)d->cfg.broker_timeout_ms,
	};
	/* A tls+tcp:// broker is verified with --tls-ca and shown this
	 * service's own certificate, as the broker does when it dials. */
	if (nqi_url_is_tls(d->cfg.broker_url) ||
	    (o.brokers && strstr(o.brokers, "tls+"))) {
		o.tls_ca = d->cfg.tls_ca;
		o.tls_cert = d->cfg.tls_cert;
		o.tls_key = d->cfg.tls_key;
	}
	if ((rv = nq_client_open(&d->broker, &o)) != 0) {
		snprintf(err, errlen,
		    "cannot use the broker at %s (--broker, --brokers): %s",
		    dlq_broker_where(&d->cfg), nq_strerror(rv));
		return rv;
	}
	if (pthread_create(&d->replay, NULL, replay_main, d) != 0)
		return NQ_ENOMEM;
	d->replay_running = true;
	return NQ_OK;
}

/* Lets the replay in flight finish its round trip (and the removal of
 * what the broker confirmed), refuses the queued ones, and ends the
 * thread. */
void dlq_replay_stop(dlq *d)
{
	if (d->replay_running) {
		pthread_mutex_lock(&d->mu);
		d->replay_stopping = true;
		pthread_cond_broadcast(&d->replay_cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->replay, NULL);
		d->replay_running = false;
	}
	nq_client_close(d->broker);
	d->broker = NULL;
	free(d->token);
	d->token = NULL;
}
