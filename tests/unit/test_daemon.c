/* The shutdown watchdog: a stuck teardown ends the process with the
 * status it was armed with, and a disarmed watchdog never fires. Each
 * case runs in a child process, since firing ends the process. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nqi/daemon.h"
#include "nqi/url.h"
#include "nqi/util.h"

/* Runs fn in a child; returns its exit status, or -1 when it did not end
 * normally within 5 s. */
static int child_status(void (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(99);
	}
	uint64_t until = nqi_mono_ms() + 5000;
	int st = 0;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (nqi_mono_ms() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(10000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A teardown that never ends. */
static void stuck(void)
{
	nqi_shutdown_watchdog_arm(100, "test", 7);
	sleep(30);
}

/* A teardown that ends in time, then a process that ends on its own. */
static void finished(void)
{
	nqi_shutdown_watchdog_arm(100, "test", 7);
	nqi_shutdown_watchdog_disarm();
	usleep(400000);
	_exit(3);
}

/* Arming again moves the deadline. */
static void rearmed(void)
{
	nqi_shutdown_watchdog_arm(5000, "first", 7);
	nqi_shutdown_watchdog_arm(100, "second", 4);
	sleep(30);
}

static void test_daemon_watchdog_ends_a_stuck_teardown(void **st)
{
	uint64_t t0 = nqi_mono_ms();
	assert_int_equal(child_status(stuck), 7);
	assert_true(nqi_mono_ms() - t0 >= 100);
}

static void test_daemon_watchdog_disarmed_stays_quiet(void **st)
{
	assert_int_equal(child_status(finished), 3);
}

static void test_daemon_watchdog_rearm_moves_deadline(void **st)
{
	assert_int_equal(child_status(rearmed), 4);
}

static volatile sig_atomic_t hooked;

static void hup_hook(int sig, void *arg)
{
	(void)arg;
	hooked = sig;
}

/* A hook on SIGHUP runs, and the wait goes on to the stop signal. */
static void hup_then_term(void)
{
	nqi_signals_block();
	if (nqi_signals_on(SIGHUP, hup_hook, NULL) != 0)
		_exit(1);
	kill(getpid(), SIGUSR2); /* ignored */
	kill(getpid(), SIGHUP);
	kill(getpid(), SIGTERM);
	int sig = nqi_signals_wait();
	_exit(hooked == SIGHUP && sig == SIGTERM ? 5 : 2);
}

static void *wait_main(void *arg)
{
	*(int *)arg = nqi_signals_wait();
	return NULL;
}

/* nqi_signals_wake ends the wait of another thread with 0. */
static void woken(void)
{
	pthread_t t;
	int sig = -1;
	nqi_signals_block();
	pthread_create(&t, NULL, wait_main, &sig);
	usleep(50000);
	nqi_signals_wake(t);
	pthread_join(t, NULL);
	_exit(sig == 0 ? 6 : 2);
}

static void test_daemon_signals_hook_runs_and_stop_returns(void **st)
{
	assert_int_equal(child_status(hup_then_term), 5);
	assert_int_equal(child_status(woken), 6);
	/* A stop signal, or one not taken, has no hook. */
	assert_int_equal(nqi_signals_on(SIGTERM, hup_hook, NULL), NQ_EINVAL);
	assert_int_equal(nqi_signals_on(SIGSEGV, hup_hook, NULL), NQ_EINVAL);
}

static void test_daemon_url_check_refuses_what_cannot_be_dialed(void **st)
{
	static const char *const good[] = {"tcp://127.0.0.1:7400",
	    "tls+tcp://localhost:1", "tcp://[::1]:65535", "ws://h:80/nq",
	    "ipc:///tmp/nq.sock", "inproc://x"};
	static const char *const bad[] = {"http://127.0.0.1:7400",
	    "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536",
	    "tcp://:7400", "tcp://h:7x", "ws://h/nq", "ipc://", "garbage", ""};
	char why[256];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_int_equal(
		    nqi_url_check(good[i], false, why, sizeof why), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(
		    nqi_url_check(bad[i], false, why, sizeof why), NQ_EINVAL);
		assert_non_null(strstr(why, bad[i]));
	}
	/* To listen, port 0 and no host are fine. */
	assert_int_equal(nqi_url_check("tcp://:0", true, why, sizeof why), 0);
	assert_int_equal(
	    nqi_url_check("tcp://127.0.0.1:65536", true, why, sizeof why),
	    NQ_EINVAL);
}

static void test_daemon_url_set_port_writes_the_bound_port(void **st)
{
	static const char *const cases[][2] = {
	    {"tcp://127.0.0.1:0", "tcp://127.0.0.1:41234"},
	    {"tls+tcp://localhost:0", "tls+tcp://localhost:41234"},
	    {"tcp://[::1]:0", "tcp://[::1]:41234"},
	    {"ws://127.0.0.1:0/nq", "ws://127.0.0.1:41234/nq"},
	    {"127.0.0.1:0", "127.0.0.1:41234"},
	    {"https://127.0.0.1:0/", "https://127.0.0.1:41234/"},
	    {"ipc:///tmp/nq.sock", "ipc:///tmp/nq.sock"},
	};
	char out[128];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		nqi_url_set_port(cases[i][0], 41234, out, sizeof out);
		assert_string_equal(out, cases[i][1]);
	}
	nqi_url_set_port("tcp://127.0.0.1:0", -1, out, sizeof out);
	assert_string_equal(out, "tcp://127.0.0.1:0");
}

/* The ready file lists what was bound, in order, and appears whole. */
static void test_daemon_ready_file_lists_bound_sockets(void **st)
{
	char dir[] = "/tmp/nq-test-daemon-XXXXXX", path[64], err[128];
	char line[128], *text;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/ready", dir);
	nqi_daemon_bound("api", "tcp://127.0.0.1:0", 41000);
	nqi_daemon_bound("http", "127.0.0.1:0", 41001);
	assert_int_equal(nqi_daemon_ready(path, err, sizeof err), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	text = fgets(line, sizeof line, f);
	assert_non_null(text);
	assert_string_equal(line, "api=tcp://127.0.0.1:41000\n");
	text = fgets(line, sizeof line, f);
	assert_non_null(text);
	assert_string_equal(line, "http=127.0.0.1:41001\n");
	assert_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
	rmdir(dir);
	/* A directory that does not exist: an error naming the flag. */
	assert_int_not_equal(
	    nqi_daemon_ready("/nonexistent/ready", err, sizeof err), 0);
	assert_non_null(strstr(err, "--ready-file"));
}

/* Runs nqi_daemon_configure on argv with only the HTTP limits set. */
static int configure_http(char **argv, int argc, int *max, uint64_t *ms)
{
	nqi_strlist keep = {0};
	nqi_daemon_spec d = {.prog = "nq-test",
	    .usage = "usage: nq-test",
	    .msgid = "NQ-TEST-CONFIG",
	    .common = {.http_max_connections = max, .http_timeout_ms = ms}};
	*max = 0;
	*ms = 0;
	int rv = nqi_daemon_configure(&d, argc, argv, &keep);
	nqi_strlist_free(&keep);
	return rv;
}

static void test_daemon_http_limits_shared_with_defaults(void **st)
{
	int max;
	uint64_t ms;
	(void)st;
	char *none[] = {"nq-test", NULL};
	assert_int_equal(configure_http(none, 1, &max, &ms), 0);
	assert_int_equal(max, 256);
	assert_int_equal(ms, 10000);
	char *set[] = {"nq-test", "--http-max-connections", "9",
	    "--http-timeout", "3s", NULL};
	assert_int_equal(configure_http(set, 5, &max, &ms), 0);
	assert_int_equal(max, 9);
	assert_int_equal(ms, 3000);
	char *zero[] = {"nq-test", "--http-max-connections", "0", NULL};
	assert_int_equal(configure_http(zero, 3, &max, &ms), 2);
	char *fast[] = {"nq-test", "--http-timeout", "10ms", NULL};
	assert_int_equal(configure_http(fast, 3, &max, &ms), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_daemon_watchdog_ends_a_stuck_teardown),
	    cmocka_unit_test(test_daemon_watchdog_disarmed_stays_quiet),
	    cmocka_unit_test(test_daemon_watchdog_rearm_moves_deadline),
	    cmocka_unit_test(test_daemon_signals_hook_runs_and_stop_returns),
	    cmocka_unit_test(
	        test_daemon_url_check_refuses_what_cannot_be_dialed),
	    cmocka_unit_test(test_daemon_url_set_port_writes_the_bound_port),
	    cmocka_unit_test(test_daemon_ready_file_lists_bound_sockets),
	    cmocka_unit_test(test_daemon_http_limits_shared_with_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
