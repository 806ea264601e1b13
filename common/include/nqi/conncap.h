/*
 * A cap on the connections of one nng socket, and what that cap and the
 * socket's message limit let connections make a service hold before they
 * are authenticated (nng allocates a whole message when its length header
 * arrives: connections x limit bytes at worst).
 */
#ifndef NQI_CONNCAP_H
#define NQI_CONNCAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nqi/url.h"

#include <nng/nng.h>

/* Default of --max-connections, per socket. */
#define NQI_CONNCAP_DEFAULT 256
/* Default of --conn-idle-timeout. */
#define NQI_CONN_IDLE_MS_DEFAULT (5ull * 60 * 1000)
/* Default of --recv-budget. */
#define NQI_RECV_BUDGET_DEFAULT (8ull << 30)

typedef struct nqi_conncap {
	const char *what; /* the socket's flag name, for the log */
	int max;          /* connections at once; more are closed */
	atomic_int open;  /* from ADD_PRE to REM_POST, refused ones too */
	atomic_uint_fast64_t refused;
	atomic_uint_fast64_t logged_ms;       /* last NQ-CONN-REFUSED line */
	atomic_uint_fast64_t evict_logged_ms; /* last NQ-CONN-EVICTED line */
} nqi_conncap;

void nqi_conncap_init(nqi_conncap *c, const char *what, int max);
/* Counts a new connection; false (counted as refused, a warning logged
 * at most every 10 s) when max connections are open already, and then
 * the caller closes it. */
bool nqi_conncap_admit(nqi_conncap *c);
/* Counts a connection refused at the cap (a warning at most every 10 s);
 * for a caller that counts open itself. */
void nqi_conncap_refuse(nqi_conncap *c);
/* Logs that a connection was closed to make room for a new one at the
 * cap, evicted so far (a warning at most every 10 s). */
void nqi_conncap_log_evicted(nqi_conncap *c, uint64_t evicted);
/* At NNG_PIPE_EV_ADD_PRE: nqi_conncap_admit, and closes p when it is
 * refused. Returns whether p was kept. */
bool nqi_conncap_add(nqi_conncap *c, nng_pipe p);
/* At NNG_PIPE_EV_REM_POST (nng sends one for every ADD_PRE). */
void nqi_conncap_gone(nqi_conncap *c);
/* Counts c with ADD_PRE and REM_POST notices of s, for a socket that
 * needs no other notices; before s dials or listens. An nng error. */
int nqi_conncap_watch(nng_socket s, nqi_conncap *c);

/* What the cap and the idle rule of one socket did, for /metrics. */
typedef struct nqi_conn_counts {
	const char *socket; /* the value of the label "socket" */
	uint64_t open, refused, idle_closed;
	bool idle_rule; /* the socket has one: idle_closed is a sample */
	uint64_t evicted;
	bool evicts; /* the cap makes room (nqi_rep): evicted is a sample */
} nqi_conn_counts;

typedef struct nqi_prom nqi_prom;
/* Writes the families nq_connections, nq_connections_refused_total,
 * nq_connections_idle_closed_total and nq_connections_evicted_total with
 * one sample per socket of s[0..n), in that order: the same rows on
 * every daemon. 0 or an nqi_prom_*
 * error. */
int nqi_conncap_prom(nqi_prom *p, const nqi_conn_counts *s, size_t n);

/* NULL when --max-connections and --conn-idle-timeout hold values a
 * daemon can use, else why not. */
const char *nqi_conncap_flags_check(int max_conns, uint64_t idle_ms);

/* One socket in a budget: its message limit and its connection cap. */
typedef struct nqi_conncap_share {
	const char *what;
	size_t recv_max;
	int cap; /* asked for; nqi_conncap_fit may lower it */
} nqi_conncap_share;

/*
 * Lowers the caps of s[0..n) so that the sum of cap x recv_max is at most
 * budget: each socket may take an equal share of the budget, and what a
 * socket leaves of its share goes to the others, so the sockets of small
 * messages keep their cap and only those of large ones lose connections.
 * NQ_EINVAL, with err saying so, when a socket would get no connection.
 */
int nqi_conncap_fit(
    nqi_conncap_share *s, size_t n, uint64_t budget, char *err, size_t len);
/* Logs NQ-CONN-CAP-LOWERED when nqi_conncap_fit lowered s below asked. */
void nqi_conncap_log_lowered(
    const nqi_conncap_share *s, int asked, uint64_t budget);
/* The socket flags of a daemon: its addresses (nqi_url_check_flags),
 * --max-connections and --conn-idle-timeout (nqi_conncap_flags_check),
 * and the caps of its sockets within --recv-budget (nqi_conncap_fit,
 * which may lower them). NULL when all hold, else why (buf when it was
 * written there). */
typedef struct nqi_socket_flags {
	const nqi_url_flag *urls;
	size_t nurls;
	int max_conns;
	uint64_t idle_ms;
	nqi_conncap_share *shares;
	size_t nshares;
	uint64_t budget;
} nqi_socket_flags;
const char *nqi_socket_flags_check(
    const nqi_socket_flags *f, char *buf, size_t len);
/* The sum of cap x recv_max of s[0..n). */
uint64_t nqi_conncap_worst(const nqi_conncap_share *s, size_t n);

#endif
