#include "nqi/json.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nq/nq.h"
#include "nqi/util.h"

/* ---- UTF-8 and base64 ---- */

bool nqi_text_printable(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = nqi_utf8_decode(p + i, len - i, &cp);
		if (n == 0)
			return false;
		/* C0 and C1 controls can drive a terminal; only the three
		 * layout characters are text. */
		bool layout = cp == '\t' || cp == '\n' || cp == '\r';
		if ((cp < 0x20 && !layout) || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += n;
	}
	return true;
}

json_t *nqi_json_string_lossy(const void *s, size_t n)
{
	const uint8_t *p = s ? s : (const void *)"";
	if (nqi_utf8_valid(p, n))
		return json_stringn((const char *)p, n);
	if (n > SIZE_MAX / 3)
		return NULL;
	char *fixed = malloc(n * 3);
	if (!fixed)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t len = nqi_utf8_char_len(p + i, n - i);
		if (len) {
			memcpy(fixed + o, p + i, len);
			o += len;
			i += len;
		} else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	json_t *str = json_stringn(fixed, o);
	free(fixed);
	return str;
}

bool nqi_content_type_is_msgpack(const char *content_type)
{
	static const char *const names[] = {"application/msgpack",
	    "application/x-msgpack", "application/vnd.msgpack"};
	size_t len = content_type ? strcspn(content_type, "; \t") : 0;
	for (size_t i = 0; len && i < sizeof names / sizeof *names; i++)
		if (strlen(names[i]) == len &&
		    strncasecmp(names[i], content_type, len) == 0)
			return true;
	return false;
}

char *nqi_base64_encode(const void *buf, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = buf;
	if (len > (SIZE_MAX / 4 - 1) * 3)
		return NULL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? abc[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int nqi_base64_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
	while (n && s[n - 1] == '=' && n % 4 != 1)
		n--;
	if (n % 4 == 1)
		return NQ_EINVAL;
	uint8_t *o = malloc(n / 4 * 3 + 3);
	size_t k = 0;
	uint32_t acc = 0;
	if (!o)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);
		if (v < 0) {
			free(o);
			return NQ_EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			o[k++] = (uint8_t)(acc >> 16);
			o[k++] = (uint8_t)(acc >> 8);
			o[k++] = (uint8_t)acc;
		}
	}
	if (n % 4 == 2)
		o[k++] = (uint8_t)(acc >> 4);
	else if (n % 4 == 3) {
		o[k++] = (uint8_t)(acc >> 10);
		o[k++] = (uint8_t)(acc >> 2);
	}
	*out = o;
	*len = k;
	return NQ_OK;
}

/* ---- JSON -> msgpack ---- */

static int pack_value(
    msgpack_packer *pk, json_t *v, int depth, char *err, size_t errlen);

static int pack_object(
    msgpack_packer *pk, json_t *v, int depth, char *err, size_t errlen)
{
	const char *key;
	size_t key_len;
	json_t *member;
	if (msgpack_pack_map(pk, json_object_size(v)) != 0)
		return NQ_ENOMEM;
	json_object_keylen_foreach(v, key, key_len, member)
	{
		if (msgpack_pack_str(pk, key_len) != 0 ||
		    msgpack_pack_str_body(pk, key, key_len) != 0)
			return NQ_ENOMEM;
		int rv = pack_value(pk, member, depth, err, errlen);
		if (rv != NQ_OK)
			return rv;
	}
	return NQ_OK;
}

static int pack_array(
    msgpack_packer *pk, json_t *v, int depth, char *err, size_t errlen)
{
	size_t i;
	json_t *e;
	if (msgpack_pack_array(pk, json_array_size(v)) != 0)
		return NQ_ENOMEM;
	json_array_foreach(v, i, e)
	{
		int rv = pack_value(pk, e, depth, err, errlen);
		if (rv != NQ_OK)
			return rv;
	}
	return NQ_OK;
}

static int pack_scalar(msgpack_packer *pk, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return msgpack_pack_str(pk, json_string_length(v)) ||
		       msgpack_pack_str_body(
		           pk, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		/* Packs non-negative values as uint, in the fewest bytes. */
		return msgpack_pack_int64(pk, json_integer_value(v));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(v));
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	default:
		return msgpack_pack_nil(pk);
	}
}

/* depth counts the arrays and objects around v. */
static int pack_value(
    msgpack_packer *pk, json_t *v, int depth, char *err, size_t errlen)
{
	if (!json_is_object(v) && !json_is_array(v))
		return pack_scalar(pk, v) == 0 ? NQ_OK : NQ_ENOMEM;
	if (depth >= NQI_JSON_MAX_DEPTH) {
		snprintf(err, errlen,
		    "arrays and objects nest deeper than %d levels",
		    NQI_JSON_MAX_DEPTH);
		return NQ_EINVAL;
	}
	if (json_is_object(v))
		return pack_object(pk, v, depth + 1, err, errlen);
	return pack_array(pk, v, depth + 1, err, errlen);
}

