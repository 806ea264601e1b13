/*
 * nqctl events: job events from the broker's PUB socket, one JSON line each.
 *
 * Each message is a topic "job.<kind>.<queue>", a NUL, and a packed
 * EventBatch. --state S subscribes to "job.S." only, so the broker's SUB
 * filtering does the work; --queue is checked here, since a topic prefix
 * cannot skip the kind. PUB never waits for a slow subscriber: what it
 * could not take is dropped, and shows here as a gap in the topic_seq of a
 * topic. Gaps are reported on stderr as they are seen and summed at the end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "nqi/codec.h"
#include "nqi/json.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* Receive timeout of one wait, so that a signal or the deadline is seen
 * within this long. */
#define SUB_POLL_MS 100

static const char *const event_kinds[] = {"enqueued", "leased", "extended",
    "succeeded", "failed", "retrying", "dead", "canceled", "expired",
    "dlq_stored", "replayed"};

/* ---- the SUB socket, shared with top ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* Without SA_RESTART; the receive loop polls the flag. */
static void catch_stop_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

const char *nqctl_sub_url(const nqctl *x)
{
	const char *url = x->conf.events_url;
	return url && *url ? url : NQCTL_DEFAULT_EVENTS;
}

int nqctl_sub_open(nqctl *x, const void *topic, size_t topic_len, nq_sub **out)
{
	const char *url = nqctl_sub_url(x);
	const char *what = x->cmd ? x->cmd->name : "events";
	int rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_sub_open(x->client, url, topic, topic_len, &x->sub);
	/* A URL nng cannot use is a usage error; a server that is not there
	 * (or fails the TLS handshake) is "could not reach the service". */
	if (rv == NQ_EINVAL)
		return nqctl_report(x, rv, NQI_EXIT_USAGE, NULL,
		    "%s: cannot use the events socket %s: %s", what, url,
		    nq_client_last_error(x->client));
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "%s", what);
	catch_stop_signals();
	*out = x->sub;
	return NQI_CONTINUE;
}

int nqctl_sub_recv(
    nq_sub *s, uint64_t deadline_ms, const void **msg, size_t *len)
{
	for (;;) {
		if (stop_signal)
			return NQ_ECLOSED;
		if (deadline_ms && nqi_mono_ms() >= deadline_ms)
			return NQ_ETIMEDOUT;
		int rv = nq_sub_recv(s, SUB_POLL_MS, msg, len);
		if (rv != NQ_ETIMEDOUT)
			return rv;
	}
}

int nqctl_sub_args(nqctl *x, const nqi_opt *opts, size_t n, int argc,
    char **argv, int start, const char *const *queue)
{
	int rc = nqctl_args(x, opts, n, argc, argv, start);
	if (rc == NQI_CONTINUE && *queue && !nqi_name_valid(*queue))
		rc = nqctl_usage_error(x,
		    "--queue '%s' is not a valid queue name (1 to 128 of "
		    "A-Z a-z 0-9 . _ -)",
		    *queue);
	return rc;
}

int nqctl_sub_loop(const nqctl *x, nq_sub *s, uint64_t deadline_ms,
    nqctl_sub_cb cb, void *arg, bool *timed_out)
{
	int rc = NQI_CONTINUE;
	if (timed_out)
		*timed_out = false;
	while (rc == NQI_CONTINUE) {
		const void *msg;
		size_t len;
		int rv = nqctl_sub_recv(s, deadline_ms, &msg, &len);
		if (rv == NQ_ETIMEDOUT && timed_out)
			*timed_out = true;
		if (rv == NQ_ETIMEDOUT || rv == NQ_ECLOSED)
			return NQI_EXIT_OK;
		if (rv != NQ_OK)
			return nqctl_report(x, rv, NQI_EXIT_FAILED, NULL,
			    "%s: receive failed: %s", x->cmd->name,
			    nq_strerror(rv));
		rc = cb(x, arg, msg, len);
	}
	return rc;
}

/* ---- with a shard map: a subscriber on every shard's events socket ---- */

/* How long a round that found no message on any shard sleeps. */
#define SHARDS_IDLE_NS 5000000L

