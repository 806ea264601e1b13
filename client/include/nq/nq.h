/*
 * nq.h - the one public header of libnq: the client API (enqueue, get, wait,
 * cancel, stats), the worker API (handlers, slots, drain) and the low-level
 * worker protocol (fetch, extend, complete) for custom workers.
 *
 * Conventions: fallible functions return int, 0 (NQ_OK) on success or an
 * nq_err; out-parameters are written last and only on success. Objects are
 * opaque; every *_free / *_close accepts NULL. Functions block the calling
 * thread unless their comment says otherwise. A client handle may be used
 * from one thread at a time.
 */
#ifndef NQ_NQ_H
#define NQ_NQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NQ_BUILDING) && defined(__GNUC__)
#define NQ_API __attribute__((visibility("default")))
#else
#define NQ_API
#endif

/*
 * The one error list. X(NAME, wire status code, text). The numeric wire code
 * is the nq.v1.Code value a service sends; local errors map to INTERNAL or
 * UNAVAILABLE when they must cross the wire.
 */
#define NQ_ERRORS(X)                                                           \
	X(OK, 0, "ok")                                                         \
	X(EINVAL, 1, "invalid argument")                                       \
	X(ENOTFOUND, 2, "not found")                                           \
	X(EEXISTS, 3, "already exists")                                        \
	X(EPRECOND, 4, "failed precondition")                                  \
	X(EEXHAUSTED, 5, "resource exhausted")                                 \
	X(EPERM, 6, "permission denied")                                       \
	X(EAUTH, 7, "unauthenticated")                                         \
	X(EUNAVAIL, 8, "service unavailable")                                  \
	X(EINTERNAL, 9, "internal error")                                      \
	X(ETIMEDOUT, 10, "timed out")                                          \
	X(ENOMEM, 9, "out of memory")                                          \
	X(EPROTO, 1, "malformed message")                                      \
	X(ESTORE, 8, "storage failure")                                        \
	X(ECLOSED, 8, "closed")                                                \
	X(ECONNECT, 8, "could not connect")

typedef enum nq_err {
#define NQ_ERR_ENUM_(name, code, text) NQ_##name,
	NQ_ERRORS(NQ_ERR_ENUM_)
#undef NQ_ERR_ENUM_
	    NQ_ERR_COUNT_
} nq_err;

/* Text for people ("not found"), and the stable name ("ENOTFOUND"). */
NQ_API const char *nq_strerror(int err);
NQ_API const char *nq_err_name(int err);

/* Job states, in the order of nq.v1.JobState. */
typedef enum nq_state {
	NQ_STATE_UNSPECIFIED = 0,
	NQ_STATE_SCHEDULED,
	NQ_STATE_READY,
	NQ_STATE_LEASED,
	NQ_STATE_SUCCEEDED,
	NQ_STATE_DEAD,
	NQ_STATE_CANCELED,
	NQ_STATE_EXPIRED,
	NQ_STATE_WAITING, /* depends_on: a parent has not ended yet */
} nq_state;

/* "scheduled", "ready", ...; "unknown" for anything else. */
NQ_API const char *nq_state_name(nq_state state);
/* Parses a state name; returns NQ_STATE_UNSPECIFIED when unknown. */
NQ_API nq_state nq_state_parse(const char *name);
/* True for succeeded, dead, canceled and expired. */
NQ_API bool nq_state_is_final(nq_state state);

#define NQ_ID_MAX 32 /* buffer size for a job id, NUL included */

/*
 * How long a job's unique key (its idempotency_key) returns it to an
 * enqueue with the same key in the same queue, as a duplicate; once the
 * scope ended, the key makes a new job (README "Unique jobs").
 */
typedef enum nq_unique_scope {
	NQ_UNIQUE_WINDOW = 0, /* for unique_window_ms after the enqueue */
	NQ_UNIQUE_QUEUED = 1, /* until the job first starts */
	NQ_UNIQUE_ACTIVE = 2, /* until its first attempt ends */
	NQ_UNIQUE_UNTIL_FINISHED = 3, /* until it ends, retries included */
} nq_unique_scope;

/* "window", "queued", "active", "until_finished"; NULL for another value. */
NQ_API const char *nq_unique_scope_name(nq_unique_scope scope);
/* Reads a scope as nqctl's --unique-scope takes it: a name of
 * nq_unique_scope_name, or "window=D" (D a duration: 250ms, 30s, 5m, 2h),
 * which sets *window_ms (0 otherwise). NQ_EINVAL for anything else. */
NQ_API int nq_unique_scope_parse(
    const char *text, nq_unique_scope *scope, uint64_t *window_ms);

/* ---- jobs as reported by the broker ---- */

typedef struct nq_job nq_job;

