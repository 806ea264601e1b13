/* Job records in the store and the state transitions shared by handlers.
 * All of this runs on the core thread inside the group's transaction. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "nqi/log.h"
#include "nqi/util.h"

uint64_t broker_job_id(const Nq__V1__Job *job)
{
	uint64_t id = 0;
	nqi_id_parse(job->id, &id);
	return id;
}

/* Most keys written are past the last one (new job ids, expiry times):
 * MDB_APPEND then saves the search down the tree. LMDB refuses it with
 * MDB_KEYEXIST for a key that is not, and the put is done plainly. */
static int put_appending(
    MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
	int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
	return rc == MDB_KEYEXIST ? mdb_put(txn, dbi, k, v, flags) : rc;
}

/*
 * Room: a job's record starts with a room, zero bytes that its lease and
 * success patches then take up, so that each rewrites the record at the
 * size it had, in place. A record that grows may no longer fit its LMDB
 * page and split it: new records fill their pages (they are appended in
 * id order), and growing by two patches left the pages about 60% full,
 * so that every commit wrote and synced about 1.6 times the pages. The
 * room is one bytes field, numbered ROOM_FIELD (reserved in Job: checked
 * at start), of a two-byte key and a one-byte length; readers skip it
 * (broker_record_view), so it is never decoded, sent or shown. A new record's
 * room is what the last lease and success took (the worker's id and the result
 * make most of it), or the lease's alone when both do not fit: no room until
 * the first lease, none wasted where nothing grows. A patch that does not fit
 * grows the record as before.
 */
#define ROOM_FIELD 2047u /* from 16 to 2047: a two-byte key */
#define ROOM_HEADER 3
#define ROOM_MAX (ROOM_HEADER + 127)
/* Beyond what the last ones took: a lease token's varint is 8 to 10
 * bytes, and a room of less than ROOM_HEADER bytes cannot be written. */
#define ROOM_SLACK 4

static struct {
	uint8_t key[2];
	bool ok; /* Job leaves ROOM_FIELD free */
} room;

/* The room's size at the front of p (0: none). */
static size_t room_len(const uint8_t *p, size_t len)
{
	if (!room.ok || len < ROOM_HEADER || p[0] != room.key[0] ||
	    p[1] != room.key[1] || p[2] >= 0x80 ||
	    (size_t)ROOM_HEADER + p[2] > len)
		return 0;
	return ROOM_HEADER + p[2];
}

void broker_record_view(MDB_val *v)
{
	size_t n = room_len(v->mv_data, v->mv_size);
	v->mv_data = (uint8_t *)v->mv_data + n;
	v->mv_size -= n;
}

/* The room to keep in a record of stored bytes whose job now takes need:
 * what is left, if it can be written as a room. */
static size_t room_left(size_t stored, size_t need)
{
	if (!room.ok || stored < need + ROOM_HEADER)
		return 0;
	return stored - need > ROOM_MAX ? ROOM_MAX : stored - need;
}

/* The room of a record written now. */
static size_t room_new(const broker *b)
{
	size_t lease = b->core.grew_lease, both = lease + b->core.grew_success;
	if (!room.ok || !lease)
		return 0;
	if (ROOM_HEADER + ROOM_SLACK + both <= ROOM_MAX)
		return ROOM_HEADER + ROOM_SLACK + both;
	return ROOM_HEADER + ROOM_SLACK + lease <= ROOM_MAX
	           ? ROOM_HEADER + ROOM_SLACK + lease
	           : 0;
}

/* Notes what a lease or a success patch added to a record. */
static void room_learn(broker *b, const ProtobufCMessage *patch, size_t n)
{
	if (patch->descriptor == &nq__v1__job_lease_patch__descriptor)
		b->core.grew_lease = n;
	else if (patch->descriptor == &nq__v1__job_success_patch__descriptor)
		b->core.grew_success = n;
}

/* Writes a room of n bytes (0, or ROOM_HEADER..ROOM_MAX) at p. */
static void room_put(uint8_t *p, size_t n)
{
	if (!n)
		return;
	p[0] = room.key[0];
	p[1] = room.key[1];
	p[2] = (uint8_t)(n - ROOM_HEADER);
	memset(p + ROOM_HEADER, 0, n - ROOM_HEADER);
}

static void room_init(void)
{
	if (protobuf_c_message_descriptor_get_field(
	        &nq__v1__job__descriptor, ROOM_FIELD))
		return; /* test_embed_record_keeps_its_size_to_success fails */
	uint32_t tag = ROOM_FIELD << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	room.key[0] = (uint8_t)(tag | 0x80);
	room.key[1] = (uint8_t)(tag >> 7);
	room.ok = true;
}

