#include "nqi/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nqi/http.h"
#include "nqi/log.h"
#include "nqi/tls.h"
#include "nqi/util.h"

/* The common flags: where each is in nqi_daemon_common, its kind (the
 * type its member points to), and its help. */
static const struct common_flag {
	const char *name;
	size_t off;
	const char *help;
	nqi_opt_kind kind;
} common_flags[] = {
    {"data-dir", offsetof(nqi_daemon_common, data_dir),
        "directory of the LMDB store", NQI_OPT_STR},
    {"sync", offsetof(nqi_daemon_common, sync),
        "always (fsync before confirming) or none (benchmarks only: a "
        "crash loses recent writes)",
        NQI_OPT_STR},
    {"producer-tokens", offsetof(nqi_daemon_common, producer_tokens),
        "file (or env:NAME) of producer tokens, one a line", NQI_OPT_STR},
    {"worker-tokens", offsetof(nqi_daemon_common, worker_tokens),
        "file (or env:NAME) of worker tokens", NQI_OPT_STR},
    {"admin-tokens", offsetof(nqi_daemon_common, admin_tokens),
        "file (or env:NAME) of admin tokens", NQI_OPT_STR},
    {"token-file", offsetof(nqi_daemon_common, token_file),
        "file (or env:NAME) of the token presented to the service this "
        "one dials",
        NQI_OPT_STR},
    {"tls-cert", offsetof(nqi_daemon_common, tls_cert),
        "PEM certificate of this service: for its tls+tcp:// and https "
        "endpoints, and shown to the services it dials over TLS",
        NQI_OPT_STR},
    {"tls-key", offsetof(nqi_daemon_common, tls_key), "PEM key of --tls-cert",
        NQI_OPT_STR},
    {"tls-ca", offsetof(nqi_daemon_common, tls_ca),
        "PEM CA: clients must present a certificate it signed, and the "
        "services this one dials over TLS are verified with it",
        NQI_OPT_STR},
    {"config", offsetof(nqi_daemon_common, config),
        "file of name = value lines, read before the environment and "
        "flags",
        NQI_OPT_STR},
    {"log-level", offsetof(nqi_daemon_common, log_level),
        "debug, info, warn or error", NQI_OPT_STR},
    {"log-format", offsetof(nqi_daemon_common, log_format), "text or json",
        NQI_OPT_STR},
    {"ready-file", offsetof(nqi_daemon_common, ready_file),
        "once ready, write the address every socket bound here (NAME=URL "
        "lines; port 0 in an address picks a free port)",
        NQI_OPT_STR},
    {"http-max-connections", offsetof(nqi_daemon_common, http_max_connections),
        "HTTP connections open at once; more are closed as soon as "
        "accepted (nq_http_refused_total)",
        NQI_OPT_INT},
    {"http-timeout", offsetof(nqi_daemon_common, http_timeout_ms),
        "an HTTP connection that sends or takes nothing this long (half a "
        "request, an idle keep-alive) is closed; whole seconds",
        NQI_OPT_DURATION},
};

#define NCOMMON (sizeof common_flags / sizeof *common_flags)

/* The target of a common flag: every member is a pointer, and pointers
 * to objects share one representation here. */
static void *common_value(
    const nqi_daemon_common *c, const struct common_flag *f)
{
	void *v;
	memcpy(&v, (const char *)c + f->off, sizeof v);
	return v;
}

int nqi_daemon_opts(const nqi_daemon_spec *d, nqi_opt **out, size_t *n)
{
	nqi_opt *o = calloc(d->nopts + NCOMMON, sizeof *o);
	size_t k = d->nopts;
	if (!o)
		return NQ_ENOMEM;
	if (d->nopts)
		memcpy(o, d->opts, d->nopts * sizeof *o);
	for (size_t i = 0; i < NCOMMON; i++) {
		const struct common_flag *f = &common_flags[i];
		void *v = common_value(&d->common, f);
		if (v)
			o[k++] = (nqi_opt){f->name, f->kind, v, f->help, false};
	}
	*out = o;
	*n = k;
	return NQ_OK;
}

static void usage(const nqi_daemon_spec *d, FILE *f, const nqi_opt *o, size_t n)
{
	fprintf(f,
	    "%s\nEvery flag also reads from NQ_<FLAG>, e.g. "
	    "NQ_LOG_LEVEL.\n",
	    d->usage);
	nqi_opts_usage(o, n, f);
}

