/* Prom: the exposition builder (families, samples, escaping, refused label
 * values and repeated series), histograms (cumulative buckets, concurrent
 * observe, quantiles), and the whole output checked by promtool. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nq/nq.h"
#include "nqi/prom.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))
#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static int setup(void **st)
{
	nqi_prom *p;
	if (nqi_prom_alloc(&p) != NQ_OK)
		return -1;
	*st = p;
	return 0;
}

static int teardown(void **st)
{
	nqi_prom_free(*st);
	return 0;
}

static nqi_prom_hist *hist(const double *bounds, size_t n)
{
	nqi_prom_hist *h = NULL;
	char err[128] = "";
	if (nqi_prom_hist_alloc(&h, bounds, n, err, sizeof err) != NQ_OK)
		fail_msg("histogram refused: %s", err);
	return h;
}

static void assert_text(nqi_prom *p, const char *want)
{
	size_t len;
	const char *got = nqi_prom_text(p, &len);
	if (strcmp(got, want) != 0)
		fail_msg("exposition differs.\n--- got:\n%s--- want:\n%s", got,
		    want);
	assert_int_equal(len, strlen(want));
}

static void test_prom_counter_output(void **st)
{
	nqi_prom *p = *st;
	assert_int_equal(nqi_prom_family(p, "nq_jobs_enqueued_total",
	                     NQI_PROM_COUNTER, "Jobs accepted by enqueue."),
	    NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_jobs_enqueued_total",
	                     L("queue", "mail"), 42),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_jobs_enqueued_total", L("queue", "sms"), 7),
	    NQ_OK);
	assert_int_equal(nqi_prom_family(p, "nq_commits_total",
	                     NQI_PROM_COUNTER, "Store commits."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_commits_total", NULL, 123456789012.0),
	    NQ_OK);
	assert_text(p,
	    "# HELP nq_jobs_enqueued_total Jobs accepted by enqueue.\n"
	    "# TYPE nq_jobs_enqueued_total counter\n"
	    "nq_jobs_enqueued_total{queue=\"mail\"} 42\n"
	    "nq_jobs_enqueued_total{queue=\"sms\"} 7\n"
	    "# HELP nq_commits_total Store commits.\n"
	    "# TYPE nq_commits_total counter\n"
	    "nq_commits_total 123456789012\n");
	assert_string_equal(nqi_prom_error(p), "");
}

static void test_prom_gauge_escapes_labels(void **st)
{
	nqi_prom *p = *st;
	assert_int_equal(nqi_prom_family(p, "nq_queue_depth", NQI_PROM_GAUGE,
	                     "Jobs waiting.\nBack\\slash, \"quotes\" kept."),
	    NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_queue_depth",
	                     L("queue", "a\\b\"c\nd", "state", "ready"), 3),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_queue_depth",
	        L("queue", "caf\xc3\xa9 \xe2\x82\xac", "state", ""), -2),
	    NQ_OK);
	assert_text(p,
	    "# HELP nq_queue_depth Jobs waiting.\\nBack\\\\slash, "
	    "\"quotes\" kept.\n"
	    "# TYPE nq_queue_depth gauge\n"
	    "nq_queue_depth{queue=\"a\\\\b\\\"c\\nd\",state=\"ready\"} 3\n"
	    "nq_queue_depth{queue=\"caf\xc3\xa9 \xe2\x82\xac\",state=\"\"} "
	    "-2\n");
}

static void test_prom_values_print_exactly(void **st)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
	    {0, "0"},
	    {-0.0, "0"},
	    {1, "1"},
	    {-17, "-17"},
	    {9007199254740993.0, "9007199254740992"},
	    {0.1, "0.10000000000000001"},
	    {2.5, "2.5"},
	    {1e20, "1e+20"},
	    {-1e-9, "-1.0000000000000001e-09"},
	    {NAN, "NaN"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	};
	nqi_prom *p = *st;
	char name[32], want[128];
	for (size_t i = 0; i < COUNT(cases); i++) {
		nqi_prom_reset(p);
		snprintf(name, sizeof name, "nq_value_%zu", i);
		assert_int_equal(
		    nqi_prom_family(p, name, NQI_PROM_GAUGE, "v"), NQ_OK);
		assert_int_equal(
		    nqi_prom_sample(p, name, NULL, cases[i].v), NQ_OK);
		snprintf(want, sizeof want,
		    "# HELP %s v\n# TYPE %s gauge\n"
		    "%s %s\n",
		    name, name, name, cases[i].text);
		assert_text(p, want);
	}
}

static void test_prom_histogram_buckets_cumulative(void **st)
{
	static const double bounds[] = {0.5, 1, 10};
	static const double obs[] = {0.25, 0.5, 0.75, 4, 20, 100};
	nqi_prom *p = *st;
	nqi_prom_hist *h = hist(bounds, COUNT(bounds));
	nqi_prom_hist *empty = hist(bounds, COUNT(bounds));
	for (size_t i = 0; i < COUNT(obs); i++)
		nqi_prom_hist_observe(h, obs[i]);
	nqi_prom_hist_observe(h, NAN); /* dropped */
	assert_int_equal(nqi_prom_family(p, "nq_job_run_seconds",
	                     NQI_PROM_HISTOGRAM, "Time handlers ran."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_histogram(p, "nq_job_run_seconds", L("queue", "mail"), h),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_histogram(p, "nq_job_run_seconds", NULL, empty), NQ_OK);
	assert_text(p,
	    "# HELP nq_job_run_seconds Time handlers ran.\n"
	    "# TYPE nq_job_run_seconds histogram\n"
	    "nq_job_run_seconds_bucket{queue=\"mail\",le=\"0.5\"} 2\n"
	    "nq_job_run_seconds_bucket{queue=\"mail\",le=\"1\"} 3\n"
	    "nq_job_run_seconds_bucket{queue=\"mail\",le=\"10\"} 4\n"
	    "nq_job_run_seconds_bucket{queue=\"mail\",le=\"+Inf\"} 6\n"
	    "nq_job_run_seconds_sum{queue=\"mail\"} 125.5\n"
	    "nq_job_run_seconds_count{queue=\"mail\"} 6\n"
	    "nq_job_run_seconds_bucket{le=\"0.5\"} 0\n"
	    "nq_job_run_seconds_bucket{le=\"1\"} 0\n"
	    "nq_job_run_seconds_bucket{le=\"10\"} 0\n"
	    "nq_job_run_seconds_bucket{le=\"+Inf\"} 0\n"
	    "nq_job_run_seconds_sum 0\n"
	    "nq_job_run_seconds_count 0\n");
	assert_int_equal(nqi_prom_hist_count(h), 6);
	assert_true(nqi_prom_hist_sum(h) == 125.5);
	nqi_prom_hist_free(h);
	nqi_prom_hist_free(empty);
}

