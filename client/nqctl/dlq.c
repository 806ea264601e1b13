/* nqctl dlq: list, show, replay, purge and count the dead jobs nq-dlq
 * keeps. Requests in the nq.v1 envelope go over libnq's nq-dlq endpoint
 * (the client's token, TLS files and timeout); replies are shown as text,
 * or as JSON with --json. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/codec.h"
#include "nqi/json.h"
#include "nqi/util.h"

#define DLQ_DEFAULT_URL "tcp://127.0.0.1:7410"
#define DLQ_TIMEOUT_MS 10000
#define LIMIT_MAX 1000
#define UNSET UINT64_MAX

/* Which subcommands take a flag. */
enum {
	F_LIST = 1,
	F_SHOW = 2,
	F_REPLAY = 4,
	F_PURGE = 8,
	F_STATS = 16,
	F_EVERY = 31,
};

typedef struct dlq_flags {
	const char *url;
	const char *queue, *type, *reason, *since, *before, *rate, *older_than;
	uint64_t limit;
	bool all;
} dlq_flags;

typedef struct dlq_cli dlq_cli;

typedef struct dlq_sub {
	const char *name;
	const char *synopsis;
	const char *summary;
	unsigned mask; /* F_*: its own bit */
	size_t min_args, max_args;
	int (*run)(dlq_cli *c);
} dlq_sub;

struct dlq_cli {
	nqctl *x;
	const dlq_sub *sub;
	dlq_flags f;
	nqctl_cmd cmd;     /* the subcommand as nqctl_args sees it */
	char name[32];     /* "dlq show" */
	const char **args; /* positional arguments: ids */
	size_t nargs;
	const char *url;
	bool connected; /* x->client is open and points at url */
};

static int cmd_list(dlq_cli *c);
static int cmd_show(dlq_cli *c);
static int cmd_replay(dlq_cli *c);
static int cmd_purge(dlq_cli *c);
static int cmd_stats(dlq_cli *c);

static const dlq_sub subs[] = {
    {"list",
        "[--queue Q] [--type T] [--reason R] [--since T] [--limit N] "
        "[--before ID]",
        "Lists dead jobs, newest first, a page at a time.", F_LIST, 0, 0,
        cmd_list},
    {"show", "ID",
        "Shows a dead job: its payload and the error of every "
        "attempt.",
        F_SHOW, 1, 1, cmd_show},
    {"replay", "ID... | --all [--queue Q] [--rate N/s]",
        "Enqueues dead "
        "jobs again with fresh attempts; each leaves the DLQ once the "
        "broker took it.",
        F_REPLAY, 0, SIZE_MAX, cmd_replay},
    {"purge", "ID... | --all [--queue Q] [--older-than D]",
        "Deletes dead "
        "jobs for good.",
        F_PURGE, 0, SIZE_MAX, cmd_purge},
    {"stats", "", "Counts dead jobs per queue and reason.", F_STATS, 0, 0,
        cmd_stats},
};
#define NSUBS (sizeof subs / sizeof *subs)

/* ---- command line ---- */

typedef struct flag_def {
	unsigned mask;
	nqi_opt opt;
} flag_def;

/* The flags of the subcommand into out; returns how many. */
static size_t sub_opts(dlq_cli *c, unsigned mask, nqi_opt *out)
{
	dlq_flags *f = &c->f;
	const flag_def defs[] = {
	    {F_EVERY, {"dlq", NQI_OPT_STR, &f->url,
	                  "nq-dlq socket (" DLQ_DEFAULT_URL ")", false}},
	    {F_LIST | F_REPLAY | F_PURGE,
	        {"queue", NQI_OPT_STR, &f->queue,
	            "only dead jobs of this queue", false}},
	    {F_LIST, {"type", NQI_OPT_STR, &f->type,
	                 "only dead jobs of this type", false}},
	    {F_LIST,
	        {"reason", NQI_OPT_STR, &f->reason,
	            "only this reason: "
	            "max_attempts, non_retryable, expired, schema_rejected",
	            false}},
	    {F_LIST, {"since", NQI_OPT_STR, &f->since,
	                 "only jobs dead at "
	                 "or after T (RFC 3339, unix seconds, or a duration "
	                 "ago: 2h)",
	                 false}},
	    {F_LIST, {"limit", NQI_OPT_U64, &f->limit,
	                 "entries per page "
	                 "(50, at most 1000)",
	                 false}},
	    {F_LIST, {"before", NQI_OPT_STR, &f->before,
	                 "the next page: "
	                 "entries older than this id",
	                 false}},
	    {F_REPLAY | F_PURGE, {"all", NQI_OPT_BOOL, &f->all,
	                             "every entry (of --queue)", false}},
	    {F_REPLAY, {"rate", NQI_OPT_STR, &f->rate,
	                   "at most N entries "
	                   "per second: 10/s, 100/m, 5",
	                   false}},
	    {F_PURGE, {"older-than", NQI_OPT_STR, &f->older_than,
	                  "with "
	                  "--all: only entries dead longer ago than D",
	                  false}},
	    {F_EVERY,
	        {"json", NQI_OPT_BOOL, &c->x->conf.json, "print JSON", false}},
	    {F_EVERY, {"help", NQI_OPT_BOOL, &c->x->conf.help, "show this help",
	                  false}},
	};
	size_t n = 0;
	for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
		if (defs[i].mask & mask)
			out[n++] = defs[i].opt;
	return n;
}

