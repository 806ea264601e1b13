/*
 * The shard map (shards.h): parsing, the URLs each shard derives, and the
 * rendezvous hashing that gives every queue its shard.
 */
#include "shards.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/url.h"
#include "nqi/util.h"

/* A map file is a few lines; anything this large is not one. */
#define NQS_FILE_MAX ((size_t)1 << 20)

static const char *const end_names[NQS_NENDS] = {
    "api", "work", "results", "events"};

const char *nqs_end_name(nqs_end e)
{
	return e < NQS_NENDS ? end_names[e] : "?";
}

static int fail(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && len)
		vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return NQ_EINVAL;
}

uint64_t nqs_score(const char *name, const char *queue)
{
	/* FNV-1a over "name\0queue", then the splitmix64 finalizer, so that
	 * names that differ in one letter still score unrelated. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h *= 0x100000001b3ull;
	for (const char *p = queue; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

size_t nqs_owner(const nqs_map *m, const char *queue)
{
	size_t best = 0;
	uint64_t top = 0;
	for (size_t i = 0; i < m->npins; i++)
		if (strcmp(m->pins[i].queue, queue) == 0)
			return m->pins[i].shard;
	for (size_t i = 0; i < m->n; i++) {
		uint64_t s = nqs_score(m->shards[i].name, queue);
		/* A tie (never seen in practice) goes to the lower name, so
		 * that the order of the map does not matter. */
		if (i == 0 || s > top ||
		    (s == top &&
		        strcmp(m->shards[i].name, m->shards[best].name) < 0)) {
			top = s;
			best = i;
		}
	}
	return best;
}

void nqs_free(nqs_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->shards[i].name);
		for (int e = 0; e < NQS_NENDS; e++)
			free(m->shards[i].url[e]);
	}
	for (size_t i = 0; i < m->npins; i++)
		free(m->pins[i].queue);
	free(m->shards);
	free(m->pins);
	free(m);
}

/* Reads the map file path into *out (malloc'd, NUL-terminated). */
static int read_map_file(const char *path, char **out, char *why, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(why, len,
		    "shard map \"%.200s\": no '=' in it, and no file of that "
		    "name can be read",
		    path);
	char *buf = malloc(NQS_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, NQS_FILE_MAX + 1, f) : 0;
	bool err = ferror(f) != 0;
	fclose(f);
	if (!buf)
		return NQ_ENOMEM;
	if (err || n > NQS_FILE_MAX) {
		free(buf);
		return fail(why, len, "shard map file %.200s: %s", path,
		    err ? "cannot be read" : "larger than 1 MiB");
	}
	buf[n] = '\0';
	*out = buf;
	return NQ_OK;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* The index of shard name, added when new; -1 when the map is full or
 * memory ran out. */
static long shard_index(nqs_map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->shards[i].name, name) == 0)
			return (long)i;
	if (m->n >= NQS_MAX)
		return -1;
	nqs_shard *s = realloc(m->shards, (m->n + 1) * sizeof *s);
	if (!s)
		return -1;
	m->shards = s;
	memset(&s[m->n], 0, sizeof *s);
	if (!(s[m->n].name = strdup(name)))
		return -1;
	return (long)m->n++;
}

static int add_pin(nqs_map *m, const char *queue, char *shard, char *why,
    size_t len, char **pin_shards)
{
	if (!nqi_name_valid(queue))
		return fail(why, len,
		    "shard map: pin \"queue %.140s\": not a valid queue name",
		    queue);
	for (size_t i = 0; i < m->npins; i++)
		if (strcmp(m->pins[i].queue, queue) == 0)
			return fail(why, len,
			    "shard map: queue %.140s is pinned twice", queue);
	nqs_pin *p = realloc(m->pins, (m->npins + 1) * sizeof *p);
	if (!p)
		return NQ_ENOMEM;
	m->pins = p;
	if (!(p[m->npins].queue = strdup(queue)))
		return NQ_ENOMEM;
	p[m->npins].shard = 0;
	pin_shards[m->npins++] = shard; /* resolved once every shard is in */
	return NQ_OK;
}

/* NAME or NAME.END; *end is NQS_API for a bare name. */
static int split_key(char *key, nqs_end *end, char *why, size_t len)
{
	char *dot = strchr(key, '.');
	*end = NQS_API;
	if (dot) {
		*dot++ = '\0';
		int e = 0;
		while (e < NQS_NENDS && strcmp(dot, end_names[e]) != 0)
			e++;
		if (e == NQS_NENDS)
			return fail(why, len,
			    "shard map: \"%.60s.%.60s\": a shard's URLs are "
			    ".api, .work, .results and .events",
			    key, dot);
		*end = (nqs_end)e;
	}
	if (!nqi_name_valid(key) || strcmp(key, "queue") == 0)
		return fail(why, len,
		    "shard map: \"%.140s\" is not a valid shard name", key);
	return NQ_OK;
}

