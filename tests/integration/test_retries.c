/*
 * Retries: a failing handler runs exactly max_attempts times, each attempt
 * numbered in order, backoff bounded by the cap, and the job ends dead with
 * its whole error history; exit status 65 (EX_DATAERR) is non-retryable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BACKOFF_CAP_MS 2000

static const char *const broker_flags[] = {"--backoff-base", "100ms",
    "--backoff-cap", "2s", "--lease-check", "100ms", NULL};

/* Starts a worker for queue q whose handler for type runs body. */
static void start_worker(itest_env *e, const char *type, const char *body)
{
	char script[PATH_MAX], handler[PATH_MAX + 64];
	itest_proc *w;
	assert_int_equal(
	    itest_write_script(e, type, body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "%s=%s", type, script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
}

/* Reads "attempt millis" lines; returns how many. */
static int read_runs(
    const char *path, unsigned *attempt, uint64_t *at_ms, int max)
{
	char *text, *line, *save = NULL;
	int n = 0;
	if (itest_read_file(path, &text, NULL) != 0)
		return 0;
	for (line = strtok_r(text, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long long t;
		assert_int_equal(sscanf(line, "%u %llu", &attempt[n], &t), 2);
		at_ms[n++] = t;
	}
	free(text);
	return n;
}

static void test_retries_failing_job_runs_max_attempts_times_then_dies(
    void **state)
{
	itest_env *e = *state;
	char runs[PATH_MAX], body[PATH_MAX + 128], id[NQ_ID_MAX];
	unsigned attempt[8];
	uint64_t at_ms[8];
	itest_run r;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	itest_path(e, "runs", runs, sizeof runs);
	snprintf(body, sizeof body,
	    "echo \"$NQ_ATTEMPT $(date +%%s%%3N)\" >> %s\nexit 1", runs);
	start_worker(e, "fail", body);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "fail",
	                     "--max-attempts", "4", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_DEAD, 20000, &j), 0);
	assert_string_equal(nq_job_dead_reason(j), "max_attempts");
	assert_int_equal(nq_job_attempt(j), 4);
	assert_int_equal(nq_job_max_attempts(j), 4);
	assert_int_equal(nq_job_error_count(j), 4);
	for (size_t i = 0; i < 4; i++) {
		uint32_t a = 0;
		uint64_t t = 0;
		assert_non_null(nq_job_error(j, i, &a, &t));
		assert_int_equal(a, i + 1);
		assert_true(t > 0);
	}
	nq_job_free(j);

	/* A dead job is not run again. */
	itest_sleep_ms(1000);
	int n = read_runs(runs, attempt, at_ms, 8);
	assert_int_equal(n, 4);
	for (int i = 0; i < n; i++)
		assert_int_equal(attempt[i], (unsigned)i + 1);
	/* Full jitter allows any gap down to zero; the cap bounds them from
	 * above (plus time to fetch and start a process). */
	for (int i = 1; i < n; i++)
		assert_true(at_ms[i] - at_ms[i - 1] < BACKOFF_CAP_MS + 1500);

	/* The user sees the same history. */
	json_t *js;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &js), 0);
	assert_string_equal(itest_json_str(js, "state"), "dead");
	assert_int_equal(json_array_size(json_object_get(js, "errors")), 4);
	json_decref(js);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

static void test_retries_exit_65_is_dead_after_one_attempt(void **state)
{
	itest_env *e = *state;
	char runs[PATH_MAX], body[PATH_MAX + 128], id[NQ_ID_MAX];
	unsigned attempt[8];
	uint64_t at_ms[8];
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	itest_path(e, "runs", runs, sizeof runs);
	snprintf(body, sizeof body,
	    "echo \"$NQ_ATTEMPT $(date +%%s%%3N)\" >> %s\n"
	    "echo 'bad input' >&2\nexit 65",
	    runs);
	start_worker(e, "bad", body);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "bad", "x", id), 0);
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_DEAD, 20000, &j), 0);
	assert_string_equal(nq_job_dead_reason(j), "non_retryable");
	assert_int_equal(nq_job_attempt(j), 1);
	assert_int_equal(nq_job_max_attempts(j), 10);
	assert_int_equal(nq_job_error_count(j), 1);
	uint32_t a = 0;
	uint64_t t = 0;
	assert_non_null(nq_job_error(j, 0, &a, &t));
	assert_int_equal(a, 1);
	nq_job_free(j);

	itest_sleep_ms(1000);
	assert_int_equal(read_runs(runs, attempt, at_ms, 8), 1);
	assert_int_equal(attempt[0], 1);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_retries_failing_job_runs_max_attempts_times_then_dies,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_retries_exit_65_is_dead_after_one_attempt, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("retries", tests, NULL, NULL);
}