NQ_API void nq_job_free(nq_job *job);
NQ_API const char *nq_job_id(const nq_job *job);
NQ_API const char *nq_job_queue(const nq_job *job);
NQ_API const char *nq_job_type(const nq_job *job);
NQ_API nq_state nq_job_state(const nq_job *job);
NQ_API uint32_t nq_job_attempt(const nq_job *job);
NQ_API uint32_t nq_job_max_attempts(const nq_job *job);
NQ_API int32_t nq_job_priority(const nq_job *job);
NQ_API uint32_t nq_job_schema_version(const nq_job *job);
NQ_API const char *nq_job_content_type(const nq_job *job);
NQ_API const void *nq_job_payload(const nq_job *job, size_t *len);
NQ_API const void *nq_job_result(const nq_job *job, size_t *len);
NQ_API const char *nq_job_traceparent(const nq_job *job);
NQ_API const char *nq_job_idempotency_key(const nq_job *job);
NQ_API const char *nq_job_ordering_key(const nq_job *job);
NQ_API const char *nq_job_group_key(const nq_job *job);
/* Claim check: where the payload's bytes are ("" when they came inline),
 * their size and SHA-256 (64 lowercase hex digits; "" when not declared).
 * nq-worker fetches and checks them itself; a C handler of libnq's worker
 * gets the job as the broker has it, an empty payload and the ref, and
 * reads the bytes from the ref (a file:// path on the shared volume, or
 * an http(s):// URL) and checks their size and digest itself. */
NQ_API const char *nq_job_payload_ref(const nq_job *job);
NQ_API uint64_t nq_job_payload_size(const nq_job *job);
NQ_API const char *nq_job_payload_sha256(const nq_job *job);
NQ_API nq_unique_scope nq_job_unique_scope(const nq_job *job);
NQ_API uint64_t nq_job_unique_window_ms(const nq_job *job);
/* The cron schedule that enqueued the job; "" for other jobs. */
NQ_API const char *nq_job_schedule(const nq_job *job);
/* The batch the job belongs to; "" for none. */
NQ_API const char *nq_job_batch_id(const nq_job *job);
NQ_API const char *nq_job_dead_reason(const nq_job *job);
/* A dead job that nq-dlq holds: the broker reports a summary of it (no
 * payload, no result, the last error only); nq-dlq has the whole job. */
NQ_API bool nq_job_in_dlq(const nq_job *job);
NQ_API const char *nq_job_worker_id(const nq_job *job);
NQ_API uint64_t nq_job_created_us(const nq_job *job);
NQ_API uint64_t nq_job_run_at_us(const nq_job *job);
NQ_API uint64_t nq_job_started_us(const nq_job *job);
NQ_API uint64_t nq_job_finished_us(const nq_job *job);
NQ_API uint64_t nq_job_timeout_ms(const nq_job *job);
/* Lease of a job handed out by fetch; 0 otherwise. */
NQ_API uint64_t nq_job_lease_token(const nq_job *job);
NQ_API uint64_t nq_job_lease_expires_us(const nq_job *job);
/* Failed attempts, oldest first. Returns NULL past the end. */
NQ_API size_t nq_job_error_count(const nq_job *job);
NQ_API const char *nq_job_error(
    const nq_job *job, size_t i, uint32_t *attempt, uint64_t *at_us);
NQ_API uint64_t nq_job_deadline_us(const nq_job *job);
NQ_API uint64_t nq_job_finish_within_ms(const nq_job *job);
/* A leased job that was canceled: its worker is told to stop it. */
NQ_API bool nq_job_cancel_requested(const nq_job *job);
/* The last progress its handler reported (0-100, a note, when the broker
 * got it; 0 and "" when none). */
NQ_API uint32_t nq_job_progress_pct(const nq_job *job);
NQ_API const char *nq_job_progress_note(const nq_job *job);
NQ_API uint64_t nq_job_progress_at_us(const nq_job *job);
/* Dependencies: the jobs this one waits for (its depends_on), the jobs
 * waiting for it, how many parents it still waits for, and what each
 * parent that ended left: its id, its final state and, when it succeeded,
 * its result (NULL otherwise). i out of range: NULL. */
NQ_API size_t nq_job_parent_count(const nq_job *job);
NQ_API const char *nq_job_parent_id(const nq_job *job, size_t i);
NQ_API size_t nq_job_child_count(const nq_job *job);
NQ_API const char *nq_job_child_id(const nq_job *job, size_t i);
NQ_API uint32_t nq_job_waiting_on(const nq_job *job);
NQ_API size_t nq_job_parent_result_count(const nq_job *job);
NQ_API const void *nq_job_parent_result(
    const nq_job *job, size_t i, const char **id, nq_state *state, size_t *len);

/* ---- client ---- */

typedef struct nq_client nq_client;

