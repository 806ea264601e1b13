#include "samples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/jsonpb.h"

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

/*
 * ---- samples added with the nq-dlq protocol ----
 *
 * The samples above predate JobSpec.replay_of, Completion.schema_rejected,
 * the dlq counters of QueueStats, QueueConfig and the nq-dlq messages; their
 * fixtures keep those at the default. These samples set every new field, so
 * each new field has a fixture of its own.
 */

static Nq__V1__JobSpec spec_replay = NQ__V1__JOB_SPEC__INIT;
/* JobSpec.group_key came later still: a sample of its own. */
static Nq__V1__JobSpec spec_group = NQ__V1__JOB_SPEC__INIT;
/* JobSpec.payload_size and payload_sha256 (claim check) too. */
static Nq__V1__JobSpec spec_claim_check = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__Completion comp_schema = NQ__V1__COMPLETION__INIT;
static Nq__V1__Completion *comps_schema[] = {&comp_schema};
static Nq__V1__CompletionBatch batch_schema = NQ__V1__COMPLETION_BATCH__INIT;
static Nq__V1__QueueConfig qconfig = NQ__V1__QUEUE_CONFIG__INIT;
static Nq__V1__QueueStats qstats_dlq = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__QueueStats *qstats_dlq_list[] = {&qstats_dlq};
static Nq__V1__StatsReply rp_stats_dlq = NQ__V1__STATS_REPLY__INIT;

static Nq__V1__JobLeasePatch lease_patch = NQ__V1__JOB_LEASE_PATCH__INIT;
static Nq__V1__JobSuccessPatch success_patch = NQ__V1__JOB_SUCCESS_PATCH__INIT;

static Nq__V1__NewJobRecord new_record = NQ__V1__NEW_JOB_RECORD__INIT;

static void build_patches(void)
{
	new_record.id = NQT_ID;
	new_record.state = NQ__V1__JOB_STATE__JOB_STATE_READY;
	new_record.max_attempts = NQT_MAX_ATTEMPTS;
	new_record.created_us = NQT_CREATED_US;
	new_record.run_at_us = NQT_RUN_AT_US;
	new_record.timeout_ms = NQT_TIMEOUT_MS;
	lease_patch.state = NQ__V1__JOB_STATE__JOB_STATE_LEASED;
	lease_patch.attempt = NQT_MAX_ATTEMPTS;
	lease_patch.started_us = NQT_STARTED_US;
	lease_patch.lease_token = NQT_LEASE_TOKEN;
	lease_patch.lease_expires_us = NQT_LEASE_EXPIRES_US;
	lease_patch.worker_id = NQT_WORKER;
	success_patch.state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	success_patch.finished_us = NQT_FINISHED_US;
	success_patch.result = BIN(NQT_RESULT, NQT_RESULT_LEN);
}

/* Needs build_spec() and build_stats() first: it copies spec and bstats. */
static void build_new_fields(void)
{
	spec_replay = spec;
	spec_replay.replay_of = NQT_ID;
	spec_group = spec;
	spec_group.group_key = NQT_GROUP_KEY;
	spec_claim_check = spec;
	spec_claim_check.payload_size = NQT_CLAIM_CHECK_SIZE;
	spec_claim_check.payload_sha256 = NQT_CLAIM_CHECK_SHA256;
	comp_schema.id = NQT_ID2;
	comp_schema.lease_token = NQT_LEASE_TOKEN2;
	comp_schema.outcome = NQ__V1__OUTCOME__OUTCOME_FAILED;
	comp_schema.error = NQT_SCHEMA_ERROR;
	comp_schema.non_retryable = 1;
	comp_schema.schema_rejected = 1;
	comp_schema.started_us = NQT_STARTED_US;
	comp_schema.finished_us = NQT_FINISHED_US;
	batch_schema.version = 1;
	batch_schema.token = NQT_TOKEN;
	batch_schema.worker_id = NQT_WORKER;
	batch_schema.n_completions = COUNT(comps_schema);
	batch_schema.completions = comps_schema;
	qconfig.paused = 1;
	qconfig.max_attempts = NQT_MAX_ATTEMPTS;
	qconfig.result_ttl_ms = NQT_RESULT_TTL_MS;
	qconfig.max_depth = NQT_MAX_DEPTH;
	qstats_dlq.queue = NQT_QUEUE;
	qstats_dlq.dead = NQT_DEAD_PENDING;
	qstats_dlq.dead_total = NQT_DLQ_HANDED_TOTAL + NQT_DEAD_PENDING;
	qstats_dlq.dead_pending = NQT_DEAD_PENDING;
	qstats_dlq.dlq_handed_total = NQT_DLQ_HANDED_TOTAL;
	rp_stats_dlq.n_queues = COUNT(qstats_dlq_list);
	rp_stats_dlq.queues = qstats_dlq_list;
	rp_stats_dlq.broker = &bstats;
}

/*
 * ---- samples added with coalesced events ----
 *
 * JobEvent.topic_seq and EventBatch came after the job_event fixture, so
 * they get a sample of their own: two events of one topic, as the broker
 * publishes them in one message.
 */
static Nq__V1__JobEvent ev_failed = NQ__V1__JOB_EVENT__INIT;
static Nq__V1__JobEvent ev_failed2 = NQ__V1__JOB_EVENT__INIT;
static Nq__V1__JobEvent *ev_both[] = {&ev_failed, &ev_failed2};
static Nq__V1__EventBatch event_batch = NQ__V1__EVENT_BATCH__INIT;

/* Needs build_records() first: it copies event. */
static void build_event_batch(void)
{
	ev_failed = event;
	ev_failed.kind = "failed";
	ev_failed.topic_seq = NQT_TOPIC_SEQ;
	ev_failed2.seq = NQT_EVENT_SEQ + 1;
	ev_failed2.kind = "failed";
	ev_failed2.id = NQT_ID2;
	ev_failed2.queue = NQT_QUEUE;
	ev_failed2.type = NQT_TYPE;
	ev_failed2.attempt = 1;
	ev_failed2.topic_seq = NQT_TOPIC_SEQ + 1;
	event_batch.n_events = COUNT(ev_both);
	event_batch.events = ev_both;
}

/* Two dead jobs: the fully populated one (replayed twice), and a job whose
 * payload schema no worker served, as a list shows it (no payload). */
static Nq__V1__AttemptError err_schema = NQ__V1__ATTEMPT_ERROR__INIT;
static Nq__V1__AttemptError *errs_schema[] = {&err_schema};
static Nq__V1__Job job_schema = NQ__V1__JOB__INIT;
static Nq__V1__DeadJob dead = NQ__V1__DEAD_JOB__INIT;
static Nq__V1__DeadJob dead_schema = NQ__V1__DEAD_JOB__INIT;
static Nq__V1__DeadJob *dead_both[] = {&dead, &dead_schema};
static Nq__V1__DeadJob *dead_page[] = {&dead_schema};

