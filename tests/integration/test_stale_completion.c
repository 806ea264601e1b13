/*
 * Leases through the low-level worker protocol: an expired lease hands the
 * job out again with a new token, and a completion or extend carrying the
 * old token changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "harness.h"

static const char *const queues[] = {"q"};

/* Fetches exactly one job from q, waiting up to 5 s. */
static nq_job *fetch_one(nq_client *c, const char *worker, uint64_t lease_ms)
{
	nq_job **jobs = NULL;
	size_t n = 0;
	assert_int_equal(
	    nq_fetch(c, worker, queues, 1, 1, 5000, lease_ms, &jobs, &n),
	    NQ_OK);
	assert_int_equal(n, 1);
	nq_job *j = jobs[0];
	jobs[0] = NULL;
	nq_jobs_free(jobs, 1);
	return j;
}

static void complete(
    nq_client *c, const char *id, uint64_t token, const char *result)
{
	nq_completion done = {
	    .id = id,
	    .lease_token = token,
	    .outcome = NQ_OUTCOME_SUCCEEDED,
	    .result = result,
	    .result_len = strlen(result),
	    .started_us = itest_wall_us(),
	    .finished_us = itest_wall_us(),
	};
	assert_int_equal(nq_complete(c, "w-test", &done, 1), NQ_OK);
}

static void test_stale_completion_old_token_is_ignored(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--lease-check", "50ms", "--backoff-base",
	    "50ms", "--backoff-cap", "100ms", NULL};
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);

	uint64_t before_us = itest_wall_us();
	nq_job *a1 = fetch_one(c, "w-test", 300);
	assert_string_equal(nq_job_id(a1), id);
	assert_int_equal(nq_job_attempt(a1), 1);
	uint64_t t1 = nq_job_lease_token(a1);
	assert_true(t1 != 0);
	assert_true(nq_job_lease_expires_us(a1) >= before_us + 250000);
	assert_true(nq_job_lease_expires_us(a1) <= itest_wall_us() + 350000);

	/* Past the lease: the job comes back with a new token. */
	itest_sleep_ms(600);
	nq_job *a2 = fetch_one(c, "w-test", 30000);
	assert_string_equal(nq_job_id(a2), id);
	assert_int_equal(nq_job_attempt(a2), 2);
	uint64_t t2 = nq_job_lease_token(a2);
	assert_true(t2 != 0);
	assert_true(t2 != t1);

	/* The old token neither extends nor completes the job. */
	assert_int_equal(nq_extend(c, id, t1, 30000), NQ_EPRECOND);
	complete(c, id, t1, "stale");
	itest_sleep_ms(300);
	assert_int_equal(nq_get(c, id, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_LEASED);
	assert_int_equal(nq_job_attempt(j), 2);
	/* The expired lease counts as a failed attempt. */
	assert_int_equal(nq_job_error_count(j), 1);
	nq_job_free(j);

	/* The current token does. */
	assert_int_equal(nq_extend(c, id, t2, 30000), NQ_OK);
	complete(c, id, t2, "fresh");
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 5000, &j), 0);
	size_t len = 0;
	const void *res = nq_job_result(j, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(res, "fresh", 5);
	assert_int_equal(nq_job_attempt(j), 2);
	nq_job_free(j);

	/* A completion of a finished job changes nothing either. */
	complete(c, id, t2, "again");
	itest_sleep_ms(200);
	assert_int_equal(nq_get(c, id, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_SUCCEEDED);
	res = nq_job_result(j, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(res, "fresh", 5);
	nq_job_free(j);

	nq_job_free(a1);
	nq_job_free(a2);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_stale_completion_old_token_is_ignored, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name(
	    "stale_completion", tests, NULL, NULL);
}
