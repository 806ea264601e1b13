/*
 * nqctl dlq: the operator commands of nq-dlq, spoken over its REP socket
 * (libnq has no DLQ API):
 *
 *   nqctl [--dlq URL] [--json] dlq list [--queue Q] [--type T] [--reason R]
 *         [--since T] [--limit N] [--before ID]
 *   nqctl dlq show ID
 *   nqctl dlq replay ID... | --all [--queue Q] [--rate N/s]
 *   nqctl dlq purge ID... | --all [--queue Q] [--older-than D]
 *   nqctl dlq stats
 *
 * The URL comes from --dlq (also accepted after "dlq"), else NQ_DLQ, else
 * tcp://127.0.0.1:7410.
 */
#ifndef NQCTL_DLQ_H
#define NQCTL_DLQ_H

#include "nqctl.h"

#define NQCTL_DLQ_SYNOPSIS "SUBCOMMAND [...]"
#define NQCTL_DLQ_SUMMARY                                                      \
	"Dead jobs in nq-dlq: list, show, replay, purge, stats."

/* Runs "dlq SUBCOMMAND ..." from argv[start] on; returns the exit status. */
int nqctl_dlq(nqctl *x, int argc, char **argv, int start);

#endif
