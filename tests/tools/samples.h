/*
 * Sample nq v1 messages with fixed, fully populated values.
 *
 * The golden fixtures under tests/fixtures/v1 are these samples as packed
 * once by gen_fixtures; the codec tests check the fixtures against the
 * constants below and round-trip the samples. Never change a constant: a
 * committed fixture holds it. Add a new sample (and fixture) instead.
 */
#ifndef NQT_SAMPLES_H
#define NQT_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/v1/api.pb-c.h"
#include "nq/v1/events.pb-c.h"
#include "nq/v1/job.pb-c.h"

#define NQT_ID "0190f5a2b3c4d5e6"
#define NQT_ID2 "0190f5a2b3c4d5e7"
#define NQT_QUEUE "emails"
#define NQT_QUEUE2 "reports"
#define NQT_TYPE "send-email"
#define NQT_TOKEN "tok-producer-1"
#define NQT_WORKER "worker-a-4242-9f2c"
/* msgpack of {"to":"ada@example.com"} */
#define NQT_PAYLOAD                                                            \
	"\x81\xa2to\xaf"                                                       \
	"ada@example.com"
#define NQT_PAYLOAD_LEN 19
#define NQT_CONTENT_TYPE "application/msgpack"
#define NQT_SCHEMA_VERSION 3u
#define NQT_PRIORITY (-5)
#define NQT_RUN_AT_US 1764280000000000ull
#define NQT_DELAY_MS 1500ull
#define NQT_MAX_ATTEMPTS 7u
#define NQT_TIMEOUT_MS 45000ull
#define NQT_IDEMPOTENCY_KEY "welcome-42"
#define NQT_ORDERING_KEY "user-42"
#define NQT_TRACEPARENT                                                        \
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define NQT_PAYLOAD_REF "s3://nq-blobs/blob-42"
#define NQT_DEADLINE_US 1764283600000000ull
#define NQT_CREATED_US 1764279990000001ull
#define NQT_STARTED_US 1764280001000002ull
#define NQT_FINISHED_US 1764280002000003ull
/* bytes with a NUL inside, so nothing treats results as C strings */
#define NQT_RESULT "sent\0id=77"
#define NQT_RESULT_LEN 10
#define NQT_LEASE_TOKEN 0xfedcba9876543210ull
#define NQT_LEASE_TOKEN2 0x0000000100000001ull
#define NQT_LEASE_EXPIRES_US 1764280031000002ull
#define NQT_DEAD_REASON "max_attempts"
#define NQT_ERROR1 "smtp 451: try again later"
#define NQT_ERROR2 "smtp 550: mailbox unavailable \xc3\xa9"
#define NQT_ERROR1_AT_US 1764279995000000ull
#define NQT_STATUS_MESSAGE "payload is 300000 bytes, limit is 262144"
#define NQT_RETRY_AFTER_MS 2500ull
#define NQT_WAIT_MS 60000ull
#define NQT_LEASE_MS 30000ull
#define NQT_MAX_JOBS 4u
#define NQT_LIST_LIMIT 100u
#define NQT_EVENT_SEQ 9007199254740993ull
#define NQT_TOPIC_SEQ 4294967297ull
#define NQT_COMMITS 123456ull
#define NQT_UPTIME_MS 86400000ull
#define NQT_JOBS_STORED 4000000000ull
#define NQT_VERSION "0.1.0"
/* Added with replay_of, schema_rejected, the dlq counters of QueueStats,
 * QueueConfig and the nq-dlq messages. */