/* Keeps a copy of the bytes of the record last read or written: the patch
 * that usually follows (lease, success) needs no second lookup, and a fetch
 * reply sends the leased record as it is. The copy lives in the group
 * arena, with room for a length prefix in front of it; other writes to
 * the record forget it. */
static void remember_raw(broker *b, uint64_t id, const MDB_val *stored)
{
	MDB_val v = *stored;
	broker_record_view(&v);
	uint8_t *copy =
	    nqi_arena_alloc(b->core.arena, BROKER_RAW_HEADROOM + v.mv_size);
	b->core.raw_id = copy ? id : 0;
	if (copy) {
		copy += BROKER_RAW_HEADROOM;
		memcpy(copy, v.mv_data, v.mv_size);
	}
	b->core.raw = copy;
	b->core.raw_len = v.mv_size;
	b->core.raw_stored = stored->mv_size;
}

static void forget_raw(broker *b, uint64_t id)
{
	if (b->core.raw_id == id)
		b->core.raw_id = 0;
}

/* The group's cursor on the jobs table, NULL when it cannot be opened.
 * LMDB closes it with the transaction; the core clears b->core.jobs_cur then.
 */
static MDB_cursor *jobs_cursor(broker *b)
{
	if (!b->core.jobs_cur &&
	    mdb_cursor_open(b->core.txn, b->db_jobs, &b->core.jobs_cur))
		b->core.jobs_cur = NULL;
	return b->core.jobs_cur;
}

/* Looks id up through the group's cursor, which then rests on it: a patch
 * that follows rewrites the record in place without a second search. */
static int jobs_get(broker *b, uint64_t id, MDB_val *v)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	MDB_cursor *c = jobs_cursor(b);
	int rc = c ? mdb_cursor_get(c, &k, v, MDB_SET_KEY)
	           : mdb_get(b->core.txn, b->db_jobs, &k, v);
	if (rc == MDB_NOTFOUND)
		return NQ_ENOTFOUND;
	return rc == 0 ? NQ_OK : NQ_ESTORE;
}

/*
 * Puts a new record, v reserved, by a cursor kept on the last record: an
 * append there skips the search from the root (and the cursor set-up)
 * that mdb_put makes for every record, and an enqueue appends a batch of
 * them in a row. Any other write to the table unplaces the cursor
 * (jobs_moved), and it is placed again on the last record (MDB_LAST)
 * before the next append, so that it never appends by a page that other
 * writes changed. An id not past the last record's is put as usual.
 */
static int jobs_append(broker *b, MDB_val *k, MDB_val *v)
{
	MDB_val lk, lv;
	int rc;
	if (!b->core.append_cur) {
		b->core.append_placed = false;
		rc = mdb_cursor_open(
		    b->core.txn, b->db_jobs, &b->core.append_cur);
		if (rc != 0) {
			b->core.append_cur = NULL;
			return rc;
		}
	}
	if (!b->core.append_placed) {
		rc = mdb_cursor_get(b->core.append_cur, &lk, &lv, MDB_LAST);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		b->core.append_placed = rc == 0;
	}
	rc = b->core.append_placed ? mdb_cursor_put(b->core.append_cur, k, v,
	                                 MDB_APPEND | MDB_RESERVE)
	                           : MDB_KEYEXIST;
	if (rc != MDB_KEYEXIST)
		return rc;
	b->core.append_placed = false;
	return mdb_put(b->core.txn, b->db_jobs, k, v, MDB_RESERVE);
}

/* A write to the jobs table other than jobs_append's. */
static void jobs_moved(broker *b)
{
	b->core.append_placed = false;
}

/* Whether the group's cursor rests on the record of id. */
static bool cursor_on(broker *b, uint64_t id)
{
	MDB_val k, v;
	return b->core.jobs_cur &&
	       mdb_cursor_get(b->core.jobs_cur, &k, &v, MDB_GET_CURRENT) == 0 &&
	       k.mv_size == 8 && nqi_be64_get(k.mv_data) == id;
}

/* NQ_ENOTFOUND, NQ_EINTERNAL for a record that does not decode (logged;
 * the group goes on), or NQ_ESTORE when the store itself failed. */
