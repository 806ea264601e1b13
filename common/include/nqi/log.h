/* Daemon logging: one line per event on stderr,
 *   2026-11-27T21:50:00.123Z info NQ-BROKER-START api=tcp://... sync=always
 * with a stable message id and key=value fields. Libraries never log. */
#ifndef NQI_LOG_H
#define NQI_LOG_H

#include <stdbool.h>

typedef enum nqi_log_level {
	NQI_LOG_DEBUG,
	NQI_LOG_INFO,
	NQI_LOG_WARN,
	NQI_LOG_ERROR,
} nqi_log_level;

/* Sets the lowest level written; call once at start. Returns NQ_EINVAL for
 * a name other than debug, info, warn, error. */
int nqi_log_set_level(const char *name);
/* Selects "text" (default) or "json" lines. */
int nqi_log_set_format(const char *name);
/* Applies --log-level and --log-format; returns NULL, or the message
 * naming the flag that is wrong. */
const char *nqi_log_configure(const char *level, const char *format);
void nqi_log(nqi_log_level level, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether lines of this level are written: skip building what would be
 * dropped. */
bool nqi_log_enabled(nqi_log_level level);

#define nqi_debug(id, ...) nqi_log(NQI_LOG_DEBUG, id, __VA_ARGS__)
#define nqi_info(id, ...) nqi_log(NQI_LOG_INFO, id, __VA_ARGS__)
#define nqi_warn(id, ...) nqi_log(NQI_LOG_WARN, id, __VA_ARGS__)
#define nqi_error(id, ...) nqi_log(NQI_LOG_ERROR, id, __VA_ARGS__)

#endif
