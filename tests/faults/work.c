/*
 * faultsim work: a worker on libnq's low-level protocol (fetch, extend,
 * complete) that records everything the checker needs about its leases.
 *
 * Each of --slots threads has its own client, so its own connections: a
 * killed worker drops them all, and the broker releases their leases. A
 * slot fetches one job at a time, "works" for the plan's work_ms while
 * extending the lease every third of it, and completes with the plan's
 * outcome. It keeps working and completes even when an extension was
 * refused: a worker cannot know that its lease lapsed, and the broker must
 * then ignore the late completion.
 *
 * Records (one file per worker incarnation):
 *   S <exec> <worker> <id> <value> <attempt> <token> <fetch_send_us>
 *     <fetch_recv_us> <lease_expires_us> <lease_ms>
 *   X <exec> <send_us> <recv_us> <ERR|OK>       one lease extension
 *   C <exec> <S|F|P>                            the completion about to go
 *   E <exec> <S|F|P> <send_us> <ERR|OK>         the completion sent
 * The result of a success is the exec name, so the job's final result
 * names the one execution the broker accepted. C comes before the send:
 * a worker killed while the broker commits its completion leaves no E,
 * and the checker must still know that the run it kept succeeded.
 *
 * SIGTERM: every slot finishes its job and the process exits.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"

#define WORK_MAX_SLOTS 32
#define WORK_TIMEOUT_MS 2000
#define WORK_STEP_MS 25

typedef struct work_cfg {
	const char *work, *results, *log, *name;
	uint64_t slots, lease_ms, wait_ms;
} work_cfg;

typedef struct work_slot {
	const work_cfg *cfg;
	fs_log *log;
	int no;
	uint64_t seq;
	nq_client *c;
} work_slot;

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Sleeps through the job's work, extending the lease every third of it. */
static void work_for(
    work_slot *s, const nq_job *job, const char *exec, uint32_t work_ms)
{
	uint64_t lease = s->cfg->lease_ms, step_us = lease * 1000 / 3;
	uint64_t end = fs_now_us() + (uint64_t)work_ms * 1000;
	uint64_t last = fs_now_us();
	for (uint64_t now = last; now < end; now = fs_now_us()) {
		uint64_t left_ms = (end - now) / 1000;
		fs_sleep_ms(
		    left_ms < WORK_STEP_MS ? left_ms + 1 : WORK_STEP_MS);
		now = fs_now_us();
		if (now - last < step_us || now >= end)
			continue;
		int rv = nq_extend(
		    s->c, nq_job_id(job), nq_job_lease_token(job), lease);
		uint64_t back = fs_now_us();
		fs_log_line(s->log, "X %s %" PRIu64 " %" PRIu64 " %s", exec,
		    now, back, rv ? nq_err_name(rv) : "OK");
		last = now;
	}
}

static void run_job(
    work_slot *s, const nq_job *job, uint64_t fetch_send, uint64_t fetch_recv)
{
	char exec[96], err[96];
	size_t len;
	const void *payload = nq_job_payload(job, &len);
	fs_plan p = {0};
	snprintf(
	    exec, sizeof exec, "%s.%d.%" PRIu64, s->cfg->name, s->no, ++s->seq);
	bool planned = fs_plan_parse(payload, len, &p) == NQ_OK;
	fs_log_line(s->log,
	    "S %s %s %s %" PRIu64 " %u %" PRIu64 " %" PRIu64 " %" PRIu64
	    " %" PRIu64 " %" PRIu64,
	    exec, s->cfg->name, nq_job_id(job), p.value, nq_job_attempt(job),
	    nq_job_lease_token(job), fetch_send, fetch_recv,
	    nq_job_lease_expires_us(job), s->cfg->lease_ms);
	if (planned)
		work_for(s, job, exec, p.work_ms);
	char out = planned ? fs_plan_outcome(&p, nq_job_attempt(job)) : 'P';
	snprintf(err, sizeof err,
	    planned ? "planned failure of attempt %u"
	            : "payload is no faultsim plan (%u)",
	    nq_job_attempt(job));
	nq_completion done = {
	    .id = nq_job_id(job),
	    .lease_token = nq_job_lease_token(job),
	    .outcome = out == 'S' ? NQ_OUTCOME_SUCCEEDED : NQ_OUTCOME_FAILED,
	    .result = out == 'S' ? exec : NULL,
	    .result_len = out == 'S' ? strlen(exec) : 0,
	    .error = out == 'S' ? NULL : err,
	    .non_retryable = out == 'P',
	    .started_us = fetch_recv,
	    .finished_us = fs_now_us(),
	};
	fs_log_line(s->log, "C %s %c", exec, out);
	uint64_t t = fs_now_us();
	int rv = nq_complete(s->c, s->cfg->name, &done, 1);
	fs_log_line(s->log, "E %s %c %" PRIu64 " %s", exec, out, t,
	    rv ? nq_err_name(rv) : "OK");
}

