/* The core thread: the only writer of the store. It takes every write op
 * queued since its last group, applies them and retention in one
 * transaction, commits once, and only then replies: a confirmed ingest is
 * on disk. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	if (nqi_gcommit_post(&d->gc, op) == 0)
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
	if (NQI_GROW(d->prunes, d->capprunes, d->nprunes + 1, 16) != 0)
		return NQ_ENOMEM;
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

/* The op joins the group (in order) and is applied. */
static int apply_cb(void *ctx, void *arg)
{
	dlq *d = ctx;
	dlq_op *op = arg;
	op->next = NULL;
	*d->group_tail = op;
	d->group_tail = &op->next;
	dlq_handler_fn fn = write_handler(op);
	if (!fn) {
		dlq_op_status(op, NQ_EINTERNAL, "no writer for this request");
		return NQ_OK;
	}
	return fn(d, op);
}

static int group_cb(void *ctx)
{
	dlq *d = ctx;
	return dlq_retention(d, d->retention_full);
}

/* When the last commit failed, a group with nothing to write still writes
 * a heartbeat, so that readiness comes back only once the store commits
 * again. */
static int seal_cb(void *ctx, bool probe)
{
	dlq *d = ctx;
	return probe ? dlq_store_probe(d, d->txn) : NQ_OK;
}

/* Every request of a failed group says so. */
static void fail_group(dlq_op *ops, int err)
{
	for (dlq_op *op = ops; op; op = op->next) {
		op->rv = err;
		op->more = false;
		dlq_op_status(op, NQ_EUNAVAIL,
		    "nq-dlq store commit failed "
		    "(%s); nothing of this request was written, retry later",
		    nq_strerror(err));
	}
}

static void reset_group(dlq *d)
{
	d->group = NULL;
	d->group_tail = &d->group;
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

static void end_cb(void *ctx, void *rest, int err)
{
	dlq *d = ctx;
	dlq_op *ops = d->group;
	*d->group_tail = rest;
	if (err != 0)
		fail_group(ops, err);
	else
		publish_group(d);
	reset_group(d);
	finish_ops(d, ops);
}

/* How long the core may sleep: until the next retention pass, or not at
 * all while work is left over. */
static uint64_t wait_ms_cb(void *ctx)
{
	dlq *d = ctx;
	uint64_t now = nqi_mono_ms();
	if (d->carry || d->retention_more)
		return 0;
	if (!atomic_load(&d->ready))
		return 1000; /* probe the store again soon */
	return d->next_retention_ms > now ? d->next_retention_ms - now : 0;
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
static void stopped_cb(void *ctx)
{
	dlq *d = ctx;
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

static bool due_cb(void *ctx, void **ops, bool stopping)
{
	dlq *d = ctx;
	if (stopping)
		stopped_cb(d);
	uint64_t now = nqi_mono_ms();
	bool due = now >= d->next_retention_ms;
	if (due)
		d->next_retention_ms = now + d->cfg.retention_check_ms;
	*ops = with_carry(d, *ops);
	d->retention_full = due || d->retention_more;
	return *ops || d->retention_full || !atomic_load(&d->ready);
}

static const nqi_gcommit_hooks core_hooks = {
    apply_cb, group_cb, seal_cb, end_cb, wait_ms_cb, due_cb, stopped_cb};

int dlq_core_start(dlq *d)
{
	d->gc = NQI_GCOMMIT_OF(d, dlq_op, &core_hooks);
	reset_group(d);
	d->next_retention_ms = nqi_mono_ms(); /* a first pass at once */
	return nqi_gcommit_start(&d->gc);
}

void dlq_core_stop(dlq *d)
{
	nqi_gcommit_stop(&d->gc);
	free(d->touched);
	free(d->prunes);
	d->touched = NULL;
	d->prunes = NULL;
}
