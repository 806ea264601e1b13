/*
 * Unique keys and their scopes, as README "Unique jobs" states them: while
 * the scope holds, an enqueue with the key returns the job already there
 * (duplicate); once it ended, the key makes a new job. Each scope is
 * followed through enqueue, a broker restart, the run, a failed attempt
 * where it matters, the end, and the enqueue after; and a key never
 * returns a job that is gone.
 *
 * The handler is a gate: each attempt waits for a file named after the job
 * and the attempt, and exits with the code written beside it, so the test
 * decides when each attempt ends and how.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define KEY "nightly-report"

static const char *const broker_flags[] = {"--backoff-base", "100ms",
    "--backoff-cap", "200ms", "--lease-check", "100ms", NULL};

/* Starts a worker of one slot for queue q whose "gate" attempts wait for
 * gate_open. */
static void start_gate_worker(itest_env *e)
{
	char script[PATH_MAX], body[PATH_MAX + 256], handler[PATH_MAX + 16];
	itest_proc *w;
	snprintf(body, sizeof body,
	    "f=%s/$NQ_JOB_ID-$NQ_ATTEMPT\n"
	    "while [ ! -e \"$f.go\" ]; do sleep 0.02; done\n"
	    "exit \"$(cat \"$f.code\")\"\n",
	    e->dir);
	assert_int_equal(
	    itest_write_script(e, "gate", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "gate=%s", script);
	const char *flags[] = {
	    "--queues", "q", "--concurrency", "1", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
}

/* Lets attempt of job id end with exit code. */
static void gate_open(itest_env *e, const char *id, unsigned attempt, int code)
{
	char name[64], text[16], path[PATH_MAX];
	snprintf(text, sizeof text, "%d", code);
	snprintf(name, sizeof name, "%s-%u.code", id, attempt);
	assert_int_equal(itest_write_file(e, name, text, path, sizeof path), 0);
	snprintf(name, sizeof name, "%s-%u.go", id, attempt);
	assert_int_equal(itest_write_file(e, name, "", path, sizeof path), 0);
}

/* Enqueues a gate job with KEY and scope (nq_unique_scope_parse form);
 * returns whether the broker called it a duplicate. */
static bool enqueue_unique(nq_client *c, const char *scope, char id[NQ_ID_MAX])
{
	bool dup = false;
	nq_job_spec s = {.queue = "q",
	    .type = "gate",
	    .payload = "x",
	    .payload_len = 1,
	    .max_attempts = 5,
	    .idempotency_key = KEY};
	assert_int_equal(
	    nq_unique_scope_parse(scope, &s.unique_scope, &s.unique_window_ms),
	    NQ_OK);
	assert_int_equal(nq_enqueue(c, &s, id, &dup), NQ_OK);
	return dup;
}

/* Asserts that an enqueue with the key returns job want. */
static void assert_duplicate_of(
    nq_client *c, const char *scope, const char *want)
{
	char id[NQ_ID_MAX];
	assert_true(enqueue_unique(c, scope, id));
	assert_string_equal(id, want);
}

/* Asserts that an enqueue with the key makes a new job, other than old;
 * its id goes to id. */
static void assert_new_job(
    nq_client *c, const char *scope, const char *old, char id[NQ_ID_MAX])
{
	assert_false(enqueue_unique(c, scope, id));
	assert_string_not_equal(id, old);
}

/* Waits until job id has failed attempts failed attempts. */
static void wait_failures(nq_client *c, const char *id, size_t failed)
{
	uint64_t end = itest_now_ms() + 15000;
	size_t n = 0;
	nq_job *j;
	while (itest_now_ms() < end) {
		assert_int_equal(nq_get(c, id, &j), NQ_OK);
		n = nq_job_error_count(j);
		nq_job_free(j);
		if (n >= failed)
			return;
		itest_sleep_ms(20);
	}
	fail_msg("job %s has %zu failed attempts, not %zu", id, n, failed);
}

/* Restarts the broker after a SIGKILL, and a client with it. */
static void restart(itest_env *e, nq_client **c)
{
	nq_client_close(*c);
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(itest_client(e, 0, c), 0);
}

/* Starts the broker and takes the key with scope: the job it made goes to
 * id1, and a repeat returns it before and after a broker restart. */
static void take_key(
    itest_env *e, const char *scope, nq_client **c, char id1[NQ_ID_MAX])
{
	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(itest_client(e, 0, c), 0);
	assert_false(enqueue_unique(*c, scope, id1));
	assert_duplicate_of(*c, scope, id1);
	restart(e, c);
	assert_duplicate_of(*c, scope, id1);
}

/* queued: until the job first starts. */
static void test_unique_queued_holds_until_the_job_starts(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;

	take_key(e, "queued", &c, id1);
	start_gate_worker(e);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_LEASED, 15000, NULL), 0);
	assert_new_job(c, "queued", id1, id2);
	/* The one slot runs id1: id2 waits, and holds the key. */
	assert_duplicate_of(c, "queued", id2);
	gate_open(e, id1, 1, 0);
	assert_int_equal(
	    itest_wait_state(c, id2, NQ_STATE_LEASED, 15000, NULL), 0);
	assert_new_job(c, "queued", id2, id1);
	nq_client_close(c);
	itest_pass(e);
}

