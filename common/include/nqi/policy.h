/*
 * Queue policies: the keys a queue's policy has, each defined once in
 * NQI_POLICY_KEYS. The queues file's parser and validator, the values
 * `nqctl queue set` takes, the runtime overrides the broker stores (as
 * nq.v1.QueueConfig's policy entries, key and canonical text), the rows of
 * `nqctl queue show` and the README's table all come from that list.
 *
 * Adding a policy key: a row here and a member is there (nqi_policy.NAME,
 * of the C type of its kind); then the broker code that obeys it reads it
 * from broker_policy_of (broker/policy.h). Nothing else changes.
 */
#ifndef NQI_POLICY_H
#define NQI_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * X(name, kind, key, def, min, max, now, help)
 *
 * name: member of nqi_policy; NQI_PK_<name> is its index.
 * kind: COUNT    whole number (uint64_t)
 *       INT      signed whole number (int64_t)
 *       DURATION "250ms", "30s", "5m", "2h" (uint64_t, in ms)
 *       RATIO    0..1 (double)
 *       RATE     "50/s", "600/m", "3600/h" (double, per second)
 *       BOOL     true/false (bool)
 *       LIST     names, a YAML sequence or "a,b" (char *, "a,b")
 *       VERSIONS TYPE: "1-3" mapping or "t:1-3,u:2" (char *, "t:1-3,u:2")
 * key:  the name in the queues file (a dot: inside a mapping) and in
 *       `nqctl queue set`.
 * def:  the value when nothing sets it: a value, "--flag" for the broker
 *       flag of the same meaning (broker_policy_init), or "" for none (no
 *       limit, no check).
 * min, max: bounds of a COUNT, INT or DURATION (a limit whose 0 would mean
 *       nothing has min 1).
 * now:  1 when the broker obeys it. Rows with 0 are parsed, validated,
 *       stored and shown, and readable from broker_policy_of, but nothing
 *       acts on them yet; the README lists only rows with 1.
 */
#define NQI_POLICY_KEYS(X)                                                     \
	X(max_attempts, COUNT, "max_attempts", "--max-attempts", 1, 1000, 1,   \
	    "Attempts of a job that names none.")                              \
	X(backoff_base, DURATION, "backoff.base", "--backoff-base", 1,         \
	    86400000, 1, "First retry delay bound.")                           \
	X(backoff_cap, DURATION, "backoff.cap", "--backoff-cap", 1,            \
	    86400000 * 7ull, 1, "Largest retry delay bound.")                  \
	X(timeout, DURATION, "timeout", "--default-timeout", 1, 86400000, 1,   \
	    "Longest an attempt of a job that names no timeout may run.")      \
	X(result_ttl, DURATION, "result_ttl", "--result-ttl", 0,               \
	    86400000 * 365ull, 1,                                              \
	    "How long finished jobs stay readable (0: deleted at once).")      \
	X(priority, INT, "priority", "0", INT32_MIN, INT32_MAX, 1,             \
	    "Priority of a job that names none (higher runs first).")          \
	X(max_depth, COUNT, "max_depth", "--max-depth", 1, 1000000000000ull,   \
	    1,                                                                 \
	    "Jobs the queue may hold waiting or running; enqueue beyond is "   \
	    "RESOURCE_EXHAUSTED.")                                             \
	X(max_in_flight, COUNT, "max_in_flight", "", 1, UINT32_MAX, 1,         \
	    "Leased jobs of the queue across all workers.")                    \
	X(rate, RATE, "rate", "", 0, 0, 1, "Jobs started per second.")         \
	X(burst, COUNT, "burst", "1", 1, UINT32_MAX, 1,                        \
	    "Jobs that may start at once under rate.")                         \
	X(fairness, BOOL, "fairness", "false", 0, 0, 1,                        \
	    "Dispatch takes turns between group_keys.")                        \
	X(max_in_flight_per_group, COUNT, "max_in_flight_per_group", "", 1,    \
	    UINT32_MAX, 1,                                                     \
	    "Leased jobs of one group_key (dispatch then takes turns too).")   \
	X(breaker_window, DURATION, "circuit_breaker.window", "60s", 1,        \
	    86400000, 1, "Circuit breaker: how far back attempts count.")      \
	X(breaker_min_jobs, COUNT, "circuit_breaker.min_jobs", "20", 1,        \
	    UINT32_MAX, 1, "Circuit breaker: attempts needed to judge.")       \
	X(breaker_failure_ratio, RATIO, "circuit_breaker.failure_ratio", "",   \
	    0, 0, 1,                                                           \
	    "Circuit breaker: failed share that opens it (none: no "           \
	    "breaker).")                                                       \
	X(breaker_cool_down, DURATION, "circuit_breaker.cool_down", "30s", 1,  \
	    86400000, 1, "Circuit breaker: how long it stays open.")           \
	X(types, LIST, "types", "", 0, 0, 1,                                   \
	    "Job types an enqueue may carry; others are FAILED_PRECONDITION "  \
	    "(none: any).")                                                    \
	X(schema_versions, VERSIONS, "schema_versions", "", 0, 0, 1,           \
	    "Schema versions an enqueue of a type may carry; others are "      \
	    "FAILED_PRECONDITION (a type not named: any).")

typedef enum nqi_policy_kind {
	NQI_PT_COUNT,
	NQI_PT_INT,
	NQI_PT_DURATION,
	NQI_PT_RATIO,
	NQI_PT_RATE,
	NQI_PT_BOOL,
	NQI_PT_LIST,
	NQI_PT_VERSIONS,
} nqi_policy_kind;

