/*
 * Claim check, producer side: large payloads are written to the blob
 * directory shared with the workers, and the job carries their file://
 * reference, size and SHA-256 instead of the bytes (nqi/blob.h has the
 * rules of names and references).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "nqi/blob.h"

NQ_API int nq_client_set_offload(
    nq_client *c, const char *blob_dir, uint64_t above_bytes)
{
	struct stat st;
	char *real = NULL;
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	if (blob_dir && !(real = realpath(blob_dir, NULL)))
		return nqc_fail(c->last_error,
		    errno == ENOMEM ? NQ_ENOMEM : NQ_EINVAL, "blob-dir %s: %s",
		    blob_dir, strerror(errno));
	if (real && (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))) {
		free(real);
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "blob-dir %s is not a directory", blob_dir);
	}
	free(c->blob_dir);
	c->blob_dir = real;
	c->offload_above = above_bytes;
	/* The shards' clients write the blobs of their jobs. */
	for (size_t k = 0; c->map && k < c->map->n; k++)
		nq_client_set_offload(c->shard[k], blob_dir, above_bytes);
	return NQ_OK;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync of a directory, so that a rename in it survives a power loss. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return e;
}

/* Writes the bytes to tmp and makes them durable; 0 or an errno. */
static int write_tmp(const char *tmp, const void *p, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return errno;
	int e = write_all(fd, p, len);
	if (e == 0 && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	return e;
}

/*
 * Writes a new blob in dir, whole or not at all: a temporary name (which
 * no reader looks for, since it is not a blob name), fsync, rename to the
 * blob's name, fsync of the directory. *path is the blob's path.
 */
static int blob_write(
    const char *dir, const void *p, size_t len, char **path, char *err)
{
	char name[NQI_BLOB_NAME_LEN + 1], *tmp = NULL, *final = NULL;
	int e = ENOMEM;
	nqi_blob_name(name);
	if (asprintf(&tmp, "%s/.%s.tmp", dir, name) < 0)
		tmp = NULL;
	else if (asprintf(&final, "%s/%s", dir, name) < 0)
		final = NULL;
	if (tmp && final && (e = write_tmp(tmp, p, len)) == 0 &&
	    (e = rename(tmp, final) == 0 ? 0 : errno) == 0)
		e = sync_dir(dir);
	if (e != 0 && tmp)
		unlink(tmp);
	if (e != 0 && final)
		unlink(final);
	free(tmp);
	if (e != 0) {
		free(final);
		return nqc_fail(err, e == ENOMEM ? NQ_ENOMEM : NQ_ESTORE,
		    "cannot write the payload to blob dir %s: %s", dir,
		    strerror(e));
	}
	*path = final;
	return NQ_OK;
}

/* The reference of the blob at path, with room after its NUL for the
 * SHA-256 of the payload, so that one allocation holds both. */
static char *ref_with_digest(const char *path, const void *p, size_t len)
{
	char *ref = nqi_blob_file_ref(path);
	size_t n = ref ? strlen(ref) + 1 : 0;
	char *both = ref ? realloc(ref, n + NQI_SHA256_HEX) : NULL;
	if (!both) {
		free(ref);
		return NULL;
	}
	/* Taken of the bytes in memory, which the file holds since the
	 * fsync; a blob changed later fails the worker's check. */
	nqi_sha256_hex(p, len, both + n);
	return both;
}

int nqc_offload(nq_client *c, const nq_job_spec *s, Nq__V1__JobSpec *pb,
    char **ref, char *err)
{
	char *path = NULL;
	*ref = NULL;
	if (s->payload_len == 0 || s->payload_len <= c->offload_above ||
	    (s->payload_ref && *s->payload_ref))
		return NQ_OK;
	int rv =
	    blob_write(c->blob_dir, s->payload, s->payload_len, &path, err);
	if (rv != NQ_OK)
		return rv;
	*ref = ref_with_digest(path, s->payload, s->payload_len);
	if (!*ref)
		unlink(path);
	free(path);
	if (!*ref)
		return nqc_fail(err, NQ_ENOMEM, "out of memory");
	pb->payload.len = 0;
	pb->payload.data = NULL;
	pb->payload_ref = *ref;
	pb->payload_size = s->payload_len;
	pb->payload_sha256 = *ref + strlen(*ref) + 1;
	return NQ_OK;
}

void nqc_offload_undo(char *ref)
{
	char *path;
	if (ref && nqi_blob_file_path(ref, &path) == NQ_OK) {
		unlink(path);
		free(path);
	}
	free(ref);
}
