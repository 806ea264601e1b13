/*
 * gen_fixtures DIR: writes the golden v1 fixtures, one packed sample per
 * file (DIR/<name>.bin). A fixture that already exists is never rewritten:
 * committed fixtures are the compatibility record of v1 and must keep
 * decoding forever, so only fixtures of new samples get written. The tests
 * do not run this program; they read the committed bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nqi/codec.h"
#include "samples.h"

/* Creates path exclusively. Returns 1 when written, 0 when it already
 * existed, -1 on error (reported on stderr). */
static int write_new(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		fprintf(stderr, "gen_fixtures: cannot create %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	ssize_t n = write(fd, buf, len);
	int rv = (n == (ssize_t)len && fsync(fd) == 0) ? 1 : -1;
	if (close(fd) != 0 || rv < 0) {
		fprintf(stderr, "gen_fixtures: cannot write %s: %s\n", path,
		    strerror(errno));
		unlink(path);
		return -1;
	}
	return 1;
}

static int write_sample(const char *dir, const nqt_sample *s)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	snprintf(path, sizeof path, "%s/%s.bin", dir, s->name);
	if (nqi_buf_pack(s->msg, &buf, &len) != 0) {
		fprintf(stderr, "gen_fixtures: out of memory packing %s\n",
		    s->name);
		return -1;
	}
	int rv = write_new(path, buf, len);
	free(buf);
	if (rv >= 0)
		printf(
		    "%s %s (%zu bytes)\n", rv ? "wrote" : "kept ", path, len);
	return rv;
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: gen_fixtures DIR\n"
		                "writes DIR/<sample>.bin for samples that have "
		                "no fixture yet\n");
		return 2;
	}
	size_t n;
	const nqt_sample *s = nqt_samples(&n);
	int failed = 0;
	for (size_t i = 0; i < n; i++)
		if (write_sample(argv[1], &s[i]) < 0)
			failed = 1;
	return failed;
}
