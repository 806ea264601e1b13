#include "nqi/log.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq/nq.h"

/* Set once at start, read by every thread. */
static atomic_int log_min_level = NQI_LOG_INFO;
static atomic_int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int nqi_log_set_level(const char *name)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			atomic_store(&log_min_level, i);
			return NQ_OK;
		}
	}
	return NQ_EINVAL;
}

int nqi_log_set_format(const char *name)
{
	if (strcmp(name, "text") != 0 && strcmp(name, "json") != 0)
		return NQ_EINVAL;
	atomic_store(&log_json, strcmp(name, "json") == 0);
	return NQ_OK;
}

static void format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

const char *nqi_log_configure(const char *level, const char *format)
{
	if (nqi_log_set_level(level) != 0)
		return "--log-level must be debug, info, warn or error";
	if (nqi_log_set_format(format) != 0)
		return "--log-format must be text or json";
	return NULL;
}

bool nqi_log_enabled(nqi_log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

/* ---- text lines ---- */

typedef struct line {
	char *buf;
	size_t len, cap; /* cap - 1 usable: the last byte is the NUL */
} line;

static void put(line *l, const char *s, size_t n)
{
	size_t room = l->cap - 1 - l->len;
	if (n > room)
		n = room; /* an overlong line is cut */
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

static void put_str(line *l, const char *s)
{
	put(l, s, strlen(s));
}

static bool needs_quotes(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' ||
		    *s == '\\' || *s == 0x7f)
			return true;
	return false;
}

/* A value as one token: as it is, or quoted with what would end it or
 * the line escaped. */
static void put_value(line *l, const char *s)
{
	if (!needs_quotes(s)) {
		put_str(l, s);
		return;
	}
	put(l, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof esc, "\\%c", c);
		else if (c == '\n' || c == '\t' || c == '\r')
			snprintf(esc, sizeof esc, "\\%c",
			    c == '\n'   ? 'n'
			    : c == '\t' ? 't'
			                : 'r');
		else if (c < ' ' || c == 0x7f)
			snprintf(esc, sizeof esc, "\\x%02x", c);
		else
			esc[0] = (char)c, esc[1] = '\0';
		put_str(l, esc);
	}
	put(l, "\"", 1);
}

static void put_field(line *l, const nqi_log_field *f)
{
	char num[32];
	put(l, " ", 1);
	put_str(l, f->key);
	put(l, "=", 1);
	switch (f->kind) {
	case NQI_LF_STR:
		put_value(l, f->v.s ? f->v.s : "");
		return;
	case NQI_LF_UINT:
		snprintf(num, sizeof num, "%llu", (unsigned long long)f->v.u);
		break;
	case NQI_LF_INT:
		snprintf(num, sizeof num, "%lld", (long long)f->v.i);
		break;
	case NQI_LF_BOOL:
		snprintf(num, sizeof num, "%s", f->v.b ? "true" : "false");
		break;
	}
	put_str(l, num);
}

static void write_text(const char *ts, nqi_log_level level, const char *msgid,
    const nqi_log_field *fields, size_t n)
{
	char buf[4096];
	line l = {buf, 0, sizeof buf};
	buf[0] = '\0';
	put_str(&l, ts);
	put(&l, " ", 1);
	put_str(&l, level_names[level]);
	put(&l, " ", 1);
	put_str(&l, msgid);
	for (size_t i = 0; i < n; i++)
		if (fields[i].key)
			put_field(&l, &fields[i]);
	fprintf(stderr, "%s\n", buf);
}

/* ---- JSON lines ---- */

/* A JSON string of s; bytes that are not UTF-8 become '?'. */
static json_t *json_text(const char *s)
{
	json_t *j = json_string(s ? s : "");
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *json_value(const nqi_log_field *f)
{
	switch (f->kind) {
	case NQI_LF_STR:
		return json_text(f->v.s);
	case NQI_LF_UINT:
		return f->v.u <= INT64_MAX ? json_integer((json_int_t)f->v.u)
		                           : json_real((double)f->v.u);
	case NQI_LF_INT:
		return json_integer((json_int_t)f->v.i);
	case NQI_LF_BOOL:
		return json_boolean(f->v.b);
	}
	return NULL;
}

static void write_json(const char *ts, nqi_log_level level, const char *msgid,
    const nqi_log_field *fields, size_t n)
{
	json_t *o = json_object();
	char *text = NULL;
	if (o && json_object_set_new(o, "ts", json_string(ts)) == 0 &&
	    json_object_set_new(o, "level", json_string(level_names[level])) ==
	        0 &&
	    json_object_set_new(o, "msg", json_text(msgid)) == 0) {
		for (size_t i = 0; i < n; i++)
			if (fields[i].key)
				json_object_set_new(
				    o, fields[i].key, json_value(&fields[i]));
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	}
	/* Without memory the event still shows, if only by its id. */
	if (text)
		fprintf(stderr, "%s\n", text);
	else
		fprintf(stderr,
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
		    level_names[level], msgid);
	free(text);
	json_decref(o);
}

void nqi_log(nqi_log_level level, const char *msgid,
    const nqi_log_field *fields, size_t n)
{
	char ts[40];
	if (!nqi_log_enabled(level))
		return;
	format_time(ts, sizeof ts);
	if (atomic_load(&log_json))
		write_json(ts, level, msgid, fields, n);
	else
		write_text(ts, level, msgid, fields, n);
}