int nqi_json_to_msgpack(
    const char *json, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	json_error_t jerr;
	if (!json) {
		snprintf(err, errlen, "no JSON text");
		return NQ_EINVAL;
	}
	json_t *root =
	    json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return NQ_ENOMEM;
		snprintf(err, errlen, "line %d, column %d: %s", jerr.line,
		    jerr.column, jerr.text);
		return NQ_EINVAL;
	}
	int rv = nqi_jansson_to_msgpack(root, out, len, err, errlen);
	json_decref(root);
	return rv;
}

int nqi_jansson_to_msgpack(
    json_t *v, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	/* msgpack-c would start at 8 KiB, for payloads mostly far smaller
	 * (a batch of 1,000 jobs would churn 8 MiB); it doubles from here. */
	if (!(sb.data = malloc(256)))
		return NQ_ENOMEM;
	sb.alloc = 256;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int rv = pack_value(&pk, v, 0, err, errlen);
	if (rv != NQ_OK || !sb.data) {
		msgpack_sbuffer_destroy(&sb);
		return rv != NQ_OK ? rv : NQ_ENOMEM;
	}
	*out = (uint8_t *)sb.data;
	*len = sb.size;
	return NQ_OK;
}

/* ---- msgpack -> JSON ---- */

/*
 * A bounds-checked reader over hostile bytes. msgpack-c's own unpacker is not
 * used: it stops at 32 levels and allocates whatever element count a header
 * claims before reading a single element.
 */
typedef struct mp_reader {
	const uint8_t *p;
	size_t left;
	int err; /* why decoding stopped: NQ_EINVAL or NQ_ENOMEM */
} mp_reader;

enum mp_kind {
	MP_BAD, /* 0xc1, never used by the format */
	MP_NIL,
	MP_FALSE,
	MP_TRUE,
	MP_UINT,
	MP_INT,
	MP_FLOAT32,
	MP_FLOAT64,
	MP_STR,
	MP_BIN,
	MP_EXT,
	MP_FIXEXT,
	MP_ARRAY,
	MP_MAP,
};

/* The formats of first bytes 0xc0..0xdf: kind, and the width of the
 * big-endian field that follows (value, length, or count; for fixext the
 * data length itself). */
/* clang-format off */
static const struct mp_fmt {
	uint8_t kind, width;
} mp_fmts[32] = {
	{MP_NIL, 0}, {MP_BAD, 0}, {MP_FALSE, 0}, {MP_TRUE, 0},
	{MP_BIN, 1}, {MP_BIN, 2}, {MP_BIN, 4},
	{MP_EXT, 1}, {MP_EXT, 2}, {MP_EXT, 4},
	{MP_FLOAT32, 4}, {MP_FLOAT64, 8},
	{MP_UINT, 1}, {MP_UINT, 2}, {MP_UINT, 4}, {MP_UINT, 8},
	{MP_INT, 1}, {MP_INT, 2}, {MP_INT, 4}, {MP_INT, 8},
	{MP_FIXEXT, 1}, {MP_FIXEXT, 2}, {MP_FIXEXT, 4}, {MP_FIXEXT, 8},
	{MP_FIXEXT, 16},
	{MP_STR, 1}, {MP_STR, 2}, {MP_STR, 4},
	{MP_ARRAY, 2}, {MP_ARRAY, 4},
	{MP_MAP, 2}, {MP_MAP, 4},
};
/* clang-format on */

typedef struct mp_head {
	enum mp_kind kind;
	uint64_t n; /* value bits, byte length, or element count */
} mp_head;

static const uint8_t *mp_take(mp_reader *r, uint64_t n)
{
	if (n > r->left)
		return NULL;
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static bool mp_field(mp_reader *r, size_t width, uint64_t *v)
{
	const uint8_t *p = mp_take(r, width);
	if (!p)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < width; i++)
		x = x << 8 | p[i];
	*v = x;
	return true;
}

static bool mp_read_head(mp_reader *r, mp_head *h)
{
	const uint8_t *b = mp_take(r, 1);
	if (!b)
		return false;
	uint8_t c = *b;
	h->n = 0;
	if (c <= 0x7f || c >= 0xe0) { /* positive or negative fixint */
		h->kind = c <= 0x7f ? MP_UINT : MP_INT;
		h->n = (uint64_t)(int64_t)(int8_t)c;
		return true;
	}
	if (c <= 0xbf) { /* fixmap, fixarray, fixstr */
		h->kind = c <= 0x8f ? MP_MAP : c <= 0x9f ? MP_ARRAY : MP_STR;
		h->n = c <= 0x9f ? (c & 0x0fu) : (c & 0x1fu);
		return true;
	}
	const struct mp_fmt *f = &mp_fmts[c - 0xc0];
	h->kind = f->kind;
	if (f->kind == MP_FIXEXT) {
		h->n = f->width;
		return true;
	}
	if (!mp_field(r, f->width, &h->n))
		return false;
	if (f->kind == MP_INT && f->width < 8 &&
	    (h->n >> (8 * f->width - 1)) != 0)
		h->n |= ~0ull << (8 * f->width); /* sign-extend */
	return f->kind != MP_BAD;
}

