/*
 * The handler behind every job type: runs the type's command with the job's
 * payload on stdin and its facts in the environment, and turns how the
 * command ended into the job's outcome:
 *
 *   exit 0             succeeded; stdout (at most 1 MiB) is the result
 *   exit 75            failed, to be retried (EX_TEMPFAIL: "retry later")
 *   exit 65            failed for good, never retried (EX_DATAERR)
 *   exit 64            failed for good: the command does not take the
 *                      payload's schema version (NQ_SCHEMA_VERSION),
 *                      dead_reason schema_rejected
 *   any other exit     failed, retried by the queue's backoff
 *   a signal           failed, retried
 *   past timeout_ms    killed and failed: "timed out after Ns"
 *   payload_ref bad    failed before the command runs: a file:// or
 *                      http(s):// blob that is missing or not the size
 *                      and SHA-256 the job declares is never retried; a
 *                      network or server error is
 *   canceled           SIGTERM, SIGKILL after --grace; failed for good
 *                      unless it still exited 0 (the job ends canceled,
 *                      or dead past its finish_within, either way)
 *   cannot start       released, unrun and no attempt spent, when this
 *                      host is short of descriptors, processes or memory
 *                      (after a few tries); logged NQ-FD-EXHAUSTED once,
 *                      and NQ-FD-RECOVERED once a command starts again
 *
 * Error messages end with the last 2 KiB of the command's stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nqi/json.h"
#include "nqi/log.h"
#include "nqi/util.h"
#include "worker.h"

#define EXIT_RETRY_LATER 75
/* Tries to start a command short of resources, waiting 50, 100, 200 ms
 * between them: a slot that ends meanwhile gives its descriptors back,
 * and a worker that keeps failing fetches its jobs back slowly. */
#define START_TRIES 4
#define START_PAUSE_MS 50
#define EXIT_PERMANENT 65
#define EXIT_SCHEMA_REJECTED 64
#define MESSAGE_MAX (WORKER_ERR_TAIL + 160)

extern char **environ;

/* The job variables; the worker's own environment never supplies them. */
static const char *const job_vars[] = {"NQ_JOB_ID", "NQ_QUEUE", "NQ_TYPE",
    "NQ_ATTEMPT", "NQ_MAX_ATTEMPTS", "NQ_TRACEPARENT", "NQ_CONTENT_TYPE",
    "NQ_PAYLOAD_REF", "NQ_SCHEMA_VERSION", "NQ_PROGRESS_FD",
    "NQ_PARENT_RESULTS"};
#define NJOB_VARS (sizeof job_vars / sizeof *job_vars)

typedef struct job_env {
	char **envp;
	char *own[NJOB_VARS];
	size_t nown;
} job_env;

/* How an attempt ended, for the completion and the log line. */
typedef struct verdict {
	nq_outcome outcome;
	bool non_retryable;
	bool schema_rejected;
	bool released;      /* the worker stopped under it */
	const char *reason; /* one word for the log */
	char exit[24];      /* "0", "75", "SIGKILL", or "-" */
	char message[MESSAGE_MAX];
} verdict;

static bool is_job_var(const char *entry)
{
	for (size_t i = 0; i < NJOB_VARS; i++) {
		size_t len = strlen(job_vars[i]);
		if (strncmp(entry, job_vars[i], len) == 0 && entry[len] == '=')
			return true;
	}
	return false;
}

static void env_add(job_env *e, size_t *n, const char *name, const char *value)
{
	char *s;
	if (asprintf(&s, "%s=%s", name, value ? value : "") < 0)
		return;
	e->own[e->nown++] = s;
	e->envp[(*n)++] = s;
}

static void env_free(job_env *e)
{
	for (size_t i = 0; i < e->nown; i++)
		free(e->own[i]);
	free(e->envp);
}

