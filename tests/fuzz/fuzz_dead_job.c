/*
 * nq.v1.DeadJob and nq.v1.DlqIngestRequest, what nq-dlq stores and what
 * the broker hands it: the same bytes are decoded as both (stable, no
 * crash), and the jobs inside render as nqctl shows them.
 */
#include "fuzz.h"
#include "nqi/codec.h"
#include "render.h"

static void render_dead(Nq__V1__DeadJob *d)
{
	if (!d)
		return;
	fuzz_touch_str(d->reason);
	fuzz_touch_str(d->replayed_as);
	if (d->job) {
		fuzz_render_job(d->job);
		d->job = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m =
	    fuzz_unpack_stable(&nq__v1__dead_job__descriptor, data, size);
	if (m) {
		render_dead((Nq__V1__DeadJob *)m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	m = fuzz_unpack_stable(
	    &nq__v1__dlq_ingest_request__descriptor, data, size);
	if (m) {
		Nq__V1__DlqIngestRequest *r = (Nq__V1__DlqIngestRequest *)m;
		for (size_t i = 0; i < r->n_jobs; i++)
			render_dead(r->jobs[i]);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return 0;
}
