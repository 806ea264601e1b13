/*
 * Two brokers as the shards of one map (--brokers), with the real
 * nq-worker, nq-dlq and nqctl: jobs of queues on both shards run, each
 * on its own shard; a chain across shards is refused; one shard killed
 * leaves the other's queues working; the one nq-dlq replays a dead job
 * to the shard of its queue, and with a shard down replays the others'.
 * A batch lives on one shard, with its jobs and callbacks; nqctl events
 * and nq-bench work over the map.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dlqt.h"
#include "nqi/util.h"

#define NJOBS 20

/* Two shards: a is the test's env (nq-dlq listens there too), b a
 * second env with a broker of its own. */
typedef struct two {
	itest_env *a, *b;
	char map[4 * 5 * ITEST_URL_MAX];
	char qa[16], qb[16]; /* a queue of each shard */
	nq_client *c;        /* a client of the map */
} two;

static void map_entry(char *out, size_t len, const char *name, itest_env *e)
{
	size_t n = strlen(out);
	snprintf(out + n, len - n,
	    "%s%s=%s,%s.work=%s,%s.results=%s,%s.events=%s", n ? "," : "", name,
	    e->api_url, name, e->work_url, name, e->results_url, name,
	    e->events_url);
}

/* A queue name of shard `name` (prefix "0", prefix "1", ...). */
static void queue_named(
    nq_client *c, const char *name, const char *prefix, char *out, size_t len)
{
	for (int i = 0; i < 1000; i++) {
		snprintf(out, len, "%s%d", prefix, i);
		if (strcmp(nq_client_shard_of(c, out), name) == 0)
			return;
	}
	fail_msg("no queue of shard %s among %s0..%s999", name, prefix, prefix);
}

static void queue_of(nq_client *c, const char *name, char *out, size_t len)
{
	queue_named(c, name, "q", out, len);
}

/* Both brokers (b hands its dead jobs to a's nq-dlq, and numbers its
 * ids apart), the map and a client of it. */
static void two_start(two *t, itest_env *a)
{
	static const char *const fast[] = {"--shard-number", "1",
	    "--backoff-base", "10ms", "--backoff-cap", "20ms", NULL};
	const char *const fast_b[] = {"--shard-number", "2", "--dlq",
	    a->dlq_url, "--backoff-base", "10ms", "--backoff-cap", "20ms",
	    NULL};
	memset(t, 0, sizeof *t);
	t->a = a;
	assert_int_equal(itest_env_open(&t->b, "shards_b"), 0);
	assert_int_equal(itest_broker_start(t->a, fast), 0);
	assert_int_equal(itest_broker_start(t->b, fast_b), 0);
	map_entry(t->map, sizeof t->map, "a", t->a);
	map_entry(t->map, sizeof t->map, "b", t->b);
	nq_client_opts o = {.brokers = t->map, .timeout_ms = 5000};
	assert_int_equal(nq_client_open(&t->c, &o), NQ_OK);
	queue_of(t->c, "a", t->qa, sizeof t->qa);
	queue_of(t->c, "b", t->qb, sizeof t->qb);
}

static void two_close(two *t)
{
	nq_client_close(t->c);
	if (t->b)
		t->b->passed = t->a->passed;
	itest_env_close(t->b);
}

/* A worker of both queues over the map; type ok succeeds, bad fails. */
static void worker_start(two *t)
{
	char queues[40];
	itest_proc *w;
	snprintf(queues, sizeof queues, "%s,%s", t->qa, t->qb);
	const char *const flags[] = {"--brokers", t->map, "--queues", queues,
	    "--handler", "ok=cat >/dev/null", "--handler",
	    "bad=cat >/dev/null; exit 1", "--concurrency", "4", NULL};
	assert_int_equal(itest_worker_start(t->a, flags, &w), 0);
}

static nq_job_spec spec(const char *queue, const char *type)
{
	return (nq_job_spec){.queue = queue,
	    .type = type,
	    .payload = "p",
	    .payload_len = 1,
	    .content_type = "text/plain",
	    .max_attempts = 1};
}

/* The queue's numbers on one shard's broker alone. */
static itest_qstats shard_stats(itest_env *e, const char *queue)
{
	nq_client *c;
	itest_qstats s;
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(itest_queue_stats(c, queue, &s, NULL), 0);
	nq_client_close(c);
	return s;
}

static void wait_succeeded(two *t, const char *id)
{
	nq_job *job = NULL;
	assert_int_equal(nq_wait(t->c, id, 30000, &job), NQ_OK);
	assert_int_equal(nq_job_state(job), NQ_STATE_SUCCEEDED);
	nq_job_free(job);
}

