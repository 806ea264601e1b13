/* Store: LMDB under a data directory, a schema-version key, durable
 * commits, and the commit fault seam. Each test gets a fresh mkdtemp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nqi/store.h"
#include "nqi/util.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

static const nqi_store_db dbs[] = {
    {"jobs", NULL}, {"queues", NULL}, {NULL, NULL}};

typedef struct fixture {
	char dir[64];
	char err[256];
	nqi_store_opts opts;
} fixture;

static int setup(void **st)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/nq-test-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	f->opts = (nqi_store_opts){.dir = f->dir,
	    .sync = true,
	    .map_size = 16u << 20,
	    .dbs = dbs,
	    .schema_version = 1};
	unsetenv("NQ_FAULT_COMMIT_FAIL");
	*st = f;
	return 0;
}

static void remove_tree(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char path[256];
	for (size_t i = 0; i < COUNT(files); i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int teardown(void **st)
{
	fixture *f = *st;
	unsetenv("NQ_FAULT_COMMIT_FAIL");
	char sub[128];
	snprintf(sub, sizeof sub, "%s/sub", f->dir);
	remove_tree(sub);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static nqi_store *open_ok(fixture *f)
{
	nqi_store *s = NULL;
	int rv = nqi_store_open(&s, &f->opts, f->err, sizeof f->err);
	if (rv != NQ_OK)
		fail_msg(
		    "open %s: %s (%s)", f->opts.dir, nq_err_name(rv), f->err);
	assert_non_null(s);
	return s;
}

/* Writes key -> value into database db and commits. */
static int put(nqi_store *s, size_t db, uint64_t key, const char *value)
{
	MDB_txn *txn;
	uint8_t k[8];
	int rv = nqi_store_begin(s, true, &txn);
	if (rv)
		return rv;
	nqi_be64_put(k, key);
	MDB_val kv = {8, k}, vv = {strlen(value), (void *)value};
	rv = nqi_store_err(mdb_put(txn, nqi_store_dbi(s, db), &kv, &vv, 0));
	if (rv) {
		mdb_txn_abort(txn);
		return rv;
	}
	return nqi_store_commit(s, txn);
}

/* Reads key from database db into out; NQ_ENOTFOUND when absent. */
static int get(nqi_store *s, size_t db, uint64_t key, char *out, size_t len)
{
	MDB_txn *txn;
	uint8_t k[8];
	int rv = nqi_store_begin(s, false, &txn);
	if (rv)
		return rv;
	nqi_be64_put(k, key);
	MDB_val kv = {8, k}, vv;
	rv = nqi_store_err(mdb_get(txn, nqi_store_dbi(s, db), &kv, &vv));
	if (rv == NQ_OK)
		snprintf(out, len, "%.*s", (int)vv.mv_size, (char *)vv.mv_data);
	mdb_txn_abort(txn);
	return rv;
}

static void test_store_creates_fresh_directory(void **st)
{
	fixture *f = *st;
	char sub[128];
	struct stat sb;
	snprintf(sub, sizeof sub, "%s/sub", f->dir);
	f->opts.dir = sub;
	nqi_store *s = open_ok(f);
	assert_int_equal(stat(sub, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 077, 0); /* private to the service */
	assert_int_equal(nqi_store_commits(s), 0);
	nqi_store_close(s);
}

static void test_store_commits_survive_reopen(void **st)
{
	fixture *f = *st;
	char out[64];
	nqi_store *s = open_ok(f);
	assert_int_equal(put(s, 0, 1, "first job"), NQ_OK);
	assert_int_equal(put(s, 0, 2, "second job"), NQ_OK);
	assert_int_equal(put(s, 1, 1, "emails"), NQ_OK);
	assert_int_equal(nqi_store_commits(s), 3);
	nqi_store_close(s);

	s = open_ok(f);
	assert_int_equal(get(s, 0, 1, out, sizeof out), NQ_OK);
	assert_string_equal(out, "first job");
	assert_int_equal(get(s, 0, 2, out, sizeof out), NQ_OK);
	assert_string_equal(out, "second job");
	assert_int_equal(get(s, 1, 1, out, sizeof out), NQ_OK);
	assert_string_equal(out, "emails");
	/* databases are separate */
	assert_int_equal(get(s, 1, 2, out, sizeof out), NQ_ENOTFOUND);
	/* the counter is per open store, not stored */
	assert_int_equal(nqi_store_commits(s), 0);
	nqi_store_close(s);
}

static void test_store_aborted_writes_leave_nothing(void **st)
{
	fixture *f = *st;
	char out[64];
	MDB_txn *txn;
	uint8_t k[8];
	nqi_store *s = open_ok(f);
	assert_int_equal(nqi_store_begin(s, true, &txn), NQ_OK);
	nqi_be64_put(k, 9);
	MDB_val kv = {8, k}, vv = {4, "gone"};
	assert_int_equal(mdb_put(txn, nqi_store_dbi(s, 0), &kv, &vv, 0), 0);
	mdb_txn_abort(txn);
	assert_int_equal(get(s, 0, 9, out, sizeof out), NQ_ENOTFOUND);
	assert_int_equal(nqi_store_commits(s), 0);
	nqi_store_close(s);
}

/* Reads meta/schema_version with plain LMDB, as an operator tool would. */
static uint64_t stored_schema(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val key = {14, "schema_version"}, val;
	uint64_t v = 0;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_get(txn, meta, &key, &val), 0);
	assert_int_equal(val.mv_size, 8);
	v = nqi_be64_get(val.mv_data);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return v;
}

