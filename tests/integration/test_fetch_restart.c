/*
 * After a broker restart the workers hold no more leases than they have
 * slots: while libnq workers run through SIGKILLs and restarts of the
 * broker, the broker's leased count (sampled every 10 ms) passes the
 * workers' slots only for a moment, and every job is done well before a
 * lease would lapse, so none was leased to nobody.
 *
 * NNG redials each of a worker's sockets at its own random moment, so its
 * results connection may come back a second after its work connection. A
 * worker that took a new job for every finished one meanwhile held a
 * lease for each completion stuck in its queue (dozens to hundreds here).
 * "A moment": a completion on its way to the broker can be overtaken by
 * the next fetch of its slot (the two travel on different connections),
 * which the broker then counts before the completion.
 *
 * A broker that stalls (here SIGSTOPped) past the worker's request
 * timeout leases jobs into the fetches it finds when it goes on, however
 * late. The worker waits for its fetch's reply as long as a lease: one
 * that gave up after its request timeout and asked again left the first
 * replies' jobs leased to nobody for a whole lease (all 12 jobs here, for
 * 4 slots).
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

#include "harness.h"

#define NWORKERS 3
#define SLOTS 4
#define NJOBS 2400
#define BATCH 400
/* A job left leased to nobody would hold its place this long: far past
 * the test's own bounds, so that it cannot pass unseen. */
#define LEASE_MS 20000
#define POLL_MS 500
#define JOB_MS 15
#define SLOTS_ALL (NWORKERS * SLOTS)
#define RESTARTS 4
/* Long enough that the sockets' redial backoffs have grown apart. */
#define DOWN_MS 700
#define WATCH_MS 2500
#define SAMPLE_MS 10
/* Longest the count may stay above the slots: a completion in transit. */
#define OVER_MAX_MS 100
/* The stalled broker: far longer than the worker's requests wait. */
#define STALL_TIMEOUT_MS 300
#define STALL_POLL_MS 100
#define STALL_MS 2000
#define STALL_DELAY_MS 1000

typedef struct sampler {
	itest_env *e;
	atomic_bool stop;
	uint64_t max_leased, samples;
	uint64_t over_since, over_ms; /* the current stretch, the longest */
	pthread_t thread;
} sampler;

static const char *const queues[] = {"q"};

static nq_outcome run_job(const nq_job *job, nq_result *res, void *arg)
{
	(void)job;
	(void)res;
	(void)arg;
	itest_sleep_ms(JOB_MS);
	return NQ_OUTCOME_SUCCEEDED;
}

/* One sample: the highest count, and how long it has stayed above the
 * slots (a failed sample, while the broker is down, ends no stretch). */
static void sample_note(sampler *s, uint64_t leased, uint64_t now)
{
	s->samples++;
	if (leased > s->max_leased)
		s->max_leased = leased;
	if (leased <= SLOTS_ALL) {
		s->over_since = 0;
		return;
	}
	if (!s->over_since)
		s->over_since = now;
	if (now - s->over_since > s->over_ms) {
		s->over_ms = now - s->over_since;
		fprintf(stderr, "leased %llu for %d slots, for %llu ms\n",
		    (unsigned long long)leased, SLOTS_ALL,
		    (unsigned long long)s->over_ms);
	}
}

static void *sample_main(void *arg)
{
	sampler *s = arg;
	nq_client *c;
	if (itest_client(s->e, 200, &c) != 0)
		return NULL;
	while (!atomic_load(&s->stop)) {
		itest_qstats qs;
		if (itest_queue_stats(c, "q", &qs, NULL) == 0)
			sample_note(s, qs.leased, itest_now_ms());
		itest_sleep_ms(SAMPLE_MS);
	}
	nq_client_close(c);
	return NULL;
}

static void *worker_main(void *arg)
{
	nq_worker_run(arg);
	return NULL;
}

/* n jobs, ready after delay_ms, in batches of at most BATCH. */
static void enqueue_all(nq_client *c, int n, uint64_t delay_ms)
{
	static nq_job_spec specs[BATCH];
	static nq_enqueue_result res[BATCH];
	for (int i = 0; i < BATCH; i++)
		specs[i] = (nq_job_spec){
		    .queue = "q", .type = "t", .delay_ms = delay_ms};
	for (int k = 0; k < n; k += BATCH) {
		size_t m = n - k < BATCH ? (size_t)(n - k) : BATCH;
		assert_int_equal(nq_enqueue_batch(c, specs, m, res), NQ_OK);
	}
}

