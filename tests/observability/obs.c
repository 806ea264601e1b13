#include "obs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/protocol/pubsub0/pub.h>

#ifndef OBS_NQCTL
#error "OBS_NQCTL must name the nqctl binary"
#endif

#define HTTP_TIMEOUT_S 5
#define HTTP_MAX (8u << 20)

int obs_free_addr(char *out, size_t len)
{
	snprintf(out, len, "127.0.0.1:0");
	return 0;
}

/* ---- HTTP ---- */

int obs_http_connect(const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
	char host[64];
	int port;
	if (sscanf(addr, "%63[^:]:%d", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "obs: '%s' is not IPV4:PORT\n", addr);
		return -1;
	}
	sa.sin_port = htons((uint16_t)port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads the response until the body has its Content-Length (or EOF). */
static int http_read(int fd, char **out, size_t *len)
{
	size_t n = 0, cap = 65536, want = SIZE_MAX;
	char *buf = malloc(cap + 1);
	while (buf && n < want) {
		if (n == cap) {
			char *p =
			    cap < HTTP_MAX ? realloc(buf, cap * 2 + 1) : NULL;
			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
		ssize_t got = read(fd, buf + n, cap - n);
		if (got <= 0)
			break;
		n += (size_t)got;
		buf[n] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		char *cl = strcasestr(buf, "\r\nContent-Length:");
		if (end && cl && cl < end)
			want = (size_t)(end + 4 - buf) +
			       strtoull(cl + 17, NULL, 10);
	}
	if (!buf)
		return ENOMEM;
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Sends GET path on fd (with "Connection: close" unless keep) and reads
 * the answer into *status and *body. */
static int http_exchange(int fd, const char *addr, const char *path, bool keep,
    bool quiet, int *status, char **body)
{
	char req[512], *resp;
	size_t len;
	int n =
	    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
	        path, addr, keep ? "" : "Connection: close\r\n");
	int rv = write(fd, req, (size_t)n) == n ? 0 : EIO;
	if (rv == 0)
		rv = http_read(fd, &resp, &len);
	if (rv != 0)
		return rv;
	char *sep = strstr(resp, "\r\n\r\n");
	if (sscanf(resp, "HTTP/1.%*d %d", status) != 1 || !sep) {
		if (!quiet)
			fprintf(stderr,
			    "obs: GET http://%s%s: not an HTTP response: "
			    "%.200s\n",
			    addr, path, resp);
		free(resp);
		return EPROTO;
	}
	*body = strdup(sep + 4);
	free(resp);
	return *body ? 0 : ENOMEM;
}

static int http_get(
    const char *addr, const char *path, int *status, char **body, bool quiet)
{
	int fd = obs_http_connect(addr);
	if (fd < 0) {
		if (!quiet)
			fprintf(stderr,
			    "obs: cannot connect to http://%s: %s\n", addr,
			    strerror(errno));
		return ECONNREFUSED;
	}
	int rv = http_exchange(fd, addr, path, false, quiet, status, body);
	close(fd);
	return rv;
}

int obs_http_request(const char *addr, const char *method, const char *path,
    const char *body, int *status, char **resp)
{
	char head[512], *all = NULL;
	size_t blen = body ? strlen(body) : 0, len;
	int fd = obs_http_connect(addr);
	if (fd < 0)
		return ECONNREFUSED;
	int n = snprintf(head, sizeof head,
	    "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	    method, path, addr, blen);
	int rv = write(fd, head, (size_t)n) == n &&
	                 (blen == 0 || write(fd, body, blen) == (ssize_t)blen)
	             ? http_read(fd, &all, &len)
	             : EIO;
	close(fd);
	if (rv != 0)
		return rv;
	char *sep = strstr(all, "\r\n\r\n");
	if (sscanf(all, "HTTP/1.%*d %d", status) != 1 || !sep) {
		free(all);
		return EPROTO;
	}
	*resp = strdup(sep + 4);
	free(all);
	return *resp ? 0 : ENOMEM;
}

int obs_http_get_on(
    int fd, const char *addr, const char *path, int *status, char **body)
{
	return http_exchange(fd, addr, path, true, false, status, body);
}

int obs_http_get_quiet(
    const char *addr, const char *path, int *status, char **body)
{
	return http_get(addr, path, status, body, true);
}

int obs_http_get(const char *addr, const char *path, int *status, char **body)
{
	return http_get(addr, path, status, body, false);
}

int obs_scrape(const char *addr, char **text)
{
	int status = 0;
	int rv = obs_http_get(addr, "/metrics", &status, text);
	if (rv == 0 && status != 200) {
		fprintf(stderr, "obs: GET http://%s/metrics: status %d: %s\n",
		    addr, status, *text);
		free(*text);
		rv = EPROTO;
	}
	return rv;
}

int obs_wait_readyz(
    const char *addr, int want, uint64_t timeout_ms, char **body)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	int status = 0;
	char *last = NULL;
	for (;;) {
		char *b = NULL;
		if (http_get(addr, "/readyz", &status, &b, true) == 0) {
			free(last);
			last = b;
		}
		if (status == want || itest_now_ms() >= end)
			break;
		itest_sleep_ms(50);
	}
	if (status != want)
		fprintf(stderr, "obs: /readyz of %s is %d (%s), not %d\n", addr,
		    status, last ? last : "no answer", want);
	if (body)
		*body = last;
	else
		free(last);
	return status == want ? 0 : ETIMEDOUT;
}

/* ---- exposition ---- */

int obs_promtool(const char *text)
{
	char in[] = "/tmp/obs-metrics-XXXXXX", cmd[256], out[64];
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		fprintf(stderr, "obs: promtool not found; test.sh installs it "
		                "(Debian package prometheus)\n");
		return ENOENT;
	}
	int fd = mkstemp(in);
	if (fd < 0)
		return errno;
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len;
	close(fd);
	snprintf(out, sizeof out, "%s.out", in);
	snprintf(
	    cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", in, out);
	int st = ok ? system(cmd) : -1;
	int code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (code != 0) {
		char *report = NULL;
		itest_read_file(out, &report, NULL);
		fprintf(stderr,
		    "obs: promtool check metrics exited %d:\n%s\n"
		    "--- the exposition:\n%.4000s\n",
		    code, report ? report : "", text);
		free(report);
	}
	unlink(in);
	unlink(out);
	return code == 0 ? 0 : EPROTO;
}

int obs_sample(const char *text, const char *series, double *v)
{
	size_t n = strlen(series);
	const char *p = text;
	while (p && *p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			*v = strtod(p + n + 1, NULL);
			return 0;
		}
		if ((p = strchr(p, '\n')))
			p++;
	}
	fprintf(stderr, "obs: no sample %s in the exposition\n", series);
	return ENOENT;
}

/* ---- processes ---- */

int obs_broker_start_env(
    itest_env *e, const char *const *flags, const char *const *env)
{
	int rv = itest_broker_spawn(e, flags, env);
	return rv ? rv : itest_broker_wait_ready(e, 20000);
}

int obs_worker_start(
    itest_env *e, char *http_addr, const char *const *flags, itest_proc **out)
{
	const char *argv[64];
	size_t n = 0;
	for (; flags && *flags && n < 60; flags++)
		argv[n++] = *flags;
	argv[n++] = "--http";
	argv[n++] = http_addr;
	argv[n] = NULL;
	int rv = itest_worker_start(e, argv, out);
	if (rv || itest_url_port(http_addr) != 0)
		return rv;
	/* Port 0: the worker picks one and tells it. */
	if ((rv = itest_wait_bound(*out, 20000)) == 0)
		rv = itest_bound_url(*out, "http", http_addr, OBS_ADDR_MAX);
	return rv;
}

int obs_events_start(
    itest_env *e, const char *url, const char *const *flags, itest_proc **out)
{
	static int starts;
	const char *argv[64] = {
	    OBS_NQCTL, "--events", url ? url : e->events_url, "events"};
	size_t n = 4;
	char name[32];
	for (; flags && *flags && n < 63; flags++)
		argv[n++] = *flags;
	argv[n] = NULL;
	snprintf(name, sizeof name, "events.%d", ++starts);
	return itest_spawn(e, name, argv, NULL, out);
}

bool obs_file_has(const char *path, const char *needle)
{
	char *text = NULL;
	if (itest_read_file(path, &text, NULL) != 0)
		return false;
	bool has = strstr(text, needle) != NULL;
	free(text);
	return has;
}

/* Established connections whose local port is port. */
static int established(int port)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/net/tcp", "r");
	while (f && fgets(line, sizeof line, f)) {
		unsigned local_port, st;
		if (sscanf(line, " %*d: %*x:%x %*x:%*x %x", &local_port, &st) ==
		        2 &&
		    (int)local_port == port && st == 1)
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

int obs_wait_subscribers(const itest_env *e, int n, uint64_t timeout_ms)
{
	int port = 0, got = 0;
	uint64_t end = itest_now_ms() + timeout_ms;
	sscanf(e->events_url, "tcp://127.0.0.1:%d", &port);
	while ((got = established(port)) < n && itest_now_ms() < end)
		itest_sleep_ms(20);
	if (got < n) {
		fprintf(stderr, "obs: %d of %d subscribers connected to %s\n",
		    got, n, e->events_url);
		return ETIMEDOUT;
	}
	/* The broker adds the pipe right after the handshake. */
	itest_sleep_ms(100);
	return 0;
}

int obs_events_warmup(itest_env *e, itest_proc *p)
{
	nq_client *c;
	char id[NQ_ID_MAX];
	int rv = itest_client(e, 0, &c);
	uint64_t end = itest_now_ms() + 15000;
	while (rv == 0 && itest_now_ms() < end) {
		if ((rv = itest_enqueue(c, "obs-warmup", "ping", "x", id)) != 0)
			break;
		for (int i = 0; i < 10; i++) {
			if (obs_file_has(p->log, id)) {
				nq_client_close(c);
				return 0;
			}
			if (!itest_alive(p)) {
				fprintf(stderr, "obs: %s exited\n", p->name);
				itest_dump_log(p, 20);
				nq_client_close(c);
				return ECHILD;
			}
			itest_sleep_ms(30);
		}
	}
	nq_client_close(c);
	fprintf(stderr, "obs: %s never printed a warm-up event\n", p->name);
	itest_dump_log(p, 20);
	return rv ? rv : ETIMEDOUT;
}

json_t *obs_events_read(const char *log)
{
	char *text = NULL, *save = NULL;
	json_t *a = json_array();
	if (!a || itest_read_file(log, &text, NULL) != 0)
		return a;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t err;
		json_t *v = line[0] == '{' ? json_loads(line, 0, &err) : NULL;
		if (line[0] == '{' && !v)
			fprintf(
			    stderr, "obs: not JSON: %s (%s)\n", line, err.text);
		if (v)
			json_array_append_new(a, v);
	}
	free(text);
	return a;
}

json_t *obs_events_of(const json_t *events, const char *id)
{
	json_t *a = json_array(), *v;
	size_t i;
	json_array_foreach(events, i, v)
	{
		const char *got = json_string_value(json_object_get(v, "id"));
		if (got && strcmp(got, id) == 0)
			json_array_append(a, v);
	}
	return a;
}

int obs_events_wait(
    const itest_proc *p, const char *id, const char *kind, uint64_t timeout_ms)
{
	uint64_t end = itest_now_ms() + timeout_ms;
	do {
		json_t *all = obs_events_read(p->log);
		json_t *mine = obs_events_of(all, id), *v;
		size_t i;
		bool found = false;
		json_array_foreach(mine, i, v)
		{
			const char *k =
			    json_string_value(json_object_get(v, "kind"));
			found = found || (k && strcmp(k, kind) == 0);
		}
		json_decref(mine);
		json_decref(all);
		if (found)
			return 0;
		itest_sleep_ms(50);
	} while (itest_now_ms() < end);
	fprintf(stderr, "obs: %s printed no %s event of job %s\n", p->name,
	    kind, id);
	itest_dump_log(p, 20);
	return ETIMEDOUT;
}

int obs_stop(itest_proc *p)
{
	itest_signal(p, SIGTERM);
	if (itest_wait_exit(p, 10000) != 0) {
		fprintf(
		    stderr, "obs: %s still runs 10 s after SIGTERM\n", p->name);
		itest_kill_tree(p);
		return -1;
	}
	return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
}

/* ---- a stand-in publisher ---- */

int obs_pub_open(nng_socket *s, char *url, size_t len)
{
	nng_listener l;
	int port = 0;
	int rv = nng_pub0_open(s);
	if (rv == 0 && (rv = nng_listen(*s, "tcp://127.0.0.1:0", &l, 0)) == 0)
		rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
	if (rv != 0) {
		fprintf(stderr, "obs: cannot publish: %s\n", nng_strerror(rv));
		nng_close(*s);
		return rv;
	}
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
	return 0;
}

int obs_pub_events(
    nng_socket s, const char *topic, Nq__V1__JobEvent *const *events, size_t n)
{
	Nq__V1__EventBatch b = NQ__V1__EVENT_BATCH__INIT;
	b.events = (Nq__V1__JobEvent **)events;
	b.n_events = n;
	size_t tlen = strlen(topic) + 1;
	size_t len = tlen + nq__v1__event_batch__get_packed_size(&b);
	uint8_t *buf = malloc(len);
	if (!buf)
		return ENOMEM;
	memcpy(buf, topic, tlen);
	nq__v1__event_batch__pack(&b, buf + tlen);
	int rv = nng_send(s, buf, len, 0);
	free(buf);
	return rv;
}

int obs_flaky_worker_start(itest_env *e, const char *queues)
{
	char script[PATH_MAX], handler[PATH_MAX + 16], http[64];
	itest_proc *w;
	int rv = itest_write_script(e, "flaky",
	    "if [ \"$NQ_ATTEMPT\" = 1 ]; then\n"
	    "  echo 'first attempt fails' >&2; exit 1\n"
	    "fi\necho done\n",
	    script, sizeof script);
	if (rv == 0)
		rv = obs_free_addr(http, sizeof http);
	if (rv != 0)
		return rv;
	snprintf(handler, sizeof handler, "*=%s", script);
	const char *flags[] = {"--queues", queues, "--handler", handler, NULL};
	return obs_worker_start(e, http, flags, &w);
}

const char *obs_json_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long obs_json_num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}
