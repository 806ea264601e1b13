/* Codec: every nq.v1 message round-trips, the committed golden fixtures keep
 * decoding to their values, and hostile bytes never crash a decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nqi/codec.h"
#include "nqi/json.h"
#include "nqi/util.h"
#include "samples.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ---- helpers ---- */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf = NULL;
	assert_int_equal(nqi_buf_pack(m, &buf, len), NQ_OK);
	assert_non_null(buf);
	return buf;
}

/* Decodes with the nqi_* entry point of the type when there is one, so the
 * decoders the services use are the ones fed hostile bytes. */
static ProtobufCMessage *unpack_as(
    const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len)
{
	if (d == &nq__v1__request__descriptor)
		return (ProtobufCMessage *)nqi_request_unpack(buf, len);
	if (d == &nq__v1__reply__descriptor)
		return (ProtobufCMessage *)nqi_reply_unpack(buf, len);
	if (d == &nq__v1__completion_batch__descriptor)
		return (ProtobufCMessage *)nqi_completions_unpack(buf, len);
	if (d == &nq__v1__job__descriptor)
		return (ProtobufCMessage *)nqi_job_unpack(buf, len);
	return protobuf_c_message_unpack(d, NULL, len, buf);
}

static void assert_msg_equal(
    const ProtobufCMessage *a, const ProtobufCMessage *b, const char *what)
{
	char why[512];
	if (!nqt_msg_equal(a, b, why, sizeof why))
		fail_msg("%s: differs at %s", what, why);
}

/* Whatever the one-pass decoder takes, nq takes through protobuf-c too
 * (plain: NULL when refused) and decodes the same. Returns whether it took
 * buf. */
static bool assert_fast_agrees(const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len, const ProtobufCMessage *plain)
{
	nqi_arena *a = nqi_arena_new(256);
	assert_non_null(a);
	ProtobufCMessage *fast = nqi_pb_unpack_fast(d, buf, len, a);
	if (fast) {
		if (!plain)
			fail_msg(
			    "one-pass decoder took a %s nq refuses", d->name);
		assert_msg_equal(plain, fast, d->name);
	}
	nqi_arena_free(a);
	return fast != NULL;
}

static uint8_t *read_fixture(const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.bin", NQ_FIXTURE_DIR, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg(
		    "missing fixture %s (run gen_fixtures for new samples)",
		    path);
	uint8_t *buf = malloc(1 << 16);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 16, f);
	assert_int_equal(ferror(f), 0);
	fclose(f);
	return buf;
}

static void assert_bin(ProtobufCBinaryData b, const char *want, size_t n)
{
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, want, n);
}

/* xorshift64*: a fixed seed gives the same hostile inputs every run. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* ---- expected values of the fixtures, written out field by field ---- */

/* Every field of the full spec but replay_of and group_key, which only
 * job_spec_replay and job_spec_group set. */
static void check_spec_fields(const Nq__V1__JobSpec *s)
{
	assert_non_null(s);
	assert_string_equal(s->queue, NQT_QUEUE);
	assert_string_equal(s->type, NQT_TYPE);
	assert_bin(s->payload, NQT_PAYLOAD, NQT_PAYLOAD_LEN);
	assert_string_equal(s->content_type, NQT_CONTENT_TYPE);
	assert_int_equal(s->schema_version, NQT_SCHEMA_VERSION);
	assert_int_equal(s->priority, NQT_PRIORITY);
	assert_int_equal(s->run_at_us, NQT_RUN_AT_US);
	assert_int_equal(s->delay_ms, NQT_DELAY_MS);
	assert_int_equal(s->max_attempts, NQT_MAX_ATTEMPTS);
	assert_int_equal(s->timeout_ms, NQT_TIMEOUT_MS);
	assert_string_equal(s->idempotency_key, NQT_IDEMPOTENCY_KEY);
	assert_string_equal(s->ordering_key, NQT_ORDERING_KEY);
	assert_string_equal(s->traceparent, NQT_TRACEPARENT);
	assert_string_equal(s->payload_ref, NQT_PAYLOAD_REF);
	assert_int_equal(s->deadline_us, NQT_DEADLINE_US);
}

static void check_spec(const Nq__V1__JobSpec *s)
{
	check_spec_fields(s);
	assert_string_equal(s->replay_of, "");
	assert_string_equal(s->group_key, "");
	assert_int_equal(s->payload_size, 0);
	assert_string_equal(s->payload_sha256, "");
	assert_null(s->unique);
}

static void check_spec_min(const Nq__V1__JobSpec *s)
{
	assert_non_null(s);
	assert_string_equal(s->queue, NQT_QUEUE2);
	assert_string_equal(s->type, NQT_TYPE);
	assert_int_equal(s->payload.len, 0);
	assert_string_equal(s->content_type, "");
	assert_int_equal(s->priority, 0);
	assert_int_equal(s->max_attempts, 0);
	assert_string_equal(s->idempotency_key, "");
	assert_string_equal(s->replay_of, "");
}

static void check_errors(const Nq__V1__Job *j)
{
	assert_int_equal(j->n_errors, 2);
	assert_int_equal(j->errors[0]->attempt, 1);
	assert_int_equal(j->errors[0]->at_us, NQT_ERROR1_AT_US);
	assert_string_equal(j->errors[0]->message, NQT_ERROR1);
	assert_true(j->errors[0]->retryable);
	assert_string_equal(j->errors[0]->worker_id, NQT_WORKER);
	assert_int_equal(j->errors[1]->attempt, NQT_MAX_ATTEMPTS);
	assert_int_equal(j->errors[1]->at_us, NQT_FINISHED_US);
	assert_string_equal(j->errors[1]->message, NQT_ERROR2);
	assert_false(j->errors[1]->retryable);
}

static void check_job(const Nq__V1__Job *j)
{
	assert_non_null(j);
	assert_string_equal(j->id, NQT_ID);
	check_spec(j->spec);
	assert_int_equal(j->state, NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	assert_int_equal(j->attempt, NQT_MAX_ATTEMPTS);
	assert_int_equal(j->max_attempts, NQT_MAX_ATTEMPTS);
	assert_int_equal(j->created_us, NQT_CREATED_US);
	assert_int_equal(j->run_at_us, NQT_RUN_AT_US);
	assert_int_equal(j->started_us, NQT_STARTED_US);
	assert_int_equal(j->finished_us, NQT_FINISHED_US);
	assert_bin(j->result, NQT_RESULT, NQT_RESULT_LEN);
	check_errors(j);
	assert_int_equal(j->lease_token, NQT_LEASE_TOKEN);
	assert_int_equal(j->lease_expires_us, NQT_LEASE_EXPIRES_US);
	assert_string_equal(j->worker_id, NQT_WORKER);
	assert_string_equal(j->dead_reason, NQT_DEAD_REASON);
	assert_int_equal(j->timeout_ms, NQT_TIMEOUT_MS);
}

static void check_job2(const Nq__V1__Job *j)
{
	assert_non_null(j);
	assert_string_equal(j->id, NQT_ID2);
	check_spec_min(j->spec);
	assert_int_equal(j->state, NQ__V1__JOB_STATE__JOB_STATE_READY);
	assert_int_equal(j->attempt, 0);
	assert_int_equal(j->max_attempts, 10);
	assert_int_equal(j->timeout_ms, 300000);
	assert_int_equal(j->n_errors, 0);
	assert_int_equal(j->lease_token, 0);
}

static void check_two_jobs(size_t n, Nq__V1__Job **jobs)
{
	assert_int_equal(n, 2);
	check_job(jobs[0]);
	check_job2(jobs[1]);
}

static void check_status_msg(const Nq__V1__Status *s)
{
	assert_non_null(s);
	assert_int_equal(s->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_string_equal(s->message, NQT_STATUS_MESSAGE);
}

static void check_precond(const Nq__V1__Status *s)
{
	assert_non_null(s);
	assert_int_equal(s->code, NQ__V1__CODE__FAILED_PRECONDITION);
	assert_string_equal(s->message, "lease no longer held");
}

static void fx_status(const ProtobufCMessage *m)
{
	check_status_msg((const Nq__V1__Status *)m);
}

static void fx_job_spec(const ProtobufCMessage *m)
{
	check_spec((const Nq__V1__JobSpec *)m);
}

static void fx_job(const ProtobufCMessage *m)
{
	check_job((const Nq__V1__Job *)m);
}

static void fx_completion_batch(const ProtobufCMessage *m)
{
	const Nq__V1__CompletionBatch *b = (const void *)m;
	assert_int_equal(b->version, 1);
	assert_string_equal(b->token, NQT_TOKEN);
	assert_string_equal(b->worker_id, NQT_WORKER);
	assert_int_equal(b->n_completions, 2);
	const Nq__V1__Completion *c = b->completions[0];
	assert_string_equal(c->id, NQT_ID);
	assert_int_equal(c->lease_token, NQT_LEASE_TOKEN);
	assert_int_equal(c->outcome, NQ__V1__OUTCOME__OUTCOME_FAILED);
	assert_bin(c->result, NQT_RESULT, NQT_RESULT_LEN);
	assert_string_equal(c->error, NQT_ERROR2);
	assert_true(c->non_retryable);
	assert_int_equal(c->retry_after_ms, NQT_RETRY_AFTER_MS);
	assert_int_equal(c->started_us, NQT_STARTED_US);
	assert_int_equal(c->finished_us, NQT_FINISHED_US);
	assert_false(c->schema_rejected);
	c = b->completions[1];
	assert_string_equal(c->id, NQT_ID2);
	assert_int_equal(c->lease_token, NQT_LEASE_TOKEN2);
	assert_int_equal(c->outcome, NQ__V1__OUTCOME__OUTCOME_RELEASED);
	assert_string_equal(c->error, "");
	assert_false(c->schema_rejected);
}

static void fx_job_event(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_int_equal(e->seq, NQT_EVENT_SEQ);
	assert_string_equal(e->kind, "dead");
	assert_string_equal(e->id, NQT_ID);
	assert_string_equal(e->queue, NQT_QUEUE);
	assert_string_equal(e->type, NQT_TYPE);
	assert_int_equal(e->attempt, NQT_MAX_ATTEMPTS);
	assert_int_equal(e->at_us, NQT_FINISHED_US);
	assert_string_equal(e->worker_id, NQT_WORKER);
	assert_string_equal(e->error, NQT_ERROR2);
	assert_string_equal(e->traceparent, NQT_TRACEPARENT);
}

static void fx_event_batch(const ProtobufCMessage *m)
{
	const Nq__V1__EventBatch *b = (const void *)m;
	assert_int_equal(b->n_events, 2);
	const Nq__V1__JobEvent *e = b->events[0];
	assert_int_equal(e->seq, NQT_EVENT_SEQ);
	assert_string_equal(e->kind, "failed");
	assert_string_equal(e->id, NQT_ID);
	assert_string_equal(e->queue, NQT_QUEUE);
	assert_string_equal(e->type, NQT_TYPE);
	assert_int_equal(e->attempt, NQT_MAX_ATTEMPTS);
	assert_int_equal(e->at_us, NQT_FINISHED_US);
	assert_string_equal(e->worker_id, NQT_WORKER);
	assert_string_equal(e->error, NQT_ERROR2);
	assert_string_equal(e->traceparent, NQT_TRACEPARENT);
	assert_int_equal(e->topic_seq, NQT_TOPIC_SEQ);
	e = b->events[1];
	assert_int_equal(e->seq, NQT_EVENT_SEQ + 1);
	assert_string_equal(e->kind, "failed");
	assert_string_equal(e->id, NQT_ID2);
	assert_string_equal(e->queue, NQT_QUEUE);
	assert_int_equal(e->attempt, 1);
	assert_string_equal(e->error, "");
	assert_int_equal(e->topic_seq, NQT_TOPIC_SEQ + 1);
}

static const Nq__V1__Request *request_of(
    const ProtobufCMessage *m, Nq__V1__Request__BodyCase want)
{
	const Nq__V1__Request *r = (const void *)m;
	assert_int_equal(r->version, 1);
	assert_string_equal(r->token, NQT_TOKEN);
	assert_int_equal(r->body_case, want);
	return r;
}

static void fx_request_enqueue(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_ENQUEUE);
	assert_int_equal(r->enqueue->n_jobs, 2);
	check_spec(r->enqueue->jobs[0]);
	check_spec_min(r->enqueue->jobs[1]);
}

static void fx_request_get(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_GET);
	assert_string_equal(r->get->id, NQT_ID);
	assert_true(r->get->omit_payload);
}

static void fx_request_wait(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_WAIT);
	assert_string_equal(r->wait->id, NQT_ID);
	assert_int_equal(r->wait->timeout_ms, NQT_WAIT_MS);
}

static void fx_request_cancel(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_CANCEL);
	assert_string_equal(r->cancel->id, NQT_ID);
}

static void fx_request_stats(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_STATS);
	assert_string_equal(r->stats->queue, NQT_QUEUE);
}

static void fx_request_pause(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_PAUSE);
	assert_string_equal(r->pause->queue, NQT_QUEUE);
}

static void fx_request_resume(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_RESUME);
	assert_string_equal(r->resume->queue, NQT_QUEUE2);
}

