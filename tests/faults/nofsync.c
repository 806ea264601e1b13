/*
 * libnofsync.so: the fault suite's "fsync left out" seam, loaded with
 * LD_PRELOAD into an unchanged nq-broker or nq-dlq. fsync, fdatasync and
 * msync return success without syncing anything, and open drops O_SYNC and
 * O_DSYNC: LMDB (which calls exactly these, see `nm -D liblmdb.so`) then
 * believes every commit reached the disk while nothing did, as a service
 * whose commit forgot its fsync would. The power-loss scenario must then
 * find lost jobs (tests/faults/run --expect-loss).
 *
 * It lives only in the build tree of the tests and is never installed:
 * nothing in nq's own binaries can turn their fsync off.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NOFSYNC_EXPORT __attribute__((visibility("default")))

/* An fsync of a descriptor that is not open still fails, as it would. */
static int open_fd(int fd)
{
	return fcntl(fd, F_GETFD) < 0 ? -1 : 0;
}

NOFSYNC_EXPORT int fsync(int fd)
{
	return open_fd(fd);
}

NOFSYNC_EXPORT int fdatasync(int fd)
{
	return open_fd(fd);
}

NOFSYNC_EXPORT int msync(void *addr, size_t len, int flags)
{
	return 0;
}

static int open_unsynced(int dir, const char *path, int flags, va_list ap)
{
	mode_t mode = 0;
	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
		mode = (mode_t)va_arg(ap, int);
	flags &= ~(O_SYNC | O_DSYNC);
	return (int)syscall(SYS_openat, dir, path, flags, mode);
}

NOFSYNC_EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int fd = open_unsynced(AT_FDCWD, path, flags, ap);
	va_end(ap);
	return fd;
}

NOFSYNC_EXPORT int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int fd = open_unsynced(AT_FDCWD, path, flags, ap);
	va_end(ap);
	return fd;
}

NOFSYNC_EXPORT int openat(int dir, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int fd = open_unsynced(dir, path, flags, ap);
	va_end(ap);
	return fd;
}