int broker_job_read(broker *b, uint64_t id, Nq__V1__Job **out)
{
	int rv = broker_job_read_raw(b, id);
	if (rv != 0)
		return rv;
	/* One pass into the arena where it can; protobuf-c for the rest (a
	 * message given twice, a string stored before strings were checked). */
	Nq__V1__Job *job =
	    (Nq__V1__Job *)nqi_pb_unpack_fast(&nq__v1__job__descriptor,
	        b->core.raw, b->core.raw_len, b->core.arena);
	if (!job)
		job = nq__v1__job__unpack(
		    &b->core.arena->pb, b->core.raw_len, b->core.raw);
	if (!job || !job->spec) {
		char ids[NQ_ID_MAX];
		nqi_id_format(id, ids);
		nqi_error("NQ-RECORD-CORRUPT", NQI_S("id", ids),
		    NQI_U("bytes", b->core.raw_len));
		return NQ_EINTERNAL;
	}
	*out = job;
	return NQ_OK;
}

uint8_t *broker_len_prefix(uint8_t *data, size_t len, size_t *total)
{
	size_t k = 1;
	for (size_t v = len; v >= 0x80; v >>= 7)
		k++;
	uint8_t *p = data - k;
	for (size_t v = len, i = 0; i < k; i++, v >>= 7)
		p[i] = (uint8_t)((v & 0x7f) | (i + 1 < k ? 0x80 : 0));
	*total = k + len;
	return p;
}

/* ---- the record's fast paths, derived from the descriptors ----
 *
 * A new job's record is a NewJobRecord plus its spec's bytes, and a
 * success appends a JobSuccessPatch plus explicit zeros for the lease.
 * Which fields of Job those carry, and which a new job must leave at
 * their defaults, is read once at start from the protobuf-c descriptors,
 * so that a field added to Job (or to NewJobRecord) is handled without
 * any list here to keep up to date. */

#define RECORD_FIELDS_MAX 64
#define LEASE_ZEROES_MAX 128

/* Places in a protobuf-c struct by the size of what they hold (4 or 8
 * bytes), and string pointers apart: the enqueue path then reads them in
 * straight loops, without looking at a field's type. */
typedef struct places {
	uint32_t w4[RECORD_FIELDS_MAX], w8[RECORD_FIELDS_MAX];
	uint32_t str[RECORD_FIELDS_MAX];
	size_t n4, n8, nstr;
} places;

static struct {
	bool ok; /* false: the tables did not fit; no fast path then */
	uint32_t spec_field;
	/* Job's fields that NewJobRecord carries: from Job, to the record */
	places from, to;
	/* Job's other fields but spec: zero (or "") in a new job */
	places unset;
	/* Job's fields named lease_*: the lease, cleared when it ends */
	places lease;
	uint8_t lease_zeroes[LEASE_ZEROES_MAX];
	size_t lease_zeroes_len;
} tables;

/* Adds a place of size bytes (4 or 8) at offset, or a string's. */
static bool place_add(places *p, size_t offset, size_t size, bool str)
{
	if (p->n4 == RECORD_FIELDS_MAX || p->n8 == RECORD_FIELDS_MAX ||
	    p->nstr == RECORD_FIELDS_MAX)
		return false;
	if (str)
		p->str[p->nstr++] = (uint32_t)offset;
	else if (size == 4)
		p->w4[p->n4++] = (uint32_t)offset;
	else if (size == 8)
		p->w8[p->n8++] = (uint32_t)offset;
	else
		return false;
	return true;
}

/* Adds the places that hold field f, a singular field that is not a
 * message: bytes are a length and a pointer. */
static bool place_add_field(places *p, const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return place_add(p, f->offset, 8, false);
	case PROTOBUF_C_TYPE_STRING:
		return place_add(p, f->offset, sizeof(char *), true);
	case PROTOBUF_C_TYPE_BYTES:
		return place_add(p,
		           f->offset + offsetof(ProtobufCBinaryData, len),
		           sizeof(size_t), false) &&
		       place_add(p,
		           f->offset + offsetof(ProtobufCBinaryData, data),
		           sizeof(uint8_t *), false);
	case PROTOBUF_C_TYPE_MESSAGE:
		return false;
	default: /* 32-bit numbers, float, bool, enum */
		return place_add(p, f->offset, 4, false);
	}
}

/* Adds the place that is zero exactly when field f is at its default: a
 * repeated field's count, an optional field's has_ flag, a bytes' length,
 * a message's pointer, else the value. A oneof member has none. */
