#include "nqi/auth.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/util.h"

#define TOKEN_MAX 512
#define TOKENS_MAX 4096

typedef struct token_list {
	char **v;
	size_t n;
} token_list;

struct nqi_auth {
	token_list roles[3]; /* producer, worker, admin */
};

static const char *const role_names[3] = {"producer", "worker", "admin"};

static int list_add(token_list *l, const char *tok)
{
	if (l->n >= TOKENS_MAX || strlen(tok) > TOKEN_MAX)
		return NQ_EINVAL;
	char **v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v)
		return NQ_ENOMEM;
	l->v = v;
	if (!(v[l->n] = strdup(tok)))
		return NQ_ENOMEM;
	l->n++;
	return NQ_OK;
}

static void list_free(token_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		/* Tokens are secrets: wipe before freeing. */
		volatile char *p = l->v[i];
		while (*p)
			*p++ = 0;
		free(l->v[i]);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Splits text into tokens on newlines (and commas for env sources). */
static int add_tokens(token_list *l, char *text, const char *seps)
{
	char *save = NULL;
	for (char *t = strtok_r(text, seps, &save); t;
	     t = strtok_r(NULL, seps, &save)) {
		t = nqi_trim(t);
		if (!*t || *t == '#')
			continue;
		int rv = list_add(l, t);
		if (rv != 0)
			return rv;
	}
	return NQ_OK;
}

static int read_all(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NQ_EINVAL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
		if (n + 1 == cap) {
			char *nb =
			    cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!buf)
		return NQ_ENOMEM;
	buf[n] = '\0';
	*out = buf;
	return NQ_OK;
}

/* Reads a source: a file or "env:NAME". */
static int source_text(const char *src, char **text, const char **seps)
{
	if (strncmp(src, "env:", 4) == 0) {
		const char *v = getenv(src + 4);
		*seps = ",\n";
		*text = v ? strdup(v) : NULL;
		return v ? (*text ? NQ_OK : NQ_ENOMEM) : NQ_ENOTFOUND;
	}
	*seps = "\n";
	return read_all(src, text);
}

static int load_role(
    token_list *l, const char *src, const char *role, char *err, size_t errlen)
{
	char *text;
	const char *seps;
	if (!src || !*src)
		return NQ_OK;
	int rv = source_text(src, &text, &seps);
	if (rv != 0) {
		snprintf(err, errlen, "%s tokens: cannot read %s", role, src);
		return NQ_EINVAL;
	}
	rv = add_tokens(l, text, seps);
	memset(text, 0, strlen(text));
	free(text);
	if (rv == 0 && l->n == 0)
		rv = NQ_EINVAL;
	if (rv != 0)
		snprintf(err, errlen, "%s tokens in %s: %s", role, src,
		    l->n ? "a token is longer than 512 bytes, or too many"
		         : "no token found");
	return rv;
}

int nqi_auth_load(nqi_auth **out, const char *producer, const char *worker,
    const char *admin, char *err, size_t errlen)
{
	const char *src[3] = {producer, worker, admin};
	nqi_auth *a = calloc(1, sizeof *a);
	if (!a)
		return NQ_ENOMEM;
	for (int r = 0; r < 3; r++) {
		int rv =
		    load_role(&a->roles[r], src[r], role_names[r], err, errlen);
		if (rv != 0) {
			nqi_auth_free(a);
			return rv;
		}
	}
	*out = a;
	return NQ_OK;
}

void nqi_auth_free(nqi_auth *a)
{
	if (!a)
		return;
	for (int r = 0; r < 3; r++)
		list_free(&a->roles[r]);
	free(a);
}

bool nqi_auth_open(const nqi_auth *a)
{
	return !a || (!a->roles[0].n && !a->roles[1].n && !a->roles[2].n);
}

/* Compares in time that depends only on the longer length, so a caller
 * cannot find a token byte by byte from response times. */
static bool ct_equal(const char *a, const char *b)
{
	size_t la = strnlen(a, TOKEN_MAX + 1), lb = strlen(b);
	size_t n = la > lb ? la : lb;
	unsigned diff = la != lb;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < la ? (unsigned char)a[i] : 0;
		unsigned char y = i < lb ? (unsigned char)b[i] : 0;
		diff |= (unsigned)(x ^ y);
	}
	return diff == 0;
}

/* The roles that hold the token, as a mask; every list is walked whole. */
static unsigned roles_of(const nqi_auth *a, const char *token)
{
	unsigned mask = 0;
	for (int r = 0; r < 3; r++)
		for (size_t i = 0; i < a->roles[r].n; i++)
			if (ct_equal(token, a->roles[r].v[i]))
				mask |= 1u << r;
	return mask;
}

int nqi_auth_check(const nqi_auth *a, const char *token, unsigned roles)
{
	if (nqi_auth_open(a))
		return NQ_OK;
	if (!token || !*token)
		return NQ_EAUTH;
	unsigned held = roles_of(a, token);
	if (!held)
		return NQ_EAUTH;
	if (held & (roles | NQI_ROLE_ADMIN))
		return NQ_OK;
	return NQ_EPERM;
}

void nqi_auth_roles_text(unsigned roles, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (int r = 0; r < 3; r++)
		if (roles & (1u << r))
			o += (size_t)snprintf(out + o, o < len ? len - o : 0,
			    "%s%s", o ? " or " : "", role_names[r]);
	if (o < len && !(roles & NQI_ROLE_ADMIN))
		snprintf(out + o, len - o, "%sadmin", o ? " or " : "");
}

int nqi_token_read(const char *src, char **out, char *err, size_t errlen)
{
	token_list l = {0};
	int rv = load_role(&l, src, "client", err, errlen);
	if (rv == 0 && !(*out = strdup(l.v[0])))
		rv = NQ_ENOMEM;
	list_free(&l);
	return rv;
}
