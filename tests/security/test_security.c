/*
 * Role tokens and TLS, end to end: each role can do exactly what it may
 * and is refused the rest with the right code, a refused request changes
 * nothing, TLS endpoints refuse clients that trust another CA and plaintext
 * clients, client certificates are required when the broker has a CA, and
 * the whole job path works over TLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- test material: token files and certificates ---- */

static void write_file(itest_env *e, const char *name, const char *text)
{
	char path[512];
	itest_path(e, name, path, sizeof path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void write_tokens(itest_env *e)
{
	write_file(e, "producer.tokens", "# producers\nprod-1\nprod-2\n");
	write_file(e, "worker.tokens", "work-1\n");
	write_file(e, "admin.tokens", "admin-1\n");
	write_file(e, "prod.token", "prod-2\n");
	write_file(e, "work.token", "work-1\n");
}

/* A CA, a server certificate for "localhost" and a client certificate,
 * plus a second CA that signed nothing of ours. */
static void make_certs(itest_env *e)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
	    "cd %s && ( "
	    "%s req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key "
	    "-out ca.pem -subj /CN=nq-test-ca && "
	    "%s req -x509 -newkey rsa:2048 -nodes -days 2 -keyout other.key "
	    "-out other.pem -subj /CN=other-ca && "
	    "%s req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
	    "-subj /CN=localhost && "
	    "printf 'subjectAltName=DNS:localhost\\n' > srv.ext && "
	    "%s x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out srv.pem -days 2 -extfile srv.ext && "
	    "%s req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr "
	    "-subj /CN=nq-client && "
	    "%s x509 -req -in cli.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -out cli.pem -days 2) > openssl.log 2>&1",
	    e->dir, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL, NQ_OPENSSL,
	    NQ_OPENSSL);
	assert_int_equal(system(cmd), 0);
}

/* Starts a broker with the env's addresses and extra flags, then waits
 * until a client (given opts, dialing the env's api URL) gets any answer
 * from its api socket. */
static void start_broker(
    itest_env *e, const char *const *extra, const nq_client_opts *probe)
{
	const char *argv[48] = {"--dlq", ""};
	size_t n = 2;
	for (; extra && *extra && n < 47; extra++)
		argv[n++] = *extra;
	assert_int_equal(itest_broker_spawn(e, argv, NULL), 0);
	nq_client *c;
	nq_client_opts o = *probe;
	o.api_url = e->api_url;
	o.timeout_ms = 300;
	assert_int_equal(nq_client_open(&c, &o), 0);
	for (int i = 0; i < 60; i++) {
		nq_queue_stats *qs = NULL;
		size_t nq = 0;
		int rv = nq_stats(c, NULL, &qs, &nq, NULL);
		nq_queue_stats_free(qs);
		if (rv != NQ_ETIMEDOUT && rv != NQ_ECONNECT &&
		    rv != NQ_EUNAVAIL)
			break;
		assert_false(itest_broker_died(e));
	}
	nq_client_close(c);
}

static nq_client *client_with(const itest_env *e, const char *token)
{
	nq_client *c;
	nq_client_opts o = {.api_url = e->api_url,
	    .work_url = e->work_url,
	    .results_url = e->results_url,
	    .token = token,
	    .timeout_ms = 5000};
	assert_int_equal(nq_client_open(&c, &o), 0);
	return c;
}

/* ---- roles ---- */

static int try_enqueue(nq_client *c)
{
	char id[NQ_ID_MAX];
	bool dup;
	nq_job_spec s = {.queue = "roles", .type = "t"};
	return nq_enqueue(c, &s, id, &dup);
}

static int try_stats(nq_client *c)
{
	nq_queue_stats *qs = NULL;
	size_t n = 0;
	int rv = nq_stats(c, NULL, &qs, &n, NULL);
	nq_queue_stats_free(qs);
	return rv;
}

static int try_fetch(nq_client *c)
{
	nq_job **jobs = NULL;
	size_t n = 0;
	const char *q[] = {"none-here"};
	int rv = nq_fetch(c, "w", q, 1, 1, 0, 1000, &jobs, &n);
	nq_jobs_free(jobs, n);
	return rv;
}

static uint64_t jobs_in(const itest_env *e, const char *queue)
{
	nq_client *admin = client_with(e, "admin-1");
	itest_qstats s;
	assert_int_equal(itest_queue_stats(admin, queue, &s, NULL), 0);
	nq_client_close(admin);
	return s.ready + s.leased + s.scheduled;
}

