/* The write handlers, run by the core inside the group's transaction:
 * ingest from the broker, purge, removal of replayed entries, retention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/log.h"
#include "nqi/util.h"

/* Entries one group removes at most for a purge --all or for retention,
 * so that a big sweep never holds up ingest for long. */
#define SWEEP_BUDGET 5000

static int touch(dlq *d, const char *queue)
{
	for (size_t i = 0; i < d->ntouched; i++)
		if (strcmp(d->touched[i], queue) == 0)
			return NQ_OK;
	if (NQI_GROW(d->touched, d->captouched, d->ntouched + 1, 16) != 0)
		return NQ_ENOMEM;
	snprintf(d->touched[d->ntouched++], NQI_NAME_MAX + 1, "%s", queue);
	return NQ_OK;
}

/* ---- ingest ---- */

static const char *dead_reason(const Nq__V1__DeadJob *dj)
{
	if (dj->reason[0])
		return dj->reason;
	return dj->job->dead_reason[0] ? dj->job->dead_reason : "unknown";
}

/* What is wrong with a handed-over job, or NULL; *id gets its id. */
static const char *check_dead(
    const Nq__V1__DeadJob *dj, uint64_t *id, char *buf, size_t len)
{
	const Nq__V1__Job *j = dj->job;
	if (!j)
		return "carries no job";
	if (nqi_id_parse(j->id, id) != 0) {
		snprintf(
		    buf, len, "job id '%.40s' is not 16 hex digits", j->id);
		return buf;
	}
	if (!j->spec)
		return "job has no spec";
	const struct {
		const char *what, *val;
	} names[] = {
	    {"queue", j->spec->queue},
	    {"type", j->spec->type},
	    {"reason", dead_reason(dj)},
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		if (nqi_name_valid(names[i].val))
			continue;
		snprintf(buf, len,
		    "%s '%.40s' is not a name of 1 to 128 characters "
		    "[A-Za-z0-9._-]",
		    names[i].what, names[i].val);
		return buf;
	}
	return NULL;
}

/* A replayed job carries "replay:<entry>:<n>": it was replayed n times
 * along its line of entries, which its own entry keeps counting. */
