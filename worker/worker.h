/*
 * nq-worker internals. The worker runs each job as a shell command:
 * handler.c turns a job into a command run and the run into an outcome;
 * proc.c runs one command (its own process group, stdin fed, stdout and
 * stderr read, killed at its deadline); the children registry lets the main
 * thread kill whatever still runs when the worker stops, and guard.c's
 * process does the same when the worker dies.
 */
#ifndef NQ_WORKER_H
#define NQ_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "nq/nq.h"
#include "nqi/http.h"
#include "nqi/prom.h"

#define WORKER_OUTPUT_MAX (1u << 20) /* stdout kept as the result */
#define WORKER_ERR_TAIL 2048         /* last bytes of stderr kept */
#define WORKER_KILL_GRACE_MS 2000    /* SIGTERM, then SIGKILL this later */
/* How long main waits for handler callbacks after the drain. */
#define WORKER_HANDLERS_WAIT_MS 10000
#define WORKER_TIMEOUT_DEFAULT_MS 300000

/* ---- guard: ends the commands of a worker that died (guard.c) ---- */

typedef struct worker_guard {
	int fd;    /* the pipe to the guard; -1: none */
	pid_t pid; /* the guard process */
} worker_guard;

/* Forks the guard, which follows up to cap groups. Call it before any
 * thread exists. Returns 0 or an errno; on failure nothing runs. */
int worker_guard_start(worker_guard *g, size_t cap);
/* Tells the guard that group pgid started (running) or ended. Called under
 * the registry's lock, so that the guard sees them in order. */
void worker_guard_tell(worker_guard *g, pid_t pgid, bool running);
/* Closes the pipe (the guard ends what it still knows) and reaps the
 * guard. Blocks for at most WORKER_KILL_GRACE_MS. NULL-safe on fd -1. */
void worker_guard_stop(worker_guard *g);

/* ---- children: the process groups of the commands now running ---- */

typedef struct worker_children {
	pthread_mutex_t mtx;
	pthread_cond_t cv; /* signaled when a child leaves */
	pid_t *pids;       /* each the id of its process group too */
	size_t n, cap;
	bool closed; /* the worker is stopping: no new children */
	worker_guard guard;
	/* the descriptor limit commands get: the one nq-worker was started
	 * with, before it raised its own (rlim_cur 0: leave it) */
	struct rlimit nofile;
} worker_children;

/* Also starts the guard: call it before any thread exists. */
int worker_children_init(worker_children *c, size_t cap);
void worker_children_destroy(worker_children *c);
/* Refuses new children from now on and sends sig to every running group. */
void worker_children_close(worker_children *c, int sig);
/* Sends sig to every running group. */
void worker_children_signal(worker_children *c, int sig);
/* Waits until no child runs or timeout_ms passed; true when none runs. */
bool worker_children_wait_empty(worker_children *c, uint64_t timeout_ms);
/* True once worker_children_close was called. */
bool worker_children_closed(worker_children *c);

/* ---- proc: one command run ---- */

typedef struct worker_proc_spec {
	const char *command; /* run as /bin/sh -c COMMAND */
	char *const *envp;   /* complete environment */
	const void *input;   /* fed to stdin, then stdin is closed */
	size_t input_len;
	uint64_t timeout_ms; /* SIGTERM to the group then, SIGKILL later */
	worker_children *children;
	/* The job it runs (NULL: none): once nq_job_canceled() turns true,
	 * SIGTERM to the group, SIGKILL grace_ms later; and what the command
	 * writes to WORKER_PROGRESS_FD is its progress. */
	const nq_job *job;
	uint64_t grace_ms;
} worker_proc_spec;

/* The command's descriptor for lines "progress PCT [NOTE]" (NQ_PROGRESS_FD). */
#define WORKER_PROGRESS_FD 3
#define WORKER_PROGRESS_FD_TEXT "3"
/* A progress line longer than this is not one. */
#define WORKER_PROGRESS_LINE_MAX 512

typedef struct worker_proc_result {
	int status;      /* as from waitpid */
	bool timed_out;  /* killed at the deadline */
	bool stopped;    /* signalled because its job was canceled */
	bool too_large;  /* stdout passed WORKER_OUTPUT_MAX */
	uint8_t *output; /* stdout (malloc'd, the caller frees) */
	size_t output_len;
	char
	    err_tail[WORKER_ERR_TAIL + 1]; /* last bytes of stderr, NUL-ended */
	size_t err_len;
} worker_proc_result;

/*
 * Runs the command and blocks until it has exited. Returns 0 with *res
 * filled in; ECANCELED when the worker is stopping (nothing was started);
 * or the errno of what failed while starting it.
 */
int worker_proc_run(const worker_proc_spec *spec, worker_proc_result *res);

/* ---- payload: the claim check's fetch (payload.c) ---- */

