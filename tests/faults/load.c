/*
 * faultsim load: the producer of a scenario.
 *
 * Makes values 1, 2, 3, ... at --rate per second for --duration-ms, each
 * with a plan (succeed, fail a few times, fail always, fail for good) in
 * its payload and the idempotency key "fs-<value>". Every value is sent
 * again, with the same key, until the broker confirms it, for at most
 * --settle-ms after the duration ends; so a reply lost to a crash never
 * turns into a second job, and every value ends confirmed. A second thread
 * polls confirmed jobs and records when it first saw each one succeeded.
 *
 * Records (producer.log):
 *   A <value> <t_us> <payload...>        value first sent
 *   C <value> <id> <dup 0|1> <t_us>      broker confirmed it durable
 *   R <value> <t_us> <ERR> <message>     this attempt was refused
 *   O <id> succeeded <t_us>              a get, answered at t_us, saw it
 *   T <t0_us> <t1_us> <OK|ERR>           one enqueue call, sent and answered
 *
 * Exit status: 0 when every value was confirmed, 1 when some never were.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"

#define LOAD_BATCH_MAX 64
#define LOAD_TIMEOUT_MS 3000

typedef struct load_cfg {
	const char *api;
	const char *log;
	uint64_t rate; /* new values per second */
	uint64_t duration_ms;
	uint64_t settle_ms;  /* after the duration: confirm what is pending */
	uint64_t batch;      /* values per enqueue request */
	uint64_t poison_pct; /* of values that always fail */
	uint64_t flaky_pct;  /* of values that fail once or twice first */
	uint64_t long_pct;   /* of values that run longer than a lease */
	uint64_t long_ms;
	uint64_t poll_per_s; /* gets per second of the success poller */
} load_cfg;

typedef struct load {
	load_cfg cfg;
	fs_log log;
	fs_plan *pending; /* sent, not yet confirmed; oldest first */
	size_t npending, cappending;
	uint64_t next_value;
	uint64_t confirmed, refused;
	pthread_mutex_t mu; /* guards ids and seen, shared with the poller */
	uint64_t *ids;      /* confirmed job ids, for the poller */
	bool *seen;         /* the poller saw this one end */
	size_t nids, capids;
	volatile bool stop;
} load;

static fs_plan plan_new(load *l)
{
	fs_plan p = {.value = l->next_value++, .kind = FS_KIND_OK};
	uint64_t r = fs_rand(100);
	if (r < l->cfg.poison_pct)
		p.kind = fs_rand(2) ? FS_KIND_POISON : FS_KIND_PERM;
	else if (r < l->cfg.poison_pct + l->cfg.flaky_pct) {
		p.kind = FS_KIND_FLAKY;
		p.fails = 1 + (uint32_t)fs_rand(2);
	}
	if (fs_rand(100) < l->cfg.long_pct)
		p.work_ms =
		    (uint32_t)(l->cfg.long_ms + fs_rand(l->cfg.long_ms));
	else
		p.work_ms = 5 + (uint32_t)fs_rand(40);
	return p;
}

