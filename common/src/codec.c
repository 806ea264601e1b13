#include "nqi/codec.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/json.h"
#include "nqi/util.h"

int nqi_msg_pack(const ProtobufCMessage *m, const void *prefix,
    size_t prefix_len, nng_msg **out)
{
	nng_msg *msg;
	size_t len = protobuf_c_message_get_packed_size(m);
	if (nng_msg_alloc(&msg, prefix_len + len) != 0)
		return NQ_ENOMEM;
	uint8_t *body = nng_msg_body(msg);
	if (prefix_len)
		memcpy(body, prefix, prefix_len);
	protobuf_c_message_pack(m, body + prefix_len);
	*out = msg;
	return NQ_OK;
}

int nqi_buf_pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return NQ_ENOMEM;
	protobuf_c_message_pack(m, b);
	*buf = b;
	*len = n;
	return NQ_OK;
}

/* The selected member of a oneof, or any other message field. */
static bool pb_field_present(
    const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		return true;
	return *(const uint32_t *)((const char *)m + f->quantifier_offset) ==
	       f->id;
}

bool nqi_pb_wellformed(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return false;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *member = (const char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
		    !pb_field_present(m, f))
			continue;
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			const ProtobufCMessage *sub =
			    *(ProtobufCMessage *const *)member;
			if (sub && !nqi_pb_wellformed(sub))
				return false;
			continue;
		}
		size_t n =
		    *(const size_t *)((const char *)m + f->quantifier_offset);
		ProtobufCMessage *const *v =
		    *(ProtobufCMessage * *const *)member;
		for (size_t k = 0; k < n; k++)
			if (v[k] && !nqi_pb_wellformed(v[k]))
				return false;
	}
	return true;
}

/* ---- string fields on the wire ---- */

/* True when the 8 bytes at p are ASCII and none is 0: a byte is 0 or has
 * its high bit set exactly when bit 7 of that byte is set in
 * w | ((w - ones) & ~w) (any borrow starts at such a byte). */
static bool ascii8(const uint8_t *p)
{
	static const uint64_t ones = 0x0101010101010101ull;
	uint64_t w;
	memcpy(&w, p, sizeof w);
	return !((w | ((w - ones) & ~w)) & (ones << 7));
}

/* What is wrong with the string bytes p[0..n), or NULL when they are UTF-8
 * text without a NUL byte. ASCII is checked inline, 8 bytes at a time:
 * keys, names and ids are ASCII nearly always, and this runs on every
 * request. */
static const char *text_fault(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (n - i >= 8 && ascii8(p + i)) {
			i += 8;
			continue;
		}
		if (p[i] == 0)
			return "holds a NUL byte";
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t c = nqi_utf8_char_len(p + i, n - i);
		if (c == 0)
			return "is not valid UTF-8";
		i += c;
	}
	return NULL;
}

/* Reads a varint of at most max bytes: its length, 0 when it does not end
 * within n bytes or max. */
