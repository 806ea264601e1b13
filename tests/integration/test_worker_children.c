/*
 * A job's processes do not outlive it: what a command leaves running in
 * its process group is ended with the job (SIGTERM, then SIGKILL), and a
 * SIGKILLed nq-worker takes its running commands with it, so the broker
 * never hands out a job whose command still runs somewhere.
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

/* A script line that writes its process group id (field 5 of the stat of
 * the script's shell) to a file, completed by the file's path. */
#define GROUP_TO "cut -d' ' -f5 /proc/$$/stat > "

/* Polls until group pgid has no live process, at most timeout_ms. */
static int wait_group_gone(pid_t pgid, uint64_t timeout_ms)
{
	uint64_t until = itest_now_ms() + timeout_ms;
	while (itest_group_alive(pgid)) {
		if (itest_now_ms() >= until)
			return -1;
		itest_sleep_ms(20);
	}
	return 0;
}

/* The number the command wrote to "<dir>/<name>", once it is there. */
static pid_t read_pid(itest_env *e, const char *name)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	itest_path(e, name, path, sizeof path);
	assert_int_equal(itest_wait_lines(path, 1, 15000), 0);
	assert_int_equal(itest_read_file(path, &text, &len), 0);
	pid_t pid = (pid_t)atoi(text);
	free(text);
	assert_true(pid > 1);
	return pid;
}

/* Starts a worker for queue q whose type t runs body (a script). */
static void start_worker(itest_env *e, const char *body, itest_proc **w)
{
	char script[PATH_MAX], handler[PATH_MAX + 8];
	assert_int_equal(
	    itest_write_script(e, "handler", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "t=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, w), 0);
}

/* Runs one job whose command leaves a background child that holds its
 * stdout open; returns the command's process group once the job has
 * succeeded, and how long that took after the command started. */
static pid_t run_leaving_child(itest_env *e, const char *child, uint64_t *ms)
{
	char body[PATH_MAX + 256], id[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	nq_job *j;
	snprintf(body, sizeof body, GROUP_TO "%s/group\n%s &\necho done\n",
	    e->dir, child);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	start_worker(e, body, &w);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	pid_t pgid = read_pid(e, "group");
	uint64_t t0 = itest_now_ms();
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, &j), 0);
	*ms = itest_now_ms() - t0;
	size_t len = 0;
	const char *res = nq_job_result(j, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(res, "done\n", 5);
	nq_job_free(j);
	nq_client_close(c);
	return pgid;
}

static void test_worker_children_background_child_ends_with_the_job(
    void **state)
{
	itest_env *e = *state;
	uint64_t ms;
	pid_t pgid = run_leaving_child(e, "sleep 30", &ms);
	print_message("job succeeded %llu ms after its command started\n",
	    (unsigned long long)ms);
	/* Ended before the completion went out, not just soon after. */
	assert_false(itest_group_alive(pgid));
	assert_true(ms < 10000);
	itest_pass(e);
}

static void test_worker_children_child_ignoring_sigterm_is_killed(void **state)
{
	itest_env *e = *state;
	uint64_t ms;
	pid_t pgid = run_leaving_child(e, "(trap '' TERM; exec sleep 30)", &ms);
	print_message("job succeeded %llu ms after its command started\n",
	    (unsigned long long)ms);
	assert_int_equal(wait_group_gone(pgid, 1000), 0);
	itest_pass(e);
}

static void test_worker_children_die_with_a_sigkilled_worker(void **state)
{
	itest_env *e = *state;
	char body[PATH_MAX + 64], id[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	snprintf(body, sizeof body, GROUP_TO "%s/group\nsleep 60\n", e->dir);
	start_worker(e, body, &w);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	pid_t pgid = read_pid(e, "group");
	assert_true(itest_group_alive(pgid));

	assert_int_equal(itest_signal(w, SIGKILL), 0);
	assert_int_equal(itest_wait_exit(w, 5000), 0);
	uint64_t t0 = itest_now_ms();
	assert_int_equal(wait_group_gone(pgid, 2000), 0);
	print_message("command gone %llu ms after the worker died\n",
	    (unsigned long long)(itest_now_ms() - t0));
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_worker_children_background_child_ends_with_the_job,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_worker_children_child_ignoring_sigterm_is_killed,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_worker_children_die_with_a_sigkilled_worker, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name(
	    "worker_children", tests, NULL, NULL);
}
