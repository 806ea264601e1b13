/*
 * Trace context: a W3C traceparent given at enqueue stays on the job,
 * reaches the handler command as NQ_TRACEPARENT, rides on every event of
 * the job, and appears as trace=... in the log lines of nq-worker and
 * nq-broker about the job. A job without one gets none of that.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs.h"

static const char *const broker_flags[] = {"--backoff-base", "50ms",
    "--backoff-cap", "100ms", "--lease-check", "100ms", NULL};

/* Lines of the file that mention needle, all of which must hold want (or,
 * when want is NULL, none of which may hold "trace="). Returns how many. */
static int lines_with(const char *path, const char *needle, const char *want)
{
	char *text = NULL, *save = NULL;
	int n = 0;
	assert_int_equal(itest_read_file(path, &text, NULL), 0);
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strstr(line, needle))
			continue;
		n++;
		if (want && !strstr(line, want))
			fail_msg("no %s in: %s", want, line);
		if (!want && strstr(line, "trace="))
			fail_msg("a trace in: %s", line);
	}
	free(text);
	return n;
}

static void test_traceparent_reaches_handler_events_and_logs(void **state)
{
	itest_env *e = *state;
	char script[PATH_MAX], body[PATH_MAX + 256], handler[PATH_MAX + 8];
	char http[64], id[NQ_ID_MAX], plain[NQ_ID_MAX], path[PATH_MAX];
	char *seen;
	itest_proc *sub, *w;
	itest_run r;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(obs_events_start(e, NULL, NULL, &sub), 0);
	assert_int_equal(obs_events_warmup(e, sub), 0);
	/* The first attempt fails, so that both services log about the job;
	 * the second writes what it was given. */
	snprintf(body, sizeof body,
	    "[ \"$NQ_ATTEMPT\" = 1 ] && exit 1\n"
	    "printf '%%s' \"${NQ_TRACEPARENT-unset}\" > %s/tp.$NQ_JOB_ID\n",
	    e->dir);
	assert_int_equal(
	    itest_write_script(e, "handler", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "*=%s", script);
	assert_int_equal(obs_free_addr(http, sizeof http), 0);
	const char *flags[] = {"--queues", "tq", "--handler", handler, NULL};
	assert_int_equal(obs_worker_start(e, http, flags, &w), 0);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "tq", "t",
	                     "--traceparent", OBS_TRACEPARENT, NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "enqueue", "tq", "t", NULL), 0);
	assert_int_equal(itest_run_id(&r, plain), 0);
	itest_run_free(&r);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, plain, NQ_STATE_SUCCEEDED, 20000, NULL), 0);

	/* The handler's environment. */
	snprintf(path, sizeof path, "%s/tp.%s", e->dir, id);
	assert_int_equal(itest_read_file(path, &seen, NULL), 0);
	assert_string_equal(seen, OBS_TRACEPARENT);
	free(seen);
	snprintf(path, sizeof path, "%s/tp.%s", e->dir, plain);
	assert_int_equal(itest_read_file(path, &seen, NULL), 0);
	assert_string_equal(seen, "unset");
	free(seen);

	/* Every event of the job carries it; none of the other's does. */
	assert_int_equal(obs_events_wait(sub, id, "leased", 10000), 0);
	assert_int_equal(obs_events_wait(sub, plain, "leased", 10000), 0);
	assert_int_equal(obs_stop(sub), 0);
	json_t *all = obs_events_read(sub->log);
	json_t *mine = obs_events_of(all, id),
	       *other = obs_events_of(all, plain);
	json_t *v;
	size_t i;
	/* enqueued, leased, failed, retrying, leased at least */
	assert_true(json_array_size(mine) >= 5);
	json_array_foreach(mine, i, v)
	{
		assert_string_equal(
		    json_string_value(json_object_get(v, "traceparent")),
		    OBS_TRACEPARENT);
	}
	assert_true(json_array_size(other) >= 5);
	json_array_foreach(other, i, v)
	{
		assert_true(json_is_null(json_object_get(v, "traceparent")));
	}
	json_decref(mine);
	json_decref(other);
	json_decref(all);

	/* The log lines about the job, in both services. */
	char needle[48];
	snprintf(needle, sizeof needle, "id=%s", id);
	assert_int_equal(
	    lines_with(w->log, needle, "trace=" OBS_TRACEPARENT), 2);
	assert_true(
	    lines_with(e->broker->log, needle, "trace=" OBS_TRACEPARENT) >= 1);
	snprintf(needle, sizeof needle, "id=%s", plain);
	assert_int_equal(lines_with(w->log, needle, NULL), 2);

	/* And the job keeps it. */
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	json_t *js;
	assert_int_equal(itest_run_json(&r, &js), 0);
	assert_string_equal(itest_json_str(js, "traceparent"), OBS_TRACEPARENT);
	json_decref(js);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_traceparent_reaches_handler_events_and_logs, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
