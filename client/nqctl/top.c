/*
 * nqctl top: the broker's once-a-second "metrics" topic as a table of
 * queues. The topic is the bytes "metrics" and a msgpack map (no NUL):
 *
 *   {at_us, broker: {commits, jobs_stored, events_published,
 *    events_dropped}, queues: {NAME: {ready, scheduled, leased, ...}}}
 *
 * It is schema-less, so a field this nqctl does not know is ignored and a
 * field the broker does not send shows as "-". On a terminal each frame
 * redraws the screen in place; otherwise each frame is plain lines followed
 * by a blank line; with --json each frame is the map as one JSON line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "nqi/json.h"
#include "nqi/queue_fields.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TOPIC "metrics"
#define TOPIC_LEN 7
#define CELL_MAX 32

typedef enum col_kind { COL_COUNT, COL_RATE, COL_SECS, COL_PCT } col_kind;

typedef struct column {
	const char *head;
	const char *key; /* in the queue's map */
	col_kind kind;
} column;

/* The gauges and the rates of nqi/queue_fields.h around the columns the
 * topic derives: the oldest job's age, latency, dead-letter ratio. */
static const column oldest = {"OLDEST", "oldest_ready_age_s", COL_SECS};
static const column derived[] = {
    {"P50", "latency_p50_s", COL_SECS},
    {"P90", "latency_p90_s", COL_SECS},
    {"P99", "latency_p99_s", COL_SECS},
    {"DEAD%", "dead_letter_ratio", COL_PCT},
};
#define MAX_COLS (NQI_QF_COUNT + 1 + NQCTL_LEN(derived))
#define NCOLS (MAX_COLS + 1) /* the queue name first */

/* The rate of a TOTAL row is its key with this suffix (see metrics.c). */
#define RATE_SUFFIX "_per_s"

typedef struct top_run {
	const char *queue; /* NULL: every queue */
	bool tty;
	bool json;
	uint64_t frames;
	column columns[MAX_COLS];
	size_t ncolumns;
	char rate_keys[NQI_QF_COUNT][64];
} top_run;

static void add_rows(top_run *r, bool totals)
{
	const nqi_queue_field *f = nqi_queue_fields();
	for (size_t i = 0; i < NQI_QF_COUNT; i++) {
		if (!f[i].top_head[0] || (f[i].kind == NQI_QF_TOTAL) != totals)
			continue;
		column *c = &r->columns[r->ncolumns++];
		c->head = f[i].top_head;
		c->key = f[i].key;
		c->kind = COL_COUNT;
		if (totals) {
			snprintf(r->rate_keys[i], sizeof r->rate_keys[i],
			    "%s%s", f[i].key, RATE_SUFFIX);
			c->key = r->rate_keys[i];
			c->kind = COL_RATE;
		}
	}
}

static void top_columns(top_run *r)
{
	r->ncolumns = 0;
	add_rows(r, false);
	r->columns[r->ncolumns++] = oldest;
	add_rows(r, true);
	for (size_t i = 0; i < NQCTL_LEN(derived); i++)
		r->columns[r->ncolumns++] = derived[i];
}

typedef char top_row[NCOLS][CELL_MAX];

/* ---- cells ---- */

static void format_secs(double v, char *out)
{
	if (v == 0)
		snprintf(out, CELL_MAX, "0");
	else if (v < 0.001)
		snprintf(out, CELL_MAX, "<1ms");
	else if (v < 1)
		snprintf(out, CELL_MAX, "%.0fms", v * 1000);
	else if (v < 60)
		snprintf(out, CELL_MAX, "%.1fs", v);
	else if (v < 3600)
		snprintf(out, CELL_MAX, "%.1fm", v / 60);
	else
		snprintf(out, CELL_MAX, "%.1fh", v / 3600);
}

/* A number as its column shows it; "-" when absent or not a number. */
static void format_cell(const json_t *v, col_kind kind, char *out)
{
	double d = json_number_value(v);
	if (!json_is_number(v) || !isfinite(d) || d < 0) {
		snprintf(out, CELL_MAX, "-");
		return;
	}
	switch (kind) {
	case COL_COUNT:
		snprintf(out, CELL_MAX, "%.0f", d);
		break;
	case COL_RATE:
		snprintf(out, CELL_MAX, "%.1f", d);
		break;
	case COL_SECS:
		format_secs(d, out);
		break;
	case COL_PCT:
		snprintf(out, CELL_MAX, "%.1f", d * 100);
		break;
	}
}

