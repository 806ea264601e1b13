/*
 * Dependencies with the real binaries: nqctl enqueue --after, nq-worker
 * handing a child its parents' results in NQ_PARENT_RESULTS, a parent's
 * failure ending one child (dependency_failed) and running a cleanup one,
 * and libnq's chain enqueued in one request.
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

static const char *const worker_flags[] = {"--queues", "q", "--handler",
    "emit=cat", "--handler", "join=cat \"$NQ_PARENT_RESULTS\"", "--handler",
    "fail=exit 65", NULL};

/* nqctl enqueue q TYPE --payload P [--after IDS [--on-parent-failure
 * POLICY]]: the new job's id. */
static void enqueue(itest_env *e, char id[NQ_ID_MAX], const char *type,
    const char *payload, const char *after, const char *policy)
{
	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "enqueue", "q", type, "--payload",
	        payload ? payload : "{}", after ? "--after" : NULL, after,
	        policy ? "--on-parent-failure" : NULL, policy, NULL),
	    0);
	if (r.code != 0)
		fprintf(stderr, "nqctl: %s\n", r.err);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
}

/* nqctl --json get ID, parsed. */
static json_t *get_json(itest_env *e, const char *id)
{
	itest_run r;
	json_t *j;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	itest_run_free(&r);
	return j;
}

/* A -> (B, C) -> D: D runs after both and reads both results. */
static void test_workflows_diamond_reads_its_parents_results(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	nq_job *job;
	char a[NQ_ID_MAX], b[NQ_ID_MAX], cc[NQ_ID_MAX], d[NQ_ID_MAX];
	char bc[2 * NQ_ID_MAX + 1];
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue(e, a, "emit", "{\"a\":0}", NULL, NULL);
	enqueue(e, b, "emit", "{\"b\":1}", a, NULL);
	enqueue(e, cc, "emit", "{\"c\":2}", a, NULL);
	snprintf(bc, sizeof bc, "%s,%s", b, cc);
	enqueue(e, d, "join", NULL, bc, NULL);
	json_t *j = get_json(e, d);
	assert_string_equal(itest_json_str(j, "state"), "waiting");
	assert_int_equal(json_array_size(json_object_get(j, "parents")), 2);
	json_decref(j);
	assert_int_equal(itest_worker_start(e, worker_flags, &w), 0);
	assert_int_equal(
	    itest_wait_state(c, d, NQ_STATE_SUCCEEDED, 30000, &job), 0);
	size_t len;
	const char *res = nq_job_result(job, &len);
	json_t *r = json_loadb(res, len, 0, NULL);
	assert_non_null(r);
	assert_int_equal(json_object_size(r), 2);
	assert_int_equal(itest_json_int(json_object_get(r, b), "b"), 1);
	assert_int_equal(itest_json_int(json_object_get(r, cc), "c"), 2);
	json_decref(r);
	nq_job_free(job);
	j = get_json(e, a);
	assert_int_equal(json_array_size(json_object_get(j, "children")), 2);
	json_decref(j);
	nq_client_close(c);
	itest_pass(e);
}

/* B dies for good: its child ends dependency_failed, and the cleanup
 * child (on_parent_failure run) still runs. */
static void test_workflows_failed_parent_runs_only_the_cleanup(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	nq_job *job;
	char b[NQ_ID_MAX], d[NQ_ID_MAX], clean[NQ_ID_MAX];
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	enqueue(e, b, "fail", NULL, NULL, NULL);
	enqueue(e, d, "emit", "{}", b, NULL);
	enqueue(e, clean, "join", NULL, b, "run");
	assert_int_equal(itest_worker_start(e, worker_flags, &w), 0);
	assert_int_equal(
	    itest_wait_state(c, clean, NQ_STATE_SUCCEEDED, 30000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, d, NQ_STATE_CANCELED, 10000, &job), 0);
	assert_string_equal(nq_job_dead_reason(job), "dependency_failed");
	assert_int_equal(nq_job_attempt(job), 0);
	nq_job_free(job);
	nq_client_close(c);
	itest_pass(e);
}

/* nq_enqueue_chain: each link runs after the one before it. */
static void test_workflows_chain_runs_link_by_link(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	nq_enqueue_result res[5];
	nq_job_spec specs[5];
	uint64_t last = 0;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < 5; i++)
		specs[i] = (nq_job_spec){.queue = "q", .type = "emit"};
	assert_int_equal(nq_enqueue_chain(c, specs, 5, res), 0);
	assert_int_equal(itest_worker_start(e, worker_flags, &w), 0);
	for (int i = 0; i < 5; i++) {
		nq_job *job;
		assert_int_equal(res[i].err, 0);
		assert_int_equal(itest_wait_state(c, res[i].id,
		                     NQ_STATE_SUCCEEDED, 30000, &job),
		    0);
		assert_true(nq_job_started_us(job) >= last);
		assert_int_equal(nq_job_parent_count(job), i > 0);
		last = nq_job_finished_us(job);
		nq_job_free(job);
	}
	nq_client_close(c);
	itest_pass(e);
}

/* Chains through broker SIGKILLs: every link succeeds, none starts
 * before its parent finished, and none is left waiting. */
static void test_workflows_chains_survive_broker_kills(void **state)
{
	enum { CHAINS = 3, LINKS = 30 };
	itest_env *e = *state;
	itest_proc *w;
	nq_client *c;
	nq_enqueue_result res[CHAINS][LINKS];
	nq_job_spec specs[LINKS];
	const char *flags[] = {"--queues", "q", "--handler",
	    "emit=sleep 0.05; cat", "--concurrency", "4", NULL};
	itest_qstats qs;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < LINKS; i++)
		specs[i] = (nq_job_spec){.queue = "q", .type = "emit"};
	for (int k = 0; k < CHAINS; k++)
		assert_int_equal(nq_enqueue_chain(c, specs, LINKS, res[k]), 0);
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	for (int i = 0; i < 3; i++) {
		itest_sleep_ms(300);
		assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
		assert_int_equal(itest_broker_start(e, NULL), 0);
	}
	for (int k = 0; k < CHAINS; k++) {
		uint64_t before = 0;
		for (int i = 0; i < LINKS; i++) {
			nq_job *job;
			assert_int_equal(itest_wait_state(c, res[k][i].id,
			                     NQ_STATE_SUCCEEDED, 60000, &job),
			    0);
			assert_true(nq_job_started_us(job) >= before);
			before = nq_job_finished_us(job);
			nq_job_free(job);
		}
	}
	assert_int_equal(itest_queue_stats(c, "q", &qs, NULL), 0);
	assert_int_equal(qs.waiting, 0);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_workflows_diamond_reads_its_parents_results, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_workflows_failed_parent_runs_only_the_cleanup, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_workflows_chain_runs_link_by_link, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_workflows_chains_survive_broker_kills, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
