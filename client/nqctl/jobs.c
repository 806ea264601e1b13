/* nqctl commands on single jobs: enqueue, get, wait, cancel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/json.h"
#include "nqi/util.h"

#define NQCTL_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* Number flags left at this value were not given. */
#define UNSET UINT64_MAX
/* A payload file larger than this is refused before it is read whole; the
 * broker's own limit (256 KiB by default) is far below it. */
#define PAYLOAD_FILE_MAX (64u << 20)

typedef struct enqueue_flags {
	const char *payload;
	const char *payload_file;
	const char *content_type;
	const char *priority;
	const char *at;
	const char *idempotency_key;
	const char *unique_key;
	const char *unique_scope;
	const char *ordering_key;
	const char *group_key;
	const char *traceparent;
	const char *deadline;
	uint64_t finish_within_ms;
	uint64_t delay_ms;
	uint64_t max_attempts;
	uint64_t timeout_ms;
	uint64_t schema_version;
	bool wait;
	const char *blob_dir; /* claim check */
	uint64_t offload_above;
	bool offload;
	const char *after;             /* parents, comma-separated */
	const char *batch;             /* the batch it joins */
	const char *on_parent_failure; /* cancel | run */
	char *after_ids[64];           /* --after split (into after) */
} enqueue_flags;

static int check_id(const nqctl *x, const char *id)
{
	uint64_t v;
	if (nqi_id_parse(id, &v) != NQ_OK)
		return nqctl_usage_error(
		    x, "'%s' is not a job id (16 hexadecimal digits)", id);
	return NQI_CONTINUE;
}

static int check_name(const nqctl *x, const char *what, const char *name)
{
	if (!nqi_name_valid(name))
		return nqctl_usage_error(x,
		    "'%s' is not a valid %s name (1 to 128 of A-Z a-z 0-9 . _ "
		    "-)",
		    name, what);
	return NQI_CONTINUE;
}

/* W3C trace context, version 00: "00-<32 hex>-<16 hex>-<2 hex>". */
static bool traceparent_valid(const char *s)
{
	static const char form[] =
	    "xx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-xxxxxxxxxxxxxxxx-xx";
	if (strlen(s) != sizeof form - 1)
		return false;
	for (size_t i = 0; form[i]; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') ||
		           (s[i] >= 'a' && s[i] <= 'f');
		if (form[i] == '-' ? s[i] != '-' : !hex)
			return false;
	}
	return true;
}

static int parse_i32(const char *s, int32_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < INT32_MIN || v > INT32_MAX)
		return NQ_EINVAL;
	*out = (int32_t)v;
	return NQ_OK;
}

/* Doubles a read buffer up to PAYLOAD_FILE_MAX; returns NULL, or why not. */
static const char *grow(uint8_t **buf, size_t *cap)
{
	if (*cap >= PAYLOAD_FILE_MAX)
		return "larger than 64 MiB; pass large data by reference";
	return NQI_GROW(*buf, *cap, *cap + 1, 1 << 16) ? "out of memory" : NULL;
}

/* Reads a whole file ("-": stdin) into a malloc'd buffer. */
static int read_payload_file(
    const nqctl *x, const char *path, uint8_t **out, size_t *len)
{
	bool is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	const char *why = f ? NULL : strerror(errno);
	while (!why) {
		if (n == cap && (why = grow(&buf, &cap)) != NULL)
			break;
		n += fread(buf + n, 1, cap - n, f);
		if (ferror(f))
			why = strerror(errno);
		else if (feof(f))
			break;
	}
	if (f && !is_stdin)
		fclose(f);
	if (why) {
		free(buf);
		return nqctl_report(x, NQ_EINVAL, NQI_EXIT_FAILED, NULL,
		    "--payload-file %s: %s", path, why);
	}
	*out = buf;
	*len = n;
	return NQI_CONTINUE;
}

