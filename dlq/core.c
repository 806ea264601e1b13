/* The core thread: the only writer of the store. It takes every write op
 * queued since its last group, applies them and retention in one
 * transaction, commits once, and only then replies: a confirmed ingest is
 * on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "dlq.h"
#include "nqi/log.h"
#include "nqi/util.h"

typedef struct write_route {
	Nq__V1__Request__BodyCase body;
	dlq_handler_fn fn;
} write_route;

static const write_route write_routes[] = {
    {NQ__V1__REQUEST__BODY_DLQ_INGEST, dlq_on_ingest},
    {NQ__V1__REQUEST__BODY_DLQ_PURGE, dlq_on_purge},
};

static dlq_handler_fn write_handler(const dlq_op *op)
{
	if (op->kind == DLQ_OP_REPLAYED)
		return dlq_on_replayed;
	for (size_t i = 0; i < sizeof write_routes / sizeof *write_routes; i++)
		if (write_routes[i].body == op->req->body_case)
			return write_routes[i].fn;
	return NULL;
}

void dlq_finish(dlq *d, dlq_op *op)
{
	if (op->kind == DLQ_OP_REQUEST) {
		dlq_conn_reply(op->conn, op);
		return;
	}
	pthread_mutex_lock(&d->mu);
	op->done = true;
	pthread_cond_broadcast(&d->done_cv);
	pthread_mutex_unlock(&d->mu);
}

void dlq_post(dlq *d, dlq_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&d->mu);
	bool refused = d->core_stopped;
	if (!refused) {
		if (d->in_tail)
			d->in_tail->next = op;
		else
			d->in_head = op;
		d->in_tail = op;
		pthread_cond_signal(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	if (!refused)
		return;
	op->rv = NQ_ECLOSED;
	dlq_op_status(op, NQ_EUNAVAIL,
	    "nq-dlq is shutting down; nothing "
	    "of this request was written");
	dlq_finish(d, op);
}

int dlq_note_prune(dlq *d, const char *queue, const char *why, uint64_t n)
{
	for (size_t i = 0; i < d->nprunes; i++) {
		dlq_prune *p = &d->prunes[i];
		if (p->why == why && strcmp(p->queue, queue) == 0) {
			p->n += n;
			return NQ_OK;
		}
	}
	if (d->nprunes == d->capprunes) {
		size_t cap = d->capprunes ? d->capprunes * 2 : 16;
		dlq_prune *v = realloc(d->prunes, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		d->prunes = v;
		d->capprunes = cap;
	}
	dlq_prune *p = &d->prunes[d->nprunes++];
	snprintf(p->queue, sizeof p->queue, "%s", queue);
	p->why = why;
	p->n = n;
	return NQ_OK;
}

/* A commit held them: now they are facts worth logging and counting. */
static void publish_group(dlq *d)
{
	for (size_t i = 0; i < d->nprunes; i++) {
		dlq_prune *p = &d->prunes[i];
		nqi_info("NQ-DLQ-PRUNED", NQI_S("queue", p->queue),
		    NQI_S("reason", p->why), NQI_U("n", p->n));
		if (strcmp(p->why, "count") == 0)
			atomic_fetch_add(&d->pruned_count_total, p->n);
		else
			atomic_fetch_add(&d->pruned_age_total, p->n);
	}
	atomic_fetch_add(&d->ingested_total, d->group_ingested);
	atomic_fetch_add(&d->duplicate_total, d->group_duplicates);
	atomic_fetch_add(&d->purged_total, d->group_purged);
	atomic_fetch_add(&d->replayed_total, d->group_replayed);
	atomic_store(&d->commits_total, nqi_store_commits(d->store));
}

static int apply(dlq *d, dlq_op *op)
{
	dlq_handler_fn fn = write_handler(op);
	if (!fn) {
		dlq_op_status(op, NQ_EINTERNAL, "no writer for this request");
		return NQ_OK;
	}
	return fn(d, op);
}

/* Commits what the group wrote. When the last commit failed, a group with
 * nothing to write still writes a heartbeat, so that readiness comes back
 * only once the store commits again. */
static int commit_group(dlq *d)
{
	int rv = NQ_OK;
	if (!d->dirty && !atomic_load(&d->ready))
		rv = dlq_store_probe(d, d->txn);
	else if (!d->dirty) {
		mdb_txn_abort(d->txn);
		d->txn = NULL;
		return NQ_OK;
	}
	if (rv == 0) {
		rv = nqi_store_commit(d->store, d->txn);
		d->txn = NULL;
	}
	return rv;
}

/* Durability is never dropped quietly: every request of a failed group
 * says so, /readyz turns false, and the failure is logged. */
