/*
 * libnq client: option and argument checks, timeouts with no broker, and
 * the mapping of replies, against a scripted api server on a free
 * loopback port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/codec.h"
#include "nqi/util.h"

#define ID_A "00000000000000aa"

/* A REP server answering each request with what `answer` packs. */
typedef struct fake_api fake_api;
typedef nng_msg *(*answer_fn)(fake_api *f, const Nq__V1__Request *req);

struct fake_api {
	nng_socket sock;
	char url[64];
	pthread_t thread;
	answer_fn answer;
	pthread_mutex_t mtx;
	int requests;
	uint32_t last_version;
	char last_token[64];
	uint64_t last_wait_ms;
	volatile bool stop;
};

static nng_msg *pack_reply(const Nq__V1__Reply *r)
{
	nng_msg *m = NULL;
	assert_int_equal(nqi_msg_pack(&r->base, NULL, 0, &m), 0);
	return m;
}

static void fake_note(fake_api *f, const Nq__V1__Request *req)
{
	pthread_mutex_lock(&f->mtx);
	f->requests++;
	f->last_version = req->version;
	snprintf(f->last_token, sizeof f->last_token, "%s", req->token);
	if (req->body_case == NQ__V1__REQUEST__BODY_WAIT)
		f->last_wait_ms = req->wait->timeout_ms;
	pthread_mutex_unlock(&f->mtx);
}

