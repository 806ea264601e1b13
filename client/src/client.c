/*
 * nq_client: connection handling and the request helper every call uses;
 * the one transport of libnq, nqctl and the services that dial others.
 *
 * A client has up to four sockets (REQ to api, REQ to work, PUSH to
 * results, REQ to nq-dlq), each opened on first use, so nq_client_open
 * never touches the network. Until a socket has connected once, each
 * request first dials it, one attempt bounded by the request timeout: a
 * service that refuses the connection (or cannot be reached) fails that
 * request at once with NQ_ECONNECT (NQ_ETIMEDOUT when the attempt takes
 * the whole timeout), and the next request dials again. Once connected,
 * NNG redials in the background whenever the connection is lost, and
 * requests wait for that, up to their timeout. A subscriber to the
 * broker's events (nq_sub) is a socket of its own, dialed the same way
 * with the client's TLS settings.
 *
 * Every request runs on an nng context of its own, so the worker's fetch
 * and extend calls proceed side by side on one work socket. NNG errors
 * become nq errors here, with a message in last_error that names the
 * socket and URL.
 */
#include <errno.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nqi/conns.h"
#include "shards.h"
#include "nqi/tls.h"
#include "nqi/url.h"
#include "nqi/util.h"

#define CLIENT_TIMEOUT_MS 10000
/* Replies carry at most a fetch of many 256 KiB payloads; anything larger
 * is refused by NNG rather than buffered without bound. */
#define CLIENT_REPLY_MAX ((size_t)256 << 20)
/* Redial quickly after a broker restart, backing off to 2 s. */
#define CLIENT_RECONNECT_MIN_MS 100
#define CLIENT_RECONNECT_MAX_MS 2000

/* One coalesced batch of events may carry thousands of them. */
#define SUB_RECV_MAX ((size_t)64 << 20)
/* Messages NNG may hold for a subscriber while it prints (its maximum). */
#define SUB_RECV_BUF 8192
#define SUB_DEFAULT_URL "tcp://127.0.0.1:7403"

static const char *const end_names[NQC_NENDS] = {
    "api", "work", "results", "dlq"};
static const char *const end_services[NQC_NENDS] = {
    "the broker", "the broker", "the broker", "nq-dlq"};
static const char *const end_defaults[NQC_NENDS] = {"tcp://127.0.0.1:7400",
    "tcp://127.0.0.1:7401", "tcp://127.0.0.1:7402", "tcp://127.0.0.1:7410"};

int nqc_fail(char *err, int rv, const char *fmt, ...)
{
	va_list ap;
	if (!err)
		return rv;
	va_start(ap, fmt);
	vsnprintf(err, NQC_ERR_MAX, fmt, ap);
	va_end(ap);
	return rv;
}

void nqc_begin(nq_client *c)
{
	c->last_error[0] = '\0';
}

const char *nqc_url(const nq_client *c, nqc_end end)
{
	return c->conn[end].url;
}

NQ_API const char *nq_client_last_error(const nq_client *c)
{
	return c ? c->last_error : "";
}

NQ_API int nq_shard_map_check(const char *map, char *why, size_t len)
{
	nqs_map *m = NULL;
	int rv = nqs_parse(map, &m, why, len);
	nqs_free(m);
	return rv;
}

NQ_API const char *nq_client_shard_of(const nq_client *c, const char *queue)
{
	if (!c || !c->map || !queue)
		return NULL;
	return c->map->shards[nqs_owner(c->map, queue)].name;
}

NQ_API size_t nq_client_shard_count(const nq_client *c)
{
	return c && c->map ? c->map->n : 0;
}

NQ_API const char *nq_client_shard_name(const nq_client *c, size_t i)
{
	return i < nq_client_shard_count(c) ? c->map->shards[i].name : NULL;
}

NQ_API const char *nq_client_shard_events_url(const nq_client *c, size_t i)
{
	return i < nq_client_shard_count(c) ? c->map->shards[i].url[NQS_EVENTS]
	                                    : NULL;
}

/* Sets the URL of one endpoint (NULL: its default), after checking it;
 * why gets the reason it cannot be dialed. */
