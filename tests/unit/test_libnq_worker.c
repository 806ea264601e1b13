/*
 * nq_worker against a scripted broker: a REP work socket that leases jobs
 * from a list and answers extends, and a PULL results socket that records
 * every completion. Checks slots, handler dispatch, lease extension, lost
 * leases and the drain.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/codec.h"
#include "nqi/util.h"

#define MAX_JOBS 16
#define WORKER_ID "test-w1"

typedef struct done_rec {
	char id[NQ_ID_MAX];
	uint64_t token;
	int outcome;
	char result[64];
	char error[256];
	bool non_retryable;
} done_rec;

typedef struct fake {
	nng_socket work, results;
	char work_url[64], results_url[64];
	pthread_t work_thr, results_thr;
	pthread_mutex_t mtx;
	/* jobs still to lease: id and type */
	char ids[MAX_JOBS][NQ_ID_MAX];
	const char *types[MAX_JOBS];
	size_t next, njobs;
	uint32_t max_jobs_seen;
	int fetches;       /* fetches that asked for at least one job */
	int extends;       /* leases named in extend requests */
	bool lose_leases;  /* answer extends with FAILED_PRECONDITION */
	size_t answer_max; /* results per extend reply, as a broker's limit;
	                      0: one for every lease */
	int park_ms;       /* hold each fetch this long before leasing */
	int parked;        /* fetches held so far */
	done_rec done[MAX_JOBS * 2];
	size_t ndone;
	atomic_bool stop;
} fake;

static uint64_t token_of(size_t i)
{
	return 1000 + i;
}

static nng_msg *fetch_reply(fake *f, const Nq__V1__FetchRequest *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__FetchReply fr = NQ__V1__FETCH_REPLY__INIT;
	Nq__V1__Job jobs[MAX_JOBS], *pj[MAX_JOBS];
	Nq__V1__JobSpec specs[MAX_JOBS];
	size_t n = 0;
	nng_msg *m = NULL;
	pthread_mutex_lock(&f->mtx);
	int park_ms = f->park_ms;
	f->parked += park_ms > 0;
	pthread_mutex_unlock(&f->mtx);
	if (park_ms)
		nng_msleep(park_ms);
	pthread_mutex_lock(&f->mtx);
	if (req->max_jobs > f->max_jobs_seen)
		f->max_jobs_seen = req->max_jobs;
	f->fetches++;
	while (n < req->max_jobs && f->next < f->njobs) {
		size_t i = f->next++;
		nq__v1__job__init(&jobs[n]);
		nq__v1__job_spec__init(&specs[n]);
		specs[n].queue = (char *)"default";
		specs[n].type = (char *)f->types[i];
		jobs[n].id = f->ids[i];
		jobs[n].spec = &specs[n];
		jobs[n].state = NQ__V1__JOB_STATE__JOB_STATE_LEASED;
		jobs[n].attempt = 1;
		jobs[n].lease_token = token_of(i);
		pj[n] = &jobs[n];
		n++;
	}
	pthread_mutex_unlock(&f->mtx);
	if (n == 0)
		nng_msleep(20); /* a short park, like the broker's long-poll */
	fr.jobs = pj;
	fr.n_jobs = n;
	r.body_case = NQ__V1__REPLY__BODY_FETCH;
	r.fetch = &fr;
	nqi_msg_pack(&r.base, NULL, 0, &m);
	return m;
}

static nng_msg *extend_reply(fake *f, const Nq__V1__ExtendRequest *req)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__ExtendReply er = NQ__V1__EXTEND_REPLY__INIT;
	Nq__V1__Status lost = NQ__V1__STATUS__INIT;
	Nq__V1__Status ok = NQ__V1__STATUS__INIT;
	Nq__V1__Status *res[MAX_JOBS];
	nng_msg *m = NULL;
	lost.code = NQ__V1__CODE__FAILED_PRECONDITION;
	pthread_mutex_lock(&f->mtx);
	f->extends += (int)req->n_leases;
	for (size_t i = 0; i < req->n_leases && i < MAX_JOBS; i++)
		res[i] = f->lose_leases ? &lost : &ok;
	size_t n = req->n_leases < MAX_JOBS ? req->n_leases : MAX_JOBS;
	if (f->answer_max && n > f->answer_max)
		n = f->answer_max;
	pthread_mutex_unlock(&f->mtx);
	er.results = res;
	er.n_results = n;
	r.body_case = NQ__V1__REPLY__BODY_EXTEND;
	r.extend = &er;
	nqi_msg_pack(&r.base, NULL, 0, &m);
	return m;
}