static void *fake_main(void *arg)
{
	fake_api *f = arg;
	while (!f->stop) {
		nng_msg *m;
		if (nng_recvmsg(f->sock, &m, 0) != 0)
			continue;
		Nq__V1__Request *req =
		    nqi_request_unpack(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
		if (!req)
			continue;
		fake_note(f, req);
		nng_msg *reply = f->answer(f, req);
		nq__v1__request__free_unpacked(req, NULL);
		if (reply && nng_sendmsg(f->sock, reply, 0) != 0)
			nng_msg_free(reply);
	}
	return NULL;
}

static void fake_start(fake_api *f, answer_fn answer)
{
	nng_listener l;
	int port;
	memset(f, 0, sizeof *f);
	f->answer = answer;
	pthread_mutex_init(&f->mtx, NULL);
	assert_int_equal(nng_rep0_open(&f->sock), 0);
	assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 50), 0);
	assert_int_equal(nng_listen(f->sock, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_api *f)
{
	f->stop = true;
	pthread_join(f->thread, NULL);
	nng_close(f->sock);
	pthread_mutex_destroy(&f->mtx);
}

static int fake_requests(fake_api *f)
{
	pthread_mutex_lock(&f->mtx);
	int n = f->requests;
	pthread_mutex_unlock(&f->mtx);
	return n;
}

static nq_client *client_for(const char *api_url, int timeout_ms)
{
	nq_client_opts o = {.api_url = api_url,
	    .work_url = api_url,
	    .results_url = "tcp://127.0.0.1:9",
	    .token = "tok",
	    .timeout_ms = timeout_ms};
	nq_client *c = NULL;
	assert_int_equal(nq_client_open(&c, &o), NQ_OK);
	return c;
}

static void assert_error_mentions(nq_client *c, const char *text)
{
	if (!strstr(nq_client_last_error(c), text))
		fail_msg("last error \"%s\" does not mention \"%s\"",
		    nq_client_last_error(c), text);
}

static uint64_t elapsed_ms(uint64_t since)
{
	return nqi_mono_ms() - since;
}

/* ---- no server needed ---- */

static void test_libnq_client_open_rejects_bad_options(void **st)
{
	nq_client *c = (nq_client *)&c;
	nq_client *untouched = c;
	nq_client_opts bad_scheme = {.api_url = "bogus://127.0.0.1:1"};
	nq_client_opts bad_url = {.work_url = "127.0.0.1:7401"};
	nq_client_opts bad_timeout = {.timeout_ms = -1};
	nq_client_opts no_ca = {.tls_ca = "/nonexistent/ca.pem"};
	nq_client_opts key_only = {.tls_key = "/nonexistent/key.pem"};
	assert_int_equal(nq_client_open(&c, &bad_scheme), NQ_EINVAL);
	assert_int_equal(nq_client_open(&c, &bad_url), NQ_EINVAL);
	assert_int_equal(nq_client_open(&c, &bad_timeout), NQ_EINVAL);
	assert_int_equal(nq_client_open(&c, &no_ca), NQ_EINVAL);
	assert_int_equal(nq_client_open(&c, &key_only), NQ_EINVAL);
	assert_int_equal(nq_client_open(NULL, NULL), NQ_EINVAL);
	assert_ptr_equal(c, untouched);
	/* Defaults need no network at open. */
	assert_int_equal(nq_client_open(&c, NULL), NQ_OK);
	assert_string_equal(nq_client_last_error(c), "");
	nq_client_close(c);
	nq_client_close(NULL);
}

static void test_libnq_client_fails_at_once_without_broker(void **st)
{
	/* Port 9 (discard) has no listener on a test machine: the first dial
	 * is refused, and the request fails then, not at its timeout. */
	nq_client *c = client_for("tcp://127.0.0.1:9", 2000);
	nq_job *job = NULL;
	uint64_t t0 = nqi_mono_ms();
	assert_int_equal(nq_get(c, ID_A, &job), NQ_ECONNECT);
	assert_true(elapsed_ms(t0) < 1000);
	assert_null(job);
	assert_error_mentions(c, "api tcp://127.0.0.1:9: Connection refused");
	nq_completion done = {
	    .id = ID_A, .lease_token = 1, .outcome = NQ_OUTCOME_SUCCEEDED};
	assert_int_equal(nq_complete(c, "w1", &done, 1), NQ_ECONNECT);
	assert_error_mentions(c, "results tcp://127.0.0.1:9");
	assert_true(elapsed_ms(t0) < 1000);
	nq_client_close(c);
}

static nng_msg *answer_none(fake_api *f, const Nq__V1__Request *req)
{
	(void)f;
	(void)req;
	return NULL;
}

static void test_libnq_client_times_out_without_reply(void **st)
{
	fake_api f;
	nq_job *job = NULL;
	fake_start(&f, answer_none);
	nq_client *c = client_for(f.url, 200);
	uint64_t t0 = nqi_mono_ms();
	assert_int_equal(nq_get(c, ID_A, &job), NQ_ETIMEDOUT);
	uint64_t took = elapsed_ms(t0);
	assert_true(took >= 190 && took < 2000);
	assert_null(job);
	assert_error_mentions(c, "no reply within 200 ms");
	nq_client_close(c);
	fake_stop(&f);
}

static void test_libnq_job_accessors_tolerate_null(void **st)
{
	size_t len = 7;
	uint32_t attempt = 9;
	assert_string_equal(nq_job_id(NULL), "");
	assert_string_equal(nq_job_queue(NULL), "");
	assert_int_equal(nq_job_state(NULL), NQ_STATE_UNSPECIFIED);
	assert_null(nq_job_payload(NULL, &len));
	assert_int_equal(len, 0);
	assert_null(nq_job_error(NULL, 0, &attempt, NULL));
	assert_int_equal(attempt, 9);
	assert_int_equal(nq_job_error_count(NULL), 0);
	nq_job_free(NULL);
	nq_jobs_free(NULL, 3);
}

/* ---- argument checks happen before anything is sent ---- */

static nng_msg *answer_ok(fake_api *f, const Nq__V1__Request *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	return pack_reply(&r);
}

static void test_libnq_client_checks_arguments_before_sending(void **st)
{
	fake_api f;
	fake_start(&f, answer_ok);
	nq_client *c = client_for(f.url, 2000);
	char id[NQ_ID_MAX];
	nq_job *job;
	nq_job **jobs;
	size_t n;
	nq_queue_stats *qs;
	const char *queues[] = {"ok", "not ok"};
	nq_job_spec bad_queue = {.queue = "a b", .type = "t"};
	nq_job_spec no_type = {.queue = "q"};
	nq_job_spec null_payload = {
	    .queue = "q", .type = "t", .payload_len = 4};
	nq_completion bad_outcome = {
	    .id = ID_A, .lease_token = 1, .outcome = (nq_outcome)7};

	assert_int_equal(nq_enqueue(c, &bad_queue, id, NULL), NQ_EINVAL);
	assert_error_mentions(c, "queue \"a b\" is not a valid name");
	assert_int_equal(nq_enqueue(c, &no_type, id, NULL), NQ_EINVAL);
	assert_error_mentions(c, "type is missing");
	assert_int_equal(nq_enqueue(c, &null_payload, id, NULL), NQ_EINVAL);
	assert_error_mentions(c, "payload is NULL but payload_len is 4");
	assert_int_equal(nq_get(c, "12345", &job), NQ_EINVAL);
	assert_error_mentions(c, "job id \"12345\" is not 16 hex digits");
	assert_int_equal(nq_cancel(c, NULL, NULL), NQ_EINVAL);
	assert_error_mentions(c, "job id is missing");
	assert_int_equal(nq_pause(c, ""), NQ_EINVAL);
	assert_int_equal(nq_stats(c, "x/y", &qs, &n, NULL), NQ_EINVAL);
	assert_int_equal(
	    nq_fetch(c, "w1", queues, 1, 0, 0, 0, &jobs, &n), NQ_EINVAL);
	assert_error_mentions(c, "max_jobs is 0");
	assert_int_equal(
	    nq_fetch(c, "w1", queues, 2, 1, 0, 0, &jobs, &n), NQ_EINVAL);
	assert_error_mentions(c, "queue \"not ok\"");
	assert_int_equal(nq_extend(c, ID_A, 0, 1000), NQ_EINVAL);
	assert_error_mentions(c, "lease token is 0");
	assert_int_equal(nq_complete(c, "w1", &bad_outcome, 1), NQ_EINVAL);
	assert_error_mentions(c, "outcome 7");
	assert_int_equal(
	    nq_complete(c, "bad worker", &bad_outcome, 1), NQ_EINVAL);
	assert_error_mentions(c, "worker id \"bad worker\"");

	assert_int_equal(fake_requests(&f), 0);
	/* A good call clears the last error. */
	assert_int_equal(nq_pause(c, "q"), NQ_EPROTO);
	assert_int_equal(fake_requests(&f), 1);
	assert_int_equal(nq_enqueue_batch(c, NULL, 0, NULL), NQ_OK);
	assert_string_equal(nq_client_last_error(c), "");
	nq_client_close(c);
	fake_stop(&f);
}

/* ---- replies ---- */

static void job_init(
    Nq__V1__Job *j, Nq__V1__JobSpec *s, const char *id, Nq__V1__JobState state)
{
	nq__v1__job__init(j);
	nq__v1__job_spec__init(s);
	s->queue = (char *)"q";
	s->type = (char *)"t";
	j->id = (char *)id;
	j->spec = s;
	j->state = state;
	j->attempt = 2;
}

static nng_msg *reply_with_job(Nq__V1__Reply__BodyCase body,
    Nq__V1__JobState state, int code, const char *message)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status s = NQ__V1__STATUS__INIT;
	Nq__V1__GetReply g = NQ__V1__GET_REPLY__INIT;
	Nq__V1__CancelReply cr = NQ__V1__CANCEL_REPLY__INIT;
	Nq__V1__Job j;
	Nq__V1__JobSpec spec;
	job_init(&j, &spec, ID_A, state);
	g.job = cr.job = &j;
	s.code = (Nq__V1__Code)code;
	s.message = (char *)message;
	r.status = &s;
	r.body_case = body;
	if (body == NQ__V1__REPLY__BODY_CANCEL)
		r.cancel = &cr;
	else
		r.get = &g; /* get and wait share GetReply */
	return pack_reply(&r);
}

