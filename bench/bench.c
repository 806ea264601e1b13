/*
 * nq-bench: the run. Forks the worker processes and the producer process
 * before anything touches nng (nng's threads do not survive a fork), drives
 * the phases of the run through the shared mapping, and prints the one
 * result line.
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
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "nqi/json.h"
#include "nqi/util.h"

/* How long the workers may take to start, and to drain at the end. */
#define BENCH_START_MS 20000
#define BENCH_REAP_MS 30000
/* How long the broker may take to count the last completions. */
#define BENCH_CONFIRM_MS 30000

typedef struct bench_run {
	bench_cli *x;
	bench_conf c;
	bench_shared *s;
	size_t shared_len;
	char queue[NQI_NAME_MAX + 1];
	pid_t procs[BENCH_MAX_PROCS + 1]; /* workers, then the producer */
	int nprocs;
	int status[BENCH_MAX_PROCS + 1]; /* wait status, once reaped */
	bool reaped[BENCH_MAX_PROCS + 1];
	uint64_t cpu_us[BENCH_MAX_PROCS + 1]; /* user + system, once reaped */
	int64_t broker_cpu0_us;               /* < 0: not known */
	uint64_t deadline_ms;
	uint64_t drain_start_ns, end_ns;
	uint64_t broker_pid;     /* 0: not watched */
	uint64_t anon_sample_ms; /* when RssAnon was last read */
	uint64_t anon_peak_kib;  /* highest RssAnon seen */
	uint64_t side_jobs;      /* put in the side queue first */
} bench_run;

static int proc_status_kib(uint64_t pid, const char *name, uint64_t *kib);
static int64_t proc_cpu_us(uint64_t pid);

/* ---- processes ---- */

/* The body of child i: a worker, or the producer when i == workers. Its
 * requests wait at most 10 minutes for a reply. */
static int child_main(bench_run *r, int i)
{
	r->c.conn = r->x->conn;
	if (r->c.conn.timeout_ms > 600000)
		r->c.conn.timeout_ms = 600000;
	if (i < r->c.workers)
		return bench_worker_main(&r->c, r->s, i);
	return bench_producer_main(&r->c, r->s);
}

/* A child outliving a killed nq-bench would wait for its flags forever. */
static void die_with_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(NQI_EXIT_FAILED);
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
			    "nq-bench: cannot start process "
			    "%d: %s\n",
			    i, strerror(errno));
			return NQI_EXIT_FAILED;
		}
		r->procs[r->nprocs++] = pid;
	}
	return NQI_CONTINUE;
}

static uint64_t timeval_us(struct timeval t)
{
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_usec;
}

static bool reap_one(bench_run *r, int i, int flags)
{
	if (r->reaped[i])
		return true;
	struct rusage ru = {0};
	pid_t got = wait4(r->procs[i], &r->status[i], flags, &ru);
	if (got == r->procs[i] || (got < 0 && errno == ECHILD))
		r->reaped[i] = true;
	if (got == r->procs[i])
		r->cpu_us[i] =
		    timeval_us(ru.ru_utime) + timeval_us(ru.ru_stime);
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
			fprintf(stderr, "nq-bench: the producer failed\n");
		else
			fprintf(stderr,
			    "nq-bench: worker %d ended "
			    "before the run was over\n",
			    i);
		return NQI_EXIT_FAILED;
	}
	return NQI_CONTINUE;
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
			    "nq-bench: process %ld did not "
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
		return NQI_CONTINUE;
	fprintf(stderr,
	    "nq-bench: gave up %s: %llu of %llu jobs enqueued, %llu "
	    "run\n",
	    what, (unsigned long long)atomic_load(&r->s->enqueued),
	    (unsigned long long)r->c.jobs,
	    (unsigned long long)atomic_load(&r->s->handled));
	return NQI_EXIT_FAILED;
}