static uint32_t lineage_replays(const Nq__V1__JobSpec *s)
{
	char prefix[96];
	uint64_t n;
	if (!s->replay_of[0])
		return 0;
	int plen =
	    snprintf(prefix, sizeof prefix, "replay:%.40s:", s->replay_of);
	if (strncmp(s->idempotency_key, prefix, (size_t)plen) != 0 ||
	    nqi_parse_u64(s->idempotency_key + plen, &n) != 0 || n == 0)
		return 1;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static int store_new(dlq *d, const Nq__V1__DeadJob *dj, uint64_t id)
{
	char canon[NQ_ID_MAX];
	Nq__V1__DeadJob rec = *dj;
	Nq__V1__Job job = *dj->job;
	uint64_t now = nqi_now_us();
	nqi_id_format(id, canon);
	job.id = canon;
	rec.job = &job;
	rec.reason = (char *)dead_reason(dj);
	rec.stored_at_us = now;
	if (!rec.dead_at_us)
		rec.dead_at_us = job.finished_us ? job.finished_us : now;
	rec.replays = lineage_replays(job.spec);
	rec.replayed_as = (char *)protobuf_c_empty_string;
	int rv = dlq_store_put(d, d->txn, id, &rec);
	if (rv == 0)
		rv = touch(d, job.spec->queue);
	return rv;
}

/* One handed-over job: stored, recognised as stored before, or refused
 * for what it lacks. */
static int ingest_one(dlq *d, dlq_op *op, const Nq__V1__DeadJob *dj, size_t i,
    Nq__V1__Status **out)
{
	char buf[200], msg[240];
	uint64_t id;
	const char *bad = check_dead(dj, &id, buf, sizeof buf);
	if (bad) {
		snprintf(msg, sizeof msg, "job %zu: %s", i, bad);
		*out = dlq_status_new(op, NQ_EINVAL, msg);
		return *out ? NQ_OK : NQ_ENOMEM;
	}
	*out = dlq_status_new(op, NQ_OK, "");
	if (!*out)
		return NQ_ENOMEM;
	if (dlq_store_has(d, d->txn, id)) {
		d->group_duplicates++; /* a handoff repeated after a lost reply
		                        */
		return NQ_OK;
	}
	int rv = store_new(d, dj, id);
	if (rv == 0) {
		d->dirty = true;
		d->group_ingested++;
	}
	return rv;
}

int dlq_on_ingest(dlq *d, dlq_op *op)
{
	static const Nq__V1__DlqIngestReply init =
	    NQ__V1__DLQ_INGEST_REPLY__INIT;
	const Nq__V1__DlqIngestRequest *in = op->req->dlq_ingest;
	Nq__V1__DlqIngestReply *r = nqi_arena_zalloc(&op->mem, sizeof *r);
	Nq__V1__Status **res =
	    nqi_arena_zalloc(&op->mem, in->n_jobs * sizeof *res);
	if (!r || !res)
		return NQ_ENOMEM;
	*r = init;
	r->results = res;
	r->n_results = in->n_jobs;
	op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_INGEST;
	op->reply.dlq_ingest = r;
	for (size_t i = 0; i < in->n_jobs; i++) {
		int rv = ingest_one(d, op, in->jobs[i], i, &res[i]);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* ---- purge ---- */

static const char *check_purge(const Nq__V1__DlqPurgeRequest *p)
{
	if (p->n_ids && p->all)
		return "name the entries to purge or all of them, not both";
	if (!p->n_ids && !p->all)
		return "name the entries to purge, or all";
	if (!p->all && (p->older_than_ms || p->queue[0]))
		return "older_than_ms and queue only narrow a purge of all";
	if (p->queue[0] && !nqi_name_valid(p->queue))
		return "queue is not a name of 1 to 128 characters "
		       "[A-Za-z0-9._-]";
	return NULL;
}

/* Every named entry must exist, or nothing is purged. */
static int purge_ids(dlq *d, dlq_op *op, const Nq__V1__DlqPurgeRequest *p)
{
	uint64_t id;
	for (size_t i = 0; i < p->n_ids; i++) {
		if (nqi_id_parse(p->ids[i], &id) != 0) {
			dlq_op_status(op, NQ_EINVAL,
			    "id '%.40s' is not 16 hex "
			    "digits; nothing was purged",
			    p->ids[i]);
			return NQ_OK;
		}
		if (!dlq_store_has(d, d->txn, id)) {
			dlq_op_status(op, NQ_ENOTFOUND,
			    "no DLQ entry has id "
			    "%.40s; nothing was purged",
			    p->ids[i]);
			return NQ_OK;
		}
	}
	for (size_t i = 0; i < p->n_ids; i++) {
		nqi_id_parse(p->ids[i], &id);
		int rv = dlq_store_del(d, d->txn, id);
		if (rv == NQ_ENOTFOUND)
			continue; /* named twice */
		if (rv != 0)
			return rv;
		op->progress++;
	}
	return NQ_OK;
}

/* Bounded per group; the op comes back for the rest (op->more). */
static int purge_all(dlq *d, dlq_op *op, const Nq__V1__DlqPurgeRequest *p)
{
	uint64_t n;
	bool more;
	if (op->progress == 0 && op->cutoff_us == 0) {
		uint64_t now = nqi_now_us(), age_us = p->older_than_ms * 1000;
		op->cutoff_us =
		    !p->older_than_ms ? UINT64_MAX
		    : p->older_than_ms > UINT64_MAX / 1000 || age_us >= now
		        ? 1
		        : now - age_us;
	}
	int rv = dlq_store_drop_oldest(d, d->txn, p->queue[0] ? p->queue : NULL,
	    op->cutoff_us, SWEEP_BUDGET, NULL, NULL, &n, &more);
	if (rv != 0)
		return rv;
	op->progress += n;
	op->more = more;
	return NQ_OK;
}

int dlq_on_purge(dlq *d, dlq_op *op)
{
	static const Nq__V1__DlqPurgeReply init = NQ__V1__DLQ_PURGE_REPLY__INIT;
	const Nq__V1__DlqPurgeRequest *p = op->req->dlq_purge;
	const char *bad = check_purge(p);
	if (bad) {
		dlq_op_status(op, NQ_EINVAL, "%s", bad);
		return NQ_OK;
	}
	uint64_t before = op->progress;
	int rv = p->all ? purge_all(d, op, p) : purge_ids(d, op, p);
	if (rv != 0 || dlq_op_failed(op))
		return rv;
	if (!op->reply.dlq_purge) {
		Nq__V1__DlqPurgeReply *r =
		    nqi_arena_zalloc(&op->mem, sizeof *r);
		if (!r)
			return NQ_ENOMEM;
		*r = init;
		op->reply.body_case = NQ__V1__REPLY__BODY_DLQ_PURGE;
		op->reply.dlq_purge = r;
	}
	op->reply.dlq_purge->purged =
	    (uint32_t)(op->progress > UINT32_MAX ? UINT32_MAX : op->progress);
	d->group_purged += op->progress - before;
	d->dirty |= op->progress > before;
	return NQ_OK;
}

/* ---- replayed entries ---- */

/* The broker confirmed their enqueue: the entries leave the DLQ. One
 * purged or replayed meanwhile is simply gone already. */
int dlq_on_replayed(dlq *d, dlq_op *op)
{
	for (size_t i = 0; i < op->nids; i++) {
		int rv = dlq_store_del(d, d->txn, op->ids[i]);
		if (rv == NQ_ENOTFOUND)
			continue;
		if (rv != 0)
			return rv;
		d->dirty = true;
		d->group_replayed++;
	}
	op->rv = NQ_OK;
	return NQ_OK;
}

/* ---- retention ---- */

typedef struct age_prunes {
	dlq *d;
	int rv;
} age_prunes;

static void age_cb(void *arg, const char *queue)
{
	age_prunes *a = arg;
	if (a->rv == 0)
		a->rv = dlq_note_prune(a->d, queue, "age", 1);
}

/* Keeps the newest retention_count entries of a queue. */
static int prune_count(dlq *d, const char *queue, uint64_t *budget, bool *more)
{
	uint64_t n, dropped;
	bool left;
	int rv = dlq_store_queue_count(d, d->txn, queue, &n);
	if (rv != 0 || n <= d->cfg.retention_count)
		return rv;
	uint64_t excess = n - d->cfg.retention_count;
	uint64_t take = excess < *budget ? excess : *budget;
	rv = dlq_store_drop_oldest(
	    d, d->txn, queue, UINT64_MAX, take, NULL, NULL, &dropped, &left);
	if (rv == 0 && dropped)
		rv = dlq_note_prune(d, queue, "count", dropped);
	d->dirty |= dropped > 0;
	*budget -= dropped;
	*more |= excess > dropped;
	return rv;
}

static int prune_age(dlq *d, uint64_t *budget, bool *more)
{
	uint64_t now = nqi_now_us(), dropped;
	uint64_t age_us = d->cfg.retention_age_ms * 1000;
	bool left;
	age_prunes a = {d, 0};
	if (!d->cfg.retention_age_ms || age_us >= now || *budget == 0)
		return NQ_OK;
	int rv = dlq_store_drop_oldest(d, d->txn, NULL, now - age_us, *budget,
	    age_cb, &a, &dropped, &left);
	d->dirty |= dropped > 0;
	*budget -= dropped;
	*more |= left;
	return rv ? rv : a.rv;
}

static int collect_queue(
    void *arg, const char *queue, const char *reason, uint64_t n)
{
	(void)reason;
	(void)n;
	return touch(arg, queue);
}

int dlq_retention(dlq *d, bool full)
{
	uint64_t budget = SWEEP_BUDGET;
	bool more = false;
	int rv = NQ_OK;
	if (full && d->cfg.retention_count)
		rv = dlq_store_counts(d, d->txn, collect_queue, d);
	for (size_t i = 0;
	     rv == 0 && d->cfg.retention_count && i < d->ntouched && budget;
	     i++)
		rv = prune_count(d, d->touched[i], &budget, &more);
	if (rv == 0)
		rv = prune_age(d, &budget, &more);
	d->retention_more = more || (budget == 0);
	return rv;
}
