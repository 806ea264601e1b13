/*
 * Health: the broker's /readyz turns false while its store cannot commit
 * and true again after (the NQ_FAULT_COMMIT_FILE seam stands in for a full
 * disk), while /healthz stays true, and nq_store_commit_failures_total
 * counts the failed commits; what a failed commit refused counts
 * nowhere (enqueues, successes and their latency); on a real full disk (a small
 * tmpfs) it stays false the whole time, though small commits still work there;
 * nq-worker's /readyz is false until the broker's work socket answered and
 * while it drains, and says why; a bad
 * --http is refused with a message naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "obs.h"

static double broker_ready(const itest_env *e)
{
	char *text;
	double v = -1;
	assert_int_equal(obs_scrape(e->http_addr, &text), 0);
	assert_int_equal(obs_sample(text, "nq_broker_ready", &v), 0);
	free(text);
	return v;
}

/* nq_store_commit_failures_total once it is above 0 (at most 3 s: the
 * snapshot follows the sweep), else the last value seen. */
static double commit_failures(const itest_env *e)
{
	double v = -1;
	for (uint64_t end = itest_now_ms() + 3000; itest_now_ms() < end;) {
		char *text;
		if (obs_scrape(e->http_addr, &text) == 0) {
			obs_sample(text, "nq_store_commit_failures_total", &v);
			free(text);
		}
		if (v > 0)
			break;
		itest_sleep_ms(100);
	}
	return v;
}

static void test_health_broker_readyz_follows_the_store(void **state)
{
	itest_env *e = *state;
	char full[PATH_MAX], env[PATH_MAX + 32], id[NQ_ID_MAX], *body;
	nq_client *c;
	int status;

	itest_path(e, "disk-full", full, sizeof full);
	snprintf(env, sizeof env, "NQ_FAULT_COMMIT_FILE=%s", full);
	const char *envv[] = {env, NULL};
	assert_int_equal(obs_broker_start_env(e, NULL, envv), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 200, 5000, NULL), 0);
	assert_true(broker_ready(e) == 1);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_enqueue(c, "h", "t", "x", id), 0);

	/* The disk is full: enqueue fails, the broker says it is not ready
	 * and why, and is still alive. */
	FILE *f = fopen(full, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_not_equal(itest_enqueue(c, "h", "t", "x", id), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 503, 5000, &body), 0);
	assert_non_null(strstr(body, "store cannot commit"));
	free(body);
	assert_true(broker_ready(e) == 0);
	assert_true(commit_failures(e) > 0);
	assert_int_equal(
	    obs_http_get(e->http_addr, "/healthz", &status, &body), 0);
	assert_int_equal(status, 200);
	free(body);

	/* Space again: ready by itself, and enqueue works. */
	assert_int_equal(unlink(full), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 200, 10000, NULL), 0);
	assert_true(broker_ready(e) == 1);
	assert_int_equal(itest_enqueue(c, "h", "t", "x", id), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* The queue's nq_jobs_enqueued_total once /metrics shows want (at most
 * 3 s: the snapshot follows the sweep), else the last value seen. */
static double metrics_enqueued(const itest_env *e, double want)
{
	double v = -1;
	for (uint64_t end = itest_now_ms() + 3000; itest_now_ms() < end;) {
		char *text;
		if (obs_scrape(e->http_addr, &text) == 0) {
			obs_sample(
			    text, "nq_jobs_enqueued_total{queue=\"c\"}", &v);
			free(text);
		}
		if (v == want)
			break;
		itest_sleep_ms(100);
	}
	return v;
}

