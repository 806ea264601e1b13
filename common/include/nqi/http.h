/*
 * The HTTP endpoints every nq service serves, on libmicrohttpd:
 *
 *	GET /metrics  200, Prometheus text format 0.0.4, filled by metrics_cb
 *	              per scrape and followed by the nq_http_* families
 *	              below; 500 naming the error when metrics_cb fails
 *	GET /healthz  200 "ok": the process is alive (no callback runs)
 *	GET /readyz   200 "ready", or 503 with ready_cb's reason as the body
 *	              (e.g. "store cannot commit")
 *
 * Other paths get 404, other methods 405 (HEAD works like GET), request
 * bodies over 1 KiB 400, headers over the connection's memory 431; each
 * answer has a status line, also the one to the thousandth request
 * pipelined on one connection.
 *
 * Limits, so that no crowd of clients can take the process's descriptors
 * or memory: at most max_connections connections are open at once (one
 * more for an instant when two arrive together); a connection past that
 * is closed as soon as it is accepted, without a word, and counted. A
 * connection that sends or takes nothing for timeout_ms (a request header
 * sent halfway, an idle keep-alive) is closed. Each connection holds at
 * most NQI_HTTP_CONN_MEMORY bytes of request. The exposition tells:
 *
 *	nq_http_connections       gauge: open now
 *	nq_http_connections_max   gauge: the cap in force
 *	nq_http_refused_total     counter: closed at once, past the cap
 *
 * Threads: NQI_HTTP_THREADS threads serve every connection (epoll); the
 * callbacks run on them, possibly two at once, never after nqi_http_stop()
 * returns. They must be thread-safe, must not block for long (a scrape
 * waits on them, and so do the requests queued behind it on that
 * thread), and must not call nqi_http_stop().
 */
#ifndef NQI_HTTP_H
#define NQI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/prom.h"
#include "nqi/tls.h"

#define NQI_HTTP_MAX_CONNECTIONS_DEFAULT 256
#define NQI_HTTP_MAX_CONNECTIONS_MAX 65536
#define NQI_HTTP_TIMEOUT_DEFAULT_MS 10000
#define NQI_HTTP_THREADS 2
#define NQI_HTTP_CONN_MEMORY 16384
/* Descriptors the server holds besides its connections, with room to
 * spare: the listening socket, an epoll and a wake-up descriptor per
 * thread and MHD's own. */
#define NQI_HTTP_FDS_BASE 8

typedef struct nqi_http nqi_http;

/*
 * A service's own routes (the JSON API): every request whose path starts
 * with api_prefix goes to api_cb once its body is in, whatever its method.
 * A body announced over api_body_max bytes is answered 413 before it is
 * read; one that grows past it without a length (chunked) closes the
 * connection. api_cb runs on a server thread and either answers, with
 * nqi_http_respond() or nqi_http_stream(), or returns without: the
 * connection then waits, suspended and costing no thread, until
 * nqi_http_wake() (from any thread), and api_cb runs again. Its state
 * between runs is the request's data (nqi_http_req_set_data).
 */
typedef struct nqi_http_req nqi_http_req;
typedef void (*nqi_http_api_cb)(nqi_http_req *req, void *arg);

/* A stream's source: writes up to max bytes into buf and returns how
 * many; 0 when it has nothing now (the connection then waits for
 * nqi_http_wake()); -1 to end the response. Runs on a server thread,
 * with the request's data. */
typedef long (*nqi_http_pull_fn)(void *data, char *buf, size_t max);

/* One query argument; non-zero stops the walk. */
typedef int (*nqi_http_query_fn)(void *arg, const char *key, const char *value);

/* Writes this process's metrics into prom (a fresh builder per scrape).
 * Returns 0, or an nq error: the scrape then gets a 500 naming it. */
typedef int (*nqi_http_metrics_cb)(nqi_prom *prom, void *arg);

/* Returns true when the service can do its work. Otherwise writes the
 * reason, NUL-terminated, into why (whylen bytes) and returns false. */
typedef bool (*nqi_http_ready_cb)(void *arg, char *why, size_t whylen);

