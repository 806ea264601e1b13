/*
 * Records an older broker stored before strings were checked: a NUL in an
 * idempotency key, bytes that are not UTF-8 in an attempt's error
 * message. Written straight into the real store of a stopped broker, then
 * the broker starts on it with nq-dlq: get answers (libnq's strict
 * decoder takes the reply), a worker can fetch the job, and dead jobs
 * reach nq-dlq instead of blocking the handoff.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_legacy_records_are_served_and_reach_nq_dlq, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