static void test_health_enqueued_total_counts_only_committed_jobs(void **state)
{
	itest_env *e = *state;
	char full[PATH_MAX], env[PATH_MAX + 32], id[NQ_ID_MAX];
	itest_qstats qs;
	nq_client *c;
	int stored = 0;

	itest_path(e, "disk-full", full, sizeof full);
	snprintf(env, sizeof env, "NQ_FAULT_COMMIT_FILE=%s", full);
	const char *envv[] = {env, NULL};
	assert_int_equal(obs_broker_start_env(e, NULL, envv), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	for (int i = 0; i < 20; i++)
		stored += itest_enqueue(c, "c", "t", "x", id) == 0;

	/* Refused by the commit: not counted. */
	FILE *f = fopen(full, "w");
	assert_non_null(f);
	fclose(f);
	for (int i = 0; i < 20; i++)
		assert_int_not_equal(itest_enqueue(c, "c", "t", "x", id), 0);
	assert_int_equal(unlink(full), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 200, 10000, NULL), 0);
	for (int i = 0; i < 10; i++)
		stored += itest_enqueue(c, "c", "t", "x", id) == 0;

	assert_int_equal(stored, 30);
	assert_int_equal(itest_queue_stats(c, "c", &qs, NULL), 0);
	assert_int_equal(qs.ready, 30);
	assert_int_equal(qs.enqueued_total, 30);
	assert_true(metrics_enqueued(e, 30) == 30);
	nq_client_close(c);
	itest_pass(e);
}

/* One series of the broker's /metrics; NAN when it is not there. */
static double metrics_series(const itest_env *e, const char *series)
{
	char *text;
	double v = NAN;
	if (obs_scrape(e->http_addr, &text) == 0) {
		if (obs_sample(text, series, &v) != 0)
			v = NAN;
		free(text);
	}
	return v;
}