/* A summary: a line per quantile (NaN when nothing was seen lately), then
 * _sum and _count. */
static void test_prom_summary_output(void **st)
{
	static const double q[] = {0.5, 0.99};
	nqi_prom *p = *st;
	double seen[] = {0.002, 0.25}, none[] = {NAN, NAN};
	nqi_prom_summary_data d = {q, seen, COUNT(q), 12.5, 40};
	assert_int_equal(nqi_prom_family(p, "nq_job_wait_seconds",
	                     NQI_PROM_SUMMARY, "Ready to leased."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_summary(p, "nq_job_wait_seconds", L("queue", "mail"), &d),
	    NQ_OK);
	d.values = none;
	assert_int_equal(
	    nqi_prom_summary(p, "nq_job_wait_seconds", L("queue", "sms"), &d),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_summary(p, "nq_job_wait_seconds", L("queue", "sms"), &d),
	    NQ_EINVAL);
	assert_text(p,
	    "# HELP nq_job_wait_seconds Ready to leased.\n"
	    "# TYPE nq_job_wait_seconds summary\n"
	    "nq_job_wait_seconds{queue=\"mail\",quantile=\"0.5\"} "
	    "0.002\n"
	    "nq_job_wait_seconds{queue=\"mail\",quantile=\"0.99\"} 0.25\n"
	    "nq_job_wait_seconds_sum{queue=\"mail\"} 12.5\n"
	    "nq_job_wait_seconds_count{queue=\"mail\"} 40\n"
	    "nq_job_wait_seconds{queue=\"sms\",quantile=\"0.5\"} NaN\n"
	    "nq_job_wait_seconds{queue=\"sms\",quantile=\"0.99\"} NaN\n"
	    "nq_job_wait_seconds_sum{queue=\"sms\"} 12.5\n"
	    "nq_job_wait_seconds_count{queue=\"sms\"} 40\n");
}

static void test_prom_latency_bounds_print_short(void **st)
{
	nqi_prom *p = *st;
	nqi_prom_hist *h =
	    hist(nqi_prom_latency_bounds_s, NQI_PROM_LATENCY_NBOUNDS);
	assert_int_equal(nqi_prom_family(p, "nq_wait_seconds",
	                     NQI_PROM_HISTOGRAM, "Enqueue to start."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_histogram(p, "nq_wait_seconds", NULL, h), NQ_OK);
	const char *text = nqi_prom_text(p, NULL);
	static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005",
	    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
	    "10", "30", "60", "120", "300", "+Inf"};
	const char *at = text;
	for (size_t i = 0; i < COUNT(les); i++) {
		char want[64];
		snprintf(want, sizeof want,
		    "nq_wait_seconds_bucket{le=\"%s\"} 0\n", les[i]);
		const char *hit = strstr(at, want);
		if (!hit)
			fail_msg(
			    "missing or out of order: %s in\n%s", want, text);
		at = hit + strlen(want);
	}
	nqi_prom_hist_free(h);
}

/* Checks one series of name_bucket lines: le ascending, counts never
 * falling, +Inf last and equal to name_count. Returns the count. */
static uint64_t check_hist_text(const char *text, const char *name)
{
	char prefix[128], count_prefix[128];
	snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", name);
	snprintf(count_prefix, sizeof count_prefix, "%s_count ", name);
	uint64_t last = 0, inf = UINT64_MAX;
	double last_le = -INFINITY;
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (strncmp(l, prefix, strlen(prefix)) == 0) {
			const char *le = l + strlen(prefix);
			double bound = strncmp(le, "+Inf", 4) == 0
			                   ? INFINITY
			                   : strtod(le, NULL);
			uint64_t n = strtoull(strstr(le, "} ") + 2, NULL, 10);
			assert_true(bound > last_le);
			assert_true(n >= last);
			last_le = bound;
			last = n;
			if (isinf(bound))
				inf = n;
		} else if (strncmp(l, count_prefix, strlen(count_prefix)) ==
		           0) {
			uint64_t n =
			    strtoull(l + strlen(count_prefix), NULL, 10);
			assert_true(inf != UINT64_MAX); /* +Inf came first */
			assert_int_equal(n, inf);
			return n;
		}
	}
	fail_msg("no %s_count line in\n%s", name, text);
	return 0;
}

