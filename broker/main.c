/* nq-broker: routes jobs from producers to workers and keeps them durable. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/daemon.h"
#include "nqi/log.h"
#include "nqi/opts.h"
#include "nqi/url.h"
#include "nqi/util.h"

/* NULL when the flags make sense together, else why not. */
static const char *config_check(void *arg, char *buf, size_t len)
{
	const broker_config *c = arg;
	if (c->max_payload == 0 || c->max_payload > (64u << 20))
		return "--max-payload must be between 1 byte and 64 MiB";
	if (c->max_result > (64u << 20))
		return "--max-result must be at most 64 MiB";
	if (c->shard_number < -1 || c->shard_number > BROKER_SHARD_NUMBER_MAX)
		return "--shard-number must be from 0 to 63 (-1: one broker)";
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
	const nqi_url_flag urls[] = {
	    {"--api", c->api_url, true},
	    {"--work", c->work_url, true},
	    {"--results", c->results_url, true},
	    {"--events", c->events_url, true},
	    {"--dlq", c->dlq_url, false},
	};
	nqi_conncap_share sh[BROKER_SOCKETS];
	broker_conn_shares(c, sh);
	const nqi_socket_flags sf = {urls, sizeof urls / sizeof *urls,
	    c->max_connections, c->conn_idle_ms, sh, BROKER_SOCKETS,
	    c->recv_budget};
	return nqi_socket_flags_check(&sf, buf, len);
}

/* Where the flags every daemon shares keep their values. */
static nqi_daemon_common common_flags(broker_config *c)
{
	return (nqi_daemon_common){
	    NQI_COMMON_BASE(c), NQI_COMMON_STORE(c), NQI_COMMON_ROLES(c)};
}

/* Parses flags; returns 0 to run, or the exit status (-1: --help). */
static int configure(broker_config *c, int argc, char **argv)
{
	broker_config_defaults(c);
	const nqi_opt own[] = {
	    NQI_OPT("api", STR, &c->api_url, "api socket (REP) URL"),
	    NQI_OPT(
	        "work", STR, &c->work_url, "work socket (REP) URL for workers"),
	    NQI_OPT(
	        "results", STR, &c->results_url, "results socket (PULL) URL"),
	    NQI_OPT("events", STR, &c->events_url,
	        "events socket (PUB) URL (\"\": publish nothing)"),
	    NQI_OPT("http", STR, &c->http_addr,
	        "ADDR:PORT of /metrics, /healthz and /readyz (\"\": none)"),
	    NQI_OPT("dlq", STR, &c->dlq_url,
	        "nq-dlq socket that takes dead jobs (\"\": keep them here in "
	        "state dead)"),
	    NQI_OPT(
	        "max-payload", SIZE, &c->max_payload, "largest payload taken"),
	    NQI_OPT("max-result", SIZE, &c->max_result,
	        "largest result kept (longer ones are cut and logged)"),
	    NQI_OPT(
	        "map-size", SIZE, &c->map_size, "largest the store may grow"),
	    NQI_OPT("result-ttl", DURATION, &c->result_ttl_ms,
	        "how long finished jobs stay readable (0: deleted at once)"),
	    NQI_OPT("blob-dir", STR, &c->blob_dir,
	        "claim check: delete the blobs in this directory of jobs "
	        "whose record goes (\"\": none)"),
	    NQI_OPT("shard-number", INT, &c->shard_number,
	        "in a shard map, a number no other shard has (0-63, e.g. the "
	        "pod's ordinal): job ids are this modulo 64, so that no two "
	        "shards make the same id (-1: one broker)"),
	    NQI_OPT("idempotency-window", DURATION, &c->idempotency_window_ms,
	        "how long an idempotency key maps to its job"),
	    NQI_OPT("backoff-base", DURATION, &c->backoff_base_ms,
	        "first retry delay bound"),
	    NQI_OPT("backoff-cap", DURATION, &c->backoff_cap_ms,
	        "largest retry delay bound"),
	    NQI_OPT("default-timeout", DURATION, &c->default_timeout_ms,
	        "longest an attempt may run when the job names no timeout"),
	    NQI_OPT("max-attempts", U64, &c->max_attempts,
	        "attempts of a job that names none"),
	    NQI_OPT("max-depth", U64, &c->max_depth,
	        "jobs a queue may hold waiting or running (0: no limit)"),
	    NQI_OPT("lease-check", DURATION, &c->lease_check_ms,
	        "how often lapsed leases and expired results are looked for"),
	    NQI_OPT("api-contexts", INT, &c->api_contexts,
	        "api requests served at once"),
	    NQI_OPT("work-contexts", INT, &c->work_contexts,
	        "worker requests served at once"),
	    NQI_OPT("max-parked", INT, &c->max_parked,
	        "waits (api) and fetches (work) that may wait at once, per "
	        "socket; more are refused"),
	    NQI_OPT("conn-requests", INT, &c->conn_requests,
	        "requests of one connection served at once; more wait"),
	    NQI_OPT("conn-backlog", INT, &c->conn_backlog,
	        "requests of one connection that may wait; more are dropped"),
	    NQI_OPT("reply-timeout", DURATION, &c->reply_timeout_ms,
	        "how long a reply waits for its connection to take it"),
	    NQI_OPT("max-connections", INT, &c->max_connections,
	        "connections each socket (api, work, results) takes at once; "
	        "more are closed at once"),
	    NQI_OPT("recv-budget", SIZE, &c->recv_budget,
	        "bytes that connections may make the broker hold at worst "
	        "(connections x message limit, over the sockets); "
	        "--max-connections is lowered to fit"),
	    NQI_OPT("conn-idle-timeout", DURATION, &c->conn_idle_ms,
	        "an api or work connection that sent no whole request for "
	        "this long, with nothing waiting, is closed (work: at least "
	        "the longest lease, 1h, and a minute; 0: never)"),
	    NQI_OPT("queues-config", STR, &c->queues_config,
	        "YAML file of queue policies, read again on SIGHUP (\"\": "
	        "none)"),
	    NQI_OPT("dlq-token-file", STR, &c->dlq_token_file,
	        "file (or env:NAME) of this broker's token for nq-dlq"),
	};
	nqi_daemon_spec d = {
	    .prog = "nq-broker",
	    .usage = "usage: nq-broker [flags]",
	    .msgid = "NQ-BROKER-CONFIG",
	    .opts = own,
	    .nopts = sizeof own / sizeof *own,
	    .common = common_flags(c),
	    .check = config_check,
	    .arg = c,
	};
	return nqi_daemon_configure(&d, argc, argv, &c->config_values);
}

