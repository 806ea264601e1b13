/*
 * Connections cannot make the broker hold memory without bound before it
 * knows who they are: each socket takes messages only as large as what it
 * carries, at most --max-connections connections, and an api or work
 * connection that sends no whole request for --conn-idle-timeout is
 * closed, which a libnq client does not notice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "nq/v1/api.pb-c.h"
#include "nqi/limits.h"

#define ATTACKERS 50
#define CAP 4
#define POLL_MS 10000
/* What a broker holds besides the messages: its store map, arenas, nng's
 * threads; measured before the crowd comes, this is what may differ. */
#define RSS_SLACK (48u << 20)

/* The broker's message limits under the flags of these tests. */
#define T_PAYLOAD (64u << 10)
#define T_RESULT (64u << 10)
#define API_MAX ((size_t)(T_PAYLOAD + T_RESULT) * 8 + (16u << 20))
#define RESULTS_MAX nqi_results_recv_max(T_RESULT)

static const char *const limited_flags[] = {"--sync", "none", "--max-payload",
    "64k", "--max-result", "64k", "--max-connections", "4", NULL};

/* SP greetings: the peer's protocol is REQ (48) on api, PUSH (80) on
 * results. */
static const uint8_t hello_req[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
static const uint8_t hello_push[8] = {0, 'S', 'P', 0, 0, 0x50, 0, 0};

static int addr_port(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	return colon ? atoi(colon + 1) : 0;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Writes what it can of buf; false once the peer closed. */
static bool send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* A connection that greets, announces a message of len bytes and sends
 * all of it but its last byte; -1 when the broker closed it first. */
static int partial_message(int port, const uint8_t hello[8], size_t len)
{
	static char body[32u << 20];
	uint8_t head[8];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	int fd = tcp_connect(port);
	if (!send_all(fd, hello, 8) || !send_all(fd, head, sizeof head) ||
	    !send_all(fd, body, len - 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* True once the peer closed fd (within timeout_ms). */
static bool closed_by_peer(int fd, int timeout_ms)
{
	char buf[64];
	uint64_t end = itest_now_ms() + (uint64_t)timeout_ms;
	while (itest_now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = recv(fd, buf, sizeof buf, 0);
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return true;
		}
	}
	return false;
}

static uint64_t rss_bytes(pid_t pid)
{
	char path[64], *text = NULL, *line;
	size_t len;
	uint64_t kb = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	assert_int_equal(itest_read_file(path, &text, &len), 0);
	if ((line = strstr(text, "VmRSS:")))
		kb = strtoull(line + 6, NULL, 10);
	free(text);
	return kb * 1024;
}

/* The value of sample (name and labels, as exposed) of /metrics; -1 when
 * it is missing. */
static double metric(const itest_env *e, const char *sample)
{
	static char buf[1 << 17];
	const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	int fd = tcp_connect(addr_port(e->http_addr));
	size_t len = 0, k = strlen(sample);
	ssize_t n;
	assert_true(send_all(fd, req, sizeof req - 1));
	while (len < sizeof buf - 1 &&
	       (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, sample, k) == 0 && line[k] == ' ')
			return atof(line + k + 1);
	return -1;
}

static void wait_metric(const itest_env *e, const char *sample, double want)
{
	uint64_t end = itest_now_ms() + POLL_MS;
	double v;
	while ((v = metric(e, sample)) < want && itest_now_ms() < end)
		itest_sleep_ms(50);
	print_message("%s = %g\n", sample, v);
	assert_true(v >= want);
}

/* Waits until samples a and b add up to want. */
static void wait_metric_sum(
    const itest_env *e, const char *a, const char *b, double want)
{
	uint64_t end = itest_now_ms() + POLL_MS;
	double va, vb;
	while ((va = metric(e, a)) + (vb = metric(e, b)) < want &&
	       itest_now_ms() < end)
		itest_sleep_ms(50);
	print_message("%s = %g, %s = %g\n", a, va, b, vb);
	assert_true(va + vb >= want);
}

/* A job on queue q runs on the worker and succeeds. */
static void job_runs(nq_client *c, const char *q)
{
	char id[NQ_ID_MAX];
	assert_int_equal(itest_enqueue(c, q, "echo", "hi", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, NULL), 0);
}

/* ---- the limits are what the senders put in one message ---- */

static void fill(char *s, size_t n, char ch)
{
	memset(s, ch, n);
	s[n] = '\0';
}

/* The longest Extend libnq sends (NQI_LEASES_MAX leases, every field at
 * its largest) fits the work socket's limit. */
static void test_conn_limits_full_extend_fits_the_work_socket(void **state)
{
	(void)state;
	static char token[513], worker[129];
	static Nq__V1__LeaseRef refs[NQI_LEASES_MAX];
	static Nq__V1__LeaseRef *prefs[NQI_LEASES_MAX];
	fill(token, 512, 't');
	fill(worker, 128, 'w');
	for (int i = 0; i < NQI_LEASES_MAX; i++) {
		nq__v1__lease_ref__init(&refs[i]);
		refs[i].id = "ffffffffffffffff";
		refs[i].lease_token = UINT64_MAX;
		prefs[i] = &refs[i];
	}
	Nq__V1__ExtendRequest x = NQ__V1__EXTEND_REQUEST__INIT;
	x.leases = prefs;
	x.n_leases = NQI_LEASES_MAX;
	x.lease_ms = UINT64_MAX;
	x.worker_id = worker;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	req.version = UINT32_MAX;
	req.token = token;
	req.body_case = NQ__V1__REQUEST__BODY_EXTEND;
	req.extend = &x;
	size_t n = nq__v1__request__get_packed_size(&req);
	print_message("full extend: %zu bytes, limit %zu\n", n,
	    (size_t)NQI_WORK_RECV_MAX);
	assert_true(n <= NQI_WORK_RECV_MAX);
}

/* The largest CompletionBatch libnq's worker builds fits the results
 * socket's limit: NQI_BATCH_RESULT_BYTES of errors in all but the last
 * completion, then one with a result of max_result and the longest error,
 * every other field at its largest. */
static void test_conn_limits_full_batch_fits_the_results_socket(void **state)
{
	(void)state;
	enum { N = NQI_BATCH_COMPLETIONS_MAX };
	static char token[513], worker[129], big_err[NQI_ERROR_TEXT_MAX + 1];
	static char small_err[NQI_BATCH_RESULT_BYTES / (N - 1) + 1];
	static uint8_t result[T_RESULT];
	static Nq__V1__Completion items[N];
	static Nq__V1__Completion *pitems[N];
	fill(token, 512, 't');
	fill(worker, 128, 'w');
	fill(big_err, NQI_ERROR_TEXT_MAX, 'e');
	fill(small_err, sizeof small_err - 1, 'e');
	for (int i = 0; i < N; i++) {
		Nq__V1__Completion *c = &items[i];
		nq__v1__completion__init(c);
		c->id = "ffffffffffffffff";
		c->lease_token = c->retry_after_ms = UINT64_MAX;
		c->started_us = c->finished_us = UINT64_MAX;
		c->outcome = NQ__V1__OUTCOME__OUTCOME_RELEASED;
		c->non_retryable = true;
		c->error = i == N - 1 ? big_err : small_err;
		c->result.data = result;
		c->result.len = i == N - 1 ? sizeof result : 0;
		pitems[i] = c;
	}
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	b.version = UINT32_MAX;
	b.token = token;
	b.worker_id = worker;
	b.completions = pitems;
	b.n_completions = N;
	size_t n = nq__v1__completion_batch__get_packed_size(&b);
	print_message("full batch: %zu bytes, limit %zu\n", n, RESULTS_MAX);
	assert_true(n <= RESULTS_MAX);
}

/* ---- a crowd of partial messages ---- */

static void test_conn_limits_partial_messages_hold_bounded_memory(void **state)
{
	itest_env *e = *state;
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	static int fds[2 * ATTACKERS];
	nq_client *c;
	itest_proc *w;

	assert_int_equal(itest_broker_start(e, limited_flags), 0);
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	job_runs(c, "q"); /* every socket has a connection of ours now */
	uint64_t before = rss_bytes(e->broker->pid);

	for (int i = 0; i < ATTACKERS; i++) {
		fds[i] =
		    partial_message(addr_port(e->api_url), hello_req, API_MAX);
		fds[ATTACKERS + i] = partial_message(
		    addr_port(e->results_url), hello_push, RESULTS_MAX);
	}
	itest_sleep_ms(300);
	uint64_t after = rss_bytes(e->broker->pid);
	/* At most CAP connections per socket, each holding one message of
	 * the socket's limit. */
	uint64_t bound =
	    before + (uint64_t)CAP * (API_MAX + RESULTS_MAX) + RSS_SLACK;
	print_message("broker RSS %llu MiB before, %llu MiB after; bound "
	              "%llu MiB\n",
	    (unsigned long long)(before >> 20),
	    (unsigned long long)(after >> 20),
	    (unsigned long long)(bound >> 20));
	assert_true(after <= bound);
	/* On api the crowd beyond the cap is refused; a newcomer takes the
	 * place of a connection only once that has been open for a second
	 * without a whole request, which a slow machine may reach. */
	wait_metric_sum(e, "nq_connections_refused_total{socket=\"api\"}",
	    "nq_connections_evicted_total{socket=\"api\"}",
	    ATTACKERS - CAP + 1);
	wait_metric(e, "nq_connections_refused_total{socket=\"results\"}",
	    ATTACKERS - CAP);
	/* The connections held before the crowd still serve. */
	job_runs(c, "q");
	for (int i = 0; i < 2 * ATTACKERS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	nq_client_close(c);
	itest_pass(e);
}

static void test_conn_limits_message_above_results_limit_is_refused(
    void **state)
{
	itest_env *e = *state;
	const char *wflags[] = {"--queues", "q", "--handler", "echo=cat", NULL};
	uint8_t head[8];
	nq_client *c;
	itest_proc *w;

	assert_int_equal(itest_broker_start(e, limited_flags), 0);
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	for (int i = 0; i < 8; i++)
		head[i] =
		    (uint8_t)((uint64_t)(RESULTS_MAX + 1) >> (56 - 8 * i));
	int fd = tcp_connect(addr_port(e->results_url));
	assert_true(send_all(fd, hello_push, sizeof hello_push));
	assert_true(send_all(fd, head, sizeof head));
	assert_true(closed_by_peer(fd, 5000));
	close(fd);
	job_runs(c, "q");
	nq_client_close(c);
	itest_pass(e);
}

/* ---- the idle rule ---- */

static void test_conn_limits_idle_connection_is_closed_and_client_goes_on(
    void **state)
{
	itest_env *e = *state;
	const char *flags[] = {
	    "--sync", "none", "--conn-idle-timeout", "500ms", NULL};
	nq_client *c;
	nq_broker_stats bs;
	itest_qstats qs;

	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	nq_job *job = NULL;
	/* A job leased through c, held while the idle rule has its turns. */
	assert_int_equal(itest_lease_one(c, "q", 30000, &job), 0);
	/* A connection that trickles a message in is let go too. */
	int fd = partial_message(addr_port(e->api_url), hello_req, 4096);
	assert_true(fd >= 0);
	assert_true(closed_by_peer(fd, 5000));
	close(fd);
	wait_metric(e, "nq_connections_idle_closed_total{socket=\"api\"}", 2);
	/* The client's connection was closed while idle; it redials. */
	assert_int_equal(itest_queue_stats(c, "q", &qs, &bs), 0);
	char id[NQ_ID_MAX];
	assert_int_equal(itest_enqueue(c, "other", "t", "x", id), 0);
	/* The work connection holds a lease: it stays, and so does the
	 * lease. */
	assert_int_equal(
	    metric(e, "nq_connections_idle_closed_total{socket=\"work\"}"), 0);
	nq_completion done = {.id = nq_job_id(job),
	    .lease_token = nq_job_lease_token(job),
	    .outcome = NQ_OUTCOME_SUCCEEDED};
	assert_int_equal(nq_complete(c, "itest", &done, 1), NQ_OK);
	nq_job *got = NULL;
	assert_int_equal(
	    itest_wait_state(c, nq_job_id(job), NQ_STATE_SUCCEEDED, 5000, &got),
	    0);
	assert_int_equal(nq_job_attempt(got), 1);
	nq_job_free(got);
	nq_job_free(job);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conn_limits_full_extend_fits_the_work_socket),
	    cmocka_unit_test(
	        test_conn_limits_full_batch_fits_the_results_socket),
	    cmocka_unit_test_setup_teardown(
	        test_conn_limits_partial_messages_hold_bounded_memory,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_conn_limits_message_above_results_limit_is_refused,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_conn_limits_idle_connection_is_closed_and_client_goes_on,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
