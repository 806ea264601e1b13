#include "dlqt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#ifndef ITEST_DLQ
#error "ITEST_DLQ must name the nq-dlq binary"
#endif

int dlqt_init(dlqt *t, itest_env *e)
{
	memset(t, 0, sizeof *t);
	t->e = e;
	itest_path(e, "dlq-data", t->data_dir, sizeof t->data_dir);
	snprintf(t->http_addr, sizeof t->http_addr, "127.0.0.1:0");
	return 0;
}

/* Ready once it answers anything (with tokens set it refuses stats). */
static bool answers(const char *url)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest body = NQ__V1__DLQ_STATS_REQUEST__INIT;
	Nq__V1__Reply *r;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
	req.dlq_stats = &body;
	if (dlqt_call(url, &req, 1000, &r) != 0)
		return false;
	nq__v1__reply__free_unpacked(r, NULL);
	return true;
}

static int wait_ready(dlqt *t, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	while (itest_now_ms() < end) {
		if (answers(t->e->dlq_url))
			return 0;
		if (!itest_alive(t->proc)) {
			fprintf(stderr,
			    "dlqt: nq-dlq exited before it was "
			    "ready (status 0x%x)\n",
			    t->proc->status);
			itest_dump_log(t->proc, 40);
			return ECHILD;
		}
		itest_sleep_ms(50);
	}
	fprintf(stderr, "dlqt: nq-dlq not ready after %llu ms\n",
	    (unsigned long long)timeout_ms);
	return ETIMEDOUT;
}

int dlqt_start(dlqt *t, const char *const *flags, const char *const *env)
{
	static int starts;
	char name[32], ready[PATH_MAX], none[ITEST_URL_MAX];
	const char *argv[64] = {ITEST_DLQ, "--listen", t->e->dlq_url,
	    "--broker", itest_dial_url(t->e, t->e->api_url, none, sizeof none),
	    "--data-dir", t->data_dir, "--http", t->http_addr, "--ready-file"};
	size_t n = 10;
	itest_pin_port(t->e, t->http_addr, sizeof t->http_addr);
	snprintf(name, sizeof name, "dlq.%d", ++starts);
	itest_path(t->e, name, ready, sizeof ready);
	strncat(ready, ".ready", sizeof ready - strlen(ready) - 1);
	argv[n++] = ready;
	for (; flags && *flags && n < 63; flags++)
		argv[n++] = *flags;
	argv[n] = NULL;
	int rv = itest_spawn(t->e, name, argv, env, &t->proc);
	if (rv == 0)
		rv = itest_wait_bound(t->proc, 20000);
	if (rv)
		return rv;
	snprintf(t->log, sizeof t->log, "%s", t->proc->log);
	/* Port 0 the first time; a restart serves the same address. */
	itest_bound_url(t->proc, "http", t->http_addr, sizeof t->http_addr);
	itest_bound_url(t->proc, "listen", t->e->dlq_url, sizeof t->e->dlq_url);
	return wait_ready(t, 20000);
}

int dlqt_stop(dlqt *t, int sig, int *status)
{
	if (!t->proc)
		return ESRCH;
	itest_signal(t->proc, sig);
	int rv = itest_wait_exit(t->proc, 20000);
	if (rv)
		itest_kill_tree(t->proc);
	if (status)
		*status = t->proc->status;
	t->proc = NULL;
	return rv;
}

int dlqt_stop_clean(dlqt *t)
{
	int status = 0;
	int rv = dlqt_stop(t, SIGTERM, &status);
	if (rv == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		fprintf(stderr, "dlqt: nq-dlq ended with wait status 0x%x\n",
		    status);
		rv = ECHILD;
	}
	if (rv == 0 && (dlqt_log_has(t->log, "Sanitizer") ||
	                   dlqt_log_has(t->log, "runtime error:"))) {
		fprintf(stderr, "dlqt: a sanitizer reported in %s\n", t->log);
		rv = EFAULT;
	}
	return rv;
}

/* ---- requests ---- */

int dlqt_call_raw(const char *url, const void *buf, size_t len, int timeout_ms,
    Nq__V1__Reply **out)
{
	nng_socket s;
	nng_msg *msg = NULL;
	int rv = nng_req0_open(&s);
	if (rv)
		return rv;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		rv = nng_msg_alloc(&msg, len);
	if (rv == 0) {
		memcpy(nng_msg_body(msg), buf, len);
		rv = nng_sendmsg(s, msg, 0);
		if (rv)
			nng_msg_free(msg);
	}
	if (rv == 0)
		rv = nng_recvmsg(s, &msg, 0);
	if (rv == 0) {
		*out = nqi_reply_unpack(nng_msg_body(msg), nng_msg_len(msg));
		nng_msg_free(msg);
		rv = *out ? 0 : NNG_EPROTO;
	}
	nng_close(s);
	return rv;
}

