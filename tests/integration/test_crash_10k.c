/*
 * Durability under a crash: 10,000 jobs confirmed by batched enqueues all
 * survive a SIGKILL of the broker, and after the restart every one of them
 * runs to succeeded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NJOBS 10000
#define BATCH 250

static nq_outcome noop_cb(const nq_job *job, nq_result *res, void *arg)
{
	return NQ_OUTCOME_SUCCEEDED;
}

static void *run_worker(void *arg)
{
	static int rv;
	rv = nq_worker_run(arg);
	return &rv;
}

/* Enqueues NJOBS jobs on queue "bulk" and keeps their ids. */
static void enqueue_all(nq_client *c, char (*ids)[NQ_ID_MAX])
{
	nq_job_spec specs[BATCH];
	nq_enqueue_result res[BATCH];
	char payload[BATCH][32];
	for (int done = 0; done < NJOBS; done += BATCH) {
		for (int i = 0; i < BATCH; i++) {
			int len = snprintf(
			    payload[i], sizeof payload[i], "job %d", done + i);
			specs[i] = (nq_job_spec){
			    .queue = "bulk",
			    .type = "noop",
			    .payload = payload[i],
			    .payload_len = (size_t)len,
			    .content_type = "text/plain",
			};
		}
		assert_int_equal(nq_enqueue_batch(c, specs, BATCH, res), NQ_OK);
		for (int i = 0; i < BATCH; i++) {
			assert_int_equal(res[i].err, NQ_OK);
			assert_false(res[i].duplicate);
			assert_true(itest_is_id(res[i].id));
			memcpy(ids[done + i], res[i].id, NQ_ID_MAX);
		}
	}
}

static void test_crash_10k_confirmed_jobs_survive_sigkill_and_all_run(
    void **state)
{
	itest_env *e = *state;
	char(*ids)[NQ_ID_MAX] = calloc(NJOBS, NQ_ID_MAX);
	itest_qstats qs;
	nq_client *c;
	assert_non_null(ids);

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 30000, &c), 0);
	uint64_t t0 = itest_now_ms();
	enqueue_all(c, ids);
	print_message("%d jobs confirmed in %llu ms\n", NJOBS,
	    (unsigned long long)(itest_now_ms() - t0));
	nq_client_close(c);

	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);

	assert_int_equal(itest_client(e, 30000, &c), 0);
	assert_int_equal(itest_queue_stats(c, "bulk", &qs, NULL), 0);
	assert_int_equal(qs.ready, NJOBS);

	/* An in-process libnq worker drains the queue. */
	const char *queues[] = {"bulk"};
	nq_worker_opts wo = {
	    .conn = {.work_url = e->work_url, .results_url = e->results_url},
	    .queues = queues,
	    .nqueues = 1,
	    .concurrency = 8,
	    .poll_ms = 1000,
	    .worker_id = "itest-bulk",
	};
	nq_worker *w;
	pthread_t th;
	assert_int_equal(nq_worker_open(&w, &wo), NQ_OK);
	assert_int_equal(nq_worker_handle(w, "*", noop_cb, NULL), NQ_OK);
	assert_int_equal(pthread_create(&th, NULL, run_worker, w), 0);

	t0 = itest_now_ms();
	uint64_t end = t0 + 120000;
	do {
		itest_sleep_ms(250);
		assert_int_equal(itest_queue_stats(c, "bulk", &qs, NULL), 0);
	} while (qs.succeeded < NJOBS && itest_now_ms() < end);
	print_message("%llu jobs succeeded in %llu ms\n",
	    (unsigned long long)qs.succeeded,
	    (unsigned long long)(itest_now_ms() - t0));
	nq_worker_stop(w);
	void *wrv;
	assert_int_equal(pthread_join(th, &wrv), 0);
	assert_int_equal(*(int *)wrv, NQ_OK);
	nq_worker_close(w);

	assert_int_equal(qs.succeeded, NJOBS);
	assert_int_equal(qs.ready + qs.scheduled + qs.leased + qs.dead, 0);
	for (int i = 0; i < NJOBS; i++) {
		nq_job *j;
		int rv = nq_get(c, ids[i], &j);
		if (rv != NQ_OK)
			fail_msg("job %d (%s): %s", i, ids[i], nq_err_name(rv));
		if (nq_job_state(j) != NQ_STATE_SUCCEEDED)
			fail_msg("job %d (%s) is %s", i, ids[i],
			    nq_state_name(nq_job_state(j)));
		nq_job_free(j);
	}
	nq_client_close(c);
	free(ids);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_crash_10k_confirmed_jobs_survive_sigkill_and_all_run,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("crash_10k", tests, NULL, NULL);
}
