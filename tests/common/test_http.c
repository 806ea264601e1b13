/* Http: /metrics, /healthz and /readyz served on a free loopback port,
 * read back over a plain socket (and nng's HTTP client for https); bad
 * addresses, taken ports, stop while a scrape runs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nq/nq.h"
#include "nqi/http.h"
#include "nqi/prom.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))
#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A self-signed P-256 certificate for CN=localhost (valid 2026-2126) and
 * its key; test-only, for the https case. */
static const char test_cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBljCCATugAwIBAgIUT6dpeEFO78LtvghtXnFb96ybddUwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNzIxNTgxMloYDzIxMjYxMTAz\n"
    "MjE1ODEyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAARv0ANJnvbJp22ZWYnxYMI8OFOND34xG/757/YrbbB2MQJ5hsFyAImo\n"
    "kAo+y6UYW32kRk+WnN+hlc3CY2jwZ9bEo2kwZzAdBgNVHQ4EFgQUWk2Cn44YaORa\n"
    "/chgaaZFGFPpAdcwHwYDVR0jBBgwFoAUWk2Cn44YaORa/chgaaZFGFPpAdcwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID\n"
    "SQAwRgIhAI4mlHCSpLfG5nuzQmOvGnHM4ckS4oyq7OdITZP3pgstAiEAxpvfeosx\n"
    "CbgZewSfFkDlm8homQINCyBC6lpJxOTzT80=\n"
    "-----END CERTIFICATE-----\n";
static const char test_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfoK9v81NwB3u6UE8\n"
    "VyEAzBimvhTUtvfcxoEkIlxp7lChRANCAARv0ANJnvbJp22ZWYnxYMI8OFOND34x\n"
    "G/757/YrbbB2MQJ5hsFyAImokAo+y6UYW32kRk+WnN+hlc3CY2jwZ9bE\n"
    "-----END PRIVATE KEY-----\n";

typedef struct fixture {
	nqi_http *http;
	atomic_bool ready;
	char why[64];
	atomic_int scrapes;
	int fail_with; /* metrics_cb returns this after a refused call */
	int delay_ms;  /* metrics_cb sleeps this long */
	atomic_int in_cb;
	atomic_int done;
} fixture;

typedef struct response {
	int status;
	char type[128];
	char body[16384];
	size_t len;
} response;

static int fill_metrics_cb(nqi_prom *p, void *arg)
{
	fixture *f = arg;
	atomic_fetch_add(&f->in_cb, 1);
	int n = atomic_fetch_add(&f->scrapes, 1) + 1;
	int rv = nqi_prom_family(
	    p, "nq_test_scrapes_total", NQI_PROM_COUNTER, "Scrapes served.");
	if (rv == NQ_OK)
		rv = nqi_prom_sample(p, "nq_test_scrapes_total",
		    (const char *const[]){"service", "test", NULL}, n);
	if (f->delay_ms)
		nng_msleep(f->delay_ms);
	if (rv == NQ_OK && f->fail_with)
		rv = nqi_prom_sample(p, "nq_test_scrapes_total",
		         (const char *const[]){"service", "\xff", NULL}, n)
		         ? f->fail_with
		         : NQ_OK;
	atomic_fetch_add(&f->done, 1);
	atomic_fetch_sub(&f->in_cb, 1);
	return rv;
}

static bool ready_cb(void *arg, char *why, size_t whylen)
{
	fixture *f = arg;
	if (atomic_load(&f->ready))
		return true;
	snprintf(why, whylen, "%s", f->why);
	return false;
}

static int setup(void **st)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	atomic_init(&f->ready, true);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	fixture *f = *st;
	nqi_http_stop(f->http);
	free(f);
	return 0;
}

static uint16_t start(fixture *f, const char *addr)
{
	char err[256] = "";
	nqi_http_opts o = {.addr = addr,
	    .metrics_cb = fill_metrics_cb,
	    .ready_cb = ready_cb,
	    .arg = f};
	if (nqi_http_start(&f->http, &o, err, sizeof err) != NQ_OK)
		fail_msg("start on %s: %s", addr, err);
	assert_int_not_equal(nqi_http_port(f->http), 0);
	return nqi_http_port(f->http);
}