/* The worker's environment, less any job variables, plus this job's. */
static int env_build(job_env *e, const nq_job *job, const char *parents)
{
	size_t n = 0, total = 0;
	char num[3][16];
	while (environ[total])
		total++;
	memset(e, 0, sizeof *e);
	if (!(e->envp = calloc(total + NJOB_VARS + 1, sizeof *e->envp)))
		return ENOMEM;
	for (size_t i = 0; i < total; i++)
		if (!is_job_var(environ[i]))
			e->envp[n++] = environ[i];
	snprintf(num[0], sizeof num[0], "%u", nq_job_attempt(job));
	snprintf(num[1], sizeof num[1], "%u", nq_job_max_attempts(job));
	snprintf(num[2], sizeof num[2], "%u", nq_job_schema_version(job));
	env_add(e, &n, "NQ_JOB_ID", nq_job_id(job));
	env_add(e, &n, "NQ_QUEUE", nq_job_queue(job));
	env_add(e, &n, "NQ_TYPE", nq_job_type(job));
	env_add(e, &n, "NQ_ATTEMPT", num[0]);
	env_add(e, &n, "NQ_MAX_ATTEMPTS", num[1]);
	env_add(e, &n, "NQ_CONTENT_TYPE", nq_job_content_type(job));
	env_add(e, &n, "NQ_SCHEMA_VERSION", num[2]);
	env_add(e, &n, "NQ_PROGRESS_FD", WORKER_PROGRESS_FD_TEXT);
	size_t want = NJOB_VARS;
	const char *tp = nq_job_traceparent(job),
	           *ref = nq_job_payload_ref(job);
	if (tp && *tp)
		env_add(e, &n, "NQ_TRACEPARENT", tp);
	else
		want--;
	if (*ref)
		env_add(e, &n, "NQ_PAYLOAD_REF", ref);
	else
		want--;
	if (*parents)
		env_add(e, &n, "NQ_PARENT_RESULTS", parents);
	else
		want--;
	return e->nown == want ? 0 : ENOMEM;
}

/*
 * The command's stdin: a msgpack payload as JSON text and a newline (so
 * that line readers see a whole line), anything else as its bytes. *json
 * holds the converted text for the caller to free.
 */
static int job_input(const nq_job *job, const worker_payload *blob, char **json,
    worker_proc_spec *spec)
{
	size_t len = 0;
	const void *p = nq_job_payload(job, &len);
	if (blob->fetched) {
		p = blob->data;
		len = blob->len;
	}
	*json = NULL;
	spec->input = p;
	spec->input_len = p ? len : 0;
	if (!p || !len ||
	    !nqi_content_type_is_msgpack(nq_job_content_type(job)))
		return NQ_OK;
	char *text;
	int rv = nqi_msgpack_to_json(p, len, &text);
	if (rv != NQ_OK)
		return rv;
	size_t tlen = strlen(text);
	char *line = realloc(text, tlen + 2);
	if (!line) {
		free(text);
		return NQ_ENOMEM;
	}
	memcpy(line + tlen, "\n", 2);
	*json = line;
	spec->input = line;
	spec->input_len = tlen + 1;
	return NQ_OK;
}

/*
 * The stderr tail as message text: starting at a whole character, trailing
 * blanks trimmed, and every byte that is not printable UTF-8 shown as '?'
 * (error messages travel as protobuf strings, which must be UTF-8).
 */
