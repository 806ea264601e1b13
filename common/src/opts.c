#include "nqi/opts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/util.h"

static int strlist_add(nqi_strlist *l, const char *s)
{
	const char **v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v)
		return NQ_ENOMEM;
	v[l->n++] = s;
	l->v = v;
	return NQ_OK;
}

/* Keeps s (malloc'd) to be freed with the list. */
static int strlist_own(nqi_strlist *l, char *s)
{
	char **own = realloc(l->own, (l->nown + 1) * sizeof *own);
	if (!own) {
		free(s);
		return NQ_ENOMEM;
	}
	own[l->nown++] = s;
	l->own = own;
	return NQ_OK;
}

void nqi_strlist_free(nqi_strlist *l)
{
	for (size_t i = 0; i < l->nown; i++)
		free(l->own[i]);
	free(l->own);
	free(l->v);
	l->v = NULL;
	l->own = NULL;
	l->n = l->nown = 0;
}

static int set_value(
    const nqi_opt *o, const char *val, char *err, size_t errlen)
{
	uint64_t v = 0;
	int rv = NQ_OK;
	switch (o->kind) {
	case NQI_OPT_STR:
		*(const char **)o->ptr = val;
		return NQ_OK;
	case NQI_OPT_LIST:
		return strlist_add(o->ptr, val);
	case NQI_OPT_BOOL:
		*(bool *)o->ptr = strcmp(val, "0") != 0 &&
		                  strcmp(val, "false") != 0 &&
		                  strcmp(val, "no") != 0;
		return NQ_OK;
	case NQI_OPT_U64:
	case NQI_OPT_INT:
		rv = nqi_parse_u64(val, &v);
		if (rv == 0 && o->kind == NQI_OPT_INT && v > 0x7fffffff)
			rv = NQ_EINVAL;
		break;
	case NQI_OPT_DURATION:
		rv = nqi_parse_duration_ms(val, &v);
		break;
	case NQI_OPT_SIZE:
		rv = nqi_parse_size(val, &v);
		break;
	}
	if (rv != NQ_OK) {
		snprintf(err, errlen, "--%s: cannot read '%s' as %s", o->name,
		    val,
		    o->kind == NQI_OPT_DURATION
		        ? "a duration (250ms, 30s, 5m, 2h)"
		    : o->kind == NQI_OPT_SIZE ? "a size (262144, 256k, 1m)"
		                              : "a whole number");
		return rv;
	}
	if (o->kind == NQI_OPT_INT)
		*(int *)o->ptr = (int)v;
	else
		*(uint64_t *)o->ptr = v;
	return NQ_OK;
}

/* NQ_DATA_DIR for "data-dir". */
static void env_name(const char *name, char *out, size_t len)
{
	size_t o = snprintf(out, len, "NQ_");
	for (; *name && o + 1 < len; name++)
		out[o++] =
		    *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	out[o] = '\0';
}

static int apply_env(const nqi_opt *o, char *err, size_t errlen)
{
	char name[96];
	env_name(o->name, name, sizeof name);
	const char *val = getenv(name);
	if (!val || !*val)
		return NQ_OK;
	if (o->kind != NQI_OPT_LIST)
		return set_value(o, val, err, errlen);
	/* Lists from the environment are comma separated; the pieces must
	 * outlive this call, so they are duplicated once and kept. */
	char *copy = strdup(val);
	if (!copy || strlist_own(o->ptr, copy) != 0)
		return NQ_ENOMEM;
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int rv = strlist_add(o->ptr, t);
		if (rv)
			return rv;
	}
	return NQ_OK;
}

static const nqi_opt *find_opt(
    const nqi_opt *opts, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

static int parse_flags(const nqi_opt *opts, size_t n, int argc, char **argv,
    int start, bool *seen, int *next, char *err, size_t errlen);

int nqi_opts_parse(const nqi_opt *opts, size_t n, int argc, char **argv,
    int start, bool use_env, int *next, char *err, size_t errlen)
{
	int rv;
	for (size_t i = 0; use_env && i < n; i++)
		if ((rv = apply_env(&opts[i], err, errlen)) != 0)
			return rv;
	bool *seen = calloc(n ? n : 1, sizeof *seen);
	if (!seen)
		return NQ_ENOMEM;
	rv = parse_flags(opts, n, argc, argv, start, seen, next, err, errlen);
	free(seen);
	return rv;
}

static int parse_flags(const nqi_opt *opts, size_t n, int argc, char **argv,
    int start, bool *seen, int *next, char *err, size_t errlen)
{
	int rv, i = start;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
			break;
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const nqi_opt *o = find_opt(opts, n, name, len);
		if (!o) {
			snprintf(
			    err, errlen, "unknown flag --%.*s", (int)len, name);
			return NQ_EINVAL;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val && o->kind == NQI_OPT_BOOL)
			val = "1";
		if (!val && i + 1 >= argc) {
			snprintf(err, errlen, "--%s needs a value", o->name);
			return NQ_EINVAL;
		}
		if (!val)
			val = argv[++i];
		if (o->kind == NQI_OPT_LIST && !seen[o - opts])
			((nqi_strlist *)o->ptr)->n = 0; /* flags replace env */
		seen[o - opts] = true;
		if ((rv = set_value(o, val, err, errlen)) != 0)
			return rv;
	}
	*next = i;
	return NQ_OK;
}

