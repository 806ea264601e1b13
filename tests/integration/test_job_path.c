/*
 * The path a user walks first: enqueue with nqctl, a worker runs the
 * handler, nqctl wait/get show the result; and the exit codes scripts rely
 * on (0 ok, 1 failed, 2 usage, 3 unreachable).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

/* Checks the JSON job nqctl printed for the echo job. */
static void assert_echo_job(const json_t *j, const char *id)
{
	json_error_t err;
	assert_string_equal(itest_json_str(j, "id"), id);
	assert_string_equal(itest_json_str(j, "queue"), "q");
	assert_string_equal(itest_json_str(j, "type"), "echo");
	assert_string_equal(itest_json_str(j, "state"), "succeeded");
	assert_int_equal(itest_json_int(j, "attempt"), 1);
	assert_int_equal(itest_json_int(j, "max_attempts"), 10);
	json_t *errors = json_object_get(j, "errors");
	assert_true(json_is_array(errors));
	assert_int_equal(json_array_size(errors), 0);
	/* cat hands back the payload, which the worker gave it as JSON. */
	const char *result = itest_json_str(j, "result");
	assert_non_null(result);
	json_t *r = json_loads(result, JSON_DECODE_ANY, &err);
	assert_non_null(r);
	assert_true(json_is_object(r));
	assert_int_equal(itest_json_int(r, "x"), 1);
	assert_int_equal(json_object_size(r), 1);
	json_decref(r);
}

static void test_job_path_echo_job_succeeds_with_its_payload_as_result(
    void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	itest_run r;
	json_t *j;
	char id[NQ_ID_MAX];
	int st;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "echo",
	                     "--payload", "{\"x\":1}", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);

	assert_int_equal(
	    itest_nqctl(e, 30000, &r, "--json", "wait", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_string_equal(itest_json_str(j, "state"), "succeeded");
	json_decref(j);
	itest_run_free(&r);

	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_echo_job(j, id);
	json_decref(j);
	itest_run_free(&r);

	/* stats name the worker that fetched, in the table and in JSON */
	assert_int_equal(itest_nqctl(e, 15000, &r, "stats", NULL), 0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\nWORKER "));
	itest_run_free(&r);
	assert_int_equal(itest_nqctl(e, 15000, &r, "--json", "stats", NULL), 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	json_t *wk = json_array_get(json_object_get(j, "workers"), 0);
	assert_non_null(wk);
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(wk, "queues"), 0)),
	    "q");
	assert_true(strlen(itest_json_str(wk, "worker_id")) > 0);
	json_decref(j);
	itest_run_free(&r);

	/* SIGTERM stops both daemons cleanly. */
	assert_int_equal(itest_signal(w, SIGTERM), 0);
	assert_int_equal(itest_wait_exit(w, 15000), 0);
	assert_true(WIFEXITED(w->status));
	assert_int_equal(WEXITSTATUS(w->status), 0);
	assert_int_equal(itest_broker_stop(e, SIGTERM, &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	itest_pass(e);
}

/* Runs nqctl with args and asserts its exit code and that it said why on
 * stderr when it failed. */
static void expect_exit(itest_env *e, int code, const char *const *args)
{
	itest_run r;
	assert_int_equal(itest_nqctl_argv(e, 15000, args, &r), 0);
	assert_int_equal(r.code, code);
	if (code != 0)
		assert_true(strlen(r.err) > 0);
	itest_run_free(&r);
}

static void test_job_path_exit_codes_tell_usage_from_failure(void **state)
{
	itest_env *e = *state;
	assert_int_equal(itest_broker_start(e, NULL), 0);

	/* 2: the command line is wrong; nothing was asked of the broker. */
	expect_exit(e, 2, (const char *[]){"--api", e->api_url, NULL});
	expect_exit(
	    e, 2, (const char *[]){"--api", e->api_url, "frobnicate", NULL});
	expect_exit(
	    e, 2, (const char *[]){"--api", e->api_url, "enqueue", "q", NULL});
	expect_exit(e, 2, (const char *[]){"--api", e->api_url, "get", NULL});
	expect_exit(e, 2,
	    (const char *[]){"--api", e->api_url, "enqueue", "q", "t",
	        "--priority", "high", NULL});
	expect_exit(e, 2,
	    (const char *[]){
	        "--api", e->api_url, "--no-such-flag", "stats", NULL});

	/* 1: the broker answered, the operation failed. */
	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "get", "00000000000000ff", NULL), 0);
	assert_int_equal(r.code, 1);
	assert_non_null(strcasestr(r.err, "not found"));
	itest_run_free(&r);

	/* 0 */
	expect_exit(e, 0, (const char *[]){"--api", e->api_url, "stats", NULL});
	itest_pass(e);
}