static nng_msg *answer_scripted(fake_api *f, const Nq__V1__Request *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status bad = NQ__V1__STATUS__INIT;
	Nq__V1__EnqueueReply er = NQ__V1__ENQUEUE_REPLY__INIT;
	Nq__V1__EnqueueResult res[2] = {
	    NQ__V1__ENQUEUE_RESULT__INIT, NQ__V1__ENQUEUE_RESULT__INIT};
	Nq__V1__EnqueueResult *pres[2] = {&res[0], &res[1]};
	switch (req->body_case) {
	case NQ__V1__REQUEST__BODY_GET:
		bad.code = NQ__V1__CODE__NOT_FOUND;
		bad.message = (char *)"job 00000000000000aa not found";
		r.status = &bad;
		return pack_reply(&r);
	case NQ__V1__REQUEST__BODY_CANCEL:
		return reply_with_job(NQ__V1__REPLY__BODY_CANCEL,
		    NQ__V1__JOB_STATE__JOB_STATE_LEASED,
		    NQ__V1__CODE__FAILED_PRECONDITION, "job is leased");
	case NQ__V1__REQUEST__BODY_ENQUEUE:
		bad.code = NQ__V1__CODE__INVALID_ARGUMENT;
		bad.message =
		    (char *)"payload is 300000 bytes, limit is 262144";
		res[0].id = (char *)ID_A;
		res[0].duplicate = true;
		res[1].status = &bad;
		er.results = pres;
		er.n_results =
		    req->enqueue->n_jobs < 2 ? req->enqueue->n_jobs : 2;
		r.body_case = NQ__V1__REPLY__BODY_ENQUEUE;
		r.enqueue = &er;
		return pack_reply(&r);
	case NQ__V1__REQUEST__BODY_PAUSE:
		/* an answer to some other question */
		return reply_with_job(NQ__V1__REPLY__BODY_GET,
		    NQ__V1__JOB_STATE__JOB_STATE_READY, 0, "");
	default: {
		nng_msg *m;
		nng_msg_alloc(&m, 0);
		nng_msg_append(m, "\xff\xff\xff", 3);
		return m;
	}
	}
}

