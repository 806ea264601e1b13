/*
 * Claim check with the real binaries: a payload far over --max-payload
 * goes to the blob directory (nqctl --blob-dir --offload-above) and
 * reaches the command byte for byte; a corrupt or missing blob fails its
 * job for good, naming the ref and what was wrong; an http:// ref is
 * fetched from a loopback web server (python3 -m http.server); and the
 * broker deletes a blob of its --blob-dir once the job's record goes after
 * result_ttl, and nothing outside that directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nqi/blob.h"

#define BIG_LEN (5u << 20)
#define WAIT_MS 30000

/* The command: the SHA-256 of its stdin, a space, NQ_PAYLOAD_REF. */
static const char digest_script[] =
    "#!/bin/sh\n"
    "sum=$(sha256sum | cut -c1-64)\n"
    "printf '%s %s' \"$sum\" \"$NQ_PAYLOAD_REF\"\n";

/* Bytes that are not text and differ from run to run. */
static uint8_t *random_bytes(size_t len)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)random();
	return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* How many blobs dir holds; *other counts anything else in it. */
static int count_blobs(const char *dir, int *other)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	*other = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (nqi_blob_name_valid(de->d_name))
			n++;
		else
			(*other)++;
	}
	closedir(d);
	return n;
}

/* Starts the broker with --blob-dir dir and the extra flags. */
static void start_broker(itest_env *e, const char *dir, const char *extra)
{
	const char *flags[] = {
	    "--blob-dir", dir, extra, extra ? "1s" : NULL, NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
}

/* Starts a worker running the digest script for type "sum" on queue q. */
static void start_worker(itest_env *e)
{
	char script[PATH_MAX], handler[PATH_MAX + 8];
	itest_proc *w;
	assert_int_equal(itest_write_script(
	                     e, "sum.sh", digest_script, script, sizeof script),
	    0);
	snprintf(handler, sizeof handler, "sum=%s", script);
	const char *wflags[] = {"--queues", "q,q0", "--handler", handler, NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
}

/* Enqueues the file by nqctl with the claim-check flags; returns its id. */
static void enqueue_file(itest_env *e, const char *file, const char *dir,
    const char *how, const char *how_arg, char id[NQ_ID_MAX])
{
	itest_run r;
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "sum",
	                     "--payload-file", file, "--blob-dir", dir,
	                     "--max-attempts", "5", how, how_arg, NULL),
	    0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_id(&r, id), 0);
	itest_run_free(&r);
}

static void test_claim_check_5mb_payload_arrives_whole(void **state)
{
	itest_env *e = *state;
	char dir[PATH_MAX], file[PATH_MAX], sha[NQI_SHA256_HEX], id[NQ_ID_MAX];
	int other;
	itest_run r;
	json_t *j;
	nq_client *c;
	nq_job *job;
	itest_path(e, "blobs", dir, sizeof dir);
	itest_path(e, "big.bin", file, sizeof file);
	assert_int_equal(mkdir(dir, 0700), 0);
	uint8_t *big = random_bytes(BIG_LEN);
	write_file(file, big, BIG_LEN);
	nqi_sha256_hex(big, BIG_LEN, sha);
	free(big);
	start_broker(e, dir, NULL);
	start_worker(e);

	/* Inline, it is refused, with the way round the limit. */
	assert_int_equal(itest_nqctl(e, 15000, &r, "enqueue", "q", "sum",
	                     "--payload-file", file, NULL),
	    0);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "--offload-above"));
	itest_run_free(&r);
	enqueue_file(e, file, dir, "--offload-above", "1m", id);
	assert_int_equal(count_blobs(dir, &other), 1);
	assert_int_equal(other, 0); /* no temporary file left behind */
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, WAIT_MS, &job), 0);
	nq_job_free(job);

	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--json", "get", id, NULL), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(itest_run_json(&r, &j), 0);
	const char *ref = itest_json_str(j, "payload_ref");
	assert_non_null(ref);
	assert_int_equal(strncmp(ref, "file://", 7), 0);
	assert_non_null(strstr(ref, "/blobs/nq-"));
	assert_int_equal(itest_json_int(j, "payload_size"), BIG_LEN);
	assert_string_equal(itest_json_str(j, "payload_sha256"), sha);
	/* The command saw the very bytes, and where they came from. */
	char want[NQI_SHA256_HEX + 4096];
	snprintf(want, sizeof want, "%s %s", sha, ref);
	assert_string_equal(itest_json_str(j, "result"), want);
	assert_true(json_is_null(json_object_get(j, "payload")));
	json_decref(j);
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

