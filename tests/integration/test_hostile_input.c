/*
 * Hostile and oversized input: a payload over --max-payload is refused with
 * a message naming both sizes; an unknown protocol version is refused with
 * the versions served; and a few hundred random or corrupted messages on
 * every socket leave the broker answering and working.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nq/v1/api.pb-c.h"

#define MESSAGES_PER_SOCKET 150

static void test_hostile_input_payload_over_limit_names_both_sizes(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--max-payload", "1024", NULL};
	static char big[2000], small[1000];
	nq_enqueue_result res[2];
	char id[NQ_ID_MAX];
	bool dup;
	nq_client *c;

	memset(big, 'b', sizeof big);
	memset(small, 's', sizeof small);
	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);

	nq_job_spec specs[2] = {
	    {.queue = "q",
	        .type = "t",
	        .payload = big,
	        .payload_len = sizeof big},
	    {.queue = "q",
	        .type = "t",
	        .payload = small,
	        .payload_len = sizeof small},
	};
	assert_int_equal(nq_enqueue_batch(c, specs, 2, res), NQ_OK);
	assert_int_equal(res[0].err, NQ_EINVAL);
	print_message("broker says: %s\n", res[0].message);
	assert_non_null(strstr(res[0].message, "2000"));
	assert_non_null(strstr(res[0].message, "1024"));
	/* The item under the limit in the same batch is taken. */
	assert_int_equal(res[1].err, NQ_OK);
	assert_true(itest_is_id(res[1].id));

	assert_int_equal(nq_enqueue(c, &specs[0], id, &dup), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(c), "2000"));
	assert_non_null(strstr(nq_client_last_error(c), "1024"));

	nq_queue_stats qs;
	assert_int_equal(itest_queue_stats(c, "q", &qs, NULL), 0);
	assert_int_equal(qs.ready, 1);
	nq_client_close(c);
	itest_pass(e);
}

static nng_socket dial(const char *url, bool push)
{
	nng_socket s;
	int rv = push ? nng_push0_open(&s) : nng_req0_open(&s);
	assert_int_equal(rv, 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 2000), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 100), 0);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	return s;
}

static void pack_request(Nq__V1__Request *req, uint8_t **buf, size_t *len)
{
	*len = nq__v1__request__get_packed_size(req);
	*buf = malloc(*len + 1);
	assert_non_null(*buf);
	nq__v1__request__pack(req, *buf);
}

static void test_hostile_input_unknown_version_is_failed_precondition(
    void **state)
{
	itest_env *e = *state;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest st = NQ__V1__STATS_REQUEST__INIT;
	uint8_t *buf, *rbuf;
	size_t len, rlen;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	req.version = 2;
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &st;
	pack_request(&req, &buf, &len);

	nng_socket s = dial(e->api_url, false);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_send(s, buf, len, 0), 0);
	assert_int_equal(nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC), 0);
	Nq__V1__Reply *rep = nq__v1__reply__unpack(NULL, rlen, rbuf);
	assert_non_null(rep);
	assert_non_null(rep->status);
	assert_int_equal(rep->status->code, NQ__V1__CODE__FAILED_PRECONDITION);
	assert_true(strlen(rep->status->message) > 0);
	bool serves_v1 = false;
	for (size_t i = 0; i < rep->n_versions; i++)
		serves_v1 |= rep->versions[i] == 1;
	assert_true(serves_v1);
	nq__v1__reply__free_unpacked(rep, NULL);
	nng_free(rbuf, rlen);
	free(buf);
	nng_close(s);
	itest_pass(e);
}

#define SPRAY_BUDGET_MS 20000

/* The client of the last check, reachable until exit (see its end). */
nq_client *hostile_kept_client;

/* xorshift64*: the same bytes on every run. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Valid messages of each kind, to be corrupted: they reach deeper into the
 * decoders than pure noise does. */
static void seed_messages(uint8_t **bufs, size_t *lens)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	Nq__V1__FetchRequest fetch = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {"fuzz"};
	Nq__V1__CompletionBatch batch = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion comp = NQ__V1__COMPLETION__INIT, *comps[] = {&comp};

	spec.queue = "fuzz";
	spec.type = "t";
	spec.payload.data = (uint8_t *)"payload";
	spec.payload.len = 7;
	spec.max_attempts = 3;
	spec.idempotency_key = "k";
	enq.n_jobs = 1;
	enq.jobs = specs;
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	pack_request(&req, &bufs[0], &lens[0]);

	fetch.worker_id = "fuzzer";
	fetch.n_queues = 1;
	fetch.queues = queues;
	fetch.max_jobs = 1;
	fetch.wait_ms = 10;
	fetch.lease_ms = 1000;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fetch;
	pack_request(&req, &bufs[1], &lens[1]);

	comp.id = "0123456789abcdef";
	comp.lease_token = 42;
	comp.outcome = NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
	batch.version = 1;
	batch.worker_id = "fuzzer";
	batch.n_completions = 1;
	batch.completions = comps;
	lens[2] = nq__v1__completion_batch__get_packed_size(&batch);
	bufs[2] = malloc(lens[2]);
	assert_non_null(bufs[2]);
	nq__v1__completion_batch__pack(&batch, bufs[2]);
}