#define OBSERVERS 4
#define OBSERVATIONS 200000

static void *observer(void *arg)
{
	nqi_prom_hist *h = arg;
	for (int i = 0; i < OBSERVATIONS; i++)
		nqi_prom_hist_observe(h, (double)(i % 1000) / 1000.0);
	return NULL;
}

static void test_prom_histogram_concurrent_observe(void **st)
{
	nqi_prom *p = *st;
	nqi_prom_hist *h =
	    hist(nqi_prom_latency_bounds_s, NQI_PROM_LATENCY_NBOUNDS);
	pthread_t t[OBSERVERS];
	for (int i = 0; i < OBSERVERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, observer, h), 0);
	/* Scrape while they observe: every snapshot must be consistent. */
	uint64_t seen = 0;
	for (int round = 0; round < 200; round++) {
		nqi_prom_reset(p);
		assert_int_equal(nqi_prom_family(p, "nq_busy_seconds",
		                     NQI_PROM_HISTOGRAM, "Busy."),
		    NQ_OK);
		assert_int_equal(
		    nqi_prom_histogram(p, "nq_busy_seconds", NULL, h), NQ_OK);
		uint64_t n =
		    check_hist_text(nqi_prom_text(p, NULL), "nq_busy_seconds");
		assert_true(n >= seen);
		seen = n;
	}
	for (int i = 0; i < OBSERVERS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(nqi_prom_hist_count(h), OBSERVERS * OBSERVATIONS);
	/* Each thread adds 0.000 .. 0.999 two hundred times: 99900. */
	double want = OBSERVERS * 200 * 499.5;
	assert_float_equal(nqi_prom_hist_sum(h), want, 1e-6);
	nqi_prom_hist_free(h);
}

