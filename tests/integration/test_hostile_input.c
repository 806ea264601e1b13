/*
 * Hostile and oversized input: a payload over --max-payload is refused with
 * a message naming both sizes; an unknown protocol version is refused with
 * the versions served; a few hundred random or corrupted messages on
 * every socket leave the broker answering and working; strings holding a
 * NUL byte or bytes that are not UTF-8 are refused, naming the field; and
 * a delay too long for the clock does not wrap around to "now".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#include <cmocka.h>

#include <nng/nng.h>
#include <pthread.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

	itest_qstats qs;
	assert_int_equal(itest_queue_stats(c, "q", &qs, NULL), 0);
	assert_int_equal(qs.ready, 1);
	nq_client_close(c);
	itest_pass(e);
}

#define SPRAY_BUDGET_MS 20000
#define SPRAYER_WAIT_MS 40000

/* xorshift64*: the same bytes on every run. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void pack_or_die(Nq__V1__Request *req, uint8_t **buf, size_t *len)
{
	*len = nq__v1__request__get_packed_size(req);
	*buf = malloc(*len + 1);
	if (!*buf)
		abort();
	nq__v1__request__pack(req, *buf);
}

/* A valid message of the kind (0 enqueue, 1 fetch, 2 completions), to be
 * corrupted: it reaches deeper into the decoders than pure noise does. */
static void seed_message(int kind, uint8_t **buf, size_t *len)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	Nq__V1__FetchRequest fetch = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {"fuzz"};
	Nq__V1__CompletionBatch batch = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion comp = NQ__V1__COMPLETION__INIT, *comps[] = {&comp};

	req.version = 1;
	if (kind == 0) {
		spec.queue = "fuzz";
		spec.type = "t";
		spec.payload.data = (uint8_t *)"payload";
		spec.payload.len = 7;
		spec.max_attempts = 3;
		spec.idempotency_key = "k";
		enq.n_jobs = 1;
		enq.jobs = specs;
		req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
		req.enqueue = &enq;
		pack_or_die(&req, buf, len);
		return;
	}
	if (kind == 1) {
		fetch.worker_id = "fuzzer";
		fetch.n_queues = 1;
		fetch.queues = queues;
		fetch.max_jobs = 1;
		fetch.wait_ms = 10;
		fetch.lease_ms = 1000;
		req.body_case = NQ__V1__REQUEST__BODY_FETCH;
		req.fetch = &fetch;
		pack_or_die(&req, buf, len);
		return;
	}
	comp.id = "0123456789abcdef";
	comp.lease_token = 42;
	comp.outcome = NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
	batch.version = 1;
	batch.worker_id = "fuzzer";
	batch.n_completions = 1;
	batch.completions = comps;
	*len = nq__v1__completion_batch__get_packed_size(&batch);
	if (!(*buf = malloc(*len)))
		abort();
	nq__v1__completion_batch__pack(&batch, *buf);
}

/* The i-th message: empty, noise of small to oversized length, or the seed
 * message with some bytes changed. The caller frees *out. */
static void make_message(uint64_t *rng, int i, const uint8_t *seed,
    size_t seed_len, uint8_t **out, size_t *len)
{
	size_t n;
	uint8_t *m;
	if (i % 3 == 1) {
		n = seed_len;
		if (!(m = malloc(n + 1)))
			abort();
		memcpy(m, seed, n);
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
	if (!(m = malloc(n + 1)))
		abort();
	for (size_t k = 0; k < n; k++)
		m[k] = (uint8_t)rng_next(rng);
	*out = m;
	*len = n;
}

static int raw_dial(const char *url, bool push, nng_socket *s)
{
	int rv = push ? nng_push0_open(s) : nng_req0_open(s);
	if (rv == 0)
		rv = nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 2000);
	if (rv == 0)
		rv = nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 100);
	if (rv == 0)
		rv = nng_dial(*s, url, NULL, 0);
	if (rv)
		fprintf(stderr, "sprayer: %s: %s\n", url, nng_strerror(rv));
	return rv;
}

