/*
 * Job control with the real binaries: a running job canceled (nq-worker's
 * command stopped, a libnq handler told), cancel in bulk, a deadline that
 * expires a job in a paused queue, finish_within stopping a long command,
 * and progress reported by a command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nq/v1/events.pb-c.h"

/* Short beats, so that a stop is quick; bounds below are these plus slack
 * for a loaded machine (the sanitizer stage runs about twice as slow). */
#define HEARTBEAT "300ms"
#define HEARTBEAT_MS 300
#define GRACE "1s"
#define GRACE_MS 1000
#define SLACK_MS 1500

/* A worker on queue q whose type "long" ignores SIGTERM for 60 s (so that
 * only the SIGKILL after --grace ends it) and writes its process group to
 * the file pgid; type "quick" prints ok. */
static itest_proc *long_worker(itest_env *e, char *pgid, size_t len)
{
	char script[PATH_MAX], cmd[PATH_MAX + 64], quick[] = "quick=echo ok";
	itest_proc *w;
	itest_path(e, "pgid", pgid, len);
	char body[PATH_MAX + 80];
	snprintf(body, sizeof body,
	    "#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\ntrap '' TERM\n"
	    "sleep 60\n",
	    pgid, pgid, pgid);
	assert_int_equal(
	    itest_write_script(e, "long.sh", body, script, sizeof script), 0);
	snprintf(cmd, sizeof cmd, "long=exec %s", script);
	const char *flags[] = {"--queues", "q", "--handler", cmd, "--handler",
	    quick, "--lease", "3s", "--heartbeat", HEARTBEAT, "--grace", GRACE,
	    NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(itest_wait_bound(w, 10000), 0);
	return w;
}

/* The process group the long command wrote, once it runs. */
static pid_t wait_pgid(const char *path)
{
	uint64_t end = itest_now_ms() + 15000;
	char *text = NULL;
	size_t len;
	while (itest_read_file(path, &text, &len) != 0 && itest_now_ms() < end)
		itest_sleep_ms(20);
	assert_non_null(text);
	pid_t pgid = (pid_t)atol(text);
	free(text);
	assert_true(pgid > 1);
	return pgid;
}

static uint64_t wait_group_gone(pid_t pgid, uint64_t timeout_ms)
{
	uint64_t t0 = itest_now_ms();
	while (itest_group_alive(pgid) && itest_now_ms() - t0 < timeout_ms)
		itest_sleep_ms(20);
	assert_false(itest_group_alive(pgid));
	return itest_now_ms() - t0;
}

static void enqueue_type(nq_client *c, const char *type, char id[NQ_ID_MAX])
{
	nq_job_spec s = {.queue = "q", .type = type};
	assert_int_equal(nq_enqueue(c, &s, id, NULL), NQ_OK);
}

static void test_control_cancel_stops_a_running_command(void **state)
{
	itest_env *e = *state;
	char pgid_file[PATH_MAX], id[NQ_ID_MAX], next[NQ_ID_MAX];
	nq_client *c;
	nq_job *job = NULL;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	long_worker(e, pgid_file, sizeof pgid_file);
	enqueue_type(c, "long", id);
	pid_t pgid = wait_pgid(pgid_file);

	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "cancel", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "cancel_requested: true"));
	itest_run_free(&r);
	/* The command ignores SIGTERM: gone after the next heartbeat and
	 * the grace. */
	uint64_t ms = wait_group_gone(pgid, 20000);
	print_message(
	    "command gone %llu ms after the cancel\n", (unsigned long long)ms);
	assert_true(ms <= HEARTBEAT_MS + GRACE_MS + 1000 + SLACK_MS);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_CANCELED, 10000, &job), 0);
	size_t n = nq_job_error_count(job);
	assert_true(n >= 1);
	assert_non_null(
	    strstr(nq_job_error(job, n - 1, NULL, NULL), "canceled"));
	nq_job_free(job);

	/* The worker's one slot is free again. */
	enqueue_type(c, "quick", next);
	assert_int_equal(
	    itest_wait_state(c, next, NQ_STATE_SUCCEEDED, 10000, NULL), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* ---- a libnq handler ---- */

typedef struct handler_seen {
	atomic_bool canceled; /* the handler saw nq_job_canceled() */
	atomic_bool running;
} handler_seen;

static nq_outcome polling_cb(const nq_job *job, nq_result *res, void *arg)
{
	handler_seen *seen = arg;
	atomic_store(&seen->running, true);
	for (int i = 0; i < 3000 && !nq_job_canceled(job); i++)
		itest_sleep_ms(10);
	atomic_store(&seen->canceled, nq_job_canceled(job));
	nq_result_error(res, "stopped: canceled", true);
	return NQ_OUTCOME_FAILED;
}

static void *run_worker(void *arg)
{
	nq_worker_run(arg);
	return NULL;
}

static void test_control_cancel_reaches_a_libnq_handler(void **state)
{
	itest_env *e = *state;
	static const char *const queues[] = {"q"};
	char id[NQ_ID_MAX];
	handler_seen seen = {false, false};
	nq_client *c;
	nq_worker *w;
	pthread_t th;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	nq_worker_opts wo = {
	    .conn = {.work_url = e->work_url, .results_url = e->results_url},
	    .queues = queues,
	    .nqueues = 1,
	    .lease_ms = 3000,
	    .heartbeat_ms = HEARTBEAT_MS,
	    .poll_ms = 500,
	};
	assert_int_equal(nq_worker_open(&w, &wo), NQ_OK);
	assert_int_equal(nq_worker_handle(w, "*", polling_cb, &seen), NQ_OK);
	assert_int_equal(pthread_create(&th, NULL, run_worker, w), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_LEASED, 10000, NULL), 0);
	while (!atomic_load(&seen.running))
		itest_sleep_ms(10);
	uint64_t t0 = itest_now_ms();
	assert_int_equal(nq_cancel(c, id, NULL), NQ_OK);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_CANCELED, 10000, NULL), 0);
	uint64_t ms = itest_now_ms() - t0;
	print_message(
	    "job canceled %llu ms after the cancel\n", (unsigned long long)ms);
	assert_true(atomic_load(&seen.canceled));
	assert_true(ms <= HEARTBEAT_MS + 1000 + SLACK_MS);
	nq_worker_stop(w);
	pthread_join(th, NULL);
	nq_worker_close(w);
	nq_client_close(c);
	itest_pass(e);
}

