/* The JSON API's routes (see http_api.h). */
#include "nqi/http_api.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nq/nq.h"
#include "nq/v1/api.pb-c.h"
#include "nqi/codec.h"
#include "nqi/json.h"
#include "nqi/jsonpb.h"
#include "nqi/util.h"

#define JSON_TYPE "application/json"
#define PARAMS_MAX 4
#define SEGMENT_MAX 256

/* A request on its way: the daemon's reply, once it came. */
struct nqi_api_call {
	nqi_http_req *req;
	const nqi_api_route *route;
	bool single; /* one item sent: answered as that item */
	atomic_bool done;
	uint8_t *reply;
	size_t len;
};

static const struct {
	int code;
	unsigned status;
} http_statuses[] = {
    {NQ__V1__CODE__OK, 200},
    {NQ__V1__CODE__INVALID_ARGUMENT, 400},
    {NQ__V1__CODE__NOT_FOUND, 404},
    {NQ__V1__CODE__ALREADY_EXISTS, 409},
    {NQ__V1__CODE__FAILED_PRECONDITION, 412},
    {NQ__V1__CODE__RESOURCE_EXHAUSTED, 429},
    {NQ__V1__CODE__PERMISSION_DENIED, 403},
    {NQ__V1__CODE__UNAUTHENTICATED, 401},
    {NQ__V1__CODE__UNAVAILABLE, 503},
    {NQ__V1__CODE__INTERNAL, 500},
    {NQ__V1__CODE__DEADLINE_EXCEEDED, 504},
};

unsigned nqi_api_http_status(int code)
{
	for (size_t i = 0; i < sizeof http_statuses / sizeof *http_statuses;
	     i++)
		if (http_statuses[i].code == code)
			return http_statuses[i].status;
	return 500;
}

static const char *code_name(int code)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &nq__v1__code__descriptor, code);
	return v ? v->name : "INTERNAL";
}

void nqi_api_json(nqi_http_req *req, unsigned status, json_t *v)
{
	char *text = v ? nqi_json_dumps(v) : NULL;
	json_decref(v);
	if (!text) {
		static const char oom[] =
		    "{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}";
		nqi_http_respond(req, 500, JSON_TYPE, oom, sizeof oom - 1);
		return;
	}
	nqi_http_respond(req, status, JSON_TYPE, text, strlen(text));
	free(text);
}

