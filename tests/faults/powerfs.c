/*
 * powerfs: a FUSE file system for the fault suite's power cuts.
 *
 *   powerfs [--cut drop|prefix|torn] [--seed N] BACKING MOUNTPOINT
 *
 * It passes everything through to the directory BACKING, except file data
 * that was written and not yet synced: that stays in this process's memory,
 * per file, in 4 KiB pages, and readers (read(2) and mmap alike) see it.
 * fsync and fdatasync of a file, and every write through a descriptor
 * opened with O_SYNC or O_DSYNC (LMDB writes its meta page that way), write
 * the file's pending pages to BACKING: from then on they survive.
 *
 * The power goes in two steps. SIGUSR1 is the moment no sync can complete
 * any more: writes are still taken (into memory, as into a disk's cache),
 * but an fsync, an O_DSYNC write and every change of a name or a size
 * waits until the file system is unmounted, or 100 ms, and fails with EIO,
 * so the service's commit in flight is never confirmed. Then the service
 * is SIGKILLed, and the file system unmounted (fusermount3 -u): this
 * process exits without writing what is pending, as a disk's cache is lost
 * with the power. (Without SIGUSR1 the unmount alone is the moment.) With
 * --cut it loses less, as a disk might that wrote some of its cache before
 * the power was gone:
 *   drop    (the default) every unsynced write is lost;
 *   prefix  the pending pages written before a random point survive, those
 *           written after are lost (a page rewritten after the point loses
 *           every unsynced version: it keeps what it held at the last sync);
 *   torn    as prefix, and the first page written after the point lands
 *           in part: a random number of its first 512-byte sectors (a disk
 *           writes a sector whole or not at all).
 * None of these can lose what a sync that returned made durable, and a
 * sync that failed confirmed nothing, so a service that confirms only
 * after its sync loses nothing it confirmed, whatever is kept. On exit it
 * prints one line: how many pages were pending (how many of them written
 * after the moment), kept and torn.
 *
 * What it models is file data. Everything else is durable at once: create,
 * unlink, rename, mkdir, truncate and the file size a truncate sets (a real
 * file system may lose a rename or a create not followed by an fsync of its
 * directory; nq's stores rename and create nothing after their first open).
 * fallocate is not offered (the broker then checks free space with statfs).
 * No direct_io: LMDB reads its file through a shared read-only mmap and
 * writes its lock file through a shared writable one, which FUSE serves
 * only through the page cache.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PFS_PAGE 4096u
#define PFS_SECTOR 512u
#define PFS_BUCKETS 4096u
/* How long a sync waits once the power went, before it fails. */
#define PFS_DEAD_WAIT_MS 100

typedef enum pfs_cut { PFS_DROP, PFS_PREFIX, PFS_TORN } pfs_cut;

/* One page of a file with writes not yet synced: its whole content as
 * readers see it (the backing file's bytes under the writes). */
typedef struct pfs_page {
	uint64_t index; /* file offset / PFS_PAGE */
	uint64_t seq;   /* when it was last written, in pfs.seq's order */
	struct pfs_page *next;
	unsigned char data[PFS_PAGE];
} pfs_page;

/* A file that is open or has pending pages, keyed by the backing inode,
 * so that a rename or a second name changes nothing. */
typedef struct pfs_file {
	dev_t dev;
	ino_t ino;
	int fd;        /* the backing file, read-write; owned */
	int opens;     /* open handles */
	uint64_t size; /* as readers see it: pending writes count */
	size_t npages;
	pfs_page **pages; /* PFS_BUCKETS chains */
	struct pfs_file *next;
} pfs_file;

typedef struct pfs_handle {
	pfs_file *f;
	bool sync; /* opened with O_SYNC or O_DSYNC */
} pfs_handle;

typedef struct pfs {
	int dir;            /* the backing directory */
	pthread_mutex_t mu; /* everything below; every callback takes it */
	pfs_file *files;
	uint64_t seq;
	pfs_cut cut;
	uint64_t rng;
	uint64_t syncs, synced_pages;
	bool off;         /* no sync completes any more (SIGUSR1 seen) */
	uint64_t off_seq; /* the last write before that */
} pfs;

/* Set by SIGUSR1; pfs.off follows it under the lock. */
static volatile sig_atomic_t pfs_power_went;

