/*
 * Handoff of dead (and expired) jobs to nq-dlq. The core records each such
 * job in the "handoff" database in the same transaction that ends it; a
 * handoff thread sends batches to nq-dlq over REQ/REP and, once nq-dlq has
 * confirmed a durable write, the core deletes the broker's copy. A job is
 * therefore always in the broker, in nq-dlq, or (after a lost reply) in
 * both for a moment; nq-dlq stores a repeated handoff once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "broker.h"
#include "nqi/conns.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define HANDOFF_BATCH 256
#define HANDOFF_BYTES (768u * 1024) /* under NNG's default receive limit */
#define HANDOFF_TIMEOUT_MS 10000

bool broker_dlq_enabled(const broker *b)
{
	return b->cfg.dlq_url && b->cfg.dlq_url[0];
}

/* ---- the pending list, shared with the handoff thread under b->in.mu ---- */

static int pending_push_locked(broker *b, uint64_t id)
{
	if (b->dlq.pend_head > 0 && b->dlq.pend_head == b->dlq.pend_n) {
		b->dlq.pend_head = b->dlq.pend_n = 0;
	}
	if (NQI_GROW(b->dlq.pend, b->dlq.pend_cap, b->dlq.pend_n + 1, 256) != 0)
		return NQ_ENOMEM;
	b->dlq.pend[b->dlq.pend_n++] = id;
	return NQ_OK;
}

/* Drops acknowledged ids; they are usually the oldest ones. */
static void pending_remove_locked(broker *b, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b->dlq.pend_head < b->dlq.pend_n &&
		    b->dlq.pend[b->dlq.pend_head] == ids[i]) {
			b->dlq.pend_head++;
			continue;
		}
		for (size_t k = b->dlq.pend_head; k < b->dlq.pend_n; k++) {
			if (b->dlq.pend[k] == ids[i]) {
				b->dlq.pend[k] = b->dlq.pend[--b->dlq.pend_n];
				break;
			}
		}
	}
}

/* Called by the core after a commit: jobs that died in it may go now. */
void broker_dlq_publish(broker *b)
{
	if (b->dlq.ngroup_dead == 0)
		return;
	pthread_mutex_lock(&b->in.mu);
	for (size_t i = 0; i < b->dlq.ngroup_dead; i++)
		pending_push_locked(b, b->dlq.group_dead[i]);
	pthread_cond_broadcast(&b->dlq.cv);
	pthread_mutex_unlock(&b->in.mu);
	b->dlq.ngroup_dead = 0;
}

/* ---- core side ---- */

/* Records a job that just died (or expired) for handoff, in the group's
 * transaction. */
int broker_dlq_note(broker *b, uint64_t id, const char *queue)
{
	if (!broker_dlq_enabled(b))
		return NQ_OK;
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key}, v = {0, ""};
	if (mdb_put(b->core.txn, b->db_handoff, &k, &v, 0) != 0)
		return NQ_ESTORE;
	if (NQI_GROW(b->dlq.group_dead, b->dlq.capgroup_dead,
	        b->dlq.ngroup_dead + 1, 64))
		return NQ_ENOMEM;
	b->dlq.group_dead[b->dlq.ngroup_dead++] = id;
	int qi = broker_queue_get(&b->core.index, queue);
	if (qi >= 0)
		b->core.index.queues[qi].dead_pending++;
	b->core.dirty = true;
	return NQ_OK;
}

/*
 * Replaces the record of a dead job that nq-dlq now holds by its summary
 * (in_dlq): the spec without its payload, no result, the last error only.
 * get answers with it for result_ttl, and the job's idempotency key lives
 * as long as it does; the counters let go of the job now.
 */
static int keep_summary(broker *b, const Nq__V1__Job *job)
{
	Nq__V1__Job *t = nqi_arena_alloc(b->core.arena, sizeof *t);
	Nq__V1__JobSpec *spec = nqi_arena_alloc(b->core.arena, sizeof *spec);
	if (!t || !spec)
		return NQ_ENOMEM;
	*t = *job;
	*spec = *job->spec;
	spec->payload.len = 0;
	t->spec = spec;
	t->result.len = 0;
	if (t->n_errors > 1) {
		t->errors += t->n_errors - 1;
		t->n_errors = 1;
	}
	t->in_dlq = true;
	broker_count_move(b, job->spec->queue, NQ_STATE_DEAD, 0);
	b->core.jobs_stored--;
	if (broker_result_ttl_ms(b, -1, job->spec->queue) == 0)
		return broker_job_drop(b, t);
	int rv = broker_job_write(b, broker_job_id(t), t);
	return rv != 0 ? rv : broker_job_keep_result(b, t);
}