int nqctl_shard_subs_open(
    nqctl *x, const void *topic, size_t topic_len, nq_sub ***subs, size_t *n)
{
	const char *what = x->cmd ? x->cmd->name : "events";
	int rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	*n = nq_client_shard_count(x->client);
	if (!(*subs = calloc(*n, sizeof **subs)))
		return nqctl_report(
		    x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
	for (size_t k = 0; k < *n; k++) {
		const char *url = nq_client_shard_events_url(x->client, k);
		int rv =
		    nq_sub_open(x->client, url, topic, topic_len, &(*subs)[k]);
		if (rv != NQ_OK)
			return nqctl_fail(x, rv, "%s: shard %s's events %s",
			    what, nq_client_shard_name(x->client, k), url);
	}
	catch_stop_signals();
	return NQI_CONTINUE;
}

void nqctl_shard_subs_close(nq_sub **subs, size_t n)
{
	for (size_t k = 0; subs && k < n; k++)
		nq_sub_close(subs[k]);
	free(subs);
}

/* Takes what every shard has waiting, in turn: NQI_CONTINUE, cb's status
 * or the exit status of a failed receive; *got: a message came. */
static int shard_round(const nqctl *x, nq_sub **subs, size_t n,
    nqctl_shard_cb cb, void *arg, bool *got)
{
	int rc = NQI_CONTINUE;
	*got = false;
	for (size_t k = 0; rc == NQI_CONTINUE && k < n && !stop_signal; k++) {
		const void *msg;
		size_t len;
		int rv = nq_sub_recv(subs[k], 0, &msg, &len);
		if (rv == NQ_OK) {
			*got = true;
			rc = cb(x, arg, k, msg, len);
		} else if (rv != NQ_ETIMEDOUT) {
			rc = nqctl_report(x, rv, NQI_EXIT_FAILED, NULL,
			    "%s: receive from shard %s failed: %s",
			    x->cmd->name, nq_client_shard_name(x->client, k),
			    nq_strerror(rv));
		}
	}
	return rc;
}

int nqctl_shard_subs_loop(const nqctl *x, nq_sub **subs, size_t n,
    uint64_t deadline_ms, nqctl_shard_cb cb, void *arg, bool *timed_out)
{
	int rc = NQI_CONTINUE;
	if (timed_out)
		*timed_out = false;
	while (rc == NQI_CONTINUE) {
		bool got;
		if (stop_signal)
			return NQI_EXIT_OK;
		if (deadline_ms && nqi_mono_ms() >= deadline_ms) {
			if (timed_out)
				*timed_out = true;
			return NQI_EXIT_OK;
		}
		rc = shard_round(x, subs, n, cb, arg, &got);
		if (rc == NQI_CONTINUE && !got)
			nanosleep(&(struct timespec){0, SHARDS_IDLE_NS}, NULL);
	}
	return rc;
}

/* ---- gaps: the last topic_seq of every topic seen ---- */

typedef struct topic_seen {
	char *name;
	uint64_t last;
} topic_seen;

typedef struct gaps {
	topic_seen *v;
	size_t n, cap;
	uint64_t missed; /* in all, for the summary */
} gaps;

static topic_seen *gaps_topic(gaps *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->v[i].name, name) == 0)
			return &g->v[i];
	if (NQI_GROW(g->v, g->cap, g->n + 1, 32) != 0)
		return NULL;
	char *copy = strdup(name);
	if (!copy)
		return NULL;
	g->v[g->n] = (topic_seen){copy, 0};
	return &g->v[g->n++];
}

static void gaps_free(gaps *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i].name);
	free(g->v);
}

/*
 * Checks one event's topic_seq against the last one of its topic. The
 * first event of a topic only sets where counting starts (what came before
 * we subscribed is not missed); a number that goes back means the broker
 * restarted and counts again from 1.
 */
static void gaps_check(
    gaps *g, const char *shard, const char *topic, uint64_t topic_seq)
{
	char where[200];
	snprintf(where, sizeof where, "%s%s%s", topic,
	    shard ? " of shard " : "", shard ? shard : "");
	topic_seen *t = topic_seq ? gaps_topic(g, topic) : NULL;
	if (!t)
		return;
	if (t->last && topic_seq > t->last + 1) {
		uint64_t n = topic_seq - t->last - 1;
		g->missed += n;
		fprintf(stderr,
		    "nqctl: events: missed %llu event%s on %s (topic_seq "
		    "%llu to %llu)\n",
		    (unsigned long long)n, n == 1 ? "" : "s", where,
		    (unsigned long long)t->last + 1,
		    (unsigned long long)topic_seq - 1);
	} else if (t->last && topic_seq <= t->last) {
		fprintf(stderr,
		    "nqctl: events: topic_seq of %s went back from %llu to "
		    "%llu (the broker restarted?); counting from there\n",
		    where, (unsigned long long)t->last,
		    (unsigned long long)topic_seq);
	}
	t->last = topic_seq;
}