static void test_libnq_client_maps_replies(void **st)
{
	fake_api f;
	fake_start(&f, answer_scripted);
	nq_client *c = client_for(f.url, 2000);
	nq_job_spec specs[2] = {
	    {.queue = "q", .type = "t"}, {.queue = "q", .type = "t"}};
	nq_enqueue_result res[2];
	nq_job *job = NULL;
	char id[NQ_ID_MAX] = "";
	bool dup = false;

	assert_int_equal(nq_enqueue_batch(c, specs, 2, res), NQ_OK);
	assert_int_equal(res[0].err, NQ_OK);
	assert_string_equal(res[0].id, ID_A);
	assert_true(res[0].duplicate);
	assert_int_equal(res[1].err, NQ_EINVAL);
	assert_string_equal(
	    res[1].message, "payload is 300000 bytes, limit is 262144");
	assert_int_equal(f.last_version, 1);
	assert_string_equal(f.last_token, "tok");
	/* One item answered with one result: taken. */
	assert_int_equal(nq_enqueue(c, &specs[0], id, &dup), NQ_OK);
	assert_string_equal(id, ID_A);
	assert_true(dup);

	assert_int_equal(nq_get(c, ID_A, &job), NQ_ENOTFOUND);
	assert_string_equal(
	    nq_client_last_error(c), "job 00000000000000aa not found");
	assert_null(job);

	/* A refused cancel still reports the job. */
	assert_int_equal(nq_cancel(c, "00000000000000AA", &job), NQ_EPRECOND);
	assert_non_null(job);
	assert_int_equal(nq_job_state(job), NQ_STATE_LEASED);
	assert_int_equal(nq_job_attempt(job), 2);
	assert_string_equal(nq_job_queue(job), "q");
	nq_job_free(job);

	assert_int_equal(nq_pause(c, "q"), NQ_EPROTO);
	assert_error_mentions(c, "reply to pause carries no pause body");
	assert_int_equal(nq_resume(c, "q"), NQ_EPROTO);
	assert_error_mentions(c, "is not a valid nq.v1.Reply");
	nq_client_close(c);
	fake_stop(&f);
}

