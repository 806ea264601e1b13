/* Util: durations, sizes, numbers, names, UTF-8, ids, the error table,
 * states. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/util.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

typedef struct parse_case {
	const char *in;
	uint64_t want;
} parse_case;

static void test_util_duration_units(void **st)
{
	static const parse_case cases[] = {
	    {"250ms", 250},
	    {"30s", 30000},
	    {"5m", 300000},
	    {"2h", 7200000},
	    {"1d", 86400000},
	    {"1500", 1500},
	    {"0", 0},
	    {"0s", 0},
	    {"18446744073709551615ms", UINT64_MAX},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		uint64_t ms = 12345;
		if (nqi_parse_duration_ms(cases[i].in, &ms) != NQ_OK)
			fail_msg("duration '%s' rejected", cases[i].in);
		assert_int_equal(ms, cases[i].want);
	}
}

static void test_util_duration_rejects_junk(void **st)
{
	static const char *const bad[] = {
	    "",
	    "5x",
	    "-1",
	    "-1s",
	    "s",
	    "ms",
	    " 5s",
	    "5s ",
	    "5 s",
	    "5S",
	    "1.5s",
	    "+5s",
	    "5sec",
	    "0x10",
	    "5ms5",
	    NULL,
	    /* overflow: of the number itself, and after scaling */
	    "18446744073709551616",
	    "18446744073709551615s",
	    "5124095576030432h",
	    "99999999999999999999999d",
	};
	for (size_t i = 0; i < COUNT(bad); i++) {
		uint64_t ms = 777;
		if (nqi_parse_duration_ms(bad[i], &ms) != NQ_EINVAL)
			fail_msg(
			    "duration '%s' accepted", bad[i] ? bad[i] : "NULL");
		assert_int_equal(ms, 777); /* untouched on failure */
	}
}

static void test_util_size_units(void **st)
{
	static const parse_case cases[] = {
	    {"262144", 262144},
	    {"256k", 262144},
	    {"256K", 262144},
	    {"256KiB", 262144},
	    {"256kb", 262144},
	    {"64m", 64ull << 20},
	    {"64MiB", 64ull << 20},
	    {"1g", 1ull << 30},
	    {"2GB", 2ull << 30},
	    {"10b", 10},
	    {"0", 0},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		uint64_t b = 1;
		if (nqi_parse_size(cases[i].in, &b) != NQ_OK)
			fail_msg("size '%s' rejected", cases[i].in);
		assert_int_equal(b, cases[i].want);
	}
}

static void test_util_size_rejects_junk(void **st)
{
	static const char *const bad[] = {
	    "",
	    "k",
	    "12q",
	    "-5",
	    "-5k",
	    "1.5m",
	    "5 k",
	    "5kk",
	    "5t",
	    NULL,
	    "18446744073709551616",
	    "17179869184g",
	    "18014398509481984k",
	};
	for (size_t i = 0; i < COUNT(bad); i++) {
		uint64_t b = 3;
		if (nqi_parse_size(bad[i], &b) != NQ_EINVAL)
			fail_msg(
			    "size '%s' accepted", bad[i] ? bad[i] : "NULL");
		assert_int_equal(b, 3);
	}
}

static void test_util_u64_whole_numbers_only(void **st)
{
	uint64_t v = 0;
	assert_int_equal(nqi_parse_u64("0", &v), NQ_OK);
	assert_int_equal(v, 0);
	assert_int_equal(nqi_parse_u64("18446744073709551615", &v), NQ_OK);
	assert_int_equal(v, UINT64_MAX);
	static const char *const bad[] = {"", "-1", "+1", "1x", " 1", "1 ",
	    "18446744073709551616", "0x1f", NULL};
	for (size_t i = 0; i < COUNT(bad); i++) {
		v = 9;
		if (nqi_parse_u64(bad[i], &v) != NQ_EINVAL)
			fail_msg(
			    "number '%s' accepted", bad[i] ? bad[i] : "NULL");
		assert_int_equal(v, 9);
	}
}

