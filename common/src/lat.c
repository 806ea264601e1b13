#include "nqi/lat.h"

#include <string.h>

uint64_t nqi_lat_bucket_low(uint32_t i)
{
	const uint32_t per = 1u << NQI_LAT_SUB_BITS;
	if (i < per)
		return i;
	uint32_t e = (i >> NQI_LAT_SUB_BITS) + NQI_LAT_SUB_BITS - 1;
	return (uint64_t)(per + (i & (per - 1))) << (e - NQI_LAT_SUB_BITS);
}

void nqi_lat_tick(nqi_lat *h, uint64_t now_us)
{
	if (!h->since_us) {
		h->since_us = now_us;
		return;
	}
	if (now_us < h->since_us + NQI_LAT_HALF_US)
		return;
	if (now_us >= h->since_us + 2 * (uint64_t)NQI_LAT_HALF_US)
		memset(h->n, 0, sizeof h->n); /* the whole window went by */
	h->cur = (h->cur + 1) % NQI_LAT_HALVES;
	memset(h->n[h->cur], 0, sizeof h->n[h->cur]);
	h->since_us = now_us;
}

/* Observations of bucket i in the window. */
static uint64_t in_window(const nqi_lat *h, uint32_t i)
{
	uint64_t n = 0;
	for (uint32_t k = 0; k < NQI_LAT_HALVES; k++)
		n += h->n[k][i];
	return n;
}

uint64_t nqi_lat_recent(const nqi_lat *h)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < NQI_LAT_BUCKETS; i++)
		n += in_window(h, i);
	return n;
}

uint64_t nqi_lat_quantile_us(const nqi_lat *h, double q)
{
	uint64_t total = nqi_lat_recent(h);
	if (!total)
		return 0;
	q = q < 0 ? 0 : q > 1 ? 1 : q;
	double rank = q * (double)total, below = 0;
	for (uint32_t i = 0; i < NQI_LAT_BUCKETS; i++) {
		uint64_t n = in_window(h, i);
		if (!n || below + (double)n < rank) {
			below += (double)n;
			continue;
		}
		uint64_t lo = nqi_lat_bucket_low(i);
		uint64_t hi = i + 1 < NQI_LAT_BUCKETS
		                  ? nqi_lat_bucket_low(i + 1)
		                  : lo; /* the last one has no upper bound */
		double within = (rank - below) / (double)n;
		return lo + (uint64_t)(within * (double)(hi - lo));
	}
	return nqi_lat_bucket_low(NQI_LAT_BUCKETS - 1);
}
