/*
 * The HTTP endpoints every nq service serves, on nng's HTTP server:
 *
 *	GET /metrics  200, Prometheus text format 0.0.4, filled by metrics_cb
 *	              per scrape; 500 naming the error when metrics_cb fails
 *	GET /healthz  200 "ok": the process is alive (no callback runs)
 *	GET /readyz   200 "ready", or 503 with ready_cb's reason as the body
 *	              (e.g. "store cannot commit")
 *
 * Other paths get 404, other methods 405 (HEAD works like GET), request
 * bodies over 1 KiB 400; nng answers those by itself.
 *
 * https with nng 1.5.2: when a request asks to close the connection
 * ("Connection: close", or HTTP/1.0), nng's TLS layer sometimes closes
 * before the body has left, so the client gets the status line and
 * headers but no body. Kept-alive connections (Prometheus scrapes, curl)
 * and plain http are not affected; probes that read only the status are
 * not either.
 *
 * Threads: the callbacks run on nng's threads, possibly several at once
 * (one per connection being served), never after nqi_http_stop() returns.
 * They must be thread-safe, must not block for long (a scrape waits on
 * them), and must not call nqi_http_stop().
 */
#ifndef NQI_HTTP_H
#define NQI_HTTP_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/prom.h"

typedef struct nqi_http nqi_http;

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
	nqi_http_metrics_cb metrics_cb; /* NULL: an empty exposition */
	nqi_http_ready_cb ready_cb;     /* NULL: always ready */
	void *arg;                      /* passed to both callbacks */
	/* Serve https with this server config (certificate and key set);
	 * NULL serves plain http. The server takes its own reference, so
	 * the caller may free the config after nqi_http_start() returns. */
	nng_tls_config *tls;
} nqi_http_opts;

/*
 * Starts serving on opts->addr. On success writes *out, which the caller
 * frees with nqi_http_stop(). On failure nothing is left running, err
 * (errlen bytes) names what was wrong, and the result is NQ_EINVAL (a bad
 * or unresolvable address, or a scheme that does not match opts->tls),
 * NQ_EUNAVAIL (the port is taken, also by another nqi_http of this
 * process) or NQ_ENOMEM.
 */
int nqi_http_start(
    nqi_http **out, const nqi_http_opts *opts, char *err, size_t errlen);

/* The TCP port being served (the chosen one when opts->addr said 0). */
uint16_t nqi_http_port(const nqi_http *h);

/* Stops serving and frees everything. Blocks until callbacks running on
 * nng's threads have returned; none runs afterwards. NULL is fine. */
void nqi_http_stop(nqi_http *h);

#endif