/* --payload JSON becomes msgpack; --payload-file is taken as it is. */
static int spec_payload(
    const nqctl *x, const enqueue_flags *f, nq_job_spec *spec, uint8_t **buf)
{
	char err[256];
	int rv;
	if (f->payload && f->payload_file)
		return nqctl_usage_error(x, "--payload and --payload-file "
		                            "exclude each other");
	if (f->content_type && (!f->payload_file || !*f->content_type))
		return nqctl_usage_error(x,
		    "--content-type names the type of a --payload-file (a "
		    "--payload is always application/msgpack)");
	if (f->payload_file) {
		spec->content_type = f->content_type
		                         ? f->content_type
		                         : "application/octet-stream";
		return read_payload_file(
		    x, f->payload_file, buf, &spec->payload_len);
	}
	if (!f->payload)
		return NQI_CONTINUE;
	rv = nqi_json_to_msgpack(
	    f->payload, buf, &spec->payload_len, err, sizeof err);
	if (rv == NQ_EINVAL)
		return nqctl_usage_error(x, "--payload is not JSON: %s", err);
	if (rv != NQ_OK)
		return nqctl_report(x, rv, NQI_EXIT_FAILED, NULL,
		    "--payload: %s", nq_strerror(rv));
	spec->content_type = "application/msgpack";
	return NQI_CONTINUE;
}

static int spec_limits(
    const nqctl *x, const enqueue_flags *f, nq_job_spec *spec)
{
	if (f->max_attempts != UNSET &&
	    (f->max_attempts == 0 || f->max_attempts > UINT32_MAX))
		return nqctl_usage_error(
		    x, "--max-attempts must be from 1 to 4294967295");
	if (f->max_attempts != UNSET)
		spec->max_attempts = (uint32_t)f->max_attempts;
	if (f->timeout_ms == 0)
		return nqctl_usage_error(x, "--timeout must be longer than 0");
	if (f->timeout_ms != UNSET)
		spec->timeout_ms = f->timeout_ms;
	if (f->schema_version != UNSET && f->schema_version > UINT32_MAX)
		return nqctl_usage_error(
		    x, "--schema-version must be from 0 to 4294967295");
	if (f->schema_version != UNSET)
		spec->schema_version = (uint32_t)f->schema_version;
	return NQI_CONTINUE;
}

/* --unique-key is --idempotency-key with a scope (--unique-scope). */
static int spec_unique(
    const nqctl *x, const enqueue_flags *f, nq_job_spec *spec)
{
	if (f->idempotency_key && f->unique_key)
		return nqctl_usage_error(x,
		    "--idempotency-key and --unique-key "
		    "name the same key: give one");
	spec->idempotency_key =
	    f->unique_key ? f->unique_key : f->idempotency_key;
	if (!f->unique_scope)
		return NQI_CONTINUE;
	if (!spec->idempotency_key)
		return nqctl_usage_error(
		    x, "--unique-scope needs --unique-key");
	if (nq_unique_scope_parse(f->unique_scope, &spec->unique_scope,
	        &spec->unique_window_ms) != NQ_OK)
		return nqctl_usage_error(x,
		    "--unique-scope: '%s' is not queued, active, "
		    "until_finished or window=D (D a duration: 30s, 5m, 2h)",
		    f->unique_scope);
	return NQI_CONTINUE;
}

/* --deadline: a time, or a duration from now ("30s": times end in a
 * digit or a zone, durations in a unit). */
static int deadline_us(const char *s, uint64_t *out)
{
	size_t n = strlen(s);
	uint64_t ms;
	if (n && s[n - 1] >= 'a' && s[n - 1] <= 'z' &&
	    nqi_parse_duration_ms(s, &ms) == NQ_OK) {
		*out = nqi_us_plus_ms(nqi_now_us(), ms);
		return NQ_OK;
	}
	return nqctl_parse_time(s, out);
}

