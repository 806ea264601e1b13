/*
 * The broker's JSON API on its HTTP listener (/v1/...): the route table
 * (common/src/http_api.c turns each route into the Request the api socket
 * takes, posted to the core as net.c posts one), and /v1/events, the job
 * events as Server-Sent Events.
 *
 * Events: the core copies each committed event into a ring of the last
 * BROKER_SSE_RING events (packed), under the ring's lock, and wakes the
 * streams. Each stream has its own cursor (the next seq it wants) and
 * reads the ring on an HTTP thread, so a slow client never holds the core
 * back: one that falls a whole ring behind skips what it missed (a
 * comment line says how many; nq_http_sse_skipped_total counts them).
 * `Last-Event-ID` (or ?last_event_id=) resumes after that seq. The ring
 * is filled while a stream is connected and for BROKER_SSE_LINGER_MS
 * after the last one left (so a client that reconnects misses nothing);
 * otherwise events cost nothing, as before.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "http_ui.h"
#include "nqi/http_api.h"
#include "nqi/json.h"
#include "nqi/jsonpb.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define BROKER_SSE_RING 4096
#define BROKER_SSE_LINGER_MS 300000
#define BROKER_SSE_PING_MS 15000
#define SSE_BATCH 64

/* ---- routes ---- */

/* One row per route: method, path, Request member, the reply's field
 * answered alone, flags, the batch field, query aliases. */
static void serve_events(nqi_http_req *req, void *arg);
static void serve_whoami(nqi_http_req *req, void *arg);

static const nqi_api_route routes[] = {
    {"POST", "/v1/queues/{queue}/jobs", "enqueue", "results",
        NQI_API_BODY | NQI_API_ITEMS, "jobs", NULL, NULL},
    {"GET", "/v1/jobs", "list", NULL, 0, NULL, "after=after_id", NULL},
    {"GET", "/v1/jobs/{id}", "get", "job", 0, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/wait", "wait", "job", 0, NULL, "timeout=timeout_ms",
        NULL},
    {"POST", "/v1/jobs/{id}/cancel", "cancel", "job", 0, NULL, NULL, NULL},
    {"GET", "/v1/queues", "stats", NULL, 0, NULL, NULL, NULL},
    {"GET", "/v1/queues/{queue}", "stats", NULL, 0, NULL, NULL, NULL},
    {"POST", "/v1/queues/{queue}/pause", "pause", NULL, 0, NULL, NULL, NULL},
    {"POST", "/v1/queues/{queue}/resume", "resume", NULL, 0, NULL, NULL, NULL},
    {"GET", "/v1/policies", "policy_get", NULL, 0, NULL, NULL, NULL},
    {"GET", "/v1/queues/{queue}/policy", "policy_get", NULL, 0, NULL, NULL,
        NULL},
    {"POST", "/v1/queues/{queue}/policy", "policy_set", NULL, NQI_API_BODY,
        NULL, NULL, NULL},
    {"DELETE", "/v1/queues/{queue}/policy", "policy_reset", NULL, 0, NULL, NULL,
        NULL},
    {"GET", "/v1/cron", "cron_list", NULL, 0, NULL, NULL, NULL},
    {"POST", "/v1/cron/{name}/trigger", "cron_trigger", NULL, 0, NULL, NULL,
        NULL},
    {"POST", "/v1/batches", "batch_create", "batch", NQI_API_BODY, NULL, NULL,
        NULL},
    {"GET", "/v1/batches", "batch_list", NULL, 0, NULL, "after=after_id", NULL},
    {"GET", "/v1/batches/{id}", "batch_get", "batch", 0, NULL, NULL, NULL},
    {"POST", "/v1/batches/{id}/seal", "batch_seal", "batch", 0, NULL, NULL,
        NULL},
    {"POST", "/v1/batches/{id}/cancel", "batch_cancel", NULL, 0, NULL, NULL,
        NULL},
    {"GET", "/v1/events", NULL, NULL, 0, NULL, NULL, serve_events},
    {"GET", "/v1/whoami", NULL, NULL, 0, NULL, NULL, serve_whoami},
};

/* nq-dlq's routes go to nq-dlq (dlq_api.c), the others to the core. */
static void submit(
    void *arg, const uint8_t *buf, size_t len, nqi_api_call *call)
{
	if (strncmp(nqi_api_call_route(call)->member, "dlq_", 4) == 0)
		broker_dlq_forward(arg, buf, len, call);
	else
		broker_request_in(arg, buf, len, nqi_api_done_msg, call);
}

