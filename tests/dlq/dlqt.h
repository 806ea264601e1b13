/*
 * Helpers of the nq-dlq tests, on top of the integration harness: start and
 * stop the real nq-dlq on the env's dlq URL, talk to it (and to the
 * broker) over REQ sockets in the nq.v1 envelope, build DeadJob records,
 * and fetch its HTTP endpoints.
 */
#ifndef DLQT_H
#define DLQT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "nqi/codec.h"
#include "nqi/util.h"

/* One nq-dlq of a test; its data dir survives restarts. */
typedef struct dlqt {
	itest_env *e;
	itest_proc *proc; /* NULL when not running */
	char data_dir[PATH_MAX];
	char http_addr[ITEST_URL_MAX];
	char log[PATH_MAX]; /* of the latest start */
} dlqt;

/* Prepares t for env e: a data dir under the test's dir, an HTTP address
 * on port 0 (the first start writes in the port it bound). */
int dlqt_init(dlqt *t, itest_env *e);
/* Starts nq-dlq with --listen, --broker (the env's api URL), --data-dir,
 * --http and the extra flags (NULL-terminated, may be NULL), the extra
 * environment (may be NULL), and waits until it answers dlq_stats. */
int dlqt_start(dlqt *t, const char *const *flags, const char *const *env);
/* Sends sig and waits for the exit (at most 20 s); *status gets the wait
 * status when not NULL. */
int dlqt_stop(dlqt *t, int sig, int *status);

/* Stops with SIGTERM and checks the stop was clean: exit status 0 and
 * no sanitizer report in the log. 0 when so. */
int dlqt_stop_clean(dlqt *t);

/* The token dlqt_call puts on requests that carry none (NULL: none). */
void dlqt_set_token(const char *token);

/* One request to url; timeout_ms bounds the round trip. On 0 *out holds
 * the reply (free with nq__v1__reply__free_unpacked); otherwise an nng
 * error. */
int dlqt_call(
    const char *url, Nq__V1__Request *req, int timeout_ms, Nq__V1__Reply **out);
/* The same with raw bytes as the request. */
int dlqt_call_raw(const char *url, const void *buf, size_t len, int timeout_ms,
    Nq__V1__Reply **out);
/* The wire code of a reply's status (0 when absent). */
int dlqt_code(const Nq__V1__Reply *r);

/* A dead job to hand over: its own storage, filled by dlqt_dead(). */
typedef struct dlqt_dead_job {
	Nq__V1__DeadJob dead;
	Nq__V1__Job job;
	Nq__V1__JobSpec spec;
	Nq__V1__AttemptError err[4];
	Nq__V1__AttemptError *errs[4];
	char id[NQ_ID_MAX];
	char queue[64], type[64], reason[64];
	char msgs[4][64];
} dlqt_dead_job;

/* Fills d: job id, queue, type, reason, dead time, and nerrors (1..4)
 * attempt errors "attempt N failed", payload "payload <id>". */
void dlqt_dead(dlqt_dead_job *d, uint64_t id, const char *queue,
    const char *type, const char *reason, uint64_t dead_at_us, int nerrors);
/* Hands n jobs over in one DlqIngestRequest; every result must be OK. */
int dlqt_ingest(const char *url, dlqt_dead_job *jobs, size_t n);

/* Entries nq-dlq holds in total (-1 when it does not answer). */
long long dlqt_total(const char *url);
/* Polls until the total is want, at most timeout_ms. */
int dlqt_wait_total(const char *url, long long want, uint64_t timeout_ms);
/* Every entry id (all pages, newest first) into a malloc'd array. */
int dlqt_list_all(
    const char *url, const char *queue, uint64_t **ids, size_t *n);

/* GET http://addr/path: *status and a malloc'd body. */
int dlqt_http_get(const char *addr, const char *path, int *status, char **body);

/* The broker's dead_pending of queue (stats over the api socket); -1 on
 * failure. */
long long dlqt_dead_pending(const itest_env *e, const char *queue);

/* True when the file holds the text. */
bool dlqt_log_has(const char *path, const char *text);

#endif
