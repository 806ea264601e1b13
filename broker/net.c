/* NNG side of the broker: REP contexts on the api and work sockets, the
 * results PULL socket, and connection-drop notices. Everything here runs on
 * NNG's threads and only decodes, checks and hands ops to the core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/rep.h>

#include "broker.h"
#include "nqi/rep.h"
#include "nqi/limits.h"
#include "nqi/log.h"
#include "nqi/util.h"

/* Where a request's reply goes: its REP context, or a function (HTTP). */
typedef struct reply_to {
	nqi_rep_ctx *conn;
	void (*fn)(void *arg, nng_msg *msg);
	void *arg;
} reply_to;

/* Replies at once, without the core (malformed requests, wrong version,
 * wrong socket). */
static void reply_now(reply_to to, int err, const char *msg)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status s = NQ__V1__STATUS__INIT;
	uint32_t versions[1] = {NQI_PROTOCOL_VERSION};
	nng_msg *out;
	s.code = (Nq__V1__Code)nqi_err_to_code(err);
	s.message = (char *)msg;
	r.status = &s;
	if (err == NQ_EPRECOND) {
		r.versions = versions;
		r.n_versions = 1;
	}
	if (nqi_msg_pack(&r.base, NULL, 0, &out) != 0)
		out = NULL;
	if (to.fn)
		to.fn(to.arg, out);
	else if (out)
		nqi_rep_reply(to.conn, out);
	else
		nqi_rep_drop(to.conn);
}

/* NULL when the request's token may make it; else why not. A refused
 * request changes nothing: it never reaches the core. */
static const char *auth_refusal(
    broker *b, const Nq__V1__Request *req, int *err, char *buf, size_t len)
{
	unsigned roles = broker_body_roles(req->body_case);
	*err = nqi_auth_check(b->auth, req->token, roles);
	if (*err == NQ_OK)
		return NULL;
	if (*err == NQ_EAUTH)
		return req->token[0] ? "unknown token"
		                     : "this broker needs a "
		                       "token (--token-file)";
	char who[64];
	nqi_auth_roles_text(roles, who, sizeof who);
	snprintf(buf, len, "this request needs a token with role %s", who);
	return buf;
}

/* Decodes, checks and posts one request; pipe_id is its connection's
 * (0: HTTP, whose waits no pipe's end drops). */
static void request_in(broker *b, bool work, const void *body, size_t len,
    uint32_t pipe_id, reply_to to)
{
	char buf[160];
	int err;
	nqi_arena *arena;
	Nq__V1__Request *req = nqi_request_unpack_arena(body, len, &arena);
	if (!req) {
		nqi_request_refusal(body, len, buf, sizeof buf);
		reply_now(to, NQ_EINVAL, buf);
		return;
	}
	const char *bad = broker_precheck(req, work, &err, buf, sizeof buf);
	if (!bad)
		bad = auth_refusal(b, req, &err, buf, sizeof buf);
	if (bad) {
		reply_now(to, err, bad);
		nqi_arena_free(arena);
		return;
	}
	broker_op *op = calloc(1, sizeof *op);
	if (!op) {
		nqi_arena_free(arena);
		reply_now(to, NQ_ENOMEM, "broker out of memory");
		return;
	}
	op->kind = BROKER_OP_REQUEST;
	op->req = req;
	op->arena = arena;
	broker_op_prepack(b, op);
	op->conn = to.conn;
	op->reply_fn = to.fn;
	op->reply_arg = to.arg;
	op->pipe_id = pipe_id;
	broker_post(b, op);
}

static void on_request(nqi_rep_ctx *c, nng_msg *msg, void *arg)
{
	const struct broker_conn_src *src = arg;
	uint32_t pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
	request_in(src->b, src->work, nng_msg_body(msg), nng_msg_len(msg), pipe,
	    (reply_to){c, NULL, NULL});
	nng_msg_free(msg);
}

void broker_request_in(broker *b, const void *buf, size_t len,
    void (*fn)(void *arg, nng_msg *msg), void *arg)
{
	request_in(b, false, buf, len, 0, (reply_to){NULL, fn, arg});
}

