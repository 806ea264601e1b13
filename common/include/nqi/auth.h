/*
 * Role tokens. A service loads one token list per role (producer, worker,
 * admin) and checks each request's token against the roles its handler
 * allows. With no list at all the service is open (loopback development).
 * Tokens are compared in constant time and never logged.
 */
#ifndef NQI_AUTH_H
#define NQI_AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum nqi_role {
	NQI_ROLE_PRODUCER = 1,
	NQI_ROLE_WORKER = 2,
	NQI_ROLE_ADMIN = 4, /* may do everything */
} nqi_role;

typedef struct nqi_auth nqi_auth;

/*
 * Loads the token lists. Each source is NULL or "" (no tokens of that
 * role), a file path (one token a line; blank lines and lines starting
 * with '#' are skipped), or "env:NAME" (tokens in the environment variable
 * NAME, separated by commas or newlines). err names the source and the
 * problem; no token text is ever written to it.
 */
int nqi_auth_load(nqi_auth **out, const char *producer, const char *worker,
    const char *admin, char *err, size_t errlen);
void nqi_auth_free(nqi_auth *a);
/* True when no role has tokens: every request is let in. */
bool nqi_auth_open(const nqi_auth *a);
/*
 * Checks a request's token against the roles (an OR of nqi_role) that may
 * make it; admin tokens always pass. Returns NQ_OK, NQ_EAUTH (missing or
 * unknown token) or NQ_EPERM (a known token of another role).
 */
int nqi_auth_check(const nqi_auth *a, const char *token, unsigned roles);
/* "producer", "worker", "admin" joined by " or ", for messages. */
void nqi_auth_roles_text(unsigned roles, char *out, size_t len);

/* Reads one token for a client: src is a file (its first non-blank line)
 * or "env:NAME". *out is malloc'd. */
int nqi_token_read(const char *src, char **out, char *err, size_t errlen);

#endif