static void build_dead_jobs(void)
{
	err_schema.attempt = 1;
	err_schema.at_us = NQT_FINISHED_US;
	err_schema.message = NQT_SCHEMA_ERROR;
	err_schema.worker_id = NQT_WORKER;
	job_schema.id = NQT_ID2;
	job_schema.spec = &spec_min;
	job_schema.state = NQ__V1__JOB_STATE__JOB_STATE_DEAD;
	job_schema.attempt = 1;
	job_schema.max_attempts = 10;
	job_schema.created_us = NQT_CREATED_US;
	job_schema.run_at_us = NQT_CREATED_US;
	job_schema.started_us = NQT_STARTED_US;
	job_schema.finished_us = NQT_FINISHED_US;
	job_schema.n_errors = COUNT(errs_schema);
	job_schema.errors = errs_schema;
	job_schema.dead_reason = NQT_SCHEMA_REASON;
	job_schema.timeout_ms = 300000;
	dead.job = &job;
	dead.reason = NQT_DEAD_REASON;
	dead.dead_at_us = NQT_FINISHED_US;
	dead.stored_at_us = NQT_STORED_US;
	dead.replays = NQT_REPLAYS;
	dead.replayed_as = NQT_ID3;
	dead_schema.job = &job_schema;
	dead_schema.reason = NQT_SCHEMA_REASON;
	dead_schema.dead_at_us = NQT_FINISHED_US;
	dead_schema.stored_at_us = NQT_STORED_US;
}

/* Job.in_dlq came after the job fixtures: the summary the broker keeps of
 * a dead job once nq-dlq holds it, the schema-rejected job above. */
static Nq__V1__Job job_in_dlq = NQ__V1__JOB__INIT;

/* Needs build_dead_jobs() first: it copies job_schema. */
static void build_job_in_dlq(void)
{
	job_in_dlq = job_schema;
	job_in_dlq.in_dlq = 1;
}

/* Added with the dispatch limits: a queue's limit gauges in its stats,
 * and a breaker's event (a queue, no job). */
static Nq__V1__QueueStats qstats_limits = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__JobEvent event_breaker = NQ__V1__JOB_EVENT__INIT;

/* Added with the group rows of stats: a fair queue's largest group and
 * "other". */
static Nq__V1__QueueStats qstats_groups = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__GroupStats group_a = NQ__V1__GROUP_STATS__INIT;
static Nq__V1__GroupStats group_other = NQ__V1__GROUP_STATS__INIT;
static Nq__V1__GroupStats *group_list[] = {&group_a, &group_other};

/* Added with the limit events: a queue whose max_in_flight holds its
 * ready jobs back. */
static Nq__V1__JobEvent event_limit = NQ__V1__JOB_EVENT__INIT;

static void build_limit_samples(void)
{
	qstats_limits.queue = NQT_QUEUE;
	qstats_limits.ready = NQT_THROTTLED;
	qstats_limits.leased = NQT_IN_FLIGHT_LIMIT;
	qstats_limits.in_flight_limit = NQT_IN_FLIGHT_LIMIT;
	qstats_limits.tokens = NQT_TOKENS;
	qstats_limits.breaker_state = 2;
	qstats_limits.throttled = NQT_THROTTLED;
	event_breaker.seq = NQT_EVENT_SEQ;
	event_breaker.kind = "breaker_opened";
	event_breaker.queue = NQT_QUEUE;
	event_breaker.at_us = NQT_FINISHED_US;
	event_breaker.failure_ratio = NQT_FAILURE_RATIO;
	group_a.group = NQT_GROUP_KEY;
	group_a.ready = NQT_THROTTLED;
	group_a.leased = NQT_IN_FLIGHT_LIMIT;
	group_other.group = "other";
	group_other.ready = NQT_TOKENS;
	qstats_groups.queue = NQT_QUEUE;
	qstats_groups.ready = NQT_THROTTLED + NQT_TOKENS;
	qstats_groups.n_groups = 2;
	qstats_groups.groups = group_list;
	event_limit.seq = NQT_EVENT_SEQ;
	event_limit.kind = "limit_reached";
	event_limit.queue = NQT_QUEUE;
	event_limit.at_us = NQT_FINISHED_US;
	event_limit.limit = "max_in_flight";
}

static void envelope(Nq__V1__Request *r, Nq__V1__Request__BodyCase body);
static void reply_envelope(Nq__V1__Reply *r, Nq__V1__Reply__BodyCase body);

/* Added with the cancel of running jobs, deadlines and progress: a spec
 * with finish_within, a leased job canceled with progress reported, its
 * progress event, a bulk cancel and its count, an Extend carrying
 * progress and a reply telling one lease to stop. */
static Nq__V1__JobSpec spec_control = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__Job job_control = NQ__V1__JOB__INIT;
static Nq__V1__JobEvent event_progress = NQ__V1__JOB_EVENT__INIT;
static Nq__V1__CancelRequest rq_cancel_bulk = NQ__V1__CANCEL_REQUEST__INIT;
static Nq__V1__CancelReply rp_cancel_bulk = NQ__V1__CANCEL_REPLY__INIT;
static Nq__V1__JobProgress progress = NQ__V1__JOB_PROGRESS__INIT;
static Nq__V1__LeaseRef lease_progress = NQ__V1__LEASE_REF__INIT;
static Nq__V1__LeaseRef *leases_progress[] = {&lease_progress};
static Nq__V1__ExtendRequest rq_extend_progress = NQ__V1__EXTEND_REQUEST__INIT;
static Nq__V1__Status st_stop = NQ__V1__STATUS__INIT;
static Nq__V1__Status *stop_results[] = {&st_stop, &st_stop};
static protobuf_c_boolean stop_flags[] = {0, 1};
static Nq__V1__ExtendReply rp_extend_stop = NQ__V1__EXTEND_REPLY__INIT;
static Nq__V1__Request req_cancel_bulk, req_extend_progress;
static Nq__V1__Reply rep_cancel_bulk, rep_extend_stop;