/* Wait: "ready" twice, then "succeeded". */
/* Two queues: "a" with 3 succeeded and 1 dead, paused; "b" untouched. */
static nng_msg *answer_stats(fake_api *f, const Nq__V1__Request *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__StatsReply sr = NQ__V1__STATS_REPLY__INIT;
	Nq__V1__BrokerStats bs = NQ__V1__BROKER_STATS__INIT;
	Nq__V1__QueueStats a = NQ__V1__QUEUE_STATS__INIT;
	Nq__V1__QueueStats b = NQ__V1__QUEUE_STATS__INIT;
	Nq__V1__QueueStats *qs[] = {&a, &b};
	(void)f;
	(void)req;
	a.queue = "a";
	a.paused = true;
	a.ready = 7;
	a.succeeded_total = 3;
	a.dead_total = 1;
	a.oldest_ready_us = 1234;
	a.dlq_handed_total = 5;
	b.queue = "b";
	bs.commits = 42;
	bs.jobs_stored = 9;
	sr.queues = qs;
	sr.n_queues = 2;
	sr.broker = &bs;
	r.body_case = NQ__V1__REPLY__BODY_STATS;
	r.stats = &sr;
	return pack_reply(&r);
}

static void test_libnq_stats_reads_every_number_by_name(void **st)
{
	(void)st;
	fake_api f;
	fake_start(&f, answer_stats);
	nq_client *c = client_for(f.url, 2000);
	nq_queue_stats *qs = NULL;
	nq_broker_stats bs;
	size_t n = 0;
	uint64_t v = 0;
	assert_int_equal(nq_stats(c, NULL, &qs, &n, &bs), NQ_OK);
	assert_int_equal(n, 2);
	assert_int_equal(bs.commits, 42);
	assert_string_equal(nq_queue_stats_queue(qs, 0), "a");
	assert_string_equal(nq_queue_stats_queue(qs, 1), "b");
	assert_null(nq_queue_stats_queue(qs, 2));
	assert_true(nq_queue_stats_paused(qs, 0));
	assert_false(nq_queue_stats_paused(qs, 1));
	assert_int_equal(nq_queue_stats_get(qs, 0, "ready", &v), NQ_OK);
	assert_int_equal(v, 7);
	assert_int_equal(
	    nq_queue_stats_get(qs, 0, "dlq_handed_total", &v), NQ_OK);
	assert_int_equal(v, 5);
	assert_int_equal(
	    nq_queue_stats_get(qs, 0, "oldest_ready_us", &v), NQ_OK);
	assert_int_equal(v, 1234);
	assert_int_equal(nq_queue_stats_get(qs, 1, "ready", &v), NQ_OK);
	assert_int_equal(v, 0);
	/* Not numbers of QueueStats, or no such queue. */
	assert_int_equal(nq_queue_stats_get(qs, 0, "queue", &v), NQ_EINVAL);
	assert_int_equal(nq_queue_stats_get(qs, 0, "paused", &v), NQ_EINVAL);
	assert_int_equal(nq_queue_stats_get(qs, 0, "no_such", &v), NQ_EINVAL);
	assert_int_equal(nq_queue_stats_get(qs, 2, "ready", &v), NQ_EINVAL);
	/* The broker's numbers by name too, past what nq_broker_stats holds */
	assert_int_equal(nq_queue_stats_broker(qs, "jobs_stored", &v), NQ_OK);
	assert_int_equal(v, 9);
	assert_int_equal(nq_queue_stats_broker(qs, "version", &v), NQ_EINVAL);
	assert_int_equal(nq_queue_stats_broker(NULL, "commits", &v), NQ_EINVAL);
	/* Dead over finished (succeeded + dead); 0 when nothing finished. */
	assert_true(nq_dead_letter_ratio(qs, 0) == 0.25);
	assert_true(nq_dead_letter_ratio(qs, 1) == 0.0);
	assert_true(nq_dead_letter_ratio(qs, 2) == 0.0);
	nq_queue_stats_free(qs);
	nq_queue_stats_free(NULL);
	nq_client_close(c);
	fake_stop(&f);
}

/* The names are the uint64 fields of QueueStats, in field order. */
static void test_libnq_stats_fields_follow_the_message(void **st)
{
	(void)st;
	const ProtobufCMessageDescriptor *d = &nq__v1__queue_stats__descriptor;
	size_t k = 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		if (d->fields[i].type != PROTOBUF_C_TYPE_UINT64)
			continue;
		assert_non_null(nq_queue_stats_field(k));
		assert_string_equal(nq_queue_stats_field(k), d->fields[i].name);
		k++;
	}
	assert_null(nq_queue_stats_field(k));
	assert_string_equal(nq_queue_stats_field(0), "scheduled");
}

