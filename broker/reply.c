/*
 * A group's replies, packed and sent after its commit. When ops already
 * wait for the next group, the replies go to a thread of their own, with
 * the arena they live in, so that the core applies the next group while
 * they are packed and sent (the core's other arena takes the next group).
 * Only one group's replies are ever in flight: a group's replies go out
 * after the last group's are all sent.
 */
#include <pthread.h>

#include <nng/nng.h>

#include "broker.h"
#include "nqi/rep.h"

/* Replies may point into other ops of the group (a wait answered with a
 * result that arrived in a completion batch), so every reply is packed
 * before any op is freed. */
static void reply_all(broker_op *done)
{
	for (broker_op *op = done; op; op = op->next) {
		nng_msg *msg = NULL;
		if (op->kind != BROKER_OP_REQUEST)
			continue;
		if (op->reply && nqi_msg_pack(&op->reply->base, NULL, 0, &msg))
			msg = NULL;
		if (op->capture)
			*op->capture = msg;
		else if (op->reply_fn)
			op->reply_fn(op->reply_arg, msg);
		else if (op->conn && msg)
			nqi_rep_reply(op->conn, msg);
		else if (op->conn)
			nqi_rep_drop(op->conn);
		else
			nng_msg_free(msg);
	}
	while (done) {
		broker_op *next = done->next;
		broker_op_free(done);
		done = next;
	}
}

/* Whether op's reply may be packed while the next group runs: it points
 * only into the group arena and into its own op, which go with it. Other
 * replies can point into the index, the policies or other ops, which the
 * next group changes; a captured reply is read by whoever ran the group
 * as soon as it returns. (A reply_fn is called from NNG's threads too.) */
static bool movable(const broker_op *op)
{
	if (op->kind != BROKER_OP_REQUEST)
		return true;
	if (op->capture)
		return false;
	if (!op->reply)
		return true;
	switch (op->reply->body_case) {
	case NQ__V1__REPLY__BODY__NOT_SET:
	case NQ__V1__REPLY__BODY_FETCH:
	case NQ__V1__REPLY__BODY_ENQUEUE:
		return true;
	default:
		return false;
	}
}

static bool all_movable(const broker_op *done)
{
	for (; done; done = done->next)
		if (!movable(done))
			return false;
	return true;
}

static void *reply_main(void *arg)
{
	struct broker_out *o = arg;
	pthread_mutex_lock(&o->mu);
	for (;;) {
		while (!o->arena && !o->stop)
			pthread_cond_wait(&o->cv, &o->mu);
		if (!o->arena)
			break;
		broker_op *ops = o->ops;
		nqi_arena *a = o->arena;
		pthread_mutex_unlock(&o->mu);
		reply_all(ops);
		nqi_arena_reset(a);
		pthread_mutex_lock(&o->mu);
		o->ops = NULL;
		o->arena = NULL;
		pthread_cond_broadcast(&o->cv);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* Until the replies handed over last are all sent. */
static void reply_wait(struct broker_out *o)
{
	pthread_mutex_lock(&o->mu);
	while (o->arena)
		pthread_cond_wait(&o->cv, &o->mu);
	pthread_mutex_unlock(&o->mu);
}

void broker_reply_group(broker *b, bool hand_over)
{
	struct broker_out *o = &b->out;
	broker_op *done = b->core.done;
	b->core.done = NULL;
	if (o->running)
		reply_wait(o);
	if (!o->running || !hand_over || !all_movable(done)) {
		reply_all(done);
		nqi_arena_reset(b->core.arena);
		return;
	}
	nqi_arena *a = b->core.arena;
	b->core.arena =
	    a == &b->core.arenas[0] ? &b->core.arenas[1] : &b->core.arenas[0];
	pthread_mutex_lock(&o->mu);
	o->ops = done;
	o->arena = a;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

void broker_reply_init(broker *b)
{
	pthread_mutex_init(&b->out.mu, NULL);
	pthread_cond_init(&b->out.cv, NULL);
	for (int i = 0; i < 2; i++)
		nqi_arena_init(
		    &b->core.arenas[i], BROKER_ARENA_BLOCK, BROKER_ARENA_KEEP);
	b->core.arena = &b->core.arenas[0];
}

void broker_reply_fini(broker *b)
{
	for (int i = 0; i < 2; i++)
		nqi_arena_fini(&b->core.arenas[i]);
	pthread_cond_destroy(&b->out.cv);
	pthread_mutex_destroy(&b->out.mu);
}

/* Without the thread every group replies on the core; so it does if the
 * thread cannot start. */
void broker_reply_start(broker *b)
{
	b->out.stop = false;
	b->out.running =
	    pthread_create(&b->out.thread, NULL, reply_main, &b->out) == 0;
}

/* Sends what was handed over, then ends the thread. */
void broker_reply_stop(broker *b)
{
	struct broker_out *o = &b->out;
	if (!o->running)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->thread, NULL);
	o->running = false;
}
