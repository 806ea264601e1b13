/* The read handlers: list, show and stats. They run on NNG's threads, each
 * in a read transaction of its own, side by side with the core's writes
 * (LMDB readers never wait for the writer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/util.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000
/* Index entries one list request looks at, at most; a selective filter
 * over a huge DLQ then answers with a partial page and a next page. */
#define LIST_SCAN_MAX 200000

static const char *check_list(const Nq__V1__DlqListRequest *r)
{
	if (r->queue[0] && !nqi_name_valid(r->queue))
		return "queue is not a name of 1 to 128 characters "
		       "[A-Za-z0-9._-]";
	if (r->type[0] && !nqi_name_valid(r->type))
		return "type is not a name of 1 to 128 characters "
		       "[A-Za-z0-9._-]";
	if (r->reason[0] && !nqi_name_valid(r->reason))
		return "reason is not a name of 1 to 128 characters "
		       "[A-Za-z0-9._-]";
	return NULL;
}

static bool list_match(
    const Nq__V1__DlqListRequest *r, const Nq__V1__DeadJob *s)
{
	const Nq__V1__JobSpec *sp =
	    s->job && s->job->spec ? s->job->spec : NULL;
	if (!sp)
		return false;
	if (r->type[0] && strcmp(sp->type, r->type) != 0)
		return false;
	if (r->reason[0] && strcmp(s->reason, r->reason) != 0)
		return false;
	return true;
}

/* Positions the walk: before the entry before_id, or at the newest. */
static int list_start(dlq *d, dlq_op *op, MDB_txn *txn,
    const Nq__V1__DlqListRequest *r, dlq_walk *w)
{
	const char *queue = r->queue[0] ? r->queue : NULL;
	uint64_t id;
	Nq__V1__DeadJob *anchor;
	if (!r->before_id[0])
		return dlq_walk_open(d, txn, queue, true, 0, 0, w);
	if (nqi_id_parse(r->before_id, &id) != 0) {
		dlq_op_status(op, NQ_EINVAL,
		    "before_id '%.40s' is not 16 hex "
		    "digits",
		    r->before_id);
		return NQ_EINVAL;
	}
	int rv = dlq_store_get(d, txn, id, &op->mem.pb, &anchor);
	if (rv == NQ_ENOTFOUND)
		dlq_op_status(op, NQ_ENOTFOUND,
		    "the page starts before entry "
		    "%.40s, which is no longer in the DLQ; list again from the "
		    "newest",
		    r->before_id);
	if (rv != 0)
		return rv;
	return dlq_walk_open(d, txn, queue, false, anchor->dead_at_us, id, w);
}

/* The page continues before this entry. */
static int list_next(dlq_op *op, uint64_t id, Nq__V1__DlqListReply *out)
{
	char buf[NQ_ID_MAX];
	nqi_id_format(id, buf);
	out->next_before_id = nqi_arena_strdup(&op->mem, buf);
	return out->next_before_id ? NQ_OK : NQ_ENOMEM;
}

/* Walks newest first, keeping the matches. One match past the page tells
 * that there is a next page. */
static int list_walk(dlq *d, dlq_op *op, MDB_txn *txn,
    const Nq__V1__DlqListRequest *r, dlq_walk *w, Nq__V1__DlqListReply *out)
{
	uint32_t limit = r->limit ? r->limit : LIST_DEFAULT;
	uint64_t at, id, last = 0, scanned = 0;
	int rv;
	if (limit > LIST_MAX)
		limit = LIST_MAX;
	out->jobs = nqi_arena_zalloc(&op->mem, limit * sizeof *out->jobs);
	if (!out->jobs)
		return NQ_ENOMEM;
	while ((rv = dlq_walk_prev(w, &at, &id)) == 0) {
		Nq__V1__DeadJob *s;
		if (at < r->since_us)
			break;
		/* Enough looking: the client pages on from here. */
		if (++scanned > LIST_SCAN_MAX)
			return list_next(op, last, out);
		if ((rv = dlq_store_summary(d, txn, at, id, &op->mem.pb, &s)))
			return rv == NQ_ENOTFOUND ? NQ_ESTORE : rv;
		if (list_match(r, s) && out->n_jobs == limit)
			return list_next(op, last, out);
		if (list_match(r, s))
			out->jobs[out->n_jobs++] = s;
		last = id;
	}
	return rv == NQ_ENOTFOUND ? NQ_OK : rv;
}

/* Starts a read handler: its reply body, a copy of init (size bytes) in
 * op's arena, and a read transaction of its own. On failure there is
 * nothing to undo. */