/* Tests run one at a time; the token is one of the test's settings. */
static const char *default_token;

void dlqt_set_token(const char *token)
{
	default_token = token;
}

int dlqt_call(
    const char *url, Nq__V1__Request *req, int timeout_ms, Nq__V1__Reply **out)
{
	uint8_t *buf;
	size_t len;
	if (!req->version)
		req->version = 1;
	if ((!req->token || !req->token[0]) && default_token)
		req->token = (char *)default_token;
	if (nqi_buf_pack(&req->base, &buf, &len) != 0)
		return NNG_ENOMEM;
	int rv = dlqt_call_raw(url, buf, len, timeout_ms, out);
	free(buf);
	return rv;
}

int dlqt_code(const Nq__V1__Reply *r)
{
	return r->status ? (int)r->status->code : 0;
}

/* ---- dead jobs ---- */

void dlqt_dead(dlqt_dead_job *d, uint64_t id, const char *queue,
    const char *type, const char *reason, uint64_t dead_at_us, int nerrors)
{
	memset(d, 0, sizeof *d);
	nq__v1__dead_job__init(&d->dead);
	nq__v1__job__init(&d->job);
	nq__v1__job_spec__init(&d->spec);
	nqi_id_format(id, d->id);
	snprintf(d->queue, sizeof d->queue, "%s", queue);
	snprintf(d->type, sizeof d->type, "%s", type);
	snprintf(d->reason, sizeof d->reason, "%s", reason);
	snprintf(d->msgs[0], sizeof d->msgs[0], "payload %s", d->id);
	d->spec.queue = d->queue;
	d->spec.type = d->type;
	d->spec.payload.data = (uint8_t *)d->msgs[0];
	d->spec.payload.len = strlen(d->msgs[0]);
	d->spec.content_type = "text/plain";
	d->job.id = d->id;
	d->job.spec = &d->spec;
	d->job.state = NQ__V1__JOB_STATE__JOB_STATE_DEAD;
	d->job.attempt = (uint32_t)nerrors;
	d->job.max_attempts = (uint32_t)nerrors;
	d->job.dead_reason = d->reason;
	d->job.created_us = dead_at_us - 1000;
	d->job.finished_us = dead_at_us;
	for (int i = 0; i < nerrors && i < 4; i++) {
		nq__v1__attempt_error__init(&d->err[i]);
		d->err[i].attempt = (uint32_t)i + 1;
		d->err[i].at_us = dead_at_us - (uint64_t)(nerrors - i) * 10;
		if (i > 0)
			snprintf(d->msgs[i], sizeof d->msgs[i],
			    "attempt %d failed", i + 1);
		d->err[i].message = i > 0 ? d->msgs[i] : "attempt 1 failed";
		d->err[i].retryable = true;
		d->err[i].worker_id = "w1";
		d->errs[i] = &d->err[i];
	}
	d->job.errors = d->errs;
	d->job.n_errors = (size_t)(nerrors < 4 ? nerrors : 4);
	d->dead.job = &d->job;
	d->dead.reason = d->reason;
	d->dead.dead_at_us = dead_at_us;
}

int dlqt_ingest(const char *url, dlqt_dead_job *jobs, size_t n)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqIngestRequest in = NQ__V1__DLQ_INGEST_REQUEST__INIT;
	Nq__V1__DeadJob **v = calloc(n ? n : 1, sizeof *v);
	Nq__V1__Reply *r = NULL;
	if (!v)
		return ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = &jobs[i].dead;
	in.jobs = v;
	in.n_jobs = n;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_INGEST;
	req.dlq_ingest = &in;
	int rv = dlqt_call(url, &req, 10000, &r);
	free(v);
	if (rv)
		return rv;
	if (dlqt_code(r) || r->body_case != NQ__V1__REPLY__BODY_DLQ_INGEST ||
	    r->dlq_ingest->n_results != n)
		rv = EPROTO;
	for (size_t i = 0; rv == 0 && i < n; i++)
		if (r->dlq_ingest->results[i]->code) {
			fprintf(stderr, "dlqt: ingest %zu: %s\n", i,
			    r->dlq_ingest->results[i]->message);
			rv = EPROTO;
		}
	nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

