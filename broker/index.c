/* The in-memory index: ready heaps per queue, one timer heap, the lease
 * table. Entries are small and fixed (payloads stay in the store), so a
 * backlog of millions of jobs costs tens of bytes each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nq/nq.h"

int broker_index_init(broker_index *x)
{
	memset(x, 0, sizeof *x);
	x->nslots = 1024;
	x->lease_slots = calloc(x->nslots, sizeof *x->lease_slots);
	return x->lease_slots ? NQ_OK : NQ_ENOMEM;
}

void broker_index_fini(broker_index *x)
{
	for (size_t i = 0; i < x->nqueues; i++) {
		broker_gate *g = &x->queues[i].gate;
		free(x->queues[i].heap);
		nqi_prom_hist_free(x->queues[i].latency);
		nqi_prom_hist_free(x->queues[i].latency_group);
		for (size_t k = 0; k < g->ngroups; k++) {
			free(g->groups[k].key);
			free(g->groups[k].heap);
		}
		free(g->groups);
		free(g->slots);
		free(g->ring);
	}
	free(x->queues);
	free(x->timers);
	free(x->deadlines);
	free(x->leases);
	free(x->lease_slots);
	free(x->stale);
	free(x->parents);
	free(x->batched);
	broker_okeys_clear(x);
	free(x->okeys);
	memset(x, 0, sizeof *x);
}

int broker_queue_find(const broker_index *x, const char *name)
{
	for (size_t i = 0; i < x->nqueues; i++)
		if (strcmp(x->queues[i].name, name) == 0)
			return (int)i;
	return -1;
}

int broker_queue_get(broker_index *x, const char *name)
{
	int i = broker_queue_find(x, name);
	if (i >= 0)
		return i;
	if (NQI_GROW(x->queues, x->capqueues, x->nqueues + 1, 64) != 0)
		return -1;
	broker_queue *q = &x->queues[x->nqueues];
	memset(q, 0, sizeof *q);
	snprintf(q->name, sizeof q->name, "%s", name);
	if (nqi_prom_hist_alloc(&q->latency, nqi_prom_latency_bounds_s,
	        NQI_PROM_LATENCY_NBOUNDS, NULL, 0) != 0 ||
	    nqi_prom_hist_alloc(&q->latency_group, nqi_prom_latency_bounds_s,
	        NQI_PROM_LATENCY_NBOUNDS, NULL, 0) != 0) {
		nqi_prom_hist_free(q->latency);
		return -1;
	}
	return (int)x->nqueues++;
}

uint64_t *broker_queue_count(broker_queue *q, int state)
{
	switch (state) {
	case NQ_STATE_SCHEDULED:
		return &q->scheduled;
	case NQ_STATE_READY:
		return &q->ready;
	case NQ_STATE_LEASED:
		return &q->leased;
	case NQ_STATE_SUCCEEDED:
		return &q->succeeded;
	case NQ_STATE_DEAD:
		return &q->dead;
	case NQ_STATE_CANCELED:
		return &q->canceled;
	case NQ_STATE_EXPIRED:
		return &q->expired;
	case NQ_STATE_WAITING:
		return &q->waiting;
	default:
		return NULL;
	}
}

/* ---- ready heaps: max by priority, then min by id ---- */

static bool ready_before(const broker_ready *a, const broker_ready *b)
{
	return a->priority != b->priority ? a->priority > b->priority
	                                  : a->id < b->id;
}

