/*
 * The JSON API of a daemon's HTTP listener (/v1/...): a table of routes,
 * each turned into the protobuf Request its NNG socket takes, so that a
 * route goes through the same checks, roles and durability as the same
 * request over NNG. The mapping is nqi/jsonpb.h's, so a field added to a
 * request or reply message appears here with no new code.
 *
 * For a request: the route's path parameters ({id}), its query arguments
 * (by field name, or an alias of the row) and, for a route that takes
 * one, the JSON body fill the request body of the row's oneof member of
 * Request. The token is `Authorization: Bearer T`. The daemon's reply is
 * answered as JSON: the reply body, or its field `unwrap` alone; a status
 * other than OK as {"code": "NOT_FOUND", "message": "..."} with the HTTP
 * status of the code (nqi_api_http_status).
 */
#ifndef NQI_HTTP_API_H
#define NQI_HTTP_API_H

#include <jansson.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/auth.h"
#include "nqi/http.h"

typedef struct nqi_api_call nqi_api_call;

/* The route takes a JSON body (else a body is refused). */
#define NQI_API_BODY 1u
/* The body is one item of the request's repeated field `items`, or an
 * object holding that field (a batch); the answer to one item is the
 * first element of the reply's field `unwrap`, its status the answer's. */
#define NQI_API_ITEMS 2u

typedef struct nqi_api_route {
	const char *method; /* "GET", "POST", "DELETE" */
	const char *path;   /* "/v1/jobs/{id}/cancel": {x} fills field x */
	const char *member; /* the member of Request's body ("cancel") */
	const char *unwrap; /* the reply body's field answered alone, or NULL */
	unsigned flags;
	const char *items; /* NQI_API_ITEMS: the repeated field */
	/* fields of query arguments and path parameters of another name:
	 * "after=after_id,timeout=timeout_ms" */
	const char *aliases;
	/* A route served otherwise (a stream): called instead, once; it
	 * answers before it returns (nqi_http_stream). */
	void (*serve)(nqi_http_req *req, void *arg);
} nqi_api_route;

/* Hands the packed Request to the daemon, which answers once, from any
 * thread, with nqi_api_done(). */
typedef void (*nqi_api_submit_fn)(
    void *arg, const uint8_t *req, size_t len, nqi_api_call *call);

typedef struct nqi_api {
	const nqi_api_route *routes;
	size_t nroutes;
	nqi_api_submit_fn submit;
	void *arg; /* of submit and serve */
} nqi_api;

/* The nqi_http_api_cb of a daemon's API; arg is its nqi_api. Besides
 * the routes it serves GET /v1/routes: {"routes": [{"method": "GET",
 * "path": "/v1/jobs/{id}"}, ...]}, every route it serves, for clients and
 * the test that holds docs/openapi.yaml to them. */
void nqi_api_serve(nqi_http_req *req, void *api);

/* The daemon's packed Reply to call (copied), or NULL/0 when it has none
 * (the request was dropped: 503). Any thread, once per call. */
void nqi_api_done(nqi_api_call *call, const void *reply, size_t len);

/* nqi_api_done() with the reply in msg (taken; NULL: none), as the
 * daemons' reply hooks give it. call is the nqi_api_call. */
void nqi_api_done_msg(void *call, nng_msg *msg);

/* The HTTP status of an nq.v1.Code. */
unsigned nqi_api_http_status(int code);

/* Answers req with {"code": code, "message": msg}. */
void nqi_api_error(
    nqi_http_req *req, unsigned status, const char *code, const char *msg);

/* nqi_auth_check of the request's Bearer token, answering nothing. */
int nqi_api_token_check(
    nqi_http_req *req, const nqi_auth *auth, unsigned roles);

/* True when the request's Bearer token has one of roles (see
 * nqi_auth_check); else answers 401 or 403 and returns false. */
bool nqi_api_authorized(
    nqi_http_req *req, const nqi_auth *auth, unsigned roles);

/* The route a call was made on (its member names the request). */
const nqi_api_route *nqi_api_call_route(const nqi_api_call *call);

/* nq-dlq's routes (/v1/dlq/...): served by nq-dlq, and by the broker,
 * which hands them to nq-dlq so that one URL shows everything. */
extern const nqi_api_route nqi_api_dlq_routes[];
extern const size_t nqi_api_dlq_nroutes;

/* Answers req with the JSON value v (taken). */
void nqi_api_json(nqi_http_req *req, unsigned status, json_t *v);

#endif
