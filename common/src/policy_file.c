/* The queues file: YAML read with libyaml's document API (which keeps the
 * line of every node), each value parsed by the key's row of
 * NQI_POLICY_KEYS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "nqi/cron.h"
#include "nqi/json.h"
#include "nqi/policy.h"
#include "nqi/util.h"

#define TEXT_MAX 4096 /* a list or versions value, joined */
#define FILE_MAX (1u << 20)

typedef struct file_ctx {
	yaml_document_t *doc;
	nqi_policy_error *err;
} file_ctx;

static int fail(file_ctx *c, const yaml_node_t *at, const char *key,
    const char *fmt, const char *arg)
{
	c->err->line = at ? (unsigned)at->start_mark.line + 1 : 0;
	snprintf(c->err->key, sizeof c->err->key, "%s", key);
	snprintf(c->err->reason, sizeof c->err->reason, fmt, arg);
	return NQ_EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE
	           ? (const char *)n->data.scalar.value
	           : NULL;
}

/* Appends s to buf (sep first unless buf is empty); false when full. */
static bool join(char *buf, const char *sep, const char *s)
{
	size_t have = strlen(buf), nsep = have ? strlen(sep) : 0,
	       ns = strlen(s);
	if (have + nsep + ns + 1 > TEXT_MAX)
		return false;
	memcpy(buf + have, sep, nsep);
	memcpy(buf + have + nsep, s, ns + 1);
	return true;
}

/* The value node of a LIST (sequence of names) or VERSIONS (mapping of
 * type to range) key as the key's text form. */
static int collection_text(
    file_ctx *c, const nqi_policy_key *k, yaml_node_t *v, char *buf)
{
	buf[0] = '\0';
	if (k->kind == NQI_PT_LIST && v->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = v->data.sequence.items.start;
		     i < v->data.sequence.items.top; i++) {
			const char *s =
			    scalar(yaml_document_get_node(c->doc, *i));
			if (!s || !join(buf, ",", s))
				return fail(c, v, k->key,
				    "must be a list of %s", "names");
		}
		return NQ_OK;
	}
	if (k->kind == NQI_PT_VERSIONS && v->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
		     p < v->data.mapping.pairs.top; p++) {
			const char *t =
			    scalar(yaml_document_get_node(c->doc, p->key));
			const char *r =
			    scalar(yaml_document_get_node(c->doc, p->value));
			if (!t || !r || !join(buf, ",", t) ||
			    !join(buf, ":", r))
				return fail(c, v, k->key,
				    "must map each type to a range, as "
				    "%s: \"1-3\"",
				    "TYPE");
		}
		return NQ_OK;
	}
	return fail(
	    c, v, k->key, "must be a %s", nqi_policy_kind_name(k->kind));
}

/* One key (a dotted name inside a mapping) and its value node. */
static int put_value(
    file_ctx *c, nqi_policy *p, const char *key, yaml_node_t *v)
{
	char why[256], *text = NULL;
	const nqi_policy_key *k = nqi_policy_key_find(key);
	if (!k || strcmp(k->key, key) != 0)
		return fail(c, v, key, "%s", "not a policy key");
	const char *s = scalar(v);
	if (!s) {
		if (!(text = malloc(TEXT_MAX)))
			return NQ_ENOMEM;
		int rv = collection_text(c, k, v, text);
		if (rv != 0) {
			free(text);
			return rv;
		}
		s = text;
	} else if (k->kind == NQI_PT_LIST || k->kind == NQI_PT_VERSIONS) {
		return fail(c, v, key, "must be a %s, not a single value",
		    nqi_policy_kind_name(k->kind));
	}
	int rv = nqi_policy_parse(k, s, p, why, sizeof why);
	free(text);
	return rv == NQ_EINVAL ? fail(c, v, key, "%s", why) : rv;
}

/* The mapping of one queue; nested mappings (backoff, circuit_breaker)
 * name their keys with a dot. */