static int client_set_url(nq_client *c, nqc_end end, const char *url, char *why)
{
	if (!url)
		url = end_defaults[end];
	if (nqi_url_check(url, false, why, NQC_ERR_MAX) != 0)
		return NQ_EINVAL;
	char *copy = strdup(url);
	if (!copy)
		return NQ_ENOMEM;
	free(c->conn[end].url);
	c->conn[end].url = copy;
	return NQ_OK;
}

/*
 * Builds the TLS configuration when a URL is tls+tcp:// or wss:// or a TLS
 * option is given, so that a missing or broken file fails nq_client_open
 * rather than the first request. Without tls_ca the server is not verified.
 */
static int client_tls_setup(nq_client *c, const nq_client_opts *o)
{
	nqi_tls_opts t = {o->tls_cert, o->tls_key, o->tls_ca};
	bool any = o->tls_ca || o->tls_cert || o->tls_key || o->tls_server_name;
	for (int e = 0; e < NQC_NENDS; e++)
		any = any || nqi_url_is_tls(c->conn[e].url);
	if (!any)
		return NQ_OK;
	return nqi_tls_client_named(&t, o->tls_server_name, &c->tls,
	    c->last_error, sizeof c->last_error);
}

/* The TLS configuration for a TLS URL given after nq_client_open. With no
 * TLS option at open there is none yet: make the one nq_client_open would
 * have made, which verifies nothing. */
static int client_tls(nq_client *c, const char *url, char *err)
{
	char why[NQC_ERR_MAX] = "";
	int rv = NQ_OK;
	if (!nqi_url_is_tls(url))
		return NQ_OK;
	pthread_mutex_lock(&c->mtx);
	if (!c->tls)
		rv = nqi_tls_client_config(NULL, &c->tls, why, sizeof why);
	pthread_mutex_unlock(&c->mtx);
	return rv ? nqc_fail(err, rv, "%s: %s", url, why) : NQ_OK;
}

NQ_API int nq_client_open(nq_client **out, const nq_client_opts *opts)
{
	static const nq_client_opts defaults;
	const char *urls[NQC_NENDS];
	nq_client *c;
	int rv = NQ_OK;
	if (!out)
		return NQ_EINVAL;
	if (!opts)
		opts = &defaults;
	if (opts->timeout_ms < 0)
		return NQ_EINVAL;
	if (!(c = calloc(1, sizeof *c)))
		return NQ_ENOMEM;
	pthread_mutex_init(&c->mtx, NULL);
	for (int e = 0; e < NQC_NENDS; e++)
		pthread_mutex_init(&c->conn[e].mtx, NULL);
	c->timeout_ms =
	    opts->timeout_ms ? (uint64_t)opts->timeout_ms : CLIENT_TIMEOUT_MS;
	urls[NQC_API] = opts->api_url;
	urls[NQC_WORK] = opts->work_url;
	urls[NQC_RESULTS] = opts->results_url;
	urls[NQC_DLQ] = NULL; /* nq_client_set_dlq_url */
	for (int e = 0; e < NQC_NENDS && rv == NQ_OK; e++)
		rv = client_set_url(c, (nqc_end)e, urls[e], c->last_error);
	if (rv == NQ_OK && opts->token && !(c->token = strdup(opts->token)))
		rv = NQ_ENOMEM;
	if (rv == NQ_OK)
		rv = client_tls_setup(c, opts);
	if (rv == NQ_OK && opts->brokers)
		rv = nqc_shards_open(c, opts);
	if (rv != NQ_OK) {
		nq_client_close(c);
		return rv;
	}
	*out = c;
	return NQ_OK;
}