static void fx_request_list(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_LIST);
	assert_string_equal(r->list->queue, NQT_QUEUE);
	assert_int_equal(r->list->state, NQ__V1__JOB_STATE__JOB_STATE_READY);
	assert_int_equal(r->list->limit, NQT_LIST_LIMIT);
	assert_string_equal(r->list->after_id, NQT_ID);
	assert_string_equal(r->list->type, "");
}

static void fx_request_fetch(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_FETCH);
	assert_string_equal(r->fetch->worker_id, NQT_WORKER);
	assert_int_equal(r->fetch->n_queues, 2);
	assert_string_equal(r->fetch->queues[0], NQT_QUEUE);
	assert_string_equal(r->fetch->queues[1], NQT_QUEUE2);
	assert_int_equal(r->fetch->max_jobs, NQT_MAX_JOBS);
	assert_int_equal(r->fetch->wait_ms, NQT_WAIT_MS);
	assert_int_equal(r->fetch->lease_ms, NQT_LEASE_MS);
}

static void fx_request_extend(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_EXTEND);
	const Nq__V1__ExtendRequest *e = r->extend;
	assert_int_equal(e->n_leases, 2);
	assert_string_equal(e->leases[0]->id, NQT_ID);
	assert_int_equal(e->leases[0]->lease_token, NQT_LEASE_TOKEN);
	assert_string_equal(e->leases[1]->id, NQT_ID2);
	assert_int_equal(e->leases[1]->lease_token, NQT_LEASE_TOKEN2);
	assert_int_equal(e->lease_ms, NQT_LEASE_MS);
	assert_string_equal(e->worker_id, NQT_WORKER);
}

static const Nq__V1__Reply *reply_of(
    const ProtobufCMessage *m, Nq__V1__Reply__BodyCase want)
{
	const Nq__V1__Reply *r = (const void *)m;
	assert_int_equal(r->body_case, want);
	assert_int_equal(r->n_versions, 0);
	if (want != NQ__V1__REPLY__BODY_CANCEL)
		assert_null(r->status);
	return r;
}

static void fx_reply_enqueue(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_ENQUEUE);
	const Nq__V1__EnqueueReply *e = r->enqueue;
	assert_int_equal(e->n_results, 2);
	assert_non_null(e->results[0]->status);
	assert_int_equal(e->results[0]->status->code, NQ__V1__CODE__OK);
	assert_string_equal(e->results[0]->id, NQT_ID);
	assert_true(e->results[0]->duplicate);
	check_status_msg(e->results[1]->status);
	assert_string_equal(e->results[1]->id, "");
	assert_false(e->results[1]->duplicate);
}

static void fx_reply_get(const ProtobufCMessage *m)
{
	check_job(reply_of(m, NQ__V1__REPLY__BODY_GET)->get->job);
}

static void fx_reply_wait(const ProtobufCMessage *m)
{
	check_job(reply_of(m, NQ__V1__REPLY__BODY_WAIT)->wait->job);
}

static void fx_reply_cancel(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_CANCEL);
	check_precond(r->status);
	check_job2(r->cancel->job);
}

static void check_broker_stats(const Nq__V1__BrokerStats *b)
{
	assert_non_null(b);
	assert_int_equal(b->commits, NQT_COMMITS);
	assert_int_equal(b->uptime_ms, NQT_UPTIME_MS);
	assert_int_equal(b->jobs_stored, NQT_JOBS_STORED);
	assert_string_equal(b->version, NQT_VERSION);
}

static void fx_reply_stats(const ProtobufCMessage *m)
{
	const Nq__V1__StatsReply *s =
	    reply_of(m, NQ__V1__REPLY__BODY_STATS)->stats;
	assert_int_equal(s->n_queues, 2);
	const Nq__V1__QueueStats *q = s->queues[0];
	assert_string_equal(q->queue, NQT_QUEUE);
	uint64_t got[] = {q->scheduled, q->ready, q->leased, q->succeeded,
	    q->dead, q->canceled, q->expired};
	for (size_t i = 0; i < COUNT(got); i++)
		assert_int_equal(got[i], i + 1);
	assert_true(q->paused);
	assert_int_equal(q->enqueued_total, 1000001);
	assert_int_equal(q->succeeded_total, 1000002);
	assert_int_equal(q->failed_total, 1000003);
	assert_int_equal(q->dead_total, 1000004);
	assert_int_equal(q->oldest_ready_us, NQT_CREATED_US);
	assert_int_equal(q->dead_pending, 0);
	assert_int_equal(q->dlq_handed_total, 0);
	assert_string_equal(s->queues[1]->queue, NQT_QUEUE2);
	assert_int_equal(s->queues[1]->ready, 0);
	assert_false(s->queues[1]->paused);
	check_broker_stats(s->broker);
}

static void fx_reply_queue(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_QUEUE);
	assert_string_equal(r->queue->queue, NQT_QUEUE);
	assert_true(r->queue->paused);
}

static void fx_reply_list(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_LIST);
	check_two_jobs(r->list->n_jobs, r->list->jobs);
	assert_string_equal(r->list->next_after_id, "");
}

static void fx_reply_fetch(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_FETCH);
	check_two_jobs(r->fetch->n_jobs, r->fetch->jobs);
}

static void fx_reply_extend(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_EXTEND);
	assert_int_equal(r->extend->n_results, 2);
	assert_int_equal(r->extend->results[0]->code, NQ__V1__CODE__OK);
	check_precond(r->extend->results[1]);
}

static void fx_reply_version(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = (const void *)m;
	check_precond(r->status);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY__NOT_SET);
	assert_int_equal(r->n_versions, 1);
	assert_int_equal(r->versions[0], 1);
}

/* ---- fixtures of the fields and messages added for nq-dlq ---- */

static void fx_job_spec_replay(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	check_spec_fields(s);
	assert_string_equal(s->replay_of, NQT_ID);
}

static void fx_job_spec_group(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	check_spec_fields(s);
	assert_string_equal(s->replay_of, "");
	assert_string_equal(s->group_key, NQT_GROUP_KEY);
}

static void fx_job_spec_claim_check(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	check_spec_fields(s);
	assert_string_equal(s->payload_ref, NQT_PAYLOAD_REF);
	assert_int_equal(s->payload_size, NQT_CLAIM_CHECK_SIZE);
	assert_string_equal(s->payload_sha256, NQT_CLAIM_CHECK_SHA256);
}

/* ---- fixtures of unique scopes and nqctl list ---- */

static void fx_job_spec_unique(const ProtobufCMessage *m)
{
	Nq__V1__JobSpec s = *(const Nq__V1__JobSpec *)m;
	assert_string_equal(s.idempotency_key, NQT_UNIQUE_KEY);
	assert_non_null(s.unique);
	assert_int_equal(
	    s.unique->scope, NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_ACTIVE);
	assert_int_equal(s.unique->window_ms, NQT_UNIQUE_BOUND_MS);
	assert_string_equal(s.replay_of, "");
	assert_string_equal(s.group_key, "");
	s.idempotency_key = (char *)NQT_IDEMPOTENCY_KEY;
	check_spec_fields(&s);
}

static void fx_request_list_type(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = request_of(m, NQ__V1__REQUEST__BODY_LIST);
	assert_string_equal(r->list->queue, NQT_QUEUE);
	assert_string_equal(r->list->type, NQT_TYPE);
	assert_int_equal(r->list->state, 0);
	assert_int_equal(r->list->limit, NQT_LIST_LIMIT);
	assert_string_equal(r->list->after_id, "");
}

static void fx_reply_list_page(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_LIST);
	check_two_jobs(r->list->n_jobs, r->list->jobs);
	assert_string_equal(r->list->next_after_id, NQT_ID2);
}

static void fx_completion_batch_schema(const ProtobufCMessage *m)
{
	const Nq__V1__CompletionBatch *b = (const void *)m;
	assert_int_equal(b->version, 1);
	assert_string_equal(b->token, NQT_TOKEN);
	assert_string_equal(b->worker_id, NQT_WORKER);
	assert_int_equal(b->n_completions, 1);
	const Nq__V1__Completion *c = b->completions[0];
	assert_string_equal(c->id, NQT_ID2);
	assert_int_equal(c->lease_token, NQT_LEASE_TOKEN2);
	assert_int_equal(c->outcome, NQ__V1__OUTCOME__OUTCOME_FAILED);
	assert_int_equal(c->result.len, 0);
	assert_string_equal(c->error, NQT_SCHEMA_ERROR);
	assert_true(c->non_retryable);
	assert_true(c->schema_rejected);
	assert_int_equal(c->retry_after_ms, 0);
	assert_int_equal(c->started_us, NQT_STARTED_US);
	assert_int_equal(c->finished_us, NQT_FINISHED_US);
}

static void fx_queue_config(const ProtobufCMessage *m)
{
	const Nq__V1__QueueConfig *q = (const void *)m;
	assert_true(q->paused);
	assert_int_equal(q->max_attempts, NQT_MAX_ATTEMPTS);
	assert_int_equal(q->result_ttl_ms, NQT_RESULT_TTL_MS);
	assert_int_equal(q->max_depth, NQT_MAX_DEPTH);
}

static void fx_job_lease_patch(const ProtobufCMessage *m)
{
	const Nq__V1__JobLeasePatch *p = (const void *)m;
	assert_int_equal(p->state, NQ__V1__JOB_STATE__JOB_STATE_LEASED);
	assert_int_equal(p->attempt, NQT_MAX_ATTEMPTS);
	assert_int_equal(p->started_us, NQT_STARTED_US);
	assert_int_equal(p->lease_token, NQT_LEASE_TOKEN);
	assert_int_equal(p->lease_expires_us, NQT_LEASE_EXPIRES_US);
	assert_string_equal(p->worker_id, NQT_WORKER);
}

static void fx_job_success_patch(const ProtobufCMessage *m)
{
	const Nq__V1__JobSuccessPatch *p = (const void *)m;
	assert_int_equal(p->state, NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
	assert_int_equal(p->finished_us, NQT_FINISHED_US);
	assert_int_equal(p->result.len, NQT_RESULT_LEN);
	assert_memory_equal(p->result.data, NQT_RESULT, NQT_RESULT_LEN);
}

static void fx_new_job_record(const ProtobufCMessage *m)
{
	const Nq__V1__NewJobRecord *r = (const void *)m;
	assert_string_equal(r->id, NQT_ID);
	assert_int_equal(r->state, NQ__V1__JOB_STATE__JOB_STATE_READY);
	assert_int_equal(r->max_attempts, NQT_MAX_ATTEMPTS);
	assert_int_equal(r->created_us, NQT_CREATED_US);
	assert_int_equal(r->run_at_us, NQT_RUN_AT_US);
	assert_int_equal(r->timeout_ms, NQT_TIMEOUT_MS);
}

/* The dead job whose payload schema no worker served. */
static void check_job_schema(const Nq__V1__Job *j)
{
	assert_non_null(j);
	assert_string_equal(j->id, NQT_ID2);
	check_spec_min(j->spec);
	assert_int_equal(j->state, NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	assert_int_equal(j->attempt, 1);
	assert_int_equal(j->max_attempts, 10);
	assert_int_equal(j->created_us, NQT_CREATED_US);
	assert_int_equal(j->run_at_us, NQT_CREATED_US);
	assert_int_equal(j->started_us, NQT_STARTED_US);
	assert_int_equal(j->finished_us, NQT_FINISHED_US);
	assert_int_equal(j->result.len, 0);
	assert_int_equal(j->n_errors, 1);
	assert_int_equal(j->errors[0]->attempt, 1);
	assert_int_equal(j->errors[0]->at_us, NQT_FINISHED_US);
	assert_string_equal(j->errors[0]->message, NQT_SCHEMA_ERROR);
	assert_false(j->errors[0]->retryable);
	assert_string_equal(j->errors[0]->worker_id, NQT_WORKER);
	assert_int_equal(j->lease_token, 0);
	assert_string_equal(j->worker_id, "");
	assert_string_equal(j->dead_reason, NQT_SCHEMA_REASON);
	assert_int_equal(j->timeout_ms, 300000);
}

static void check_dead(const Nq__V1__DeadJob *d)
{
	assert_non_null(d);
	check_job(d->job);
	assert_string_equal(d->reason, NQT_DEAD_REASON);
	assert_int_equal(d->dead_at_us, NQT_FINISHED_US);
	assert_int_equal(d->stored_at_us, NQT_STORED_US);
	assert_int_equal(d->replays, NQT_REPLAYS);
	assert_string_equal(d->replayed_as, NQT_ID3);
}

static void check_dead_schema(const Nq__V1__DeadJob *d)
{
	assert_non_null(d);
	check_job_schema(d->job);
	assert_string_equal(d->reason, NQT_SCHEMA_REASON);
	assert_int_equal(d->dead_at_us, NQT_FINISHED_US);
	assert_int_equal(d->stored_at_us, NQT_STORED_US);
	assert_int_equal(d->replays, 0);
	assert_string_equal(d->replayed_as, "");
}

static void fx_job_in_dlq(const ProtobufCMessage *m)
{
	const Nq__V1__Job *j = (const void *)m;
	check_job_schema(j);
	assert_true(j->in_dlq);
}

static void fx_queue_stats_limits(const ProtobufCMessage *m)
{
	const Nq__V1__QueueStats *q = (const void *)m;
	assert_string_equal(q->queue, NQT_QUEUE);
	assert_int_equal(q->ready, NQT_THROTTLED);
	assert_int_equal(q->leased, NQT_IN_FLIGHT_LIMIT);
	assert_int_equal(q->in_flight_limit, NQT_IN_FLIGHT_LIMIT);
	assert_int_equal(q->tokens, NQT_TOKENS);
	assert_int_equal(q->breaker_state, 2);
	assert_int_equal(q->throttled, NQT_THROTTLED);
}

static void fx_job_event_breaker(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_int_equal(e->seq, NQT_EVENT_SEQ);
	assert_string_equal(e->kind, "breaker_opened");
	assert_string_equal(e->id, "");
	assert_string_equal(e->queue, NQT_QUEUE);
	assert_int_equal(e->at_us, NQT_FINISHED_US);
	assert_true(e->failure_ratio == NQT_FAILURE_RATIO);
}

static void fx_reply_stats_workers(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = (const void *)m;
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_STATS);
	assert_int_equal(r->stats->n_workers, 1);
	const Nq__V1__WorkerStats *w = r->stats->workers[0];
	assert_string_equal(w->worker_id, NQT_WORKER);
	assert_int_equal(w->n_queues, 2);
	assert_string_equal(w->queues[1], NQT_QUEUE2);
	assert_int_equal(w->free_slots, 3);
	assert_int_equal(w->leased, 5);
	assert_int_equal(w->last_seen_us, NQT_CREATED_US);
	assert_int_equal(w->fetches, 7);
}

static void fx_queue_stats_groups(const ProtobufCMessage *m)
{
	const Nq__V1__QueueStats *q = (const void *)m;
	assert_string_equal(q->queue, NQT_QUEUE);
	assert_int_equal(q->ready, NQT_THROTTLED + NQT_TOKENS);
	assert_int_equal(q->n_groups, 2);
	assert_string_equal(q->groups[0]->group, NQT_GROUP_KEY);
	assert_int_equal(q->groups[0]->ready, NQT_THROTTLED);
	assert_int_equal(q->groups[0]->leased, NQT_IN_FLIGHT_LIMIT);
	assert_string_equal(q->groups[1]->group, "other");
	assert_int_equal(q->groups[1]->ready, NQT_TOKENS);
	assert_int_equal(q->groups[1]->leased, 0);
}

static void fx_job_spec_control(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	assert_string_equal(s->queue, NQT_QUEUE);
	assert_int_equal(s->finish_within_ms, NQT_FINISH_WITHIN_MS);
}

static void fx_job_control(const ProtobufCMessage *m)
{
	const Nq__V1__Job *j = (const void *)m;
	assert_string_equal(j->id, NQT_ID);
	assert_true(j->cancel_requested);
	assert_int_equal(j->progress_pct, NQT_PROGRESS_PCT);
	assert_string_equal(j->progress_note, NQT_PROGRESS_NOTE);
	assert_int_equal(j->progress_at_us, NQT_FINISHED_US);
}

static void fx_job_event_progress(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_string_equal(e->kind, "progress");
	assert_string_equal(e->id, NQT_ID);
	assert_int_equal(e->progress_pct, NQT_PROGRESS_PCT);
	assert_string_equal(e->progress_note, NQT_PROGRESS_NOTE);
}

static void fx_request_cancel_bulk(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = (const void *)m;
	assert_int_equal(r->body_case, NQ__V1__REQUEST__BODY_CANCEL);
	assert_string_equal(r->cancel->id, "");
	assert_string_equal(r->cancel->queue, NQT_QUEUE);
	assert_int_equal(r->cancel->state, NQ__V1__JOB_STATE__JOB_STATE_LEASED);
	assert_string_equal(r->cancel->type, NQT_TYPE);
}

static void fx_reply_cancel_bulk(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = (const void *)m;
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_CANCEL);
	assert_null(r->cancel->job);
	assert_int_equal(r->cancel->canceled, NQT_CANCELED);
}

