/* Options: defaults, then NQ_* environment, then flags. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nqi/daemon.h"
#include "nqi/opts.h"
#include "nqi/util.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

typedef struct config {
	const char *data_dir;
	const char *token;
	uint64_t lease_ms;
	uint64_t max_payload;
	uint64_t commits;
	int concurrency;
	bool json;
	nqi_strlist queues;
	nqi_strlist handlers;
} config;

static const char *const env_names[] = {"NQ_DATA_DIR", "NQ_TOKEN", "NQ_LEASE",
    "NQ_MAX_PAYLOAD", "NQ_COMMITS", "NQ_CONCURRENCY", "NQ_JSON", "NQ_QUEUES",
    "NQ_HANDLER", "NQ_CONFIG"};

typedef struct fixture {
	config cfg;
	nqi_opt opts[9];
	char err[256];
	int next;
	nqi_strlist keep; /* copies made by nqi_opts_load_file */
} fixture;

static int setup(void **st)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->cfg = (config){.data_dir = "/var/lib/nq",
	    .lease_ms = 30000,
	    .max_payload = 262144,
	    .commits = 1,
	    .concurrency = 1};
	const nqi_opt opts[] = {
	    {"data-dir", NQI_OPT_STR, &f->cfg.data_dir, "store directory",
	        false},
	    {"token", NQI_OPT_STR, &f->cfg.token, "auth token", true},
	    {"lease", NQI_OPT_DURATION, &f->cfg.lease_ms, "lease length",
	        false},
	    {"max-payload", NQI_OPT_SIZE, &f->cfg.max_payload, "payload limit",
	        false},
	    {"commits", NQI_OPT_U64, &f->cfg.commits, "commit count", false},
	    {"concurrency", NQI_OPT_INT, &f->cfg.concurrency, "slots", false},
	    {"json", NQI_OPT_BOOL, &f->cfg.json, "JSON output", false},
	    {"queues", NQI_OPT_LIST, &f->cfg.queues, "queues to serve", false},
	    {"handler", NQI_OPT_LIST, &f->cfg.handlers, "TYPE=COMMAND", false},
	};
	memcpy(f->opts, opts, sizeof opts);
	for (size_t i = 0; i < COUNT(env_names); i++)
		unsetenv(env_names[i]);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	fixture *f = *st;
	nqi_strlist_free(&f->cfg.queues);
	nqi_strlist_free(&f->cfg.handlers);
	nqi_strlist_free(&f->keep);
	for (size_t i = 0; i < COUNT(env_names); i++)
		unsetenv(env_names[i]);
	free(f);
	return 0;
}

/* Parses argv (NULL-terminated, argv[0] is the program) from index 1. */
static int parse(fixture *f, bool use_env, char **argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	f->next = -1;
	f->err[0] = '\0';
	return nqi_opts_parse(f->opts, COUNT(f->opts), argc, argv, 1, use_env,
	    &f->next, f->err, sizeof f->err);
}

static void assert_err_mentions(const fixture *f, const char *what)
{
	if (!strstr(f->err, what))
		fail_msg("error '%s' does not mention '%s'", f->err, what);
}

static void test_opts_defaults_kept_without_flags(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-broker", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->next, 1);
	assert_string_equal(f->cfg.data_dir, "/var/lib/nq");
	assert_null(f->cfg.token);
	assert_int_equal(f->cfg.lease_ms, 30000);
	assert_int_equal(f->cfg.max_payload, 262144);
	assert_int_equal(f->cfg.concurrency, 1);
	assert_false(f->cfg.json);
	assert_int_equal(f->cfg.queues.n, 0);
}

