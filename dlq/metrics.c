/* /metrics, /healthz and /readyz of nq-dlq. The callbacks run on NNG's
 * HTTP threads: they read atomics and a read transaction, never the core's
 * state. */
#include <stdio.h>
#include <string.h>

#include "dlq.h"
#include "nqi/prom.h"
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

static int counter(nqi_prom *p, const char *name, const char *help,
    const char *const *labels, uint64_t v)
{
	int rv = help ? nqi_prom_family(p, name, NQI_PROM_COUNTER, help) : 0;
	return rv ? rv : nqi_prom_sample(p, name, labels, (double)v);
}

static int metrics_cb(nqi_prom *p, void *arg)
{
	dlq *d = arg;
	int rv = entries_family(d, p);
	if (rv == 0)
		rv = counter(p, "nq_dlq_ingested_total",
		    "Dead jobs stored "
		    "from broker handoffs (a repeated handoff counts once).",
		    NULL, atomic_load(&d->ingested_total));
	if (rv == 0)
		rv = counter(p, "nq_dlq_duplicates_total",
		    "Handed-over jobs "
		    "that were stored already (handoffs repeated after a lost "
		    "reply).",
		    NULL, atomic_load(&d->duplicate_total));
	if (rv == 0)
		rv = counter(p, "nq_dlq_replayed_total",
		    "Entries the broker "
		    "took back by replay.",
		    NULL, atomic_load(&d->replayed_total));
	if (rv == 0)
		rv = counter(p, "nq_dlq_purged_total",
		    "Entries purged by "
		    "operators.",
		    NULL, atomic_load(&d->purged_total));
	if (rv == 0)
		rv = counter(p, "nq_dlq_pruned_total",
		    "Entries removed by "
		    "retention, by limit.",
		    (const char *const[]){"reason", "count", NULL},
		    atomic_load(&d->pruned_count_total));
	if (rv == 0)
		rv = counter(p, "nq_dlq_pruned_total", NULL,
		    (const char *const[]){"reason", "age", NULL},
		    atomic_load(&d->pruned_age_total));
	if (rv == 0)
		rv = nqi_prom_family(p, "nq_dlq_store_commits_total",
		    NQI_PROM_COUNTER, "Store commits since start.");
	if (rv == 0)
		rv = nqi_prom_sample(p, "nq_dlq_store_commits_total", NULL,
		    (double)atomic_load(&d->commits_total));
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
	};
	if (strncmp(addr, "https://", 8) == 0) {
		int rv = nqi_tls_server_config(&tls, &o.tls, err, errlen);
		if (rv != 0)
			return rv;
	}
	int rv = nqi_http_start(&d->http, &o, err, errlen);
	if (o.tls)
		nng_tls_config_free(o.tls);
	return rv;
}

void dlq_http_stop(dlq *d)
{
	nqi_http_stop(d->http);
	d->http = NULL;
}
