/*
 * The workers the broker knows from their fetches, for stats: a fixed
 * table of BROKER_WORKERS slots keyed by worker_id, written by the core
 * at each fetch (a hash, a probe of at most BROKER_WORKERS_PROBE slots, a
 * few copies; nothing allocated after the first fetch). A worker unseen
 * for BROKER_WORKERS_FORGET_MS is not reported and its slot is taken by
 * the next newcomer; when every slot of a probe is live, the least
 * recently seen gives way, so the table stays bounded however many
 * workers come and go. Leases held are counted at stats time from the
 * lease table by the worker's connection (pipe), so completions pay
 * nothing for this.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/util.h"

#define BROKER_WORKERS 512
#define BROKER_WORKERS_PROBE 8
#define BROKER_WORKERS_FORGET_MS 300000
#define WORKER_ID_MAX 128
#define WORKER_QUEUES_MAX 256

typedef struct broker_worker {
	uint64_t hash; /* 0: empty */
	uint64_t seen_ms, seen_us, fetches;
	uint32_t pipe_id, free_slots;
	char id[WORKER_ID_MAX];
	char queues[WORKER_QUEUES_MAX]; /* "a,b,c", cut at a whole name */
} broker_worker;

struct broker_workers {
	broker_worker slot[BROKER_WORKERS];
};

static uint64_t id_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h ? h : 1;
}

static bool live(const broker_worker *w, uint64_t now_ms)
{
	return w->hash && now_ms - w->seen_ms < BROKER_WORKERS_FORGET_MS;
}

/* Whether w gives way sooner than spare: a free or forgotten slot first,
 * then the least recently seen. */
static bool gives_way(
    const broker_worker *w, const broker_worker *spare, uint64_t now_ms)
{
	if (!live(spare, now_ms))
		return false;
	return !live(w, now_ms) || w->seen_ms < spare->seen_ms;
}

/* The slot of id: its own, else the probe's slot that gives way first. */
static broker_worker *slot_of(
    struct broker_workers *t, const char *id, uint64_t h, uint64_t now_ms)
{
	broker_worker *spare = NULL;
	for (size_t i = 0; i < BROKER_WORKERS_PROBE; i++) {
		broker_worker *w = &t->slot[(h + i) % BROKER_WORKERS];
		if (w->hash == h && strcmp(w->id, id) == 0)
			return w;
		if (!spare || gives_way(w, spare, now_ms))
			spare = w;
	}
	memset(spare, 0, sizeof *spare);
	spare->hash = h;
	snprintf(spare->id, sizeof spare->id, "%s", id);
	return spare;
}

static void join_queues(broker_worker *w, const Nq__V1__FetchRequest *f)
{
	size_t len = 0;
	w->queues[0] = '\0';
	for (size_t i = 0; i < f->n_queues; i++) {
		size_t n = strlen(f->queues[i]);
		if (len + n + 2 > sizeof w->queues)
			break;
		if (len)
			w->queues[len++] = ',';
		memcpy(w->queues + len, f->queues[i], n + 1);
		len += n;
	}
}

void broker_workers_note(
    broker *b, const Nq__V1__FetchRequest *f, uint32_t pipe_id)
{
	if (!b->core.workers &&
	    !(b->core.workers = calloc(1, sizeof *b->core.workers)))
		return; /* stats go without workers */
	char anon[32];
	const char *id = f->worker_id;
	if (!id[0]) { /* a worker without a name: one per connection */
		snprintf(anon, sizeof anon, "pipe-%u", pipe_id);
		id = anon;
	}
	uint64_t h = id_hash(id), now = nqi_mono_ms();
	broker_worker *w = slot_of(b->core.workers, id, h, now);
	w->seen_ms = now;
	w->seen_us = nqi_now_us();
	w->fetches++;
	w->pipe_id = pipe_id;
	w->free_slots = f->max_jobs;
	join_queues(w, f);
}

