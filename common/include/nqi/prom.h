/*
 * Prometheus text exposition (format 0.0.4) and lock-free histograms.
 *
 * nqi_prom is a growing text buffer that writes the format:
 *
 *	nqi_prom_family(p, "nq_jobs_enqueued_total", NQI_PROM_COUNTER,
 *	    "Jobs accepted by enqueue.");
 *	nqi_prom_sample(p, "nq_jobs_enqueued_total",
 *	    (const char *const[]){"queue", "mail", NULL}, 42);
 *
 * Metric names, label names and help texts are constants of the code: the
 * caller passes names the format allows (metric names
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, neither
 * "le" nor "quantile"),
 * counters ending in "_total", each family declared once with its samples
 * right after it. The tests check every service's output with promtool;
 * the builder does not check these again at run time.
 *
 * What can come from outside is checked (a refusal returns NQ_EINVAL and
 * leaves the text as it was; nqi_prom_error() then names what was wrong):
 * - label values are present and valid UTF-8;
 * - a series (name plus label set, in any order) appears once per scrape.
 * Label values and help are escaped as the format says (label values:
 * backslash, double quote, newline; help: backslash, newline).
 * Values print as integers when integral, otherwise with %.17g; NaN and
 * infinities print as NaN, +Inf, -Inf.
 *
 * A builder is used by one thread at a time. Histograms are different:
 * nqi_prom_hist_observe() may be called from any number of threads at once
 * (atomics, no lock), also while the histogram is being written out.
 */
#ifndef NQI_PROM_H
#define NQI_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nqi_prom nqi_prom;
typedef struct nqi_prom_hist nqi_prom_hist;

typedef enum nqi_prom_type {
	NQI_PROM_COUNTER,
	NQI_PROM_GAUGE,
	NQI_PROM_HISTOGRAM,
	NQI_PROM_SUMMARY,
} nqi_prom_type;

/* A summary's series: values of quantiles (ascending, each in [0, 1];
 * NaN when nothing was observed lately), and the count and sum of every
 * observation. */
typedef struct nqi_prom_summary_data {
	const double *quantiles, *values;
	size_t nquantiles;
	double sum;
	uint64_t count;
} nqi_prom_summary_data;

/* Most finite bucket bounds a histogram may have (+Inf comes on top). */
#define NQI_PROM_HIST_MAX_BOUNDS 64

/* Latency buckets in seconds, 0.5 ms to 5 min: enqueue-to-start waits and
 * run times of jobs both fall inside this range. */
#define NQI_PROM_LATENCY_NBOUNDS 18
extern const double nqi_prom_latency_bounds_s[NQI_PROM_LATENCY_NBOUNDS];

/* Allocates an empty builder. Returns 0 or NQ_ENOMEM. */
int nqi_prom_alloc(nqi_prom **out);
/* Frees the builder and its text; NULL is fine. */
void nqi_prom_free(nqi_prom *p);
/* Empties the builder for the next scrape, keeping its memory. */
void nqi_prom_reset(nqi_prom *p);

/* Declares a family: writes its # HELP and # TYPE lines. Samples written
 * next belong to it. Returns 0 or NQ_ENOMEM. */
int nqi_prom_family(
    nqi_prom *p, const char *name, nqi_prom_type type, const char *help);

/*
 * Writes one sample of the current counter or gauge family; name must be
 * the family's name. labels is NULL or a NULL-terminated array of key,
 * value pairs: (const char *const[]){"queue", "mail", "state", "ready",
 * NULL}. Returns 0, NQ_EINVAL or NQ_ENOMEM.
 */
int nqi_prom_sample(
    nqi_prom *p, const char *name, const char *const *labels, double value);

/*
 * Writes one series of the current histogram family: name_bucket lines
 * with cumulative counts (le ascending, +Inf last), then name_sum and
 * name_count. The counts come from one pass over the buckets, so the +Inf
 * bucket always equals name_count even while other threads observe. labels
 * as for nqi_prom_sample(). Returns 0, NQ_EINVAL or NQ_ENOMEM.
 */
int nqi_prom_histogram(nqi_prom *p, const char *name, const char *const *labels,
    const nqi_prom_hist *h);

/* Writes one series of the current summary family: a name{quantile="q"}
 * line per quantile, then name_sum and name_count. labels as for
 * nqi_prom_sample() (not "quantile"). Returns 0, NQ_EINVAL or NQ_ENOMEM. */
int nqi_prom_summary(nqi_prom *p, const char *name, const char *const *labels,
    const nqi_prom_summary_data *d);

/* The text written so far (NUL-terminated) and its length in bytes. The
 * pointer is valid until the next call that writes or frees. */
const char *nqi_prom_text(const nqi_prom *p, size_t *len);
/* What the last refused call got wrong, e.g. "value of label \"queue\" is
 * not valid UTF-8"; "" when no call failed yet. */
const char *nqi_prom_error(const nqi_prom *p);

/*
 * Allocates a histogram with the given finite, strictly increasing upper
 * bounds (1 to NQI_PROM_HIST_MAX_BOUNDS of them); a +Inf bucket is added.
 * On NQ_EINVAL err (when not NULL) names the bad bound. Returns 0,
 * NQ_EINVAL or NQ_ENOMEM.
 */
int nqi_prom_hist_alloc(nqi_prom_hist **out, const double *bounds,
    size_t nbounds, char *err, size_t errlen);
/* Frees the histogram; NULL is fine. No thread may still observe. */
void nqi_prom_hist_free(nqi_prom_hist *h);

/* Counts v in the first bucket whose bound is >= v and adds it to the sum.
 * Lock-free and safe from any thread. NaN is dropped: it would turn the
 * sum into NaN for the life of the process. */
void nqi_prom_hist_observe(nqi_prom_hist *h, double v);

/*
 * Moves every observation of from (with its share of the sum) into to,
 * which has the same bounds, and leaves from empty: how observations
 * made while a write was unconfirmed become visible once it is. Readers
 * of to may read at any time; from must have no other writer meanwhile.
 */
void nqi_prom_hist_move(nqi_prom_hist *to, nqi_prom_hist *from);
/* Forgets every observation of h (the write they counted failed). No
 * other thread may observe h meanwhile. */
void nqi_prom_hist_clear(nqi_prom_hist *h);

/* Observations so far, and their sum. */
uint64_t nqi_prom_hist_count(const nqi_prom_hist *h);
double nqi_prom_hist_sum(const nqi_prom_hist *h);

/*
 * Estimates the q-quantile (0 <= q <= 1) the way Prometheus'
 * histogram_quantile() does: find the bucket holding rank q * count and
 * interpolate linearly between its lower and upper bound (the lowest
 * bucket starts at 0 when its bound is positive). A rank in the +Inf
 * bucket gives the highest finite bound. Returns NaN for an empty
 * histogram or q outside [0, 1].
 */
double nqi_prom_hist_quantile(const nqi_prom_hist *h, double q);

#endif
