/* See render.h. */
#include "render.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/json.h"
#include "internal.h"
#include "fuzz.h"

static void read_accessors(const nq_job *job)
{
	size_t len, sum = 0;
	sum += fuzz_touch_str(nq_job_id(job));
	sum += fuzz_touch_str(nq_job_queue(job));
	sum += fuzz_touch_str(nq_job_type(job));
	sum += fuzz_touch_str(nq_job_content_type(job));
	sum += fuzz_touch_str(nq_job_traceparent(job));
	sum += fuzz_touch_str(nq_job_idempotency_key(job));
	sum += fuzz_touch_str(nq_job_ordering_key(job));
	sum += fuzz_touch_str(nq_job_dead_reason(job));
	sum += nq_job_in_dlq(job);
	sum += fuzz_touch_str(nq_job_worker_id(job));
	const void *p = nq_job_payload(job, &len);
	FUZZ_CHECK(p != NULL || len == 0);
	sum += fuzz_touch(p, len);
	p = nq_job_result(job, &len);
	FUZZ_CHECK(p != NULL || len == 0);
	sum += fuzz_touch(p, len);
	FUZZ_CHECK(nq_job_state(job) <= NQ_STATE_WAITING);
	sum += fuzz_touch_str(nq_state_name(nq_job_state(job)));
	for (size_t i = 0; i < nq_job_error_count(job); i++) {
		uint32_t attempt;
		uint64_t at_us;
		sum += fuzz_touch_str(nq_job_error(job, i, &attempt, &at_us));
	}
	FUZZ_CHECK(
	    nq_job_error(job, nq_job_error_count(job), NULL, NULL) == NULL);
	(void)sum;
}

void fuzz_render_job(Nq__V1__Job *pb)
{
	nq_job *job = NULL;
	FUZZ_CHECK(nqc_job_wrap(pb, &job) == 0);
	read_accessors(job);
	json_t *o = nqctl_job_json(job);
	FUZZ_CHECK(o != NULL);
	char *text = nqi_json_dumps(o);
	FUZZ_CHECK(text != NULL);
	json_error_t err;
	json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	/* nqctl's JSON is for programs: it must parse. jansson alone cannot
	 * read "\u0000" inside an object key (a msgpack map key may hold
	 * NUL), which is valid JSON all the same. */
	if (!back && strstr(err.text, "NUL byte in object key"))
		back = json_null();
	if (!back)
		fprintf(stderr, "fuzz: nqctl's JSON does not parse (%s): %s\n",
		    err.text, text);
	FUZZ_CHECK(back != NULL);
	json_decref(back);
	free(text);
	json_decref(o);
	nq_job_free(job);
}
