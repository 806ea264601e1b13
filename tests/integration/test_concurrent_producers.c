/*
 * Group commit: 100 producers enqueuing one job at a time each get their own
 * confirmation, the broker needs fewer commits than enqueues, and every
 * confirmed job is still there after a SIGKILL. One producer pipelining its
 * batches (nq_enqueue_batch_send) gets the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NPRODUCERS 100
#define PER_PRODUCER 20
#define NJOBS (NPRODUCERS * PER_PRODUCER)

typedef struct producer {
	const itest_env *env;
	int index;
	int confirmed;
	int first_err; /* NQ_OK, or the first error seen */
	char message[200];
	char ids[PER_PRODUCER][NQ_ID_MAX];
} producer;

/* cmocka asserts only on the main thread; a producer records and returns. */
static void *produce(void *arg)
{
	producer *p = arg;
	nq_client *c;
	p->first_err = itest_client(p->env, 30000, &c);
	for (int i = 0; p->first_err == NQ_OK && i < PER_PRODUCER; i++) {
		char payload[64];
		bool dup = false;
		int len = snprintf(
		    payload, sizeof payload, "producer %d job %d", p->index, i);
		nq_job_spec s = {.queue = "many",
		    .type = "t",
		    .payload = payload,
		    .payload_len = (size_t)len};
		int rv = nq_enqueue(c, &s, p->ids[i], &dup);
		if (rv != NQ_OK) {
			p->first_err = rv;
			snprintf(p->message, sizeof p->message, "%s",
			    nq_client_last_error(c));
			break;
		}
		p->confirmed++;
	}
	if (p->first_err == NQ_OK)
		nq_client_close(c);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_concurrent_producers_commits_are_grouped_and_durable(
    void **state)
{
	itest_env *e = *state;
	producer *ps = calloc(NPRODUCERS, sizeof *ps);
	pthread_t th[NPRODUCERS];
	nq_broker_stats bs;
	itest_qstats qs;
	nq_client *c;
	assert_non_null(ps);

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_queue_stats(c, "many", &qs, &bs), 0);
	uint64_t commits_before = bs.commits;

	uint64_t t0 = itest_now_ms();
	for (int i = 0; i < NPRODUCERS; i++) {
		ps[i].env = e;
		ps[i].index = i;
		assert_int_equal(
		    pthread_create(&th[i], NULL, produce, &ps[i]), 0);
	}
	for (int i = 0; i < NPRODUCERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < NPRODUCERS; i++)
		if (ps[i].first_err != NQ_OK)
			fail_msg("producer %d: %s (%s) after %d jobs", i,
			    nq_err_name(ps[i].first_err), ps[i].message,
			    ps[i].confirmed);

	assert_int_equal(itest_queue_stats(c, "many", &qs, &bs), 0);
	uint64_t commits = bs.commits - commits_before;
	print_message("%d enqueues by %d producers in %llu ms, %llu commits\n",
	    NJOBS, NPRODUCERS, (unsigned long long)(itest_now_ms() - t0),
	    (unsigned long long)commits);
	assert_true(commits > 0);
	assert_true(commits < NJOBS);
	assert_int_equal(qs.ready, NJOBS);
	nq_client_close(c);

	/* Every id is distinct. */
	char(*all)[NQ_ID_MAX] = calloc(NJOBS, NQ_ID_MAX);
	assert_non_null(all);
	for (int i = 0; i < NPRODUCERS; i++)
		memcpy(all[i * PER_PRODUCER], ps[i].ids, sizeof ps[i].ids);
	qsort(all, NJOBS, NQ_ID_MAX, cmp_id);
	for (int i = 0; i < NJOBS; i++) {
		assert_true(itest_is_id(all[i]));
		if (i > 0)
			assert_string_not_equal(all[i - 1], all[i]);
	}

	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < NJOBS; i++) {
		nq_job *j;
		int rv = nq_get(c, all[i], &j);
		if (rv != NQ_OK)
			fail_msg("confirmed job %s lost: %s", all[i],
			    nq_err_name(rv));
		assert_int_equal(nq_job_state(j), NQ_STATE_READY);
		assert_string_equal(nq_job_queue(j), "many");
		nq_job_free(j);
	}
	assert_int_equal(itest_queue_stats(c, "many", &qs, NULL), 0);
	assert_int_equal(qs.ready, NJOBS);
	nq_client_close(c);
	free(all);
	free(ps);
	itest_pass(e);
}

