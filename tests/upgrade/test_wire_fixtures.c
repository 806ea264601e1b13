/*
 * The wire of older clients: the committed golden requests
 * (tests/fixtures/v1/request_*.bin) sent as they are, byte for byte, over
 * the real sockets of nq-broker (api, work) and nq-dlq, each answered with
 * a reply that decodes and the status it should have. Then a worker of
 * that protocol revision: the fetch, extend and completion fixtures drive
 * a lease cycle end to end, with only the ids and lease tokens the broker
 * handed out written in (at the wire level: every other byte is the
 * fixture's).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>

#include "dlqt.h"
#include "nqi/codec.h"
#include "samples.h"

#define FIXTURES NQ_FIXTURE_DIR

/* Where a request goes. */
enum sock { API, WORK, DLQ };

/* Every request fixture, in the order sent (an enqueue before the fetch
 * that takes its job, the ingest before what reads nq-dlq), with the
 * socket it goes to and the status of its answer. The samples name jobs
 * that do not exist here (NQT_ID): those answer NOT_FOUND. */
static const struct wire_case {
	const char *name;
	enum sock sock;
	Nq__V1__Code code;
	Nq__V1__Reply__BodyCase body; /* of an OK answer */
} cases[] = {
    {"request_enqueue", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_ENQUEUE},
    {"request_enqueue_chain", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_ENQUEUE},
    {"request_get", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_wait", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_cancel", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_cancel_bulk", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_CANCEL},
    {"request_stats", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_STATS},
    {"request_list", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_LIST},
    {"request_list_type", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_LIST},
    {"request_fetch", WORK, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_FETCH},
    {"request_extend", WORK, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_EXTEND},
    {"request_extend_progress", WORK, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_EXTEND},
    {"request_pause", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_QUEUE},
    {"request_resume", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_QUEUE},
    {"request_policy_get", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_POLICY_GET},
    {"request_policy_set", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_POLICY_SET},
    {"request_policy_reset", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_POLICY_RESET},
    {"request_cron_list", API, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_CRON_LIST},
    {"request_cron_trigger", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_CRON_TRIGGER},
    /* the samples' callbacks carry every field of a spec, an
     * idempotency key among them, which a callback may not have */
    {"request_batch_create", API, NQ__V1__CODE__INVALID_ARGUMENT, 0},
    {"request_enqueue_batch", API, NQ__V1__CODE__INVALID_ARGUMENT, 0},
    {"request_batch_list", API, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_BATCH_LIST},
    /* the sample's batch id is none the broker made */
    {"request_batch_get", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_batch_seal", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_batch_cancel", API, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_dlq_ingest", DLQ, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_DLQ_INGEST},
    /* its page starts after NQT_ID3, which nq-dlq never held */
    {"request_dlq_list", DLQ, NQ__V1__CODE__NOT_FOUND, 0},
    {"request_dlq_show", DLQ, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_DLQ_SHOW},
    {"request_dlq_stats", DLQ, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_DLQ_STATS},
    {"request_dlq_replay", DLQ, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_DLQ_REPLAY},
    {"request_dlq_replay_all", DLQ, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_DLQ_REPLAY},
    /* again: the replays took the entries out */
    {"request_dlq_ingest", DLQ, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_DLQ_INGEST},
    {"request_dlq_purge", DLQ, NQ__V1__CODE__OK, NQ__V1__REPLY__BODY_DLQ_PURGE},
    {"request_dlq_purge_all", DLQ, NQ__V1__CODE__OK,
        NQ__V1__REPLY__BODY_DLQ_PURGE},
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* The sample's schedule, so that its trigger finds one. */
static const char queues_yaml[] = "schedules:\n"
                                  "  " NQT_CRON_NAME ":\n"
                                  "    cron: \"" NQT_CRON_EXPR "\"\n"
                                  "    zone: " NQT_CRON_ZONE "\n"
                                  "    queue: " NQT_QUEUE "\n"
                                  "    type: " NQT_TYPE "\n";

static int setup(void **state)
{
	return itest_setup(state);
}

static uint8_t *fixture(const char *name, size_t *len)
{
	char path[PATH_MAX];
	char *buf;
	snprintf(path, sizeof path, "%s/%s.bin", FIXTURES, name);
	if (itest_read_file(path, &buf, len) != 0)
		fail_msg("cannot read fixture %s", path);
	return (uint8_t *)buf;
}

static void start_services(itest_env *e, dlqt *d)
{
	char yaml[PATH_MAX];
	assert_int_equal(
	    itest_write_file(e, "queues.yaml", queues_yaml, yaml, sizeof yaml),
	    0);
	const char *const flags[] = {"--queues-config", yaml, NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
	/* The samples died in 2025: no retention by age prunes them. */
	const char *const dlq_flags[] = {"--retention-age", "0", NULL};
	assert_int_equal(dlqt_init(d, e), 0);
	assert_int_equal(dlqt_start(d, dlq_flags, NULL), 0);
}

static const char *url_of(itest_env *e, enum sock s)
{
	return s == API ? e->api_url : s == WORK ? e->work_url : e->dlq_url;
}

/* Sends the bytes to the socket; the reply, decoded. */
static Nq__V1__Reply *call_raw(
    itest_env *e, enum sock s, const uint8_t *buf, size_t len)
{
	Nq__V1__Reply *r = NULL;
	int rv = dlqt_call_raw(url_of(e, s), buf, len, 20000, &r);
	if (rv != 0)
		fail_msg("no decodable reply: %s", nng_strerror(rv));
	return r;
}

static void test_wire_every_request_fixture_is_served(void **state)
{
	itest_env *e = *state;
	dlqt d;
	start_services(e, &d);
	for (size_t i = 0; i < COUNT(cases); i++) {
		const struct wire_case *c = &cases[i];
		size_t len;
		uint8_t *buf = fixture(c->name, &len);
		Nq__V1__Reply *r = call_raw(e, c->sock, buf, len);
		int code = dlqt_code(r);
		if (code != (int)c->code)
			fail_msg("%s: status %d (%s), expected %d", c->name,
			    code, r->status ? r->status->message : "",
			    (int)c->code);
		if (c->code == NQ__V1__CODE__OK && r->body_case != c->body)
			fail_msg("%s: reply body %d, expected %d", c->name,
			    (int)r->body_case, (int)c->body);
		nq__v1__reply__free_unpacked(r, NULL);
		free(buf);
	}
	assert_int_equal(dlqt_stop_clean(&d), 0);
	itest_pass(e);
}

/* Every request fixture committed is in cases[], and every body of
 * Request has a fixture: a request type added without its fixture, or a
 * fixture added without its case here, fails. */
static void test_wire_cases_cover_every_request(void **state)
{
	const ProtobufCMessageDescriptor *rd = &nq__v1__request__descriptor;
	bool seen[64] = {false};
	assert_true(rd->n_fields <= COUNT(seen));
	DIR *dir = opendir(FIXTURES);
	struct dirent *de;
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		char name[256];
		size_t n = strlen(de->d_name), k;
		if (strncmp(de->d_name, "request_", 8) != 0 || n < 5 ||
		    strcmp(de->d_name + n - 4, ".bin") != 0)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(n - 4), de->d_name);
		for (k = 0; k < COUNT(cases); k++)
			if (strcmp(cases[k].name, name) == 0)
				break;
		if (k == COUNT(cases))
			fail_msg("fixture %s has no case in cases[]", name);
		size_t len;
		uint8_t *buf = fixture(name, &len);
		Nq__V1__Request *req = nqi_request_unpack(buf, len);
		assert_non_null(req);
		const ProtobufCFieldDescriptor *fd =
		    protobuf_c_message_descriptor_get_field(
		        rd, (unsigned)req->body_case);
		assert_non_null(fd);
		seen[fd - rd->fields] = true;
		nq__v1__request__free_unpacked(req, NULL);
		free(buf);
	}
	closedir(dir);
	for (unsigned f = 0; f < rd->n_fields; f++)
		if (rd->fields[f].flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
		    !seen[f])
			fail_msg(
			    "Request.%s has no fixture (tests/tools/samples.c)",
			    rd->fields[f].name);
	(void)state;
}

/* ---- a worker of the fixtures' revision ---- */

/* One value of the samples and what is written instead. */
typedef struct wire_sub {
	uint32_t field;
	const char *text_from, *text_to; /* a string field; or */
	uint64_t from, to;               /* a varint field */
} wire_sub;

static size_t varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	size_t n = 0;
	*v = 0;
	for (; p + n < end && n < 10; n++) {
		*v |= (uint64_t)(p[n] & 0x7f) << (7 * n);
		if (!(p[n] & 0x80))
			return n + 1;
	}
	fail_msg("bad varint in a fixture");
	return 0;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	for (; v >= 0x80; v >>= 7)
		out[n++] = (uint8_t)(v | 0x80);
	out[n++] = (uint8_t)v;
	return n;
}

static const wire_sub *sub_find(const wire_sub *subs, size_t n, uint32_t field,
    const uint8_t *text, size_t len, uint64_t v, bool is_text)
{
	for (size_t i = 0; i < n; i++) {
		if (subs[i].field != field || !subs[i].text_from != !is_text)
			continue;
		if (is_text ? strlen(subs[i].text_from) == len &&
		                  memcmp(subs[i].text_from, text, len) == 0
		            : subs[i].from == v)
			return &subs[i];
	}
	return NULL;
}

/*
 * Copies the message in[0..len) to out, descending into the fields of
 * path (field numbers; a repeated one: each element) and there writing
 * the substitutes of subs; every other byte is copied as it is, lengths
 * of the messages on the path are written anew. Returns the length.
 */
static size_t rewrite(const uint8_t *in, size_t len, const uint32_t *path,
    size_t depth, const wire_sub *subs, size_t nsubs, uint8_t *out)
{
	const uint8_t *p = in, *end = in + len;
	uint8_t *o = out;
	while (p < end) {
		uint64_t tag, v;
		size_t tn = varint_get(p, end, &tag);
		uint32_t field = (uint32_t)(tag >> 3);
		const uint8_t *val = p + tn;
		memcpy(o, p, tn); /* the tag, as it was */
		o += tn;
		switch (tag & 7) {
		case 0: {
			size_t vn = varint_get(val, end, &v);
			const wire_sub *s = depth ? NULL
			                          : sub_find(subs, nsubs, field,
			                                NULL, 0, v, false);
			if (s)
				o += varint_put(o, s->to);
			else
				memcpy(o, val, vn), o += vn;
			p = val + vn;
			break;
		}
		case 2: {
			size_t ln = varint_get(val, end, &v);
			const uint8_t *body = val + ln;
			const wire_sub *s = depth ? NULL
			                          : sub_find(subs, nsubs, field,
			                                body, v, 0, true);
			uint8_t sub[4096];
			size_t n = v;
			const uint8_t *src = body;
			if (depth && field == path[0]) {
				assert_true(v < sizeof sub / 2);
				n = rewrite(body, v, path + 1, depth - 1, subs,
				    nsubs, sub);
				src = sub;
			} else if (s) {
				n = strlen(s->text_to);
				src = (const uint8_t *)s->text_to;
			}
			o += varint_put(o, n);
			memcpy(o, src, n);
			o += n;
			p = body + v;
			break;
		}
		case 1:
			memcpy(o, val, 8), o += 8, p = val + 8;
			break;
		case 5:
			memcpy(o, val, 4), o += 4, p = val + 4;
			break;
		default:
			fail_msg("wire type %d in a fixture", (int)(tag & 7));
		}
	}
	return (size_t)(o - out);
}

/* A leased job as the fetch reply gave it. */
typedef struct lease {
	char id[NQ_ID_MAX];
	uint64_t token;
} lease;

/* The fixture name with the samples' two leases (NQT_ID and NQT_ID2, and
 * their tokens) replaced by a and b, at path. */
static uint8_t *fixture_for(const char *name, const uint32_t *path,
    size_t depth, const lease *a, const lease *b, size_t *len)
{
	const wire_sub subs[] = {
	    {1, NQT_ID, a->id, 0, 0},
	    {2, NULL, NULL, NQT_LEASE_TOKEN, a->token},
	    {1, NQT_ID2, b->id, 0, 0},
	    {2, NULL, NULL, NQT_LEASE_TOKEN2, b->token},
	};
	size_t n;
	uint8_t *in = fixture(name, &n);
	uint8_t *out = malloc(n + 256);
	assert_non_null(out);
	/* Nothing replaced, the rewrite is the fixture byte for byte. */
	assert_int_equal(rewrite(in, n, path, depth, NULL, 0, out), n);
	assert_memory_equal(out, in, n);
	*len = rewrite(in, n, path, depth, subs, COUNT(subs), out);
	free(in);
	return out;
}

/* The fetch fixture, as it is: the jobs leased, by queue. */
static void fetch_raw(itest_env *e, lease *emails, lease *reports)
{
	size_t len;
	uint8_t *buf = fixture("request_fetch", &len);
	Nq__V1__Reply *r = call_raw(e, WORK, buf, len);
	free(buf);
	assert_int_equal(dlqt_code(r), 0);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_FETCH);
	for (size_t i = 0; i < r->fetch->n_jobs; i++) {
		Nq__V1__Job *j = r->fetch->jobs[i];
		lease *l =
		    strcmp(j->spec->queue, NQT_QUEUE) == 0 ? emails : reports;
		snprintf(l->id, sizeof l->id, "%s", j->id);
		l->token = j->lease_token;
		assert_int_not_equal(l->token, 0);
	}
	nq__v1__reply__free_unpacked(r, NULL);
}

