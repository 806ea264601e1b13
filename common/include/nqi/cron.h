/*
 * Cron expressions and their ticks in an IANA time zone.
 *
 * The dialect is croniter's (README, "Cron"): five fields (minute hour
 * day-of-month month day-of-week) or six with a leading seconds field;
 * '*', '?' (as '*' in the day fields), values, ranges a-b, lists a,b,
 * steps ("*" "/s", a/s, a-b/s), month names jan-dec and day names sun-sat, 0 or
 * 7 for Sunday, and the aliases @yearly @annually @monthly @weekly @daily
 * @midnight @hourly. When both day fields restrict (neither covers its
 * whole range) a day matches if either does; otherwise both must.
 *
 * Ticks are whole seconds. A local time that does not exist (DST gap)
 * fires once, at the first valid instant after the gap; one that occurs
 * twice (DST overlap) fires once, at its first occurrence.
 */
#ifndef NQI_CRON_H
#define NQI_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed expression: one bit per value each field allows. */
typedef struct nqi_cron {
	uint64_t sec;  /* bits 0-59 */
	uint64_t min;  /* bits 0-59 */
	uint32_t hour; /* bits 0-23 */
	uint32_t dom;  /* bits 1-31 */
	uint16_t mon;  /* bits 1-12 */
	uint8_t dow;   /* bits 0-6, 0 = Sunday */
	bool day_or;   /* both day fields restrict: either matches */
} nqi_cron;

/* Parses expr. Returns 0 and fills *out, or NQ_EINVAL with why naming the
 * field and the fault; an expression no date can match (as "0 0 30 2 *")
 * is refused too. */
int nqi_cron_parse(const char *expr, nqi_cron *out, char *why, size_t len);

/* The first local time matching c strictly after wall_s. Local times are
 * seconds since 1970-01-01 00:00 on the calendar, with no zone. Returns 0,
 * or NQ_ENOTFOUND when none comes within 100 years. */
int nqi_cron_next_wall(const nqi_cron *c, int64_t wall_s, int64_t *next_s);

/* An IANA time zone (ICU's calendar). One zone is used by one thread at a
 * time; different zones may be used by different threads at once. */
typedef struct nqi_cron_zone nqi_cron_zone;

/* Opens zone name ("UTC", "Europe/Berlin"). NQ_EINVAL with why for a name
 * the time-zone data does not know; NQ_ENOMEM. */
int nqi_cron_zone_open(
    const char *name, nqi_cron_zone **out, char *why, size_t len);
void nqi_cron_zone_close(nqi_cron_zone *z);
/* The zone's name as opened. */
const char *nqi_cron_zone_name(const nqi_cron_zone *z);
/* The version of the time-zone data in use ("2025b"). */
const char *nqi_cron_tzdata_version(void);

/* The first tick of c in zone z strictly after the instant after_s
 * (seconds since the epoch). Returns 0, NQ_ENOTFOUND (no tick within 100
 * years) or NQ_EINTERNAL (the zone's calendar failed). */
int nqi_cron_next(
    const nqi_cron *c, nqi_cron_zone *z, int64_t after_s, int64_t *next_s);

/* ---- schedules (the queues file's schedules:) ---- */

#define NQI_CRON_NAME_MAX 128 /* NQI_NAME_MAX */

/* What to do with the ticks that passed while the broker was down. */
typedef enum nqi_cron_missed {
	NQI_CRON_MISSED_SKIP, /* none of them run */
	NQI_CRON_MISSED_ONCE, /* one job stands for all of them */
} nqi_cron_missed;

/* One schedule: the job each tick enqueues. */
typedef struct nqi_schedule {
	char name[NQI_CRON_NAME_MAX + 1];
	char cron[256];
	char zone[NQI_CRON_NAME_MAX + 1];
	char queue[NQI_CRON_NAME_MAX + 1];
	char type[NQI_CRON_NAME_MAX + 1];
	uint8_t *payload; /* msgpack of the file's JSON, or NULL */
	size_t payload_len;
	int32_t priority;      /* 0: the queue's */
	uint32_t max_attempts; /* 0: the queue's */
	uint64_t timeout_ms;   /* 0: the queue's */
	uint32_t schema_version;
	nqi_cron_missed missed;
	unsigned line; /* in the queues file */
} nqi_schedule;

#endif
