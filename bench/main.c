/*
 * nq-bench: measures a running broker (bench.h says how). Flags in any
 * order; those that say how to reach the broker are also read from the
 * environment, as nqctl reads them (--api as NQ_API, ...):
 *
 *   nq-bench [--api URL] [--work URL] [--results URL] [--jobs N] ...
 *
 * Exit status: NQI_EXIT_HELP (nqi/cli.h), as nqctl's.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "nqi/auth.h"
#include "nqi/opts.h"
#include "nqi/util.h"

#define UNSET UINT64_MAX
#define BENCH_MAX_JOBS 1000000000ull
#define BENCH_MAX_BATCH 10000 /* the broker's limit per enqueue */
#define BENCH_MAX_PAYLOAD ((uint64_t)64 << 20)
/* The most slots libnq's worker takes; also the default: a worker holds
 * one fetch in flight, whose reply waits for a group commit and its
 * fsync, so with fewer slots the workers sit idle through most of each
 * commit (64 slots ran workload A at half the rate of 1024). A slot's
 * thread starts only when a job needs it. */
#define BENCH_MAX_CONCURRENCY 1024
/* Jobs per enqueue without --rate: one producer waits for each request's
 * commit, so small batches leave the broker idle (100 ran workload A at a
 * third of the rate of 1000). A --rate run sends each job at its moment. */
#define BENCH_BATCH 1000
/* Batches each producer keeps in flight without --rate (nq_enqueue_batch_
 * send): with one, the producer waits through each batch's commit while
 * the broker has nothing of it to apply. A --rate run sends each job at
 * its moment and waits for it, as a request-serving producer would. */
#define BENCH_PIPELINE 2
/* The first BENCH_NCONN flags of the table say how to reach the broker
 * (and --json); only they are read from the environment. */
#define BENCH_NCONN (NQI_CLI_CONN_NOPTS + 1)

/* The command line as given. */
typedef struct bench_args {
	nqi_cli_conn conn;
	bool json, help;
	bench_flags f;
} bench_args;

/* ---- reporting ---- */

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nq-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'nq-bench --help' for the flags.\n");
	return NQI_EXIT_USAGE;
}

/* Where the broker is, for messages: "broker at URL", or the map. */
static void where(const bench_cli *x, char *out, size_t len)
{
	if (x->conn.brokers)
		snprintf(out, len, "brokers %.400s", x->conn.brokers);
	else
		snprintf(out, len, "broker at %.400s",
		    x->conn.api_url && *x->conn.api_url ? x->conn.api_url
		                                        : NQI_CLI_DEFAULT_API);
}

int bench_connect(bench_cli *x)
{
	if (x->client)
		return NQI_CONTINUE;
	int rv = nq_client_open(&x->client, &x->conn);
	if (rv == NQ_OK)
		return NQI_CONTINUE;
	char at[420];
	where(x, at, sizeof at);
	fprintf(
	    stderr, "nq-bench: cannot use the %s: %s\n", at, nq_strerror(rv));
	return rv == NQ_EINVAL ? NQI_EXIT_USAGE : NQI_EXIT_FAILED;
}

int bench_fail(const bench_cli *x, int err, const char *fmt, ...)
{
	char what[512], at[420];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	const char *name = nq_strerror(err);
	const char *why = x->client ? nq_client_last_error(x->client) : "";
	/* libnq's message, when there is one that says more than the name. */
	bool more = *why && strcmp(why, name) != 0;
	where(x, at, sizeof at);
	fprintf(stderr, "nq-bench: %s: %s (%s)%s%s\n", what, name, at,
	    more ? ": " : "", more ? why : "");
	if (err == NQ_ETIMEDOUT || err == NQ_ECONNECT)
		return NQI_EXIT_UNREACHABLE;
	return NQI_EXIT_FAILED;
}

/* ---- flags ---- */

static int check_range(const char *flag, uint64_t v, uint64_t lo, uint64_t hi)
{
	if (v >= lo && v <= hi)
		return NQI_CONTINUE;
	return usage_error("--%s must be from %llu to %llu, got %llu", flag,
	    (unsigned long long)lo, (unsigned long long)hi,
	    (unsigned long long)v);
}

static int check_int(const char *flag, int v, int lo, int hi)
{
	if (v >= lo && v <= hi)
		return NQI_CONTINUE;
	return usage_error(
	    "--%s must be from %d to %d, got %d", flag, lo, hi, v);
}

