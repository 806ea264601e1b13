/*
 * nqctl: the command line for nq. Global flags (each also read from
 * NQ_<FLAG>), then a command with its own arguments and flags:
 *
 *   nqctl [--api URL] [--json] [--timeout D] ... COMMAND [ARGS] [FLAGS]
 *
 * Exit status: NQI_EXIT_HELP (nqi/cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "events.h"
#include "nqctl.h"
#include "nqi/codec.h"
#include "nqi/json.h"
#include "nqi/tls.h"
#include "nqi/url.h"
#include "nqi/util.h"

/* The flags of nqi_cli_conn, --dlq, --events, --json and --help. */
#define NQCTL_NGLOBAL (NQI_CLI_CONN_NOPTS + 4)

static const nqctl_cmd commands[] = {
    {"enqueue", "QUEUE TYPE [flags]", "Adds a job to QUEUE and prints its id.",
        2, 2, nqctl_enqueue},
    {"get", "ID", "Shows a job.", 1, 1, nqctl_get},
    {"wait", "ID [--timeout D]",
        "Waits until a job has ended and shows it; exits 1 unless it "
        "succeeded.",
        1, 1, nqctl_wait},
    {"cancel", "ID | --queue Q --state ready|scheduled|leased [--type T]",
        "Cancels a job (a running one is stopped at its worker's next "
        "heartbeat) and shows it; or every job of a queue in a state, "
        "and prints how many.",
        0, 1, nqctl_cancel},
    {"list", "[--queue Q] [--state S] [--type T] [--limit N] [--after ID]",
        "Lists stored jobs, oldest first, a page at a time.", 0, 0, nqctl_list},
    {"stats", "[QUEUE]",
        "Shows the job counts of every queue, or of one, and of the "
        "broker.",
        0, 1, nqctl_stats},
    {"pause", "QUEUE",
        "Stops handing out the queue's jobs; enqueue still works.", 1, 1,
        nqctl_pause},
    {"resume", "QUEUE", "Hands out a paused queue's jobs again.", 1, 1,
        nqctl_resume},
    {"shard", "QUEUE...",
        "Prints the shard of --brokers that owns each queue (no request "
        "is sent).",
        1, 256, nqctl_shard},
    {"queue", "show [QUEUE] | set QUEUE KEY=VALUE... | reset QUEUE [KEY...]",
        "Shows a queue's policy (each value and its source), changes it at "
        "run time, or resets it to the queues file's value.",
        1, 66, nqctl_queue},
    {"cron", "list | trigger NAME",
        "Shows the schedules of the queues file (last and next tick, last "
        "job), or enqueues one schedule's job now.",
        1, 2, nqctl_cron},
    {"batch",
        "create [--on-success Q:T] [--on-complete Q:T] [--seal] | add ID "
        "QUEUE TYPE [--count N] | seal ID | get ID | list | cancel ID",
        "Groups jobs under a batch whose callbacks are enqueued once when "
        "it completes; shows its counts per state and its callbacks.",
        1, 4, nqctl_batch},
    {"dlq", NQCTL_DLQ_SYNOPSIS, NQCTL_DLQ_SUMMARY, 0, 0, nqctl_dlq},
    {"events", NQCTL_EVENTS_SYNOPSIS, NQCTL_EVENTS_SUMMARY, 0, 0, nqctl_events},
    {"top", NQCTL_TOP_SYNOPSIS, NQCTL_TOP_SUMMARY, 0, 0, nqctl_top},
    {"bench", "", "Moved to nq-bench (same flags).", 0, 0, nqctl_bench_moved},
};

static void global_opts(nqctl *x, nqi_opt out[NQCTL_NGLOBAL])
{
	const nqi_opt opts[NQCTL_NGLOBAL] = {
	    NQI_CLI_CONN_OPTS(&x->conf.conn),
	    {"dlq", NQI_OPT_STR, &x->conf.dlq_url,
	        "nq-dlq socket (tcp://127.0.0.1:7410)", false},
	    {"events", NQI_OPT_STR, &x->conf.events_url,
	        "broker events socket (" NQCTL_DEFAULT_EVENTS ")", false},
	    NQCTL_COMMON_OPTS(x),
	};
	memcpy(out, opts, sizeof opts);
}

static void print_usage(nqctl *x, FILE *f)
{
	nqi_opt opts[NQCTL_NGLOBAL];
	global_opts(x, opts);
	fprintf(f, "usage: nqctl [global flags] COMMAND [arguments] [flags]\n\n"
	           "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		char left[64];
		snprintf(left, sizeof left, "%s %s", commands[i].name,
		    commands[i].synopsis);
		fprintf(f, "  %-28s %s\n", left, commands[i].summary);
	}
	fprintf(f, "\nglobal flags (each also from the environment: --api as "
	           "NQ_API, --token-file as NQ_TOKEN_FILE, ...):\n");
	nqi_opts_usage(opts, NQCTL_NGLOBAL, f);
	fprintf(f,
	    "\nDurations read 250ms, 30s, 5m, 2h. 'nqctl COMMAND --help' "
	    "lists a command's flags.\n" NQI_EXIT_HELP);
}

