/*
 * A crowd of ordinary clients does not stall the broker: hundreds of parked
 * waits leave the api answering, a wait whose connection closed is dropped
 * at once, a client that never reads its (large) replies holds a few
 * contexts and not the api, and hundreds of parked fetches leave room for
 * a lease extension.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "nq/v1/api.pb-c.h"

#define CROWD 200
#define FETCH_CROWD 300
#define PROMPT_MS 1000
#define POLL_MS 10000

/* ---- /metrics ---- */

/* The port of a "tcp://127.0.0.1:PORT" or "127.0.0.1:PORT" address. */
static int addr_port(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	return colon ? atoi(colon + 1) : 0;
}

static int tcp_connect(int port, int rcvbuf)
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* The value of an unlabelled sample of /metrics; -1 when it is missing. */
static double metric(const itest_env *e, const char *name)
{
	static char buf[1 << 16];
	const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	int fd = tcp_connect(addr_port(e->http_addr), 0);
	size_t len = 0;
	ssize_t n;
	assert_int_equal(write(fd, req, sizeof req - 1), sizeof req - 1);
	while (len < sizeof buf - 1 &&
	       (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, name, strlen(name)) == 0 &&
		    line[strlen(name)] == ' ')
			return atof(line + strlen(name) + 1);
	return -1;
}

/* Polls a metric until it is at least (or, with at_most, at most) want. */
static void wait_metric(
    const itest_env *e, const char *name, double want, bool at_most)
{
	uint64_t end = itest_now_ms() + POLL_MS;
	double v;
	while ((v = metric(e, name)) < 0 || (at_most ? v > want : v < want)) {
		if (itest_now_ms() > end)
			fail_msg("%s is %g, waited for %s %g", name, v,
			    at_most ? "<=" : ">=", want);
		itest_sleep_ms(20);
	}
}

/* ---- raw requests ---- */

static nng_msg *request_msg(Nq__V1__Request *req)
{
	nng_msg *m;
	req->version = 1;
	req->token = "";
	assert_int_equal(
	    nng_msg_alloc(&m, nq__v1__request__get_packed_size(req)), 0);
	nq__v1__request__pack(req, nng_msg_body(m));
	return m;
}

static nng_msg *wait_msg(const char *id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__WaitRequest w = NQ__V1__WAIT_REQUEST__INIT;
	w.id = (char *)id;
	w.timeout_ms = 50000;
	req.body_case = NQ__V1__REQUEST__BODY_WAIT;
	req.wait = &w;
	return request_msg(&req);
}

static nng_msg *fetch_msg(void)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest f = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {"idle"};
	f.worker_id = "crowd";
	f.queues = queues;
	f.n_queues = 1;
	f.max_jobs = 1;
	f.wait_ms = 50000;
	f.lease_ms = 30000;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &f;
	return request_msg(&req);
}

/* A REQ socket with n requests in flight, each from its own context; the
 * replies are never read. */
typedef struct crowd {
	nng_socket sock;
	nng_ctx ctx[FETCH_CROWD];
	nng_aio *aio[FETCH_CROWD];
	int n;
} crowd;

static void crowd_open(crowd *c, const char *url)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(nng_req0_open(&c->sock), 0);
	assert_int_equal(nng_dial(c->sock, url, NULL, 0), 0);
}

static void crowd_send(crowd *c, nng_msg *msg)
{
	int i = c->n++;
	assert_true(i < FETCH_CROWD);
	assert_int_equal(nng_ctx_open(&c->ctx[i], c->sock), 0);
	nng_ctx_set_ms(
	    c->ctx[i], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	assert_int_equal(nng_aio_alloc(&c->aio[i], NULL, NULL), 0);
	nng_aio_set_msg(c->aio[i], msg);
	nng_ctx_send(c->ctx[i], c->aio[i]);
	nng_aio_wait(c->aio[i]);
	assert_int_equal(nng_aio_result(c->aio[i]), 0);
}

static void crowd_close(crowd *c)
{
	nng_close(c->sock);
	for (int i = 0; i < c->n; i++)
		nng_aio_free(c->aio[i]);
	c->n = 0;
}

/* ---- what must stay prompt ---- */

static const char *const broker_flags[] = {"--sync", "none", NULL};

static void enqueue_promptly(nq_client *c)
{
	char id[NQ_ID_MAX];
	uint64_t t0 = itest_now_ms();
	assert_int_equal(itest_enqueue(c, "other", "t", "x", id), 0);
	uint64_t ms = itest_now_ms() - t0;
	print_message("enqueue answered in %llu ms\n", (unsigned long long)ms);
	assert_true(ms < PROMPT_MS);
}

/* Starts the broker with flags, enqueues a job no worker takes, and parks
 * n waits for it on one connection; *c is a client with a 3 s timeout. */
static void park_waits(
    itest_env *e, const char *const *flags, int n, nq_client **c, crowd *w)
{
	char id[NQ_ID_MAX];
	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 3000, c), 0);
	assert_int_equal(itest_enqueue(*c, "nobody", "t", "x", id), 0);
	crowd_open(w, e->api_url);
	for (int i = 0; i < n; i++)
		crowd_send(w, wait_msg(id));
	wait_metric(e, "nq_api_parked", n, false);
}

