/*
 * A REP socket that serves many requests at once: a pool of nng contexts,
 * each driven by an aio state machine (receive, wait for the answer, send,
 * receive again). The service decodes and answers; this file only moves
 * messages.
 *
 * Three things keep one client from taking the pool from everyone else:
 * - A request the service holds for long (a long-poll) is parked: its
 *   context leaves the pool and a spare one takes its place, so the pool
 *   always has its full count receiving. Parked requests are bounded.
 * - One connection has at most conn_requests requests served at once; its
 *   further ones wait their turn out of the pool (at most conn_backlog of
 *   them; beyond that they are dropped unanswered).
 * - A reply waits at most send_timeout_ms for its connection to take it,
 *   so a client that does not read frees its contexts in time.
 *
 * And, once watched (nqi_rep_watch), the socket takes at most max_conns
 * connections, and closes one that has received no whole request for
 * idle_ms while nothing of it is served, waiting or parked: a connection
 * that trickles a large message in, or sits on its buffer, is let go.
 * nng's REQ side redials and resends by itself, so a client that was only
 * idle loses nothing. For the same reason a connection that arrives while
 * max_conns are open takes the place of the one idle longest with nothing
 * served, waiting or parked (with keep_asked, of one that never sent a
 * request) and open for a second at least, which is closed; only when
 * there is none is the newcomer refused. So a crowd that connects and
 * sits still cannot lock out the clients that come after it.
 */
#ifndef NQI_REP_H
#define NQI_REP_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "nqi/conncap.h"

/* Defaults of nqi_rep_limits. */
#define NQI_REP_MAX_PARKED 10000
#define NQI_REP_CONN_REQUESTS 32
#define NQI_REP_CONN_BACKLOG 256
#define NQI_REP_SEND_TIMEOUT_MS 10000

typedef struct nqi_rep nqi_rep;
typedef struct nqi_rep_ctx nqi_rep_ctx;

typedef struct nqi_rep_limits {
	int max_parked;      /* requests parked at once */
	int conn_requests;   /* requests of one connection served at once */
	int conn_backlog;    /* requests of one connection waiting a turn */
	int send_timeout_ms; /* a reply not taken by then is dropped */
} nqi_rep_limits;

/* What the limits do now, and what they did since the start. */
typedef struct nqi_rep_counts {
	uint64_t parked;  /* requests parked now */
	uint64_t waiting; /* requests waiting for their connection's turn */
	uint64_t park_refused;  /* nqi_rep_park refused: max_parked reached */
	uint64_t dropped;       /* requests dropped: conn_backlog reached */
	uint64_t unsent;        /* replies dropped at send_timeout_ms */
	uint64_t connections;   /* open now (watched sockets) */
	uint64_t conns_refused; /* closed at once: max_conns were open */
	uint64_t idle_closed;   /* closed after idle_ms without a request */
	uint64_t evicted;       /* closed to make room at max_conns */
} nqi_rep_counts;

typedef struct nqi_rep_watch_opts {
	const char *what;    /* the socket's name, for logs */
	int max_conns;       /* connections at once (0: no cap) */
	uint64_t idle_ms;    /* the idle rule (0: off) */
	nng_pipe_cb gone_cb; /* also called at each REM_POST; may be NULL */
	void *gone_arg;
	/* At the cap, close only a connection that never sent a request:
	 * the service keeps state of a connection between its requests (the
	 * work socket's leases, which its close gives back). */
	bool keep_asked;
} nqi_rep_watch_opts;

/*
 * Called with each request: on an NNG thread, or for a request that waited
 * its connection's turn, on the thread whose answer (or park) freed that
 * turn. The callee owns msg and must answer exactly once, from any thread,
 * with nqi_rep_reply or nqi_rep_drop; the context takes no other request
 * until then. The callee must not hold a lock that the answering thread
 * takes.
 */
typedef void (*nqi_rep_request_cb)(nqi_rep_ctx *ctx, nng_msg *msg, void *arg);

/* Opens nctx contexts on s and starts receiving, with the default limits.
 * Returns 0 or an nq error; on failure nothing is left running. */
int nqi_rep_start(
    nqi_rep **out, nng_socket s, int nctx, nqi_rep_request_cb cb, void *arg);
/* Caps and watches the connections of r's socket (see the top of this
 * file), once, after nqi_rep_start and before the socket dials or
 * listens; it takes the socket's ADD_PRE and REM_POST notices (gone_cb
 * gets the latter). The received-request hot path costs one store of a
 * clock that a sweep thread keeps. Returns 0 or an nq error. */
int nqi_rep_watch(nqi_rep *r, const nqi_rep_watch_opts *o);
/* Replaces the limits; from any thread. */
void nqi_rep_set_limits(nqi_rep *r, const nqi_rep_limits *lim);
/* Parks the request that c holds: c leaves the pool (a spare context
 * receives in its place) and no longer counts as served for its
 * connection, until it is answered. Returns 0, or NQ_EEXHAUSTED when
 * max_parked requests are parked already (c still waits for its
 * answer). */
int nqi_rep_park(nqi_rep_ctx *c);
/* Sends the answer; takes msg. */
void nqi_rep_reply(nqi_rep_ctx *c, nng_msg *msg);
/* Gives up on answering (no reply can be built): the requester times out.
 * The context receives again. */
void nqi_rep_drop(nqi_rep_ctx *c);
/* The counts of r; from any thread. */
void nqi_rep_get_counts(nqi_rep *r, nqi_rep_counts *out);
/* Stops every context: blocks until no callback runs, then frees. Call
 * before closing the socket. NULL is fine. */
void nqi_rep_stop(nqi_rep *r);

#endif