/* Needs build_spec() and build_job() first: it copies spec and job. */
static void build_control_samples(void)
{
	spec_control = spec;
	spec_control.finish_within_ms = NQT_FINISH_WITHIN_MS;
	job_control = job;
	job_control.cancel_requested = 1;
	job_control.progress_pct = NQT_PROGRESS_PCT;
	job_control.progress_note = NQT_PROGRESS_NOTE;
	job_control.progress_at_us = NQT_FINISHED_US;
	event_progress.seq = NQT_EVENT_SEQ;
	event_progress.kind = "progress";
	event_progress.id = NQT_ID;
	event_progress.queue = NQT_QUEUE;
	event_progress.progress_pct = NQT_PROGRESS_PCT;
	event_progress.progress_note = NQT_PROGRESS_NOTE;
	rq_cancel_bulk.queue = NQT_QUEUE;
	rq_cancel_bulk.state = NQ__V1__JOB_STATE__JOB_STATE_LEASED;
	rq_cancel_bulk.type = NQT_TYPE;
	rp_cancel_bulk.canceled = NQT_CANCELED;
	progress.pct = NQT_PROGRESS_PCT;
	progress.note = NQT_PROGRESS_NOTE;
	lease_progress.id = NQT_ID;
	lease_progress.lease_token = NQT_LEASE_TOKEN;
	lease_progress.progress = &progress;
	rq_extend_progress.n_leases = COUNT(leases_progress);
	rq_extend_progress.leases = leases_progress;
	rq_extend_progress.lease_ms = NQT_TIMEOUT_MS;
	rq_extend_progress.worker_id = NQT_WORKER;
	rp_extend_stop.n_results = COUNT(stop_results);
	rp_extend_stop.results = stop_results;
	rp_extend_stop.n_stop = COUNT(stop_flags);
	rp_extend_stop.stop = stop_flags;
	envelope(&req_cancel_bulk, NQ__V1__REQUEST__BODY_CANCEL);
	req_cancel_bulk.cancel = &rq_cancel_bulk;
	envelope(&req_extend_progress, NQ__V1__REQUEST__BODY_EXTEND);
	req_extend_progress.extend = &rq_extend_progress;
	reply_envelope(&rep_cancel_bulk, NQ__V1__REPLY__BODY_CANCEL);
	rep_cancel_bulk.cancel = &rp_cancel_bulk;
	reply_envelope(&rep_extend_stop, NQ__V1__REPLY__BODY_EXTEND);
	rep_extend_stop.extend = &rp_extend_stop;
}

static char *dlq_ids[] = {NQT_ID, NQT_ID2};
static Nq__V1__DlqIngestRequest rq_dlq_ingest =
    NQ__V1__DLQ_INGEST_REQUEST__INIT;
static Nq__V1__DlqListRequest rq_dlq_list = NQ__V1__DLQ_LIST_REQUEST__INIT;
static Nq__V1__DlqShowRequest rq_dlq_show = NQ__V1__DLQ_SHOW_REQUEST__INIT;
static Nq__V1__DlqReplayRequest rq_dlq_replay =
    NQ__V1__DLQ_REPLAY_REQUEST__INIT;
static Nq__V1__DlqReplayRequest rq_dlq_replay_all =
    NQ__V1__DLQ_REPLAY_REQUEST__INIT;
static Nq__V1__DlqPurgeRequest rq_dlq_purge = NQ__V1__DLQ_PURGE_REQUEST__INIT;
static Nq__V1__DlqPurgeRequest rq_dlq_purge_all =
    NQ__V1__DLQ_PURGE_REQUEST__INIT;
static Nq__V1__DlqStatsRequest rq_dlq_stats = NQ__V1__DLQ_STATS_REQUEST__INIT;

/* Replay and purge each get two samples, by ids and "all", because a real
 * request is one or the other. */
static void build_dlq_request_bodies(void)
{
	rq_dlq_ingest.n_jobs = COUNT(dead_both);
	rq_dlq_ingest.jobs = dead_both;
	rq_dlq_list.queue = NQT_QUEUE2;
	rq_dlq_list.type = NQT_TYPE;
	rq_dlq_list.reason = NQT_SCHEMA_REASON;
	rq_dlq_list.since_us = NQT_SINCE_US;
	rq_dlq_list.limit = NQT_DLQ_LIMIT;
	rq_dlq_list.before_id = NQT_ID3;
	rq_dlq_show.id = NQT_ID;
	rq_dlq_replay.n_ids = COUNT(dlq_ids);
	rq_dlq_replay.ids = dlq_ids;
	rq_dlq_replay.rate_per_s = NQT_REPLAY_RATE;
	rq_dlq_replay_all.all = 1;
	rq_dlq_replay_all.queue = NQT_QUEUE;
	rq_dlq_purge.n_ids = COUNT(dlq_ids);
	rq_dlq_purge.ids = dlq_ids;
	rq_dlq_purge_all.all = 1;
	rq_dlq_purge_all.older_than_ms = NQT_OLDER_THAN_MS;
	rq_dlq_purge_all.queue = NQT_QUEUE2;
}

static Nq__V1__Request req_dlq_ingest, req_dlq_list, req_dlq_show,
    req_dlq_replay, req_dlq_replay_all, req_dlq_purge, req_dlq_purge_all,
    req_dlq_stats;

static void envelope(Nq__V1__Request *r, Nq__V1__Request__BodyCase body)
{
	static const Nq__V1__Request init = NQ__V1__REQUEST__INIT;
	*r = init;
	r->version = 1;
	r->token = NQT_TOKEN;
	r->body_case = body;
}

static void build_dlq_requests(void)
{
	build_dlq_request_bodies();
	envelope(&req_dlq_ingest, NQ__V1__REQUEST__BODY_DLQ_INGEST);
	req_dlq_ingest.dlq_ingest = &rq_dlq_ingest;
	envelope(&req_dlq_list, NQ__V1__REQUEST__BODY_DLQ_LIST);
	req_dlq_list.dlq_list = &rq_dlq_list;
	envelope(&req_dlq_show, NQ__V1__REQUEST__BODY_DLQ_SHOW);
	req_dlq_show.dlq_show = &rq_dlq_show;
	envelope(&req_dlq_replay, NQ__V1__REQUEST__BODY_DLQ_REPLAY);
	req_dlq_replay.dlq_replay = &rq_dlq_replay;
	envelope(&req_dlq_replay_all, NQ__V1__REQUEST__BODY_DLQ_REPLAY);
	req_dlq_replay_all.dlq_replay = &rq_dlq_replay_all;
	envelope(&req_dlq_purge, NQ__V1__REQUEST__BODY_DLQ_PURGE);
	req_dlq_purge.dlq_purge = &rq_dlq_purge;
	envelope(&req_dlq_purge_all, NQ__V1__REQUEST__BODY_DLQ_PURGE);
	req_dlq_purge_all.dlq_purge = &rq_dlq_purge_all;
	envelope(&req_dlq_stats, NQ__V1__REQUEST__BODY_DLQ_STATS);
	req_dlq_stats.dlq_stats = &rq_dlq_stats;
}