static void test_control_heartbeat_must_be_shorter_than_the_lease(void **state)
{
	itest_env *e = *state;
	nq_worker *w;
	nq_worker_opts o = {.lease_ms = 3000, .heartbeat_ms = 3000};
	assert_int_equal(nq_worker_open(&w, &o), NQ_EINVAL);
	itest_run r;
	const char *args[] = {
	    "--handler", "t=true", "--lease", "3s", "--heartbeat", "3s", NULL};
	assert_int_equal(
	    itest_tool_argv(e, ITEST_WORKER_PATH, 10000, args, &r), 0);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "--heartbeat"));
	itest_run_free(&r);
	itest_pass(e);
}

/* ---- bulk ---- */

static void expect_count(
    itest_env *e, const char *state, const char *type, const char *count)
{
	itest_run r;
	const char *args[] = {"--api", e->api_url, "cancel", "--queue", "q",
	    "--state", state, type ? "--type" : NULL, type, NULL};
	assert_int_equal(itest_nqctl_argv(e, 15000, args, &r), 0);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, count);
	itest_run_free(&r);
}

static void test_control_cancel_in_bulk_by_state(void **state)
{
	itest_env *e = *state;
	static const char *const queues[] = {"q"};
	char ready[3][NQ_ID_MAX], other[NQ_ID_MAX], later[2][NQ_ID_MAX];
	nq_client *c;
	nq_job **jobs, *j;
	size_t n;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(itest_enqueue(c, "q", "a", "x", ready[i]), 0);
	assert_int_equal(itest_enqueue(c, "q", "b", "x", other), 0);
	for (int i = 0; i < 2; i++) {
		nq_job_spec s = {
		    .queue = "q", .type = "a", .delay_ms = 3600000};
		assert_int_equal(nq_enqueue(c, &s, later[i], NULL), NQ_OK);
	}
	expect_count(e, "ready", "a", "3\n");
	for (int i = 0; i < 3; i++)
		assert_int_equal(itest_wait_state(c, ready[i],
		                     NQ_STATE_CANCELED, 5000, NULL),
		    0);
	assert_int_equal(
	    itest_wait_state(c, later[0], NQ_STATE_SCHEDULED, 5000, NULL), 0);
	expect_count(e, "scheduled", NULL, "2\n");
	assert_int_equal(
	    itest_wait_state(c, later[1], NQ_STATE_CANCELED, 5000, NULL), 0);

	/* Leased: marked, and the job still runs until its worker stops. */
	assert_int_equal(
	    nq_fetch(c, "w-bulk", queues, 1, 1, 5000, 30000, &jobs, &n), NQ_OK);
	assert_int_equal(n, 1);
	assert_string_equal(nq_job_id(jobs[0]), other);
	expect_count(e, "leased", NULL, "1\n");
	assert_int_equal(nq_get(c, other, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_LEASED);
	assert_true(nq_job_cancel_requested(j));
	nq_job_free(j);
	expect_count(e, "leased", NULL, "0\n");
	nq_jobs_free(jobs, n);

	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "cancel", "--queue", "q",
	                     "--state", "dead", NULL),
	    0);
	assert_int_equal(r.code, 2);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

