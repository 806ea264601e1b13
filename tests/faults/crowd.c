/*
 * faultsim crowd: the crowds of ordinary clients that must not stall nq,
 * run beside a scenario's load until SIGTERM or --duration-ms:
 *
 *   --waiters N    clients, each on its own connection, each waiting with
 *                  libnq's nq_wait on a job of queue "crowd" that no worker
 *                  takes, again and again (as services in `nqctl enqueue
 *                  --wait` on long jobs do);
 *   --unread N     clients that send --gets Gets of a large job on one raw
 *                  connection and never read a reply; one the broker drops,
 *                  or after --hold-ms, connects and does it again;
 *   --idle-http N  connections to each ADDR:PORT of --http, each sending
 *                  part of a request and then nothing; one the server
 *                  closes, or that does not connect within 2 s, is opened
 *                  again after a backoff (250 ms, doubled while connections
 *                  live under a second, at most 8 s).
 *
 * Once every part made its first attempt (every connection tried, every
 * wait sent, every Get written) the crowd writes --ready-file. Its last
 * line on stderr counts what each part saw. Exit status: 0 when the crowd
 * came up, 1 when it never did.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "faultsim.h"
#include "nq/nq.h"
#include "nqi/codec.h"
#include "nqi/util.h"

#define CROWD_QUEUE "crowd"
#define CROWD_WAIT_MS 20000
#define CROWD_PAUSE_MS 200     /* after a failed call, before the next */
#define CROWD_BIG (240 * 1024) /* under the broker's 256 KiB default */
#define CROWD_TARGETS_MAX 8
#define CROWD_BACKOFF_MIN_MS 250
#define CROWD_BACKOFF_MAX_MS 8000
#define CROWD_CONNECTS_PER_TICK 200
#define CROWD_CONNECT_US 2000000 /* a full backlog drops SYNs: give up */
#define CROWD_STACK (256 * 1024)

static const char crowd_http_head[] = "GET /metrics HTTP/1.1\r\n"
                                      "Host: crowd\r\n";

typedef struct crowd_cfg {
	const char *api, *http, *ready_file;
	uint64_t waiters, unread, idle_http, gets, hold_ms, duration_ms;
} crowd_cfg;

typedef struct target {
	char text[64];
	struct sockaddr_in sa;
	atomic_uint_fast64_t connects, failed, closed, open, most_open;
} target;

typedef struct crowd {
	crowd_cfg cfg;
	struct sockaddr_in api;
	target t[CROWD_TARGETS_MAX];
	size_t nt;
	atomic_bool stop;
	atomic_uint_fast64_t waiting; /* waiters that sent their first wait */
	atomic_uint_fast64_t
	    unread_up; /* unread clients that sent their Gets */
	atomic_bool http_up;
	atomic_uint_fast64_t waits, wait_errs, unread_sessions, unread_dropped;
	char wait_err[24]; /* the first error a wait saw */
	pthread_mutex_t mu;
} crowd;

static volatile sig_atomic_t crowd_signaled;

static void on_term(int sig)
{
	(void)sig;
	crowd_signaled = 1;
}

/* "HOST:PORT" or "tcp://HOST:PORT", IPv4 only (the suite runs on
 * loopback). */
static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *p = strncmp(s, "tcp://", 6) == 0 ? s + 6 : s;
	const char *colon = strrchr(p, ':');
	if (!colon || (size_t)(colon - p) >= sizeof host)
		return NQ_EINVAL;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	int port = atoi(colon + 1);
	*sa = (struct sockaddr_in){
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return NQ_EINVAL;
	return NQ_OK;
}

static void note_wait_error(crowd *cr, int rv)
{
	atomic_fetch_add(&cr->wait_errs, 1);
	pthread_mutex_lock(&cr->mu);
	if (!cr->wait_err[0])
		snprintf(
		    cr->wait_err, sizeof cr->wait_err, "%s", nq_err_name(rv));
	pthread_mutex_unlock(&cr->mu);
}

