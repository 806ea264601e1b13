/*
 * nq-dlq on its own: the real binary on free loopback ports, fed with
 * DlqIngestRequest batches the way the broker hands dead jobs over, and
 * asked by nqctl and by raw requests.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "dlqt.h"
#include "nqi/util.h"

#define SEC_US 1000000ull

static int setup(void **state)
{
	return itest_setup(state);
}

/* nqctl --dlq URL [--json] dlq ARGS... */
static int nqctl_dlq(itest_env *e, itest_run *run, int json, ...)
{
	const char *args[40] = {"--dlq", e->dlq_url};
	size_t n = 2;
	va_list ap;
	if (json)
		args[n++] = "--json";
	args[n++] = "dlq";
	va_start(ap, json);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 39;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return itest_nqctl_argv(e, 20000, args, run);
}

static Nq__V1__Reply *show(itest_env *e, uint64_t id)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqShowRequest body = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	Nq__V1__Reply *r = NULL;
	char sid[NQ_ID_MAX];
	nqi_id_format(id, sid);
	body.id = sid;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
	req.dlq_show = &body;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	return r;
}

static bool has_entry(itest_env *e, uint64_t id)
{
	Nq__V1__Reply *r = show(e, id);
	bool has = dlqt_code(r) == 0;
	nq__v1__reply__free_unpacked(r, NULL);
	return has;
}

/* A handed-over job is kept whole; a repeated handoff is stored once and
 * answered OK, also within one batch. */
static void test_dlq_ingest_keeps_every_error_and_stores_once(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[4];
	uint64_t now = nqi_now_us();
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	dlqt_dead(&jobs[0], 0x100, "mail", "send", "max_attempts", now, 3);
	dlqt_dead(&jobs[1], 0x101, "mail", "send", "non_retryable", now, 1);
	dlqt_dead(&jobs[2], 0x102, "sms", "send", "expired", now, 2);
	jobs[3] = jobs[0]; /* the same job twice in one batch */
	jobs[3].dead.job = &jobs[0].job;
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 4), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 3);
	/* the broker lost the reply and hands all of them over again */
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 3), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 3);

	Nq__V1__Reply *r = show(e, 0x100);
	assert_int_equal(dlqt_code(r), 0);
	const Nq__V1__DeadJob *d = r->dlq_show->job;
	assert_string_equal(d->reason, "max_attempts");
	assert_int_equal(d->dead_at_us, now);
	assert_true(d->stored_at_us >= now);
	assert_int_equal(d->job->n_errors, 3);
	assert_string_equal(d->job->errors[0]->message, "attempt 1 failed");
	assert_string_equal(d->job->errors[2]->message, "attempt 3 failed");
	assert_int_equal(d->job->errors[1]->attempt, 2);
	assert_memory_equal(d->job->spec->payload.data,
	    "payload 0000000000000100", d->job->spec->payload.len);
	nq__v1__reply__free_unpacked(r, NULL);

	itest_run run;
	assert_int_equal(
	    nqctl_dlq(e, &run, false, "show", "0000000000000100", NULL), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "payload: payload 0000000000000100"));
	assert_non_null(strstr(run.out, "attempt 1 at "));
	assert_non_null(strstr(run.out, ": attempt 3 failed"));
	itest_run_free(&run);

	int status;
	char *body;
	assert_int_equal(
	    dlqt_http_get(t.http_addr, "/metrics", &status, &body), 0);
	assert_int_equal(status, 200);
	assert_non_null(strstr(
	    body, "nq_dlq_entries{queue=\"mail\",reason=\"max_attempts\"} 1"));
	assert_non_null(strstr(body, "nq_dlq_ingested_total 3"));
	assert_non_null(strstr(body, "nq_dlq_duplicates_total 4"));
	free(body);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* show: msgpack as the JSON it stands for, text as text, other bytes in
 * base64. */