void nqi_api_error(
    nqi_http_req *req, unsigned status, const char *code, const char *msg)
{
	if (status == 401)
		nqi_http_req_add_header(req, "WWW-Authenticate", "Bearer");
	nqi_api_json(
	    req, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

static void api_error_code(nqi_http_req *req, int code, const char *msg)
{
	nqi_api_error(req, nqi_api_http_status(code), code_name(code), msg);
}

/* ---- routes ---- */

typedef struct params {
	const char *name[PARAMS_MAX];
	size_t nlen[PARAMS_MAX];
	char value[PARAMS_MAX][SEGMENT_MAX];
	size_t n;
} params;

/* Whether path matches the pattern, its {x} segments written into p. */
static bool path_match(const char *pat, const char *path, params *p)
{
	p->n = 0;
	while (*pat && *path) {
		if (*pat != '{') {
			if (*pat++ != *path++)
				return false;
			continue;
		}
		const char *close = strchr(pat, '}');
		size_t n = strcspn(path, "/");
		if (!close || n == 0 || n >= SEGMENT_MAX || p->n == PARAMS_MAX)
			return false;
		p->name[p->n] = pat + 1;
		p->nlen[p->n] = (size_t)(close - pat - 1);
		memcpy(p->value[p->n], path, n);
		p->value[p->n++][n] = '\0';
		pat = close + 1;
		path += n;
	}
	return !*pat && !*path;
}

/* The route of the request, or an error answered (404, 405). */
static const nqi_api_route *route_find(
    const nqi_api *api, nqi_http_req *req, params *p)
{
	const char *path = nqi_http_req_path(req);
	const char *method = nqi_http_req_method(req);
	char allow[64] = "";
	for (size_t i = 0; i < api->nroutes; i++) {
		const nqi_api_route *r = &api->routes[i];
		if (!path_match(r->path, path, p))
			continue;
		if (strcmp(r->method, method) == 0)
			return r;
		size_t n = strlen(allow);
		snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
		    r->method);
	}
	if (allow[0]) {
		nqi_http_req_add_header(req, "Allow", allow);
		nqi_api_error(req, 405, "INVALID_ARGUMENT",
		    "this path does not take that method");
	} else {
		nqi_api_error(req, 404, "NOT_FOUND", "no such route");
	}
	return NULL;
}

/* ---- the request ---- */

/* The field a query argument fills: the row's alias, or its own name. */
static void query_field(
    const nqi_api_route *r, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	for (const char *a = r->aliases; a && *a;) {
		size_t n = strcspn(a, ",");
		if (n > kl && strncmp(a, key, kl) == 0 && a[kl] == '=') {
			snprintf(
			    out, len, "%.*s", (int)(n - kl - 1), a + kl + 1);
			return;
		}
		a += n + (a[n] == ',');
	}
	snprintf(out, len, "%s", key);
}

typedef struct fill {
	const nqi_api_route *route;
	json_t *into;
	char err[200];
} fill;

/* Sets key to a value from the path or the query; a body that says
 * otherwise is refused. */
static int fill_one(fill *f, json_t *o, const char *key, const char *value)
{
	json_t *old = json_object_get(o, key);
	if (old && !(json_is_string(old) &&
	               strcmp(json_string_value(old), value) == 0)) {
		snprintf(f->err, sizeof f->err,
		    "%s: the body says otherwise than the URL", key);
		return NQ_EINVAL;
	}
	return json_object_set_new(o, key, json_string(value)) == 0 ? NQ_OK
	                                                            : NQ_ENOMEM;
}

static int query_cb(void *arg, const char *key, const char *value)
{
	fill *f = arg;
	char name[64];
	query_field(f->route, key, name, sizeof name);
	return fill_one(f, f->into, name, value);
}

/* The path's parameters go into each item of a batch. */
static int fill_path(fill *f, json_t *o, const params *p)
{
	json_t *items =
	    f->route->items ? json_object_get(o, f->route->items) : NULL;
	for (size_t i = 0; i < p->n; i++) {
		char key[64], name[64];
		snprintf(key, sizeof key, "%.*s", (int)p->nlen[i], p->name[i]);
		query_field(f->route, key, name, sizeof name);
		size_t k;
		json_t *item;
		int rv = NQ_OK;
		if (!items)
			rv = fill_one(f, o, name, p->value[i]);
		json_array_foreach(items, k, item)
		{
			if (rv == NQ_OK && json_is_object(item))
				rv = fill_one(f, item, name, p->value[i]);
		}
		if (rv != NQ_OK)
			return rv;
	}
	return NQ_OK;
}

/* The body as the request's JSON: one item wrapped as a batch of one. */
static json_t *body_json(const nqi_api_route *r, nqi_http_req *req,
    bool *single, char *err, size_t errlen)
{
	size_t len;
	const char *text = nqi_http_req_body(req, &len);
	json_error_t je;
	*single = false;
	if (!(r->flags & NQI_API_BODY)) {
		if (len)
			snprintf(err, errlen, "this route takes no body");
		return len ? NULL : json_object();
	}
	json_t *j = json_loadb(text, len, 0, &je);
	if (!j) {
		snprintf(err, errlen, "malformed JSON: line %d, column %d: %s",
		    je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "the body must be a JSON object");
		json_decref(j);
		return NULL;
	}
	if (!(r->flags & NQI_API_ITEMS) || json_object_get(j, r->items))
		return j;
	*single = true;
	return json_pack("{s:[o]}", r->items, j);
}

static const char *bearer(nqi_http_req *req, bool *bad)
{
	const char *h = nqi_http_req_header(req, "Authorization");
	*bad = false;
	if (!h)
		return "";
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		*bad = true;
		return "";
	}
	return h + 7;
}

int nqi_api_token_check(nqi_http_req *req, const nqi_auth *auth, unsigned roles)
{
	bool bad;
	const char *token = bearer(req, &bad);
	return bad ? NQ_EAUTH : nqi_auth_check(auth, token, roles);
}