static void test_util_names_valid_charset(void **st)
{
	const char *ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789._-";
	assert_true(nqi_name_valid(ok));
	assert_true(nqi_name_valid("emails"));
	assert_true(nqi_name_valid("a"));
	assert_true(nqi_name_valid("-"));
	for (int c = 1; c < 256; c++) {
		char name[4] = {'q', (char)c, 'q', '\0'};
		bool want = strchr(ok, c) != NULL;
		if (nqi_name_valid(name) != want)
			fail_msg(
			    "byte 0x%02x: valid=%d, want %d", c, !want, want);
	}
}

static void test_util_names_length_limit(void **st)
{
	char name[NQI_NAME_MAX + 2];
	memset(name, 'x', sizeof name);
	name[NQI_NAME_MAX] = '\0';
	assert_int_equal(strlen(name), 128);
	assert_true(nqi_name_valid(name));
	name[NQI_NAME_MAX] = 'x';
	name[NQI_NAME_MAX + 1] = '\0';
	assert_false(nqi_name_valid(name));
	assert_false(nqi_name_valid(""));
	assert_false(nqi_name_valid(NULL));
	assert_false(nqi_name_valid("emails/urgent"));
	assert_false(nqi_name_valid("e mails"));
	assert_false(nqi_name_valid("caf\xc3\xa9"));
}

