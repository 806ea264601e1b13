/*
 * Graceful drain: SIGTERM lets a running handler finish within the grace
 * period and the worker exits 0; a handler that outlives the grace period is
 * released, so the job runs on another worker at once with its attempt
 * refunded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static void start_worker(itest_env *e, const char *name, const char *body,
    const char *grace, itest_proc **w)
{
	char script[PATH_MAX], handler[PATH_MAX + 64];
	assert_int_equal(
	    itest_write_script(e, name, body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "job=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler,
	    grace ? "--grace" : NULL, grace, NULL};
	assert_int_equal(itest_worker_start(e, flags, w), 0);
}

static void assert_exited_0(itest_proc *w, uint64_t within_ms)
{
	assert_int_equal(itest_wait_exit(w, within_ms), 0);
	assert_true(WIFEXITED(w->status));
	assert_int_equal(WEXITSTATUS(w->status), 0);
}

static void assert_result(const nq_job *j, const char *want)
{
	size_t len = 0;
	const void *res = nq_job_result(j, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(res, want, len);
}

static void test_worker_drain_running_job_finishes_within_grace(void **state)
{
	itest_env *e = *state;
	char started[PATH_MAX], body[PATH_MAX + 64], id[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	itest_path(e, "started", started, sizeof started);
	snprintf(
	    body, sizeof body, "echo x >> %s\nsleep 1\necho done", started);
	start_worker(e, "one-second", body, NULL, &w);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "job", "x", id), 0);
	assert_int_equal(itest_wait_lines(started, 1, 15000), 0);
	assert_int_equal(itest_signal(w, SIGTERM), 0);

	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, &j), 0);
	assert_int_equal(nq_job_attempt(j), 1);
	assert_result(j, "done\n");
	nq_job_free(j);
	assert_exited_0(w, 10000);
	nq_client_close(c);
	itest_pass(e);
}

static void test_worker_drain_job_past_grace_is_released_to_another(
    void **state)
{
	itest_env *e = *state;
	char started[PATH_MAX], body[PATH_MAX + 64], id[NQ_ID_MAX];
	itest_proc *w1, *w2;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	itest_path(e, "started", started, sizeof started);
	snprintf(body, sizeof body, "echo x >> %s\nsleep 30", started);
	start_worker(e, "thirty-seconds", body, "1s", &w1);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "job", "x", id), 0);
	assert_int_equal(itest_wait_lines(started, 1, 15000), 0);

	uint64_t t0 = itest_now_ms();
	assert_int_equal(itest_signal(w1, SIGTERM), 0);
	start_worker(e, "quick", "echo quick", NULL, &w2);

	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, &j), 0);
	uint64_t took = itest_now_ms() - t0;
	print_message(
	    "succeeded %llu ms after SIGTERM\n", (unsigned long long)took);
	assert_true(took < 10000);
	assert_result(j, "quick\n");
	/* A released job was given back, not failed: no error, and the
	 * attempt it did not finish is refunded. */
	assert_int_equal(nq_job_attempt(j), 1);
	assert_int_equal(nq_job_error_count(j), 0);
	nq_job_free(j);
	assert_exited_0(w1, 5000);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_worker_drain_running_job_finishes_within_grace,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_worker_drain_job_past_grace_is_released_to_another,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("worker_drain", tests, NULL, NULL);
}