bool nqi_api_authorized(nqi_http_req *req, const nqi_auth *auth, unsigned roles)
{
	bool bad;
	const char *token = bearer(req, &bad);
	int rv = nqi_api_token_check(req, auth, roles);
	if (rv == NQ_OK)
		return true;
	if (rv == NQ_EPERM)
		nqi_api_error(req, 403, "PERMISSION_DENIED",
		    "this route needs a token of another role");
	else
		nqi_api_error(req, 401, "UNAUTHENTICATED",
		    bad        ? "Authorization must be \"Bearer TOKEN\""
		    : token[0] ? "unknown token"
		               : "this service needs a token");
	return false;
}

#define ROUTES_PATH "/v1/routes"

static json_t *routes_json(const nqi_api *api)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < api->nroutes; i++)
		json_array_append_new(
		    a, json_pack("{s:s, s:s}", "method", api->routes[i].method,
		           "path", api->routes[i].path));
	if (a)
		json_array_append_new(a, json_pack("{s:s, s:s}", "method",
		                             "GET", "path", ROUTES_PATH));
	return a ? json_pack("{s:o}", "routes", a) : NULL;
}

/* The request body's JSON: the body, the path's parameters, the query;
 * NULL with f->err saying why. */
static json_t *request_fields(
    nqi_http_req *req, const params *p, bool *single, fill *f)
{
	json_t *body = body_json(f->route, req, single, f->err, sizeof f->err);
	f->into = body;
	if (body && fill_path(f, body, p) == NQ_OK)
		nqi_http_req_queries(req, query_cb, f);
	if (body && f->err[0]) {
		json_decref(body);
		body = NULL;
	}
	return body;
}

/* m packed into *out (malloc'd), *outlen bytes. */
static int pack_message(
    const ProtobufCMessage *m, uint8_t **out, size_t *outlen)
{
	*outlen = protobuf_c_message_get_packed_size(m);
	*out = malloc(*outlen ? *outlen : 1);
	if (!*out)
		return NQ_ENOMEM;
	protobuf_c_message_pack(m, *out);
	return NQ_OK;
}

/* The Request whole as JSON read into protobuf and packed into *out. */
static int pack_request(
    json_t *whole, char *err, size_t errlen, uint8_t **out, size_t *outlen)
{
	Nq__V1__Request *m =
	    (Nq__V1__Request *)nqi_jsonpb_new(&nq__v1__request__descriptor);
	if (!m)
		return NQ_ENOMEM;
	int rv = nqi_jsonpb_decode(&m->base, whole, err, errlen);
	if (rv == NQ_OK)
		rv = pack_message(&m->base, out, outlen);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	return rv;
}

/* A field's path starts at the member: it is told from the body's point
 * of view. */
