#include "samples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIN(s, n) ((ProtobufCBinaryData){(n), (uint8_t *)(s)})
#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ---- the samples: static storage, wired together on first use ---- */

static Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__JobSpec spec_min = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__AttemptError err1 = NQ__V1__ATTEMPT_ERROR__INIT;
static Nq__V1__AttemptError err2 = NQ__V1__ATTEMPT_ERROR__INIT;
static Nq__V1__AttemptError *errs[] = {&err1, &err2};
static Nq__V1__Job job = NQ__V1__JOB__INIT;
static Nq__V1__Job job2 = NQ__V1__JOB__INIT;
static Nq__V1__Job *jobs[] = {&job, &job2};
static Nq__V1__Status status = NQ__V1__STATUS__INIT;
static Nq__V1__Completion comp = NQ__V1__COMPLETION__INIT;
static Nq__V1__Completion comp2 = NQ__V1__COMPLETION__INIT;
static Nq__V1__Completion *comps[] = {&comp, &comp2};
static Nq__V1__CompletionBatch batch = NQ__V1__COMPLETION_BATCH__INIT;
static Nq__V1__JobEvent event = NQ__V1__JOB_EVENT__INIT;

static void build_spec(void)
{
	spec.queue = NQT_QUEUE;
	spec.type = NQT_TYPE;
	spec.payload = BIN(NQT_PAYLOAD, NQT_PAYLOAD_LEN);
	spec.content_type = NQT_CONTENT_TYPE;
	spec.schema_version = NQT_SCHEMA_VERSION;
	spec.priority = NQT_PRIORITY;
	spec.run_at_us = NQT_RUN_AT_US;
	spec.delay_ms = NQT_DELAY_MS;
	spec.max_attempts = NQT_MAX_ATTEMPTS;
	spec.timeout_ms = NQT_TIMEOUT_MS;
	spec.idempotency_key = NQT_IDEMPOTENCY_KEY;
	spec.ordering_key = NQT_ORDERING_KEY;
	spec.traceparent = NQT_TRACEPARENT;
	spec.payload_ref = NQT_PAYLOAD_REF;
	spec.deadline_us = NQT_DEADLINE_US;
	spec_min.queue = NQT_QUEUE2;
	spec_min.type = NQT_TYPE;
}

static void build_job(void)
{
	err1.attempt = 1;
	err1.at_us = NQT_ERROR1_AT_US;
	err1.message = NQT_ERROR1;
	err1.retryable = 1;
	err1.worker_id = NQT_WORKER;
	err2.attempt = NQT_MAX_ATTEMPTS;
	err2.at_us = NQT_FINISHED_US;
	err2.message = NQT_ERROR2;
	err2.worker_id = NQT_WORKER;
	job.id = NQT_ID;
	job.spec = &spec;
	job.state = NQ__V1__JOB_STATE__JOB_STATE_DEAD;
	job.attempt = NQT_MAX_ATTEMPTS;
	job.max_attempts = NQT_MAX_ATTEMPTS;
	job.created_us = NQT_CREATED_US;
	job.run_at_us = NQT_RUN_AT_US;
	job.started_us = NQT_STARTED_US;
	job.finished_us = NQT_FINISHED_US;
	job.result = BIN(NQT_RESULT, NQT_RESULT_LEN);
	job.n_errors = COUNT(errs);
	job.errors = errs;
	job.lease_token = NQT_LEASE_TOKEN;
	job.lease_expires_us = NQT_LEASE_EXPIRES_US;
	job.worker_id = NQT_WORKER;
	job.dead_reason = NQT_DEAD_REASON;
	job.timeout_ms = NQT_TIMEOUT_MS;
	job2.id = NQT_ID2;
	job2.spec = &spec_min;
	job2.state = NQ__V1__JOB_STATE__JOB_STATE_READY;
	job2.max_attempts = 10;
	job2.created_us = NQT_CREATED_US;
	job2.run_at_us = NQT_CREATED_US;
	job2.timeout_ms = 300000;
}

