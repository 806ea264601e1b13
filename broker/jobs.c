/* Job records in the store and the state transitions shared by handlers.
 * All of this runs on the core thread inside the group's transaction. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

uint64_t broker_job_id(const Nq__V1__Job *job)
{
	uint64_t id = 0;
	nqi_id_parse(job->id, &id);
	return id;
}

/* Most keys written are past the last one (new job ids, expiry times):
 * MDB_APPEND then saves the search down the tree. LMDB refuses it with
 * MDB_KEYEXIST for a key that is not, and the put is done plainly. */
static int put_appending(
    MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
	int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
	return rc == MDB_KEYEXIST ? mdb_put(txn, dbi, k, v, flags) : rc;
}

/* Keeps a copy of the bytes of the record last read or written: the patch
 * that usually follows (lease, success) needs no second lookup, and a fetch
 * reply sends the leased record as it is. The copy lives in the group
 * arena, with room for a length prefix in front of it; other writes to
 * the record forget it. */
static void remember_raw(broker *b, uint64_t id, const void *data, size_t len)
{
	uint8_t *copy = nqi_arena_alloc(&b->arena, BROKER_RAW_HEADROOM + len);
	b->raw_id = copy ? id : 0;
	if (copy) {
		copy += BROKER_RAW_HEADROOM;
		memcpy(copy, data, len);
	}
	b->raw = copy;
	b->raw_len = len;
}

static void forget_raw(broker *b, uint64_t id)
{
	if (b->raw_id == id)
		b->raw_id = 0;
}

/* The group's cursor on the jobs table, NULL when it cannot be opened.
 * LMDB closes it with the transaction; the core clears b->jobs_cur then. */
static MDB_cursor *jobs_cursor(broker *b)
{
	if (!b->jobs_cur && mdb_cursor_open(b->txn, b->db_jobs, &b->jobs_cur))
		b->jobs_cur = NULL;
	return b->jobs_cur;
}

/* Looks id up through the group's cursor, which then rests on it: a patch
 * that follows rewrites the record in place without a second search. */
static int jobs_get(broker *b, uint64_t id, MDB_val *v)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	MDB_cursor *c = jobs_cursor(b);
	int rc = c ? mdb_cursor_get(c, &k, v, MDB_SET_KEY)
	           : mdb_get(b->txn, b->db_jobs, &k, v);
	if (rc == MDB_NOTFOUND)
		return NQ_ENOTFOUND;
	return rc == 0 ? NQ_OK : NQ_ESTORE;
}

/* Whether the group's cursor rests on the record of id. */
static bool cursor_on(broker *b, uint64_t id)
{
	MDB_val k, v;
	return b->jobs_cur &&
	       mdb_cursor_get(b->jobs_cur, &k, &v, MDB_GET_CURRENT) == 0 &&
	       k.mv_size == 8 && nqi_be64_get(k.mv_data) == id;
}

/* NQ_ENOTFOUND, NQ_EINTERNAL for a record that does not decode (logged;
 * the group goes on), or NQ_ESTORE when the store itself failed. */
int broker_job_read(broker *b, uint64_t id, Nq__V1__Job **out)
{
	int rv = broker_job_read_raw(b, id);
	if (rv != 0)
		return rv;
	Nq__V1__Job *job =
	    nq__v1__job__unpack(&b->arena.pb, b->raw_len, b->raw);
	if (!job || !job->spec) {
		char ids[NQ_ID_MAX];
		nqi_id_format(id, ids);
		nqi_error("NQ-RECORD-CORRUPT", NQI_S("id", ids),
		    NQI_U("bytes", b->raw_len));
		return NQ_EINTERNAL;
	}
	*out = job;
	return NQ_OK;
}

uint8_t *broker_len_prefix(uint8_t *data, size_t len, size_t *total)
{
	size_t k = 1;
	for (size_t v = len; v >= 0x80; v >>= 7)
		k++;
	uint8_t *p = data - k;
	for (size_t v = len, i = 0; i < k; i++, v >>= 7)
		p[i] = (uint8_t)((v & 0x7f) | (i + 1 < k ? 0x80 : 0));
	*total = k + len;
	return p;
}

/* Whether every field of job that NewJobRecord leaves out is at its
 * default, as in a job just enqueued. */
static bool only_new_fields(const Nq__V1__Job *job)
{
	return !job->attempt && !job->started_us && !job->finished_us &&
	       !job->result.len && !job->n_errors && !job->lease_token &&
	       !job->lease_expires_us && !job->worker_id[0] &&
	       !job->dead_reason[0];
}

/*
 * The message to store for job: for a new job whose spec enqueue handed
 * over packed (see broker_op_prepack), a NewJobRecord of its few other
 * fields with the spec's bytes as an unknown field numbered like Job.spec,
 * which is cheap to pack here on the core thread; else the job itself.
 */
