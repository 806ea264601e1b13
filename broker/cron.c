/* Cron schedules on the core thread: the schedules of the queues file, each
 * with its next tick; a group whose time passed the earliest next tick
 * enqueues every tick due, and writes each schedule's last tick (a
 * CronState in the meta database) in the same commit, so that a tick is
 * never enqueued twice, also across a SIGKILL. Groups before the earliest
 * tick pay one compare. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/cron.h"
#include "nqi/log.h"
#include "nqi/policy.h"
#include "nqi/util.h"

#define KEY_PREFIX "cron/"
#define CATCH_UP_MAX 1000      /* ticks of one schedule one group enqueues */
#define MISSED_SCAN_MAX 100000 /* ticks latest_missed steps over */

typedef struct cron_entry {
	const nqi_schedule *s; /* in b->core.policy.file */
	nqi_cron expr;
	nqi_cron_zone *zone;    /* shared by the entries of one zone */
	int64_t last_s, next_s; /* last tick enqueued (0: none), next */
	uint64_t last_job;
} cron_entry;

/* The zones the entries use, each opened once: a calendar is a few KiB,
 * and ten thousand schedules name a handful of zones. */
typedef struct zone_set {
	nqi_cron_zone **z;
	size_t n, cap;
} zone_set;

struct broker_cron {
	cron_entry *e;
	size_t n;
	zone_set zones;
	const nqi_policy_file *file; /* the one e was built from */
	int64_t due_s;               /* the earliest next_s; INT64_MAX: none */
	/* NQ_TEST_CRON_CLOCK: the schedules' clock read clock_start_s at
	 * real_start_us and runs clock_rate times as fast (rate 0: the wall
	 * clock itself) */
	int64_t clock_start_s;
	uint64_t real_start_us;
	uint64_t clock_rate;
	bool loaded; /* e matches the store */
	bool replay; /* a commit failed: go on from the stored ticks */
};

/* The schedules' clock: the wall clock, shifted in tests so that a DST
 * date can be reached at once. */
static int64_t cron_now_s(const struct broker_cron *c)
{
	uint64_t now = nqi_now_us();
	if (!c->clock_rate)
		return (int64_t)(now / 1000000);
	return c->clock_start_s +
	       (int64_t)((now - c->real_start_us) * c->clock_rate / 1000000);
}

static void zones_free(zone_set *zs)
{
	for (size_t i = 0; i < zs->n; i++)
		nqi_cron_zone_close(zs->z[i]);
	free(zs->z);
	*zs = (zone_set){0};
}

/* The zone called name, opened into zs unless it is there already. */
static int zone_get(
    zone_set *zs, const char *name, nqi_cron_zone **out, char *why, size_t len)
{
	for (size_t i = 0; i < zs->n; i++)
		if (strcmp(nqi_cron_zone_name(zs->z[i]), name) == 0) {
			*out = zs->z[i];
			return NQ_OK;
		}
	if (NQI_GROW(zs->z, zs->cap, zs->n + 1, 8) != 0)
		return NQ_ENOMEM;
	int rv = nqi_cron_zone_open(name, out, why, len);
	if (rv == 0)
		zs->z[zs->n++] = *out;
	return rv;
}

static void entries_free(struct broker_cron *c)
{
	free(c->e);
	c->e = NULL;
	c->n = 0;
	zones_free(&c->zones);
}

/* ---- the stored record ---- */

static size_t state_key(const char *name, uint8_t *key)
{
	size_t n = strlen(name);
	memcpy(key, KEY_PREFIX, sizeof KEY_PREFIX - 1);
	memcpy(key + sizeof KEY_PREFIX - 1, name, n);
	return sizeof KEY_PREFIX - 1 + n;
}