static bool place_add_default(places *p, const ProtobufCFieldDescriptor *f)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return false;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return place_add(
		    p, f->quantifier_offset, sizeof(size_t), false);
	if (f->quantifier_offset)
		return place_add(
		    p, f->quantifier_offset, sizeof(protobuf_c_boolean), false);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return place_add(p, f->offset, sizeof(void *), false);
	if (f->type == PROTOBUF_C_TYPE_BYTES)
		return place_add(p,
		    f->offset + offsetof(ProtobufCBinaryData, len),
		    sizeof(size_t), false);
	return place_add_field(p, f);
}

static uint32_t load4(const void *m, uint32_t at)
{
	uint32_t v;
	memcpy(&v, (const char *)m + at, 4);
	return v;
}

static uint64_t load8(const void *m, uint32_t at)
{
	uint64_t v;
	memcpy(&v, (const char *)m + at, 8);
	return v;
}

static const char *load_str(const void *m, uint32_t at)
{
	const char *s;
	memcpy(&s, (const char *)m + at, sizeof s);
	return s;
}

/* The wire type of a field of type t, and how many zero bytes after its
 * tag encode its zero value. */
static unsigned zero_encoding(ProtobufCType t, size_t *body)
{
	switch (t) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
		*body = 1; /* length 0 */
		return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		*body = 8;
		return PROTOBUF_C_WIRE_TYPE_64BIT;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		*body = 4;
		return PROTOBUF_C_WIRE_TYPE_32BIT;
	default:
		*body = 1; /* varint 0 */
		return PROTOBUF_C_WIRE_TYPE_VARINT;
	}
}

/* Appends to tables.lease_zeroes the encoding of f at its zero value: a
 * decoder then replaces what an earlier part of the record set. An empty
 * message would merge instead, so a message or repeated field cannot be
 * cleared this way. */
static bool lease_zero_add(const ProtobufCFieldDescriptor *f)
{
	size_t body, n = tables.lease_zeroes_len;
	uint64_t tag = (uint64_t)f->id << 3 | zero_encoding(f->type, &body);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE ||
	    f->label == PROTOBUF_C_LABEL_REPEATED ||
	    n + 5 + body > LEASE_ZEROES_MAX)
		return false;
	for (; tag >= 0x80; tag >>= 7)
		tables.lease_zeroes[n++] = (uint8_t)(tag | 0x80);
	tables.lease_zeroes[n++] = (uint8_t)tag;
	memset(tables.lease_zeroes + n, 0, body);
	tables.lease_zeroes_len = n + body;
	return true;
}

static bool record_field_add(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCFieldDescriptor *r =
	    protobuf_c_message_descriptor_get_field_by_name(
	        &nq__v1__new_job_record__descriptor, f->name);
	if (strncmp(f->name, "lease_", 6) == 0 &&
	    (!lease_zero_add(f) || !place_add_field(&tables.lease, f)))
		return false;
	if (strcmp(f->name, "spec") == 0) {
		tables.spec_field = f->id;
		return true;
	}
	if (!r)
		return place_add_default(&tables.unset, f);
	/* test_codec checks that NewJobRecord's fields are Job's */
	return r->type == f->type && r->label == PROTOBUF_C_LABEL_NONE &&
	       f->label == PROTOBUF_C_LABEL_NONE &&
	       place_add_field(&tables.from, f) &&
	       place_add_field(&tables.to, r);
}

/* The messages packed for every job, and their plans (nqi_flat_plan): a
 * type without a plan is packed by protobuf-c. */
static const ProtobufCMessageDescriptor *const flat_types[] = {
    &nq__v1__new_job_record__descriptor, &nq__v1__job_lease_patch__descriptor,
    &nq__v1__job_success_patch__descriptor, &nq__v1__job_spec__descriptor};
static nqi_flat_plan flat_plans[sizeof flat_types / sizeof *flat_types];

const nqi_flat_plan *broker_flat_plan(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < sizeof flat_types / sizeof *flat_types; i++)
		if (flat_types[i] == d)
			return &flat_plans[i];
	return NULL;
}

/* Runs once, before main: the tables are only read after that. */
__attribute__((constructor)) static void record_tables_init(void)
{
	const ProtobufCMessageDescriptor *d = &nq__v1__job__descriptor;
	bool ok = d->n_fields <= RECORD_FIELDS_MAX;
	for (unsigned i = 0; ok && i < d->n_fields; i++)
		ok = record_field_add(&d->fields[i]);
	tables.ok = ok && tables.spec_field != 0;
	for (size_t i = 0; i < sizeof flat_types / sizeof *flat_types; i++)
		nqi_flat_plan_init(&flat_plans[i], flat_types[i]);
	room_init();
}

