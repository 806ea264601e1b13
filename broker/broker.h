/*
 * nq-broker internals. One core thread owns all job state: the in-memory
 * index and every LMDB write. NNG callbacks only decode requests and queue
 * them as ops; the core applies a whole group of ops in one write
 * transaction, commits once (fsync'd with --sync=always), and only then
 * sends the replies. That is the group commit of DESIGN.md.
 */
#ifndef BROKER_H
#define BROKER_H

#include <lmdb.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "nqi/arena.h"
#include "nqi/auth.h"
#include "nqi/codec.h"
#include "nqi/gcommit.h"
#include "nqi/lat.h"
#include "nqi/tls.h"
#include "nqi/http.h"
#include "nqi/prom.h"
#include "nqi/queue_fields.h"
#include "nqi/rep.h"
#include "nqi/opts.h"
#include "nqi/store.h"
#include "nqi/util.h"
#include "policy.h"

typedef struct broker broker;

typedef struct broker_config {
	const char *api_url;
	const char *work_url;
	const char *results_url;
	const char *data_dir;
	const char *sync; /* "always" | "none" */
	const char *log_level;
	const char *log_format;
	const char *config_file;
	const char *queues_config; /* YAML queue policies; "": none */
	const char *ready_file;    /* written once every socket is bound */
	const char *dlq_url;       /* nq-dlq's REP socket; "" hands nothing */
	const char *events_url;    /* PUB socket; "" publishes nothing */
	const char *http_addr;     /* /metrics, /healthz, /readyz; "": none */
	const char *blob_dir;      /* claim check blobs to delete; "": none */
	int http_max_connections;  /* 0: the default of nqi/http.h */
	uint64_t http_timeout_ms;
	const char *producer_tokens, *worker_tokens, *admin_tokens;
	const char *dlq_token_file; /* this broker's token for nq-dlq */
	const char *tls_cert, *tls_key, *tls_ca;
	char *dlq_token;
	nqi_strlist config_values; /* copies of what the config file set */
	uint64_t max_payload;      /* bytes */
	int shard_number;    /* 0-63: job ids are this modulo 64; -1: any */
	uint64_t max_result; /* bytes of a result kept */
	uint64_t map_size;   /* bytes the store may grow to */
	uint64_t result_ttl_ms;
	uint64_t idempotency_window_ms;
	uint64_t backoff_base_ms;
	uint64_t backoff_cap_ms;
	uint64_t default_timeout_ms;
	uint64_t lease_check_ms; /* how often leases and timers are checked */
	uint64_t max_attempts;
	uint64_t max_depth; /* per queue; 0: unlimited */
	int api_contexts;
	int work_contexts;
	int max_parked;            /* per socket: waits or fetches parked */
	int conn_requests;         /* of one connection served at once */
	int conn_backlog;          /* of one connection waiting their turn */
	uint64_t reply_timeout_ms; /* a reply not taken by then is dropped */
	int max_connections;       /* per socket (api, work, results) */
	uint64_t recv_budget;      /* bytes: connections x message limit */
	uint64_t conn_idle_ms;     /* api and work; 0: never closed */
} broker_config;

/* --shard-number: a shard's ids are one class modulo 64. */
#define BROKER_SHARD_NUMBER_MAX 63
/* The longest lease a Fetch or an Extend gets. */
#define BROKER_LEASE_MAX_MS (3600ull * 1000)

/* The group arena: per-group scratch memory, reset after each group. */
#define BROKER_ARENA_BLOCK (256 * 1024)
#define BROKER_ARENA_KEEP (8u << 20)
/* Room for a varint length prefix in front of a kept record copy. */
#define BROKER_RAW_HEADROOM 10

/* ---- ops: one decoded request (or event) waiting for the core ---- */

typedef enum broker_op_kind {
	BROKER_OP_REQUEST,     /* api or work socket; needs a reply */
	BROKER_OP_COMPLETIONS, /* results socket; no reply */
	BROKER_OP_PIPE_GONE, /* a worker connection to the work socket closed */
	BROKER_OP_DLQ_ACKED, /* nq-dlq stored these dead jobs durably */
	BROKER_OP_POLICY,    /* a reloaded queues file (pfile) */
} broker_op_kind;

typedef struct broker_op {
	broker_op_kind kind;
	Nq__V1__Request *req;           /* owned; in arena when set */
	Nq__V1__CompletionBatch *batch; /* owned; in arena when set */
	nqi_arena *arena;               /* holds req or batch; NULL: malloc'd */
	ProtobufCBinaryData *specs;     /* enqueue: each spec packed, or NULL */
	nqi_rep_ctx *conn;              /* where the reply goes */
	uint32_t pipe_id;               /* connection the request came on */
	bool api_pipe;                  /* PIPE_GONE: of the api socket */
	Nq__V1__Reply *reply;           /* built in the group arena */
	uint64_t deadline_ms;           /* parked ops: monotonic deadline */
	uint64_t wait_id;               /* parked wait: the job id */
	bool settled;                   /* finished or parked by its handler */
	uint64_t *ids;                  /* DLQ_ACKED: owned */
	nng_msg **capture;              /* embedded: the reply goes here */
	/* HTTP (http_api.c): the reply (owned by reply_fn; NULL: none) goes
	 * here, on any thread (the core, the reply thread, NNG's) */
	void (*reply_fn)(void *arg, nng_msg *msg);
	void *reply_arg;
	size_t nids;
	nqi_policy_file *pfile; /* POLICY: owned until the core takes it */
	struct broker_op *next;
} broker_op;

/* ---- in-memory index ---- */

/* A waiting job in a queue's ready heap: higher priority first, then the
 * older id. Stale entries (a canceled job) are skipped when popped. */
typedef struct broker_ready {
	int32_t priority;
	uint32_t flags; /* BROKER_READY_*; fills what was padding */
	uint64_t id;
} broker_ready;

/* The job has never started (attempt 0) and has no ordering key and no
 * deadline: a fetch may lease it without decoding its record. */
#define BROKER_READY_PLAIN 1u
/* The job has an idempotency key or a payload_ref (broker_job_keyed). */
#define BROKER_READY_KEYED 2u
/* The rest of flags is the slot of the job's group_key in its queue
 * (broker_group_slot; 0: none), so that a queue that starts or stops
 * taking turns between groups moves its entries without reading a record. */
#define BROKER_READY_GROUP_SHIFT 8
#define BROKER_GROUPS_MAX (1u << 24)

