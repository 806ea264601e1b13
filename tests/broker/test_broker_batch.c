/* Batches driven in-process through the embedded broker: the bytes the
 * sockets carry, a real LMDB store, restarts by closing and opening it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed_fixture.h"
#include "nq/nq.h"
#include "nqi/codec.h"

static int setup(void **st)
{
	return embed_fixture_setup(st, "batch");
}

static int teardown(void **st)
{
	return embed_fixture_teardown(st);
}

static void restart(fixture *f)
{
	embed_fixture_restart(f);
}

static Nq__V1__Reply *call(fixture *f, Nq__V1__Request *req, bool work)
{
	return embed_fixture_call(f, req, work);
}

/* A callback spec of queue "cb" (type t). */
static Nq__V1__JobSpec cb_spec(const char *queue)
{
	Nq__V1__JobSpec s = NQ__V1__JOB_SPEC__INIT;
	s.queue = (char *)queue;
	s.type = "t";
	return s;
}

/* Creates a batch with both callbacks (queue cbq); returns the reply. */
static Nq__V1__Reply *create(fixture *f, const char *cbq, bool seal)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__BatchCreateRequest c = NQ__V1__BATCH_CREATE_REQUEST__INIT;
	Nq__V1__JobSpec ok = cb_spec(cbq), done = cb_spec(cbq);
	ok.type = "on_success";
	done.type = "on_complete";
	c.on_success = &ok;
	c.on_complete = &done;
	c.seal = seal;
	req.body_case = NQ__V1__REQUEST__BODY_BATCH_CREATE;
	req.batch_create = &c;
	return call(f, &req, false);
}

static char *create_id(fixture *f)
{
	Nq__V1__Reply *r = create(f, "cb", false);
	assert_null(r->status);
	char *id = strdup(r->batch_create->batch->id);
	nq__v1__reply__free_unpacked(r, NULL);
	return id;
}

/* Enqueues n jobs of queue q into batch (max_attempts 1); the reply. */
static Nq__V1__Reply *add(fixture *f, const char *batch, size_t n)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec *s = calloc(n, sizeof *s);
	Nq__V1__JobSpec **v = calloc(n, sizeof *v);
	Nq__V1__Dependencies *d = calloc(n, sizeof *d);
	assert_true(s && v && d);
	for (size_t i = 0; i < n; i++) {
		nq__v1__job_spec__init(&s[i]);
		nq__v1__dependencies__init(&d[i]);
		s[i].queue = "q";
		s[i].type = "t";
		s[i].max_attempts = 1;
		d[i].batch_id = (char *)batch;
		s[i].depends = &d[i];
		v[i] = &s[i];
	}
	enq.jobs = v;
	enq.n_jobs = n;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	Nq__V1__Reply *r = call(f, &req, false);
	free(s);
	free(v);
	free(d);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_ENQUEUE);
	return r;
}

static void add_ok(fixture *f, const char *batch, size_t n)
{
	Nq__V1__Reply *r = add(f, batch, n);
	for (size_t i = 0; i < n; i++)
		assert_null(r->enqueue->results[i]->status);
	nq__v1__reply__free_unpacked(r, NULL);
}

static Nq__V1__Reply *batch_call(
    fixture *f, Nq__V1__Request__BodyCase body, const char *id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__BatchRef ref = NQ__V1__BATCH_REF__INIT;
	ref.id = (char *)id;
	req.body_case = body;
	/* seal, get and cancel all take a BatchRef */
	req.batch_seal = &ref;
	return call(f, &req, false);
}

