/*
 * The whole life of a job that fails once and then succeeds, as a
 * subscriber sees it through `nqctl events`: enqueued, leased, failed,
 * retrying, leased, succeeded, in that order, with increasing sequence
 * numbers, the attempt of each step, the worker and the error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs.h"

static const char *const broker_flags[] = {"--backoff-base", "100ms",
    "--backoff-cap", "200ms", "--lease-check", "100ms", NULL};

/* A worker on the queue whose handler fails its first attempt (stderr
 * "first attempt fails") and succeeds after. */
static void start_flaky_worker(itest_env *e, const char *queue)
{
	char script[PATH_MAX], handler[PATH_MAX + 16], http[64];
	itest_proc *w;
	assert_int_equal(itest_write_script(e, "flaky",
	                     "if [ \"$NQ_ATTEMPT\" = 1 ]; then\n"
	                     "  echo 'first attempt fails' >&2; exit 1\n"
	                     "fi\necho done\n",
	                     script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "*=%s", script);
	assert_int_equal(obs_free_addr(http, sizeof http), 0);
	const char *flags[] = {"--queues", queue, "--handler", handler, NULL};
	assert_int_equal(obs_worker_start(e, http, flags, &w), 0);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* True when s looks like "2026-11-27T22:00:00.123456Z". */
static bool rfc3339_us(const char *s)
{
	struct tm tm;
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	return rest && rest[0] == '.' && strlen(rest) == 8 && rest[7] == 'Z';
}

static void test_events_job_that_fails_once_then_succeeds_in_order(void **state)
{
	static const char *const want[] = {
	    "enqueued", "leased", "failed", "retrying", "leased", "succeeded"};
	static const unsigned attempts[] = {0, 1, 1, 1, 2, 2};
	itest_env *e = *state;
	itest_proc *sub;
	nq_client *c;
	char id[NQ_ID_MAX];

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(obs_events_start(e, NULL, NULL, &sub), 0);
	assert_int_equal(obs_events_warmup(e, sub), 0);
	start_flaky_worker(e, "seq");

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "seq", "flaky", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	assert_int_equal(obs_events_wait(sub, id, "succeeded", 10000), 0);
	assert_int_equal(obs_stop(sub), 0);

	json_t *all = obs_events_read(sub->log);
	json_t *mine = obs_events_of(all, id);
	assert_int_equal(json_array_size(mine), 6);
	long long last_seq = 0;
	for (size_t i = 0; i < 6; i++) {
		const json_t *ev = json_array_get(mine, i);
		assert_string_equal(str(ev, "kind"), want[i]);
		assert_true(num(ev, "seq") > last_seq);
		last_seq = num(ev, "seq");
		assert_true(num(ev, "topic_seq") >= 1);
		assert_int_equal(num(ev, "attempt"), attempts[i]);
		assert_string_equal(str(ev, "queue"), "seq");
		assert_string_equal(str(ev, "type"), "flaky");
		char topic[64];
		snprintf(topic, sizeof topic, "job.%s.seq", want[i]);
		assert_string_equal(str(ev, "topic"), topic);
		assert_true(rfc3339_us(str(ev, "at")));
		assert_true(json_is_null(json_object_get(ev, "traceparent")));
	}
	/* The lease names the worker; the failure carries its reason. */
	assert_true(*str(json_array_get(mine, 1), "worker_id"));
	assert_non_null(strstr(
	    str(json_array_get(mine, 2), "error"), "first attempt fails"));
	/* Nothing was missed on a subscriber that keeps up. */
	assert_false(obs_file_has(sub->log, "missed"));
	json_decref(mine);
	json_decref(all);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_events_job_that_fails_once_then_succeeds_in_order,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
