/*
 * What nqctl's exit status says, and how soon: 1 with the broker's own
 * message when the broker answered that it cannot serve (its store cannot
 * commit), 2 at once for an address nq cannot dial (naming it), 3 at once
 * for a port that refuses the connection and within the timeout for one
 * that never answers. And `enqueue --wait` says the job's id before it
 * waits, so an interrupted wait does not lose the job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static void test_nqctl_exits_unavailable_broker_exits_1_with_its_message(
    void **state)
{
	itest_env *e = *state;
	char full[PATH_MAX], env[PATH_MAX + 32];
	itest_run r;
	itest_path(e, "disk-full", full, sizeof full);
	snprintf(env, sizeof env, "NQ_FAULT_COMMIT_FILE=%s", full);
	assert_int_equal(
	    itest_broker_spawn(e, NULL, (const char *[]){env, NULL}), 0);
	assert_int_equal(itest_broker_wait_ready(e, 20000), 0);

	/* The store cannot commit: the broker answers UNAVAILABLE. */
	FILE *f = fopen(full, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "enqueue", "q", "t", NULL), 0);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "service unavailable: "));
	assert_null(strstr(r.err, "is the broker running"));
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "enqueue", "q", "t", NULL), 0);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "\"UNAVAILABLE\""));
	itest_run_free(&r);
	itest_pass(e);
}

/* nqctl with flag url and a command that dials it: exit 2 within 1 s,
 * the URL in the message. */
static void expect_bad_url(
    itest_env *e, const char *flag, const char *url, const char *const *cmd)
{
	const char *args[16] = {flag, url};
	size_t n = 2;
	itest_run r;
	for (; *cmd; cmd++)
		args[n++] = *cmd;
	args[n] = NULL;
	assert_int_equal(itest_nqctl_argv(e, 10000, args, &r), 0);
	if (r.code != 2 || !strstr(r.err, url) || r.elapsed_ms >= 1000)
		fprintf(stderr, "%s %s: exit %d after %llu ms: %s\n", flag, url,
		    r.code, (unsigned long long)r.elapsed_ms, r.err);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, url));
	assert_true(r.elapsed_ms < 1000);
	itest_run_free(&r);
}

static void test_nqctl_exits_bad_url_is_a_usage_error_at_once(void **state)
{
	itest_env *e = *state;
	static const char *const bad[] = {"http://127.0.0.1:7400",
	    "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0",
	    "tcp://:7400", "tcp://127.0.0.1:74x0", "garbage", "ipc://", NULL};
	const char *stats[] = {"stats", NULL};
	const char *get[] = {"get", "00000000000000ff", NULL};
	for (size_t i = 0; bad[i]; i++) {
		expect_bad_url(e, "--api", bad[i], stats);
		expect_bad_url(e, "--work", bad[i], get);
		expect_bad_url(
		    e, "--dlq", bad[i], (const char *[]){"dlq", "stats", NULL});
		expect_bad_url(e, "--events", bad[i],
		    (const char *[]){"events", "--count", "1", NULL});
	}
	itest_pass(e);
}

static void test_nqctl_exits_refused_connection_exits_3_at_once(void **state)
{
	itest_env *e = *state;
	char url[ITEST_URL_MAX];
	itest_run r;
	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);
	/* The default timeout is 10 s: none of it is waited. */
	assert_int_equal(
	    itest_nqctl_argv(e, 15000,
	        (const char *[]){"--api", url, "enqueue", "q", "t", NULL}, &r),
	    0);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, url));
	assert_non_null(strcasestr(r.err, "refused"));
	assert_true(r.elapsed_ms < 2000);
	itest_run_free(&r);
	itest_pass(e);
}

/* A TCP port whose listener takes no connection: its backlog is full, so
 * the kernel drops further SYNs and a dial gets no answer at all. */
static int silent_port(int fds[3])
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fds[0] >= 0);
	assert_int_equal(bind(fds[0], (void *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fds[0], 0), 0);
	assert_int_equal(getsockname(fds[0], (void *)&sa, &sl), 0);
	for (int i = 1; i < 3; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fds[i] >= 0);
		connect(fds[i], (void *)&sa, sizeof sa);
	}
	itest_sleep_ms(100); /* the handshakes of those two are done */
	return ntohs(sa.sin_port);
}

static void test_nqctl_exits_silent_port_exits_3_within_the_timeout(
    void **state)
{
	itest_env *e = *state;
	char url[ITEST_URL_MAX];
	int fds[3];
	itest_run r;
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", silent_port(fds));
	assert_int_equal(itest_nqctl_argv(e, 15000,
	                     (const char *[]){"--api", url, "--timeout", "1s",
	                         "stats", NULL},
	                     &r),
	    0);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, url));
	assert_true(r.elapsed_ms >= 900 && r.elapsed_ms < 4000);
	itest_run_free(&r);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	itest_pass(e);
}

