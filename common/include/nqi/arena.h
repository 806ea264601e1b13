/*
 * Bump allocators for memory that dies all at once: the scratch of one
 * broker group, or everything protobuf-c unpacks for one message. One
 * malloc per block instead of one per field, and one free for the lot.
 */
#ifndef NQI_ARENA_H
#define NQI_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct nqi_arena_block nqi_arena_block;

typedef struct nqi_arena {
	nqi_arena_block *head; /* first block; the list runs in order of use */
	nqi_arena_block *cur;  /* the block allocations come from now */
	size_t block;          /* size of the next new block */
	size_t keep;           /* bytes of blocks a reset keeps for reuse */
	ProtobufCAllocator pb; /* allocates from the arena; free is a no-op */
} nqi_arena;

/* An arena in caller memory: blocks of block_size bytes (growing for
 * larger requests), of which reset keeps up to keep bytes. */
void nqi_arena_init(nqi_arena *a, size_t block_size, size_t keep);
/* NULL only when memory is exhausted. Aligned for any type. */
void *nqi_arena_alloc(nqi_arena *a, size_t len);
/* nqi_arena_alloc, zeroed. */
void *nqi_arena_zalloc(nqi_arena *a, size_t len);
char *nqi_arena_strdup(nqi_arena *a, const char *s);
/* Forgets every allocation; keeps blocks up to the keep limit. */
void nqi_arena_reset(nqi_arena *a);
/* Frees every block; the arena can be used again after init. */
void nqi_arena_fini(nqi_arena *a);

/* An arena that lives in its own first block, for one decoded message:
 * size_hint is what it will likely need. NULL when out of memory. */
nqi_arena *nqi_arena_new(size_t size_hint);
/* Frees the arena made by nqi_arena_new and all its allocations. */
void nqi_arena_free(nqi_arena *a);

#endif
