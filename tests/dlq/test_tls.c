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

/* Starts nq-dlq on tls+tcp://localhost, a port of its choosing, with client
 * certificates required and the extra flags; url gets the URL it bound. */
static itest_proc *start_tls_dlq(
    itest_env *e, dlqt *t, const char *const *extra, char *url, size_t len)
{
	char srv[PATH_MAX], srvkey[PATH_MAX], ca[PATH_MAX], ready[PATH_MAX];
	const char *argv[32] = {NULL};
	size_t n = 0;
	itest_proc *p;
	itest_path(e, "srv.pem", srv, sizeof srv);
	itest_path(e, "srv.key", srvkey, sizeof srvkey);
	itest_path(e, "ca.pem", ca, sizeof ca);
	itest_path(e, "dlq-tls.ready", ready, sizeof ready);
	assert_int_equal(dlqt_init(t, e), 0);
	const char *base[] = {ITEST_DLQ, "--listen", "tls+tcp://localhost:0",
	    "--data-dir", t->data_dir, "--http", t->http_addr, "--tls-cert",
	    srv, "--tls-key", srvkey, "--tls-ca", ca, "--ready-file", ready,
	    NULL};
	for (const char *const *a = base; *a; a++)
		argv[n++] = *a;
	for (; extra && *extra && n < 31; extra++)
		argv[n++] = *extra;
	assert_int_equal(itest_spawn(e, "dlq-tls", argv, NULL, &p), 0);
	assert_int_equal(itest_wait_bound(p, 20000), 0);
	assert_int_equal(itest_bound_url(p, "listen", url, len), 0);
	return p;
}

/* nqctl --dlq URL --timeout 2s --tls-ca CA --tls-cert <cert and key in
 * one file> [--token-file TOKEN] --json dlq SUB */
static int one_file_run(itest_env *e, const char *url, const char *token,
    const char *sub, itest_run *run)
{
	char ca[PATH_MAX], both[PATH_MAX];
	itest_path(e, "ca.pem", ca, sizeof ca);
	itest_path(e, "cli-both.pem", both, sizeof both);
	const char *args[16] = {"--dlq", url, "--timeout", "2s", "--tls-ca", ca,
	    "--tls-cert", both, "--json"};
	size_t n = 9;
	if (token) {
		args[n++] = "--token-file";
		args[n++] = token;
	}
	args[n++] = "dlq";
	args[n++] = sub;
	args[n] = NULL;
	assert_int_equal(itest_nqctl_argv(e, 20000, args, run), 0);
	return run->code;
}

static void test_dlq_tls_requires_client_certificates(void **state)
{
	itest_env *e = *state;
	dlqt t;
	char url[ITEST_URL_MAX], plain[ITEST_URL_MAX];
	make_certs(e);
	itest_proc *p = start_tls_dlq(e, &t, NULL, url, sizeof url);
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

static void test_dlq_tls_env_token_and_one_pem_file(void **state)
{
	itest_env *e = *state;
	dlqt t;
	itest_run run;
	char url[ITEST_URL_MAX], cmd[2048], admin[PATH_MAX];
	make_certs(e);
	snprintf(cmd, sizeof cmd, "cd %s && cat cli.pem cli.key > cli-both.pem",
	    e->dir);
	assert_int_equal(system(cmd), 0);
	itest_path(e, "admin.tokens", admin, sizeof admin);
	FILE *f = fopen(admin, "w");
	assert_non_null(f);
	fputs("dlq-admin-1\n", f);
	fclose(f);
	setenv("NQT_DLQ_ADMIN", "dlq-admin-1", 1);
	const char *extra[] = {"--admin-tokens", admin, NULL};
	itest_proc *p = start_tls_dlq(e, &t, extra, url, sizeof url);
	uint64_t end = itest_now_ms() + 20000;
	int code;
	while ((code = one_file_run(
	            e, url, "env:NQT_DLQ_ADMIN", "stats", &run)) != 0 &&
	       itest_now_ms() < end) {
		itest_run_free(&run);
		itest_sleep_ms(100);
	}
	assert_int_equal(code, 0);
	assert_non_null(strstr(run.out, "\"total\":0"));
	itest_run_free(&run);
	assert_int_equal(
	    one_file_run(e, url, "env:NQT_DLQ_ADMIN", "list", &run), 0);
	itest_run_free(&run);
	/* the token is what lets it in: without one, unauthenticated */
	assert_int_equal(one_file_run(e, url, NULL, "stats", &run), 1);
	assert_non_null(strstr(run.err, "\"code\":\"UNAUTHENTICATED\""));
	itest_run_free(&run);
	assert_true(itest_alive(p));
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_dlq_tls_requires_client_certificates, setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_dlq_tls_env_token_and_one_pem_file, setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
