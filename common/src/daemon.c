#include "nqi/daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "nqi/log.h"

static void usage(const nqi_daemon_spec *d, FILE *f, const nqi_opt *o, size_t n)
{
	fprintf(f,
	    "%s\nEvery flag also reads from NQ_<FLAG>, e.g. "
	    "NQ_DATA_DIR.\n",
	    d->usage);
	nqi_opts_usage(o, n, f);
}

int nqi_daemon_configure(const nqi_daemon_spec *d, const nqi_opt *o, size_t n,
    int argc, char **argv, nqi_strlist *keep)
{
	char err[256];
	int next;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(d, stdout, o, n);
			return -1;
		}
	}
	const char *file = nqi_opts_peek(argc, argv, "config");
	if (file && nqi_opts_load_file(o, n, file, keep, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", d->prog, err);
		return 2;
	}
	if (nqi_opts_parse(o, n, argc, argv, 1, true, &next, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", d->prog, err);
		usage(d, stderr, o, n);
		return 2;
	}
	const char *bad =
	    next < argc ? "unexpected argument" : d->check(d->arg);
	if (bad) {
		fprintf(stderr, "%s: %s%s%s\n", d->prog, bad,
		    next < argc ? " " : "", next < argc ? argv[next] : "");
		return 2;
	}
	char desc[2048];
	nqi_opts_describe(o, n, desc, sizeof desc);
	nqi_info(d->msgid, "%s", desc);
	return 0;
}

void nqi_signals_block(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int nqi_signals_wait(void)
{
	sigset_t set;
	int sig = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
	return sig;
}
