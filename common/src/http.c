/*
 * The HTTP endpoints on libmicrohttpd (see http.h): one listening socket
 * bound here, NQI_HTTP_THREADS epoll threads of MHD serving it, a
 * connection cap enforced at accept, an inactivity timeout, and a bounded
 * memory pool per connection.
 */
#include "nqi/http.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nq/nq.h"
#include "nqi/daemon.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CONTENT_TYPE "text/plain; charset=utf-8"
/* GET requests carry no body; a bigger one is refused with 400. */
#define BODY_MAX 1024
#define HOST_MAX 254
#define LISTEN_BACKLOG 511

struct nqi_http {
	struct MHD_Daemon *mhd;
	nqi_http_metrics_cb metrics_cb;
	nqi_http_ready_cb ready_cb;
	void *arg;
	uint16_t port;
	unsigned max_conns;
	bool verify_clients; /* a CA is set: client certificates required */
	atomic_uint conns;   /* open now */
	atomic_uint_fast64_t refused;
	atomic_uint answering; /* api requests begun, not done; streams not */
	char *cert, *key, *ca; /* PEM text, kept while MHD runs */
	const char *api_prefix, *ui_prefix;
	nqi_http_api_cb api_cb;
	void *api_arg;
	size_t api_body_max;
};

typedef enum MHD_Result mhd_result;

/* ---- requests ---- */

/* Queues a response holding a copy of body. */
static mhd_result reply(struct MHD_Connection *c, unsigned status,
    const char *type, const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO; /* out of memory: closing is all there is */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	mhd_result rv = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rv;
}

static mhd_result reply_text(
    struct MHD_Connection *c, unsigned status, const char *text)
{
	return reply(c, status, TEXT_CONTENT_TYPE, text, strlen(text));
}

static int prom_value(nqi_prom *p, const char *name, nqi_prom_type type,
    const char *help, double v)
{
	int rv = nqi_prom_family(p, name, type, help);
	return rv ? rv : nqi_prom_sample(p, name, NULL, v);
}

/* What the server itself tells, after the service's own metrics. */
static int prom_http(nqi_prom *p, nqi_http *h)
{
	int rv = prom_value(p, "nq_http_connections", NQI_PROM_GAUGE,
	    "HTTP connections open now.", atomic_load(&h->conns));
	if (rv == NQ_OK)
		rv = prom_value(p, "nq_http_connections_max", NQI_PROM_GAUGE,
		    "HTTP connections allowed at once "
		    "(--http-max-connections, or less to fit the descriptor "
		    "limit).",
		    h->max_conns);
	if (rv == NQ_OK)
		rv = prom_value(p, "nq_http_refused_total", NQI_PROM_COUNTER,
		    "HTTP connections closed as soon as accepted, because "
		    "nq_http_connections_max were open.",
		    (double)atomic_load(&h->refused));
	return rv;
}

static mhd_result serve_metrics(nqi_http *h, struct MHD_Connection *c)
{
	nqi_prom *p = NULL;
	char msg[400];
	mhd_result out;
	int rv = nqi_prom_alloc(&p);
	if (rv == NQ_OK && h->metrics_cb)
		rv = h->metrics_cb(p, h->arg);
	if (rv == NQ_OK)
		rv = prom_http(p, h);
	if (rv == NQ_OK) {
		size_t len;
		const char *text = nqi_prom_text(p, &len);
		out = reply(c, MHD_HTTP_OK, PROM_CONTENT_TYPE, text, len);
	} else {
		const char *why = p ? nqi_prom_error(p) : "";
		snprintf(msg, sizeof msg, "metrics unavailable: %s%s%s",
		    nq_strerror(rv), *why ? ": " : "", why);
		out = reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
	}
	nqi_prom_free(p);
	return out;
}

static mhd_result serve_readyz(nqi_http *h, struct MHD_Connection *c)
{
	char why[256] = "";
	bool ready = !h->ready_cb || h->ready_cb(h->arg, why, sizeof why);
	why[sizeof why - 1] = '\0';
	if (ready)
		return reply_text(c, MHD_HTTP_OK, "ready");
	return reply_text(
	    c, MHD_HTTP_SERVICE_UNAVAILABLE, *why ? why : "not ready");
}

