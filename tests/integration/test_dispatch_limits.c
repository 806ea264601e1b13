/*
 * Dispatch limits with the real broker and real nq-worker processes:
 * max_in_flight across workers (and a new value from SIGHUP or `nqctl queue
 * set` binding the running workers), a rate with a burst, fairness between
 * the groups of a queue, and the circuit breaker's whole cycle. Starts are
 * read from the broker's "leased" events (their at_us is when the broker
 * leased the job), in-flight counts from its stats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nq/v1/events.pb-c.h"

#define BATCH 500

/* ---- a watchdog: a step that takes far too long ends the run with its
 * name (exit runs the harness's atexit, which kills the children), rather
 * than leaving ctest to kill it without a word ---- */

static const char *_Atomic step_name = "start";
static _Atomic uint64_t step_until_ms;

/* The test enters step, which must end within ms. */
static void step(const char *name, uint64_t ms)
{
	step_name = name;
	step_until_ms = itest_now_ms() + ms;
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	for (;; itest_sleep_ms(500)) {
		uint64_t until = step_until_ms;
		if (until && itest_now_ms() > until) {
			fprintf(stderr, "test stuck in step '%s'\n", step_name);
			exit(1);
		}
	}
	return NULL;
}

/* Starts the broker with the queues file text. */
static void start_broker(itest_env *e, const char *yaml, char *path)
{
	assert_int_equal(
	    itest_write_file(e, "queues.yaml", yaml, path, PATH_MAX), 0);
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
}

/* Starts n nq-worker processes of slots slots each on queue, running the
 * shell body for every job of type t. */
static void start_workers(
    itest_env *e, int n, const char *slots, const char *queue, const char *body)
{
	char script[PATH_MAX], handler[PATH_MAX + 8];
	assert_int_equal(
	    itest_write_script(e, "t", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "t=%s", script);
	for (int i = 0; i < n; i++) {
		itest_proc *w;
		const char *flags[] = {"--queues", queue, "--concurrency",
		    slots, "--handler", handler, NULL};
		assert_int_equal(itest_worker_start(e, flags, &w), 0);
	}
}

/* Enqueues n jobs of type t with group_key group (NULL: none); their ids
 * go to ids when not NULL. */
static void enqueue_many(nq_client *c, const char *queue, const char *group,
    size_t n, char (*ids)[NQ_ID_MAX])
{
	static nq_job_spec specs[BATCH];
	static nq_enqueue_result res[BATCH];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < BATCH ? n - done : BATCH;
		for (size_t i = 0; i < k; i++)
			specs[i] = (nq_job_spec){.queue = queue,
			    .type = "t",
			    .payload = "x",
			    .payload_len = 1,
			    .group_key = group};
		assert_int_equal(nq_enqueue_batch(c, specs, k, res), 0);
		for (size_t i = 0; i < k; i++) {
			assert_int_equal(res[i].err, 0);
			if (ids)
				memcpy(ids[done + i], res[i].id, NQ_ID_MAX);
		}
		done += k;
	}
}

/* ---- events ---- */

typedef struct seen_event {
	char kind[24];
	char id[NQ_ID_MAX];
	char limit[16];
	uint64_t at_us;
} seen_event;

typedef struct events {
	nq_sub *sub;
	seen_event *v;
	size_t n, cap;
} events;

/* Subscribes to the topics starting with prefix. */
static void events_open(itest_env *e, nq_client *c, events *ev, const char *p)
{
	memset(ev, 0, sizeof *ev);
	assert_int_equal(
	    nq_sub_open(c, e->events_url, p, strlen(p), &ev->sub), 0);
	itest_sleep_ms(300); /* a subscription takes a moment to reach PUB */
}

