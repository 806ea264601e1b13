/*
 * The broker's api socket: every record of the input is one request, fed
 * in order to a fresh embedded broker (enqueue, get, wait, cancel, stats,
 * pause, resume, list, and whatever else the bytes say). Every reply must
 * be a well-formed Reply, an enqueue must answer each job, and every job
 * enqueued must stay readable with sane fields.
 */
#include "broker_session.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	session s;
	fuzz_records r = {data, size};
	const uint8_t *rec;
	size_t len;
	session_open(&s);
	while (fuzz_record_next(&r, &rec, &len))
		session_request(&s, rec, len, false);
	session_check_jobs(&s);
	session_close(&s);
	return 0;
}
