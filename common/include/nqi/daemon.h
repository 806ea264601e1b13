/* What every nq daemon's main does the same way: read its configuration
 * and wait for the signal that stops it. */
#ifndef NQI_DAEMON_H
#define NQI_DAEMON_H

#include <nng/nng.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/auth.h"
#include "nqi/log.h"
#include "nqi/opts.h"

/*
 * The flags nq daemons share, defined once (names, help, checks) in
 * daemon.c; their values live in each daemon's own config struct. A
 * daemon points each member at the field that holds the flag's value
 * (and its default), or leaves it NULL for a flag it does not take.
 */
typedef struct nqi_daemon_common {
	const char **config;     /* --config: name = value lines */
	const char **log_level;  /* --log-level: checked */
	const char **log_format; /* --log-format: checked */
	const char **ready_file; /* --ready-file: nqi_daemon_ready */
	const char **data_dir;   /* --data-dir */
	const char **sync;       /* --sync: checked, always or none */
	const char **tls_cert;
	const char **tls_key;
	const char **tls_ca;
	const char **producer_tokens; /* token lists of the roles served */
	const char **worker_tokens;
	const char **admin_tokens;
	const char **token_file; /* the token this daemon presents */
	/* --http-max-connections and --http-timeout (nqi_http_opts); a
	 * target holding 0 gets the default of http.h */
	int *http_max_connections;
	uint64_t *http_timeout_ms;
} nqi_daemon_common;

/* The members of nqi_daemon_common for a config struct *c whose fields
 * carry the usual names, by group: every daemon (each serves HTTP), those
 * with a store, and those that serve roles. */
#define NQI_COMMON_BASE(c)                                                     \
	.config = &(c)->config_file, .log_level = &(c)->log_level,             \
	.log_format = &(c)->log_format, .ready_file = &(c)->ready_file,        \
	.tls_cert = &(c)->tls_cert, .tls_key = &(c)->tls_key,                  \
	.tls_ca = &(c)->tls_ca,                                                \
	.http_max_connections = &(c)->http_max_connections,                    \
	.http_timeout_ms = &(c)->http_timeout_ms
#define NQI_COMMON_STORE(c) .data_dir = &(c)->data_dir, .sync = &(c)->sync
#define NQI_COMMON_ROLES(c)                                                    \
	.producer_tokens = &(c)->producer_tokens,                              \
	.worker_tokens = &(c)->worker_tokens,                                  \
	.admin_tokens = &(c)->admin_tokens

typedef struct nqi_daemon_spec {
	const char *prog;    /* "nq-broker" */
	const char *usage;   /* first lines of --help */
	const char *msgid;   /* logged with the effective config */
	const nqi_opt *opts; /* the daemon's own flags */
	size_t nopts;
	nqi_daemon_common common;
	/* Checks the parsed config: NULL when fine, else the reason (which
	 * may be written into buf, len bytes). */
	const char *(*check)(void *arg, char *buf, size_t len);
	void *arg;
} nqi_daemon_spec;

/*
 * Defaults are already in the options' targets; applies --config FILE (its
 * values kept in keep), then NQ_* variables, then flags, to the daemon's
 * own flags and the common ones; checks the common flags, then d->check;
 * applies --log-level and --log-format, and logs the effective config with
 * secrets redacted. Returns 0 to run, -1 after printing --help, or 2
 * after a usage error on stderr.
 */
int nqi_daemon_configure(
    const nqi_daemon_spec *d, int argc, char **argv, nqi_strlist *keep);

/* Loads the token lists the common role flags name (all three members
 * set) into *out, logging NQ-AUTH-CONFIG when one cannot be read; warns
 * NQ-AUTH-OPEN when no role has tokens and one of the n listen urls is
 * reachable from elsewhere. */
int nqi_daemon_auth(nqi_auth **out, const nqi_daemon_common *c,
    const char *const *urls, size_t n);
/* The daemon's own flags followed by the common ones it takes, in an
 * array the caller frees. */
int nqi_daemon_opts(const nqi_daemon_spec *d, nqi_opt **out, size_t *n);
/* Logs msgid at info with the extra fields, then one field per option
 * (its name and value; secrets redacted): the effective config. */
void nqi_log_opts(const char *msgid, const nqi_log_field *extra, size_t nextra,
    const nqi_opt *o, size_t n);

/*
 * Signals. A daemon takes every signal a process manager or a terminal
 * may send, on one thread, with sigwait:
 *
 *   SIGTERM, SIGINT, SIGQUIT   stop: nqi_signals_wait returns it
 *   SIGHUP, SIGUSR1, SIGUSR2,  logged as NQ-SIGNAL signal=HUP
 *   SIGALRM                    action=ignored, unless a hook is set
 *   SIGPIPE                    ignored (a closed peer is an error return)
 *
 * nqi_signals_block blocks them in the calling thread (threads started
 * later inherit the mask) and ignores SIGPIPE; call it first in main,
 * before any thread exists, so that they reach only the waiting thread.
 * Blocked, not ignored: a child gets them back by resetting its mask.
 */
void nqi_signals_block(void);
/* What a daemon does on one of the signals that do not stop it; runs on
 * the thread in nqi_signals_wait, after NQ-SIGNAL action=handled. */
typedef void (*nqi_signal_fn)(int sig, void *arg);
/* Sets the hook of sig (NULL: log and ignore again): the place for a
 * reload on SIGHUP. NQ_EINVAL for a stop signal or one not in the list
 * above. Thread-safe. */
int nqi_signals_on(int sig, nqi_signal_fn fn, void *arg);
/* Waits for a stop signal and returns it, handling the others meanwhile
 * (see above); returns 0 once nqi_signals_wake woke it. */
int nqi_signals_wait(void);
/* Wakes the thread waiting in nqi_signals_wait (it returns 0), so that it
 * can be joined: a SIGUSR1 sent to that thread alone. */
void nqi_signals_wake(pthread_t waiter);

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
