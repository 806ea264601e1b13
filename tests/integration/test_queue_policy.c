/*
 * Queue policies with the real broker, worker and nqctl: the queues file at
 * start and on SIGHUP, runtime values across SIGKILL, the defaults a job
 * takes from its queue, the types and schema versions a queue accepts, and
 * a paused queue across a restart.
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

/* Writes the queues file "<dir>/queues.yaml"; its path goes to path. */
static void write_queues(itest_env *e, const char *text, char *path)
{
	itest_path(e, "queues.yaml", path, PATH_MAX);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Writes the queues file and starts the broker with it. */
static void start_with(itest_env *e, const char *text, char *path)
{
	write_queues(e, text, path);
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
}

/* SIGKILLs the broker and starts it again on the same queues file. */
static void kill_and_restart(itest_env *e, const char *path)
{
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, flags), 0);
}

/* Waits until the broker's log holds needle count times (at most 10 s). */
static bool log_has(itest_env *e, const char *needle, int count)
{
	for (uint64_t end = itest_now_ms() + 10000; itest_now_ms() < end;
	     itest_sleep_ms(50)) {
		char *log = NULL;
		size_t len;
		int seen = 0;
		if (itest_read_file(e->broker->log, &log, &len) != 0)
			continue;
		for (const char *p = log; (p = strstr(p, needle)); p++)
			seen++;
		free(log);
		if (seen >= count)
			return true;
	}
	fprintf(stderr, "broker log lacks %d x '%s'\n", count, needle);
	return false;
}

/* Enqueues TYPE on queue with nqctl; the exit status, the id into id (when
 * 0) and, when want_err is not NULL, checks stderr holds it. */
static int enqueue(itest_env *e, const char *queue, const char *type,
    const char *version, const char *want_err, char id[NQ_ID_MAX])
{
	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", queue, type,
	                     "--schema-version", version, NULL),
	    0);
	int code = r.code;
	if (code == 0)
		assert_int_equal(itest_run_id(&r, id), 0);
	if (want_err && !strstr(r.err, want_err))
		fail_msg("stderr '%s' lacks '%s'", r.err, want_err);
	itest_run_free(&r);
	return code;
}

/* The number field of job id as `nqctl --json get` shows it; -1 when the
 * job is not there. */
static long long field_of(itest_env *e, const char *id, const char *field)
{
	itest_run r;
	json_t *j;
	long long n = -1;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	if (r.code == 0) {
		assert_int_equal(itest_run_json(&r, &j), 0);
		n = itest_json_int(j, field);
		json_decref(j);
	}
	itest_run_free(&r);
	return n;
}

static long long max_attempts_of(itest_env *e, const char *id)
{
	return field_of(e, id, "max_attempts");
}

/* The value and source `nqctl --json queue show queue` gives key. */
static void show_is(itest_env *e, const char *queue, const char *key,
    const char *value, const char *source)
{
	itest_run r;
	json_error_t err;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "queue", "show", queue, NULL),
	    0);
	assert_int_equal(r.code, 0);
	json_t *all = json_loads(r.out, 0, &err);
	assert_non_null(all);
	json_t *k = json_object_get(
	    json_object_get(json_array_get(all, 0), "policy"), key);
	assert_non_null(k);
	assert_string_equal(itest_json_str(k, "value"), value);
	assert_string_equal(itest_json_str(k, "source"), source);
	json_decref(all);
	itest_run_free(&r);
}

static void test_queue_policy_bad_file_at_start_exits_2(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], want[PATH_MAX + 16];
	write_queues(e, "queues:\n  mail:\n    max_in_flight: 0\n", path);
	const char *flags[] = {"--queues-config", path, NULL};
	assert_int_not_equal(itest_broker_spawn(e, flags, NULL), 0);
	assert_int_equal(itest_wait_exit(e->broker, 10000), 0);
	assert_true(WIFEXITED(e->broker->status));
	assert_int_equal(WEXITSTATUS(e->broker->status), 2);
	snprintf(want, sizeof want, "file=%s", path);
	assert_true(log_has(e, want, 1));
	assert_true(log_has(e, "NQ-CONFIG-REJECTED", 1));
	assert_true(log_has(e, "line=3 key=max_in_flight", 1));
	itest_pass(e);
}

