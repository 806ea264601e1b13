/* Ops and their scratch memory: everything a request's reply points at is
 * allocated in the op and freed with it, so replies need no deep frees. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/util.h"

dlq_op *dlq_op_alloc(dlq_op_kind kind)
{
	static const Nq__V1__Reply init = NQ__V1__REPLY__INIT;
	dlq_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->kind = kind;
	op->reply = init;
	nqi_arena_init(&op->mem, DLQ_MEM_BLOCK, 0);
	return op;
}

void dlq_op_free(dlq_op *op)
{
	if (!op)
		return;
	if (op->req)
		nq__v1__request__free_unpacked(op->req, NULL);
	nqi_arena_fini(&op->mem);
	free(op);
}

void dlq_op_status(dlq_op *op, int err, const char *fmt, ...)
{
	static const Nq__V1__Status init = NQ__V1__STATUS__INIT;
	char buf[512];
	va_list ap;
	/* Without memory the request still must not look successful. */
	static Nq__V1__Status oom = {
	    PROTOBUF_C_MESSAGE_INIT(&nq__v1__status__descriptor),
	    NQ__V1__CODE__INTERNAL, (char *)"nq-dlq is out of memory"};
	Nq__V1__Status *s = nqi_arena_zalloc(&op->mem, sizeof *s);
	if (!s) {
		op->reply.status = &oom;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	*s = init;
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	s->message = nqi_arena_strdup(&op->mem, buf);
	if (!s->message)
		s->message = (char *)protobuf_c_empty_string;
	op->reply.status = s;
}

bool dlq_op_failed(const dlq_op *op)
{
	return op->reply.status && op->reply.status->code != 0;
}
