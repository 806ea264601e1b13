/*
 * The embedded broker: the core driven on the caller's thread, without
 * sockets, timers thread or handoff. Tests and fuzz targets feed it request
 * bytes exactly as the sockets would and get the reply bytes back. It never
 * parks a request: fetch and wait answer at once, as during shutdown.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "embed.h"
#include "nqi/util.h"

struct nq_embedded_broker {
	broker b;
};

int broker_embed_open(nq_embedded_broker **out, const char *data_dir)
{
	nq_embedded_broker *e = calloc(1, sizeof *e);
	if (!e)
		return NQ_ENOMEM;
	broker *b = &e->b;
	broker_config_defaults(&b->cfg);
	b->cfg.data_dir = data_dir;
	b->cfg.sync = "none";
	b->cfg.dlq_url = "";
	b->cfg.events_url = "";
	b->cfg.http_addr = "";
	b->cfg.map_size = 256u << 20;
	broker_init(b);
	int rv = broker_open_store(b);
	if (rv == 0)
		rv = broker_index_init(&b->core.index);
	if (rv == 0)
		rv = broker_recover(b, true);
	if (rv != 0) {
		broker_fini(b);
		free(e);
		return rv;
	}
	b->in.ready = true;
	b->in.stopping = true; /* answer at once instead of parking */
	*out = e;
	return NQ_OK;
}

broker_config *broker_embed_config(nq_embedded_broker *e)
{
	return &e->b.cfg;
}

void broker_embed_close(nq_embedded_broker *e)
{
	if (!e)
		return;
	broker_fini(&e->b);
	free(e);
}

/* Packs an error reply the way the net layer answers a refused request. */
static int refusal(int err, const char *why, uint8_t **out, size_t *len)
{
	Nq__V1__Reply r = NQ__V1__REPLY__INIT;
	Nq__V1__Status s = NQ__V1__STATUS__INIT;
	s.code = (Nq__V1__Code)nqi_err_to_code(err);
	s.message = (char *)why;
	r.status = &s;
	return nqi_buf_pack(&r.base, out, len);
}

int broker_embed_request(nq_embedded_broker *e, const void *buf, size_t len,
    bool work_socket, uint8_t **out, size_t *outlen)
{
	char why[160];
	int err;
	nqi_arena *arena;
	Nq__V1__Request *req = nqi_request_unpack_arena(buf, len, &arena);
	if (!req)
		return refusal(NQ_EINVAL, "malformed request", out, outlen);
	const char *bad =
	    broker_precheck(req, work_socket, &err, why, sizeof why);
	if (bad) {
		nqi_arena_free(arena);
		return refusal(err, bad, out, outlen);
	}
	broker_op *op = calloc(1, sizeof *op);
	nng_msg *msg = NULL;
	if (!op) {
		nqi_arena_free(arena);
		return NQ_ENOMEM;
	}
	op->kind = BROKER_OP_REQUEST;
	op->req = req;
	op->arena = arena;
	broker_op_prepack(&e->b, op);
	op->pipe_id = 1;
	op->capture = &msg;
	broker_run_group(&e->b, op);
	if (!msg)
		return NQ_ENOMEM;
	int rv = NQ_ENOMEM;
	uint8_t *copy = malloc(nng_msg_len(msg) ? nng_msg_len(msg) : 1);
	if (copy) {
		memcpy(copy, nng_msg_body(msg), nng_msg_len(msg));
		*out = copy;
		*outlen = nng_msg_len(msg);
		rv = NQ_OK;
	}
	nng_msg_free(msg);
	return rv;
}

int broker_embed_completions(nq_embedded_broker *e, const void *buf, size_t len)
{
	nqi_arena *arena;
	Nq__V1__CompletionBatch *batch =
	    nqi_completions_unpack_arena(buf, len, &arena);
	if (!batch)
		return NQ_EINVAL;
	broker_op *op = calloc(1, sizeof *op);
	if (!op) {
		nqi_arena_free(arena);
		return NQ_ENOMEM;
	}
	op->kind = BROKER_OP_COMPLETIONS;
	op->batch = batch;
	op->arena = arena;
	broker_run_group(&e->b, op);
	return NQ_OK;
}

int broker_embed_record_size(nq_embedded_broker *e, uint64_t id, size_t *size)
{
	MDB_txn *txn;
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {sizeof key, key}, v;
	int rv = nqi_store_begin(e->b.store, false, &txn);
	if (rv != 0)
		return rv;
	int rc = mdb_get(txn, e->b.db_jobs, &k, &v);
	*size = rc == 0 ? v.mv_size : 0;
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? NQ_ENOTFOUND : rc ? NQ_ESTORE : NQ_OK;
}
