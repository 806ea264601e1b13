/*
 * nq.v1.Request, as the broker's and nq-dlq's REP sockets receive it: the
 * decoder must never crash, what it decodes must pack and decode to the
 * same bytes again, and the broker's stateless checks must hold for both
 * sockets.
 */
#include <string.h>

#include "broker.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[160];
	int err;
	ProtobufCMessage *m =
	    fuzz_unpack_stable(&nq__v1__request__descriptor, data, size);
	Nq__V1__Request *viacodec = nqi_request_unpack(data, size);
	/* The codec takes exactly what decodes stably. */
	FUZZ_CHECK((m != NULL) == (viacodec != NULL));
	if (viacodec)
		nq__v1__request__free_unpacked(viacodec, NULL);
	if (!m)
		return 0;
	const Nq__V1__Request *req = (const Nq__V1__Request *)m;
	for (int work = 0; work < 2; work++) {
		const char *bad =
		    broker_precheck(req, work, &err, buf, sizeof buf);
		if (bad) {
			FUZZ_CHECK(bad[0] != '\0');
			FUZZ_CHECK(err == NQ_EINVAL || err == NQ_EPRECOND);
		}
		/* A request of the wrong version is refused on either
		 * socket, with FAILED_PRECONDITION. */
		if (req->version != 1)
			FUZZ_CHECK(bad && err == NQ_EPRECOND);
		if (req->body_case == NQ__V1__REQUEST__BODY__NOT_SET)
			FUZZ_CHECK(bad != NULL);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