/* --rate and --duration go together and set the number of jobs. */
static int check_pacing(bench_flags *f)
{
	if (!f->rate && f->duration_ms == UNSET)
		return NQI_CONTINUE;
	if (!f->rate || f->duration_ms == UNSET)
		return usage_error("--rate and --duration go together "
		                   "(a paced run of RATE jobs/s for DURATION)");
	if (f->jobs != UNSET)
		return usage_error("--jobs and --rate exclude each other (a "
		                   "paced run enqueues RATE times DURATION "
		                   "jobs)");
	if (f->backlog)
		return usage_error("--backlog and --rate exclude each other");
	f->jobs = f->rate * f->duration_ms / 1000;
	if (f->jobs == 0)
		return usage_error("--rate %llu for --duration %llums makes no "
		                   "job",
		    (unsigned long long)f->rate,
		    (unsigned long long)f->duration_ms);
	return NQI_CONTINUE;
}

static int check_queue(const char *name)
{
	if (!name || nqi_name_valid(name))
		return NQI_CONTINUE;
	return usage_error("'%s' is not a valid queue name (1 to 128 of "
	                   "A-Z a-z 0-9 . _ -)",
	    name);
}

static int check_flags(bench_flags *f)
{
	int rc;
	if ((rc = check_pacing(f)) != NQI_CONTINUE)
		return rc;
	if (f->jobs == UNSET)
		f->jobs = 100000;
	if (f->batch == UNSET)
		f->batch = f->rate ? 1 : BENCH_BATCH;
	if (f->pipeline < 0)
		f->pipeline = f->rate ? 1 : BENCH_PIPELINE;
	if ((rc = check_range("jobs", f->jobs, 1, BENCH_MAX_JOBS)) !=
	        NQI_CONTINUE ||
	    (rc = check_range("batch", f->batch, 1, BENCH_MAX_BATCH)) !=
	        NQI_CONTINUE ||
	    (rc = check_range("payload-size", f->payload_size,
	         BENCH_PAYLOAD_MIN, BENCH_MAX_PAYLOAD)) != NQI_CONTINUE ||
	    (rc = check_int("workers", f->workers, 1, BENCH_MAX_PROCS)) !=
	        NQI_CONTINUE ||
	    (rc = check_int("producers", f->producers, 1, BENCH_MAX_PROCS)) !=
	        NQI_CONTINUE ||
	    (rc = check_int("pipeline", f->pipeline, 1, BENCH_MAX_PIPELINE)) !=
	        NQI_CONTINUE ||
	    (rc = check_int("concurrency", f->concurrency, 1,
	         BENCH_MAX_CONCURRENCY)) != NQI_CONTINUE)
		return rc;
	if (f->max_time_ms == 0)
		return usage_error("--max-time must be longer than 0");
	if ((rc = check_queue(f->queue)) != NQI_CONTINUE ||
	    (rc = check_queue(f->side_queue)) != NQI_CONTINUE ||
	    (rc = check_range("side-jobs", f->side_jobs, 1, BENCH_MAX_JOBS)) !=
	        NQI_CONTINUE)
		return rc;
	if (f->side_queue && f->queue && strcmp(f->side_queue, f->queue) == 0)
		return usage_error("--side-queue must differ from --queue");
	return NQI_CONTINUE;
}

