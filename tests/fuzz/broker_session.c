/* The embedded broker as the fuzz targets drive it; see broker_session.h. */
#include "broker_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nqi/log.h"

void session_open(session *s)
{
	memset(s, 0, sizeof *s);
	nqi_log_set_level("error");
	s->dir = fuzz_tempdir("broker");
	int rv = broker_embed_open(&s->e, s->dir);
	if (rv != 0) {
		fprintf(stderr, "fuzz: broker_embed_open %s: %s\n", s->dir,
		    nq_strerror(rv));
		abort();
	}
}

void session_close(session *s)
{
	broker_embed_close(s->e);
	fuzz_tempdir_remove(s->dir);
	s->e = NULL;
	s->dir = NULL;
}

/* ---- what the replies tell ---- */

static void note_id(session *s, const char *id)
{
	if (s->nids < SESSION_MAX_IDS)
		snprintf(s->ids[s->nids++], NQ_ID_MAX, "%s", id);
}

static void note_lease(session *s, const Nq__V1__Job *job)
{
	if (s->nleases == SESSION_MAX_IDS) {
		memmove(&s->leases[0], &s->leases[1],
		    (SESSION_MAX_IDS - 1) * sizeof s->leases[0]);
		s->nleases--;
	}
	session_lease *l = &s->leases[s->nleases++];
	snprintf(l->id, sizeof l->id, "%s", job->id);
	l->token = job->lease_token;
}

/* What holds of every job the broker reports, whatever it was sent. */
static void check_job(const Nq__V1__Job *job)
{
	uint64_t id;
	FUZZ_CHECK(job != NULL);
	FUZZ_CHECK(nqi_id_parse(job->id, &id) == 0);
	FUZZ_CHECK(job->state > NQ__V1__JOB_STATE__JOB_STATE_UNSPECIFIED &&
	           job->state <= NQ__V1__JOB_STATE__JOB_STATE_EXPIRED);
	FUZZ_CHECK(job->spec != NULL);
	FUZZ_CHECK(nqi_name_valid(job->spec->queue));
	FUZZ_CHECK(nqi_name_valid(job->spec->type));
	FUZZ_CHECK(job->max_attempts == 0 || job->attempt <= job->max_attempts);
	for (size_t i = 0; i < job->n_errors; i++)
		FUZZ_CHECK(job->errors[i] != NULL);
}

static void check_fetch(session *s, const Nq__V1__FetchReply *f)
{
	for (size_t i = 0; i < f->n_jobs; i++) {
		const Nq__V1__Job *job = f->jobs[i];
		check_job(job);
		FUZZ_CHECK(job->state == NQ__V1__JOB_STATE__JOB_STATE_LEASED);
		FUZZ_CHECK(job->attempt >= 1);
		FUZZ_CHECK(job->lease_token != 0);
		note_lease(s, job);
	}
}

/* Checks a reply to req (NULL when the request did not decode) and
 * remembers the ids and leases in it. */
static void check_reply(
    session *s, const Nq__V1__Request *req, const uint8_t *out, size_t outlen)
{
	fuzz_trace_reply(req ? "request" : "undecodable request", out, outlen);
	Nq__V1__Reply *r = nqi_reply_unpack(out, outlen);
	/* Whatever came in, what goes out is a well-formed reply. */
	FUZZ_CHECK(r != NULL);
	bool ok = !r->status || r->status->code == NQ__V1__CODE__OK;
	if (r->status) {
		FUZZ_CHECK(r->status->code <= NQ__V1__CODE__DEADLINE_EXCEEDED);
		FUZZ_CHECK(ok || r->status->message[0] != '\0');
	}
	if (!req)
		FUZZ_CHECK(!ok);
	if (ok && r->body_case == NQ__V1__REPLY__BODY_ENQUEUE) {
		const Nq__V1__EnqueueReply *e = r->enqueue;
		FUZZ_CHECK(
		    req && req->body_case == NQ__V1__REQUEST__BODY_ENQUEUE);
		FUZZ_CHECK(e->n_results == req->enqueue->n_jobs);
		for (size_t i = 0; i < e->n_results; i++) {
			const Nq__V1__EnqueueResult *res = e->results[i];
			uint64_t id;
			if (res->status && res->status->code)
				continue;
			FUZZ_CHECK(nqi_id_parse(res->id, &id) == 0);
			note_id(s, res->id);
		}
	}
	if (ok && r->body_case == NQ__V1__REPLY__BODY_FETCH)
		check_fetch(s, r->fetch);
	if (r->body_case == NQ__V1__REPLY__BODY_GET && r->get->job)
		check_job(r->get->job);
	if (r->body_case == NQ__V1__REPLY__BODY_WAIT && r->wait->job)
		check_job(r->wait->job);
	if (r->body_case == NQ__V1__REPLY__BODY_CANCEL && r->cancel->job)
		check_job(r->cancel->job);
	nq__v1__reply__free_unpacked(r, NULL);
}

