/* Log lines: a value is always one value. Text lines quote and escape
 * what would split a field or end the line; JSON lines are built from the
 * fields and parse back to exactly them. Each case writes to stderr,
 * redirected to a temp file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nqi/log.h"

/* Runs one nqi_log call with stderr in a file; returns its output. */
static char *logged(const char *format, const nqi_log_field *f, size_t n)
{
	static char out[8192];
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	int saved = dup(2);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	assert_int_equal(nqi_log_set_format(format), 0);
	nqi_log(NQI_LOG_INFO, "NQ-TEST", f, n);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t len = fread(out, 1, sizeof out - 1, tmp);
	out[len] = '\0';
	fclose(tmp);
	return out;
}

static const nqi_log_field hostile[] = {
    NQI_S("plain", "value"),
    NQI_S("spaces", "a value with spaces"),
    NQI_S("kv", "x a=b c=\"d\""),
    NQI_S("lines", "one\ntwo\\three"),
    NQI_S(NULL, "left out"),
    NQI_S("empty", ""),
    NQI_U("n", 18446744073709551615ull),
    NQI_I("neg", -3),
    NQI_B("ok", true),
};

static void test_log_text_quotes_what_would_split_a_field(void **state)
{
	char *line = logged("text", hostile, sizeof hostile / sizeof *hostile);
	const char *fields = strstr(line, " NQ-TEST ");
	assert_non_null(fields);
	assert_string_equal(fields,
	    " NQ-TEST plain=value spaces=\"a value with spaces\" "
	    "kv=\"x a=b c=\\\"d\\\"\" lines=\"one\\ntwo\\\\three\" empty= "
	    "n=18446744073709551615 neg=-3 ok=true\n");
}

static void test_log_json_carries_every_field_as_given(void **state)
{
	char *line = logged("json", hostile, sizeof hostile / sizeof *hostile);
	assert_non_null(strchr(line, '\n'));
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "msg")), "NQ-TEST");
	assert_string_equal(
	    json_string_value(json_object_get(o, "level")), "info");
	assert_non_null(json_object_get(o, "ts"));
	for (size_t i = 0; i < 6; i++) {
		if (!hostile[i].key)
			continue;
		json_t *v = json_object_get(o, hostile[i].key);
		assert_non_null(v);
		assert_string_equal(json_string_value(v), hostile[i].v.s);
	}
	assert_true(json_is_number(json_object_get(o, "n")));
	assert_int_equal(json_integer_value(json_object_get(o, "neg")), -3);
	assert_true(json_is_true(json_object_get(o, "ok")));
	/* ts, level, msg and the eight fields with a key: nothing else. */
	assert_int_equal(json_object_size(o), 11);
	json_decref(o);
}

static void test_log_json_replaces_bytes_that_are_not_utf8(void **state)
{
	const nqi_log_field f[] = {NQI_S("raw", "a\xff\xfe b")};
	json_t *o = json_loads(logged("json", f, 1), 0, NULL);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "raw")), "a?? b");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_text_quotes_what_would_split_a_field),
	    cmocka_unit_test(test_log_json_carries_every_field_as_given),
	    cmocka_unit_test(test_log_json_replaces_bytes_that_are_not_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
