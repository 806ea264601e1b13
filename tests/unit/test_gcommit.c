/* Group commit: ops queued together are applied in one transaction and
 * committed once; a failed commit or write fails every op of its group and
 * turns readiness false until a commit works again; a stop runs what is
 * queued and refuses what comes later. A real LMDB store in a fresh
 * mkdtemp dir each; its commit fault seam makes commits fail. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "nqi/gcommit.h"
#include "nqi/store.h"
#include "nqi/util.h"

static const nqi_store_db dbs[] = {{"ops", NULL}, {NULL, NULL}};

/* A test op: applying it stores its id. */
typedef struct top {
	uint64_t id;
	int apply_rv; /* what applying it returns */
	int apply_ms; /* how long applying it takes */
	bool applied;
	bool ended;
	int err; /* its group's outcome */
	struct top *next;
} top;

typedef struct fixture {
	char dir[64];
	char fault[96]; /* commits fail while this file exists */
	nqi_store *store;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	MDB_txn *txn;
	bool dirty;
	atomic_bool ready;
	nqi_gcommit gc;
	top *group, **tail; /* the ops of the group being run */
	int groups, probes, stopped;
	uint64_t wait_ms;
	uint64_t tick_ms; /* a group without ops every tick_ms; 0: never */
	uint64_t next_tick_ms;
	top *late; /* posted by the core once it has seen the stop */
} fixture;

static int apply_cb(void *ctx, void *arg)
{
	fixture *f = ctx;
	top *op = arg;
	op->next = NULL;
	*f->tail = op;
	f->tail = &op->next;
	op->applied = true;
	if (op->apply_ms)
		nng_msleep(op->apply_ms);
	uint8_t key[8];
	nqi_be64_put(key, op->id);
	MDB_val k = {8, key}, v = {0, ""};
	if (mdb_put(f->txn, nqi_store_dbi(f->store, 0), &k, &v, 0) != 0)
		return NQ_ESTORE;
	f->dirty = true;
	return op->apply_rv;
}

static int seal_cb(void *ctx, bool probe)
{
	fixture *f = ctx;
	f->probes += probe;
	return NQ_OK;
}

static void end_cb(void *ctx, void *rest, int err)
{
	fixture *f = ctx;
	*f->tail = rest;
	for (top *op = f->group; op; op = op->next) {
		op->err = err;
		op->ended = true;
	}
	f->group = NULL;
	f->tail = &f->group;
	f->groups++;
}

static uint64_t wait_ms_cb(void *ctx)
{
	fixture *f = ctx;
	return f->wait_ms;
}

static bool due_cb(void *ctx, void **ops, bool stopping)
{
	fixture *f = ctx;
	if (stopping && f->late) {
		assert_int_equal(nqi_gcommit_post(&f->gc, f->late), NQ_OK);
		f->late = NULL;
	}
	uint64_t now = nqi_mono_ms();
	bool tick = f->tick_ms && now >= f->next_tick_ms;
	if (tick)
		f->next_tick_ms = now + f->tick_ms;
	return *ops || tick;
}

static void stopped_cb(void *ctx)
{
	fixture *f = ctx;
	f->stopped++;
}

static const nqi_gcommit_hooks hooks = {
    .apply_cb = apply_cb,
    .seal_cb = seal_cb,
    .end_cb = end_cb,
    .wait_ms_cb = wait_ms_cb,
    .due_cb = due_cb,
    .stopped_cb = stopped_cb,
};