static void extend_raw(itest_env *e, const char *name, const lease *a,
    const lease *b, size_t nleases)
{
	static const uint32_t path[] = {31, 1}; /* Request.extend.leases */
	size_t len;
	uint8_t *buf = fixture_for(name, path, 2, a, b, &len);
	Nq__V1__Reply *r = call_raw(e, WORK, buf, len);
	free(buf);
	assert_int_equal(dlqt_code(r), 0);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_EXTEND);
	assert_int_equal(r->extend->n_results, nleases);
	for (size_t i = 0; i < nleases; i++)
		if (r->extend->results[i] && r->extend->results[i]->code != 0)
			fail_msg("%s: lease %zu: %s", name, i,
			    r->extend->results[i]->message);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* Pushes the completion fixture, its leases replaced, to the results
 * socket s (PUSH: no reply). s stays open to the end of the test, so that
 * nothing queued is dropped by a close. */
static void complete_raw(
    nng_socket s, const char *name, const lease *a, const lease *b)
{
	static const uint32_t path[] = {4}; /* CompletionBatch.completions */
	size_t len;
	uint8_t *buf = fixture_for(name, path, 1, a, b, &len);
	assert_int_equal(nng_send(s, buf, len, 0), 0);
	free(buf);
}

static nng_socket results_push(itest_env *e)
{
	nng_socket s;
	assert_int_equal(nng_push0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 10000);
	assert_int_equal(nng_dial(s, e->results_url, NULL, 0), 0);
	return s;
}