static void *slot_main(void *arg)
{
	work_slot *s = arg;
	const char *queues[] = {FS_QUEUE};
	while (!stopping) {
		nq_job **jobs = NULL;
		size_t n = 0;
		uint64_t t0 = fs_now_us();
		int rv = nq_fetch(s->c, s->cfg->name, queues, 1, 1,
		    s->cfg->wait_ms, s->cfg->lease_ms, &jobs, &n);
		uint64_t t1 = fs_now_us();
		if (rv != NQ_OK) {
			fs_sleep_ms(100);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			run_job(s, jobs[i], t0, t1);
		nq_jobs_free(jobs, n);
	}
	return NULL;
}

static int work_args(int argc, char **argv, work_cfg *c)
{
	const fs_flag flags[] = {{"work", NULL, &c->work},
	    {"results", NULL, &c->results}, {"log", NULL, &c->log},
	    {"name", NULL, &c->name}, {"slots", &c->slots, NULL},
	    {"lease-ms", &c->lease_ms, NULL}, {"wait-ms", &c->wait_ms, NULL}};
	int rv = fs_flags_parse(
	    "work", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!c->work || !c->results || !c->log || !c->name)
		return fs_usage("work", "--work, --results, --log and --name "
		                        "are required");
	if (c->slots == 0 || c->slots > WORK_MAX_SLOTS || c->lease_ms < 100)
		return fs_usage("work",
		    "--slots must be 1 to %d and --lease-ms at least 100",
		    WORK_MAX_SLOTS);
	return 0;
}

static int slots_open(const work_cfg *cfg, fs_log *log, work_slot *slots)
{
	nq_client_opts o = {.work_url = cfg->work,
	    .results_url = cfg->results,
	    .timeout_ms = WORK_TIMEOUT_MS};
	for (uint64_t i = 0; i < cfg->slots; i++) {
		slots[i] = (work_slot){.cfg = cfg, .log = log, .no = (int)i};
		int rv = nq_client_open(&slots[i].c, &o);
		if (rv != 0) {
			fprintf(stderr, "faultsim work: %s: %s\n", cfg->work,
			    nq_strerror(rv));
			return rv;
		}
	}
	return 0;
}

int fs_cmd_work(int argc, char **argv)
{
	work_cfg cfg = {.slots = 2, .lease_ms = 1000, .wait_ms = 500};
	work_slot slots[WORK_MAX_SLOTS] = {0};
	pthread_t threads[WORK_MAX_SLOTS];
	fs_log log = {-1};
	uint64_t started = 0;
	int rv = work_args(argc, argv, &cfg);
	if (rv != 0)
		return rv;
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (fs_log_open(&log, cfg.log) != 0 ||
	    slots_open(&cfg, &log, slots) != 0) {
		rv = 1;
		goto out;
	}
	for (; started < cfg.slots; started++)
		if (pthread_create(&threads[started], NULL, slot_main,
		        &slots[started]) != 0)
			break;
	if (started < cfg.slots)
		stopping = 1; /* the slots that run end after their job */
	for (uint64_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	rv = started == cfg.slots ? 0 : 1;
out:
	for (uint64_t i = 0; i < cfg.slots; i++)
		nq_client_close(slots[i].c);
	fs_log_close(&log);
	return rv;
}