static void seal(fixture *f, const char *id)
{
	Nq__V1__Reply *r = batch_call(f, NQ__V1__REQUEST__BODY_BATCH_SEAL, id);
	assert_null(r->status);
	assert_true(r->batch_seal->batch->sealed);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* The batch as get shows it; *keep to free. */
static Nq__V1__Batch *batch_get(fixture *f, const char *id, Nq__V1__Reply **k)
{
	*k = batch_call(f, NQ__V1__REQUEST__BODY_BATCH_GET, id);
	assert_null((*k)->status);
	return (*k)->batch_get->batch;
}

/* Fetches up to 1000 jobs of queue; each is completed with its outcome:
 * failed when fail(i) says so (i counts across calls). */
static size_t run(fixture *f, const char *queue, size_t *seen,
    bool (*fails)(size_t), Nq__V1__Reply **keep)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest fr = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {(char *)queue};
	fr.worker_id = "w1";
	fr.queues = queues;
	fr.n_queues = 1;
	fr.max_jobs = 1000;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fr;
	Nq__V1__Reply *r = call(f, &req, true);
	size_t n = r->fetch->n_jobs;
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion *c = calloc(n ? n : 1, sizeof *c);
	Nq__V1__Completion **cs = calloc(n ? n : 1, sizeof *cs);
	uint8_t *buf;
	size_t len;
	for (size_t i = 0; i < n; i++) {
		nq__v1__completion__init(&c[i]);
		c[i].id = r->fetch->jobs[i]->id;
		c[i].lease_token = r->fetch->jobs[i]->lease_token;
		c[i].outcome = fails && fails((*seen)++)
		                   ? NQ__V1__OUTCOME__OUTCOME_FAILED
		                   : NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
		cs[i] = &c[i];
	}
	b.version = 1;
	b.completions = cs;
	b.n_completions = n;
	assert_int_equal(nqi_buf_pack(&b.base, &buf, &len), 0);
	if (n)
		assert_int_equal(broker_embed_completions(f->e, buf, len), 0);
	free(buf);
	free(c);
	free(cs);
	if (keep)
		*keep = r;
	else
		nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

static bool every_hundredth(size_t i)
{
	return i % 100 == 7;
}

/* The callbacks' jobs, run: their types in order of id, each checked to
 * carry the batch's counts as its one parent result. */
static size_t callbacks(
    fixture *f, const char *batch, const char *counts, char types[2][16])
{
	Nq__V1__Reply *r;
	size_t seen = 0, n = run(f, "cb", &seen, NULL, &r);
	for (size_t i = 0; i < n && i < 2; i++) {
		const Nq__V1__Job *j = r->fetch->jobs[i];
		snprintf(types[i], 16, "%s", j->spec->type);
		assert_int_equal(j->family->n_parent_results, 1);
		assert_string_equal(j->family->parent_results[0]->id, batch);
		const ProtobufCBinaryData *d =
		    &j->family->parent_results[0]->result;
		char *text = strndup((const char *)d->data, d->len);
		if (!strstr(text, counts))
			fail_msg("counts %s lack %s", text, counts);
		free(text);
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

/* 1,000 jobs, 10 of which fail for good: on_complete fires once with the
 * counts, on_success never. */
static void test_batch_some_dead_fire_on_complete_only(void **st)
{
	fixture *f = *st;
	char *id = create_id(f), types[2][16];
	Nq__V1__Reply *k;
	size_t seen = 0;
	add_ok(f, id, 600);
	add_ok(f, id, 400);
	seal(f, id);
	while (run(f, "q", &seen, every_hundredth, NULL) > 0)
		;
	assert_int_equal(seen, 1000);
	Nq__V1__Batch *b = batch_get(f, id, &k);
	assert_int_equal(b->total, 1000);
	assert_int_equal(b->succeeded, 990);
	assert_int_equal(b->dead, 10);
	assert_int_equal(b->pending, 0);
	assert_true(b->completed_us > 0);
	assert_true(b->on_complete_id[0]);
	assert_string_equal(b->on_success_id, "");
	nq__v1__reply__free_unpacked(k, NULL);
	assert_int_equal(
	    callbacks(
	        f, id, "\"total\":1000,\"succeeded\":990,\"dead\":10", types),
	    1);
	assert_string_equal(types[0], "on_complete");
	free(id);
}

/* Every job succeeds: both callbacks fire, once each, also after a
 * restart. */
static void test_batch_all_succeed_fire_both(void **st)
{
	fixture *f = *st;
	char *id = create_id(f), types[2][16];
	size_t seen = 0;
	add_ok(f, id, 1000);
	seal(f, id);
	while (run(f, "q", &seen, NULL, NULL) > 0)
		;
	restart(f);
	assert_int_equal(
	    callbacks(f, id, "\"succeeded\":1000,\"dead\":0", types), 2);
	assert_string_equal(types[0], "on_complete");
	assert_string_equal(types[1], "on_success");
	restart(f);
	assert_int_equal(run(f, "cb", &seen, NULL, NULL), 0);
	free(id);
}

/* A restart in the middle: the jobs still count (their ends are told to
 * the batch), and the callbacks fire once. */
static void test_batch_restart_midway_counts_on(void **st)
{
	fixture *f = *st;
	char *id = create_id(f), types[2][16];
	size_t seen = 0;
	add_ok(f, id, 10);
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 10);
	add_ok(f, id, 10);
	restart(f);
	seal(f, id);
	assert_int_equal(run(f, "cb", &seen, NULL, NULL), 0);
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 10);
	restart(f);
	assert_int_equal(
	    callbacks(f, id, "\"total\":20,\"succeeded\":20", types), 2);
	free(id);
}

/* Jobs that ended before the seal: the seal completes the batch. An
 * empty batch created sealed completes at once. */
static void test_batch_seal_completes_an_ended_batch(void **st)
{
	fixture *f = *st;
	char *id = create_id(f), types[2][16];
	size_t seen = 0;
	add_ok(f, id, 3);
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 3);
	assert_int_equal(run(f, "cb", &seen, NULL, NULL), 0);
	seal(f, id);
	assert_int_equal(callbacks(f, id, "\"succeeded\":3", types), 2);
	Nq__V1__Reply *r = create(f, "cb", true);
	assert_true(r->batch_create->batch->completed_us > 0);
	assert_int_equal(
	    callbacks(f, r->batch_create->batch->id, "\"total\":0", types), 2);
	nq__v1__reply__free_unpacked(r, NULL);
	free(id);
}

