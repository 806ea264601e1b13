/*
 * One command run: /bin/sh -c COMMAND in its own process group, the input
 * on stdin, stdout captured up to WORKER_OUTPUT_MAX, the last
 * WORKER_ERR_TAIL bytes of stderr kept, and the group killed at the
 * deadline (SIGTERM, then SIGKILL WORKER_KILL_GRACE_MS later). When the
 * command ends, whatever it left running in its group gets the same: a
 * job's processes never outlive the job.
 *
 * A job canceled meanwhile (nq_job_canceled, looked at every
 * STOP_CHECK_MS) gets the same as a deadline, SIGKILL following the
 * worker's --grace. Lines "progress PCT [NOTE]" the command writes to
 * descriptor WORKER_PROGRESS_FD become the job's progress.
 *
 * One poll() loop over stdin, stdout, stderr and a pidfd does all of it, so
 * a child that writes a lot before reading its input never deadlocks against
 * us, and waiting costs nothing: no busy loop, no SIGCHLD handler.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nqi/log.h"
#include "nqi/util.h"
#include "worker.h"

#define IO_CHUNK 16384
/* How often a running command's job is looked at for a cancel. */
#define STOP_CHECK_MS 100

typedef struct proc {
	pid_t pid;
	int pidfd;
	int in, out, err; /* our ends of the pipes; -1 once closed */
	int prog;         /* our end of the progress pipe; -1 once closed */
	const uint8_t *input;
	size_t input_len, input_off;
	uint64_t deadline_ms, kill_at_ms;
	bool term_sent, kill_sent, exited;
	worker_proc_result *res;
	const worker_proc_spec *spec;
	char line[WORKER_PROGRESS_LINE_MAX + 1]; /* a progress line so far */
	size_t line_len;
	bool line_long;  /* past WORKER_PROGRESS_LINE_MAX: skipped */
	bool bad_logged; /* one log line per job for bad progress lines */
} proc;

/* ---- the registry of running children ---- */

int worker_children_init(worker_children *c, size_t cap)
{
	memset(c, 0, sizeof *c);
	c->pids = calloc(cap, sizeof *c->pids);
	if (!c->pids)
		return ENOMEM;
	c->cap = cap;
	int rv = worker_guard_start(&c->guard, cap);
	if (rv != 0) {
		fprintf(stderr,
		    "nq-worker: cannot start the guard process: %s\n",
		    strerror(rv));
		free(c->pids);
		c->pids = NULL;
		return rv;
	}
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cv, NULL);
	return 0;
}

void worker_children_destroy(worker_children *c)
{
	worker_guard_stop(&c->guard);
	pthread_mutex_destroy(&c->mtx);
	pthread_cond_destroy(&c->cv);
	free(c->pids);
	c->pids = NULL;
}

/* The caller holds c->mtx. A child is removed before it is reaped, so a
 * signal sent under the lock never reaches a recycled process id. */
static void signal_locked(worker_children *c, int sig)
{
	for (size_t i = 0; i < c->n; i++)
		kill(-c->pids[i], sig);
}

void worker_children_signal(worker_children *c, int sig)
{
	pthread_mutex_lock(&c->mtx);
	signal_locked(c, sig);
	pthread_mutex_unlock(&c->mtx);
}

void worker_children_close(worker_children *c, int sig)
{
	pthread_mutex_lock(&c->mtx);
	c->closed = true;
	signal_locked(c, sig);
	pthread_mutex_unlock(&c->mtx);
}

bool worker_children_closed(worker_children *c)
{
	pthread_mutex_lock(&c->mtx);
	bool closed = c->closed;
	pthread_mutex_unlock(&c->mtx);
	return closed;
}

bool worker_children_wait_empty(worker_children *c, uint64_t timeout_ms)
{
	struct timespec until = nqi_realtime_in(timeout_ms);
	pthread_mutex_lock(&c->mtx);
	while (c->n > 0 &&
	       pthread_cond_timedwait(&c->cv, &c->mtx, &until) != ETIMEDOUT)
		;
	bool empty = c->n == 0;
	pthread_mutex_unlock(&c->mtx);
	return empty;
}

static void children_remove(worker_children *c, pid_t pid)
{
	pthread_mutex_lock(&c->mtx);
	for (size_t i = 0; i < c->n; i++) {
		if (c->pids[i] == pid) {
			c->pids[i] = c->pids[--c->n];
			break;
		}
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mtx);
}