static void test_util_id_round_trip(void **st)
{
	static const uint64_t ids[] = {0, 1, 0x0190f5a2b3c4d5e6ull,
	    0x00000000ffffffffull, 0xffffffffffffffffull,
	    0x8000000000000000ull};
	for (size_t i = 0; i < COUNT(ids); i++) {
		char text[NQ_ID_MAX];
		uint64_t back = ~ids[i];
		nqi_id_format(ids[i], text);
		assert_int_equal(strlen(text), 16);
		for (size_t k = 0; k < 16; k++)
			assert_non_null(strchr("0123456789abcdef", text[k]));
		assert_int_equal(nqi_id_parse(text, &back), NQ_OK);
		assert_int_equal(back, ids[i]);
	}
	char text[NQ_ID_MAX];
	nqi_id_format(0x0190f5a2b3c4d5e6ull, text);
	assert_string_equal(text, "0190f5a2b3c4d5e6");
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static int sign(long long v)
{
	return (v > 0) - (v < 0);
}

static void test_util_id_text_order_is_numeric_order(void **st)
{
	uint64_t seed = 99;
	for (int i = 0; i < 20000; i++) {
		/* small and large magnitudes, and near neighbours */
		uint64_t a = rng_next(&seed) >> (rng_next(&seed) % 64);
		uint64_t b = i % 3 ? rng_next(&seed) >> (rng_next(&seed) % 64)
		                   : a + (rng_next(&seed) % 3) - 1;
		char ta[NQ_ID_MAX], tb[NQ_ID_MAX];
		nqi_id_format(a, ta);
		nqi_id_format(b, tb);
		int want = a < b ? -1 : a > b;
		assert_int_equal(sign(strcmp(ta, tb)), want);
	}
}

static void test_util_id_rejects_malformed(void **st)
{
	static const char *const bad[] = {
	    "",
	    "0190f5a2b3c4d5e",
	    "0190f5a2b3c4d5e6a",
	    "0190f5a2b3c4d5eg",
	    "0190f5a2b3c4d5e ",
	    " 190f5a2b3c4d5e6",
	    "0x90f5a2b3c4d5e6",
	    "-190f5a2b3c4d5e6",
	    "0190f5a2-3c4d5e6",
	    "01234567890123456789",
	    NULL,
	};
	for (size_t i = 0; i < COUNT(bad); i++) {
		uint64_t id = 5;
		if (nqi_id_parse(bad[i], &id) != NQ_EINVAL)
			fail_msg("id '%s' accepted", bad[i] ? bad[i] : "NULL");
		assert_int_equal(id, 5);
	}
}

static void test_util_every_error_has_name_and_text(void **st)
{
	for (int e = 0; e < NQ_ERR_COUNT_; e++) {
		const char *name = nq_err_name(e), *text = nq_strerror(e);
		assert_non_null(name);
		assert_non_null(text);
		assert_true(strlen(name) >= 2);
		assert_true(strlen(text) >= 2);
		assert_string_not_equal(name, "EUNKNOWN");
		assert_string_not_equal(text, "unknown error");
		for (int f = 0; f < e; f++) {
			assert_string_not_equal(name, nq_err_name(f));
			assert_string_not_equal(text, nq_strerror(f));
		}
	}
	assert_string_equal(nq_err_name(NQ_OK), "OK");
	assert_string_equal(nq_err_name(NQ_ENOTFOUND), "ENOTFOUND");
	assert_string_equal(nq_strerror(NQ_ENOTFOUND), "not found");
	assert_string_equal(nq_err_name(-1), "EUNKNOWN");
	assert_string_equal(nq_err_name(NQ_ERR_COUNT_), "EUNKNOWN");
	assert_string_equal(nq_strerror(NQ_ERR_COUNT_ + 7), "unknown error");
}

static void test_util_error_codes_round_trip(void **st)
{
	for (int e = 0; e < NQ_ERR_COUNT_; e++) {
		int code = nqi_err_to_code(e);
		assert_in_range(code, 0, 10);
		/* the wire cannot tell ENOMEM from EINTERNAL, but the code
		 * survives the trip */
		assert_int_equal(
		    nqi_err_to_code(nqi_err_from_code(code)), code);
	}
	/* every nq.v1.Code has an error */
	for (int code = 0; code <= 10; code++)
		assert_int_equal(
		    nqi_err_to_code(nqi_err_from_code(code)), code);
	assert_int_equal(nqi_err_from_code(0), NQ_OK);
	assert_int_equal(nqi_err_from_code(2), NQ_ENOTFOUND);
	assert_int_equal(nqi_err_from_code(4), NQ_EPRECOND);
	assert_int_equal(nqi_err_from_code(10), NQ_ETIMEDOUT);
	assert_int_equal(nqi_err_from_code(9999), NQ_EINTERNAL);
	assert_int_equal(nqi_err_from_code(-3), NQ_EINTERNAL);
	assert_int_equal(nqi_err_to_code(-1), 9);
	assert_int_equal(nqi_err_to_code(NQ_ERR_COUNT_), 9);
}

static void test_util_state_names_round_trip(void **st)
{
	static const char *const names[] = {"scheduled", "ready", "leased",
	    "succeeded", "dead", "canceled", "expired"};
	for (size_t i = 0; i < COUNT(names); i++) {
		nq_state s = (nq_state)(i + 1);
		assert_string_equal(nq_state_name(s), names[i]);
		assert_int_equal(nq_state_parse(names[i]), s);
		bool final = s >= NQ_STATE_SUCCEEDED;
		assert_int_equal(nq_state_is_final(s), final);
	}
	assert_int_equal(nq_state_parse("READY"), NQ_STATE_UNSPECIFIED);
	assert_int_equal(nq_state_parse(""), NQ_STATE_UNSPECIFIED);
	assert_int_equal(nq_state_parse(NULL), NQ_STATE_UNSPECIFIED);
	assert_int_equal(nq_state_parse("unspecified"), NQ_STATE_UNSPECIFIED);
	assert_string_equal(nq_state_name((nq_state)99), "unknown");
	assert_false(nq_state_is_final(NQ_STATE_UNSPECIFIED));
}

static void test_util_clocks_move_forward(void **st)
{
	uint64_t w = nqi_now_us(), m = nqi_mono_ms();
	assert_true(w > 1700000000000000ull); /* after 2023 */
	assert_true(nqi_now_us() >= w);
	assert_true(nqi_mono_ms() >= m);
}

/* Deadlines for condition variables: normalized, and ms from now. */
static void test_util_realtime_deadlines(void **st)
{
	static const uint64_t cases[] = {0, 1, 999, 1000, 1999, 86400000};
	for (size_t i = 0; i < COUNT(cases); i++) {
		uint64_t before = nqi_now_us() / 1000;
		struct timespec ts = nqi_realtime_in(cases[i]);
		uint64_t after = nqi_now_us() / 1000;
		uint64_t at =
		    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
		assert_true(at + 1 >= before + cases[i]);
		assert_true(at <= after + cases[i] + 1);
	}
}

static void test_util_random_fills_buffers(void **st)
{
	uint8_t a[64] = {0}, b[64] = {0};
	nqi_random(a, sizeof a);
	nqi_random(b, sizeof b);
	assert_memory_not_equal(a, b, sizeof a);
	assert_true(nqi_random_u64() != nqi_random_u64());
	nqi_random(a, 0); /* nothing to do, no crash */
}

typedef struct utf8_case {
	const char *in;
	size_t n;    /* bytes the decoder may read */
	size_t want; /* length decoded; 0: refused */
	uint32_t cp;
} utf8_case;

/* Checks each case; on a refusal the code point is left as it was. */
static void check_utf8(const utf8_case *cases, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint32_t cp = 0xdeadbeef;
		const uint8_t *p = (const uint8_t *)cases[i].in;
		size_t got = nqi_utf8_decode(p, cases[i].n, &cp);
		if (got != cases[i].want)
			fail_msg("case %zu: decoded %zu bytes, want %zu", i,
			    got, cases[i].want);
		assert_int_equal(cp, cases[i].want ? cases[i].cp : 0xdeadbeef);
		assert_int_equal(nqi_utf8_char_len(p, cases[i].n), got);
	}
}

