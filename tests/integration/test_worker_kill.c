/*
 * A worker killed mid-job (SIGKILL, handler included) does not strand the
 * job for its 30 s lease: the broker sees the connection drop, releases the
 * lease, and another worker runs the job at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"

static void start_worker(
    itest_env *e, const char *name, const char *body, itest_proc **w)
{
	char script[PATH_MAX], handler[PATH_MAX + 64];
	assert_int_equal(
	    itest_write_script(e, name, body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "slow=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, w), 0);
}

static void test_worker_kill_job_runs_elsewhere_well_before_lease_ends(
    void **state)
{
	itest_env *e = *state;
	char started[PATH_MAX], body[PATH_MAX + 64], id[NQ_ID_MAX];
	itest_proc *w1, *w2;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	itest_path(e, "started", started, sizeof started);
	snprintf(
	    body, sizeof body, "echo \"$NQ_ATTEMPT\" >> %s\nsleep 30", started);
	start_worker(e, "slow-handler", body, &w1);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "slow", "x", id), 0);
	assert_int_equal(itest_wait_lines(started, 1, 15000), 0);
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_LEASED, 5000, &j), 0);
	assert_int_equal(nq_job_attempt(j), 1);
	nq_job_free(j);

	uint64_t t0 = itest_now_ms();
	assert_int_equal(itest_kill_tree(w1), 0);
	start_worker(e, "fast-handler", "echo done", &w2);

	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, &j), 0);
	uint64_t took = itest_now_ms() - t0;
	print_message(
	    "job succeeded %llu ms after the kill\n", (unsigned long long)took);
	assert_true(took < 15000);
	assert_int_equal(nq_job_attempt(j), 2);
	size_t len = 0;
	const char *res = nq_job_result(j, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(res, "done\n", 5);
	nq_job_free(j);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_worker_kill_job_runs_elsewhere_well_before_lease_ends,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("worker_kill", tests, NULL, NULL);
}