/* A job waiting for its time (run_at or retry backoff). */
typedef struct broker_timer {
	uint64_t run_at_us;
	uint64_t id;
	uint32_t queue;
	int32_t priority;
} broker_timer;

typedef struct broker_lease {
	uint64_t id;
	uint64_t okey; /* ordering key hash; 0: none */
	uint64_t token;
	uint64_t expires_us;
	uint64_t created_us; /* the job's, for the latency of its success */
	uint64_t leased_us;  /* when, for the run latency of its end */
	uint32_t pipe_id;
	uint32_t queue;
	bool keyed; /* the record names more (broker_job_keyed) */
	/* canceled, or past its finish_within: Extend tells the worker to
	 * stop, and its end is judged from the record (broker_stop_end) */
	bool stop;
	uint32_t group; /* slot of its group_key in the queue (0: none) */
} broker_lease;

/* One group_key of a queue (index.c). While the queue takes turns between
 * groups (broker_gate.grouped) its ready jobs wait in their group's heap;
 * leased counts its jobs leased meanwhile. Slot 0: jobs without a key. */
typedef struct broker_group {
	char *key; /* owned */
	broker_ready *heap;
	size_t nheap, capheap;
	uint64_t leased;
} broker_group;

typedef enum broker_breaker_state {
	BROKER_BREAKER_CLOSED = 0,
	BROKER_BREAKER_HALF_OPEN = 1,
	BROKER_BREAKER_OPEN = 2,
} broker_breaker_state;

/* The circuit breaker's window: attempts and failures in buckets of a
 * tenth of the window each, so that old ones fall out without a list. */
#define BROKER_BREAKER_BUCKETS 10

/* The limit holding a queue's ready jobs back, for limit_reached and
 * limit_cleared (names in work.c). */
typedef enum broker_limit {
	BROKER_LIMIT_NONE = 0,
	BROKER_LIMIT_MAX_IN_FLIGHT,
	BROKER_LIMIT_RATE,
	BROKER_LIMIT_GROUP, /* max_in_flight_per_group */
} broker_limit;

/*
 * What dispatch keeps per queue to obey its policy's dispatch keys (work.c;
 * the groups are index.c's). Taken from the policy whenever it is resolved
 * again (seen). A queue with no dispatch key set has limited and grouped
 * false and costs its fetches nothing more.
 */
typedef struct broker_gate {
	uint64_t seen;   /* q->policy.resolved the values below came from */
	bool limited;    /* a dispatch key is set: checked before each lease */
	bool grouped;    /* ready jobs wait per group, served in turns */
	bool breaker_on; /* circuit_breaker.failure_ratio is set */
	uint64_t max_in_flight, group_max; /* 0: none */
	double rate;                       /* per second; 0: none */
	double tokens;
	uint64_t refill_us;  /* when tokens were last topped up */
	uint64_t checked_us; /* when gate_open last found a token */
	/* groups: slots hashes key -> index + 1; ring lists the groups with
	 * ready jobs in the order of their turns, turn the next one */
	broker_group *groups;
	size_t ngroups, capgroups;
	uint32_t *slots;
	size_t nslots;
	uint32_t *ring;
	size_t nring, capring, turn;
	size_t nready; /* entries in the group heaps */
	/* circuit breaker */
	broker_breaker_state breaker;
	uint64_t open_until_us;
	uint64_t probe_id; /* the half-open probe leased (0: none yet) */
	struct {
		uint64_t epoch; /* now / bucket width when it was filled */
		uint32_t attempts, failed;
	} win[BROKER_BREAKER_BUCKETS];
	/* the limit_reached spell: which limit, when the last edge was and
	 * when a limit was last seen holding jobs back */
	broker_limit held;
	uint64_t held_edge_us, held_seen_us;
} broker_gate;

typedef enum broker_event_kind {
	BROKER_EV_ENQUEUED,
	BROKER_EV_LEASED,
	BROKER_EV_EXTENDED,
	BROKER_EV_SUCCEEDED,
	BROKER_EV_FAILED,
	BROKER_EV_RETRYING,
	BROKER_EV_DEAD,
	BROKER_EV_CANCELED,
	BROKER_EV_EXPIRED,
	BROKER_EV_DLQ_STORED,
	BROKER_EV_REPLAYED,
	BROKER_EV_BREAKER_OPENED, /* queue events: no job */
	BROKER_EV_BREAKER_HALF_OPEN,
	BROKER_EV_BREAKER_CLOSED,
	BROKER_EV_LIMIT_REACHED,
	BROKER_EV_LIMIT_CLEARED,
	BROKER_EV_PROGRESS, /* a job's progress, at most one a second */
	BROKER_EV_DEPENDENCY_FAILED, /* a waiting job's parent failed */
	BROKER_EV_BATCH_COMPLETED,   /* every job of a sealed batch ended */
	BROKER_EV_COUNT
} broker_event_kind;

/* Expand to x for the TOTAL rows of nqi/queue_fields.h. */
#define BROKER_QF_TOTAL_STATE(x)
#define BROKER_QF_TOTAL_TOTAL(x) x
#define BROKER_QF_TOTAL_GAUGE(x)
#define BROKER_QF_TOTAL_SNAP(x)

/* A queue's TOTAL counters. */
typedef struct broker_totals {
#define BROKER_TOTAL_(name, kind, ...) BROKER_QF_TOTAL_##kind(uint64_t name;)
	NQI_QUEUE_FIELDS(BROKER_TOTAL_)
#undef BROKER_TOTAL_
} broker_totals;

typedef struct broker_queue {
	char name[NQI_NAME_MAX + 1];
	broker_ready *heap;
	size_t nheap, capheap;
	/* settings (stored as QueueConfig), counters and gauges: plain
	 * members, from the lists of nqi/queue_fields.h */
#define BROKER_SETTING_(name, type) type name;
	NQI_QUEUE_SETTINGS(BROKER_SETTING_)
#undef BROKER_SETTING_
#define BROKER_FIELD_(name, kind, ...) NQI_QF_CORE_##kind(uint64_t name;)
	NQI_QUEUE_FIELDS(BROKER_FIELD_)
#undef BROKER_FIELD_
	uint64_t topic_seq[BROKER_EV_COUNT]; /* events published per kind */
	/* Enqueue to success, seconds: of the committed groups (what
	 * metrics read), and of the open one, core only, which moves into
	 * latency when its commit succeeds and is forgotten when it fails. */
	nqi_prom_hist *latency;
	nqi_prom_hist *latency_group;
	/* Of recent jobs (nqi/lat.h): ready to leased, and lease to its end
	 * (a success or a failure). A failed commit does not take them back:
	 * they tell what happened, not what was stored. */
	nqi_lat wait, run;
	broker_policy policy; /* read through broker_policy_of (policy.h) */
	broker_gate gate;     /* dispatch limits and groups (work.c, index.c) */
	/* The totals as the group numbered saved_group found them, kept
	 * when it first moved one (broker_totals_at): what was committed.
	 * group_next links the queues that group moved (index + 1; 0 ends
	 * the list, which starts at b->core.group_queues). */
	uint64_t saved_group;
	uint32_t group_next;
	broker_totals saved;
} broker_queue;

