/*
 * nq-dlq's JSON API on its HTTP listener (/v1/dlq/...): each route becomes
 * the Request the REP socket takes and is served by the same lanes (see
 * common/src/http_api.c for the mapping and the routes, which the broker
 * serves too).
 */
#include "dlq.h"
#include "nqi/http_api.h"

static void submit(
    void *arg, const uint8_t *buf, size_t len, nqi_api_call *call)
{
	dlq_request_in(arg, buf, len, nqi_api_done_msg, call);
}

void dlq_api_opts(dlq *d, nqi_http_opts *o)
{
	d->api = (nqi_api){nqi_api_dlq_routes, nqi_api_dlq_nroutes, submit, d};
	o->api_prefix = "/v1/";
	o->api_cb = nqi_api_serve;
	o->api_arg = &d->api;
	/* a replay or purge names ids: small bodies */
	o->api_body_max = 1u << 20;
}