static size_t wire_varint(const uint8_t *p, size_t n, size_t max, uint64_t *v)
{
	if (n > 0 && p[0] < 0x80) { /* most keys and lengths */
		*v = p[0];
		return 1;
	}
	uint64_t x = 0;
	for (size_t i = 0; i < n && i < max; i++) {
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/* The bytes a field's value takes after its key, framed as protobuf-c 1.4
 * frames them (keys of at most 5 bytes, varints of 10, length prefixes of
 * 5 up to INT_MAX); 0 when malformed. For a length-delimited field *body
 * and *body_len give the bytes inside. */
static size_t wire_value_len(unsigned wire_type, const uint8_t *p, size_t n,
    const uint8_t **body, size_t *body_len)
{
	uint64_t v;
	size_t used;
	switch (wire_type) {
	case PROTOBUF_C_WIRE_TYPE_VARINT:
		return wire_varint(p, n, 10, &v);
	case PROTOBUF_C_WIRE_TYPE_64BIT:
		return n >= 8 ? 8 : 0;
	case PROTOBUF_C_WIRE_TYPE_32BIT:
		return n >= 4 ? 4 : 0;
	case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
		used = wire_varint(p, n, 5, &v);
		if (used == 0 || v > INT_MAX || v > n - used)
			return 0;
		*body = p + used;
		*body_len = (size_t)v;
		return used + (size_t)v;
	default: /* groups: protobuf-c refuses them */
		return 0;
	}
}

/* The field numbered id of d, or NULL. nq's messages number their fields
 * from 1 with few gaps, and protobuf-c keeps them sorted by number, so
 * the field is mostly at id - 1: a look there saves the search. */
static const ProtobufCFieldDescriptor *field_of(
    const ProtobufCMessageDescriptor *d, unsigned id)
{
	if (id >= 1 && id <= d->n_fields && d->fields[id - 1].id == id)
		return &d->fields[id - 1];
	return protobuf_c_message_descriptor_get_field(d, id);
}

/*
 * Walks the encoded message of type d, as protobuf-c will read it, for the
 * first string field (at any depth) that holds a NUL byte or is not UTF-8:
 * NQ_EINVAL with *field and *fault naming it. NQ_EPROTO when the framing
 * is malformed, which protobuf-c refuses as well. Unknown fields are
 * skipped; a field whose wire type does not fit its declared type is left
 * to protobuf-c, which refuses it. One pass, no allocation; the depth is
 * bounded by the schema (codec.h).
 */
static int wire_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p,
    size_t n, const char **field, const char **fault)
{
	while (n > 0) {
		uint64_t key;
		const uint8_t *body = NULL;
		size_t body_len = 0;
		size_t used = wire_varint(p, n, 5, &key);
		/* protobuf-c refuses a one-byte key for field 0 */
		if (used == 0 || p[0] < 8)
			return NQ_EPROTO;
		p += used;
		n -= used;
		used =
		    wire_value_len((unsigned)(key & 7), p, n, &body, &body_len);
		if (used == 0)
			return NQ_EPROTO;
		p += used;
		n -= used;
		const ProtobufCFieldDescriptor *f =
		    body ? field_of(d, (unsigned)(uint32_t)(key >> 3)) : NULL;
		if (!f)
			continue;
		if (f->type == PROTOBUF_C_TYPE_STRING &&
		    (*fault = text_fault(body, body_len)) != NULL) {
			*field = f->name;
			return NQ_EINVAL;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			int rv = wire_strings(
			    f->descriptor, body, body_len, field, fault);
			if (rv != 0)
				return rv;
		}
	}
	return NQ_OK;
}

int nqi_pb_check_strings(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, char *why, size_t why_len)
{
	const char *field = NULL, *fault = NULL;
	int rv = wire_strings(d, buf, len, &field, &fault);
	if (rv == NQ_EINVAL)
		snprintf(why, why_len, "field %s %s", field, fault);
	else if (rv != 0)
		snprintf(why, why_len, "malformed message: not an %s", d->name);
	return rv;
}

void nqi_request_refusal(const void *buf, size_t len, char *why, size_t why_len)
{
	if (nqi_pb_check_strings(&nq__v1__request__descriptor, buf, len, why,
	        why_len) != NQ_EINVAL)
		snprintf(
		    why, why_len, "malformed request: not an nq.v1.Request");
}

/* ---- one-pass decoding of the messages nq's hot paths carry ---- */

/*
 * protobuf-c's unpack scans a message once to size it and again to fill
 * it, looking each field up by a range search; with the string check in
 * front that is three passes, and most of what a fetched or enqueued job
 * costs. fast_msg fills the message in one pass, straight into the arena,
 * checking each string as it copies it, for the part of protobuf nq's
 * messages use: proto3 scalars (varint types), strings, bytes, messages,
 * oneofs, repeated strings, bytes and messages. It gives up (false) at
 * anything else: an unknown field, a repeated number, a message or oneof
 * given twice (protobuf-c merges or replaces those), a wire type that does
 * not fit, a string that is not text, bad framing. The caller then
 * decodes with protobuf-c as before, so what is decoded never depends on
 * which path took it; fuzz_unpack_stable (tests/fuzz) checks that on
 * every input the fuzzers make.
 */

#define FAST_FIELDS_MAX 96 /* larger messages go to protobuf-c */

typedef struct fast_value {
	unsigned wire_type;
	const uint8_t *at; /* a varint's bytes; a body's first byte */
	size_t len;        /* the varint's length; the body's */
} fast_value;

/* Reads the key and the value after it: bytes used, 0 when malformed. A
 * one-byte key with a one-byte varint or length, which is most fields of
 * nq's messages, is read inline. */
static inline size_t fast_field(
    const uint8_t *p, size_t n, uint32_t *tag, fast_value *v)
{
	if (n >= 2 && p[0] >= 8 && p[0] < 0x80 && p[1] < 0x80) {
		*tag = p[0] >> 3;
		v->wire_type = p[0] & 7;
		if (v->wire_type == PROTOBUF_C_WIRE_TYPE_VARINT) {
			v->at = p + 1;
			v->len = 1;
			return 2;
		}
		if (v->wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED &&
		    p[1] <= n - 2) {
			v->at = p + 2;
			v->len = p[1];
			return 2 + (size_t)p[1];
		}
	}
	uint64_t key;
	const uint8_t *body = NULL;
	size_t used = wire_varint(p, n, 5, &key);
	if (used == 0 || p[0] < 8)
		return 0;
	size_t vlen = wire_value_len(
	    (unsigned)(key & 7), p + used, n - used, &body, &v->len);
	if (vlen == 0)
		return 0;
	*tag = (uint32_t)(key >> 3);
	v->wire_type = (unsigned)(key & 7);
	v->at = body ? body : p + used;
	if (!body)
		v->len = vlen;
	return used + vlen;
}

/* A varint's value as protobuf-c reads it: the low 64 bits. */
static uint64_t fast_varint(const fast_value *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < v->len; i++)
		x |= (uint64_t)(v->at[i] & 0x7f) << (7 * i);
	return x;
}