/* Groups whose ready jobs a snapshot names; the rest add up as "other".
 * Bounds the label values of nq_queue_group_ready. */
#define BROKER_TOP_GROUPS 5
#define BROKER_GROUP_LABEL_MAX 64

/* A group among a queue's largest (by ready jobs), or "other". */
typedef struct broker_group_row {
	char key[BROKER_GROUP_LABEL_MAX + 1];
	uint64_t ready, leased;
} broker_group_row;

/* The largest groups of q, when it waits per group, from the largest, in
 * rows[0..return value); rows[BROKER_TOP_GROUPS] adds up the others, and
 * *other tells whether it counts any (metrics.c). */
size_t broker_top_groups(const broker_queue *q,
    broker_group_row rows[BROKER_TOP_GROUPS + 1], bool *other);

/* A queue as readers outside the core see it (metrics, HTTP). */
typedef struct broker_qsnap {
	char name[NQI_NAME_MAX + 1];
#define BROKER_SNAP_(name, ...) uint64_t name;
	NQI_QUEUE_FIELDS(BROKER_SNAP_)
#undef BROKER_SNAP_
	uint64_t oldest_ready_us;
	uint64_t prev[NQI_QF_COUNT]; /* values at the last metrics topic */
	bool paused;
	nqi_prom_hist *latency;
	/* every wait and run since start, for the summaries */
	struct broker_lat_total {
		uint64_t count, sum_us;
	} wait_total, run_total;
	/* with fairness: ready jobs of its largest groups, then "other" */
	broker_group_row groups[BROKER_TOP_GROUPS + 1];
	size_t ngroups;   /* named ones, from the largest */
	bool group_other; /* groups[BROKER_TOP_GROUPS] counts the others */
} broker_qsnap;

typedef struct broker_okey broker_okey;

typedef struct broker_index {
	broker_okey *okeys; /* ordering keys in flight or waiting */
	size_t nokeys, capokeys;
	broker_queue *queues;
	size_t nqueues, capqueues;
	broker_timer *timers; /* min-heap by run_at_us */
	size_t ntimers, captimers;
	/* min-heap of the deadline and finish_within times of jobs that set
	 * them (run_at_us: the time; queue and priority unused) */
	broker_timer *deadlines;
	size_t ndeadlines, capdeadlines;
	broker_lease *leases; /* dense array */
	size_t nleases, capleases;
	uint32_t *lease_slots; /* open addressing: id -> leases index + 1 */
	size_t nslots;
	/* plain jobs canceled while ready, whose heap entries are stale;
	 * sorted, taken out as the entries are popped */
	uint64_t *stale;
	size_t nstale, capstale;
	size_t ngrouped; /* queues whose gate.grouped is set */
	/* jobs not yet ended that have children (deps.c): open addressing,
	 * 0 empty. nparents 0 is all a job without children pays. */
	uint64_t *parents;
	size_t nparents, capparents;
	/* jobs of batches not yet ended, and their batch (batch.c): open
	 * addressing on job ids, 0 empty; nbatched 0 is all others pay */
	struct broker_batched {
		uint64_t job, batch;
	} * batched;
	size_t nbatched, capbatched;
} broker_index;

int broker_index_init(broker_index *x);
void broker_index_fini(broker_index *x);
/* Finds or creates a queue; returns its index or -1 when out of memory. */
int broker_queue_get(broker_index *x, const char *name);
int broker_queue_find(const broker_index *x, const char *name);
int broker_ready_push(
    broker_queue *q, int32_t priority, uint64_t id, uint32_t flags);
/* Notes that the ready heap entry of a plain job is stale (canceled). */
int broker_stale_add(broker_index *x, uint64_t id);
/* Whether id was noted stale; forgets it. */
bool broker_stale_take(broker_index *x, uint64_t id);
/* broker_ready_peek of a grouped queue. */
bool broker_group_peek(const broker_queue *q, broker_ready *out);
/* The next entry to lease: of the heap, or, when the queue is grouped, of
 * the group whose turn it is among those below max_in_flight_per_group.
 * Inline: a fetch looks twice per job it leases. */
static inline bool broker_ready_peek(const broker_queue *q, broker_ready *out)
{
	if (q->gate.grouped)
		return broker_group_peek(q, out);
	if (q->nheap == 0)
		return false;
	*out = q->heap[0];
	return true;
}
/* Takes the entry broker_ready_peek gives; a group's turn passes. */
void broker_ready_pop(broker_queue *q);
/* Entries waiting to be leased (stale ones of canceled jobs included). */
size_t broker_ready_count(const broker_queue *q);
/* Calls fn on every waiting entry (any order). */
void broker_ready_each(const broker_queue *q,
    void (*fn)(const broker_ready *e, void *arg), void *arg);
/* The slot of group key in q (0 for "", or when no slot can be made). */
uint32_t broker_group_slot(broker_queue *q, const char *key);
/* Starts or stops waiting per group: moves q's entries, and recounts the
 * groups' leased jobs from the lease table. NQ_ENOMEM leaves q as it
 * was. */
int broker_groups_set(broker_index *x, broker_queue *q, bool grouped);

/* Recovery: empties the group heaps and counts (the keys stay). */
void broker_groups_clear(broker_queue *q);
int broker_timer_push(broker_index *x, const broker_timer *t);
bool broker_timer_peek(const broker_index *x, broker_timer *out);
void broker_timer_pop(broker_index *x);
int broker_deadline_push(broker_index *x, uint64_t at_us, uint64_t id);
bool broker_deadline_peek(const broker_index *x, broker_timer *out);
void broker_deadline_pop(broker_index *x);
int broker_lease_put(broker_index *x, const broker_lease *l);
broker_lease *broker_lease_find(broker_index *x, uint64_t id);
void broker_lease_del(broker_index *x, uint64_t id);
/* Counter of a stored state within a queue (NULL for unknown states). */
uint64_t *broker_queue_count(broker_queue *q, int state);

