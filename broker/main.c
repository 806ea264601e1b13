/* nq-broker: routes jobs from producers to workers and keeps them durable. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/daemon.h"
#include "nqi/log.h"
#include "nqi/opts.h"
#include "nqi/util.h"

#define OPT(n, k, f, h)                                                        \
	{                                                                      \
		n, NQI_OPT_##k, &c->f, h, false                                \
	}

static size_t config_opts(broker_config *c, nqi_opt *o)
{
	nqi_opt all[] = {
	    OPT("api", STR, api_url, "api socket (REP) URL"),
	    OPT("work", STR, work_url, "work socket (REP) URL for workers"),
	    OPT("results", STR, results_url, "results socket (PULL) URL"),
	    OPT("events", STR, events_url,
	        "events socket (PUB) URL "
	        "(\"\": publish nothing)"),
	    OPT("http", STR, http_addr,
	        "ADDR:PORT of /metrics, /healthz "
	        "and /readyz (\"\": none)"),
	    OPT("dlq", STR, dlq_url,
	        "nq-dlq socket that takes dead jobs "
	        "(\"\": keep them here in state dead)"),
	    OPT("data-dir", STR, data_dir, "directory of the LMDB store"),
	    OPT("sync", STR, sync,
	        "always (fsync before confirming) or "
	        "none (benchmarks only: a crash loses recent writes)"),
	    OPT("max-payload", SIZE, max_payload, "largest payload taken"),
	    OPT("max-result", SIZE, max_result,
	        "largest result kept "
	        "(longer ones are cut and logged)"),
	    OPT("map-size", SIZE, map_size, "largest the store may grow"),
	    OPT("result-ttl", DURATION, result_ttl_ms,
	        "how long finished "
	        "jobs stay readable (0: deleted at once)"),
	    OPT("idempotency-window", DURATION, idempotency_window_ms,
	        "how long an idempotency key maps to its job"),
	    OPT("backoff-base", DURATION, backoff_base_ms,
	        "first retry "
	        "delay bound"),
	    OPT("backoff-cap", DURATION, backoff_cap_ms,
	        "largest retry "
	        "delay bound"),
	    OPT("default-timeout", DURATION, default_timeout_ms,
	        "longest "
	        "an attempt may run when the job names no timeout"),
	    OPT("max-attempts", U64, max_attempts,
	        "attempts of a job that "
	        "names none"),
	    OPT("max-depth", U64, max_depth,
	        "jobs a queue may hold "
	        "waiting or running (0: no limit)"),
	    OPT("lease-check", DURATION, lease_check_ms,
	        "how often lapsed "
	        "leases and expired results are looked for"),
	    OPT("api-contexts", INT, api_contexts,
	        "api requests served "
	        "at once"),
	    OPT("work-contexts", INT, work_contexts,
	        "worker requests served at once"),
	    OPT("max-parked", INT, max_parked,
	        "waits (api) and fetches (work) that may wait at once, per "
	        "socket; more are refused"),
	    OPT("conn-requests", INT, conn_requests,
	        "requests of one connection served at once; more wait"),
	    OPT("conn-backlog", INT, conn_backlog,
	        "requests of one connection that may wait; more are dropped"),
	    OPT("reply-timeout", DURATION, reply_timeout_ms,
	        "how long a reply waits for its connection to take it"),
	    OPT("producer-tokens", STR, producer_tokens,
	        "file (or "
	        "env:NAME) of producer tokens, one a line"),
	    OPT("worker-tokens", STR, worker_tokens,
	        "file (or env:NAME) "
	        "of worker tokens"),
	    OPT("admin-tokens", STR, admin_tokens,
	        "file (or env:NAME) of "
	        "admin tokens"),
	    OPT("dlq-token-file", STR, dlq_token_file,
	        "file (or env:NAME) "
	        "of this broker's token for nq-dlq"),
	    OPT("tls-cert", STR, tls_cert,
	        "PEM certificate for tls+tcp:// "
	        "and https endpoints"),
	    OPT("tls-key", STR, tls_key, "PEM key of --tls-cert"),
	    OPT("tls-ca", STR, tls_ca,
	        "PEM CA: clients must present a "
	        "certificate it signed; also verifies nq-dlq"),
	    OPT("config", STR, config_file,
	        "file of name = value lines, "
	        "read before the environment and flags"),
	    OPT("log-level", STR, log_level, "debug, info, warn or error"),
	    OPT("log-format", STR, log_format, "text or json"),
	};
	memcpy(o, all, sizeof all);
	return sizeof all / sizeof *all;
}

static const char *config_check(const broker_config *c)
{
	if (strcmp(c->sync, "always") != 0 && strcmp(c->sync, "none") != 0)
		return "--sync must be always or none";
	if (c->max_payload == 0 || c->max_payload > (64u << 20))
		return "--max-payload must be between 1 byte and 64 MiB";
	if (c->max_result > (64u << 20))
		return "--max-result must be at most 64 MiB";
	if (c->max_attempts == 0 || c->max_attempts > 1000)
		return "--max-attempts must be between 1 and 1000";
	if (c->backoff_base_ms == 0 || c->backoff_cap_ms < c->backoff_base_ms)
		return "--backoff-base must be > 0 and <= --backoff-cap";
	if (c->lease_check_ms < 10)
		return "--lease-check must be at least 10ms";
	if (c->api_contexts < 1 || c->work_contexts < 1 ||
	    c->api_contexts > 4096 || c->work_contexts > 4096)
		return "--api-contexts and --work-contexts must be 1..4096";
	if (c->max_parked < 1 || c->max_parked > 1000000 ||
	    c->conn_requests < 1 || c->conn_backlog < 0 ||
	    c->reply_timeout_ms < 10 || c->reply_timeout_ms > 3600000)
		return "--max-parked must be 1..1000000, --conn-requests at "
		       "least 1, --conn-backlog at least 0, --reply-timeout "
		       "10ms..1h";
	return nqi_log_configure(c->log_level, c->log_format);
}

static const char *check_cb(void *arg)
{
	return config_check(arg);
}

/* Parses flags; returns 0 to run, or the exit status (-1: --help). */
static int configure(broker_config *c, int argc, char **argv)
{
	nqi_opt o[40];
	broker_config_defaults(c);
	size_t n = config_opts(c, o);
	nqi_daemon_spec d = {"nq-broker", "usage: nq-broker [flags]",
	    "NQ-BROKER-CONFIG", check_cb, c};
	return nqi_daemon_configure(&d, o, n, argc, argv, &c->config_values);
}

