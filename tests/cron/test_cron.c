/* Cron expressions: what the parser refuses and why, and the ticks at the
 * DST transitions of Europe/Berlin and America/New_York (a local time in
 * the gap fires once at the first valid instant after it, one in the
 * overlap once, at its first occurrence). cron_diff.py checks many more
 * ticks against croniter. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nq/nq.h"
#include "nqi/cron.h"

/* Seconds since the epoch of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
	    .tm_mon = mo - 1,
	    .tm_mday = d,
	    .tm_hour = h,
	    .tm_min = mi,
	    .tm_sec = s};
	return (int64_t)timegm(&tm);
}

static int64_t next(const char *expr, const char *zone, int64_t after)
{
	char why[256];
	nqi_cron c;
	nqi_cron_zone *z;
	int64_t t = -1;
	assert_int_equal(nqi_cron_parse(expr, &c, why, sizeof why), 0);
	assert_int_equal(nqi_cron_zone_open(zone, &z, why, sizeof why), 0);
	assert_int_equal(nqi_cron_next(&c, z, after, &t), 0);
	nqi_cron_zone_close(z);
	return t;
}

static void refused(const char *expr, const char *says)
{
	char why[256] = "";
	nqi_cron c;
	assert_int_equal(nqi_cron_parse(expr, &c, why, sizeof why), NQ_EINVAL);
	if (!strstr(why, says))
		fail_msg("'%s': '%s' does not say '%s'", expr, why, says);
}

static void test_cron_refuses_with_the_field_and_fault(void **state)
{
	(void)state;
	refused("* * * *", "5 fields");
	refused("60 * * * *", "minute field: 60 is out of range 0-59");
	refused("* * 32 * *", "day of month field: 32 is out of range");
	refused("* * * foo *", "month field: 'foo' is not a value");
	refused("*/0 * * * *", "minute field: step");
	refused("5-2 * * * *", "range 5-2 runs backwards");
	refused("0 0 30 2 *", "no date matches");
	refused("61 * * * * *", "seconds field");
}

static void test_cron_zone_unknown_is_refused(void **state)
{
	char why[256];
	nqi_cron_zone *z;
	(void)state;
	assert_int_equal(
	    nqi_cron_zone_open("Mars/Olympus", &z, why, sizeof why), NQ_EINVAL);
	assert_non_null(strstr(why, "unknown time zone 'Mars/Olympus'"));
}

static void test_cron_gap_fires_once_after_it(void **state)
{
	(void)state;
	/* Berlin 2024-03-31: 02:00 CET becomes 03:00 CEST (01:00 UTC). */
	int64_t t =
	    next("30 2 * * *", "Europe/Berlin", utc(2024, 3, 30, 12, 0, 0));
	assert_int_equal(t, utc(2024, 3, 31, 1, 0, 0));
	assert_int_equal(
	    next("30 2 * * *", "Europe/Berlin", t), utc(2024, 4, 1, 0, 30, 0));
	/* Every 10 minutes: the gap's six times fire once, at 03:00. */
	t = next("*/10 * * * *", "Europe/Berlin", utc(2024, 3, 31, 0, 55, 0));
	assert_int_equal(t, utc(2024, 3, 31, 1, 0, 0));
	assert_int_equal(next("*/10 * * * *", "Europe/Berlin", t),
	    utc(2024, 3, 31, 1, 10, 0));
	/* New York 2024-03-10: 02:00 EST becomes 03:00 EDT (07:00 UTC). */
	assert_int_equal(
	    next("0 30 2 * * *", "America/New_York", utc(2024, 3, 10, 0, 0, 0)),
	    utc(2024, 3, 10, 7, 0, 0));
}

static void test_cron_overlap_fires_once(void **state)
{
	(void)state;
	/* Berlin 2024-10-27: 03:00 CEST becomes 02:00 CET (01:00 UTC). */
	int64_t t =
	    next("30 2 * * *", "Europe/Berlin", utc(2024, 10, 26, 12, 0, 0));
	assert_int_equal(t, utc(2024, 10, 27, 0, 30, 0));
	assert_int_equal(next("30 2 * * *", "Europe/Berlin", t),
	    utc(2024, 10, 28, 1, 30, 0));
	/* New York 2024-11-03: 02:00 EDT becomes 01:00 EST (06:00 UTC). */
	t = next(
	    "*/15 1 * * *", "America/New_York", utc(2024, 11, 3, 5, 50, 0));
	assert_int_equal(t, utc(2024, 11, 4, 6, 0, 0));
	/* From inside the second pass: its times already fired. */
	assert_int_equal(next("*/15 * * * *", "America/New_York",
	                     utc(2024, 11, 3, 6, 20, 0)),
	    utc(2024, 11, 3, 7, 0, 0));
	assert_int_equal(
	    next("* * * * * *", "America/New_York", utc(2024, 11, 3, 6, 20, 0)),
	    utc(2024, 11, 3, 7, 0, 0));
}

static void test_cron_day_fields_or_when_both_restrict(void **state)
{
	(void)state;
	/* 2024-06-01 is a Saturday: "13 or a Friday" and "Fridays only". */
	assert_int_equal(next("0 0 13 * fri", "UTC", utc(2024, 6, 1, 0, 0, 0)),
	    utc(2024, 6, 7, 0, 0, 0));
	assert_int_equal(next("0 0 * * 5", "UTC", utc(2024, 6, 1, 0, 0, 0)),
	    utc(2024, 6, 7, 0, 0, 0));
	assert_int_equal(next("0 0 ? * 7", "UTC", utc(2024, 6, 1, 0, 0, 0)),
	    utc(2024, 6, 2, 0, 0, 0));
	assert_int_equal(next("@yearly", "UTC", utc(2024, 6, 1, 0, 0, 0)),
	    utc(2025, 1, 1, 0, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cron_refuses_with_the_field_and_fault),
	    cmocka_unit_test(test_cron_zone_unknown_is_refused),
	    cmocka_unit_test(test_cron_gap_fires_once_after_it),
	    cmocka_unit_test(test_cron_overlap_fires_once),
	    cmocka_unit_test(test_cron_day_fields_or_when_both_restrict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
