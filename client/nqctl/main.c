/*
 * nqctl: the command line for nq. Global flags (each also read from
 * NQ_<FLAG>), then a command with its own arguments and flags:
 *
 *   nqctl [--api URL] [--json] [--timeout D] ... COMMAND [ARGS] [FLAGS]
 *
 * Exit status: 0 ok, 1 the operation failed, 2 usage error, 3 the broker
 * could not be reached in time.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "events.h"
#include "nqctl.h"
#include "nqi/util.h"

#define NQCTL_NGLOBAL 13
#define NQCTL_DEFAULT_API "tcp://127.0.0.1:7400"

static const nqctl_cmd commands[] = {
    {"enqueue", "QUEUE TYPE [flags]", "Adds a job to QUEUE and prints its id.",
        2, 2, nqctl_enqueue},
    {"get", "ID", "Shows a job.", 1, 1, nqctl_get},
    {"wait", "ID [--timeout D]",
        "Waits until a job has ended and shows it; exits 1 unless it "
        "succeeded.",
        1, 1, nqctl_wait},
    {"cancel", "ID", "Cancels a job that has not started and shows it.", 1, 1,
        nqctl_cancel},
    {"stats", "[QUEUE]",
        "Shows the job counts of every queue, or of one, and of the "
        "broker.",
        0, 1, nqctl_stats},
    {"pause", "QUEUE",
        "Stops handing out the queue's jobs; enqueue still works.", 1, 1,
        nqctl_pause},
    {"resume", "QUEUE", "Hands out a paused queue's jobs again.", 1, 1,
        nqctl_resume},
    {"dlq", NQCTL_DLQ_SYNOPSIS, NQCTL_DLQ_SUMMARY, 0, 0, nqctl_dlq},
    {"events", NQCTL_EVENTS_SYNOPSIS, NQCTL_EVENTS_SUMMARY, 0, 0, nqctl_events},
    {"top", NQCTL_TOP_SYNOPSIS, NQCTL_TOP_SUMMARY, 0, 0, nqctl_top},
    {"bench", "", "Moved to nq-bench (same flags).", 0, 0, nqctl_bench_moved},
};

static void global_opts(nqctl *x, nqi_opt out[NQCTL_NGLOBAL])
{
	const nqi_opt opts[NQCTL_NGLOBAL] = {
	    {"api", NQI_OPT_STR, &x->conf.api_url,
	        "broker api socket (" NQCTL_DEFAULT_API ")", false},
	    {"work", NQI_OPT_STR, &x->conf.work_url,
	        "broker work socket (tcp://127.0.0.1:7401)", false},
	    {"results", NQI_OPT_STR, &x->conf.results_url,
	        "broker results socket (tcp://127.0.0.1:7402)", false},
	    {"dlq", NQI_OPT_STR, &x->conf.dlq_url,
	        "nq-dlq socket (tcp://127.0.0.1:7410)", false},
	    {"events", NQI_OPT_STR, &x->conf.events_url,
	        "broker events socket (" NQCTL_DEFAULT_EVENTS ")", false},
	    {"token-file", NQI_OPT_STR, &x->conf.token_file,
	        "file whose first line is the access token", false},
	    {"tls-ca", NQI_OPT_STR, &x->conf.tls_ca,
	        "CA certificate that verifies tls+tcp:// servers", false},
	    {"tls-cert", NQI_OPT_STR, &x->conf.tls_cert,
	        "client certificate to present", false},
	    {"tls-key", NQI_OPT_STR, &x->conf.tls_key,
	        "key of the client certificate", false},
	    {"tls-server-name", NQI_OPT_STR, &x->conf.tls_server_name,
	        "name the server certificate must carry", false},
	    {"timeout", NQI_OPT_DURATION, &x->conf.timeout_ms,
	        "longest wait for a reply to one request (10s)", false},
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
	    "lists a command's flags.\nExit status: 0 ok, 1 the "
	    "operation failed, 2 usage error, 3 the broker could not\n"
	    "be reached in time.\n");
}

static void print_command_usage(
    const nqctl *x, const nqi_opt *opts, size_t n, FILE *f)
{
	fprintf(f, "usage: nqctl [global flags] %s %s\n%s\n\nflags:\n",
	    x->cmd->name, x->cmd->synopsis, x->cmd->summary);
	nqi_opts_usage(opts, n, f);
}

int nqctl_usage_error(const nqctl *x, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nqctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (x->cmd)
		fprintf(stderr,
		    "\nusage: nqctl [global flags] %s %s\n"
		    "Run 'nqctl %s --help' for its flags.\n",
		    x->cmd->name, x->cmd->synopsis, x->cmd->name);
	else
		fprintf(stderr, "\nusage: nqctl [global flags] COMMAND "
		                "[arguments] [flags]\n"
		                "Run 'nqctl --help' for the commands.\n");
	return NQCTL_EXIT_USAGE;
}

static int add_arg(nqctl *x, const char *arg)
{
	if (x->nargs >= x->cmd->max_args)
		return nqctl_usage_error(
		    x, "%s: unexpected argument '%s'", x->cmd->name, arg);
	x->args[x->nargs++] = arg;
	return NQCTL_CONTINUE;
}

/* Flags one at a time, so that they may come before, between or after the
 * positional arguments; everything after "--" is positional. Stops at a
 * request for help, which wins over whatever else is wrong. */
