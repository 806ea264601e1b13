#include "nqi/cli.h"

#include <limits.h>
#include <stdio.h>

#include "nqi/auth.h"
#include "nqi/url.h"

const char *nqi_cli_api_url(const nqi_cli_conn *c)
{
	return c->api_url && *c->api_url ? c->api_url : NQI_CLI_DEFAULT_API;
}

nq_client_opts nqi_cli_client_opts(const nqi_cli_conn *c, const char *token)
{
	return (nq_client_opts){
	    .api_url = c->api_url,
	    .work_url = c->work_url,
	    .results_url = c->results_url,
	    .brokers = c->brokers && *c->brokers ? c->brokers : NULL,
	    .token = token,
	    .timeout_ms =
	        c->timeout_ms > INT_MAX ? INT_MAX : (int)c->timeout_ms,
	    .tls_ca = c->tls_ca,
	    .tls_cert = c->tls_cert,
	    .tls_key = c->tls_key,
	    .tls_server_name = c->tls_server_name,
	};
}

const char *nqi_cli_check_urls(const nqi_cli_conn *c, char *why, size_t len)
{
	const nqi_url_flag urls[] = {
	    {"--api", c->api_url, false},
	    {"--work", c->work_url, false},
	    {"--results", c->results_url, false},
	};
	const char *bad =
	    nqi_url_check_flags(urls, sizeof urls / sizeof *urls, why, len);
	if (!bad && c->brokers && *c->brokers &&
	    nq_shard_map_check(c->brokers, why, len) != NQ_OK)
		bad = why;
	return bad;
}

int nqi_cli_read_token(
    const nqi_cli_conn *c, char **token, int *err, char *why, size_t len)
{
	char msg[256];
	*token = NULL;
	if (!c->token_file || !*c->token_file)
		return NQI_CONTINUE;
	*err = nqi_token_read(c->token_file, token, msg, sizeof msg);
	if (*err == NQ_OK)
		return NQI_CONTINUE;
	snprintf(why, len, "--token-file: %s", msg);
	return *err == NQ_ENOMEM ? NQI_EXIT_FAILED : NQI_EXIT_USAGE;
}
