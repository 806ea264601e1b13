/*
 * Prometheus exposition of every service under load: the broker's, nq-
 * worker's and (when this tree builds it) nq-dlq's /metrics pass `promtool
 * check metrics` while jobs succeed, fail, retry and die, and carry the
 * families an autoscaler needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs.h"

static const char *const broker_flags[] = {"--backoff-base", "50ms",
    "--backoff-cap", "100ms", "--lease-check", "100ms", NULL};

/* ok succeeds, flaky fails its first attempt, bad fails for good (exit
 * 65) and so goes dead and on to nq-dlq. */
static const char handler_body[] =
    "case $NQ_TYPE in\n"
    "bad) echo 'permanent' >&2; exit 65 ;;\n"
    "flaky) [ \"$NQ_ATTEMPT\" = 1 ] && { echo 'once' >&2; exit 1; } ;;\n"
    "esac\n"
    "echo ok\n";

typedef struct load {
	itest_env *e;
	atomic_bool stop;
	atomic_int enqueued;
	pthread_t thr;
} load;

/* Enqueues a mix of jobs on two queues until stopped. */
static void *load_main(void *arg)
{
	static const char *const types[] = {"ok", "ok", "ok", "flaky", "bad"};
	load *l = arg;
	nq_client *c;
	if (itest_client(l->e, 0, &c) != 0)
		return NULL;
	for (int i = 0; !atomic_load(&l->stop); i++) {
		nq_job_spec specs[10];
		nq_enqueue_result res[10];
		for (int k = 0; k < 10; k++)
			specs[k] =
			    (nq_job_spec){.queue = k % 2 ? "load1" : "load2",
			        .type = types[(i + k) % 5],
			        .payload = "x",
			        .payload_len = 1,
			        .traceparent = OBS_TRACEPARENT};
		if (nq_enqueue_batch(c, specs, 10, res) == NQ_OK)
			atomic_fetch_add(&l->enqueued, 10);
		itest_sleep_ms(40);
	}
	nq_client_close(c);
	return NULL;
}

/* Scrapes addr, runs promtool, and checks that every name is there. */
static void check_exposition(
    const char *what, const char *addr, const char *const *names)
{
	char *text;
	assert_int_equal(obs_scrape(addr, &text), 0);
	if (obs_promtool(text) != 0)
		fail_msg("promtool rejected the /metrics of %s", what);
	for (; *names; names++)
		if (!strstr(text, *names))
			fail_msg("%s /metrics lacks %s:\n%.3000s", what, *names,
			    text);
	free(text);
}

static const char *const broker_names[] = {"nq_jobs_enqueued_total{",
    "nq_jobs_succeeded_total{queue=\"load1\"}", "nq_jobs_failed_total{",
    "nq_jobs_dead_total{", "nq_queue_ready{queue=\"load2\"}",
    "nq_queue_leased{", "nq_queue_scheduled{", "nq_queue_idle_slots{",
    "nq_queue_oldest_ready_age_seconds{",
    "nq_job_latency_seconds_bucket{queue=\"load1\",le=\"+Inf\"}",
    "nq_job_latency_seconds_count{", "nq_events_published_total",
    "nq_events_dropped_total", "nq_broker_ready 1",
    "nq_core_seconds_total{stage=\"commit\"}", NULL};

static const char *const worker_names[] = {"nq_worker_slots_busy ",
    "nq_worker_slots_idle ", "nq_worker_ready 1",
    "nq_worker_jobs_total{type=\"*\",outcome=\"succeeded\"}",
    "nq_worker_jobs_total{type=\"*\",outcome=\"failed\"}",
    "nq_worker_jobs_total{type=\"*\",outcome=\"released\"}",
    "nq_worker_job_duration_seconds_bucket{type=\"*\",le=\"0.0005\"}",
    "nq_worker_job_duration_seconds_count{type=\"*\"}", NULL};

#ifdef OBS_DLQ
static const char *const dlq_names[] = {"nq_dlq_entries",
    "nq_dlq_ingested_total", "nq_connections_refused_total{socket=\"listen\"}",
    "nq_dlq_core_seconds_total{stage=\"apply\"}", NULL};

