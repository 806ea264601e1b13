/*
 * nq_worker: fetches jobs into slots, runs their handlers, keeps their
 * leases alive and streams the completions back, and drains on stop.
 *
 * Threads, sharing one mutex (w->mtx):
 *  - fetch: asks for exactly as many jobs as there are free slots,
 *    long-polling for poll_ms; on errors it backs off 100 ms doubling to
 *    2 s, so a missing broker never makes it spin. While fetched jobs
 *    still wait to start, it waits for a quarter of the slots to be free,
 *    so that a busy worker asks in large batches. A slot is free once its
 *    job's completion has gone out on the results socket, not when its
 *    handler returns: until then the broker still counts the lease. After
 *    a broker restart the results connection may come back a second after
 *    the work connection (NNG redials each socket at its own random
 *    moment), and a new job for every completion still queued would hold
 *    leases far past the slots.
 *  - runners (up to concurrency of them, started as jobs need them): each
 *    runs one job at a time, taking the next from the run queue of fetched
 *    jobs. A runner that finds more waiting wakes an idle runner (or
 *    starts one), and only when no other is waking already: short
 *    handlers then run back to back on the runners already awake, instead
 *    of costing a thread wake each, while long ones still start at once on
 *    runners of their own.
 *  - sender: sends everything queued as one CompletionBatch, so completions
 *    batch under load and go out at once when idle.
 *  - extender: every heartbeat_ms (a third of lease_ms unless set), an
 *    Extend for every running lease (in several requests past
 *    NQI_LEASES_MAX, the broker's limit per request). Its reply says which
 *    jobs must stop (canceled, or past their finish_within):
 *    nq_job_canceled() then turns true. Progress a handler reports rides
 *    on the next Extend, which then goes out early: at most
 *    WORKER_PROGRESS_MS after the last one sent for progress.
 * The thread in nq_worker_run waits for nq_worker_stop and drives the drain.
 * Fetch and extend use separate nng contexts on the one work socket, so
 * neither waits for the other, and the broker sees one connection whose
 * drop releases every lease of this worker.
 *
 * With a shard map (opts.conn.brokers), the worker is a set of parts, one
 * nq_worker per shard that owns one of its queues, each with its own
 * connections (so a job is completed to the shard that leased it), the
 * queues of that shard and an equal share of the slots (at least one);
 * the calls below go to every part.
 *
 * Lifetime: a handler stuck in user code past the drain keeps its
 * runner; nq_worker_close detaches such threads, and the worker's memory
 * lives on (reference count) until the last of them returns. Such a thread
 * sends nothing more: its job was released during the drain.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "nqi/json.h"
#include "nqi/limits.h"
#include "nqi/util.h"

#define WORKER_LEASE_MS 30000
#define WORKER_GRACE_MS 10000
/* Short enough that a stop, which waits for the parked fetch, is quick;
 * an idle worker costs the broker one request every 2 s. */
#define WORKER_POLL_MS 2000
#define WORKER_LEASE_MIN_MS 100
/* At stop, how much longer than it should take a reply is waited for. */
#define WORKER_REPLY_SLACK_MS 1000
#define WORKER_MAX_SLOTS 1024
#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 2000
/* The broker's effective default when a job reports no timeout. */
#define WORKER_JOB_TIMEOUT_MS 300000
/* An empty fetch reply faster than this means the broker did not park the
 * request; wait a little instead of asking again at once. */
#define WORKER_EMPTY_FETCH_MS 50
/* One CompletionBatch carries at most this many completions, and stops
 * growing past this many bytes of results and errors: the broker's
 * receive limit on the results socket is derived from both. */
#define WORKER_BATCH_MAX NQI_BATCH_COMPLETIONS_MAX
/* Progress sends an Extend early at most this often; notes are cut. */
#define WORKER_PROGRESS_MS 1000
#define WORKER_NOTE_MAX 200
#define WORKER_BATCH_BYTES NQI_BATCH_RESULT_BYTES

struct nq_result {
	void *data;
	size_t len;
	char *error;
	bool non_retryable;
	bool schema_rejected;
	uint64_t retry_after_ms;
	bool nomem; /* the result could not be kept */
};

struct worker_handler {
	char *type; /* "*": every type without a handler of its own */
	nq_handler_cb cb;
	void *arg;
};

/* A completion waiting for the sender; c points into the node. */
struct worker_done {
	struct worker_done *next;
	nq_completion c;
	char id[NQ_ID_MAX];
};

/* A fetched job, from the fetch until its completion is queued. */
struct worker_slot {
	nq_worker *w;
	nq_job *job;         /* NULL when free */
	uint64_t started_ms; /* monotonic, to stop extending past timeout_ms */
	bool lease_lost;     /* the broker said the lease is gone */
	bool released;       /* sent back as RELEASED: drop its completion */
	atomic_bool stop;    /* the broker said stop: nq_job_canceled() */
	bool progress_new;   /* reported, not yet sent */
	uint32_t pct;
	char note[WORKER_NOTE_MAX + 1];
};

/* A thread that runs jobs. */
struct worker_runner {
	nq_worker *w;
	pthread_t thread;
	bool in_handler; /* in user code: detached, not joined, at close */
};

/* The extender's scratch, sized for every slot. */
struct worker_ext {
	nqc_lease *leases;
	char (*ids)[NQ_ID_MAX];
	char (*notes)[WORKER_NOTE_MAX + 1];
	int *results;
	bool *stop;
	int *slot;
};

struct nq_worker {
	nq_client *client;
	char *id;
	char **queues;
	size_t nqueues;
	int nslots;
	uint64_t lease_ms, grace_ms, poll_ms, heartbeat_ms;
	uint64_t progress_sent_ms; /* the last Extend sent early for progress */
	bool progress_due;         /* a slot has progress to send */

	pthread_mutex_t mtx;
	pthread_cond_t fetch_cv; /* enough slots became free, or stop */
	pthread_cond_t send_cv;  /* a completion was queued, or flush */
	pthread_cond_t ext_cv;   /* the extender must exit */
	pthread_cond_t state_cv; /* stop, a handler finished, run returned */
	pthread_cond_t run_cv;   /* a job waits to run, or the runners exit */