static int usage_error(const dlq_cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "nqctl: dlq show: <message>" and the usage of the subcommand (of dlq
 * before one is known). */
static int usage_error(const dlq_cli *c, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return nqctl_usage_error(c->x, "%s: %s", c->x->cmd->name, msg);
}

static void print_subs(FILE *f)
{
	fprintf(f,
	    "usage: nqctl [global flags] dlq SUBCOMMAND [arguments] "
	    "[flags]\n%s\n\nsubcommands:\n",
	    NQCTL_DLQ_SUMMARY);
	for (size_t i = 0; i < NSUBS; i++)
		fprintf(f, "  %s%s%s\n      %s\n", subs[i].name,
		    *subs[i].synopsis ? " " : "", subs[i].synopsis,
		    subs[i].summary);
	fprintf(f,
	    "\nnq-dlq's URL: --dlq URL, else NQ_DLQ, else " DLQ_DEFAULT_URL
	    ".\n");
}

/* The subcommand's flags and ids, read the way every command reads its
 * own: the subcommand stands in as the command ("dlq show"). */
static int parse_sub_args(dlq_cli *c, int argc, char **argv, int start)
{
	nqi_opt opts[16];
	size_t n = sub_opts(c, c->sub->mask, opts);
	const dlq_sub *s = c->sub;
	snprintf(c->name, sizeof c->name, "dlq %s", s->name);
	c->cmd = (nqctl_cmd){
	    c->name, s->synopsis, s->summary, s->min_args, s->max_args, NULL};
	c->x->cmd = &c->cmd;
	c->f.limit = UNSET;
	int rc = nqctl_args(c->x, opts, n, argc, argv, start);
	c->args = c->x->args;
	c->nargs = c->x->nargs;
	return rc;
}

/* ---- talking to nq-dlq ---- */

static uint64_t base_timeout_ms(const dlq_cli *c)
{
	return c->x->conf.conn.timeout_ms ? c->x->conf.conn.timeout_ms
	                                  : DLQ_TIMEOUT_MS;
}

/* Opens the client (token, TLS files) and points it at nq-dlq, once. */
static int connect_dlq(dlq_cli *c)
{
	if (c->connected)
		return NQI_CONTINUE;
	int rc = nqctl_connect(c->x);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_client_set_dlq_url(c->x->client, c->url);
	if (rv != NQ_OK)
		return nqctl_report(c->x, rv,
		    rv == NQ_EINVAL ? NQI_EXIT_USAGE : NQI_EXIT_FAILED, NULL,
		    "cannot use nq-dlq at %s: %s%s%s", c->url, nq_strerror(rv),
		    *nq_client_last_error(c->x->client) ? ": " : "",
		    nq_client_last_error(c->x->client));
	c->connected = true;
	return NQI_CONTINUE;
}

/* "nqctl: dlq show: not found: no DLQ entry has id ..." */
static int fail(const dlq_cli *c, int err, const char *msg)
{
	return nqctl_report(c->x, err, NQI_EXIT_FAILED, NULL, "dlq %s: %s%s%s",
	    c->sub->name, nq_strerror(err), msg && *msg ? ": " : "",
	    msg ? msg : "");
}

static int oom(const dlq_cli *c)
{
	return nqctl_report(
	    c->x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL, "out of memory");
}

/* Sends req; on NQ_OK or a refusing status, *out is the decoded reply. A
 * transport failure leaves *out NULL. */
static int exchange(
    dlq_cli *c, Nq__V1__Request *req, uint64_t timeout_ms, Nq__V1__Reply **out)
{
	size_t len = nq__v1__request__get_packed_size(req), n = 0;
	uint8_t *buf = malloc(len ? len : 1);
	void *reply = NULL;
	*out = NULL;
	if (!buf)
		return NQ_ENOMEM;
	nq__v1__request__pack(req, buf);
	int rv = nq_dlq_request(c->x->client, buf, len, timeout_ms, &reply, &n);
	free(buf);
	if (reply && !(*out = nqi_reply_unpack(reply, n)))
		rv = NQ_EPROTO;
	free(reply);
	return rv;
}

/*
 * One request and its reply. Returns NQI_CONTINUE with *out holding a
 * reply with body `want` (and an OK status unless keep_failed), or the
 * exit status after saying what went wrong: 3 when nq-dlq did not answer
 * in time, 1 when it answered with an error.
 */
static int call(dlq_cli *c, Nq__V1__Request *req, uint64_t timeout_ms,
    Nq__V1__Reply__BodyCase want, bool keep_failed, Nq__V1__Reply **out)
{
	Nq__V1__Reply *r;
	int rc = connect_dlq(c);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = exchange(c, req, timeout_ms, &r);
	if (!r)
		return nqctl_fail(c->x, rv, "dlq %s", c->sub->name);
	if (rv != NQ_OK && !(keep_failed && r->body_case == want)) {
		rc = fail(c, rv, r->status ? r->status->message : NULL);
		nq__v1__reply__free_unpacked(r, NULL);
		return rc;
	}
	if (r->body_case != want) {
		nq__v1__reply__free_unpacked(r, NULL);
		return fail(c, NQ_EPROTO,
		    "nq-dlq answered with another kind "
		    "of reply");
	}
	*out = r;
	return NQI_CONTINUE;
}

/* ---- JSON of entries ---- */

static json_t *str_or_null(const char *s)
{
	return s && *s ? nqi_json_string_lossy(s, strlen(s)) : json_null();
}

static json_t *error_json(const Nq__V1__AttemptError *e)
{
	json_t *o = json_object();
	int bad = !o;
	bad |= json_object_set_new(o, "attempt", json_integer(e->attempt));
	bad |= json_object_set_new(o, "at", nqctl_time_json(e->at_us));
	bad |= json_object_set_new(o, "message", str_or_null(e->message));
	bad |= json_object_set_new(o, "retryable", json_boolean(e->retryable));
	bad |= json_object_set_new(o, "worker_id", str_or_null(e->worker_id));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *errors_json(const Nq__V1__Job *j)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < j->n_errors; i++) {
		if (json_array_append_new(a, error_json(j->errors[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* A msgpack payload as the JSON it stands for, text as text, anything
 * else in base64 under payload_base64. */
static int add_payload(json_t *o, const Nq__V1__JobSpec *s)
{
	const uint8_t *p = s->payload.data;
	size_t len = s->payload.len;
	if (len == 0)
		return json_object_set_new(o, "payload", json_null());
	if (nqi_content_type_is_msgpack(s->content_type)) {
		json_t *v = nqi_msgpack_to_jansson(p, len);
		if (v)
			return json_object_set_new(o, "payload", v);
	}
	if (nqi_text_printable(p, len))
		return json_object_set_new(
		    o, "payload", json_stringn((const char *)p, len));
	char *b64 = nqi_base64_encode(p, len);
	int rv = json_object_set_new(
	    o, "payload_base64", b64 ? json_string(b64) : NULL);
	free(b64);
	return rv;
}

static int add_identity(json_t *o, const Nq__V1__DeadJob *e)
{
	const Nq__V1__Job *j = e->job;
	const Nq__V1__JobSpec *s = j->spec;
	int bad = 0;
	bad |= json_object_set_new(o, "id", str_or_null(j->id));
	bad |= json_object_set_new(o, "queue", str_or_null(s->queue));
	bad |= json_object_set_new(o, "type", str_or_null(s->type));
	bad |= json_object_set_new(o, "reason", str_or_null(e->reason));
	bad |=
	    json_object_set_new(o, "dead_at", nqctl_time_json(e->dead_at_us));
	bad |= json_object_set_new(
	    o, "stored_at", nqctl_time_json(e->stored_at_us));
	bad |= json_object_set_new(o, "attempt", json_integer(j->attempt));
	bad |= json_object_set_new(
	    o, "max_attempts", json_integer(j->max_attempts));
	bad |= json_object_set_new(o, "replays", json_integer(e->replays));
	bad |= json_object_set_new(o, "replay_of", str_or_null(s->replay_of));
	return bad;
}

static int add_details(json_t *o, const Nq__V1__DeadJob *e)
{
	const Nq__V1__Job *j = e->job;
	const Nq__V1__JobSpec *s = j->spec;
	int bad = 0;
	bad |= json_object_set_new(
	    o, "created_at", nqctl_time_json(j->created_us));
	bad |= json_object_set_new(o, "priority", json_integer(s->priority));
	bad |= json_object_set_new(
	    o, "schema_version", json_integer(s->schema_version));
	bad |= json_object_set_new(
	    o, "idempotency_key", str_or_null(s->idempotency_key));
	bad |= json_object_set_new(
	    o, "ordering_key", str_or_null(s->ordering_key));
	bad |=
	    json_object_set_new(o, "traceparent", str_or_null(s->traceparent));
	bad |= json_object_set_new(
	    o, "content_type", str_or_null(s->content_type));
	bad |= add_payload(o, s);
	bad |= json_object_set_new(o, "errors", errors_json(j));
	return bad;
}

/* An entry as JSON (new reference; NULL when memory ran out). A listed
 * entry carries its last error only; a shown one everything. */
static json_t *entry_json(const Nq__V1__DeadJob *e, bool full)
{
	json_t *o = json_object();
	const Nq__V1__Job *j = e->job;
	if (!o || !j || !j->spec) {
		json_decref(o);
		return NULL;
	}
	int bad = add_identity(o, e);
	if (full)
		bad |= add_details(o, e);
	else
		bad |= json_object_set_new(o, "last_error",
		    j->n_errors ? error_json(j->errors[j->n_errors - 1])
		                : json_null());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- list ---- */

static int since_us(const dlq_cli *c, uint64_t *out)
{
	const char *s = c->f.since;
	size_t n = strlen(s);
	uint64_t ms, now = nqi_now_us();
	/* "2h" means two hours ago; times end in a digit or a zone. */
	if (n && s[n - 1] >= 'a' && s[n - 1] <= 'z' &&
	    nqi_parse_duration_ms(s, &ms) == NQ_OK) {
		*out = ms * 1000 < now ? now - ms * 1000 : 0;
		return NQ_OK;
	}
	return nqctl_parse_time(s, out);
}

static int list_request(dlq_cli *c, Nq__V1__DlqListRequest *r)
{
	const dlq_flags *f = &c->f;
	uint64_t id;
	if (f->limit != UNSET && (f->limit == 0 || f->limit > LIMIT_MAX))
		return usage_error(
		    c, "--limit must be from 1 to %d", LIMIT_MAX);
	if (f->since && since_us(c, &r->since_us) != NQ_OK)
		return usage_error(c,
		    "--since: cannot read '%s' as an RFC 3339 "
		    "time, unix seconds, or a duration ago (2h)",
		    f->since);
	if (f->before && nqi_id_parse(f->before, &id) != NQ_OK)
		return usage_error(c,
		    "--before: '%s' is not an id (16 hex "
		    "digits)",
		    f->before);
	const char *names[] = {f->queue, f->type, f->reason};
	const char *flags[] = {"--queue", "--type", "--reason"};
	for (int i = 0; i < 3; i++)
		if (names[i] && !nqi_name_valid(names[i]))
			return usage_error(c,
			    "%s: '%s' is not a name of 1 to "
			    "128 characters [A-Za-z0-9._-]",
			    flags[i], names[i]);
	r->queue = (char *)(f->queue ? f->queue : "");
	r->type = (char *)(f->type ? f->type : "");
	r->reason = (char *)(f->reason ? f->reason : "");
	r->before_id = (char *)(f->before ? f->before : "");
	r->limit = f->limit == UNSET ? 0 : (uint32_t)f->limit;
	return NQI_CONTINUE;
}

static void print_cell(const char *s, int width)
{
	printf("%-*s  ", width, s);
}

/* The command that shows the next page: the same filters, --before. */
static void print_next(const dlq_cli *c, const char *next)
{
	const dlq_flags *f = &c->f;
	printf("next page: nqctl dlq list");
	if (f->queue)
		printf(" --queue %s", f->queue);
	if (f->type)
		printf(" --type %s", f->type);
	if (f->reason)
		printf(" --reason %s", f->reason);
	if (f->since)
		printf(" --since %s", f->since);
	if (f->limit != UNSET)
		printf(" --limit %llu", (unsigned long long)f->limit);
	printf(" --before %s\n", next);
}

static void list_widths(const Nq__V1__DlqListReply *r, int w[3])
{
	w[0] = 5; /* QUEUE */
	w[1] = 4; /* TYPE */
	w[2] = 6; /* REASON */
	for (size_t i = 0; i < r->n_jobs; i++) {
		const Nq__V1__DeadJob *e = r->jobs[i];
		int q = (int)strlen(e->job->spec->queue);
		int t = (int)strlen(e->job->spec->type);
		int s = (int)strlen(e->reason);
		w[0] = q > w[0] ? q : w[0];
		w[1] = t > w[1] ? t : w[1];
		w[2] = s > w[2] ? s : w[2];
	}
}

static void print_list(const dlq_cli *c, const Nq__V1__DlqListReply *r)
{
	int w[3];
	char at[40], tries[24];
	list_widths(r, w);
	if (r->n_jobs)
		printf("%-16s  %-24s  %-*s  %-*s  %-*s  %-8s  %s\n", "ID",
		    "DEAD AT", w[0], "QUEUE", w[1], "TYPE", w[2], "REASON",
		    "ATTEMPTS", "LAST ERROR");
	else
		printf("no dead jobs%s\n", c->f.before ? " on this page" : "");
	for (size_t i = 0; i < r->n_jobs; i++) {
		const Nq__V1__DeadJob *e = r->jobs[i];
		const Nq__V1__Job *j = e->job;
		nqctl_format_time(e->dead_at_us, at, sizeof at);
		snprintf(
		    tries, sizeof tries, "%u/%u", j->attempt, j->max_attempts);
		print_cell(j->id, 16);
		print_cell(at, 24);
		print_cell(j->spec->queue, w[0]);
		print_cell(j->spec->type, w[1]);
		print_cell(e->reason, w[2]);
		print_cell(tries, 8);
		/* one line per entry: the message up to its first newline */
		const char *m =
		    j->n_errors ? j->errors[j->n_errors - 1]->message : "";
		printf("%.*s\n", (int)strcspn(m, "\r\n"), m);
	}
	if (r->next_before_id[0])
		print_next(c, r->next_before_id);
}

static bool entries_valid(const Nq__V1__DlqListReply *r)
{
	for (size_t i = 0; i < r->n_jobs; i++)
		if (!r->jobs[i]->job || !r->jobs[i]->job->spec)
			return false;
	return true;
}

static int list_json(const dlq_cli *c, const Nq__V1__DlqListReply *r)
{
	json_t *o = json_object(), *a = json_array();
	int bad = !o || !a;
	for (size_t i = 0; !bad && i < r->n_jobs; i++)
		bad |= json_array_append_new(a, entry_json(r->jobs[i], false));
	bad |= json_object_set_new(o, "entries", a);
	bad |= json_object_set_new(
	    o, "next_before_id", str_or_null(r->next_before_id));
	if (bad) {
		json_decref(o);
		return oom(c);
	}
	return nqctl_print_json(o);
}

static int cmd_list(dlq_cli *c)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqListRequest body = NQ__V1__DLQ_LIST_REQUEST__INIT;
	Nq__V1__Reply *r;
	int rc = list_request(c, &body);
	if (rc != NQI_CONTINUE)
		return rc;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_LIST;
	req.dlq_list = &body;
	rc = call(c, &req, base_timeout_ms(c), NQ__V1__REPLY__BODY_DLQ_LIST,
	    false, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	if (!entries_valid(r->dlq_list))
		rc = fail(c, NQ_EPROTO, "an entry without its job");
	else if (c->x->conf.json)
		rc = list_json(c, r->dlq_list);
	else {
		print_list(c, r->dlq_list);
		rc = NQI_EXIT_OK;
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return rc;
}

/* ---- show ---- */

static int print_entry(const dlq_cli *c, const Nq__V1__DeadJob *e)
{
	const char *key;
	json_t *v, *o = entry_json(e, true);
	if (!o)
		return e->job && e->job->spec
		           ? oom(c)
		           : fail(c, NQ_EPROTO, "the entry has no job");
	if (c->x->conf.json)
		return nqctl_print_json(o);
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "errors") == 0)
			nqctl_print_errors(v, true);
		else if (!json_is_null(v))
			nqctl_print_field(key, v);
	}
	json_decref(o);
	return NQI_EXIT_OK;
}

static int cmd_show(dlq_cli *c)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqShowRequest body = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	Nq__V1__Reply *r;
	uint64_t id;
	if (nqi_id_parse(c->args[0], &id) != NQ_OK)
		return usage_error(
		    c, "'%s' is not an id (16 hex digits)", c->args[0]);
	body.id = (char *)c->args[0];
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
	req.dlq_show = &body;
	int rc = call(c, &req, base_timeout_ms(c), NQ__V1__REPLY__BODY_DLQ_SHOW,
	    false, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	rc = r->dlq_show->job
	         ? print_entry(c, r->dlq_show->job)
	         : fail(c, NQ_EPROTO, "the reply carries no entry");
	nq__v1__reply__free_unpacked(r, NULL);
	return rc;
}

/* ---- stats ---- */

static int stats_json(const dlq_cli *c, const Nq__V1__DlqStatsReply *s)
{
	json_t *o = json_object(), *a = json_array();
	int bad = !o || !a;
	for (size_t i = 0; !bad && i < s->n_entries; i++) {
		const Nq__V1__DlqStatsEntry *e = s->entries[i];
		bad |= json_array_append_new(
		    a, json_pack("{s:s, s:s, s:I}", "queue", e->queue, "reason",
		           e->reason, "count", (json_int_t)e->count));
	}
	bad |= json_object_set_new(o, "entries", a);
	bad |=
	    json_object_set_new(o, "total", json_integer((json_int_t)s->total));
	if (bad) {
		json_decref(o);
		return oom(c);
	}
	return nqctl_print_json(o);
}

static void print_stats(const Nq__V1__DlqStatsReply *s)
{
	int wq = 5, wr = 6;
	for (size_t i = 0; i < s->n_entries; i++) {
		int q = (int)strlen(s->entries[i]->queue);
		int r = (int)strlen(s->entries[i]->reason);
		wq = q > wq ? q : wq;
		wr = r > wr ? r : wr;
	}
	printf("%-*s  %-*s  %s\n", wq, "QUEUE", wr, "REASON", "COUNT");
	for (size_t i = 0; i < s->n_entries; i++)
		printf("%-*s  %-*s  %llu\n", wq, s->entries[i]->queue, wr,
		    s->entries[i]->reason,
		    (unsigned long long)s->entries[i]->count);
	printf("total: %llu\n", (unsigned long long)s->total);
}

/* The counts, for the command and for a replay's time budget. */
static int fetch_stats(dlq_cli *c, Nq__V1__Reply **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest body = NQ__V1__DLQ_STATS_REQUEST__INIT;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
	req.dlq_stats = &body;
	return call(c, &req, base_timeout_ms(c), NQ__V1__REPLY__BODY_DLQ_STATS,
	    false, out);
}

static int cmd_stats(dlq_cli *c)
{
	Nq__V1__Reply *r;
	int rc = fetch_stats(c, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	if (c->x->conf.json) {
		rc = stats_json(c, r->dlq_stats);
	} else {
		print_stats(r->dlq_stats);
		rc = NQI_EXIT_OK;
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return rc;
}

/* ---- replay ---- */

/* "10/s", "600/m", "3600/h" or a bare number per second. */
static int parse_rate(const char *s, double *per_s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	double unit = strcmp(end, "") == 0 || strcmp(end, "/s") == 0 ? 1
	              : strcmp(end, "/m") == 0                       ? 60
	              : strcmp(end, "/h") == 0                       ? 3600
	                                                             : 0;
	if (errno || end == s || unit == 0 || !isfinite(v) || v <= 0)
		return NQ_EINVAL;
	*per_s = v / unit;
	return NQ_OK;
}

static int ids_or_all(dlq_cli *c)
{
	uint64_t id;
	if (c->nargs && c->f.all)
		return usage_error(c, "name ids or --all, not both");
	if (!c->nargs && !c->f.all)
		return usage_error(c, "name the ids, or --all");
	if (c->f.queue && !c->f.all)
		return usage_error(c, "--queue only narrows --all");
	if (c->f.queue && !nqi_name_valid(c->f.queue))
		return usage_error(c,
		    "--queue: '%s' is not a name of 1 to 128 "
		    "characters [A-Za-z0-9._-]",
		    c->f.queue);
	for (size_t i = 0; i < c->nargs; i++)
		if (nqi_id_parse(c->args[i], &id) != NQ_OK)
			return usage_error(c,
			    "'%s' is not an id (16 hex "
			    "digits)",
			    c->args[i]);
	return NQI_CONTINUE;
}

/* Entries a replay of --all (of --queue) takes on, from the counts. */
static int replay_count(dlq_cli *c, uint64_t *n)
{
	Nq__V1__Reply *r;
	if (!c->f.all) {
		*n = c->nargs;
		return NQI_CONTINUE;
	}
	int rc = fetch_stats(c, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	*n = 0;
	for (size_t i = 0; i < r->dlq_stats->n_entries; i++)
		if (!c->f.queue ||
		    strcmp(c->f.queue, r->dlq_stats->entries[i]->queue) == 0)
			*n += r->dlq_stats->entries[i]->count;
	nq__v1__reply__free_unpacked(r, NULL);
	return NQI_CONTINUE;
}

/* nq-dlq answers after the last entry: give it the paced time, its own
 * wait for the broker (10 s by default) and some to spare. */
static uint64_t replay_timeout_ms(const dlq_cli *c, uint64_t n, double rate)
{
	uint64_t base = base_timeout_ms(c);
	uint64_t work = rate > 0 ? (uint64_t)((double)n * 1000.0 / rate) : n;
	return (base > DLQ_TIMEOUT_MS ? base : DLQ_TIMEOUT_MS) + 20000 + work;
}

static json_t *replay_result_json(
    const dlq_cli *c, size_t i, const Nq__V1__EnqueueResult *res)
{
	bool ok = !res->status || res->status->code == 0;
	const char *entry = c->f.all ? NULL : c->args[i];
	return json_pack("{s:o, s:o, s:b, s:o}", "entry", str_or_null(entry),
	    "id", str_or_null(ok ? res->id : NULL), "duplicate", res->duplicate,
	    "error", ok ? json_null() : str_or_null(res->status->message));
}

static int replay_json(const dlq_cli *c, const Nq__V1__Reply *r)
{
	const Nq__V1__DlqReplayReply *p = r->dlq_replay;
	json_t *o = json_object(), *a = json_array();
	int bad = !o || !a;
	for (size_t i = 0; !bad && i < p->n_results; i++)
		bad |= json_array_append_new(
		    a, replay_result_json(c, i, p->results[i]));
	bad |= json_object_set_new(o, "replayed", json_integer(p->replayed));
	bad |= json_object_set_new(o, "failed", json_integer(p->failed));
	bad |= json_object_set_new(o, "results", a);
	bad |= json_object_set_new(o, "error",
	    r->status && r->status->code ? str_or_null(r->status->message)
	                                 : json_null());
	if (bad) {
		json_decref(o);
		return oom(c);
	}
	return nqctl_print_json(o);
}

static void print_replay(const dlq_cli *c, const Nq__V1__DlqReplayReply *p)
{
	for (size_t i = 0; i < p->n_results; i++) {
		const Nq__V1__EnqueueResult *res = p->results[i];
		bool ok = !res->status || res->status->code == 0;
		if (ok && !c->f.all)
			printf("%s -> %s%s\n", c->args[i], res->id,
			    res->duplicate ? " (duplicate)" : "");
		else if (!c->f.all)
			printf("%s: not replayed: %s\n", c->args[i],
			    res->status->message);
		else
			printf("not replayed: %s\n", res->status->message);
	}
	printf("replayed %u, not replayed %u\n", p->replayed, p->failed);
}

static int send_replay(dlq_cli *c, double rate, uint64_t n)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqReplayRequest body = NQ__V1__DLQ_REPLAY_REQUEST__INIT;
	Nq__V1__Reply *r;
	body.ids = (char **)c->args;
	body.n_ids = c->nargs;
	body.all = c->f.all;
	body.queue = (char *)(c->f.queue ? c->f.queue : "");
	body.rate_per_s = rate;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_REPLAY;
	req.dlq_replay = &body;
	int rc = call(c, &req, replay_timeout_ms(c, n, rate),
	    NQ__V1__REPLY__BODY_DLQ_REPLAY, true, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	const Nq__V1__DlqReplayReply *p = r->dlq_replay;
	bool failed = p->failed || (r->status && r->status->code);
	if (c->x->conf.json) {
		rc = replay_json(c, r);
	} else {
		print_replay(c, p);
		rc = NQI_EXIT_OK;
	}
	if (r->status && r->status->code)
		nqctl_report(c->x, nqi_err_from_code((int)r->status->code),
		    NQI_EXIT_FAILED, NULL, "dlq replay: %s",
		    r->status->message);
	nq__v1__reply__free_unpacked(r, NULL);
	return rc != NQI_EXIT_OK ? rc : failed ? NQI_EXIT_FAILED : NQI_EXIT_OK;
}

static int cmd_replay(dlq_cli *c)
{
	double rate = 0;
	uint64_t n;
	int rc = ids_or_all(c);
	if (rc != NQI_CONTINUE)
		return rc;
	if (c->f.rate && parse_rate(c->f.rate, &rate) != NQ_OK)
		return usage_error(c,
		    "--rate: cannot read '%s' as a positive "
		    "rate (10/s, 600/m, 3600/h, 5)",
		    c->f.rate);
	if ((rc = replay_count(c, &n)) != NQI_CONTINUE)
		return rc;
	return send_replay(c, rate, n);
}

/* ---- purge ---- */

static int cmd_purge(dlq_cli *c)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqPurgeRequest body = NQ__V1__DLQ_PURGE_REQUEST__INIT;
	Nq__V1__Reply *r;
	int rc = ids_or_all(c);
	if (rc != NQI_CONTINUE)
		return rc;
	if (c->f.older_than && !c->f.all)
		return usage_error(c, "--older-than only narrows --all");
	if (c->f.older_than && (nqi_parse_duration_ms(c->f.older_than,
	                            &body.older_than_ms) != NQ_OK ||
	                           body.older_than_ms == 0))
		return usage_error(c,
		    "--older-than: cannot read '%s' as a "
		    "duration longer than 0 (30s, 5m, 2h, 7d)",
		    c->f.older_than);
	body.ids = (char **)c->args;
	body.n_ids = c->nargs;
	body.all = c->f.all;
	body.queue = (char *)(c->f.queue ? c->f.queue : "");
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_PURGE;
	req.dlq_purge = &body;
	/* A purge of many entries takes several commits. */
	rc = call(c, &req, base_timeout_ms(c) + (c->f.all ? 60000 : 0),
	    NQ__V1__REPLY__BODY_DLQ_PURGE, false, &r);
	if (rc != NQI_CONTINUE)
		return rc;
	if (c->x->conf.json) {
		rc = nqctl_print_json(json_pack(
		    "{s:I}", "purged", (json_int_t)r->dlq_purge->purged));
	} else {
		printf("purged %u\n", r->dlq_purge->purged);
		rc = NQI_EXIT_OK;
	}
	nq__v1__reply__free_unpacked(r, NULL);
	return rc;
}

/* ---- entry ---- */

static const dlq_sub *find_sub(const char *name)
{
	for (size_t i = 0; i < NSUBS; i++)
		if (strcmp(subs[i].name, name) == 0)
			return &subs[i];
	return NULL;
}

/* The URL: --dlq after "dlq", else the global --dlq (or NQ_DLQ), else
 * the default. */
static const char *dlq_url(const dlq_cli *c)
{
	const char *global = c->x->conf.dlq_url;
	if (c->f.url && *c->f.url)
		return c->f.url;
	return global && *global ? global : DLQ_DEFAULT_URL;
}

/* Flags between "dlq" and the subcommand (--dlq, --json, --help). */
static int leading_flags(dlq_cli *c, int argc, char **argv, int *start)
{
	nqi_opt opts[16];
	char err[256];
	size_t n = sub_opts(c, F_STATS, opts); /* the flags every one takes */
	int i = *start;
	while (i < argc && strncmp(argv[i], "--", 2) == 0 &&
	       strcmp(argv[i], "--") != 0 && !c->x->conf.help) {
		int end = i + nqi_opts_span(opts, n, argv[i]);
		if (nqi_opts_parse(opts, n, end < argc ? end : argc, argv, i,
		        false, &i, err, sizeof err) != NQ_OK)
			return usage_error(c, "%s", err);
	}
	*start = i;
	return NQI_CONTINUE;
}

static int run(dlq_cli *c, int argc, char **argv, int start)
{
	int rc = leading_flags(c, argc, argv, &start);
	if (rc != NQI_CONTINUE)
		return rc;
	if (c->x->conf.help ||
	    (start < argc && strcmp(argv[start], "-h") == 0)) {
		print_subs(stdout);
		return NQI_EXIT_OK;
	}
	if (start >= argc)
		return usage_error(c, "missing SUBCOMMAND");
	c->sub = find_sub(argv[start]);
	if (!c->sub)
		return usage_error(c, "unknown subcommand '%s'", argv[start]);
	if ((rc = parse_sub_args(c, argc, argv, start + 1)) != NQI_CONTINUE)
		return rc;
	c->url = dlq_url(c);
	return c->sub->run(c);
}

int nqctl_dlq(nqctl *x, int argc, char **argv, int start)
{
	dlq_cli c = {.x = x};
	const nqctl_cmd *dlq = x->cmd;
	int rc = run(&c, argc, argv, start);
	x->cmd = dlq; /* c.cmd, which stood in for it, ends here */
	return rc;
}