static void wait_job(nq_client *c, const char *id, nq_state state, nq_job **out)
{
	assert_int_equal(itest_wait_state(c, id, state, 20000, out), 0);
}

static void test_wire_an_old_worker_runs_a_lease_cycle(void **state)
{
	itest_env *e = *state;
	dlqt d;
	nq_client *c;
	nq_job *j;
	char a_id[NQ_ID_MAX], b_id[NQ_ID_MAX];
	lease a = {"", 0}, b = {"", 0}, none = {"", 0};
	start_services(e, &d);
	nng_socket results = results_push(e);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(itest_enqueue(c, NQT_QUEUE, NQT_TYPE, "a", a_id), 0);
	assert_int_equal(itest_enqueue(c, NQT_QUEUE2, NQT_TYPE, "b", b_id), 0);

	fetch_raw(e, &a, &b);
	assert_string_equal(a.id, a_id);
	assert_string_equal(b.id, b_id);
	extend_raw(e, "request_extend", &a, &b, 2);
	extend_raw(e, "request_extend_progress", &a, &none, 1);
	wait_job(c, a_id, NQ_STATE_LEASED, &j);
	assert_int_equal(nq_job_progress_pct(j), NQT_PROGRESS_PCT);
	nq_job_free(j);

	/* a failed for good, b released: it is fetched again. */
	complete_raw(results, "completion_batch", &a, &b);
	wait_job(c, a_id, NQ_STATE_DEAD, &j);
	assert_string_equal(nq_job_dead_reason(j), "non_retryable");
	nq_job_free(j);
	wait_job(c, b_id, NQ_STATE_READY, NULL);
	lease b2 = {"", 0};
	fetch_raw(e, &none, &b2);
	assert_string_equal(b2.id, b_id);
	/* The schema fixture's one completion is of NQT_ID2. */
	complete_raw(results, "completion_batch_schema", &none, &b2);
	wait_job(c, b_id, NQ_STATE_DEAD, &j);
	assert_string_equal(nq_job_dead_reason(j), "schema_rejected");
	nq_job_free(j);
	/* Both reached nq-dlq. */
	assert_int_equal(dlqt_wait_total(e->dlq_url, 2, 20000), 0);
	nq_client_close(c);
	nng_close(results);
	assert_int_equal(dlqt_stop_clean(&d), 0);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wire_cases_cover_every_request),
	    cmocka_unit_test_setup_teardown(
	        test_wire_every_request_fixture_is_served, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_wire_an_old_worker_runs_a_lease_cycle, setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
