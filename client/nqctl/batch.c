/*
 * nqctl batch: groups of jobs with callbacks enqueued exactly once.
 *
 *   nqctl batch create [--on-success Q:T] [--on-complete Q:T]
 *                      [--callback-payload JSON] [--seal] [--queue Q]
 *                                   prints the new batch's id; with
 *                                   --brokers it lives on the shard of
 *                                   its callbacks' queue, or of --queue
 *   nqctl batch add ID QUEUE TYPE [--payload JSON] [--count N]
 *                                   enqueues N jobs (1) into the batch
 *   nqctl batch seal ID             no more jobs; it completes once all ended
 *   nqctl batch get ID              counts per state, callbacks, their jobs
 *   nqctl batch list [--after ID] [--limit N]
 *   nqctl batch cancel ID           seals it, cancels its jobs not ended
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/json.h"

#define ADD_MAX 10000 /* jobs of one request, as the broker takes */

typedef struct batch_flags {
	const char *on_success, *on_complete, *payload, *after, *queue;
	bool seal;
	uint64_t count, limit;
} batch_flags;

static json_t *callback_json(const nq_batch_callback *cb)
{
	if (!cb->queue[0])
		return json_null();
	return json_pack("{s:s, s:s, s:s?}", "queue", cb->queue, "type",
	    cb->type, "job_id", cb->job_id[0] ? cb->job_id : NULL);
}

static json_t *batch_json(const nq_batch_info *b)
{
	return json_pack("{s:s, s:b, s:b, s:o, s:o, s:I, s:I, s:I, s:I, s:I, "
	                 "s:I, s:{s:I, s:I, s:I, s:I}, s:o, s:o}",
	    "id", b->id, "sealed", b->sealed, "canceled_by_request",
	    b->cancel_requested, "created", nqctl_time_json(b->created_us),
	    "completed", nqctl_time_json(b->completed_us), "total",
	    (json_int_t)b->total, "pending", (json_int_t)b->pending,
	    "succeeded", (json_int_t)b->succeeded, "dead", (json_int_t)b->dead,
	    "canceled", (json_int_t)b->canceled, "expired",
	    (json_int_t)b->expired, "pending_by_state", "waiting",
	    (json_int_t)b->waiting, "scheduled", (json_int_t)b->scheduled,
	    "ready", (json_int_t)b->ready, "leased", (json_int_t)b->leased,
	    "on_success", callback_json(&b->on_success), "on_complete",
	    callback_json(&b->on_complete));
}

static void callback_print(const char *name, const nq_batch_callback *cb)
{
	if (!cb->queue[0])
		printf("%s: none\n", name);
	else
		printf("%s: %s/%s job %s\n", name, cb->queue, cb->type,
		    cb->job_id[0] ? cb->job_id : "(not yet)");
}

static int show(const nqctl *x, const nq_batch_info *b)
{
	char when[40] = "-";
	if (x->conf.json)
		return nqctl_print_json(batch_json(b));
	if (b->completed_us)
		nqctl_format_time(b->completed_us, when, sizeof when);
	printf("id: %s\nsealed: %s%s\ncompleted: %s\n", b->id,
	    b->sealed ? "yes" : "no", b->cancel_requested ? " (canceled)" : "",
	    when);
	printf("jobs: %llu total, %llu pending, %llu succeeded, %llu dead, "
	       "%llu canceled, %llu expired\n",
	    (unsigned long long)b->total, (unsigned long long)b->pending,
	    (unsigned long long)b->succeeded, (unsigned long long)b->dead,
	    (unsigned long long)b->canceled, (unsigned long long)b->expired);
	if (b->pending && b->waiting + b->scheduled + b->ready + b->leased)
		printf("pending: %llu waiting, %llu scheduled, %llu ready, "
		       "%llu leased\n",
		    (unsigned long long)b->waiting,
		    (unsigned long long)b->scheduled,
		    (unsigned long long)b->ready,
		    (unsigned long long)b->leased);
	callback_print("on_success", &b->on_success);
	callback_print("on_complete", &b->on_complete);
	return NQI_EXIT_OK;
}

/* "QUEUE:TYPE" into spec (its strings point into text, changed). */
static int callback_spec(
    const nqctl *x, const char *flag, char *text, nq_job_spec *spec)
{
	char *colon = strchr(text, ':');
	if (!colon || colon == text || !colon[1])
		return nqctl_usage_error(
		    x, "--%s takes QUEUE:TYPE, got '%s'", flag, text);
	*colon = '\0';
	spec->queue = text;
	spec->type = colon + 1;
	return NQI_CONTINUE;
}

