/* Queue policies: resolution of each queue's effective policy, the queues
 * file at start and on SIGHUP, and the stored runtime values (policy.h). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

static const nqi_policy_key *key_at(size_t i)
{
	return &nqi_policy_keys()[i];
}

/* Which of runtime, the file's queue entry, its "*" entry and the defaults
 * holds key i for queue; NULL only when none does. */
static const nqi_policy *holder(broker *b, const nqi_policy *runtime,
    const char *queue, size_t i, broker_policy_source *src)
{
	const nqi_policy_file *f = b->core.policy.file;
	const nqi_policy *cand[] = {runtime, nqi_policy_file_find(f, queue),
	    nqi_policy_file_find(f, "*"), &b->core.policy.defaults};
	const broker_policy_source from[] = {BROKER_POLICY_RUNTIME,
	    BROKER_POLICY_FILE, BROKER_POLICY_FILE, BROKER_POLICY_DEFAULT};
	for (size_t c = 0; c < 4; c++)
		if (cand[c] && (cand[c]->set & (1u << i))) {
			*src = from[c];
			return cand[c];
		}
	*src = BROKER_POLICY_DEFAULT;
	return NULL;
}

broker_policy_source broker_policy_source_of(
    broker *b, const nqi_policy *runtime, const char *queue, size_t i)
{
	broker_policy_source src;
	(void)holder(b, runtime, queue, i, &src);
	return src;
}

/* Resolves p->eff for queue. Out of memory leaves a list key unset, which
 * takes everything: a policy never refuses for want of memory. */
static void resolve(broker *b, broker_policy *p, const char *queue)
{
	nqi_policy_clear(&p->eff);
	for (size_t i = 0; i < NQI_PK_COUNT; i++) {
		broker_policy_source src;
		const nqi_policy *h = holder(b, &p->runtime, queue, i, &src);
		if (h)
			(void)nqi_policy_copy_key(&p->eff, h, key_at(i));
	}
	/* Each level is checked on its own; mixed, cap may be below base. */
	if (p->eff.backoff_cap < p->eff.backoff_base)
		p->eff.backoff_cap = p->eff.backoff_base;
	p->gen = b->core.policy.gen;
	p->resolved++;
}

const nqi_policy *broker_policy_of(broker *b, broker_queue *q)
{
	if (q->policy.gen != b->core.policy.gen)
		resolve(b, &q->policy, q->name);
	return &q->policy.eff;
}

const nqi_policy *broker_policy_named(broker *b, const char *queue)
{
	int qi = broker_queue_find(&b->core.index, queue);
	if (qi >= 0)
		return broker_policy_of(b, &b->core.index.queues[qi]);
	resolve(b, &b->core.policy.scratch, queue);
	return &b->core.policy.scratch.eff;
}

uint64_t broker_result_ttl_ms(broker *b, int qi, const char *queue)
{
	if (qi >= 0)
		return broker_policy_of(b, &b->core.index.queues[qi])
		    ->result_ttl;
	return broker_policy_named(b, queue)->result_ttl;
}

/* The defaults: each key's own, then the flags of the same meaning. */
static void defaults_from_flags(broker *b)
{
	nqi_policy *d = &b->core.policy.defaults;
	const broker_config *c = &b->cfg;
	char why[256];
	for (size_t i = 0; i < NQI_PK_COUNT; i++)
		if (key_at(i)->def[0] && strncmp(key_at(i)->def, "--", 2) != 0)
			(void)nqi_policy_parse(
			    key_at(i), key_at(i)->def, d, why, sizeof why);
	d->max_attempts = c->max_attempts;
	d->backoff_base = c->backoff_base_ms;
	d->backoff_cap = c->backoff_cap_ms;
	d->timeout = c->default_timeout_ms;
	d->result_ttl = c->result_ttl_ms;
	d->max_depth = c->max_depth; /* 0: unlimited */
	d->set |= NQI_PK_BIT(max_attempts) | NQI_PK_BIT(backoff_base) |
	          NQI_PK_BIT(backoff_cap) | NQI_PK_BIT(timeout) |
	          NQI_PK_BIT(result_ttl);
	if (c->max_depth)
		d->set |= NQI_PK_BIT(max_depth);
}

static void log_rejected(const char *path, const nqi_policy_error *e)
{
	nqi_error("NQ-CONFIG-REJECTED", NQI_S("file", path),
	    NQI_U("line", e->line), NQI_S("key", e->key),
	    NQI_S("reason", e->reason));
}

void broker_policy_init(broker *b)
{
	defaults_from_flags(b);
	b->core.policy.gen = 1;
}

int broker_policy_start(broker *b)
{
	const char *path = b->cfg.queues_config;
	nqi_policy_error e;
	if (!path || !*path)
		return 0;
	if (nqi_policy_file_load(path, &b->core.policy.file, &e) != 0) {
		char text[PATH_MAX + 400];
		log_rejected(path, &e);
		nqi_policy_error_text(path, &e, text, sizeof text);
		fprintf(stderr, "nq-broker: %s\n", text);
		return 2;
	}
	nqi_info("NQ-CONFIG-LOADED", NQI_S("file", path),
	    NQI_U("queues", b->core.policy.file->n));
	return 0;
}

