#include "nqi/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/util.h"

/* More label pairs than any nq series needs; bounds the scratch arrays. */
#define LABELS_MAX 32

const double nqi_prom_latency_bounds_s[NQI_PROM_LATENCY_NBOUNDS] = {
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
};

typedef struct strbuf {
	char *s;
	size_t len;
	size_t cap;
} strbuf;

/* One series already written in the current family, by its label set. */
typedef struct series {
	uint64_t hash;
	char *key;
} series;

struct nqi_prom {
	strbuf text;
	char *fam;      /* current family; NULL before the first */
	series *series; /* of the current family */
	size_t nseries;
	size_t capseries;
	strbuf key; /* scratch for series keys */
	char err[256];
};

struct nqi_prom_hist {
	size_t nbounds;
	double bounds[NQI_PROM_HIST_MAX_BOUNDS];
	/* Per bucket, not cumulative, so observe touches one counter; the
	 * last one is +Inf. The sum is a double kept as its bits. */
	_Atomic uint64_t counts[NQI_PROM_HIST_MAX_BOUNDS + 1];
	_Atomic uint64_t sum_bits;
};

static const char *const type_names[] = {
    "counter", "gauge", "histogram", "summary"};

/* ---- growing text ---- */

/* Appends n bytes and keeps the text NUL-terminated. On NQ_ENOMEM the
 * buffer is unchanged. */
static int sb_put(strbuf *b, const char *s, size_t n)
{
	if (NQI_GROW(b->s, b->cap, b->len + n + 1, 4096) != 0)
		return NQ_ENOMEM;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return NQ_OK;
}

static int sb_str(strbuf *b, const char *s)
{
	return sb_put(b, s, strlen(s));
}

/* Drops what was written after mark: how a failed call leaves no trace. */
static void sb_truncate(strbuf *b, size_t mark)
{
	b->len = mark;
	if (b->s)
		b->s[mark] = '\0';
}

/* Writes s with backslash and newline escaped, and double quotes too when
 * quotes is set (label values; help text keeps its quotes). */
static int sb_escaped(strbuf *b, const char *s, bool quotes)
{
	int rv = NQ_OK;
	while (*s && rv == NQ_OK) {
		size_t run = strcspn(s, quotes ? "\\\n\"" : "\\\n");
		rv = sb_put(b, s, run);
		s += run;
		if (rv || !*s)
			break;
		rv = sb_str(b, *s == '\n'  ? "\\n"
		               : *s == '"' ? "\\\""
		                           : "\\\\");
		s++;
	}
	return rv;
}

/* True when v prints exactly as a 64-bit integer. (No trunc(): the
 * library would need libm for that alone.) */
static bool integral(double v)
{
	return v > -9223372036854775808.0 && v < 9223372036854775808.0 &&
	       v == (double)(long long)v;
}

/* Sample values: integers when integral (what people expect to read for
 * counts), otherwise all 17 significant digits so nothing is lost. */
static void format_value(double v, char out[40])
{
	if (isnan(v))
		snprintf(out, 40, "NaN");
	else if (isinf(v))
		snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (integral(v))
		snprintf(out, 40, "%lld", (long long)v);
	else
		snprintf(out, 40, "%.17g", v);
}

/* Bucket bounds: le is a label, matched as text in queries, so it gets the
 * shortest form that reads back as the same double ("0.0005", not
 * "0.00050000000000000001"). */
