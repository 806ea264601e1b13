/*
 * beanstalk_bench: nq-bench's workloads against beanstalkd, measured the
 * same way, printing the same line:
 *
 *   bench jobs=N enqueue_per_s=X e2e_per_s=Y p50_ms=A p99_ms=B p999_ms=C
 *
 * A producer process (--producers connections, one thread each) pipelines
 * --batch puts per write and reads their INSERTED replies; --workers worker
 * processes each run --concurrency connections that reserve a job, and
 * send its delete together with the next reserve. Every payload starts
 * with its sequence number and the CLOCK_MONOTONIC time its put was
 * written; latency is reserve reply received (handler start) minus that.
 * e2e ends at the last DELETED reply.
 *
 * Build: cc -O2 -pthread -o beanstalk_bench beanstalk_bench.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + 34 * HIST_SUB)
#define PAYLOAD_MIN 16
#define MAX_PROCS 64
#define LINE_MAX_ 256

typedef struct conf {
	const char *host;
	int port;
	const char *tube;
	uint64_t jobs, batch, payload_size, rate, max_time_ms;
	int workers, concurrency, producers;
} conf;

typedef struct shared {
	atomic_bool produce, stop;
	atomic_int ready; /* worker connections watching the tube */
	atomic_uint_least64_t first_send_ns, last_ack_ns, enqueued;
	atomic_uint_least64_t handled, deleted, last_done_ns, runs;
	atomic_int failed;
	char error[512];
	atomic_uint_least64_t hist[HIST_BUCKETS];
	atomic_uchar seen[];
} shared;

/* One buffered connection to beanstalkd. */
typedef struct conn {
	int fd;
	char buf[1 << 16];
	size_t len, off;
} conn;

static conf C;
static shared *S;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Keeps the first failure of any process for the report and ends the run. */
static void fail(const char *fmt, ...)
{
	va_list ap;
	if (atomic_exchange(&S->failed, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(S->error, sizeof S->error, fmt, ap);
		va_end(ap);
	}
	atomic_store(&S->stop, true);
}

static void store_max(atomic_uint_least64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void store_min(atomic_uint_least64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (
	    (cur == 0 || v < cur) && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static size_t hist_bucket(uint64_t us)
{
	if (us < HIST_LINEAR)
		return (size_t)us;
	int msb = 63 - __builtin_clzll(us);
	size_t i = HIST_LINEAR + (size_t)(msb - 7) * HIST_SUB +
	           (size_t)(us >> (msb - 6)) - HIST_SUB;
	return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static double hist_value(size_t i)
{
	if (i < HIST_LINEAR)
		return (double)i;
	size_t e = (i - HIST_LINEAR) / HIST_SUB,
	       sub = (i - HIST_LINEAR) % HIST_SUB;
	return (double)((HIST_SUB + sub) << (e + 1)) + (double)(1ull << e);
}

static double quantile_ms(double q)
{
	uint64_t total = 0, seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		total += S->hist[i];
	uint64_t rank = (uint64_t)(q * (double)total);
	rank = rank ? rank : 1;
	for (size_t i = 0; total && i < HIST_BUCKETS; i++)
		if ((seen += S->hist[i]) >= rank)
			return hist_value(i) / 1000;
	return 0;
}

/* ---- connections ---- */

static int conn_open(conn *c)
{
	struct sockaddr_in a = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)C.port)};
	int one = 1;
	if (inet_pton(AF_INET, C.host, &a.sin_addr) != 1) {
		fail("--host %s is not an IPv4 address", C.host);
		return -1;
	}
	c->len = c->off = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (void *)&a, sizeof a) != 0) {
		fail("connect %s:%d: %s", C.host, C.port, strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

static int conn_write(conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fail("write to beanstalkd: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int conn_fill(conn *c)
{
	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof c->buf) {
		fail("a reply of beanstalkd does not fit %zu bytes",
		    sizeof c->buf);
		return -1;
	}
	ssize_t r;
	do
		r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		fail("read from beanstalkd: %s",
		    r == 0 ? "connection closed" : strerror(errno));
		return -1;
	}
	c->len += (size_t)r;
	return 0;
}

/* Reads one "\r\n"-terminated line into out (NUL-terminated, no CRLF). */
static int conn_line(conn *c, char *out, size_t cap)
{
	for (;;) {
		char *nl = memmem(c->buf + c->off, c->len - c->off, "\r\n", 2);
		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			snprintf(out, cap, "%.*s", (int)n, c->buf + c->off);
			c->off += n + 2;
			return 0;
		}
		if (conn_fill(c) != 0)
			return -1;
	}
}

/* Reads n body bytes and their CRLF; *body points into the buffer until
 * the next read. */
static int conn_body(conn *c, size_t n, const uint8_t **body)
{
	while (c->len - c->off < n + 2)
		if (conn_fill(c) != 0)
			return -1;
	*body = (const uint8_t *)c->buf + c->off;
	c->off += n + 2;
	return 0;
}

static int expect(conn *c, const char *want)
{
	char line[LINE_MAX_];
	if (conn_line(c, line, sizeof line) != 0)
		return -1;
	if (strncmp(line, want, strlen(want)) == 0)
		return 0;
	fail("beanstalkd said '%s', expected '%s'", line, want);
	return -1;
}

/* ---- producer ---- */

typedef struct prod {
	pthread_t thr;
	atomic_uint_least64_t *next;
	uint64_t t0_ns;
	char *buf;
} prod;

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static size_t build_puts(char *buf, uint64_t first, size_t n, uint64_t t_ns)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		len += (size_t)sprintf(buf + len, "put 1024 0 60 %llu\r\n",
		    (unsigned long long)C.payload_size);
		uint8_t *p = (uint8_t *)buf + len;
		memset(p, 'x', C.payload_size);
		put_le64(p, first + i);
		put_le64(p + 8, t_ns);
		len += C.payload_size;
		memcpy(buf + len, "\r\n", 2);
		len += 2;
	}
	return len;
}

