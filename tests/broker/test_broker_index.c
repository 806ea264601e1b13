/* The broker's in-memory index: dispatch order of ready jobs, timers, the
 * lease table under churn, and ordering keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "broker.h"

static void test_index_ready_priority_then_fifo(void **state)
{
	broker_index x;
	broker_ready e;
	(void)state;
	assert_int_equal(broker_index_init(&x), 0);
	int qi = broker_queue_get(&x, "q");
	broker_queue *q = &x.queues[qi];
	/* ids are enqueue order; priorities mixed */
	int32_t prio[] = {0, 5, 0, 5, -1, 0};
	for (uint64_t id = 1; id <= 6; id++)
		assert_int_equal(broker_ready_push(q, prio[id - 1], id,
		                     id % 2 ? BROKER_READY_PLAIN : 0),
		    0);
	uint64_t want[] = {2, 4, 1, 3, 6, 5};
	for (int i = 0; i < 6; i++) {
		assert_true(broker_ready_peek(q, &e));
		assert_int_equal(e.id, want[i]);
		/* the entry's flags travel with it through the heap */
		assert_int_equal(e.flags, want[i] % 2 ? BROKER_READY_PLAIN : 0);
		broker_ready_pop(q);
	}
	assert_false(broker_ready_peek(q, &e));
	broker_index_fini(&x);
}

static void test_index_ready_fifo_holds_for_many_jobs(void **state)
{
	broker_index x;
	broker_ready e;
	(void)state;
	broker_index_init(&x);
	int qi = broker_queue_get(&x, "q");
	broker_queue *q = &x.queues[qi];
	srand(7);
	/* pushed in shuffled order, popped in id order */
	uint64_t ids[5000];
	for (int i = 0; i < 5000; i++)
		ids[i] = (uint64_t)i + 1;
	for (int i = 4999; i > 0; i--) {
		int j = rand() % (i + 1);
		uint64_t t = ids[i];
		ids[i] = ids[j];
		ids[j] = t;
	}
	for (int i = 0; i < 5000; i++)
		broker_ready_push(q, 0, ids[i], 0);
	for (uint64_t want = 1; want <= 5000; want++) {
		assert_true(broker_ready_peek(q, &e));
		assert_int_equal(e.id, want);
		broker_ready_pop(q);
	}
	broker_index_fini(&x);
}

static void test_index_timers_pop_by_time(void **state)
{
	broker_index x;
	broker_timer t;
	(void)state;
	broker_index_init(&x);
	uint64_t at[] = {500, 100, 300, 100, 200};
	for (uint64_t i = 0; i < 5; i++) {
		broker_timer in = {at[i], i + 1, 0, 0};
		assert_int_equal(broker_timer_push(&x, &in), 0);
	}
	uint64_t want_id[] = {2, 4, 5, 3, 1};
	for (int i = 0; i < 5; i++) {
		assert_true(broker_timer_peek(&x, &t));
		assert_int_equal(t.id, want_id[i]);
		broker_timer_pop(&x);
	}
	assert_false(broker_timer_peek(&x, &t));
	broker_index_fini(&x);
}

static void test_index_leases_survive_churn(void **state)
{
	broker_index x;
	(void)state;
	broker_index_init(&x);
	/* Insert 3000 leases, delete every other one, and check that every
	 * remaining one is still found with its token. */
	for (uint64_t id = 1; id <= 3000; id++) {
		broker_lease l = {.id = id * 7919, .token = id};
		assert_int_equal(broker_lease_put(&x, &l), 0);
	}
	for (uint64_t id = 1; id <= 3000; id += 2)
		broker_lease_del(&x, id * 7919);
	assert_int_equal(x.nleases, 1500);
	for (uint64_t id = 1; id <= 3000; id++) {
		broker_lease *l = broker_lease_find(&x, id * 7919);
		if (id % 2) {
			assert_null(l);
		} else {
			assert_non_null(l);
			assert_int_equal(l->token, id);
		}
	}
	broker_index_fini(&x);
}

