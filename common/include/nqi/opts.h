/*
 * Command-line and environment options. Each binary describes its flags in a
 * table pointing into one config struct that already holds the defaults;
 * nqi_opts_parse then applies NQ_<FLAG> environment variables, then flags.
 */
#ifndef NQI_OPTS_H
#define NQI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nqi_opt_kind {
	NQI_OPT_STR,      /* const char * (points into argv or environ) */
	NQI_OPT_U64,      /* uint64_t */
	NQI_OPT_INT,      /* int */
	NQI_OPT_DURATION, /* uint64_t milliseconds: "30s", "250ms" */
	NQI_OPT_SIZE,     /* uint64_t bytes: "256k" */
	NQI_OPT_BOOL,     /* bool; takes no value */
	NQI_OPT_LIST,     /* nqi_strlist; repeatable, env splits on ',' */
} nqi_opt_kind;

typedef struct nqi_strlist {
	const char **v;
	size_t n;
	char *
	    *own; /* copies made for v (from the environment), freed with it */
	size_t nown;
} nqi_strlist;

typedef struct nqi_opt {
	const char *name; /* "data-dir" for --data-dir and NQ_DATA_DIR */
	nqi_opt_kind kind;
	void *ptr;
	const char *help;
	bool secret; /* redacted when the config is logged */
} nqi_opt;

/* One row of a flag table: NQI_OPT("lease", DURATION, &c->lease_ms, help). */
#define NQI_OPT(name, kind, ptr, help)                                         \
	{                                                                      \
		(name), NQI_OPT_##kind, (ptr), (help), false                   \
	}

/*
 * Applies the environment (when use_env) and then argv[start..] to the
 * options. A list flag given on the command line replaces what the
 * environment set for it. Stops at the first argument that is not a flag, or
 * after "--", and writes its index to *next. On a bad flag or value returns
 * NQ_EINVAL with a message naming it in err.
 */
int nqi_opts_parse(const nqi_opt *opts, size_t n, int argc, char **argv,
    int start, bool use_env, int *next, char *err, size_t errlen);
/*
 * Applies a config file of "name = value" lines (names as the flags, '#'
 * starts a comment) to the options. The values are copied into keep, which
 * the caller frees with nqi_strlist_free once the options are no longer
 * used. Call before nqi_opts_parse so the environment and flags override
 * the file. err names the file, line and problem.
 */
int nqi_opts_load_file(const nqi_opt *opts, size_t n, const char *path,
    nqi_strlist *keep, char *err, size_t errlen);
/* The value of --NAME in argv ("--config F" or "--config=F"), else the
 * NQ_NAME environment variable, else NULL. */
const char *nqi_opts_peek(int argc, char **argv, const char *name);
/* How many arguments the flag at arg ("--name" or "--name=value") takes
 * up: 2 when its value is the next argument, else 1 (a bool, "=value", or
 * a name that is unknown). For commands that take flags and arguments in
 * any order. */
int nqi_opts_span(const nqi_opt *opts, size_t n, const char *arg);
/* Prints "  --name VALUE   help" lines. */
void nqi_opts_usage(const nqi_opt *opts, size_t n, void *file);
/* Writes the value of one option as text, a secret as "<redacted>". */
void nqi_opts_value(const nqi_opt *o, char *out, size_t len);
/* Writes "name=value ..." of every option, secrets as "<redacted>". */
void nqi_opts_describe(const nqi_opt *opts, size_t n, char *out, size_t len);
void nqi_strlist_free(nqi_strlist *l);

#endif