static void build_records(void)
{
	status.code = NQ__V1__CODE__INVALID_ARGUMENT;
	status.message = NQT_STATUS_MESSAGE;
	comp.id = NQT_ID;
	comp.lease_token = NQT_LEASE_TOKEN;
	comp.outcome = NQ__V1__OUTCOME__OUTCOME_FAILED;
	comp.result = BIN(NQT_RESULT, NQT_RESULT_LEN);
	comp.error = NQT_ERROR2;
	comp.non_retryable = 1;
	comp.retry_after_ms = NQT_RETRY_AFTER_MS;
	comp.started_us = NQT_STARTED_US;
	comp.finished_us = NQT_FINISHED_US;
	comp2.id = NQT_ID2;
	comp2.lease_token = NQT_LEASE_TOKEN2;
	comp2.outcome = NQ__V1__OUTCOME__OUTCOME_RELEASED;
	batch.version = 1;
	batch.token = NQT_TOKEN;
	batch.worker_id = NQT_WORKER;
	batch.n_completions = COUNT(comps);
	batch.completions = comps;
	event.seq = NQT_EVENT_SEQ;
	event.kind = "dead";
	event.id = NQT_ID;
	event.queue = NQT_QUEUE;
	event.type = NQT_TYPE;
	event.attempt = NQT_MAX_ATTEMPTS;
	event.at_us = NQT_FINISHED_US;
	event.worker_id = NQT_WORKER;
	event.error = NQT_ERROR2;
	event.traceparent = NQT_TRACEPARENT;
}

/* ---- requests: one envelope per body ---- */

static Nq__V1__JobSpec *enq_specs[] = {&spec, &spec_min};
static Nq__V1__EnqueueRequest rq_enqueue = NQ__V1__ENQUEUE_REQUEST__INIT;
static Nq__V1__GetRequest rq_get = NQ__V1__GET_REQUEST__INIT;
static Nq__V1__WaitRequest rq_wait = NQ__V1__WAIT_REQUEST__INIT;
static Nq__V1__CancelRequest rq_cancel = NQ__V1__CANCEL_REQUEST__INIT;
static Nq__V1__StatsRequest rq_stats = NQ__V1__STATS_REQUEST__INIT;
static Nq__V1__PauseRequest rq_pause = NQ__V1__PAUSE_REQUEST__INIT;
static Nq__V1__ResumeRequest rq_resume = NQ__V1__RESUME_REQUEST__INIT;
static Nq__V1__ListRequest rq_list = NQ__V1__LIST_REQUEST__INIT;
static Nq__V1__FetchRequest rq_fetch = NQ__V1__FETCH_REQUEST__INIT;
static char *fetch_queues[] = {NQT_QUEUE, NQT_QUEUE2};
static Nq__V1__LeaseRef lease1 = NQ__V1__LEASE_REF__INIT;
static Nq__V1__LeaseRef lease2 = NQ__V1__LEASE_REF__INIT;
static Nq__V1__LeaseRef *leases[] = {&lease1, &lease2};
static Nq__V1__ExtendRequest rq_extend = NQ__V1__EXTEND_REQUEST__INIT;
static Nq__V1__Request requests[10];

static void build_request_bodies(void)
{
	rq_enqueue.n_jobs = COUNT(enq_specs);
	rq_enqueue.jobs = enq_specs;
	rq_get.id = NQT_ID;
	rq_get.omit_payload = 1;
	rq_wait.id = NQT_ID;
	rq_wait.timeout_ms = NQT_WAIT_MS;
	rq_cancel.id = NQT_ID;
	rq_stats.queue = NQT_QUEUE;
	rq_pause.queue = NQT_QUEUE;
	rq_resume.queue = NQT_QUEUE2;
	rq_list.queue = NQT_QUEUE;
	rq_list.state = NQ__V1__JOB_STATE__JOB_STATE_READY;
	rq_list.limit = NQT_LIST_LIMIT;
	rq_list.after_id = NQT_ID;
	rq_fetch.worker_id = NQT_WORKER;
	rq_fetch.n_queues = COUNT(fetch_queues);
	rq_fetch.queues = fetch_queues;
	rq_fetch.max_jobs = NQT_MAX_JOBS;
	rq_fetch.wait_ms = NQT_WAIT_MS;
	rq_fetch.lease_ms = NQT_LEASE_MS;
	lease1.id = NQT_ID;
	lease1.lease_token = NQT_LEASE_TOKEN;
	lease2.id = NQT_ID2;
	lease2.lease_token = NQT_LEASE_TOKEN2;
	rq_extend.n_leases = COUNT(leases);
	rq_extend.leases = leases;
	rq_extend.lease_ms = NQT_LEASE_MS;
	rq_extend.worker_id = NQT_WORKER;
}