/* Notes a failed allocation, so that it is not reported as bad input. */
static json_t *mp_alloced(mp_reader *r, json_t *v)
{
	if (!v)
		r->err = NQ_ENOMEM;
	return v;
}

static json_t *real_or_null(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static json_t *mp_base64(const uint8_t *p, size_t n)
{
	char *b64 = nqi_base64_encode(p, n);
	json_t *s = b64 ? json_string(b64) : NULL;
	free(b64);
	return s;
}

static json_t *mp_ext(mp_reader *r, uint64_t n)
{
	const uint8_t *type = mp_take(r, 1);
	const uint8_t *data = type ? mp_take(r, n) : NULL;
	if (!data)
		return NULL;
	json_t *o = json_object();
	if (!o ||
	    json_object_set_new(o, "ext", json_integer((int8_t)*type)) != 0 ||
	    json_object_set_new(o, "base64", mp_base64(data, n)) != 0) {
		r->err = NQ_ENOMEM;
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Strings, binaries and numbers. */
static json_t *mp_scalar(mp_reader *r, const mp_head *h)
{
	float f;
	double d;
	uint32_t bits = (uint32_t)h->n;
	const uint8_t *p;
	switch (h->kind) {
	case MP_NIL:
		return json_null();
	case MP_FALSE:
		return json_false();
	case MP_TRUE:
		return json_true();
	case MP_INT:
		return mp_alloced(r, json_integer((json_int_t)(int64_t)h->n));
	case MP_UINT:
		if (h->n > INT64_MAX)
			return mp_alloced(r, json_real((double)h->n));
		return mp_alloced(r, json_integer((json_int_t)h->n));
	case MP_FLOAT32:
		memcpy(&f, &bits, sizeof f);
		return mp_alloced(r, real_or_null(f));
	case MP_FLOAT64:
		memcpy(&d, &h->n, sizeof d);
		return mp_alloced(r, real_or_null(d));
	case MP_STR:
	case MP_BIN:
		if (!(p = mp_take(r, h->n)))
			return NULL;
		return mp_alloced(r, h->kind == MP_STR
		                         ? nqi_json_string_lossy(p, h->n)
		                         : mp_base64(p, h->n));
	case MP_EXT:
	case MP_FIXEXT:
		return mp_ext(r, h->n);
	default:
		return NULL;
	}
}

static json_t *mp_value(mp_reader *r, int depth);

static json_t *mp_array(mp_reader *r, uint64_t count, int depth)
{
	if (count > r->left) /* every element takes a byte at least */
		return NULL;
	json_t *a = mp_alloced(r, json_array());
	for (uint64_t i = 0; a && i < count; i++) {
		json_t *e = mp_value(r, depth);
		if (!e || json_array_append_new(a, e) != 0) {
			if (e)
				r->err = NQ_ENOMEM;
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Adds v (the reference is stolen) under the key k. Returns 0, NQ_EINVAL
 * for a key whose JSON text is over NQI_JSON_MAX_KEY, or NQ_ENOMEM. */
static int mp_set_member(json_t *o, const json_t *k, json_t *v)
{
	if (json_is_string(k))
		return json_object_setn_new(
		           o, json_string_value(k), json_string_length(k), v)
		           ? NQ_ENOMEM
		           : NQ_OK;
	/* The bound matters: a map key holding map keys is escaped once
	 * more at every level, so its text would double with each one. */
	char *text = nqi_json_dumps(k);
	int rv = !text                             ? NQ_ENOMEM
	         : strlen(text) > NQI_JSON_MAX_KEY ? NQ_EINVAL
	                                           : NQ_OK;
	if (rv == NQ_OK)
		rv = json_object_set_new(o, text, v) ? NQ_ENOMEM : NQ_OK;
	else
		json_decref(v);
	free(text);
	return rv;
}

static json_t *mp_map(mp_reader *r, uint64_t count, int depth)
{
	if (count > r->left / 2) /* a key and a value: two bytes at least */
		return NULL;
	json_t *o = mp_alloced(r, json_object());
	for (uint64_t i = 0; o && i < count; i++) {
		json_t *k = mp_value(r, depth);
		json_t *v = k ? mp_value(r, depth) : NULL;
		int rv = v ? mp_set_member(o, k, v) : NQ_EINVAL;
		if (v && rv != 0)
			r->err = rv;
		json_decref(k);
		if (rv != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* depth counts the arrays and maps around the value. */
static json_t *mp_value(mp_reader *r, int depth)
{
	mp_head h;
	if (!mp_read_head(r, &h))
		return NULL;
	if (h.kind != MP_ARRAY && h.kind != MP_MAP)
		return mp_scalar(r, &h);
	if (depth >= NQI_JSON_MAX_DEPTH)
		return NULL;
	if (h.kind == MP_ARRAY)
		return mp_array(r, h.n, depth + 1);
	return mp_map(r, h.n, depth + 1);
}

static int mp_decode(const void *buf, size_t len, json_t **out)
{
	mp_reader r = {buf, len, NQ_EINVAL};
	if (!buf)
		return NQ_EINVAL;
	json_t *v = mp_value(&r, 0);
	if (!v)
		return r.err;
	if (r.left != 0) {
		json_decref(v);
		return NQ_EINVAL;
	}
	*out = v;
	return NQ_OK;
}

json_t *nqi_msgpack_to_jansson(const void *buf, size_t len)
{
	json_t *v = NULL;
	if (mp_decode(buf, len, &v) != NQ_OK)
		return NULL;
	return v;
}

int nqi_msgpack_to_json(const void *buf, size_t len, char **json_out)
{
	json_t *v = NULL;
	int rv = mp_decode(buf, len, &v);
	if (rv != NQ_OK)
		return rv;
	char *text = nqi_json_dumps(v);
	json_decref(v);
	if (!text)
		return NQ_ENOMEM;
	*json_out = text;
	return NQ_OK;
}

/* ---- JSON text out ---- */

typedef nqi_jbuf outbuf;

static void out_put(outbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (NQI_GROW(b->p, b->cap, b->len + n + 1, 256) != 0) {
		b->failed = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void out_str(outbuf *b, const char *s)
{
	out_put(b, s, strlen(s));
}

/* The letter of the two-character escape of c ('n' for newline), or 0. */
static char short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return '"';
	case '\\':
		return '\\';
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return 0;
	}
}

static void out_string(outbuf *b, const char *s, size_t n)
{
	out_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 &&
		       s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) { /* what needs no escape, at once */
			out_put(b, s + i, run - i);
			if ((i = run) == n)
				break;
		}
		unsigned char c = (unsigned char)s[i];
		char esc[8] = {'\\', short_escape(c)};
		if (esc[1]) {
			out_put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			out_put(b, esc, 6);
		} else {
			out_put(b, (const char *)&s[i], 1);
		}
	}
	out_put(b, "\"", 1);
}

/* The shortest %g form that reads back as d, always with a '.' or an
 * exponent so that it stays a real. */
static void out_real(outbuf *b, double d)
{
	char num[40];
	if (!isfinite(d)) {
		out_str(b, "null");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(num, sizeof num, "%.*g", prec, d);
		if (strtod(num, NULL) == d)
			break;
	}
	out_str(b, num);
	if (!strpbrk(num, ".eE"))
		out_str(b, ".0");
}

static void out_value(outbuf *b, const json_t *v);

static void out_object(outbuf *b, json_t *v)
{
	const char *key;
	size_t key_len;
	json_t *member;
	bool first = true;
	out_put(b, "{", 1);
	json_object_keylen_foreach(v, key, key_len, member)
	{
		if (!first)
			out_put(b, ",", 1);
		first = false;
		out_string(b, key, key_len);
		out_put(b, ":", 1);
		out_value(b, member);
	}
	out_put(b, "}", 1);
}

static void out_array(outbuf *b, const json_t *v)
{
	out_put(b, "[", 1);
	for (size_t i = 0; i < json_array_size(v); i++) {
		if (i)
			out_put(b, ",", 1);
		out_value(b, json_array_get(v, i));
	}
	out_put(b, "]", 1);
}

static void out_value(outbuf *b, const json_t *v)
{
	char num[32];
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		out_object(b, (json_t *)v);
		break;
	case JSON_ARRAY:
		out_array(b, v);
		break;
	case JSON_STRING:
		out_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		out_str(b, num);
		break;
	case JSON_REAL:
		out_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		out_str(b, "true");
		break;
	case JSON_FALSE:
		out_str(b, "false");
		break;
	default:
		out_str(b, "null");
	}
}

void nqi_jbuf_put(nqi_jbuf *b, const char *s, size_t n)
{
	out_put(b, s, n);
}

void nqi_jbuf_string(nqi_jbuf *b, const char *s, size_t n)
{
	out_string(b, s, n);
}

void nqi_jbuf_value(nqi_jbuf *b, const json_t *v)
{
	out_value(b, v);
}

char *nqi_json_dumps(const json_t *v)
{
	outbuf b = {0};
	if (!v)
		return NULL;
	out_value(&b, v);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