/* Loads tokens; warns when a public address is served with none. */
static int setup_auth(broker *b)
{
	char err[256] = "";
	broker_config *c = &b->cfg;
	nqi_daemon_common common = common_flags(c);
	const char *urls[] = {
	    c->api_url, c->work_url, c->results_url, c->events_url};
	int rv = nqi_daemon_auth(&b->auth, &common, urls, 4);
	if (rv == 0 && c->dlq_token_file && *c->dlq_token_file &&
	    (rv = nqi_token_read(
	         c->dlq_token_file, &c->dlq_token, err, sizeof err)) != 0)
		nqi_error("NQ-AUTH-CONFIG", NQI_S("err", err));
	return rv;
}

static int run(broker *b)
{
	char err[256] = "";
	int rv = broker_policy_start(b);
	if (rv != 0)
		return rv;
	rv = setup_auth(b);
	if (rv == 0)
		rv = broker_open_store(b);
	if (rv == 0)
		rv = broker_index_init(&b->core.index);
	if (rv == 0)
		rv = broker_recover(b, true);
	b->in.ready = rv == 0;
	if (rv == 0)
		rv = broker_start(b);
	if (rv != 0)
		return 1;
	if (broker_events_open(b, err, sizeof err) != 0 ||
	    broker_http_start(b, err, sizeof err) != 0 ||
	    broker_net_open(b, err, sizeof err) != 0 ||
	    broker_dlq_start(b, err, sizeof err) != 0 ||
	    nqi_daemon_ready(b->cfg.ready_file, err, sizeof err) != 0) {
		nqi_error("NQ-LISTEN-FAILED", NQI_S("err", err));
		broker_dlq_stop(b);
		broker_stop(b);
		broker_http_stop(b);
		broker_net_close(b);
		broker_dlq_close(b);
		broker_events_close(b);
		return 1;
	}
	nqi_info("NQ-BROKER-START", NQI_S("api", b->cfg.api_url),
	    NQI_S("work", b->cfg.work_url),
	    NQI_S("results", b->cfg.results_url),
	    NQI_S("data_dir", b->cfg.data_dir), NQI_S("sync", b->cfg.sync),
	    NQI_S("version", NQ_VERSION));
	/* Without a queues file SIGHUP stays logged and ignored. */
	if (b->cfg.queues_config && *b->cfg.queues_config)
		nqi_signals_on(SIGHUP, broker_policy_reload_cb, b);
	int sig = nqi_signals_wait();
	nqi_info("NQ-BROKER-STOPPING", NQI_I("signal", sig));
	broker_dlq_stop(b);
	broker_stop(b);
	/* Every commit is done; what is left only closes sockets. */
	nqi_shutdown_watchdog_arm(NQI_TEARDOWN_MS, "close sockets", 0);
	broker_http_stop(b);
	broker_net_close(b);
	broker_dlq_close(b);
	broker_events_close(b);
	nqi_info("NQ-BROKER-STOP",
	    NQI_U("commits", nqi_store_commits(b->store)),
	    NQI_U("events", b->ev.published),
	    NQI_U("events_dropped", b->ev.dropped));
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
