/* Retry backoff: capped exponential with full jitter. The delay before retry
 * n (n >= 1) is uniform in [0, min(cap, base * 2^(n-1))], so a crowd of
 * failing jobs spreads out instead of returning in lockstep. */
#ifndef NQI_BACKOFF_H
#define NQI_BACKOFF_H

#include <stdint.h>

/* The upper bound of the delay before retry `attempt` (1-based). */
uint64_t nqi_backoff_ceiling_ms(
    uint32_t attempt, uint64_t base_ms, uint64_t cap_ms);
/* A delay for retry `attempt` drawn with the random value rnd. */
uint64_t nqi_backoff_ms(
    uint32_t attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd);

#endif
