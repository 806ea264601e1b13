/* Handlers of the queue policy requests (admin): get, set, reset. Each
 * runs on the core thread inside the group; set and reset store the
 * queue's runtime values in the group's commit, before the reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

static const char *const source_names[] = {"default", "file", "runtime"};

/* The policy of the queue named (which need not exist) as the wire has
 * it; NULL on no memory. */
static Nq__V1__QueuePolicy *policy_msg(broker *b, const char *queue)
{
	static const Nq__V1__QueuePolicy init = NQ__V1__QUEUE_POLICY__INIT;
	static const Nq__V1__PolicyValue vinit = NQ__V1__POLICY_VALUE__INIT;
	nqi_arena *a = b->core.arena;
	int qi = broker_queue_find(&b->core.index, queue);
	const nqi_policy *rt =
	    qi >= 0 ? &b->core.index.queues[qi].policy.runtime : NULL;
	const nqi_policy *eff = broker_policy_named(b, queue);
	Nq__V1__QueuePolicy *m = nqi_arena_alloc(a, sizeof *m);
	Nq__V1__PolicyValue *v = nqi_arena_alloc(a, NQI_PK_COUNT * sizeof *v);
	Nq__V1__PolicyValue **pv =
	    nqi_arena_alloc(a, NQI_PK_COUNT * sizeof *pv);
	if (!m || !v || !pv || !(queue = nqi_arena_strdup(a, queue)))
		return NULL;
	*m = init;
	m->queue = (char *)queue;
	m->values = pv;
	for (size_t i = 0; i < NQI_PK_COUNT; i++) {
		const nqi_policy_key *k = &nqi_policy_keys()[i];
		char text[4096];
		nqi_policy_format(k, eff, text, sizeof text);
		v[i] = vinit;
		v[i].key = (char *)k->key;
		v[i].source = (char *)
		    source_names[broker_policy_source_of(b, rt, queue, i)];
		if (!(v[i].value = nqi_arena_strdup(a, text)))
			return NULL;
		pv[m->n_values++] = &v[i];
	}
	return m;
}

/* The reply with the policies of the queues named (n of them). */
static Nq__V1__QueuePolicyReply *reply_msg(
    broker *b, const char *const *names, size_t n)
{
	static const Nq__V1__QueuePolicyReply init =
	    NQ__V1__QUEUE_POLICY_REPLY__INIT;
	Nq__V1__QueuePolicyReply *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__QueuePolicy **qs =
	    nqi_arena_alloc(b->core.arena, (n + 1) * sizeof *qs);
	if (!r || !qs)
		return NULL;
	*r = init;
	r->queues = qs;
	for (size_t i = 0; i < n; i++)
		if (!(qs[r->n_queues++] = policy_msg(b, names[i])))
			return NULL;
	return r;
}

/* The queues the broker knows, then those only the file names. */
static const char **all_names(broker *b, size_t *n)
{
	const broker_index *x = &b->core.index;
	const nqi_policy_file *f = b->core.policy.file;
	size_t cap = x->nqueues + (f ? f->n : 0) + 1;
	const char **names =
	    nqi_arena_alloc(b->core.arena, cap * sizeof *names);
	*n = 0;
	if (!names)
		return NULL;
	for (size_t i = 0; i < x->nqueues; i++)
		names[(*n)++] = x->queues[i].name;
	for (size_t i = 0; f && i < f->n; i++)
		if (broker_queue_find(x, f->entries[i].queue) < 0)
			names[(*n)++] = f->entries[i].queue;
	return names;
}

static bool check_queue(broker *b, broker_op *op, const char *name)
{
	if (nqi_name_valid(name))
		return true;
	broker_set_status(b, op, NQ_EINVAL,
	    "queue name '%.40s' must match [A-Za-z0-9._-]{1,128}", name);
	broker_finish(b, op);
	return false;
}

int broker_on_policy_get(broker *b, broker_op *op)
{
	const char *want = op->req->policy_get->queue;
	size_t n = 1;
	const char **names = want && want[0] ? &want : all_names(b, &n);
	if (want && want[0] && strcmp(want, "*") != 0 &&
	    !check_queue(b, op, want))
		return NQ_OK;
	Nq__V1__QueuePolicyReply *r = names ? reply_msg(b, names, n) : NULL;
	if (!r)
		return NQ_ENOMEM;
	return BROKER_ANSWER(b, op, POLICY_GET, policy_get, r);
}

