/*
 * Job events as a subscriber sees them through `nqctl events`: the
 * --queue, --state and --count filters; every field of an event; gaps in a
 * topic's numbers reported as missed events; and clear failures for bad
 * flags and an absent broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "obs.h"

static const char *const broker_flags[] = {"--backoff-base", "100ms",
    "--backoff-cap", "200ms", "--lease-check", "100ms", NULL};

static void test_events_filters_by_queue_and_state(void **state)
{
	itest_env *e = *state;
	itest_proc *all_sub, *only, *counted;
	nq_client *c;
	char ida[NQ_ID_MAX], idb[NQ_ID_MAX], id[NQ_ID_MAX];

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	assert_int_equal(obs_events_start(e, NULL, NULL, &all_sub), 0);
	assert_int_equal(obs_events_warmup(e, all_sub), 0);
	const char *fa[] = {"--queue", "qa", "--state", "failed", NULL};
	assert_int_equal(obs_events_start(e, NULL, fa, &only), 0);
	const char *fc[] = {"--state", "enqueued", "--count", "3", NULL};
	assert_int_equal(obs_events_start(e, NULL, fc, &counted), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	/* No warm-up event passes their filters: wait for the connections. */
	assert_int_equal(obs_wait_subscribers(e, 3, 10000), 0);
	assert_int_equal(obs_flaky_worker_start(e, "qa,qb"), 0);

	assert_int_equal(itest_enqueue(c, "qa", "t", "x", ida), 0);
	assert_int_equal(itest_enqueue(c, "qb", "t", "x", idb), 0);
	assert_int_equal(itest_enqueue(c, "qa", "t", "x", id), 0);
	assert_int_equal(
	    itest_wait_state(c, ida, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, idb, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	assert_int_equal(obs_events_wait(all_sub, id, "leased", 10000), 0);
	assert_int_equal(obs_events_wait(only, id, "failed", 10000), 0);

	/* --count 3: exits 0 by itself after three enqueued events. */
	assert_int_equal(itest_wait_exit(counted, 10000), 0);
	assert_true(WIFEXITED(counted->status));
	assert_int_equal(WEXITSTATUS(counted->status), 0);
	json_t *ev = obs_events_read(counted->log);
	assert_int_equal(json_array_size(ev), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(
		    obs_json_str(json_array_get(ev, i), "kind"), "enqueued");
	json_decref(ev);

	/* --queue qa --state failed: the first attempts of the two jobs of
	 * qa, nothing of qb. */
	assert_int_equal(obs_stop(only), 0);
	ev = obs_events_read(only->log);
	assert_int_equal(json_array_size(ev), 2);
	assert_string_equal(obs_json_str(json_array_get(ev, 0), "id"), ida);
	assert_string_equal(obs_json_str(json_array_get(ev, 1), "id"), id);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(
		    obs_json_str(json_array_get(ev, i), "queue"), "qa");
		assert_string_equal(
		    obs_json_str(json_array_get(ev, i), "kind"), "failed");
	}
	json_decref(ev);
	assert_int_equal(obs_stop(all_sub), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* An event of the stand-in publisher. */
static Nq__V1__JobEvent *event(
    Nq__V1__JobEvent *e, const char *kind, uint64_t seq, uint64_t topic_seq)
{
	static const Nq__V1__JobEvent init = NQ__V1__JOB_EVENT__INIT;
	*e = init;
	e->seq = seq;
	e->topic_seq = topic_seq;
	e->kind = (char *)kind;
	e->id = "00066149860338a1";
	e->queue = "q";
	e->type = "mail";
	e->attempt = 2;
	e->at_us = 1795818269314271ull;
	e->worker_id = "w-1";
	e->error = (char *)"bad \xff byte";
	e->traceparent = (char *)OBS_TRACEPARENT;
	return e;
}

/* Publishes warm-up events until nqctl printed one. */
static void pub_warmup(nng_socket s, itest_proc *p)
{
	Nq__V1__JobEvent ev, *evs[] = {&ev};
	for (uint64_t i = 1; i < 300; i++) {
		event(&ev, "enqueued", i, i);
		ev.queue = "warm";
		assert_int_equal(
		    obs_pub_events(s, "job.enqueued.warm", evs, 1), 0);
		itest_sleep_ms(30);
		if (obs_file_has(p->log, "\"warm\""))
			return;
	}
	fail_msg("nqctl events never printed a warm-up event");
}

static void test_events_prints_every_field_and_reports_gaps(void **state)
{
	itest_env *e = *state;
	char url[64];
	nng_socket pub;
	itest_proc *p;
	Nq__V1__JobEvent ev[4];

	assert_int_equal(obs_pub_open(&pub, url, sizeof url), 0);
	assert_int_equal(obs_events_start(e, url, NULL, &p), 0);
	pub_warmup(pub, p);

	/* succeeded.q: 1, 2, then 5 (3 and 4 missed); failed.q: 7, 8. */
	Nq__V1__JobEvent *run1[] = {event(&ev[0], "succeeded", 1000, 1),
	    event(&ev[1], "succeeded", 1001, 2)};
	assert_int_equal(obs_pub_events(pub, "job.succeeded.q", run1, 2), 0);
	Nq__V1__JobEvent *run2[] = {event(&ev[2], "failed", 1002, 7)};
	assert_int_equal(obs_pub_events(pub, "job.failed.q", run2, 1), 0);
	Nq__V1__JobEvent *run3[] = {event(&ev[3], "succeeded", 1005, 5)};
	assert_int_equal(obs_pub_events(pub, "job.succeeded.q", run3, 1), 0);
	run2[0]->topic_seq = 8;
	run2[0]->seq = 1006;
	assert_int_equal(obs_pub_events(pub, "job.failed.q", run2, 1), 0);
	/* Bytes that are no event batch are skipped, not fatal. */
	assert_int_equal(nng_send(pub, "job.x\0\xff\xff\xff", 9, 0), 0);
	uint64_t end = itest_now_ms() + 10000;
	while (!obs_file_has(p->log, "\"seq\":1006") && itest_now_ms() < end)
		itest_sleep_ms(30);
	assert_int_equal(obs_stop(p), 0);
	nng_close(pub);

	assert_true(obs_file_has(p->log,
	    "nqctl: events: missed 2 events on job.succeeded.q (topic_seq 3 "
	    "to 4)"));
	assert_true(obs_file_has(p->log, "missed 2 events in all"));
	assert_false(obs_file_has(p->log, "on job.failed.q"));
	assert_true(obs_file_has(p->log, "skipped a message that is not"));

	json_t *all = obs_events_read(p->log);
	json_t *got = NULL, *v;
	size_t i;
	json_array_foreach(all, i, v)
	{
		if (obs_json_num(v, "seq") == 1000)
			got = v;
	}
	assert_non_null(got);
	char *line = json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(line,
	    "{\"seq\":1000,\"topic_seq\":1,\"topic\":\"job.succeeded.q\","
	    "\"kind\":\"succeeded\",\"id\":\"00066149860338a1\","
	    "\"queue\":\"q\",\"type\":\"mail\",\"attempt\":2,"
	    "\"at\":\"2026-11-27T22:24:29.314271Z\",\"worker_id\":\"w-1\","
	    "\"error\":\"bad \xef\xbf\xbd "
	    "byte\",\"traceparent\":\"" OBS_TRACEPARENT "\"}");
	free(line);
	json_decref(all);
	itest_pass(e);
}

static void test_events_bad_flags_and_absent_broker(void **state)
{
	itest_env *e = *state;
	itest_run r;
	char url[ITEST_URL_MAX];

	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "events", "--state", "finished", NULL),
	    0);
	assert_int_equal(r.code, 2);
	assert_non_null(
	    strstr(r.err, "--state 'finished' is not an event kind"));
	itest_run_free(&r);

	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "events", "--queue", "no spaces", NULL),
	    0);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "--queue 'no spaces'"));
	itest_run_free(&r);

	/* Nothing listens there: exit 3 at once, naming the socket. */
	assert_int_equal(itest_unserved_url(e, url, sizeof url), 0);
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "--events", url, "events", NULL), 0);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, url));
	assert_true(r.elapsed_ms < 5000);
	itest_run_free(&r);
	assert_int_equal(
	    itest_nqctl(e, 10000, &r, "--events", url, "top", NULL), 0);
	assert_int_equal(r.code, 3);
	itest_run_free(&r);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_events_filters_by_queue_and_state, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_events_prints_every_field_and_reports_gaps, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_events_bad_flags_and_absent_broker, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
