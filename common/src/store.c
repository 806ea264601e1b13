#define _GNU_SOURCE /* fallocate */
#include "nqi/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "nqi/util.h"

#define STORE_MAX_DBS 16

struct nqi_store {
	MDB_env *env;
	MDB_dbi dbi[STORE_MAX_DBS];
	size_t ndbs;
	uint64_t commits;
	uint64_t commit_failures;
	uint64_t fail_after;   /* fault seam; 0: off */
	const char *fail_file; /* fault seam: commits fail while it exists */
	void *map;             /* LMDB's mapping of data.mdb, for trimming */
	size_t map_len;
};

/* LMDB does not tell where it mapped the file (unless asked for a fixed
 * address), so look it up in /proc/self/maps. Leaves map NULL if absent. */
static void find_map(nqi_store *s, const char *dir)
{
	char want[4096], line[4608], real[4096];
	snprintf(want, sizeof want, "%s/data.mdb", dir);
	if (!realpath(want, real))
		return;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char *path = strchr(line, '/');
		if (!path || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		path[strcspn(path, "\n")] = '\0';
		if (strcmp(path, real) == 0) {
			s->map = (void *)lo;
			s->map_len = hi - lo;
			break;
		}
	}
	fclose(f);
}

int nqi_store_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return NQ_OK;
	case MDB_NOTFOUND:
		return NQ_ENOTFOUND;
	case MDB_KEYEXIST:
		return NQ_EEXISTS;
	case ENOMEM:
		return NQ_ENOMEM;
	case EINVAL:
		return NQ_EINVAL;
	default:
		return NQ_ESTORE;
	}
}

static int check_schema(nqi_store *s, uint32_t want, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val key = {14, "schema_version"}, val;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
	if (rc == 0)
		rc = mdb_get(txn, meta, &key, &val);
	if (rc == MDB_NOTFOUND) {
		uint8_t buf[8];
		nqi_be64_put(buf, want);
		val = (MDB_val){8, buf};
		rc = mdb_put(txn, meta, &key, &val, 0);
	} else if (rc == 0 &&
	           (val.mv_size != 8 || nqi_be64_get(val.mv_data) > want)) {
		unsigned long long found =
		    val.mv_size == 8 ? nqi_be64_get(val.mv_data) : 0;
		snprintf(err, errlen,
		    "store schema %llu is newer than this binary "
		    "understands (it knows %u); the store is left as it was: "
		    "run the newer nq on it",
		    found, want);
		mdb_txn_abort(txn);
		return NQ_EPRECOND;
	}
	if (rc == 0)
		return nqi_store_err(mdb_txn_commit(txn));
	snprintf(err, errlen, "store meta: %s", mdb_strerror(rc));
	mdb_txn_abort(txn);
	return nqi_store_err(rc);
}

static int open_dbs(nqi_store *s, const nqi_store_opts *o)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	for (size_t i = 0; rc == 0 && o->dbs[i].name; i++)
		rc = mdb_dbi_open(txn, o->dbs[i].name, MDB_CREATE, &s->dbi[i]);
	if (rc == 0)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

static int open_failed(
    nqi_store *s, const char *dir, int rc, char *err, size_t errlen)
{
	snprintf(
	    err, errlen, "cannot open store in %s: %s", dir, mdb_strerror(rc));
	nqi_store_close(s);
	return nqi_store_err(rc);
}

