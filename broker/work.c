/* The worker side: fetch (leases), extend, completions, lapsed leases,
 * dropped connections, and the timers of the sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/backoff.h"
#include "nqi/leases.h"
#include "nqi/limits.h"
#include "nqi/log.h"
#include "nqi/rep.h"
#include "nqi/util.h"

#define MAX_WAIT_MS 60000
#define MIN_LEASE_MS 50
#define MAX_LEASE_MS BROKER_LEASE_MAX_MS
#define DEFAULT_LEASE_MS 30000
#define MAX_ERROR_TEXT NQI_ERROR_TEXT_MAX
/* Finished jobs past their result_ttl deleted at each --lease-check tick,
 * and at every group besides: deletes keep up with finishes at any rate
 * (a group finishes fewer than that), at a bounded cost to one group. */
#define SWEEP_TTL_LIMIT 10000
#define SWEEP_TTL_GROUP 2000

static uint64_t clamp_lease(uint64_t ms)
{
	if (ms == 0)
		return DEFAULT_LEASE_MS;
	return ms < MIN_LEASE_MS   ? MIN_LEASE_MS
	       : ms > MAX_LEASE_MS ? MAX_LEASE_MS
	                           : ms;
}

/* Microseconds from then to now; 0 when the clock went back. */
static uint64_t since(uint64_t now_us, uint64_t then_us)
{
	return now_us > then_us ? now_us - then_us : 0;
}

static bool pipe_dead(const broker *b, uint32_t pipe_id)
{
	for (size_t i = 0; i < BROKER_DEAD_PIPES; i++)
		if (b->core.dead_pipes[i] == pipe_id && pipe_id)
			return true;
	return false;
}

/* ---- dispatch limits: max_in_flight, rate, groups, circuit breaker ---- */

#define BREAKER_KEY(name) (&nqi_policy_keys()[NQI_PK_##name])

/* Takes q's dispatch keys from its policy, resolved again since. */
static int gate_refresh(broker *b, broker_queue *q)
{
	const nqi_policy *p = broker_policy_of(b, q);
	broker_gate *g = &q->gate;
	bool on = (p->set & NQI_PK_BIT(rate)) && p->rate > 0;
	if (on && (g->rate != p->rate || g->refill_us == 0)) {
		g->tokens = (double)p->burst; /* a new rate starts full */
		g->refill_us = nqi_now_us();
	}
	g->rate = on ? p->rate : 0;
	g->max_in_flight =
	    p->set & NQI_PK_BIT(max_in_flight) ? p->max_in_flight : 0;
	g->group_max = p->set & NQI_PK_BIT(max_in_flight_per_group)
	                   ? p->max_in_flight_per_group
	                   : 0;
	g->breaker_on = (p->set & NQI_PK_BIT(breaker_failure_ratio)) != 0;
	if (!g->breaker_on)
		g->breaker = BROKER_BREAKER_CLOSED;
	bool was = g->limited;
	g->limited =
	    g->rate > 0 || g->max_in_flight || g->group_max || g->breaker_on;
	b->core.limited_queues += (size_t)g->limited - (size_t)was;
	g->seen = q->policy.resolved;
	return broker_groups_set(&b->core.index, q,
	    (p->fairness && p->set & NQI_PK_BIT(fairness)) || g->group_max);
}

/* Whether q's dispatch state may be behind its policy: two compares, the
 * whole cost of the limits for a queue that has none. */
static bool gate_stale(const broker *b, const broker_queue *q)
{
	return q->policy.gen != b->core.policy.gen ||
	       q->gate.seen != q->policy.resolved;
}

/* The core wakes by at_us to look again (a token, a cool-down's end). */
static void gate_due(broker *b, uint64_t at_us)
{
	if (!b->core.gate_due_us || at_us < b->core.gate_due_us)
		b->core.gate_due_us = at_us;
}

uint64_t broker_gate_wait_ms(const broker *b)
{
	uint64_t due = b->core.gate_due_us, now = nqi_now_us();
	if (!due)
		return UINT64_MAX;
	return due > now ? (due - now + 999) / 1000 : 0;
}

/* Tokens of q's rate at now_us (the bucket holds burst at most). */
static double tokens_at(const broker_queue *q, uint64_t now_us)
{
	const broker_gate *g = &q->gate;
	const nqi_policy *p = &q->policy.eff;
	double t = g->tokens;
	if (now_us > g->refill_us)
		t += (double)(now_us - g->refill_us) / 1e6 * g->rate;
	return t > (double)p->burst ? (double)p->burst : t;
}

static void breaker_log_event(broker *b, broker_queue *q, const char *msgid,
    broker_event_kind kind, double ratio)
{
	char window[32], r[32];
	nqi_policy_format(
	    BREAKER_KEY(breaker_window), &q->policy.eff, window, sizeof window);
	snprintf(r, sizeof r, "%.3f", ratio);
	bool open = kind == BROKER_EV_BREAKER_OPENED;
	if (open)
		nqi_warn(msgid, NQI_S("queue", q->name), NQI_S("ratio", r),
		    NQI_S("window", window));
	else
		nqi_info(msgid, NQI_S("queue", q->name));
	broker_queue_event(b, kind, q->name, open ? ratio : 0, NULL);
}

static void breaker_move(
    broker *b, broker_queue *q, broker_breaker_state to, double ratio)
{
	static const struct {
		const char *msgid;
		broker_event_kind kind;
	} says[] = {
	    [BROKER_BREAKER_CLOSED] = {"NQ-BREAKER-CLOSED",
	        BROKER_EV_BREAKER_CLOSED},
	    [BROKER_BREAKER_HALF_OPEN] = {"NQ-BREAKER-HALF-OPEN",
	        BROKER_EV_BREAKER_HALF_OPEN},
	    [BROKER_BREAKER_OPEN] = {"NQ-BREAKER-OPEN",
	        BROKER_EV_BREAKER_OPENED},
	};
	broker_gate *g = &q->gate;
	g->breaker = to;
	g->probe_id = 0;
	memset(g->win, 0, sizeof g->win); /* each state judges afresh */
	if (to == BROKER_BREAKER_OPEN)
		g->open_until_us = nqi_us_plus_ms(
		    nqi_now_us(), q->policy.eff.breaker_cool_down);
	breaker_log_event(b, q, says[to].msgid, says[to].kind, ratio);
}

/* Whether the breaker lets q lease a job now: closed, or half-open with
 * no probe out yet. An open one turns half-open when its cool-down ends. */
static bool breaker_allows(broker *b, broker_queue *q, uint64_t now_us)
{
	broker_gate *g = &q->gate;
	if (g->breaker == BROKER_BREAKER_OPEN) {
		if (now_us < g->open_until_us) {
			gate_due(b, g->open_until_us);
			return false;
		}
		breaker_move(b, q, BROKER_BREAKER_HALF_OPEN, 0);
	}
	/* A probe whose lease a failed commit took back never ends. */
	if (g->probe_id && !broker_lease_find(&b->core.index, g->probe_id))
		g->probe_id = 0;
	return g->breaker == BROKER_BREAKER_CLOSED || g->probe_id == 0;
}