static void pfs_power_cb(int sig)
{
	pfs_power_went = 1;
}

static pfs *pfs_of(void)
{
	return fuse_get_context()->private_data;
}

/* The path relative to the backing directory ("/" is "."). */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static uint64_t pfs_rand(pfs *p, uint64_t n)
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return n ? p->rng % n : 0;
}

/* Whether the power is still on; called under the lock. The writes made
 * before the first call that sees it gone are those before the moment. */
static bool powered(pfs *p)
{
	if (pfs_power_went && !p->off) {
		p->off = true;
		p->off_seq = p->seq;
	}
	return !p->off;
}

/* What a sync gets once the power went: no answer for a while (until the
 * unmount, when the service is dead), then EIO. Called without the lock. */
static int dead_disk(void)
{
	struct fuse_session *se = fuse_get_session(fuse_get_context()->fuse);
	struct timespec tick = {0, 5 * 1000000};
	for (int i = 0; i < PFS_DEAD_WAIT_MS / 5 && !fuse_session_exited(se);
	     i++)
		nanosleep(&tick, NULL);
	return -EIO;
}

/* 0 while the power is on, else what a change of a name or a size gets
 * (dead_disk). Takes the lock. */
static int change_allowed(pfs *p)
{
	pthread_mutex_lock(&p->mu);
	bool on = powered(p);
	pthread_mutex_unlock(&p->mu);
	return on ? 0 : dead_disk();
}

/* ---- pages ---- */

static pfs_page **bucket(pfs_file *f, uint64_t index)
{
	return &f->pages[index % PFS_BUCKETS];
}

static pfs_page *page_find(pfs_file *f, uint64_t index)
{
	pfs_page *pg = *bucket(f, index);
	while (pg && pg->index != index)
		pg = pg->next;
	return pg;
}

/* Reads into buf what the backing file holds at [off, off + n); zeros past
 * its end. Returns 0 or -errno. */
static int backing_read(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r =
		    pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	memset((char *)buf + got, 0, n - got);
	return 0;
}

static int backing_write(int fd, const void *buf, size_t n, off_t off)
{
	size_t put = 0;
	while (put < n) {
		ssize_t r = pwrite(
		    fd, (const char *)buf + put, n - put, off + (off_t)put);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		put += (size_t)r;
	}
	return 0;
}

/* The pending page at index, made from the backing file's content when
 * there is none yet. NULL when out of memory or the read failed. */
static pfs_page *page_get(pfs_file *f, uint64_t index)
{
	pfs_page *pg = page_find(f, index);
	if (pg)
		return pg;
	if (!(pg = malloc(sizeof *pg)))
		return NULL;
	pg->index = index;
	if (backing_read(
	        f->fd, pg->data, PFS_PAGE, (off_t)(index * PFS_PAGE)) != 0) {
		free(pg);
		return NULL;
	}
	pg->next = *bucket(f, index);
	*bucket(f, index) = pg;
	f->npages++;
	return pg;
}

/* Writes the first len bytes of a page (clipped to the file's size) to
 * the backing file: they are durable from now on. */
static int page_land(pfs_file *f, const pfs_page *pg, size_t len)
{
	uint64_t off = pg->index * PFS_PAGE;
	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	return backing_write(f->fd, pg->data, len, (off_t)off);
}

static void pages_free(pfs_file *f)
{
	for (size_t b = 0; b < PFS_BUCKETS; b++) {
		pfs_page *pg = f->pages[b];
		while (pg) {
			pfs_page *next = pg->next;
			free(pg);
			pg = next;
		}
		f->pages[b] = NULL;
	}
	f->npages = 0;
}

/* fsync: every pending page of f reaches the backing file. */
static int file_sync(pfs *p, pfs_file *f)
{
	int rv = 0;
	for (size_t b = 0; b < PFS_BUCKETS && rv == 0; b++)
		for (pfs_page *pg = f->pages[b]; pg && rv == 0; pg = pg->next)
			rv = page_land(f, pg, PFS_PAGE);
	if (rv != 0)
		return rv;
	p->syncs++;
	p->synced_pages += f->npages;
	pages_free(f);
	return 0;
}

/* ---- files ---- */

