/*
 * Claim check, worker side: the bytes of a job's payload_ref, fetched from
 * the shared blob directory (file://) or a web server (http://, https://,
 * libcurl) and checked against the size and SHA-256 the job declares
 * before the command sees any of them. A ref of another scheme is left to
 * the command (NQ_PAYLOAD_REF).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nqi/blob.h"
#include "worker.h"

#define CONNECT_TIMEOUT_MS 10000
/* A transfer slower than this many bytes a second for this long is given
 * up as stalled (a retryable failure). */
#define LOW_SPEED_BYTES 1024
#define LOW_SPEED_SECS 30
#define REF_SHOWN 200 /* characters of the ref in a message */

/* What is being fetched, and what went wrong. */
typedef struct fetch {
	const char *ref;
	uint64_t declared; /* bytes, when sized */
	bool sized;        /* a size or a digest was declared */
	uint64_t bound;    /* the most bytes taken */
	uint8_t *data;
	size_t len, cap;
	bool over; /* more bytes came than bound */
	char *why;
	size_t why_len;
	bool permanent;
} fetch;

static int fail(fetch *f, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "payload_ref REF: " and the reason; returns NQ_EINVAL (permanent: the
 * blob is missing or not what the job declares) or NQ_EUNAVAIL. */
static int fail(fetch *f, bool permanent, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(
	    f->why, f->why_len, "payload_ref %.*s: ", REF_SHOWN, f->ref);
	if (n > 0 && (size_t)n < f->why_len) {
		va_start(ap, fmt);
		vsnprintf(f->why + n, f->why_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	f->permanent = permanent;
	return permanent ? NQ_EINVAL : NQ_EUNAVAIL;
}

static bool has_scheme(const char *ref, const char *scheme)
{
	return strncasecmp(ref, scheme, strlen(scheme)) == 0;
}

/* Appends bytes, refusing more than the bound. */
static bool take(fetch *f, const void *p, size_t n)
{
	if (n > f->bound - f->len) {
		f->over = true;
		return false;
	}
	if (f->len + n > f->cap) {
		size_t cap = f->cap ? f->cap : 1 << 16;
		while (cap < f->len + n)
			cap *= 2;
		uint8_t *d = realloc(f->data, cap);
		if (!d)
			return false;
		f->data = d;
		f->cap = cap;
	}
	memcpy(f->data + f->len, p, n);
	f->len += n;
	return true;
}

static int read_fd(fetch *f, int fd)
{
	uint8_t buf[1 << 16];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(
			    f, false, "cannot read: %s", strerror(errno));
		if (n == 0)
			return NQ_OK;
		if (!take(f, buf, (size_t)n))
			return f->over ? NQ_OK
			               : fail(f, false, "out of memory");
	}
}

/* Opens the blob without blocking (a FIFO would wait for a writer) and
 * takes regular files only. */
static int open_blob(fetch *f, const char *path, int *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fail(f, errno == ENOENT || errno == ENOTDIR,
		    errno == ENOENT ? "no such blob (%s)" : "cannot open: %s",
		    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(f, true, "not a regular file");
	}
	*out = fd;
	return NQ_OK;
}

static int fetch_file(fetch *f)
{
	char *path = NULL;
	int fd = -1, rv = nqi_blob_file_path(f->ref, &path);
	if (rv != NQ_OK)
		return fail(f, true, "not a local file:// reference");
	if ((rv = open_blob(f, path, &fd)) == NQ_OK) {
		rv = read_fd(f, fd);
		close(fd);
	}
	free(path);
	return rv;
}

static size_t on_body_cb(char *p, size_t size, size_t n, void *arg)
{
	fetch *f = arg;
	return take(f, p, size * n) ? size * n : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void curl_setup(CURL *h, fetch *f, uint64_t timeout_ms)
{
	curl_easy_setopt(h, CURLOPT_URL, f->ref);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(
	    h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_SECS);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->bound);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
}

static int fetch_http(fetch *f, uint64_t timeout_ms)
{
	long status = 0;
	pthread_once(&curl_once, curl_init);
	CURL *h = curl_init_rc == CURLE_OK ? curl_easy_init() : NULL;
	if (!h)
		return fail(f, false, "cannot start libcurl");
	curl_setup(h, f, timeout_ms);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	bool over = f->over || rc == CURLE_FILESIZE_EXCEEDED;
	if (over) {
		f->over = true;
		return NQ_OK; /* judged with the size */
	}
	if (rc != CURLE_OK)
		return fail(f, false, "%s", curl_easy_strerror(rc));
	if (status == 404 || status == 410)
		return fail(f, true, "no such blob (HTTP %ld)", status);
	if (status >= 400)
		return fail(f, false, "HTTP %ld", status);
	return NQ_OK;
}

/* The bytes against what the job declares. */
static int check(fetch *f, const char *sha256)
{
	char got[NQI_SHA256_HEX];
	if (f->over)
		return fail(f, true,
		    "blob is larger than the %" PRIu64 " bytes %s", f->bound,
		    f->sized ? "the job declares" : "this worker takes");
	if (f->sized && f->len != f->declared)
		return fail(f, true,
		    "blob is %zu bytes, the job declares %" PRIu64, f->len,
		    f->declared);
	if (!*sha256)
		return NQ_OK;
	nqi_sha256_hex(f->data, f->len, got);
	if (strcmp(got, sha256) != 0)
		return fail(f, true,
		    "blob's SHA-256 is %s, the job declares %s (corrupt or "
		    "changed)",
		    got, sha256);
	return NQ_OK;
}

/* The size a job declares and the most this fetch takes. */
static int bounds(fetch *f, const nq_job *job, const char *sha256)
{
	if (*sha256 && !nqi_sha256_valid(sha256))
		return fail(f, true,
		    "payload_sha256 '%.70s' is not 64 lowercase hex digits",
		    sha256);
	f->declared = nq_job_payload_size(job);
	if (f->declared > WORKER_BLOB_MAX)
		return fail(f, true,
		    "the job declares %" PRIu64
		    " bytes, more than a worker takes (%u)",
		    f->declared, WORKER_BLOB_MAX);
	/* With a digest, 0 bytes is a declared size too. */
	f->sized = f->declared || *sha256;
	f->bound = f->sized ? f->declared : WORKER_BLOB_MAX;
	return NQ_OK;
}

int worker_payload_fetch(const nq_job *job, uint64_t timeout_ms,
    worker_payload *out, char *why, size_t why_len)
{
	fetch f = {
	    .ref = nq_job_payload_ref(job), .why = why, .why_len = why_len};
	const char *sha256 = nq_job_payload_sha256(job);
	bool file = has_scheme(f.ref, "file:");
	memset(out, 0, sizeof *out);
	if (!file && !has_scheme(f.ref, "http://") &&
	    !has_scheme(f.ref, "https://"))
		return NQ_OK; /* inline, or the command's to fetch */
	int rv = bounds(&f, job, sha256);
	if (rv == NQ_OK)
		rv = file ? fetch_file(&f) : fetch_http(&f, timeout_ms);
	if (rv == NQ_OK)
		rv = check(&f, sha256);
	if (rv != NQ_OK) {
		free(f.data);
		out->permanent = f.permanent;
		return rv;
	}
	out->fetched = true;
	out->data = f.data;
	out->len = f.len;
	return NQ_OK;
}