/* One batch of jobs of both shards' queues: each runs on its own shard,
 * ids never collide, stats add up both shards. */
static void test_shards_jobs_of_both_shards_run(void **state)
{
	two t;
	nq_job_spec specs[2 * NJOBS];
	nq_enqueue_result res[2 * NJOBS];
	two_start(&t, *state);
	worker_start(&t);
	for (int i = 0; i < 2 * NJOBS; i++)
		specs[i] = spec(i % 2 ? t.qb : t.qa, "ok");
	assert_int_equal(nq_enqueue_batch(t.c, specs, 2 * NJOBS, res), NQ_OK);
	for (int i = 0; i < 2 * NJOBS; i++) {
		uint64_t id;
		assert_int_equal(res[i].err, NQ_OK);
		assert_int_equal(nqi_id_parse(res[i].id, &id), 0);
		/* --shard-number: a's ids are 1 modulo 64, b's 2 */
		assert_int_equal(id % 64, i % 2 ? 2 : 1);
	}
	for (int i = 0; i < 2 * NJOBS; i++)
		wait_succeeded(&t, res[i].id);
	itest_qstats sa = shard_stats(t.a, t.qa), sb = shard_stats(t.b, t.qb);
	assert_int_equal(sa.succeeded_total, NJOBS);
	assert_int_equal(sb.succeeded_total, NJOBS);
	assert_int_equal(shard_stats(t.a, t.qb).enqueued_total, 0);
	assert_int_equal(shard_stats(t.b, t.qa).enqueued_total, 0);
	/* Through the map, stats of every queue add up the shards. */
	itest_qstats all;
	nq_broker_stats broker;
	assert_int_equal(itest_queue_stats(t.c, t.qb, &all, &broker), 0);
	assert_int_equal(all.succeeded_total, NJOBS);
	/* A list over the map pages through a's jobs, then b's. */
	size_t listed = 0;
	char after[200] = "";
	do {
		nq_list_opts lo = {.limit = 7, .after_id = after};
		nq_job_list *l = NULL;
		assert_int_equal(nq_list(t.c, &lo, &l), NQ_OK);
		listed += nq_job_list_count(l);
		snprintf(after, sizeof after, "%s", nq_job_list_next(l));
		nq_job_list_free(l);
	} while (after[0]);
	assert_int_equal(listed, 2 * NJOBS);
	/* nqctl with the map: the shard of each queue; a job of b by id. */
	itest_run run;
	char line[64];
	const char *const shard[] = {
	    "--brokers", t.map, "shard", t.qa, t.qb, NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, shard, &run), 0);
	snprintf(line, sizeof line, "%s a\n%s b\n", t.qa, t.qb);
	assert_string_equal(run.out, line);
	itest_run_free(&run);
	const char *const stats[] = {"--brokers", t.map, "stats", NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, stats, &run), 0);
	snprintf(line, sizeof line, "shard a: %s\n", t.qa);
	assert_non_null(strstr(run.out, line));
	snprintf(line, sizeof line, "shard b: %s\n", t.qb);
	assert_non_null(strstr(run.out, line));
	itest_run_free(&run);
	const char *const get[] = {
	    "--brokers", t.map, "--json", "get", res[1].id, NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, get, &run), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, t.qb));
	itest_run_free(&run);
	/* top over the map: one frame holds the queues of both shards. */
	const char *const top[] = {
	    "--brokers", t.map, "--json", "top", "--duration", "2500ms", NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, top, &run), 0);
	assert_int_equal(run.code, 0);
	bool both = false;
	for (char *l = strtok(run.out, "\n"); l; l = strtok(NULL, "\n"))
		both = both || (strstr(l, t.qa) && strstr(l, t.qb));
	assert_true(both);
	itest_run_free(&run);
	/* A chain stays on one shard. */
	nq_job_spec chain[2] = {spec(t.qa, "ok"), spec(t.qb, "ok")};
	assert_int_equal(nq_enqueue_chain(t.c, chain, 2, res), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(t.c), "one shard"));
	itest_pass(t.a);
	two_close(&t);
}

/* Shard b killed: a's queue still takes and runs jobs; b's queue fails
 * at once, naming the shard; a batch of both takes a's jobs. */