static void test_dlq_show_gives_payloads_readably(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[2];
	static uint8_t mp[] = {0x81, 0xa1, 'a', 0x01}; /* {"a":1} */
	static uint8_t bin[] = {0x00, 0xff, 0x10};
	uint64_t now = nqi_now_us();
	itest_run run;
	json_t *o;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	dlqt_dead(&jobs[0], 0x150, "q", "t", "non_retryable", now, 1);
	jobs[0].spec.payload.data = mp;
	jobs[0].spec.payload.len = sizeof mp;
	jobs[0].spec.content_type = "application/msgpack";
	dlqt_dead(&jobs[1], 0x151, "q", "t", "non_retryable", now, 1);
	jobs[1].spec.payload.data = bin;
	jobs[1].spec.payload.len = sizeof bin;
	jobs[1].spec.content_type = "application/octet-stream";
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 2), 0);

	assert_int_equal(
	    nqctl_dlq(e, &run, true, "show", "0000000000000150", NULL), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(o, "payload"), "a")),
	    1);
	assert_string_equal(itest_json_str(o, "reason"), "non_retryable");
	json_decref(o);
	itest_run_free(&run);
	assert_int_equal(
	    nqctl_dlq(e, &run, false, "show", "0000000000000150", NULL), 0);
	assert_non_null(strstr(run.out, "payload: {\"a\":1}"));
	itest_run_free(&run);
	assert_int_equal(
	    nqctl_dlq(e, &run, true, "show", "0000000000000151", NULL), 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_string_equal(itest_json_str(o, "payload_base64"), "AP8Q");
	json_decref(o);
	itest_run_free(&run);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Each item is judged alone: a broken one is refused with a reason, the
 * others are stored. */
static void test_dlq_ingest_refuses_broken_items_alone(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[4];
	Nq__V1__DeadJob nojob = NQ__V1__DEAD_JOB__INIT;
	Nq__V1__DeadJob *v[5];
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqIngestRequest in = NQ__V1__DLQ_INGEST_REQUEST__INIT;
	Nq__V1__Reply *r;
	uint64_t now = nqi_now_us();
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	dlqt_dead(&jobs[0], 0x200, "mail", "send", "max_attempts", now, 1);
	dlqt_dead(
	    &jobs[1], 0x201, "bad queue!", "send", "max_attempts", now, 1);
	dlqt_dead(&jobs[2], 0x202, "mail", "send", "max_attempts", now, 1);
	jobs[2].job.id = "not-an-id";
	dlqt_dead(&jobs[3], 0x203, "mail", "", "max_attempts", now, 1);
	v[0] = &jobs[0].dead;
	v[1] = &jobs[1].dead;
	v[2] = &jobs[2].dead;
	v[3] = &nojob;
	v[4] = &jobs[3].dead;
	in.jobs = v;
	in.n_jobs = 5;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_INGEST;
	req.dlq_ingest = &in;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), 0);
	assert_int_equal(r->dlq_ingest->n_results, 5);
	assert_int_equal(r->dlq_ingest->results[0]->code, 0);
	for (int i = 1; i < 5; i++)
		assert_int_equal(r->dlq_ingest->results[i]->code,
		    NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(
	    strstr(r->dlq_ingest->results[1]->message, "queue 'bad queue!'"));
	assert_non_null(strstr(r->dlq_ingest->results[2]->message,
	    "'not-an-id' is not 16 hex digits"));
	assert_non_null(strstr(r->dlq_ingest->results[3]->message, "no job"));
	assert_non_null(strstr(r->dlq_ingest->results[4]->message, "type"));
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(dlqt_total(e->dlq_url), 1);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

static void expect_error(
    itest_env *e, Nq__V1__Request *req, int code, const char *text)
{
	Nq__V1__Reply *r;
	assert_int_equal(dlqt_call(e->dlq_url, req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), code);
	if (!strstr(r->status->message, text))
		fail_msg("message '%s' lacks '%s'", r->status->message, text);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Unknown ids, malformed bytes and requests of the wrong kind get clear
 * errors, and nothing changes. */
static void test_dlq_bad_requests_get_clear_errors_and_change_nothing(
    void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[2];
	Nq__V1__Reply *r;
	uint64_t now = nqi_now_us();
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	dlqt_dead(&jobs[0], 0x300, "mail", "send", "max_attempts", now, 1);
	dlqt_dead(&jobs[1], 0x301, "mail", "send", "max_attempts", now, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 2), 0);

	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
	assert_int_equal(
	    dlqt_call_raw(e->dlq_url, junk, sizeof junk, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), NQ__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->status->message, "malformed"));
	nq__v1__reply__free_unpacked(r, NULL);

	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest st = NQ__V1__DLQ_STATS_REQUEST__INIT;
	req.version = 2;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
	req.dlq_stats = &st;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), NQ__V1__CODE__FAILED_PRECONDITION);
	assert_int_equal(r->n_versions, 1);
	assert_int_equal(r->versions[0], 1);
	nq__v1__reply__free_unpacked(r, NULL);

	Nq__V1__Request enq = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest eb = NQ__V1__ENQUEUE_REQUEST__INIT;
	enq.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	enq.enqueue = &eb;
	expect_error(
	    e, &enq, NQ__V1__CODE__INVALID_ARGUMENT, "belong on the broker");

	char *ids[] = {"0000000000000300", "00000000000003ff"};
	Nq__V1__Request pr = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqPurgeRequest pb = NQ__V1__DLQ_PURGE_REQUEST__INIT;
	pb.ids = ids;
	pb.n_ids = 2;
	pr.body_case = NQ__V1__REQUEST__BODY_DLQ_PURGE;
	pr.dlq_purge = &pb;
	expect_error(e, &pr, NQ__V1__CODE__NOT_FOUND,
	    "00000000000003ff; nothing was purged");

	Nq__V1__Request rr = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqReplayRequest rb = NQ__V1__DLQ_REPLAY_REQUEST__INIT;
	rb.ids = ids;
	rb.n_ids = 2;
	rr.body_case = NQ__V1__REQUEST__BODY_DLQ_REPLAY;
	rr.dlq_replay = &rb;
	expect_error(e, &rr, NQ__V1__CODE__NOT_FOUND,
	    "00000000000003ff; nothing was replayed");
	rb.all = true;
	expect_error(e, &rr, NQ__V1__CODE__INVALID_ARGUMENT, "not both");

	itest_run run;
	assert_int_equal(
	    nqctl_dlq(e, &run, false, "show", "00000000000003ff", NULL), 0);
	assert_int_equal(run.code, 1);
	assert_non_null(
	    strstr(run.err, "no DLQ entry has id 00000000000003ff"));
	itest_run_free(&run);
	assert_int_equal(nqctl_dlq(e, &run, false, "show", "x1", NULL), 0);
	assert_int_equal(run.code, 2);
	assert_non_null(strstr(run.err, "'x1' is not an id"));
	itest_run_free(&run);
	assert_int_equal(nqctl_dlq(e, &run, false, "purge", "0000000000000300",
	                     "0000000000000fff", NULL),
	    0);
	assert_int_equal(run.code, 1);
	itest_run_free(&run);
	assert_int_equal(
	    nqctl_dlq(e, &run, false, "purge", "--older-than", "1h", NULL), 0);
	assert_int_equal(run.code, 2);
	itest_run_free(&run);

	assert_int_equal(dlqt_total(e->dlq_url), 2);
	assert_true(has_entry(e, 0x300));
	assert_true(has_entry(e, 0x301));
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Fills 7 entries, newest last: queues a and b, types x and y. */
static void fill_for_listing(itest_env *e, uint64_t base)
{
	dlqt_dead_job jobs[7];
	static const char *const queues[] = {"a", "a", "b", "a", "b", "a", "b"};
	static const char *const types[] = {"x", "y", "x", "x", "y", "y", "x"};
	static const char *const reasons[] = {"max_attempts", "non_retryable",
	    "max_attempts", "expired", "max_attempts", "max_attempts",
	    "non_retryable"};
	for (int i = 0; i < 7; i++)
		dlqt_dead(&jobs[i], 0x400 + (uint64_t)i, queues[i], types[i],
		    reasons[i], base + (uint64_t)i * SEC_US, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 7), 0);
}

