/* Policy keys: parsing, checking and printing their values (the list is
 * NQI_POLICY_KEYS, nqi/policy.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/policy.h"
#include "nqi/util.h"

const nqi_policy_key *nqi_policy_keys(void)
{
#define PK_ROW_(name, kind, key, def, min, max, now, help)                     \
	{#name, key, def, help, now, NQI_PT_##kind, (int64_t)(min),            \
	    (uint64_t)(max), offsetof(nqi_policy, name)},
	static const nqi_policy_key rows[] = {NQI_POLICY_KEYS(PK_ROW_)};
#undef PK_ROW_
	return rows;
}

const nqi_policy_key *nqi_policy_key_find(const char *key)
{
	const nqi_policy_key *k = nqi_policy_keys();
	for (size_t i = 0; i < NQI_PK_COUNT; i++)
		if (strcmp(k[i].key, key) == 0 || strcmp(k[i].name, key) == 0)
			return &k[i];
	return NULL;
}

const char *nqi_policy_kind_name(nqi_policy_kind kind)
{
	static const char *const names[] = {"count", "integer", "duration",
	    "ratio", "rate", "bool", "list", "versions"};
	return names[kind];
}

size_t nqi_policy_table_md(char *buf, size_t len)
{
	const nqi_policy_key *k = nqi_policy_keys();
	size_t n = (size_t)snprintf(buf, len,
	    "| key | kind | default | what it does |\n|---|---|---|---|\n");
	for (size_t i = 0; i < NQI_PK_COUNT; i++) {
		if (!k[i].now)
			continue;
		n += (size_t)snprintf(buf + (n < len ? n : len),
		    n < len ? len - n : 0, "| `%s` | %s | %s%s%s | %s |\n",
		    k[i].key, nqi_policy_kind_name(k[i].kind),
		    k[i].def[0] ? "`" : "", k[i].def[0] ? k[i].def : "none",
		    k[i].def[0] ? "`" : "", k[i].help);
	}
	return n;
}

static size_t key_index(const nqi_policy_key *k)
{
	return (size_t)(k - nqi_policy_keys());
}

static void *member(nqi_policy *p, const nqi_policy_key *k)
{
	return (char *)p + k->offset;
}

static const void *cmember(const nqi_policy *p, const nqi_policy_key *k)
{
	return (const char *)p + k->offset;
}

static int parse_i64(const char *s, int64_t *v)
{
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return NQ_EINVAL;
	*v = x;
	return NQ_OK;
}

/* A number that must not be negative, NaN or infinite. */
static int parse_double(const char *s, char **end, double *v)
{
	errno = 0;
	*v = strtod(s, end);
	if (errno || *end == s || !isfinite(*v) || *v < 0 || s[0] == '-')
		return NQ_EINVAL;
	return NQ_OK;
}

/* "50/s", "600/m", "3600/h": per second. */
static int parse_rate(const char *s, double *per_s)
{
	static const struct {
		const char *unit;
		double s;
	} units[] = {{"/s", 1}, {"/m", 60}, {"/h", 3600}};
	char *end;
	double v;
	if (parse_double(s, &end, &v) != 0 || v <= 0)
		return NQ_EINVAL;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (strcmp(end, units[i].unit) == 0) {
			v /= units[i].s;
			/* One in 12 days to a billion a second: prints and
			 * parses back exactly as %g. */
			if (v < 1e-6 || v > 1e9)
				return NQ_EINVAL;
			*per_s = v;
			return NQ_OK;
		}
	return NQ_EINVAL;
}

/* Each comma-separated item is a valid name ("" is not a list). */
static int check_list(const char *s)
{
	char item[NQI_NAME_MAX + 1];
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n > NQI_NAME_MAX)
			return NQ_EINVAL;
		memcpy(item, p, n);
		item[n] = '\0';
		if (!nqi_name_valid(item))
			return NQ_EINVAL;
		if (!p[n])
			return NQ_OK;
		p += n + 1;
	}
}

/* "N" or "N-M", 1 <= N <= M; *end past it. */
static int parse_range(const char *s, const char **end, uint32_t *lo,
    uint32_t *hi, char *why, size_t len)
{
	char *e;
	errno = 0;
	unsigned long a = *s >= '0' && *s <= '9' ? strtoul(s, &e, 10) : 0, b;
	if (!a || errno || a > UINT32_MAX)
		return snprintf(
		           why, len, "a version range is N or N-M, N >= 1"),
		       NQ_EINVAL;
	b = a;
	if (*e == '-') {
		const char *t = e + 1;
		b = *t >= '0' && *t <= '9' ? strtoul(t, &e, 10) : 0;
		if (errno || b > UINT32_MAX || b < a)
			return snprintf(why, len,
			           "version range \"%.*s\" ends before it "
			           "starts",
			           (int)(e - s), s),
			       NQ_EINVAL;
	}
	*end = e;
	*lo = (uint32_t)a;
	*hi = (uint32_t)b;
	return NQ_OK;
}

