#include "nqi/util.h"

#include <ctype.h>
#include <errno.h>
#include <nng/nng.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const err_text[] = {
#define X(name, code, text) text,
    NQ_ERRORS(X)
#undef X
};
static const char *const err_names[] = {
#define X(name, code, text) #name,
    NQ_ERRORS(X)
#undef X
};
static const int err_codes[] = {
#define X(name, code, text) code,
    NQ_ERRORS(X)
#undef X
};

NQ_API const char *nq_strerror(int err)
{
	if (err < 0 || err >= NQ_ERR_COUNT_)
		return "unknown error";
	return err_text[err];
}

NQ_API const char *nq_err_name(int err)
{
	if (err < 0 || err >= NQ_ERR_COUNT_)
		return "EUNKNOWN";
	return err_names[err];
}

int nqi_err_to_code(int err)
{
	if (err < 0 || err >= NQ_ERR_COUNT_)
		return 9;
	return err_codes[err];
}

int nqi_err_from_code(int code)
{
	/* The first error of each code is its canonical one. */
	for (int e = 0; e < NQ_ERR_COUNT_; e++)
		if (err_codes[e] == code)
			return e;
	return NQ_EINTERNAL;
}

int nqi_err_from_nng(int rv)
{
	switch (rv) {
	case 0:
		return NQ_OK;
	case NNG_ETIMEDOUT:
		return NQ_ETIMEDOUT;
	case NNG_ENOMEM:
		return NQ_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return NQ_EINVAL;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return NQ_ECLOSED;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_EUNREACHABLE:
	case NNG_ECONNSHUT:
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
		return NQ_ECONNECT;
	case NNG_EMSGSIZE:
		return NQ_EINVAL;
	default:
		return NQ_EUNAVAIL;
	}
}

static const char *const state_names[] = {
    "unspecified",
    "scheduled",
    "ready",
    "leased",
    "succeeded",
    "dead",
    "canceled",
    "expired",
    "waiting",
};

NQ_API const char *nq_state_name(nq_state s)
{
	if ((int)s < 0 || (size_t)s >= sizeof state_names / sizeof *state_names)
		return "unknown";
	return state_names[s];
}

NQ_API nq_state nq_state_parse(const char *name)
{
	for (size_t i = 1; i < sizeof state_names / sizeof *state_names; i++)
		if (name && strcmp(name, state_names[i]) == 0)
			return (nq_state)i;
	return NQ_STATE_UNSPECIFIED;
}

NQ_API bool nq_state_is_final(nq_state s)
{
	return s == NQ_STATE_SUCCEEDED || s == NQ_STATE_DEAD ||
	       s == NQ_STATE_CANCELED || s == NQ_STATE_EXPIRED;
}

uint64_t nqi_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t nqi_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void nqi_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

void nqi_cond_wait_mono(
    pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ms)
{
	struct timespec ts = {
	    .tv_sec = (time_t)(deadline_ms / 1000),
	    .tv_nsec = (long)(deadline_ms % 1000) * 1000000L,
	};
	pthread_cond_timedwait(cv, mu, &ts);
}

struct timespec nqi_realtime_in(uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + ms % 1000 * 1000000u;
	ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	return ts;
}

bool nqi_name_valid(const char *s)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		          c == '-';
		if (!ok || n >= NQI_NAME_MAX)
			return false;
	}
	return n > 0;
}

size_t nqi_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
	static const struct {
		uint8_t mask, lead;
		size_t len;
		uint32_t min;
	} forms[] = {
	    {0x80, 0x00, 1, 0},
	    {0xe0, 0xc0, 2, 0x80},
	    {0xf0, 0xe0, 3, 0x800},
	    {0xf8, 0xf0, 4, 0x10000},
	};
	for (size_t f = 0; n > 0 && f < 4; f++) {
		if ((p[0] & forms[f].mask) != forms[f].lead)
			continue;
		size_t len = forms[f].len;
		if (len > n)
			return 0;
		uint32_t c = p[0] & (uint8_t)~forms[f].mask;
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (p[i] & 0x3f);
		}
		if (c < forms[f].min || c > 0x10ffff ||
		    (c >= 0xd800 && c <= 0xdfff))
			return 0;
		*cp = c;
		return len;
	}
	return 0;
}

