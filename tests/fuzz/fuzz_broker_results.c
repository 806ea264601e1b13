/*
 * The broker's results socket: completions. Before the input runs, jobs
 * with one, two and ten attempts (two sharing an ordering key) are
 * enqueued and leased. Then every record of the input is one
 * CompletionBatch, "#N" standing for the N-th lease (see
 * broker_session.h); after each batch a fetch leases whatever became
 * ready again (a release, a retry without backoff), so later records can
 * complete it once more.
 */
#include "broker_session.h"
#include "fuzz.h"

static const char *const queues[] = {"emails", "reports"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	session s;
	fuzz_records r = {data, size};
	const uint8_t *rec;
	size_t len;
	session_open(&s);
	session_enqueue(&s, "emails", 1, "");
	session_enqueue(&s, "emails", 2, "user-42");
	session_enqueue(&s, "reports", 0, "");
	session_enqueue(&s, "reports", 2, "user-42");
	session_fetch(&s, queues, 2, 10, 0);
	while (fuzz_record_next(&r, &rec, &len)) {
		session_completions(&s, rec, len);
		session_fetch(&s, queues, 2, 10, 0);
	}
	session_check_jobs(&s);
	session_close(&s);
	return 0;
}
