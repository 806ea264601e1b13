/*
 * JSON text -> msgpack (nqctl --payload): hostile text must never crash
 * the converter, a refusal must say why, and what it accepts must survive
 * msgpack -> JSON -> msgpack unchanged, byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nqi/json.h"
#include "nqi/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	uint8_t *mp = NULL, *mp2 = NULL;
	size_t len = 0, len2 = 0;
	char *text = malloc(size + 1), *json = NULL;
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	int rv = nqi_json_to_msgpack(text, &mp, &len, err, sizeof err);
	free(text);
	if (rv != 0) {
		FUZZ_CHECK(rv == NQ_EINVAL || rv == NQ_ENOMEM);
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(mp != NULL && len > 0);
	FUZZ_CHECK(nqi_msgpack_to_json(mp, len, &json) == 0);
	rv = nqi_json_to_msgpack(json, &mp2, &len2, err, sizeof err);
	if (rv != 0)
		fuzz_fail(__FILE__, __LINE__, err);
	FUZZ_CHECK(len2 == len && memcmp(mp, mp2, len) == 0);
	free(json);
	free(mp);
	free(mp2);
	return 0;
}