/* protobuf-c reads a bool as true when any bit of its varint is set. */
static protobuf_c_boolean fast_bool(const fast_value *v)
{
	for (size_t i = 0; i < v->len; i++)
		if (v->at[i] & 0x7f)
			return 1;
	return 0;
}

/* Fields of tag from p[0..n) on: the most a repeated field gets. */
static size_t fast_count(const uint8_t *p, size_t n, uint32_t tag)
{
	size_t count = 0, used;
	uint32_t t;
	fast_value v;
	while (n > 0 && (used = fast_field(p, n, &t, &v)) != 0) {
		count += t == tag;
		p += used;
		n -= used;
	}
	return count;
}

static bool fast_msg(const ProtobufCMessageDescriptor *d, const uint8_t *p,
    size_t n, nqi_arena *a, ProtobufCMessage **out);

/* Stores one string, bytes or message value at slot. */
static bool fast_put_body(const ProtobufCFieldDescriptor *f,
    const fast_value *v, nqi_arena *a, void *slot)
{
	if (v->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
		return false;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return fast_msg(f->descriptor, v->at, v->len, a, slot);
	if (f->type == PROTOBUF_C_TYPE_STRING) {
		if (text_fault(v->at, v->len))
			return false;
		char *s = nqi_arena_alloc(a, v->len + 1);
		if (!s)
			return false;
		memcpy(s, v->at, v->len);
		s[v->len] = '\0';
		*(char **)slot = s;
		return true;
	}
	if (f->type != PROTOBUF_C_TYPE_BYTES)
		return false;
	ProtobufCBinaryData *b = slot;
	b->len = v->len;
	b->data = NULL; /* as protobuf-c leaves empty bytes */
	if (v->len && !(b->data = nqi_arena_alloc(a, v->len)))
		return false;
	if (v->len)
		memcpy(b->data, v->at, v->len);
	return true;
}

/* Stores a scalar at slot (a proto3 field: no has_ flag). */
static bool fast_put_scalar(
    const ProtobufCFieldDescriptor *f, const fast_value *v, void *slot)
{
	if (v->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT)
		return false;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_ENUM:
		*(uint32_t *)slot = (uint32_t)fast_varint(v);
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		*(uint64_t *)slot = fast_varint(v);
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)slot = fast_bool(v);
		return true;
	default:
		return false;
	}
}

/* Appends to a repeated string, bytes or message field; its array is
 * sized at the first value by counting the rest (cap[]). */
static bool fast_append(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const fast_value *v, const uint8_t *rest, size_t rest_n, nqi_arena *a,
    size_t *cap)
{
	size_t *count = (size_t *)((char *)m + f->quantifier_offset);
	void **array = (void **)((char *)m + f->offset);
	size_t elt = f->type == PROTOBUF_C_TYPE_BYTES
	                 ? sizeof(ProtobufCBinaryData)
	                 : sizeof(void *);
	if (f->type != PROTOBUF_C_TYPE_STRING &&
	    f->type != PROTOBUF_C_TYPE_BYTES &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE)
		return false; /* numbers may come packed */
	if (!*array) {
		*cap = 1 + fast_count(rest, rest_n, f->id);
		if (!(*array = nqi_arena_alloc(a, *cap * elt)))
			return false;
	}
	if (*count >= *cap)
		return false;
	return fast_put_body(f, v, a, (char *)*array + elt * (*count)++);
}

