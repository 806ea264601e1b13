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

#endif
