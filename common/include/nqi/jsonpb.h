/*
 * JSON <-> protobuf messages, driven by the messages' descriptors, so that
 * a field added to a .proto appears in JSON (the HTTP API) with no new
 * code. The mapping:
 *
 *   field names      as in the .proto (queue, run_at_us, max_attempts)
 *   numbers          JSON integers; a 64-bit value above INT64_MAX is
 *                    written as a string of digits. Read from an integer
 *                    or a string of digits; a uint64 field ending in _ms
 *                    also reads a duration ("250ms", "30s", "5m")
 *   bool             true/false (also "true"/"false" when read)
 *   enums            their value names without the enum's prefix, in
 *                    lower case (JobState JOB_STATE_READY: "ready"); a
 *                    value without the prefix as written (Code:
 *                    "INVALID_ARGUMENT"). Read from either, the full name,
 *                    or the number
 *   bytes            base64 (RFC 4648, padded), except a field named
 *                    payload beside a content_type field: when the type is
 *                    msgpack (or, when read, empty) the payload is the JSON
 *                    value it stands for (stored as msgpack, as nqctl
 *                    does), else base64
 *   repeated         arrays (a string "a,b" when read is ["a","b"])
 *   messages         objects; an unset one is left out
 *   oneof            only the member that is set
 *
 * Written: every field of a message, zero values too. Read: unknown
 * fields, wrong types and values out of range are refused, err naming
 * the field by its path ("jobs[0].priority: want an integer").
 */
#ifndef NQI_JSONPB_H
#define NQI_JSONPB_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* m as a JSON object (new reference), or NULL when memory ran out. */
json_t *nqi_jsonpb_encode(const ProtobufCMessage *m);

/* m as JSON text (malloc'd, NUL-terminated): what nqi_json_dumps makes of
 * nqi_jsonpb_encode(m), written without the tree; NULL when memory ran
 * out. */
char *nqi_jsonpb_text(const ProtobufCMessage *m);

/*
 * Fills the message *m (initialized, of descriptor d, its members
 * malloc'd: free it with protobuf_c_message_free_unpacked(m, NULL)) from
 * the JSON object j. Returns 0, NQ_EINVAL with err naming the field and
 * why (m then holds what was read so far and is still freed the same
 * way), or NQ_ENOMEM.
 */
int nqi_jsonpb_decode(
    ProtobufCMessage *m, const json_t *j, char *err, size_t errlen);

/*
 * Fills *m (as for nqi_jsonpb_decode) from the JSON text of an object,
 * read directly, without a jansson tree: what nqi_jsonpb_decode would
 * make of json_loadb(text), in a fraction of the time, for the plain
 * case. Returns 0; NQ_ENOMEM; or NQ_EINVAL when it did not take the text
 * (an error, or a form it leaves to jansson: an escape \u, a key twice, a
 * key named watch (NULL: none) in any message): m is then freed as ever,
 * and the caller reads the text the general way, which says what was
 * wrong.
 */
int nqi_jsonpb_read(
    ProtobufCMessage *m, const char *text, size_t len, const char *watch);

/* A new, initialized message of descriptor d (malloc'd), or NULL. */
ProtobufCMessage *nqi_jsonpb_new(const ProtobufCMessageDescriptor *d);

/* Size of one value of a field of type t in a message's C struct. */
size_t nqi_pb_value_size(ProtobufCType t);

#endif