/* active: while queued or running its first attempt; a failed attempt
 * ends it, though the job is retried. */
static void test_unique_active_holds_until_the_first_attempt_ends(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;

	take_key(e, "active", &c, id1);
	start_gate_worker(e);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_LEASED, 15000, NULL), 0);
	assert_duplicate_of(c, "active", id1);
	gate_open(e, id1, 1, 75); /* retry later */
	wait_failures(c, id1, 1);
	assert_new_job(c, "active", id1, id2);
	assert_duplicate_of(c, "active", id2);
	gate_open(e, id2, 1, 0); /* the one slot may take either first */
	gate_open(e, id1, 2, 0);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* until_finished: until the job ends, its retries included. */
static void test_unique_until_finished_holds_through_retries(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;

	take_key(e, "until_finished", &c, id1);
	start_gate_worker(e);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_LEASED, 15000, NULL), 0);
	assert_duplicate_of(c, "until_finished", id1);
	gate_open(e, id1, 1, 75);
	wait_failures(c, id1, 1);
	assert_duplicate_of(c, "until_finished", id1);
	gate_open(e, id1, 2, 0);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	assert_new_job(c, "until_finished", id1, id2);
	assert_duplicate_of(c, "until_finished", id2);
	nq_client_close(c);
	itest_pass(e);
}

/* window=D: for D after the enqueue, whatever the job does, restarts
 * included. */
static void test_unique_window_holds_for_its_length(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_false(enqueue_unique(c, "window=3s", id1));
	uint64_t t0 = itest_now_ms(); /* the window ends before t0 + 3 s */
	restart(e, &c);
	start_gate_worker(e);
	gate_open(e, id1, 1, 0);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	/* On a slow machine the window may be over by now. */
	if (itest_now_ms() - t0 < 2500)
		assert_duplicate_of(c, "window=3s", id1);
	while (itest_now_ms() - t0 < 3200)
		itest_sleep_ms(100);
	assert_new_job(c, "window=3s", id1, id2);
	nq_client_close(c);
	itest_pass(e);
}

/* A window that outlasts the job's record: once a canceled job's record
 * went after its result_ttl, the key makes a new job instead of naming one
 * that is gone. */
static void test_unique_key_never_returns_a_deleted_job(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--result-ttl", "1s", NULL};
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;
	nq_job *j = NULL;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_pause(c, "q"), NQ_OK);
	assert_false(enqueue_unique(c, "window=1h", id1));
	assert_int_equal(nq_cancel(c, id1, &j), NQ_OK);
	uint64_t t0 = itest_now_ms();
	nq_job_free(j);
	/* Its record is there for a second still, unless this was slow. */
	if (itest_now_ms() - t0 < 500)
		assert_duplicate_of(c, "window=1h", id1);
	assert_int_equal(itest_wait_gone(c, id1, 15000), 0);
	assert_new_job(c, "window=1h", id1, id2);
	assert_duplicate_of(c, "window=1h", id2);
	nq_client_close(c);
	itest_pass(e);
}

