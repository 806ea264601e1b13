/*
 * How nqctl shows jobs: one JSON object (--json) or "key: value" lines made
 * from the same object, so that both always carry the same facts. Also the
 * time formats nqctl reads and writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nqctl.h"
#include "nqi/json.h"
#include "nqi/util.h"

void nqctl_format_time(uint64_t us, char *buf, size_t len)
{
	time_t secs = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03uZ", (unsigned)(us % 1000000u / 1000u));
}

json_t *nqctl_time_json(uint64_t us)
{
	char buf[40];
	if (us == 0)
		return json_null();
	nqctl_format_time(us, buf, sizeof buf);
	return json_string(buf);
}

static json_t *text_or_null(const char *s)
{
	return s && *s ? nqi_json_string_lossy(s, strlen(s)) : json_null();
}

/* Bytes as text under key when printable, else as base64 under b64_key;
 * nothing at all is null under key. */
static int add_bytes(
    json_t *o, const char *key, const char *b64_key, const void *p, size_t len)
{
	if (!p || len == 0)
		return json_object_set_new(o, key, json_null());
	if (nqi_text_printable(p, len))
		return json_object_set_new(o, key, json_stringn(p, len));
	char *b64 = nqi_base64_encode(p, len);
	int rv = json_object_set_new(o, b64_key, b64 ? json_string(b64) : NULL);
	free(b64);
	return rv;
}

/* A msgpack payload is shown as the JSON it stands for. */
static int add_payload(json_t *o, const nq_job *job)
{
	size_t len = 0;
	const void *p = nq_job_payload(job, &len);
	if (p && len && nqi_content_type_is_msgpack(nq_job_content_type(job))) {
		json_t *v = nqi_msgpack_to_jansson(p, len);
		if (v)
			return json_object_set_new(o, "payload", v);
	}
	return add_bytes(o, "payload", "payload_base64", p, len);
}

/* Claim check: where the payload is, its size and digest (null inline). */
static int add_payload_ref(json_t *o, const nq_job *job)
{
	const char *ref = nq_job_payload_ref(job);
	bool by_ref = ref && *ref;
	int bad = json_object_set_new(o, "payload_ref", text_or_null(ref));
	bad |= json_object_set_new(o, "payload_size",
	    by_ref ? json_integer((json_int_t)nq_job_payload_size(job))
	           : json_null());
	bad |= json_object_set_new(o, "payload_sha256",
	    text_or_null(by_ref ? nq_job_payload_sha256(job) : NULL));
	return bad;
}

static int add_result(json_t *o, const nq_job *job)
{
	size_t len = 0;
	const void *p = nq_job_result(job, &len);
	return add_bytes(o, "result", "result_base64", p, len);
}