static void results_cb(void *arg)
{
	broker *b = arg;
	int rv = nng_aio_result(b->net.results_aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *msg = nng_aio_get_msg(b->net.results_aio);
		nqi_arena *arena;
		Nq__V1__CompletionBatch *batch = nqi_completions_unpack_arena(
		    nng_msg_body(msg), nng_msg_len(msg), &arena);
		nng_msg_free(msg);
		int auth = batch ? nqi_auth_check(
		                       b->auth, batch->token, NQI_ROLE_WORKER)
		                 : NQ_OK;
		broker_op *op =
		    batch && batch->version == NQI_PROTOCOL_VERSION &&
		            auth == NQ_OK
		        ? calloc(1, sizeof *op)
		        : NULL;
		if (op) {
			op->kind = BROKER_OP_COMPLETIONS;
			op->batch = batch;
			op->arena = arena;
			broker_post(b, op);
		} else {
			/* The first refusals are logged, then every 1000th. */
			if (b->net.completions_refused++ % 1000 == 0)
				nqi_warn("NQ-COMPLETION-REJECTED",
				    NQI_S("reason", !batch ? "malformed"
				                    : auth ? nq_err_name(auth)
				                           : "version"),
				    NQI_U(
				        "refused", b->net.completions_refused));
			nqi_arena_free(arena);
		}
	}
	nng_recv_aio(b->net.results, b->net.results_aio);
}

static void post_pipe_gone(broker *b, nng_pipe p, bool api)
{
	broker_op *op = calloc(1, sizeof *op);
	if (!op)
		return; /* leases lapse, waits end at their deadline instead */
	op->kind = BROKER_OP_PIPE_GONE;
	op->pipe_id = (uint32_t)nng_pipe_id(p);
	op->api_pipe = api;
	broker_post(b, op);
}

/* A worker connection closed: its leases are released at once. */
static void pipe_gone_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)ev;
	post_pipe_gone(arg, p, false);
}

/* An api connection closed: its parked waits are dropped. */
static void api_pipe_gone_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)ev;
	post_pipe_gone(arg, p, true);
}

static void set_limits(broker *b)
{
	nqi_rep_limits lim = {b->cfg.max_parked, b->cfg.conn_requests,
	    b->cfg.conn_backlog, (int)b->cfg.reply_timeout_ms};
	nqi_rep_set_limits(b->net.api_rep, &lim);
	nqi_rep_set_limits(b->net.work_rep, &lim);
}

size_t broker_api_recv_max(const broker_config *c)
{
	/* A batch may carry many payloads; one message is still bounded.
	 * The same bound as ever: what clients send today must still fit. */
	return (size_t)((c->max_payload + c->max_result) * 8 + (16u << 20));
}

void broker_conn_shares(
    const broker_config *c, nqi_conncap_share out[BROKER_SOCKETS])
{
	out[0] = (nqi_conncap_share){
	    "api", broker_api_recv_max(c), c->max_connections};
	out[1] =
	    (nqi_conncap_share){"work", NQI_WORK_RECV_MAX, c->max_connections};
	out[2] = (nqi_conncap_share){
	    "results", nqi_results_recv_max(c->max_result), c->max_connections};
}

/* The idle rule of the work socket: closing a worker's connection lapses
 * the leases fetched through it, so it waits at least as long as the
 * longest lease (and a minute for a request's way to the core): a
 * connection that long without a request holds no live lease, since
 * each needs an Extend in that time. */
static uint64_t work_idle_ms(const broker_config *c)
{
	uint64_t least = BROKER_LEASE_MAX_MS + 60000;
	return c->conn_idle_ms == 0 || c->conn_idle_ms >= least
	           ? c->conn_idle_ms
	           : least;
}

/* The caps of the sockets within --recv-budget (checked at start by
 * config_check, so this cannot fail then), logged with the worst case. */
static void fit_caps(broker *b, nqi_conncap_share sh[BROKER_SOCKETS])
{
	char err[160];
	broker_conn_shares(&b->cfg, sh);
	nqi_conncap_fit(
	    sh, BROKER_SOCKETS, b->cfg.recv_budget, err, sizeof err);
	for (int i = 0; i < BROKER_SOCKETS; i++)
		nqi_conncap_log_lowered(
		    &sh[i], b->cfg.max_connections, b->cfg.recv_budget);
	nqi_info("NQ-CONN-LIMITS", NQI_U("api_recv_max", sh[0].recv_max),
	    NQI_I("api_max_connections", sh[0].cap),
	    NQI_U("work_recv_max", sh[1].recv_max),
	    NQI_I("work_max_connections", sh[1].cap),
	    NQI_U("results_recv_max", sh[2].recv_max),
	    NQI_I("results_max_connections", sh[2].cap),
	    NQI_U("worst_case_bytes", nqi_conncap_worst(sh, BROKER_SOCKETS)),
	    NQI_U("conn_idle_timeout_ms", b->cfg.conn_idle_ms),
	    NQI_U("work_idle_timeout_ms", work_idle_ms(&b->cfg)));
}

