/* A job from the wire as nqctl shows it: for the targets whose messages
 * carry jobs (Reply, Job, DeadJob), which a client reads from a broker or
 * an nq-dlq it cannot vouch for. */
#ifndef NQ_FUZZ_RENDER_H
#define NQ_FUZZ_RENDER_H

#include "nqi/codec.h"

/* Wraps pb as libnq does (taking ownership: pb is freed here), reads it
 * through every nq_job accessor and renders it as nqctl --json does; the
 * JSON must come out as text that reads back. */
void fuzz_render_job(Nq__V1__Job *pb);

#endif
