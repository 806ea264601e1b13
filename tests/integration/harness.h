/*
 * Integration test harness: starts the real nq binaries (nq-broker,
 * nq-worker, nqctl) on loopback ports (the broker's pinned by
 * itest_pin_port, the rest port 0; every one read back from the
 * --ready-file), gives each test a fresh temp
 * directory, bounds every wait, and kills every child it started, also when
 * an assertion fails (cmocka teardown) or the test program exits (atexit).
 *
 * Functions return 0 on success and print what went wrong to stderr
 * otherwise, so that a failed assertion on their result comes with a reason.
 */
#ifndef ITEST_HARNESS_H
#define ITEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "nq/nq.h"
#include "nqi/queue_fields.h"

#define ITEST_MAX_PROCS 32
#define ITEST_URL_MAX 256

/* A child process started by the harness, in its own process group. */
typedef struct itest_proc {
	pid_t pid;     /* 0 once reaped */
	char name[48]; /* "broker.1", "worker.2", ... */
	char log[PATH_MAX];
	char ready[PATH_MAX]; /* its --ready-file, "" when none */
	bool exited;          /* reaped; status holds the wait status */
	int status;
} itest_proc;

/* Where one test's broker listens and where its files go. The addresses
 * say port 0 until the first start, which pins them (itest_pin_port); a
 * restart binds the same ones again. */
typedef struct itest_env {
	char dir[200]; /* fresh temp dir, removed when the test passed */
	char data_dir[PATH_MAX]; /* the broker's --data-dir, kept over restarts
	                          */
	char api_url[ITEST_URL_MAX];
	char work_url[ITEST_URL_MAX];
	char results_url[ITEST_URL_MAX];
	char events_url[ITEST_URL_MAX];
	char dlq_url[ITEST_URL_MAX]; /* ipc:// in dir: known before it runs */
	char http_addr[ITEST_URL_MAX];
	itest_proc *broker; /* the running broker, NULL when none */
	itest_proc procs[ITEST_MAX_PROCS];
	int nprocs;
	int held[8]; /* sockets of itest_unserved_url */
	size_t nheld;
	int pins[16]; /* lock files of the ports itest_pin_port chose */
	size_t npins;
	int nruns;   /* nqctl runs, to name their output files */
	bool passed; /* set by itest_pass(); keeps logs otherwise */
} itest_env;

/* Output of one nqctl run. */
typedef struct itest_run {
	int code;  /* exit status; -1 when killed (timeout or signal) */
	char *out; /* stdout, NUL terminated */
	char *err; /* stderr, NUL terminated */
	uint64_t elapsed_ms;
} itest_run;

/* ---- clocks and files ---- */

uint64_t itest_now_ms(void); /* monotonic */
uint64_t itest_wall_us(void);
void itest_sleep_ms(uint64_t ms);
/* When addr (a URL or host:port) says port 0, writes into it a loopback
 * port below the kernel's range for outgoing connections that no other
 * test holds, held until the env closes. A port that port 0 gave is free
 * only until any process connects anywhere, so a daemon restarted on it
 * could find it taken; one of these stays free for the restart. Returns
 * 0, or an errno when no port could be had (addr is then unchanged). */
int itest_pin_port(itest_env *e, char *addr, size_t len);

/* The port of a URL or host:port (-1 when it has none). */
int itest_url_port(const char *url);
/* A tcp:// URL where nothing listens and nothing can while e is open (a
 * socket bound there and never listening): a dial is refused. */
int itest_unserved_url(itest_env *e, char *out, size_t len);
/* url, or while it still says port 0 (no broker has started yet: port 0
 * is no address to dial) a URL where nothing listens, written into buf. */
const char *itest_dial_url(
    itest_env *e, const char *url, char *buf, size_t len);
/* Writes "<dir>/<name>" into out. */
void itest_path(const itest_env *e, const char *name, char *out, size_t len);
/* Reads a whole file into a malloc'd NUL terminated buffer. */
int itest_read_file(const char *path, char **out, size_t *len);
/* Writes an executable shell script "<dir>/<name>" holding body, and its
 * path into out. */
int itest_write_script(const itest_env *e, const char *name, const char *body,
    char *out, size_t len);

/* ---- the environment of one test ---- */

/* Makes a temp dir under $TMPDIR (or /tmp) and picks free ports. */
int itest_env_open(itest_env **out, const char *name);
/* Kills every child (SIGTERM, then SIGKILL after a few seconds), prints the
 * tail of every log when the test did not pass, removes the temp dir when it
 * did. NULL-safe. */
void itest_env_close(itest_env *e);
/* Marks the test as passed: the last statement of every test body. */
void itest_pass(itest_env *e);
/* cmocka setup/teardown: *state becomes an itest_env. */
int itest_setup(void **state);
int itest_teardown(void **state);

/* ---- processes ---- */

/* Starts argv[0] (a path) with argv, stdout and stderr appended to
 * "<dir>/<name>.log", stdin from /dev/null, in its own process group, NQ_*
 * variables removed from its environment and the NULL-terminated "K=V"
 * strings of extra_env added. */
int itest_spawn(itest_env *e, const char *name, const char *const *argv,
    const char *const *extra_env, itest_proc **out);
/* Waits until p wrote its --ready-file (at most timeout_ms); fails at
 * once, dumping its log, when p exits first. */
int itest_wait_bound(itest_proc *p, uint64_t timeout_ms);
/* The URL p's ready file gives for socket name ("api", "http", ...). */
int itest_bound_url(
    const itest_proc *p, const char *name, char *out, size_t len);
