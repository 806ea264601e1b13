/*
 * faultsim drain: waits until every job the producer saw confirmed has
 * ended, and records where each one ended, for faultsim check.
 *
 * A job has ended when the broker says succeeded (or canceled, expired),
 * or when it died and nq-dlq holds it: the broker replaces its copy of a
 * dead job by a summary marked in_dlq (or deletes it, once result_ttl
 * passed) only after nq-dlq confirmed a durable write, so "in_dlq or not
 * found in the broker" must mean "found in nq-dlq". Without --dlq the broker
 * keeps dead jobs, and dead is an end. Afterwards every job of the broker's
 * queue and every entry of nq-dlq is listed, to find jobs nobody enqueued.
 *
 * Records (--out, default final.log, in --dir):
 *   F <id> <where> <attempt> <payload_ok 0|1> <seen_us> <result|->
 *       where: succeeded dead dlq canceled expired missing, or the state
 *       it was stuck in at the deadline; seen_us: when it was first seen so
 *   W <id> <attempt> <message>           a failed attempt the job's history
 *                                        keeps (its record in nq-dlq for a
 *                                        dead job)
 *   L <id> <reason>                      an entry of nq-dlq
 *   U <id> <broker|dlq> <state> <value>  a job with an id never confirmed
 *
 * Exit status: 0 when every confirmed job ended, 1 otherwise.
 */
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"
#include "nq/nq.h"
#include "nqi/codec.h"
#include "nqi/util.h"

#define DRAIN_RPC_MS 3000

typedef struct drain_job {
	uint64_t id;
	uint64_t value;
	char where[16]; /* "" until ended */
	uint32_t attempt;
	bool payload_ok;
	uint64_t seen_us;
	char result[96];
} drain_job;

typedef struct drain {
	const char *api, *dlq, *dir, *out_name;
	uint64_t timeout_ms;
	drain_job *jobs;
	size_t njobs, capjobs;
	fs_map by_id;
	fs_map payload_of; /* value -> index into payloads */
	char (*payloads)[FS_PAYLOAD_MAX];
	size_t npayloads, cappayloads;
	nq_client *c;
	nng_socket dlq_sock;
	bool dlq_open;
	fs_log out;
} drain;

/* ---- raw requests, for what libnq does not offer (nq-dlq, list) ---- */

static int rpc_open(nng_socket *s, const char *url)
{
	int rv = nng_req0_open(s);
	if (rv != 0)
		return rv;
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, DRAIN_RPC_MS);
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, DRAIN_RPC_MS);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 500);
	if ((rv = nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK)) != 0)
		nng_close(*s);
	return rv;
}

/* Sends req; on NQ_OK *out holds the reply (free with
 * nq__v1__reply__free_unpacked); otherwise the error of the transport or
 * of the reply's status. */
static int rpc_call(nng_socket s, Nq__V1__Request *req, Nq__V1__Reply **out)
{
	nng_msg *m;
	req->version = NQI_PROTOCOL_VERSION;
	int rv = nqi_msg_pack(&req->base, NULL, 0, &m);
	if (rv != 0)
		return rv;
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return nqi_err_from_nng(rv);
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return nqi_err_from_nng(rv);
	Nq__V1__Reply *r = nqi_reply_unpack(nng_msg_body(m), nng_msg_len(m));
	nng_msg_free(m);
	if (!r)
		return NQ_EPROTO;
	if (r->status && r->status->code != NQ__V1__CODE__OK) {
		rv = nqi_err_from_code(r->status->code);
		nq__v1__reply__free_unpacked(r, NULL);
		return rv;
	}
	*out = r;
	return NQ_OK;
}

/* ---- what the producer confirmed ---- */

static int payload_note(drain *d, uint64_t value, const char *text)
{
	if (d->npayloads == d->cappayloads) {
		size_t cap = d->cappayloads ? d->cappayloads * 2 : 1024;
		void *v = realloc(d->payloads, cap * sizeof *d->payloads);
		if (!v)
			return NQ_ENOMEM;
		d->payloads = v;
		d->cappayloads = cap;
	}
	snprintf(d->payloads[d->npayloads], FS_PAYLOAD_MAX, "%s", text);
	return fs_map_put(&d->payload_of, value, (uint32_t)d->npayloads++);
}