/* Sends buf on a REQ socket of its own to url; the reply, decoded. */
static Nq__V1__Reply *raw_call(const char *url, const uint8_t *buf, size_t len)
{
	nng_socket s;
	uint8_t *rbuf;
	size_t rlen;
	assert_int_equal(raw_dial(url, false, &s), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_send(s, (void *)buf, len, 0), 0);
	assert_int_equal(nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC), 0);
	Nq__V1__Reply *rep = nq__v1__reply__unpack(NULL, rlen, rbuf);
	assert_non_null(rep);
	nng_free(rbuf, rlen);
	nng_close(s);
	return rep;
}

static void test_hostile_input_unknown_version_is_failed_precondition(
    void **state)
{
	itest_env *e = *state;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest st = NQ__V1__STATS_REQUEST__INIT;
	uint8_t *buf;
	size_t len;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	req.version = 2;
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &st;
	pack_or_die(&req, &buf, &len);

	Nq__V1__Reply *rep = raw_call(e->api_url, buf, len);
	assert_non_null(rep->status);
	assert_int_equal(rep->status->code, NQ__V1__CODE__FAILED_PRECONDITION);
	assert_true(strlen(rep->status->message) > 0);
	bool serves_v1 = false;
	for (size_t i = 0; i < rep->n_versions; i++)
		serves_v1 |= rep->versions[i] == 1;
	assert_true(serves_v1);
	nq__v1__reply__free_unpacked(rep, NULL);
	free(buf);
	itest_pass(e);
}

/*
 * The sprayer process: `itest_hostile_input spray URL KIND` sends the
 * messages of KIND to URL (a PUSH socket for kind 2, REQ otherwise); every
 * reply that comes within 100 ms must be a well-formed Reply. Prints
 * "replies N" and leaves with _exit, sockets open: it runs apart from the
 * test so that nothing the hostile connections do to this process's nng
 * (nng 1.5.2's close can hang after the peer dropped a connection
 * mid-message, nng issue 1543) can stall the checks of the broker.
 */
static int sprayer_main(const char *url, int kind)
{
	uint64_t rng = 0x5eed5eed12345678ULL + (uint64_t)kind;
	bool push = kind == 2;
	uint8_t *seed;
	size_t seed_len;
	nng_socket s;
	int replies = 0;

	if (raw_dial(url, push, &s))
		_exit(2);
	seed_message(kind, &seed, &seed_len);
	uint64_t start = itest_now_ms();
	for (int i = 0; i < MESSAGES_PER_SOCKET &&
	                itest_now_ms() - start < SPRAY_BUDGET_MS;
	     i++) {
		uint8_t *m, *rbuf;
		size_t len, rlen;
		make_message(&rng, i, seed, seed_len, &m, &len);
		int rv = nng_send(s, m, len, 0);
		free(m);
		if (rv != 0 || push ||
		    nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC) != 0)
			continue;
		Nq__V1__Reply *rep = nq__v1__reply__unpack(NULL, rlen, rbuf);
		if (!rep) {
			printf("message %d got a reply that is not a Reply "
			       "(%zu bytes)\n",
			    i, rlen);
			fflush(stdout);
			_exit(1);
		}
		nq__v1__reply__free_unpacked(rep, NULL);
		nng_free(rbuf, rlen);
		replies++;
	}
	printf("replies %d\n", replies);
	fflush(stdout);
	_exit(0);
}