static void test_store_schema_version_written(void **st)
{
	fixture *f = *st;
	f->opts.schema_version = 3;
	nqi_store_close(open_ok(f));
	assert_int_equal(stored_schema(f->dir), 3);
}

static void test_store_newer_schema_refused(void **st)
{
	fixture *f = *st;
	nqi_store *s = (nqi_store *)0x1;
	f->opts.schema_version = 2;
	nqi_store_close(open_ok(f));
	f->opts.schema_version = 1;
	assert_int_equal(
	    nqi_store_open(&s, &f->opts, f->err, sizeof f->err), NQ_EPRECOND);
	assert_ptr_equal(s, (nqi_store *)0x1); /* untouched on failure */
	assert_non_null(strstr(f->err, "schema"));
	/* refusing did not rewrite the version */
	assert_int_equal(stored_schema(f->dir), 2);
}

static void test_store_same_schema_reopens(void **st)
{
	fixture *f = *st;
	f->opts.schema_version = 2;
	nqi_store_close(open_ok(f));
	nqi_store_close(open_ok(f));
	assert_int_equal(stored_schema(f->dir), 2);
}

static void test_store_unusable_directory_is_named(void **st)
{
	fixture *f = *st;
	char file[128];
	nqi_store *s = NULL;
	snprintf(file, sizeof file, "%s/sub", f->dir);
	FILE *fp = fopen(file, "w"); /* a file where the directory should be */
	assert_non_null(fp);
	fclose(fp);
	char below[160];
	snprintf(below, sizeof below, "%s/store", file);
	f->opts.dir = below;
	assert_int_equal(
	    nqi_store_open(&s, &f->opts, f->err, sizeof f->err), NQ_ESTORE);
	assert_null(s);
	assert_non_null(strstr(f->err, below));
	unlink(file);
}

static void test_store_fault_seam_fails_commits_after_n(void **st)
{
	fixture *f = *st;
	char out[64];
	setenv("NQ_FAULT_COMMIT_FAIL", "2", 1);
	nqi_store *s = open_ok(f);
	assert_int_equal(put(s, 0, 1, "one"), NQ_OK);
	assert_int_equal(put(s, 0, 2, "two"), NQ_OK);
	assert_int_equal(put(s, 0, 3, "three"), NQ_ESTORE);
	assert_int_equal(put(s, 0, 4, "four"), NQ_ESTORE);
	assert_int_equal(nqi_store_commits(s), 2);
	assert_int_equal(nqi_store_commit_failures(s), 2);
	/* a failed commit wrote nothing; reads keep working */
	assert_int_equal(get(s, 0, 2, out, sizeof out), NQ_OK);
	assert_string_equal(out, "two");
	assert_int_equal(get(s, 0, 3, out, sizeof out), NQ_ENOTFOUND);
	nqi_store_close(s);

	unsetenv("NQ_FAULT_COMMIT_FAIL");
	s = open_ok(f);
	assert_int_equal(get(s, 0, 3, out, sizeof out), NQ_ENOTFOUND);
	assert_int_equal(put(s, 0, 3, "three"), NQ_OK);
	assert_int_equal(nqi_store_commits(s), 1);
	nqi_store_close(s);
}