/* The i-th message: empty, noise of small to oversized length, or a seed
 * message with some bytes changed. The caller frees *out. */
static void make_message(uint64_t *rng, int i, uint8_t *const *seeds,
    const size_t *seed_lens, int kind, uint8_t **out, size_t *len)
{
	size_t n;
	uint8_t *m;
	if (i % 3 == 1) {
		n = seed_lens[kind];
		m = malloc(n + 1);
		assert_non_null(m);
		memcpy(m, seeds[kind], n);
		for (int k = 1 + (int)(rng_next(rng) % 4); k > 0 && n; k--)
			m[rng_next(rng) % n] = (uint8_t)rng_next(rng);
		/* Sometimes cut short too. */
		if (rng_next(rng) % 4 == 0)
			n = rng_next(rng) % n;
		*out = m;
		*len = n;
		return;
	}
	if (i % 25 == 0)
		n = 0;
	else if (i % 50 == 13)
		n = 300000 + rng_next(rng) % 3000000; /* over any limit */
	else
		n = rng_next(rng) % 4096;
	m = malloc(n + 1);
	assert_non_null(m);
	for (size_t k = 0; k < n; k++)
		m[k] = (uint8_t)rng_next(rng);
	*out = m;
	*len = n;
}

/* Sends the messages to one socket; on REQ sockets, every reply that comes
 * within 100 ms must be a well-formed Reply. Returns the replies seen. */
static int spray(itest_env *e, const char *url, bool push, int kind,
    uint64_t *rng, uint8_t *const *seeds, const size_t *seed_lens)
{
	nng_socket s = dial(url, push);
	int replies = 0;
	uint64_t start = itest_now_ms();
	/* Bounded in time too: a send may wait up to its 2 s timeout while
	 * the broker drops a connection that sent it an oversized message. */
	for (int i = 0; i < MESSAGES_PER_SOCKET &&
	                itest_now_ms() - start < SPRAY_BUDGET_MS;
	     i++) {
		if (itest_broker_died(e))
			fail_msg("the broker died on message %d to %s", i, url);
		uint8_t *m, *rbuf;
		size_t len, rlen;
		make_message(rng, i, seeds, seed_lens, kind, &m, &len);
		int rv = nng_send(s, m, len, 0);
		free(m);
		if (rv != 0 || push)
			continue;
		if (nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC) != 0)
			continue;
		Nq__V1__Reply *rep = nq__v1__reply__unpack(NULL, rlen, rbuf);
		if (!rep)
			fail_msg("message %d to %s got a reply that is not a "
			         "Reply (%zu bytes)",
			    i, url, rlen);
		nq__v1__reply__free_unpacked(rep, NULL);
		nng_free(rbuf, rlen);
		replies++;
	}
	/* Left open until the test process exits: nng 1.5.2's nng_close can
	 * hang for good on a socket whose peer dropped it mid-message (nng
	 * issue 1543), which is exactly what this spray provokes. */
	(void)s;
	return replies;
}

static void test_hostile_input_random_bytes_leave_broker_working(void **state)
{
	itest_env *e = *state;
	uint64_t rng = 0x5eed5eed12345678ULL;
	uint8_t *seeds[3];
	size_t seed_lens[3];
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	seed_messages(seeds, seed_lens);
	int api = spray(e, e->api_url, false, 0, &rng, seeds, seed_lens);
	int work = spray(e, e->work_url, false, 1, &rng, seeds, seed_lens);
	spray(e, e->results_url, true, 2, &rng, seeds, seed_lens);
	print_message("replies: api %d, work %d of %d each\n", api, work,
	    MESSAGES_PER_SOCKET);
	for (int i = 0; i < 3; i++)
		free(seeds[i]);
	itest_sleep_ms(500);

	assert_true(itest_alive(e->broker));
	assert_int_equal(itest_broker_wait_ready(e, 30000), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "after", "t", "still here", id), 0);
	assert_int_equal(nq_get(c, id, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_READY);
	size_t len = 0;
	const void *p = nq_job_payload(j, &len);
	assert_int_equal(len, 10);
	assert_memory_equal(p, "still here", 10);
	nq_job_free(j);
	itest_pass(e);
	/* c stays open until exit, like the spray sockets: closing sockets
	 * of this process after the spray has hung in nng 1.5.2 (issue
	 * 1543), and the test is about the broker, not about closing. Kept
	 * reachable so that LeakSanitizer does not count it as lost. */
	hostile_kept_client = c;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_payload_over_limit_names_both_sizes,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_unknown_version_is_failed_precondition,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_random_bytes_leave_broker_working,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("hostile_input", tests, NULL, NULL);
}