static void print_usage(const nqi_opt *opts, size_t n)
{
	printf("usage: nq-bench [flags]\nMeasures a running broker: enqueue "
	       "and end-to-end jobs/s, latency.\n\nflags that reach the "
	       "broker (each also from the environment: --api as NQ_API, "
	       "...):\n");
	nqi_opts_usage(opts, BENCH_NCONN, stdout);
	printf("\nflags of the run:\n");
	nqi_opts_usage(opts + BENCH_NCONN, n - BENCH_NCONN, stdout);
	printf("\nThe producer runs in a process of its own, each worker in "
	       "another, with a no-op\nhandler on libnq's worker API. "
	       "Latency is handler start minus enqueue: each\npayload "
	       "carries the monotonic time its enqueue request was sent. "
	       "enqueue_per_s\nis jobs over (last enqueue confirmed - first "
	       "sent); e2e_per_s is jobs over\n(last completion counted by "
	       "the broker - first enqueue sent); drain_per_s\n(--backlog) "
	       "is jobs over (last completion - workers started). With "
	       "--broker-pid,\nbroker_peak_rss_mib is the process's VmHWM "
	       "(mapped LMDB pages included) and\nbroker_peak_anon_mib "
	       "the highest RssAnon (heap) seen, read every 100 "
	       "ms.\ncpu_us_per_job is the CPU time (user + system) of the "
	       "workers, the producer and,\nwith --broker-pid, the broker "
	       "over the jobs, each also on its own\n(workers_, producer_, "
	       "broker_cpu_us_per_job).\nWith --side-queue, side_per_s is that "
	       "queue's starts over "
	       "the "
	       "time from its\nfirst start to its last (side_started: how "
	       "many).\n" NQI_EXIT_HELP);
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/*
 * Reads the environment and the flags into a. Returns NQI_CONTINUE when
 * the run should start; otherwise the exit status to end with (0 after
 * printing --help).
 */
static int parse_args(bench_args *a, int argc, char **argv)
{
	bench_flags *f = &a->f;
	const nqi_opt opts[] = {
	    NQI_CLI_CONN_OPTS(&a->conn),
	    {"json", NQI_OPT_BOOL, &a->json, "print JSON", false},
	    /* BENCH_NCONN: the flags of the run from here on */
	    {"jobs", NQI_OPT_U64, &f->jobs, "jobs to run (100000)", false},
	    {"batch", NQI_OPT_U64, &f->batch,
	        "jobs per enqueue request (1000; 1 with --rate)", false},
	    {"workers", NQI_OPT_INT, &f->workers, "worker processes (4)",
	        false},
	    {"concurrency", NQI_OPT_INT, &f->concurrency,
	        "handler slots of each worker (1024)", false},
	    {"producers", NQI_OPT_INT, &f->producers,
	        "producer threads, each with a connection of its own (1)",
	        false},
	    {"pipeline", NQI_OPT_INT, &f->pipeline,
	        "enqueue requests each producer keeps in flight (2; 1 with "
	        "--rate)",
	        false},
	    {"payload-size", NQI_OPT_SIZE, &f->payload_size,
	        "payload bytes, at least 16 (100)", false},
	    {"rate", NQI_OPT_U64, &f->rate,
	        "paced run: jobs/s to enqueue, with --duration", false},
	    {"duration", NQI_OPT_DURATION, &f->duration_ms,
	        "paced run: how long to enqueue, with --rate", false},
	    {"backlog", NQI_OPT_BOOL, &f->backlog,
	        "enqueue every job first, then start the workers", false},
	    {"queue", NQI_OPT_STR, &f->queue,
	        "queue to use (a fresh bench-<pid>-<hex> one)", false},
	    {"side-queue", NQI_OPT_STR, &f->side_queue,
	        "also fetch this queue, filled first with --side-jobs jobs, "
	        "and report its start rate",
	        false},
	    {"side-jobs", NQI_OPT_U64, &f->side_jobs,
	        "jobs put in --side-queue before the workers start (100000)",
	        false},
	    {"broker-pid", NQI_OPT_U64, &f->broker_pid,
	        "report this process's peak RSS (VmHWM) and anonymous memory",
	        false},
	    {"max-time", NQI_OPT_DURATION, &f->max_time_ms,
	        "give up when the run takes longer (10m)", false},
	    {"help", NQI_OPT_BOOL, &a->help, "show this help", false},
	};
	size_t n = sizeof opts / sizeof *opts;
	char err[256];
	int next;
	if (wants_help(argc, argv)) {
		print_usage(opts, n);
		return NQI_EXIT_OK;
	}
	if (nqi_opts_parse(opts, BENCH_NCONN, 1, argv, 1, true, &next, err,
	        sizeof err) != NQ_OK ||
	    nqi_opts_parse(
	        opts, n, argc, argv, 1, false, &next, err, sizeof err) != NQ_OK)
		return usage_error("%s", err);
	if (next < argc)
		return usage_error("unexpected argument '%s'", argv[next]);
	return check_flags(f);
}

/* The client options of the flags and checks of its URLs; reads the
 * token. */
static int make_cli(const bench_args *a, bench_cli *x)
{
	char why[512], *token = NULL;
	int err;
	x->json = a->json;
	if (nqi_cli_check_urls(&a->conn, why, sizeof why))
		return usage_error("%s", why);
	int rc = nqi_cli_read_token(&a->conn, &token, &err, why, sizeof why);
	if (rc != NQI_CONTINUE) {
		fprintf(stderr, "nq-bench: %s\n", why);
		return rc;
	}
	x->conn = nqi_cli_client_opts(&a->conn, token);
	return NQI_CONTINUE;
}

int main(int argc, char **argv)
{
	bench_args a = {.f = {.jobs = UNSET,
	                    .batch = UNSET,
	                    .payload_size = 100,
	                    .duration_ms = UNSET,
	                    .max_time_ms = 600000,
	                    .side_jobs = 100000,
	                    .workers = 4,
	                    .concurrency = BENCH_MAX_CONCURRENCY,
	                    .producers = 1,
	                    .pipeline = -1}};
	bench_cli x = {0};
	int rc = parse_args(&a, argc, argv);
	if (rc == NQI_CONTINUE)
		rc = make_cli(&a, &x);
	if (rc == NQI_CONTINUE)
		rc = bench_main(&x, &a.f);
	nq_client_close(x.client);
	free((char *)x.conn.token);
	/* Output that could not be written (a full disk, a closed pipe) is a
	 * failure the caller must see. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("nq-bench: writing the output");
		if (rc == NQI_EXIT_OK)
			rc = NQI_EXIT_FAILED;
	}
	return rc;
}
