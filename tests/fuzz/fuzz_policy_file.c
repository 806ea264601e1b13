/*
 * The queues file parser (libyaml and the policy key table): any bytes
 * are read as a queues file. A file is either taken, and then every value
 * it holds prints and parses back to the same text, or refused with a
 * reason.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nq/nq.h"
#include "nqi/policy.h"

/* Each value of p prints as text that parses back to the same text. */
static void check_round_trip(const nqi_policy *p)
{
	const nqi_policy_key *k = nqi_policy_keys();
	for (size_t i = 0; i < NQI_PK_COUNT; i++) {
		char text[4096], again[4096], why[256];
		nqi_policy q = {0};
		if (!(p->set & (1u << i)))
			continue;
		nqi_policy_format(&k[i], p, text, sizeof text);
		FUZZ_CHECK(
		    nqi_policy_parse(&k[i], text, &q, why, sizeof why) == 0);
		nqi_policy_format(&k[i], &q, again, sizeof again);
		FUZZ_CHECK(strcmp(text, again) == 0);
		nqi_policy_clear(&q);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	int rv =
	    nqi_policy_text_load("fuzz.yaml", (const char *)data, size, &f, &e);
	if (rv != 0) {
		FUZZ_CHECK(f == NULL);
		FUZZ_CHECK(rv != NQ_EINVAL || e.reason[0] != '\0');
		return 0;
	}
	for (size_t i = 0; i < f->n; i++)
		check_round_trip(&f->entries[i].p);
	nqi_policy_file_free(f);
	return 0;
}
