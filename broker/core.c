/* The core thread: takes every op queued since the last group, applies them
 * in one write transaction, commits once, then replies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "broker.h"
#include "nqi/rep.h"
#include "nqi/log.h"
#include "nqi/util.h"

typedef struct dispatch_entry {
	Nq__V1__Request__BodyCase body;
	broker_handler_fn fn;
	bool work_socket; /* served on the work socket, not the api socket */
	unsigned roles;   /* who may (admin always may) */
} dispatch_entry;

#define PRODUCER NQI_ROLE_PRODUCER
#define WORKER NQI_ROLE_WORKER
#define ADMIN NQI_ROLE_ADMIN

/* One row per request kind: its handler, the socket that serves it and
 * the roles that may make it. Auth and sockets are decided here once. */
static const dispatch_entry dispatch[] = {
    {NQ__V1__REQUEST__BODY_ENQUEUE, broker_on_enqueue, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_GET, broker_on_get, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_WAIT, broker_on_wait, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_CANCEL, broker_on_cancel, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_STATS, broker_on_stats, false, ADMIN},
    {NQ__V1__REQUEST__BODY_PAUSE, broker_on_pause, false, ADMIN},
    {NQ__V1__REQUEST__BODY_RESUME, broker_on_resume, false, ADMIN},
    {NQ__V1__REQUEST__BODY_LIST, broker_on_list, false, ADMIN},
    {NQ__V1__REQUEST__BODY_POLICY_GET, broker_on_policy_get, false, ADMIN},
    {NQ__V1__REQUEST__BODY_POLICY_SET, broker_on_policy_set, false, ADMIN},
    {NQ__V1__REQUEST__BODY_POLICY_RESET, broker_on_policy_reset, false, ADMIN},
    {NQ__V1__REQUEST__BODY_CRON_LIST, broker_on_cron_list, false, ADMIN},
    {NQ__V1__REQUEST__BODY_CRON_TRIGGER, broker_on_cron_trigger, false, ADMIN},
    {NQ__V1__REQUEST__BODY_BATCH_CREATE, broker_on_batch_create, false,
        PRODUCER},
    {NQ__V1__REQUEST__BODY_BATCH_SEAL, broker_on_batch_seal, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_BATCH_GET, broker_on_batch_get, false, PRODUCER},
    {NQ__V1__REQUEST__BODY_BATCH_LIST, broker_on_batch_list, false, ADMIN},
    {NQ__V1__REQUEST__BODY_BATCH_CANCEL, broker_on_batch_cancel, false,
        PRODUCER},
    {NQ__V1__REQUEST__BODY_FETCH, broker_on_fetch, true, WORKER},
    {NQ__V1__REQUEST__BODY_EXTEND, broker_on_extend, true, WORKER},
};

static const dispatch_entry *dispatch_find(Nq__V1__Request__BodyCase body)
{
	for (size_t i = 0; i < sizeof dispatch / sizeof *dispatch; i++)
		if (dispatch[i].body == body)
			return &dispatch[i];
	return NULL;
}

unsigned broker_body_roles(Nq__V1__Request__BodyCase body)
{
	const dispatch_entry *d = dispatch_find(body);
	return d ? d->roles : ADMIN;
}

const char *broker_precheck(
    const Nq__V1__Request *req, bool work, int *err, char *buf, size_t len)
{
	*err = NQ_EINVAL;
	if (req->version != NQI_PROTOCOL_VERSION) {
		*err = NQ_EPRECOND;
		snprintf(buf, len,
		    "protocol version %u is not served; this "
		    "broker serves version %d",
		    req->version, NQI_PROTOCOL_VERSION);
		return buf;
	}
	if (req->body_case == NQ__V1__REQUEST__BODY__NOT_SET)
		return "request has no body";
	const dispatch_entry *d = dispatch_find(req->body_case);
	if (!d)
		return "this service does not serve that request";
	if (d->work_socket != work)
		return work ? "the work socket serves fetch and extend only"
		            : "fetch and extend belong on the work socket";
	return NULL;
}

void broker_op_free(broker_op *op)
{
	if (!op)
		return;
	if (op->arena)
		nqi_arena_free(op->arena);
	else if (op->req)
		nq__v1__request__free_unpacked(op->req, NULL);
	else if (op->batch)
		nq__v1__completion_batch__free_unpacked(op->batch, NULL);
	free(op->ids);
	nqi_policy_file_free(op->pfile);
	free(op);
}

void broker_post(broker *b, broker_op *op)
{
	/* The core has ended (a request that raced with the stop): the
	 * connection gets no reply until the sockets close, as before. */
	if (nqi_gcommit_post(&b->in.gc, op) != 0) {
		if (op->reply_fn)
			op->reply_fn(op->reply_arg, NULL);
		broker_op_free(op);
	}
}

Nq__V1__Reply *broker_reply_new(broker *b)
{
	static const Nq__V1__Reply init = NQ__V1__REPLY__INIT;
	Nq__V1__Reply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	if (r)
		*r = init;
	return r;
}

