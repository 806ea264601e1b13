/*
 * The broker's work socket: fetch and extend. Before the input runs, the
 * queues the seeds name ("emails", "reports") get jobs, one of them with
 * an ordering key; then every record of the input is one request on the
 * work socket. Leases the broker grants can be extended by "#N" (see
 * broker_session.h).
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
	session_enqueue(&s, "emails", 0, "");
	session_enqueue(&s, "emails", 1, "user-42");
	session_enqueue(&s, "emails", 2, "user-42");
	session_enqueue(&s, "reports", 3, "");
	while (fuzz_record_next(&r, &rec, &len))
		session_request(&s, rec, len, true);
	session_check_jobs(&s);
	session_close(&s);
	return 0;
}
