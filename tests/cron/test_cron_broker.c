/*
 * Cron schedules with the real broker and nqctl: a per-second schedule
 * enqueues each tick once across two SIGKILLs, missed: skip and once after
 * an outage, the DST gap and overlap of Europe/Berlin and America/New_York
 * (through the broker's test clock, NQ_TEST_CRON_CLOCK, which starts at a
 * given instant and runs fast), and a bad expression or zone refused at
 * start and on SIGHUP. Each job's run_at is its tick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define TICKS_MAX 4096

/* The ticks (run_at, in seconds) of every job of queue, taken by leasing
 * them all; sorted. */
static size_t ticks_of(itest_env *e, const char *queue, int64_t *out)
{
	nq_client *c;
	size_t n = 0;
	const char *qs[] = {queue};
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (;;) {
		nq_job **jobs = NULL;
		size_t got = 0;
		assert_int_equal(
		    nq_fetch(c, "t", qs, 1, 256, 200, 60000, &jobs, &got), 0);
		for (size_t i = 0; i < got && n < TICKS_MAX; i++)
			out[n++] =
			    (int64_t)(nq_job_run_at_us(jobs[i]) / 1000000);
		nq_jobs_free(jobs, got);
		if (!got)
			break;
	}
	nq_client_close(c);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int64_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static void write_queues(itest_env *e, const char *text, char *path)
{
	assert_int_equal(
	    itest_write_file(e, "queues.yaml", text, path, PATH_MAX), 0);
}

static void start(itest_env *e, const char *path, const char *clock)
{
	char env[128];
	const char *flags[] = {"--queues-config", path, NULL};
	const char *extra[] = {env, NULL};
	snprintf(env, sizeof env, "NQ_TEST_CRON_CLOCK=%s", clock ? clock : "");
	assert_int_equal(itest_broker_spawn(e, flags, extra), 0);
	assert_int_equal(itest_broker_wait_ready(e, 20000), 0);
}

static int64_t now_s(void)
{
	return (int64_t)(itest_wall_us() / 1000000);
}

static void test_cron_each_tick_once_across_sigkills(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	int64_t ticks[TICKS_MAX], before = now_s(), t0, t1;
	write_queues(e,
	    "schedules:\n"
	    "  sec: { cron: \"* * * * * *\", queue: q, type: t, "
	    "missed: once }\n",
	    path);
	start(e, path, NULL);
	t0 = now_s();
	for (int k = 0; k < 2; k++) {
		itest_sleep_ms(9000);
		assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
		start(e, path, NULL);
	}
	itest_sleep_ms(9000);
	t1 = now_s();
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	start(e, path, NULL);
	size_t n = ticks_of(e, "q", ticks);
	/* Never two jobs for one tick; each second has its job but around
	 * the kills, where missed: once stands one job for the outage. */
	for (size_t i = 1; i < n; i++) {
		if (ticks[i] == ticks[i - 1])
			fail_msg(
			    "tick %lld enqueued twice", (long long)ticks[i]);
		if (ticks[i] - ticks[i - 1] > 5)
			fail_msg("no job from %lld to %lld",
			    (long long)ticks[i - 1], (long long)ticks[i]);
	}
	assert_true(n >= (size_t)(t1 - t0) - 2 * 5);
	/* The first tick is the first after the broker read the file. */
	assert_true(ticks[0] > before && ticks[0] <= t0 + 2);
	itest_pass(e);
}

static size_t count_in(const int64_t *t, size_t n, int64_t lo, int64_t hi)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += t[i] >= lo && t[i] <= hi;
	return k;
}

