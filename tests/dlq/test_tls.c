/*
 * nq-dlq over TLS: its REP socket on tls+tcp:// with client certificates
 * required, reached by nqctl with the CA and its own certificate; other
 * clients are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlqt.h"

static int setup(void **state)
{
	return itest_setup(state);
}

/* A CA, a server certificate for "localhost" and a client certificate. */
static void make_certs(itest_env *e)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
	    "cd %s && ( "
	    "%s req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key "
	    "-out ca.pem -subj /CN=nq-dlq-test-ca && "
	    "%s req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
	    "-subj /CN=localhost && "
	    "printf 'subjectAltName=DNS:localhost\\n' > srv.ext && "
	    "%s x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out srv.pem -days 2 -extfile srv.ext && "
	    "%s req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr "
	    "-subj /CN=nq-operator && "
	    "%s x509 -req -in cli.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out cli.pem -days 2) > openssl.log 2>&1",
	    e->dir, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL);
	assert_int_equal(system(cmd), 0);
}

/* nqctl --dlq URL --timeout 2s [TLS flags...] dlq stats */
static int stats(itest_env *e, const char *url, bool with_cert)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	itest_run run;
	itest_path(e, "ca.pem", ca, sizeof ca);
	itest_path(e, "cli.pem", cert, sizeof cert);
	itest_path(e, "cli.key", key, sizeof key);
	const char *args[16] = {
	    "--dlq", url, "--timeout", "2s", "--tls-ca", ca};
	size_t n = 6;
	if (with_cert) {
		args[n++] = "--tls-cert";
		args[n++] = cert;
		args[n++] = "--tls-key";
		args[n++] = key;
	}
	args[n++] = "dlq";
	args[n++] = "stats";
	args[n] = NULL;
	assert_int_equal(itest_nqctl_argv(e, 20000, args, &run), 0);
	int code = run.code;
	itest_run_free(&run);
	return code;
}

static void test_dlq_tls_requires_client_certificates(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char url[ITEST_URL_MAX], plain[ITEST_URL_MAX], srv[PATH_MAX],
	    srvkey[PATH_MAX], ca[PATH_MAX], ready[PATH_MAX];
	itest_proc *p;
	make_certs(e);
	itest_path(e, "srv.pem", srv, sizeof srv);
	itest_path(e, "srv.key", srvkey, sizeof srvkey);
	itest_path(e, "ca.pem", ca, sizeof ca);
	itest_path(e, "dlq-tls.ready", ready, sizeof ready);
	assert_int_equal(dlqt_init(&t, e), 0);
	const char *argv[] = {ITEST_DLQ, "--listen", "tls+tcp://localhost:0",
	    "--data-dir", t.data_dir, "--http", t.http_addr, "--tls-cert", srv,
	    "--tls-key", srvkey, "--tls-ca", ca, "--ready-file", ready, NULL};
	assert_int_equal(itest_spawn(e, "dlq-tls", argv, NULL, &p), 0);
	assert_int_equal(itest_wait_bound(p, 20000), 0);
	assert_int_equal(itest_bound_url(p, "listen", url, sizeof url), 0);
	snprintf(
	    plain, sizeof plain, "tcp://127.0.0.1:%d", itest_url_port(url));
	uint64_t end = itest_now_ms() + 20000;
	int code;
	while ((code = stats(e, url, true)) != 0 && itest_now_ms() < end)
		itest_sleep_ms(100);
	assert_int_equal(code, 0);
	/* no client certificate, or no TLS at all: no answer */
	assert_int_equal(stats(e, url, false), 3);
	assert_int_equal(stats(e, plain, true), 3);
	assert_true(itest_alive(p));
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_dlq_tls_requires_client_certificates, setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