static void *work_main(void *arg)
{
	fake *f = arg;
	while (!atomic_load(&f->stop)) {
		nng_msg *m, *reply = NULL;
		if (nng_recvmsg(f->work, &m, 0) != 0)
			continue;
		Nq__V1__Request *req =
		    nqi_request_unpack(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
		if (req && req->body_case == NQ__V1__REQUEST__BODY_FETCH)
			reply = fetch_reply(f, req->fetch);
		else if (req && req->body_case == NQ__V1__REQUEST__BODY_EXTEND)
			reply = extend_reply(f, req->extend);
		if (req)
			nq__v1__request__free_unpacked(req, NULL);
		if (reply && nng_sendmsg(f->work, reply, 0) != 0)
			nng_msg_free(reply);
	}
	return NULL;
}

static void record(fake *f, const Nq__V1__Completion *c)
{
	pthread_mutex_lock(&f->mtx);
	if (f->ndone < sizeof f->done / sizeof *f->done) {
		done_rec *d = &f->done[f->ndone++];
		snprintf(d->id, sizeof d->id, "%s", c->id);
		d->token = c->lease_token;
		d->outcome = c->outcome;
		snprintf(d->result, sizeof d->result, "%.*s",
		    (int)c->result.len, (const char *)c->result.data);
		snprintf(d->error, sizeof d->error, "%s", c->error);
		d->non_retryable = c->non_retryable;
	}
	pthread_mutex_unlock(&f->mtx);
}

static void *results_main(void *arg)
{
	fake *f = arg;
	while (!atomic_load(&f->stop)) {
		nng_msg *m;
		if (nng_recvmsg(f->results, &m, 0) != 0)
			continue;
		Nq__V1__CompletionBatch *b =
		    nqi_completions_unpack(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
		if (!b)
			continue;
		if (b->version == 1 && strcmp(b->worker_id, WORKER_ID) == 0)
			for (size_t i = 0; i < b->n_completions; i++)
				record(f, b->completions[i]);
		nq__v1__completion_batch__free_unpacked(b, NULL);
	}
	return NULL;
}

static void listen_any(nng_socket s, char *url, size_t len)
{
	nng_listener l;
	int port;
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 50), 0);
	assert_int_equal(nng_listen(s, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
}

/* Starts the fake with jobs of the given types, ids 0..n-1. */
static fake *fake_start(const char *const *types, size_t n)
{
	fake *f = calloc(1, sizeof *f);
	assert_non_null(f);
	pthread_mutex_init(&f->mtx, NULL);
	for (size_t i = 0; i < n; i++) {
		nqi_id_format(i + 1, f->ids[i]);
		f->types[i] = types[i];
	}
	f->njobs = n;
	assert_int_equal(nng_rep0_open(&f->work), 0);
	assert_int_equal(nng_pull0_open(&f->results), 0);
	listen_any(f->work, f->work_url, sizeof f->work_url);
	listen_any(f->results, f->results_url, sizeof f->results_url);
	pthread_create(&f->work_thr, NULL, work_main, f);
	pthread_create(&f->results_thr, NULL, results_main, f);
	return f;
}

static void fake_stop(fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->work_thr, NULL);
	pthread_join(f->results_thr, NULL);
	nng_close(f->work);
	nng_close(f->results);
	pthread_mutex_destroy(&f->mtx);
	free(f);
}

static size_t fake_done(fake *f)
{
	pthread_mutex_lock(&f->mtx);
	size_t n = f->ndone;
	pthread_mutex_unlock(&f->mtx);
	return n;
}

/* Waits up to ms for at least n completions. */
static bool await_done(fake *f, size_t n, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (fake_done(f) >= n)
			return true;
		nng_msleep(10);
	}
	return fake_done(f) >= n;
}