/* Whether q may lease one more job now (its limits allow it). */
static bool gate_open(broker *b, broker_queue *q)
{
	broker_gate *g = &q->gate;
	if (g->max_in_flight && q->leased >= g->max_in_flight)
		return false; /* a completion wakes the parked fetches */
	uint64_t now = nqi_now_us();
	if (g->breaker_on && !breaker_allows(b, q, now))
		return false;
	if (g->rate > 0) {
		double t = tokens_at(q, now);
		g->checked_us = now; /* gate_took spends the token as of now */
		if (t < 1) {
			gate_due(
			    b, now + (uint64_t)((1 - t) / g->rate * 1e6) + 1);
			return false;
		}
	}
	return true;
}

/* q leased job id: a token is spent, a half-open breaker's probe is out. */
static void gate_took(broker_queue *q, uint64_t id)
{
	broker_gate *g = &q->gate;
	if (g->rate > 0) {
		g->tokens = tokens_at(q, g->checked_us) - 1;
		g->refill_us = g->checked_us;
	}
	if (g->breaker == BROKER_BREAKER_HALF_OPEN)
		g->probe_id = id;
}

/* Brings q's dispatch state up to its policy when that moved. Out of
 * memory leaves it as it was, to be tried again at the next fetch. */
static void gate_sync(broker *b, broker_queue *q)
{
	if (gate_stale(b, q))
		(void)gate_refresh(b, q);
}

/* A closed breaker's view of the window: attempts and failures in it. */
static void breaker_window(const broker_queue *q, uint64_t now_us,
    uint64_t *attempts, uint64_t *failed)
{
	const broker_gate *g = &q->gate;
	uint64_t width =
	    q->policy.eff.breaker_window * 1000 / BROKER_BREAKER_BUCKETS;
	uint64_t epoch = now_us / (width ? width : 1);
	*attempts = *failed = 0;
	for (size_t i = 0; i < BROKER_BREAKER_BUCKETS; i++) {
		if (g->win[i].epoch + BROKER_BREAKER_BUCKETS <= epoch)
			continue; /* fell out of the window */
		*attempts += g->win[i].attempts;
		*failed += g->win[i].failed;
	}
}

/* An attempt of job id in q ended: it failed, or it did not (a release
 * is neither: it did not run). Moves the breaker when that decides. */
static void breaker_note(broker *b, broker_queue *q, uint64_t id, bool failed)
{
	broker_gate *g = &q->gate;
	const nqi_policy *p = &q->policy.eff;
	if (g->breaker == BROKER_BREAKER_HALF_OPEN && id == g->probe_id) {
		breaker_move(b, q,
		    failed ? BROKER_BREAKER_OPEN : BROKER_BREAKER_CLOSED,
		    failed ? 1.0 : 0);
		return;
	}
	if (g->breaker != BROKER_BREAKER_CLOSED)
		return; /* attempts leased before it opened */
	uint64_t now = nqi_now_us(), n, bad;
	uint64_t width = p->breaker_window * 1000 / BROKER_BREAKER_BUCKETS;
	uint64_t epoch = now / (width ? width : 1);
	size_t at = (size_t)(epoch % BROKER_BREAKER_BUCKETS);
	if (g->win[at].epoch != epoch)
		g->win[at].epoch = epoch, g->win[at].attempts = 0,
		g->win[at].failed = 0;
	g->win[at].attempts++;
	g->win[at].failed += failed;
	breaker_window(q, now, &n, &bad);
	double ratio = n ? (double)bad / (double)n : 0;
	if (n >= p->breaker_min_jobs && ratio >= p->breaker_failure_ratio &&
	    bad > 0)
		breaker_move(b, q, BROKER_BREAKER_OPEN, ratio);
}

/* The end of an attempt of job id in the queue at qi, for its breaker. */
static void gate_ended(broker *b, int qi, uint64_t id, bool failed)
{
	if (!b->core.limited_queues)
		return; /* no breaker anywhere: one compare per completion */
	broker_queue *q = qi >= 0 ? &b->core.index.queues[qi] : NULL;
	if (q && q->gate.breaker_on)
		breaker_note(b, q, id, failed);
}

/* A probe given back unrun: the next fetch may take one again. */
static void gate_released(broker *b, int qi, uint64_t id)
{
	if (!b->core.limited_queues)
		return;
	broker_queue *q = qi >= 0 ? &b->core.index.queues[qi] : NULL;
	if (q && q->gate.probe_id == id)
		q->gate.probe_id = 0;
}

/* The limit that shuts the whole of q now: max_in_flight or the rate. */
static broker_limit queue_limit(const broker_queue *q, uint64_t now_us)
{
	const broker_gate *g = &q->gate;
	if (g->max_in_flight && q->leased >= g->max_in_flight)
		return BROKER_LIMIT_MAX_IN_FLIGHT;
	if (g->rate > 0 && tokens_at(q, now_us) < 1)
		return BROKER_LIMIT_RATE;
	return BROKER_LIMIT_NONE;
}

/* Ready jobs of groups at max_in_flight_per_group. */
static uint64_t group_held(const broker_queue *q)
{
	const broker_gate *g = &q->gate;
	uint64_t n = 0;
	for (size_t i = 0; g->grouped && g->group_max && i < g->ngroups; i++)
		if (g->groups[i].leased >= g->group_max)
			n += g->groups[i].nheap;
	return n;
}

/* Ready jobs of q its limits hold back now, for the throttled gauge. */
static uint64_t held_back(const broker_queue *q, uint64_t now_us)
{
	const broker_gate *g = &q->gate;
	bool shut = queue_limit(q, now_us) != BROKER_LIMIT_NONE ||
	            g->breaker == BROKER_BREAKER_OPEN ||
	            (g->breaker == BROKER_BREAKER_HALF_OPEN && g->probe_id);
	return shut ? q->ready : group_held(q);
}

/* Shortest spell between two limit edges of a queue: a limit that binds
 * and lets go with each lease makes one pair a second, not one a fetch. */
#define LIMIT_SPELL_US 1000000

static const char *const limit_names[] = {
    [BROKER_LIMIT_MAX_IN_FLIGHT] = "max_in_flight",
    [BROKER_LIMIT_RATE] = "rate",
    [BROKER_LIMIT_GROUP] = "group",
};

static void limit_edge(broker *b, broker_queue *q, broker_limit held,
    broker_limit named, uint64_t now_us)
{
	bool reached = held != BROKER_LIMIT_NONE;
	q->gate.held = held;
	q->gate.held_edge_us = now_us;
	nqi_info(reached ? "NQ-LIMIT-REACHED" : "NQ-LIMIT-CLEARED",
	    NQI_S("queue", q->name), NQI_S("limit", limit_names[named]));
	broker_queue_event(b,
	    reached ? BROKER_EV_LIMIT_REACHED : BROKER_EV_LIMIT_CLEARED,
	    q->name, 0, limit_names[named]);
}

/* limit_reached once a limit holds q's ready jobs back, limit_cleared once
 * none did for a spell; at most one edge a spell. Runs with the gauges
 * (each sweep), so that fetches pay nothing for it. */
static void limit_spell(broker *b, broker_queue *q, uint64_t now_us)
{
	broker_gate *g = &q->gate;
	broker_limit now = BROKER_LIMIT_NONE;
	if (q->ready && g->limited) {
		now = queue_limit(q, now_us);
		if (now == BROKER_LIMIT_NONE && group_held(q))
			now = BROKER_LIMIT_GROUP;
	}
	if (now != BROKER_LIMIT_NONE)
		g->held_seen_us = now_us;
	if (now_us - g->held_edge_us < LIMIT_SPELL_US)
		return;
	if (g->held == BROKER_LIMIT_NONE && now != BROKER_LIMIT_NONE)
		limit_edge(b, q, now, now, now_us);
	else if (g->held != BROKER_LIMIT_NONE &&
	         now_us - g->held_seen_us >= LIMIT_SPELL_US)
		limit_edge(b, q, BROKER_LIMIT_NONE, g->held, now_us);
}