/* Stores one field of m; rest is what follows it, for fast_append. */
static bool fast_put(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const fast_value *v, const uint8_t *rest, size_t rest_n, nqi_arena *a,
    size_t *cap)
{
	void *slot = (char *)m + f->offset;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return fast_append(m, f, v, rest, rest_n, a, cap);
	if (f->label != PROTOBUF_C_LABEL_NONE &&
	    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		return false; /* proto2, or a proto3 optional with has_ */
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which =
		    (uint32_t *)((char *)m + f->quantifier_offset);
		if (*which)
			return false;
		*which = f->id;
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)slot)
		return false; /* given twice: protobuf-c merges */
	if (f->type == PROTOBUF_C_TYPE_MESSAGE ||
	    f->type == PROTOBUF_C_TYPE_STRING ||
	    f->type == PROTOBUF_C_TYPE_BYTES)
		return fast_put_body(f, v, a, slot);
	return fast_put_scalar(f, v, slot);
}

static bool fast_msg(const ProtobufCMessageDescriptor *d, const uint8_t *p,
    size_t n, nqi_arena *a, ProtobufCMessage **out)
{
	size_t cap[FAST_FIELDS_MAX];
	ProtobufCMessage *m = NULL;
	if (d->n_fields > FAST_FIELDS_MAX ||
	    !(m = nqi_arena_alloc(a, d->sizeof_message)))
		return false;
	protobuf_c_message_init(d, m);
	while (n > 0) {
		uint32_t tag;
		fast_value v;
		size_t used = fast_field(p, n, &tag, &v);
		const ProtobufCFieldDescriptor *f =
		    used ? field_of(d, tag) : NULL;
		if (!f)
			return false;
		p += used;
		n -= used;
		if (!fast_put(m, f, &v, p, n, a, &cap[f - d->fields]))
			return false;
	}
	*out = m;
	return true;
}

ProtobufCMessage *nqi_pb_unpack_fast(const ProtobufCMessageDescriptor *d,
    const void *buf, size_t len, nqi_arena *a)
{
	ProtobufCMessage *m;
	return fast_msg(d, buf, len, a, &m) ? m : NULL;
}

/* ---- repairing strings stored before they were checked ---- */

/* Writes the varint v at out when out is not NULL; returns its length. */
static size_t put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		if (out)
			out[n] = b | (v ? 0x80 : 0);
		n++;
	} while (v);
	return n;
}

size_t nqi_text_repair(const uint8_t *p, size_t n, uint8_t *out)
{
	static const uint8_t fffd[3] = {0xef, 0xbf, 0xbd}; /* U+FFFD */
	size_t w = 0;
	for (size_t i = 0; i < n && p[i] != 0;) {
		size_t c = p[i] < 0x80 ? 1 : nqi_utf8_char_len(p + i, n - i);
		if (out)
			memcpy(out + w, c ? p + i : fffd, c ? c : 3);
		w += c ? c : 3;
		i += c ? c : 1;
	}
	return w;
}

/* Copies the encoded message p[0..n) of type d with every string field,
 * at any depth, made text by nqi_text_repair; to out when out is not NULL.
 * *len gets the length of the copy. NQ_EPROTO when the framing is
 * malformed. Each level sizes a nested message before it writes it, so
 * the work is the depth of the schema times n: this runs only for the
 * rare record that needs it. */