static int setup(void **st)
{
	fixture *f = calloc(1, sizeof *f);
	char err[256] = "";
	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/nq-test-gcommit-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->fault, sizeof f->fault, "%s/fail", f->dir);
	setenv("NQ_FAULT_COMMIT_FILE", f->fault, 1);
	nqi_store_opts o = {.dir = f->dir,
	    .sync = true,
	    .map_size = 16u << 20,
	    .dbs = dbs,
	    .schema_version = 1};
	if (nqi_store_open(&f->store, &o, err, sizeof err) != 0) {
		fprintf(stderr, "store: %s\n", err);
		return -1;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	atomic_store(&f->ready, true);
	f->tail = &f->group;
	f->wait_ms = 60000;
	f->gc = NQI_GCOMMIT_OF(f, top, &hooks);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	fixture *f = *st;
	static const char *const files[] = {"data.mdb", "lock.mdb", "fail"};
	char path[160];
	nqi_gcommit_stop(&f->gc);
	nqi_store_close(f->store);
	unsetenv("NQ_FAULT_COMMIT_FILE");
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
		unlink(path);
	}
	rmdir(f->dir);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
	return 0;
}

static bool stored(fixture *f, uint64_t id)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	nqi_be64_put(key, id);
	assert_int_equal(nqi_store_begin(f->store, false, &txn), NQ_OK);
	int rc = mdb_get(txn, nqi_store_dbi(f->store, 0), &k, &v);
	mdb_txn_abort(txn);
	return rc == 0;
}

/* Links ops[0..n) into a list, as the queue would. */
static top *chain(top *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ops[i].id = i + 1;
		ops[i].next = i + 1 < n ? &ops[i + 1] : NULL;
	}
	return ops;
}

static void fault(fixture *f, bool on)
{
	if (on) {
		FILE *fp = fopen(f->fault, "w");
		assert_non_null(fp);
		fclose(fp);
	} else {
		assert_int_equal(unlink(f->fault), 0);
	}
}

