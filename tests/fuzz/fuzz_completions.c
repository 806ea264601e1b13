/*
 * nq.v1.CompletionBatch, as the broker's results socket receives it: the
 * decoder must never crash and must be stable. (What the broker does with
 * a batch is fuzz_broker_results.)
 */
#include "fuzz.h"
#include "nqi/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = fuzz_unpack_stable(
	    &nq__v1__completion_batch__descriptor, data, size);
	if (!m) {
		/* The codec refuses exactly what does not decode stably. */
		FUZZ_CHECK(nqi_completions_unpack(data, size) == NULL);
		return 0;
	}
	const Nq__V1__CompletionBatch *b = (const Nq__V1__CompletionBatch *)m;
	for (size_t i = 0; i < b->n_completions; i++) {
		FUZZ_CHECK(b->completions[i] != NULL);
		fuzz_touch(b->completions[i]->result.data,
		    b->completions[i]->result.len);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	/* The codec's own entry point decodes exactly the same inputs. */
	Nq__V1__CompletionBatch *again = nqi_completions_unpack(data, size);
	FUZZ_CHECK(again != NULL);
	nq__v1__completion_batch__free_unpacked(again, NULL);
	return 0;
}
