/* Lat: the recent latencies' log-linear buckets (contiguous, each within a
 * quarter of its values), their quantiles, and the window that forgets
 * what is older than 60 s while the totals keep everything. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nqi/lat.h"

#define HALF NQI_LAT_HALF_US

/* Every value falls in the bucket whose range holds it, the ranges follow
 * each other without a gap, and a bucket is at most a quarter of its low
 * bound wide (from 4 us on). */
static void test_lat_buckets_cover_every_value(void **st)
{
	(void)st;
	for (uint32_t i = 0; i + 1 < NQI_LAT_BUCKETS; i++) {
		uint64_t lo = nqi_lat_bucket_low(i),
		         hi = nqi_lat_bucket_low(i + 1);
		assert_true(hi > lo);
		assert_int_equal(nqi_lat_bucket(lo), i);
		assert_int_equal(nqi_lat_bucket(hi - 1), i);
		if (lo >= 4)
			assert_true((hi - lo) * 4 <= lo);
	}
	assert_int_equal(nqi_lat_bucket(UINT64_MAX), NQI_LAT_BUCKETS - 1);
}

/* Quantiles of a known spread come out within a quarter of the truth. */
static void test_lat_quantiles_are_within_a_bucket(void **st)
{
	(void)st;
	nqi_lat h;
	memset(&h, 0, sizeof h);
	assert_int_equal(nqi_lat_quantile_us(&h, 0.5), 0);
	for (uint64_t v = 1; v <= 100000; v++)
		nqi_lat_observe(&h, v * 10); /* 10 us .. 1 s, evenly */
	uint64_t p50 = nqi_lat_quantile_us(&h, 0.5);
	uint64_t p99 = nqi_lat_quantile_us(&h, 0.99);
	assert_true(p50 >= 500000 * 3 / 4 && p50 <= 500000 * 5 / 4);
	assert_true(p99 >= 990000 * 3 / 4 && p99 <= 990000 * 5 / 4);
	assert_int_equal(nqi_lat_recent(&h), 100000);
	assert_int_equal(h.count, 100000);
	assert_int_equal(h.sum_us, 10 * (100000ull * 100001 / 2));
}

/* A half ends after 30 s: what came before the previous half is dropped,
 * an idle minute drops everything, and the totals stay. */
static void test_lat_window_forgets_old_jobs(void **st)
{
	(void)st;
	nqi_lat h;
	memset(&h, 0, sizeof h);
	uint64_t t = 1000000;
	nqi_lat_tick(&h, t);
	nqi_lat_observe(&h, 1000);
	nqi_lat_tick(&h, t + HALF - 1);
	assert_int_equal(nqi_lat_recent(&h), 1);
	nqi_lat_tick(&h, t + HALF); /* a new half; the old one still counts */
	nqi_lat_observe(&h, 2000);
	assert_int_equal(nqi_lat_recent(&h), 2);
	nqi_lat_tick(&h, t + 2 * HALF); /* the first half goes */
	assert_int_equal(nqi_lat_recent(&h), 1);
	assert_true(nqi_lat_quantile_us(&h, 0.5) >= 1500);
	nqi_lat_tick(&h, t + 5 * HALF); /* idle for a whole window */
	assert_int_equal(nqi_lat_recent(&h), 0);
	assert_int_equal(h.count, 2);
	assert_int_equal(h.sum_us, 3000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lat_buckets_cover_every_value),
	    cmocka_unit_test(test_lat_quantiles_are_within_a_bucket),
	    cmocka_unit_test(test_lat_window_forgets_old_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