/* Runs a sprayer against url and returns the replies it saw. */
static int spray(itest_env *e, const char *url, int kind)
{
	char self[PATH_MAX], kind_s[8], name[16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	snprintf(kind_s, sizeof kind_s, "%d", kind);
	snprintf(name, sizeof name, "sprayer.%d", kind);
	const char *argv[] = {self, "spray", url, kind_s, NULL};
	itest_proc *p;
	assert_int_equal(itest_spawn(e, name, argv, NULL, &p), 0);
	if (itest_wait_exit(p, SPRAYER_WAIT_MS) != 0) {
		itest_kill_tree(p);
		fail_msg("the sprayer of %s still ran after %d ms", url,
		    SPRAYER_WAIT_MS);
	}
	if (itest_broker_died(e))
		fail_msg("the broker died under the messages to %s", url);
	char *log;
	size_t len;
	int replies = -1;
	assert_int_equal(itest_read_file(p->log, &log, &len), 0);
	const char *line = strstr(log, "replies ");
	if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0 || !line ||
	    sscanf(line, "replies %d", &replies) != 1)
		fail_msg("the sprayer of %s failed (status 0x%x): %s", url,
		    p->status, log);
	free(log);
	return replies;
}

static void test_hostile_input_random_bytes_leave_broker_working(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	int api = spray(e, e->api_url, 0);
	int work = spray(e, e->work_url, 1);
	spray(e, e->results_url, 2);
	print_message("replies: api %d, work %d of %d each\n", api, work,
	    MESSAGES_PER_SOCKET);
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
	nq_client_close(c);
	itest_pass(e);
}

/* Packs req, then overwrites the first occurrence of mark (set in one of
 * its string fields) with the same number of bytes: that is how a string
 * holding a NUL byte, or bytes that are not UTF-8, gets on the wire. */
static void pack_patched(Nq__V1__Request *req, const char *mark,
    const void *bytes, uint8_t **buf, size_t *len)
{
	size_t n = strlen(mark);
	pack_or_die(req, buf, len);
	for (size_t i = 0; i + n <= *len; i++)
		if (memcmp(*buf + i, mark, n) == 0) {
			memcpy(*buf + i, bytes, n);
			return;
		}
	fail_msg("mark %s not in the packed request", mark);
}

/* Sends req, with mark replaced by bytes, to url, and checks that it was
 * refused as INVALID_ARGUMENT with exactly the message why. */
static void assert_refused(const char *url, Nq__V1__Request *req,
    const char *mark, const void *bytes, const char *why)
{
	uint8_t *buf;
	size_t len;
	pack_patched(req, mark, bytes, &buf, &len);
	Nq__V1__Reply *rep = raw_call(url, buf, len);
	if (!rep->status || rep->status->code != NQ__V1__CODE__INVALID_ARGUMENT)
		fail_msg("%s was answered with code %d (%s), not "
		         "INVALID_ARGUMENT",
		    mark, rep->status ? (int)rep->status->code : 0,
		    rep->status ? rep->status->message : "no status");
	assert_string_equal(rep->status->message, why);
	nq__v1__reply__free_unpacked(rep, NULL);
	free(buf);
}

/* An enqueue of one job to queue with the idempotency key key, on the api
 * socket, with mark replaced by bytes: refused as why. */
static void assert_enqueue_refused(itest_env *e, const char *queue,
    const char *key, const char *mark, const void *bytes, const char *why)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	spec.queue = (char *)queue;
	spec.type = "t";
	spec.payload.data = (uint8_t *)"payload";
	spec.payload.len = 7;
	spec.idempotency_key = (char *)key;
	enq.n_jobs = 1;
	enq.jobs = specs;
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	assert_refused(e->api_url, &req, mark, bytes, why);
}

