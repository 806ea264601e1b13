/*
 * Claim check, broker side: with --blob-dir, the blob of a job whose record
 * goes (past its result_ttl, or at once with result_ttl 0) is deleted with
 * it, when its payload_ref is a file:// blob directly inside that directory
 * (nqi_blob_in_dir): the broker never deletes anything else. Blobs that an
 * nq-dlq entry refers to stay: those of a job nq-dlq holds (in_dlq) and of
 * a replay of one (replay_of), since a later replay needs the bytes.
 *
 * The core thread only queues the paths: a thread of its own unlinks them,
 * since the directory is often a network volume, where one unlink can take
 * milliseconds and one sweep expires thousands of jobs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "nqi/blob.h"
#include "nqi/log.h"
#include "nqi/util.h"

typedef struct broker_blobs broker_blobs;

static void blob_unlink(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		nqi_warn("NQ-BLOB-DELETE-FAILED", NQI_S("path", path),
		    NQI_S("err", strerror(errno)));
	else
		nqi_debug("NQ-BLOB-DELETED", NQI_S("path", path));
}

/* Takes the queued paths and unlinks them, until stopped with none
 * left. */
static void *reaper_main(void *arg)
{
	broker_blobs *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->n == 0 && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->n == 0)
			break;
		char **paths = r->paths;
		size_t n = r->n;
		r->paths = NULL;
		r->n = r->cap = 0;
		pthread_mutex_unlock(&r->mu);
		for (size_t i = 0; i < n; i++) {
			blob_unlink(paths[i]);
			free(paths[i]);
		}
		free(paths);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static int reaper_start(broker_blobs *r)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		return NQ_ENOMEM;
	}
	r->started = true;
	return NQ_OK;
}

void broker_blob_close(broker *b)
{
	broker_blobs *r = &b->blobs;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = true;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		r->started = false;
	}
	free(r->dir);
	r->dir = NULL;
}

/* Hands path (owned from now on) to the reaper; unlinks it here when
 * memory for the queue ran out. */
static void reaper_push(broker_blobs *r, char *path)
{
	pthread_mutex_lock(&r->mu);
	bool queued = NQI_GROW(r->paths, r->cap, r->n + 1, 64) == 0;
	if (queued) {
		r->paths[r->n++] = path;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	if (!queued) {
		blob_unlink(path);
		free(path);
	}
}

int broker_blob_open(broker *b)
{
	struct stat st;
	const char *dir = b->cfg.blob_dir;
	if (!dir || !*dir)
		return NQ_OK;
	char *real = realpath(dir, NULL);
	if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
		nqi_error("NQ-BLOB-DIR-BAD", NQI_S("dir", dir),
		    NQI_S("err", real ? "not a directory" : strerror(errno)));
		free(real);
		return NQ_EINVAL;
	}
	b->blobs.dir = real;
	return reaper_start(&b->blobs);
}

void broker_blob_forget(broker *b, const Nq__V1__Job *job)
{
	const Nq__V1__JobSpec *s = job->spec;
	char *path = NULL;
	if (!b->blobs.started || !s || !s->payload_ref[0] || job->in_dlq ||
	    s->replay_of[0])
		return;
	if (nqi_blob_file_path(s->payload_ref, &path) != NQ_OK)
		return; /* not ours: http://, or another host's file */
	if (nqi_blob_in_dir(b->blobs.dir, path))
		reaper_push(&b->blobs, path);
	else
		free(path);
}