static pfs_file *file_find(pfs *p, dev_t dev, ino_t ino)
{
	pfs_file *f = p->files;
	while (f && !(f->dev == dev && f->ino == ino))
		f = f->next;
	return f;
}

/* Forgets f (its pending pages with it). */
static void file_drop(pfs *p, pfs_file *f)
{
	pfs_file **at = &p->files;
	while (*at != f)
		at = &(*at)->next;
	*at = f->next;
	pages_free(f);
	free(f->pages);
	close(f->fd);
	free(f);
}

/* Drops f once nothing refers to it: no handle open and nothing pending,
 * or no name left (its data is gone with its last name). */
static void file_settle(pfs *p, pfs_file *f)
{
	struct stat st;
	if (f->opens > 0)
		return;
	if (f->npages == 0 || (fstat(f->fd, &st) == 0 && st.st_nlink == 0))
		file_drop(p, f);
}

/* The file of the backing descriptor fd, which it takes over (closing fd
 * when the file is known already). */
static int file_adopt(pfs *p, int fd, pfs_file **out)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rv = -errno;
		close(fd);
		return rv;
	}
	pfs_file *f = file_find(p, st.st_dev, st.st_ino);
	if (f) {
		close(fd);
		*out = f;
		return 0;
	}
	f = calloc(1, sizeof *f);
	if (f)
		f->pages = calloc(PFS_BUCKETS, sizeof *f->pages);
	if (!f || !f->pages) {
		free(f);
		close(fd);
		return -ENOMEM;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	f->next = p->files;
	p->files = f;
	*out = f;
	return 0;
}

/* Cuts f to size: durable at once, pending pages past it are gone. */
static int file_truncate(pfs_file *f, uint64_t size)
{
	if (ftruncate(f->fd, (off_t)size) != 0)
		return -errno;
	for (size_t b = 0; b < PFS_BUCKETS; b++) {
		pfs_page **at = &f->pages[b];
		while (*at) {
			pfs_page *pg = *at;
			uint64_t off = pg->index * PFS_PAGE;
			if (off >= size) {
				*at = pg->next;
				free(pg);
				f->npages--;
				continue;
			}
			if (off + PFS_PAGE > size)
				memset(pg->data + (size - off), 0,
				    PFS_PAGE - (size - off));
			at = &pg->next;
		}
	}
	f->size = size;
	return 0;
}

/* ---- the power cut ---- */

/* The smallest pending sequence number above after (UINT64_MAX: none),
 * and in *lo the smallest of all. */
static uint64_t seq_after(pfs *p, uint64_t after, uint64_t *lo)
{
	uint64_t best = UINT64_MAX;
	*lo = UINT64_MAX;
	for (pfs_file *f = p->files; f; f = f->next)
		for (size_t b = 0; b < PFS_BUCKETS; b++)
			for (pfs_page *pg = f->pages[b]; pg; pg = pg->next) {
				if (pg->seq < *lo)
					*lo = pg->seq;
				if (pg->seq > after && pg->seq < best)
					best = pg->seq;
			}
	return best;
}

/* What a disk keeps of its cache when the power goes (see the top of the
 * file); prints one line. */
static void power_cut(pfs *p)
{
	size_t pending = 0, kept = 0, torn = 0, late = 0;
	uint64_t lo, point = 0, last = powered(p) ? p->seq : p->off_seq;
	if (p->cut != PFS_DROP) {
		(void)seq_after(p, 0, &lo);
		if (lo != UINT64_MAX)
			point = lo - 1 + pfs_rand(p, p->seq - lo + 2);
	}
	uint64_t tear = p->cut == PFS_TORN ? seq_after(p, point, &lo) : 0;
	for (pfs_file *f = p->files; f; f = f->next)
		for (size_t b = 0; b < PFS_BUCKETS; b++)
			for (pfs_page *pg = f->pages[b]; pg; pg = pg->next) {
				pending++;
				late += pg->seq > last;
				if (pg->seq <= point) {
					kept += page_land(f, pg, PFS_PAGE) == 0;
				} else if (pg->seq == tear) {
					size_t n =
					    1 + pfs_rand(p,
					            PFS_PAGE / PFS_SECTOR - 1);
					torn += page_land(
					            f, pg, n * PFS_SECTOR) == 0;
				}
			}
	fprintf(stderr,
	    "powerfs: power cut (%s): %zu pages pending (%zu written after "
	    "the power went), %zu kept, %zu torn; %" PRIu64 " syncs wrote "
	    "%" PRIu64 " pages\n",
	    p->cut == PFS_DROP     ? "drop"
	    : p->cut == PFS_PREFIX ? "prefix"
	                           : "torn",
	    pending, late, kept, torn, p->syncs, p->synced_pages);
}