static int listen_on(broker *b, nng_socket s, const char *url, size_t max_msg,
    const char *what, char *err, size_t errlen)
{
	nqi_tls_opts tls = {b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca};
	return nqi_listen(s, url, &tls, max_msg, what, err, errlen);
}

/* Opens the sockets and the contexts of api and work; nothing listens
 * yet. */
static int open_sockets(broker *b, char *err, size_t errlen)
{
	int rv = nng_rep0_open(&b->net.api);
	if (rv == 0)
		rv = nng_rep0_open(&b->net.work);
	if (rv == 0)
		rv = nng_pull0_open(&b->net.results);
	if (rv == 0)
		rv = nng_aio_alloc(&b->net.results_aio, results_cb, b);
	if (rv != 0) {
		snprintf(
		    err, errlen, "cannot open sockets: %s", nng_strerror(rv));
		return NQ_EUNAVAIL;
	}
	b->net.api_src = (struct broker_conn_src){b, false};
	b->net.work_src = (struct broker_conn_src){b, true};
	if (nqi_rep_start(&b->net.api_rep, b->net.api, b->cfg.api_contexts,
	        on_request, &b->net.api_src) ||
	    nqi_rep_start(&b->net.work_rep, b->net.work, b->cfg.work_contexts,
	        on_request, &b->net.work_src)) {
		snprintf(err, errlen, "cannot open socket contexts");
		return NQ_ENOMEM;
	}
	return NQ_OK;
}

/* Caps every socket's connections before it listens. The idle rule is
 * for api and work only: a connection of the results socket (PUSH) may
 * be closing with a completion still in flight, which would be lost; a
 * worker's results connection is also idle whenever it has nothing to
 * report. */
static int watch_sockets(broker *b, const nqi_conncap_share *sh)
{
	nqi_rep_watch_opts api = {
	    "api", sh[0].cap, b->cfg.conn_idle_ms, api_pipe_gone_cb, b, false};
	/* At the cap a work connection that has sent a request is never the
	 * one closed: it may hold leases. */
	nqi_rep_watch_opts work = {
	    "work", sh[1].cap, work_idle_ms(&b->cfg), pipe_gone_cb, b, true};
	nqi_conncap_init(&b->net.results_cap, "results", sh[2].cap);
	if (nqi_rep_watch(b->net.api_rep, &api) ||
	    nqi_rep_watch(b->net.work_rep, &work) ||
	    nqi_conncap_watch(b->net.results, &b->net.results_cap))
		return NQ_EUNAVAIL;
	return NQ_OK;
}

int broker_net_open(broker *b, char *err, size_t errlen)
{
	nqi_conncap_share sh[BROKER_SOCKETS];
	fit_caps(b, sh);
	int rv = open_sockets(b, err, errlen);
	if (rv != 0)
		return rv;
	if (watch_sockets(b, sh) != 0) {
		snprintf(err, errlen, "cannot watch the sockets' connections");
		return NQ_EUNAVAIL;
	}
	if (listen_on(b, b->net.api, b->cfg.api_url, sh[0].recv_max, "api", err,
	        errlen) ||
	    listen_on(b, b->net.work, b->cfg.work_url, sh[1].recv_max, "work",
	        err, errlen) ||
	    listen_on(b, b->net.results, b->cfg.results_url, sh[2].recv_max,
	        "results", err, errlen))
		return NQ_EUNAVAIL;
	set_limits(b);
	nng_recv_aio(b->net.results, b->net.results_aio);
	return NQ_OK;
}

void broker_net_close(broker *b)
{
	/* Stop callbacks before freeing what they use. */
	nqi_rep_stop(b->net.api_rep);
	nqi_rep_stop(b->net.work_rep);
	b->net.api_rep = b->net.work_rep = NULL;
	if (b->net.results_aio)
		nng_aio_stop(b->net.results_aio);
	nng_close(b->net.api);
	nng_close(b->net.work);
	nng_close(b->net.results);
	nng_aio_free(b->net.results_aio);
	b->net.results_aio = NULL;
}
