/*
 * LMDB store shared by the broker and nq-dlq: one environment under the data
 * directory, named databases, a schema-version key.
 *
 * Schema rule: records are protobuf (fields only ever added), so the schema
 * version changes only when the key layout changes. A store written by a
 * newer schema is refused. When a version 2 appears, an older store is
 * migrated at open, in one transaction, by one function per version step;
 * version 1 is the first, so there is nothing to migrate yet.
 */
#ifndef NQI_STORE_H
#define NQI_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nqi_store nqi_store;

/* A named database of the store, and where its handle goes once the store
 * is open (NULL: ask nqi_store_dbi for it by its index). */
typedef struct nqi_store_db {
	const char *name;
	MDB_dbi *handle;
} nqi_store_db;

typedef struct nqi_store_opts {
	const char *dir;
	bool sync;         /* fsync every commit (--sync=always) */
	uint64_t map_size; /* bytes; the store cannot grow past it */
	/* the databases to open or create, up to one whose name is NULL */
	const nqi_store_db *dbs;
	uint32_t schema_version;
} nqi_store_opts;

/* Opens or creates the store (and the directory). err names what failed. */
int nqi_store_open(
    nqi_store **out, const nqi_store_opts *opts, char *err, size_t errlen);
void nqi_store_close(nqi_store *s);
MDB_dbi nqi_store_dbi(nqi_store *s, size_t index);

int nqi_store_begin(nqi_store *s, bool write, MDB_txn **txn);
/* Commits (fsync'd with sync on). On failure the transaction is gone and
 * the error is returned. Fault-injection seams let tests reach that path:
 * NQ_FAULT_COMMIT_FAIL=N in the environment fails every commit after the
 * Nth; NQ_FAULT_COMMIT_FILE=PATH fails commits while PATH exists, as a
 * full disk would, and lets them work again once it is gone. */
int nqi_store_commit(nqi_store *s, MDB_txn *txn);
/*
 * Whether the store can grow by NQI_STORE_PROBE_BYTES: the map has room
 * for them and the file system can allocate them to the store's file
 * (allocated and given back at once: the probe keeps no space). A commit
 * that succeeds proves little on a full disk: LMDB reuses the pages it
 * freed, which need no new blocks. NQ_OK, or NQ_ESTORE. Call it between
 * write transactions, from the thread that writes.
 */
#define NQI_STORE_PROBE_BYTES (256u << 10)
int nqi_store_probe(nqi_store *s);
/* Commits so far, failed ones not counted. */
uint64_t nqi_store_commits(const nqi_store *s);
/* Commits that failed so far (each one failed every write of its group). */
uint64_t nqi_store_commit_failures(const nqi_store *s);

/*
 * Drops this process's mapping of the store's pages (MADV_DONTNEED) when
 * more than min_bytes are in use; the kernel keeps them in its page cache
 * and maps them again on the next read. Keeps the resident size of a
 * service that has walked a large store from growing with the store:
 * payloads stay on disk, not in the process. Returns bytes released.
 */
uint64_t nqi_store_trim(nqi_store *s, uint64_t min_bytes);

/* Maps an LMDB or errno code to an nq error. */
int nqi_store_err(int mdb_rc);

/* Big-endian u64 keys, so LMDB's byte order is numeric order. Inline:
 * every job's keys go through them several times per group. */
static inline void nqi_be64_put(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

static inline uint64_t nqi_be64_get(const uint8_t in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | in[i];
	return v;
}

#endif