/* Takes what arrives for up to wait_ms into ev->v. */
static void events_take(events *ev, int wait_ms)
{
	const void *msg;
	size_t len;
	if (nq_sub_recv(ev->sub, wait_ms, &msg, &len) != NQ_OK)
		return;
	const char *nul = memchr(msg, '\0', len);
	if (!nul)
		return;
	size_t at = (size_t)(nul - (const char *)msg) + 1;
	Nq__V1__EventBatch *b = nq__v1__event_batch__unpack(
	    NULL, len - at, (const uint8_t *)msg + at);
	assert_non_null(b);
	for (size_t i = 0; i < b->n_events; i++) {
		if (ev->n == ev->cap) {
			ev->cap = ev->cap ? ev->cap * 2 : 1024;
			ev->v = realloc(ev->v, ev->cap * sizeof *ev->v);
			assert_non_null(ev->v);
		}
		seen_event *s = &ev->v[ev->n++];
		snprintf(s->kind, sizeof s->kind, "%s", b->events[i]->kind);
		snprintf(s->id, sizeof s->id, "%s", b->events[i]->id);
		snprintf(s->limit, sizeof s->limit, "%s", b->events[i]->limit);
		s->at_us = b->events[i]->at_us;
	}
	nq__v1__event_batch__free_unpacked(b, NULL);
}

/* Takes events until one of kind has come count times (at most
 * timeout_ms); its index, or -1. */
static long events_until(
    events *ev, const char *kind, int count, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	for (size_t from = 0;; events_take(ev, 50)) {
		for (; from < ev->n; from++)
			if (strcmp(ev->v[from].kind, kind) == 0 && --count == 0)
				return (long)from;
		if (itest_now_ms() > end)
			return -1;
	}
}

static void events_close(events *ev)
{
	nq_sub_close(ev->sub);
	free(ev->v);
}

/* Closes the subscriber once the broker stopped publishing: nng 1.5.2's
 * close of a SUB socket can hang while a backlog of events still streams
 * in (nanomsg/nng#1543), as it does when thousands of jobs are being leased. */
static void close_events_quiet(itest_env *e, events *ev)
{
	step("closing the subscriber", 30000);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	events_close(ev);
}

/* ---- max_in_flight ---- */

typedef struct flight {
	uint64_t max, sum, n;
	uint64_t throttled; /* samples whose throttled gauge was above 0 */
} flight;

/* Samples the queue's leased jobs every 10 ms for ms. */
static flight sample_leased(nq_client *c, const char *queue, uint64_t ms)
{
	flight f = {0, 0, 0, 0};
	for (uint64_t end = itest_now_ms() + ms; itest_now_ms() < end;
	     itest_sleep_ms(10)) {
		itest_qstats s;
		assert_int_equal(itest_queue_stats(c, queue, &s, NULL), 0);
		if (s.leased > f.max)
			f.max = s.leased;
		if (s.throttled > 0)
			f.throttled++;
		if (s.ready > 0) { /* work waits: the limit should be used */
			f.sum += s.leased;
			f.n++;
		}
	}
	assert_true(f.n > 0);
	return f;
}

static void test_dispatch_max_in_flight_across_workers(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	nq_client *c;
	step("max_in_flight", 90000);
	start_broker(e, "queues:\n  lim:\n    max_in_flight: 10\n", path);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue_many(c, "lim", NULL, 4000, NULL);
	start_workers(e, 8, "16", "lim", "sleep 0.1\n");

	/* 8 x 16 slots, 10 leased at most, and all 10 in use. */
	itest_qstats s;
	do {
		assert_int_equal(itest_queue_stats(c, "lim", &s, NULL), 0);
	} while (s.leased < 10 && (itest_sleep_ms(10), true));
	flight f = sample_leased(c, "lim", 20000);
	fprintf(stderr,
	    "max_in_flight 10: max %llu, mean %.2f, throttled in %llu of "
	    "%llu\n",
	    (unsigned long long)f.max, (double)f.sum / (double)f.n,
	    (unsigned long long)f.throttled, (unsigned long long)f.n);
	assert_true(f.max <= 10);
	assert_true(f.sum >= 9 * f.n);
	/* The gauge is taken each sweep: one taken as a lease just ended
	 * shows nothing held back, so it must show some in most samples. */
	assert_true(f.throttled > f.n / 2);
	assert_int_equal(itest_queue_stats(c, "lim", &s, NULL), 0);
	assert_int_equal(s.in_flight_limit, 10);

	/* SIGHUP with a lower limit binds the workers already running. */
	assert_int_equal(
	    itest_write_file(e, "queues.yaml",
	        "queues:\n  lim:\n    max_in_flight: 4\n", path, sizeof path),
	    0);
	assert_int_equal(itest_signal(e->broker, SIGHUP), 0);
	assert_int_equal(
	    itest_wait_log(e->broker, "NQ-CONFIG-RELOADED", 1, 10000), 0);
	itest_sleep_ms(500); /* the jobs leased before it end */
	f = sample_leased(c, "lim", 2000);
	assert_true(f.max <= 4);
	assert_true(f.sum >= 3 * f.n);

	/* So does `nqctl queue set`, at once. */
	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "queue", "set", "lim",
	                     "max_in_flight=2", NULL),
	    0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	itest_sleep_ms(300);
	f = sample_leased(c, "lim", 1500);
	assert_true(f.max <= 2);
	step("closing the client", 10000);
	nq_client_close(c);
	itest_pass(e);
	step("teardown", 30000);
}