/* Enqueues the job named key (once: the key makes a retry the same job). */
static int crowd_job(nq_client *c, const char *key, const void *payload,
    size_t len, char id[NQ_ID_MAX])
{
	nq_job_spec spec = {.queue = CROWD_QUEUE,
	    .type = "crowd",
	    .payload = payload,
	    .payload_len = len,
	    .idempotency_key = key};
	bool dup;
	return nq_enqueue(c, &spec, id, &dup);
}

/* ---- waiters ---- */

/* One client of the crowd: its thread's argument. */
typedef struct member {
	crowd *cr;
	uint64_t n;
} member;

static void *waiter_main(void *arg)
{
	member *w = arg;
	crowd *cr = w->cr;
	nq_client_opts o = {.api_url = cr->cfg.api, .timeout_ms = 3000};
	nq_client *c = NULL;
	char key[32], id[NQ_ID_MAX] = "";
	bool counted = false;
	snprintf(key, sizeof key, "crowd-w%" PRIu64, w->n);
	while (!atomic_load(&cr->stop)) {
		int rv = c ? NQ_OK : nq_client_open(&c, &o);
		if (rv == NQ_OK && !id[0])
			rv = crowd_job(c, key, "w", 1, id);
		if (rv == NQ_OK) {
			nq_job *job = NULL;
			if (!counted) {
				atomic_fetch_add(&cr->waiting, 1);
				counted = true;
			}
			rv = nq_wait(c, id, CROWD_WAIT_MS, &job);
			nq_job_free(job);
			atomic_fetch_add(&cr->waits, 1);
			if (rv == NQ_ETIMEDOUT)
				continue; /* the job is long: wait again */
		}
		if (rv != NQ_OK)
			note_wait_error(cr, rv);
		fs_sleep_ms(CROWD_PAUSE_MS); /* no busy loop on an ended job */
	}
	return NULL;
}

/* ---- a client that never reads ---- */

/* One SP message on the REQ side: a 64-bit length, then the request id
 * (high bit set) and the body. */
static int sp_send(int fd, uint32_t rid, nng_msg *m)
{
	size_t len = nng_msg_len(m) + 4;
	uint8_t head[12];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	rid |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(rid >> (24 - 8 * i));
	if (write(fd, head, sizeof head) != (ssize_t)sizeof head ||
	    write(fd, nng_msg_body(m), nng_msg_len(m)) !=
	        (ssize_t)nng_msg_len(m))
		return NQ_ECLOSED;
	return NQ_OK;
}

/* Connects with a small receive buffer and sends the greeting and the
 * Gets; returns the descriptor, or -1. */
static int unread_start(crowd *cr, nng_msg *get)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	int rcvbuf = 4096;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	bool ok =
	    connect(fd, (struct sockaddr *)&cr->api, sizeof cr->api) == 0 &&
	    write(fd, hello, sizeof hello) == (ssize_t)sizeof hello;
	for (uint32_t i = 0; ok && i < cr->cfg.gets; i++)
		ok = sp_send(fd, i, get) == NQ_OK;
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Holds fd, never reading, until the broker drops it, the hold ends or
 * the crowd stops. */
static void unread_hold(crowd *cr, int fd)
{
	uint64_t end = fs_now_us() + cr->cfg.hold_ms * 1000;
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	while (!atomic_load(&cr->stop) && fs_now_us() < end) {
		if (poll(&p, 1, 100) > 0 && p.revents) {
			atomic_fetch_add(&cr->unread_dropped, 1);
			return;
		}
	}
}

static int get_msg(const char *id, nng_msg **out)
{
	Nq__V1__Request req = NQ__V1__REQUEST__INIT;
	Nq__V1__GetRequest g = NQ__V1__GET_REQUEST__INIT;
	g.id = (char *)id;
	req.version = NQI_PROTOCOL_VERSION;
	req.body_case = NQ__V1__REQUEST__BODY_GET;
	req.get = &g;
	return nqi_msg_pack(&req.base, NULL, 0, out);
}