static void test_gcommit_queued_ops_share_one_commit(void **st)
{
	fixture *f = *st;
	top ops[5] = {{0}};
	chain(ops, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(nqi_gcommit_post(&f->gc, &ops[i]), NQ_OK);
	assert_int_equal(nqi_gcommit_start(&f->gc), NQ_OK);
	nqi_gcommit_stop(&f->gc);
	assert_int_equal(f->groups, 1);
	assert_int_equal(nqi_store_commits(f->store), 1);
	for (size_t i = 0; i < 5; i++) {
		assert_true(ops[i].ended);
		assert_int_equal(ops[i].err, NQ_OK);
		assert_true(stored(f, ops[i].id));
	}
	assert_true(atomic_load(&f->ready));
}

/* The core's time is counted by stage, for /metrics: an op that takes
 * 30 ms to apply shows in "apply", its commit in "commit". */
static void test_gcommit_counts_the_core_time_by_stage(void **st)
{
	fixture *f = *st;
	top op = {.id = 1, .apply_ms = 30};
	nqi_gcommit_run(&f->gc, &op);
	assert_true(op.ended);
	uint64_t apply = atomic_load(&f->gc.stage_ns[NQI_GCOMMIT_APPLY]);
	assert_true(apply >= 30000000u && apply < 1000000000u);
	assert_true(atomic_load(&f->gc.stage_ns[NQI_GCOMMIT_COMMIT]) > 0);
	assert_true(atomic_load(&f->gc.stage_ns[NQI_GCOMMIT_REPLY]) > 0);
	nqi_prom *p;
	assert_int_equal(nqi_prom_alloc(&p), 0);
	assert_int_equal(
	    nqi_gcommit_prom(p, &f->gc, "nq_core_seconds_total"), 0);
	size_t len;
	const char *text = nqi_prom_text(p, &len);
	assert_non_null(strstr(text, "# TYPE nq_core_seconds_total counter"));
	const char *at =
	    strstr(text, "nq_core_seconds_total{stage=\"apply\"} ");
	assert_non_null(at);
	double seconds = strtod(strchr(at, '}') + 1, NULL);
	assert_true(seconds >= 0.03 && seconds < 1.0);
	assert_non_null(
	    strstr(text, "nq_core_seconds_total{stage=\"commit\"} "));
	assert_non_null(
	    strstr(text, "nq_core_seconds_total{stage=\"reply\"} "));
	nqi_prom_free(p);
}

static void test_gcommit_failed_commit_fails_every_op(void **st)
{
	fixture *f = *st;
	top ops[3] = {{0}};
	fault(f, true);
	nqi_gcommit_run(&f->gc, chain(ops, 3));
	for (size_t i = 0; i < 3; i++) {
		assert_true(ops[i].ended);
		assert_int_equal(ops[i].err, NQ_ESTORE);
		assert_false(stored(f, ops[i].id));
	}
	assert_false(atomic_load(&f->ready));
	assert_null(f->txn);
	assert_int_equal(nqi_store_commits(f->store), 0);
}

static void test_gcommit_failed_write_fails_the_rest_unapplied(void **st)
{
	fixture *f = *st;
	top ops[3] = {{0}};
	chain(ops, 3);
	ops[1].apply_rv = NQ_ENOMEM;
	nqi_gcommit_run(&f->gc, ops);
	assert_true(ops[0].applied && ops[1].applied);
	assert_false(ops[2].applied);
	for (size_t i = 0; i < 3; i++) {
		assert_true(ops[i].ended);
		assert_int_equal(ops[i].err, NQ_ENOMEM);
		assert_false(stored(f, ops[i].id));
	}
	assert_int_equal(f->groups, 1);
	assert_false(atomic_load(&f->ready));
	assert_int_equal(nqi_store_commits(f->store), 0);
}

static void test_gcommit_probe_commit_brings_readiness_back(void **st)
{
	fixture *f = *st;
	fault(f, true);
	nqi_gcommit_run(&f->gc, NULL);
	assert_true(atomic_load(&f->ready)); /* nothing to write, no commit */
	top op = {.id = 7};
	nqi_gcommit_run(&f->gc, &op);
	assert_false(atomic_load(&f->ready));
	nqi_gcommit_run(&f->gc, NULL); /* the disk is still full */
	assert_int_equal(f->probes, 1);
	assert_false(atomic_load(&f->ready));
	fault(f, false);
	nqi_gcommit_run(&f->gc, NULL);
	assert_int_equal(f->probes, 2);
	assert_true(atomic_load(&f->ready));
	assert_int_equal(nqi_store_commits(f->store), 1);
	nqi_gcommit_run(&f->gc, NULL); /* ready again: nothing to commit */
	assert_int_equal(f->probes, 2);
	assert_int_equal(nqi_store_commits(f->store), 1);
}

static void test_gcommit_stop_runs_late_ops_then_refuses(void **st)
{
	fixture *f = *st;
	top first = {.id = 1}, late = {.id = 2}, refused = {.id = 3};
	f->late = &late;
	assert_int_equal(nqi_gcommit_post(&f->gc, &first), NQ_OK);
	assert_int_equal(nqi_gcommit_start(&f->gc), NQ_OK);
	nqi_gcommit_stop(&f->gc);
	assert_null(f->late);
	assert_true(first.ended && late.ended);
	assert_int_equal(first.err, NQ_OK);
	assert_int_equal(late.err, NQ_OK);
	assert_true(stored(f, 2));
	assert_int_equal(f->stopped, 1);
	assert_int_equal(nqi_gcommit_post(&f->gc, &refused), NQ_ECLOSED);
	assert_false(refused.ended);
}

static void test_gcommit_core_wakes_for_its_timers(void **st)
{
	fixture *f = *st;
	f->wait_ms = 10;
	f->tick_ms = 10;
	assert_int_equal(nqi_gcommit_start(&f->gc), NQ_OK);
	nng_msleep(300);
	nqi_gcommit_stop(&f->gc);
	assert_true(f->groups >= 5);
	/* groups that wrote nothing commit nothing */
	assert_int_equal(nqi_store_commits(f->store), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_gcommit_queued_ops_share_one_commit),
	    T(test_gcommit_counts_the_core_time_by_stage),
	    T(test_gcommit_failed_commit_fails_every_op),
	    T(test_gcommit_failed_write_fails_the_rest_unapplied),
	    T(test_gcommit_probe_commit_brings_readiness_back),
	    T(test_gcommit_stop_runs_late_ops_then_refuses),
	    T(test_gcommit_core_wakes_for_its_timers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
