/*
 * A JSON API body read straight into a message (nqi_jsonpb_read) against
 * the jansson way (json_loadb, nqi_jsonpb_decode) the API falls back to:
 * what the direct reader takes, the jansson way takes too, into the same
 * bytes, and the text written straight from it (nqi_jsonpb_text) is what
 * the jansson tree of it dumps to. What it declines goes the jansson way
 * anyway, so nothing is asked of that.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nq/nq.h"
#include "nq/v1/api.pb-c.h"
#include "nqi/json.h"
#include "nqi/jsonpb.h"

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	FUZZ_CHECK(buf != NULL);
	protobuf_c_message_pack(m, buf);
	return buf;
}

static void same_as_jansson(
    const ProtobufCMessage *fast, const uint8_t *data, size_t size)
{
	char err[200];
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	FUZZ_CHECK(j != NULL);
	ProtobufCMessage *slow = nqi_jsonpb_new(fast->descriptor);
	FUZZ_CHECK(slow != NULL);
	FUZZ_CHECK(nqi_jsonpb_decode(slow, j, err, sizeof err) == NQ_OK);
	size_t fl, sl;
	uint8_t *fb = packed(fast, &fl), *sb = packed(slow, &sl);
	FUZZ_CHECK(fl == sl && memcmp(fb, sb, fl) == 0);
	json_t *tree = nqi_jsonpb_encode(fast);
	char *want = nqi_json_dumps(tree), *got = nqi_jsonpb_text(fast);
	FUZZ_CHECK(want && got && strcmp(want, got) == 0);
	free(want);
	free(got);
	json_decref(tree);
	free(fb);
	free(sb);
	json_decref(j);
	protobuf_c_message_free_unpacked(slow, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *fast =
	    nqi_jsonpb_new(&nq__v1__enqueue_request__descriptor);
	FUZZ_CHECK(fast != NULL);
	int rv = nqi_jsonpb_read(fast, (const char *)data, size, NULL);
	FUZZ_CHECK(rv == NQ_OK || rv == NQ_EINVAL || rv == NQ_ENOMEM);
	if (rv == NQ_OK)
		same_as_jansson(fast, data, size);
	protobuf_c_message_free_unpacked(fast, NULL);
	return 0;
}
