/*
 * nq-bench, run small against a real broker: it prints its one result line
 * in the documented shape, its jobs really pass through the broker, paced
 * runs keep their pace, and bad flags or an absent broker are reported;
 * `nqctl bench` points to it. The figures themselves are never asserted:
 * this is a smoke run of the tool, not a benchmark.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#ifndef ITEST_BENCH
#error "ITEST_BENCH must name the nq-bench binary"
#endif

#define NUM "[0-9]+"
#define DEC "[0-9]+\\.[0-9]{3}"
#define LINE_HEAD                                                              \
	"^bench jobs=" NUM " enqueue_per_s=" NUM " e2e_per_s=" NUM             \
	" p50_ms=" DEC " p99_ms=" DEC " p999_ms=" DEC
#define CPU_US "[0-9]+\\.[0-9]{2}"
#define LINE_CPU                                                               \
	" cpu_us_per_job=" CPU_US " workers_cpu_us_per_job=" CPU_US            \
	" producer_cpu_us_per_job=" CPU_US

/* True when text is exactly one line matching the extended regex. */
static bool one_line_matches(const char *text, const char *pattern)
{
	regex_t re;
	const char *nl = strchr(text, '\n');
	if (!nl || nl[1] != '\0') {
		fprintf(
		    stderr, "bench printed not exactly one line: '%s'\n", text);
		return false;
	}
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&re, text, 0, NULL, 0) == 0;
	regfree(&re);
	if (!ok)
		fprintf(stderr, "'%s' does not match %s\n", text, pattern);
	return ok;
}

/* Runs nq-bench on the env's broker with args (NULL-terminated). */
static void run_bench(itest_env *e, uint64_t timeout_ms, itest_run *r, ...)
{
	const char *args[40] = {"--api", e->api_url, "--work", e->work_url,
	    "--results", e->results_url};
	size_t n = 6;
	va_list ap;
	va_start(ap, r);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 39;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	assert_int_equal(
	    itest_tool_argv(e, ITEST_BENCH, timeout_ms, args, r), 0);
	if (r->code != 0)
		fprintf(stderr, "nq-bench failed (%d): %s\n", r->code, r->err);
}

static void test_bench_prints_one_line_and_runs_every_job(void **state)
{
	itest_env *e = *state;
	char pid[32];
	itest_run r;
	itest_qstats qs;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	snprintf(pid, sizeof pid, "%ld", (long)e->broker->pid);
	run_bench(e, 60000, &r, "--jobs", "2000", "--workers", "2",
	    "--concurrency", "8", "--batch", "50", "--queue", "smoke",
	    "--broker-pid", pid, NULL);
	assert_int_equal(r.code, 0);
	assert_true(one_line_matches(r.out,
	    LINE_HEAD LINE_CPU " broker_cpu_us_per_job=" CPU_US
	                       " broker_peak_rss_mib=[0-9]+\\.[0-9]"
	                       " broker_peak_anon_mib=[0-9]+\\.[0-9]\n$"));
	assert_non_null(strstr(r.out, "bench jobs=2000 "));
	itest_run_free(&r);

	/* Every job went through the broker and succeeded once. */
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_queue_stats(c, "smoke", &qs, NULL), 0);
	assert_int_equal(qs.enqueued_total, 2000);
	assert_int_equal(qs.succeeded_total, 2000);
	assert_int_equal(qs.ready + qs.leased + qs.scheduled, 0);
	nq_client_close(c);
	itest_pass(e);
}

static void test_bench_backlog_reports_drain_rate(void **state)
{
	itest_env *e = *state;
	itest_run r;
	json_t *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	run_bench(e, 60000, &r, "--jobs", "1500", "--workers", "2", "--backlog",
	    "--payload-size", "16", NULL);
	assert_int_equal(r.code, 0);
	assert_true(one_line_matches(
	    r.out, LINE_HEAD " drain_per_s=" NUM LINE_CPU "\n$"));
	itest_run_free(&r);

	/* --json gives the same figures as one object. */
	run_bench(
	    e, 60000, &r, "--json", "--jobs", "300", "--workers", "1", NULL);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_int_equal(itest_json_int(j, "jobs"), 300);
	assert_true(json_is_real(json_object_get(j, "e2e_per_s")));
	assert_true(json_is_real(json_object_get(j, "p999_ms")));
	/* The worker and the producer did work: their CPU time is counted. */
	assert_true(json_real_value(json_object_get(j, "cpu_us_per_job")) > 0);
	assert_true(
	    json_real_value(json_object_get(j, "producer_cpu_us_per_job")) > 0);
	json_decref(j);
	itest_run_free(&r);
	itest_pass(e);
}