static void format_bound(double v, char out[40])
{
	if (integral(v)) {
		snprintf(out, 40, "%lld", (long long)v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, 40, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* ---- validation ---- */

/* Records why a call was refused; returns NQ_EINVAL for the caller. */
__attribute__((format(printf, 2, 3))) static int refuse(
    nqi_prom *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	return NQ_EINVAL;
}

/* Label values may come from outside (queue names, handler types): each
 * must be present and valid UTF-8. Metric and label names are constants of
 * the code, checked by promtool in the tests, not here. */
static int check_label_value(nqi_prom *p, const char *k, const char *v)
{
	if (!v)
		return refuse(p, "label \"%s\" has no value", k);
	if (!nqi_utf8_valid(v, strlen(v)))
		return refuse(p, "value of label \"%s\" is not valid UTF-8", k);
	return NQ_OK;
}

/* Checks the NULL-terminated key, value list and counts its pairs. */
static int check_labels(nqi_prom *p, const char *const *labels, size_t *n)
{
	size_t i = 0;
	int rv;
	for (; labels && labels[2 * i]; i++) {
		if (i == LABELS_MAX)
			return refuse(p, "more than %d labels", LABELS_MAX);
		rv = check_label_value(p, labels[2 * i], labels[2 * i + 1]);
		if (rv != NQ_OK)
			return rv;
	}
	*n = i;
	return NQ_OK;
}

/* ---- series already written ---- */

static void forget_series(nqi_prom *p)
{
	for (size_t i = 0; i < p->nseries; i++)
		free(p->series[i].key);
	p->nseries = 0;
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
	return h;
}

/* The label set in name order and escaped, so that two orders of the
 * same labels give the same key and no two sets collide. */
static int series_key(nqi_prom *p, const char *const *labels, size_t n)
{
	size_t order[LABELS_MAX];
	int rv = NQ_OK;
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		for (; j > 0 &&
		       strcmp(labels[2 * order[j - 1]], labels[2 * i]) > 0;
		     j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	sb_truncate(&p->key, 0);
	for (size_t i = 0; i < n && rv == NQ_OK; i++) {
		rv = sb_str(&p->key, labels[2 * order[i]]);
		if (rv == NQ_OK)
			rv = sb_put(&p->key, "=\"", 2);
		if (rv == NQ_OK)
			rv =
			    sb_escaped(&p->key, labels[2 * order[i] + 1], true);
		if (rv == NQ_OK)
			rv = sb_put(&p->key, "\",", 2);
	}
	if (rv == NQ_OK && !p->key.s)
		rv = sb_put(&p->key, "", 0);
	return rv;
}

/* Refuses a label set already written in this family, else remembers it.
 * On failure nothing is remembered. */
static int claim_series(nqi_prom *p, const char *const *labels, size_t n)
{
	int rv = series_key(p, labels, n);
	if (rv != NQ_OK)
		return rv;
	uint64_t h = fnv1a(p->key.s, p->key.len);
	for (size_t i = 0; i < p->nseries; i++)
		if (p->series[i].hash == h &&
		    strcmp(p->series[i].key, p->key.s) == 0)
			return refuse(p, "series %s{%s} is written twice",
			    p->fam, p->key.s);
	if (NQI_GROW(p->series, p->capseries, p->nseries + 1, 32) != 0)
		return NQ_ENOMEM;
	char *key = strdup(p->key.s);
	if (!key)
		return NQ_ENOMEM;
	p->series[p->nseries++] = (series){h, key};
	return NQ_OK;
}

static void unclaim_last(nqi_prom *p)
{
	free(p->series[--p->nseries].key);
}

/* ---- builder ---- */

int nqi_prom_alloc(nqi_prom **out)
{
	nqi_prom *p = calloc(1, sizeof *p);
	if (!p)
		return NQ_ENOMEM;
	*out = p;
	return NQ_OK;
}

void nqi_prom_reset(nqi_prom *p)
{
	sb_truncate(&p->text, 0);
	forget_series(p);
	free(p->fam);
	p->fam = NULL;
	p->err[0] = '\0';
}

void nqi_prom_free(nqi_prom *p)
{
	if (!p)
		return;
	nqi_prom_reset(p);
	free(p->text.s);
	free(p->key.s);
	free(p->series);
	free(p);
}

const char *nqi_prom_text(const nqi_prom *p, size_t *len)
{
	if (len)
		*len = p->text.len;
	return p->text.s ? p->text.s : "";
}

const char *nqi_prom_error(const nqi_prom *p)
{
	return p->err;
}

static int put_family(
    strbuf *b, const char *name, nqi_prom_type type, const char *help)
{
	int rv = sb_str(b, "# HELP ");
	if (rv == NQ_OK)
		rv = sb_str(b, name);
	if (rv == NQ_OK)
		rv = sb_put(b, " ", 1);
	if (rv == NQ_OK)
		rv = sb_escaped(b, help, false);
	if (rv == NQ_OK)
		rv = sb_str(b, "\n# TYPE ");
	if (rv == NQ_OK)
		rv = sb_str(b, name);
	if (rv == NQ_OK)
		rv = sb_put(b, " ", 1);
	if (rv == NQ_OK)
		rv = sb_str(b, type_names[type]);
	if (rv == NQ_OK)
		rv = sb_put(b, "\n", 1);
	return rv;
}

int nqi_prom_family(
    nqi_prom *p, const char *name, nqi_prom_type type, const char *help)
{
	size_t mark = p->text.len;
	char *fam = strdup(name);
	int rv = fam ? put_family(&p->text, name, type, help) : NQ_ENOMEM;
	if (rv != NQ_OK) {
		sb_truncate(&p->text, mark);
		free(fam);
		return rv;
	}
	forget_series(p);
	free(p->fam);
	p->fam = fam;
	return NQ_OK;
}

/* Writes `name suffix{k="v",...,le="x"} value\n`, labels in the order
 * given; le is NULL except for buckets (and quantiles, with quantile set). */
static int put_series_as(strbuf *b, const char *name, const char *suffix,
    const char *const *labels, size_t n, const char *lk, const char *le,
    const char *value)
{
	int rv = sb_str(b, name);
	if (rv == NQ_OK)
		rv = sb_str(b, suffix);
	if (rv == NQ_OK && (n || le))
		rv = sb_put(b, "{", 1);
	for (size_t i = 0; i < n && rv == NQ_OK; i++) {
		if (i)
			rv = sb_put(b, ",", 1);
		if (rv == NQ_OK)
			rv = sb_str(b, labels[2 * i]);
		if (rv == NQ_OK)
			rv = sb_put(b, "=\"", 2);
		if (rv == NQ_OK)
			rv = sb_escaped(b, labels[2 * i + 1], true);
		if (rv == NQ_OK)
			rv = sb_put(b, "\"", 1);
	}
	if (rv == NQ_OK && le) {
		rv = n ? sb_put(b, ",", 1) : NQ_OK;
		if (rv == NQ_OK)
			rv = sb_str(b, lk);
		if (rv == NQ_OK)
			rv = sb_put(b, "=\"", 2);
		if (rv == NQ_OK)
			rv = sb_str(b, le);
		if (rv == NQ_OK)
			rv = sb_put(b, "\"", 1);
	}
	if (rv == NQ_OK && (n || le))
		rv = sb_put(b, "}", 1);
	if (rv == NQ_OK)
		rv = sb_put(b, " ", 1);
	if (rv == NQ_OK)
		rv = sb_str(b, value);
	if (rv == NQ_OK)
		rv = sb_put(b, "\n", 1);
	return rv;
}

static int put_series(strbuf *b, const char *name, const char *suffix,
    const char *const *labels, size_t n, const char *le, const char *value)
{
	return put_series_as(b, name, suffix, labels, n, "le", le, value);
}

int nqi_prom_sample(
    nqi_prom *p, const char *name, const char *const *labels, double value)
{
	size_t n, mark = p->text.len;
	char v[40];
	int rv = check_labels(p, labels, &n);
	if (rv == NQ_OK)
		rv = claim_series(p, labels, n);
	if (rv != NQ_OK)
		return rv;
	format_value(value, v);
	rv = put_series(&p->text, name, "", labels, n, NULL, v);
	if (rv != NQ_OK) {
		sb_truncate(&p->text, mark);
		unclaim_last(p);
	}
	return rv;
}

/* Cumulative bucket counts in one pass; returns the total (+Inf). */
static uint64_t hist_snapshot(
    const nqi_prom_hist *h, uint64_t cum[NQI_PROM_HIST_MAX_BOUNDS + 1])
{
	uint64_t total = 0;
	for (size_t i = 0; i <= h->nbounds; i++) {
		total +=
		    atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		cum[i] = total;
	}
	return total;
}

static int put_hist(strbuf *b, const char *name, const char *const *labels,
    size_t n, const nqi_prom_hist *h)
{
	uint64_t cum[NQI_PROM_HIST_MAX_BOUNDS + 1];
	uint64_t total = hist_snapshot(h, cum);
	char le[40], v[40];
	int rv = NQ_OK;
	for (size_t i = 0; i <= h->nbounds && rv == NQ_OK; i++) {
		if (i < h->nbounds)
			format_bound(h->bounds[i], le);
		else
			snprintf(le, sizeof le, "+Inf");
		format_value((double)cum[i], v);
		rv = put_series(b, name, "_bucket", labels, n, le, v);
	}
	format_value(nqi_prom_hist_sum(h), v);
	if (rv == NQ_OK)
		rv = put_series(b, name, "_sum", labels, n, NULL, v);
	format_value((double)total, v);
	if (rv == NQ_OK)
		rv = put_series(b, name, "_count", labels, n, NULL, v);
	return rv;
}

int nqi_prom_histogram(nqi_prom *p, const char *name, const char *const *labels,
    const nqi_prom_hist *h)
{
	size_t n, mark = p->text.len;
	int rv = NQ_OK;
	if (!h)
		rv = refuse(p, "histogram \"%s\" has no data", name);
	if (rv == NQ_OK)
		rv = check_labels(p, labels, &n);
	if (rv == NQ_OK)
		rv = claim_series(p, labels, n);
	if (rv != NQ_OK)
		return rv;
	rv = put_hist(&p->text, name, labels, n, h);
	if (rv != NQ_OK) {
		sb_truncate(&p->text, mark);
		unclaim_last(p);
	}
	return rv;
}

static int put_summary(strbuf *b, const char *name, const char *const *labels,
    size_t n, const nqi_prom_summary_data *d)
{
	char q[40], v[40];
	int rv = NQ_OK;
	for (size_t i = 0; i < d->nquantiles && rv == NQ_OK; i++) {
		format_bound(d->quantiles[i], q);
		format_value(d->values[i], v);
		rv = put_series_as(b, name, "", labels, n, "quantile", q, v);
	}
	format_value(d->sum, v);
	if (rv == NQ_OK)
		rv = put_series(b, name, "_sum", labels, n, NULL, v);
	format_value((double)d->count, v);
	if (rv == NQ_OK)
		rv = put_series(b, name, "_count", labels, n, NULL, v);
	return rv;
}

int nqi_prom_summary(nqi_prom *p, const char *name, const char *const *labels,
    const nqi_prom_summary_data *d)
{
	size_t n, mark = p->text.len;
	int rv = check_labels(p, labels, &n);
	if (rv == NQ_OK)
		rv = claim_series(p, labels, n);
	if (rv != NQ_OK)
		return rv;
	rv = put_summary(&p->text, name, labels, n, d);
	if (rv != NQ_OK) {
		sb_truncate(&p->text, mark);
		unclaim_last(p);
	}
	return rv;
}

/* ---- histograms ---- */

static int check_bounds(
    const double *bounds, size_t n, char *err, size_t errlen)
{
	if (!bounds || n == 0 || n > NQI_PROM_HIST_MAX_BOUNDS) {
		if (err)
			snprintf(err, errlen,
			    "a histogram needs 1 to %d "
			    "bounds, got %zu",
			    NQI_PROM_HIST_MAX_BOUNDS, bounds ? n : 0);
		return NQ_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(bounds[i])) {
			if (err)
				snprintf(err, errlen,
				    "bound %zu (%g) is not "
				    "finite",
				    i, bounds[i]);
			return NQ_EINVAL;
		}
		if (i > 0 && !(bounds[i] > bounds[i - 1])) {
			if (err)
				snprintf(err, errlen,
				    "bound %zu (%g) is not "
				    "above bound %zu (%g)",
				    i, bounds[i], i - 1, bounds[i - 1]);
			return NQ_EINVAL;
		}
	}
	return NQ_OK;
}

int nqi_prom_hist_alloc(nqi_prom_hist **out, const double *bounds,
    size_t nbounds, char *err, size_t errlen)
{
	int rv = check_bounds(bounds, nbounds, err, errlen);
	if (rv != NQ_OK)
		return rv;
	nqi_prom_hist *h = calloc(1, sizeof *h);
	if (!h)
		return NQ_ENOMEM;
	h->nbounds = nbounds;
	memcpy(h->bounds, bounds, nbounds * sizeof *bounds);
	for (size_t i = 0; i <= nbounds; i++)
		atomic_init(&h->counts[i], 0);
	atomic_init(&h->sum_bits, 0); /* the bits of +0.0 */
	*out = h;
	return NQ_OK;
}

void nqi_prom_hist_free(nqi_prom_hist *h)
{
	free(h);
}

/* Adds v to the sum with a compare-and-swap loop: there is no atomic add
 * for doubles. */
static void hist_add_sum(nqi_prom_hist *h, double v)
{
	uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	uint64_t new;
	do {
		double d;
		memcpy(&d, &old, sizeof d);
		d += v;
		memcpy(&new, &d, sizeof new);
	} while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, new,
	    memory_order_relaxed, memory_order_relaxed));
}

void nqi_prom_hist_observe(nqi_prom_hist *h, double v)
{
	size_t lo = 0, hi = h->nbounds;
	if (isnan(v))
		return;
	while (lo < hi) { /* first bound >= v; nbounds is +Inf */
		size_t mid = lo + (hi - lo) / 2;
		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
	hist_add_sum(h, v);
}

/* Plain loads and stores on from, which has no other writer: most calls
 * find it empty (a group that only enqueued), and then cost no atomic
 * read-modify-write at all. */
void nqi_prom_hist_move(nqi_prom_hist *to, nqi_prom_hist *from)
{
	for (size_t i = 0; i <= from->nbounds; i++) {
		uint64_t n = atomic_load_explicit(
		    &from->counts[i], memory_order_relaxed);
		if (!n)
			continue;
		atomic_store_explicit(
		    &from->counts[i], 0, memory_order_relaxed);
		atomic_fetch_add_explicit(
		    &to->counts[i], n, memory_order_relaxed);
	}
	if (atomic_load_explicit(&from->sum_bits, memory_order_relaxed)) {
		hist_add_sum(to, nqi_prom_hist_sum(from));
		atomic_store_explicit(&from->sum_bits, 0, memory_order_relaxed);
	}
}

void nqi_prom_hist_clear(nqi_prom_hist *h)
{
	for (size_t i = 0; i <= h->nbounds; i++)
		atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
	atomic_store_explicit(&h->sum_bits, 0, memory_order_relaxed);
}

uint64_t nqi_prom_hist_count(const nqi_prom_hist *h)
{
	uint64_t cum[NQI_PROM_HIST_MAX_BOUNDS + 1];
	return hist_snapshot(h, cum);
}

double nqi_prom_hist_sum(const nqi_prom_hist *h)
{
	uint64_t bits =
	    atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

double nqi_prom_hist_quantile(const nqi_prom_hist *h, double q)
{
	uint64_t cum[NQI_PROM_HIST_MAX_BOUNDS + 1];
	uint64_t total;
	size_t i = 0;
	if (!(q >= 0 && q <= 1) || (total = hist_snapshot(h, cum)) == 0)
		return NAN;
	double rank = q * (double)total;
	/* The first non-empty bucket whose cumulative count reaches rank. */
	while (i < h->nbounds && (cum[i] == 0 || (double)cum[i] < rank))
		i++;
	if (i == h->nbounds)
		return h->bounds[h->nbounds - 1];
	if (i == 0 && h->bounds[0] <= 0)
		return h->bounds[0];
	double lower = i ? h->bounds[i - 1] : 0;
	uint64_t below = i ? cum[i - 1] : 0;
	double in_bucket = (double)(cum[i] - below);
	return lower + (h->bounds[i] - lower) * ((rank - below) / in_bucket);
}
