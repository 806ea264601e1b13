/* Cron expressions (croniter's dialect, see nqi/cron.h) and their ticks
 * in a time zone through ICU's calendar. */
#include "nqi/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "nq/nq.h"

#define ZONE_MAX 128
#define YEARS_MAX 100

/* ---- the expression ---- */

typedef struct field_def {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] stands for lo + i */
} field_def;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may",
    "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const field_def fields[F_COUNT] = {
    {"seconds", 0, 59, NULL},
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

static const struct {
	const char *alias, *expr;
} aliases[] = {
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

typedef struct parse_ctx {
	const field_def *f;
	char *why;
	size_t len;
} parse_ctx;

static int refuse(parse_ctx *c, const char *fmt, const char *item)
{
	char what[160];
	snprintf(what, sizeof what, fmt, item);
	snprintf(c->why, c->len, "%s field: %s", c->f->name, what);
	return NQ_EINVAL;
}

/* A number or a name of the field; *end past it. */
static int value(parse_ctx *c, const char *s, const char **end, int *out)
{
	if (isdigit((unsigned char)*s)) {
		long v = strtol(s, (char **)end, 10);
		if (v < c->f->lo || v > c->f->hi || *end - s > 4) {
			char what[64];
			snprintf(what, sizeof what,
			    "%.8s is out of range %d-%d", s, c->f->lo,
			    c->f->hi);
			return refuse(c, "%s", what);
		}
		*out = (int)v;
		return 0;
	}
	for (int i = 0; c->f->names && c->f->names[i]; i++)
		if (strncasecmp(s, c->f->names[i], 3) == 0 &&
		    !isalpha((unsigned char)s[3])) {
			*end = s + 3;
			*out = c->f->lo + i;
			return 0;
		}
	return refuse(c, "'%.16s' is not a value here", s);
}

/* One item of a list: '*', '?', a value, a range, each with an optional
 * step. Adds its values to *bits. */
static int item(parse_ctx *c, const char *s, bool day_field, uint64_t *bits)
{
	int lo = c->f->lo, hi = c->f->hi, step = 1;
	const char *p = s;
	bool star = *p == '*' || (*p == '?' && day_field);
	if (star) {
		p++;
	} else {
		if (value(c, p, &p, &lo) != 0)
			return NQ_EINVAL;
		if (*p == '-') {
			if (value(c, p + 1, &p, &hi) != 0)
				return NQ_EINVAL;
			/* "fri-sun": Sunday as 7 */
			if (c->f == &fields[F_DOW] && hi == 0 && lo > 0)
				hi = 7;
			if (hi < lo)
				return refuse(c, "range %s runs backwards", s);
		} else if (*p != '/') {
			hi = lo;
		}
	}
	if (*p == '/') {
		char *e;
		long v = strtol(p + 1, &e, 10);
		if (!isdigit((unsigned char)p[1]) || v < 1 || v > 1000 || *e)
			return refuse(c, "step in '%s' must be 1 or more", s);
		step = (int)v;
		p = e;
	}
	if (*p)
		return refuse(c, "'%s' is not a value, range or step", s);
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ull << v;
	return 0;
}

/* A whole field: items separated by commas. */
static int field(parse_ctx *c, char *text, uint64_t *bits)
{
	bool day = c->f == &fields[F_DOM] || c->f == &fields[F_DOW];
	*bits = 0;
	for (char *it = text, *comma; it; it = comma ? comma + 1 : NULL) {
		if ((comma = strchr(it, ',')))
			*comma = '\0';
		if (!*it)
			return refuse(c, "%s", "an empty item in a list");
		if (item(c, it, day, bits) != 0)
			return NQ_EINVAL;
	}
	return 0;
}

static const int month_days[13] = {
    0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* With the day fields ANDed, some month must have the smallest day. */
static bool can_fire(const nqi_cron *e)
{
	if (e->day_or || e->dom == 0xfffffffeu)
		return true;
	int first = __builtin_ctz(e->dom);
	for (int m = 1; m <= 12; m++)
		if ((e->mon >> m & 1) && month_days[m] >= first)
			return true;
	return false;
}

static int split(char *text, char **f, int *n)
{
	*n = 0;
	for (char *save = NULL, *t = strtok_r(text, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (*n == 6)
			return NQ_EINVAL;
		f[(*n)++] = t;
	}
	return *n == 5 || *n == 6 ? 0 : NQ_EINVAL;
}

static const char *unalias(const char *expr)
{
	for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
		if (strcasecmp(expr, aliases[i].alias) == 0)
			return aliases[i].expr;
	return expr;
}

static int fill(nqi_cron *e, char **f, int n, char *why, size_t len)
{
	uint64_t bits[F_COUNT] = {1}; /* no seconds field: second 0 */
	for (int i = 0; i < n; i++) {
		int fi = i + (n == 5);
		parse_ctx c = {&fields[fi], why, len};
		if (field(&c, f[i], &bits[fi]) != 0)
			return NQ_EINVAL;
	}
	if (bits[F_DOW] & 0x80)
		bits[F_DOW] = (bits[F_DOW] | 1) & 0x7f;
	e->sec = bits[F_SEC];
	e->min = bits[F_MIN];
	e->hour = (uint32_t)bits[F_HOUR];
	e->dom = (uint32_t)bits[F_DOM];
	e->mon = (uint16_t)bits[F_MON];
	e->dow = (uint8_t)bits[F_DOW];
	e->day_or = e->dom != 0xfffffffeu && e->dow != 0x7f;
	if (!can_fire(e)) {
		snprintf(why, len, "no date matches (day %d of no month named)",
		    __builtin_ctz(e->dom));
		return NQ_EINVAL;
	}
	return 0;
}

int nqi_cron_parse(const char *expr, nqi_cron *out, char *why, size_t len)
{
	char text[256], *f[6];
	int n;
	nqi_cron e;
	expr = unalias(expr);
	if (strlen(expr) >= sizeof text) {
		snprintf(why, len, "longer than %zu bytes", sizeof text - 1);
		return NQ_EINVAL;
	}
	memcpy(text, expr, strlen(expr) + 1);
	if (split(text, f, &n) != 0) {
		snprintf(why, len,
		    "has 5 fields (minute hour day month weekday) or 6 "
		    "(seconds first)");
		return NQ_EINVAL;
	}
	if (fill(&e, f, n, why, len) != 0)
		return NQ_EINVAL;
	*out = e;
	return 0;
}

/* ---- the calendar, with no zone ---- */

/* Days since 1970-01-01 of a date (proleptic Gregorian), and back. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

typedef struct civil {
	int64_t y;
	int m, d, h, mi, s;
} civil;

static civil civil_from(int64_t t)
{
	civil c;
	int64_t z = (t >= 0 ? t : t - 86399) / 86400, sod = t - z * 86400;
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	c.d = (int)(doy - (153 * mp + 2) / 5 + 1);
	c.m = (int)(mp < 10 ? mp + 3 : mp - 9);
	c.y = yoe + era * 400 + (c.m <= 2);
	c.h = (int)(sod / 3600);
	c.mi = (int)(sod / 60 % 60);
	c.s = (int)(sod % 60);
	return c;
}

static int64_t civil_to(int64_t y, int m, int d, int h, int mi, int s)
{
	return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
}

static int days_in(int64_t y, int m)
{
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 ? 28 + leap : month_days[m];
}

static bool day_ok(const nqi_cron *e, const civil *c)
{
	int wd = (int)((days_from_civil(c->y, c->m, c->d) % 7 + 11) % 7);
	bool dom = e->dom >> c->d & 1, dow = e->dow >> wd & 1;
	return e->day_or ? dom || dow : dom && dow;
}

/* The smallest bit of mask at or above from, or -1. */
static int next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	uint64_t m = mask & (~0ull << from);
	return m ? __builtin_ctzll(m) : -1;
}

int nqi_cron_next_wall(const nqi_cron *e, int64_t wall_s, int64_t *next_s)
{
	int64_t t = wall_s + 1;
	int64_t end_y = civil_from(t).y + YEARS_MAX;
	for (;;) {
		civil c = civil_from(t);
		int h, mi, s;
		if (c.y > end_y)
			return NQ_ENOTFOUND;
		if (!(e->mon >> c.m & 1)) {
			t = c.m == 12 ? civil_to(c.y + 1, 1, 1, 0, 0, 0)
			              : civil_to(c.y, c.m + 1, 1, 0, 0, 0);
		} else if (c.d > days_in(c.y, c.m) || !day_ok(e, &c)) {
			t = civil_to(c.y, c.m, c.d, 0, 0, 0) + 86400;
		} else if ((h = next_bit(e->hour, c.h)) != c.h) {
			t = h < 0 ? civil_to(c.y, c.m, c.d, 0, 0, 0) + 86400
			          : civil_to(c.y, c.m, c.d, h, 0, 0);
		} else if ((mi = next_bit(e->min, c.mi)) != c.mi) {
			t = mi < 0 ? civil_to(c.y, c.m, c.d, h + 1, 0, 0)
			           : civil_to(c.y, c.m, c.d, h, mi, 0);
		} else if ((s = next_bit(e->sec, c.s)) != c.s) {
			t = s < 0 ? civil_to(c.y, c.m, c.d, h, mi + 1, 0)
			          : civil_to(c.y, c.m, c.d, h, mi, s);
		} else {
			*next_s = t;
			return 0;
		}
	}
}

/* ---- the zone ---- */

struct nqi_cron_zone {
	UCalendar *cal;
	bool utc; /* local time is the instant: no calendar needed */
	char name[ZONE_MAX + 1];
};

int nqi_cron_zone_open(
    const char *name, nqi_cron_zone **out, char *why, size_t len)
{
	UChar id[ZONE_MAX + 1], canon[ZONE_MAX + 1];
	UErrorCode st = U_ZERO_ERROR;
	UBool known = false;
	if (strlen(name) > ZONE_MAX || !*name) {
		snprintf(why, len, "a zone name has 1 to %d bytes", ZONE_MAX);
		return NQ_EINVAL;
	}
	u_uastrcpy(id, name);
	ucal_getCanonicalTimeZoneID(id, -1, canon, ZONE_MAX + 1, &known, &st);
	if (U_FAILURE(st) || !known) {
		snprintf(why, len,
		    "unknown time zone '%.64s' (an IANA name, as "
		    "Europe/Berlin)",
		    name);
		return NQ_EINVAL;
	}
	nqi_cron_zone *z = calloc(1, sizeof *z);
	if (!z)
		return NQ_ENOMEM;
	z->cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
	if (U_FAILURE(st)) {
		free(z);
		snprintf(
		    why, len, "time zone '%.64s': %s", name, u_errorName(st));
		return NQ_EINVAL;
	}
	/* Gregorian back to the start of time, as the wall arithmetic. */
	ucal_setGregorianChange(z->cal, -8.64e15, &st);
	ucal_setAttribute(z->cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
	ucal_setAttribute(
	    z->cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
	char cid[ZONE_MAX + 1];
	u_austrcpy(cid, canon);
	z->utc = strcmp(cid, "Etc/UTC") == 0 || strcmp(cid, "Etc/GMT") == 0;
	snprintf(z->name, sizeof z->name, "%s", name);
	*out = z;
	return 0;
}

void nqi_cron_zone_close(nqi_cron_zone *z)
{
	if (!z)
		return;
	ucal_close(z->cal);
	free(z);
}

const char *nqi_cron_zone_name(const nqi_cron_zone *z)
{
	return z->name;
}

const char *nqi_cron_tzdata_version(void)
{
	UErrorCode st = U_ZERO_ERROR;
	const char *v = ucal_getTZDataVersion(&st);
	return U_SUCCESS(st) && v ? v : "unknown";
}

/* The local time of instant t. */
static int wall_of(nqi_cron_zone *z, int64_t t, int64_t *wall)
{
	UErrorCode st = U_ZERO_ERROR;
	ucal_setMillis(z->cal, (UDate)t * 1000.0, &st);
	int32_t off = ucal_get(z->cal, UCAL_ZONE_OFFSET, &st) +
	              ucal_get(z->cal, UCAL_DST_OFFSET, &st);
	if (U_FAILURE(st))
		return NQ_EINTERNAL;
	*wall = t + off / 1000;
	return 0;
}

/* The instant of local time w: its first occurrence, or the first valid
 * instant after a gap it falls in. */
static int instant_of(nqi_cron_zone *z, int64_t w, int64_t *t)
{
	UErrorCode st = U_ZERO_ERROR;
	civil c = civil_from(w);
	ucal_clear(z->cal);
	ucal_setDateTime(
	    z->cal, (int32_t)c.y, c.m - 1, c.d, c.h, c.mi, c.s, &st);
	UDate ms = ucal_getMillis(z->cal, &st);
	if (U_FAILURE(st))
		return NQ_EINTERNAL;
	*t = (int64_t)(ms / 1000.0);
	return 0;
}

/* The end of the overlap instant t lies in, as a local time of the
 * offset before it (off, seconds): the first local time that does not
 * repeat. */
static int overlap_end(nqi_cron_zone *z, int64_t t, int64_t off, int64_t *end)
{
	UErrorCode st = U_ZERO_ERROR;
	UDate tr = 0;
	ucal_setMillis(z->cal, (UDate)t * 1000.0, &st);
	if (U_FAILURE(st) ||
	    !ucal_getTimeZoneTransitionDate(
	        z->cal, UCAL_TZ_TRANSITION_PREVIOUS_INCLUSIVE, &tr, &st) ||
	    U_FAILURE(st))
		return NQ_EINTERNAL;
	*end = (int64_t)(tr / 1000.0) + off;
	return 0;
}

int nqi_cron_next(
    const nqi_cron *e, nqi_cron_zone *z, int64_t after_s, int64_t *next_s)
{
	int64_t w, wn, t, end;
	if (z->utc)
		return nqi_cron_next_wall(e, after_s, next_s);
	int rv = wall_of(z, after_s, &w);
	while (rv == 0) {
		if ((rv = nqi_cron_next_wall(e, w, &wn)) != 0 ||
		    (rv = instant_of(z, wn, &t)) != 0)
			break;
		if (t > after_s) {
			*next_s = t;
			return 0;
		}
		/* A local time that came before after_s: after_s lies in the
		 * second pass of an overlap, whose times already fired at
		 * offset wn - t. Those still to come at that offset are past
		 * after_s + (wn - t); after the overlap, all are. */
		if ((rv = overlap_end(z, after_s, wn - t, &end)) != 0)
			break;
		w = after_s + (wn - t) < end - 1 ? after_s + (wn - t) : end - 1;
		if (w < wn)
			w = wn;
	}
	return rv;
}
