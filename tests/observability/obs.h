/*
 * Helpers of the observability tests, on top of the integration harness:
 * HTTP GETs of /metrics, /healthz and /readyz, promtool, reading samples,
 * nqctl events subscribers and their output, and a stand-in publisher for
 * feeding nqctl exact events.
 *
 * Functions return 0 on success and print why not to stderr otherwise.
 */
#ifndef OBS_H
#define OBS_H

#include <jansson.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "nq/v1/events.pb-c.h"

#define OBS_TRACEPARENT                                                        \
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

#define OBS_ADDR_MAX 64
/* "127.0.0.1:0": an HTTP address on a port the service picks itself. */
int obs_free_addr(char *out, size_t len);

/* GET http://addr/path with a 5 s bound. *body is malloc'd (NUL-ended). */
int obs_http_get(const char *addr, const char *path, int *status, char **body);
/* A connection to addr (IPV4:PORT) with 5 s timeouts; -1 when it fails. */
int obs_http_connect(const char *addr);
/* obs_http_get saying nothing when it fails (for polls). */
int obs_http_get_quiet(
    const char *addr, const char *path, int *status, char **body);
/* obs_http_get on the open connection fd, which is kept alive. */
int obs_http_get_on(
    int fd, const char *addr, const char *path, int *status, char **body);
/* method path with body (JSON; NULL: none) on a new connection, closed
 * after the answer; quiet when it fails. */
int obs_http_request(const char *addr, const char *method, const char *path,
    const char *body, int *status, char **resp);
/* GET /metrics; fails unless the status is 200. */
int obs_scrape(const char *addr, char **text);
/* Runs `promtool check metrics` on text; 0 when it passes. */
int obs_promtool(const char *text);
/* The value of one series, written exactly as the exposition has it:
 * `nq_queue_ready{queue="q"}` or `nq_jobs_stored`. */
int obs_sample(const char *text, const char *series, double *v);
/* Polls /readyz until its status is want, at most timeout_ms; *body (may
 * be NULL) gets the last body. */
int obs_wait_readyz(
    const char *addr, int want, uint64_t timeout_ms, char **body);

/* Starts the real nq-broker like itest_broker_start, with extra "K=V"
 * environment (NULL-terminated). */
int obs_broker_start_env(
    itest_env *e, const char *const *flags, const char *const *env);

/* Starts nq-worker with --http http_addr and the extra flags. When
 * http_addr (OBS_ADDR_MAX bytes) names port 0, waits until the worker
 * serves and writes the address it bound back into http_addr. */
int obs_worker_start(
    itest_env *e, char *http_addr, const char *const *flags, itest_proc **out);
/* Starts nq-worker on the queues (comma-separated) with a handler for
 * every type that fails its first attempt (stderr "first attempt fails")
 * and succeeds after. */
int obs_flaky_worker_start(itest_env *e, const char *queues);

/* A string member of a JSON object ("" when absent), a number member (0). */
const char *obs_json_str(const json_t *o, const char *key);
long long obs_json_num(const json_t *o, const char *key);

/* Starts `nqctl --events URL events FLAGS...` (url NULL: the env's). Its
 * stdout and stderr go to p->log: JSON lines start with '{', messages with
 * "nqctl:". */
int obs_events_start(
    itest_env *e, const char *url, const char *const *flags, itest_proc **out);
/* Waits until n TCP connections to the env's events port are established
 * (as the broker's side sees them in /proc/net/tcp), at most timeout_ms:
 * how to know that subscribers whose filters let no warm-up event through
 * are there. */
int obs_wait_subscribers(const itest_env *e, int n, uint64_t timeout_ms);
/* Enqueues jobs on queue "obs-warmup" (no worker takes them) until the
 * unfiltered subscriber p printed one of their events: from then on it
 * sees everything. */
int obs_events_warmup(itest_env *e, itest_proc *p);
/* The JSON lines of a log as an array (new reference). */
json_t *obs_events_read(const char *log);
/* The events of one job id, in the order printed (new reference). */
json_t *obs_events_of(const json_t *events, const char *id);
/* Polls the log until the events of id include kind, at most timeout_ms. */
int obs_events_wait(
    const itest_proc *p, const char *id, const char *kind, uint64_t timeout_ms);
/* True when the file holds needle. */
bool obs_file_has(const char *path, const char *needle);
/* Stops p with SIGTERM and returns its exit status (-1 when it did not
 * exit by itself within 10 s). */
int obs_stop(itest_proc *p);

/* A PUB socket of the test's own on a free port, standing in for the
 * broker's events socket. */
int obs_pub_open(nng_socket *s, char *url, size_t len);
/* Publishes topic, a NUL, and the packed batch of n events. */
int obs_pub_events(
    nng_socket s, const char *topic, Nq__V1__JobEvent *const *events, size_t n);

#endif
