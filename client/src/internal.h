/*
 * Private to libnq: the job wrapper, the client object, the request helper,
 * and the thread-safe forms of the worker protocol calls that nq_worker
 * shares with the public low-level API.
 */
#ifndef NQ_CLIENT_INTERNAL_H
#define NQ_CLIENT_INTERNAL_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/codec.h"
#include "shards.h"

/* Room for one error message: the server's, or the local reason. */
#define NQC_ERR_MAX 256
/* The broker parks a Wait or a Fetch at most this long; longer waits loop. */
#define NQC_WAIT_CAP_MS 60000

/* ---- jobs ---- */

/* The memory of the jobs of one fetch reply: the arena they were decoded
 * into, freed with the last of them. */
typedef struct nqc_jobs_mem {
	atomic_int refs;
	nqi_arena *arena;
} nqc_jobs_mem;

struct worker_slot;

struct nq_job {
	Nq__V1__Job *pb;
	nqc_jobs_mem *mem; /* pb and this wrapper live in mem; NULL: own */
	/* the nq_worker slot that runs it (cancel, progress); NULL: none */
	struct worker_slot *slot;
};

/* Wraps an unpacked job. Takes ownership of pb in every case: on failure
 * (NQ_ENOMEM) pb has been freed. */
int nqc_job_wrap(Nq__V1__Job *pb, nq_job **out);

/* ---- client ---- */

/* The endpoints of a client: REQ to api, REQ to work, PUSH to results,
 * REQ to nq-dlq. */
typedef enum nqc_end {
	NQC_API,
	NQC_WORK,
	NQC_RESULTS,
	NQC_DLQ,
	NQC_NENDS
} nqc_end;

struct nqc_conn {
	char *url;
	nng_socket sock;
	bool open;           /* sockets open on first use */
	atomic_bool dialed;  /* connected once: NNG redials by itself */
	atomic_int pipes;    /* connections up now */
	pthread_mutex_t mtx; /* guards the opening (and url, open, sock) */
};

struct nq_client {
	struct nqc_conn conn[NQC_NENDS];
	char *token;         /* NULL: none */
	uint64_t timeout_ms; /* per request */
	nng_tls_config *tls; /* NULL unless a URL or an option needs it */
	pthread_mutex_t mtx; /* guards tls, made late for a TLS dlq URL */
	char last_error[NQC_ERR_MAX];
	char *blob_dir;         /* claim check (realpath); NULL: off */
	uint64_t offload_above; /* bytes */
	/* With a shard map (nq_client_opts.brokers): one client per shard,
	 * which every call goes through (route.c); NULL with one broker. */
	nqs_map *map;
	nq_client **shard;
};

/* Writes the printf-style message to err (when err is not NULL) and
 * returns rv: `return nqc_fail(err, NQ_EINVAL, "...", ...);`. */
