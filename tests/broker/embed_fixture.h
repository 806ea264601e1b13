/* What the embedded broker's tests share: a broker on a fresh store in a
 * temporary directory, restarted by closing and opening it, and a request
 * sent as the bytes the sockets carry. */
#ifndef NQ_TESTS_EMBED_FIXTURE_H
#define NQ_TESTS_EMBED_FIXTURE_H

#include <stdbool.h>

#include "embed.h"
#include "nqi/codec.h"

typedef struct fixture {
	char dir[64];
	nq_embedded_broker *e;
} fixture;

/* cmocka setup and teardown; name tells the test's directories apart. */
int embed_fixture_setup(void **st, const char *name);
int embed_fixture_teardown(void **st);
void embed_fixture_restart(fixture *f);
/* Sends req (version set here) to the api socket, or the work socket. */
Nq__V1__Reply *embed_fixture_call(fixture *f, Nq__V1__Request *req, bool work);

#endif