/* The group is over, also what the command left in it: the guard need no
 * longer end it. Later than children_remove, so that a worker that dies
 * while end_group waits still has the rest ended. */
static void children_forget(worker_children *c, pid_t pgid)
{
	pthread_mutex_lock(&c->mtx);
	worker_guard_tell(&c->guard, pgid, false);
	pthread_mutex_unlock(&c->mtx);
}

/* ---- starting the child ---- */

/*
 * In the child, between fork and exec: only async-signal-safe calls. It
 * leads a new process group (so a timeout can kill everything it started),
 * gets the pipes as 0, 1, 2, the default signal mask and SIGPIPE back, and
 * no other descriptor: an inherited broker connection would outlive us.
 *
 * It also dies with the worker, even a SIGKILLed one, by PR_SET_PDEATHSIG,
 * so that the broker never hands its job to another worker while it still
 * runs here. The kernel sends that signal when the forking *thread* ends:
 * ours waits in worker_proc_run until the child has exited, so it always
 * outlives it. A worker that died before the prctl is seen by getppid.
 */
static void child_exec(char *const argv[], char *const envp[], const int fds[4],
    const sigset_t *mask, pid_t parent, const struct rlimit *nofile)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	static const char msg[] = "nq-worker: cannot run /bin/sh\n";
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	/* The descriptor limit nq-worker was started with: its own raised
	 * one is for itself, and some programs still use select(). */
	if (nofile->rlim_cur)
		setrlimit(RLIMIT_NOFILE, nofile);
	sigaction(SIGPIPE, &dfl, NULL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	for (int fd = 0; fd < 3; fd++)
		if (dup2(fds[fd], fd) < 0)
			_exit(127);
	/* dup2 onto itself would keep close-on-exec */
	if (fds[3] == WORKER_PROGRESS_FD
	        ? fcntl(WORKER_PROGRESS_FD, F_SETFD, 0) < 0
	        : dup2(fds[3], WORKER_PROGRESS_FD) < 0)
		_exit(127);
	if (syscall(SYS_close_range, WORKER_PROGRESS_FD + 1, ~0u, 0) != 0)
		for (int fd = WORKER_PROGRESS_FD + 1; fd < 65536; fd++)
			close(fd);
	execve("/bin/sh", argv, envp);
	/* The message lands in the stderr tail, and so in the job's error. */
	ssize_t told = write(2, msg, sizeof msg - 1);
	(void)told;
	_exit(127);
}

/* Forks under the registry lock, so that a stopping worker either sees the
 * child in the registry or refuses to start it. */
static int spawn(const worker_proc_spec *spec, const int fds[4], pid_t *pid)
{
	char *argv[] = {"sh", "-c", (char *)spec->command, NULL};
	pid_t self = getpid();
	sigset_t none;
	worker_children *c = spec->children;
	int rv = 0;
	sigemptyset(&none);
	pthread_mutex_lock(&c->mtx);
	if (c->closed) {
		rv = ECANCELED;
	} else if (c->n == c->cap) {
		rv = EAGAIN; /* more commands than slots: a bug, not a stop */
	} else if ((*pid = fork()) == 0) {
		child_exec(argv, spec->envp, fds, &none, self, &c->nofile);
	} else if (*pid < 0) {
		rv = errno;
	} else {
		/* Also here: the parent must not signal the group before
		 * the child has made it. */
		setpgid(*pid, *pid);
		c->pids[c->n++] = *pid;
		worker_guard_tell(&c->guard, *pid, true);
	}
	pthread_mutex_unlock(&c->mtx);
	return rv;
}

/* Pipes for stdin, stdout, stderr and progress: the child's ends in
 * child[], ours (non-blocking) in p. Close-on-exec, so that a command
 * started meanwhile by another slot does not hold them open. */