static int send_batch(conn *c, prod *p, uint64_t first, size_t n)
{
	uint64_t t = now_ns();
	size_t len = build_puts(p->buf, first, n, t);
	store_min(&S->first_send_ns, t);
	if (conn_write(c, p->buf, len) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (expect(c, "INSERTED ") != 0)
			return -1;
	atomic_fetch_add(&S->enqueued, n);
	store_max(&S->last_ack_ns, now_ns());
	return 0;
}

static void *prod_cb(void *arg)
{
	prod *p = arg;
	conn *c = calloc(1, sizeof *c);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "use %s\r\n", C.tube);
	if (!c || conn_open(c) != 0 || conn_write(c, cmd, strlen(cmd)) != 0 ||
	    expect(c, "USING") != 0)
		goto out;
	while (!atomic_load(&S->stop)) {
		uint64_t first = atomic_fetch_add(p->next, 1) * C.batch;
		if (first >= C.jobs)
			break;
		size_t n = C.jobs - first < C.batch ? C.jobs - first : C.batch;
		if (C.rate) {
			uint64_t due =
			    p->t0_ns +
			    (uint64_t)((double)first * 1e9 / (double)C.rate);
			struct timespec ts = {(time_t)(due / 1000000000u),
			    (long)(due % 1000000000u)};
			clock_nanosleep(
			    CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		if (send_batch(c, p, first, n) != 0)
			break;
	}
out:
	if (c && c->fd > 0)
		close(c->fd);
	free(c);
	return NULL;
}

static int producer_main(void)
{
	atomic_uint_least64_t next = 0;
	prod ps[MAX_PROCS];
	while (!atomic_load(&S->produce) && !atomic_load(&S->stop))
		usleep(500);
	if (atomic_load(&S->stop))
		return 1;
	uint64_t t0 = now_ns();
	for (int i = 0; i < C.producers; i++) {
		ps[i] = (prod){.next = &next,
		    .t0_ns = t0,
		    .buf = malloc(C.batch * (C.payload_size + 48))};
		if (!ps[i].buf ||
		    pthread_create(&ps[i].thr, NULL, prod_cb, &ps[i]) != 0) {
			fail("cannot start producer thread %d", i);
			return 1;
		}
	}
	for (int i = 0; i < C.producers; i++) {
		pthread_join(ps[i].thr, NULL);
		free(ps[i].buf);
	}
	return atomic_load(&S->failed) ? 1 : 0;
}

/* ---- workers ---- */

/* Handles a reserved job: notes the latency of its first run. */
static void handle(const uint8_t *body, size_t n, uint64_t t_ns)
{
	if (n < PAYLOAD_MIN)
		return;
	uint64_t seq = get_le64(body);
	uint64_t sent = get_le64(body + 8);
	if (seq >= C.jobs)
		return;
	atomic_fetch_add(&S->runs, 1);
	unsigned char bit = (unsigned char)(1u << (seq & 7));
	if (atomic_fetch_or(&S->seen[seq >> 3], bit) & bit)
		return;
	atomic_fetch_add(
	    &S->hist[hist_bucket(t_ns > sent ? (t_ns - sent) / 1000 : 0)], 1);
	atomic_fetch_add(&S->handled, 1);
}

/* One reserve reply: 1 and *id when a job came, 0 on a timeout. */
static int reserve_reply(conn *c, unsigned long long *id)
{
	char line[LINE_MAX_];
	unsigned long long bytes;
	const uint8_t *body;
	if (conn_line(c, line, sizeof line) != 0)
		return -1;
	uint64_t t = now_ns();
	if (strcmp(line, "TIMED_OUT") == 0 ||
	    strcmp(line, "DEADLINE_SOON") == 0)
		return 0;
	if (sscanf(line, "RESERVED %llu %llu", id, &bytes) != 2) {
		fail("beanstalkd said '%s' to reserve", line);
		return -1;
	}
	if (conn_body(c, (size_t)bytes, &body) != 0)
		return -1;
	handle(body, (size_t)bytes, t);
	return 1;
}

static void *slot_cb(void *arg)
{
	conn *c = arg;
	char cmd[200];
	unsigned long long id = 0;
	bool have = false;
	snprintf(cmd, sizeof cmd, "watch %s\r\nignore default\r\n", C.tube);
	if (conn_open(c) != 0 || conn_write(c, cmd, strlen(cmd)) != 0 ||
	    expect(c, "WATCHING") != 0 || expect(c, "WATCHING") != 0)
		return NULL;
	atomic_fetch_add(&S->ready, 1);
	while (!atomic_load(&S->stop) || have) {
		int n =
		    have ? snprintf(cmd, sizeof cmd,
		               "delete %llu\r\nreserve-with-timeout 1\r\n", id)
		         : snprintf(
		               cmd, sizeof cmd, "reserve-with-timeout 1\r\n");
		if (conn_write(c, cmd, (size_t)n) != 0)
			break;
		if (have && expect(c, "DELETED") != 0)
			break;
		if (have) {
			store_max(&S->last_done_ns, now_ns());
			atomic_fetch_add(&S->deleted, 1);
		}
		int got = reserve_reply(c, &id);
		if (got < 0)
			break;
		have = got == 1;
	}
	close(c->fd);
	return NULL;
}

static int worker_main(void)
{
	pthread_t thr[1024];
	conn *cs = calloc((size_t)C.concurrency, sizeof *cs);
	if (!cs)
		return 1;
	for (int i = 0; i < C.concurrency; i++)
		if (pthread_create(&thr[i], NULL, slot_cb, &cs[i]) != 0) {
			fail("cannot start worker thread %d", i);
			atomic_store(&S->stop, true);
			C.concurrency = i;
		}
	for (int i = 0; i < C.concurrency; i++)
		pthread_join(thr[i], NULL);
	free(cs);
	return atomic_load(&S->failed) ? 1 : 0;
}

/* ---- the run ---- */

static uint64_t flag_u64(const char *name, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end) {
		fprintf(stderr,
		    "beanstalk_bench: --%s: '%s' is not a whole "
		    "number\n",
		    name, v);
		exit(2);
	}
	return n;
}

static void parse(int argc, char **argv)
{
	static const struct option opts[] = {{"host", 1, 0, 'h'},
	    {"port", 1, 0, 'p'}, {"tube", 1, 0, 't'}, {"jobs", 1, 0, 'n'},
	    {"batch", 1, 0, 'b'}, {"workers", 1, 0, 'w'},
	    {"concurrency", 1, 0, 'c'}, {"producers", 1, 0, 'P'},
	    {"payload-size", 1, 0, 's'}, {"rate", 1, 0, 'r'},
	    {"duration-ms", 1, 0, 'd'}, {"max-time-ms", 1, 0, 'm'}, {0}};
	uint64_t duration_ms = 0;
	int o;
	C = (conf){.host = "127.0.0.1",
	    .port = 11300,
	    .tube = "bench",
	    .jobs = 100000,
	    .batch = 100,
	    .payload_size = 100,
	    .max_time_ms = 600000,
	    .workers = 4,
	    .concurrency = 16,
	    .producers = 1};
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *name = "?";
		for (size_t i = 0; opts[i].name; i++)
			if (opts[i].val == o)
				name = opts[i].name;
		switch (o) {
		case 'h':
			C.host = optarg;
			break;
		case 't':
			C.tube = optarg;
			break;
		case 'p':
			C.port = (int)flag_u64(name, optarg);
			break;
		case 'n':
			C.jobs = flag_u64(name, optarg);
			break;
		case 'b':
			C.batch = flag_u64(name, optarg);
			break;
		case 'w':
			C.workers = (int)flag_u64(name, optarg);
			break;
		case 'c':
			C.concurrency = (int)flag_u64(name, optarg);
			break;
		case 'P':
			C.producers = (int)flag_u64(name, optarg);
			break;
		case 's':
			C.payload_size = flag_u64(name, optarg);
			break;
		case 'r':
			C.rate = flag_u64(name, optarg);
			break;
		case 'd':
			duration_ms = flag_u64(name, optarg);
			break;
		case 'm':
			C.max_time_ms = flag_u64(name, optarg);
			break;
		default:
			exit(2);
		}
	}
	if (C.rate)
		C.jobs = C.rate * duration_ms / 1000;
	if (C.jobs == 0 || C.batch == 0 || C.payload_size < PAYLOAD_MIN ||
	    C.workers < 1 || C.workers > MAX_PROCS || C.concurrency < 1 ||
	    C.concurrency > 1024 || C.producers < 1 ||
	    C.producers > MAX_PROCS || (C.rate && !duration_ms)) {
		fprintf(stderr,
		    "beanstalk_bench: need --jobs >= 1 (or --rate "
		    "with --duration-ms), --batch >= 1, "
		    "--payload-size >= 16, --workers and --producers "
		    "1..64, --concurrency 1..1024\n");
		exit(2);
	}
}

