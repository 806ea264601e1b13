/* nq-dlq: keeps the jobs that failed for good, and lets operators find out
 * why and put them back. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/conncap.h"
#include "nqi/daemon.h"
#include "nqi/log.h"
#include "nqi/opts.h"
#include "nqi/tls.h"
#include "nqi/url.h"
#include "nqi/util.h"

/* Brokers and operators connect, not a crowd: 32 connections of
 * --max-message (256 MiB) fill the default --recv-budget. */
#define DLQ_MAX_CONNECTIONS 32

static void config_defaults(dlq_config *c)
{
	*c = (dlq_config){
	    .listen_url = "tcp://127.0.0.1:7410",
	    .broker_url = "tcp://127.0.0.1:7400",
	    .data_dir = "./nq-dlq-data",
	    .sync = "always",
	    .http_addr = "127.0.0.1:7481",
	    .log_level = "info",
	    .log_format = "text",
	    .retention_count = 10000,
	    .retention_age_ms = 30ull * 24 * 3600 * 1000,
	    .retention_check_ms = 10000,
	    .broker_timeout_ms = 10000,
	    .map_size = 64ull << 30,
	    .max_message = 256u << 20,
	    .contexts = 64,
	    .max_connections = DLQ_MAX_CONNECTIONS,
	    .recv_budget = NQI_RECV_BUDGET_DEFAULT,
	    .conn_idle_ms = NQI_CONN_IDLE_MS_DEFAULT,
	};
}

/* NULL when the flags make sense together, else why not. */
static const char *config_check(void *arg, char *buf, size_t len)
{
	const dlq_config *c = arg;
	if (!c->listen_url || !*c->listen_url)
		return "--listen must name a URL";
	if (!c->broker_url || !*c->broker_url)
		return "--broker must name a URL";
	if (c->retention_check_ms < 10)
		return "--retention-check must be at least 10ms";
	if (c->brokers && *c->brokers &&
	    nq_shard_map_check(c->brokers, buf, len) != NQ_OK)
		return buf;
	if (c->broker_timeout_ms < 100 || c->broker_timeout_ms > 600000)
		return "--broker-timeout must be from 100ms to 10m";
	if (c->max_message < (64u << 10) || c->max_message > (1ull << 30))
		return "--max-message must be from 64k to 1g";
	if (c->map_size < (1u << 20))
		return "--map-size must be at least 1m";
	if (c->contexts < 1 || c->contexts > 4096)
		return "--contexts must be from 1 to 4096";
	const nqi_url_flag urls[] = {
	    {"--listen", c->listen_url, true},
	    {"--broker", c->broker_url, false},
	};
	nqi_conncap_share sh = {"listen", c->max_message, c->max_connections};
	const nqi_socket_flags sf = {urls, sizeof urls / sizeof *urls,
	    c->max_connections, c->conn_idle_ms, &sh, 1, c->recv_budget};
	return nqi_socket_flags_check(&sf, buf, len);
}

/* Where the flags every daemon shares keep their values. */
static nqi_daemon_common common_flags(dlq_config *c)
{
	return (nqi_daemon_common){NQI_COMMON_BASE(c), NQI_COMMON_STORE(c),
	    NQI_COMMON_ROLES(c), .token_file = &c->token_file};
}

/* Parses flags; returns 0 to run, -1 after --help, or the exit status. */
static int configure(dlq_config *c, int argc, char **argv)
{
	config_defaults(c);
	const nqi_opt own[] = {
	    NQI_OPT("listen", STR, &c->listen_url,
	        "REP socket URL: ingest from the broker, requests of "
	        "operators"),
	    NQI_OPT("broker", STR, &c->broker_url,
	        "the broker's api socket, where replay enqueues"),
	    NQI_OPT("brokers", STR, &c->brokers,
	        "shard map in place of --broker: NAME=URL,... (each "
	        "broker's api URL) or a file; a replay goes to its queue's "
	        "shard"),
	    NQI_OPT("http", STR, &c->http_addr,
	        "ADDR:PORT of /metrics, /healthz and /readyz (none: off)"),
	    NQI_OPT("retention-count", U64, &c->retention_count,
	        "entries kept per queue, the newest (0: no limit)"),
	    NQI_OPT("retention-age", DURATION, &c->retention_age_ms,
	        "entries dead longer ago are removed (0: no limit)"),
	    NQI_OPT("retention-check", DURATION, &c->retention_check_ms,
	        "how often retention looks at every queue"),
	    NQI_OPT("broker-timeout", DURATION, &c->broker_timeout_ms,
	        "longest wait for the broker to answer one replay batch"),
	    NQI_OPT(
	        "map-size", SIZE, &c->map_size, "largest the store may grow"),
	    NQI_OPT(
	        "max-message", SIZE, &c->max_message, "largest request taken"),
	    NQI_OPT("contexts", INT, &c->contexts, "requests served at once"),
	    NQI_OPT("max-connections", INT, &c->max_connections,
	        "connections taken at once; more are closed at once"),
	    NQI_OPT("recv-budget", SIZE, &c->recv_budget,
	        "bytes that connections may make nq-dlq hold at worst "
	        "(connections x --max-message); --max-connections is "
	        "lowered to fit"),
	    NQI_OPT("conn-idle-timeout", DURATION, &c->conn_idle_ms,
	        "a connection that sent no whole request for this long, "
	        "with nothing waiting, is closed (0: never)"),
	};
	nqi_daemon_spec d = {
	    .prog = "nq-dlq",
	    .usage = "usage: nq-dlq [flags]\n"
	             "Keeps dead jobs handed over by nq-broker --dlq URL.",
	    .msgid = "NQ-DLQ-CONFIG",
	    .opts = own,
	    .nopts = sizeof own / sizeof *own,
	    .common = common_flags(c),
	    .check = config_check,
	    .arg = c,
	};
	return nqi_daemon_configure(&d, argc, argv, &c->config_values);
}