static int wire_repair(const ProtobufCMessageDescriptor *d, const uint8_t *p,
    size_t n, uint8_t *out, size_t *len)
{
	size_t w = 0;
	while (n > 0) {
		uint64_t key;
		const uint8_t *body = NULL;
		size_t body_len = 0, sub;
		size_t klen = wire_varint(p, n, 5, &key);
		size_t vlen = klen ? wire_value_len((unsigned)(key & 7),
		                         p + klen, n - klen, &body, &body_len)
		                   : 0;
		if (vlen == 0)
			return NQ_EPROTO;
		const ProtobufCFieldDescriptor *f =
		    body ? field_of(d, (unsigned)(uint32_t)(key >> 3)) : NULL;
		bool str = f && f->type == PROTOBUF_C_TYPE_STRING;
		bool msg = f && f->type == PROTOBUF_C_TYPE_MESSAGE;
		if (!str && !msg) {
			if (out)
				memcpy(out + w, p, klen + vlen);
			w += klen + vlen;
		} else {
			if (str)
				sub = nqi_text_repair(body, body_len, NULL);
			else if (wire_repair(f->descriptor, body, body_len,
			             NULL, &sub) != 0)
				return NQ_EPROTO;
			if (out)
				memcpy(out + w, p, klen);
			w += klen;
			w += put_varint(out ? out + w : NULL, sub);
			if (out && str)
				nqi_text_repair(body, body_len, out + w);
			else if (out)
				wire_repair(f->descriptor, body, body_len,
				    out + w, &sub);
			w += sub;
		}
		p += klen + vlen;
		n -= klen + vlen;
	}
	*len = w;
	return NQ_OK;
}

int nqi_pb_repair_strings(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, uint8_t **out, size_t *out_len, char *why, size_t why_len)
{
	const char *field = NULL, *fault = NULL;
	size_t n;
	*out = NULL;
	int rv = wire_strings(d, buf, len, &field, &fault);
	if (rv != NQ_EINVAL)
		return rv;
	snprintf(why, why_len, "field %s %s", field, fault);
	if (wire_repair(d, buf, len, NULL, &n) != 0)
		return NQ_EPROTO;
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return NQ_ENOMEM;
	wire_repair(d, buf, len, copy, &n);
	*out = copy;
	*out_len = n;
	return NQ_OK;
}

/* ---- packing flat messages by a plan ---- */

enum flat_kind {
	FLAT_U32,
	FLAT_I32,
	FLAT_U64,
	FLAT_BOOL,
	FLAT_STR,
	FLAT_BYTES,
	FLAT_MSG
};

/* The kind of field f packs as, or -1 when a plan cannot hold it. */
static int flat_kind_of(const ProtobufCFieldDescriptor *f)
{
	if (f->label != PROTOBUF_C_LABEL_NONE ||
	    (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		return -1;
	switch (f->type) {
	case PROTOBUF_C_TYPE_UINT32:
		return FLAT_U32;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_ENUM: /* a negative one takes 10 bytes */
		return FLAT_I32;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		return FLAT_U64;
	case PROTOBUF_C_TYPE_BOOL:
		return FLAT_BOOL;
	case PROTOBUF_C_TYPE_STRING:
		return FLAT_STR;
	case PROTOBUF_C_TYPE_BYTES:
		return FLAT_BYTES;
	case PROTOBUF_C_TYPE_MESSAGE:
		return FLAT_MSG;
	default:
		return -1;
	}
}

bool nqi_flat_plan_init(nqi_flat_plan *p, const ProtobufCMessageDescriptor *d)
{
	*p = (nqi_flat_plan){.d = d};
	if (d->n_fields > NQI_FLAT_FIELDS_MAX)
		return false;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		int kind = flat_kind_of(f);
		bool body = kind == FLAT_STR || kind == FLAT_BYTES;
		if (kind < 0)
			return false;
		if (kind == FLAT_MSG && p->n_msg == NQI_FLAT_MSGS_MAX)
			return false;
		if (kind == FLAT_MSG)
			p->msg_at[p->n_msg++] = f->offset;
		p->f[i].offset = f->offset;
		p->f[i].kind = (uint8_t)kind;
		p->f[i].key_len = (uint8_t)put_varint(p->f[i].key,
		    (uint64_t)f->id << 3 |
		        (body ? PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
		              : PROTOBUF_C_WIRE_TYPE_VARINT));
	}
	p->n = d->n_fields;
	p->ok = true;
	return true;
}

/* Field i of m as the plan packs it: its number in *num, or its bytes in
 * *body and *len; false when it packs nothing (an unset message too: see
 * flat_takes). */
static inline bool flat_get(const nqi_flat_plan *p, unsigned i, const char *m,
    uint64_t *num, const uint8_t **body, size_t *len)
{
	const void *v = m + p->f[i].offset;
	*body = NULL;
	switch (p->f[i].kind) {
	case FLAT_U32:
		*num = *(const uint32_t *)v;
		return *num != 0;
	case FLAT_I32:
		*num = (uint64_t)(int64_t) * (const int32_t *)v;
		return *num != 0;
	case FLAT_U64:
		*num = *(const uint64_t *)v;
		return *num != 0;
	case FLAT_BOOL:
		*num = *(const protobuf_c_boolean *)v != 0;
		return *num != 0;
	case FLAT_STR:
		*body = *(const uint8_t *const *)v;
		*len = *body ? strlen((const char *)*body) : 0;
		return *len != 0;
	case FLAT_BYTES:
		*body = ((const ProtobufCBinaryData *)v)->data;
		*len = ((const ProtobufCBinaryData *)v)->len;
		return *len != 0;
	default:
		return false;
	}
}

/* A varint's length, without a loop: sizing runs for every record. */
static size_t varint_size(uint64_t v)
{
	return (size_t)(63 - __builtin_clzll(v | 1)) / 7 + 1;
}

static uint8_t *varint_write(uint8_t *o, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*o++ = (uint8_t)(v | 0x80);
	*o++ = (uint8_t)v;
	return o;
}

/* The length of m as the plan packs it. */
static size_t flat_size(const nqi_flat_plan *p, const ProtobufCMessage *m)
{
	size_t w = 0;
	for (unsigned i = 0; i < p->n; i++) {
		uint64_t num = 0;
		const uint8_t *body;
		size_t len = 0;
		if (flat_get(p, i, (const char *)m, &num, &body, &len))
			w += p->f[i].key_len +
			     (body ? varint_size(len) + len : varint_size(num));
	}
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
		w += varint_size((uint64_t)u->tag << 3) + u->len;
	}
	return w;
}