/* deps.c: dependencies (depends_on). The set of jobs with children is
 * rebuilt at recovery from the records (Job.children). */
int broker_parent_add(broker_index *x, uint64_t id);
bool broker_parent_has(const broker_index *x, uint64_t id);
void broker_parents_clear(broker_index *x);
/* Whether job id has children waiting on it: its success must go through
 * broker_job_finish. One compare while no job has children. */
static inline bool broker_is_parent(const broker_index *x, uint64_t id)
{
	return x->nparents && broker_parent_has(x, id);
}

/* okey.c: ordering keys */
uint64_t broker_okey_hash(const char *queue, const char *key);
bool broker_okey_busy(broker_index *x, uint64_t hash);
/* Parks a ready job (its heap entry e) behind the job of its key in
 * flight. */
int broker_okey_block(
    broker_index *x, uint64_t hash, uint32_t queue, const broker_ready *e);
/* Marks the key in flight. */
int broker_okey_take(broker_index *x, uint64_t hash);
/* The job of the key ended: the next one of that key may run. */
int broker_okey_release(broker_index *x, uint64_t hash);
/* When the key is idle, returns its next waiting job to the ready heap. */
int broker_okey_next(broker_index *x, uint64_t hash);
void broker_okeys_clear(broker_index *x);

/* ---- the broker ---- */

#define BROKER_DEAD_PIPES 1024
#define BROKER_GONE_MAX 256 /* closed connections waiting to lapse */
/* What a request cut short by the broker's stop is told (UNAVAILABLE). */
#define BROKER_STOPPING "broker is shutting down"
/* ids of one expiry entry at most: 1 KiB, a node that fits an LMDB page */
#define BROKER_EXPIRY_RUN 128
#define BROKER_GONE_DELAY_MS                                                   \
	200 /* lets a closing worker's last completions in */

struct broker {
	/* Set up by the main thread before the others start; read-only
	 * afterwards. */
	broker_config cfg;
	nqi_store *store;
	MDB_dbi db_jobs, db_idem, db_expiry, db_queues, db_meta, db_handoff;
	MDB_dbi db_batches; /* batch.c */
	nqi_auth *auth;
	uint64_t started_ms;
	/* Claim check (blob.c): the blobs of jobs whose record went, queued
	 * by the core for a thread that unlinks them, under mu. dir and
	 * started are set at start only. */
	struct broker_blobs {
		char *dir; /* realpath of cfg.blob_dir; NULL: none */
		bool started;
		pthread_t thread;
		pthread_mutex_t mu;
		pthread_cond_t cv;
		char **paths; /* malloc'd, each owned */
		size_t n, cap;
		bool stop;
	} blobs;

	/* Shared by every thread, under in.mu: the group commit's op queue
	 * (filled by NNG's threads, taken by the core), the stop and
	 * readiness. dlq.pend and the handoff's flags are under in.mu too. */
	struct broker_in {
		pthread_mutex_t mu;
		pthread_cond_t cv; /* wakes the core */
		nqi_gcommit gc;
		bool stopping;     /* handlers answer instead of parking */
		atomic_bool ready; /* recovered and the last commit worked */
	} in;

	/* The reply thread (reply.c): packs and sends a group's replies while
	 * the core applies the next group. Under out.mu. */
	struct broker_out {
		pthread_t thread;
		pthread_mutex_t mu;
		pthread_cond_t cv; /* work handed over, or all of it sent */
		broker_op *ops;    /* handed over, not yet sent */
		nqi_arena *arena; /* the one their replies are in; NULL: idle */
		bool running, stop;
	} out;

	/* The core thread's alone (core.c and the handlers): no lock. */
	struct broker_core {
		broker_index index;
		/* the group's scratch memory: one of arenas, the other with
		 * the replies the reply thread is sending (see reply.c) */
		nqi_arena *arena;
		nqi_arena arenas[2];
		/* the record last read or written, BROKER_RAW_HEADROOM bytes
		 * free in front of raw (see jobs.c): the job's bytes, its
		 * room left out; raw_stored, the size stored, room included */
		uint64_t raw_id;
		uint8_t *raw;
		size_t raw_len, raw_stored;
		/* what the last lease and the last success added to their
		 * records: the room a new record gets (see jobs.c) */
		size_t grew_lease, grew_success;
		MDB_cursor *jobs_cur; /* the group's cursor on db_jobs */
		/* and the one new records go in by, on the last record while
		 * append_placed (see jobs_append) */
		MDB_cursor *append_cur;
		bool append_placed;
		/* enqueue_one: the spec being stored and its packed bytes */
		const Nq__V1__JobSpec *packed_spec;
		ProtobufCBinaryData packed_spec_bytes;
		/* results due to go at one time, written as one expiry
		 * entry before the commit (see broker_expiry_flush) */
		struct {
			uint64_t at_us;
			unsigned n;
			uint8_t ids[BROKER_EXPIRY_RUN * 8];
		} expiry_run;
		MDB_txn *txn;    /* the group's, while it is open */
		bool dirty;      /* the group wrote something */
		broker_op *done; /* ops with replies to send after commit */
		broker_op *parked_fetch, *parked_wait;
		uint64_t last_id;
		uint64_t next_sweep_ms;
		uint64_t jobs_stored;
		/* deps.c: children still to tell of a parent's end, so that
		 * a long chain failing ends without recursion */
		struct broker_dep_item *dep_work;
		size_t ndep_work, capdep_work;
		bool dep_busy;
		/* batch.c: the batch records the group read, changed in
		 * place and written back before the commit (seal_cb) */
		struct broker_batch_slot *batches;
		size_t nbatches, capbatches;
		uint32_t dead_pipes[BROKER_DEAD_PIPES];
		struct {
			uint32_t pipe_id;
			uint64_t due_ms;
		} gone[BROKER_GONE_MAX];
		size_t ngone;
		size_t dead_pipe_next;
		uint64_t group;        /* the group's number, from 1 */
		uint32_t group_queues; /* the queues it moved totals of */
		bool woken;            /* a job became ready this group */
		uint64_t rng; /* broker_rand state, seeded from getrandom */
		uint64_t metrics_last_ms, metrics_next_ms;
		broker_policies policy; /* the queues file and defaults */
		/* when a fetch held back by a rate or a breaker's cool-down
		 * may get a job (0: none is): the core wakes by then */
		uint64_t gate_due_us;
		size_t limited_queues;          /* with gate.limited set */
		struct broker_cron *cron;       /* the schedules (cron.c) */
		struct broker_workers *workers; /* seen fetching (workers.c) */
	} core;

