/* Prints next ticks for the differential check against croniter
 * (cron_diff.py): each input line "EXPR<TAB>ZONE<TAB>AFTER" gives one
 * output line, the first tick after the instant AFTER (seconds), "none",
 * or "error REASON" for an expression or zone that is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/cron.h"

static void answer(char *line)
{
	char *expr = strtok(line, "\t"), *zone = strtok(NULL, "\t"),
	     *after = strtok(NULL, "\t\n");
	char why[256];
	nqi_cron c;
	nqi_cron_zone *z;
	int64_t next;
	if (!expr || !zone || !after) {
		printf("error malformed line\n");
		return;
	}
	if (nqi_cron_parse(expr, &c, why, sizeof why) != 0 ||
	    nqi_cron_zone_open(zone, &z, why, sizeof why) != 0) {
		printf("error %s\n", why);
		return;
	}
	if (nqi_cron_next(&c, z, strtoll(after, NULL, 10), &next) == 0)
		printf("%lld\n", (long long)next);
	else
		printf("none\n");
	nqi_cron_zone_close(z);
}

int main(void)
{
	char line[1024];
	while (fgets(line, sizeof line, stdin))
		answer(line);
	return 0;
}
