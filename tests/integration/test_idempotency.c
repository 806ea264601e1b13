/*
 * Idempotent enqueue: the same idempotency key returns the job already
 * there (duplicate = true) instead of a second job, also after a restart,
 * for as long as the job's record is there.
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

/* Enqueues to queue q with key through libnq; returns whether the broker
 * called it a duplicate. */
static bool enqueue_keyed(nq_client *c, const char *key, char id[NQ_ID_MAX])
{
	bool dup = false;
	nq_job_spec s = {.queue = "q",
	    .type = "echo",
	    .payload = "x",
	    .payload_len = 1,
	    .idempotency_key = key};
	assert_int_equal(nq_enqueue(c, &s, id, &dup), NQ_OK);
	return dup;
}

/* A key never names a job that is gone: once a finished job's record goes
 * after its result_ttl, the key makes a new job. */
static void test_idempotency_key_goes_with_the_jobs_record(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--result-ttl", "1s", NULL};
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_false(enqueue_keyed(c, "receipt-1", id1));
	assert_int_equal(
	    itest_wait_state(c, id1, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	assert_int_equal(itest_wait_gone(c, id1, 5000), 0);

	assert_false(enqueue_keyed(c, "receipt-1", id2));
	assert_string_not_equal(id2, id1);
	assert_int_equal(nq_get(c, id2, &j), NQ_OK);
	assert_string_equal(nq_job_idempotency_key(j), "receipt-1");
	nq_job_free(j);
	nq_client_close(c);
	itest_pass(e);
}

/* With --result-ttl 0 a record goes as the job ends: on the path that
 * ends a lease without reading the record, and on a cancel alike, the key
 * goes with it. */
static void test_idempotency_key_goes_at_once_with_result_ttl_0(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--result-ttl", "0", NULL};
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	char id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	nq_job *j = NULL;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_false(enqueue_keyed(c, "refund-1", id1));
	assert_int_equal(nq_cancel(c, id1, &j), NQ_OK);
	nq_job_free(j);
	assert_false(enqueue_keyed(c, "refund-1", id2));
	assert_string_not_equal(id2, id1);

	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_wait_gone(c, id2, 15000), 0);
	assert_false(enqueue_keyed(c, "refund-1", id1));
	assert_string_not_equal(id1, id2);
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
	    cmocka_unit_test_setup_teardown(
	        test_idempotency_key_goes_with_the_jobs_record, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_idempotency_key_goes_at_once_with_result_ttl_0,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("idempotency", tests, NULL, NULL);
}