/* "type:N-M,type:N": each type a name, each range valid. */
static int check_versions(const char *s, char *why, size_t len)
{
	for (const char *p = s;;) {
		const char *colon = strchr(p, ':'), *end;
		uint32_t lo, hi;
		char type[NQI_NAME_MAX + 1];
		size_t n = colon ? (size_t)(colon - p) : 0;
		if (!colon || n == 0 || n > NQI_NAME_MAX || memchr(p, ',', n))
			return snprintf(why, len,
			           "schema_versions maps a type to a range, "
			           "as TYPE: \"1-3\""),
			       NQ_EINVAL;
		memcpy(type, p, n);
		type[n] = '\0';
		if (!nqi_name_valid(type))
			return snprintf(why, len, "'%.40s' is not a type name",
			           type),
			       NQ_EINVAL;
		if (parse_range(colon + 1, &end, &lo, &hi, why, len) != 0)
			return NQ_EINVAL;
		if (*end == '\0')
			return NQ_OK;
		if (*end != ',')
			return snprintf(why, len,
			           "a version range is N or N-M, N >= 1"),
			       NQ_EINVAL;
		p = end + 1;
	}
}

static int bad_number(const nqi_policy_key *k, char *why, size_t len)
{
	if (k->min == 1 && k->kind == NQI_PT_COUNT)
		snprintf(why, len, "must be a whole number from 1 to %" PRIu64,
		    k->max);
	else if (k->kind == NQI_PT_DURATION)
		snprintf(why, len,
		    "must be a duration (250ms, 30s, 5m, 2h) from %" PRId64
		    "ms to %" PRIu64 "ms",
		    k->min, k->max);
	else
		snprintf(why, len,
		    "must be a whole number from %" PRId64 " to %" PRIu64,
		    k->min, k->max);
	return NQ_EINVAL;
}

/* Parses a number-like value into *out (uint64/int64/double/bool). */
static int parse_scalar(
    const nqi_policy_key *k, const char *s, void *out, char *why, size_t len)
{
	uint64_t u = 0;
	int64_t i = 0;
	char *end;
	switch (k->kind) {
	case NQI_PT_COUNT:
	case NQI_PT_DURATION:
		if ((k->kind == NQI_PT_COUNT ? nqi_parse_u64(s, &u)
		                             : nqi_parse_duration_ms(s, &u)) ||
		    (int64_t)u < k->min || u > k->max)
			return bad_number(k, why, len);
		*(uint64_t *)out = u;
		return NQ_OK;
	case NQI_PT_INT:
		if (parse_i64(s, &i) || i < k->min || i > (int64_t)k->max)
			return bad_number(k, why, len);
		*(int64_t *)out = i;
		return NQ_OK;
	case NQI_PT_RATIO:
		if (parse_double(s, &end, out) || *end || *(double *)out > 1)
			return snprintf(
			           why, len, "must be a ratio from 0 to 1"),
			       NQ_EINVAL;
		return NQ_OK;
	case NQI_PT_RATE:
		if (parse_rate(s, out))
			return snprintf(why, len,
			           "must be a rate from 1e-6/s to 1e9/s, as "
			           "50/s, "
			           "600/m or 3600/h"),
			       NQ_EINVAL;
		return NQ_OK;
	case NQI_PT_BOOL:
		if (strcmp(s, "true") && strcmp(s, "false"))
			return snprintf(why, len, "must be true or false"),
			       NQ_EINVAL;
		*(bool *)out = strcmp(s, "true") == 0;
		return NQ_OK;
	default:
		return NQ_EINVAL;
	}
}

int nqi_policy_parse(const nqi_policy_key *k, const char *text, nqi_policy *p,
    char *why, size_t len)
{
	if (k->kind == NQI_PT_LIST || k->kind == NQI_PT_VERSIONS) {
		if (k->kind == NQI_PT_LIST && check_list(text) != 0)
			return snprintf(why, len,
			           "must be a list of names "
			           "([A-Za-z0-9._-]{1,128})"),
			       NQ_EINVAL;
		if (k->kind == NQI_PT_VERSIONS &&
		    check_versions(text, why, len) != 0)
			return NQ_EINVAL;
		char *copy = strdup(text);
		if (!copy)
			return snprintf(why, len, "out of memory"), NQ_ENOMEM;
		char **m = member(p, k);
		if (p->set & (1u << key_index(k)))
			free(*m);
		*m = copy;
	} else {
		union {
			uint64_t u;
			int64_t i;
			double d;
			bool b;
		} v;
		if (parse_scalar(k, text, &v, why, len) != 0)
			return NQ_EINVAL;
		size_t size = k->kind == NQI_PT_BOOL ? sizeof(bool) : 8;
		memcpy(member(p, k), &v, size);
	}
	p->set |= 1u << key_index(k);
	return NQ_OK;
}