	struct worker_handler *handlers;
	size_t nhandlers;
	struct worker_slot *slots;
	atomic_int busy; /* slots holding a job */
	int *free_slots; /* stack of the indexes of free slots */
	int nfree;
	int *runq; /* ring of the slots whose jobs wait to start */
	int runq_head, runq_n;
	struct worker_runner *runners;
	int nrunners;     /* started so far: on demand, up to nslots */
	int idle_runners; /* waiting on run_cv */
	int waking; /* runners signalled or started that have not looked yet */
	bool fetch_waiting, send_waiting;
	struct worker_done *done_head, *done_tail;
	int unsent; /* completions queued, not yet sent: leases still held */
	nq_completion *batch; /* the sender's scratch */
	struct worker_ext ext;

	atomic_bool stopping;
	bool ran, running;
	bool fetch_started, send_started, ext_started;
	bool fetch_exited, ext_exited; /* their threads are about to return */
	pthread_t fetch_thr, send_thr, ext_thr;
	bool fetch_ctx_open, ext_ctx_open;
	nng_ctx fetch_ctx, ext_ctx;
	bool ext_exit, send_exit, slots_exit, closed;
	uint64_t flush_deadline_ms;
	int fatal; /* a fetch error that retrying cannot fix */
	int refs;  /* the owner, plus one per runner */

	nq_worker **part; /* with a shard map: one worker per shard */
	size_t nparts;
};

/* ---- small helpers ---- */

static uint64_t next_backoff(uint64_t ms)
{
	if (ms == 0)
		return WORKER_BACKOFF_MIN_MS;
	return ms * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : ms * 2;
}

static char *strdupf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *strdupf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return strdup(buf);
}

/* ---- results, as handlers set them ---- */

NQ_API void nq_result_set(nq_result *res, const void *data, size_t len)
{
	void *copy = NULL;
	if (!res || (!data && len))
		return;
	if (len && !(copy = malloc(len))) {
		res->nomem = true;
		return;
	}
	if (len)
		memcpy(copy, data, len);
	free(res->data);
	res->data = copy;
	res->len = len;
}

/* Error messages travel as protobuf strings, and the broker refuses a
 * completion batch holding one that is not UTF-8: a byte that is not part
 * of a character becomes '?'. */
static void scrub_utf8(char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0, c; i < n; i += c)
		if ((c = nqi_utf8_char_len((uint8_t *)s + i, n - i)) == 0) {
			s[i] = '?';
			c = 1;
		}
}

/* The message is cut at NQI_ERROR_TEXT_MAX bytes, as many as the broker
 * keeps, so that a batch stays within the results socket's limit. */
NQ_API void nq_result_error(
    nq_result *res, const char *message, bool non_retryable)
{
	if (!res)
		return;
	free(res->error);
	res->error = message ? strndup(message, NQI_ERROR_TEXT_MAX) : NULL;
	if (message && !res->error)
		res->nomem = true;
	if (res->error)
		scrub_utf8(res->error);
	res->non_retryable = non_retryable;
	res->schema_rejected = false; /* the last call says what failed */
}

NQ_API void nq_result_schema_rejected(nq_result *res, const char *message)
{
	if (!res)
		return;
	nq_result_error(res,
	    message ? message
	            : "the handler does not take this payload schema "
	              "version",
	    true);
	res->schema_rejected = true;
}

NQ_API void nq_result_retry_after(nq_result *res, uint64_t ms)
{
	if (res)
		res->retry_after_ms = ms;
}

/* ---- the completion queue ---- */

static void done_free(struct worker_done *d)
{
	if (!d)
		return;
	free((void *)d->c.result);
	free((void *)d->c.error);
	free(d);
}

static void done_free_list(struct worker_done *d)
{
	while (d) {
		struct worker_done *next = d->next;
		done_free(d);
		d = next;
	}
}

/* A completion for job; NULL when out of memory. */
static struct worker_done *done_new(const nq_job *job, nq_outcome outcome)
{
	struct worker_done *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	const char *id = nq_job_id(job); /* calloc ended it with a NUL */
	memcpy(d->id, id, strnlen(id, sizeof d->id - 1));
	d->c.id = d->id;
	d->c.lease_token = nq_job_lease_token(job);
	d->c.outcome = outcome;
	return d;
}

static void done_push_locked(nq_worker *w, struct worker_done *d)
{
	w->unsent++;
	d->next = NULL;
	if (w->done_tail)
		w->done_tail->next = d;
	else
		w->done_head = d;
	w->done_tail = d;
	if (w->send_waiting)
		pthread_cond_signal(&w->send_cv);
}

/* Gives a job back to the broker at once. Out of memory, the lease simply
 * expires and the job runs again later. */
static void release_locked(nq_worker *w, const nq_job *job)
{
	struct worker_done *d = done_new(job, NQ_OUTCOME_RELEASED);
	if (!d)
		return;
	d->c.finished_us = nqi_now_us();
	done_push_locked(w, d);
}

/* ---- opening and closing ---- */

static int opts_check(const nq_worker_opts *o)
{
	if (o->concurrency < 0 || o->concurrency > WORKER_MAX_SLOTS)
		return NQ_EINVAL;
	if (o->queues && (o->nqueues == 0 || o->nqueues > 256))
		return NQ_EINVAL;
	for (size_t i = 0; o->queues && i < o->nqueues; i++)
		if (!nqi_name_valid(o->queues[i]))
			return NQ_EINVAL;
	if (o->lease_ms && o->lease_ms < WORKER_LEASE_MIN_MS)
		return NQ_EINVAL;
	if (o->heartbeat_ms &&
	    o->heartbeat_ms >= (o->lease_ms ? o->lease_ms : WORKER_LEASE_MS))
		return NQ_EINVAL;
	if (o->worker_id && !nqi_name_valid(o->worker_id))
		return NQ_EINVAL;
	return NQ_OK;
}

/* "<hostname>-<pid>-<4 random hex>", the hostname cut to name characters. */
static char *default_id(void)
{
	char host[256] = "";
	uint8_t r[2];
	if (gethostname(host, sizeof host) != 0 || !host[0])
		snprintf(host, sizeof host, "worker");
	host[100] = '\0';
	for (char *p = host; *p; p++)
		if (!nqi_name_valid((char[]){*p, '\0'}))
			*p = '-';
	nqi_random(r, sizeof r);
	return strdupf("%s-%ld-%02x%02x", host, (long)getpid(), r[0], r[1]);
}

