/* nq-dlq's records in LMDB: the entries and the three indexes beside them
 * (layout in dlq.h). Every function works inside the caller's transaction
 * and never commits, but dlq_store_open, which may repair old entries in
 * a transaction of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "nqi/log.h"
#include "nqi/util.h"

/*
 * Schema rule: records are protobuf DeadJob messages, to which fields are
 * only ever added, so DLQ_STORE_SCHEMA changes only when the key layout
 * changes. A store of a newer schema is refused at open; migrating from an
 * older one will be one function per version step, run at open in one
 * transaction. Version 1 is the first.
 */

#define KEY_MAX (NQI_NAME_MAX + 1 + NQI_NAME_MAX + 16)

/* The meta key that says every entry's strings are text (repair_pass). */
#define META_TEXT "strings_text"

static int repair_pass(dlq *d, char *err, size_t errlen);

int dlq_store_open(dlq *d, char *err, size_t errlen)
{
	const nqi_store_db dbs[] = {{"entries", &d->db_entries},
	    {"time", &d->db_time}, {"queue", &d->db_queue},
	    {"counts", &d->db_counts}, {"meta", &d->db_meta}, {NULL, NULL}};
	nqi_store_opts so = {
	    .dir = d->cfg.data_dir,
	    .sync = strcmp(d->cfg.sync, "always") == 0,
	    .map_size = d->cfg.map_size,
	    .dbs = dbs,
	    .schema_version = DLQ_STORE_SCHEMA,
	};
	int rv = nqi_store_open(&d->store, &so, err, errlen);
	return rv ? rv : repair_pass(d, err, errlen);
}

/* ---- keys ---- */

void dlq_time_key(uint8_t key[16], uint64_t dead_at_us, uint64_t id)
{
	nqi_be64_put(key, dead_at_us);
	nqi_be64_put(key + 8, id);
}

/* "queue\0" followed by the time key; returns the length. */
static size_t queue_key(
    uint8_t *out, const char *queue, uint64_t dead_at_us, uint64_t id)
{
	size_t n = strlen(queue);
	memcpy(out, queue, n);
	out[n] = 0;
	dlq_time_key(out + n + 1, dead_at_us, id);
	return n + 17;
}

static size_t count_key(uint8_t *out, const char *queue, const char *reason)
{
	size_t q = strlen(queue), r = strlen(reason);
	memcpy(out, queue, q);
	out[q] = 0;
	memcpy(out + q + 1, reason, r);
	return q + 1 + r;
}

static const char *rec_queue(const Nq__V1__DeadJob *rec)
{
	return rec->job && rec->job->spec ? rec->job->spec->queue : "";
}

/* ---- counts ---- */

static int count_add(
    dlq *d, MDB_txn *txn, const char *queue, const char *reason, int delta)
{
	uint8_t kb[KEY_MAX], vb[8];
	MDB_val k = {count_key(kb, queue, reason), kb}, v;
	uint64_t n = 0;
	int rc = mdb_get(txn, d->db_counts, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		n = nqi_be64_get(v.mv_data);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return nqi_store_err(rc);
	if (delta < 0 && n == 0)
		return NQ_OK; /* nothing to take away */
	n = delta < 0 ? n - 1 : n + 1;
	if (n == 0)
		return nqi_store_err(mdb_del(txn, d->db_counts, &k, NULL));
	nqi_be64_put(vb, n);
	v = (MDB_val){8, vb};
	return nqi_store_err(mdb_put(txn, d->db_counts, &k, &v, 0));
}

int dlq_store_counts(dlq *d, MDB_txn *txn, dlq_count_cb cb, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rv = NQ_OK;
	if (mdb_cursor_open(txn, d->db_counts, &cur) != 0)
		return NQ_ESTORE;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0 && rv == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char queue[NQI_NAME_MAX + 1], reason[NQI_NAME_MAX + 1];
		const uint8_t *p = k.mv_data;
		const uint8_t *z = memchr(p, 0, k.mv_size);
		size_t ql = z ? (size_t)(z - p) : 0;
		size_t rl = z ? k.mv_size - ql - 1 : 0;
		if (!z || ql > NQI_NAME_MAX || rl > NQI_NAME_MAX ||
		    v.mv_size != 8)
			continue; /* not a count key; never written by us */
		memcpy(queue, p, ql);
		queue[ql] = '\0';
		memcpy(reason, z + 1, rl);
		reason[rl] = '\0';
		rv = cb(arg, queue, reason, nqi_be64_get(v.mv_data));
	}
	mdb_cursor_close(cur);
	if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND)
		rv = nqi_store_err(rc);
	return rv;
}

