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
 * --count, and then exit 0. With --brokers both read every shard's events
 * socket: top adds the shards' frames up, events prints each event with
 * its "shard".
 */
#ifndef NQCTL_EVENTS_H
#define NQCTL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
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

/* ---- shared by both: libnq's subscriber on the events URL ---- */

/* The flags both take after their own: --events and the common ones. */
#define NQCTL_SUB_OPTS(x)                                                      \
	{"events", NQI_OPT_STR, &(x)->conf.events_url,                         \
	    "broker events socket (" NQCTL_DEFAULT_EVENTS "; with --brokers, " \
	    "every shard's, from the map)",                                    \
	    false},                                                            \
	    NQCTL_COMMON_OPTS(x)

/* nqctl_args, then the check of --queue: *queue, which the flags may have
 * set. Returns NQI_CONTINUE or the exit status. */
int nqctl_sub_args(nqctl *x, const nqi_opt *opts, size_t n, int argc,
    char **argv, int start, const char *const *queue);

/*
 * Opens the client (nqctl_connect) and subscribes it to the topic prefix
 * (topic_len bytes, a NUL among them when the topic must match whole) on
 * the events URL; see nq_sub_open: a broker that is not there is reported
 * at once. Also makes SIGINT and SIGTERM end nqctl_sub_recv. Returns
 * NQI_CONTINUE with *out (also x->sub) open, or the exit status after
 * saying what went wrong.
 *
 * The subscriber is not closed by the commands but by the end of the
 * process: nng 1.5.2's nng_close() can wait forever when it races a
 * connected pipe that is still receiving (nanomsg/nng#1543, fixed after
 * 1.5.2), and nqctl exits right after anyway.
 */
int nqctl_sub_open(nqctl *x, const void *topic, size_t topic_len, nq_sub **out);
/* The events URL in use: --events, NQ_EVENTS or the default. */
const char *nqctl_sub_url(const nqctl *x);

/*
 * Waits for the next message until deadline_ms (monotonic; 0: no
 * deadline). Returns NQ_OK with *msg and *len (valid until the next call),
 * NQ_ETIMEDOUT once the deadline passed, NQ_ECLOSED after SIGINT or
 * SIGTERM, or the nq error of a failed receive.
 */
int nqctl_sub_recv(
    nq_sub *s, uint64_t deadline_ms, const void **msg, size_t *len);

/* What nqctl_sub_loop calls with each message (valid during the call):
 * NQI_CONTINUE asks for the next one, anything else is the status. */
typedef int (*nqctl_sub_cb)(
    const nqctl *x, void *arg, const char *msg, size_t len);

/*
 * Calls cb with each message received on s until cb returns a status,
 * SIGINT or SIGTERM, or deadline_ms (as for nqctl_sub_recv). Returns cb's
 * status, NQI_EXIT_OK after a signal or the deadline (*timed_out, when
 * not NULL, says whether it was the deadline), or NQI_EXIT_FAILED after
 * saying that a receive failed.
 */
int nqctl_sub_loop(const nqctl *x, nq_sub *s, uint64_t deadline_ms,
    nqctl_sub_cb cb, void *arg, bool *timed_out);

/* ---- with a shard map (--brokers): a subscriber per shard ---- */

/* What nqctl_shard_subs_loop calls with each message of shard k. */
typedef int (*nqctl_shard_cb)(
    const nqctl *x, void *arg, size_t k, const char *msg, size_t len);

/*
 * Opens the client and subscribes to the topic prefix on every shard's
 * events socket (the map's; --events is not used): *subs, *n of them, to
 * close with nqctl_shard_subs_close, also after a failure. Makes SIGINT
 * and SIGTERM end the loop. Returns NQI_CONTINUE, or the exit status
 * after naming the shard that failed.
 */
int nqctl_shard_subs_open(
    nqctl *x, const void *topic, size_t topic_len, nq_sub ***subs, size_t *n);
void nqctl_shard_subs_close(nq_sub **subs, size_t n);
/* nqctl_sub_loop over the subscribers of every shard: each round takes
 * what every shard has waiting, so that a busy shard does not wait for
 * an idle one. */
int nqctl_shard_subs_loop(const nqctl *x, nq_sub **subs, size_t n,
    uint64_t deadline_ms, nqctl_shard_cb cb, void *arg, bool *timed_out);

#endif
