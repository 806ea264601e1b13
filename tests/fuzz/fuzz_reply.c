/*
 * nq.v1.Reply, as libnq and nqctl receive it from a broker or nq-dlq they
 * cannot vouch for: decoding must never crash and must be stable, and
 * every job a reply carries must read and render safely.
 */
#include "fuzz.h"
#include "nqi/codec.h"
#include "render.h"

/* Takes the job out of its slot (the reply no longer frees it). */
static void render_slot(Nq__V1__Job **slot)
{
	if (slot && *slot) {
		fuzz_render_job(*slot);
		*slot = NULL;
	}
}

static void render_all(Nq__V1__Job **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		render_slot(&jobs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m =
	    fuzz_unpack_stable(&nq__v1__reply__descriptor, data, size);
	Nq__V1__Reply *viacodec = nqi_reply_unpack(data, size);
	/* The codec takes exactly what decodes stably. */
	FUZZ_CHECK((m != NULL) == (viacodec != NULL));
	if (viacodec)
		nq__v1__reply__free_unpacked(viacodec, NULL);
	if (!m)
		return 0;
	Nq__V1__Reply *r = (Nq__V1__Reply *)m;
	if (r->status)
		fuzz_touch_str(r->status->message);
	switch (r->body_case) {
	case NQ__V1__REPLY__BODY_GET:
		render_slot(&r->get->job);
		break;
	case NQ__V1__REPLY__BODY_WAIT:
		render_slot(&r->wait->job);
		break;
	case NQ__V1__REPLY__BODY_CANCEL:
		render_slot(&r->cancel->job);
		break;
	case NQ__V1__REPLY__BODY_FETCH:
		render_all(r->fetch->jobs, r->fetch->n_jobs);
		break;
	case NQ__V1__REPLY__BODY_LIST:
		render_all(r->list->jobs, r->list->n_jobs);
		break;
	case NQ__V1__REPLY__BODY_DLQ_SHOW:
		if (r->dlq_show->job)
			render_slot(&r->dlq_show->job->job);
		break;
	default:
		break;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