typedef struct nq_client_opts {
	const char *api_url; /* NULL: tcp://127.0.0.1:7400 */
	const char
	    *work_url; /* NULL: tcp://127.0.0.1:7401 (low-level worker calls) */
	const char *results_url; /* NULL: tcp://127.0.0.1:7402 */
	const char *token;       /* NULL: none */
	int timeout_ms;          /* per request; 0: 10000 */
	const char *tls_ca;      /* files, for tls+tcp:// URLs; NULL: none */
	const char *tls_cert;    /* our certificate (chain) */
	const char *tls_key;     /* its key; NULL: tls_cert holds both */
	const char *tls_server_name;
	/* More than one broker: a shard map (README "More than one
	 * broker"): "a=tcp://h1:7400,b=tcp://h2:7400", entries NAME=URL,
	 * NAME.work=URL (.results, .events), "queue QUEUE=NAME" pins, or
	 * the name of a file holding them. Set, it replaces the three URLs
	 * above: each call goes to the shard of its queue, a call about a
	 * job id asks every shard in turn, stats add up the shards. A chain
	 * must stay on one shard (NQ_EINVAL otherwise), as must a job's
	 * parents. The low-level worker calls (nq_fetch, nq_extend,
	 * nq_complete) need one broker: NQ_EINVAL. NULL: one broker. */
	const char *brokers;
} nq_client_opts;

/*
 * Opens a client; it touches no network. NQ_EINVAL for a URL nq cannot
 * dial: a transport nq does not speak (http://), no host, or no port or
 * one outside 1-65535 (tcp://, tls+tcp://, ws://, wss://; ipc:// needs a
 * path). On failure *out is untouched.
 *
 * Each socket dials on its first request, one attempt bounded by the
 * timeout: a service that is not there fails that request at once with
 * NQ_ECONNECT (connection refused, no route, a TLS handshake that
 * failed), or with NQ_ETIMEDOUT when the attempt got no answer in time;
 * the next request dials again. Once connected, a lost connection is
 * redialed in the background. The errors of a request tell apart:
 * NQ_ETIMEDOUT (no reply in time) and NQ_ECONNECT (no connection), where
 * the service was not reached, from NQ_EUNAVAIL, its answer that it
 * cannot serve now (its store cannot commit, it is shutting down), whose
 * message nq_client_last_error gives.
 */
NQ_API int nq_client_open(nq_client **out, const nq_client_opts *opts);
NQ_API void nq_client_close(nq_client *c);
/* The server's message for the last failed call ("payload is 300000 bytes,
 * limit 262144"), or the local reason; "" when none. Valid until the next
 * call on c. */
NQ_API const char *nq_client_last_error(const nq_client *c);
/* Checks a shard map (nq_client_opts.brokers) without opening anything:
 * NQ_OK, or NQ_EINVAL with the reason in why (len bytes). */
NQ_API int nq_shard_map_check(const char *map, char *why, size_t len);
/* The name of the shard of queue (a client opened with a shard map), or
 * NULL with one broker. */
NQ_API const char *nq_client_shard_of(const nq_client *c, const char *queue);
/* The shards of a client's map (0 with one broker), shard i's name and
 * its events URL (NULL when i is out of range), for a subscriber per
 * shard. */
NQ_API size_t nq_client_shard_count(const nq_client *c);
NQ_API const char *nq_client_shard_name(const nq_client *c, size_t i);
NQ_API const char *nq_client_shard_events_url(const nq_client *c, size_t i);

/* ---- nq-dlq and the broker's events, over the client's transport ---- */

/*
 * Points the client at nq-dlq's socket (NULL: tcp://127.0.0.1:7410). It is
 * dialed on the first nq_dlq_request, with the client's token, TLS files
 * and timeout. NQ_EINVAL for a URL nq cannot dial (as nq_client_open;
 * nq_client_last_error says why), NQ_EPRECOND once that socket is open.
 */
NQ_API int nq_client_set_dlq_url(nq_client *c, const char *url);

/*
 * Claim check: from now on, an enqueued payload of more than above_bytes
 * (0: any payload that is not empty) is not sent to the broker but
 * written to a new file in blob_dir, a directory the workers see at the
 * same path, and the job carries its file:// reference (payload_ref), size
 * and SHA-256 instead. The file is written whole before the enqueue is
 * sent (temporary name, fsync, rename, fsync of the directory); a job the
 * broker refused, or a duplicate of an existing one, has its file removed
 * again. A spec that names its own payload_ref is sent as it is. blob_dir
 * NULL turns offloading off. NQ_EINVAL when blob_dir is not a directory
 * (nq_client_last_error says why).
 */
NQ_API int nq_client_set_offload(
    nq_client *c, const char *blob_dir, uint64_t above_bytes);
/*
 * One request to nq-dlq: req is a packed nq.v1.Request (its version and
 * token are set here), reply_ms bounds the wait for the reply. Whenever a
 * reply came, *reply is the packed nq.v1.Reply (free() it) and *reply_len
 * its size, also when its status is an error, which is then returned
 * (some error replies carry a body). Otherwise returns the transport
 * error (NQ_ETIMEDOUT: no answer in time) with *reply untouched.
 */
