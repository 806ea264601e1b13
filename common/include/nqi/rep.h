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
 */
#ifndef NQI_REP_H
#define NQI_REP_H

#include <stdint.h>

#include <nng/nng.h>

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
	uint64_t park_refused; /* nqi_rep_park refused: max_parked reached */
	uint64_t dropped;      /* requests dropped: conn_backlog reached */
	uint64_t unsent;       /* replies dropped at send_timeout_ms */
} nqi_rep_counts;

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
