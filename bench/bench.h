/*
 * nq-bench: measures a running broker with a producer process and
 * --workers worker processes that run a no-op handler through libnq's
 * worker API, and prints one line:
 *
 *   bench jobs=N enqueue_per_s=X e2e_per_s=Y p50_ms=A p99_ms=B p999_ms=C
 *
 * followed by drain_per_s=D with --backlog, broker_peak_rss_mib=M with
 * --broker-pid and side_started=S side_per_s=R with --side-queue: the
 * workers also fetch that queue, filled with --side-jobs jobs of type
 * BENCH_SIDE_TYPE before they start, and its start rate is (S - 1) over
 * the time from its first start to its last. Latency is handler start minus
 * enqueue: each payload carries the CLOCK_MONOTONIC time at which its enqueue
 * request was sent (the clock is the same in every process of the machine), and
 * the handler reads the clock as it starts.
 *
 * The processes share one anonymous shared mapping (struct bench_shared):
 * start and stop flags, counters, a latency histogram and a bitmap of the
 * jobs handled, so that a job run twice (at-least-once delivery) counts once.
 */
#ifndef NQ_BENCH_H
#define NQ_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/cli.h"

/* The flags of a run, as given (main.c checks them). */
typedef struct bench_flags {
	uint64_t jobs, batch, payload_size, rate, duration_ms;
	uint64_t broker_pid, max_time_ms;
	int workers, concurrency, producers, pipeline;
	bool backlog;
	const char *queue;
	const char *side_queue; /* NULL: none */
	uint64_t side_jobs;
} bench_flags;

/* How to reach the broker and how to print; filled by main.c. */
typedef struct bench_cli {
	nq_client_opts conn; /* the token already read */
	bool json;
	nq_client *client; /* the parent's, from bench_connect */
} bench_cli;

/* ---- main.c ---- */

/* Opens x->client on x->conn. Returns NQI_CONTINUE, or the exit status
 * after reporting why it could not. */
int bench_connect(bench_cli *x);
/* Reports a failed request, "nq-bench: <what>: <error>: <server message>",
 * and returns NQI_EXIT_UNREACHABLE when the broker did not answer in
 * time, NQI_EXIT_FAILED otherwise. */
int bench_fail(const bench_cli *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- bench.c ---- */

/* Runs the benchmark of checked flags and prints its line; returns the exit
 * status. */
int bench_main(bench_cli *x, const bench_flags *f);

/* ---- shared between bench.c and bench_proc.c ---- */

/* Most worker processes, and most producer threads, of a run. */
#define BENCH_MAX_PROCS 64
/* Most enqueue requests a producer keeps in flight. */
#define BENCH_MAX_PIPELINE 64

/* Every payload starts with the job's sequence number and the enqueue
 * time, both little-endian 64-bit; the rest is filler. */
#define BENCH_PAYLOAD_MIN 16
/* The type of the side queue's jobs, which a handler of its own counts. */
#define BENCH_SIDE_TYPE "side"
/* Latency histogram: 1 us steps below 128 us, then 64 steps per power of
 * two (at most 1.6% off), up to 2^40 us. */
#define BENCH_HIST_LINEAR 128
#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + 34 * BENCH_HIST_SUB)

/* What one run does; filled from the flags by bench.c. */
typedef struct bench_conf {
	uint64_t jobs;
	uint64_t batch;
	int workers;
	int concurrency;
	int producers;
	int pipeline; /* batches each producer keeps in flight */
	uint64_t payload_size;
	uint64_t rate; /* jobs/s; 0: as fast as the broker takes them */
	bool backlog;  /* enqueue everything, then start the workers */
	const char *queue;
	const char *side_queue; /* also fetched; its jobs are only counted */
	nq_client_opts conn;
} bench_conf;

typedef struct bench_shared {
	atomic_bool produce; /* the producer may start */
	atomic_bool go;      /* the workers may start fetching */
	atomic_bool stop;    /* the workers drain and exit */
	atomic_int ready;    /* workers that are running */
	atomic_uint_least64_t first_send_ns; /* first enqueue request sent */
	atomic_uint_least64_t last_ack_ns;   /* last enqueue confirmed */
	atomic_uint_least64_t enqueued;      /* jobs confirmed */
	atomic_uint_least64_t handled;       /* distinct jobs run */
	atomic_uint_least64_t runs;          /* handler runs, repeats too */
	atomic_uint_least64_t foreign;       /* jobs that are not ours */
	atomic_uint_least64_t last_run_ns;
	atomic_uint_least64_t side_started; /* runs of the side queue's jobs */
	atomic_uint_least64_t side_first_ns, side_last_ns;
	atomic_uint_least64_t hist[BENCH_HIST_BUCKETS];
	char producer_error[512];
	atomic_uchar seen[]; /* one bit per job */
} bench_shared;

/* Monotonic clock in nanoseconds, the same clock in every process. */
uint64_t bench_now_ns(void);
/* Maps the shared state for a run of jobs jobs; NULL when out of memory. */
bench_shared *bench_shared_map(uint64_t jobs, size_t *len);
/* The latency at quantile q (0..1) in microseconds; 0 when none. */
double bench_hist_quantile(const bench_shared *s, double q);

/*
 * The bodies of the child processes; each returns the child's exit status
 * and reports what went wrong on stderr (the producer also in
 * s->producer_error). They must run in a freshly forked process that has
 * not used nng yet.
 */
int bench_producer_main(const bench_conf *c, bench_shared *s);
int bench_worker_main(const bench_conf *c, bench_shared *s, int index);

#endif