/* Observations made aside move into a histogram that already has some,
 * bucket by bucket and with their sum, and the one they came from is
 * empty after; a cleared one is empty too. */
static void test_prom_hist_move_adds_and_clear_forgets(void **st)
{
	static const double bounds[] = {1, 2};
	nqi_prom_hist *to = hist(bounds, COUNT(bounds));
	nqi_prom_hist *from = hist(bounds, COUNT(bounds));
	nqi_prom_hist_observe(to, 0.5);
	nqi_prom_hist_observe(from, 1.5);
	nqi_prom_hist_observe(from, 7);
	nqi_prom_hist_move(to, from);
	assert_int_equal(nqi_prom_hist_count(to), 3);
	assert_true(nqi_prom_hist_sum(to) == 9);
	assert_true(nqi_prom_hist_quantile(to, 1) == 2); /* +Inf bucket */
	assert_int_equal(nqi_prom_hist_count(from), 0);
	assert_true(nqi_prom_hist_sum(from) == 0);
	nqi_prom_hist_move(to, from); /* nothing more */
	assert_int_equal(nqi_prom_hist_count(to), 3);
	nqi_prom_hist_clear(to);
	assert_int_equal(nqi_prom_hist_count(to), 0);
	assert_true(nqi_prom_hist_sum(to) == 0);
	nqi_prom_hist_free(to);
	nqi_prom_hist_free(from);
}

static void test_prom_quantiles_within_bucket(void **st)
{
	static const double bounds[] = {1, 2, 4, 8};
	nqi_prom_hist *h = hist(bounds, COUNT(bounds));
	assert_true(isnan(nqi_prom_hist_quantile(h, 0.5))); /* empty */
	/* 50 in (0,1], 40 in (1,2], 9 in (2,4], 1 in (4,8]. */
	for (int i = 0; i < 50; i++)
		nqi_prom_hist_observe(h, 0.5);
	for (int i = 0; i < 40; i++)
		nqi_prom_hist_observe(h, 1.5);
	for (int i = 0; i < 9; i++)
		nqi_prom_hist_observe(h, 3);
	nqi_prom_hist_observe(h, 6);
	static const struct {
		double q, want, lower, upper;
	} cases[] = {
	    {0.5, 1.0, 0, 1},    /* rank 50: top of bucket 1 */
	    {0.75, 1.625, 1, 2}, /* rank 75: 25 of 40 into (1,2] */
	    {0.9, 2.0, 1, 2},
	    {0.95, 2 + 2 * 5.0 / 9, 2, 4},
	    {0.99, 4.0, 2, 4},
	    {1.0, 8.0, 4, 8},
	    {0.0, 0.0, 0, 1},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		double got = nqi_prom_hist_quantile(h, cases[i].q);
		if (fabs(got - cases[i].want) > 1e-9)
			fail_msg("q%g = %.17g, want %.17g", cases[i].q, got,
			    cases[i].want);
		assert_true(got >= cases[i].lower && got <= cases[i].upper);
	}
	assert_true(isnan(nqi_prom_hist_quantile(h, -0.1)));
	assert_true(isnan(nqi_prom_hist_quantile(h, 1.5)));
	assert_true(isnan(nqi_prom_hist_quantile(h, NAN)));
	/* Ranks past the last bound give the highest finite bound. */
	for (int i = 0; i < 1000; i++)
		nqi_prom_hist_observe(h, 1e6);
	assert_true(nqi_prom_hist_quantile(h, 0.99) == 8.0);
	nqi_prom_hist_free(h);
}