static void fill_row(
    const top_run *r, const char *name, const json_t *q, char row[][CELL_MAX])
{
	snprintf(row[0], CELL_MAX, "%.*s", CELL_MAX - 1, name);
	for (size_t c = 0; c < r->ncolumns; c++)
		format_cell(json_object_get(q, r->columns[c].key),
		    r->columns[c].kind, row[c + 1]);
}

/* ---- a frame ---- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The queue names to show, sorted; NULL (and *n 0) when none. */
static const char **queue_names(
    const top_run *r, const json_t *queues, size_t *n)
{
	const char *key;
	const json_t *v;
	const char **names =
	    calloc(json_object_size(queues) + 1, sizeof *names);
	*n = 0;
	if (!names)
		return NULL;
	json_object_foreach((json_t *)queues, key, v)
	{
		if (json_is_object(v) &&
		    (!r->queue || strcmp(key, r->queue) == 0))
			names[(*n)++] = key;
	}
	qsort(names, *n, sizeof *names, cmp_names);
	return names;
}

static void print_row(FILE *f, size_t ncells, const char *const cells[NCOLS],
    const size_t width[NCOLS])
{
	fprintf(f, "%-*s", (int)width[0], cells[0]);
	for (size_t c = 1; c < ncells; c++)
		fprintf(f, "  %*s", (int)width[c], cells[c]);
	fputc('\n', f);
}

static void print_table(FILE *f, const top_run *r, const json_t *queues,
    const char **names, size_t n, top_row *rows)
{
	size_t width[NCOLS] = {0}, ncells = r->ncolumns + 1;
	const char *cells[NCOLS];
	cells[0] = "QUEUE";
	for (size_t c = 1; c < ncells; c++)
		cells[c] = r->columns[c - 1].head;
	for (size_t c = 0; c < ncells; c++)
		width[c] = strlen(cells[c]);
	for (size_t i = 0; i < n; i++) {
		fill_row(
		    r, names[i], json_object_get(queues, names[i]), rows[i]);
		for (size_t c = 0; c < ncells; c++)
			if (strlen(rows[i][c]) > width[c])
				width[c] = strlen(rows[i][c]);
	}
	print_row(f, ncells, cells, width);
	for (size_t i = 0; i < n; i++) {
		for (size_t c = 0; c < ncells; c++)
			cells[c] = rows[i][c];
		print_row(f, ncells, cells, width);
	}
}

/* A line per queue that waits per group: its largest groups' ready jobs,
 * in the order the broker sent them (largest first, "other" last). */
static void print_groups(
    FILE *f, const json_t *queues, const char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const json_t *g = json_object_get(
		    json_object_get(queues, names[i]), "groups");
		const char *key;
		const json_t *v;
		const char *sep = ": ";
		if (!json_is_object(g) || json_object_size(g) == 0)
			continue;
		fprintf(f, "%s groups", names[i]);
		json_object_foreach((json_t *)g, key, v)
		{
			char cell[CELL_MAX];
			format_cell(v, COL_COUNT, cell);
			fprintf(f, "%s%s %s", sep, key, cell);
			sep = ", ";
		}
		fputc('\n', f);
	}
}

static unsigned long long uint_member(const json_t *o, const char *key)
{
	double d = json_number_value(json_object_get(o, key));
	return isfinite(d) && d > 0 ? (unsigned long long)d : 0;
}

static void print_head(FILE *f, const nqctl *x, const json_t *m)
{
	char at[48] = "-";
	const json_t *b = json_object_get(m, "broker");
	uint64_t at_us = uint_member(m, "at_us");
	if (at_us)
		nqctl_format_time(at_us, at, sizeof at);
	char where[256];
	snprintf(where, sizeof where, "%s", nqctl_sub_url(x));
	if (x->conf.conn.brokers && *x->conf.conn.brokers)
		snprintf(where, sizeof where, "%zu shards",
		    nq_client_shard_count(x->client));
	fprintf(f,
	    "nq top  %s  %s  commits %llu  jobs stored %llu  events "
	    "published %llu  dropped %llu\n",
	    at, where, uint_member(b, "commits"), uint_member(b, "jobs_stored"),
	    uint_member(b, "events_published"),
	    uint_member(b, "events_dropped"));
}

/* Writes the whole frame to memory first, so that a terminal gets it in
 * one write and does not flicker. */
