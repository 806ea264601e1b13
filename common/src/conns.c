#include "nqi/conns.h"

/* ADD_PRE, not ADD_POST: nng pairs every ADD_PRE with a REM_POST (a pipe
 * the protocol rejects gets no ADD_POST), and it comes before the protocol
 * starts sending on the pipe. */
static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	atomic_fetch_add((atomic_int *)arg, ev == NNG_PIPE_EV_ADD_PRE ? 1 : -1);
}

int nqi_conns_track(nng_socket s, atomic_int *count)
{
	int rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, on_pipe, count);
	return rv ? rv
	          : nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, on_pipe, count);
}