static void build_requests(void)
{
	static const Nq__V1__Request init = NQ__V1__REQUEST__INIT;
	build_request_bodies();
	for (size_t i = 0; i < COUNT(requests); i++) {
		requests[i] = init;
		requests[i].version = 1;
		requests[i].token = NQT_TOKEN;
	}
	requests[0].body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	requests[0].enqueue = &rq_enqueue;
	requests[1].body_case = NQ__V1__REQUEST__BODY_GET;
	requests[1].get = &rq_get;
	requests[2].body_case = NQ__V1__REQUEST__BODY_WAIT;
	requests[2].wait = &rq_wait;
	requests[3].body_case = NQ__V1__REQUEST__BODY_CANCEL;
	requests[3].cancel = &rq_cancel;
	requests[4].body_case = NQ__V1__REQUEST__BODY_STATS;
	requests[4].stats = &rq_stats;
	requests[5].body_case = NQ__V1__REQUEST__BODY_PAUSE;
	requests[5].pause = &rq_pause;
	requests[6].body_case = NQ__V1__REQUEST__BODY_RESUME;
	requests[6].resume = &rq_resume;
	requests[7].body_case = NQ__V1__REQUEST__BODY_LIST;
	requests[7].list = &rq_list;
	requests[8].body_case = NQ__V1__REQUEST__BODY_FETCH;
	requests[8].fetch = &rq_fetch;
	requests[9].body_case = NQ__V1__REQUEST__BODY_EXTEND;
	requests[9].extend = &rq_extend;
}

/* ---- replies: one envelope per body, plus a refusal ---- */

static Nq__V1__Status st_ok = NQ__V1__STATUS__INIT;
static Nq__V1__Status st_precond = NQ__V1__STATUS__INIT;
static Nq__V1__EnqueueResult res1 = NQ__V1__ENQUEUE_RESULT__INIT;
static Nq__V1__EnqueueResult res2 = NQ__V1__ENQUEUE_RESULT__INIT;
static Nq__V1__EnqueueResult *results[] = {&res1, &res2};
static Nq__V1__EnqueueReply rp_enqueue = NQ__V1__ENQUEUE_REPLY__INIT;
static Nq__V1__GetReply rp_get = NQ__V1__GET_REPLY__INIT;
static Nq__V1__CancelReply rp_cancel = NQ__V1__CANCEL_REPLY__INIT;
static Nq__V1__QueueStats qstats = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__QueueStats qstats2 = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__QueueStats *qstats_list[] = {&qstats, &qstats2};
static Nq__V1__BrokerStats bstats = NQ__V1__BROKER_STATS__INIT;
static Nq__V1__StatsReply rp_stats = NQ__V1__STATS_REPLY__INIT;
static Nq__V1__QueueReply rp_queue = NQ__V1__QUEUE_REPLY__INIT;
static Nq__V1__ListReply rp_list = NQ__V1__LIST_REPLY__INIT;
static Nq__V1__FetchReply rp_fetch = NQ__V1__FETCH_REPLY__INIT;
static Nq__V1__Status *ext_results[] = {&st_ok, &st_precond};
static Nq__V1__ExtendReply rp_extend = NQ__V1__EXTEND_REPLY__INIT;
static uint32_t served_versions[] = {1};
static Nq__V1__Reply replies[10];