static void test_shards_one_killed_leaves_the_other(void **state)
{
	two t;
	char id[NQ_ID_MAX];
	two_start(&t, *state);
	worker_start(&t);
	assert_int_equal(itest_broker_stop(t.b, SIGKILL, NULL), 0);
	nq_job_spec s = spec(t.qa, "ok");
	assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
	wait_succeeded(&t, id);
	s = spec(t.qb, "ok");
	int rv = nq_enqueue(t.c, &s, id, NULL);
	assert_true(rv == NQ_ECONNECT || rv == NQ_ETIMEDOUT);
	assert_non_null(strstr(nq_client_last_error(t.c), "shard b"));
	nq_job_spec both[2] = {spec(t.qa, "ok"), spec(t.qb, "ok")};
	nq_enqueue_result res[2];
	assert_int_not_equal(nq_enqueue_batch(t.c, both, 2, res), NQ_OK);
	assert_int_equal(res[0].err, NQ_OK);
	assert_int_not_equal(res[1].err, NQ_OK);
	wait_succeeded(&t, res[0].id);
	itest_pass(t.a);
	two_close(&t);
}

/* A job of b's queue dies; b hands it to the one nq-dlq, which replays
 * it to b (the shard of its queue), not to a. */
static void test_shards_dlq_replays_to_the_queue_shard(void **state)
{
	two t;
	dlqt d;
	char id[NQ_ID_MAX];
	itest_run run;
	two_start(&t, *state);
	assert_int_equal(dlqt_init(&d, t.a), 0);
	const char *const flags[] = {"--brokers", t.map, NULL};
	assert_int_equal(dlqt_start(&d, flags, NULL), 0);
	worker_start(&t);
	nq_job_spec s = spec(t.qb, "bad");
	assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
	assert_int_equal(dlqt_wait_total(t.a->dlq_url, 1, 30000), 0);
	const char *const args[] = {
	    "--dlq", t.a->dlq_url, "dlq", "replay", id, NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, args, &run), 0);
	assert_int_equal(run.code, 0);
	itest_run_free(&run);
	assert_int_equal(shard_stats(t.b, t.qb).enqueued_total, 2);
	assert_int_equal(shard_stats(t.a, t.qb).enqueued_total, 0);
	assert_int_equal(dlqt_stop_clean(&d), 0);
	itest_pass(t.a);
	two_close(&t);
}

/* Shard b down during a replay of entries of both shards: a's is
 * replayed and leaves nq-dlq, b's stays for a later replay. */
static void test_shards_dlq_replay_with_a_shard_down(void **state)
{
	two t;
	dlqt d;
	char id[NQ_ID_MAX];
	itest_run run;
	two_start(&t, *state);
	assert_int_equal(dlqt_init(&d, t.a), 0);
	const char *const flags[] = {"--brokers", t.map, NULL};
	assert_int_equal(dlqt_start(&d, flags, NULL), 0);
	worker_start(&t);
	nq_job_spec s = spec(t.qa, "bad");
	assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
	s = spec(t.qb, "bad");
	assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
	assert_int_equal(dlqt_wait_total(t.a->dlq_url, 2, 30000), 0);
	assert_int_equal(itest_broker_stop(t.b, SIGKILL, NULL), 0);
	const char *const args[] = {
	    "--dlq", t.a->dlq_url, "dlq", "replay", "--all", NULL};
	assert_int_equal(itest_nqctl_argv(t.a, 30000, args, &run), 0);
	assert_int_not_equal(run.code, 0);
	assert_non_null(strstr(run.err, "replayed 1, not replayed 1"));
	itest_run_free(&run);
	assert_int_equal(shard_stats(t.a, t.qa).enqueued_total, 2);
	assert_int_equal(dlqt_stop_clean(&d), 0);
	itest_pass(t.a);
	two_close(&t);
}

/* The batch on shard: a client of that broker alone has it. */
static void assert_batch_on(itest_env *shard, const char *id)
{
	nq_client *c;
	nq_batch_info b;
	assert_int_equal(itest_client(shard, 5000, &c), 0);
	assert_int_equal(nq_batch_get(c, id, &b), NQ_OK);
	nq_client_close(c);
}

/* Waits until batch id completed and each of its callbacks succeeded. */
static void wait_batch_done(two *t, const char *id, nq_batch_info *b)
{
	uint64_t end = itest_now_ms() + 30000;
	do {
		assert_int_equal(nq_batch_get(t->c, id, b), NQ_OK);
		if (!b->completed_us)
			itest_sleep_ms(50);
	} while (!b->completed_us && itest_now_ms() < end);
	assert_true(b->completed_us != 0);
	if (b->on_success.queue[0])
		wait_succeeded(t, b->on_success.job_id);
	if (b->on_complete.queue[0])
		wait_succeeded(t, b->on_complete.job_id);
}

/* nqctl with the map: its exit status. */
static int nqctl_map(two *t, const char *const *args, itest_run *run)
{
	const char *argv[16] = {"--brokers", t->map};
	size_t n = 2;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	assert_int_equal(itest_nqctl_argv(t->a, 30000, argv, run), 0);
	return run->code;
}