static int state_get(broker *b, cron_entry *e)
{
	uint8_t key[sizeof KEY_PREFIX + NQI_CRON_NAME_MAX];
	MDB_val k = {state_key(e->s->name, key), key}, v;
	int rc = mdb_get(b->core.txn, b->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return NQ_OK;
	if (rc != 0)
		return NQ_ESTORE;
	Nq__V1__CronState *st =
	    nq__v1__cron_state__unpack(NULL, v.mv_size, v.mv_data);
	if (st) {
		e->last_s = (int64_t)(st->tick_us / 1000000);
		e->last_job = st->job_id;
		nq__v1__cron_state__free_unpacked(st, NULL);
	}
	return NQ_OK;
}

static int state_put(broker *b, const cron_entry *e)
{
	Nq__V1__CronState st = NQ__V1__CRON_STATE__INIT;
	uint8_t key[sizeof KEY_PREFIX + NQI_CRON_NAME_MAX], val[32];
	st.tick_us = (uint64_t)e->last_s * 1000000;
	st.job_id = e->last_job;
	MDB_val k = {state_key(e->s->name, key), key},
	        v = {nq__v1__cron_state__pack(&st, val), val};
	b->core.dirty = true;
	return nqi_store_err(mdb_put(b->core.txn, b->db_meta, &k, &v, 0));
}

/* ---- building the entries ---- */

static int entry_open(cron_entry *e, const nqi_schedule *s, zone_set *zs)
{
	char why[256];
	e->s = s;
	if (nqi_cron_parse(s->cron, &e->expr, why, sizeof why) != 0 ||
	    zone_get(zs, s->zone, &e->zone, why, sizeof why) != 0) {
		nqi_error("NQ-CRON-REFUSED", NQI_S("schedule", s->name),
		    NQI_S("reason", why));
		return NQ_EINVAL; /* the file was checked: not expected */
	}
	return NQ_OK;
}

static int64_t next_after(const cron_entry *e, int64_t t)
{
	int64_t n;
	return nqi_cron_next(&e->expr, e->zone, t, &n) == 0 ? n : INT64_MAX;
}

/* The latest tick in (after, now], or 0 when none is. A window back from
 * now doubles until it holds a tick, so that a long outage of a dense
 * schedule costs a few steps, not one per missed tick. */
static int64_t latest_missed(const cron_entry *e, int64_t after, int64_t now)
{
	for (int64_t w = 1;; w *= 2) {
		int64_t from = now - w < after ? after : now - w, n;
		int64_t t = next_after(e, from);
		if (t <= now) {
			for (int i = 0; i < MISSED_SCAN_MAX &&
			                (n = next_after(e, t)) <= now;
			     i++)
				t = n;
			return t;
		}
		if (from == after)
			return 0;
	}
}

static int entries_build(broker *b, struct broker_cron *c)
{
	const nqi_policy_file *f = b->core.policy.file;
	size_t n = f ? f->nschedules : 0;
	cron_entry *e = n ? calloc(n, sizeof *e) : NULL;
	if (n && !e)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (entry_open(&e[i], &f->schedules[i], &c->zones) != 0 ||
		    state_get(b, &e[i]) != 0) {
			c->e = e;
			c->n = i + 1;
			return NQ_ESTORE;
		}
	}
	c->e = e;
	c->n = n;
	c->file = f;
	return NQ_OK;
}

static int fire(broker *b, cron_entry *e, int64_t tick_s);

/* After a start (or a reload that named it anew): the ticks missed since
 * the stored last one are skipped, or one job stands for them all. */
static int entry_resume(broker *b, cron_entry *e, int64_t now)
{
	int64_t missed = e->last_s ? latest_missed(e, e->last_s, now) : 0;
	e->next_s = next_after(e, now);
	if (!missed)
		return NQ_OK;
	nqi_info("NQ-CRON-MISSED", NQI_S("schedule", e->s->name),
	    NQI_S("missed",
	        e->s->missed == NQI_CRON_MISSED_ONCE ? "once" : "skip"),
	    NQI_I("last_tick_s", e->last_s), NQI_I("latest_missed_s", missed));
	return e->s->missed == NQI_CRON_MISSED_ONCE ? fire(b, e, missed)
	                                            : NQ_OK;
}

static void due_update(struct broker_cron *c)
{
	c->due_s = INT64_MAX;
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].next_s < c->due_s)
			c->due_s = c->e[i].next_s;
}

/* The entry of old that is e's schedule unchanged (name, expression and
 * zone), or NULL. A file read again mostly keeps its order: old[i] first. */
static const cron_entry *same_in(
    const cron_entry *old, size_t nold, size_t i, const cron_entry *e)
{
	for (size_t k = 0; k <= nold; k++) {
		size_t j = k == 0 ? i : k - 1;
		if (j < nold && strcmp(old[j].s->name, e->s->name) == 0)
			return strcmp(old[j].s->cron, e->s->cron) == 0 &&
			               strcmp(old[j].s->zone, e->s->zone) == 0
			           ? &old[j]
			           : NULL;
	}
	return NULL;
}

/* Builds the entries from the policy file and the store; a schedule known
 * before (same name, expression and zone) keeps its ticks. */
static int cron_load(broker *b, struct broker_cron *c)
{
	int64_t now = cron_now_s(c);
	cron_entry *old = c->e;
	size_t nold = c->n;
	zone_set old_zones = c->zones;
	c->e = NULL;
	c->n = 0;
	c->zones = (zone_set){0};
	int rv = entries_build(b, c);
	for (size_t i = 0; rv == 0 && i < c->n; i++) {
		cron_entry *e = &c->e[i];
		const cron_entry *o =
		    c->loaded ? same_in(old, nold, i, e) : NULL;
		if (o)
			e->next_s = o->next_s;
		else if (c->replay && e->last_s)
			e->next_s = next_after(e, e->last_s);
		else
			rv = entry_resume(b, e, now);
	}
	free(old);
	zones_free(&old_zones);
	due_update(c);
	c->loaded = rv == 0;
	c->replay = false;
	return rv;
}

