/*
 * Daemon logging: one line per event on stderr,
 *   2026-11-27T21:50:00.123Z info NQ-BROKER-START api=tcp://... sync=always
 * with a stable message id and key=value fields, or with --log-format json
 *   {"ts":"...","level":"info","msg":"NQ-BROKER-START","api":"tcp://..."}
 * Libraries never log.
 *
 * Callers pass the fields as fields, never as preformatted text:
 *   nqi_info("NQ-DLQ-BACK", NQI_S("url", url), NQI_U("pending", n));
 * so that a value is always one value. In text lines a value holding a
 * space, '"', '=', '\' or a control character is written in double quotes
 * with '"' and '\' escaped (\n, \t, \r and \xHH for control characters),
 * so no value can end the line or invent a field. JSON lines are built
 * with jansson from the same fields: strings as strings (bytes that are
 * not UTF-8 as '?'), numbers as numbers, booleans as booleans.
 */
#ifndef NQI_LOG_H
#define NQI_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nqi_log_level {
	NQI_LOG_DEBUG,
	NQI_LOG_INFO,
	NQI_LOG_WARN,
	NQI_LOG_ERROR,
} nqi_log_level;

typedef enum nqi_log_kind {
	NQI_LF_STR,
	NQI_LF_UINT,
	NQI_LF_INT,
	NQI_LF_BOOL,
} nqi_log_kind;

/* One field of a line. A NULL key leaves the field out (for fields that
 * only some lines carry); a NULL string is written as "". */
typedef struct nqi_log_field {
	const char *key;
	nqi_log_kind kind;
	union {
		const char *s;
		uint64_t u;
		int64_t i;
		bool b;
	} v;
} nqi_log_field;

#define NQI_S(k, x) ((nqi_log_field){(k), NQI_LF_STR, {.s = (x)}})
#define NQI_U(k, x) ((nqi_log_field){(k), NQI_LF_UINT, {.u = (uint64_t)(x)}})
#define NQI_I(k, x) ((nqi_log_field){(k), NQI_LF_INT, {.i = (int64_t)(x)}})
#define NQI_B(k, x) ((nqi_log_field){(k), NQI_LF_BOOL, {.b = (x)}})

/* Sets the lowest level written; call once at start. Returns NQ_EINVAL for
 * a name other than debug, info, warn, error. */
int nqi_log_set_level(const char *name);
/* Selects "text" (default) or "json" lines. */
int nqi_log_set_format(const char *name);
/* Applies --log-level and --log-format; returns NULL, or the message
 * naming the flag that is wrong. */
const char *nqi_log_configure(const char *level, const char *format);
/* Writes one line of msgid with the n fields, when level is enabled. */
void nqi_log(nqi_log_level level, const char *msgid,
    const nqi_log_field *fields, size_t n);
/* Whether lines of this level are written: skip building what would be
 * dropped. */
bool nqi_log_enabled(nqi_log_level level);

/* nqi_info(id, NQI_S(...), NQI_U(...), ...): at least one field. */
#define NQI_LOG_FIELDS_(level, id, ...)                                        \
	nqi_log(level, id, (const nqi_log_field[]){__VA_ARGS__},               \
	    sizeof((const nqi_log_field[]){__VA_ARGS__}) /                     \
	        sizeof(nqi_log_field))
#define nqi_debug(id, ...) NQI_LOG_FIELDS_(NQI_LOG_DEBUG, id, __VA_ARGS__)
#define nqi_info(id, ...) NQI_LOG_FIELDS_(NQI_LOG_INFO, id, __VA_ARGS__)
#define nqi_warn(id, ...) NQI_LOG_FIELDS_(NQI_LOG_WARN, id, __VA_ARGS__)
#define nqi_error(id, ...) NQI_LOG_FIELDS_(NQI_LOG_ERROR, id, __VA_ARGS__)

#endif
