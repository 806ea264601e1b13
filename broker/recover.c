/* Rebuilds the in-memory index from the store: at start (leased jobs become
 * ready again, keeping their attempt count) and after a failed commit
 * (leases are kept, since their workers still run them). */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

/* Empties heaps, leases and state counts; queue totals and flags stay. */
static void index_clear(broker_index *x)
{
	for (size_t i = 0; i < x->nqueues; i++) {
		broker_queue *q = &x->queues[i];
		q->nheap = 0;
		broker_groups_clear(q);
#define CLEAR_(name, kind, ...) NQI_QF_RECOUNT_##kind(q->name = 0;)
		NQI_QUEUE_FIELDS(CLEAR_)
#undef CLEAR_
	}
	x->ntimers = 0;
	x->ndeadlines = 0;
	x->nleases = 0;
	x->nstale = 0; /* the heaps are rebuilt from the records */
	broker_parents_clear(x);
	broker_batched_clear(x);
	broker_okeys_clear(x);
	memset(x->lease_slots, 0, x->nslots * sizeof *x->lease_slots);
}

static int load_queue_configs(broker *b, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn, b->db_queues, &cur) != 0)
		return NQ_ESTORE;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char name[NQI_NAME_MAX + 1];
		if (k.mv_size > NQI_NAME_MAX)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		Nq__V1__QueueConfig *cfg =
		    nq__v1__queue_config__unpack(NULL, v.mv_size, v.mv_data);
		int qi = nqi_name_valid(name) && cfg
		             ? broker_queue_get(&b->core.index, name)
		             : -1;
		if (qi >= 0) {
			broker_queue *q = &b->core.index.queues[qi];
#define LOAD_(name, type) q->name = cfg->name;
			NQI_QUEUE_SETTINGS(LOAD_)
#undef LOAD_
			broker_policy_load(q, cfg);
		}
		if (cfg)
			nq__v1__queue_config__free_unpacked(cfg, NULL);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}

/* A job leased when the broker stopped runs again; the lost attempt is
 * kept in its history. */
static int release_on_restart(
    broker *b, MDB_txn *txn, Nq__V1__Job *job, MDB_val *key)
{
	static const Nq__V1__AttemptError init = NQ__V1__ATTEMPT_ERROR__INIT;
	Nq__V1__AttemptError err = init, **v;
	err.attempt = job->attempt;
	err.at_us = nqi_now_us();
	err.message = (char *)"broker restarted while the job was leased";
	err.retryable = true;
	err.worker_id = job->worker_id;
	v = malloc((job->n_errors + 1) * sizeof *v);
	if (!v)
		return NQ_ENOMEM;
	if (job->n_errors)
		memcpy(v, job->errors, job->n_errors * sizeof *v);
	v[job->n_errors] = &err;
	Nq__V1__AttemptError **old = job->errors;
	job->errors = v;
	job->n_errors++;
	job->state = NQ__V1__JOB_STATE__JOB_STATE_READY;
	job->lease_token = 0;
	job->lease_expires_us = 0;
	/* The cursor's key points into the page being rewritten. */
	uint8_t kbuf[8];
	memcpy(kbuf, key->mv_data, 8);
	MDB_val k = {8, kbuf};
	size_t len = nq__v1__job__get_packed_size(job);
	MDB_val val = {len, NULL};
	int rc = mdb_put(txn, b->db_jobs, &k, &val, MDB_RESERVE);
	if (rc == 0)
		nq__v1__job__pack(job, val.mv_data);
	/* Put back what free_unpacked expects to free. */
	job->n_errors--;
	job->errors = old;
	free(v);
	return rc == 0 ? NQ_OK : NQ_ESTORE;
}

static int index_job(broker *b, MDB_txn *txn, Nq__V1__Job *job, uint64_t id,
    MDB_val *key, bool release_leases)
{
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	if (qi < 0)
		return NQ_ENOMEM;
	broker_queue *q = &b->core.index.queues[qi];
	int state = (int)job->state, rv = NQ_OK;
	if (state == NQ_STATE_LEASED && release_leases) {
		if ((rv = release_on_restart(b, txn, job, key)) != 0)
			return rv;
		state = NQ_STATE_READY;
	}
	if (state == NQ_STATE_READY) {
		rv = broker_ready_push(
		    q, job->spec->priority, id, broker_ready_flags_in(q, job));
	} else if (state == NQ_STATE_SCHEDULED) {
		broker_timer t = {
		    job->run_at_us, id, (uint32_t)qi, job->spec->priority};
		rv = broker_timer_push(&b->core.index, &t);
	} else if (state == NQ_STATE_LEASED) {
		uint64_t okey = job->spec->ordering_key[0]
		                    ? broker_okey_hash(job->spec->queue,
		                          job->spec->ordering_key)
		                    : 0;
		broker_lease l = {.id = id,
		    .okey = okey,
		    .token = job->lease_token,
		    .expires_us = job->lease_expires_us,
		    .created_us = job->created_us,
		    .queue = (uint32_t)qi,
		    .keyed = broker_job_keyed(job),
		    .stop = job->cancel_requested,
		    .group = broker_group_slot(q, job->spec->group_key)};
		rv = broker_lease_put(&b->core.index, &l);
		if (rv == 0)
			rv = broker_okey_take(&b->core.index, okey);
	}
	bool live = state == NQ_STATE_READY || state == NQ_STATE_SCHEDULED ||
	            state == NQ_STATE_LEASED || state == NQ_STATE_WAITING;
	if (rv == 0 && live && broker_nchildren(job))
		rv = broker_parent_add(&b->core.index, id);
	if (rv == 0 && live && broker_batch_of(job->spec)[0])
		rv = broker_batched_add(
		    &b->core.index, id, broker_batch_of(job->spec));
	if (rv == 0 && live &&
	    (job->spec->deadline_us || job->spec->finish_within_ms ||
	        job->cancel_requested))
		rv = broker_deadline_add(b, job);
	uint64_t *count = broker_queue_count(q, state);
	if (count)
		(*count)++;
	return rv;
}