NQ_API int nq_dlq_request(nq_client *c, const void *req, size_t len,
    uint64_t reply_ms, void **reply, size_t *reply_len);

typedef struct nq_sub nq_sub;

/*
 * Subscribes to the broker's events socket (url NULL:
 * tcp://127.0.0.1:7403) with the client's TLS files, to the messages whose
 * topic starts with the topic_len bytes of topic (a NUL among them when
 * the topic must match whole). Dials once and waits for the connection,
 * at most the client's timeout, so a broker that is not there fails here
 * (NQ_ECONNECT, or NQ_ETIMEDOUT; NQ_EINVAL for a URL nq cannot dial); a
 * connection lost later is redialed in the background. The subscriber does not
 * need c after this returns.
 */
NQ_API int nq_sub_open(nq_client *c, const char *url, const void *topic,
    size_t topic_len, nq_sub **out);
/* Waits up to timeout_ms (-1: no limit) for the next message: NQ_OK with
 * *msg (topic and body, valid until the next call on s) and *len,
 * NQ_ETIMEDOUT when none came, or the error of a failed receive. */
NQ_API int nq_sub_recv(
    nq_sub *s, int timeout_ms, const void **msg, size_t *len);
NQ_API void nq_sub_close(nq_sub *s);

typedef struct nq_job_spec {
	const char *queue; /* required */
	const char *type;  /* required */
	const void *payload;
	size_t payload_len;
	const char *content_type; /* NULL: none */
	uint32_t schema_version;
	int32_t priority;
	uint64_t delay_ms;
	uint64_t run_at_us;    /* absolute; wins over delay_ms */
	uint32_t max_attempts; /* 0: the queue's default */
	uint64_t timeout_ms;   /* 0: the default */
	const char *idempotency_key;
	const char *ordering_key;
	const char *traceparent;
	const char *payload_ref;
	uint64_t deadline_us;
	const char *replay_of; /* nq-dlq entry this job replays; NULL: none */
	/* A tenant or customer: with the queue's fairness, dispatch takes
	 * turns between group keys. NULL: none. */
	const char *group_key;
	/* With payload_ref (claim check): the size and the SHA-256 (64
	 * lowercase hex digits) of the bytes it names, which nq-worker checks.
	 * nq_client_set_offload fills all three itself. */
	uint64_t payload_size;
	const char *payload_sha256;
	/* How long idempotency_key (the unique key) holds. */
	nq_unique_scope unique_scope;
	/* The window's length (0: the broker's --idempotency-window); with
	 * another scope, the longest the key holds (0: no bound). */
	uint64_t unique_window_ms;
	/* The whole job, every attempt, ends within this long of its
	 * enqueue, or is stopped and dead with reason "deadline"; 0: no
	 * limit. (deadline_us above: it expires unless started by then.) */
	uint64_t finish_within_ms;
	/* Dependencies: the job waits (NQ_STATE_WAITING) until each of these
	 * n_depends_on jobs succeeded; they must exist on the broker. A
	 * parent that dies, expires or is canceled ends the job canceled
	 * (dead_reason "dependency_failed"), or, with run_on_parent_failure,
	 * lets it run once every parent ended (a cleanup job). */
	const char *const *depends_on;
	size_t n_depends_on;
	bool run_on_parent_failure;
	/* The batch (nq_batch_create) the job joins; NULL: none. */
	const char *batch_id;
} nq_job_spec;

typedef struct nq_enqueue_result {
	int err; /* NQ_OK, or why this item was refused */
	char id[NQ_ID_MAX];
	bool duplicate;
	char message[160]; /* the server's reason when err != 0 */
} nq_enqueue_result;

/* Enqueues one job; returns its id (and whether the idempotency key matched
 * an existing job). Returns once the broker confirmed it durable. */
NQ_API int nq_enqueue(
    nq_client *c, const nq_job_spec *spec, char id[NQ_ID_MAX], bool *duplicate);
/*
 * Enqueues n jobs in one request and one commit. Returns NQ_OK when the
 * request was answered; each results[i].err then says whether item i was
 * taken. results must hold n entries.
 */
NQ_API int nq_enqueue_batch(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results);
/*
 * Pipelined enqueue: nq_enqueue_batch in two halves, so that one thread
 * keeps several batches in flight instead of waiting for each commit.
 * nq_enqueue_batch_send sends the batch and returns without waiting for
 * the broker (the specs may be reused at once); nq_enqueue_batch_wait
 * waits for its answer, fills the results given to send (which must stay
 * valid until then) and returns what nq_enqueue_batch would have; the
 * client's timeout counts from the send, so a batch waited for later than
 * that may end in NQ_ETIMEDOUT though the broker took it. Every
 * batch sent is waited for, each once, before the client is closed; batches
 * may be waited for in any order, and each one's jobs are confirmed durable
 * only by its wait. Batches in flight together may be enqueued in either
 * order (each keeps its own). On failure send sets *out to NULL and there
 * is nothing to wait for. A client with a shard map or a claim check does
 * each batch whole in send, which returns its outcome (its wait then
 * returns NQ_OK): no pipelining there.
 */
