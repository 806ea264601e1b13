/*
 * A worker with more running jobs than one Extend request may carry
 * (NQI_LEASES_MAX) keeps every lease alive: no job lapses and runs twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nqi/leases.h"

/* More than one Extend holds, and as many as nq-worker runs at once. */
#define NJOBS 1024
/* Each command outlives its lease several times over, so a lease left out
 * of the extension lapses while the job still runs. */
#define LEASE "3s"
#define RUN_S 8

static void enqueue_all(nq_client *c, char (*ids)[NQ_ID_MAX])
{
	nq_job_spec *specs = calloc(NJOBS, sizeof *specs);
	nq_enqueue_result *res = calloc(NJOBS, sizeof *res);
	assert_non_null(specs);
	assert_non_null(res);
	for (int i = 0; i < NJOBS; i++)
		specs[i] = (nq_job_spec){.queue = "q", .type = "t"};
	assert_int_equal(nq_enqueue_batch(c, specs, NJOBS, res), NQ_OK);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(res[i].err, NQ_OK);
		memcpy(ids[i], res[i].id, NQ_ID_MAX);
	}
	free(specs);
	free(res);
}

/* Polls until every job succeeded, at most timeout_ms. */
static int wait_succeeded(nq_client *c, uint64_t timeout_ms)
{
	uint64_t until = itest_now_ms() + timeout_ms;
	itest_qstats qs = {0};
	while (itest_now_ms() < until) {
		if (itest_queue_stats(c, "q", &qs, NULL) == 0 &&
		    qs.succeeded == NJOBS)
			return 0;
		itest_sleep_ms(200);
	}
	fprintf(stderr, "succeeded=%llu leased=%llu ready=%llu\n",
	    (unsigned long long)qs.succeeded, (unsigned long long)qs.leased,
	    (unsigned long long)qs.ready);
	return -1;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Counts the lines of the runs file and the ids in it more than once. */
static void count_runs(const char *path, int *lines, int *twice)
{
	char *text = NULL, *save = NULL;
	size_t len = 0;
	char **ids = calloc(NJOBS * 2, sizeof *ids);
	assert_non_null(ids);
	assert_int_equal(itest_read_file(path, &text, &len), 0);
	*lines = 0;
	for (char *l = strtok_r(text, "\n", &save); l && *lines < NJOBS * 2;
	     l = strtok_r(NULL, "\n", &save))
		ids[(*lines)++] = l;
	qsort(ids, (size_t)*lines, sizeof *ids, cmp_line);
	*twice = 0;
	for (int i = 1; i < *lines; i++)
		*twice += strcmp(ids[i - 1], ids[i]) == 0;
	free(ids);
	free(text);
}

static void test_worker_extend_more_leases_than_one_request_holds(void **state)
{
	itest_env *e = *state;
	char runs[PATH_MAX], body[PATH_MAX + 64], script[PATH_MAX];
	char handler[PATH_MAX + 8], conc[16];
	char(*ids)[NQ_ID_MAX] = calloc(NJOBS, NQ_ID_MAX);
	itest_proc *w;
	nq_client *c;
	assert_non_null(ids);
	assert_true(NJOBS > NQI_LEASES_MAX);

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 30000, &c), 0);
	enqueue_all(c, ids);

	itest_path(e, "runs", runs, sizeof runs);
	snprintf(body, sizeof body, "echo \"$NQ_JOB_ID\" >> %s\nsleep %d", runs,
	    RUN_S);
	assert_int_equal(
	    itest_write_script(e, "run", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "t=%s", script);
	snprintf(conc, sizeof conc, "%d", NJOBS);
	const char *flags[] = {"--queues", "q", "--handler", handler,
	    "--concurrency", conc, "--lease", LEASE, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);

	assert_int_equal(wait_succeeded(c, 150000), 0);
	int lines, twice;
	count_runs(runs, &lines, &twice);
	print_message(
	    "%d runs of %d jobs, %d ids more than once\n", lines, NJOBS, twice);
	assert_int_equal(twice, 0);
	assert_int_equal(lines, NJOBS);
	/* No lease lapsed: the broker logged none, and every job succeeded
	 * on its first attempt. */
	char *log = NULL;
	size_t log_len = 0;
	assert_int_equal(itest_read_file(e->broker->log, &log, &log_len), 0);
	assert_null(strstr(log, "NQ-LEASE-EXPIRED"));
	assert_null(strstr(log, "NQ-WORKER-GONE"));
	free(log);
	for (int i = 0; i < NJOBS; i++) {
		nq_job *j;
		assert_int_equal(nq_get(c, ids[i], &j), NQ_OK);
		assert_int_equal(nq_job_attempt(j), 1);
		nq_job_free(j);
	}
	free(ids);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_worker_extend_more_leases_than_one_request_holds,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("worker_extend", tests, NULL, NULL);
}