	/* Handoff of dead jobs to nq-dlq (dlq.c). group_dead is the core's;
	 * pend, stopping, exited and sock_open are shared under in.mu (cv
	 * wakes the handoff thread); the main thread opens and closes the
	 * socket and the thread (running). */
	struct broker_dlq {
		uint64_t *pend;
		size_t pend_head, pend_n, pend_cap;
		uint64_t *group_dead; /* died in the group being built */
		size_t ngroup_dead, capgroup_dead;
		nng_socket sock;
		pthread_t thread;
		pthread_cond_t cv;
		bool running, stopping;
		bool exited; /* the handoff thread is about to return */
		bool sock_open;
		atomic_int pipes; /* connections to nq-dlq up now */
	} dlq;

	/* Events (events.c): noted by the core, published after each
	 * commit; the list is the core's. sock and on are set by
	 * broker_events_open; subscribers counted by NNG's pipe callbacks. */
	struct broker_ev {
		nng_socket sock;
		bool on;
		atomic_int subscribers; /* connections to the events socket */
		/* /v1/events keeps recent events: a stream is connected, or
		 * was a short while ago (set by http_api.c) */
		atomic_bool sse_wanted;
		Nq__V1__JobEvent **list;
		size_t n, cap;
		uint64_t seq, published, dropped;
	} ev;

	/* Metrics (metrics.c): a snapshot written by the core and read by
	 * the HTTP thread, under snap.mu. */
	struct broker_snap {
		pthread_mutex_t mu;
		broker_qsnap *queues;
		size_t n, cap;
		uint64_t commits, commit_failures, jobs_stored;
		uint64_t events_published, events_dropped;
		nqi_rep_counts api, work; /* what the socket limits did */
		uint64_t results_conns, results_refused;
	} snap;

	/* Network (net.c): sockets opened and closed by the main thread;
	 * completions_refused is the results callback's (one at a time). */
	struct broker_net {
		nng_socket api, work, results;
		nqi_rep *api_rep, *work_rep;
		struct broker_conn_src {
			broker *b;
			bool work;
		} api_src, work_src;
		nng_aio *results_aio;
		nqi_conncap results_cap;
		uint64_t completions_refused; /* batches with a bad token */
		nqi_http *http;
		struct broker_sse *sse; /* /v1/events (http_api.c) */
	} net;
};

/* Lease tokens and backoff jitter: splitmix64 over a random seed. A
 * syscall per lease would cost more than the rest of leasing; the tokens
 * need to be unique and unguessable by accident, not secret (workers are
 * authenticated by their tokens). Core thread only. */