int dlq_store_queue_count(dlq *d, MDB_txn *txn, const char *queue, uint64_t *n)
{
	MDB_cursor *cur;
	uint8_t kb[NQI_NAME_MAX + 1];
	size_t plen = strlen(queue) + 1;
	uint64_t sum = 0;
	memcpy(kb, queue, plen);
	MDB_val k = {plen, kb}, v;
	if (mdb_cursor_open(txn, d->db_counts, &cur) != 0)
		return NQ_ESTORE;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, kb, plen) != 0)
			break;
		if (v.mv_size == 8)
			sum += nqi_be64_get(v.mv_data);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return nqi_store_err(rc);
	*n = sum;
	return NQ_OK;
}

/* ---- entries ---- */

int dlq_store_get(dlq *d, MDB_txn *txn, uint64_t id, ProtobufCAllocator *a,
    Nq__V1__DeadJob **out)
{
	uint8_t kb[8];
	nqi_be64_put(kb, id);
	MDB_val k = {8, kb}, v;
	int rc = mdb_get(txn, d->db_entries, &k, &v);
	if (rc != 0)
		return nqi_store_err(rc);
	Nq__V1__DeadJob *rec =
	    nq__v1__dead_job__unpack(a, v.mv_size, v.mv_data);
	if (!rec)
		return NQ_ESTORE;
	*out = rec;
	return NQ_OK;
}

bool dlq_store_has(dlq *d, MDB_txn *txn, uint64_t id)
{
	uint8_t kb[8];
	nqi_be64_put(kb, id);
	MDB_val k = {8, kb}, v;
	return mdb_get(txn, d->db_entries, &k, &v) == 0;
}

/* The time index's copy: what a listing shows, without the bulk. */
static int pack_summary(const Nq__V1__DeadJob *rec, uint8_t **buf, size_t *len)
{
	Nq__V1__DeadJob s = *rec;
	Nq__V1__Job j = *rec->job;
	Nq__V1__JobSpec sp;
	if (j.spec) {
		sp = *j.spec;
		sp.payload.data = NULL;
		sp.payload.len = 0;
		j.spec = &sp;
	}
	j.result.data = NULL;
	j.result.len = 0;
	if (j.n_errors > 1) {
		j.errors += j.n_errors - 1;
		j.n_errors = 1;
	}
	s.job = &j;
	return nqi_buf_pack(&s.base, buf, len);
}

static int put_val(MDB_txn *txn, MDB_dbi db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	return nqi_store_err(mdb_put(txn, db, &k, &v, 0));
}

int dlq_store_put(dlq *d, MDB_txn *txn, uint64_t id, const Nq__V1__DeadJob *rec)
{
	uint8_t idk[8], tk[16], qk[KEY_MAX];
	uint8_t *full = NULL, *sum = NULL;
	size_t flen, slen;
	const char *queue = rec_queue(rec);
	nqi_be64_put(idk, id);
	dlq_time_key(tk, rec->dead_at_us, id);
	size_t qlen = queue_key(qk, queue, rec->dead_at_us, id);
	int rv = nqi_buf_pack(&rec->base, &full, &flen);
	if (rv == 0)
		rv = pack_summary(rec, &sum, &slen);
	if (rv == 0)
		rv = put_val(txn, d->db_entries, idk, 8, full, flen);
	if (rv == 0)
		rv = put_val(txn, d->db_time, tk, 16, sum, slen);
	if (rv == 0)
		rv = put_val(txn, d->db_queue, qk, qlen, "", 0);
	if (rv == 0)
		rv = count_add(d, txn, queue, rec->reason, +1);
	free(full);
	free(sum);
	return rv;
}