void broker_gate_gauges(broker *b, broker_queue *q)
{
	gate_sync(b, q);
	const broker_gate *g = &q->gate;
	bool watch = g->limited || g->held != BROKER_LIMIT_NONE;
	uint64_t now = watch ? nqi_now_us() : 0;
	q->in_flight_limit = g->max_in_flight;
	q->tokens = g->rate > 0 ? (uint64_t)tokens_at(q, now) : 0;
	q->breaker_state = g->breaker_on ? (uint64_t)g->breaker : 0;
	q->throttled = g->limited ? held_back(q, now) : 0;
	if (watch)
		limit_spell(b, q, now);
}

/* The queue among the named ones whose head job should run next. */
static broker_queue *best_queue(broker *b, const Nq__V1__FetchRequest *f)
{
	broker_queue *best = NULL;
	broker_ready head = {0, 0, 0}, cand;
	for (size_t i = 0; i < f->n_queues; i++) {
		int qi = broker_queue_find(&b->core.index, f->queues[i]);
		if (qi < 0)
			continue;
		broker_queue *q = &b->core.index.queues[qi];
		if (q->paused)
			continue;
		gate_sync(b, q);
		if (!broker_ready_peek(q, &cand) ||
		    (q->gate.limited && !gate_open(b, q)))
			continue;
		if (!best || cand.priority > head.priority ||
		    (cand.priority == head.priority && cand.id < head.id)) {
			best = q;
			head = cand;
		}
	}
	return best;
}

static void log_job(
    const char *msgid, const Nq__V1__Job *job, const char *reason);

/* What a job that waits (ready or scheduled) has come to at now: 0 while
 * it may still run, else the state it ends in: canceled (a cancel a
 * restart interrupted), dead past its finish_within, expired past its
 * deadline. Sets the dead_reason of the last two. */
static int waiting_end(Nq__V1__Job *j, uint64_t now)
{
	uint64_t by = broker_job_finish_by(j);
	if (j->cancel_requested)
		return NQ_STATE_CANCELED;
	if (by && now >= by) {
		j->dead_reason = (char *)"deadline";
		return NQ_STATE_DEAD;
	}
	if (j->spec->deadline_us && now > j->spec->deadline_us) {
		j->dead_reason = (char *)"expired";
		return NQ_STATE_EXPIRED;
	}
	return 0;
}

/* A job that ended dead: counted, logged, told. */
static int job_dead(broker *b, Nq__V1__Job *job, broker_queue *q, uint64_t now)
{
	if (q)
		q->dead_total++;
	log_job("NQ-JOB-DEAD", job, job->dead_reason);
	broker_event(b, BROKER_EV_DEAD, job, job->dead_reason);
	return broker_job_finish(b, job, NQ_STATE_DEAD, now);
}

int broker_end_waiting(
    broker *b, Nq__V1__Job *job, int state, uint64_t now_us, bool in_heap)
{
	int rv = NQ_OK;
	/* Its heap entry goes stale and is skipped when popped; a plain one
	 * is popped without reading the record, so it is noted. */
	if (in_heap && job->state == NQ__V1__JOB_STATE__JOB_STATE_READY &&
	    broker_job_plain(job))
		rv = broker_stale_add(&b->core.index, broker_job_id(job));
	if (rv != 0)
		return rv;
	if (state == NQ_STATE_DEAD)
		return job_dead(b, job,
		    broker_totals_at(
		        b, broker_queue_get(&b->core.index, job->spec->queue)),
		    now_us);
	rv = broker_job_finish(b, job, state, now_us);
	broker_event(b,
	    state == NQ_STATE_CANCELED ? BROKER_EV_CANCELED : BROKER_EV_EXPIRED,
	    job, NULL);
	return rv;
}

/* Pops ready entries until one names a job that is really ready. Jobs
 * past their deadline or finish_within end on the way. *job NULL: none
 * left. */
static int pop_ready(broker *b, broker_queue *q, Nq__V1__Job **job)
{
	broker_ready e;
	uint64_t now = nqi_now_us();
	*job = NULL;
	while (broker_ready_peek(q, &e)) {
		broker_ready_pop(q);
		if ((e.flags & BROKER_READY_PLAIN) &&
		    broker_stale_take(&b->core.index, e.id))
			continue; /* canceled */
		Nq__V1__Job *j;
		int rv = broker_job_read(b, e.id, &j);
		if (rv == NQ_ESTORE || rv == NQ_ENOMEM)
			return rv;
		uint64_t okey = rv == 0 && j->spec->ordering_key[0]
		                    ? broker_okey_hash(
		                          j->spec->queue, j->spec->ordering_key)
		                    : 0;
		if (rv != 0 || j->state != NQ__V1__JOB_STATE__JOB_STATE_READY) {
			/* stale: canceled or deleted; its key may let the
			 * next one of that key go */
			if (okey &&
			    (rv = broker_okey_next(&b->core.index, okey)))
				return rv;
			continue;
		}
		if (broker_okey_busy(&b->core.index, okey)) {
			rv = broker_okey_block(&b->core.index, okey,
			    (uint32_t)(q - b->core.index.queues), &e);
			if (rv != 0)
				return rv;
			continue;
		}
		int end = waiting_end(j, now);
		if (end) {
			if ((rv = broker_end_waiting(b, j, end, now, false)))
				return rv;
			continue;
		}
		*job = j;
		return NQ_OK;
	}
	return NQ_OK;
}

/* A new lease of job id in queue qi for the fetch op. */
static broker_lease new_lease(broker *b, const broker_op *op, uint64_t id,
    int qi, uint64_t created_us, uint64_t now)
{
	broker_lease l = {
	    .id = id,
	    .token = broker_rand(b) | 1,
	    .expires_us = now + clamp_lease(op->req->fetch->lease_ms) * 1000,
	    .created_us = created_us,
	    .leased_us = now,
	    .pipe_id = op->pipe_id,
	    .queue = (uint32_t)qi,
	};
	return l;
}

/* Appends the fields of lease l, the job's attempt-th, to its record. The
 * worker id must not be empty: an empty string cannot replace an old one. */
static int patch_lease(broker *b, const broker_lease *l, uint32_t attempt,
    uint64_t started_us, char *worker_id)
{
	Nq__V1__JobLeasePatch patch = NQ__V1__JOB_LEASE_PATCH__INIT;
	patch.state = NQ__V1__JOB_STATE__JOB_STATE_LEASED;
	patch.attempt = attempt;
	patch.lease_token = l->token;
	patch.lease_expires_us = l->expires_us;
	patch.started_us = started_us;
	patch.worker_id = worker_id;
	return broker_job_patch(b, l->id, &patch.base, NULL, 0);
}

