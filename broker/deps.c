/* Dependencies: a job enqueued with depends_on waits (state waiting) until
 * each parent succeeded. Every move happens in the group of the parent's
 * end: the child's record counts the parents it still waits for
 * (waiting_on) and keeps what each ended parent left (parent_results), and
 * each parent's record names its children, so that recovery needs nothing
 * but the records. The index keeps only the set of jobs with children, so
 * that a job without any pays one compare on its way to success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

/* Parents one job may name: bounds the work of an enqueue and the size of
 * the parent results a child carries (each within --max-result). */
#define MAX_PARENTS 64
/* What one child keeps of its parents' results in all: past it a result
 * is dropped (result_dropped), so that a child's record, and the fetch
 * that leases it, stay within the bounds of one job's payload. */
#define PARENT_RESULTS_MAX (256u * 1024)

/* ---- the set of jobs with children ---- */

static size_t slot_of(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static void set_insert(uint64_t *slots, size_t cap, uint64_t id)
{
	size_t i = slot_of(id, cap);
	while (slots[i] && slots[i] != id)
		i = (i + 1) & (cap - 1);
	slots[i] = id;
}

static int set_grow(broker_index *x)
{
	size_t cap = x->capparents ? x->capparents * 2 : 64;
	uint64_t *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return NQ_ENOMEM;
	for (size_t i = 0; i < x->capparents; i++)
		if (x->parents[i])
			set_insert(slots, cap, x->parents[i]);
	free(x->parents);
	x->parents = slots;
	x->capparents = cap;
	return NQ_OK;
}

int broker_parent_add(broker_index *x, uint64_t id)
{
	if (broker_parent_has(x, id))
		return NQ_OK;
	if ((x->nparents + 1) * 2 > x->capparents && set_grow(x) != 0)
		return NQ_ENOMEM;
	set_insert(x->parents, x->capparents, id);
	x->nparents++;
	return NQ_OK;
}

bool broker_parent_has(const broker_index *x, uint64_t id)
{
	if (!x->capparents)
		return false;
	size_t i = slot_of(id, x->capparents);
	for (; x->parents[i]; i = (i + 1) & (x->capparents - 1))
		if (x->parents[i] == id)
			return true;
	return false;
}

/* Takes id out; the entries after it move back (no tombstones). */
static bool parent_take(broker_index *x, uint64_t id)
{
	size_t cap = x->capparents, i;
	if (!cap)
		return false;
	for (i = slot_of(id, cap); x->parents[i] != id; i = (i + 1) & (cap - 1))
		if (!x->parents[i])
			return false;
	x->parents[i] = 0;
	x->nparents--;
	for (size_t j = (i + 1) & (cap - 1); x->parents[j];
	     j = (j + 1) & (cap - 1)) {
		uint64_t moved = x->parents[j];
		x->parents[j] = 0;
		set_insert(x->parents, cap, moved);
	}
	return true;
}

void broker_parents_clear(broker_index *x)
{
	if (x->capparents)
		memset(x->parents, 0, x->capparents * sizeof *x->parents);
	x->nparents = 0;
}

/* ---- enqueue of a child ---- */

static bool ended(int state)
{
	return nq_state_is_final((nq_state)state);
}

const char *broker_deps_check(broker *b, const Nq__V1__JobSpec *spec,
    broker_deps *d, int *err, char *why, size_t len)
{
	size_t n = broker_nparents(spec);
	*err = NQ_EINVAL;
	if (n > MAX_PARENTS)
		return snprintf(why, len,
		           "depends_on names %zu jobs, the limit is %d", n,
		           MAX_PARENTS),
		       why;
	d->n = 0;
	d->parents = nqi_arena_alloc(b->core.arena, n * sizeof *d->parents);
	if (!d->parents) {
		*err = NQ_ENOMEM;
		return "broker out of memory";
	}
	for (size_t i = 0; i < n; i++) {
		const char *text = spec->depends->depends_on[i];
		uint64_t id;
		if (nqi_id_parse(text, &id) != 0)
			return snprintf(why, len,
			           "depends_on: job id '%.40s' is not 16 hex "
			           "digits",
			           text),
			       why;
		for (size_t k = 0; k < i; k++)
			if (strcmp(spec->depends->depends_on[k], text) == 0)
				return snprintf(why, len,
				           "depends_on names job %s twice",
				           text),
				       why;
		int rv = broker_job_read(b, id, &d->parents[i]);
		if (rv == NQ_ESTORE || rv == NQ_ENOMEM) {
			*err = rv;
			return "store failed";
		}
		if (rv != 0) {
			*err = NQ_ENOTFOUND;
			return snprintf(why, len,
			           "depends_on: job %s not found on this "
			           "broker (never enqueued here, or deleted "
			           "after its result_ttl)",
			           text),
			       why;
		}
		d->n++;
	}
	return NULL;
}

/* The job's family, made when it has none yet (NULL: out of memory). */
static Nq__V1__JobFamily *family_of(broker *b, Nq__V1__Job *j)
{
	static const Nq__V1__JobFamily init = NQ__V1__JOB_FAMILY__INIT;
	if (!j->family &&
	    (j->family = nqi_arena_alloc(b->core.arena, sizeof *j->family)))
		*j->family = init;
	return j->family;
}

/* Notes in job what its parent id left when it ended. */
static int keep_parent(broker *b, Nq__V1__Job *job, const char *id, int state,
    ProtobufCBinaryData result)
{
	static const Nq__V1__ParentResult init = NQ__V1__PARENT_RESULT__INIT;
	Nq__V1__JobFamily *child = family_of(b, job);
	if (!child)
		return NQ_ENOMEM;
	size_t n = child->n_parent_results;
	Nq__V1__ParentResult *r = nqi_arena_alloc(b->core.arena, sizeof *r);
	Nq__V1__ParentResult **v =
	    nqi_arena_alloc(b->core.arena, (n + 1) * sizeof *v);
	if (!r || !v)
		return NQ_ENOMEM;
	*r = init;
	r->id = (char *)id;
	r->state = (Nq__V1__JobState)state;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		kept += child->parent_results[i]->result.len;
	if (state == NQ_STATE_SUCCEEDED &&
	    kept + result.len <= PARENT_RESULTS_MAX)
		r->result = result;
	else if (state == NQ_STATE_SUCCEEDED)
		r->result_dropped = true;
	if (n)
		memcpy(v, child->parent_results, n * sizeof *v);
	v[n] = r;
	child->parent_results = v;
	child->n_parent_results = n + 1;
	return NQ_OK;
}

/* Names child in parent p's record and p in the set of parents. */
static int add_child(broker *b, Nq__V1__Job *job, const char *child)
{
	Nq__V1__JobFamily *p = family_of(b, job);
	size_t n = p ? p->n_children : 0;
	char **v = nqi_arena_alloc(b->core.arena, (n + 1) * sizeof *v);
	if (!v || !p)
		return NQ_ENOMEM;
	if (n)
		memcpy(v, p->children, n * sizeof *v);
	v[n] = (char *)child;
	p->children = v;
	p->n_children = n + 1;
	uint64_t id = broker_job_id(job);
	int rv = broker_job_write(b, id, job);
	return rv != 0 ? rv : broker_parent_add(&b->core.index, id);
}

/* Whether child stops at a parent's failure (else it runs anyway). */
static bool fails_with_parent(const Nq__V1__Job *child)
{
	return child->spec->depends->on_parent_failure !=
	       NQ__V1__PARENT_FAILURE__PARENT_FAILURE_RUN;
}

static int dep_fail(broker *b, Nq__V1__Job *child, const char *parent);
static int dep_release(broker *b, Nq__V1__Job *child);

int broker_deps_enqueue(broker *b, Nq__V1__Job *job, const broker_deps *d)
{
	const char *failed = NULL;
	Nq__V1__JobFamily *f = family_of(b, job);
	int rv = f ? NQ_OK : NQ_ENOMEM;
	job->state = NQ__V1__JOB_STATE__JOB_STATE_WAITING;
	for (size_t i = 0; rv == 0 && i < d->n; i++) {
		Nq__V1__Job *p = d->parents[i];
		if (!ended((int)p->state)) {
			f->waiting_on++;
			rv = add_child(b, p, job->id);
			continue;
		}
		if (p->state != NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED)
			failed = p->id;
		rv = keep_parent(b, job, p->id, (int)p->state, p->result);
	}
	if (rv == 0)
		rv = broker_job_write(b, broker_job_id(job), job);
	if (rv != 0)
		return rv;
	broker_count_move(b, job->spec->queue, 0, NQ_STATE_WAITING);
	if (failed && fails_with_parent(job))
		return dep_fail(b, job, failed);
	return f->waiting_on ? NQ_OK : dep_release(b, job);
}

/* ---- a parent's end ---- */

static int dep_release(broker *b, Nq__V1__Job *child)
{
	/* A delay counts from the release; run_at stays absolute. */
	uint64_t at = child->spec->run_at_us
	                  ? child->spec->run_at_us
	                  : nqi_us_plus_ms(nqi_now_us(), child->spec->delay_ms);
	return broker_job_requeue(b, child, at);
}

static int dep_fail(broker *b, Nq__V1__Job *child, const char *parent)
{
	char *why = nqi_arena_alloc(b->core.arena, 64);
	if (!why)
		return NQ_ENOMEM;
	snprintf(why, 64, "parent %s failed", parent);
	child->dead_reason = (char *)"dependency_failed";
	nqi_info("NQ-JOB-DEPENDENCY-FAILED", NQI_S("id", child->id),
	    NQI_S("queue", child->spec->queue), NQI_S("parent", parent));
	broker_event(b, BROKER_EV_DEPENDENCY_FAILED, child, why);
	return broker_end_waiting(
	    b, child, NQ_STATE_CANCELED, nqi_now_us(), false);
}

/* Tells one waiting child of its parent's end. */
static int tell_child(broker *b, const broker_dep_item *it)
{
	Nq__V1__Job *c;
	int rv = broker_job_read(b, it->child, &c);
	if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
		return NQ_OK; /* gone: nothing waits */
	if (rv != 0 || c->state != NQ__V1__JOB_STATE__JOB_STATE_WAITING)
		return rv; /* canceled or expired meanwhile */
	if ((rv = keep_parent(b, c, it->parent, it->state, it->result)) != 0)
		return rv;
	if (c->family->waiting_on)
		c->family->waiting_on--;
	if (it->state != NQ_STATE_SUCCEEDED && fails_with_parent(c))
		return dep_fail(b, c, it->parent);
	if (c->family->waiting_on)
		return broker_job_write(b, it->child, c);
	return dep_release(b, c);
}

static int push_children(broker *b, const Nq__V1__Job *job)
{
	for (size_t i = 0; i < broker_nchildren(job); i++) {
		uint64_t child;
		if (nqi_id_parse(job->family->children[i], &child) != 0)
			continue;
		if (NQI_GROW(b->core.dep_work, b->core.capdep_work,
		        b->core.ndep_work + 1, 64) != 0)
			return NQ_ENOMEM;
		b->core.dep_work[b->core.ndep_work++] = (broker_dep_item){
		    child, job->id, (int)job->state, job->result};
	}
	return NQ_OK;
}

int broker_deps_ended(broker *b, const Nq__V1__Job *job)
{
	if (!parent_take(&b->core.index, broker_job_id(job)))
		return NQ_OK;
	int rv = push_children(b, job);
	/* A child that ends adds its own children to the list being worked
	 * through, rather than recursing: a chain may be long. */
	if (rv != 0 || b->core.dep_busy)
		return rv;
	b->core.dep_busy = true;
	while (rv == 0 && b->core.ndep_work > 0) {
		broker_dep_item it = b->core.dep_work[--b->core.ndep_work];
		rv = tell_child(b, &it);
	}
	b->core.ndep_work = 0;
	b->core.dep_busy = false;
	return rv;
}
