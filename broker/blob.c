/*
 * Claim check, broker side: with --blob-dir, the blob of a job whose record
 * goes (past its result_ttl, or at once with result_ttl 0) is deleted with
 * it, when its payload_ref is a file:// blob directly inside that directory
 * (nqi_blob_in_dir): the broker never deletes anything else. Blobs that an
 * nq-dlq entry refers to stay: those of a job nq-dlq holds (in_dlq) and of
 * a replay of one (replay_of), since a later replay needs the bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "nqi/blob.h"
#include "nqi/log.h"

int broker_blob_open(broker *b)
{
	struct stat st;
	const char *dir = b->cfg.blob_dir;
	if (!dir || !*dir)
		return NQ_OK;
	b->blob_dir = realpath(dir, NULL);
	if (b->blob_dir && stat(b->blob_dir, &st) == 0 && S_ISDIR(st.st_mode))
		return NQ_OK;
	nqi_error("NQ-BLOB-DIR-BAD", NQI_S("dir", dir),
	    NQI_S("err", b->blob_dir ? "not a directory" : strerror(errno)));
	free(b->blob_dir);
	b->blob_dir = NULL;
	return NQ_EINVAL;
}

void broker_blob_forget(broker *b, const Nq__V1__Job *job)
{
	const Nq__V1__JobSpec *s = job->spec;
	char *path = NULL;
	if (!b->blob_dir || !s || !s->payload_ref[0] || job->in_dlq ||
	    s->replay_of[0])
		return;
	if (nqi_blob_file_path(s->payload_ref, &path) != NQ_OK)
		return; /* not ours: http://, or another host's file */
	bool ours = nqi_blob_in_dir(b->blob_dir, path);
	/* On the core thread: a local unlink is quick, and only jobs that
	 * carry a blob of this directory pay it. */
	if (ours && unlink(path) != 0 && errno != ENOENT)
		nqi_warn("NQ-BLOB-DELETE-FAILED", NQI_S("path", path),
		    NQI_S("err", strerror(errno)));
	else if (ours)
		nqi_debug("NQ-BLOB-DELETED", NQI_S("path", path));
	free(path);
}
