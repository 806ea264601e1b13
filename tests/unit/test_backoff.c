/* Backoff: full jitter under a ceiling that doubles per attempt up to the
 * cap, with no overflow for any input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "nqi/backoff.h"

#define BASE_MS 1000ull
#define CAP_MS 3600000ull

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void test_backoff_first_retry_ceiling_is_base(void **st)
{
	assert_int_equal(nqi_backoff_ceiling_ms(1, BASE_MS, CAP_MS), BASE_MS);
	/* attempt 0 is not a retry; it must not go below nothing or above base
	 */
	assert_true(nqi_backoff_ceiling_ms(0, BASE_MS, CAP_MS) <= BASE_MS);
}

static void test_backoff_ceiling_doubles_until_cap(void **st)
{
	uint64_t want = BASE_MS;
	for (uint32_t a = 1; a <= 64; a++) {
		uint64_t got = nqi_backoff_ceiling_ms(a, BASE_MS, CAP_MS);
		assert_int_equal(got, want < CAP_MS ? want : CAP_MS);
		if (want < CAP_MS)
			want *= 2;
	}
	/* 1 s doubling reaches the 1 h cap at attempt 13 (4096 s > 3600 s) */
	assert_int_equal(nqi_backoff_ceiling_ms(12, BASE_MS, CAP_MS), 2048000);
	assert_int_equal(nqi_backoff_ceiling_ms(13, BASE_MS, CAP_MS), CAP_MS);
}

static void test_backoff_ceiling_never_decreases(void **st)
{
	uint64_t prev = 0;
	for (uint32_t a = 1; a <= 2000; a++) {
		uint64_t c = nqi_backoff_ceiling_ms(a, 7, 1000003);
		assert_true(c >= prev);
		assert_true(c <= 1000003);
		prev = c;
	}
	assert_int_equal(prev, 1000003);
}

static void test_backoff_delay_stays_within_ceiling(void **st)
{
	uint64_t seed = 42;
	for (int i = 0; i < 100000; i++) {
		uint32_t attempt = 1 + (uint32_t)(rng_next(&seed) % 40);
		uint64_t rnd = rng_next(&seed);
		uint64_t c = nqi_backoff_ceiling_ms(attempt, BASE_MS, CAP_MS);
		uint64_t d = nqi_backoff_ms(attempt, BASE_MS, CAP_MS, rnd);
		assert_true(d <= c);
	}
	/* the extremes of the random input stay in range too */
	assert_int_equal(nqi_backoff_ms(1, BASE_MS, CAP_MS, 0), 0);
	assert_true(nqi_backoff_ms(1, BASE_MS, CAP_MS, UINT64_MAX) <= BASE_MS);
	assert_true(nqi_backoff_ms(30, BASE_MS, CAP_MS, UINT64_MAX) <= CAP_MS);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_backoff_draws_spread_over_the_range(void **st)
{
	enum { N = 4000 };
	uint64_t seed = 7, d[N];
	for (int i = 0; i < N; i++)
		d[i] = nqi_backoff_ms(10, BASE_MS, CAP_MS, rng_next(&seed));
	qsort(d, N, sizeof *d, cmp_u64);
	size_t distinct = 1;
	for (int i = 1; i < N; i++)
		distinct += d[i] != d[i - 1];
	/* full jitter: ceiling 512 s, so nearly every draw differs */
	assert_true(distinct > N * 9 / 10);
	/* both halves of [0, ceiling] are used, not a fixed delay */
	assert_true(d[N / 10] < 512000 / 4);
	assert_true(d[N * 9 / 10] > 512000 * 3 / 4);
}

static void test_backoff_no_overflow_at_huge_inputs(void **st)
{
	assert_int_equal(nqi_backoff_ceiling_ms(1000, BASE_MS, CAP_MS), CAP_MS);
	assert_int_equal(
	    nqi_backoff_ceiling_ms(UINT32_MAX, BASE_MS, CAP_MS), CAP_MS);
	assert_int_equal(
	    nqi_backoff_ceiling_ms(1000, UINT64_MAX / 3, UINT64_MAX),
	    UINT64_MAX);
	assert_int_equal(nqi_backoff_ceiling_ms(64, 1, UINT64_MAX), 1ull << 63);
	assert_int_equal(nqi_backoff_ceiling_ms(65, 1, UINT64_MAX), UINT64_MAX);
	assert_int_equal(
	    nqi_backoff_ceiling_ms(1, UINT64_MAX, UINT64_MAX), UINT64_MAX);
	/* a base above the cap is held to the cap */
	assert_int_equal(nqi_backoff_ceiling_ms(1, 5000, 1000), 1000);
	assert_true(
	    nqi_backoff_ms(1000, UINT64_MAX, UINT64_MAX, 12345) == 12345);
	assert_true(
	    nqi_backoff_ms(1000, BASE_MS, CAP_MS, UINT64_MAX) <= CAP_MS);
}

static void test_backoff_zero_base_means_no_delay(void **st)
{
	assert_int_equal(nqi_backoff_ceiling_ms(5, 0, CAP_MS), 0);
	assert_int_equal(nqi_backoff_ms(5, 0, CAP_MS, 999), 0);
	assert_int_equal(nqi_backoff_ms(5, BASE_MS, 0, 999), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_first_retry_ceiling_is_base),
	    cmocka_unit_test(test_backoff_ceiling_doubles_until_cap),
	    cmocka_unit_test(test_backoff_ceiling_never_decreases),
	    cmocka_unit_test(test_backoff_delay_stays_within_ceiling),
	    cmocka_unit_test(test_backoff_draws_spread_over_the_range),
	    cmocka_unit_test(test_backoff_no_overflow_at_huge_inputs),
	    cmocka_unit_test(test_backoff_zero_base_means_no_delay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