/* nq-dlq holds the job now: the broker keeps a dead job's summary, and an
 * expired job stays readable for its result_ttl like other finished
 * jobs. */
static int ack_one(broker *b, uint64_t id)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	int rc = mdb_del(b->core.txn, b->db_handoff, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return NQ_OK; /* acknowledged before */
	if (rc != 0)
		return NQ_ESTORE;
	b->core.dirty = true;
	Nq__V1__Job *job;
	int rv = broker_job_read(b, id, &job);
	if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
		return NQ_OK;
	if (rv != 0)
		return rv;
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	if (qi >= 0) {
		broker_queue *q = broker_totals_at(b, qi);
		if (q->dead_pending)
			q->dead_pending--;
		q->dlq_handed_total++;
	}
	broker_event(b, BROKER_EV_DLQ_STORED, job, NULL);
	if (job->state == NQ__V1__JOB_STATE__JOB_STATE_EXPIRED)
		return broker_job_keep_result(b, job);
	if (job->state != NQ__V1__JOB_STATE__JOB_STATE_DEAD)
		return NQ_OK;
	return keep_summary(b, job);
}

int broker_on_dlq_acked(broker *b, broker_op *op)
{
	for (size_t i = 0; i < op->nids; i++) {
		int rv = ack_one(b, op->ids[i]);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Rebuilds the pending list and per-queue counts from the store. */
int broker_dlq_recover(broker *b, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	pthread_mutex_lock(&b->in.mu);
	b->dlq.pend_head = b->dlq.pend_n = 0;
	pthread_mutex_unlock(&b->in.mu);
	if (mdb_cursor_open(txn, b->db_handoff, &cur) != 0)
		return NQ_ESTORE;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		uint64_t id = nqi_be64_get(k.mv_data);
		MDB_val jv;
		Nq__V1__Job *job = NULL;
		if (mdb_get(txn, b->db_jobs, &k, &jv) == 0) {
			broker_record_view(&jv);
			job = nq__v1__job__unpack(NULL, jv.mv_size, jv.mv_data);
		}
		if (job && job->spec) {
			int qi =
			    broker_queue_get(&b->core.index, job->spec->queue);
			if (qi >= 0)
				b->core.index.queues[qi].dead_pending++;
		}
		if (job)
			nq__v1__job__free_unpacked(job, NULL);
		pthread_mutex_lock(&b->in.mu);
		pending_push_locked(b, id);
		pthread_mutex_unlock(&b->in.mu);
	}
	mdb_cursor_close(cur);
	pthread_mutex_lock(&b->in.mu);
	pthread_cond_broadcast(&b->dlq.cv);
	pthread_mutex_unlock(&b->in.mu);
	return rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}

/* ---- the handoff thread ---- */

/* Waits on dlq_cv (with b->in.mu held) for up to ms. */
static void dlq_wait_locked(broker *b, uint64_t ms)
{
	struct timespec ts = nqi_realtime_in(ms);
	pthread_cond_timedwait(&b->dlq.cv, &b->in.mu, &ts);
}

/* Takes up to HANDOFF_BATCH pending ids; waits while there are none. */
static size_t take_batch(broker *b, uint64_t *ids, uint64_t wait_ms)
{
	size_t n = 0;
	pthread_mutex_lock(&b->in.mu);
	if (b->dlq.pend_head == b->dlq.pend_n && !b->dlq.stopping)
		dlq_wait_locked(b, wait_ms);
	for (size_t i = b->dlq.pend_head;
	     i < b->dlq.pend_n && n < HANDOFF_BATCH; i++)
		ids[n++] = b->dlq.pend[i];
	pthread_mutex_unlock(&b->in.mu);
	return n;
}

/* Reads the jobs into DeadJob records. Ids whose record is gone move to
 * gone[] (nothing to hand over; their handoff entries are dropped). */
static int build_request(broker *b, MDB_txn *txn, uint64_t *ids, size_t *n,
    uint64_t *gone, size_t *ngone, nqi_arena *a, Nq__V1__Request *req)
{
	static const Nq__V1__DeadJob dinit = NQ__V1__DEAD_JOB__INIT;
	static const Nq__V1__DlqIngestRequest iinit =
	    NQ__V1__DLQ_INGEST_REQUEST__INIT;
	Nq__V1__DlqIngestRequest *in = nqi_arena_alloc(a, sizeof *in);
	Nq__V1__DeadJob **jobs = nqi_arena_alloc(a, *n * sizeof *jobs);
	if (!in || !jobs)
		return NQ_ENOMEM;
	*in = iinit;
	size_t kept = 0, bytes = 0;
	for (size_t i = 0; i < *n && bytes < HANDOFF_BYTES; i++) {
		uint8_t key[8];
		nqi_be64_put(key, ids[i]);
		MDB_val k = {8, key}, v;
		if (mdb_get(txn, b->db_jobs, &k, &v) != 0) {
			gone[(*ngone)++] = ids[i];
			continue;
		}
		broker_record_view(&v);
		Nq__V1__DeadJob *d = nqi_arena_alloc(a, sizeof *d);
		Nq__V1__Job *job =
		    nq__v1__job__unpack(&a->pb, v.mv_size, v.mv_data);
		if (!d || !job || !job->spec)
			continue;
		*d = dinit;
		d->job = job;
		d->reason = job->dead_reason[0] ? job->dead_reason
		                                : (char *)"max_attempts";
		d->dead_at_us = job->finished_us;
		ids[kept] = ids[i];
		jobs[kept++] = d;
		bytes += v.mv_size;
	}
	in->jobs = jobs;
	in->n_jobs = kept;
	req->body_case = NQ__V1__REQUEST__BODY_DLQ_INGEST;
	req->dlq_ingest = in;
	*n = kept;
	return NQ_OK;
}

/* One round trip; returns the ids nq-dlq confirmed in acked[]. */
static int exchange(broker *b, Nq__V1__Request *req, uint64_t *ids, size_t n,
    uint64_t *acked, size_t *nacked)
{
	nng_msg *msg;
	int rv = nqi_msg_pack(&req->base, NULL, 0, &msg);
	if (rv != 0)
		return rv;
	if ((rv = nng_sendmsg(b->dlq.sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		return nqi_err_from_nng(rv);
	}
	if ((rv = nng_recvmsg(b->dlq.sock, &msg, 0)) != 0)
		return nqi_err_from_nng(rv);
	Nq__V1__Reply *rep =
	    nqi_reply_unpack(nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	if (!rep)
		return NQ_EPROTO;
	rv = rep->status && rep->status->code
	         ? nqi_err_from_code((int)rep->status->code)
	         : NQ_OK;
	if (rv != 0)
		nqi_warn("NQ-DLQ-REFUSED", NQI_S("err", nq_err_name(rv)),
		    NQI_S("msg", rep->status->message));
	const Nq__V1__DlqIngestReply *r =
	    rep->body_case == NQ__V1__REPLY__BODY_DLQ_INGEST ? rep->dlq_ingest
	                                                     : NULL;
	*nacked = 0;
	for (size_t i = 0; rv == 0 && r && i < r->n_results && i < n; i++)
		if (!r->results[i]->code)
			acked[(*nacked)++] = ids[i];
	nq__v1__reply__free_unpacked(rep, NULL);
	return rv != 0 ? rv : r ? NQ_OK : NQ_EPROTO;
}

static void post_acks(broker *b, const uint64_t *acked, size_t n)
{
	broker_op *op = calloc(1, sizeof *op);
	uint64_t *ids = op ? malloc(n * sizeof *ids) : NULL;
	if (!ids) {
		free(op);
		return; /* handed again later; nq-dlq stores it once */
	}
	memcpy(ids, acked, n * sizeof *ids);
	op->kind = BROKER_OP_DLQ_ACKED;
	op->ids = ids;
	op->nids = n;
	broker_post(b, op);
}

/* Sends one batch; returns 0 when nq-dlq answered. Confirmed ids leave the
 * pending list at once; the core then deletes the broker's copies. */
static int handoff_once(broker *b, uint64_t *ids, size_t n, nqi_arena *a)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	uint64_t done[2 * HANDOFF_BATCH];
	size_t ndone = 0, nacked = 0;
	MDB_txn *txn;
	req.version = NQI_PROTOCOL_VERSION;
	req.token = (char *)(b->cfg.dlq_token ? b->cfg.dlq_token : "");
	int rv = nqi_store_begin(b->store, false, &txn);
	if (rv != 0)
		return rv;
	rv = build_request(b, txn, ids, &n, done, &ndone, a, &req);
	if (rv == 0 && n > 0)
		rv = exchange(b, &req, ids, n, done + ndone, &nacked);
	mdb_txn_abort(txn);
	ndone += nacked;
	if (ndone > 0) {
		pthread_mutex_lock(&b->in.mu);
		pending_remove_locked(b, done, ndone);
		pthread_mutex_unlock(&b->in.mu);
		post_acks(b, done, ndone);
	}
	return rv;
}

static void *handoff_main(void *arg)
{
	broker *b = arg;
	uint64_t ids[HANDOFF_BATCH], backoff_ms = 100;
	bool down = false;
	nqi_arena a;
	nqi_arena_init(&a, BROKER_ARENA_BLOCK, BROKER_ARENA_BLOCK);
	while (!b->dlq.stopping) {
		size_t n = take_batch(b, ids, down ? backoff_ms : 1000);
		if (n == 0)
			continue;
		int rv = handoff_once(b, ids, n, &a);
		nqi_arena_reset(&a);
		if (rv == 0) {
			if (down)
				nqi_info("NQ-DLQ-BACK",
				    NQI_S("url", b->cfg.dlq_url));
			down = false;
			backoff_ms = 100;
			continue;
		}
		if (!down)
			nqi_warn("NQ-DLQ-UNREACHABLE",
			    NQI_S("url", b->cfg.dlq_url),
			    NQI_S("err", nq_err_name(rv)), NQI_U("pending", n));
		down = true;
		pthread_mutex_lock(&b->in.mu);
		if (!b->dlq.stopping)
			dlq_wait_locked(b, backoff_ms);
		pthread_mutex_unlock(&b->in.mu);
		backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
	}
	nqi_arena_fini(&a);
	pthread_mutex_lock(&b->in.mu);
	b->dlq.exited = true;
	pthread_cond_broadcast(&b->dlq.cv);
	pthread_mutex_unlock(&b->in.mu);
	return NULL;
}

/* Non-blocking dial: nq-dlq may start later; NNG keeps redialing. */
static int dial_dlq(broker *b, char *err, size_t errlen)
{
	nng_dialer d;
	nng_tls_config *tls = NULL;
	nqi_tls_opts o = {b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca};
	int rv = nqi_conns_track(b->dlq.sock, &b->dlq.pipes);
	if (rv == 0)
		rv = nng_dialer_create(&d, b->dlq.sock, b->cfg.dlq_url);
	if (rv == 0 && nqi_url_is_tls(b->cfg.dlq_url)) {
		if (nqi_tls_client_config(&o, &tls, err, errlen) != 0)
			return NNG_EINVAL;
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
		nng_tls_config_free(tls);
	}
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	return rv;
}

int broker_dlq_start(broker *b, char *err, size_t errlen)
{
	if (!broker_dlq_enabled(b))
		return NQ_OK;
	int rv = nng_req0_open(&b->dlq.sock);
	b->dlq.sock_open = rv == 0;
	if (rv == 0)
		rv = nng_socket_set_ms(
		    b->dlq.sock, NNG_OPT_RECVTIMEO, HANDOFF_TIMEOUT_MS);
	if (rv == 0)
		rv = nng_socket_set_ms(
		    b->dlq.sock, NNG_OPT_SENDTIMEO, HANDOFF_TIMEOUT_MS);
	if (rv == 0)
		rv = nng_socket_set_size(
		    b->dlq.sock, NNG_OPT_RECVMAXSZ, 1 << 20);
	if (rv == 0)
		rv = dial_dlq(b, err, errlen);
	if (rv != 0) {
		if (!err[0])
			snprintf(err, errlen,
			    "cannot dial nq-dlq at %s "
			    "(--dlq): %s",
			    b->cfg.dlq_url, nng_strerror(rv));
		return NQ_EINVAL;
	}
	if (pthread_create(&b->dlq.thread, NULL, handoff_main, b) != 0)
		return NQ_ENOMEM;
	b->dlq.running = true;
	return NQ_OK;
}

/*
 * Ends the handoff thread. A round trip in flight gets its answer first
 * (within the handoff timeout): closing the socket as a reply arrives can
 * hang nng 1.5's close for good, so the socket stays open for
 * broker_dlq_close, which runs under the shutdown watchdog. With no
 * connection to nq-dlq up, no reply can come, so the socket is closed at
 * once, which also ends a send that waits for a connection.
 */
void broker_dlq_stop(broker *b)
{
	if (!b->dlq.running)
		return;
	pthread_mutex_lock(&b->in.mu);
	b->dlq.stopping = true;
	pthread_cond_broadcast(&b->dlq.cv);
	while (!b->dlq.exited) {
		if (b->dlq.sock_open && atomic_load(&b->dlq.pipes) == 0) {
			b->dlq.sock_open = false;
			pthread_mutex_unlock(&b->in.mu);
			nng_close(b->dlq.sock);
			pthread_mutex_lock(&b->in.mu);
			continue;
		}
		dlq_wait_locked(b, 20);
	}
	pthread_mutex_unlock(&b->in.mu);
	pthread_join(b->dlq.thread, NULL);
	b->dlq.running = false;
}

void broker_dlq_close(broker *b)
{
	if (b->dlq.sock_open)
		nng_close(b->dlq.sock);
	b->dlq.sock_open = false;
}