/* Batches over the map: made through nqctl on the shard of its
 * callbacks' queue (b, the second of the map), filled and sealed; it
 * completes and each callback is enqueued once, on b. One request's
 * batch (a) too; list merges both shards; a batch over two shards in one
 * request is refused and stores nothing. */
static void test_shards_batch_completes_on_its_shard(void **state)
{
	two t;
	itest_run run;
	char id[NQ_ID_MAX], id2[NQ_ID_MAX], cb[40];
	nq_batch_info b;
	two_start(&t, *state);
	worker_start(&t);
	snprintf(cb, sizeof cb, "%s:ok", t.qb);
	const char *const create[] = {
	    "batch", "create", "--on-complete", cb, "--on-success", cb, NULL};
	assert_int_equal(nqctl_map(&t, create, &run), 0);
	assert_int_equal(itest_run_id(&run, id), 0);
	itest_run_free(&run);
	assert_batch_on(t.b, id);
	const char *const add[] = {
	    "batch", "add", id, t.qb, "ok", "--count", "5", NULL};
	assert_int_equal(nqctl_map(&t, add, &run), 0);
	itest_run_free(&run);
	const char *const seal[] = {"batch", "seal", id, NULL};
	assert_int_equal(nqctl_map(&t, seal, &run), 0);
	itest_run_free(&run);
	wait_batch_done(&t, id, &b);
	assert_int_equal(b.total, 5);
	assert_int_equal(b.succeeded, 5);
	/* Once: 5 jobs and 2 callbacks on b, still after a while; none on a */
	itest_sleep_ms(300);
	assert_int_equal(shard_stats(t.b, t.qb).enqueued_total, 7);
	assert_int_equal(shard_stats(t.a, t.qb).enqueued_total, 0);
	/* One request: the batch, its jobs and callback on a. */
	nq_job_spec jobs[3] = {spec(t.qa, "ok"), spec(t.qa, "ok"),
	    spec(t.qa, "ok")},
	            done = spec(t.qa, "ok");
	nq_enqueue_result res[3];
	assert_int_equal(
	    nq_batch_enqueue(t.c, jobs, 3, NULL, &done, res, id2), NQ_OK);
	assert_batch_on(t.a, id2);
	wait_batch_done(&t, id2, &b);
	assert_int_equal(b.succeeded, 3);
	assert_int_equal(shard_stats(t.a, t.qa).enqueued_total, 4);
	/* A list pages through the batches of both shards, oldest first. */
	nq_batch_info page[1];
	size_t n, listed = 0;
	char after[NQ_ID_MAX] = "", prev[NQ_ID_MAX] = "";
	do {
		assert_int_equal(
		    nq_batch_list(t.c, after, 1, page, &n, after), NQ_OK);
		for (size_t i = 0; i < n; i++, listed++) {
			assert_true(strcmp(prev, page[i].id) < 0);
			memcpy(prev, page[i].id, sizeof prev);
		}
	} while (after[0]);
	assert_int_equal(listed, 2);
	/* Jobs of both shards in one batch request: refused, none stored. */
	jobs[1] = spec(t.qb, "ok");
	assert_int_equal(
	    nq_batch_enqueue(t.c, jobs, 3, NULL, &done, res, id2), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(t.c), "one shard"));
	assert_int_equal(shard_stats(t.a, t.qa).enqueued_total, 4);
	assert_int_equal(shard_stats(t.b, t.qb).enqueued_total, 7);
	itest_pass(t.a);
	two_close(&t);
}

/* A batch on b takes no job of a's queue: refused, naming the batch's
 * shard, the queue and its shard, and nothing changes; seal and cancel
 * find it on b; a batch without a queue, or with callbacks on both
 * shards, is refused. */