static int del_key(MDB_txn *txn, MDB_dbi db, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};
	int rc = mdb_del(txn, db, &k, NULL);
	return rc == MDB_NOTFOUND ? NQ_OK : nqi_store_err(rc);
}

/* Removes the entry and its keys in all three indexes. */
static int del_keys(dlq *d, MDB_txn *txn, uint64_t id, uint64_t dead_at_us,
    const char *queue, const char *reason)
{
	uint8_t idk[8], tk[16], qk[KEY_MAX];
	nqi_be64_put(idk, id);
	dlq_time_key(tk, dead_at_us, id);
	size_t qlen = queue_key(qk, queue, dead_at_us, id);
	int rv = del_key(txn, d->db_entries, idk, 8);
	if (rv == 0)
		rv = del_key(txn, d->db_time, tk, 16);
	if (rv == 0)
		rv = del_key(txn, d->db_queue, qk, qlen);
	if (rv == 0)
		rv = count_add(d, txn, queue, reason, -1);
	return rv;
}

int dlq_store_del(dlq *d, MDB_txn *txn, uint64_t id)
{
	Nq__V1__DeadJob *rec;
	int rv = dlq_store_get(d, txn, id, NULL, &rec);
	if (rv != 0)
		return rv;
	rv = del_keys(d, txn, id, rec->dead_at_us, rec_queue(rec), rec->reason);
	nq__v1__dead_job__free_unpacked(rec, NULL);
	return rv;
}

int dlq_store_summary(dlq *d, MDB_txn *txn, uint64_t dead_at_us, uint64_t id,
    ProtobufCAllocator *a, Nq__V1__DeadJob **out)
{
	uint8_t tk[16];
	dlq_time_key(tk, dead_at_us, id);
	MDB_val k = {16, tk}, v;
	int rc = mdb_get(txn, d->db_time, &k, &v);
	if (rc != 0)
		return nqi_store_err(rc);
	Nq__V1__DeadJob *s = nq__v1__dead_job__unpack(a, v.mv_size, v.mv_data);
	if (!s)
		return NQ_ESTORE;
	*out = s;
	return NQ_OK;
}

int dlq_store_probe(dlq *d, MDB_txn *txn)
{
	uint8_t v[8];
	nqi_be64_put(v, nqi_now_us());
	return put_val(txn, d->db_meta, "probe", 5, v, 8);
}

/* ---- strings stored before they were checked ---- */

/* Puts the repaired entry rec, packed in v, at cur (key id), and the
 * summary made from it in the time index. */
