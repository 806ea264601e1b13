/*
 * Claim check and nq-dlq: the blob of a job that nq-dlq holds stays in the
 * broker's --blob-dir after the job's record went, and a replay carries
 * the ref with its size and SHA-256, so that the replayed job checks and
 * gets the very bytes; the replay's blob stays too, as the entry's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "dlqt.h"
#include "nqi/blob.h"

#define WAIT_MS 30000

/* Type "t" fails for good (exit 65) until <dir>/fixed exists, then prints
 * the SHA-256 of its stdin. */
static void start_worker(itest_env *e, const char *fixed)
{
	char script[PATH_MAX], body[PATH_MAX + 128], handler[PATH_MAX + 8];
	itest_proc *w;
	snprintf(body, sizeof body,
	    "[ -e '%s' ] || exit 65\nsha256sum | cut -c1-64 | tr -d '\\n'\n",
	    fixed);
	assert_int_equal(
	    itest_write_script(e, "handler.sh", body, script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "t=%s", script);
	const char *const flags[] = {
	    "--queues", "q", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, flags, &w), 0);
}

/* Replays entry id with nqctl; returns the new job's id in out. */
static void replay(itest_env *e, const char *id, char out[NQ_ID_MAX])
{
	const char *args[] = {
	    "--dlq", e->dlq_url, "--json", "dlq", "replay", id, NULL};
	itest_run run;
	json_t *o;
	assert_int_equal(itest_nqctl_argv(e, 60000, args, &run), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_json(&run, &o), 0);
	json_t *first = json_array_get(json_object_get(o, "results"), 0);
	snprintf(out, NQ_ID_MAX, "%s", itest_json_str(first, "id"));
	json_decref(o);
	itest_run_free(&run);
}

static void test_claim_check_dlq_keeps_the_blob_for_replay(void **state)
{
	itest_env *e = *state;
	char dir[PATH_MAX], fixed[PATH_MAX], blob[PATH_MAX];
	char sha[NQI_SHA256_HEX], id[NQ_ID_MAX], again[NQ_ID_MAX];
	static char data[300000];
	const char *flags[] = {"--blob-dir", dir, "--result-ttl", "1s", NULL};
	dlqt t;
	nq_client *c;
	nq_job *job;
	memset(data, 'd', sizeof data);
	nqi_sha256_hex(data, sizeof data, sha);
	itest_path(e, "blobs", dir, sizeof dir);
	itest_path(e, "fixed", fixed, sizeof fixed);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(dlqt_init(&t, e), 0);
	assert_int_equal(itest_broker_start(e, flags), 0);
	assert_int_equal(dlqt_start(&t, NULL, NULL), 0);
	start_worker(e, fixed);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_client_set_offload(c, dir, 0), 0);
	nq_job_spec spec = {
	    .queue = "q", .type = "t", .payload = data, .payload_len = 300000};
	assert_int_equal(nq_enqueue(c, &spec, id, NULL), NQ_OK);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_DEAD, WAIT_MS, &job), 0);
	char *path = NULL;
	assert_int_equal(nqi_blob_file_path(nq_job_payload_ref(job), &path), 0);
	snprintf(blob, sizeof blob, "%s", path);
	free(path);
	nq_job_free(job);
	assert_int_equal(dlqt_wait_total(e->dlq_url, 1, WAIT_MS), 0);

	/* The summary goes after result_ttl; the blob stays, the entry's. */
	assert_int_equal(itest_wait_gone(c, id, WAIT_MS), 0);
	assert_int_equal(access(blob, F_OK), 0);

	FILE *f = fopen(fixed, "w");
	assert_non_null(f);
	fclose(f);
	replay(e, id, again);
	assert_int_equal(
	    itest_wait_state(c, again, NQ_STATE_SUCCEEDED, WAIT_MS, &job), 0);
	assert_string_equal(nq_job_payload_sha256(job), sha);
	assert_int_equal(nq_job_payload_size(job), sizeof data);
	size_t len;
	const char *res = nq_job_result(job, &len);
	assert_int_equal(len, 64);
	assert_memory_equal(res, sha, 64);
	nq_job_free(job);
	assert_int_equal(itest_wait_gone(c, again, WAIT_MS), 0);
	assert_int_equal(access(blob, F_OK), 0);
	nq_client_close(c);
	assert_int_equal(dlqt_stop_clean(&t), 0);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_claim_check_dlq_keeps_the_blob_for_replay, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name(
	    "claim_check_dlq", tests, NULL, NULL);
}