/* --after ID[,ID...] and --on-parent-failure: the job waits for them. */
static int spec_after(const nqctl *x, enqueue_flags *f, nq_job_spec *spec)
{
	const size_t max = sizeof f->after_ids / sizeof *f->after_ids;
	size_t n = 0;
	if (f->on_parent_failure && strcmp(f->on_parent_failure, "run") &&
	    strcmp(f->on_parent_failure, "cancel"))
		return nqctl_usage_error(
		    x, "--on-parent-failure must be cancel or run");
	spec->run_on_parent_failure =
	    f->on_parent_failure && strcmp(f->on_parent_failure, "run") == 0;
	if (!f->after)
		return NQI_CONTINUE;
	for (char *p = (char *)f->after, *tok; (tok = strsep(&p, ","));) {
		if (n == max || check_id(x, tok) != NQI_CONTINUE)
			return nqctl_usage_error(x,
			    "--after takes up to %zu job ids, comma-separated",
			    max);
		f->after_ids[n++] = tok;
	}
	spec->depends_on = (const char *const *)f->after_ids;
	spec->n_depends_on = n;
	return NQI_CONTINUE;
}

static int spec_schedule(
    const nqctl *x, const enqueue_flags *f, nq_job_spec *spec)
{
	if (f->priority && parse_i32(f->priority, &spec->priority) != NQ_OK)
		return nqctl_usage_error(x,
		    "--priority: cannot read '%s' as a whole number from "
		    "-2147483648 to 2147483647",
		    f->priority);
	if (f->at && f->delay_ms != UNSET)
		return nqctl_usage_error(x, "--delay and --at exclude each "
		                            "other");
	if (f->at && nqctl_parse_time(f->at, &spec->run_at_us) != NQ_OK)
		return nqctl_usage_error(x,
		    "--at: cannot read '%s' as an RFC 3339 time "
		    "(2026-11-27T22:00:00Z) or unix seconds",
		    f->at);
	if (f->delay_ms != UNSET)
		spec->delay_ms = f->delay_ms;
	if (f->deadline && deadline_us(f->deadline, &spec->deadline_us) != 0)
		return nqctl_usage_error(x,
		    "--deadline: cannot read '%s' as an RFC 3339 time, unix "
		    "seconds, or a duration from now (30s)",
		    f->deadline);
	if (f->finish_within_ms == 0)
		return nqctl_usage_error(
		    x, "--finish-within must be longer than 0");
	if (f->finish_within_ms != UNSET)
		spec->finish_within_ms = f->finish_within_ms;
	if (f->traceparent && !traceparent_valid(f->traceparent))
		return nqctl_usage_error(x,
		    "--traceparent: '%s' is not a W3C trace context "
		    "(00-<32 hex>-<16 hex>-<2 hex>)",
		    f->traceparent);
	spec->traceparent = f->traceparent;
	spec->ordering_key = f->ordering_key;
	spec->group_key = f->group_key;
	return NQI_CONTINUE;
}

/* Without --offload-above, --blob-dir offloads what a broker with the
 * default --max-payload would refuse. */
#define OFFLOAD_ABOVE_DEFAULT (256u * 1024)

/* The claim check: payloads over the threshold go to --blob-dir. */
static int spec_offload(nqctl *x, const enqueue_flags *f)
{
	if (f->offload && !f->payload_file)
		return nqctl_usage_error(
		    x, "--offload sends a --payload-file by claim check");
	if ((f->offload || f->offload_above != UNSET) && !f->blob_dir)
		return nqctl_usage_error(x,
		    "--offload and --offload-above need --blob-dir, the "
		    "directory the workers share");
	if (!f->blob_dir)
		return NQI_CONTINUE;
	int rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	uint64_t above = f->offload                  ? 0
	                 : f->offload_above != UNSET ? f->offload_above
	                                             : OFFLOAD_ABOVE_DEFAULT;
	int rv = nq_client_set_offload(x->client, f->blob_dir, above);
	if (rv != NQ_OK)
		return nqctl_usage_error(
		    x, "%s", nq_client_last_error(x->client));
	return NQI_CONTINUE;
}