static const done_rec *done_for(fake *f, size_t job)
{
	char id[NQ_ID_MAX];
	nqi_id_format(job + 1, id);
	for (size_t i = 0; i < f->ndone; i++)
		if (strcmp(f->done[i].id, id) == 0)
			return &f->done[i];
	return NULL;
}

typedef struct runner {
	nq_worker *w;
	pthread_t thread;
	int rv;
} runner;

static void *run_main(void *arg)
{
	runner *r = arg;
	r->rv = nq_worker_run(r->w);
	return NULL;
}

static nq_worker *worker_for(
    fake *f, int concurrency, uint64_t lease_ms, uint64_t grace_ms)
{
	nq_worker_opts o = {.concurrency = concurrency,
	    .lease_ms = lease_ms,
	    .grace_ms = grace_ms,
	    .poll_ms = 200,
	    .worker_id = WORKER_ID};
	nq_worker *w = NULL;
	o.conn.work_url = f->work_url;
	o.conn.results_url = f->results_url;
	o.conn.timeout_ms = 1000;
	assert_int_equal(nq_worker_open(&w, &o), NQ_OK);
	return w;
}

static void start(runner *r, nq_worker *w)
{
	r->w = w;
	r->rv = -1;
	assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
}

/* Stops the worker and returns how long the drain took. */
static uint64_t stop(runner *r)
{
	uint64_t t0 = nqi_mono_ms();
	nq_worker_stop(r->w);
	pthread_join(r->thread, NULL);
	return nqi_mono_ms() - t0;
}

/* ---- handlers ---- */

static nq_outcome echo_cb(const nq_job *job, nq_result *res, void *arg)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "ran %s", nq_job_id(job));
	nq_result_set(res, buf, (size_t)n);
	return NQ_OUTCOME_SUCCEEDED;
}

static nq_outcome fail_cb(const nq_job *job, nq_result *res, void *arg)
{
	nq_result_error(res, "boom", true);
	nq_result_retry_after(res, 5000);
	return NQ_OUTCOME_FAILED;
}

/* Sleeps *(int *)arg ms, ignoring the drain, then succeeds. */
static nq_outcome sleep_cb(const nq_job *job, nq_result *res, void *arg)
{
	nng_msleep(*(int *)arg);
	nq_result_set(res, "slept", 5);
	return NQ_OUTCOME_SUCCEEDED;
}

typedef struct gate {
	atomic_bool open;
	atomic_int inside; /* handlers waiting at the gate */
} gate;

/* Blocks until the gate (arg) opens. */
static nq_outcome gate_cb(const nq_job *job, nq_result *res, void *arg)
{
	gate *g = arg;
	atomic_fetch_add(&g->inside, 1);
	while (!atomic_load(&g->open))
		nng_msleep(5);
	atomic_fetch_sub(&g->inside, 1);
	return NQ_OUTCOME_SUCCEEDED;
}

/* ---- tests ---- */

static void test_libnq_worker_open_checks_options(void **st)
{
	const char *bad_queue[] = {"no spaces"};
	nq_worker_opts neg = {.concurrency = -1};
	nq_worker_opts huge = {.concurrency = 100000};
	nq_worker_opts queue = {.queues = bad_queue, .nqueues = 1};
	nq_worker_opts none = {.queues = bad_queue, .nqueues = 0};
	nq_worker_opts lease = {.lease_ms = 10};
	nq_worker_opts id = {.worker_id = "a b"};
	nq_worker *w = NULL;
	assert_int_equal(nq_worker_open(&w, &neg), NQ_EINVAL);
	assert_int_equal(nq_worker_open(&w, &huge), NQ_EINVAL);
	assert_int_equal(nq_worker_open(&w, &queue), NQ_EINVAL);
	assert_int_equal(nq_worker_open(&w, &none), NQ_EINVAL);
	assert_int_equal(nq_worker_open(&w, &lease), NQ_EINVAL);
	assert_int_equal(nq_worker_open(&w, &id), NQ_EINVAL);
	assert_null(w);

	assert_int_equal(nq_worker_open(&w, NULL), NQ_OK);
	int busy = -1, total = -1;
	nq_worker_slots(w, &busy, &total);
	assert_int_equal(busy, 0);
	assert_int_equal(total, 1);
	/* "<host>-<pid>-<4 hex>", a valid name */
	assert_true(nqi_name_valid(nq_worker_id(w)));
	assert_int_equal(
	    nq_worker_handle(w, "bad type", echo_cb, NULL), NQ_EINVAL);
	assert_int_equal(nq_worker_handle(w, "t", NULL, NULL), NQ_EINVAL);
	assert_int_equal(nq_worker_handle(w, "*", echo_cb, NULL), NQ_OK);
	/* Stopped before it ran: run returns at once, and only once. */
	nq_worker_stop(w);
	assert_true(nq_worker_draining(w));
	uint64_t t0 = nqi_mono_ms();
	assert_int_equal(nq_worker_run(w), NQ_OK);
	assert_true(nqi_mono_ms() - t0 < 1000);
	assert_int_equal(nq_worker_run(w), NQ_EPRECOND);
	nq_worker_close(w);
	nq_worker_close(NULL);
}