/* The broker's routes and nq-dlq's, in one table (malloc'd). */
static nqi_api_route *all_routes(size_t *n)
{
	size_t own = sizeof routes / sizeof *routes;
	nqi_api_route *all = malloc((own + nqi_api_dlq_nroutes) * sizeof *all);
	if (!all)
		return NULL;
	memcpy(all, routes, sizeof routes);
	memcpy(
	    all + own, nqi_api_dlq_routes, nqi_api_dlq_nroutes * sizeof *all);
	*n = own + nqi_api_dlq_nroutes;
	return all;
}

/* ---- the event ring ---- */

typedef struct sse_slot {
	uint64_t seq; /* 0: empty */
	uint8_t *buf; /* the packed JobEvent */
	size_t len;
} sse_slot;

typedef struct sse_client {
	struct sse_client *next, *prev;
	struct broker_sse *hub;
	nqi_http_req *req;
	uint64_t next_seq;
	char queue[160];
	char kinds[256]; /* ",dead,succeeded," or "" for all */
	char *out;       /* formatted, not yet written */
	size_t out_len, out_off;
	uint64_t last_write_ms;
} sse_client;

struct broker_sse {
	pthread_mutex_t mu;
	sse_slot ring[BROKER_SSE_RING];
	uint64_t last_seq; /* of the newest event in the ring */
	sse_client *clients;
	atomic_bool *wanted; /* b->ev.sse_wanted */
	atomic_uint nclients;
	atomic_uint_fast64_t skipped, sent, linger_until_ms;
	pthread_t ticker;
	pthread_cond_t cv;
	bool stopping, ticking;
	nqi_api api;
};

static void wake_all(struct broker_sse *h)
{
	for (sse_client *c = h->clients; c; c = c->next)
		nqi_http_wake(c->req);
}

void broker_sse_publish(broker *b, Nq__V1__JobEvent **events, size_t n)
{
	/* net.sse is read only once the flag said a stream came, which
	 * was after it was set. */
	if (n == 0 || !atomic_load(&b->ev.sse_wanted))
		return;
	struct broker_sse *h = b->net.sse;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < n; i++) {
		sse_slot *s = &h->ring[events[i]->seq % BROKER_SSE_RING];
		size_t len =
		    protobuf_c_message_get_packed_size(&events[i]->base);
		uint8_t *buf = malloc(len ? len : 1);
		if (!buf)
			continue; /* a gap the client sees in seq */
		protobuf_c_message_pack(&events[i]->base, buf);
		free(s->buf);
		*s = (sse_slot){events[i]->seq, buf, len};
		h->last_seq = events[i]->seq;
	}
	wake_all(h);
	pthread_mutex_unlock(&h->mu);
}

/* ---- a stream ---- */

static bool kind_wanted(const sse_client *c, const char *kind)
{
	char k[64];
	if (!c->kinds[0])
		return true;
	snprintf(k, sizeof k, ",%s,", kind);
	return strstr(c->kinds, k) != NULL;
}

/* Appends one event as "id: SEQ\nevent: KIND\ndata: JSON\n\n". */
static void format_event(sse_client *c, const uint8_t *buf, size_t len,
    char **out, size_t *olen, size_t *ocap)
{
	Nq__V1__JobEvent *e = nq__v1__job_event__unpack(NULL, len, buf);
	if (!e)
		return;
	if ((!c->queue[0] || strcmp(c->queue, e->queue) == 0) &&
	    kind_wanted(c, e->kind)) {
		json_t *j = nqi_jsonpb_encode(&e->base);
		char *text = j ? nqi_json_dumps(j) : NULL;
		size_t need = text ? strlen(text) + strlen(e->kind) + 64 : 0;
		if (text && NQI_GROW(*out, *ocap, *olen + need, 4096) == 0)
			*olen += (size_t)snprintf(*out + *olen, need,
			    "id: %llu\nevent: %s\ndata: %s\n\n",
			    (unsigned long long)e->seq, e->kind, text);
		free(text);
		json_decref(j);
	}
	nq__v1__job_event__free_unpacked(e, NULL);
}

/* Copies the next events the client wants out of the ring (at most
 * SSE_BATCH) and formats them outside the lock. */