/* ---- the operations ---- */

static void *pfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Every write must reach us when it is made, not when the kernel
	 * would write its cache back. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	cfg->hard_remove = 1;
	return pfs_of();
}

static void pfs_destroy(void *data)
{
	pfs *p = data;
	pthread_mutex_lock(&p->mu);
	power_cut(p);
	while (p->files)
		file_drop(p, p->files);
	pthread_mutex_unlock(&p->mu);
}

static pfs_handle *handle(struct fuse_file_info *fi)
{
	return (pfs_handle *)(uintptr_t)fi->fh;
}

static int pfs_getattr(
    const char *path, struct stat *st, struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	int rv = 0;
	pthread_mutex_lock(&p->mu);
	pfs_file *f = fi ? handle(fi)->f : NULL;
	if (f ? fstat(f->fd, st) != 0
	      : fstatat(p->dir, rel(path), st, AT_SYMLINK_NOFOLLOW) != 0)
		rv = -errno;
	if (rv == 0 && !f && S_ISREG(st->st_mode))
		f = file_find(p, st->st_dev, st->st_ino);
	if (rv == 0 && f) {
		st->st_size = (off_t)f->size;
		st->st_blocks = (blkcnt_t)((f->size + 511) / 512);
	}
	pthread_mutex_unlock(&p->mu);
	return rv;
}

/* Opens the backing file of path read-write (so that a page can be read
 * in under a write), without the flags whose work is ours: syncing, and
 * appending (the kernel gives every write its offset). */
static int pfs_openfile(
    const char *path, mode_t mode, struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	int flags =
	    fi->flags & ~(O_ACCMODE | O_SYNC | O_DSYNC | O_APPEND | O_DIRECT);
	int rv = (fi->flags & (O_CREAT | O_TRUNC)) ? change_allowed(p) : 0;
	if (rv != 0)
		return rv;
	pfs_handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	int fd = openat(p->dir, rel(path), flags | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0) {
		free(h);
		return -errno;
	}
	pthread_mutex_lock(&p->mu);
	rv = file_adopt(p, fd, &h->f);
	if (rv == 0 && (fi->flags & O_TRUNC))
		rv = file_truncate(h->f, 0);
	if (rv == 0)
		h->f->opens++;
	pthread_mutex_unlock(&p->mu);
	if (rv != 0) {
		free(h);
		return rv;
	}
	h->sync = (fi->flags & (O_SYNC | O_DSYNC)) != 0;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int pfs_open(const char *path, struct fuse_file_info *fi)
{
	return pfs_openfile(path, 0, fi);
}

static int pfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return pfs_openfile(path, mode, fi);
}

static int pfs_release(const char *path, struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	pfs_handle *h = handle(fi);
	pthread_mutex_lock(&p->mu);
	h->f->opens--;
	file_settle(p, h->f);
	pthread_mutex_unlock(&p->mu);
	free(h);
	return 0;
}

static int pfs_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	pfs_file *f = handle(fi)->f;
	int rv = 0;
	pthread_mutex_lock(&p->mu);
	uint64_t at = (uint64_t)off;
	size_t n = at >= f->size         ? 0
	           : size < f->size - at ? size
	                                 : (size_t)(f->size - at);
	if (n)
		rv = backing_read(f->fd, buf, n, off);
	for (uint64_t i = at / PFS_PAGE; rv == 0 && n && i * PFS_PAGE < at + n;
	     i++) {
		const pfs_page *pg = page_find(f, i);
		if (!pg)
			continue;
		uint64_t from = i * PFS_PAGE > at ? i * PFS_PAGE : at;
		uint64_t to =
		    (i + 1) * PFS_PAGE < at + n ? (i + 1) * PFS_PAGE : at + n;
		memcpy(buf + (from - at), pg->data + (from - i * PFS_PAGE),
		    to - from);
	}
	pthread_mutex_unlock(&p->mu);
	return rv ? rv : (int)n;
}