/* --payload / --callback-payload JSON as msgpack into spec. */
static int payload_of(
    const nqctl *x, const char *json, nq_job_spec *spec, uint8_t **buf)
{
	char err[256];
	if (!json)
		return NQI_CONTINUE;
	int rv =
	    nqi_json_to_msgpack(json, buf, &spec->payload_len, err, sizeof err);
	if (rv == NQ_EINVAL)
		return nqctl_usage_error(x, "payload is not JSON: %s", err);
	if (rv != NQ_OK)
		return nqctl_report(x, rv, NQI_EXIT_FAILED, NULL, "payload: %s",
		    nq_strerror(rv));
	spec->payload = *buf;
	spec->content_type = "application/msgpack";
	return NQI_CONTINUE;
}

static int create(nqctl *x, const batch_flags *f)
{
	nq_job_spec ok = {0}, done = {0};
	char *oks = f->on_success ? strdup(f->on_success) : NULL;
	char *dones = f->on_complete ? strdup(f->on_complete) : NULL;
	uint8_t *p1 = NULL, *p2 = NULL;
	char id[NQ_ID_MAX];
	int rc = NQI_CONTINUE;
	if (oks &&
	    (rc = callback_spec(x, "on-success", oks, &ok)) == NQI_CONTINUE)
		rc = payload_of(x, f->payload, &ok, &p1);
	if (rc == NQI_CONTINUE && dones &&
	    (rc = callback_spec(x, "on-complete", dones, &done)) ==
	        NQI_CONTINUE)
		rc = payload_of(x, f->payload, &done, &p2);
	if (rc == NQI_CONTINUE) {
		int rv = nq_batch_create_in(x->client, f->queue,
		    oks ? &ok : NULL, dones ? &done : NULL, f->seal, id);
		if (rv != NQ_OK)
			rc = nqctl_fail(x, rv, "batch create");
		else if (x->conf.json)
			rc = nqctl_print_json(json_pack("{s:s}", "id", id));
		else
			rc = (printf("%s\n", id), NQI_EXIT_OK);
	}
	free(oks);
	free(dones);
	free(p1);
	free(p2);
	return rc;
}

static int add(nqctl *x, const batch_flags *f)
{
	size_t n = f->count ? (size_t)f->count : 1;
	if (n > ADD_MAX)
		return nqctl_usage_error(
		    x, "--count is at most %d (one request)", ADD_MAX);
	nq_job_spec spec = {
	    .queue = x->args[2], .type = x->args[3], .batch_id = x->args[1]};
	uint8_t *buf = NULL;
	int rc = payload_of(x, f->payload, &spec, &buf);
	nq_job_spec *specs = calloc(n, sizeof *specs);
	nq_enqueue_result *res = calloc(n, sizeof *res);
	if (rc == NQI_CONTINUE && (!specs || !res))
		rc = nqctl_report(
		    x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
	for (size_t i = 0; rc == NQI_CONTINUE && i < n; i++)
		specs[i] = spec;
	int rv = rc == NQI_CONTINUE ? nq_enqueue_batch(x->client, specs, n, res)
	                            : NQ_OK;
	if (rc == NQI_CONTINUE && rv != NQ_OK)
		rc = nqctl_fail(x, rv, "batch add %s", spec.batch_id);
	for (size_t i = 0; rc == NQI_CONTINUE && i < n; i++)
		if (res[i].err != NQ_OK)
			rc = nqctl_report(x, res[i].err, NQI_EXIT_FAILED, NULL,
			    "batch add %s: %s", spec.batch_id, res[i].message);
	json_t *ids = rc == NQI_CONTINUE && x->conf.json ? json_array() : NULL;
	for (size_t i = 0; rc == NQI_CONTINUE && i < n; i++)
		if (ids)
			json_array_append_new(ids, json_string(res[i].id));
		else
			printf("%s\n", res[i].id);
	if (rc == NQI_CONTINUE)
		rc = ids ? nqctl_print_json(ids) : NQI_EXIT_OK;
	free(specs);
	free(res);
	free(buf);
	return rc;
}

static int one(nqctl *x, const char *sub, const char *id)
{
	nq_batch_info b;
	uint32_t canceled = 0;
	int rv = strcmp(sub, "seal") == 0 ? nq_batch_seal(x->client, id, &b)
	         : strcmp(sub, "get") == 0
	             ? nq_batch_get(x->client, id, &b)
	             : nq_batch_cancel(x->client, id, &b, &canceled);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "batch %s %s", sub, id);
	if (strcmp(sub, "cancel") == 0 && !x->conf.json)
		printf("canceled: %u jobs\n", canceled);
	return show(x, &b);
}

