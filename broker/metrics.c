/*
 * What the broker tells about itself: a snapshot of every queue taken by the
 * core each sweep (so readers never touch core state), the once-a-second
 * "metrics" topic (msgpack), and the HTTP endpoints /metrics, /healthz and
 * /readyz.
 */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "broker.h"
#include "nqi/http.h"
#include "nqi/log.h"
#include "nqi/util.h"

#define METRICS_PERIOD_MS 1000
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Enqueue time of the oldest job waiting in the ready heap. Ids are taken
 * from the clock at enqueue, so the smallest id is the oldest job. */
static void oldest_cb(const broker_ready *e, void *arg)
{
	uint64_t *min = arg;
	if (!*min || e->id < *min)
		*min = e->id;
}

uint64_t broker_oldest_ready_us(const broker_queue *q)
{
	uint64_t min = 0;
	broker_ready_each(q, oldest_cb, &min);
	return min;
}

/* Free slots of workers waiting in long-poll fetches for this queue. */
static uint64_t idle_slots(const broker *b, const char *queue)
{
	uint64_t n = 0;
	for (const broker_op *op = b->core.parked_fetch; op; op = op->next) {
		const Nq__V1__FetchRequest *f = op->req->fetch;
		for (size_t i = 0; i < f->n_queues; i++)
			if (strcmp(f->queues[i], queue) == 0)
				n += f->max_jobs ? f->max_jobs : 1;
	}
	return n;
}

/* Puts group gr among the largest ones of rows (in descending order of
 * ready jobs, n of them), or adds it to "other" (slot BROKER_TOP_GROUPS):
 * true when a group went to "other". */
static bool top_group(broker_group_row *rows, const broker_group *gr, size_t *n)
{
	size_t at = *n;
	bool folded = at == BROKER_TOP_GROUPS;
	if (folded) {
		if (gr->nheap <= rows[at - 1].ready) {
			rows[at].ready += gr->nheap;
			rows[at].leased += gr->leased;
			return true;
		}
		rows[at].ready += rows[at - 1].ready;
		rows[at].leased += rows[at - 1].leased;
		at--; /* the smallest named one joins "other" */
	} else {
		(*n)++;
	}
	for (; at > 0 && rows[at - 1].ready < gr->nheap; at--)
		rows[at] = rows[at - 1];
	snprintf(rows[at].key, sizeof rows[at].key, "%s",
	    gr->key[0] ? gr->key : "(none)");
	rows[at].ready = gr->nheap;
	rows[at].leased = gr->leased;
	return folded;
}

size_t broker_top_groups(const broker_queue *q,
    broker_group_row rows[BROKER_TOP_GROUPS + 1], bool *other)
{
	size_t n = 0;
	*other = false;
	rows[BROKER_TOP_GROUPS].ready = 0;
	rows[BROKER_TOP_GROUPS].leased = 0;
	for (size_t i = 0; q->gate.grouped && i < q->gate.ngroups; i++)
		if (q->gate.groups[i].nheap)
			*other |= top_group(rows, &q->gate.groups[i], &n);
	snprintf(rows[BROKER_TOP_GROUPS].key,
	    sizeof rows[BROKER_TOP_GROUPS].key, "other");
	return n;
}

void broker_latency_gauges(broker_queue *q, uint64_t now_us)
{
	nqi_lat_tick(&q->wait, now_us);
	nqi_lat_tick(&q->run, now_us);
	q->wait_p50_us = nqi_lat_quantile_us(&q->wait, 0.5);
	q->wait_p99_us = nqi_lat_quantile_us(&q->wait, 0.99);
	q->wait_window_jobs = nqi_lat_recent(&q->wait);
	q->run_p50_us = nqi_lat_quantile_us(&q->run, 0.5);
	q->run_p99_us = nqi_lat_quantile_us(&q->run, 0.99);
	q->run_window_jobs = nqi_lat_recent(&q->run);
}