static void test_util_utf8_decodes_every_length(void **st)
{
	const utf8_case cases[] = {
	    {"A", 1, 1, 0x41},
	    {"", 1, 1, 0}, /* U+0000 is a character */
	    {"\x7f", 1, 1, 0x7f},
	    {"\xc2\x80", 2, 2, 0x80},
	    {"\xc3\xa9zz", 4, 2, 0xe9}, /* one character at a time */
	    {"\xdf\xbf", 2, 2, 0x7ff},
	    {"\xe0\xa0\x80", 3, 3, 0x800},
	    {"\xe2\x82\xac", 3, 3, 0x20ac},
	    {"\xed\x9f\xbf", 3, 3, 0xd7ff},
	    {"\xee\x80\x80", 3, 3, 0xe000},
	    {"\xef\xbf\xbf", 3, 3, 0xffff},
	    {"\xf0\x90\x80\x80", 4, 4, 0x10000},
	    {"\xf0\x9f\x98\x80", 4, 4, 0x1f600},
	    {"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
	};
	check_utf8(cases, COUNT(cases));
}

static void test_util_utf8_refuses_overlong_forms(void **st)
{
	const utf8_case cases[] = {
	    {"\xc0\x80", 2, 0, 0},         /* U+0000 in two bytes */
	    {"\xc1\xbf", 2, 0, 0},         /* U+007F */
	    {"\xe0\x80\x80", 3, 0, 0},     /* U+0000 in three */
	    {"\xe0\x9f\xbf", 3, 0, 0},     /* U+07FF */
	    {"\xf0\x80\x80\x80", 4, 0, 0}, /* U+0000 in four */
	    {"\xf0\x8f\xbf\xbf", 4, 0, 0}, /* U+FFFF */
	};
	check_utf8(cases, COUNT(cases));
}

static void test_util_utf8_refuses_surrogates_and_past_10ffff(void **st)
{
	const utf8_case cases[] = {
	    {"\xed\xa0\x80", 3, 0, 0},     /* U+D800 */
	    {"\xed\xb2\x80", 3, 0, 0},     /* U+DC80 */
	    {"\xed\xbf\xbf", 3, 0, 0},     /* U+DFFF */
	    {"\xf4\x90\x80\x80", 4, 0, 0}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, 0, 0},
	    {"\xf8\x88\x80\x80\x80", 5, 0, 0}, /* five-byte form */
	    {"\xff", 1, 0, 0},
	};
	check_utf8(cases, COUNT(cases));
}

