/*
 * nq-dlq's record layout: entries and the time, queue and counts indexes
 * stay in step through puts, deletes and sweeps, and the walks visit
 * every entry once in dead-time order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dlq.h"

#define NQUEUES 4
#define NREASONS 3

static const char *const queues[NQUEUES] = {"a", "ab", "b", "queue.long-1"};
static const char *const reasons[NREASONS] = {
    "max_attempts", "non_retryable", "expired"};

typedef struct fixture {
	dlq d;
	char dir[64];
	uint64_t seed;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	char err[256];
	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/nq-dlq-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->d.cfg.data_dir = f->dir;
	f->d.cfg.sync = "none";
	f->d.cfg.map_size = 256u << 20;
	assert_int_equal(dlq_store_open(&f->d, err, sizeof err), 0);
	f->seed = 42;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[128];
	nqi_store_close(f->d.store);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static uint64_t next_rand(fixture *f)
{
	f->seed = f->seed * 6364136223846793005ull + 1442695040888963407ull;
	return f->seed >> 33;
}

static void put(
    fixture *f, MDB_txn *txn, uint64_t id, int q, int r, uint64_t dead_at)
{
	Nq__V1__DeadJob rec = NQ__V1__DEAD_JOB__INIT;
	Nq__V1__Job job = NQ__V1__JOB__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT;
	Nq__V1__AttemptError e1 = NQ__V1__ATTEMPT_ERROR__INIT,
	                     e2 = NQ__V1__ATTEMPT_ERROR__INIT;
	Nq__V1__AttemptError *errs[] = {&e1, &e2};
	char sid[NQ_ID_MAX];
	nqi_id_format(id, sid);
	spec.queue = (char *)queues[q];
	spec.type = "t";
	spec.payload.data = (uint8_t *)"0123456789";
	spec.payload.len = 10;
	e1.message = "first";
	e2.message = "last";
	job.id = sid;
	job.spec = &spec;
	job.errors = errs;
	job.n_errors = 2;
	rec.job = &job;
	rec.reason = (char *)reasons[r];
	rec.dead_at_us = dead_at;
	assert_int_equal(dlq_store_put(&f->d, txn, id, &rec), 0);
}

typedef struct tally {
	uint64_t n[NQUEUES][NREASONS];
	uint64_t total;
} tally;

static int qindex(const char *q)
{
	for (int i = 0; i < NQUEUES; i++)
		if (strcmp(queues[i], q) == 0)
			return i;
	fail_msg("unknown queue %s", q);
	return -1;
}

static int rindex_of(const char *r)
{
	for (int i = 0; i < NREASONS; i++)
		if (strcmp(reasons[i], r) == 0)
			return i;
	fail_msg("unknown reason %s", r);
	return -1;
}

static int count_cb(void *arg, const char *q, const char *r, uint64_t n)
{
	tally *t = arg;
	t->n[qindex(q)][rindex_of(r)] += n;
	t->total += n;
	return 0;
}

/* Recounts the entries themselves and checks every index against them. */
static void check_consistent(fixture *f, uint64_t want_total)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	tally real = {0}, counted = {0};
	assert_int_equal(nqi_store_begin(f->d.store, false, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, f->d.db_entries, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		Nq__V1__DeadJob *rec =
		    nq__v1__dead_job__unpack(NULL, v.mv_size, v.mv_data);
		assert_non_null(rec);
		real.n[qindex(rec->job->spec->queue)][rindex_of(rec->reason)]++;
		real.total++;
		nq__v1__dead_job__free_unpacked(rec, NULL);
	}
	mdb_cursor_close(cur);
	assert_int_equal(dlq_store_counts(&f->d, txn, count_cb, &counted), 0);
	assert_int_equal(real.total, want_total);
	assert_memory_equal(&real, &counted, sizeof real);

	MDB_stat st;
	assert_int_equal(mdb_stat(txn, f->d.db_time, &st), 0);
	assert_int_equal(st.ms_entries, want_total);
	assert_int_equal(mdb_stat(txn, f->d.db_queue, &st), 0);
	assert_int_equal(st.ms_entries, want_total);
	for (int q = 0; q < NQUEUES; q++) {
		uint64_t n, sum = 0;
		assert_int_equal(
		    dlq_store_queue_count(&f->d, txn, queues[q], &n), 0);
		for (int r = 0; r < NREASONS; r++)
			sum += real.n[q][r];
		assert_int_equal(n, sum);
	}
	mdb_txn_abort(txn);
}

/* Newest first over one queue (or all): dead times never increase and
 * every entry comes once. */
static uint64_t walk_count(fixture *f, const char *queue)
{
	MDB_txn *txn;
	dlq_walk w;
	uint64_t at, id, last_at = UINT64_MAX, n = 0;
	assert_int_equal(nqi_store_begin(f->d.store, false, &txn), 0);
	assert_int_equal(dlq_walk_open(&f->d, txn, queue, true, 0, 0, &w), 0);
	while (dlq_walk_prev(&w, &at, &id) == 0) {
		assert_true(at <= last_at);
		last_at = at;
		n++;
	}
	dlq_walk_close(&w);
	mdb_txn_abort(txn);
	return n;
}

