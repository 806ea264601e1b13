/*
 * The claim check's shared facts: what a blob's name looks like, how a
 * file:// reference names a path, and the SHA-256 of the bytes (nettle).
 * libnq writes blobs (client/src/blob.c), nq-worker reads them
 * (worker/payload.c), nq-broker deletes those of jobs that ended
 * (broker/jobs.c); all three go by these rules.
 *
 * A blob is named "nq-" and 32 random hex digits, not by its digest: each
 * blob then belongs to exactly one job, so deleting it with that job's
 * record never takes bytes another job with the same payload still needs.
 */
#ifndef NQI_BLOB_H
#define NQI_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>

#define NQI_SHA256_HEX 65 /* 64 lowercase hex digits and a NUL */
#define NQI_BLOB_PREFIX "nq-"
#define NQI_BLOB_NAME_LEN 35 /* "nq-" and 32 hex digits */

/* The SHA-256 of len bytes at p as lowercase hex. */
void nqi_sha256_hex(const void *p, size_t len, char hex[NQI_SHA256_HEX]);

/* An incremental SHA-256, for bytes that arrive in pieces. */
typedef struct sha256_ctx nqi_sha256;
void nqi_sha256_init(nqi_sha256 *h);
void nqi_sha256_update(nqi_sha256 *h, const void *p, size_t len);
void nqi_sha256_final(nqi_sha256 *h, char hex[NQI_SHA256_HEX]);

/* True when s is 64 lowercase hex digits. */
bool nqi_sha256_valid(const char *s);

/* True when name (one path component) is a blob name libnq makes. */
bool nqi_blob_name_valid(const char *name);

/* Writes a fresh blob name ("nq-" and 32 random hex digits). */
void nqi_blob_name(char name[NQI_BLOB_NAME_LEN + 1]);

/*
 * The path a file:// reference names ("file:///abs/path" or
 * "file://localhost/abs/path", %XX escapes decoded), malloc'd into *path.
 * NQ_EINVAL when ref is not such a reference (another scheme, a host
 * other than localhost, a relative path, a NUL escaped in), NQ_ENOMEM.
 */
int nqi_blob_file_path(const char *ref, char **path);

/* The file:// reference of an absolute path, every byte outside
 * [A-Za-z0-9/._~-] escaped as %XX; malloc'd, NULL when out of memory. */
char *nqi_blob_file_ref(const char *path);

/*
 * True when path is a blob directly inside dir: dir, a slash, then a
 * blob name (nqi_blob_name_valid). dir is compared as text, so pass it
 * as realpath() gives it; the name cannot climb out ("..") or into a
 * subdirectory.
 */
bool nqi_blob_in_dir(const char *dir, const char *path);

#endif
