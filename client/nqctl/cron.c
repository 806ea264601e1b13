/*
 * nqctl cron: the schedules of the broker's queues file (admin).
 *
 *   nqctl cron list           name, expression, zone, last and next tick,
 *                             the last job and its state (--json: one
 *                             object per schedule)
 *   nqctl cron trigger NAME   enqueues the schedule's job now, once
 */
#include <stdio.h>
#include <string.h>

#include "nqctl.h"

static json_t *row_json(const nq_cron_row *r)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s?, s:s?}",
	    "name", r->name, "cron", r->cron, "zone", r->zone, "queue",
	    r->queue, "type", r->type, "missed", r->missed, "last_tick",
	    nqctl_time_json(r->last_tick_us), "next_tick",
	    nqctl_time_json(r->next_tick_us), "last_job_id",
	    *r->last_job_id ? r->last_job_id : NULL, "last_job_state",
	    r->last_job_state ? nq_state_name(r->last_job_state) : NULL);
}

static void row_print(const nq_cron_row *r)
{
	char last[40] = "-", next[40] = "-";
	if (r->last_tick_us)
		nqctl_format_time(r->last_tick_us, last, sizeof last);
	if (r->next_tick_us)
		nqctl_format_time(r->next_tick_us, next, sizeof next);
	printf("%-20s %-18s %-18s %-26s %-26s %-17s %s\n", r->name, r->cron,
	    r->zone, last, next, *r->last_job_id ? r->last_job_id : "-",
	    r->last_job_state ? nq_state_name(r->last_job_state) : "-");
}

static int list(nqctl *x)
{
	nq_cron_list *l = NULL;
	nq_cron_row r;
	int rv = nq_cron_list_get(x->client, &l);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "cron list");
	json_t *all = x->conf.json ? json_array() : NULL;
	if (!x->conf.json)
		printf("%-20s %-18s %-18s %-26s %-26s %-17s %s\n", "NAME",
		    "CRON", "ZONE", "LAST TICK", "NEXT TICK", "LAST JOB",
		    "STATE");
	for (size_t i = 0; i < nq_cron_list_count(l); i++) {
		nq_cron_list_row(l, i, &r);
		if (all)
			json_array_append_new(all, row_json(&r));
		else
			row_print(&r);
	}
	nq_cron_list_free(l);
	return all ? nqctl_print_json(all) : NQI_EXIT_OK;
}

static int trigger(nqctl *x, const char *name)
{
	char id[NQ_ID_MAX];
	int rv = nq_cron_trigger(x->client, name, id);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "cron trigger %s", name);
	if (x->conf.json)
		return nqctl_print_json(json_pack("{s:s}", "id", id));
	printf("%s\n", id);
	return NQI_EXIT_OK;
}

int nqctl_cron(nqctl *x, int argc, char **argv, int start)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	int rc =
	    nqctl_args(x, opts, sizeof opts / sizeof *opts, argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	const char *sub = x->args[0];
	bool is_list = strcmp(sub, "list") == 0,
	     is_trigger = strcmp(sub, "trigger") == 0;
	if (!is_list && !is_trigger)
		return nqctl_usage_error(
		    x, "cron: unknown subcommand '%s' (list, trigger)", sub);
	if ((is_list && x->nargs != 1) || (is_trigger && x->nargs != 2))
		return nqctl_usage_error(
		    x, is_list ? "cron list takes no arguments"
		               : "cron trigger takes one NAME");
	if ((rc = nqctl_connect(x)) != NQI_CONTINUE)
		return rc;
	return is_list ? list(x) : trigger(x, x->args[1]);
}
