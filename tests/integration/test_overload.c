/*
 * Overload: producers that enqueue far faster than the workers drain, and
 * a crowd of idle connections, leave the broker bounded and serving.
 *
 * The flood: producers send batches as fast as the broker answers into
 * one queue whose max_depth (--max-depth) is far below what they send,
 * while consumers lease and complete at a rate of their own, far lower.
 * Enqueues beyond the depth are answered RESOURCE_EXHAUSTED at once (no
 * call waits out a timeout), the broker never holds more than the depth,
 * completions flow throughout, the time accepted jobs wait does not grow
 * (it is bounded by the depth over the drain rate) and the broker's
 * memory at the end is what it was early in the flood. Finished jobs
 * leave after --result-ttl 2s: what the flood leaves behind is bounded by
 * the drain rate, not by what was offered.
 *
 * NQ_OVERLOAD_SECONDS sets how long the flood lasts (15 by default; the
 * long mode is NQ_OVERLOAD_SECONDS=300 build/tests/integration/...).
 *
 * The crowd: 5,000 connections to the work socket that greet and then say
 * nothing, beside a client and a worker that go on as usual. The test
 * raises its own descriptor limit (which the broker inherits) to fit them,
 * and the broker's --max-connections to 6000. Then a crowd of 1,000 on
 * the work socket and 500 on the api socket against the default cap of
 * 256: each newcomer takes the place of a crowd connection that sent
 * nothing, so a client that connects after the crowd is served at once,
 * while a work connection that fetched a lease and has been quiet since
 * is never the one closed (its lease holds).
 *
 * A client that never reads its replies is test_availability's, a
 * subscriber that never reads events is test_slow_subscriber's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define MAX_DEPTH 2000
#define PRODUCERS 3
#define CONSUMERS 2
#define BATCH 100
#define FETCH_MAX 20
#define WORK_MS 40       /* a consumer's "work" per fetched batch */
#define CALL_MS_MAX 3000 /* no enqueue call may take longer */
#define SAMPLE_MS 250
#define IDLE_CONNS 5000
/* The crowd at the default cap: far more than it, yet small enough that
 * the connections the broker closes (they cost more than kept ones) take
 * a few seconds on a loaded machine; half of it again on api. */
#define CAP_CROWD 1000
#define DEFAULT_CAP 256
#define MAX_SAMPLES 8192

/* Under AddressSanitizer freed memory waits in its quarantine (256 MiB)
 * before it is used again, so the broker's memory is judged only without
 * it. */
#if defined(__SANITIZE_ADDRESS__)
#define OVERLOAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OVERLOAD_ASAN 1
#endif
#endif
#ifndef OVERLOAD_ASAN
#define OVERLOAD_ASAN 0
#endif

static const char *const flood_flags[] = {
    "--max-depth", "2000", "--result-ttl", "2s", NULL};

/* ---- the broker's figures ---- */

/* VmRSS of pid in KiB; 0 when it cannot be read. */
static uint64_t rss_kb(pid_t pid)
{
	char path[64], line[256];
	uint64_t kb = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile of v[0..n) (sorts v); 0 when n is 0. */
static uint64_t pct(uint64_t *v, size_t n, unsigned p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_u64);
	return v[(n - 1) * p / 100];
}

/* ---- the flood ---- */

typedef struct series {
	uint64_t v[MAX_SAMPLES];
	size_t n;
} series;

typedef struct flood {
	itest_env *e;
	uint64_t t0, t1; /* monotonic ms: the flood's start and end */
	atomic_bool stop;
	atomic_uint_fast64_t accepted, refused, failed, completed;
	pthread_mutex_t mu;
	series calls;      /* ms of each enqueue call */
	series waits[3];   /* ms accepted jobs waited, per third */
	series done_per_s; /* completions in each second */
	char first_error[160];
} flood;

static void series_add(flood *f, series *s, uint64_t v)
{
	pthread_mutex_lock(&f->mu);
	if (s->n < MAX_SAMPLES)
		s->v[s->n++] = v;
	else
		s->v[(size_t)rand() % MAX_SAMPLES] = v; /* keeps a sample */
	pthread_mutex_unlock(&f->mu);
}

static void note_error(flood *f, int rv, const char *msg)
{
	atomic_fetch_add(&f->failed, 1);
	pthread_mutex_lock(&f->mu);
	if (!f->first_error[0])
		snprintf(f->first_error, sizeof f->first_error, "%s: %s",
		    nq_err_name(rv), msg ? msg : "");
	pthread_mutex_unlock(&f->mu);
}

