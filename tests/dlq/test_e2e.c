/*
 * nq-dlq with the real broker (started with --dlq pointing at it), the
 * real nq-worker and nqctl: the handoff that never loses a job, and
 * replay back to the broker.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlqt.h"
#include "nqi/util.h"

/* Retries come quickly, so jobs die within a test's patience. */
static const char *const fast_broker[] = {
    "--backoff-base", "10ms", "--backoff-cap", "20ms", NULL};

static int setup(void **state)
{
	return itest_setup(state);
}

static int nqctl_dlq(itest_env *e, itest_run *run, int json, ...)
{
	const char *args[40] = {"--dlq", e->dlq_url};
	size_t n = 2;
	va_list ap;
	if (json)
		args[n++] = "--json";
	args[n++] = "dlq";
	va_start(ap, json);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 39;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return itest_nqctl_argv(e, 60000, args, run);
}

/* A worker whose handler for type "t" fails unless <dir>/fixed exists. */
static void start_worker(itest_env *e, const char *queue, int concurrency)
{
	char script[PATH_MAX], body[PATH_MAX + 128], handler[PATH_MAX + 8];
	char conc[16], fixed[PATH_MAX];
	itest_proc *w;
	itest_path(e, "fixed", fixed, sizeof fixed);
	snprintf(body, sizeof body,
	    "cat >/dev/null\n[ -e '%s' ] && exit 0\n"
	    "echo \"handler broke\" >&2\nexit 1",
	    fixed);
	assert_int_equal(
	    itest_write_script(e, "handler.sh", body, script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "t=%s", script);
	snprintf(conc, sizeof conc, "%d", concurrency);
	const char *const flags[] = {"--queues", queue, "--handler", handler,
	    "--concurrency", conc, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
}

static void fix_handler(itest_env *e)
{
	char fixed[PATH_MAX];
	itest_path(e, "fixed", fixed, sizeof fixed);
	FILE *f = fopen(fixed, "w");
	assert_non_null(f);
	fclose(f);
}

/* Enqueues n jobs of type t with max_attempts into ids (n * NQ_ID_MAX). */
static void enqueue_many(itest_env *e, const char *queue, size_t n,
    uint32_t max_attempts, char (*ids)[NQ_ID_MAX])
{
	nq_client *c;
	nq_job_spec specs[100];
	nq_enqueue_result res[100];
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (size_t done = 0; done < n;) {
		size_t k = n - done < 100 ? n - done : 100;
		for (size_t i = 0; i < k; i++)
			specs[i] = (nq_job_spec){.queue = queue,
			    .type = "t",
			    .payload = "p",
			    .payload_len = 1,
			    .content_type = "text/plain",
			    .max_attempts = max_attempts};
		assert_int_equal(nq_enqueue_batch(c, specs, k, res), NQ_OK);
		for (size_t i = 0; i < k; i++) {
			assert_int_equal(res[i].err, NQ_OK);
			memcpy(ids[done + i], res[i].id, NQ_ID_MAX);
		}
		done += k;
	}
	nq_client_close(c);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The DLQ holds exactly these ids, each once. */
static void expect_exactly(itest_env *e, char (*want)[NQ_ID_MAX], size_t n)
{
	uint64_t *got, *exp = calloc(n, sizeof *exp);
	size_t ngot;
	assert_non_null(exp);
	assert_int_equal(dlqt_list_all(e->dlq_url, NULL, &got, &ngot), 0);
	assert_int_equal(ngot, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(nqi_id_parse(want[i], &exp[i]), 0);
	qsort(got, ngot, sizeof *got, cmp_u64);
	qsort(exp, n, sizeof *exp, cmp_u64);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i], exp[i]);
	free(got);
	free(exp);
}

/* Polls get until the broker reports job id as held by nq-dlq. */
static void wait_in_dlq(nq_client *c, const char *id, nq_job **out)
{
	uint64_t end = itest_now_ms() + 10000;
	nq_job *job = NULL;
	for (;;) {
		assert_int_equal(nq_get(c, id, &job), NQ_OK);
		if (nq_job_in_dlq(job) || itest_now_ms() > end)
			break;
		nq_job_free(job);
		itest_sleep_ms(50);
	}
	assert_true(nq_job_in_dlq(job));
	*out = job;
}

/* nqctl get, as text and as JSON, says the job is dead, why, and that
 * nq-dlq has it. */
static void expect_get_shows_dead_in_dlq(itest_env *e, const char *id)
{
	itest_run run;
	json_t *o;
	char line[64];
	assert_int_equal(itest_nqctl(e, 15000, &run, "get", id, NULL), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "state: dead\n"));
	assert_non_null(strstr(run.out, "dead_reason: max_attempts\n"));
	snprintf(line, sizeof line, "in_dlq: true (nqctl dlq show %s", id);
	assert_non_null(strstr(run.out, line));
	itest_run_free(&run);
	assert_int_equal(
	    itest_nqctl(e, 15000, &run, "--json", "get", id, NULL), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_string_equal(itest_json_str(o, "state"), "dead");
	assert_string_equal(itest_json_str(o, "dead_reason"), "max_attempts");
	assert_true(json_is_true(json_object_get(o, "in_dlq")));
	assert_int_equal(json_array_size(json_object_get(o, "errors")), 1);
	json_decref(o);
	itest_run_free(&run);
}

static void test_dlq_failing_job_arrives_with_every_error(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char id[1][NQ_ID_MAX];
	nq_client *c;
	nq_job *job = NULL;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	start_worker(e, "q1", 1);
	enqueue_many(e, "q1", 1, 3, id);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 1, 30000), 0);

	itest_run run;
	assert_int_equal(nqctl_dlq(e, &run, true, "show", id[0], NULL), 0);
	assert_int_equal(run.code, 0);
	json_t *o, *errors;
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_string_equal(itest_json_str(o, "reason"), "max_attempts");
	assert_string_equal(itest_json_str(o, "queue"), "q1");
	errors = json_object_get(o, "errors");
	assert_int_equal(json_array_size(errors), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *err = json_array_get(errors, i);
		assert_int_equal(
		    itest_json_int(err, "attempt"), (long long)i + 1);
		assert_non_null(
		    strstr(itest_json_str(err, "message"), "handler broke"));
		assert_non_null(itest_json_str(err, "at"));
	}
	json_decref(o);
	itest_run_free(&run);

	/* once nq-dlq confirmed, the broker keeps only a summary */
	assert_int_equal(itest_client(e, 0, &c), 0);
	wait_in_dlq(c, id[0], &job);
	assert_int_equal(nq_job_state(job), NQ_STATE_DEAD);
	assert_string_equal(nq_job_dead_reason(job), "max_attempts");
	assert_int_equal(nq_job_attempt(job), 3);
	assert_int_equal(nq_job_error_count(job), 1);
	assert_non_null(strstr(nq_job_error(job, 0, NULL, NULL), "broke"));
	assert_null(nq_job_payload(job, NULL));
	nq_job_free(job);
	assert_int_equal(dlqt_dead_pending(e, "q1"), 0);
	nq_client_close(c);
	expect_get_shows_dead_in_dlq(e, id[0]);

	/* a restart keeps the summary, and the counters still leave it out */
	itest_qstats qs;
	nq_broker_stats bs;
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	expect_get_shows_dead_in_dlq(e, id[0]);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_queue_stats(c, "q1", &qs, &bs), 0);
	assert_int_equal(qs.dead, 0);
	assert_int_equal(bs.jobs_stored, 0);
	nq_client_close(c);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Enqueues one job of type t with max_attempts 1 and an idempotency key;
 * returns whether the broker called it a duplicate. */
