/*
 * A REP socket that serves many requests at once: a pool of nng contexts,
 * each driven by an aio state machine (receive, wait for the answer, send,
 * receive again). The service decodes and answers; this file only moves
 * messages.
 */
#ifndef NQI_REP_H
#define NQI_REP_H

#include <nng/nng.h>

typedef struct nqi_rep nqi_rep;
typedef struct nqi_rep_ctx nqi_rep_ctx;

/*
 * Called on an NNG thread with each request. The callee owns msg and must
 * answer exactly once, from any thread, with nqi_rep_reply or nqi_rep_drop;
 * the context takes no other request until then.
 */
typedef void (*nqi_rep_request_cb)(nqi_rep_ctx *ctx, nng_msg *msg, void *arg);

/* Opens nctx contexts on s and starts receiving. Returns 0 or an nq error;
 * on failure nothing is left running. */
int nqi_rep_start(
    nqi_rep **out, nng_socket s, int nctx, nqi_rep_request_cb cb, void *arg);
/* Sends the answer; takes msg. */
void nqi_rep_reply(nqi_rep_ctx *c, nng_msg *msg);
/* Gives up on answering (no reply can be built): the requester times out.
 * The context receives again. */
void nqi_rep_drop(nqi_rep_ctx *c);
/* Stops every context: blocks until no callback runs, then frees. Call
 * before closing the socket. NULL is fine. */
void nqi_rep_stop(nqi_rep *r);

#endif
