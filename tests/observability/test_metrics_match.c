/*
 * The numbers agree with each other: the broker's latency histogram counts
 * exactly the succeeded jobs, nq-worker's counters count every attempt it
 * ran, and the queue gauges of /metrics equal what `nqctl stats --json`
 * reports for the same queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs.h"

static const char *const broker_flags[] = {"--backoff-base", "50ms",
    "--backoff-cap", "100ms", "--lease-check", "100ms", NULL};

/* flaky fails its first attempt; slow runs a minute; bad fails for good;
 * anything else succeeds. */
static const char handler_body[] =
    "case $NQ_TYPE in\n"
    "flaky) [ \"$NQ_ATTEMPT\" = 1 ] && exit 1 ;;\n"
    "slow) exec sleep 60 ;;\n"
    "bad) exit 65 ;;\n"
    "esac\n"
    "exit 0\n";

static void start_worker(
    itest_env *e, const char *queue, const char *conc, char *http, size_t len)
{
	char script[PATH_MAX], handler[PATH_MAX + 8];
	itest_proc *w;
	assert_int_equal(itest_write_script(
	                     e, "handler", handler_body, script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "*=%s", script);
	assert_int_equal(obs_free_addr(http, len), 0);
	const char *flags[] = {"--queues", queue, "--concurrency", conc,
	    "--handler", handler, NULL};
	assert_int_equal(obs_worker_start(e, http, flags, &w), 0);
}

static double sample(const char *addr, const char *series)
{
	char *text;
	double v = NAN;
	assert_int_equal(obs_scrape(addr, &text), 0);
	if (obs_sample(text, series, &v) != 0)
		fprintf(stderr, "%.3000s\n", text);
	free(text);
	return v;
}

/* Polls until the series has the value: the broker's /metrics reads a
 * snapshot that the core refreshes every sweep. */
static void wait_sample(const char *addr, const char *series, double want)
{
	uint64_t end = itest_now_ms() + 5000;
	double v;
	while ((v = sample(addr, series)) != want && itest_now_ms() < end)
		itest_sleep_ms(50);
	if (v != want)
		fail_msg("%s is %g, not %g", series, v, want);
}

static void test_metrics_latency_count_equals_succeeded_jobs(void **state)
{
	itest_env *e = *state;
	char http[64], ids[40][NQ_ID_MAX];
	nq_client *c;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	start_worker(e, "lat", "4", http, sizeof http);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(itest_enqueue(c, "lat", i % 4 ? "ok" : "flaky",
		                     "x", ids[i]),
		    0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(itest_wait_state(c, ids[i], NQ_STATE_SUCCEEDED,
		                     20000, NULL),
		    0);

	wait_sample(e->http_addr, "nq_jobs_succeeded_total{queue=\"lat\"}", 40);
	assert_true(sample(e->http_addr,
	                "nq_job_latency_seconds_count{queue=\"lat\"}") == 40);
	assert_true(
	    sample(e->http_addr,
	        "nq_job_latency_seconds_bucket{queue=\"lat\",le=\"+Inf\"}") ==
	    40);
	assert_true(sample(e->http_addr,
	                "nq_job_latency_seconds_sum{queue=\"lat\"}") > 0);
	assert_true(
	    sample(e->http_addr, "nq_jobs_failed_total{queue=\"lat\"}") == 10);

	/* The worker ran 50 attempts: 40 that succeeded, 10 that failed. */
	assert_true(sample(http, "nq_worker_jobs_total{type=\"*\",outcome="
	                         "\"succeeded\"}") == 40);
	assert_true(sample(http, "nq_worker_jobs_total{type=\"*\",outcome="
	                         "\"failed\"}") == 10);
	assert_true(sample(http, "nq_worker_jobs_total{type=\"*\",outcome="
	                         "\"released\"}") == 0);
	assert_true(sample(http, "nq_worker_job_duration_seconds_count{type="
	                         "\"*\"}") == 50);
	nq_client_close(c);
	itest_pass(e);
}

/* `nqctl --json stats QUEUE` as the object of that queue. */
static json_t *stats_of(itest_env *e, const char *queue)
{
	itest_run r;
	json_t *js;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "stats", queue, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &js), 0);
	itest_run_free(&r);
	json_t *q =
	    json_incref(json_array_get(json_object_get(js, "queues"), 0));
	json_decref(js);
	assert_non_null(q);
	return q;
}

/* The pairs that must agree: a series of /metrics and a stats field. Every
 * row of nqi/queue_fields.h with a metric that stats also reports, and the
 * paused flag. */
typedef struct pair {
	const char *metric, *stat;
} pair;