/* ---- "#N" stands for the N-th id or lease ---- */

typedef struct swaps {
	char **slot[64];
	char *orig[64];
	uint64_t *tslot[64];
	uint64_t torig[64];
	size_t n;
} swaps;

static bool placeholder(const char *s, size_t *n)
{
	if (s[0] != '#' || s[1] < '0' || s[1] > '9')
		return false;
	*n = strtoul(s + 1, NULL, 10);
	return true;
}

/* Replaces an id "#N" by a job id seen; token, when given, gets the
 * lease's token and the id the lease's job. */
static void swap_id(session *s, swaps *w, char **slot, uint64_t *token)
{
	size_t k;
	if (w->n == 64 || !placeholder(*slot, &k))
		return;
	if (token ? s->nleases == 0 : s->nids == 0)
		return;
	w->slot[w->n] = slot;
	w->orig[w->n] = *slot;
	w->tslot[w->n] = token;
	if (token) {
		session_lease *l = &s->leases[k % s->nleases];
		w->torig[w->n] = *token;
		*slot = l->id;
		*token = l->token;
	} else {
		*slot = s->ids[k % s->nids];
	}
	w->n++;
}

/* Puts the decoder's own strings back before free_unpacked. */
static void unswap(swaps *w)
{
	for (size_t i = w->n; i-- > 0;) {
		*w->slot[i] = w->orig[i];
		if (w->tslot[i])
			*w->tslot[i] = w->torig[i];
	}
	w->n = 0;
}

static void swap_request(session *s, Nq__V1__Request *req, swaps *w)
{
	switch (req->body_case) {
	case NQ__V1__REQUEST__BODY_GET:
		swap_id(s, w, &req->get->id, NULL);
		break;
	case NQ__V1__REQUEST__BODY_WAIT:
		swap_id(s, w, &req->wait->id, NULL);
		break;
	case NQ__V1__REQUEST__BODY_CANCEL:
		swap_id(s, w, &req->cancel->id, NULL);
		break;
	case NQ__V1__REQUEST__BODY_LIST:
		swap_id(s, w, &req->list->after_id, NULL);
		break;
	case NQ__V1__REQUEST__BODY_EXTEND:
		for (size_t i = 0; i < req->extend->n_leases; i++) {
			Nq__V1__LeaseRef *l = req->extend->leases[i];
			if (l)
				swap_id(s, w, &l->id, &l->lease_token);
		}
		break;
	default:
		break;
	}
}

/* ---- feeding ---- */

static void feed_request(session *s, const Nq__V1__Request *req,
    const uint8_t *buf, size_t len, bool work)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	int rv = broker_embed_request(s->e, buf, len, work, &out, &outlen);
	FUZZ_CHECK(rv == 0);
	check_reply(s, req, out, outlen);
	free(out);
}