static int lease_one(broker *b, broker_op *op, Nq__V1__Job *job, int qi)
{
	const Nq__V1__FetchRequest *f = op->req->fetch;
	uint64_t now = nqi_now_us();
	broker_lease l =
	    new_lease(b, op, broker_job_id(job), qi, job->created_us, now);
	l.keyed = broker_job_keyed(job);
	l.okey = job->spec->ordering_key[0] ? broker_okey_hash(job->spec->queue,
	                                          job->spec->ordering_key)
	                                    : 0;
	broker_queue *q = &b->core.index.queues[qi];
	l.group = broker_group_slot(q, job->spec->group_key);
	/* ready since it was due: run_at (a delay, a retry, a release by
	 * its parents) when that is later than its creation */
	nqi_lat_observe(&q->wait,
	    since(now, job->run_at_us > job->created_us ? job->run_at_us
	                                                : job->created_us));
	job->state = NQ__V1__JOB_STATE__JOB_STATE_LEASED;
	job->attempt++;
	job->lease_token = l.token;
	job->lease_expires_us = l.expires_us;
	job->started_us = now;
	job->worker_id = nqi_arena_strdup(b->core.arena, f->worker_id);
	if (!job->worker_id)
		return NQ_ENOMEM;
	int rv = job->worker_id[0]
	             ? patch_lease(b, &l, job->attempt, now, job->worker_id)
	             : broker_job_write(b, l.id, job);
	if (rv == 0)
		rv = broker_lease_put(&b->core.index, &l);
	if (rv == 0)
		rv = broker_okey_take(&b->core.index, l.okey);
	if (rv == 0) {
		broker_count_move(
		    b, job->spec->queue, NQ_STATE_READY, NQ_STATE_LEASED);
		broker_event(b, BROKER_EV_LEASED, job, NULL);
		if (q->gate.limited)
			gate_took(q, l.id);
	}
	return rv;
}

/* Entries in the ready heaps of the fetch's queues: an upper bound of
 * what it can get (stale entries of canceled jobs count too). */
static size_t waiting_in(broker *b, const Nq__V1__FetchRequest *f)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_queues; i++) {
		int qi = broker_queue_find(&b->core.index, f->queues[i]);
		if (qi >= 0 && !b->core.index.queues[qi].paused)
			n += broker_ready_count(&b->core.index.queues[qi]);
	}
	return n;
}

/*
 * A leased job in a fetch reply: its record as just stored, sent as it is
 * rather than packed again. It goes in as an unknown field numbered like
 * FetchReply.jobs, which protobuf-c writes out verbatim after its tag; on
 * the wire that is exactly a `jobs` entry.
 */
static int reply_job(broker *b, uint64_t id, ProtobufCMessageUnknownField *f)
{
	static _Atomic uint32_t jobs_field;
	if (!jobs_field)
		jobs_field = protobuf_c_message_descriptor_get_field_by_name(
		    &nq__v1__fetch_reply__descriptor, "jobs")
		                 ->id;
	if (b->core.raw_id != id)
		return NQ_ENOMEM; /* the copy could not be kept */
	f->tag = jobs_field;
	f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	f->data = broker_len_prefix(b->core.raw, b->core.raw_len, &f->len);
	return NQ_OK;
}

/*
 * Leases the plain job at the head of q (BROKER_READY_PLAIN: never started,
 * no ordering key, no deadline) without decoding its record: its attempt is
 * 0, so the lease's fields can be appended at once, and the fetch reply
 * carries the record's bytes. Events need the decoded job, so this path is
 * taken only when nobody subscribes. *done false: the head is not such a
 * job (or was a stale entry, which is dropped).
 */
static int lease_plain(broker *b, broker_op *op, broker_queue *q, uint64_t now,
    ProtobufCMessageUnknownField *out, bool *done)
{
	const Nq__V1__FetchRequest *f = op->req->fetch;
	broker_ready e;
	*done = false;
	if (broker_events_wanted(b) || !f->worker_id[0] ||
	    !broker_ready_peek(q, &e) || !(e.flags & BROKER_READY_PLAIN))
		return NQ_OK;
	broker_ready_pop(q);
	if (broker_stale_take(&b->core.index, e.id))
		return NQ_OK; /* canceled; the caller looks again */
	int rv = broker_job_read_raw(b, e.id);
	if (rv != 0)
		return rv == NQ_ENOTFOUND ? NQ_OK : rv;
	int qi = (int)(q - b->core.index.queues);
	/* ids are creation times, made unique */
	broker_lease l = new_lease(b, op, e.id, qi, e.id, now);
	l.keyed = (e.flags & BROKER_READY_KEYED) != 0;
	l.group = e.flags >> BROKER_READY_GROUP_SHIFT;
	nqi_lat_observe(&q->wait, since(now, e.id)); /* due when created */
	if ((rv = patch_lease(b, &l, 1, now, f->worker_id)) != 0 ||
	    (rv = broker_lease_put(&b->core.index, &l)) != 0 ||
	    (rv = reply_job(b, e.id, out)) != 0)
		return rv;
	broker_count_move_at(b, qi, NQ_STATE_READY, NQ_STATE_LEASED);
	if (q->gate.limited)
		gate_took(q, e.id);
	*done = true;
	return NQ_OK;
}

/* Leases up to max_jobs jobs into the op's reply; returns how many in *n. */
static int lease_jobs(broker *b, broker_op *op, size_t *n)
{
	static const Nq__V1__FetchReply init = NQ__V1__FETCH_REPLY__INIT;
	const Nq__V1__FetchRequest *f = op->req->fetch;
	size_t max = f->max_jobs ? f->max_jobs : 1;
	if (max > NQI_LEASES_MAX)
		max = NQI_LEASES_MAX;
	size_t avail = waiting_in(b, f);
	if (avail < max)
		max = avail ? avail : 1;
	Nq__V1__FetchReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	ProtobufCMessageUnknownField *jobs =
	    nqi_arena_alloc(b->core.arena, max * sizeof *jobs);
	if (!r || !jobs)
		return NQ_ENOMEM;
	*r = init;
	r->base.unknown_fields = jobs;
	broker_queue *q;
	uint64_t now = nqi_now_us(); /* one clock read for the whole fetch */
	while (
	    r->base.n_unknown_fields < max && (q = best_queue(b, f)) != NULL) {
		Nq__V1__Job *job;
		bool done;
		int rv = lease_plain(
		    b, op, q, now, &jobs[r->base.n_unknown_fields], &done);
		if (rv != 0)
			return rv;
		if (done) {
			r->base.n_unknown_fields++;
			continue;
		}
		rv = pop_ready(b, q, &job);
		if (rv != 0)
			return rv;
		if (!job)
			continue;
		rv = lease_one(b, op, job, (int)(q - b->core.index.queues));
		if (rv == 0)
			rv = reply_job(b, broker_job_id(job),
			    &jobs[r->base.n_unknown_fields++]);
		if (rv != 0)
			return rv;
	}
	op->reply->body_case = NQ__V1__REPLY__BODY_FETCH;
	op->reply->fetch = r;
	*n = r->base.n_unknown_fields;
	return NQ_OK;
}

static const char *check_fetch(const Nq__V1__FetchRequest *f)
{
	if (f->n_queues == 0)
		return "fetch names no queue";
	if (f->n_queues > 64)
		return "fetch names more than 64 queues";
	for (size_t i = 0; i < f->n_queues; i++)
		if (!nqi_name_valid(f->queues[i]))
			return "queue names must match [A-Za-z0-9._-]{1,128}";
	if (strlen(f->worker_id) > 256)
		return "worker_id is limited to 256 bytes";
	return NULL;
}

