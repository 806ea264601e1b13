/* Counting the connections of an nng socket. A stop uses the count to know
 * whether a reply can still arrive: closing a socket as one arrives can
 * hang nng 1.5's close, but with no connection up none can. */
#ifndef NQI_CONNS_H
#define NQI_CONNS_H

#include <nng/nng.h>
#include <stdatomic.h>

/* Keeps *count at the number of s's connections from now on; call before
 * dialing or listening. *count must outlive s. Returns an nng error. */
int nqi_conns_track(nng_socket s, atomic_int *count);

#endif