static void test_opts_env_applied(void **st)
{
	fixture *f = *st;
	setenv("NQ_DATA_DIR", "/srv/nq", 1);
	setenv("NQ_LEASE", "45s", 1);
	setenv("NQ_MAX_PAYLOAD", "1m", 1);
	setenv("NQ_CONCURRENCY", "8", 1);
	setenv("NQ_JSON", "1", 1);
	char *argv[] = {"nq-broker", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_string_equal(f->cfg.data_dir, "/srv/nq");
	assert_int_equal(f->cfg.lease_ms, 45000);
	assert_int_equal(f->cfg.max_payload, 1u << 20);
	assert_int_equal(f->cfg.concurrency, 8);
	assert_true(f->cfg.json);
}

static void test_opts_env_ignored_when_not_asked(void **st)
{
	fixture *f = *st;
	setenv("NQ_LEASE", "45s", 1);
	char *argv[] = {"nqctl", NULL};
	assert_int_equal(parse(f, false, argv), NQ_OK);
	assert_int_equal(f->cfg.lease_ms, 30000);
}

static void test_opts_flag_wins_over_env(void **st)
{
	fixture *f = *st;
	setenv("NQ_DATA_DIR", "/srv/nq", 1);
	setenv("NQ_LEASE", "45s", 1);
	setenv("NQ_JSON", "1", 1);
	char *argv[] = {"nq-broker", "--data-dir", "/tmp/x", "--lease=2m",
	    "--json=false", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_string_equal(f->cfg.data_dir, "/tmp/x");
	assert_int_equal(f->cfg.lease_ms, 120000);
	assert_false(f->cfg.json);
}

static void test_opts_equals_and_separate_values(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-worker", "--concurrency=4", "--max-payload", "256k",
	    "--commits", "18446744073709551615", "--token=s3cret", "--json",
	    NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->next, 8);
	assert_int_equal(f->cfg.concurrency, 4);
	assert_int_equal(f->cfg.max_payload, 262144);
	assert_int_equal(f->cfg.commits, UINT64_MAX);
	assert_string_equal(f->cfg.token, "s3cret");
	assert_true(f->cfg.json);
}

static void test_opts_empty_value_after_equals(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nqctl", "--data-dir=", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_string_equal(f->cfg.data_dir, "");
}

static void test_opts_unknown_flag_is_named(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-broker", "--lease", "5s", "--bogus=1", NULL};
	assert_int_equal(parse(f, true, argv), NQ_EINVAL);
	assert_err_mentions(f, "--bogus");
	assert_null(strstr(f->err, "=1"));
	char *argv2[] = {"nq-broker", "--data", "x", NULL};
	assert_int_equal(parse(f, true, argv2), NQ_EINVAL);
	assert_err_mentions(f, "--data");
}

static void test_opts_bad_duration_names_the_flag(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-worker", "--lease", "30 seconds", NULL};
	assert_int_equal(parse(f, true, argv), NQ_EINVAL);
	assert_err_mentions(f, "--lease");
	assert_err_mentions(f, "30 seconds");
	assert_err_mentions(f, "duration");
	assert_int_equal(f->cfg.lease_ms, 30000);
}

static void test_opts_bad_env_value_names_the_option(void **st)
{
	fixture *f = *st;
	setenv("NQ_MAX_PAYLOAD", "lots", 1);
	char *argv[] = {"nq-broker", NULL};
	assert_int_equal(parse(f, true, argv), NQ_EINVAL);
	assert_err_mentions(f, "max-payload");
	assert_err_mentions(f, "lots");
}

static void test_opts_bad_numbers_rejected(void **st)
{
	fixture *f = *st;
	char *too_big[] = {"nq-worker", "--concurrency", "3000000000", NULL};
	assert_int_equal(parse(f, true, too_big), NQ_EINVAL);
	assert_err_mentions(f, "--concurrency");
	char *negative[] = {"nq-worker", "--concurrency=-2", NULL};
	assert_int_equal(parse(f, true, negative), NQ_EINVAL);
	char *junk[] = {"nq-worker", "--commits", "12abc", NULL};
	assert_int_equal(parse(f, true, junk), NQ_EINVAL);
	assert_err_mentions(f, "--commits");
	assert_int_equal(f->cfg.concurrency, 1);
}

static void test_opts_missing_value_is_named(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-broker", "--data-dir", NULL};
	assert_int_equal(parse(f, true, argv), NQ_EINVAL);
	assert_err_mentions(f, "--data-dir");
	assert_err_mentions(f, "value");
}

static void test_opts_lists_repeat_in_order(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nq-worker", "--handler", "send-email=./send.sh",
	    "--handler=resize=./resize.sh", "--queues", "emails", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->cfg.handlers.n, 2);
	assert_string_equal(f->cfg.handlers.v[0], "send-email=./send.sh");
	assert_string_equal(f->cfg.handlers.v[1], "resize=./resize.sh");
	assert_int_equal(f->cfg.queues.n, 1);
	assert_string_equal(f->cfg.queues.v[0], "emails");
}