/* Whether the fetch names a queue with dispatch limits: then a fetch
 * parked before it is served first (room goes to the longest waiting). */
static bool fetch_limited(broker *b, const Nq__V1__FetchRequest *f)
{
	for (size_t i = 0; i < f->n_queues; i++) {
		int qi = broker_queue_find(&b->core.index, f->queues[i]);
		if (qi >= 0 && b->core.index.queues[qi].gate.limited)
			return true;
	}
	return false;
}

int broker_on_fetch(broker *b, broker_op *op)
{
	const Nq__V1__FetchRequest *f = op->req->fetch;
	const char *bad = check_fetch(f);
	if (bad) {
		broker_set_status(b, op, NQ_EINVAL, "%s", bad);
		broker_finish(b, op);
		return NQ_OK;
	}
	broker_workers_note(b, f, op->pipe_id);
	size_t n = 0;
	bool behind = b->core.limited_queues && b->core.parked_fetch &&
	              f->wait_ms && fetch_limited(b, f);
	int rv =
	    pipe_dead(b, op->pipe_id) || behind ? NQ_OK : lease_jobs(b, op, &n);
	if (rv != 0)
		return rv;
	if (n > 0 || f->wait_ms == 0 || b->in.stopping ||
	    pipe_dead(b, op->pipe_id)) {
		broker_finish(b, op);
		return NQ_OK;
	}
	if (!broker_park(b, op))
		return NQ_OK;
	uint64_t wait = f->wait_ms < MAX_WAIT_MS ? f->wait_ms : MAX_WAIT_MS;
	op->deadline_ms = nqi_mono_ms() + wait;
	op->settled = true;
	op->reply = NULL;
	/* Appended at the tail, so the longest waiting worker is served
	 * first. */
	broker_op **pp = &b->core.parked_fetch;
	while (*pp)
		pp = &(*pp)->next;
	op->next = NULL;
	*pp = op;
	return NQ_OK;
}

bool broker_park(broker *b, broker_op *op)
{
	if (!op->conn || nqi_rep_park(op->conn) == NQ_OK)
		return true;
	broker_set_status(b, op, NQ_EEXHAUSTED,
	    "%d requests wait already (--max-parked); retry later",
	    b->cfg.max_parked);
	broker_finish(b, op);
	return false;
}