static void test_util_utf8_refuses_truncated_sequences(void **st)
{
	const utf8_case cases[] = {
	    {"\xc3\xa9", 1, 0, 0}, /* the end of the buffer */
	    {"\xe2\x82\xac", 2, 0, 0}, {"\xf0\x9f\x98\x80", 3, 0, 0},
	    {"\xe2\x82", 3, 0, 0}, /* a NUL where a byte should be */
	    {"\xe2\x82z", 3, 0, 0},
	    {"\x80", 1, 0, 0}, /* a continuation on its own */
	    {"\xbf\xbf", 2, 0, 0}, {"A", 0, 0, 0}, /* nothing to read */
	};
	check_utf8(cases, COUNT(cases));
}

static void test_util_utf8_valid_checks_every_byte(void **st)
{
	assert_true(nqi_utf8_valid("", 0));
	assert_true(nqi_utf8_valid("caf\xc3\xa9 \xe2\x82\xac", 9));
	assert_true(nqi_utf8_valid("a\0b", 3));
	assert_false(nqi_utf8_valid("caf\xc3", 4));
	assert_false(nqi_utf8_valid("ab\xed\xa0\x80"
	                            "cd",
	    7));
	assert_false(nqi_utf8_valid("\xc0\xaf"
	                            "etc",
	    5));
}

/* Growable arrays double from their first size, in one step to what is
 * needed, and are left as they were when memory cannot be had. */
static void test_util_grow_doubles_from_first(void **st)
{
	(void)st;
	uint32_t *v = NULL;
	size_t cap = 0;
	assert_int_equal(NQI_GROW(v, cap, 1, 16), NQ_OK);
	assert_non_null(v);
	assert_int_equal(cap, 16);
	v[15] = 7;
	assert_int_equal(NQI_GROW(v, cap, 16, 16), NQ_OK);
	assert_int_equal(cap, 16); /* room enough: unchanged */
	assert_int_equal(NQI_GROW(v, cap, 17, 16), NQ_OK);
	assert_int_equal(cap, 32);
	assert_int_equal(NQI_GROW(v, cap, 200, 16), NQ_OK);
	assert_int_equal(cap, 256);
	assert_int_equal(v[15], 7); /* contents move along */
	uint32_t *kept = v;
	assert_int_equal(
	    nqi_grow((void **)&v, &cap, SIZE_MAX, sizeof *v, 16), NQ_ENOMEM);
	assert_ptr_equal(v, kept);
	assert_int_equal(cap, 256);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_util_duration_units),
	    cmocka_unit_test(test_util_duration_rejects_junk),
	    cmocka_unit_test(test_util_size_units),
	    cmocka_unit_test(test_util_size_rejects_junk),
	    cmocka_unit_test(test_util_u64_whole_numbers_only),
	    cmocka_unit_test(test_util_names_valid_charset),
	    cmocka_unit_test(test_util_names_length_limit),
	    cmocka_unit_test(test_util_utf8_decodes_every_length),
	    cmocka_unit_test(test_util_utf8_refuses_overlong_forms),
	    cmocka_unit_test(test_util_utf8_refuses_surrogates_and_past_10ffff),
	    cmocka_unit_test(test_util_utf8_refuses_truncated_sequences),
	    cmocka_unit_test(test_util_utf8_valid_checks_every_byte),
	    cmocka_unit_test(test_util_id_round_trip),
	    cmocka_unit_test(test_util_id_text_order_is_numeric_order),
	    cmocka_unit_test(test_util_id_rejects_malformed),
	    cmocka_unit_test(test_util_every_error_has_name_and_text),
	    cmocka_unit_test(test_util_error_codes_round_trip),
	    cmocka_unit_test(test_util_state_names_round_trip),
	    cmocka_unit_test(test_util_clocks_move_forward),
	    cmocka_unit_test(test_util_realtime_deadlines),
	    cmocka_unit_test(test_util_random_fills_buffers),
	    cmocka_unit_test(test_util_grow_doubles_from_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