/* Starts the broker with the token lists of write_tokens, one per role. */
static void start_with_roles(itest_env *e)
{
	char ptok[512], wtok[512], atok[512];
	write_tokens(e);
	itest_path(e, "producer.tokens", ptok, sizeof ptok);
	itest_path(e, "worker.tokens", wtok, sizeof wtok);
	itest_path(e, "admin.tokens", atok, sizeof atok);
	const char *flags[] = {"--producer-tokens", ptok, "--worker-tokens",
	    wtok, "--admin-tokens", atok, NULL};
	nq_client_opts probe = {.api_url = e->api_url, .token = "admin-1"};
	start_broker(e, flags, &probe);
}

static void test_security_roles_allow_exactly_their_requests(void **state)
{
	itest_env *e = *state;
	start_with_roles(e);

	nq_client *prod = client_with(e, "prod-2");
	nq_client *work = client_with(e, "work-1");
	nq_client *admin = client_with(e, "admin-1");
	nq_client *none = client_with(e, NULL);
	nq_client *wrong = client_with(e, "prod-3");

	/* producer: enqueue yes; stats and fetch are not its business */
	assert_int_equal(try_enqueue(prod), NQ_OK);
	assert_int_equal(try_stats(prod), NQ_EPERM);
	assert_int_equal(try_fetch(prod), NQ_EPERM);
	/* worker: fetch yes; enqueue and stats no */
	assert_int_equal(try_fetch(work), NQ_OK);
	assert_int_equal(try_enqueue(work), NQ_EPERM);
	assert_int_equal(try_stats(work), NQ_EPERM);
	assert_int_equal(nq_pause(work, "roles"), NQ_EPERM);
	/* admin: everything */
	assert_int_equal(try_enqueue(admin), NQ_OK);
	assert_int_equal(try_stats(admin), NQ_OK);
	assert_int_equal(try_fetch(admin), NQ_OK);
	assert_int_equal(nq_pause(admin, "paused-q"), NQ_OK);
	/* no token, unknown token: unauthenticated */
	assert_int_equal(try_enqueue(none), NQ_EAUTH);
	assert_int_equal(try_fetch(none), NQ_EAUTH);
	assert_int_equal(try_enqueue(wrong), NQ_EAUTH);
	assert_non_null(strstr(nq_client_last_error(wrong), "token"));
	/* refusals changed nothing: only the two allowed enqueues exist */
	assert_int_equal(jobs_in(e, "roles"), 2);

	nq_client_close(prod);
	nq_client_close(work);
	nq_client_close(admin);
	nq_client_close(none);
	nq_client_close(wrong);
	itest_pass(e);
}

/* Enqueues a job on queue as prod and leases it as work: (*jobs)[0]. */
static void lease_one(nq_client *prod, nq_client *work, const char *queue,
    char id[NQ_ID_MAX], nq_job ***jobs)
{
	bool dup;
	size_t n;
	nq_job_spec s = {.queue = queue, .type = "t"};
	assert_int_equal(nq_enqueue(prod, &s, id, &dup), NQ_OK);
	assert_int_equal(
	    nq_fetch(work, "w", &queue, 1, 1, 0, 30000, jobs, &n), 0);
	assert_int_equal(n, 1);
}