int nqc_fail(char *err, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears the client's last error at the start of a public call. */
void nqc_begin(nq_client *c);

/* Until the endpoint's socket has connected once, dials it: one attempt,
 * bounded by the client's timeout (NQ_ECONNECT when it failed,
 * NQ_ETIMEDOUT when it took the whole timeout). NQ_OK at once after that
 * (NNG redials by itself). Every request calls it first. Thread-safe. */
int nqc_dial(nq_client *c, nqc_end end, char *err);
/* The socket of an endpoint, opened on first use and dialed (nqc_dial).
 * Thread-safe. */
int nqc_socket(nq_client *c, nqc_end end, nng_socket *out, char *err);
/* Whether the endpoint has a connection up at this moment. */
bool nqc_connected(nq_client *c, nqc_end end);

/* Opens a REQ context on the api or work socket, opening the socket if
 * needed but not dialing it (nqc_call does). Never blocks on the
 * network. */
int nqc_ctx_open(nq_client *c, nqc_end end, nng_ctx *ctx, char *err);

/*
 * One request and its reply on the REQ socket of `end`. ctx NULL uses a
 * context of its own for this call; otherwise the given one (which another
 * thread may close to abort the call: it then returns NQ_ECLOSED). Sets the
 * request's version and token. Waits up to reply_ms for the reply.
 *
 * Returns NQ_OK, a transport error (nothing in *reply), or the error of a
 * reply whose status is not OK; in the last case *reply still holds the
 * reply, because some errors carry a body (a refused cancel returns the
 * job). Whenever *reply is set the caller frees it with
 * nq__v1__reply__free_unpacked(r, NULL). err gets the reason on failure.
 */
int nqc_call(nq_client *c, nqc_end end, nng_ctx *ctx, Nq__V1__Request *req,
    uint64_t reply_ms, Nq__V1__Reply **reply, char *err);
/* nqc_call with the reply decoded into an arena: whenever *reply is set,
 * *arena holds it, and nqi_arena_free(*arena) frees it. For the hot calls
 * (enqueue, fetch), whose replies carry many small fields. */
int nqc_call_arena(nq_client *c, nqc_end end, nng_ctx *ctx,
    Nq__V1__Request *req, uint64_t reply_ms, Nq__V1__Reply **reply,
    nqi_arena **arena, char *err);

/* A call sent on a context of its own whose reply is still to come: the
 * two halves of nqc_call_arena, so that one thread can keep many calls in
 * flight (pipelined enqueue). */
typedef struct nqc_pending {
	nqc_end end;
	nng_ctx ctx;
	nng_aio *aio; /* receiving the reply */
	uint64_t reply_ms;
} nqc_pending;
/* Sends req and starts receiving its reply; on failure nothing is left
 * to finish. */
int nqc_call_send(nq_client *c, nqc_end end, Nq__V1__Request *req,
    uint64_t reply_ms, nqc_pending *p, char *err);
/* Waits for the reply of p and decodes it as nqc_call_arena does; p is
 * done with afterwards, whatever it returns. */
int nqc_call_finish(nq_client *c, nqc_pending *p, Nq__V1__Reply **reply,
    nqi_arena **arena, char *err);
/* Gives p up without its reply. */
void nqc_call_drop(nqc_pending *p);

/* Checks that a reply carries the body the request asked for. */
int nqc_expect(const nq_client *c, nqc_end end, const Nq__V1__Reply *r,
    Nq__V1__Reply__BodyCase body, const char *what, char *err);

/* The URL an endpoint dials, for messages. */
const char *nqc_url(const nq_client *c, nqc_end end);

/* ---- more than one broker (route.c) ---- */

/* Opens the shard clients of o->brokers; the reason in c->last_error. */
int nqc_shards_open(nq_client *c, const nq_client_opts *o);
void nqc_shards_close(nq_client *c);
/* The index of the shard that owns queue. */
size_t nqc_owner(const nq_client *c, const char *queue);
/* Returns rv, and when it is an error, copies the last error of shard k
 * to c, naming the shard. */
int nqc_relay(nq_client *c, size_t k, int rv);
/* A call about one job or batch on shard (a client of one broker): what
 * nqc_ask_shards asks each shard in turn; NQ_ENOTFOUND: ask the next. */
typedef int (*nqc_ask_fn)(nq_client *shard, void *arg);
/* Asks fn of each shard in turn until one has it: its answer and *shard.
 * NQ_ENOTFOUND when none has it (what and id name it: "job", "batch"),
 * or the error of a shard that could not be asked. */
int nqc_ask_shards(nq_client *c, const char *what, const char *id,
    nqc_ask_fn fn, void *arg, size_t *shard);
/* Finds the shard that holds job id (canonical): *shard, and the job in
 * *out unless out is NULL. NQ_ENOTFOUND when no shard has it, or the
 * error of a shard that could not be asked. */
int nqc_locate(nq_client *c, const char *id, size_t *shard, nq_job **out);
/* NQ_OK with one broker; with a shard map, NQ_EINVAL for the call what
 * (the low-level worker calls: a lease is one shard's). */
int nqc_one_broker(nq_client *c, const char *what);
/* Queues that a rule keeps on one shard: a batch's own queue (NULL or
 * "": none), its callbacks (NULL: none), then jobs; rule names it in
 * errors ("a chain", "a batch"). */
typedef struct nqc_group {
	const char *rule;
	const char *queue;
	const nq_job_spec *callback[2]; /* on_success, on_complete */
	const nq_job_spec *specs;
	size_t n;
} nqc_group;
/* The shard of every queue of g: *shard; NQ_EINVAL naming two queues of
 * different shards, or when g names no queue. */
int nqc_one_shard(nq_client *c, const nqc_group *g, size_t *shard);
/* The largest page of nqc_batch_list_sharded: the broker's. */
#define NQC_BATCH_PAGE_MAX 1000
/* nq_batch_list over the shards: each shard's page, merged by id. */
int nqc_batch_list_sharded(nq_client *c, const char *after_id, size_t cap,
    nq_batch_info *out, size_t *n, char *next);
/* nq_enqueue_batch (chain: nq_enqueue_chain) over the shards. */
int nqc_enqueue_sharded(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results, bool chain);

/* ---- claim check (blob.c) ---- */

/*
 * Offloads the payload of spec s, whose wire form pb is filled already,
 * when the client's offload settings (its blob dir is set) say so: writes
 * the blob and points pb at it (empty payload, payload_ref, size,
 * SHA-256). *ref is the reference pb now borrows (NULL: nothing
 * offloaded), for the caller to free after the call, with
 * nqc_offload_undo when the job was not taken.
 */
int nqc_offload(nq_client *c, const nq_job_spec *s, Nq__V1__JobSpec *pb,
    char **ref, char *err);
/* Removes the blob of ref (best effort) and frees ref. NULL-safe. */
void nqc_offload_undo(char *ref);

/* ---- worker protocol, safe to call from several threads at once ---- */

typedef struct nqc_lease {
	const char *id;
	uint64_t token;
	bool has_progress; /* Extend: the handler reported progress */
	uint32_t pct;
	const char *note;
} nqc_lease;

/*
 * nq_fetch on ctx (NULL: a context of its own), errors to err. The reply
 * is waited for up to reply_ms (0: wait_ms plus the client's timeout). A
 * fetch is not idempotent: the broker leases jobs into it however late it
 * gets to it (stalled, or stopped), and NNG drops a reply whose receive
 * was given up, so a fetch given up on while its connection lives leaves
 * its jobs leased to nobody for a whole lease. A lost connection ends the
 * wait at once (the broker releases that connection's leases), and so
 * does closing ctx.
 */
int nqc_fetch(nq_client *c, nng_ctx *ctx, uint64_t reply_ms,
    const char *worker_id, const char *const *queues, size_t nqueues,
    uint32_t max_jobs, uint64_t wait_ms, uint64_t lease_ms, nq_job ***jobs,
    size_t *n, char *err);
/* Extends n leases, in requests of at most NQI_LEASES_MAX. On NQ_OK
 * results[i] is the outcome of lease i: NQ_OK, or NQ_EPRECOND when it is no
 * longer held; and stop[i] (stop may be NULL) whether its job must stop
 * (canceled, or past its finish_within). An error stops at the request
 * that failed: the results of the leases before it are set, the others
 * are not. */
int nqc_extend(nq_client *c, nng_ctx *ctx, const char *worker_id,
    const nqc_lease *leases, size_t n, uint64_t lease_ms, int *results,
    bool *stop, char *err);
/* nq_complete with errors to err. */
int nqc_complete(nq_client *c, const char *worker_id,
    const nq_completion *items, size_t n, char *err);

#endif
