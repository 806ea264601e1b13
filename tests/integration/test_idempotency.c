/*
 * Idempotent enqueue: the same idempotency key returns the job already
 * there (duplicate = true) instead of a second job, also after a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "harness.h"

static void enqueue_with_key(itest_env *e, const char *key, char id[NQ_ID_MAX])
{
	itest_run r;
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "enqueue", "idem", "t", "--payload",
	        "{\"n\":1}", "--idempotency-key", key, NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
}

static uint64_t jobs_in(const itest_qstats *q)
{
	return q->scheduled + q->ready + q->leased + q->succeeded + q->dead +
	       q->canceled + q->expired;
}

static void test_idempotency_same_key_returns_the_same_job(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX], id3[NQ_ID_MAX], id4[NQ_ID_MAX];
	itest_qstats qs;
	nq_client *c;
	bool dup = true;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	enqueue_with_key(e, "order-17", id1);
	enqueue_with_key(e, "order-17", id2);
	assert_string_equal(id1, id2);

	assert_int_equal(itest_client(e, 0, &c), 0);
	nq_job_spec s = {.queue = "idem",
	    .type = "t",
	    .payload = "x",
	    .payload_len = 1,
	    .idempotency_key = "order-17"};
	assert_int_equal(nq_enqueue(c, &s, id3, &dup), NQ_OK);
	assert_string_equal(id3, id1);
	assert_true(dup);

	assert_int_equal(itest_queue_stats(c, "idem", &qs, NULL), 0);
	assert_int_equal(jobs_in(&qs), 1);
	assert_int_equal(qs.ready, 1);

	/* The first use of a key is no duplicate. */
	s.idempotency_key = "order-18";
	assert_int_equal(nq_enqueue(c, &s, id4, &dup), NQ_OK);
	assert_false(dup);
	assert_string_not_equal(id4, id1);

	nq_job *j;
	assert_int_equal(nq_get(c, id1, &j), NQ_OK);
	assert_string_equal(nq_job_idempotency_key(j), "order-17");
	nq_job_free(j);
	nq_client_close(c);
	itest_pass(e);
}

static void test_idempotency_keys_survive_a_restart(void **state)
{
	itest_env *e = *state;
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	itest_qstats qs;
	nq_client *c;
	bool dup = false;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	enqueue_with_key(e, "invoice-9", id1);
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);

	assert_int_equal(itest_client(e, 0, &c), 0);
	nq_job_spec s = {.queue = "idem",
	    .type = "t",
	    .payload = "x",
	    .payload_len = 1,
	    .idempotency_key = "invoice-9"};
	assert_int_equal(nq_enqueue(c, &s, id2, &dup), NQ_OK);
	assert_string_equal(id2, id1);
	assert_true(dup);
	assert_int_equal(itest_queue_stats(c, "idem", &qs, NULL), 0);
	assert_int_equal(jobs_in(&qs), 1);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_idempotency_same_key_returns_the_same_job, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_idempotency_keys_survive_a_restart, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("idempotency", tests, NULL, NULL);
}
