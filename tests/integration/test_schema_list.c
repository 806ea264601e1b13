/*
 * The payload's schema version reaches the handler, which may reject it:
 * nq-worker sets NQ_SCHEMA_VERSION and maps exit 64 to schema_rejected,
 * libnq's handler calls nq_result_schema_rejected(); either way the job is
 * dead at once with reason schema_rejected. And nqctl list: filters, the
 * table, --json, and paging that says how to get the next page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

/* Enqueues a job of type t with schema version v that may run 5 times. */
static void enqueue_version(
    nq_client *c, const char *type, uint32_t v, char id[NQ_ID_MAX])
{
	nq_job_spec s = {.queue = "q",
	    .type = type,
	    .payload = "x",
	    .payload_len = 1,
	    .schema_version = v,
	    .max_attempts = 5};
	assert_int_equal(nq_enqueue(c, &s, id, NULL), NQ_OK);
}

/* Waits until job id is dead, rejected on its first attempt. */
static void assert_rejected(nq_client *c, const char *id)
{
	nq_job *j;
	assert_int_equal(itest_wait_state(c, id, NQ_STATE_DEAD, 15000, &j), 0);
	assert_string_equal(nq_job_dead_reason(j), "schema_rejected");
	assert_int_equal(nq_job_attempt(j), 1);
	assert_int_equal(nq_job_error_count(j), 1);
	nq_job_free(j);
}