static void fail_group(dlq *d, dlq_op *ops, int err)
{
	if (d->txn) {
		mdb_txn_abort(d->txn);
		d->txn = NULL;
	}
	for (dlq_op *op = ops; op; op = op->next) {
		op->rv = err;
		op->more = false;
		dlq_op_status(op, NQ_EUNAVAIL,
		    "nq-dlq store commit failed "
		    "(%s); nothing of this request was written, retry later",
		    nq_strerror(err));
	}
	if (atomic_exchange(&d->ready, false))
		nqi_error("NQ-COMMIT-FAILED", NQI_S("err", nq_err_name(err)),
		    NQI_B("ready", false));
	/* A disk that cannot commit fails the next group at once; pause so
	 * that it does not become a busy loop. */
	nng_msleep(50);
}

static void reset_group(dlq *d)
{
	d->dirty = false;
	d->ntouched = 0;
	d->nprunes = 0;
	d->group_ingested = d->group_duplicates = 0;
	d->group_purged = d->group_replayed = 0;
}

/* Replies go out after the commit; ops that asked for another group (a
 * bounded purge) wait in carry. */
static void finish_ops(dlq *d, dlq_op *ops)
{
	dlq_op **tail = &d->carry;
	while (*tail)
		tail = &(*tail)->next;
	while (ops) {
		dlq_op *next = ops->next;
		ops->next = NULL;
		if (ops->more) {
			ops->more = false;
			*tail = ops;
			tail = &ops->next;
		} else {
			dlq_finish(d, ops);
		}
		ops = next;
	}
}

static void run_group(dlq *d, dlq_op *ops, bool full_retention)
{
	int rv = nqi_store_begin(d->store, true, &d->txn);
	reset_group(d);
	for (dlq_op *op = ops; rv == 0 && op; op = op->next)
		rv = apply(d, op);
	if (rv == 0)
		rv = dlq_retention(d, full_retention);
	if (rv == 0)
		rv = commit_group(d);
	if (rv != 0) {
		fail_group(d, ops, rv);
	} else {
		if (!atomic_exchange(&d->ready, true))
			nqi_info("NQ-COMMIT-RECOVERED", NQI_B("ready", true));
		publish_group(d);
	}
	finish_ops(d, ops);
}

/* How long the core may sleep: until the next retention pass, or not at
 * all while work is left over. */
static uint64_t next_wait_ms(dlq *d)
{
	uint64_t now = nqi_mono_ms();
	if (d->carry || d->retention_more)
		return 0;
	if (!atomic_load(&d->ready))
		return 1000; /* probe the store again soon */
	return d->next_retention_ms > now ? d->next_retention_ms - now : 0;
}

static dlq_op *take_ops(dlq *d, uint64_t wait_ms, bool *stop)
{
	pthread_mutex_lock(&d->mu);
	if (!d->in_head && !d->stopping && wait_ms > 0) {
		struct timespec ts = nqi_realtime_in(wait_ms);
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	dlq_op *ops = d->in_head;
	d->in_head = d->in_tail = NULL;
	*stop = d->stopping;
	if (*stop && !ops && !d->carry)
		d->core_stopped = true; /* later posts are refused */
	pthread_mutex_unlock(&d->mu);
	return ops;
}

/* The carried ops run first, so a long purge keeps its place. */
static dlq_op *with_carry(dlq *d, dlq_op *ops)
{
	dlq_op *all = d->carry;
	d->carry = NULL;
	if (!all)
		return ops;
	dlq_op *t = all;
	while (t->next)
		t = t->next;
	t->next = ops;
	return all;
}

/* At shutdown a purge bounded per commit ends where it is; its reply
 * says how far it got. */
static void end_carry(dlq *d)
{
	for (dlq_op *op = d->carry, *next; op; op = next) {
		next = op->next;
		dlq_op_status(op, NQ_EUNAVAIL,
		    "nq-dlq is shutting down; the "
		    "purge stopped after %llu entries",
		    (unsigned long long)op->progress);
		dlq_finish(d, op);
	}
	d->carry = NULL;
}

static void *core_main(void *arg)
{
	dlq *d = arg;
	for (;;) {
		bool stop;
		dlq_op *ops = take_ops(d, next_wait_ms(d), &stop);
		if (stop)
			end_carry(d);
		uint64_t now = nqi_mono_ms();
		bool due = now >= d->next_retention_ms;
		if (due)
			d->next_retention_ms = now + d->cfg.retention_check_ms;
		ops = with_carry(d, ops);
		if (ops || due || d->retention_more || !atomic_load(&d->ready))
			run_group(d, ops, due || d->retention_more);
		if (stop && d->core_stopped)
			break;
	}
	return NULL;
}

int dlq_core_start(dlq *d)
{
	d->next_retention_ms = nqi_mono_ms(); /* a first pass at once */
	if (pthread_create(&d->core, NULL, core_main, d) != 0)
		return NQ_ENOMEM;
	d->core_running = true;
	return NQ_OK;
}

void dlq_core_stop(dlq *d)
{
	if (!d->core_running)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->core, NULL);
	d->core_running = false;
	free(d->touched);
	free(d->prunes);
	d->touched = NULL;
	d->prunes = NULL;
}