/* ---- rate ---- */

/* The most starts in any one second. */
static size_t busiest_second(const uint64_t *at, size_t n)
{
	size_t best = 0;
	for (size_t i = 0, j = 0; i < n; i++) {
		while (at[i] - at[j] >= 1000000)
			j++;
		if (i - j + 1 > best)
			best = i - j + 1;
	}
	return best;
}

static void test_dispatch_rate_with_burst(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	nq_client *c;
	events ev;
	step("rate", 90000);
	start_broker(
	    e, "queues:\n  slow:\n    rate: 50/s\n    burst: 10\n", path);
	assert_int_equal(itest_client(e, 0, &c), 0);
	events_open(e, c, &ev, "job.leased.slow");
	enqueue_many(c, "slow", NULL, 1500, NULL);
	start_workers(e, 8, "4", "slow", "true\n");

	const uint64_t run_us = 20000000;
	assert_true(events_until(&ev, "leased", 1, 20000) >= 0);
	uint64_t t0 = ev.v[0].at_us;
	uint64_t end = itest_now_ms() + run_us / 1000 + 5000;
	while (
	    ev.v[ev.n - 1].at_us < t0 + run_us + 500000 && itest_now_ms() < end)
		events_take(&ev, 100);
	uint64_t *at = calloc(ev.n, sizeof *at);
	size_t n = 0;
	for (size_t i = 0; i < ev.n; i++)
		if (ev.v[i].at_us < t0 + run_us)
			at[n++] = ev.v[i].at_us;
	double rate = (double)n / ((double)run_us / 1e6);
	size_t peak = busiest_second(at, n);
	fprintf(stderr,
	    "rate 50/s burst 10: %zu starts in %.0f s (%.2f/s), "
	    "busiest second %zu\n",
	    n, (double)run_us / 1e6, rate, peak);
	assert_true(rate >= 50 * 0.95 && rate <= 50 * 1.05);
	assert_true(peak <= 60);
	free(at);
	step("closing the subscriber and client", 10000);
	close_events_quiet(e, &ev);
	nq_client_close(c);
	itest_pass(e);
	step("teardown", 30000);
}

/* ---- fairness ---- */

/* The place (1-based) among the leases at or after from_us of the last of
 * the n jobs ids; 0 when one of them was not leased. */
static size_t last_place(
    const events *ev, uint64_t from_us, char (*ids)[NQ_ID_MAX], size_t n)
{
	size_t place = 0, found = 0, last = 0;
	for (size_t i = 0; i < ev->n; i++) {
		if (ev->v[i].at_us < from_us)
			continue;
		place++;
		for (size_t k = 0; k < n; k++)
			if (strcmp(ev->v[i].id, ids[k]) == 0) {
				found++;
				last = place;
			}
	}
	return found == n ? last : 0;
}

/* Tenant a's 20,000 jobs, then tenant b's 20: the leases after b's
 * enqueue, until b's last one or the limit. */
static void run_tenants(itest_env *e, const char *yaml, events *ev,
    uint64_t *from_us, char (*b_ids)[NQ_ID_MAX])
{
	char path[PATH_MAX];
	nq_client *c;
	step("two tenants", 90000);
	start_broker(e, yaml, path);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue_many(c, "fair", "a", 20000, NULL);
	events_open(e, c, ev, "job.leased.fair");
	start_workers(e, 2, "4", "fair", "true\n");
	assert_true(events_until(ev, "leased", 50, 30000) >= 0);
	*from_us = itest_wall_us();
	enqueue_many(c, "fair", "b", 20, b_ids);
	uint64_t end = itest_now_ms() + 20000;
	while (itest_now_ms() < end && !last_place(ev, *from_us, b_ids, 20) &&
	       ev->n < 400)
		events_take(ev, 100);
	nq_client_close(c);
}

