/*
 * nqctl top: the "metrics" topic as a table (plain lines when stdout is no
 * terminal), as JSON lines with --json, limited by --queue and --duration;
 * and against the real broker, the depth of a queue as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void pack_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	pack_str(pk, k);
	msgpack_pack_uint64(pk, v);
}

static void pack_f64(msgpack_packer *pk, const char *k, double v)
{
	pack_str(pk, k);
	msgpack_pack_double(pk, v);
}

/* A metrics map as the broker publishes it, with two queues; "mail" has
 * no latency yet (NaN, which JSON shows as null). */
static void pack_metrics(msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_sbuffer_write(sb, "metrics", 7);
	msgpack_pack_map(&pk, 3);
	pack_u64(&pk, "at_us", 1795818269314271ull);
	pack_str(&pk, "broker");
	msgpack_pack_map(&pk, 4);
	pack_u64(&pk, "commits", 120);
	pack_u64(&pk, "jobs_stored", 33001);
	pack_u64(&pk, "events_published", 41248);
	pack_u64(&pk, "events_dropped", 3);
	pack_str(&pk, "queues");
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "reports");
	msgpack_pack_map(&pk, 6);
	pack_u64(&pk, "ready", 23526);
	pack_u64(&pk, "leased", 493);
	pack_f64(&pk, "succeeded_per_s", 8972.03);
	pack_f64(&pk, "latency_p50_s", 0.0452);
	pack_f64(&pk, "latency_p99_s", 2.5);
	pack_f64(&pk, "dead_letter_ratio", 0.125);
	pack_str(&pk, "mail");
	msgpack_pack_map(&pk, 3);
	pack_u64(&pk, "ready", 7);
	pack_f64(&pk, "oldest_ready_age_s", 90);
	pack_f64(&pk, "latency_p50_s", NAN);
}

typedef struct feeder {
	nng_socket pub;
	atomic_bool stop;
	pthread_t thr;
} feeder;

/* Publishes the map every 100 ms, as the broker does every second. */
static void *feed_main(void *arg)
{
	feeder *f = arg;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_metrics(&sb);
	while (!atomic_load(&f->stop)) {
		nng_send(f->pub, sb.data, sb.size, 0);
		itest_sleep_ms(100);
	}
	msgpack_sbuffer_destroy(&sb);
	return NULL;
}

static void feeder_start(feeder *f, char *url, size_t len)
{
	atomic_init(&f->stop, false);
	assert_int_equal(obs_pub_open(&f->pub, url, len), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, feed_main, f), 0);
}

static void feeder_stop(feeder *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thr, NULL);
	nng_close(f->pub);
}

/* The table row of queue q in out, or NULL. */
static const char *row_of(const char *out, const char *q)
{
	size_t n = strlen(q);
	for (const char *p = out; p; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (strncmp(p, q, n) == 0 && p[n] == ' ')
			return p;
	}
	return NULL;
}

/* The cells of one row, split on blanks. */
static int cells(const char *row, char cell[24][32])
{
	int n = 0;
	const char *end = strchr(row, '\n');
	size_t len = end ? (size_t)(end - row) : strlen(row);
	char line[512];
	snprintf(line, sizeof line, "%.*s", (int)len, row);
	for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 24;
	     t = strtok_r(NULL, " ", &save))
		snprintf(cell[n++], 32, "%s", t);
	return n;
}