static void build_stats(void)
{
	qstats.queue = NQT_QUEUE;
	qstats.scheduled = 1;
	qstats.ready = 2;
	qstats.leased = 3;
	qstats.succeeded = 4;
	qstats.dead = 5;
	qstats.canceled = 6;
	qstats.expired = 7;
	qstats.paused = 1;
	qstats.enqueued_total = 1000001;
	qstats.succeeded_total = 1000002;
	qstats.failed_total = 1000003;
	qstats.dead_total = 1000004;
	qstats.oldest_ready_us = NQT_CREATED_US;
	qstats2.queue = NQT_QUEUE2;
	bstats.commits = NQT_COMMITS;
	bstats.uptime_ms = NQT_UPTIME_MS;
	bstats.jobs_stored = NQT_JOBS_STORED;
	bstats.version = NQT_VERSION;
	rp_stats.n_queues = COUNT(qstats_list);
	rp_stats.queues = qstats_list;
	rp_stats.broker = &bstats;
}

static void build_reply_bodies(void)
{
	st_precond.code = NQ__V1__CODE__FAILED_PRECONDITION;
	st_precond.message = "lease no longer held";
	res1.status = &st_ok;
	res1.id = NQT_ID;
	res1.duplicate = 1;
	res2.status = &status;
	rp_enqueue.n_results = COUNT(results);
	rp_enqueue.results = results;
	rp_get.job = &job;
	rp_cancel.job = &job2;
	build_stats();
	rp_queue.queue = NQT_QUEUE;
	rp_queue.paused = 1;
	rp_list.n_jobs = COUNT(jobs);
	rp_list.jobs = jobs;
	rp_fetch.n_jobs = COUNT(jobs);
	rp_fetch.jobs = jobs;
	rp_extend.n_results = COUNT(ext_results);
	rp_extend.results = ext_results;
}

static void build_replies(void)
{
	static const Nq__V1__Reply init = NQ__V1__REPLY__INIT;
	build_reply_bodies();
	for (size_t i = 0; i < COUNT(replies); i++)
		replies[i] = init;
	replies[0].body_case = NQ__V1__REPLY__BODY_ENQUEUE;
	replies[0].enqueue = &rp_enqueue;
	replies[1].body_case = NQ__V1__REPLY__BODY_GET;
	replies[1].get = &rp_get;
	replies[2].body_case = NQ__V1__REPLY__BODY_WAIT;
	replies[2].wait = &rp_get;
	replies[3].status = &st_precond;
	replies[3].body_case = NQ__V1__REPLY__BODY_CANCEL;
	replies[3].cancel = &rp_cancel;
	replies[4].body_case = NQ__V1__REPLY__BODY_STATS;
	replies[4].stats = &rp_stats;
	replies[5].body_case = NQ__V1__REPLY__BODY_QUEUE;
	replies[5].queue = &rp_queue;
	replies[6].body_case = NQ__V1__REPLY__BODY_LIST;
	replies[6].list = &rp_list;
	replies[7].body_case = NQ__V1__REPLY__BODY_FETCH;
	replies[7].fetch = &rp_fetch;
	replies[8].body_case = NQ__V1__REPLY__BODY_EXTEND;
	replies[8].extend = &rp_extend;
	/* A request of an unknown major version: no body, the versions. */
	replies[9].status = &st_precond;
	replies[9].n_versions = COUNT(served_versions);
	replies[9].versions = served_versions;
}

static nqt_sample samples[] = {
	{"status", &status.base},
	{"job_spec", &spec.base},
	{"job", &job.base},
	{"completion_batch", &batch.base},
	{"job_event", &event.base},
	{"request_enqueue", &requests[0].base},
	{"request_get", &requests[1].base},
	{"request_wait", &requests[2].base},
	{"request_cancel", &requests[3].base},
	{"request_stats", &requests[4].base},
	{"request_pause", &requests[5].base},
	{"request_resume", &requests[6].base},
	{"request_list", &requests[7].base},
	{"request_fetch", &requests[8].base},
	{"request_extend", &requests[9].base},
	{"reply_enqueue", &replies[0].base},
	{"reply_get", &replies[1].base},
	{"reply_wait", &replies[2].base},
	{"reply_cancel", &replies[3].base},
	{"reply_stats", &replies[4].base},
	{"reply_queue", &replies[5].base},
	{"reply_list", &replies[6].base},
	{"reply_fetch", &replies[7].base},
	{"reply_extend", &replies[8].base},
	{"reply_version", &replies[9].base},
};

const nqt_sample *nqt_samples(size_t *n)
{
	static bool built;
	if (!built) {
		build_spec();
		build_job();
		build_records();
		build_requests();
		build_replies();
		built = true;
	}
	*n = COUNT(samples);
	return samples;
}

