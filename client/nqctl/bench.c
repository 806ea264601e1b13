/*
 * nqctl bench: the command. Reads the flags, forks the worker processes and
 * the producer process before anything touches nng (nng's threads do not
 * survive a fork), drives the phases of the run through the shared mapping,
 * and prints the one result line.
 *
 * Phases: the workers start and report ready, then the producer starts
 * (with --backlog: the producer enqueues everything first and the workers
 * start after it is done). The run ends when every job has run once and the
 * broker counts them all as succeeded; the workers then drain and exit.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNSET UINT64_MAX
#define BENCH_MAX_PROCS 64
#define BENCH_MAX_JOBS 1000000000ull
#define BENCH_MAX_BATCH 10000 /* the broker's limit per enqueue */
#define BENCH_MAX_PAYLOAD ((uint64_t)64 << 20)
/* How long the workers may take to start, and to drain at the end. */
#define BENCH_START_MS 20000
#define BENCH_REAP_MS 30000
/* How long the broker may take to count the last completions. */
#define BENCH_CONFIRM_MS 30000

typedef struct bench_flags {
	uint64_t jobs, batch, payload_size, rate, duration_ms;
	uint64_t broker_pid, max_time_ms;
	int workers, concurrency, producers;
	bool backlog;
	const char *queue;
} bench_flags;

typedef struct bench_run {
	nqctl *x;
	bench_conf c;
	bench_shared *s;
	size_t shared_len;
	char queue[NQI_NAME_MAX + 1];
	pid_t procs[BENCH_MAX_PROCS + 1]; /* workers, then the producer */
	int nprocs;
	int status[BENCH_MAX_PROCS + 1]; /* wait status, once reaped */
	bool reaped[BENCH_MAX_PROCS + 1];
	uint64_t deadline_ms;
	uint64_t drain_start_ns, end_ns;
	uint64_t broker_pid;     /* 0: not watched */
	uint64_t anon_sample_ms; /* when RssAnon was last read */
	uint64_t anon_peak_kib;  /* highest RssAnon seen */
} bench_run;

static int proc_status_kib(uint64_t pid, const char *name, uint64_t *kib);

/* ---- flags ---- */

static int check_range(
    const nqctl *x, const char *flag, uint64_t v, uint64_t lo, uint64_t hi)
{
	if (v >= lo && v <= hi)
		return NQCTL_CONTINUE;
	return nqctl_usage_error(x, "--%s must be from %llu to %llu, got %llu",
	    flag, (unsigned long long)lo, (unsigned long long)hi,
	    (unsigned long long)v);
}

static int check_int(const nqctl *x, const char *flag, int v, int lo, int hi)
{
	if (v >= lo && v <= hi)
		return NQCTL_CONTINUE;
	return nqctl_usage_error(
	    x, "--%s must be from %d to %d, got %d", flag, lo, hi, v);
}

/* --rate and --duration go together and set the number of jobs. */
static int check_pacing(const nqctl *x, bench_flags *f)
{
	if (!f->rate && f->duration_ms == UNSET)
		return NQCTL_CONTINUE;
	if (!f->rate || f->duration_ms == UNSET)
		return nqctl_usage_error(x, "--rate and --duration go together "
		                            "(a paced run of RATE jobs/s for "
		                            "DURATION)");
	if (f->jobs != UNSET)
		return nqctl_usage_error(x, "--jobs and --rate exclude each "
		                            "other (a paced run enqueues RATE "
		                            "times DURATION jobs)");
	if (f->backlog)
		return nqctl_usage_error(x, "--backlog and --rate exclude each "
		                            "other");
	f->jobs = f->rate * f->duration_ms / 1000;
	if (f->jobs == 0)
		return nqctl_usage_error(x,
		    "--rate %llu for --duration %llums "
		    "makes no job",
		    (unsigned long long)f->rate,
		    (unsigned long long)f->duration_ms);
	return NQCTL_CONTINUE;
}