static void test_libnq_worker_runs_handlers_and_reports_outcomes(void **st)
{
	const char *types[] = {"echo", "fail", "unknown", "echo"};
	fake *f = fake_start(types, 4);
	nq_worker *w = worker_for(f, 2, 0, 0);
	runner r;
	assert_int_equal(nq_worker_handle(w, "echo", echo_cb, NULL), NQ_OK);
	assert_int_equal(nq_worker_handle(w, "fail", fail_cb, NULL), NQ_OK);
	start(&r, w);
	assert_true(await_done(f, 4, 5000));
	assert_true(stop(&r) < 2000);
	assert_int_equal(r.rv, NQ_OK);

	assert_true(f->max_jobs_seen >= 1 && f->max_jobs_seen <= 2);
	const done_rec *d = done_for(f, 0);
	assert_non_null(d);
	assert_int_equal(d->outcome, NQ_OUTCOME_SUCCEEDED);
	assert_string_equal(d->result, "ran 0000000000000001");
	assert_int_equal(d->token, token_of(0));
	d = done_for(f, 1);
	assert_non_null(d);
	assert_int_equal(d->outcome, NQ_OUTCOME_FAILED);
	assert_string_equal(d->error, "boom");
	assert_true(d->non_retryable);
	d = done_for(f, 2);
	assert_non_null(d);
	assert_int_equal(d->outcome, NQ_OUTCOME_FAILED);
	assert_string_equal(
	    d->error, "no handler for type unknown on worker " WORKER_ID);
	assert_false(d->non_retryable);
	assert_int_equal(fake_done(f), 4);
	nq_worker_close(w);
	fake_stop(f);
}

/* Slots are real concurrency: as many handlers as slots run at once. */
static void test_libnq_worker_asks_only_for_free_slots(void **st)
{
	const char *types[] = {"gate", "gate", "gate", "gate", "gate"};
	static gate g;
	fake *f = fake_start(types, 5);
	nq_worker *w = worker_for(f, 3, 0, 0);
	runner r;
	atomic_store(&g.open, false);
	atomic_store(&g.inside, 0);
	nq_worker_handle(w, "gate", gate_cb, &g);
	start(&r, w);
	int busy = 0;
	for (int t = 0; t < 3000 && atomic_load(&g.inside) < 3; t += 10)
		nng_msleep(10);
	assert_int_equal(atomic_load(&g.inside), 3);
	nq_worker_slots(w, &busy, NULL);
	assert_int_equal(busy, 3);
	pthread_mutex_lock(&f->mtx);
	int fetches = f->fetches;
	assert_int_equal(f->max_jobs_seen, 3);
	assert_int_equal(f->next, 3);
	pthread_mutex_unlock(&f->mtx);
	/* Every slot busy: no fetch at all, so no job waits in a busy
	 * worker. */
	nng_msleep(400);
	pthread_mutex_lock(&f->mtx);
	assert_int_equal(f->fetches, fetches);
	pthread_mutex_unlock(&f->mtx);
	atomic_store(&g.open, true);
	assert_true(await_done(f, 5, 5000));
	stop(&r);
	assert_int_equal(r.rv, NQ_OK);
	nq_worker_close(w);
	fake_stop(f);
}

/* Slots left free while the others run long handlers fetch again as soon
 * as nothing fetched waits to start: a job that comes later runs at once,
 * not when a long handler ends. */
