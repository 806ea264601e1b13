#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ITEST_BROKER
#error "ITEST_BROKER must name the nq-broker binary"
#endif
#ifndef ITEST_WORKER
#error "ITEST_WORKER must name the nq-worker binary"
#endif
#ifndef ITEST_NQCTL
#error "ITEST_NQCTL must name the nqctl binary"
#endif

extern char **environ;

/* The env of the running test, so that atexit can kill its children when the
 * program ends without a teardown (abort, exit from a failed setup). */
static itest_env *live_env;

/* True when the broker of the running test has died without being told to;
 * waits use it to fail at once, with the reason, instead of at their end. */
static bool broker_died(void);

/* ---- clocks and files ---- */

uint64_t itest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t itest_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void itest_sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int itest_url_port(const char *url)
{
	const char *colon = strrchr(url, ':');
	return colon && colon[1] >= '0' && colon[1] <= '9' ? atoi(colon + 1)
	                                                   : -1;
}

/* Pinned ports come from [PIN_LOW, the start of the outgoing range). */
#define PIN_LOW 20000
#define PIN_DIR "/tmp/nq-itest-ports"

static int outgoing_low(void)
{
	int low = 32768, high;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d %d", &low, &high) != 2)
			low = 32768;
		fclose(f);
	}
	return low;
}

/* True when 127.0.0.1:port can be bound the way the daemons bind it
 * (SO_REUSEADDR: a closed connection's TIME_WAIT does not count). */