int nqi_store_open(
    nqi_store **out, const nqi_store_opts *o, char *err, size_t errlen)
{
	size_t ndbs = 0;
	while (o->dbs[ndbs].name)
		if (++ndbs > STORE_MAX_DBS - 1)
			return NQ_EINVAL;
	if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data dir %s: %s", o->dir,
		    strerror(errno));
		return NQ_ESTORE;
	}
	nqi_store *s = calloc(1, sizeof *s);
	if (!s)
		return NQ_ENOMEM;
	const char *fail = getenv("NQ_FAULT_COMMIT_FAIL");
	if (fail)
		s->fail_after = strtoull(fail, NULL, 10);
	s->fail_file = getenv("NQ_FAULT_COMMIT_FILE");
	unsigned flags = MDB_NOTLS | (o->sync ? 0 : MDB_NOSYNC);
	int rc = mdb_env_create(&s->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, STORE_MAX_DBS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, o->map_size);
	if (rc == 0)
		rc = mdb_env_open(s->env, o->dir, flags, 0600);
	if (rc != 0)
		return open_failed(s, o->dir, rc, err, errlen);
	/* Before anything is created: a newer store is left as it was. */
	if ((rc = check_schema(s, o->schema_version, err, errlen)) != 0) {
		nqi_store_close(s);
		return rc;
	}
	if ((rc = open_dbs(s, o)) != 0)
		return open_failed(s, o->dir, rc, err, errlen);
	s->ndbs = ndbs;
	for (size_t i = 0; i < ndbs; i++)
		if (o->dbs[i].handle)
			*o->dbs[i].handle = s->dbi[i];
	find_map(s, o->dir);
	*out = s;
	return NQ_OK;
}

void nqi_store_close(nqi_store *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	free(s);
}

MDB_dbi nqi_store_dbi(nqi_store *s, size_t i)
{
	return s->dbi[i];
}
uint64_t nqi_store_commits(const nqi_store *s)
{
	return s->commits;
}
uint64_t nqi_store_commit_failures(const nqi_store *s)
{
	return s->commit_failures;
}

uint64_t nqi_store_trim(nqi_store *s, uint64_t min_bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
		return 0;
	uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (used < min_bytes || !s->map)
		return 0;
	if (used > s->map_len)
		used = s->map_len;
	/* The map is read-only (writes go through the file), so dropping
	 * it never loses data. */
	if (madvise(s->map, used, MADV_DONTNEED) != 0)
		return 0;
	return used;
}

int nqi_store_begin(nqi_store *s, bool write, MDB_txn **txn)
{
	return nqi_store_err(
	    mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, txn));
}

int nqi_store_commit(nqi_store *s, MDB_txn *txn)
{
	if ((s->fail_after && s->commits >= s->fail_after) ||
	    (s->fail_file && access(s->fail_file, F_OK) == 0)) {
		mdb_txn_abort(txn);
		s->commit_failures++;
		return NQ_ESTORE;
	}
	int rc = mdb_txn_commit(txn);
	if (rc != 0) {
		s->commit_failures++;
		return nqi_store_err(rc);
	}
	s->commits++;
	return NQ_OK;
}

/* Whether the file system has the blocks the store's next pages will be
 * written to, past the last page in use: they are allocated
 * (FALLOC_FL_KEEP_SIZE: the file's size stays) and given back at once, so
 * the probe holds no space that a full disk would then not show. Where
 * the file system cannot allocate, its free space stands in. */
static int reserve_growth(int fd, uint64_t end)
{
	struct statvfs vfs;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)end,
	        NQI_STORE_PROBE_BYTES) == 0) {
		(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		    (off_t)end, NQI_STORE_PROBE_BYTES);
		return NQ_OK;
	}
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return NQ_ESTORE;
	if (fstatvfs(fd, &vfs) != 0 ||
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < NQI_STORE_PROBE_BYTES)
		return NQ_ESTORE;
	return NQ_OK;
}

int nqi_store_probe(nqi_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	int fd;
	if (mdb_env_info(s->env, &info) != 0 ||
	    mdb_env_stat(s->env, &st) != 0 || mdb_env_get_fd(s->env, &fd) != 0)
		return NQ_ESTORE;
	uint64_t end = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (end + NQI_STORE_PROBE_BYTES > info.me_mapsize)
		return NQ_ESTORE; /* the map is full: --map-size */
	return reserve_growth(fd, end);
}
