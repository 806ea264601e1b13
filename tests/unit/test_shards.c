/* The shard map: its text, the URLs it derives, pins, and rendezvous
 * hashing (a shard added moves about 1/N of the queues, all of them to
 * the new shard). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nq/nq.h"
#include "shards.h"

#define NQUEUES 10000

static nqs_map *parse_ok(const char *text)
{
	nqs_map *m = NULL;
	char why[300] = "";
	int rv = nqs_parse(text, &m, why, sizeof why);
	if (rv != NQ_OK)
		fail_msg("%s: %s", text, why);
	return m;
}

static void parse_bad(const char *text, const char *says)
{
	nqs_map *m = NULL;
	char why[300] = "";
	assert_int_equal(nqs_parse(text, &m, why, sizeof why), NQ_EINVAL);
	assert_null(m);
	if (!strstr(why, says))
		fail_msg("%s: \"%s\" does not say \"%s\"", text, why, says);
}

static void test_shards_derive_urls(void **st)
{
	(void)st;
	nqs_map *m = parse_ok(" a=tcp://10.0.0.1:7400 ,b=tls+tcp://h:9000,"
	                      "b.results=tcp://h:1");
	assert_int_equal(m->n, 2);
	assert_string_equal(m->shards[0].name, "a");
	assert_string_equal(m->shards[0].url[NQS_WORK], "tcp://10.0.0.1:7401");
	assert_string_equal(
	    m->shards[0].url[NQS_RESULTS], "tcp://10.0.0.1:7402");
	assert_string_equal(
	    m->shards[0].url[NQS_EVENTS], "tcp://10.0.0.1:7403");
	assert_string_equal(m->shards[1].url[NQS_WORK], "tls+tcp://h:9001");
	assert_string_equal(m->shards[1].url[NQS_RESULTS], "tcp://h:1");
	nqs_free(m);
}

static void test_shards_refuse_bad_maps(void **st)
{
	(void)st;
	parse_bad("a=http://x:1", "a.api");
	parse_bad("a=tcp://x:1,a=tcp://y:1", "given twice");
	parse_bad("a=ipc:///tmp/a", "give a.work=URL");
	parse_bad("a.work=tcp://x:1", "no api URL");
	parse_bad("a=tcp://x:1,queue q=b", "not a shard of the map");
	parse_bad("a=tcp://x:1,nonsense", "neither");
	parse_bad("a=tcp://x:1,a.foo=tcp://x:2", ".results");
	parse_bad("/nonexistent/map", "no file of that name");
}

static void test_shards_file_pins_and_comments(void **st)
{
	(void)st;
	char path[] = "/tmp/nq-shards-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("# two brokers\n"
	      "queue emails=b   # pinned\n"
	      "a=ipc:///tmp/a-api\n"
	      "a.work=ipc:///tmp/a-work, a.results=ipc:///tmp/a-res\n"
	      "a.events=ipc:///tmp/a-ev\n"
	      "b=tcp://127.0.0.1:7500\n",
	    f);
	fclose(f);
	nqs_map *m = parse_ok(path);
	unlink(path);
	assert_int_equal(m->n, 2);
	assert_int_equal(m->npins, 1);
	assert_string_equal(m->shards[0].url[NQS_WORK], "ipc:///tmp/a-work");
	assert_int_equal(nqs_owner(m, "emails"), 1);
	nqs_free(m);
}

/* The owner does not depend on the order the map lists its shards. */
static void test_shards_order_does_not_matter(void **st)
{
	(void)st;
	nqs_map *x = parse_ok("a=tcp://h:1,b=tcp://h:11,c=tcp://h:21");
	nqs_map *y = parse_ok("c=tcp://h:21,a=tcp://h:1,b=tcp://h:11");
	char q[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(q, sizeof q, "queue-%d", i);
		assert_string_equal(x->shards[nqs_owner(x, q)].name,
		    y->shards[nqs_owner(y, q)].name);
	}
	nqs_free(x);
	nqs_free(y);
}

/* From N to N + 1 shards, about 1/(N + 1) of the queues move, each to
 * the new shard; the shards share the queues about evenly. */
static void test_shards_adding_one_moves_its_share(void **st)
{
	(void)st;
	static const char *maps[] = {
	    "s1=tcp://h:100,s2=tcp://h:200,s3=tcp://h:300",
	    "s1=tcp://h:100,s2=tcp://h:200,s3=tcp://h:300,s4=tcp://h:400",
	};
	nqs_map *before = parse_ok(maps[0]), *after = parse_ok(maps[1]);
	size_t moved = 0, per[4] = {0};
	char q[32];
	for (int i = 0; i < NQUEUES; i++) {
		snprintf(q, sizeof q, "q%d", i);
		size_t a = nqs_owner(before, q), b = nqs_owner(after, q);
		per[b]++;
		if (a == b)
			continue;
		moved++;
		assert_int_equal(b, 3); /* only ever to the new shard */
	}
	printf("moved %zu of %d queues (1/4 is %d); per shard %zu %zu %zu "
	       "%zu\n",
	    moved, NQUEUES, NQUEUES / 4, per[0], per[1], per[2], per[3]);
	assert_true(moved > NQUEUES / 4 * 9 / 10);
	assert_true(moved < NQUEUES / 4 * 11 / 10);
	for (int s = 0; s < 4; s++)
		assert_true(per[s] > NQUEUES / 4 * 9 / 10 &&
		            per[s] < NQUEUES / 4 * 11 / 10);
	nqs_free(before);
	nqs_free(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shards_derive_urls),
	    cmocka_unit_test(test_shards_refuse_bad_maps),
	    cmocka_unit_test(test_shards_file_pins_and_comments),
	    cmocka_unit_test(test_shards_order_does_not_matter),
	    cmocka_unit_test(test_shards_adding_one_moves_its_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
