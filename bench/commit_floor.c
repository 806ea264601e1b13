/*
 * nq-commit-floor: the fastest a durable confirm can be on this disk.
 *
 * Times, one at a time with a pause between, (1) an LMDB write transaction
 * of one 100-byte record committed with a sync, as the broker's
 * --sync=always commit does for a group of one, and (2) a 100-byte append
 * followed by fdatasync, which is all a single-log store such as
 * beanstalkd -f 0 does per put. An LMDB commit syncs twice in order (the
 * data pages, then the meta page that points at them), so its floor is
 * about twice the second. No end-to-end enqueue-to-handler latency with a
 * sync before the confirm can be lower than the commit it waits for.
 *
 *   nq-commit-floor [--dir DIR] [--commits N]
 *
 * DIR (default: a fresh directory under $TMPDIR or /tmp) must be on the
 * filesystem to judge; the files made there are removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 100
#define PAUSE_US 1000 /* between commits: latency, not throughput */
#define MAX_COMMITS 100000

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *lat, int n)
{
	qsort(lat, (size_t)n, sizeof *lat, by_value);
	printf("%s p50_us=%.0f p99_us=%.0f\n", what, lat[n / 2],
	    lat[(int)((long)n * 99 / 100)]);
}

static int fail(const char *step, int rc)
{
	fprintf(stderr, "nq-commit-floor: %s: %s\n", step, mdb_strerror(rc));
	return 1;
}

/* One record per transaction, keys in order (big-endian), synced. */
static int time_lmdb(const char *dir, double *lat, int n)
{
	char v[PAYLOAD];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;
	memset(v, 'x', sizeof v);
	if ((rc = mdb_env_create(&env)) != 0)
		return fail("mdb_env_create", rc);
	mdb_env_set_mapsize(env, (size_t)1 << 30);
	if ((rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		return fail(dir, rc);
	for (int i = 0; i < n; i++) {
		uint64_t k = __builtin_bswap64((uint64_t)i + 1);
		MDB_val key = {sizeof k, &k}, val = {sizeof v, v};
		double t0 = now_us();
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
		    (rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND)) != 0 ||
		    (rc = mdb_txn_commit(txn)) != 0)
			return fail("commit", rc);
		lat[i] = now_us() - t0;
		usleep(PAUSE_US);
	}
	mdb_env_close(env);
	return 0;
}

/* One append and one fdatasync per record. */
static int time_log(const char *path, double *lat, int n)
{
	char v[PAYLOAD];
	int fd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0600);
	memset(v, 'x', sizeof v);
	if (fd < 0) {
		fprintf(
		    stderr, "nq-commit-floor: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		if (write(fd, v, sizeof v) != (ssize_t)sizeof v ||
		    fdatasync(fd) != 0) {
			fprintf(stderr, "nq-commit-floor: %s: %s\n", path,
			    strerror(errno));
			close(fd);
			return 1;
		}
		lat[i] = now_us() - t0;
		usleep(PAUSE_US);
	}
	close(fd);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: nq-commit-floor [--dir DIR] [--commits N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[4096] = "", path[4200];
	int n = 2000, rc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			snprintf(dir, sizeof dir, "%s/nq-commit-floor-XXXXXX",
			    argv[++i]);
		else if (strcmp(argv[i], "--commits") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else
			return usage();
	}
	if (n < 10 || n > MAX_COMMITS) {
		fprintf(stderr, "nq-commit-floor: --commits must be 10 to %d\n",
		    MAX_COMMITS);
		return 2;
	}
	if (!dir[0])
		snprintf(dir, sizeof dir, "%s/nq-commit-floor-XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(
		    stderr, "nq-commit-floor: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	double *lat = calloc((size_t)n, sizeof *lat);
	snprintf(path, sizeof path, "%s/log", dir);
	rc = !lat || time_lmdb(dir, lat, n);
	if (rc == 0)
		report("lmdb_commit", lat, n);
	if (rc == 0 && (rc = time_log(path, lat, n)) == 0)
		report("append_fdatasync", lat, n);
	unlink(path);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
	free(lat);
	return rc;
}