static void test_hostile_input_strings_with_nul_are_refused(void **state)
{
	itest_env *e = *state;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__PauseRequest pause = NQ__V1__PAUSE_REQUEST__INIT;
	Nq__V1__GetRequest get = NQ__V1__GET_REQUEST__INIT;
	Nq__V1__FetchRequest fetch = NQ__V1__FETCH_REQUEST__INIT;
	char id[NQ_ID_MAX], id_mark[NQ_ID_MAX + 8], id_nul[NQ_ID_MAX + 8];
	char *queues[] = {"x~y"};
	itest_qstats qs;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);

	/* Two keys that differ after a NUL byte: neither is taken, so
	 * neither can be answered as a duplicate of the other. */
	assert_enqueue_refused(e, "keys", "k~aaa", "k~aaa", "k\0aaa",
	    "field idempotency_key holds a NUL byte");
	assert_enqueue_refused(e, "keys", "k~bbb", "k~bbb", "k\0bbb",
	    "field idempotency_key holds a NUL byte");
	assert_int_equal(itest_queue_stats(c, "keys", &qs, NULL), 0);
	assert_int_equal(qs.ready, 0);

	/* "nul\0evil" is not queue "nul". */
	assert_enqueue_refused(e, "nul~evil", "", "nul~evil", "nul\0evil",
	    "field queue holds a NUL byte");
	assert_int_equal(itest_queue_stats(c, "nul", &qs, NULL), 0);
	assert_int_equal(qs.ready, 0);

	/* Pausing "x\0y" does not pause x. */
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_PAUSE;
	req.pause = &pause;
	pause.queue = "x~y";
	assert_int_equal(itest_enqueue(c, "x", "t", "p", id), 0);
	assert_refused(
	    e->api_url, &req, "x~y", "x\0y", "field queue holds a NUL byte");
	assert_int_equal(itest_queue_stats(c, "x", &qs, NULL), 0);
	assert_false(qs.paused);

	/* An id followed by "\0junk" is not that id. */
	snprintf(id_mark, sizeof id_mark, "%s~junk", id);
	snprintf(id_nul, sizeof id_nul, "%s_junk", id);
	id_nul[strlen(id)] = '\0';
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &get;
	get.id = id_mark;
	assert_refused(
	    e->api_url, &req, id_mark, id_nul, "field id holds a NUL byte");

	/* The work socket checks the same way. */
	fetch.worker_id = "w";
	fetch.n_queues = 1;
	fetch.queues = queues;
	fetch.max_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fetch;
	assert_refused(
	    e->work_url, &req, "x~y", "x\0y", "field queues holds a NUL byte");

	nq_client_close(c);
	itest_pass(e);
}

static void test_hostile_input_invalid_utf8_is_refused_unechoed(void **state)
{
	itest_env *e = *state;
	itest_qstats qs;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	/* 0xff never starts a character; an overlong '/' and a surrogate
	 * decode only in lax decoders. The message is fixed text: the bad
	 * bytes are not in it. */
	assert_enqueue_refused(e, "utf8", "key-~", "key-~", "key-\xff",
	    "field idempotency_key is not valid UTF-8");
	assert_enqueue_refused(e, "utf8", "key-~~", "key-~~", "key-\xc0\xaf",
	    "field idempotency_key is not valid UTF-8");
	assert_enqueue_refused(e, "utf8", "key-~~~", "key-~~~",
	    "key-\xed\xa0\x80", "field idempotency_key is not valid UTF-8");
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_queue_stats(c, "utf8", &qs, NULL), 0);
	assert_int_equal(qs.ready, 0);
	nq_client_close(c);
	itest_pass(e);
}

static void test_hostile_input_huge_delay_does_not_run_at_once(void **state)
{
	itest_env *e = *state;
	nq_job_spec spec = {.queue = "later",
	    .type = "t",
	    .payload = "p",
	    .payload_len = 1,
	    .delay_ms = UINT64_MAX};
	char id[NQ_ID_MAX], id2[NQ_ID_MAX];
	bool dup;
	nq_client *c;
	nq_job *j;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	/* now + UINT64_MAX * 1000 wrapped to just before now; the second
	 * delay is the smallest whose microseconds overflow. */
	assert_int_equal(nq_enqueue(c, &spec, id, &dup), NQ_OK);
	spec.delay_ms = UINT64_MAX / 1000 + 1;
	assert_int_equal(nq_enqueue(c, &spec, id2, &dup), NQ_OK);
	const char *ids[] = {id, id2};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(nq_get(c, ids[i], &j), NQ_OK);
		assert_int_equal(nq_job_state(j), NQ_STATE_SCHEDULED);
		assert_true(nq_job_run_at_us(j) == UINT64_MAX);
		nq_job_free(j);
	}
	nq_client_close(c);
	itest_pass(e);
}

