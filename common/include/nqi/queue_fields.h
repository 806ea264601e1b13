/*
 * The per-queue counters, gauges and settings of the broker, each defined
 * once. Everything else is derived from these lists: the members of
 * broker_queue and broker_qsnap, the stats reply, the Prometheus rows, the
 * metrics topic's queue map and the columns of `nqctl stats` and `nqctl top`.
 *
 * Adding a counter: a row in NQI_QUEUE_FIELDS, a uint64 field of the same
 * name in nq.v1.QueueStats (api.proto; the broker does not build without
 * it, and test_broker_embed fails on a field without a row), and the code
 * that moves it (q->name++ on the core thread). Adding runtime state: a row
 * in NQI_QUEUE_SETTINGS, a field of the same name in nq.v1.QueueConfig
 * (job.proto), and the code that uses it (q->name). A policy key (a limit
 * or default someone configures) is a row of NQI_POLICY_KEYS instead.
 */
#ifndef NQI_QUEUE_FIELDS_H
#define NQI_QUEUE_FIELDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * X(name, kind, prom, key, stats_head, top_head, help)
 *
 * name:  member of broker_queue and broker_qsnap; field of nq.v1.QueueStats
 *        (the name libnq's nq_queue_stats_get and `nqctl --json stats` use).
 * kind:  STATE  jobs of the queue in some condition; recounted from the
 *               store at recovery. A gauge.
 *        TOTAL  a counter since the broker started. The metrics topic
 *               also carries its rate, as key "_per_s".
 *        GAUGE  kept by the core but not a count of stored jobs: set
 *               by broker_gate_gauges (broker/work.c) for each snapshot
 *               and stats reply, the latency ones by
 *               broker_latency_gauges (broker/metrics.c) for each stats
 *               reply and once a second. Not recounted.
 *        SNAP   computed when the snapshot is taken, by snap_queue in
 *               broker/metrics.c (not kept by the core, not in
 *               QueueStats). A gauge.
 * prom:  Prometheus metric, label queue; "" for none. help is its HELP.
 * key:   key in the "metrics" topic's map of the queue; "" for none.
 * stats_head, top_head: column of `nqctl stats` / `nqctl top` ("" for
 *        none). `nqctl stats` shows its columns in the order of QueueStats;
 *        `nqctl top` shows gauges in this order, then the oldest ready job,
 *        then the rates of TOTAL rows in this order.
 * Every value counts jobs (idle_slots: worker slots; the GAUGE rows say
 * what they count; *_us are microseconds).
 */
#define NQI_QUEUE_FIELDS(X)                                                    \
	X(ready, STATE, "nq_queue_ready", "ready", "READY", "READY",           \
	    "Jobs ready to run now.")                                          \
	X(scheduled, STATE, "nq_queue_scheduled", "scheduled", "SCHEDULED",    \
	    "SCHED", "Jobs waiting for their time (delay or retry backoff).")  \
	X(leased, STATE, "nq_queue_leased", "leased", "LEASED", "LEASED",      \
	    "Jobs running: leased to a worker (busy worker slots).")           \
	X(idle_slots, SNAP, "nq_queue_idle_slots", "idle_slots", "", "IDLE",   \
	    "Free worker slots waiting in long-poll fetches for this queue.")  \
	X(dead_pending, STATE, "nq_queue_dead_pending", "dead_pending",        \
	    "DLQ-PENDING", "DLQ-WAIT",                                         \
	    "Dead jobs waiting to be handed to nq-dlq.")                       \
	X(waiting, STATE, "nq_queue_waiting", "waiting", "WAITING", "WAIT",    \
	    "Jobs waiting for their parents to succeed (depends_on).")         \
	X(succeeded, STATE, "nq_queue_succeeded_kept", "", "SUCCEEDED", "",    \
	    "Succeeded jobs still readable (within result_ttl).")              \
	X(dead, STATE, "", "", "DEAD", "", "Dead jobs still stored.")          \
	X(canceled, STATE, "", "", "CANCELED", "",                             \
	    "Canceled jobs still readable (within result_ttl).")               \
	X(expired, STATE, "", "", "EXPIRED", "",                               \
	    "Expired jobs still readable (within result_ttl).")                \
	X(enqueued_total, TOTAL, "nq_jobs_enqueued_total", "enqueued",         \
	    "ENQUEUED", "ENQ/S",                                               \
	    "Jobs accepted by enqueue since the broker started.")              \
	X(succeeded_total, TOTAL, "nq_jobs_succeeded_total", "succeeded", "",  \
	    "DONE/S", "Jobs that succeeded since the broker started.")         \
	X(failed_total, TOTAL, "nq_jobs_failed_total", "failed", "FAILED",     \
	    "FAIL/S",                                                          \
	    "Failed attempts (handler error, lease lapse, lost worker).")      \
	X(dead_total, TOTAL, "nq_jobs_dead_total", "dead", "", "DEAD/S",       \
	    "Jobs that failed for good since the broker started.")             \
	X(dlq_handed_total, TOTAL, "nq_dlq_handed_total", "", "", "",          \
	    "Dead jobs nq-dlq confirmed since the broker started.")            \
	X(in_flight_limit, GAUGE, "nq_queue_in_flight_limit",                  \
	    "in_flight_limit", "LIMIT", "LIMIT",                               \
	    "max_in_flight of the queue (0: none); in flight is "              \
	    "nq_queue_leased.")                                                \
	X(tokens, GAUGE, "nq_queue_tokens", "tokens", "TOKENS", "TOKENS",      \
	    "Whole rate tokens the queue holds now (0 without a rate).")       \
	X(breaker_state, GAUGE, "nq_queue_breaker_state", "breaker_state",     \
	    "BREAKER", "BRK",                                                  \
	    "Circuit breaker: 0 closed, 1 half-open (a probe), 2 open.")       \
	X(throttled, GAUGE, "nq_queue_throttled", "throttled", "THROTTLED",    \
	    "THROTL",                                                          \
	    "Ready jobs a limit holds back now (max_in_flight, rate, the "     \
	    "breaker, max_in_flight_per_group).")                              \
	X(wait_p50_us, GAUGE, "", "wait_p50_us", "WAIT-P50-US", "",            \
	    "Median wait from ready to leased of recent jobs (the last 30 to " \
	    "60 s), microseconds; 0 when none.")                               \
	X(wait_p99_us, GAUGE, "", "wait_p99_us", "WAIT-P99-US", "WAIT99US",    \
	    "99th percentile of the wait of recent jobs, microseconds.")       \
	X(wait_window_jobs, GAUGE, "", "wait_window_jobs", "", "",             \
	    "Jobs leased in the window the wait quantiles are of.")            \
	X(run_p50_us, GAUGE, "", "run_p50_us", "RUN-P50-US", "",               \
	    "Median run from lease to success or failure of recent jobs, "     \
	    "microseconds; 0 when none.")                                      \
	X(run_p99_us, GAUGE, "", "run_p99_us", "RUN-P99-US", "RUN99US",        \
	    "99th percentile of the run of recent jobs, microseconds.")        \
	X(run_window_jobs, GAUGE, "", "run_window_jobs", "", "",               \
	    "Attempts that ended in the window the run quantiles are of.")

/*
 * X(name, type): runtime state of a queue, a member of broker_queue, stored
 * as the field of the same name of nq.v1.QueueConfig in the broker's
 * "queues" database and loaded at recovery. A queue's policy (limits,
 * defaults, accepted types) is not here: its keys are NQI_POLICY_KEYS
 * (nqi/policy.h), stored as QueueConfig's policy entries.
 */
#define NQI_QUEUE_SETTINGS(X) X(paused, bool)

/* Expand to x when a row of that kind is kept by the core (a member of
 * broker_queue and a field of QueueStats), else to nothing. */
#define NQI_QF_CORE_STATE(x) x
#define NQI_QF_CORE_TOTAL(x) x
#define NQI_QF_CORE_GAUGE(x) x
#define NQI_QF_CORE_SNAP(x)
/* Expand to x when recovery recounts a row of that kind from the store. */
#define NQI_QF_RECOUNT_STATE(x) x
#define NQI_QF_RECOUNT_TOTAL(x)
#define NQI_QF_RECOUNT_GAUGE(x)
#define NQI_QF_RECOUNT_SNAP(x)

typedef enum nqi_qf_kind {
	NQI_QF_STATE,
	NQI_QF_TOTAL,
	NQI_QF_GAUGE,
	NQI_QF_SNAP,
} nqi_qf_kind;

/* Index of each row: NQI_QF_ready, ... */
enum {
#define NQI_QF_INDEX_(name, ...) NQI_QF_##name,
	NQI_QUEUE_FIELDS(NQI_QF_INDEX_)
#undef NQI_QF_INDEX_
	    NQI_QF_COUNT
};

typedef struct nqi_queue_field {
	const char *name;
	nqi_qf_kind kind;
	const char *prom, *key, *stats_head, *top_head, *help;
} nqi_queue_field;

/* The rows of NQI_QUEUE_FIELDS, in order; NQI_QF_COUNT of them. */
static inline const nqi_queue_field *nqi_queue_fields(void)
{
#define NQI_QF_ROW_(name, kind, prom, key, sh, th, help)                       \
	{#name, NQI_QF_##kind, prom, key, sh, th, help},
	static const nqi_queue_field rows[] = {NQI_QUEUE_FIELDS(NQI_QF_ROW_)};
#undef NQI_QF_ROW_
	return rows;
}

/* The row of that name, or NULL. */
static inline const nqi_queue_field *nqi_queue_field_find(const char *name)
{
	const nqi_queue_field *f = nqi_queue_fields();
	for (size_t i = 0; i < NQI_QF_COUNT; i++)
		if (strcmp(f[i].name, name) == 0)
			return &f[i];
	return NULL;
}

/* Dead jobs / finished jobs (succeeded + dead) since the broker started; 0
 * when nothing finished yet. */
static inline double nqi_dead_letter_ratio(
    uint64_t succeeded_total, uint64_t dead_total)
{
	uint64_t finished = succeeded_total + dead_total;
	return finished ? (double)dead_total / (double)finished : 0;
}

#endif