static const ProtobufCMessage *record_of(broker *b, const Nq__V1__Job *job,
    Nq__V1__NewJobRecord *r, ProtobufCMessageUnknownField *f)
{
	static const Nq__V1__NewJobRecord init = NQ__V1__NEW_JOB_RECORD__INIT;
	static _Atomic uint32_t spec_field;
	if (!b->packed_spec || b->packed_spec != job->spec ||
	    !only_new_fields(job))
		return &job->base;
	if (!spec_field)
		spec_field = protobuf_c_message_descriptor_get_field_by_name(
		    &nq__v1__job__descriptor, "spec")
		                 ->id;
	*r = init;
	r->id = job->id;
	r->state = job->state;
	r->max_attempts = job->max_attempts;
	r->created_us = job->created_us;
	r->run_at_us = job->run_at_us;
	r->timeout_ms = job->timeout_ms;
	f->tag = spec_field;
	f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	f->len = b->packed_spec_bytes.len;
	f->data = b->packed_spec_bytes.data;
	r->base.n_unknown_fields = 1;
	r->base.unknown_fields = f;
	return &r->base;
}

bool broker_job_plain(const Nq__V1__Job *job)
{
	return job->attempt == 0 && !job->spec->ordering_key[0] &&
	       !job->spec->deadline_us;
}

int broker_job_read_raw(broker *b, uint64_t id)
{
	MDB_val v;
	int rv = jobs_get(b, id, &v);
	if (rv != 0)
		return rv;
	remember_raw(b, id, v.mv_data, v.mv_size);
	return b->raw_id == id ? NQ_OK : NQ_ENOMEM;
}

int broker_job_write(broker *b, uint64_t id, const Nq__V1__Job *job)
{
	uint8_t key[8];
	Nq__V1__NewJobRecord head;
	ProtobufCMessageUnknownField spec;
	nqi_be64_put(key, id);
	const ProtobufCMessage *rec = record_of(b, job, &head, &spec);
	bool fresh = rec == &head.base;
	size_t len = protobuf_c_message_get_packed_size(rec);
	MDB_val k = {8, key}, v = {len, NULL};
	forget_raw(b, id);
	/* MDB_RESERVE lets protobuf-c pack straight into the page; a new
	 * job's id is past every stored one. */
	int rc = fresh ? put_appending(b->txn, b->db_jobs, &k, &v, MDB_RESERVE)
	               : mdb_put(b->txn, b->db_jobs, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return NQ_ESTORE;
	protobuf_c_message_pack(rec, v.mv_data);
	remember_raw(b, id, v.mv_data, len);
	b->dirty = true;
	return NQ_OK;
}

/*
 * Rewrites a record as its stored bytes followed by the encoding of patch
 * (a JobLeasePatch or JobSuccessPatch: fields of Job by number and type).
 * A protobuf decoder keeps the last value it meets of a field, so the
 * record then reads as the job with patch's fields changed, at a fraction
 * of the cost of packing the whole job again: the lease and the success of
 * every job take this path. Proto3 leaves zero values out of an encoding,
 * so the uint64 fields numbered in zeroes are appended as explicit zeros.
 * Only fields that are not repeated and not messages may be patched (those
 * would merge, not replace), and a full write (broker_job_write) compacts
 * the record again.
 */
int broker_job_patch(broker *b, uint64_t id, const ProtobufCMessage *patch,
    const uint8_t *zeroes, size_t nzeroes)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	/* A copy: the put below may reuse the old value's space. */
	int rv = b->raw_id == id && cursor_on(b, id)
	             ? NQ_OK
	             : broker_job_read_raw(b, id);
	if (rv != 0)
		return rv;
	const uint8_t *copy = b->raw;
	size_t old = b->raw_len;
	forget_raw(b, id);
	size_t plen = protobuf_c_message_get_packed_size(patch);
	MDB_val nv = {old + plen + 2 * nzeroes, NULL};
	int rc = cursor_on(b, id)
	             ? mdb_cursor_put(
	                   b->jobs_cur, &k, &nv, MDB_CURRENT | MDB_RESERVE)
	             : mdb_put(b->txn, b->db_jobs, &k, &nv, MDB_RESERVE);
	if (rc != 0)
		return NQ_ESTORE;
	uint8_t *p = nv.mv_data;
	memcpy(p, copy, old);
	protobuf_c_message_pack(patch, p + old);
	for (size_t i = 0; i < nzeroes; i++) {
		p[old + plen + 2 * i] = (uint8_t)(zeroes[i] << 3); /* varint */
		p[old + plen + 2 * i + 1] = 0;
	}
	remember_raw(b, id, p, nv.mv_size);
	b->dirty = true;
	return NQ_OK;
}

int broker_job_delete(broker *b, uint64_t id)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	forget_raw(b, id);
	int rc = mdb_del(b->txn, b->db_jobs, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return NQ_ESTORE;
	b->dirty = true;
	return NQ_OK;
}