/* Applies one "name = value" line; comments and blank lines are skipped. */
static int load_line(const nqi_opt *opts, size_t n, char *line,
    nqi_strlist *keep, char *err, size_t errlen)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	char *s = nqi_trim(line);
	if (!*s)
		return NQ_OK;
	char *eq = strchr(s, '=');
	if (!eq) {
		snprintf(err, errlen, "expected name = value");
		return NQ_EINVAL;
	}
	*eq = '\0';
	char *name = nqi_trim(s), *val = nqi_trim(eq + 1);
	const nqi_opt *o = find_opt(opts, n, name, strlen(name));
	if (!o) {
		snprintf(err, errlen, "unknown setting '%s'", name);
		return NQ_EINVAL;
	}
	char *copy = strdup(val);
	if (!copy || strlist_own(keep, copy) != 0)
		return NQ_ENOMEM;
	return set_value(o, copy, err, errlen);
}

int nqi_opts_load_file(const nqi_opt *opts, size_t n, const char *path,
    nqi_strlist *keep, char *err, size_t errlen)
{
	char line[1024], why[200];
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read config file %s", path);
		return NQ_EINVAL;
	}
	int rv = NQ_OK;
	for (int no = 1; rv == 0 && fgets(line, sizeof line, f); no++) {
		rv = load_line(opts, n, line, keep, why, sizeof why);
		if (rv != 0)
			snprintf(err, errlen, "%s:%d: %s", path, no, why);
	}
	fclose(f);
	return rv;
}

const char *nqi_opts_peek(int argc, char **argv, const char *name)
{
	size_t len = strlen(name);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0)
			continue;
		if (a[2 + len] == '=')
			return a + 3 + len;
		if (a[2 + len] == '\0' && i + 1 < argc)
			return argv[i + 1];
	}
	char env[96];
	env_name(name, env, sizeof env);
	const char *v = getenv(env);
	return v && *v ? v : NULL;
}

int nqi_opts_span(const nqi_opt *opts, size_t n, const char *arg)
{
	const char *name = arg + 2;
	size_t len = strcspn(name, "=");
	if (name[len] == '=')
		return 1;
	const nqi_opt *o = find_opt(opts, n, name, len);
	return o && o->kind != NQI_OPT_BOOL ? 2 : 1;
}

void nqi_opts_usage(const nqi_opt *opts, size_t n, void *file)
{
	for (size_t i = 0; i < n; i++) {
		const char *arg = opts[i].kind == NQI_OPT_BOOL ? "" : " VALUE";
		char left[64];
		snprintf(left, sizeof left, "--%s%s", opts[i].name, arg);
		fprintf(file, "  %-28s %s\n", left, opts[i].help);
	}
}

void nqi_opts_value(const nqi_opt *p, char *val, size_t len)
{
	switch (p->kind) {
	case NQI_OPT_STR: {
		const char *s = *(const char **)p->ptr;
		snprintf(val, len, "%s", s ? s : "");
		break;
	}
	case NQI_OPT_INT:
		snprintf(val, len, "%d", *(int *)p->ptr);
		break;
	case NQI_OPT_BOOL:
		snprintf(val, len, "%s", *(bool *)p->ptr ? "true" : "false");
		break;
	case NQI_OPT_LIST:
		snprintf(val, len, "[%zu]", ((nqi_strlist *)p->ptr)->n);
		break;
	default:
		snprintf(
		    val, len, "%llu", (unsigned long long)*(uint64_t *)p->ptr);
	}
	if (p->secret && val[0])
		snprintf(val, len, "<redacted>");
}

void nqi_opts_describe(const nqi_opt *opts, size_t n, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++) {
		char val[256];
		nqi_opts_value(&opts[i], val, sizeof val);
		o += (size_t)snprintf(out + o, len - o, "%s%s=%s", o ? " " : "",
		    opts[i].name, val);
	}
}