static void refill(sse_client *c)
{
	struct broker_sse *h = c->hub;
	sse_slot got[SSE_BATCH];
	size_t n = 0, olen = 0, ocap = 0;
	uint64_t skipped = 0;
	char *out = NULL;
	pthread_mutex_lock(&h->mu);
	uint64_t oldest = h->last_seq >= BROKER_SSE_RING
	                      ? h->last_seq - BROKER_SSE_RING + 1
	                      : 1;
	if (c->next_seq < oldest && c->next_seq <= h->last_seq) {
		skipped = oldest - c->next_seq;
		c->next_seq = oldest;
	}
	for (; n < SSE_BATCH && c->next_seq <= h->last_seq; c->next_seq++) {
		sse_slot *s = &h->ring[c->next_seq % BROKER_SSE_RING];
		if (s->seq != c->next_seq)
			continue;
		uint8_t *copy = malloc(s->len ? s->len : 1);
		if (!copy)
			break;
		memcpy(copy, s->buf, s->len);
		got[n++] = (sse_slot){s->seq, copy, s->len};
	}
	pthread_mutex_unlock(&h->mu);
	if (skipped) {
		atomic_fetch_add(&h->skipped, skipped);
		if (NQI_GROW(out, ocap, 64, 64) == 0)
			olen = (size_t)snprintf(out, 64,
			    ": skipped %llu events\n\n",
			    (unsigned long long)skipped);
	}
	for (size_t i = 0; i < n; i++) {
		format_event(c, got[i].buf, got[i].len, &out, &olen, &ocap);
		free(got[i].buf);
	}
	atomic_fetch_add(&h->sent, n);
	free(c->out);
	c->out = out;
	c->out_len = olen;
	c->out_off = 0;
}

static long sse_pull(void *data, char *buf, size_t max)
{
	sse_client *c = data;
	if (c->out_off == c->out_len)
		refill(c);
	uint64_t now = nqi_mono_ms();
	if (c->out_off == c->out_len &&
	    now - c->last_write_ms >= BROKER_SSE_PING_MS) {
		c->last_write_ms = now;
		return snprintf(buf, max, ": ping\n\n");
	}
	size_t n = c->out_len - c->out_off;
	if (n > max)
		n = max;
	if (n == 0)
		return 0;
	memcpy(buf, c->out + c->out_off, n);
	c->out_off += n;
	c->last_write_ms = now;
	return (long)n;
}

static void client_free(void *data)
{
	sse_client *c = data;
	struct broker_sse *h = c->hub;
	pthread_mutex_lock(&h->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->mu);
	if (atomic_fetch_sub(&h->nclients, 1) == 1)
		atomic_store(
		    &h->linger_until_ms, nqi_mono_ms() + BROKER_SSE_LINGER_MS);
	free(c->out);
	free(c);
}

/* ?queue=, ?kind= (or ?state=, a list: dead,succeeded), Last-Event-ID. */
static const char *client_filters(sse_client *c, nqi_http_req *req)
{
	const char *q = nqi_http_req_query(req, "queue");
	const char *k = nqi_http_req_query(req, "kind");
	const char *last = nqi_http_req_header(req, "Last-Event-ID");
	uint64_t after;
	if (!k)
		k = nqi_http_req_query(req, "state");
	if (!last)
		last = nqi_http_req_query(req, "last_event_id");
	if ((q && strlen(q) >= sizeof c->queue) ||
	    (k && strlen(k) + 3 >= sizeof c->kinds))
		return "queue or kind is too long";
	if (last && nqi_parse_u64(last, &after) != NQ_OK)
		return "Last-Event-ID must be a sequence number";
	snprintf(c->queue, sizeof c->queue, "%s", q ? q : "");
	if (k && *k)
		snprintf(c->kinds, sizeof c->kinds, ",%s,", k);
	pthread_mutex_lock(&c->hub->mu);
	c->next_seq = last ? after + 1 : c->hub->last_seq + 1;
	pthread_mutex_unlock(&c->hub->mu);
	return NULL;
}

