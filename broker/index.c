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
		free(x->queues[i].heap);
		nqi_prom_hist_free(x->queues[i].latency);
		nqi_prom_hist_free(x->queues[i].latency_group);
	}
	free(x->queues);
	free(x->timers);
	free(x->leases);
	free(x->lease_slots);
	free(x->stale);
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
	default:
		return NULL;
	}
}

/* ---- ready heap: max by priority, then min by id ---- */

static bool ready_before(const broker_ready *a, const broker_ready *b)
{
	return a->priority != b->priority ? a->priority > b->priority
	                                  : a->id < b->id;
}

int broker_ready_push(
    broker_queue *q, int32_t priority, uint64_t id, uint32_t flags)
{
	if (NQI_GROW(q->heap, q->capheap, q->nheap + 1, 64) != 0)
		return NQ_ENOMEM;
	size_t i = q->nheap++;
	broker_ready e = {priority, flags, id};
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!ready_before(&e, &q->heap[parent]))
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = e;
	return NQ_OK;
}

bool broker_ready_peek(const broker_queue *q, broker_ready *out)
{
	if (q->nheap == 0)
		return false;
	*out = q->heap[0];
	return true;
}

void broker_ready_pop(broker_queue *q)
{
	if (q->nheap == 0)
		return;
	broker_ready last = q->heap[--q->nheap];
	size_t i = 0, n = q->nheap;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		const broker_ready *cur = best == i ? &last : &q->heap[best];
		if (l < n && ready_before(&q->heap[l], cur))
			best = l;
		cur = best == i ? &last : &q->heap[best];
		if (r < n && ready_before(&q->heap[r], cur))
			best = r;
		if (best == i)
			break;
		q->heap[i] = q->heap[best];
		i = best;
	}
	if (n > 0)
		q->heap[i] = last;
}

/* ---- timer heap: min by run_at, then id ---- */

static bool timer_before(const broker_timer *a, const broker_timer *b)
{
	return a->run_at_us != b->run_at_us ? a->run_at_us < b->run_at_us
	                                    : a->id < b->id;
}

int broker_timer_push(broker_index *x, const broker_timer *t)
{
	if (NQI_GROW(x->timers, x->captimers, x->ntimers + 1, 64) != 0)
		return NQ_ENOMEM;
	size_t i = x->ntimers++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(t, &x->timers[parent]))
			break;
		x->timers[i] = x->timers[parent];
		i = parent;
	}
	x->timers[i] = *t;
	return NQ_OK;
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
	if (x->ntimers == 0)
		return;
	broker_timer last = x->timers[--x->ntimers];
	size_t i = 0, n = x->ntimers;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		const broker_timer *cur = &last;
		if (l < n && timer_before(&x->timers[l], cur)) {
			best = l;
			cur = &x->timers[l];
		}
		if (r < n && timer_before(&x->timers[r], cur))
			best = r;
		if (best == i)
			break;
		x->timers[i] = x->timers[best];
		i = best;
	}
	if (n > 0)
		x->timers[i] = last;
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
	if (i != last) {
		x->leases[i] = x->leases[last];
		x->lease_slots[slot_find(x, x->leases[i].id)] = (uint32_t)i + 1;
	}
	x->nleases--;
}
