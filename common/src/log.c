#include "nqi/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
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

/* Writes fields "k=v k2=v2" as JSON members; values are strings. */
static void write_json_fields(char *out, size_t len, const char *fields)
{
	size_t o = 0;
	const char *p = fields;
	while (*p && o + 8 < len) {
		while (*p == ' ')
			p++;
		const char *eq = strchr(p, '=');
		if (!eq)
			break;
		o += (size_t)snprintf(
		    out + o, len - o, ",\"%.*s\":\"", (int)(eq - p), p);
		p = eq + 1;
		for (; *p && *p != ' ' && o + 4 < len; p++) {
			if (*p == '"' || *p == '\\')
				out[o++] = '\\';
			out[o++] = *p;
		}
		o += (size_t)snprintf(out + o, len - o, "\"");
	}
	out[o < len ? o : len - 1] = '\0';
}

bool nqi_log_enabled(nqi_log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

void nqi_log(nqi_log_level level, const char *msgid, const char *fmt, ...)
{
	char ts[40], fields[2048];
	va_list ap;
	if ((int)level < atomic_load(&log_min_level))
		return;
	va_start(ap, fmt);
	vsnprintf(fields, sizeof fields, fmt, ap);
	va_end(ap);
	format_time(ts, sizeof ts);
	if (atomic_load(&log_json)) {
		char json[4096];
		write_json_fields(json, sizeof json, fields);
		fprintf(stderr,
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s}\n", ts,
		    level_names[level], msgid, json);
	} else {
		fprintf(stderr, "%s %s %s %s\n", ts, level_names[level], msgid,
		    fields);
	}
}
