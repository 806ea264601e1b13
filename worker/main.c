/*
 * nq-worker: runs nq jobs as shell commands, one handler command per job
 * type, on libnq's worker (fetch, lease extension, completions, drain).
 *
 * SIGTERM, SIGINT or SIGQUIT starts a drain: no new jobs; running
 * commands get --grace to finish; then their jobs are released (they run
 * elsewhere at once), the commands still running are killed, and the
 * worker exits 0. SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM are logged
 * (NQ-SIGNAL) and ignored, as in every daemon (nqi_signals_wait). Signals
 * are taken by one thread with sigwait, so every other thread, libnq's
 * included, runs with them blocked; at the end a SIGUSR1 to that thread
 * alone (nqi_signals_wake) lets it be joined.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "nqi/auth.h"
#include "nqi/daemon.h"
#include "nqi/log.h"
#include "nqi/opts.h"
#include "nqi/url.h"
#include "nqi/util.h"
#include "worker.h"

#define EXIT_USAGE 2
#define CONCURRENCY_MAX 1024
#define LEASE_MIN_MS 1000

typedef struct worker_conf {
	const char *brokers; /* a shard map: replaces work_url, results_url */
	const char *work_url;
	const char *results_url;
	const char *queues;   /* "Q1,Q2" */
	nqi_strlist handlers; /* "TYPE=COMMAND" each */
	int concurrency;
	uint64_t lease_ms;
	uint64_t grace_ms;
	uint64_t heartbeat_ms; /* 0: a third of lease_ms */
	const char *token_file;
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_server_name;
	const char *log_level;
	const char *log_format;
	const char *http_addr; /* "" serves no HTTP */
	int http_max_connections;
	uint64_t http_timeout_ms;
	const char *ready_file; /* written once the HTTP address is bound */
	const char *config_file;
	nqi_strlist config_values; /* copies of what the config file set */
} worker_conf;

typedef struct worker_main {
	worker_conf conf;
	char *token;
	char *queue_buf; /* conf.queues, split in place */
	const char **queues;
	size_t nqueues;
	worker_handler *handlers;
	size_t nhandlers;
	worker_children children;
	worker_stats stats;
	worker_obs obs;
	nq_worker *w;
	pthread_t sig_thr;
	bool sig_started;
	bool handlers_busy; /* a callback outlived the wait: keep its state */
	struct rlimit nofile_was; /* before raise_nofile: for the commands */
} worker_main;

static int fail(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason a flag is wrong into why; returns NQ_EINVAL. */
static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return NQ_EINVAL;
}

/* Splits --queues and checks every name. */
static int parse_queues(worker_main *m, char *why, size_t len)
{
	char *save = NULL;
	size_t n = 1;
	for (const char *p = m->conf.queues; *p; p++)
		n += *p == ',';
	m->queue_buf = strdup(m->conf.queues);
	m->queues = calloc(n, sizeof *m->queues);
	if (!m->queue_buf || !m->queues)
		return fail(why, len, "out of memory");
	for (char *q = strtok_r(m->queue_buf, ",", &save); q;
	     q = strtok_r(NULL, ",", &save)) {
		if (!nqi_name_valid(q))
			return fail(why, len,
			    "--queues: '%s' is not a valid queue name (1 to "
			    "128 of A-Z a-z 0-9 . _ -)",
			    q);
		m->queues[m->nqueues++] = q;
	}
	if (m->nqueues == 0)
		return fail(why, len, "--queues names no queue");
	return 0;
}

static int add_handler(worker_main *m, const char *spec, char *why, size_t len)
{
	const char *eq = strchr(spec, '=');
	worker_handler *h = &m->handlers[m->nhandlers];
	if (!eq || eq == spec || !eq[1])
		return fail(
		    why, len, "--handler '%s': expected TYPE=COMMAND", spec);
	char *type = strndup(spec, (size_t)(eq - spec));
	if (!type)
		return fail(why, len, "out of memory");
	h->type = type;
	h->command = eq + 1;
	h->children = &m->children;
	h->stats = &m->stats;
	h->obs = &m->obs;
	m->nhandlers++;
	if (nqi_prom_hist_alloc(&h->duration_s, nqi_prom_latency_bounds_s,
	        NQI_PROM_LATENCY_NBOUNDS, NULL, 0) != NQ_OK)
		return fail(why, len, "out of memory");
	if (strcmp(type, "*") != 0 && !nqi_name_valid(type))
		return fail(why, len,
		    "--handler '%s': '%s' is not a valid job type (or *)", spec,
		    type);
	for (size_t i = 0; i + 1 < m->nhandlers; i++)
		if (strcmp(m->handlers[i].type, type) == 0)
			return fail(why, len,
			    "--handler: type '%s' has two commands", type);
	return 0;
}