/* libnq: unique_window_ms bounds a scope other than the window; a scope
 * without a key, or one the broker does not know, is refused. */
static void test_unique_bound_and_refusals(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	bool dup = false;
	nq_client *c;
	nq_job_spec s = {.queue = "q",
	    .type = "gate",
	    .idempotency_key = KEY,
	    .unique_scope = NQ_UNIQUE_UNTIL_FINISHED,
	    .unique_window_ms = 1000};

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_enqueue(c, &s, id1, &dup), NQ_OK);
	assert_false(dup);
	uint64_t t0 = itest_now_ms();
	assert_int_equal(nq_enqueue(c, &s, id2, &dup), NQ_OK);
	/* On a slow machine the bound may be over by now. */
	if (itest_now_ms() - t0 < 800) {
		assert_true(dup);
		assert_string_equal(id2, id1);
	}
	while (itest_now_ms() - t0 < 1200)
		itest_sleep_ms(50);
	/* id1 has not finished, but the bound is over. */
	assert_int_equal(nq_enqueue(c, &s, id2, &dup), NQ_OK);
	assert_false(dup);
	assert_string_not_equal(id2, id1);

	s.idempotency_key = NULL;
	assert_int_equal(nq_enqueue(c, &s, id1, &dup), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(c), "unique key"));
	s.idempotency_key = KEY;
	s.unique_scope = (nq_unique_scope)9;
	assert_int_equal(nq_enqueue(c, &s, id1, &dup), NQ_EINVAL);
	nq_client_close(c);
	itest_pass(e);
}

/* nqctl: --unique-key with --unique-scope, shown by get; --idempotency-key
 * is the window scope; bad combinations are usage errors. */
static void test_unique_nqctl_flags(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	itest_run r;
	json_t *o;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q",
		                     "gate", "--unique-key", KEY,
		                     "--unique-scope", "until_finished", NULL),
		    0);
		assert_int_equal(r.code, 0);
		assert_int_equal(itest_run_id(&r, i ? id2 : id1), 0);
		assert_true(!i || strstr(r.err, "matched job") != NULL);
		itest_run_free(&r);
	}
	assert_string_equal(id1, id2);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id1, NULL), 0);
	assert_int_equal(itest_run_json(&r, &o), 0);
	assert_string_equal(
	    itest_json_str(o, "unique_scope"), "until_finished");
	assert_string_equal(itest_json_str(o, "idempotency_key"), KEY);
	json_decref(o);
	itest_run_free(&r);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "gate",
	                     "--idempotency-key", "k2", NULL),
	    0);
	assert_int_equal(itest_run_id(&r, id1), 0);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id1, NULL), 0);
	assert_int_equal(itest_run_json(&r, &o), 0);
	assert_string_equal(itest_json_str(o, "unique_scope"), "window");
	json_decref(o);
	itest_run_free(&r);

	const char *bad[][4] = {{"--unique-scope", "active", NULL, NULL},
	    {"--unique-key", "k", "--unique-scope", "forever"},
	    {"--unique-key", "k", "--idempotency-key", "k"},
	    {"--unique-key", "k", "--unique-scope", "window=0s"}};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *argv[] = {"--api", e->api_url, "enqueue", "q", "t",
		    bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
		assert_int_equal(itest_nqctl_argv(e, 15000, argv, &r), 0);
		assert_int_equal(r.code, 2);
		itest_run_free(&r);
	}
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_unique_queued_holds_until_the_job_starts, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_active_holds_until_the_first_attempt_ends,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_until_finished_holds_through_retries, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_window_holds_for_its_length, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_key_never_returns_a_deleted_job, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_bound_and_refusals, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unique_nqctl_flags, itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("unique", tests, NULL, NULL);
}