/* Enqueues a small payload by claim check and breaks its blob with fn. */
static void enqueue_broken(itest_env *e, const char *dir, const char *name,
    void (*fn)(const char *path), char id[NQ_ID_MAX])
{
	char file[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct dirent *de;
	itest_path(e, name, file, sizeof file);
	write_file(file, "some bytes to check", 19);
	enqueue_file(e, file, dir, "--offload", NULL, id);
	DIR *d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (nqi_blob_name_valid(de->d_name)) {
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
			fn(path);
		}
	closedir(d);
}

static void corrupt(const char *path)
{
	write_file(path, "some bytes to cheat", 19);
}

static void delete (const char *path)
{
	assert_int_equal(unlink(path), 0);
}

/* Waits for the job to die after one attempt; returns its last error. */
static char *dead_after_one(nq_client *c, const char *id, const char *ref)
{
	nq_job *job;
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_DEAD, WAIT_MS, &job), 0);
	assert_int_equal(nq_job_attempt(job), 1);
	assert_string_equal(nq_job_dead_reason(job), "non_retryable");
	size_t n = nq_job_error_count(job);
	assert_true(n >= 1);
	char *msg = strdup(nq_job_error(job, n - 1, NULL, NULL));
	print_message("error: %s\n", msg);
	assert_non_null(strstr(msg, "payload_ref "));
	assert_non_null(strstr(msg, ref));
	nq_job_free(job);
	return msg;
}

