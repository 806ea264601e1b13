#include "nqi/http.h"

#include <arpa/inet.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/daemon.h"
#include "nqi/util.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CONTENT_TYPE "text/plain; charset=utf-8"
/* GET requests carry no body; a bigger one is refused with 400. */
#define BODY_MAX 1024
#define URL_MAX 320

struct nqi_http {
	nng_http_server *server;
	nqi_http_metrics_cb metrics_cb;
	nqi_http_ready_cb ready_cb;
	void *arg;
	uint16_t port;
	/* Callbacks in flight and whether stop began: stop waits for the
	 * first to reach zero so no callback outlives it. */
	nng_mtx *mtx;
	nng_cv *cv;
	int busy;
	bool stopping;
	/* The caller's handle plus one per nng handler: nng may free its
	 * handlers after stop returns (its reaper), and they point here. */
	atomic_int refs;
};

typedef struct route {
	const char *path;
	void (*cb)(nng_aio *);
} route;

static void http_unref(void *arg)
{
	nqi_http *h = arg;
	if (atomic_fetch_sub(&h->refs, 1) != 1)
		return;
	if (h->cv)
		nng_cv_free(h->cv);
	if (h->mtx)
		nng_mtx_free(h->mtx);
	free(h);
}

/* ---- requests ---- */

/* Completes the handler's aio with a response; on failure nng closes the
 * connection, which is all that can be done without memory. */
