/*
 * The embedded broker (from the nq_broker library): the broker's core on
 * the caller's thread, with a store in data_dir and no sockets. For tests
 * and fuzz targets that must reach every request handler with arbitrary
 * bytes. Not thread-safe; one caller at a time.
 */
#ifndef BROKER_EMBED_H
#define BROKER_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nq_embedded_broker nq_embedded_broker;
struct broker_config;

int broker_embed_open(nq_embedded_broker **out, const char *data_dir);
void broker_embed_close(nq_embedded_broker *e);
/* Feeds request bytes as the api socket (work_socket false) or the work
 * socket would receive them; *out is the packed Reply (malloc'd). */
int broker_embed_request(nq_embedded_broker *e, const void *buf, size_t len,
    bool work_socket, uint8_t **out, size_t *outlen);
/* Feeds a CompletionBatch as the results socket would; NQ_EINVAL when the
 * bytes do not decode. */
int broker_embed_completions(
    nq_embedded_broker *e, const void *buf, size_t len);
/* Its settings (broker.h), which a test may change between requests. */
struct broker_config *broker_embed_config(nq_embedded_broker *e);
/* The size of job id's record as stored, room included: NQ_ENOTFOUND. */
int broker_embed_record_size(nq_embedded_broker *e, uint64_t id, size_t *size);

#endif