/* libnq itself: NQ_EINVAL for an address it cannot dial, NQ_ECONNECT at
 * once for a refused connection, NQ_EUNAVAIL only as an answer. */
static void test_nqctl_exits_libnq_tells_refused_from_bad(void **state)
{
	itest_env *e = *state;
	char url[ITEST_URL_MAX];
	nq_client *c = NULL;
	nq_job *job;
	nq_client_opts bad = {.api_url = "tcp://127.0.0.1:99999"};
	assert_int_equal(nq_client_open(&c, &bad), NQ_EINVAL);
	assert_null(c);

	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);
	nq_client_opts o = {.api_url = url};
	assert_int_equal(nq_client_open(&c, &o), NQ_OK);
	for (int i = 0; i < 2; i++) {
		uint64_t t0 = itest_now_ms();
		assert_int_equal(
		    nq_get(c, "00000000000000ff", &job), NQ_ECONNECT);
		assert_true(itest_now_ms() - t0 < 1000);
		assert_non_null(strstr(nq_client_last_error(c), url));
	}
	assert_int_equal(nq_client_set_dlq_url(c, "tcp://x"), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(c), "tcp://x"));
	nq_client_close(c);
	itest_pass(e);
}

/* A socket whose first dial was refused dials again on the next request:
 * the client works once the broker is there. */
static void test_nqctl_exits_libnq_dials_again_after_a_refusal(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_client *c;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), NQ_ECONNECT);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* The first "enqueued ID" line of the log; 0 once it is there. */
static int wait_enqueued(const char *log, char id[NQ_ID_MAX])
{
	uint64_t until = itest_now_ms() + 10000;
	while (itest_now_ms() < until) {
		char *text = NULL;
		const char *at;
		if (itest_read_file(log, &text, NULL) == 0 &&
		    (at = strstr(text, "enqueued ")) != NULL &&
		    sscanf(at, "enqueued %16s", id) == 1 && itest_is_id(id)) {
			free(text);
			return 0;
		}
		free(text);
		itest_sleep_ms(20);
	}
	return -1;
}

static void test_nqctl_exits_enqueue_wait_says_the_id_first(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	itest_proc *p;
	itest_run r;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	/* No worker runs: the wait lasts until it is interrupted. */
	const char *argv[] = {ITEST_NQCTL_PATH, "--api", e->api_url, "enqueue",
	    "q", "t", "--wait", NULL};
	assert_int_equal(itest_spawn(e, "enqueue-wait", argv, NULL, &p), 0);
	assert_int_equal(wait_enqueued(p->log, id), 0);
	assert_true(itest_alive(p));
	assert_int_equal(itest_signal(p, SIGINT), 0);
	assert_int_equal(itest_wait_exit(p, 5000), 0);

	/* The id is the job's. */
	assert_int_equal(itest_nqctl(e, 10000, &r, "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, id));
	itest_run_free(&r);
	itest_pass(e);
}

/* The "Exit status:" paragraph at the end of a --help, on one line. */
static char *exit_help(char *out)
{
	char *p = strstr(out, "Exit status:");
	assert_non_null(p);
	for (char *c = p; *c; c++)
		if (*c == '\n')
			*c = ' ';
	return p;
}

/* --help lists every exit status with what README says of it, the same
 * in nqctl and nq-bench. */
static void test_nqctl_exits_help_lists_the_exit_statuses(void **state)
{
	itest_env *e = *state;
	static const char *const help[] = {"--help", NULL};
	static const char *const says[] = {"0 ok",
	    "1 the operation failed (also when the service answered that it "
	    "cannot serve now",
	    "2 usage error (also an address nq cannot dial",
	    "3 the service could not be reached (no connection, or no answer "
	    "within --timeout)"};
	itest_run ctl, bench;
	assert_int_equal(itest_nqctl_argv(e, 10000, help, &ctl), 0);
	assert_int_equal(ctl.code, 0);
	char *text = exit_help(ctl.out);
	for (size_t i = 0; i < sizeof says / sizeof *says; i++)
		if (!strstr(text, says[i]))
			fail_msg(
			    "nqctl --help: no \"%s\" in: %s", says[i], text);
	assert_int_equal(
	    itest_tool_argv(e, ITEST_BENCH_PATH, 10000, help, &bench), 0);
	assert_int_equal(bench.code, 0);
	assert_string_equal(exit_help(bench.out), text);
	itest_run_free(&ctl);
	itest_run_free(&bench);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_unavailable_broker_exits_1_with_its_message,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_bad_url_is_a_usage_error_at_once, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_refused_connection_exits_3_at_once,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_silent_port_exits_3_within_the_timeout,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_libnq_tells_refused_from_bad, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_libnq_dials_again_after_a_refusal, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_enqueue_wait_says_the_id_first, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nqctl_exits_help_lists_the_exit_statuses, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