static void clean_tail(const worker_proc_result *r, char *out, size_t len)
{
	const uint8_t *p = (const uint8_t *)r->err_tail;
	size_t n = r->err_len, i = 0, o = 0;
	while (i < n && (p[i] & 0xc0) == 0x80)
		i++;
	while (n > i && (p[n - 1] == '\n' || p[n - 1] == ' ' ||
	                    p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	while (i < n && o + 5 < len) {
		size_t c = nqi_utf8_char_len(p + i, n - i);
		bool ctl =
		    c == 1 && p[i] < 0x20 && p[i] != '\n' && p[i] != '\t';
		if (c == 0 || ctl || (c == 1 && p[i] == 0x7f)) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, p + i, c);
		o += c;
		i += c;
	}
	out[o] = '\0';
}

/* "30s", "1.5s", "0.25s". */
static void format_seconds(uint64_t ms, char *out, size_t len)
{
	snprintf(out, len, "%llu.%03llu", (unsigned long long)(ms / 1000),
	    (unsigned long long)(ms % 1000));
	size_t n = strlen(out);
	while (out[n - 1] == '0')
		out[--n] = '\0';
	if (out[n - 1] == '.')
		out[--n] = '\0';
	snprintf(out + n, len - n, "s");
}

/* Judges a command that ran to its end (or was killed). */
static void judge(const worker_proc_result *r, uint64_t timeout_ms, verdict *v)
{
	char tail[WORKER_ERR_TAIL + 8], secs[32];
	int st = r->status, code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	clean_tail(r, tail, sizeof tail);
	const char *sep = *tail ? ": " : "";
	v->outcome = NQ_OUTCOME_FAILED;
	v->reason = "exit";
	if (WIFSIGNALED(st)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(st));
		snprintf(
		    v->exit, sizeof v->exit, "SIG%s", abbrev ? abbrev : "?");
	} else {
		snprintf(v->exit, sizeof v->exit, "%d", code);
	}
	if (r->stopped && (code != 0 || WIFSIGNALED(st))) {
		v->reason = "canceled";
		v->non_retryable = true;
		snprintf(v->message, sizeof v->message,
		    "stopped (exit %s): the job was canceled or passed its "
		    "finish_within%s%s",
		    v->exit, sep, tail);
	} else if (r->timed_out) {
		format_seconds(timeout_ms, secs, sizeof secs);
		v->reason = "timeout";
		snprintf(v->message, sizeof v->message,
		    "timed out after %s%s%s", secs, sep, tail);
	} else if (WIFSIGNALED(st)) {
		v->reason = "signal";
		snprintf(v->message, sizeof v->message,
		    "killed by signal %d (%s)%s%s", WTERMSIG(st), v->exit, sep,
		    tail);
	} else if (code == 0 && r->too_large) {
		v->reason = "result_too_large";
		snprintf(
		    v->message, sizeof v->message, "result larger than 1 MiB");
	} else if (code == 0) {
		v->outcome = NQ_OUTCOME_SUCCEEDED;
		v->reason = "ok";
	} else if (code == EXIT_RETRY_LATER) {
		v->reason = "retry_later";
		snprintf(v->message, sizeof v->message,
		    "exit 75 (retry later)%s%s", sep, tail);
	} else if (code == EXIT_PERMANENT) {
		v->reason = "permanent";
		v->non_retryable = true;
		snprintf(v->message, sizeof v->message,
		    "exit 65 (permanent failure)%s%s", sep, tail);
	} else if (code == EXIT_SCHEMA_REJECTED) {
		v->reason = "schema_rejected";
		v->non_retryable = v->schema_rejected = true;
		snprintf(v->message, sizeof v->message,
		    "exit 64 (schema version rejected)%s%s", sep, tail);
	} else {
		snprintf(v->message, sizeof v->message, "exit %d%s%s", code,
		    sep, tail);
	}
}

/* Errors of starting a command that say this host is short of something,
 * not that the job is wrong. */
static bool shortage(int e)
{
	return e == EMFILE || e == ENFILE || e == EAGAIN || e == ENOMEM;
}

static unsigned long long nofile_limit(void)
{
	struct rlimit rl;
	return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
}

/* Logs the first shortage of a spell, and its end. */
static void note_shortage(worker_stats *st, const nq_job *job, int rv)
{
	if (shortage(rv) && !atomic_exchange(&st->short_of_fds, true))
		nqi_error("NQ-FD-EXHAUSTED", NQI_S("id", nq_job_id(job)),
		    NQI_S("error", strerror(rv)),
		    NQI_U("nofile", nofile_limit()),
		    NQI_S("action",
		        "jobs are released, not failed, until a command "
		        "starts again"));
	else if (!shortage(rv) && atomic_load(&st->short_of_fds) &&
	         atomic_exchange(&st->short_of_fds, false))
		nqi_info("NQ-FD-RECOVERED", NQI_S("id", nq_job_id(job)));
}

