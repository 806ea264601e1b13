#include "nqi/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Frees and refuses a message nqi_pb_wellformed rejects. */
static void *wellformed_or_null(ProtobufCMessage *m)
{
	if (m && !nqi_pb_wellformed(m)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

Nq__V1__Request *nqi_request_unpack(const void *buf, size_t len)
{
	return wellformed_or_null(
	    (ProtobufCMessage *)nq__v1__request__unpack(NULL, len, buf));
}

Nq__V1__Reply *nqi_reply_unpack(const void *buf, size_t len)
{
	return wellformed_or_null(
	    (ProtobufCMessage *)nq__v1__reply__unpack(NULL, len, buf));
}

Nq__V1__CompletionBatch *nqi_completions_unpack(const void *buf, size_t len)
{
	return wellformed_or_null(
	    (ProtobufCMessage *)nq__v1__completion_batch__unpack(
	        NULL, len, buf));
}

Nq__V1__Job *nqi_job_unpack(const void *buf, size_t len)
{
	return wellformed_or_null(
	    (ProtobufCMessage *)nq__v1__job__unpack(NULL, len, buf));
}

/* What protobuf-c will likely allocate for len bytes of input: structs
 * are larger than their encoding, strings a byte longer. */
static size_t arena_hint(size_t len)
{
	return 2 * len + 1024;
}

/* Runs unpack with an arena allocator; checks the result like the plain
 * functions do. */
static void *unpack_arena(const ProtobufCMessageDescriptor *d, const void *buf,
    size_t len, nqi_arena **arena)
{
	nqi_arena *a = nqi_arena_new(arena_hint(len));
	ProtobufCMessage *m =
	    a ? protobuf_c_message_unpack(d, &a->pb, len, buf) : NULL;
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