void broker_finish(broker *b, broker_op *op)
{
	op->settled = true;
	op->next = b->core.done;
	b->core.done = op;
}

Nq__V1__Status *broker_status_new(broker *b, int err, const char *msg)
{
	static const Nq__V1__Status init = NQ__V1__STATUS__INIT;
	Nq__V1__Status *s = nqi_arena_alloc(b->core.arena, sizeof *s);
	if (!s)
		return NULL;
	*s = init;
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	/* A message may quote a piece of the request cut at a byte count
	 * ('%.40s'), which can end inside a character: strict decoders
	 * refuse a reply whose message is not UTF-8. */
	size_t n = strlen(msg);
	if (!nqi_utf8_valid(msg, n)) {
		char *t = nqi_arena_alloc(b->core.arena, 3 * n + 1);
		if (t)
			t[nqi_text_repair(
			    (const uint8_t *)msg, n, (uint8_t *)t)] = '\0';
		msg = t ? t : "";
	}
	s->message = nqi_arena_strdup(b->core.arena, msg);
	if (!s->message)
		s->message = (char *)protobuf_c_empty_string;
	return s;
}

void broker_set_status(broker *b, broker_op *op, int err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (op->kind != BROKER_OP_REQUEST)
		return;
	if (!op->reply && !(op->reply = broker_reply_new(b)))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	op->reply->status = broker_status_new(b, err, buf);
	if (err != NQ_OK && err != NQ_EPRECOND)
		op->reply->body_case = NQ__V1__REPLY__BODY__NOT_SET;
}

static int apply_cb(void *ctx, void *arg)
{
	broker *b = ctx;
	broker_op *op = arg;
	switch (op->kind) {
	case BROKER_OP_COMPLETIONS: {
		int rv = broker_on_completions(b, op);
		broker_finish(b, op);
		return rv;
	}
	case BROKER_OP_PIPE_GONE: {
		int rv = broker_on_pipe_gone(b, op);
		broker_finish(b, op);
		return rv;
	}
	case BROKER_OP_DLQ_ACKED: {
		int rv = broker_on_dlq_acked(b, op);
		broker_finish(b, op);
		return rv;
	}
	case BROKER_OP_POLICY: {
		int rv = broker_on_policy_swap(b, op);
		broker_finish(b, op);
		return rv;
	}
	case BROKER_OP_REQUEST:
		break;
	}
	/* The net layer already checked version and socket. */
	const dispatch_entry *d = dispatch_find(op->req->body_case);
	op->reply = broker_reply_new(b);
	if (!op->reply) {
		broker_finish(b, op);
		return NQ_ENOMEM;
	}
	int rv = d->fn(b, op);
	/* A handler that failed half-way still owes its requester a reply;
	 * fail_group fills in the error. */
	if (rv != 0 && !op->settled)
		broker_finish(b, op);
	return rv;
}

/* Every commit carries the last id handed out. */
static int seal_cb(void *ctx, bool probe)
{
	broker *b = ctx;
	(void)probe;
	uint8_t key[7] = "last_id", val[8];
	nqi_be64_put(val, b->core.last_id);
	MDB_val k = {sizeof key, key}, v = {8, val};
	int rv = broker_batches_flush(b);
	if (rv == 0)
		rv = broker_expiry_flush(b);
	return rv != 0
	           ? rv
	           : nqi_store_err(mdb_put(b->core.txn, b->db_meta, &k, &v, 0));
}

static int group_cb(void *ctx)
{
	broker *b = ctx;
	int rv = broker_cron_run(b);
	if (rv == 0)
		rv = broker_sweep(b);
	if (rv == 0)
		rv = broker_batches_fire(b);
	if (rv == 0)
		rv = broker_serve_parked(b);
	return rv;
}

/* Puts back the totals the group moved and forgets the latencies it
 * observed: none of it was committed. */
static void totals_undo(broker *b)
{
	for (uint32_t i = b->core.group_queues; i;) {
		broker_queue *q = &b->core.index.queues[i - 1];
#define UNDO_(name, kind, ...) BROKER_QF_TOTAL_##kind(q->name = q->saved.name;)
		NQI_QUEUE_FIELDS(UNDO_)
#undef UNDO_
		nqi_prom_hist_clear(q->latency_group);
		i = q->group_next;
	}
}

/* The group committed: the latencies it observed count from now on. */
static void latency_commit(broker *b)
{
	for (uint32_t i = b->core.group_queues; i;) {
		broker_queue *q = &b->core.index.queues[i - 1];
		nqi_prom_hist_move(q->latency, q->latency_group);
		i = q->group_next;
	}
}

/* A failed group: every reply of it says so, its totals are taken back and
 * the index is rebuilt from what the store really holds. */