static void fx_request_extend_progress(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r = (const void *)m;
	assert_int_equal(r->body_case, NQ__V1__REQUEST__BODY_EXTEND);
	assert_int_equal(r->extend->n_leases, 1);
	const Nq__V1__JobProgress *p = r->extend->leases[0]->progress;
	assert_non_null(p);
	assert_int_equal(p->pct, NQT_PROGRESS_PCT);
	assert_string_equal(p->note, NQT_PROGRESS_NOTE);
}

static void fx_reply_extend_stop(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = (const void *)m;
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_EXTEND);
	assert_int_equal(r->extend->n_results, 2);
	assert_int_equal(r->extend->n_stop, 2);
	assert_false(r->extend->stop[0]);
	assert_true(r->extend->stop[1]);
}

static void fx_job_event_limit(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_int_equal(e->seq, NQT_EVENT_SEQ);
	assert_string_equal(e->kind, "limit_reached");
	assert_string_equal(e->id, "");
	assert_string_equal(e->queue, NQT_QUEUE);
	assert_int_equal(e->at_us, NQT_FINISHED_US);
	assert_string_equal(e->limit, "max_in_flight");
	assert_true(e->failure_ratio == 0);
}

/* The two runtime values of the policy samples. */
static void check_settings(size_t n, Nq__V1__PolicySetting *const *s)
{
	assert_int_equal(n, 2);
	assert_string_equal(s[0]->key, "timeout");
	assert_string_equal(s[0]->value, "30s");
	assert_string_equal(s[1]->key, "types");
	assert_string_equal(s[1]->value, "send,bounce");
}

static void fx_queue_config_policy(const ProtobufCMessage *m)
{
	const Nq__V1__QueueConfig *q = (const void *)m;
	assert_true(q->paused);
	check_settings(q->n_policy, q->policy);
}

static void fx_request_policy_get(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r =
	    request_of(m, NQ__V1__REQUEST__BODY_POLICY_GET);
	assert_string_equal(r->policy_get->queue, NQT_QUEUE);
}

static void fx_request_policy_set(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r =
	    request_of(m, NQ__V1__REQUEST__BODY_POLICY_SET);
	assert_string_equal(r->policy_set->queue, NQT_QUEUE);
	check_settings(r->policy_set->n_settings, r->policy_set->settings);
}

static void fx_request_policy_reset(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r =
	    request_of(m, NQ__V1__REQUEST__BODY_POLICY_RESET);
	assert_string_equal(r->policy_reset->queue, NQT_QUEUE);
	assert_int_equal(r->policy_reset->n_keys, 2);
	assert_string_equal(r->policy_reset->keys[1], "types");
}

static void check_policy_reply(const Nq__V1__QueuePolicyReply *p)
{
	assert_int_equal(p->n_queues, 1);
	assert_string_equal(p->queues[0]->queue, NQT_QUEUE);
	assert_int_equal(p->queues[0]->n_values, 2);
	assert_string_equal(p->queues[0]->values[0]->value, "30s");
	assert_string_equal(p->queues[0]->values[0]->source, "runtime");
	assert_string_equal(p->queues[0]->values[1]->key, "rate");
}

static void fx_reply_policy_get(const ProtobufCMessage *m)
{
	check_policy_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_POLICY_GET)->policy_get);
}

static void fx_reply_policy_set(const ProtobufCMessage *m)
{
	check_policy_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_POLICY_SET)->policy_set);
}

static void fx_reply_policy_reset(const ProtobufCMessage *m)
{
	check_policy_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_POLICY_RESET)->policy_reset);
}

static void fx_job_spec_schedule(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	check_spec_fields(s);
	assert_string_equal(s->group_key, "");
	assert_string_equal(s->schedule, NQT_CRON_NAME);
}

static void check_spec_depends(const Nq__V1__JobSpec *s)
{
	check_spec_fields(s);
	assert_int_equal(s->depends->n_depends_on, 2);
	assert_string_equal(s->depends->depends_on[0], NQT_ID);
	assert_string_equal(s->depends->depends_on[1], NQT_ID2);
	assert_int_equal(s->depends->on_parent_failure,
	    NQ__V1__PARENT_FAILURE__PARENT_FAILURE_RUN);
	assert_int_equal(s->depends->n_depends_on_index, 1);
	assert_int_equal(s->depends->depends_on_index[0], NQT_DEP_INDEX);
}

static void fx_job_spec_depends(const ProtobufCMessage *m)
{
	check_spec_depends((const void *)m);
}

static void fx_job_depends(const ProtobufCMessage *m)
{
	const Nq__V1__Job *j = (const void *)m;
	check_spec_depends(j->spec);
	assert_int_equal(j->state, NQ__V1__JOB_STATE__JOB_STATE_WAITING);
	assert_int_equal(j->family->n_children, 1);
	assert_string_equal(j->family->children[0], NQT_ID2);
	assert_int_equal(j->family->waiting_on, NQT_DEP_WAITING_ON);
	assert_int_equal(j->family->n_parent_results, 2);
	assert_true(j->family->parent_results[1]->result_dropped);
	assert_string_equal(j->family->parent_results[0]->id, NQT_ID);
	assert_int_equal(j->family->parent_results[0]->state,
	    NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
	assert_memory_equal(j->family->parent_results[0]->result.data,
	    NQT_DEP_RESULT, sizeof NQT_DEP_RESULT - 1);
}

static void fx_job_event_dependency_failed(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_string_equal(e->kind, "dependency_failed");
	assert_string_equal(e->id, NQT_ID);
	assert_string_equal(e->error, NQT_DEP_ERROR);
}

static void fx_request_enqueue_chain(const ProtobufCMessage *m)
{
	const Nq__V1__EnqueueRequest *e =
	    request_of(m, NQ__V1__REQUEST__BODY_ENQUEUE)->enqueue;
	assert_true(e->all_or_none);
	assert_int_equal(e->n_jobs, 2);
	check_spec_depends(e->jobs[1]);
}

static void fx_queue_stats_waiting(const ProtobufCMessage *m)
{
	const Nq__V1__QueueStats *q = (const void *)m;
	assert_string_equal(q->queue, NQT_QUEUE);
	assert_int_equal(q->waiting, NQT_DEP_WAITING_ON);
}

static void fx_queue_stats_latency(const ProtobufCMessage *m)
{
	const Nq__V1__QueueStats *q = (const void *)m;
	assert_string_equal(q->queue, NQT_QUEUE);
	assert_int_equal(q->wait_p50_us, NQT_LAT_WAIT_P50_US);
	assert_int_equal(q->wait_p99_us, NQT_LAT_WAIT_P99_US);
	assert_int_equal(q->wait_window_jobs, NQT_LAT_WAIT_JOBS);
	assert_int_equal(q->run_p50_us, NQT_LAT_RUN_P50_US);
	assert_int_equal(q->run_p99_us, NQT_LAT_RUN_P99_US);
	assert_int_equal(q->run_window_jobs, NQT_LAT_RUN_JOBS);
}

static void check_batch(const Nq__V1__Batch *r)
{
	assert_string_equal(r->id, NQT_BATCH_ID);
	assert_int_equal(r->created_us, NQT_CREATED_US);
	assert_true(r->sealed);
	assert_int_equal(r->total, NQT_BATCH_TOTAL);
	assert_int_equal(r->succeeded, NQT_BATCH_TOTAL - 4);
	assert_int_equal(r->dead + r->canceled + r->expired, 3);
	check_spec_fields(r->on_success);
	check_spec_fields(r->on_complete);
	assert_string_equal(r->on_success_id, NQT_ID2);
	assert_string_equal(r->on_complete_id, NQT_ID3);
	assert_int_equal(r->completed_us, NQT_CRON_LAST_US);
	assert_true(r->cancel_requested);
	assert_int_equal(r->pending, 1);
	assert_int_equal(r->waiting + r->scheduled + r->ready + r->leased, 10);
}

static void fx_job_spec_batch(const ProtobufCMessage *m)
{
	const Nq__V1__JobSpec *s = (const void *)m;
	check_spec_fields(s);
	assert_int_equal(s->depends->n_depends_on, 0);
	assert_string_equal(s->depends->batch_id, NQT_BATCH_ID);
}

static void fx_batch(const ProtobufCMessage *m)
{
	check_batch((const void *)m);
}

static void check_batch_create(const Nq__V1__BatchCreateRequest *c)
{
	check_spec_fields(c->on_success);
	check_spec_fields(c->on_complete);
	assert_true(c->seal);
}

static void fx_request_batch_create(const ProtobufCMessage *m)
{
	check_batch_create(
	    request_of(m, NQ__V1__REQUEST__BODY_BATCH_CREATE)->batch_create);
}

static void fx_request_batch_seal(const ProtobufCMessage *m)
{
	assert_string_equal(
	    request_of(m, NQ__V1__REQUEST__BODY_BATCH_SEAL)->batch_seal->id,
	    NQT_BATCH_ID);
}

static void fx_request_batch_get(const ProtobufCMessage *m)
{
	assert_string_equal(
	    request_of(m, NQ__V1__REQUEST__BODY_BATCH_GET)->batch_get->id,
	    NQT_BATCH_ID);
}

static void fx_request_batch_list(const ProtobufCMessage *m)
{
	const Nq__V1__BatchListRequest *l =
	    request_of(m, NQ__V1__REQUEST__BODY_BATCH_LIST)->batch_list;
	assert_int_equal(l->limit, NQT_DLQ_LIMIT);
	assert_string_equal(l->after_id, NQT_BATCH_ID);
}

static void fx_request_batch_cancel(const ProtobufCMessage *m)
{
	assert_string_equal(
	    request_of(m, NQ__V1__REQUEST__BODY_BATCH_CANCEL)->batch_cancel->id,
	    NQT_BATCH_ID);
}

static void fx_request_enqueue_batch(const ProtobufCMessage *m)
{
	const Nq__V1__EnqueueRequest *e =
	    request_of(m, NQ__V1__REQUEST__BODY_ENQUEUE)->enqueue;
	assert_int_equal(e->n_jobs, 1);
	check_batch_create(e->batch);
}

static void check_batch_reply(const Nq__V1__BatchReply *r)
{
	check_batch(r->batch);
	assert_int_equal(r->canceled, 1);
}

static void fx_reply_batch_create(const ProtobufCMessage *m)
{
	check_batch_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_BATCH_CREATE)->batch_create);
}