/* The largest blob a worker fetches: it holds the bytes in memory while
 * the command reads them. */
#define WORKER_BLOB_MAX (256u << 20)

typedef struct worker_payload {
	bool fetched;   /* the bytes below replace the inline payload */
	bool permanent; /* on failure: the blob is missing or not what the
	                 * job declares, which no retry mends */
	uint8_t *data;  /* malloc'd, the caller frees */
	size_t len;
} worker_payload;

/*
 * Fetches the bytes of the job's payload_ref when it is file://, http://
 * or https:// (anything else, or none, is NQ_OK with fetched false: the
 * command has the ref in NQ_PAYLOAD_REF), waiting at most timeout_ms, and
 * checks them against the job's payload_size and payload_sha256. Blocks.
 * On failure why names the ref and what was wrong, and out->permanent
 * tells a broken blob from a passing failure (a network or server error).
 */
int worker_payload_fetch(const nq_job *job, uint64_t timeout_ms,
    worker_payload *out, char *why, size_t why_len);

/* parents.c: writes what the job's parents left (depends_on) to a new
 * file as a JSON object {parent_id: result}, its name in path ("" when
 * the job has none); the caller unlinks it. 0 or an errno. */
int worker_parents_file(const nq_job *job, char *path, size_t len);

/* ---- handler: jobs in, outcomes out ---- */

typedef struct worker_stats {
	pthread_mutex_t mtx;
	uint64_t done, failed, released;
	/* handler callbacks in progress: one that outlived the drain still
	 * uses its handler until it returns */
	atomic_int running;
	/* a command could not start for want of descriptors (or processes,
	 * or memory) and none has started since: NQ-FD-EXHAUSTED was logged */
	atomic_bool short_of_fds;
} worker_stats;

/* How an attempt ended, as nq_worker_jobs_total counts it. */
typedef enum worker_outcome {
	WORKER_SUCCEEDED,
	WORKER_FAILED,
	WORKER_RELEASED,
	WORKER_NOUTCOMES,
} worker_outcome;

typedef struct worker_obs worker_obs;

typedef struct worker_handler {
	const char *type; /* a job type, or "*" for every other type */
	const char *command;
	worker_children *children;
	worker_stats *stats;
	worker_obs *obs;   /* told when a job arrives */
	uint64_t grace_ms; /* a canceled job's command: SIGTERM, then SIGKILL */
	/* Metrics of this handler, labelled with its type ("*" included,
	 * so that the series are bounded by the command line). */
	atomic_uint_fast64_t jobs[WORKER_NOUTCOMES];
	nqi_prom_hist *duration_s; /* succeeded and failed runs */
} worker_handler;

/* ---- descriptors ---- */

/* What nq-worker holds besides HTTP and its jobs: stdio, the guard's
 * pipe, libnq's sockets and nng's pollers, the readiness probe's client;
 * with room to spare. */
#define WORKER_FDS_BASE 64
/* What one running job holds at most: its four pipes (stdin, stdout,
 * stderr, progress) while the command starts, then our ends and a pidfd,
 * and /proc while its group ends. */
#define WORKER_FDS_PER_JOB 8
/* Fewer HTTP connections than this is no HTTP worth serving. */
#define WORKER_HTTP_CONNS_MIN 4

/* ---- obs: /metrics, /healthz and /readyz ---- */

/*
 * What the HTTP endpoints need. The worker is ready once a request on the
 * broker's work socket has been answered (a fetched job, or the probe
 * thread's round trip) and until it starts draining.
 */
struct worker_obs {
	nq_worker *w;
	unsigned http_max_connections; /* as fitted to the descriptors */
	uint64_t http_timeout_ms;
	const worker_handler *handlers;
	size_t nhandlers;
	nq_client_opts conn; /* for the probe: work socket, token, TLS */
	nqi_http *http;
	atomic_bool reached;
	pthread_mutex_t mtx; /* guards why and stop */
	pthread_cond_t cv;   /* stop */
	char why[320];       /* why not reached yet */
	bool stop;
	bool probe_started;
	pthread_t probe;
};

/*
 * Serves addr ("" serves nothing) for the open worker o->w and starts the
 * probe. On failure err names what was wrong and nothing runs; returns 0,
 * NQ_EINVAL (a bad address), NQ_EUNAVAIL (port taken) or NQ_ENOMEM.
 */
int worker_obs_start(worker_obs *o, const char *addr, char *err, size_t len);
/* Stops serving and the probe; blocks until both are done. */
void worker_obs_stop(worker_obs *o);
/* Marks the broker as reached (a job came from a fetch). */
void worker_obs_reached(worker_obs *o, const char *via);

/* The nq_handler_cb of every handler; arg is its worker_handler. */
nq_outcome worker_handle_cb(const nq_job *job, nq_result *res, void *arg);

#endif