static void *unread_main(void *arg)
{
	crowd *cr = ((member *)arg)->cr;
	static char big[CROWD_BIG];
	nq_client_opts o = {.api_url = cr->cfg.api, .timeout_ms = 3000};
	nq_client *c = NULL;
	nng_msg *get = NULL;
	char id[NQ_ID_MAX];
	bool counted = false;
	memset(big, 'u', sizeof big);
	while (!atomic_load(&cr->stop) && !get) {
		if ((c || nq_client_open(&c, &o) == NQ_OK) &&
		    crowd_job(c, "crowd-big", big, sizeof big, id) == NQ_OK &&
		    get_msg(id, &get) != 0)
			get = NULL;
		if (!get)
			fs_sleep_ms(CROWD_PAUSE_MS);
	}
	nq_client_close(c);
	while (!atomic_load(&cr->stop)) {
		int fd = unread_start(cr, get);
		if (fd < 0) {
			fs_sleep_ms(CROWD_PAUSE_MS);
			continue;
		}
		atomic_fetch_add(&cr->unread_sessions, 1);
		if (!counted) {
			atomic_fetch_add(&cr->unread_up, 1);
			counted = true;
		}
		unread_hold(cr, fd);
		close(fd);
	}
	nng_msg_free(get);
	return NULL;
}

/* ---- idle HTTP connections ---- */

typedef struct slot {
	int fd;
	uint16_t t;   /* target */
	bool tried;   /* its first connect finished, one way or the other */
	bool sending; /* connecting: the head goes out once it is writable */
	uint64_t next_us, opened_us; /* connecting: when it began */
	uint32_t backoff_ms;
} slot;

typedef struct idle {
	crowd *cr;
	slot *s;
	size_t n, untried;
	int ep;
} idle;

static void open_count(target *t, int64_t d)
{
	uint64_t now = atomic_fetch_add(&t->open, (uint64_t)d) + (uint64_t)d;
	uint64_t most = atomic_load(&t->most_open);
	while (now > most &&
	       !atomic_compare_exchange_weak(&t->most_open, &most, now))
		;
}

static void slot_tried(idle *id, slot *s)
{
	if (!s->tried) {
		s->tried = true;
		id->untried--;
	}
}

/* Closes a connection and schedules the next: soon when it lived a while,
 * later and later while the server keeps dropping them at once. */
static void slot_close(idle *id, slot *s, bool was_open)
{
	uint64_t now = fs_now_us();
	target *t = &id->cr->t[s->t];
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	s->sending = false;
	if (was_open) {
		open_count(t, -1);
		atomic_fetch_add(&t->closed, 1);
	} else {
		atomic_fetch_add(&t->failed, 1);
	}
	if (was_open && now - s->opened_us > 1000000)
		s->backoff_ms = CROWD_BACKOFF_MIN_MS;
	else if (s->backoff_ms < CROWD_BACKOFF_MAX_MS)
		s->backoff_ms *= 2;
	s->next_us = now + (s->backoff_ms + fs_rand(s->backoff_ms)) * 1000;
	slot_tried(id, s);
}

static void slot_open(idle *id, slot *s)
{
	target *t = &id->cr->t[s->t];
	struct epoll_event ev = {
	    .events = EPOLLOUT | EPOLLRDHUP, .data.ptr = s};
	atomic_fetch_add(&t->connects, 1);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		slot_close(id, s, false);
		return;
	}
	int rc = connect(s->fd, (struct sockaddr *)&t->sa, sizeof t->sa);
	if ((rc != 0 && errno != EINPROGRESS) ||
	    epoll_ctl(id->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
		slot_close(id, s, false);
		return;
	}
	s->sending = true;
	s->opened_us = fs_now_us();
}

/* Connected: the head of a request, never its end. */
static void slot_connected(idle *id, slot *s)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
	int err = 0;
	socklen_t len = sizeof err;
	s->sending = false;
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err ||
	    write(s->fd, crowd_http_head, sizeof crowd_http_head - 1) !=
	        (ssize_t)sizeof crowd_http_head - 1) {
		slot_close(id, s, false);
		return;
	}
	s->opened_us = fs_now_us();
	open_count(&id->cr->t[s->t], 1);
	epoll_ctl(id->ep, EPOLL_CTL_MOD, s->fd, &ev);
	slot_tried(id, s);
}

/* The server answered (a timeout or refusal) or hung up: read what it
 * sent; at its end, close. */
