/* faultsim: dispatches to the subcommands described in faultsim.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultsim.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"load", fs_cmd_load, "enqueue unique values, note confirmations"},
    {"work", fs_cmd_work, "a recording worker on libnq's low-level API"},
    {"handle", fs_cmd_handle, "the recording command nq-worker runs"},
    {"drain", fs_cmd_drain, "wait for every confirmed job to end"},
    {"check", fs_cmd_check, "analyse the records of one scenario"},
    {"crowd", fs_cmd_crowd, "waiters, an unread client, idle HTTP"},
    {"sample", fs_cmd_sample, "the broker's leased and ready, every 10 ms"},
    {"workflows", fs_cmd_workflows, "batches and chains, worked and checked"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int usage(void)
{
	fprintf(stderr, "usage: faultsim COMMAND [flags]\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(
		    stderr, "  %-8s %s\n", commands[i].name, commands[i].help);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0)
		return usage();
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "faultsim: unknown command \"%s\"\n", argv[1]);
	return usage();
}
