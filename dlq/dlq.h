/*
 * nq-dlq internals. The dead-letter service keeps the jobs that failed for
 * good in its own LMDB store and serves one REP socket:
 *
 *   - the broker hands dead jobs over with DlqIngestRequest batches;
 *   - operators list, show, replay, purge and count them.
 *
 * Threads:
 *   - NNG's threads decode requests (net.c) and answer the read-only ones
 *     (list, show, stats) at once from a read transaction;
 *   - the core thread (core.c) owns every store write: it takes all write
 *     ops queued since its last group, applies them in one transaction,
 *     applies retention, commits once (fsync'd with --sync=always) and only
 *     then replies. No other thread writes;
 *   - the replay thread (replay.c) re-enqueues entries at the broker with
 *     libnq, one replay request at a time, and asks the core to remove the
 *     entries the broker confirmed.
 */
#ifndef DLQ_H
#define DLQ_H

#include <lmdb.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/auth.h"
#include "nqi/codec.h"
#include "nqi/gcommit.h"
#include "nqi/http.h"
#include "nqi/http_api.h"
#include "nqi/opts.h"
#include "nqi/store.h"
#include "nqi/util.h"

typedef struct dlq dlq;
typedef struct nqi_rep nqi_rep;
typedef struct nqi_rep_ctx dlq_conn; /* one REP context (common/rep.c) */

typedef struct dlq_config {
	const char *listen_url;
	const char *broker_url;
	const char *brokers; /* a shard map: replays go to each queue's shard */
	const char *data_dir;
	const char *sync;         /* "always" | "none" */
	const char *http_addr;    /* "" or "none": no HTTP endpoint */
	int http_max_connections; /* 0: the default of nqi/http.h */
	uint64_t http_timeout_ms;
	const char *token_file; /* token for replay's calls to the broker */
	/* role token lists (a file, or env:NAME); none: open */
	const char *producer_tokens;
	const char *worker_tokens;
	const char *admin_tokens;
	/* TLS: this service's certificate for tls+tcp:// and https; with
	 * tls_ca clients must present one it signed, and replay verifies
	 * the broker with it */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
	const char *log_level;
	const char *log_format;
	const char *config_file;
	const char *ready_file;    /* written once every socket is bound */
	nqi_strlist config_values; /* copies of what the config file set */
	uint64_t retention_count;  /* entries kept per queue; 0: no limit */
	uint64_t retention_age_ms; /* by dead time; 0: no limit */
	uint64_t retention_check_ms;
	uint64_t broker_timeout_ms; /* per enqueue request of a replay */
	uint64_t map_size;          /* bytes the store may grow to */
	uint64_t max_message;       /* largest request taken, bytes */
	int contexts;               /* requests served at once */
	int max_connections;        /* of the listening socket */
	uint64_t recv_budget;       /* bytes: connections x max_message */
	uint64_t conn_idle_ms;      /* 0: idle connections stay */
} dlq_config;

/* ---- scratch memory of one op (an nqi_arena), freed with it ---- */

#define DLQ_MEM_BLOCK 4096

/* ---- ops ---- */

typedef enum dlq_op_kind {
	DLQ_OP_REQUEST,  /* from the REP socket; its reply goes back on conn */
	DLQ_OP_REPLAYED, /* from the replay thread: drop confirmed entries */
} dlq_op_kind;

typedef struct dlq_op {
	dlq_op_kind kind;
	Nq__V1__Request *req; /* owned; free_unpacked with the op */
	dlq_conn *conn;
	/* HTTP (http_api.c): instead of conn, the reply (owned by
	 * reply_fn; NULL: none) goes here */
	void (*reply_fn)(void *arg, nng_msg *msg);
	void *reply_arg;
	Nq__V1__Reply reply; /* its parts live in mem */
	nqi_arena mem;       /* everything the reply points at */
	/* purge --all: entries removed by earlier groups; more: the handler
	 * wants another group (the purge is bounded per commit) */
	uint64_t progress;
	uint64_t cutoff_us; /* purge --older-than: dead before this */
	bool more;
	/* DLQ_OP_REPLAYED: the ids to remove, and the outcome the replay
	 * thread waits for (rv set and done true after the commit) */
	const uint64_t *ids;
	size_t nids;
	int rv;
	bool done;
	struct dlq_op *next;
} dlq_op;

/* Allocates an op with an empty reply; NULL when out of memory. */
dlq_op *dlq_op_alloc(dlq_op_kind kind);
/* Frees the op, its request and its scratch memory; NULL is fine. */
void dlq_op_free(dlq_op *op);
/* A status in the op's memory with the code of err and msg made text
 * (nqi_text_repair: a message cut inside a character ends in U+FFFD);
 * NULL when out of memory. */
Nq__V1__Status *dlq_status_new(dlq_op *op, int err, const char *msg);
/* Sets the op's reply status, message printf-style (as dlq_status_new),
 * in the op's memory. */
