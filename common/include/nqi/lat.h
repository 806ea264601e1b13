/*
 * Recent latencies: how long the jobs of the last 30 to 60 seconds took
 * for something (a queue's wait from ready to leased, its run from lease
 * to completion), kept in a fixed-size log-linear histogram of
 * microseconds: four buckets per power of two, so a quantile is read
 * within a quarter of its value, from 1 us to 2^40 us (some 12 days;
 * longer ones count in the last bucket). The window is two halves of 30 s:
 * observations go into the current half, and nqi_lat_tick drops the older
 * half when the current one is 30 s old. It also counts every observation
 * since start, and their sum, for a Prometheus summary.
 *
 * Observing is an index from a count of leading zeros and three adds: no
 * allocation, no lock. One thread owns a histogram (the broker's core);
 * readers elsewhere read copies of what nqi_lat_quantile_us returned.
 */
#ifndef NQI_LAT_H
#define NQI_LAT_H

#include <stdint.h>

#define NQI_LAT_SUB_BITS 2 /* 2^2 buckets per power of two */
#define NQI_LAT_BUCKETS 160
#define NQI_LAT_HALVES 2
#define NQI_LAT_HALF_US 30000000u /* one half of the window: 30 s */

typedef struct nqi_lat {
	uint32_t n[NQI_LAT_HALVES][NQI_LAT_BUCKETS];
	uint32_t cur;      /* the half observations go into */
	uint64_t since_us; /* when the current half began (0: not yet) */
	uint64_t count;    /* observations since start */
	uint64_t sum_us;   /* and their sum */
} nqi_lat;

/* The bucket of v microseconds. */
static inline uint32_t nqi_lat_bucket(uint64_t v)
{
	if (v < (1u << NQI_LAT_SUB_BITS))
		return (uint32_t)v;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
	uint32_t i = ((e - NQI_LAT_SUB_BITS + 1) << NQI_LAT_SUB_BITS) +
	             (uint32_t)((v >> (e - NQI_LAT_SUB_BITS)) &
	                        ((1u << NQI_LAT_SUB_BITS) - 1));
	return i < NQI_LAT_BUCKETS ? i : NQI_LAT_BUCKETS - 1;
}

/* Counts one latency of v microseconds in the current half. */
static inline void nqi_lat_observe(nqi_lat *h, uint64_t v)
{
	h->n[h->cur][nqi_lat_bucket(v)]++;
	h->count++;
	h->sum_us += v;
}

/* Moves the window on to now_us: once the current half is NQI_LAT_HALF_US
 * old, the older half is emptied and becomes the current one (both, when
 * nothing was ticked for a whole window). Call it now and then (each
 * second); observations between two ticks count in the current half. */
void nqi_lat_tick(nqi_lat *h, uint64_t now_us);

/* Observations in the window. */
uint64_t nqi_lat_recent(const nqi_lat *h);

/* The q-quantile (0 <= q <= 1) of the window in microseconds,
 * interpolated within its bucket; 0 when the window is empty. */
uint64_t nqi_lat_quantile_us(const nqi_lat *h, double q);

/* The lowest value of bucket i (the next bucket's is its upper bound). */
uint64_t nqi_lat_bucket_low(uint32_t i);

#endif