const ProtobufCMessage *nqt_sample_get(const char *name)
{
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].name, name) == 0)
			return s[i].msg;
	return NULL;
}

static const ProtobufCMessageDescriptor *const descriptors[] = {
	&nq__v1__attempt_error__descriptor,
	&nq__v1__job_spec__descriptor,
	&nq__v1__job__descriptor,
	&nq__v1__status__descriptor,
	&nq__v1__enqueue_request__descriptor,
	&nq__v1__enqueue_result__descriptor,
	&nq__v1__enqueue_reply__descriptor,
	&nq__v1__get_request__descriptor,
	&nq__v1__get_reply__descriptor,
	&nq__v1__wait_request__descriptor,
	&nq__v1__cancel_request__descriptor,
	&nq__v1__cancel_reply__descriptor,
	&nq__v1__stats_request__descriptor,
	&nq__v1__queue_stats__descriptor,
	&nq__v1__broker_stats__descriptor,
	&nq__v1__stats_reply__descriptor,
	&nq__v1__pause_request__descriptor,
	&nq__v1__resume_request__descriptor,
	&nq__v1__queue_reply__descriptor,
	&nq__v1__list_request__descriptor,
	&nq__v1__list_reply__descriptor,
	&nq__v1__fetch_request__descriptor,
	&nq__v1__fetch_reply__descriptor,
	&nq__v1__lease_ref__descriptor,
	&nq__v1__extend_request__descriptor,
	&nq__v1__extend_reply__descriptor,
	&nq__v1__request__descriptor,
	&nq__v1__reply__descriptor,
	&nq__v1__completion__descriptor,
	&nq__v1__completion_batch__descriptor,
	&nq__v1__job_event__descriptor,
};

const ProtobufCMessageDescriptor *const *nqt_descriptors(size_t *n)
{
	*n = COUNT(descriptors);
	return descriptors;
}

/* ---- generic field access by descriptor ---- */

/* Size of one value of a field in the C struct. */
static size_t value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

static const void *field_ptr(const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f)
{
	return (const char *)m + f->offset;
}

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
	return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* For oneof members: whether this member is the selected one. */
static bool oneof_selected(const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f)
{
	uint32_t c;
	memcpy(&c, (const char *)m + f->quantifier_offset, sizeof c);
	return c == f->id;
}

static size_t repeated_count(const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f)
{
	size_t n;
	memcpy(&n, (const char *)m + f->quantifier_offset, sizeof n);
	return n;
}

static const void *repeated_elem(const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f, size_t i)
{
	const char *arr;
	memcpy(&arr, field_ptr(m, f), sizeof arr);
	return arr + i * value_size(f->type);
}

static const char *str_of(const void *p)
{
	const char *s;
	memcpy(&s, p, sizeof s);
	return s ? s : "";
}

static const ProtobufCMessage *msg_of(const void *p)
{
	const ProtobufCMessage *s;
	memcpy(&s, p, sizeof s);
	return s;
}

/* Whether one value holds something other than the default. */
static bool value_set(const ProtobufCFieldDescriptor *f, const void *p)
{
	static const uint8_t zero[8];
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return str_of(p)[0] != '\0';
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len > 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return msg_of(p) != NULL;
	default:
		return memcmp(p, zero, value_size(f->type)) != 0;
	}
}

/* ---- deep equality ---- */

static bool value_equal(const ProtobufCFieldDescriptor *f, const void *a,
    const void *b, char *why, size_t len)
{
	const ProtobufCBinaryData *ba = a, *bb = b;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return strcmp(str_of(a), str_of(b)) == 0;
	case PROTOBUF_C_TYPE_BYTES:
		return ba->len == bb->len &&
		    (ba->len == 0 || memcmp(ba->data, bb->data, ba->len) == 0);
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!msg_of(a) || !msg_of(b))
			return msg_of(a) == msg_of(b);
		return nqt_msg_equal(msg_of(a), msg_of(b), why, len);
	default:
		return memcmp(a, b, value_size(f->type)) == 0;
	}
}