/* An enqueue that creates its batch, sealed: the reply names it, every
 * job belongs to it, and get of a job shows its batch. */
static void test_batch_created_by_an_enqueue(void **st)
{
	fixture *f = *st;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT, greq = req;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__BatchCreateRequest c = NQ__V1__BATCH_CREATE_REQUEST__INIT;
	Nq__V1__JobSpec s[2] = {cb_spec("q"), cb_spec("q")};
	Nq__V1__JobSpec done = cb_spec("cb"), *v[] = {&s[0], &s[1]};
	Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
	char types[2][16];
	size_t seen = 0;
	c.on_complete = &done;
	c.seal = true;
	enq.jobs = v;
	enq.n_jobs = 2;
	enq.batch = &c;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	Nq__V1__Reply *r = call(f, &req, false), *gr;
	assert_int_equal(strlen(r->enqueue->batch_id), 16);
	g.id = r->enqueue->results[1]->id;
	greq.body_case = NQ__V1__REQUEST__BODY_GET;
	greq.get = &g;
	gr = call(f, &greq, false);
	assert_string_equal(
	    gr->get->job->spec->depends->batch_id, r->enqueue->batch_id);
	nq__v1__reply__free_unpacked(gr, NULL);
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 2);
	assert_int_equal(
	    callbacks(f, r->enqueue->batch_id, "\"total\":2", types), 1);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Cancel: the jobs not ended end canceled (a leased one when its attempt
 * ends), the batch is sealed and completes with them. */
static void test_batch_cancel_ends_its_jobs(void **st)
{
	fixture *f = *st;
	char *id = create_id(f), types[2][16];
	size_t seen = 0;
	Nq__V1__Reply *leased, *k;
	add_ok(f, id, 1);
	/* one leased, left running */
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest fr = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {"q"};
	fr.worker_id = "w1";
	fr.queues = queues;
	fr.n_queues = 1;
	fr.max_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fr;
	leased = call(f, &req, true);
	assert_int_equal(leased->fetch->n_jobs, 1);
	add_ok(f, id, 4);
	Nq__V1__Batch *before = batch_get(f, id, &k);
	assert_int_equal(before->pending, 5);
	assert_int_equal(before->leased, 1);
	assert_int_equal(before->ready, 4);
	nq__v1__reply__free_unpacked(k, NULL);
	Nq__V1__Reply *r =
	    batch_call(f, NQ__V1__REQUEST__BODY_BATCH_CANCEL, id);
	assert_null(r->status);
	assert_int_equal(r->batch_cancel->canceled, 5);
	assert_true(r->batch_cancel->batch->sealed);
	assert_true(r->batch_cancel->batch->cancel_requested);
	assert_int_equal(r->batch_cancel->batch->pending, 1);
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 0);
	assert_int_equal(run(f, "cb", &seen, NULL, NULL), 0);
	/* the leased job's attempt ends: canceled, and the batch completes */
	Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion c = NQ__V1__COMPLETION__INIT, *cs[] = {&c};
	uint8_t *buf;
	size_t len;
	c.id = leased->fetch->jobs[0]->id;
	c.lease_token = leased->fetch->jobs[0]->lease_token;
	c.outcome = NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
	b.version = 1;
	b.completions = cs;
	b.n_completions = 1;
	assert_int_equal(nqi_buf_pack(&b.base, &buf, &len), 0);
	assert_int_equal(broker_embed_completions(f->e, buf, len), 0);
	free(buf);
	nq__v1__reply__free_unpacked(leased, NULL);
	Nq__V1__Batch *got = batch_get(f, id, &k);
	assert_int_equal(got->canceled, 5);
	nq__v1__reply__free_unpacked(k, NULL);
	assert_int_equal(callbacks(f, id, "\"canceled\":5", types), 1);
	assert_string_equal(types[0], "on_complete");
	free(id);
}

/* The status of an enqueue of one job into batch (its first result). */
static int add_code(fixture *f, const char *batch, char *msg, size_t len)
{
	Nq__V1__Reply *r = add(f, batch, 1);
	const Nq__V1__Status *s = r->enqueue->results[0]->status;
	int code = s ? (int)s->code : 0;
	snprintf(msg, len, "%s", s ? s->message : "");
	nq__v1__reply__free_unpacked(r, NULL);
	return code;
}

