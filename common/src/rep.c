#include "nqi/rep.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <nng/supplemental/util/platform.h>

#include "nq/nq.h"
#include "nqi/log.h"
#include "nqi/util.h"

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
	bool pipe_parked; /* counted in its connection's parked */
	nqi_rep_ctx *all_next, *spare_next, *wait_next;
};

/* A connection that is open (while watched), or has requests being
 * served, waiting for a turn or parked. */
struct rep_pipe {
	uint32_t id;
	bool connected; /* from ADD_PRE to REM_POST */
	bool refused;   /* closed at ADD_PRE: max_conns were open */
	bool asked;     /* has sent a request */
	bool closing;   /* closed by the idle rule or the cap, until REM_POST */
	int held;
	int nwait;
	int parked;
	uint64_t seen_ms;  /* last request received, by the coarse clock */
	uint64_t since_ms; /* connected (ADD_PRE), by the system's clock */
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
	/* connections (nqi_rep_watch) */
	nqi_conncap cap;
	nqi_rep_watch_opts watch;
	bool watched;
	int closing; /* connections marked closing: no longer count as open */
	atomic_int in_pipe_cb;
	/* The idle sweep keeps now_ms, a clock that a received request reads
	 * instead of asking the system; sweep_stop and sweep_cv are under
	 * mu. */
	atomic_uint_fast64_t now_ms;
	uint64_t tick_ms;
	pthread_t sweeper;
	bool sweeping, sweep_stop;
	pthread_cond_t sweep_cv;
};

/* ---- connections (all under mu) ----
 *
 * An open-addressed table keyed by pipe id (nng never hands out id 0,
 * which marks a free slot), so that finding a connection's entry costs
 * the same with thousands of connections open as with one. */

static size_t pipe_home(const nqi_rep *r, uint32_t id)
{
	return (size_t)(id * 2654435761u) & (r->cappipes - 1);
}

static struct rep_pipe *pipe_find(nqi_rep *r, uint32_t id)
{
	if (r->cappipes == 0 || id == 0)
		return NULL;
	for (size_t i = pipe_home(r, id);; i = (i + 1) & (r->cappipes - 1))
		if (r->pipes[i].id == id)
			return &r->pipes[i];
		else if (r->pipes[i].id == 0)
			return NULL;
}

/* The free slot where id goes (the table has one). */
static struct rep_pipe *pipe_slot(nqi_rep *r, uint32_t id)
{
	size_t i = pipe_home(r, id);
	while (r->pipes[i].id != 0)
		i = (i + 1) & (r->cappipes - 1);
	return &r->pipes[i];
}

/* Doubles the table; NQ_ENOMEM leaves it as it was. */
static int pipes_grow(nqi_rep *r)
{
	size_t cap = r->cappipes ? r->cappipes * 2 : 16, old = r->cappipes;
	struct rep_pipe *v = calloc(cap, sizeof *v), *was = r->pipes;
	if (!v)
		return NQ_ENOMEM;
	r->pipes = v;
	r->cappipes = cap;
	for (size_t i = 0; i < old; i++)
		if (was[i].id != 0)
			*pipe_slot(r, was[i].id) = was[i];
	free(was);
	return NQ_OK;
}

/* The entry of id, added when missing; NULL without memory. */
static struct rep_pipe *pipe_get(nqi_rep *r, uint32_t id)
{
	struct rep_pipe *p = pipe_find(r, id);
	if (p || id == 0)
		return p;
	if ((r->npipes + 1) * 4 > r->cappipes * 3 && pipes_grow(r) != 0)
		return NULL;
	p = pipe_slot(r, id);
	*p = (struct rep_pipe){.id = id, .seen_ms = atomic_load(&r->now_ms)};
	r->npipes++;
	return p;
}

/* Empties p's slot, moving back the entries after it that would no
 * longer be found past a free slot. */
static void pipe_remove(nqi_rep *r, struct rep_pipe *p)
{
	size_t mask = r->cappipes - 1, i = (size_t)(p - r->pipes), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (r->pipes[j].id == 0)
			break;
		size_t home = pipe_home(r, r->pipes[j].id);
		/* j stays when its home lies cyclically in (i, j] */
		bool stays =
		    i < j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			r->pipes[i] = r->pipes[j];
			i = j;
		}
	}
	r->pipes[i] = (struct rep_pipe){0};
	r->npipes--;
}