void session_request(session *s, const uint8_t *buf, size_t len, bool work)
{
	Nq__V1__Request *req = nqi_request_unpack(buf, len);
	feed_request(s, req, buf, len, work);
	if (!req)
		return;
	swaps w = {.n = 0};
	swap_request(s, req, &w);
	if (w.n) {
		size_t n;
		uint8_t *again = fuzz_pack(&req->base, &n);
		feed_request(s, req, again, n, work);
		free(again);
	}
	unswap(&w);
	nq__v1__request__free_unpacked(req, NULL);
}

void session_completions(session *s, const uint8_t *buf, size_t len)
{
	Nq__V1__CompletionBatch *b = nqi_completions_unpack(buf, len);
	int rv = broker_embed_completions(s->e, buf, len);
	FUZZ_CHECK(rv == (b ? 0 : NQ_EINVAL));
	if (!b)
		return;
	swaps w = {.n = 0};
	for (size_t i = 0; i < b->n_completions; i++) {
		Nq__V1__Completion *c = b->completions[i];
		if (c)
			swap_id(s, &w, &c->id, &c->lease_token);
	}
	if (w.n) {
		size_t n;
		uint8_t *again = fuzz_pack(&b->base, &n);
		FUZZ_CHECK(broker_embed_completions(s->e, again, n) == 0);
		free(again);
	}
	unswap(&w);
	nq__v1__completion_batch__free_unpacked(b, NULL);
}

Nq__V1__Reply *session_call(session *s, Nq__V1__Request *req, bool work)
{
	size_t len, outlen;
	uint8_t *out = NULL;
	req->version = NQI_PROTOCOL_VERSION;
	uint8_t *buf = fuzz_pack(&req->base, &len);
	FUZZ_CHECK(
	    broker_embed_request(s->e, buf, len, work, &out, &outlen) == 0);
	check_reply(s, req, out, outlen);
	Nq__V1__Reply *r = nqi_reply_unpack(out, outlen);
	FUZZ_CHECK(r != NULL);
	free(buf);
	free(out);
	return r;
}

void session_enqueue(
    session *s, const char *queue, uint32_t max_attempts, const char *okey)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__EnqueueRequest enq = NQ__V1__ENQUEUE_REQUEST__INIT;
	Nq__V1__JobSpec spec = NQ__V1__JOB_SPEC__INIT, *specs[] = {&spec};
	spec.queue = (char *)queue;
	spec.type = "t";
	spec.max_attempts = max_attempts;
	spec.ordering_key = (char *)okey;
	enq.jobs = specs;
	enq.n_jobs = 1;
	req.body_case = NQ__V1__REQUEST__BODY_ENQUEUE;
	req.enqueue = &enq;
	nq__v1__reply__free_unpacked(session_call(s, &req, false), NULL);
}

void session_fetch(session *s, const char *const *queues, size_t n,
    uint32_t max_jobs, uint64_t lease_ms)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__FetchRequest fr = NQ__V1__FETCH_REQUEST__INIT;
	fr.worker_id = "fuzz-worker";
	fr.queues = (char **)queues;
	fr.n_queues = n;
	fr.max_jobs = max_jobs;
	fr.lease_ms = lease_ms;
	req.body_case = NQ__V1__REQUEST__BODY_FETCH;
	req.fetch = &fr;
	nq__v1__reply__free_unpacked(session_call(s, &req, true), NULL);
}

void session_check_jobs(session *s)
{
	for (size_t i = 0; i < s->nids; i++) {
		Nq__V1__Request req = NQ__V1__REQUEST__INIT;
		Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
		g.id = s->ids[i];
		req.body_case = NQ__V1__REQUEST__BODY_GET;
		req.get = &g;
		Nq__V1__Reply *r = session_call(s, &req, false);
		/* An enqueued job stays readable: nothing here runs long
		 * enough for a result TTL to pass, except a TTL of 0 (a
		 * queue setting the wire cannot change). */
		FUZZ_CHECK(r->body_case == NQ__V1__REPLY__BODY_GET);
		FUZZ_CHECK(
		    r->get->job && strcmp(r->get->job->id, s->ids[i]) == 0);
		nq__v1__reply__free_unpacked(r, NULL);
	}
}
