/*
 * Records an older broker or nq-dlq stored before strings were checked: a
 * NUL in an idempotency key, bytes that are not UTF-8 in an attempt's
 * error message. Written straight into the real store of a stopped
 * broker, then the broker starts on it with nq-dlq: get answers (libnq's
 * strict decoder takes the reply), a worker can fetch the job, and dead
 * jobs reach nq-dlq instead of blocking the handoff. Written into the
 * store of a stopped nq-dlq, its entries are listed and shown as text.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>

#include "dlqt.h"
#include "nqi/codec.h"
#include "nqi/store.h"
#include "nqi/util.h"

/* Puts the job, packed and with marks[0] patched to marks[1], ... (NULL
 * ends them), as the record of id into the store in data_dir; a dead job
 * also gets a handoff entry. */
static void store_put(const char *data_dir, uint64_t id, Nq__V1__Job *job,
    const char *const *marks)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi jobs, handoff;
	uint8_t key[8], *buf;
	size_t len;
	nqi_be64_put(key, id);
	assert_int_equal(nqi_buf_pack(&job->base, &buf, &len), 0);
	for (; marks[0]; marks += 2) {
		uint8_t *at = memmem(buf, len, marks[0], strlen(marks[0]));
		assert_non_null(at);
		memcpy(at, marks[1], strlen(marks[0]));
	}
	assert_null(nqi_job_unpack(buf, len)); /* as today's nq refuses it */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 1u << 30), 0);
	assert_int_equal(mdb_env_open(env, data_dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "jobs", 0, &jobs), 0);
	assert_int_equal(mdb_dbi_open(txn, "handoff", 0, &handoff), 0);
	MDB_val k = {8, key}, v = {len, buf}, none = {0, ""};
	assert_int_equal(mdb_put(txn, jobs, &k, &v, 0), 0);
	if (job->state == NQ__V1__JOB_STATE__JOB_STATE_DEAD)
		assert_int_equal(mdb_put(txn, handoff, &k, &none, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(buf);
}

/* A job of queue "legacy" stored at attempt 1 with the error message
 * given; its id as text in text. */
static void legacy_job(Nq__V1__Job *job, Nq__V1__JobSpec *spec,
    Nq__V1__AttemptError *err, uint64_t id, char *text)
{
	static Nq__V1__AttemptError *errs[1];
	uint64_t now = itest_wall_us();
	nqi_id_format(id, text);
	job->id = text;
	job->spec = spec;
	job->attempt = 1;
	job->created_us = job->run_at_us = job->started_us = now;
	job->n_errors = 1;
	errs[0] = err;
	job->errors = errs;
	spec->queue = "legacy";
	spec->type = "t";
	spec->content_type = "text/plain";
	spec->payload = (ProtobufCBinaryData){1, (uint8_t *)"x"};
	err->attempt = 1;
	err->at_us = now;
}

static void test_legacy_records_are_served_and_reach_nq_dlq(void **state)
{
	itest_env *e = *state;
	static const char *const fast[] = {
	    "--backoff-base", "10ms", "--backoff-cap", "20ms", NULL};
	Nq__V1__Job ready = NQ__V1__JOB__INIT, dead = NQ__V1__JOB__INIT;
	Nq__V1__JobSpec rspec = NQ__V1__JOB_SPEC__INIT,
	                dspec = NQ__V1__JOB_SPEC__INIT;
	Nq__V1__AttemptError rerr = NQ__V1__ATTEMPT_ERROR__INIT,
	                     derr = NQ__V1__ATTEMPT_ERROR__INIT;
	char rid[NQ_ID_MAX], did[NQ_ID_MAX], log[PATH_MAX];
	uint64_t id = itest_wall_us();
	nq_client *c;
	nq_job *job;
	dlqt t;

	/* A store made by the broker, then the records of an older one. */
	assert_int_equal(itest_broker_start(e, fast), 0);
	snprintf(log, sizeof log, "%s", e->broker->log);
	assert_int_equal(itest_broker_stop(e, SIGTERM, NULL), 0);
	legacy_job(&ready, &rspec, &rerr, id, rid);
	ready.state = NQ__V1__JOB_STATE__JOB_STATE_READY;
	ready.max_attempts = 2;
	rspec.idempotency_key = "k~old";
	rerr.message = "first try ## failed";
	store_put(e->data_dir, id, &ready,
	    (const char *const[]){"k~old", "k\0old", "##", "\xc3\x28", NULL});
	legacy_job(&dead, &dspec, &derr, id + 1, did);
	dead.state = NQ__V1__JOB_STATE__JOB_STATE_DEAD;
	dead.max_attempts = 1;
	dead.finished_us = dead.created_us;
	dead.dead_reason = "max_attempts";
	derr.message = "broke ^^ here";
	store_put(e->data_dir, id + 1, &dead,
	    (const char *const[]){"^^", "\xff\xfe", NULL});

	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_int_equal(itest_broker_start(e, fast), 0);
	snprintf(log, sizeof log, "%s", e->broker->log);

	/* get: the strings as nq always read them, now as text */
	assert_int_equal(itest_client(e, 5000, &c), 0);
	assert_int_equal(nq_get(c, rid, &job), 0);
	assert_string_equal(nq_job_idempotency_key(job), "k");
	assert_string_equal(
	    nq_job_error(job, 0, NULL, NULL), "first try \xef\xbf\xbd( failed");
	nq_job_free(job);

	/* the dead job is handed over; the ready one is fetched, dies at
	 * its last attempt and follows */
	assert_int_equal(dlqt_wait_total(e->dlq_url, 1, 15000), 0);
	const char *const flags[] = {
	    "--queues", "legacy", "--handler", "t=exit 65", NULL};
	itest_proc *w;
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 2, 15000), 0);
	assert_int_equal(
	    itest_wait_state(c, rid, NQ_STATE_DEAD, 10000, &job), 0);
	nq_job_free(job);
	assert_true(dlqt_log_has(log, "NQ-RECORD-REPAIRED"));
	assert_false(dlqt_log_has(log, "NQ-DLQ-REFUSED"));
	nq_client_close(c);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