void broker_workers_free(broker *b)
{
	free(b->core.workers);
	b->core.workers = NULL;
}

static bool fetches_from(const broker_worker *w, const char *queue)
{
	size_t n = strlen(queue);
	for (const char *p = w->queues; *p;) {
		size_t k = strcspn(p, ",");
		if (k == n && strncmp(p, queue, n) == 0)
			return true;
		p += k + (p[k] == ',');
	}
	return false;
}

/* The WorkerStats of w, in the group's arena. */
static Nq__V1__WorkerStats *worker_stats(broker *b, const broker_worker *w)
{
	static const Nq__V1__WorkerStats init = NQ__V1__WORKER_STATS__INIT;
	nqi_arena *a = b->core.arena;
	Nq__V1__WorkerStats *s = nqi_arena_alloc(a, sizeof *s);
	size_t nq = w->queues[0] ? 1 : 0;
	for (const char *p = w->queues; *p; p++)
		nq += *p == ',';
	char **q = nqi_arena_alloc(a, (nq + 1) * sizeof *q);
	char *copy = nqi_arena_strdup(a, w->queues);
	if (!s || !q || !copy)
		return NULL;
	*s = init;
	s->worker_id = nqi_arena_strdup(a, w->id);
	for (char *p = copy; nq && p; p = strchr(p, ',')) {
		if (*p == ',')
			*p++ = '\0';
		q[s->n_queues++] = p;
	}
	s->queues = q;
	s->free_slots = w->free_slots;
	s->last_seen_us = w->seen_us;
	s->fetches = w->fetches;
	return s->worker_id ? s : NULL;
}

static int pipe_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Leases held, counted by connection in one pass over the leases. */
static int count_leases(broker *b, Nq__V1__StatsReply *r, uint32_t *pipes)
{
	size_t n = r->n_workers;
	uint32_t *sorted = nqi_arena_alloc(b->core.arena, (n + 1) * 2 * 4);
	if (!sorted)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n; i++)
		sorted[2 * i] = pipes[i], sorted[2 * i + 1] = (uint32_t)i;
	qsort(sorted, n, 2 * sizeof *sorted, pipe_cmp);
	for (size_t i = 0; n && i < b->core.index.nleases; i++) {
		uint32_t key = b->core.index.leases[i].pipe_id;
		uint32_t *hit =
		    bsearch(&key, sorted, n, 2 * sizeof *sorted, pipe_cmp);
		/* two names on one connection: the first found counts */
		if (hit)
			r->workers[hit[1]]->leased++;
	}
	return NQ_OK;
}

static int id_cmp(const void *a, const void *b)
{
	const Nq__V1__WorkerStats *const *x = a, *const *y = b;
	return strcmp((*x)->worker_id, (*y)->worker_id);
}

/* Listed by worker_id. */
int broker_workers_stats(broker *b, const char *queue, Nq__V1__StatsReply *r)
{
	struct broker_workers *t = b->core.workers;
	uint64_t now = nqi_mono_ms();
	if (!t)
		return NQ_OK;
	r->workers =
	    nqi_arena_alloc(b->core.arena, BROKER_WORKERS * sizeof *r->workers);
	uint32_t *pipes =
	    nqi_arena_alloc(b->core.arena, BROKER_WORKERS * sizeof *pipes);
	if (!r->workers || !pipes)
		return NQ_ENOMEM;
	for (size_t i = 0; i < BROKER_WORKERS; i++) {
		const broker_worker *w = &t->slot[i];
		if (!live(w, now) ||
		    (queue && queue[0] && !fetches_from(w, queue)))
			continue;
		pipes[r->n_workers] = w->pipe_id;
		if (!(r->workers[r->n_workers++] = worker_stats(b, w)))
			return NQ_ENOMEM;
	}
	int rv = count_leases(b, r, pipes);
	qsort(r->workers, r->n_workers, sizeof *r->workers, id_cmp);
	return rv;
}
