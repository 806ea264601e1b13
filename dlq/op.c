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

Nq__V1__Status *dlq_status_new(dlq_op *op, int err, const char *msg)
{
	static const Nq__V1__Status init = NQ__V1__STATUS__INIT;
	size_t n = strlen(msg);
	Nq__V1__Status *s = nqi_arena_zalloc(&op->mem, sizeof *s);
	if (!s)
		return NULL;
	*s = init;
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	if (n == 0)
		return s;
	/* A message may quote a piece of the request cut at a byte count
	 * ('%.40s'), which can end inside a character, and strict decoders
	 * refuse a whole reply whose message is not UTF-8. Text is copied
	 * as it is. */
	uint8_t *text = nqi_arena_alloc(&op->mem, 3 * n + 1);
	if (!text)
		return NULL;
	text[nqi_text_repair((const uint8_t *)msg, n, text)] = '\0';
	s->message = (char *)text;
	return s;
}

void dlq_op_status(dlq_op *op, int err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	/* Without memory the request still must not look successful. */
	static Nq__V1__Status oom = {
	    PROTOBUF_C_MESSAGE_INIT(&nq__v1__status__descriptor),
	    NQ__V1__CODE__INTERNAL, (char *)"nq-dlq is out of memory"};
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	Nq__V1__Status *s = dlq_status_new(op, err, buf);
	op->reply.status = s ? s : &oom;
}

bool dlq_op_failed(const dlq_op *op)
{
	return op->reply.status && op->reply.status->code != 0;
}