/* Whether every field of job that NewJobRecord leaves out (but its spec)
 * is at its default, as in a job just enqueued. */
static bool only_new_fields(const Nq__V1__Job *job)
{
	const places *u = &tables.unset;
	uint64_t set = 0;
	for (size_t i = 0; i < u->n4; i++)
		set |= load4(job, u->w4[i]);
	for (size_t i = 0; i < u->n8; i++)
		set |= load8(job, u->w8[i]);
	for (size_t i = 0; i < u->nstr; i++) {
		const char *str = load_str(job, u->str[i]);
		set |= str && *str;
	}
	return !set && tables.ok;
}

/* Copies the fields NewJobRecord carries from job into r. */
static void copy_new_fields(Nq__V1__NewJobRecord *r, const Nq__V1__Job *job)
{
	const places *from = &tables.from, *to = &tables.to;
	for (size_t i = 0; i < from->n4; i++)
		memcpy(
		    (char *)r + to->w4[i], (const char *)job + from->w4[i], 4);
	for (size_t i = 0; i < from->n8; i++)
		memcpy(
		    (char *)r + to->w8[i], (const char *)job + from->w8[i], 8);
	for (size_t i = 0; i < from->nstr; i++) {
		const char *str = load_str(job, from->str[i]);
		memcpy((char *)r + to->str[i], &str, sizeof str);
	}
}

/* Sets the lease's fields of job to their defaults. */
static void clear_lease(Nq__V1__Job *job)
{
	static const char *const empty = "";
	const places *l = &tables.lease;
	for (size_t i = 0; i < l->n4; i++)
		memset((char *)job + l->w4[i], 0, 4);
	for (size_t i = 0; i < l->n8; i++)
		memset((char *)job + l->w8[i], 0, 8);
	for (size_t i = 0; i < l->nstr; i++)
		memcpy((char *)job + l->str[i], &empty, sizeof empty);
}

/*
 * The message to store for job: for a new job whose spec enqueue handed
 * over packed (see broker_op_prepack), a NewJobRecord of its few other
 * fields with the spec's bytes as an unknown field numbered like Job.spec,
 * which is cheap to pack here on the core thread; else the job itself.
 */
static const ProtobufCMessage *record_of(broker *b, const Nq__V1__Job *job,
    Nq__V1__NewJobRecord *r, ProtobufCMessageUnknownField *f)
{
	static const Nq__V1__NewJobRecord init = NQ__V1__NEW_JOB_RECORD__INIT;
	if (!b->core.packed_spec || b->core.packed_spec != job->spec ||
	    !only_new_fields(job))
		return &job->base;
	*r = init;
	copy_new_fields(r, job);
	f->tag = tables.spec_field;
	f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	f->len = b->core.packed_spec_bytes.len;
	f->data = b->core.packed_spec_bytes.data;
	r->base.n_unknown_fields = 1;
	r->base.unknown_fields = f;
	return &r->base;
}

bool broker_job_plain(const Nq__V1__Job *job)
{
	/* A job due later than its creation (a delay, a release by its
	 * parents) is read at its lease: its wait counts from run_at. */
	return job->attempt == 0 && !job->spec->ordering_key[0] &&
	       !job->spec->deadline_us && job->run_at_us <= job->created_us;
}

bool broker_job_keyed(const Nq__V1__Job *job)
{
	return job->spec->idempotency_key[0] != '\0' ||
	       job->spec->payload_ref[0] != '\0';
}

uint32_t broker_ready_flags(const Nq__V1__Job *job)
{
	return (broker_job_plain(job) ? BROKER_READY_PLAIN : 0) |
	       (broker_job_keyed(job) ? BROKER_READY_KEYED : 0);
}

int broker_job_read_raw(broker *b, uint64_t id)
{
	MDB_val v;
	int rv = jobs_get(b, id, &v);
	if (rv != 0)
		return rv;
	remember_raw(b, id, &v);
	return b->core.raw_id == id ? NQ_OK : NQ_ENOMEM;
}

