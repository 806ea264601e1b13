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
#include "nqi/policy.h"

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

static const char good[] =
    "queues:\n"
    "  reports: { max_attempts: 3 }\n"
    "schedules:\n"
    "  nightly:\n"
    "    cron: \"0 30 2 * * *\"\n"
    "    zone: Europe/Berlin\n"
    "    queue: reports\n"
    "    type: nightly\n"
    "    payload: '{\"kind\": \"daily\", \"n\": 1}'\n"
    "    priority: 5\n"
    "    max_attempts: 2\n"
    "    timeout: 10m\n"
    "    missed: once\n"
    "  tick: { cron: \"* * * * *\", queue: q, type: t }\n";

static void test_cron_schedules_load_from_the_queues_file(void **state)
{
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	(void)state;
	assert_int_equal(
	    nqi_policy_text_load("q.yaml", good, strlen(good), &f, &e), 0);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->nschedules, 2);
	const nqi_schedule *s = &f->schedules[0];
	assert_string_equal(s->name, "nightly");
	assert_string_equal(s->cron, "0 30 2 * * *");
	assert_string_equal(s->zone, "Europe/Berlin");
	assert_string_equal(s->queue, "reports");
	assert_int_equal(s->priority, 5);
	assert_int_equal(s->max_attempts, 2);
	assert_int_equal(s->timeout_ms, 600000);
	assert_int_equal(s->missed, NQI_CRON_MISSED_ONCE);
	assert_int_equal(s->line, 4);
	assert_true(s->payload_len > 0 && s->payload[0] == 0x82); /* map 2 */
	assert_string_equal(f->schedules[1].zone, "UTC");
	assert_int_equal(f->schedules[1].missed, NQI_CRON_MISSED_SKIP);
	nqi_policy_file_free(f);
}

static void rejected(const char *text, unsigned line, const char *says)
{
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	char msg[600];
	assert_int_equal(
	    nqi_policy_text_load("q.yaml", text, strlen(text), &f, &e),
	    NQ_EINVAL);
	nqi_policy_error_text("q.yaml", &e, msg, sizeof msg);
	if (!strstr(msg, says) || e.line != line)
		fail_msg("'%s' (line %u) does not say '%s' at line %u", msg,
		    e.line, says, line);
}

static void test_cron_bad_schedules_are_refused_by_name(void **state)
{
	(void)state;
	rejected("schedules:\n  a: { cron: \"* * *\", queue: q, type: t }\n", 2,
	    "q.yaml:2: schedules.a: cron expression: has 5 fields");
	rejected("schedules:\n  b:\n    cron: \"61 * * * *\"\n"
	         "    queue: q\n    type: t\n",
	    2,
	    "schedules.b: cron expression: minute field: 61 is out of range");
	rejected("schedules:\n  c: { cron: \"@daily\", zone: Mars/Base, "
	         "queue: q, type: t }\n",
	    2, "schedules.c: zone: unknown time zone 'Mars/Base'");
	rejected("schedules:\n  d: { cron: \"@daily\", queue: q }\n", 2,
	    "schedules.d: has no type");
	rejected("schedules:\n  e: { cron: \"@daily\", queue: q, type: t,\n"
	         "       missed: twice }\n",
	    3, "schedules.e.missed: must be skip or once");
	rejected("schedules:\n  f: { cron: \"@daily\", queue: q, type: t,\n"
	         "       payload: '{nope' }\n",
	    3, "schedules.f.payload: is not JSON");
	rejected("schedules:\n  g: { cron: \"@daily\", queue: q, type: t, "
	         "colour: red }\n",
	    2, "schedules.g.colour: not a schedule key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cron_refuses_with_the_field_and_fault),
	    cmocka_unit_test(test_cron_zone_unknown_is_refused),
	    cmocka_unit_test(test_cron_gap_fires_once_after_it),
	    cmocka_unit_test(test_cron_overlap_fires_once),
	    cmocka_unit_test(test_cron_day_fields_or_when_both_restrict),
	    cmocka_unit_test(test_cron_schedules_load_from_the_queues_file),
	    cmocka_unit_test(test_cron_bad_schedules_are_refused_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