static void test_queue_policy_sighup_applies_or_keeps(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], id[NQ_ID_MAX];
	start_with(e,
	    "queues:\n  mail:\n    types: [send]\n"
	    "    max_attempts: 2\n",
	    path);
	assert_int_equal(
	    enqueue(e, "mail", "bounce", "0",
	        "queue mail does not take jobs of type bounce", id),
	    1);
	assert_int_equal(enqueue(e, "mail", "send", "0", NULL, id), 0);
	assert_int_equal(max_attempts_of(e, id), 2);

	/* A bad file: logged, and the policy in force stays. */
	write_queues(e,
	    "queues:\n  mail:\n    types: [send, bounce]\n"
	    "    rate: -5/s\n",
	    path);
	assert_int_equal(itest_signal(e->broker, SIGHUP), 0);
	assert_true(log_has(e, "NQ-CONFIG-REJECTED", 1));
	assert_true(log_has(e, "line=4 key=rate", 1));
	assert_int_equal(
	    enqueue(e, "mail", "bounce", "0", "takes types send", id), 1);

	/* A good one applies to the next enqueue, without a restart. */
	write_queues(e,
	    "queues:\n  \"*\": {max_attempts: 4}\n"
	    "  mail: {types: [send, bounce]}\n",
	    path);
	assert_int_equal(itest_signal(e->broker, SIGHUP), 0);
	assert_true(log_has(e, "NQ-CONFIG-RELOADED", 1));
	assert_int_equal(enqueue(e, "mail", "bounce", "0", NULL, id), 0);
	assert_int_equal(max_attempts_of(e, id), 4);
	assert_false(itest_broker_died(e));
	itest_pass(e);
}

static void test_queue_policy_refuses_schema_versions(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], id[NQ_ID_MAX];
	start_with(e,
	    "queues:\n  mail:\n    schema_versions: {send: \"2-3\"}\n", path);
	assert_int_equal(enqueue(e, "mail", "send", "1",
	                     "does not take type send at schema_version 1; it "
	                     "takes versions 2-3 of send",
	                     id),
	    1);
	assert_int_equal(
	    enqueue(e, "mail", "send", "4", "versions 2-3", id), 1);
	assert_int_equal(enqueue(e, "mail", "send", "3", NULL, id), 0);
	assert_int_equal(enqueue(e, "mail", "other", "1", NULL, id), 0);
	itest_pass(e);
}

static void test_queue_policy_set_survives_sigkill_reset_returns(void **st)
{
	itest_env *e = *st;
	char path[PATH_MAX], id[NQ_ID_MAX];
	itest_run r;
	start_with(e, "queues:\n  mail: {max_attempts: 2}\n", path);
	assert_int_equal(itest_nqctl(e, 15000, &r, "queue", "set", "mail",
	                     "max_attempts=5", "timeout=90s", NULL),
	    0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	/* One bad pair changes nothing, and the broker names its key. */
	nq_client *c;
	const char *bad[] = {"timeout=1s", "max_depth=0"};
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    nq_queue_policy_set(c, "mail", bad, 2, NULL), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(c), "max_depth"));
	nq_client_close(c);
	show_is(e, "mail", "timeout", "90s", "runtime");
	assert_int_equal(enqueue(e, "mail", "send", "0", NULL, id), 0);
	assert_int_equal(max_attempts_of(e, id), 5);

	kill_and_restart(e, path);
	show_is(e, "mail", "max_attempts", "5", "runtime");
	assert_int_equal(itest_nqctl(e, 15000, &r, "queue", "reset", "mail",
	                     "max_attempts", NULL),
	    0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	show_is(e, "mail", "max_attempts", "2", "file");
	show_is(e, "mail", "timeout", "90s", "runtime");
	kill_and_restart(e, path);
	show_is(e, "mail", "max_attempts", "2", "file");
	assert_int_equal(enqueue(e, "mail", "send", "0", NULL, id), 0);
	assert_int_equal(max_attempts_of(e, id), 2);
	itest_pass(e);
}

