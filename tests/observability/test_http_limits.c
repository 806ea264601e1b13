/*
 * HTTP endpoints under a crowd: idle and half-sent connections are capped
 * and timed out, so that they can neither take the broker's descriptors
 * (its api keeps answering) nor a worker's (its jobs keep starting); every
 * pipelined request gets a status line; and a job that a worker cannot
 * start for want of descriptors goes back to its queue with no attempt
 * spent, logged NQ-FD-EXHAUSTED once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nqi/http.h"
#include "obs.h"

#define CROWD 2000
#define HALF_HEADER "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "

/* The test opens thousands of sockets: its own limit up to the hard one. */
static void raise_own_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Sets both descriptor limits of process pid. */
static void set_nofile(pid_t pid, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {soft, hard};
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0);
}

/*
 * Opens n connections to port without waiting for them (a crowd the
 * server may not even accept), and sends every other one half a request
 * header. The sockets go into fds; -1 where none could be made.
 */
static void crowd_open(int port, int *fds, int n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fds[i] >= 0)
			connect(fds[i], (struct sockaddr *)&sa, sizeof sa);
	}
	itest_sleep_ms(300);
	for (int i = 0; i < n; i += 2)
		if (fds[i] >= 0 &&
		    write(fds[i], HALF_HEADER, strlen(HALF_HEADER)) < 0)
			(void)0; /* not connected (refused, or still queued) */
}

static void crowd_close(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* GETs path on fresh connections until one is served, at most 15 s;
 * the last status (-1: none answered). */
static int get_until(const char *addr, const char *path)
{
	uint64_t until = itest_now_ms() + 15000;
	int st = -1;
	for (;;) {
		char *body = NULL;
		if (obs_http_get_quiet(addr, path, &st, &body) != 0)
			st = -1;
		free(body);
		if (st == 200 || itest_now_ms() >= until)
			return st;
		itest_sleep_ms(100);
	}
}

/* GET on the kept-alive connection fd; the status, -1 on failure. The
 * body goes to *body (the caller frees it). */
static int get_on(int fd, const char *addr, const char *path, char **body)
{
	int st = -1;
	*body = NULL;
	return obs_http_get_on(fd, addr, path, &st, body) == 0 ? st : -1;
}

static double sample(const char *text, const char *name)
{
	double v = -1;
	return obs_sample(text, name, &v) == 0 ? v : -1;
}

static void test_http_limits_idle_crowd_leaves_the_broker_serving(void **st)
{
	itest_env *e = *st;
	static int crowd[CROWD];
	nq_client *c = NULL;
	char id[NQ_ID_MAX], *body = NULL;
	/* Long enough that a crowd accepted slowly (a loaded machine, a
	 * sanitizer build) fills the cap before its first ones time out. */
	const char *flags[] = {"--http-timeout", "5s", NULL};
	raise_own_nofile();
	assert_int_equal(itest_broker_start(e, flags), 0);
	/* The limit a broker often runs with: the crowd alone is twice it. */
	set_nofile(e->broker->pid, 1024, 1024);
	const char *addr = e->http_addr;
	int scrape = obs_http_connect(addr); /* kept alive through it */
	assert_true(scrape >= 0);
	assert_int_equal(get_on(scrape, addr, "/healthz", &body), 200);
	free(body);
	crowd_open(itest_url_port(addr), crowd, CROWD);
	/* The cap binds, and says so: never more open than it, and (a
	 * loaded machine may take a moment to hand the crowd over, and the
	 * first may time out meanwhile) nearly all of it in use. */
	double max = -1, open = -1, most = -1;
	for (uint64_t end = itest_now_ms() + 30000;; itest_sleep_ms(100)) {
		assert_int_equal(get_on(scrape, addr, "/metrics", &body), 200);
		max = sample(body, "nq_http_connections_max");
		open = sample(body, "nq_http_connections");
		most = open > most ? open : most;
		if (open == max || itest_now_ms() >= end)
			break;
		free(body);
	}
	fprintf(stderr, "http_limits: at most %.0f of %.0f connections open\n",
	    most, max);
	assert_true(max == 256);
	/* accepts racing on MHD's threads may each pass the cap by one */
	assert_true(most <= max + NQI_HTTP_THREADS - 1 && most >= max - 16);
	assert_true(sample(body, "nq_http_refused_total") >= 1);
	free(body);
	/* The kernel retries the connects it dropped for 3 s: by then the
	 * crowd has taken what it can. The scrape connection stays busy, so
	 * that it is not idle. */
	for (int i = 0; i < 6; i++) {
		itest_sleep_ms(500);
		assert_int_equal(get_on(scrape, addr, "/healthz", &body), 200);
		free(body);
	}
	/* The api still answers, on a new connection. */
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "crowd", "t", "x", id), 0);
	assert_int_equal(get_on(scrape, addr, "/metrics", &body), 200);
	assert_true(sample(body, "nq_http_refused_total") >= max);
	free(body);

	/* Once the idle ones timed out, a new connection is served (the
	 * crowd's connects that the kernel retried compete for the room). */
	assert_int_equal(get_until(addr, "/readyz"), 200);
	assert_int_equal(get_until(addr, "/metrics"), 200);
	close(scrape);
	assert_int_equal(itest_enqueue(c, "crowd", "t", "y", id), 0);
	crowd_close(crowd, CROWD);
	nq_client_close(c);
	itest_pass(e);
}