static void test_bench_paced_run_keeps_its_rate(void **state)
{
	itest_env *e = *state;
	itest_run r;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	run_bench(e, 60000, &r, "--rate", "400", "--duration", "1s", "--batch",
	    "1", "--workers", "1", "--concurrency", "4", NULL);
	assert_int_equal(r.code, 0);
	assert_true(one_line_matches(r.out, LINE_HEAD LINE_CPU "\n$"));
	assert_non_null(strstr(r.out, "bench jobs=400 "));
	/* 400 jobs at 400/s: the last one is not sent before ~1 s. */
	assert_true(r.elapsed_ms >= 900);
	itest_run_free(&r);
	itest_pass(e);
}

static void test_bench_side_queue_is_fetched_and_counted(void **state)
{
	itest_env *e = *state;
	itest_run r;
	itest_qstats qs;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	run_bench(e, 60000, &r, "--jobs", "500", "--workers", "1",
	    "--side-queue", "side", "--side-jobs", "300", NULL);
	assert_int_equal(r.code, 0);
	assert_true(one_line_matches(r.out, LINE_HEAD LINE_CPU
	    " side_started=" NUM " side_per_s=" NUM "\\.[0-9]\n$"));
	assert_null(strstr(r.out, "side_started=0 "));
	itest_run_free(&r);

	/* The side queue's jobs were put in first and went to the workers. */
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_queue_stats(c, "side", &qs, NULL), 0);
	assert_int_equal(qs.enqueued_total, 300);
	assert_true(qs.succeeded_total > 0);
	nq_client_close(c);
	itest_pass(e);
}

static void expect_usage_error(
    itest_env *e, const char *flag, const char *value, const char *says)
{
	itest_run r;
	run_bench(e, 15000, &r, flag, value, NULL);
	assert_int_equal(r.code, 2);
	assert_string_equal(r.out, "");
	if (!strstr(r.err, says))
		fail_msg("stderr '%s' does not say '%s'", r.err, says);
	itest_run_free(&r);
}

static void test_bench_refuses_bad_flags(void **state)
{
	itest_env *e = *state;
	expect_usage_error(e, "--payload-size", "8", "--payload-size must be");
	expect_usage_error(e, "--batch", "20000", "--batch must be");
	expect_usage_error(e, "--workers", "0", "--workers must be");
	expect_usage_error(e, "--rate", "100", "--rate and --duration");
	expect_usage_error(e, "--queue", "no spaces", "valid queue name");
	expect_usage_error(e, "--side-queue", "no spaces", "valid queue name");
	expect_usage_error(e, "--jobs", "many", "--jobs");
	expect_usage_error(e, "--no-such", "1", "unknown flag --no-such");
	itest_pass(e);
}

static void test_bench_without_broker_exits_3(void **state)
{
	itest_env *e = *state;
	itest_run r;
	char url[ITEST_URL_MAX];
	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);
	const char *args[] = {"--api", url, "--work", url, "--results", url,
	    "--timeout", "500ms", "--jobs", "10", "--workers", "1", NULL};
	assert_int_equal(itest_tool_argv(e, ITEST_BENCH, 30000, args, &r), 0);
	assert_int_equal(r.code, 3);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.err, url));
	itest_run_free(&r);
	itest_pass(e);
}

/* The command moved out of nqctl: a script that still runs it is told
 * where, on one line, and fails as on a bad command line. */
static void test_bench_nqctl_points_to_nq_bench(void **state)
{
	itest_env *e = *state;
	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "bench", "--jobs", "10", NULL), 0);
	assert_int_equal(r.code, 2);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.err, "nq-bench"));
	assert_ptr_equal(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
	itest_run_free(&r);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_bench_prints_one_line_and_runs_every_job, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bench_backlog_reports_drain_rate, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(test_bench_paced_run_keeps_its_rate,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bench_side_queue_is_fetched_and_counted, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bench_refuses_bad_flags, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bench_without_broker_exits_3, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(test_bench_nqctl_points_to_nq_bench,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