/* Loads tokens; warns when a public address is served with none. */
static int setup_auth(broker *b)
{
	char err[256] = "";
	broker_config *c = &b->cfg;
	int rv = nqi_auth_load(&b->auth, c->producer_tokens, c->worker_tokens,
	    c->admin_tokens, err, sizeof err);
	if (rv == 0 && c->dlq_token_file && *c->dlq_token_file)
		rv = nqi_token_read(
		    c->dlq_token_file, &c->dlq_token, err, sizeof err);
	if (rv != 0) {
		nqi_error("NQ-AUTH-CONFIG", "err=\"%s\"", err);
		return rv;
	}
	const char *urls[] = {
	    c->api_url, c->work_url, c->results_url, c->events_url};
	for (size_t i = 0; i < 4 && nqi_auth_open(b->auth); i++) {
		if (urls[i] && nqi_url_is_public(urls[i])) {
			nqi_warn("NQ-AUTH-OPEN",
			    "url=%s no token files are set: "
			    "anyone who reaches this address may use it",
			    urls[i]);
			break;
		}
	}
	return NQ_OK;
}

static int run(broker *b)
{
	char err[256] = "";
	int rv = setup_auth(b);
	if (rv == 0)
		rv = broker_open_store(b);
	if (rv == 0)
		rv = broker_index_init(&b->index);
	if (rv == 0)
		rv = broker_recover(b, true);
	b->ready = rv == 0;
	if (rv == 0)
		rv = broker_start(b);
	if (rv != 0)
		return 1;
	if (broker_events_open(b, err, sizeof err) != 0 ||
	    broker_http_start(b, err, sizeof err) != 0 ||
	    broker_net_open(b, err, sizeof err) != 0 ||
	    broker_dlq_start(b, err, sizeof err) != 0) {
		nqi_error("NQ-LISTEN-FAILED", "err=\"%s\"", err);
		broker_dlq_stop(b);
		broker_stop(b);
		broker_http_stop(b);
		broker_net_close(b);
		broker_dlq_close(b);
		broker_events_close(b);
		return 1;
	}
	nqi_info("NQ-BROKER-START",
	    "api=%s work=%s results=%s data_dir=%s "
	    "sync=%s version=%s",
	    b->cfg.api_url, b->cfg.work_url, b->cfg.results_url,
	    b->cfg.data_dir, b->cfg.sync, NQ_VERSION);
	int sig = nqi_signals_wait();
	nqi_info("NQ-BROKER-STOPPING", "signal=%d", sig);
	broker_dlq_stop(b);
	broker_stop(b);
	/* Every commit is done; what is left only closes sockets. */
	nqi_shutdown_watchdog_arm(NQI_TEARDOWN_MS, "close sockets", 0);
	broker_http_stop(b);
	broker_net_close(b);
	broker_dlq_close(b);
	broker_events_close(b);
	nqi_info("NQ-BROKER-STOP",
	    "commits=%llu events=%llu events_dropped=%llu",
	    (unsigned long long)nqi_store_commits(b->store),
	    (unsigned long long)b->events_published,
	    (unsigned long long)b->events_dropped);
	return 0;
}

int main(int argc, char **argv)
{
	static broker b; /* large; lives for the whole process */
	int rv = configure(&b.cfg, argc, argv);
	if (rv != 0)
		return rv < 0 ? 0 : rv;
	nqi_signals_block();
	broker_init(&b);
	rv = run(&b);
	broker_fini(&b);
	nqi_strlist_free(&b.cfg.config_values);
	return rv;
}