static void test_prom_quantiles_latency_buckets(void **st)
{
	nqi_prom_hist *h =
	    hist(nqi_prom_latency_bounds_s, NQI_PROM_LATENCY_NBOUNDS);
	for (int i = 0; i < 90; i++)
		nqi_prom_hist_observe(h, 0.003); /* (0.0025, 0.005] */
	for (int i = 0; i < 9; i++)
		nqi_prom_hist_observe(h, 0.2); /* (0.1, 0.25] */
	nqi_prom_hist_observe(h, 45);          /* (30, 60] */
	double p50 = nqi_prom_hist_quantile(h, 0.5);
	double p90 = nqi_prom_hist_quantile(h, 0.9);
	double p99 = nqi_prom_hist_quantile(h, 0.99);
	double p999 = nqi_prom_hist_quantile(h, 0.999);
	assert_true(p50 > 0.0025 && p50 <= 0.005);
	assert_true(p90 > 0.0025 && p90 <= 0.005);
	assert_true(p99 > 0.1 && p99 <= 0.25);
	assert_true(p999 > 30 && p999 <= 60);
	nqi_prom_hist_free(h);
}

/* Each refused call must leave the text unchanged and say what was
 * wrong, naming the offending thing. */
static void expect_refused(nqi_prom *p, int rv, const char *names)
{
	assert_int_equal(rv, NQ_EINVAL);
	if (!strstr(nqi_prom_error(p), names))
		fail_msg("error \"%s\" does not mention \"%s\"",
		    nqi_prom_error(p), names);
}

static void test_prom_bad_label_values_refused(void **st)
{
	nqi_prom *p = *st;
	assert_int_equal(
	    nqi_prom_family(p, "nq_depth", NQI_PROM_GAUGE, "Depth."), NQ_OK);
	const char *before = strdup(nqi_prom_text(p, NULL));
	expect_refused(p,
	    nqi_prom_sample(
	        p, "nq_depth", (const char *const[]){"queue", NULL, NULL}, 1),
	    "no value");
	expect_refused(p,
	    nqi_prom_sample(p, "nq_depth", L("queue", "\xc3\x28"), 1), "UTF-8");
	expect_refused(p,
	    nqi_prom_sample(p, "nq_depth", L("queue", "\xed\xa0\x80"), 1),
	    "UTF-8"); /* surrogate */
	expect_refused(p,
	    nqi_prom_sample(p, "nq_depth", L("queue", "\xc0\xaf"), 1),
	    "UTF-8"); /* overlong */
	assert_text(p, before);
	free((void *)before);
}

static void test_prom_duplicate_series_refused(void **st)
{
	nqi_prom *p = *st;
	static const double bounds[] = {1};
	nqi_prom_hist *h = hist(bounds, 1);
	assert_int_equal(
	    nqi_prom_family(p, "nq_depth", NQI_PROM_GAUGE, "Depth."), NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_depth",
	                     L("queue", "a", "state", "ready"), 1),
	    NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_depth",
	                     L("queue", "a", "state", "leased"), 1),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_depth", L("queue", "a"), 1), NQ_OK);
	const char *before = strdup(nqi_prom_text(p, NULL));
	/* The same label set in another order is the same series. */
	expect_refused(p,
	    nqi_prom_sample(
	        p, "nq_depth", L("state", "ready", "queue", "a"), 2),
	    "written twice");
	expect_refused(p, nqi_prom_sample(p, "nq_depth", L("queue", "a"), 2),
	    "written twice");
	assert_text(p, before);
	assert_int_equal(
	    nqi_prom_family(p, "nq_run_seconds", NQI_PROM_HISTOGRAM, "Run."),
	    NQ_OK);
	expect_refused(
	    p, nqi_prom_histogram(p, "nq_run_seconds", NULL, NULL), "no data");
	assert_int_equal(
	    nqi_prom_histogram(p, "nq_run_seconds", NULL, h), NQ_OK);
	expect_refused(p, nqi_prom_histogram(p, "nq_run_seconds", NULL, h),
	    "written twice");
	free((void *)before);
	nqi_prom_hist_free(h);
}