static int list(nqctl *x, const batch_flags *f)
{
	size_t cap = f->limit ? (size_t)f->limit : 50, n;
	nq_batch_info *v = calloc(cap, sizeof *v);
	char next[NQ_ID_MAX];
	if (!v)
		return nqctl_report(
		    x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
	int rv = nq_batch_list(x->client, f->after, cap, v, &n, next);
	if (rv != NQ_OK) {
		free(v);
		return nqctl_fail(x, rv, "batch list");
	}
	json_t *all = x->conf.json ? json_array() : NULL;
	if (!all)
		printf("%-17s %-6s %8s %8s %9s %6s %8s %7s\n", "ID", "SEALED",
		    "TOTAL", "PENDING", "SUCCEEDED", "DEAD", "CANCELED",
		    "EXPIRED");
	for (size_t i = 0; i < n; i++) {
		const nq_batch_info *b = &v[i];
		if (all)
			json_array_append_new(all, batch_json(b));
		else
			printf("%-17s %-6s %8llu %8llu %9llu %6llu %8llu "
			       "%7llu\n",
			    b->id, b->sealed ? "yes" : "no",
			    (unsigned long long)b->total,
			    (unsigned long long)b->pending,
			    (unsigned long long)b->succeeded,
			    (unsigned long long)b->dead,
			    (unsigned long long)b->canceled,
			    (unsigned long long)b->expired);
	}
	free(v);
	if (next[0] && !all)
		fprintf(stderr, "more: --after %s\n", next);
	return all ? nqctl_print_json(all) : NQI_EXIT_OK;
}

/* How many positional arguments sub takes (with itself); 0: unknown. */
static size_t args_of(const char *sub)
{
	static const struct {
		const char *name;
		size_t n;
	} subs[] = {{"create", 1}, {"add", 4}, {"seal", 2}, {"get", 2},
	    {"list", 1}, {"cancel", 2}};
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
		if (strcmp(sub, subs[i].name) == 0)
			return subs[i].n;
	return 0;
}

int nqctl_batch(nqctl *x, int argc, char **argv, int start)
{
	batch_flags f = {0};
	const nqi_opt opts[] = {
	    {"on-success", NQI_OPT_STR, &f.on_success,
	        "create: QUEUE:TYPE of the job enqueued once every job "
	        "succeeded",
	        false},
	    {"on-complete", NQI_OPT_STR, &f.on_complete,
	        "create: QUEUE:TYPE of the job enqueued once every job ended",
	        false},
	    {"callback-payload", NQI_OPT_STR, &f.payload,
	        "create: the callbacks' payload (JSON, stored as msgpack)",
	        false},
	    {"payload", NQI_OPT_STR, &f.payload,
	        "add: the jobs' payload (JSON, stored as msgpack)", false},
	    {"seal", NQI_OPT_BOOL, &f.seal, "create: sealed at once", false},
	    {"queue", NQI_OPT_STR, &f.queue,
	        "create: with --brokers, the batch lives on this queue's "
	        "shard (its jobs' and callbacks' too)",
	        false},
	    {"count", NQI_OPT_U64, &f.count, "add: how many jobs (1)", false},
	    {"after", NQI_OPT_STR, &f.after, "list: ids after this one", false},
	    {"limit", NQI_OPT_U64, &f.limit, "list: at most this many (50)",
	        false},
	    NQCTL_COMMON_OPTS(x),
	};
	int rc =
	    nqctl_args(x, opts, sizeof opts / sizeof *opts, argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	const char *sub = x->args[0];
	size_t want = args_of(sub);
	if (!want)
		return nqctl_usage_error(x,
		    "batch: unknown subcommand '%s' (create, add, seal, get, "
		    "list, cancel)",
		    sub);
	if (x->nargs != want)
		return nqctl_usage_error(x, "batch %s takes %zu argument%s",
		    sub, want - 1, want == 2 ? "" : "s");
	if ((rc = nqctl_connect(x)) != NQI_CONTINUE)
		return rc;
	if (strcmp(sub, "create") == 0)
		return create(x, &f);
	if (strcmp(sub, "add") == 0)
		return add(x, &f);
	if (strcmp(sub, "list") == 0)
		return list(x, &f);
	return one(x, sub, x->args[1]);
}