static int job_note(drain *d, uint64_t value, const char *sid)
{
	uint64_t id = fs_id_num(sid);
	uint32_t at;
	if (!id || fs_map_get(&d->by_id, id, &at))
		return NQ_OK;
	if (d->njobs == d->capjobs) {
		size_t cap = d->capjobs ? d->capjobs * 2 : 1024;
		drain_job *v = realloc(d->jobs, cap * sizeof *v);
		if (!v)
			return NQ_ENOMEM;
		d->jobs = v;
		d->capjobs = cap;
	}
	d->jobs[d->njobs] = (drain_job){.id = id, .value = value};
	return fs_map_put(&d->by_id, id, (uint32_t)d->njobs++);
}

/* Reads the A (payload sent) and C (confirmed id) records. */
static int read_producer(drain *d, const char *path)
{
	char line[512], id[40];
	uint64_t value, t;
	int rv = 0, n;
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "faultsim drain: cannot read %s\n", path);
		return NQ_EINVAL;
	}
	while (rv == 0 && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "A %" SCNu64 " %" SCNu64 " %n", &value, &t,
		        &n) == 2)
			rv = payload_note(d, value, line + n);
		else if (sscanf(line, "C %" SCNu64 " %39s", &value, id) == 2)
			rv = job_note(d, value, id);
	}
	fclose(f);
	return rv;
}

/* ---- where each job is ---- */

static bool payload_matches(
    const drain *d, uint64_t value, const void *data, size_t len)
{
	uint32_t at;
	if (!fs_map_get(&d->payload_of, value, &at))
		return false;
	const char *want = d->payloads[at];
	return len == strlen(want) && memcmp(data, want, len) == 0;
}

static void job_end(drain_job *j, const char *where, uint32_t attempt,
    bool payload_ok, const void *result, size_t rlen)
{
	snprintf(j->where, sizeof j->where, "%s", where);
	j->attempt = attempt;
	j->payload_ok = payload_ok;
	j->seen_us = fs_now_us();
	snprintf(j->result, sizeof j->result, "%.*s",
	    (int)(rlen < 90 ? rlen : 90), rlen ? (const char *)result : "-");
	fs_field(j->result);
}

/* W: one failed attempt of an ended job, for faultsim check to tell the
 * planned failures and those of faults from any other. */
static void note_error(
    drain *d, uint64_t id, uint32_t attempt, const char *message)
{
	char text[200];
	snprintf(text, sizeof text, "%s", message && *message ? message : "-");
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = ' ';
	fs_log_line(&d->out, "W %016" PRIx64 " %u %s", id, attempt, text);
}

/* Asks nq-dlq for a job; NQ_ENOTFOUND when it holds none. */
static int dlq_show(drain *d, uint64_t id, Nq__V1__Reply **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__DlqShowRequest show = NQ__V1__DLQ_SHOW_REQUEST__INIT;
	char sid[NQ_ID_MAX];
	snprintf(sid, sizeof sid, "%016" PRIx64, id);
	show.id = sid;
	req.body_case = NQ__V1__REQUEST__BODY_DLQ_SHOW;
	req.dlq_show = &show;
	return rpc_call(d->dlq_sock, &req, out);
}

