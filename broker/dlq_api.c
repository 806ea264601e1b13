/*
 * /v1/dlq/... on the broker's HTTP listener: each request, built as
 * nq-dlq's own listener builds it (the routes are shared), goes to nq-dlq
 * over the handoff's REQ socket (--dlq), on a context of its own so that
 * it never waits behind a handoff batch, and nq-dlq's reply is the
 * answer. The token is checked here with the roles nq-dlq asks (admin)
 * and again by nq-dlq. Without --dlq, or when nq-dlq does not answer
 * within DLQ_FORWARD_TIMEOUT_MS, the answer is 503 UNAVAILABLE saying so.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "broker.h"
#include "nqi/codec.h"
#include "nqi/http_api.h"

#define DLQ_FORWARD_TIMEOUT_MS 5000

typedef struct forward {
	nng_ctx ctx;
	nng_aio *aio;
	nqi_api_call *call;
	bool sent;
} forward;

/* Answers call with a Reply holding only a status. */
static void answer_status(nqi_api_call *call, int code, const char *msg)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status st = NQ__V1__STATUS__INIT;
	uint8_t *buf = NULL;
	size_t len = 0;
	st.code = code;
	st.message = (char *)msg;
	r.status = &st;
	if (nqi_buf_pack(&r.base, &buf, &len) != 0)
		buf = NULL;
	nqi_api_done(call, buf, buf ? len : 0);
	free(buf);
}

static void forward_free(forward *f)
{
	nng_aio_reap(f->aio); /* may run in its callback */
	nng_ctx_close(f->ctx);
	free(f);
}

static void unreachable(forward *f)
{
	answer_status(f->call, NQ__V1__CODE__UNAVAILABLE,
	    "nq-dlq did not answer (is it running at the broker's --dlq?)");
	forward_free(f);
}

static void forward_cb(void *arg)
{
	forward *f = arg;
	if (nng_aio_result(f->aio) != 0) {
		if (!f->sent)
			nng_msg_free(nng_aio_get_msg(f->aio));
		unreachable(f);
		return;
	}
	if (!f->sent) {
		f->sent = true;
		nng_ctx_recv(f->ctx, f->aio);
		return;
	}
	nqi_api_done_msg(f->call, nng_aio_get_msg(f->aio));
	forward_free(f);
}

/* The token may make the request: nq-dlq's roles, checked here too so
 * that a broker with tokens never passes an anonymous call on. */
static bool allowed(
    broker *b, const uint8_t *buf, size_t len, nqi_api_call *call)
{
	Nq__V1__Request *req = nq__v1__request__unpack(NULL, len, buf);
	int rv = req ? nqi_auth_check(b->auth, req->token, NQI_ROLE_ADMIN)
	             : NQ_EINVAL;
	if (req)
		nq__v1__request__free_unpacked(req, NULL);
	if (rv == NQ_OK)
		return true;
	if (rv == NQ_EPERM)
		answer_status(call, NQ__V1__CODE__PERMISSION_DENIED,
		    "dead letters need an admin token");
	else
		answer_status(call, NQ__V1__CODE__UNAUTHENTICATED,
		    "this service needs a token");
	return false;
}

void broker_dlq_forward(
    broker *b, const uint8_t *buf, size_t len, nqi_api_call *call)
{
	forward *f;
	nng_msg *msg = NULL;
	pthread_mutex_lock(&b->in.mu); /* sock_open is shared under it */
	bool open = b->dlq.sock_open;
	pthread_mutex_unlock(&b->in.mu);
	if (!broker_dlq_enabled(b) || !open) {
		answer_status(call, NQ__V1__CODE__UNAVAILABLE,
		    "nq-dlq is not configured: start the broker with --dlq");
		return;
	}
	if (!allowed(b, buf, len, call))
		return;
	if (!(f = calloc(1, sizeof *f))) {
		answer_status(call, NQ__V1__CODE__INTERNAL, "out of memory");
		return;
	}
	f->call = call;
	if (nng_ctx_open(&f->ctx, b->dlq.sock) != 0 ||
	    nng_aio_alloc(&f->aio, forward_cb, f) != 0 ||
	    nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, buf, len) != 0) {
		nng_msg_free(msg);
		unreachable(f);
		return;
	}
	nng_aio_set_timeout(f->aio, DLQ_FORWARD_TIMEOUT_MS);
	nng_aio_set_msg(f->aio, msg);
	nng_ctx_send(f->ctx, f->aio);
}