static int make_pipes(proc *p, int child[4])
{
	int fds[4][2];
	for (int i = 0; i < 4; i++) {
		if (pipe2(fds[i], O_CLOEXEC) == 0)
			continue;
		int e = errno;
		while (i-- > 0) {
			close(fds[i][0]);
			close(fds[i][1]);
		}
		return e;
	}
	child[0] = fds[0][0];
	p->in = fds[0][1];
	child[1] = fds[1][1];
	p->out = fds[1][0];
	child[2] = fds[2][1];
	p->err = fds[2][0];
	child[3] = fds[3][1];
	p->prog = fds[3][0];
	fcntl(p->in, F_SETFL, O_NONBLOCK);
	fcntl(p->out, F_SETFL, O_NONBLOCK);
	fcntl(p->err, F_SETFL, O_NONBLOCK);
	fcntl(p->prog, F_SETFL, O_NONBLOCK);
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the I/O loop ---- */

static void write_input(proc *p)
{
	size_t left = p->input_len - p->input_off;
	ssize_t n = write(
	    p->in, p->input + p->input_off, left < IO_CHUNK ? left : IO_CHUNK);
	if (n > 0)
		p->input_off += (size_t)n;
	else if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* All written, or EPIPE: the command does not read its input. */
	if (n <= 0 || p->input_off == p->input_len)
		close_fd(&p->in);
}

static void keep_output(proc *p, const uint8_t *buf, size_t n)
{
	worker_proc_result *r = p->res;
	size_t room = WORKER_OUTPUT_MAX - r->output_len;
	if (n > room)
		r->too_large = true;
	memcpy(r->output + r->output_len, buf, n < room ? n : room);
	r->output_len += n < room ? n : room;
}

static void keep_err_tail(proc *p, const uint8_t *buf, size_t n)
{
	worker_proc_result *r = p->res;
	if (n >= WORKER_ERR_TAIL) {
		memcpy(r->err_tail, buf + n - WORKER_ERR_TAIL, WORKER_ERR_TAIL);
		r->err_len = WORKER_ERR_TAIL;
	} else {
		size_t drop = r->err_len + n > WORKER_ERR_TAIL
		                  ? r->err_len + n - WORKER_ERR_TAIL
		                  : 0;
		memmove(r->err_tail, r->err_tail + drop, r->err_len - drop);
		memcpy(r->err_tail + r->err_len - drop, buf, n);
		r->err_len += n - drop;
	}
	r->err_tail[r->err_len] = '\0';
}

/* One read from stdout or stderr. Returns the bytes read; 0 when nothing is
 * there now, or at the end (which closes *fd). */
static size_t read_pipe(proc *p, int *fd, bool is_out)
{
	uint8_t buf[IO_CHUNK];
	ssize_t n = read(*fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		close_fd(fd);
		return 0;
	}
	if (is_out)
		keep_output(p, buf, (size_t)n);
	else
		keep_err_tail(p, buf, (size_t)n);
	return (size_t)n;
}

/* Reads what is in the pipe now, at most about budget bytes. */
static void drain(proc *p, int *fd, bool is_out, size_t budget)
{
	size_t n;
	while (*fd >= 0 && budget > 0 && (n = read_pipe(p, fd, is_out)) > 0)
		budget -= n < budget ? n : budget;
	close_fd(fd);
}

/* A line that is not "progress PCT [NOTE]" (PCT 0 to 100) is ignored;
 * the first of a job is logged. */
static void progress_bad(proc *p)
{
	if (p->bad_logged)
		return;
	p->bad_logged = true;
	nqi_warn("NQ-PROGRESS-IGNORED", NQI_S("id", nq_job_id(p->spec->job)),
	    NQI_S("why", "a line on NQ_PROGRESS_FD is not \"progress PCT "
	                 "[NOTE]\" with PCT 0 to 100"));
}

static void progress_line(proc *p, char *line)
{
	char *end;
	size_t n = strlen(line);
	if (n && line[n - 1] == '\r')
		line[--n] = '\0';
	if (strncmp(line, "progress ", 9) != 0 || line[9] < '0' ||
	    line[9] > '9') {
		progress_bad(p);
		return;
	}
	unsigned long pct = strtoul(line + 9, &end, 10);
	if (pct > 100 || (*end && *end != ' ')) {
		progress_bad(p);
		return;
	}
	nq_job_progress(p->spec->job, (unsigned)pct, *end ? end + 1 : "");
}

/* One read from the progress pipe, split in lines; returns the bytes
 * read (0: none now, or the end, which closes it). */
static size_t read_progress(proc *p)
{
	char buf[IO_CHUNK];
	ssize_t n = read(p->prog, buf, sizeof buf);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			close_fd(&p->prog);
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (p->line_len < WORKER_PROGRESS_LINE_MAX)
				p->line[p->line_len++] = buf[i];
			else
				p->line_long = true;
			continue;
		}
		p->line[p->line_len] = '\0';
		if (p->line_long)
			progress_bad(p);
		else if (p->spec->job)
			progress_line(p, p->line);
		p->line_len = 0;
		p->line_long = false;
	}
	return (size_t)n;
}

