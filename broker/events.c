/*
 * Job events on the PUB socket. Handlers note events in the group arena as
 * state changes; after the group commits they are published in sequence
 * order, consecutive events of one topic coalesced into one message. PUB
 * never blocks: a subscriber that cannot keep up loses messages, which it
 * sees as gaps in seq / topic_seq, and the broker counts what NNG refused.
 * Events of a failed group are dropped with it: nothing happened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

static const char *const kind_names[BROKER_EV_COUNT] = {
    "enqueued",
    "leased",
    "extended",
    "succeeded",
    "failed",
    "retrying",
    "dead",
    "canceled",
    "expired",
    "dlq_stored",
    "replayed",
    "breaker_opened",
    "breaker_half_open",
    "breaker_closed",
    "limit_reached",
    "limit_cleared",
    "progress",
    "dependency_failed",
    "batch_completed",
};

bool broker_events_wanted(broker *b)
{
	return (b->ev.on && atomic_load(&b->ev.subscribers) > 0) ||
	       atomic_load_explicit(&b->ev.sse_wanted, memory_order_relaxed);
}

/* A new event of the group, in the arena and the list; NULL (counted as
 * dropped) without memory. */
static Nq__V1__JobEvent *event_new(broker *b, broker_event_kind kind)
{
	static const Nq__V1__JobEvent init = NQ__V1__JOB_EVENT__INIT;
	if (NQI_GROW(b->ev.list, b->ev.cap, b->ev.n + 1, 256) != 0) {
		b->ev.dropped++;
		return NULL;
	}
	Nq__V1__JobEvent *e = nqi_arena_alloc(b->core.arena, sizeof *e);
	if (!e) {
		b->ev.dropped++;
		return NULL;
	}
	*e = init;
	e->kind = (char *)kind_names[kind];
	e->at_us = nqi_now_us();
	b->ev.list[b->ev.n++] = e;
	return e;
}

/* seq and topic_seq are given at publish time, in commit order: until
 * then topic_seq holds the queue's index and the kind. */
static uint64_t topic_key(broker *b, const char *queue, broker_event_kind kind)
{
	int qi = broker_queue_find(&b->core.index, queue);
	return qi >= 0 ? (uint64_t)qi << 8 | kind : 0;
}

void broker_queue_event(broker *b, broker_event_kind kind, const char *queue,
    double failure_ratio, const char *limit)
{
	Nq__V1__JobEvent *e =
	    broker_events_wanted(b) ? event_new(b, kind) : NULL;
	if (!e)
		return;
	e->queue = nqi_arena_strdup(b->core.arena, queue);
	if (!e->queue) {
		b->ev.n--;
		b->ev.dropped++;
		return;
	}
	e->failure_ratio = failure_ratio;
	if (limit)
		e->limit = (char *)limit; /* a static name */
	e->topic_seq = topic_key(b, queue, kind);
}

void broker_batch_event(broker *b, const char *batch, const char *queue,
    const char *last, const char *summary)
{
	Nq__V1__JobEvent *e = broker_events_wanted(b)
	                          ? event_new(b, BROKER_EV_BATCH_COMPLETED)
	                          : NULL;
	if (!e)
		return;
	e->batch_id = (char *)batch;
	e->queue = (char *)queue;
	e->id = (char *)last;
	e->error = (char *)summary;
	e->topic_seq = topic_key(b, queue, BROKER_EV_BATCH_COMPLETED);
}

void broker_event(broker *b, broker_event_kind kind, const Nq__V1__Job *job,
    const char *error)
{
	/* Nobody listens: building events would be work for nothing. */
	if (!broker_events_wanted(b))
		return;
	Nq__V1__JobEvent *e = event_new(b, kind);
	if (!e)
		return;
	e->id = job->id;
	e->queue = job->spec->queue;
	e->type = job->spec->type;
	e->attempt = job->attempt;
	e->worker_id = job->worker_id;
	e->traceparent = job->spec->traceparent;
	if (error)
		e->error = (char *)error;
	if (kind == BROKER_EV_PROGRESS) {
		e->progress_pct = job->progress_pct;
		e->progress_note = job->progress_note;
	}
	e->topic_seq = topic_key(b, job->spec->queue, kind);
}

