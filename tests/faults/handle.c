/*
 * faultsim handle --log FILE --name WORKER: the command nq-worker runs for
 * each job (--handler '*=faultsim handle ...'). It reads the plan from
 * stdin and NQ_JOB_ID / NQ_ATTEMPT from the environment, records the run
 * like faultsim work does (lease token 0: nq-worker does not pass it on),
 * sleeps for the plan's work_ms and ends as the plan says: exit 0 printing
 * its exec name as the result, exit 1 (a failed attempt) or exit 65 (a
 * failure for good).
 *
 * The E record is written before the result is printed: when nq-worker was
 * killed, writing to its closed pipe may end this process, and the record
 * must still say that the handler finished.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faultsim.h"
#include "nq/nq.h"

static size_t read_stdin(char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len < cap && (n = read(0, buf + len, cap - len)) > 0)
		len += (size_t)n;
	return len;
}

int fs_cmd_handle(int argc, char **argv)
{
	const char *path = NULL, *name = NULL;
	const fs_flag flags[] = {{"log", NULL, &path}, {"name", NULL, &name}};
	int rv = fs_flags_parse("handle", argc, argv, flags, 2);
	if (rv != 0)
		return rv;
	const char *id = getenv("NQ_JOB_ID"), *att = getenv("NQ_ATTEMPT");
	if (!path || !name || !id || !att)
		return fs_usage("handle", "needs --log, --name and NQ_JOB_ID, "
		                          "NQ_ATTEMPT from nq-worker");
	char payload[FS_PAYLOAD_MAX], exec[96];
	size_t len = read_stdin(payload, sizeof payload);
	fs_plan p = {0};
	fs_log log;
	uint32_t attempt = (uint32_t)strtoul(att, NULL, 10);
	uint64_t start = fs_now_us();
	bool planned = fs_plan_parse(payload, len, &p) == NQ_OK;
	if (fs_log_open(&log, path) != 0)
		return 1;
	snprintf(
	    exec, sizeof exec, "%s.h%d.%" PRIu64, name, (int)getpid(), start);
	fs_log_line(&log, "S %s %s %s %" PRIu64 " %u 0 0 %" PRIu64 " 0 0", exec,
	    name, id, p.value, attempt, start);
	if (planned)
		fs_sleep_ms(p.work_ms);
	char out = planned ? fs_plan_outcome(&p, attempt) : 'P';
	fs_log_line(&log, "E %s %c %" PRIu64 " OK", exec, out, fs_now_us());
	fs_log_close(&log);
	if (out == 'S') {
		fputs(exec, stdout);
		return 0;
	}
	fprintf(stderr,
	    planned ? "planned failure of attempt %u\n"
	            : "payload is no faultsim plan (%u)\n",
	    attempt);
	return out == 'P' ? 65 : 1;
}