static void test_prom_hist_bad_bounds_refused(void **st)
{
	static const double dup[] = {1, 2, 2};
	static const double down[] = {1, 0.5};
	static const double nan[] = {1, NAN};
	static const double inf[] = {1, INFINITY};
	double many[NQI_PROM_HIST_MAX_BOUNDS + 1];
	static const struct {
		const double *b;
		size_t n;
		const char *says;
	} cases[] = {
	    {dup, 3, "bound 2 (2) is not above bound 1 (2)"},
	    {down, 2, "bound 1 (0.5) is not above"},
	    {nan, 2, "bound 1 (nan) is not finite"},
	    {inf, 2, "bound 1 (inf) is not finite"},
	    {dup, 0, "got 0"},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		nqi_prom_hist *h = (void *)1;
		char err[128] = "";
		assert_int_equal(nqi_prom_hist_alloc(&h, cases[i].b, cases[i].n,
		                     err, sizeof err),
		    NQ_EINVAL);
		assert_ptr_equal(h, (void *)1);
		if (!strstr(err, cases[i].says))
			fail_msg(
			    "error \"%s\", want \"%s\"", err, cases[i].says);
	}
	for (size_t i = 0; i < COUNT(many); i++)
		many[i] = (double)i;
	nqi_prom_hist *h = NULL;
	char err[128] = "";
	assert_int_equal(
	    nqi_prom_hist_alloc(&h, many, COUNT(many), err, sizeof err),
	    NQ_EINVAL);
	assert_non_null(strstr(err, "got 65"));
	assert_int_equal(
	    nqi_prom_hist_alloc(&h, many, COUNT(many) - 1, NULL, 0), NQ_OK);
	nqi_prom_hist_free(h);
}

