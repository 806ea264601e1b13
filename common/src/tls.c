#include "nqi/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq/nq.h"
#include "nqi/daemon.h"

bool nqi_url_is_tls(const char *url)
{
	static const char *const schemes[] = {"wss://", "wss4://", "wss6://"};
	if (!url)
		return false;
	if (strncmp(url, "tls+", 4) == 0)
		return true;
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

/* See tls.h. */
char *nqi_tls_read_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!buf || n == 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int own_cert(
    nng_tls_config *cfg, const nqi_tls_opts *o, char *err, size_t errlen)
{
	/* One file holding the certificate and its key: NNG reads both. */
	if (!o->key || !*o->key) {
		if (nng_tls_config_cert_key_file(cfg, o->cert, NULL) == 0)
			return NQ_OK;
		snprintf(err, errlen,
		    "TLS: %s is not a PEM certificate with its key", o->cert);
		return NQ_EINVAL;
	}
	char *cert = nqi_tls_read_pem(o->cert), *key = nqi_tls_read_pem(o->key);
	int rv = NQ_OK;
	if (!cert || !key) {
		snprintf(err, errlen, "TLS: cannot read %s",
		    cert ? o->key : o->cert);
		rv = NQ_EINVAL;
	} else if (nng_tls_config_own_cert(cfg, cert, key, NULL) != 0) {
		snprintf(err, errlen,
		    "TLS: %s and %s are not a PEM "
		    "certificate and its key",
		    o->cert, o->key);
		rv = NQ_EINVAL;
	}
	if (key)
		memset(key, 0, strlen(key));
	free(cert);
	free(key);
	return rv;
}

int nqi_tls_server_config(
    const nqi_tls_opts *o, nng_tls_config **out, char *err, size_t errlen)
{
	nng_tls_config *cfg;
	if (!o || !o->cert || !o->key || !*o->cert || !*o->key) {
		snprintf(err, errlen,
		    "TLS endpoints need --tls-cert and "
		    "--tls-key");
		return NQ_EINVAL;
	}
	if (nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER) != 0) {
		snprintf(err, errlen, "TLS: out of memory");
		return NQ_ENOMEM;
	}
	int rv = own_cert(cfg, o, err, errlen);
	bool verify = o->ca && *o->ca;
	if (rv == 0 && verify && nng_tls_config_ca_file(cfg, o->ca) != 0) {
		snprintf(
		    err, errlen, "TLS: cannot load CA %s (--tls-ca)", o->ca);
		rv = NQ_EINVAL;
	}
	if (rv == 0 &&
	    nng_tls_config_auth_mode(cfg, verify ? NNG_TLS_AUTH_MODE_REQUIRED
	                                         : NNG_TLS_AUTH_MODE_NONE) != 0)
		rv = NQ_EINVAL;
	if (rv != 0) {
		nng_tls_config_free(cfg);
		return rv;
	}
	*out = cfg;
	return NQ_OK;
}

static bool set(const char *s)
{
	return s && *s;
}

/* The server check, the name and our certificate of a client
 * configuration. */
static int client_verify(nng_tls_config *cfg, const nqi_tls_opts *o,
    const char *server_name, char *err, size_t errlen)
{
	bool verify = o && set(o->ca);
	if (nng_tls_config_auth_mode(cfg, verify ? NNG_TLS_AUTH_MODE_REQUIRED
	                                         : NNG_TLS_AUTH_MODE_NONE) != 0)
		return NQ_EINVAL;
	if (set(server_name) &&
	    nng_tls_config_server_name(cfg, server_name) != 0) {
		snprintf(
		    err, errlen, "TLS: cannot use server name %s", server_name);
		return NQ_EINVAL;
	}
	if (!o)
		return NQ_OK;
	if (verify && nng_tls_config_ca_file(cfg, o->ca) != 0) {
		snprintf(
		    err, errlen, "TLS: cannot load CA %s (--tls-ca)", o->ca);
		return NQ_EINVAL;
	}
	if (set(o->key) && !set(o->cert)) {
		snprintf(err, errlen, "TLS: --tls-key needs --tls-cert");
		return NQ_EINVAL;
	}
	return set(o->cert) ? own_cert(cfg, o, err, errlen) : NQ_OK;
}

int nqi_tls_client_named(const nqi_tls_opts *o, const char *server_name,
    nng_tls_config **out, char *err, size_t errlen)
{
	nng_tls_config *cfg;
	if (nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT) != 0) {
		snprintf(err, errlen, "TLS: out of memory");
		return NQ_ENOMEM;
	}
	int rv = client_verify(cfg, o, server_name, err, errlen);
	if (rv != 0) {
		nng_tls_config_free(cfg);
		return rv;
	}
	*out = cfg;
	return NQ_OK;
}

int nqi_tls_client_config(
    const nqi_tls_opts *o, nng_tls_config **out, char *err, size_t errlen)
{
	return nqi_tls_client_named(o, NULL, out, err, errlen);
}

int nqi_listen(nng_socket s, const char *url, const nqi_tls_opts *o,
    size_t recv_max, const char *what, char *err, size_t errlen)
{
	nng_listener l;
	nng_tls_config *cfg = NULL;
	char why[200] = "";
	int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, recv_max);
	if (rv == 0)
		rv = nng_listener_create(&l, s, url);
	if (rv != 0) {
		snprintf(err, errlen, "cannot listen on %s (--%s): %s", url,
		    what, nng_strerror(rv));
		return NQ_EINVAL;
	}
	if (nqi_url_is_tls(url)) {
		if ((rv = nqi_tls_server_config(o, &cfg, why, sizeof why)) ||
		    (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg))) {
			snprintf(err, errlen, "cannot listen on %s (--%s): %s",
			    url, what, why[0] ? why : nng_strerror(rv));
			if (cfg)
				nng_tls_config_free(cfg);
			nng_listener_close(l);
			return NQ_EINVAL;
		}
		nng_tls_config_free(cfg); /* the listener holds its own */
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, errlen, "cannot listen on %s (--%s): %s", url,
		    what, nng_strerror(rv));
		nng_listener_close(l);
		return NQ_EUNAVAIL;
	}
	nqi_daemon_listener(what, url, l);
	return NQ_OK;
}

bool nqi_url_is_public(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p || strncmp(url, "ipc", 3) == 0 || strncmp(url, "inproc", 6) == 0)
		return false;
	p += 3;
	return !(strncmp(p, "127.", 4) == 0 ||
	         strncmp(p, "localhost", 9) == 0 ||
	         strncmp(p, "[::1]", 5) == 0);
}
