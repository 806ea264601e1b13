/*
 * --log-format json: every line a daemon writes parses as one JSON object
 * and carries every field of its event, values with spaces and with
 * "k=v" inside them included (a data dir and a token file path hold
 * both).
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

#include "harness.h"

#define ODD "dir with spaces a=b c=\"d\""

/* Every line of the log as a JSON object; the array is a new reference. */
static json_t *json_lines(const itest_proc *p)
{
	char *text;
	json_t *all = json_array();
	assert_int_equal(itest_read_file(p->log, &text, NULL), 0);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		if (!o || !json_is_object(o))
			fail_msg("not a JSON object: %s (%s)", line, err.text);
		assert_non_null(json_object_get(o, "ts"));
		assert_non_null(json_object_get(o, "level"));
		assert_non_null(json_object_get(o, "msg"));
		json_array_append_new(all, o);
	}
	free(text);
	return all;
}

/* The first line of msgid; fails when there is none. */
static json_t *line_of(const json_t *all, const char *msgid)
{
	size_t i;
	json_t *o;
	json_array_foreach(all, i, o)
	{
		if (strcmp(itest_json_str(o, "msg"), msgid) == 0)
			return o;
	}
	fail_msg("no %s line", msgid);
	return NULL;
}

static void assert_fields(const json_t *o, const char *const *keys)
{
	for (; *keys; keys++)
		if (!json_object_get(o, *keys))
			fail_msg("%s has no field %s", itest_json_str(o, "msg"),
			    *keys);
}

static void test_log_format_json_lines_carry_every_field(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	char id[NQ_ID_MAX];
	snprintf(e->data_dir, sizeof e->data_dir, "%s/" ODD, e->dir);
	const char *json[] = {"--log-format", "json", NULL};
	assert_int_equal(itest_broker_start(e, json), 0);
	const char *wflags[] = {"--queues", "q", "--handler", "t=cat",
	    "--log-format", "json", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	nq_client_close(c);
	itest_proc *b = e->broker;
	assert_int_equal(itest_signal(w, SIGTERM), 0);
	assert_int_equal(itest_wait_exit(w, 20000), 0);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);

	json_t *all = json_lines(b);
	json_t *o = line_of(all, "NQ-BROKER-START");
	static const char *const start[] = {
	    "api", "work", "results", "data_dir", "sync", "version", NULL};
	assert_fields(o, start);
	assert_string_equal(itest_json_str(o, "data_dir"), e->data_dir);
	assert_null(json_object_get(o, "a")); /* no field from a value */
	o = line_of(all, "NQ-BROKER-CONFIG");
	static const char *const config[] = {"api", "data-dir", "sync",
	    "log-format", "ready-file", "tls-key", NULL};
	assert_fields(o, config);
	assert_string_equal(itest_json_str(o, "data-dir"), e->data_dir);
	o = line_of(all, "NQ-LISTENING");
	static const char *const listening[] = {"socket", "url", NULL};
	assert_fields(o, listening);
	o = line_of(all, "NQ-BROKER-STOP");
	assert_true(json_is_integer(json_object_get(o, "commits")));
	json_decref(all);

	all = json_lines(w);
	o = line_of(all, "NQ-JOB-DONE");
	static const char *const done[] = {
	    "id", "type", "attempt", "ms", "exit", "reason", NULL};
	assert_fields(o, done);
	assert_string_equal(itest_json_str(o, "id"), id);
	line_of(all, "NQ-WORKER-STOP");
	json_decref(all);
	itest_pass(e);
}

/* An error naming a path with spaces and "a=b" keeps it whole. */
static void test_log_format_json_error_keeps_its_value_whole(void **state)
{
	itest_env *e = *state;
	char missing[PATH_MAX];
	itest_path(e, "no such " ODD, missing, sizeof missing);
	const char *flags[] = {
	    "--log-format", "json", "--producer-tokens", missing, NULL};
	assert_int_not_equal(itest_broker_start(e, flags), 0);
	json_t *all = json_lines(e->broker);
	json_t *o = line_of(all, "NQ-AUTH-CONFIG");
	assert_non_null(strstr(itest_json_str(o, "err"), missing));
	assert_int_equal(json_object_size(o), 4); /* ts level msg err */
	json_decref(all);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_log_format_json_lines_carry_every_field, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_log_format_json_error_keeps_its_value_whole, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("log_format", tests, NULL, NULL);
}