static pid_t spawn(int (*body)(void))
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		/* Ends with a killed parent instead of waiting forever. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		_exit(body());
	}
	return pid;
}

/* Waits for cond with the run's deadline; 0 when it came true. */
static int wait_for(bool (*cond)(void), uint64_t deadline_ns, const char *what)
{
	while (!cond()) {
		if (atomic_load(&S->failed))
			return -1;
		if (now_ns() > deadline_ns) {
			fail("gave up %s: %llu of %llu jobs enqueued, %llu run",
			    what, (unsigned long long)S->enqueued,
			    (unsigned long long)C.jobs,
			    (unsigned long long)S->handled);
			return -1;
		}
		usleep(200);
	}
	return 0;
}

static bool workers_ready(void)
{
	return atomic_load(&S->ready) >= C.workers * C.concurrency;
}

static bool all_deleted(void)
{
	return atomic_load(&S->deleted) >= C.jobs &&
	       atomic_load(&S->handled) >= C.jobs;
}

static double per_s(uint64_t from, uint64_t to)
{
	return to > from ? (double)C.jobs * 1e9 / (double)(to - from) : 0;
}

int main(int argc, char **argv)
{
	pid_t pids[MAX_PROCS + 1];
	parse(argc, argv);
	size_t len = sizeof(shared) + C.jobs / 8 + 1;
	S = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (S == MAP_FAILED) {
		perror("beanstalk_bench: mmap");
		return 1;
	}
	uint64_t deadline = now_ns() + C.max_time_ms * 1000000u;
	for (int i = 0; i < C.workers; i++)
		pids[i] = spawn(worker_main);
	pids[C.workers] = spawn(producer_main);
	int rc = wait_for(workers_ready, deadline, "starting the workers");
	atomic_store(&S->produce, true);
	if (rc == 0)
		rc = wait_for(all_deleted, deadline, "waiting for the jobs");
	atomic_store(&S->stop, true);
	for (int i = 0; i <= C.workers; i++)
		waitpid(pids[i], NULL, 0);
	if (rc != 0 || atomic_load(&S->failed)) {
		fprintf(stderr, "beanstalk_bench: %s\n", S->error);
		return 1;
	}
	printf("bench jobs=%llu enqueue_per_s=%.0f e2e_per_s=%.0f p50_ms=%.3f "
	       "p99_ms=%.3f p999_ms=%.3f\n",
	    (unsigned long long)C.jobs, per_s(S->first_send_ns, S->last_ack_ns),
	    per_s(S->first_send_ns, S->last_done_ns), quantile_ms(0.50),
	    quantile_ms(0.99), quantile_ms(0.999));
	return 0;
}
