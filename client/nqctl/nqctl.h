/*
 * nqctl internals: the command table, argument handling shared by the
 * commands, and how jobs and stats are printed.
 */
#ifndef NQCTL_H
#define NQCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/cli.h"
#include "nqi/opts.h"

/* The global flags, each also read from NQ_<FLAG>. */
typedef struct nqctl_conf {
	nqi_cli_conn conn;      /* how to reach the broker */
	const char *dlq_url;    /* nq-dlq, for the dlq commands */
	const char *events_url; /* broker PUB socket, for events and top */
	bool json;
	bool help;
} nqctl_conf;

typedef struct nqctl nqctl;

typedef struct nqctl_cmd {
	const char *name;
	const char *synopsis; /* arguments and flags after the name */
	const char *summary;
	size_t min_args, max_args;
	/* Runs the command on argv[start..] and returns the exit status. */
	int (*run)(nqctl *x, int argc, char **argv, int start);
} nqctl_cmd;

struct nqctl {
	nqctl_conf conf;
	const nqctl_cmd *cmd;
	const char **args; /* positional arguments of the command: room for
	                    * every word of argv */
	size_t nargs;
	char *token;
	nq_client *client; /* the one transport of every command */
	nq_sub *sub;       /* events and top: open until nqctl exits */
};

/* The --json and --help flags, accepted after the command too. */
#define NQCTL_COMMON_OPTS(x)                                                   \
	{"json", NQI_OPT_BOOL, &(x)->conf.json, "print JSON", false},          \
	{                                                                      \
		"help", NQI_OPT_BOOL, &(x)->conf.help, "show this help", false \
	}

/* ---- main.c ---- */

/*
 * Reads the command's flags and positional arguments from argv[start..]
 * (in any order) into opts and x->args. Returns NQI_CONTINUE when the
 * command should run; otherwise the exit status to end with (0 after
 * printing --help, NQI_EXIT_USAGE after reporting a bad command line).
 */
int nqctl_args(
    nqctl *x, const nqi_opt *opts, size_t n, int argc, char **argv, int start);
/*
 * Every error nqctl reports goes through here: "nqctl: <message>" and the
 * hint (NULL: none; lines ending in newlines) on stderr, or with --json
 * one JSON object {"code": "NOT_FOUND", "message": "<message>"}, the code
 * being the wire name of err. Returns rc, the exit status to end with.
 */
int nqctl_report(const nqctl *x, int err, int rc, const char *hint,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reports a bad command line with the command's short usage; returns
 * NQI_EXIT_USAGE. */
int nqctl_usage_error(const nqctl *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reads --token-file (a file or env:NAME) and opens the client, once.
 * Returns NQI_CONTINUE, or the exit status after reporting why not. */
int nqctl_connect(nqctl *x);
/* True for the errors that mean no answer from the service: none in time
 * (NQ_ETIMEDOUT) or no connection (NQ_ECONNECT). A service that answered
 * UNAVAILABLE (NQ_EUNAVAIL) was reached. */
bool nqctl_unreachable(int err);
/*
 * Reports a failed request, "nqctl: <what>: <error>: <server message>", and
 * returns its exit status: NQI_EXIT_UNREACHABLE when the service could
 * not be reached (nqctl_unreachable), NQI_EXIT_FAILED otherwise.
 */
int nqctl_fail(const nqctl *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- jobs.c and queues.c: the commands ---- */

int nqctl_enqueue(nqctl *x, int argc, char **argv, int start);
int nqctl_get(nqctl *x, int argc, char **argv, int start);
int nqctl_wait(nqctl *x, int argc, char **argv, int start);
int nqctl_cancel(nqctl *x, int argc, char **argv, int start);
int nqctl_stats(nqctl *x, int argc, char **argv, int start);
int nqctl_pause(nqctl *x, int argc, char **argv, int start);
int nqctl_shard(nqctl *x, int argc, char **argv, int start);
int nqctl_resume(nqctl *x, int argc, char **argv, int start);
/* list.c */
int nqctl_list(nqctl *x, int argc, char **argv, int start);
/* policy.c: queue show | set | reset */
int nqctl_queue(nqctl *x, int argc, char **argv, int start);
int nqctl_cron(nqctl *x, int argc, char **argv, int start);
int nqctl_batch(nqctl *x, int argc, char **argv, int start);
/* moved.c: prints where the command went; returns NQI_EXIT_USAGE. */
int nqctl_bench_moved(nqctl *x, int argc, char **argv, int start);

/* ---- render.c ---- */

/* The job as a JSON object (new reference); NULL when memory ran out. */
json_t *nqctl_job_json(const nq_job *job);
/* Prints the job on stdout: one JSON object with --json, else "key: value"
 * lines. Returns 0, or NQI_EXIT_FAILED when memory ran out. */
int nqctl_print_job(const nqctl *x, const nq_job *job);
/* Prints v as one line of JSON on stdout and drops the reference. */
int nqctl_print_json(json_t *v);
/* RFC 3339 UTC with milliseconds: "2026-11-27T22:00:00.123Z". */
void nqctl_format_time(uint64_t us, char *buf, size_t len);
/* The same as a JSON string; null for 0 (not set). */
json_t *nqctl_time_json(uint64_t us);
/* Reads RFC 3339 ("2026-11-27T22:00:00Z", optional fraction, Z or an offset
 * like +02:00) or whole unix seconds. NQ_EINVAL when it is neither. */
int nqctl_parse_time(const char *s, uint64_t *us);

/* Writes "key: value": printable text as it is (later lines indented),
 * anything else as JSON, which escapes control characters. */
void nqctl_print_field(const char *key, const json_t *v);
/* Writes the "errors" array of a job ({attempt, at, message} each) as an
 * "errors:" line and one field per error. An empty array writes nothing,
 * or "errors: none" when say_none. */
void nqctl_print_errors(const json_t *errors, bool say_none);

#endif