static int copy_queues(nq_worker *w, const nq_worker_opts *o)
{
	static const char *const fallback[] = {"default"};
	const char *const *q = o->queues ? o->queues : fallback;
	size_t n = o->queues ? o->nqueues : 1;
	if (!(w->queues = calloc(n, sizeof *w->queues)))
		return NQ_ENOMEM;
	w->nqueues = n;
	for (size_t i = 0; i < n; i++)
		if (!(w->queues[i] = strdup(q[i])))
			return NQ_ENOMEM;
	return NQ_OK;
}

static int alloc_slots(nq_worker *w)
{
	size_t n = (size_t)w->nslots;
	w->slots = calloc(n, sizeof *w->slots);
	w->free_slots = calloc(n, sizeof *w->free_slots);
	w->runq = calloc(n, sizeof *w->runq);
	w->runners = calloc(n, sizeof *w->runners);
	w->batch = calloc(WORKER_BATCH_MAX, sizeof *w->batch);
	w->ext.leases = calloc(n, sizeof *w->ext.leases);
	w->ext.ids = calloc(n, sizeof *w->ext.ids);
	w->ext.notes = calloc(n, sizeof *w->ext.notes);
	w->ext.results = calloc(n, sizeof *w->ext.results);
	w->ext.stop = calloc(n, sizeof *w->ext.stop);
	w->ext.slot = calloc(n, sizeof *w->ext.slot);
	if (!w->slots || !w->free_slots || !w->runq || !w->runners ||
	    !w->batch || !w->ext.leases || !w->ext.ids || !w->ext.notes ||
	    !w->ext.results || !w->ext.stop || !w->ext.slot)
		return NQ_ENOMEM;
	/* Lowest index on top: the first jobs take the first slots. */
	for (size_t i = 0; i < n; i++) {
		w->free_slots[i] = (int)(n - 1 - i);
		w->runners[i].w = w;
		w->slots[i].w = w;
	}
	w->nfree = (int)n;
	return NQ_OK;
}

/* Frees everything; no thread of the worker runs any more. */
static void worker_free(nq_worker *w)
{
	nq_client_close(w->client);
	for (size_t i = 0; w->slots && i < (size_t)w->nslots; i++)
		nq_job_free(w->slots[i].job);
	for (size_t i = 0; i < w->nhandlers; i++)
		free(w->handlers[i].type);
	for (size_t i = 0; w->queues && i < w->nqueues; i++)
		free(w->queues[i]);
	done_free_list(w->done_head);
	free(w->handlers);
	free(w->queues);
	free(w->slots);
	free(w->free_slots);
	free(w->runq);
	free(w->runners);
	free(w->batch);
	free(w->ext.leases);
	free(w->ext.ids);
	free(w->ext.notes);
	free(w->ext.results);
	free(w->ext.stop);
	free(w->ext.slot);
	free(w->id);
	pthread_cond_destroy(&w->fetch_cv);
	pthread_cond_destroy(&w->send_cv);
	pthread_cond_destroy(&w->ext_cv);
	pthread_cond_destroy(&w->state_cv);
	pthread_cond_destroy(&w->run_cv);
	pthread_mutex_destroy(&w->mtx);
	free(w);
}

/* Drops one reference; the last one frees the worker. */
static void worker_unref(nq_worker *w)
{
	pthread_mutex_lock(&w->mtx);
	bool last = --w->refs == 0;
	pthread_mutex_unlock(&w->mtx);
	if (last)
		worker_free(w);
}

static int worker_setup(nq_worker *w, const nq_worker_opts *o)
{
	int rv;
	w->nslots = o->concurrency ? o->concurrency : 1;
	w->lease_ms = o->lease_ms ? o->lease_ms : WORKER_LEASE_MS;
	w->grace_ms = o->grace_ms ? o->grace_ms : WORKER_GRACE_MS;
	w->poll_ms = o->poll_ms ? o->poll_ms : WORKER_POLL_MS;
	w->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : w->lease_ms / 3;
	if (w->poll_ms > NQC_WAIT_CAP_MS)
		w->poll_ms = NQC_WAIT_CAP_MS;
	w->id = o->worker_id ? strdup(o->worker_id) : default_id();
	if (!w->id)
		return NQ_ENOMEM;
	if ((rv = copy_queues(w, o)) != NQ_OK || (rv = alloc_slots(w)) != NQ_OK)
		return rv;
	return nq_client_open(&w->client, &o->conn);
}

/* ---- more than one broker ---- */

static void parts_close(nq_worker *w);

/* The part of shard k: the queues it owns, its share of the slots. */
static int part_open(nq_worker *w, const nqs_map *m, size_t k,
    const nq_worker_opts *o, const char **queues, int slots)
{
	nq_worker_opts po = *o;
	size_t n = 0;
	for (size_t i = 0; i < w->nqueues; i++)
		if (nqs_owner(m, w->queues[i]) == k)
			queues[n++] = w->queues[i];
	if (n == 0)
		return NQ_OK;
	po.conn.brokers = NULL;
	po.conn.api_url = m->shards[k].url[NQS_API];
	po.conn.work_url = m->shards[k].url[NQS_WORK];
	po.conn.results_url = m->shards[k].url[NQS_RESULTS];
	po.queues = queues;
	po.nqueues = n;
	po.concurrency = slots;
	po.worker_id = w->id;
	return nq_worker_open(&w->part[w->nparts++], &po);
}

/* How many shards own one of w's queues. */
static size_t parts_needed(const nq_worker *w, const nqs_map *m)
{
	size_t n = 0;
	for (size_t k = 0; k < m->n; k++)
		for (size_t i = 0; i < w->nqueues; i++)
			if (nqs_owner(m, w->queues[i]) == k) {
				n++;
				break;
			}
	return n;
}

static int parts_setup(nq_worker *w, const nq_worker_opts *o, nqs_map *m)
{
	const char **queues = calloc(w->nqueues, sizeof *queues);
	size_t need = parts_needed(w, m), made = 0;
	int rv = queues ? NQ_OK : NQ_ENOMEM;
	if (rv == NQ_OK && !(w->part = calloc(need, sizeof *w->part)))
		rv = NQ_ENOMEM;
	for (size_t k = 0; rv == NQ_OK && k < m->n; k++) {
		size_t before = w->nparts;
		/* An equal share of the slots, the first ones one more. */
		int share = w->nslots / (int)need +
		            ((int)made < w->nslots % (int)need ? 1 : 0);
		rv = part_open(w, m, k, o, queues, share ? share : 1);
		made += w->nparts - before;
	}
	free(queues);
	return rv;
}