static void fx_reply_batch_seal(const ProtobufCMessage *m)
{
	check_batch_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_BATCH_SEAL)->batch_seal);
}

static void fx_reply_batch_get(const ProtobufCMessage *m)
{
	check_batch_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_BATCH_GET)->batch_get);
}

static void fx_reply_batch_cancel(const ProtobufCMessage *m)
{
	check_batch_reply(
	    reply_of(m, NQ__V1__REPLY__BODY_BATCH_CANCEL)->batch_cancel);
}

static void fx_reply_batch_list(const ProtobufCMessage *m)
{
	const Nq__V1__BatchListReply *l =
	    reply_of(m, NQ__V1__REPLY__BODY_BATCH_LIST)->batch_list;
	assert_int_equal(l->n_batches, 1);
	check_batch(l->batches[0]);
	assert_string_equal(l->next_after_id, NQT_BATCH_ID);
}

static void fx_reply_enqueue_batch(const ProtobufCMessage *m)
{
	const Nq__V1__EnqueueReply *e =
	    reply_of(m, NQ__V1__REPLY__BODY_ENQUEUE)->enqueue;
	assert_int_equal(e->n_results, 1);
	assert_string_equal(e->results[0]->id, NQT_ID);
	assert_string_equal(e->batch_id, NQT_BATCH_ID);
}

static void fx_job_event_batch_completed(const ProtobufCMessage *m)
{
	const Nq__V1__JobEvent *e = (const void *)m;
	assert_string_equal(e->kind, "batch_completed");
	assert_string_equal(e->id, NQT_ID);
	assert_string_equal(e->batch_id, NQT_BATCH_ID);
}

static void fx_cron_state(const ProtobufCMessage *m)
{
	const Nq__V1__CronState *s = (const void *)m;
	assert_int_equal(s->tick_us, NQT_CRON_LAST_US);
	assert_int_equal(s->job_id, NQT_CRON_JOB_ID);
}

static void fx_request_cron_list(const ProtobufCMessage *m)
{
	assert_non_null(
	    request_of(m, NQ__V1__REQUEST__BODY_CRON_LIST)->cron_list);
}

static void fx_request_cron_trigger(const ProtobufCMessage *m)
{
	assert_string_equal(request_of(m, NQ__V1__REQUEST__BODY_CRON_TRIGGER)
	                        ->cron_trigger->name,
	    NQT_CRON_NAME);
}

static void fx_reply_cron_list(const ProtobufCMessage *m)
{
	const Nq__V1__CronListReply *l =
	    reply_of(m, NQ__V1__REPLY__BODY_CRON_LIST)->cron_list;
	assert_int_equal(l->n_schedules, 1);
	const Nq__V1__CronSchedule *s = l->schedules[0];
	assert_string_equal(s->name, NQT_CRON_NAME);
	assert_string_equal(s->cron, NQT_CRON_EXPR);
	assert_string_equal(s->zone, NQT_CRON_ZONE);
	assert_string_equal(s->queue, NQT_QUEUE);
	assert_string_equal(s->type, NQT_TYPE);
	assert_string_equal(s->missed, "once");
	assert_int_equal(s->last_tick_us, NQT_CRON_LAST_US);
	assert_int_equal(s->next_tick_us, NQT_CRON_NEXT_US);
	assert_string_equal(s->last_job_id, NQT_ID);
	assert_int_equal(
	    s->last_job_state, NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
}

static void fx_reply_cron_trigger(const ProtobufCMessage *m)
{
	assert_string_equal(
	    reply_of(m, NQ__V1__REPLY__BODY_CRON_TRIGGER)->cron_trigger->id,
	    NQT_ID);
}

static void fx_dead_job(const ProtobufCMessage *m)
{
	check_dead((const Nq__V1__DeadJob *)m);
}

static void fx_request_dlq_ingest(const ProtobufCMessage *m)
{
	const Nq__V1__DlqIngestRequest *in =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_INGEST)->dlq_ingest;
	assert_int_equal(in->n_jobs, 2);
	check_dead(in->jobs[0]);
	check_dead_schema(in->jobs[1]);
}

static void fx_request_dlq_list(const ProtobufCMessage *m)
{
	const Nq__V1__DlqListRequest *l =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_LIST)->dlq_list;
	assert_string_equal(l->queue, NQT_QUEUE2);
	assert_string_equal(l->type, NQT_TYPE);
	assert_string_equal(l->reason, NQT_SCHEMA_REASON);
	assert_int_equal(l->since_us, NQT_SINCE_US);
	assert_int_equal(l->limit, NQT_DLQ_LIMIT);
	assert_string_equal(l->before_id, NQT_ID3);
}

static void fx_request_dlq_show(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_SHOW);
	assert_string_equal(r->dlq_show->id, NQT_ID);
}

static void check_two_ids(size_t n, char **ids)
{
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], NQT_ID);
	assert_string_equal(ids[1], NQT_ID2);
}

static void fx_request_dlq_replay(const ProtobufCMessage *m)
{
	const Nq__V1__DlqReplayRequest *p =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_REPLAY)->dlq_replay;
	check_two_ids(p->n_ids, p->ids);
	assert_false(p->all);
	assert_string_equal(p->queue, "");
	/* Exact: a double crosses the wire as its 8 bytes. */
	assert_true(p->rate_per_s == NQT_REPLAY_RATE);
}

static void fx_request_dlq_replay_all(const ProtobufCMessage *m)
{
	const Nq__V1__DlqReplayRequest *p =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_REPLAY)->dlq_replay;
	assert_int_equal(p->n_ids, 0);
	assert_true(p->all);
	assert_string_equal(p->queue, NQT_QUEUE);
	assert_true(p->rate_per_s == 0);
}

static void fx_request_dlq_purge(const ProtobufCMessage *m)
{
	const Nq__V1__DlqPurgeRequest *p =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_PURGE)->dlq_purge;
	check_two_ids(p->n_ids, p->ids);
	assert_false(p->all);
	assert_int_equal(p->older_than_ms, 0);
	assert_string_equal(p->queue, "");
}

static void fx_request_dlq_purge_all(const ProtobufCMessage *m)
{
	const Nq__V1__DlqPurgeRequest *p =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_PURGE)->dlq_purge;
	assert_int_equal(p->n_ids, 0);
	assert_true(p->all);
	assert_int_equal(p->older_than_ms, NQT_OLDER_THAN_MS);
	assert_string_equal(p->queue, NQT_QUEUE2);
}

/* The body has no fields: its presence is the whole request. */
static void fx_request_dlq_stats(const ProtobufCMessage *m)
{
	const Nq__V1__Request *r =
	    request_of(m, NQ__V1__REQUEST__BODY_DLQ_STATS);
	assert_non_null(r->dlq_stats);
}

static void fx_reply_stats_dlq(const ProtobufCMessage *m)
{
	const Nq__V1__StatsReply *s =
	    reply_of(m, NQ__V1__REPLY__BODY_STATS)->stats;
	assert_int_equal(s->n_queues, 1);
	const Nq__V1__QueueStats *q = s->queues[0];
	assert_string_equal(q->queue, NQT_QUEUE);
	assert_int_equal(q->ready, 0);
	assert_int_equal(q->dead, NQT_DEAD_PENDING);
	assert_false(q->paused);
	assert_int_equal(
	    q->dead_total, NQT_DLQ_HANDED_TOTAL + NQT_DEAD_PENDING);
	assert_int_equal(q->dead_pending, NQT_DEAD_PENDING);
	assert_int_equal(q->dlq_handed_total, NQT_DLQ_HANDED_TOTAL);
	check_broker_stats(s->broker);
}

static void fx_reply_dlq_ingest(const ProtobufCMessage *m)
{
	const Nq__V1__DlqIngestReply *in =
	    reply_of(m, NQ__V1__REPLY__BODY_DLQ_INGEST)->dlq_ingest;
	assert_int_equal(in->n_results, 2);
	assert_int_equal(in->results[0]->code, NQ__V1__CODE__OK);
	assert_string_equal(in->results[0]->message, "");
	assert_int_equal(in->results[1]->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_string_equal(in->results[1]->message, NQT_INGEST_ERROR);
}

static void fx_reply_dlq_list(const ProtobufCMessage *m)
{
	const Nq__V1__DlqListReply *l =
	    reply_of(m, NQ__V1__REPLY__BODY_DLQ_LIST)->dlq_list;
	assert_int_equal(l->n_jobs, 1);
	check_dead_schema(l->jobs[0]);
	assert_string_equal(l->next_before_id, NQT_ID2);
}

static void fx_reply_dlq_show(const ProtobufCMessage *m)
{
	check_dead(reply_of(m, NQ__V1__REPLY__BODY_DLQ_SHOW)->dlq_show->job);
}

static void fx_reply_dlq_replay(const ProtobufCMessage *m)
{
	const Nq__V1__DlqReplayReply *p =
	    reply_of(m, NQ__V1__REPLY__BODY_DLQ_REPLAY)->dlq_replay;
	assert_int_equal(p->replayed, 1);
	assert_int_equal(p->failed, 1);
	assert_int_equal(p->n_results, 2);
	assert_non_null(p->results[0]->status);
	assert_int_equal(p->results[0]->status->code, NQ__V1__CODE__OK);
	assert_string_equal(p->results[0]->id, NQT_ID3);
	assert_false(p->results[0]->duplicate);
	assert_non_null(p->results[1]->status);
	assert_int_equal(p->results[1]->status->code, NQ__V1__CODE__NOT_FOUND);
	assert_string_equal(p->results[1]->status->message, NQT_REPLAY_ERROR);
	assert_string_equal(p->results[1]->id, "");
}

static void fx_reply_dlq_purge(const ProtobufCMessage *m)
{
	const Nq__V1__Reply *r = reply_of(m, NQ__V1__REPLY__BODY_DLQ_PURGE);
	assert_int_equal(r->dlq_purge->purged, 2);
}

static void fx_reply_dlq_stats(const ProtobufCMessage *m)
{
	const Nq__V1__DlqStatsReply *s =
	    reply_of(m, NQ__V1__REPLY__BODY_DLQ_STATS)->dlq_stats;
	assert_int_equal(s->n_entries, 2);
	assert_string_equal(s->entries[0]->queue, NQT_QUEUE);
	assert_string_equal(s->entries[0]->reason, NQT_DEAD_REASON);
	assert_int_equal(s->entries[0]->count, NQT_DLQ_COUNT1);
	assert_string_equal(s->entries[1]->queue, NQT_QUEUE2);
	assert_string_equal(s->entries[1]->reason, NQT_SCHEMA_REASON);
	assert_int_equal(s->entries[1]->count, NQT_DLQ_COUNT2);
	assert_int_equal(s->total, NQT_DLQ_COUNT1 + NQT_DLQ_COUNT2);
}

typedef struct fixture {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
	void (*check)(const ProtobufCMessage *m);
} fixture;

#define FX(n, d)                                                               \
	{                                                                      \
#n, &nq__v1__##d##__descriptor, fx_##n                         \
	}
static const fixture fixtures[] = {
    FX(status, status),
    FX(job_spec, job_spec),
    FX(job, job),
    FX(completion_batch, completion_batch),
    FX(job_event, job_event),
    FX(request_enqueue, request),
    FX(request_get, request),
    FX(request_wait, request),
    FX(request_cancel, request),
    FX(request_stats, request),
    FX(request_pause, request),
    FX(request_resume, request),
    FX(request_list, request),
    FX(request_fetch, request),
    FX(request_extend, request),
    FX(reply_enqueue, reply),
    FX(reply_get, reply),
    FX(reply_wait, reply),
    FX(reply_cancel, reply),
    FX(reply_stats, reply),
    FX(reply_queue, reply),
    FX(reply_list, reply),
    FX(reply_fetch, reply),
    FX(reply_extend, reply),
    FX(reply_version, reply),
    FX(job_spec_replay, job_spec),
    FX(job_spec_group, job_spec),
    FX(job_spec_claim_check, job_spec),
    FX(completion_batch_schema, completion_batch),
    FX(queue_config, queue_config),
    FX(event_batch, event_batch),
    FX(dead_job, dead_job),
    FX(request_dlq_ingest, request),
    FX(request_dlq_list, request),
    FX(request_dlq_show, request),
    FX(request_dlq_replay, request),
    FX(request_dlq_replay_all, request),
    FX(request_dlq_purge, request),
    FX(request_dlq_purge_all, request),
    FX(request_dlq_stats, request),
    FX(reply_stats_dlq, reply),
    FX(reply_dlq_ingest, reply),
    FX(reply_dlq_list, reply),
    FX(reply_dlq_show, reply),
    FX(reply_dlq_replay, reply),
    FX(reply_dlq_purge, reply),
    FX(reply_dlq_stats, reply),
    FX(job_lease_patch, job_lease_patch),
    FX(job_success_patch, job_success_patch),
    FX(new_job_record, new_job_record),
    FX(job_in_dlq, job),
    FX(queue_config_policy, queue_config),
    FX(request_policy_get, request),
    FX(request_policy_set, request),
    FX(request_policy_reset, request),
    FX(reply_policy_get, reply),
    FX(reply_policy_set, reply),
    FX(reply_policy_reset, reply),
    FX(queue_stats_limits, queue_stats),
    FX(job_event_breaker, job_event),
    FX(queue_stats_groups, queue_stats),
    FX(job_event_limit, job_event),
    FX(job_spec_unique, job_spec),
    FX(request_list_type, request),
    FX(reply_list_page, reply),
    FX(job_spec_control, job_spec),
    FX(job_control, job),
    FX(job_event_progress, job_event),
    FX(request_cancel_bulk, request),
    FX(reply_cancel_bulk, reply),
    FX(request_extend_progress, request),
    FX(reply_extend_stop, reply),
    FX(cron_state, cron_state),
    FX(job_spec_schedule, job_spec),
    FX(request_cron_list, request),
    FX(request_cron_trigger, request),
    FX(reply_cron_list, reply),
    FX(reply_cron_trigger, reply),
    FX(job_spec_depends, job_spec),
    FX(job_depends, job),
    FX(job_event_dependency_failed, job_event),
    FX(queue_stats_waiting, queue_stats),
    FX(queue_stats_latency, queue_stats),
    FX(request_enqueue_chain, request),
    FX(reply_stats_workers, reply),
    FX(job_spec_batch, job_spec),
    FX(batch, batch),
    FX(request_batch_create, request),
    FX(request_batch_seal, request),
    FX(request_batch_get, request),
    FX(request_batch_list, request),
    FX(request_batch_cancel, request),
    FX(request_enqueue_batch, request),
    FX(reply_batch_create, reply),
    FX(reply_batch_seal, reply),
    FX(reply_batch_get, reply),
    FX(reply_batch_list, reply),
    FX(reply_batch_cancel, reply),
    FX(reply_enqueue_batch, reply),
    FX(job_event_batch_completed, job_event),
};

/* ---- tests ---- */

static void test_codec_samples_cover_every_field_of_every_message(void **st)
{
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	nqt_coverage *cov = nqt_coverage_new();
	char missing[256];
	assert_non_null(cov);
	for (size_t i = 0; i < n; i++)
		nqt_coverage_add(cov, s[i].msg);
	bool complete = nqt_coverage_complete(cov, missing, sizeof missing);
	nqt_coverage_free(cov);
	if (!complete)
		fail_msg("no sample sets %s", missing);
}

static void test_codec_every_sample_round_trips(void **st)
{
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *buf = pack(s[i].msg, &len);
		assert_int_equal(
		    len, protobuf_c_message_get_packed_size(s[i].msg));
		ProtobufCMessage *back =
		    unpack_as(s[i].msg->descriptor, buf, len);
		if (!back)
			fail_msg("%s does not decode after packing", s[i].name);
		assert_msg_equal(s[i].msg, back, s[i].name);
		protobuf_c_message_free_unpacked(back, NULL);
		free(buf);
	}
}