typedef struct nqi_http_opts {
	/* "127.0.0.1:7480", "[::1]:7480", "localhost:7480", or the same
	 * with "http://" (or "https://" when tls is set). Port 0 picks a
	 * free port; nqi_http_port() tells which. */
	const char *addr;
	nqi_http_metrics_cb metrics_cb; /* NULL: only the nq_http_* part */
	nqi_http_ready_cb ready_cb;     /* NULL: always ready */
	void *arg;                      /* passed to both callbacks */
	/* Serve https with these PEM files: cert (a chain), its key (NULL
	 * or "": cert is one file holding both), and ca, when set, which
	 * every client must present a certificate signed by. Read during
	 * nqi_http_start(). NULL serves plain http. */
	const nqi_tls_opts *tls;
	unsigned max_connections; /* 0: NQI_HTTP_MAX_CONNECTIONS_DEFAULT */
	uint64_t timeout_ms;      /* 0: NQI_HTTP_TIMEOUT_DEFAULT_MS; whole
	                           * seconds, rounded up */
	const char *api_prefix;   /* e.g. "/v1/"; NULL: no own routes */
	const char *ui_prefix;    /* another prefix api_cb serves ("/ui") */
	nqi_http_api_cb api_cb;
	void *api_arg;
	size_t api_body_max;
} nqi_http_opts;

/*
 * Starts serving on opts->addr. On success writes *out, which the caller
 * frees with nqi_http_stop(). On failure nothing is left running, err
 * (errlen bytes) names what was wrong, and the result is NQ_EINVAL (a bad
 * or unresolvable address, a scheme that does not match opts->tls, TLS
 * files that cannot be used), NQ_EUNAVAIL (the port is taken, also by
 * another nqi_http of this process) or NQ_ENOMEM.
 */
int nqi_http_start(
    nqi_http **out, const nqi_http_opts *opts, char *err, size_t errlen);

/* What api_cb may read, on its own thread and until it returns: the
 * method, the path (without the query), a query argument or a request
 * header by name (NULL when absent), every query argument, the body. */
const char *nqi_http_req_method(const nqi_http_req *req);
const char *nqi_http_req_path(const nqi_http_req *req);
const char *nqi_http_req_query(const nqi_http_req *req, const char *name);
void nqi_http_req_queries(
    const nqi_http_req *req, nqi_http_query_fn fn, void *arg);
const char *nqi_http_req_header(const nqi_http_req *req, const char *name);
const char *nqi_http_req_body(const nqi_http_req *req, size_t *len);

/* The service's state of the request, freed by data_free (when set) once
 * the request is gone: the connection closed and every hold released. */
void nqi_http_req_set_data(
    nqi_http_req *req, void *data, void (*data_free)(void *data));
void *nqi_http_req_data(const nqi_http_req *req);

/* Keeps req alive for another thread that will wake it; each hold ends
 * with one release. */
void nqi_http_hold(nqi_http_req *req);
void nqi_http_release(nqi_http_req *req);

/* Runs api_cb again (an answer waited for has come), or a stream's pull.
 * Any thread, while holding req; does nothing once the connection closed. */
void nqi_http_wake(nqi_http_req *req);

/* Adds a response header (copied; at most NQI_HTTP_REQ_HEADERS) to the
 * answer given next. Only from api_cb, before it answers. */
void nqi_http_req_add_header(
    nqi_http_req *req, const char *name, const char *value);
#define NQI_HTTP_REQ_HEADERS 8

/* Answers req with a copy of body. Only from api_cb, once. */
void nqi_http_respond(nqi_http_req *req, unsigned status,
    const char *content_type, const char *body, size_t len);

/* Answers req with 200 and a body pull() writes as it goes (Server-Sent
 * Events). Only from api_cb. */
int nqi_http_stream(
    nqi_http_req *req, const char *content_type, nqi_http_pull_fn pull);

/* The TCP port being served (the chosen one when opts->addr said 0). */
uint16_t nqi_http_port(const nqi_http *h);

/* Stops serving and frees everything. Blocks until callbacks running on
 * the server's threads have returned; none runs afterwards. NULL is
 * fine. */
void nqi_http_stop(nqi_http *h);

#endif
