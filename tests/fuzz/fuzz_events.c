/*
 * One message of the broker's PUB socket as a subscriber reads it: either
 * "job.<kind>.<queue>", a NUL and a packed nq.v1.EventBatch, or "metrics"
 * followed by a msgpack map. The input is the whole message; neither part
 * may crash the reader, and an event batch decodes stably.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nqi/codec.h"
#include "nqi/json.h"

static void read_events(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m =
	    fuzz_unpack_stable(&nq__v1__event_batch__descriptor, data, size);
	if (!m)
		return;
	const Nq__V1__EventBatch *b = (const Nq__V1__EventBatch *)m;
	for (size_t i = 0; i < b->n_events; i++) {
		const Nq__V1__JobEvent *e = b->events[i];
		FUZZ_CHECK(e != NULL);
		fuzz_touch_str(e->kind);
		fuzz_touch_str(e->id);
		fuzz_touch_str(e->queue);
		fuzz_touch_str(e->error);
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char metrics[] = "metrics";
	const size_t mlen = sizeof metrics - 1;
	if (size >= mlen && memcmp(data, metrics, mlen) == 0) {
		char *json = NULL;
		if (nqi_msgpack_to_json(data + mlen, size - mlen, &json) == 0) {
			FUZZ_CHECK(json != NULL);
			fuzz_touch_str(json);
			free(json);
		}
		return 0;
	}
	const uint8_t *nul = memchr(data, 0, size);
	if (!nul)
		return 0;
	read_events(nul + 1, size - (size_t)(nul + 1 - data));
	return 0;
}