static json_t *errors_json(const nq_job *job)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < nq_job_error_count(job); i++) {
		uint32_t attempt = 0;
		uint64_t at_us = 0;
		const char *msg = nq_job_error(job, i, &attempt, &at_us);
		json_t *e = json_object();
		int bad = !e;
		bad |= json_object_set_new(e, "attempt", json_integer(attempt));
		bad |= json_object_set_new(e, "at", nqctl_time_json(at_us));
		bad |= json_object_set_new(e, "message", text_or_null(msg));
		if (bad || json_array_append_new(a, e) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Who the job is and where it stands. */
static int add_identity(json_t *o, const nq_job *job)
{
	int bad = 0;
	bad |= json_object_set_new(o, "id", text_or_null(nq_job_id(job)));
	bad |= json_object_set_new(o, "queue", text_or_null(nq_job_queue(job)));
	bad |= json_object_set_new(o, "type", text_or_null(nq_job_type(job)));
	bad |= json_object_set_new(
	    o, "state", json_string(nq_state_name(nq_job_state(job))));
	bad |= json_object_set_new(
	    o, "attempt", json_integer(nq_job_attempt(job)));
	bad |= json_object_set_new(
	    o, "max_attempts", json_integer(nq_job_max_attempts(job)));
	bad |= json_object_set_new(
	    o, "priority", json_integer(nq_job_priority(job)));
	bad |= json_object_set_new(
	    o, "schema_version", json_integer(nq_job_schema_version(job)));
	bad |= json_object_set_new(
	    o, "content_type", text_or_null(nq_job_content_type(job)));
	return bad;
}

/* Deadlines, a cancel under way, and the last progress reported. */
static int add_control(json_t *o, const nq_job *job)
{
	uint64_t fw = nq_job_finish_within_ms(job);
	int bad = json_object_set_new(
	    o, "deadline", nqctl_time_json(nq_job_deadline_us(job)));
	bad |= json_object_set_new(o, "finish_within_ms",
	    fw ? json_integer((json_int_t)fw) : json_null());
	bad |= json_object_set_new(
	    o, "cancel_requested", json_boolean(nq_job_cancel_requested(job)));
	if (!nq_job_progress_at_us(job))
		return bad | json_object_set_new(o, "progress", json_null());
	json_t *p = json_object();
	bad |= !p;
	bad |= json_object_set_new(
	    p, "pct", json_integer(nq_job_progress_pct(job)));
	bad |= json_object_set_new(
	    p, "note", text_or_null(nq_job_progress_note(job)));
	bad |= json_object_set_new(
	    p, "at", nqctl_time_json(nq_job_progress_at_us(job)));
	return bad | json_object_set_new(o, "progress", p);
}

/* n ids from at(job, i) as a JSON array; null when there are none. */
static json_t *ids_json(
    const nq_job *job, size_t n, const char *(*at)(const nq_job *job, size_t i))
{
	json_t *a = n ? json_array() : json_null();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, text_or_null(at(job, i))) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Dependencies: the parents (and how many it still waits for), the
 * children. */
static int add_deps(json_t *o, const nq_job *job)
{
	size_t n = nq_job_parent_count(job);
	int bad = json_object_set_new(
	    o, "parents", ids_json(job, n, nq_job_parent_id));
	bad |= json_object_set_new(o, "waiting_on",
	    nq_job_waiting_on(job) ? json_integer(nq_job_waiting_on(job))
	                           : json_null());
	bad |= json_object_set_new(o, "children",
	    ids_json(job, nq_job_child_count(job), nq_job_child_id));
	return bad;
}

/* The history: errors, end, times and the keys that came with the job. */
/* The scope of a unique key; null for a job without one. */
static int add_unique(json_t *o, const nq_job *job)
{
	bool keyed = nq_job_idempotency_key(job)[0] != '\0';
	const char *scope = nq_unique_scope_name(nq_job_unique_scope(job));
	uint64_t ms = nq_job_unique_window_ms(job);
	int bad = json_object_set_new(o, "unique_scope",
	    keyed && scope ? json_string(scope) : json_null());
	bad |= json_object_set_new(o, "unique_window_ms",
	    keyed && ms ? json_integer((json_int_t)ms) : json_null());
	return bad;
}

static int add_history(json_t *o, const nq_job *job)
{
	int bad = 0;
	bad |= json_object_set_new(o, "errors", errors_json(job));
	bad |= json_object_set_new(
	    o, "dead_reason", text_or_null(nq_job_dead_reason(job)));
	bad |=
	    json_object_set_new(o, "in_dlq", json_boolean(nq_job_in_dlq(job)));
	bad |= json_object_set_new(
	    o, "created_at", nqctl_time_json(nq_job_created_us(job)));
	bad |= json_object_set_new(
	    o, "run_at", nqctl_time_json(nq_job_run_at_us(job)));
	bad |= json_object_set_new(
	    o, "started_at", nqctl_time_json(nq_job_started_us(job)));
	bad |= json_object_set_new(
	    o, "finished_at", nqctl_time_json(nq_job_finished_us(job)));
	bad |= json_object_set_new(
	    o, "timeout_ms", json_integer((json_int_t)nq_job_timeout_ms(job)));
	bad |= json_object_set_new(
	    o, "worker_id", text_or_null(nq_job_worker_id(job)));
	bad |= json_object_set_new(
	    o, "traceparent", text_or_null(nq_job_traceparent(job)));
	bad |= json_object_set_new(
	    o, "idempotency_key", text_or_null(nq_job_idempotency_key(job)));
	bad |= json_object_set_new(
	    o, "ordering_key", text_or_null(nq_job_ordering_key(job)));
	bad |= json_object_set_new(
	    o, "group_key", text_or_null(nq_job_group_key(job)));
	bad |= json_object_set_new(
	    o, "schedule", text_or_null(nq_job_schedule(job)));
	bad |=
	    json_object_set_new(o, "batch", text_or_null(nq_job_batch_id(job)));
	return bad | add_unique(o, job) | add_control(o, job) |
	       add_deps(o, job);
}

json_t *nqctl_job_json(const nq_job *job)
{
	json_t *o = json_object();
	if (!o || add_identity(o, job) || add_payload(o, job) ||
	    add_payload_ref(o, job) || add_result(o, job) ||
	    add_history(o, job)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int nqctl_print_json(json_t *v)
{
	char *text = v ? nqi_json_dumps(v) : NULL;
	json_decref(v);
	if (!text) {
		fprintf(stderr, "nqctl: out of memory\n");
		return NQI_EXIT_FAILED;
	}
	printf("%s\n", text);
	free(text);
	return NQI_EXIT_OK;
}

/* Writes "key: value". Text that a terminal shows as it is goes out as it
 * is (lines after the first indented); anything else, and every non-string,
 * as JSON, which escapes control characters. */
void nqctl_print_field(const char *key, const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (s && nqi_text_printable(s, len)) {
		if (len && s[len - 1] == '\n')
			len--;
		printf("%s: ", key);
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '\n')
				fputs("\n  ", stdout);
			else
				putchar(s[i]);
		}
		putchar('\n');
		return;
	}
	char *text = nqi_json_dumps(v);
	printf("%s: %s\n", key, text ? text : "?");
	free(text);
}

/* Bytes that are not text are only sized here; --json carries them. */
static void print_binary(const char *key, const json_t *v)
{
	size_t b64 = json_string_length(v);
	const char *s = json_string_value(v);
	size_t pad = b64 >= 2 ? (s[b64 - 1] == '=') + (s[b64 - 2] == '=') : 0;
	printf("%.*s: %zu bytes, not text (--json shows them in base64)\n",
	    (int)(strstr(key, "_base64") - key), key, b64 / 4 * 3 - pad);
}

void nqctl_print_errors(const json_t *errors, bool say_none)
{
	size_t i;
	json_t *e;
	if (json_array_size(errors) == 0 && !say_none)
		return;
	printf("errors:%s\n", json_array_size(errors) ? "" : " none");
	json_array_foreach(errors, i, e)
	{
		char head[96];
		const char *at = json_string_value(json_object_get(e, "at"));
		snprintf(head, sizeof head, "  attempt %lld at %s",
		    (long long)json_integer_value(
		        json_object_get(e, "attempt")),
		    at ? at : "(unknown time)");
		nqctl_print_field(head, json_object_get(e, "message"));
	}
}

/* Only a job that nq-dlq holds says so: the broker shows a summary. */
static void print_in_dlq(const json_t *job, const json_t *v)
{
	const char *id = json_string_value(json_object_get(job, "id"));
	if (json_is_true(v))
		printf("in_dlq: true (nqctl dlq show %s has the whole job)\n",
		    id ? id : "ID");
}

/* "progress: 40% copying (at 2026-...)". */
static void print_progress(const json_t *v)
{
	const char *note = json_string_value(json_object_get(v, "note"));
	const char *at = json_string_value(json_object_get(v, "at"));
	char head[64];
	snprintf(head, sizeof head, "%lld%%",
	    (long long)json_integer_value(json_object_get(v, "pct")));
	json_t *line = json_sprintf("%s%s%s (at %s)", head, note ? " " : "",
	    note ? note : "", at ? at : "?");
	nqctl_print_field("progress", line);
	json_decref(line);
}

int nqctl_print_job(const nqctl *x, const nq_job *job)
{
	const char *key;
	json_t *v, *o = nqctl_job_json(job);
	if (x->conf.json || !o)
		return nqctl_print_json(o);
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "errors") == 0)
			nqctl_print_errors(v, false);
		else if (strstr(key, "_base64"))
			print_binary(key, v);
		else if (strcmp(key, "in_dlq") == 0)
			print_in_dlq(o, v);
		else if (strcmp(key, "progress") == 0 && !json_is_null(v))
			print_progress(v);
		else if (!json_is_null(v) && !json_is_false(v))
			nqctl_print_field(key, v);
	}
	json_decref(o);
	return NQI_EXIT_OK;
}

