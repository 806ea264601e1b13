/*
 * faultsim check --dir DIR --name SCENARIO [--results FILE] [--p99-ms N]
 *                [--max-in-flight N]:
 * the checker. It reads the records of one scenario offline (producer.log,
 * exec-*.log, faults.log, final.log) and reports:
 *
 *   lost            confirmed, but after the drain neither succeeded nor
 *                   dead-lettered (stuck jobs count: the drain must end);
 *   duplicates      runs of a job after a run that did not fail on
 *                   purpose, each explained by a fault that hit the run
 *                   before it (worker killed, lease lost or lapsed, worker
 *                   stopped or cut off, broker restarted, disk full,
 *                   completion not sent); a duplicate that no fault
 *                   explains is a violation;
 *   after success   runs whose lease began after a client saw the job
 *                   succeeded, or after the run whose result the broker
 *                   kept (then the broker accepted a stale completion or
 *                   ran a finished job again);
 *   overlaps        a lease granted while another lease of the same job
 *                   was still valid (the broker extended the older one
 *                   afterwards, or granted the newer before the older one
 *                   expired although it was neither completed, dropped
 *                   with its connection, nor lost in a restart);
 *   never enqueued  runs, stored jobs or nq-dlq entries whose value no
 *                   producer sent, and values stored twice;
 *   dead although planned to succeed: a job that should have succeeded
 *                   ran out of attempts (10, and faults cost one or two);
 *   local failures  a failed attempt whose message is neither a planned
 *                   failure nor one a fault leaves (a lapsed lease, a lost
 *                   connection, a broker restart): a worker that could not
 *                   run a job for a reason of its own, as "cannot run the
 *                   command: Too many open files";
 *   enqueue latency of the producer's calls after its first 2 s, away from
 *                   broker restarts and full disks, p50 and p99; above
 *                   --p99-ms (when given) a violation;
 *   dead although succeeded, and corruption: a payload that changed, a
 *                   result that names no successful run of the job, a job
 *                   canceled or expired that nobody canceled;
 *   late            completions sent after their lease was lost, which
 *                   the broker must ignore: keeping the result of one whose
 *                   extension it had refused is a violation;
 *   restart         with final-restart.log (the run script kills the
 *                   broker once more after the drain), every job must end
 *                   the same after recovery;
 *   refusals        enqueues refused, by error; with a disk-full fault,
 *                   whether enqueues were refused while it lasted and how
 *                   long the broker took to take them again;
 *   in flight       with --max-in-flight (the queue's limit): runs at once
 *                   above it that no fault or lapsed lease explains, the
 *                   broker's sampled leased count above it, and whether the
 *                   limit was used while work waited (limit.c).
 *
 * Prints a report, appends one tab-separated row to --results, and exits 1
 * when anything was lost or any violation was found.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"

/* A completion reaches the broker and its commit within this long after
 * the run ended (nq-worker batches completions for a moment). */
#define CHECK_DELTA_US 3000000ull
/* After the broker comes back, a worker's results socket may still wait
 * out its reconnect backoff (libnq's longest: 2 s) while its work socket is
 * up again: a completion sent then reaches the broker late, after a lease
 * of 1 s lapsed. The restart explains such a run too. */
#define CHECK_RECONNECT_US 2000000ull
/* The broker's clock and ours are one clock; this covers rounding. */
#define CHECK_SLACK_US 2000ull
/* The producer's first calls create the queue and grow the store while
 * the workers take their first jobs: latency is measured after them. */
#define CHECK_WARMUP_US 2000000ull
/* A disk that has space again must take enqueues within this long. */
#define CHECK_RECOVER_US 30000000ull
#define CHECK_DETAILS 5
#define NEVER UINT64_MAX

#define GROW(arr, n, cap)                                                      \
	((n) < (cap) || grow((void **)&(arr), &(cap), sizeof *(arr)) == 0)

typedef struct ex {
	char name[96], worker[48];
	uint64_t job, value, token;
	uint32_t attempt;
	uint64_t fetch_send, start, lease_exp, lease_ms;
	bool handler; /* run by nq-worker: no lease facts */
	bool ended, send_ok, ext_failed;
	bool ext_lost; /* an extension was refused: lease not held */
	char outcome;  /* from C, or E when the answer came */
	uint64_t end, ext_ok_last;
} ex;

typedef enum fault_kind {
	F_BROKER,
	F_DLQ,
	F_WKILL,
	F_STOP,
	F_PART,
	F_DISK
} fault_kind;

typedef struct fault {
	fault_kind kind;
	char target[48];
	uint64_t t0, t1;
} fault;

typedef struct jrec {
	uint64_t id, value;
	char where[16], result[96];
	uint32_t attempt;
	bool payload_ok, final;
	uint64_t seen_us, ok_seen_us;
	size_t ex0, nex;
} jrec;

typedef struct vrec {
	uint64_t value, id;
	uint64_t sent_us; /* first sent */
	int nids;
	bool attempted;
	fs_kind kind;
} vrec;

typedef struct refusal {
	uint64_t t;
	char err[16], msg[160];
} refusal;

enum why {
	W_KILLED,
	W_EXTEND,
	W_BROKER,
	W_STOPPED,
	W_PARTITION,
	W_DISK,
	W_UNSENT,
	W_LAPSED,
	W_NONE,
	NWHY
};
static const char *const why_names[NWHY] = {"worker killed",
    "lease extension failed", "broker restarted", "worker stopped",
    "worker cut off", "disk full", "completion not sent", "lease lapsed",
    "UNEXPLAINED"};

enum kind {
	K_LOST,
	K_DUP,
	K_AFTER,
	K_OVERLAP,
	K_NEVER,
	K_DEADOK,
	K_CORRUPT,
	K_REFUSAL,
	K_DISK,
	K_LATE,
	K_STALE,
	K_DIED,
	K_LOCAL,
	K_SLOW,
	NKINDS
};

/* One enqueue call of the producer. */
typedef struct call {
	uint64_t t0, t1;
} call;

/* The broker's error for an attempt whose lease lapsed. */
#define LAPSE_ERROR "lease expired before the job finished or was extended"

/* What a failed attempt may say without a fault or plan being wrong. */
static const char *const expected_errors[] = {
    "planned failure of attempt", /* faultsim work and handle */
    LAPSE_ERROR,
    "worker connection lost",
    "broker restarted while the job was leased",
};