static int parts_open(nq_worker **out, const nq_worker_opts *o)
{
	nqs_map *m = NULL;
	nq_worker *w = calloc(1, sizeof *w);
	int rv = w ? nqs_parse(o->conn.brokers, &m, NULL, 0) : NQ_ENOMEM;
	if (rv == NQ_OK) {
		w->nslots = o->concurrency ? o->concurrency : 1;
		w->id = o->worker_id ? strdup(o->worker_id) : default_id();
		rv = w->id ? copy_queues(w, o) : NQ_ENOMEM;
	}
	if (rv == NQ_OK)
		rv = parts_setup(w, o, m);
	nqs_free(m);
	if (rv != NQ_OK && w)
		parts_close(w);
	if (rv != NQ_OK)
		return rv;
	*out = w;
	return NQ_OK;
}

static void *part_main(void *arg)
{
	nq_worker *p = arg;
	int rv = nq_worker_run(p);
	return (void *)(intptr_t)rv;
}

/* Runs every part on a thread of its own; the first to return (a fatal
 * error, or the stop) stops the others. */
static int parts_run(nq_worker *w)
{
	pthread_t *t = calloc(w->nparts, sizeof *t);
	size_t started = 0;
	int rv = t ? NQ_OK : NQ_ENOMEM;
	for (; rv == NQ_OK && started < w->nparts; started++)
		if (pthread_create(
		        &t[started], NULL, part_main, w->part[started]) != 0)
			rv = NQ_ENOMEM;
	for (size_t i = 0; i < started; i++) {
		void *res;
		pthread_join(t[i], &res);
		if (rv == NQ_OK)
			rv = (int)(intptr_t)res;
		for (size_t k = 0; k < w->nparts; k++)
			nq_worker_stop(w->part[k]);
	}
	if (rv != NQ_OK)
		for (size_t k = 0; k < w->nparts; k++)
			nq_worker_stop(w->part[k]);
	free(t);
	return rv;
}

NQ_API int nq_worker_open(nq_worker **out, const nq_worker_opts *opts)
{
	static const nq_worker_opts defaults;
	nq_worker *w;
	int rv;
	if (!out)
		return NQ_EINVAL;
	if (!opts)
		opts = &defaults;
	if ((rv = opts_check(opts)) != NQ_OK)
		return rv;
	if (opts->conn.brokers)
		return parts_open(out, opts);
	if (!(w = calloc(1, sizeof *w)))
		return NQ_ENOMEM;
	pthread_mutex_init(&w->mtx, NULL);
	nqi_cond_init_mono(&w->fetch_cv);
	nqi_cond_init_mono(&w->send_cv);
	nqi_cond_init_mono(&w->ext_cv);
	nqi_cond_init_mono(&w->state_cv);
	nqi_cond_init_mono(&w->run_cv);
	w->refs = 1;
	if ((rv = worker_setup(w, opts)) != NQ_OK) {
		worker_free(w);
		return rv;
	}
	*out = w;
	return NQ_OK;
}

NQ_API int nq_worker_handle(
    nq_worker *w, const char *type, nq_handler_cb cb, void *arg)
{
	struct worker_handler *h;
	int rv = NQ_OK;
	if (!w || !cb || !type ||
	    (strcmp(type, "*") != 0 && !nqi_name_valid(type)))
		return NQ_EINVAL;
	for (size_t k = 0; k < w->nparts; k++)
		if ((rv = nq_worker_handle(w->part[k], type, cb, arg)) != NQ_OK)
			return rv;
	if (w->nparts)
		return NQ_OK;
	pthread_mutex_lock(&w->mtx);
	for (size_t i = 0; i < w->nhandlers; i++) {
		if (strcmp(w->handlers[i].type, type) == 0) {
			w->handlers[i].cb = cb;
			w->handlers[i].arg = arg;
			goto out;
		}
	}
	h = realloc(w->handlers, (w->nhandlers + 1) * sizeof *h);
	if (!h) {
		rv = NQ_ENOMEM;
		goto out;
	}
	w->handlers = h;
	h = &w->handlers[w->nhandlers];
	if (!(h->type = strdup(type))) {
		rv = NQ_ENOMEM;
		goto out;
	}
	h->cb = cb;
	h->arg = arg;
	w->nhandlers++;
out:
	pthread_mutex_unlock(&w->mtx);
	return rv;
}

NQ_API bool nq_worker_draining(const nq_worker *w)
{
	if (w && w->nparts)
		return nq_worker_draining(w->part[0]);
	return w && atomic_load(&w->stopping);
}

NQ_API const char *nq_worker_id(const nq_worker *w)
{
	return w ? w->id : "";
}

NQ_API void nq_worker_slots(const nq_worker *w, int *busy, int *total)
{
	int b = 0, t = 0;
	for (size_t k = 0; w && k < w->nparts; k++) {
		int pb, pt;
		nq_worker_slots(w->part[k], &pb, &pt);
		b += pb;
		t += pt;
	}
	if (busy)
		*busy = w ? b + atomic_load(&w->busy) : 0;
	if (total)
		*total = w ? (w->nparts ? t : w->nslots) : 0;
}

/* ---- slots ---- */

/* The handler for a type: its own, else "*", else none (cb NULL). */
static struct worker_handler handler_for_locked(nq_worker *w, const char *t)
{
	struct worker_handler h = {NULL, NULL, NULL};
	for (size_t i = 0; i < w->nhandlers; i++) {
		if (strcmp(w->handlers[i].type, t) == 0)
			return w->handlers[i];
		if (strcmp(w->handlers[i].type, "*") == 0)
			h = w->handlers[i];
	}
	return h;
}

/* Turns what the handler said into a completion. Takes the result's
 * memory. NULL when out of memory (the lease then expires). */
static struct worker_done *done_from_result(
    nq_job *job, nq_outcome out, struct nq_result *res)
{
	const char *type = nq_job_type(job);
	struct worker_done *d;
	char *why = NULL;
	if (out != NQ_OUTCOME_SUCCEEDED && out != NQ_OUTCOME_FAILED &&
	    out != NQ_OUTCOME_RELEASED)
		why = strdupf("handler for type %s returned outcome %d, not "
		              "SUCCEEDED, FAILED or RELEASED",
		    type, (int)out);
	else if (res->nomem)
		why = strdupf(
		    "out of memory keeping the outcome of a %s job", type);
	else if (out == NQ_OUTCOME_FAILED && !res->error)
		why = strdupf(
		    "handler for type %s failed without a message", type);
	if (why) {
		out = NQ_OUTCOME_FAILED;
		free(res->error);
		res->error = why;
	}
	if (!(d = done_new(job, out)))
		return NULL;
	d->c.result = res->data;
	d->c.result_len = res->len;
	res->data = NULL;
	if (out == NQ_OUTCOME_FAILED) {
		d->c.error = res->error;
		d->c.non_retryable = res->non_retryable;
		d->c.schema_rejected = res->schema_rejected;
		d->c.retry_after_ms = res->retry_after_ms;
		res->error = NULL;
	}
	return d;
}