typedef struct nq_enqueue_pending nq_enqueue_pending;
NQ_API int nq_enqueue_batch_send(nq_client *c, const nq_job_spec *specs,
    size_t n, nq_enqueue_result *results, nq_enqueue_pending **out);
NQ_API int nq_enqueue_batch_wait(nq_client *c, nq_enqueue_pending *p);
/*
 * Enqueues a chain: specs[i] waits for specs[i - 1] (besides its own
 * depends_on), in one request, all or none: when the broker refuses one,
 * it stores none of them and each result says why (the refused one its
 * reason, the others FAILED_PRECONDITION).
 */
NQ_API int nq_enqueue_chain(nq_client *c, const nq_job_spec *specs, size_t n,
    nq_enqueue_result *results);
NQ_API int nq_get(nq_client *c, const char *id, nq_job **out);
/* Waits until the job is in a final state, at most timeout_ms (0: forever).
 * NQ_ETIMEDOUT when it is not final by then. */
NQ_API int nq_wait(
    nq_client *c, const char *id, uint64_t timeout_ms, nq_job **out);
/* Cancels a job. One that waits ends canceled at once; a leased one is
 * marked (nq_job_cancel_requested): its worker learns it at its next
 * Extend and stops it, and the job ends canceled, never retried.
 * NQ_EPRECOND when it ended already; the job as it is then is returned
 * either way when out != NULL. */
NQ_API int nq_cancel(nq_client *c, const char *id, nq_job **out);
/*
 * Lists jobs the broker stores, oldest first, without their payloads: one
 * page of at most limit jobs that match every filter given. A page may
 * hold fewer (the broker looks at a bounded number of jobs per call):
 * nq_job_list_next is where the next page starts (its after_id), "" once
 * the list reached its end.
 */
typedef struct nq_list_opts {
	const char *queue;    /* NULL or "": any */
	nq_state state;       /* 0: any */
	const char *type;     /* NULL or "": any */
	uint32_t limit;       /* 0: 100; more than 1000: 1000 */
	const char *after_id; /* jobs after this id; NULL: from the first */
} nq_list_opts;

typedef struct nq_job_list nq_job_list;

NQ_API int nq_list(nq_client *c, const nq_list_opts *opts, nq_job_list **out);
NQ_API size_t nq_job_list_count(const nq_job_list *l);
/* Job i of the page, owned by the list; NULL past the end. */
NQ_API const nq_job *nq_job_list_at(const nq_job_list *l, size_t i);
NQ_API const char *nq_job_list_next(const nq_job_list *l);
NQ_API void nq_job_list_free(nq_job_list *l);
/* Cancels every job of queue in state (NQ_STATE_READY, _SCHEDULED or
 * _LEASED), of type unless it is NULL; *canceled (may be NULL) gets how
 * many. */
NQ_API int nq_cancel_bulk(nq_client *c, const char *queue, nq_state state,
    const char *type, uint32_t *canceled);
NQ_API int nq_pause(nq_client *c, const char *queue);
NQ_API int nq_resume(nq_client *c, const char *queue);

/*
 * Queue policies (admin): rows of (queue, key, value, source), one per key
 * of each queue, in the broker's order of keys. value is "" when the key
 * has none (no limit); source is "default", "file" or "runtime".
 */
typedef struct nq_queue_policy nq_queue_policy;

/* The policy of queue, or of every queue the broker knows or its queues
 * file names when queue is NULL or "". */
NQ_API int nq_queue_policy_get(
    nq_client *c, const char *queue, nq_queue_policy **out);
/* Sets runtime values, pairs "KEY=VALUE" (all or none: NQ_EINVAL names the
 * first bad key and changes nothing). out (may be NULL) gets the policy. */
NQ_API int nq_queue_policy_set(nq_client *c, const char *queue,
    const char *const *pairs, size_t n, nq_queue_policy **out);
/* Drops the runtime values of keys (n 0: all of them). */
NQ_API int nq_queue_policy_reset(nq_client *c, const char *queue,
    const char *const *keys, size_t n, nq_queue_policy **out);
NQ_API size_t nq_queue_policy_rows(const nq_queue_policy *p);
/* Row i's fields (each pointer may be NULL); NQ_EINVAL out of range. */
NQ_API int nq_queue_policy_row(const nq_queue_policy *p, size_t i,
    const char **queue, const char **key, const char **value,
    const char **source);
NQ_API void nq_queue_policy_free(nq_queue_policy *p);

/* Cron (admin): the schedules of the broker's queues file. Times are us
 * since the epoch, 0 for none; last_job_state is NQ_STATE_UNSPECIFIED when
 * the schedule never enqueued a job or that job is gone. The strings live
 * as long as the list. */