static Nq__V1__Status st_ingest = NQ__V1__STATUS__INIT;
static Nq__V1__Status *ingest_results[] = {&st_ok, &st_ingest};
static Nq__V1__DlqIngestReply rp_dlq_ingest = NQ__V1__DLQ_INGEST_REPLY__INIT;
static Nq__V1__DlqListReply rp_dlq_list = NQ__V1__DLQ_LIST_REPLY__INIT;
static Nq__V1__DlqShowReply rp_dlq_show = NQ__V1__DLQ_SHOW_REPLY__INIT;
static Nq__V1__Status st_not_found = NQ__V1__STATUS__INIT;
static Nq__V1__EnqueueResult replay_res1 = NQ__V1__ENQUEUE_RESULT__INIT;
static Nq__V1__EnqueueResult replay_res2 = NQ__V1__ENQUEUE_RESULT__INIT;
static Nq__V1__EnqueueResult *replay_results[] = {&replay_res1, &replay_res2};
static Nq__V1__DlqReplayReply rp_dlq_replay = NQ__V1__DLQ_REPLAY_REPLY__INIT;
static Nq__V1__DlqPurgeReply rp_dlq_purge = NQ__V1__DLQ_PURGE_REPLY__INIT;
static Nq__V1__DlqStatsEntry dlq_entry1 = NQ__V1__DLQ_STATS_ENTRY__INIT;
static Nq__V1__DlqStatsEntry dlq_entry2 = NQ__V1__DLQ_STATS_ENTRY__INIT;
static Nq__V1__DlqStatsEntry *dlq_entries[] = {&dlq_entry1, &dlq_entry2};
static Nq__V1__DlqStatsReply rp_dlq_stats = NQ__V1__DLQ_STATS_REPLY__INIT;

/* The answers to the requests above: ingest of both dead jobs (the second
 * refused), one page of the list, replay of both ids (the second unknown),
 * purge of both ids, and the counts per queue and reason. */
static void build_dlq_reply_bodies(void)
{
	st_ingest.code = NQ__V1__CODE__INVALID_ARGUMENT;
	st_ingest.message = NQT_INGEST_ERROR;
	rp_dlq_ingest.n_results = COUNT(ingest_results);
	rp_dlq_ingest.results = ingest_results;
	rp_dlq_list.n_jobs = COUNT(dead_page);
	rp_dlq_list.jobs = dead_page;
	rp_dlq_list.next_before_id = NQT_ID2;
	rp_dlq_show.job = &dead;
	st_not_found.code = NQ__V1__CODE__NOT_FOUND;
	st_not_found.message = NQT_REPLAY_ERROR;
	replay_res1.status = &st_ok;
	replay_res1.id = NQT_ID3;
	replay_res2.status = &st_not_found;
	rp_dlq_replay.replayed = 1;
	rp_dlq_replay.failed = 1;
	rp_dlq_replay.n_results = COUNT(replay_results);
	rp_dlq_replay.results = replay_results;
	rp_dlq_purge.purged = COUNT(dlq_ids);
	dlq_entry1.queue = NQT_QUEUE;
	dlq_entry1.reason = NQT_DEAD_REASON;
	dlq_entry1.count = NQT_DLQ_COUNT1;
	dlq_entry2.queue = NQT_QUEUE2;
	dlq_entry2.reason = NQT_SCHEMA_REASON;
	dlq_entry2.count = NQT_DLQ_COUNT2;
	rp_dlq_stats.n_entries = COUNT(dlq_entries);
	rp_dlq_stats.entries = dlq_entries;
	rp_dlq_stats.total = NQT_DLQ_COUNT1 + NQT_DLQ_COUNT2;
}

static Nq__V1__Reply rep_stats_dlq, rep_dlq_ingest, rep_dlq_list, rep_dlq_show,
    rep_dlq_replay, rep_dlq_purge, rep_dlq_stats;

static void reply_envelope(Nq__V1__Reply *r, Nq__V1__Reply__BodyCase body)
{
	static const Nq__V1__Reply init = NQ__V1__REPLY__INIT;
	*r = init;
	r->body_case = body;
}

static void build_dlq_replies(void)
{
	build_dlq_reply_bodies();
	reply_envelope(&rep_stats_dlq, NQ__V1__REPLY__BODY_STATS);
	rep_stats_dlq.stats = &rp_stats_dlq;
	reply_envelope(&rep_dlq_ingest, NQ__V1__REPLY__BODY_DLQ_INGEST);
	rep_dlq_ingest.dlq_ingest = &rp_dlq_ingest;
	reply_envelope(&rep_dlq_list, NQ__V1__REPLY__BODY_DLQ_LIST);
	rep_dlq_list.dlq_list = &rp_dlq_list;
	reply_envelope(&rep_dlq_show, NQ__V1__REPLY__BODY_DLQ_SHOW);
	rep_dlq_show.dlq_show = &rp_dlq_show;
	reply_envelope(&rep_dlq_replay, NQ__V1__REPLY__BODY_DLQ_REPLAY);
	rep_dlq_replay.dlq_replay = &rp_dlq_replay;
	reply_envelope(&rep_dlq_purge, NQ__V1__REPLY__BODY_DLQ_PURGE);
	rep_dlq_purge.dlq_purge = &rp_dlq_purge;
	reply_envelope(&rep_dlq_stats, NQ__V1__REPLY__BODY_DLQ_STATS);
	rep_dlq_stats.dlq_stats = &rp_dlq_stats;
}

/*
 * ---- samples added with queue policies ----
 *
 * QueueConfig.policy came after the queue_config fixture: a config with
 * two runtime values; the three policy requests and their replies.
 */
static Nq__V1__PolicySetting pset_timeout = NQ__V1__POLICY_SETTING__INIT;
static Nq__V1__PolicySetting pset_types = NQ__V1__POLICY_SETTING__INIT;
static Nq__V1__PolicySetting *pset_both[] = {&pset_timeout, &pset_types};
static Nq__V1__QueueConfig qconfig_policy = NQ__V1__QUEUE_CONFIG__INIT;
static Nq__V1__QueuePolicyGetRequest rq_policy_get =
    NQ__V1__QUEUE_POLICY_GET_REQUEST__INIT;
static Nq__V1__QueuePolicySetRequest rq_policy_set =
    NQ__V1__QUEUE_POLICY_SET_REQUEST__INIT;
static Nq__V1__QueuePolicyResetRequest rq_policy_reset =
    NQ__V1__QUEUE_POLICY_RESET_REQUEST__INIT;
static char *policy_reset_keys[] = {"timeout", "types"};
static Nq__V1__PolicyValue pval_timeout = NQ__V1__POLICY_VALUE__INIT;
static Nq__V1__PolicyValue pval_rate = NQ__V1__POLICY_VALUE__INIT;
static Nq__V1__PolicyValue *pval_both[] = {&pval_timeout, &pval_rate};
static Nq__V1__QueuePolicy qpolicy = NQ__V1__QUEUE_POLICY__INIT;
static Nq__V1__QueuePolicy *qpolicy_list[] = {&qpolicy};
static Nq__V1__QueuePolicyReply rp_policy = NQ__V1__QUEUE_POLICY_REPLY__INIT;
static Nq__V1__Request req_policy_get, req_policy_set, req_policy_reset;
static Nq__V1__Reply rep_policy_get, rep_policy_set, rep_policy_reset;