#define NQT_ID3 "0190f5a2b3c4d5e8" /* the job a replay enqueued */
#define NQT_SCHEMA_REASON "schema_rejected"
#define NQT_SCHEMA_ERROR "schema_version 3 is not served (1..2)"
#define NQT_DEAD_PENDING 3ull
#define NQT_DLQ_HANDED_TOTAL 1000005ull
#define NQT_RESULT_TTL_MS 120000ull
#define NQT_MAX_DEPTH 5000000ull
#define NQT_STORED_US 1764280002500004ull
#define NQT_REPLAYS 2u
/* Added with fairness. */
#define NQT_GROUP_KEY "tenant-7"
#define NQT_IN_FLIGHT_LIMIT 10ull
#define NQT_TOKENS 7ull
#define NQT_THROTTLED 20000ull
#define NQT_FAILURE_RATIO 0.625 /* exact in binary */
#define NQT_SINCE_US 1764270000000000ull
#define NQT_DLQ_LIMIT 25u
#define NQT_REPLAY_RATE 12.5
#define NQT_OLDER_THAN_MS 604800000ull
/* Added with the claim check. */
#define NQT_CLAIM_CHECK_SIZE 5242880ull
#define NQT_CLAIM_CHECK_SHA256                                                 \
	"0f343b0931126a20f133d67c2b018a3b5e3f4f2d0d7fdda8d6a8f4d54d4cd4b0"
/* Added with unique scopes and nqctl list. */
#define NQT_UNIQUE_KEY "nightly-report-42"
#define NQT_UNIQUE_BOUND_MS 3600000ull
#define NQT_INGEST_ERROR "dead job 2 has no id"
#define NQT_REPLAY_ERROR "no dead job " NQT_ID2
#define NQT_DLQ_COUNT1 5ull
#define NQT_DLQ_COUNT2 2ull
#define NQT_FINISH_WITHIN_MS 90000ull
#define NQT_PROGRESS_PCT 42u
#define NQT_PROGRESS_NOTE "copied 42 of 100 files"
#define NQT_CANCELED 17u

typedef struct nqt_sample {
	const char *name; /* fixture file name, without ".bin" */
	const ProtobufCMessage *msg;
} nqt_sample;

/* Returns the samples (static storage, built on first call; not thread
 * safe) and writes their count to *n. */
const nqt_sample *nqt_samples(size_t *n);
/* The sample called name, or NULL. */
const ProtobufCMessage *nqt_sample_get(const char *name);

/* Every message type of nq.v1, for coverage checks. */
const ProtobufCMessageDescriptor *const *nqt_descriptors(size_t *n);

/*
 * Deep comparison of two messages of one type by their descriptors. Returns
 * true when equal; otherwise writes the path of the first difference
 * ("Job.errors[1].message") to why.
 */
bool nqt_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
    char *why, size_t whylen);

/*
 * Field coverage: records, per message type, which fields hold a non-default
 * value somewhere in m (oneof members count when selected).
 */
typedef struct nqt_coverage nqt_coverage;
nqt_coverage *nqt_coverage_new(void);
void nqt_coverage_add(nqt_coverage *c, const ProtobufCMessage *m);
/* Writes the first "Message.field" never seen set (or a message type never
 * seen) to missing and returns false; true when everything was covered. */
bool nqt_coverage_complete(const nqt_coverage *c, char *missing, size_t len);
void nqt_coverage_free(nqt_coverage *c);

/* cron: a schedule, its ticks and its state */
#define NQT_CRON_NAME "nightly-report"
#define NQT_CRON_EXPR "0 30 2 * * *"
#define NQT_CRON_ZONE "Europe/Berlin"
#define NQT_CRON_LAST_US 1764293400000000ull
#define NQT_CRON_NEXT_US 1764379800000000ull
#define NQT_CRON_JOB_ID 0x0190f5a2b3c4d5e6ull

/* dependencies: a child of two parents, one ended */
#define NQT_DEP_RESULT "{\"ok\":1}"
#define NQT_DEP_WAITING_ON 1
#define NQT_DEP_INDEX 0
#define NQT_DEP_ERROR "parent " NQT_ID2 " failed"

/* latency of recent jobs: a queue's wait and run quantiles */
#define NQT_LAT_WAIT_P50_US 1200
#define NQT_LAT_WAIT_P99_US 48000
#define NQT_LAT_WAIT_JOBS 5000
#define NQT_LAT_RUN_P50_US 250000
#define NQT_LAT_RUN_P99_US 3100000
#define NQT_LAT_RUN_JOBS 4990
/* batches: a sealed batch, completed */
#define NQT_BATCH_ID "0190f5a2b3c4d5f0"
#define NQT_BATCH_TOTAL 1000

#endif