static int read_begin(dlq *d, dlq_op *op, const void *init, size_t size,
    void **body, MDB_txn **txn)
{
	void *b = nqi_arena_zalloc(&op->mem, size);
	if (!b)
		return NQ_ENOMEM;
	memcpy(b, init, size);
	int rv = nqi_store_begin(d->store, false, txn);
	if (rv == 0)
		*body = b;
	return rv;
}

int dlq_on_list(dlq *d, dlq_op *op)
{
	static const Nq__V1__DlqListReply init = NQ__V1__DLQ_LIST_REPLY__INIT;
	const Nq__V1__DlqListRequest *r = op->req->dlq_list;
	void *body;
	MDB_txn *txn;
	dlq_walk w = {0};
	const char *bad = check_list(r);
	if (bad) {
		dlq_op_status(op, NQ_EINVAL, "%s", bad);
		return NQ_OK;
	}
	int rv = read_begin(d, op, &init, sizeof init, &body, &txn);
	if (rv != 0)
		return rv;
	Nq__V1__DlqListReply *out = body;
	rv = list_start(d, op, txn, r, &w);
	if (rv == 0)
		rv = list_walk(d, op, txn, r, &w, out);
	dlq_walk_close(&w);
	mdb_txn_abort(txn);
	if (dlq_op_failed(op))
		return NQ_OK;
	if (rv == 0) {
		op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_LIST;
		op->reply.dlq_list = out;
	}
	return rv;
}

int dlq_on_show(dlq *d, dlq_op *op)
{
	static const Nq__V1__DlqShowReply init = NQ__V1__DLQ_SHOW_REPLY__INIT;
	const char *sid = op->req->dlq_show->id;
	void *body;
	MDB_txn *txn;
	uint64_t id;
	if (nqi_id_parse(sid, &id) != 0) {
		dlq_op_status(
		    op, NQ_EINVAL, "id '%.40s' is not 16 hex digits", sid);
		return NQ_OK;
	}
	int rv = read_begin(d, op, &init, sizeof init, &body, &txn);
	if (rv != 0)
		return rv;
	Nq__V1__DlqShowReply *out = body;
	rv = dlq_store_get(d, txn, id, &op->mem.pb, &out->job);
	mdb_txn_abort(txn);
	if (rv == NQ_ENOTFOUND) {
		dlq_op_status(
		    op, NQ_ENOTFOUND, "no DLQ entry has id %.40s", sid);
		return NQ_OK;
	}
	if (rv == 0) {
		op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_SHOW;
		op->reply.dlq_show = out;
	}
	return rv;
}

typedef struct stats_acc {
	dlq_op *op;
	Nq__V1__DlqStatsReply *out;
	size_t cap;
} stats_acc;

static int stats_add(
    void *arg, const char *queue, const char *reason, uint64_t n)
{
	static const Nq__V1__DlqStatsEntry init = NQ__V1__DLQ_STATS_ENTRY__INIT;
	stats_acc *a = arg;
	Nq__V1__DlqStatsReply *out = a->out;
	if (out->n_entries == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		Nq__V1__DlqStatsEntry **v =
		    nqi_arena_zalloc(&a->op->mem, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		if (out->n_entries)
			memcpy(v, out->entries, out->n_entries * sizeof *v);
		out->entries = v;
		a->cap = cap;
	}
	Nq__V1__DlqStatsEntry *e = nqi_arena_zalloc(&a->op->mem, sizeof *e);
	if (!e)
		return NQ_ENOMEM;
	*e = init;
	e->queue = nqi_arena_strdup(&a->op->mem, queue);
	e->reason = nqi_arena_strdup(&a->op->mem, reason);
	if (!e->queue || !e->reason)
		return NQ_ENOMEM;
	e->count = n;
	out->entries[out->n_entries++] = e;
	out->total += n;
	return NQ_OK;
}

int dlq_on_stats(dlq *d, dlq_op *op)
{
	static const Nq__V1__DlqStatsReply init = NQ__V1__DLQ_STATS_REPLY__INIT;
	void *body;
	MDB_txn *txn;
	int rv = read_begin(d, op, &init, sizeof init, &body, &txn);
	if (rv != 0)
		return rv;
	Nq__V1__DlqStatsReply *out = body;
	stats_acc a = {op, out, 0};
	rv = dlq_store_counts(d, txn, stats_add, &a);
	mdb_txn_abort(txn);
	if (rv == 0) {
		op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_STATS;
		op->reply.dlq_stats = out;
	}
	return rv;
}