static int check_flags(const nqctl *x, bench_flags *f)
{
	int rc;
	if ((rc = check_pacing(x, f)) != NQCTL_CONTINUE)
		return rc;
	if (f->jobs == UNSET)
		f->jobs = 100000;
	if ((rc = check_range(x, "jobs", f->jobs, 1, BENCH_MAX_JOBS)) !=
	        NQCTL_CONTINUE ||
	    (rc = check_range(x, "batch", f->batch, 1, BENCH_MAX_BATCH)) !=
	        NQCTL_CONTINUE ||
	    (rc = check_range(x, "payload-size", f->payload_size,
	         BENCH_PAYLOAD_MIN, BENCH_MAX_PAYLOAD)) != NQCTL_CONTINUE ||
	    (rc = check_int(x, "workers", f->workers, 1, BENCH_MAX_PROCS)) !=
	        NQCTL_CONTINUE ||
	    (rc = check_int(x, "producers", f->producers, 1,
	         BENCH_MAX_PROCS)) != NQCTL_CONTINUE ||
	    (rc = check_int(x, "concurrency", f->concurrency, 1, 1024)) !=
	        NQCTL_CONTINUE)
		return rc;
	if (f->max_time_ms == 0)
		return nqctl_usage_error(x, "--max-time must be longer than 0");
	if (f->queue && !nqi_name_valid(f->queue))
		return nqctl_usage_error(x,
		    "'%s' is not a valid queue name (1 to 128 of A-Z a-z 0-9 . "
		    "_ -)",
		    f->queue);
	return NQCTL_CONTINUE;
}

static void print_method(void)
{
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
	       "the highest RssAnon (heap) seen, read every 100 ms.\n");
}

/* ---- processes ---- */

/* The client options of nqctl's global flags, as nqctl_connect uses them. */
static void conn_opts(const nqctl *x, nq_client_opts *o)
{
	*o = (nq_client_opts){
	    .api_url = x->conf.api_url,
	    .work_url = x->conf.work_url,
	    .results_url = x->conf.results_url,
	    .token = x->token,
	    .timeout_ms =
	        x->conf.timeout_ms > 600000 ? 600000 : (int)x->conf.timeout_ms,
	    .tls_ca = x->conf.tls_ca,
	    .tls_cert = x->conf.tls_cert,
	    .tls_key = x->conf.tls_key,
	    .tls_server_name = x->conf.tls_server_name,
	};
}

/* The body of child i: a worker, or the producer when i == workers. */
static int child_main(bench_run *r, int i)
{
	int rc = nqctl_connect(r->x);
	if (rc != NQCTL_CONTINUE)
		return rc;
	conn_opts(r->x, &r->c.conn);
	if (i < r->c.workers)
		return bench_worker_main(&r->c, r->s, i);
	return bench_producer_main(&r->c, r->s);
}

/* A child outliving a killed nqctl would wait for its flags forever. */
static void die_with_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(NQCTL_EXIT_FAILED);
}

static int spawn(bench_run *r)
{
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i <= r->c.workers; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			die_with_parent(parent);
			_exit(child_main(r, i));
		}
		if (pid < 0) {
			fprintf(stderr,
			    "nqctl: bench: cannot start process "
			    "%d: %s\n",
			    i, strerror(errno));
			return NQCTL_EXIT_FAILED;
		}
		r->procs[r->nprocs++] = pid;
	}
	return NQCTL_CONTINUE;
}

static bool reap_one(bench_run *r, int i, int flags)
{
	if (r->reaped[i])
		return true;
	pid_t got = waitpid(r->procs[i], &r->status[i], flags);
	if (got == r->procs[i] || (got < 0 && errno == ECHILD))
		r->reaped[i] = true;
	return r->reaped[i];
}

static bool exited_ok(const bench_run *r, int i)
{
	return r->reaped[i] && WIFEXITED(r->status[i]) &&
	       WEXITSTATUS(r->status[i]) == 0;
}