static size_t pairs_of(pair *out)
{
	const nqi_queue_field *f = nqi_queue_fields();
	size_t n = 0;
	for (size_t i = 0; i < NQI_QF_COUNT; i++)
		if (f[i].prom[0] && f[i].kind != NQI_QF_SNAP)
			out[n++] = (pair){f[i].prom, f[i].name};
	out[n++] = (pair){"nq_queue_paused", "paused"};
	return n;
}

/* Compares every pair once; returns how many differ (printing them when
 * loud). */
static int compare(const char *text, const json_t *q, bool loud)
{
	pair pairs[NQI_QF_COUNT + 1];
	size_t npairs = pairs_of(pairs);
	int bad = 0;
	for (size_t i = 0; i < npairs; i++) {
		char series[128];
		double m = NAN;
		snprintf(
		    series, sizeof series, "%s{queue=\"g\"}", pairs[i].metric);
		obs_sample(text, series, &m);
		const json_t *s = json_object_get(q, pairs[i].stat);
		double v = json_is_boolean(s) ? json_is_true(s)
		                              : (double)json_integer_value(s);
		if (m != v) {
			bad++;
			if (loud)
				fprintf(stderr,
				    "obs: %s is %g, stats %s is %g\n", series,
				    m, pairs[i].stat, v);
		}
	}
	return bad;
}

static void test_metrics_queue_gauges_match_nqctl_stats(void **state)
{
	itest_env *e = *state;
	char http[64], id[NQ_ID_MAX], quick[2][NQ_ID_MAX], slow[2][NQ_ID_MAX];
	nq_client *c;
	itest_run r;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	start_worker(e, "g", "2", http, sizeof http);
	assert_int_equal(itest_client(e, 0, &c), 0);
	/* 2 succeeded, 1 dead (no nq-dlq listens: it stays pending), 2
	 * running on both slots, 4 ready behind them, 3 scheduled. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(itest_enqueue(c, "g", "ok", "x", quick[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(itest_wait_state(c, quick[i],
		                     NQ_STATE_SUCCEEDED, 20000, NULL),
		    0);
	assert_int_equal(itest_enqueue(c, "g", "bad", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_DEAD, 20000, NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    itest_enqueue(c, "g", "slow", "x", slow[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    itest_wait_state(c, slow[i], NQ_STATE_LEASED, 20000, NULL),
		    0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(itest_enqueue(c, "g", "slow", "x", id), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "g",
		                     "later", "--delay", "1h", NULL),
		    0);
		assert_int_equal(r.code, 0);
		itest_run_free(&r);
	}
	assert_int_equal(itest_nqctl(e, 15000, &r, "pause", "g", NULL), 0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);

	json_t *q = stats_of(e, "g");
	assert_int_equal(json_integer_value(json_object_get(q, "ready")), 4);
	assert_int_equal(
	    json_integer_value(json_object_get(q, "scheduled")), 3);
	assert_int_equal(json_integer_value(json_object_get(q, "leased")), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(q, "succeeded")), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(q, "dead_total")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(q, "enqueued_total")), 12);
	assert_true(json_is_true(json_object_get(q, "paused")));

	/* Nothing moves now; the snapshot behind /metrics catches up within
	 * a sweep or two. */
	uint64_t end = itest_now_ms() + 5000;
	char *text;
	for (;;) {
		assert_int_equal(obs_scrape(e->http_addr, &text), 0);
		if (compare(text, q, false) == 0 || itest_now_ms() >= end)
			break;
		free(text);
		itest_sleep_ms(50);
	}
	assert_int_equal(compare(text, q, true), 0);

	/* The age of the oldest ready job, against its enqueue time. */
	struct tm tm = {0};
	double age = NAN;
	const char *at =
	    json_string_value(json_object_get(q, "oldest_ready_at"));
	assert_non_null(at);
	assert_non_null(strptime(at, "%Y-%m-%dT%H:%M:%S", &tm));
	double at_s = (double)timegm(&tm) + atof(strchr(at, '.'));
	assert_int_equal(
	    obs_sample(
	        text, "nq_queue_oldest_ready_age_seconds{queue=\"g\"}", &age),
	    0);
	double want = (double)itest_wall_us() / 1e6 - at_s;
	assert_true(fabs(age - want) < 2.5);
	/* Dead and waiting for nq-dlq, which is not there. */
	assert_int_equal(
	    obs_sample(text, "nq_queue_dead_pending{queue=\"g\"}", &age), 0);
	assert_true(age == 1);
	free(text);
	json_decref(q);

	/* The worker's slots: both busy with the slow jobs. */
	assert_true(sample(http, "nq_worker_slots_busy") == 2);
	assert_true(sample(http, "nq_worker_slots_idle") == 0);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_metrics_latency_count_equals_succeeded_jobs, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_metrics_queue_gauges_match_nqctl_stats, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