/* Packs m at out; returns the length. */
static size_t flat_write(
    const nqi_flat_plan *p, const ProtobufCMessage *m, uint8_t *out)
{
	uint8_t *o = out;
	for (unsigned i = 0; i < p->n; i++) {
		uint64_t num = 0;
		const uint8_t *body;
		size_t len = 0;
		if (!flat_get(p, i, (const char *)m, &num, &body, &len))
			continue;
		for (unsigned k = 0; k < p->f[i].key_len; k++)
			*o++ = p->f[i].key[k];
		o = varint_write(o, body ? len : num);
		if (body)
			memcpy(o, body, len);
		o += body ? len : 0;
	}
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
		o = varint_write(o, (uint64_t)u->tag << 3 | u->wire_type);
		memcpy(o, u->data, u->len);
		o += u->len;
	}
	return (size_t)(o - out);
}

/* Whether the plan packs m, which it does while m's message fields are
 * unset; else protobuf-c does. */
static bool flat_takes(const nqi_flat_plan *p, const ProtobufCMessage *m)
{
	if (!p || !p->ok || p->d != m->descriptor)
		return false;
	for (unsigned i = 0; i < p->n_msg; i++)
		if (*(void *const *)((const char *)m + p->msg_at[i]))
			return false;
	return true;
}

size_t nqi_flat_size(const nqi_flat_plan *p, const ProtobufCMessage *m)
{
	return flat_takes(p, m) ? flat_size(p, m)
	                        : protobuf_c_message_get_packed_size(m);
}

size_t nqi_flat_pack(
    const nqi_flat_plan *p, const ProtobufCMessage *m, uint8_t *out)
{
	return flat_takes(p, m) ? flat_write(p, m, out)
	                        : protobuf_c_message_pack(m, out);
}

/* The plan of Completion and the key of CompletionBatch.completions: the
 * last field, so that writing the completions after the rest gives
 * protobuf-c's order. */
static struct {
	nqi_flat_plan plan;
	uint8_t key;
	bool ok;
} completions;

