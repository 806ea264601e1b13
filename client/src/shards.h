/*
 * The shard map: the brokers of a deployment by name, and which of them
 * owns each queue. A queue belongs to the shard its map pins it to, else
 * to the shard whose name scores highest for it (rendezvous hashing), so
 * that adding a shard moves only the queues that now score highest on the
 * new one, and removing one moves only its own.
 *
 * The map's text (README "More than one broker"): entries separated by
 * commas or new lines, '#' starting a comment to the end of its line:
 *   NAME=URL            shard NAME, its api URL; its work, results and
 *                       events URLs are the api port + 1, + 2, + 3 (the
 *                       default layout) unless given
 *   NAME.work=URL       (and .results, .events, .api) one URL of NAME
 *   queue QUEUE=NAME    pins QUEUE to shard NAME
 * A text with no '=' is the name of a file that holds the map.
 */
#ifndef NQ_CLIENT_SHARDS_H
#define NQ_CLIENT_SHARDS_H

#include <stddef.h>
#include <stdint.h>

/* The URLs of a shard, in this order. */
typedef enum nqs_end {
	NQS_API,
	NQS_WORK,
	NQS_RESULTS,
	NQS_EVENTS,
	NQS_NENDS
} nqs_end;

#define NQS_MAX 64 /* shards in one map */

typedef struct nqs_shard {
	char *name;
	char *url[NQS_NENDS];
} nqs_shard;

typedef struct nqs_pin {
	char *queue;
	size_t shard;
} nqs_pin;

typedef struct nqs_map {
	nqs_shard *shards;
	size_t n;
	nqs_pin *pins;
	size_t npins;
} nqs_map;

/* Parses a map (or reads the file it names). NQ_EINVAL with the reason
 * in why (len bytes) for a map that is wrong: no shard, a name twice, a
 * URL nq cannot dial, a URL that cannot be derived, a pin to a shard not
 * in the map. */
int nqs_parse(const char *text, nqs_map **out, char *why, size_t len);
void nqs_free(nqs_map *m);
/* The rendezvous score of queue on the shard called name. Part of the
 * contract between every client of a deployment: never change it. */
uint64_t nqs_score(const char *name, const char *queue);
/* The index of the shard that owns queue. */
size_t nqs_owner(const nqs_map *m, const char *queue);
/* The name of an end, for messages: "api", "work", ... */
const char *nqs_end_name(nqs_end e);

#endif
