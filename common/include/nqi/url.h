/* nq addresses: which URLs a client may dial and a daemon may listen on. */
#ifndef NQI_URL_H
#define NQI_URL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Checks that url is an address nq can use: a transport nq is built with
 * (tcp, tls+tcp, ws, wss, ipc, abstract, inproc; tcp4, ws6, ... too), and
 * for the network ones a host and a port from 1 to 65535 (to listen, the
 * host may be empty and the port 0: the kernel picks one). Returns 0, or
 * NQ_EINVAL with the reason, naming url, in why (len bytes).
 */
int nqi_url_check(const char *url, bool listen, char *why, size_t len);

/* An address flag of a program and its value. */
typedef struct nqi_url_flag {
	const char *flag; /* as the user writes it: "--api" */
	const char *url;  /* NULL or "": not given (or turned off) */
	bool listen;      /* a daemon listens on it; else it is dialed */
} nqi_url_flag;

/*
 * Checks every given URL of the n flags with nqi_url_check, so that a
 * wrong address is refused at start, naming its flag, before anything is
 * bound or dialed. Returns NULL when all are fine, else why (len bytes),
 * "--api 'http://x:1': nq does not speak http://; ...".
 */
const char *nqi_url_check_flags(
    const nqi_url_flag *f, size_t n, char *why, size_t len);

#endif