long long dlqt_total(const char *url)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest body = NQ__V1__DLQ_STATS_REQUEST__INIT;
	Nq__V1__Reply *r;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
	req.dlq_stats = &body;
	if (dlqt_call(url, &req, 1000, &r) != 0)
		return -1;
	long long n = r->body_case == NQ__V1__REPLY__BODY_DLQ_STATS
	                  ? (long long)r->dlq_stats->total
	                  : -1;
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

int dlqt_wait_total(const char *url, long long want, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	long long got = -1;
	while (itest_now_ms() < end) {
		if ((got = dlqt_total(url)) == want)
			return 0;
		itest_sleep_ms(50);
	}
	fprintf(stderr,
	    "dlqt: nq-dlq holds %lld entries after %llu ms, "
	    "wanted %lld\n",
	    got, (unsigned long long)timeout_ms, want);
	return ETIMEDOUT;
}

static int list_page(const char *url, const char *queue, char *before,
    uint64_t **ids, size_t *n, size_t *cap)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqListRequest body = NQ__V1__DLQ_LIST_REQUEST__INIT;
	Nq__V1__Reply *r;
	body.limit = 1000;
	body.before_id = before;
	body.queue = (char *)(queue ? queue : "");
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_LIST;
	req.dlq_list = &body;
	int rv = dlqt_call(url, &req, 5000, &r);
	if (rv)
		return rv;
	if (dlqt_code(r) || r->body_case != NQ__V1__REPLY__BODY_DLQ_LIST) {
		nq__v1__reply__free_unpacked(r, NULL);
		return EPROTO;
	}
	for (size_t i = 0; rv == 0 && i < r->dlq_list->n_jobs; i++) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			uint64_t *v = realloc(*ids, *cap * sizeof *v);
			if (!v) {
				rv = ENOMEM;
				break;
			}
			*ids = v;
		}
		nqi_id_parse(r->dlq_list->jobs[i]->job->id, &(*ids)[(*n)++]);
	}
	snprintf(before, NQ_ID_MAX, "%s", r->dlq_list->next_before_id);
	nq__v1__reply__free_unpacked(r, NULL);
	return rv;
}

int dlqt_list_all(const char *url, const char *queue, uint64_t **ids, size_t *n)
{
	char before[NQ_ID_MAX] = "";
	size_t cap = 0;
	int rv;
	*ids = NULL;
	*n = 0;
	do {
		rv = list_page(url, queue, before, ids, n, &cap);
	} while (rv == 0 && before[0]);
	return rv;
}

/* ---- HTTP ---- */

int dlqt_http_get(const char *addr, const char *path, int *status, char **body)
{
	char host[64], req[256], *buf = calloc(1, 65536);
	int port = 0;
	size_t len = 0;
	if (!buf)
		return ENOMEM;
	if (sscanf(addr, "%63[^:]:%d", host, &port) != 2) {
		free(buf);
		return EINVAL;
	}
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, host, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (fd < 0 || connect(fd, (void *)&sa, sizeof sa) != 0) {
		int rv = errno;
		if (fd >= 0)
			close(fd);
		free(buf);
		return rv;
	}
	int n = snprintf(req, sizeof req,
	    "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: close\r\n\r\n",
	    path, addr);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		free(buf);
		return EIO;
	}
	ssize_t got;
	while (len < 65535 && (got = read(fd, buf + len, 65535 - len)) > 0)
		len += (size_t)got;
	close(fd);
	buf[len] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || !sep) {
		free(buf);
		return EPROTO;
	}
	*body = strdup(sep + 4);
	free(buf);
	return *body ? 0 : ENOMEM;
}

long long dlqt_dead_pending(const itest_env *e, const char *queue)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest body = NQ__V1__STATS_REQUEST__INIT;
	Nq__V1__Reply *r;
	long long n = -1;
	body.queue = (char *)queue;
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &body;
	if (dlqt_call(e->api_url, &req, 2000, &r) != 0)
		return -1;
	if (r->body_case == NQ__V1__REPLY__BODY_STATS)
		for (size_t i = 0; i < r->stats->n_queues; i++)
			if (strcmp(r->stats->queues[i]->queue, queue) == 0)
				n = (long long)r->stats->queues[i]
				        ->dead_pending;
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

bool dlqt_log_has(const char *path, const char *text)
{
	char *s;
	if (itest_read_file(path, &s, NULL) != 0)
		return false;
	bool has = strstr(s, text) != NULL;
	free(s);
	return has;
}