/* ---- deadlines ---- */

static void test_control_deadline_expires_a_job_in_a_paused_queue(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job *j;
	itest_run r;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_nqctl(e, 15000, &r, "pause", "q", NULL), 0);
	assert_int_equal(r.code, 0);
	itest_run_free(&r);
	uint64_t t0 = itest_wall_us();
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "t",
	                     "--deadline", "2s", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	assert_int_equal(nq_get(c, id, &j), NQ_OK);
	uint64_t deadline = nq_job_deadline_us(j);
	assert_true(deadline >= t0 + 2000000);
	assert_int_equal(nq_job_state(j), NQ_STATE_READY);
	nq_job_free(j);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_EXPIRED, 10000, &j), 0);
	uint64_t late_ms = (itest_wall_us() - deadline) / 1000;
	print_message("expired %llu ms after its deadline\n",
	    (unsigned long long)late_ms);
	assert_true(late_ms <= 1000 + SLACK_MS);
	assert_true(nq_job_finished_us(j) > deadline);
	assert_string_equal(nq_job_dead_reason(j), "expired");
	nq_job_free(j);

	/* Scheduled far ahead: a deadline expires it, a finish_within that
	 * passes kills it (dead, reason deadline), neither waits for run_at. */
	char later[2][NQ_ID_MAX];
	nq_job_spec s = {.queue = "q2", .type = "t", .delay_ms = 3600000};
	s.deadline_us = itest_wall_us() + 500000;
	assert_int_equal(nq_enqueue(c, &s, later[0], NULL), NQ_OK);
	s.deadline_us = 0;
	s.finish_within_ms = 500;
	assert_int_equal(nq_enqueue(c, &s, later[1], NULL), NQ_OK);
	assert_int_equal(
	    itest_wait_state(c, later[0], NQ_STATE_EXPIRED, 3000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, later[1], NQ_STATE_DEAD, 3000, &j), 0);
	assert_string_equal(nq_job_dead_reason(j), "deadline");
	nq_job_free(j);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "t",
	                     "--deadline", "yesterday", NULL),
	    0);
	assert_int_equal(r.code, 2);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