static int pfs_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	pfs_handle *h = handle(fi);
	pfs_file *f = h->f;
	uint64_t at = (uint64_t)off, end = at + size;
	int rv = 0;
	pthread_mutex_lock(&p->mu);
	(void)powered(p); /* a write after the moment comes after off_seq */
	for (uint64_t i = at / PFS_PAGE; i * PFS_PAGE < end; i++) {
		pfs_page *pg = page_get(f, i);
		if (!pg) {
			rv = -ENOMEM;
			break;
		}
		uint64_t from = i * PFS_PAGE > at ? i * PFS_PAGE : at;
		uint64_t to =
		    (i + 1) * PFS_PAGE < end ? (i + 1) * PFS_PAGE : end;
		memcpy(pg->data + (from - i * PFS_PAGE), buf + (from - at),
		    to - from);
		pg->seq = ++p->seq;
	}
	if (rv == 0 && end > f->size)
		f->size = end;
	bool dead = rv == 0 && h->sync && !powered(p);
	if (rv == 0 && h->sync && !dead)
		rv = file_sync(p, f);
	pthread_mutex_unlock(&p->mu);
	if (dead)
		return dead_disk();
	return rv ? rv : (int)size;
}

static int pfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	pthread_mutex_lock(&p->mu);
	bool dead = !powered(p);
	int rv = dead ? 0 : file_sync(p, handle(fi)->f);
	pthread_mutex_unlock(&p->mu);
	return dead ? dead_disk() : rv;
}

/* close(2): nothing becomes durable by it. */
static int pfs_flush(const char *path, struct fuse_file_info *fi)
{
	return 0;
}

static int pfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	pfs *p = pfs_of();
	int rv = change_allowed(p), fd = -1;
	pfs_file *f = NULL;
	if (rv != 0)
		return rv;
	if (!fi && (fd = openat(p->dir, rel(path), O_RDWR | O_CLOEXEC)) < 0)
		return -errno;
	pthread_mutex_lock(&p->mu);
	if (fi)
		f = handle(fi)->f;
	else
		rv = file_adopt(p, fd, &f);
	if (rv == 0)
		rv = file_truncate(f, (uint64_t)size);
	if (!fi && f)
		file_settle(p, f);
	pthread_mutex_unlock(&p->mu);
	return rv;
}

/* A name is going (unlink, or a rename over it): once it was the last,
 * the file's pending data goes with it. */
static void name_gone(pfs *p, const struct stat *st)
{
	pfs_file *f = file_find(p, st->st_dev, st->st_ino);
	if (f)
		file_settle(p, f);
}

/* Unlinks victim, or (from not NULL) renames from over it; either way
 * the name victim held is gone (see name_gone). */
static int name_change(const char *victim, const char *from, unsigned flags)
{
	pfs *p = pfs_of();
	struct stat st;
	int rv = change_allowed(p);
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&p->mu);
	bool had = fstatat(p->dir, rel(victim), &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (from ? renameat2(p->dir, rel(from), p->dir, rel(victim), flags) != 0
	         : unlinkat(p->dir, rel(victim), 0) != 0)
		rv = -errno;
	else if (had && !(flags & RENAME_EXCHANGE))
		name_gone(p, &st);
	pthread_mutex_unlock(&p->mu);
	return rv;
}

static int pfs_unlink(const char *path)
{
	return name_change(path, NULL, 0);
}

static int pfs_rename(const char *from, const char *to, unsigned int flags)
{
	return name_change(to, from, flags);
}

static int pfs_mkdir(const char *path, mode_t mode)
{
	int rv = change_allowed(pfs_of());
	if (rv == 0 && mkdirat(pfs_of()->dir, rel(path), mode) != 0)
		rv = -errno;
	return rv;
}

static int pfs_rmdir(const char *path)
{
	int rv = change_allowed(pfs_of());
	if (rv == 0 && unlinkat(pfs_of()->dir, rel(path), AT_REMOVEDIR) != 0)
		rv = -errno;
	return rv;
}

