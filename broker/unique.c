/*
 * Unique keys (a job's idempotency_key) and their scopes: the store's
 * database "idem" maps queue and key to the job that holds the key. The
 * value is the job's id and, for the window scope, the end of the window
 * (16 bytes, as every broker before scopes wrote them); for a scope that
 * follows the job's state, the id, the end of its bound (0: none) and the
 * scope (17 bytes). Whether a key still holds is decided when an enqueue
 * meets it, from the job's record as it is then: so no state change pays
 * for keys, a restart needs nothing rebuilt, and a key whose job is gone
 * never returns its id.
 */
#include <string.h>

#include "broker.h"
#include "nqi/util.h"

#define VALUE_WINDOW 16
#define VALUE_SCOPED 17

/* Whether the scope holds for job as it is now (README "Unique jobs"). */
static bool scope_holds(int scope, const Nq__V1__Job *job)
{
	int st = (int)job->state;
	bool waiting = st == NQ_STATE_SCHEDULED || st == NQ_STATE_READY ||
	               st == NQ_STATE_WAITING;
	bool queued = waiting && job->attempt == 0;
	switch (scope) {
	case NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_QUEUED:
		return queued;
	case NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_ACTIVE:
		return queued || (st == NQ_STATE_LEASED && job->attempt == 1);
	case NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_UNTIL_FINISHED:
		return waiting || st == NQ_STATE_LEASED;
	default:
		return false;
	}
}

/* The spec's scope; without a Unique, the window. */
static int scope_of(const Nq__V1__JobSpec *s)
{
	return s->unique ? (int)s->unique->scope
	                 : NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_WINDOW;
}

int broker_unique_holder(
    broker *b, const void *value, size_t len, uint64_t now_us, uint64_t *id)
{
	const uint8_t *v = value;
	Nq__V1__Job *job = NULL;
	*id = 0;
	if (len != VALUE_WINDOW && len != VALUE_SCOPED)
		return NQ_OK;
	bool window = len == VALUE_WINDOW;
	uint64_t until = nqi_be64_get(v + 8);
	if ((window || until) && until <= now_us)
		return NQ_OK;
	uint64_t holder = nqi_be64_get(v);
	/* The window needs only the record to be there; a scope, its state. */
	int rv = window ? broker_job_read_raw(b, holder)
	                : broker_job_read(b, holder, &job);
	if (rv == NQ_ENOTFOUND || rv == NQ_EINTERNAL)
		return NQ_OK; /* gone, or unreadable: the key makes a new job */
	if (rv != 0)
		return rv;
	if (window || scope_holds(v[16], job))
		*id = holder;
	return NQ_OK;
}

void broker_unique_value(broker *b, const Nq__V1__JobSpec *s, uint64_t id,
    uint64_t now_us, uint8_t value[17], size_t *len, uint64_t *until)
{
	int scope = scope_of(s);
	bool window = scope == NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_WINDOW;
	uint64_t ms = s->unique ? s->unique->window_ms : 0;
	if (window && !ms)
		ms = b->cfg.idempotency_window_ms;
	*until = ms ? nqi_us_plus_ms(now_us, ms) : 0;
	nqi_be64_put(value, id);
	nqi_be64_put(value + 8, *until);
	value[16] = (uint8_t)scope;
	*len = window ? VALUE_WINDOW : VALUE_SCOPED;
}

const char *broker_unique_refuses(const Nq__V1__JobSpec *s)
{
	int scope = scope_of(s);
	if (scope < 0 ||
	    scope > NQ__V1__UNIQUE_SCOPE__UNIQUE_SCOPE_UNTIL_FINISHED)
		return "unique.scope is not one of window, queued, active, "
		       "until_finished";
	if (!s->idempotency_key[0])
		return "unique needs a unique key (idempotency_key)";
	return NULL;
}