static void test_codec_msg_pack_puts_prefix_before_message(void **st)
{
	const char topic[] = "job.dead." NQT_QUEUE;
	const ProtobufCMessage *ev = nqt_sample_get("job_event");
	nng_msg *msg = NULL;
	size_t plen, tlen = strlen(topic);
	assert_non_null(ev);
	uint8_t *packed = pack(ev, &plen);
	assert_int_equal(nqi_msg_pack(ev, topic, tlen, &msg), NQ_OK);
	assert_int_equal(nng_msg_len(msg), tlen + plen);
	const uint8_t *body = nng_msg_body(msg);
	assert_memory_equal(body, topic, tlen);
	assert_memory_equal(body + tlen, packed, plen);
	ProtobufCMessage *back = unpack_as(ev->descriptor, body + tlen, plen);
	assert_non_null(back);
	assert_msg_equal(ev, back, "event after topic");
	protobuf_c_message_free_unpacked(back, NULL);
	nng_msg_free(msg);
	free(packed);
}

static void test_codec_msg_pack_without_prefix_is_plain(void **st)
{
	const ProtobufCMessage *req = nqt_sample_get("request_enqueue");
	nng_msg *msg = NULL;
	size_t plen;
	uint8_t *packed = pack(req, &plen);
	assert_int_equal(nqi_msg_pack(req, NULL, 0, &msg), NQ_OK);
	assert_int_equal(nng_msg_len(msg), plen);
	assert_memory_equal(nng_msg_body(msg), packed, plen);
	nng_msg_free(msg);
	free(packed);
}

static void test_codec_empty_message_packs_to_nothing(void **st)
{
	Nq__V1__Request empty = NQ__V1__REQUEST__INIT;
	size_t len = 99;
	uint8_t *buf = pack(&empty.base, &len);
	assert_int_equal(len, 0);
	Nq__V1__Request *back = nqi_request_unpack(buf, 0);
	assert_non_null(back);
	assert_int_equal(back->version, 0);
	assert_int_equal(back->body_case, NQ__V1__REQUEST__BODY__NOT_SET);
	nq__v1__request__free_unpacked(back, NULL);
	free(buf);
}

static void test_codec_every_sample_has_a_checked_fixture(void **st)
{
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	assert_int_equal(n, COUNT(fixtures));
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t k = 0; k < COUNT(fixtures); k++)
			found |= strcmp(fixtures[k].name, s[i].name) == 0;
		if (!found)
			fail_msg("sample %s has no fixture check", s[i].name);
	}
}

static void test_codec_fixtures_decode_to_their_values(void **st)
{
	for (size_t i = 0; i < COUNT(fixtures); i++) {
		size_t len, relen;
		uint8_t *buf = read_fixture(fixtures[i].name, &len);
		ProtobufCMessage *m = unpack_as(fixtures[i].desc, buf, len);
		if (!m)
			fail_msg(
			    "fixture %s no longer decodes", fixtures[i].name);
		fixtures[i].check(m);
		/* Nothing was dropped: the same bytes come out again. */
		uint8_t *again = pack(m, &relen);
		assert_int_equal(relen, len);
		assert_memory_equal(again, buf, len);
		free(again);
		protobuf_c_message_free_unpacked(m, NULL);
		free(buf);
	}
}

/* A sample whose values changed would no longer match the bytes committed
 * for it; this is what keeps "never change a sample" honest. */
static void test_codec_samples_pack_to_their_committed_fixtures(void **st)
{
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	for (size_t i = 0; i < n; i++) {
		size_t len, flen;
		uint8_t *buf = pack(s[i].msg, &len);
		uint8_t *fx = read_fixture(s[i].name, &flen);
		if (len != flen || memcmp(buf, fx, len) != 0)
			fail_msg(
			    "sample %s packs to %zu bytes that differ "
			    "from its committed fixture (%zu bytes): add a "
			    "new sample instead of changing this one",
			    s[i].name, len, flen);
		free(fx);
		free(buf);
	}
}

static bool descriptor_listed(const char *short_name)
{
	size_t n;
	const ProtobufCMessageDescriptor *const *d = nqt_descriptors(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i]->short_name, short_name) == 0)
			return true;
	return false;
}

/* Fails the test for every "message Name" of the file that the coverage
 * list lacks; returns how many messages the file declares. */
static size_t proto_messages_listed(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024], name[128];
	size_t declared = 0;
	if (!f)
		fail_msg("cannot read %s", path);
	while (fgets(line, sizeof line, f)) {
		const char *p = line + strspn(line, " \t");
		if (strncmp(p, "message", 7) != 0 || !strchr(" \t", p[7]))
			continue;
		p += 7 + strspn(p + 7, " \t");
		size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                       "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (len == 0 || len >= sizeof name)
			fail_msg("%s: cannot read the message name in: %s",
			    path, line);
		memcpy(name, p, len);
		name[len] = '\0';
		declared++;
		if (!descriptor_listed(name))
			fail_msg(
			    "%s declares message %s, which the coverage "
			    "list (nqt_descriptors in tests/tools/samples.c) "
			    "lacks",
			    path, name);
	}
	fclose(f);
	return declared;
}

/* Coverage only checks the types it lists, so the list itself is checked
 * against the .proto files: a message added there must be added here. */
static void test_codec_coverage_lists_every_message_of_the_protos(void **st)
{
	const char *dir = NQ_FIXTURE_DIR "/../../../proto/nq/v1";
	char path[2048];
	size_t declared = 0, files = 0, listed;
	DIR *d = opendir(dir);
	if (!d)
		fail_msg("cannot open %s", dir);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		size_t len = strlen(e->d_name);
		if (len < 7 || strcmp(e->d_name + len - 6, ".proto") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		declared += proto_messages_listed(path);
		files++;
	}
	closedir(d);
	nqt_descriptors(&listed);
	assert_int_equal(files, 3);
	/* Equal counts: no message is listed twice. */
	assert_int_equal(declared, listed);
}

/*
 * A cut inside a field is malformed and must give NULL. A cut exactly at a
 * field boundary is a valid shorter message, so a decode that succeeds must
 * give back exactly the bytes it was handed.
 */
static void truncations_of(const fixture *fx)
{
	size_t len, rejected = 0;
	uint8_t *buf = read_fixture(fx->name, &len);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *part = malloc(cut ? cut : 1);
		assert_non_null(part);
		memcpy(part, buf, cut);
		ProtobufCMessage *m = unpack_as(fx->desc, part, cut);
		if (!m) {
			rejected++;
			free(part);
			continue;
		}
		size_t relen;
		uint8_t *again = pack(m, &relen);
		if (relen != cut || memcmp(again, part, cut) != 0)
			fail_msg(
			    "%s cut at %zu decoded as if whole", fx->name, cut);
		free(again);
		protobuf_c_message_free_unpacked(m, NULL);
		free(part);
	}
	if (len > 1 && rejected == 0)
		fail_msg("%s: no truncation was rejected", fx->name);
	free(buf);
}

static void test_codec_truncated_fixtures_are_rejected(void **st)
{
	for (size_t i = 0; i < COUNT(fixtures); i++)
		truncations_of(&fixtures[i]);
}

/* Each field of a patch is Job's field of the same name: same number, type
 * and label, neither repeated nor a message. */
static void assert_patch_of_job(const ProtobufCMessageDescriptor *patch)
{
	for (unsigned i = 0; i < patch->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &patch->fields[i];
		const ProtobufCFieldDescriptor *j =
		    protobuf_c_message_descriptor_get_field_by_name(
		        &nq__v1__job__descriptor, f->name);
		if (!j || j->id != f->id || j->type != f->type ||
		    j->label != f->label ||
		    f->type == PROTOBUF_C_TYPE_MESSAGE ||
		    f->label == PROTOBUF_C_LABEL_REPEATED)
			fail_msg("%s.%s is not Job.%s", patch->name, f->name,
			    f->name);
	}
}

/* A record with a patch appended decodes as the job with the patch's
 * fields changed, and no other, in one pass as through protobuf-c. */
static void test_codec_patches_appended_to_a_job_replace_its_fields(void **st)
{
	assert_patch_of_job(&nq__v1__job_lease_patch__descriptor);
	assert_patch_of_job(&nq__v1__job_success_patch__descriptor);
	assert_patch_of_job(&nq__v1__new_job_record__descriptor);
	const Nq__V1__Job *job = (const void *)nqt_sample_get("job");
	const ProtobufCMessage *patches[] = {nqt_sample_get("job_lease_patch"),
	    nqt_sample_get("job_success_patch")};
	size_t jlen, plen;
	uint8_t *jb = pack(&job->base, &jlen);
	for (size_t i = 0; i < COUNT(patches); i++) {
		uint8_t *pb = pack(patches[i], &plen);
		uint8_t *rec = malloc(jlen + plen);
		assert_non_null(rec);
		memcpy(rec, jb, jlen);
		memcpy(rec + jlen, pb, plen);
		Nq__V1__Job *got = nqi_job_unpack(rec, jlen + plen);
		assert_non_null(got);
		/* the broker reads its records in one pass (broker_job_read) */
		assert_true(assert_fast_agrees(
		    &nq__v1__job__descriptor, rec, jlen + plen, &got->base));
		if (i == 0) {
			const Nq__V1__JobLeasePatch *p =
			    (const void *)patches[i];
			assert_int_equal(got->state, p->state);
			assert_int_equal(got->lease_token, p->lease_token);
			assert_string_equal(got->worker_id, p->worker_id);
		} else {
			const Nq__V1__JobSuccessPatch *p =
			    (const void *)patches[i];
			assert_int_equal(got->state, p->state);
			assert_int_equal(got->finished_us, p->finished_us);
		}
		/* untouched fields keep their values */
		assert_string_equal(got->id, job->id);
		assert_int_equal(got->n_errors, job->n_errors);
		assert_string_equal(got->spec->queue, job->spec->queue);
		assert_int_equal(got->timeout_ms, job->timeout_ms);
		nq__v1__job__free_unpacked(got, NULL);
		free(rec);
		free(pb);
	}
	free(jb);
}

/* The broker ends a lease by clearing the fields of Job named lease_*
 * (broker/jobs.c), so a lease patch must set each of them, and each must
 * be one a patch can carry (assert_patch_of_job). */