static int pfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rv = fi ? fchmod(handle(fi)->f->fd, mode)
	            : fchmodat(pfs_of()->dir, rel(path), mode, 0);
	return rv == 0 ? 0 : -errno;
}

static int pfs_chown(
    const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int rv = fi ? fchown(handle(fi)->f->fd, uid, gid)
	            : fchownat(pfs_of()->dir, rel(path), uid, gid,
	                  AT_SYMLINK_NOFOLLOW);
	return rv == 0 ? 0 : -errno;
}

static int pfs_utimens(
    const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	int rv =
	    fi ? futimens(handle(fi)->f->fd, tv)
	       : utimensat(pfs_of()->dir, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return rv == 0 ? 0 : -errno;
}

static int pfs_access(const char *path, int mask)
{
	return faccessat(pfs_of()->dir, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int pfs_statfs(const char *path, struct statvfs *st)
{
	return fstatvfs(pfs_of()->dir, st) == 0 ? 0 : -errno;
}

static int pfs_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(
	    pfs_of()->dir, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int rv = -errno;
		if (fd >= 0)
			close(fd);
		return rv;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

/* Lists the whole directory in one go (offset 0 to the filler): the
 * stores hold a handful of files. */
static int pfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
    off_t off, struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	DIR *d = (DIR *)(uintptr_t)fi->fh;
	struct dirent *e;
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		struct stat st = {
		    .st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
		if (fill(buf, e->d_name, &st, 0, 0) != 0)
			break;
	}
	return 0;
}

static int pfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	closedir((DIR *)(uintptr_t)fi->fh);
	return 0;
}

/* Names are durable at once (see the top of the file). */
static int pfs_fsyncdir(
    const char *path, int datasync, struct fuse_file_info *fi)
{
	return 0;
}

static const struct fuse_operations pfs_ops = {
    .init = pfs_init,
    .destroy = pfs_destroy,
    .getattr = pfs_getattr,
    .open = pfs_open,
    .create = pfs_create,
    .release = pfs_release,
    .read = pfs_read,
    .write = pfs_write,
    .fsync = pfs_fsync,
    .flush = pfs_flush,
    .truncate = pfs_truncate,
    .unlink = pfs_unlink,
    .rename = pfs_rename,
    .mkdir = pfs_mkdir,
    .rmdir = pfs_rmdir,
    .chmod = pfs_chmod,
    .chown = pfs_chown,
    .utimens = pfs_utimens,
    .access = pfs_access,
    .statfs = pfs_statfs,
    .opendir = pfs_opendir,
    .readdir = pfs_readdir,
    .releasedir = pfs_releasedir,
    .fsyncdir = pfs_fsyncdir,
};

static int usage(void)
{
	fprintf(stderr, "usage: powerfs [--cut drop|prefix|torn] [--seed N] "
	                "BACKING MOUNTPOINT\n");
	return 2;
}

static int parse_cut(const char *s, pfs_cut *out)
{
	static const char *const names[] = {"drop", "prefix", "torn"};
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (pfs_cut)i;
			return 0;
		}
	return -1;
}

int main(int argc, char **argv)
{
	static pfs p = {.mu = PTHREAD_MUTEX_INITIALIZER};
	const char *args[2];
	int nargs = 0;
	p.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cut") == 0 && i + 1 < argc) {
			if (parse_cut(argv[++i], &p.cut) != 0)
				return usage();
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			p.rng = strtoull(argv[++i], NULL, 10);
		} else if (argv[i][0] == '-' || nargs == 2) {
			return usage();
		} else {
			args[nargs++] = argv[i];
		}
	}
	if (nargs != 2)
		return usage();
	p.rng |= 1;
	struct sigaction sa = {.sa_handler = pfs_power_cb};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	p.dir = open(args[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p.dir < 0) {
		fprintf(stderr, "powerfs: %s: %s\n", args[0], strerror(errno));
		return 1;
	}
	/* Foreground, so that the fault suite waits for this process; the
	 * mount goes away with it even when it is killed (auto_unmount). */
	char *fargv[] = {argv[0], "-f", "-o",
	    "fsname=powerfs,subtype=powerfs,auto_unmount", (char *)args[1],
	    NULL};
	return fuse_main(5, fargv, &pfs_ops, &p);
}