#define NPIPE 8
#define PIPE_BATCH 50

/* Every job of the batches sent is READY in queue "pipe" after a restart. */
static void assert_stored(itest_env *e, char ids[][PIPE_BATCH][NQ_ID_MAX],
    const bool *confirmed, int n)
{
	nq_client *c;
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int b = 0; b < n; b++)
		for (int i = 0; confirmed[b] && i < PIPE_BATCH; i++) {
			nq_job *j;
			int rv = nq_get(c, ids[b][i], &j);
			if (rv != NQ_OK)
				fail_msg("confirmed job %s lost: %s", ids[b][i],
				    nq_err_name(rv));
			assert_int_equal(nq_job_state(j), NQ_STATE_READY);
			assert_string_equal(nq_job_queue(j), "pipe");
			nq_job_free(j);
		}
	nq_client_close(c);
}

/* Pipelined enqueue: batches sent one after another without waiting are
 * each confirmed by their wait, in any order, with distinct ids that
 * survive a SIGKILL; a bad batch is refused at send with nothing to wait
 * for; a batch whose broker dies before its wait is confirmed only if it
 * was stored. */
static void test_pipelined_batches_confirm_in_any_order(void **state)
{
	itest_env *e = *state;
	static nq_enqueue_result res[NPIPE + 1][PIPE_BATCH];
	static char ids[NPIPE + 1][PIPE_BATCH][NQ_ID_MAX];
	bool confirmed[NPIPE + 1] = {false};
	nq_job_spec specs[PIPE_BATCH];
	nq_enqueue_pending *p[NPIPE + 1];
	nq_client *c;
	for (int i = 0; i < PIPE_BATCH; i++)
		specs[i] = (nq_job_spec){.queue = "pipe", .type = "t"};
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	for (int b = 0; b < NPIPE; b++)
		assert_int_equal(
		    nq_enqueue_batch_send(c, specs, PIPE_BATCH, res[b], &p[b]),
		    NQ_OK);
	for (int b = NPIPE - 1; b >= 0; b--) {
		assert_int_equal(nq_enqueue_batch_wait(c, p[b]), NQ_OK);
		for (int i = 0; i < PIPE_BATCH; i++) {
			assert_int_equal(res[b][i].err, NQ_OK);
			assert_true(itest_is_id(res[b][i].id));
			memcpy(ids[b][i], res[b][i].id, NQ_ID_MAX);
		}
		confirmed[b] = true;
	}
	char(*all)[NQ_ID_MAX] = calloc(NPIPE * PIPE_BATCH, NQ_ID_MAX);
	assert_non_null(all);
	memcpy(all, ids, NPIPE * PIPE_BATCH * NQ_ID_MAX);
	qsort(all, NPIPE * PIPE_BATCH, NQ_ID_MAX, cmp_id);
	for (int i = 1; i < NPIPE * PIPE_BATCH; i++)
		assert_string_not_equal(all[i - 1], all[i]);
	free(all);

	nq_enqueue_pending *bad = (void *)1;
	specs[3].queue = "no spaces";
	assert_int_equal(
	    nq_enqueue_batch_send(c, specs, PIPE_BATCH, res[NPIPE], &bad),
	    NQ_EINVAL);
	assert_null(bad);
	assert_non_null(strstr(nq_client_last_error(c), "queue"));
	specs[3].queue = "pipe";
	assert_int_equal(nq_enqueue_batch_wait(c, NULL), NQ_EINVAL);

	assert_int_equal(
	    nq_enqueue_batch_send(c, specs, PIPE_BATCH, res[NPIPE], &p[NPIPE]),
	    NQ_OK);
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	int rv = nq_enqueue_batch_wait(c, p[NPIPE]);
	for (int i = 0; rv == NQ_OK && i < PIPE_BATCH; i++)
		memcpy(ids[NPIPE][i], res[NPIPE][i].id, NQ_ID_MAX);
	confirmed[NPIPE] = rv == NQ_OK;
	assert_true(rv == NQ_OK || rv == NQ_ETIMEDOUT || rv == NQ_ECONNECT ||
	            rv == NQ_ECLOSED);
	nq_client_close(c);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_stored(e, ids, confirmed, NPIPE + 1);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_producers_commits_are_grouped_and_durable,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pipelined_batches_confirm_in_any_order, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name(
	    "concurrent_producers", tests, NULL, NULL);
}