/* nq-dlq on the env's dlq URL, where the broker hands its dead jobs. */
static void start_dlq(itest_env *e, char *http, size_t len)
{
	char data[PATH_MAX], ready[PATH_MAX];
	itest_proc *p;
	itest_path(e, "dlq-data", data, sizeof data);
	itest_path(e, "dlq.ready", ready, sizeof ready);
	assert_int_equal(obs_free_addr(http, len), 0);
	const char *argv[] = {OBS_DLQ, "--listen", e->dlq_url, "--broker",
	    e->api_url, "--data-dir", data, "--http", http, "--ready-file",
	    ready, NULL};
	assert_int_equal(itest_spawn(e, "dlq", argv, NULL, &p), 0);
	assert_int_equal(itest_wait_bound(p, 20000), 0);
	assert_int_equal(itest_bound_url(p, "http", http, len), 0);
	assert_int_equal(obs_wait_readyz(http, 200, 20000, NULL), 0);
}
#endif

static void test_prometheus_every_service_passes_promtool_under_load(
    void **state)
{
	itest_env *e = *state;
	char script[PATH_MAX], handler[PATH_MAX + 8], worker_http[64];
	itest_proc *w;
	load l = {.e = e};

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
#ifdef OBS_DLQ
	char dlq_http[64];
	start_dlq(e, dlq_http, sizeof dlq_http);
#else
	fprintf(stderr, "obs: nq-dlq is not built in this tree; its /metrics "
	                "is not checked\n");
#endif
	assert_int_equal(itest_write_script(
	                     e, "handler", handler_body, script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "*=%s", script);
	assert_int_equal(obs_free_addr(worker_http, sizeof worker_http), 0);
	const char *wflags[] = {"--queues", "load1,load2", "--concurrency", "4",
	    "--handler", handler, NULL};
	assert_int_equal(obs_worker_start(e, worker_http, wflags, &w), 0);
	assert_int_equal(obs_wait_readyz(worker_http, 200, 10000, NULL), 0);

	atomic_init(&l.stop, false);
	atomic_init(&l.enqueued, 0);
	assert_int_equal(pthread_create(&l.thr, NULL, load_main, &l), 0);
	itest_sleep_ms(1000);
	/* Three rounds while jobs come and go. */
	for (int round = 0; round < 3; round++) {
		check_exposition("nq-broker", e->http_addr, broker_names);
		check_exposition("nq-worker", worker_http, worker_names);
#ifdef OBS_DLQ
		check_exposition("nq-dlq", dlq_http, dlq_names);
#endif
		itest_sleep_ms(400);
	}
	atomic_store(&l.stop, true);
	pthread_join(l.thr, NULL);
	assert_true(atomic_load(&l.enqueued) >= 100);

	/* It was load: jobs of every kind went through. */
	char *text;
	double v = 0;
	assert_int_equal(obs_scrape(e->http_addr, &text), 0);
	assert_int_equal(
	    obs_sample(text, "nq_jobs_dead_total{queue=\"load1\"}", &v), 0);
	assert_true(v > 0);
	free(text);
	assert_int_equal(obs_scrape(worker_http, &text), 0);
	assert_int_equal(
	    obs_sample(text,
	        "nq_worker_jobs_total{type=\"*\",outcome=\"failed\"}", &v),
	    0);
	assert_true(v > 0);
	free(text);
	itest_pass(e);
}

static void test_prometheus_health_endpoints_answer(void **state)
{
	itest_env *e = *state;
	char http[64], *body;
	itest_proc *w;
	int status;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(obs_free_addr(http, sizeof http), 0);
	const char *wflags[] = {"--handler", "t=true", NULL};
	assert_int_equal(obs_worker_start(e, http, wflags, &w), 0);
	assert_int_equal(obs_wait_readyz(http, 200, 10000, &body), 0);
	assert_string_equal(body, "ready");
	free(body);
	const char *addrs[] = {e->http_addr, http};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    obs_http_get(addrs[i], "/healthz", &status, &body), 0);
		assert_int_equal(status, 200);
		assert_string_equal(body, "ok");
		free(body);
		assert_int_equal(
		    obs_http_get(addrs[i], "/nothing", &status, &body), 0);
		assert_int_equal(status, 404);
		free(body);
	}
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_prometheus_every_service_passes_promtool_under_load,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_prometheus_health_endpoints_answer, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