static void test_codec_lease_patch_sets_every_lease_field_of_job(void **st)
{
	const ProtobufCMessageDescriptor *job = &nq__v1__job__descriptor;
	size_t n = 0;
	for (unsigned i = 0; i < job->n_fields; i++) {
		const char *name = job->fields[i].name;
		if (strncmp(name, "lease_", 6) != 0)
			continue;
		n++;
		if (!protobuf_c_message_descriptor_get_field_by_name(
		        &nq__v1__job_lease_patch__descriptor, name))
			fail_msg("JobLeasePatch has no %s: a lease would leave "
			         "the last one's",
			    name);
	}
	assert_true(n >= 2); /* lease_token, lease_expires_us */
}

/* The arena decoders the services use for requests, replies and
 * completions; NULL for other types. */
static ProtobufCMessage *unpack_arena_as(const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len, nqi_arena **a)
{
	*a = NULL;
	if (d == &nq__v1__request__descriptor)
		return (ProtobufCMessage *)nqi_request_unpack_arena(
		    buf, len, a);
	if (d == &nq__v1__reply__descriptor)
		return (ProtobufCMessage *)nqi_reply_unpack_arena(buf, len, a);
	if (d == &nq__v1__completion_batch__descriptor)
		return (ProtobufCMessage *)nqi_completions_unpack_arena(
		    buf, len, a);
	return NULL;
}

/* Decoding into an arena gives the same messages and refuses the same
 * truncations as the plain decoders. */
static void test_codec_arena_decoders_agree_with_plain_ones(void **st)
{
	size_t checked = 0;
	for (size_t i = 0; i < COUNT(fixtures); i++) {
		const fixture *fx = &fixtures[i];
		size_t len;
		nqi_arena *a;
		uint8_t *buf = read_fixture(fx->name, &len);
		ProtobufCMessage *m = unpack_arena_as(fx->desc, buf, len, &a);
		if (!a) {
			free(buf);
			continue;
		}
		assert_non_null(m);
		fx->check(m);
		ProtobufCMessage *plain = unpack_as(fx->desc, buf, len);
		assert_msg_equal(m, plain, fx->name);
		protobuf_c_message_free_unpacked(plain, NULL);
		nqi_arena_free(a);
		for (size_t cut = 0; cut < len; cut++) {
			plain = unpack_as(fx->desc, buf, cut);
			m = unpack_arena_as(fx->desc, buf, cut, &a);
			assert_int_equal(m != NULL, plain != NULL);
			assert_int_equal(a != NULL, m != NULL);
			if (plain)
				protobuf_c_message_free_unpacked(plain, NULL);
			nqi_arena_free(a);
		}
		free(buf);
		checked++;
	}
	assert_true(checked > 30);
}

/* Every sample of every message type decodes the same through the
 * one-pass decoder as through protobuf-c, where it takes it; it takes the
 * messages of the hot paths (a fetch reply's jobs, an enqueue, a batch of
 * completions), or they silently cost three passes again. */
static void test_codec_one_pass_decoder_agrees_and_takes_hot_messages(void **st)
{
	static const char *const hot[] = {"reply_fetch", "request_enqueue",
	    "completion_batch", "request_fetch", "job"};
	size_t n, taken = 0;
	const nqt_sample *s = nqt_samples(&n);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *buf = pack(s[i].msg, &len);
		const ProtobufCMessageDescriptor *d = s[i].msg->descriptor;
		ProtobufCMessage *plain =
		    protobuf_c_message_unpack(d, NULL, len, buf);
		assert_non_null(plain);
		taken += assert_fast_agrees(d, buf, len, plain);
		protobuf_c_message_free_unpacked(plain, NULL);
		free(buf);
	}
	assert_true(taken > n / 2);
	for (size_t i = 0; i < COUNT(hot); i++) {
		const ProtobufCMessage *m = nqt_sample_get(hot[i]);
		assert_non_null(m);
		size_t len;
		uint8_t *buf = pack(m, &len);
		ProtobufCMessage *plain =
		    protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
		if (!assert_fast_agrees(m->descriptor, buf, len, plain))
			fail_msg("the one-pass decoder gave %s away", hot[i]);
		protobuf_c_message_free_unpacked(plain, NULL);
		free(buf);
	}
}

/* nqi_flat_size and nqi_flat_pack give protobuf-c's bytes for m. */
static void assert_packs_like_protobuf_c(
    const nqi_flat_plan *plan, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
	assert_non_null(want);
	assert_non_null(got);
	protobuf_c_message_pack(m, want);
	assert_int_equal(nqi_flat_size(plan, m), n);
	assert_int_equal(nqi_flat_pack(plan, m, got), n);
	if (memcmp(want, got, n) != 0)
		fail_msg("%s packs to other bytes", m->descriptor->name);
	free(want);
	free(got);
}

/* Sets every singular number, string and bytes field of m to a random
 * value: often zero or empty, some negative or huge. */
static void fill_random(ProtobufCMessage *m, uint64_t *seed)
{
	static char pool[4][24] = {
	    "", "q", "worker-\xc3\xa9-1", "0123456789abcdefghij"};
	static uint8_t big[300];
	static const ProtobufCBinaryData bytes_pool[3] = {
	    {0, NULL}, {3, (uint8_t *)"a\0b"}, {sizeof big, big}};
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *v = (char *)m + f->offset;
		uint64_t r = rng_next(seed), x = rng_next(seed);
		uint64_t num = r % 4 == 0   ? 0
		               : r % 4 == 1 ? x % 200
		               : r % 4 == 2 ? ~(x % 3)
		                            : x;
		if (f->label != PROTOBUF_C_LABEL_NONE)
			continue;
		if (f->type == PROTOBUF_C_TYPE_UINT64 ||
		    f->type == PROTOBUF_C_TYPE_INT64)
			*(uint64_t *)v = num;
		else if (f->type == PROTOBUF_C_TYPE_UINT32 ||
		         f->type == PROTOBUF_C_TYPE_INT32 ||
		         f->type == PROTOBUF_C_TYPE_ENUM)
			*(uint32_t *)v = (uint32_t)num;
		else if (f->type == PROTOBUF_C_TYPE_BOOL)
			*(protobuf_c_boolean *)v =
			    (protobuf_c_boolean)(num % 2);
		else if (f->type == PROTOBUF_C_TYPE_STRING)
			*(char **)v = pool[x % 4];
		else if (f->type == PROTOBUF_C_TYPE_BYTES)
			*(ProtobufCBinaryData *)v = bytes_pool[x % 3];
	}
}

/* The plans of the messages the broker packs for every job take them and
 * give protobuf-c's bytes, for every sample and for random values; a spec
 * with a message set, or a type that is not flat, is packed by
 * protobuf-c. */
static void test_codec_flat_plans_pack_like_protobuf_c(void **st)
{
	static const ProtobufCMessageDescriptor *const flat[] = {
	    &nq__v1__job_lease_patch__descriptor,
	    &nq__v1__job_success_patch__descriptor,
	    &nq__v1__new_job_record__descriptor, &nq__v1__job_spec__descriptor};
	static uint8_t spec_raw[] = {0x0a, 1, 'q'};
	ProtobufCMessageUnknownField unknown = {
	    .tag = 2, .wire_type = 2, .len = sizeof spec_raw, .data = spec_raw};
	nqi_flat_plan plans[COUNT(flat)], job;
	for (size_t k = 0; k < COUNT(flat); k++)
		assert_true(nqi_flat_plan_init(&plans[k], flat[k]));
	assert_false(nqi_flat_plan_init(&job, &nq__v1__job__descriptor));
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	for (size_t i = 0; i < n; i++) {
		assert_packs_like_protobuf_c(&job, s[i].msg);
		for (size_t k = 0; k < COUNT(flat); k++)
			assert_packs_like_protobuf_c(&plans[k], s[i].msg);
	}
	uint64_t seed = 0xf1a7c0dec0ffee01ull;
	Nq__V1__Unique unique = NQ__V1__UNIQUE__INIT;
	for (int round = 0; round < 5000; round++) {
		Nq__V1__JobLeasePatch lp = NQ__V1__JOB_LEASE_PATCH__INIT;
		Nq__V1__JobSuccessPatch sp = NQ__V1__JOB_SUCCESS_PATCH__INIT;
		Nq__V1__NewJobRecord nr = NQ__V1__NEW_JOB_RECORD__INIT;
		Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT;
		ProtobufCMessage *ms[] = {
		    &lp.base, &sp.base, &nr.base, &spec.base};
		nr.base.n_unknown_fields = round % 2;
		nr.base.unknown_fields = &unknown;
		spec.unique = round % 3 == 0 ? &unique : NULL;
		for (size_t k = 0; k < COUNT(ms); k++) {
			fill_random(ms[k], &seed);
			assert_packs_like_protobuf_c(&plans[k], ms[k]);
		}
	}
}

/* A worker's completion batch packs to protobuf-c's bytes: the batch
 * sample, and random batches of 0 to 5 completions, or 100. */
static void test_codec_completions_pack_like_protobuf_c(void **st)
{
	const ProtobufCMessage *sample = nqt_sample_get("completion_batch");
	uint64_t seed = 0xc0de5eed0000b47cull;
	for (int round = 0; round < 2000; round++) {
		Nq__V1__CompletionBatch b = NQ__V1__COMPLETION_BATCH__INIT;
		Nq__V1__Completion c[100], *cs[100];
		const Nq__V1__CompletionBatch *m = (const void *)sample;
		if (round > 0) {
			fill_random(&b.base, &seed);
			b.n_completions = round % 100 == 1
			                      ? 100
			                      : (size_t)(rng_next(&seed) % 6);
			for (size_t i = 0; i < b.n_completions; i++) {
				nq__v1__completion__init(&c[i]);
				fill_random(&c[i].base, &seed);
				cs[i] = &c[i];
			}
			b.completions = cs;
			m = &b;
		}
		nng_msg *want, *got;
		assert_int_equal(nqi_msg_pack(&m->base, NULL, 0, &want), 0);
		assert_int_equal(nqi_completions_msg_pack(m, &got), 0);
		assert_int_equal(nng_msg_len(got), nng_msg_len(want));
		if (memcmp(nng_msg_body(got), nng_msg_body(want),
		        nng_msg_len(want)) != 0)
			fail_msg("round %d packs to other bytes", round);
		nng_msg_free(want);
		nng_msg_free(got);
	}
}

/* Encodings protobuf-c takes though no encoder writes them are read the
 * same by the one pass: a 10-byte varint for a small number, a negative
 * int32 in 10 bytes, a bool whose only set bit is past bit 63, a key
 * spelled in two bytes. */
static void test_codec_one_pass_decoder_reads_odd_encodings(void **st)
{
	static const uint8_t buf[] = {0x08, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80,
	    0x80, 0x80, 0x80, 0x00, NQ__V1__REQUEST__BODY_ENQUEUE << 3 | 2, 30,
	    /* EnqueueRequest: all_or_none (2), then jobs (1) */
	    0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
	    0x0a, 17,
	    /* JobSpec: queue "q", priority (6) -1, max_attempts (9) 3 */
	    0x0a, 1, 'q', 0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0x01, 0xc8, 0x00, 0x03};
	Nq__V1__Request *plain = nqi_request_unpack(buf, sizeof buf);
	assert_non_null(plain);
	if (!assert_fast_agrees(
	        &nq__v1__request__descriptor, buf, sizeof buf, &plain->base))
		fail_msg("the one-pass decoder gave the odd encodings away");
	assert_int_equal(plain->version, 1);
	assert_true(plain->enqueue->all_or_none);
	assert_int_equal(plain->enqueue->n_jobs, 1);
	assert_int_equal(plain->enqueue->jobs[0]->priority, -1);
	assert_int_equal(plain->enqueue->jobs[0]->max_attempts, 3);
	nq__v1__request__free_unpacked(plain, NULL);
}

/* An enqueue of one job, packed, with extra bytes appended; or the extra
 * bytes alone. */
static uint8_t *enqueue_with(
    const uint8_t *extra, size_t n, bool alone, size_t *len)
{
	uint8_t *buf =
	    alone ? malloc(1) : pack(nqt_sample_get("request_enqueue"), len);
	if (alone)
		*len = 0;
	buf = realloc(buf, *len + n);
	assert_non_null(buf);
	memcpy(buf + *len, extra, n);
	*len += n;
	return buf;
}

/* What the one-pass decoder does not do the way protobuf-c does it, it
 * leaves to protobuf-c: unknown fields are kept, a oneof given twice keeps
 * the last, a bad string is still refused. */