static void test_security_completion_needs_worker_token(void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	start_with_roles(e);

	nq_client *prod = client_with(e, "prod-1");
	nq_client *work = client_with(e, "work-1");
	nq_job **jobs;
	lease_one(prod, work, "done", id, &jobs);
	nq_completion c = {.id = nq_job_id(jobs[0]),
	    .lease_token = nq_job_lease_token(jobs[0]),
	    .outcome = NQ_OUTCOME_SUCCEEDED};
	/* a producer token on the results socket is dropped: still leased */
	assert_int_equal(nq_complete(prod, "w", &c, 1), NQ_OK);
	itest_sleep_ms(500);
	nq_job *j;
	assert_int_equal(nq_get(prod, id, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_LEASED);
	nq_job_free(j);
	/* the worker's own token completes it */
	assert_int_equal(nq_complete(work, "w", &c, 1), NQ_OK);
	assert_int_equal(
	    itest_wait_state(prod, id, NQ_STATE_SUCCEEDED, 5000, NULL), 0);
	nq_jobs_free(jobs, 1);
	nq_client_close(prod);
	nq_client_close(work);
	itest_pass(e);
}

/* A lease token completes the job it names: a producer's get shows 0. */
static void test_security_lease_token_shown_to_workers_and_admins_only(
    void **state)
{
	itest_env *e = *state;
	char id[NQ_ID_MAX];
	start_with_roles(e);

	nq_client *prod = client_with(e, "prod-1");
	nq_client *work = client_with(e, "work-1");
	nq_client *admin = client_with(e, "admin-1");
	nq_job **jobs, *j;
	lease_one(prod, work, "lease", id, &jobs);
	uint64_t token = nq_job_lease_token(jobs[0]);
	assert_true(token != 0);

	assert_int_equal(nq_get(prod, id, &j), NQ_OK);
	assert_int_equal(nq_job_state(j), NQ_STATE_LEASED);
	assert_true(nq_job_lease_token(j) == 0);
	nq_job_free(j);
	assert_int_equal(nq_get(admin, id, &j), NQ_OK);
	assert_true(nq_job_lease_token(j) == token);
	nq_job_free(j);

	nq_jobs_free(jobs, 1);
	nq_client_close(prod);
	nq_client_close(work);
	nq_client_close(admin);
	itest_pass(e);
}

/* ---- TLS ---- */

typedef struct tls_paths {
	char ca[512], other[512], srv[512], srvkey[512], cli[512], clikey[512];
} tls_paths;

static void tls_setup(itest_env *e, tls_paths *p, bool client_certs)
{
	make_certs(e);
	itest_path(e, "ca.pem", p->ca, sizeof p->ca);
	itest_path(e, "other.pem", p->other, sizeof p->other);
	itest_path(e, "srv.pem", p->srv, sizeof p->srv);
	itest_path(e, "srv.key", p->srvkey, sizeof p->srvkey);
	itest_path(e, "cli.pem", p->cli, sizeof p->cli);
	itest_path(e, "cli.key", p->clikey, sizeof p->clikey);
	/* Clients dial localhost: mbedTLS does not match IP addresses. The
	 * broker reports its addresses with the host they were given. */
	snprintf(e->api_url, sizeof e->api_url, "tls+tcp://localhost:0");
	snprintf(e->work_url, sizeof e->work_url, "tls+tcp://localhost:0");
	snprintf(
	    e->results_url, sizeof e->results_url, "tls+tcp://localhost:0");
	const char *flags[] = {"--tls-cert", p->srv, "--tls-key", p->srvkey,
	    client_certs ? "--tls-ca" : NULL, p->ca, NULL};
	nq_client_opts probe = {.tls_ca = p->ca,
	    .tls_cert = client_certs ? p->cli : NULL,
	    .tls_key = client_certs ? p->clikey : NULL};
	start_broker(e, flags, &probe);
}

static int stats_over(
    const itest_env *e, const char *ca, const char *cert, const char *key)
{
	nq_client *c;
	nq_client_opts o = {.api_url = e->api_url,
	    .tls_ca = ca,
	    .tls_cert = cert,
	    .tls_key = key,
	    .timeout_ms = 1500};
	assert_int_equal(nq_client_open(&c, &o), 0);
	int rv = try_stats(c);
	nq_client_close(c);
	return rv;
}

static void test_security_tls_refuses_other_ca_and_plaintext(void **state)
{
	itest_env *e = *state;
	tls_paths p;
	tls_setup(e, &p, false);
	assert_int_equal(stats_over(e, p.ca, NULL, NULL), NQ_OK);
	/* a client that trusts another CA never gets an answer */
	int rv = stats_over(e, p.other, NULL, NULL);
	assert_true(rv == NQ_ETIMEDOUT || rv == NQ_ECONNECT);
	/* a plaintext client cannot talk to the TLS endpoint */
	char plain[64];
	snprintf(plain, sizeof plain, "tcp://127.0.0.1:%s",
	    strrchr(e->api_url, ':') + 1);
	nq_client *c;
	nq_client_opts o = {.api_url = plain, .timeout_ms = 1500};
	assert_int_equal(nq_client_open(&c, &o), 0);
	rv = try_stats(c);
	assert_true(rv == NQ_ETIMEDOUT || rv == NQ_ECONNECT);
	nq_client_close(c);
	itest_pass(e);
}

static void test_security_tls_client_certificates_required(void **state)
{
	itest_env *e = *state;
	tls_paths p;
	tls_setup(e, &p, true);
	assert_int_equal(stats_over(e, p.ca, p.cli, p.clikey), NQ_OK);
	int rv = stats_over(e, p.ca, NULL, NULL);
	assert_true(rv == NQ_ETIMEDOUT || rv == NQ_ECONNECT);
	itest_pass(e);
}

static void test_security_tls_job_path_end_to_end(void **state)
{
	itest_env *e = *state;
	tls_paths p;
	itest_proc *w;
	itest_run run;
	char id[NQ_ID_MAX];
	tls_setup(e, &p, false);
	const char *wflags[] = {
	    "--handler", "echo=cat", "--queues", "tls", "--tls-ca", p.ca, NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	const char *args[] = {"--api", e->api_url, "--tls-ca", p.ca, "--json",
	    "enqueue", "tls", "echo", "--payload", "{\"secret\":42}", "--wait",
	    NULL};
	assert_int_equal(itest_nqctl_argv(e, 30000, args, &run), 0);
	assert_int_equal(run.code, 0);
	assert_non_null(strstr(run.out, "succeeded"));
	assert_non_null(strstr(run.out, "secret"));
	(void)id;
	itest_run_free(&run);
	itest_pass(e);
}

/* ---- nqctl: the same --token-file and --tls-* flags for every command ---- */

/* The client certificate and its key in one PEM file. */
static void combine_pem(itest_env *e, const tls_paths *p, char *out, size_t len)
{
	char cmd[2048];
	itest_path(e, "cli-both.pem", out, len);
	snprintf(cmd, sizeof cmd, "cat %s %s > %s", p->cli, p->clikey, out);
	assert_int_equal(system(cmd), 0);
}

/* nqctl with args after the TLS and token flags of all commands. */
static int nqctl_with(itest_env *e, const char *const *common,
    const char *const *args, itest_run *run)
{
	const char *argv[48];
	size_t n = 0;
	for (; *common; common++)
		argv[n++] = *common;
	for (; *args && n < 47; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	assert_int_equal(itest_nqctl_argv(e, 20000, argv, run), 0);
	return run->code;
}

/*
 * One broker with client certificates required on its TLS api and events
 * sockets and an admin token: enqueue, stats and events all take the token
 * as env:NAME and the client certificate as one combined PEM file.
 */
static void test_security_nqctl_env_token_and_one_pem_file_everywhere(
    void **state)
{
	itest_env *e = *state;
	tls_paths p;
	itest_proc *sub;
	itest_run run;
	char both[512], atok[512];
	make_certs(e);
	write_tokens(e);
	itest_path(e, "ca.pem", p.ca, sizeof p.ca);
	itest_path(e, "srv.pem", p.srv, sizeof p.srv);
	itest_path(e, "srv.key", p.srvkey, sizeof p.srvkey);
	itest_path(e, "cli.pem", p.cli, sizeof p.cli);
	itest_path(e, "cli.key", p.clikey, sizeof p.clikey);
	itest_path(e, "admin.tokens", atok, sizeof atok);
	combine_pem(e, &p, both, sizeof both);
	/* Clients dial localhost: mbedTLS does not match IP addresses. The
	 * broker reports its addresses with the host they were given. */
	snprintf(e->api_url, sizeof e->api_url, "tls+tcp://localhost:0");
	snprintf(e->events_url, sizeof e->events_url, "tls+tcp://localhost:0");
	const char *flags[] = {"--tls-cert", p.srv, "--tls-key", p.srvkey,
	    "--tls-ca", p.ca, "--admin-tokens", atok, NULL};
	nq_client_opts probe = {.api_url = e->api_url,
	    .token = "admin-1",
	    .tls_ca = p.ca,
	    .tls_cert = p.cli,
	    .tls_key = p.clikey};
	start_broker(e, flags, &probe);
	setenv("NQT_ADMIN_TOKEN", "admin-1", 1);
	const char *common[] = {"--api", e->api_url, "--events", e->events_url,
	    "--tls-ca", p.ca, "--tls-cert", both, "--token-file",
	    "env:NQT_ADMIN_TOKEN", NULL};

	/* events: subscribed over TLS with the combined file; it exits 0
	 * after the first enqueued event, which the loop below provides
	 * once the subscription is up */
	const char *sargv[32] = {ITEST_NQCTL};
	size_t n = 1;
	for (const char *const *c = common; *c; c++)
		sargv[n++] = *c;
	const char *tail[] = {
	    "events", "--state", "enqueued", "--count", "1", NULL};
	for (const char *const *c = tail; *c; c++)
		sargv[n++] = *c;
	assert_int_equal(itest_spawn(e, "events", sargv, NULL, &sub), 0);
	const char *enq[] = {"enqueue", "envtok", "t", NULL};
	uint64_t end = itest_now_ms() + 20000;
	while (itest_alive(sub) && itest_now_ms() < end) {
		assert_int_equal(nqctl_with(e, common, enq, &run), 0);
		itest_run_free(&run);
		itest_sleep_ms(200);
	}
	assert_int_equal(itest_wait_exit(sub, 5000), 0);
	assert_true(WIFEXITED(sub->status));
	assert_int_equal(WEXITSTATUS(sub->status), 0);
	char *log = NULL;
	assert_int_equal(itest_read_file(sub->log, &log, NULL), 0);
	assert_non_null(strstr(log, "\"queue\":\"envtok\""));
	free(log);

	const char *stats[] = {"--json", "stats", "envtok", NULL};
	assert_int_equal(nqctl_with(e, common, stats, &run), 0);
	itest_run_free(&run);
	/* the token is what lets it in: without one, unauthenticated */
	const char *bare[] = {
	    "--api", e->api_url, "--tls-ca", p.ca, "--tls-cert", both, NULL};
	assert_int_equal(nqctl_with(e, bare, stats, &run), 1);
	assert_non_null(strstr(run.err, "UNAUTHENTICATED"));
	itest_run_free(&run);
	itest_pass(e);
}

/* Runs curl on url; returns its exit status, the body in out. */
static int curl(
    itest_env *e, const char *ca, const char *url, char *out, size_t len)
{
	char cmd[1024], path[512];
	itest_path(e, "curl.out", path, sizeof path);
	snprintf(cmd, sizeof cmd, "curl -s --max-time 5 %s%s -o %s %s",
	    ca ? "--cacert " : "", ca ? ca : "", path, url);
	int rv = system(cmd);
	char *body = NULL;
	size_t n = 0;
	out[0] = '\0';
	if (itest_read_file(path, &body, &n) == 0) {
		snprintf(out, len, "%s", body);
		free(body);
	}
	unlink(path);
	return rv;
}

static void test_security_https_health_and_metrics(void **state)
{
	itest_env *e = *state;
	tls_paths p;
	itest_proc *w;
	char url[128], body[4096];
	snprintf(e->http_addr, sizeof e->http_addr, "https://127.0.0.1:0");
	tls_setup(e, &p, false);
	int bport = itest_url_port(e->http_addr);
	/* the broker's endpoints over https, verified with the CA */
	snprintf(url, sizeof url, "https://localhost:%d/healthz", bport);
	assert_int_equal(curl(e, p.ca, url, body, sizeof body), 0);
	assert_string_equal(body, "ok");
	snprintf(url, sizeof url, "https://localhost:%d/metrics", bport);
	assert_int_equal(curl(e, p.ca, url, body, sizeof body), 0);
	assert_non_null(strstr(body, "nq_broker_ready 1"));
	/* and the JSON API */
	snprintf(url, sizeof url, "https://localhost:%d/v1/routes", bport);
	assert_int_equal(curl(e, p.ca, url, body, sizeof body), 0);
	assert_non_null(strstr(body, "\"path\":\"/v1/jobs/{id}\""));
	/* plain http to the https port gets nothing */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", bport);
	curl(e, NULL, url, body, sizeof body);
	assert_null(strstr(body, "ok"));
	/* nq-worker serves https with its own certificate too */
	char waddr[ITEST_URL_MAX];
	const char *wflags[] = {"--handler", "echo=cat", "--tls-ca", p.ca,
	    "--tls-cert", p.srv, "--tls-key", p.srvkey, "--http",
	    "https://127.0.0.1:0", NULL};
	assert_int_equal(itest_worker_start(e, wflags, &w), 0);
	assert_int_equal(itest_wait_bound(w, 20000), 0);
	assert_int_equal(itest_bound_url(w, "http", waddr, sizeof waddr), 0);
	int wport = itest_url_port(waddr);
	snprintf(url, sizeof url, "https://localhost:%d/healthz", wport);
	int rv = 1;
	for (int i = 0; i < 50 && rv != 0; i++) {
		rv = curl(e, p.ca, url, body, sizeof body);
		if (rv != 0)
			itest_sleep_ms(100);
	}
	assert_int_equal(rv, 0);
	assert_string_equal(body, "ok");
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_security_roles_allow_exactly_their_requests, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_lease_token_shown_to_workers_and_admins_only,
	        itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_completion_needs_worker_token, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_tls_refuses_other_ca_and_plaintext, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_tls_client_certificates_required, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_tls_job_path_end_to_end, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_https_health_and_metrics, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_security_nqctl_env_token_and_one_pem_file_everywhere,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