/* Runs the job's handler on this thread; returns its completion. */
static struct worker_done *slot_execute(
    nq_worker *w, nq_job *job, struct worker_handler h)
{
	struct nq_result res = {0};
	uint64_t started_us = nqi_now_us();
	nq_outcome out = NQ_OUTCOME_FAILED;
	if (h.cb)
		out = h.cb(job, &res, h.arg);
	else
		res.error = strdupf("no handler for type %s on worker %s",
		    nq_job_type(job), w->id);
	struct worker_done *d = done_from_result(job, out, &res);
	free(res.data);
	free(res.error);
	if (d) {
		d->c.started_us = started_us;
		d->c.finished_us = nqi_now_us();
	}
	return d;
}

/* How many jobs a fetch may ask for: the slots that neither run a job
 * nor wait for their completion to go out. */
static int fetch_want_locked(const nq_worker *w)
{
	return w->nslots - atomic_load(&w->busy) - w->unsent;
}

/* Whether the fetch thread should ask for jobs now: some slot is free,
 * and either nothing fetched waits to start or a quarter of the slots are
 * free. */
static bool fetch_due_locked(const nq_worker *w)
{
	int want = fetch_want_locked(w);
	return want > 0 && (w->runq_n == 0 || want >= w->nslots / 4);
}

/* Runs the slot's job and hands in its completion, unless the job was
 * released or its lease lost meanwhile (the completion would be stale). */
static void slot_run_locked(
    nq_worker *w, struct worker_runner *r, struct worker_slot *s)
{
	nq_job *job = s->job;
	struct worker_done *d = NULL;
	if (!s->released && !w->slots_exit) {
		struct worker_handler h =
		    handler_for_locked(w, nq_job_type(job));
		r->in_handler = true;
		pthread_mutex_unlock(&w->mtx);
		d = slot_execute(w, job, h);
		pthread_mutex_lock(&w->mtx);
		r->in_handler = false;
	}
	if (d && !s->released && !s->lease_lost && !w->closed) {
		done_push_locked(w, d);
		d = NULL;
	}
	s->job = NULL;
	w->free_slots[w->nfree++] = (int)(s - w->slots);
	atomic_fetch_sub(&w->busy, 1);
	if (w->fetch_waiting && fetch_due_locked(w))
		pthread_cond_signal(&w->fetch_cv);
	/* Only a drain waits for handlers to finish. */
	if (atomic_load(&w->stopping))
		pthread_cond_broadcast(&w->state_cv);
	pthread_mutex_unlock(&w->mtx);
	done_free(d);
	nq_job_free(job);
	pthread_mutex_lock(&w->mtx);
}

static void *runner_main(void *arg);

/* Starts one more runner, which counts as waking until it looks at the
 * run queue. False when all are started or the thread cannot be made. */
static bool runner_add_locked(nq_worker *w)
{
	if (w->nrunners >= w->nslots || w->slots_exit)
		return false;
	struct worker_runner *r = &w->runners[w->nrunners];
	w->refs++;
	if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
		w->refs--;
		return false;
	}
	w->nrunners++;
	w->waking++;
	return true;
}

/* Wakes one idle runner, or starts one when none is idle, unless one is
 * on its way already. Runners are started as jobs need them, so a worker
 * of many slots whose handlers are short runs on a few threads. */
static void wake_runner_locked(nq_worker *w)
{
	if (w->waking > 0)
		return;
	if (w->idle_runners > 0) {
		w->waking++;
		pthread_cond_signal(&w->run_cv);
		return;
	}
	runner_add_locked(w);
}

/* The next slot whose job waits to start; -1 when the runners exit. */
static int runq_take_locked(nq_worker *w)
{
	while (w->runq_n == 0 && !w->slots_exit) {
		w->idle_runners++;
		pthread_cond_wait(&w->run_cv, &w->mtx);
		w->idle_runners--;
		if (w->waking > 0)
			w->waking--;
	}
	if (w->runq_n == 0)
		return -1;
	int si = w->runq[w->runq_head];
	w->runq_head = (w->runq_head + 1) % w->nslots;
	w->runq_n--;
	if (w->runq_n > 0)
		wake_runner_locked(w);
	else if (w->fetch_waiting && fetch_due_locked(w))
		pthread_cond_signal(&w->fetch_cv); /* free slots, none waits */
	return si;
}

static void *runner_main(void *arg)
{
	struct worker_runner *r = arg;
	nq_worker *w = r->w;
	pthread_mutex_lock(&w->mtx);
	if (w->waking > 0)
		w->waking--; /* started: it looks now */
	for (;;) {
		int si = runq_take_locked(w);
		if (si < 0)
			break;
		slot_run_locked(w, r, &w->slots[si]);
		if (w->closed)
			break;
	}
	pthread_mutex_unlock(&w->mtx);
	worker_unref(w);
	return NULL;
}

/* ---- fetch ---- */

/* Puts fetched jobs into free slots and on the run queue; once stopping,
 * gives them back. */
static void place_locked(nq_worker *w, nq_job **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&w->stopping) || w->nfree == 0) {
			release_locked(w, jobs[i]);
			nq_job_free(jobs[i]);
			continue;
		}
		int si = w->free_slots[--w->nfree];
		struct worker_slot *s = &w->slots[si];
		s->job = jobs[i];
		s->job->slot = s;
		s->lease_lost = false;
		s->released = false;
		s->progress_new = false;
		atomic_store(&s->stop, false);
		s->started_ms = nqi_mono_ms();
		atomic_fetch_add(&w->busy, 1);
		w->runq[(w->runq_head + w->runq_n++) % w->nslots] = si;
	}
	if (w->runq_n > 0)
		wake_runner_locked(w);
}