/* ---- reading times ---- */

/* Reads exactly n digits. */
static bool read_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool read_char(const char **p, const char *set)
{
	if (**p == '\0' || !strchr(set, **p))
		return false;
	(*p)++;
	return true;
}

/* "2026-11-27T22:00:00" into tm, fields as written (not yet offset). */
static bool read_date_time(const char **p, struct tm *tm)
{
	return read_digits(p, 4, &tm->tm_year) && read_char(p, "-") &&
	       read_digits(p, 2, &tm->tm_mon) && read_char(p, "-") &&
	       read_digits(p, 2, &tm->tm_mday) && read_char(p, "Tt ") &&
	       read_digits(p, 2, &tm->tm_hour) && read_char(p, ":") &&
	       read_digits(p, 2, &tm->tm_min) && read_char(p, ":") &&
	       read_digits(p, 2, &tm->tm_sec);
}

/* ".123456789" as microseconds; digits past the sixth are dropped. */
static bool read_fraction(const char **p, uint64_t *us)
{
	uint64_t scale = 100000;
	*us = 0;
	if (**p != '.')
		return true;
	(*p)++;
	if (**p < '0' || **p > '9')
		return false;
	for (; **p >= '0' && **p <= '9'; (*p)++, scale /= 10)
		*us += (uint64_t)(**p - '0') * scale;
	return true;
}