static void snap_queue(broker *b, broker_queue *q, broker_qsnap *s, bool full)
{
	snprintf(s->name, sizeof s->name, "%s", q->name);
	broker_gate_gauges(b, q);
	/* quantiles read the whole histogram: once a second */
	if (full)
		broker_latency_gauges(q, nqi_now_us());
#define SNAP_COPY_(name, kind, ...) NQI_QF_CORE_##kind(s->name = q->name;)
	NQI_QUEUE_FIELDS(SNAP_COPY_)
#undef SNAP_COPY_
	/* Counters show what was committed: a group still open may fail. */
	if (q->saved_group == b->core.group) {
#define SNAP_SAVED_(name, kind, ...)                                           \
	BROKER_QF_TOTAL_##kind(s->name = q->saved.name;)
		NQI_QUEUE_FIELDS(SNAP_SAVED_)
#undef SNAP_SAVED_
	}
	s->idle_slots = idle_slots(b, q->name);
	s->ngroups = broker_top_groups(q, s->groups, &s->group_other);
	s->paused = q->paused;
	s->latency = q->latency;
	s->wait_total.count = q->wait.count;
	s->wait_total.sum_us = q->wait.sum_us;
	s->run_total.count = q->run.count;
	s->run_total.sum_us = q->run.sum_us;
	if (full)
		s->oldest_ready_us = q->ready ? broker_oldest_ready_us(q) : 0;
}

/* Copies what readers need out of the core's state. Runs on the core
 * thread each sweep; the oldest-ready scan only once a second. */
void broker_metrics_snapshot(broker *b, bool full)
{
	size_t n = b->core.index.nqueues;
	pthread_mutex_lock(&b->snap.mu);
	if (n > b->snap.cap) {
		broker_qsnap *v = realloc(b->snap.queues, n * sizeof *v);
		if (!v) {
			pthread_mutex_unlock(&b->snap.mu);
			return;
		}
		memset(v + b->snap.cap, 0, (n - b->snap.cap) * sizeof *v);
		b->snap.queues = v;
		b->snap.cap = n;
	}
	for (size_t i = 0; i < n; i++)
		snap_queue(
		    b, &b->core.index.queues[i], &b->snap.queues[i], full);
	b->snap.n = n;
	b->snap.commits = nqi_store_commits(b->store);
	b->snap.commit_failures = nqi_store_commit_failures(b->store);
	b->snap.jobs_stored = b->core.jobs_stored;
	b->snap.events_published = b->ev.published;
	b->snap.events_dropped = b->ev.dropped;
	if (b->net.api_rep)
		nqi_rep_get_counts(b->net.api_rep, &b->snap.api);
	if (b->net.work_rep)
		nqi_rep_get_counts(b->net.work_rep, &b->snap.work);
	b->snap.results_conns = (uint64_t)atomic_load(&b->net.results_cap.open);
	b->snap.results_refused = atomic_load(&b->net.results_cap.refused);
	pthread_mutex_unlock(&b->snap.mu);
}

/* ---- the metrics topic ---- */

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	msgpack_pack_str(pk, strlen(k));
	msgpack_pack_str_body(pk, k, strlen(k));
	msgpack_pack_uint64(pk, v);
}

static void pack_kv_f64(msgpack_packer *pk, const char *k, double v)
{
	msgpack_pack_str(pk, strlen(k));
	msgpack_pack_str_body(pk, k, strlen(k));
	msgpack_pack_double(pk, v);
}

static double dead_ratio(const broker_qsnap *s)
{
	return nqi_dead_letter_ratio(s->succeeded_total, s->dead_total);
}

static double rate(uint64_t now, uint64_t before, double secs)
{
	return secs > 0 && now >= before ? (double)(now - before) / secs : 0;
}

/* A row's value in a snapshot. */
static uint64_t snap_value(const broker_qsnap *s, size_t row)
{
	static const size_t offset[] = {
#define SNAP_OFFSET_(name, ...) offsetof(broker_qsnap, name),
	    NQI_QUEUE_FIELDS(SNAP_OFFSET_)
#undef SNAP_OFFSET_
	};
	return *(const uint64_t *)((const char *)s + offset[row]);
}

/* Entries of a queue's map from the rows: two per TOTAL row with a key
 * (value and rate), one per other row with a key. */
static uint32_t rows_map_size(void)
{
	const nqi_queue_field *f = nqi_queue_fields();
	uint32_t n = 0;
	for (size_t i = 0; i < NQI_QF_COUNT; i++)
		if (f[i].key[0])
			n += f[i].kind == NQI_QF_TOTAL ? 2 : 1;
	return n;
}

/* Rows are written counters first, then the gauges the core keeps, then
 * those of the snapshot; in list order within each. */