static int scan_jobs(
    broker *b, MDB_txn *txn, bool release_leases, size_t *released)
{
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn, b->db_jobs, &cur) != 0)
		return NQ_ESTORE;
	int rv = NQ_OK, rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0 && rv == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		uint64_t id = nqi_be64_get(k.mv_data);
		if (release_leases && (rv = broker_job_repair(cur, &k, &v)))
			break;
		broker_record_view(&v);
		Nq__V1__Job *job =
		    nq__v1__job__unpack(NULL, v.mv_size, v.mv_data);
		if (!job || !job->spec || !nqi_name_valid(job->spec->queue)) {
			char key[NQ_ID_MAX];
			nqi_id_format(id, key);
			nqi_error("NQ-RECORD-CORRUPT", NQI_S("key", key),
			    NQI_U("bytes", v.mv_size));
		} else if (!job->in_dlq) {
			if (job->state == NQ__V1__JOB_STATE__JOB_STATE_LEASED)
				(*released)++;
			rv = index_job(b, txn, job, id, &k, release_leases);
			b->core.jobs_stored++;
		}
		/* The summary of a job nq-dlq holds counts nowhere, but its
		 * id stays taken. */
		if (job && job->spec && id > b->core.last_id)
			b->core.last_id = id;
		if (job)
			nq__v1__job__free_unpacked(job, NULL);
	}
	mdb_cursor_close(cur);
	if (rv == 0 && rc != MDB_NOTFOUND)
		rv = NQ_ESTORE;
	return rv;
}

static void load_last_id(broker *b, MDB_txn *txn)
{
	MDB_val k = {7, (void *)"last_id"}, v;
	if (mdb_get(txn, b->db_meta, &k, &v) == 0 && v.mv_size == 8) {
		uint64_t id = nqi_be64_get(v.mv_data);
		if (id > b->core.last_id)
			b->core.last_id = id;
	}
}

/*
 * After a failed commit the store holds each lease as it was given; what
 * happened to it since lives only in memory: extends moved its expiry and
 * the worker's connection is known. Leases the store still holds under the
 * same token take both back, so a worker whose extends were confirmed does
 * not lose its job to another worker while it still runs it.
 */
static void keep_lease_state(broker_index *x, const broker_lease *old, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		broker_lease *l = broker_lease_find(x, old[i].id);
		if (!l || l->token != old[i].token)
			continue;
		if (old[i].expires_us > l->expires_us)
			l->expires_us = old[i].expires_us;
		l->pipe_id = old[i].pipe_id;
	}
}

int broker_recover(broker *b, bool release_leases)
{
	MDB_txn *txn;
	size_t leased = 0, nold = release_leases ? 0 : b->core.index.nleases;
	uint64_t t0 = nqi_mono_ms();
	broker_lease *old = nold ? malloc(nold * sizeof *old) : NULL;
	if (old)
		memcpy(old, b->core.index.leases, nold * sizeof *old);
	else
		nold = 0;
	index_clear(&b->core.index);
	b->core.jobs_stored = 0;
	int rv = nqi_store_begin(b->store, release_leases, &txn);
	if (rv != 0)
		return rv;
	rv = load_queue_configs(b, txn);
	if (rv == 0)
		rv = scan_jobs(b, txn, release_leases, &leased);
	if (rv == 0)
		rv = broker_dlq_recover(b, txn);
	load_last_id(b, txn);
	if (rv == 0 && release_leases)
		rv = nqi_store_commit(b->store, txn);
	else
		mdb_txn_abort(txn);
	if (rv == 0)
		keep_lease_state(&b->core.index, old, nold);
	free(old);
	if (rv != 0) {
		nqi_error("NQ-RECOVER-FAILED", NQI_S("err", nq_err_name(rv)));
		return rv;
	}
	nqi_info("NQ-RECOVERED", NQI_U("jobs", b->core.jobs_stored),
	    NQI_U("queues", b->core.index.nqueues), NQI_U("leased", leased),
	    NQI_B(release_leases ? "released" : NULL, true),
	    NQI_U("ms", nqi_mono_ms() - t0));
	return NQ_OK;
}