static void test_opts_env_lists_split_on_commas(void **st)
{
	fixture *f = *st;
	setenv("NQ_QUEUES", "emails,reports,,thumbnails", 1);
	char *argv[] = {"nq-worker", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	unsetenv("NQ_QUEUES"); /* the values must not point into environ */
	assert_int_equal(f->cfg.queues.n, 3);
	assert_string_equal(f->cfg.queues.v[0], "emails");
	assert_string_equal(f->cfg.queues.v[1], "reports");
	assert_string_equal(f->cfg.queues.v[2], "thumbnails");
}

static void test_opts_list_flag_replaces_env_list(void **st)
{
	fixture *f = *st;
	setenv("NQ_QUEUES", "emails,reports", 1);
	char *argv[] = {
	    "nq-worker", "--queues", "thumbnails", "--queues", "pdf", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->cfg.queues.n, 2);
	assert_string_equal(f->cfg.queues.v[0], "thumbnails");
	assert_string_equal(f->cfg.queues.v[1], "pdf");
}

static void test_opts_span_counts_the_value_argument(void **st)
{
	fixture *f = *st;
	assert_int_equal(nqi_opts_span(f->opts, COUNT(f->opts), "--lease"), 2);
	assert_int_equal(
	    nqi_opts_span(f->opts, COUNT(f->opts), "--lease=5s"), 1);
	assert_int_equal(nqi_opts_span(f->opts, COUNT(f->opts), "--json"), 1);
	assert_int_equal(nqi_opts_span(f->opts, COUNT(f->opts), "--nope"), 1);
}

static void test_opts_stop_at_first_non_flag(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nqctl", "--json", "enqueue", "--lease", "5s", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->next, 2);
	assert_true(f->cfg.json);
	assert_int_equal(f->cfg.lease_ms, 30000); /* after the command */
	char *dash[] = {"nqctl", "-x", NULL};
	assert_int_equal(parse(f, true, dash), NQ_OK);
	assert_int_equal(f->next, 1);
}

static void test_opts_double_dash_ends_flags(void **st)
{
	fixture *f = *st;
	char *argv[] = {"nqctl", "--lease", "1s", "--", "--json", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_int_equal(f->next, 4);
	assert_int_equal(f->cfg.lease_ms, 1000);
	assert_false(f->cfg.json);
}

static void test_opts_describe_redacts_secrets(void **st)
{
	fixture *f = *st;
	char out[1024];
	char *argv[] = {
	    "nq-broker", "--token", "hunter2", "--queues", "a", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	nqi_opts_describe(f->opts, COUNT(f->opts), out, sizeof out);
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "token=<redacted>"));
	assert_non_null(strstr(out, "data-dir=/var/lib/nq"));
	assert_non_null(strstr(out, "lease=30000"));
	assert_non_null(strstr(out, "json=false"));
	assert_non_null(strstr(out, "concurrency=1"));
}

static void test_opts_usage_lists_every_flag(void **st)
{
	fixture *f = *st;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	assert_non_null(mem);
	nqi_opts_usage(f->opts, COUNT(f->opts), mem);
	fclose(mem);
	for (size_t i = 0; i < COUNT(f->opts); i++) {
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", f->opts[i].name);
		assert_non_null(strstr(buf, flag));
		assert_non_null(strstr(buf, f->opts[i].help));
	}
	free(buf);
}

/* Writes text to a fresh file and returns its path (static buffer). */
static const char *write_config(const char *text)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/nq-test-opts-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_opts_config_file_applied(void **st)
{
	fixture *f = *st;
	const char *path =
	    write_config("# broker settings\n"
	                 "\n"
	                 "data-dir = /srv/nq   # where the store lives\n"
	                 "  lease=2m\n"
	                 "max-payload = 1m\n"
	                 "queues = emails\n"
	                 "json = true\n");
	assert_int_equal(nqi_opts_load_file(f->opts, COUNT(f->opts), path,
	                     &f->keep, f->err, sizeof f->err),
	    NQ_OK);
	unlink(path);
	assert_string_equal(f->cfg.data_dir, "/srv/nq");
	assert_int_equal(f->cfg.lease_ms, 120000);
	assert_int_equal(f->cfg.max_payload, 1u << 20);
	assert_int_equal(f->cfg.queues.n, 1);
	assert_string_equal(f->cfg.queues.v[0], "emails");
	assert_true(f->cfg.json);
	assert_int_equal(f->cfg.concurrency, 1); /* not in the file: default */
}

static void test_opts_env_and_flags_win_over_config_file(void **st)
{
	fixture *f = *st;
	const char *path = write_config("data-dir = /srv/nq\nlease = 2m\n"
	                                "concurrency = 3\n");
	assert_int_equal(nqi_opts_load_file(f->opts, COUNT(f->opts), path,
	                     &f->keep, f->err, sizeof f->err),
	    NQ_OK);
	unlink(path);
	setenv("NQ_LEASE", "5s", 1);
	char *argv[] = {"nq-broker", "--data-dir", "/tmp/y", NULL};
	assert_int_equal(parse(f, true, argv), NQ_OK);
	assert_string_equal(f->cfg.data_dir, "/tmp/y");
	assert_int_equal(f->cfg.lease_ms, 5000);
	assert_int_equal(f->cfg.concurrency, 3);
}

static void test_opts_config_file_errors_name_file_and_line(void **st)
{
	fixture *f = *st;
	const char *path = write_config("lease = 2m\n# fine\nbogus = 1\n");
	assert_int_equal(nqi_opts_load_file(f->opts, COUNT(f->opts), path,
	                     &f->keep, f->err, sizeof f->err),
	    NQ_EINVAL);
	assert_err_mentions(f, path);
	assert_err_mentions(f, ":3:");
	assert_err_mentions(f, "bogus");
	unlink(path);

	path = write_config("lease = soon\n");
	assert_int_equal(nqi_opts_load_file(f->opts, COUNT(f->opts), path,
	                     &f->keep, f->err, sizeof f->err),
	    NQ_EINVAL);
	assert_err_mentions(f, ":1:");
	assert_err_mentions(f, "lease");
	assert_err_mentions(f, "soon");
	unlink(path);

	path = write_config("data-dir /srv/nq\n");
	assert_int_equal(nqi_opts_load_file(f->opts, COUNT(f->opts), path,
	                     &f->keep, f->err, sizeof f->err),
	    NQ_EINVAL);
	assert_err_mentions(f, ":1:");
	assert_err_mentions(f, "name = value");
	unlink(path);

	assert_int_equal(
	    nqi_opts_load_file(f->opts, COUNT(f->opts), "/nonexistent/nq.conf",
	        &f->keep, f->err, sizeof f->err),
	    NQ_EINVAL);
	assert_err_mentions(f, "/nonexistent/nq.conf");
}

static void test_opts_peek_finds_flag_then_env(void **st)
{
	char *eq[] = {
	    "nq-broker", "--lease", "5s", "--config=/etc/nq.conf", NULL};
	char *sep[] = {"nq-broker", "--config", "/etc/b.conf", NULL};
	char *none[] = {"nq-broker", "--configx", "a", "--config", NULL};
	assert_string_equal(nqi_opts_peek(4, eq, "config"), "/etc/nq.conf");
	assert_string_equal(nqi_opts_peek(3, sep, "config"), "/etc/b.conf");
	unsetenv("NQ_CONFIG");
	assert_null(nqi_opts_peek(4, none, "config"));
	setenv("NQ_CONFIG", "/etc/env.conf", 1);
	assert_string_equal(nqi_opts_peek(4, none, "config"), "/etc/env.conf");
	assert_string_equal(nqi_opts_peek(3, sep, "config"), "/etc/b.conf");
	unsetenv("NQ_CONFIG");
}

/* ---- the common flags of the daemons ---- */

/* A daemon that takes some of the common flags, with one of its own. */
typedef struct daemon_cfg {
	const char *own, *config, *log_level, *log_format, *ready_file;
	const char *data_dir, *sync, *tls_ca, *token_file;
	nqi_strlist keep;
} daemon_cfg;

static nqi_daemon_spec daemon_spec(daemon_cfg *c, const nqi_opt *own)
{
	*c = (daemon_cfg){.own = "x",
	    .log_level = "info",
	    .log_format = "text",
	    .data_dir = "./d",
	    .sync = "always"};
	return (nqi_daemon_spec){.prog = "nq-test",
	    .usage = "usage: nq-test [flags]",
	    .msgid = "NQ-TEST-CONFIG",
	    .opts = own,
	    .nopts = 1,
	    .common = {.config = &c->config,
	        .log_level = &c->log_level,
	        .log_format = &c->log_format,
	        .ready_file = &c->ready_file,
	        .data_dir = &c->data_dir,
	        .sync = &c->sync,
	        .tls_ca = &c->tls_ca,
	        .token_file = &c->token_file}};
}

static const char *const daemon_env[] = {"NQ_OWN", "NQ_READY_FILE", "NQ_SYNC",
    "NQ_LOG_LEVEL", "NQ_TLS_CA", "NQ_CONFIG", "NQ_DATA_DIR"};

static void daemon_env_clear(void)
{
	for (size_t i = 0; i < COUNT(daemon_env); i++)
		unsetenv(daemon_env[i]);
}

static void test_opts_daemon_takes_only_the_common_flags_it_names(void **st)
{
	daemon_cfg c;
	const nqi_opt own[] = {NQI_OPT("own", STR, &c.own, "its own flag")};
	nqi_daemon_spec d = daemon_spec(&c, own);
	nqi_opt *o;
	size_t n;
	assert_int_equal(nqi_daemon_opts(&d, &o, &n), 0);
	/* Its own flag first, then the eight common ones it points at. */
	assert_int_equal(n, 9);
	assert_string_equal(o[0].name, "own");
	const char *want[] = {"data-dir", "sync", "token-file", "tls-ca",
	    "config", "log-level", "log-format", "ready-file"};
	for (size_t i = 0; i < COUNT(want); i++) {
		size_t k = 1;
		while (k < n && strcmp(o[k].name, want[i]) != 0)
			k++;
		assert_true(k < n);
		assert_non_null(o[k].help);
	}
	for (size_t k = 0; k < n; k++)
		assert_string_not_equal(o[k].name, "producer-tokens");
	free(o);
}

static void test_opts_daemon_common_flags_read_env_file_and_flags(void **st)
{
	daemon_cfg c;
	char path[] = "/tmp/nq-test-opts-XXXXXX";
	const nqi_opt own[] = {NQI_OPT("own", STR, &c.own, "its own flag")};
	nqi_daemon_spec d = daemon_spec(&c, own);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_true(write(fd, "tls-ca = /etc/ca.pem\nsync = none\n", 33) == 33);
	close(fd);
	daemon_env_clear();
	setenv("NQ_READY_FILE", "/run/nq.ready", 1);
	setenv("NQ_OWN", "from-env", 1);
	setenv("NQ_SYNC", "always", 1);
	char *argv[] = {"nq-test", "--config", path, "--data-dir", "/var/d",
	    "--log-level=warn", NULL};
	assert_int_equal(nqi_daemon_configure(&d, 6, argv, &c.keep), 0);
	assert_string_equal(c.own, "from-env");
	assert_string_equal(c.ready_file, "/run/nq.ready");
	assert_string_equal(c.tls_ca, "/etc/ca.pem"); /* the file */
	assert_string_equal(c.sync, "always");        /* env over the file */
	assert_string_equal(c.data_dir, "/var/d");    /* the flag */
	assert_string_equal(c.log_level, "warn");
	assert_string_equal(c.config, path);
	nqi_log_set_level("info");
	nqi_strlist_free(&c.keep);
	unlink(path);
	daemon_env_clear();
}

static void test_opts_daemon_checks_the_common_flags(void **st)
{
	daemon_cfg c;
	const nqi_opt own[] = {NQI_OPT("own", STR, &c.own, "its own flag")};
	nqi_daemon_spec d = daemon_spec(&c, own);
	daemon_env_clear();
	char *sync[] = {"nq-test", "--sync", "sometimes", NULL};
	assert_int_equal(nqi_daemon_configure(&d, 3, sync, &c.keep), 2);
	char *level[] = {"nq-test", "--log-level", "loud", NULL};
	assert_int_equal(nqi_daemon_configure(&d, 3, level, &c.keep), 2);
	/* A flag of a group this daemon does not take is unknown. */
	char *tokens[] = {"nq-test", "--admin-tokens", "f", NULL};
	assert_int_equal(nqi_daemon_configure(&d, 3, tokens, &c.keep), 2);
	char *help[] = {"nq-test", "--help", NULL};
	assert_int_equal(nqi_daemon_configure(&d, 2, help, &c.keep), -1);
	nqi_strlist_free(&c.keep);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_opts_defaults_kept_without_flags),
	    T(test_opts_env_applied),
	    T(test_opts_env_ignored_when_not_asked),
	    T(test_opts_flag_wins_over_env),
	    T(test_opts_equals_and_separate_values),
	    T(test_opts_empty_value_after_equals),
	    T(test_opts_unknown_flag_is_named),
	    T(test_opts_bad_duration_names_the_flag),
	    T(test_opts_bad_env_value_names_the_option),
	    T(test_opts_bad_numbers_rejected),
	    T(test_opts_missing_value_is_named),
	    T(test_opts_lists_repeat_in_order),
	    T(test_opts_env_lists_split_on_commas),
	    T(test_opts_list_flag_replaces_env_list),
	    T(test_opts_span_counts_the_value_argument),
	    T(test_opts_stop_at_first_non_flag),
	    T(test_opts_double_dash_ends_flags),
	    T(test_opts_describe_redacts_secrets),
	    T(test_opts_usage_lists_every_flag),
	    T(test_opts_config_file_applied),
	    T(test_opts_env_and_flags_win_over_config_file),
	    T(test_opts_config_file_errors_name_file_and_line),
	    cmocka_unit_test(
	        test_opts_daemon_takes_only_the_common_flags_it_names),
	    cmocka_unit_test(
	        test_opts_daemon_common_flags_read_env_file_and_flags),
	    cmocka_unit_test(test_opts_daemon_checks_the_common_flags),
	    T(test_opts_peek_finds_flag_then_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