typedef struct check {
	const char *dir, *name, *results;
	uint64_t p99_limit_ms;  /* 0: reported, not judged */
	uint64_t max_in_flight; /* 0: not judged */
	fs_limit lim;
	fs_map lapsed; /* attempts whose lease lapsed, by attempt_key */
	ex *ex;
	size_t nex, capex;
	fs_map ex_by_name;
	fault *f;
	size_t nf, capf;
	size_t nfaults; /* injections, as opposed to recoveries */
	jrec *j;
	size_t nj, capj;
	fs_map j_by_id;
	vrec *v;
	size_t nv, capv;
	fs_map v_by_value;
	refusal *r;
	size_t nr, capr;
	uint64_t *conf_t;
	size_t nconf, capconf;
	call *calls;
	size_t ncalls, capcalls;
	double p50_ms, p99_ms; /* -1: not measured */
	size_t measured;
	size_t n[NKINDS], why[NWHY], shown[NKINDS];
	size_t succeeded, dead, unconfirmed, stray;
	size_t died_meant_ok; /* planned to succeed, yet dead */
	bool restarted;       /* final-restart.log was there */
	char disk_note[320];
} check;

static int grow(void **arr, size_t *cap, size_t size)
{
	size_t c = *cap ? *cap * 2 : 256;
	void *v = realloc(*arr, c * size);
	if (!v)
		return NQ_ENOMEM;
	*arr = v;
	*cap = c;
	return 0;
}

/* Counts a finding and prints the first few of each kind. */
static void finding(check *c, enum kind k, const char *fmt, ...)
{
	va_list ap;
	c->n[k]++;
	if (c->shown[k]++ >= CHECK_DETAILS || !fmt)
		return;
	printf("  ! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- lookups ---- */

static vrec *value_find(const check *c, uint64_t value)
{
	uint32_t at;
	return fs_map_get(&c->v_by_value, value, &at) ? &c->v[at] : NULL;
}

static vrec *value_make(check *c, uint64_t value)
{
	vrec *v = value_find(c, value);
	if (v || !GROW(c->v, c->nv, c->capv))
		return v;
	c->v[c->nv] = (vrec){.value = value};
	if (fs_map_put(&c->v_by_value, value, (uint32_t)c->nv) != 0)
		return NULL;
	return &c->v[c->nv++];
}

static jrec *job_get(check *c, uint64_t id)
{
	uint32_t at;
	return fs_map_get(&c->j_by_id, id, &at) ? &c->j[at] : NULL;
}

static jrec *job_make(check *c, uint64_t id, uint64_t value)
{
	jrec *j = job_get(c, id);
	if (j || !GROW(c->j, c->nj, c->capj))
		return j;
	c->j[c->nj] = (jrec){.id = id, .value = value};
	if (fs_map_put(&c->j_by_id, id, (uint32_t)c->nj) != 0)
		return NULL;
	return &c->j[c->nj++];
}

static ex *ex_get(check *c, const char *name)
{
	uint32_t at;
	if (!fs_map_get(&c->ex_by_name, fs_hash(name), &at) ||
	    strcmp(c->ex[at].name, name) != 0)
		return NULL;
	return &c->ex[at];
}

/* ---- reading the records ---- */

static FILE *open_in(const check *c, const char *file)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", c->dir, file);
	return fopen(path, "r");
}

static void producer_line(check *c, const char *line, bool second)
{
	uint64_t value, t;
	char id[40], err[16], kind[16];
	int dup, n;
	vrec *v;
	if (!second &&
	    sscanf(line, "A %" SCNu64 " %" SCNu64 " %n", &value, &t, &n) == 2) {
		fs_plan p;
		if ((v = value_make(c, value)) == NULL)
			return;
		v->attempted = true;
		v->sent_us = t;
		if (fs_plan_parse(line + n, strlen(line + n), &p) == NQ_OK)
			v->kind = p.kind;
	} else if (!second && sscanf(line, "C %" SCNu64 " %39s %d %" SCNu64,
	                          &value, id, &dup, &t) == 4) {
		uint64_t num = fs_id_num(id);
		if ((v = value_make(c, value)) == NULL || !num)
			return;
		if (v->id != num)
			v->nids++;
		v->id = num;
		job_make(c, num, value);
		if (GROW(c->conf_t, c->nconf, c->capconf))
			c->conf_t[c->nconf++] = t;
	} else if (second && sscanf(line, "R %" SCNu64 " %" SCNu64 " %15s %n",
	                         &value, &t, err, &n) == 3) {
		if (!GROW(c->r, c->nr, c->capr))
			return;
		refusal *r = &c->r[c->nr++];
		r->t = t;
		snprintf(r->err, sizeof r->err, "%s", err);
		snprintf(r->msg, sizeof r->msg, "%s", line + n);
	} else if (second &&
	           sscanf(line, "T %" SCNu64 " %" SCNu64, &t, &value) == 2) {
		if (GROW(c->calls, c->ncalls, c->capcalls) && value >= t)
			c->calls[c->ncalls++] = (call){t, value};
	} else if (second &&
	           sscanf(line, "O %39s %15s %" SCNu64, id, kind, &t) == 3) {
		jrec *j = job_get(c, fs_id_num(id));
		if (j && (!j->ok_seen_us || t < j->ok_seen_us))
			j->ok_seen_us = t;
	}
}

static int read_producer(check *c)
{
	char line[512];
	FILE *f = open_in(c, "producer.log");
	if (!f) {
		fprintf(
		    stderr, "faultsim check: no producer.log in %s\n", c->dir);
		return NQ_EINVAL;
	}
	for (int pass = 0; pass < 2; pass++) {
		rewind(f);
		while (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			producer_line(c, line, pass == 1);
		}
	}
	fclose(f);
	return 0;
}

static void exec_start(check *c, const char *line)
{
	ex e = {.send_ok = true};
	char id[40];
	if (sscanf(line,
	        "S %95s %47s %39s %" SCNu64 " %u %" SCNu64 " %" SCNu64
	        " %" SCNu64 " %" SCNu64 " %" SCNu64,
	        e.name, e.worker, id, &e.value, &e.attempt, &e.token,
	        &e.fetch_send, &e.start, &e.lease_exp, &e.lease_ms) != 10 ||
	    !GROW(c->ex, c->nex, c->capex))
		return;
	e.job = fs_id_num(id);
	e.handler = e.token == 0;
	c->ex[c->nex] = e;
	fs_map_put(&c->ex_by_name, fs_hash(e.name), (uint32_t)c->nex++);
}

static void exec_line(check *c, const char *line)
{
	char name[96], rc[24], out;
	uint64_t t0, t1;
	ex *e;
	if (line[0] == 'S') {
		exec_start(c, line);
	} else if (sscanf(line, "X %95s %" SCNu64 " %" SCNu64 " %23s", name,
	               &t0, &t1, rc) == 4 &&
	           (e = ex_get(c, name))) {
		bool ok = strcmp(rc, "OK") == 0;
		e->ext_failed = e->ext_failed || !ok;
		e->ext_lost = e->ext_lost || strcmp(rc, "EPRECOND") == 0;
		if (ok && t0 > e->ext_ok_last)
			e->ext_ok_last = t0;
	} else if (sscanf(line, "C %95s %c", name, &out) == 2 &&
	           (e = ex_get(c, name))) {
		e->outcome = out; /* sent, maybe never answered */
	} else if (sscanf(line, "E %95s %c %" SCNu64 " %23s", name, &out, &t0,
	               rc) == 4 &&
	           (e = ex_get(c, name))) {
		e->ended = true;
		e->outcome = out;
		e->end = t0;
		e->send_ok = strcmp(rc, "OK") == 0;
	}
}

static int read_execs(check *c)
{
	char line[512], path[4096];
	DIR *d = opendir(c->dir);
	struct dirent *de;
	if (!d)
		return NQ_EINVAL;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (strncmp(de->d_name, "exec-", 5) != 0 || len < 9 ||
		    strcmp(de->d_name + len - 4, ".log") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", c->dir, de->d_name);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			exec_line(c, line);
		}
		if (f)
			fclose(f);
	}
	closedir(d);
	return 0;
}