static void test_store_fault_file_fails_commits_while_present(void **st)
{
	fixture *f = *st;
	char flag[128], out[64];
	snprintf(flag, sizeof flag, "%s.full", f->dir);
	setenv("NQ_FAULT_COMMIT_FILE", flag, 1);
	nqi_store *s = open_ok(f);
	assert_int_equal(put(s, 0, 1, "one"), NQ_OK);
	FILE *fp = fopen(flag, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(put(s, 0, 2, "two"), NQ_ESTORE);
	assert_int_equal(get(s, 0, 2, out, sizeof out), NQ_ENOTFOUND);
	unlink(flag);
	/* the store works again by itself once the fault is gone */
	assert_int_equal(put(s, 0, 2, "two"), NQ_OK);
	assert_int_equal(get(s, 0, 2, out, sizeof out), NQ_OK);
	assert_string_equal(out, "two");
	nqi_store_close(s);
	unsetenv("NQ_FAULT_COMMIT_FILE");
}

static void test_store_trim_keeps_every_record_readable(void **st)
{
	fixture *f = *st;
	char out[64], val[64];
	f->opts.sync = false;
	nqi_store *s = open_ok(f);
	/* below the threshold nothing is released */
	assert_int_equal(nqi_store_trim(s, 1u << 30), 0);
	for (uint64_t k = 1; k <= 3000; k++) {
		snprintf(val, sizeof val, "value-%llu", (unsigned long long)k);
		assert_int_equal(put(s, 0, k, val), NQ_OK);
	}
	assert_true(nqi_store_trim(s, 0) > 0);
	for (uint64_t k = 1; k <= 3000; k += 7) {
		snprintf(val, sizeof val, "value-%llu", (unsigned long long)k);
		assert_int_equal(get(s, 0, k, out, sizeof out), NQ_OK);
		assert_string_equal(out, val);
	}
	nqi_store_close(s);
}

static void test_store_without_sync_still_commits(void **st)
{
	fixture *f = *st;
	char out[64];
	f->opts.sync = false;
	nqi_store *s = open_ok(f);
	assert_int_equal(put(s, 0, 7, "fast"), NQ_OK);
	nqi_store_close(s);
	f->opts.sync = true;
	s = open_ok(f);
	assert_int_equal(get(s, 0, 7, out, sizeof out), NQ_OK);
	assert_string_equal(out, "fast");
	nqi_store_close(s);
}

static void test_store_too_many_databases_refused(void **st)
{
	fixture *f = *st;
	static const nqi_store_db many[17] = {{"a", NULL}, {"b", NULL},
	    {"c", NULL}, {"d", NULL}, {"e", NULL}, {"f", NULL}, {"g", NULL},
	    {"h", NULL}, {"i", NULL}, {"j", NULL}, {"k", NULL}, {"l", NULL},
	    {"m", NULL}, {"n", NULL}, {"o", NULL}, {"p", NULL}, {NULL, NULL}};
	nqi_store *s = NULL;
	f->opts.dbs = many;
	assert_int_equal(
	    nqi_store_open(&s, &f->opts, f->err, sizeof f->err), NQ_EINVAL);
	assert_null(s);
}

static void test_store_be64_keys_sort_numerically(void **st)
{
	static const uint64_t v[] = {
	    0, 1, 255, 256, 0x0190f5a2b3c4d5e6ull, UINT64_MAX - 1, UINT64_MAX};
	for (size_t i = 0; i < COUNT(v); i++) {
		uint8_t a[8];
		nqi_be64_put(a, v[i]);
		assert_int_equal(nqi_be64_get(a), v[i]);
		if (i == 0)
			continue;
		uint8_t b[8];
		nqi_be64_put(b, v[i - 1]);
		assert_true(memcmp(b, a, 8) < 0);
	}
	uint8_t x[8];
	nqi_be64_put(x, 0x0102030405060708ull);
	static const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	assert_memory_equal(x, want, 8);
}

static void test_store_lmdb_errors_map(void **st)
{
	assert_int_equal(nqi_store_err(MDB_SUCCESS), NQ_OK);
	assert_int_equal(nqi_store_err(MDB_NOTFOUND), NQ_ENOTFOUND);
	assert_int_equal(nqi_store_err(MDB_KEYEXIST), NQ_EEXISTS);
	assert_int_equal(nqi_store_err(MDB_MAP_FULL), NQ_ESTORE);
	assert_int_equal(nqi_store_err(MDB_CORRUPTED), NQ_ESTORE);
}

static void test_store_full_map_fails_the_write(void **st)
{
	fixture *f = *st;
	static char big[4096];
	MDB_txn *txn;
	int rv = NQ_OK;
	memset(big, 'x', sizeof big);
	f->opts.map_size = 1u << 20;
	nqi_store *s = open_ok(f);
	assert_int_equal(nqi_store_begin(s, true, &txn), NQ_OK);
	for (uint64_t i = 0; i < 1024 && rv == NQ_OK; i++) {
		uint8_t k[8];
		nqi_be64_put(k, i);
		MDB_val kv = {8, k}, vv = {sizeof big, big};
		rv = nqi_store_err(
		    mdb_put(txn, nqi_store_dbi(s, 0), &kv, &vv, 0));
	}
	assert_int_equal(rv, NQ_ESTORE);
	mdb_txn_abort(txn);
	assert_int_equal(nqi_store_commits(s), 0);
	nqi_store_close(s);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_store_creates_fresh_directory),
	    T(test_store_commits_survive_reopen),
	    T(test_store_aborted_writes_leave_nothing),
	    T(test_store_schema_version_written),
	    T(test_store_newer_schema_refused),
	    T(test_store_same_schema_reopens),
	    T(test_store_unusable_directory_is_named),
	    T(test_store_fault_seam_fails_commits_after_n),
	    T(test_store_fault_file_fails_commits_while_present),
	    T(test_store_trim_keeps_every_record_readable),
	    T(test_store_without_sync_still_commits),
	    T(test_store_too_many_databases_refused),
	    T(test_store_be64_keys_sort_numerically),
	    T(test_store_lmdb_errors_map),
	    T(test_store_full_map_fails_the_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
