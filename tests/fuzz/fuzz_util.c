/* Helpers shared by the fuzz targets; see fuzz.h. */
#include "fuzz.h"

#include "nqi/codec.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "fuzz: %s:%d: check failed: %s\n", file, line, what);
	abort();
}

bool fuzz_record_next(fuzz_records *r, const uint8_t **rec, size_t *len)
{
	if (r->n < 2)
		return false;
	size_t want = (size_t)r->p[0] | (size_t)r->p[1] << 8;
	r->p += 2;
	r->n -= 2;
	size_t take = want < r->n ? want : r->n;
	*rec = r->p;
	*len = take;
	r->p += take;
	r->n -= take;
	return true;
}

char *fuzz_tempdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/nq-fuzz-%s-XXXXXX",
	    base && *base ? base : "/tmp", tag);
	char *dir = strdup(path);
	if (!dir || !mkdtemp(dir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	return dir;
}

void fuzz_tempdir_remove(char *dir)
{
	if (!dir)
		return;
	DIR *d = opendir(dir);
	struct dirent *ent;
	char path[1024];
	while (d && (ent = readdir(d)) != NULL) {
		if (strcmp(ent->d_name, ".") == 0 ||
		    strcmp(ent->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

uint8_t *fuzz_pack(const ProtobufCMessage *m, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(protobuf_c_message_pack(m, buf) == n);
	*len = n;
	return buf;
}

/* nqi_pb_unpack_fast takes only what nq takes through protobuf-c (m, or
 * NULL when refused), and decodes it to the same message. */
static void check_fast(const ProtobufCMessageDescriptor *d, const uint8_t *data,
    size_t size, const ProtobufCMessage *m)
{
	nqi_arena *a = nqi_arena_new(256);
	FUZZ_CHECK(a != NULL);
	ProtobufCMessage *fast = nqi_pb_unpack_fast(d, data, size, a);
	if (fast) {
		size_t n1, n2;
		FUZZ_CHECK(m != NULL);
		uint8_t *slow_bytes = fuzz_pack(m, &n1);
		uint8_t *fast_bytes = fuzz_pack(fast, &n2);
		FUZZ_CHECK(n1 == n2 && memcmp(slow_bytes, fast_bytes, n1) == 0);
		free(slow_bytes);
		free(fast_bytes);
	}
	nqi_arena_free(a);
}

/* fuzz_unpack_stable without the check of the one-pass decoder. */
static ProtobufCMessage *unpack_as_nq(
    const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	char why[160];
	int strings = nqi_pb_check_strings(d, data, size, why, sizeof why);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
	/* The check frames bytes as protobuf-c does. */
	FUZZ_CHECK(!m || strings != NQ_EPROTO);
	if (m && (strings != NQ_OK || !nqi_pb_wellformed(m))) {
		/* nq refuses it (a string that is not text, or a field
		 * numbered 0; see codec.h) */
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	if (!m)
		return NULL;
	size_t n1, n2;
	uint8_t *once = fuzz_pack(m, &n1);
	ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, n1, once);
	/* What protobuf-c packed it must read back. */
	FUZZ_CHECK(again != NULL);
	uint8_t *twice = fuzz_pack(again, &n2);
	FUZZ_CHECK(n1 == n2 && memcmp(once, twice, n1) == 0);
	protobuf_c_message_free_unpacked(again, NULL);
	free(once);
	free(twice);
	return m;
}

ProtobufCMessage *fuzz_unpack_stable(
    const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = unpack_as_nq(d, data, size);
	check_fast(d, data, size, m);
	return m;
}

size_t fuzz_touch(const void *p, size_t len)
{
	const volatile uint8_t *b = p;
	size_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return sum;
}

size_t fuzz_touch_str(const char *s)
{
	return s ? fuzz_touch(s, strlen(s) + 1) : 0;
}

void fuzz_trace_reply(const char *what, const void *reply, size_t len)
{
	static int on = -1;
	if (on < 0)
		on = getenv("NQ_FUZZ_TRACE") != NULL;
	if (!on)
		return;
	Nq__V1__Reply *r = nqi_reply_unpack(reply, len);
	if (!r) {
		fprintf(stderr, "trace: %s -> (no reply)\n", what);
		return;
	}
	fprintf(stderr, "trace: %s -> body %d code %d %s\n", what,
	    (int)r->body_case, r->status ? (int)r->status->code : 0,
	    r->status ? r->status->message : "");
	nq__v1__reply__free_unpacked(r, NULL);
}
