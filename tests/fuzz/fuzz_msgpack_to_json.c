/*
 * msgpack -> JSON (nq-worker hands a payload to a command as JSON; nqctl
 * shows payloads and the broker's metrics as JSON): hostile bytes must
 * never crash the converter. What it accepts must give JSON that converts
 * back to msgpack and then to the same JSON text again, and the jansson
 * form must agree with the text form. The text helpers payloads go
 * through (printable text, lossy UTF-8, base64) run on the same bytes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nqi/json.h"
#include "nqi/util.h"

static void text_helpers(const uint8_t *data, size_t size)
{
	size_t i = 0;
	bool wellformed = true;
	while (i < size) {
		size_t n = nqi_utf8_char_len(data + i, size - i);
		FUZZ_CHECK(n <= 4 && n <= size - i);
		wellformed = wellformed && n > 0;
		i += n ? n : 1;
	}
	if (nqi_text_printable(data, size))
		FUZZ_CHECK(wellformed);
	json_t *s = nqi_json_string_lossy(data, size);
	FUZZ_CHECK(s != NULL);
	if (wellformed)
		FUZZ_CHECK(json_string_length(s) == size &&
		           memcmp(json_string_value(s), data, size) == 0);
	json_decref(s);
	char *b64 = nqi_base64_encode(data, size);
	FUZZ_CHECK(b64 != NULL && strlen(b64) == (size + 2) / 3 * 4);
	free(b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	char *json = NULL, *json2 = NULL;
	uint8_t *mp = NULL;
	size_t len = 0;
	text_helpers(data, size);
	int rv = nqi_msgpack_to_json(data, size, &json);
	json_t *v = nqi_msgpack_to_jansson(data, size);
	FUZZ_CHECK((rv == 0) == (v != NULL));
	if (rv != 0) {
		FUZZ_CHECK(rv == NQ_EINVAL || rv == NQ_ENOMEM);
		return 0;
	}
	/* Output grows at most linearly: no input byte may give more than
	 * an escaped map key's worth of text. (A key holding keys once
	 * doubled in size with every level: 250 bytes gave gigabytes.) */
	FUZZ_CHECK(strlen(json) <= 2 * NQI_JSON_MAX_KEY * size + 16);
	char *dumped = nqi_json_dumps(v);
	FUZZ_CHECK(dumped != NULL && strcmp(dumped, json) == 0);
	free(dumped);
	json_decref(v);
	rv = nqi_json_to_msgpack(json, &mp, &len, err, sizeof err);
	if (rv != 0 && strstr(err, "NUL byte in object key")) {
		/* A map key holding NUL gives valid JSON that jansson, and so
		 * the way back, cannot read. */
		free(json);
		return 0;
	}
	if (rv != 0)
		fuzz_fail(__FILE__, __LINE__, err);
	FUZZ_CHECK(nqi_msgpack_to_json(mp, len, &json2) == 0);
	FUZZ_CHECK(strcmp(json, json2) == 0);
	free(json);
	free(json2);
	free(mp);
	return 0;
}