int broker_job_repair(MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
	uint8_t *fixed;
	size_t len;
	char why[128], id[NQ_ID_MAX];
	int rv = nqi_pb_repair_strings(&nq__v1__job__descriptor, v->mv_data,
	    v->mv_size, &fixed, &len, why, sizeof why);
	if (rv == NQ_EPROTO)
		return NQ_OK; /* recovery reports the record as corrupt */
	if (rv != 0 || !fixed)
		return rv;
	/* A copy of the key: k points into the page the put rewrites. */
	uint8_t key[8];
	memcpy(key, k->mv_data, sizeof key);
	MDB_val kc = {sizeof key, key}, nv = {len, fixed};
	int rc = mdb_cursor_put(cur, &kc, &nv, MDB_CURRENT);
	free(fixed);
	if (rc == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_GET_CURRENT);
	if (rc != 0)
		return NQ_ESTORE;
	nqi_id_format(nqi_be64_get(key), id);
	nqi_warn("NQ-RECORD-REPAIRED", NQI_S("id", id), NQI_S("why", why),
	    NQI_S("note", "stored by an older broker; NUL ends the string, "
	                  "invalid bytes are U+FFFD"));
	return NQ_OK;
}

int broker_job_write(broker *b, uint64_t id, const Nq__V1__Job *job)
{
	uint8_t key[8];
	Nq__V1__NewJobRecord head;
	ProtobufCMessageUnknownField spec;
	nqi_be64_put(key, id);
	const ProtobufCMessage *rec = record_of(b, job, &head, &spec);
	bool fresh = rec == &head.base;
	const nqi_flat_plan *plan = broker_flat_plan(rec->descriptor);
	size_t len = nqi_flat_size(plan, rec), n = room_new(b);
	MDB_val k = {8, key}, v = {n + len, NULL};
	forget_raw(b, id);
	/* MDB_RESERVE lets the record be packed straight into the page; a new
	 * job's id is past every stored one. */
	if (!fresh)
		jobs_moved(b);
	int rc = fresh ? jobs_append(b, &k, &v)
	               : mdb_put(b->core.txn, b->db_jobs, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return NQ_ESTORE;
	room_put(v.mv_data, n);
	nqi_flat_pack(plan, rec, (uint8_t *)v.mv_data + n);
	/* A lease replies with the copy; a new record is seldom read again in
	 * its group (and is then read from the store). */
	if (!fresh)
		remember_raw(b, id, &v);
	b->core.dirty = true;
	return NQ_OK;
}

/*
 * Rewrites a record as its stored bytes followed by the encoding of patch
 * (a JobLeasePatch or JobSuccessPatch: fields of Job by number and type).
 * A protobuf decoder keeps the last value it meets of a field, so the
 * record then reads as the job with patch's fields changed, at a fraction
 * of the cost of packing the whole job again: the lease and the success of
 * every job take this path. Proto3 leaves zero values out of an encoding,
 * so fields to clear come after it as tail: their explicit zeros, encoded
 * (see lease_zero_add). Only fields that are not repeated and not messages
 * may be patched (those would merge, not replace), and a full write
 * (broker_job_write) compacts the record again.
 */
int broker_job_patch(broker *b, uint64_t id, const ProtobufCMessage *patch,
    const uint8_t *tail, size_t tail_len)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	/* A copy: the put below may reuse the old value's space. */
	int rv = b->core.raw_id == id && cursor_on(b, id)
	             ? NQ_OK
	             : broker_job_read_raw(b, id);
	if (rv != 0)
		return rv;
	const uint8_t *copy = b->core.raw;
	size_t old = b->core.raw_len;
	forget_raw(b, id);
	const nqi_flat_plan *plan = broker_flat_plan(patch->descriptor);
	size_t plen = nqi_flat_size(plan, patch);
	size_t need = old + plen + tail_len;
	size_t n = room_left(b->core.raw_stored, need);
	room_learn(b, patch, plen + tail_len);
	MDB_val nv = {n + need, NULL};
	jobs_moved(b);
	int rc = cursor_on(b, id)
	             ? mdb_cursor_put(
	                   b->core.jobs_cur, &k, &nv, MDB_CURRENT | MDB_RESERVE)
	             : mdb_put(b->core.txn, b->db_jobs, &k, &nv, MDB_RESERVE);
	if (rc != 0)
		return NQ_ESTORE;
	uint8_t *p = nv.mv_data;
	room_put(p, n);
	memcpy(p + n, copy, old);
	nqi_flat_pack(plan, patch, p + n + old);
	if (tail_len)
		memcpy(p + n + old + plen, tail, tail_len);
	remember_raw(b, id, &nv);
	b->core.dirty = true;
	return NQ_OK;
}