static void test_libnq_worker_free_slots_fetch_while_others_run(void **st)
{
	const char *types[] = {
	    "gate", "gate", "gate", "gate", "gate", "gate", "gate", "quick"};
	static gate g, open;
	fake *f = fake_start(types, 8);
	pthread_mutex_lock(&f->mtx);
	f->njobs = 7; /* the quick job comes later */
	pthread_mutex_unlock(&f->mtx);
	nq_worker *w = worker_for(f, 8, 0, 0);
	runner r;
	atomic_store(&g.open, false);
	atomic_store(&g.inside, 0);
	atomic_store(&open.open, true);
	nq_worker_handle(w, "gate", gate_cb, &g);
	nq_worker_handle(w, "quick", gate_cb, &open);
	start(&r, w);
	for (int t = 0; t < 3000 && atomic_load(&g.inside) < 7; t += 10)
		nng_msleep(10);
	assert_int_equal(atomic_load(&g.inside), 7);
	pthread_mutex_lock(&f->mtx);
	f->njobs = 8;
	pthread_mutex_unlock(&f->mtx);
	bool quick_ran = await_done(f, 1, 3000);
	atomic_store(&g.open, true);
	assert_true(quick_ran);
	assert_true(await_done(f, 8, 5000));
	stop(&r);
	nq_worker_close(w);
	fake_stop(f);
}

static void test_libnq_worker_extends_running_leases(void **st)
{
	const char *types[] = {"sleep"};
	static int ms = 700;
	fake *f = fake_start(types, 1);
	nq_worker *w = worker_for(f, 1, 150, 0);
	runner r;
	nq_worker_handle(w, "sleep", sleep_cb, &ms);
	start(&r, w);
	assert_true(await_done(f, 1, 5000));
	stop(&r);
	/* every 50 ms for 700 ms; a loaded machine may skip some */
	assert_true(f->extends >= 3);
	assert_int_equal(f->done[0].outcome, NQ_OUTCOME_SUCCEEDED);
	assert_string_equal(f->done[0].result, "slept");
	nq_worker_close(w);
	fake_stop(f);
}

static void test_libnq_worker_drops_completion_of_lost_lease(void **st)
{
	const char *types[] = {"sleep", "echo"};
	static int ms = 500;
	fake *f = fake_start(types, 2);
	nq_worker *w = worker_for(f, 1, 150, 0);
	runner r;
	f->lose_leases = true;
	nq_worker_handle(w, "sleep", sleep_cb, &ms);
	nq_worker_handle(w, "echo", echo_cb, NULL);
	start(&r, w);
	/* The echo job runs after the sleeper in the one slot, so its
	 * completion proves the sleeper's would have been sent by then. */
	assert_true(await_done(f, 1, 5000));
	nng_msleep(100);
	stop(&r);
	assert_true(f->extends >= 1);
	assert_int_equal(fake_done(f), 1);
	assert_non_null(done_for(f, 1));
	assert_null(done_for(f, 0));
	nq_worker_close(w);
	fake_stop(f);
}

/* A broker that answers fewer leases than were sent (its limit per
 * request) is asked again for the rest, so no lease goes unseen. */
static void test_libnq_worker_extends_past_a_short_reply(void **st)
{
	const char *types[] = {"sleep", "sleep", "echo"};
	static int ms = 500;
	fake *f = fake_start(types, 3);
	nq_worker *w = worker_for(f, 2, 150, 0);
	runner r;
	f->lose_leases = true;
	f->answer_max = 1;
	nq_worker_handle(w, "sleep", sleep_cb, &ms);
	nq_worker_handle(w, "echo", echo_cb, NULL);
	start(&r, w);
	/* The echo job takes the first slot a sleeper frees. */
	assert_true(await_done(f, 1, 5000));
	nng_msleep(100);
	stop(&r);
	assert_int_equal(fake_done(f), 1);
	assert_non_null(done_for(f, 2));
	assert_null(done_for(f, 0));
	assert_null(done_for(f, 1));
	nq_worker_close(w);
	fake_stop(f);
}