static int put_mapping(
    file_ctx *c, nqi_policy *p, const char *prefix, yaml_node_t *m)
{
	for (yaml_node_pair_t *pr = m->data.mapping.pairs.start;
	     pr < m->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
		const char *ks = scalar(kn);
		char key[96];
		if (!ks)
			return fail(c, kn, prefix, "%s", "a key must be text");
		snprintf(
		    key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", ks);
		const nqi_policy_key *k = nqi_policy_key_find(key);
		int rv = vn->type == YAML_MAPPING_NODE && !*prefix &&
		                 !(k && k->kind == NQI_PT_VERSIONS)
		             ? put_mapping(c, p, key, vn)
		             : put_value(c, p, key, vn);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

static int put_queue(
    file_ctx *c, nqi_policy_file *f, yaml_node_t *kn, yaml_node_t *vn)
{
	const char *name = scalar(kn);
	char why[256];
	if (!name || (strcmp(name, "*") != 0 && !nqi_name_valid(name)))
		return fail(c, kn, name ? name : "", "%s",
		    "a queue name must match [A-Za-z0-9._-]{1,128} or be "
		    "\"*\"");
	if (nqi_policy_file_find(f, name))
		return fail(c, kn, name, "%s", "queue named twice");
	if (vn->type != YAML_MAPPING_NODE)
		return fail(c, vn, name, "%s", "a queue's policy is a mapping");
	nqi_policy_entry *e = &f->entries[f->n++];
	memset(e, 0, sizeof *e);
	snprintf(e->queue, sizeof e->queue, "%s", name);
	int rv = put_mapping(c, &e->p, "", vn);
	const char *bad =
	    rv == 0 ? nqi_policy_check(&e->p, why, sizeof why) : NULL;
	return bad ? fail(c, vn, bad, "%s", why) : rv;
}

/* ---- schedules: ---- */

/* A name-sized text value of a schedule into dst (cap bytes with NUL). */
static int sched_text(file_ctx *c, const char *key, yaml_node_t *v, char *dst,
    size_t cap, bool name)
{
	const char *s = scalar(v);
	if (!s || !*s || strlen(s) >= cap || (name && !nqi_name_valid(s)))
		return fail(c, v, key,
		    name ? "must match [A-Za-z0-9._-]{1,128}%s"
		         : "must be a text of 1 to 255 bytes%s",
		    "");
	memcpy(dst, s, strlen(s) + 1);
	return NQ_OK;
}

static int sched_count(
    file_ctx *c, const char *key, yaml_node_t *v, uint64_t max, uint64_t *out)
{
	const char *s = scalar(v);
	if (!s || nqi_parse_u64(s, out) != 0 || *out > max)
		return fail(c, v, key, "must be a whole number up to %s",
		    max == UINT32_MAX ? "4294967295" : "1000");
	return NQ_OK;
}

static int sched_payload(
    file_ctx *c, const char *key, yaml_node_t *v, nqi_schedule *sc)
{
	char why[200];
	const char *s = scalar(v);
	if (!s)
		return fail(
		    c, v, key, "%s", "must be JSON text, as '{\"a\": 1}'");
	int rv = nqi_json_to_msgpack(
	    s, &sc->payload, &sc->payload_len, why, sizeof why);
	return rv == NQ_EINVAL ? fail(c, v, key, "is not JSON: %s", why) : rv;
}

static int sched_priority(
    file_ctx *c, const char *key, yaml_node_t *v, nqi_schedule *sc)
{
	const char *s = scalar(v);
	char *end;
	long long p = s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || *end || p < INT32_MIN || p > INT32_MAX)
		return fail(
		    c, v, key, "%s", "must be a whole number (32 bits)");
	sc->priority = (int32_t)p;
	return NQ_OK;
}

static int sched_missed(
    file_ctx *c, const char *key, yaml_node_t *v, nqi_schedule *sc)
{
	const char *s = scalar(v);
	if (s && strcmp(s, "skip") == 0)
		sc->missed = NQI_CRON_MISSED_SKIP;
	else if (s && strcmp(s, "once") == 0)
		sc->missed = NQI_CRON_MISSED_ONCE;
	else
		return fail(c, v, key, "%s", "must be skip or once");
	return NQ_OK;
}

/* One key of a schedule's mapping. */
static int sched_key(file_ctx *c, nqi_schedule *sc, const char *k,
    const char *key, yaml_node_t *v)
{
	uint64_t n;
	int rv;
	if (strcmp(k, "cron") == 0)
		return sched_text(c, key, v, sc->cron, sizeof sc->cron, false);
	if (strcmp(k, "zone") == 0)
		return sched_text(c, key, v, sc->zone, sizeof sc->zone, false);
	if (strcmp(k, "queue") == 0)
		return sched_text(c, key, v, sc->queue, sizeof sc->queue, true);
	if (strcmp(k, "type") == 0)
		return sched_text(c, key, v, sc->type, sizeof sc->type, true);
	if (strcmp(k, "payload") == 0)
		return sched_payload(c, key, v, sc);
	if (strcmp(k, "priority") == 0)
		return sched_priority(c, key, v, sc);
	if (strcmp(k, "missed") == 0)
		return sched_missed(c, key, v, sc);
	if (strcmp(k, "max_attempts") == 0) {
		if ((rv = sched_count(c, key, v, 1000, &n)) == 0)
			sc->max_attempts = (uint32_t)n;
		return rv;
	}
	if (strcmp(k, "schema_version") == 0) {
		if ((rv = sched_count(c, key, v, UINT32_MAX, &n)) == 0)
			sc->schema_version = (uint32_t)n;
		return rv;
	}
	if (strcmp(k, "timeout") == 0) {
		const char *s = scalar(v);
		if (!s || nqi_parse_duration_ms(s, &sc->timeout_ms) != 0 ||
		    sc->timeout_ms == 0 || sc->timeout_ms > 86400000)
			return fail(c, v, key, "%s",
			    "must be a duration from 1ms to 24h, as 30s");
		return NQ_OK;
	}
	return fail(c, v, key, "%s",
	    "not a schedule key (cron, zone, queue, type, payload, priority, "
	    "max_attempts, timeout, schema_version, missed)");
}

/* The keys every schedule has, its expression and its zone. */
/* Whether a schedule before sc (all checked) names sc's zone: each zone
 * is opened once, not once per schedule. */
static bool zone_seen(const nqi_policy_file *f, const nqi_schedule *sc)
{
	for (const nqi_schedule *p = f->schedules; p < sc; p++)
		if (strcmp(p->zone, sc->zone) == 0)
			return true;
	return false;
}

static int sched_check(
    file_ctx *c, const nqi_policy_file *f, nqi_schedule *sc, yaml_node_t *m)
{
	char key[NQI_CRON_NAME_MAX + 32], why[200];
	nqi_cron e;
	nqi_cron_zone *z;
	const char *need = !sc->cron[0]    ? "cron"
	                   : !sc->queue[0] ? "queue"
	                   : !sc->type[0]  ? "type"
	                                   : NULL;
	snprintf(key, sizeof key, "schedules.%s", sc->name);
	if (need)
		return fail(c, m, key, "has no %s", need);
	if (nqi_cron_parse(sc->cron, &e, why, sizeof why) != 0)
		return fail(c, m, key, "cron expression: %s", why);
	if (!sc->zone[0])
		memcpy(sc->zone, "UTC", 4);
	if (zone_seen(f, sc))
		return NQ_OK;
	int rv = nqi_cron_zone_open(sc->zone, &z, why, sizeof why);
	if (rv == NQ_EINVAL)
		return fail(c, m, key, "zone: %s", why);
	nqi_cron_zone_close(z);
	return rv;
}

static int put_schedule(
    file_ctx *c, nqi_policy_file *f, yaml_node_t *kn, yaml_node_t *vn)
{
	const char *name = scalar(kn);
	char key[NQI_CRON_NAME_MAX + 64];
	if (!name || !nqi_name_valid(name))
		return fail(c, kn, "schedules", "%s",
		    "a schedule name must match [A-Za-z0-9._-]{1,128}");
	for (size_t i = 0; i < f->nschedules; i++)
		if (strcmp(f->schedules[i].name, name) == 0)
			return fail(c, kn, name, "%s", "schedule named twice");
	if (vn->type != YAML_MAPPING_NODE)
		return fail(c, vn, name, "%s", "a schedule is a mapping");
	nqi_schedule *sc = &f->schedules[f->nschedules++];
	memset(sc, 0, sizeof *sc);
	snprintf(sc->name, sizeof sc->name, "%s", name);
	sc->line = (unsigned)kn->start_mark.line + 1;
	for (yaml_node_pair_t *p = vn->data.mapping.pairs.start;
	     p < vn->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		const char *ks = scalar(k);
		snprintf(
		    key, sizeof key, "schedules.%s.%s", name, ks ? ks : "?");
		int rv = ks ? sched_key(c, sc, ks, key,
		                  yaml_document_get_node(c->doc, p->value))
		            : fail(c, k, key, "%s", "a key must be text");
		if (rv != 0)
			return rv;
	}
	return sched_check(c, f, sc, kn);
}

typedef int put_fn(
    file_ctx *c, nqi_policy_file *f, yaml_node_t *kn, yaml_node_t *vn);

/* One top-level section (queues: or schedules:), a mapping of names: room
 * for its entries (*arr, of size bytes each), then put for each. */
static int load_section(file_ctx *c, nqi_policy_file *f, yaml_node_t *m,
    const char *key, void **arr, size_t size, put_fn *put)
{
	if (m->type != YAML_MAPPING_NODE)
		return fail(c, m, key, "%s maps names to their entries", key);
	size_t n =
	    (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
	if (n && !(*arr = calloc(n, size)))
		return NQ_ENOMEM;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
	     p < m->data.mapping.pairs.top; p++) {
		int rv = put(c, f, yaml_document_get_node(c->doc, p->key),
		    yaml_document_get_node(c->doc, p->value));
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

static int load_schedules(file_ctx *c, nqi_policy_file *f, yaml_node_t *m)
{
	return load_section(c, f, m, "schedules", (void **)&f->schedules,
	    sizeof *f->schedules, put_schedule);
}

static int load_queues(file_ctx *c, nqi_policy_file *f, yaml_node_t *m)
{
	return load_section(c, f, m, "queues", (void **)&f->entries,
	    sizeof *f->entries, put_queue);
}

static int load_doc(file_ctx *c, nqi_policy_file *f)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	if (!root)
		return NQ_OK; /* an empty file: no policy */
	if (root->type != YAML_MAPPING_NODE)
		return fail(c, root, "", "%s",
		    "the file is a mapping with keys queues and schedules");
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
		const char *ks = scalar(kn);
		bool q = ks && strcmp(ks, "queues") == 0,
		     s = ks && strcmp(ks, "schedules") == 0;
		if (!q && !s)
			return fail(c, kn, ks ? ks : "", "%s",
			    "unknown key (the file has queues: and "
			    "schedules:)");
		if ((q && f->entries) || (s && f->schedules))
			return fail(c, kn, ks, "%s", "named twice");
		int rv = q ? load_queues(c, f, vn) : load_schedules(c, f, vn);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

/* Parses text into f; err says why not. */
static int parse(
    const char *text, size_t len, nqi_policy_file *f, nqi_policy_error *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	file_ctx c = {&doc, err};
	if (!yaml_parser_initialize(&parser))
		return NQ_ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	int rv = NQ_OK;
	if (!yaml_parser_load(&parser, &doc)) {
		err->line = (unsigned)parser.problem_mark.line + 1;
		snprintf(err->reason, sizeof err->reason, "not YAML: %s",
		    parser.problem ? parser.problem : "parse error");
		rv = NQ_EINVAL;
	} else {
		rv = load_doc(&c, f);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	return rv;
}

int nqi_policy_text_load(const char *name, const char *text, size_t len,
    nqi_policy_file **out, nqi_policy_error *err)
{
	memset(err, 0, sizeof *err);
	nqi_policy_file *f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(name))) {
		free(f);
		return NQ_ENOMEM;
	}
	int rv = parse(text, len, f, err);
	if (rv != 0) {
		nqi_policy_file_free(f);
		return rv;
	}
	*out = f;
	return NQ_OK;
}

/* The whole file at path, NUL terminated; a file over FILE_MAX is
 * refused. */
static int read_all(
    const char *path, char **text, size_t *len, nqi_policy_error *err)
{
	FILE *fp = fopen(path, "rb");
	memset(err, 0, sizeof *err);
	if (!fp) {
		snprintf(err->reason, sizeof err->reason, "cannot open: %s",
		    strerror(errno));
		return NQ_EINVAL;
	}
	char *buf = malloc(FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, FILE_MAX + 1, fp) : 0;
	int rv = !buf                         ? NQ_ENOMEM
	         : ferror(fp) || n > FILE_MAX ? NQ_EINVAL
	                                      : NQ_OK;
	fclose(fp);
	if (rv != NQ_OK) {
		snprintf(err->reason, sizeof err->reason, "%s",
		    !buf           ? "out of memory"
		    : n > FILE_MAX ? "larger than 1 MiB"
		                   : "cannot read");
		free(buf);
		return rv;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return NQ_OK;
}

int nqi_policy_file_load(
    const char *path, nqi_policy_file **out, nqi_policy_error *err)
{
	char *text;
	size_t len;
	int rv = read_all(path, &text, &len, err);
	if (rv != 0)
		return rv;
	rv = nqi_policy_text_load(path, text, len, out, err);
	free(text);
	return rv;
}

void nqi_policy_file_free(nqi_policy_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		nqi_policy_clear(&f->entries[i].p);
	free(f->entries);
	for (size_t i = 0; i < f->nschedules; i++)
		free(f->schedules[i].payload);
	free(f->schedules);
	free(f->path);
	free(f);
}

void nqi_policy_error_text(
    const char *path, const nqi_policy_error *e, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%u: %s%s%s", path, e->line, e->key,
	    e->key[0] ? ": " : "", e->reason);
}

const nqi_policy *nqi_policy_file_find(
    const nqi_policy_file *f, const char *queue)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (strcmp(f->entries[i].queue, queue) == 0)
			return &f->entries[i].p;
	return NULL;
}