static int scan_args(
    nqctl *x, const nqi_opt *opts, size_t n, int argc, char **argv, int start)
{
	char err[256];
	int rc = NQCTL_CONTINUE;
	int i = start;
	while (i < argc && rc == NQCTL_CONTINUE && !x->conf.help) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			for (i++; i < argc && rc == NQCTL_CONTINUE; i++)
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
	if (rc != NQCTL_CONTINUE)
		return rc;
	if (x->conf.help) {
		print_command_usage(x, opts, n, stdout);
		return NQCTL_EXIT_OK;
	}
	if (x->nargs < x->cmd->min_args)
		return nqctl_usage_error(
		    x, "%s: missing arguments", x->cmd->name);
	return NQCTL_CONTINUE;
}

/* Reads the token: the first line of the file, without surrounding blanks. */
static int read_token(nqctl *x)
{
	const char *path = x->conf.token_file;
	char line[4096];
	if (!path || !*path)
		return NQCTL_CONTINUE;
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "nqctl: --token-file %s: %s\n", path,
		    strerror(errno));
		return NQCTL_EXIT_USAGE;
	}
	char *got = fgets(line, sizeof line, f);
	fclose(f);
	const char *tok = got ? line + strspn(line, " \t") : "";
	size_t len = strcspn(tok, "\r\n");
	while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
		len--;
	if (len == 0) {
		fprintf(stderr,
		    "nqctl: --token-file %s: no token on its first "
		    "line\n",
		    path);
		return NQCTL_EXIT_USAGE;
	}
	x->token = strndup(tok, len);
	return x->token ? NQCTL_CONTINUE : NQCTL_EXIT_FAILED;
}

int nqctl_connect(nqctl *x)
{
	int rc = read_token(x);
	if (rc != NQCTL_CONTINUE)
		return rc;
	nq_client_opts o = {
	    .api_url = x->conf.api_url,
	    .work_url = x->conf.work_url,
	    .results_url = x->conf.results_url,
	    .token = x->token,
	    .timeout_ms = x->conf.timeout_ms > INT_MAX
	                      ? INT_MAX
	                      : (int)x->conf.timeout_ms,
	    .tls_ca = x->conf.tls_ca,
	    .tls_cert = x->conf.tls_cert,
	    .tls_key = x->conf.tls_key,
	    .tls_server_name = x->conf.tls_server_name,
	};
	int rv = nq_client_open(&x->client, &o);
	if (rv == NQ_OK)
		return NQCTL_CONTINUE;
	fprintf(stderr, "nqctl: cannot use the broker at %s: %s\n",
	    x->conf.api_url ? x->conf.api_url : NQCTL_DEFAULT_API,
	    nq_strerror(rv));
	return rv == NQ_EINVAL ? NQCTL_EXIT_USAGE : NQCTL_EXIT_FAILED;
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
	bool unreachable =
	    err == NQ_ETIMEDOUT || err == NQ_ECONNECT || err == NQ_EUNAVAIL;
	/* libnq's own message names the socket; without one, say it here. */
	if (unreachable && !*why)
		fprintf(stderr, "nqctl: %s: %s (broker at %s)\n", what,
		    nq_strerror(err),
		    x->conf.api_url ? x->conf.api_url : NQCTL_DEFAULT_API);
	else
		fprintf(stderr, "nqctl: %s: %s%s%s\n", what, nq_strerror(err),
		    sep, why);
	return unreachable ? NQCTL_EXIT_UNREACHABLE : NQCTL_EXIT_FAILED;
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
		return NQCTL_EXIT_OK;
	}
	if (next >= argc)
		return nqctl_usage_error(x, "missing COMMAND");
	x->cmd = find_command(argv[next]);
	if (!x->cmd)
		return nqctl_usage_error(x, "unknown command '%s'", argv[next]);
	return x->cmd->run(x, argc, argv, next + 1);
}

int main(int argc, char **argv)
{
	nqctl x = {0};
	int rc = run(&x, argc, argv);
	nq_client_close(x.client);
	free(x.token);
	/* Output that could not be written (a full disk, a closed pipe) is a
	 * failure the caller must see. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(
		    stderr, "nqctl: writing the output: %s\n", strerror(errno));
		if (rc == NQCTL_EXIT_OK)
			rc = NQCTL_EXIT_FAILED;
	}
	return rc;
}
