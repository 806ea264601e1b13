/*
 * The gauges of the dispatch limits, as Prometheus and `nqctl stats` show
 * them: a queue with fairness and max_in_flight 2, jobs of eight groups and
 * one worker whose jobs do not end. Its /metrics passes promtool with the
 * limit, the jobs held back and the largest groups (five, then "other").
 * And with two groups, `nqctl stats` (text and --json) and `nqctl top`
 * show each one's ready and leased jobs under its queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "obs.h"

/* Enqueues n jobs of group into queue "fair". */
static void enqueue_group(nq_client *c, const char *group, size_t n)
{
	nq_job_spec specs[16];
	nq_enqueue_result res[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		specs[i] = (nq_job_spec){.queue = "fair",
		    .type = "t",
		    .payload = "x",
		    .payload_len = 1,
		    .group_key = group};
	assert_int_equal(nq_enqueue_batch(c, specs, n, res), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(res[i].err, 0);
}

/* The value of series in text (fails when it is not there). */
static double sample_of(const char *text, const char *series)
{
	double v;
	if (obs_sample(text, series, &v) != 0)
		fail_msg("/metrics lacks %s:\n%.3000s", series, text);
	return v;
}

/* The broker with queue "fair" (fairness and the keys more, lines of
 * YAML), and a client of it. */
static nq_client *start_fair(itest_env *e, const char *more)
{
	char path[PATH_MAX], yaml[256];
	nq_client *c;
	snprintf(yaml, sizeof yaml, "queues:\n  fair:\n    fairness: true\n%s",
	    more);
	assert_int_equal(
	    itest_write_file(e, "queues.yaml", yaml, path, sizeof path), 0);
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	return c;
}

/* A worker of 4 slots whose jobs do not end; its queue's stats once the
 * limits let it hold 2. */
static itest_qstats start_stuck_worker(itest_env *e, nq_client *c)
{
	char script[PATH_MAX], handler[PATH_MAX + 8];
	assert_int_equal(
	    itest_write_script(e, "t", "sleep 30\n", script, sizeof script), 0);
	snprintf(handler, sizeof handler, "t=%s", script);
	itest_proc *w;
	const char *wflags[] = {"--queues", "fair", "--concurrency", "4",
	    "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	itest_qstats s;
	for (uint64_t end = itest_now_ms() + 10000; itest_now_ms() < end;
	     itest_sleep_ms(50)) {
		assert_int_equal(itest_queue_stats(c, "fair", &s, NULL), 0);
		if (s.leased == 2)
			break;
	}
	assert_int_equal(s.leased, 2);
	return s;
}

static void test_limits_metrics_show_limits_and_groups(void **state)
{
	itest_env *e = *state;
	nq_client *c = start_fair(e, "    max_in_flight: 2\n");
	const char *groups[] = {"g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"};
	for (size_t i = 0; i < 8; i++)
		enqueue_group(c, groups[i], 10 - i);
	itest_qstats s = start_stuck_worker(e, c);
	assert_int_equal(s.in_flight_limit, 2);
	assert_int_equal(s.throttled, 52 - 2);
	itest_sleep_ms(300); /* a sweep takes the snapshot /metrics shows */

	char *text;
	assert_int_equal(obs_scrape(e->http_addr, &text), 0);
	if (obs_promtool(text) != 0)
		fail_msg("promtool rejected the broker's /metrics");
	assert_true(
	    sample_of(text, "nq_queue_in_flight_limit{queue=\"fair\"}") == 2);
	assert_true(
	    sample_of(text, "nq_queue_throttled{queue=\"fair\"}") == 50);
	assert_true(
	    sample_of(text, "nq_queue_breaker_state{queue=\"fair\"}") == 0);
	assert_true(sample_of(text, "nq_queue_tokens{queue=\"fair\"}") == 0);
	/* Five groups by name and "other": 50 ready jobs between them. */
	double sum = 0;
	int named = 0;
	for (size_t i = 0; i < 8; i++) {
		char series[96];
		double v;
		snprintf(series, sizeof series,
		    "nq_queue_group_ready{queue=\"fair\",group=\"%s\"}",
		    groups[i]);
		if (obs_sample(text, series, &v) == 0) {
			named++;
			sum += v;
		}
	}
	assert_int_equal(named, 5);
	sum += sample_of(
	    text, "nq_queue_group_ready{queue=\"fair\",group=\"other\"}");
	assert_true(sum == 50);
	free(text);

	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "stats", NULL), 0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "THROTTLED"));
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

/* The "groups" of queue "fair" in nqctl stats --json output out. */
static json_t *stats_groups(const char *out)
{
	json_error_t err;
	json_t *o = json_loads(out, 0, &err);
	if (!o)
		fail_msg("stats --json is no JSON (%s): %s", err.text, out);
	json_t *q = json_array_get(json_object_get(o, "queues"), 0);
	json_t *g = json_incref(json_object_get(q, "groups"));
	json_decref(o);
	if (!json_is_array(g))
		fail_msg("stats --json has no groups array: %s", out);
	return g;
}

static void assert_group(
    const json_t *g, const char *name, json_int_t ready, json_int_t leased)
{
	assert_string_equal(
	    json_string_value(json_object_get(g, "group")), name);
	assert_int_equal(
	    json_integer_value(json_object_get(g, "ready")), ready);
	assert_int_equal(
	    json_integer_value(json_object_get(g, "leased")), leased);
}

/* Fair queue, max_in_flight_per_group 1, 7 jobs of "big" and 3 of
 * "small", one slow worker: each group has one leased and the rest ready. */
static void test_limits_metrics_stats_and_top_show_each_group(void **state)
{
	itest_env *e = *state;
	nq_client *c = start_fair(e, "    max_in_flight_per_group: 1\n");
	enqueue_group(c, "big", 7);
	enqueue_group(c, "small", 3);
	(void)start_stuck_worker(e, c);

	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "stats", "fair", "--json", NULL), 0);
	assert_int_equal(r.code, 0);
	json_t *g = stats_groups(r.out);
	assert_int_equal(json_array_size(g), 2);
	assert_group(json_array_get(g, 0), "big", 6, 1);
	assert_group(json_array_get(g, 1), "small", 2, 1);
	json_decref(g);
	itest_run_free(&r);

	assert_int_equal(itest_nqctl(e, 15000, &r, "stats", "fair", NULL), 0);
	assert_int_equal(r.code, 0);
	const char *big = strstr(r.out, "  group big: 6 ready, 1 leased\n");
	assert_non_null(big);
	assert_non_null(strstr(big, "  group small: 2 ready, 1 leased\n"));
	itest_run_free(&r);

	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--events", e->events_url, "top",
	        "--queue", "fair", "--duration", "2500ms", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "fair groups: big 6, small 2\n"));
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_limits_metrics_show_limits_and_groups, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_limits_metrics_stats_and_top_show_each_group, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