static void test_control_finish_within_stops_a_long_command(void **state)
{
	itest_env *e = *state;
	char pgid_file[PATH_MAX], id[NQ_ID_MAX];
	nq_client *c;
	nq_job *j;
	itest_run r;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	long_worker(e, pgid_file, sizeof pgid_file);
	uint64_t t0 = itest_now_ms();
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "long",
	                     "--finish-within", "2s", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	pid_t pgid = wait_pgid(pgid_file);
	wait_group_gone(pgid, 20000);
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_DEAD, 10000, &j), 0);
	uint64_t ms = itest_now_ms() - t0;
	print_message(
	    "dead %llu ms after the enqueue\n", (unsigned long long)ms);
	assert_true(ms <= 2000 + HEARTBEAT_MS + GRACE_MS + 1000 + SLACK_MS);
	assert_string_equal(nq_job_dead_reason(j), "deadline");
	assert_int_equal(nq_job_attempt(j), 1);
	assert_int_equal(nq_job_finish_within_ms(j), 2000);
	nq_job_free(j);
	nq_client_close(c);
	itest_pass(e);
}

/* ---- progress ---- */

/* Takes events until one of kind comes (at most timeout_ms): its pct
 * and note, or -1. */
static int progress_event(
    nq_sub *sub, const char *id, char *note, size_t len, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	while (itest_now_ms() < end) {
		const void *msg;
		size_t n;
		if (nq_sub_recv(sub, 100, &msg, &n) != NQ_OK)
			continue;
		const char *nul = memchr(msg, '\0', n);
		size_t at = nul ? (size_t)(nul - (const char *)msg) + 1 : n;
		Nq__V1__EventBatch *b = nq__v1__event_batch__unpack(
		    NULL, n - at, (const uint8_t *)msg + at);
		int pct = -1;
		for (size_t i = 0; b && i < b->n_events && pct < 0; i++)
			if (strcmp(b->events[i]->kind, "progress") == 0 &&
			    strcmp(b->events[i]->id, id) == 0) {
				pct = (int)b->events[i]->progress_pct;
				snprintf(note, len, "%s",
				    b->events[i]->progress_note);
			}
		if (b)
			nq__v1__event_batch__free_unpacked(b, NULL);
		if (pct >= 0)
			return pct;
	}
	return -1;
}

static void test_control_progress_of_a_command_shows_in_get_and_events(
    void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX], note[256];
	nq_client *c;
	nq_sub *sub;
	itest_proc *w;
	itest_run r;
	json_t *j;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    nq_sub_open(c, e->events_url, "job.progress.", 13, &sub), NQ_OK);
	itest_sleep_ms(300); /* a subscription takes a moment to reach PUB */
	const char *flags[] = {"--queues", "q", "--handler",
	    "t=echo 'progress abc' >&$NQ_PROGRESS_FD; "
	    "echo 'progress 40 half way' >&$NQ_PROGRESS_FD; sleep 1; "
	    "echo done",
	    "--lease", "3s", "--heartbeat", "1s", NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(itest_wait_bound(w, 10000), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(progress_event(sub, id, note, sizeof note, 10000), 40);
	assert_string_equal(note, "half way");
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, NULL), 0);

	/* It stays on the job, and stdout stayed the result. */
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	json_t *p = json_object_get(j, "progress");
	assert_int_equal(itest_json_int(p, "pct"), 40);
	assert_string_equal(itest_json_str(p, "note"), "half way");
	assert_string_equal(itest_json_str(j, "result"), "done\n");
	json_decref(j);
	itest_run_free(&r);
	assert_int_equal(itest_nqctl(e, 15000, &r, "get", id, NULL), 0);
	assert_non_null(strstr(r.out, "progress: 40% half way (at "));
	itest_run_free(&r);
	/* The malformed line was ignored, with one log line. */
	assert_int_equal(itest_wait_log(w, "NQ-PROGRESS-IGNORED", 1, 5000), 0);
	nq_sub_close(sub);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_control_cancel_stops_a_running_command, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_cancel_reaches_a_libnq_handler, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_heartbeat_must_be_shorter_than_the_lease,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_cancel_in_bulk_by_state, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_deadline_expires_a_job_in_a_paused_queue,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_finish_within_stops_a_long_command, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_control_progress_of_a_command_shows_in_get_and_events,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("job_control", tests, NULL, NULL);
}
