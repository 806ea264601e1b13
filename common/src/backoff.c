#include "nqi/backoff.h"

uint64_t nqi_backoff_ceiling_ms(
    uint32_t attempt, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t ceiling = base_ms;
	if (ceiling == 0 || cap_ms == 0)
		return 0;
	for (uint32_t i = 1; i < attempt && ceiling < cap_ms; i++)
		ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
	return ceiling < cap_ms ? ceiling : cap_ms;
}

uint64_t nqi_backoff_ms(
    uint32_t attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd)
{
	uint64_t ceiling = nqi_backoff_ceiling_ms(attempt, base_ms, cap_ms);
	return ceiling == UINT64_MAX ? rnd : rnd % (ceiling + 1);
}
