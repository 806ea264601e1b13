/* The broker's request handlers driven in-process through the embedded
 * broker: the same bytes the sockets carry, a real LMDB store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "embed_fixture.h"
#include "nqi/queue_fields.h"
#include "nqi/util.h"
#include "nqi/store.h"
#include "nq/nq.h"
#include "nqi/codec.h"

static int setup(void **st)
{
	return embed_fixture_setup(st, "embed");
}

static int teardown(void **st)
{
	return embed_fixture_teardown(st);
}

static Nq__V1__Reply *call(fixture *f, Nq__V1__Request *req, bool work)
{
	return embed_fixture_call(f, req, work);
}

static Nq__V1__Reply *enqueue_reply(
    fixture *f, const char *queue, uint32_t max_attempts)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	spec.queue = (char *)queue;
	spec.type = "t";
	spec.max_attempts = max_attempts;
	enq.jobs = specs;
	enq.n_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_ENQUEUE);
	return r;
}

static char *enqueue(fixture *f, const char *queue, uint32_t max_attempts)
{
	Nq__V1__Reply *r = enqueue_reply(f, queue, max_attempts);
	assert_null(r->enqueue->results[0]->status);
	char *id = strdup(r->enqueue->results[0]->id);
	nq__v1__reply__free_unpacked(r, NULL);
	return id;
}

static Nq__V1__Reply *fetch_as(
    fixture *f, const char *queue, const char *worker, uint32_t max_jobs)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest fr = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {(char *)queue};
	fr.worker_id = (char *)worker;
	fr.queues = queues;
	fr.n_queues = 1;
	fr.max_jobs = max_jobs;
	fr.wait_ms = 5000; /* the embedded broker never parks */
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fr;
	return call(f, &req, true);
}

static Nq__V1__Reply *fetch(fixture *f, const char *queue)
{
	return fetch_as(f, queue, "w1", 10);
}

/* Ends job's attempt with o; result (a string) is what a success keeps. */
static void complete_with(
    fixture *f, const Nq__V1__Job *job, Nq__V1__Outcome o, const char *result)
{
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion c = NQ__V1__COMPLETION__INIT, *cs[] = {&c};
	uint8_t *buf;
	size_t len;
	c.id = job->id;
	c.lease_token = job->lease_token;
	c.outcome = o;
	c.result.data = (uint8_t *)result;
	c.result.len = strlen(result);
	c.error = "boom";
	b.version = 1;
	b.completions = cs;
	b.n_completions = 1;
	assert_int_equal(nqi_buf_pack(&b.base, &buf, &len), 0);
	assert_int_equal(broker_embed_completions(f->e, buf, len), 0);
	free(buf);
}

static void complete(fixture *f, const Nq__V1__Job *job, Nq__V1__Outcome o)
{
	complete_with(f, job, o, "done");
}

static Nq__V1__Job *get(fixture *f, const char *id, Nq__V1__Reply **keep)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
	g.id = (char *)id;
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &g;
	*keep = call(f, &req, false);
	return (*keep)->body_case == NQ__V1__REPLY__BODY_GET ? (*keep)->get->job
	                                                     : NULL;
}