static void fail_group(broker *b, broker_op *rest, int err)
{
	char msg[160];
	snprintf(msg, sizeof msg,
	    "store commit failed (%s); nothing of this "
	    "request was written, retry later",
	    nq_strerror(err));
	while (rest) {
		broker_op *next = rest->next;
		broker_finish(b, rest);
		rest = next;
	}
	for (broker_op *op = b->core.done; op; op = op->next)
		broker_set_status(b, op, NQ_EUNAVAIL, "%s", msg);
	totals_undo(b);
	b->core.expiry_run.n = 0; /* nor its expiry run */
	broker_cron_forget(b);    /* its ticks were not written either */
	b->dlq.ngroup_dead = 0;   /* recovery lists them from the store */
	broker_recover(b, false);
}

/* Sends the group's replies (hand_over: on the reply thread, if it may)
 * and forgets what lived only for the group. */
static void group_end(broker *b, bool hand_over)
{
	broker_reply_group(b, hand_over);
	broker_batches_forget(b); /* in the arena too */
	b->core.raw_id = 0;       /* its copy was in the arena */
	b->core.jobs_cur = NULL;  /* LMDB closed it with the transaction */
	b->core.append_cur = NULL;
	b->core.group++;
	b->core.group_queues = 0;
}

static void end_cb(void *ctx, void *rest, int err)
{
	broker *b = ctx;
	broker_events_publish(b, err == 0);
	if (err != 0) {
		fail_group(b, rest, err);
	} else {
		latency_commit(b);
		broker_dlq_publish(b);
	}
	/* Ops that wait for the core are served sooner if it does not pack
	 * and send these replies first; with nothing waiting it replies
	 * at once, which is sooner than a wake of the reply thread. */
	group_end(b, err == 0 && nqi_gcommit_pending(&b->in.gc));
}

void broker_run_group(broker *b, broker_op *ops)
{
	nqi_gcommit_run(&b->in.gc, ops);
}

/* How long the core may sleep: until the next due timer or sweep tick, or
 * the next rate token a parked fetch waits for. */
static uint64_t wait_ms_cb(void *ctx)
{
	broker *b = ctx;
	uint64_t now = nqi_mono_ms();
	uint64_t wait =
	    b->core.next_sweep_ms > now ? b->core.next_sweep_ms - now : 0;
	uint64_t gate = broker_gate_wait_ms(b);
	if (gate < wait)
		wait = gate;
	uint64_t cron = broker_cron_wait_ms(b);
	if (cron < wait)
		wait = cron;
	broker_timer t;
	if (broker_timer_peek(&b->core.index, &t)) {
		uint64_t now_us = nqi_now_us();
		uint64_t due = t.run_at_us > now_us
		                   ? (t.run_at_us - now_us + 999) / 1000
		                   : 0;
		if (due < wait)
			wait = due;
	}
	return wait;
}

static bool due_cb(void *ctx, void **ops, bool stopping)
{
	broker *b = ctx;
	(void)stopping;
	return *ops || nqi_mono_ms() >= b->core.next_sweep_ms ||
	       wait_ms_cb(b) == 0;
}

/* At shutdown parked requests get an answer instead of a timeout. */
static void stopped_cb(void *ctx)
{
	broker *b = ctx;
	broker_op *lists[2] = {b->core.parked_fetch, b->core.parked_wait};
	b->core.parked_fetch = b->core.parked_wait = NULL;
	for (int i = 0; i < 2; i++) {
		for (broker_op *op = lists[i], *next; op; op = next) {
			next = op->next;
			broker_set_status(b, op, NQ_EUNAVAIL, BROKER_STOPPING);
			broker_finish(b, op);
		}
	}
	group_end(b, false);
	broker_reply_stop(b);
}

static const nqi_gcommit_hooks core_hooks = {
    apply_cb, group_cb, seal_cb, end_cb, wait_ms_cb, due_cb, stopped_cb};

void broker_core_init(broker *b)
{
	b->core.group = 1; /* saved_group 0: no group kept a queue's totals */
	b->in.gc = (nqi_gcommit){.hooks = &core_hooks,
	    .ctx = b,
	    .next_off = offsetof(broker_op, next),
	    .store = &b->store,
	    .mu = &b->in.mu,
	    .cv = &b->in.cv,
	    .txn = &b->core.txn,
	    .dirty = &b->core.dirty,
	    .ready = &b->in.ready};
}

int broker_start(broker *b)
{
	b->started_ms = nqi_mono_ms();
	b->core.next_sweep_ms = b->started_ms;
	broker_reply_start(b);
	int rv = nqi_gcommit_start(&b->in.gc);
	if (rv != 0)
		broker_reply_stop(b);
	return rv;
}

/* Stops the core after the group in flight: its commit completes and its
 * replies go out. Blocks until the core thread has ended. */
void broker_stop(broker *b)
{
	pthread_mutex_lock(&b->in.mu);
	b->in.stopping = true; /* handlers answer instead of parking */
	pthread_mutex_unlock(&b->in.mu);
	nqi_gcommit_stop(&b->in.gc);
}