static nq_outcome fail_in_latin1_cb(
    const nq_job *job, nq_result *res, void *arg)
{
	nq_result_error(res, "caf\xe9 closed", false);
	return NQ_OUTCOME_FAILED;
}

static void *run_worker(void *arg)
{
	static int rv;
	rv = nq_worker_run(arg);
	return &rv;
}

/* Enqueues one job on queue q with max_attempts attempts, runs a libnq
 * worker with handler cb until the job reaches state (or 15 s pass), and
 * returns it in *out. */
static int run_one_job(itest_env *e, uint32_t max_attempts, nq_handler_cb cb,
    nq_state state, nq_job **out)
{
	const char *queues[] = {"q"};
	nq_job_spec spec = {
	    .queue = "q", .type = "t", .payload = "p", .payload_len = 1};
	nq_worker_opts wo = {
	    .conn = {.work_url = e->work_url, .results_url = e->results_url},
	    .queues = queues,
	    .nqueues = 1,
	    .lease_ms = 60000,
	    .poll_ms = 500,
	};
	char id[NQ_ID_MAX];
	bool dup;
	nq_client *c;
	nq_worker *w;
	pthread_t th;
	void *wrv;

	spec.max_attempts = max_attempts;
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_enqueue(c, &spec, id, &dup), NQ_OK);
	assert_int_equal(nq_worker_open(&w, &wo), NQ_OK);
	assert_int_equal(nq_worker_handle(w, "*", cb, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, run_worker, w), 0);
	int rv = itest_wait_state(c, id, state, 15000, out);
	nq_worker_stop(w);
	assert_int_equal(pthread_join(th, &wrv), 0);
	nq_worker_close(w);
	nq_client_close(c);
	return rv;
}

/* A libnq handler's error message that is not UTF-8 must not make the
 * broker refuse the worker's completions (their leases would lapse and
 * the jobs run again): it arrives with the bad byte shown as '?'. */
static void test_hostile_input_handler_error_not_utf8_is_kept(void **state)
{
	itest_env *e = *state;
	nq_job *j;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	/* Well within the lease: the completion itself failed the job. */
	assert_int_equal(
	    run_one_job(e, 1, fail_in_latin1_cb, NQ_STATE_DEAD, &j), 0);
	assert_int_equal(nq_job_error_count(j), 1);
	assert_string_equal(nq_job_error(j, 0, NULL, NULL), "caf? closed");
	nq_job_free(j);
	itest_pass(e);
}

static nq_outcome retry_never_cb(const nq_job *job, nq_result *res, void *arg)
{
	nq_result_error(res, "come back much later", false);
	nq_result_retry_after(res, UINT64_MAX - 1);
	return NQ_OUTCOME_FAILED;
}

/* A retry_after_ms too long for the clock saturates too: the job waits
 * (and is not handed out again at once). */
static void test_hostile_input_huge_retry_after_does_not_retry_at_once(
    void **state)
{
	itest_env *e = *state;
	nq_job *j;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(
	    run_one_job(e, 2, retry_never_cb, NQ_STATE_SCHEDULED, &j), 0);
	assert_true(nq_job_run_at_us(j) == UINT64_MAX);
	nq_job_free(j);
	itest_pass(e);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "spray") == 0)
		return sprayer_main(argv[2], atoi(argv[3]));
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
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_strings_with_nul_are_refused, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_invalid_utf8_is_refused_unechoed,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_huge_delay_does_not_run_at_once, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_handler_error_not_utf8_is_kept, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hostile_input_huge_retry_after_does_not_retry_at_once,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("hostile_input", tests, NULL, NULL);
}
