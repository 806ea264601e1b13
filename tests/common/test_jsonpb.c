/*
 * JSON <-> protobuf by descriptors (nqi/jsonpb.h): names, enums, 64-bit
 * numbers, bytes and payloads, durations, and refusals that name the
 * field; every field of a message is written, so a field added to a
 * .proto appears in JSON with no code of its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "nq/nq.h"
#include "nq/v1/api.pb-c.h"
#include "nqi/json.h"
#include "nqi/jsonpb.h"
#include "samples.h"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	assert_non_null(j);
	return j;
}

/* Decodes text into a new message of d; the result and err. */
static int decode(const ProtobufCMessageDescriptor *d, const char *text,
    ProtobufCMessage **out, char *err, size_t errlen)
{
	json_t *j = parse(text);
	*out = nqi_jsonpb_new(d);
	assert_non_null(*out);
	err[0] = '\0';
	int rv = nqi_jsonpb_decode(*out, j, err, errlen);
	json_decref(j);
	return rv;
}

static void test_jsonpb_spec_round_trips(void **st)
{
	char err[200];
	ProtobufCMessage *m;
	(void)st;
	assert_int_equal(
	    decode(&nq__v1__job_spec__descriptor,
	        "{\"type\":\"email\",\"payload\":{\"to\":[1,\"x\"]},"
	        "\"priority\":-3,\"delay_ms\":\"1m\","
	        "\"max_attempts\":\"7\",\"run_at_us\":"
	        "\"18446744073709551615\"}",
	        &m, err, sizeof err),
	    NQ_OK);
	Nq__V1__JobSpec *s = (Nq__V1__JobSpec *)m;
	assert_string_equal(s->type, "email");
	assert_int_equal(s->priority, -3);
	assert_int_equal(s->delay_ms, 60000);
	assert_int_equal(s->max_attempts, 7);
	assert_true(s->run_at_us == UINT64_MAX);
	assert_string_equal(s->content_type, "application/msgpack");
	json_t *back = nqi_jsonpb_encode(m);
	json_t *want = parse("{\"to\":[1,\"x\"]}");
	assert_true(json_equal(json_object_get(back, "payload"), want));
	assert_string_equal(
	    json_string_value(json_object_get(back, "run_at_us")),
	    "18446744073709551615");
	assert_int_equal(
	    json_integer_value(json_object_get(back, "delay_ms")), 60000);
	/* every field, zero ones too; an absent message is left out */
	for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
		bool absent = f->type == PROTOBUF_C_TYPE_MESSAGE &&
		              !*(void *const *)((const char *)m + f->offset);
		if (absent)
			assert_null(json_object_get(back, f->name));
		else
			assert_non_null(json_object_get(back, f->name));
	}
	json_decref(want);
	json_decref(back);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_jsonpb_bytes_of_other_types_are_base64(void **st)
{
	char err[200];
	ProtobufCMessage *m;
	(void)st;
	assert_int_equal(decode(&nq__v1__job_spec__descriptor,
	                     "{\"content_type\":\"text/plain\","
	                     "\"payload\":\"aGk=\"}",
	                     &m, err, sizeof err),
	    NQ_OK);
	Nq__V1__JobSpec *s = (Nq__V1__JobSpec *)m;
	assert_int_equal(s->payload.len, 2);
	assert_memory_equal(s->payload.data, "hi", 2);
	json_t *back = nqi_jsonpb_encode(m);
	assert_string_equal(
	    json_string_value(json_object_get(back, "payload")), "aGk=");
	json_decref(back);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_jsonpb_enums_by_short_name(void **st)
{
	char err[200];
	ProtobufCMessage *m;
	(void)st;
	assert_int_equal(
	    decode(&nq__v1__list_request__descriptor,
	        "{\"state\":\"dead\",\"limit\":3}", &m, err, sizeof err),
	    NQ_OK);
	assert_int_equal(((Nq__V1__ListRequest *)m)->state,
	    NQ__V1__JOB_STATE__JOB_STATE_DEAD);
	json_t *back = nqi_jsonpb_encode(m);
	assert_string_equal(
	    json_string_value(json_object_get(back, "state")), "dead");
	json_decref(back);
	protobuf_c_message_free_unpacked(m, NULL);
	/* a value without the enum's prefix stays as written */
	Nq__V1__Status s = NQ__V1__STATUS__INIT;
	s.code = NQ__V1__CODE__NOT_FOUND;
	back = nqi_jsonpb_encode(&s.base);
	assert_string_equal(
	    json_string_value(json_object_get(back, "code")), "NOT_FOUND");
	json_decref(back);
}

static void test_jsonpb_oneof_writes_the_member_set(void **st)
{
	char err[200];
	ProtobufCMessage *m;
	(void)st;
	assert_int_equal(decode(&nq__v1__request__descriptor,
	                     "{\"version\":1,\"cancel\":{\"id\":\"ab\"}}", &m,
	                     err, sizeof err),
	    NQ_OK);
	Nq__V1__Request *r = (Nq__V1__Request *)m;
	assert_int_equal(r->body_case, NQ__V1__REQUEST__BODY_CANCEL);
	assert_string_equal(r->cancel->id, "ab");
	json_t *back = nqi_jsonpb_encode(m);
	assert_non_null(json_object_get(back, "cancel"));
	assert_null(json_object_get(back, "get"));
	json_decref(back);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_jsonpb_refusals_name_the_field(void **st)
{
	static const struct {
		const char *json, *why;
	} cases[] = {
	    {"{\"jobs\":[{},{\"priority\":\"high\"}]}",
	        "jobs[1].priority: want an integer"},
	    {"{\"jobs\":[{\"colour\":1}]}", "jobs[0].colour: no such field"},
	    {"{\"jobs\":{}}", "jobs: want an array"},
	    {"{\"jobs\":[{\"max_attempts\":-1}]}",
	        "jobs[0].max_attempts: want"},
	    {"{\"jobs\":[{\"max_attempts\":4294967296}]}",
	        "jobs[0].max_attempts: out of range"},
	    {"{\"jobs\":[{\"delay_ms\":\"soon\"}]}",
	        "jobs[0].delay_ms: want an integer or a duration"},
	    {"{\"jobs\":[{\"type\":true}]}", "jobs[0].type: want a string"},
	    {"{\"jobs\":[{\"content_type\":\"a/b\",\"payload\":\"!\"}]}",
	        "jobs[0].payload: not base64"},
	};
	(void)st;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char err[200];
		ProtobufCMessage *m;
		assert_int_equal(decode(&nq__v1__enqueue_request__descriptor,
		                     cases[i].json, &m, err, sizeof err),
		    NQ_EINVAL);
		if (strncmp(err, cases[i].why, strlen(cases[i].why)) != 0)
			fail_msg("%s: got '%s', want '%s...'", cases[i].json,
			    err, cases[i].why);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void test_jsonpb_repeated_from_a_list_text(void **st)
{
	char err[200];
	ProtobufCMessage *m;
	(void)st;
	assert_int_equal(decode(&nq__v1__queue_policy_reset_request__descriptor,
	                     "{\"keys\":\"a,b\"}", &m, err, sizeof err),
	    NQ_OK);
	Nq__V1__QueuePolicyResetRequest *r =
	    (Nq__V1__QueuePolicyResetRequest *)m;
	assert_int_equal(r->n_keys, 2);
	assert_string_equal(r->keys[1], "b");
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_jsonpb_base64_decodes_what_encode_wrote(void **st)
{
	(void)st;
	for (size_t n = 0; n < 40; n++) {
		uint8_t in[40], *out = NULL;
		size_t len = 0;
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(i * 37 + n);
		char *b = nqi_base64_encode(in, n);
		assert_int_equal(
		    nqi_base64_decode(b, strlen(b), &out, &len), NQ_OK);
		assert_int_equal(len, n);
		assert_memory_equal(out, in, n);
		free(out);
		free(b);
	}
	uint8_t *out = NULL;
	size_t len;
	assert_int_equal(nqi_base64_decode("a", 1, &out, &len), NQ_EINVAL);
	assert_int_equal(nqi_base64_decode("ab!c", 4, &out, &len), NQ_EINVAL);
}

/* Both ways of reading into a new EnqueueRequest: the packed bytes of
 * each (*len 0 for a refusal), and what the direct reader returned. */
static int read_both(
    const char *text, uint8_t **gen, size_t *glen, uint8_t **fast, size_t *flen)
{
	const ProtobufCMessageDescriptor *d =
	    &nq__v1__enqueue_request__descriptor;
	char err[200];
	ProtobufCMessage *a = nqi_jsonpb_new(d), *b = nqi_jsonpb_new(d);
	json_t *j = json_loads(text, 0, NULL);
	*glen = *flen = 0;
	if (j && nqi_jsonpb_decode(a, j, err, sizeof err) == NQ_OK) {
		*glen = protobuf_c_message_get_packed_size(a);
		*gen = malloc(*glen + 1);
		protobuf_c_message_pack(a, *gen);
	}
	int rv = nqi_jsonpb_read(b, text, strlen(text), NULL);
	if (rv == NQ_OK) {
		*flen = protobuf_c_message_get_packed_size(b);
		*fast = malloc(*flen + 1);
		protobuf_c_message_pack(b, *fast);
	}
	json_decref(j);
	protobuf_c_message_free_unpacked(a, NULL);
	protobuf_c_message_free_unpacked(b, NULL);
	return rv;
}

/* The direct reader gives exactly what the jansson way gives (payloads
 * as msgpack byte for byte, every kind of field), or declines: it never
 * takes what the general way refuses. */
static void test_jsonpb_read_matches_decode_or_declines(void **st)
{
	(void)st;
	static const char *const taken[] = {
	    "{\"jobs\":[{\"type\":\"t\",\"payload\":{\"data\":\"xxxx\"}}]}",
	    " {\"jobs\" : [ {\"queue\":\"q\", \"type\":\"a\\n\\\"b\\/\", "
	    "\"priority\": -3, \"max_attempts\": 5, \"delay_ms\": \"30s\", "
	    "\"payload\": [1, -1, 200, -200, 70000, -70000, 5000000000, "
	    "-5000000000, 1.5, -0.25e3, true, false, null, \"s\", {}, [],"
	    "{\"a\":{\"b\":[{}]}}, \"\u00e9\"]}, "
	    "{\"type\":\"b\",\"payload\":null}], \"all_or_none\": true}\n",
	    "{\"jobs\":[{\"type\":\"t\",\"content_type\":\"text/plain\","
	    "\"payload\":\"aGVsbG8=\"}]}",
	    "{\"jobs\":[{\"payload\":{\"k\":1},\"type\":\"t\","
	    "\"content_type\":\"application/msgpack\"}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"idempotency_key\":\"k\","
	    "\"depends\":{\"depends_on\":[\"a\",\"b\"]}}]}",
	};
	static const char *const declined[] = {
	    "{\"jobs\":[{\"type\":\"t\",\"type\":\"u\"}]}",
	    "{\"jobs\":[{\"type\":\"\\u00e9\"}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"payload\":{\"a\":1,\"a\":2}}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"payload\":01}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"payload\":1e999}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"payload\":99999999999999999999}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"priority\":\"x\"}]}",
	    "{\"jobs\":[{\"type\":\"t\",\"nope\":1}]}",
	    "{\"jobs\":[{\"type\":\"t\"}]} x",
	    "{\"jobs\":[{\"type\":\"t\",}]}",
	    "{\"jobs\":[{\"type\":\"t\"}]",
	    "{\"jobs\":[{\"type\":\"\xff\"}]}",
	    "{\"jobs\":[{\"type\":\"a\tb\"}]}",
	    "{\"jobs\":[{\"type\":truex}]}",
	    "[1]",
	};
	uint8_t *g = NULL, *f = NULL;
	size_t gl, fl;
	for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
		int rv = read_both(taken[i], &g, &gl, &f, &fl);
		if (rv != NQ_OK || gl == 0 || gl != fl || memcmp(g, f, gl) != 0)
			fail_msg("not the same: %s (rv %d, %zu / %zu bytes)",
			    taken[i], rv, gl, fl);
		free(g);
		free(f);
	}
	for (size_t i = 0; i < sizeof declined / sizeof *declined; i++) {
		int rv = read_both(declined[i], &g, &gl, &f, &fl);
		if (rv != NQ_EINVAL)
			fail_msg("taken: %s", declined[i]);
		if (gl)
			free(g);
	}
}

/* The text written without a tree is what the tree gives, for every
 * sample message, text that is not UTF-8 and a number above INT64_MAX. */
static void test_jsonpb_text_is_the_dump_of_encode(void **st)
{
	(void)st;
	size_t n;
	const nqt_sample *all = nqt_samples(&n);
	Nq__V1__QueueStats q = NQ__V1__QUEUE_STATS__INIT;
	q.queue = "bad \xff\xfe utf-8 \"quoted\"\n";
	q.ready = UINT64_MAX;
	q.leased = (uint64_t)INT64_MAX;
	for (size_t i = 0; i <= n; i++) {
		const ProtobufCMessage *m = i < n ? all[i].msg : &q.base;
		json_t *j = nqi_jsonpb_encode(m);
		char *want = nqi_json_dumps(j), *got = nqi_jsonpb_text(m);
		assert_non_null(want);
		assert_non_null(got);
		if (strcmp(want, got) != 0)
			fail_msg("%s:\n%s\n%s", i < n ? all[i].name : "stats",
			    want, got);
		free(want);
		free(got);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jsonpb_read_matches_decode_or_declines),
	    cmocka_unit_test(test_jsonpb_text_is_the_dump_of_encode),
	    cmocka_unit_test(test_jsonpb_spec_round_trips),
	    cmocka_unit_test(test_jsonpb_bytes_of_other_types_are_base64),
	    cmocka_unit_test(test_jsonpb_enums_by_short_name),
	    cmocka_unit_test(test_jsonpb_oneof_writes_the_member_set),
	    cmocka_unit_test(test_jsonpb_refusals_name_the_field),
	    cmocka_unit_test(test_jsonpb_repeated_from_a_list_text),
	    cmocka_unit_test(test_jsonpb_base64_decodes_what_encode_wrote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