static int parse_handlers(worker_main *m, char *why, size_t len)
{
	const nqi_strlist *l = &m->conf.handlers;
	if (l->n == 0)
		return fail(why, len, "no --handler given");
	if (!(m->handlers = calloc(l->n, sizeof *m->handlers)))
		return fail(why, len, "out of memory");
	for (size_t i = 0; i < l->n; i++) {
		int rc = add_handler(m, l->v[i], why, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* Checks the flags nqi_daemon_configure does not, splits --queues and
 * --handler, and reads the token. */
static const char *check_cb(void *arg, char *why, size_t len)
{
	worker_main *m = arg;
	const worker_conf *c = &m->conf;
	if (c->concurrency < 1 || c->concurrency > CONCURRENCY_MAX) {
		fail(why, len, "--concurrency must be from 1 to %d",
		    CONCURRENCY_MAX);
		return why;
	}
	if (c->lease_ms < LEASE_MIN_MS)
		return "--lease must be at least 1s";
	if (c->grace_ms == 0)
		return "--grace must be longer than 0";
	if (c->heartbeat_ms && c->heartbeat_ms >= c->lease_ms)
		return "--heartbeat must be shorter than --lease";
	const nqi_url_flag urls[] = {
	    {"--work", c->work_url, false},
	    {"--results", c->results_url, false},
	};
	if (nqi_url_check_flags(urls, sizeof urls / sizeof *urls, why, len))
		return why;
	if (c->brokers && *c->brokers &&
	    nq_shard_map_check(c->brokers, why, len) != NQ_OK)
		return why;
	int rc = parse_queues(m, why, len);
	if (rc == 0)
		rc = parse_handlers(m, why, len);
	if (rc == 0 && c->token_file && *c->token_file)
		rc = nqi_token_read(c->token_file, &m->token, why, len);
	return rc ? why : NULL;
}

/* Parses and checks the flags. Returns 0 to go on, -1 when --help was
 * printed (exit 0), or the exit status of a bad command line. */
static int configure(worker_main *m, int argc, char **argv)
{
	worker_conf *c = &m->conf;
	const nqi_opt own[] = {
	    NQI_OPT("brokers", STR, &c->brokers,
	        "shard map, in place of --work and --results: "
	        "NAME=URL,... (the api URL of each broker) or a file"),
	    NQI_OPT("work", STR, &c->work_url, "broker work socket"),
	    NQI_OPT("results", STR, &c->results_url, "broker results socket"),
	    NQI_OPT("queues", STR, &c->queues,
	        "queues to take jobs from, comma separated"),
	    NQI_OPT("handler", LIST, &c->handlers,
	        "TYPE=COMMAND, repeatable; TYPE * takes every other type"),
	    NQI_OPT("concurrency", INT, &c->concurrency,
	        "commands run at the same time (with --brokers, shared out "
	        "between the shards of its queues)"),
	    NQI_OPT("lease", DURATION, &c->lease_ms,
	        "lease length, extended while a command runs"),
	    NQI_OPT("grace", DURATION, &c->grace_ms,
	        "on SIGTERM, how long running commands may finish; a "
	        "canceled job's command gets SIGKILL this long after "
	        "SIGTERM"),
	    NQI_OPT("heartbeat", DURATION, &c->heartbeat_ms,
	        "how often running leases are extended, which is when a "
	        "cancel is learnt (0: a third of --lease)"),
	    NQI_OPT("tls-server-name", STR, &c->tls_server_name,
	        "name the broker certificate must carry"),
	    NQI_OPT("http", STR, &c->http_addr,
	        "ADDR:PORT of /metrics, /healthz and /readyz (\"\": none)"),
	};
	nqi_daemon_spec d = {
	    .prog = "nq-worker",
	    .usage =
	        "usage: nq-worker --handler TYPE=COMMAND [--handler ...] "
	        "[flags]\n"
	        "\n"
	        "Runs each job as /bin/sh -c COMMAND, in its own process "
	        "group.\n"
	        "stdin: the payload (msgpack as one line of JSON, else its "
	        "bytes).\n"
	        "environment: NQ_JOB_ID NQ_QUEUE NQ_TYPE NQ_ATTEMPT "
	        "NQ_MAX_ATTEMPTS\n"
	        "  NQ_CONTENT_TYPE, NQ_PROGRESS_FD (write lines \"progress PCT "
	        "[NOTE]\" there),\n"
	        "  NQ_TRACEPARENT when the job has one, and NQ_PARENT_RESULTS "
	        "(a file\n"
	        "  of its parents' results as JSON) when it has parents.\n"
	        "stdout (at most 1 MiB) is the result. Exit 0: succeeded; 75: "
	        "retry later;\n"
	        "65: failed for good; anything else or a signal: a failed "
	        "attempt. Past the\n"
	        "job's timeout: SIGTERM to the group, SIGKILL 2s later. A "
	        "canceled job:\n"
	        "SIGTERM at the next heartbeat, SIGKILL --grace later.\n"
	        "\n"
	        "Defaults: --work tcp://127.0.0.1:7401 --results "
	        "tcp://127.0.0.1:7402 --queues default\n"
	        "--concurrency 1 --lease 30s --heartbeat 10s --grace 10s "
	        "--log-level info "
	        "--log-format text\n"
	        "--http 127.0.0.1:7482 (/readyz: 503 until the broker's work "
	        "socket answered, and\n"
	        "while draining). Several handlers in NQ_HANDLER are "
	        "separated by ','.\n",
	    .msgid = "NQ-WORKER-CONFIG",
	    .opts = own,
	    .nopts = sizeof own / sizeof *own,
	    .common = {NQI_COMMON_BASE(c), .token_file = &c->token_file},
	    .check = check_cb,
	    .arg = m,
	};
	return nqi_daemon_configure(&d, argc, argv, &c->config_values);
}

/* Descriptors 0-2 must be open: otherwise a pipe made for a command could
 * be given one of those numbers and be lost when it is moved there. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return;
}

/* The descriptor limit, raised to the hard limit; 0 when unknown. *was
 * gets the limit before (rlim_cur 0 when unknown). */
static uint64_t raise_nofile(struct rlimit *was)
{
	struct rlimit rl;
	*was = (struct rlimit){0, 0};
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	*was = rl;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX / 2 : rl.rlim_cur;
}

/*
 * Reserves descriptors for the jobs: WORKER_FDS_PER_JOB for each slot on
 * top of WORKER_FDS_BASE, so that HTTP, capped to what is left, can never
 * take what a job needs to start. Lowers --http-max-connections (logged)
 * when the limit cannot hold it beside the jobs. Returns 0, or the exit
 * status after saying why the limit cannot hold the jobs at all.
 */
static int fit_descriptors(worker_main *m)
{
	worker_conf *c = &m->conf;
	uint64_t nofile = raise_nofile(&m->nofile_was);
	uint64_t jobs = WORKER_FDS_BASE +
	                (uint64_t)WORKER_FDS_PER_JOB * (uint64_t)c->concurrency;
	bool http = c->http_addr && *c->http_addr;
	uint64_t left = nofile > jobs + NQI_HTTP_FDS_BASE
	                    ? nofile - jobs - NQI_HTTP_FDS_BASE
	                    : 0;
	if (nofile == 0 || (!http && nofile >= jobs) ||
	    (http && left >= (uint64_t)c->http_max_connections))
		goto fits;
	if (http && left >= WORKER_HTTP_CONNS_MIN) {
		nqi_warn("NQ-HTTP-CAP-LOWERED",
		    NQI_I("http_max_connections", c->http_max_connections),
		    NQI_U("to", left), NQI_U("nofile", nofile),
		    NQI_I("concurrency", c->concurrency),
		    NQI_S("note", "the descriptor limit keeps room for every "
		                  "slot's job; raise it (ulimit -n) for more"));
		c->http_max_connections = (int)left;
		goto fits;
	}
	fprintf(stderr,
	    "nq-worker: the descriptor limit (ulimit -n) is %llu, but "
	    "--concurrency %d needs about %llu descriptors%s; raise the limit "
	    "or lower --concurrency\n",
	    (unsigned long long)nofile, c->concurrency,
	    (unsigned long long)jobs, http ? " and HTTP some more" : "");
	return EXIT_USAGE;
fits:
	nqi_info("NQ-WORKER-FDS", NQI_U("nofile", nofile),
	    NQI_U("for_jobs", jobs),
	    NQI_I("http_max_connections", http ? c->http_max_connections : 0));
	return 0;
}

/* Takes the signals (nqi_signals_wait) until serve wakes it at the end:
 * the first stop signal starts the drain, a second one is logged. */
static void *signal_main(void *arg)
{
	worker_main *m = arg;
	int sig;
	bool draining = false;
	while ((sig = nqi_signals_wait()) != 0) {
		char name[32];
		snprintf(name, sizeof name, "SIG%s", sigabbrev_np(sig));
		nqi_info("NQ-WORKER-DRAIN", NQI_S("signal", name),
		    NQI_U("grace_ms", m->conf.grace_ms),
		    NQI_B(draining ? "already" : NULL, true));
		if (!draining)
			nq_worker_stop(m->w);
		draining = true;
	}
	return NULL;
}

/* The config was logged when it was read; this names what it became.
 * Handler commands are left out, since they may carry credentials, and
 * only their types are named. */
static void log_start(worker_main *m)
{
	char types[512] = "";
	size_t o = 0;
	for (size_t i = 0; i < m->nhandlers && o < sizeof types; i++)
		o += (size_t)snprintf(types + o, sizeof types - o, "%s%s",
		    i ? "," : "", m->handlers[i].type);
	nqi_info("NQ-WORKER-START", NQI_S("version", NQ_VERSION),
	    NQI_S("worker_id", nq_worker_id(m->w)),
	    NQI_S("token", m->token ? "<redacted>" : "none"),
	    NQI_S("handler_types", types));
}

/* The shard map given, or NULL for one broker. */
static const char *worker_brokers(const worker_conf *c)
{
	return c->brokers && *c->brokers ? c->brokers : NULL;
}

static int open_worker(worker_main *m)
{
	nq_worker_opts o = {
	    .conn = {.work_url = m->conf.work_url,
	        .results_url = m->conf.results_url,
	        .brokers = worker_brokers(&m->conf),
	        .token = m->token,
	        .tls_ca = m->conf.tls_ca,
	        .tls_cert = m->conf.tls_cert,
	        .tls_key = m->conf.tls_key,
	        .tls_server_name = m->conf.tls_server_name},
	    .queues = m->queues,
	    .nqueues = m->nqueues,
	    .concurrency = m->conf.concurrency,
	    .lease_ms = m->conf.lease_ms,
	    .grace_ms = m->conf.grace_ms,
	    .heartbeat_ms = m->conf.heartbeat_ms,
	};
	int rv = nq_worker_open(&m->w, &o);
	for (size_t i = 0; i < m->nhandlers; i++)
		m->handlers[i].grace_ms = m->conf.grace_ms;
	for (size_t i = 0; rv == NQ_OK && i < m->nhandlers; i++)
		rv = nq_worker_handle(m->w, m->handlers[i].type,
		    worker_handle_cb, &m->handlers[i]);
	if (rv != NQ_OK)
		nqi_error("NQ-WORKER-FAILED", NQI_S("step", "open"),
		    NQI_S("work", worker_brokers(&m->conf)
		                      ? worker_brokers(&m->conf)
		                      : m->conf.work_url),
		    NQI_S("error", nq_err_name(rv)));
	return rv;
}

/* Ends the commands whose jobs the drain released: SIGTERM, and SIGKILL
 * to whatever still runs after the grace period of a timeout. */
static void kill_children(worker_main *m)
{
	worker_children_close(&m->children, SIGTERM);
	if (worker_children_wait_empty(&m->children, WORKER_KILL_GRACE_MS))
		return;
	worker_children_signal(&m->children, SIGKILL);
	worker_children_wait_empty(&m->children, WORKER_KILL_GRACE_MS);
}

/* Serves /metrics, /healthz and /readyz for the open worker, and starts
 * the probe that decides readiness. */
static int start_obs(worker_main *m)
{
	char err[256];
	m->obs.w = m->w;
	m->obs.http_max_connections = (unsigned)m->conf.http_max_connections;
	m->obs.http_timeout_ms = m->conf.http_timeout_ms;
	m->obs.handlers = m->handlers;
	m->obs.nhandlers = m->nhandlers;
	m->obs.conn = (nq_client_opts){.work_url = m->conf.work_url,
	    .results_url = m->conf.results_url,
	    .brokers = worker_brokers(&m->conf),
	    .token = m->token,
	    .tls_ca = m->conf.tls_ca,
	    .tls_cert = m->conf.tls_cert,
	    .tls_key = m->conf.tls_key,
	    .tls_server_name = m->conf.tls_server_name};
	int rv = worker_obs_start(&m->obs, m->conf.http_addr, err, sizeof err);
	if (rv != NQ_OK) {
		nqi_error("NQ-WORKER-FAILED", NQI_S("step", "http"),
		    NQI_S("http", m->conf.http_addr),
		    NQI_S("error", nq_err_name(rv)));
		fprintf(stderr, "nq-worker: --http %s: %s\n", m->conf.http_addr,
		    err);
	} else if ((rv = nqi_daemon_ready(
	                m->conf.ready_file, err, sizeof err)) != NQ_OK) {
		nqi_error("NQ-WORKER-FAILED", NQI_S("step", "ready-file"),
		    NQI_S("err", err));
		worker_obs_stop(&m->obs);
	}
	return rv;
}

/*
 * Waits for handler callbacks that outlived the drain (nq_worker_close
 * leaves them running): their commands were killed, so they return soon,
 * and until they do they use the handlers that cleanup frees. Should one
 * not return in time, the handlers are kept to the end of the process.
 */
static void wait_handlers(worker_main *m)
{
	uint64_t until = nqi_mono_ms() + WORKER_HANDLERS_WAIT_MS;
	while (atomic_load(&m->stats.running) > 0 && nqi_mono_ms() < until)
		nng_msleep(10);
	m->handlers_busy = atomic_load(&m->stats.running) > 0;
	if (m->handlers_busy)
		nqi_warn("NQ-WORKER-HANDLERS-STUCK",
		    NQI_I("running", atomic_load(&m->stats.running)));
}

/* Runs until a signal has drained the worker; returns the exit status. */
static int serve(worker_main *m)
{
	int rv = open_worker(m);
	if (rv == NQ_OK)
		log_start(m);
	bool obs = rv == NQ_OK && (rv = start_obs(m)) == NQ_OK;
	if (rv == NQ_OK &&
	    pthread_create(&m->sig_thr, NULL, signal_main, m) != 0)
		rv = NQ_ENOMEM;
	m->sig_started = rv == NQ_OK;
	if (rv == NQ_OK) {
		rv = nq_worker_run(m->w);
		kill_children(m);
	}
	/* The drain is over and its completions are sent: closing the
	 * sockets is all that is left to do with the broker. */
	nqi_shutdown_watchdog_arm(
	    NQI_TEARDOWN_MS, "close sockets", rv == NQ_OK ? 0 : 1);
	if (obs)
		worker_obs_stop(&m->obs);
	nq_worker_close(m->w);
	nqi_shutdown_watchdog_disarm();
	wait_handlers(m);
	if (m->sig_started) {
		nqi_signals_wake(m->sig_thr);
		pthread_join(m->sig_thr, NULL);
	}
	pthread_mutex_lock(&m->stats.mtx);
	nqi_info("NQ-WORKER-STOP", NQI_U("done", m->stats.done),
	    NQI_U("failed", m->stats.failed),
	    NQI_U("released", m->stats.released),
	    NQI_S(rv ? "error" : NULL, nq_err_name(rv)));
	pthread_mutex_unlock(&m->stats.mtx);
	/* A worker that could not open took a flag it cannot use. */
	if (rv == NQ_EINVAL && !m->sig_started)
		return EXIT_USAGE;
	return rv == NQ_OK ? 0 : 1;
}

static void cleanup(worker_main *m)
{
	for (size_t i = 0; i < m->nhandlers; i++) {
		free((char *)m->handlers[i].type);
		nqi_prom_hist_free(m->handlers[i].duration_s);
	}
	free(m->handlers);
	free(m->queues);
	free(m->queue_buf);
	free(m->token);
	nqi_strlist_free(&m->conf.handlers);
	nqi_strlist_free(&m->conf.config_values);
}

int main(int argc, char **argv)
{
	worker_main m = {.conf = {.work_url = "tcp://127.0.0.1:7401",
	                     .results_url = "tcp://127.0.0.1:7402",
	                     .queues = "default",
	                     .concurrency = 1,
	                     .lease_ms = 30000,
	                     .grace_ms = 10000,
	                     .log_level = "info",
	                     .log_format = "text",
	                     .http_addr = "127.0.0.1:7482"}};
	ensure_std_fds();
	int rc = configure(&m, argc, argv);
	if (rc == 0)
		rc = fit_descriptors(&m);
	if (rc != 0) {
		cleanup(&m);
		return rc < 0 ? 0 : rc;
	}
	/* Before any thread exists, so that every thread inherits the mask
	 * and the signals reach only the sigwait thread. */
	nqi_signals_block();
	if (worker_children_init(&m.children, (size_t)m.conf.concurrency) !=
	    0) {
		cleanup(&m);
		return 1;
	}
	m.children.nofile = m.nofile_was;
	pthread_mutex_init(&m.stats.mtx, NULL);
	rc = serve(&m);
	if (m.handlers_busy)
		return rc; /* a handler still runs: its state stays */
	pthread_mutex_destroy(&m.stats.mtx);
	worker_children_destroy(&m.children);
	cleanup(&m);
	return rc;
}