/* A partition cuts several workers at once: one line each, one fault. */
static bool same_cut(const check *c, fault_kind k, uint64_t t0)
{
	for (size_t i = 0; k == F_PART && i < c->nf; i++)
		if (c->f[i].kind == F_PART && c->f[i].t0 == t0)
			return true;
	return false;
}

static void fault_add(
    check *c, fault_kind k, const char *target, uint64_t t0, uint64_t t1)
{
	if (!GROW(c->f, c->nf, c->capf))
		return;
	if (!same_cut(c, k, t0))
		c->nfaults++;
	c->f[c->nf] = (fault){.kind = k, .t0 = t0, .t1 = t1};
	snprintf(c->f[c->nf++].target, sizeof c->f->target, "%s", target);
}

/* A process came back: closes its open down window. */
static void fault_up(check *c, fault_kind k, uint64_t t)
{
	for (size_t i = c->nf; i-- > 0;)
		if (c->f[i].kind == k && c->f[i].t1 == NEVER) {
			c->f[i].t1 = t;
			return;
		}
}

static void fault_line(check *c, const char *line)
{
	char kind[24], target[48];
	uint64_t t0, t1 = 0;
	int got = sscanf(
	    line, "%23s %47s %" SCNu64 " %" SCNu64, kind, target, &t0, &t1);
	if (got < 3)
		return;
	if (strcmp(kind, "broker-kill") == 0)
		fault_add(c, F_BROKER, target, t0, NEVER);
	else if (strcmp(kind, "broker-up") == 0)
		fault_up(c, F_BROKER, t0);
	else if (strcmp(kind, "dlq-kill") == 0)
		fault_add(c, F_DLQ, target, t0, NEVER);
	else if (strcmp(kind, "dlq-up") == 0)
		fault_up(c, F_DLQ, t0);
	else if (strcmp(kind, "worker-kill") == 0)
		fault_add(c, F_WKILL, target, t0, t0);
	else if (got == 4 && strcmp(kind, "worker-stop") == 0)
		fault_add(c, F_STOP, target, t0, t1);
	else if (got == 4 && strcmp(kind, "partition") == 0)
		fault_add(c, F_PART, target, t0, t1);
	else if (got == 4 && strcmp(kind, "disk-full") == 0)
		fault_add(c, F_DISK, target, t0, t1);
}

static void read_faults(check *c)
{
	char line[512];
	FILE *f = open_in(c, "faults.log");
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		fault_line(c, line);
	}
	if (f)
		fclose(f);
}

/* A job must end the same before and after the broker restarts. */
static void final_again(
    check *c, jrec *j, const char *where, const char *result)
{
	if (strcmp(j->where, where) == 0 && strcmp(j->result, result) == 0)
		return;
	finding(c, K_CORRUPT,
	    "job %016" PRIx64 " was %s (result %s) before "
	    "the broker restarted and %s (result %s) after",
	    j->id, j->where, j->result, where, result);
}

/* U: a job whose id no producer saw confirmed. */
static void final_unknown(check *c, const char *line)
{
	char id[40], where[16], state[16];
	uint64_t value;
	if (sscanf(line, "U %39s %15s %15s %" SCNu64, id, where, state,
	        &value) != 4)
		return;
	const vrec *v = value_find(c, value);
	if (!v || !v->attempted)
		finding(c, K_NEVER,
		    "%s %s (%s) holds value %" PRIu64 ", which "
		    "no producer sent",
		    where, id, state, value);
	else if (v->nids > 0)
		finding(c, K_NEVER,
		    "value %" PRIu64 " stored twice: %016" PRIx64
		    " and %s (%s)",
		    value, v->id, id, where);
	else
		c->stray++; /* sent, reply lost, never confirmed */
}

static bool expected_error(const char *msg)
{
	for (size_t i = 0; i < sizeof expected_errors / sizeof *expected_errors;
	     i++)
		if (strstr(msg, expected_errors[i]))
			return true;
	return false;
}

/* An attempt of a job, as a key of a map. */
static uint64_t attempt_key(uint64_t job, uint32_t attempt)
{
	char key[40];
	snprintf(key, sizeof key, "%016" PRIx64 "/%u", job, attempt);
	return fs_hash(key);
}