/* Loads tokens; warns when a public address is served with none. */
static int setup_auth(dlq *d)
{
	nqi_daemon_common common = common_flags(&d->cfg);
	return nqi_daemon_auth(&d->auth, &common, &d->cfg.listen_url, 1);
}

/* Starts the parts in the order they depend on each other; on failure
 * the caller stops whatever did start. */
static int start(dlq *d)
{
	char err[256] = "";
	int rv = setup_auth(d);
	if (rv != 0)
		return rv;
	rv = dlq_store_open(d, err, sizeof err);
	if (rv != 0) {
		nqi_error("NQ-STORE-OPEN-FAILED", NQI_S("dir", d->cfg.data_dir),
		    NQI_S("err", err));
		return rv;
	}
	atomic_store(&d->ready, true);
	if ((rv = dlq_core_start(d)) != 0)
		return rv;
	if ((rv = dlq_replay_start(d, err, sizeof err)) != 0) {
		nqi_error("NQ-DLQ-BROKER-FAILED", NQI_S("err", err));
		return rv;
	}
	if ((rv = dlq_net_open(d, err, sizeof err)) != 0) {
		nqi_error("NQ-LISTEN-FAILED", NQI_S("err", err));
		return rv;
	}
	if ((rv = dlq_http_start(d, err, sizeof err)) != 0) {
		nqi_error("NQ-HTTP-FAILED", NQI_S("addr", d->cfg.http_addr),
		    NQI_S("err", err));
		return rv;
	}
	if ((rv = nqi_daemon_ready(d->cfg.ready_file, err, sizeof err))) {
		nqi_error("NQ-READY-FILE-FAILED", NQI_S("err", err));
		return rv;
	}
	return NQ_OK;
}

/* Stops taking requests, lets the replay and the commit in flight finish,
 * then closes; status is the exit status should closing the sockets
 * hang. */
static void stop(dlq *d, int status)
{
	dlq_net_quiesce(d);
	dlq_replay_stop(d);
	dlq_core_stop(d);
	/* Every commit is done; what is left only closes sockets. */
	nqi_shutdown_watchdog_arm(NQI_TEARDOWN_MS, "close sockets", status);
	/* /metrics reads the socket's counts: the server goes first. */
	dlq_http_stop(d);
	dlq_net_close(d);
}

int main(int argc, char **argv)
{
	static dlq d; /* lives for the whole process */
	int rv = configure(&d.cfg, argc, argv);
	if (rv != 0)
		return rv < 0 ? 0 : rv;
	nqi_signals_block();
	pthread_mutex_init(&d.mu, NULL);
	pthread_cond_init(&d.cv, NULL);
	pthread_cond_init(&d.done_cv, NULL);
	pthread_cond_init(&d.replay_cv, NULL);
	d.started_ms = nqi_mono_ms();
	rv = start(&d);
	if (rv == 0) {
		nqi_info("NQ-DLQ-START", NQI_S("listen", d.cfg.listen_url),
		    NQI_S("broker", dlq_broker_where(&d.cfg)),
		    NQI_S("http", d.cfg.http_addr),
		    NQI_S("data_dir", d.cfg.data_dir),
		    NQI_S("sync", d.cfg.sync),
		    NQI_U("retention_count", d.cfg.retention_count),
		    NQI_U("retention_age_ms", d.cfg.retention_age_ms),
		    NQI_S("version", NQ_VERSION));
		int sig = nqi_signals_wait();
		nqi_info("NQ-DLQ-STOPPING", NQI_I("signal", sig));
	}
	stop(&d, rv == 0 ? 0 : 1);
	if (rv == 0)
		nqi_info("NQ-DLQ-STOP",
		    NQI_U("commits", atomic_load(&d.commits_total)));
	nqi_store_close(d.store);
	nqi_auth_free(d.auth);
	nqi_strlist_free(&d.cfg.config_values);
	return rv == 0 ? 0 : 1;
}