static void test_libnq_worker_drain_releases_running_jobs(void **st)
{
	const char *types[] = {"sleep"};
	static int ms = 1500;
	fake *f = fake_start(types, 1);
	nq_worker *w = worker_for(f, 2, 0, 200);
	runner r;
	nq_worker_handle(w, "sleep", sleep_cb, &ms);
	start(&r, w);
	int busy = 0;
	for (int t = 0; t < 3000 && busy < 1; t += 10) {
		nng_msleep(10);
		nq_worker_slots(w, &busy, NULL);
	}
	assert_int_equal(busy, 1);
	uint64_t took = stop(&r);
	assert_int_equal(r.rv, NQ_OK);
	/* grace, then the release is flushed; the handler still sleeps */
	assert_true(took >= 190 && took < 1200);
	assert_true(await_done(f, 1, 1000));
	assert_int_equal(f->done[0].outcome, NQ_OUTCOME_RELEASED);
	assert_int_equal(f->done[0].token, token_of(0));
	/* close does not wait for the stuck handler; its late completion
	 * is never sent */
	uint64_t t0 = nqi_mono_ms();
	nq_worker_close(w);
	assert_true(nqi_mono_ms() - t0 < 500);
	nng_msleep(1500);
	assert_int_equal(fake_done(f), 1);
	fake_stop(f);
}

/* A stop while a fetch is parked waits for its reply, and the job leased
 * in that reply goes straight back instead of waiting out its lease. */
static void test_libnq_worker_stop_answers_parked_fetch(void **st)
{
	const char *types[] = {"echo"};
	fake *f = fake_start(types, 1);
	nq_worker *w = worker_for(f, 1, 0, 0);
	runner r;
	pthread_mutex_lock(&f->mtx);
	f->park_ms = 600;
	pthread_mutex_unlock(&f->mtx);
	nq_worker_handle(w, "echo", echo_cb, NULL);
	start(&r, w);
	int parked = 0;
	for (int t = 0; t < 5000 && !parked; t += 10) {
		nng_msleep(10);
		pthread_mutex_lock(&f->mtx);
		parked = f->parked;
		pthread_mutex_unlock(&f->mtx);
	}
	assert_int_equal(parked, 1);
	stop(&r);
	assert_int_equal(r.rv, NQ_OK);
	/* Abandoned, the fetch would have left the job leased to nobody. */
	assert_true(await_done(f, 1, 2000));
	assert_int_equal(f->done[0].outcome, NQ_OUTCOME_RELEASED);
	assert_int_equal(f->done[0].token, token_of(0));
	nq_worker_close(w);
	fake_stop(f);
}

/* With no broker to answer, nothing can be in flight: a stop does not
 * wait out the request timeout. */
static void test_libnq_worker_stops_at_once_without_broker(void **st)
{
	/* A long poll, so that waiting out the fetch would show. */
	nq_worker_opts o = {
	    .concurrency = 2, .poll_ms = 10000, .worker_id = WORKER_ID};
	nq_worker *w = NULL;
	runner r;
	/* a port that was just free: nothing listens there */
	nng_socket s;
	char url[64];
	assert_int_equal(nng_rep0_open(&s), 0);
	listen_any(s, url, sizeof url);
	nng_close(s);
	o.conn.work_url = url;
	o.conn.results_url = url;
	o.conn.timeout_ms = 10000;
	assert_int_equal(nq_worker_open(&w, &o), NQ_OK);
	nq_worker_handle(w, "echo", echo_cb, NULL);
	start(&r, w);
	nng_msleep(300);
	assert_true(stop(&r) < 2000);
	nq_worker_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_libnq_worker_open_checks_options),
	    cmocka_unit_test(
	        test_libnq_worker_runs_handlers_and_reports_outcomes),
	    cmocka_unit_test(test_libnq_worker_asks_only_for_free_slots),
	    cmocka_unit_test(
	        test_libnq_worker_free_slots_fetch_while_others_run),
	    cmocka_unit_test(test_libnq_worker_extends_running_leases),
	    cmocka_unit_test(test_libnq_worker_extends_past_a_short_reply),
	    cmocka_unit_test(test_libnq_worker_drops_completion_of_lost_lease),
	    cmocka_unit_test(test_libnq_worker_drain_releases_running_jobs),
	    cmocka_unit_test(test_libnq_worker_stop_answers_parked_fetch),
	    cmocka_unit_test(test_libnq_worker_stops_at_once_without_broker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