/* ---- firing ---- */

static Nq__V1__JobSpec *spec_of(broker *b, const nqi_schedule *s)
{
	static const Nq__V1__JobSpec init = NQ__V1__JOB_SPEC__INIT;
	Nq__V1__JobSpec *spec = nqi_arena_alloc(b->core.arena, sizeof *spec);
	if (!spec)
		return NULL;
	*spec = init;
	spec->queue = (char *)s->queue;
	spec->type = (char *)s->type;
	spec->schedule = (char *)s->name;
	if (s->payload) {
		spec->payload.data = s->payload;
		spec->payload.len = s->payload_len;
		spec->content_type = "application/msgpack";
	}
	spec->priority = s->priority;
	spec->max_attempts = s->max_attempts;
	spec->timeout_ms = s->timeout_ms;
	spec->schema_version = s->schema_version;
	return spec;
}

/* Enqueues the schedule's job for tick_s (its run_at), and records the
 * tick in the same commit. A refused job (a full queue, a type the queue
 * does not take) is logged; the tick still counts as done. */
static int enqueue(broker *b, cron_entry *e, int64_t tick_s, uint64_t *id)
{
	static const Nq__V1__EnqueueResult init = NQ__V1__ENQUEUE_RESULT__INIT;
	Nq__V1__EnqueueResult res = init;
	Nq__V1__JobSpec *spec = spec_of(b, e->s);
	if (!spec)
		return NQ_ENOMEM;
	spec->run_at_us = (uint64_t)tick_s * 1000000;
	int rv = broker_enqueue_one(b, spec, NULL, &res, nqi_now_us());
	if (rv != 0)
		return rv;
	if (res.status && res.status->code != NQ__V1__CODE__OK) {
		nqi_warn("NQ-CRON-REFUSED", NQI_S("schedule", e->s->name),
		    NQI_S("reason", res.status->message));
		return NQ_OK;
	}
	if (res.id)
		(void)nqi_id_parse(res.id, id);
	return NQ_OK;
}

static int fire(broker *b, cron_entry *e, int64_t tick_s)
{
	uint64_t id = 0;
	int rv = enqueue(b, e, tick_s, &id);
	if (rv != 0)
		return rv;
	e->last_s = tick_s;
	if (id)
		e->last_job = id;
	return state_put(b, e);
}

int broker_cron_run(broker *b)
{
	struct broker_cron *c = b->core.cron;
	int rv = NQ_OK;
	if (!c)
		return NQ_OK;
	if (!c->loaded || c->file != b->core.policy.file)
		rv = cron_load(b, c);
	int64_t now = cron_now_s(c);
	if (rv != 0 || now < c->due_s)
		return rv;
	for (size_t i = 0; rv == 0 && i < c->n; i++) {
		cron_entry *e = &c->e[i];
		for (int k = 0; rv == 0 && e->next_s <= now && k < CATCH_UP_MAX;
		     k++) {
			rv = fire(b, e, e->next_s);
			e->next_s = next_after(e, e->next_s);
		}
	}
	due_update(c);
	return rv;
}

uint64_t broker_cron_wait_ms(broker *b)
{
	struct broker_cron *c = b->core.cron;
	if (!c || c->due_s == INT64_MAX)
		return UINT64_MAX;
	int64_t now = cron_now_s(c);
	if (now >= c->due_s)
		return 0;
	uint64_t ahead_ms = (uint64_t)(c->due_s - now) * 1000;
	if (!c->clock_rate) /* to the second the tick starts */
		return ahead_ms - nqi_now_us() / 1000 % 1000;
	return ahead_ms / c->clock_rate + 1;
}

void broker_cron_forget(broker *b)
{
	/* The ticks the failed group enqueued are due again: no outage. */
	if (b->core.cron) {
		b->core.cron->loaded = false;
		b->core.cron->replay = true;
	}
}

int broker_cron_init(broker *b)
{
	struct broker_cron *c = calloc(1, sizeof *c);
	const char *clock = getenv("NQ_TEST_CRON_CLOCK");
	if (!c)
		return NQ_ENOMEM;
	c->due_s = INT64_MAX;
	/* For tests only: "SECONDS[xRATE]", the instant the schedules' clock
	 * starts at and how fast it runs, so that a DST date is reached at
	 * once and passed in seconds. */
	if (clock && *clock) {
		char *end;
		c->clock_start_s = strtoll(clock, &end, 10);
		c->clock_rate = *end == 'x' ? strtoull(end + 1, NULL, 10) : 1;
		c->real_start_us = nqi_now_us();
		if (!c->clock_rate)
			c->clock_rate = 1;
		nqi_warn("NQ-CRON-TEST-CLOCK",
		    NQI_I("start_s", c->clock_start_s),
		    NQI_U("rate", c->clock_rate));
	}
	b->core.cron = c;
	return NQ_OK;
}