/* True when /proc/<pid>/stat names a live process (not a zombie) of
 * process group pgid. */
static bool live_in_group(const char *pid, pid_t pgid)
{
	char path[300], buf[512], *end, state;
	int pgrp;
	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false; /* gone meanwhile */
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp ...", and comm may hold anything. */
	return (end = strrchr(buf, ')')) &&
	       sscanf(end + 1, " %c %*d %d", &state, &pgrp) == 2 &&
	       pgrp == pgid && state != 'Z' && state != 'X';
}

/* True when a process other than a zombie is in process group pgid. The
 * scan of /proc runs only when kill() says the group exists: zombies keep
 * it existing until init reaps them, and some inits never do. */
static bool group_alive(pid_t pgid)
{
	DIR *d;
	struct dirent *de;
	bool alive = false;
	if (kill(-pgid, 0) != 0 || !(d = opendir("/proc")))
		return false;
	while (!alive && (de = readdir(d)))
		alive = de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
		        live_in_group(de->d_name, pgid);
	closedir(d);
	return alive;
}

/*
 * Ends what the command left running in its group, once the command itself
 * has been reaped: SIGTERM went out before (see reap); SIGKILL follows
 * WORKER_KILL_GRACE_MS later to whatever is still there. The common case,
 * an empty group, costs one kill(). Blocks for at most the grace period.
 */
static void end_group(pid_t pgid)
{
	uint64_t until = nqi_mono_ms() + WORKER_KILL_GRACE_MS;
	useconds_t pause_us = 2000;
	while (group_alive(pgid)) {
		if (nqi_mono_ms() >= until) {
			kill(-pgid, SIGKILL);
			return;
		}
		/* Soon at first (a SIGTERM ends most processes at once), then
		 * seldom: each check reads all of /proc. */
		usleep(pause_us);
		pause_us = pause_us < 100000 ? pause_us * 2 : pause_us;
	}
}

/*
 * The child has exited: take it out of the registry (before reaping, so no
 * signal can reach a recycled id), reap it, and keep what it wrote that is
 * still in the pipes. A background process it left behind may hold the
 * pipes open; its later output is not waited for, and it is ended with the
 * job. The SIGTERM goes out before the reap, while the unreaped child still
 * holds its group id; after the reap, the id stays taken only as long as a
 * process is left in the group, which end_group checks before each signal.
 */
static void reap(proc *p, worker_children *c)
{
	kill(-p->pid, SIGTERM);
	children_remove(c, p->pid);
	while (waitpid(p->pid, &p->res->status, 0) < 0 && errno == EINTR)
		;
	p->exited = true;
	close_fd(&p->in);
	drain(p, &p->out, true, WORKER_OUTPUT_MAX + IO_CHUNK);
	drain(p, &p->err, false, WORKER_OUTPUT_MAX);
	/* What is in the progress pipe now, bounded like the output. */
	for (size_t n = 0, k = 1; p->prog >= 0 && k && n < WORKER_OUTPUT_MAX;
	     n += k)
		k = read_progress(p);
	close_fd(&p->prog);
	end_group(p->pid);
	children_forget(c, p->pid);
}

/* Milliseconds until the next thing to do at a given time; -1: none. A
 * job's command is looked at for a cancel every STOP_CHECK_MS. */
static int next_timeout(const proc *p, uint64_t now)
{
	uint64_t at = p->deadline_ms;
	if (p->kill_sent)
		return -1;
	if (p->term_sent)
		at = p->kill_at_ms;
	else if (p->spec->job && at > now + STOP_CHECK_MS)
		at = now + STOP_CHECK_MS;
	if (at <= now)
		return 0;
	return at - now > INT_MAX ? INT_MAX : (int)(at - now);
}

/* A canceled job: its command ends as at a deadline, SIGKILL following
 * the worker's grace. */