static void test_health_latency_counts_only_committed_successes(void **state)
{
	itest_env *e = *state;
	char full[PATH_MAX], go[PATH_MAX], runs[PATH_MAX], env[PATH_MAX + 32];
	char body[2 * PATH_MAX + 96], script[PATH_MAX], handler[PATH_MAX + 8];
	char id[NQ_ID_MAX];
	const char *count = "nq_job_latency_seconds_count{queue=\"lat\"}";
	const char *done = "nq_jobs_succeeded_total{queue=\"lat\"}";
	itest_qstats qs = {0};
	itest_proc *w;
	nq_client *c;

	itest_path(e, "disk-full", full, sizeof full);
	itest_path(e, "go", go, sizeof go);
	itest_path(e, "runs", runs, sizeof runs);
	snprintf(env, sizeof env, "NQ_FAULT_COMMIT_FILE=%s", full);
	const char *envv[] = {env, NULL};
	const char *bflags[] = {"--lease-check", "100ms", NULL};
	assert_int_equal(obs_broker_start_env(e, bflags, envv), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(itest_enqueue(c, "lat", "t", "x", id), 0);
	snprintf(body, sizeof body,
	    "cat >/dev/null\nwhile [ ! -e '%s' ]; do sleep 0.05; done\n"
	    "echo run >> '%s'\nexit 0",
	    go, runs);
	assert_int_equal(
	    itest_write_script(e, "handler", body, script, sizeof script), 0);
	snprintf(handler, sizeof handler, "t=%s", script);
	const char *wflags[] = {"--queues", "lat", "--concurrency", "5",
	    "--lease", "1s", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	for (uint64_t end = itest_now_ms() + 10000;
	     qs.leased < 5 && itest_now_ms() < end; itest_sleep_ms(50))
		assert_int_equal(itest_queue_stats(c, "lat", &qs, NULL), 0);
	assert_int_equal(qs.leased, 5);

	/* The jobs succeed while no commit can: their completions are not
	 * confirmed, so neither the counter nor the histogram counts them,
	 * now or later. */
	FILE *f = fopen(full, "w");
	assert_non_null(f);
	fclose(f);
	assert_non_null(f = fopen(go, "w"));
	fclose(f);
	assert_int_equal(itest_wait_lines(runs, 5, 10000), 0);
	for (uint64_t end = itest_now_ms() + 2000; itest_now_ms() < end;
	     itest_sleep_ms(100)) {
		assert_true(metrics_series(e, count) == 0);
		assert_true(metrics_series(e, done) == 0);
	}

	/* Commits work again: the leases lapse, the jobs run again, and
	 * histogram and counter agree. */
	assert_int_equal(unlink(full), 0);
	double n = 0;
	for (uint64_t end = itest_now_ms() + 15000;
	     (n = metrics_series(e, done)) != 5 && itest_now_ms() < end;)
		itest_sleep_ms(100);
	assert_true(n == 5);
	assert_true(metrics_series(e, count) == 5);
	nq_client_close(c);
	itest_pass(e);
}

/* Writes zeros to path until the file system is full. */
static void fill_disk(const char *path)
{
	static char zeros[64 << 10];
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	while (fwrite(zeros, 1, sizeof zeros, f) == sizeof zeros)
		;
	fclose(f);
}

static int readyz_status(const itest_env *e)
{
	int status = -1;
	char *body = NULL;
	obs_http_get(e->http_addr, "/readyz", &status, &body);
	free(body);
	return status;
}

static void test_health_broker_not_ready_while_the_disk_is_full(void **state)
{
	itest_env *e = *state;
	char filler[PATH_MAX + 16], id[NQ_ID_MAX];
	static char big[32 << 10];
	nq_client *c;

	mkdir(e->data_dir, 0700);
	if (mount("tmpfs", e->data_dir, "tmpfs", 0, "size=4m") != 0) {
		fprintf(stderr, "skipped: cannot mount a tmpfs on %s (%s)\n",
		    e->data_dir, strerror(errno));
		itest_pass(e);
		skip();
	}
	assert_int_equal(obs_broker_start_env(e, NULL, NULL), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 200, 5000, NULL), 0);
	assert_int_equal(itest_client(e, 5000, &c), 0);
	memset(big, 'x', sizeof big - 1);
	/* Commits of a store in use free pages that later commits reuse. */
	for (int i = 0; i < 300; i++)
		assert_int_equal(itest_enqueue(c, "warm", "t", "x", id), 0);
	snprintf(filler, sizeof filler, "%s/filler", e->data_dir);
	fill_disk(filler);

	/* A commit that needs fresh pages fails. */
	bool refused = false;
	for (int i = 0; i < 200 && !refused; i++)
		refused = itest_enqueue(c, "full", "t", big, id) != 0;
	assert_true(refused);

	/* Not ready for as long as the disk stays full, with probes and
	 * now and then a small enqueue (which LMDB may fit in pages it
	 * freed) going on. */
	uint64_t end = itest_now_ms() + 5000;
	for (int i = 0; itest_now_ms() < end; i++) {
		if (i % 20 == 19)
			itest_enqueue(c, "full", "t", "x", id);
		assert_int_not_equal(readyz_status(e), 200);
		itest_sleep_ms(50);
	}

	/* Space again: ready by itself, and enqueue works. */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(obs_wait_readyz(e->http_addr, 200, 10000, NULL), 0);
	assert_int_equal(itest_enqueue(c, "full", "t", big, id), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* Kills the broker before the tmpfs under its data dir goes. */
static int disk_teardown(void **state)
{
	itest_env *e = *state;
	if (e->broker)
		itest_kill_tree(e->broker);
	umount2(e->data_dir, MNT_DETACH);
	return itest_teardown(state);
}

/* Until the worker at http says n of its slots run a job: 0, or ETIMEDOUT. */
static int wait_slots_busy(const char *http, double n, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	for (;; itest_sleep_ms(20)) {
		char *text = NULL;
		double v = -1;
		if (obs_scrape(http, &text) == 0)
			obs_sample(text, "nq_worker_slots_busy", &v);
		free(text);
		if (v == n)
			return 0;
		if (itest_now_ms() >= end)
			return ETIMEDOUT;
	}
}

static void test_health_worker_ready_once_the_broker_answers_until_it_drains(
    void **state)
{
	itest_env *e = *state;
	char http[64], id[NQ_ID_MAX], *body, *text;
	itest_proc *w;
	nq_client *c;
	double v = -1;

	/* No broker: a first start only gives the broker its ports. */
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	assert_int_equal(obs_free_addr(http, sizeof http), 0);
	const char *flags[] = {"--queues", "h", "--grace", "2s", "--handler",
	    "slow=exec sleep 30", NULL};
	assert_int_equal(obs_worker_start(e, http, flags, &w), 0);
	assert_int_equal(obs_wait_readyz(http, 503, 5000, &body), 0);
	assert_non_null(strstr(body, "work socket"));
	assert_non_null(strstr(body, e->work_url));
	free(body);
	int status;
	assert_int_equal(obs_http_get(http, "/healthz", &status, &body), 0);
	assert_int_equal(status, 200);
	free(body);
	assert_int_equal(obs_scrape(http, &text), 0);
	assert_int_equal(obs_sample(text, "nq_worker_ready", &v), 0);
	assert_true(v == 0);
	free(text);

	/* The broker comes back: ready within a probe or two. */
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(obs_wait_readyz(http, 200, 10000, NULL), 0);
	assert_true(obs_file_has(w->log, "NQ-WORKER-READY"));

	/* SIGTERM with a job running: not ready while it drains, then it
	 * releases the job and exits 0. */
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, "h", "slow", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_LEASED, 10000, NULL), 0);
	/* Leased is not yet running: a job whose fetch reply is still on
	 * its way when the drain begins is released, and the worker ends at
	 * once, with nothing to drain. */
	assert_int_equal(wait_slots_busy(http, 1, 10000), 0);
	assert_int_equal(itest_signal(w, SIGTERM), 0);
	assert_int_equal(obs_wait_readyz(http, 503, 1500, &body), 0);
	assert_non_null(strstr(body, "draining"));
	free(body);
	assert_int_equal(itest_wait_exit(w, 15000), 0);
	assert_true(WIFEXITED(w->status));
	assert_int_equal(WEXITSTATUS(w->status), 0);
	nq_client_close(c);
	itest_pass(e);
}

static void test_health_worker_refuses_a_bad_http_address(void **state)
{
	itest_env *e = *state;
	itest_proc *w;
	char http[64];

	/* Not an address at all: a usage error. */
	const char *flags[] = {"--handler", "t=true", NULL};
	assert_int_equal(obs_worker_start(e, "no-port-here", flags, &w), 0);
	assert_int_equal(itest_wait_exit(w, 10000), 0);
	assert_true(WIFEXITED(w->status));
	assert_int_equal(WEXITSTATUS(w->status), 2);
	assert_true(obs_file_has(w->log, "--http no-port-here"));

	/* A port another service holds: exit 1, naming it. */
	assert_int_equal(obs_free_addr(http, sizeof http), 0);
	assert_int_equal(obs_worker_start(e, http, flags, &w), 0);
	assert_int_equal(obs_wait_readyz(http, 503, 5000, NULL), 0);
	itest_proc *second;
	assert_int_equal(obs_worker_start(e, http, flags, &second), 0);
	assert_int_equal(itest_wait_exit(second, 10000), 0);
	assert_true(WIFEXITED(second->status));
	assert_int_equal(WEXITSTATUS(second->status), 1);
	char want[96];
	snprintf(want, sizeof want, "--http %s", http);
	assert_true(obs_file_has(second->log, want));
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_health_broker_readyz_follows_the_store, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_health_enqueued_total_counts_only_committed_jobs,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_health_latency_counts_only_committed_successes,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_health_broker_not_ready_while_the_disk_is_full,
	        itest_setup, disk_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_health_worker_ready_once_the_broker_answers_until_it_drains,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_health_worker_refuses_a_bad_http_address, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