static void build_policy_bodies(void)
{
	pset_timeout.key = "timeout";
	pset_timeout.value = "30s";
	pset_types.key = "types";
	pset_types.value = "send,bounce";
	qconfig_policy.paused = 1;
	qconfig_policy.n_policy = COUNT(pset_both);
	qconfig_policy.policy = pset_both;
	rq_policy_get.queue = NQT_QUEUE;
	rq_policy_set.queue = NQT_QUEUE;
	rq_policy_set.n_settings = COUNT(pset_both);
	rq_policy_set.settings = pset_both;
	rq_policy_reset.queue = NQT_QUEUE;
	rq_policy_reset.n_keys = COUNT(policy_reset_keys);
	rq_policy_reset.keys = policy_reset_keys;
	pval_timeout.key = "timeout";
	pval_timeout.value = "30s";
	pval_timeout.source = "runtime";
	pval_rate.key = "rate";
	pval_rate.value = "";
	pval_rate.source = "default";
	qpolicy.queue = NQT_QUEUE;
	qpolicy.n_values = COUNT(pval_both);
	qpolicy.values = pval_both;
	rp_policy.n_queues = COUNT(qpolicy_list);
	rp_policy.queues = qpolicy_list;
}

static void build_policy_samples(void)
{
	build_policy_bodies();
	envelope(&req_policy_get, NQ__V1__REQUEST__BODY_POLICY_GET);
	req_policy_get.policy_get = &rq_policy_get;
	envelope(&req_policy_set, NQ__V1__REQUEST__BODY_POLICY_SET);
	req_policy_set.policy_set = &rq_policy_set;
	envelope(&req_policy_reset, NQ__V1__REQUEST__BODY_POLICY_RESET);
	req_policy_reset.policy_reset = &rq_policy_reset;
	reply_envelope(&rep_policy_get, NQ__V1__REPLY__BODY_POLICY_GET);
	rep_policy_get.policy_get = &rp_policy;
	reply_envelope(&rep_policy_set, NQ__V1__REPLY__BODY_POLICY_SET);
	rep_policy_set.policy_set = &rp_policy;
	reply_envelope(&rep_policy_reset, NQ__V1__REPLY__BODY_POLICY_RESET);
	rep_policy_reset.policy_reset = &rp_policy;
}

/* Added with unique scopes and nqctl list: a spec whose key holds while the
 * job is queued or running its first attempt, bounded; a list request by
 * type; and a page of a list that says where the next one starts. */
static Nq__V1__JobSpec spec_unique = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__Unique unique_active = NQ__V1__UNIQUE__INIT;
static Nq__V1__ListRequest rq_list_type = NQ__V1__LIST_REQUEST__INIT;
static Nq__V1__Request req_list_type;
static Nq__V1__ListReply rp_list_page = NQ__V1__LIST_REPLY__INIT;
static Nq__V1__Reply rep_list_page = NQ__V1__REPLY__INIT;

/* Needs build_spec() and build_replies() first: it copies spec and the
 * list reply's jobs. */
static void build_unique_samples(void)
{
	spec_unique = spec;
	spec_unique.idempotency_key = NQT_UNIQUE_KEY;
	unique_active.scope = NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_ACTIVE;
	unique_active.window_ms = NQT_UNIQUE_BOUND_MS;
	spec_unique.unique = &unique_active;
	rq_list_type.queue = NQT_QUEUE;
	rq_list_type.type = NQT_TYPE;
	rq_list_type.limit = NQT_LIST_LIMIT;
	envelope(&req_list_type, NQ__V1__REQUEST__BODY_LIST);
	req_list_type.list = &rq_list_type;
	rp_list_page.n_jobs = rp_list.n_jobs;
	rp_list_page.jobs = rp_list.jobs;
	rp_list_page.next_after_id = NQT_ID2;
	rep_list_page.body_case = NQ__V1__REPLY__BODY_LIST;
	rep_list_page.list = &rp_list_page;
}

/* JobSpec.schedule, on the jobs of cron schedules: a sample of its own. */
static Nq__V1__JobSpec spec_schedule = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__CronState cron_state = NQ__V1__CRON_STATE__INIT;
static Nq__V1__CronListRequest rq_cron_list = NQ__V1__CRON_LIST_REQUEST__INIT;
static Nq__V1__CronTriggerRequest rq_cron_trigger =
    NQ__V1__CRON_TRIGGER_REQUEST__INIT;
static Nq__V1__CronSchedule cron_sched = NQ__V1__CRON_SCHEDULE__INIT;
static Nq__V1__CronSchedule *cron_scheds[] = {&cron_sched};
static Nq__V1__CronListReply rp_cron_list = NQ__V1__CRON_LIST_REPLY__INIT;
static Nq__V1__CronTriggerReply rp_cron_trigger =
    NQ__V1__CRON_TRIGGER_REPLY__INIT;
static Nq__V1__Request req_cron_list, req_cron_trigger;
static Nq__V1__Reply rep_cron_list, rep_cron_trigger;

static void build_cron_samples(void)
{
	spec_schedule = spec;
	spec_schedule.schedule = NQT_CRON_NAME;
	cron_state.tick_us = NQT_CRON_LAST_US;
	cron_state.job_id = NQT_CRON_JOB_ID;
	rq_cron_trigger.name = NQT_CRON_NAME;
	cron_sched.name = NQT_CRON_NAME;
	cron_sched.cron = NQT_CRON_EXPR;
	cron_sched.zone = NQT_CRON_ZONE;
	cron_sched.queue = NQT_QUEUE;
	cron_sched.type = NQT_TYPE;
	cron_sched.missed = "once";
	cron_sched.last_tick_us = NQT_CRON_LAST_US;
	cron_sched.next_tick_us = NQT_CRON_NEXT_US;
	cron_sched.last_job_id = NQT_ID;
	cron_sched.last_job_state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	rp_cron_list.n_schedules = COUNT(cron_scheds);
	rp_cron_list.schedules = cron_scheds;
	rp_cron_trigger.id = NQT_ID;
	envelope(&req_cron_list, NQ__V1__REQUEST__BODY_CRON_LIST);
	req_cron_list.cron_list = &rq_cron_list;
	envelope(&req_cron_trigger, NQ__V1__REQUEST__BODY_CRON_TRIGGER);
	req_cron_trigger.cron_trigger = &rq_cron_trigger;
	reply_envelope(&rep_cron_list, NQ__V1__REPLY__BODY_CRON_LIST);
	rep_cron_list.cron_list = &rp_cron_list;
	reply_envelope(&rep_cron_trigger, NQ__V1__REPLY__BODY_CRON_TRIGGER);
	rep_cron_trigger.cron_trigger = &rp_cron_trigger;
}

/* Added with dependencies: a spec naming parents (by id and by position
 * in its request), a waiting job with a child and a parent's result, its
 * dependency_failed event and a queue's waiting count. */
static char *dep_parents[] = {NQT_ID, NQT_ID2};
static uint32_t dep_index[] = {NQT_DEP_INDEX};
static char *dep_children[] = {NQT_ID2};
static Nq__V1__JobSpec spec_depends = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__Dependencies depends = NQ__V1__DEPENDENCIES__INIT;
static Nq__V1__Job job_depends = NQ__V1__JOB__INIT;
static Nq__V1__JobFamily family = NQ__V1__JOB_FAMILY__INIT;
static Nq__V1__ParentResult parent_result = NQ__V1__PARENT_RESULT__INIT;
static Nq__V1__ParentResult parent_dropped = NQ__V1__PARENT_RESULT__INIT;
static Nq__V1__ParentResult *parent_results[] = {
    &parent_result, &parent_dropped};