static void refuse_fields(
    nqi_http_req *req, const nqi_api_route *r, int rv, const char *err)
{
	size_t ml = strlen(r->member);
	if (rv == NQ_ENOMEM) {
		nqi_api_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	if (strncmp(err, r->member, ml) == 0 && err[ml] == '.')
		err += ml + 1;
	nqi_api_error(req, 400, "INVALID_ARGUMENT", err);
}

/* ---- the body read directly ---- */

static int count_cb(void *arg, const char *key, const char *value)
{
	(void)key;
	(void)value;
	(*(size_t *)arg)++;
	return NQ_OK;
}

/* Sets m's string field name, which the body did not name. */
static int set_string(ProtobufCMessage *m, const char *name, const char *value)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(
	        m->descriptor, name);
	if (!f || f->type != PROTOBUF_C_TYPE_STRING ||
	    f->label == PROTOBUF_C_LABEL_REPEATED ||
	    (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		return NQ_EINVAL;
	char *v = strdup(value);
	if (!v)
		return NQ_ENOMEM;
	*(char **)((char *)m + f->offset) = v; /* was the shared "" */
	return NQ_OK;
}

/* The items of *slot (its field items), read from the text as a batch,
 * or as one item wrapped as a batch of one (*single): then *slot is a
 * new message. */
static int read_items(ProtobufCMessage **slot, const char *items,
    const char *text, size_t len, const char *watch, bool *single)
{
	const ProtobufCMessageDescriptor *d = (*slot)->descriptor;
	const ProtobufCFieldDescriptor *fi =
	    protobuf_c_message_descriptor_get_field_by_name(d, items);
	int rv = nqi_jsonpb_read(*slot, text, len, watch);
	size_t *n = (size_t *)((char *)*slot + fi->quantifier_offset);
	if (rv != NQ_EINVAL)
		return rv == NQ_OK && !*n ? NQ_EINVAL : rv; /* none: general */
	protobuf_c_message_free_unpacked(*slot, NULL);
	ProtobufCMessage *body = *slot = nqi_jsonpb_new(d);
	ProtobufCMessage *one = body ? nqi_jsonpb_new(fi->descriptor) : NULL;
	ProtobufCMessage ***arr =
	    body ? (ProtobufCMessage ***)((char *)body + fi->offset) : NULL;
	if (!one || !(*arr = malloc(sizeof **arr))) {
		free(one);
		return NQ_ENOMEM;
	}
	(*arr)[0] = one;
	*(size_t *)((char *)body + fi->quantifier_offset) = 1;
	*single = true;
	return nqi_jsonpb_read(one, text, len, watch);
}

/* The body of r into the Request's member *slot, its path parameter (at
 * most one) set where the general way sets it. */
static int read_member(const nqi_api_route *r, ProtobufCMessage **slot,
    nqi_http_req *req, const params *p, bool *single)
{
	size_t len;
	const char *text = nqi_http_req_body(req, &len);
	char key[64], name[64] = "";
	if (p->n) {
		snprintf(key, sizeof key, "%.*s", (int)p->nlen[0], p->name[0]);
		query_field(r, key, name, sizeof name);
	}
	const char *watch = name[0] ? name : NULL;
	int rv = (r->flags & NQI_API_ITEMS)
	             ? read_items(slot, r->items, text, len, watch, single)
	             : nqi_jsonpb_read(*slot, text, len, watch);
	if (rv != NQ_OK || !watch)
		return rv;
	ProtobufCMessage *body = *slot;
	if (!(r->flags & NQI_API_ITEMS))
		return set_string(body, name, p->value[0]);
	const ProtobufCFieldDescriptor *fi =
	    protobuf_c_message_descriptor_get_field_by_name(
	        body->descriptor, r->items);
	size_t n = *(size_t *)((char *)body + fi->quantifier_offset);
	ProtobufCMessage **arr =
	    *(ProtobufCMessage ***)((char *)body + fi->offset);
	for (size_t i = 0; rv == NQ_OK && i < n; i++)
		rv = set_string(arr[i], name, p->value[0]);
	return rv;
}

/*
 * The Request of a route with a body, read from the text without a
 * jansson tree (nqi_jsonpb_read): the common case, and most of the cost
 * of a batch. NQ_EINVAL: not taken (a query, more than one parameter, a
 * form the reader leaves to jansson, an error): the caller builds it the
 * general way, which answers what was wrong.
 */
static int read_request(nqi_http_req *req, const nqi_api_route *r,
    const params *p, const char *token, bool *single, uint8_t **out,
    size_t *outlen)
{
	size_t nq = 0;
	*single = false;
	nqi_http_req_queries(req, count_cb, &nq);
	if (!(r->flags & NQI_API_BODY) || nq || p->n > 1 ||
	    !nqi_utf8_valid(token, strlen(token)) ||
	    (p->n && !nqi_utf8_valid(p->value[0], strlen(p->value[0]))))
		return NQ_EINVAL;
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(
	        &nq__v1__request__descriptor, r->member);
	Nq__V1__Request *m =
	    (Nq__V1__Request *)nqi_jsonpb_new(&nq__v1__request__descriptor);
	ProtobufCMessage *body = m ? nqi_jsonpb_new(f->descriptor) : NULL;
	int rv = body ? NQ_OK : NQ_ENOMEM;
	ProtobufCMessage **slot =
	    m ? (ProtobufCMessage **)((char *)m + f->offset) : NULL;
	if (body) {
		*slot = body;
		m->body_case = (Nq__V1__Request__BodyCase)f->id;
		m->version = NQI_PROTOCOL_VERSION;
		rv = (m->token = strdup(token)) ? NQ_OK : NQ_ENOMEM;
	}
	if (rv == NQ_OK)
		rv = read_member(r, slot, req, p, single);
	if (rv == NQ_OK)
		rv = pack_message(&m->base, out, outlen);
	if (m)
		protobuf_c_message_free_unpacked(&m->base, NULL);
	return rv;
}

/* Builds and packs the Request of the route; answers 400/401 itself. */
static int build_request(nqi_http_req *req, const nqi_api_route *r,
    const params *p, bool *single, uint8_t **out, size_t *outlen)
{
	fill f = {.route = r};
	bool bad_auth;
	const char *token = bearer(req, &bad_auth);
	if (bad_auth) {
		nqi_api_error(req, 401, "UNAUTHENTICATED",
		    "Authorization must be \"Bearer TOKEN\"");
		return NQ_EAUTH;
	}
	int rv = read_request(req, r, p, token, single, out, outlen);
	if (rv == NQ_ENOMEM)
		refuse_fields(req, r, rv, "");
	if (rv != NQ_EINVAL)
		return rv;
	json_t *body = request_fields(req, p, single, &f);
	if (!body) {
		refuse_fields(req, r, NQ_EINVAL, f.err);
		return NQ_EINVAL;
	}
	json_t *whole = json_pack("{s:i, s:s, s:o}", "version",
	    NQI_PROTOCOL_VERSION, "token", token, r->member, body);
	rv = whole ? pack_request(whole, f.err, sizeof f.err, out, outlen)
	           : NQ_ENOMEM;
	json_decref(whole);
	if (rv != NQ_OK)
		refuse_fields(req, r, rv, f.err);
	return rv;
}

/* ---- the answer ---- */

/* The JSON of the reply's body member, or its field unwrap (a batch
 * route: only for one item). */
static json_t *reply_json(
    const Nq__V1__Reply *rep, const nqi_api_route *r, bool single)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(
	        &nq__v1__reply__descriptor, rep->body_case);
	if (!f)
		return json_object();
	const ProtobufCMessage *body =
	    *(ProtobufCMessage **)((char *)rep + f->offset);
	json_t *j = body ? nqi_jsonpb_encode(body) : json_object();
	if (!j || !r->unwrap || ((r->flags & NQI_API_ITEMS) && !single))
		return j;
	json_t *part = json_incref(json_object_get(j, r->unwrap));
	json_decref(j);
	return part ? part : json_object();
}

/* One item's answer: its own status decides. */
static void answer_single(nqi_http_req *req, json_t *results)
{
	json_t *one = json_array_get(results, 0);
	json_t *st = json_object_get(one, "status");
	const char *code = json_string_value(json_object_get(st, "code"));
	if (!one) {
		nqi_api_error(req, 500, "INTERNAL", "no result in the reply");
	} else if (code && strcmp(code, "OK") != 0) {
		const ProtobufCEnumValue *v =
		    protobuf_c_enum_descriptor_get_value_by_name(
		        &nq__v1__code__descriptor, code);
		nqi_api_error(req, nqi_api_http_status(v ? v->value : 9), code,
		    json_string_value(json_object_get(st, "message")));
	} else {
		nqi_api_json(req, 200, json_incref(one));
	}
	json_decref(results);
}

/* The reply's body member whole, written as text without a jansson tree
 * (a batch's results, a list of jobs: most of what an answer costs). */
static void answer_text(nqi_http_req *req, const Nq__V1__Reply *rep)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(
	        &nq__v1__reply__descriptor, rep->body_case);
	const ProtobufCMessage *body =
	    f ? *(ProtobufCMessage **)((char *)rep + f->offset) : NULL;
	char *text = body ? nqi_jsonpb_text(body) : strdup("{}");
	if (!text) {
		nqi_api_json(req, 500, NULL);
		return;
	}
	nqi_http_respond(req, 200, JSON_TYPE, text, strlen(text));
	free(text);
}

