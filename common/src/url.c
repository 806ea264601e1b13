#include "nqi/url.h"

#include <nng/nng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"

#define URL_FORMS                                                              \
	"tcp://HOST:PORT, tls+tcp://HOST:PORT, ws://HOST:PORT/PATH, "          \
	"wss://HOST:PORT/PATH or ipc:///PATH"

/* The transports nq is built with (NNG's), and whether their addresses
 * are HOST:PORT (else a path or a name). */
static const struct url_scheme {
	const char *name;
	bool net;
} url_schemes[] = {
    {"tcp", true},
    {"tcp4", true},
    {"tcp6", true},
    {"tls+tcp", true},
    {"tls+tcp4", true},
    {"tls+tcp6", true},
    {"ws", true},
    {"ws4", true},
    {"ws6", true},
    {"wss", true},
    {"wss4", true},
    {"wss6", true},
    {"ipc", false},
    {"abstract", false},
    {"inproc", false},
};

static const struct url_scheme *url_scheme(const char *url, size_t n)
{
	for (size_t i = 0; i < sizeof url_schemes / sizeof *url_schemes; i++)
		if (strlen(url_schemes[i].name) == n &&
		    strncmp(url, url_schemes[i].name, n) == 0)
			return &url_schemes[i];
	return NULL;
}

/* The reason a HOST:PORT authority (n bytes at a) is wrong; NULL when
 * it is fine. The port must be given: NNG's default for ws (80) is no
 * port an nq service listens on. */
static const char *url_authority(const char *a, size_t n, bool listen)
{
	const char *end = a + n;
	const char *colon = NULL;
	if (n && *a == '[') {
		const char *close = memchr(a, ']', n);
		colon = close && close + 1 < end && close[1] == ':' ? close + 1
		                                                    : NULL;
	} else {
		for (const char *p = a; p < end; p++)
			colon = *p == ':' ? p : colon;
	}
	if (!colon)
		return "has no port (HOST:PORT)";
	if (colon == a && !listen)
		return "has no host (HOST:PORT)";
	size_t digits = (size_t)(end - colon - 1);
	if (digits == 0 || digits > 5 ||
	    strspn(colon + 1, "0123456789") < digits)
		return "has no port number after the colon";
	long port = strtol(colon + 1, NULL, 10);
	if (port > 65535 || (port == 0 && !listen))
		return listen ? "has a port outside 0 to 65535"
		              : "has a port outside 1 to 65535";
	return NULL;
}

static int url_fail(char *why, size_t len, const char *url, const char *what)
{
	snprintf(why, len, "'%s' %s", url, what);
	return NQ_EINVAL;
}

int nqi_url_check(const char *url, bool listen, char *why, size_t len)
{
	const char *sep = url ? strstr(url, "://") : NULL;
	if (!sep)
		return url_fail(why, len, url ? url : "(null)",
		    "is not an address; nq takes " URL_FORMS);
	const struct url_scheme *s = url_scheme(url, (size_t)(sep - url));
	if (!s) {
		snprintf(why, len,
		    "'%s': nq does not speak %.*s://; it takes %s", url,
		    (int)(sep - url), url, URL_FORMS);
		return NQ_EINVAL;
	}
	const char *rest = sep + 3;
	const char *what = NULL;
	if (s->net)
		what = url_authority(rest, strcspn(rest, "/"), listen);
	else if (!*rest)
		what = "names no path";
	if (what)
		return url_fail(why, len, url, what);
	nng_url *u;
	if (nng_url_parse(&u, url) != 0)
		return url_fail(why, len, url, "is not a valid URL");
	nng_url_free(u);
	return 0;
}

const char *nqi_url_check_flags(
    const nqi_url_flag *f, size_t n, char *why, size_t len)
{
	char one[384];
	for (size_t i = 0; i < n; i++) {
		if (!f[i].url || !*f[i].url ||
		    nqi_url_check(f[i].url, f[i].listen, one, sizeof one) == 0)
			continue;
		snprintf(why, len, "%s %s", f[i].flag, one);
		return why;
	}
	return NULL;
}