static void completions_init(void)
{
	const ProtobufCMessageDescriptor *d =
	    &nq__v1__completion_batch__descriptor;
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(d, "completions");
	completions.key =
	    (uint8_t)(f->id << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
	completions.ok = nqi_flat_plan_init(&completions.plan,
	                     &nq__v1__completion__descriptor) &&
	                 f == &d->fields[d->n_fields - 1] && f->id < 16;
}

/* Writes the completions of b at o, each of the size in lens. */
static void completions_write(
    const Nq__V1__CompletionBatch *b, const size_t *lens, uint8_t *o)
{
	for (size_t i = 0; i < b->n_completions; i++) {
		*o++ = completions.key;
		o = varint_write(o, lens[i]);
		o += nqi_flat_pack(
		    &completions.plan, &b->completions[i]->base, o);
	}
}

int nqi_completions_msg_pack(const Nq__V1__CompletionBatch *b, nng_msg **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, completions_init);
	if (!completions.ok || b->base.n_unknown_fields)
		return nqi_msg_pack(&b->base, NULL, 0, out);
	size_t n = b->n_completions, some[64];
	size_t *lens = n <= 64 ? some : malloc(n * sizeof *lens);
	if (!lens)
		return NQ_ENOMEM;
	Nq__V1__CompletionBatch head = *b;
	head.n_completions = 0;
	size_t len = protobuf_c_message_get_packed_size(&head.base);
	for (size_t i = 0; i < n; i++) {
		lens[i] =
		    nqi_flat_size(&completions.plan, &b->completions[i]->base);
		len += 1 + varint_size(lens[i]) + lens[i];
	}
	nng_msg *msg = NULL;
	if (nng_msg_alloc(&msg, len) == 0) {
		uint8_t *o = nng_msg_body(msg);
		completions_write(
		    b, lens, o + protobuf_c_message_pack(&head.base, o));
	}
	if (lens != some)
		free(lens);
	*out = msg;
	return msg ? NQ_OK : NQ_ENOMEM;
}

/* ---- decoders ---- */

/* True when the string fields of buf are text (see wire_strings). */
static bool strings_ok(
    const ProtobufCMessageDescriptor *d, const void *buf, size_t len)
{
	const char *field, *fault;
	return wire_strings(d, buf, len, &field, &fault) == NQ_OK;
}

/* Decodes buf unless its strings or its field numbers are refused. */
static void *unpack_plain(
    const ProtobufCMessageDescriptor *d, const void *buf, size_t len)
{
	if (!strings_ok(d, buf, len))
		return NULL;
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (m && !nqi_pb_wellformed(m)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

Nq__V1__Request *nqi_request_unpack(const void *buf, size_t len)
{
	return unpack_plain(&nq__v1__request__descriptor, buf, len);
}

Nq__V1__Reply *nqi_reply_unpack(const void *buf, size_t len)
{
	return unpack_plain(&nq__v1__reply__descriptor, buf, len);
}

Nq__V1__CompletionBatch *nqi_completions_unpack(const void *buf, size_t len)
{
	return unpack_plain(&nq__v1__completion_batch__descriptor, buf, len);
}

Nq__V1__Job *nqi_job_unpack(const void *buf, size_t len)
{
	return unpack_plain(&nq__v1__job__descriptor, buf, len);
}

/* What protobuf-c will likely allocate for len bytes of input: structs
 * are larger than their encoding, strings a byte longer. */
static size_t arena_hint(size_t len)
{
	return 2 * len + 1024;
}

/* Decodes in one pass (nqi_pb_unpack_fast), or else runs protobuf-c's
 * unpack with an arena allocator and checks the result like the plain
 * functions do. */
static void *unpack_arena(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, nqi_arena **arena)
{
	*arena = NULL;
	nqi_arena *a = nqi_arena_new(arena_hint(len));
	ProtobufCMessage *m = a ? nqi_pb_unpack_fast(d, buf, len, a) : NULL;
	if (m) {
		*arena = a;
		return m;
	}
	if (a && strings_ok(d, buf, len))
		m = protobuf_c_message_unpack(d, &a->pb, len, buf);
	if (m && !nqi_pb_wellformed(m))
		m = NULL;
	if (!m) {
		nqi_arena_free(a);
		a = NULL;
	}
	*arena = a;
	return m;
}

Nq__V1__Request *nqi_request_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena)
{
	return unpack_arena(&nq__v1__request__descriptor, buf, len, arena);
}

Nq__V1__Reply *nqi_reply_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena)
{
	return unpack_arena(&nq__v1__reply__descriptor, buf, len, arena);
}

Nq__V1__CompletionBatch *nqi_completions_unpack_arena(
    const void *buf, size_t len, nqi_arena **arena)
{
	return unpack_arena(
	    &nq__v1__completion_batch__descriptor, buf, len, arena);
}

void nqi_reply_status(Nq__V1__Reply *r, int err, const char *fmt, ...)
{
	static Nq__V1__Status proto = NQ__V1__STATUS__INIT;
	Nq__V1__Status *s = r->status;
	if (!s) {
		s = malloc(sizeof *s);
		if (!s)
			return;
		*s = proto;
		r->status = s;
	}
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (s->message != protobuf_c_empty_string)
		free(s->message);
	s->message = strdup(buf);
	if (!s->message)
		s->message = (char *)protobuf_c_empty_string;
}