static int put_repaired(dlq *d, MDB_txn *txn, MDB_cursor *cur, uint64_t id,
    const MDB_val *v, const Nq__V1__DeadJob *rec)
{
	uint8_t key[8], tk[16], *sum = NULL;
	size_t slen;
	nqi_be64_put(key, id);
	dlq_time_key(tk, rec->dead_at_us, id);
	MDB_val k = {8, key}, nv = *v;
	int rv = nqi_store_err(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
	if (rv == 0)
		rv = pack_summary(rec, &sum, &slen);
	if (rv == 0)
		rv = put_val(txn, d->db_time, tk, 16, sum, slen);
	free(sum);
	return rv;
}

/* Makes the strings of the entry at cur (key k, value v) text when an
 * older nq-dlq stored one with a NUL byte or bytes that are not UTF-8
 * (nqi_pb_repair_strings, as the broker repairs its records), and logs
 * it. A record that is text already costs one pass over its bytes; one
 * that does not decode stays as it is (show answers NQ_ESTORE). */
static int repair_entry(
    dlq *d, MDB_txn *txn, MDB_cursor *cur, const MDB_val *k, const MDB_val *v)
{
	uint8_t *fixed;
	size_t len;
	char why[128], id[NQ_ID_MAX];
	if (k->mv_size != 8)
		return NQ_OK;
	int rv = nqi_pb_repair_strings(&nq__v1__dead_job__descriptor,
	    v->mv_data, v->mv_size, &fixed, &len, why, sizeof why);
	if (rv == NQ_EPROTO || (rv == 0 && !fixed))
		return NQ_OK;
	if (rv != 0)
		return rv;
	uint64_t n = nqi_be64_get(k->mv_data);
	MDB_val nv = {len, fixed};
	Nq__V1__DeadJob *rec = nq__v1__dead_job__unpack(NULL, len, fixed);
	bool fits = rec && rec->job;
	if (fits)
		rv = put_repaired(d, txn, cur, n, &nv, rec);
	nq__v1__dead_job__free_unpacked(rec, NULL);
	free(fixed);
	nqi_id_format(n, id);
	if (fits && rv == 0)
		nqi_warn("NQ-RECORD-REPAIRED", NQI_S("id", id),
		    NQI_S("why", why),
		    NQI_S("note", "stored by an older nq-dlq; NUL ends the "
		                  "string, invalid bytes are U+FFFD"));
	return rv;
}

static int repair_entries(dlq *d, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rv = NQ_OK;
	if (mdb_cursor_open(txn, d->db_entries, &cur) != 0)
		return NQ_ESTORE;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; rc == 0 && rv == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		rv = repair_entry(d, txn, cur, &k, &v);
	mdb_cursor_close(cur);
	if (rv == 0 && rc != MDB_NOTFOUND)
		rv = nqi_store_err(rc);
	return rv;
}

/*
 * An nq-dlq older than the string checks of the codec stored any bytes it
 * was handed, and replies built from such an entry (list, show, a replay
 * to the broker) are refused whole by strict decoders. This pass makes
 * every entry text, once per store: it runs at open until it has
 * committed META_TEXT, and every string stored since was checked at
 * decode. Only an older nq-dlq run on the store afterwards could store
 * such bytes again. Once, not at each start, since nq-dlq reads no entry
 * at start otherwise and its store may hold many.
 */
static int repair_pass(dlq *d, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = {sizeof META_TEXT - 1, META_TEXT}, v, one = {1, "1"};
	int rv = nqi_store_begin(d->store, true, &txn);
	if (rv != 0) {
		snprintf(
		    err, errlen, "cannot begin a write: %s", nq_strerror(rv));
		return rv;
	}
	int rc = mdb_get(txn, d->db_meta, &k, &v);
	if (rc == 0) {
		mdb_txn_abort(txn);
		return NQ_OK;
	}
	rv = rc == MDB_NOTFOUND ? repair_entries(d, txn) : nqi_store_err(rc);
	if (rv == 0)
		rv = nqi_store_err(mdb_put(txn, d->db_meta, &k, &one, 0));
	if (rv == 0)
		rv = nqi_store_commit(d->store, txn);
	else
		mdb_txn_abort(txn);
	if (rv != 0)
		snprintf(err, errlen, "cannot make old entries text: %s",
		    nq_strerror(rv));
	return rv;
}

/* ---- walks ---- */

/* The prefix of an index key: "queue\0" for the queue index, nothing for
 * the time index. */
static size_t index_prefix(uint8_t *out, const char *queue)
{
	if (!queue)
		return 0;
	size_t n = strlen(queue);
	memcpy(out, queue, n);
	out[n] = 0;
	return n + 1;
}

/* Reads dead time and id from an index key with the given prefix; false
 * when the key is of another queue (or not an index key). */
static bool index_key_parse(const MDB_val *k, const uint8_t *prefix,
    size_t plen, uint64_t *dead_at_us, uint64_t *id)
{
	const uint8_t *p = k->mv_data;
	if (k->mv_size != plen + 16 || memcmp(p, prefix, plen) != 0)
		return false;
	*dead_at_us = nqi_be64_get(p + plen);
	*id = nqi_be64_get(p + plen + 8);
	return true;
}

int dlq_store_next_oldest(dlq *d, MDB_txn *txn, const char *queue,
    bool from_start, uint64_t dead_at_us, uint64_t id, uint64_t *out_dead_at,
    uint64_t *out_id)
{
	MDB_cursor *cur;
	uint8_t kb[KEY_MAX];
	size_t plen = index_prefix(kb, queue), klen = plen;
	if (!from_start) {
		dlq_time_key(kb + plen, dead_at_us, id);
		klen += 16;
	}
	if (mdb_cursor_open(txn, queue ? d->db_queue : d->db_time, &cur) != 0)
		return NQ_ESTORE;
	MDB_val k = {klen, kb}, v;
	int rc = klen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
	              : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0 && !from_start && k.mv_size == klen &&
	    memcmp(k.mv_data, kb, klen) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	int rv = rc == 0 ? NQ_OK : nqi_store_err(rc);
	if (rv == 0 && !index_key_parse(&k, kb, plen, out_dead_at, out_id))
		rv = NQ_ENOTFOUND;
	mdb_cursor_close(cur);
	return rv;
}

int dlq_store_drop_oldest(dlq *d, MDB_txn *txn, const char *queue,
    uint64_t before_us, uint64_t max, dlq_drop_cb cb, void *arg, uint64_t *n,
    bool *more)
{
	uint64_t count = 0, at, id;
	bool left = false;
	int rv;
	while ((rv = dlq_store_next_oldest(
	            d, txn, queue, true, 0, 0, &at, &id)) == 0 &&
	       at < before_us) {
		if (count == max) {
			left = true;
			break;
		}
		Nq__V1__DeadJob *s;
		if ((rv = dlq_store_summary(d, txn, at, id, NULL, &s)) != 0)
			break;
		rv = del_keys(d, txn, id, at, rec_queue(s), s->reason);
		if (rv == 0 && cb)
			cb(arg, rec_queue(s));
		nq__v1__dead_job__free_unpacked(s, NULL);
		if (rv != 0)
			break;
		count++;
	}
	if (rv != 0 && rv != NQ_ENOTFOUND)
		return rv;
	*n = count;
	*more = left;
	return NQ_OK;
}

int dlq_walk_open(dlq *d, MDB_txn *txn, const char *queue, bool from_end,
    uint64_t dead_at_us, uint64_t id, dlq_walk *w)
{
	memset(w, 0, sizeof *w);
	w->queue = queue;
	w->qlen = index_prefix(w->anchor, queue);
	w->from_end = from_end;
	if (from_end)
		memset(w->anchor + w->qlen, 0xff, 16);
	else
		dlq_time_key(w->anchor + w->qlen, dead_at_us, id);
	w->anchor_len = w->qlen + 16;
	if (mdb_cursor_open(txn, queue ? d->db_queue : d->db_time, &w->cur))
		return NQ_ESTORE;
	return NQ_OK;
}

int dlq_walk_prev(dlq_walk *w, uint64_t *dead_at_us, uint64_t *id)
{
	MDB_val k = {w->anchor_len, w->anchor}, v;
	int rc;
	if (!w->started) {
		w->started = true;
		/* The first key at or after the anchor; one step back is the
		 * newest key strictly before it. */
		rc = mdb_cursor_get(w->cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0)
			rc = mdb_cursor_get(w->cur, &k, &v, MDB_PREV);
		else if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(w->cur, &k, &v, MDB_LAST);
	} else {
		rc = mdb_cursor_get(w->cur, &k, &v, MDB_PREV);
	}
	if (rc != 0)
		return nqi_store_err(rc);
	if (!index_key_parse(&k, w->anchor, w->qlen, dead_at_us, id))
		return NQ_ENOTFOUND;
	return NQ_OK;
}

void dlq_walk_close(dlq_walk *w)
{
	if (w->cur)
		mdb_cursor_close(w->cur);
	w->cur = NULL;
}
