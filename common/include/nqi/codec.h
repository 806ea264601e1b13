/* Wire codec: protobuf messages in and out of NNG messages, with bounds. */
#ifndef NQI_CODEC_H
#define NQI_CODEC_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/arena.h"
#include "nq/v1/api.pb-c.h"
#include "nq/v1/events.pb-c.h"
#include "nq/v1/job.pb-c.h"

/* Packs m into a new NNG message (appended after any prefix bytes given).
 * On success the caller owns *out. */
int nqi_msg_pack(const ProtobufCMessage *m, const void *prefix,
    size_t prefix_len, nng_msg **out);
/*
 * A plan packs a flat message type (every field proto3 singular outside a
 * oneof: a varint type, a string, bytes, or a message, packed only while
 * it is unset) to protobuf-c's bytes in one short walk, its fields' keys
 * encoded once: the broker packs a new record's head, the lease and
 * success patches and each spec it takes in this way, for every job.
 * nqi_flat_plan_init is false when d is not flat. nqi_flat_size and
 * nqi_flat_pack are protobuf_c_message_get_packed_size and
 * protobuf_c_message_pack, which they call for a message the plan does
 * not take (another type, a set message field, a plan that failed).
 */
#define NQI_FLAT_FIELDS_MAX 48
#define NQI_FLAT_MSGS_MAX 8
typedef struct nqi_flat_plan {
	const ProtobufCMessageDescriptor *d;
	bool ok;
	unsigned n, n_msg;
	uint32_t msg_at[NQI_FLAT_MSGS_MAX]; /* offsets of message fields */
	struct {
		uint32_t offset;
		uint8_t kind, key_len, key[6];
	} f[NQI_FLAT_FIELDS_MAX];
} nqi_flat_plan;

bool nqi_flat_plan_init(nqi_flat_plan *p, const ProtobufCMessageDescriptor *d);
size_t nqi_flat_size(const nqi_flat_plan *p, const ProtobufCMessage *m);
size_t nqi_flat_pack(
    const nqi_flat_plan *p, const ProtobufCMessage *m, uint8_t *out);

/* nqi_msg_pack of a CompletionBatch, to the same bytes: each completion
 * (a flat message) packed by a plan, the batch's other fields by
 * protobuf-c. What every worker sends for every job it runs. */
int nqi_completions_msg_pack(const Nq__V1__CompletionBatch *b, nng_msg **out);

/* Packs m into a malloc'd buffer the caller frees. */
int nqi_buf_pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len);

/*
 * False when m, or a message inside it, holds an unknown field numbered 0.
 * Field number 0 is not protobuf, but protobuf-c 1.4 reads it when it is
 * spelled as a multi-byte varint (0x81 0x00) and packs it back as the one
 * byte 0x01, which no decoder reads: a record stored with it would never
 * decode again. The nqi_*_unpack functions below refuse such input as
 * malformed. (nq.v1 has no recursive message types, so the walk is bounded
 * by the schema.)
 */
bool nqi_pb_wellformed(const ProtobufCMessage *m);

/*
 * Checks every string field of the encoded message buf of type d, at any
 * depth, on the wire: protobuf-c's unpack copies a string up to its wire
 * length and ends it with a NUL, so C code would read "nul\0evil" as
 * "nul", and it passes bytes that are not UTF-8, which strict protobuf
 * decoders refuse. Returns 0 when each string is UTF-8 text without a NUL
 * byte; NQ_EINVAL with why naming the first field that is not ("field
 * queue holds a NUL byte", "field idempotency_key is not valid UTF-8";
 * the bad bytes are never copied); NQ_EPROTO (why says so) when buf is not
 * framed as protobuf. One pass over buf, no allocation.
 */
int nqi_pb_check_strings(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, char *why, size_t why_len);

/*
 * For records stored before strings were checked (an older nq took any
 * bytes): a copy of the encoded message buf of type d in which every
 * string field, at any depth, is text. A string is cut at its first NUL
 * byte, which is where C code, and so every nq that stored it, read it to
 * end (the queue it was counted in, the idempotency key it was indexed
 * under), and each byte that is not part of a UTF-8 character becomes
 * U+FFFD. Every other byte is copied as it is. Returns NQ_OK with *out
 * NULL when every string is text already: one pass over buf, as
 * nqi_pb_check_strings, nothing allocated. NQ_OK with *out (malloc'd,
 * *out_len bytes) and why naming the first field repaired ("field
 * idempotency_key holds a NUL byte") when some were not; NQ_EPROTO when
 * buf is not framed as protobuf; NQ_ENOMEM.
 */
int nqi_pb_repair_strings(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, uint8_t **out, size_t *out_len, char *why, size_t why_len);

/* The bytes p[0..n) made text as nqi_pb_repair_strings makes a string,
 * written at out (room for 3 * n bytes) when out is not NULL; returns
 * the length of the text. */
size_t nqi_text_repair(const uint8_t *p, size_t n, uint8_t *out);

/* Why nqi_request_unpack refused buf, for the INVALID_ARGUMENT reply: the
 * string field at fault, or "malformed request: not an nq.v1.Request". */
void nqi_request_refusal(
    const void *buf, size_t len, char *why, size_t why_len);

/* Unpack hostile bytes: NULL when malformed, when a string field fails
 * nqi_pb_check_strings, or when nqi_pb_wellformed fails. Free with the matching
 * nq__v1__*__free_unpacked(p, NULL) on every path. */
Nq__V1__Request *nqi_request_unpack(const void *buf, size_t len);
Nq__V1__Reply *nqi_reply_unpack(const void *buf, size_t len);
Nq__V1__CompletionBatch *nqi_completions_unpack(const void *buf, size_t len);
Nq__V1__Job *nqi_job_unpack(const void *buf, size_t len);

/* The same, decoded into a fresh arena: *arena gets it (NULL when the
 * result is NULL), and nqi_arena_free(*arena) frees the message. One
 * allocation for a batch of any size, instead of several per field. */
Nq__V1__Request *nqi_request_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena);
Nq__V1__Reply *nqi_reply_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena);
Nq__V1__CompletionBatch *nqi_completions_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena);

/*
 * The arena decoders first try one pass that fills the message straight
 * into the arena for the shapes nq's messages have (codec.c says which);
 * at anything else it gives way to protobuf-c. This is that pass alone:
 * the message, or NULL where it gives way (whatever it used of a stays
 * allocated). Whatever it decodes, protobuf-c with nq's checks decodes to
 * the same message; tests/fuzz checks it on every input.
 */
ProtobufCMessage *nqi_pb_unpack_fast(const ProtobufCMessageDescriptor *d,
    const void *buf, size_t len, nqi_arena *a);

/* Sets a reply's status: code from err, message printf-style. The message
 * and the status are malloc'd; the caller frees r->status->message and
 * r->status. */
void nqi_reply_status(Nq__V1__Reply *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