int broker_job_delete(broker *b, uint64_t id)
{
	uint8_t key[8];
	nqi_be64_put(key, id);
	MDB_val k = {8, key};
	forget_raw(b, id);
	jobs_moved(b);
	int rc = mdb_del(b->core.txn, b->db_jobs, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return NQ_ESTORE;
	b->core.dirty = true;
	return NQ_OK;
}

void broker_count_move(broker *b, const char *queue, int from, int to)
{
	broker_count_move_at(
	    b, broker_queue_get(&b->core.index, queue), from, to);
}

void broker_count_move_at(broker *b, int qi, int from, int to)
{
	if (qi < 0)
		return;
	broker_queue *q = &b->core.index.queues[qi];
	uint64_t *c = broker_queue_count(q, from);
	if (c && *c > 0)
		(*c)--;
	c = broker_queue_count(q, to);
	if (c)
		(*c)++;
}

/* Expiry entries: big-endian time, a kind byte, then the subject (at most
 * 512 bytes); returns LMDB's code. */
static int expiry_write(broker *b, uint64_t at_us, char kind,
    const void *subject, size_t len, MDB_val *value, unsigned flags)
{
	uint8_t key[9 + 512];
	nqi_be64_put(key, at_us);
	key[8] = (uint8_t)kind;
	memcpy(key + 9, subject, len);
	MDB_val k = {9 + len, key};
	b->core.dirty = true;
	return put_appending(b->core.txn, b->db_expiry, &k, value, flags);
}

int broker_expiry_put(
    broker *b, uint64_t at_us, char kind, const void *data, size_t len)
{
	MDB_val v = {0, ""};
	if (len > 512)
		return NQ_EINVAL;
	return expiry_write(b, at_us, kind, data, len, &v, 0) ? NQ_ESTORE
	                                                      : NQ_OK;
}

/*
 * Results due to go at one time share an expiry entry: its key is that of
 * the first job's own entry ('j', the id), its value the ids after it, 8
 * bytes each. A completion batch is taken up at one clock reading, so the
 * successes of a queue in it are due together, and one put stands for up
 * to BROKER_EXPIRY_RUN of them instead of one each. A key already stored
 * (the same job due at the same microsecond) keeps its entry: the job is
 * due there, and the rest of the run goes under the next id.
 */
int broker_expiry_flush(broker *b)
{
	unsigned n = b->core.expiry_run.n;
	const uint8_t *ids = b->core.expiry_run.ids;
	b->core.expiry_run.n = 0;
	for (unsigned i = 0; i < n; i++) {
		MDB_val v = {8 * (n - 1 - i), (void *)(ids + 8 * (i + 1))};
		int rc = expiry_write(b, b->core.expiry_run.at_us, 'j',
		    ids + 8 * i, 8, &v, MDB_NOOVERWRITE);
		if (rc == 0)
			return NQ_OK;
		if (rc != MDB_KEYEXIST)
			return NQ_ESTORE;
	}
	return NQ_OK;
}

/* Deletes the record of id, a job of queue qi in state, from the store
 * and the counters. */
static int delete_counted(broker *b, uint64_t id, int qi, int state)
{
	broker_count_move_at(b, qi, state, 0);
	b->core.jobs_stored--;
	return broker_job_delete(b, id);
}

int broker_job_drop(broker *b, const Nq__V1__Job *job)
{
	uint64_t id = broker_job_id(job);
	broker_blob_forget(b, job);
	int rv = broker_idem_forget(b, job->spec, id);
	if (rv != 0)
		return rv;
	if (job->in_dlq)
		return broker_job_delete(b, id); /* counted as gone already */
	return delete_counted(b, id,
	    broker_queue_get(&b->core.index, job->spec->queue),
	    (int)job->state);
}

/* Adds id to the expiry run (see broker_expiry_flush), first writing the
 * run when it is full or due at another time. */
static int expire_at(
    broker *b, uint64_t id, uint64_t finished_us, uint64_t ttl_ms)
{
	uint64_t at = nqi_us_plus_ms(finished_us, ttl_ms);
	unsigned n = b->core.expiry_run.n;
	int rv = n && (n == BROKER_EXPIRY_RUN || b->core.expiry_run.at_us != at)
	             ? broker_expiry_flush(b)
	             : NQ_OK;
	if (rv != 0)
		return rv;
	n = b->core.expiry_run.n;
	b->core.expiry_run.at_us = at;
	nqi_be64_put(b->core.expiry_run.ids + 8 * n, id);
	b->core.expiry_run.n = n + 1;
	b->core.dirty = true;
	return NQ_OK;
}

int broker_job_keep_result(broker *b, const Nq__V1__Job *job)
{
	uint64_t ttl_ms = broker_result_ttl_ms(b, -1, job->spec->queue);
	if (ttl_ms == 0)
		return broker_job_drop(b, job);
	return expire_at(b, broker_job_id(job), job->finished_us, ttl_ms);
}

int broker_result_keep(
    broker *b, uint64_t id, int qi, int state, uint64_t finished_us)
{
	uint64_t ttl_ms = broker_result_ttl_ms(b, qi, NULL);
	if (ttl_ms == 0)
		return delete_counted(b, id, qi, state);
	return expire_at(b, id, finished_us, ttl_ms);
}

int broker_job_patch_success(
    broker *b, uint64_t id, uint64_t finished_us, ProtobufCBinaryData result)
{
	Nq__V1__JobSuccessPatch patch = NQ__V1__JOB_SUCCESS_PATCH__INIT;
	patch.state = NQ__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
	patch.finished_us = finished_us;
	patch.result = result;
	return broker_job_patch(
	    b, id, &patch.base, tables.lease_zeroes, tables.lease_zeroes_len);
}

int broker_job_finish(broker *b, Nq__V1__Job *job, int state, uint64_t now_us)
{
	int from = (int)job->state;
	uint64_t id = broker_job_id(job);
	int rv;
	job->state = (Nq__V1__JobState)state;
	job->finished_us = now_us;
	clear_lease(job);
	broker_count_move(b, job->spec->queue, from, state);
	broker_wake_waiters(b, id, job);
	if (b->core.index.nparents && (rv = broker_deps_ended(b, job)) != 0)
		return rv;
	if (b->core.index.nbatched &&
	    (rv = broker_batch_ended(b, id, state, job->spec->queue)) != 0)
		return rv;
	/* Dead and expired jobs wait for nq-dlq; the others keep their
	 * result for result_ttl. */
	bool handoff = state == NQ_STATE_DEAD ||
	               (state == NQ_STATE_EXPIRED && broker_dlq_enabled(b));
	if (!handoff && broker_result_ttl_ms(b, -1, job->spec->queue) == 0)
		return broker_job_keep_result(b, job);
	rv = state == NQ_STATE_SUCCEEDED
	         ? broker_job_patch_success(b, id, now_us, job->result)
	         : broker_job_write(b, id, job);
	if (rv != 0)
		return rv;
	if (handoff)
		return broker_dlq_note(b, id, job->spec->queue);
	return broker_job_keep_result(b, job);
}

int broker_job_requeue(broker *b, Nq__V1__Job *job, uint64_t run_at_us)
{
	return broker_job_requeue_at(b, job, run_at_us, nqi_now_us());
}

int broker_job_requeue_at(
    broker *b, Nq__V1__Job *job, uint64_t run_at_us, uint64_t now)
{
	int from = (int)job->state;
	int to = run_at_us <= now ? NQ_STATE_READY : NQ_STATE_SCHEDULED;
	uint64_t id = broker_job_id(job);
	job->state = (Nq__V1__JobState)to;
	job->run_at_us = run_at_us;
	clear_lease(job);
	int rv = broker_job_write(b, id, job);
	if (rv != 0)
		return rv;
	int qi = broker_queue_get(&b->core.index, job->spec->queue);
	if (qi < 0)
		return NQ_ENOMEM;
	broker_count_move(b, job->spec->queue, from, to);
	if (to == NQ_STATE_READY) {
		broker_queue *q = &b->core.index.queues[qi];
		b->core.woken = true;
		return broker_ready_push(
		    q, job->spec->priority, id, broker_ready_flags_in(q, job));
	}
	broker_timer t = {run_at_us, id, (uint32_t)qi, job->spec->priority};
	return broker_timer_push(&b->core.index, &t);
}

/* When job must have ended by, from its finish_within (0: never). */
uint64_t broker_job_finish_by(const Nq__V1__Job *job)
{
	uint64_t ms = job->spec->finish_within_ms;
	return ms ? nqi_us_plus_ms(job->created_us, ms) : 0;
}

int broker_deadline_add(broker *b, const Nq__V1__Job *job)
{
	broker_index *x = &b->core.index;
	uint64_t id = broker_job_id(job), by = broker_job_finish_by(job);
	int rv = NQ_OK;
	if (job->spec->deadline_us)
		rv = broker_deadline_push(x, job->spec->deadline_us + 1, id);
	if (rv == 0 && by)
		rv = broker_deadline_push(x, by, id);
	/* A cancel a restart interrupted ends at the next sweep. */
	if (rv == 0 && job->cancel_requested)
		rv = broker_deadline_push(x, 0, id);
	return rv;
}