static void test_embed_job_runs_to_succeeded(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *g;
	char *id = enqueue(f, "q", 0);
	r = fetch(f, "q");
	assert_int_equal(r->fetch->n_jobs, 1);
	assert_string_equal(r->fetch->jobs[0]->id, id);
	assert_int_equal(r->fetch->jobs[0]->attempt, 1);
	/* The fetched job is the stored record with the lease's fields. */
	assert_int_equal(
	    r->fetch->jobs[0]->state, NQ__V1__JOB_STATE__JOB_STATE_LEASED);
	assert_true(r->fetch->jobs[0]->lease_token != 0);
	assert_true(r->fetch->jobs[0]->lease_expires_us != 0);
	assert_true(r->fetch->jobs[0]->started_us != 0);
	assert_string_equal(r->fetch->jobs[0]->spec->queue, "q");
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	Nq__V1__Job *job = get(f, id, &g);
	assert_int_equal(job->state, NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
	assert_int_equal(job->result.len, 4);
	assert_memory_equal(job->result.data, "done", 4);
	/* A finished job holds no lease any more. */
	assert_int_equal(job->lease_token, 0);
	assert_int_equal(job->lease_expires_us, 0);
	assert_int_equal(job->attempt, 1);
	assert_true(job->finished_us >= job->started_us);
	nq__v1__reply__free_unpacked(g, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

/* Opens the broker's store itself, with only database name. */
static nqi_store *store_db(fixture *f, const char *name)
{
	const nqi_store_db dbs[] = {{name, NULL}, {NULL, NULL}};
	nqi_store_opts o = {.dir = f->dir,
	    .map_size = 256u << 20,
	    .dbs = dbs,
	    .schema_version = 1};
	nqi_store *s = NULL;
	char err[256];
	assert_int_equal(nqi_store_open(&s, &o, err, sizeof err), 0);
	return s;
}

/* The size of job id's record as stored, its room included. */
static size_t stored_size(fixture *f, const char *id)
{
	uint64_t n = 0;
	size_t size = 0;
	assert_int_equal(nqi_id_parse(id, &n), 0);
	assert_int_equal(broker_embed_record_size(f->e, n, &size), 0);
	return size;
}

/* Runs job id to success, leased by worker with result; returns the
 * record's size after, and checks that neither the fetched job nor the
 * job got after it shows the record's room. */
static size_t run_record(
    fixture *f, const char *id, const char *worker, const char *result)
{
	Nq__V1__Reply *r = fetch_as(f, "q", worker, 1), *g;
	assert_int_equal(r->fetch->n_jobs, 1);
	Nq__V1__Job *leased = r->fetch->jobs[0];
	assert_string_equal(leased->id, id);
	assert_int_equal(leased->base.n_unknown_fields, 0); /* no room */
	assert_string_equal(leased->worker_id, worker);
	complete_with(f, leased, NQ__V1__OUTCOME__OUTCOME_SUCCEEDED, result);
	Nq__V1__Job *job = get(f, id, &g);
	assert_int_equal(job->state, NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
	assert_int_equal(job->base.n_unknown_fields, 0);
	assert_int_equal(job->result.len, strlen(result));
	assert_memory_equal(job->result.data, result, strlen(result));
	assert_string_equal(job->worker_id, worker);
	nq__v1__reply__free_unpacked(g, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	return stored_size(f, id);
}

/* A record is stored with room for its lease and success, as much as
 * the last ones took, so that they rewrite it in place rather than grow
 * it and split its page. Before any lease there is none; a lease and a
 * result too long for the room grow the record, which reads back whole;
 * a restart keeps the records as they are. */
static void test_embed_record_keeps_its_size_to_success(void **st)
{
	fixture *f = *st;
	const char *pod = "thumbnails-worker-7d9f8b6c5-x2kzq-12-ab01";
	const char *ok = "{\"ok\":true}";
	char *first = enqueue(f, "q", 0);
	size_t bare = stored_size(f, first);
	assert_true(run_record(f, first, pod, ok) > bare);
	char *id = enqueue(f, "q", 0), *id2 = enqueue(f, "q", 0);
	size_t before = stored_size(f, id);
	assert_true(before > bare);
	assert_int_equal(stored_size(f, id2), before);
	assert_int_equal(run_record(f, id, pod, ok), before);
	char big[201], worker[101];
	memset(big, 'r', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memset(worker, 'w', sizeof worker - 1);
	worker[sizeof worker - 1] = '\0';
	assert_true(run_record(f, id2, worker, big) > before);
	embed_fixture_restart(f);
	assert_int_equal(stored_size(f, id), before);
	Nq__V1__Reply *g;
	Nq__V1__Job *job = get(f, id2, &g);
	assert_int_equal(job->base.n_unknown_fields, 0);
	assert_int_equal(job->result.len, strlen(big));
	nq__v1__reply__free_unpacked(g, NULL);
	free(first);
	free(id);
	free(id2);
}

static void cancel(fixture *f, const char *id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__CancelRequest c = NQ__V1__CANCEL_REQUEST__INIT;
	c.id = (char *)id;
	req.body_case = NQ__V1__REQUEST__BODY_CANCEL;
	req.cancel = &c;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_null(r->status);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* A job canceled while ready is never leased, also on the path that leases
 * jobs without decoding their records; the others are, once each, and
 * their records hold the lease. */
static void test_embed_canceled_ready_job_is_not_fetched(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *g, *again;
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = enqueue(f, "q", 0);
	cancel(f, ids[1]);
	r = fetch(f, "q");
	assert_int_equal(r->fetch->n_jobs, 2);
	assert_string_equal(r->fetch->jobs[0]->id, ids[0]);
	assert_string_equal(r->fetch->jobs[1]->id, ids[2]);
	for (int i = 0; i < 2; i++) {
		Nq__V1__Job *job = get(f, r->fetch->jobs[i]->id, &g);
		assert_int_equal(
		    job->state, NQ__V1__JOB_STATE__JOB_STATE_LEASED);
		assert_int_equal(job->attempt, 1);
		assert_string_equal(job->worker_id, "w1");
		assert_int_equal(
		    job->lease_token, r->fetch->jobs[i]->lease_token);
		nq__v1__reply__free_unpacked(g, NULL);
	}
	Nq__V1__Job *gone = get(f, ids[1], &g);
	assert_int_equal(gone->state, NQ__V1__JOB_STATE__JOB_STATE_CANCELED);
	nq__v1__reply__free_unpacked(g, NULL);
	again = fetch(f, "q");
	assert_int_equal(again->fetch->n_jobs, 0);
	nq__v1__reply__free_unpacked(again, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
}

static void test_embed_failure_without_attempts_left_is_dead(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *g;
	char *id = enqueue(f, "q", 1);
	r = fetch(f, "q");
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_FAILED);
	Nq__V1__Job *job = get(f, id, &g);
	assert_int_equal(job->state, NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	assert_string_equal(job->dead_reason, "max_attempts");
	assert_int_equal(job->n_errors, 1);
	assert_string_equal(job->errors[0]->message, "boom");
	nq__v1__reply__free_unpacked(g, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

static void test_embed_release_refunds_the_attempt(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *r2;
	char *id = enqueue(f, "q", 0);
	r = fetch(f, "q");
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_RELEASED);
	r2 = fetch(f, "q");
	assert_int_equal(r2->fetch->n_jobs, 1);
	assert_int_equal(r2->fetch->jobs[0]->attempt, 1);
	nq__v1__reply__free_unpacked(r, NULL);
	nq__v1__reply__free_unpacked(r2, NULL);
	free(id);
}

static void test_embed_malformed_bytes_get_invalid_argument(void **st)
{
	fixture *f = *st;
	uint8_t *out;
	size_t len;
	const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
	assert_int_equal(
	    broker_embed_request(f->e, junk, sizeof junk, false, &out, &len),
	    0);
	Nq__V1__Reply *r = nqi_reply_unpack(out, len);
	free(out);
	assert_non_null(r);
	assert_non_null(r->status);
	assert_int_equal(r->status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(
	    broker_embed_completions(f->e, junk, sizeof junk), NQ_EINVAL);
}

/* ---- queues: settings and stats ---- */

static nqi_store *queues_db(fixture *f)
{
	return store_db(f, "queues");
}

/* Writes a queue's QueueConfig into the store, as a broker that knows more
 * settings would; the broker is closed meanwhile. */
static void config_put(fixture *f, const char *queue, Nq__V1__QueueConfig *c)
{
	MDB_txn *txn;
	uint8_t buf[64];
	broker_embed_close(f->e);
	nqi_store *s = queues_db(f);
	MDB_val k = {strlen(queue), (void *)queue};
	MDB_val v = {nq__v1__queue_config__pack(c, buf), buf};
	assert_int_equal(nqi_store_begin(s, true, &txn), 0);
	assert_int_equal(mdb_put(txn, nqi_store_dbi(s, 0), &k, &v, 0), 0);
	assert_int_equal(nqi_store_commit(s, txn), 0);
	nqi_store_close(s);
	assert_int_equal(broker_embed_open(&f->e, f->dir), 0);
}

/* Reads a queue's stored QueueConfig; the broker is closed meanwhile. */
static Nq__V1__QueueConfig *config_get(fixture *f, const char *queue)
{
	MDB_txn *txn;
	broker_embed_close(f->e);
	nqi_store *s = queues_db(f);
	MDB_val k = {strlen(queue), (void *)queue}, v;
	assert_int_equal(nqi_store_begin(s, false, &txn), 0);
	assert_int_equal(mdb_get(txn, nqi_store_dbi(s, 0), &k, &v), 0);
	Nq__V1__QueueConfig *c =
	    nq__v1__queue_config__unpack(NULL, v.mv_size, v.mv_data);
	mdb_txn_abort(txn);
	nqi_store_close(s);
	assert_non_null(c);
	assert_int_equal(broker_embed_open(&f->e, f->dir), 0);
	return c;
}

static void set_paused(fixture *f, const char *queue, bool paused)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__PauseRequest p = NQ__V1__PAUSE_REQUEST__INIT;
	Nq__V1__ResumeRequest r = NQ__V1__RESUME_REQUEST__INIT;
	p.queue = r.queue = (char *)queue;
	req.body_case =
	    paused ? NQ__V1__REQUEST__BODY_PAUSE : NQ__V1__REQUEST__BODY_RESUME;
	req.pause = &p;
	if (!paused)
		req.resume = &r;
	Nq__V1__Reply *rep = call(f, &req, false);
	assert_null(rep->status);
	assert_int_equal(rep->queue->paused, paused);
	nq__v1__reply__free_unpacked(rep, NULL);
}

/* The status code of enqueueing one job (OK: taken). */
static int enqueue_code(fixture *f, const char *queue)
{
	Nq__V1__Reply *r = enqueue_reply(f, queue, 0);
	const Nq__V1__Status *st = r->enqueue->results[0]->status;
	int code = st ? (int)st->code : 0;
	nq__v1__reply__free_unpacked(r, NULL);
	return code;
}

/* The stats of one queue; *keep holds them until freed. */
static Nq__V1__QueueStats *stats(
    fixture *f, const char *queue, Nq__V1__Reply **keep)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest sr = NQ__V1__STATS_REQUEST__INIT;
	sr.queue = (char *)queue;
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	*keep = call(f, &req, false);
	assert_int_equal((*keep)->body_case, NQ__V1__REPLY__BODY_STATS);
	assert_int_equal((*keep)->stats->n_queues, 1);
	return (*keep)->stats->queues[0];
}

/* A pause and a resume change paused only: the other stored fields stay,
 * those this broker does not use too, and the queue's max_depth applies
 * across a restart (with no --max-depth). */
static void test_embed_pause_and_resume_keep_the_other_settings(void **st)
{
	fixture *f = *st;
	Nq__V1__QueueConfig c = NQ__V1__QUEUE_CONFIG__INIT;
	Nq__V1__Reply *keep;
	c.max_depth = 2;
	c.max_attempts = 3;
	c.result_ttl_ms = 5000;
	config_put(f, "q", &c);
	set_paused(f, "q", true);
	Nq__V1__QueueConfig *got = config_get(f, "q");
	assert_true(got->paused);
	nq__v1__queue_config__free_unpacked(got, NULL);
	assert_true(stats(f, "q", &keep)->paused); /* after a restart */
	nq__v1__reply__free_unpacked(keep, NULL);
	set_paused(f, "q", false);
	got = config_get(f, "q");
	assert_false(got->paused);
	assert_int_equal(got->max_depth, 2);
	assert_int_equal(got->max_attempts, 3);
	assert_int_equal(got->result_ttl_ms, 5000);
	nq__v1__queue_config__free_unpacked(got, NULL);
	assert_int_equal(enqueue_code(f, "q"), 0);
	assert_int_equal(enqueue_code(f, "q"), 0);
	assert_int_equal(
	    enqueue_code(f, "q"), NQ__V1__CODE__RESOURCE_EXHAUSTED);
	assert_int_equal(enqueue_code(f, "other"), 0);
}

/* Sets (pairs "k", "v", ... NULL) or, with reset, resets (keys) the policy
 * of queue q; returns the reply. */
static Nq__V1__Reply *policy_call_on(
    fixture *f, const char *queue, bool reset, const char **kv)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicySetRequest s =
	    NQ__V1__QUEUE_POLICY_SET_REQUEST__INIT;
	Nq__V1__QueuePolicyResetRequest r =
	    NQ__V1__QUEUE_POLICY_RESET_REQUEST__INIT;
	Nq__V1__PolicySetting v[8], *pv[8];
	size_t n = 0;
	for (; kv[reset ? n : 2 * n] && n < 8; n++) {
		nq__v1__policy_setting__init(&v[n]);
		v[n].key = (char *)kv[2 * n];
		v[n].value = (char *)kv[2 * n + 1];
		pv[n] = &v[n];
		if (reset)
			v[n].key = (char *)kv[n];
	}
	s.queue = r.queue = (char *)queue;
	s.n_settings = n;
	s.settings = pv;
	r.n_keys = n;
	r.keys = (char **)kv;
	req.body_case = reset ? NQ__V1__REQUEST__BODY_POLICY_RESET
	                      : NQ__V1__REQUEST__BODY_POLICY_SET;
	req.policy_set = &s;
	if (reset)
		req.policy_reset = &r;
	return call(f, &req, false);
}

static Nq__V1__Reply *policy_call(fixture *f, bool reset, const char **kv)
{
	return policy_call_on(f, "q", reset, kv);
}

/* The value and source queue q's policy gives key, by a get. */
static void policy_is(
    fixture *f, const char *key, const char *value, const char *source)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicyGetRequest g =
	    NQ__V1__QUEUE_POLICY_GET_REQUEST__INIT;
	g.queue = "q";
	req.body_case = NQ__V1__REQUEST__BODY_POLICY_GET;
	req.policy_get = &g;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_POLICY_GET);
	const Nq__V1__QueuePolicy *p = r->policy_get->queues[0];
	bool found = false;
	for (size_t i = 0; i < p->n_values; i++)
		if (strcmp(p->values[i]->key, key) == 0) {
			assert_string_equal(p->values[i]->value, value);
			assert_string_equal(p->values[i]->source, source);
			found = true;
		}
	assert_true(found);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Runtime policy values are stored with the queue (kept over a restart,
 * the paused flag untouched), a bad pair changes nothing and names its
 * key, and a reset drops only the keys it names. */
static void test_embed_policy_set_stores_and_reset_drops(void **st)
{
	fixture *f = *st;
	set_paused(f, "q", true);
	Nq__V1__Reply *r = policy_call(
	    f, false, (const char *[]){"max_depth", "1", "types", "t", NULL});
	assert_null(r->status);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_POLICY_SET);
	nq__v1__reply__free_unpacked(r, NULL);
	r = policy_call(
	    f, false, (const char *[]){"timeout", "1s", "rate", "-1/s", NULL});
	assert_int_equal(r->status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "rate"));
	nq__v1__reply__free_unpacked(r, NULL);

	Nq__V1__QueueConfig *c = config_get(f, "q"); /* restarts too */
	assert_true(c->paused);
	assert_int_equal(c->n_policy, 2);
	assert_int_equal(c->max_depth, 1);
	nq__v1__queue_config__free_unpacked(c, NULL);
	policy_is(f, "timeout", "5m", "default");
	policy_is(f, "types", "t", "runtime");
	assert_int_equal(enqueue_code(f, "q"), 0);
	assert_int_equal(
	    enqueue_code(f, "q"), NQ__V1__CODE__RESOURCE_EXHAUSTED);

	r = policy_call(f, true, (const char *[]){"max_depth", NULL});
	assert_null(r->status);
	nq__v1__reply__free_unpacked(r, NULL);
	policy_is(f, "max_depth", "", "default");
	policy_is(f, "types", "t", "runtime");
	assert_int_equal(enqueue_code(f, "q"), 0);
	c = config_get(f, "q");
	assert_int_equal(c->n_policy, 1);
	assert_int_equal(c->max_depth, 0);
	nq__v1__queue_config__free_unpacked(c, NULL);
}

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A retry waits out its queue's backoff (1 ms here), not the broker's
 * (up to 1 s for a first retry). */
static void test_embed_retry_takes_the_queue_backoff(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *g;
	r = policy_call(f, false,
	    (const char *[]){
	        "backoff.base", "1ms", "backoff.cap", "1ms", NULL});
	assert_null(r->status);
	nq__v1__reply__free_unpacked(r, NULL);
	char *id = enqueue(f, "q", 0);
	r = fetch(f, "q");
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_FAILED);
	uint64_t after_us = wall_us();
	Nq__V1__Job *job = get(f, id, &g);
	assert_int_equal(job->attempt, 1);
	assert_true(job->run_at_us <= after_us + 1000);
	nq__v1__reply__free_unpacked(g, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

/* Every uint64 field of QueueStats but oldest_ready_us is a row of
 * NQI_QUEUE_FIELDS kept by the core, and every such row is one: a counter
 * added to one and not the other is caught. */
static void test_embed_stats_fields_are_the_queue_rows(void **st)
{
	(void)st;
	const ProtobufCMessageDescriptor *d = &nq__v1__queue_stats__descriptor;
	const nqi_queue_field *rows = nqi_queue_fields();
	size_t core = 0;
	for (size_t i = 0; i < NQI_QF_COUNT; i++) {
		if (rows[i].kind == NQI_QF_SNAP)
			continue;
		const ProtobufCFieldDescriptor *fd =
		    protobuf_c_message_descriptor_get_field_by_name(
		        d, rows[i].name);
		if (!fd || fd->type != PROTOBUF_C_TYPE_UINT64)
			fail_msg("row %s is no uint64 field of QueueStats",
			    rows[i].name);
		core++;
	}
	size_t fields = 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const char *name = d->fields[i].name;
		if (d->fields[i].type != PROTOBUF_C_TYPE_UINT64 ||
		    strcmp(name, "oldest_ready_us") == 0)
			continue;
		const nqi_queue_field *row = nqi_queue_field_find(name);
		if (!row || row->kind == NQI_QF_SNAP)
			fail_msg("QueueStats.%s has no row", name);
		fields++;
	}
	assert_int_equal(core, fields);
}

/* The stats reply carries the core's counters. */
static void test_embed_stats_count_by_state(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *keep;
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = enqueue(f, "q", 1);
	cancel(f, ids[2]);
	r = fetch(f, "q");
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	Nq__V1__QueueStats *q = stats(f, "q", &keep);
	assert_string_equal(q->queue, "q");
	assert_int_equal(q->enqueued_total, 3);
	assert_int_equal(q->succeeded_total, 1);
	assert_int_equal(q->succeeded, 1);
	assert_int_equal(q->leased, 1);
	assert_int_equal(q->canceled, 1);
	assert_int_equal(q->ready, 0);
	assert_false(q->paused);
	nq__v1__reply__free_unpacked(keep, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
}

/* A message that quotes 40 bytes of a name or id cut inside a character
 * is still text, so the reply decodes (call() uses the strict decoder)
 * and says what was wrong. */
static void test_embed_error_messages_are_text(void **st)
{
	fixture *f = *st;
	char name[64], id[64];
	Nq__V1__Reply *r;
	memset(name, 'a', 39);
	snprintf(name + 39, sizeof name - 39, "\xc3\xa9");
	r = enqueue_reply(f, name, 1);
	Nq__V1__Status *st1 = r->enqueue->results[0]->status;
	assert_int_equal(st1->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(st1->message, "\xef\xbf\xbd' must match"));
	nq__v1__reply__free_unpacked(r, NULL);
	memset(id, '0', 39);
	snprintf(id + 39, sizeof id - 39, "\xc3\xa9");
	assert_null(get(f, id, &r));
	assert_int_equal(r->status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "is not 16 hex digits"));
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Sets every field of spec, read from JobSpec's descriptor, to a value
 * the broker takes (1, "x"), so that a field added to JobSpec is set too. */
/* Sets every field of m to 1, "x" or one byte; a message field gets a
 * message filled alike, from static room (JobSpec.unique is the one). */
static void fill_message(ProtobufCMessage *m)
{
	static uint8_t byte = 'x';
	static _Alignas(max_align_t) uint8_t room[4][256];
	static size_t used;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		char *p = (char *)m + fd->offset;
		const ProtobufCMessageDescriptor *sub = fd->descriptor;
		/* A list (depends_on) names other jobs: their own tests
		 * check it is kept (test_embed_depends_*). */
		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		assert_int_equal(fd->label, PROTOBUF_C_LABEL_NONE);
		switch (fd->type) {
		case PROTOBUF_C_TYPE_STRING:
			*(const char **)p = "x";
			break;
		case PROTOBUF_C_TYPE_BYTES:
			*(ProtobufCBinaryData *)p =
			    (ProtobufCBinaryData){1, &byte};
			break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_UINT64:
			*(uint64_t *)p = 1;
			break;
		case PROTOBUF_C_TYPE_MESSAGE:
			assert_true(used < 4 && sub->sizeof_message <= 256);
			protobuf_c_message_init(sub, room[used]);
			*(void **)p = room[used];
			fill_message((ProtobufCMessage *)room[used++]);
			break;
		default:
			*(uint32_t *)p = 1;
		}
	}
}

static void fill_spec(Nq__V1__JobSpec *spec)
{
	fill_message(&spec->base);
}

/* A field of Job named like one of JobSpec is its effective value, which
 * the spec's wins when set. */
static void assert_effective_values(
    const Nq__V1__Job *job, const Nq__V1__JobSpec *spec)
{
	const ProtobufCMessageDescriptor *d = &nq__v1__job_spec__descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *sf = &d->fields[i];
		const ProtobufCFieldDescriptor *jf =
		    protobuf_c_message_descriptor_get_field_by_name(
		        &nq__v1__job__descriptor, sf->name);
		if (!jf || jf->type != sf->type)
			continue;
		const char *want = (const char *)spec + sf->offset;
		const char *got = (const char *)job + jf->offset;
		if (sf->type == PROTOBUF_C_TYPE_STRING)
			assert_string_equal(
			    *(char *const *)got, *(char *const *)want);
		else if (sf->type == PROTOBUF_C_TYPE_INT64 ||
		         sf->type == PROTOBUF_C_TYPE_UINT64)
			assert_int_equal(
			    *(const uint64_t *)got, *(const uint64_t *)want);
		else if (sf->type != PROTOBUF_C_TYPE_BYTES)
			assert_int_equal(
			    *(const uint32_t *)got, *(const uint32_t *)want);
	}
}

/* A new job's record is stored on a fast path (its spec packed before the
 * core runs, a short head of Job's fields; see broker/jobs.c): the job
 * read back has every field of its spec, and every effective value the
 * broker took from it. */
static void test_embed_enqueue_keeps_every_field_of_the_spec(void **st)
{
	fixture *f = *st;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	Nq__V1__Reply *r, *g;
	uint8_t *want, *got;
	size_t wlen, glen;
	fill_spec(&spec);
	spec.depends->batch_id = ""; /* a batch: test_broker_batch keeps it */
	enq.jobs = specs;
	enq.n_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	r = call(f, &req, false);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_ENQUEUE);
	assert_null(r->enqueue->results[0]->status);
	Nq__V1__Job *job = get(f, r->enqueue->results[0]->id, &g);
	assert_non_null(job);
	assert_int_equal(nqi_buf_pack(&spec.base, &want, &wlen), 0);
	assert_int_equal(nqi_buf_pack(&job->spec->base, &got, &glen), 0);
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, wlen);
	assert_effective_values(job, &spec);
	free(want);
	free(got);
	nq__v1__reply__free_unpacked(g, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Sets runtime policy values of queue, as `nqctl queue set` does. */
static void policy_set(fixture *f, const char *queue, const char *key,
    const char *value, const char *key2, const char *value2)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__QueuePolicySetRequest ps =
	    NQ__V1__QUEUE_POLICY_SET_REQUEST__INIT;
	Nq__V1__PolicySetting s1 = NQ__V1__POLICY_SETTING__INIT,
	                      s2 = NQ__V1__POLICY_SETTING__INIT,
	                      *set[] = {&s1, &s2};
	s1.key = (char *)key;
	s1.value = (char *)value;
	s2.key = (char *)key2;
	s2.value = (char *)value2;
	ps.queue = (char *)queue;
	ps.settings = set;
	ps.n_settings = key2 ? 2 : 1;
	req.body_case = NQ__V1__REQUEST__BODY_POLICY_SET;
	req.policy_set = &ps;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_null(r->status);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Leases what one fetch gets: how many; the first job goes to first
 * (when not NULL, to free with its reply in *keep). */
static size_t fetched(fixture *f, const char *queue, Nq__V1__Reply **keep)
{
	Nq__V1__Reply *r = fetch(f, queue);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_FETCH);
	size_t n = r->fetch->n_jobs;
	if (keep)
		*keep = r;
	else
		nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

static void test_embed_max_in_flight_bounds_every_fetch(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r;
	policy_set(f, "lim", "max_in_flight", "2", NULL, NULL);
	for (int i = 0; i < 5; i++)
		free(enqueue(f, "lim", 0));
	assert_int_equal(fetched(f, "lim", &r), 2);
	assert_int_equal(fetched(f, "lim", NULL), 0);
	/* a completion makes room for one */
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	assert_int_equal(fetched(f, "lim", NULL), 1);
	assert_int_equal(fetched(f, "lim", NULL), 0);
	nq__v1__reply__free_unpacked(r, NULL);
	/* a new limit binds at once */
	policy_set(f, "lim", "max_in_flight", "4", NULL, NULL);
	assert_int_equal(fetched(f, "lim", NULL), 2);
}

static void test_embed_rate_gives_the_burst_then_waits(void **st)
{
	fixture *f = *st;
	policy_set(f, "slow", "rate", "1/h", "burst", "3");
	for (int i = 0; i < 5; i++)
		free(enqueue(f, "slow", 0));
	assert_int_equal(fetched(f, "slow", NULL), 3);
	assert_int_equal(fetched(f, "slow", NULL), 0);
}

static void test_embed_breaker_opens_on_failures(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r;
	policy_set(f, "flaky", "circuit_breaker.failure_ratio", "0.5",
	    "circuit_breaker.min_jobs", "2");
	for (int i = 0; i < 4; i++)
		free(enqueue(f, "flaky", 5));
	assert_int_equal(fetched(f, "flaky", &r), 4);
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	complete(f, r->fetch->jobs[1], NQ__V1__OUTCOME__OUTCOME_FAILED);
	/* one success, one failure: half failed, and two attempts */
	free(enqueue(f, "flaky", 5));
	assert_int_equal(fetched(f, "flaky", NULL), 0);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* ---- dependencies ---- */

static Nq__V1__Reply *enqueue_request(
    fixture *f, Nq__V1__JobSpec **specs, size_t n, bool all_or_none)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	for (size_t i = 0; i < n; i++) {
		specs[i]->queue = specs[i]->queue[0] ? specs[i]->queue : "q";
		specs[i]->type = "t";
	}
	enq.jobs = specs;
	enq.n_jobs = n;
	enq.all_or_none = all_or_none;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_ENQUEUE);
	return r;
}

static Nq__V1__Reply *enqueue_specs(
    fixture *f, Nq__V1__JobSpec **specs, size_t n)
{
	return enqueue_request(f, specs, n, false);
}

/* The state of job id now. */
static int state_of(fixture *f, const char *id)
{
	Nq__V1__Reply *g;
	Nq__V1__Job *job = get(f, id, &g);
	int st = job ? (int)job->state : -1;
	nq__v1__reply__free_unpacked(g, NULL);
	return st;
}

/* Fetches from q and completes each job with outcome o; returns how many
 * and, in ids (when given), which. */
static size_t run_all(fixture *f, Nq__V1__Outcome o, char ids[][NQ_ID_MAX])
{
	Nq__V1__Reply *r = fetch(f, "q");
	size_t n = r->fetch->n_jobs;
	for (size_t i = 0; i < n; i++) {
		if (ids)
			snprintf(
			    ids[i], NQ_ID_MAX, "%s", r->fetch->jobs[i]->id);
		complete(f, r->fetch->jobs[i], o);
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

/* A diamond A -> (B, C) -> D in one request (depends_on_index): D runs
 * only after both B and C succeeded, and reads both their results. */
static void test_embed_depends_diamond_runs_in_order(void **st)
{
	fixture *f = *st;
	Nq__V1__JobSpec s[4];
	Nq__V1__JobSpec *specs[] = {&s[0], &s[1], &s[2], &s[3]};
	uint32_t on_a[] = {0}, on_bc[] = {1, 2};
	char ran[4][NQ_ID_MAX];
	Nq__V1__Dependencies d[4];
	for (int i = 0; i < 4; i++) {
		nq__v1__job_spec__init(&s[i]);
		nq__v1__dependencies__init(&d[i]);
		s[i].depends = &d[i];
	}
	d[1].depends_on_index = d[2].depends_on_index = on_a;
	d[1].n_depends_on_index = d[2].n_depends_on_index = 1;
	d[3].depends_on_index = on_bc;
	d[3].n_depends_on_index = 2;
	Nq__V1__Reply *r = enqueue_specs(f, specs, 4), *g, *fr;
	char *id[4];
	for (int i = 0; i < 4; i++) {
		assert_null(r->enqueue->results[i]->status);
		id[i] = r->enqueue->results[i]->id;
	}
	assert_int_equal(state_of(f, id[3]), NQ_STATE_WAITING);
	assert_int_equal(
	    run_all(f, NQ__V1__OUTCOME__OUTCOME_SUCCEEDED, ran), 1);
	assert_string_equal(ran[0], id[0]);
	Nq__V1__Job *a = get(f, id[0], &g);
	assert_int_equal(a->family->n_children, 2);
	assert_string_equal(a->family->children[0], id[1]);
	assert_string_equal(a->family->children[1], id[2]);
	nq__v1__reply__free_unpacked(g, NULL);
	/* B succeeds; D still waits for C */
	fr = fetch(f, "q");
	assert_int_equal(fr->fetch->n_jobs, 2);
	complete(f, fr->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	Nq__V1__Job *dj = get(f, id[3], &g);
	assert_int_equal(dj->state, NQ__V1__JOB_STATE__JOB_STATE_WAITING);
	assert_int_equal(dj->family->waiting_on, 1);
	nq__v1__reply__free_unpacked(g, NULL);
	complete(f, fr->fetch->jobs[1], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	nq__v1__reply__free_unpacked(fr, NULL);
	fr = fetch(f, "q");
	assert_int_equal(fr->fetch->n_jobs, 1);
	dj = fr->fetch->jobs[0];
	assert_string_equal(dj->id, id[3]);
	assert_int_equal(dj->family->n_parent_results, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(dj->family->parent_results[i]->state,
		    NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
		assert_memory_equal(
		    dj->family->parent_results[i]->result.data, "done", 4);
	}
	assert_int_equal(dj->spec->depends->n_depends_on, 2);
	nq__v1__reply__free_unpacked(fr, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* B dies: D (and E after it) end canceled, dependency_failed; a cleanup
 * job with on_parent_failure run still runs, and sees B dead. */
static void test_embed_depends_failure_ends_children(void **st)
{
	fixture *f = *st;
	Nq__V1__JobSpec s[4];
	Nq__V1__JobSpec *specs[] = {&s[0], &s[1], &s[2], &s[3]};
	uint32_t on_b[] = {0}, on_d[] = {1};
	Nq__V1__Dependencies d[4];
	for (int i = 0; i < 4; i++) {
		nq__v1__job_spec__init(&s[i]);
		nq__v1__dependencies__init(&d[i]);
		s[i].depends = &d[i];
	}
	s[0].max_attempts = 1;
	d[1].depends_on_index = d[3].depends_on_index = on_b;
	d[1].n_depends_on_index = d[3].n_depends_on_index = 1;
	d[2].depends_on_index = on_d;
	d[2].n_depends_on_index = 1;
	d[3].on_parent_failure = NQ__V1__PARENT_FAILURE__PARENT_FAILURE_RUN;
	Nq__V1__Reply *r = enqueue_specs(f, specs, 4), *g, *q;
	const char *b = r->enqueue->results[0]->id;
	assert_int_equal(run_all(f, NQ__V1__OUTCOME__OUTCOME_FAILED, NULL), 1);
	assert_int_equal(state_of(f, b), NQ_STATE_DEAD);
	for (int i = 1; i <= 2; i++) {
		Nq__V1__Job *j = get(f, r->enqueue->results[i]->id, &g);
		assert_int_equal(
		    j->state, NQ__V1__JOB_STATE__JOB_STATE_CANCELED);
		assert_string_equal(j->dead_reason, "dependency_failed");
		nq__v1__reply__free_unpacked(g, NULL);
	}
	q = fetch(f, "q");
	assert_int_equal(q->fetch->n_jobs, 1);
	assert_string_equal(q->fetch->jobs[0]->id, r->enqueue->results[3]->id);
	assert_int_equal(q->fetch->jobs[0]->family->n_parent_results, 1);
	assert_int_equal(q->fetch->jobs[0]->family->parent_results[0]->state,
	    NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	nq__v1__reply__free_unpacked(q, NULL);
	/* a child of a parent already dead ends at its enqueue */
	Nq__V1__JobSpec late = NQ__V1__JOB_SPEC__INIT, *one[] = {&late};
	Nq__V1__Dependencies dl = NQ__V1__DEPENDENCIES__INIT;
	late.depends = &dl;
	char *parents[] = {(char *)b};
	dl.depends_on = parents;
	dl.n_depends_on = 1;
	q = enqueue_specs(f, one, 1);
	assert_null(q->enqueue->results[0]->status);
	assert_int_equal(
	    state_of(f, q->enqueue->results[0]->id), NQ_STATE_CANCELED);
	nq__v1__reply__free_unpacked(q, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Unknown parents, a position that is not an earlier job, a parent named
 * twice: refused with what is wrong, and nothing stored. */
static void test_embed_depends_bad_input_stores_nothing(void **st)
{
	fixture *f = *st;
	Nq__V1__JobSpec s = NQ__V1__JOB_SPEC__INIT, *one[] = {&s};
	Nq__V1__Dependencies ds = NQ__V1__DEPENDENCIES__INIT;
	s.depends = &ds;
	char *unknown[] = {"0190f5a2b3c4d5e6"}, *bad[] = {"xyz"};
	uint32_t ahead[] = {0};
	Nq__V1__Reply *r, *keep;
	ds.depends_on = unknown;
	ds.n_depends_on = 1;
	r = enqueue_specs(f, one, 1);
	assert_int_equal(
	    r->enqueue->results[0]->status->code, NQ__V1__CODE__NOT_FOUND);
	assert_non_null(strstr(r->enqueue->results[0]->status->message,
	    "0190f5a2b3c4d5e6 not found"));
	nq__v1__reply__free_unpacked(r, NULL);
	ds.depends_on = bad;
	r = enqueue_specs(f, one, 1);
	assert_int_equal(r->enqueue->results[0]->status->code,
	    NQ__V1__CODE__INVALID_ARGUMENT);
	nq__v1__reply__free_unpacked(r, NULL);
	ds.n_depends_on = 0;
	ds.depends_on_index = ahead;
	ds.n_depends_on_index = 1;
	r = enqueue_specs(f, one, 1);
	assert_int_equal(r->enqueue->results[0]->status->code,
	    NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(
	    strstr(r->enqueue->results[0]->status->message, "earlier job"));
	nq__v1__reply__free_unpacked(r, NULL);
	char *a = enqueue(f, "q", 0), *twice[] = {a, a};
	ds.n_depends_on_index = 0;
	ds.depends_on = twice;
	ds.n_depends_on = 2;
	r = enqueue_specs(f, one, 1);
	assert_non_null(
	    strstr(r->enqueue->results[0]->status->message, "twice"));
	nq__v1__reply__free_unpacked(r, NULL);
	Nq__V1__QueueStats *q = stats(f, "q", &keep);
	assert_int_equal(q->enqueued_total, 1);
	assert_int_equal(q->waiting, 0);
	nq__v1__reply__free_unpacked(keep, NULL);
	Nq__V1__Job *pa = get(f, a, &keep);
	assert_null(pa->family);
	nq__v1__reply__free_unpacked(keep, NULL);
	free(a);
}

/* A chain A -> B -> C all or none: one bad link stores none of them;
 * a good chain runs link by link. */
static void test_embed_depends_chain_all_or_none(void **st)
{
	fixture *f = *st;
	Nq__V1__JobSpec s[3];
	Nq__V1__JobSpec *specs[] = {&s[0], &s[1], &s[2]};
	uint32_t before[] = {0, 0, 1};
	Nq__V1__Reply *r, *keep;
	Nq__V1__Dependencies d[3];
	for (int i = 0; i < 3; i++) {
		nq__v1__job_spec__init(&s[i]);
		nq__v1__dependencies__init(&d[i]);
		s[i].depends = &d[i];
		d[i].depends_on_index = &before[i];
		d[i].n_depends_on_index = i > 0;
	}
	s[2].queue = "bad queue";
	r = enqueue_request(f, specs, 3, true);
	assert_int_equal(r->enqueue->results[2]->status->code,
	    NQ__V1__CODE__INVALID_ARGUMENT);
	for (int i = 0; i < 2; i++)
		assert_int_equal(r->enqueue->results[i]->status->code,
		    NQ__V1__CODE__FAILED_PRECONDITION);
	nq__v1__reply__free_unpacked(r, NULL);
	/* nothing stored: the queue is not even known */
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest sr = NQ__V1__STATS_REQUEST__INIT;
	sr.queue = "q";
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	keep = call(f, &req, false);
	assert_int_equal(keep->stats->n_queues, 0);
	nq__v1__reply__free_unpacked(keep, NULL);
	s[2].queue = "q";
	r = enqueue_request(f, specs, 3, true);
	for (int i = 0; i < 3; i++) {
		assert_null(r->enqueue->results[i]->status);
		assert_int_equal(
		    run_all(f, NQ__V1__OUTCOME__OUTCOME_SUCCEEDED, NULL), 1);
	}
	assert_int_equal(
	    state_of(f, r->enqueue->results[2]->id), NQ_STATE_SUCCEEDED);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* A waiting job has not started: a unique key of scope queued still
 * returns it to a repeat. */
static void test_embed_depends_waiting_job_holds_a_queued_key(void **st)
{
	fixture *f = *st;
	char *a = enqueue(f, "q", 0), *parents[] = {a};
	Nq__V1__JobSpec s = NQ__V1__JOB_SPEC__INIT, *one[] = {&s};
	Nq__V1__Dependencies ds = NQ__V1__DEPENDENCIES__INIT;
	Nq__V1__Unique u = NQ__V1__UNIQUE__INIT;
	u.scope = NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_QUEUED;
	ds.depends_on = parents;
	ds.n_depends_on = 1;
	s.depends = &ds;
	s.idempotency_key = "k";
	s.unique = &u;
	Nq__V1__Reply *r1 = enqueue_specs(f, one, 1);
	Nq__V1__Reply *r2 = enqueue_specs(f, one, 1);
	assert_true(r2->enqueue->results[0]->duplicate);
	assert_string_equal(
	    r2->enqueue->results[0]->id, r1->enqueue->results[0]->id);
	nq__v1__reply__free_unpacked(r1, NULL);
	nq__v1__reply__free_unpacked(r2, NULL);
	free(a);
}

/* The jobs with children are known again after a restart, from the
 * records: the parent's success still releases its child. */
static void test_embed_depends_survive_a_restart(void **st)
{
	fixture *f = *st;
	Nq__V1__JobSpec s[2];
	Nq__V1__JobSpec *specs[] = {&s[0], &s[1]};
	uint32_t on_a[] = {0};
	Nq__V1__Reply *keep;
	Nq__V1__Dependencies d[2];
	nq__v1__job_spec__init(&s[0]);
	nq__v1__job_spec__init(&s[1]);
	nq__v1__dependencies__init(&d[1]);
	s[1].depends = &d[1];
	d[1].depends_on_index = on_a;
	d[1].n_depends_on_index = 1;
	Nq__V1__Reply *r = enqueue_specs(f, specs, 2);
	broker_embed_close(f->e);
	assert_int_equal(broker_embed_open(&f->e, f->dir), 0);
	Nq__V1__QueueStats *q = stats(f, "q", &keep);
	assert_int_equal(q->waiting, 1);
	assert_int_equal(q->ready, 1);
	nq__v1__reply__free_unpacked(keep, NULL);
	assert_int_equal(
	    run_all(f, NQ__V1__OUTCOME__OUTCOME_SUCCEEDED, NULL), 1);
	assert_int_equal(
	    state_of(f, r->enqueue->results[1]->id), NQ_STATE_READY);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* A worker's fetch puts it in stats: its queues, the slots it asked
 * for, the leases it holds; stats of a queue it does not fetch from leave
 * it out. */
static void test_embed_stats_name_the_workers_fetching(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *keep;
	for (int i = 0; i < 3; i++)
		free(enqueue(f, "q", 1));
	free(enqueue(f, "other", 1));
	r = fetch(f, "q");
	assert_int_equal(r->fetch->n_jobs, 3);
	nq__v1__reply__free_unpacked(r, NULL);
	stats(f, "q", &keep);
	assert_int_equal(keep->stats->n_workers, 1);
	const Nq__V1__WorkerStats *w = keep->stats->workers[0];
	assert_string_equal(w->worker_id, "w1");
	assert_int_equal(w->n_queues, 1);
	assert_string_equal(w->queues[0], "q");
	assert_int_equal(w->free_slots, 10);
	assert_int_equal(w->leased, 3);
	assert_int_equal(w->fetches, 1);
	assert_true(w->last_seen_us > 0);
	nq__v1__reply__free_unpacked(keep, NULL);
	stats(f, "other", &keep);
	assert_int_equal(keep->stats->n_workers, 0);
	nq__v1__reply__free_unpacked(keep, NULL);
}

/* However many workers come, stats keep a bounded number, and the newest
 * one is among them. */
static void test_embed_stats_keep_a_bounded_number_of_workers(void **st)
{
	fixture *f = *st;
	char name[32];
	char *queues[] = {"q"};
	for (int i = 0; i < 600; i++) {
		Nq__V1__Request req = NQ__V1__REQUEST__INIT;
		Nq__V1__FetchRequest fr = NQ__V1__FETCH_REQUEST__INIT;
		snprintf(name, sizeof name, "w%d", i);
		fr.worker_id = name;
		fr.queues = queues;
		fr.n_queues = 1;
		fr.max_jobs = 1;
		req.body_case = NQ__V1__REQUEST__BODY_FETCH;
		req.fetch = &fr;
		nq__v1__reply__free_unpacked(call(f, &req, true), NULL);
	}
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__StatsRequest sr = NQ__V1__STATS_REQUEST__INIT;
	req.body_case = NQ__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_true(r->stats->n_workers > 400);
	assert_true(r->stats->n_workers <= 512);
	bool newest = false;
	for (size_t i = 0; i < r->stats->n_workers; i++)
		newest |= strcmp(r->stats->workers[i]->worker_id, "w599") == 0;
	assert_true(newest);
	nq__v1__reply__free_unpacked(r, NULL);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The stats of recent jobs: a job's wait runs from ready to leased, its
 * run from lease to completion. Bounds from below only (a loaded machine
 * makes them longer); a bucket is within a quarter of its values. */
static void test_embed_stats_show_wait_and_run_of_recent_jobs(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *s;
	char *id = enqueue(f, "lat", 0);
	sleep_ms(60);
	r = fetch(f, "lat");
	assert_int_equal(r->fetch->n_jobs, 1);
	sleep_ms(40);
	complete(f, r->fetch->jobs[0], NQ__V1__OUTCOME__OUTCOME_SUCCEEDED);
	Nq__V1__QueueStats *q = stats(f, "lat", &s);
	assert_int_equal(q->wait_window_jobs, 1);
	assert_int_equal(q->run_window_jobs, 1);
	assert_true(q->wait_p50_us >= 45000 && q->wait_p50_us < 60000000);
	assert_true(q->wait_p99_us >= q->wait_p50_us);
	assert_true(q->run_p50_us >= 30000 && q->run_p50_us < 60000000);
	assert_true(q->run_p99_us >= q->run_p50_us);
	nq__v1__reply__free_unpacked(s, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

/* A delayed job waits from its run_at, not from its enqueue. */
static void test_embed_wait_of_a_delayed_job_counts_from_run_at(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *r, *s;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	spec.queue = "later";
	spec.delay_ms = 1000;
	r = enqueue_specs(f, specs, 1);
	nq__v1__reply__free_unpacked(r, NULL);
	sleep_ms(1100);
	r = fetch(f, "later"); /* the group's sweep makes it ready */
	if (r->fetch->n_jobs == 0) {
		nq__v1__reply__free_unpacked(r, NULL);
		r = fetch(f, "later");
	}
	assert_int_equal(r->fetch->n_jobs, 1);
	Nq__V1__QueueStats *q = stats(f, "later", &s);
	assert_int_equal(q->wait_window_jobs, 1);
	assert_true(q->wait_p99_us < 1000000);
	nq__v1__reply__free_unpacked(s, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Enqueues n jobs of queue q in one request. */
static void enqueue_many_on(fixture *f, const char *queue, size_t n)
{
	Nq__V1__JobSpec *spec = calloc(n, sizeof *spec);
	Nq__V1__JobSpec **specs = calloc(n, sizeof *specs);
	assert_true(spec && specs);
	for (size_t i = 0; i < n; i++) {
		nq__v1__job_spec__init(&spec[i]);
		spec[i].queue = (char *)queue;
		specs[i] = &spec[i];
	}
	Nq__V1__Reply *r = enqueue_request(f, specs, n, false);
	assert_int_equal(r->enqueue->n_results, n);
	nq__v1__reply__free_unpacked(r, NULL);
	free(specs);
	free(spec);
}

static void enqueue_many(fixture *f, size_t n)
{
	enqueue_many_on(f, "q", n);
}

/* Completes the n jobs as one batch of successes. */
static void succeed_all(fixture *f, Nq__V1__Job *const *jobs, size_t n)
{
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion *c = calloc(n, sizeof *c),
	                   **cs = calloc(n, sizeof *cs);
	assert_true(n == 0 || (c && cs));
	for (size_t i = 0; i < n; i++) {
		nq__v1__completion__init(&c[i]);
		c[i].id = jobs[i]->id;
		c[i].lease_token = jobs[i]->lease_token;
		c[i].outcome = NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
		cs[i] = &c[i];
	}
	b.version = 1;
	b.completions = cs;
	b.n_completions = n;
	uint8_t *buf;
	size_t len;
	assert_int_equal(nqi_buf_pack(&b.base, &buf, &len), 0);
	assert_int_equal(broker_embed_completions(f->e, buf, len), 0);
	free(buf);
	free(cs);
	free(c);
}

/* Fetches up to 1,000 jobs of queue and completes them all as one batch
 * of successes; returns how many. */
static size_t run_many(fixture *f, const char *queue)
{
	Nq__V1__Reply *r = fetch_as(f, queue, "w1", 1000);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_FETCH);
	size_t n = r->fetch->n_jobs;
	succeed_all(f, r->fetch->jobs, n);
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

/* How many jobs of queue stay succeeded (their results kept) once a few
 * groups have run. */
static uint64_t succeeded_left(fixture *f, const char *queue)
{
	Nq__V1__Reply *keep;
	uint64_t left = 0;
	for (int i = 0; i < 4; i++) {
		left = stats(f, queue, &keep)->succeeded;
		nq__v1__reply__free_unpacked(keep, NULL);
	}
	return left;
}

/* Finished jobs past their result_ttl are deleted by the groups that run,
 * not only at the --lease-check tick (here an hour away): a broker that
 * finishes jobs faster than one tick deletes would otherwise fill its
 * disk. */
static void test_embed_expired_results_go_between_ticks(void **st)
{
	fixture *f = *st;
	broker_embed_config(f->e)->lease_check_ms = 3600u * 1000;
	/* the first group runs the tick's sweep, with nothing due */
	Nq__V1__Reply *keep =
	    policy_call(f, false, (const char *[]){"result_ttl", "1ms", NULL});
	assert_null(keep->status);
	nq__v1__reply__free_unpacked(keep, NULL);
	for (int i = 0; i < 3; i++)
		enqueue_many(f, 1000);
	size_t done = 0;
	for (int i = 0; i < 4 && done < 3000; i++)
		done += run_many(f, "q");
	assert_int_equal(done, 3000);
	usleep(5000);
	assert_int_equal(succeeded_left(f, "q"), 0);
}

static Nq__V1__Reply *wait_for(fixture *f, const char *id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__WaitRequest w = NQ__V1__WAIT_REQUEST__INIT;
	w.id = (char *)id;
	w.timeout_ms = 60000;
	req.body_case = NQ__V1__REQUEST__BODY_WAIT;
	req.wait = &w;
	return call(f, &req, false);
}

/* A wait that the broker's stop cuts short (the embedded broker is always
 * stopping: it never parks) is told UNAVAILABLE, as the waits still parked
 * when the core ends are, not handed the job as if its time were up; a
 * job that has ended is still returned. */
static void test_embed_wait_cut_short_by_the_stop_is_unavailable(void **st)
{
	fixture *f = *st;
	char *id = enqueue(f, "q", 1);
	Nq__V1__Reply *r = wait_for(f, id);
	assert_non_null(r->status);
	assert_int_equal(r->status->code, NQ__V1__CODE__UNAVAILABLE);
	assert_non_null(strstr(r->status->message, "shutting down"));
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(run_many(f, "q"), 1);
	r = wait_for(f, id);
	assert_null(r->status);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_WAIT);
	assert_int_equal(
	    r->wait->job->state, NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

/* Results kept by one completion batch go each at its own queue's
 * result_ttl, also past a restart: the successes of a batch share expiry
 * entries (one per run of jobs due at the same time, up to 128 jobs). */
static void test_embed_results_of_one_batch_go_at_their_own_ttl(void **st)
{
	fixture *f = *st;
	Nq__V1__Reply *keep =
	    policy_call(f, false, (const char *[]){"result_ttl", "1ms", NULL});
	assert_null(keep->status);
	nq__v1__reply__free_unpacked(keep, NULL);
	enqueue_many_on(f, "q", 200);
	enqueue_many_on(f, "slow", 200); /* the default ttl: 10 minutes */
	Nq__V1__Reply *q = fetch_as(f, "q", "w1", 1000),
	              *slow = fetch_as(f, "slow", "w1", 1000);
	assert_int_equal(q->fetch->n_jobs, 200);
	assert_int_equal(slow->fetch->n_jobs, 200);
	/* 150 of q (more than one entry holds), then slow's, then q's rest */
	Nq__V1__Job *jobs[400];
	memcpy(jobs, q->fetch->jobs, 150 * sizeof *jobs);
	memcpy(jobs + 150, slow->fetch->jobs, 200 * sizeof *jobs);
	memcpy(jobs + 350, q->fetch->jobs + 150, 50 * sizeof *jobs);
	succeed_all(f, jobs, 400);
	nq__v1__reply__free_unpacked(q, NULL);
	nq__v1__reply__free_unpacked(slow, NULL);
	embed_fixture_restart(f);
	usleep(5000);
	assert_int_equal(succeeded_left(f, "q"), 0);
	assert_int_equal(succeeded_left(f, "slow"), 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_embed_job_runs_to_succeeded, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_canceled_ready_job_is_not_fetched, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_failure_without_attempts_left_is_dead, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_release_refunds_the_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_malformed_bytes_get_invalid_argument, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_pause_and_resume_keep_the_other_settings, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_policy_set_stores_and_reset_drops, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_retry_takes_the_queue_backoff, setup, teardown),
	    cmocka_unit_test(test_embed_stats_fields_are_the_queue_rows),
	    cmocka_unit_test_setup_teardown(
	        test_embed_stats_show_wait_and_run_of_recent_jobs, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_wait_of_a_delayed_job_counts_from_run_at, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_stats_count_by_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_error_messages_are_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_enqueue_keeps_every_field_of_the_spec, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_max_in_flight_bounds_every_fetch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_rate_gives_the_burst_then_waits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_breaker_opens_on_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_diamond_runs_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_failure_ends_children, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_bad_input_stores_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_survive_a_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_chain_all_or_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_depends_waiting_job_holds_a_queued_key, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_stats_name_the_workers_fetching, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_stats_keep_a_bounded_number_of_workers, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_record_keeps_its_size_to_success, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_expired_results_go_between_ticks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_results_of_one_batch_go_at_their_own_ttl, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_embed_wait_cut_short_by_the_stop_is_unavailable, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
