#include "nqi/gcommit.h"

#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "nqi/log.h"
#include "nqi/util.h"

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

/* Commits what the group wrote. When the last commit failed, a group with
 * nothing to write still commits (seal_cb writes a probe), so that
 * readiness comes back only once the store commits again. The transaction
 * is gone afterwards either way. */
static int commit(nqi_gcommit *g)
{
	MDB_txn *txn = *g->txn;
	bool probe = !*g->dirty;
	if (probe && atomic_load(g->ready)) {
		mdb_txn_abort(txn);
		return NQ_OK;
	}
	int rv = g->hooks->seal_cb ? g->hooks->seal_cb(g->ctx, probe) : NQ_OK;
	if (rv != 0) {
		mdb_txn_abort(txn);
		return rv;
	}
	return nqi_store_commit(*g->store, txn);
}

static void settle_ready(nqi_gcommit *g, int err)
{
	if (err == 0) {
		if (!atomic_exchange(g->ready, true))
			nqi_info("NQ-COMMIT-RECOVERED", NQI_B("ready", true));
		return;
	}
	/* Logged when the store starts failing, not at every retry. */
	if (atomic_exchange(g->ready, false))
		nqi_error("NQ-COMMIT-FAILED", NQI_S("err", nq_err_name(err)),
		    NQI_B("ready", false));
	/* A store that cannot commit fails the next group at once; pause so
	 * that a full disk does not become a busy loop. */
	nng_msleep(50);
}

void nqi_gcommit_run(nqi_gcommit *g, void *ops)
{
	const nqi_gcommit_hooks *h = g->hooks;
	MDB_txn *txn = NULL;
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
	if (rv == 0)
		rv = commit(g);
	else if (*g->txn)
		mdb_txn_abort(*g->txn);
	*g->txn = NULL;
	settle_ready(g, rv);
	h->end_cb(g->ctx, rv == 0 ? NULL : ops, rv);
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