static void look_in_dlq(drain *d, drain_job *j)
{
	Nq__V1__Reply *r = NULL;
	int rv = dlq_show(d, j->id, &r);
	if (rv == NQ_ENOTFOUND) {
		snprintf(j->where, sizeof j->where, "missing");
		return;
	}
	if (rv != NQ_OK || !r->dlq_show || !r->dlq_show->job ||
	    !r->dlq_show->job->job) {
		if (r)
			nq__v1__reply__free_unpacked(r, NULL);
		return; /* nq-dlq not answering: ask again next round */
	}
	const Nq__V1__Job *job = r->dlq_show->job->job;
	bool ok =
	    job->spec && payload_matches(d, j->value, job->spec->payload.data,
	                     job->spec->payload.len);
	job_end(j, "dlq", job->attempt, ok, NULL, 0);
	for (size_t i = 0; i < job->n_errors; i++)
		note_error(
		    d, j->id, job->errors[i]->attempt, job->errors[i]->message);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* One look at a job that has not ended yet. */
static void look(drain *d, drain_job *j)
{
	char sid[NQ_ID_MAX];
	nq_job *job = NULL;
	size_t plen, rlen;
	snprintf(sid, sizeof sid, "%016" PRIx64, j->id);
	int rv = nq_get(d->c, sid, &job);
	/* A dead job nq-dlq took is gone from the broker, or left there as a
	 * summary without its payload: nq-dlq has the whole job. */
	if (rv == NQ_OK && d->dlq_open && nq_job_in_dlq(job)) {
		nq_job_free(job);
		rv = NQ_ENOTFOUND;
	}
	if (rv == NQ_ENOTFOUND && d->dlq_open) {
		look_in_dlq(d, j);
		return;
	}
	if (rv == NQ_ENOTFOUND)
		snprintf(j->where, sizeof j->where, "missing");
	if (rv != NQ_OK)
		return;
	nq_state st = nq_job_state(job);
	const void *payload = nq_job_payload(job, &plen);
	const void *result = nq_job_result(job, &rlen);
	bool ok = payload_matches(d, j->value, payload, plen);
	bool ended =
	    nq_state_is_final(st) && !(st == NQ_STATE_DEAD && d->dlq_open);
	if (ended) {
		job_end(j, nq_state_name(st), nq_job_attempt(job), ok, result,
		    rlen);
		for (size_t i = 0; i < nq_job_error_count(job); i++) {
			uint32_t attempt = 0;
			const char *m = nq_job_error(job, i, &attempt, NULL);
			note_error(d, j->id, attempt, m);
		}
	} else
		snprintf(j->where, sizeof j->where, "%s", nq_state_name(st));
	nq_job_free(job);
}

static bool job_ended(const drain_job *j)
{
	return j->seen_us != 0;
}

/* Rounds of looks until every job ended or the deadline passed. "missing"
 * is looked at again: it is the one answer that must never stay. */
static size_t wait_all(drain *d)
{
	uint64_t deadline = fs_now_us() + d->timeout_ms * 1000;
	size_t open;
	for (;;) {
		open = 0;
		for (size_t i = 0; i < d->njobs; i++) {
			if (job_ended(&d->jobs[i]))
				continue;
			look(d, &d->jobs[i]);
			open += !job_ended(&d->jobs[i]);
		}
		if (open == 0 || fs_now_us() >= deadline)
			return open;
		fs_sleep_ms(200);
	}
}

/* ---- jobs nobody confirmed ---- */

static uint64_t value_of(const Nq__V1__Job *job)
{
	fs_plan p;
	if (!job || !job->spec ||
	    fs_plan_parse(
	        job->spec->payload.data, job->spec->payload.len, &p) != NQ_OK)
		return 0;
	return p.value;
}

static void unknown_broker_job(drain *d, const char *sid, const char *state)
{
	nq_job *job = NULL;
	uint64_t value = 0;
	size_t len;
	fs_plan p;
	if (nq_get(d->c, sid, &job) == NQ_OK) {
		const void *pl = nq_job_payload(job, &len);
		if (fs_plan_parse(pl, len, &p) == NQ_OK)
			value = p.value;
	}
	nq_job_free(job);
	fs_log_line(&d->out, "U %s broker %s %" PRIu64, sid, state, value);
}

/* Lists the broker's queue a page at a time. */
static int list_broker(drain *d, nng_socket s)
{
	char after[NQ_ID_MAX] = "";
	for (;;) {
		Nq__V1__Request req = NQ__V1__REQUEST__INIT;
		Nq__V1__ListRequest l = NQ__V1__LIST_REQUEST__INIT;
		Nq__V1__Reply *r = NULL;
		l.queue = (char *)FS_QUEUE;
		l.limit = 500;
		l.after_id = after;
		req.body_case = NQ__V1__REQUEST__BODY_LIST;
		req.list = &l;
		int rv = rpc_call(s, &req, &r);
		if (rv != NQ_OK)
			return rv;
		size_t n = r->list ? r->list->n_jobs : 0;
		for (size_t i = 0; i < n; i++) {
			const Nq__V1__Job *job = r->list->jobs[i];
			uint32_t at;
			if (!fs_map_get(&d->by_id, fs_id_num(job->id), &at))
				unknown_broker_job(d, job->id,
				    nq_state_name((nq_state)job->state));
			snprintf(after, sizeof after, "%s", job->id);
		}
		nq__v1__reply__free_unpacked(r, NULL);
		if (n == 0)
			return NQ_OK;
	}
}

static void dlq_entry(drain *d, const Nq__V1__DeadJob *dj)
{
	const char *sid = dj->job && dj->job->id ? dj->job->id : "?";
	uint32_t at;
	Nq__V1__Reply *r = NULL;
	fs_log_line(&d->out, "L %s %s", sid, dj->reason[0] ? dj->reason : "-");
	if (fs_map_get(&d->by_id, fs_id_num(sid), &at))
		return;
	uint64_t value = 0;
	if (dlq_show(d, fs_id_num(sid), &r) == NQ_OK && r->dlq_show &&
	    r->dlq_show->job)
		value = value_of(r->dlq_show->job->job);
	if (r)
		nq__v1__reply__free_unpacked(r, NULL);
	fs_log_line(&d->out, "U %s dlq dead %" PRIu64, sid, value);
}

/* Lists every nq-dlq entry, newest first, a page at a time. */
static int list_dlq(drain *d)
{
	char before[NQ_ID_MAX] = "";
	for (;;) {
		Nq__V1__Request req = NQ__V1__REQUEST__INIT;
		Nq__V1__DlqListRequest l = NQ__V1__DLQ_LIST_REQUEST__INIT;
		Nq__V1__Reply *r = NULL;
		l.limit = 1000;
		l.before_id = before;
		req.body_case = NQ__V1__REQUEST__BODY_DLQ_LIST;
		req.dlq_list = &l;
		int rv = rpc_call(d->dlq_sock, &req, &r);
		if (rv != NQ_OK)
			return rv;
		const Nq__V1__DlqListReply *lr = r->dlq_list;
		for (size_t i = 0; lr && i < lr->n_jobs; i++)
			dlq_entry(d, lr->jobs[i]);
		bool more = lr && lr->next_before_id && lr->next_before_id[0];
		if (more)
			snprintf(
			    before, sizeof before, "%s", lr->next_before_id);
		nq__v1__reply__free_unpacked(r, NULL);
		if (!more)
			return NQ_OK;
	}
}

static void write_finals(drain *d)
{
	for (size_t i = 0; i < d->njobs; i++) {
		const drain_job *j = &d->jobs[i];
		fs_log_line(&d->out, "F %016" PRIx64 " %s %u %d %" PRIu64 " %s",
		    j->id, j->where[0] ? j->where : "unknown", j->attempt,
		    j->payload_ok ? 1 : 0, j->seen_us,
		    j->result[0] ? j->result : "-");
	}
}

static int drain_args(int argc, char **argv, drain *d)
{
	const fs_flag flags[] = {{"api", NULL, &d->api}, {"dlq", NULL, &d->dlq},
	    {"dir", NULL, &d->dir}, {"out", NULL, &d->out_name},
	    {"timeout-ms", &d->timeout_ms, NULL}};
	int rv = fs_flags_parse(
	    "drain", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!d->api || !d->dir)
		return fs_usage(
		    "drain", "--api URL and --dir DIR are required");
	if (!d->out_name[0] || strchr(d->out_name, '/'))
		return fs_usage("drain",
		    "--out names a file in --dir, got "
		    "\"%s\"",
		    d->out_name);
	return 0;
}

static int drain_open(drain *d, nng_socket *api)
{
	char path[4096];
	nq_client_opts o = {.api_url = d->api, .timeout_ms = 2000};
	snprintf(path, sizeof path, "%s/producer.log", d->dir);
	if (read_producer(d, path) != 0)
		return 1;
	snprintf(path, sizeof path, "%s/%s", d->dir, d->out_name);
	if (fs_log_open(&d->out, path) != 0 || nq_client_open(&d->c, &o) ||
	    rpc_open(api, d->api) != 0)
		return 1;
	if (d->dlq && d->dlq[0]) {
		if (rpc_open(&d->dlq_sock, d->dlq) != 0)
			return 1;
		d->dlq_open = true;
	}
	return 0;
}

int fs_cmd_drain(int argc, char **argv)
{
	drain d = {.timeout_ms = 60000, .out = {-1}, .out_name = "final.log"};
	nng_socket api = NNG_SOCKET_INITIALIZER;
	int rv = drain_args(argc, argv, &d);
	if (rv != 0)
		return rv;
	if ((rv = drain_open(&d, &api)) != 0)
		goto out;
	size_t open = wait_all(&d);
	write_finals(&d);
	if (list_broker(&d, api) != 0)
		fprintf(stderr, "faultsim drain: could not list the broker's "
		                "jobs\n");
	if (d.dlq_open && list_dlq(&d) != 0)
		fprintf(stderr, "faultsim drain: could not list nq-dlq\n");
	fprintf(stderr, "faultsim drain: %zu confirmed jobs, %zu not ended\n",
	    d.njobs, open);
	rv = open ? 1 : 0;
out:
	nq_client_close(d.c);
	nng_close(api);
	if (d.dlq_open)
		nng_close(d.dlq_sock);
	fs_log_close(&d.out);
	fs_map_free(&d.by_id);
	fs_map_free(&d.payload_of);
	free(d.jobs);
	free(d.payloads);
	return rv;
}