static void test_store_indexes_stay_in_step(void **state)
{
	fixture *f = *state;
	MDB_txn *txn;
	uint64_t ids[2000], total = 0;
	assert_int_equal(nqi_store_begin(f->d.store, true, &txn), 0);
	for (uint64_t i = 0; i < 2000; i++) {
		ids[i] = 0x1000 + i;
		put(f, txn, ids[i], (int)(next_rand(f) % NQUEUES),
		    (int)(next_rand(f) % NREASONS), 1000 + next_rand(f) % 500);
		total++;
	}
	assert_int_equal(nqi_store_commit(f->d.store, txn), 0);
	check_consistent(f, total);

	assert_int_equal(nqi_store_begin(f->d.store, true, &txn), 0);
	for (int i = 0; i < 2000; i += 4) {
		assert_int_equal(dlq_store_del(&f->d, txn, ids[i]), 0);
		total--;
	}
	assert_int_equal(dlq_store_del(&f->d, txn, ids[0]), NQ_ENOTFOUND);
	assert_int_equal(nqi_store_commit(f->d.store, txn), 0);
	check_consistent(f, total);

	uint64_t per_queue = 0;
	for (int q = 0; q < NQUEUES; q++)
		per_queue += walk_count(f, queues[q]);
	assert_int_equal(per_queue, total);
	assert_int_equal(walk_count(f, NULL), total);
}

static void test_store_drop_oldest_respects_budget_and_cutoff(void **state)
{
	fixture *f = *state;
	MDB_txn *txn;
	uint64_t n, at, id;
	bool more;
	assert_int_equal(nqi_store_begin(f->d.store, true, &txn), 0);
	for (uint64_t i = 0; i < 100; i++)
		put(f, txn, 0x2000 + i, (int)(i % 2), 0, 5000 + i);
	/* 50 of queue "a" (even i), 50 of "ab"; the oldest 10 of "a" go */
	assert_int_equal(dlq_store_drop_oldest(&f->d, txn, "a", UINT64_MAX, 10,
	                     NULL, NULL, &n, &more),
	    0);
	assert_int_equal(n, 10);
	assert_true(more);
	assert_int_equal(
	    dlq_store_next_oldest(&f->d, txn, "a", true, 0, 0, &at, &id), 0);
	assert_int_equal(id, 0x2000 + 20);
	/* every queue, dead before 5050: i < 50 minus the 10 gone */
	assert_int_equal(dlq_store_drop_oldest(&f->d, txn, NULL, 5050, 1000,
	                     NULL, NULL, &n, &more),
	    0);
	assert_int_equal(n, 40);
	assert_false(more);
	assert_int_equal(nqi_store_commit(f->d.store, txn), 0);
	check_consistent(f, 50);
	/* "a" and "ab" share a prefix but not their entries */
	assert_int_equal(walk_count(f, "a"), 25);
	assert_int_equal(walk_count(f, "ab"), 25);
	assert_int_equal(walk_count(f, "b"), 0);
}

/* Paging: the walk from an entry starts strictly before it, also among
 * entries that died in the same microsecond. */
static void test_store_walk_pages_before_an_entry(void **state)
{
	fixture *f = *state;
	MDB_txn *txn;
	dlq_walk w;
	uint64_t at, id;
	assert_int_equal(nqi_store_begin(f->d.store, true, &txn), 0);
	for (uint64_t i = 0; i < 6; i++)
		put(f, txn, 0x3000 + i, 2, 1, 7000 + i / 2);
	assert_int_equal(nqi_store_commit(f->d.store, txn), 0);
	assert_int_equal(nqi_store_begin(f->d.store, false, &txn), 0);
	assert_int_equal(
	    dlq_walk_open(&f->d, txn, "b", false, 7001, 0x3003, &w), 0);
	assert_int_equal(dlq_walk_prev(&w, &at, &id), 0);
	assert_int_equal(id, 0x3002);
	assert_int_equal(dlq_walk_prev(&w, &at, &id), 0);
	assert_int_equal(id, 0x3001);
	assert_int_equal(dlq_walk_prev(&w, &at, &id), 0);
	assert_int_equal(id, 0x3000);
	assert_int_equal(dlq_walk_prev(&w, &at, &id), NQ_ENOTFOUND);
	dlq_walk_close(&w);
	Nq__V1__DeadJob *s;
	assert_int_equal(
	    dlq_store_summary(&f->d, txn, 7002, 0x3005, NULL, &s), 0);
	assert_int_equal(s->job->spec->payload.len, 0);
	assert_int_equal(s->job->n_errors, 1);
	assert_string_equal(s->job->errors[0]->message, "last");
	nq__v1__dead_job__free_unpacked(s, NULL);
	mdb_txn_abort(txn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_store_indexes_stay_in_step, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_drop_oldest_respects_budget_and_cutoff, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_walk_pages_before_an_entry, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