static void serve_events(nqi_http_req *req, void *arg)
{
	broker *b = arg;
	struct broker_sse *h = b->net.sse;
	sse_client *c = calloc(1, sizeof *c);
	const char *bad;
	if (!c) {
		nqi_api_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	c->hub = h;
	c->req = req;
	/* Events tell what jobs do: a producer's, as get and wait. */
	if (!nqi_api_authorized(req, b->auth, NQI_ROLE_PRODUCER)) {
		free(c);
		return;
	}
	if ((bad = client_filters(c, req))) {
		free(c);
		nqi_api_error(req, 400, "INVALID_ARGUMENT", bad);
		return;
	}
	c->last_write_ms = nqi_mono_ms();
	atomic_fetch_add(&h->nclients, 1);
	atomic_store(h->wanted, true);
	pthread_mutex_lock(&h->mu);
	c->next = h->clients;
	if (h->clients)
		h->clients->prev = c;
	h->clients = c;
	pthread_mutex_unlock(&h->mu);
	nqi_http_req_set_data(req, c, client_free);
	nqi_http_req_add_header(req, "X-Accel-Buffering", "no");
	if (nqi_http_stream(req, "text/event-stream", sse_pull) != NQ_OK)
		nqi_api_error(req, 500, "INTERNAL", "out of memory");
}

/* ---- whoami ---- */

/* {"roles": [...]}: what the token may do, so that the dashboard shows
 * only what would work. Admin may do everything. */
static void serve_whoami(nqi_http_req *req, void *arg)
{
	static const struct {
		unsigned role;
		const char *name;
	} roles[] = {{NQI_ROLE_PRODUCER, "producer"},
	    {NQI_ROLE_WORKER, "worker"}, {NQI_ROLE_ADMIN, "admin"}};
	broker *b = arg;
	if (!nqi_api_authorized(req, b->auth,
	        NQI_ROLE_PRODUCER | NQI_ROLE_WORKER | NQI_ROLE_ADMIN))
		return;
	json_t *a = json_array();
	for (size_t i = 0; a && i < sizeof roles / sizeof *roles; i++)
		if (nqi_api_token_check(req, b->auth, roles[i].role) == NQ_OK)
			json_array_append_new(a, json_string(roles[i].name));
	nqi_api_json(req, 200, a ? json_pack("{s:o}", "roles", a) : NULL);
}

/* ---- start and stop ---- */

/* Once a second: whether the ring is filled; every BROKER_SSE_PING_MS a
 * wake of every stream, so that an idle one writes a comment and a
 * client that is gone is noticed. */
static void *ticker(void *arg)
{
	struct broker_sse *h = arg;
	uint64_t last_ping = nqi_mono_ms();
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		uint64_t now = nqi_mono_ms();
		atomic_store(
		    h->wanted, atomic_load(&h->nclients) > 0 ||
		                   now < atomic_load(&h->linger_until_ms));
		if (now - last_ping >= BROKER_SSE_PING_MS) {
			last_ping = now;
			wake_all(h);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Bodies up to four payloads' worth of JSON (base64 and escapes make a
 * payload's text longer than its bytes), and 1 MiB for the rest of a
 * batch. */
static size_t body_max(const broker_config *c)
{
	return (size_t)c->max_payload * 4 + (1u << 20);
}

/* The HTTP listener's own paths: /ui (the dashboard) and /v1/. */
static void serve(nqi_http_req *req, void *api)
{
	if (strncmp(nqi_http_req_path(req), "/ui", 3) == 0)
		broker_ui_serve(req);
	else
		nqi_api_serve(req, api);
}

int broker_api_start(broker *b, nqi_http_opts *o)
{
	struct broker_sse *h = calloc(1, sizeof *h);
	if (!h)
		return NQ_ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->wanted = &b->ev.sse_wanted;
	atomic_init(&h->nclients, 0);
	atomic_init(&h->skipped, 0);
	atomic_init(&h->sent, 0);
	atomic_init(&h->linger_until_ms, 0);
	size_t n = 0;
	nqi_api_route *all = all_routes(&n);
	h->api = (nqi_api){all, n, submit, b};
	if (!all || pthread_create(&h->ticker, NULL, ticker, h) != 0) {
		free(all);
		free(h);
		return NQ_ENOMEM;
	}
	h->ticking = true;
	b->net.sse = h;
	o->api_prefix = "/v1/";
	o->ui_prefix = "/ui";
	o->api_cb = serve;
	o->api_arg = &h->api;
	o->api_body_max = body_max(&b->cfg);
	return NQ_OK;
}

void broker_api_stop(broker *b)
{
	struct broker_sse *h = b->net.sse;
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->ticking)
		pthread_join(h->ticker, NULL);
	atomic_store(&b->ev.sse_wanted, false);
	for (size_t i = 0; i < BROKER_SSE_RING; i++)
		free(h->ring[i].buf);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free((void *)h->api.routes);
	free(h);
	b->net.sse = NULL;
}

int broker_sse_metrics(broker *b, nqi_prom *p)
{
	struct broker_sse *h = b->net.sse;
	if (!h)
		return NQ_OK;
	const struct {
		const char *name, *help;
		nqi_prom_type type;
		double v;
	} rows[] = {
	    {"nq_http_sse_clients", "Streams of /v1/events open now.",
	        NQI_PROM_GAUGE, atomic_load(&h->nclients)},
	    {"nq_http_sse_events_total",
	        "Events read out of the ring by /v1/events streams.",
	        NQI_PROM_COUNTER, (double)atomic_load(&h->sent)},
	    {"nq_http_sse_skipped_total",
	        "Events /v1/events streams skipped: they fell more than "
	        "the ring (4096 events) behind.",
	        NQI_PROM_COUNTER, (double)atomic_load(&h->skipped)},
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		int rv = nqi_prom_family(
		    p, rows[i].name, rows[i].type, rows[i].help);
		if (rv == NQ_OK)
			rv = nqi_prom_sample(p, rows[i].name, NULL, rows[i].v);
		if (rv != NQ_OK)
			return rv;
	}
	return NQ_OK;
}
