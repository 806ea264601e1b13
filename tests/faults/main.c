/* faultsim: dispatches to the subcommands described in faultsim.h. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    {"ports", fs_cmd_ports, "print N free loopback ports"},
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

/* A port the kernel just handed out for loopback; it stays free unless
 * someone else binds it before the services start, which the run script
 * notices as a service that does not come up. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int fs_cmd_ports(int argc, char **argv)
{
	int seen[64];
	char *end = NULL;
	unsigned long n = argc == 2 ? strtoul(argv[1], &end, 10) : 1;
	if (argc > 2 || (end && (*end || end == argv[1])))
		return fs_usage("ports", "usage: faultsim ports [N]");
	if (n == 0 || n > 64)
		return fs_usage("ports", "N must be 1 to 64, got %lu", n);
	for (size_t i = 0; i < n; i++) {
		int p = free_port();
		bool dup = false;
		for (size_t k = 0; k < i; k++)
			dup = dup || seen[k] == p;
		if (p <= 0 || dup) {
			if (p <= 0) {
				perror("faultsim ports");
				return 1;
			}
			i--;
			continue;
		}
		seen[i] = p;
		printf("%d%s", p, i + 1 < n ? " " : "\n");
	}
	return 0;
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
