/* Ops and their scratch memory: everything a request's reply points at is
 * allocated in the op and freed with it, so replies need no deep frees. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/util.h"

struct dlq_mem_block {
	struct dlq_mem_block *next;
	max_align_t data[];
};

static void *mem_pb_alloc(void *arg, size_t len)
{
	return dlq_mem_alloc(arg, len);
}

static void mem_pb_free(void *arg, void *p)
{
	(void)arg;
	(void)p; /* freed with the op */
}

void dlq_mem_init(dlq_mem *m)
{
	m->head = NULL;
	m->pb.alloc = mem_pb_alloc;
	m->pb.free = mem_pb_free;
	m->pb.allocator_data = m;
}

void *dlq_mem_alloc(dlq_mem *m, size_t len)
{
	dlq_mem_block *b = calloc(1, sizeof *b + (len ? len : 1));
	if (!b)
		return NULL;
	b->next = m->head;
	m->head = b;
	return b->data;
}

char *dlq_mem_strdup(dlq_mem *m, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = dlq_mem_alloc(m, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void dlq_mem_fini(dlq_mem *m)
{
	while (m->head) {
		dlq_mem_block *next = m->head->next;
		free(m->head);
		m->head = next;
	}
}

dlq_op *dlq_op_alloc(dlq_op_kind kind)
{
	static const Nq__V1__Reply init = NQ__V1__REPLY__INIT;
	dlq_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->kind = kind;
	op->reply = init;
	dlq_mem_init(&op->mem);
	return op;
}

void dlq_op_free(dlq_op *op)
{
	if (!op)
		return;
	if (op->req)
		nq__v1__request__free_unpacked(op->req, NULL);
	dlq_mem_fini(&op->mem);
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
	Nq__V1__Status *s = dlq_mem_alloc(&op->mem, sizeof *s);
	if (!s) {
		op->reply.status = &oom;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	*s = init;
	s->code = (Nq__V1__Code)nqi_err_to_code(err);
	s->message = dlq_mem_strdup(&op->mem, buf);
	if (!s->message)
		s->message = (char *)protobuf_c_empty_string;
	op->reply.status = s;
}

bool dlq_op_failed(const dlq_op *op)
{
	return op->reply.status && op->reply.status->code != 0;
}