#define NQI_PT_CTYPE_COUNT uint64_t
#define NQI_PT_CTYPE_INT int64_t
#define NQI_PT_CTYPE_DURATION uint64_t
#define NQI_PT_CTYPE_RATIO double
#define NQI_PT_CTYPE_RATE double
#define NQI_PT_CTYPE_BOOL bool
#define NQI_PT_CTYPE_LIST char *
#define NQI_PT_CTYPE_VERSIONS char *

enum {
#define NQI_PK_INDEX_(name, ...) NQI_PK_##name,
	NQI_POLICY_KEYS(NQI_PK_INDEX_)
#undef NQI_PK_INDEX_
	    NQI_PK_COUNT
};

#define NQI_PK_BIT(name) (1u << NQI_PK_##name)

/* Values of the policy keys; set has the bit of each key given a value.
 * LIST and VERSIONS text is owned (nqi_policy_clear frees it). */
typedef struct nqi_policy {
	uint32_t set;
#define NQI_PK_MEMBER_(name, kind, ...) NQI_PT_CTYPE_##kind name;
	NQI_POLICY_KEYS(NQI_PK_MEMBER_)
#undef NQI_PK_MEMBER_
} nqi_policy;

typedef struct nqi_policy_key {
	const char *name, *key, *def, *help;
	bool now; /* the broker obeys it */
	nqi_policy_kind kind;
	int64_t min;
	uint64_t max;
	size_t offset; /* of the member in nqi_policy */
} nqi_policy_key;

/* The rows of NQI_POLICY_KEYS, in order; NQI_PK_COUNT of them. */
const nqi_policy_key *nqi_policy_keys(void);
/* The row whose key (or name) is key, or NULL. */
const nqi_policy_key *nqi_policy_key_find(const char *key);
/* The kind's name as the README and errors say it ("duration", ...). */
const char *nqi_policy_kind_name(nqi_policy_kind kind);
/* The README's table of the keys the broker obeys (now 1), Markdown, into
 * buf; returns the length it needs (as snprintf). */
size_t nqi_policy_table_md(char *buf, size_t len);

/* Parses text as the value of k into p (and sets its bit). Returns 0, or
 * NQ_EINVAL with the reason in why; p is then unchanged. */
int nqi_policy_parse(const nqi_policy_key *k, const char *text, nqi_policy *p,
    char *why, size_t len);
/* Parses "KEY=VALUE" into p; on NQ_EINVAL, why names the key. */
int nqi_policy_parse_pair(
    const char *pair, nqi_policy *p, char *why, size_t len);
/* The canonical text of k's value in p ("" when unset). */
void nqi_policy_format(
    const nqi_policy_key *k, const nqi_policy *p, char *buf, size_t len);
/* Copies k's value (and bit) from src to dst; 0 or NQ_ENOMEM. */
int nqi_policy_copy_key(
    nqi_policy *dst, const nqi_policy *src, const nqi_policy_key *k);
/* Forgets k's value in p. */
void nqi_policy_unset(nqi_policy *p, const nqi_policy_key *k);
/* Checks the keys set in p together (backoff.base <= backoff.cap); NULL
 * when fine, else the key at fault, with the reason in why. */
const char *nqi_policy_check(const nqi_policy *p, char *why, size_t len);
void nqi_policy_clear(nqi_policy *p);

/* Whether a LIST value ("a,b") holds name. */
bool nqi_policy_list_has(const char *list, const char *name);
/* The range a VERSIONS value gives type: true and *lo..*hi when it names
 * the type, false when it does not. */
bool nqi_policy_versions_of(
    const char *versions, const char *type, uint32_t *lo, uint32_t *hi);

/* ---- the queues file ---- */

#define NQI_POLICY_QUEUE_MAX 128 /* NQI_NAME_MAX */

typedef struct nqi_policy_entry {
	char queue[NQI_POLICY_QUEUE_MAX + 1]; /* a queue name, or "*" */
	nqi_policy p;
} nqi_policy_entry;

typedef struct nqi_policy_file {
	char *path;
	nqi_policy_entry *entries;
	size_t n;
	struct nqi_schedule *schedules; /* schedules: (nqi/cron.h) */
	size_t nschedules;
} nqi_policy_file;

/* Why a file was refused: the line (1-based; 0: the file as a whole) and
 * the key at fault ("" when none). */
typedef struct nqi_policy_error {
	unsigned line;
	char key[200]; /* a schedule's key holds its name */
	char reason[256];
} nqi_policy_error;

/*
 * Reads and validates the queues file at path:
 *
 *     queues:
 *       "*":   { max_attempts: 5, backoff: { base: 1s, cap: 5m } }
 *       mail:  { types: [send, bounce], schema_versions: { send: "1-3" } }
 *
 * Returns 0 and a file to free with nqi_policy_file_free, or NQ_EINVAL
 * with err filled (NQ_ENOMEM on no memory). Blocks on the file; call it
 * off the broker's core thread.
 */
int nqi_policy_file_load(
    const char *path, nqi_policy_file **out, nqi_policy_error *err);
/* nqi_policy_file_load for text already read (name stands for the path). */
int nqi_policy_text_load(const char *name, const char *text, size_t len,
    nqi_policy_file **out, nqi_policy_error *err);
void nqi_policy_file_free(nqi_policy_file *f);
/* "PATH:LINE: KEY: REASON" (no KEY part when there is none). */
void nqi_policy_error_text(
    const char *path, const nqi_policy_error *e, char *buf, size_t len);
/* The entry of queue (exactly; "*" for the defaults) or NULL. */
const nqi_policy *nqi_policy_file_find(
    const nqi_policy_file *f, const char *queue);

#endif
