/* nqctl commands on queues: stats, pause, resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/queue_fields.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The table of `nqctl stats`: QUEUE, PAUSED, the columns of
 * nqi/queue_fields.h in the order of QueueStats (the counts by state, then
 * the counters since the broker started), DEAD-RATIO. */
#define MAX_COLS (NQI_QF_COUNT + 3)
#define CELL_MAX (NQI_NAME_MAX + 8)

typedef char stat_row[MAX_COLS][CELL_MAX];

typedef struct stat_cols {
	const char *head[MAX_COLS];
	const char *field[MAX_COLS]; /* NULL: not a QueueStats number */
	size_t n;
} stat_cols;

static void stat_columns(stat_cols *c)
{
	const char *name;
	c->n = 0;
	c->head[c->n] = "QUEUE";
	c->field[c->n++] = NULL;
	c->head[c->n] = "PAUSED";
	c->field[c->n++] = NULL;
	for (size_t k = 0; (name = nq_queue_stats_field(k)); k++) {
		const nqi_queue_field *f = nqi_queue_field_find(name);
		if (f && f->stats_head[0] && c->n < MAX_COLS - 1) {
			c->head[c->n] = f->stats_head;
			c->field[c->n++] = name;
		}
	}
	c->head[c->n] = "DEAD-RATIO";
	c->field[c->n++] = NULL;
}

static void fill_row(
    const stat_cols *c, const nq_queue_stats *qs, size_t i, stat_row row)
{
	snprintf(row[0], CELL_MAX, "%s", nq_queue_stats_queue(qs, i));
	snprintf(row[1], CELL_MAX, "%s",
	    nq_queue_stats_paused(qs, i) ? "yes" : "no");
	for (size_t col = 2; col < c->n - 1; col++) {
		uint64_t v = 0;
		nq_queue_stats_get(qs, i, c->field[col], &v);
		snprintf(row[col], CELL_MAX, "%llu", (unsigned long long)v);
	}
	snprintf(row[c->n - 1], CELL_MAX, "%.4f", nq_dead_letter_ratio(qs, i));
}

/* The queue name and PAUSED left-aligned, numbers right-aligned. */
static void print_row(
    const stat_cols *c, const char *const *cells, const size_t *width)
{
	printf("%-*s  %-*s", (int)width[0], cells[0], (int)width[1], cells[1]);
	for (size_t col = 2; col < c->n; col++)
		printf("  %*s", (int)width[col], cells[col]);
	putchar('\n');
}

/* Under a fair queue's row, its largest groups, "other" last. */
static void print_groups(const nq_queue_stats *qs, size_t i)
{
	const char *name;
	uint64_t ready, leased;
	for (size_t k = 0;
	     nq_queue_stats_group(qs, i, k, &name, &ready, &leased) == NQ_OK;
	     k++)
		printf("  group %s: %llu ready, %llu leased\n", name,
		    (unsigned long long)ready, (unsigned long long)leased);
}

static void print_uptime(uint64_t ms)
{
	uint64_t s = ms / 1000;
	if (s >= 86400)
		printf("%llud", (unsigned long long)(s / 86400));
	if (s >= 3600)
		printf("%lluh", (unsigned long long)(s / 3600 % 24));
	if (s >= 60)
		printf("%llum", (unsigned long long)(s / 60 % 60));
	printf("%llus", (unsigned long long)(s % 60));
}

/* WORKER QUEUES FREE LEASED SEEN: the workers seen fetching. */
static void print_workers(const nq_queue_stats *qs)
{
	nq_worker_stats w;
	int idw = 6, qw = 6;
	uint64_t now = nqi_now_us();
	for (size_t k = 0; nq_queue_stats_worker(qs, k, &w) == NQ_OK; k++) {
		idw = (int)strlen(w.worker_id) > idw ? (int)strlen(w.worker_id)
		                                     : idw;
		qw = (int)strlen(w.queues) > qw ? (int)strlen(w.queues) : qw;
	}
	if (nq_queue_stats_workers(qs) == 0)
		return;
	printf("%-*s  %-*s  %6s  %6s  %s\n", idw, "WORKER", qw, "QUEUES",
	    "FREE", "LEASED", "SEEN");
	for (size_t k = 0; nq_queue_stats_worker(qs, k, &w) == NQ_OK; k++)
		printf("%-*s  %-*s  %6llu  %6llu  %llus ago\n", idw,
		    w.worker_id, qw, w.queues, (unsigned long long)w.free_slots,
		    (unsigned long long)w.leased,
		    (unsigned long long)(now > w.last_seen_us
		                             ? (now - w.last_seen_us) / 1000000
		                             : 0));
}

