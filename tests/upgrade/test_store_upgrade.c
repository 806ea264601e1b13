/*
 * Upgrades: the stores an older nq-broker and nq-dlq wrote open in this
 * one. tests/fixtures/store-v1 was written by the broker of its time
 * (tests/upgrade/make-store.sh: a job in every state, killed mid-lease),
 * with each job as that broker showed it. A copy is opened here: every job
 * reads as it was, the unique and idempotency keys still hold, the cron
 * state and queue settings are kept, the leased job runs again, the dead
 * job waiting for nq-dlq reaches it, and the counts add up. A store of a
 * newer schema is refused and left as it was.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>
#include <lmdb.h>

#include "dlqt.h"
#include "nqi/store.h"

#define FIXTURE NQ_STORE_FIXTURE_DIR

/* What the fixture's broker ran with: its queues file, and expiry times
 * long enough that nothing it kept lapses. */
#define FIXTURE_FLAGS(yaml)                                                    \
	"--queues-config", (yaml), "--result-ttl", "876000h",                  \
	    "--idempotency-window", "876000h"

static int setup(void **state)
{
	return itest_setup(state);
}

static void copy_file(const char *from, const char *to)
{
	char *buf;
	size_t len;
	assert_int_equal(itest_read_file(from, &buf, &len), 0);
	FILE *f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(buf);
}

/* The fixture's store of one service (broker, dlq) into dir. */
static void store_copy(const char *service, const char *dir)
{
	char from[PATH_MAX], to[PATH_MAX];
	assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
	snprintf(from, sizeof from, "%s/%s/data.mdb", FIXTURE, service);
	snprintf(to, sizeof to, "%s/data.mdb", dir);
	copy_file(from, to);
}

static json_t *fixture_json(const char *name)
{
	char path[PATH_MAX];
	json_error_t err;
	snprintf(path, sizeof path, "%s/%s", FIXTURE, name);
	json_t *j = json_load_file(path, 0, &err);
	if (!j)
		fail_msg("%s: %s", path, err.text);
	return j;
}

/* nqctl --json with the env's api and dlq sockets; its output as JSON (an
 * object or an array). */
static json_t *ctl(itest_env *e, ...)
{
	const char *args[24] = {
	    "--api", e->api_url, "--dlq", e->dlq_url, "--json"};
	size_t n = 5;
	va_list ap;
	va_start(ap, e);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 23;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	itest_run run;
	json_error_t err;
	assert_int_equal(itest_nqctl_argv(e, 30000, args, &run), 0);
	if (run.code != 0)
		fail_msg("nqctl %s %s: exit %d: %s%s", args[5],
		    n > 6 ? args[6] : "", run.code, run.out, run.err);
	json_t *j = json_loads(run.out, 0, &err);
	if (!j)
		fail_msg("nqctl %s: not JSON: %s", args[5], run.out);
	itest_run_free(&run);
	return j;
}

static bool skipped(const char *key, const char *const *skip)
{
	for (; skip && *skip; skip++)
		if (strcmp(key, *skip) == 0)
			return true;
	return false;
}

/* Every member of want, but those named in skip, is in got with the same
 * value (got may have members added since the fixture was made). */
static void assert_holds(const char *what, const json_t *want,
    const json_t *got, const char *const *skip)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)want, key, v)
	{
		if (skipped(key, skip))
			continue;
		json_t *g = json_object_get(got, key);
		if (!g || !json_equal(v, g)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY);
			char *b = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
			fail_msg("%s: %s was %s, reads %s", what, key, a,
			    b ? b : "(absent)");
		}
	}
}

static const char *id_of(const json_t *jobs, const char *role)
{
	const char *id = itest_json_str(json_object_get(jobs, role), "id");
	assert_non_null(id);
	return id;
}

/* Starts the broker on a copy of the fixture's store, nq-dlq not yet. */
static void broker_on_fixture(itest_env *e)
{
	char yaml[PATH_MAX];
	snprintf(yaml, sizeof yaml, "%s/queues.yaml", FIXTURE);
	store_copy("broker", e->data_dir);
	const char *const flags[] = {FIXTURE_FLAGS(yaml), NULL};
	assert_int_equal(itest_broker_start(e, flags), 0);
}

