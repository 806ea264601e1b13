/*
 * nq-dlq's request handling: ingest, list, show, replay, purge, stats and
 * whatever else the bytes say. nq-dlq has no in-process entry point, so
 * each input gets the service's own parts (store, core and replay threads,
 * the REP socket with its routing) on a fresh store, listening on an
 * inproc:// URL, and a broker for replay to enqueue into: an embedded
 * broker behind a REP socket on another inproc:// URL. Every record of
 * the input is one request; each must be answered, within 10 s, with a
 * well-formed Reply.
 *
 * Replay paces itself to rate_per_s on purpose; a replay asking for fewer
 * than 10000 entries a second is sent with rate 0 (no pacing) so that no
 * input waits out a deliberate delay.
 */
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "embed.h"
#include "fuzz.h"
#include "nqi/log.h"

#define REPLY_WAIT_MS 10000

typedef struct fake_broker {
	char *dir;
	nq_embedded_broker *e;
	nng_socket rep;
	pthread_t thread;
} fake_broker;

typedef struct dlq_session {
	char *dir;
	dlq *d;
	nng_socket req;
	fake_broker broker;
	char listen_url[96], broker_url[96];
} dlq_session;

/* The broker's api socket, answered by the embedded broker. */
static void *broker_main(void *arg)
{
	fake_broker *b = arg;
	nng_msg *msg;
	while (nng_recvmsg(b->rep, &msg, 0) == 0) {
		uint8_t *out = NULL;
		size_t outlen = 0;
		int rv = broker_embed_request(b->e, nng_msg_body(msg),
		    nng_msg_len(msg), false, &out, &outlen);
		nng_msg_free(msg);
		FUZZ_CHECK(rv == 0);
		rv = nng_send(b->rep, out, outlen, 0);
		free(out);
		if (rv != 0)
			break;
	}
	return NULL;
}

static void broker_start(fake_broker *b, const char *url)
{
	b->dir = fuzz_tempdir("dlq-broker");
	FUZZ_CHECK(broker_embed_open(&b->e, b->dir) == 0);
	FUZZ_CHECK(nng_rep0_open(&b->rep) == 0);
	FUZZ_CHECK(nng_listen(b->rep, url, NULL, 0) == 0);
	FUZZ_CHECK(pthread_create(&b->thread, NULL, broker_main, b) == 0);
}

static void broker_stop(fake_broker *b)
{
	nng_close(b->rep);
	pthread_join(b->thread, NULL);
	broker_embed_close(b->e);
	fuzz_tempdir_remove(b->dir);
}

/* The service as nq-dlq's main() assembles it, minus HTTP and signals. */
static void dlq_start(dlq_session *s)
{
	char err[256] = "";
	dlq *d = calloc(1, sizeof *d);
	FUZZ_CHECK(d != NULL);
	d->cfg = (dlq_config){
	    .listen_url = s->listen_url,
	    .broker_url = s->broker_url,
	    .data_dir = s->dir,
	    .sync = "none",
	    .http_addr = "none",
	    .log_level = "error",
	    .log_format = "text",
	    .retention_count = 10000,
	    .retention_age_ms = 30ull * 24 * 3600 * 1000,
	    .retention_check_ms = 10000,
	    .broker_timeout_ms = 5000,
	    .map_size = 64u << 20,
	    .max_message = 16u << 20,
	    .contexts = 4,
	};
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->done_cv, NULL);
	pthread_cond_init(&d->replay_cv, NULL);
	d->started_ms = nqi_mono_ms();
	if (dlq_store_open(d, err, sizeof err) != 0 ||
	    (atomic_store(&d->ready, true), dlq_core_start(d)) != 0 ||
	    dlq_replay_start(d, err, sizeof err) != 0 ||
	    dlq_net_open(d, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz: nq-dlq did not start: %s\n", err);
		abort();
	}
	s->d = d;
}

static void dlq_stop(dlq_session *s)
{
	dlq *d = s->d;
	dlq_net_quiesce(d);
	dlq_replay_stop(d);
	dlq_core_stop(d);
	dlq_net_close(d);
	nqi_store_close(d->store);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->done_cv);
	pthread_cond_destroy(&d->replay_cv);
	free(d);
}

