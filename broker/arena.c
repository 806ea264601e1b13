#include <stdlib.h>
#include <string.h>

#include "broker.h"

#define ARENA_BLOCK (256 * 1024)

struct broker_arena_block {
	broker_arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

static void *pb_alloc(void *data, size_t len)
{
	return broker_arena_alloc(data, len);
}

static void pb_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* released with the whole arena */
}

void broker_arena_init(broker_arena *a)
{
	a->head = NULL;
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
}

static broker_arena_block *block_new(size_t min)
{
	size_t cap = min > ARENA_BLOCK ? min : ARENA_BLOCK;
	broker_arena_block *blk = malloc(sizeof *blk + cap);
	if (!blk)
		return NULL;
	blk->next = NULL;
	blk->used = 0;
	blk->cap = cap;
	return blk;
}

/* Returns NULL only when memory is exhausted; callers treat that as
 * NQ_ENOMEM for the request at hand. */
void *broker_arena_alloc(broker_arena *a, size_t len)
{
	size_t align = sizeof(max_align_t);
	len = (len + align - 1) / align * align;
	if (len == 0)
		len = align;
	broker_arena_block *blk = a->head;
	if (!blk || blk->cap - blk->used < len) {
		blk = block_new(len);
		if (!blk)
			return NULL;
		blk->next = a->head;
		a->head = blk;
	}
	void *p = (char *)blk->data + blk->used;
	blk->used += len;
	return p;
}

char *broker_arena_strdup(broker_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = broker_arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void broker_arena_reset(broker_arena *a)
{
	broker_arena_block *blk = a->head;
	if (!blk)
		return;
	/* Keep the oldest block of ordinary size for the next group. */
	while (blk->next) {
		broker_arena_block *next = blk->next;
		free(blk);
		blk = next;
	}
	if (blk->cap > ARENA_BLOCK) {
		free(blk);
		blk = NULL;
	} else {
		blk->used = 0;
	}
	a->head = blk;
}

void broker_arena_fini(broker_arena *a)
{
	broker_arena_reset(a);
	free(a->head);
	a->head = NULL;
}