static void test_cron_missed_skip_and_once_after_an_outage(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	int64_t ts[TICKS_MAX], to[TICKS_MAX];
	write_queues(e,
	    "schedules:\n"
	    "  s: { cron: \"* * * * * *\", queue: qs, type: t, missed: skip }\n"
	    "  o: { cron: \"* * * * * *\", queue: qo, type: t, missed: once "
	    "}\n",
	    path);
	start(e, path, NULL);
	itest_sleep_ms(2500);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	int64_t down = now_s();
	itest_sleep_ms(5000);
	int64_t up = now_s();
	start(e, path, NULL);
	itest_sleep_ms(2000);
	size_t ns = ticks_of(e, "qs", ts), no = ticks_of(e, "qo", to);
	assert_true(ns >= 3 && no >= 3);
	/* The outage's ticks: none with skip, one with once (before the
	 * first tick after the start, which both schedules share). */
	assert_int_equal(count_in(ts, ns, down + 1, up - 1), 0);
	int64_t first = INT64_MAX;
	for (size_t i = 0; i < ns; i++)
		if (ts[i] > down && ts[i] < first)
			first = ts[i];
	assert_int_equal(count_in(to, no, down + 1, first - 1), 1);
	itest_pass(e);
}

/* Runs the schedules from the instant start_s for three and a half hours
 * of the test clock (3.5 s; the ticks checked lie in the first 2.5), then
 * stops the broker. */
static void run_clock(itest_env *e, const char *path, int64_t start_s)
{
	char clock[48];
	snprintf(clock, sizeof clock, "%lldx3600", (long long)start_s);
	start(e, path, clock);
	itest_sleep_ms(3500);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	start(e, path, "1000000000"); /* to read the jobs: 2001, no ticks */
}

/* The ticks of queue from want[0] - 1h to until are want. */
static void expect_ticks(itest_env *e, const char *queue, const int64_t *want,
    size_t nwant, int64_t until)
{
	int64_t got[TICKS_MAX];
	size_t n = ticks_of(e, queue, got), k = 0;
	for (size_t i = 0; i < n && got[i] <= until; i++) {
		if (got[i] < want[0] - 3600)
			continue;
		if (k >= nwant || got[i] != want[k++])
			fail_msg("%s: tick %zu is %lld, not %lld", queue, k,
			    (long long)got[i],
			    k <= nwant ? (long long)want[k - 1] : -1LL);
	}
	if (k != nwant)
		fail_msg("%s: %zu ticks before %lld, not %zu", queue, k,
		    (long long)until, nwant);
}

#define Q (15 * 60)

static const char dst_queues[] =
    "schedules:\n"
    "  be-daily: { cron: \"30 2 * * *\", zone: Europe/Berlin, queue: bd, "
    "type: t }\n"
    "  be-15: { cron: \"*/15 * * * *\", zone: Europe/Berlin, queue: b15, "
    "type: t }\n"
    "  ny-daily: { cron: \"0 30 1,2 * * *\", zone: America/New_York, "
    "queue: nd, type: t }\n"
    "  ny-15: { cron: \"*/15 * * * *\", zone: America/New_York, queue: "
    "n15, type: t }\n";

static void test_cron_dst_gap_runs_once_after_it(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	write_queues(e, dst_queues, path);
	/* Berlin 2024-03-31 01:00 UTC: 02:00 CET becomes 03:00 CEST. */
	const int64_t be = 1711846800;
	run_clock(e, path, be - 3600);
	const int64_t bd[] = {be};
	const int64_t b15[] = {
	    be - 3 * Q, be - 2 * Q, be - Q, be, be + Q, be + 2 * Q, be + 3 * Q};
	expect_ticks(e, "bd", bd, 1, be + 3599);
	expect_ticks(e, "b15", b15, 7, be + 3 * Q);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	/* New York 2024-03-10 07:00 UTC: 02:00 EST becomes 03:00 EDT; the
	 * 01:30 tick is the hour before, the 02:30 one falls in the gap. */
	const int64_t ny = 1710054000;
	run_clock(e, path, ny - 3600);
	const int64_t nd[] = {ny - 1800, ny};
	const int64_t n15[] = {
	    ny - 3 * Q, ny - 2 * Q, ny - Q, ny, ny + Q, ny + 2 * Q, ny + 3 * Q};
	expect_ticks(e, "nd", nd, 2, ny + 3599);
	expect_ticks(e, "n15", n15, 7, ny + 3 * Q);
	itest_pass(e);
}

