/* TLS for the services' endpoints (tls+tcp://, wss:// and https). */
#ifndef NQI_TLS_H
#define NQI_TLS_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct nqi_tls_opts {
	const char *cert; /* PEM certificate (chain) of this service */
	const char *key;  /* PEM private key; a client may leave it out when
	                   * cert is one file holding both */
	const char *ca;   /* PEM CA: when set, clients must present a
	                   * certificate it signed (servers), or the server
	                   * must (clients) */
} nqi_tls_opts;

/* Reads a PEM file (at most 1 MiB) into a NUL-terminated string the
 * caller frees; NULL when it cannot be read or is empty. */
char *nqi_tls_read_pem(const char *path);

/* True for tls+tcp://, tls+tcp4://, tls+tcp6:// and wss://, wss4://,
 * wss6:// URLs. */
bool nqi_url_is_tls(const char *url);

/* Builds a server TLS configuration; err names the file that failed. The
 * caller frees *out with nng_tls_config_free. */
int nqi_tls_server_config(
    const nqi_tls_opts *o, nng_tls_config **out, char *err, size_t errlen);

/*
 * Builds a client TLS configuration, the one every client of nq uses
 * (libnq, nqctl, the broker's dial to nq-dlq): verifies the server when
 * o->ca is set (dial tls+tcp://localhost:PORT or give server_name: mbedTLS
 * does not match IP addresses), presents o->cert when set, with its key
 * from o->key or, without o->key, from the same file. o may be NULL (no
 * verification, no certificate), server_name NULL (the dialed host).
 * NQ_EINVAL, with err naming the file, when one cannot be used or a key
 * comes without a certificate. The caller frees *out.
 */
int nqi_tls_client_named(const nqi_tls_opts *o, const char *server_name,
    nng_tls_config **out, char *err, size_t errlen);
/* nqi_tls_client_named without a server name. */
int nqi_tls_client_config(
    const nqi_tls_opts *o, nng_tls_config **out, char *err, size_t errlen);

/*
 * Listens on url with s. TLS URLs need o->cert and o->key. recv_max bounds
 * one message (NNG_OPT_RECVMAXSZ). err names the URL and the flag (what)
 * that gave it.
 */
int nqi_listen(nng_socket s, const char *url, const nqi_tls_opts *o,
    size_t recv_max, const char *what, char *err, size_t errlen);

/* True when a listen URL binds something other than loopback (or a
 * local-only transport), so the service should not run without tokens. */
bool nqi_url_is_public(const char *url);

#endif
