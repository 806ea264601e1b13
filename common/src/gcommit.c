#include "nqi/gcommit.h"

#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "nqi/log.h"
#include "nqi/prom.h"
#include "nqi/util.h"

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Adds the time since *t to stage's count, and moves *t to now. */
static void stage_end(nqi_gcommit *g, nqi_gcommit_stage stage, uint64_t *t)
{
	uint64_t now = mono_ns();
	atomic_fetch_add_explicit(
	    &g->stage_ns[stage], now - *t, memory_order_relaxed);
	*t = now;
}

/* The link lives in the daemon's op struct; memcpy reads and writes it
 * whatever its declared pointer type (one load or store once compiled). */
static void *op_next(const nqi_gcommit *g, void *op)
{
	void *next;
	memcpy(&next, (char *)op + g->next_off, sizeof next);
	return next;
}

static void op_link(const nqi_gcommit *g, void *op, void *next)
{
	memcpy((char *)op + g->next_off, &next, sizeof next);
}

int nqi_gcommit_post(nqi_gcommit *g, void *op)
{
	op_link(g, op, NULL);
	pthread_mutex_lock(g->mu);
	bool closed = g->closed;
	if (!closed) {
		if (g->tail)
			op_link(g, g->tail, op);
		else
			g->head = op;
		g->tail = op;
		pthread_cond_signal(g->cv);
	}
	pthread_mutex_unlock(g->mu);
	return closed ? NQ_ECLOSED : NQ_OK;
}

bool nqi_gcommit_pending(nqi_gcommit *g)
{
	pthread_mutex_lock(g->mu);
	bool pending = g->head != NULL;
	pthread_mutex_unlock(g->mu);
	return pending;
}

/* Commits what the group wrote; a group that wrote nothing needs no
 * commit. While the store is not ready every group commits (seal_cb
 * writes a probe when the group wrote nothing) and the store must show
 * room to grow (nqi_store_probe): a commit alone proves little on a full
 * disk, where LMDB still reuses the pages it freed. *ready_after: whether
 * readiness holds after this group; *failed: whether the commit failed. A
 * probe that fails does not fail the ops of a group that wrote nothing.
 * The transaction is gone afterwards either way. */
static int commit(nqi_gcommit *g, bool *ready_after, bool *failed)
{
	MDB_txn *txn = *g->txn;
	bool wrote = *g->dirty, was_ready = atomic_load(g->ready);
	*ready_after = was_ready;
	if (!wrote && was_ready) {
		mdb_txn_abort(txn);
		return NQ_OK;
	}
	int rv = g->hooks->seal_cb ? g->hooks->seal_cb(g->ctx, !wrote) : NQ_OK;
	if (rv != 0)
		mdb_txn_abort(txn);
	else
		rv = nqi_store_commit(*g->store, txn);
	*ready_after =
	    rv == 0 && (was_ready || nqi_store_probe(*g->store) == 0);
	*failed = rv != 0;
	return wrote ? rv : NQ_OK;
}

/* Logged when readiness changes, not at every retry. */
static void settle_ready(nqi_gcommit *g, int err, bool ready)
{
	if (ready) {
		if (!atomic_exchange(g->ready, true))
			nqi_info("NQ-COMMIT-RECOVERED", NQI_B("ready", true));
		return;
	}
	if (atomic_exchange(g->ready, false))
		nqi_error("NQ-COMMIT-FAILED", NQI_S("err", nq_err_name(err)),
		    NQI_B("ready", false));
}