/* Patches, in the value of key in db of the store in data_dir, each
 * marks[0] to marks[1], ... (NULL ends them); then deletes meta_key from
 * "meta" when not NULL. */
static void dlq_store_patch(const char *data_dir, const char *db,
    const void *key, size_t klen, const char *const *marks,
    const char *meta_key)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi, meta;
	MDB_val k = {klen, (void *)key}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 1u << 30), 0);
	assert_int_equal(mdb_env_open(env, data_dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	uint8_t *buf = malloc(v.mv_size);
	assert_non_null(buf);
	memcpy(buf, v.mv_data, v.mv_size);
	for (; marks[0]; marks += 2) {
		uint8_t *at =
		    memmem(buf, v.mv_size, marks[0], strlen(marks[0]));
		assert_non_null(at);
		memcpy(at, marks[1], strlen(marks[0]));
	}
	/* as today's nq refuses it */
	assert_int_equal(nqi_pb_check_strings(&nq__v1__dead_job__descriptor,
	                     buf, v.mv_size, NULL, 0),
	    NQ_EINVAL);
	v.mv_data = buf;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	if (meta_key) {
		MDB_val mk = {strlen(meta_key), (void *)meta_key};
		assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
		int rc = mdb_del(txn, meta, &mk, NULL);
		assert_true(rc == 0 || rc == MDB_NOTFOUND);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(buf);
}

/* What the repaired message and key read as. */
#define REPAIRED_MSG "broke \xef\xbf\xbd\xef\xbf\xbd here"

/* An entry an older nq-dlq stored with a NUL in its idempotency key and
 * bytes that are not UTF-8 in its error message is made text when nq-dlq
 * opens the store, once: list, show, nqctl and libnq read it. */
static void test_legacy_records_of_nq_dlq_are_listed_and_shown(void **state)
{
	itest_env *e = *state;
	dlqt_dead_job job;
	uint64_t at = itest_wall_us(), id = 0xd00;
	uint8_t tk[16], ik[8];
	char sid[NQ_ID_MAX];
	itest_run run;
	dlqt t;

	/* A store of today's nq-dlq with the entry, then the bytes of an
	 * older one, in the entry and in its summary for listing. */
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	dlqt_dead(&job, id, "legacy", "t", "max_attempts", at, 1);
	job.spec.idempotency_key = "k~old";
	job.err[0].message = "broke ^^ here";
	assert_int_equal(dlqt_ingest(e->dlq_url, &job, 1), 0);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	const char *const marks[] = {"k~old", "k\0old", "^^", "\xff\xfe", NULL};
	nqi_be64_put(ik, id);
	nqi_be64_put(tk, at);
	nqi_be64_put(tk + 8, id);
	dlq_store_patch(t.data_dir, "entries", ik, 8, marks, NULL);
	dlq_store_patch(t.data_dir, "time", tk, 16, marks, "strings_text");

	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_true(dlqt_log_has(t.log, "NQ-RECORD-REPAIRED"));
	nqi_id_format(id, sid);
	assert_int_equal(itest_nqctl(e, 20000, &run, "--dlq", e->dlq_url, "dlq",
	                     "list", NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, REPAIRED_MSG));
	itest_run_free(&run);
	assert_int_equal(itest_nqctl(e, 20000, &run, "--dlq", e->dlq_url,
	                     "--json", "dlq", "show", sid, NULL),
	    0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "\"idempotency_key\":\"k\""));
	assert_non_null(strstr(run.out, REPAIRED_MSG));
	itest_run_free(&run);

	/* libnq's call, and its strict decoder */
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqShowRequest body = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	nq_client_opts o = {.timeout_ms = 5000}; /* no broker: never dialed */
	nq_client *c;
	uint8_t *buf;
	void *reply;
	size_t len, reply_len;
	body.id = sid;
	req.version = 1;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
	req.dlq_show = &body;
	assert_int_equal(nqi_buf_pack(&req.base, &buf, &len), 0);
	assert_int_equal(nq_client_open(&c, &o), 0);
	assert_int_equal(nq_client_set_dlq_url(c, e->dlq_url), 0);
	assert_int_equal(
	    nq_dlq_request(c, buf, len, 5000, &reply, &reply_len), NQ_OK);
	Nq__V1__Reply *r = nqi_reply_unpack(reply, reply_len);
	assert_non_null(r);
	assert_int_equal(r->body_case, NQ__V1__REPLY__BODY_DLQ_SHOW);
	assert_string_equal(
	    r->dlq_show->job->job->errors[0]->message, REPAIRED_MSG);
	nq__v1__reply__free_unpacked(r, NULL);
	free(reply);
	free(buf);
	nq_client_close(c);

	/* once: the next start finds nothing to repair */
	assert_int_equal(dlqt_stop_clean(&t), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	assert_false(dlqt_log_has(t.log, "NQ-RECORD-REPAIRED"));
	uint64_t *ids;
	size_t n;
	assert_int_equal(dlqt_list_all(e->dlq_url, NULL, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], id);
	free(ids);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_legacy_records_are_served_and_reach_nq_dlq, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_legacy_records_of_nq_dlq_are_listed_and_shown, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