static void test_shards_batch_refuses_a_job_of_another_shard(void **state)
{
	two t;
	itest_run run;
	char id[NQ_ID_MAX], want[120];
	nq_batch_info b;
	two_start(&t, *state);
	assert_int_equal(
	    nq_batch_create_in(t.c, t.qb, NULL, NULL, false, id), NQ_OK);
	assert_batch_on(t.b, id);
	const char *const add[] = {"batch", "add", id, t.qa, "ok", NULL};
	assert_int_equal(nqctl_map(&t, add, &run), 1);
	snprintf(want, sizeof want, "is on shard b, queue %s on shard a", t.qa);
	assert_non_null(strstr(run.err, want));
	itest_run_free(&run);
	nq_job_spec s = spec(t.qa, "ok");
	s.batch_id = id;
	assert_int_equal(nq_enqueue(t.c, &s, NULL, NULL), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(t.c), want));
	assert_int_equal(shard_stats(t.a, t.qa).enqueued_total, 0);
	assert_int_equal(nq_batch_seal(t.c, id, &b), NQ_OK);
	assert_int_equal(b.total, 0);
	assert_true(b.sealed);
	const char *const cancel[] = {"batch", "cancel", id, NULL};
	assert_int_equal(nqctl_map(&t, cancel, &run), 0);
	itest_run_free(&run);
	assert_int_equal(nq_batch_get(t.c, id, &b), NQ_OK);
	assert_true(b.cancel_requested);
	/* Where would it live? Nowhere said, or two shards. */
	nq_job_spec ok = spec(t.qa, "ok"), done = spec(t.qb, "ok");
	assert_int_equal(
	    nq_batch_create(t.c, NULL, NULL, false, id), NQ_EINVAL);
	assert_non_null(strstr(nq_client_last_error(t.c), "needs a queue"));
	assert_int_equal(
	    nq_batch_create(t.c, &ok, &done, false, id), NQ_EINVAL);
	snprintf(want, sizeof want,
	    "on_success (queue %s) is on shard a, on_complete (queue %s) on "
	    "shard b",
	    t.qa, t.qb);
	assert_non_null(strstr(nq_client_last_error(t.c), want));
	itest_pass(t.a);
	two_close(&t);
}

/* Whether the events log shows an event of queue from shard. */
static bool event_seen(const char *log, const char *shard, const char *queue)
{
	char want[80];
	snprintf(want, sizeof want, "{\"shard\":\"%s\",", shard);
	for (const char *l = strstr(log, want); l; l = strstr(l + 1, want)) {
		const char *eol = strchr(l, '\n');
		char q[40];
		snprintf(q, sizeof q, "\"queue\":\"%s\"", queue);
		const char *at = strstr(l, q);
		if (at && (!eol || at < eol))
			return true;
	}
	return false;
}

/* nqctl events with the map reads every shard's events, each with its
 * shard; nq-bench runs over the map. */
static void test_shards_events_and_bench_over_the_map(void **state)
{
	two t;
	itest_proc *sub;
	itest_run run;
	char *log = NULL;
	char id[NQ_ID_MAX];
	two_start(&t, *state);
	const char *const argv[] = {ITEST_NQCTL_PATH, "--brokers", t.map,
	    "events", "--state", "enqueued", "--duration", "30s", NULL};
	assert_int_equal(itest_spawn(t.a, "events", argv, NULL, &sub), 0);
	bool both = false;
	uint64_t end = itest_now_ms() + 20000;
	while (!both && itest_alive(sub) && itest_now_ms() < end) {
		nq_job_spec s = spec(t.qa, "ok");
		assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
		s = spec(t.qb, "ok");
		assert_int_equal(nq_enqueue(t.c, &s, id, NULL), NQ_OK);
		itest_sleep_ms(200);
		free(log);
		log = NULL;
		assert_int_equal(itest_read_file(sub->log, &log, NULL), 0);
		both = event_seen(log, "a", t.qa) && event_seen(log, "b", t.qb);
	}
	free(log);
	assert_true(both);
	assert_int_equal(itest_signal(sub, SIGTERM), 0);
	assert_int_equal(itest_wait_exit(sub, 5000), 0);
	assert_true(WIFEXITED(sub->status));
	assert_int_equal(WEXITSTATUS(sub->status), 0);
	/* nq-bench: its queue on b, its side queue on a. */
	char qb[16], qa[16];
	queue_named(t.c, "b", "bench", qb, sizeof qb);
	queue_named(t.c, "a", "side", qa, sizeof qa);
	const char *const bench[] = {"--brokers", t.map, "--jobs", "200",
	    "--workers", "1", "--concurrency", "4", "--queue", qb,
	    "--side-queue", qa, "--side-jobs", "50", NULL};
	assert_int_equal(
	    itest_tool_argv(t.a, ITEST_BENCH_PATH, 60000, bench, &run), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "side_started=50"));
	itest_run_free(&run);
	assert_int_equal(shard_stats(t.b, qb).succeeded_total, 200);
	assert_int_equal(shard_stats(t.a, qa).succeeded_total, 50);
	itest_pass(t.a);
	two_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_shards_jobs_of_both_shards_run,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_one_killed_leaves_the_other, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_dlq_replays_to_the_queue_shard, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_dlq_replay_with_a_shard_down, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_batch_completes_on_its_shard, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_batch_refuses_a_job_of_another_shard, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_shards_events_and_bench_over_the_map, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
