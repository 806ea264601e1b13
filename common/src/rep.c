#include "nqi/rep.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nq/nq.h"

enum rep_state { REP_RECV, REP_WAIT, REP_SEND };

struct nqi_rep_ctx {
	nqi_rep *rep;
	nng_ctx ctx;
	nng_aio *aio;
	enum rep_state state;
	/* pipe_id is set before the context is counted; the rest is
	 * guarded by rep->mu */
	uint32_t pipe_id; /* connection of the request held */
	bool held;        /* counts as served for pipe_id */
	bool detached;    /* out of the pool: a spare once answered */
	bool parked;      /* counted in counts.parked */
	nqi_rep_ctx *all_next, *spare_next, *wait_next;
};

/* A connection with requests being served or waiting for a turn. */
struct rep_pipe {
	uint32_t id;
	int held;
	int nwait;
	nqi_rep_ctx *wait_head, *wait_tail;
};

struct nqi_rep {
	nng_socket sock;
	nqi_rep_request_cb cb;
	void *arg;
	pthread_mutex_t mu; /* guards everything below */
	nqi_rep_limits lim;
	atomic_int send_timeout_ms; /* lim's, read without the lock */
	nqi_rep_ctx *all;           /* every context, for nqi_rep_stop */
	nqi_rep_ctx *spare;         /* out of the pool, idle */
	struct rep_pipe *pipes;
	size_t npipes, cappipes;
	nqi_rep_counts counts;
};

/* ---- connections (all under mu) ---- */

static struct rep_pipe *pipe_find(nqi_rep *r, uint32_t id)
{
	for (size_t i = 0; i < r->npipes; i++)
		if (r->pipes[i].id == id)
			return &r->pipes[i];
	return NULL;
}

/* The entry of id, added when missing; NULL without memory. */
static struct rep_pipe *pipe_get(nqi_rep *r, uint32_t id)
{
	struct rep_pipe *p = pipe_find(r, id);
	if (p)
		return p;
	if (r->npipes == r->cappipes) {
		size_t cap = r->cappipes ? r->cappipes * 2 : 16;
		struct rep_pipe *v = realloc(r->pipes, cap * sizeof *v);
		if (!v)
			return NULL;
		r->pipes = v;
		r->cappipes = cap;
	}
	p = &r->pipes[r->npipes++];
	*p = (struct rep_pipe){.id = id};
	return p;
}

static void pipe_forget_if_idle(nqi_rep *r, struct rep_pipe *p)
{
	if (p->held == 0 && p->nwait == 0)
		*p = r->pipes[--r->npipes];
}

/* Takes the next waiting request of p into service; NULL when none. */
static nqi_rep_ctx *pipe_next(nqi_rep *r, struct rep_pipe *p)
{
	nqi_rep_ctx *c = p->wait_head;
	if (!c || p->held >= r->lim.conn_requests)
		return NULL;
	if (!(p->wait_head = c->wait_next))
		p->wait_tail = NULL;
	p->nwait--;
	r->counts.waiting--;
	p->held++;
	c->held = true;
	return c;
}

/* c's request no longer counts as served: its connection's next waiting
 * request, if any, is returned to be served. */
static nqi_rep_ctx *pipe_release(nqi_rep *r, nqi_rep_ctx *c)
{
	struct rep_pipe *p = c->held ? pipe_find(r, c->pipe_id) : NULL;
	c->held = false;
	if (!p)
		return NULL;
	p->held--;
	nqi_rep_ctx *next = pipe_next(r, p);
	pipe_forget_if_idle(r, p);
	return next;
}

static nqi_rep_ctx *spare_take(nqi_rep *r)
{
	nqi_rep_ctx *s = r->spare;
	if (s)
		r->spare = s->spare_next;
	return s;
}

/* ---- contexts ---- */

static void rep_cb(void *arg);