/* Sends sig to the process (not its group). */
int itest_signal(itest_proc *p, int sig);
/* Waits up to timeout_ms for the process to exit; ETIMEDOUT otherwise. */
int itest_wait_exit(itest_proc *p, uint64_t timeout_ms);
/* SIGKILLs the process, its process group and every descendant (also those
 * that moved to their own groups), then reaps it. */
int itest_kill_tree(itest_proc *p);
/* True while process group pgid holds a process that is not a zombie
 * (zombies keep a group existing until their parent reaps them). */
bool itest_group_alive(pid_t pgid);
/* True while the process has not exited (reaps it when it has). */
bool itest_alive(itest_proc *p);
/* Prints the last lines of the process's log to stderr. */
void itest_dump_log(const itest_proc *p, int lines);

/* ---- broker and workers ---- */

/* Starts nq-broker on the env's addresses and data dir with the extra
 * flags and "K=V" environment (NULL-terminated, may be NULL), waits for
 * its ready file and writes the addresses it bound into e. */
int itest_broker_spawn(
    itest_env *e, const char *const *flags, const char *const *extra_env);
/* itest_broker_spawn, then waits until its api socket answers a stats
 * request (at most 20 s). */
int itest_broker_start(itest_env *e, const char *const *flags);
/* Sends sig to the broker and waits up to 20 s for it to exit (SIGKILL after
 * that). *status gets the wait status when status != NULL. */
int itest_broker_stop(itest_env *e, int sig, int *status);
/* True (with a message) when the broker exited without itest_broker_stop;
 * the waits below check it too and give up at once. */
bool itest_broker_died(itest_env *e);
/* Polls the api socket with stats until it answers, at most timeout_ms. */
int itest_broker_wait_ready(itest_env *e, uint64_t timeout_ms);

/* Starts nq-worker dialing the env's broker, with --http on port 0 and a
 * --ready-file (itest_wait_bound, itest_bound_url "http" tell the address),
 * and the extra flags (NULL-terminated): --handler, --queues, ... */
int itest_worker_start(
    itest_env *e, const char *const *flags, itest_proc **out);

/* Runs nqctl --api <env api> args... (NULL-terminated list), bounded by
 * timeout_ms (killed after that: code -1). Free with itest_run_free. */
int itest_nqctl(itest_env *e, uint64_t timeout_ms, itest_run *run, ...)
    __attribute__((sentinel));
/* Same, with an explicit argv (global flags included, no --api added). */
int itest_nqctl_argv(
    itest_env *e, uint64_t timeout_ms, const char *const *args, itest_run *run);
/* Same for another program (the path of its binary), e.g. nq-bench. */
int itest_tool_argv(itest_env *e, const char *prog, uint64_t timeout_ms,
    const char *const *args, itest_run *run);
void itest_run_free(itest_run *run);
/* The job id nqctl printed: the first word of stdout, 16 hex digits. */
int itest_run_id(const itest_run *run, char id[NQ_ID_MAX]);
/* Parses a run's stdout as one JSON object. */
int itest_run_json(const itest_run *run, json_t **out);
/* The string member key of obj, or NULL. */
const char *itest_json_str(const json_t *obj, const char *key);
/* The integer member key of obj, or -1. */
long long itest_json_int(const json_t *obj, const char *key);

/* ---- libnq helpers ---- */

/* Opens a libnq client on the env's sockets; timeout_ms 0: 10 s. */
int itest_client(const itest_env *e, int timeout_ms, nq_client **out);
/* Enqueues one job with a text payload (content_type text/plain). */
int itest_enqueue(nq_client *c, const char *queue, const char *type,
    const char *payload, char id[NQ_ID_MAX]);
/* Polls nq_get until the job is in state, at most timeout_ms. On success
 * *out (when not NULL) gets the job; on timeout prints the last state. */
int itest_wait_state(nq_client *c, const char *id, nq_state state,
    uint64_t timeout_ms, nq_job **out);
/* Enqueues one job on queue and leases it (as worker "itest", for
 * lease_ms); *out gets the job. */
int itest_lease_one(
    nq_client *c, const char *queue, uint64_t lease_ms, nq_job **out);
/* Polls nq_get until the job is gone (NQ_ENOTFOUND: its record was
 * deleted), at most timeout_ms. */
int itest_wait_gone(nq_client *c, const char *id, uint64_t timeout_ms);
/* One queue's numbers of nq_stats, by the names of nqi/queue_fields.h. */
typedef struct itest_qstats {
#define ITEST_QSTAT_(name, kind, ...) NQI_QF_CORE_##kind(uint64_t name;)
	NQI_QUEUE_FIELDS(ITEST_QSTAT_)
#undef ITEST_QSTAT_
	uint64_t oldest_ready_us;
	bool paused;
} itest_qstats;
/* Stats of one queue; zeroed when the broker does not know it yet. */
int itest_queue_stats(nq_client *c, const char *queue, itest_qstats *out,
    nq_broker_stats *broker);
/* Polls a file until it holds at least min_lines lines, at most timeout_ms. */
int itest_wait_lines(const char *path, int min_lines, uint64_t timeout_ms);
/* Writes text to "<dir>/<name>"; its path goes to out. */
int itest_write_file(const itest_env *e, const char *name, const char *text,
    char *out, size_t len);
/* Polls p's log until it holds needle count times, at most timeout_ms. */
int itest_wait_log(
    const itest_proc *p, const char *needle, int count, uint64_t timeout_ms);
/* True when s is a job id: 16 lowercase hex digits. */
bool itest_is_id(const char *s);

#endif
