/*
 * nq.v1.Job, as stored by the broker and carried in replies: decoding must
 * never crash and must be stable, and the job must read through libnq's
 * accessors and render as nqctl shows it.
 */
#include "fuzz.h"
#include "nqi/codec.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m =
	    fuzz_unpack_stable(&nq__v1__job__descriptor, data, size);
	if (!m) {
		/* The codec refuses exactly what does not decode stably. */
		FUZZ_CHECK(nqi_job_unpack(data, size) == NULL);
		return 0;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	Nq__V1__Job *job = nqi_job_unpack(data, size);
	FUZZ_CHECK(job != NULL);
	fuzz_render_job(job);
	return 0;
}