void nqi_gcommit_run(nqi_gcommit *g, void *ops)
{
	const nqi_gcommit_hooks *h = g->hooks;
	MDB_txn *txn = NULL;
	bool ready = false, failed = false;
	uint64_t t = mono_ns();
	int rv = nqi_store_begin(*g->store, true, &txn);
	*g->txn = rv == 0 ? txn : NULL;
	*g->dirty = false;
	while (rv == 0 && ops) {
		void *next = op_next(g, ops);
		rv = h->apply_cb(g->ctx, ops);
		ops = next;
	}
	if (rv == 0 && h->group_cb)
		rv = h->group_cb(g->ctx);
	stage_end(g, NQI_GCOMMIT_APPLY, &t);
	if (rv == 0)
		rv = commit(g, &ready, &failed);
	else if (*g->txn)
		mdb_txn_abort(*g->txn);
	*g->txn = NULL;
	stage_end(g, NQI_GCOMMIT_COMMIT, &t);
	settle_ready(g, rv, ready);
	/* A store that cannot commit fails the next group at once (a probe
	 * too); pause so that a full disk does not become a busy loop. Not
	 * counted as the core's time: it is idle. */
	if (rv != 0 || failed) {
		nng_msleep(50);
		t = mono_ns();
	}
	h->end_cb(g->ctx, rv == 0 ? NULL : ops, rv);
	stage_end(g, NQI_GCOMMIT_REPLY, &t);
}

int nqi_gcommit_prom(nqi_prom *p, const nqi_gcommit *g, const char *name)
{
	static const char *const stages[NQI_GCOMMIT_STAGES] = {
	    [NQI_GCOMMIT_APPLY] = "apply",
	    [NQI_GCOMMIT_COMMIT] = "commit",
	    [NQI_GCOMMIT_REPLY] = "reply"};
	int rv = nqi_prom_family(p, name, NQI_PROM_COUNTER,
	    "Seconds the core thread spent applying groups of requests, "
	    "committing them (fsync included) and replying; the rest it "
	    "waited for requests.");
	for (int i = 0; rv == 0 && i < NQI_GCOMMIT_STAGES; i++)
		rv = nqi_prom_sample(p, name,
		    (const char *const[]){"stage", stages[i], NULL},
		    (double)atomic_load(&g->stage_ns[i]) / 1e9);
	return rv;
}

static void *take_ops(nqi_gcommit *g, uint64_t wait_ms, bool *stop)
{
	pthread_mutex_lock(g->mu);
	if (!g->head && !g->stopping && wait_ms > 0) {
		struct timespec ts = nqi_realtime_in(wait_ms);
		pthread_cond_timedwait(g->cv, g->mu, &ts);
	}
	void *ops = g->head;
	g->head = g->tail = NULL;
	*stop = g->stopping;
	pthread_mutex_unlock(g->mu);
	return ops;
}

/* The ops that raced with the stop; anything later is refused. */
static void *take_last(nqi_gcommit *g)
{
	pthread_mutex_lock(g->mu);
	void *ops = g->head;
	g->head = g->tail = NULL;
	g->closed = true;
	pthread_mutex_unlock(g->mu);
	return ops;
}

static void run_if_due(nqi_gcommit *g, void *ops, bool stopping)
{
	if (g->hooks->due_cb(g->ctx, &ops, stopping))
		nqi_gcommit_run(g, ops);
}

static void *core_main(void *arg)
{
	nqi_gcommit *g = arg;
	bool stop = false;
	while (!stop) {
		void *ops = take_ops(g, g->hooks->wait_ms_cb(g->ctx), &stop);
		run_if_due(g, ops, stop);
	}
	run_if_due(g, take_last(g), true);
	if (g->hooks->stopped_cb)
		g->hooks->stopped_cb(g->ctx);
	return NULL;
}

int nqi_gcommit_start(nqi_gcommit *g)
{
	if (pthread_create(&g->thread, NULL, core_main, g) != 0)
		return NQ_ENOMEM;
	g->running = true;
	return NQ_OK;
}

void nqi_gcommit_stop(nqi_gcommit *g)
{
	if (!g->running)
		return;
	pthread_mutex_lock(g->mu);
	g->stopping = true;
	pthread_cond_signal(g->cv);
	pthread_mutex_unlock(g->mu);
	pthread_join(g->thread, NULL);
	g->running = false;
}
