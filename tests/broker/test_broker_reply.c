/* A group's replies: handed to the reply thread with the arena they live
 * in when every one of them may be, sent on the core thread otherwise,
 * and never lost at the stop. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "broker.h"

/* What a reply callback saw: the thread it ran on and the id it read. */
typedef struct seen {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	char id[32];
	int calls;
	bool hold; /* the callback waits until the test clears it */
} seen;

static void on_reply(void *arg, nng_msg *msg)
{
	seen *s = arg;
	Nq__V1__Reply *r = msg ? nq__v1__reply__unpack(
	                             NULL, nng_msg_len(msg), nng_msg_body(msg))
	                       : NULL;
	pthread_mutex_lock(&s->mu);
	while (s->hold)
		pthread_cond_wait(&s->cv, &s->mu);
	s->thread = pthread_self();
	if (r && r->body_case == NQ__V1__REPLY__BODY_ENQUEUE &&
	    r->enqueue->n_results == 1)
		snprintf(s->id, sizeof s->id, "%s", r->enqueue->results[0]->id);
	else if (r && r->body_case == NQ__V1__REPLY__BODY_GET)
		snprintf(s->id, sizeof s->id, "%s", r->get->job->id);
	s->calls++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	nq__v1__reply__free_unpacked(r, NULL);
	nng_msg_free(msg);
}

static void release(seen *s)
{
	pthread_mutex_lock(&s->mu);
	s->hold = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int calls(seen *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->calls;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* A finished request whose reply (an enqueue's with one id, or a get's)
 * is built in the group arena, as the handlers build theirs. */
static void finish_request(broker *b, seen *s, bool get, const char *id)
{
	static const Nq__V1__EnqueueReply rinit = NQ__V1__ENQUEUE_REPLY__INIT;
	static const Nq__V1__EnqueueResult init = NQ__V1__ENQUEUE_RESULT__INIT;
	static const Nq__V1__GetReply ginit = NQ__V1__GET_REPLY__INIT;
	static const Nq__V1__Job jinit = NQ__V1__JOB__INIT;
	broker_op *op = calloc(1, sizeof *op);
	assert_non_null(op);
	op->kind = BROKER_OP_REQUEST;
	op->reply_fn = on_reply;
	op->reply_arg = s;
	op->reply = broker_reply_new(b);
	char *text = nqi_arena_strdup(b->core.arena, id);
	if (get) {
		Nq__V1__GetReply *g = nqi_arena_alloc(b->core.arena, sizeof *g);
		Nq__V1__Job *j = nqi_arena_alloc(b->core.arena, sizeof *j);
		*g = ginit;
		*j = jinit;
		j->id = text;
		g->job = j;
		op->reply->body_case = NQ__V1__REPLY__BODY_GET;
		op->reply->get = g;
	} else {
		Nq__V1__EnqueueReply *e =
		    nqi_arena_alloc(b->core.arena, sizeof *e);
		Nq__V1__EnqueueResult *r =
		    nqi_arena_alloc(b->core.arena, sizeof *r);
		Nq__V1__EnqueueResult **p =
		    nqi_arena_alloc(b->core.arena, sizeof *p);
		*e = rinit;
		*r = init;
		r->id = text;
		*p = r;
		e->results = p;
		e->n_results = 1;
		op->reply->body_case = NQ__V1__REPLY__BODY_ENQUEUE;
		op->reply->enqueue = e;
	}
	broker_finish(b, op);
}

static seen *seen_new(bool hold)
{
	seen *s = calloc(1, sizeof *s);
	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->hold = hold;
	return s;
}

static void seen_free(seen *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

static broker *broker_new(void)
{
	broker *b = calloc(1, sizeof *b);
	assert_non_null(b);
	broker_config_defaults(&b->cfg);
	broker_init(b);
	broker_reply_start(b);
	assert_true(b->out.running);
	return b;
}

static void broker_free(broker *b)
{
	broker_reply_stop(b);
	broker_fini(b);
	free(b);
}

/* The next group writes its own arena while the replies of the last one
 * are still being sent: they must not see it. */
static void test_reply_handed_over_keeps_its_arena(void **st)
{
	(void)st;
	broker *b = broker_new();
	seen *s = seen_new(true);
	nqi_arena *first = b->core.arena;
	finish_request(b, s, false, "000000000000001a");
	broker_reply_group(b, true);
	assert_ptr_not_equal(b->core.arena, first);
	/* the next group's scratch, written over everything it was given */
	for (int i = 0; i < 64; i++)
		memset(nqi_arena_alloc(b->core.arena, 4096), 'x', 4096);
	release(s);
	broker_reply_group(b, true); /* nothing new: waits for the last */
	assert_int_equal(calls(s), 1);
	assert_string_equal(s->id, "000000000000001a");
	assert_false(pthread_equal(s->thread, pthread_self()));
	broker_free(b);
	seen_free(s);
}

/* A get's reply may point into the index, which the next group changes:
 * its group replies on the core, and keeps its arena. So does a group
 * with nothing waiting for the core (hand_over false). */
static void test_reply_of_other_kinds_stays_on_the_core(void **st)
{
	(void)st;
	broker *b = broker_new();
	seen *s = seen_new(false);
	nqi_arena *first = b->core.arena;
	finish_request(b, s, false, "0000000000000001");
	finish_request(b, s, true, "0000000000000002");
	broker_reply_group(b, true);
	assert_ptr_equal(b->core.arena, first);
	assert_int_equal(calls(s), 2);
	assert_true(pthread_equal(s->thread, pthread_self()));
	finish_request(b, s, false, "0000000000000003");
	broker_reply_group(b, false);
	assert_ptr_equal(b->core.arena, first);
	assert_int_equal(calls(s), 3);
	assert_string_equal(s->id, "0000000000000003");
	assert_true(pthread_equal(s->thread, pthread_self()));
	broker_free(b);
	seen_free(s);
}

/* At the stop every reply handed over still goes out. */
static void test_reply_stop_sends_what_was_handed_over(void **st)
{
	(void)st;
	broker *b = broker_new();
	seen *s = seen_new(true);
	finish_request(b, s, false, "00000000000000ff");
	broker_reply_group(b, true);
	release(s);
	broker_reply_stop(b);
	assert_int_equal(calls(s), 1);
	assert_string_equal(s->id, "00000000000000ff");
	broker_free(b);
	seen_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_handed_over_keeps_its_arena),
	    cmocka_unit_test(test_reply_of_other_kinds_stays_on_the_core),
	    cmocka_unit_test(test_reply_stop_sends_what_was_handed_over),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