/* The HTTP limits; NULL when they are fine. */
static const char *check_http(const nqi_daemon_common *c)
{
	if (c->http_max_connections &&
	    (*c->http_max_connections < 1 ||
	        *c->http_max_connections > NQI_HTTP_MAX_CONNECTIONS_MAX))
		return "--http-max-connections must be from 1 to 65536";
	if (c->http_timeout_ms && *c->http_timeout_ms < 1000)
		return "--http-timeout must be at least 1s";
	if (c->http_timeout_ms && *c->http_timeout_ms > 86400000)
		return "--http-timeout must be at most 1 day";
	return NULL;
}

/* Writes the defaults of the HTTP limits, defined once in http.h, into
 * targets that hold none. */
static void http_defaults(const nqi_daemon_common *c)
{
	if (c->http_max_connections && *c->http_max_connections == 0)
		*c->http_max_connections = NQI_HTTP_MAX_CONNECTIONS_DEFAULT;
	if (c->http_timeout_ms && *c->http_timeout_ms == 0)
		*c->http_timeout_ms = NQI_HTTP_TIMEOUT_DEFAULT_MS;
}

/* The checks of the common flags, then the daemon's own. */
static int check(const nqi_daemon_spec *d, char *why, size_t len)
{
	const nqi_daemon_common *c = &d->common;
	const char *bad = NULL;
	if (c->sync && strcmp(*c->sync, "always") != 0 &&
	    strcmp(*c->sync, "none") != 0)
		bad = "--sync must be always or none";
	if (!bad)
		bad = check_http(c);
	if (!bad && c->log_level && c->log_format)
		bad = nqi_log_configure(*c->log_level, *c->log_format);
	if (!bad && d->check)
		bad = d->check(d->arg, why, len);
	if (bad && bad != why)
		snprintf(why, len, "%s", bad);
	return bad ? NQ_EINVAL : NQ_OK;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

static int configure(const nqi_daemon_spec *d, const nqi_opt *o, size_t n,
    int argc, char **argv, nqi_strlist *keep)
{
	char err[256];
	int next;
	if (wants_help(argc, argv)) {
		usage(d, stdout, o, n);
		return -1;
	}
	const char *file = nqi_opts_peek(argc, argv, "config");
	if (file && d->common.config &&
	    nqi_opts_load_file(o, n, file, keep, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", d->prog, err);
		return 2;
	}
	if (nqi_opts_parse(o, n, argc, argv, 1, true, &next, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", d->prog, err);
		usage(d, stderr, o, n);
		return 2;
	}
	if (next < argc)
		snprintf(err, sizeof err, "unexpected argument %s", argv[next]);
	if (next < argc || check(d, err, sizeof err) != NQ_OK) {
		fprintf(stderr, "%s: %s\nRun '%s --help' for the flags.\n",
		    d->prog, err, d->prog);
		return 2;
	}
	nqi_log_opts(d->msgid, NULL, 0, o, n);
	if (d->common.sync && strcmp(*d->common.sync, "none") == 0)
		nqi_warn("NQ-SYNC-NONE", NQI_S("sync", "none"),
		    NQI_S("note",
		        "writes are confirmed before they are on "
		        "disk; a crash loses them (benchmarks only)"));
	return 0;
}

int nqi_daemon_configure(
    const nqi_daemon_spec *d, int argc, char **argv, nqi_strlist *keep)
{
	nqi_opt *o;
	size_t n;
	http_defaults(&d->common);
	if (nqi_daemon_opts(d, &o, &n) != NQ_OK) {
		fprintf(stderr, "%s: out of memory\n", d->prog);
		return 1;
	}
	int rv = configure(d, o, n, argc, argv, keep);
	free(o);
	return rv;
}

int nqi_daemon_auth(nqi_auth **out, const nqi_daemon_common *c,
    const char *const *urls, size_t n)
{
	char err[256] = "";
	int rv = nqi_auth_load(out, *c->producer_tokens, *c->worker_tokens,
	    *c->admin_tokens, err, sizeof err);
	if (rv != 0) {
		nqi_error("NQ-AUTH-CONFIG", NQI_S("err", err));
		return rv;
	}
	for (size_t i = 0; i < n && nqi_auth_open(*out); i++) {
		if (urls[i] && nqi_url_is_public(urls[i])) {
			nqi_warn("NQ-AUTH-OPEN", NQI_S("url", urls[i]),
			    NQI_S("note", "no token files are set: anyone who "
			                  "reaches this address may use it"));
			break;
		}
	}
	return NQ_OK;
}

#define OPT_VALUE_MAX 256

void nqi_log_opts(const char *msgid, const nqi_log_field *extra, size_t nextra,
    const nqi_opt *o, size_t n)
{
	nqi_log_field *f = calloc(nextra + n, sizeof *f);
	char *vals = calloc(n ? n : 1, OPT_VALUE_MAX);
	if (!f || !vals) {
		free(f);
		free(vals);
		nqi_info(msgid, NQI_S("config", "(out of memory)"));
		return;
	}
	for (size_t i = 0; i < nextra; i++)
		f[i] = extra[i];
	for (size_t i = 0; i < n; i++) {
		char *v = vals + i * OPT_VALUE_MAX;
		nqi_opts_value(&o[i], v, OPT_VALUE_MAX);
		f[nextra + i] = NQI_S(o[i].name, v);
	}
	nqi_log(NQI_LOG_INFO, msgid, f, nextra + n);
	free(f);
	free(vals);
}

/* ---- signals ---- */

/*
 * Every signal a process manager or a terminal sends to a daemon, and
 * what it does: the stop signals end nqi_signals_wait; the others are
 * logged (NQ-SIGNAL) and ignored, or given to the hook a daemon set with
 * nqi_signals_on. Left at their default, each of the others would end the
 * process without a word.
 */
static const struct daemon_signal {
	int sig;
	const char *name;
	bool stops;
} daemon_signals[] = {
    {SIGTERM, "TERM", true},
    {SIGINT, "INT", true},
    {SIGQUIT, "QUIT", true},
    {SIGHUP, "HUP", false},
    {SIGUSR1, "USR1", false},
    {SIGUSR2, "USR2", false},
    {SIGALRM, "ALRM", false},
};

#define NSIGNALS (sizeof daemon_signals / sizeof *daemon_signals)

static struct {
	pthread_mutex_t mu;
	nqi_signal_fn fn[NSIGNALS];
	void *arg[NSIGNALS];
	atomic_bool woken; /* nqi_signals_wake sent the SIGUSR1 */
} signal_hooks = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < NSIGNALS; i++)
		sigaddset(set, daemon_signals[i].sig);
}

/* The index of sig in daemon_signals; NSIGNALS when it is not there. */
static size_t signal_index(int sig)
{
	size_t i = 0;
	while (i < NSIGNALS && daemon_signals[i].sig != sig)
		i++;
	return i;
}

void nqi_signals_block(void)
{
	sigset_t set;
	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int nqi_signals_on(int sig, nqi_signal_fn fn, void *arg)
{
	size_t i = signal_index(sig);
	if (i == NSIGNALS || daemon_signals[i].stops)
		return NQ_EINVAL;
	pthread_mutex_lock(&signal_hooks.mu);
	signal_hooks.fn[i] = fn;
	signal_hooks.arg[i] = arg;
	pthread_mutex_unlock(&signal_hooks.mu);
	return NQ_OK;
}

/* Logs a signal that does not stop the daemon and runs its hook. */
static void signal_other(size_t i)
{
	pthread_mutex_lock(&signal_hooks.mu);
	nqi_signal_fn fn = signal_hooks.fn[i];
	void *arg = signal_hooks.arg[i];
	pthread_mutex_unlock(&signal_hooks.mu);
	nqi_info("NQ-SIGNAL", NQI_S("signal", daemon_signals[i].name),
	    NQI_S("action", fn ? "handled" : "ignored"));
	if (fn)
		fn(daemon_signals[i].sig, arg);
}

int nqi_signals_wait(void)
{
	sigset_t set;
	int sig = 0;
	signal_set(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1 &&
		    atomic_exchange(&signal_hooks.woken, false))
			return 0;
		size_t i = signal_index(sig);
		if (i < NSIGNALS && daemon_signals[i].stops)
			return sig;
		if (i < NSIGNALS)
			signal_other(i);
	}
}

void nqi_signals_wake(pthread_t waiter)
{
	atomic_store(&signal_hooks.woken, true);
	pthread_kill(waiter, SIGUSR1);
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on the monotonic clock once started */
	bool started, armed;
	uint64_t deadline_ms, armed_ms;
	const char *step;
	int status;
} watchdog = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog_main(void *arg)
{
	pthread_mutex_lock(&watchdog.mu);
	for (;;) {
		uint64_t now = nqi_mono_ms();
		if (watchdog.armed && now >= watchdog.deadline_ms)
			break;
		if (!watchdog.armed) {
			pthread_cond_wait(&watchdog.cv, &watchdog.mu);
			continue;
		}
		nqi_cond_wait_mono(
		    &watchdog.cv, &watchdog.mu, watchdog.deadline_ms);
	}
	nqi_warn("NQ-SHUTDOWN-STUCK", NQI_S("step", watchdog.step),
	    NQI_U("waited_ms", nqi_mono_ms() - watchdog.armed_ms),
	    NQI_I("exit", watchdog.status));
	_exit(watchdog.status);
}

/* Starts the watchdog's thread; false when it cannot (then shutdown
 * simply runs unguarded). */
static bool watchdog_start_locked(void)
{
	pthread_t t;
	if (watchdog.started)
		return true;
	nqi_cond_init_mono(&watchdog.cv);
	if (pthread_create(&t, NULL, watchdog_main, NULL) != 0) {
		pthread_cond_destroy(&watchdog.cv);
		return false;
	}
	pthread_detach(t);
	watchdog.started = true;
	return true;
}

void nqi_shutdown_watchdog_arm(uint64_t ms, const char *step, int status)
{
	pthread_mutex_lock(&watchdog.mu);
	if (watchdog_start_locked()) {
		watchdog.armed = true;
		watchdog.armed_ms = nqi_mono_ms();
		watchdog.deadline_ms = watchdog.armed_ms + ms;
		watchdog.step = step;
		watchdog.status = status;
		pthread_cond_signal(&watchdog.cv);
	}
	pthread_mutex_unlock(&watchdog.mu);
}

void nqi_shutdown_watchdog_disarm(void)
{
	pthread_mutex_lock(&watchdog.mu);
	watchdog.armed = false;
	if (watchdog.started)
		pthread_cond_signal(&watchdog.cv);
	pthread_mutex_unlock(&watchdog.mu);
}

/* ---- bound addresses ---- */

#define BOUND_MAX 16 /* more sockets than any daemon has */
#define BOUND_URL_MAX 320

static struct {
	pthread_mutex_t mu;
	size_t n;
	struct {
		char name[32];
		char url[BOUND_URL_MAX];
	} v[BOUND_MAX];
} bound = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Where the host of url starts: after "scheme://", else at the start. */
static const char *url_host(const char *url)
{
	const char *sep = strstr(url, "://");
	return sep ? sep + 3 : url;
}

void nqi_url_set_port(const char *url, int port, char *out, size_t len)
{
	const char *h = url_host(url);
	const char *p = *h == '[' ? strchr(h, ']') : h;
	if (port >= 0 && p)
		p += strcspn(p, ":/");
	if (port < 0 || !p || *p != ':') {
		snprintf(out, len, "%s", url);
		return;
	}
	const char *rest = p + 1 + strspn(p + 1, "0123456789");
	snprintf(out, len, "%.*s:%d%s", (int)(p - url), url, port, rest);
}

void nqi_daemon_bound(const char *name, const char *url, int port)
{
	char full[BOUND_URL_MAX];
	nqi_url_set_port(url, port, full, sizeof full);
	nqi_info("NQ-LISTENING", NQI_S("socket", name), NQI_S("url", full));
	pthread_mutex_lock(&bound.mu);
	if (bound.n < BOUND_MAX) {
		snprintf(
		    bound.v[bound.n].name, sizeof bound.v[0].name, "%s", name);
		snprintf(
		    bound.v[bound.n].url, sizeof bound.v[0].url, "%s", full);
		bound.n++;
	}
	pthread_mutex_unlock(&bound.mu);
}

void nqi_daemon_listener(const char *name, const char *url, nng_listener l)
{
	nng_sockaddr sa;
	int port = -1;
	if (nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET)
			port = ntohs(sa.s_in.sa_port);
		else if (sa.s_family == NNG_AF_INET6)
			port = ntohs(sa.s_in6.sa_port);
	}
	nqi_daemon_bound(name, url, port);
}

int nqi_daemon_ready(const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	if (!path || !*path)
		return NQ_OK;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(
		    err, errlen, "--ready-file %s: %s", tmp, strerror(errno));
		return NQ_EUNAVAIL;
	}
	pthread_mutex_lock(&bound.mu);
	for (size_t i = 0; i < bound.n; i++)
		fprintf(f, "%s=%s\n", bound.v[i].name, bound.v[i].url);
	pthread_mutex_unlock(&bound.mu);
	bool ok = fflush(f) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(
		    err, errlen, "--ready-file %s: %s", path, strerror(errno));
		unlink(tmp);
		return NQ_EUNAVAIL;
	}
	return NQ_OK;
}
