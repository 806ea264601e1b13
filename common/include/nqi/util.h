/* Small shared helpers: clocks, names, durations, ids, error mapping. */
#ifndef NQI_UTIL_H
#define NQI_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "nq/nq.h"

#define NQI_NAME_MAX 128
#define NQI_PROTOCOL_VERSION 1

/* Wall clock in microseconds since the epoch. */
uint64_t nqi_now_us(void);
/* Monotonic clock in milliseconds; for timeouts only. */
uint64_t nqi_mono_ms(void);
/* The wall-clock time ms from now, as pthread_cond_timedwait wants it for
 * a condition variable on the default clock. */
struct timespec nqi_realtime_in(uint64_t ms);
/* A condition variable on the monotonic clock, and a wait on one until
 * nqi_mono_ms() reaches deadline_ms (or a signal comes). */
void nqi_cond_init_mono(pthread_cond_t *cv);
void nqi_cond_wait_mono(
    pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ms);

/* The time ms milliseconds after us (microseconds), saturating at
 * UINT64_MAX instead of wrapping: durations come from clients, and a
 * wrapped time would lie in the past. */
static inline uint64_t nqi_us_plus_ms(uint64_t us, uint64_t ms)
{
	uint64_t d;
	if (__builtin_mul_overflow(ms, (uint64_t)1000, &d) ||
	    __builtin_add_overflow(us, d, &d))
		return UINT64_MAX;
	return d;
}

/* True when s matches [A-Za-z0-9._-]{1,128} (queue and type names). */
bool nqi_name_valid(const char *s);

/* Decodes the UTF-8 character at p, which has n bytes left, into *cp and
 * returns its length (1-4); 0 when the bytes there are not one well-formed
 * character: an overlong form, a surrogate, a code point past U+10FFFF, a
 * sequence cut short or a stray continuation byte. *cp is written only on
 * success. */
size_t nqi_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp);
/* The length nqi_utf8_decode would return, without the code point. */
size_t nqi_utf8_char_len(const uint8_t *p, size_t n);
/* True when all n bytes are well-formed UTF-8. */
bool nqi_utf8_valid(const void *buf, size_t n);

/* Cuts white space off both ends of s, in place; returns where the rest
 * starts. */
char *nqi_trim(char *s);

/* Parses "250ms", "30s", "5m", "2h", "1d" or a bare number of milliseconds.
 * Returns 0 and writes *ms, or NQ_EINVAL. */
int nqi_parse_duration_ms(const char *s, uint64_t *ms);
/* Parses "262144", "256k", "256KiB", "64m", "1g" into bytes. */
int nqi_parse_size(const char *s, uint64_t *bytes);
/* Parses a whole unsigned decimal number, rejecting junk and overflow. */
int nqi_parse_u64(const char *s, uint64_t *out);

/* Job ids: a 64-bit time-ordered number shown as 16 lowercase hex digits,
 * so that sorting the text sorts by enqueue order. */
void nqi_id_format(uint64_t id, char out[NQ_ID_MAX]);
int nqi_id_parse(const char *s, uint64_t *id);

/* Wire code (nq.v1.Code) of an error, and the error of a wire code. */
int nqi_err_to_code(int err);
int nqi_err_from_code(int code);
/* Maps an nng error (NNG_ETIMEDOUT, ...) to an nq error. */
int nqi_err_from_nng(int nng_rv);

/* Makes room for need elements of size bytes in the array *arr, which has
 * room for *cap: the capacity doubles, from first when the array is empty,
 * until need fit. 0, or NQ_ENOMEM with *arr and *cap unchanged. */
int nqi_grow(void **arr, size_t *cap, size_t need, size_t size, size_t first);
/* nqi_grow for a typed array (arr and cap are lvalues, need is evaluated
 * twice). The room is checked inline: a push that fits costs a compare. */
#define NQI_GROW(arr, cap, need, first)                                        \
	((need) <= (cap) ? NQ_OK                                               \
	                 : nqi_grow((void **)&(arr), &(cap), (need),           \
	                       sizeof *(arr), (first)))

/* Fills buf with cryptographically random bytes (getrandom). */
void nqi_random(void *buf, size_t len);
uint64_t nqi_random_u64(void);

#endif