/* The resident memory of process pid, in KiB; -1 when unknown. */
static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Reads from fd until a status line came (at most ms); its code, or -1. */
static int status_of(int fd, uint64_t ms)
{
	char buf[4096];
	size_t n = 0;
	int code = -1;
	for (uint64_t end = itest_now_ms() + ms;
	     code < 0 && n < sizeof buf - 1 && itest_now_ms() < end;) {
		ssize_t got = read(fd, buf + n, sizeof buf - 1 - n);
		if (got == 0)
			break;
		if (got < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (got > 0)
			n += (size_t)got;
		buf[n] = '\0';
		if (sscanf(buf, "HTTP/1.1 %d", &code) != 1)
			code = -1;
	}
	return code;
}

static int connect_send(const char *addr, const char *req, size_t len)
{
	int fd = obs_http_connect(addr);
	if (fd >= 0 && write(fd, req, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* An enqueue over HTTP on new connections until one is served, at most
 * 15 s: its status. */
static int post_until(const char *addr)
{
	int st = -1;
	for (uint64_t end = itest_now_ms() + 15000;; itest_sleep_ms(100)) {
		char *resp = NULL;
		if (obs_http_request(addr, "POST", "/v1/queues/hostile/jobs",
		        "{\"type\":\"t\",\"payload\":{\"a\":1}}", &st,
		        &resp) != 0)
			st = -1;
		free(resp);
		if (st == 200 || itest_now_ms() >= end)
			return st;
	}
}

#define API_WAITS 40
#define DRIPS 16
#define DRIP_REQ                                                               \
	"POST /v1/queues/hostile/jobs HTTP/1.1\r\nHost: x\r\n"                 \
	"Content-Length: 12\r\n\r\n{\"type\":\"t\"}"

/*
 * The JSON API under hostile clients at once: waits parked over HTTP (their
 * connections suspended), a header too big, headers dripped byte by byte
 * and a crowd of 2,000 half-sent requests. The NNG api keeps serving
 * throughout, HTTP serves again once the crowd timed out, the waits are
 * answered at their timeout, and the broker's memory stays bounded.
 */
static void test_http_limits_api_hostile_clients_leave_both_serving(void **st)
{
	itest_env *e = *st;
	static int crowd[CROWD];
	static char big[80000];
	int waits[API_WAITS], drips[DRIPS];
	nq_client *c = NULL;
	char id[NQ_ID_MAX], req[256];
	bool dup;
	const char *flags[] = {"--http-timeout", "3s", NULL};
	raise_own_nofile();
	assert_int_equal(itest_broker_start(e, flags), 0);
	set_nofile(e->broker->pid, 1024, 1024);
	const char *addr = e->http_addr;
	assert_int_equal(itest_client(e, 5000, &c), 0);
	nq_job_spec s = {.queue = "hostile", .type = "t", .delay_ms = 3600000};
	assert_int_equal(nq_enqueue(c, &s, id, &dup), 0);
	assert_int_equal(post_until(addr), 200);
	long rss0 = rss_kib(e->broker->pid);
	int n = snprintf(req, sizeof req,
	    "GET /v1/jobs/%s/wait?timeout=8s HTTP/1.1\r\nHost: x\r\n\r\n", id);
	for (int i = 0; i < API_WAITS; i++)
		assert_true(
		    (waits[i] = connect_send(addr, req, (size_t)n)) >= 0);
	/* A header past the connection's memory: 431, not a crash. */
	n = snprintf(
	    big, sizeof big, "GET /v1/queues HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'a', sizeof big - (size_t)n - 5);
	memcpy(big + sizeof big - 5, "\r\n\r\n", 5);
	int fd = connect_send(addr, big, sizeof big - 1);
	if (fd >= 0) {
		assert_int_equal(status_of(fd, 5000), 431);
		close(fd);
	}
	for (int i = 0; i < DRIPS; i++)
		assert_true((drips[i] = obs_http_connect(addr)) >= 0);
	crowd_open(itest_url_port(addr), crowd, CROWD);
	/* Headers dripped a byte each 50 ms; the NNG api serves meanwhile. */
	for (size_t k = 0; k < strlen(DRIP_REQ); k++) {
		for (int i = 0; i < DRIPS; i++)
			if (drips[i] >= 0 &&
			    write(drips[i], &DRIP_REQ[k], 1) != 1)
				drips[i] = (close(drips[i]), -1);
		if (k % 20 == 0)
			assert_int_equal(
			    itest_enqueue(c, "hostile", "t", "x", id), 0);
		itest_sleep_ms(50);
	}
	/* Once the crowd's half requests timed out, HTTP serves again. */
	assert_int_equal(get_until(addr, "/v1/routes"), 200);
	assert_int_equal(post_until(addr), 200);
	int answered = 0;
	for (int i = 0; i < API_WAITS; i++) {
		answered += status_of(waits[i], 15000) == 200;
		close(waits[i]);
	}
	assert_int_equal(answered, API_WAITS);
	long rss1 = rss_kib(e->broker->pid);
	assert_true(rss0 > 0 && rss1 > 0);
	assert_true(rss1 - rss0 < 64 * 1024);
	for (int i = 0; i < DRIPS; i++)
		if (drips[i] >= 0)
			close(drips[i]);
	crowd_close(crowd, CROWD);
	assert_int_equal(itest_enqueue(c, "hostile", "t", "y", id), 0);
	nq_client_close(c);
	itest_pass(e);
}

static void test_http_limits_pipelined_requests_all_answered(void **st)
{
	itest_env *e = *st;
	static char reqs[600 * 48], buf[1 << 20];
	size_t len = 0, n = 0;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	for (int i = 0; i < 600; i++)
		len += (size_t)snprintf(reqs + len, sizeof reqs - len,
		    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	int fd = obs_http_connect(e->http_addr);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, reqs, len), (ssize_t)len);
	int lines = 0, ok = 0, limited = 0;
	while (lines < 600 && n < sizeof buf - 1) {
		ssize_t got = read(fd, buf + n, sizeof buf - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
		buf[n] = '\0';
		lines = ok = limited = 0;
		for (const char *p = buf; (p = strstr(p, "HTTP/1.1 "));
		     p += 9) {
			lines++;
			ok += strncmp(p + 9, "200", 3) == 0;
			limited += strncmp(p + 9, "503", 3) == 0 ||
			           strncmp(p + 9, "429", 3) == 0;
		}
	}
	close(fd);
	/* Each request its status line: served, or refused with one. */
	assert_int_equal(lines, 600);
	assert_int_equal(ok + limited, 600);
	itest_pass(e);
}

/* Starts nq-worker with the descriptor limits soft:hard (prlimit before
 * exec), serving HTTP on a free port, taking queue with concurrency and
 * running handler (TYPE=COMMAND). */
static itest_proc *worker_limited(itest_env *e, const char *soft_hard,
    const char *handler, const char *queue, const char *concurrency)
{
	char limit[64], ready[PATH_MAX];
	itest_proc *w = NULL;
	snprintf(limit, sizeof limit, "--nofile=%s", soft_hard);
	itest_path(e, "worker.limited.ready", ready, sizeof ready);
	const char *argv[] = {"/usr/bin/prlimit", limit, "--",
	    ITEST_WORKER_PATH, "--work", e->work_url, "--results",
	    e->results_url, "--ready-file", ready, "--http", "127.0.0.1:0",
	    "--handler", handler, "--queues", queue, "--concurrency",
	    concurrency, NULL};
	assert_int_equal(itest_spawn(e, "worker.limited", argv, NULL, &w), 0);
	assert_int_equal(itest_wait_bound(w, 20000), 0);
	return w;
}

/* How often needle is in the file at path. */
static int count_in_file(const char *path, const char *needle)
{
	char *text = NULL;
	int n = 0;
	if (itest_read_file(path, &text, NULL) != 0)
		return -1;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	free(text);
	return n;
}

static void test_http_limits_worker_crowd_leaves_jobs_running(void **st)
{
	itest_env *e = *st;
	static int crowd[500];
	char ids[20][NQ_ID_MAX];
	nq_client *c = NULL;
	raise_own_nofile();
	assert_int_equal(itest_broker_start(e, NULL), 0);
	/* 160 descriptors: 64 + 8 per slot for the jobs, HTTP gets the rest */
	itest_proc *w = worker_limited(e, "160:160", "t=cat", "fdq", "4");
	assert_int_equal(count_in_file(w->log, "NQ-HTTP-CAP-LOWERED"), 1);
	char waddr[ITEST_URL_MAX];
	assert_int_equal(itest_bound_url(w, "http", waddr, sizeof waddr), 0);
	crowd_open(itest_url_port(waddr), crowd, 500);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(itest_enqueue(c, "fdq", "t", "x", ids[i]), 0);
	for (int i = 0; i < 20; i++) {
		nq_job *j = NULL;
		assert_int_equal(
		    itest_wait_state(c, ids[i], NQ_STATE_SUCCEEDED, 20000, &j),
		    0);
		assert_int_equal(nq_job_attempt(j), 1);
		nq_job_free(j);
	}
	assert_int_equal(count_in_file(w->log, "Too many open files"), 0);
	assert_int_equal(count_in_file(w->log, "NQ-FD-EXHAUSTED"), 0);
	crowd_close(crowd, 500);
	nq_client_close(c);
	itest_pass(e);
}

/* The lowest descriptor number process pid does not use: a soft limit
 * there leaves it none to open. */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	static bool used[65536];
	struct dirent *de;
	memset(used, 0, sizeof used);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' &&
		    atoi(de->d_name) < 65536)
			used[atoi(de->d_name)] = true;
	closedir(d);
	int fd = 0;
	while (used[fd])
		fd++;
	return fd;
}

static void test_http_limits_job_without_descriptors_released(void **st)
{
	itest_env *e = *st;
	const char *flags[] = {"--handler", "t=cat", "--queues", "nofd", NULL};
	itest_proc *w = NULL;
	nq_client *c = NULL;
	nq_job *j = NULL;
	char id[NQ_ID_MAX];
	struct rlimit was;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(itest_wait_bound(w, 20000), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	/* The worker runs jobs; then it is left no descriptor to open. */
	assert_int_equal(itest_enqueue(c, "nofd", "t", "warm", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, NULL), 0);
	assert_int_equal(prlimit(w->pid, RLIMIT_NOFILE, NULL, &was), 0);
	set_nofile(w->pid, (rlim_t)lowest_free_fd(w->pid), was.rlim_max);
	nq_job_spec s = {.queue = "nofd",
	    .type = "t",
	    .payload = "x",
	    .payload_len = 1,
	    .max_attempts = 1};
	bool dup;
	assert_int_equal(nq_enqueue(c, &s, id, &dup), 0);
	uint64_t until = itest_now_ms() + 10000;
	while (count_in_file(w->log, "NQ-JOB-RELEASED") < 3 &&
	       itest_now_ms() < until)
		itest_sleep_ms(50);
	/* Given back again and again, never failed: one attempt was all it
	 * had. */
	assert_true(count_in_file(w->log, "NQ-JOB-RELEASED") >= 3);
	assert_int_equal(count_in_file(w->log, "NQ-FD-EXHAUSTED"), 1);
	assert_int_equal(count_in_file(w->log, "NQ-JOB-FAILED"), 0);
	assert_int_equal(nq_get(c, id, &j), 0);
	assert_false(nq_state_is_final(nq_job_state(j)));
	nq_job_free(j);
	set_nofile(w->pid, was.rlim_cur, was.rlim_max);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, &j), 0);
	assert_int_equal(nq_job_attempt(j), 1);
	nq_job_free(j);
	assert_int_equal(count_in_file(w->log, "NQ-FD-RECOVERED"), 1);
	assert_int_equal(count_in_file(w->log, "NQ-FD-EXHAUSTED"), 1);
	nq_client_close(c);
	itest_pass(e);
}

static void test_http_limits_commands_get_the_limit_the_worker_got(void **st)
{
	itest_env *e = *st;
	nq_client *c = NULL;
	nq_job *j = NULL;
	char id[NQ_ID_MAX];
	size_t len = 0;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	itest_proc *w =
	    worker_limited(e, "200:4096", "t=ulimit -n", "lim", "1");
	/* The worker raised its own limit to the hard one. */
	assert_int_equal(count_in_file(w->log, "nofile=4096"), 1);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "lim", "t", "", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 10000, &j), 0);
	const char *out = nq_job_result(j, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(out, "200\n", 4);
	nq_job_free(j);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name)                                                                \
	cmocka_unit_test_setup_teardown(name, itest_setup, itest_teardown)
	    T(test_http_limits_idle_crowd_leaves_the_broker_serving),
	    T(test_http_limits_pipelined_requests_all_answered),
	    T(test_http_limits_api_hostile_clients_leave_both_serving),
	    T(test_http_limits_worker_crowd_leaves_jobs_running),
	    T(test_http_limits_job_without_descriptors_released),
	    T(test_http_limits_commands_get_the_limit_the_worker_got),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