static void settle(
    flood *f, int rv, nq_client *c, const nq_enqueue_result *res, size_t n)
{
	if (rv != NQ_OK && rv != NQ_EEXHAUSTED) {
		note_error(f, rv, nq_client_last_error(c));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (res[i].err == NQ_OK)
			atomic_fetch_add(&f->accepted, 1);
		else if (res[i].err == NQ_EEXHAUSTED)
			atomic_fetch_add(&f->refused, 1);
		else
			note_error(f, res[i].err, res[i].message);
	}
}

static void *producer_main(void *arg)
{
	flood *f = arg;
	nq_client *c;
	nq_job_spec specs[BATCH];
	nq_enqueue_result res[BATCH];
	if (itest_client(f->e, 5000, &c) != 0)
		return NULL;
	for (size_t i = 0; i < BATCH; i++)
		specs[i] = (nq_job_spec){.queue = "flood",
		    .type = "t",
		    .payload = "0123456789abcdef0123456789abcdef",
		    .payload_len = 32};
	while (!atomic_load(&f->stop)) {
		uint64_t t = itest_now_ms();
		int rv = nq_enqueue_batch(c, specs, BATCH, res);
		series_add(f, &f->calls, itest_now_ms() - t);
		settle(f, rv, c, res, BATCH);
	}
	nq_client_close(c);
	return NULL;
}

/* Which third of the flood the time t falls in. */
static int third(const flood *f, uint64_t t)
{
	uint64_t span = f->t1 - f->t0;
	uint64_t k = t <= f->t0 ? 0 : (t - f->t0) * 3 / (span ? span : 1);
	return k > 2 ? 2 : (int)k;
}

/* Completes a fetched batch after WORK_MS, noting how long each job
 * waited in the queue (its id is its creation time). */
static void consume(flood *f, nq_client *c, nq_job **jobs, size_t n)
{
	nq_completion done[FETCH_MAX];
	uint64_t now = itest_wall_us();
	int k = third(f, itest_now_ms());
	for (size_t i = 0; i < n; i++) {
		uint64_t born = nq_job_created_us(jobs[i]);
		series_add(
		    f, &f->waits[k], now > born ? (now - born) / 1000 : 0);
		done[i] = (nq_completion){.id = nq_job_id(jobs[i]),
		    .lease_token = nq_job_lease_token(jobs[i]),
		    .outcome = NQ_OUTCOME_SUCCEEDED};
	}
	itest_sleep_ms(WORK_MS);
	if (nq_complete(c, "flood-worker", done, n) == NQ_OK)
		atomic_fetch_add(&f->completed, n);
}

static void *consumer_main(void *arg)
{
	flood *f = arg;
	nq_client *c;
	const char *queues[] = {"flood"};
	if (itest_client(f->e, 5000, &c) != 0)
		return NULL;
	while (!atomic_load(&f->stop)) {
		nq_job **jobs = NULL;
		size_t n = 0;
		int rv = nq_fetch(c, "flood-worker", queues, 1, FETCH_MAX, 500,
		    30000, &jobs, &n);
		if (rv == NQ_OK && n > 0)
			consume(f, c, jobs, n);
		nq_jobs_free(jobs, n);
	}
	nq_client_close(c);
	return NULL;
}

/* Every SAMPLE_MS until the flood ends: the broker's memory and the
 * queue's depth; fails when the depth passes max_depth. Fills rss with
 * one sample per SAMPLE_MS. */
static void watch(flood *f, nq_client *c, series *rss, uint64_t *stats_ms)
{
	uint64_t last_done = 0, next_s = f->t0 + 1000, worst = 0;
	while (itest_now_ms() < f->t1) {
		itest_qstats q;
		uint64_t t = itest_now_ms();
		assert_int_equal(itest_queue_stats(c, "flood", &q, NULL), 0);
		uint64_t ms = itest_now_ms() - t;
		worst = ms > worst ? ms : worst;
		assert_true(q.ready + q.leased + q.scheduled <= MAX_DEPTH);
		if (rss->n < MAX_SAMPLES)
			rss->v[rss->n++] = rss_kb(f->e->broker->pid);
		if (itest_now_ms() >= next_s) {
			uint64_t d = atomic_load(&f->completed);
			series_add(f, &f->done_per_s, d - last_done);
			last_done = d;
			next_s += 1000;
		}
		itest_sleep_ms(SAMPLE_MS);
	}
	*stats_ms = worst;
}