static void slot_event(idle *id, slot *s, uint32_t events)
{
	char buf[4096];
	if (s->fd < 0)
		return;
	if (s->sending) {
		slot_connected(id, s);
		if (s->fd < 0 || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
			return;
	}
	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		slot_close(id, s, true);
		return;
	}
}

static void idle_tick(idle *id)
{
	uint64_t now = fs_now_us();
	int opened = 0;
	for (size_t i = 0; i < id->n; i++) {
		slot *s = &id->s[i];
		if (s->sending && now - s->opened_us > CROWD_CONNECT_US)
			slot_close(id, s, false);
		if (s->fd < 0 && s->next_us <= now &&
		    opened < CROWD_CONNECTS_PER_TICK) {
			slot_open(id, s);
			opened++;
		}
	}
	if (!id->untried)
		atomic_store(&id->cr->http_up, true);
}

static void *idle_main(void *arg)
{
	idle *id = arg;
	struct epoll_event evs[256];
	while (!atomic_load(&id->cr->stop)) {
		idle_tick(id);
		int n = epoll_wait(id->ep, evs, 256, 10);
		for (int i = 0; i < n; i++)
			slot_event(id, evs[i].data.ptr, evs[i].events);
	}
	for (size_t i = 0; i < id->n; i++)
		if (id->s[i].fd >= 0)
			close(id->s[i].fd);
	return NULL;
}

static int idle_init(idle *id, crowd *cr)
{
	id->cr = cr;
	id->n = id->untried = cr->nt * cr->cfg.idle_http;
	id->ep = epoll_create1(EPOLL_CLOEXEC);
	id->s = calloc(id->n ? id->n : 1, sizeof *id->s);
	if (id->ep < 0 || !id->s)
		return NQ_ENOMEM;
	for (size_t i = 0; i < id->n; i++)
		id->s[i] = (slot){.fd = -1,
		    .t = (uint16_t)(i % cr->nt),
		    .backoff_ms = CROWD_BACKOFF_MIN_MS};
	return NQ_OK;
}

/* ---- the crowd ---- */

static int crowd_args(int argc, char **argv, crowd *cr)
{
	crowd_cfg *c = &cr->cfg;
	const fs_flag flags[] = {{"api", NULL, &c->api},
	    {"http", NULL, &c->http}, {"ready-file", NULL, &c->ready_file},
	    {"waiters", &c->waiters, NULL}, {"unread", &c->unread, NULL},
	    {"idle-http", &c->idle_http, NULL}, {"gets", &c->gets, NULL},
	    {"hold-ms", &c->hold_ms, NULL},
	    {"duration-ms", &c->duration_ms, NULL}};
	int rv = fs_flags_parse(
	    "crowd", argc, argv, flags, sizeof flags / sizeof *flags);
	if (rv != 0)
		return rv;
	if (!c->api || parse_addr(c->api, &cr->api) != 0)
		return fs_usage("crowd", "--api tcp://HOST:PORT is required");
	char list[512];
	snprintf(list, sizeof list, "%s", c->http ? c->http : "");
	for (char *save, *a = strtok_r(list, ",", &save); a;
	     a = strtok_r(NULL, ",", &save)) {
		target *t = &cr->t[cr->nt];
		if (cr->nt == CROWD_TARGETS_MAX || parse_addr(a, &t->sa) != 0)
			return fs_usage("crowd",
			    "--http wants at most %d HOST:PORT, comma "
			    "separated; got \"%s\"",
			    CROWD_TARGETS_MAX, a);
		snprintf(t->text, sizeof t->text, "%s", a);
		cr->nt++;
	}
	if (c->idle_http && !cr->nt)
		return fs_usage("crowd", "--idle-http needs --http");
	return 0;
}

static bool crowd_up(crowd *cr)
{
	return atomic_load(&cr->waiting) == cr->cfg.waiters &&
	       atomic_load(&cr->unread_up) == cr->cfg.unread &&
	       (!cr->cfg.idle_http || atomic_load(&cr->http_up));
}