typedef struct nq_cron_list nq_cron_list;
typedef struct nq_cron_row {
	const char *name, *cron, *zone, *queue, *type;
	const char *missed; /* "skip" or "once" */
	uint64_t last_tick_us, next_tick_us;
	const char *last_job_id; /* "" when none */
	nq_state last_job_state;
} nq_cron_row;
NQ_API int nq_cron_list_get(nq_client *c, nq_cron_list **out);
NQ_API size_t nq_cron_list_count(const nq_cron_list *l);
/* Row i; NQ_EINVAL out of range. */
NQ_API int nq_cron_list_row(const nq_cron_list *l, size_t i, nq_cron_row *out);
NQ_API void nq_cron_list_free(nq_cron_list *l);
/* Enqueues schedule name's job now, once; its id (NQ_ID_MAX bytes) goes to
 * id_out. NQ_ENOTFOUND for a name the queues file has not. */
NQ_API int nq_cron_trigger(nq_client *c, const char *name, char *id_out);

/*
 * Batches. A batch groups jobs: they join it with nq_job_spec.batch_id,
 * in one or more enqueues, until it is sealed. Its callbacks are job
 * specs (NULL: none) the broker enqueues exactly once when the sealed
 * batch completes: on_complete when every job ended, on_success when
 * every job succeeded. A callback job has one parent result, named by the
 * batch id, whose result is the batch's counts as JSON
 * ({"batch","total","succeeded","dead","canceled","expired"};
 * nq-worker: NQ_PARENT_RESULTS). A callback may not name a batch, parents
 * or an idempotency key. Cancel seals the batch and cancels its jobs that
 * have not ended. A completed batch stays readable for the broker's
 * --result-ttl.
 */
#define NQ_BATCH_NAME_MAX 129 /* a queue or type name, NUL included */
typedef struct nq_batch_callback {
	char queue[NQ_BATCH_NAME_MAX], type[NQ_BATCH_NAME_MAX]; /* "": none */
	char job_id[NQ_ID_MAX]; /* "" until enqueued */
} nq_batch_callback;
typedef struct nq_batch_info {
	char id[NQ_ID_MAX];
	bool sealed;
	bool cancel_requested;
	uint64_t created_us, completed_us; /* completed_us 0: not yet */
	/* jobs added, not ended yet, and ended by how */
	uint64_t total, pending, succeeded, dead, canceled, expired;
	/* nq_batch_get: the pending jobs by state, when at most 10,000 are
	 * pending; else 0 */
	uint64_t waiting, scheduled, ready, leased;
	nq_batch_callback on_success, on_complete;
} nq_batch_info;
/*
 * With a shard map a batch lives on one shard, with its jobs and its
 * callbacks: the shard of its callbacks' queues (both on one shard), or
 * with nq_batch_create_in the shard of queue (the callbacks' too); a
 * batch without callbacks needs queue. Otherwise NQ_EINVAL, naming the
 * queues and their shards. A job whose queue is on another shard than
 * its batch is refused, NQ_EINVAL naming the batch's shard, the queue
 * and its shard. Seal, get and cancel ask the shards in turn; list
 * merges the shards' pages by id (at most 1000 a page).
 */
/* Creates a batch (sealed at once with seal: it then completes when
 * created, with no jobs); its id goes to id (NQ_ID_MAX bytes). */
NQ_API int nq_batch_create(nq_client *c, const nq_job_spec *on_success,
    const nq_job_spec *on_complete, bool seal, char *id);
/* nq_batch_create on the shard of queue (NULL or "": as nq_batch_create;
 * with one broker, queue is only checked). */
NQ_API int nq_batch_create_in(nq_client *c, const char *queue,
    const nq_job_spec *on_success, const nq_job_spec *on_complete, bool seal,
    char *id);
/* Enqueues n jobs as a new batch, sealed, in one request: *batch_id
 * gets its id ("" when every job was refused, and no batch is kept).
 * With a shard map, every job and callback on one shard. */
NQ_API int nq_batch_enqueue(nq_client *c, const nq_job_spec *specs, size_t n,
    const nq_job_spec *on_success, const nq_job_spec *on_complete,
    nq_enqueue_result *results, char *batch_id);
/* Seal, get, cancel: the batch as it is then in *out (may be NULL);
 * cancel also says how many jobs it canceled (or marked, when leased). */
NQ_API int nq_batch_seal(nq_client *c, const char *id, nq_batch_info *out);
NQ_API int nq_batch_get(nq_client *c, const char *id, nq_batch_info *out);
NQ_API int nq_batch_cancel(
    nq_client *c, const char *id, nq_batch_info *out, uint32_t *canceled);
/* Up to cap batches with ids after after_id (NULL: from the first),
 * oldest first, in out; *n how many, next (NQ_ID_MAX bytes) the after_id
 * of the next page ("" at the end). */