static uint64_t max_of(const uint64_t *v, size_t from, size_t to)
{
	uint64_t m = 0;
	for (size_t i = from; i < to; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static uint64_t flood_seconds(void)
{
	const char *s = getenv("NQ_OVERLOAD_SECONDS");
	uint64_t n = s ? strtoull(s, NULL, 10) : 0;
	return n >= 6 ? n : 15;
}

/* The broker's memory: the largest sample of the second sixth of the
 * flood (past its start) against the largest of the last third. */
static void judge_memory(const series *rss)
{
	uint64_t early = max_of(rss->v, rss->n / 6, rss->n / 3);
	uint64_t late = max_of(rss->v, rss->n * 2 / 3, rss->n);
	print_message("broker RSS: %" PRIu64 " KiB early, %" PRIu64
	              " KiB in the last third\n",
	    early, late);
	if (OVERLOAD_ASAN)
		return;
	assert_true(early > 0);
	assert_true(late <= early + early / 4 + 16 * 1024);
}

/* The wait of accepted jobs: bounded by what the depth takes to drain,
 * and not growing from the middle third to the last. */
static void judge_waits(flood *f, uint64_t secs)
{
	uint64_t done = atomic_load(&f->completed);
	uint64_t rate = done / secs ? done / secs : 1;
	uint64_t bound = MAX_DEPTH * 1000 / rate * 2 + 2000;
	uint64_t mid = pct(f->waits[1].v, f->waits[1].n, 99);
	uint64_t late = pct(f->waits[2].v, f->waits[2].n, 99);
	uint64_t late_max = pct(f->waits[2].v, f->waits[2].n, 100);
	print_message(
	    "drained %" PRIu64 " jobs/s; accepted jobs waited p99 %" PRIu64
	    " ms (middle third), %" PRIu64 " ms (last), at most %" PRIu64
	    " ms; bound %" PRIu64 " ms\n",
	    rate, mid, late, late_max, bound);
	assert_true(f->waits[2].n > 0);
	assert_true(late <= bound);
	assert_true(late <= mid * 2 + 1000);
}

/* Completions in every second but the first, or (a loaded machine may
 * hold a thread back for a moment) at least in one of any two. */
static void judge_flow(flood *f)
{
	series *s = &f->done_per_s;
	uint64_t least = UINT64_MAX;
	size_t empty = 0, stalls = 0;
	for (size_t i = 1; i < s->n; i++) {
		least = s->v[i] < least ? s->v[i] : least;
		empty += s->v[i] == 0;
		stalls += i > 1 && s->v[i] == 0 && s->v[i - 1] == 0;
	}
	print_message("completions per second: fewest %" PRIu64
	              " over %zu s, %zu s without\n",
	    s->n > 1 ? least : 0, s->n, empty);
	assert_true(s->n > 2);
	assert_int_equal(stalls, 0);
}

static void test_overload_flood_is_refused_fast_and_drained(void **state)
{
	itest_env *e = *state;
	static flood f; /* large: the samples */
	static series rss;
	pthread_t p[PRODUCERS], w[CONSUMERS];
	nq_client *c;
	uint64_t secs = flood_seconds(), stats_ms;
	memset(&f, 0, sizeof f);
	rss.n = 0;
	pthread_mutex_init(&f.mu, NULL);
	f.e = e;
	assert_int_equal(itest_broker_start(e, flood_flags), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	f.t0 = itest_now_ms();
	f.t1 = f.t0 + secs * 1000;
	for (int i = 0; i < PRODUCERS; i++)
		assert_int_equal(
		    pthread_create(&p[i], NULL, producer_main, &f), 0);
	for (int i = 0; i < CONSUMERS; i++)
		assert_int_equal(
		    pthread_create(&w[i], NULL, consumer_main, &f), 0);
	watch(&f, c, &rss, &stats_ms);
	atomic_store(&f.stop, true);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(p[i], NULL);
	for (int i = 0; i < CONSUMERS; i++)
		pthread_join(w[i], NULL);
	uint64_t p50 = pct(f.calls.v, f.calls.n, 50);
	uint64_t p99 = pct(f.calls.v, f.calls.n, 99);
	uint64_t most = pct(f.calls.v, f.calls.n, 100);
	print_message("%" PRIu64 " s: %" PRIu64 " accepted, %" PRIu64
	              " refused RESOURCE_EXHAUSTED, %" PRIu64
	              " other errors (%s); %" PRIu64
	              " completed; enqueue calls p50 %" PRIu64 " p99 %" PRIu64
	              " max %" PRIu64 " ms; stats at most %" PRIu64 " ms\n",
	    secs, atomic_load(&f.accepted), atomic_load(&f.refused),
	    atomic_load(&f.failed), f.first_error[0] ? f.first_error : "-",
	    atomic_load(&f.completed), p50, p99, most, stats_ms);
	assert_int_equal(atomic_load(&f.failed), 0);
	/* The producers offered far more than was taken. */
	assert_true(atomic_load(&f.refused) > atomic_load(&f.accepted));
	assert_true(most < CALL_MS_MAX);
	assert_true(stats_ms < CALL_MS_MAX);
	judge_flow(&f);
	judge_waits(&f, secs);
	judge_memory(&rss);
	nq_client_close(c);
	pthread_mutex_destroy(&f.mu);
	itest_pass(e);
}

/* ---- idle connections ---- */

/* SP over TCP: the greeting of a REQ peer (protocol 48). */
static const uint8_t hello_req[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};

static int idle_conn(int port)
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    write(fd, hello_req, sizeof hello_req) != sizeof hello_req) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Raises this process's descriptor limit (the broker it starts inherits
 * it) to n; false when the hard limit is lower. */
static bool fds_for(rlim_t n)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_max < n)
		return false;
	r.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &r) == 0;
}