static void print_command_usage(
    const nqctl *x, const nqi_opt *opts, size_t n, FILE *f)
{
	fprintf(f, "usage: nqctl [global flags] %s %s\n%s\n\nflags:\n",
	    x->cmd->name, x->cmd->synopsis, x->cmd->summary);
	nqi_opts_usage(opts, n, f);
}

/* The wire name of an error's code ("NOT_FOUND"), as the services' JSON
 * errors name it. */
static const char *code_name(int err)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
	    &nq__v1__code__descriptor, nqi_err_to_code(err));
	return v ? v->name : "INTERNAL";
}

static void print_error_json(int err, const char *msg)
{
	json_t *o = json_object();
	char *text = NULL;
	if (o &&
	    json_object_set_new(o, "code", json_string(code_name(err))) == 0 &&
	    json_object_set_new(
	        o, "message", nqi_json_string_lossy(msg, strlen(msg))) == 0)
		text = nqi_json_dumps(o);
	json_decref(o);
	fprintf(stderr, "%s\n",
	    text ? text
	         : "{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}");
	free(text);
}

int nqctl_report(
    const nqctl *x, int err, int rc, const char *hint, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (x->conf.json)
		print_error_json(err, msg);
	else
		fprintf(stderr, "nqctl: %s\n%s", msg, hint ? hint : "");
	return rc;
}

int nqctl_usage_error(const nqctl *x, const char *fmt, ...)
{
	char msg[768], hint[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (x->cmd)
		snprintf(hint, sizeof hint,
		    "usage: nqctl [global flags] %s %s\n"
		    "Run 'nqctl %s --help' for its flags.\n",
		    x->cmd->name, x->cmd->synopsis, x->cmd->name);
	else
		snprintf(hint, sizeof hint,
		    "usage: nqctl [global flags] COMMAND "
		    "[arguments] [flags]\n"
		    "Run 'nqctl --help' for the commands.\n");
	return nqctl_report(x, NQ_EINVAL, NQI_EXIT_USAGE, hint, "%s", msg);
}

static int add_arg(nqctl *x, const char *arg)
{
	if (x->nargs >= x->cmd->max_args)
		return nqctl_usage_error(
		    x, "%s: unexpected argument '%s'", x->cmd->name, arg);
	x->args[x->nargs++] = arg;
	return NQI_CONTINUE;
}

/* Flags one at a time, so that they may come before, between or after the
 * positional arguments; everything after "--" is positional. Stops at a
 * request for help, which wins over whatever else is wrong. */
static int scan_args(
    nqctl *x, const nqi_opt *opts, size_t n, int argc, char **argv, int start)
{
	char err[256];
	int rc = NQI_CONTINUE;
	int i = start;
	while (i < argc && rc == NQI_CONTINUE && !x->conf.help) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			for (i++; i < argc && rc == NQI_CONTINUE; i++)
				rc = add_arg(x, argv[i]);
			break;
		}
		if (strcmp(a, "-h") == 0) {
			x->conf.help = true;
			i++;
		} else if (strncmp(a, "--", 2) == 0) {
			int end = i + nqi_opts_span(opts, n, a);
			if (nqi_opts_parse(opts, n, end < argc ? end : argc,
			        argv, i, false, &i, err, sizeof err) != NQ_OK)
				return nqctl_usage_error(x, "%s", err);
		} else {
			rc = add_arg(x, a);
			i++;
		}
	}
	return rc;
}