static void workers_start(itest_env *e, int n, int timeout_ms, uint64_t poll_ms,
    nq_worker **w, pthread_t *t)
{
	for (int i = 0; i < n; i++) {
		nq_worker_opts o = {
		    .conn = {.work_url = e->work_url,
		        .results_url = e->results_url,
		        .timeout_ms = timeout_ms},
		    .queues = queues,
		    .nqueues = 1,
		    .concurrency = SLOTS,
		    .lease_ms = LEASE_MS,
		    .poll_ms = poll_ms,
		};
		assert_int_equal(nq_worker_open(&w[i], &o), NQ_OK);
		assert_int_equal(
		    nq_worker_handle(w[i], "*", run_job, NULL), NQ_OK);
		assert_int_equal(
		    pthread_create(&t[i], NULL, worker_main, w[i]), 0);
	}
}

static void workers_stop(int n, nq_worker **w, pthread_t *t)
{
	for (int i = 0; i < n; i++)
		nq_worker_stop(w[i]);
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		nq_worker_close(w[i]);
	}
}

/* Polls until nothing is ready or leased, at most timeout_ms. */
static int wait_drained(nq_client *c, uint64_t timeout_ms)
{
	uint64_t until = itest_now_ms() + timeout_ms;
	itest_qstats qs = {0};
	while (itest_now_ms() < until) {
		if (itest_queue_stats(c, "q", &qs, NULL) == 0 &&
		    qs.ready == 0 && qs.leased == 0 && qs.scheduled == 0)
			return 0;
		itest_sleep_ms(50);
	}
	fprintf(stderr, "not drained: ready=%llu leased=%llu scheduled=%llu\n",
	    (unsigned long long)qs.ready, (unsigned long long)qs.leased,
	    (unsigned long long)qs.scheduled);
	return -1;
}

static void test_fetch_restart_leases_no_more_than_the_slots(void **state)
{
	itest_env *e = *state;
	nq_worker *w[NWORKERS];
	pthread_t t[NWORKERS];
	nq_client *c;
	sampler s = {.e = e};

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue_all(c, NJOBS, 0);
	workers_start(e, NWORKERS, 2000, POLL_MS, w, t);
	assert_int_equal(pthread_create(&s.thread, NULL, sample_main, &s), 0);
	for (int i = 0; i < RESTARTS; i++) {
		itest_sleep_ms(300);
		assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
		itest_sleep_ms(DOWN_MS);
		assert_int_equal(itest_broker_start(e, NULL), 0);
		itest_sleep_ms(WATCH_MS);
	}
	/* Every job is done well within one lease of the last restart: none
	 * was left leased to a fetch that nobody read. */
	assert_int_equal(wait_drained(c, LEASE_MS / 2), 0);
	atomic_store(&s.stop, true);
	pthread_join(s.thread, NULL);
	workers_stop(NWORKERS, w, t);
	nq_client_close(c);
	fprintf(stderr,
	    "at most %llu leased over %llu samples, above %d slots for "
	    "%llu ms at the longest\n",
	    (unsigned long long)s.max_leased, (unsigned long long)s.samples,
	    SLOTS_ALL, (unsigned long long)s.over_ms);
	assert_true(s.samples > 100);
	assert_true(s.over_ms <= OVER_MAX_MS);
	/* Each worker's next fetch overtakes at most its own completions. */
	assert_true(s.max_leased <= 2 * SLOTS_ALL);
	itest_pass(e);
}

static void test_fetch_restart_stalled_broker_leases_to_no_abandoned_fetch(
    void **state)
{
	itest_env *e = *state;
	nq_worker *w;
	pthread_t t;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	/* Ready while the broker stands still, so that it finds them there
	 * when it goes on and leases them to the fetches it finds waiting. */
	enqueue_all(c, 3 * SLOTS, STALL_DELAY_MS);
	workers_start(e, 1, STALL_TIMEOUT_MS, STALL_POLL_MS, &w, &t);
	itest_sleep_ms(STALL_DELAY_MS / 2);
	/* The worker's fetch meets a broker that does not answer, for many
	 * of its request timeouts. */
	assert_int_equal(itest_signal(e->broker, SIGSTOP), 0);
	itest_sleep_ms(STALL_MS);
	assert_int_equal(itest_signal(e->broker, SIGCONT), 0);
	/* Every job is done long before a lease lapses: none went to a
	 * fetch that the worker no longer read. */
	assert_int_equal(wait_drained(c, LEASE_MS / 4), 0);
	workers_stop(1, &w, &t);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_fetch_restart_stalled_broker_leases_to_no_abandoned_fetch,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fetch_restart_leases_no_more_than_the_slots, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("fetch_restart", tests, NULL, NULL);
}