/* Reports a child that ended when it should not have. */
static int check_children(bench_run *r)
{
	int producer = r->c.workers;
	for (int i = 0; i < r->nprocs; i++) {
		if (!reap_one(r, i, WNOHANG))
			continue;
		if (i == producer && exited_ok(r, i))
			continue;
		if (i == producer)
			fprintf(stderr, "nqctl: bench: the producer failed\n");
		else
			fprintf(stderr,
			    "nqctl: bench: worker %d ended "
			    "before the run was over\n",
			    i);
		return NQCTL_EXIT_FAILED;
	}
	return NQCTL_CONTINUE;
}

/* Stops every child: first by the shared flag, then by SIGKILL. */
static void reap_all(bench_run *r)
{
	uint64_t until = nqi_mono_ms() + BENCH_REAP_MS;
	atomic_store(&r->s->stop, true);
	for (int i = 0; i < r->nprocs; i++) {
		while (!reap_one(r, i, WNOHANG) && nqi_mono_ms() < until)
			usleep(2000);
		if (!r->reaped[i]) {
			fprintf(stderr,
			    "nqctl: bench: process %ld did not "
			    "stop in time; killed\n",
			    (long)r->procs[i]);
			kill(r->procs[i], SIGKILL);
			reap_one(r, i, 0);
		}
	}
}

/* ---- phases ---- */

/*
 * Notes the broker's anonymous memory (heap, index) every 100 ms. VmHWM,
 * the peak RSS the kernel keeps, also counts the pages of the LMDB file the
 * broker has mapped, which the kernel may drop at any time.
 */
static void sample_broker(bench_run *r)
{
	uint64_t now = nqi_mono_ms(), kib;
	if (!r->broker_pid || now - r->anon_sample_ms < 100)
		return;
	r->anon_sample_ms = now;
	if (proc_status_kib(r->broker_pid, "RssAnon", &kib) == NQ_OK &&
	    kib > r->anon_peak_kib)
		r->anon_peak_kib = kib;
}

static int timed_out(const bench_run *r, const char *what)
{
	if (nqi_mono_ms() < r->deadline_ms)
		return NQCTL_CONTINUE;
	fprintf(stderr,
	    "nqctl: bench: gave up %s: %llu of %llu jobs enqueued, %llu "
	    "run\n",
	    what, (unsigned long long)atomic_load(&r->s->enqueued),
	    (unsigned long long)r->c.jobs,
	    (unsigned long long)atomic_load(&r->s->handled));
	return NQCTL_EXIT_FAILED;
}

/* Waits until the workers have started, bounded by BENCH_START_MS. */
static int start_workers(bench_run *r)
{
	uint64_t until = nqi_mono_ms() + BENCH_START_MS;
	int rc = NQCTL_CONTINUE;
	r->drain_start_ns = bench_now_ns();
	atomic_store(&r->s->go, true);
	while (
	    rc == NQCTL_CONTINUE && atomic_load(&r->s->ready) < r->c.workers) {
		if (nqi_mono_ms() >= until) {
			fprintf(stderr,
			    "nqctl: bench: %d of %d workers "
			    "started in %d ms\n",
			    atomic_load(&r->s->ready), r->c.workers,
			    BENCH_START_MS);
			return NQCTL_EXIT_FAILED;
		}
		rc = check_children(r);
		usleep(1000);
	}
	return rc;
}

/* --backlog: the producer enqueues every job before any worker starts. */
static int fill_backlog(bench_run *r)
{
	int producer = r->c.workers;
	atomic_store(&r->s->produce, true);
	while (!reap_one(r, producer, WNOHANG)) {
		sample_broker(r);
		int rc = timed_out(r, "filling the backlog");
		if (rc != NQCTL_CONTINUE)
			return rc;
		usleep(2000);
	}
	return check_children(r);
}

