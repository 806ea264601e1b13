/* The REP socket: many requests at once, one nng context each, driven by
 * an aio state machine. Everything here runs on NNG's threads; requests
 * are decoded and checked here and routed by the table below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "dlq.h"
#include "nqi/rep.h"
#include "nqi/log.h"
#include "nqi/tls.h"
#include "nqi/util.h"

/* Where each request kind is served. */
typedef enum dlq_lane {
	LANE_READ,   /* at once, on this thread, from a read transaction */
	LANE_WRITE,  /* by the core, in its next group commit */
	LANE_REPLAY, /* by the replay thread */
} dlq_lane;

typedef struct route {
	Nq__V1__Request__BodyCase body;
	dlq_lane lane;
	dlq_handler_fn fn; /* read lane only; the others have their own */
	unsigned roles;    /* who may (admin always may) */
} route;

#define PRODUCER NQI_ROLE_PRODUCER
#define ADMIN NQI_ROLE_ADMIN

/* One row per request kind: where it is served and who may make it. The
 * broker hands dead jobs over as a producer; the rest is for operators. */
static const route routes[] = {
    {NQ__V1__REQUEST__BODY_DLQ_INGEST, LANE_WRITE, NULL, PRODUCER},
    {NQ__V1__REQUEST__BODY_DLQ_PURGE, LANE_WRITE, NULL, ADMIN},
    {NQ__V1__REQUEST__BODY_DLQ_REPLAY, LANE_REPLAY, NULL, ADMIN},
    {NQ__V1__REQUEST__BODY_DLQ_LIST, LANE_READ, dlq_on_list, ADMIN},
    {NQ__V1__REQUEST__BODY_DLQ_SHOW, LANE_READ, dlq_on_show, ADMIN},
    {NQ__V1__REQUEST__BODY_DLQ_STATS, LANE_READ, dlq_on_stats, ADMIN},
};

static const route *route_find(Nq__V1__Request__BodyCase body)
{
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (routes[i].body == body)
			return &routes[i];
	return NULL;
}

void dlq_conn_reply(dlq_conn *c, dlq_op *op)
{
	nng_msg *msg;
	int rv = nqi_msg_pack(&op->reply.base, NULL, 0, &msg);
	void (*fn)(void *, nng_msg *) = op->reply_fn;
	void *arg = op->reply_arg;
	dlq_op_free(op);
	if (fn)
		fn(arg, rv != 0 ? NULL : msg);
	else if (rv != 0) /* the requester times out and retries */
		nqi_rep_drop(c);
	else
		nqi_rep_reply(c, msg);
}

/* Answers at once with an error (malformed, wrong version, ...). */
static void reply_error(dlq_conn *c, dlq_op *op, int err, const char *msg)
{
	static uint32_t versions[1] = {NQI_PROTOCOL_VERSION};
	dlq_op_status(op, err, "%s", msg);
	if (err == NQ_EPRECOND) {
		op->reply.versions = versions;
		op->reply.n_versions = 1;
	}
	dlq_conn_reply(c, op);
}

/* NULL when the request's token may make it; else why not. A refused
 * request changes nothing: it goes no further than here. */
static const char *auth_refusal(const dlq *d, const Nq__V1__Request *req,
    const route *r, int *err, char *buf, size_t len)
{
	char who[64];
	*err = nqi_auth_check(d->auth, req->token, r->roles);
	if (*err == NQ_OK)
		return NULL;
	if (*err == NQ_EAUTH)
		return req->token[0]
		           ? "unknown token"
		           : "this nq-dlq needs a token (--token-file)";
	nqi_auth_roles_text(r->roles, who, sizeof who);
	snprintf(buf, len, "this request needs a token with role %s", who);
	return buf;
}

/* What can be told without state; NULL when the request may proceed. */
static const char *precheck(const dlq *d, const Nq__V1__Request *req,
    const route **r, int *err, char *buf, size_t len)
{
	*err = NQ_EINVAL;
	if (req->version != NQI_PROTOCOL_VERSION) {
		*err = NQ_EPRECOND;
		snprintf(buf, len,
		    "protocol version %u is not served; nq-dlq "
		    "serves version %d",
		    req->version, NQI_PROTOCOL_VERSION);
		return buf;
	}
	if (req->body_case == NQ__V1__REQUEST__BODY__NOT_SET)
		return "request has no body";
	*r = route_find(req->body_case);
	if (!*r)
		return "nq-dlq serves dlq_ingest, dlq_list, dlq_show, "
		       "dlq_replay, dlq_purge and dlq_stats; other requests "
		       "belong on the broker";
	return auth_refusal(d, req, *r, err, buf, len);
}