static void ctx_recv(nqi_rep_ctx *c)
{
	c->state = REP_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

static void ctx_serve(nqi_rep_ctx *c)
{
	c->state = REP_WAIT;
	c->rep->cb(c, nng_aio_get_msg(c->aio), c->rep->arg);
}

/* A new context, listed in r->all; not receiving yet. */
static int ctx_open(nqi_rep *r, nqi_rep_ctx **out)
{
	nqi_rep_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return NQ_ENOMEM;
	c->rep = r;
	if (nng_aio_alloc(&c->aio, rep_cb, c) != 0) {
		free(c);
		return NQ_ENOMEM;
	}
	if (nng_ctx_open(&c->ctx, r->sock) != 0) {
		nng_aio_free(c->aio);
		free(c);
		return NQ_ENOMEM;
	}
	pthread_mutex_lock(&r->mu);
	c->all_next = r->all;
	r->all = c;
	pthread_mutex_unlock(&r->mu);
	*out = c;
	return NQ_OK;
}

/* A spare to take the place of c, which left the pool, or NULL: without
 * memory c stays in the pool (one short until c is answered). */
static nqi_rep_ctx *replacement(nqi_rep *r, nqi_rep_ctx *c)
{
	pthread_mutex_lock(&r->mu);
	nqi_rep_ctx *s = spare_take(r);
	pthread_mutex_unlock(&r->mu);
	if (s || ctx_open(r, &s) == 0)
		return s;
	pthread_mutex_lock(&r->mu);
	c->detached = false;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

enum admit { ADMIT_SERVE, ADMIT_WAIT, ADMIT_DROP };

/* Whether a new request on c is served now, waits for its connection's
 * turn (queued on it), or is dropped. */
static enum admit admit(nqi_rep *r, nqi_rep_ctx *c)
{
	enum admit a = ADMIT_SERVE;
	pthread_mutex_lock(&r->mu);
	struct rep_pipe *p = pipe_get(r, c->pipe_id);
	if (!p) {
		/* no memory to count it: served uncounted */
	} else if (p->held < r->lim.conn_requests) {
		p->held++;
		c->held = true;
	} else if (p->nwait < r->lim.conn_backlog) {
		c->wait_next = NULL;
		if (p->wait_tail)
			p->wait_tail->wait_next = c;
		else
			p->wait_head = c;
		p->wait_tail = c;
		p->nwait++;
		r->counts.waiting++;
		c->detached = true;
		a = ADMIT_WAIT;
	} else {
		r->counts.dropped++;
		a = ADMIT_DROP;
	}
	pthread_mutex_unlock(&r->mu);
	return a;
}

static void on_received(nqi_rep_ctx *c)
{
	nqi_rep *r = c->rep;
	nng_msg *msg = nng_aio_get_msg(c->aio);
	uint32_t pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
	c->pipe_id = pipe_id;
	c->state = REP_WAIT;
	switch (admit(r, c)) {
	case ADMIT_SERVE:
		ctx_serve(c);
		return;
	case ADMIT_DROP:
		nng_msg_free(msg);
		ctx_recv(c);
		return;
	case ADMIT_WAIT:
		break;
	}
	/* c waits out of the pool; a turn may have come meanwhile (and c
	 * may be served by another thread already: only pipe_id is read). */
	nqi_rep_ctx *s = replacement(r, c);
	if (s)
		ctx_recv(s);
	pthread_mutex_lock(&r->mu);
	struct rep_pipe *p = pipe_find(r, pipe_id);
	nqi_rep_ctx *next = p ? pipe_next(r, p) : NULL;
	pthread_mutex_unlock(&r->mu);
	if (next)
		ctx_serve(next);
}

/* After an answer: back to receiving, or to the spares when out of the
 * pool; the connection's next waiting request is served. */
static void ctx_next(nqi_rep_ctx *c)
{
	nqi_rep *r = c->rep;
	pthread_mutex_lock(&r->mu);
	nqi_rep_ctx *next = pipe_release(r, c);
	if (c->parked)
		r->counts.parked--;
	c->parked = false;
	bool detached = c->detached;
	if (detached) {
		c->detached = false;
		c->spare_next = r->spare;
		r->spare = c;
	}
	pthread_mutex_unlock(&r->mu);
	if (!detached)
		ctx_recv(c);
	if (next)
		ctx_serve(next);
}

static void rep_cb(void *arg)
{
	nqi_rep_ctx *c = arg;
	int rv = nng_aio_result(c->aio);
	switch (c->state) {
	case REP_RECV:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		if (rv != 0)
			ctx_recv(c);
		else
			on_received(c);
		return;
	case REP_SEND:
		nng_aio_set_timeout(c->aio, NNG_DURATION_INFINITE);
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		if (rv == NNG_ETIMEDOUT) {
			pthread_mutex_lock(&c->rep->mu);
			c->rep->counts.unsent++;
			pthread_mutex_unlock(&c->rep->mu);
		}
		ctx_next(c);
		return;
	case REP_WAIT:
		return;
	}
}

void nqi_rep_reply(nqi_rep_ctx *c, nng_msg *msg)
{
	nqi_rep *r = c->rep;
	c->state = REP_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_aio_set_timeout(c->aio, atomic_load(&r->send_timeout_ms));
	nng_ctx_send(c->ctx, c->aio);
}

void nqi_rep_drop(nqi_rep_ctx *c)
{
	ctx_next(c);
}

int nqi_rep_park(nqi_rep_ctx *c)
{
	nqi_rep *r = c->rep;
	pthread_mutex_lock(&r->mu);
	if (r->counts.parked >= (uint64_t)r->lim.max_parked) {
		r->counts.park_refused++;
		pthread_mutex_unlock(&r->mu);
		return NQ_EEXHAUSTED;
	}
	bool in_pool = !c->detached;
	c->detached = true;
	c->parked = true;
	r->counts.parked++;
	nqi_rep_ctx *next = pipe_release(r, c);
	pthread_mutex_unlock(&r->mu);
	nqi_rep_ctx *s = in_pool ? replacement(r, c) : NULL;
	if (s)
		ctx_recv(s);
	if (next)
		ctx_serve(next);
	return NQ_OK;
}

void nqi_rep_set_limits(nqi_rep *r, const nqi_rep_limits *lim)
{
	pthread_mutex_lock(&r->mu);
	r->lim = *lim;
	atomic_store(&r->send_timeout_ms, lim->send_timeout_ms);
	pthread_mutex_unlock(&r->mu);
}

void nqi_rep_get_counts(nqi_rep *r, nqi_rep_counts *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->counts;
	pthread_mutex_unlock(&r->mu);
}

int nqi_rep_start(
    nqi_rep **out, nng_socket s, int nctx, nqi_rep_request_cb cb, void *arg)
{
	nqi_rep *r = calloc(1, sizeof *r);
	if (!r)
		return NQ_ENOMEM;
	r->sock = s;
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_init(&r->mu, NULL);
	nqi_rep_set_limits(
	    r, &(nqi_rep_limits){NQI_REP_MAX_PARKED, NQI_REP_CONN_REQUESTS,
	           NQI_REP_CONN_BACKLOG, NQI_REP_SEND_TIMEOUT_MS});
	for (int i = 0; i < nctx; i++) {
		nqi_rep_ctx *c;
		if (ctx_open(r, &c) != 0) {
			nqi_rep_stop(r);
			return NQ_ENOMEM;
		}
	}
	for (nqi_rep_ctx *c = r->all; c; c = c->all_next)
		ctx_recv(c);
	*out = r;
	return NQ_OK;
}

void nqi_rep_stop(nqi_rep *r)
{
	if (!r)
		return;
	/* A callback that runs until its aio is stopped may still open a
	 * context (in front of the list): stop until no new one came. */
	for (nqi_rep_ctx *stopped = NULL, *all;; stopped = all) {
		pthread_mutex_lock(&r->mu);
		all = r->all;
		pthread_mutex_unlock(&r->mu);
		if (all == stopped)
			break;
		for (nqi_rep_ctx *c = all; c != stopped; c = c->all_next)
			nng_aio_stop(c->aio);
	}
	/* Requests waiting for their turn still own their message. */
	for (size_t i = 0; i < r->npipes; i++)
		for (nqi_rep_ctx *c = r->pipes[i].wait_head; c;
		     c = c->wait_next)
			nng_msg_free(nng_aio_get_msg(c->aio));
	for (nqi_rep_ctx *c = r->all, *next; c; c = next) {
		next = c->all_next;
		nng_ctx_close(c->ctx);
		nng_aio_free(c->aio);
		free(c);
	}
	pthread_mutex_destroy(&r->mu);
	free(r->pipes);
	free(r);
}
