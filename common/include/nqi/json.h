/*
 * JSON text <-> msgpack, for structured payloads (content type
 * application/msgpack): nqctl's --payload JSON is stored as msgpack and shown
 * as JSON again, and nq-worker hands a msgpack payload to a command as JSON.
 *
 * The mapping, both ways:
 *   null, true, false        <-> nil, true, false
 *   string                   <-> str (UTF-8; JSON "\u0000" is kept)
 *   array, object            <-> array, map (object member order is kept)
 *   integer                  <-> int / uint, the smallest msgpack encoding;
 *                                 integers stay integers
 *   real (1.5, 1e3, 1.0)     <-> float64; float32 is read as a real
 * Only from msgpack, because JSON has no such thing:
 *   bin                       -> a string holding the base64 (RFC 4648,
 *                                padded) of the bytes
 *   ext                       -> {"ext": TYPE, "base64": "..."}
 *   str that is not UTF-8     -> each invalid byte becomes U+FFFD
 *   map key that is no string -> its compact JSON text (1 -> "1"), at most
 *                                NQI_JSON_MAX_KEY bytes of it (a longer one
 *                                refuses the input); when keys collide the
 *                                last one wins
 *   NaN and infinities        -> null
 *   uint above INT64_MAX      -> a real (jansson integers are signed 64-bit;
 *                                for the same reason JSON text with such an
 *                                integer is refused as "too big integer")
 *
 * Input is treated as hostile: arrays and maps nest at most
 * NQI_JSON_MAX_DEPTH levels in either direction (deeper input is refused
 * rather than risking the stack), and a msgpack length can never make the
 * decoder allocate more than the input could hold.
 */
#ifndef NQI_JSON_H
#define NQI_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NQI_JSON_MAX_DEPTH 64
/* Longest JSON text of a msgpack map key that is no string. */
#define NQI_JSON_MAX_KEY 1024

/*
 * Converts one JSON value (any type, not only objects) to msgpack. On success
 * *out is a malloc'd buffer of *len bytes the caller frees. On NQ_EINVAL err
 * names what was wrong, with line and column for a syntax error
 * ("line 1, column 7: unexpected token near '}'"); NQ_ENOMEM when memory ran
 * out.
 */
int nqi_json_to_msgpack(
    const char *json, uint8_t **out, size_t *len, char *err, size_t errlen);

/* The same from a jansson value. */
int nqi_jansson_to_msgpack(
    json_t *v, uint8_t **out, size_t *len, char *err, size_t errlen);

/*
 * Converts msgpack bytes holding exactly one value to compact JSON text.
 * On success *json_out is a malloc'd NUL-terminated string the caller frees.
 * NQ_EINVAL when the bytes are not exactly one well-formed value (truncated,
 * trailing bytes, reserved byte 0xc1, nested too deep); NQ_ENOMEM.
 */
int nqi_msgpack_to_json(const void *buf, size_t len, char **json_out);

/*
 * The same conversion as a jansson value (new reference, the caller
 * json_decref()s it), for embedding a payload in a larger document. NULL when
 * the bytes are not exactly one well-formed value or memory ran out.
 */
json_t *nqi_msgpack_to_jansson(const void *buf, size_t len);

/*
 * Writes v as compact JSON text, like json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY), except that reals use the shortest form that reads back
 * as the same double (0.1, not 0.10000000000000001). Returns a malloc'd
 * string the caller frees, or NULL when memory ran out.
 */
char *nqi_json_dumps(const json_t *v);

/* True for the content types of msgpack payloads: application/msgpack (the
 * one nq writes), application/x-msgpack and application/vnd.msgpack, with
 * or without parameters. */
bool nqi_content_type_is_msgpack(const char *content_type);

/* A JSON string of len bytes in which every byte that is not part of
 * well-formed UTF-8 is replaced by U+FFFD (new reference; NULL when memory
 * ran out). */
json_t *nqi_json_string_lossy(const void *s, size_t len);

/* Base64 (RFC 4648, padded) of len bytes as a malloc'd string; NULL when
 * memory ran out. */
char *nqi_base64_encode(const void *buf, size_t len);

/* Decodes base64 (RFC 4648; padding optional, no whitespace) into a
 * malloc'd *out of *len bytes. NQ_EINVAL when the text is not base64,
 * NQ_ENOMEM. */
int nqi_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len);

/* True when the bytes are UTF-8 text a terminal can show: well-formed, and
 * no control characters other than tab, newline and carriage return. */
bool nqi_text_printable(const void *buf, size_t len);

/*
 * A growing JSON text, as nqi_json_dumps writes it, for writers that make
 * the text without a jansson tree (nqi_jsonpb_text). failed: memory ran
 * out, and the text is not whole; p (NUL-terminated) is the caller's to
 * free.
 */
typedef struct nqi_jbuf {
	char *p;
	size_t len, cap;
	bool failed;
} nqi_jbuf;

void nqi_jbuf_put(nqi_jbuf *b, const char *s, size_t n);
/* s (n bytes of valid UTF-8) as a JSON string, quoted and escaped. */
void nqi_jbuf_string(nqi_jbuf *b, const char *s, size_t n);
/* v as nqi_json_dumps writes it. */
void nqi_jbuf_value(nqi_jbuf *b, const json_t *v);

#endif