static mhd_result serve_healthz(nqi_http *h, struct MHD_Connection *c)
{
	(void)h;
	return reply_text(c, MHD_HTTP_OK, "ok");
}

static const struct route {
	const char *path;
	mhd_result (*serve)(nqi_http *h, struct MHD_Connection *c);
} routes[] = {
    {"/metrics", serve_metrics},
    {"/healthz", serve_healthz},
    {"/readyz", serve_readyz},
};

static const struct route *route_for(const char *url)
{
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (strcmp(url, routes[i].path) == 0)
			return &routes[i];
	return NULL;
}

/* The answers that need no body read: a wrong path or method, or a body
 * announced too big. Given on the first call, before the body, so MHD
 * skips the body and closes the connection after the answer. False when
 * the request is fine. */
static bool refuse_early(struct MHD_Connection *c, const char *method,
    const struct route *r, mhd_result *rv)
{
	const char *cl = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!r)
		*rv = reply_text(c, MHD_HTTP_NOT_FOUND, "not found");
	else if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	         strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		*rv = reply_text(
		    c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
	else if (cl && strtoull(cl, NULL, 10) > BODY_MAX)
		*rv = reply_text(
		    c, MHD_HTTP_BAD_REQUEST, "request body too large");
	else
		return false;
	return true;
}

/* ---- a service's own routes ---- */

/*
 * One request under api_prefix. refs: the connection's and one per
 * nqi_http_hold(); the last to let go frees it. mu orders a suspend
 * before the resume that ends it, across threads.
 */
struct nqi_http_req {
	nqi_http *h;
	struct MHD_Connection *c;
	const char *method, *url; /* MHD's, for the request's life */
	pthread_mutex_t mu;
	int refs;
	bool answered;  /* resp is set (or the stream started) */
	bool suspended; /* waits for a wake */
	bool woken;     /* a wake came while it was not waiting */
	bool closed;    /* the connection is gone: no resume */
	bool counted;   /* in h->answering */
	char *body;
	size_t len, cap;
	struct MHD_Response *resp;
	unsigned status;
	char *hdr[NQI_HTTP_REQ_HEADERS][2];
	size_t nhdr;
	nqi_http_pull_fn pull;
	void *data;
	void (*data_free)(void *data);
};

/* The request pointer is kept tagged (odd) in MHD's per-request slot,
 * where the built-in routes keep an even count. */
#define API_TAG ((uintptr_t)1)
#define API_PREALLOC_MAX (64u << 10)
/* Longest a stop waits for answers still being sent. */
#define STOP_FLUSH_MS 1000

static nqi_http_req *api_req_of(void *req_cls)
{
	uintptr_t v = (uintptr_t)req_cls;
	return v & API_TAG ? (nqi_http_req *)(v & ~API_TAG) : NULL;
}

static bool api_path(const nqi_http *h, const char *url)
{
	return (h->api_prefix &&
	           strncmp(url, h->api_prefix, strlen(h->api_prefix)) == 0) ||
	       (h->ui_prefix &&
	           strncmp(url, h->ui_prefix, strlen(h->ui_prefix)) == 0);
}

void nqi_http_hold(nqi_http_req *r)
{
	pthread_mutex_lock(&r->mu);
	r->refs++;
	pthread_mutex_unlock(&r->mu);
}

void nqi_http_release(nqi_http_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool last = --r->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	if (r->data_free)
		r->data_free(r->data);
	if (r->resp)
		MHD_destroy_response(r->resp);
	for (size_t i = 0; i < r->nhdr; i++) {
		free(r->hdr[i][0]);
		free(r->hdr[i][1]);
	}
	pthread_mutex_destroy(&r->mu);
	free(r->body);
	free(r);
}

const char *nqi_http_req_method(const nqi_http_req *req)
{
	return req->method;
}

const char *nqi_http_req_path(const nqi_http_req *req)
{
	return req->url;
}