static size_t batches_listed(fixture *f)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__BatchListRequest l = NQ__V1__BATCH_LIST_REQUEST__INIT;
	req.body_case = NQ__V1__REQUEST__BODY_BATCH_LIST;
	req.batch_list = &l;
	Nq__V1__Reply *r = call(f, &req, false);
	size_t n = r->batch_list->n_batches;
	nq__v1__reply__free_unpacked(r, NULL);
	return n;
}

/* Unknown batch, a sealed one, a bad id, an invalid callback: refused
 * with what is wrong, and nothing stored. */
static void test_batch_bad_input_stores_nothing(void **st)
{
	fixture *f = *st;
	char msg[300];
	assert_int_equal(add_code(f, "0190f5a2b3c4d5e6", msg, sizeof msg),
	    NQ__V1__CODE__NOT_FOUND);
	assert_non_null(strstr(msg, "batch 0190f5a2b3c4d5e6 not found"));
	assert_int_equal(add_code(f, "nope", msg, sizeof msg),
	    NQ__V1__CODE__INVALID_ARGUMENT);
	Nq__V1__Reply *r = create(f, "bad queue", false);
	assert_int_equal(r->status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "on_success: queue name"));
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(batches_listed(f), 0);
	/* an enqueue creating a batch with a bad callback stores no job */
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__BatchCreateRequest c = NQ__V1__BATCH_CREATE_REQUEST__INIT;
	Nq__V1__JobSpec s = cb_spec("q"), bad = cb_spec("q"), *v[] = {&s};
	Nq__V1__Dependencies d = NQ__V1__DEPENDENCIES__INIT;
	char *parents[] = {"0190f5a2b3c4d5e6"};
	d.depends_on = parents;
	d.n_depends_on = 1;
	bad.depends = &d;
	c.on_complete = &bad;
	enq.jobs = v;
	enq.n_jobs = 1;
	enq.batch = &c;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	r = call(f, &req, false);
	assert_int_equal(r->status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "may not name a batch"));
	nq__v1__reply__free_unpacked(r, NULL);
	/* every job refused: no batch stays */
	s.queue = "bad queue";
	c.on_complete = NULL;
	r = call(f, &req, false);
	assert_non_null(r->enqueue->results[0]->status);
	assert_string_equal(r->enqueue->batch_id, "");
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(batches_listed(f), 0);
	size_t seen = 0;
	assert_int_equal(run(f, "q", &seen, NULL, NULL), 0);
	/* a sealed batch takes no more jobs */
	char *id = create_id(f);
	seal(f, id);
	assert_int_equal(add_code(f, id, msg, sizeof msg),
	    NQ__V1__CODE__FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "is sealed"));
	r = batch_call(f, NQ__V1__REQUEST__BODY_BATCH_GET, "0190f5a2b3c4d5e6");
	assert_int_equal(r->status->code, NQ__V1__CODE__NOT_FOUND);
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(batches_listed(f), 1);
	free(id);
}

/* A replay from nq-dlq of a job of a batch belongs to no batch: the batch
 * counted the end of the job it replays, sealed or not. */
static void test_batch_replay_belongs_to_none(void **st)
{
	fixture *f = *st;
	char *id = create_id(f);
	seal(f, id);
	Nq__V1__Request req = NQ__V1__REQUEST__INIT, greq = req;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec s = cb_spec("q"), *v[] = {&s};
	Nq__V1__Dependencies d = NQ__V1__DEPENDENCIES__INIT;
	Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
	Nq__V1__Reply *k;
	d.batch_id = id;
	s.depends = &d;
	s.replay_of = "0190f5a2b3c4d5e6";
	enq.jobs = v;
	enq.n_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	Nq__V1__Reply *r = call(f, &req, false);
	assert_null(r->enqueue->results[0]->status);
	g.id = r->enqueue->results[0]->id;
	greq.body_case = NQ__V1__REQUEST__BODY_GET;
	greq.get = &g;
	Nq__V1__Reply *gr = call(f, &greq, false);
	const Nq__V1__JobSpec *got = gr->get->job->spec;
	assert_true(!got->depends || !got->depends->batch_id[0]);
	nq__v1__reply__free_unpacked(gr, NULL);
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(batch_get(f, id, &k)->total, 0);
	nq__v1__reply__free_unpacked(k, NULL);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_batch_some_dead_fire_on_complete_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_all_succeed_fire_both, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_restart_midway_counts_on, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_seal_completes_an_ended_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_created_by_an_enqueue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_cancel_ends_its_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_bad_input_stores_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_replay_belongs_to_none, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
