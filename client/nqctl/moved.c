/*
 * Commands that moved out of nqctl. Each says on one line where it went and
 * exits 2, so that a script still calling it fails instead of doing
 * something else.
 */
#include <stdio.h>

#include "nqctl.h"

int nqctl_bench_moved(nqctl *x, int argc, char **argv, int start)
{
	fprintf(stderr, "nqctl: bench is a program of its own now: run "
	                "nq-bench with the same flags (nq-bench --help)\n");
	return NQI_EXIT_USAGE;
}