static int print_frame(const top_run *r, const nqctl *x, const json_t *m)
{
	const json_t *queues = json_object_get(m, "queues");
	size_t n, len = 0;
	char *text = NULL;
	const char **names = queue_names(r, queues, &n);
	top_row *rows = calloc(n ? n : 1, sizeof *rows);
	FILE *f = names && rows ? open_memstream(&text, &len) : NULL;
	if (f) {
		print_head(f, x, m);
		if (n) {
			print_table(f, r, queues, names, n, rows);
			print_groups(f, queues, names, n);
		} else if (r->queue)
			fprintf(f, "queue %s: not known yet\n", r->queue);
		else
			fprintf(f, "no queues yet\n");
		fclose(f);
	}
	free(names);
	free(rows);
	if (!text) {
		fprintf(stderr, "nqctl: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	/* Home, clear below: the frame replaces the last one in place. */
	printf(
	    "%s%s%s", r->tty ? "\033[H\033[J" : "", text, r->tty ? "" : "\n");
	free(text);
	return fflush(stdout) == 0 ? NQI_CONTINUE : NQI_EXIT_FAILED;
}

/* --json: the map as JSON, with only the --queue queue when one is given. */
static int print_frame_json(const top_run *r, json_t *m)
{
	json_t *queues = json_object_get(m, "queues");
	if (r->queue && json_is_object(queues)) {
		json_t *only = json_object();
		json_t *q = json_object_get(queues, r->queue);
		if (!only || (q && json_object_set(only, r->queue, q) != 0) ||
		    json_object_set_new(m, "queues", only) != 0)
			return nqctl_print_json(NULL);
	}
	json_incref(m);
	if (nqctl_print_json(m) != NQI_EXIT_OK)
		return NQI_EXIT_FAILED;
	return fflush(stdout) == 0 ? NQI_CONTINUE : NQI_EXIT_FAILED;
}

/* The frame a message carries when it is the metrics topic with one
 * msgpack map; NULL for another topic that starts with "metrics", or a
 * map this nqctl cannot read. */
static json_t *frame_of(const char *body, size_t len)
{
	json_t *m =
	    len > TOPIC_LEN && memcmp(body, TOPIC, TOPIC_LEN) == 0
	        ? nqi_msgpack_to_jansson(body + TOPIC_LEN, len - TOPIC_LEN)
	        : NULL;
	if (json_is_object(m))
		return m;
	json_decref(m);
	return NULL;
}

/* One message: shown when it is the metrics topic with one msgpack map. */
static int on_message(const nqctl *x, void *arg, const char *body, size_t len)
{
	top_run *r = arg;
	json_t *m = frame_of(body, len);
	if (!m)
		return NQI_CONTINUE;
	r->frames++;
	int rc = r->json ? print_frame_json(r, m) : print_frame(r, x, m);
	json_decref(m);
	return rc;
}

/* Shows frames until a signal or the deadline; a deadline that passes
 * before any frame came says the URL is likely not the broker's. */
static int top_loop(top_run *r, const nqctl *x, nq_sub *s, uint64_t deadline_ms)
{
	bool timed_out;
	int rc = nqctl_sub_loop(x, s, deadline_ms, on_message, r, &timed_out);
	if (timed_out && !r->frames)
		return nqctl_report(x, NQ_ETIMEDOUT, NQI_EXIT_UNREACHABLE, NULL,
		    "top: no metrics arrived from %s in time; "
		    "is that the broker's --events socket?",
		    nqctl_sub_url(x));
	return rc;
}

/* ---- with a shard map: one subscriber per shard, frames added up ---- */

/* Adds the numbers of object b into a: counts and rates sum, ages and
 * latencies (_s) and ratios take the larger; other members (groups) come
 * from the first shard that sent them. */
static void add_numbers(json_t *a, const json_t *b)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)b, key, v)
	{
		json_t *mine = json_object_get(a, key);
		size_t n = strlen(key);
		bool larger = (n > 2 && strcmp(key + n - 2, "_s") == 0) ||
		              strstr(key, "ratio") || strcmp(key, "at_us") == 0;
		if (!mine)
			json_object_set(a, key, v);
		else if (json_is_number(mine) && json_is_number(v))
			json_object_set_new(a, key,
			    json_real(larger ? fmax(json_number_value(mine),
			                           json_number_value(v))
			                     : json_number_value(mine) +
			                           json_number_value(v)));
	}
}

/* The frames of every shard as one: the broker's numbers and each
 * queue's added up. */
