/*
 * nq_job: a job as the broker reported it. The wrapper owns one unpacked
 * nq.v1.Job; accessors read it and never fail. Strings the broker left
 * empty read as "", numbers as 0.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nqi/util.h"

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

/*
 * One accessor per field of the job (of = job_pb) or of its spec
 * (of = job_spec). The names, types and visibility are the public ones of
 * nq.h; a missing job or spec reads as 0, a missing string as "".
 */
#define NQC_JOB_NUM(type, field, of)                                           \
	NQ_API type nq_job_##field(const nq_job *job)                          \
	{                                                                      \
		return of(job) ? of(job)->field : 0;                           \
	}

#define NQC_JOB_STR(field, of)                                                 \
	NQ_API const char *nq_job_##field(const nq_job *job)                   \
	{                                                                      \
		return str_or_empty(of(job) ? of(job)->field : NULL);          \
	}

/* In the order of nq.h. */
NQC_JOB_STR(id, job_pb)
NQC_JOB_STR(queue, job_spec)
NQC_JOB_STR(type, job_spec)

NQ_API nq_state nq_job_state(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	if (!j || (int)j->state < 0 || (int)j->state > (int)NQ_STATE_WAITING)
		return NQ_STATE_UNSPECIFIED;
	return (nq_state)j->state;
}

NQC_JOB_NUM(uint32_t, attempt, job_pb)
NQC_JOB_NUM(uint32_t, max_attempts, job_pb)
NQC_JOB_NUM(int32_t, priority, job_spec)
NQC_JOB_NUM(uint32_t, schema_version, job_spec)
NQC_JOB_STR(content_type, job_spec)

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

NQC_JOB_STR(traceparent, job_spec)
NQC_JOB_STR(idempotency_key, job_spec)
NQC_JOB_STR(ordering_key, job_spec)
NQC_JOB_STR(group_key, job_spec)
NQC_JOB_STR(payload_ref, job_spec)
NQC_JOB_NUM(uint64_t, payload_size, job_spec)
NQC_JOB_STR(payload_sha256, job_spec)
/* A spec without its Unique has the window scope of the broker. */
static const Nq__V1__Unique *job_unique(const nq_job *job)
{
	return job_spec(job) ? job_spec(job)->unique : NULL;
}

NQ_API nq_unique_scope nq_job_unique_scope(const nq_job *job)
{
	return job_unique(job) ? (nq_unique_scope)job_unique(job)->scope
	                       : NQ_UNIQUE_WINDOW;
}

NQ_API uint64_t nq_job_unique_window_ms(const nq_job *job)
{
	return job_unique(job) ? job_unique(job)->window_ms : 0;
}
NQC_JOB_STR(schedule, job_spec)
NQ_API const char *nq_job_batch_id(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return s && s->depends ? str_or_empty(s->depends->batch_id) : "";
}
NQC_JOB_STR(dead_reason, job_pb)
NQC_JOB_NUM(bool, in_dlq, job_pb)
NQC_JOB_STR(worker_id, job_pb)
NQC_JOB_NUM(uint64_t, created_us, job_pb)
NQC_JOB_NUM(uint64_t, run_at_us, job_pb)
NQC_JOB_NUM(uint64_t, started_us, job_pb)
NQC_JOB_NUM(uint64_t, finished_us, job_pb)
NQC_JOB_NUM(uint64_t, timeout_ms, job_pb)
NQC_JOB_NUM(uint64_t, lease_token, job_pb)
NQC_JOB_NUM(uint64_t, lease_expires_us, job_pb)

NQC_JOB_NUM(uint64_t, deadline_us, job_spec)
NQC_JOB_NUM(uint64_t, finish_within_ms, job_spec)
NQC_JOB_NUM(bool, cancel_requested, job_pb)
NQC_JOB_NUM(uint32_t, progress_pct, job_pb)
NQC_JOB_STR(progress_note, job_pb)
NQC_JOB_NUM(uint64_t, progress_at_us, job_pb)
static const Nq__V1__Dependencies *job_depends(const nq_job *job)
{
	const Nq__V1__JobSpec *s = job_spec(job);
	return s ? s->depends : NULL;
}

static const Nq__V1__JobFamily *job_family(const nq_job *job)
{
	const Nq__V1__Job *j = job_pb(job);
	return j ? j->family : NULL;
}

NQC_JOB_NUM(uint32_t, waiting_on, job_family)

NQ_API size_t nq_job_parent_count(const nq_job *job)
{
	const Nq__V1__Dependencies *d = job_depends(job);
	return d ? d->n_depends_on : 0;
}

NQ_API const char *nq_job_parent_id(const nq_job *job, size_t i)
{
	const Nq__V1__Dependencies *d = job_depends(job);
	return d && i < d->n_depends_on ? d->depends_on[i] : NULL;
}

NQ_API size_t nq_job_child_count(const nq_job *job)
{
	const Nq__V1__JobFamily *f = job_family(job);
	return f ? f->n_children : 0;
}

NQ_API const char *nq_job_child_id(const nq_job *job, size_t i)
{
	const Nq__V1__JobFamily *f = job_family(job);
	return f && i < f->n_children ? f->children[i] : NULL;
}

NQ_API size_t nq_job_parent_result_count(const nq_job *job)
{
	const Nq__V1__JobFamily *f = job_family(job);
	return f ? f->n_parent_results : 0;
}

NQ_API const void *nq_job_parent_result(
    const nq_job *job, size_t i, const char **id, nq_state *state, size_t *len)
{
	const Nq__V1__JobFamily *f = job_family(job);
	const Nq__V1__ParentResult *r =
	    f && i < f->n_parent_results ? f->parent_results[i] : NULL;
	if (id)
		*id = r ? r->id : NULL;
	if (state)
		*state = r ? (nq_state)r->state : NQ_STATE_UNSPECIFIED;
	if (len)
		*len = r ? r->result.len : 0;
	return r && r->state == NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED
	           ? (const void *)r->result.data
	           : NULL;
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

static const char *const scope_names[] = {
    [NQ_UNIQUE_WINDOW] = "window",
    [NQ_UNIQUE_QUEUED] = "queued",
    [NQ_UNIQUE_ACTIVE] = "active",
    [NQ_UNIQUE_UNTIL_FINISHED] = "until_finished",
};

NQ_API const char *nq_unique_scope_name(nq_unique_scope scope)
{
	size_t n = sizeof scope_names / sizeof *scope_names;
	return (size_t)scope < n ? scope_names[scope] : NULL;
}

NQ_API int nq_unique_scope_parse(
    const char *text, nq_unique_scope *scope, uint64_t *window_ms)
{
	size_t n = sizeof scope_names / sizeof *scope_names;
	if (!text || !scope || !window_ms)
		return NQ_EINVAL;
	*window_ms = 0;
	if (strncmp(text, "window=", 7) == 0) {
		*scope = NQ_UNIQUE_WINDOW;
		return nqi_parse_duration_ms(text + 7, window_ms) == NQ_OK &&
		               *window_ms > 0
		           ? NQ_OK
		           : NQ_EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(text, scope_names[i]) == 0) {
			*scope = (nq_unique_scope)i;
			return NQ_OK;
		}
	return NQ_EINVAL;
}