static const nqi_qf_kind kind_order[] = {
    NQI_QF_TOTAL, NQI_QF_STATE, NQI_QF_GAUGE, NQI_QF_SNAP};

/* The counters, their rates, then the gauges. */
static void pack_rows(msgpack_packer *pk, broker_qsnap *s, double secs)
{
	const nqi_queue_field *f = nqi_queue_fields();
	char key[64];
	for (size_t k = 0; k < LEN(kind_order); k++) {
		for (size_t i = 0; i < NQI_QF_COUNT; i++) {
			if (f[i].key[0] && f[i].kind == kind_order[k])
				pack_kv_u64(pk, f[i].key, snap_value(s, i));
		}
		for (size_t i = 0; k == 0 && i < NQI_QF_COUNT; i++) {
			if (!f[i].key[0] || f[i].kind != NQI_QF_TOTAL)
				continue;
			snprintf(key, sizeof key, "%s_per_s", f[i].key);
			pack_kv_f64(
			    pk, key, rate(snap_value(s, i), s->prev[i], secs));
		}
	}
	for (size_t i = 0; i < NQI_QF_COUNT; i++)
		s->prev[i] = snap_value(s, i);
}

/* The groups a snapshot names ("other" last, when it counts any), and
 * where the i-th of them is. */
static size_t snap_ngroups(const broker_qsnap *s)
{
	return s->ngroups + s->group_other;
}

static size_t snap_group_at(const broker_qsnap *s, size_t i)
{
	return i < s->ngroups ? i : BROKER_TOP_GROUPS;
}

/* "groups": the ready jobs of the largest groups, by name. */
static void pack_groups(msgpack_packer *pk, const broker_qsnap *s)
{
	msgpack_pack_str(pk, 6);
	msgpack_pack_str_body(pk, "groups", 6);
	msgpack_pack_map(pk, (uint32_t)snap_ngroups(s));
	for (size_t i = 0; i < snap_ngroups(s); i++) {
		size_t at = snap_group_at(s, i);
		pack_kv_u64(pk, s->groups[at].key, s->groups[at].ready);
	}
}

/* A queue's map: the rows, then what the snapshot derives. */
static void pack_queue(
    msgpack_packer *pk, broker_qsnap *s, double secs, uint64_t now_us)
{
	const struct {
		const char *key;
		double v;
		bool count; /* n is packed, as an integer */
		uint64_t n;
	} derived[] = {
	    {.key = "oldest_ready_age_s",
	        .v = s->oldest_ready_us && now_us > s->oldest_ready_us
	                 ? (double)(now_us - s->oldest_ready_us) / 1e6
	                 : 0},
	    {.key = "latency_p50_s",
	        .v = nqi_prom_hist_quantile(s->latency, 0.5)},
	    {.key = "latency_p90_s",
	        .v = nqi_prom_hist_quantile(s->latency, 0.9)},
	    {.key = "latency_p99_s",
	        .v = nqi_prom_hist_quantile(s->latency, 0.99)},
	    {.key = "latency_count",
	        .count = true,
	        .n = nqi_prom_hist_count(s->latency)},
	    {.key = "dead_letter_ratio", .v = dead_ratio(s)},
	};
	msgpack_pack_str(pk, strlen(s->name));
	msgpack_pack_str_body(pk, s->name, strlen(s->name));
	msgpack_pack_map(pk, rows_map_size() + (uint32_t)LEN(derived) + 1);
	pack_rows(pk, s, secs);
	pack_groups(pk, s);
	for (size_t i = 0; i < LEN(derived); i++) {
		if (derived[i].count)
			pack_kv_u64(pk, derived[i].key, derived[i].n);
		else
			pack_kv_f64(pk, derived[i].key, derived[i].v);
	}
}