void broker_cron_fini(broker *b)
{
	struct broker_cron *c = b->core.cron;
	if (!c)
		return;
	entries_free(c);
	free(c);
	b->core.cron = NULL;
}

/* ---- requests ---- */

static const cron_entry *entry_named(
    const struct broker_cron *c, const char *name)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (strcmp(c->e[i].s->name, name) == 0)
			return &c->e[i];
	return NULL;
}

static char *id_text(broker *b, uint64_t id)
{
	char *s = nqi_arena_alloc(b->core.arena, NQ_ID_MAX);
	if (s)
		nqi_id_format(id, s);
	return s;
}

static Nq__V1__CronSchedule *row_of(broker *b, const cron_entry *e)
{
	static const Nq__V1__CronSchedule init = NQ__V1__CRON_SCHEDULE__INIT;
	Nq__V1__CronSchedule *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__Job *job = NULL;
	if (!r)
		return NULL;
	*r = init;
	r->name = (char *)e->s->name;
	r->cron = (char *)e->s->cron;
	r->zone = (char *)e->s->zone;
	r->queue = (char *)e->s->queue;
	r->type = (char *)e->s->type;
	r->missed = e->s->missed == NQI_CRON_MISSED_ONCE ? "once" : "skip";
	r->last_tick_us = (uint64_t)e->last_s * 1000000;
	if (e->next_s != INT64_MAX)
		r->next_tick_us = (uint64_t)e->next_s * 1000000;
	if (e->last_job) {
		if (!(r->last_job_id = id_text(b, e->last_job)))
			return NULL;
		if (broker_job_read(b, e->last_job, &job) == 0)
			r->last_job_state = job->state;
	}
	return r;
}

int broker_on_cron_list(broker *b, broker_op *op)
{
	static const Nq__V1__CronListReply init = NQ__V1__CRON_LIST_REPLY__INIT;
	struct broker_cron *c = b->core.cron;
	int rv = c && (!c->loaded || c->file != b->core.policy.file)
	             ? cron_load(b, c)
	             : NQ_OK;
	size_t n = c ? c->n : 0;
	Nq__V1__CronListReply *rep =
	    nqi_arena_alloc(b->core.arena, sizeof *rep);
	Nq__V1__CronSchedule **rows =
	    nqi_arena_alloc(b->core.arena, (n ? n : 1) * sizeof *rows);
	if (rv != 0 || !rep || !rows)
		return rv ? rv : NQ_ENOMEM;
	*rep = init;
	for (size_t i = 0; i < n; i++)
		if (!(rows[i] = row_of(b, &c->e[i])))
			return NQ_ENOMEM;
	rep->n_schedules = n;
	rep->schedules = rows;
	return BROKER_ANSWER(b, op, CRON_LIST, cron_list, rep);
}

int broker_on_cron_trigger(broker *b, broker_op *op)
{
	static const Nq__V1__CronTriggerReply init =
	    NQ__V1__CRON_TRIGGER_REPLY__INIT;
	struct broker_cron *c = b->core.cron;
	const char *name = op->req->cron_trigger->name;
	uint64_t id = 0;
	int rv = c && (!c->loaded || c->file != b->core.policy.file)
	             ? cron_load(b, c)
	             : NQ_OK;
	cron_entry *e = (cron_entry *)entry_named(c, name);
	if (rv != 0)
		return rv;
	if (!e) {
		broker_set_status(b, op, NQ_ENOTFOUND,
		    "no schedule named '%.128s' in the queues file", name);
		broker_finish(b, op);
		return NQ_OK;
	}
	if ((rv = enqueue(b, e, cron_now_s(c), &id)) != 0)
		return rv;
	if (!id) {
		broker_set_status(b, op, NQ_EPRECOND,
		    "schedule %s: its queue refused the job (see the log)",
		    name);
		broker_finish(b, op);
		return NQ_OK;
	}
	e->last_job = id;
	if ((rv = state_put(b, e)) != 0)
		return rv;
	Nq__V1__CronTriggerReply *rep =
	    nqi_arena_alloc(b->core.arena, sizeof *rep);
	if (!rep || !(id_text(b, id)))
		return NQ_ENOMEM;
	*rep = init;
	rep->id = id_text(b, id);
	return BROKER_ANSWER(b, op, CRON_TRIGGER, cron_trigger, rep);
}
