/*
 * faultsim workflows --api URL --work URL --results URL --duration-ms N
 *                    [--timeout-ms N]: batches and chains under the
 * faults of the workflows scenario (broker SIGKILLs), produced, worked
 * and checked by one process that no fault touches.
 *
 * For --duration-ms it enqueues, every 250 ms, a sealed batch of 20 jobs
 * (every third holds one delayed an hour and canceled at once: no job
 * dies, since the suite's checker reads every nq-dlq entry as one of its
 * own) with on_success and
 * on_complete callbacks, and a chain of 5 links; its own worker (libnq's
 * nq_worker, on queue wf) runs them and records each run. Then it waits
 * (--timeout-ms) for every confirmed batch to complete and its callbacks
 * and every chain to have run, and checks:
 *   - each confirmed batch enqueued on_complete exactly once, on_success
 *     exactly once when no job was canceled and never otherwise (distinct job
 *     ids; a job may run twice after a crash lost its completion);
 *   - its counts are its jobs' ends;
 *   - no child (a link, a callback) started before its parents ended
 *     (a link: before its parent's first successful run ended);
 *   - no job of queue wf is left waiting.
 * The last line is `faultsim workflows: ...`; exit status 1 on a failure.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"

#define WF_QUEUE "wf"
#define WF_BATCH 20
#define WF_LINKS 5
#define WF_MAX 4096 /* batches or chains one run confirms, at most */

typedef struct wf_run {
	uint64_t job, start_us, end_us;
	bool ok;
	char kind;      /* 'c', 's' for callbacks, else 0 */
	uint64_t batch; /* a callback's batch */
} wf_run;

typedef struct wf_batch {
	char id[NQ_ID_MAX];
	bool poisoned;
	uint64_t jobs[WF_BATCH];
} wf_batch;

static struct {
	pthread_mutex_t mu;
	wf_run *runs;
	size_t n, cap;
} rec = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static wf_batch batches[WF_MAX];
static uint64_t chains[WF_MAX][WF_LINKS];
static size_t nbatches, nchains;

static void record(const wf_run *r)
{
	pthread_mutex_lock(&rec.mu);
	if (rec.n == rec.cap) {
		size_t cap = rec.cap ? rec.cap * 2 : 1024;
		wf_run *v = realloc(rec.runs, cap * sizeof *v);
		if (v) {
			rec.runs = v;
			rec.cap = cap;
		}
	}
	if (rec.n < rec.cap)
		rec.runs[rec.n++] = *r;
	pthread_mutex_unlock(&rec.mu);
}

static nq_outcome handle(const nq_job *job, nq_result *res, void *arg)
{
	(void)arg;
	wf_run r = {fs_id_num(nq_job_id(job)), fs_now_us(), 0, true, 0, 0};
	size_t len;
	const char *p = nq_job_payload(job, &len);
	if (strcmp(nq_job_type(job), "cb") == 0 && len == 1 &&
	    nq_job_parent_result_count(job) == 1) {
		const char *batch;
		nq_job_parent_result(job, 0, &batch, NULL, NULL);
		r.kind = p[0];
		r.batch = fs_id_num(batch);
	}
	(void)res;
	fs_sleep_ms(2);
	r.end_us = fs_now_us();
	record(&r);
	return NQ_OUTCOME_SUCCEEDED;
}

/* ---- producing ---- */

static void add_batch(nq_client *c, uint64_t k)
{
	nq_job_spec specs[WF_BATCH];
	nq_enqueue_result res[WF_BATCH];
	nq_job_spec ok = {
	    .queue = WF_QUEUE, .type = "cb", .payload = "s", .payload_len = 1};
	nq_job_spec all = ok;
	all.payload = "c";
	wf_batch *b = &batches[nbatches];
	b->poisoned = k % 3 == 0;
	for (int i = 0; i < WF_BATCH; i++)
		specs[i] = (nq_job_spec){.queue = WF_QUEUE,
		    .type = "item",
		    .delay_ms = b->poisoned && i == 7 ? 3600 * 1000 : 0};
	if (nbatches == WF_MAX ||
	    nq_batch_enqueue(c, specs, WF_BATCH, &ok, &all, res, b->id) != 0)
		return;
	for (int i = 0; i < WF_BATCH; i++) {
		if (res[i].err != NQ_OK)
			return; /* a refused job: not a batch to check */
		b->jobs[i] = fs_id_num(res[i].id);
	}
	/* The delayed job is canceled, through restarts: a repeat finds it
	 * canceled already (NQ_EPRECOND). */
	for (int rv = -1; b->poisoned && rv != NQ_OK && rv != NQ_EPRECOND;) {
		rv = nq_cancel(c, res[7].id, NULL);
		if (rv != NQ_OK && rv != NQ_EPRECOND)
			fs_sleep_ms(100);
	}
	nbatches++;
}