static void check_stop(proc *p, uint64_t now)
{
	if (p->term_sent || !p->spec->job || !nq_job_canceled(p->spec->job))
		return;
	kill(-p->pid, SIGTERM);
	p->term_sent = true;
	p->res->stopped = true;
	p->kill_at_ms = now + p->spec->grace_ms;
}

/* SIGTERM to the group at the deadline, SIGKILL a grace period later. */
static void on_timer(proc *p, uint64_t now)
{
	check_stop(p, now);
	if (!p->term_sent && now >= p->deadline_ms) {
		kill(-p->pid, SIGTERM);
		p->term_sent = true;
		p->res->timed_out = true;
		p->kill_at_ms = now + WORKER_KILL_GRACE_MS;
	} else if (p->term_sent && !p->kill_sent && now >= p->kill_at_ms) {
		kill(-p->pid, SIGKILL);
		p->kill_sent = true;
	}
}

static void io_loop(proc *p, worker_children *c)
{
	while (!p->exited) {
		struct pollfd fds[5];
		int *owner[4] = {&p->in, &p->out, &p->err, &p->prog};
		nfds_t n = 0;
		int slot[4];
		for (int i = 0; i < 4; i++) {
			slot[i] = -1;
			if (*owner[i] < 0)
				continue;
			fds[n] =
			    (struct pollfd){*owner[i], i ? POLLIN : POLLOUT, 0};
			slot[i] = (int)n++;
		}
		fds[n] = (struct pollfd){p->pidfd, POLLIN, 0};
		int rc = poll(fds, n + 1, next_timeout(p, nqi_mono_ms()));
		if (rc < 0 && errno != EINTR) {
			/* Nothing left to wait with: end the command. */
			kill(-p->pid, SIGKILL);
			reap(p, c);
			return;
		}
		if (rc > 0 && slot[0] >= 0 && fds[slot[0]].revents)
			write_input(p);
		if (rc > 0 && slot[1] >= 0 && fds[slot[1]].revents)
			read_pipe(p, &p->out, true);
		if (rc > 0 && slot[2] >= 0 && fds[slot[2]].revents)
			read_pipe(p, &p->err, false);
		if (rc > 0 && slot[3] >= 0 && fds[slot[3]].revents)
			read_progress(p);
		if (rc > 0 && fds[n].revents)
			reap(p, c);
		else
			on_timer(p, nqi_mono_ms());
	}
}

/* Deadlines past this are as good as none, and cannot overflow. */
#define TIMEOUT_MAX_MS (30ull * 86400 * 1000)

int worker_proc_run(const worker_proc_spec *spec, worker_proc_result *res)
{
	proc p = {.in = -1,
	    .out = -1,
	    .err = -1,
	    .prog = -1,
	    .spec = spec,
	    .pidfd = -1,
	    .input = spec->input,
	    .input_len = spec->input_len,
	    .res = res};
	int child[4] = {-1, -1, -1, -1}, rv;
	memset(res, 0, sizeof *res);
	if (!(res->output = malloc(WORKER_OUTPUT_MAX)))
		return ENOMEM;
	if ((rv = make_pipes(&p, child)) != 0)
		goto out;
	rv = spawn(spec, child, &p.pid);
	for (int i = 0; i < 4; i++)
		close(child[i]);
	if (rv != 0)
		goto out;
	p.deadline_ms = nqi_mono_ms() + (spec->timeout_ms < TIMEOUT_MAX_MS
	                                        ? spec->timeout_ms
	                                        : TIMEOUT_MAX_MS);
	p.pidfd = (int)syscall(SYS_pidfd_open, p.pid, 0);
	if (p.pidfd < 0) {
		/* Without a pidfd there is no way to wait with the pipes:
		 * end the command rather than run it blind. */
		rv = errno;
		kill(-p.pid, SIGKILL);
		reap(&p, spec->children);
		goto out;
	}
	if (p.input_len == 0)
		close_fd(&p.in);
	io_loop(&p, spec->children);
out:
	close_fd(&p.in);
	close_fd(&p.out);
	close_fd(&p.err);
	close_fd(&p.prog);
	close_fd(&p.pidfd);
	if (rv != 0) {
		free(res->output);
		res->output = NULL;
	}
	return rv;
}