static Nq__V1__JobEvent event_dependency = NQ__V1__JOB_EVENT__INIT;
static Nq__V1__QueueStats qstats_waiting = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__QueueStats qstats_latency = NQ__V1__QUEUE_STATS__INIT;
static Nq__V1__JobSpec *chain_specs[] = {&spec, &spec_depends};
static Nq__V1__EnqueueRequest rq_chain = NQ__V1__ENQUEUE_REQUEST__INIT;
static Nq__V1__Request req_chain;

static void build_depends_samples(void)
{
	spec_depends = spec;
	depends.n_depends_on = COUNT(dep_parents);
	depends.depends_on = dep_parents;
	depends.on_parent_failure = NQ__V1__PARENT_FAILURE__PARENT_FAILURE_RUN;
	depends.n_depends_on_index = COUNT(dep_index);
	depends.depends_on_index = dep_index;
	spec_depends.depends = &depends;
	job_depends = job;
	job_depends.spec = &spec_depends;
	job_depends.state = NQ__V1__JOB_STATE__JOB_STATE_WAITING;
	job_depends.family = &family;
	family.n_children = COUNT(dep_children);
	family.children = dep_children;
	family.waiting_on = NQT_DEP_WAITING_ON;
	parent_result.id = NQT_ID;
	parent_result.state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	parent_result.result = (ProtobufCBinaryData){
	    sizeof NQT_DEP_RESULT - 1, (uint8_t *)NQT_DEP_RESULT};
	parent_dropped.id = NQT_ID2;
	parent_dropped.state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	parent_dropped.result_dropped = true;
	family.n_parent_results = COUNT(parent_results);
	family.parent_results = parent_results;
	event_dependency.seq = NQT_EVENT_SEQ;
	event_dependency.kind = "dependency_failed";
	event_dependency.id = NQT_ID;
	event_dependency.queue = NQT_QUEUE;
	event_dependency.error = NQT_DEP_ERROR;
	qstats_waiting.queue = NQT_QUEUE;
	qstats_waiting.waiting = NQT_DEP_WAITING_ON;
	qstats_latency.queue = NQT_QUEUE;
	qstats_latency.wait_p50_us = NQT_LAT_WAIT_P50_US;
	qstats_latency.wait_p99_us = NQT_LAT_WAIT_P99_US;
	qstats_latency.wait_window_jobs = NQT_LAT_WAIT_JOBS;
	qstats_latency.run_p50_us = NQT_LAT_RUN_P50_US;
	qstats_latency.run_p99_us = NQT_LAT_RUN_P99_US;
	qstats_latency.run_window_jobs = NQT_LAT_RUN_JOBS;
	rq_chain.n_jobs = COUNT(chain_specs);
	rq_chain.jobs = chain_specs;
	rq_chain.all_or_none = true;
	envelope(&req_chain, NQ__V1__REQUEST__BODY_ENQUEUE);
	req_chain.enqueue = &rq_chain;
}

/* Added with the workers of stats: one worker seen fetching. */
static char *worker_queues[] = {NQT_QUEUE, NQT_QUEUE2};
static Nq__V1__WorkerStats worker_stats = NQ__V1__WORKER_STATS__INIT;
static Nq__V1__WorkerStats *worker_list[] = {&worker_stats};
static Nq__V1__StatsReply rp_stats_workers = NQ__V1__STATS_REPLY__INIT;
static Nq__V1__Reply rep_stats_workers;

static void build_worker_samples(void)
{
	worker_stats.worker_id = NQT_WORKER;
	worker_stats.n_queues = COUNT(worker_queues);
	worker_stats.queues = worker_queues;
	worker_stats.free_slots = 3;
	worker_stats.leased = 5;
	worker_stats.last_seen_us = NQT_CREATED_US;
	worker_stats.fetches = 7;
	rp_stats_workers.n_workers = COUNT(worker_list);
	rp_stats_workers.workers = worker_list;
	reply_envelope(&rep_stats_workers, NQ__V1__REPLY__BODY_STATS);
	rep_stats_workers.stats = &rp_stats_workers;
}

/* Added with batches: a spec joining a batch, the batch record with its
 * callbacks, an enqueue that creates a sealed batch and its reply, each
 * batch request and reply, and the batch_completed event. */
static Nq__V1__JobSpec spec_batch = NQ__V1__JOB_SPEC__INIT;
static Nq__V1__Dependencies batch_depends = NQ__V1__DEPENDENCIES__INIT;
static Nq__V1__Batch batch_rec = NQ__V1__BATCH__INIT;
static Nq__V1__Batch *batch_recs[] = {&batch_rec};
static Nq__V1__BatchCreateRequest rq_batch_create =
    NQ__V1__BATCH_CREATE_REQUEST__INIT;
static Nq__V1__BatchRef rq_batch_ref = NQ__V1__BATCH_REF__INIT;
static Nq__V1__BatchListRequest rq_batch_list =
    NQ__V1__BATCH_LIST_REQUEST__INIT;
static Nq__V1__BatchReply rp_batch = NQ__V1__BATCH_REPLY__INIT;
static Nq__V1__BatchListReply rp_batch_list = NQ__V1__BATCH_LIST_REPLY__INIT;
static Nq__V1__EnqueueRequest rq_enqueue_batch = NQ__V1__ENQUEUE_REQUEST__INIT;
static Nq__V1__JobSpec *enqueue_batch_specs[] = {&spec};
static Nq__V1__EnqueueResult enqueue_batch_res = NQ__V1__ENQUEUE_RESULT__INIT;
static Nq__V1__EnqueueResult *enqueue_batch_results[] = {&enqueue_batch_res};
static Nq__V1__EnqueueReply rp_enqueue_batch = NQ__V1__ENQUEUE_REPLY__INIT;
static Nq__V1__JobEvent event_batch_completed = NQ__V1__JOB_EVENT__INIT;
static Nq__V1__Request req_batch_create, req_batch_seal, req_batch_get,
    req_batch_list, req_batch_cancel, req_enqueue_batch;
static Nq__V1__Reply rep_batch_create, rep_batch_seal, rep_batch_get,
    rep_batch_list, rep_batch_cancel, rep_enqueue_batch;