/* Waits until every job has run once. */
static int wait_handled(bench_run *r)
{
	int rc = NQCTL_CONTINUE;
	while (
	    rc == NQCTL_CONTINUE && atomic_load(&r->s->handled) < r->c.jobs) {
		usleep(500);
		sample_broker(r);
		rc = check_children(r);
		if (rc == NQCTL_CONTINUE)
			rc = timed_out(r, "waiting for the jobs to run");
	}
	return rc;
}

/* The end of the run: when the broker counts every job as succeeded. */
static int wait_confirmed(bench_run *r)
{
	uint64_t until = nqi_mono_ms() + BENCH_CONFIRM_MS;
	uint64_t done = 0;
	for (;;) {
		nq_queue_stats *qs = NULL;
		size_t n = 0;
		int rv = nq_stats(r->x->client, r->c.queue, &qs, &n, NULL);
		if (rv != NQ_OK)
			return nqctl_fail(
			    r->x, rv, "stats of queue %s", r->c.queue);
		done = 0;
		if (n == 1)
			nq_queue_stats_get(qs, 0, "succeeded_total", &done);
		nq_queue_stats_free(qs);
		if (done >= r->c.jobs)
			break;
		if (nqi_mono_ms() >= until) {
			fprintf(stderr,
			    "nqctl: bench: every job ran, but "
			    "the broker counts %llu of %llu as "
			    "succeeded after %d ms\n",
			    (unsigned long long)done,
			    (unsigned long long)r->c.jobs, BENCH_CONFIRM_MS);
			return NQCTL_EXIT_FAILED;
		}
		usleep(500);
	}
	r->end_ns = bench_now_ns();
	return NQCTL_CONTINUE;
}

/* Checks that the broker answers before the producer is let go, so that
 * an absent broker is reported as such (exit 3). */
static int check_broker(bench_run *r)
{
	int rc = nqctl_connect(r->x);
	if (rc != NQCTL_CONTINUE)
		return rc;
	nq_queue_stats *qs = NULL;
	size_t n = 0;
	int rv = nq_stats(r->x->client, "", &qs, &n, NULL);
	nq_queue_stats_free(qs);
	if (rv != NQ_OK)
		return nqctl_fail(r->x, rv, "bench: stats");
	return NQCTL_CONTINUE;
}

static int run_phases(bench_run *r)
{
	int rc = check_broker(r);
	if (rc == NQCTL_CONTINUE && r->c.backlog) {
		if ((rc = fill_backlog(r)) == NQCTL_CONTINUE)
			rc = start_workers(r);
	} else if (rc == NQCTL_CONTINUE) {
		if ((rc = start_workers(r)) == NQCTL_CONTINUE)
			atomic_store(&r->s->produce, true);
	}
	if (rc == NQCTL_CONTINUE)
		rc = wait_handled(r);
	if (rc == NQCTL_CONTINUE)
		rc = wait_confirmed(r);
	return rc;
}

/* ---- the report ---- */

/* A "Name: N kB" line of /proc/PID/status; NQ_ENOTFOUND when unknown. */
static int proc_status_kib(uint64_t pid, const char *name, uint64_t *kib)
{
	char path[64], line[256], fmt[48];
	unsigned long long v = 0;
	bool found = false;
	snprintf(
	    path, sizeof path, "/proc/%llu/status", (unsigned long long)pid);
	snprintf(fmt, sizeof fmt, "%s: %%llu kB", name);
	FILE *f = fopen(path, "r");
	if (!f)
		return NQ_ENOTFOUND;
	while (!found && fgets(line, sizeof line, f))
		found = sscanf(line, fmt, &v) == 1;
	fclose(f);
	if (!found)
		return NQ_ENOTFOUND;
	*kib = v;
	return NQ_OK;
}

static double per_s(uint64_t jobs, uint64_t from_ns, uint64_t to_ns)
{
	if (to_ns <= from_ns)
		return 0;
	return (double)jobs * 1e9 / (double)(to_ns - from_ns);
}