static void stop_locked(nq_worker *w)
{
	atomic_store(&w->stopping, true);
	pthread_cond_broadcast(&w->fetch_cv);
	pthread_cond_broadcast(&w->state_cv);
}

/* Errors that the same request would meet again: stop the worker. */
static bool fetch_fatal(int rv)
{
	return rv == NQ_EINVAL || rv == NQ_EAUTH || rv == NQ_EPERM ||
	       rv == NQ_EPRECOND;
}

/* Sleeps up to ms, or until stop. */
static void fetch_pause_locked(nq_worker *w, uint64_t ms)
{
	uint64_t until = nqi_mono_ms() + ms;
	while (!atomic_load(&w->stopping) && nqi_mono_ms() < until)
		nqi_cond_wait_mono(&w->fetch_cv, &w->mtx, until);
}

/*
 * How long the fetch thread waits for a fetch's reply: past the long-poll,
 * a lease's length at least, rather than the request timeout alone, so
 * that a broker that stalls (a slow disk, SIGSTOP) and then leases jobs
 * into the fetch finds the worker still reading; a fetch given up on
 * while the connection lives would leave them leased to nobody. Not
 * longer: a connection can die without a word (a partition across a
 * broker restart, while the worker sends nothing), and an idle worker
 * would wait on it; by then a silent broker has let the leases of the
 * running jobs lapse anyway. A lost connection, or stop, ends the wait
 * sooner.
 */
static uint64_t fetch_reply_ms(const nq_worker *w)
{
	uint64_t t = w->client->timeout_ms;
	return w->poll_ms + (w->lease_ms > t ? w->lease_ms : t);
}

/* One fetch for the free slots; returns how long to pause before the
 * next, updating the error backoff. */
static uint64_t fetch_once_locked(nq_worker *w, int want, uint64_t *backoff)
{
	char err[NQC_ERR_MAX];
	nq_job **jobs = NULL;
	size_t n = 0;
	pthread_mutex_unlock(&w->mtx);
	uint64_t sent = nqi_mono_ms();
	int rv = nqc_fetch(w->client, &w->fetch_ctx, fetch_reply_ms(w), w->id,
	    (const char *const *)w->queues, w->nqueues, (uint32_t)want,
	    w->poll_ms, w->lease_ms, &jobs, &n, err);
	uint64_t took = nqi_mono_ms() - sent;
	pthread_mutex_lock(&w->mtx);
	if (rv != NQ_OK) {
		if (fetch_fatal(rv) && !atomic_load(&w->stopping)) {
			w->fatal = rv;
			stop_locked(w);
		}
		return *backoff = next_backoff(*backoff);
	}
	*backoff = 0;
	place_locked(w, jobs, n);
	free(jobs);
	return n == 0 && took < WORKER_EMPTY_FETCH_MS ? WORKER_BACKOFF_MIN_MS
	                                              : 0;
}

static void *fetch_main(void *arg)
{
	nq_worker *w = arg;
	uint64_t backoff = 0;
	pthread_mutex_lock(&w->mtx);
	while (!atomic_load(&w->stopping)) {
		if (!fetch_due_locked(w)) {
			w->fetch_waiting = true;
			pthread_cond_wait(&w->fetch_cv, &w->mtx);
			w->fetch_waiting = false;
			continue;
		}
		int want = fetch_want_locked(w);
		uint64_t pause_ms = fetch_once_locked(w, want, &backoff);
		if (pause_ms)
			fetch_pause_locked(w, pause_ms);
	}
	w->fetch_exited = true;
	pthread_cond_broadcast(&w->state_cv);
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

/* ---- lease extension ---- */

/* Gathers the leases worth extending: held, not released, and not past
 * the job's timeout (past it the lease must lapse, so that the attempt
 * counts as failed). */
static size_t ext_collect_locked(nq_worker *w)
{
	uint64_t now = nqi_mono_ms();
	size_t n = 0;
	for (int i = 0; i < w->nslots; i++) {
		struct worker_slot *s = &w->slots[i];
		if (!s->job || s->released || s->lease_lost)
			continue;
		uint64_t limit = nq_job_timeout_ms(s->job);
		if (now - s->started_ms >
		    (limit ? limit : WORKER_JOB_TIMEOUT_MS))
			continue;
		snprintf(w->ext.ids[n], NQ_ID_MAX, "%s", nq_job_id(s->job));
		w->ext.leases[n] = (nqc_lease){.id = w->ext.ids[n],
		    .token = nq_job_lease_token(s->job),
		    .has_progress = s->progress_new,
		    .pct = s->pct,
		    .note = w->ext.notes[n]};
		memcpy(w->ext.notes[n], s->note, sizeof s->note);
		s->progress_new = false;
		w->ext.slot[n] = i;
		n++;
	}
	w->progress_due = false;
	return n;
}

/* Marks the leases the broker no longer holds for us, if their slot still
 * runs the same job. */
static void ext_apply_locked(nq_worker *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = w->ext.results[i];
		struct worker_slot *s = &w->slots[w->ext.slot[i]];
		bool lost = r == NQ_EPRECOND || r == NQ_ENOTFOUND;
		if (!s->job ||
		    nq_job_lease_token(s->job) != w->ext.leases[i].token ||
		    strcmp(nq_job_id(s->job), w->ext.ids[i]) != 0)
			continue;
		if (lost)
			s->lease_lost = true;
		else if (w->ext.stop[i])
			atomic_store(&s->stop, true);
	}
}

/* When the extender goes next: at the heartbeat, or sooner for progress
 * (WORKER_PROGRESS_MS after the last early one). */
static uint64_t ext_due_locked(const nq_worker *w, uint64_t beat)
{
	uint64_t soon = w->progress_sent_ms + WORKER_PROGRESS_MS;
	return w->progress_due && soon < beat ? soon : beat;
}

NQ_API bool nq_job_canceled(const nq_job *job)
{
	return job && job->slot && atomic_load(&job->slot->stop);
}

NQ_API int nq_job_progress(const nq_job *job, unsigned pct, const char *note)
{
	struct worker_slot *s = job ? job->slot : NULL;
	if (!s)
		return NQ_EINVAL;
	nq_worker *w = s->w;
	pthread_mutex_lock(&w->mtx);
	s->pct = pct > 100 ? 100 : pct;
	snprintf(s->note, sizeof s->note, "%s", note ? note : "");
	scrub_utf8(s->note); /* a cut character, or bytes that are none */
	s->progress_new = true;
	w->progress_due = true;
	pthread_cond_signal(&w->ext_cv);
	pthread_mutex_unlock(&w->mtx);
	return NQ_OK;
}