static void add_chain(nq_client *c)
{
	nq_job_spec specs[WF_LINKS];
	nq_enqueue_result res[WF_LINKS];
	for (int i = 0; i < WF_LINKS; i++)
		specs[i] = (nq_job_spec){.queue = WF_QUEUE, .type = "link"};
	if (nchains == WF_MAX || nq_enqueue_chain(c, specs, WF_LINKS, res) != 0)
		return;
	for (int i = 0; i < WF_LINKS; i++) {
		if (res[i].err != NQ_OK)
			return;
		chains[nchains][i] = fs_id_num(res[i].id);
	}
	nchains++;
}

/* ---- checking ---- */

/* The earliest start and the earliest end (ok runs only, with ok) of
 * job's runs; false when it never ran. */
static bool runs_of(uint64_t job, bool ok, uint64_t *start, uint64_t *end)
{
	bool any = false;
	*start = *end = UINT64_MAX;
	for (size_t i = 0; i < rec.n; i++) {
		const wf_run *r = &rec.runs[i];
		if (r->job != job || (ok && !r->ok))
			continue;
		any = true;
		if (r->start_us < *start)
			*start = r->start_us;
		if (r->end_us < *end)
			*end = r->end_us;
	}
	return any;
}

/* The distinct callback jobs of kind for batch, and the first start of
 * the first. */
static size_t callbacks_of(uint64_t batch, char kind, uint64_t *start)
{
	uint64_t seen[8];
	size_t n = 0;
	*start = UINT64_MAX;
	for (size_t i = 0; i < rec.n; i++) {
		const wf_run *r = &rec.runs[i];
		bool dup = false;
		if (r->batch != batch || r->kind != kind)
			continue;
		for (size_t k = 0; k < n; k++)
			dup |= seen[k] == r->job;
		if (!dup && n < 8)
			seen[n++] = r->job;
		if (r->start_us < *start)
			*start = r->start_us;
	}
	return n;
}

typedef struct wf_verdict {
	size_t missing, twice, early, miscounted, callbacks;
	uint64_t waiting;
} wf_verdict;

static void check_batch(nq_client *c, const wf_batch *b, wf_verdict *v)
{
	uint64_t id = fs_id_num(b->id), last_end = 0, s, e, cs, cc;
	nq_batch_info info;
	for (int i = 0; i < WF_BATCH; i++)
		if (runs_of(b->jobs[i], false, &s, &e) && e > last_end)
			last_end = e;
	size_t nc = callbacks_of(id, 'c', &cc);
	size_t ns = callbacks_of(id, 's', &cs);
	size_t want_s = b->poisoned ? 0 : 1;
	v->callbacks += nc + ns;
	v->missing += (nc == 0) + (ns < want_s);
	v->twice += (nc > 1) + (ns > want_s);
	v->early += (nc && cc < last_end) + (ns && cs < last_end);
	if (nq_batch_get(c, b->id, &info) != NQ_OK ||
	    info.succeeded != (uint64_t)(WF_BATCH - b->poisoned) ||
	    info.canceled != (uint64_t)b->poisoned || info.dead != 0) {
		v->miscounted++;
		fprintf(stderr, "faultsim workflows: batch %s counts wrong\n",
		    b->id);
	}
}

static void check_chain(const uint64_t *links, wf_verdict *v)
{
	uint64_t parent_end = 0, s, e;
	for (int i = 0; i < WF_LINKS; i++) {
		if (!runs_of(links[i], true, &s, &e)) {
			v->missing++;
			return;
		}
		if (i > 0 && s < parent_end)
			v->early++;
		parent_end = e;
	}
}

