/*
 * nqctl events and nqctl top: the broker's PUB socket (--events, NQ_EVENTS,
 * tcp://127.0.0.1:7403 by default) seen from the command line.
 *
 *   nqctl events [--queue Q] [--state S] [--count N] [--duration D]
 *   nqctl top [--queue Q] [--duration D]
 *
 * events prints one JSON line per job event and reports on stderr how many
 * events it missed (gaps in each topic's topic_seq). top shows the
 * once-a-second "metrics" topic as a table of queues, redrawn in place on a
 * terminal. Both run until SIGINT or SIGTERM, --duration or (events)
 * --count, and then exit 0.
 */
#ifndef NQCTL_EVENTS_H
#define NQCTL_EVENTS_H

#include <nng/nng.h>
#include <stdint.h>

#include "nqctl.h"

#define NQCTL_DEFAULT_EVENTS "tcp://127.0.0.1:7403"

#define NQCTL_EVENTS_SYNOPSIS                                                  \
	"[--queue Q] [--state S] [--count N] [--duration D]"
#define NQCTL_EVENTS_SUMMARY                                                   \
	"Prints job events as they happen, a JSON line each."
#define NQCTL_TOP_SYNOPSIS "[--queue Q] [--duration D]"
#define NQCTL_TOP_SUMMARY "Shows live rates and depths of the queues."

int nqctl_events(nqctl *x, int argc, char **argv, int start);
int nqctl_top(nqctl *x, int argc, char **argv, int start);

/* ---- shared by both: a SUB socket on the events URL ---- */

/*
 * Opens a SUB socket subscribed to the topic prefix (topic_len bytes, a NUL
 * among them when the topic must match whole) and dials the events URL
 * once, synchronously, so that a broker that is not there is reported at
 * once (a connection lost later is redialed by nng). Also makes SIGINT and
 * SIGTERM end nqctl_sub_recv. Returns NQCTL_CONTINUE with *out open, or the
 * exit status after saying what went wrong.
 *
 * The socket is not closed by the commands but by the end of the process:
 * nng 1.5.2's nng_close() can wait forever when it races a connected pipe
 * that is still receiving (nanomsg/nng#1543, fixed after 1.5.2), and
 * nqctl exits right after anyway.
 */
int nqctl_sub_open(
    nqctl *x, const void *topic, size_t topic_len, nng_socket *out);
/* The events URL in use: --events, NQ_EVENTS or the default. */
const char *nqctl_sub_url(const nqctl *x);

/*
 * Waits for the next message until deadline_ms (monotonic; 0: no
 * deadline). Returns NQ_OK with *msg for the caller to free, NQ_ETIMEDOUT
 * once the deadline passed, NQ_ECLOSED after SIGINT or SIGTERM, or the nq
 * error of a failed receive.
 */
int nqctl_sub_recv(nng_socket s, uint64_t deadline_ms, nng_msg **msg);

#endif