size_t nqi_utf8_char_len(const uint8_t *p, size_t n)
{
	uint32_t cp;
	return nqi_utf8_decode(p, n, &cp);
}

bool nqi_utf8_valid(const void *buf, size_t n)
{
	const uint8_t *p = buf;
	size_t i = 0, len = 1;
	while (i < n && len > 0) {
		if (p[i] < 0x80) { /* most text: ASCII, one byte each */
			i++;
			continue;
		}
		len = nqi_utf8_char_len(p + i, n - i);
		i += len;
	}
	return i == n;
}

int nqi_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return NQ_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return NQ_EINVAL;
	*out = v;
	return NQ_OK;
}

/* Splits "250ms" into 250 and "ms"; the unit is looked up by the caller. */
static int parse_scaled(const char *s, const char *const *units,
    const uint64_t *scale, size_t nunits, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return NQ_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return NQ_EINVAL;
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(end, units[i]) != 0)
			continue;
		if (scale[i] && v > UINT64_MAX / scale[i])
			return NQ_EINVAL;
		*out = v * scale[i];
		return NQ_OK;
	}
	return NQ_EINVAL;
}

int nqi_parse_duration_ms(const char *s, uint64_t *ms)
{
	static const char *const units[] = {"", "ms", "s", "m", "h", "d"};
	static const uint64_t scale[] = {1, 1, 1000, 60000, 3600000, 86400000};
	return parse_scaled(s, units, scale, 6, ms);
}

int nqi_parse_size(const char *s, uint64_t *bytes)
{
	static const char *const units[] = {"", "b", "k", "K", "KiB", "kb",
	    "KB", "m", "M", "MiB", "MB", "g", "G", "GiB", "GB"};
	static const uint64_t scale[] = {1, 1, 1u << 10, 1u << 10, 1u << 10,
	    1u << 10, 1u << 10, 1u << 20, 1u << 20, 1u << 20, 1u << 20,
	    1u << 30, 1u << 30, 1u << 30, 1u << 30};
	return parse_scaled(
	    s, units, scale, sizeof units / sizeof *units, bytes);
}

void nqi_id_format(uint64_t id, char out[NQ_ID_MAX])
{
	/* "%016llx" by hand: it runs for every job on the broker's core. */
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, id >>= 4)
		out[i] = hex[id & 15];
	out[16] = '\0';
}

/* Each hex digit's value plus one; 0 for any other byte, NUL included. */
/* clang-format off */
static const uint8_t hex_digit[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
    ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};
/* clang-format on */

int nqi_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;
	if (!s)
		return NQ_EINVAL;
	/* A NUL is no digit, so the loop never reads past a short id. */
	for (size_t n = 0; n < 16; n++) {
		unsigned d = hex_digit[(unsigned char)s[n]];
		if (!d)
			return NQ_EINVAL;
		v = v << 4 | (d - 1);
	}
	if (s[16])
		return NQ_EINVAL;
	*id = v;
	return NQ_OK;
}

int nqi_grow(void **arr, size_t *cap, size_t need, size_t size, size_t first)
{
	if (need <= *cap)
		return NQ_OK;
	/* Below this, doubling can neither wrap nor overflow ncap * size. */
	if (need > SIZE_MAX / 2 / size)
		return NQ_ENOMEM;
	size_t ncap = *cap ? *cap : first;
	while (ncap < need)
		ncap *= 2;
	/* memcpy: *arr is the caller's typed pointer, seen as a void *. */
	void *old, *p;
	memcpy(&old, arr, sizeof old);
	if (!(p = realloc(old, ncap * size)))
		return NQ_ENOMEM;
	memcpy(arr, &p, sizeof p);
	*cap = ncap;
	return NQ_OK;
}

void nqi_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom cannot fail on Linux >= 3.17 with a valid
			 * buffer; fall back to the clock rather than abort. */
			uint64_t t = nqi_now_us();
			memcpy(p, &t, len < sizeof t ? len : sizeof t);
			n = (ssize_t)(len < sizeof t ? len : sizeof t);
		}
		p += n;
		len -= (size_t)n;
	}
}

uint64_t nqi_random_u64(void)
{
	uint64_t v;
	nqi_random(&v, sizeof v);
	return v;
}

char *nqi_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}