/* Starts and runs the command, trying again while the host is short. */
static int run_tries(const worker_handler *h, const nq_job *job,
    const worker_proc_spec *spec, worker_proc_result *r)
{
	int rv = worker_proc_run(spec, r);
	for (int i = 1; i < START_TRIES && shortage(rv) &&
	                !worker_children_closed(h->children);
	     i++) {
		usleep((useconds_t)(START_PAUSE_MS << (i - 1)) * 1000);
		rv = worker_proc_run(spec, r);
	}
	note_shortage(h->stats, job, rv);
	return rv;
}

/* Runs the command for the job; *out holds stdout for the caller to free. */
static void run_command(const worker_handler *h, const nq_job *job, verdict *v,
    uint8_t **out, size_t *out_len)
{
	worker_proc_spec spec = {.command = h->command,
	    .children = h->children,
	    .timeout_ms = nq_job_timeout_ms(job),
	    .job = job,
	    .grace_ms = h->grace_ms};
	worker_proc_result r;
	job_env env = {0};
	worker_payload blob = {0};
	char *json = NULL;
	char parents[4096] = "";
	int rv;
	if (!spec.timeout_ms)
		spec.timeout_ms = WORKER_TIMEOUT_DEFAULT_MS;
	snprintf(v->exit, sizeof v->exit, "-");
	v->outcome = NQ_OUTCOME_FAILED;
	if ((rv = worker_payload_fetch(job, spec.timeout_ms, &blob, v->message,
	         sizeof v->message)) != NQ_OK) {
		v->reason = "payload_ref";
		v->non_retryable = blob.permanent;
		goto done;
	}
	if ((rv = job_input(job, &blob, &json, &spec)) != NQ_OK) {
		v->reason = "bad_payload";
		v->non_retryable = rv == NQ_EINVAL;
		snprintf(v->message, sizeof v->message, "%s",
		    rv == NQ_EINVAL ? "payload is not one msgpack value, "
		                      "though its content type says msgpack"
		                    : "out of memory for the payload");
		goto done;
	}
	bool ran = false;
	if ((rv = worker_parents_file(job, parents, sizeof parents)) != 0) {
		v->reason = "parent_results";
		snprintf(v->message, sizeof v->message,
		    "cannot write the parents' results: %s", strerror(rv));
		goto done;
	}
	if ((rv = env_build(&env, job, parents)) == 0) {
		spec.envp = env.envp;
		rv = run_tries(h, job, &spec, &r);
		ran = rv == 0;
	}
	/* Children end early only when the worker stops, and by then this
	 * job has been released: how the command ended does not count. */
	if (ran && worker_children_closed(h->children))
		rv = ECANCELED;
	if (rv == ECANCELED || shortage(rv)) {
		v->released = true;
		v->outcome = NQ_OUTCOME_RELEASED;
		v->reason =
		    rv == ECANCELED ? "worker_stopping" : "no_resources";
		snprintf(v->message, sizeof v->message, "%s",
		    rv == ECANCELED
		        ? "the worker stopped before the command ended"
		        : strerror(rv));
	} else if (rv != 0) {
		v->reason = "spawn";
		snprintf(v->message, sizeof v->message,
		    "cannot run the command: %s", strerror(rv));
	} else {
		judge(&r, spec.timeout_ms, v);
		*out = r.output;
		*out_len = r.output_len;
		r.output = NULL;
	}
	if (ran)
		free(r.output);
done:
	if (parents[0])
		unlink(parents);
	env_free(&env);
	free(json);
	free(blob.data);
}