/* Publishes the "metrics" topic; the core calls it once a second. */
void broker_metrics_publish(broker *b)
{
	uint64_t now = nqi_mono_ms(), now_us = nqi_now_us();
	double secs = b->core.metrics_last_ms
	                  ? (double)(now - b->core.metrics_last_ms) / 1000
	                  : 0;
	b->core.metrics_last_ms = now;
	if (!b->ev.on)
		return;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pthread_mutex_lock(&b->snap.mu);
	msgpack_pack_map(&pk, 3);
	pack_kv_u64(&pk, "at_us", now_us);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "broker", 6);
	msgpack_pack_map(&pk, 4);
	pack_kv_u64(&pk, "commits", b->snap.commits);
	pack_kv_u64(&pk, "jobs_stored", b->snap.jobs_stored);
	pack_kv_u64(&pk, "events_published", b->snap.events_published);
	pack_kv_u64(&pk, "events_dropped", b->snap.events_dropped);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "queues", 6);
	msgpack_pack_map(&pk, (uint32_t)b->snap.n);
	for (size_t i = 0; i < b->snap.n; i++)
		pack_queue(&pk, &b->snap.queues[i], secs, now_us);
	pthread_mutex_unlock(&b->snap.mu);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, 0) == 0 &&
	    nng_msg_append(msg, "metrics", 7) == 0 &&
	    nng_msg_append(msg, sb.data, sb.size) == 0) {
		if (nng_sendmsg(b->ev.sock, msg, NNG_FLAG_NONBLOCK) != 0)
			nng_msg_free(msg);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Runs from the sweep: a snapshot each tick, the topic each second. */
void broker_metrics_tick(broker *b)
{
	uint64_t now = nqi_mono_ms();
	bool second = now >= b->core.metrics_next_ms;
	broker_metrics_snapshot(b, second);
	if (second) {
		b->core.metrics_next_ms = now + METRICS_PERIOD_MS;
		broker_metrics_publish(b);
		/* Once a second: pages of payloads read since are not kept
		 * mapped in the broker (a backlog lives on disk). */
		nqi_store_trim(b->store, 64u << 20);
	}
}

/* ---- Prometheus ---- */

/* One family of a row of NQI_QUEUE_FIELDS: a sample per queue. */
static int prom_queue_row(nqi_prom *p, const broker *b, size_t row)
{
	const nqi_queue_field *f = &nqi_queue_fields()[row];
	nqi_prom_type type =
	    f->kind == NQI_QF_TOTAL ? NQI_PROM_COUNTER : NQI_PROM_GAUGE;
	int rv = nqi_prom_family(p, f->prom, type, f->help);
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++) {
		const broker_qsnap *s = &b->snap.queues[i];
		rv = nqi_prom_sample(p, f->prom,
		    (const char *const[]){"queue", s->name, NULL},
		    (double)snap_value(s, row));
	}
	return rv;
}

static int prom_queue_rows(nqi_prom *p, const broker *b)
{
	const nqi_queue_field *f = nqi_queue_fields();
	int rv = 0;
	for (size_t k = 0; k < LEN(kind_order); k++)
		for (size_t i = 0; rv == 0 && i < NQI_QF_COUNT; i++)
			if (f[i].prom[0] && f[i].kind == kind_order[k])
				rv = prom_queue_row(p, b, i);
	return rv;
}

static int prom_queue_derived(nqi_prom *p, const broker *b, uint64_t now_us)
{
	int rv = nqi_prom_family(p, "nq_queue_oldest_ready_age_seconds",
	    NQI_PROM_GAUGE, "Age of the oldest ready job (0 when none).");
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++) {
		const broker_qsnap *s = &b->snap.queues[i];
		double age = s->oldest_ready_us && now_us > s->oldest_ready_us
		                 ? (double)(now_us - s->oldest_ready_us) / 1e6
		                 : 0;
		rv = nqi_prom_sample(p, "nq_queue_oldest_ready_age_seconds",
		    (const char *const[]){"queue", s->name, NULL}, age);
	}
	if (rv == 0)
		rv = nqi_prom_family(p, "nq_queue_paused", NQI_PROM_GAUGE,
		    "1 while the queue is paused.");
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++)
		rv = nqi_prom_sample(p, "nq_queue_paused",
		    (const char *const[]){
		        "queue", b->snap.queues[i].name, NULL},
		    b->snap.queues[i].paused);
	if (rv == 0)
		rv = nqi_prom_family(p, "nq_queue_dead_letter_ratio",
		    NQI_PROM_GAUGE, "Dead jobs / finished jobs since start.");
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++)
		rv = nqi_prom_sample(p, "nq_queue_dead_letter_ratio",
		    (const char *const[]){
		        "queue", b->snap.queues[i].name, NULL},
		    dead_ratio(&b->snap.queues[i]));
	if (rv == 0)
		rv = nqi_prom_family(p, "nq_job_latency_seconds",
		    NQI_PROM_HISTOGRAM, "Enqueue to success, per job.");
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++)
		rv = nqi_prom_histogram(p, "nq_job_latency_seconds",
		    (const char *const[]){
		        "queue", b->snap.queues[i].name, NULL},
		    b->snap.queues[i].latency);
	return rv;
}