static void build_batch_record(void)
{
	spec_batch = spec;
	batch_depends.batch_id = NQT_BATCH_ID;
	spec_batch.depends = &batch_depends;
	batch_rec.id = NQT_BATCH_ID;
	batch_rec.created_us = NQT_CREATED_US;
	batch_rec.sealed = true;
	batch_rec.total = NQT_BATCH_TOTAL;
	batch_rec.succeeded = NQT_BATCH_TOTAL - 4;
	batch_rec.dead = 1;
	batch_rec.canceled = 1;
	batch_rec.expired = 1;
	batch_rec.on_success = &spec;
	batch_rec.on_complete = &spec;
	batch_rec.on_success_id = NQT_ID2;
	batch_rec.on_complete_id = NQT_ID3;
	batch_rec.completed_us = NQT_CRON_LAST_US;
	batch_rec.cancel_requested = true;
	batch_rec.pending = 1;
	batch_rec.waiting = 1;
	batch_rec.scheduled = 2;
	batch_rec.ready = 3;
	batch_rec.leased = 4;
}

static void build_batch_samples(void)
{
	build_batch_record();
	rq_batch_create.on_success = &spec;
	rq_batch_create.on_complete = &spec;
	rq_batch_create.seal = true;
	rq_batch_ref.id = NQT_BATCH_ID;
	rq_batch_list.limit = NQT_DLQ_LIMIT;
	rq_batch_list.after_id = NQT_BATCH_ID;
	rp_batch.batch = &batch_rec;
	rp_batch.canceled = 1;
	rp_batch_list.n_batches = COUNT(batch_recs);
	rp_batch_list.batches = batch_recs;
	rp_batch_list.next_after_id = NQT_BATCH_ID;
	rq_enqueue_batch.n_jobs = COUNT(enqueue_batch_specs);
	rq_enqueue_batch.jobs = enqueue_batch_specs;
	rq_enqueue_batch.batch = &rq_batch_create;
	enqueue_batch_res.id = NQT_ID;
	rp_enqueue_batch.n_results = COUNT(enqueue_batch_results);
	rp_enqueue_batch.results = enqueue_batch_results;
	rp_enqueue_batch.batch_id = NQT_BATCH_ID;
	event_batch_completed.seq = NQT_EVENT_SEQ;
	event_batch_completed.kind = "batch_completed";
	event_batch_completed.id = NQT_ID;
	event_batch_completed.queue = NQT_QUEUE;
	event_batch_completed.batch_id = NQT_BATCH_ID;
	envelope(&req_batch_create, NQ__V1__REQUEST__BODY_BATCH_CREATE);
	req_batch_create.batch_create = &rq_batch_create;
	envelope(&req_batch_seal, NQ__V1__REQUEST__BODY_BATCH_SEAL);
	req_batch_seal.batch_seal = &rq_batch_ref;
	envelope(&req_batch_get, NQ__V1__REQUEST__BODY_BATCH_GET);
	req_batch_get.batch_get = &rq_batch_ref;
	envelope(&req_batch_list, NQ__V1__REQUEST__BODY_BATCH_LIST);
	req_batch_list.batch_list = &rq_batch_list;
	envelope(&req_batch_cancel, NQ__V1__REQUEST__BODY_BATCH_CANCEL);
	req_batch_cancel.batch_cancel = &rq_batch_ref;
	envelope(&req_enqueue_batch, NQ__V1__REQUEST__BODY_ENQUEUE);
	req_enqueue_batch.enqueue = &rq_enqueue_batch;
	reply_envelope(&rep_batch_create, NQ__V1__REPLY__BODY_BATCH_CREATE);
	rep_batch_create.batch_create = &rp_batch;
	reply_envelope(&rep_batch_seal, NQ__V1__REPLY__BODY_BATCH_SEAL);
	rep_batch_seal.batch_seal = &rp_batch;
	reply_envelope(&rep_batch_get, NQ__V1__REPLY__BODY_BATCH_GET);
	rep_batch_get.batch_get = &rp_batch;
	reply_envelope(&rep_batch_list, NQ__V1__REPLY__BODY_BATCH_LIST);
	rep_batch_list.batch_list = &rp_batch_list;
	reply_envelope(&rep_batch_cancel, NQ__V1__REPLY__BODY_BATCH_CANCEL);
	rep_batch_cancel.batch_cancel = &rp_batch;
	reply_envelope(&rep_enqueue_batch, NQ__V1__REPLY__BODY_ENQUEUE);
	rep_enqueue_batch.enqueue = &rp_enqueue_batch;
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
    {"job_spec_replay", &spec_replay.base},
    {"job_spec_group", &spec_group.base},
    {"job_spec_claim_check", &spec_claim_check.base},
    {"completion_batch_schema", &batch_schema.base},
    {"queue_config", &qconfig.base},
    {"event_batch", &event_batch.base},
    {"dead_job", &dead.base},
    {"request_dlq_ingest", &req_dlq_ingest.base},
    {"request_dlq_list", &req_dlq_list.base},
    {"request_dlq_show", &req_dlq_show.base},
    {"request_dlq_replay", &req_dlq_replay.base},
    {"request_dlq_replay_all", &req_dlq_replay_all.base},
    {"request_dlq_purge", &req_dlq_purge.base},
    {"request_dlq_purge_all", &req_dlq_purge_all.base},
    {"request_dlq_stats", &req_dlq_stats.base},
    {"reply_stats_dlq", &rep_stats_dlq.base},
    {"reply_dlq_ingest", &rep_dlq_ingest.base},
    {"reply_dlq_list", &rep_dlq_list.base},
    {"reply_dlq_show", &rep_dlq_show.base},
    {"reply_dlq_replay", &rep_dlq_replay.base},
    {"reply_dlq_purge", &rep_dlq_purge.base},
    {"reply_dlq_stats", &rep_dlq_stats.base},
    {"job_lease_patch", &lease_patch.base},
    {"job_success_patch", &success_patch.base},
    {"new_job_record", &new_record.base},
    {"job_in_dlq", &job_in_dlq.base},
    {"queue_config_policy", &qconfig_policy.base},
    {"request_policy_get", &req_policy_get.base},
    {"request_policy_set", &req_policy_set.base},
    {"request_policy_reset", &req_policy_reset.base},
    {"reply_policy_get", &rep_policy_get.base},
    {"reply_policy_set", &rep_policy_set.base},
    {"reply_policy_reset", &rep_policy_reset.base},
    {"queue_stats_limits", &qstats_limits.base},
    {"job_event_breaker", &event_breaker.base},
    {"queue_stats_groups", &qstats_groups.base},
    {"job_event_limit", &event_limit.base},
    {"job_spec_unique", &spec_unique.base},
    {"request_list_type", &req_list_type.base},
    {"reply_list_page", &rep_list_page.base},
    {"job_spec_control", &spec_control.base},
    {"job_control", &job_control.base},
    {"job_event_progress", &event_progress.base},
    {"request_cancel_bulk", &req_cancel_bulk.base},
    {"reply_cancel_bulk", &rep_cancel_bulk.base},
    {"request_extend_progress", &req_extend_progress.base},
    {"reply_extend_stop", &rep_extend_stop.base},
    {"cron_state", &cron_state.base},
    {"job_spec_schedule", &spec_schedule.base},
    {"request_cron_list", &req_cron_list.base},
    {"request_cron_trigger", &req_cron_trigger.base},
    {"reply_cron_list", &rep_cron_list.base},
    {"reply_cron_trigger", &rep_cron_trigger.base},
    {"job_spec_depends", &spec_depends.base},
    {"job_depends", &job_depends.base},
    {"job_event_dependency_failed", &event_dependency.base},
    {"queue_stats_waiting", &qstats_waiting.base},
    {"request_enqueue_chain", &req_chain.base},
    {"reply_stats_workers", &rep_stats_workers.base},
    {"queue_stats_latency", &qstats_latency.base},
    {"job_spec_batch", &spec_batch.base},
    {"batch", &batch_rec.base},
    {"request_batch_create", &req_batch_create.base},
    {"request_batch_seal", &req_batch_seal.base},
    {"request_batch_get", &req_batch_get.base},
    {"request_batch_list", &req_batch_list.base},
    {"request_batch_cancel", &req_batch_cancel.base},
    {"request_enqueue_batch", &req_enqueue_batch.base},
    {"reply_batch_create", &rep_batch_create.base},
    {"reply_batch_seal", &rep_batch_seal.base},
    {"reply_batch_get", &rep_batch_get.base},
    {"reply_batch_list", &rep_batch_list.base},
    {"reply_batch_cancel", &rep_batch_cancel.base},
    {"reply_enqueue_batch", &rep_enqueue_batch.base},
    {"job_event_batch_completed", &event_batch_completed.base},
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
		build_new_fields();
		build_dead_jobs();
		build_job_in_dlq();
		build_dlq_requests();
		build_dlq_replies();
		build_event_batch();
		build_patches();
		build_policy_samples();
		build_limit_samples();
		build_unique_samples();
		build_control_samples();
		build_cron_samples();
		build_depends_samples();
		build_worker_samples();
		build_batch_samples();
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
    &nq__v1__unique__descriptor,
    &nq__v1__job__descriptor,
    &nq__v1__parent_result__descriptor,
    &nq__v1__dependencies__descriptor,
    &nq__v1__job_family__descriptor,
    &nq__v1__queue_config__descriptor,
    &nq__v1__job_lease_patch__descriptor,
    &nq__v1__job_success_patch__descriptor,
    &nq__v1__new_job_record__descriptor,
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
    &nq__v1__group_stats__descriptor,
    &nq__v1__worker_stats__descriptor,
    &nq__v1__broker_stats__descriptor,
    &nq__v1__stats_reply__descriptor,
    &nq__v1__pause_request__descriptor,
    &nq__v1__resume_request__descriptor,
    &nq__v1__queue_reply__descriptor,
    &nq__v1__policy_setting__descriptor,
    &nq__v1__queue_policy_get_request__descriptor,
    &nq__v1__queue_policy_set_request__descriptor,
    &nq__v1__queue_policy_reset_request__descriptor,
    &nq__v1__policy_value__descriptor,
    &nq__v1__queue_policy__descriptor,
    &nq__v1__queue_policy_reply__descriptor,
    &nq__v1__list_request__descriptor,
    &nq__v1__list_reply__descriptor,
    &nq__v1__cron_list_request__descriptor,
    &nq__v1__cron_schedule__descriptor,
    &nq__v1__cron_list_reply__descriptor,
    &nq__v1__cron_trigger_request__descriptor,
    &nq__v1__cron_trigger_reply__descriptor,
    &nq__v1__cron_state__descriptor,
    &nq__v1__batch__descriptor,
    &nq__v1__batch_create_request__descriptor,
    &nq__v1__batch_ref__descriptor,
    &nq__v1__batch_list_request__descriptor,
    &nq__v1__batch_reply__descriptor,
    &nq__v1__batch_list_reply__descriptor,
    &nq__v1__fetch_request__descriptor,
    &nq__v1__fetch_reply__descriptor,
    &nq__v1__lease_ref__descriptor,
    &nq__v1__job_progress__descriptor,
    &nq__v1__extend_request__descriptor,
    &nq__v1__extend_reply__descriptor,
    &nq__v1__dead_job__descriptor,
    &nq__v1__dlq_ingest_request__descriptor,
    &nq__v1__dlq_ingest_reply__descriptor,
    &nq__v1__dlq_list_request__descriptor,
    &nq__v1__dlq_list_reply__descriptor,
    &nq__v1__dlq_show_request__descriptor,
    &nq__v1__dlq_show_reply__descriptor,
    &nq__v1__dlq_replay_request__descriptor,
    &nq__v1__dlq_replay_reply__descriptor,
    &nq__v1__dlq_purge_request__descriptor,
    &nq__v1__dlq_purge_reply__descriptor,
    &nq__v1__dlq_stats_request__descriptor,
    &nq__v1__dlq_stats_entry__descriptor,
    &nq__v1__dlq_stats_reply__descriptor,
    &nq__v1__request__descriptor,
    &nq__v1__reply__descriptor,
    &nq__v1__completion__descriptor,
    &nq__v1__completion_batch__descriptor,
    &nq__v1__job_event__descriptor,
    &nq__v1__event_batch__descriptor,
};