static void test_codec_one_pass_decoder_gives_way_to_protobuf_c(void **st)
{
	/* appended: field 99 (unknown); the body enqueue again (empty).
	 * Alone: an enqueue whose job's queue (JobSpec field 1 in field 1 of
	 * EnqueueRequest) holds a NUL; an enqueue whose job gives its
	 * message unique (JobSpec field 21, a two-byte key) twice, which
	 * protobuf-c merges. */
	static const uint8_t unknown[] = {0x9a, 0x06, 1, 'x'};
	const uint8_t body = NQ__V1__REQUEST__BODY_ENQUEUE << 3 | 2;
	uint8_t twice[] = {body, 0};
	uint8_t nul[] = {body, 5, 0x0a, 3, 0x0a, 1, 0};
	uint8_t merged[] = {body, 8, 0x0a, 6, 21 << 3 | 2 | 0x80, 1, 0,
	    21 << 3 | 2 | 0x80, 1, 0};
	const struct {
		const uint8_t *extra;
		size_t n;
		bool alone, refused;
	} cases[] = {{unknown, sizeof unknown, false, false},
	    {twice, sizeof twice, false, false}, {nul, sizeof nul, true, true},
	    {merged, sizeof merged, true, false}};
	assert_true(NQ__V1__REQUEST__BODY_ENQUEUE < 16);
	for (size_t i = 0; i < COUNT(cases); i++) {
		size_t len;
		nqi_arena *a, *fast_a = nqi_arena_new(64);
		uint8_t *buf = enqueue_with(
		    cases[i].extra, cases[i].n, cases[i].alone, &len);
		assert_null(nqi_pb_unpack_fast(
		    &nq__v1__request__descriptor, buf, len, fast_a));
		Nq__V1__Request *m = nqi_request_unpack_arena(buf, len, &a);
		Nq__V1__Request *plain = nqi_request_unpack(buf, len);
		assert_int_equal(m == NULL, cases[i].refused);
		assert_int_equal(plain == NULL, cases[i].refused);
		if (plain) {
			assert_msg_equal(&plain->base, &m->base, "request");
			nq__v1__request__free_unpacked(plain, NULL);
		}
		nqi_arena_free(a);
		nqi_arena_free(fast_a);
		free(buf);
	}
}

/* An arena hands out aligned, distinct memory of any size, and a reset
 * keeps blocks up to its limit for reuse. */
static void test_codec_arena_allocates_aligned_memory_of_any_size(void **st)
{
	nqi_arena a;
	nqi_arena_init(&a, 4096, 8192);
	char *first = nqi_arena_alloc(&a, 16);
	char *prev = NULL;
	for (size_t n = 1; n < 200000; n = n * 3 + 1) {
		char *p = nqi_arena_alloc(&a, n);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
		memset(p, 0x5a, n); /* ASan checks the whole range is ours */
		assert_true(p != prev);
		prev = p;
	}
	assert_string_equal(nqi_arena_strdup(&a, "queue"), "queue");
	nqi_arena_reset(&a);
	/* The first block is kept, and used again from its start. */
	char *again = nqi_arena_alloc(&a, 16);
	assert_ptr_equal(again, first);
	memset(again, 0, 16);
	nqi_arena_fini(&a);

	/* With nothing to keep, a reset gives every block back. */
	nqi_arena_init(&a, 4096, 0);
	assert_non_null(nqi_arena_alloc(&a, 100));
	assert_non_null(a.head);
	nqi_arena_reset(&a);
	assert_null(a.head);
	assert_non_null(nqi_arena_alloc(&a, 100));
	nqi_arena_fini(&a);

	nqi_arena *own = nqi_arena_new(10);
	assert_non_null(own);
	for (int i = 0; i < 1000; i++)
		assert_non_null(nqi_arena_alloc(own, 100));
	nqi_arena_free(own);
}

/* Whatever a decoder accepts must pack and decode to the same message. */
static void assert_consistent(ProtobufCMessage *m)
{
	size_t len;
	uint8_t *buf = pack(m, &len);
	ProtobufCMessage *again = unpack_as(m->descriptor, buf, len);
	assert_non_null(again);
	assert_msg_equal(m, again, "re-decoded hostile input");
	protobuf_c_message_free_unpacked(again, NULL);
	free(buf);
}

static const ProtobufCMessageDescriptor *const hostile_targets[] = {
    &nq__v1__request__descriptor,
    &nq__v1__reply__descriptor,
    &nq__v1__completion_batch__descriptor,
    &nq__v1__job__descriptor,
};

static size_t feed_all(const uint8_t *buf, size_t len)
{
	size_t rejected = 0;
	for (size_t t = 0; t < COUNT(hostile_targets); t++) {
		ProtobufCMessage *m = unpack_as(hostile_targets[t], buf, len);
		assert_fast_agrees(hostile_targets[t], buf, len, m);
		if (!m) {
			rejected++;
			continue;
		}
		assert_consistent(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return rejected;
}

/* A random fixture with 1 to max_flips random bytes changed; the caller
 * frees it. */
static uint8_t *mutated_fixture(
    uint64_t *seed, size_t max_flips, const char **name, size_t *len)
{
	const fixture *fx = &fixtures[rng_next(seed) % COUNT(fixtures)];
	uint8_t *buf = read_fixture(fx->name, len);
	size_t flips = 1 + rng_next(seed) % max_flips;
	for (size_t k = 0; k<flips && * len> 0; k++)
		buf[rng_next(seed) % *len] = (uint8_t)rng_next(seed);
	if (name)
		*name = fx->name;
	return buf;
}

static void test_codec_random_bytes_never_crash(void **st)
{
	uint64_t seed = 0x6e71c0dec5eed001ull;
	uint8_t buf[512];
	size_t rejected = 0, cases = 10000;
	for (size_t i = 0; i < cases; i++) {
		size_t len = rng_next(&seed) % sizeof buf;
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rng_next(&seed);
		rejected += feed_all(buf, len);
	}
	/* Random bytes are almost never a valid message. */
	assert_true(rejected > cases * COUNT(hostile_targets) * 9 / 10);
}

static void test_codec_mutated_fixtures_never_crash(void **st)
{
	uint64_t seed = 0x0ddba11c0ffee001ull;
	size_t rejected = 0, cases = 10000;
	for (size_t i = 0; i < cases; i++) {
		size_t len;
		uint8_t *buf = mutated_fixture(&seed, 4, NULL, &len);
		rejected += feed_all(buf, len);
		free(buf);
	}
	assert_true(rejected > 0);
}

static void test_codec_huge_length_prefix_is_rejected(void **st)
{
	/* field 2 (token), length 2^31 - 1, no data behind it */
	static const uint8_t huge[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0x07};
	/* field 10 (enqueue body), length 0x7f but only 2 bytes present */
	static const uint8_t short_body[] = {0x52, 0x7f, 0x0a, 0x00};
	assert_null(nqi_request_unpack(huge, sizeof huge));
	assert_null(nqi_reply_unpack(huge, sizeof huge));
	assert_null(nqi_completions_unpack(huge, sizeof huge));
	assert_null(nqi_job_unpack(huge, sizeof huge));
	assert_null(nqi_request_unpack(short_body, sizeof short_body));
}

static void free_status(Nq__V1__Reply *r)
{
	free(r->status->message);
	free(r->status);
	r->status = NULL;
}

static void test_codec_reply_status_sets_code_and_message(void **st)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	nqi_reply_status(
	    &r, NQ_EINVAL, "payload is %d bytes, limit is %d", 300000, 262144);
	assert_non_null(r.status);
	assert_int_equal(r.status->code, NQ__V1__CODE__INVALID_ARGUMENT);
	assert_string_equal(r.status->message, NQT_STATUS_MESSAGE);
	/* A second call replaces both (and frees the first message). */
	nqi_reply_status(&r, NQ_ENOTFOUND, "job %s not found", NQT_ID);
	assert_int_equal(r.status->code, NQ__V1__CODE__NOT_FOUND);
	assert_string_equal(r.status->message, "job " NQT_ID " not found");
	size_t len;
	uint8_t *buf = pack(&r.base, &len);
	Nq__V1__Reply *back = nqi_reply_unpack(buf, len);
	assert_non_null(back);
	assert_int_equal(back->status->code, NQ__V1__CODE__NOT_FOUND);
	nq__v1__reply__free_unpacked(back, NULL);
	free(buf);
	free_status(&r);
}

static void test_codec_reply_status_maps_local_errors(void **st)
{
	static const struct {
		int err;
		Nq__V1__Code code;
	} cases[] = {
	    {NQ_EPRECOND, NQ__V1__CODE__FAILED_PRECONDITION},
	    {NQ_EEXHAUSTED, NQ__V1__CODE__RESOURCE_EXHAUSTED},
	    {NQ_EAUTH, NQ__V1__CODE__UNAUTHENTICATED},
	    {NQ_EPERM, NQ__V1__CODE__PERMISSION_DENIED},
	    {NQ_ESTORE, NQ__V1__CODE__UNAVAILABLE},
	    {NQ_ENOMEM, NQ__V1__CODE__INTERNAL},
	    {NQ_EPROTO, NQ__V1__CODE__INVALID_ARGUMENT},
	    {NQ_ETIMEDOUT, NQ__V1__CODE__DEADLINE_EXCEEDED},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		Nq__V1__Reply r = NQ__V1__REPLY__INIT;
		nqi_reply_status(&r, cases[i].err, "%s", "x");
		assert_int_equal(r.status->code, cases[i].code);
		free_status(&r);
	}
}

static void test_codec_reply_status_bounds_long_messages(void **st)
{
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	nqi_reply_status(&r, NQ_EINVAL, "%s", big);
	assert_true(strlen(r.status->message) < 1024);
	assert_true(strlen(r.status->message) > 100);
	free_status(&r);
}

/* ---- string fields: NUL bytes and UTF-8 ---- */

/* Packs m, then overwrites the first occurrence of mark (a string set in
 * one of m's string fields) with n bytes of the same length: that is how
 * a string holding any bytes gets on the wire. */
/* Overwrites the first copy of mark in buf with as many bytes. */
static void patch(uint8_t *buf, size_t len, const char *mark, const void *bytes)
{
	size_t n = strlen(mark);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, mark, n) == 0) {
			memcpy(buf + i, bytes, n);
			return;
		}
	fail_msg("mark %s not in the packed message", mark);
}

static uint8_t *pack_patched(const ProtobufCMessage *m, const char *mark,
    const void *bytes, size_t n, size_t *len)
{
	uint8_t *buf = pack(m, len);
	assert_int_equal(strlen(mark), n);
	patch(buf, *len, mark, bytes);
	return buf;
}

/* An enqueue of one job with idempotency key key (key_len bytes). */
static uint8_t *enqueue_with_key(const void *key, size_t key_len, size_t *len)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	char mark[64];
	assert_true(key_len > 0 && key_len < sizeof mark);
	memset(mark, '~', key_len);
	mark[key_len] = '\0';
	spec.queue = "q";
	spec.type = "t";
	spec.idempotency_key = mark;
	enq.n_jobs = 1;
	enq.jobs = specs;
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	return pack_patched(&req.base, mark, key, key_len, len);
}

/* The request's check result, its message, and that every decoder agrees:
 * the plain and arena decoders refuse exactly what the check refuses. */
static int check_request(const uint8_t *buf, size_t len, char *why, size_t n)
{
	nqi_arena *arena;
	int rv = nqi_pb_check_strings(
	    &nq__v1__request__descriptor, buf, len, why, n);
	Nq__V1__Request *plain = nqi_request_unpack(buf, len);
	Nq__V1__Request *in_arena = nqi_request_unpack_arena(buf, len, &arena);
	assert_int_equal(plain != NULL, rv == NQ_OK);
	assert_int_equal(in_arena != NULL, rv == NQ_OK);
	if (plain)
		nq__v1__request__free_unpacked(plain, NULL);
	nqi_arena_free(arena);
	return rv;
}

static void test_codec_strings_of_multibyte_utf8_pass(void **st)
{
	/* 2-, 3- and 4-byte characters, the last code point before and the
	 * first after the surrogates, and U+10FFFF. */
	static const char key[] = "cl\xc3\xa9-\xe2\x82\xac-\xf0\x9d\x84\x9e-"
	                          "\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf";
	char why[128];
	size_t len;
	uint8_t *buf = enqueue_with_key(key, strlen(key), &len);
	assert_int_equal(check_request(buf, len, why, sizeof why), NQ_OK);
	Nq__V1__Request *req = nqi_request_unpack(buf, len);
	assert_string_equal(req->enqueue->jobs[0]->idempotency_key, key);
	nq__v1__request__free_unpacked(req, NULL);
	free(buf);
}

static void test_codec_strings_of_malformed_utf8_are_refused(void **st)
{
	static const struct {
		const char *what, *bytes;
	} cases[] = {
	    {"overlong 2-byte '/'", "a\xc0\xaf"},
	    {"overlong 3-byte", "a\xe0\x80\xaf"},
	    {"overlong 4-byte", "a\xf0\x80\x80\xaf"},
	    {"high surrogate", "a\xed\xa0\x80"},
	    {"low surrogate", "a\xed\xbf\xbf"},
	    {"truncated at the end", "a\xe2\x82"},
	    {"truncated before ASCII", "a\xe2\x82z"},
	    {"past U+10FFFF", "a\xf4\x90\x80\x80"},
	    {"lead byte 0xf5", "a\xf5\x80\x80\x80"},
	    {"lead byte 0xff", "a\xff"},
	    {"lone continuation", "a\x80z"},
	    {"0xff after 16 ASCII bytes", "0123456789abcdef\xff"},
	    {"surrogate after 9 ASCII bytes", "012345678\xed\xa0\x80"},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		char why[128];
		size_t len;
		uint8_t *buf = enqueue_with_key(
		    cases[i].bytes, strlen(cases[i].bytes), &len);
		if (check_request(buf, len, why, sizeof why) != NQ_EINVAL)
			fail_msg("%s passed", cases[i].what);
		/* Named, and the bad bytes are not echoed. */
		assert_string_equal(
		    why, "field idempotency_key is not valid UTF-8");
		nqi_request_refusal(buf, len, why, sizeof why);
		assert_string_equal(
		    why, "field idempotency_key is not valid UTF-8");
		free(buf);
	}
}

