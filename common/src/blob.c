/* The claim check's shared rules: blob names, file:// references, SHA-256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nqi/blob.h"
#include "nqi/util.h"

static const char hexdigits[] = "0123456789abcdef";

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdigits[p[i] >> 4];
		out[2 * i + 1] = hexdigits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void nqi_sha256_init(nqi_sha256 *h)
{
	sha256_init(h);
}

void nqi_sha256_update(nqi_sha256 *h, const void *p, size_t len)
{
	if (len)
		sha256_update(h, len, p);
}

void nqi_sha256_final(nqi_sha256 *h, char hex[NQI_SHA256_HEX])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(h, sizeof d, d);
	hex_of(d, sizeof d, hex);
}

void nqi_sha256_hex(const void *p, size_t len, char hex[NQI_SHA256_HEX])
{
	nqi_sha256 h;
	nqi_sha256_init(&h);
	nqi_sha256_update(&h, p, len);
	nqi_sha256_final(&h, hex);
}

static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(hexdigits, s[i]))
			return false;
	return s[n] == '\0';
}

bool nqi_sha256_valid(const char *s)
{
	return s && lower_hex(s, NQI_SHA256_HEX - 1);
}

bool nqi_blob_name_valid(const char *name)
{
	size_t pre = strlen(NQI_BLOB_PREFIX);
	return name && strncmp(name, NQI_BLOB_PREFIX, pre) == 0 &&
	       lower_hex(name + pre, NQI_BLOB_NAME_LEN - pre);
}

void nqi_blob_name(char name[NQI_BLOB_NAME_LEN + 1])
{
	uint8_t r[16];
	size_t pre = strlen(NQI_BLOB_PREFIX);
	nqi_random(r, sizeof r);
	memcpy(name, NQI_BLOB_PREFIX, pre);
	hex_of(r, sizeof r, name + pre);
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX escapes of s into out (room for strlen(s) + 1). */
static int unescape(const char *s, char *out)
{
	size_t o = 0;
	for (; *s; s++) {
		if (*s != '%') {
			out[o++] = *s;
			continue;
		}
		int hi = hex_val(s[1]), lo = hi < 0 ? -1 : hex_val(s[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return NQ_EINVAL;
		out[o++] = (char)(hi << 4 | lo);
		s += 2;
	}
	out[o] = '\0';
	return NQ_OK;
}

int nqi_blob_file_path(const char *ref, char **path)
{
	static const char scheme[] = "file://", local[] = "localhost";
	if (!ref || strncmp(ref, scheme, sizeof scheme - 1) != 0)
		return NQ_EINVAL;
	const char *p = ref + sizeof scheme - 1;
	if (strncmp(p, local, sizeof local - 1) == 0)
		p += sizeof local - 1;
	if (*p != '/')
		return NQ_EINVAL;
	char *out = malloc(strlen(p) + 1);
	if (!out)
		return NQ_ENOMEM;
	if (unescape(p, out) != NQ_OK) {
		free(out);
		return NQ_EINVAL;
	}
	*path = out;
	return NQ_OK;
}

static bool plain_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("/._~-", c);
}

char *nqi_blob_file_ref(const char *path)
{
	size_t n = strlen(path), o = 7;
	char *ref = malloc(7 + 3 * n + 1);
	if (!ref)
		return NULL;
	memcpy(ref, "file://", 7);
	for (const unsigned char *p = (const void *)path; *p; p++) {
		if (plain_byte(*p)) {
			ref[o++] = (char)*p;
			continue;
		}
		ref[o++] = '%';
		ref[o++] = hexdigits[*p >> 4];
		ref[o++] = hexdigits[*p & 15];
	}
	ref[o] = '\0';
	return ref;
}

bool nqi_blob_in_dir(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	while (n > 0 && dir[n - 1] == '/')
		n--;
	if (strncmp(path, dir, n) != 0 || path[n] != '/')
		return false;
	return nqi_blob_name_valid(path + n + 1);
}
