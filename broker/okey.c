/* Ordering keys: at most one job of a key in flight. A job whose key is
 * busy waits in that key's own heap and goes back to its queue's ready heap
 * when the job in flight ends. Keys are tracked by a 64-bit hash of queue
 * and key; a collision only serializes two keys, it never runs two jobs of
 * one key at once. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nq/nq.h"

struct broker_okey {
	uint64_t hash;
	bool busy;
	uint32_t queue;
	broker_queue blocked; /* only its heap is used */
};

uint64_t broker_okey_hash(const char *queue, const char *key)
{
	/* FNV-1a over "queue\0key"; 0 is kept for "no key". */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = queue; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ 0) * 0x100000001b3ull;
	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return h ? h : 1;
}

static broker_okey *okey_find(broker_index *x, uint64_t hash)
{
	for (size_t i = 0; i < x->nokeys; i++)
		if (x->okeys[i].hash == hash)
			return &x->okeys[i];
	return NULL;
}

static broker_okey *okey_get(broker_index *x, uint64_t hash)
{
	broker_okey *k = okey_find(x, hash);
	if (k)
		return k;
	if (NQI_GROW(x->okeys, x->capokeys, x->nokeys + 1, 16) != 0)
		return NULL;
	k = &x->okeys[x->nokeys++];
	memset(k, 0, sizeof *k);
	k->hash = hash;
	return k;
}

static void okey_drop_if_idle(broker_index *x, broker_okey *k)
{
	if (k->busy || k->blocked.nheap > 0)
		return;
	free(k->blocked.heap);
	*k = x->okeys[--x->nokeys];
}

bool broker_okey_busy(broker_index *x, uint64_t hash)
{
	broker_okey *k = hash ? okey_find(x, hash) : NULL;
	return k && k->busy;
}

int broker_okey_block(
    broker_index *x, uint64_t hash, uint32_t queue, const broker_ready *e)
{
	broker_okey *k = okey_get(x, hash);
	if (!k)
		return NQ_ENOMEM;
	k->queue = queue;
	return broker_ready_push(&k->blocked, e->priority, e->id, e->flags);
}

int broker_okey_take(broker_index *x, uint64_t hash)
{
	broker_okey *k = hash ? okey_get(x, hash) : NULL;
	if (hash && !k)
		return NQ_ENOMEM;
	if (k)
		k->busy = true;
	return NQ_OK;
}

int broker_okey_next(broker_index *x, uint64_t hash)
{
	broker_okey *k = hash ? okey_find(x, hash) : NULL;
	broker_ready e;
	if (!k || k->busy)
		return NQ_OK;
	if (broker_ready_peek(&k->blocked, &e)) {
		broker_ready_pop(&k->blocked);
		int rv = broker_ready_push(
		    &x->queues[k->queue], e.priority, e.id, e.flags);
		if (rv != 0)
			return rv;
	}
	okey_drop_if_idle(x, k);
	return NQ_OK;
}

int broker_okey_release(broker_index *x, uint64_t hash)
{
	broker_okey *k = hash ? okey_find(x, hash) : NULL;
	if (!k)
		return NQ_OK;
	k->busy = false;
	return broker_okey_next(x, hash);
}

void broker_okeys_clear(broker_index *x)
{
	for (size_t i = 0; i < x->nokeys; i++)
		free(x->okeys[i].blocked.heap);
	x->nokeys = 0;
}