void dlq_op_status(dlq_op *op, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True when the op's reply carries an error status. */
bool dlq_op_failed(const dlq_op *op);

/* A handler of one request kind. Read handlers run on NNG's threads with
 * no transaction open; write handlers on the core with d->txn open (an
 * error return fails the whole group: nothing of it is committed); the
 * replay handler on the replay thread. Request errors go into the reply
 * status and return 0. */
typedef int (*dlq_handler_fn)(dlq *d, dlq_op *op);

/* ---- the service ---- */

/* Per-queue prunes of one group, logged after its commit. */
typedef struct dlq_prune {
	char queue[NQI_NAME_MAX + 1];
	const char *why; /* "count" | "age" */
	uint64_t n;
} dlq_prune;

struct dlq {
	dlq_config cfg;
	nqi_auth *auth; /* who may make which request */
	nqi_store *store;
	MDB_dbi db_entries, db_time, db_queue, db_counts, db_meta;
	uint64_t started_ms;

	/* incoming write ops, filled by other threads: the group commit's
	 * queue (core.c), under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* wakes the core */
	pthread_cond_t done_cv; /* a DLQ_OP_REPLAYED op is done */
	nqi_gcommit gc;
	atomic_bool ready; /* the last commit succeeded */

	/* owned by the core thread */
	MDB_txn *txn;
	bool dirty;
	dlq_op *group, **group_tail; /* the ops of the group, in order */
	dlq_op *carry;               /* ops that asked for another group */
	bool retention_full;         /* this group runs a full retention pass */
	char (*touched)[NQI_NAME_MAX + 1]; /* queues ingested into */
	size_t ntouched, captouched;
	dlq_prune *prunes;
	size_t nprunes, capprunes;
	uint64_t group_ingested, group_duplicates, group_purged, group_replayed;
	uint64_t next_retention_ms;
	bool retention_more; /* the last pass stopped at its budget */

	/* counters since start, for /metrics */
	atomic_uint_fast64_t ingested_total, duplicate_total, replayed_total,
	    purged_total, pruned_count_total, pruned_age_total, commits_total;

	/* replay thread */
	pthread_t replay;
	bool replay_running;
	pthread_cond_t replay_cv;
	dlq_op *rp_head, *rp_tail;
	bool replay_stopping;
	nq_client *broker;
	char *token;

	/* network */
	nng_socket sock;
	bool sock_open;
	nqi_rep *rep;
	atomic_bool net_stopping;
	nqi_http *http;
	nqi_api api; /* the JSON API's routes (http_api.c) */
};

/* core.c */
int dlq_core_start(dlq *d);
/* Applies what is queued, commits, replies, and ends the core thread. */
void dlq_core_stop(dlq *d);
/* Hands a write op to the core; takes ownership. Safe from any thread.
 * After the core stopped the op is answered UNAVAILABLE at once. */
void dlq_post(dlq *d, dlq_op *op);
/* Sends op's reply (or, for an internal op, wakes its waiter). Takes
 * ownership of a request op. */
void dlq_finish(dlq *d, dlq_op *op);
/* Records n entries of queue removed by retention in this group. */
int dlq_note_prune(dlq *d, const char *queue, const char *why, uint64_t n);

/* write.c: handlers run by the core */
int dlq_on_ingest(dlq *d, dlq_op *op);
int dlq_on_purge(dlq *d, dlq_op *op);
int dlq_on_replayed(dlq *d, dlq_op *op);
/* Retention: count limits of the queues ingested into (all queues when
 * full), then the age limit when full. Bounded per call; sets
 * d->retention_more when work is left. */
int dlq_retention(dlq *d, bool full);

/* read.c: handlers run on NNG's threads */
int dlq_on_list(dlq *d, dlq_op *op);
int dlq_on_show(dlq *d, dlq_op *op);
int dlq_on_stats(dlq *d, dlq_op *op);

/* replay.c */
/* Where replays go, for messages: the shard map, or --broker. */
const char *dlq_broker_where(const dlq_config *c);
int dlq_replay_start(dlq *d, char *err, size_t errlen);
void dlq_replay_stop(dlq *d);
/* Queues a replay request; takes ownership. */
void dlq_replay_post(dlq *d, dlq_op *op);
int dlq_on_replay(dlq *d, dlq_op *op);

/* net.c */
int dlq_net_open(dlq *d, char *err, size_t errlen);
/* New requests are answered UNAVAILABLE from now on. */
void dlq_net_quiesce(dlq *d);
void dlq_net_close(dlq *d);
/* Packs and sends a reply on the connection; takes ownership of the op. */
void dlq_conn_reply(dlq_conn *c, dlq_op *op);

/* metrics.c */
int dlq_http_start(dlq *d, char *err, size_t errlen);

/* ---- http_api.c, net.c: the JSON API ---- */

/* Serves a request that came over HTTP as one from the socket; the reply
 * (or NULL) goes to fn, from whichever thread answers it. */
void dlq_request_in(dlq *d, const void *buf, size_t len,
    void (*fn)(void *arg, nng_msg *msg), void *arg);
/* The API's part of the HTTP options. */
void dlq_api_opts(dlq *d, nqi_http_opts *o);
void dlq_http_stop(dlq *d);

/* ---- store.c: the record layout ----
 *
 * entries  id (8 bytes, big-endian)            -> DeadJob, complete
 * time     dead_at_us (8) | id (8)             -> DeadJob summary: no
 *                                                 payload, no result, the
 *                                                 last attempt's error only
 * queue    queue | 0x00 | dead_at_us (8) | id  -> empty
 * counts   queue | 0x00 | reason               -> count (8, big-endian)
 * meta     "schema_version", "probe", "strings_text" (every entry's
 *          strings are text: the repair at open ran, store.c)
 *
 * "time" orders entries by dead time for newest-first listing, paging and
 * age retention; "queue" finds the oldest entries of one queue for count
 * retention; "counts" answers stats, metrics and per-queue totals without
 * a scan. Every write keeps the four in step in one transaction.
 */

#define DLQ_STORE_SCHEMA 1

/* Opens the store; the first time this nq-dlq opens a store, it also
 * makes the strings of entries an older nq-dlq stored text (store.c),
 * in one commit. err names what failed. */
int dlq_store_open(dlq *d, char *err, size_t errlen);

/* Reads an entry; *out is allocated with a (NULL: protobuf-c's default,
 * free with nq__v1__dead_job__free_unpacked). NQ_ENOTFOUND when absent,
 * NQ_ESTORE when the record does not decode. */
int dlq_store_get(dlq *d, MDB_txn *txn, uint64_t id, ProtobufCAllocator *a,
    Nq__V1__DeadJob **out);
bool dlq_store_has(dlq *d, MDB_txn *txn, uint64_t id);
/* Stores a new entry (the caller checked that id is free). */
int dlq_store_put(
    dlq *d, MDB_txn *txn, uint64_t id, const Nq__V1__DeadJob *rec);
/* Removes an entry and its index keys; NQ_ENOTFOUND when absent. */
int dlq_store_del(dlq *d, MDB_txn *txn, uint64_t id);

/* Called for each entry a sweep removes. */
typedef void (*dlq_drop_cb)(void *arg, const char *queue);
/*
 * Removes the oldest entries (of queue, or of every queue when NULL) dead
 * before before_us, at most max of them. *n gets how many went; *more
 * whether an entry in range is left.
 */
int dlq_store_drop_oldest(dlq *d, MDB_txn *txn, const char *queue,
    uint64_t before_us, uint64_t max, dlq_drop_cb cb, void *arg, uint64_t *n,
    bool *more);
/* Entries of one queue (every reason). */
int dlq_store_queue_count(dlq *d, MDB_txn *txn, const char *queue, uint64_t *n);

/* Called for each (queue, reason) count. */
typedef int (*dlq_count_cb)(
    void *arg, const char *queue, const char *reason, uint64_t n);
int dlq_store_counts(dlq *d, MDB_txn *txn, dlq_count_cb cb, void *arg);
/* Writes a heartbeat key, so that a commit tests the disk. */
int dlq_store_probe(dlq *d, MDB_txn *txn);

/* Index walk, newest first: positions before the key (dead_at, id), or
 * at the newest entry when from_end. */
typedef struct dlq_walk {
	MDB_cursor *cur;
	const char *queue; /* walking the queue index; NULL: the time index */
	size_t qlen;
	bool started;
	bool from_end;
	uint8_t anchor[NQI_NAME_MAX + 1 + 16];
	size_t anchor_len;
} dlq_walk;

int dlq_walk_open(dlq *d, MDB_txn *txn, const char *queue, bool from_end,
    uint64_t dead_at_us, uint64_t id, dlq_walk *w);
/* The next older entry: 0 with *dead_at_us and *id, NQ_ENOTFOUND at the
 * end. */
int dlq_walk_prev(dlq_walk *w, uint64_t *dead_at_us, uint64_t *id);
void dlq_walk_close(dlq_walk *w);
/* The summary kept in the time index, allocated with a. */
int dlq_store_summary(dlq *d, MDB_txn *txn, uint64_t dead_at_us, uint64_t id,
    ProtobufCAllocator *a, Nq__V1__DeadJob **out);

/* Oldest-first walk of the time index (or one queue's), from after the
 * key (dead_at, id) or from the start; for replay --all. */
int dlq_store_next_oldest(dlq *d, MDB_txn *txn, const char *queue,
    bool from_start, uint64_t dead_at_us, uint64_t id, uint64_t *out_dead_at,
    uint64_t *out_id);

/* The key of the time index: dead time, then id. */
void dlq_time_key(uint8_t key[16], uint64_t dead_at_us, uint64_t id);

#endif
