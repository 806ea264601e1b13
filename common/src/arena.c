#include "nqi/arena.h"

#include <stdlib.h>
#include <string.h>

struct nqi_arena_block {
	nqi_arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

#define ALIGN _Alignof(max_align_t)

static void *pb_alloc(void *data, size_t len)
{
	return nqi_arena_alloc(data, len);
}

static void pb_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* released with the whole arena */
}

void nqi_arena_init(nqi_arena *a, size_t block_size, size_t keep)
{
	a->head = a->cur = NULL;
	a->block = block_size < 256 ? 256 : block_size;
	a->keep = keep;
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
}

static nqi_arena_block *block_new(size_t cap)
{
	nqi_arena_block *blk = malloc(sizeof *blk + cap);
	if (!blk)
		return NULL;
	blk->next = NULL;
	blk->used = 0;
	blk->cap = cap;
	return blk;
}

/* Moves on to a block with room for len: the next kept one when it is
 * large enough, else a new one linked in after the current block. */
static nqi_arena_block *block_with_room(nqi_arena *a, size_t len)
{
	nqi_arena_block *cur = a->cur;
	if (cur && cur->next && cur->next->cap >= len) {
		a->cur = cur->next;
		a->cur->used = 0;
		return a->cur;
	}
	size_t cap = len > a->block ? len : a->block;
	nqi_arena_block *blk = block_new(cap);
	if (!blk)
		return NULL;
	/* Each new block doubles the next one, up to 1 MiB: a message of
	 * any size takes few blocks. */
	if (a->block < ((size_t)1 << 20))
		a->block *= 2;
	if (cur) {
		blk->next = cur->next;
		cur->next = blk;
	} else {
		a->head = blk;
	}
	a->cur = blk;
	return blk;
}

void *nqi_arena_alloc(nqi_arena *a, size_t len)
{
	len = len ? (len + ALIGN - 1) / ALIGN * ALIGN : ALIGN;
	nqi_arena_block *blk = a->cur;
	if (!blk || blk->cap - blk->used < len)
		blk = block_with_room(a, len);
	if (!blk)
		return NULL;
	void *p = (char *)blk->data + blk->used;
	blk->used += len;
	return p;
}

void *nqi_arena_zalloc(nqi_arena *a, size_t len)
{
	void *p = nqi_arena_alloc(a, len);
	if (p)
		memset(p, 0, len);
	return p;
}

char *nqi_arena_strdup(nqi_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = nqi_arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

static void free_from(nqi_arena_block *blk)
{
	while (blk) {
		nqi_arena_block *next = blk->next;
		free(blk);
		blk = next;
	}
}

void nqi_arena_reset(nqi_arena *a)
{
	size_t kept = 0;
	nqi_arena_block **pp = &a->head;
	while (*pp && kept + (*pp)->cap <= a->keep) {
		kept += (*pp)->cap;
		(*pp)->used = 0;
		pp = &(*pp)->next;
	}
	free_from(*pp);
	*pp = NULL;
	a->cur = a->head;
}

void nqi_arena_fini(nqi_arena *a)
{
	free_from(a->head);
	a->head = a->cur = NULL;
}

nqi_arena *nqi_arena_new(size_t size_hint)
{
	size_t self = (sizeof(nqi_arena) + ALIGN - 1) / ALIGN * ALIGN;
	size_t cap = self + (size_hint < 1024 ? 1024 : size_hint);
	nqi_arena_block *blk = block_new(cap);
	if (!blk)
		return NULL;
	nqi_arena *a = (nqi_arena *)blk->data;
	nqi_arena_init(a, cap, 0);
	blk->used = self;
	a->head = a->cur = blk;
	return a;
}

void nqi_arena_free(nqi_arena *a)
{
	if (a)
		free_from(a->head); /* a lives in the first block */
}