/* W: a failed attempt of a job, as its history keeps it. */
static void final_error(check *c, const char *line)
{
	char id[40];
	unsigned attempt;
	int n;
	if (sscanf(line, "W %39s %u %n", id, &attempt, &n) != 2)
		return;
	if (strstr(line + n, LAPSE_ERROR))
		fs_map_put(&c->lapsed, attempt_key(fs_id_num(id), attempt), 1);
	if (expected_error(line + n))
		return;
	finding(c, K_LOCAL,
	    "job %s attempt %u failed for a reason no plan or fault gives: %s",
	    id, attempt, line + n);
}

/* F: where a confirmed job ended; again: seen after a broker restart. */
static void final_line(check *c, const char *line, bool again)
{
	char id[40], where[16], result[96];
	uint32_t attempt;
	int ok;
	uint64_t seen;
	if (sscanf(line, "F %39s %15s %u %d %" SCNu64 " %95s", id, where,
	        &attempt, &ok, &seen, result) != 6) {
		if (!again && line[0] == 'W')
			final_error(c, line);
		else if (!again) /* the listings repeat the first drain's */
			final_unknown(c, line);
		return;
	}
	jrec *j = job_get(c, fs_id_num(id));
	if (!j)
		return;
	if (again) {
		final_again(c, j, where, result);
		return;
	}
	snprintf(j->where, sizeof j->where, "%s", where);
	snprintf(j->result, sizeof j->result, "%s", result);
	j->attempt = attempt;
	j->payload_ok = ok == 1;
	j->seen_us = seen;
	j->final = true;
}

/* final.log: where every job ended; final-restart.log (when the run
 * script restarted the broker after the drain): the same, once more. */
static int read_final(check *c)
{
	char line[512];
	FILE *f = open_in(c, "final.log");
	if (!f) {
		fprintf(stderr,
		    "faultsim check: no final.log in %s (did "
		    "faultsim drain run?)\n",
		    c->dir);
		return NQ_EINVAL;
	}
	for (int again = 0; f && again < 2; again++) {
		while (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			final_line(c, line, again);
		}
		fclose(f);
		f = again ? NULL : open_in(c, "final-restart.log");
		if (!again)
			c->restarted = f != NULL;
	}
	return 0;
}

/* ---- windows ---- */

static bool overlaps(const fault *f, uint64_t a, uint64_t b)
{
	return f->t0 <= b && f->t1 >= a;
}

/* Whether a fault of kind k (on target, when not NULL) overlaps [a, b]. */
static bool hit(
    const check *c, fault_kind k, const char *target, uint64_t a, uint64_t b)
{
	for (size_t i = 0; i < c->nf; i++) {
		const fault *f = &c->f[i];
		if (f->kind == k && overlaps(f, a, b) &&
		    (!target || strcmp(f->target, target) == 0))
			return true;
	}
	return false;
}

static uint64_t lease_known_until(const ex *e)
{
	uint64_t by_ext =
	    e->ext_ok_last ? e->ext_ok_last + e->lease_ms * 1000 : 0;
	return e->lease_exp > by_ext ? e->lease_exp : by_ext;
}

/* Why the run after p happened although p did not fail on purpose: the
 * fault that hit p between its lease and its completion (a: the earliest
 * its lease can have begun), the root cause first (a restarted broker also
 * refuses the extensions of the leases it forgot). */
static enum why explain(const check *c, const ex *p, uint64_t a)
{
	uint64_t b = p->ended ? p->end + CHECK_DELTA_US : NEVER;
	/* A worker incarnation is killed once; a kill after a counts even
	 * before p started, as nq-worker may fork p's command and die while
	 * the command starts. */
	if (!p->ended && hit(c, F_WKILL, p->worker, a, NEVER))
		return W_KILLED;
	if (hit(c, F_BROKER, NULL,
	        a > CHECK_RECONNECT_US ? a - CHECK_RECONNECT_US : 0, b))
		return W_BROKER;
	if (hit(c, F_STOP, p->worker, a, b))
		return W_STOPPED;
	if (hit(c, F_PART, p->worker, a, b))
		return W_PARTITION;
	if (hit(c, F_DISK, NULL, a, b))
		return W_DISK;
	if (p->ext_failed)
		return W_EXTEND;
	if (p->ended && !p->send_ok)
		return W_UNSENT;
	if (!p->handler && p->ended && p->end > lease_known_until(p))
		return W_LAPSED;
	if (hit(c, F_WKILL, p->worker, a, b))
		return W_KILLED;
	return W_NONE;
}

/* ---- the checks ---- */

static int ex_order(const void *x, const void *y)
{
	const ex *a = x, *b = y;
	if (a->job != b->job)
		return a->job < b->job ? -1 : 1;
	if (a->attempt != b->attempt)
		return a->attempt < b->attempt ? -1 : 1;
	return a->start < b->start ? -1 : a->start > b->start;
}

/* Sorts runs by job and lease order, and gives each job its range. */
static void group_execs(check *c)
{
	qsort(c->ex, c->nex, sizeof *c->ex, ex_order);
	fs_map_free(&c->ex_by_name);
	for (size_t i = 0; i < c->nex;) {
		size_t k = i;
		while (k < c->nex && c->ex[k].job == c->ex[i].job)
			k++;
		jrec *j = job_get(c, c->ex[i].job);
		if (j) {
			j->ex0 = i;
			j->nex = k - i;
		}
		i = k;
	}
}

/* Runs whose value or job nobody sent, or whose payload was not the
 * job's. */
static void check_exec_values(check *c)
{
	for (size_t i = 0; i < c->nex; i++) {
		const ex *e = &c->ex[i];
		vrec *v = value_find(c, e->value);
		jrec *j = job_get(c, e->job);
		if (!v || !v->attempted)
			finding(c, K_NEVER,
			    "run %s of job %016" PRIx64
			    " carries value %" PRIu64
			    ", which no producer sent",
			    e->name, e->job, e->value);
		else if (j && j->value != e->value)
			finding(c, K_CORRUPT,
			    "run %s of job %016" PRIx64
			    " carries value %" PRIu64 ", the job was %" PRIu64,
			    e->name, e->job, e->value, j->value);
		else if (!j && v->nids)
			finding(c, K_NEVER,
			    "run %s: value %" PRIu64 " ran as job %016" PRIx64
			    " but was confirmed as "
			    "%016" PRIx64,
			    e->name, e->value, e->job, v->id);
	}
}