/* Splits a whole response; returns -1 when it is not HTTP. */
static int parse_response(const char *buf, size_t n, response *r)
{
	const char *end = strstr(buf, "\r\n\r\n");
	if (!end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	r->type[0] = '\0';
	for (const char *l = strstr(buf, "\r\n") + 2; l < end;
	     l = strstr(l, "\r\n") + 2) {
		if (strncasecmp(l, "Content-Type: ", 14) == 0)
			snprintf(r->type, sizeof r->type, "%.*s",
			    (int)(strstr(l, "\r\n") - l - 14), l + 14);
	}
	r->len = n - (size_t)(end + 4 - buf);
	if (r->len >= sizeof r->body)
		return -1;
	memcpy(r->body, end + 4, r->len);
	r->body[r->len] = '\0';
	return 0;
}

/* A loopback connection to port, with 5 s timeouts; -1 when refused. */
static int dial(uint16_t port)
{
	struct timeval tv = {5, 0};
	struct sockaddr_in sa = {.sin_family = AF_INET,
	    .sin_port = htons(port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request over a fresh connection; returns 0 once a whole response
 * came back, -1 when the connection failed. Bounded by 5 s timeouts. */
static int request(
    uint16_t port, const char *method, const char *path, response *r)
{
	static char buf[32768];
	char req[256];
	int fd = dial(port), n = 0;
	ssize_t got = 0;
	if (fd < 0)
		return -1;
	int len = snprintf(req, sizeof req,
	    "%s %s HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	    method, path, port);
	if (write(fd, req, (size_t)len) != len)
		goto fail;
	while ((got = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
		n += (int)got;
	buf[n] = '\0';
	if (got < 0 || n == 0)
		goto fail;
	close(fd);
	return parse_response(buf, (size_t)n, r);
fail:
	close(fd);
	return -1;
}

static response *get(uint16_t port, const char *path)
{
	static response r;
	if (request(port, "GET", path, &r) != 0)
		fail_msg("GET %s on port %u failed", path, port);
	return &r;
}

static void test_http_metrics_served(void **st)
{
	fixture *f = *st;
	uint16_t port = start(f, "127.0.0.1:0");
	for (int scrape = 1; scrape <= 2; scrape++) {
		response *r = get(port, "/metrics");
		char want[512];
		snprintf(want, sizeof want,
		    "# HELP nq_test_scrapes_total Scrapes served.\n"
		    "# TYPE nq_test_scrapes_total counter\n"
		    "nq_test_scrapes_total{service=\"test\"} %d\n",
		    scrape);
		assert_int_equal(r->status, 200);
		assert_string_equal(r->type, PROM_TYPE);
		/* The service's families, then the server's own. */
		assert_memory_equal(r->body, want, strlen(want));
		assert_non_null(strstr(r->body + strlen(want),
		    "# TYPE nq_http_connections "
		    "gauge\nnq_http_connections 1\n"));
	}
}

static void test_http_healthz_ok(void **st)
{
	fixture *f = *st;
	uint16_t port = start(f, "http://127.0.0.1:0");
	atomic_store(&f->ready, false); /* alive even when not ready */
	response *r = get(port, "/healthz");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ok");
	assert_string_equal(r->type, "text/plain; charset=utf-8");
}

static void test_http_readyz_reports_reason(void **st)
{
	fixture *f = *st;
	uint16_t port = start(f, "127.0.0.1:0");
	response *r = get(port, "/readyz");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ready");

	snprintf(f->why, sizeof f->why, "store cannot commit");
	atomic_store(&f->ready, false);
	r = get(port, "/readyz");
	assert_int_equal(r->status, 503);
	assert_string_equal(r->body, "store cannot commit");

	f->why[0] = '\0'; /* no reason given still says something */
	r = get(port, "/readyz");
	assert_int_equal(r->status, 503);
	assert_string_equal(r->body, "not ready");

	atomic_store(&f->ready, true);
	r = get(port, "/readyz");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ready");
}

static void test_http_null_callbacks_serve_defaults(void **st)
{
	fixture *f = *st;
	char err[256] = "";
	nqi_http_opts o = {.addr = "localhost:0"};
	assert_int_equal(nqi_http_start(&f->http, &o, err, sizeof err), NQ_OK);
	uint16_t port = nqi_http_port(f->http);
	response *r = get(port, "/metrics");
	assert_int_equal(r->status, 200);
	assert_int_equal(
	    strncmp(r->body, "# HELP nq_http_connections ", 27), 0);
	r = get(port, "/readyz");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ready");
}

static void test_http_other_paths_404_and_methods_405(void **st)
{
	fixture *f = *st;
	uint16_t port = start(f, "127.0.0.1:0");
	static const char *const missing[] = {
	    "/", "/nope", "/metrics/x", "/metricsx", "/healthz/deep"};
	for (size_t i = 0; i < COUNT(missing); i++)
		assert_int_equal(get(port, missing[i])->status, 404);
	response r;
	assert_int_equal(request(port, "POST", "/metrics", &r), 0);
	assert_int_equal(r.status, 405);
	assert_int_equal(request(port, "DELETE", "/readyz", &r), 0);
	assert_int_equal(r.status, 405);
	assert_int_equal(request(port, "HEAD", "/healthz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(atomic_load(&f->scrapes), 0);
}

static void test_http_metrics_failure_500(void **st)
{
	fixture *f = *st;
	f->fail_with = NQ_EINVAL;
	uint16_t port = start(f, "127.0.0.1:0");
	response *r = get(port, "/metrics");
	assert_int_equal(r->status, 500);
	/* Half an exposition is never served; the reason is. */
	assert_null(strstr(r->body, "nq_test_scrapes_total"));
	if (!strstr(r->body, "invalid argument") ||
	    !strstr(r->body, "\"service\" is not valid UTF-8"))
		fail_msg("500 body does not say why: %s", r->body);
}

static void test_http_bad_address_refused(void **st)
{
	static const struct {
		const char *addr;
		const char *says;
	} cases[] = {
	    {"", "missing"},
	    {"127.0.0.1", "\"127.0.0.1\" is not host:port"},
	    {"127.0.0.1:", "\"127.0.0.1:\" is not host:port"},
	    {":7480", "\":7480\" is not host:port"},
	    {"127.0.0.1:65536", "port from 0 to 65535"},
	    {"127.0.0.1:1234567", "\"127.0.0.1:1234567\""},
	    {"127.0.0.1:80x", "\"127.0.0.1:80x\""},
	    {"127.0.0.1:80/metrics", "\"127.0.0.1:80/metrics\""},
	    {"my host:80", "\"my host:80\""},
	    {"user@127.0.0.1:80", "\"user@127.0.0.1:80\""},
	    {"[::1:80", "\"[::1:80\""},
	    {"tcp://127.0.0.1:80", "scheme must be http:// or https://"},
	    {"https://127.0.0.1:80", "no TLS certificate is configured"},
	};
	fixture *f = *st;
	for (size_t i = 0; i < COUNT(cases); i++) {
		char err[256] = "";
		nqi_http *h = (void *)1;
		nqi_http_opts o = {.addr = cases[i].addr, .arg = f};
		assert_int_equal(
		    nqi_http_start(&h, &o, err, sizeof err), NQ_EINVAL);
		assert_ptr_equal(h, (void *)1);
		if (!strstr(err, cases[i].says))
			fail_msg("address \"%s\": error \"%s\" lacks \"%s\"",
			    cases[i].addr, err, cases[i].says);
	}
	char err[256] = "";
	nqi_http_opts o = {.addr = NULL};
	assert_int_equal(
	    nqi_http_start(&f->http, &o, err, sizeof err), NQ_EINVAL);
	assert_non_null(strstr(err, "missing"));
	assert_null(f->http);
}

static void test_http_taken_port_refused(void **st)
{
	fixture *f = *st;
	char addr[64], err[256] = "";
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(sa.sin_port));
	nqi_http_opts o = {.addr = addr, .arg = f};
	assert_int_equal(
	    nqi_http_start(&f->http, &o, err, sizeof err), NQ_EUNAVAIL);
	assert_null(f->http);
	if (!strstr(err, "cannot listen") || !strstr(err, addr))
		fail_msg("error \"%s\" does not name %s", err, addr);
	close(fd);

	/* A second server of this process on a port already served. */
	uint16_t port = start(f, "127.0.0.1:0");
	nqi_http *twin = NULL;
	snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
	o.addr = addr;
	assert_int_equal(
	    nqi_http_start(&twin, &o, err, sizeof err), NQ_EUNAVAIL);
	assert_null(twin);
	assert_non_null(strstr(err, addr));
	assert_int_equal(get(port, "/healthz")->status, 200); /* untouched */
}

static void test_http_restart_same_port(void **st)
{
	fixture *f = *st;
	char addr[64];
	uint16_t port = start(f, "127.0.0.1:0");
	assert_int_equal(get(port, "/healthz")->status, 200);
	nqi_http_stop(f->http);
	f->http = NULL;
	snprintf(addr, sizeof addr, "http://127.0.0.1:%u/", port);
	assert_int_equal(start(f, addr), port);
	assert_int_equal(get(port, "/readyz")->status, 200);
}

static void *scrape_thread(void *arg)
{
	static response r;
	uint16_t port = *(uint16_t *)arg;
	request(port, "GET", "/metrics", &r); /* may be cut off by stop */
	return NULL;
}

static void test_http_stop_waits_for_callbacks(void **st)
{
	fixture *f = *st;
	pthread_t t;
	f->delay_ms = 400;
	uint16_t port = start(f, "127.0.0.1:0");
	assert_int_equal(pthread_create(&t, NULL, scrape_thread, &port), 0);
	for (int i = 0; i < 500 && atomic_load(&f->in_cb) == 0; i++)
		nng_msleep(10);
	assert_int_equal(atomic_load(&f->in_cb), 1);
	nqi_http_stop(f->http);
	f->http = NULL;
	/* The scrape in flight finished before stop returned. */
	assert_int_equal(atomic_load(&f->in_cb), 0);
	assert_int_equal(atomic_load(&f->done), 1);
	pthread_join(t, NULL);
	response r;
	assert_int_equal(request(port, "GET", "/healthz", &r), -1);
	assert_int_equal(atomic_load(&f->scrapes), 1);
}

/* GET over https with nng's HTTP client. The client skips
 * verification: what is tested is that the server speaks TLS with the
 * config it was given. */
static int https_get(uint16_t port, const char *path, response *r)
{
	char url[128];
	nng_url *u = NULL;
	nng_http_client *c = NULL;
	nng_http_conn *conn = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_tls_config *tls = NULL;
	nng_aio *aio = NULL;
	void *body;
	size_t len;
	snprintf(url, sizeof url, "https://127.0.0.1:%u%s", port, path);
	int rv = nng_url_parse(&u, url);
	if (rv == 0)
		rv = nng_http_client_alloc(&c, u);
	if (rv == 0)
		rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT);
	if (rv == 0)
		rv = nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_NONE);
	if (rv == 0)
		rv = nng_http_client_set_tls(c, tls);
	if (rv == 0)
		rv = nng_http_req_alloc(&req, u);
	if (rv == 0)
		rv = nng_http_res_alloc(&res);
	if (rv == 0)
		rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv == 0) {
		nng_aio_set_timeout(aio, 5000);
		nng_http_client_connect(c, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
	}
	if (rv == 0) {
		conn = nng_aio_get_output(aio, 0);
		nng_http_conn_transact(conn, req, res, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		nng_http_conn_close(conn);
	}
	if (rv == 0) {
		r->status = nng_http_res_get_status(res);
		nng_http_res_get_data(res, &body, &len);
		assert_true(len < sizeof r->body);
		memcpy(r->body, body, len);
		r->body[len] = '\0';
		r->len = len;
	}
	nng_aio_free(aio);
	nng_http_res_free(res);
	nng_http_req_free(req);
	if (tls)
		nng_tls_config_free(tls);
	nng_http_client_free(c);
	nng_url_free(u);
	return rv;
}

/* Writes text into a fresh file under /tmp; its name into path. */
static void write_temp(char path[64], const char *text)
{
	snprintf(path, 64, "/tmp/nq-test-http-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void https_serves(fixture *f, const nqi_tls_opts *tls)
{
	char err[256] = "";
	nqi_http_opts o = {.addr = "127.0.0.1:0",
	    .metrics_cb = fill_metrics_cb,
	    .ready_cb = ready_cb,
	    .arg = f,
	    .tls = tls};
	if (nqi_http_start(&f->http, &o, err, sizeof err) != NQ_OK)
		fail_msg("https start: %s", err);
	uint16_t port = nqi_http_port(f->http);
	response r;
	assert_int_equal(https_get(port, "/readyz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ready");
	assert_int_equal(https_get(port, "/metrics", &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "nq_test_scrapes_total{service="));
	/* Plain http to the https port gets no HTTP answer. */
	response plain = {.status = 0};
	if (request(port, "GET", "/healthz", &plain) == 0)
		assert_int_not_equal(plain.status, 200);
	nqi_http_stop(f->http);
	f->http = NULL;
}

static void test_http_https_with_tls_files(void **st)
{
	fixture *f = *st;
	char cert[64], key[64], both[64], both_text[4096], err[256] = "";
	write_temp(cert, test_cert);
	write_temp(key, test_key);
	snprintf(both_text, sizeof both_text, "%s%s", test_cert, test_key);
	write_temp(both, both_text);
	nqi_tls_opts tls = {.cert = cert, .key = key};
	nqi_http_opts o = {.addr = "http://127.0.0.1:0", .tls = &tls};
	assert_int_equal(
	    nqi_http_start(&f->http, &o, err, sizeof err), NQ_EINVAL);
	assert_non_null(strstr(err, "a TLS certificate is configured"));
	https_serves(f, &tls);
	/* One file holding the certificate and its key. */
	https_serves(f, &(nqi_tls_opts){.cert = both});
	/* A file that cannot be read is named. */
	o = (nqi_http_opts){.addr = "https://127.0.0.1:0",
	    .tls = &(nqi_tls_opts){.cert = cert, .key = "/nonexistent.pem"}};
	assert_int_equal(
	    nqi_http_start(&f->http, &o, err, sizeof err), NQ_EINVAL);
	assert_non_null(strstr(err, "/nonexistent.pem"));
	unlink(cert);
	unlink(key);
	unlink(both);
}

/* True when the server closed fd (read gives 0 or a reset) within 5 s. */
static bool closed_by_server(int fd)
{
	char c;
	return read(fd, &c, 1) <= 0 && errno != EAGAIN && errno != EWOULDBLOCK;
}

static uint16_t start_limited(fixture *f, unsigned cap, uint64_t timeout_ms)
{
	char err[256] = "";
	nqi_http_opts o = {.addr = "127.0.0.1:0",
	    .metrics_cb = fill_metrics_cb,
	    .arg = f,
	    .max_connections = cap,
	    .timeout_ms = timeout_ms};
	if (nqi_http_start(&f->http, &o, err, sizeof err) != NQ_OK)
		fail_msg("start: %s", err);
	return nqi_http_port(f->http);
}

static void test_http_connections_past_the_cap_closed(void **st)
{
	fixture *f = *st;
	int held[4], extra[6];
	uint16_t port = start_limited(f, 4, 60000);
	for (size_t i = 0; i < COUNT(held); i++) {
		assert_true((held[i] = dial(port)) >= 0);
		/* Half a request: the server holds it, waiting for more. */
		assert_int_equal(write(held[i], "GET /met", 8), 8);
	}
	nng_msleep(200);
	for (size_t i = 0; i < COUNT(extra); i++) {
		extra[i] = dial(port);
		if (extra[i] >= 0)
			assert_true(closed_by_server(extra[i]));
	}
	/* A held one still gets its answer. */
	const char rest[] = "rics HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[4096];
	assert_int_equal(
	    write(held[0], rest, strlen(rest)), (ssize_t)strlen(rest));
	ssize_t n = read(held[0], buf, sizeof buf - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
	for (size_t i = 0; i < COUNT(held); i++)
		close(held[i]);
	for (size_t i = 0; i < COUNT(extra); i++)
		if (extra[i] >= 0)
			close(extra[i]);
	/* Room again once they are gone; the metrics tell what happened. */
	response *r = NULL;
	for (int i = 0; i < 50; i++) {
		static response got;
		if (request(port, "GET", "/metrics", &got) == 0) {
			r = &got;
			break;
		}
		nng_msleep(20);
	}
	assert_non_null(r);
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "\nnq_http_connections_max 4\n"));
	/* The six, and any try above that came before the closes landed. */
	const char *refused = strstr(r->body, "\nnq_http_refused_total ");
	assert_non_null(refused);
	assert_true(atoi(refused + 23) >= 6);
}

static void test_http_idle_connection_timed_out(void **st)
{
	fixture *f = *st;
	uint16_t port = start_limited(f, 0, 1000);
	int idle = dial(port), half = dial(port);
	assert_true(idle >= 0 && half >= 0);
	assert_int_equal(write(half, "GET /metrics HTTP/1.1\r\nHo", 25), 25);
	uint64_t t0 = (uint64_t)time(NULL);
	assert_true(closed_by_server(idle));
	assert_true(closed_by_server(half));
	assert_true((uint64_t)time(NULL) - t0 <= 4);
	close(idle);
	close(half);
	assert_int_equal(get(port, "/healthz")->status, 200);
}

/* Reads until the connection closes or n status lines came. */
static int count_statuses(int fd, int n, int *ok)
{
	static char buf[1 << 20];
	size_t len = 0;
	int lines = 0;
	*ok = 0;
	while (lines < n && len < sizeof buf - 1) {
		ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
		if (got <= 0)
			break;
		len += (size_t)got;
		buf[len] = '\0';
		lines = 0;
		*ok = 0;
		for (char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p += 9) {
			lines++;
			*ok += strncmp(p, "HTTP/1.1 200", 12) == 0;
		}
	}
	return lines;
}

static void test_http_pipelined_requests_all_answered(void **st)
{
	fixture *f = *st;
	static char reqs[600 * 64];
	size_t len = 0;
	int ok;
	uint16_t port = start(f, "127.0.0.1:0");
	for (int i = 0; i < 600; i++)
		len += (size_t)snprintf(reqs + len, sizeof reqs - len,
		    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	int fd = dial(port);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, reqs, len), (ssize_t)len);
	assert_int_equal(count_statuses(fd, 600, &ok), 600);
	assert_int_equal(ok, 600);
	close(fd);
}

/* Sends raw (a whole request) on a fresh connection; the status of the
 * answer, -1 when none came. */
static int raw_status(uint16_t port, const char *raw, size_t len)
{
	char buf[4096];
	int fd = dial(port), st = -1;
	assert_true(fd >= 0);
	if (write(fd, raw, len) == (ssize_t)len) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		if (n <= 0 || sscanf(buf, "HTTP/1.1 %d", &st) != 1)
			st = -1;
	}
	close(fd);
	return st;
}

static void test_http_request_bodies_bounded(void **st)
{
	fixture *f = *st;
	static char raw[8192], body[2000];
	uint16_t port = start(f, "127.0.0.1:0");
	memset(body, 'b', sizeof body);
	int n = snprintf(raw, sizeof raw,
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
	    "%.100s",
	    body);
	assert_int_equal(raw_status(port, raw, (size_t)n), 200);
	n = snprintf(raw, sizeof raw,
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
	    "%.2000s",
	    body);
	assert_int_equal(raw_status(port, raw, (size_t)n), 400);
	/* Chunked, so no length is announced: read, dropped, refused. */
	n = snprintf(raw, sizeof raw,
	    "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n7d0\r\n%.2000s\r\n0\r\n\r\n",
	    body);
	assert_int_equal(raw_status(port, raw, (size_t)n), 400);
}

/* An argument runs only the tests whose names match it (cmocka pattern). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_http_metrics_served),
	    T(test_http_healthz_ok),
	    T(test_http_readyz_reports_reason),
	    T(test_http_null_callbacks_serve_defaults),
	    T(test_http_other_paths_404_and_methods_405),
	    T(test_http_metrics_failure_500),
	    T(test_http_bad_address_refused),
	    T(test_http_taken_port_refused),
	    T(test_http_restart_same_port),
	    T(test_http_stop_waits_for_callbacks),
	    T(test_http_https_with_tls_files),
	    T(test_http_connections_past_the_cap_closed),
	    T(test_http_idle_connection_timed_out),
	    T(test_http_pipelined_requests_all_answered),
	    T(test_http_request_bodies_bounded),
#undef T
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