static json_t *merge_frames(json_t *const *frames, size_t n)
{
	json_t *all = json_pack(
	    "{s:o, s:o}", "broker", json_object(), "queues", json_object());
	for (size_t k = 0; all && k < n; k++) {
		const char *name;
		json_t *q, *queues = json_object_get(frames[k], "queues");
		if (!frames[k])
			continue;
		json_t *at = json_object_get(frames[k], "at_us");
		if (json_is_number(at) &&
		    json_number_value(at) >
		        json_number_value(json_object_get(all, "at_us")))
			json_object_set(all, "at_us", at);
		add_numbers(json_object_get(all, "broker"),
		    json_object_get(frames[k], "broker"));
		json_object_foreach(queues, name, q)
		{
			json_t *mine = json_object_get(
			    json_object_get(all, "queues"), name);
			if (!mine)
				json_object_set_new(
				    json_object_get(all, "queues"), name,
				    mine = json_object());
			add_numbers(mine, q);
		}
	}
	return all;
}

typedef struct shard_frames {
	top_run *r;
	json_t **frames; /* the latest of each shard */
	size_t n;
} shard_frames;

/* One frame of shard k came: kept, and the sum of all shown. */
static int shard_frame(
    const nqctl *x, void *arg, size_t k, const char *body, size_t len)
{
	shard_frames *f = arg;
	top_run *r = f->r;
	json_t *m = frame_of(body, len);
	if (!m)
		return NQI_CONTINUE;
	json_decref(f->frames[k]);
	f->frames[k] = m;
	r->frames++;
	json_t *all = merge_frames(f->frames, f->n);
	if (!all)
		return nqctl_print_json(NULL);
	int rc = r->json ? print_frame_json(r, all) : print_frame(r, x, all);
	json_decref(all);
	return rc;
}

/* nqctl top with --brokers: a subscriber per shard's events socket. */
static int top_shards(top_run *r, nqctl *x, uint64_t deadline_ms)
{
	nq_sub **subs = NULL;
	shard_frames f = {r, NULL, 0};
	bool timed_out = false;
	int rc = nqctl_shard_subs_open(x, TOPIC, TOPIC_LEN, &subs, &f.n);
	if (rc == NQI_CONTINUE && !(f.frames = calloc(f.n, sizeof *f.frames)))
		rc = nqctl_report(
		    x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
	if (rc == NQI_CONTINUE)
		rc = nqctl_shard_subs_loop(
		    x, subs, f.n, deadline_ms, shard_frame, &f, &timed_out);
	if (rc == NQI_EXIT_OK && timed_out && !r->frames)
		rc = nqctl_report(x, NQ_ETIMEDOUT, NQI_EXIT_UNREACHABLE, NULL,
		    "top: no metrics arrived from the shards in time");
	nqctl_shard_subs_close(subs, f.n);
	for (size_t k = 0; f.frames && k < f.n; k++)
		json_decref(f.frames[k]);
	free(f.frames);
	return rc;
}

int nqctl_top(nqctl *x, int argc, char **argv, int start)
{
	top_run r = {0};
	uint64_t duration_ms = 0;
	const nqi_opt opts[] = {
	    {"queue", NQI_OPT_STR, &r.queue, "only this queue", false},
	    {"duration", NQI_OPT_DURATION, &duration_ms,
	        "exit 0 after this long (3 when no metrics came)", false},
	    NQCTL_SUB_OPTS(x),
	};
	nq_sub *s;
	int rc = nqctl_sub_args(
	    x, opts, NQCTL_LEN(opts), argc, argv, start, &r.queue);
	if (rc != NQI_CONTINUE)
		return rc;
	r.json = x->conf.json;
	top_columns(&r);
	r.tty = !r.json && isatty(STDOUT_FILENO);
	uint64_t deadline_ms = duration_ms ? nqi_mono_ms() + duration_ms : 0;
	if (x->conf.conn.brokers && *x->conf.conn.brokers)
		return top_shards(&r, x, deadline_ms);
	if ((rc = nqctl_sub_open(x, TOPIC, TOPIC_LEN, &s)) != NQI_CONTINUE)
		return rc;
	if (r.tty) {
		printf("\033[H\033[Jwaiting for the metrics of %s ...\n",
		    nqctl_sub_url(x));
		fflush(stdout);
	}
	rc = top_loop(&r, x, s, deadline_ms);
	/* s stays open until nqctl exits: see nqctl_sub_open. */
	return rc;
}