static void reply(nng_aio *aio, uint16_t status, const char *type,
    const char *body, size_t len)
{
	nng_http_res *res = NULL;
	int rv = nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_http_res_set_status(res, status);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type", type);
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Cache-Control", "no-store");
	/* nng cannot copy zero bytes (it fails to allocate them); setting
	 * them still writes Content-Length: 0. */
	if (rv == 0)
		rv = len ? nng_http_res_copy_data(res, body, len)
		         : nng_http_res_set_data(res, body, 0);
	if (rv != 0) {
		if (res)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void reply_text(nng_aio *aio, uint16_t status, const char *text)
{
	reply(aio, status, TEXT_CONTENT_TYPE, text, strlen(text));
}

/* Marks a callback in flight, or answers 503 when the server is stopping
 * and returns NULL. */
static nqi_http *enter(nng_aio *aio)
{
	nqi_http *h = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	nng_mtx_lock(h->mtx);
	bool stopping = h->stopping;
	if (!stopping)
		h->busy++;
	nng_mtx_unlock(h->mtx);
	if (!stopping)
		return h;
	reply_text(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, "stopping");
	return NULL;
}

static void leave(nqi_http *h)
{
	nng_mtx_lock(h->mtx);
	if (--h->busy == 0 && h->stopping)
		nng_cv_wake(h->cv);
	nng_mtx_unlock(h->mtx);
}

static void metrics_cb(nng_aio *aio)
{
	nqi_http *h = enter(aio);
	nqi_prom *p = NULL;
	char msg[400];
	if (!h)
		return;
	int rv = nqi_prom_alloc(&p);
	if (rv == NQ_OK && h->metrics_cb)
		rv = h->metrics_cb(p, h->arg);
	if (rv == NQ_OK) {
		size_t len;
		const char *text = nqi_prom_text(p, &len);
		reply(aio, NNG_HTTP_STATUS_OK, PROM_CONTENT_TYPE, text, len);
	} else {
		const char *why = p ? nqi_prom_error(p) : "";
		snprintf(msg, sizeof msg, "metrics unavailable: %s%s%s",
		    nq_strerror(rv), *why ? ": " : "", why);
		reply_text(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, msg);
	}
	nqi_prom_free(p);
	leave(h);
}

static void healthz_cb(nng_aio *aio)
{
	reply_text(aio, NNG_HTTP_STATUS_OK, "ok");
}

static void readyz_cb(nng_aio *aio)
{
	nqi_http *h = enter(aio);
	char why[256] = "";
	if (!h)
		return;
	bool ready = !h->ready_cb || h->ready_cb(h->arg, why, sizeof why);
	why[sizeof why - 1] = '\0';
	if (ready)
		reply_text(aio, NNG_HTTP_STATUS_OK, "ready");
	else
		reply_text(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE,
		    *why ? why : "not ready");
	leave(h);
}

static const route routes[] = {
    {"/metrics", metrics_cb},
    {"/healthz", healthz_cb},
    {"/readyz", readyz_cb},
};

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

/* Turns what the operator wrote into the URL nng wants. */
static int build_url(
    const char *addr, bool tls, char url[URL_MAX], char *err, size_t errlen)
{
	const char *hp;
	unsigned port;
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
	if (n == 0 || n > 253 || !parse_port(hp + n, &port)) {
		snprintf(err, errlen,
		    "HTTP address \"%s\" is not host:port "
		    "with a port from 0 to 65535 (e.g. 127.0.0.1:7480)",
		    addr);
		return NQ_EINVAL;
	}
	snprintf(url, URL_MAX, "%s://%.*s:%u", tls ? "https" : "http", (int)n,
	    hp, port);
	return NQ_OK;
}

/* ---- server ---- */

/* nng hands out the running server of an address again, so a route that
 * exists already means another nqi_http of this process serves it. */
static int route_failed(
    const char *path, const char *addr, int rv, char *err, size_t errlen)
{
	if (rv == NNG_EADDRINUSE) {
		snprintf(err, errlen,
		    "HTTP address %s is already served by "
		    "this process",
		    addr);
		return NQ_EUNAVAIL;
	}
	snprintf(err, errlen, "HTTP handler %s on %s: %s", path, addr,
	    nng_strerror(rv));
	return nqi_err_from_nng(rv);
}

static int add_routes(nqi_http *h, const char *addr, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		nng_http_handler *hd;
		int rv =
		    nng_http_handler_alloc(&hd, routes[i].path, routes[i].cb);
		if (rv != 0)
			return route_failed(
			    routes[i].path, addr, rv, err, errlen);
		atomic_fetch_add(&h->refs, 1);
		nng_http_handler_set_data(hd, h, http_unref);
		nng_http_handler_collect_body(hd, true, BODY_MAX);
		if ((rv = nng_http_server_add_handler(h->server, hd)) != 0) {
			nng_http_handler_free(hd);
			return route_failed(
			    routes[i].path, addr, rv, err, errlen);
		}
	}
	return NQ_OK;
}

static uint16_t bound_port(nng_http_server *s)
{
	nng_sockaddr sa;
	if (nng_http_server_get_addr(s, &sa) != 0)
		return 0;
	if (sa.s_family == NNG_AF_INET6)
		return ntohs(sa.s_in6.sa_port);
	return ntohs(sa.s_in.sa_port);
}

/* Resolves the address, installs the routes and starts listening. */
static int serve(nqi_http *h, const nqi_http_opts *o, const char *url,
    char *err, size_t errlen)
{
	nng_url *u = NULL;
	int rv = nng_url_parse(&u, url);
	if (rv == 0)
		rv = nng_http_server_hold(&h->server, u);
	nng_url_free(u);
	if (rv != 0) {
		snprintf(err, errlen, "cannot use HTTP address %s: %s", o->addr,
		    nng_strerror(rv));
		return rv == NNG_ENOMEM ? NQ_ENOMEM : NQ_EINVAL;
	}
	if (o->tls && (rv = nng_http_server_set_tls(h->server, o->tls))) {
		snprintf(err, errlen, "cannot use TLS on HTTP address %s: %s",
		    o->addr, nng_strerror(rv));
		return nqi_err_from_nng(rv);
	}
	if ((rv = add_routes(h, o->addr, err, errlen)) != NQ_OK)
		return rv;
	if ((rv = nng_http_server_start(h->server)) != 0) {
		snprintf(err, errlen, "cannot listen on HTTP address %s: %s",
		    o->addr, nng_strerror(rv));
		return rv == NNG_ENOMEM ? NQ_ENOMEM : NQ_EUNAVAIL;
	}
	h->port = bound_port(h->server);
	nqi_daemon_bound("http", o->addr, h->port);
	return NQ_OK;
}

int nqi_http_start(
    nqi_http **out, const nqi_http_opts *o, char *err, size_t errlen)
{
	char url[URL_MAX];
	nqi_http *h;
	int rv = build_url(o->addr, o->tls != NULL, url, err, errlen);
	if (rv != NQ_OK)
		return rv;
	if (!(h = calloc(1, sizeof *h))) {
		snprintf(err, errlen, "HTTP server: out of memory");
		return NQ_ENOMEM;
	}
	atomic_init(&h->refs, 1);
	h->metrics_cb = o->metrics_cb;
	h->ready_cb = o->ready_cb;
	h->arg = o->arg;
	if (nng_mtx_alloc(&h->mtx) != 0 || nng_cv_alloc(&h->cv, h->mtx) != 0) {
		snprintf(err, errlen, "HTTP server: out of memory");
		rv = NQ_ENOMEM;
	} else {
		rv = serve(h, o, url, err, errlen);
	}
	if (rv != NQ_OK) {
		if (h->server)
			nng_http_server_release(h->server);
		http_unref(h);
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
	nng_mtx_lock(h->mtx);
	h->stopping = true;
	while (h->busy > 0)
		nng_cv_wait(h->cv);
	nng_mtx_unlock(h->mtx);
	nng_http_server_stop(h->server);
	nng_http_server_release(h->server);
	http_unref(h);
}