NQ_API int nq_batch_list(nq_client *c, const char *after_id, size_t cap,
    nq_batch_info *out, size_t *n, char *next);

/*
 * Per-queue statistics, as one nq_stats call returned them. Opaque, so that
 * a number the broker adds changes nothing here: each is read by the name of
 * its field in nq.v1.QueueStats ("ready", "enqueued_total", ...). Fields
 * ending in _us are times in microseconds since the epoch (0: none); the
 * others count jobs.
 */
typedef struct nq_queue_stats nq_queue_stats;

/* The broker's first numbers. This struct never grows (that would change
 * the ABI): every number of nq.v1.BrokerStats, later ones included, is read
 * with nq_queue_stats_broker. */
typedef struct nq_broker_stats {
	uint64_t commits;
	uint64_t uptime_ms;
	uint64_t jobs_stored;
} nq_broker_stats;

/* Stats of one queue, or of all when queue is NULL or "". *out holds *n
 * queues (indexes 0 to *n - 1 below); free it with nq_queue_stats_free.
 * broker may be NULL. */
NQ_API int nq_stats(nq_client *c, const char *queue, nq_queue_stats **out,
    size_t *n, nq_broker_stats *broker);
NQ_API void nq_queue_stats_free(nq_queue_stats *s);
/* The name of queue i; NULL when i is out of range. */
NQ_API const char *nq_queue_stats_queue(const nq_queue_stats *s, size_t i);
NQ_API bool nq_queue_stats_paused(const nq_queue_stats *s, size_t i);
/* The number called field of queue i. NQ_EINVAL when i is out of range or
 * field is not a number of nq.v1.QueueStats that this libnq knows. */
NQ_API int nq_queue_stats_get(
    const nq_queue_stats *s, size_t i, const char *field, uint64_t *out);
/* The k-th name nq_queue_stats_get takes, in the order of nq.v1.QueueStats;
 * NULL past the last. */
NQ_API const char *nq_queue_stats_field(size_t k);
/* The number called field of the broker's stats that came with s
 * ("commits", "uptime_ms", "jobs_stored", ...: the uint64 fields of
 * nq.v1.BrokerStats). NQ_EINVAL for a name this libnq does not know. */
NQ_API int nq_queue_stats_broker(
    const nq_queue_stats *s, const char *field, uint64_t *out);
/* Dead jobs / finished jobs (succeeded + dead) of queue i since the broker
 * started; 0 when nothing finished yet. */
NQ_API double nq_dead_letter_ratio(const nq_queue_stats *s, size_t i);
/* With fairness, queue i's largest groups (by ready jobs; a bounded
 * number of them, then "other" adding up the rest): how many there are. */
NQ_API size_t nq_queue_stats_groups(const nq_queue_stats *s, size_t i);
/* Group k of queue i: its name (valid until s is freed), its ready and its
 * leased jobs. NQ_EINVAL when i or k is out of range. */
NQ_API int nq_queue_stats_group(const nq_queue_stats *s, size_t i, size_t k,
    const char **name, uint64_t *ready, uint64_t *leased);

/* A worker the broker saw fetch in the last 5 minutes (nq.v1.WorkerStats).
 * Strings are valid until the nq_queue_stats is freed; queues is the
 * comma-separated list its last fetch named. */
typedef struct nq_worker_stats {
	const char *worker_id;
	const char *queues;
	uint64_t free_slots; /* max_jobs of its last fetch */
	uint64_t leased;     /* leases its connection holds */
	uint64_t last_seen_us;
} nq_worker_stats;

/* How many workers came with s (stats of one queue: those fetching from
 * it). */
NQ_API size_t nq_queue_stats_workers(const nq_queue_stats *s);
/* Worker k; NQ_EINVAL when k is out of range. */
NQ_API int nq_queue_stats_worker(
    const nq_queue_stats *s, size_t k, nq_worker_stats *out);

/* ---- low-level worker protocol ---- */

/* Leases up to max_jobs jobs from the queues, waiting up to wait_ms for one
 * to become ready. *jobs is an array of *n jobs; free with nq_jobs_free. */
NQ_API int nq_fetch(nq_client *c, const char *worker_id,
    const char *const *queues, size_t nqueues, uint32_t max_jobs,
    uint64_t wait_ms, uint64_t lease_ms, nq_job ***jobs, size_t *n);
NQ_API void nq_jobs_free(nq_job **jobs, size_t n);
/* Extends one lease by lease_ms from now. NQ_EPRECOND when the lease is no
 * longer held (expired, or the job was handed to someone else). */
NQ_API int nq_extend(
    nq_client *c, const char *id, uint64_t lease_token, uint64_t lease_ms);

typedef enum nq_outcome {
	NQ_OUTCOME_SUCCEEDED = 1,
	NQ_OUTCOME_FAILED = 2,
	NQ_OUTCOME_RELEASED = 3,
} nq_outcome;

