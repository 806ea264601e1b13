/*
 * What nq's command-line tools (nqctl, nq-bench) share: their exit
 * statuses, the flags that say how to reach the broker, and the client
 * options those make.
 */
#ifndef NQI_CLI_H
#define NQI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nq/nq.h"
#include "nqi/opts.h"

/* Exit statuses (DESIGN.md, "Command line"). */
enum {
	NQI_EXIT_OK = 0,
	NQI_EXIT_FAILED = 1,      /* the operation failed */
	NQI_EXIT_USAGE = 2,       /* bad command line, a wrong address too */
	NQI_EXIT_UNREACHABLE = 3, /* no connection, or no answer in time */
	NQI_CONTINUE = -1,        /* not an exit status: go on */
};

/* The exit statuses as --help lists them (README.md, "nqctl"). */
#define NQI_EXIT_HELP                                                          \
	"Exit status: 0 ok; 1 the operation failed (also when the service "    \
	"answered that\nit cannot serve now, e.g. its disk is full); 2 usage " \
	"error (also an address nq\ncannot dial: http://, no port, a port "    \
	"outside 1-65535); 3 the service could not\nbe reached (no "           \
	"connection, or no answer within --timeout).\n"

#define NQI_CLI_DEFAULT_API "tcp://127.0.0.1:7400"

/* How to reach the broker, as given; also read from NQ_<FLAG>. */
typedef struct nqi_cli_conn {
	const char *api_url;
	const char *work_url;
	const char *results_url;
	const char *brokers; /* a shard map: replaces the three URLs */
	const char *token_file;
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_server_name;
	uint64_t timeout_ms; /* per request; 0: libnq's default */
} nqi_cli_conn;

/* The rows of those flags in a tool's nqi_opt table. */
#define NQI_CLI_CONN_NOPTS 10
#define NQI_CLI_CONN_OPTS(c)                                                   \
	NQI_OPT("api", STR, &(c)->api_url,                                     \
	    "broker api socket (" NQI_CLI_DEFAULT_API ")"),                    \
	    NQI_OPT("work", STR, &(c)->work_url,                               \
	        "broker work socket (tcp://127.0.0.1:7401)"),                  \
	    NQI_OPT("results", STR, &(c)->results_url,                         \
	        "broker results socket (tcp://127.0.0.1:7402)"),               \
	    NQI_OPT("brokers", STR, &(c)->brokers,                             \
	        "shard map in place of --api, --work and --results: "          \
	        "NAME=URL,... (each broker's api URL) or a file"),             \
	    NQI_OPT("token-file", STR, &(c)->token_file,                       \
	        "file holding the access token (its first line), or "          \
	        "env:NAME"),                                                   \
	    NQI_OPT("tls-ca", STR, &(c)->tls_ca,                               \
	        "CA certificate that verifies tls+tcp:// servers"),            \
	    NQI_OPT("tls-cert", STR, &(c)->tls_cert,                           \
	        "client certificate to present"),                              \
	    NQI_OPT("tls-key", STR, &(c)->tls_key,                             \
	        "key of the client certificate"),                              \
	    NQI_OPT("tls-server-name", STR, &(c)->tls_server_name,             \
	        "name the server certificate must carry"),                     \
	    NQI_OPT("timeout", DURATION, &(c)->timeout_ms,                     \
	        "longest wait for a reply to one request (10s)")

/* The api URL given, or the default. */
const char *nqi_cli_api_url(const nqi_cli_conn *c);
/* The client options of c, with token (may be NULL). */
nq_client_opts nqi_cli_client_opts(const nqi_cli_conn *c, const char *token);
/* NULL when every broker URL given is one nq can dial, else why, naming
 * the flag (nqi_url_check_flags), in why (len bytes). */
const char *nqi_cli_check_urls(const nqi_cli_conn *c, char *why, size_t len);
/*
 * Reads --token-file (a file or env:NAME) into *token (malloc'd; NULL
 * when no file is given). Returns NQI_CONTINUE, or the exit status with
 * the reason in why and the error in *err: NQI_EXIT_USAGE for a file
 * that cannot be read, NQI_EXIT_FAILED when memory ran out.
 */
int nqi_cli_read_token(
    const nqi_cli_conn *c, char **token, int *err, char *why, size_t len);

#endif