static void print_notes(const bench_run *r)
{
	uint64_t runs = atomic_load(&r->s->runs);
	uint64_t foreign = atomic_load(&r->s->foreign);
	if (runs > r->c.jobs)
		fprintf(stderr,
		    "nqctl: bench: %llu runs were repeats of a "
		    "job that had run already\n",
		    (unsigned long long)(runs - r->c.jobs));
	if (foreign)
		fprintf(stderr,
		    "nqctl: bench: %llu jobs in queue %s were "
		    "not this run's\n",
		    (unsigned long long)foreign, r->c.queue);
}

/* The figures of a finished run; rss_mib < 0 when not known. */
typedef struct bench_result {
	double enqueue_per_s, e2e_per_s, drain_per_s;
	double p50_ms, p99_ms, p999_ms;
	double rss_mib, anon_mib;
} bench_result;

static void measure(bench_run *r, bench_result *m)
{
	const bench_shared *s = r->s;
	uint64_t first = atomic_load(&s->first_send_ns);
	uint64_t kib;
	m->enqueue_per_s =
	    per_s(r->c.jobs, first, atomic_load(&s->last_ack_ns));
	m->e2e_per_s = per_s(r->c.jobs, first, r->end_ns);
	m->drain_per_s = per_s(r->c.jobs, r->drain_start_ns, r->end_ns);
	m->p50_ms = bench_hist_quantile(s, 0.50) / 1000;
	m->p99_ms = bench_hist_quantile(s, 0.99) / 1000;
	m->p999_ms = bench_hist_quantile(s, 0.999) / 1000;
	m->rss_mib = m->anon_mib = -1;
	r->anon_sample_ms = 0;
	sample_broker(r);
	if (r->broker_pid &&
	    proc_status_kib(r->broker_pid, "VmHWM", &kib) == NQ_OK) {
		m->rss_mib = (double)kib / 1024;
		m->anon_mib = (double)r->anon_peak_kib / 1024;
	} else if (r->broker_pid)
		fprintf(stderr,
		    "nqctl: bench: cannot read the peak RSS of "
		    "process %llu from /proc\n",
		    (unsigned long long)r->broker_pid);
}

static int print_line(const bench_run *r, const bench_result *m)
{
	printf("bench jobs=%llu enqueue_per_s=%.0f e2e_per_s=%.0f "
	       "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f",
	    (unsigned long long)r->c.jobs, m->enqueue_per_s, m->e2e_per_s,
	    m->p50_ms, m->p99_ms, m->p999_ms);
	if (r->c.backlog)
		printf(" drain_per_s=%.0f", m->drain_per_s);
	if (m->rss_mib >= 0)
		printf(" broker_peak_rss_mib=%.1f broker_peak_anon_mib=%.1f",
		    m->rss_mib, m->anon_mib);
	printf("\n");
	return NQCTL_EXIT_OK;
}

/* The same figures as one JSON object; absent ones are left out. */
static int print_json(const bench_run *r, const bench_result *m)
{
	json_t *j = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "jobs",
	    (json_int_t)r->c.jobs, "enqueue_per_s", m->enqueue_per_s,
	    "e2e_per_s", m->e2e_per_s, "p50_ms", m->p50_ms, "p99_ms", m->p99_ms,
	    "p999_ms", m->p999_ms);
	int bad = !j;
	if (!bad && r->c.backlog)
		bad = json_object_set_new(
		    j, "drain_per_s", json_real(m->drain_per_s));
	if (!bad && m->rss_mib >= 0)
		bad = json_object_set_new(
		          j, "broker_peak_rss_mib", json_real(m->rss_mib)) ||
		      json_object_set_new(
		          j, "broker_peak_anon_mib", json_real(m->anon_mib));
	if (bad) {
		json_decref(j);
		j = NULL;
	}
	return nqctl_print_json(j);
}

/* ---- the command ---- */