static nng_msg *answer_wait(fake_api *f, const Nq__V1__Request *req)
{
	int n = fake_requests(f);
	return reply_with_job(NQ__V1__REPLY__BODY_WAIT,
	    n < 3 ? NQ__V1__JOB_STATE__JOB_STATE_READY
	          : NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED,
	    0, "");
}

static void test_libnq_client_wait_loops_until_final(void **st)
{
	fake_api f;
	fake_start(&f, answer_wait);
	nq_client *c = client_for(f.url, 2000);
	nq_job *job = NULL;
	assert_int_equal(nq_wait(c, ID_A, 0, &job), NQ_OK);
	assert_int_equal(nq_job_state(job), NQ_STATE_SUCCEEDED);
	assert_int_equal(fake_requests(&f), 3);
	/* 0 means forever, asked for in pieces the broker accepts. */
	assert_int_equal(f.last_wait_ms, 60000);
	nq_job_free(job);
	nq_client_close(c);
	fake_stop(&f);
}

static nng_msg *answer_never_final(fake_api *f, const Nq__V1__Request *req)
{
	return reply_with_job(NQ__V1__REPLY__BODY_WAIT,
	    NQ__V1__JOB_STATE__JOB_STATE_LEASED, 0, "");
}

static void test_libnq_client_wait_times_out_when_not_final(void **st)
{
	fake_api f;
	fake_start(&f, answer_never_final);
	nq_client *c = client_for(f.url, 2000);
	nq_job *job = NULL;
	uint64_t t0 = nqi_mono_ms();
	assert_int_equal(nq_wait(c, ID_A, 250, &job), NQ_ETIMEDOUT);
	uint64_t took = elapsed_ms(t0);
	assert_true(took >= 250 && took < 1500);
	assert_null(job);
	assert_error_mentions(c, "is still leased after 250 ms");
	assert_true(f.last_wait_ms <= 250);
	/* The fake answers at once; the client must not spin on it. */
	assert_true(fake_requests(&f) <= 4);
	nq_client_close(c);
	fake_stop(&f);
}

/* ---- nq-dlq and events over the client's transport ---- */

/* DlqStats: a total of 7; DlqShow: NOT_FOUND with its message. */
static nng_msg *answer_dlq(fake_api *f, const Nq__V1__Request *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status st = NQ__V1__STATUS__INIT;
	Nq__V1__DlqStatsReply stats = NQ__V1__DLQ_STATS_REPLY__INIT;
	if (req->body_case == NQ__V1__REQUEST__BODY_DLQ_STATS) {
		stats.total = 7;
		r.body_case = NQ__V1__REPLY__BODY_DLQ_STATS;
		r.dlq_stats = &stats;
	} else {
		st.code = NQ__V1__CODE__NOT_FOUND;
		st.message = (char *)"no DLQ entry has id 00000000000000aa";
		r.status = &st;
	}
	return pack_reply(&r);
}

/* A packed request with the body case and no token or version. */
static size_t pack_dlq_request(bool stats, uint8_t *buf, size_t len)
{
	Nq__V1__Request q = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest sb = NQ__V1__DLQ_STATS_REQUEST__INIT;
	Nq__V1__DlqShowRequest show = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	if (stats) {
		q.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
		q.dlq_stats = &sb;
	} else {
		show.id = (char *)ID_A;
		q.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
		q.dlq_show = &show;
	}
	assert_true(nq__v1__request__get_packed_size(&q) <= len);
	return nq__v1__request__pack(&q, buf);
}

