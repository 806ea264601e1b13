/* JSON <-> protobuf by descriptors (see jsonpb.h). */
#include "nqi/jsonpb.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/json.h"
#include "nqi/util.h"

#define PATH_MAX_LEN 128

typedef const ProtobufCFieldDescriptor field;

static void *member(const ProtobufCMessage *m, unsigned offset)
{
	return (char *)m + offset;
}

size_t nqi_pb_value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4; /* the 32-bit numbers, float and enums */
	}
}

/* "JobState" -> "JOB_STATE_": the prefix its value names carry. */
static void enum_prefix(const char *name, char *out, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; name[i] && n + 3 < len; i++) {
		if (i && isupper((unsigned char)name[i]))
			out[n++] = '_';
		out[n++] = (char)toupper((unsigned char)name[i]);
	}
	out[n++] = '_';
	out[n] = '\0';
}

/* The JSON name of a value: without the prefix and in lower case, or as
 * written when it has no prefix. */
static void enum_json_name(const ProtobufCEnumDescriptor *ed,
    const char *value_name, char *out, size_t len)
{
	char prefix[96];
	enum_prefix(ed->short_name, prefix, sizeof prefix);
	size_t pl = strlen(prefix);
	if (strncmp(value_name, prefix, pl) != 0 || !value_name[pl]) {
		snprintf(out, len, "%s", value_name);
		return;
	}
	size_t i = 0;
	for (; value_name[pl + i] && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)value_name[pl + i]);
	out[i] = '\0';
}

/* ---- encoding ---- */

static json_t *enc_u64(uint64_t v)
{
	char buf[24];
	if (v <= INT64_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	return json_string(buf);
}

static json_t *enc_enum(field *f, int v)
{
	const ProtobufCEnumDescriptor *ed = f->descriptor;
	const ProtobufCEnumValue *ev =
	    protobuf_c_enum_descriptor_get_value(ed, v);
	char name[96];
	if (!ev)
		return json_integer(v);
	enum_json_name(ed, ev->name, name, sizeof name);
	return json_string(name);
}

static json_t *enc_bytes(const ProtobufCBinaryData *b)
{
	char *s = nqi_base64_encode(b->data, b->len);
	json_t *j = s ? json_string(s) : NULL;
	free(s);
	return j;
}

/* The payload beside a msgpack content_type is the JSON it stands for;
 * bytes that are not one msgpack value stay base64. */
static json_t *enc_payload(
    const ProtobufCMessage *m, const ProtobufCBinaryData *b)
{
	field *ct = protobuf_c_message_descriptor_get_field_by_name(
	    m->descriptor, "content_type");
	if (ct && ct->type == PROTOBUF_C_TYPE_STRING && b->len &&
	    nqi_content_type_is_msgpack(*(char **)member(m, ct->offset))) {
		json_t *j = nqi_msgpack_to_jansson(b->data, b->len);
		if (j)
			return j;
	}
	return enc_bytes(b);
}

static json_t *enc_one(const ProtobufCMessage *m, field *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return enc_u64(*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return enc_enum(f, *(const int *)p);
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return nqi_json_string_lossy(s ? s : "", s ? strlen(s) : 0);
	}
	case PROTOBUF_C_TYPE_BYTES:
		return strcmp(f->name, "payload") == 0 ? enc_payload(m, p)
		                                       : enc_bytes(p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		return sub ? nqi_jsonpb_encode(sub) : json_null();
	}
	}
	return json_null();
}

static json_t *enc_repeated(const ProtobufCMessage *m, field *f)
{
	size_t n = *(size_t *)member(m, f->quantifier_offset);
	const char *arr = *(char **)member(m, f->offset);
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		json_t *v = enc_one(m, f, arr + i * nqi_pb_value_size(f->type));
		if (!v || json_array_append_new(a, v) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Whether m's field f is written: a oneof's member only when it is the
 * one set, a message only when set. */
static bool enc_present(const ProtobufCMessage *m, field *f)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(uint32_t *)member(m, f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE &&
	    f->type != PROTOBUF_C_TYPE_STRING)
		return *(protobuf_c_boolean *)member(m, f->quantifier_offset);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
	    f->label != PROTOBUF_C_LABEL_REPEATED)
		return *(void **)member(m, f->offset) != NULL;
	return true;
}