/* The quantiles of the latency summaries, as the wait_p* and run_p* rows
 * of QueueStats carry them. */
static const double summary_q[] = {0.5, 0.99};

/* A latency summary of each queue: its quantiles from the rows at p50 and
 * p50 + 1, the window's jobs from the next row (NaN when the window holds no
 * job), count and sum since start from its wait_total or run_total. */
static int prom_latency(nqi_prom *p, const broker *b, const char *name,
    const char *help, size_t p50, bool run)
{
	int rv = nqi_prom_family(p, name, NQI_PROM_SUMMARY, help);
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++) {
		const broker_qsnap *s = &b->snap.queues[i];
		const struct broker_lat_total *t =
		    run ? &s->run_total : &s->wait_total;
		bool none = snap_value(s, p50 + LEN(summary_q)) == 0;
		double v[LEN(summary_q)];
		for (size_t k = 0; k < LEN(summary_q); k++)
			v[k] =
			    none ? NAN : (double)snap_value(s, p50 + k) / 1e6;
		nqi_prom_summary_data d = {.quantiles = summary_q,
		    .values = v,
		    .nquantiles = LEN(summary_q),
		    .sum = (double)t->sum_us / 1e6,
		    .count = t->count};
		rv = nqi_prom_summary(
		    p, name, (const char *const[]){"queue", s->name, NULL}, &d);
	}
	return rv;
}

static int prom_latencies(nqi_prom *p, const broker *b)
{
	int rv = prom_latency(p, b, "nq_job_wait_seconds",
	    "Ready to leased, per job; quantiles of the last 30 to 60 s.",
	    NQI_QF_wait_p50_us, false);
	if (rv == 0)
		rv = prom_latency(p, b, "nq_job_run_seconds",
		    "Lease to success or failure, per attempt; quantiles of "
		    "the last 30 to 60 s.",
		    NQI_QF_run_p50_us, true);
	return rv;
}

/* nq_queue_group_ready: a sample per named group of each queue. */
static int prom_queue_groups(nqi_prom *p, const broker *b)
{
	const char *name = "nq_queue_group_ready";
	int rv = nqi_prom_family(p, name, NQI_PROM_GAUGE,
	    "Ready jobs of the largest groups of a queue with fairness "
	    "(5, then group=\"other\").");
	for (size_t i = 0; rv == 0 && i < b->snap.n; i++) {
		const broker_qsnap *s = &b->snap.queues[i];
		for (size_t k = 0; rv == 0 && k < snap_ngroups(s); k++) {
			size_t at = snap_group_at(s, k);
			rv = nqi_prom_sample(p, name,
			    (const char *const[]){"queue", s->name, "group",
			        s->groups[at].key, NULL},
			    (double)s->groups[at].ready);
		}
	}
	return rv;
}

