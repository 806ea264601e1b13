/*
 * A fresh embedded broker for one fuzz input, and what the fuzz targets of
 * its handlers share: feeding request and completion bytes, checking that
 * every reply is a well-formed nq.v1.Reply, and remembering the job ids
 * and leases the broker handed out.
 *
 * Job ids and lease tokens are made by the broker (time and randomness),
 * so a fuzzer cannot spell them. An id written "#N" (N a decimal number)
 * in a request or completion stands for the N-th id (modulo how many)
 * this session saw: after the raw bytes are fed as they are, the harness
 * feeds them once more with every "#N" replaced by the real id and, for
 * leases and completions, its lease token. That lets inputs reach the
 * handlers' paths for real jobs and live leases.
 */
#ifndef NQ_FUZZ_BROKER_SESSION_H
#define NQ_FUZZ_BROKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "nqi/codec.h"
#include "nqi/util.h"

#define SESSION_MAX_IDS 64

typedef struct session_lease {
	char id[NQ_ID_MAX];
	uint64_t token;
} session_lease;

typedef struct session {
	char *dir;
	nq_embedded_broker *e;
	char ids[SESSION_MAX_IDS][NQ_ID_MAX]; /* jobs enqueued, oldest first */
	size_t nids;
	session_lease leases[SESSION_MAX_IDS]; /* leases granted, newest last */
	size_t nleases;
} session;

/* Opens a broker on a fresh store; aborts when it cannot. */
void session_open(session *s);
/* Closes the broker and deletes its store. */
void session_close(session *s);

/* Feeds request bytes on the api or work socket, then (when they decode
 * and name "#N" ids) the substituted request. Checks each reply. */
void session_request(session *s, const uint8_t *buf, size_t len, bool work);
/* The same for a CompletionBatch on the results socket. */
void session_completions(session *s, const uint8_t *buf, size_t len);

/* Sends a request the harness built; returns the checked reply (free it
 * with nq__v1__reply__free_unpacked). */
Nq__V1__Reply *session_call(session *s, Nq__V1__Request *req, bool work);

/* Enqueues one job (type "t") on queue with the given max_attempts and
 * ordering key ("" for none). */
void session_enqueue(
    session *s, const char *queue, uint32_t max_attempts, const char *okey);
/* Fetches up to max_jobs from the queues (lease_ms 0: the default). */
void session_fetch(session *s, const char *const *queues, size_t n,
    uint32_t max_jobs, uint64_t lease_ms);

/* Gets every job this session enqueued and checks what must hold of any
 * job the broker reports. */
void session_check_jobs(session *s);

#endif