/* The earliest the lease of run k of job j can have begun: its fetch for
 * our workers; for nq-worker's runs, which only know when the command
 * started, the start of the run before or the first send of the value (a
 * fetch reply held up by a cut network can start a run long after). */
static uint64_t lease_begun(const check *c, const jrec *j, size_t k)
{
	const ex *e = &c->ex[j->ex0 + k];
	if (!e->handler)
		return e->fetch_send;
	if (k > 0)
		return c->ex[j->ex0 + k - 1].start;
	const vrec *v = value_find(c, j->value);
	return v ? v->sent_us : 0;
}

static void check_duplicates(check *c, const jrec *j)
{
	for (size_t k = 1; k < j->nex; k++) {
		const ex *p = &c->ex[j->ex0 + k - 1], *q = p + 1;
		if (p->ended && p->outcome == 'F')
			continue; /* a planned failure, then its retry */
		enum why w = explain(c, p, lease_begun(c, j, k - 1));
		c->why[w]++;
		if (w == W_NONE)
			finding(c, K_DUP,
			    "job %016" PRIx64 " ran again as %s "
			    "(attempt %u) after %s (attempt %u, %s) and no "
			    "fault explains it",
			    j->id, q->name, q->attempt, p->name, p->attempt,
			    p->ended ? "completed" : "never finished");
		else
			c->n[K_DUP]++;
	}
}

/* The run whose result the broker kept, or NULL. */
static const ex *accepted_run(const check *c, const jrec *j)
{
	for (size_t k = 0; k < j->nex; k++) {
		const ex *e = &c->ex[j->ex0 + k];
		if (strcmp(e->name, j->result) == 0)
			return e;
	}
	return NULL;
}

static uint64_t success_seen(const jrec *j)
{
	uint64_t t = j->ok_seen_us;
	if (strcmp(j->where, "succeeded") == 0 && (!t || j->seen_us < t))
		t = j->seen_us;
	return t;
}

/* A run leased after the job's success: surely so when its fetch was sent
 * after a client saw the success, or when it holds a later attempt than
 * the run the broker took the result of (attempts count leases, so a
 * later attempt is a later lease). nq-worker's runs have no fetch time;
 * their attempt tells. */
static void check_after_success(check *c, const jrec *j, const ex *kept)
{
	uint64_t seen = success_seen(j);
	for (size_t k = 0; k < j->nex; k++) {
		const ex *e = &c->ex[j->ex0 + k];
		if (seen && !e->handler && e->fetch_send > seen)
			finding(c, K_AFTER,
			    "job %016" PRIx64 " was fetched "
			    "by %s %.3f s after a client saw it succeeded",
			    j->id, e->name,
			    (double)(e->fetch_send - seen) / 1e6);
		else if (kept && e->attempt > kept->attempt)
			finding(c, K_AFTER,
			    "job %016" PRIx64 " was leased "
			    "again (%s, attempt %u) after the run whose result "
			    "the broker kept (%s, attempt %u)",
			    j->id, e->name, e->attempt, kept->name,
			    kept->attempt);
	}
}

/* Completions sent after the lease was lost (the broker refused an
 * extension, or the lease ran out unextended): they must be ignored. One
 * whose result the broker kept after refusing its extension is a
 * violation; a kept one that merely ran out is caught above when the job
 * was leased again. */
static void check_late(check *c, const jrec *j, const ex *kept)
{
	for (size_t k = 0; k < j->nex; k++) {
		const ex *e = &c->ex[j->ex0 + k];
		if (e->handler || !e->ended || e->outcome != 'S' ||
		    !(e->ext_lost || e->end > lease_known_until(e)))
			continue;
		c->n[K_LATE]++;
		if (e == kept && e->ext_lost)
			finding(c, K_STALE,
			    "job %016" PRIx64 " kept the result "
			    "of %s, whose lease extension the broker had "
			    "refused before it completed",
			    j->id, e->name);
	}
}

/* Whether a's lease legitimately ended before b's fetch was answered. */
static bool lease_released(const check *c, const ex *a, const ex *b)
{
	if (a->ended && a->end < b->start)
		return true; /* completed (a failure), then retried */
	if (hit(c, F_WKILL, a->worker, a->fetch_send, b->start))
		return true; /* its connections dropped */
	return hit(c, F_BROKER, NULL, a->fetch_send, b->start);
}

static void check_pair(check *c, const jrec *j, const ex *a, const ex *b)
{
	if (a->handler || b->handler || b->fetch_send <= a->start)
		return; /* order or lease unknown */
	if (a->ext_ok_last > b->start) {
		finding(c, K_OVERLAP,
		    "job %016" PRIx64 ": lease of %s was "
		    "extended %.3f s after %s got its own lease",
		    j->id, a->name, (double)(a->ext_ok_last - b->start) / 1e6,
		    b->name);
		return;
	}
	uint64_t until = lease_known_until(a);
	if (b->start + CHECK_SLACK_US < until && !lease_released(c, a, b))
		finding(c, K_OVERLAP,
		    "job %016" PRIx64 ": %s got a lease "
		    "%.3f s before the lease of %s expired",
		    j->id, b->name, (double)(until - b->start) / 1e6, a->name);
}

static void check_overlaps(check *c, const jrec *j)
{
	for (size_t x = 0; x < j->nex; x++)
		for (size_t y = 0; y < j->nex; y++)
			if (x != y)
				check_pair(c, j, &c->ex[j->ex0 + x],
				    &c->ex[j->ex0 + y]);
}

/* Where the job ended: lost, dead-lettered, succeeded (with a result from
 * one of its successful runs) or something nobody asked for. */