/* ---- printing ---- */

/* RFC 3339 UTC with microseconds: "2026-11-27T22:00:00.123456Z". */
static json_t *time_json(uint64_t us)
{
	char buf[48];
	time_t secs = (time_t)(us / 1000000u);
	struct tm tm;
	if (us == 0 || !gmtime_r(&secs, &tm))
		return json_null();
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%06uZ", (unsigned)(us % 1000000u));
	return json_string(buf);
}

/* Text from the wire as a JSON string (invalid UTF-8 replaced); "" and
 * absent fields are null. */
static json_t *text_json(const char *s)
{
	return s && *s ? nqi_json_string_lossy(s, strlen(s)) : json_null();
}

/* Every field of the event, plus its topic (and with a shard map its
 * shard), in the order of events.proto. */
static json_t *event_json(
    const char *shard, const char *topic, const Nq__V1__JobEvent *e)
{
	json_t *o = json_object();
	int bad = !o;
	if (shard)
		bad |= json_object_set_new(o, "shard", json_string(shard));
	bad |= json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
	bad |= json_object_set_new(
	    o, "topic_seq", json_integer((json_int_t)e->topic_seq));
	bad |= json_object_set_new(o, "topic", text_json(topic));
	bad |= json_object_set_new(o, "kind", text_json(e->kind));
	bad |= json_object_set_new(o, "id", text_json(e->id));
	bad |= json_object_set_new(o, "queue", text_json(e->queue));
	bad |= json_object_set_new(o, "type", text_json(e->type));
	bad |= json_object_set_new(o, "attempt", json_integer(e->attempt));
	bad |= json_object_set_new(o, "at", time_json(e->at_us));
	bad |= json_object_set_new(o, "worker_id", text_json(e->worker_id));
	bad |= json_object_set_new(o, "error", text_json(e->error));
	bad |= json_object_set_new(o, "traceparent", text_json(e->traceparent));
	if (e->limit && *e->limit) /* limit_reached, limit_cleared */
		bad |= json_object_set_new(o, "limit", text_json(e->limit));
	if (strcmp(e->kind, "progress") == 0) {
		bad |= json_object_set_new(
		    o, "progress_pct", json_integer(e->progress_pct));
		bad |= json_object_set_new(
		    o, "progress_note", text_json(e->progress_note));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- the command ---- */

typedef struct events_run {
	const char *queue; /* NULL: every queue */
	const char *state; /* NULL: every kind */
	uint64_t count;    /* events to print; 0: no limit */
	uint64_t printed;
	uint64_t skipped; /* messages that were not a job event batch */
	gaps *gaps;       /* per shard (one without a map) */
	size_t ngaps;
	size_t shard;     /* of the message at hand */
	const char *name; /* its name; NULL without a map */
} events_run;

/* Prints the events of one message that pass the filters. Returns
 * NQI_CONTINUE, NQI_EXIT_OK once --count is reached, or
 * NQI_EXIT_FAILED when the output cannot be written. */
static int print_batch(
    events_run *r, const Nq__V1__EventBatch *b, const char *topic)
{
	for (size_t i = 0; i < b->n_events; i++) {
		const Nq__V1__JobEvent *e = b->events[i];
		gaps_check(&r->gaps[r->shard], r->name, topic, e->topic_seq);
		if (r->queue && strcmp(e->queue, r->queue) != 0)
			continue;
		if (r->state && strcmp(e->kind, r->state) != 0)
			continue;
		if (nqctl_print_json(event_json(r->name, topic, e)) !=
		    NQI_EXIT_OK)
			return NQI_EXIT_FAILED;
		if (r->count && ++r->printed >= r->count)
			return NQI_EXIT_OK;
	}
	return NQI_CONTINUE;
}

/* Splits topic and batch; a message that is not "job.*\0<batch>" is
 * counted and skipped. Output goes out per message, so a pipe reader sees
 * events as they happen. */
static int on_message(const nqctl *x, void *arg, const char *body, size_t len)
{
	events_run *r = arg;
	const char *nul = memchr(body, '\0', len);
	Nq__V1__EventBatch *b = NULL;
	if (nul && strncmp(body, "job.", 4) == 0)
		b = nq__v1__event_batch__unpack(NULL,
		    len - (size_t)(nul - body) - 1, (const uint8_t *)nul + 1);
	if (!b) {
		if (r->skipped++ == 0)
			fprintf(stderr,
			    "nqctl: events: skipped a message that is not a "
			    "job event batch (%zu bytes)\n",
			    len);
		return NQI_CONTINUE;
	}
	int rc = print_batch(r, b, body);
	nq__v1__event_batch__free_unpacked(b, NULL);
	if (fflush(stdout) != 0)
		return nqctl_report(x, NQ_EINTERNAL, NQI_EXIT_FAILED, NULL,
		    "events: writing the output: %s", strerror(errno));
	return rc;
}

static int check_state(nqctl *x, const events_run *r)
{
	if (!r->state)
		return NQI_CONTINUE;
	for (size_t i = 0; i < NQCTL_LEN(event_kinds); i++)
		if (strcmp(r->state, event_kinds[i]) == 0)
			return NQI_CONTINUE;
	return nqctl_usage_error(x,
	    "--state '%s' is not an event kind (enqueued, leased, extended, "
	    "succeeded, failed, retrying, dead, canceled, expired, "
	    "dlq_stored, replayed)",
	    r->state);
}

/* A message of shard k (with a shard map). */
static int on_shard_message(
    const nqctl *x, void *arg, size_t k, const char *body, size_t len)
{
	events_run *r = arg;
	r->shard = k;
	r->name = nq_client_shard_name(x->client, k);
	return on_message(x, arg, body, len);
}

/* Subscribes to topic (tlen bytes): with a shard map on every shard's
 * events socket, else on --events; then prints until the end. */
static int events_run_all(
    nqctl *x, events_run *r, const char *topic, size_t tlen, uint64_t end)
{
	nq_sub **subs = NULL, *s;
	size_t n = 1;
	int rc;
	if (x->conf.conn.brokers && *x->conf.conn.brokers) {
		rc = nqctl_shard_subs_open(x, topic, tlen, &subs, &n);
		r->ngaps = n;
		r->gaps = calloc(n, sizeof *r->gaps);
		if (rc == NQI_CONTINUE && !r->gaps)
			rc = nqctl_report(x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL,
			    "out of memory");
		if (rc == NQI_CONTINUE)
			rc = nqctl_shard_subs_loop(
			    x, subs, n, end, on_shard_message, r, NULL);
		nqctl_shard_subs_close(subs, n);
		return rc;
	}
	r->ngaps = 1;
	if (!(r->gaps = calloc(1, sizeof *r->gaps)))
		return nqctl_report(
		    x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
	if ((rc = nqctl_sub_open(x, topic, tlen, &s)) != NQI_CONTINUE)
		return rc;
	/* s stays open until nqctl exits: see nqctl_sub_open. */
	return nqctl_sub_loop(x, s, end, on_message, r, NULL);
}

int nqctl_events(nqctl *x, int argc, char **argv, int start)
{
	events_run r = {0};
	uint64_t duration_ms = 0;
	char topic[160] = "job.";
	const nqi_opt opts[] = {
	    {"queue", NQI_OPT_STR, &r.queue, "only events of this queue",
	        false},
	    {"state", NQI_OPT_STR, &r.state,
	        "only events of this kind: enqueued, leased, succeeded, "
	        "failed, retrying, dead, ...",
	        false},
	    {"count", NQI_OPT_U64, &r.count,
	        "exit 0 after printing this many events", false},
	    {"duration", NQI_OPT_DURATION, &duration_ms,
	        "exit 0 after this long", false},
	    NQCTL_SUB_OPTS(x),
	};
	int rc = nqctl_sub_args(
	    x, opts, NQCTL_LEN(opts), argc, argv, start, &r.queue);
	if (rc == NQI_CONTINUE)
		rc = check_state(x, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	/* With both filters, the exact topic, its NUL included so that queue
	 * "a" does not also take queue "ab". */
	size_t tlen = 4;
	if (r.state)
		tlen = (size_t)snprintf(topic, sizeof topic, "job.%s.%s",
		           r.state, r.queue ? r.queue : "") +
		       (r.queue ? 1 : 0);
	uint64_t deadline_ms = duration_ms ? nqi_mono_ms() + duration_ms : 0;
	uint64_t missed = 0;
	rc = events_run_all(x, &r, topic, tlen, deadline_ms);
	for (size_t k = 0; k < r.ngaps && r.gaps; k++) {
		missed += r.gaps[k].missed;
		gaps_free(&r.gaps[k]);
	}
	free(r.gaps);
	if (missed)
		fprintf(stderr,
		    "nqctl: events: missed %llu events in all (the broker "
		    "drops what a slow subscriber cannot take)\n",
		    (unsigned long long)missed);
	return rc;
}
