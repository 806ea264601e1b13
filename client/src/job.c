/*
 * nq_job: a job as the broker reported it. The wrapper owns one unpacked
 * nq.v1.Job; accessors read it and never fail. Strings the broker left
 * empty read as "", numbers as 0.
 */
#include <stdlib.h>

#include "internal.h"

/* A wrapper holding no job yet (NULL when out of memory); nq_job_free
 * frees it either way. */
static nq_job *job_alloc(void)
{
	return calloc(1, sizeof(nq_job));
}

int nqc_job_wrap(Nq__V1__Job *pb, nq_job **out)
{
	nq_job *job = job_alloc();
	if (!job) {
		nq__v1__job__free_unpacked(pb, NULL);
		return NQ_ENOMEM;
	}
	job->pb = pb;
	*out = job;
	return NQ_OK;
}

NQ_API void nq_job_free(nq_job *job)
{
	if (!job)
		return;
	if (job->mem) {
		nqc_jobs_mem *mem = job->mem;
		if (atomic_fetch_sub(&mem->refs, 1) == 1) {
			nqi_arena_free(mem->arena);
			free(mem);
		}
		return;
	}
	if (job->pb)
		nq__v1__job__free_unpacked(job->pb, NULL);
	free(job);
}

/* protoc-c leaves absent strings pointing at "" already; this also covers
 * a missing job or spec. */
static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static const Nq__V1__JobSpec *job_spec(const nq_job *job)
{
	return job && job->pb ? job->pb->spec : NULL;
}

static const Nq__V1__Job *job_pb(const nq_job *job)
{
	return job ? job->pb : NULL;
}

NQ_API const char *nq_job_id(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return str_or_empty(j ? j->id : NULL);
}

NQ_API const char *nq_job_queue(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->queue : NULL);
}

NQ_API const char *nq_job_type(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->type : NULL);
}

NQ_API nq_state nq_job_state(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	if (!j || (int)j->state < 0 || (int)j->state > (int)NQ_STATE_EXPIRED)
		return NQ_STATE_UNSPECIFIED;
	return (nq_state)j->state;
}

NQ_API uint32_t nq_job_attempt(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->attempt : 0;
}

NQ_API uint32_t nq_job_max_attempts(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->max_attempts : 0;
}

NQ_API int32_t nq_job_priority(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return s ? s->priority : 0;
}

NQ_API uint32_t nq_job_schema_version(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return s ? s->schema_version : 0;
}

NQ_API const char *nq_job_content_type(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->content_type : NULL);
}

/* Bytes fields: NULL data with length 0 when empty. */
static const void *bytes_out(const ProtobufCBinaryData *b, size_t *len)
{
	size_t n = b ? b->len : 0;
	if (len)
		*len = n;
	return n ? b->data : NULL;
}

NQ_API const void *nq_job_payload(const nq_job *job, size_t *len)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return bytes_out(s ? &s->payload : NULL, len);
}

NQ_API const void *nq_job_result(const nq_job *job, size_t *len)
{
	const Nq__V1__Job *j = job_pb(job);
	return bytes_out(j ? &j->result : NULL, len);
}

NQ_API const char *nq_job_traceparent(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->traceparent : NULL);
}

NQ_API const char *nq_job_idempotency_key(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->idempotency_key : NULL);
}

NQ_API const char *nq_job_ordering_key(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return str_or_empty(s ? s->ordering_key : NULL);
}

NQ_API const char *nq_job_dead_reason(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return str_or_empty(j ? j->dead_reason : NULL);
}

NQ_API bool nq_job_in_dlq(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j && j->in_dlq;
}

NQ_API const char *nq_job_worker_id(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return str_or_empty(j ? j->worker_id : NULL);
}

NQ_API uint64_t nq_job_created_us(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->created_us : 0;
}

NQ_API uint64_t nq_job_run_at_us(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->run_at_us : 0;
}

NQ_API uint64_t nq_job_started_us(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->started_us : 0;
}

NQ_API uint64_t nq_job_finished_us(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->finished_us : 0;
}

NQ_API uint64_t nq_job_timeout_ms(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->timeout_ms : 0;
}

NQ_API uint64_t nq_job_lease_token(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->lease_token : 0;
}

NQ_API uint64_t nq_job_lease_expires_us(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->lease_expires_us : 0;
}

NQ_API size_t nq_job_error_count(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->n_errors : 0;
}

NQ_API const char *nq_job_error(
    const nq_job *job, size_t i, uint32_t *attempt, uint64_t *at_us)
{
	const Nq__V1__Job *j = job_pb(job);
	if (!j || i >= j->n_errors || !j->errors[i])
		return NULL;
	const Nq__V1__AttemptError *e = j->errors[i];
	if (attempt)
		*attempt = e->attempt;
	if (at_us)
		*at_us = e->at_us;
	return str_or_empty(e->message);
}