NQ_API void nq_client_close(nq_client *c)
{
	if (!c)
		return;
	if (c->map)
		nqc_shards_close(c);
	for (int e = 0; e < NQC_NENDS; e++) {
		if (c->conn[e].open)
			nng_close(c->conn[e].sock);
		free(c->conn[e].url);
		pthread_mutex_destroy(&c->conn[e].mtx);
	}
	if (c->tls)
		nng_tls_config_free(c->tls);
	free(c->token);
	free(c->blob_dir);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

static int clamp_ms(uint64_t ms)
{
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Socket options: REQ never resends on its own (a slow reply must not turn
 * into a second enqueue); PUSH gives up a send after the request timeout. */
static int conn_configure(nq_client *c, nng_socket s, nqc_end end)
{
	int rv;
	if ((rv = nng_socket_set_ms(
	         s, NNG_OPT_RECONNMINT, CLIENT_RECONNECT_MIN_MS)) != 0 ||
	    (rv = nng_socket_set_ms(
	         s, NNG_OPT_RECONNMAXT, CLIENT_RECONNECT_MAX_MS)) != 0)
		return rv;
	if (end == NQC_RESULTS)
		return nng_socket_set_ms(
		    s, NNG_OPT_SENDTIMEO, clamp_ms(c->timeout_ms));
	if ((rv = nng_socket_set_size(
	         s, NNG_OPT_RECVMAXSZ, CLIENT_REPLY_MAX)) != 0)
		return rv;
	return nng_socket_set_ms(
	    s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
}

bool nqc_connected(nq_client *c, nqc_end end)
{
	return atomic_load(&c->conn[end].pipes) > 0;
}

/* One first dial: the thread that makes the attempt and the caller who
 * waits for it. */
typedef struct first_dial {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on the monotonic clock */
	nng_dialer d;
	int rv; /* NNG's, once done */
	bool done;
} first_dial;

static void *first_dial_main(void *arg)
{
	first_dial *f = arg;
	int rv = nng_dialer_start(f->d, 0);
	pthread_mutex_lock(&f->mu);
	f->rv = rv;
	f->done = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/*
 * Starts dialer d with one attempt and waits up to ms for it: 0 once
 * connected (NNG redials by itself from then on), else NNG's error for
 * the attempt, NNG_ETIMEDOUT when it took longer (the dialer is closed
 * then). A blocking nng_dialer_start has no timeout of its own (a
 * connection whose packets are dropped waits for the kernel, minutes),
 * hence the thread; NNG_FLAG_NONBLOCK would retry a refused connection
 * forever without telling anyone.
 */
static int dial_first(nng_dialer d, uint64_t ms)
{
	first_dial f = {.d = d};
	pthread_t t;
	pthread_mutex_init(&f.mu, NULL);
	nqi_cond_init_mono(&f.cv);
	int rv =
	    pthread_create(&t, NULL, first_dial_main, &f) != 0 ? NNG_ENOMEM : 0;
	uint64_t until = nqi_mono_ms() + ms;
	pthread_mutex_lock(&f.mu);
	while (rv == 0 && !f.done && nqi_mono_ms() < until)
		nqi_cond_wait_mono(&f.cv, &f.mu, until);
	bool late = rv == 0 && !f.done;
	pthread_mutex_unlock(&f.mu);
	if (late)
		nng_dialer_close(d); /* ends the attempt, and the thread */
	if (rv == 0) {
		pthread_join(t, NULL);
		rv = late ? NNG_ETIMEDOUT : f.rv;
	}
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);
	return rv;
}

/* Dials url from socket s, with the client's TLS configuration for a TLS
 * URL (dial_first). A dialer that failed is closed: the next dial makes
 * a new one. */
static int conn_dial(
    nq_client *c, nng_socket s, const char *url, nng_dialer *out)
{
	nng_dialer d;
	int rv;
	if ((rv = nng_dialer_create(&d, s, url)) != 0)
		return rv;
	if (nqi_url_is_tls(url))
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c->tls);
	if (rv == 0)
		rv = dial_first(d, c->timeout_ms);
	if (rv != 0)
		nng_dialer_close(d); /* after a timeout again: no harm */
	else if (out)
		*out = d;
	return rv;
}

/* The error of a failed dial: whatever kept the connection from being
 * made (refused, no route, a host name that does not resolve, a failed
 * TLS handshake) is NQ_ECONNECT; the URL itself was checked before. */
static int dial_err(int nrv)
{
	if (nrv == NNG_ETIMEDOUT || nrv == NNG_ENOMEM)
		return nqi_err_from_nng(nrv);
	return NQ_ECONNECT;
}

/* Why a dial failed, for last_error: "api tcp://...: connection refused
 * (is the broker running?)". */
static int dial_fail(nq_client *c, nqc_end end, int nrv, char *err)
{
	const char *url = c->conn[end].url;
	if (nrv == NNG_ETIMEDOUT)
		return nqc_fail(err, NQ_ETIMEDOUT,
		    "%s %s: no connection within %llu ms (is %s running?)",
		    end_names[end], url, (unsigned long long)c->timeout_ms,
		    end_services[end]);
	return nqc_fail(err, dial_err(nrv), "%s %s: %s (is %s running?)",
	    end_names[end], url, nng_strerror(nrv), end_services[end]);
}

static int conn_open(nq_client *c, nqc_end end, char *err)
{
	nng_socket s;
	int rv = end == NQC_RESULTS ? nng_push0_open(&s) : nng_req0_open(&s);
	if (rv != 0)
		return nqc_fail(err, nqi_err_from_nng(rv), "%s socket: %s",
		    end_names[end], nng_strerror(rv));
	if ((rv = nqi_conns_track(s, &c->conn[end].pipes)) != 0 ||
	    (rv = conn_configure(c, s, end)) != 0) {
		nng_close(s);
		return nqc_fail(err, nqi_err_from_nng(rv), "%s %s: %s",
		    end_names[end], c->conn[end].url, nng_strerror(rv));
	}
	c->conn[end].sock = s;
	c->conn[end].open = true;
	return NQ_OK;
}

/* The endpoint's socket, opened (not dialed) on first use. */
static int conn_socket(nq_client *c, nqc_end end, nng_socket *out, char *err)
{
	int rv = NQ_OK;
	pthread_mutex_lock(&c->conn[end].mtx);
	if (!c->conn[end].open)
		rv = conn_open(c, end, err);
	if (rv == NQ_OK)
		*out = c->conn[end].sock;
	pthread_mutex_unlock(&c->conn[end].mtx);
	return rv;
}

/* Under the endpoint's own lock, so that the first dial of one socket
 * (up to the timeout) holds up no request on another; once a dial has
 * connected, an atomic read is all it costs. */
int nqc_dial(nq_client *c, nqc_end end, char *err)
{
	struct nqc_conn *k = &c->conn[end];
	if (atomic_load(&k->dialed))
		return NQ_OK;
	pthread_mutex_lock(&k->mtx);
	int rv = k->open ? NQ_OK : conn_open(c, end, err);
	if (rv == NQ_OK && !atomic_load(&k->dialed)) {
		int nrv = conn_dial(c, k->sock, k->url, NULL);
		if (nrv != 0)
			rv = dial_fail(c, end, nrv, err);
		else
			atomic_store(&k->dialed, true);
	}
	pthread_mutex_unlock(&k->mtx);
	return rv;
}

int nqc_socket(nq_client *c, nqc_end end, nng_socket *out, char *err)
{
	int rv = nqc_dial(c, end, err);
	return rv == NQ_OK ? conn_socket(c, end, out, err) : rv;
}

int nqc_ctx_open(nq_client *c, nqc_end end, nng_ctx *ctx, char *err)
{
	nng_socket s;
	nng_ctx x;
	int rv = conn_socket(c, end, &s, err);
	if (rv != NQ_OK)
		return rv;
	if ((rv = nng_ctx_open(&x, s)) != 0)
		return nqc_fail(err, nqi_err_from_nng(rv), "%s context: %s",
		    end_names[end], nng_strerror(rv));
	/* Contexts keep their own resend timer; set it here as well. */
	nng_ctx_set_ms(x, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	*ctx = x;
	return NQ_OK;
}

/* Describes a failed send or receive for last_error. */
static int xfer_fail(nq_client *c, nqc_end end, int nrv, uint64_t ms, char *err)
{
	const char *url = c->conn[end].url;
	if (nrv == NNG_ETIMEDOUT)
		return nqc_fail(err, NQ_ETIMEDOUT,
		    "%s %s: no reply within %llu ms (is %s running?)",
		    end_names[end], url, (unsigned long long)ms,
		    end_services[end]);
	/* No reply came: never NQ_EUNAVAIL, which says that the service
	 * answered it cannot serve now. */
	int e = nqi_err_from_nng(nrv);
	return nqc_fail(err, e == NQ_EUNAVAIL ? NQ_ECONNECT : e, "%s %s: %s",
	    end_names[end], url, nng_strerror(nrv));
}

/* Sends msg (always consumed) on ctx and starts receiving its reply into
 * *aio (allocated here; NULL on failure). */
static int xfer_send(nq_client *c, nqc_end end, nng_ctx ctx, nng_msg *msg,
    uint64_t reply_ms, nng_aio **aio, char *err)
{
	nng_aio *a;
	*aio = NULL;
	int rv = nng_aio_alloc(&a, NULL, NULL);
	if (rv != 0) {
		nng_msg_free(msg);
		return nqc_fail(err, NQ_ENOMEM, "out of memory");
	}
	nng_aio_set_msg(a, msg);
	nng_aio_set_timeout(a, clamp_ms(c->timeout_ms));
	nng_ctx_send(ctx, a);
	nng_aio_wait(a);
	if ((rv = nng_aio_result(a)) != 0) {
		nng_msg_free(nng_aio_get_msg(a));
		nng_aio_free(a);
		return xfer_fail(c, end, rv, c->timeout_ms, err);
	}
	nng_aio_set_timeout(a, clamp_ms(reply_ms));
	nng_ctx_recv(ctx, a);
	*aio = a;
	return NQ_OK;
}

/* Waits for the reply xfer_send started (aio is freed). */
static int xfer_recv(nq_client *c, nqc_end end, nng_aio *aio, uint64_t reply_ms,
    nng_msg **out, char *err)
{
	nng_aio_wait(aio);
	int rv = nng_aio_result(aio);
	if (rv != 0)
		rv = xfer_fail(c, end, rv, reply_ms, err);
	else
		*out = nng_aio_get_msg(aio);
	nng_aio_free(aio);
	return rv;
}

/* Maps a reply's status to an error, keeping the server's message. */
static int reply_status(const Nq__V1__Reply *r, char *err)
{
	const Nq__V1__Status *st = r->status;
	if (!st || st->code == NQ__V1__CODE__OK)
		return NQ_OK;
	int e = nqi_err_from_code(st->code);
	if (st->message && st->message[0])
		return nqc_fail(err, e, "%s", st->message);
	return nqc_fail(err, e, "%s (code %d)", nq_strerror(e), st->code);
}

/* Unpacks a reply message (always consumed), into a new arena when arena
 * is not NULL, and maps its status. */
static int reply_decode(nq_client *c, nqc_end end, nng_msg *msg,
    Nq__V1__Reply **reply, nqi_arena **arena, char *err)
{
	size_t len = nng_msg_len(msg);
	Nq__V1__Reply *r =
	    arena ? nqi_reply_unpack_arena(nng_msg_body(msg), len, arena)
	          : nqi_reply_unpack(nng_msg_body(msg), len);
	nng_msg_free(msg);
	if (!r)
		return nqc_fail(err, NQ_EPROTO,
		    "%s %s: reply of %zu bytes is not a valid nq.v1.Reply",
		    end_names[end], c->conn[end].url, len);
	*reply = r;
	return reply_status(r, err);
}

int nqc_call(nq_client *c, nqc_end end, nng_ctx *ctx, Nq__V1__Request *req,
    uint64_t reply_ms, Nq__V1__Reply **reply, char *err)
{
	return nqc_call_arena(c, end, ctx, req, reply_ms, reply, NULL, err);
}

/* Stamps req, dials end and packs req: the first steps of every call. */
static int call_prepare(
    nq_client *c, nqc_end end, Nq__V1__Request *req, nng_msg **msg, char *err)
{
	req->version = NQI_PROTOCOL_VERSION;
	req->token = c->token ? c->token : (char *)protobuf_c_empty_string;
	/* A call of a client with a shard map goes through a shard's. */
	if (c->map && end != NQC_DLQ)
		return nqc_one_broker(c, "this call");
	int rv = nqc_dial(c, end, err);
	if (rv == 0 && (rv = nqi_msg_pack(&req->base, NULL, 0, msg)) != 0)
		nqc_fail(err, rv, "out of memory packing the request");
	return rv;
}

int nqc_call_arena(nq_client *c, nqc_end end, nng_ctx *ctx,
    Nq__V1__Request *req, uint64_t reply_ms, Nq__V1__Reply **reply,
    nqi_arena **arena, char *err)
{
	nng_ctx own;
	nng_msg *msg = NULL;
	nng_aio *aio;
	int rv = call_prepare(c, end, req, &msg, err);
	if (rv != 0)
		return rv;
	if (!ctx && (rv = nqc_ctx_open(c, end, &own, err)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	rv = xfer_send(c, end, ctx ? *ctx : own, msg, reply_ms, &aio, err);
	if (rv == NQ_OK)
		rv = xfer_recv(c, end, aio, reply_ms, &msg, err);
	if (rv == NQ_OK)
		rv = reply_decode(c, end, msg, reply, arena, err);
	if (!ctx)
		nng_ctx_close(own);
	return rv;
}

int nqc_call_send(nq_client *c, nqc_end end, Nq__V1__Request *req,
    uint64_t reply_ms, nqc_pending *p, char *err)
{
	nng_msg *msg;
	*p = (nqc_pending){.end = end, .reply_ms = reply_ms};
	int rv = call_prepare(c, end, req, &msg, err);
	if (rv != 0)
		return rv;
	if ((rv = nqc_ctx_open(c, end, &p->ctx, err)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	rv = xfer_send(c, end, p->ctx, msg, reply_ms, &p->aio, err);
	if (rv != 0)
		nng_ctx_close(p->ctx);
	return rv;
}

void nqc_call_drop(nqc_pending *p)
{
	nng_aio_free(p->aio); /* stops the receive */
	nng_ctx_close(p->ctx);
}

int nqc_call_finish(nq_client *c, nqc_pending *p, Nq__V1__Reply **reply,
    nqi_arena **arena, char *err)
{
	nng_msg *msg = NULL;
	int rv = xfer_recv(c, p->end, p->aio, p->reply_ms, &msg, err);
	if (rv == NQ_OK)
		rv = reply_decode(c, p->end, msg, reply, arena, err);
	nng_ctx_close(p->ctx);
	return rv;
}

int nqc_expect(const nq_client *c, nqc_end end, const Nq__V1__Reply *r,
    Nq__V1__Reply__BodyCase body, const char *what, char *err)
{
	if (r->body_case == body)
		return NQ_OK;
	return nqc_fail(err, NQ_EPROTO, "%s %s: reply to %s carries no %s body",
	    end_names[end], c->conn[end].url, what, what);
}

/* ---- nq-dlq ---- */

NQ_API int nq_client_set_dlq_url(nq_client *c, const char *url)
{
	if (!c)
		return NQ_EINVAL;
	nqc_begin(c);
	pthread_mutex_lock(&c->conn[NQC_DLQ].mtx);
	int rv = c->conn[NQC_DLQ].open
	             ? NQ_EPRECOND
	             : client_set_url(c, NQC_DLQ, url, c->last_error);
	pthread_mutex_unlock(&c->conn[NQC_DLQ].mtx);
	if (rv == NQ_OK)
		rv = client_tls(c, c->conn[NQC_DLQ].url, c->last_error);
	return rv;
}

/* Packs the reply into a malloc'd buffer for the caller. */
static int reply_bytes(
    nq_client *c, const Nq__V1__Reply *r, void **out, size_t *len)
{
	size_t n = nq__v1__reply__get_packed_size(r);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return nqc_fail(c->last_error, NQ_ENOMEM, "out of memory");
	nq__v1__reply__pack(r, buf);
	*out = buf;
	*len = n;
	return NQ_OK;
}

NQ_API int nq_dlq_request(nq_client *c, const void *req, size_t len,
    uint64_t reply_ms, void **reply, size_t *reply_len)
{
	Nq__V1__Reply *r = NULL;
	if (!c || !req || !reply || !reply_len)
		return NQ_EINVAL;
	nqc_begin(c);
	Nq__V1__Request *q = nqi_request_unpack(req, len);
	if (!q)
		return nqc_fail(c->last_error, NQ_EINVAL,
		    "the request is not a valid nq.v1.Request");
	/* nqc_call points the token at the client's; the unpacked one is
	 * put back for free_unpacked. */
	char *token = q->token;
	int rv = nqc_call(c, NQC_DLQ, NULL, q, reply_ms, &r, c->last_error);
	q->token = token;
	nq__v1__request__free_unpacked(q, NULL);
	if (r) {
		int packed = reply_bytes(c, r, reply, reply_len);
		rv = packed ? packed : rv;
		nq__v1__reply__free_unpacked(r, NULL);
	}
	return rv;
}

/* ---- events ---- */

struct nq_sub {
	nng_socket sock;
	nng_msg *msg; /* the last message received; freed by the next call */
	nng_dialer dialer;
};

static int sub_configure(nng_socket s, const void *topic, size_t topic_len)
{
	int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, SUB_RECV_MAX);
	if (rv == 0)
		rv = nng_socket_set_int(s, NNG_OPT_RECVBUF, SUB_RECV_BUF);
	if (rv == 0)
		rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, topic, topic_len);
	return rv;
}

NQ_API int nq_sub_open(nq_client *c, const char *url, const void *topic,
    size_t topic_len, nq_sub **out)
{
	nq_sub *sub;
	if (!c || !out || (topic_len && !topic))
		return NQ_EINVAL;
	nqc_begin(c);
	if (!url)
		url = SUB_DEFAULT_URL;
	char why[NQC_ERR_MAX];
	if (nqi_url_check(url, false, why, sizeof why) != 0)
		return nqc_fail(c->last_error, NQ_EINVAL, "events: %s", why);
	int rv = client_tls(c, url, c->last_error);
	if (rv != NQ_OK)
		return rv;
	if (!(sub = calloc(1, sizeof *sub)))
		return NQ_ENOMEM;
	int nrv = nng_sub0_open(&sub->sock);
	if (nrv != 0) {
		free(sub);
		return nqc_fail(c->last_error, nqi_err_from_nng(nrv),
		    "events socket: %s", nng_strerror(nrv));
	}
	if ((nrv = sub_configure(sub->sock, topic, topic_len)) == 0)
		rv = (nrv = conn_dial(c, sub->sock, url, &sub->dialer))
		         ? dial_err(nrv)
		         : 0;
	else
		rv = nqi_err_from_nng(nrv);
	if (rv != NQ_OK) {
		nng_close(sub->sock);
		free(sub);
		return nqc_fail(
		    c->last_error, rv, "events %s: %s", url, nng_strerror(nrv));
	}
	*out = sub;
	return NQ_OK;
}

NQ_API int nq_sub_recv(nq_sub *s, int timeout_ms, const void **msg, size_t *len)
{
	if (!s || !msg || !len)
		return NQ_EINVAL;
	if (s->msg)
		nng_msg_free(s->msg);
	s->msg = NULL;
	int rv = nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO,
	    timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	if (rv == 0)
		rv = nng_recvmsg(s->sock, &s->msg, 0);
	/* A signal that cut the wait short is no message yet. */
	if (rv == NNG_EINTR)
		return NQ_ETIMEDOUT;
	if (rv != 0)
		return nqi_err_from_nng(rv);
	*msg = nng_msg_body(s->msg);
	*len = nng_msg_len(s->msg);
	return NQ_OK;
}

NQ_API void nq_sub_close(nq_sub *s)
{
	if (!s)
		return;
	if (s->msg)
		nng_msg_free(s->msg);
	/* nng 1.5.2's close of a SUB socket can hang while messages still
	 * stream in (nanomsg/nng#1543, close fixed after 1.5.2): end the
	 * connection first, so that the socket closes with none. */
	nng_dialer_close(s->dialer);
	nng_close(s->sock);
	free(s);
}