static inline int heap_push(
    broker_ready **heap, size_t *n, size_t *cap, const broker_ready *e)
{
	if (NQI_GROW(*heap, *cap, *n + 1, 64) != 0)
		return NQ_ENOMEM;
	broker_ready *h = *heap;
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!ready_before(e, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = *e;
	return NQ_OK;
}

/* Takes the top of heap h of n + 1 entries: n are left. */
static inline void heap_pop(broker_ready *h, size_t n)
{
	broker_ready last = h[n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		const broker_ready *cur = &last;
		if (l < n && ready_before(&h[l], cur)) {
			best = l;
			cur = &h[l];
		}
		if (r < n && ready_before(&h[r], cur))
			best = r;
		if (best == i)
			break;
		h[i] = h[best];
		i = best;
	}
	if (n > 0)
		h[i] = last;
}

/* ---- groups: a heap per group_key, served in turns ---- */

static uint32_t slot_group(const broker_ready *e)
{
	return e->flags >> BROKER_READY_GROUP_SHIFT;
}

/* Where in the ring the group whose turn it is sits: the first from the
 * turn on that is below the limit of one group's leased jobs; -1: none. */
static long group_turn(const broker_gate *g)
{
	for (size_t k = 0; k < g->nring; k++) {
		size_t r = (g->turn + k) % g->nring;
		const broker_group *gr = &g->groups[g->ring[r]];
		if (!g->group_max || gr->leased < g->group_max)
			return (long)r;
	}
	return -1;
}

/* A group that had nothing ready joins the ring just before the turn: it
 * comes after every group already waiting, once each. */
static int ring_join(broker_gate *g, uint32_t slot)
{
	if (NQI_GROW(g->ring, g->capring, g->nring + 1, 16) != 0)
		return NQ_ENOMEM;
	size_t at = g->nring ? g->turn : 0;
	memmove(
	    &g->ring[at + 1], &g->ring[at], (g->nring - at) * sizeof *g->ring);
	g->ring[at] = slot;
	g->nring++;
	g->turn = (at + 1) % g->nring;
	return NQ_OK;
}

static int group_push(broker_gate *g, const broker_ready *e)
{
	uint32_t slot = slot_group(e);
	if (slot >= g->ngroups)
		slot = 0;
	broker_group *gr = &g->groups[slot];
	if (gr->nheap == 0 && ring_join(g, slot) != 0)
		return NQ_ENOMEM;
	if (heap_push(&gr->heap, &gr->nheap, &gr->capheap, e) != 0)
		return NQ_ENOMEM;
	g->nready++;
	return NQ_OK;
}

/* An idle group keeps its name and counts, not its heap: a queue may see
 * many groups come and go. */
static void group_shrink(broker_group *gr)
{
	free(gr->heap);
	gr->heap = NULL;
	gr->capheap = 0;
}

static void group_pop(broker_gate *g)
{
	long r = group_turn(g);
	if (r < 0)
		return;
	broker_group *gr = &g->groups[g->ring[r]];
	heap_pop(gr->heap, --gr->nheap);
	g->nready--;
	size_t at = (size_t)r;
	if (gr->nheap == 0) {
		memmove(&g->ring[at], &g->ring[at + 1],
		    (g->nring - at - 1) * sizeof *g->ring);
		g->nring--;
		group_shrink(gr);
	} else {
		at++;
	}
	g->turn = g->nring ? at % g->nring : 0;
}

int broker_ready_push(
    broker_queue *q, int32_t priority, uint64_t id, uint32_t flags)
{
	broker_ready e = {priority, flags, id};
	if (q->gate.grouped)
		return group_push(&q->gate, &e);
	return heap_push(&q->heap, &q->nheap, &q->capheap, &e);
}

bool broker_group_peek(const broker_queue *q, broker_ready *out)
{
	long r = group_turn(&q->gate);
	if (r < 0)
		return false;
	*out = q->gate.groups[q->gate.ring[r]].heap[0];
	return true;
}

void broker_ready_pop(broker_queue *q)
{
	if (q->gate.grouped)
		group_pop(&q->gate);
	else if (q->nheap > 0)
		heap_pop(q->heap, --q->nheap);
}

size_t broker_ready_count(const broker_queue *q)
{
	return q->gate.grouped ? q->gate.nready : q->nheap;
}

void broker_ready_each(const broker_queue *q,
    void (*fn)(const broker_ready *e, void *arg), void *arg)
{
	for (size_t i = 0; i < q->nheap; i++)
		fn(&q->heap[i], arg);
	for (size_t k = 0; k < q->gate.ngroups; k++)
		for (size_t i = 0; i < q->gate.groups[k].nheap; i++)
			fn(&q->gate.groups[k].heap[i], arg);
}

static uint64_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

/* The hash slot of key, or the empty one where it would go. */
static size_t key_find(const broker_gate *g, const char *key, uint64_t h)
{
	size_t s = (size_t)h & (g->nslots - 1);
	while (g->slots[s] && strcmp(g->groups[g->slots[s] - 1].key, key))
		s = (s + 1) & (g->nslots - 1);
	return s;
}

static int slots_grow(broker_gate *g)
{
	size_t n = g->nslots ? g->nslots * 2 : 64;
	uint32_t *slots = calloc(n, sizeof *slots);
	if (!slots)
		return NQ_ENOMEM;
	free(g->slots);
	g->slots = slots;
	g->nslots = n;
	for (size_t i = 0; i < g->ngroups; i++) {
		const char *k = g->groups[i].key;
		g->slots[key_find(g, k, key_hash(k))] = (uint32_t)i + 1;
	}
	return NQ_OK;
}

/* Adds group key as slot ngroups: 0, or NQ_ENOMEM. */
static int group_add(broker_gate *g, const char *key)
{
	if ((g->ngroups + 1) * 2 > g->nslots && slots_grow(g) != 0)
		return NQ_ENOMEM;
	if (NQI_GROW(g->groups, g->capgroups, g->ngroups + 1, 16) != 0)
		return NQ_ENOMEM;
	broker_group *gr = &g->groups[g->ngroups];
	memset(gr, 0, sizeof *gr);
	if (!(gr->key = strdup(key)))
		return NQ_ENOMEM;
	g->slots[key_find(g, key, key_hash(key))] = (uint32_t)++g->ngroups;
	return NQ_OK;
}

uint32_t broker_group_slot(broker_queue *q, const char *key)
{
	broker_gate *g = &q->gate;
	if (!key[0] || (g->ngroups == 0 && group_add(g, "") != 0))
		return 0;
	uint32_t v = g->slots[key_find(g, key, key_hash(key))];
	if (v)
		return v - 1;
	if (g->ngroups >= BROKER_GROUPS_MAX || group_add(g, key) != 0)
		return 0;
	return (uint32_t)g->ngroups - 1;
}

void broker_groups_clear(broker_queue *q)
{
	broker_gate *g = &q->gate;
	for (size_t i = 0; i < g->ngroups; i++)
		g->groups[i].nheap = g->groups[i].leased = 0;
	g->nring = g->turn = g->nready = 0;
}

/* Moves every entry of q's group heaps into its one heap. */
static int groups_merge(broker_queue *q)
{
	broker_gate *g = &q->gate;
	size_t need = q->nheap + g->nready;
	if (NQI_GROW(q->heap, q->capheap, need, 64) != 0)
		return NQ_ENOMEM;
	for (size_t k = 0; k < g->ngroups; k++)
		for (size_t i = 0; i < g->groups[k].nheap; i++)
			(void)heap_push(&q->heap, &q->nheap, &q->capheap,
			    &g->groups[k].heap[i]);
	broker_groups_clear(q);
	for (size_t k = 0; k < g->ngroups; k++)
		group_shrink(&g->groups[k]);
	return NQ_OK;
}

/* Moves every entry of q's heap into its group's heap. On NQ_ENOMEM the
 * entries are in one or the other (groups_merge gathers them again). */
static int groups_split(broker_queue *q)
{
	broker_gate *g = &q->gate;
	if (g->ngroups == 0 && group_add(g, "") != 0)
		return NQ_ENOMEM;
	/* Best first, so the groups take their turns in the order of their
	 * best jobs. */
	while (q->nheap > 0) {
		broker_ready e = q->heap[0];
		if (group_push(g, &e) != 0)
			return NQ_ENOMEM;
		heap_pop(q->heap, --q->nheap);
	}
	return NQ_OK;
}

int broker_groups_set(broker_index *x, broker_queue *q, bool grouped)
{
	if (grouped == q->gate.grouped)
		return NQ_OK;
	int rv = grouped ? groups_split(q) : groups_merge(q);
	if (rv != 0) {
		/* half split: put everything back in the one heap */
		if (grouped)
			(void)groups_merge(q);
		return rv;
	}
	q->gate.grouped = grouped;
	x->ngrouped += grouped ? 1 : (size_t)-1;
	if (!grouped)
		return NQ_OK;
	uint32_t qi = (uint32_t)(q - x->queues);
	for (size_t i = 0; i < x->nleases; i++)
		if (x->leases[i].queue == qi &&
		    x->leases[i].group < q->gate.ngroups)
			q->gate.groups[x->leases[i].group].leased++;
	return NQ_OK;
}

/* ---- timer heap: min by run_at, then id ---- */

static bool timer_before(const broker_timer *a, const broker_timer *b)
{
	return a->run_at_us != b->run_at_us ? a->run_at_us < b->run_at_us
	                                    : a->id < b->id;
}

/* Heaps of broker_timer: the timers, and the deadlines. */
static int timers_push(
    broker_timer **v, size_t *n, size_t *cap, const broker_timer *t)
{
	if (NQI_GROW(*v, *cap, *n + 1, 64) != 0)
		return NQ_ENOMEM;
	broker_timer *h = *v;
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(t, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = *t;
	return NQ_OK;
}

static void timers_pop(broker_timer *h, size_t *count)
{
	if (*count == 0)
		return;
	broker_timer last = h[--*count];
	size_t i = 0, n = *count;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		const broker_timer *cur = &last;
		if (l < n && timer_before(&h[l], cur)) {
			best = l;
			cur = &h[l];
		}
		if (r < n && timer_before(&h[r], cur))
			best = r;
		if (best == i)
			break;
		h[i] = h[best];
		i = best;
	}
	if (n > 0)
		h[i] = last;
}

int broker_timer_push(broker_index *x, const broker_timer *t)
{
	return timers_push(&x->timers, &x->ntimers, &x->captimers, t);
}

bool broker_timer_peek(const broker_index *x, broker_timer *out)
{
	if (x->ntimers == 0)
		return false;
	*out = x->timers[0];
	return true;
}

void broker_timer_pop(broker_index *x)
{
	timers_pop(x->timers, &x->ntimers);
}

int broker_deadline_push(broker_index *x, uint64_t at_us, uint64_t id)
{
	broker_timer t = {.run_at_us = at_us, .id = id};
	return timers_push(&x->deadlines, &x->ndeadlines, &x->capdeadlines, &t);
}

bool broker_deadline_peek(const broker_index *x, broker_timer *out)
{
	if (x->ndeadlines == 0)
		return false;
	*out = x->deadlines[0];
	return true;
}

void broker_deadline_pop(broker_index *x)
{
	timers_pop(x->deadlines, &x->ndeadlines);
}

/* ---- stale plain entries: a sorted array (cancels are rare) ---- */

/* The index of the first entry not below id. */
static size_t stale_at(const broker_index *x, uint64_t id)
{
	size_t lo = 0, hi = x->nstale;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->stale[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int broker_stale_add(broker_index *x, uint64_t id)
{
	size_t i = stale_at(x, id);
	if (i < x->nstale && x->stale[i] == id)
		return NQ_OK;
	if (NQI_GROW(x->stale, x->capstale, x->nstale + 1, 64) != 0)
		return NQ_ENOMEM;
	memmove(
	    &x->stale[i + 1], &x->stale[i], (x->nstale - i) * sizeof *x->stale);
	x->stale[i] = id;
	x->nstale++;
	return NQ_OK;
}

bool broker_stale_take(broker_index *x, uint64_t id)
{
	if (x->nstale == 0)
		return false;
	size_t i = stale_at(x, id);
	if (i == x->nstale || x->stale[i] != id)
		return false;
	memmove(&x->stale[i], &x->stale[i + 1],
	    (x->nstale - i - 1) * sizeof *x->stale);
	x->nstale--;
	return true;
}

/* ---- lease table: dense array + open-addressing slots ---- */

/* The group of lease l while its queue counts leases per group. */
static broker_group *lease_group(broker_index *x, const broker_lease *l)
{
	if (x->ngrouped == 0 || l->queue >= x->nqueues)
		return NULL;
	broker_gate *g = &x->queues[l->queue].gate;
	return g->grouped && l->group < g->ngroups ? &g->groups[l->group]
	                                           : NULL;
}

static size_t slot_of(const broker_index *x, uint64_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (x->nslots - 1);
}

/* Returns the slot holding id, or the empty slot where it would go. */
static size_t slot_find(const broker_index *x, uint64_t id)
{
	size_t s = slot_of(x, id);
	while (x->lease_slots[s] && x->leases[x->lease_slots[s] - 1].id != id)
		s = (s + 1) & (x->nslots - 1);
	return s;
}

static int slots_rebuild(broker_index *x, size_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof *slots);
	if (!slots)
		return NQ_ENOMEM;
	free(x->lease_slots);
	x->lease_slots = slots;
	x->nslots = nslots;
	for (size_t i = 0; i < x->nleases; i++)
		x->lease_slots[slot_find(x, x->leases[i].id)] = (uint32_t)i + 1;
	return NQ_OK;
}

int broker_lease_put(broker_index *x, const broker_lease *l)
{
	broker_lease *cur = broker_lease_find(x, l->id);
	if (cur) {
		*cur = *l;
		return NQ_OK;
	}
	if ((x->nleases + 1) * 2 > x->nslots &&
	    slots_rebuild(x, x->nslots * 2) != 0)
		return NQ_ENOMEM;
	if (NQI_GROW(x->leases, x->capleases, x->nleases + 1, 64) != 0)
		return NQ_ENOMEM;
	x->leases[x->nleases++] = *l;
	x->lease_slots[slot_find(x, l->id)] = (uint32_t)x->nleases;
	broker_group *gr = lease_group(x, l);
	if (gr)
		gr->leased++;
	return NQ_OK;
}

broker_lease *broker_lease_find(broker_index *x, uint64_t id)
{
	uint32_t v = x->lease_slots[slot_find(x, id)];
	return v ? &x->leases[v - 1] : NULL;
}

/* Empties slot s, shifting later entries of its cluster back so that
 * lookups never stop early at the hole. */
static void slot_clear(broker_index *x, size_t s)
{
	size_t mask = x->nslots - 1, i = s, j = s;
	x->lease_slots[i] = 0;
	for (;;) {
		j = (j + 1) & mask;
		uint32_t v = x->lease_slots[j];
		if (!v)
			break;
		size_t k = slot_of(x, x->leases[v - 1].id);
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		x->lease_slots[i] = v;
		x->lease_slots[j] = 0;
		i = j;
	}
}

void broker_lease_del(broker_index *x, uint64_t id)
{
	size_t s = slot_find(x, id);
	uint32_t v = x->lease_slots[s];
	if (!v)
		return;
	slot_clear(x, s);
	size_t i = v - 1, last = x->nleases - 1;
	broker_group *gr = lease_group(x, &x->leases[i]);
	if (gr && gr->leased)
		gr->leased--;
	if (i != last) {
		x->leases[i] = x->leases[last];
		x->lease_slots[slot_find(x, x->leases[i].id)] = (uint32_t)i + 1;
	}
	x->nleases--;
}
