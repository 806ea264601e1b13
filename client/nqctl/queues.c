/* nqctl commands on queues: stats, pause, resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The table of `nqctl stats`: the current counts by state, then the
 * counters since the broker started (ENQUEUED jobs, FAILED attempts). */
static const char *const stat_heads[] = {"QUEUE", "PAUSED", "SCHEDULED",
    "READY", "LEASED", "SUCCEEDED", "DEAD", "CANCELED", "EXPIRED", "ENQUEUED",
    "FAILED", "DLQ-PENDING", "DEAD-RATIO"};
#define NCOLS NQCTL_LEN(stat_heads)
#define CELL_MAX (NQI_NAME_MAX + 8)

typedef char stat_row[NCOLS][CELL_MAX];

static void fill_row(const nq_queue_stats *q, stat_row row)
{
	const uint64_t nums[] = {q->scheduled, q->ready, q->leased,
	    q->succeeded, q->dead, q->canceled, q->expired, q->enqueued_total,
	    q->failed_total};
	snprintf(row[0], CELL_MAX, "%s", q->queue);
	snprintf(row[1], CELL_MAX, "%s", q->paused ? "yes" : "no");
	for (size_t i = 0; i < NQCTL_LEN(nums); i++)
		snprintf(
		    row[2 + i], CELL_MAX, "%llu", (unsigned long long)nums[i]);
	snprintf(row[NCOLS - 2], CELL_MAX, "%llu",
	    (unsigned long long)q->dead_pending);
	snprintf(row[NCOLS - 1], CELL_MAX, "%.4f", nq_dead_letter_ratio(q));
}

/* The queue name and PAUSED left-aligned, numbers right-aligned. */
static void print_row(const char *const cells[NCOLS], const size_t *width)
{
	printf("%-*s  %-*s", (int)width[0], cells[0], (int)width[1], cells[1]);
	for (size_t c = 2; c < NCOLS; c++)
		printf("  %*s", (int)width[c], cells[c]);
	putchar('\n');
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

static int print_table(
    const nq_queue_stats *qs, size_t n, const nq_broker_stats *broker)
{
	size_t width[NCOLS];
	const char *cells[NCOLS];
	stat_row *rows = calloc(n ? n : 1, sizeof *rows);
	if (!rows) {
		fprintf(stderr, "nqctl: out of memory\n");
		return NQCTL_EXIT_FAILED;
	}
	for (size_t c = 0; c < NCOLS; c++)
		width[c] = strlen(stat_heads[c]);
	for (size_t r = 0; r < n; r++) {
		fill_row(&qs[r], rows[r]);
		for (size_t c = 0; c < NCOLS; c++)
			if (strlen(rows[r][c]) > width[c])
				width[c] = strlen(rows[r][c]);
	}
	print_row(stat_heads, width);
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < NCOLS; c++)
			cells[c] = rows[r][c];
		print_row(cells, width);
	}
	free(rows);
	printf("broker: %llu commits, %llu jobs stored, up ",
	    (unsigned long long)broker->commits,
	    (unsigned long long)broker->jobs_stored);
	print_uptime(broker->uptime_ms);
	putchar('\n');
	return NQCTL_EXIT_OK;
}

static json_t *queue_json(const nq_queue_stats *q)
{
	return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	                 "s:I, s:I, s:I, s:o, s:I, s:I, s:f}",
	    "queue", q->queue, "paused", q->paused, "scheduled",
	    (json_int_t)q->scheduled, "ready", (json_int_t)q->ready, "leased",
	    (json_int_t)q->leased, "succeeded", (json_int_t)q->succeeded,
	    "dead", (json_int_t)q->dead, "canceled", (json_int_t)q->canceled,
	    "expired", (json_int_t)q->expired, "enqueued_total",
	    (json_int_t)q->enqueued_total, "succeeded_total",
	    (json_int_t)q->succeeded_total, "failed_total",
	    (json_int_t)q->failed_total, "dead_total",
	    (json_int_t)q->dead_total, "oldest_ready_at",
	    nqctl_time_json(q->oldest_ready_us), "dead_pending",
	    (json_int_t)q->dead_pending, "dlq_handed_total",
	    (json_int_t)q->dlq_handed_total, "dead_letter_ratio",
	    nq_dead_letter_ratio(q));
}

static int print_stats_json(
    const nq_queue_stats *qs, size_t n, const nq_broker_stats *broker)
{
	json_t *queues = json_array();
	for (size_t i = 0; queues && i < n; i++) {
		if (json_array_append_new(queues, queue_json(&qs[i])) != 0) {
			json_decref(queues);
			queues = NULL;
		}
	}
	if (!queues)
		return nqctl_print_json(NULL);
	return nqctl_print_json(json_pack("{s:o, s:{s:I, s:I, s:I}}", "queues",
	    queues, "broker", "commits", (json_int_t)broker->commits,
	    "uptime_ms", (json_int_t)broker->uptime_ms, "jobs_stored",
	    (json_int_t)broker->jobs_stored));
}

int nqctl_stats(nqctl *x, int argc, char **argv, int start)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	nq_queue_stats *qs = NULL;
	nq_broker_stats broker = {0};
	size_t n = 0;
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	const char *queue = x->nargs ? x->args[0] : NULL;
	if (rc == NQCTL_CONTINUE && queue && !nqi_name_valid(queue))
		rc = nqctl_usage_error(
		    x, "'%s' is not a valid queue name", queue);
	if (rc == NQCTL_CONTINUE)
		rc = nqctl_connect(x);
	if (rc != NQCTL_CONTINUE)
		return rc;
	int rv = nq_stats(x->client, queue, &qs, &n, &broker);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "stats%s%s", queue ? " of queue " : "",
		    queue ? queue : "");
	rc = x->conf.json ? print_stats_json(qs, n, &broker)
	                  : print_table(qs, n, &broker);
	free(qs);
	return rc;
}

static int set_paused(nqctl *x, int argc, char **argv, int start, bool pause)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	const char *queue = x->args[0];
	if (rc == NQCTL_CONTINUE && !nqi_name_valid(queue))
		rc = nqctl_usage_error(
		    x, "'%s' is not a valid queue name", queue);
	if (rc == NQCTL_CONTINUE)
		rc = nqctl_connect(x);
	if (rc != NQCTL_CONTINUE)
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
	return NQCTL_EXIT_OK;
}

int nqctl_pause(nqctl *x, int argc, char **argv, int start)
{
	return set_paused(x, argc, argv, start, true);
}

int nqctl_resume(nqctl *x, int argc, char **argv, int start)
{
	return set_paused(x, argc, argv, start, false);
}
