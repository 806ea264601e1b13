#include "nqi/rep.h"

#include <stdlib.h>

#include "nq/nq.h"

enum rep_state { REP_RECV, REP_WAIT, REP_SEND };

struct nqi_rep_ctx {
	nqi_rep *rep;
	nng_ctx ctx;
	nng_aio *aio;
	enum rep_state state;
};

struct nqi_rep {
	nqi_rep_request_cb cb;
	void *arg;
	nqi_rep_ctx *ctxs;
	int n;
};

static void rep_cb(void *arg)
{
	nqi_rep_ctx *c = arg;
	int rv = nng_aio_result(c->aio);
	switch (c->state) {
	case REP_RECV:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		if (rv != 0) {
			nng_ctx_recv(c->ctx, c->aio);
			return;
		}
		c->state = REP_WAIT;
		c->rep->cb(c, nng_aio_get_msg(c->aio), c->rep->arg);
		return;
	case REP_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		c->state = REP_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	case REP_WAIT:
		return;
	}
}

void nqi_rep_reply(nqi_rep_ctx *c, nng_msg *msg)
{
	c->state = REP_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

void nqi_rep_drop(nqi_rep_ctx *c)
{
	c->state = REP_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

int nqi_rep_start(
    nqi_rep **out, nng_socket s, int nctx, nqi_rep_request_cb cb, void *arg)
{
	nqi_rep *r = calloc(1, sizeof *r);
	if (!r || !(r->ctxs = calloc((size_t)nctx, sizeof *r->ctxs))) {
		free(r);
		return NQ_ENOMEM;
	}
	r->cb = cb;
	r->arg = arg;
	for (int i = 0; i < nctx; i++, r->n++) {
		nqi_rep_ctx *c = &r->ctxs[i];
		c->rep = r;
		if (nng_aio_alloc(&c->aio, rep_cb, c) != 0)
			break;
		if (nng_ctx_open(&c->ctx, s) != 0) {
			nng_aio_free(c->aio);
			break;
		}
	}
	if (r->n < nctx) {
		nqi_rep_stop(r);
		return NQ_ENOMEM;
	}
	for (int i = 0; i < nctx; i++)
		nng_ctx_recv(r->ctxs[i].ctx, r->ctxs[i].aio);
	*out = r;
	return NQ_OK;
}

void nqi_rep_stop(nqi_rep *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n; i++)
		nng_aio_stop(r->ctxs[i].aio);
	for (int i = 0; i < r->n; i++) {
		nng_ctx_close(r->ctxs[i].ctx);
		nng_aio_free(r->ctxs[i].aio);
	}
	free(r->ctxs);
	free(r);
}