static void test_job_path_unreachable_broker_exits_3_within_timeout(
    void **state)
{
	itest_env *e = *state;
	itest_run r;
	char url[ITEST_URL_MAX];

	/* A port nobody listens on. */
	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);
	const char *args[] = {
	    "--api", url, "--timeout", "1s", "get", "00000000000000ff", NULL};
	assert_int_equal(itest_nqctl_argv(e, 15000, args, &r), 0);
	assert_int_equal(r.code, 3);
	assert_true(strlen(r.err) > 0);
	assert_true(r.elapsed_ms < 5000);
	itest_run_free(&r);
	itest_pass(e);
}

/* Runs nqctl with args; asserts the exit code, an empty stdout and that
 * stderr is exactly one JSON object whose code is the wire name. */
static void expect_json_error(
    itest_env *e, int exit_code, const char *code, const char *const *args)
{
	itest_run r;
	json_error_t jerr;
	assert_int_equal(itest_nqctl_argv(e, 15000, args, &r), 0);
	assert_int_equal(r.code, exit_code);
	assert_string_equal(r.out, "");
	/* one line, one value: json_loads refuses anything after it */
	assert_non_null(strchr(r.err, '\n'));
	assert_int_equal(strchr(r.err, '\n')[1], '\0');
	json_t *o = json_loads(r.err, 0, &jerr);
	if (!o)
		fail_msg(
		    "stderr is not one JSON value: %s (%s)", r.err, jerr.text);
	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), 2);
	assert_string_equal(itest_json_str(o, "code"), code);
	assert_true(strlen(itest_json_str(o, "message")) > 0);
	json_decref(o);
	itest_run_free(&r);
}

static void test_job_path_json_errors_are_one_object_on_stderr(void **state)
{
	itest_env *e = *state;
	char url[ITEST_URL_MAX];
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);

	/* 1: the broker answered NOT_FOUND */
	expect_json_error(e, 1, "NOT_FOUND",
	    (const char *[]){"--api", e->api_url, "--json", "get",
	        "00000000000003e7", NULL});
	/* 2: usage errors, --json before or after the command, or before
	 * the flag that is wrong */
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){
	        "--api", e->api_url, "--json", "get", "999", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){
	        "--api", e->api_url, "get", "999", "--json", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){
	        "--api", e->api_url, "stats", "--bogus", "--json", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){"--json", "frobnicate", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){"--json", "dlq", "show", "x1", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){"--json", "events", "--state", "finished", NULL});
	expect_json_error(e, 2, "INVALID_ARGUMENT",
	    (const char *[]){"--json", "--token-file", "env:NQT_UNSET_TOKEN",
	        "--api", e->api_url, "stats", NULL});
	/* 3: nothing listens; the connection is refused at once */
	expect_json_error(e, 3, "UNAVAILABLE",
	    (const char *[]){"--api", url, "--timeout", "500ms", "--json",
	        "get", "00000000000000ff", NULL});
	expect_json_error(e, 3, "UNAVAILABLE",
	    (const char *[]){"--dlq", url, "--timeout", "500ms", "--json",
	        "dlq", "stats", NULL});
	expect_json_error(e, 3, "UNAVAILABLE",
	    (const char *[]){"--events", url, "--json", "events", NULL});
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_job_path_echo_job_succeeds_with_its_payload_as_result,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_job_path_exit_codes_tell_usage_from_failure, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_job_path_unreachable_broker_exits_3_within_timeout,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_job_path_json_errors_are_one_object_on_stderr, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("job_path", tests, NULL, NULL);
}