/* Makes next q's runtime values and stores them; on a store failure q
 * keeps what it had (the group fails). next is taken either way. */
static int runtime_swap(broker *b, broker_queue *q, nqi_policy *next)
{
	nqi_policy was = q->policy.runtime;
	q->policy.runtime = *next;
	int rv = broker_queue_settings_store(b, q);
	if (rv != 0) {
		q->policy.runtime = was;
		nqi_policy_clear(next);
		return rv;
	}
	nqi_policy_clear(&was);
	q->policy.gen = 0; /* resolved again at its next use */
	b->core.woken = true;
	return NQ_OK;
}

/* Parses the request's pairs over a copy of the queue's runtime values:
 * NULL, or the refusal (in why; next is cleared). */
static const char *merge_pairs(const Nq__V1__QueuePolicySetRequest *s,
    const broker_queue *q, nqi_policy *next, char *why, size_t len)
{
	for (size_t i = 0; i < NQI_PK_COUNT; i++)
		(void)nqi_policy_copy_key(
		    next, &q->policy.runtime, &nqi_policy_keys()[i]);
	for (size_t i = 0; i < s->n_settings; i++) {
		char pair[4200];
		snprintf(pair, sizeof pair, "%s=%s", s->settings[i]->key,
		    s->settings[i]->value);
		if (nqi_policy_parse_pair(pair, next, why, len) != 0) {
			nqi_policy_clear(next);
			return why;
		}
	}
	if (nqi_policy_check(next, why, len)) {
		nqi_policy_clear(next);
		return why;
	}
	return NULL;
}

static int answer_one(broker *b, broker_op *op, const char *queue, bool set)
{
	Nq__V1__QueuePolicyReply *r = reply_msg(b, &queue, 1);
	if (!r)
		return NQ_ENOMEM;
	if (set)
		return BROKER_ANSWER(b, op, POLICY_SET, policy_set, r);
	return BROKER_ANSWER(b, op, POLICY_RESET, policy_reset, r);
}

int broker_on_policy_set(broker *b, broker_op *op)
{
	const Nq__V1__QueuePolicySetRequest *s = op->req->policy_set;
	char why[300];
	nqi_policy next = {0};
	if (!check_queue(b, op, s->queue))
		return NQ_OK;
	int qi = broker_queue_get(&b->core.index, s->queue);
	if (qi < 0)
		return NQ_ENOMEM;
	broker_queue *q = &b->core.index.queues[qi];
	if (merge_pairs(s, q, &next, why, sizeof why)) {
		broker_set_status(b, op, NQ_EINVAL, "%s", why);
		broker_finish(b, op);
		return NQ_OK;
	}
	int rv = runtime_swap(b, q, &next);
	if (rv != 0)
		return rv;
	nqi_info("NQ-POLICY-SET", NQI_S("queue", q->name),
	    NQI_U("keys", s->n_settings));
	return answer_one(b, op, q->name, true);
}

int broker_on_policy_reset(broker *b, broker_op *op)
{
	const Nq__V1__QueuePolicyResetRequest *r = op->req->policy_reset;
	nqi_policy next = {0};
	if (!check_queue(b, op, r->queue))
		return NQ_OK;
	for (size_t i = 0; i < r->n_keys; i++)
		if (!nqi_policy_key_find(r->keys[i])) {
			broker_set_status(b, op, NQ_EINVAL,
			    "%.80s: not a policy key", r->keys[i]);
			broker_finish(b, op);
			return NQ_OK;
		}
	int qi = broker_queue_get(&b->core.index, r->queue);
	if (qi < 0)
		return NQ_ENOMEM;
	broker_queue *q = &b->core.index.queues[qi];
	for (size_t i = 0; r->n_keys && i < NQI_PK_COUNT; i++)
		(void)nqi_policy_copy_key(
		    &next, &q->policy.runtime, &nqi_policy_keys()[i]);
	for (size_t i = 0; i < r->n_keys; i++)
		nqi_policy_unset(&next, nqi_policy_key_find(r->keys[i]));
	int rv = runtime_swap(b, q, &next);
	if (rv != 0)
		return rv;
	nqi_info("NQ-POLICY-RESET", NQI_S("queue", q->name),
	    NQI_U("keys", r->n_keys));
	return answer_one(b, op, q->name, false);
}