const char *nqi_http_req_query(const nqi_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->c, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result query_one(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	void **fa = cls;
	nqi_http_query_fn fn = (nqi_http_query_fn)(uintptr_t)fa[0];
	(void)kind;
	return fn(fa[1], key, value ? value : "") == 0 ? MHD_YES : MHD_NO;
}

void nqi_http_req_queries(
    const nqi_http_req *req, nqi_http_query_fn fn, void *arg)
{
	void *fa[2] = {(void *)(uintptr_t)fn, arg};
	MHD_get_connection_values(req->c, MHD_GET_ARGUMENT_KIND, query_one, fa);
}

const char *nqi_http_req_header(const nqi_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->c, MHD_HEADER_KIND, name);
}

const char *nqi_http_req_body(const nqi_http_req *req, size_t *len)
{
	*len = req->len;
	return req->body ? req->body : "";
}

void nqi_http_req_set_data(
    nqi_http_req *req, void *data, void (*data_free)(void *data))
{
	req->data = data;
	req->data_free = data_free;
}

void *nqi_http_req_data(const nqi_http_req *req)
{
	return req->data;
}

void nqi_http_req_add_header(
    nqi_http_req *req, const char *name, const char *value)
{
	if (req->nhdr == NQI_HTTP_REQ_HEADERS)
		return;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return;
	}
	req->hdr[req->nhdr][0] = n;
	req->hdr[req->nhdr++][1] = v;
}

/* The headers every answer of the API carries, and the added ones. */
/* no-store unless the service said how to cache (the dashboard). */
static void api_headers(nqi_http_req *r, const char *type)
{
	bool cache = false;
	MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	for (size_t i = 0; i < r->nhdr; i++) {
		MHD_add_response_header(r->resp, r->hdr[i][0], r->hdr[i][1]);
		cache |= strcasecmp(r->hdr[i][0], "Cache-Control") == 0;
	}
	if (!cache)
		MHD_add_response_header(
		    r->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

void nqi_http_respond(nqi_http_req *r, unsigned status,
    const char *content_type, const char *body, size_t len)
{
	if (r->answered)
		return;
	r->resp = MHD_create_response_from_buffer(
	    len, (void *)body, MHD_RESPMEM_MUST_COPY);
	r->status = status;
	if (r->resp)
		api_headers(r, content_type);
	r->answered = true;
}

/* Runs on the request's MHD thread only (its stream start or its end). */
static void uncount(nqi_http_req *r)
{
	if (r->counted)
		atomic_fetch_sub(&r->h->answering, 1);
	r->counted = false;
}

/* Suspends the connection unless a wake came first (then false: go on).
 * Called with nothing locked. */
static bool api_suspend(nqi_http_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool woken = r->woken;
	r->woken = false;
	if (!woken) {
		r->suspended = true;
		MHD_suspend_connection(r->c);
	}
	pthread_mutex_unlock(&r->mu);
	return !woken;
}

/* MHD's content reader of a stream: what pull gives; when it has
 * nothing, the connection is suspended until nqi_http_wake(). */
static ssize_t api_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	nqi_http_req *r = cls;
	(void)pos;
	for (;;) {
		long n = r->pull(r->data, buf, max);
		if (n != 0)
			return n > 0 ? (ssize_t)n
			             : MHD_CONTENT_READER_END_OF_STREAM;
		if (api_suspend(r))
			return 0;
	}
}

int nqi_http_stream(
    nqi_http_req *r, const char *content_type, nqi_http_pull_fn pull)
{
	r->pull = pull;
	r->resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, 4096, api_read, r, NULL);
	if (!r->resp)
		return NQ_ENOMEM;
	r->status = MHD_HTTP_OK;
	api_headers(r, content_type);
	r->answered = true;
	uncount(r); /* a stream ends when its client goes */
	return NQ_OK;
}

void nqi_http_wake(nqi_http_req *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->suspended && !r->closed) {
		r->suspended = false;
		MHD_resume_connection(r->c);
	} else {
		r->woken = true;
	}
	pthread_mutex_unlock(&r->mu);
}