/* "Z", "+02:00" or "-05:30" as seconds east of UTC. */
static bool read_offset(const char **p, long *secs)
{
	int sign = **p == '-' ? -1 : 1, hh, mm;
	*secs = 0;
	if (read_char(p, "Zz"))
		return true;
	if (!read_char(p, "+-") || !read_digits(p, 2, &hh) ||
	    !read_char(p, ":") || !read_digits(p, 2, &mm) || hh > 23 || mm > 59)
		return false;
	*secs = sign * (hh * 3600L + mm * 60L);
	return true;
}

int nqctl_parse_time(const char *s, uint64_t *us)
{
	struct tm tm = {0}, want;
	uint64_t secs, frac_us;
	long offset;
	const char *p = s;
	if (nqi_parse_u64(s, &secs) == NQ_OK) {
		if (secs > UINT64_MAX / 1000000u)
			return NQ_EINVAL;
		*us = secs * 1000000u;
		return NQ_OK;
	}
	if (!read_date_time(&p, &tm) || !read_fraction(&p, &frac_us) ||
	    !read_offset(&p, &offset) || *p)
		return NQ_EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	want = tm;
	time_t t = timegm(&tm);
	/* timegm moves February 30 to March 2; a real date stays put. */
	if (t == (time_t)-1 || tm.tm_mon != want.tm_mon ||
	    tm.tm_mday != want.tm_mday || tm.tm_hour != want.tm_hour ||
	    tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec ||
	    t - offset < 0)
		return NQ_EINVAL;
	*us = (uint64_t)(t - offset) * 1000000u + frac_us;
	return NQ_OK;
}