/* Says on stderr how a job that did not succeed ended; returns 1. */
static int report_end(const nqctl *x, const nq_job *job)
{
	size_t nerr = nq_job_error_count(job);
	uint32_t attempt;
	uint64_t at_us;
	const char *last =
	    nerr ? nq_job_error(job, nerr - 1, &attempt, &at_us) : NULL;
	const char *reason = nq_job_dead_reason(job);
	return nqctl_report(x, NQ_EPRECOND, NQI_EXIT_FAILED, NULL,
	    "job %s ended %s%s%s%s%s%s", nq_job_id(job),
	    nq_state_name(nq_job_state(job)), reason && *reason ? " (" : "",
	    reason && *reason ? reason : "", reason && *reason ? ")" : "",
	    last ? "; last error: " : "", last ? last : "");
}

/*
 * Waits until the job has ended (timeout_ms 0: for as long as it takes) and
 * prints it. Returns 0 when it succeeded, 1 when it ended otherwise or had
 * not ended in time, 3 when the broker did not answer.
 */
static int wait_and_show(nqctl *x, const char *id, uint64_t timeout_ms)
{
	nq_job *job = NULL;
	int rv = nq_wait(x->client, id, timeout_ms, &job);
	bool ended = rv == NQ_OK;
	/* A wait that ran out tells nothing about the job itself: ask. */
	if (rv == NQ_ETIMEDOUT && timeout_ms > 0)
		rv = nq_get(x->client, id, &job);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "wait for job %s", id);
	int rc = nqctl_print_job(x, job);
	if (rc == NQI_EXIT_OK && !ended)
		rc = nqctl_report(x, NQ_ETIMEDOUT, NQI_EXIT_FAILED, NULL,
		    "job %s is still %s after %llums", id,
		    nq_state_name(nq_job_state(job)),
		    (unsigned long long)timeout_ms);
	else if (rc == NQI_EXIT_OK && nq_job_state(job) != NQ_STATE_SUCCEEDED)
		rc = report_end(x, job);
	nq_job_free(job);
	return rc;
}

static int submit(nqctl *x, const nq_job_spec *spec, bool wait)
{
	char id[NQ_ID_MAX];
	bool duplicate = false;
	int rc = nqctl_connect(x);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_enqueue(x->client, spec, id, &duplicate);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "enqueue to queue %s", spec->queue);
	if (duplicate)
		fprintf(stderr,
		    "nqctl: idempotency key '%s' matched job %s, "
		    "which was not enqueued again\n",
		    spec->idempotency_key, id);
	/* The id before the wait, which may be cut short (Ctrl-C); on
	 * stderr, so that stdout stays what it is without --wait. */
	if (wait) {
		fprintf(stderr, "enqueued %s\n", id);
		return wait_and_show(x, id, 0);
	}
	if (!x->conf.json) {
		printf("%s\n", id);
		return NQI_EXIT_OK;
	}
	return nqctl_print_json(
	    json_pack("{s:s, s:b}", "id", id, "duplicate", duplicate));
}

