/*
 * nq-bench: the shared state, the latency histogram, and the bodies of
 * the producer and worker processes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"

/* How often a waiting process looks at the shared flags. */
#define BENCH_POLL_NS 1000000L

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(long ns)
{
	struct timespec ts = {
	    .tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Sleeps until the monotonic time due_ns. */
static void sleep_until_ns(uint64_t due_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000u),
	    .tv_nsec = (long)(due_ns % 1000000000u)};
	while (
	    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void store_max(atomic_uint_least64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

/* Lowers *a to v; 0 counts as "not set yet". */
static void store_min(atomic_uint_least64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (
	    (cur == 0 || v < cur) && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---- shared state and histogram ---- */

bench_shared *bench_shared_map(uint64_t jobs, size_t *len)
{
	size_t n = sizeof(bench_shared) + (size_t)(jobs / 8 + 1);
	void *p = mmap(
	    NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* A fresh anonymous mapping is zero: every flag false, every
	 * counter 0. */
	*len = n;
	return p;
}

static size_t hist_bucket(uint64_t us)
{
	if (us < BENCH_HIST_LINEAR)
		return (size_t)us;
	int msb = 63 - __builtin_clzll(us);
	int shift = msb - 6;
	size_t sub = (size_t)(us >> shift) - BENCH_HIST_SUB;
	size_t i = BENCH_HIST_LINEAR + (size_t)(msb - 7) * BENCH_HIST_SUB + sub;
	return i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket i, in microseconds. */
static double hist_value(size_t i)
{
	if (i < BENCH_HIST_LINEAR)
		return (double)i;
	size_t e = (i - BENCH_HIST_LINEAR) / BENCH_HIST_SUB;
	size_t sub = (i - BENCH_HIST_LINEAR) % BENCH_HIST_SUB;
	double width = (double)(1ull << (e + 1));
	double low = (double)((BENCH_HIST_SUB + sub) << (e + 1));
	return low + width / 2;
}

double bench_hist_quantile(const bench_shared *s, double q)
{
	uint64_t total = 0, seen = 0;
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
		total += atomic_load(&s->hist[i]);
	if (total == 0)
		return 0;
	/* The smallest value with at least q of the samples at or below. */
	uint64_t rank = (uint64_t)(q * (double)total);
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += atomic_load(&s->hist[i]);
		if (seen >= rank)
			return hist_value(i);
	}
	return hist_value(BENCH_HIST_BUCKETS - 1);
}

/* ---- producer ---- */

typedef struct prod_thread {
	const bench_conf *c;
	bench_shared *s;
	atomic_uint_least64_t *next_batch;
	atomic_bool *failed;
	uint64_t t0_ns; /* start of the paced schedule */
	pthread_t thr;
	nq_client *client;
	nq_job_spec *specs;
	nq_enqueue_result *results; /* c->pipeline batches of c->batch */
	uint8_t *payloads;
	/* the batches in flight, by slot: their first job and size */
	nq_enqueue_pending *pending[BENCH_MAX_PIPELINE];
	uint64_t first[BENCH_MAX_PIPELINE];
	size_t n[BENCH_MAX_PIPELINE];
} prod_thread;

/* Keeps the first failure of any producer thread for the report. */
static void prod_fail(prod_thread *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void prod_fail(prod_thread *t, const char *fmt, ...)
{
	va_list ap;
	if (atomic_exchange(t->failed, true))
		return;
	va_start(ap, fmt);
	vsnprintf(t->s->producer_error, sizeof t->s->producer_error, fmt, ap);
	va_end(ap);
}

static int prod_alloc(prod_thread *t)
{
	const bench_conf *c = t->c;
	int rv = nq_client_open(&t->client, &c->conn);
	if (rv != NQ_OK) {
		prod_fail(t, "opening a client: %s", nq_strerror(rv));
		return rv;
	}
	t->specs = calloc(c->batch, sizeof *t->specs);
	t->results = calloc(c->batch * (size_t)c->pipeline, sizeof *t->results);
	t->payloads = malloc(c->batch * c->payload_size);
	if (!t->specs || !t->results || !t->payloads) {
		prod_fail(t, "out of memory for batches of %llu",
		    (unsigned long long)c->batch);
		return NQ_ENOMEM;
	}
	memset(t->payloads, 'x', c->batch * c->payload_size);
	for (uint64_t i = 0; i < c->batch; i++) {
		t->specs[i].queue = c->queue;
		t->specs[i].type = "noop";
		t->specs[i].payload = t->payloads + i * c->payload_size;
		t->specs[i].payload_len = c->payload_size;
		t->specs[i].content_type = "application/octet-stream";
	}
	return NQ_OK;
}

static void prod_release(prod_thread *t)
{
	nq_client_close(t->client);
	free(t->specs);
	free(t->results);
	free(t->payloads);
}

/* Checks every item of the confirmed batch of slot; the first refusal
 * ends the run. */
static int prod_check(prod_thread *t, int slot)
{
	const nq_enqueue_result *res = t->results + (size_t)slot * t->c->batch;
	for (size_t i = 0; i < t->n[slot]; i++) {
		const nq_enqueue_result *r = &res[i];
		if (r->err == NQ_OK)
			continue;
		prod_fail(t, "job %llu was refused: %s%s%s",
		    (unsigned long long)(t->first[slot] + i),
		    nq_strerror(r->err), r->message[0] ? ": " : "", r->message);
		return r->err;
	}
	return NQ_OK;
}

static int prod_call_failed(prod_thread *t, int slot, int rv)
{
	const char *why = nq_client_last_error(t->client);
	prod_fail(t, "enqueue of jobs %llu..%llu: %s%s%s",
	    (unsigned long long)t->first[slot],
	    (unsigned long long)(t->first[slot] + t->n[slot] - 1),
	    nq_strerror(rv), *why ? ": " : "", why);
	return rv;
}

/* Waits for the batch in flight in slot, if any, and counts it. */
static int prod_wait(prod_thread *t, int slot)
{
	if (!t->pending[slot])
		return NQ_OK;
	int rv = nq_enqueue_batch_wait(t->client, t->pending[slot]);
	t->pending[slot] = NULL;
	if (rv != NQ_OK)
		return prod_call_failed(t, slot, rv);
	if ((rv = prod_check(t, slot)) != NQ_OK)
		return rv;
	atomic_fetch_add(&t->s->enqueued, t->n[slot]);
	store_max(&t->s->last_ack_ns, bench_now_ns());
	return NQ_OK;
}

/* Sends jobs first..first+n-1 as one batch stamped with the send time,
 * in slot (whose earlier batch was waited for). */
static int prod_send(prod_thread *t, int slot, uint64_t first, size_t n)
{
	uint64_t sent_ns = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = t->payloads + i * t->c->payload_size;
		put_le64(p, first + i);
		put_le64(p + 8, sent_ns);
	}
	store_min(&t->s->first_send_ns, sent_ns);
	t->first[slot] = first;
	t->n[slot] = n;
	/* The payloads are packed into the request by the time send
	 * returns: the next batch may write them again. */
	int rv = nq_enqueue_batch_send(t->client, t->specs, n,
	    t->results + (size_t)slot * t->c->batch, &t->pending[slot]);
	return rv == NQ_OK ? NQ_OK : prod_call_failed(t, slot, rv);
}

/* Takes batches in turn with the other threads until all are sent,
 * keeping up to c->pipeline of them in flight; with a rate, each batch
 * waits for its slot of the schedule. */
static void *prod_thread_cb(void *arg)
{
	prod_thread *t = arg;
	const bench_conf *c = t->c;
	int slot = 0;
	for (;; slot = (slot + 1) % c->pipeline) {
		uint64_t k = atomic_fetch_add(t->next_batch, 1);
		uint64_t first = k * c->batch;
		if (first >= c->jobs || atomic_load(t->failed))
			break;
		size_t n = (size_t)(c->jobs - first < c->batch ? c->jobs - first
		                                               : c->batch);
		if (prod_wait(t, slot) != NQ_OK)
			break;
		if (c->rate)
			sleep_until_ns(
			    t->t0_ns +
			    (uint64_t)((double)first * 1e9 / (double)c->rate));
		if (prod_send(t, slot, first, n) != NQ_OK ||
		    (c->pipeline == 1 && prod_wait(t, slot) != NQ_OK))
			break;
	}
	/* The rest in flight are waited for even after a failure. */
	for (int i = 0; i < c->pipeline; i++)
		prod_wait(t, i);
	return NULL;
}

static int prod_run(const bench_conf *c, bench_shared *s, prod_thread *ts)
{
	int started = 0;
	for (int i = 0; i < c->producers; i++) {
		if (prod_alloc(&ts[i]) != NQ_OK)
			goto join;
	}
	while (!atomic_load(&s->produce) && !atomic_load(&s->stop))
		sleep_ns(BENCH_POLL_NS);
	if (!atomic_load(&s->produce))
		goto join; /* the run ended before it began */
	uint64_t t0 = bench_now_ns();
	for (; started < c->producers; started++) {
		ts[started].t0_ns = t0;
		if (pthread_create(&ts[started].thr, NULL, prod_thread_cb,
		        &ts[started]) != 0) {
			prod_fail(&ts[started],
			    "cannot start producer thread "
			    "%d",
			    started);
			break;
		}
	}
join:
	for (int i = 0; i < started; i++)
		pthread_join(ts[i].thr, NULL);
	return atomic_load(ts[0].failed) ? 1 : 0;
}

int bench_producer_main(const bench_conf *c, bench_shared *s)
{
	atomic_uint_least64_t next_batch = 0;
	atomic_bool failed = false;
	prod_thread *ts = calloc((size_t)c->producers, sizeof *ts);
	if (!ts) {
		fprintf(stderr, "nq-bench: producer: out of memory\n");
		return 1;
	}
	for (int i = 0; i < c->producers; i++)
		ts[i] = (prod_thread){.c = c,
		    .s = s,
		    .next_batch = &next_batch,
		    .failed = &failed};
	int rc = prod_run(c, s, ts);
	for (int i = 0; i < c->producers; i++)
		prod_release(&ts[i]);
	free(ts);
	if (rc != 0)
		fprintf(stderr, "nq-bench: producer: %s\n", s->producer_error);
	return rc;
}

/* ---- workers ---- */

typedef struct worker_ctx {
	const bench_conf *c;
	bench_shared *s;
	nq_worker *w;
	atomic_bool done; /* nq_worker_run returned */
} worker_ctx;

/* The no-op handler: notes the latency of a job's first run. */
static nq_outcome noop_cb(const nq_job *job, nq_result *res, void *arg)
{
	uint64_t now_ns = bench_now_ns();
	worker_ctx *wc = arg;
	bench_shared *s = wc->s;
	size_t len;
	const uint8_t *p = nq_job_payload(job, &len);
	uint64_t seq = p && len >= BENCH_PAYLOAD_MIN ? get_le64(p) : UINT64_MAX;
	if (seq >= wc->c->jobs) {
		atomic_fetch_add(&s->foreign, 1);
		nq_result_error(res, "not a bench payload", true);
		return NQ_OUTCOME_FAILED;
	}
	atomic_fetch_add(&s->runs, 1);
	unsigned char bit = (unsigned char)(1u << (seq & 7));
	if (atomic_fetch_or(&s->seen[seq >> 3], bit) & bit)
		return NQ_OUTCOME_SUCCEEDED;
	uint64_t sent_ns = get_le64(p + 8);
	uint64_t us = now_ns > sent_ns ? (now_ns - sent_ns) / 1000 : 0;
	atomic_fetch_add(&s->hist[hist_bucket(us)], 1);
	store_max(&s->last_run_ns, now_ns);
	atomic_fetch_add(&s->handled, 1);
	return NQ_OUTCOME_SUCCEEDED;
}

/* The side queue's handler: counts its starts and notes the first and the
 * last. */
static nq_outcome side_cb(const nq_job *job, nq_result *res, void *arg)
{
	(void)job;
	(void)res;
	uint64_t now_ns = bench_now_ns();
	bench_shared *s = ((worker_ctx *)arg)->s;
	store_min(&s->side_first_ns, now_ns);
	store_max(&s->side_last_ns, now_ns);
	atomic_fetch_add(&s->side_started, 1);
	return NQ_OUTCOME_SUCCEEDED;
}

/* Starts the worker's drain once the run is over. */
static void *stop_watch_cb(void *arg)
{
	worker_ctx *wc = arg;
	while (!atomic_load(&wc->s->stop) && !atomic_load(&wc->done))
		sleep_ns(BENCH_POLL_NS);
	nq_worker_stop(wc->w);
	return NULL;
}

static int worker_open(worker_ctx *wc, int index)
{
	char id[64];
	const char *queues[] = {wc->c->queue, wc->c->side_queue};
	snprintf(id, sizeof id, "bench-%d", index);
	nq_worker_opts o = {
	    .conn = wc->c->conn,
	    .queues = queues,
	    .nqueues = wc->c->side_queue ? 2 : 1,
	    .concurrency = wc->c->concurrency,
	    .poll_ms = 1000,
	    .worker_id = id,
	};
	int rv = nq_worker_open(&wc->w, &o);
	if (rv == NQ_OK)
		rv = nq_worker_handle(wc->w, "*", noop_cb, wc);
	if (rv == NQ_OK && wc->c->side_queue)
		rv = nq_worker_handle(wc->w, BENCH_SIDE_TYPE, side_cb, wc);
	return rv;
}

int bench_worker_main(const bench_conf *c, bench_shared *s, int index)
{
	worker_ctx wc = {.c = c, .s = s};
	pthread_t watch;
	while (!atomic_load(&s->go) && !atomic_load(&s->stop))
		sleep_ns(BENCH_POLL_NS);
	if (atomic_load(&s->stop))
		return 0;
	int rv = worker_open(&wc, index);
	if (rv == NQ_OK && pthread_create(&watch, NULL, stop_watch_cb, &wc))
		rv = NQ_ENOMEM;
	if (rv != NQ_OK) {
		fprintf(stderr, "nq-bench: worker %d: cannot start: %s\n",
		    index, nq_strerror(rv));
		nq_worker_close(wc.w);
		return 1;
	}
	atomic_fetch_add(&s->ready, 1);
	rv = nq_worker_run(wc.w);
	atomic_store(&wc.done, true);
	pthread_join(watch, NULL);
	nq_worker_close(wc.w);
	if (rv != NQ_OK)
		fprintf(stderr, "nq-bench: worker %d: %s\n", index,
		    nq_strerror(rv));
	return rv == NQ_OK ? 0 : 1;
}