static void test_top_table_from_the_metrics_topic(void **state)
{
	itest_env *e = *state;
	feeder f;
	char url[64], cell[24][32];
	itest_run r;

	feeder_start(&f, url, sizeof url);
	assert_int_equal(itest_nqctl(e, 15000, &r, "--events", url, "top",
	                     "--duration", "1500ms", NULL),
	    0);
	feeder_stop(&f);
	assert_int_equal(r.code, 0);
	/* Not a terminal: plain lines, no escape sequences. */
	assert_null(strchr(r.out, '\033'));
	assert_non_null(strstr(
	    r.out, "nq top  2026-11-27T22:24:29.314Z  " /* the map's at_us */));
	assert_non_null(strstr(r.out, "commits 120  jobs stored 33001  events "
	                              "published 41248  dropped 3"));
	assert_non_null(strstr(r.out, "QUEUE    READY  SCHED  LEASED  IDLE"));
	/* Frames at 100 ms for 1.5 s: several, each a table. */
	int frames = 0;
	for (const char *p = r.out; (p = strstr(p, "nq top ")); p++)
		frames++;
	assert_true(frames >= 5);

	/* Queues sorted; what the map lacks is "-". */
	const char *mail = row_of(r.out, "mail"),
	           *rep = row_of(r.out, "reports");
	assert_non_null(mail);
	assert_non_null(rep);
	assert_true(mail < rep);
	/* QUEUE READY SCHED LEASED IDLE DLQ-WAIT WAIT LIMIT TOKENS BRK
	 * THROTL WAIT99US RUN99US OLDEST ENQ/S DONE/S FAIL/S DEAD/S P50 P90
	 * P99 DEAD% */
	assert_int_equal(cells(mail, cell), 22);
	assert_string_equal(cell[1], "7");
	assert_string_equal(cell[2], "-");
	assert_string_equal(cell[13], "1.5m");
	assert_string_equal(cell[18], "-"); /* NaN latency */
	assert_int_equal(cells(rep, cell), 22);
	assert_string_equal(cell[1], "23526");
	assert_string_equal(cell[3], "493");
	assert_string_equal(cell[15], "8972.0");
	assert_string_equal(cell[18], "45ms");
	assert_string_equal(cell[20], "2.5s");
	assert_string_equal(cell[21], "12.5");
	itest_run_free(&r);
	itest_pass(e);
}

static void test_top_json_lines_of_one_queue(void **state)
{
	itest_env *e = *state;
	feeder f;
	char url[64];
	itest_run r;

	feeder_start(&f, url, sizeof url);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--events", url, "--json", "top",
	        "--queue", "mail", "--duration", "700ms", NULL),
	    0);
	feeder_stop(&f);
	assert_int_equal(r.code, 0);
	char *save = NULL;
	int n = 0;
	for (char *line = strtok_r(r.out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_error_t err;
		json_t *m = json_loads(line, 0, &err);
		assert_non_null(m);
		json_t *qs = json_object_get(m, "queues");
		assert_int_equal(json_object_size(qs), 1);
		json_t *mail = json_object_get(qs, "mail");
		assert_int_equal(
		    json_integer_value(json_object_get(mail, "ready")), 7);
		assert_true(
		    json_is_null(json_object_get(mail, "latency_p50_s")));
		assert_int_equal(json_integer_value(json_object_get(
		                     json_object_get(m, "broker"), "commits")),
		    120);
		json_decref(m);
	}
	assert_true(n >= 3);
	itest_run_free(&r);
	itest_pass(e);
}

static void test_top_shows_the_real_broker_queue_depth(void **state)
{
	itest_env *e = *state;
	nq_client *c;
	char id[NQ_ID_MAX], cell[24][32];
	itest_run r;

	assert_int_equal(itest_broker_start(e, NULL), 0);
	assert_int_equal(itest_client(e, 0, &c), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(itest_enqueue(c, "topq", "t", "x", id), 0);
	assert_int_equal(
	    itest_nqctl(e, 15000, &r, "--events", e->events_url, "top",
	        "--queue", "topq", "--duration", "2500ms", NULL),
	    0);
	assert_int_equal(r.code, 0);
	const char *row = row_of(r.out, "topq");
	assert_non_null(row);
	assert_int_equal(cells(row, cell), 22);
	assert_string_equal(cell[1], "5"); /* ready */
	assert_string_equal(cell[3], "0"); /* leased */
	assert_null(row_of(r.out, "obs-warmup"));
	itest_run_free(&r);

	/* A socket that publishes no metrics: exit 3 after --duration. */
	feeder quiet;
	char url[64];
	assert_int_equal(obs_pub_open(&quiet.pub, url, sizeof url), 0);
	assert_int_equal(itest_nqctl(e, 15000, &r, "--events", url, "top",
	                     "--duration", "500ms", NULL),
	    0);
	nng_close(quiet.pub);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "no metrics arrived from"));
	itest_run_free(&r);
	nq_client_close(c);
	itest_pass(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_top_table_from_the_metrics_topic, itest_setup,
	        itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_top_json_lines_of_one_queue, itest_setup, itest_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_top_shows_the_real_broker_queue_depth, itest_setup,
	        itest_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