int nqctl_enqueue(nqctl *x, int argc, char **argv, int start)
{
	enqueue_flags f = {.delay_ms = UNSET,
	    .offload_above = UNSET,
	    .finish_within_ms = UNSET,
	    .max_attempts = UNSET,
	    .timeout_ms = UNSET,
	    .schema_version = UNSET};
	const nqi_opt opts[] = {
	    {"payload", NQI_OPT_STR, &f.payload,
	        "JSON value, stored as msgpack (application/msgpack)", false},
	    {"payload-file", NQI_OPT_STR, &f.payload_file,
	        "file holding the payload bytes ('-': stdin)", false},
	    {"content-type", NQI_OPT_STR, &f.content_type,
	        "type of --payload-file (application/octet-stream)", false},
	    {"priority", NQI_OPT_STR, &f.priority,
	        "higher runs first (0; negative is allowed)", false},
	    {"delay", NQI_OPT_DURATION, &f.delay_ms,
	        "run no sooner than this long from now", false},
	    {"at", NQI_OPT_STR, &f.at,
	        "run no sooner than this time (2026-11-27T22:00:00Z or "
	        "unix seconds)",
	        false},
	    {"deadline", NQI_OPT_STR, &f.deadline,
	        "expire unless started by then (a time as for --at, or a "
	        "duration from now)",
	        false},
	    {"finish-within", NQI_OPT_DURATION, &f.finish_within_ms,
	        "the whole job, every attempt, ends this long after enqueue "
	        "or is stopped and dead (reason deadline)",
	        false},
	    {"max-attempts", NQI_OPT_U64, &f.max_attempts,
	        "attempts before the job is dead (the queue's, 10)", false},
	    {"timeout", NQI_OPT_DURATION, &f.timeout_ms,
	        "longest one attempt may run (5m)", false},
	    {"idempotency-key", NQI_OPT_STR, &f.idempotency_key,
	        "a repeat with this key returns the first job (--unique-key "
	        "with the window scope)",
	        false},
	    {"unique-key", NQI_OPT_STR, &f.unique_key,
	        "while --unique-scope holds, a repeat with this key returns "
	        "the job",
	        false},
	    {"unique-scope", NQI_OPT_STR, &f.unique_scope,
	        "queued | active | until_finished | window=D (window, the "
	        "broker's --idempotency-window)",
	        false},
	    {"ordering-key", NQI_OPT_STR, &f.ordering_key,
	        "jobs with the same key never run at the same time", false},
	    {"group-key", NQI_OPT_STR, &f.group_key,
	        "tenant or customer: a fair queue takes turns between keys",
	        false},
	    {"traceparent", NQI_OPT_STR, &f.traceparent,
	        "W3C trace context carried to the worker", false},
	    {"schema-version", NQI_OPT_U64, &f.schema_version,
	        "version of the payload's schema (0)", false},
	    {"blob-dir", NQI_OPT_STR, &f.blob_dir,
	        "claim check: directory shared with the workers for large "
	        "payloads",
	        false},
	    {"offload-above", NQI_OPT_SIZE, &f.offload_above,
	        "claim check: payloads larger than this go to --blob-dir "
	        "(256k)",
	        false},
	    {"offload", NQI_OPT_BOOL, &f.offload,
	        "claim check: the --payload-file goes to --blob-dir whatever "
	        "its size",
	        false},
	    {"wait", NQI_OPT_BOOL, &f.wait,
	        "wait until the job ends and print it; exit 1 unless it "
	        "succeeded",
	        false},
	    {"after", NQI_OPT_STR, &f.after,
	        "ID[,ID...]: wait (state waiting) until each of these jobs "
	        "succeeded",
	        false},
	    {"on-parent-failure", NQI_OPT_STR, &f.on_parent_failure,
	        "cancel (dependency_failed) | run: what a parent's failure "
	        "does to it (cancel)",
	        false},
	    {"batch", NQI_OPT_STR, &f.batch,
	        "ID: the job joins this batch (nqctl batch create)", false},
	    NQCTL_COMMON_OPTS(x),
	};
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	nq_job_spec spec = {
	    .queue = x->args[0], .type = x->args[1], .batch_id = f.batch};
	uint8_t *payload = NULL;
	if ((rc = check_name(x, "queue", spec.queue)) == NQI_CONTINUE &&
	    (rc = check_name(x, "type", spec.type)) == NQI_CONTINUE &&
	    (rc = spec_schedule(x, &f, &spec)) == NQI_CONTINUE &&
	    (rc = spec_unique(x, &f, &spec)) == NQI_CONTINUE &&
	    (rc = spec_after(x, &f, &spec)) == NQI_CONTINUE &&
	    (rc = spec_limits(x, &f, &spec)) == NQI_CONTINUE &&
	    (rc = spec_payload(x, &f, &spec, &payload)) == NQI_CONTINUE &&
	    (rc = spec_offload(x, &f)) == NQI_CONTINUE) {
		spec.payload = payload;
		rc = submit(x, &spec, f.wait);
	}
	free(payload);
	return rc;
}

/* Checks the one ID argument and connects; NQI_CONTINUE to go on. */
static int id_command(
    nqctl *x, const nqi_opt *opts, size_t n, int argc, char **argv, int start)
{
	int rc = nqctl_args(x, opts, n, argc, argv, start);
	if (rc == NQI_CONTINUE)
		rc = check_id(x, x->args[0]);
	if (rc == NQI_CONTINUE)
		rc = nqctl_connect(x);
	return rc;
}