static uint64_t waiting_now(nq_client *c)
{
	nq_queue_stats *s = NULL;
	size_t n = 0;
	uint64_t w = UINT64_MAX;
	if (nq_stats(c, WF_QUEUE, &s, &n, NULL) == NQ_OK && n == 1)
		nq_queue_stats_get(s, 0, "waiting", &w);
	nq_queue_stats_free(s);
	return w;
}

/* Whether every confirmed batch completed and ran its callbacks, and
 * every chain's last link succeeded. */
static bool all_done(nq_client *c)
{
	uint64_t s, e;
	bool done = true;
	pthread_mutex_lock(&rec.mu);
	for (size_t i = 0; done && i < nchains; i++)
		done = runs_of(chains[i][WF_LINKS - 1], true, &s, &e);
	for (size_t i = 0; done && i < nbatches; i++)
		done = callbacks_of(fs_id_num(batches[i].id), 'c', &s) > 0 &&
		       (batches[i].poisoned ||
		           callbacks_of(fs_id_num(batches[i].id), 's', &s) > 0);
	pthread_mutex_unlock(&rec.mu);
	return done && waiting_now(c) == 0;
}

static void *work_thread(void *arg)
{
	nq_worker_run(arg);
	return NULL;
}

static int open_worker(nq_worker **w, const char *work, const char *results)
{
	static const char *const queues[] = {WF_QUEUE};
	nq_worker_opts o = {.queues = queues,
	    .nqueues = 1,
	    .concurrency = 8,
	    .lease_ms = 1000,
	    .poll_ms = 500,
	    .worker_id = "workflows"};
	o.conn.work_url = work;
	o.conn.results_url = results;
	o.conn.timeout_ms = 2000;
	int rv = nq_worker_open(w, &o);
	if (rv == NQ_OK)
		rv = nq_worker_handle(*w, "*", handle, NULL);
	return rv;
}

int fs_cmd_workflows(int argc, char **argv)
{
	const char *api = NULL, *work = NULL, *results = NULL;
	uint64_t duration_ms = 10000, timeout_ms = 120000;
	const fs_flag flags[] = {{"api", NULL, &api}, {"work", NULL, &work},
	    {"results", NULL, &results}, {"duration-ms", &duration_ms, NULL},
	    {"timeout-ms", &timeout_ms, NULL}};
	nq_client *c;
	nq_worker *w;
	pthread_t t;
	wf_verdict v = {0};
	int rv = fs_flags_parse(
	    "workflows", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!api || !work || !results)
		return fs_usage("workflows", "--api, --work and --results");
	nq_client_opts co = {.api_url = api, .timeout_ms = 2000};
	if (nq_client_open(&c, &co) != NQ_OK ||
	    open_worker(&w, work, results) != NQ_OK ||
	    pthread_create(&t, NULL, work_thread, w) != 0) {
		fprintf(stderr, "faultsim workflows: cannot start\n");
		return 1;
	}
	uint64_t end = fs_now_us() + duration_ms * 1000;
	for (uint64_t k = 0; fs_now_us() < end; k++) {
		add_batch(c, k);
		add_chain(c);
		fs_sleep_ms(250);
	}
	end = fs_now_us() + timeout_ms * 1000;
	while (fs_now_us() < end && !all_done(c))
		fs_sleep_ms(200);
	fs_sleep_ms(1500); /* a callback enqueued twice would run by now */
	nq_worker_stop(w);
	pthread_join(t, NULL);
	nq_worker_close(w);
	for (size_t i = 0; i < nbatches; i++)
		check_batch(c, &batches[i], &v);
	for (size_t i = 0; i < nchains; i++)
		check_chain(chains[i], &v);
	v.waiting = waiting_now(c);
	nq_client_close(c);
	bool ok = nbatches > 0 && nchains > 0 && !v.missing && !v.twice &&
	          !v.early && !v.miscounted && v.waiting == 0;
	printf("faultsim workflows: batches=%zu chains=%zu callbacks=%zu "
	       "runs=%zu missing=%zu twice=%zu early=%zu miscounted=%zu "
	       "waiting=%" PRIu64 " %s\n",
	    nbatches, nchains, v.callbacks, rec.n, v.missing, v.twice, v.early,
	    v.miscounted, v.waiting, ok ? "ok" : "FAIL");
	free(rec.runs);
	return ok ? 0 : 1;
}