static int write_ready(const char *path)
{
	FILE *f = path ? fopen(path, "w") : NULL;
	if (f)
		fclose(f);
	return f || !path ? NQ_OK : NQ_EINVAL;
}

static void crowd_report(crowd *cr, bool up)
{
	fprintf(stderr,
	    "faultsim crowd: %s; waiters %" PRIu64 " (%" PRIu64
	    " waits ended, %" PRIu64 " failed, first %s); unread %" PRIu64
	    " (%" PRIu64 " connections of %" PRIu64 " Gets, %" PRIu64
	    " dropped by the broker)",
	    up ? "was up" : "NEVER CAME UP", cr->cfg.waiters,
	    (uint64_t)atomic_load(&cr->waits),
	    (uint64_t)atomic_load(&cr->wait_errs),
	    cr->wait_err[0] ? cr->wait_err : "-", cr->cfg.unread,
	    (uint64_t)atomic_load(&cr->unread_sessions), cr->cfg.gets,
	    (uint64_t)atomic_load(&cr->unread_dropped));
	for (size_t i = 0; i < cr->nt; i++) {
		target *t = &cr->t[i];
		fprintf(stderr,
		    "; http %s: %" PRIu64 " connects, %" PRIu64
		    " failed, %" PRIu64 " closed by it, at most %" PRIu64
		    " open at once",
		    t->text, (uint64_t)atomic_load(&t->connects),
		    (uint64_t)atomic_load(&t->failed),
		    (uint64_t)atomic_load(&t->closed),
		    (uint64_t)atomic_load(&t->most_open));
	}
	fputc('\n', stderr);
}

/* Starts a thread with a small stack; the crowd is many threads. */
static int spawn(void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, CROWD_STACK);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rv = pthread_create(&t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rv;
}

static int crowd_start(crowd *cr, idle *id, member *w, member *u)
{
	for (uint64_t i = 0; i < cr->cfg.waiters; i++) {
		w[i] = (member){.cr = cr, .n = i};
		if (spawn(waiter_main, &w[i]) != 0)
			return NQ_ENOMEM;
	}
	for (uint64_t i = 0; i < cr->cfg.unread; i++) {
		u[i] = (member){.cr = cr, .n = i};
		if (spawn(unread_main, &u[i]) != 0)
			return NQ_ENOMEM;
	}
	if (cr->cfg.idle_http &&
	    (idle_init(id, cr) != 0 || spawn(idle_main, id) != 0))
		return NQ_ENOMEM;
	return NQ_OK;
}

/* Every descriptor the hard limit allows: the crowd holds thousands. */
static void raise_nofile(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

int fs_cmd_crowd(int argc, char **argv)
{
	static crowd cr = {.cfg = {.waiters = 200,
	                       .unread = 1,
	                       .idle_http = 2000,
	                       .gets = 200,
	                       .hold_ms = 20000,
	                       .duration_ms = 120000},
	    .mu = PTHREAD_MUTEX_INITIALIZER};
	idle id = {0};
	int rv = crowd_args(argc, argv, &cr);
	if (rv != 0)
		return rv;
	member *w = calloc(cr.cfg.waiters + 1, sizeof *w);
	member *u = calloc(cr.cfg.unread + 1, sizeof *u);
	if (!w || !u)
		return 1;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	uint64_t end = fs_now_us() + cr.cfg.duration_ms * 1000;
	bool up = false;
	if (crowd_start(&cr, &id, w, u) != 0) {
		fprintf(stderr, "faultsim crowd: cannot start its threads\n");
		crowd_signaled = 1;
	}
	while (!crowd_signaled && fs_now_us() < end) {
		if (!up && crowd_up(&cr)) {
			up = true;
			if (write_ready(cr.cfg.ready_file) != 0)
				fprintf(stderr,
				    "faultsim crowd: cannot write %s\n",
				    cr.cfg.ready_file);
		}
		fs_sleep_ms(20);
	}
	atomic_store(&cr.stop, true);
	crowd_report(&cr, up);
	/* Waiters are parked in the broker for up to CROWD_WAIT_MS: the
	 * process ends without joining them, and the kernel closes every
	 * connection at once. */
	fflush(stderr);
	_exit(up ? 0 : 1);
}