static const ex *check_end(check *c, const jrec *j)
{
	const char *w = j->final ? j->where : "unknown";
	bool dead = strcmp(w, "dlq") == 0 || strcmp(w, "dead") == 0;
	const ex *kept = NULL;
	if (strcmp(w, "succeeded") == 0) {
		c->succeeded++;
		kept = accepted_run(c, j);
		if (!kept || kept->outcome != 'S')
			finding(c, K_CORRUPT,
			    "job %016" PRIx64 " succeeded "
			    "with result \"%s\", which no successful run of it "
			    "returned",
			    j->id, j->result);
	} else if (dead) {
		const vrec *v = value_find(c, j->value);
		c->dead++;
		if (v && (v->kind == FS_KIND_OK || v->kind == FS_KIND_FLAKY)) {
			c->died_meant_ok++;
			finding(c, K_DIED,
			    "job %016" PRIx64 " (value %" PRIu64 ", %s) "
			    "ended dead after %u attempts though planned to "
			    "succeed",
			    j->id, j->value, fs_kind_name(v->kind), j->attempt);
		}
		if (success_seen(j))
			finding(c, K_DEADOK,
			    "job %016" PRIx64 " was "
			    "dead-lettered although a client saw it succeeded",
			    j->id);
	} else if (strcmp(w, "canceled") == 0 || strcmp(w, "expired") == 0) {
		finding(c, K_CORRUPT,
		    "job %016" PRIx64 " ended %s; nobody "
		    "canceled it and it had no deadline",
		    j->id, w);
	} else {
		finding(c, K_LOST,
		    "job %016" PRIx64 " (value %" PRIu64 ") "
		    "was confirmed but is %s after the drain",
		    j->id, j->value, w);
	}
	if ((kept || dead) && !j->payload_ok)
		finding(c, K_CORRUPT,
		    "job %016" PRIx64 ": its payload is not "
		    "what the producer sent",
		    j->id);
	return kept;
}

static void check_values(check *c)
{
	for (size_t i = 0; i < c->nv; i++) {
		const vrec *v = &c->v[i];
		if (v->attempted && v->nids == 0)
			c->unconfirmed++;
		if (v->nids > 1)
			finding(c, K_NEVER,
			    "value %" PRIu64 " was confirmed as "
			    "%d different jobs",
			    v->value, v->nids);
	}
}

/* ---- refusals and the disk ---- */

static bool transient(const char *err)
{
	static const char *const ok[] = {
	    "ETIMEDOUT", "EUNAVAIL", "ECONNECT", "ECLOSED", "ESTORE"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		if (strcmp(err, ok[i]) == 0)
			return true;
	return false;
}

static void check_refusals(check *c)
{
	for (size_t i = 0; i < c->nr; i++) {
		c->n[K_REFUSAL]++;
		if (!transient(c->r[i].err))
			finding(c, K_CORRUPT,
			    "an enqueue was refused with %s: "
			    "%s",
			    c->r[i].err, c->r[i].msg);
	}
}

static uint64_t first_confirm_after(const check *c, uint64_t t)
{
	uint64_t best = NEVER;
	for (size_t i = 0; i < c->nconf; i++)
		if (c->conf_t[i] >= t && c->conf_t[i] < best)
			best = c->conf_t[i];
	return best;
}

/* Enqueues refused while the disk was full (and a moment after), and how
 * long after space returned the broker took one again (NEVER: not at
 * all). */
static size_t disk_window(
    const check *c, const fault *f, uint64_t *back_us, const refusal **example)
{
	size_t refused = 0;
	for (size_t i = 0; i < c->nr; i++) {
		if (c->r[i].t < f->t0 || c->r[i].t > f->t1 + CHECK_DELTA_US)
			continue;
		refused++;
		if (!*example || strcmp(c->r[i].err, "EUNAVAIL") == 0)
			*example = &c->r[i];
	}
	uint64_t back = first_confirm_after(c, f->t1);
	*back_us = back == NEVER ? NEVER : back - f->t1;
	return refused;
}

/* While the disk is full enqueues must be refused with a message that says
 * so, and be taken again soon after space returns. A spell may refuse
 * nothing (LMDB reuses the pages it freed, so a full disk only bites when
 * the store must grow), but one of them must bite, or the scenario tested
 * nothing. */
static void check_disk(check *c)
{
	const refusal *example = NULL;
	size_t refused = 0, spells = 0, bit = 0;
	uint64_t worst = 0, back;
	for (size_t i = 0; i < c->nf; i++) {
		if (c->f[i].kind != F_DISK)
			continue;
		size_t n = disk_window(c, &c->f[i], &back, &example);
		spells++;
		bit += n > 0;
		refused += n;
		if (back > worst)
			worst = back;
	}
	if (!spells)
		return;
	if (!bit)
		finding(c, K_DISK,
		    "the disk was full %zu times but no enqueue "
		    "was refused: the fault did not bite",
		    spells);
	if (worst > CHECK_RECOVER_US)
		finding(c, K_DISK,
		    "after a full disk no enqueue was taken "
		    "within %llu s of space returning",
		    CHECK_RECOVER_US / 1000000);
	snprintf(c->disk_note, sizeof c->disk_note,
	    "%zu of %zu full spells refused enqueues, %zu in all (%s: %.120s); "
	    "enqueues taken again at most %.1f s after space returned",
	    bit, spells, refused, example ? example->err : "-",
	    example ? example->msg : "-",
	    worst == NEVER ? -1.0 : (double)worst / 1e6);
}

/* ---- enqueue latency ---- */

/* Whether [a, b] comes near a broker restart or a full disk (or the
 * reconnect after one), where enqueues wait by design. */
static bool near_fault(const check *c, uint64_t a, uint64_t b)
{
	for (size_t i = 0; i < c->nf; i++) {
		const fault *f = &c->f[i];
		if (f->kind != F_BROKER && f->kind != F_DISK)
			continue;
		uint64_t end =
		    f->t1 == NEVER ? NEVER : f->t1 + CHECK_RECONNECT_US;
		if (f->t0 <= b && end >= a)
			return true;
	}
	return false;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* The nearest-rank percentile p (0..1) of n sorted values, in ms. */
static double percentile_ms(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p * (double)n + 0.999999);
	return (double)v[rank ? rank - 1 : 0] / 1000.0;
}

static void check_latency(check *c)
{
	uint64_t *v = malloc((c->ncalls + 1) * sizeof *v);
	uint64_t from = c->ncalls ? c->calls[0].t0 + CHECK_WARMUP_US : 0;
	size_t n = 0;
	c->p50_ms = c->p99_ms = -1;
	for (size_t i = 0; v && i < c->ncalls; i++)
		if (c->calls[i].t0 >= from &&
		    !near_fault(c, c->calls[i].t0, c->calls[i].t1))
			v[n++] = c->calls[i].t1 - c->calls[i].t0;
	c->measured = n;
	if (n) {
		qsort(v, n, sizeof *v, cmp_u64);
		c->p50_ms = percentile_ms(v, n, 0.50);
		c->p99_ms = percentile_ms(v, n, 0.99);
	}
	free(v);
	if (c->p99_limit_ms && !n)
		finding(c, K_SLOW,
		    "no enqueue call away from broker restarts and full disks "
		    "to measure");
	else if (c->p99_limit_ms && c->p99_ms > (double)c->p99_limit_ms)
		finding(c, K_SLOW,
		    "enqueue p99 %.1f ms is over the limit of %" PRIu64 " ms",
		    c->p99_ms, c->p99_limit_ms);
}

/* ---- the in-flight limit: each run's span for limit.c ---- */

/* The lease stopped counting at the broker by t (not before the run
 * began), for why; the earliest cut wins. */
static void span_cut(fs_span *s, uint64_t t, const char *why)
{
	if (t < s->start)
		t = s->start;
	if (t < s->held_end) {
		s->held_end = t;
		s->why = why;
	}
}

static uint64_t killed_at(const check *c, const char *worker)
{
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i].kind == F_WKILL &&
		    strcmp(c->f[i].target, worker) == 0)
			return c->f[i].t0;
	return NEVER;
}