static void test_schema_version_reaches_the_command_and_64_rejects(void **state)
{
	itest_env *e = *state;
	char script[PATH_MAX], handler[PATH_MAX + 16], id1[NQ_ID_MAX],
	    id2[NQ_ID_MAX];
	const char *body = "printf %s \"$NQ_SCHEMA_VERSION\"\n"
	                   "if [ \"$NQ_SCHEMA_VERSION\" -ge 3 ]; then\n"
	                   "  echo \"no schema v$NQ_SCHEMA_VERSION\" >&2\n"
	                   "  exit 64\n"
	                   "fi\n";
	itest_proc *w;
	nq_client *c;
	nq_job *j;
	size_t len;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(
	    itest_write_script(e, "v", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "v=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue_version(c, "v", 2, id1);
	enqueue_version(c, "v", 3, id2);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, &j), 0);
	const char *result = nq_job_result(j, &len);
	assert_int_equal(len, 1);
	assert_memory_equal(result, "2", 1);
	nq_job_free(j);
	assert_rejected(c, id2);
	assert_int_equal(nq_get(c, id2, &j), NQ_OK);
	const char *msg = nq_job_error(j, 0, NULL, NULL);
	assert_non_null(strstr(msg, "exit 64"));
	assert_non_null(strstr(msg, "no schema v3"));
	nq_job_free(j);
	assert_int_equal(
	    itest_wait_log(w, "reason=schema_rejected", 1, 5000), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* Takes schema version 1 only. */
static nq_outcome versioned(const nq_job *job, nq_result *res, void *arg)
{
	(void)arg;
	if (nq_job_schema_version(job) == 1)
		return NQ_OUTCOME_SUCCEEDED;
	nq_result_schema_rejected(res, NULL);
	return NQ_OUTCOME_FAILED;
}

static void *worker_main(void *arg)
{
	nq_worker_run(arg);
	return NULL;
}

static void test_schema_version_rejected_by_a_libnq_handler(void **state)
{
	itest_env *e = *state;
	const char *queues[] = {"q"};
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_worker *w;
	nq_client *c;
	pthread_t t;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	nq_worker_opts o = {
	    .conn = {.work_url = e->work_url, .results_url = e->results_url},
	    .queues = queues,
	    .nqueues = 1,
	    .poll_ms = 200};
	assert_int_equal(nq_worker_open(&w, &o), NQ_OK);
	assert_int_equal(nq_worker_handle(w, "lib", versioned, NULL), NQ_OK);
	assert_int_equal(pthread_create(&t, NULL, worker_main, w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue_version(c, "lib", 1, id1);
	enqueue_version(c, "lib", 2, id2);
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	assert_rejected(c, id2);
	nq_worker_stop(w);
	pthread_join(t, NULL);
	nq_worker_close(w);
	nq_client_close(c);
	itest_pass(e);
}

/* Runs nqctl list with args (NULL-terminated) and returns its stdout in
 * out (to free). */
static void list_run(itest_env *e, char **out, const char *const *args)
{
	const char *argv[16] = {"--api", e->api_url, "list"};
	size_t n = 3;
	itest_run r;
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	assert_int_equal(itest_nqctl_argv(e, 15000, argv, &r), 0);
	assert_int_equal(r.code, 0);
	*out = strdup(r.out);
	itest_run_free(&r);
}

/* The id after "--after " in a "next page:" line, "" when none. */
static void next_after(const char *out, char id[NQ_ID_MAX])
{
	const char *p = strstr(out, "next page: nqctl list");
	const char *a = p ? strstr(p, "--after ") : NULL;
	id[0] = '\0';
	if (a)
		snprintf(id, NQ_ID_MAX, "%.16s", a + 8);
}

static void test_list_filters_and_pages(void **state)
{
	itest_env *e = *state;
	char ids[5][NQ_ID_MAX], other[NQ_ID_MAX], after[NQ_ID_MAX], *out;
	nq_client *c;
	nq_job *j = NULL;
	itest_run r;
	json_t *o;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	/* a0, b, a1, a2, a3, a4 (canceled) */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(itest_enqueue(c, "q", "a", "x", ids[i]), 0);
		if (i == 0)
			assert_int_equal(
			    itest_enqueue(c, "q", "b", "x", other), 0);
	}
	assert_int_equal(nq_cancel(c, ids[4], &j), NQ_OK);
	nq_job_free(j);

	/* Pages of two ready jobs of type a: 0 1, then 2 3, then none. */
	const char *first[] = {"--queue", "q", "--type", "a", "--state",
	    "ready", "--limit", "2", NULL};
	list_run(e, &out, first);
	assert_non_null(strstr(out, ids[0]));
	assert_non_null(strstr(out, ids[1]));
	assert_null(strstr(out, ids[2]));
	assert_null(strstr(out, other)); /* type b */
	assert_non_null(strstr(out, "ready"));
	next_after(out, after);
	assert_string_equal(after, ids[1]);
	assert_non_null(strstr(out, "--queue q --state ready --type a "
	                            "--limit 2 --after"));
	free(out);
	const char *second[] = {"--queue", "q", "--type", "a", "--state",
	    "ready", "--limit", "2", "--after", after, NULL};
	list_run(e, &out, second);
	assert_non_null(strstr(out, ids[2]));
	assert_non_null(strstr(out, ids[3]));
	assert_null(strstr(out, ids[4])); /* canceled */
	free(out);

	/* --json: the jobs in order and where the next page starts. */
	const char *argv[] = {
	    "--api", e->api_url, "--json", "list", "--state", "canceled", NULL};
	assert_int_equal(itest_nqctl_argv(e, 15000, argv, &r), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &o), 0);
	json_t *jobs = json_object_get(o, "jobs");
	assert_int_equal(json_array_size(jobs), 1);
	assert_string_equal(
	    itest_json_str(json_array_get(jobs, 0), "id"), ids[4]);
	assert_true(json_is_null(json_object_get(o, "next_after_id")));
	json_decref(o);
	itest_run_free(&r);

	const char *bad[] = {
	    "--api", e->api_url, "list", "--state", "gone", NULL};
	assert_int_equal(itest_nqctl_argv(e, 15000, bad, &r), 0);
	assert_int_equal(r.code, 2);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_schema_version_reaches_the_command_and_64_rejects,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_schema_version_rejected_by_a_libnq_handler, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_list_filters_and_pages, itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("schema_list", tests, NULL, NULL);
}