/* The traceparent as a log field value: at most 64 characters of
 * [0-9a-zA-Z-], anything else shown as '?', so that a hostile value stays
 * short and plain. "" when the job has none. */
static void trace_field(const nq_job *job, char *out, size_t len)
{
	const char *tp = nq_job_traceparent(job);
	size_t o = 0;
	out[0] = '\0';
	if (!tp || !*tp)
		return;
	for (; *tp && o + 1 < len && o < 64; tp++) {
		char c = *tp;
		bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		          (c >= 'A' && c <= 'Z') || c == '-';
		out[o++] = ok ? c : '?';
	}
	out[o] = '\0';
}

static worker_outcome outcome_of(const verdict *v)
{
	if (v->released)
		return WORKER_RELEASED;
	return v->outcome == NQ_OUTCOME_SUCCEEDED ? WORKER_SUCCEEDED
	                                          : WORKER_FAILED;
}

static void log_verdict(
    worker_handler *h, const nq_job *job, const verdict *v, uint64_t ms)
{
	const char *id = v->released ? "NQ-JOB-RELEASED"
	                 : v->outcome == NQ_OUTCOME_SUCCEEDED ? "NQ-JOB-DONE"
	                                                      : "NQ-JOB-FAILED";
	nqi_log_level level = v->outcome == NQ_OUTCOME_SUCCEEDED || v->released
	                          ? NQI_LOG_INFO
	                          : NQI_LOG_WARN;
	char trace[80];
	trace_field(job, trace, sizeof trace);
	bool failed = v->outcome != NQ_OUTCOME_SUCCEEDED && !v->released;
	const nqi_log_field f[] = {NQI_S("id", nq_job_id(job)),
	    NQI_S("type", nq_job_type(job)),
	    NQI_U("attempt", nq_job_attempt(job)), NQI_U("ms", ms),
	    NQI_S("exit", v->exit), NQI_S("reason", v->reason),
	    NQI_B(failed ? "retryable" : NULL, !v->non_retryable),
	    NQI_S(trace[0] ? "trace" : NULL, trace)};
	nqi_log(level, id, f, sizeof f / sizeof *f);
	pthread_mutex_lock(&h->stats->mtx);
	if (v->released)
		h->stats->released++;
	else if (v->outcome == NQ_OUTCOME_SUCCEEDED)
		h->stats->done++;
	else
		h->stats->failed++;
	pthread_mutex_unlock(&h->stats->mtx);
}

/* Monotonic seconds, finer than nqi_mono_ms: jobs often take less than a
 * millisecond, and the duration histogram starts at 0.5 ms. */
static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts the attempt; a released one did not run to its end, so its time
 * says nothing about the handler and is left out of the histogram. */
static void count_verdict(worker_handler *h, const verdict *v, double secs)
{
	worker_outcome k = outcome_of(v);
	atomic_fetch_add(&h->jobs[k], 1);
	if (k != WORKER_RELEASED)
		nqi_prom_hist_observe(h->duration_s, secs);
}

nq_outcome worker_handle_cb(const nq_job *job, nq_result *res, void *arg)
{
	worker_handler *h = arg;
	verdict v = {0};
	uint8_t *out = NULL;
	size_t out_len = 0;
	double start_s = mono_s();
	atomic_fetch_add(&h->stats->running, 1);
	worker_obs_reached(h->obs, "fetch");
	run_command(h, job, &v, &out, &out_len);
	if (v.outcome == NQ_OUTCOME_SUCCEEDED)
		nq_result_set(res, out, out_len);
	else if (v.schema_rejected)
		nq_result_schema_rejected(res, v.message);
	else if (!v.released)
		nq_result_error(res, v.message, v.non_retryable);
	double secs = mono_s() - start_s;
	count_verdict(h, &v, secs);
	log_verdict(h, job, &v, (uint64_t)(secs * 1000));
	free(out);
	/* The last use of h: once no callback runs, main frees it. */
	atomic_fetch_sub(&h->stats->running, 1);
	return v.outcome;
}