/* A job that names no timeout, priority or result_ttl takes its queue's;
 * one that names them keeps its own. */
static void test_queue_policy_job_takes_queue_defaults(void **state)
{
	itest_env *e = *state;
	char path[PATH_MAX], id[NQ_ID_MAX], own[NQ_ID_MAX], other[NQ_ID_MAX];
	itest_run r;
	itest_proc *w;
	nq_client *c;
	start_with(e,
	    "queues:\n  \"*\": {timeout: 90s}\n"
	    "  q: {result_ttl: 1s, priority: 5}\n",
	    path);
	assert_int_equal(enqueue(e, "q", "echo", "0", NULL, id), 0);
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "echo",
	                     "--priority", "2", "--timeout", "7s", NULL),
	    0);
	assert_int_equal(itest_run_id(&r, own), 0);
	itest_run_free(&r);
	assert_int_equal(enqueue(e, "other", "echo", "0", NULL, other), 0);
	assert_int_equal(field_of(e, id, "timeout_ms"), 90000);
	assert_int_equal(field_of(e, id, "priority"), 5);
	assert_int_equal(field_of(e, own, "timeout_ms"), 7000);
	assert_int_equal(field_of(e, own, "priority"), 2);

	const char *wflags[] = {
	    "--queues", "q,other", "--handler", "echo=cat", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, other, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	nq_client_close(c);
	/* q keeps results 1 s, other the broker's 10 min. */
	uint64_t end = itest_now_ms() + 10000;
	while (field_of(e, id, "priority") != -1 && itest_now_ms() < end)
		itest_sleep_ms(200);
	assert_int_equal(field_of(e, id, "priority"), -1);
	assert_int_not_equal(field_of(e, other, "priority"), -1);
	itest_pass(e);
}

/* Ready and leased of queue q now. */
static void counts(nq_client *c, uint64_t *ready, uint64_t *leased)
{
	itest_qstats qs;
	assert_int_equal(itest_queue_stats(c, "q", &qs, NULL), 0);
	*ready = qs.ready;
	*leased = qs.leased + qs.succeeded;
}

static void test_queue_policy_paused_queue_leases_nothing_across_restart(
    void **st)
{
	itest_env *e = *st;
	char id[NQ_ID_MAX];
	itest_run r;
	itest_proc *w;
	nq_client *c;
	uint64_t ready, ran;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_nqctl(e, 15000, &r, "pause", "q", NULL), 0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	for (int i = 0; i < 3; i++)
		assert_int_equal(enqueue(e, "q", "echo", "0", NULL, id), 0);
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	itest_sleep_ms(1500);
	counts(c, &ready, &ran);
	assert_int_equal(ready, 3);
	assert_int_equal(ran, 0);
	nq_client_close(c);

	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	itest_sleep_ms(2000); /* the worker reconnects and fetches */
	counts(c, &ready, &ran);
	assert_int_equal(ready, 3);
	assert_int_equal(ran, 0);

	assert_int_equal(itest_nqctl(e, 15000, &r, "resume", "q", NULL), 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name)                                                                \
	cmocka_unit_test_setup_teardown(name, itest_setup, itest_teardown)
	    T(test_queue_policy_bad_file_at_start_exits_2),
	    T(test_queue_policy_sighup_applies_or_keeps),
	    T(test_queue_policy_refuses_schema_versions),
	    T(test_queue_policy_set_survives_sigkill_reset_returns),
	    T(test_queue_policy_job_takes_queue_defaults),
	    T(test_queue_policy_paused_queue_leases_nothing_across_restart),
#undef T
	};
	return cmocka_run_group_tests_name("queue_policy", tests, NULL, NULL);
}