static int pending_add(load *l, const fs_plan *p)
{
	if (l->npending == l->cappending) {
		size_t cap = l->cappending ? l->cappending * 2 : 256;
		fs_plan *v = realloc(l->pending, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		l->pending = v;
		l->cappending = cap;
	}
	l->pending[l->npending++] = *p;
	return NQ_OK;
}

static int ids_add(load *l, const char *id)
{
	int rv = NQ_OK;
	pthread_mutex_lock(&l->mu);
	if (l->nids == l->capids) {
		size_t cap = l->capids ? l->capids * 2 : 1024;
		uint64_t *v = realloc(l->ids, cap * sizeof *v);
		bool *s = v ? realloc(l->seen, cap * sizeof *s) : NULL;
		if (v)
			l->ids = v;
		if (s) {
			l->seen = s;
			l->capids = cap;
		}
		rv = s ? NQ_OK : NQ_ENOMEM;
	}
	if (rv == NQ_OK) {
		l->ids[l->nids] = fs_id_num(id);
		l->seen[l->nids++] = false;
	}
	pthread_mutex_unlock(&l->mu);
	return rv;
}

/* Fills specs from the oldest pending values, then (while producing) new
 * ones; payload text lives in bufs. Returns how many. */
static size_t batch_fill(load *l, bool produce, nq_job_spec *specs,
    char (*bufs)[FS_PAYLOAD_MAX], char (*keys)[32])
{
	size_t n = 0;
	while (produce && l->npending < l->cfg.batch) {
		fs_plan p = plan_new(l);
		char text[FS_PAYLOAD_MAX];
		fs_plan_format(&p, text);
		if (pending_add(l, &p) != 0)
			break;
		fs_log_line(&l->log, "A %" PRIu64 " %" PRIu64 " %s", p.value,
		    fs_now_us(), text);
	}
	for (; n < l->npending && n < l->cfg.batch; n++) {
		const fs_plan *p = &l->pending[n];
		size_t len = fs_plan_format(p, bufs[n]);
		snprintf(keys[n], sizeof keys[n], "fs-%" PRIu64, p->value);
		specs[n] = (nq_job_spec){
		    .queue = FS_QUEUE,
		    .type = FS_TYPE,
		    .payload = bufs[n],
		    .payload_len = len,
		    .content_type = "text/plain",
		    .idempotency_key = keys[n],
		    .max_attempts = p->kind == FS_KIND_POISON ? 3 : 0,
		};
	}
	return n;
}

static void refuse(load *l, uint64_t value, int err, const char *msg)
{
	char text[200];
	snprintf(text, sizeof text, "%s", msg && msg[0] ? msg : "-");
	l->refused++;
	fs_log_line(&l->log, "R %" PRIu64 " %" PRIu64 " %s %s", value,
	    fs_now_us(), nq_err_name(err), text);
}

/* Records the answer for the first n pending values and keeps those that
 * were not confirmed, in order. Returns whether any was refused. */
static bool batch_settle(
    load *l, size_t n, int rv, const char *why, const nq_enqueue_result *res)
{
	size_t keep = 0;
	bool refused = false;
	for (size_t i = 0; i < l->npending; i++) {
		fs_plan *p = &l->pending[i];
		int err = i >= n ? NQ_EINVAL : rv != NQ_OK ? rv : res[i].err;
		if (i < n && err == NQ_OK) {
			fs_log_line(&l->log, "C %" PRIu64 " %s %d %" PRIu64,
			    p->value, res[i].id, res[i].duplicate ? 1 : 0,
			    fs_now_us());
			l->confirmed++;
			ids_add(l, res[i].id);
			continue;
		}
		if (i < n) {
			refuse(l, p->value, err,
			    rv != NQ_OK ? why : res[i].message);
			refused = true;
		}
		l->pending[keep++] = *p;
	}
	l->npending = keep;
	return refused;
}

static bool send_batch(load *l, nq_client *c, bool produce)
{
	nq_job_spec specs[LOAD_BATCH_MAX];
	nq_enqueue_result res[LOAD_BATCH_MAX];
	char bufs[LOAD_BATCH_MAX][FS_PAYLOAD_MAX], keys[LOAD_BATCH_MAX][32];
	size_t n = batch_fill(l, produce, specs, bufs, keys);
	if (n == 0)
		return false;
	uint64_t t0 = fs_now_us();
	int rv = nq_enqueue_batch(c, specs, n, res);
	fs_log_line(&l->log, "T %" PRIu64 " %" PRIu64 " %s", t0, fs_now_us(),
	    rv == NQ_OK ? "OK" : nq_err_name(rv));
	return batch_settle(l, n, rv, nq_client_last_error(c), res);
}

/* Paces batches at the rate; after a refusal waits a little, as a real
 * producer backs off, and stops producing when the duration ends. */
static void produce(load *l, nq_client *c)
{
	uint64_t start = fs_now_us(), next = start;
	uint64_t end = start + l->cfg.duration_ms * 1000;
	uint64_t give_up = end + l->cfg.settle_ms * 1000;
	uint64_t period = l->cfg.batch * 1000000 / l->cfg.rate;
	for (;;) {
		uint64_t now = fs_now_us();
		bool producing = now < end;
		if ((!producing && l->npending == 0) || now >= give_up)
			break;
		bool refused = send_batch(l, c, producing);
		next += period;
		now = fs_now_us();
		if (refused || !producing)
			fs_sleep_ms(100);
		else if (next > now)
			fs_sleep_ms((next - now) / 1000);
	}
}

/* Picks a confirmed job the poller has not yet seen end; 0 when none. */
static uint64_t poll_pick(load *l, size_t *idx)
{
	uint64_t id = 0;
	pthread_mutex_lock(&l->mu);
	for (int tries = 0; l->nids && tries < 8 && !id; tries++) {
		size_t i = (size_t)fs_rand(l->nids);
		if (!l->seen[i]) {
			id = l->ids[i];
			*idx = i;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return id;
}

static void poll_one(load *l, nq_client *c, uint64_t num, size_t idx)
{
	char id[NQ_ID_MAX];
	nq_job *job = NULL;
	snprintf(id, sizeof id, "%016" PRIx64, num);
	int rv = nq_get(c, id, &job);
	uint64_t t = fs_now_us();
	bool ended = rv == NQ_ENOTFOUND;
	if (rv == NQ_OK) {
		nq_state st = nq_job_state(job);
		ended = nq_state_is_final(st);
		if (st == NQ_STATE_SUCCEEDED)
			fs_log_line(&l->log, "O %s succeeded %" PRIu64, id, t);
	}
	nq_job_free(job);
	if (ended) {
		pthread_mutex_lock(&l->mu);
		l->seen[idx] = true;
		pthread_mutex_unlock(&l->mu);
	}
}

static void *poller_main(void *arg)
{
	load *l = arg;
	nq_client *c;
	nq_client_opts o = {.api_url = l->cfg.api, .timeout_ms = 2000};
	if (nq_client_open(&c, &o) != 0)
		return NULL;
	uint64_t gap_ms = 1000 / l->cfg.poll_per_s;
	while (!l->stop) {
		size_t idx;
		uint64_t id = poll_pick(l, &idx);
		if (id)
			poll_one(l, c, id, idx);
		fs_sleep_ms(gap_ms ? gap_ms : 1);
	}
	nq_client_close(c);
	return NULL;
}

static int load_args(int argc, char **argv, load_cfg *c)
{
	const fs_flag flags[] = {{"api", NULL, &c->api}, {"log", NULL, &c->log},
	    {"rate", &c->rate, NULL}, {"duration-ms", &c->duration_ms, NULL},
	    {"settle-ms", &c->settle_ms, NULL}, {"batch", &c->batch, NULL},
	    {"poison-pct", &c->poison_pct, NULL},
	    {"flaky-pct", &c->flaky_pct, NULL},
	    {"long-pct", &c->long_pct, NULL}, {"long-ms", &c->long_ms, NULL},
	    {"poll-per-s", &c->poll_per_s, NULL}};
	int rv = fs_flags_parse(
	    "load", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!c->api || !c->log)
		return fs_usage(
		    "load", "--api URL and --log FILE are required");
	if (c->rate == 0 || c->batch == 0 || c->batch > LOAD_BATCH_MAX ||
	    c->poll_per_s == 0)
		return fs_usage("load",
		    "--rate, --poll-per-s and --batch (at most %d) must be "
		    "positive",
		    LOAD_BATCH_MAX);
	if (c->poison_pct + c->flaky_pct > 100 || c->long_pct > 100)
		return fs_usage(
		    "load", "percentages must add up to at most 100");
	return 0;
}

int fs_cmd_load(int argc, char **argv)
{
	load l = {.cfg = {.rate = 100,
	              .duration_ms = 20000,
	              .settle_ms = 30000,
	              .batch = 10,
	              .poison_pct = 3,
	              .flaky_pct = 5,
	              .long_pct = 3,
	              .long_ms = 1500,
	              .poll_per_s = 100},
	    .next_value = 1,
	    .mu = PTHREAD_MUTEX_INITIALIZER};
	nq_client *c = NULL;
	pthread_t poller;
	int rv = load_args(argc, argv, &l.cfg);
	if (rv != 0)
		return rv;
	nq_client_opts o = {
	    .api_url = l.cfg.api, .timeout_ms = LOAD_TIMEOUT_MS};
	if (fs_log_open(&l.log, l.cfg.log) != 0)
		return 1;
	if ((rv = nq_client_open(&c, &o)) != 0) {
		fprintf(stderr, "faultsim load: %s: %s\n", l.cfg.api,
		    nq_strerror(rv));
		return 1;
	}
	bool polling = pthread_create(&poller, NULL, poller_main, &l) == 0;
	produce(&l, c);
	l.stop = true;
	if (polling)
		pthread_join(poller, NULL);
	nq_client_close(c);
	fprintf(stderr,
	    "faultsim load: %" PRIu64 " values, %" PRIu64 " confirmed, %" PRIu64
	    " refusals, %zu never confirmed\n",
	    l.next_value - 1, l.confirmed, l.refused, l.npending);
	fs_log_close(&l.log);
	rv = l.npending ? 1 : 0;
	free(l.pending);
	free(l.ids);
	free(l.seen);
	return rv;
}