static bool port_free(int port)
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int on = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok =
	    fd >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
	    bind(fd, (void *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* One lock file per port, shared by every test process on the machine;
 * the kernel drops a flock when its holder exits, however it exits. */
static int port_lock(int port)
{
	char path[64];
	if (mkdir(PIN_DIR, 0777) == 0)
		chmod(PIN_DIR, 01777); /* past the umask: any user's tests */
	snprintf(path, sizeof path, PIN_DIR "/%d", port);
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int itest_pin_port(itest_env *e, char *addr, size_t len)
{
	char *colon = strrchr(addr, ':');
	int low = outgoing_low(), span = low - PIN_LOW;
	if (itest_url_port(addr) != 0)
		return 0;
	if (e->npins >= sizeof e->pins / sizeof *e->pins || span <= 0)
		return ENOSPC;
	unsigned start = (unsigned)getpid() * 7919u + (unsigned)itest_now_ms();
	for (int i = 0; i < span; i++) {
		int port =
		    PIN_LOW + (int)((start + (unsigned)i) % (unsigned)span);
		int fd = port_lock(port);
		if (fd < 0)
			continue;
		if (!port_free(port)) {
			close(fd);
			continue;
		}
		e->pins[e->npins++] = fd;
		snprintf(
		    colon + 1, len - (size_t)(colon + 1 - addr), "%d", port);
		return 0;
	}
	fprintf(stderr, "itest: no port below %d to pin\n", low);
	return EADDRINUSE;
}

int itest_unserved_url(itest_env *e, char *out, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (e->nheld >= sizeof e->held / sizeof *e->held)
		return ENOSPC;
	/* Bound but never listening: a connection is refused, and nothing
	 * else can listen there while the env holds it. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (void *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (void *)&sa, &sl) != 0) {
		int rv = errno;
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "itest: no port to hold: %s\n", strerror(rv));
		return rv;
	}
	e->held[e->nheld++] = fd;
	snprintf(out, len, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
	return 0;
}

const char *itest_dial_url(itest_env *e, const char *url, char *buf, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	if (itest_url_port(url) != 0)
		return url;
	if (e->nheld > 0 && getsockname(e->held[0], (void *)&sa, &sl) == 0) {
		snprintf(buf, len, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
		return buf;
	}
	return itest_unserved_url(e, buf, len) == 0 ? buf : url;
}

void itest_path(const itest_env *e, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", e->dir, name);
}

int itest_read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		char *grown = realloc(buf, cap * 2);
		if (!grown) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = grown;
		cap *= 2;
	}
	fclose(f);
	if (!buf)
		return ENOMEM;
	buf[n] = '\0';
	if (len)
		*len = n;
	*out = buf;
	return 0;
}

int itest_write_script(const itest_env *e, const char *name, const char *body,
    char *out, size_t len)
{
	char path[PATH_MAX];
	itest_path(e, name, path, sizeof path);
	FILE *f = fopen(path, "w");
	if (!f)
		return errno;
	fprintf(f, "#!/bin/sh\n%s\n", body);
	if (fclose(f) != 0 || chmod(path, 0755) != 0)
		return errno;
	snprintf(out, len, "%s", path);
	return 0;
}

int itest_wait_lines(const char *path, int min_lines, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	int lines = 0;
	do {
		char *text;
		lines = 0;
		if (itest_read_file(path, &text, NULL) == 0) {
			for (char *s = text; *s; s++)
				lines += *s == '\n';
			free(text);
		}
		if (lines >= min_lines)
			return 0;
		if (broker_died())
			return ECHILD;
		itest_sleep_ms(20);
	} while (itest_now_ms() < end);
	fprintf(stderr, "itest: %s has %d lines after %llu ms, wanted %d\n",
	    path, lines, (unsigned long long)timeout_ms, min_lines);
	return ETIMEDOUT;
}

bool itest_is_id(const char *s)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if (!isdigit((unsigned char)s[n]) &&
		    !(s[n] >= 'a' && s[n] <= 'f'))
			return false;
	return n == 16;
}

/* ---- processes ---- */

/* The child side of a spawn: only async-signal-safe calls until exec. */
static void child_exec(pid_t parent, const char *const *argv, char **envp,
    const char *out_path, const char *err_path)
{
	sigset_t none;
	setpgid(0, 0);
	/* Die with the test program even when it is killed without cleanup. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	int in = open("/dev/null", O_RDONLY);
	int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	int err = strcmp(out_path, err_path) == 0
	              ? out
	              : open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || out < 0 || err < 0)
		_exit(127);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	/* Inherited sockets of the test (its broker connections) would keep
	 * connections open past their owner's close. */
	if (close_range(3, ~0U, 0) != 0)
		for (int fd = 3; fd < 4096; fd++)
			close(fd);
	execve(argv[0], (char *const *)argv, envp);
	static const char msg[] = "itest: exec failed\n";
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(127);
	_exit(127);
}

/* environ without NQ_* (so the developer's settings do not leak into a
 * test) plus extra. The strings are borrowed; free only the array. */
static char **child_environ(const char *const *extra)
{
	size_t n = 0, k = 0;
	for (char **v = environ; *v; v++)
		n++;
	for (const char *const *v = extra; v && *v; v++)
		n++;
	char **envp = calloc(n + 1, sizeof *envp);
	if (!envp)
		return NULL;
	for (char **v = environ; *v; v++)
		if (strncmp(*v, "NQ_", 3) != 0)
			envp[k++] = *v;
	for (const char *const *v = extra; v && *v; v++)
		envp[k++] = (char *)*v;
	return envp;
}

static int spawn_raw(const char *const *argv, const char *const *extra_env,
    const char *out_path, const char *err_path, pid_t *out)
{
	char **envp = child_environ(extra_env);
	if (!envp)
		return ENOMEM;
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		child_exec(parent, argv, envp, out_path, err_path);
	int rv = pid < 0 ? errno : 0;
	free(envp);
	if (rv) {
		fprintf(stderr, "itest: fork %s: %s\n", argv[0], strerror(rv));
		return rv;
	}
	/* Also here: a group kill right after the spawn must reach it. */
	setpgid(pid, pid);
	*out = pid;
	return 0;
}

int itest_spawn(itest_env *e, const char *name, const char *const *argv,
    const char *const *extra_env, itest_proc **out)
{
	if (e->nprocs >= ITEST_MAX_PROCS) {
		fprintf(
		    stderr, "itest: more than %d processes\n", ITEST_MAX_PROCS);
		return ENOSPC;
	}
	if (access(argv[0], X_OK) != 0) {
		fprintf(stderr, "itest: %s is not an executable: %s\n", argv[0],
		    strerror(errno));
		return ENOENT;
	}
	itest_proc *p = &e->procs[e->nprocs];
	memset(p, 0, sizeof *p);
	char log[sizeof p->log];
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(log, sizeof log, "%s/%s.log", e->dir, p->name);
	memcpy(p->log, log, sizeof log);
	/* A ready file left by an earlier start must not pass for this one. */
	for (size_t i = 1; argv[i] && argv[i + 1]; i++)
		if (strcmp(argv[i], "--ready-file") == 0)
			snprintf(p->ready, sizeof p->ready, "%s", argv[i + 1]);
	if (p->ready[0])
		unlink(p->ready);
	int rv = spawn_raw(argv, extra_env, p->log, p->log, &p->pid);
	if (rv)
		return rv;
	e->nprocs++;
	*out = p;
	return 0;
}

static bool reap(itest_proc *p, int flags)
{
	int st;
	if (p->exited)
		return true;
	pid_t r = waitpid(p->pid, &st, flags);
	if (r == p->pid || (r < 0 && errno == ECHILD)) {
		p->exited = true;
		p->status = r == p->pid ? st : 0;
		p->pid = 0;
	}
	return p->exited;
}

bool itest_alive(itest_proc *p)
{
	return p && !reap(p, WNOHANG);
}

int itest_signal(itest_proc *p, int sig)
{
	if (!itest_alive(p))
		return ESRCH;
	return kill(p->pid, sig) == 0 ? 0 : errno;
}

int itest_wait_exit(itest_proc *p, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	while (!reap(p, WNOHANG)) {
		if (itest_now_ms() >= end)
			return ETIMEDOUT;
		itest_sleep_ms(5);
	}
	return 0;
}

/* State, parent and process group of the process /proc/<name> (a
 * directory entry of /proc); false when it is not one, or gone. */
static bool proc_stat(const char *name, char *state, int *ppid, int *pgrp)
{
	char path[300], buf[512], *close_paren;
	if (!isdigit((unsigned char)name[0]))
		return false;
	snprintf(path, sizeof path, "/proc/%s/stat", name);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* "pid (comm) state ppid pgrp ...", and comm may hold anything. */
	close_paren = strrchr(buf, ')');
	return close_paren &&
	       sscanf(close_paren + 1, " %c %d %d", state, ppid, pgrp) == 3;
}

bool itest_group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool alive = false;
	while (d && !alive && (de = readdir(d)) != NULL) {
		char state;
		int ppid, pgrp;
		alive = proc_stat(de->d_name, &state, &ppid, &pgrp) &&
		        pgrp == pgid && state != 'Z' && state != 'X';
	}
	if (d)
		closedir(d);
	return alive;
}

/* Every descendant of root, found through /proc, into a malloc'd array. */
static int descendants(pid_t root, pid_t **out, size_t *n)
{
	size_t cap = 256, np = 0;
	pid_t *pid = malloc(cap * sizeof *pid),
	      *ppid = malloc(cap * sizeof *ppid);
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && pid && ppid && (de = readdir(d)) != NULL) {
		char state;
		int parent, pgrp;
		if (!proc_stat(de->d_name, &state, &parent, &pgrp))
			continue;
		if (np == cap) {
			cap *= 2;
			pid_t *a = realloc(pid, cap * sizeof *a);
			pid_t *b = a ? realloc(ppid, cap * sizeof *b) : NULL;
			if (a)
				pid = a;
			if (b)
				ppid = b;
			if (!a || !b)
				break;
		}
		pid[np] = atoi(de->d_name);
		ppid[np++] = parent;
	}
	if (d)
		closedir(d);
	size_t found = 0;
	pid_t *res = pid && ppid ? malloc(np * sizeof *res + 1) : NULL;
	/* Breadth first: res grows while it is scanned; each process has one
	 * parent, so res never holds more than np entries. */
	for (size_t j = 0; res && j < np; j++)
		if (ppid[j] == root)
			res[found++] = pid[j];
	for (size_t scan = 0; res && scan < found; scan++)
		for (size_t j = 0; j < np; j++)
			if (ppid[j] == res[scan])
				res[found++] = pid[j];
	free(pid);
	free(ppid);
	if (!res)
		return ENOMEM;
	*out = res;
	*n = found;
	return 0;
}

int itest_kill_tree(itest_proc *p)
{
	pid_t *kids = NULL;
	size_t n = 0;
	if (!itest_alive(p))
		return 0;
	pid_t pid = p->pid;
	descendants(pid, &kids, &n);
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	for (size_t i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	free(kids);
	return itest_wait_exit(p, 10000);
}

void itest_dump_log(const itest_proc *p, int lines)
{
	char *text;
	if (itest_read_file(p->log, &text, NULL) != 0) {
		fprintf(stderr, "itest: (no log %s)\n", p->log);
		return;
	}
	char *start = text + strlen(text);
	for (int seen = 0; start > text; start--)
		if (start[-1] == '\n' && ++seen > lines)
			break;
	fprintf(stderr, "---- last %d lines of %s ----\n%s----\n", lines,
	    p->log, start);
	free(text);
}

/* ---- the environment of one test ---- */

static bool broker_died(void)
{
	itest_proc *b = live_env ? live_env->broker : NULL;
	if (!b || itest_alive(b))
		return false;
	fprintf(stderr, "itest: %s died unasked (wait status 0x%x)\n", b->name,
	    b->status);
	return true;
}

bool itest_broker_died(itest_env *e)
{
	return e == live_env && broker_died();
}

static void kill_all(itest_env *e, bool gently)
{
	pid_t *kids[ITEST_MAX_PROCS] = {0};
	size_t nkids[ITEST_MAX_PROCS] = {0};
	for (int i = 0; i < e->nprocs; i++) {
		itest_proc *p = &e->procs[i];
		if (!itest_alive(p))
			continue;
		descendants(p->pid, &kids[i], &nkids[i]);
		if (gently)
			kill(p->pid, SIGTERM);
	}
	uint64_t end = itest_now_ms() + (gently ? 3000 : 0);
	for (int i = 0; i < e->nprocs; i++) {
		itest_proc *p = &e->procs[i];
		while (gently && itest_alive(p) && itest_now_ms() < end)
			itest_sleep_ms(10);
		itest_kill_tree(p);
		/* Children that a process moved to their own group and left
		 * behind when it died. */
		for (size_t k = 0; k < nkids[i]; k++)
			kill(kids[i][k], SIGKILL);
		free(kids[i]);
	}
}

static void kill_at_exit(void)
{
	if (live_env)
		kill_all(live_env, false);
}

int itest_env_open(itest_env **out, const char *name)
{
	static bool registered;
	const char *tmp = getenv("TMPDIR");
	itest_env *e = calloc(1, sizeof *e);
	if (!e)
		return ENOMEM;
	int len = snprintf(e->dir, sizeof e->dir, "%s/nq-itest-%.40s-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp", name);
	if (len >= (int)sizeof e->dir) {
		fprintf(stderr, "itest: TMPDIR %s is too long\n", tmp);
		free(e);
		return ENAMETOOLONG;
	}
	if (!mkdtemp(e->dir)) {
		int rv = errno;
		fprintf(
		    stderr, "itest: mkdtemp %s: %s\n", e->dir, strerror(rv));
		free(e);
		return rv;
	}
	snprintf(e->data_dir, sizeof e->data_dir, "%s/data", e->dir);
	snprintf(e->api_url, sizeof e->api_url, "tcp://127.0.0.1:0");
	snprintf(e->work_url, sizeof e->work_url, "tcp://127.0.0.1:0");
	snprintf(e->results_url, sizeof e->results_url, "tcp://127.0.0.1:0");
	snprintf(e->events_url, sizeof e->events_url, "tcp://127.0.0.1:0");
	snprintf(e->http_addr, sizeof e->http_addr, "127.0.0.1:0");
	/* nq-dlq and the broker each dial the other, so one address must be
	 * known before either starts: a socket file in the test's dir, the
	 * same over restarts and shared with no other test. */
	snprintf(e->dlq_url, sizeof e->dlq_url, "ipc://%s/dlq.sock", e->dir);
	if (!registered) {
		atexit(kill_at_exit);
		registered = true;
	}
	live_env = e;
	*out = e;
	return 0;
}

static int rm_entry(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void itest_env_close(itest_env *e)
{
	if (!e)
		return;
	kill_all(e, true);
	for (size_t i = 0; i < e->nheld; i++)
		close(e->held[i]);
	for (size_t i = 0; i < e->npins; i++)
		close(e->pins[i]);
	if (e->passed) {
		nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	} else {
		for (int i = 0; i < e->nprocs; i++)
			itest_dump_log(&e->procs[i], 40);
		fprintf(stderr, "itest: files kept in %s\n", e->dir);
	}
	if (live_env == e)
		live_env = NULL;
	free(e);
}

void itest_pass(itest_env *e)
{
	e->passed = true;
}

int itest_setup(void **state)
{
	itest_env *e;
	int rv = itest_env_open(&e, program_invocation_short_name);
	if (rv == 0)
		*state = e;
	return rv;
}

int itest_teardown(void **state)
{
	itest_env_close(*state);
	*state = NULL;
	return 0;
}

/* ---- broker and workers ---- */

int itest_broker_wait_ready(itest_env *e, uint64_t timeout_ms)
{
	nq_client *c;
	/* A refused dial fails at once, whatever the timeout; a short one
	 * would give up on a dial that a loaded machine makes slowly, and
	 * nng 1.5.2 loses the dialer closed in the middle of its attempt
	 * (LeakSanitizer reports it). */
	int rv = itest_client(e, 5000, &c);
	if (rv)
		return rv;
	uint64_t end = itest_now_ms() + timeout_ms;
	for (;;) {
		nq_queue_stats *qs = NULL;
		size_t n = 0;
		rv = nq_stats(c, NULL, &qs, &n, NULL);
		nq_queue_stats_free(qs);
		if (rv == NQ_OK)
			break;
		if (e->broker && !itest_alive(e->broker)) {
			fprintf(stderr,
			    "itest: %s exited (status 0x%x) before "
			    "it was ready\n",
			    e->broker->name, e->broker->status);
			itest_dump_log(e->broker, 40);
			rv = ECHILD;
			break;
		}
		if (itest_now_ms() >= end) {
			fprintf(stderr,
			    "itest: broker at %s not ready after "
			    "%llu ms: %s\n",
			    e->api_url, (unsigned long long)timeout_ms,
			    nq_strerror(rv));
			rv = ETIMEDOUT;
			break;
		}
		itest_sleep_ms(50);
	}
	nq_client_close(c);
	return rv;
}

/* Copies the URL the ready file of p gives for name into out (len
 * bytes), when it has one. */
static void adopt(const itest_proc *p, const char *name, char *out, size_t len)
{
	char url[ITEST_URL_MAX];
	if (itest_bound_url(p, name, url, sizeof url) == 0)
		snprintf(out, len, "%s", url);
}

int itest_broker_spawn(
    itest_env *e, const char *const *flags, const char *const *extra_env)
{
	static int starts;
	const char *argv[64] = {ITEST_BROKER, "--api", e->api_url, "--work",
	    e->work_url, "--results", e->results_url, "--data-dir", e->data_dir,
	    "--log-level", "info", "--ready-file", NULL};
	size_t n = 12, ne = 3;
	char ev[300], http[300], dlq[300], name[32], ready[PATH_MAX];
	/* The first start pins the ports every restart binds again. */
	itest_pin_port(e, e->api_url, sizeof e->api_url);
	itest_pin_port(e, e->work_url, sizeof e->work_url);
	itest_pin_port(e, e->results_url, sizeof e->results_url);
	itest_pin_port(e, e->events_url, sizeof e->events_url);
	itest_pin_port(e, e->http_addr, sizeof e->http_addr);
	/* Through the environment, so that flags override them. */
	snprintf(ev, sizeof ev, "NQ_EVENTS=%s", e->events_url);
	snprintf(http, sizeof http, "NQ_HTTP=%s", e->http_addr);
	snprintf(dlq, sizeof dlq, "NQ_DLQ=%s", e->dlq_url);
	const char *env[16] = {ev, http, dlq};
	for (; extra_env && *extra_env && ne < 15; extra_env++)
		env[ne++] = *extra_env;
	snprintf(name, sizeof name, "broker.%d", ++starts);
	itest_path(e, name, ready, sizeof ready);
	strncat(ready, ".ready", sizeof ready - strlen(ready) - 1);
	argv[n++] = ready;
	for (; flags && *flags && n < 63; flags++)
		argv[n++] = *flags;
	if (e->broker && itest_alive(e->broker)) {
		fprintf(stderr, "itest: a broker already runs\n");
		return EBUSY;
	}
	int rv = itest_spawn(e, name, argv, env, &e->broker);
	if (rv == 0)
		rv = itest_wait_bound(e->broker, 20000);
	if (rv)
		return rv;
	/* A test's own flags may have said other ports. */
	adopt(e->broker, "api", e->api_url, sizeof e->api_url);
	adopt(e->broker, "work", e->work_url, sizeof e->work_url);
	adopt(e->broker, "results", e->results_url, sizeof e->results_url);
	adopt(e->broker, "events", e->events_url, sizeof e->events_url);
	adopt(e->broker, "http", e->http_addr, sizeof e->http_addr);
	return 0;
}

int itest_broker_start(itest_env *e, const char *const *flags)
{
	int rv = itest_broker_spawn(e, flags, NULL);
	return rv ? rv : itest_broker_wait_ready(e, 20000);
}

int itest_broker_stop(itest_env *e, int sig, int *status)
{
	itest_proc *p = e->broker;
	if (!p)
		return ESRCH;
	if (itest_alive(p))
		kill(p->pid, sig);
	int rv = itest_wait_exit(p, 20000);
	if (rv) {
		fprintf(stderr, "itest: %s still runs 20 s after signal %d\n",
		    p->name, sig);
		itest_kill_tree(p);
	}
	if (status)
		*status = p->status;
	e->broker = NULL;
	return rv;
}

int itest_worker_start(itest_env *e, const char *const *flags, itest_proc **out)
{
	static int starts;
	char work[ITEST_URL_MAX], results[ITEST_URL_MAX];
	const char *argv[64] = {ITEST_WORKER, "--work",
	    itest_dial_url(e, e->work_url, work, sizeof work), "--results",
	    itest_dial_url(e, e->results_url, results, sizeof results),
	    "--ready-file", NULL};
	const char *env[] = {"NQ_HTTP=127.0.0.1:0", NULL};
	size_t n = 6;
	char name[32], ready[PATH_MAX];
	if (itest_url_port(e->work_url) == 0)
		fprintf(stderr,
		    "itest: no broker has started yet, so the "
		    "worker dials where nothing listens (start the broker "
		    "first)\n");
	snprintf(name, sizeof name, "worker.%d", ++starts);
	itest_path(e, name, ready, sizeof ready);
	strncat(ready, ".ready", sizeof ready - strlen(ready) - 1);
	argv[n++] = ready;
	for (; flags && *flags && n < 63; flags++)
		argv[n++] = *flags;
	argv[n] = NULL;
	return itest_spawn(e, name, argv, env, out);
}

int itest_wait_bound(itest_proc *p, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	while (access(p->ready, F_OK) != 0) {
		if (!itest_alive(p)) {
			fprintf(stderr,
			    "itest: %s exited (status 0x%x) before it was "
			    "ready\n",
			    p->name, p->status);
			itest_dump_log(p, 40);
			return ECHILD;
		}
		if (itest_now_ms() >= end) {
			fprintf(stderr, "itest: %s wrote no %s in %llu ms\n",
			    p->name, p->ready, (unsigned long long)timeout_ms);
			return ETIMEDOUT;
		}
		itest_sleep_ms(10);
	}
	return 0;
}

int itest_bound_url(
    const itest_proc *p, const char *name, char *out, size_t len)
{
	char *text;
	size_t n = strlen(name);
	int rv = itest_read_file(p->ready, &text, NULL);
	if (rv)
		return rv;
	rv = ENOENT;
	for (char *line = text; *line; line += strcspn(line, "\n") + 1) {
		if (strncmp(line, name, n) == 0 && line[n] == '=') {
			snprintf(out, len, "%.*s",
			    (int)strcspn(line + n + 1, "\n"), line + n + 1);
			rv = 0;
			break;
		}
		if (!line[strcspn(line, "\n")])
			break;
	}
	free(text);
	return rv;
}

/* ---- nqctl ---- */

int itest_nqctl_argv(
    itest_env *e, uint64_t timeout_ms, const char *const *args, itest_run *run)
{
	return itest_tool_argv(e, ITEST_NQCTL, timeout_ms, args, run);
}

int itest_tool_argv(itest_env *e, const char *prog, uint64_t timeout_ms,
    const char *const *args, itest_run *run)
{
	const char *argv[64] = {prog};
	const char *name = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
	size_t n = 1;
	char out_path[PATH_MAX], err_path[PATH_MAX];
	pid_t pid;
	int st = 0, rv;
	for (; args && *args && n < 63; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	e->nruns++;
	snprintf(
	    out_path, sizeof out_path, "%s/nqctl.%d.out", e->dir, e->nruns);
	snprintf(
	    err_path, sizeof err_path, "%s/nqctl.%d.err", e->dir, e->nruns);
	memset(run, 0, sizeof *run);
	uint64_t start = itest_now_ms();
	if ((rv = spawn_raw(argv, NULL, out_path, err_path, &pid)) != 0)
		return rv;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (itest_now_ms() - start > timeout_ms) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fprintf(stderr,
			    "itest: %s run %d killed after %llu ms\n", name,
			    e->nruns, (unsigned long long)timeout_ms);
			break;
		}
		itest_sleep_ms(5);
	}
	run->elapsed_ms = itest_now_ms() - start;
	run->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (itest_read_file(out_path, &run->out, NULL) != 0)
		run->out = strdup("");
	if (itest_read_file(err_path, &run->err, NULL) != 0)
		run->err = strdup("");
	fprintf(stderr, "itest: %s", name);
	for (size_t i = 1; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, " -> exit %d\n", run->code);
	if (run->err && run->err[0])
		fprintf(stderr, "  stderr: %s", run->err);
	return run->out && run->err ? 0 : ENOMEM;
}

int itest_nqctl(itest_env *e, uint64_t timeout_ms, itest_run *run, ...)
{
	char none[ITEST_URL_MAX];
	const char *args[64] = {
	    "--api", itest_dial_url(e, e->api_url, none, sizeof none)};
	size_t n = 2;
	va_list ap;
	va_start(ap, run);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 63;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return itest_nqctl_argv(e, timeout_ms, args, run);
}

void itest_run_free(itest_run *run)
{
	free(run->out);
	free(run->err);
	run->out = run->err = NULL;
}

int itest_run_id(const itest_run *run, char id[NQ_ID_MAX])
{
	char word[NQ_ID_MAX] = "";
	if (sscanf(run->out, " %31s", word) != 1 || !itest_is_id(word)) {
		fprintf(
		    stderr, "itest: nqctl printed no job id: '%s'\n", run->out);
		return EINVAL;
	}
	memcpy(id, word, NQ_ID_MAX);
	return 0;
}

int itest_run_json(const itest_run *run, json_t **out)
{
	json_error_t err;
	json_t *j = json_loads(run->out, 0, &err);
	if (!j || !json_is_object(j)) {
		fprintf(stderr,
		    "itest: nqctl output is not one JSON object "
		    "(%s): %s\n",
		    err.text, run->out);
		json_decref(j);
		return EINVAL;
	}
	*out = j;
	return 0;
}

const char *itest_json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

long long itest_json_int(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* ---- libnq helpers ---- */

int itest_client(const itest_env *e, int timeout_ms, nq_client **out)
{
	nq_client_opts o = {
	    .api_url = e->api_url,
	    .work_url = e->work_url,
	    .results_url = e->results_url,
	    .timeout_ms = timeout_ms ? timeout_ms : 10000,
	};
	int rv = nq_client_open(out, &o);
	if (rv)
		fprintf(stderr, "itest: nq_client_open: %s\n", nq_strerror(rv));
	return rv;
}

int itest_enqueue(nq_client *c, const char *queue, const char *type,
    const char *payload, char id[NQ_ID_MAX])
{
	nq_job_spec s = {
	    .queue = queue,
	    .type = type,
	    .payload = payload,
	    .payload_len = payload ? strlen(payload) : 0,
	    .content_type = "text/plain",
	};
	bool dup;
	int rv = nq_enqueue(c, &s, id, &dup);
	if (rv)
		fprintf(stderr, "itest: enqueue %s/%s: %s (%s)\n", queue, type,
		    nq_err_name(rv), nq_client_last_error(c));
	return rv;
}

int itest_wait_state(nq_client *c, const char *id, nq_state state,
    uint64_t timeout_ms, nq_job **out)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	int rv;
	nq_state last = NQ_STATE_UNSPECIFIED;
	for (;;) {
		nq_job *j = NULL;
		rv = nq_get(c, id, &j);
		if (rv == NQ_OK) {
			last = nq_job_state(j);
			if (last == state) {
				if (out)
					*out = j;
				else
					nq_job_free(j);
				return 0;
			}
			nq_job_free(j);
		}
		if (itest_now_ms() >= end)
			break;
		itest_sleep_ms(20);
	}
	fprintf(stderr,
	    "itest: job %s not %s after %llu ms: last get %s, "
	    "state %s\n",
	    id, nq_state_name(state), (unsigned long long)timeout_ms,
	    nq_err_name(rv), nq_state_name(last));
	return ETIMEDOUT;
}

int itest_lease_one(
    nq_client *c, const char *queue, uint64_t lease_ms, nq_job **out)
{
	const char *const qs[] = {queue};
	char id[NQ_ID_MAX];
	nq_job **jobs = NULL;
	size_t n = 0;
	int rv = itest_enqueue(c, queue, "t", "x", id);
	if (rv == NQ_OK)
		rv = nq_fetch(c, "itest", qs, 1, 1, 5000, lease_ms, &jobs, &n);
	if (rv == NQ_OK && n != 1)
		rv = NQ_ENOTFOUND;
	if (rv != NQ_OK) {
		nq_jobs_free(jobs, n);
		return rv;
	}
	*out = jobs[0];
	free(jobs);
	return NQ_OK;
}

int itest_wait_gone(nq_client *c, const char *id, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	nq_job *j = NULL;
	int rv;
	while ((rv = nq_get(c, id, &j)) == NQ_OK && itest_now_ms() < end) {
		nq_job_free(j);
		j = NULL;
		itest_sleep_ms(50);
	}
	nq_job_free(j);
	if (rv == NQ_ENOTFOUND)
		return 0;
	fprintf(stderr, "itest: job %s still there after %llu ms (get %s)\n",
	    id, (unsigned long long)timeout_ms, nq_err_name(rv));
	return ETIMEDOUT;
}

/* Copies queue i's numbers; fails on a name libnq does not know. */
static int qstats_copy(const nq_queue_stats *qs, size_t i, itest_qstats *out)
{
	int rv = 0;
#define ITEST_GET_(name, kind, ...)                                            \
	NQI_QF_CORE_##kind(                                                    \
	    rv = rv ? rv : nq_queue_stats_get(qs, i, #name, &out->name);)
	NQI_QUEUE_FIELDS(ITEST_GET_)
#undef ITEST_GET_
	if (rv == 0)
		rv = nq_queue_stats_get(
		    qs, i, "oldest_ready_us", &out->oldest_ready_us);
	out->paused = nq_queue_stats_paused(qs, i);
	return rv;
}

int itest_queue_stats(
    nq_client *c, const char *queue, itest_qstats *out, nq_broker_stats *broker)
{
	nq_queue_stats *qs = NULL;
	size_t n = 0;
	int rv = nq_stats(c, NULL, &qs, &n, broker);
	if (rv) {
		fprintf(stderr, "itest: stats: %s (%s)\n", nq_err_name(rv),
		    nq_client_last_error(c));
		return rv;
	}
	memset(out, 0, sizeof *out);
	for (size_t i = 0; rv == 0 && i < n; i++)
		if (strcmp(nq_queue_stats_queue(qs, i), queue) == 0)
			rv = qstats_copy(qs, i, out);
	nq_queue_stats_free(qs);
	if (rv)
		fprintf(stderr, "itest: stats: a field libnq does not know\n");
	return rv;
}

int itest_write_file(const itest_env *e, const char *name, const char *text,
    char *out, size_t len)
{
	itest_path(e, name, out, len);
	FILE *f = fopen(out, "w");
	if (!f || fputs(text, f) < 0) {
		fprintf(stderr, "itest: cannot write %s\n", out);
		if (f)
			fclose(f);
		return EIO;
	}
	return fclose(f) == 0 ? 0 : EIO;
}

int itest_wait_log(
    const itest_proc *p, const char *needle, int count, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	int seen = 0;
	do {
		char *log = NULL;
		seen = 0;
		if (itest_read_file(p->log, &log, NULL) == 0) {
			for (const char *s = log; (s = strstr(s, needle)); s++)
				seen++;
			free(log);
		}
		if (seen >= count)
			return 0;
		itest_sleep_ms(20);
	} while (itest_now_ms() < end);
	fprintf(stderr, "itest: %s has %d x '%s' after %llu ms, wanted %d\n",
	    p->log, seen, needle, (unsigned long long)timeout_ms, count);
	return ETIMEDOUT;
}