static void test_cron_dst_overlap_runs_once(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX];
	write_queues(e, dst_queues, path);
	/* Berlin 2024-10-27 01:00 UTC: 03:00 CEST becomes 02:00 CET, and
	 * 02:00-02:59 come again; they ran the first time. */
	const int64_t be = 1729990800;
	run_clock(e, path, be - 3600);
	const int64_t bd[] = {be - 1800};
	const int64_t b15[] = {be - 3 * Q, be - 2 * Q, be - Q, be + 3600};
	expect_ticks(e, "bd", bd, 1, be + 3599);
	expect_ticks(e, "b15", b15, 4, be + 3600);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	/* New York 2024-11-03 06:00 UTC: 02:00 EDT becomes 01:00 EST. */
	const int64_t ny = 1730613600;
	run_clock(e, path, ny - 3600);
	const int64_t nd[] = {ny - 1800, ny + 5400};
	const int64_t n15[] = {ny - 3 * Q, ny - 2 * Q, ny - Q, ny + 3600};
	expect_ticks(e, "nd", nd, 2, ny + 5400);
	expect_ticks(e, "n15", n15, 4, ny + 3600);
	itest_pass(e);
}

static void test_cron_bad_schedule_is_refused(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], good[PATH_MAX];
	itest_run r;
	write_queues(e,
	    "schedules:\n"
	    "  nightly: { cron: \"0 61 2 * * *\", queue: q, type: t }\n",
	    path);
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_not_equal(itest_broker_spawn(e, flags, NULL), 0);
	const itest_proc *p = &e->procs[e->nprocs - 1];
	assert_true(
	    p->exited && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 2);
	write_queues(e,
	    "schedules:\n"
	    "  nightly: { cron: \"@daily\", queue: q, type: t }\n",
	    good);
	start(e, good, NULL);
	/* A reload with an unknown zone keeps the schedules as they were. */
	write_queues(e,
	    "schedules:\n"
	    "  other: { cron: \"@daily\", zone: Mars/Base, queue: q, "
	    "type: t }\n",
	    path);
	assert_int_equal(itest_signal(e->broker, SIGHUP), 0);
	assert_int_equal(
	    itest_wait_log(e->broker, "NQ-CONFIG-REJECTED", 1, 10000), 0);
	assert_int_equal(itest_wait_log(e->broker, "Mars/Base", 1, 1000), 0);
	assert_int_equal(itest_nqctl(e, 10000, &r, "cron", "list", NULL), 0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "nightly"));
	assert_null(strstr(r.out, "other"));
	itest_run_free(&r);
	/* A good one adds its schedules; those it keeps go on. */
	write_queues(e,
	    "schedules:\n"
	    "  nightly: { cron: \"@daily\", queue: q, type: t }\n"
	    "  added: { cron: \"@hourly\", zone: Asia/Kolkata, queue: q, "
	    "type: t }\n",
	    good);
	assert_int_equal(itest_signal(e->broker, SIGHUP), 0);
	assert_int_equal(
	    itest_wait_log(e->broker, "NQ-CONFIG-RELOADED", 1, 10000), 0);
	assert_int_equal(itest_nqctl(e, 10000, &r, "cron", "list", NULL), 0);
	assert_non_null(strstr(r.out, "nightly"));
	assert_non_null(strstr(r.out, "Asia/Kolkata"));
	itest_run_free(&r);
	/* trigger: one job now; an unknown name is NOT_FOUND (exit 1). */
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "cron", "trigger", "nightly", NULL), 0);
	assert_int_equal(r.code, 0);
	char id[NQ_ID_MAX];
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "cron", "list", "--json", NULL), 0);
	assert_non_null(strstr(r.out, id));
	assert_non_null(strstr(r.out, "\"last_job_state\":\"ready\""));
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "--json", "get", id, NULL), 0);
	assert_non_null(strstr(r.out, "\"schedule\":\"nightly\""));
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "cron", "trigger", "nope", NULL), 0);
	assert_int_not_equal(r.code, 0);
	assert_non_null(strstr(r.err, "no schedule named 'nope'"));
	itest_run_free(&r);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_cron_each_tick_once_across_sigkills, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cron_missed_skip_and_once_after_an_outage, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cron_dst_gap_runs_once_after_it, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cron_dst_overlap_runs_once, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cron_bad_schedule_is_refused, itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