/* Waits until the workers have started, bounded by BENCH_START_MS. */
static int start_workers(bench_run *r)
{
	uint64_t until = nqi_mono_ms() + BENCH_START_MS;
	int rc = NQI_CONTINUE;
	r->drain_start_ns = bench_now_ns();
	atomic_store(&r->s->go, true);
	while (rc == NQI_CONTINUE && atomic_load(&r->s->ready) < r->c.workers) {
		if (nqi_mono_ms() >= until) {
			fprintf(stderr,
			    "nq-bench: %d of %d workers "
			    "started in %d ms\n",
			    atomic_load(&r->s->ready), r->c.workers,
			    BENCH_START_MS);
			return NQI_EXIT_FAILED;
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
		if (rc != NQI_CONTINUE)
			return rc;
		usleep(2000);
	}
	return check_children(r);
}

/* Waits until every job has run once. */
static int wait_handled(bench_run *r)
{
	int rc = NQI_CONTINUE;
	while (rc == NQI_CONTINUE && atomic_load(&r->s->handled) < r->c.jobs) {
		usleep(500);
		sample_broker(r);
		rc = check_children(r);
		if (rc == NQI_CONTINUE)
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
			return bench_fail(
			    r->x, rv, "stats of queue %s", r->c.queue);
		done = 0;
		if (n == 1)
			nq_queue_stats_get(qs, 0, "succeeded_total", &done);
		nq_queue_stats_free(qs);
		if (done >= r->c.jobs)
			break;
		if (nqi_mono_ms() >= until) {
			fprintf(stderr,
			    "nq-bench: every job ran, but "
			    "the broker counts %llu of %llu as "
			    "succeeded after %d ms\n",
			    (unsigned long long)done,
			    (unsigned long long)r->c.jobs, BENCH_CONFIRM_MS);
			return NQI_EXIT_FAILED;
		}
		usleep(500);
	}
	r->end_ns = bench_now_ns();
	return NQI_CONTINUE;
}

/* Checks that the broker answers before the producer is let go, so that
 * an absent broker is reported as such (exit 3). */
static int check_broker(bench_run *r)
{
	int rc = bench_connect(r->x);
	if (rc != NQI_CONTINUE)
		return rc;
	nq_queue_stats *qs = NULL;
	size_t n = 0;
	int rv = nq_stats(r->x->client, "", &qs, &n, NULL);
	nq_queue_stats_free(qs);
	if (rv != NQ_OK)
		return bench_fail(r->x, rv, "stats");
	return NQI_CONTINUE;
}

/* --side-queue: puts its jobs in before any worker starts, so that it
 * has work for the whole run. */
static int fill_side(bench_run *r, uint64_t jobs)
{
	enum { BATCH = 1000 };
	nq_job_spec *specs = calloc(BATCH, sizeof *specs);
	nq_enqueue_result *res = calloc(BATCH, sizeof *res);
	int rc = specs && res ? NQI_CONTINUE : NQI_EXIT_FAILED;
	for (size_t i = 0; i < BATCH; i++)
		specs[i] = (nq_job_spec){
		    .queue = r->c.side_queue, .type = BENCH_SIDE_TYPE};
	for (uint64_t done = 0; rc == NQI_CONTINUE && done < jobs;) {
		size_t n = jobs - done < BATCH ? (size_t)(jobs - done) : BATCH;
		int rv = nq_enqueue_batch(r->x->client, specs, n, res);
		for (size_t i = 0; rv == NQ_OK && i < n; i++)
			rv = res[i].err;
		if (rv != NQ_OK)
			rc = bench_fail(r->x, rv, "enqueue into side queue %s",
			    r->c.side_queue);
		done += n;
	}
	if (!specs || !res)
		fprintf(stderr, "nq-bench: out of memory\n");
	free(specs);
	free(res);
	return rc;
}

static int run_phases(bench_run *r)
{
	int rc = check_broker(r);
	if (rc == NQI_CONTINUE && r->c.side_queue)
		rc = fill_side(r, r->side_jobs);
	if (rc == NQI_CONTINUE && r->c.backlog) {
		if ((rc = fill_backlog(r)) == NQI_CONTINUE)
			rc = start_workers(r);
	} else if (rc == NQI_CONTINUE) {
		if ((rc = start_workers(r)) == NQI_CONTINUE)
			atomic_store(&r->s->produce, true);
	}
	if (rc == NQI_CONTINUE)
		rc = wait_handled(r);
	if (rc == NQI_CONTINUE)
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

/* User + system CPU time of a process from /proc/PID/stat; -1 when
 * unknown. Fields 14 and 15 follow the command name, which may hold
 * spaces: they are counted from its closing parenthesis. */
static int64_t proc_cpu_us(uint64_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 1,
	              " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	              &ut, &st) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)hz);
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
		    "nq-bench: %llu runs were repeats of a "
		    "job that had run already\n",
		    (unsigned long long)(runs - r->c.jobs));
	if (r->c.side_queue && atomic_load(&r->s->side_started) >= r->side_jobs)
		fprintf(stderr,
		    "nq-bench: side queue %s ran dry before the run ended: "
		    "side_per_s is below its rate\n",
		    r->c.side_queue);
	if (foreign)
		fprintf(stderr,
		    "nq-bench: %llu jobs in queue %s were "
		    "not this run's\n",
		    (unsigned long long)foreign, r->c.queue);
}

/* The figures of a finished run; rss_mib < 0 when not known. */
typedef struct bench_result {
	double enqueue_per_s, e2e_per_s, drain_per_s;
	double p50_ms, p99_ms, p999_ms;
	double rss_mib, anon_mib;
	double side_per_s; /* < 0 without --side-queue */
	/* CPU time per job, in us: the workers', the producer's, the
	 * broker's (< 0 when not watched) */
	double cpu_workers, cpu_producer, cpu_broker;
} bench_result;

/* CPU per job of the children (from wait4) and of the broker (from /proc,
 * since the start of the run). */
static void measure_cpu(const bench_run *r, bench_result *m)
{
	uint64_t workers = 0;
	for (int i = 0; i < r->c.workers; i++)
		workers += r->cpu_us[i];
	double jobs = r->c.jobs ? (double)r->c.jobs : 1;
	m->cpu_workers = (double)workers / jobs;
	m->cpu_producer = (double)r->cpu_us[r->c.workers] / jobs;
	int64_t now = r->broker_pid ? proc_cpu_us(r->broker_pid) : -1;
	m->cpu_broker = now >= 0 && r->broker_cpu0_us >= 0
	                    ? (double)(now - r->broker_cpu0_us) / jobs
	                    : -1;
}

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
	uint64_t side = atomic_load(&s->side_started);
	m->side_per_s = r->c.side_queue ? per_s(side ? side - 1 : 0,
	                                      atomic_load(&s->side_first_ns),
	                                      atomic_load(&s->side_last_ns))
	                                : -1;
	measure_cpu(r, m);
	m->rss_mib = m->anon_mib = -1;
	r->anon_sample_ms = 0;
	sample_broker(r);
	if (r->broker_pid &&
	    proc_status_kib(r->broker_pid, "VmHWM", &kib) == NQ_OK) {
		m->rss_mib = (double)kib / 1024;
		m->anon_mib = (double)r->anon_peak_kib / 1024;
	} else if (r->broker_pid)
		fprintf(stderr,
		    "nq-bench: cannot read the peak RSS of "
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
	printf(" cpu_us_per_job=%.2f workers_cpu_us_per_job=%.2f "
	       "producer_cpu_us_per_job=%.2f",
	    m->cpu_workers + m->cpu_producer +
	        (m->cpu_broker > 0 ? m->cpu_broker : 0),
	    m->cpu_workers, m->cpu_producer);
	if (m->cpu_broker >= 0)
		printf(" broker_cpu_us_per_job=%.2f", m->cpu_broker);
	if (m->rss_mib >= 0)
		printf(" broker_peak_rss_mib=%.1f broker_peak_anon_mib=%.1f",
		    m->rss_mib, m->anon_mib);
	if (m->side_per_s >= 0)
		printf(" side_started=%llu side_per_s=%.1f",
		    (unsigned long long)atomic_load(&r->s->side_started),
		    m->side_per_s);
	printf("\n");
	return NQI_EXIT_OK;
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
	if (!bad)
		bad = json_object_set_new(j, "cpu_us_per_job",
		          json_real(m->cpu_workers + m->cpu_producer +
		                    (m->cpu_broker > 0 ? m->cpu_broker : 0))) ||
		      json_object_set_new(j, "workers_cpu_us_per_job",
		          json_real(m->cpu_workers)) ||
		      json_object_set_new(j, "producer_cpu_us_per_job",
		          json_real(m->cpu_producer));
	if (!bad && m->cpu_broker >= 0)
		bad = json_object_set_new(
		    j, "broker_cpu_us_per_job", json_real(m->cpu_broker));
	if (!bad && m->rss_mib >= 0)
		bad = json_object_set_new(
		          j, "broker_peak_rss_mib", json_real(m->rss_mib)) ||
		      json_object_set_new(
		          j, "broker_peak_anon_mib", json_real(m->anon_mib));
	if (!bad && m->side_per_s >= 0)
		bad = json_object_set_new(j, "side_started",
		          json_integer(
		              (json_int_t)atomic_load(&r->s->side_started))) ||
		      json_object_set_new(
		          j, "side_per_s", json_real(m->side_per_s));
	if (bad) {
		json_decref(j);
		j = NULL;
	}
	char *text = nqi_json_dumps(j);
	json_decref(j);
	if (!text) {
		fprintf(stderr, "nq-bench: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	printf("%s\n", text);
	free(text);
	return NQI_EXIT_OK;
}

/* ---- the run ---- */

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
	    .pipeline = f->pipeline,
	    .payload_size = f->payload_size,
	    .rate = f->rate,
	    .backlog = f->backlog,
	    .queue = r->queue,
	    .side_queue = f->side_queue};
	r->side_jobs = f->side_jobs;
	r->deadline_ms = nqi_mono_ms() + f->max_time_ms;
	r->broker_pid = f->broker_pid;
	r->broker_cpu0_us = r->broker_pid ? proc_cpu_us(r->broker_pid) : -1;
}

int bench_main(bench_cli *x, const bench_flags *f)
{
	bench_run *r = calloc(1, sizeof *r);
	if (!r) {
		fprintf(stderr, "nq-bench: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	r->x = x;
	conf_from_flags(r, f);
	int rc = NQI_EXIT_FAILED;
	if (!(r->s = bench_shared_map(r->c.jobs, &r->shared_len))) {
		fprintf(stderr, "nq-bench: cannot map %llu jobs: %s\n",
		    (unsigned long long)r->c.jobs, strerror(errno));
		goto out;
	}
	rc = spawn(r);
	if (rc == NQI_CONTINUE)
		rc = run_phases(r);
	reap_all(r);
	if (rc == NQI_CONTINUE) {
		bench_result m;
		print_notes(r);
		measure(r, &m);
		rc = x->json ? print_json(r, &m) : print_line(r, &m);
	}
	munmap(r->s, r->shared_len);
out:
	free(r);
	return rc;
}
