/*
 * Signals a process manager may send: SIGHUP and SIGUSR2 (and SIGUSR1 to
 * nq-worker, which uses it itself) are logged as NQ-SIGNAL and ignored by
 * nq-broker, nq-dlq and nq-worker, which go on serving; SIGTERM and
 * SIGQUIT then stop them with exit 0. Left at their defaults, each of
 * those signals ends the process without a log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "dlqt.h"
#include "harness.h"

/* Sends each signal of the list to p, waits 1 s, and checks that p still
 * runs and logged NQ-SIGNAL signal=NAME action=ignored for each. */
static void send_ignored(itest_proc *p, const int *sigs, const char **names)
{
	for (size_t i = 0; names[i]; i++)
		assert_int_equal(itest_signal(p, sigs[i]), 0);
	itest_sleep_ms(1000);
	assert_true(itest_alive(p));
	for (size_t i = 0; names[i]; i++) {
		char want[64];
		snprintf(want, sizeof want,
		    "NQ-SIGNAL signal=%s action=ignored", names[i]);
		if (!dlqt_log_has(p->log, want))
			itest_dump_log(p, 20);
		assert_true(dlqt_log_has(p->log, want));
	}
}

static void assert_exit_0(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_signals_broker_ignores_hup_and_usr2(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	nq_client *c;
	int status = -1;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	send_ignored(e->broker, (const int[]){SIGHUP, SIGUSR2},
	    (const char *[]){"HUP", "USR2", NULL});

	/* Still serving: an enqueue is answered. */
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	nq_client_close(c);
	assert_int_equal(itest_broker_stop(e, SIGTERM, &status), 0);
	assert_exit_0(status);
	itest_pass(e);
}

static void test_signals_broker_stops_on_quit(void **state)
{
	itest_env *e = *state;
	int status = -1;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_broker_stop(e, SIGQUIT, &status), 0);
	assert_exit_0(status);
	itest_pass(e);
}

static void test_signals_dlq_ignores_hup_and_usr2(void **state)
{
	itest_env *e = *state;
	dlqt t;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	send_ignored(t.proc, (const int[]){SIGHUP, SIGUSR2},
	    (const char *[]){"HUP", "USR2", NULL});

	/* Still serving: its stats are answered. */
	assert_int_equal(dlqt_total(e->dlq_url), 0);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

static void test_signals_worker_ignores_hup_usr1_and_usr2(void **state)
{
	itest_env *e = *state;
	char script[PATH_MAX], handler[PATH_MAX + 8], id[NQ_ID_MAX];
	itest_proc *w;
	nq_client *c;
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(
	    itest_write_script(e, "echo", "echo ran", script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "t=%s", script);
	const char *flags[] = {"--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(itest_wait_bound(w, 20000), 0);
	send_ignored(w, (const int[]){SIGHUP, SIGUSR1, SIGUSR2},
	    (const char *[]){"HUP", "USR1", "USR2", NULL});

	/* Still running jobs. */
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "q", "t", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 15000, NULL), 0);
	nq_client_close(c);
	assert_int_equal(itest_signal(w, SIGTERM), 0);
	assert_int_equal(itest_wait_exit(w, 15000), 0);
	assert_exit_0(w->status);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_signals_broker_ignores_hup_and_usr2, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_signals_broker_stops_on_quit, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_signals_dlq_ignores_hup_and_usr2, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_signals_worker_ignores_hup_usr1_and_usr2, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