static void test_prom_reset_starts_over(void **st)
{
	nqi_prom *p = *st;
	assert_int_equal(
	    nqi_prom_family(p, "nq_up", NQI_PROM_GAUGE, "Up."), NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_up", NULL, 1), NQ_OK);
	expect_refused(p, nqi_prom_sample(p, "nq_up", NULL, 1), "twice");
	nqi_prom_reset(p);
	assert_text(p, "");
	assert_string_equal(nqi_prom_error(p), "");
	/* Series are free again after a reset. */
	assert_int_equal(
	    nqi_prom_family(p, "nq_up", NQI_PROM_GAUGE, "Up."), NQ_OK);
	assert_int_equal(nqi_prom_sample(p, "nq_up", NULL, 1), NQ_OK);
	assert_text(p, "# HELP nq_up Up.\n# TYPE nq_up gauge\nnq_up 1\n");
}

/* ---- promtool ---- */

/* Finds an executable on PATH. */
static bool on_path(const char *prog, char *path, size_t pathlen)
{
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof dirs, "%s", env ? env : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, pathlen, "%s/%s", *d ? d : ".", prog);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/* Runs `promtool check metrics` on text; returns its exit status and
 * leaves what it printed in out. */
static int promtool_check(
    const char *promtool, const char *text, char *out, size_t outlen)
{
	char in_path[] = "/tmp/nq-test-prom-XXXXXX", cmd[512];
	int fd = mkstemp(in_path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", promtool,
	    in_path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	int status = pclose(f);
	unlink(in_path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* What a broker scrape looks like: counters and gauges with labels, a
 * labelled histogram and summary, escapes and special values. */
static void realistic_exposition(
    nqi_prom *p, nqi_prom_hist *run, nqi_prom_hist *wait)
{
	static const char *const queues[] = {"mail", "sms", "odd \"q\"\\"};
	assert_int_equal(nqi_prom_family(p, "nq_jobs_enqueued_total",
	                     NQI_PROM_COUNTER, "Jobs accepted by enqueue."),
	    NQ_OK);
	for (size_t i = 0; i < COUNT(queues); i++)
		assert_int_equal(nqi_prom_sample(p, "nq_jobs_enqueued_total",
		                     L("queue", queues[i]), 1000 * (double)i),
		    NQ_OK);
	assert_int_equal(nqi_prom_family(p, "nq_queue_jobs", NQI_PROM_GAUGE,
	                     "Jobs per queue and state.\nOne series each."),
	    NQ_OK);
	for (size_t i = 0; i < COUNT(queues); i++) {
		assert_int_equal(
		    nqi_prom_sample(p, "nq_queue_jobs",
		        L("queue", queues[i], "state", "ready"), 3),
		    NQ_OK);
		assert_int_equal(
		    nqi_prom_sample(p, "nq_queue_jobs",
		        L("queue", queues[i], "state", "leased"), 0.5),
		    NQ_OK);
	}
	assert_int_equal(
	    nqi_prom_family(p, "nq_job_run_seconds", NQI_PROM_HISTOGRAM,
	        "Time handlers ran, by queue."),
	    NQ_OK);
	assert_int_equal(nqi_prom_histogram(
	                     p, "nq_job_run_seconds", L("queue", "mail"), run),
	    NQ_OK);
	assert_int_equal(nqi_prom_histogram(
	                     p, "nq_job_run_seconds", L("queue", "sms"), wait),
	    NQ_OK);
	static const double q[] = {0.5, 0.99}, v[] = {0.004, NAN};
	nqi_prom_summary_data d = {q, v, COUNT(q), 3.25, 17};
	assert_int_equal(nqi_prom_family(p, "nq_job_wait_seconds",
	                     NQI_PROM_SUMMARY, "Ready to leased."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_summary(p, "nq_job_wait_seconds", L("queue", "mail"), &d),
	    NQ_OK);
	assert_int_equal(nqi_prom_family(p, "nq_store_free_ratio",
	                     NQI_PROM_GAUGE, "Free part of the store map."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_store_free_ratio", NULL, NAN), NQ_OK);
	assert_int_equal(
	    nqi_prom_family(p, "nq_lease_deadline_seconds", NQI_PROM_GAUGE,
	        "Seconds to the next lease deadline."),
	    NQ_OK);
	assert_int_equal(
	    nqi_prom_sample(p, "nq_lease_deadline_seconds", NULL, INFINITY),
	    NQ_OK);
}

static void test_prom_promtool_accepts_exposition(void **st)
{
	nqi_prom *p = *st;
	char promtool[1024], out[4096];
	if (!on_path("promtool", promtool, sizeof promtool))
		fail_msg(
		    "promtool is not on PATH: install Debian's "
		    "`prometheus` package (apt-get install prometheus), which "
		    "ships it");
	nqi_prom_hist *run =
	    hist(nqi_prom_latency_bounds_s, NQI_PROM_LATENCY_NBOUNDS);
	nqi_prom_hist *wait =
	    hist(nqi_prom_latency_bounds_s, NQI_PROM_LATENCY_NBOUNDS);
	for (int i = 0; i < 1000; i++) {
		nqi_prom_hist_observe(run, i / 100.0);
		nqi_prom_hist_observe(wait, i * 0.37);
	}
	realistic_exposition(p, run, wait);
	int rc =
	    promtool_check(promtool, nqi_prom_text(p, NULL), out, sizeof out);
	if (rc != 0)
		fail_msg("promtool check metrics exited %d:\n%s\non:\n%s", rc,
		    out, nqi_prom_text(p, NULL));
	/* The check can fail: the label value the builder escaped, raw. */
	rc = promtool_check(promtool,
	    "# HELP x_jobs X.\n# TYPE x_jobs gauge\n"
	    "x_jobs{queue=\"a\nb\"} 1\n",
	    out, sizeof out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "new-line"));
	nqi_prom_hist_free(run);
	nqi_prom_hist_free(wait);
}

/* An argument runs only the tests whose names match it (cmocka pattern). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_prom_counter_output),
	    T(test_prom_gauge_escapes_labels),
	    T(test_prom_values_print_exactly),
	    T(test_prom_histogram_buckets_cumulative),
	    T(test_prom_summary_output),
	    T(test_prom_latency_bounds_print_short),
	    T(test_prom_histogram_concurrent_observe),
	    T(test_prom_hist_move_adds_and_clear_forgets),
	    T(test_prom_quantiles_within_bucket),
	    T(test_prom_quantiles_latency_buckets),
	    T(test_prom_bad_label_values_refused),
	    T(test_prom_duplicate_series_refused),
	    T(test_prom_hist_bad_bounds_refused),
	    T(test_prom_reset_starts_over),
	    T(test_prom_promtool_accepts_exposition),
#undef T
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