static void session_open(dlq_session *s)
{
	static atomic_uint seq;
	unsigned n = atomic_fetch_add(&seq, 1);
	memset(s, 0, sizeof *s);
	snprintf(s->listen_url, sizeof s->listen_url,
	    "inproc://nq-fuzz-dlq-%d-%u", (int)getpid(), n);
	snprintf(s->broker_url, sizeof s->broker_url,
	    "inproc://nq-fuzz-broker-%d-%u", (int)getpid(), n);
	nqi_log_set_level("error");
	broker_start(&s->broker, s->broker_url);
	s->dir = fuzz_tempdir("dlq");
	dlq_start(s);
	FUZZ_CHECK(nng_req0_open(&s->req) == 0);
	FUZZ_CHECK(
	    nng_socket_set_ms(s->req, NNG_OPT_RECVTIMEO, REPLY_WAIT_MS) == 0);
	/* A lost request is a bug here, not a reason to send it again. */
	FUZZ_CHECK(nng_socket_set_ms(s->req, NNG_OPT_REQ_RESENDTIME,
	               NNG_DURATION_INFINITE) == 0);
	FUZZ_CHECK(nng_dial(s->req, s->listen_url, NULL, 0) == 0);
}

static void session_close(dlq_session *s)
{
	nng_close(s->req);
	dlq_stop(s);
	fuzz_tempdir_remove(s->dir);
	broker_stop(&s->broker);
}

/* The bytes to send: the record, or when it is a paced replay the same
 * request unpaced. *owned is set when the result must be freed. */
static const uint8_t *unpaced(
    const uint8_t *rec, size_t len, size_t *outlen, uint8_t **owned)
{
	Nq__V1__Request *req = nqi_request_unpack(rec, len);
	*owned = NULL;
	*outlen = len;
	if (!req)
		return rec;
	if (req->body_case == NQ__V1__REQUEST__BODY_DLQ_REPLAY) {
		double *rate = &req->dlq_replay->rate_per_s;
		if (isfinite(*rate) && *rate > 0 && *rate < 10000) {
			*rate = 0;
			*owned = fuzz_pack(&req->base, outlen);
		}
	}
	nq__v1__request__free_unpacked(req, NULL);
	return *owned ? *owned : rec;
}

static void check_reply(nng_msg *msg)
{
	Nq__V1__Reply *r =
	    nqi_reply_unpack(nng_msg_body(msg), nng_msg_len(msg));
	FUZZ_CHECK(r != NULL);
	if (r->status && r->status->code != NQ__V1__CODE__OK)
		FUZZ_CHECK(r->status->message[0] != '\0');
	if (r->body_case == NQ__V1__REPLY__BODY_DLQ_LIST)
		for (size_t i = 0; i < r->dlq_list->n_jobs; i++)
			FUZZ_CHECK(r->dlq_list->jobs[i] != NULL);
	nq__v1__reply__free_unpacked(r, NULL);
}

static void request(dlq_session *s, const uint8_t *rec, size_t len)
{
	uint8_t *owned;
	size_t n;
	const uint8_t *bytes = unpaced(rec, len, &n, &owned);
	nng_msg *msg;
	FUZZ_CHECK(nng_msg_alloc(&msg, n) == 0);
	memcpy(nng_msg_body(msg), bytes, n);
	free(owned);
	FUZZ_CHECK(nng_sendmsg(s->req, msg, 0) == 0);
	int rv = nng_recvmsg(s->req, &msg, 0);
	if (rv != 0)
		fprintf(stderr, "fuzz: nq-dlq did not answer: %s\n",
		    nng_strerror(rv));
	FUZZ_CHECK(rv == 0);
	fuzz_trace_reply("dlq", nng_msg_body(msg), nng_msg_len(msg));
	check_reply(msg);
	nng_msg_free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dlq_session s;
	fuzz_records r = {data, size};
	const uint8_t *rec;
	size_t len;
	session_open(&s);
	while (fuzz_record_next(&r, &rec, &len))
		request(&s, rec, len);
	session_close(&s);
	return 0;
}
