/*
 * Restart recovery: after a SIGKILL of the broker, a leased job is ready
 * again with its attempt count kept, and a delayed job still runs after the
 * restart, not before its time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const queues[] = {"q"};

static void test_restart_recovery_leased_job_is_ready_with_its_attempt(
    void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_job **jobs;
	size_t n;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(
	    nq_fetch(c, "w-a", queues, 1, 1, 5000, 60000, &jobs, &n), NQ_OK);
	assert_int_equal(n, 1);
	assert_string_equal(nq_job_id(jobs[0]), id);
	assert_int_equal(nq_job_attempt(jobs[0]), 1);
	nq_jobs_free(jobs, n);
	nq_client_close(c);

	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);

	assert_int_equal(itest_client(e, 0, &c), 0);
	/* Ready at once: nobody waits out the 60 s lease of a broker that
	 * is gone. */
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_READY, 2000, &j), 0);
	assert_int_equal(nq_job_attempt(j), 1);
	nq_job_free(j);
	assert_int_equal(
	    nq_fetch(c, "w-b", queues, 1, 1, 5000, 30000, &jobs, &n), NQ_OK);
	assert_int_equal(n, 1);
	assert_string_equal(nq_job_id(jobs[0]), id);
	assert_int_equal(nq_job_attempt(jobs[0]), 2);
	nq_jobs_free(jobs, n);
	nq_client_close(c);
	itest_pass(e);
}

static void test_restart_recovery_delayed_job_runs_on_time_after_restart(
    void **state)
{
	itest_env *e = *state;
	char ran[PATH_MAX], script[PATH_MAX], body[PATH_MAX + 64];
	char handler[PATH_MAX + 16], id[NQ_ID_MAX], *text;
	itest_proc *w;
	itest_run r;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	itest_path(e, "ran", ran, sizeof ran);
	snprintf(body, sizeof body, "date +%%s%%3N >> %s", ran);
	assert_int_equal(
	    itest_write_script(e, "record", body, script, sizeof script), 0);

	uint64_t enqueued_ms = itest_wall_us() / 1000;
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "later",
	                     "--delay", "2s", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);

	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_get(c, id, &j), NQ_OK);
	if (itest_wall_us() / 1000 < enqueued_ms + 1800)
		assert_int_equal(nq_job_state(j), NQ_STATE_SCHEDULED);
	nq_job_free(j);

	snprintf(handler, sizeof handler, "later=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);

	assert_int_equal(itest_read_file(ran, &text, NULL), 0);
	uint64_t ran_ms = strtoull(text, NULL, 10);
	free(text);
	print_message("ran %lld ms after the enqueue\n",
	    (long long)(ran_ms - enqueued_ms));
	assert_true(ran_ms >= enqueued_ms + 2000);
	assert_true(ran_ms < enqueued_ms + 12000);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_restart_recovery_leased_job_is_ready_with_its_attempt,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_restart_recovery_delayed_job_runs_on_time_after_restart,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name(
	    "restart_recovery", tests, NULL, NULL);
}