static void test_dispatch_fairness_bounds_a_small_tenants_wait(void **state)
{
	itest_env *e = *state;
	events ev;
	uint64_t from;
	char b_ids[20][NQ_ID_MAX];
	run_tenants(
	    e, "queues:\n  fair:\n    fairness: true\n", &ev, &from, b_ids);
	/* Two groups wait: b's k-th job is among the 2k leases after its
	 * enqueue, plus those made while the enqueue was on its way. */
	size_t last = last_place(&ev, from, b_ids, 20);
	fprintf(stderr, "fairness: b's 20th job was lease %zu\n", last);
	assert_true(last > 0);
	assert_true(last <= 2 * 20 + 8);
	close_events_quiet(e, &ev);
	itest_pass(e);
	step("teardown", 30000);
}

static void test_dispatch_without_fairness_keeps_fifo(void **state)
{
	itest_env *e = *state;
	events ev;
	uint64_t from;
	char b_ids[20][NQ_ID_MAX];
	run_tenants(
	    e, "queues:\n  fair:\n    max_attempts: 3\n", &ev, &from, b_ids);
	/* b's jobs wait behind a's backlog, as before fairness. */
	assert_true(ev.n >= 100);
	assert_int_equal(last_place(&ev, from, b_ids, 20), 0);
	close_events_quiet(e, &ev);
	itest_pass(e);
	step("teardown", 30000);
}

/* ---- circuit breaker ---- */

/* Leases between events from and to (exclusive). */
static size_t leases_between(const events *ev, long from, long to)
{
	size_t n = 0;
	for (long i = from + 1; i < to; i++)
		n += strcmp(ev->v[i].kind, "leased") == 0;
	return n;
}

static void test_dispatch_breaker_opens_probes_and_closes(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], fail[PATH_MAX], body[PATH_MAX + 64];
	nq_client *c;
	events ev;
	step("breaker: start", 30000);
	itest_path(e, "failing", fail, sizeof fail);
	snprintf(body, sizeof body,
	    "if [ -e %s ]; then exit 1; fi\nsleep 0.02\n", fail);
	start_broker(e,
	    "queues:\n  flaky:\n    max_attempts: 1000\n"
	    "    backoff: {base: 50ms, cap: 100ms}\n"
	    "    circuit_breaker: {window: 10s, min_jobs: 5, "
	    "failure_ratio: 0.5, cool_down: 2s}\n",
	    path);
	assert_int_equal(itest_client(e, 0, &c), 0);
	events_open(e, c, &ev, "job.");
	enqueue_many(c, "flaky", NULL, 400, NULL);
	start_workers(e, 1, "2", "flaky", body);
	step("breaker: jobs succeed", 30000);
	assert_true(events_until(&ev, "succeeded", 10, 20000) >= 0);

	/* The handler starts failing: the breaker opens and nothing starts
	 * until the cool-down ends; then one probe, which fails again. */
	assert_int_equal(
	    itest_write_file(e, "failing", "", fail, sizeof fail), 0);
	step("breaker: opens, half-opens, opens", 60000);
	long open1 = events_until(&ev, "breaker_opened", 1, 20000);
	assert_true(open1 >= 0);
	itest_qstats s;
	assert_int_equal(itest_queue_stats(c, "flaky", &s, NULL), 0);
	assert_int_equal(s.breaker_state, 2);
	long half1 = events_until(&ev, "breaker_half_open", 1, 10000);
	assert_true(half1 > open1);
	assert_true(ev.v[half1].at_us - ev.v[open1].at_us >= 2000000);
	assert_int_equal(leases_between(&ev, open1, half1), 0);
	long open2 = events_until(&ev, "breaker_opened", 2, 10000);
	assert_true(open2 > half1);
	assert_int_equal(leases_between(&ev, half1, open2), 1);

	/* Fixed: the next probe succeeds and closes it; jobs flow again. */
	assert_int_equal(unlink(fail), 0);
	step("breaker: closes", 30000);
	long half2 = events_until(&ev, "breaker_half_open", 2, 10000);
	assert_true(half2 > open2);
	assert_int_equal(leases_between(&ev, open2, half2), 0);
	long closed = events_until(&ev, "breaker_closed", 1, 10000);
	assert_true(closed > half2);
	assert_int_equal(leases_between(&ev, half2, closed), 1);
	step("breaker: jobs flow again", 10000);
	size_t before = ev.n;
	assert_true(events_until(&ev, "leased", 1, 0) >= 0);
	for (uint64_t end = itest_now_ms() + 2000; itest_now_ms() < end;)
		events_take(&ev, 100);
	assert_true(leases_between(&ev, (long)before - 1, (long)ev.n) >= 10);
	step("breaker: log lines", 20000);
	assert_int_equal(itest_wait_log(e->broker,
	                     "NQ-BREAKER-OPEN queue=flaky ratio=", 2, 5000),
	    0);
	assert_int_equal(itest_wait_log(e->broker, "window=10s", 2, 5000), 0);
	assert_int_equal(
	    itest_wait_log(e->broker, "NQ-BREAKER-CLOSED queue=flaky", 1, 5000),
	    0);
	step("closing the subscriber and client", 10000);
	close_events_quiet(e, &ev);
	nq_client_close(c);
	itest_pass(e);
	step("teardown", 30000);
}

