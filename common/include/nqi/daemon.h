/* What every nq daemon's main does the same way: read its configuration
 * and wait for the signal that stops it. */
#ifndef NQI_DAEMON_H
#define NQI_DAEMON_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/log.h"
#include "nqi/opts.h"

typedef struct nqi_daemon_spec {
	const char *prog;  /* "nq-broker" */
	const char *usage; /* first lines of --help */
	const char *msgid; /* logged with the effective config */
	/* Checks the parsed config; NULL when fine, else the reason. */
	const char *(*check)(void *arg);
	void *arg;
} nqi_daemon_spec;

/*
 * Defaults are already in the options' targets; applies --config FILE (its
 * values kept in keep), then NQ_* variables, then flags, then checks, and
 * logs the effective config with secrets redacted. Returns 0 to run, -1
 * after printing --help, or 2 after a usage error on stderr.
 */
int nqi_daemon_configure(const nqi_daemon_spec *d, const nqi_opt *o, size_t n,
    int argc, char **argv, nqi_strlist *keep);

/* Logs msgid at info with the extra fields, then one field per option
 * (its name and value; secrets redacted): the effective config. */
void nqi_log_opts(const char *msgid, const nqi_log_field *extra, size_t nextra,
    const nqi_opt *o, size_t n);

/* Blocks SIGINT and SIGTERM in this thread (threads started later inherit
 * the mask) and ignores SIGPIPE; call first in main. */
void nqi_signals_block(void);
/* Waits for SIGINT or SIGTERM; returns which. */
int nqi_signals_wait(void);

/*
 * Arms the shutdown watchdog: unless disarmed within ms, it logs
 * NQ-SHUTDOWN-STUCK naming step and ends the process with status. Armed
 * only once everything that must be durable is, so that what it cuts short
 * is network teardown: nng 1.5 can hang a socket close forever when a
 * message arrives in that instant. Arming again moves the deadline.
 */
#define NQI_TEARDOWN_MS 10000 /* what network teardown may take */
void nqi_shutdown_watchdog_arm(uint64_t ms, const char *step, int status);
void nqi_shutdown_watchdog_disarm(void);

/*
 * Bound addresses. A listen URL or HTTP address may name port 0: the
 * kernel picks a free port, and the daemon reports the one it got, so
 * that nobody has to guess a free port before it starts (a port found
 * free and closed again can be taken by any connection meanwhile).
 *
 * nqi_daemon_bound notes that the socket of flag name (api, work,
 * results, events, listen, http) listens on url, the configured address
 * with port written in (port < 0: keep url as it is, e.g. ipc://), and
 * logs NQ-LISTENING socket=NAME url=URL. nqi_daemon_listener does the
 * same for an nng listener, which it asks for its port. Thread-safe.
 */
void nqi_daemon_bound(const char *name, const char *url, int port);
void nqi_daemon_listener(const char *name, const char *url, nng_listener l);
/* Writes url with the port after its host replaced by port into out
 * ("tcp://127.0.0.1:0" -> "tcp://127.0.0.1:41234"; "127.0.0.1:0",
 * "https://[::1]:0/x" alike); url as it is when it has no port. */
void nqi_url_set_port(const char *url, int port, char *out, size_t len);
/*
 * The ready file: once every socket is bound and the service is ready,
 * the daemon writes one line per bound socket, "NAME=URL" in the order
 * they were bound, e.g.
 *
 *	api=tcp://127.0.0.1:41234
 *	http=127.0.0.1:41240
 *
 * to path (--ready-file, NQ_READY_FILE). It is written to a temporary
 * file beside path and renamed, so a reader never sees half of it. NULL
 * or "" writes nothing. err names the file on failure.
 */
int nqi_daemon_ready(const char *path, char *err, size_t errlen);

#endif