int broker_job_state(const Nq__V1__Job *job, uint64_t now_us)
{
	(void)now_us;
	return (int)job->state;
}

void broker_count_move(broker *b, const char *queue, int from, int to)
{
	broker_count_move_at(b, broker_queue_get(&b->index, queue), from, to);
}

void broker_count_move_at(broker *b, int qi, int from, int to)
{
	if (qi < 0)
		return;
	broker_queue *q = &b->index.queues[qi];
	uint64_t *c = broker_queue_count(q, from);
	if (c && *c > 0)
		(*c)--;
	c = broker_queue_count(q, to);
	if (c)
		(*c)++;
}

static void clear_lease(Nq__V1__Job *job)
{
	job->lease_token = 0;
	job->lease_expires_us = 0;
}

/* Expiry entries: big-endian time, a kind byte, then the subject. */
int broker_expiry_put(
    broker *b, uint64_t at_us, char kind, const void *data, size_t len)
{
	uint8_t key[9 + 512];
	if (len > 512)
		return NQ_EINVAL;
	nqi_be64_put(key, at_us);
	key[8] = (uint8_t)kind;
	memcpy(key + 9, data, len);
	MDB_val k = {9 + len, key}, v = {0, ""};
	if (put_appending(b->txn, b->db_expiry, &k, &v, 0) != 0)
		return NQ_ESTORE;
	b->dirty = true;
	return NQ_OK;
}

int broker_job_keep_result(broker *b, Nq__V1__Job *job)
{
	return broker_result_keep(b, broker_job_id(job),
	    broker_queue_get(&b->index, job->spec->queue), (int)job->state,
	    job->finished_us);
}

int broker_result_keep(
    broker *b, uint64_t id, int qi, int state, uint64_t finished_us)
{
	if (b->cfg.result_ttl_ms == 0) {
		broker_count_move_at(b, qi, state, 0);
		b->jobs_stored--;
		return broker_job_delete(b, id);
	}
	uint8_t idb[8];
	nqi_be64_put(idb, id);
	return broker_expiry_put(
	    b, finished_us + b->cfg.result_ttl_ms * 1000, 'j', idb, 8);
}

int broker_job_patch_success(
    broker *b, uint64_t id, uint64_t finished_us, ProtobufCBinaryData result)
{
	static const uint8_t cleared[] = {12, 13}; /* the lease's fields */
	Nq__V1__JobSuccessPatch patch = NQ__V1__JOB_SUCCESS_PATCH__INIT;
	patch.state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	patch.finished_us = finished_us;
	patch.result = result;
	return broker_job_patch(b, id, &patch.base, cleared, sizeof cleared);
}

int broker_job_finish(broker *b, Nq__V1__Job *job, int state, uint64_t now_us)
{
	int from = (int)job->state;
	uint64_t id = broker_job_id(job);
	int rv;
	job->state = (Nq__V1__JobState)state;
	job->finished_us = now_us;
	clear_lease(job);
	broker_count_move(b, job->spec->queue, from, state);
	broker_wake_waiters(b, id, job);
	/* Dead and expired jobs wait for nq-dlq; the others keep their
	 * result for result_ttl. */
	bool handoff = state == NQ_STATE_DEAD ||
	               (state == NQ_STATE_EXPIRED && broker_dlq_enabled(b));
	if (!handoff && b->cfg.result_ttl_ms == 0)
		return broker_job_keep_result(b, job);
	rv = state == NQ_STATE_SUCCEEDED
	         ? broker_job_patch_success(b, id, now_us, job->result)
	         : broker_job_write(b, id, job);
	if (rv != 0)
		return rv;
	if (handoff)
		return broker_dlq_note(b, id, job->spec->queue);
	return broker_job_keep_result(b, job);
}

int broker_job_requeue(broker *b, Nq__V1__Job *job, uint64_t run_at_us)
{
	uint64_t now = nqi_now_us();
	int from = (int)job->state;
	int to = run_at_us <= now ? NQ_STATE_READY : NQ_STATE_SCHEDULED;
	uint64_t id = broker_job_id(job);
	job->state = (Nq__V1__JobState)to;
	job->run_at_us = run_at_us;
	clear_lease(job);
	int rv = broker_job_write(b, id, job);
	if (rv != 0)
		return rv;
	int qi = broker_queue_get(&b->index, job->spec->queue);
	if (qi < 0)
		return NQ_ENOMEM;
	broker_count_move(b, job->spec->queue, from, to);
	if (to == NQ_STATE_READY) {
		b->woken = true;
		return broker_ready_push(&b->index.queues[qi],
		    job->spec->priority, id,
		    broker_job_plain(job) ? BROKER_READY_PLAIN : 0);
	}
	broker_timer t = {run_at_us, id, (uint32_t)qi, job->spec->priority};
	return broker_timer_push(&b->index, &t);
}
