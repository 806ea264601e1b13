/*
 * Queue policies in the broker (policy.c): each queue's effective policy,
 * resolved from the keys of NQI_POLICY_KEYS (nqi/policy.h), each from the
 * first of: the runtime value (`nqctl queue set`, stored in the queue's
 * QueueConfig), the queues file's entry of the queue, its "*" entry, the
 * broker's flags and the key's default.
 *
 * Everything here is the core thread's. Whoever obeys a key reads it from
 * broker_policy_of (or broker_policy_named for a queue that may not exist
 * yet): enqueue (defaults, max_depth, types, schema_versions), retries
 * (backoff) and results (result_ttl) today; dispatch (max_in_flight, rate,
 * burst, fairness, max_in_flight_per_group, circuit_breaker.*) reads the
 * same place.
 */
#ifndef BROKER_POLICY_H
#define BROKER_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "nqi/policy.h"
#include "nq/v1/api.pb-c.h"

struct broker;
struct broker_queue;
struct broker_op;

/* A queue's policy: a member of broker_queue. A key whose bit is not in
 * eff.set has no value: no limit, no check (max_in_flight, rate,
 * max_in_flight_per_group, max_depth, types, schema_versions); the circuit
 * breaker is on when circuit_breaker.failure_ratio has a value. */
typedef struct broker_policy {
	nqi_policy eff;     /* effective values: every key with a value set */
	nqi_policy runtime; /* set at run time; stored in QueueConfig */
	uint64_t gen;       /* b->core.policy.gen eff was resolved at */
	uint64_t resolved;  /* moves at each resolution: dispatch follows it */
} broker_policy;

/* The broker's: b->core.policy. */
typedef struct broker_policies {
	nqi_policy_file *file; /* the queues file in force; NULL: none */
	nqi_policy defaults;   /* from the flags and the keys' defaults */
	uint64_t gen;          /* moves when the file or defaults change */
	broker_policy scratch; /* broker_policy_named for unknown queues */
} broker_policies;

/* Where a key's effective value came from. */
typedef enum broker_policy_source {
	BROKER_POLICY_DEFAULT,
	BROKER_POLICY_FILE,
	BROKER_POLICY_RUNTIME,
} broker_policy_source;

/* Where key i (NQI_PK_*) of queue's effective policy comes from, given the
 * queue's runtime values (NULL: none). */
broker_policy_source broker_policy_source_of(
    struct broker *b, const nqi_policy *runtime, const char *queue, size_t i);
/* The effective policy of q, resolved again when the file changed since. */
const nqi_policy *broker_policy_of(struct broker *b, struct broker_queue *q);
/* The effective policy of the queue of that name, which need not exist;
 * valid until the next call. */
const nqi_policy *broker_policy_named(struct broker *b, const char *queue);

/* The defaults, from the flags in b->cfg; broker_init calls it. */
void broker_policy_init(struct broker *b);
/* The result_ttl of the queue at index qi, or (qi -1) of the queue named. */
uint64_t broker_result_ttl_ms(struct broker *b, int qi, const char *queue);

/* Loads --queues-config at start: 0, or 2 (the exit status) after logging
 * why the file was refused. Blocks on the file. */
int broker_policy_start(struct broker *b);
/* SIGHUP: reads the file again on the calling thread and hands it to the
 * core, or logs NQ-CONFIG-REJECTED and keeps the policy in force. */
void broker_policy_reload_cb(int sig, void *arg);
/* The core's side of a reload (op->pfile). */
int broker_on_policy_swap(struct broker *b, struct broker_op *op);
void broker_policy_fini(struct broker *b);

/* Recovery: the runtime values stored in cfg become q's (replacing what q
 * had); cfg's max_depth field counts as a runtime max_depth. A stored
 * value no key takes is logged and skipped. */
void broker_policy_load(struct broker_queue *q, const Nq__V1__QueueConfig *cfg);
/* Writes q's runtime values into cfg (arena memory of b's group); 0 or
 * NQ_ENOMEM. */
int broker_policy_put(
    struct broker *b, const struct broker_queue *q, Nq__V1__QueueConfig *cfg);

/* Enqueue: NULL when the policy takes spec, else the refusal (in why). */
const char *broker_policy_refuses(
    const nqi_policy *p, const Nq__V1__JobSpec *spec, char *why, size_t len);

#endif