static void *ext_main(void *arg)
{
	nq_worker *w = arg;
	uint64_t period = w->heartbeat_ms;
	uint64_t next = nqi_mono_ms() + period;
	char err[NQC_ERR_MAX];
	pthread_mutex_lock(&w->mtx);
	while (!w->ext_exit) {
		uint64_t now = nqi_mono_ms(), due = ext_due_locked(w, next);
		if (now < due) {
			nqi_cond_wait_mono(&w->ext_cv, &w->mtx, due);
			continue;
		}
		if (due < next)
			w->progress_sent_ms = now;
		else
			next = now + period;
		size_t n = ext_collect_locked(w);
		if (n == 0)
			continue;
		pthread_mutex_unlock(&w->mtx);
		int rv =
		    nqc_extend(w->client, &w->ext_ctx, w->id, w->ext.leases, n,
		        w->lease_ms, w->ext.results, w->ext.stop, err);
		pthread_mutex_lock(&w->mtx);
		if (rv == NQ_OK)
			ext_apply_locked(w, n);
	}
	w->ext_exited = true;
	pthread_cond_broadcast(&w->state_cv);
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

/* ---- completion sender ---- */

/* Unlinks the oldest completions that fit one batch (at least one). */
static struct worker_done *batch_take_locked(nq_worker *w, size_t *n)
{
	struct worker_done *head = w->done_head, *last = NULL, *d = head;
	size_t k = 0, bytes = 0;
	while (d && k < WORKER_BATCH_MAX &&
	       (k == 0 || bytes + d->c.result_len < WORKER_BATCH_BYTES)) {
		bytes +=
		    d->c.result_len + (d->c.error ? strlen(d->c.error) : 0);
		w->batch[k++] = d->c;
		last = d;
		d = d->next;
	}
	w->done_head = d;
	if (!d)
		w->done_tail = NULL;
	last->next = NULL;
	*n = k;
	return head;
}

/* Puts a batch that could not be sent back in front of the queue. */
static void batch_return_locked(nq_worker *w, struct worker_done *head)
{
	struct worker_done *last = head;
	while (last->next)
		last = last->next;
	last->next = w->done_head;
	if (!w->done_head)
		w->done_tail = last;
	w->done_head = head;
}

/* Sends one batch; returns whether it was taken. A batch the library
 * refuses as invalid is dropped, since resending cannot fix it. */
static bool send_batch_locked(nq_worker *w)
{
	char err[NQC_ERR_MAX];
	size_t n;
	struct worker_done *head = batch_take_locked(w, &n);
	pthread_mutex_unlock(&w->mtx);
	int rv = nqc_complete(w->client, w->id, w->batch, n, err);
	pthread_mutex_lock(&w->mtx);
	if (rv == NQ_OK || rv == NQ_EINVAL) {
		w->unsent -= (int)n;
		if (w->fetch_waiting && fetch_due_locked(w))
			pthread_cond_signal(&w->fetch_cv);
		pthread_mutex_unlock(&w->mtx);
		done_free_list(head);
		pthread_mutex_lock(&w->mtx);
		return true;
	}
	batch_return_locked(w, head);
	return false;
}

static void *send_main(void *arg)
{
	nq_worker *w = arg;
	uint64_t backoff = 0, retry_at = 0;
	pthread_mutex_lock(&w->mtx);
	for (;;) {
		uint64_t now = nqi_mono_ms();
		if (!w->done_head) {
			if (w->send_exit)
				break;
			w->send_waiting = true;
			pthread_cond_wait(&w->send_cv, &w->mtx);
			w->send_waiting = false;
			continue;
		}
		/* Past the flush deadline the broker is unreachable; the
		 * leases of what is left expire and the jobs run again. */
		if (w->send_exit && backoff && now >= w->flush_deadline_ms)
			break;
		if (now < retry_at) {
			nqi_cond_wait_mono(&w->send_cv, &w->mtx, retry_at);
			continue;
		}
		if (send_batch_locked(w)) {
			backoff = 0;
		} else {
			backoff = next_backoff(backoff);
			retry_at = nqi_mono_ms() + backoff;
		}
	}
	struct worker_done *left = w->done_head;
	w->done_head = w->done_tail = NULL;
	w->unsent = 0;
	pthread_mutex_unlock(&w->mtx);
	done_free_list(left);
	return NULL;
}

/* ---- run, stop, close ---- */

static int start_thread(
    pthread_t *t, bool *started, void *(*fn)(void *), void *arg)
{
	if (pthread_create(t, NULL, fn, arg) != 0)
		return NQ_ENOMEM;
	*started = true;
	return NQ_OK;
}

/* The first runner; the others start as jobs need them. */
static int start_runners(nq_worker *w)
{
	pthread_mutex_lock(&w->mtx);
	bool ok = runner_add_locked(w);
	pthread_mutex_unlock(&w->mtx);
	return ok ? NQ_OK : NQ_ENOMEM;
}

static int worker_start(nq_worker *w)
{
	char err[NQC_ERR_MAX];
	int rv;
	if ((rv = nqc_ctx_open(w->client, NQC_WORK, &w->fetch_ctx, err)) != 0)
		return rv;
	w->fetch_ctx_open = true;
	if ((rv = nqc_ctx_open(w->client, NQC_WORK, &w->ext_ctx, err)) != 0)
		return rv;
	w->ext_ctx_open = true;
	if ((rv = start_thread(&w->send_thr, &w->send_started, send_main, w)) !=
	        0 ||
	    (rv = start_runners(w)) != 0 ||
	    (rv = start_thread(&w->ext_thr, &w->ext_started, ext_main, w)) != 0)
		return rv;
	return start_thread(&w->fetch_thr, &w->fetch_started, fetch_main, w);
}

/* Waits up to grace_ms for the running handlers. */
static void drain_wait_locked(nq_worker *w)
{
	uint64_t until = nqi_mono_ms() + w->grace_ms;
	while (atomic_load(&w->busy) > 0 && nqi_mono_ms() < until)
		nqi_cond_wait_mono(&w->state_cv, &w->mtx, until);
}

/* Gives back every job still held, so it runs elsewhere at once; their
 * handlers' later completions are dropped. */
static void release_running_locked(nq_worker *w)
{
	for (int i = 0; i < w->nslots; i++) {
		struct worker_slot *s = &w->slots[i];
		if (!s->job || s->released)
			continue;
		if (!s->lease_lost)
			release_locked(w, s->job);
		s->released = true;
	}
}

/*
 * Waits for a thread that may be inside a request on ctx to return, then
 * closes ctx. A request that reached the broker is not abandoned but
 * answered: a parked fetch within the long-poll (at once when the broker
 * shuts down), and jobs leased in that reply go straight back. Waiting
 * for the reply keeps it from arriving while the socket closes, which can
 * hang nng 1.5's close (an incoming message cut by a local close never
 * completes, and the pipe's teardown waits for it forever). While the work
 * socket has no connection, though, the request is still unsent and no
 * reply can come, so the context is closed at once to end the wait (a
 * connection lost after the send fails the request by itself). A broker
 * that has not answered within wait_ms is not waited for any longer.
 */
static void request_thread_finish(nq_worker *w, pthread_t thr, bool *started,
    const bool *exited, nng_ctx ctx, bool *ctx_open, uint64_t wait_ms)
{
	uint64_t until = nqi_mono_ms() + wait_ms;
	pthread_mutex_lock(&w->mtx);
	while (*started && !*exited) {
		if (*ctx_open && (!nqc_connected(w->client, NQC_WORK) ||
		                     nqi_mono_ms() >= until)) {
			*ctx_open = false;
			pthread_mutex_unlock(&w->mtx);
			nng_ctx_close(ctx);
			pthread_mutex_lock(&w->mtx);
			continue;
		}
		nqi_cond_wait_mono(&w->state_cv, &w->mtx, nqi_mono_ms() + 20);
	}
	pthread_mutex_unlock(&w->mtx);
	if (*started)
		pthread_join(thr, NULL);
	*started = false;
	if (*ctx_open)
		nng_ctx_close(ctx);
	*ctx_open = false;
}

static void fetch_finish(nq_worker *w)
{
	request_thread_finish(w, w->fetch_thr, &w->fetch_started,
	    &w->fetch_exited, w->fetch_ctx, &w->fetch_ctx_open,
	    w->poll_ms + WORKER_REPLY_SLACK_MS);
}

/* The extender was told to exit (ext_exit) with the release. */
static void ext_finish(nq_worker *w)
{
	request_thread_finish(w, w->ext_thr, &w->ext_started, &w->ext_exited,
	    w->ext_ctx, &w->ext_ctx_open, WORKER_REPLY_SLACK_MS);
}

/* Flushes the queued completions, trying for up to one request timeout
 * when the broker does not take them. */
static void send_finish(nq_worker *w)
{
	pthread_mutex_lock(&w->mtx);
	w->send_exit = true;
	w->flush_deadline_ms = nqi_mono_ms() + w->client->timeout_ms;
	pthread_cond_broadcast(&w->send_cv);
	pthread_mutex_unlock(&w->mtx);
	if (w->send_started)
		pthread_join(w->send_thr, NULL);
	w->send_started = false;
}

NQ_API int nq_worker_run(nq_worker *w)
{
	int rv;
	if (!w)
		return NQ_EINVAL;
	if (w->nparts)
		return parts_run(w);
	pthread_mutex_lock(&w->mtx);
	if (w->ran) {
		pthread_mutex_unlock(&w->mtx);
		return NQ_EPRECOND;
	}
	w->ran = w->running = true;
	pthread_mutex_unlock(&w->mtx);
	rv = worker_start(w);
	pthread_mutex_lock(&w->mtx);
	if (rv != NQ_OK)
		stop_locked(w);
	while (!atomic_load(&w->stopping))
		pthread_cond_wait(&w->state_cv, &w->mtx);
	drain_wait_locked(w);
	/* What still runs goes back at once, so no lease needs extending. */
	release_running_locked(w);
	w->ext_exit = true;
	pthread_cond_broadcast(&w->ext_cv);
	pthread_mutex_unlock(&w->mtx);
	fetch_finish(w);
	ext_finish(w);
	send_finish(w);
	pthread_mutex_lock(&w->mtx);
	w->running = false;
	if (rv == NQ_OK)
		rv = w->fatal;
	pthread_cond_broadcast(&w->state_cv);
	pthread_mutex_unlock(&w->mtx);
	return rv;
}

NQ_API void nq_worker_stop(nq_worker *w)
{
	if (!w)
		return;
	for (size_t k = 0; k < w->nparts; k++)
		nq_worker_stop(w->part[k]);
	if (w->part)
		return;
	pthread_mutex_lock(&w->mtx);
	stop_locked(w);
	pthread_mutex_unlock(&w->mtx);
}

/*
 * Ends the runners: idle ones are joined; one whose handler is still in
 * user code (it outlived the drain) is detached and frees its share of
 * the worker when the handler returns.
 */
static void slots_finish(nq_worker *w)
{
	pthread_mutex_lock(&w->mtx);
	w->slots_exit = true;
	w->closed = true;
	pthread_cond_broadcast(&w->run_cv);
	for (int i = 0; i < w->nrunners; i++) {
		struct worker_runner *r = &w->runners[i];
		if (r->in_handler) {
			pthread_detach(r->thread);
			continue;
		}
		pthread_mutex_unlock(&w->mtx);
		pthread_join(r->thread, NULL);
		pthread_mutex_lock(&w->mtx);
	}
	pthread_mutex_unlock(&w->mtx);
}

/* A worker of parts: its own memory is the id and queues only. */
static void parts_close(nq_worker *w)
{
	for (size_t k = 0; k < w->nparts; k++)
		nq_worker_close(w->part[k]);
	for (size_t i = 0; w->queues && i < w->nqueues; i++)
		free(w->queues[i]);
	free(w->queues);
	free(w->part);
	free(w->id);
	free(w);
}

NQ_API void nq_worker_close(nq_worker *w)
{
	if (!w)
		return;
	if (w->part) {
		parts_close(w);
		return;
	}
	pthread_mutex_lock(&w->mtx);
	stop_locked(w);
	/* nq_worker_run in another thread finishes its drain first. */
	while (w->running)
		pthread_cond_wait(&w->state_cv, &w->mtx);
	pthread_mutex_unlock(&w->mtx);
	slots_finish(w);
	/* Closing the sockets drops the connection, which makes the broker
	 * release any lease still held by this worker. */
	nq_client_close(w->client);
	w->client = NULL;
	worker_unref(w);
}