/* The leased job was made ready again by the restart, its attempt and
 * everything else kept. */
static void assert_released(const json_t *want, const json_t *got)
{
	static const char *const moved[] = {
	    "state", "errors", "worker_id", NULL};
	assert_holds("leased", want, got, moved);
	assert_string_equal(itest_json_str(got, "state"), "ready");
	json_t *errs = json_object_get(got, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_non_null(
	    strstr(itest_json_str(json_array_get(errs, 0), "message"),
	        "broker restarted while the job was leased"));
}

static void test_store_upgrade_every_job_reads_as_it_was(void **state)
{
	itest_env *e = *state;
	json_t *jobs = fixture_json("jobs.json"), *want;
	const char *role;
	broker_on_fixture(e);
	json_object_foreach(jobs, role, want)
	{
		json_t *got = ctl(e, "get", id_of(jobs, role), NULL);
		if (strcmp(role, "leased") == 0)
			assert_released(want, got);
		else
			assert_holds(role, want, got, NULL);
		json_decref(got);
	}
	json_decref(jobs);
	itest_pass(e);
}

/* A repeat of a key the fixture's jobs hold returns that job. */
static void assert_repeat_returns(
    itest_env *e, const char *id, const char *const *flags)
{
	const char *argv[16] = {
	    "--api", e->api_url, "enqueue", "up-ready", "echo"};
	size_t n = 5;
	for (; *flags && n < 15; flags++)
		argv[n++] = *flags;
	itest_run run;
	char got[NQ_ID_MAX];
	assert_int_equal(itest_nqctl_argv(e, 30000, argv, &run), 0);
	assert_int_equal(run.code, 0);
	assert_int_equal(itest_run_id(&run, got), 0);
	assert_string_equal(got, id);
	itest_run_free(&run);
}

static json_t *queue_row(json_t *stats, const char *queue)
{
	size_t i;
	json_t *q;
	json_array_foreach(json_object_get(stats, "queues"), i, q)
	{
		if (strcmp(itest_json_str(q, "queue"), queue) == 0)
			return q;
	}
	fail_msg("no queue %s in stats", queue);
	return NULL;
}

static const char *const state_fields[] = {"scheduled", "ready", "leased",
    "succeeded", "dead", "canceled", "expired", "waiting", NULL};

/* The jobs a queue holds, by the counts of stats. */
static long long held(const json_t *q)
{
	long long n = 0;
	for (const char *const *f = state_fields; *f; f++)
		n += itest_json_int(q, *f);
	return n;
}

/* Each queue counts the jobs the fixture left in it, and the counts add up
 * to the jobs the broker says it stores. */
static void assert_counts(itest_env *e, long long dead_pending)
{
	static const struct {
		const char *queue, *state;
		long long n;
	} rows[] = {
	    {"up-ready", "ready", 3},
	    {"up-ready", "waiting", 1},
	    {"up-sched", "scheduled", 1},
	    {"up-sched", "canceled", 1},
	    {"up-paused", "ready", 1},
	    {"up-lease", "ready", 1},
	    {"up-done", "succeeded", 1},
	    {"up-cron", "ready", 1},
	};
	json_t *stats = ctl(e, "stats", NULL);
	long long sum = 0;
	size_t i;
	json_t *q;
	for (i = 0; i < sizeof rows / sizeof *rows; i++) {
		q = queue_row(stats, rows[i].queue);
		if (itest_json_int(q, rows[i].state) != rows[i].n)
			fail_msg("%s %s: %lld, the fixture left %lld",
			    rows[i].queue, rows[i].state,
			    itest_json_int(q, rows[i].state), rows[i].n);
	}
	q = queue_row(stats, "up-dead");
	assert_int_equal(itest_json_int(q, "dead"), dead_pending);
	assert_int_equal(itest_json_int(q, "dead_pending"), dead_pending);
	assert_true(json_is_true(
	    json_object_get(queue_row(stats, "up-paused"), "paused")));
	json_array_foreach(json_object_get(stats, "queues"), i, q) sum +=
	    held(q);
	assert_int_equal(sum,
	    itest_json_int(json_object_get(stats, "broker"), "jobs_stored"));
	json_decref(stats);
}

static void test_store_upgrade_keeps_keys_settings_and_cron(void **state)
{
	itest_env *e = *state;
	json_t *jobs = fixture_json("jobs.json");
	broker_on_fixture(e);
	assert_counts(e, 1);
	const char *const unique[] = {
	    "--unique-key", "up-key", "--unique-scope", "queued", NULL};
	const char *const idem[] = {"--idempotency-key", "up-idem", NULL};
	assert_repeat_returns(e, id_of(jobs, "ready2"), unique);
	assert_repeat_returns(e, id_of(jobs, "ready3"), idem);

	json_t *shown = ctl(e, "queue", "show", "up-ready", NULL);
	json_t *policy = json_object_get(json_array_get(shown, 0), "policy");
	json_t *v = json_object_get(policy, "max_attempts");
	assert_string_equal(itest_json_str(v, "value"), "4");
	assert_string_equal(itest_json_str(v, "source"), "runtime");
	json_decref(shown);

	json_t *cron = ctl(e, "cron", "list", NULL);
	json_t *was = fixture_json("cron.json");
	static const char *const moves[] = {"next_tick", NULL};
	assert_holds(
	    "cron", json_array_get(was, 0), json_array_get(cron, 0), moves);
	json_decref(was);
	json_decref(cron);
	json_decref(jobs);
	itest_pass(e);
}

/* Waits until the job is in state (nqctl get), at most 30 s. */
static void wait_state(itest_env *e, const char *id, const char *want)
{
	uint64_t end = itest_now_ms() + 30000;
	for (;;) {
		json_t *j = ctl(e, "get", id, NULL);
		bool done = strcmp(itest_json_str(j, "state"), want) == 0;
		if (done || itest_now_ms() > end)
			assert_string_equal(itest_json_str(j, "state"), want);
		json_decref(j);
		if (done)
			return;
		itest_sleep_ms(100);
	}
}

static void test_store_upgrade_runs_the_jobs_and_hands_the_dead_over(
    void **state)
{
	itest_env *e = *state;
	json_t *jobs = fixture_json("jobs.json");
	dlqt d;
	broker_on_fixture(e);
	assert_int_equal(dlqt_init(&d, e), 0);
	store_copy("dlq", d.data_dir);
	/* Its entries died when the fixture was made: no retention by age
	 * prunes them, however long ago that was. */
	const char *const dlq_flags[] = {"--retention-age", "0", NULL};
	assert_int_equal(dlqt_start(&d, dlq_flags, NULL), 0);
	/* The entry it held, and the dead job the broker still held. */
	assert_int_equal(dlqt_wait_total(e->dlq_url, 2, 30000), 0);
	json_t *was = fixture_json("dlq.json");
	json_t *shown = ctl(e, "dlq", "show", id_of(jobs, "in_dlq"), NULL);
	assert_holds("dlq entry", was, shown, NULL);
	json_decref(shown);
	json_decref(was);
	shown = ctl(e, "dlq", "show", id_of(jobs, "pending"), NULL);
	assert_string_equal(itest_json_str(shown, "reason"), "max_attempts");
	json_decref(shown);
	assert_int_equal(dlqt_dead_pending(e, "up-dead"), 0);

	json_decref(ctl(e, "resume", "up-paused", NULL));
	const char *const wflags[] = {"--queues",
	    "up-ready,up-paused,up-lease,up-cron", "--handler",
	    "echo=printf ok", "--handler", "sleep=printf slept", "--handler",
	    "tick=true", NULL};
	itest_proc *w;
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	static const char *const run[] = {"ready1", "ready2", "ready3",
	    "parent", "waiting", "leased", "tick", NULL};
	for (const char *const *r = run; *r; r++)
		wait_state(e, id_of(jobs, *r), "succeeded");
	json_t *leased = ctl(e, "get", id_of(jobs, "leased"), NULL);
	assert_int_equal(itest_json_int(leased, "attempt"), 2);
	assert_string_equal(itest_json_str(leased, "result"), "slept");
	json_decref(leased);
	wait_state(e, id_of(jobs, "scheduled"), "scheduled");

	json_t *stats = ctl(e, "stats", NULL);
	json_t *q = queue_row(stats, "up-ready");
	assert_int_equal(itest_json_int(q, "succeeded"), 4);
	assert_int_equal(itest_json_int(q, "succeeded_total"), 4);
	assert_int_equal(held(queue_row(stats, "up-dead")), 0);
	long long sum = 0;
	size_t i;
	json_array_foreach(json_object_get(stats, "queues"), i, q) sum +=
	    held(q);
	/* Every job but the two nq-dlq holds (the broker keeps a summary of
	 * each, counted as gone). */
	assert_int_equal(sum, 10);
	assert_int_equal(sum,
	    itest_json_int(json_object_get(stats, "broker"), "jobs_stored"));
	json_decref(stats);
	json_decref(jobs);
	assert_int_equal(dlqt_stop_clean(&d), 0);
	itest_pass(e);
}

/* ---- a store of a newer schema ---- */

/* A schema no nq knows yet. */
#define NEWER_SCHEMA 999

/* Marks the store in dir as written by a newer schema which (as a newer
 * nq might) no longer has the database gone. */
static void make_newer(const char *dir, const char *gone)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, dbi;
	uint8_t v[8];
	nqi_be64_put(v, NEWER_SCHEMA);
	MDB_val k = {14, "schema_version"}, val = {8, v};
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_put(txn, meta, &k, &val, 0), 0);
	assert_int_equal(mdb_dbi_open(txn, gone, 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Runs the daemon (argv) on the newer store in dir: it exits non-zero
 * saying why, and the store's file is byte for byte as it was. */
static void assert_refused(
    itest_env *e, const char *name, const char *const *argv, const char *dir)
{
	char path[PATH_MAX];
	char *before, *after, *log;
	size_t nbefore, nafter, nlog;
	itest_proc *p;
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	assert_int_equal(itest_read_file(path, &before, &nbefore), 0);
	assert_int_equal(itest_spawn(e, name, argv, NULL, &p), 0);
	assert_int_equal(itest_wait_exit(p, 20000), 0);
	assert_true(WIFEXITED(p->status));
	assert_int_not_equal(WEXITSTATUS(p->status), 0);
	assert_int_equal(itest_read_file(p->log, &log, &nlog), 0);
	if (!strstr(log, "store schema 999 is newer than this binary"))
		fail_msg("%s did not say why it stopped:\n%s", name, log);
	assert_int_equal(itest_read_file(path, &after, &nafter), 0);
	assert_int_equal(nafter, nbefore);
	assert_memory_equal(after, before, nbefore);
	free(before);
	free(after);
	free(log);
}

static void test_store_upgrade_refuses_a_newer_schema_untouched(void **state)
{
	itest_env *e = *state;
	dlqt d;
	assert_int_equal(dlqt_init(&d, e), 0);
	store_copy("broker", e->data_dir);
	store_copy("dlq", d.data_dir);
	make_newer(e->data_dir, "handoff");
	make_newer(d.data_dir, "counts");
	const char *const broker[] = {ITEST_BROKER_PATH, "--data-dir",
	    e->data_dir, "--api", "tcp://127.0.0.1:0", "--work",
	    "tcp://127.0.0.1:0", "--results", "tcp://127.0.0.1:0", "--events",
	    "", "--http", "", "--dlq", "", NULL};
	const char *const dlq[] = {ITEST_DLQ, "--data-dir", d.data_dir,
	    "--listen", e->dlq_url, "--http", "", NULL};
	assert_refused(e, "broker", broker, e->data_dir);
	assert_refused(e, "dlq", dlq, d.data_dir);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_store_upgrade_every_job_reads_as_it_was, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_upgrade_keeps_keys_settings_and_cron, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_upgrade_runs_the_jobs_and_hands_the_dead_over, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_upgrade_refuses_a_newer_schema_untouched, setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
