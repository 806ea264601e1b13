/* Setting a broker up and down, shared by nq-broker and the embedded
 * broker that tests and fuzzers drive without sockets or threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/rep.h"
#include "nqi/util.h"

#define STORE_SCHEMA 1

void broker_config_defaults(broker_config *c)
{

	*c = (broker_config){
	    .api_url = "tcp://127.0.0.1:7400",
	    .work_url = "tcp://127.0.0.1:7401",
	    .results_url = "tcp://127.0.0.1:7402",
	    .dlq_url = "tcp://127.0.0.1:7410",
	    .events_url = "tcp://127.0.0.1:7403",
	    .http_addr = "127.0.0.1:7480",
	    .blob_dir = "",
	    .data_dir = "./nq-data",
	    .sync = "always",
	    .log_level = "info",
	    .log_format = "text",
	    .max_payload = 256 * 1024,
	    .shard_number = -1,
	    .max_result = 1024 * 1024,
	    .map_size = 64ull << 30,
	    .result_ttl_ms = 10 * 60 * 1000,
	    .idempotency_window_ms = 24ull * 3600 * 1000,
	    .backoff_base_ms = 1000,
	    .backoff_cap_ms = 3600 * 1000,
	    .default_timeout_ms = 5 * 60 * 1000,
	    .lease_check_ms = 100,
	    .max_attempts = 10,
	    .max_depth = 0,
	    .api_contexts = 128,
	    .work_contexts = 256,
	    .max_parked = NQI_REP_MAX_PARKED,
	    .conn_requests = NQI_REP_CONN_REQUESTS,
	    .conn_backlog = NQI_REP_CONN_BACKLOG,
	    .reply_timeout_ms = NQI_REP_SEND_TIMEOUT_MS,
	    .max_connections = NQI_CONNCAP_DEFAULT,
	    .recv_budget = NQI_RECV_BUDGET_DEFAULT,
	    .conn_idle_ms = NQI_CONN_IDLE_MS_DEFAULT,
	};
}

void broker_init(broker *b)
{
	pthread_mutex_init(&b->in.mu, NULL);
	pthread_cond_init(&b->in.cv, NULL);
	broker_core_init(b);
	pthread_cond_init(&b->dlq.cv, NULL);
	pthread_mutex_init(&b->snap.mu, NULL);
	broker_reply_init(b);
	b->core.rng = nqi_random_u64();
	broker_policy_init(b);
	(void)broker_cron_init(b); /* none: no schedules run */
}

void broker_fini(broker *b)
{
	broker_cron_fini(b);
	broker_workers_free(b);
	broker_policy_fini(b);
	broker_index_fini(&b->core.index);
	broker_reply_fini(b);
	nqi_store_close(b->store);
	b->store = NULL;
	free(b->dlq.pend);
	free(b->snap.queues);
	free(b->dlq.group_dead);
	free(b->ev.list);
	free(b->core.dep_work);
	free(b->core.batches);
	nqi_auth_free(b->auth);
	b->auth = NULL;
	free(b->cfg.dlq_token);
	b->cfg.dlq_token = NULL;
	broker_blob_close(b);
	pthread_mutex_destroy(&b->in.mu);
	pthread_cond_destroy(&b->in.cv);
	pthread_cond_destroy(&b->dlq.cv);
	pthread_mutex_destroy(&b->snap.mu);
}

int broker_open_store(broker *b)
{
	char err[256] = "";
	const nqi_store_db dbs[] = {{"jobs", &b->db_jobs},
	    {"idem", &b->db_idem}, {"expiry", &b->db_expiry},
	    {"queues", &b->db_queues}, {"meta", &b->db_meta},
	    {"handoff", &b->db_handoff}, {"batches", &b->db_batches},
	    {NULL, NULL}};
	nqi_store_opts so = {
	    .dir = b->cfg.data_dir,
	    .sync = strcmp(b->cfg.sync, "always") == 0,
	    .map_size = b->cfg.map_size,
	    .dbs = dbs,
	    .schema_version = STORE_SCHEMA,
	};
	int rv = nqi_store_open(&b->store, &so, err, sizeof err);
	if (rv != 0) {
		nqi_error("NQ-STORE-OPEN-FAILED", NQI_S("dir", b->cfg.data_dir),
		    NQI_S("err", err));
		return rv;
	}
	return broker_blob_open(b);
}
