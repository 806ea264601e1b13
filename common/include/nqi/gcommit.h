/*
 * Group commit, shared by nq-broker and nq-dlq: the core thread that owns
 * every write of a store. Other threads post ops; the core takes all ops
 * queued since its last group, applies them in one write transaction,
 * commits once (fsync'd when the store syncs) and only then lets the daemon
 * reply. A failed commit fails every op of its group, turns readiness
 * false and is logged (NQ-COMMIT-FAILED); it turns true again
 * (NQ-COMMIT-RECOVERED) only with a commit that works and a store that
 * shows room to grow (nqi_store_probe), since on a full disk small commits
 * still work now and then. Durability is never dropped quietly.
 *
 * Ops are the daemon's own structs, linked through their own next pointer
 * (next_off): posting allocates nothing. What differs between the daemons
 * is in the hooks, each called once per stage of a group, except apply_cb,
 * which is called once per op.
 */
#ifndef NQI_GCOMMIT_H
#define NQI_GCOMMIT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/prom.h"
#include "nqi/store.h"

/* Every hook gets the daemon's ctx. All run on the core thread (or on the
 * thread that calls nqi_gcommit_run). */
typedef struct nqi_gcommit_hooks {
	/* Applies one op in the group's transaction and takes it (the daemon
	 * keeps it until end_cb). An error fails the whole group: the ops
	 * after this one are not applied. */
	int (*apply_cb)(void *ctx, void *op);
	/* The group's own writes after its ops (sweeps, retention); NULL:
	 * none. An error fails the group. */
	int (*group_cb)(void *ctx);
	/* Writes what every commit carries, just before it. probe: nothing
	 * else was written, the commit only tests the store (it is not
	 * ready); its failure fails no op. NULL: nothing. An error fails the
	 * group (unless probe). */
	int (*seal_cb)(void *ctx, bool probe);
	/* The group is over: committed (err 0) or failed (err; readiness is
	 * already false). rest: the ops apply_cb never saw (only when err).
	 * Replies go out here, after the commit, for every op of the group. */
	void (*end_cb)(void *ctx, void *rest, int err);
	/* How long the core may sleep without ops: until its next timer. */
	uint64_t (*wait_ms_cb)(void *ctx);
	/* After every wake-up, with the ops taken (NULL: none), which it may
	 * change (ops held over from an earlier group go first). Returns
	 * whether a group runs now. stopping: the core is about to end. */
	bool (*due_cb)(void *ctx, void **ops, bool stopping);
	/* Once, after the last group: answers whatever is still held. NULL:
	 * nothing. */
	void (*stopped_cb)(void *ctx);
} nqi_gcommit_hooks;

/* The stages of a group that the core's time is counted in; the rest of
 * it is spent waiting for ops. */
typedef enum nqi_gcommit_stage {
	NQI_GCOMMIT_APPLY,  /* the ops and the group's own writes */
	NQI_GCOMMIT_COMMIT, /* the commit, its fsync included */
	NQI_GCOMMIT_REPLY,  /* end_cb: the replies */
	NQI_GCOMMIT_STAGES
} nqi_gcommit_stage;

typedef struct nqi_gcommit {
	/* Set by the daemon before the first post or group: its state that
	 * the engine works on. */
	const nqi_gcommit_hooks *hooks;
	void *ctx;           /* passed to every hook */
	size_t next_off;     /* offsetof(the op struct, its next pointer) */
	nqi_store **store;   /* where the daemon keeps its open store */
	pthread_mutex_t *mu; /* guards the queue (the daemon may guard more) */
	pthread_cond_t *cv;  /* wakes the core; on the default clock */
	MDB_txn **txn;       /* the group's transaction while open, else NULL */
	bool *dirty;         /* set by the daemon's writers: the group wrote */
	atomic_bool *ready;  /* the last commit succeeded (/readyz) */

	/* the queue, under *mu */
	void *head, *tail;
	bool stopping; /* the core runs what is queued, then ends */
	bool closed;   /* the core took its last ops; posts are refused */

	/* the controlling thread's */
	pthread_t thread;
	bool running;

	/* ns the core spent in each stage; written by the core only, read
	 * from any thread */
	_Atomic uint64_t stage_ns[NQI_GCOMMIT_STAGES];
} nqi_gcommit;

/* The engine of daemon struct *d, whose state shared with it has the
 * usual names (store, mu, cv, txn, dirty, ready), with ops of type op_type
 * linked by their next field. hooks: static storage; every hook's type
 * differs, so a positional initializer of them is checked. */
#define NQI_GCOMMIT_OF(d, op_type, hooks_)                                     \
	((nqi_gcommit){.hooks = (hooks_),                                      \
	    .ctx = (d),                                                        \
	    .next_off = offsetof(op_type, next),                               \
	    .store = &(d)->store,                                              \
	    .mu = &(d)->mu,                                                    \
	    .cv = &(d)->cv,                                                    \
	    .txn = &(d)->txn,                                                  \
	    .dirty = &(d)->dirty,                                              \
	    .ready = &(d)->ready})

/* Queues op for the core's next group; takes ownership. Safe from any
 * thread. NQ_ECLOSED when the core has ended: op stays the caller's. */
int nqi_gcommit_post(nqi_gcommit *g, void *op);
/* Whether ops wait for the next group. Safe from any thread. */
bool nqi_gcommit_pending(nqi_gcommit *g);
/* Runs one group of ops (a list; NULL: none) on the calling thread: the
 * core calls it, and a daemon without a core thread may. */
void nqi_gcommit_run(nqi_gcommit *g, void *ops);
/* The family name (a counter, in seconds, labelled stage="apply",
 * "commit" or "reply") of the time g's core spent in each stage: how busy
 * the core is, and with what. Safe from any thread. */
int nqi_gcommit_prom(nqi_prom *p, const nqi_gcommit *g, const char *name);
/* Starts the core thread: 0, or NQ_ENOMEM. */
int nqi_gcommit_start(nqi_gcommit *g);
/* Ends the core after the group in flight: ops queued by then still run
 * (their commit completes, their replies go out), later posts are
 * refused. Blocks until the core thread has ended; no-op if not running. */
void nqi_gcommit_stop(nqi_gcommit *g);

#endif