static inline uint64_t broker_rand(broker *b)
{
	uint64_t z = (b->core.rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The queue at index qi (NULL for -1), about to move a TOTAL counter:
 * the group's first move keeps the totals as they were, so that a failed
 * commit takes the group's moves back (broker_totals_undo) and metrics
 * show only committed ones. Core thread. */
static inline broker_queue *broker_totals_at(broker *b, int qi)
{
	if (qi < 0)
		return NULL;
	broker_queue *q = &b->core.index.queues[qi];
	if (q->saved_group != b->core.group) {
		q->saved_group = b->core.group;
		q->group_next = b->core.group_queues;
		b->core.group_queues = (uint32_t)qi + 1;
#define BROKER_SAVE_(name, kind, ...)                                          \
	BROKER_QF_TOTAL_##kind(q->saved.name = q->name;)
		NQI_QUEUE_FIELDS(BROKER_SAVE_)
#undef BROKER_SAVE_
	}
	return q;
}

/* setup.c */
void broker_config_defaults(broker_config *c);
void broker_init(broker *b);
/* Frees what broker_init and the run allocated; the struct stays. */
void broker_fini(broker *b);
int broker_open_store(broker *b);

/* core.c */
/* Sets up the group commit (b->in.gc); broker_init calls it. */
void broker_core_init(broker *b);
int broker_start(broker *b);
void broker_stop(broker *b);
/* Checks a request without state (version, body, socket); NULL when fine,
 * else the reason, with the error in *err. */
const char *broker_precheck(
    const Nq__V1__Request *req, bool work, int *err, char *buf, size_t len);
/* The roles (nqi_role mask) that may make a request of this kind. */
unsigned broker_body_roles(Nq__V1__Request__BodyCase body);
/* Applies ops as one group: one transaction, one commit, then replies. */
void broker_run_group(broker *b, broker_op *ops);
/* Hands an op to the core; takes ownership. Safe from any thread. */
void broker_post(broker *b, broker_op *op);
/* Queues op's reply for sending after this group commits. */
void broker_finish(broker *b, broker_op *op);
/* Sets op's reply body (case NQ__V1__REPLY__BODY_<CASE>, member field) to
 * msg and finishes op; evaluates to NQ_OK, for a handler's return. */
#define BROKER_ANSWER(b, op, CASE, field, msg)                                 \
	((op)->reply->body_case = NQ__V1__REPLY__BODY_##CASE,                  \
	    (op)->reply->field = (msg), broker_finish((b), (op)), NQ_OK)
Nq__V1__Reply *broker_reply_new(broker *b);
Nq__V1__Status *broker_status_new(broker *b, int err, const char *msg);
/* Sets the op's reply status (message printf-style, in the group arena). An
 * error other than FAILED_PRECONDITION clears the reply body. */
void broker_set_status(broker *b, broker_op *op, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void broker_op_free(broker_op *op);

/* reply.c */
/* Packs and sends the replies of the group's finished ops, then frees the
 * ops and resets the group arena; hand_over: on the reply thread, while
 * the core goes on, when every reply of the group may be. */
void broker_reply_group(broker *b, bool hand_over);
void broker_reply_init(broker *b); /* the arenas too; broker_init calls it */
void broker_reply_fini(broker *b);
void broker_reply_start(broker *b);
/* Sends what was handed over and ends the reply thread. */
void broker_reply_stop(broker *b);

/* net.c */
/* The largest message the api socket takes: an enqueue batch of several
 * full payloads (and nq-dlq's replay batches), with room to spare. */
size_t broker_api_recv_max(const broker_config *c);
/* The sockets, api, work and results, with their message limits and the
 * connection caps asked for (--max-connections). */
#define BROKER_SOCKETS 3
void broker_conn_shares(
    const broker_config *c, nqi_conncap_share out[BROKER_SOCKETS]);
int broker_net_open(broker *b, char *err, size_t errlen);
void broker_net_close(broker *b);

/* jobs.c: stored records, counters by state, expiry entries */
int broker_job_read(broker *b, uint64_t id, Nq__V1__Job **out);
int broker_job_write(broker *b, uint64_t id, const Nq__V1__Job *job);
/*
 * protobuf-c keeps a length-delimited field it does not know (and writes
 * out such a field) with its length in front: a varint, written here into
 * the BROKER_RAW_HEADROOM bytes before data. Returns where the field's
 * bytes start; *total gets their length.
 */
uint8_t *broker_len_prefix(uint8_t *data, size_t len, size_t *total);
/* The plan that packs messages of type d (the new record's head, the
 * lease and success patches, a spec), or NULL: see nqi_flat_plan. */
const nqi_flat_plan *broker_flat_plan(const ProtobufCMessageDescriptor *d);
/* Whether a ready job would be BROKER_READY_PLAIN. */
bool broker_job_plain(const Nq__V1__Job *job);
/* Whether the job has an idempotency key or a payload_ref, which go with
 * its record: a record that goes at once is then read first. */
bool broker_job_keyed(const Nq__V1__Job *job);
/* The BROKER_READY_* flags of a ready job's heap entry. */
uint32_t broker_ready_flags(const Nq__V1__Job *job);
/* broker_ready_flags of a ready job of q, with its group's slot. */
static inline uint32_t broker_ready_flags_in(
    broker_queue *q, const Nq__V1__Job *job)
{
	uint32_t flags = broker_ready_flags(job);
	if (job->spec->group_key[0])
		flags |= broker_group_slot(q, job->spec->group_key)
		         << BROKER_READY_GROUP_SHIFT;
	return flags;
}
/* Reads the record of id into b->core.raw without decoding it: NQ_ENOTFOUND,
 * NQ_ESTORE or NQ_ENOMEM otherwise. */
int broker_job_read_raw(broker *b, uint64_t id);
/* Moves v, a job's record as stored, past its room (see jobs.c): what is
 * left is the job's encoding, as sent and decoded. */
void broker_record_view(MDB_val *v);
/*
 * Makes the strings of the record at cur (key k, value *v) text when an
 * older broker stored one with a NUL byte or bytes that are not UTF-8
 * (nqi_pb_repair_strings): the record is rewritten in place, logged, and
 * *v is the new one. Replies built from the record later (get, wait,
 * fetch, the handoff to nq-dlq) then decode in strict clients. Recovery
 * runs it on every record at start, in its write transaction; a record
 * that is text already costs one pass over its bytes. NQ_ESTORE or
 * NQ_ENOMEM only.
 */
int broker_job_repair(MDB_cursor *cur, MDB_val *k, MDB_val *v);

/* The success of a leased job, appended to its record. */
int broker_job_patch_success(
    broker *b, uint64_t id, uint64_t finished_us, ProtobufCBinaryData result);
/* broker_job_keep_result for a job known by id, queue index and state,
 * which has no idempotency key (with result_ttl 0 the record goes at once,
 * unread). */
int broker_result_keep(
    broker *b, uint64_t id, int qi, int state, uint64_t finished_us);
/* Deletes job's record and its idempotency key, in the group's
 * transaction, and takes it out of the counters (unless in_dlq: they let
 * go of it when nq-dlq took it). */
int broker_job_drop(broker *b, const Nq__V1__Job *job);
/* blob.c: resolves --blob-dir at start and starts the thread that
 * deletes blobs (NQ_EINVAL, logged, when it is not a directory); queues
 * the blob of a job whose record goes for deletion, when it is one of that
 * directory's (see blob.c for which are kept); stops the thread once it
 * deleted what was queued. */
int broker_blob_open(broker *b);
void broker_blob_forget(broker *b, const Nq__V1__Job *job);
void broker_blob_close(broker *b);
/* Deletes the idempotency key of spec if it still names job id. */
int broker_idem_forget(broker *b, const Nq__V1__JobSpec *s, uint64_t id);

/* unique.c: what a unique key's stored value means */
/* *id: the job the stored value (len bytes) returns to a repeat enqueue
 * now, 0 when its scope ended or its job is gone. */
int broker_unique_holder(
    broker *b, const void *value, size_t len, uint64_t now_us, uint64_t *id);
/* The value to store when job id of spec takes its key; *until is the end
 * of its window or bound (0: none), when the key lapses. */
void broker_unique_value(broker *b, const Nq__V1__JobSpec *s, uint64_t id,
    uint64_t now_us, uint8_t value[17], size_t *len, uint64_t *until);
/* What is wrong with the spec's unique scope, or NULL. */
const char *broker_unique_refuses(const Nq__V1__JobSpec *s);
/* broker_count_move for a queue known by index (-1: none). */
void broker_count_move_at(broker *b, int qi, int from, int to);
/* Appends patch's fields to the stored record (see jobs.c), then tail:
 * encoded explicit zeros of fields to clear (NULL, 0: none). */
int broker_job_patch(broker *b, uint64_t id, const ProtobufCMessage *patch,
    const uint8_t *tail, size_t tail_len);
int broker_job_delete(broker *b, uint64_t id);
uint64_t broker_job_id(const Nq__V1__Job *job);
/* Moves a job to a final state: counters, expiry entry, waiters. */
int broker_job_finish(broker *b, Nq__V1__Job *job, int state, uint64_t now_us);
/* Makes a job wait for run_at_us (ready at once when it has passed). */
int broker_job_requeue(broker *b, Nq__V1__Job *job, uint64_t run_at_us);
/* The same with the time already read: an op of many jobs reads the clock
 * once, not once per job. */
int broker_job_requeue_at(
    broker *b, Nq__V1__Job *job, uint64_t run_at_us, uint64_t now);
/* When the job must have ended by, from its finish_within; 0: never. */
uint64_t broker_job_finish_by(const Nq__V1__Job *job);
/* Puts the job's deadline and finish_within times on the deadline heap
 * (and one due at once for a cancel left unfinished); the sweep looks at
 * the job again then. */
int broker_deadline_add(broker *b, const Nq__V1__Job *job);
/* deps.c: the parents a new job's spec names, checked (NULL) or what is
 * wrong (in why, *err its status); broker_deps_enqueue then stores the
 * new job waiting on them (or ready, when each has ended already) and
 * names it in each parent's record. broker_deps_ended tells the children
 * of a job that ended in job->state, in the same group: released,
 * waiting on fewer, or ended dependency_failed (and theirs after them). */
/* The parents a spec names (depends_on), and the family of a job; a job
 * without dependencies has neither message. */
static inline size_t broker_nparents(const Nq__V1__JobSpec *s)
{
	return s->depends ? s->depends->n_depends_on : 0;
}
/* The batch a spec joins (depends.batch_id); "" for none. */
static inline const char *broker_batch_of(const Nq__V1__JobSpec *s)
{
	return s->depends ? s->depends->batch_id : "";
}
static inline size_t broker_nchildren(const Nq__V1__Job *j)
{
	return j->family ? j->family->n_children : 0;
}
typedef struct broker_dep_item {
	uint64_t child;
	const char *parent; /* id; lives for the group */
	int state;          /* the parent's end */
	ProtobufCBinaryData result;
} broker_dep_item;
typedef struct broker_deps {
	Nq__V1__Job **parents; /* in the group arena */
	size_t n;
} broker_deps;
const char *broker_deps_check(broker *b, const Nq__V1__JobSpec *spec,
    broker_deps *d, int *err, char *why, size_t len);
int broker_deps_enqueue(broker *b, Nq__V1__Job *job, const broker_deps *d);
int broker_deps_ended(broker *b, const Nq__V1__Job *job);
/* work.c: ends a job that waits (ready or scheduled) in state: canceled,
 * expired, or dead (its dead_reason set), with its event. in_heap: its
 * ready heap entry is still there (and goes stale). */
int broker_end_waiting(
    broker *b, Nq__V1__Job *job, int state, uint64_t now_us, bool in_heap);
/* work.c: the cancel of a leased job: marked, so that its worker is told
 * to stop at its next Extend and the job ends canceled. */
int broker_cancel_leased(broker *b, Nq__V1__Job *job);
int broker_expiry_put(
    broker *b, uint64_t at_us, char kind, const void *data, size_t len);
/* Writes the results kept since the last flush as one expiry entry: a 'j'
 * key of the time and the first id, the other ids its value. */
int broker_expiry_flush(broker *b);
void broker_count_move(broker *b, const char *queue, int from, int to);
/* A finished job stays readable for result_ttl (deleted at once with 0,
 * see broker_job_drop). */
int broker_job_keep_result(broker *b, const Nq__V1__Job *job);

/* handlers: api.c and work.c. Each either finishes the op (broker_finish)
 * or parks it; a returned error ends the group's writes (commit refused). */
typedef int (*broker_handler_fn)(broker *b, broker_op *op);
int broker_on_enqueue(broker *b, broker_op *op);
int broker_on_get(broker *b, broker_op *op);
int broker_on_wait(broker *b, broker_op *op);
int broker_on_cancel(broker *b, broker_op *op);
int broker_on_stats(broker *b, broker_op *op);
int broker_on_pause(broker *b, broker_op *op);
int broker_on_resume(broker *b, broker_op *op);
int broker_on_list(broker *b, broker_op *op);
/* Enqueues one spec (the spec and what it points to live for the group);
 * fills res. Returns NQ_ESTORE/NQ_ENOMEM to fail the group, NQ_OK
 * otherwise (refusals are in res->status). */
int broker_enqueue_one(broker *b, Nq__V1__JobSpec *spec,
    const ProtobufCBinaryData *packed, Nq__V1__EnqueueResult *res,
    uint64_t now_us);

/* cron.c: the schedules of the queues file. The core enqueues due ticks
 * in each group (broker_cron_run, which also picks up a new policy file)
 * and sleeps at most broker_cron_wait_ms; broker_cron_forget makes the
 * next group read the ticks again from the store (after a failed
 * commit). */
int broker_cron_init(broker *b);
void broker_cron_fini(broker *b);
int broker_cron_run(broker *b);
uint64_t broker_cron_wait_ms(broker *b);
void broker_cron_forget(broker *b);
int broker_on_cron_list(broker *b, broker_op *op);
int broker_on_cron_trigger(broker *b, broker_op *op);

/* batch.c: batches. The index knows each job of a batch that has not
 * ended (broker_index.batched, rebuilt at recovery from the records); a
 * job's end, on the plain success path too, is told to its batch
 * (broker_batch_ended), whose record keeps the counts. */
int broker_batched_add(broker_index *x, uint64_t job, const char *batch);
void broker_batched_clear(broker_index *x);
/* Why spec may not join its batch (NULL: it may): unknown or sealed. */
const char *broker_batch_refuses(
    broker *b, const Nq__V1__JobSpec *spec, int *err, char *why, size_t len);
/* The new job joins its batch (after broker_batch_refuses said yes). */
int broker_batch_join(broker *b, const Nq__V1__Job *job);
/* Job id of queue ended in state: when it is a job of a batch, counted,
 * and the callbacks are enqueued when that completes the sealed batch. */
int broker_batch_ended(broker *b, uint64_t id, int state, const char *queue);
/* EnqueueRequest.batch: makes the batch the request's jobs join. NULL,
 * or why not (its status in *err). */
const char *broker_batch_for_enqueue(
    broker *b, broker_op *op, char **id, int *err, char *why, size_t len);
/* After the request's jobs joined: seals the batch when asked; a batch
 * that no job joined is not stored (*id becomes ""). */
int broker_batch_enqueued(broker *b, broker_op *op, char **id);
/* Enqueues the callbacks of the batches the group's ends completed. */
int broker_batches_fire(broker *b);
/* Writes the batch records the group changed (before its commit). */
int broker_batches_flush(broker *b);
/* Forgets the group's records (after its commit, or its failure). */
void broker_batches_forget(broker *b);
/* The expiry of a completed batch: its record goes. */
int broker_batch_expire(broker *b, uint64_t id);
int broker_on_batch_create(broker *b, broker_op *op);
int broker_on_batch_seal(broker *b, broker_op *op);
int broker_on_batch_get(broker *b, broker_op *op);
int broker_on_batch_list(broker *b, broker_op *op);
int broker_on_batch_cancel(broker *b, broker_op *op);
/* api.c, for batch.c: what is wrong with a spec (NULL: nothing); a new
 * id; a job cancel as CancelRequest does (*done: it could be); the
 * enqueue of a callback, which no policy limit refuses, with family. */
const char *broker_spec_invalid(
    const broker *b, const Nq__V1__JobSpec *s, char *buf, size_t len);
/* A new job id: now (in microseconds), or one past the last id. */
uint64_t broker_next_id(broker *b, uint64_t now);
int broker_cancel_job(broker *b, Nq__V1__Job *job, bool *done);
int broker_enqueue_callback(
    broker *b, Nq__V1__JobSpec *spec, Nq__V1__JobFamily *family, char **id);
int broker_on_fetch(broker *b, broker_op *op);
/* dlq_api.c: a /v1/dlq/ request of the HTTP API handed to nq-dlq. */
struct nqi_api_call;
void broker_dlq_forward(
    broker *b, const uint8_t *buf, size_t len, struct nqi_api_call *call);
/* workers.c: the workers seen fetching, for stats. */
void broker_workers_note(
    broker *b, const Nq__V1__FetchRequest *f, uint32_t pipe_id);
int broker_workers_stats(broker *b, const char *queue, Nq__V1__StatsReply *r);
void broker_workers_free(broker *b);
int broker_on_extend(broker *b, broker_op *op);
int broker_on_completions(broker *b, broker_op *op);
int broker_on_pipe_gone(broker *b, broker_op *op);
/* policy_api.c */
int broker_on_policy_get(broker *b, broker_op *op);
int broker_on_policy_set(broker *b, broker_op *op);
int broker_on_policy_reset(broker *b, broker_op *op);
/* Stores q's paused flag and runtime policy in its QueueConfig (api.c). */
int broker_queue_settings_store(broker *b, const broker_queue *q);
/* Takes op's context out of its socket's pool, so that a parked op holds
 * none that other requests need. False when it cannot be parked: op is
 * then answered (RESOURCE_EXHAUSTED past --max-parked). */
bool broker_park(broker *b, broker_op *op);
/* Drops, unanswered, the parked waits of the api connection pipe_id. */
void broker_drop_waits(broker *b, uint32_t pipe_id);
/* Whether a parked wait is for job id. */
bool broker_has_waiter(broker *b, uint64_t id);

int broker_expire_waits(broker *b, uint64_t now_ms);
/* Serves parked fetches and waits that can be served now. */
int broker_serve_parked(broker *b);
/* How long until a fetch held back by a rate or a cool-down may get a job
 * (UINT64_MAX: none is held back so); the core sleeps no longer. */
uint64_t broker_gate_wait_ms(const broker *b);
/* The gauges of q's limits as dispatch sees them now (the GAUGE rows). */
void broker_gate_gauges(broker *b, broker_queue *q);
/* Sets the latency gauges of q (wait_p50_us, ...) from its recent jobs,
 * moving their window on to now_us (metrics.c). Core thread. */
void broker_latency_gauges(broker_queue *q, uint64_t now_us);
/* Timers: due scheduled jobs, lapsed leases, finished jobs past result_ttl. */
int broker_sweep(broker *b);
/* Answers a parked wait for this job if there is one. */
void broker_wake_waiters(broker *b, uint64_t id, Nq__V1__Job *job);
/* Checks and packs each JobSpec of an enqueue request into the op's
 * arena, on the thread that decoded it, so that the core thread only
 * copies them into the records: a spec packed is a valid one
 * (broker_spec_invalid, which reads only b->cfg), one left unpacked is
 * checked again on the core. Does nothing for other requests, or
 * without an arena. */
void broker_op_prepack(const broker *b, broker_op *op);

/* events.c */
/* Whether anyone subscribes to events: else they are not built. */
bool broker_events_wanted(broker *b);

/* ---- JSON API and Server-Sent Events (http_api.c) ---- */

/* Decodes, checks and posts a request that came over HTTP, as net.c does
 * one from the api socket; the reply (or NULL) goes to fn on the core
 * thread, or at once when the request is refused. */
void broker_request_in(broker *b, const void *buf, size_t len,
    void (*fn)(void *arg, nng_msg *msg), void *arg);
/* The API's part of the HTTP options; its event ring and thread. */
int broker_api_start(broker *b, nqi_http_opts *o);
void broker_api_stop(broker *b);
/* The committed events of a group, in seq order (core thread). */
void broker_sse_publish(broker *b, Nq__V1__JobEvent **events, size_t n);
int broker_sse_metrics(broker *b, nqi_prom *p);
/* Notes an event of the group; error may be NULL. Strings must live until
 * the group's replies are sent (the arena, the job, the ops). */
void broker_event(broker *b, broker_event_kind kind, const Nq__V1__Job *job,
    const char *error);
/* Notes an event of queue, with no job: a breaker's move (failure_ratio:
 * what opened it) or a limit's spell (limit: its name; NULL otherwise). */
void broker_queue_event(broker *b, broker_event_kind kind, const char *queue,
    double failure_ratio, const char *limit);
/* Notes batch_completed of batch (id, on topic queue): last, the job whose
 * end completed it ("" at a seal), summary its counts. Strings as above. */
void broker_batch_event(broker *b, const char *batch, const char *queue,
    const char *last, const char *summary);
/* Publishes the group's events when it committed, drops them otherwise. */
void broker_events_publish(broker *b, bool committed);
int broker_events_open(broker *b, char *err, size_t errlen);
void broker_events_close(broker *b);

/* metrics.c */
/* Enqueue time of the oldest ready job (0: none); scans the ready heap. */
uint64_t broker_oldest_ready_us(const broker_queue *q);
void broker_metrics_tick(broker *b);
void broker_metrics_snapshot(broker *b, bool full);
int broker_http_start(broker *b, char *err, size_t errlen);
void broker_http_stop(broker *b);

/* dlq.c: handoff of dead jobs to nq-dlq */
bool broker_dlq_enabled(const broker *b);
int broker_dlq_note(broker *b, uint64_t id, const char *queue);
void broker_dlq_publish(broker *b);
int broker_on_dlq_acked(broker *b, broker_op *op);
int broker_dlq_recover(broker *b, MDB_txn *txn);
int broker_dlq_start(broker *b, char *err, size_t errlen);
/* Stops the handoff thread; broker_dlq_close then closes its socket. */
void broker_dlq_stop(broker *b);
void broker_dlq_close(broker *b);

/* recover.c: rebuilds the index from the store. With release_leases,
 * leased jobs become ready (restart); otherwise their leases are kept. */
int broker_recover(broker *b, bool release_leases);

#endif