/* What the check must say of n key bytes, found the slow way. */
static int plain_scan(const uint8_t *p, size_t n)
{
	for (size_t i = 0, c; i < n; i += c)
		if (p[i] == 0 || (c = nqi_utf8_char_len(p + i, n - i)) == 0)
			return NQ_EINVAL;
	return NQ_OK;
}

static void test_codec_string_check_agrees_with_a_plain_scan(void **st)
{
	uint64_t seed = 0x7e57c0dec0ffee11ull;
	size_t refused = 0, cases = 20000;
	for (size_t i = 0; i < cases; i++) {
		uint8_t key[40];
		size_t n = 1 + rng_next(&seed) % sizeof key;
		/* Mostly ASCII, so that long runs of it come before the odd
		 * NUL, lead or continuation byte. */
		for (size_t k = 0; k < n; k++) {
			uint64_t r = rng_next(&seed);
			key[k] = r % 64 ? (uint8_t)(0x20 + r / 64 % 0x5f)
			                : (uint8_t)(r / 64);
		}
		char why[128];
		size_t len;
		uint8_t *buf = enqueue_with_key(key, n, &len);
		int rv = nqi_pb_check_strings(
		    &nq__v1__request__descriptor, buf, len, why, sizeof why);
		assert_int_equal(rv, plain_scan(key, n));
		refused += rv != NQ_OK;
		free(buf);
	}
	assert_true(refused > cases / 10 && refused < cases * 9 / 10);
}

/* A request, reply or batch with "nul~evil" in one string field, the ~
 * made a NUL byte on the wire, must be refused naming that field. */
static void assert_nul_refused(const ProtobufCMessage *m, const char *field)
{
	char why[128], want[128];
	size_t len;
	uint8_t *buf = pack_patched(m, "nul~evil", "nul\0evil", 8, &len);
	const ProtobufCMessageDescriptor *d = m->descriptor;
	assert_int_equal(
	    nqi_pb_check_strings(d, buf, len, why, sizeof why), NQ_EINVAL);
	snprintf(want, sizeof want, "field %s holds a NUL byte", field);
	assert_string_equal(why, want);
	assert_null(unpack_as(d, buf, len));
	if (d == &nq__v1__reply__descriptor) {
		nqi_arena *arena;
		assert_null(nqi_reply_unpack_arena(buf, len, &arena));
		assert_null(arena);
	}
	if (d == &nq__v1__completion_batch__descriptor) {
		nqi_arena *arena;
		assert_null(nqi_completions_unpack_arena(buf, len, &arena));
		assert_null(arena);
	}
	/* The same message without the NUL byte is fine. */
	free(buf);
	buf = pack(m, &len);
	assert_int_equal(
	    nqi_pb_check_strings(d, buf, len, why, sizeof why), NQ_OK);
	free(buf);
}

static void test_codec_strings_with_nul_are_refused_at_any_depth(void **st)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__PauseRequest pause = NQ__V1__PAUSE_REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	Nq__V1__FetchRequest fetch = NQ__V1__FETCH_REQUEST__INIT;
	char *queues[] = {"a", "nul~evil"};
	req.version = 1;

	/* a NUL after 8 and after 16 ASCII bytes */
	req.token = "01234567nul~evil";
	req.body_case = NQ__V1__REQUEST__BODY_PAUSE;
	req.pause = &pause;
	pause.queue = "q";
	assert_nul_refused(&req.base, "token");
	req.token = "0123456789abcdefnul~evil-and-more";
	assert_nul_refused(&req.base, "token");

	/* top level */
	req.token = "nul~evil";
	req.body_case = NQ__V1__REQUEST__BODY_PAUSE;
	req.pause = &pause;
	pause.queue = "q";
	assert_nul_refused(&req.base, "token");
	req.token = "";
	pause.queue = "nul~evil";
	assert_nul_refused(&req.base, "queue");

	/* a message in a repeated message in the body */
	spec.queue = "nul~evil";
	spec.type = "t";
	enq.n_jobs = 1;
	enq.jobs = specs;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	assert_nul_refused(&req.base, "queue");

	/* the second of a repeated string */
	fetch.worker_id = "w";
	fetch.n_queues = 2;
	fetch.queues = queues;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fetch;
	assert_nul_refused(&req.base, "queues");

	/* a reply's job's spec, three levels down */
	Nq__V1__Reply rep = NQ__V1__REPLY__INIT;
	Nq__V1__GetReply get = NQ__V1__GET_REPLY__INIT;
	Nq__V1__Job job = NQ__V1__JOB__INIT;
	spec.queue = "q";
	spec.ordering_key = "nul~evil";
	job.id = "0123456789abcdef";
	job.spec = &spec;
	get.job = &job;
	rep.body_case = NQ__V1__REPLY__BODY_GET;
	rep.get = &get;
	assert_nul_refused(&rep.base, "ordering_key");

	/* a worker's completion */
	Nq__V1__CompletionBatch batch = NQ__V1__COMPLETION_BATCH__INIT;
	Nq__V1__Completion comp = NQ__V1__COMPLETION__INIT, *comps[] = {&comp};
	comp.id = "0123456789abcdef";
	comp.error = "nul~evil";
	batch.version = 1;
	batch.n_completions = 1;
	batch.completions = comps;
	assert_nul_refused(&batch.base, "error");
}

static void test_codec_bytes_and_unknown_fields_may_hold_any_bytes(void **st)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	static const uint8_t binary[] = {0, 0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80};
	/* field 99, length-delimited, 3 bytes that are no text */
	static const uint8_t unknown[] = {0x9a, 0x06, 3, 0, 0xff, 0x80};
	char why[128];
	size_t len;
	spec.queue = "q";
	spec.type = "t";
	spec.payload.data = (uint8_t *)binary;
	spec.payload.len = sizeof binary;
	enq.n_jobs = 1;
	enq.jobs = specs;
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	uint8_t *buf = pack(&req.base, &len);
	buf = realloc(buf, len + sizeof unknown);
	assert_non_null(buf);
	memcpy(buf + len, unknown, sizeof unknown);
	len += sizeof unknown;
	assert_int_equal(check_request(buf, len, why, sizeof why), NQ_OK);
	Nq__V1__Request *back = nqi_request_unpack(buf, len);
	assert_bin(back->enqueue->jobs[0]->payload, (const char *)binary,
	    sizeof binary);
	assert_int_equal(back->base.n_unknown_fields, 1);
	nq__v1__request__free_unpacked(back, NULL);
	free(buf);
}

/* A stored Job with a NUL in its idempotency key (spec, two levels
 * down), bytes that are no UTF-8 in an attempt's error message (in a
 * repeated message) and in its worker id, and a payload of any bytes:
 * repaired, it decodes with the strict decoder; the NUL cuts its string,
 * each bad byte is U+FFFD, everything else is as it was. */
static void test_codec_repair_makes_stored_strings_text(void **st)
{
	Nq__V1__Job job = NQ__V1__JOB__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT;
	Nq__V1__AttemptError err = NQ__V1__ATTEMPT_ERROR__INIT,
	                     *errs[] = {&err};
	static const uint8_t binary[] = {0, 0xff, 0xc0};
	const ProtobufCMessageDescriptor *d = &nq__v1__job__descriptor;
	uint8_t *fixed, *twice;
	size_t len, flen, tlen;
	char why[128];
	job.id = "0123456789abcdef";
	job.spec = &spec;
	job.state = NQ__V1__JOB_STATE__JOB_STATE_DEAD;
	job.worker_id = "w-^^";
	job.n_errors = 1;
	job.errors = errs;
	spec.queue = "q";
	spec.type = "t";
	spec.idempotency_key = "k~old";
	spec.payload.data = (uint8_t *)binary;
	spec.payload.len = sizeof binary;
	err.attempt = 3;
	err.message = "bad ## bytes";
	uint8_t *buf = pack(&job.base, &len);
	patch(buf, len, "k~old", "k\0old");
	patch(buf, len, "##", "\xc3\x28");
	patch(buf, len, "^^", "\xff\xfe");
	assert_null(nqi_job_unpack(buf, len));

	assert_int_equal(
	    nqi_pb_repair_strings(d, buf, len, &fixed, &flen, why, sizeof why),
	    NQ_OK);
	assert_non_null(fixed);
	assert_string_equal(why, "field idempotency_key holds a NUL byte");
	Nq__V1__Job *back = nqi_job_unpack(fixed, flen);
	assert_non_null(back);
	assert_string_equal(back->id, "0123456789abcdef");
	assert_string_equal(back->spec->idempotency_key, "k");
	assert_string_equal(back->spec->queue, "q");
	assert_string_equal(
	    back->errors[0]->message, "bad \xef\xbf\xbd( bytes");
	assert_int_equal(back->errors[0]->attempt, 3);
	assert_string_equal(back->worker_id, "w-\xef\xbf\xbd\xef\xbf\xbd");
	assert_int_equal(back->state, NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	assert_bin(back->spec->payload, (const char *)binary, sizeof binary);
	nq__v1__job__free_unpacked(back, NULL);

	/* Text already: nothing to do, nothing allocated. */
	assert_int_equal(nqi_pb_repair_strings(
	                     d, fixed, flen, &twice, &tlen, why, sizeof why),
	    NQ_OK);
	assert_null(twice);
	free(fixed);
	free(buf);
}

/* The check frames bytes as protobuf-c does: it never calls malformed
 * what protobuf-c decodes, so it refuses nothing for a framing reason. */
static void test_codec_string_check_frames_like_protobuf_c(void **st)
{
	uint64_t seed = 0x5a1f5eedc0dec001ull;
	size_t decoded = 0;
	for (size_t i = 0; i < 20000; i++) {
		const char *name;
		size_t len;
		uint8_t *buf = mutated_fixture(&seed, 3, &name, &len);
		for (size_t t = 0; t < COUNT(hostile_targets); t++) {
			const ProtobufCMessageDescriptor *d =
			    hostile_targets[t];
			char why[128];
			int rv =
			    nqi_pb_check_strings(d, buf, len, why, sizeof why);
			ProtobufCMessage *m =
			    protobuf_c_message_unpack(d, NULL, len, buf);
			if (m && rv == NQ_EPROTO)
				fail_msg(
				    "%s as %s: protobuf-c decodes what the "
				    "check calls malformed",
				    name, d->name);
			decoded += m != NULL;
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
		}
		free(buf);
	}
	assert_true(decoded > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_codec_samples_cover_every_field_of_every_message),
	    cmocka_unit_test(test_codec_every_sample_round_trips),
	    cmocka_unit_test(test_codec_msg_pack_puts_prefix_before_message),
	    cmocka_unit_test(test_codec_msg_pack_without_prefix_is_plain),
	    cmocka_unit_test(test_codec_empty_message_packs_to_nothing),
	    cmocka_unit_test(test_codec_every_sample_has_a_checked_fixture),
	    cmocka_unit_test(test_codec_fixtures_decode_to_their_values),
	    cmocka_unit_test(
	        test_codec_samples_pack_to_their_committed_fixtures),
	    cmocka_unit_test(
	        test_codec_coverage_lists_every_message_of_the_protos),
	    cmocka_unit_test(test_codec_truncated_fixtures_are_rejected),
	    cmocka_unit_test(test_codec_arena_decoders_agree_with_plain_ones),
	    cmocka_unit_test(
	        test_codec_one_pass_decoder_agrees_and_takes_hot_messages),
	    cmocka_unit_test(
	        test_codec_one_pass_decoder_gives_way_to_protobuf_c),
	    cmocka_unit_test(test_codec_one_pass_decoder_reads_odd_encodings),
	    cmocka_unit_test(test_codec_flat_plans_pack_like_protobuf_c),
	    cmocka_unit_test(test_codec_completions_pack_like_protobuf_c),
	    cmocka_unit_test(
	        test_codec_patches_appended_to_a_job_replace_its_fields),
	    cmocka_unit_test(
	        test_codec_lease_patch_sets_every_lease_field_of_job),
	    cmocka_unit_test(
	        test_codec_arena_allocates_aligned_memory_of_any_size),
	    cmocka_unit_test(test_codec_random_bytes_never_crash),
	    cmocka_unit_test(test_codec_mutated_fixtures_never_crash),
	    cmocka_unit_test(test_codec_huge_length_prefix_is_rejected),
	    cmocka_unit_test(test_codec_reply_status_sets_code_and_message),
	    cmocka_unit_test(test_codec_reply_status_maps_local_errors),
	    cmocka_unit_test(test_codec_reply_status_bounds_long_messages),
	    cmocka_unit_test(test_codec_strings_of_multibyte_utf8_pass),
	    cmocka_unit_test(test_codec_strings_of_malformed_utf8_are_refused),
	    cmocka_unit_test(
	        test_codec_strings_with_nul_are_refused_at_any_depth),
	    cmocka_unit_test(
	        test_codec_bytes_and_unknown_fields_may_hold_any_bytes),
	    cmocka_unit_test(test_codec_string_check_frames_like_protobuf_c),
	    cmocka_unit_test(test_codec_repair_makes_stored_strings_text),
	    cmocka_unit_test(test_codec_string_check_agrees_with_a_plain_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