/* Where a run ended: its E record, else its worker's SIGKILL (faultsim
 * work's slots die with it), else where its lease surely ended. A command
 * of nq-worker with no end stays unknown (its start: not counted). */
static uint64_t run_end(const check *c, const ex *e)
{
	uint64_t k = killed_at(c, e->worker);
	if (e->ended)
		return e->end;
	if (k != NEVER)
		return k > e->start ? k : e->start;
	return e->handler ? e->start : lease_known_until(e);
}

/* A fault that took the run's lease away while it ran on: a broker
 * restart (which releases every lease it finds; a run begun before the
 * broker was seen back may hold a lease of the old one), the SIGKILL of
 * its worker (its connections drop; nq-worker's command runs on), a
 * SIGSTOP or partition of its worker (the lease lapses). */
static void fault_cut(const fault *f, const ex *e, fs_span *s)
{
	bool mine = strcmp(f->target, e->worker) == 0;
	if (f->t0 >= s->end)
		return;
	if (f->kind == F_BROKER && e->start < f->t1)
		span_cut(s, f->t0, why_names[W_BROKER]);
	else if (mine && f->kind == F_WKILL)
		span_cut(s, f->t0, why_names[W_KILLED]);
	else if (mine && f->kind == F_STOP && f->t1 > e->start)
		span_cut(s, f->t0, why_names[W_STOPPED]);
	else if (mine && f->kind == F_PART && f->t1 > e->start)
		span_cut(s, f->t0, why_names[W_PARTITION]);
}

/* A lease that lapsed with no fault: our workers know until when theirs
 * held; of nq-worker's we know only that it lapsed (the job's history says
 * so, or the job ran again while the command still ran), so from the
 * command's start. j is NULL for a job nobody saw confirmed. */
static void lapse_cut(const check *c, const jrec *j, const ex *e, fs_span *s)
{
	const char *why = why_names[W_LAPSED];
	uint32_t one;
	if (!e->handler)
		span_cut(s, lease_known_until(e), why);
	else if (fs_map_get(&c->lapsed, attempt_key(e->job, e->attempt), &one))
		span_cut(s, e->start, why);
	for (size_t x = 0; j && x < j->nex; x++) {
		const ex *o = &c->ex[j->ex0 + x];
		if (o != e && o->start > e->start && o->start < s->end)
			span_cut(s, e->handler ? e->start : o->start, why);
	}
}

static fs_span run_span(const check *c, const jrec *j, const ex *e)
{
	fs_span s = {.start = e->start, .end = run_end(c, e)};
	s.held_end = s.end;
	for (size_t i = 0; i < c->nf; i++)
		fault_cut(&c->f[i], e, &s);
	lapse_cut(c, j, e, &s);
	return s;
}

/* Broker restarts, until the workers can have dialed again: its counts
 * then say nothing of whether the limit was used. */
static size_t restart_windows(const check *c, fs_window *w)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i].kind == F_BROKER)
			w[n++] = (fs_window){
			    c->f[i].t0, c->f[i].t1 == NEVER
			                    ? NEVER
			                    : c->f[i].t1 + CHECK_RECONNECT_US};
	return n;
}

static void check_limit(check *c)
{
	fs_span *spans = malloc((c->nex + 1) * sizeof *spans);
	fs_window *quiet = malloc((c->nf + 1) * sizeof *quiet);
	size_t n = 0;
	c->lim.limit = c->max_in_flight;
	for (size_t i = 0; spans && i < c->nex; i++, n++)
		spans[n] = run_span(c, job_get(c, c->ex[i].job), &c->ex[i]);
	if (!spans || !quiet ||
	    fs_limit_check(c->dir, spans, n, quiet, restart_windows(c, quiet),
	        &c->lim) != 0)
		c->lim.unexplained++; /* out of memory: no verdict */
	free(spans);
	free(quiet);
}

/* ---- report ---- */

static size_t violations(const check *c)
{
	return c->n[K_LOST] + c->why[W_NONE] + c->n[K_AFTER] + c->n[K_OVERLAP] +
	       c->n[K_NEVER] + c->n[K_DEADOK] + c->n[K_CORRUPT] + c->n[K_DISK] +
	       c->n[K_STALE] + c->n[K_DIED] + c->n[K_LOCAL] + c->n[K_SLOW] +
	       (c->max_in_flight ? fs_limit_violations(&c->lim) : 0);
}