static int print_table(
    const nq_queue_stats *qs, size_t n, const nq_broker_stats *broker)
{
	stat_cols c;
	size_t width[MAX_COLS];
	const char *cells[MAX_COLS];
	stat_row *rows = calloc(n ? n : 1, sizeof *rows);
	if (!rows) {
		fprintf(stderr, "nqctl: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	stat_columns(&c);
	for (size_t col = 0; col < c.n; col++)
		width[col] = strlen(c.head[col]);
	for (size_t r = 0; r < n; r++) {
		fill_row(&c, qs, r, rows[r]);
		for (size_t col = 0; col < c.n; col++)
			if (strlen(rows[r][col]) > width[col])
				width[col] = strlen(rows[r][col]);
	}
	print_row(&c, c.head, width);
	for (size_t r = 0; r < n; r++) {
		for (size_t col = 0; col < c.n; col++)
			cells[col] = rows[r][col];
		print_row(&c, cells, width);
		print_groups(qs, r);
	}
	free(rows);
	printf("broker: %llu commits, %llu jobs stored, up ",
	    (unsigned long long)broker->commits,
	    (unsigned long long)broker->jobs_stored);
	print_uptime(broker->uptime_ms);
	putchar('\n');
	print_workers(qs);
	return NQI_EXIT_OK;
}

/* Sets a number of QueueStats in o; a time (a name ending in _us) as
 * "<stem>_at", a date or null. */
static int set_number(
    json_t *o, const nq_queue_stats *qs, size_t i, const char *name)
{
	uint64_t v = 0;
	size_t len = strlen(name);
	bool at = len > 3 && strcmp(name + len - 3, "_us") == 0;
	char key[96];
	nq_queue_stats_get(qs, i, name, &v);
	snprintf(key, sizeof key, "%.*s%s", (int)(at ? len - 3 : len), name,
	    at ? "_at" : "");
	return json_object_set_new(
	    o, key, at ? nqctl_time_json(v) : json_integer((json_int_t)v));
}

/* "groups": [{group, ready, leased}...], largest first, "other" last. */
static int set_groups(json_t *o, const nq_queue_stats *qs, size_t i)
{
	const char *name;
	uint64_t ready, leased;
	json_t *a = json_array();
	for (size_t k = 0; a && nq_queue_stats_group(
	                            qs, i, k, &name, &ready, &leased) == NQ_OK;
	     k++)
		if (json_array_append_new(a,
		        json_pack("{s:s, s:I, s:I}", "group", name, "ready",
		            (json_int_t)ready, "leased", (json_int_t)leased)) !=
		    0) {
			json_decref(a);
			a = NULL;
		}
	return a ? json_object_set_new(o, "groups", a) : -1;
}

/* The queue, paused, every number of QueueStats in its order, the ratio,
 * the groups. */
static json_t *queue_json(const nq_queue_stats *qs, size_t i)
{
	const char *name;
	int bad = 0;
	json_t *o =
	    json_pack("{s:s, s:b}", "queue", nq_queue_stats_queue(qs, i),
	        "paused", nq_queue_stats_paused(qs, i));
	for (size_t k = 0; o && (name = nq_queue_stats_field(k)); k++)
		bad |= set_number(o, qs, i, name);
	if (o)
		bad |= json_object_set_new(o, "dead_letter_ratio",
		    json_real(nq_dead_letter_ratio(qs, i)));
	if (o)
		bad |= set_groups(o, qs, i);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* "a,b" as ["a", "b"], as the JSON API shows a worker's queues. */
static json_t *names_json(const char *list)
{
	json_t *a = json_array();
	for (const char *p = list; a && *p;) {
		size_t n = strcspn(p, ",");
		json_array_append_new(a, json_stringn(p, n));
		p += n + (p[n] == ',');
	}
	return a;
}

static json_t *workers_json(const nq_queue_stats *qs)
{
	nq_worker_stats w;
	json_t *a = json_array();
	for (size_t k = 0; a && nq_queue_stats_worker(qs, k, &w) == NQ_OK; k++)
		if (json_array_append_new(
		        a, json_pack("{s:s, s:o, s:I, s:I, s:o}", "worker_id",
		               w.worker_id, "queues", names_json(w.queues),
		               "free_slots", (json_int_t)w.free_slots, "leased",
		               (json_int_t)w.leased, "last_seen_at",
		               nqctl_time_json(w.last_seen_us))) != 0) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* With a shard map: which shard owns each queue shown. */
static void print_shards(const nqctl *x, const nq_queue_stats *qs, size_t n)
{
	for (size_t k = 0; k < nq_client_shard_count(x->client); k++) {
		const char *name = nq_client_shard_name(x->client, k);
		const char *sep = ": ";
		printf("shard %s", name);
		for (size_t i = 0; i < n; i++) {
			const char *q = nq_queue_stats_queue(qs, i);
			if (strcmp(nq_client_shard_of(x->client, q), name))
				continue;
			printf("%s%s", sep, q);
			sep = ", ";
		}
		printf("%s\n", *sep == ':' ? ": no queue shown" : "");
	}
}

/* A queue's object, with its shard under a shard map. */
static json_t *queue_json_of(const nqctl *x, const nq_queue_stats *qs, size_t i)
{
	json_t *o = queue_json(qs, i);
	const char *shard =
	    nq_client_shard_of(x->client, nq_queue_stats_queue(qs, i));
	if (o && shard && json_object_set_new(o, "shard", json_string(shard))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int print_stats_json(const nqctl *x, const nq_queue_stats *qs, size_t n,
    const nq_broker_stats *broker)
{
	json_t *queues = json_array();
	for (size_t i = 0; queues && i < n; i++) {
		if (json_array_append_new(queues, queue_json_of(x, qs, i)) !=
		    0) {
			json_decref(queues);
			queues = NULL;
		}
	}
	if (!queues)
		return nqctl_print_json(NULL);
	json_t *workers = workers_json(qs);
	if (!workers) {
		json_decref(queues);
		return nqctl_print_json(NULL);
	}
	return nqctl_print_json(json_pack("{s:o, s:o, s:{s:I, s:I, s:I}}",
	    "queues", queues, "workers", workers, "broker", "commits",
	    (json_int_t)broker->commits, "uptime_ms",
	    (json_int_t)broker->uptime_ms, "jobs_stored",
	    (json_int_t)broker->jobs_stored));
}

/* Parses the common options and the QUEUE argument (*queue NULL when
 * there is none), checks the name and connects. Returns NQI_CONTINUE,
 * or the exit status after saying what went wrong. */
static int queue_begin(
    nqctl *x, int argc, char **argv, int start, const char **queue)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	*queue = x->nargs ? x->args[0] : NULL;
	if (rc == NQI_CONTINUE && *queue && !nqi_name_valid(*queue))
		rc = nqctl_usage_error(
		    x, "'%s' is not a valid queue name", *queue);
	if (rc == NQI_CONTINUE)
		rc = nqctl_connect(x);
	return rc;
}

int nqctl_stats(nqctl *x, int argc, char **argv, int start)
{
	nq_queue_stats *qs = NULL;
	nq_broker_stats broker = {0};
	size_t n = 0;
	const char *queue;
	int rc = queue_begin(x, argc, argv, start, &queue);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_stats(x->client, queue, &qs, &n, &broker);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "stats%s%s", queue ? " of queue " : "",
		    queue ? queue : "");
	rc = x->conf.json ? print_stats_json(x, qs, n, &broker)
	                  : print_table(qs, n, &broker);
	if (rc == NQI_EXIT_OK && !x->conf.json)
		print_shards(x, qs, n);
	nq_queue_stats_free(qs);
	return rc;
}

static int set_paused(nqctl *x, int argc, char **argv, int start, bool pause)
{
	const char *queue;
	int rc = queue_begin(x, argc, argv, start, &queue);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv =
	    pause ? nq_pause(x->client, queue) : nq_resume(x->client, queue);
	if (rv != NQ_OK)
		return nqctl_fail(
		    x, rv, "%s queue %s", pause ? "pause" : "resume", queue);
	if (x->conf.json)
		return nqctl_print_json(
		    json_pack("{s:s, s:b}", "queue", queue, "paused", pause));
	printf("queue %s %s\n", queue, pause ? "paused" : "resumed");
	return NQI_EXIT_OK;
}

int nqctl_pause(nqctl *x, int argc, char **argv, int start)
{
	return set_paused(x, argc, argv, start, true);
}

int nqctl_resume(nqctl *x, int argc, char **argv, int start)
{
	return set_paused(x, argc, argv, start, false);
}

/* Which shard of --brokers owns each queue named: what an operator asks
 * before adding a shard (run it with the old map and with the new one:
 * the queues whose line changed are those that move). */
int nqctl_shard(nqctl *x, int argc, char **argv, int start)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	for (size_t i = 0; rc == NQI_CONTINUE && i < x->nargs; i++)
		if (!nqi_name_valid(x->args[i]))
			rc = nqctl_usage_error(
			    x, "'%s' is not a valid queue name", x->args[i]);
	if (rc == NQI_CONTINUE && !x->conf.conn.brokers)
		rc =
		    nqctl_usage_error(x, "shard needs --brokers (a shard map)");
	if (rc == NQI_CONTINUE)
		rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	json_t *all = x->conf.json ? json_array() : NULL;
	for (size_t i = 0; i < x->nargs; i++) {
		const char *q = x->args[i];
		const char *s = nq_client_shard_of(x->client, q);
		if (all)
			json_array_append_new(all,
			    json_pack("{s:s, s:s}", "queue", q, "shard", s));
		else
			printf("%s %s\n", q, s);
	}
	return all ? nqctl_print_json(all) : NQI_EXIT_OK;
}