static int prom_broker(nqi_prom *p, const broker *b)
{
	struct {
		const char *name;
		nqi_prom_type type;
		const char *help;
		double v;
	} rows[] = {
	    {"nq_store_commits_total", NQI_PROM_COUNTER,
	        "Store commits (each one fsync with --sync=always).",
	        (double)b->snap.commits},
	    {"nq_store_commit_failures_total", NQI_PROM_COUNTER,
	        "Store commits that failed (every request of the group "
	        "refused).",
	        (double)b->snap.commit_failures},
	    {"nq_events_published_total", NQI_PROM_COUNTER,
	        "Job events handed to the PUB socket.",
	        (double)b->snap.events_published},
	    {"nq_events_dropped_total", NQI_PROM_COUNTER,
	        "Job events not published (socket refused, no memory).",
	        (double)b->snap.events_dropped},
	    {"nq_jobs_stored", NQI_PROM_GAUGE,
	        "Job records in the store, finished ones included.",
	        (double)b->snap.jobs_stored},
	    {"nq_broker_ready", NQI_PROM_GAUGE,
	        "1 while the broker can serve (store commits).",
	        b->in.ready ? 1 : 0},
	    {"nq_api_parked", NQI_PROM_GAUGE,
	        "Waits parked on the api socket now.",
	        (double)b->snap.api.parked},
	    {"nq_work_parked", NQI_PROM_GAUGE,
	        "Fetches parked on the work socket now.",
	        (double)b->snap.work.parked},
	    {"nq_parked_refused_total", NQI_PROM_COUNTER,
	        "Waits and fetches refused: --max-parked were parked.",
	        (double)(b->snap.api.park_refused + b->snap.work.park_refused)},
	    {"nq_requests_waiting", NQI_PROM_GAUGE,
	        "Requests waiting for a turn of their connection "
	        "(--conn-requests).",
	        (double)(b->snap.api.waiting + b->snap.work.waiting)},
	    {"nq_requests_dropped_total", NQI_PROM_COUNTER,
	        "Requests dropped unanswered: --conn-backlog of their "
	        "connection waited already.",
	        (double)(b->snap.api.dropped + b->snap.work.dropped)},
	    {"nq_replies_unsent_total", NQI_PROM_COUNTER,
	        "Replies dropped: not taken within --reply-timeout.",
	        (double)(b->snap.api.unsent + b->snap.work.unsent)},
	};
	int rv = 0;
	for (size_t i = 0; rv == 0 && i < sizeof rows / sizeof *rows; i++) {
		rv = nqi_prom_family(
		    p, rows[i].name, rows[i].type, rows[i].help);
		if (rv == 0)
			rv = nqi_prom_sample(p, rows[i].name, NULL, rows[i].v);
	}
	return rv;
}

/* What --max-connections and --conn-idle-timeout do, per socket. */
static int prom_conns(nqi_prom *p, const broker *b)
{
	const struct broker_snap *s = &b->snap;
	const nqi_conn_counts c[] = {
	    {"api", s->api.connections, s->api.conns_refused,
	        s->api.idle_closed, true, s->api.evicted, true},
	    {"work", s->work.connections, s->work.conns_refused,
	        s->work.idle_closed, true, s->work.evicted, true},
	    {"results", s->results_conns, s->results_refused, 0, false, 0,
	        false},
	};
	return nqi_conncap_prom(p, c, sizeof c / sizeof *c);
}

static int metrics_cb(nqi_prom *p, void *arg)
{
	broker *b = arg;
	pthread_mutex_lock(&b->snap.mu);
	int rv = prom_broker(p, b);
	if (rv == 0)
		rv = prom_conns(p, b);
	if (rv == 0)
		rv = prom_queue_rows(p, b);
	if (rv == 0)
		rv = prom_queue_derived(p, b, nqi_now_us());
	if (rv == 0)
		rv = prom_queue_groups(p, b);
	if (rv == 0)
		rv = prom_latencies(p, b);
	if (rv == 0)
		rv = nqi_gcommit_prom(p, &b->in.gc, "nq_core_seconds_total");
	pthread_mutex_unlock(&b->snap.mu);
	return rv == 0 ? broker_sse_metrics(b, p) : rv;
}

static bool ready_cb(void *arg, char *why, size_t len)
{
	broker *b = arg;
	pthread_mutex_lock(&b->in.mu);
	bool ready = b->in.ready && !b->in.stopping;
	const char *reason = b->in.stopping ? "draining: the broker is stopping"
	                                    : "store cannot commit";
	pthread_mutex_unlock(&b->in.mu);
	if (!ready)
		snprintf(why, len, "%s", reason);
	return ready;
}

int broker_http_start(broker *b, char *err, size_t errlen)
{
	if (!b->cfg.http_addr || !b->cfg.http_addr[0])
		return NQ_OK;
	nqi_tls_opts tls = {b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca};
	nqi_http_opts o = {
	    .addr = b->cfg.http_addr,
	    .metrics_cb = metrics_cb,
	    .ready_cb = ready_cb,
	    .arg = b,
	    .tls = strncmp(b->cfg.http_addr, "https://", 8) == 0 ? &tls : NULL,
	    .max_connections = (unsigned)b->cfg.http_max_connections,
	    .timeout_ms = b->cfg.http_timeout_ms,
	};
	int rv = broker_api_start(b, &o);
	if (rv != NQ_OK) {
		snprintf(err, errlen, "HTTP API: out of memory");
		return rv;
	}
	return nqi_http_start(&b->net.http, &o, err, errlen);
}

void broker_http_stop(broker *b)
{
	nqi_http_stop(b->net.http);
	b->net.http = NULL;
	broker_api_stop(b);
}