static Nq__V1__Reply *list(itest_env *e, Nq__V1__DlqListRequest *body)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__Reply *r;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_LIST;
	req.dlq_list = body;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), 0);
	return r;
}

/* The ids of a page, "0406 0405 ..." by their last 4 digits. */
static void page_ids(const Nq__V1__Reply *r, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->dlq_list->n_jobs && o + 6 < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? " " : "",
		    r->dlq_list->jobs[i]->job->id + 12);
}

static void test_dlq_list_is_newest_first_paged_and_filtered(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char ids[128];
	uint64_t base = nqi_now_us() - 100 * SEC_US;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	fill_for_listing(e, base);

	Nq__V1__DlqListRequest q = NQ__V1__DLQ_LIST_REQUEST__INIT;
	q.limit = 3;
	Nq__V1__Reply *r = list(e, &q);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0406 0405 0404");
	assert_string_equal(r->dlq_list->next_before_id, "0000000000000404");
	assert_int_equal(r->dlq_list->jobs[0]->job->spec->payload.len, 0);
	q.before_id = "0000000000000404";
	nq__v1__reply__free_unpacked(r, NULL);
	r = list(e, &q);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0403 0402 0401");
	q.before_id = "0000000000000401";
	nq__v1__reply__free_unpacked(r, NULL);
	r = list(e, &q);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0400");
	assert_string_equal(r->dlq_list->next_before_id, "");
	nq__v1__reply__free_unpacked(r, NULL);

	Nq__V1__DlqListRequest f = NQ__V1__DLQ_LIST_REQUEST__INIT;
	f.queue = "a";
	f.type = "y";
	r = list(e, &f);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0405 0401");
	nq__v1__reply__free_unpacked(r, NULL);
	f.queue = "";
	f.type = "";
	f.reason = "non_retryable";
	r = list(e, &f);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0406 0401");
	nq__v1__reply__free_unpacked(r, NULL);
	f.reason = "";
	f.queue = "b";
	f.since_us = base + 3 * SEC_US;
	r = list(e, &f);
	page_ids(r, ids, sizeof ids);
	assert_string_equal(ids, "0406 0404");
	nq__v1__reply__free_unpacked(r, NULL);

	/* nqctl: filters, the next page it prints, and --json */
	itest_run run;
	assert_int_equal(nqctl_dlq(e, &run, false, "list", "--queue", "a",
	                     "--limit", "2", NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "0000000000000405"));
	assert_non_null(strstr(run.out, "0000000000000403"));
	assert_null(strstr(run.out, "0000000000000401"));
	assert_non_null(strstr(run.out,
	    "next page: nqctl dlq list --queue a --limit 2 --before "
	    "0000000000000403"));
	itest_run_free(&run);
	assert_int_equal(
	    nqctl_dlq(e, &run, true, "list", "--reason", "expired", NULL), 0);
	json_t *o;
	assert_int_equal(itest_run_json(&run, &o), 0);
	json_t *entries = json_object_get(o, "entries");
	assert_int_equal(json_array_size(entries), 1);
	assert_string_equal(itest_json_str(json_array_get(entries, 0), "id"),
	    "0000000000000403");
	assert_true(json_is_null(json_object_get(o, "next_before_id")));
	json_decref(o);
	itest_run_free(&run);
	assert_int_equal(nqctl_dlq(e, &run, false, "list", "--since", "1h",
	                     "--type", "nope", NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "no dead jobs"));
	itest_run_free(&run);

	assert_int_equal(nqctl_dlq(e, &run, true, "stats", NULL), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	assert_int_equal(itest_json_int(o, "total"), 7);
	json_decref(o);
	itest_run_free(&run);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Each queue keeps its newest --retention-count entries. */
static void test_dlq_retention_by_count_keeps_the_newest_per_queue(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[10];
	uint64_t base = nqi_now_us() - 60 * SEC_US;
	const char *const flags[] = {"--retention-count", "5", NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	for (int i = 0; i < 10; i++)
		dlqt_dead(&jobs[i], 0x500 + (uint64_t)i,
		    i < 8 ? "big" : "small", "t", "max_attempts",
		    base + (uint64_t)i * SEC_US, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 10), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 7);
	for (uint64_t i = 0; i < 3; i++)
		assert_false(has_entry(e, 0x500 + i));
	for (uint64_t i = 3; i < 10; i++)
		assert_true(has_entry(e, 0x500 + i));
	assert_true(
	    dlqt_log_has(t.log, "NQ-DLQ-PRUNED queue=big reason=count n=3"));
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Entries dead longer ago than --retention-age go, on ingest and later
 * on the timer. */
static void test_dlq_retention_by_age_prunes_continuously(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[3];
	uint64_t now = nqi_now_us();
	const char *const flags[] = {
	    "--retention-age", "3s", "--retention-check", "100ms", NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	dlqt_dead(
	    &jobs[0], 0x600, "q", "t", "max_attempts", now - 3600 * SEC_US, 1);
	dlqt_dead(&jobs[1], 0x601, "q", "t", "max_attempts", now, 1);
	dlqt_dead(&jobs[2], 0x602, "q", "t", "max_attempts", now, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 3), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 2);
	assert_false(has_entry(e, 0x600));
	assert_int_equal(dlqt_wait_total(e->dlq_url, 0, 10000), 0);
	assert_true(
	    dlqt_log_has(t.log, "NQ-DLQ-PRUNED queue=q reason=age n=1"));
	assert_true(
	    dlqt_log_has(t.log, "NQ-DLQ-PRUNED queue=q reason=age n=2"));
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

static void test_dlq_purge_by_id_age_and_queue(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[6];
	uint64_t now = nqi_now_us();
	itest_run run;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	for (int i = 0; i < 6; i++)
		dlqt_dead(&jobs[i], 0x700 + (uint64_t)i, i % 2 ? "odd" : "even",
		    "t", "max_attempts",
		    now - (uint64_t)(6 - i) * 3600 * SEC_US, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 6), 0);
	assert_int_equal(
	    nqctl_dlq(e, &run, false, "purge", "0000000000000705", NULL), 0);
	assert_int_equal(run.code, 0);
	assert_string_equal(run.out, "purged 1\n");
	itest_run_free(&run);
	/* dead 6h, 5h, 4h, 3h, 2h ago remain; older than 3.5h: 3 of them */
	assert_int_equal(nqctl_dlq(e, &run, true, "purge", "--all",
	                     "--older-than", "210m", NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_string_equal(run.out, "{\"purged\":3}\n");
	itest_run_free(&run);
	assert_int_equal(nqctl_dlq(e, &run, false, "purge", "--all", "--queue",
	                     "even", NULL),
	    0);
	assert_string_equal(run.out, "purged 1\n");
	itest_run_free(&run);
	assert_int_equal(dlqt_total(e->dlq_url), 1);
	assert_true(has_entry(e, 0x703));
	int status;
	char *body;
	assert_int_equal(
	    dlqt_http_get(t.http_addr, "/metrics", &status, &body), 0);
	assert_non_null(strstr(body, "nq_dlq_purged_total 5"));
	free(body);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Confirmed means on disk: a SIGKILL loses nothing that was answered. */
static void test_dlq_confirmed_entries_survive_sigkill(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[50];
	uint64_t now = nqi_now_us();
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	for (int i = 0; i < 50; i++)
		dlqt_dead(&jobs[i], 0x800 + (uint64_t)i, "q", "t",
		    "max_attempts", now, 2);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 50), 0);
	assert_int_equal(dlqt_stop(&t, SIGKILL, NULL), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 50);
	Nq__V1__Reply *r = show(e, 0x831);
	assert_int_equal(r->dlq_show->job->job->n_errors, 2);
	nq__v1__reply__free_unpacked(r, NULL);
	/* and SIGTERM is a clean stop */
	assert_int_equal(dlqt_stop_clean(&t), 0);
	assert_true(dlqt_log_has(t.log, "NQ-DLQ-STOP "));
	itest_pass(e);
}

static int stats_with(itest_env *e, const char *token, long long *total)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqStatsRequest body = NQ__V1__DLQ_STATS_REQUEST__INIT;
	Nq__V1__Reply *r;
	req.token = (char *)token;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_STATS;
	req.dlq_stats = &body;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	int code = dlqt_code(r);
	*total = code ? -1 : (long long)r->dlq_stats->total;
	nq__v1__reply__free_unpacked(r, NULL);
	return code;
}

static void write_file(
    itest_env *e, const char *name, const char *text, char *path, size_t len)
{
	itest_path(e, name, path, len);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* With token files the broker's handoff needs a producer token and the
 * operators an admin token; a refused request changes nothing. */
static void test_dlq_tokens_decide_who_may_do_what(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job job;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqIngestRequest in = NQ__V1__DLQ_INGEST_REQUEST__INIT;
	Nq__V1__DeadJob *v[1] = {&job.dead};
	Nq__V1__Reply *r;
	char prod[PATH_MAX], admin[PATH_MAX];
	long long total;
	itest_run run;
	write_file(
	    e, "producer.tok", "# the broker\np-secret\n", prod, sizeof prod);
	write_file(e, "admin.tok", "a-secret\n", admin, sizeof admin);
	const char *const flags[] = {
	    "--producer-tokens", prod, "--admin-tokens", admin, NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	dlqt_dead(&job, 0xb00, "q", "t", "max_attempts", nqi_now_us(), 1);
	in.jobs = v;
	in.n_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_INGEST;
	req.dlq_ingest = &in;
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), NQ__V1__CODE__UNAUTHENTICATED);
	assert_non_null(strstr(r->status->message, "needs a token"));
	nq__v1__reply__free_unpacked(r, NULL);
	req.token = "p-secret";
	assert_int_equal(dlqt_call(e->dlq_url, &req, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), 0);
	assert_int_equal(r->dlq_ingest->results[0]->code, 0);
	nq__v1__reply__free_unpacked(r, NULL);

	assert_int_equal(
	    stats_with(e, "p-secret", &total), NQ__V1__CODE__PERMISSION_DENIED);
	assert_int_equal(
	    stats_with(e, "wrong", &total), NQ__V1__CODE__UNAUTHENTICATED);
	assert_int_equal(stats_with(e, "a-secret", &total), 0);
	assert_int_equal(total, 1);

	const char *purge[] = {"--dlq", e->dlq_url, "--token-file", prod, "dlq",
	    "purge", "--all", NULL};
	assert_int_equal(itest_nqctl_argv(e, 20000, purge, &run), 0);
	assert_int_equal(run.code, 1);
	assert_non_null(strstr(run.err, "role admin"));
	itest_run_free(&run);
	const char *stats[] = {"--dlq", e->dlq_url, "--token-file", admin,
	    "--json", "dlq", "stats", NULL};
	assert_int_equal(itest_nqctl_argv(e, 20000, stats, &run), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "\"total\":1"));
	itest_run_free(&run);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

static int readyz(const dlqt *t, char **body)
{
	int status = 0;
	assert_int_equal(
	    dlqt_http_get(t->http_addr, "/readyz", &status, body), 0);
	return status;
}

/* A store that cannot commit (a full disk) fails the requests of its
 * group and /readyz says so; once it commits again, readiness returns
 * without a request to prove it. Nothing unwritten is confirmed. */
static void test_dlq_readyz_follows_whether_the_store_commits(void **state)
{
	itest_env *e = *state;
	dlqt t;
	dlqt_dead_job jobs[2];
	char full[PATH_MAX], env_full[PATH_MAX + 32], *body;
	uint64_t now = nqi_now_us();
	itest_path(e, "disk-full", full, sizeof full);
	snprintf(env_full, sizeof env_full, "NQ_FAULT_COMMIT_FILE=%s", full);
	const char *const env[] = {env_full, NULL};
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, env), 0);
	assert_int_equal(readyz(&t, &body), 200);
	free(body);
	dlqt_dead(&jobs[0], 0x900, "q", "t", "max_attempts", now, 1);
	dlqt_dead(&jobs[1], 0x901, "q", "t", "max_attempts", now, 1);
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs, 1), 0);

	FILE *f = fopen(full, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_not_equal(dlqt_ingest(e->dlq_url, jobs + 1, 1), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 1);
	assert_int_equal(readyz(&t, &body), 503);
	assert_non_null(strstr(body, "store cannot commit"));
	free(body);
	int status;
	assert_int_equal(
	    dlqt_http_get(t.http_addr, "/healthz", &status, &body), 0);
	assert_int_equal(status, 200);
	free(body);
	assert_true(dlqt_log_has(t.log, "NQ-COMMIT-FAILED"));

	assert_int_equal(unlink(full), 0);
	uint64_t end = itest_now_ms() + 5000;
	while ((status = readyz(&t, &body)) != 200 && itest_now_ms() < end) {
		free(body);
		itest_sleep_ms(50);
	}
	free(body);
	assert_int_equal(status, 200);
	assert_true(dlqt_log_has(t.log, "NQ-COMMIT-RECOVERED"));
	assert_int_equal(dlqt_ingest(e->dlq_url, jobs + 1, 1), 0);
	assert_int_equal(dlqt_total(e->dlq_url), 2);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* "x" and then 30 two-byte characters: '%.40s' cuts the 20th in half. */
static void cut_name(char *out, size_t len)
{
	snprintf(out, len, "x");
	for (int i = 0; i < 30; i++)
		strncat(out, "\xc3\xa9", len - strlen(out) - 1);
}

/* What nq-dlq made of cut_name cut at 40 bytes: the half character is
 * U+FFFD. */
static void cut_name_text(char *out, size_t len)
{
	snprintf(out, len, "x");
	for (int i = 0; i < 19; i++)
		strncat(out, "\xc3\xa9", len - strlen(out) - 1);
	strncat(out, "\xef\xbf\xbd", len - strlen(out) - 1);
}

/* An error message that quotes a name cut at a byte count is still text,
 * so strict decoders (libnq's) take the reply. */
static void test_dlq_error_messages_cut_inside_a_character_stay_text(
    void **state)
{
	itest_env *e = *state;
	char name[80], text[80], want[160], *reply;
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqShowRequest body = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	Nq__V1__Reply *r;
	nq_client *c;
	size_t len, reply_len;
	uint8_t *buf;
	dlqt_dead_job job;
	dlqt t;
	cut_name(name, sizeof name);
	cut_name_text(text, sizeof text);
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);

	/* show: the one status of a reply (dlq_op_status) */
	body.id = name;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
	req.dlq_show = &body;
	snprintf(want, sizeof want, "id '%s' is not 16 hex digits", text);
	expect_error(e, &req, NQ__V1__CODE__INVALID_ARGUMENT, want);
	nq_client_opts o = {.timeout_ms = 5000}; /* no broker: never dialed */
	assert_int_equal(nq_client_open(&c, &o), 0);
	assert_int_equal(nq_client_set_dlq_url(c, e->dlq_url), 0);
	req.version = 1;
	assert_int_equal(nqi_buf_pack(&req.base, &buf, &len), 0);
	assert_int_equal(
	    nq_dlq_request(c, buf, len, 5000, (void **)&reply, &reply_len),
	    NQ_EINVAL);
	assert_string_equal(nq_client_last_error(c), want);
	free(reply);
	free(buf);
	nq_client_close(c);

	/* ingest: the status of each handed-over job */
	dlqt_dead(&job, 0xc00, "q", "t", "max_attempts", nqi_now_us(), 1);
	job.spec.queue = name;
	Nq__V1__DlqIngestRequest in = NQ__V1__DLQ_INGEST_REQUEST__INIT;
	Nq__V1__DeadJob *v[1] = {&job.dead};
	Nq__V1__Request ing = NQ__V1__REQUEST__INIT;
	in.jobs = v;
	in.n_jobs = 1;
	ing.body_case = NQ__V1__REQUEST__BODY_DLQ_INGEST;
	ing.dlq_ingest = &in;
	assert_int_equal(dlqt_call(e->dlq_url, &ing, 5000, &r), 0);
	assert_int_equal(dlqt_code(r), 0);
	assert_int_equal(
	    r->dlq_ingest->results[0]->code, NQ__V1__CODE__INVALID_ARGUMENT);
	snprintf(want, sizeof want, "job 0: queue '%s' is not a name", text);
	assert_non_null(strstr(r->dlq_ingest->results[0]->message, want));
	nq__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(dlqt_total(e->dlq_url), 0);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* The value of series in a scrape of t's /metrics; -1 when absent. */
static double metric(const dlqt *t, const char *series)
{
	int status;
	char *body, *at;
	double v = -1;
	assert_int_equal(
	    dlqt_http_get(t->http_addr, "/metrics", &status, &body), 0);
	assert_int_equal(status, 200);
	size_t n = strlen(series);
	for (at = body; (at = strstr(at, series)); at += n)
		if ((at == body || at[-1] == '\n') && at[n] == ' ') {
			v = strtod(at + n + 1, NULL);
			break;
		}
	free(body);
	return v;
}

/* /metrics tells what --max-connections did on the socket of --listen,
 * in the rows the broker has for its sockets. */
static void test_dlq_metrics_count_refused_connections(void **state)
{
	itest_env *e = *state;
	const char *const flags[] = {"--max-connections", "1", NULL};
	const char *refused = "nq_connections_refused_total{socket=\"listen\"}";
	nng_socket held, extra;
	dlqt t;
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, flags, NULL), 0);
	assert_true(metric(&t, refused) == 0);
	assert_true(
	    metric(&t, "nq_connections_idle_closed_total{socket=\"listen\"}") ==
	    0);

	/* Two connections at once: one of them is one too many. */
	assert_int_equal(nng_req0_open(&held), 0);
	assert_int_equal(
	    nng_dial(held, e->dlq_url, NULL, NNG_FLAG_NONBLOCK), 0);
	assert_int_equal(nng_req0_open(&extra), 0);
	assert_int_equal(
	    nng_dial(extra, e->dlq_url, NULL, NNG_FLAG_NONBLOCK), 0);
	uint64_t end = itest_now_ms() + 10000;
	while (metric(&t, refused) < 1 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_true(metric(&t, refused) >= 1);
	assert_true(dlqt_log_has(t.log, "NQ-CONN-REFUSED"));
	/* Neither sent a request: once the kept one has been open for a
	 * second, the other one's next try takes its place. */
	const char *evicted = "nq_connections_evicted_total{socket=\"listen\"}";
	while (metric(&t, evicted) < 1 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_true(metric(&t, evicted) >= 1);
	assert_true(dlqt_log_has(t.log, "NQ-CONN-EVICTED"));
	/* The refused socket dials again and again; between its tries the
	 * gauge may be read while the kept connection is being made too. */
	const char *open = "nq_connections{socket=\"listen\"}";
	while (metric(&t, open) < 1 && itest_now_ms() < end)
		itest_sleep_ms(50);
	assert_true(metric(&t, open) >= 1);
	nng_close(extra);
	nng_close(held);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_dlq_ingest_keeps_every_error_and_stores_once, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_show_gives_payloads_readably, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_ingest_refuses_broken_items_alone, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_bad_requests_get_clear_errors_and_change_nothing,
	        setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_list_is_newest_first_paged_and_filtered, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_retention_by_count_keeps_the_newest_per_queue, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_retention_by_age_prunes_continuously, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_purge_by_id_age_and_queue, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_confirmed_entries_survive_sigkill, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_tokens_decide_who_may_do_what, setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_readyz_follows_whether_the_store_commits, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_metrics_count_refused_connections, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_error_messages_cut_inside_a_character_stay_text, setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
