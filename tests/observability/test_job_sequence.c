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
	assert_int_equal(obs_flaky_worker_start(e, "seq"), 0);

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
		assert_string_equal(obs_json_str(ev, "kind"), want[i]);
		assert_true(obs_json_num(ev, "seq") > last_seq);
		last_seq = obs_json_num(ev, "seq");
		assert_true(obs_json_num(ev, "topic_seq") >= 1);
		assert_int_equal(obs_json_num(ev, "attempt"), attempts[i]);
		assert_string_equal(obs_json_str(ev, "queue"), "seq");
		assert_string_equal(obs_json_str(ev, "type"), "flaky");
		char topic[64];
		snprintf(topic, sizeof topic, "job.%s.seq", want[i]);
		assert_string_equal(obs_json_str(ev, "topic"), topic);
		assert_true(rfc3339_us(obs_json_str(ev, "at")));
		assert_true(json_is_null(json_object_get(ev, "traceparent")));
	}
	/* The lease names the worker; the failure carries its reason. */
	assert_true(*obs_json_str(json_array_get(mine, 1), "worker_id"));
	assert_non_null(strstr(obs_json_str(json_array_get(mine, 2), "error"),
	    "first attempt fails"));
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