static void test_claim_check_broken_blob_fails_for_good(void **state)
{
	itest_env *e = *state;
	char dir[PATH_MAX], id1[NQ_ID_MAX], id2[NQ_ID_MAX];
	nq_client *c;
	itest_path(e, "blobs", dir, sizeof dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* The worker starts once the blobs are broken: no race with it. The
	 * missing one goes first, so that the directory then holds only the
	 * blob to corrupt. */
	start_broker(e, dir, NULL);
	enqueue_broken(e, dir, "b.bin", delete, id2);
	enqueue_broken(e, dir, "a.bin", corrupt, id1);
	assert_int_equal(itest_client(e, 0, &c), 0);
	start_worker(e);
	char *msg = dead_after_one(c, id1, "/blobs/nq-");
	assert_non_null(strstr(msg, "SHA-256"));
	assert_non_null(strstr(msg, "corrupt"));
	free(msg);
	msg = dead_after_one(c, id2, "/blobs/nq-");
	assert_non_null(strstr(msg, "no such blob"));
	free(msg);
	nq_client_close(c);
	itest_pass(e);
}

/* Enqueues a job of type sum whose payload is at ref (declared to be of
 * size declared), or is data when ref is NULL, to which c's offload
 * settings apply. */
static void enqueue_ref(nq_client *c, const char *queue, const char *ref,
    const void *data, size_t len, uint64_t declared, const char *key,
    char id[NQ_ID_MAX], bool *dup)
{
	char sha[NQI_SHA256_HEX];
	nqi_sha256_hex(data, len, sha);
	nq_job_spec spec = {.queue = queue,
	    .type = "sum",
	    .max_attempts = 5,
	    .idempotency_key = key,
	    .payload = ref ? NULL : data,
	    .payload_len = ref ? 0 : len,
	    .payload_ref = ref,
	    .payload_size = ref ? declared : 0,
	    .payload_sha256 = ref ? sha : NULL};
	bool d;
	assert_int_equal(nq_enqueue(c, &spec, id, &d), NQ_OK);
	if (dup)
		*dup = d;
}

/* The job succeeded with the digest script's result for data. */
static void assert_summed(
    nq_client *c, const char *id, const void *data, size_t len)
{
	char sha[NQI_SHA256_HEX];
	size_t rlen;
	nq_job *job;
	nqi_sha256_hex(data, len, sha);
	assert_int_equal(
	    itest_wait_state(c, id, NQ_STATE_SUCCEEDED, WAIT_MS, &job), 0);
	const char *res = nq_job_result(job, &rlen);
	assert_true(rlen > 64);
	assert_memory_equal(res, sha, 64);
	nq_job_free(job);
}

static void test_claim_check_blobs_go_with_their_jobs(void **state)
{
	itest_env *e = *state;
	char dir[PATH_MAX], outside[PATH_MAX], id[5][NQ_ID_MAX];
	static const char data[2000] = "a payload to offload";
	int other;
	bool dup;
	nq_client *c;
	itest_path(e, "blobs", dir, sizeof dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* A file named like a blob but outside --blob-dir: never deleted. */
	itest_path(
	    e, "nq-0123456789abcdef0123456789abcdef", outside, sizeof outside);
	write_file(outside, data, sizeof data);
	start_broker(e, dir, "--result-ttl");
	start_worker(e);
	assert_int_equal(itest_client(e, 0, &c), 0);
	assert_int_equal(nq_client_set_offload(c, dir, 1000), 0);

	enqueue_ref(c, "q", NULL, data, sizeof data, 0, "k", id[0], &dup);
	assert_false(dup);
	/* A duplicate's blob is removed again: the job has its own. */
	enqueue_ref(c, "q", NULL, data, sizeof data, 0, "k", id[1], &dup);
	assert_true(dup);
	assert_string_equal(id[0], id[1]);
	assert_int_equal(count_blobs(dir, &other), 1);
	/* Under the threshold: inline, no blob. */
	enqueue_ref(c, "q", NULL, data, 1000, 0, NULL, id[2], NULL);
	assert_int_equal(count_blobs(dir, &other), 1);
	/* With result_ttl 0 the record goes as the job ends, blob too. */
	const char *ttl0[] = {"result_ttl=0"};
	assert_int_equal(nq_queue_policy_set(c, "q0", ttl0, 1, NULL), NQ_OK);
	enqueue_ref(c, "q0", NULL, data, sizeof data, 0, NULL, id[4], NULL);
	char *ref = nqi_blob_file_ref(outside);
	enqueue_ref(
	    c, "q", ref, data, sizeof data, sizeof data, NULL, id[3], NULL);
	free(ref);

	assert_summed(c, id[0], data, sizeof data);
	assert_summed(c, id[2], data, 1000);
	assert_summed(c, id[3], data, sizeof data);
	for (int i = 0; i < 5; i++)
		assert_int_equal(itest_wait_gone(c, id[i], WAIT_MS), 0);
	/* The broker's reaper thread unlinks them right after. */
	uint64_t t0 = itest_now_ms();
	while (count_blobs(dir, &other) > 0 && itest_now_ms() - t0 < WAIT_MS)
		itest_sleep_ms(50);
	assert_int_equal(count_blobs(dir, &other), 0);
	assert_int_equal(other, 0);
	assert_int_equal(access(outside, F_OK), 0);
	nq_client_close(c);
	itest_pass(e);
}

/* Starts python3's web server on loopback port 0 serving www, and reads
 * the port it bound from its first line. */
static int serve_http(itest_env *e, const char *www)
{
	const char *argv[] = {"/usr/bin/python3", "-u", "-m", "http.server",
	    "0", "--bind", "127.0.0.1", "--directory", www, NULL};
	itest_proc *p;
	int port = -1;
	assert_int_equal(itest_spawn(e, "http", argv, NULL, &p), 0);
	for (uint64_t t0 = itest_now_ms();
	     port < 0 && itest_now_ms() - t0 < 15000; itest_sleep_ms(50)) {
		char *log = NULL;
		size_t len;
		const char *at;
		if (itest_read_file(p->log, &log, &len) == 0 &&
		    (at = strstr(log, " port ")) != NULL)
			port = atoi(at + 6);
		free(log);
	}
	assert_true(port > 0);
	return port;
}

static void test_claim_check_http_ref_is_fetched(void **state)
{
	itest_env *e = *state;
	char dir[PATH_MAX], www[PATH_MAX], file[PATH_MAX], ref[3][128];
	char id[3][NQ_ID_MAX];
	nq_client *c;
	itest_path(e, "blobs", dir, sizeof dir);
	itest_path(e, "www", www, sizeof www);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(www, 0700), 0);
	itest_path(e, "www/data.bin", file, sizeof file);
	uint8_t *data = random_bytes(300000);
	write_file(file, data, 300000);
	int port = serve_http(e, www);
	start_broker(e, dir, NULL);
	start_worker(e);
	assert_int_equal(itest_client(e, 0, &c), 0);
	snprintf(ref[0], sizeof ref[0], "http://127.0.0.1:%d/data.bin", port);
	snprintf(ref[1], sizeof ref[1], "http://127.0.0.1:%d/none.bin", port);
	enqueue_ref(c, "q", ref[0], data, 300000, 300000, NULL, id[0], NULL);
	enqueue_ref(c, "q", ref[1], data, 300000, 300000, NULL, id[1], NULL);
	/* Declared smaller than it is: the fetch stops at the size. */
	enqueue_ref(c, "q", ref[0], data, 300000, 1000, NULL, id[2], NULL);

	assert_summed(c, id[0], data, 300000);
	char *msg = dead_after_one(c, id[1], ref[1]);
	assert_non_null(strstr(msg, "no such blob (HTTP 404)"));
	free(msg);
	msg = dead_after_one(c, id[2], ref[0]);
	assert_non_null(strstr(msg, "larger than the 1000 bytes"));
	free(msg);
	free(data);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	srandom((unsigned)getpid());
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_claim_check_5mb_payload_arrives_whole, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_claim_check_broken_blob_fails_for_good, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_claim_check_blobs_go_with_their_jobs, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_claim_check_http_ref_is_fetched, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests_name("claim_check", tests, NULL, NULL);
}