typedef struct nq_completion {
	const char *id;
	uint64_t lease_token;
	nq_outcome outcome;
	const void *result;
	size_t result_len;
	const char *error;
	bool non_retryable;
	bool schema_rejected; /* failed for good: dead_reason schema_rejected */
	uint64_t retry_after_ms;
	uint64_t started_us;
	uint64_t finished_us;
} nq_completion;

/* Sends completions in one message on the results socket. Returns once the
 * message is queued for sending; there is no reply (a completion that does
 * not arrive means the lease expires and the job runs again). */
NQ_API int nq_complete(
    nq_client *c, const char *worker_id, const nq_completion *items, size_t n);

/* ---- worker ---- */

typedef struct nq_worker nq_worker;
typedef struct nq_result nq_result;

/*
 * A handler runs one job on one of the worker's threads (at most
 * concurrency of them run handlers at once; a thread may run many jobs one
 * after another, so keep no per-job state in thread-local storage). It
 * returns NQ_OUTCOME_SUCCEEDED or NQ_OUTCOME_FAILED and may set a result or
 * an error on res; or NQ_OUTCOME_RELEASED when it could not start the job
 * for a reason of its own host (no descriptors, say): the job goes back to
 * its queue at once, and the attempt does not count. The lease is extended
 * automatically while it runs. It should check nq_worker_draining() in long
 * loops and give up early when it turns true.
 */
typedef nq_outcome (*nq_handler_cb)(
    const nq_job *job, nq_result *res, void *arg);

NQ_API void nq_result_set(nq_result *res, const void *data, size_t len);
NQ_API void nq_result_error(
    nq_result *res, const char *message, bool non_retryable);
/* The handler does not take the job's payload schema version
 * (nq_job_schema_version): the job fails for good, never retried, with
 * dead_reason schema_rejected. The handler returns NQ_OUTCOME_FAILED.
 * message NULL: a default one. */
NQ_API void nq_result_schema_rejected(nq_result *res, const char *message);
NQ_API void nq_result_retry_after(nq_result *res, uint64_t ms);
/* Whether the running job was canceled, or passed its finish_within: the
 * handler should stop and return soon (its outcome is kept as the last
 * attempt's, and the job ends canceled or dead all the same). Learnt at
 * the worker's next Extend. False for a job not run by an nq_worker. */
NQ_API bool nq_job_canceled(const nq_job *job);
/* Reports the running job's progress: pct 0-100 (more is 100) and a note
 * (NULL: none; cut at 200 bytes). It goes to the broker with an Extend
 * soon after (at most one a second for progress), and shows in get and
 * in progress events. NQ_EINVAL for a job not run by an nq_worker. */
NQ_API int nq_job_progress(const nq_job *job, unsigned pct, const char *note);

/* With conn.brokers (a shard map) the worker fetches from every shard
 * that owns one of its queues, on connections of its own per shard, and
 * completes each job to the shard that leased it; concurrency is shared
 * out equally between those shards (at least one slot each). */
typedef struct nq_worker_opts {
	nq_client_opts conn;       /* work_url and results_url are used */
	const char *const *queues; /* NULL: {"default"} */
	size_t nqueues;
	int concurrency;   /* slots; 0: 1 */
	uint64_t lease_ms; /* 0: 30000 */
	uint64_t grace_ms; /* drain: wait this long for handlers; 0: 10000 */
	uint64_t poll_ms;  /* long-poll length; 0: 2000 */
	const char *worker_id; /* NULL: host-pid-random */
	/* Extends running leases (and learns of cancels) this often; 0: a
	 * third of lease_ms. Must be shorter than lease_ms. */
	uint64_t heartbeat_ms;
} nq_worker_opts;

NQ_API int nq_worker_open(nq_worker **out, const nq_worker_opts *opts);
/* Registers the handler for a job type; "*" handles every type without one. */
NQ_API int nq_worker_handle(
    nq_worker *w, const char *type, nq_handler_cb cb, void *arg);
/* Runs until nq_worker_stop; returns NQ_OK after a clean drain. */
NQ_API int nq_worker_run(nq_worker *w);
/* Starts the drain: no new fetches; running handlers get grace_ms to finish;
 * jobs still running then are released so they run elsewhere at once. A
 * fetch parked at the broker is answered first (within poll_ms; its jobs
 * are released too), so nq_worker_run returns up to poll_ms after the
 * handlers are done. Safe to call from any thread, not from a signal
 * handler. */
NQ_API void nq_worker_stop(nq_worker *w);
NQ_API bool nq_worker_draining(const nq_worker *w);
NQ_API const char *nq_worker_id(const nq_worker *w);
/* Slots busy and total, for metrics. */
NQ_API void nq_worker_slots(const nq_worker *w, int *busy, int *total);
NQ_API void nq_worker_close(nq_worker *w);

#ifdef __cplusplus
}
#endif
#endif /* NQ_NQ_H */
