/*
 * What nq-worker tells about itself over HTTP (--http, 127.0.0.1:7482):
 *
 *	/metrics  nq_worker_slots_busy, nq_worker_slots_idle, nq_worker_ready,
 *	          nq_worker_jobs_total{type,outcome} and the histogram
 *	          nq_worker_job_duration_seconds{type}, per handler type
 *	/healthz  the process is alive
 *	/readyz   503 with the reason before the broker's work socket has
 *	          answered once, and while draining
 *
 * libnq does not tell when a fetch got its answer, so a probe thread asks
 * the work socket itself: an Extend of a lease that cannot exist (job id
 * 0). A FAILED_PRECONDITION reply proves what a fetch needs: the socket is
 * there and takes this worker's token. The first fetched job proves it too.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nqi/log.h"
#include "nqi/util.h"
#include "worker.h"

#define PROBE_ID "0000000000000000"
#define PROBE_TIMEOUT_MS 2000
#define PROBE_PAUSE_MS 500
/* How long one probe waits for the broker: short, so that a stop while
 * the broker is away does not wait out the full request timeout. */
#define PROBE_REQUEST_MS 1000

static const char *const outcome_names[WORKER_NOUTCOMES] = {
    "succeeded", "failed", "released"};

/* ---- readiness ---- */

/* What the worker dials, for messages: the shard map, or the work URL. */
static const char *obs_where(const worker_obs *o)
{
	return o->conn.brokers ? o->conn.brokers : o->conn.work_url;
}

void worker_obs_reached(worker_obs *o, const char *via)
{
	if (!o || atomic_exchange(&o->reached, true))
		return;
	nqi_info(
	    "NQ-WORKER-READY", NQI_S("work", obs_where(o)), NQI_S("via", via));
	pthread_mutex_lock(&o->mtx);
	pthread_cond_broadcast(&o->cv); /* the probe can end */
	pthread_mutex_unlock(&o->mtx);
}

static bool ready_cb(void *arg, char *why, size_t len)
{
	worker_obs *o = arg;
	if (nq_worker_draining(o->w)) {
		snprintf(why, len, "draining: the worker is stopping");
		return false;
	}
	if (atomic_load(&o->reached))
		return true;
	pthread_mutex_lock(&o->mtx);
	snprintf(why, len, "%s", o->why);
	pthread_mutex_unlock(&o->mtx);
	return false;
}

/* Notes why the last probe got no answer. */
static void probe_failed(worker_obs *o, nq_client *c, int rv)
{
	const char *detail = c ? nq_client_last_error(c) : "";
	bool refused = rv == NQ_EAUTH || rv == NQ_EPERM;
	pthread_mutex_lock(&o->mtx);
	snprintf(o->why, sizeof o->why, "%s %s: %s%s%s",
	    refused ? "the broker refused this worker at"
	            : "no answer yet from the broker's work socket",
	    obs_where(o), nq_strerror(rv), *detail ? ": " : "", detail);
	pthread_mutex_unlock(&o->mtx);
}

/* Sleeps ms, or less when stopped or reached; true when it should go on. */
static bool probe_pause(worker_obs *o, uint64_t ms)
{
	struct timespec until = nqi_realtime_in(ms);
	pthread_mutex_lock(&o->mtx);
	while (!o->stop && !atomic_load(&o->reached) &&
	       pthread_cond_timedwait(&o->cv, &o->mtx, &until) == 0)
		;
	bool go_on = !o->stop && !atomic_load(&o->reached);
	pthread_mutex_unlock(&o->mtx);
	return go_on;
}

static void *probe_main(void *arg)
{
	worker_obs *o = arg;
	nq_client *c = NULL;
	nq_client_opts conn = o->conn;
	conn.timeout_ms = PROBE_REQUEST_MS;
	int rv = nq_client_open(&c, &conn);
	if (rv != NQ_OK)
		probe_failed(o, NULL, rv);
	while (rv == NQ_OK && !atomic_load(&o->reached)) {
		int got = nq_extend(c, PROBE_ID, 1, PROBE_TIMEOUT_MS);
		/* The lease is not held: the broker answered. */
		if (got == NQ_EPRECOND || got == NQ_ENOTFOUND || got == NQ_OK) {
			worker_obs_reached(o, "probe");
			break;
		}
		probe_failed(o, c, got);
		if (!probe_pause(o, PROBE_PAUSE_MS))
			break;
	}
	nq_client_close(c);
	return NULL;
}