json_t *nqi_jsonpb_encode(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o = json_object();
	for (unsigned i = 0; o && i < d->n_fields; i++) {
		field *f = &d->fields[i];
		if (!enc_present(m, f))
			continue;
		json_t *v = f->label == PROTOBUF_C_LABEL_REPEATED
		                ? enc_repeated(m, f)
		                : enc_one(m, f, member(m, f->offset));
		if (!v || json_object_set_new(o, f->name, v) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* ---- encoding straight to text ---- */

/*
 * nqi_jsonpb_text writes what nqi_json_dumps(nqi_jsonpb_encode(m)) would,
 * byte for byte, without the tree: numbers, booleans, enums, text and
 * messages directly, the rest (reals, bytes and payloads, text that is
 * not UTF-8) through the jansson value enc_one makes of it.
 */
static void wr_message(nqi_jbuf *b, const ProtobufCMessage *m);

static void wr_json(nqi_jbuf *b, json_t *v)
{
	if (v)
		nqi_jbuf_value(b, v);
	else
		b->failed = true;
	json_decref(v);
}

static void wr_num(nqi_jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void wr_num(nqi_jbuf *b, const char *fmt, ...)
{
	char num[32];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(num, sizeof num, fmt, ap);
	va_end(ap);
	nqi_jbuf_put(b, num, (size_t)n);
}

static void wr_one(
    nqi_jbuf *b, const ProtobufCMessage *m, field *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return wr_num(b, "%" PRId32, *(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return wr_num(b, "%" PRIu32, *(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return wr_num(b, "%" PRId64, *(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t v = *(const uint64_t *)p;
		return wr_num(
		    b, v <= INT64_MAX ? "%" PRIu64 : "\"%" PRIu64 "\"", v);
	}
	case PROTOBUF_C_TYPE_BOOL:
		return nqi_jbuf_put(b,
		    *(const protobuf_c_boolean *)p ? "true" : "false",
		    *(const protobuf_c_boolean *)p ? 4 : 5);
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(
		        f->descriptor, *(const int *)p);
		char name[96];
		if (!ev)
			return wr_num(b, "%d", *(const int *)p);
		enum_json_name(f->descriptor, ev->name, name, sizeof name);
		return nqi_jbuf_string(b, name, strlen(name));
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		size_t n = s ? strlen(s) : 0;
		if (nqi_utf8_valid(s ? s : "", n))
			return nqi_jbuf_string(b, s ? s : "", n);
		return wr_json(b, enc_one(m, f, p));
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		if (sub)
			return wr_message(b, sub);
		return nqi_jbuf_put(b, "null", 4);
	}
	default:
		return wr_json(b, enc_one(m, f, p));
	}
}

static void wr_message(nqi_jbuf *b, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	bool first = true;
	nqi_jbuf_put(b, "{", 1);
	for (unsigned i = 0; i < d->n_fields; i++) {
		field *f = &d->fields[i];
		if (!enc_present(m, f))
			continue;
		if (!first)
			nqi_jbuf_put(b, ",", 1);
		first = false;
		nqi_jbuf_string(b, f->name, strlen(f->name));
		nqi_jbuf_put(b, ":", 1);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			wr_one(b, m, f, member(m, f->offset));
			continue;
		}
		size_t n = *(size_t *)member(m, f->quantifier_offset);
		const char *arr = *(char **)member(m, f->offset);
		nqi_jbuf_put(b, "[", 1);
		for (size_t k = 0; k < n; k++) {
			if (k)
				nqi_jbuf_put(b, ",", 1);
			wr_one(b, m, f, arr + k * nqi_pb_value_size(f->type));
		}
		nqi_jbuf_put(b, "]", 1);
	}
	nqi_jbuf_put(b, "}", 1);
}

char *nqi_jsonpb_text(const ProtobufCMessage *m)
{
	nqi_jbuf b = {0};
	wr_message(&b, m);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- decoding ---- */

typedef struct dec {
	char path[PATH_MAX_LEN];
	char *err;
	size_t errlen;
} dec;

/* Appends to the path at plen: ".key" (or "key" first), or "[i]". On
 * every field of every request, so no printf. */
static void path_key(dec *x, size_t plen, const char *key)
{
	size_t n = strlen(key), dot = plen ? 1 : 0;
	if (plen + dot + n >= sizeof x->path)
		n = sizeof x->path - plen - dot - 1;
	if (dot)
		x->path[plen] = '.';
	memcpy(x->path + plen + dot, key, n);
	x->path[plen + dot + n] = '\0';
}

static void path_index(dec *x, size_t plen, size_t i)
{
	char digits[24];
	size_t n = 0;
	do
		digits[n++] = (char)('0' + i % 10);
	while ((i /= 10) && n < sizeof digits);
	if (plen + n + 3 > sizeof x->path)
		return;
	x->path[plen++] = '[';
	while (n)
		x->path[plen++] = digits[--n];
	x->path[plen++] = ']';
	x->path[plen] = '\0';
}

static int bad(dec *x, const char *fmt, const char *what)
{
	snprintf(x->err, x->errlen, "%s: %s%s", x->path[0] ? x->path : "body",
	    fmt, what ? what : "");
	return NQ_EINVAL;
}

/* A whole number from a JSON integer or a string of digits (a duration
 * too, for a field in milliseconds). */
static int dec_int(dec *x, field *f, const json_t *j, bool is_signed,
    int64_t *sv, uint64_t *uv)
{
	if (json_is_integer(j)) {
		json_int_t v = json_integer_value(j);
		if (!is_signed && v < 0)
			return bad(x, "want a number of at least 0", NULL);
		*sv = v;
		*uv = (uint64_t)v;
		return NQ_OK;
	}
	const char *s = json_is_string(j) ? json_string_value(j) : NULL;
	size_t nl = strlen(f->name);
	bool ms = nl > 3 && strcmp(f->name + nl - 3, "_ms") == 0;
	char *end;
	if (!s || !*s)
		return bad(x, "want an integer", NULL);
	if (!is_signed && ms && nqi_parse_duration_ms(s, uv) == NQ_OK) {
		*sv = (int64_t)*uv;
		return NQ_OK;
	}
	errno = 0;
	if (is_signed) {
		*sv = strtoll(s, &end, 10);
		*uv = (uint64_t)*sv;
	} else {
		*uv = s[0] == '-' ? 0 : strtoull(s, &end, 10);
		*sv = (int64_t)*uv;
		if (s[0] == '-')
			return bad(x, "want a number of at least 0", NULL);
	}
	if (errno || *end)
		return bad(x,
		    ms ? "want an integer or a duration (30s)"
		       : "want an integer",
		    NULL);
	return NQ_OK;
}

static int dec_number(dec *x, field *f, const json_t *j, void *p)
{
	int64_t sv = 0;
	uint64_t uv = 0;
	bool is_signed = f->type == PROTOBUF_C_TYPE_INT32 ||
	                 f->type == PROTOBUF_C_TYPE_SINT32 ||
	                 f->type == PROTOBUF_C_TYPE_SFIXED32 ||
	                 f->type == PROTOBUF_C_TYPE_INT64 ||
	                 f->type == PROTOBUF_C_TYPE_SINT64 ||
	                 f->type == PROTOBUF_C_TYPE_SFIXED64;
	int rv = dec_int(x, f, j, is_signed, &sv, &uv);
	if (rv != NQ_OK)
		return rv;
	switch (nqi_pb_value_size(f->type)) {
	case 8:
		if (is_signed)
			*(int64_t *)p = sv;
		else
			*(uint64_t *)p = uv;
		return NQ_OK;
	default:
		if (is_signed ? sv < INT32_MIN || sv > INT32_MAX
		              : uv > UINT32_MAX)
			return bad(x, "out of range for a 32-bit number", NULL);
		if (is_signed)
			*(int32_t *)p = (int32_t)sv;
		else
			*(uint32_t *)p = (uint32_t)uv;
		return NQ_OK;
	}
}

static int dec_real(dec *x, field *f, const json_t *j, void *p)
{
	if (!json_is_number(j))
		return bad(x, "want a number", NULL);
	double v = json_number_value(j);
	if (f->type == PROTOBUF_C_TYPE_FLOAT)
		*(float *)p = (float)v;
	else
		*(double *)p = v;
	return NQ_OK;
}

static int dec_bool(dec *x, const json_t *j, void *p)
{
	const char *s = json_is_string(j) ? json_string_value(j) : NULL;
	if (json_is_boolean(j))
		*(protobuf_c_boolean *)p = json_is_true(j);
	else if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0))
		*(protobuf_c_boolean *)p = s[0] == 't';
	else
		return bad(x, "want true or false", NULL);
	return NQ_OK;
}

static int dec_enum(dec *x, field *f, const json_t *j, void *p)
{
	const ProtobufCEnumDescriptor *ed = f->descriptor;
	if (json_is_integer(j) && protobuf_c_enum_descriptor_get_value(
	                              ed, (int)json_integer_value(j))) {
		*(int *)p = (int)json_integer_value(j);
		return NQ_OK;
	}
	const char *s = json_is_string(j) ? json_string_value(j) : "";
	for (unsigned i = 0; i < ed->n_values; i++) {
		char name[96];
		enum_json_name(ed, ed->values[i].name, name, sizeof name);
		if (strcmp(s, name) == 0 ||
		    strcmp(s, ed->values[i].name) == 0) {
			*(int *)p = ed->values[i].value;
			return NQ_OK;
		}
	}
	return bad(x, "not a value of ", ed->short_name);
}

static int dec_string(dec *x, const json_t *j, void *p)
{
	if (!json_is_string(j))
		return bad(x, "want a string", NULL);
	size_t n = json_string_length(j);
	const char *s = json_string_value(j);
	if (strlen(s) != n)
		return bad(x, "a string holds a NUL character", NULL);
	char *c = strdup(s);
	if (!c)
		return NQ_ENOMEM;
	*(char **)p = c;
	return NQ_OK;
}

static int dec_base64(dec *x, const json_t *j, ProtobufCBinaryData *b)
{
	if (!json_is_string(j))
		return bad(x, "want a base64 string", NULL);
	int rv = nqi_base64_decode(
	    json_string_value(j), json_string_length(j), &b->data, &b->len);
	if (rv == NQ_EINVAL)
		return bad(x, "not base64", NULL);
	return rv;
}

static int dec_object(dec *x, ProtobufCMessage *m, const json_t *j);

static int dec_message(dec *x, field *f, const json_t *j, void *p)
{
	if (!json_is_object(j))
		return bad(x, "want an object", NULL);
	ProtobufCMessage *sub = nqi_jsonpb_new(f->descriptor);
	if (!sub)
		return NQ_ENOMEM;
	*(ProtobufCMessage **)p = sub;
	return dec_object(x, sub, j);
}

static int dec_one(dec *x, field *f, const json_t *j, void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return dec_real(x, f, j, p);
	case PROTOBUF_C_TYPE_BOOL:
		return dec_bool(x, j, p);
	case PROTOBUF_C_TYPE_ENUM:
		return dec_enum(x, f, j, p);
	case PROTOBUF_C_TYPE_STRING:
		return dec_string(x, j, p);
	case PROTOBUF_C_TYPE_BYTES:
		return dec_base64(x, j, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return dec_message(x, f, j, p);
	default:
		return dec_number(x, f, j, p);
	}
}

/* A repeated field from an array, or from "a,b" (a query argument). */
static int dec_repeated(dec *x, ProtobufCMessage *m, field *f, json_t *j)
{
	json_t *split = NULL;
	if (json_is_string(j)) {
		split = json_array();
		char *s = strdup(json_string_value(j)), *save = NULL;
		for (char *t = s ? strtok_r(s, ",", &save) : NULL; t && split;
		     t = strtok_r(NULL, ",", &save))
			json_array_append_new(split, json_string(t));
		free(s);
		j = split;
	}
	if (!json_is_array(j))
		return bad(x, "want an array", NULL);
	size_t n = json_array_size(j), es = nqi_pb_value_size(f->type);
	char *arr = calloc(n ? n : 1, es);
	int rv = arr ? NQ_OK : NQ_ENOMEM;
	*(void **)member(m, f->offset) = arr;
	size_t plen = strlen(x->path);
	for (size_t i = 0; rv == NQ_OK && i < n; i++) {
		path_index(x, plen, i);
		rv = dec_one(x, f, json_array_get(j, i), arr + i * es);
		/* A message that failed half-way is counted, so that it is
		 * freed with the rest. */
		bool keep =
		    rv == NQ_OK || (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		                       ((void **)arr)[i] != NULL);
		*(size_t *)member(m, f->quantifier_offset) = i + keep;
	}
	x->path[plen] = '\0';
	json_decref(split);
	return rv;
}

/* An empty content_type beside a JSON payload names msgpack, which the
 * payload was made into. The empty one is the shared empty string, or a
 * copy when the body gave "" itself. */
static int set_msgpack_type(char **type)
{
	char *t = strdup("application/msgpack");
	if (!t)
		return NQ_ENOMEM;
	if (*type != (char *)protobuf_c_empty_string)
		free(*type);
	*type = t;
	return NQ_OK;
}

/* The payload of a message with a content_type: a JSON value as msgpack
 * unless the type says otherwise. */
static int dec_payload(dec *x, ProtobufCMessage *m, field *f, const json_t *j)
{
	field *ct = protobuf_c_message_descriptor_get_field_by_name(
	    m->descriptor, "content_type");
	char **type = ct ? (char **)member(m, ct->offset) : NULL;
	ProtobufCBinaryData *b = member(m, f->offset);
	if (!type || (**type && !nqi_content_type_is_msgpack(*type)))
		return dec_base64(x, j, b);
	char why[200] = "";
	int rv = nqi_jansson_to_msgpack(
	    (json_t *)j, &b->data, &b->len, why, sizeof why);
	if (rv == NQ_EINVAL)
		return bad(x, why, NULL);
	if (rv == NQ_OK && !**type)
		rv = set_msgpack_type(type);
	return rv;
}

static int dec_field(dec *x, ProtobufCMessage *m, field *f, json_t *j)
{
	if (json_is_null(j))
		return NQ_OK;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return dec_repeated(x, m, f, j);
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = member(m, f->quantifier_offset);
		if (*which)
			return bad(x, "only one of its kind may be set", NULL);
		*which = f->id;
	} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
	           f->quantifier_offset && f->type != PROTOBUF_C_TYPE_MESSAGE &&
	           f->type != PROTOBUF_C_TYPE_STRING) {
		*(protobuf_c_boolean *)member(m, f->quantifier_offset) = 1;
	}
	if (f->type == PROTOBUF_C_TYPE_BYTES && strcmp(f->name, "payload") == 0)
		return dec_payload(x, m, f, j);
	return dec_one(x, f, j, member(m, f->offset));
}

/* Fields in JSON order, the payload last: it reads its content_type. */
static int dec_fields(dec *x, ProtobufCMessage *m, json_t *j, bool payload)
{
	const char *key;
	json_t *v;
	size_t plen = strlen(x->path);
	json_object_foreach(j, key, v)
	{
		if ((strcmp(key, "payload") == 0) != payload)
			continue;
		path_key(x, plen, key);
		field *f = protobuf_c_message_descriptor_get_field_by_name(
		    m->descriptor, key);
		int rv =
		    f ? dec_field(x, m, f, v)
		      : bad(x, "no such field in ", m->descriptor->short_name);
		if (rv != NQ_OK)
			return rv;
		x->path[plen] = '\0';
	}
	return NQ_OK;
}

static int dec_object(dec *x, ProtobufCMessage *m, const json_t *j)
{
	if (!json_is_object(j))
		return bad(x, "want a JSON object", NULL);
	int rv = dec_fields(x, m, (json_t *)j, false);
	return rv == NQ_OK ? dec_fields(x, m, (json_t *)j, true) : rv;
}

int nqi_jsonpb_decode(
    ProtobufCMessage *m, const json_t *j, char *err, size_t errlen)
{
	dec x = {.err = err, .errlen = errlen};
	return dec_object(&x, m, j);
}

ProtobufCMessage *nqi_jsonpb_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

/* ---- reading JSON text directly ---- */

/*
 * A reader of JSON text straight into a message, for the bodies of the
 * JSON API: jansson builds a tree of allocations for every value, which
 * costs a batch of 1,000 jobs more than the broker's whole work on it.
 * The reader walks the text once; objects of messages and arrays of them
 * are read here, a scalar becomes one jansson value handed to dec_field
 * (so every rule of the mapping above is the same code), a payload for
 * msgpack is written as msgpack from the text, and any other value is
 * parsed by jansson from its span. It takes the plain case only: anything
 * it is not sure of (an escape \u, a duplicate key, a number jansson would
 * refuse, an error of any kind) makes it give up with NQ_EINVAL, and the
 * caller reads the body the general way, which tells what was wrong.
 */
typedef struct rd {
	const char *p, *end;
	dec x;
	const char *watch; /* a key whose presence makes it give up */
	char *buf;         /* unescaped strings */
	size_t cap;
} rd;

#define RD_NO NQ_EINVAL /* not taken: read it the general way */

static void rd_ws(rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' ||
	                            *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static bool rd_eat(rd *r, char c)
{
	rd_ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

/* A string at r->p (its opening quote) into *s, *n: the text itself when
 * it has no escape, else unescaped into r->buf; valid UTF-8, no control
 * characters, no \u (left to jansson). */
static int rd_string(rd *r, const char **s, size_t *n)
{
	if (r->p >= r->end || *r->p != '"')
		return RD_NO;
	/* printable ASCII but for the quote and the backslash */
	static const bool plain[256] = {[0x20 ... 0x21] = true,
	    [0x23 ... 0x5b] = true,
	    [0x5d ... 0x7f] = true};
	const char *a = ++r->p;
	while (r->p < r->end && plain[(unsigned char)*r->p])
		r->p++;
	bool ascii = r->p < r->end && *r->p == '"';
	while (r->p < r->end && *r->p != '"' && *r->p != '\\' &&
	       (unsigned char)*r->p >= 0x20)
		r->p++;
	if (r->p < r->end && *r->p == '"') {
		*s = a;
		*n = (size_t)(r->p++ - a);
		return ascii || nqi_utf8_valid(*s, *n) ? NQ_OK : RD_NO;
	}
	size_t len = 0;
	for (r->p = a; r->p < r->end && *r->p != '"'; r->p++) {
		char c = *r->p;
		if ((unsigned char)c < 0x20)
			return RD_NO;
		if (c == '\\') {
			if (++r->p >= r->end)
				return RD_NO;
			const char *from = "\"\\/bfnrt",
			           *to = "\"\\/\b\f\n\r\t";
			const char *k = strchr(from, *r->p);
			if (!k || !*r->p)
				return RD_NO; /* \u and anything odd */
			c = to[k - from];
		}
		if (NQI_GROW(r->buf, r->cap, len + 1, 256) != 0)
			return NQ_ENOMEM;
		r->buf[len++] = c;
	}
	if (r->p >= r->end)
		return RD_NO;
	r->p++;
	*s = r->buf;
	*n = len;
	return nqi_utf8_valid(*s, *n) ? NQ_OK : RD_NO;
}

/* A number as JSON writes it (what jansson takes, no more): its span. */
static int rd_number(rd *r, bool *real)
{
	const char *p = r->p;
	*real = false;
	if (p < r->end && *p == '-')
		p++;
	if (p < r->end && *p == '0')
		p++;
	else if (p < r->end && *p >= '1' && *p <= '9')
		while (p < r->end && isdigit((unsigned char)*p))
			p++;
	else
		return RD_NO;
	if (p < r->end && *p == '.') {
		*real = true;
		if (++p >= r->end || !isdigit((unsigned char)*p))
			return RD_NO;
		while (p < r->end && isdigit((unsigned char)*p))
			p++;
	}
	if (p < r->end && (*p == 'e' || *p == 'E')) {
		*real = true;
		if (++p < r->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= r->end || !isdigit((unsigned char)*p))
			return RD_NO;
		while (p < r->end && isdigit((unsigned char)*p))
			p++;
	}
	if (p - r->p > 40)
		return RD_NO;
	r->p = p;
	return NQ_OK;
}

/* The number just read (at a, to r->p): an integer that fits, or a
 * finite real. */
static int rd_number_value(
    rd *r, const char *a, bool real, json_int_t *iv, double *dv)
{
	char text[48];
	char *end;
	memcpy(text, a, (size_t)(r->p - a));
	text[r->p - a] = '\0';
	errno = 0;
	if (real)
		*dv = strtod(text, &end);
	else
		*iv = strtoll(text, &end, 10);
	return errno || *end ? RD_NO : NQ_OK;
}

static bool rd_word(rd *r, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0 ||
	    (r->p + n < r->end && isalnum((unsigned char)r->p[n])))
		return false;
	r->p += n;
	return true;
}

/* Skips one value (for its span); strings are checked as rd_string does. */
static int rd_skip(rd *r, int depth)
{
	const char *s;
	size_t n;
	bool real;
	rd_ws(r);
	if (r->p >= r->end || depth > NQI_JSON_MAX_DEPTH)
		return RD_NO;
	if (*r->p == '"')
		return rd_string(r, &s, &n);
	if (*r->p == '{' || *r->p == '[') {
		char close = *r->p++ == '{' ? '}' : ']';
		if (rd_eat(r, close))
			return NQ_OK;
		do {
			int rv = close == '}' ? (rd_ws(r), rd_string(r, &s, &n))
			                      : NQ_OK;
			if (rv == NQ_OK && close == '}' && !rd_eat(r, ':'))
				rv = RD_NO;
			if (rv == NQ_OK)
				rv = rd_skip(r, depth + 1);
			if (rv != NQ_OK)
				return rv;
		} while (rd_eat(r, ','));
		return rd_eat(r, close) ? NQ_OK : RD_NO;
	}
	if (rd_word(r, "true") || rd_word(r, "false") || rd_word(r, "null"))
		return NQ_OK;
	return rd_number(r, &real);
}

/* A scalar at r->p as a jansson value (a new reference); *out NULL for
 * an array or an object, which the caller reads from its span. */
static int rd_scalar(rd *r, json_t **out)
{
	const char *a = r->p, *s;
	size_t n;
	bool real;
	json_int_t iv = 0;
	double dv = 0;
	*out = NULL;
	if (*r->p == '{' || *r->p == '[')
		return NQ_OK;
	int rv = NQ_OK;
	if (*r->p == '"') {
		if ((rv = rd_string(r, &s, &n)) == NQ_OK)
			*out = json_stringn_nocheck(s, n);
	} else if (rd_word(r, "true")) {
		*out = json_true();
	} else if (rd_word(r, "false")) {
		*out = json_false();
	} else if (rd_word(r, "null")) {
		*out = json_null();
	} else if ((rv = rd_number(r, &real)) == NQ_OK &&
	           (rv = rd_number_value(r, a, real, &iv, &dv)) == NQ_OK) {
		*out = real ? json_real(dv) : json_integer(iv);
	}
	return rv != NQ_OK ? rv : *out ? NQ_OK : NQ_ENOMEM;
}

/* The value at r->p as jansson reads it: a scalar, or its span parsed. */
static int rd_jansson(rd *r, json_t **out)
{
	const char *a = r->p;
	int rv = rd_scalar(r, out);
	if (rv != NQ_OK || *out)
		return rv;
	if ((rv = rd_skip(r, 0)) != NQ_OK)
		return rv;
	*out = json_loadb(a, (size_t)(r->p - a), 0, NULL);
	return *out ? NQ_OK : RD_NO;
}

/* ---- a payload straight to msgpack ---- */

typedef struct mp_out {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} mp_out;

static int mp_value_of(rd *r, mp_out *o, int depth);

/* Puts the header of a map or an array of n in front of what was written
 * since at: its size is known only now. */
static int mp_head_at(mp_out *o, size_t at, bool map, uint32_t n)
{
	size_t body = o->sb.size - at;
	int rv =
	    map ? msgpack_pack_map(&o->pk, n) : msgpack_pack_array(&o->pk, n);
	if (rv != 0)
		return NQ_ENOMEM;
	size_t head = o->sb.size - at - body;
	char h[8];
	memcpy(h, o->sb.data + at + body, head);
	memmove(o->sb.data + at + head, o->sb.data + at, body);
	memcpy(o->sb.data + at, h, head);
	return NQ_OK;
}

static int mp_str(mp_out *o, const char *s, size_t n)
{
	return msgpack_pack_str(&o->pk, n) ||
	               msgpack_pack_str_body(&o->pk, s, n)
	           ? NQ_ENOMEM
	           : NQ_OK;
}

#define MP_KEYS_MAX 64

static int mp_object(rd *r, mp_out *o, int depth)
{
	size_t at = o->sb.size, keys[MP_KEYS_MAX], klen[MP_KEYS_MAX];
	uint32_t n = 0;
	const char *s;
	size_t sl;
	if (!rd_eat(r, '}')) {
		do {
			rd_ws(r);
			int rv = rd_string(r, &s, &sl);
			if (rv != NQ_OK)
				return rv;
			if (n == MP_KEYS_MAX)
				return RD_NO;
			for (uint32_t i = 0; i < n; i++)
				if (klen[i] == sl &&
				    memcmp(o->sb.data + keys[i], s, sl) == 0)
					return RD_NO; /* a duplicate */
			if ((rv = mp_str(o, s, sl)) != NQ_OK)
				return rv;
			keys[n] = o->sb.size - sl;
			klen[n++] = sl;
			if (!rd_eat(r, ':'))
				return RD_NO;
			if ((rv = mp_value_of(r, o, depth)) != NQ_OK)
				return rv;
		} while (rd_eat(r, ','));
		if (!rd_eat(r, '}'))
			return RD_NO;
	}
	return mp_head_at(o, at, true, n);
}

static int mp_array_of(rd *r, mp_out *o, int depth)
{
	size_t at = o->sb.size;
	uint32_t n = 0;
	if (!rd_eat(r, ']')) {
		do {
			int rv = mp_value_of(r, o, depth);
			if (rv != NQ_OK)
				return rv;
			n++;
		} while (rd_eat(r, ','));
		if (!rd_eat(r, ']'))
			return RD_NO;
	}
	return mp_head_at(o, at, false, n);
}

/* A value as nqi_jansson_to_msgpack writes it, byte for byte. depth
 * counts the arrays and objects around it. */
static int mp_value_of(rd *r, mp_out *o, int depth)
{
	const char *a, *s;
	size_t n;
	bool real;
	json_int_t iv = 0;
	double dv = 0;
	rd_ws(r);
	if (r->p >= r->end)
		return RD_NO;
	a = r->p;
	if (*r->p == '{' || *r->p == '[') {
		if (depth >= NQI_JSON_MAX_DEPTH)
			return RD_NO;
		return *r->p++ == '{' ? mp_object(r, o, depth + 1)
		                      : mp_array_of(r, o, depth + 1);
	}
	if (*r->p == '"') {
		int rv = rd_string(r, &s, &n);
		return rv == NQ_OK ? mp_str(o, s, n) : rv;
	}
	int rv = 0;
	if (rd_word(r, "true"))
		rv = msgpack_pack_true(&o->pk);
	else if (rd_word(r, "false"))
		rv = msgpack_pack_false(&o->pk);
	else if (rd_word(r, "null"))
		rv = msgpack_pack_nil(&o->pk);
	else if (rd_number(r, &real) != NQ_OK ||
	         rd_number_value(r, a, real, &iv, &dv) != NQ_OK)
		return RD_NO;
	else
		rv = real ? msgpack_pack_double(&o->pk, dv)
		          : msgpack_pack_int64(&o->pk, iv);
	return rv ? NQ_ENOMEM : NQ_OK;
}

/* The value at r->p as msgpack (NULL for a JSON null), malloc'd. */
static int mp_read(rd *r, ProtobufCBinaryData *out)
{
	rd_ws(r);
	*out = (ProtobufCBinaryData){0, NULL};
	if (rd_word(r, "null"))
		return NQ_OK;
	mp_out o;
	msgpack_sbuffer_init(&o.sb);
	if (!(o.sb.data = malloc(256)))
		return NQ_ENOMEM;
	o.sb.alloc = 256;
	msgpack_packer_init(&o.pk, &o.sb, msgpack_sbuffer_write);
	int rv = mp_value_of(r, &o, 0);
	if (rv != NQ_OK || !o.sb.data) {
		msgpack_sbuffer_destroy(&o.sb);
		return rv != NQ_OK ? rv : NQ_ENOMEM;
	}
	*out = (ProtobufCBinaryData){o.sb.size, (uint8_t *)o.sb.data};
	return NQ_OK;
}

/* The payload field f of m, once the other fields are read: *mp (what
 * mp_read made of the value at at; taken) when its content_type is
 * msgpack or empty, else the value read again as dec_payload reads it. */
static int rd_payload(rd *r, ProtobufCMessage *m, field *f, const char *at,
    ProtobufCBinaryData *mp)
{
	field *ct = protobuf_c_message_descriptor_get_field_by_name(
	    m->descriptor, "content_type");
	char **type = ct ? (char **)member(m, ct->offset) : NULL;
	if (!type || (**type && !nqi_content_type_is_msgpack(*type))) {
		json_t *j;
		const char *after = r->p;
		r->p = at;
		int rv = rd_jansson(r, &j);
		if (rv == NQ_OK)
			rv = dec_field(&r->x, m, f, j) == NQ_OK ? NQ_OK : RD_NO;
		json_decref(j);
		r->p = after;
		return rv;
	}
	if (!mp->data)
		return NQ_OK; /* null */
	*(ProtobufCBinaryData *)member(m, f->offset) = *mp;
	*mp = (ProtobufCBinaryData){0, NULL};
	return **type ? NQ_OK : set_msgpack_type(type);
}

/* ---- messages ---- */

static int rd_object(rd *r, ProtobufCMessage *m, int depth);

/* A repeated message field from the array at r->p (past its '['). */
static int rd_messages(rd *r, ProtobufCMessage *m, field *f, int depth)
{
	size_t *n = member(m, f->quantifier_offset), cap = 0;
	ProtobufCMessage ***arr = member(m, f->offset);
	if (*n || *arr)
		return RD_NO;
	if (rd_eat(r, ']'))
		return RD_NO; /* none: the general way allocates one */
	do {
		if (NQI_GROW(*arr, cap, *n + 1, 16) != 0)
			return NQ_ENOMEM;
		ProtobufCMessage *sub = nqi_jsonpb_new(f->descriptor);
		if (!sub)
			return NQ_ENOMEM;
		(*arr)[(*n)++] = sub; /* counted: freed with the rest */
		int rv = rd_eat(r, '{') ? rd_object(r, sub, depth + 1) : RD_NO;
		if (rv != NQ_OK)
			return rv;
	} while (rd_eat(r, ','));
	return rd_eat(r, ']') ? NQ_OK : RD_NO;
}

/* A message field from the object at r->p (past its '{'). */
static int rd_message(rd *r, ProtobufCMessage *m, field *f, int depth)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = member(m, f->quantifier_offset);
		if (*which)
			return RD_NO;
		*which = f->id;
	}
	ProtobufCMessage *sub = nqi_jsonpb_new(f->descriptor);
	if (!sub)
		return NQ_ENOMEM;
	*(ProtobufCMessage **)member(m, f->offset) = sub;
	return rd_object(r, sub, depth + 1);
}

/* The value of field f of m at r->p. */
static int rd_field(rd *r, ProtobufCMessage *m, field *f, int depth)
{
	rd_ws(r);
	if (r->p >= r->end)
		return RD_NO;
	bool msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
	if (msg && *r->p == '[' && f->label == PROTOBUF_C_LABEL_REPEATED) {
		r->p++;
		return rd_messages(r, m, f, depth);
	}
	if (msg && *r->p == '{' && f->label != PROTOBUF_C_LABEL_REPEATED) {
		r->p++;
		return rd_message(r, m, f, depth);
	}
	json_t *j;
	int rv = rd_jansson(r, &j);
	if (rv == NQ_OK && dec_field(&r->x, m, f, j) != NQ_OK)
		rv = RD_NO;
	json_decref(j);
	return rv;
}

/* The fields of m from the object at r->p (past its '{'), the payload
 * last: it reads its content_type. A key twice gives up. */
static int rd_object(rd *r, ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	uint64_t seen = 0;
	const char *payload = NULL, *s;
	ProtobufCBinaryData mp = {0, NULL};
	field *pf = NULL;
	size_t n;
	char key[64];
	if (depth > NQI_JSON_MAX_DEPTH || d->n_fields > 64)
		return RD_NO;
	if (rd_eat(r, '}'))
		return NQ_OK;
	int rv;
	do {
		rd_ws(r);
		rv = rd_string(r, &s, &n);
		if (rv != NQ_OK || n >= sizeof key || !rd_eat(r, ':')) {
			rv = rv != NQ_OK ? rv : RD_NO;
			break;
		}
		memcpy(key, s, n);
		key[n] = '\0';
		field *f =
		    protobuf_c_message_descriptor_get_field_by_name(d, key);
		uint64_t bit = f ? 1ull << (f - d->fields) : 0;
		if (!f || (r->watch && strcmp(key, r->watch) == 0) ||
		    (seen & bit)) {
			rv = RD_NO;
			break;
		}
		seen |= bit;
		if (f->type == PROTOBUF_C_TYPE_BYTES &&
		    strcmp(f->name, "payload") == 0) {
			rd_ws(r);
			payload = r->p;
			pf = f;
			rv = mp_read(r, &mp); /* msgpack, most likely */
		} else {
			rv = rd_field(r, m, f, depth);
		}
	} while (rv == NQ_OK && rd_eat(r, ','));
	if (rv == NQ_OK && !rd_eat(r, '}'))
		rv = RD_NO;
	if (rv == NQ_OK && payload)
		rv = rd_payload(r, m, pf, payload, &mp);
	free(mp.data);
	return rv;
}

int nqi_jsonpb_read(
    ProtobufCMessage *m, const char *text, size_t len, const char *watch)
{
	char err[200];
	rd r = {.p = text, .end = text + len, .watch = watch};
	r.x.err = err;
	r.x.errlen = sizeof err;
	int rv = rd_eat(&r, '{') ? rd_object(&r, m, 0) : RD_NO;
	rd_ws(&r);
	if (rv == NQ_OK && r.p != r.end)
		rv = RD_NO;
	free(r.buf);
	return rv;
}
