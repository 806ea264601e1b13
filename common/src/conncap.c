#include "nqi/conncap.h"

#include <stdio.h>

#include "nq/nq.h"
#include "nqi/log.h"
#include "nqi/prom.h"
#include "nqi/util.h"

#define REFUSED_LOG_EVERY_MS 10000

void nqi_conncap_init(nqi_conncap *c, const char *what, int max)
{
	c->what = what;
	c->max = max;
	atomic_init(&c->open, 0);
	atomic_init(&c->refused, 0);
	atomic_init(&c->logged_ms, 0);
	atomic_init(&c->evict_logged_ms, 0);
}

/* Whether a line is due, at most one per REFUSED_LOG_EVERY_MS (taken
 * then): a crowd is told, not echoed. */
static bool log_due(atomic_uint_fast64_t *logged_ms)
{
	uint64_t now = nqi_mono_ms(), last = atomic_load(logged_ms);
	if (last && now - last < REFUSED_LOG_EVERY_MS)
		return false;
	return atomic_compare_exchange_strong(logged_ms, &last, now);
}

static void log_refused(nqi_conncap *c)
{
	if (log_due(&c->logged_ms))
		nqi_warn("NQ-CONN-REFUSED", NQI_S("socket", c->what),
		    NQI_I("max_connections", c->max),
		    NQI_U("refused", atomic_load(&c->refused)));
}

void nqi_conncap_log_evicted(nqi_conncap *c, uint64_t evicted)
{
	if (log_due(&c->evict_logged_ms))
		nqi_warn("NQ-CONN-EVICTED", NQI_S("socket", c->what),
		    NQI_I("max_connections", c->max),
		    NQI_U("evicted", evicted));
}

void nqi_conncap_refuse(nqi_conncap *c)
{
	atomic_fetch_add(&c->refused, 1);
	log_refused(c);
}

bool nqi_conncap_admit(nqi_conncap *c)
{
	int open = atomic_fetch_add(&c->open, 1) + 1;
	if (c->max <= 0 || open <= c->max)
		return true;
	nqi_conncap_refuse(c);
	return false;
}

bool nqi_conncap_add(nqi_conncap *c, nng_pipe p)
{
	bool kept = nqi_conncap_admit(c);
	if (!kept)
		nng_pipe_close(p);
	return kept;
}

void nqi_conncap_gone(nqi_conncap *c)
{
	atomic_fetch_sub(&c->open, 1);
}

static void watch_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	if (ev == NNG_PIPE_EV_ADD_PRE)
		nqi_conncap_add(arg, p);
	else
		nqi_conncap_gone(arg);
}

int nqi_conncap_watch(nng_socket s, nqi_conncap *c)
{
	int rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, watch_cb, c);
	return rv ? rv : nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, watch_cb, c);
}

/* The families nqi_conncap_prom writes, in order. */
static const struct {
	const char *name;
	nqi_prom_type type;
	const char *help;
} conn_families[] = {
    {"nq_connections", NQI_PROM_GAUGE, "Connections open now, per socket."},
    {"nq_connections_refused_total", NQI_PROM_COUNTER,
        "Connections closed at once: --max-connections were open."},
    {"nq_connections_idle_closed_total", NQI_PROM_COUNTER,
        "Connections closed after --conn-idle-timeout without a request "
        "(a socket without that rule has no sample)."},
    {"nq_connections_evicted_total", NQI_PROM_COUNTER,
        "Connections closed to make room for a new one at "
        "--max-connections: the one idle longest with no request in "
        "progress (a socket that only refuses has no sample)."},
};

/* The sample of family k for c; false when c has none. */
static bool conn_value(const nqi_conn_counts *c, size_t k, double *v)
{
	const uint64_t of[] = {c->open, c->refused, c->idle_closed, c->evicted};
	const bool has[] = {true, true, c->idle_rule, c->evicts};
	*v = (double)of[k];
	return has[k];
}

int nqi_conncap_prom(nqi_prom *p, const nqi_conn_counts *s, size_t n)
{
	int rv = 0;
	double v;
	for (size_t k = 0;
	     rv == 0 && k < sizeof conn_families / sizeof *conn_families; k++) {
		const char *name = conn_families[k].name;
		rv = nqi_prom_family(
		    p, name, conn_families[k].type, conn_families[k].help);
		for (size_t i = 0; rv == 0 && i < n; i++)
			if (conn_value(&s[i], k, &v))
				rv = nqi_prom_sample(p, name,
				    (const char *const[]){
				        "socket", s[i].socket, NULL},
				    v);
	}
	return rv;
}

const char *nqi_conncap_flags_check(int max_conns, uint64_t idle_ms)
{
	if (max_conns < 1 || max_conns > 1000000)
		return "--max-connections must be 1..1000000";
	if (idle_ms != 0 && idle_ms < 100)
		return "--conn-idle-timeout must be 0 (off) or at least 100ms";
	return NULL;
}

void nqi_conncap_log_lowered(
    const nqi_conncap_share *s, int asked, uint64_t budget)
{
	if (s->cap < asked)
		nqi_warn("NQ-CONN-CAP-LOWERED", NQI_S("socket", s->what),
		    NQI_I("max_connections", s->cap), NQI_I("asked", asked),
		    NQI_U("recv_max", s->recv_max),
		    NQI_U("recv_budget", budget));
}

uint64_t nqi_conncap_worst(const nqi_conncap_share *s, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (uint64_t)s[i].cap * s[i].recv_max;
	return sum;
}

/* The socket not yet fitted with the smallest messages, or n. */
static size_t smallest_left(
    const nqi_conncap_share *s, size_t n, const bool *done)
{
	size_t best = n;
	for (size_t i = 0; i < n; i++)
		if (!done[i] && (best == n || s[i].recv_max < s[best].recv_max))
			best = i;
	return best;
}

int nqi_conncap_fit(
    nqi_conncap_share *s, size_t n, uint64_t budget, char *err, size_t len)
{
	bool done[16] = {false};
	uint64_t left = budget;
	if (n > sizeof done / sizeof *done)
		return NQ_EINVAL;
	for (size_t k = n, i; (i = smallest_left(s, n, done)) < n; k--) {
		uint64_t share = left / k, fits = share / s[i].recv_max;
		if (fits < (uint64_t)s[i].cap)
			s[i].cap = (int)fits;
		if (s[i].cap < 1) {
			snprintf(err, len,
			    "--recv-budget %llu leaves the %s socket no "
			    "connection: one may send %zu bytes",
			    (unsigned long long)budget, s[i].what,
			    s[i].recv_max);
			return NQ_EINVAL;
		}
		left -= (uint64_t)s[i].cap * s[i].recv_max;
		done[i] = true;
	}
	return NQ_OK;
}

const char *nqi_socket_flags_check(
    const nqi_socket_flags *f, char *buf, size_t len)
{
	const char *bad = nqi_url_check_flags(f->urls, f->nurls, buf, len);
	if (!bad)
		bad = nqi_conncap_flags_check(f->max_conns, f->idle_ms);
	if (!bad && nqi_conncap_fit(
	                f->shares, f->nshares, f->budget, buf, len) != NQ_OK)
		bad = buf;
	return bad;
}