/* ---- metrics ---- */

static int prom_gauge(nqi_prom *p, const char *name, const char *help,
    const char *const *labels, double v)
{
	int rv = nqi_prom_family(p, name, NQI_PROM_GAUGE, help);
	return rv ? rv : nqi_prom_sample(p, name, labels, v);
}

static int prom_slots(nqi_prom *p, const worker_obs *o)
{
	int busy = 0, total = 0;
	nq_worker_slots(o->w, &busy, &total);
	int rv = prom_gauge(
	    p, "nq_worker_slots_busy", "Slots running a job now.", NULL, busy);
	if (rv == 0)
		rv = prom_gauge(p, "nq_worker_slots_idle",
		    "Slots free for a job now (--concurrency less busy).", NULL,
		    total - busy);
	if (rv == 0)
		rv = prom_gauge(p, "nq_worker_ready",
		    "1 while /readyz says ready.", NULL,
		    atomic_load(&o->reached) && !nq_worker_draining(o->w));
	if (rv == 0)
		rv = prom_gauge(p, "nq_worker_info",
		    "Always 1; the labels name this worker.",
		    (const char *const[]){"worker_id", nq_worker_id(o->w),
		        "version", NQ_VERSION, NULL},
		    1);
	return rv;
}

static int prom_jobs(nqi_prom *p, const worker_obs *o)
{
	const char *name = "nq_worker_jobs_total";
	int rv = nqi_prom_family(p, name, NQI_PROM_COUNTER,
	    "Jobs this worker ran, by handler type and how they ended "
	    "(released: given back unfinished when the worker stopped, or "
	    "unstarted when this host was short of descriptors).");
	for (size_t i = 0; rv == 0 && i < o->nhandlers; i++) {
		const worker_handler *h = &o->handlers[i];
		for (int k = 0; rv == 0 && k < WORKER_NOUTCOMES; k++)
			rv = nqi_prom_sample(p, name,
			    (const char *const[]){"type", h->type, "outcome",
			        outcome_names[k], NULL},
			    (double)atomic_load(&h->jobs[k]));
	}
	name = "nq_worker_job_duration_seconds";
	if (rv == 0)
		rv = nqi_prom_family(p, name, NQI_PROM_HISTOGRAM,
		    "How long a handler command ran, succeeded and failed "
		    "runs.");
	for (size_t i = 0; rv == 0 && i < o->nhandlers; i++)
		rv = nqi_prom_histogram(p, name,
		    (const char *const[]){"type", o->handlers[i].type, NULL},
		    o->handlers[i].duration_s);
	return rv;
}

static int metrics_cb(nqi_prom *p, void *arg)
{
	const worker_obs *o = arg;
	int rv = prom_slots(p, o);
	return rv ? rv : prom_jobs(p, o);
}

/* ---- start and stop ---- */

int worker_obs_start(worker_obs *o, const char *addr, char *err, size_t len)
{
	pthread_mutex_init(&o->mtx, NULL);
	pthread_cond_init(&o->cv, NULL);
	snprintf(o->why, sizeof o->why,
	    "no answer yet from the broker's work socket %s", obs_where(o));
	if (addr && *addr) {
		/* https serves the worker's own --tls-cert/--tls-key. */
		nqi_tls_opts t = {o->conn.tls_cert, o->conn.tls_key, NULL};
		nqi_http_opts h = {.addr = addr,
		    .metrics_cb = metrics_cb,
		    .ready_cb = ready_cb,
		    .arg = o,
		    .tls = strncmp(addr, "https://", 8) == 0 ? &t : NULL,
		    .max_connections = o->http_max_connections,
		    .timeout_ms = o->http_timeout_ms};
		int rv = nqi_http_start(&o->http, &h, err, len);
		if (rv != NQ_OK)
			return rv;
	}
	if (pthread_create(&o->probe, NULL, probe_main, o) != 0) {
		snprintf(err, len, "cannot start the readiness probe thread");
		nqi_http_stop(o->http);
		o->http = NULL;
		return NQ_ENOMEM;
	}
	o->probe_started = true;
	return NQ_OK;
}

void worker_obs_stop(worker_obs *o)
{
	nqi_http_stop(o->http);
	o->http = NULL;
	if (!o->probe_started)
		return;
	pthread_mutex_lock(&o->mtx);
	o->stop = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mtx);
	pthread_join(o->probe, NULL);
	o->probe_started = false;
}