int nqctl_get(nqctl *x, int argc, char **argv, int start)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	nq_job *job = NULL;
	int rc = id_command(x, opts, NQCTL_LEN(opts), argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	int rv = nq_get(x->client, x->args[0], &job);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "get job %s", x->args[0]);
	rc = nqctl_print_job(x, job);
	nq_job_free(job);
	return rc;
}

int nqctl_wait(nqctl *x, int argc, char **argv, int start)
{
	uint64_t timeout_ms = 0;
	const nqi_opt opts[] = {
	    {"timeout", NQI_OPT_DURATION, &timeout_ms,
	        "give up after this long (0: wait for as long as it takes)",
	        false},
	    NQCTL_COMMON_OPTS(x),
	};
	int rc = id_command(x, opts, NQCTL_LEN(opts), argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	return wait_and_show(x, x->args[0], timeout_ms);
}

typedef struct cancel_flags {
	const char *queue, *state, *type;
} cancel_flags;

/* nqctl cancel --queue Q --state S [--type T]: prints how many. */
static int cancel_bulk(nqctl *x, const cancel_flags *f)
{
	nq_state st =
	    f->state ? nq_state_parse(f->state) : NQ_STATE_UNSPECIFIED;
	uint32_t n = 0;
	int rc = NQI_CONTINUE;
	if (!f->queue || !f->state)
		return nqctl_usage_error(
		    x, "cancel takes a job ID, or --queue and --state");
	if (st != NQ_STATE_READY && st != NQ_STATE_SCHEDULED &&
	    st != NQ_STATE_LEASED && st != NQ_STATE_WAITING)
		return nqctl_usage_error(
		    x, "--state must be ready, scheduled, waiting or leased");
	if ((rc = check_name(x, "queue", f->queue)) != NQI_CONTINUE ||
	    (f->type &&
	        (rc = check_name(x, "type", f->type)) != NQI_CONTINUE) ||
	    (rc = nqctl_connect(x)) != NQI_CONTINUE)
		return rc;
	int rv = nq_cancel_bulk(x->client, f->queue, st, f->type, &n);
	if (rv != NQ_OK)
		return nqctl_fail(
		    x, rv, "cancel %s jobs of queue %s", f->state, f->queue);
	if (x->conf.json)
		return nqctl_print_json(json_pack("{s:i}", "canceled", (int)n));
	printf("%u\n", n);
	return NQI_EXIT_OK;
}

int nqctl_cancel(nqctl *x, int argc, char **argv, int start)
{
	cancel_flags f = {0};
	const nqi_opt opts[] = {
	    {"queue", NQI_OPT_STR, &f.queue,
	        "in bulk: every job of this queue (with --state)", false},
	    {"state", NQI_OPT_STR, &f.state,
	        "in bulk: ready, scheduled or leased", false},
	    {"type", NQI_OPT_STR, &f.type, "in bulk: only jobs of this type",
	        false},
	    NQCTL_COMMON_OPTS(x),
	};
	nq_job *job = NULL;
	int rc = nqctl_args(x, opts, NQCTL_LEN(opts), argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	if (x->nargs == 0)
		return cancel_bulk(x, &f);
	if (f.queue || f.state || f.type)
		return nqctl_usage_error(x, "cancel takes a job ID or "
		                            "--queue and --state, not both");
	if ((rc = check_id(x, x->args[0])) != NQI_CONTINUE ||
	    (rc = nqctl_connect(x)) != NQI_CONTINUE)
		return rc;
	int rv = nq_cancel(x->client, x->args[0], &job);
	/* A job that could not be canceled comes back as it is, which says
	 * why (leased, or already ended). */
	rc = NQI_EXIT_OK;
	if (job)
		rc = nqctl_print_job(x, job);
	if (rv != NQ_OK)
		rc = nqctl_fail(x, rv, "cancel job %s", x->args[0]);
	nq_job_free(job);
	return rc;
}