static mhd_result api_error(struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg)
{
	char body[256];
	int n = snprintf(body, sizeof body,
	    "{\"code\":\"%s\",\"message\":\"%s\"}", code, msg);
	return reply(c, status, "application/json", body, (size_t)n);
}

/* The first call: the request's state, or an answer at once to a body
 * announced too big. */
static mhd_result api_begin(nqi_http *h, struct MHD_Connection *c,
    const char *url, const char *method, void **req_cls)
{
	const char *cl = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > h->api_body_max)
		return api_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
		    "RESOURCE_EXHAUSTED", "request body too large");
	nqi_http_req *r = calloc(1, sizeof *r);
	if (!r || pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		return MHD_NO;
	}
	/* The announced body in one piece, not grown as it comes, up to
	 * what any crowd of connections may hold before sending a byte. */
	size_t want = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
	if (want > API_PREALLOC_MAX)
		want = API_PREALLOC_MAX;
	if (want && !(r->body = malloc(want + 1))) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return MHD_NO;
	}
	r->cap = want ? want + 1 : 0;
	r->h = h;
	r->c = c;
	r->url = url;
	r->method = method;
	r->refs = 1;
	r->counted = true;
	atomic_fetch_add(&h->answering, 1);
	*req_cls = (void *)((uintptr_t)r | API_TAG);
	return MHD_YES;
}

static mhd_result api_upload(nqi_http_req *r, const char *data, size_t n)
{
	if (r->len + n > r->h->api_body_max)
		return MHD_NO; /* no length announced: closing is the answer */
	if (NQI_GROW(r->body, r->cap, r->len + n + 1, 4096) != 0)
		return MHD_NO;
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return MHD_YES;
}

/* The body is in: api_cb runs, and again after each wake, until it has
 * answered; in between the connection waits, suspended. */
static mhd_result api_serve(nqi_http_req *r)
{
	while (!r->answered) {
		r->h->api_cb(r, r->h->api_arg);
		if (!r->answered && api_suspend(r))
			return MHD_YES;
	}
	if (!r->resp)
		return MHD_NO; /* out of memory: closing is all there is */
	return MHD_queue_response(r->c, r->status, r->resp);
}

static mhd_result api_access(nqi_http *h, struct MHD_Connection *c,
    const char *url, const char *method, const char *upload,
    size_t *upload_size, void **req_cls)
{
	nqi_http_req *r = api_req_of(*req_cls);
	if (!r)
		return api_begin(h, c, url, method, req_cls);
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		return api_upload(r, upload, n);
	}
	return api_serve(r);
}

/* The connection is done with the request: it lets go of it. */
static void completed_cb(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	nqi_http_req *r = api_req_of(*req_cls);
	(void)cls;
	(void)c;
	(void)toe;
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->closed = true;
	pthread_mutex_unlock(&r->mu);
	uncount(r);
	*req_cls = NULL;
	nqi_http_release(r);
}

/*
 * MHD's access handler: called once the headers are in (*req_cls still
 * NULL), then with each piece of the body, then once more with none. The
 * request's state is the count of body bytes seen plus one, kept in the
 * pointer itself, so that a request allocates nothing here.
 */
static mhd_result access_cb(void *cls, struct MHD_Connection *c,
    const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_size, void **req_cls)
{
	nqi_http *h = cls;
	uintptr_t seen = (uintptr_t)*req_cls >> 1;
	mhd_result rv = MHD_YES;
	(void)version;
	if (api_path(h, url))
		return api_access(
		    h, c, url, method, upload, upload_size, req_cls);
	const struct route *r = route_for(url);
	if (seen == 0) {
		*req_cls = (void *)((uintptr_t)1 << 1);
		refuse_early(c, method, r, &rv);
		return rv;
	}
	if (*upload_size) {
		seen += *upload_size;
		*upload_size = 0;
		*req_cls = (void *)(seen << 1);
		return MHD_YES;
	}
	/* A body that announced no length, and was too big: it was read
	 * and dropped, since MHD takes no answer in the middle of one. */
	if (!r || seen - 1 > BODY_MAX)
		return reply_text(
		    c, MHD_HTTP_BAD_REQUEST, "request body too large");
	return r->serve(h, c);
}

