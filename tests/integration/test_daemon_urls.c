/*
 * A daemon given an address nq cannot use (http://, no port, a port past
 * 65535) refuses it at start: exit 2 at once, a message naming the flag
 * and the URL, and nothing opened or bound before (no data dir, no ready
 * file), instead of failing later when it binds or dials.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static const char *const bad_urls[] = {
    "http://127.0.0.1:7400", "tcp://127.0.0.1", "tcp://127.0.0.1:99999"};

/* Runs prog with flag url (and the other flags, NULL-terminated; a
 * daemon with a store gets --data-dir) and checks the refusal. */
static void expect_refused(itest_env *e, const char *prog, const char *flag,
    const char *url, const char *const *flags)
{
	char data[PATH_MAX], ready[PATH_MAX];
	bool store = strcmp(prog, ITEST_WORKER_PATH) != 0;
	const char *args[32] = {
	    flag, url, "--ready-file", ready, "--data-dir", data};
	size_t n = store ? 6 : 4;
	struct stat st;
	itest_run r;
	itest_path(e, "data", data, sizeof data);
	itest_path(e, "ready", ready, sizeof ready);
	for (; flags && *flags && n < 31; flags++)
		args[n++] = *flags;
	args[n] = NULL;
	assert_int_equal(itest_tool_argv(e, prog, 10000, args, &r), 0);
	if (r.code != 2 || !strstr(r.err, flag) || !strstr(r.err, url))
		fail_msg("%s %s %s: exit %d, stderr: %s", prog, flag, url,
		    r.code, r.err);
	assert_true(r.elapsed_ms < 5000);
	assert_int_not_equal(stat(data, &st), 0);
	assert_int_not_equal(stat(ready, &st), 0);
	itest_run_free(&r);
}

static void test_daemon_urls_broker_refuses_a_bad_url(void **state)
{
	itest_env *e = *state;
	const char *const flags[] = {
	    "--api", "--work", "--results", "--events", "--dlq"};
	for (size_t f = 0; f < sizeof flags / sizeof *flags; f++)
		for (size_t u = 0; u < sizeof bad_urls / sizeof *bad_urls; u++)
			expect_refused(
			    e, ITEST_BROKER_PATH, flags[f], bad_urls[u], NULL);
	itest_pass(e);
}

static void test_daemon_urls_dlq_refuses_a_bad_url(void **state)
{
	itest_env *e = *state;
	for (size_t u = 0; u < sizeof bad_urls / sizeof *bad_urls; u++) {
		expect_refused(e, ITEST_DLQ_PATH, "--listen", bad_urls[u],
		    (const char *[]){"--http", "", NULL});
		expect_refused(e, ITEST_DLQ_PATH, "--broker", bad_urls[u],
		    (const char *[]){"--http", "", NULL});
	}
	itest_pass(e);
}

static void test_daemon_urls_worker_refuses_a_bad_url(void **state)
{
	itest_env *e = *state;
	const char *const rest[] = {"--handler", "t=true", "--http", "", NULL};
	for (size_t u = 0; u < sizeof bad_urls / sizeof *bad_urls; u++) {
		expect_refused(
		    e, ITEST_WORKER_PATH, "--work", bad_urls[u], rest);
		expect_refused(
		    e, ITEST_WORKER_PATH, "--results", bad_urls[u], rest);
	}
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_daemon_urls_broker_refuses_a_bad_url, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_daemon_urls_dlq_refuses_a_bad_url, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_daemon_urls_worker_refuses_a_bad_url, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
