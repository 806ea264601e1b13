/* /metrics, /healthz and /readyz of nq-dlq. The callbacks run on NNG's
 * HTTP threads: they read atomics and a read transaction, never the core's
 * state. */
#include <stdio.h>
#include <string.h>

#include "dlq.h"
#include "nqi/prom.h"
#include "nqi/rep.h"
#include "nqi/tls.h"
#include "nqi/util.h"

typedef struct entries_acc {
	nqi_prom *p;
} entries_acc;

static int entry_sample(
    void *arg, const char *queue, const char *reason, uint64_t n)
{
	entries_acc *a = arg;
	return nqi_prom_sample(a->p, "nq_dlq_entries",
	    (const char *const[]){"queue", queue, "reason", reason, NULL},
	    (double)n);
}

static int entries_family(dlq *d, nqi_prom *p)
{
	MDB_txn *txn;
	entries_acc a = {p};
	int rv = nqi_prom_family(p, "nq_dlq_entries", NQI_PROM_GAUGE,
	    "Dead jobs kept, by queue and reason.");
	if (rv == 0)
		rv = nqi_store_begin(d->store, false, &txn);
	if (rv != 0)
		return rv;
	rv = dlq_store_counts(d, txn, entry_sample, &a);
	mdb_txn_abort(txn);
	return rv;
}

/* One counter sample; help starts its family (NULL: a further sample of
 * the family above), reason labels it. */
typedef struct dlq_counter {
	const char *name, *help, *reason;
	const atomic_uint_fast64_t *v;
} dlq_counter;

static int counter(nqi_prom *p, const dlq_counter *c)
{
	const char *const labels[] = {"reason", c->reason, NULL};
	int rv = 0;
	if (c->help)
		rv = nqi_prom_family(p, c->name, NQI_PROM_COUNTER, c->help);
	if (rv == 0)
		rv = nqi_prom_sample(p, c->name, c->reason ? labels : NULL,
		    (double)atomic_load(c->v));
	return rv;
}

/* What --max-connections and --conn-idle-timeout do on the socket of
 * --listen; the same rows as the broker's. d->rep lives until after the
 * HTTP server stopped (stop() in main.c). */
static int conns_families(dlq *d, nqi_prom *p)
{
	nqi_rep_counts rc;
	nqi_rep_get_counts(d->rep, &rc);
	const nqi_conn_counts c = {"listen", rc.connections, rc.conns_refused,
	    rc.idle_closed, true, rc.evicted, true};
	return nqi_conncap_prom(p, &c, 1);
}

static int metrics_cb(nqi_prom *p, void *arg)
{
	dlq *d = arg;
	const dlq_counter counters[] = {
	    {"nq_dlq_ingested_total",
	        "Dead jobs stored from broker handoffs (a repeated handoff "
	        "counts once).",
	        NULL, &d->ingested_total},
	    {"nq_dlq_duplicates_total",
	        "Handed-over jobs that were stored already (handoffs "
	        "repeated after a lost reply).",
	        NULL, &d->duplicate_total},
	    {"nq_dlq_replayed_total", "Entries the broker took back by replay.",
	        NULL, &d->replayed_total},
	    {"nq_dlq_purged_total", "Entries purged by operators.", NULL,
	        &d->purged_total},
	    {"nq_dlq_pruned_total", "Entries removed by retention, by limit.",
	        "count", &d->pruned_count_total},
	    {"nq_dlq_pruned_total", NULL, "age", &d->pruned_age_total},
	    {"nq_dlq_store_commits_total", "Store commits since start.", NULL,
	        &d->commits_total},
	};
	int rv = entries_family(d, p);
	if (rv == 0)
		rv = conns_families(d, p);
	if (rv == 0)
		rv = nqi_gcommit_prom(p, &d->gc, "nq_dlq_core_seconds_total");
	for (size_t i = 0; rv == 0 && i < sizeof counters / sizeof *counters;
	     i++)
		rv = counter(p, &counters[i]);
	return rv;
}

static bool ready_cb(void *arg, char *why, size_t whylen)
{
	dlq *d = arg;
	if (atomic_load(&d->ready) && !atomic_load(&d->net_stopping))
		return true;
	snprintf(why, whylen, "%s",
	    atomic_load(&d->net_stopping) ? "shutting down"
	                                  : "store cannot commit");
	return false;
}

int dlq_http_start(dlq *d, char *err, size_t errlen)
{
	const char *addr = d->cfg.http_addr;
	nqi_tls_opts tls = {d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_ca};
	if (!addr || !*addr || strcmp(addr, "none") == 0)
		return NQ_OK;
	nqi_http_opts o = {
	    .addr = addr,
	    .metrics_cb = metrics_cb,
	    .ready_cb = ready_cb,
	    .arg = d,
	    .tls = strncmp(addr, "https://", 8) == 0 ? &tls : NULL,
	    .max_connections = (unsigned)d->cfg.http_max_connections,
	    .timeout_ms = d->cfg.http_timeout_ms,
	};
	dlq_api_opts(d, &o);
	return nqi_http_start(&d->http, &o, err, errlen);
}

void dlq_http_stop(dlq *d)
{
	nqi_http_stop(d->http);
	d->http = NULL;
}