static void conf_from_flags(bench_run *r, const bench_flags *f)
{
	if (f->queue)
		snprintf(r->queue, sizeof r->queue, "%s", f->queue);
	else
		snprintf(r->queue, sizeof r->queue, "bench-%ld-%llx",
		    (long)getpid(),
		    (unsigned long long)(nqi_random_u64() & 0xffffff));
	r->c = (bench_conf){.jobs = f->jobs,
	    .batch = f->batch,
	    .workers = f->workers,
	    .concurrency = f->concurrency,
	    .producers = f->producers,
	    .payload_size = f->payload_size,
	    .rate = f->rate,
	    .backlog = f->backlog,
	    .queue = r->queue};
	r->deadline_ms = nqi_mono_ms() + f->max_time_ms;
	r->broker_pid = f->broker_pid;
}

static int bench(nqctl *x, const bench_flags *f)
{
	bench_run *r = calloc(1, sizeof *r);
	if (!r) {
		fprintf(stderr, "nqctl: bench: out of memory\n");
		return NQCTL_EXIT_FAILED;
	}
	r->x = x;
	conf_from_flags(r, f);
	int rc = NQCTL_EXIT_FAILED;
	if (!(r->s = bench_shared_map(r->c.jobs, &r->shared_len))) {
		fprintf(stderr, "nqctl: bench: cannot map %llu jobs: %s\n",
		    (unsigned long long)r->c.jobs, strerror(errno));
		goto out;
	}
	rc = spawn(r);
	if (rc == NQCTL_CONTINUE)
		rc = run_phases(r);
	reap_all(r);
	if (rc == NQCTL_CONTINUE) {
		bench_result m;
		print_notes(r);
		measure(r, &m);
		rc = x->conf.json ? print_json(r, &m) : print_line(r, &m);
	}
	munmap(r->s, r->shared_len);
out:
	free(r);
	return rc;
}

int nqctl_bench(nqctl *x, int argc, char **argv, int start)
{
	bench_flags f = {.jobs = UNSET,
	    .batch = 100,
	    .payload_size = 100,
	    .duration_ms = UNSET,
	    .max_time_ms = 600000,
	    .workers = 4,
	    .concurrency = 64,
	    .producers = 1};
	const nqi_opt opts[] = {
	    {"jobs", NQI_OPT_U64, &f.jobs, "jobs to run (100000)", false},
	    {"batch", NQI_OPT_U64, &f.batch, "jobs per enqueue request (100)",
	        false},
	    {"workers", NQI_OPT_INT, &f.workers, "worker processes (4)", false},
	    {"concurrency", NQI_OPT_INT, &f.concurrency,
	        "handler slots of each worker (64)", false},
	    {"producers", NQI_OPT_INT, &f.producers,
	        "producer threads, each with a connection of its own (1)",
	        false},
	    {"payload-size", NQI_OPT_SIZE, &f.payload_size,
	        "payload bytes, at least 16 (100)", false},
	    {"rate", NQI_OPT_U64, &f.rate,
	        "paced run: jobs/s to enqueue, with --duration", false},
	    {"duration", NQI_OPT_DURATION, &f.duration_ms,
	        "paced run: how long to enqueue, with --rate", false},
	    {"backlog", NQI_OPT_BOOL, &f.backlog,
	        "enqueue every job first, then start the workers", false},
	    {"queue", NQI_OPT_STR, &f.queue,
	        "queue to use (a fresh bench-<pid>-<hex> one)", false},
	    {"broker-pid", NQI_OPT_U64, &f.broker_pid,
	        "report this process's peak RSS (VmHWM) and anonymous memory",
	        false},
	    {"max-time", NQI_OPT_DURATION, &f.max_time_ms,
	        "give up when the run takes longer (10m)", false},
	    NQCTL_COMMON_OPTS(x),
	};
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	if (rc == NQCTL_EXIT_OK && x->conf.help)
		print_method();
	if (rc != NQCTL_CONTINUE)
		return rc;
	if ((rc = check_flags(x, &f)) != NQCTL_CONTINUE)
		return rc;
	return bench(x, &f);
}