void broker_policy_reload_cb(int sig, void *arg)
{
	broker *b = arg;
	const char *path = b->cfg.queues_config;
	nqi_policy_file *f = NULL;
	nqi_policy_error e;
	broker_op *op;
	(void)sig;
	if (!path || !*path)
		return;
	if (nqi_policy_file_load(path, &f, &e) != 0) {
		log_rejected(path, &e);
		return;
	}
	if (!(op = calloc(1, sizeof *op))) {
		nqi_policy_file_free(f);
		return;
	}
	op->kind = BROKER_OP_POLICY;
	op->pfile = f;
	broker_post(b, op);
}

int broker_on_policy_swap(broker *b, broker_op *op)
{
	nqi_policy_file *old = b->core.policy.file;
	b->core.policy.file = op->pfile;
	op->pfile = NULL;
	/* The schedules still point into the old file while they move. */
	int rv = broker_cron_run(b);
	nqi_policy_file_free(old);
	if (rv != 0)
		return rv;
	b->core.policy.gen++;
	b->core.woken = true; /* a limit may have gone up */
	nqi_info("NQ-CONFIG-RELOADED", NQI_S("file", b->cfg.queues_config),
	    NQI_U("queues", b->core.policy.file->n));
	return NQ_OK;
}

void broker_policy_fini(broker *b)
{
	broker_index *x = &b->core.index;
	for (size_t i = 0; i < x->nqueues; i++) {
		nqi_policy_clear(&x->queues[i].policy.eff);
		nqi_policy_clear(&x->queues[i].policy.runtime);
	}
	nqi_policy_clear(&b->core.policy.scratch.eff);
	nqi_policy_clear(&b->core.policy.defaults);
	nqi_policy_file_free(b->core.policy.file);
	b->core.policy.file = NULL;
}

void broker_policy_load(broker_queue *q, const Nq__V1__QueueConfig *cfg)
{
	char why[256], max_depth[32];
	nqi_policy_clear(&q->policy.runtime);
	q->policy.gen = 0;
	/* Before runtime policies, max_depth was a field of its own. */
	snprintf(max_depth, sizeof max_depth, "%" PRIu64, cfg->max_depth);
	if (cfg->max_depth)
		(void)nqi_policy_parse(nqi_policy_key_find("max_depth"),
		    max_depth, &q->policy.runtime, why, sizeof why);
	for (size_t i = 0; i < cfg->n_policy; i++) {
		const Nq__V1__PolicySetting *s = cfg->policy[i];
		const nqi_policy_key *k = nqi_policy_key_find(s->key);
		if (!k || nqi_policy_parse(k, s->value, &q->policy.runtime, why,
		              sizeof why) != 0)
			nqi_warn("NQ-POLICY-SKIPPED", NQI_S("queue", q->name),
			    NQI_S("key", s->key), NQI_S("value", s->value));
	}
}

int broker_policy_put(
    broker *b, const broker_queue *q, Nq__V1__QueueConfig *cfg)
{
	static const Nq__V1__PolicySetting init = NQ__V1__POLICY_SETTING__INIT;
	const nqi_policy *r = &q->policy.runtime;
	nqi_arena *a = b->core.arena;
	/* The field max_depth was before policy entries mirrors the entry,
	 * so that it never brings back a value that was reset. */
	cfg->max_depth = (r->set & NQI_PK_BIT(max_depth)) ? r->max_depth : 0;
	cfg->n_policy = 0;
	cfg->policy = nqi_arena_alloc(a, NQI_PK_COUNT * sizeof *cfg->policy);
	if (!cfg->policy)
		return NQ_ENOMEM;
	for (size_t i = 0; i < NQI_PK_COUNT; i++) {
		char text[4096];
		if (!(r->set & (1u << i)))
			continue;
		Nq__V1__PolicySetting *s = nqi_arena_alloc(a, sizeof *s);
		nqi_policy_format(key_at(i), r, text, sizeof text);
		if (!s)
			return NQ_ENOMEM;
		*s = init;
		s->key = (char *)key_at(i)->key;
		if (!(s->value = nqi_arena_strdup(a, text)))
			return NQ_ENOMEM;
		cfg->policy[cfg->n_policy++] = s;
	}
	return NQ_OK;
}

/* What a VERSIONS or LIST value allows, for a refusal's message. */
static const char *refuse_type(
    const nqi_policy *p, const Nq__V1__JobSpec *spec, char *why, size_t len)
{
	snprintf(why, len,
	    "queue %s does not take jobs of type %s (schema_version %u); it "
	    "takes types %s",
	    spec->queue, spec->type, spec->schema_version, p->types);
	return why;
}

const char *broker_policy_refuses(
    const nqi_policy *p, const Nq__V1__JobSpec *spec, char *why, size_t len)
{
	uint32_t lo, hi;
	if ((p->set & NQI_PK_BIT(types)) &&
	    !nqi_policy_list_has(p->types, spec->type))
		return refuse_type(p, spec, why, len);
	if (!(p->set & NQI_PK_BIT(schema_versions)) ||
	    !nqi_policy_versions_of(p->schema_versions, spec->type, &lo, &hi) ||
	    (spec->schema_version >= lo && spec->schema_version <= hi))
		return NULL;
	snprintf(why, len,
	    "queue %s does not take type %s at schema_version %u; it takes "
	    "versions %u-%u of %s",
	    spec->queue, spec->type, spec->schema_version, lo, hi, spec->type);
	return why;
}
