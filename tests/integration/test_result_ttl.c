/*
 * Finished jobs stay readable, result included, for --result-ttl and are
 * gone after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "harness.h"

static void test_result_ttl_result_readable_then_gone(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--result-ttl", "1s", NULL};
	char id[NQ_ID_MAX];
	itest_proc *w;
	itest_run r;
	json_t *j;
	nq_client *c;
	nq_job *job;

	assert_int_equal(itest_broker_start(e, flags), 0);
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);

	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "echo",
	                     "--payload", "{\"keep\":\"briefly\"}", NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, &job), 0);
	uint64_t finished = itest_now_ms();
	nq_job_free(job);

	/* Right after: there, with its result. */
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	assert_string_equal(itest_json_str(j, "state"), "succeeded");
	assert_non_null(itest_json_str(j, "result"));
	assert_non_null(strstr(itest_json_str(j, "result"), "briefly"));
	json_decref(j);
	itest_run_free(&r);

	/* Some seconds later: gone. */
	itest_sleep_ms(3000);
	int code = 0;
	do {
		assert_int_equal(itest_nqctl(e, 15000, &r, "get", id, NULL), 0);
		code = r.code;
		itest_run_free(&r);
		if (code != 1)
			itest_sleep_ms(250);
	} while (code != 1 && itest_now_ms() - finished < 5000);
	assert_int_equal(code, 1);
	assert_int_equal(nq_get(c, id, &job), NQ_ENOTFOUND);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_result_ttl_result_readable_then_gone, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("result_ttl", tests, NULL, NULL);
}