static bool enqueue_keyed(nq_client *c, const char *key, char id[NQ_ID_MAX])
{
	bool dup = false;
	nq_job_spec s = {.queue = "q7",
	    .type = "t",
	    .payload = "p",
	    .payload_len = 1,
	    .max_attempts = 1,
	    .idempotency_key = key};
	assert_int_equal(nq_enqueue(c, &s, id, &dup), NQ_OK);
	return dup;
}

/* The summary of a dead job that nq-dlq holds lives result_ttl, and the
 * job's idempotency key as long: then the key makes a new job. */
static void test_dlq_dead_summary_and_its_key_live_result_ttl(void **state)
{
	itest_env *e = *state;
	const char *const flags[] = {"--result-ttl", "5s", NULL};
	char id[NQ_ID_MAX], again[NQ_ID_MAX];
	nq_client *c;
	nq_job *job;
	dlqt t;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_int_equal(itest_broker_start(e, flags), 0);
	start_worker(e, "q7", 1);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_false(enqueue_keyed(c, "order-7", id));
	wait_in_dlq(c, id, &job);
	uint64_t dead_us = nq_job_finished_us(job);
	nq_job_free(job);
	assert_true(enqueue_keyed(c, "order-7", again));
	assert_string_equal(again, id);

	/* gone after result_ttl, give or take a sweep and a handoff */
	int rv;
	while ((rv = nq_get(c, id, &job)) == NQ_OK &&
	       itest_wall_us() < dead_us + 15000000) {
		nq_job_free(job);
		itest_sleep_ms(100);
	}
	assert_int_equal(rv, NQ_ENOTFOUND);
	assert_false(enqueue_keyed(c, "order-7", again));
	assert_string_not_equal(again, id);
	nq_client_close(c);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* SIGKILL while 1,000 jobs die: after the restart each one is in the DLQ
 * exactly once; none stays behind in the broker. */
static void test_dlq_sigkill_while_1000_jobs_die(void **state)
{
	itest_env *e = *state;
	dlqt t;
	static char ids[1000][NQ_ID_MAX];
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	start_worker(e, "q2", 8);
	enqueue_many(e, "q2", 1000, 1, ids);
	uint64_t end = itest_now_ms() + 60000;
	while (dlqt_total(e->dlq_url) < 50 && itest_now_ms() < end)
		itest_sleep_ms(5);
	long long before = dlqt_total(e->dlq_url);
	assert_true(before >= 50);
	assert_int_equal(dlqt_stop(&t, SIGKILL, NULL), 0);
	fprintf(stderr, "test: killed nq-dlq holding %lld entries\n", before);
	itest_sleep_ms(500);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 1000, 120000), 0);
	expect_exactly(e, ids, 1000);
	end = itest_now_ms() + 10000;
	while (dlqt_dead_pending(e, "q2") != 0 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_int_equal(dlqt_dead_pending(e, "q2"), 0);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* With nq-dlq away, dead jobs wait in the broker (dead_pending), through a
 * broker restart too, and are handed over once it is back: none lost,
 * none twice. */
static void test_dlq_down_then_back_loses_nothing(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char ids[20][NQ_ID_MAX];
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	start_worker(e, "q3", 4);
	enqueue_many(e, "q3", 20, 2, ids);
	uint64_t end = itest_now_ms() + 30000;
	while (dlqt_dead_pending(e, "q3") != 20 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_int_equal(dlqt_dead_pending(e, "q3"), 20);
	itest_sleep_ms(1000); /* still waiting, not dropped */
	assert_int_equal(dlqt_dead_pending(e, "q3"), 20);
	/* A stop does not wait for nq-dlq, and a restart keeps the jobs that
	 * wait for it. */
	int status = -1;
	uint64_t t0 = itest_now_ms();
	assert_int_equal(itest_broker_stop(e, SIGTERM, &status), 0);
	assert_true(itest_now_ms() - t0 < 5000); /* not the 10 s timeout */
	assert_int_equal(status, 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	assert_int_equal(dlqt_dead_pending(e, "q3"), 20);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 20, 30000), 0);
	expect_exactly(e, ids, 20);
	end = itest_now_ms() + 10000;
	while (dlqt_dead_pending(e, "q3") != 0 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_int_equal(dlqt_dead_pending(e, "q3"), 0);
	itest_sleep_ms(500);
	assert_int_equal(dlqt_total(e->dlq_url), 20);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Replay once the handler works: the jobs run again, succeed, and leave
 * the DLQ; each new job names its entry in replay_of. */
static void test_dlq_replay_after_the_fix_succeeds(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char ids[5][NQ_ID_MAX];
	nq_client *c;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	start_worker(e, "q4", 2);
	enqueue_many(e, "q4", 5, 2, ids);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 5, 30000), 0);
	fix_handler(e);

	itest_run run;
	json_t *o;
	assert_int_equal(
	    nqctl_dlq(e, &run, true, "replay", ids[0], ids[1], NULL), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_int_equal(itest_json_int(o, "replayed"), 2);
	json_t *results = json_object_get(o, "results");
	assert_int_equal(json_array_size(results), 2);
	char new_id[NQ_ID_MAX];
	snprintf(new_id, sizeof new_id, "%s",
	    itest_json_str(json_array_get(results, 0), "id"));
	assert_string_equal(
	    itest_json_str(json_array_get(results, 0), "entry"), ids[0]);
	json_decref(o);
	itest_run_free(&run);
	assert_int_equal(dlqt_total(e->dlq_url), 3);

	assert_int_equal(nqctl_dlq(e, &run, false, "replay", "--all", "--queue",
	                     "q4", "--rate", "20/s", NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "replayed 3, not replayed 0"));
	itest_run_free(&run);
	assert_int_equal(dlqt_total(e->dlq_url), 0);

	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, new_id, NQ_STATE_SUCCEEDED, 20000, NULL), 0);
	nq_client_close(c);
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__GetRequest get = NQ__V1__GET_REQUEST__INIT;
	Nq__V1__Reply *r;
	get.id = new_id;
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &get;
	assert_int_equal(dlqt_call(e->api_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), 0);
	assert_string_equal(r->get->job->spec->replay_of, ids[0]);
	char key[64];
	snprintf(key, sizeof key, "replay:%s:1", ids[0]);
	assert_string_equal(r->get->job->spec->idempotency_key, key);
	assert_int_equal(r->get->job->attempt, 1);
	assert_string_equal(r->get->job->spec->queue, "q4");
	assert_string_equal(r->get->job->spec->content_type, "text/plain");
	assert_int_equal(r->get->job->spec->payload.len, 1);
	assert_int_equal(r->get->job->spec->max_attempts, 2);
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* The broker goes away in the middle of a paced replay: what it confirmed
 * left the DLQ, everything else stays, and the reply says so. */
static void test_dlq_broker_down_during_replay_keeps_the_rest(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[8];
	uint64_t now = nqi_now_us();
	const char *const flags[] = {"--broker-timeout", "1s", NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	for (int i = 0; i < 8; i++)
		dlqt_dead(&jobs[i], 0xa00 + (uint64_t)i, "q5", "t",
		    "max_attempts", now + (uint64_t)i, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 8), 0);

	/* nqctl replays 4 a second; the broker stops after about one */
	char out[PATH_MAX], err[PATH_MAX], cmd[PATH_MAX * 4];
	itest_path(e, "replay.out", out, sizeof out);
	itest_path(e, "replay.err", err, sizeof err);
	snprintf(cmd, sizeof cmd,
	    "'%s' --dlq %s --json dlq replay --all "
	    "--rate 4/s >'%s' 2>'%s'; echo $? >>'%s'",
	    ITEST_NQCTL_PATH, e->dlq_url, out, err, out);
	char script[PATH_MAX];
	assert_int_equal(
	    itest_write_script(e, "replay.sh", cmd, script, sizeof script), 0);
	itest_proc *p;
	const char *const argv[] = {script, NULL};
	assert_int_equal(itest_spawn(e, "replay", argv, NULL, &p), 0);
	itest_sleep_ms(1100);
	assert_int_equal(itest_broker_stop(e, SIGKILL, NULL), 0);
	assert_int_equal(itest_wait_exit(p, 30000), 0);

	char *text;
	json_t *o;
	json_error_t jerr;
	assert_int_equal(itest_read_file(out, &text, NULL), 0);
	fprintf(stderr, "test: replay said %s", text);
	o = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	assert_non_null(o);
	assert_non_null(strstr(text, "}\n1\n")); /* exit status 1 */
	long long replayed = itest_json_int(o, "replayed");
	long long failed = itest_json_int(o, "failed");
	assert_true(replayed >= 1);
	assert_true(failed >= 1);
	assert_int_equal(replayed + failed, 8);
	assert_non_null(strstr(itest_json_str(o, "error"), "did not take"));
	json_decref(o);
	free(text);
	assert_int_equal(dlqt_total(e->dlq_url), failed);
	/* the oldest went first: the confirmed ones are gone, the rest stay */
	uint64_t *left;
	size_t nleft;
	assert_int_equal(dlqt_list_all(e->dlq_url, NULL, &left, &nleft), 0);
	for (size_t i = 0; i < nleft; i++)
		assert_true(left[i] >= 0xa00 + (uint64_t)replayed);
	free(left);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

static void write_file(
    itest_env *e, const char *name, const char *text, char *path, size_t len)
{
	itest_path(e, name, path, len);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* With tokens at nq-dlq, the broker's handoff needs --dlq-token-file; a
 * refused handoff leaves the dead jobs waiting in the broker. */
static void test_dlq_handoff_needs_the_brokers_token(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char ids[3][NQ_ID_MAX], prod[PATH_MAX], admin[PATH_MAX];
	write_file(e, "producer.tok", "broker-token\n", prod, sizeof prod);
	write_file(e, "admin.tok", "admin-token\n", admin, sizeof admin);
	const char *const flags[] = {
	    "--producer-tokens", prod, "--admin-tokens", admin, NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, fast_broker), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	dlqt_set_token("admin-token");
	start_worker(e, "q6", 2);
	enqueue_many(e, "q6", 3, 1, ids);
	uint64_t end = itest_now_ms() + 30000;
	while (dlqt_dead_pending(e, "q6") != 3 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_int_equal(dlqt_dead_pending(e, "q6"), 3);
	itest_sleep_ms(500);
	assert_int_equal(dlqt_total(e->dlq_url), 0);

	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	const char *const with_token[] = {
	    "--backoff-base", "10ms", "--dlq-token-file", prod, NULL};
	assert_int_equal(itest_broker_start(e, with_token), 0);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 3, 30000), 0);
	expect_exactly(e, ids, 3);
	end = itest_now_ms() + 10000;
	while (dlqt_dead_pending(e, "q6") != 0 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_int_equal(dlqt_dead_pending(e, "q6"), 0);
	dlqt_set_token(NULL);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_dlq_failing_job_arrives_with_every_error, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_dead_summary_and_its_key_live_result_ttl, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_sigkill_while_1000_jobs_die, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_down_then_back_loses_nothing, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_replay_after_the_fix_succeeds, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_handoff_needs_the_brokers_token, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_broker_down_during_replay_keeps_the_rest, setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