/* Prepends "Message.field" (and "[i]") to the path in why. */
static void note_path(char *why, size_t len, const ProtobufCMessageDescriptor *d,
    const ProtobufCFieldDescriptor *f, long idx)
{
	char inner[256];
	snprintf(inner, sizeof inner, "%s", why);
	if (idx >= 0)
		snprintf(why, len, "%s.%s[%ld]%s%s", d->short_name, f->name,
		    idx, inner[0] ? " > " : "", inner);
	else
		snprintf(why, len, "%s.%s%s%s", d->short_name, f->name,
		    inner[0] ? " > " : "", inner);
}

static bool field_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
    const ProtobufCFieldDescriptor *f, char *why, size_t len)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = repeated_count(a, f);
		if (n != repeated_count(b, f)) {
			snprintf(why, len, "count %zu != %zu", n,
			    repeated_count(b, f));
			return false;
		}
		for (size_t i = 0; i < n; i++) {
			if (!value_equal(f, repeated_elem(a, f, i),
			    repeated_elem(b, f, i), why, len)) {
				note_path(why, len, a->descriptor, f, (long)i);
				return false;
			}
		}
		return true;
	}
	if (is_oneof(f)) {
		bool sa = oneof_selected(a, f), sb = oneof_selected(b, f);
		if (sa != sb) {
			snprintf(why, len, "oneof member selected in one only");
			return false;
		}
		if (!sa)
			return true;
	}
	return value_equal(f, field_ptr(a, f), field_ptr(b, f), why, len);
}

bool nqt_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
    char *why, size_t len)
{
	const ProtobufCMessageDescriptor *d = a->descriptor;
	why[0] = '\0';
	if (d != b->descriptor) {
		snprintf(why, len, "%s vs %s", d->name, b->descriptor->name);
		return false;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (!field_equal(a, b, f, why, len)) {
			if (f->label != PROTOBUF_C_LABEL_REPEATED)
				note_path(why, len, d, f, -1);
			return false;
		}
	}
	return true;
}

/* ---- field coverage ---- */

#define MAX_FIELDS 64

struct nqt_coverage {
	bool seen_type[COUNT(descriptors)];
	bool seen_field[COUNT(descriptors)][MAX_FIELDS];
};

nqt_coverage *nqt_coverage_new(void)
{
	return calloc(1, sizeof(nqt_coverage));
}

void nqt_coverage_free(nqt_coverage *c)
{
	free(c);
}

static long type_index(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < COUNT(descriptors); i++)
		if (descriptors[i] == d)
			return (long)i;
	return -1;
}

static void cover_field(nqt_coverage *c, long t, const ProtobufCMessage *m,
    unsigned i)
{
	const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
	bool msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = repeated_count(m, f);
		if (n > 0)
			c->seen_field[t][i] = true;
		for (size_t k = 0; msg && k < n; k++)
			nqt_coverage_add(c, msg_of(repeated_elem(m, f, k)));
		return;
	}
	if (is_oneof(f) && !oneof_selected(m, f))
		return;
	if (!value_set(f, field_ptr(m, f)))
		return;
	c->seen_field[t][i] = true;
	if (msg)
		nqt_coverage_add(c, msg_of(field_ptr(m, f)));
}

void nqt_coverage_add(nqt_coverage *c, const ProtobufCMessage *m)
{
	long t = type_index(m->descriptor);
	if (t < 0)
		return;
	c->seen_type[t] = true;
	for (unsigned i = 0; i < m->descriptor->n_fields && i < MAX_FIELDS; i++)
		cover_field(c, t, m, i);
}

bool nqt_coverage_complete(const nqt_coverage *c, char *missing, size_t len)
{
	for (size_t t = 0; t < COUNT(descriptors); t++) {
		const ProtobufCMessageDescriptor *d = descriptors[t];
		if (!c->seen_type[t]) {
			snprintf(missing, len, "%s (no sample holds one)", d->name);
			return false;
		}
		for (unsigned i = 0; i < d->n_fields; i++) {
			if (i >= MAX_FIELDS || !c->seen_field[t][i]) {
				snprintf(missing, len, "%s.%s", d->short_name,
				    d->fields[i].name);
				return false;
			}
		}
	}
	return true;
}
