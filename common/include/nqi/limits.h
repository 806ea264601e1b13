/*
 * How large one message on each socket may be (NNG_OPT_RECVMAXSZ), derived
 * from what the senders of nq put in one message, defined once for the
 * senders (libnq) and the receivers (nq-broker). nng allocates a whole
 * message as soon as its 8-byte length header arrives, before a byte of
 * it is checked, so a limit is also what one connection can make the
 * receiver hold before it knows who sent it.
 */
#ifndef NQI_LIMITS_H
#define NQI_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "nqi/leases.h"

/* libnq's worker puts at most this many completions in one
 * CompletionBatch, and adds one to a batch only while the results and
 * errors before it and its result stay under NQI_BATCH_RESULT_BYTES; the
 * first completion of a batch goes in whatever its size. */
#define NQI_BATCH_COMPLETIONS_MAX 512
#define NQI_BATCH_RESULT_BYTES ((size_t)1 << 20)
/* The longest error text of a completion that libnq sends and the broker
 * keeps: longer ones are cut. */
#define NQI_ERROR_TEXT_MAX 4096

/* Room for everything of a request but its list: version, a token (512
 * bytes at most, nqi/auth), a worker id (a name, 128 bytes), lease_ms and
 * every tag and length around them. */
#define NQI_ENVELOPE_MAX 1024
/* A completion without its result and error text: a 16-hex-digit id, the
 * lease token, outcome, flags, three 64-bit numbers, tags and lengths. */
#define NQI_COMPLETION_FIXED_MAX 128
/* A LeaseRef: a 16-hex-digit id and a 64-bit token, with its tags and
 * lengths. */
#define NQI_LEASE_REF_MAX 31

/* The work socket carries Fetch (at most 64 queue names) and Extend,
 * whose longest is NQI_LEASES_MAX leases: about 31 KB. A longer Extend is
 * not one libnq sends; the broker would only look at its first
 * NQI_LEASES_MAX leases anyway. */
#define NQI_WORK_RECV_MAX                                                      \
	((size_t)NQI_ENVELOPE_MAX + (size_t)NQI_LEASES_MAX * NQI_LEASE_REF_MAX)

/* The results socket carries CompletionBatches: NQI_BATCH_RESULT_BYTES of
 * results and errors, plus the one completion that may pass them (a
 * result of up to max_result, the longest the broker keeps, and its
 * error), plus each completion's fixed fields. */
static inline size_t nqi_results_recv_max(uint64_t max_result)
{
	return NQI_ENVELOPE_MAX + NQI_BATCH_RESULT_BYTES + (size_t)max_result +
	       NQI_ERROR_TEXT_MAX +
	       (size_t)NQI_BATCH_COMPLETIONS_MAX * NQI_COMPLETION_FIXED_MAX;
}

#endif