static int topic_of(const Nq__V1__JobEvent *e, char *buf, size_t len)
{
	return snprintf(buf, len, "job.%s.%s", e->kind, e->queue);
}

/* Publishes events[from, to) that share one topic as one message. */
static void publish_run(broker *b, size_t from, size_t to)
{
	Nq__V1__EventBatch batch = NQ__V1__EVENT_BATCH__INIT;
	char topic[200];
	nng_msg *msg;
	int n = topic_of(b->ev.list[from], topic, sizeof topic);
	batch.events = &b->ev.list[from];
	batch.n_events = to - from;
	if (nqi_msg_pack(&batch.base, topic, (size_t)n + 1, &msg) != 0) {
		b->ev.dropped += to - from;
		return;
	}
	if (nng_sendmsg(b->ev.sock, msg, NNG_FLAG_NONBLOCK) != 0) {
		nng_msg_free(msg);
		b->ev.dropped += to - from;
		return;
	}
	b->ev.published += to - from;
}

/* Gives each event its numbers, in the order the group made them. */
static void number_events(broker *b)
{
	for (size_t i = 0; i < b->ev.n; i++) {
		Nq__V1__JobEvent *e = b->ev.list[i];
		uint64_t qi = e->topic_seq >> 8, kind = e->topic_seq & 0xff;
		e->seq = ++b->ev.seq;
		e->topic_seq = qi < b->core.index.nqueues
		                   ? ++b->core.index.queues[qi].topic_seq[kind]
		                   : 0;
	}
}

void broker_events_publish(broker *b, bool committed)
{
	if (!committed || b->ev.n == 0) {
		b->ev.n = 0;
		return;
	}
	number_events(b);
	broker_sse_publish(b, b->ev.list, b->ev.n);
	size_t from = 0;
	for (size_t i = 1; b->ev.on && i <= b->ev.n; i++) {
		if (i < b->ev.n &&
		    b->ev.list[i]->kind == b->ev.list[from]->kind &&
		    strcmp(b->ev.list[i]->queue, b->ev.list[from]->queue) == 0)
			continue;
		publish_run(b, from, i);
		from = i;
	}
	b->ev.n = 0;
}

/* Counts subscriber connections, so events are built only for someone. */
static void sub_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	broker *b = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&b->ev.subscribers, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&b->ev.subscribers, 1);
}

int broker_events_open(broker *b, char *err, size_t errlen)
{
	if (!b->cfg.events_url || !b->cfg.events_url[0])
		return NQ_OK;
	nqi_tls_opts tls = {b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca};
	int rv = nng_pub0_open(&b->ev.sock);
	if (rv != 0) {
		snprintf(err, errlen, "cannot open the events socket: %s",
		    nng_strerror(rv));
		return NQ_EUNAVAIL;
	}
	nng_pipe_notify(b->ev.sock, NNG_PIPE_EV_ADD_POST, sub_pipe_cb, b);
	nng_pipe_notify(b->ev.sock, NNG_PIPE_EV_REM_POST, sub_pipe_cb, b);
	/* A subscriber sends nothing worth more than a small frame. */
	if ((rv = nqi_listen(b->ev.sock, b->cfg.events_url, &tls, 4096,
	         "events", err, errlen)) != 0) {
		nng_close(b->ev.sock);
		return rv;
	}
	b->ev.on = true;
	return NQ_OK;
}

void broker_events_close(broker *b)
{
	if (b->ev.on)
		nng_close(b->ev.sock);
	b->ev.on = false;
	free(b->ev.list);
	b->ev.list = NULL;
}