static void why_text(const check *c, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int w = 0; w < NWHY && used < len; w++) {
		if (!c->why[w])
			continue;
		int n = snprintf(buf + used, len - used, "%s%s %zu",
		    used ? ", " : "", why_names[w], c->why[w]);
		used += n > 0 ? (size_t)n : 0;
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void limit_report(const fs_limit *l)
{
	printf("  in flight, max_in_flight %" PRIu64 ": runs at once at most "
	       "%" PRIu64 ", %" PRIu64 " of them with a lease the broker "
	       "held; %zu overruns, %zu unexplained, explained by %s\n",
	    l->limit, l->max_runs, l->max_held, l->overruns, l->unexplained,
	    l->explained_by);
	printf("  the broker: at most %" PRIu64 " leased over %zu samples "
	       "(%zu over the limit, %zu with another limit); while jobs "
	       "waited, %.2f leased and %.2f runs on average over %zu "
	       "samples (limit %s)\n",
	    l->max_leased, l->samples, l->over, l->wrong_limit, l->mean_leased,
	    l->mean_runs, l->waiting, l->used ? "used" : "NOT used");
}

/* The results table's cell: broker max, runs max (held), limit. */
static void limit_cell(const check *c, char *buf, size_t len)
{
	const fs_limit *l = &c->lim;
	if (!c->max_in_flight)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len,
		    "%" PRIu64 "/%" PRIu64 " (runs %" PRIu64 ", held %" PRIu64
		    ", %zu unexplained; mean %.1f)",
		    l->max_leased, l->limit, l->max_runs, l->max_held,
		    l->unexplained, l->mean_leased);
}

static void report(const check *c)
{
	char why[400];
	why_text(c, why, sizeof why);
	size_t dups = c->n[K_DUP];
	printf("  %zu jobs confirmed (%zu values never confirmed, %zu stray), "
	       "%zu runs, %zu faults\n",
	    c->nj, c->unconfirmed, c->stray, c->nex, c->nfaults);
	printf("  ended: %zu succeeded, %zu dead-lettered (%zu of them meant "
	       "to succeed); lost %zu\n",
	    c->succeeded, c->dead, c->died_meant_ok, c->n[K_LOST]);
	printf("  duplicates %zu: %s\n", dups, why);
	printf("  after success %zu, overlapping leases %zu, never enqueued "
	       "%zu, dead although succeeded %zu, corrupt %zu, disk checks "
	       "failed %zu\n",
	    c->n[K_AFTER], c->n[K_OVERLAP], c->n[K_NEVER], c->n[K_DEADOK],
	    c->n[K_CORRUPT], c->n[K_DISK]);
	printf("  dead though planned to succeed %zu, failed for local reasons "
	       "%zu\n",
	    c->n[K_DIED], c->n[K_LOCAL]);
	printf("  enqueue latency p50 %.1f ms, p99 %.1f ms over %zu calls away "
	       "from broker restarts and full disks (%zu near them or in the "
	       "first 2 s left out)%s\n",
	    c->p50_ms, c->p99_ms, c->measured, c->ncalls - c->measured,
	    c->p99_limit_ms ? "" : "; not judged");
	printf("  late completions %zu, kept %zu; ends %s\n", c->n[K_LATE],
	    c->n[K_STALE],
	    c->restarted ? "the same after a broker restart"
	                 : "not checked after a restart");
	printf("  enqueue refusals %zu%s%s\n", c->n[K_REFUSAL],
	    c->disk_note[0] ? "; disk: " : "", c->disk_note);
	if (c->max_in_flight)
		limit_report(&c->lim);
	printf("  verdict: %s\n", violations(c) ? "FAIL" : "ok");
}

static void results_row(const check *c)
{
	char why[400], lim[160];
	FILE *f = c->results ? fopen(c->results, "a") : NULL;
	if (!f)
		return;
	why_text(c, why, sizeof why);
	limit_cell(c, lim, sizeof lim);
	/* name verdict faults jobs succeeded dead lost duplicates
	 * unexplained after-success overlaps never-enqueued dead-succeeded
	 * corrupt refusals late late-kept explanations died-or-local
	 * enqueue-p50/p99 in-flight */
	fprintf(f,
	    "%s\t%s\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t"
	    "%zu\t%zu\t%zu\t%zu\t%zu\t%s\t%zu\t%.1f/%.1f\t%s\n",
	    c->name, violations(c) ? "FAIL" : "ok", c->nfaults, c->nj,
	    c->succeeded, c->dead, c->n[K_LOST], c->n[K_DUP], c->why[W_NONE],
	    c->n[K_AFTER], c->n[K_OVERLAP], c->n[K_NEVER], c->n[K_DEADOK],
	    c->n[K_CORRUPT] + c->n[K_DISK], c->n[K_REFUSAL], c->n[K_LATE],
	    c->n[K_STALE], why, c->n[K_DIED] + c->n[K_LOCAL], c->p50_ms,
	    c->p99_ms, lim);
	fclose(f);
}

static void run_checks(check *c)
{
	group_execs(c);
	check_values(c);
	check_exec_values(c);
	for (size_t i = 0; i < c->nj; i++) {
		const jrec *j = &c->j[i];
		const ex *kept = check_end(c, j);
		check_duplicates(c, j);
		check_after_success(c, j, kept);
		check_late(c, j, kept);
		check_overlaps(c, j);
	}
	check_refusals(c);
	check_disk(c);
	check_latency(c);
	if (c->max_in_flight)
		check_limit(c);
}

static int check_args(int argc, char **argv, check *c)
{
	const fs_flag flags[] = {{"dir", NULL, &c->dir},
	    {"name", NULL, &c->name}, {"results", NULL, &c->results},
	    {"p99-ms", &c->p99_limit_ms, NULL},
	    {"max-in-flight", &c->max_in_flight, NULL}};
	int rv = fs_flags_parse(
	    "check", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!c->dir || !c->name)
		return fs_usage(
		    "check", "--dir DIR and --name NAME are required");
	return 0;
}

static void check_free(check *c)
{
	free(c->ex);
	free(c->f);
	free(c->j);
	free(c->v);
	free(c->r);
	free(c->conf_t);
	free(c->calls);
	fs_map_free(&c->ex_by_name);
	fs_map_free(&c->j_by_id);
	fs_map_free(&c->v_by_value);
	fs_map_free(&c->lapsed);
}

int fs_cmd_check(int argc, char **argv)
{
	check c = {0};
	int rv = check_args(argc, argv, &c);
	if (rv != 0)
		return rv;
	printf("scenario %s\n", c.name);
	if (read_producer(&c) != 0 || read_execs(&c) != 0 ||
	    read_final(&c) != 0) {
		check_free(&c);
		return 1;
	}
	read_faults(&c);
	run_checks(&c);
	report(&c);
	results_row(&c);
	rv = violations(&c) ? 1 : 0;
	check_free(&c);
	return rv;
}
