/*
 * faultsim sample --api URL --log FILE [--every-ms N]: the broker's own
 * view of the scenario's queue, for the limits scenario. Every --every-ms
 * (10) it asks the broker for the queue's stats and records how many jobs
 * were leased and ready; while the broker is down the asks fail and
 * nothing is recorded. Runs until SIGTERM.
 *
 * Records (samples.log):
 *   Q <sent_us> <answered_us> <leased> <ready> <in_flight_limit|->
 * The limit is "-" when this libnq does not know the field (a broker that
 * does not report it).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include "faultsim.h"
#include "nq/nq.h"

#define SAMPLE_TIMEOUT_MS 200

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void sample_once(nq_client *c, fs_log *log)
{
	nq_queue_stats *s = NULL;
	size_t n = 0;
	uint64_t leased, ready, limit, t0 = fs_now_us();
	if (nq_stats(c, FS_QUEUE, &s, &n, NULL) != NQ_OK)
		return;
	uint64_t t1 = fs_now_us();
	if (n == 1 && nq_queue_stats_get(s, 0, "leased", &leased) == NQ_OK &&
	    nq_queue_stats_get(s, 0, "ready", &ready) == NQ_OK) {
		char lim[24] = "-";
		if (nq_queue_stats_get(s, 0, "in_flight_limit", &limit) ==
		    NQ_OK)
			snprintf(lim, sizeof lim, "%" PRIu64, limit);
		fs_log_line(log,
		    "Q %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s", t0,
		    t1, leased, ready, lim);
	}
	nq_queue_stats_free(s);
}

int fs_cmd_sample(int argc, char **argv)
{
	const char *api = NULL, *path = NULL;
	uint64_t every_ms = 10;
	const fs_flag flags[] = {{"api", NULL, &api}, {"log", NULL, &path},
	    {"every-ms", &every_ms, NULL}};
	int rv = fs_flags_parse(
	    "sample", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!api || !path || every_ms == 0)
		return fs_usage("sample", "needs --api and --log, and "
		                          "--every-ms above 0");
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	nq_client_opts o = {.api_url = api, .timeout_ms = SAMPLE_TIMEOUT_MS};
	nq_client *c = NULL;
	fs_log log = {-1};
	if (fs_log_open(&log, path) != 0 || nq_client_open(&c, &o) != 0) {
		fs_log_close(&log);
		return fs_usage(
		    "sample", "cannot open %s or dial %s", path, api);
	}
	for (uint64_t next = fs_now_us(); !stopping;) {
		sample_once(c, &log);
		next += every_ms * 1000;
		uint64_t now = fs_now_us();
		if (next > now)
			fs_sleep_ms((next - now + 999) / 1000);
		else
			next = now; /* a slow ask: no burst to catch up */
	}
	nq_client_close(c);
	fs_log_close(&log);
	return 0;
}