static void test_index_ordering_key_one_in_flight(void **state)
{
	broker_index x;
	broker_ready e;
	(void)state;
	broker_index_init(&x);
	int qi = broker_queue_get(&x, "q");
	uint64_t k = broker_okey_hash("q", "customer-42");
	assert_int_not_equal(k, broker_okey_hash("q2", "customer-42"));
	assert_false(broker_okey_busy(&x, k));
	assert_int_equal(broker_okey_take(&x, k), 0);
	assert_true(broker_okey_busy(&x, k));
	/* two later jobs of the key wait behind it */
	broker_okey_block(&x, k, (uint32_t)qi, &(broker_ready){0, 0, 11});
	broker_okey_block(&x, k, (uint32_t)qi, &(broker_ready){0, 0, 10});
	assert_false(broker_ready_peek(&x.queues[qi], &e));
	/* the job in flight ends: only the oldest waiting one returns */
	assert_int_equal(broker_okey_release(&x, k), 0);
	assert_true(broker_ready_peek(&x.queues[qi], &e));
	assert_int_equal(e.id, 10);
	assert_int_equal(x.queues[qi].nheap, 1);
	broker_index_fini(&x);
}

/* Canceled plain jobs are noted once each and forgotten when taken. */
static void test_index_stale_entries_are_taken_once(void **state)
{
	broker_index x;
	(void)state;
	assert_int_equal(broker_index_init(&x), 0);
	assert_false(broker_stale_take(&x, 7));
	uint64_t ids[] = {50, 7, 1000, 7, 3, 999999};
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(broker_stale_add(&x, ids[i]), 0);
	assert_int_equal(x.nstale, 5); /* 7 twice is one entry */
	assert_false(broker_stale_take(&x, 8));
	assert_true(broker_stale_take(&x, 1000));
	assert_false(broker_stale_take(&x, 1000));
	assert_true(broker_stale_take(&x, 3));
	assert_true(broker_stale_take(&x, 7));
	assert_true(broker_stale_take(&x, 50));
	assert_true(broker_stale_take(&x, 999999));
	assert_int_equal(x.nstale, 0);
	broker_index_fini(&x);
}

/* The flags of a heap entry of the group in slot. */
static uint32_t in_group(uint32_t slot)
{
	return slot << BROKER_READY_GROUP_SHIFT;
}

/* A grouped queue takes turns between groups with ready jobs, within a
 * group by priority then age; a group that joins waits one round at most;
 * turning it off gives back one heap in the old order. */
static void test_index_groups_take_turns(void **state)
{
	broker_index x;
	broker_ready e;
	(void)state;
	broker_index_init(&x);
	int qi = broker_queue_get(&x, "q");
	broker_queue *q = &x.queues[qi];
	uint32_t a = broker_group_slot(q, "a"), b = broker_group_slot(q, "b");
	assert_int_not_equal(a, b);
	assert_int_equal(broker_group_slot(q, "a"), a);
	assert_int_equal(broker_group_slot(q, ""), 0);
	for (uint64_t id = 1; id <= 100; id++)
		assert_int_equal(broker_ready_push(q, 0, id, in_group(a)), 0);
	assert_int_equal(broker_groups_set(&x, q, true), 0);
	assert_int_equal(broker_ready_count(q), 100);
	assert_int_equal(broker_ready_push(q, 0, 1000, in_group(b)), 0);
	assert_int_equal(broker_ready_push(q, 5, 1001, in_group(b)), 0);
	uint64_t want[] = {1, 1001, 2, 1000, 3, 4};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		assert_true(broker_ready_peek(q, &e));
		assert_int_equal(e.id, want[i]);
		broker_ready_pop(q);
	}
	/* a group at its limit of leased jobs is passed over */
	q->gate.group_max = 1;
	broker_lease l = {.id = 4, .queue = 0, .group = a};
	assert_int_equal(broker_lease_put(&x, &l), 0);
	assert_int_equal(broker_ready_push(q, 0, 1002, in_group(b)), 0);
	assert_true(broker_ready_peek(q, &e));
	assert_int_equal(e.id, 1002);
	broker_ready_pop(q);
	assert_false(broker_ready_peek(q, &e));
	broker_lease_del(&x, 4);
	q->gate.group_max = 0;
	assert_int_equal(broker_groups_set(&x, q, false), 0);
	assert_int_equal(broker_ready_count(q), 96);
	assert_true(broker_ready_peek(q, &e));
	assert_int_equal(e.id, 5);
	broker_index_fini(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index_ready_priority_then_fifo),
	    cmocka_unit_test(test_index_ready_fifo_holds_for_many_jobs),
	    cmocka_unit_test(test_index_stale_entries_are_taken_once),
	    cmocka_unit_test(test_index_timers_pop_by_time),
	    cmocka_unit_test(test_index_leases_survive_churn),
	    cmocka_unit_test(test_index_ordering_key_one_in_flight),
	    cmocka_unit_test(test_index_groups_take_turns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