static void test_availability_parked_waits_leave_room_for_enqueues(void **state)
{
	itest_env *e = *state;
	nq_client *c, *late;
	crowd w;

	park_waits(e, broker_flags, CROWD, &c, &w);

	/* A client that connects now, and one that was there already. */
	assert_int_equal(itest_client(e, 3000, &late), 0);
	enqueue_promptly(late);
	enqueue_promptly(c);
	crowd_close(&w);
	nq_client_close(late);
	nq_client_close(c);
	itest_pass(e);
}

static void test_availability_wait_of_closed_connection_is_dropped(void **state)
{
	itest_env *e = *state;
	nq_client *c;
	crowd w;

	park_waits(e, broker_flags, 50, &c, &w);
	crowd_close(&w);
	/* Long before the waits' own deadline (50 s). */
	wait_metric(e, "nq_api_parked", 0, true);
	nq_client_close(c);
	itest_pass(e);
}

static void test_availability_parked_waits_are_bounded(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--sync", "none", "--max-parked", "10", NULL};
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job *job = NULL;
	crowd w;

	park_waits(e, flags, 10, &c, &w);
	/* The eleventh is refused at once, and says why. */
	assert_int_equal(itest_enqueue(c, "nobody", "t", "x", id), 0);
	assert_int_equal(nq_wait(c, id, 20000, &job), NQ_EEXHAUSTED);
	print_message("broker says: %s\n", nq_client_last_error(c));
	assert_non_null(strstr(nq_client_last_error(c), "--max-parked"));
	wait_metric(e, "nq_parked_refused_total", 1, false);
	crowd_close(&w);
	nq_client_close(c);
	itest_pass(e);
}

/* ---- a client that never reads ---- */

/* SP over TCP: the REQ side's greeting, then messages, each a 64-bit
 * length and a body whose first 4 bytes are the request id. */
static void sp_send_request(int fd, uint32_t rid, Nq__V1__Request *req)
{
	nng_msg *m = request_msg(req);
	size_t len = nng_msg_len(m) + 4;
	uint8_t head[12];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	rid |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(rid >> (24 - 8 * i));
	assert_int_equal(write(fd, head, sizeof head), sizeof head);
	assert_int_equal(write(fd, nng_msg_body(m), nng_msg_len(m)),
	    (ssize_t)nng_msg_len(m));
	nng_msg_free(m);
}

static void test_availability_unread_replies_hold_no_api(void **state)
{
	itest_env *e = *state;
	const char *flags[] = {"--sync", "none", "--max-payload", "2m",
	    "--reply-timeout", "2s", NULL};
	static char big[1 << 20];
	const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	char id[NQ_ID_MAX];
	bool dup;
	nq_client *c;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 3000, &c), 0);
	memset(big, 'b', sizeof big);
	nq_job_spec spec = {.queue = "nobody",
	    .type = "t",
	    .payload = big,
	    .payload_len = sizeof big};
	assert_int_equal(nq_enqueue(c, &spec, id, &dup), NQ_OK);

	/* 200 gets of a 1 MiB job, and not one byte read back. */
	int fd = tcp_connect(addr_port(e->api_url), 4096);
	assert_int_equal(write(fd, hello, sizeof hello), sizeof hello);
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
	g.id = id;
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &g;
	for (uint32_t i = 0; i < CROWD; i++)
		sp_send_request(fd, i, &req);
	/* A few are served, the others wait their turn out of the pool. */
	wait_metric(e, "nq_requests_waiting", CROWD / 2, false);
	for (int i = 0; i < 5; i++)
		enqueue_promptly(c);
	/* Replies it does not take are dropped in time. */
	wait_metric(e, "nq_replies_unsent_total", 1, false);
	enqueue_promptly(c);
	close(fd);
	nq_client_close(c);
	itest_pass(e);
}

/* ---- heartbeats beside long-polls ---- */

static void test_availability_extend_answers_beside_parked_fetches(void **state)
{
	itest_env *e = *state;
	const char *const hb[] = {"hb"};
	char id[NQ_ID_MAX];
	nq_client *c;
	nq_job **jobs = NULL;
	size_t n = 0;
	static crowd f[3]; /* three workers' connections */

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(itest_client(e, 3000, &c), 0);
	assert_int_equal(itest_enqueue(c, "hb", "t", "x", id), 0);
	assert_int_equal(nq_fetch(c, "w", hb, 1, 1, 0, 30000, &jobs, &n), 0);
	assert_int_equal(n, 1);
	for (int i = 0; i < 3; i++)
		crowd_open(&f[i], e->work_url);
	for (int i = 0; i < FETCH_CROWD; i++)
		crowd_send(&f[i % 3], fetch_msg());
	wait_metric(e, "nq_work_parked", FETCH_CROWD, false);

	for (int i = 0; i < 5; i++) {
		uint64_t t0 = itest_now_ms();
		assert_int_equal(nq_extend(c, nq_job_id(jobs[0]),
		                     nq_job_lease_token(jobs[0]), 30000),
		    NQ_OK);
		uint64_t ms = itest_now_ms() - t0;
		print_message(
		    "extend answered in %llu ms\n", (unsigned long long)ms);
		assert_true(ms < PROMPT_MS);
	}
	nq_jobs_free(jobs, n);
	for (int i = 0; i < 3; i++)
		crowd_close(&f[i]);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_availability_parked_waits_leave_room_for_enqueues,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_availability_wait_of_closed_connection_is_dropped,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_availability_parked_waits_are_bounded, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_availability_unread_replies_hold_no_api, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_availability_extend_answers_beside_parked_fetches,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
