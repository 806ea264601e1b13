/* nqctl list: the jobs the broker stores, a page at a time, oldest first. */
#include <stdio.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/util.h"

#define LIST_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNSET UINT64_MAX
#define LIMIT_MAX 1000

typedef struct list_flags {
	const char *queue;
	const char *state;
	const char *type;
	const char *after;
	uint64_t limit;
} list_flags;

static int list_opts(const nqctl *x, const list_flags *f, nq_list_opts *o)
{
	uint64_t id;
	if (f->limit != UNSET && (f->limit == 0 || f->limit > LIMIT_MAX))
		return nqctl_usage_error(
		    x, "--limit must be from 1 to %d", LIMIT_MAX);
	if (f->state && !(o->state = nq_state_parse(f->state)))
		return nqctl_usage_error(x,
		    "--state: '%s' is not scheduled, ready, leased, "
		    "succeeded, dead, canceled or expired",
		    f->state);
	if (f->after && nqi_id_parse(f->after, &id) != NQ_OK)
		return nqctl_usage_error(x,
		    "--after: '%s' is not a job id (16 hex digits)", f->after);
	const char *names[] = {f->queue, f->type};
	const char *flags[] = {"--queue", "--type"};
	for (size_t i = 0; i < LIST_LEN(names); i++)
		if (names[i] && !nqi_name_valid(names[i]))
			return nqctl_usage_error(x,
			    "%s: '%s' is not a name of 1 to 128 characters "
			    "[A-Za-z0-9._-]",
			    flags[i], names[i]);
	o->queue = f->queue;
	o->type = f->type;
	o->after_id = f->after;
	o->limit = f->limit == UNSET ? 0 : (uint32_t)f->limit;
	return NQI_CONTINUE;
}

/* The command that shows the next page: the same filters, --after. */
static void print_next(const list_flags *f, const char *next)
{
	printf("next page: nqctl list");
	if (f->queue)
		printf(" --queue %s", f->queue);
	if (f->state)
		printf(" --state %s", f->state);
	if (f->type)
		printf(" --type %s", f->type);
	if (f->limit != UNSET)
		printf(" --limit %llu", (unsigned long long)f->limit);
	printf(" --after %s\n", next);
}

static int width_of(
    const nq_job_list *l, const char *(*field)(const nq_job *), int least)
{
	int w = least;
	for (size_t i = 0; i < nq_job_list_count(l); i++) {
		int n = (int)strlen(field(nq_job_list_at(l, i)));
		w = n > w ? n : w;
	}
	return w;
}

static void print_table(const list_flags *f, const nq_job_list *l)
{
	size_t n = nq_job_list_count(l);
	int wq = width_of(l, nq_job_queue, 5), wt = width_of(l, nq_job_type, 4);
	char at[40], tries[24];
	if (n)
		printf("%-16s  %-9s  %-*s  %-*s  %-8s  %s\n", "ID", "STATE", wq,
		    "QUEUE", wt, "TYPE", "ATTEMPTS", "CREATED AT");
	else
		printf("no jobs%s\n", f->after ? " on this page" : "");
	for (size_t i = 0; i < n; i++) {
		const nq_job *j = nq_job_list_at(l, i);
		nqctl_format_time(nq_job_created_us(j), at, sizeof at);
		snprintf(tries, sizeof tries, "%u/%u", nq_job_attempt(j),
		    nq_job_max_attempts(j));
		printf("%-16s  %-9s  %-*s  %-*s  %-8s  %s\n", nq_job_id(j),
		    nq_state_name(nq_job_state(j)), wq, nq_job_queue(j), wt,
		    nq_job_type(j), tries, at);
	}
	if (nq_job_list_next(l)[0])
		print_next(f, nq_job_list_next(l));
}

/* {"jobs": [job, ...], "next_after_id": "..." or null}. */
static int print_list_json(const nq_job_list *l)
{
	json_t *o = json_object(), *a = json_array();
	const char *next = nq_job_list_next(l);
	int bad = !o || !a;
	for (size_t i = 0; !bad && i < nq_job_list_count(l); i++) {
		json_t *j = nqctl_job_json(nq_job_list_at(l, i));
		bad |= !j || json_array_append_new(a, j);
	}
	bad |= json_object_set_new(o, "jobs", a);
	bad |= json_object_set_new(
	    o, "next_after_id", next[0] ? json_string(next) : json_null());
	if (bad) {
		json_decref(o);
		fprintf(stderr, "nqctl: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	return nqctl_print_json(o);
}

int nqctl_list(nqctl *x, int argc, char **argv, int start)
{
	list_flags f = {.limit = UNSET};
	const nqi_opt opts[] = {
	    {"queue", NQI_OPT_STR, &f.queue, "only jobs of this queue", false},
	    {"state", NQI_OPT_STR, &f.state,
	        "only jobs in this state (scheduled, ready, leased, "
	        "succeeded, dead, canceled, expired)",
	        false},
	    {"type", NQI_OPT_STR, &f.type, "only jobs of this type", false},
	    {"limit", NQI_OPT_U64, &f.limit,
	        "jobs per page (100, at most 1000)", false},
	    {"after", NQI_OPT_STR, &f.after,
	        "the next page: jobs after this id (the line the last page "
	        "ends with)",
	        false},
	    NQCTL_COMMON_OPTS(x),
	};
	nq_list_opts o = {0};
	nq_job_list *l = NULL;
	int rc = nqctl_args(x, opts, LIST_LEN(opts), argc, argv, start);
	if (rc == NQI_CONTINUE)
		rc = list_opts(x, &f, &o);
	if (rc == NQI_CONTINUE)
		rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_list(x->client, &o, &l);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "list jobs");
	rc = NQI_EXIT_OK;
	if (x->conf.json)
		rc = print_list_json(l);
	else
		print_table(&f, l);
	nq_job_list_free(l);
	return rc;
}