static void test_libnq_dlq_request_carries_token_and_error_replies(void **st)
{
	fake_api f;
	uint8_t req[256];
	void *reply = NULL;
	size_t n = 0;
	fake_start(&f, answer_dlq);
	nq_client *c = client_for("tcp://127.0.0.1:9", 2000);
	assert_int_equal(nq_client_set_dlq_url(c, "bogus://x"), NQ_EINVAL);
	assert_int_equal(nq_client_set_dlq_url(c, f.url), NQ_OK);
	size_t len = pack_dlq_request(true, req, sizeof req);
	assert_int_equal(nq_dlq_request(c, req, len, 2000, &reply, &n), NQ_OK);
	Nq__V1__Reply *r = nqi_reply_unpack(reply, n);
	assert_non_null(r);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_DLQ_STATS);
	assert_int_equal(r->dlq_stats->total, 7);
	nq__v1__reply__free_unpacked(r, NULL);
	free(reply);
	assert_int_equal(f.last_version, 1);
	assert_string_equal(f.last_token, "tok");
	/* A refusing reply comes back too, with the nq error. */
	reply = NULL;
	len = pack_dlq_request(false, req, sizeof req);
	assert_int_equal(
	    nq_dlq_request(c, req, len, 2000, &reply, &n), NQ_ENOTFOUND);
	assert_non_null(reply);
	free(reply);
	assert_error_mentions(c, "no DLQ entry has id");
	/* The socket is open now: the URL stays. */
	assert_int_equal(nq_client_set_dlq_url(c, f.url), NQ_EPRECOND);
	assert_int_equal(
	    nq_dlq_request(c, "\xff", 1, 2000, &reply, &n), NQ_EINVAL);
	nq_client_close(c);
	fake_stop(&f);

	/* Nobody there: refused, naming nq-dlq, no reply. */
	c = client_for("tcp://127.0.0.1:9", 200);
	assert_int_equal(nq_client_set_dlq_url(c, "tcp://127.0.0.1:9"), NQ_OK);
	reply = NULL;
	assert_int_equal(
	    nq_dlq_request(c, req, len, 200, &reply, &n), NQ_ECONNECT);
	assert_null(reply);
	assert_error_mentions(c, "is nq-dlq running?");
	nq_client_close(c);
}

static void test_libnq_sub_receives_its_topic_and_reports_no_broker(void **st)
{
	nng_socket pub;
	nng_listener l;
	char url[64];
	int port;
	nq_sub *s = NULL;
	const void *msg;
	size_t len;
	nq_client *c = client_for("tcp://127.0.0.1:9", 200);
	assert_int_equal(
	    nq_sub_open(c, "tcp://127.0.0.1:9", "job.", 4, &s), NQ_ECONNECT);
	assert_int_equal(nq_sub_open(c, "bogus://x", "job.", 4, &s), NQ_EINVAL);
	assert_null(s);
	assert_int_equal(nng_pub0_open(&pub), 0);
	assert_int_equal(nng_listen(pub, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	assert_int_equal(nq_sub_open(c, url, "job.", 4, &s), NQ_OK);
	nq_client_close(c); /* the subscriber does not need it */
	/* PUB drops what it sends before the subscription arrives: send
	 * until one comes through. Another topic never does. */
	int rv = NQ_ETIMEDOUT;
	for (int i = 0; i < 100 && rv == NQ_ETIMEDOUT; i++) {
		assert_int_equal(nng_send(pub, "metrics\0x", 9, 0), 0);
		assert_int_equal(nng_send(pub, "job.a\0y", 7, 0), 0);
		rv = nq_sub_recv(s, 50, &msg, &len);
	}
	assert_int_equal(rv, NQ_OK);
	assert_int_equal(len, 7);
	assert_memory_equal(msg, "job.a\0y", 7);
	nq_sub_close(s);
	nq_sub_close(NULL);
	nng_close(pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_libnq_stats_fields_follow_the_message),
	    cmocka_unit_test(test_libnq_stats_reads_every_number_by_name),
	    cmocka_unit_test(test_libnq_client_open_rejects_bad_options),
	    cmocka_unit_test(test_libnq_client_fails_at_once_without_broker),
	    cmocka_unit_test(test_libnq_client_times_out_without_reply),
	    cmocka_unit_test(test_libnq_job_accessors_tolerate_null),
	    cmocka_unit_test(test_libnq_client_checks_arguments_before_sending),
	    cmocka_unit_test(test_libnq_client_maps_replies),
	    cmocka_unit_test(test_libnq_client_wait_loops_until_final),
	    cmocka_unit_test(test_libnq_client_wait_times_out_when_not_final),
	    cmocka_unit_test(
	        test_libnq_dlq_request_carries_token_and_error_replies),
	    cmocka_unit_test(
	        test_libnq_sub_receives_its_topic_and_reports_no_broker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
