#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "embed_fixture.h"

int embed_fixture_setup(void **st, const char *name)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/nq-test-%s-XXXXXX", name);
	if (!mkdtemp(f->dir) || broker_embed_open(&f->e, f->dir) != 0) {
		free(f);
		return -1;
	}
	*st = f;
	return 0;
}

int embed_fixture_teardown(void **st)
{
	fixture *f = *st;
	char cmd[128];
	broker_embed_close(f->e);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	int rv = system(cmd) == 0 ? 0 : -1;
	free(f);
	return rv;
}

void embed_fixture_restart(fixture *f)
{
	broker_embed_close(f->e);
	assert_int_equal(broker_embed_open(&f->e, f->dir), 0);
}

Nq__V1__Reply *embed_fixture_call(fixture *f, Nq__V1__Request *req, bool work)
{
	uint8_t *in, *out;
	size_t inlen, outlen;
	req->version = 1;
	assert_int_equal(nqi_buf_pack(&req->base, &in, &inlen), 0);
	assert_int_equal(
	    broker_embed_request(f->e, in, inlen, work, &out, &outlen), 0);
	free(in);
	Nq__V1__Reply *r = nqi_reply_unpack(out, outlen);
	free(out);
	assert_non_null(r);
	return r;
}