/* ---- connections ---- */

/* Called by MHD right after accept: past the cap, the connection is
 * closed before it costs more than the accept. The count goes up only
 * once MHD has set the connection up (conn_cb), so each of the other
 * NQI_HTTP_THREADS - 1 threads may let one more in meanwhile; counting
 * here instead would keep a slot forever for a connection MHD then fails
 * to set up, which it never reports. */
static mhd_result accept_cb(
    void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	nqi_http *h = cls;
	(void)addr;
	(void)addrlen;
	if (atomic_load(&h->conns) < h->max_conns)
		return MHD_YES;
	atomic_fetch_add(&h->refused, 1);
	return MHD_NO;
}

/* Counts connections; with a CA, also makes the TLS handshake require a
 * client certificate the CA signed (MHD itself only asks for one). */
static void conn_cb(void *cls, struct MHD_Connection *c, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	nqi_http *h = cls;
	(void)socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		atomic_fetch_sub(&h->conns, 1);
		return;
	}
	atomic_fetch_add(&h->conns, 1);
	const union MHD_ConnectionInfo *info =
	    h->verify_clients
	        ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION)
	        : NULL;
	if (info && info->tls_session) {
		gnutls_session_t s = info->tls_session;
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(s, NULL, 0);
	}
}

/* MHD's own messages (a failed accept, a broken handshake) are about one
 * client at a time: debug lines, so that a hostile crowd cannot flood the
 * log. */
static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	(void)cls;
	if (!nqi_log_enabled(NQI_LOG_DEBUG))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	nqi_debug("NQ-HTTP-SERVER", NQI_S("says", msg));
}

/* ---- addresses ---- */

static bool host_char(char c, bool bracketed)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F') || c == '.')
		return true;
	if (bracketed)
		return c == ':';
	return (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '-';
}

/* Length of the host at the start of s ("[::1]" keeps its brackets), or 0
 * when there is none or it holds a character no host name has. */
static size_t host_len(const char *s)
{
	bool bracketed = *s == '[';
	size_t n = bracketed ? 1 : 0;
	while (s[n] && host_char(s[n], bracketed))
		n++;
	if (bracketed)
		return s[n] == ']' && n > 1 ? n + 1 : 0;
	return n;
}

/* Reads ":PORT" and an optional trailing "/". */
static bool parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;
	size_t n = 1;
	if (s[0] != ':')
		return false;
	for (; s[n] >= '0' && s[n] <= '9' && n <= 6; n++)
		v = v * 10 + (unsigned)(s[n] - '0');
	if (n == 1 || n > 6 || v > 65535)
		return false;
	if (s[n] == '/')
		n++;
	if (s[n])
		return false;
	*port = v;
	return true;
}

/* Strips an http:// or https:// scheme and checks it against tls. */
static int split_scheme(
    const char *addr, bool tls, const char **rest, char *err, size_t errlen)
{
	const char *sep = strstr(addr, "://");
	*rest = addr;
	if (!sep)
		return NQ_OK;
	size_t n = (size_t)(sep - addr);
	bool https = n == 5 && strncmp(addr, "https", 5) == 0;
	if (!https && !(n == 4 && strncmp(addr, "http", 4) == 0)) {
		snprintf(err, errlen,
		    "HTTP address \"%s\": the scheme must "
		    "be http:// or https://",
		    addr);
		return NQ_EINVAL;
	}
	if (https != tls) {
		snprintf(err, errlen, "HTTP address \"%s\" is %s but %s", addr,
		    https ? "https://" : "http://",
		    https ? "no TLS certificate is configured"
		          : "a TLS certificate is configured");
		return NQ_EINVAL;
	}
	*rest = sep + 3;
	return NQ_OK;
}

/* Splits what the operator wrote into the host (the brackets of an IPv6
 * address dropped) and the port. */