/* ---- limit events ---- */

/* How many events of kind ev holds. */
static size_t events_of(const events *ev, const char *kind)
{
	size_t n = 0;
	for (size_t i = 0; i < ev->n; i++)
		n += strcmp(ev->v[i].kind, kind) == 0;
	return n;
}

/* max_in_flight 1, jobs waiting and eight slots asking: every fetch but
 * one is turned away, yet the queue is reached once and cleared once. */
static void test_dispatch_limit_reached_once_not_per_fetch(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	nq_client *c;
	events ev;
	step("limit events", 60000);
	start_broker(e, "queues:\n  one:\n    max_in_flight: 1\n", path);
	assert_int_equal(itest_client(e, 0, &c), 0);
	events_open(e, c, &ev, "job.");
	enqueue_many(c, "one", NULL, 30, NULL);
	start_workers(e, 2, "4", "one", "sleep 0.05\n");
	assert_true(events_until(&ev, "succeeded", 30, 40000) >= 0);
	long cleared = events_until(&ev, "limit_cleared", 1, 5000);
	assert_true(cleared >= 0);
	assert_string_equal(ev.v[cleared].limit, "max_in_flight");
	long reached = events_until(&ev, "limit_reached", 1, 0);
	assert_true(reached >= 0 && reached < cleared);
	assert_string_equal(ev.v[reached].limit, "max_in_flight");
	for (uint64_t end = itest_now_ms() + 1500; itest_now_ms() < end;)
		events_take(&ev, 100);
	assert_int_equal(events_of(&ev, "leased"), 30);
	assert_int_equal(events_of(&ev, "limit_reached"), 1);
	assert_int_equal(events_of(&ev, "limit_cleared"), 1);
	assert_int_equal(
	    itest_wait_log(e->broker,
	        "NQ-LIMIT-REACHED queue=one limit=max_in_flight", 1, 5000),
	    0);
	assert_int_equal(
	    itest_wait_log(e->broker,
	        "NQ-LIMIT-CLEARED queue=one limit=max_in_flight", 1, 5000),
	    0);
	assert_int_not_equal(
	    itest_wait_log(e->broker, "NQ-LIMIT-REACHED", 2, 0), 0);
	step("closing the subscriber and client", 10000);
	close_events_quiet(e, &ev);
	nq_client_close(c);
	itest_pass(e);
	step("teardown", 30000);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_max_in_flight_across_workers, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_rate_with_burst, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_fairness_bounds_a_small_tenants_wait, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_without_fairness_keeps_fifo, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_breaker_opens_probes_and_closes, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dispatch_limit_reached_once_not_per_fetch, itest_setup,
	        itest_teardown),
	};
	pthread_t watchdog;
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	if (pthread_create(&watchdog, NULL, watchdog_main, NULL) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
