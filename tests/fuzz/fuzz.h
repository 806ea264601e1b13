/*
 * Shared by the fuzz targets. Each target is one LLVMFuzzerTestOneInput in
 * fuzz_<name>.c, linked either with libFuzzer (clang, NQ_FUZZ=ON) or with
 * replay.c's main(), which runs saved inputs through it under any compiler.
 * A target must never fail quietly: a broken invariant aborts, which both
 * libFuzzer and ctest report as a crash.
 */
#ifndef NQ_FUZZ_H
#define NQ_FUZZ_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts, naming the file and line, when cond is false. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__FILE__, __LINE__, #cond);                  \
	} while (0)

void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/*
 * Inputs that carry several messages are records: a 2-byte little-endian
 * length, then that many bytes (fewer when the input ends first). A record
 * layout lets the fuzzer build sequences (enqueue, then fetch, then
 * complete) out of single messages it already knows.
 */
typedef struct fuzz_records {
	const uint8_t *p;
	size_t n;
} fuzz_records;

/* Next record; false at the end of the input. */
bool fuzz_record_next(fuzz_records *r, const uint8_t **rec, size_t *len);

/* A fresh private directory under $TMPDIR (or /tmp) whose name starts with
 * tag; aborts when none can be made. The caller frees it with
 * fuzz_tempdir_remove, which deletes the files in it (no subdirectories)
 * and the directory. */
char *fuzz_tempdir(const char *tag);
void fuzz_tempdir_remove(char *dir);

/*
 * Unpacks data as the message of descriptor d, as nq accepts it (see
 * nqi_pb_wellformed), and checks that protobuf-c is stable on it: packing
 * the result and unpacking that again gives the same bytes once more, so
 * anything nq takes in can be stored and read back. Returns the first
 * unpacked message (free it with protobuf_c_message_free_unpacked), or
 * NULL when nq would refuse the bytes. It also checks that the one-pass
 * decoder (nqi_pb_unpack_fast) takes none of the bytes nq refuses and
 * decodes the rest to the same message.
 */
ProtobufCMessage *fuzz_unpack_stable(
    const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size);

/* With NQ_FUZZ_TRACE set in the environment, the stateful targets print
 * each reply's status to stderr: for reading what an input does. */
void fuzz_trace_reply(const char *what, const void *reply, size_t len);

/* Packs m into a malloc'd buffer; aborts when memory runs out. */
uint8_t *fuzz_pack(const ProtobufCMessage *m, size_t *len);

/* Reads every byte of a NUL-terminated string or a buffer, so that ASan
 * checks that what a decoder handed back is really there. */
size_t fuzz_touch(const void *p, size_t len);
size_t fuzz_touch_str(const char *s);

#endif
