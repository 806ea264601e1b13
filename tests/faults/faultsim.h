/*
 * faultsim: the programs behind tests/faults/run, a total-queue checker in
 * the spirit of Jepsen's.
 *
 *   load    enqueues unique values while faults run, retries each one with
 *           its idempotency key until the broker confirms it, and polls
 *           confirmed jobs to note when their success was first seen;
 *   work    a worker on libnq's low-level protocol that records every
 *           execution with its lease token, lease expiry and extensions;
 *   handle  the command nq-worker runs for each job, recording the same
 *           (less the lease, which nq-worker does not pass on);
 *   drain   waits until every confirmed job has ended and writes where each
 *           one ended (broker state, nq-dlq) and any job nobody enqueued;
 *   check   reads every record offline and reports lost jobs, duplicate
 *           executions (each with the fault that explains it), executions
 *           after a seen success, overlapping leases, values never enqueued
 *           and jobs dead-lettered although they succeeded;
 *   crowd   the crowds beside the load: clients parked in waits, one that
 *           never reads its replies, idle HTTP connections;
 *   sample  the broker's own view of the queue (leased, ready) every 10 ms,
 *           for the limits scenario.
 *
 * Records are text lines, one write(2) each on an O_APPEND descriptor, so
 * that processes killed at any moment leave whole lines. Times are wall
 * clock microseconds: every process runs on one host, so the broker's lease
 * expiries and ours share a clock.
 */
#ifndef FAULTSIM_H
#define FAULTSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_QUEUE "faults"
#define FS_TYPE "fault"

/* ---- what a job does, carried in its payload ---- */

typedef enum fs_kind {
	FS_KIND_OK,     /* succeeds on its first run */
	FS_KIND_FLAKY,  /* fails its first `fails` attempts, then succeeds */
	FS_KIND_POISON, /* always fails, retryably; max_attempts 3 */
	FS_KIND_PERM,   /* fails for good on its first run */
} fs_kind;

typedef struct fs_plan {
	uint64_t value; /* unique within one scenario */
	fs_kind kind;
	uint32_t work_ms;
	uint32_t fails;
} fs_plan;

#define FS_PAYLOAD_MAX 96

/* "v=<value> k=<kind> ms=<work_ms> f=<fails>"; returns the length. */
size_t fs_plan_format(const fs_plan *p, char buf[FS_PAYLOAD_MAX]);
/* Parses a payload written by fs_plan_format; NQ_EINVAL otherwise. */
int fs_plan_parse(const void *payload, size_t len, fs_plan *out);
const char *fs_kind_name(fs_kind k);
/* The outcome of a run of attempt n: 'S' success, 'F' a retryable
 * failure, 'P' a failure for good. */
char fs_plan_outcome(const fs_plan *p, uint32_t attempt);

/* ---- records ---- */

typedef struct fs_log {
	int fd;
} fs_log;

/* Opens path for appending (created when missing). */
int fs_log_open(fs_log *l, const char *path);
void fs_log_close(fs_log *l);
/* Formats one line (newline added) and writes it with one write(2). */
void fs_log_line(fs_log *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- small helpers ---- */

uint64_t fs_now_us(void);
void fs_sleep_ms(uint64_t ms);
/* A uniformly drawn number in [0, n); n > 0. Thread safe. */
uint64_t fs_rand(uint64_t n);
/* Replaces spaces and control characters so text fits in one field. */
void fs_field(char *s);
/* Parses a job id into its number; 0 when it is not one. */
uint64_t fs_id_num(const char *id);

/* u64 -> u32 map with open addressing; key 0 is not allowed. */
typedef struct fs_map {
	uint64_t *keys;
	uint32_t *vals;
	size_t cap, n;
} fs_map;

int fs_map_put(fs_map *m, uint64_t key, uint32_t val);
/* True and *val when key is present. */
bool fs_map_get(const fs_map *m, uint64_t key, uint32_t *val);
void fs_map_free(fs_map *m);
/* FNV-1a of a string, never 0: keys string maps. */
uint64_t fs_hash(const char *s);

/* ---- the subcommands; each returns the process exit status ---- */

int fs_cmd_load(int argc, char **argv);
int fs_cmd_work(int argc, char **argv);
int fs_cmd_handle(int argc, char **argv);
int fs_cmd_drain(int argc, char **argv);
int fs_cmd_check(int argc, char **argv);
int fs_cmd_crowd(int argc, char **argv);
int fs_cmd_sample(int argc, char **argv);
int fs_cmd_workflows(int argc, char **argv);

/* One --name VALUE flag of a subcommand and where its value goes. */
typedef struct fs_flag {
	const char *name;
	uint64_t *num;    /* a whole number, or */
	const char **str; /* text */
} fs_flag;

#define FS_MAX_FLAGS 16

/* Parses argv (argv[0] is the subcommand) into the flags' targets. Returns
 * 0, or 2 after printing which flag or value was wrong. */
int fs_flags_parse(
    const char *cmd, int argc, char **argv, const fs_flag *flags, size_t n);

/* Prints "faultsim CMD: <message>" to stderr; returns 2 (usage). */
int fs_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- the in-flight limit: check.c gives limit.c each run's span ---- */

typedef struct fs_span {
	uint64_t start, end; /* the run, as the service behind it saw it */
	uint64_t held_end;   /* until when its lease surely counted at the
	                        broker (<= end) */
	const char *why;     /* why not until end; NULL: held throughout */
} fs_span;

/* A time when the broker's counts say nothing about the workers: from its
 * SIGKILL until the workers have dialed it again. */
typedef struct fs_window {
	uint64_t t0, t1;
} fs_window;

typedef struct fs_limit {
	uint64_t limit;
	/* the runs' view */
	uint64_t max_runs, max_held;
	size_t overruns, unexplained;
	char explained_by[256];
	/* the broker's view, from samples.log */
	size_t samples, waiting, over;
	size_t wrong_limit; /* samples reporting another max_in_flight */
	uint64_t max_leased;
	double mean_leased, mean_runs; /* while work waited; -1: never */
	bool used;                     /* mean_leased close to the limit */
} fs_limit;

/* Judges the runs' spans against out->limit and reads DIR/samples.log;
 * prints the first few violations. Sorts nothing it is given. Returns 0,
 * or NQ_ENOMEM. */
int fs_limit_check(const char *dir, const fs_span *spans, size_t n,
    const fs_window *quiet, size_t nquiet, fs_limit *out);
/* Violations found by fs_limit_check. */
size_t fs_limit_violations(const fs_limit *l);

#endif
