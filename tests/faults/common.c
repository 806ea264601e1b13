/* Helpers shared by the faultsim subcommands: plans, records, maps. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "faultsim.h"
#include "nq/nq.h"

static const char *const kind_names[] = {"ok", "flaky", "poison", "perm"};

const char *fs_kind_name(fs_kind k)
{
	return (unsigned)k < 4 ? kind_names[k] : "?";
}

size_t fs_plan_format(const fs_plan *p, char buf[FS_PAYLOAD_MAX])
{
	int n = snprintf(buf, FS_PAYLOAD_MAX, "v=%" PRIu64 " k=%s ms=%u f=%u",
	    p->value, fs_kind_name(p->kind), p->work_ms, p->fails);
	return n < 0 ? 0 : (size_t)n;
}

int fs_plan_parse(const void *payload, size_t len, fs_plan *out)
{
	char buf[FS_PAYLOAD_MAX], kind[16];
	fs_plan p = {0};
	int used = 0;
	if (!payload || len == 0 || len >= sizeof buf)
		return NQ_EINVAL;
	memcpy(buf, payload, len);
	buf[len] = '\0';
	if (sscanf(buf, "v=%" SCNu64 " k=%15s ms=%u f=%u%n", &p.value, kind,
	        &p.work_ms, &p.fails, &used) != 4 ||
	    (size_t)used != len || p.value == 0)
		return NQ_EINVAL;
	for (int k = 0; k < 4; k++) {
		if (strcmp(kind, kind_names[k]) == 0) {
			p.kind = (fs_kind)k;
			*out = p;
			return NQ_OK;
		}
	}
	return NQ_EINVAL;
}

char fs_plan_outcome(const fs_plan *p, uint32_t attempt)
{
	switch (p->kind) {
	case FS_KIND_OK:
		return 'S';
	case FS_KIND_FLAKY:
		return attempt > p->fails ? 'S' : 'F';
	case FS_KIND_POISON:
		return 'F';
	default:
		return 'P';
	}
}

int fs_log_open(fs_log *l, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "faultsim: cannot open %s: %s\n", path,
		    strerror(errno));
		return NQ_EINVAL;
	}
	l->fd = fd;
	return NQ_OK;
}

void fs_log_close(fs_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* One write per line: appends from concurrent writers never interleave
 * inside a line, and a process killed between lines leaves whole ones. */
void fs_log_line(fs_log *l, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (write(l->fd, buf, (size_t)n) != n)
		fprintf(stderr, "faultsim: record write failed: %s\n",
		    strerror(errno));
}

uint64_t fs_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void fs_sleep_ms(uint64_t ms)
{
	struct timespec ts = {
	    (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* xorshift64*, seeded once from getrandom; a mutex keeps it thread safe. */
uint64_t fs_rand(uint64_t n)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t s;
	pthread_mutex_lock(&mu);
	if (s == 0 && (getrandom(&s, sizeof s, 0) != sizeof s || s == 0))
		s = fs_now_us() | 1;
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	uint64_t r = s * 2685821657736338717ull;
	pthread_mutex_unlock(&mu);
	return r % n;
}

void fs_field(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			*s = '_';
}

uint64_t fs_id_num(const char *id)
{
	uint64_t v = 0;
	if (!id || strlen(id) != 16)
		return 0;
	for (const char *p = id; *p; p++) {
		int d = *p >= '0' && *p <= '9'   ? *p - '0'
		        : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
		                                 : -1;
		if (d < 0)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	return v;
}

uint64_t fs_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

static size_t map_slot(const fs_map *m, uint64_t key)
{
	size_t i = (size_t)(key * 11400714819323198485ull) & (m->cap - 1);
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int map_grow(fs_map *m)
{
	fs_map g = {.cap = m->cap ? m->cap * 2 : 1024};
	g.keys = calloc(g.cap, sizeof *g.keys);
	g.vals = calloc(g.cap, sizeof *g.vals);
	if (!g.keys || !g.vals) {
		fs_map_free(&g);
		return NQ_ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = map_slot(&g, m->keys[i]);
		g.keys[j] = m->keys[i];
		g.vals[j] = m->vals[i];
		g.n++;
	}
	fs_map_free(m);
	*m = g;
	return NQ_OK;
}

int fs_map_put(fs_map *m, uint64_t key, uint32_t val)
{
	if (key == 0)
		return NQ_EINVAL;
	if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0)
		return NQ_ENOMEM;
	size_t i = map_slot(m, key);
	if (!m->keys[i]) {
		m->keys[i] = key;
		m->n++;
	}
	m->vals[i] = val;
	return NQ_OK;
}

bool fs_map_get(const fs_map *m, uint64_t key, uint32_t *val)
{
	if (!m->cap || key == 0)
		return false;
	size_t i = map_slot(m, key);
	if (!m->keys[i])
		return false;
	*val = m->vals[i];
	return true;
}

void fs_map_free(fs_map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->n = 0;
}

int fs_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "faultsim %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static int opt_u64(
    const char *cmd, const char *name, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return fs_usage(
		    cmd, "--%s wants a whole number, got \"%s\"", name, s);
	*out = v;
	return 0;
}

int fs_flags_parse(
    const char *cmd, int argc, char **argv, const fs_flag *flags, size_t n)
{
	struct option opts[FS_MAX_FLAGS + 1] = {{0}};
	int ch, at = 0;
	if (n > FS_MAX_FLAGS)
		return fs_usage(cmd, "too many flags");
	for (size_t i = 0; i < n; i++)
		opts[i] = (struct option){
		    flags[i].name, required_argument, NULL, (int)i};
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", opts, &at)) != -1) {
		if (ch == '?' || ch < 0 || (size_t)ch >= n)
			return fs_usage(cmd,
			    "unknown flag or missing value: "
			    "%s",
			    argv[optind - 1]);
		const fs_flag *f = &flags[ch];
		if (f->str)
			*f->str = optarg;
		else if (opt_u64(cmd, f->name, optarg, f->num) != 0)
			return 2;
	}
	if (optind < argc)
		return fs_usage(
		    cmd, "unexpected argument \"%s\"", argv[optind]);
	return 0;
}