static void answer(nqi_http_req *req, nqi_api_call *call, bool single)
{
	Nq__V1__Reply *rep =
	    call->reply ? nq__v1__reply__unpack(NULL, call->len, call->reply)
	                : NULL;
	if (!rep) {
		nqi_api_error(req, 503, "UNAVAILABLE",
		    call->reply ? "malformed reply" : "no reply: retry later");
		return;
	}
	if (rep->status && rep->status->code != NQ__V1__CODE__OK)
		api_error_code(req, rep->status->code, rep->status->message);
	else if (single)
		answer_single(req, reply_json(rep, call->route, true));
	else if (call->route->unwrap && !(call->route->flags & NQI_API_ITEMS))
		nqi_api_json(req, 200, reply_json(rep, call->route, false));
	else
		answer_text(req, rep);
	nq__v1__reply__free_unpacked(rep, NULL);
}

/* ---- the calls ---- */

/* One row per route: method, path, Request member, the reply's field
 * answered alone, flags, the batch field, query aliases. */
const nqi_api_route nqi_api_dlq_routes[] = {
    {"GET", "/v1/dlq/jobs", "dlq_list", NULL, 0, NULL, "before=before_id",
        NULL},
    {"GET", "/v1/dlq/jobs/{id}", "dlq_show", "job", 0, NULL, NULL, NULL},
    {"POST", "/v1/dlq/jobs/{id}/replay", "dlq_replay", NULL, 0, NULL, "id=ids",
        NULL},
    {"DELETE", "/v1/dlq/jobs/{id}", "dlq_purge", NULL, 0, NULL, "id=ids", NULL},
    {"POST", "/v1/dlq/replay", "dlq_replay", NULL, NQI_API_BODY, NULL, NULL,
        NULL},
    {"POST", "/v1/dlq/purge", "dlq_purge", NULL, NQI_API_BODY, NULL, NULL,
        NULL},
    {"GET", "/v1/dlq/stats", "dlq_stats", NULL, 0, NULL, NULL, NULL},
};
const size_t nqi_api_dlq_nroutes =
    sizeof nqi_api_dlq_routes / sizeof *nqi_api_dlq_routes;

