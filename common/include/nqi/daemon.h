/* What every nq daemon's main does the same way: read its configuration
 * and wait for the signal that stops it. */
#ifndef NQI_DAEMON_H
#define NQI_DAEMON_H

#include <stddef.h>
#include <stdint.h>

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

#endif