int broker_serve_parked(broker *b)
{
	uint64_t now = nqi_mono_ms();
	b->core.gate_due_us = 0; /* the fetches still held back set it again */
	broker_op **pp = &b->core.parked_fetch;
	while (*pp) {
		broker_op *op = *pp;
		size_t n = 0;
		bool gone = pipe_dead(b, op->pipe_id);
		bool due = op->deadline_ms <= now || b->in.stopping;
		/* Most groups bring nothing for most parked workers: look
		 * before building anything. */
		if (!gone && !due && !best_queue(b, op->req->fetch)) {
			pp = &op->next;
			continue;
		}
		op->reply = broker_reply_new(b);
		if (!op->reply)
			return NQ_ENOMEM;
		int rv = gone ? NQ_OK : lease_jobs(b, op, &n);
		if (rv != 0) {
			op->reply = NULL; /* in the arena of a failed group */
			return rv;
		}
		if (n == 0 && !gone && !due) {
			op->reply = NULL;
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		broker_finish(b, op);
	}
	return broker_expire_waits(b, now);
}

/* Extends touch no record; the event needs the job's names. */
static void event_extended(broker *b, uint64_t id)
{
	Nq__V1__Job *job;
	if (broker_events_wanted(b) && broker_job_read(b, id, &job) == 0)
		broker_event(b, BROKER_EV_EXTENDED, job, NULL);
}

/* Reads the record of id: *job NULL when it is gone or does not decode;
 * only a failed store (or memory) is an error. */
static int read_present(broker *b, uint64_t id, Nq__V1__Job **job)
{
	int rv = broker_job_read(b, id, job);
	if (rv == NQ_ESTORE || rv == NQ_ENOMEM)
		return rv;
	if (rv != 0)
		*job = NULL;
	return NQ_OK;
}

/* Sets the reply's stop flag of lease i of n; the flags are there only
 * when some lease must stop, so that most replies carry none. */
static int extend_stop(broker *b, Nq__V1__ExtendReply *r, size_t n, size_t i)
{
	if (!r->stop) {
		r->stop = nqi_arena_alloc(b->core.arena, n * sizeof *r->stop);
		if (!r->stop)
			return NQ_ENOMEM;
		memset(r->stop, 0, n * sizeof *r->stop);
		r->n_stop = n;
	}
	r->stop[i] = true;
	return NQ_OK;
}

#define PROGRESS_NOTE_MAX 200
/* Progress events of one job: at most one in this long. */
#define PROGRESS_EVENT_US 1000000

/* The note cut to PROGRESS_NOTE_MAX bytes, at a character's start. */
static char *progress_note(broker *b, const char *note)
{
	size_t n = strlen(note), at = 0, c;
	while (at < n && at < PROGRESS_NOTE_MAX &&
	       (c = nqi_utf8_char_len((const uint8_t *)note + at, n - at)) &&
	       at + c <= PROGRESS_NOTE_MAX)
		at += c;
	char *p = nqi_arena_alloc(b->core.arena, at + 1);
	if (p) {
		memcpy(p, note, at);
		p[at] = '\0';
	}
	return p;
}

/* Keeps the progress an Extend carries on the job's record, and tells it
 * as a progress event at most once a second. */
static int keep_progress(broker *b, uint64_t id, const Nq__V1__JobProgress *p)
{
	Nq__V1__Job *job;
	int rv = read_present(b, id, &job);
	if (rv != 0 || !job)
		return rv;
	uint64_t now = nqi_now_us(), last = job->progress_at_us;
	job->progress_pct = p->pct > 100 ? 100 : p->pct;
	job->progress_note = progress_note(b, p->note);
	job->progress_at_us = now;
	if (!job->progress_note)
		return NQ_ENOMEM;
	if ((rv = broker_job_write(b, id, job)) != 0)
		return rv;
	if (now - last >= PROGRESS_EVENT_US)
		broker_event(b, BROKER_EV_PROGRESS, job, NULL);
	return NQ_OK;
}

int broker_cancel_leased(broker *b, Nq__V1__Job *job)
{
	uint64_t id = broker_job_id(job);
	broker_lease *l = broker_lease_find(&b->core.index, id);
	if (job->cancel_requested)
		return NQ_OK;
	job->cancel_requested = true;
	int rv = broker_job_write(b, id, job);
	if (rv == 0 && l)
		l->stop = true;
	if (rv == 0)
		log_job("NQ-JOB-CANCEL-REQUESTED", job, NULL);
	return rv;
}

int broker_on_extend(broker *b, broker_op *op)
{
	static const Nq__V1__ExtendReply init = NQ__V1__EXTEND_REPLY__INIT;
	static const Nq__V1__Status sinit = NQ__V1__STATUS__INIT;
	const Nq__V1__ExtendRequest *e = op->req->extend;
	size_t n = e->n_leases > NQI_LEASES_MAX ? NQI_LEASES_MAX : e->n_leases;
	Nq__V1__ExtendReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__Status *st =
	    nqi_arena_alloc(b->core.arena, (n + 1) * sizeof *st);
	Nq__V1__Status **ptrs =
	    nqi_arena_alloc(b->core.arena, (n + 1) * sizeof *ptrs);
	if (!r || !st || !ptrs)
		return NQ_ENOMEM;
	*r = init;
	uint64_t until = nqi_now_us() + clamp_lease(e->lease_ms) * 1000;
	for (size_t i = 0; i < n; i++) {
		uint64_t id;
		broker_lease *l = NULL;
		if (nqi_id_parse(e->leases[i]->id, &id) == 0)
			l = broker_lease_find(&b->core.index, id);
		st[i] = sinit;
		if (l && l->token == e->leases[i]->lease_token) {
			l->expires_us = until;
			if (l->stop && extend_stop(b, r, n, i) != 0)
				return NQ_ENOMEM;
			event_extended(b, id);
			int rv =
			    e->leases[i]->progress
			        ? keep_progress(b, id, e->leases[i]->progress)
			        : NQ_OK;
			if (rv != 0)
				return rv;
		} else {
			st[i].code = NQ__V1__CODE__FAILED_PRECONDITION;
			st[i].message = (char *)"lease not held (expired, or "
			                        "the job was handed out again)";
		}
		ptrs[i] = &st[i];
	}
	r->results = ptrs;
	r->n_results = n;
	return BROKER_ANSWER(b, op, EXTEND, extend, r);
}

/* ---- ends of attempts ---- */

static char *bounded_text(broker *b, const char *s)
{
	size_t n = strnlen(s, MAX_ERROR_TEXT);
	char *p = nqi_arena_alloc(b->core.arena, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int add_error(broker *b, Nq__V1__Job *job, const char *msg,
    bool retryable, const char *worker)
{
	static const Nq__V1__AttemptError init = NQ__V1__ATTEMPT_ERROR__INIT;
	Nq__V1__AttemptError *e = nqi_arena_alloc(b->core.arena, sizeof *e);
	Nq__V1__AttemptError **v =
	    nqi_arena_alloc(b->core.arena, (job->n_errors + 1) * sizeof *v);
	if (!e || !v)
		return NQ_ENOMEM;
	*e = init;
	e->attempt = job->attempt;
	e->at_us = nqi_now_us();
	e->message = bounded_text(b, msg && msg[0] ? msg : "failed");
	e->retryable = retryable;
	e->worker_id = bounded_text(b, worker ? worker : "");
	if (!e->message || !e->worker_id)
		return NQ_ENOMEM;
	if (job->n_errors)
		memcpy(v, job->errors, job->n_errors * sizeof *v);
	v[job->n_errors++] = e;
	job->errors = v;
	return NQ_OK;
}

/* One log line about a job, with the reason when there is one; it
 * carries the trace context when the job has one, so logs join the
 * producer's trace. */
static void log_job(
    const char *msgid, const Nq__V1__Job *job, const char *reason)
{
	const char *tp = job->spec->traceparent;
	nqi_info(msgid, NQI_S("id", job->id), NQI_S("queue", job->spec->queue),
	    NQI_S("type", job->spec->type), NQI_U("attempt", job->attempt),
	    NQI_S(reason ? "reason" : NULL, reason),
	    NQI_S(tp[0] ? "trace" : NULL, tp));
}

/*
 * Ends a failed attempt: kept as an error, then dead (non-retryable, or no
 * attempts left) or scheduled again. retry_after_ms 0 uses the backoff;
 * UINT64_MAX retries at once.
 */
static int fail_attempt(broker *b, Nq__V1__Job *job, const char *msg,
    bool retryable, const char *worker, uint64_t retry_after_ms)
{
	int rv = add_error(b, job, msg, retryable, worker);
	if (rv != 0)
		return rv;
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	broker_queue *q = broker_totals_at(b, qi);
	if (q)
		q->failed_total++;
	gate_ended(b, qi, broker_job_id(job), true);
	broker_event(
	    b, BROKER_EV_FAILED, job, job->errors[job->n_errors - 1]->message);
	uint64_t now = nqi_now_us();
	if (!retryable || job->attempt >= job->max_attempts) {
		if (!job->dead_reason[0])
			job->dead_reason =
			    (char *)(retryable ? "max_attempts"
			                       : "non_retryable");
		return job_dead(b, job, q, now);
	}
	broker_event(b, BROKER_EV_RETRYING, job, NULL);
	const nqi_policy *pol = broker_policy_named(b, job->spec->queue);
	uint64_t delay_ms =
	    retry_after_ms == UINT64_MAX ? 0
	    : retry_after_ms             ? retry_after_ms
	                     : nqi_backoff_ms(job->attempt, pol->backoff_base,
	                           pol->backoff_cap, broker_rand(b));
	return broker_job_requeue(b, job, nqi_us_plus_ms(now, delay_ms));
}

/* Reads the job of a lease being ended and drops the lease. *job NULL when
 * the record is gone or no longer under this lease; *stop: the lease was
 * told to stop (broker_lease.stop). */
static int take_lease(
    broker *b, uint64_t id, uint64_t token, Nq__V1__Job **job, bool *stop)
{
	*job = NULL;
	broker_lease *l = broker_lease_find(&b->core.index, id);
	if (!l || l->token != token)
		return NQ_OK;
	uint64_t okey = l->okey;
	*stop = l->stop;
	broker_lease_del(&b->core.index, id);
	int rv = broker_okey_release(&b->core.index, okey);
	if (rv != 0)
		return rv;
	rv = broker_job_read(b, id, job);
	if (rv == NQ_ESTORE || rv == NQ_ENOMEM)
		return rv;
	if (rv != 0 || (*job)->state != NQ__V1__JOB_STATE__JOB_STATE_LEASED ||
	    (*job)->lease_token != token)
		*job = NULL;
	return NQ_OK;
}

static void observe_latency(
    broker *b, int qi, uint64_t created_us, uint64_t now_us)
{
	broker_queue *q = broker_totals_at(b, qi);
	q->succeeded_total++;
	nqi_prom_hist_observe(q->latency_group,
	    now_us > created_us ? (double)(now_us - created_us) / 1e6 : 0);
}

/* Whether a completion can be applied from the lease table alone: a
 * success that no subscriber, waiter or debug line needs the job's fields
 * for, with a result within bounds. The common case under load. */
static bool plain_success(broker *b, uint64_t id, const Nq__V1__Completion *c)
{
	return c->outcome == NQ__V1__OUTCOME__OUTCOME_SUCCEEDED &&
	       c->result.len <= b->cfg.max_result && !broker_events_wanted(b) &&
	       !broker_has_waiter(b, id) && !nqi_log_enabled(NQI_LOG_DEBUG) &&
	       !broker_is_parent(&b->core.index, id);
}

/* Ends a lease as a plain success without reading the record: the lease
 * table holds what the counters need, and the record is patched. The lease
 * table and the records change together in every group, so a lease found
 * here is one the record holds. *done false: no such lease, or one whose
 * record goes at once (result_ttl 0) with an idempotency key or a blob that
 * only the record names. */
static int succeed_plain(broker *b, uint64_t id, const Nq__V1__Completion *c,
    uint64_t now, bool *done)
{
	broker_lease *found = broker_lease_find(&b->core.index, id);
	uint64_t ttl_ms =
	    found ? broker_result_ttl_ms(b, (int)found->queue, NULL) : 0;
	*done = found && found->token == c->lease_token && !found->stop &&
	        !(found->keyed && ttl_ms == 0);
	if (!*done)
		return NQ_OK;
	broker_lease l = *found;
	broker_lease_del(&b->core.index, id);
	int rv = broker_okey_release(&b->core.index, l.okey);
	if (rv != 0)
		return rv;
	int qi = (int)l.queue;
	observe_latency(b, qi, l.created_us, now);
	nqi_lat_observe(&b->core.index.queues[qi].run, since(now, l.leased_us));
	gate_ended(b, qi, id, false);
	broker_count_move_at(b, qi, NQ_STATE_LEASED, NQ_STATE_SUCCEEDED);
	if (b->core.index.nbatched &&
	    (rv = broker_batch_ended(b, id, NQ_STATE_SUCCEEDED,
	         b->core.index.queues[qi].name)) != 0)
		return rv;
	if (ttl_ms != 0 &&
	    (rv = broker_job_patch_success(b, id, now, c->result)) != 0)
		return rv;
	return broker_result_keep(b, id, qi, NQ_STATE_SUCCEEDED, now);
}

static void keep_result(
    broker *b, Nq__V1__Job *job, const Nq__V1__Completion *c)
{
	job->result = c->result;
	if (job->result.len > b->cfg.max_result) {
		nqi_warn("NQ-RESULT-TRUNCATED", NQI_S("id", job->id),
		    NQI_U("bytes", job->result.len),
		    NQI_U("limit", b->cfg.max_result));
		job->result.len = b->cfg.max_result;
	}
}

/* Whether the attempt of a leased job that just ended was to stop:
 * canceled, or past its finish_within (told to stop or not yet). */
static bool must_stop(const Nq__V1__Job *job, bool stop)
{
	uint64_t by = broker_job_finish_by(job);
	return stop || job->cancel_requested || (by && nqi_now_us() >= by);
}

/*
 * Ends the attempt of a job told to stop: what the attempt did is kept as
 * its last outcome (c's result or error; without c, the error msg), and
 * the job ends canceled, or dead with reason deadline; it is never
 * retried.
 */
static int stop_end(broker *b, Nq__V1__Job *job, const Nq__V1__Completion *c,
    const char *msg, const char *worker)
{
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	bool ok = c && c->outcome == NQ__V1__OUTCOME__OUTCOME_SUCCEEDED;
	bool failed = !c || c->outcome == NQ__V1__OUTCOME__OUTCOME_FAILED;
	int rv = NQ_OK;
	if (ok)
		keep_result(b, job, c);
	else if (failed)
		rv = add_error(b, job, msg, false, worker);
	if (rv != 0)
		return rv;
	/* Stopped, it says nothing of the service behind the queue: the
	 * breaker counts it neither way (a probe may go out again). */
	gate_released(b, qi, broker_job_id(job));
	uint64_t now = nqi_now_us();
	if (job->cancel_requested) {
		log_job("NQ-JOB-CANCELED", job, NULL);
		broker_event(b, BROKER_EV_CANCELED, job, NULL);
		return broker_job_finish(b, job, NQ_STATE_CANCELED, now);
	}
	job->dead_reason = (char *)"deadline";
	return job_dead(b, job, broker_totals_at(b, qi), now);
}

/* now: when the batch was taken up; one clock read serves all of it. */
static int complete_one(
    broker *b, const Nq__V1__Completion *c, const char *worker, uint64_t now)
{
	uint64_t id;
	Nq__V1__Job *job;
	bool done, stop = false;
	if (nqi_id_parse(c->id, &id) != 0)
		return NQ_OK;
	if (plain_success(b, id, c)) {
		int rv = succeed_plain(b, id, c, now, &done);
		if (rv != 0 || done)
			return rv;
	}
	int rv = take_lease(b, id, c->lease_token, &job, &stop);
	if (rv != 0 || !job) {
		if (rv == 0)
			nqi_debug("NQ-COMPLETION-STALE", NQI_S("id", c->id),
			    NQI_S("worker", worker));
		return rv;
	}
	if (must_stop(job, stop))
		return stop_end(b, job, c, c->error, worker);
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	if (qi >= 0 && c->outcome != NQ__V1__OUTCOME__OUTCOME_RELEASED)
		nqi_lat_observe(&b->core.index.queues[qi].run,
		    since(nqi_now_us(), job->started_us));
	switch (c->outcome) {
	case NQ__V1__OUTCOME__OUTCOME_SUCCEEDED:
		keep_result(b, job, c);
		if (qi >= 0)
			observe_latency(b, qi, job->created_us, now);
		gate_ended(b, qi, id, false);
		nqi_debug("NQ-JOB-SUCCEEDED", NQI_S("id", job->id),
		    NQI_S("queue", job->spec->queue),
		    NQI_U("attempt", job->attempt),
		    NQI_S(job->spec->traceparent[0] ? "trace" : NULL,
		        job->spec->traceparent));
		broker_event(b, BROKER_EV_SUCCEEDED, job, NULL);
		return broker_job_finish(
		    b, job, NQ_STATE_SUCCEEDED, nqi_now_us());
	case NQ__V1__OUTCOME__OUTCOME_RELEASED:
		if (job->attempt > 0)
			job->attempt--; /* it did not run: no attempt spent */
		gate_released(b, qi, id);
		return broker_job_requeue(b, job, nqi_now_us());
	default:
		if (c->schema_rejected)
			job->dead_reason = (char *)"schema_rejected";
		log_job("NQ-JOB-FAILED", job, NULL);
		return fail_attempt(b, job, c->error,
		    !c->non_retryable && !c->schema_rejected, worker,
		    c->retry_after_ms);
	}
}

int broker_on_completions(broker *b, broker_op *op)
{
	const Nq__V1__CompletionBatch *batch = op->batch;
	uint64_t now = nqi_now_us();
	for (size_t i = 0; i < batch->n_completions; i++) {
		int rv = complete_one(
		    b, batch->completions[i], batch->worker_id, now);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Ends the lease at index i of the lease table as a failed attempt. */
static int lapse(
    broker *b, broker_lease l, const char *why, uint64_t retry_after_ms)
{
	Nq__V1__Job *job;
	bool stop = false;
	int rv = take_lease(b, l.id, l.token, &job, &stop);
	if (rv != 0 || !job)
		return rv;
	char msg[MAX_ERROR_TEXT]; /* as long as bounded_text reads */
	snprintf(msg, sizeof msg, "%s (worker %.200s)", why, job->worker_id);
	log_job(
	    retry_after_ms ? "NQ-WORKER-GONE" : "NQ-LEASE-EXPIRED", job, NULL);
	if (must_stop(job, stop))
		return stop_end(b, job, NULL, msg, job->worker_id);
	return fail_attempt(b, job, msg, true, job->worker_id, retry_after_ms);
}

/* Lapses every lease held through the worker connection pipe_id. */
static int lapse_pipe(broker *b, uint32_t pipe_id)
{
	broker_index *x = &b->core.index;
	for (size_t i = x->nleases; i-- > 0;) {
		if (i >= x->nleases || x->leases[i].pipe_id != pipe_id)
			continue;
		int rv = lapse(
		    b, x->leases[i], "worker connection lost", UINT64_MAX);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/*
 * A worker's connection closed. Its leases go back a moment later, not at
 * once: a draining worker sends its last completions (releases included)
 * on the results socket just before it closes, and those may arrive after
 * the close is noticed; they must win over "connection lost".
 */
int broker_on_pipe_gone(broker *b, broker_op *op)
{
	if (op->api_pipe) {
		broker_drop_waits(b, op->pipe_id);
		return NQ_OK;
	}
	b->core.dead_pipes[b->core.dead_pipe_next++ % BROKER_DEAD_PIPES] =
	    op->pipe_id;
	if (b->core.ngone == BROKER_GONE_MAX)
		return lapse_pipe(b, op->pipe_id);
	b->core.gone[b->core.ngone].pipe_id = op->pipe_id;
	b->core.gone[b->core.ngone].due_ms =
	    nqi_mono_ms() + BROKER_GONE_DELAY_MS;
	b->core.ngone++;
	return NQ_OK;
}

/* Lapses the leases of connections that closed long enough ago. */
static int sweep_gone(broker *b, uint64_t now_ms)
{
	size_t kept = 0;
	int rv = NQ_OK;
	for (size_t i = 0; i < b->core.ngone; i++) {
		if (rv == 0 && b->core.gone[i].due_ms <= now_ms)
			rv = lapse_pipe(b, b->core.gone[i].pipe_id);
		else
			b->core.gone[kept++] = b->core.gone[i];
	}
	b->core.ngone = kept;
	return rv;
}

static int sweep_leases(broker *b, uint64_t now_us)
{
	broker_index *x = &b->core.index;
	for (size_t i = x->nleases; i-- > 0;) {
		if (i >= x->nleases || x->leases[i].expires_us > now_us)
			continue;
		int rv = lapse(b, x->leases[i],
		    "lease expired before the "
		    "job finished or was extended",
		    0);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Scheduled jobs whose time has come become ready. */
static int sweep_timers(broker *b, uint64_t now_us)
{
	broker_timer t;
	while (broker_timer_peek(&b->core.index, &t) && t.run_at_us <= now_us) {
		broker_timer_pop(&b->core.index);
		Nq__V1__Job *job;
		int rv = broker_job_read(b, t.id, &job);
		if (rv == NQ_ESTORE || rv == NQ_ENOMEM)
			return rv;
		if (rv != 0 ||
		    job->state != NQ__V1__JOB_STATE__JOB_STATE_SCHEDULED)
			continue; /* stale: canceled meanwhile */
		if ((rv = broker_job_requeue(b, job, job->run_at_us)) != 0)
			return rv;
	}
	return NQ_OK;
}

/* The deadline heap said job id may be due: a waiting job past its
 * deadline or finish_within ends; a leased one past its finish_within is
 * told to stop at its next Extend. */
static int deadline_due(broker *b, uint64_t id, uint64_t now_us)
{
	Nq__V1__Job *job;
	int rv = read_present(b, id, &job);
	if (rv != 0 || !job)
		return rv;
	int st = (int)job->state;
	uint64_t by = broker_job_finish_by(job);
	broker_lease *l = st == NQ_STATE_LEASED
	                      ? broker_lease_find(&b->core.index, id)
	                      : NULL;
	if (l && by && now_us >= by && !l->stop) {
		l->stop = true;
		log_job("NQ-JOB-STOP", job, "deadline");
	}
	if (st != NQ_STATE_READY && st != NQ_STATE_SCHEDULED &&
	    st != NQ_STATE_WAITING)
		return NQ_OK;
	int end = waiting_end(job, now_us);
	return end ? broker_end_waiting(b, job, end, now_us, true) : NQ_OK;
}

/* Jobs whose deadline or finish_within came: looked at within a sweep of
 * it (--lease-check), whatever they wait for. */
static int sweep_deadlines(broker *b, uint64_t now_us)
{
	broker_timer t;
	while (
	    broker_deadline_peek(&b->core.index, &t) && t.run_at_us <= now_us) {
		broker_deadline_pop(&b->core.index);
		int rv = deadline_due(b, t.id, now_us);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

static int expire_idem(
    broker *b, const uint8_t *key, size_t len, uint64_t at_us)
{
	MDB_val k = {len, (void *)key}, v;
	int rc = mdb_get(b->core.txn, b->db_idem, &k, &v);
	/* The key may have been taken again later with a new window. */
	if (rc == 0 && v.mv_size >= 16 &&
	    nqi_be64_get((uint8_t *)v.mv_data + 8) == at_us)
		rc = mdb_del(b->core.txn, b->db_idem, &k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? NQ_OK : NQ_ESTORE;
}

static int expire_job(broker *b, uint64_t id)
{
	Nq__V1__Job *job;
	int rv = read_present(b, id, &job);
	if (rv != 0 || !job)
		return rv;
	return broker_job_drop(b, job);
}

/* Deletes the jobs of a 'j' entry: the key's id, then those of its value
 * (see broker_expiry_flush), copied first, since the deletes may move the
 * page it is on; returns how many it named in *n. */
static int expire_jobs(broker *b, const uint8_t *key, const MDB_val *v, int *n)
{
	uint8_t ids[BROKER_EXPIRY_RUN * 8];
	size_t len = v->mv_size < sizeof ids ? v->mv_size / 8 * 8 : sizeof ids;
	memcpy(ids, v->mv_data, len);
	int rv = expire_job(b, nqi_be64_get(key + 9));
	for (size_t i = 0; rv == 0 && i < len; i += 8)
		rv = expire_job(b, nqi_be64_get(ids + i));
	*n = 1 + (int)(len / 8);
	return rv;
}

/* Deletes finished jobs past their result_ttl and lapsed idempotency
 * keys, about limit of them (an entry's jobs go together). */
static int sweep_expiry(broker *b, uint64_t now_us, int limit)
{
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(b->core.txn, b->db_expiry, &cur) != 0)
		return NQ_ESTORE;
	int rv = NQ_OK, rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (int n = 0, took; rc == 0 && rv == 0 && n < limit; n += took) {
		const uint8_t *key = k.mv_data;
		uint64_t at = k.mv_size >= 9 ? nqi_be64_get(key) : 0;
		took = 1;
		if (at > now_us)
			break;
		if (k.mv_size == 17 && key[8] == 'j')
			rv = expire_jobs(b, key, &v, &took);
		else if (k.mv_size > 9 && key[8] == 'i')
			rv = expire_idem(b, key + 9, k.mv_size - 9, at);
		else if (k.mv_size == 17 && key[8] == 'b')
			rv = broker_batch_expire(b, nqi_be64_get(key + 9));
		if (rv == 0 && mdb_cursor_del(cur, 0) != 0)
			rv = NQ_ESTORE;
		b->core.dirty = true;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rv;
}

int broker_sweep(broker *b)
{
	uint64_t now_us = nqi_now_us(), now_ms = nqi_mono_ms();
	int rv = sweep_timers(b, now_us);
	if (rv != 0)
		return rv;
	if (now_ms < b->core.next_sweep_ms)
		return sweep_expiry(b, now_us, SWEEP_TTL_GROUP);
	b->core.next_sweep_ms = now_ms + b->cfg.lease_check_ms;
	if ((rv = sweep_gone(b, now_ms)) != 0)
		return rv;
	if ((rv = sweep_leases(b, now_us)) != 0)
		return rv;
	if ((rv = sweep_deadlines(b, now_us)) != 0)
		return rv;
	rv = sweep_expiry(b, now_us, SWEEP_TTL_LIMIT);
	broker_metrics_tick(b);
	return rv;
}