static int parse_addr(const char *addr, bool tls, char host[HOST_MAX],
    unsigned *port, char *err, size_t errlen)
{
	const char *hp;
	if (!addr || !*addr) {
		snprintf(err, errlen,
		    "HTTP address is missing (want "
		    "host:port, e.g. 127.0.0.1:7480)");
		return NQ_EINVAL;
	}
	int rv = split_scheme(addr, tls, &hp, err, errlen);
	if (rv != NQ_OK)
		return rv;
	size_t n = host_len(hp);
	if (n == 0 || n >= HOST_MAX || !parse_port(hp + n, port)) {
		snprintf(err, errlen,
		    "HTTP address \"%s\" is not host:port "
		    "with a port from 0 to 65535 (e.g. 127.0.0.1:7480)",
		    addr);
		return NQ_EINVAL;
	}
	bool bracketed = hp[0] == '[';
	snprintf(host, HOST_MAX, "%.*s", (int)(bracketed ? n - 2 : n),
	    hp + bracketed);
	return NQ_OK;
}

/* ---- server ---- */

/* The error a failed bind or listen maps to: a port taken (or not ours
 * to take) is unavailable; an address that is not this host's is wrong. */
static int listen_error(int e)
{
	if (e == ENOMEM || e == ENOBUFS)
		return NQ_ENOMEM;
	return e == EADDRNOTAVAIL || e == EAFNOSUPPORT ? NQ_EINVAL
	                                               : NQ_EUNAVAIL;
}

/* The address of a name to bind: its first IPv4 one when it has one
 * ("localhost" is 127.0.0.1 wherever it also is ::1), else its first. */
static const struct addrinfo *bind_addr(const struct addrinfo *ai)
{
	for (const struct addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET)
			return a;
	return ai;
}

/* Binds and listens on host:port (see bind_addr); writes the socket
 * (non-blocking, close-on-exec) into *fd. */
static int listen_on(const char *addr, const char *host, unsigned port, int *fd,
    char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char svc[8];
	int one = 1, rv = NQ_OK;
	snprintf(svc, sizeof svc, "%u", port);
	int g = getaddrinfo(host, svc, &hints, &ai);
	if (g != 0) {
		snprintf(err, errlen, "cannot use HTTP address %s: %s", addr,
		    gai_strerror(g));
		return g == EAI_MEMORY ? NQ_ENOMEM : NQ_EINVAL;
	}
	const struct addrinfo *a = bind_addr(ai);
	*fd =
	    socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (*fd < 0 ||
	    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(*fd, a->ai_addr, a->ai_addrlen) != 0 ||
	    listen(*fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on HTTP address %s: %s",
		    addr, strerror(e));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		rv = listen_error(e);
	}
	freeaddrinfo(ai);
	return rv;
}

static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Reads the PEM files of o: the key from the certificate's file when no
 * key file is named (one file holding both). */
static int read_tls(nqi_http *h, const char *addr, const nqi_tls_opts *o,
    char *err, size_t errlen)
{
	bool own_key = o->key && *o->key;
	const char *bad = NULL;
	if (!o->cert || !*o->cert) {
		snprintf(err, errlen, "https on %s needs --tls-cert", addr);
		return NQ_EINVAL;
	}
	if (!(h->cert = nqi_tls_read_pem(o->cert)))
		bad = o->cert;
	else if (!(h->key =
	                 own_key ? nqi_tls_read_pem(o->key) : strdup(h->cert)))
		bad = o->key;
	else if (o->ca && *o->ca && !(h->ca = nqi_tls_read_pem(o->ca)))
		bad = o->ca;
	if (bad) {
		snprintf(err, errlen, "https on %s: cannot read %s", addr, bad);
		return NQ_EINVAL;
	}
	h->verify_clients = h->ca != NULL;
	return NQ_OK;
}

/* The limits and hooks every server gets; the TLS files when it has them.
 * MHD's own cap is set above ours on each thread, so that accept_cb sees
 * (and counts) every connection past ours. */
