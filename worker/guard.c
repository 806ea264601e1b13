/*
 * The guard: a small process, forked from nq-worker before any thread
 * exists, that ends the process groups of the commands still running when
 * nq-worker dies, however it dies. PR_SET_PDEATHSIG reaches only each
 * command's own /bin/sh; what that shell started (dash forks even the last
 * command of -c) would run on, re-parented to init, while the broker hands
 * the job to another worker.
 *
 * nq-worker tells the guard each group as it starts and ends, as one int32
 * per write on a pipe (+pgid, -pgid): a write that small is atomic. When
 * the pipe reaches its end, nq-worker is gone (its descriptors close even
 * on SIGKILL), and the guard sends SIGTERM to every group it still knows,
 * SIGKILL WORKER_KILL_GRACE_MS later to those with a process left, and
 * exits. It ignores the signals a terminal or a process manager sends to a
 * whole group, so that it stays until the worker has gone.
 *
 * The guard calls only async-signal-safe functions: correct after a fork
 * even if some library had started a thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

/* Between the checks for what is left after the SIGTERM. */
#define GUARD_POLL_MS 50

static void guard_ignore_signals(void)
{
	static const int sigs[] = {
	    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE};
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigset_t none;
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &ign, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Sends sig (0: none, a check) to every group that still exists; true when
 * one did. A group that exists holds its id, so the signal reaches no
 * stranger. */
static bool guard_signal(const pid_t *groups, size_t n, int sig)
{
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (kill(-groups[i], 0) == 0) {
			any = true;
			kill(-groups[i], sig);
		}
	return any;
}

/* Keeps the list of running groups until the pipe ends. */
static size_t guard_follow(int fd, pid_t *groups, size_t cap)
{
	size_t n = 0;
	int32_t rec;
	for (;;) {
		ssize_t got = read(fd, &rec, sizeof rec);
		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t)sizeof rec)
			return n; /* the end: nq-worker is gone */
		if (rec > 0 && n < cap) {
			groups[n++] = rec;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (groups[i] == -rec) {
				groups[i] = groups[--n];
				break;
			}
	}
}

static void guard_main(int fd, pid_t *groups, size_t cap)
{
	guard_ignore_signals();
	prctl(PR_SET_NAME, "nq-worker-guard");
	size_t n = guard_follow(fd, groups, cap);
	bool left = guard_signal(groups, n, SIGTERM);
	for (int ms = 0; left && ms < WORKER_KILL_GRACE_MS;
	     ms += GUARD_POLL_MS) {
		poll(NULL, 0, GUARD_POLL_MS);
		left = guard_signal(groups, n, 0);
	}
	/* Zombies keep a group existing: the signal is then harmless. */
	if (left)
		guard_signal(groups, n, SIGKILL);
	_exit(0);
}

int worker_guard_start(worker_guard *g, size_t cap)
{
	int fds[2];
	pid_t *groups = calloc(cap, sizeof *groups);
	g->fd = -1;
	g->pid = -1;
	if (!groups)
		return ENOMEM;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		int e = errno;
		free(groups);
		return e;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[1]);
		guard_main(fds[0], groups, cap);
	}
	int rv = pid < 0 ? errno : 0;
	free(groups);
	close(fds[0]);
	if (rv != 0) {
		close(fds[1]);
		return rv;
	}
	g->fd = fds[1];
	g->pid = pid;
	return 0;
}

void worker_guard_tell(worker_guard *g, pid_t pgid, bool running)
{
	int32_t rec = running ? (int32_t)pgid : -(int32_t)pgid;
	if (g->fd < 0)
		return;
	/* A guard that died (EPIPE) protects nothing more; say nothing. */
	while (write(g->fd, &rec, sizeof rec) < 0 && errno == EINTR)
		;
}

void worker_guard_stop(worker_guard *g)
{
	if (g->fd < 0)
		return;
	close(g->fd);
	while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
		;
	g->fd = -1;
	g->pid = -1;
}