static int add_url(
    nqs_map *m, char *key, const char *url, char *why, size_t len)
{
	nqs_end end;
	char bad[200];
	int rv = split_key(key, &end, why, len);
	if (rv != NQ_OK)
		return rv;
	if (nqi_url_check(url, false, bad, sizeof bad) != 0)
		return fail(
		    why, len, "shard map: %s.%s: %s", key, end_names[end], bad);
	long i = shard_index(m, key);
	if (i < 0)
		return m->n >= NQS_MAX
		           ? fail(why, len, "shard map: more than %d shards",
		                 NQS_MAX)
		           : NQ_ENOMEM;
	if (m->shards[i].url[end])
		return fail(why, len, "shard map: %s.%s is given twice", key,
		    end_names[end]);
	return (m->shards[i].url[end] = strdup(url)) ? NQ_OK : NQ_ENOMEM;
}

static int parse_entry(
    nqs_map *m, char *entry, char **pin_shards, char *why, size_t len)
{
	char *eq = strchr(entry, '=');
	if (!eq)
		return fail(why, len,
		    "shard map: \"%.140s\" is neither NAME=URL nor "
		    "queue QUEUE=NAME",
		    entry);
	*eq = '\0';
	char *key = trim(entry), *value = trim(eq + 1);
	if (strncmp(key, "queue", 5) == 0 && isspace((unsigned char)key[5]))
		return add_pin(m, trim(key + 5), value, why, len, pin_shards);
	return add_url(m, key, value, why, len);
}

/* The URL of end derived from the api URL: the same host, the api port +
 * end (tcp:// and tls+tcp:// only). */
static char *derive_url(const char *api, nqs_end end)
{
	if (strncmp(api, "tcp://", 6) != 0 &&
	    strncmp(api, "tls+tcp://", 10) != 0)
		return NULL;
	const char *colon = strrchr(api, ':');
	char *stop;
	unsigned long port = strtoul(colon + 1, &stop, 10);
	if (*stop || port == 0 || port + (unsigned)end > 65535)
		return NULL;
	char buf[600];
	int n = snprintf(buf, sizeof buf, "%.*s:%lu", (int)(colon - api), api,
	    port + (unsigned)end);
	return n > 0 && (size_t)n < sizeof buf ? strdup(buf) : NULL;
}

/* Every shard has its api URL, and each other one given or derived. */
static int complete_shards(nqs_map *m, char *why, size_t len)
{
	for (size_t i = 0; i < m->n; i++) {
		nqs_shard *s = &m->shards[i];
		if (!s->url[NQS_API])
			return fail(why, len,
			    "shard map: shard %s has no api URL (%s=URL)",
			    s->name, s->name);
		for (int e = 1; e < NQS_NENDS; e++) {
			if (s->url[e])
				continue;
			if (!(s->url[e] = derive_url(s->url[NQS_API], e)))
				return fail(why, len,
				    "shard map: the %s URL of shard %s cannot "
				    "be derived from %.200s: give %s.%s=URL",
				    end_names[e], s->name, s->url[NQS_API],
				    s->name, end_names[e]);
		}
	}
	return NQ_OK;
}

static int resolve_pins(nqs_map *m, char **pin_shards, char *why, size_t len)
{
	for (size_t i = 0; i < m->npins; i++) {
		size_t k = 0;
		while (k < m->n && strcmp(m->shards[k].name, pin_shards[i]))
			k++;
		if (k == m->n)
			return fail(why, len,
			    "shard map: queue %s is pinned to %.140s, which "
			    "is not a shard of the map",
			    m->pins[i].queue, pin_shards[i]);
		m->pins[i].shard = k;
	}
	return NQ_OK;
}

/* Parses text (modified in place) into m. */
static int parse_text(nqs_map *m, char *text, char *why, size_t len)
{
	size_t cap = 1;
	for (const char *p = text; *p; p++)
		cap += *p == ',' || *p == '\n';
	char **pin_shards = calloc(cap, sizeof *pin_shards);
	int rv = pin_shards ? NQ_OK : NQ_ENOMEM;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line && rv == NQ_OK;
	     line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#'), *save2 = NULL;
		if (hash)
			*hash = '\0';
		for (char *e = strtok_r(line, ",", &save2); e && rv == NQ_OK;
		     e = strtok_r(NULL, ",", &save2))
			if (*(e = trim(e)))
				rv = parse_entry(m, e, pin_shards, why, len);
	}
	if (rv == NQ_OK && m->n == 0)
		rv = fail(why, len, "shard map: it names no shard (NAME=URL)");
	if (rv == NQ_OK)
		rv = complete_shards(m, why, len);
	if (rv == NQ_OK)
		rv = resolve_pins(m, pin_shards, why, len);
	free(pin_shards);
	return rv;
}

int nqs_parse(const char *text, nqs_map **out, char *why, size_t len)
{
	char *buf = NULL;
	int rv;
	if (!text || !out)
		return fail(why, len, "shard map: none given");
	if (strchr(text, '='))
		rv = (buf = strdup(text)) ? NQ_OK : NQ_ENOMEM;
	else
		rv = read_map_file(text, &buf, why, len);
	if (rv != NQ_OK)
		return rv;
	nqs_map *m = calloc(1, sizeof *m);
	rv = m ? parse_text(m, buf, why, len) : NQ_ENOMEM;
	free(buf);
	if (rv != NQ_OK) {
		nqs_free(m);
		return rv;
	}
	*out = m;
	return NQ_OK;
}
