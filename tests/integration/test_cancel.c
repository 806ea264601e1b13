/*
 * Cancel: a job that has not started is canceled at once; one that runs is
 * marked, and ends canceled however its attempt ends (a completion that
 * comes after the cancel is kept as the attempt's outcome); one that has
 * ended cannot be canceled (failed precondition, nqctl exit 1) and stays
 * as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "harness.h"

static const char *const queues[] = {"q"};

static void expect_cancel_refused(
    itest_env *e, const char *id, const char *state_after)
{
	itest_run r;
	json_t *j;
	assert_int_equal(itest_nqctl(e, 15000, &r, "cancel", id, NULL), 0);
	assert_int_equal(r.code, 1);
	assert_true(strlen(r.err) > 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_string_equal(itest_json_str(j, "state"), state_after);
	json_decref(j);
	itest_run_free(&r);
}

/* Starts the broker and leases one job of queue q (*jobs, *n), whose id
 * goes to id; returns the client. */
static nq_client *leased_job(
    itest_env *e, char id[NQ_ID_MAX], nq_job ***jobs, size_t *n)
{
	nq_client *c;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(
	    nq_fetch(c, "w-cancel", queues, 1, 1, 5000, 30000, jobs, n), NQ_OK);
	assert_int_equal(*n, 1);
	return c;
}

static void test_cancel_delayed_job_is_canceled(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	itest_run r;
	json_t *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "t",
	                     "--delay", "1h", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);

	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_string_equal(itest_json_str(j, "state"), "scheduled");
	json_decref(j);
	itest_run_free(&r);

	assert_int_equal(itest_nqctl(e, 15000, &r, "cancel", id, NULL), 0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_string_equal(itest_json_str(j, "state"), "canceled");
	json_decref(j);
	itest_run_free(&r);

	/* Canceled is final: a second cancel is refused. */
	expect_cancel_refused(e, id, "canceled");
	itest_pass(e);
}

static void test_cancel_completion_after_cancel_keeps_it_canceled(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_job **jobs, *j = NULL;
	size_t n;
	nq_client *c = leased_job(e, id, &jobs, &n);
	uint64_t token = nq_job_lease_token(jobs[0]);

	/* Leased: marked; it stays leased until its attempt ends, and the
	 * worker's next Extend says stop. */
	assert_int_equal(nq_cancel(c, id, &j), NQ_OK);
	assert_non_null(j);
	assert_int_equal(nq_job_state(j), NQ_STATE_LEASED);
	assert_true(nq_job_cancel_requested(j));
	nq_job_free(j);

	nq_completion done = {.id = id,
	    .lease_token = token,
	    .outcome = NQ_OUTCOME_SUCCEEDED,
	    .result = "ok",
	    .result_len = 2};
	assert_int_equal(nq_complete(c, "w-cancel", &done, 1), NQ_OK);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_CANCELED, 5000, &j), 0);
	size_t len;
	const char *result = nq_job_result(j, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(result, "ok", 2);
	assert_int_equal(nq_job_attempt(j), 1);
	nq_job_free(j);
	nq_jobs_free(jobs, n);

	/* Finished: refused. */
	j = NULL;
	assert_int_equal(nq_cancel(c, id, &j), NQ_EPRECOND);
	assert_non_null(j);
	assert_int_equal(nq_job_state(j), NQ_STATE_CANCELED);
	nq_job_free(j);
	expect_cancel_refused(e, id, "canceled");

	/* Unknown: not found, also exit 1. */
	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "cancel", "00000000000000ff", NULL), 0);
	assert_int_equal(r.code, 1);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

/* A cancel the broker's restart interrupted (the job was leased, so it
 * goes back to ready at start) still ends the job canceled, and never
 * hands it out again. */
static void test_cancel_of_a_leased_job_survives_a_restart(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_job **jobs;
	size_t n;
	nq_client *c = leased_job(e, id, &jobs, &n);
	nq_jobs_free(jobs, n);
	assert_int_equal(nq_cancel(c, id, NULL), NQ_OK);
	nq_client_close(c);
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_CANCELED, 5000, NULL), 0);
	assert_int_equal(
	    nq_fetch(c, "w-cancel", queues, 1, 1, 500, 30000, &jobs, &n),
	    NQ_OK);
	assert_int_equal(n, 0);
	nq_jobs_free(jobs, n);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cancel_delayed_job_is_canceled,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cancel_completion_after_cancel_keeps_it_canceled,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cancel_of_a_leased_job_survives_a_restart, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("cancel", tests, NULL, NULL);
}