static void pipe_forget_if_idle(nqi_rep *r, struct rep_pipe *p)
{
	if (p->held == 0 && p->nwait == 0 && p->parked == 0 && !p->connected &&
	    !p->refused)
		pipe_remove(r, p);
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
	/* An answer counts as activity too: the idle rule never closes a
	 * connection while a reply just handed to it may still be on its
	 * way. */
	p->seen_ms = atomic_load_explicit(&r->now_ms, memory_order_relaxed);
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
	if (p) {
		p->seen_ms =
		    atomic_load_explicit(&r->now_ms, memory_order_relaxed);
		p->asked = true;
	}
	if (!p) {
		/* no memory to count it: served uncounted */
	} else if (p->closing) {
		/* Chosen to be closed as one with nothing going on: it stays
		 * so (its client resends on its next connection). */
		a = ADMIT_DROP;
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

/* c, parked, is answered: its connection no longer holds it. */
static void pipe_unpark(nqi_rep *r, nqi_rep_ctx *c)
{
	struct rep_pipe *p = c->pipe_parked ? pipe_find(r, c->pipe_id) : NULL;
	c->pipe_parked = false;
	if (p) {
		p->parked--;
		pipe_forget_if_idle(r, p);
	}
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
	pipe_unpark(r, c);
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
	struct rep_pipe *p = pipe_find(r, c->pipe_id);
	if (p) {
		p->parked++;
		c->pipe_parked = true;
	}
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
	out->connections = (uint64_t)atomic_load(&r->cap.open);
	out->conns_refused = atomic_load(&r->cap.refused);
}

/* ---- connections: the cap and the idle rule ---- */

/* Pipes closed per sweep at most; the others wait for the next one. */
#define SWEEP_BATCH 64
/* How long a new connection is safe from being closed to make room. */
#define EVICT_GRACE_MS 1000

/* p is open, and may be closed now to make room without anyone losing a
 * request or (with keep_asked) what the service keeps for it. One younger
 * than EVICT_GRACE_MS may be about to send its first request: it stays,
 * so that a new client is not closed before it could ask anything, and a
 * crowd of newcomers cannot churn the buffers of connections as fast as
 * it connects. */
static bool pipe_at_rest(
    const nqi_rep *r, const struct rep_pipe *p, uint64_t now)
{
	return p->connected && !p->closing && p->held == 0 && p->nwait == 0 &&
	       p->parked == 0 && !(r->watch.keep_asked && p->asked) &&
	       now - p->since_ms >= EVICT_GRACE_MS;
}

/* Marks p to be closed: from now on it no longer counts as open, and a
 * request that still arrives on it is dropped. Under mu. */
static void pipe_mark_closing(nqi_rep *r, struct rep_pipe *p)
{
	p->closing = true;
	r->closing++;
}

/* The connection at rest that has been idle longest, marked closing, to
 * make room for a new one; 0 when none is at rest. A scan of the table:
 * it runs only when the cap binds. Under mu. */
static uint32_t evict_pick(nqi_rep *r, uint64_t now)
{
	struct rep_pipe *best = NULL;
	for (size_t i = 0; i < r->cappipes; i++) {
		struct rep_pipe *p = &r->pipes[i];
		if (p->id != 0 && pipe_at_rest(r, p, now) &&
		    (!best || p->seen_ms < best->seen_ms))
			best = p;
	}
	if (!best)
		return 0;
	pipe_mark_closing(r, best);
	r->counts.evicted++;
	return best->id;
}

/* A new connection: kept while fewer than max_conns are open (those
 * marked closing no longer count), else in the place of one at rest
 * (*evicted, for the caller to close), else refused. Under mu. */
static bool pipe_admit(nqi_rep *r, uint32_t id, uint32_t *evicted)
{
	int open = atomic_fetch_add(&r->cap.open, 1) + 1;
	uint64_t now = nqi_mono_ms();
	bool kept = r->cap.max <= 0 || open - r->closing <= r->cap.max;
	if (!kept && (*evicted = evict_pick(r, now)) != 0)
		kept = true;
	struct rep_pipe *p = pipe_get(r, id);
	if (p) { /* without memory: never closed as idle */
		p->since_ms = now;
		p->connected = kept;
		p->refused = !kept;
		if (!kept)
			pipe_mark_closing(r, p);
	}
	return kept;
}

static void pipe_added(nqi_rep *r, nng_pipe np)
{
	uint32_t evicted = 0;
	pthread_mutex_lock(&r->mu);
	bool kept = pipe_admit(r, (uint32_t)nng_pipe_id(np), &evicted);
	uint64_t nevicted = r->counts.evicted;
	pthread_mutex_unlock(&r->mu);
	/* Outside mu: a close runs pipe_cb, which takes it. */
	if (evicted) {
		nqi_conncap_log_evicted(&r->cap, nevicted);
		nng_pipe_close((nng_pipe){.id = evicted});
	}
	/* Closed once marked: its REM_POST then finds it refused. */
	if (!kept) {
		nqi_conncap_refuse(&r->cap);
		nng_pipe_close(np);
	}
}

static void pipe_removed(nqi_rep *r, nng_pipe np, nng_pipe_ev ev)
{
	pthread_mutex_lock(&r->mu);
	atomic_fetch_sub(&r->cap.open, 1);
	struct rep_pipe *p = pipe_find(r, (uint32_t)nng_pipe_id(np));
	/* A refused connection never served: its close is nobody's news
	 * (and a crowd of them would each cost the service a look). */
	bool tell = !p || !p->refused;
	if (p) {
		r->closing -= p->closing;
		p->connected = p->refused = p->closing = false;
		pipe_forget_if_idle(r, p);
	}
	pthread_mutex_unlock(&r->mu);
	if (tell && r->watch.gone_cb)
		r->watch.gone_cb(np, ev, r->watch.gone_arg);
}

static void pipe_cb(nng_pipe np, nng_pipe_ev ev, void *arg)
{
	nqi_rep *r = arg;
	atomic_fetch_add(&r->in_pipe_cb, 1);
	if (ev == NNG_PIPE_EV_ADD_PRE)
		pipe_added(r, np);
	else
		pipe_removed(r, np, ev);
	atomic_fetch_sub(&r->in_pipe_cb, 1);
}

/* Open connections with nothing served, waiting or parked and no request
 * received for idle_ms (the coarse clock lags by up to a tick, which the
 * test allows for); at most max ids. Under mu. */
static size_t idle_collect(nqi_rep *r, uint64_t now, uint32_t *ids, size_t max)
{
	size_t n = 0;
	if (r->watch.idle_ms == 0)
		return 0;
	for (size_t i = 0; i < r->cappipes && n < max; i++) {
		struct rep_pipe *p = &r->pipes[i];
		if (p->connected && !p->closing && p->held == 0 &&
		    p->nwait == 0 && p->parked == 0 &&
		    now - p->seen_ms >= r->watch.idle_ms + r->tick_ms) {
			pipe_mark_closing(r, p);
			ids[n++] = p->id;
		}
	}
	r->counts.idle_closed += n;
	return n;
}

/* Keeps now_ms (which orders connections by idleness at the cap too)
 * and closes idle connections, every tick_ms. */
static void *sweep_main(void *arg)
{
	nqi_rep *r = arg;
	uint32_t ids[SWEEP_BATCH];
	pthread_mutex_lock(&r->mu);
	while (!r->sweep_stop) {
		uint64_t now = nqi_mono_ms();
		atomic_store(&r->now_ms, now);
		size_t n = idle_collect(r, now, ids, SWEEP_BATCH);
		pthread_mutex_unlock(&r->mu);
		/* Outside mu: a close runs pipe_cb, which takes it. */
		for (size_t i = 0; i < n; i++) {
			nqi_debug("NQ-CONN-IDLE-CLOSED",
			    NQI_S("socket", r->cap.what),
			    NQI_U("pipe", ids[i]));
			nng_pipe_close((nng_pipe){.id = ids[i]});
		}
		pthread_mutex_lock(&r->mu);
		if (!r->sweep_stop)
			nqi_cond_wait_mono(
			    &r->sweep_cv, &r->mu, now + r->tick_ms);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static uint64_t tick_of(uint64_t idle_ms)
{
	uint64_t t = idle_ms == 0 ? 1000 : idle_ms / 4;
	return t < 10 ? 10 : t > 1000 ? 1000 : t;
}

int nqi_rep_watch(nqi_rep *r, const nqi_rep_watch_opts *o)
{
	r->watch = *o;
	r->tick_ms = tick_of(o->idle_ms);
	nqi_conncap_init(&r->cap, o->what, o->max_conns);
	int rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, r);
	if (rv == 0)
		rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, pipe_cb, r);
	if (rv != 0)
		return NQ_EUNAVAIL;
	r->watched = true;
	if (o->idle_ms == 0 && o->max_conns <= 0)
		return NQ_OK;
	if (pthread_create(&r->sweeper, NULL, sweep_main, r) != 0)
		return NQ_ENOMEM;
	r->sweeping = true;
	return NQ_OK;
}

/* Stops the sweep and the pipe notices. nng reads a notice's callback
 * under its lock but calls it after, so one may still be starting; it is
 * waited for as long as it runs. */
static void watch_stop(nqi_rep *r)
{
	if (r->sweeping) {
		pthread_mutex_lock(&r->mu);
		r->sweep_stop = true;
		pthread_cond_broadcast(&r->sweep_cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->sweeper, NULL);
		r->sweeping = false;
	}
	if (!r->watched)
		return;
	nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_PRE, NULL, NULL);
	nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
	while (atomic_load(&r->in_pipe_cb) > 0)
		nng_msleep(1);
	r->watched = false;
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
	nqi_cond_init_mono(&r->sweep_cv);
	atomic_init(&r->now_ms, nqi_mono_ms());
	nqi_conncap_init(&r->cap, "", 0);
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
	watch_stop(r);
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
	for (size_t i = 0; i < r->cappipes; i++)
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
	pthread_cond_destroy(&r->sweep_cv);
	free(r->pipes);
	free(r);
}