static size_t mhd_options(
    nqi_http *h, int fd, unsigned timeout_s, struct MHD_OptionItem o[14])
{
	size_t n = 0;
	unsigned per_thread = h->max_conns + 1;
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_THREAD_POOL_SIZE, NQI_HTTP_THREADS, NULL};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
	    (intptr_t)per_thread * NQI_HTTP_THREADS, NULL};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, NQI_HTTP_CONN_MEMORY, NULL};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)conn_cb, h};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log_cb, NULL};
	o[n++] = (struct MHD_OptionItem){
	    MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, NULL};
	if (h->cert) {
		o[n++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert};
		o[n++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_KEY, 0, h->key};
	}
	if (h->ca)
		o[n++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_TRUST, 0, h->ca};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return n;
}

/* Listens and starts MHD's threads on the socket. */
static int serve(nqi_http *h, const nqi_http_opts *o, const char *host,
    unsigned port, char *err, size_t errlen)
{
	struct MHD_OptionItem items[14];
	uint64_t timeout_ms =
	    o->timeout_ms ? o->timeout_ms : NQI_HTTP_TIMEOUT_DEFAULT_MS;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
	                 (h->cert ? MHD_USE_TLS : 0);
	int fd, rv = listen_on(o->addr, host, port, &fd, err, errlen);
	if (rv != NQ_OK)
		return rv;
	h->port = bound_port(fd);
	mhd_options(h, fd, (unsigned)((timeout_ms + 999) / 1000), items);
	h->mhd = MHD_start_daemon(flags, 0, accept_cb, h, access_cb, h,
	    MHD_OPTION_ARRAY, items, MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "cannot serve HTTP address %s%s", o->addr,
		    h->cert ? ": the TLS certificate and key do not go "
		              "together, or are not PEM"
		            : "");
		close(fd);
		return h->cert ? NQ_EINVAL : NQ_ENOMEM;
	}
	nqi_daemon_bound("http", o->addr, h->port);
	return NQ_OK;
}

static void http_free(nqi_http *h)
{
	if (h->key)
		memset(h->key, 0, strlen(h->key));
	free(h->cert);
	free(h->key);
	free(h->ca);
	free(h);
}

int nqi_http_start(
    nqi_http **out, const nqi_http_opts *o, char *err, size_t errlen)
{
	char host[HOST_MAX];
	unsigned port;
	nqi_http *h;
	int rv = parse_addr(o->addr, o->tls != NULL, host, &port, err, errlen);
	if (rv != NQ_OK)
		return rv;
	if (!(h = calloc(1, sizeof *h))) {
		snprintf(err, errlen, "HTTP server: out of memory");
		return NQ_ENOMEM;
	}
	h->metrics_cb = o->metrics_cb;
	h->ready_cb = o->ready_cb;
	h->arg = o->arg;
	h->api_prefix = o->api_cb ? o->api_prefix : NULL;
	h->ui_prefix = o->api_cb ? o->ui_prefix : NULL;
	h->api_cb = o->api_cb;
	h->api_arg = o->api_arg;
	h->api_body_max = o->api_body_max;
	h->max_conns = o->max_connections ? o->max_connections
	                                  : NQI_HTTP_MAX_CONNECTIONS_DEFAULT;
	atomic_init(&h->conns, 0);
	atomic_init(&h->refused, 0);
	atomic_init(&h->answering, 0);
	if (o->tls)
		rv = read_tls(h, o->addr, o->tls, err, errlen);
	if (rv == NQ_OK)
		rv = serve(h, o, host, port, err, errlen);
	if (rv != NQ_OK) {
		http_free(h);
		return rv;
	}
	*out = h;
	return NQ_OK;
}

uint16_t nqi_http_port(const nqi_http *h)
{
	return h->port;
}

void nqi_http_stop(nqi_http *h)
{
	if (!h)
		return;
	/* Answers given as the service stopped (a parked wait's "shutting
	 * down") are sent before their connections close, for a while. */
	for (int i = 0; i < STOP_FLUSH_MS / 10 && atomic_load(&h->answering);
	     i++)
		usleep(10000);
	MHD_stop_daemon(h->mhd); /* joins its threads, closes the socket */
	http_free(h);
}
