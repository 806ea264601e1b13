/* The queues file parser and the policy key values: every refusal names
 * the file's line and the key at fault. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nq/nq.h"
#include "nqi/policy.h"

static char path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "/tmp/nq-policy-XXXXXX");
	int fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	return fd < 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static int load(const char *text, nqi_policy_file **f, nqi_policy_error *e)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return nqi_policy_file_load(path, f, e);
}

/* The file is refused at line `line` for key `key`. */
static void refused(const char *text, unsigned line, const char *key)
{
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	assert_int_equal(load(text, &f, &e), NQ_EINVAL);
	assert_null(f);
	if (e.line != line || strcmp(e.key, key) != 0)
		fail_msg("want line %u key %s, got line %u key '%s' (%s)", line,
		    key, e.line, e.key, e.reason);
	assert_true(e.reason[0] != '\0');
}

static void test_policy_file_reads_every_kind(void **state)
{
	(void)state;
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	assert_int_equal(load("queues:\n"
	                      "  \"*\": {max_attempts: 5}\n"
	                      "  mail:\n"
	                      "    backoff: {base: 250ms, cap: 5m}\n"
	                      "    timeout: 30s\n"
	                      "    priority: -3\n"
	                      "    rate: 50/s\n"
	                      "    burst: 10\n"
	                      "    fairness: true\n"
	                      "    circuit_breaker:\n"
	                      "      window: 1m\n"
	                      "      failure_ratio: 0.5\n"
	                      "    types: [send, bounce]\n"
	                      "    schema_versions: {send: \"1-3\"}\n",
	                     &f, &e),
	    0);
	const nqi_policy *all = nqi_policy_file_find(f, "*");
	const nqi_policy *m = nqi_policy_file_find(f, "mail");
	assert_non_null(all);
	assert_non_null(m);
	assert_int_equal(all->max_attempts, 5);
	assert_int_equal(m->backoff_base, 250);
	assert_int_equal(m->backoff_cap, 300000);
	assert_int_equal(m->timeout, 30000);
	assert_int_equal(m->priority, -3);
	assert_true(m->rate > 49.9 && m->rate < 50.1);
	assert_int_equal(m->burst, 10);
	assert_true(m->fairness);
	assert_int_equal(m->breaker_window, 60000);
	assert_string_equal(m->types, "send,bounce");
	uint32_t lo, hi;
	assert_true(
	    nqi_policy_versions_of(m->schema_versions, "send", &lo, &hi));
	assert_int_equal(lo, 1);
	assert_int_equal(hi, 3);
	assert_false(nqi_policy_versions_of(m->schema_versions, "x", &lo, &hi));
	assert_true(nqi_policy_list_has(m->types, "bounce"));
	assert_false(nqi_policy_list_has(m->types, "boun"));
	assert_false(m->set & NQI_PK_BIT(max_attempts));
	nqi_policy_file_free(f);
}

static void test_policy_file_refusals_name_line_and_key(void **state)
{
	(void)state;
	refused("queues:\n  mail:\n    max_atempts: 3\n", 3, "max_atempts");
	refused(
	    "queues:\n  mail:\n    max_attempts: many\n", 3, "max_attempts");
	refused("queues:\n  mail:\n    max_attempts: [1]\n", 3, "max_attempts");
	refused("queues:\n  mail:\n    rate: -5/s\n", 3, "rate");
	refused("queues:\n  mail:\n    rate: 5\n", 3, "rate");
	refused("queues:\n  mail:\n    max_in_flight: 0\n", 3, "max_in_flight");
	refused("queues:\n  mail:\n\n    circuit_breaker:\n"
	        "      failure_ratio: 1.5\n",
	    5, "circuit_breaker.failure_ratio");
	refused("queues:\n  mail:\n    circuit_breaker: {windo: 1s}\n", 3,
	    "circuit_breaker.windo");
	refused("queues:\n  mail:\n    schema_versions: {send: \"3-1\"}\n", 3,
	    "schema_versions");
	refused("queues:\n  mail:\n    timeout: 30 s\n", 3, "timeout");
	refused("queues:\n  mail:\n    types: send\n", 3, "types");
	refused("queues:\n  mail:\n    backoff: {base: 1m, cap: 1s}\n", 3,
	    "backoff.cap");
	refused("queues:\n  bad name!: {}\n", 2, "bad name!");
	refused("queue:\n  mail: {}\n", 1, "queue");
	refused("queues:\n  mail: {timeout: [1s\n", 3, "");
}

static void test_policy_error_text_names_file_line_and_key(void **state)
{
	(void)state;
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	char text[512], want[512];
	assert_int_equal(
	    load("queues:\n  mail:\n    burst: 0\n", &f, &e), NQ_EINVAL);
	nqi_policy_error_text(path, &e, text, sizeof text);
	snprintf(want, sizeof want, "%s:3: burst: ", path);
	assert_memory_equal(text, want, strlen(want));
}

static void test_policy_file_missing_is_refused(void **state)
{
	(void)state;
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	assert_int_equal(
	    nqi_policy_file_load("/nonexistent/q.yaml", &f, &e), NQ_EINVAL);
	assert_int_equal(e.line, 0);
	assert_non_null(strstr(e.reason, "cannot open"));
}

static void test_policy_pair_parses_and_formats(void **state)
{
	(void)state;
	nqi_policy p = {0};
	char why[256], buf[64];
	assert_int_equal(nqi_policy_parse_pair("timeout=90s", &p, why, 256), 0);
	nqi_policy_format(nqi_policy_key_find("timeout"), &p, buf, sizeof buf);
	assert_string_equal(buf, "90s");
	assert_int_equal(
	    nqi_policy_parse_pair("rate=600/m", &p, why, sizeof why), 0);
	nqi_policy_format(nqi_policy_key_find("rate"), &p, buf, sizeof buf);
	assert_string_equal(buf, "10/s");
	assert_int_equal(
	    nqi_policy_parse_pair("max_attempt=3", &p, why, sizeof why),
	    NQ_EINVAL);
	assert_non_null(strstr(why, "max_attempt"));
	assert_int_equal(
	    nqi_policy_parse_pair("max_depth=0", &p, why, sizeof why),
	    NQ_EINVAL);
	assert_non_null(strstr(why, "max_depth"));
	assert_false(p.set & NQI_PK_BIT(max_depth));
	nqi_policy_clear(&p);
}

/* README.md's table of keys is the one NQI_POLICY_KEYS gives. */
static void test_policy_readme_table_is_the_key_table(void **state)
{
	(void)state;
	char want[8192], *text = NULL;
	size_t cap = 0;
	FILE *f = fopen(NQ_README, "r");
	assert_non_null(f);
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	assert_true(n > 0);
	const char *start = strstr(text, "<!-- policy-keys");
	const char *end = start ? strstr(start, "<!-- /policy-keys -->") : NULL;
	assert_non_null(end);
	start = strchr(start, '\n') + 1;
	assert_true(nqi_policy_table_md(want, sizeof want) < sizeof want);
	if (strlen(want) != (size_t)(end - start) ||
	    memcmp(want, start, (size_t)(end - start)) != 0)
		fail_msg("README.md's policy table should read:\n%s", want);
	free(text);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_policy_file_reads_every_kind),
	    T(test_policy_file_refusals_name_line_and_key),
	    T(test_policy_file_missing_is_refused),
	    T(test_policy_error_text_names_file_line_and_key),
	    T(test_policy_pair_parses_and_formats),
	    T(test_policy_readme_table_is_the_key_table),
#undef T
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