const ProtobufCMessageDescriptor *const *nqt_descriptors(size_t *n)
{
	*n = COUNT(descriptors);
	return descriptors;
}

/* ---- generic field access by descriptor ---- */

static const void *field_ptr(
    const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	return (const char *)m + f->offset;
}

static bool is_oneof(const ProtobufCFieldDescriptor *f)
{
	return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* For oneof members: whether this member is the selected one. */
static bool oneof_selected(
    const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	uint32_t c;
	memcpy(&c, (const char *)m + f->quantifier_offset, sizeof c);
	return c == f->id;
}

static size_t repeated_count(
    const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	size_t n;
	memcpy(&n, (const char *)m + f->quantifier_offset, sizeof n);
	return n;
}

static const void *repeated_elem(
    const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t i)
{
	const char *arr;
	memcpy(&arr, field_ptr(m, f), sizeof arr);
	return arr + i * nqi_pb_value_size(f->type);
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
		return memcmp(p, zero, nqi_pb_value_size(f->type)) != 0;
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
		       (ba->len == 0 ||
		           memcmp(ba->data, bb->data, ba->len) == 0);
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!msg_of(a) || !msg_of(b))
			return msg_of(a) == msg_of(b);
		return nqt_msg_equal(msg_of(a), msg_of(b), why, len);
	default:
		return memcmp(a, b, nqi_pb_value_size(f->type)) == 0;
	}
}

/* Prepends "Message.field" (and "[i]") to the path in why. */
static void note_path(char *why, size_t len,
    const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
    long idx)
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

bool nqt_msg_equal(
    const ProtobufCMessage *a, const ProtobufCMessage *b, char *why, size_t len)
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

static void cover_field(
    nqt_coverage *c, long t, const ProtobufCMessage *m, unsigned i)
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
			snprintf(
			    missing, len, "%s (no sample holds one)", d->name);
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
