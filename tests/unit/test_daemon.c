/* The shutdown watchdog: a stuck teardown ends the process with the
 * status it was armed with, and a disarmed watchdog never fires. Each
 * case runs in a child process, since firing ends the process. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nqi/daemon.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_daemon_watchdog_ends_a_stuck_teardown),
	    cmocka_unit_test(test_daemon_watchdog_disarmed_stays_quiet),
	    cmocka_unit_test(test_daemon_watchdog_rearm_moves_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
