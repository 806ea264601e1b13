/*
 * The parsers of flags, environment-free option values, config files and
 * the small value syntaxes: durations, sizes, whole numbers, job ids,
 * names, job states and nqctl's --at time. The input is split at NUL bytes
 * into strings; each string goes through every value parser, all of them
 * form an argv for nqi_opts_parse, and the whole input is read as a
 * --config file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "nqctl.h"
#include "nqi/opts.h"
#include "nqi/util.h"

#define MAX_ARGS 32

/* One option of every kind, as a daemon's table would have them. */
typedef struct conf {
	const char *url, *secret;
	uint64_t count, timeout_ms, max_bytes;
	int contexts;
	bool verbose;
	nqi_strlist queues;
} conf;

static size_t conf_opts(conf *c, nqi_opt *o)
{
	const nqi_opt all[] = {
	    {"url", NQI_OPT_STR, &c->url, "a URL", false},
	    {"token", NQI_OPT_STR, &c->secret, "a secret", true},
	    {"count", NQI_OPT_U64, &c->count, "a number", false},
	    {"timeout", NQI_OPT_DURATION, &c->timeout_ms, "a duration", false},
	    {"max-payload", NQI_OPT_SIZE, &c->max_bytes, "a size", false},
	    {"contexts", NQI_OPT_INT, &c->contexts, "an int", false},
	    {"verbose", NQI_OPT_BOOL, &c->verbose, "a switch", false},
	    {"queues", NQI_OPT_LIST, &c->queues, "a list", false},
	};
	memcpy(o, all, sizeof all);
	return sizeof all / sizeof *all;
}

static bool name_chars_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= NQI_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789._-") == n;
}

static void value_parsers(const char *s)
{
	uint64_t n, d, z, id, us;
	if (nqi_parse_u64(s, &n) == 0) {
		/* A bare number is milliseconds and bytes. */
		FUZZ_CHECK(nqi_parse_duration_ms(s, &d) == 0 && d == n);
		FUZZ_CHECK(nqi_parse_size(s, &z) == 0 && z == n);
	} else {
		nqi_parse_duration_ms(s, &d);
		nqi_parse_size(s, &z);
	}
	if (nqi_id_parse(s, &id) == 0) {
		char back[NQ_ID_MAX];
		nqi_id_format(id, back);
		FUZZ_CHECK(strcasecmp(back, s) == 0);
	}
	FUZZ_CHECK(nqi_name_valid(s) == name_chars_ok(s));
	nq_state st = nq_state_parse(s);
	if (st != NQ_STATE_UNSPECIFIED)
		FUZZ_CHECK(strcmp(nq_state_name(st), s) == 0);
	nqctl_parse_time(s, &us);
}

static void flags(char **argv, int argc)
{
	conf c = {.url = "tcp://127.0.0.1:7400"};
	nqi_opt o[16];
	char err[256] = "", desc[1024];
	int next = -1;
	size_t n = conf_opts(&c, o);
	int rv =
	    nqi_opts_parse(o, n, argc, argv, 1, false, &next, err, sizeof err);
	if (rv == 0)
		FUZZ_CHECK(next >= 1 && next <= argc);
	else
		FUZZ_CHECK(rv == NQ_ENOMEM || (rv == NQ_EINVAL && err[0]));
	nqi_opts_describe(o, n, desc, sizeof desc);
	/* A secret never shows. */
	if (c.secret && strlen(c.secret) >= 12 &&
	    strspn(c.secret, "0123456789") < strlen(c.secret) &&
	    !strstr(c.url, c.secret))
		FUZZ_CHECK(strstr(desc, c.secret) == NULL);
	for (size_t i = 0; i < c.queues.n; i++)
		fuzz_touch_str(c.queues.v[i]);
	nqi_strlist_free(&c.queues);
}

/* The whole input as a config file, in one file reused for every input. */
static void config_file(const uint8_t *data, size_t size)
{
	static char *dir;
	static char path[600];
	if (!dir) {
		dir = fuzz_tempdir("opts");
		snprintf(path, sizeof path, "%s/nq.conf", dir);
	}
	FILE *f = fopen(path, "wb");
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);
	conf c = {.url = ""};
	nqi_opt o[16];
	nqi_strlist keep = {0};
	char err[512] = "";
	size_t n = conf_opts(&c, o);
	int rv = nqi_opts_load_file(o, n, path, &keep, err, sizeof err);
	FUZZ_CHECK(rv == 0 || err[0] != '\0');
	fuzz_touch_str(c.url);
	fuzz_touch_str(c.secret);
	nqi_strlist_free(&c.queues);
	nqi_strlist_free(&keep);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = "nq-fuzz";
	for (char *p = copy; p <= copy + size && argc < MAX_ARGS;
	     p += strlen(p) + 1) {
		value_parsers(p);
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	flags(argv, argc);
	free(copy);
	config_file(data, size);
	return 0;
}