/* A job enqueued, leased and completed through c within bound ms. */
static uint64_t job_round_trip(nq_client *c)
{
	char id[NQ_ID_MAX];
	nq_job **jobs = NULL;
	size_t n = 0;
	const char *queues[] = {"served"};
	uint64_t t = itest_now_ms();
	assert_int_equal(itest_enqueue(c, "served", "t", "x", id), 0);
	assert_int_equal(
	    nq_fetch(c, "idle-test", queues, 1, 1, 5000, 30000, &jobs, &n), 0);
	assert_int_equal(n, 1);
	nq_completion done = {.id = nq_job_id(jobs[0]),
	    .lease_token = nq_job_lease_token(jobs[0]),
	    .outcome = NQ_OUTCOME_SUCCEEDED};
	assert_int_equal(nq_complete(c, "idle-test", &done, 1), 0);
	nq_jobs_free(jobs, n);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 5000, NULL), 0);
	return itest_now_ms() - t;
}

static void test_overload_idle_crowd_leaves_clients_served(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--max-connections", "6000", NULL};
	static int fds[IDLE_CONNS];
	nq_client *c;
	if (!fds_for(IDLE_CONNS + 1000)) {
		print_message(
		    "skipped: the hard descriptor limit is below %d\n",
		    IDLE_CONNS + 1000);
		itest_pass(e);
		skip();
	}
	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	job_round_trip(c);
	uint64_t before = rss_kb(e->broker->pid);
	int port = itest_url_port(e->work_url), open = 0;
	for (int i = 0; i < IDLE_CONNS; i++)
		if ((fds[i] = idle_conn(port)) >= 0)
			open++;
	itest_sleep_ms(1000);
	uint64_t most = 0;
	for (int i = 0; i < 20; i++) {
		uint64_t ms = job_round_trip(c);
		most = ms > most ? ms : most;
	}
	uint64_t during = rss_kb(e->broker->pid);
	print_message("%d idle connections: broker RSS %" PRIu64 " -> %" PRIu64
	              " KiB (%" PRIu64 " bytes each); a job's round trip at "
	              "most %" PRIu64 " ms\n",
	    open, before, during,
	    during > before ? (during - before) * 1024 / (uint64_t)open : 0,
	    most);
	assert_int_equal(open, IDLE_CONNS);
	assert_true(itest_alive(e->broker));
	assert_true(most < CALL_MS_MAX);
	/* nng keeps a pipe and its buffers per connection: some KiB. */
	assert_true(during < before + (uint64_t)IDLE_CONNS * 64);
	/* A client that comes now is served too. */
	nq_client *late;
	assert_int_equal(itest_client(e, 5000, &late), 0);
	job_round_trip(late);
	nq_client_close(late);
	for (int i = 0; i < IDLE_CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	nq_client_close(c);
	itest_pass(e);
}

/* Opens n idle connections to port into fds; how many opened. */
static int crowd_open(int port, int *fds, int n)
{
	int open = 0;
	for (int i = 0; i < n; i++)
		if ((fds[i] = idle_conn(port)) >= 0)
			open++;
	return open;
}

/* Whether the broker closed fd (read now, not waited for): what it sent
 * before (its greeting) is skipped. */
static bool peer_closed(int fd)
{
	char buf[64];
	ssize_t r;
	while ((r = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		;
	return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* How many of fds[0..n) the broker has closed. */
static int crowd_closed(const int *fds, int n)
{
	int closed = 0;
	for (int i = 0; i < n; i++)
		closed += fds[i] >= 0 && peer_closed(fds[i]);
	return closed;
}

/* Waits (20 s at most) until the broker closed all of the crowds in
 * work[0..nw) and api[0..na) but what fits the cap of each socket;
 * returns how many it closed. */
static int crowd_settled(const int *work, int nw, const int *api, int na)
{
	int want = nw + na - 2 * DEFAULT_CAP, closed = 0;
	uint64_t end = itest_now_ms() + 20000;
	while (
	    (closed = crowd_closed(work, nw) + crowd_closed(api, na)) < want &&
	    itest_now_ms() < end)
		itest_sleep_ms(100);
	return closed;
}

static void crowd_close(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* job, leased by holder before the crowd, is still its: leased in its
 * first attempt, and holder's completion takes. */
static void lease_held(nq_client *c, nq_client *holder, nq_job *job)
{
	nq_job *got = NULL;
	assert_int_equal(nq_get(c, nq_job_id(job), &got), NQ_OK);
	print_message("the holder's job: %s, attempt %u\n",
	    nq_state_name(nq_job_state(got)), (unsigned)nq_job_attempt(got));
	assert_int_equal(nq_job_state(got), NQ_STATE_LEASED);
	nq_job_free(got);
	nq_completion done = {.id = nq_job_id(job),
	    .lease_token = nq_job_lease_token(job),
	    .outcome = NQ_OUTCOME_SUCCEEDED};
	assert_int_equal(nq_complete(holder, "itest", &done, 1), NQ_OK);
	assert_int_equal(
	    itest_wait_state(c, nq_job_id(job), NQ_STATE_SUCCEEDED, 5000, &got),
	    0);
	assert_int_equal(nq_job_attempt(got), 1);
	nq_job_free(got);
}

static void test_overload_idle_crowd_at_the_cap_lets_newcomers_in(void **state)
{
	itest_env *e = *state;
	static int work_fds[CAP_CROWD], api_fds[CAP_CROWD / 2];
	nq_client *c, *holder, *late;
	if (!fds_for(CAP_CROWD * 2 + 1000)) {
		print_message(
		    "skipped: the hard descriptor limit is below %d\n",
		    CAP_CROWD * 2 + 1000);
		itest_pass(e);
		skip();
	}
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	job_round_trip(c);
	/* A worker's connection that fetched and is quiet while it works. */
	assert_int_equal(itest_client(e, 5000, &holder), 0);
	nq_job *job = NULL;
	assert_int_equal(itest_lease_one(holder, "held", 60000, &job), 0);
	int opened =
	    crowd_open(itest_url_port(e->work_url), work_fds, CAP_CROWD) +
	    crowd_open(itest_url_port(e->api_url), api_fds, CAP_CROWD / 2);
	assert_int_equal(opened, CAP_CROWD + CAP_CROWD / 2);
	/* Each crowd connection beyond the cap made room by closing an
	 * earlier one. */
	int closed = crowd_settled(work_fds, CAP_CROWD, api_fds, CAP_CROWD / 2);
	assert_int_equal(
	    itest_wait_log(e->broker, "NQ-CONN-EVICTED", 1, 5000), 0);
	/* A client that comes once the crowd sits still (a connection is
	 * safe from being closed for room in its first second) is served
	 * at once. */
	itest_sleep_ms(1000);
	assert_int_equal(itest_client(e, 5000, &late), 0);
	uint64_t ms = job_round_trip(late);
	print_message("%d idle connections at the default cap: %d closed to "
	              "make room; a new client's round trip %" PRIu64 " ms\n",
	    opened, closed, ms);
	assert_true(closed >= opened - 2 * DEFAULT_CAP);
	assert_true(ms < CALL_MS_MAX);
	lease_held(c, holder, job);
	job_round_trip(c);
	assert_true(itest_alive(e->broker));
	crowd_close(work_fds, CAP_CROWD);
	crowd_close(api_fds, CAP_CROWD / 2);
	nq_job_free(job);
	nq_client_close(late);
	nq_client_close(holder);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_overload_flood_is_refused_fast_and_drained, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_overload_idle_crowd_leaves_clients_served, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_overload_idle_crowd_at_the_cap_lets_newcomers_in,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