int nqctl_args(
    nqctl *x, const nqi_opt *opts, size_t n, int argc, char **argv, int start)
{
	int rc = scan_args(x, opts, n, argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	if (x->conf.help) {
		print_command_usage(x, opts, n, stdout);
		return NQI_EXIT_OK;
	}
	if (x->nargs < x->cmd->min_args)
		return nqctl_usage_error(
		    x, "%s: missing arguments", x->cmd->name);
	return NQI_CONTINUE;
}

/* The token, from --token-file: a file (its first token) or env:NAME;
 * read once. */
static int read_token(nqctl *x)
{
	char why[300];
	int err = NQ_OK;
	if (x->token)
		return NQI_CONTINUE;
	int rc =
	    nqi_cli_read_token(&x->conf.conn, &x->token, &err, why, sizeof why);
	return rc == NQI_CONTINUE ? rc
	                          : nqctl_report(x, err, rc, NULL, "%s", why);
}

/* Why nq_client_open refused the options: the TLS files when they are
 * the reason (the same check libnq made), else the URLs. */
static int open_failed(const nqctl *x, int rv)
{
	const nqi_cli_conn *g = &x->conf.conn;
	nqi_tls_opts t = {g->tls_cert, g->tls_key, g->tls_ca};
	nng_tls_config *cfg = NULL;
	char why[256] = "";
	int rc = rv == NQ_EINVAL ? NQI_EXIT_USAGE : NQI_EXIT_FAILED;
	if (rv == NQ_EINVAL &&
	    (g->tls_ca || g->tls_cert || g->tls_key || g->tls_server_name) &&
	    nqi_tls_client_named(
	        &t, g->tls_server_name, &cfg, why, sizeof why) != NQ_OK)
		return nqctl_report(x, rv, rc, NULL, "%s", why);
	if (cfg)
		nng_tls_config_free(cfg);
	return nqctl_report(x, rv, rc, NULL,
	    "cannot use the broker at %s: %s (check --api, --work, --results)",
	    nqi_cli_api_url(g), nq_strerror(rv));
}

/* Every address flag given, checked before anything is dialed: a wrong
 * one is a usage error that names it, not a wait for a reply. */
static int check_urls(const nqctl *x)
{
	const nqi_url_flag urls[] = {
	    {"--dlq", x->conf.dlq_url, false},
	    {"--events", x->conf.events_url, false},
	};
	char why[512];
	if (nqi_cli_check_urls(&x->conf.conn, why, sizeof why) ||
	    nqi_url_check_flags(
	        urls, sizeof urls / sizeof *urls, why, sizeof why))
		return nqctl_usage_error(x, "%s", why);
	return NQI_CONTINUE;
}

int nqctl_connect(nqctl *x)
{
	int rc = read_token(x);
	if (rc == NQI_CONTINUE && !x->client)
		rc = check_urls(x);
	if (rc != NQI_CONTINUE || x->client)
		return rc;
	nq_client_opts o = nqi_cli_client_opts(&x->conf.conn, x->token);
	int rv = nq_client_open(&x->client, &o);
	return rv == NQ_OK ? NQI_CONTINUE : open_failed(x, rv);
}

bool nqctl_unreachable(int err)
{
	/* Not NQ_EUNAVAIL: that is the service's answer (its disk is full,
	 * it is shutting down), which the message then gives. */
	return err == NQ_ETIMEDOUT || err == NQ_ECONNECT;
}

int nqctl_fail(const nqctl *x, int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	const char *why = x->client ? nq_client_last_error(x->client) : "";
	const char *sep =
	    *why && strcmp(why, nq_strerror(err)) != 0 ? ": " : "";
	if (!*sep)
		why = "";
	int rc =
	    nqctl_unreachable(err) ? NQI_EXIT_UNREACHABLE : NQI_EXIT_FAILED;
	/* libnq's own message names the socket; without one, say it here. */
	if (nqctl_unreachable(err) && !*why)
		return nqctl_report(x, err, rc, NULL, "%s: %s (broker at %s)",
		    what, nq_strerror(err), nqi_cli_api_url(&x->conf.conn));
	return nqctl_report(
	    x, err, rc, NULL, "%s: %s%s%s", what, nq_strerror(err), sep, why);
}

static const nqctl_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Parses the global flags and runs the command; returns the exit status. */
static int run(nqctl *x, int argc, char **argv)
{
	nqi_opt opts[NQCTL_NGLOBAL];
	char err[256];
	int next;
	global_opts(x, opts);
	if (nqi_opts_parse(opts, NQCTL_NGLOBAL, argc, argv, 1, true, &next, err,
	        sizeof err) != NQ_OK)
		return nqctl_usage_error(x, "%s", err);
	if (x->conf.help || (next < argc && strcmp(argv[next], "-h") == 0)) {
		print_usage(x, stdout);
		return NQI_EXIT_OK;
	}
	if (next >= argc)
		return nqctl_usage_error(x, "missing COMMAND");
	x->cmd = find_command(argv[next]);
	if (!x->cmd)
		return nqctl_usage_error(x, "unknown command '%s'", argv[next]);
	return x->cmd->run(x, argc, argv, next + 1);
}

/* --json anywhere before "--" asks for JSON errors from the start, so that
 * a bad flag met before --json is reported in the format asked for. */
static bool wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	/* Static, so that the events subscriber, left open until the process
	 * ends (see nqctl_sub_open), is still referenced when LeakSanitizer
	 * looks after main has returned. */
	static nqctl x;
	x.conf.json = wants_json(argc, argv);
	x.args = calloc((size_t)argc + 1, sizeof *x.args);
	int rc = x.args ? run(&x, argc, argv)
	                : nqctl_report(&x, NQ_ENOMEM, NQI_EXIT_FAILED, NULL,
	                      "out of memory");
	nq_client_close(x.client);
	free(x.token);
	free(x.args);
	/* Output that could not be written (a full disk, a closed pipe) is a
	 * failure the caller must see. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int failed = rc == NQI_EXIT_OK ? NQI_EXIT_FAILED : rc;
		rc = nqctl_report(&x, NQ_EINTERNAL, failed, NULL,
		    "writing the output: %s", strerror(errno));
	}
	return rc;
}
