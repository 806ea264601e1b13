/*
 * nq-dlq's JSON API on its HTTP listener (/v1/dlq/...): each route becomes
 * the Request the REP socket takes and is served by the same lanes (see
 * common/src/http_api.c for the mapping).
 */
#include "dlq.h"
#include "nqi/http_api.h"

/* One row per route: method, path, Request member, the reply's field
 * answered alone, flags, the batch field, query aliases. */
static const nqi_api_route routes[] = {
    {"GET", "/v1/dlq/jobs", "dlq_list", NULL, 0, NULL, "before=before_id",
        NULL},
    {"GET", "/v1/dlq/jobs/{id}", "dlq_show", "job", 0, NULL, NULL, NULL},
    {"POST", "/v1/dlq/jobs/{id}/replay", "dlq_replay", NULL, 0, NULL, "id=ids",
        NULL},
    {"DELETE", "/v1/dlq/jobs/{id}", "dlq_purge", NULL, 0, NULL, "id=ids", NULL},
    {"POST", "/v1/dlq/replay", "dlq_replay", NULL, NQI_API_BODY, NULL, NULL,
        NULL},
    {"POST", "/v1/dlq/purge", "dlq_purge", NULL, NQI_API_BODY, NULL, NULL,
        NULL},
    {"GET", "/v1/dlq/stats", "dlq_stats", NULL, 0, NULL, NULL, NULL},
};

static void submit(
    void *arg, const uint8_t *buf, size_t len, nqi_api_call *call)
{
	dlq_request_in(arg, buf, len, nqi_api_done_msg, call);
}

void dlq_api_opts(dlq *d, nqi_http_opts *o)
{
	d->api = (nqi_api){routes, sizeof routes / sizeof *routes, submit, d};
	o->api_prefix = "/v1/";
	o->api_cb = nqi_api_serve;
	o->api_arg = &d->api;
	/* a replay or purge names ids: small bodies */
	o->api_body_max = 1u << 20;
}
