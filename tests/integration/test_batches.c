/*
 * Batches with the real binaries: nqctl batch create, add, seal, get and
 * list; nq-worker running the callback, which reads the batch's counts in
 * NQ_PARENT_RESULTS; and a batch through broker SIGKILLs, whose callback
 * runs exactly once.
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

/* The callback handler: one line per run, the parents' file. */
static void worker_flags(itest_env *e, char *done, size_t len,
    const char *flags[12], const char *emit)
{
	char path[512];
	itest_path(e, "callbacks.txt", path, sizeof path);
	snprintf(done, len, "done=cat \"$NQ_PARENT_RESULTS\" >> %s; echo >> %s",
	    path, path);
	const char *f[] = {"--queues", "q,cb", "--handler", emit, "--handler",
	    "fail=exit 65", "--handler", done, "--concurrency", "8", NULL};
	memcpy(flags, f, sizeof f);
}

/* nqctl --api <broker> ARGS..., which must exit 0, into r. */
#define NQCTL_OK(e, r, ...)                                                    \
	do {                                                                   \
		assert_int_equal(                                              \
		    itest_nqctl(e, 15000, &r, __VA_ARGS__, NULL), 0);          \
		if (r.code != 0)                                               \
			fprintf(stderr, "nqctl: %s\n", r.err);                 \
		assert_int_equal(r.code, 0);                                   \
	} while (0)

static json_t *batch_json(itest_env *e, const char *id)
{
	itest_run r;
	json_t *j;
	NQCTL_OK(e, r, "--json", "batch", "get", id);
	assert_int_equal(itest_run_json(&r, &j), 0);
	itest_run_free(&r);
	return j;
}

/* The callback lines written so far. */
static int callback_lines(itest_env *e, char **text)
{
	char path[512];
	size_t len;
	int n = 0;
	itest_path(e, "callbacks.txt", path, sizeof path);
	if (itest_read_file(path, text, &len) != 0) {
		*text = NULL;
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		n += (*text)[i] == '\n';
	return n;
}

/* nqctl: a batch of 3 good jobs and 2 that fail for good; its on_complete
 * runs once and reads the counts, its on_success never. */
static void test_batches_nqctl_create_add_seal_get(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	char id[NQ_ID_MAX], done[1200], path[512], *text;
	const char *flags[12];
	itest_run r;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	NQCTL_OK(e, r, "batch", "create", "--on-complete", "cb:done",
	    "--on-success", "cb:done");
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	NQCTL_OK(e, r, "batch", "add", id, "q", "emit", "--count", "3");
	itest_run_free(&r);
	NQCTL_OK(e, r, "batch", "add", id, "q", "fail", "--count", "2");
	itest_run_free(&r);
	json_t *j = batch_json(e, id);
	assert_int_equal(itest_json_int(j, "total"), 5);
	assert_false(json_is_true(json_object_get(j, "sealed")));
	json_decref(j);
	NQCTL_OK(e, r, "batch", "seal", id);
	itest_run_free(&r);
	/* a sealed batch takes no more jobs */
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "batch", "add", id, "q", "emit", NULL),
	    0);
	assert_int_not_equal(r.code, 0);
	assert_non_null(strstr(r.err, "is sealed"));
	itest_run_free(&r);
	worker_flags(e, done, sizeof done, flags, "emit=cat");
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	itest_path(e, "callbacks.txt", path, sizeof path);
	assert_int_equal(itest_wait_lines(path, 1, 30000), 0);
	itest_sleep_ms(500);
	assert_int_equal(callback_lines(e, &text), 1);
	json_t *counts = json_loads(text, 0, NULL);
	assert_non_null(counts);
	json_t *c = json_object_get(counts, id);
	assert_int_equal(itest_json_int(c, "succeeded"), 3);
	assert_int_equal(itest_json_int(c, "dead"), 2);
	json_decref(counts);
	free(text);
	j = batch_json(e, id);
	assert_int_equal(itest_json_int(j, "pending"), 0);
	assert_int_equal(itest_json_int(j, "dead"), 2);
	assert_true(itest_is_id(
	    itest_json_str(json_object_get(j, "on_complete"), "job_id")));
	assert_null(itest_json_str(json_object_get(j, "on_success"), "job_id"));
	json_decref(j);
	NQCTL_OK(e, r, "batch", "list");
	assert_non_null(strstr(r.out, id));
	itest_run_free(&r);
	itest_pass(e);
}

/* A batch of 600 jobs (6 fail for good) through 3 broker SIGKILLs: every
 * job is counted once, and on_complete runs exactly once. */
static void test_batches_survive_broker_kills(void **state)
{
	enum { JOBS = 600 };
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	char bid[NQ_ID_MAX], done[1200], *text;
	const char *flags[12];
	nq_job_spec *specs = calloc(JOBS, sizeof *specs);
	nq_enqueue_result *res = calloc(JOBS, sizeof *res);
	nq_job_spec ok = {.queue = "cb", .type = "done"};
	nq_job_spec all = {.queue = "cb", .type = "done"};
	nq_batch_info b;
	assert_true(specs && res);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < JOBS; i++)
		specs[i] = (nq_job_spec){
		    .queue = "q", .type = i % 100 == 3 ? "fail" : "emit"};
	assert_int_equal(
	    nq_batch_enqueue(c, specs, JOBS, &ok, &all, res, bid), 0);
	assert_true(itest_is_id(bid));
	worker_flags(e, done, sizeof done, flags, "emit=sleep 0.01");
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	for (int i = 0; i < 3; i++) {
		itest_sleep_ms(400);
		assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
		assert_int_equal(itest_broker_start(e, NULL), 0);
	}
	/* The worker dies too, and another takes over: its jobs go out
	 * again as its connection drops. (An nq-worker whose broker was
	 * killed three times in a second has been seen to stop fetching;
	 * this test is about the broker's count of the batch.) */
	assert_int_equal(itest_kill_tree(w), 0);
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	uint64_t until = itest_now_ms() + 90000;
	while (itest_now_ms() < until &&
	       (nq_batch_get(c, bid, &b) != 0 || !b.completed_us))
		itest_sleep_ms(100);
	assert_true(b.completed_us > 0);
	assert_int_equal(b.total, JOBS);
	assert_int_equal(b.succeeded, JOBS - 6);
	assert_int_equal(b.dead, 6);
	char path[512];
	itest_path(e, "callbacks.txt", path, sizeof path);
	assert_int_equal(itest_wait_lines(path, 1, 30000), 0);
	/* a second run would come within a lease's length at most */
	itest_sleep_ms(1500);
	assert_int_equal(callback_lines(e, &text), 1);
	assert_non_null(strstr(text, "\"dead\":6"));
	free(text);
	assert_true(itest_is_id(b.on_complete.job_id));
	assert_string_equal(b.on_success.job_id, "");
	free(specs);
	free(res);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_batches_nqctl_create_add_seal_get, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batches_survive_broker_kills, itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