int nqi_policy_parse_pair(
    const char *pair, nqi_policy *p, char *why, size_t len)
{
	char key[96], reason[256];
	const char *eq = strchr(pair, '=');
	size_t n = eq ? (size_t)(eq - pair) : strlen(pair);
	snprintf(key, sizeof key, "%.*s", (int)(n < 95 ? n : 95), pair);
	const nqi_policy_key *k = nqi_policy_key_find(key);
	if (!k)
		return snprintf(why, len, "%s: not a policy key", key),
		       NQ_EINVAL;
	if (!eq)
		return snprintf(why, len, "%s: give it as %s=VALUE", key, key),
		       NQ_EINVAL;
	if (nqi_policy_parse(k, eq + 1, p, reason, sizeof reason) != 0)
		return snprintf(why, len, "%s: %s", k->key, reason), NQ_EINVAL;
	return NQ_OK;
}

/* ms as the largest unit that keeps it exact: 90000 -> "90s". */
static void format_duration(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
	    {"ms", 1}};
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (ms % units[i].ms == 0 && (ms || units[i].ms == 1)) {
			snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms,
			    units[i].unit);
			return;
		}
}

void nqi_policy_format(
    const nqi_policy_key *k, const nqi_policy *p, char *buf, size_t len)
{
	const void *m = cmember(p, k);
	buf[0] = '\0';
	if (!(p->set & (1u << key_index(k))))
		return;
	switch (k->kind) {
	case NQI_PT_COUNT:
		snprintf(buf, len, "%" PRIu64, *(const uint64_t *)m);
		break;
	case NQI_PT_INT:
		snprintf(buf, len, "%" PRId64, *(const int64_t *)m);
		break;
	case NQI_PT_DURATION:
		format_duration(*(const uint64_t *)m, buf, len);
		break;
	case NQI_PT_RATIO:
		snprintf(buf, len, "%g", *(const double *)m);
		break;
	case NQI_PT_RATE:
		snprintf(buf, len, "%g/s", *(const double *)m);
		break;
	case NQI_PT_BOOL:
		snprintf(buf, len, "%s", *(const bool *)m ? "true" : "false");
		break;
	case NQI_PT_LIST:
	case NQI_PT_VERSIONS:
		snprintf(buf, len, "%s", *(char *const *)m);
		break;
	}
}

int nqi_policy_copy_key(
    nqi_policy *dst, const nqi_policy *src, const nqi_policy_key *k)
{
	uint32_t bit = 1u << key_index(k);
	nqi_policy_unset(dst, k);
	if (!(src->set & bit))
		return NQ_OK;
	if (k->kind == NQI_PT_LIST || k->kind == NQI_PT_VERSIONS) {
		char *copy = strdup(*(char *const *)cmember(src, k));
		if (!copy)
			return NQ_ENOMEM;
		*(char **)member(dst, k) = copy;
	} else {
		memcpy(member(dst, k), cmember(src, k),
		    k->kind == NQI_PT_BOOL ? sizeof(bool) : 8);
	}
	dst->set |= bit;
	return NQ_OK;
}

void nqi_policy_unset(nqi_policy *p, const nqi_policy_key *k)
{
	uint32_t bit = 1u << key_index(k);
	if ((p->set & bit) &&
	    (k->kind == NQI_PT_LIST || k->kind == NQI_PT_VERSIONS)) {
		free(*(char **)member(p, k));
		*(char **)member(p, k) = NULL;
	}
	p->set &= ~bit;
}

const char *nqi_policy_check(const nqi_policy *p, char *why, size_t len)
{
	uint32_t both = NQI_PK_BIT(backoff_base) | NQI_PK_BIT(backoff_cap);
	if ((p->set & both) == both && p->backoff_base > p->backoff_cap) {
		snprintf(
		    why, len, "backoff.cap must not be below backoff.base");
		return "backoff.cap";
	}
	return NULL;
}

void nqi_policy_clear(nqi_policy *p)
{
	const nqi_policy_key *k = nqi_policy_keys();
	for (size_t i = 0; i < NQI_PK_COUNT; i++)
		nqi_policy_unset(p, &k[i]);
	memset(p, 0, sizeof *p);
}

bool nqi_policy_list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		size_t m = strcspn(p, ",");
		if (m == n && memcmp(p, name, n) == 0)
			return true;
		p += m + (p[m] == ',');
	}
	return false;
}

bool nqi_policy_versions_of(
    const char *versions, const char *type, uint32_t *lo, uint32_t *hi)
{
	size_t n = strlen(type);
	char why[8];
	for (const char *p = versions; p && *p;) {
		const char *colon = strchr(p, ':'), *end;
		if (!colon ||
		    parse_range(colon + 1, &end, lo, hi, why, sizeof why) != 0)
			return false;
		if ((size_t)(colon - p) == n && memcmp(p, type, n) == 0)
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}