static void serve_read(dlq *d, dlq_conn *c, dlq_op *op, const route *r)
{
	int rv = r->fn(d, op);
	if (rv != 0 && !dlq_op_failed(op))
		dlq_op_status(op, rv == NQ_ENOMEM ? NQ_ENOMEM : NQ_EUNAVAIL,
		    "nq-dlq could not read its store: %s", nq_strerror(rv));
	if (rv != 0 || dlq_op_failed(op))
		op->reply.body_case = NQ__V1__REPLY__BODY__NOT_SET;
	dlq_conn_reply(c, op);
}

/* Decodes, checks and serves one request; the reply goes to c, or to fn
 * (HTTP). */
static void request_in(dlq *d, const void *body, size_t len, dlq_conn *c,
    void (*fn)(void *arg, nng_msg *msg), void *fn_arg)
{
	char buf[160];
	int err;
	const route *r = NULL;
	dlq_op *op = dlq_op_alloc(DLQ_OP_REQUEST);
	if (!op) {
		if (fn)
			fn(fn_arg, NULL);
		else
			nqi_rep_drop(c);
		return;
	}
	op->conn = c;
	op->reply_fn = fn;
	op->reply_arg = fn_arg;
	op->req = nqi_request_unpack(body, len);
	if (!op->req)
		nqi_request_refusal(body, len, buf, sizeof buf);
	if (!op->req) {
		reply_error(c, op, NQ_EINVAL, buf);
		return;
	}
	const char *bad = precheck(d, op->req, &r, &err, buf, sizeof buf);
	if (bad) {
		reply_error(c, op, err, bad);
		return;
	}
	if (atomic_load(&d->net_stopping)) {
		reply_error(c, op, NQ_EUNAVAIL, "nq-dlq is shutting down");
		return;
	}
	if (r->lane == LANE_READ)
		serve_read(d, c, op, r);
	else if (r->lane == LANE_WRITE)
		dlq_post(d, op);
	else
		dlq_replay_post(d, op);
}

static void on_request(dlq_conn *c, nng_msg *msg, void *arg)
{
	request_in(arg, nng_msg_body(msg), nng_msg_len(msg), c, NULL, NULL);
	nng_msg_free(msg);
}

void dlq_request_in(dlq *d, const void *buf, size_t len,
    void (*fn)(void *arg, nng_msg *msg), void *arg)
{
	request_in(d, buf, len, NULL, fn, arg);
}

/* Caps the socket's connections within --recv-budget (config_check made
 * sure one fits) and closes idle ones; logs the worst case. */
static int watch(dlq *d, char *err, size_t errlen)
{
	nqi_conncap_share sh = {
	    "listen", (size_t)d->cfg.max_message, d->cfg.max_connections};
	nqi_conncap_fit(&sh, 1, d->cfg.recv_budget, err, errlen);
	nqi_conncap_log_lowered(
	    &sh, d->cfg.max_connections, d->cfg.recv_budget);
	nqi_rep_watch_opts w = {
	    "listen", sh.cap, d->cfg.conn_idle_ms, NULL, NULL, false};
	if (nqi_rep_watch(d->rep, &w) != 0) {
		snprintf(err, errlen, "cannot watch the socket's connections");
		return NQ_EUNAVAIL;
	}
	nqi_info("NQ-CONN-LIMITS", NQI_U("listen_recv_max", sh.recv_max),
	    NQI_I("listen_max_connections", sh.cap),
	    NQI_U("worst_case_bytes", nqi_conncap_worst(&sh, 1)),
	    NQI_U("conn_idle_timeout_ms", d->cfg.conn_idle_ms));
	return NQ_OK;
}

int dlq_net_open(dlq *d, char *err, size_t errlen)
{
	nqi_tls_opts tls = {d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_ca};
	int n = d->cfg.contexts;
	int rv = nng_rep0_open(&d->sock);
	if (rv != 0) {
		snprintf(
		    err, errlen, "cannot open a socket: %s", nng_strerror(rv));
		return NQ_EUNAVAIL;
	}
	d->sock_open = true;
	if (nqi_rep_start(&d->rep, d->sock, n, on_request, d) != 0) {
		snprintf(err, errlen, "cannot open socket contexts");
		return NQ_ENOMEM;
	}
	if (watch(d, err, errlen) != 0)
		return NQ_EUNAVAIL;
	if (nqi_listen(d->sock, d->cfg.listen_url, &tls,
	        (size_t)d->cfg.max_message, "listen", err, errlen) != 0)
		return NQ_EUNAVAIL;
	return NQ_OK;
}

void dlq_net_quiesce(dlq *d)
{
	atomic_store(&d->net_stopping, true);
}

void dlq_net_close(dlq *d)
{
	/* Stop callbacks before freeing what they use. */
	nqi_rep_stop(d->rep);
	d->rep = NULL;
	if (d->sock_open)
		nng_close(d->sock);
	d->sock_open = false;
}
