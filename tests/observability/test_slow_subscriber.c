/*
 * A subscriber that never reads does not slow the job path: the same
 * enqueue -> fetch -> complete load runs with and without one, and the
 * broker's PUB socket drops what that subscriber cannot take instead of
 * waiting for it. The drops are counted: once the subscriber reads again,
 * the sequence numbers of what it got have gaps that add up to the events
 * it missed.
 *
 * The subscriber is a plain TCP socket that speaks the SP handshake as a
 * SUB and has a tiny receive buffer, so that it stops the flow at once
 * (an nng SUB socket would keep reading and drop on its own side).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "obs.h"

#define JOBS 50000
#define BATCH 250
#define SP_SUB 0x21 /* nng's protocol number of sub0 */
#define SP_PUB 0x20

/* --sync none: fsync time would dwarf the cost of publishing and hide a
 * slowdown; this measures the path that events could slow. */
static const char *const broker_flags[] = {"--sync", "none", NULL};

/* ---- the load ---- */

static void enqueue_batch(nq_client *c, const char *queue, size_t n)
{
	nq_job_spec specs[BATCH];
	nq_enqueue_result res[BATCH];
	for (size_t i = 0; i < n; i++)
		specs[i] = (nq_job_spec){.queue = queue,
		    .type = "t",
		    .payload = "x",
		    .payload_len = 1,
		    .traceparent = OBS_TRACEPARENT};
	assert_int_equal(nq_enqueue_batch(c, specs, n, res), NQ_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(res[i].err, NQ_OK);
}

/* Fetches what is ready and completes it; returns how many. */
static size_t fetch_complete(nq_client *c, const char *queue)
{
	nq_job **jobs;
	size_t n;
	nq_completion done[BATCH];
	assert_int_equal(
	    nq_fetch(c, "obs-load", &queue, 1, BATCH, 0, 30000, &jobs, &n),
	    NQ_OK);
	for (size_t i = 0; i < n; i++)
		done[i] = (nq_completion){.id = nq_job_id(jobs[i]),
		    .lease_token = nq_job_lease_token(jobs[i]),
		    .outcome = NQ_OUTCOME_SUCCEEDED};
	if (n)
		assert_int_equal(nq_complete(c, "obs-load", done, n), NQ_OK);
	nq_jobs_free(jobs, n);
	return n;
}

/* Runs JOBS jobs of queue through the broker; returns the milliseconds
 * until the broker counted all of them succeeded. */
static uint64_t run_load(itest_env *e, const char *queue)
{
	nq_client *c;
	itest_qstats st;
	size_t enqueued = 0, done = 0;
	assert_int_equal(itest_client(e, 30000, &c), 0);
	uint64_t start = itest_now_ms();
	while (done < JOBS) {
		if (enqueued < JOBS) {
			enqueue_batch(c, queue, BATCH);
			enqueued += BATCH;
		}
		done += fetch_complete(c, queue);
		assert_true(itest_now_ms() - start < 60000);
	}
	for (;;) {
		assert_int_equal(itest_queue_stats(c, queue, &st, NULL), 0);
		if (st.succeeded_total >= JOBS)
			break;
		assert_true(itest_now_ms() - start < 60000);
		itest_sleep_ms(10);
	}
	nq_client_close(c);
	return itest_now_ms() - start;
}

/* ---- a subscriber that does not read ---- */

static int raw_sub_open(const char *url)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 5};
	int port = 0, small = 4096;
	uint8_t hello[8] = {0, 'S', 'P', 0, 0, SP_SUB, 0, 0}, peer[8];
	assert_int_equal(sscanf(url, "tcp://127.0.0.1:%d", &port), 1);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	/* Before connect, so the window it offers stays this small. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(write(fd, hello, sizeof hello), 8);
	assert_int_equal(recv(fd, peer, sizeof peer, MSG_WAITALL), 8);
	assert_memory_equal(peer, ((uint8_t[]){0, 'S', 'P', 0, 0, SP_PUB}), 6);
	return fd;
}

/* Reads everything the socket still has (until it is quiet for 1 s). */
static uint8_t *raw_drain(int fd, size_t *len)
{
	size_t n = 0, cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_non_null(buf);
	while (poll(&p, 1, 1000) > 0) {
		if (n == cap)
			assert_non_null(buf = realloc(buf, cap *= 2));
		ssize_t got = read(fd, buf + n, cap - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	*len = n;
	return buf;
}

typedef struct seen {
	uint64_t received, missed, first, last;
} seen;

/* Walks the SP frames (8-byte big-endian length, then the message) and
 * counts the job events and the gaps in their sequence numbers. */
static void count_events(const uint8_t *buf, size_t len, seen *s)
{
	size_t off = 0;
	while (off + 8 <= len) {
		uint64_t n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | buf[off + i];
		if (off + 8 + n > len)
			break; /* the drain stopped inside a message */
		const char *msg = (const char *)buf + off + 8;
		const char *nul = memchr(msg, '\0', n);
		off += 8 + n;
		if (!nul || strncmp(msg, "job.", 4) != 0)
			continue; /* the metrics topic */
		size_t tlen = (size_t)(nul - msg) + 1;
		Nq__V1__EventBatch *b = nq__v1__event_batch__unpack(
		    NULL, n - tlen, (const uint8_t *)msg + tlen);
		assert_non_null(b);
		for (size_t i = 0; i < b->n_events; i++) {
			uint64_t seq = b->events[i]->seq;
			if (s->last && seq > s->last + 1)
				s->missed += seq - s->last - 1;
			assert_true(seq > s->last);
			if (!s->first)
				s->first = seq;
			s->last = seq;
			s->received++;
		}
		nq__v1__event_batch__free_unpacked(b, NULL);
	}
}

static void test_slow_subscriber_neither_slows_the_job_path_nor_goes_uncounted(
    void **state)
{
	itest_env *e = *state;
	char *metrics;
	double published;
	seen s = {0};
	size_t len;

	assert_int_equal(itest_broker_start(e, broker_flags), 0);
	/* Warm the broker up (queue creation, first allocations) before
	 * anything is measured. */
	run_load(e, "warm");
	uint64_t without_ms = run_load(e, "without");

	int fd = raw_sub_open(e->events_url);
	itest_sleep_ms(200); /* the broker adds the pipe asynchronously */
	uint64_t with_ms = run_load(e, "with");
	fprintf(stderr,
	    "obs: %d jobs: %llu ms without a subscriber, %llu ms with one "
	    "that never reads\n",
	    JOBS, (unsigned long long)without_ms, (unsigned long long)with_ms);
	/* Generous: two cores shared with other tests make timings noisy;
	 * a publisher that waited for this subscriber would not finish at
	 * all (run_load gives up after 60 s). */
	assert_true(with_ms <= 3 * without_ms + 1000);

	/* The subscriber reads again: what it missed shows as gaps. */
	uint8_t *buf = raw_drain(fd, &len);
	close(fd);
	count_events(buf, len, &s);
	free(buf);
	assert_int_equal(obs_scrape(e->http_addr, &metrics), 0);
	assert_int_equal(
	    obs_sample(metrics, "nq_events_published_total", &published), 0);
	free(metrics);
	fprintf(stderr,
	    "obs: the stalled subscriber got %llu events (seq %llu to %llu) "
	    "and missed %llu; the broker published %.0f\n",
	    (unsigned long long)s.received, (unsigned long long)s.first,
	    (unsigned long long)s.last, (unsigned long long)s.missed,
	    published);
	/* Three events a job (enqueued, leased, succeeded or not): far more
	 * than fit in the buffers of a subscriber that does not read. */
	assert_true(s.received > 0);
	assert_true(s.missed > 0);
	assert_int_equal(s.received + s.missed, s.last - s.first + 1);
	assert_true(published >= (double)s.last);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_slow_subscriber_neither_slows_the_job_path_nor_goes_uncounted,
	        itest_setup, itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