const nqi_api_route *nqi_api_call_route(const nqi_api_call *call)
{
	return call->route;
}

static void call_free(void *data)
{
	nqi_api_call *call = data;
	free(call->reply);
	free(call);
}

void nqi_api_done_msg(void *call, nng_msg *msg)
{
	nqi_api_done(
	    call, msg ? nng_msg_body(msg) : NULL, msg ? nng_msg_len(msg) : 0);
	nng_msg_free(msg);
}

void nqi_api_done(nqi_api_call *call, const void *reply, size_t len)
{
	nqi_http_req *req = call->req;
	if (reply && (call->reply = malloc(len ? len : 1))) {
		memcpy(call->reply, reply, len);
		call->len = len;
	}
	atomic_store(&call->done, true);
	nqi_http_wake(req);
	nqi_http_release(req);
}

/* The first run: the route's request goes to the daemon. */
static void start(nqi_http_req *req, const nqi_api *api)
{
	params p;
	bool single;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (strcmp(nqi_http_req_path(req), ROUTES_PATH) == 0 &&
	    strcmp(nqi_http_req_method(req), "GET") == 0) {
		nqi_api_json(req, 200, routes_json(api));
		return;
	}
	const nqi_api_route *r = route_find(api, req, &p);
	if (!r)
		return;
	if (r->serve) {
		r->serve(req, api->arg); /* answers now: runs once */
		return;
	}
	if (build_request(req, r, &p, &single, &buf, &len) != NQ_OK)
		return;
	nqi_api_call *call = calloc(1, sizeof *call);
	if (!call) {
		free(buf);
		nqi_api_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	call->req = req;
	call->route = r;
	atomic_init(&call->done, false);
	call->single = single;
	nqi_http_req_set_data(req, call, call_free);
	nqi_http_hold(req);
	api->submit(api->arg, buf, len, call);
	free(buf);
}

void nqi_api_serve(nqi_http_req *req, void *arg)
{
	const nqi_api *api = arg;
	nqi_api_call *call = nqi_http_req_data(req);
	if (!call) {
		start(req, api);
		return;
	}
	if (atomic_load(&call->done))
		answer(req, call, call->single);
}
