/*
 * posix - file semantics checks for a mounted filesystem.
 *
 *   posix [-v] DIR
 *
 * Runs named checks inside DIR (an empty directory): open flags, offsets,
 * sparse files, truncation, unlink of open files, directories and readdir,
 * rename and renameat2, symlinks, hard links, ownership and times, sync
 * calls, statfs, user.* xattrs, special files, mmap, name limits,
 * permission checks as an unprivileged user, set-user-ID/set-group-ID
 * clearing on write, truncate, fallocate, copy and chown, fallocate (mode 0, KEEP_SIZE,
 * PUNCH_HOLE, ZERO_RANGE), SEEK_DATA/SEEK_HOLE, copy_file_range and POSIX
 * ACLs (mode sync, umask, default-ACL inheritance, chmod, set-group-ID,
 * enforcement).  What it expects is what Linux
 * does on both ext4 and tmpfs (the program is validated on both): behaviour
 * that differs between those two is not asserted.
 *
 * Prints one line per failed check ("FAIL group/check: expected X, got Y")
 * and a summary "posix: N passed, M failed"; exits 1 on any failure, 2 on a
 * usage or setup error.  Must run as root (chown, mknod, setresuid).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define KIB 1024L
#define MIB (1024L * 1024L)
#define GIB (1024L * 1024L * 1024L)
#define NOBODY 65534 /* the unprivileged uid/gid of the permission checks */

/* Counters live in shared memory so the unprivileged child can add to them. */
struct tally {
	int pass, fail;
};
static struct tally *tally;
static const char *group = "";
static int verbose;

static const char *ename(int e)
{
	const char *s = e ? strerrorname_np(e) : "0";
	return s ? s : "E?";
}

static void pass(const char *what)
{
	tally->pass++;
	if (verbose)
		printf("ok   %s/%s\n", group, what);
}

static void failf(const char *what, const char *fmt, ...)
{
	va_list ap;

	tally->fail++;
	printf("FAIL %s/%s: ", group, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/*
 * ok_/err_ read errno first thing: in OK(w, call) the call is evaluated
 * before ok_ is entered and nothing else runs in between.
 */
static long ok_(const char *what, long r)
{
	int e = errno;

	if (r < 0)
		failf(what, "expected success, got %s (%s)", ename(e), strerror(e));
	else
		pass(what);
	return r;
}
#define OK(what, call) ok_((what), (long)(call))

static void err_(const char *what, long r, int want)
{
	int e = errno;

	if (r >= 0)
		failf(what, "expected %s, got success (%ld)", ename(want), r);
	else if (e != want)
		failf(what, "expected %s, got %s", ename(want), ename(e));
	else
		pass(what);
}
#define ERR(what, call, want) err_((what), (long)(call), (want))

static void eq_(const char *what, long long want, long long got)
{
	if (want == got)
		pass(what);
	else
		failf(what, "expected %lld, got %lld", want, got);
}
#define EQ(what, want, got) eq_((what), (long long)(want), (long long)(got))

/* mode: expect the full st_mode, print in octal */
static void mode_eq(const char *what, mode_t want, mode_t got)
{
	if (want == got)
		pass(what);
	else
		failf(what, "expected mode %06o, got %06o", (unsigned)want,
		      (unsigned)got);
}

static void truth(const char *what, int cond, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	if (cond) {
		pass(what);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	failf(what, "%s", msg);
}

static void mem_eq(const char *what, const void *want, size_t wn,
                   const void *got, long gn)
{
	const unsigned char *a = want, *b = got;
	size_t i;

	if (gn < 0) {
		failf(what, "expected %zu bytes, got error", wn);
		return;
	}
	for (i = 0; i < wn && i < (size_t)gn; i++)
		if (a[i] != b[i])
			break;
	if (i == wn && (size_t)gn == wn) {
		pass(what);
		return;
	}
	if (i < wn && i < (size_t)gn)
		failf(what, "expected %zu bytes, got %ld; first difference at"
		      " offset %zu: expected 0x%02x, got 0x%02x", wn, gn, i, a[i],
		      b[i]);
	else
		failf(what, "expected %zu bytes, got %ld", wn, gn);
}

static void str_eq(const char *what, const char *want, const char *got)
{
	if (got && !strcmp(want, got))
		pass(what);
	else
		failf(what, "expected \"%.80s\", got \"%.80s\"", want,
		      got ? got : "(error)");
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

static void ts_later(const char *what, struct timespec before,
                     struct timespec after)
{
	truth(what, ts_cmp(after, before) > 0, "expected later than %lld.%09ld,"
	      " got %lld.%09ld", (long long)before.tv_sec, before.tv_nsec,
	      (long long)after.tv_sec, after.tv_nsec);
}

static void ts_same(const char *what, struct timespec before,
                    struct timespec after)
{
	truth(what, ts_cmp(after, before) == 0, "expected unchanged %lld.%09ld,"
	      " got %lld.%09ld", (long long)before.tv_sec, before.tv_nsec,
	      (long long)after.tv_sec, after.tv_nsec);
}

static void ts_is(const char *what, time_t sec, long nsec, struct timespec got)
{
	struct timespec w = { sec, nsec };
	truth(what, ts_cmp(w, got) == 0, "expected %lld.%09ld, got %lld.%09ld",
	      (long long)sec, nsec, (long long)got.tv_sec, got.tv_nsec);
}

/* got is within a few seconds of the wall clock */
static void ts_now(const char *what, struct timespec got)
{
	time_t now = time(NULL);
	truth(what, got.tv_sec >= now - 5 && got.tv_sec <= now + 1,
	      "expected about %lld (now), got %lld", (long long)now,
	      (long long)got.tv_sec);
}

/* Let the clock move on so a timestamp change is visible. */
static void tick(void)
{
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

/* ---- setup helpers: a failure here is fatal, it is not a check ---- */

static void die(const char *what)
{
	printf("FAIL %s: setup: %s: %s\n", group, what, strerror(errno));
	exit(2);
}

static void put(const char *path, const void *buf, size_t n, mode_t mode)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);

	if (fd < 0 || write(fd, buf, n) != (ssize_t)n || close(fd))
		die(path);
}

static void puts_(const char *path, const char *s)
{
	put(path, s, strlen(s), 0644);
}

static void xmkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode))
		die(path);
}

/* Whole content of path into a static buffer (NUL-terminated); -1 on error. */
static char slurp_buf[1 << 16];
static long slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	long n = 0, r;

	if (fd < 0)
		return -1;
	while ((r = read(fd, slurp_buf + n, sizeof slurp_buf - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	if (r < 0)
		return -1;
	slurp_buf[n] = 0;
	return n;
}

static const char *content(const char *path)
{
	return slurp(path) < 0 ? NULL : slurp_buf;
}

/*
 * lstat(path), but forcing a FUSE filesystem to answer instead of the
 * kernel's attribute cache (AT_STATX_FORCE_SYNC; local filesystems ignore
 * it), so the checks see what the daemon stored.
 */
static struct stat st_of(const char *path)
{
	struct statx sx;
	struct stat st;

	memset(&st, 0xff, sizeof st); /* on error every comparison fails */
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
	          STATX_BASIC_STATS, &sx))
		return st;
	st.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	st.st_ino = sx.stx_ino;
	st.st_mode = sx.stx_mode;
	st.st_nlink = sx.stx_nlink;
	st.st_uid = sx.stx_uid;
	st.st_gid = sx.stx_gid;
	st.st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
	st.st_size = (off_t)sx.stx_size;
	st.st_blksize = sx.stx_blksize;
	st.st_blocks = (blkcnt_t)sx.stx_blocks;
	st.st_atim.tv_sec = sx.stx_atime.tv_sec;
	st.st_atim.tv_nsec = sx.stx_atime.tv_nsec;
	st.st_mtim.tv_sec = sx.stx_mtime.tv_sec;
	st.st_mtim.tv_nsec = sx.stx_mtime.tv_nsec;
	st.st_ctim.tv_sec = sx.stx_ctime.tv_sec;
	st.st_ctim.tv_nsec = sx.stx_ctime.tv_nsec;
	return st;
}

static void enter(const char *name)
{
	group = name;
	if (mkdir(name, 0755) || chdir(name))
		die("enter");
}

static void leave(void)
{
	if (chdir(".."))
		die("leave");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A nonzero, offset-dependent byte, so stale or shifted data shows. */
static unsigned char pat(long off, int salt)
{
	return (unsigned char)(((off * 7 + salt) % 251) + 1);
}

static void fill_pat(unsigned char *b, long off, size_t n, int salt)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(off + (long)i, salt);
}

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* ---- open ---- */

static void t_open(void)
{
	struct stat st;
	char buf[64];
	int fd, fd2;
	long n;

	enter("open");
	fd = OK("O_CREAT new file", open("f", O_CREAT | O_WRONLY, 0644));
	OK("fstat new file", fstat(fd, &st));
	mode_eq("new file mode", S_IFREG | 0644, st.st_mode);
	EQ("new file size", 0, st.st_size);
	EQ("new file nlink", 1, st.st_nlink);
	EQ("new file uid", geteuid(), st.st_uid);
	EQ("new file gid", getegid(), st.st_gid);
	EQ("write", 11, write(fd, "hello world", 11));
	OK("close", close(fd));
	ERR("O_EXCL on existing file", open("f", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	fd = OK("O_CREAT on existing file", open("f", O_CREAT | O_WRONLY, 0600));
	close(fd);
	st = st_of("f");
	EQ("O_CREAT on existing does not truncate", 11, st.st_size);
	mode_eq("O_CREAT on existing keeps mode", S_IFREG | 0644, st.st_mode);

	fd = OK("O_TRUNC", open("f", O_WRONLY | O_TRUNC));
	OK("fstat after O_TRUNC", fstat(fd, &st));
	EQ("size after O_TRUNC (fstat)", 0, st.st_size);
	close(fd);
	EQ("size after O_TRUNC (stat)", 0, st_of("f").st_size);
	EQ("read after O_TRUNC", 0, slurp("f"));

	fd = OK("O_APPEND open", open("a", O_CREAT | O_WRONLY | O_APPEND, 0644));
	EQ("append write 1", 3, write(fd, "abc", 3));
	EQ("lseek to 0", 0, lseek(fd, 0, SEEK_SET));
	EQ("append write after lseek", 3, write(fd, "def", 3));
	EQ("offset after append write is EOF", 6, lseek(fd, 0, SEEK_CUR));
	EQ("pwrite with O_APPEND", 3, pwrite(fd, "ghi", 3, 0));
	str_eq("O_APPEND content", "abcdefghi", content("a"));
	fd2 = OK("second non-append fd", open("a", O_WRONLY));
	EQ("overwrite at 0 via fd2", 1, write(fd2, "A", 1));
	EQ("append after other fd wrote", 1, write(fd, "j", 1));
	EQ("fd2 extends file", 2, pwrite(fd2, "kl", 2, 10));
	EQ("append after fd2 extended", 1, write(fd, "m", 1));
	close(fd2);
	close(fd);
	str_eq("mixed append content", "Abcdefghijklm", content("a"));

	ERR("open missing", open("missing", O_RDONLY), ENOENT);
	ERR("open below a file", open("f/x", O_RDONLY), ENOTDIR);
	ERR("O_DIRECTORY on a file", open("f", O_RDONLY | O_DIRECTORY), ENOTDIR);
	xmkdir("d", 0755);
	ERR("open dir O_WRONLY", open("d", O_WRONLY), EISDIR);
	ERR("O_CREAT on a dir", open("d", O_CREAT | O_WRONLY, 0644), EISDIR);
	fd = OK("open dir O_RDONLY", open("d", O_RDONLY | O_DIRECTORY));
	ERR("read on a dir fd", read(fd, buf, sizeof buf), EISDIR);
	close(fd);
	if (symlink("f", "sl"))
		die("symlink");
	ERR("O_NOFOLLOW on symlink", open("sl", O_RDONLY | O_NOFOLLOW), ELOOP);
	if (symlink("made-by-symlink", "dangling"))
		die("symlink");
	ERR("O_EXCL on dangling symlink", open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	fd = OK("O_CREAT through dangling symlink", open("dangling", O_CREAT | O_WRONLY, 0644));
	close(fd);
	truth("target of dangling symlink created", S_ISREG(st_of("made-by-symlink").st_mode),
	      "expected a regular file 'made-by-symlink'");

	fd = OK("open O_WRONLY", open("f", O_WRONLY));
	ERR("read on O_WRONLY fd", read(fd, buf, 1), EBADF);
	close(fd);
	fd = OK("open O_RDONLY", open("f", O_RDONLY));
	ERR("write on O_RDONLY fd", write(fd, "x", 1), EBADF);
	close(fd);

	umask(022);
	fd = OK("create under umask 022", open("um", O_CREAT | O_WRONLY, 0666));
	umask(0);
	close(fd);
	mode_eq("umask applied", S_IFREG | 0644, st_of("um").st_mode);

	fd = OK("O_RDWR|O_CREAT", open("rw", O_CREAT | O_RDWR, 0600));
	EQ("write rw", 5, write(fd, "12345", 5));
	EQ("lseek back", 1, lseek(fd, 1, SEEK_SET));
	n = read(fd, buf, sizeof buf);
	mem_eq("read after write on same fd", "2345", 4, buf, n);
	EQ("SEEK_END", 5, lseek(fd, 0, SEEK_END));
	close(fd);
	leave();
}

/* ---- read/write at offsets ---- */

static void t_rw(void)
{
	const long region = 2 * MIB + 12345;
	unsigned char *model = calloc(1, (size_t)region);
	unsigned char *got = calloc(1, (size_t)region);
	unsigned char wbuf[70000];
	long size = 0, n, r;
	int fd;
	static const long fixed[][2] = {
		{ 4095, 2 }, { 65535, 2 }, { MIB - 1, 2 }, { 0, 1 },
		{ 4096, 4096 }, { 131072 - 100, 200 }, { 3, 65536 + 7 },
	};

	enter("rw");
	if (!model || !got)
		die("malloc");
	fd = OK("open", open("f", O_CREAT | O_RDWR, 0644));
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		fill_pat(wbuf, fixed[i][0], (size_t)fixed[i][1], (int)i);
		if (pwrite(fd, wbuf, (size_t)fixed[i][1], fixed[i][0]) != fixed[i][1])
			failf("fixed pwrite", "short write at %ld", fixed[i][0]);
		memcpy(model + fixed[i][0], wbuf, (size_t)fixed[i][1]);
		if (fixed[i][0] + fixed[i][1] > size)
			size = fixed[i][0] + fixed[i][1];
	}
	r = 0;
	for (int i = 0; i < 300; i++) {
		long off = (long)(rnd() % (uint64_t)(region - 1));
		long len = 1 + (long)(rnd() % sizeof wbuf);
		if (off + len > region)
			len = region - off;
		for (long k = 0; k < len; k++)
			wbuf[k] = (unsigned char)rnd();
		if (pwrite(fd, wbuf, (size_t)len, off) != len)
			r++;
		memcpy(model + off, wbuf, (size_t)len);
		if (off + len > size)
			size = off + len;
	}
	EQ("300 random pwrites all complete", 0, r);
	struct stat st;
	OK("fstat", fstat(fd, &st));
	EQ("size after random writes", size, st.st_size);
	n = pread(fd, got, (size_t)region, 0);
	mem_eq("pread whole file matches model", model, (size_t)size, got, n);
	EQ("pread at EOF", 0, pread(fd, got, 100, size));
	EQ("pread past EOF", 0, pread(fd, got, 100, size + 5000));
	EQ("pread straddling EOF is short", 10, pread(fd, got, 100, size - 10));
	close(fd);

	fd = OK("reopen read-only", open("f", O_RDONLY));
	n = 0;
	while ((r = read(fd, got + n, 12345)) > 0)
		n += r;
	mem_eq("sequential reads after reopen match model", model, (size_t)size, got, n);
	close(fd);

	/* write() honours the file offset */
	fd = OK("reopen rw", open("f", O_RDWR));
	EQ("lseek 5000", 5000, lseek(fd, 5000, SEEK_SET));
	EQ("write at offset", 10, write(fd, "0123456789", 10));
	memcpy(model + 5000, "0123456789", 10);
	EQ("offset advanced", 5010, lseek(fd, 0, SEEK_CUR));
	/* write beyond EOF leaves a zero gap */
	EQ("write beyond EOF", 1, pwrite(fd, "Z", 1, size + 3000));
	n = pread(fd, got, 4000, size - 1000);
	memset(wbuf, 0, 4000);
	memcpy(wbuf, model + size - 1000, 1000);
	mem_eq("gap after EOF reads as zeros", wbuf, 4000, got, n);
	EQ("byte written beyond EOF", 1, pread(fd, got, 1, size + 3000));
	EQ("byte value beyond EOF", 'Z', got[0]);
	n = pread(fd, got, 10, 5000);
	mem_eq("write() at offset landed", "0123456789", 10, got, n);
	close(fd);
	free(model);
	free(got);
	leave();
}

/* ---- sparse files ---- */

static void t_sparse(void)
{
	unsigned char *buf = malloc(65536), data[4096];
	struct stat st;
	long n;
	int fd;

	enter("sparse");
	if (!buf)
		die("malloc");
	fill_pat(data, GIB, sizeof data, 3);
	fd = OK("open", open("s", O_CREAT | O_RDWR, 0644));
	EQ("pwrite at 1 GiB", 4096, pwrite(fd, data, 4096, GIB));
	OK("fsync", fsync(fd));
	OK("fstat", fstat(fd, &st));
	EQ("st_size", GIB + 4096, st.st_size);
	truth("st_blocks small", st.st_blocks < 2048,
	      "expected < 2048 512-byte blocks for 4 KiB of data, got %lld",
	      (long long)st.st_blocks);
	n = pread(fd, buf, 65536, 512 * MIB);
	truth("hole at 512 MiB reads zeros", n == 65536 && all_zero(buf, 65536),
	      "got %ld bytes, zero=%d", n, n > 0 ? all_zero(buf, (size_t)n) : -1);
	n = pread(fd, buf, 65536, 0);
	truth("hole at 0 reads zeros", n == 65536 && all_zero(buf, 65536),
	      "got %ld bytes, zero=%d", n, n > 0 ? all_zero(buf, (size_t)n) : -1);
	n = pread(fd, buf, 8192, GIB - 4096);
	truth("hole before data reads zeros", n == 8192 && all_zero(buf, 4096),
	      "got %ld bytes", n);
	mem_eq("data after the hole", data, 4096, buf + 4096, n - 4096);
	EQ("EOF after data", 0, pread(fd, buf, 10, GIB + 4096));
	close(fd);
	fd = OK("reopen", open("s", O_RDONLY));
	n = pread(fd, buf, 4096, GIB);
	mem_eq("data after reopen", data, 4096, buf, n);
	n = pread(fd, buf, 4096, GIB - 8192);
	truth("hole after reopen", n == 4096 && all_zero(buf, 4096), "got %ld", n);
	close(fd);

	/* a small sparse file read end to end */
	fd = OK("open small sparse", open("t", O_CREAT | O_RDWR, 0644));
	EQ("write 1 byte at 3 MiB", 1, pwrite(fd, "x", 1, 3 * MIB));
	long zero = 1, tot = 0;
	while ((n = read(fd, buf, 65536)) > 0) {
		long z = n;
		if (tot + n > 3 * MIB)
			z = 3 * MIB - tot;
		if (!all_zero(buf, (size_t)z))
			zero = 0;
		tot += n;
	}
	EQ("small sparse read length", 3 * MIB + 1, tot);
	EQ("small sparse hole is zeros", 1, zero);
	EQ("small sparse last byte", 'x', buf[0 + ((3 * MIB) % 65536)]);
	close(fd);
	free(buf);
	leave();
}

/* ---- truncate ---- */

/* Read up to max bytes of path into b; -1 on error. */
static long read_file(const char *path, unsigned char *b, size_t max)
{
	int fd = open(path, O_RDONLY);
	long n = 0, r;

	if (fd < 0)
		return -1;
	while ((size_t)n < max && (r = read(fd, b + n, max - (size_t)n)) > 0)
		n += r;
	close(fd);
	return n;
}

/* path holds the salt pattern on [0, keep) and zeros on [keep, size). */
static void trunc_content(const char *what, const char *path, long keep,
                          long size, int salt)
{
	unsigned char *b = malloc((size_t)size + 16);
	long n, bad = -1;

	if (!b)
		die("malloc");
	n = read_file(path, b, (size_t)size + 16);
	for (long i = 0; i < n && bad < 0; i++)
		if (b[i] != (i < keep ? pat(i, salt) : 0))
			bad = i;
	if (n != size)
		failf(what, "expected %ld bytes, got %ld", size, n);
	else if (bad >= 0)
		failf(what, "byte %ld: expected 0x%02x, got 0x%02x (%s)", bad,
		      bad < keep ? pat(bad, salt) : 0, b[bad],
		      bad < keep ? "kept data" : "old data resurfaced");
	else
		pass(what);
	free(b);
}

static void t_truncate(void)
{
	static const long cases[][2] = {
		{ 0, 100 }, { 1, 4096 }, { 4095, 8192 }, { 4097, 70000 },
		{ 65535, 200000 }, { 65537, 131072 }, { 100000, 300000 },
		{ 262143, 262144 }, { 12345, 12346 },
	};
	const long full = 262144;
	unsigned char *b = malloc((size_t)full);
	char what[128];
	struct stat st;
	int fd, fd2;
	long n;

	enter("truncate");
	if (!b)
		die("malloc");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long shrink = cases[i][0], grow = cases[i][1];
		int salt = (int)i + 10;
		fill_pat(b, 0, (size_t)full, salt);
		fd = open("f", O_CREAT | O_RDWR | O_TRUNC, 0644);
		if (fd < 0 || write(fd, b, (size_t)full) != full)
			die("write f");
		if (i % 2)
			OK("truncate() shrink", truncate("f", shrink));
		else
			OK("ftruncate() shrink", ftruncate(fd, shrink));
		OK("fstat", fstat(fd, &st));
		snprintf(what, sizeof what, "size after shrink to %ld", shrink);
		EQ(what, shrink, st.st_size);
		snprintf(what, sizeof what, "content after shrink to %ld", shrink);
		trunc_content(what, "f", shrink, shrink, salt);
		if (i % 2)
			OK("ftruncate() grow", ftruncate(fd, grow));
		else
			OK("truncate() grow", truncate("f", grow));
		EQ("size after grow (stat)", grow, st_of("f").st_size);
		snprintf(what, sizeof what, "shrink to %ld, grow to %ld: zeros", shrink, grow);
		trunc_content(what, "f", shrink, grow, salt);
		close(fd);
		snprintf(what, sizeof what, "shrink to %ld, grow to %ld: zeros after close",
		         shrink, grow);
		trunc_content(what, "f", shrink, grow, salt);
	}

	/* truncate through the path while another fd holds cached data */
	fill_pat(b, 0, 20000, 1);
	fd = open("g", O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0 || write(fd, b, 20000) != 20000)
		die("write g");
	n = pread(fd, b, 20000, 0);
	EQ("read before truncate", 20000, n);
	OK("truncate g to 10", truncate("g", 10));
	EQ("other fd sees the shrink", 10, pread(fd, b, 20000, 0));
	/* shrink then write beyond: the gap is zeros */
	EQ("pwrite beyond shrunk EOF", 1, pwrite(fd, "x", 1, 5000));
	n = pread(fd, b, 20000, 0);
	EQ("size after write beyond", 5001, n);
	truth("gap after shrink+write is zeros", n == 5001 && all_zero(b + 10, 4990),
	      "old data resurfaced in the gap");
	fd2 = OK("open O_RDONLY", open("g", O_RDONLY));
	ERR("ftruncate on read-only fd", ftruncate(fd2, 0), EINVAL);
	close(fd2);
	close(fd);
	ERR("truncate to negative", truncate("g", -1), EINVAL);
	xmkdir("d", 0755);
	ERR("truncate a dir", truncate("d", 0), EISDIR);
	ERR("truncate missing", truncate("missing", 0), ENOENT);
	free(b);
	leave();
}

/* ---- unlink of an open file ---- */

/* Names in the current directory other than . and .., joined by '/'. */
static const char *listing(const char *dir)
{
	static char buf[8192];
	char *names[512];
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;

	buf[0] = 0;
	if (!d)
		return "(opendir failed)";
	while ((e = readdir(d)) && n < 512) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	/* sort for a stable comparison */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if (i)
			strncat(buf, "/", sizeof buf - strlen(buf) - 1);
		strncat(buf, names[i], sizeof buf - strlen(buf) - 1);
		free(names[i]);
	}
	return buf;
}

/* listing(dir) restricted to names that start with prefix */
static const char *listing_of(const char *prefix, const char *dir)
{
	static char out[8192];
	const char *all = listing(dir);
	size_t pl = strlen(prefix);

	out[0] = 0;
	for (const char *p = all; *p; ) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n >= pl && !strncmp(p, prefix, pl)) {
			if (out[0])
				strncat(out, "/", sizeof out - strlen(out) - 1);
			strncat(out, p, n); /* out is as large as listing()s buffer */
		}
		p += n + (e ? 1 : 0);
	}
	return out;
}

static void t_unlink_open(void)
{
	char buf[64];
	struct stat st;
	int fd, fd2;
	long n;

	enter("unlink_open");
	fd = OK("open", open("f", O_CREAT | O_RDWR, 0644));
	EQ("write", 6, write(fd, "before", 6));
	OK("unlink open file", unlink("f"));
	ERR("name is gone", access("f", F_OK), ENOENT);
	str_eq("directory is empty", "", listing("."));
	OK("fstat unlinked", fstat(fd, &st));
	EQ("nlink 0", 0, st.st_nlink);
	n = pread(fd, buf, sizeof buf, 0);
	mem_eq("still readable", "before", 6, buf, n);
	EQ("still writable", 6, pwrite(fd, "after!", 6, 6));
	OK("fstat after write", fstat(fd, &st));
	EQ("size grows", 12, st.st_size);
	OK("fsync unlinked", fsync(fd));
	puts_("f", "new");
	str_eq("new file of the same name", "new", content("f"));
	n = pread(fd, buf, sizeof buf, 0);
	mem_eq("old fd keeps old data", "beforeafter!", 12, buf, n);
	OK("ftruncate unlinked", ftruncate(fd, 3));
	n = pread(fd, buf, sizeof buf, 0);
	mem_eq("read after ftruncate", "bef", 3, buf, n);
	OK("close unlinked", close(fd));
	str_eq("new file untouched", "new", content("f"));

	/* a file replaced by rename stays readable through its open fd */
	puts_("g", "old-g");
	fd = OK("open g", open("g", O_RDONLY));
	puts_("h", "new-h");
	OK("rename over open file", rename("h", "g"));
	n = pread(fd, buf, sizeof buf, 0);
	mem_eq("replaced file readable via fd", "old-g", 5, buf, n);
	OK("fstat replaced", fstat(fd, &st));
	EQ("replaced file nlink 0", 0, st.st_nlink);
	close(fd);
	str_eq("new content under the name", "new-h", content("g"));
	str_eq("listing after replace", "f/g", listing("."));

	/* two fds, unlink, both still work */
	fd = OK("open k", open("k", O_CREAT | O_RDWR, 0644));
	fd2 = OK("open k again", open("k", O_RDWR));
	OK("unlink k", unlink("k"));
	EQ("write fd1", 3, write(fd, "abc", 3));
	n = pread(fd2, buf, sizeof buf, 0);
	mem_eq("fd2 sees fd1's write", "abc", 3, buf, n);
	close(fd);
	n = pread(fd2, buf, sizeof buf, 0);
	mem_eq("fd2 after fd1 closed", "abc", 3, buf, n);
	close(fd2);
	str_eq("listing at end", "f/g", listing("."));
	leave();
}

/* ---- directories ---- */

static void t_dirs(void)
{
	struct stat st;
	nlink_t base;
	int fd;

	enter("dirs");
	base = st_of(".").st_nlink;
	OK("mkdir", mkdir("d", 0755));
	st = st_of("d");
	mode_eq("dir mode", S_IFDIR | 0755, st.st_mode);
	EQ("new dir nlink", 2, st.st_nlink);
	EQ("parent nlink +1", base + 1, st_of(".").st_nlink);
	ERR("mkdir existing", mkdir("d", 0755), EEXIST);
	puts_("f", "x");
	ERR("mkdir over file", mkdir("f", 0755), EEXIST);
	ERR("mkdir missing parent", mkdir("nope/x", 0755), ENOENT);
	ERR("mkdir below file", mkdir("f/x", 0755), ENOTDIR);
	OK("mkdir sub", mkdir("d/sub", 0700));
	EQ("dir nlink with subdir", 3, st_of("d").st_nlink);
	ERR("rmdir non-empty", rmdir("d"), ENOTEMPTY);
	ERR("rmdir file", rmdir("f"), ENOTDIR);
	ERR("rmdir missing", rmdir("missing"), ENOENT);
	ERR("unlink dir", unlink("d"), EISDIR);
	ERR("rmdir .", rmdir("d/sub/."), EINVAL);
	ERR("rmdir ..", rmdir("d/sub/.."), ENOTEMPTY);
	puts_("d/sub/file", "y");
	ERR("rmdir dir with a file", rmdir("d/sub"), ENOTEMPTY);
	OK("unlink file", unlink("d/sub/file"));
	OK("rmdir empty", rmdir("d/sub"));
	EQ("nlink after rmdir", 2, st_of("d").st_nlink);
	OK("rmdir d", rmdir("d"));
	EQ("parent nlink back", base, st_of(".").st_nlink);
	ERR("removed dir is gone", access("d", F_OK), ENOENT);

	umask(027);
	OK("mkdir under umask 027", mkdir("m", 0777));
	umask(0);
	mode_eq("umask applied to mkdir", S_IFDIR | 0750, st_of("m").st_mode);
	OK("mkdir sticky", mkdir("sticky", 01777));
	mode_eq("sticky bit kept", S_IFDIR | 01777, st_of("sticky").st_mode);

	/* setgid directory: new entries inherit its group, subdirs the bit */
	OK("mkdir sgid", mkdir("sg", 0775));
	OK("chown sgid dir", chown("sg", 0, 5678));
	OK("chmod sgid dir", chmod("sg", 02775));
	fd = OK("create in sgid dir", open("sg/f", O_CREAT | O_WRONLY, 0644));
	close(fd);
	EQ("file inherits group", 5678, st_of("sg/f").st_gid);
	OK("mkdir in sgid dir", mkdir("sg/sub", 0755));
	st = st_of("sg/sub");
	EQ("subdir inherits group", 5678, st.st_gid);
	mode_eq("subdir inherits setgid", S_IFDIR | 02755, st.st_mode);

	/* readdir: every type, . and .., d_ino */
	xmkdir("rd", 0755);
	puts_("rd/f", "x");
	xmkdir("rd/d", 0755);
	if (symlink("f", "rd/l") || mkfifo("rd/p", 0644) ||
	    mknod("rd/c", S_IFCHR | 0600, makedev(1, 3)) ||
	    mknod("rd/s", S_IFSOCK | 0600, 0))
		die("special files");
	{
		static const struct { const char *n; unsigned char t; } want[] = {
			{ ".", DT_DIR }, { "..", DT_DIR }, { "f", DT_REG },
			{ "d", DT_DIR }, { "l", DT_LNK }, { "p", DT_FIFO },
			{ "c", DT_CHR }, { "s", DT_SOCK },
		};
		int seen[8] = { 0 }, extra = 0;
		DIR *dp = opendir("rd");
		struct dirent *e;
		char path[300], what[64];

		if (!dp)
			die("opendir rd");
		while ((e = readdir(dp))) {
			size_t k;
			for (k = 0; k < 8; k++)
				if (!strcmp(e->d_name, want[k].n))
					break;
			if (k == 8) {
				failf("readdir", "unexpected entry '%s'", e->d_name);
				extra++;
				continue;
			}
			seen[k]++;
			snprintf(what, sizeof what, "d_type of '%s'", want[k].n);
			EQ(what, want[k].t, e->d_type);
			snprintf(path, sizeof path, "rd/%s", e->d_name);
			snprintf(what, sizeof what, "d_ino of '%s'", want[k].n);
			if (strcmp(e->d_name, ".."))
				EQ(what, st_of(path).st_ino, e->d_ino);
		}
		closedir(dp);
		for (size_t k = 0; k < 8; k++) {
			snprintf(what, sizeof what, "'%s' listed once", want[k].n);
			EQ(what, 1, seen[k]);
		}
		EQ("no unexpected entries", 0, extra);
	}

	/* a larger directory: every entry exactly once, before and after removals */
	{
		char name[300], want[8192] = "";
		int i;
		xmkdir("many", 0755);
		for (i = 0; i < 400; i++) {
			snprintf(name, sizeof name, "many/n%03d", i);
			fd = open(name, O_CREAT | O_WRONLY, 0644);
			if (fd < 0)
				die(name);
			close(fd);
		}
		for (i = 0; i < 400; i++) {
			snprintf(name, sizeof name, "%sn%03d", i ? "/" : "", i);
			strcat(want, name);
		}
		str_eq("400 entries listed", want, listing("many"));
		want[0] = 0;
		for (i = 0; i < 400; i++) {
			snprintf(name, sizeof name, "many/n%03d", i);
			if (i % 2 == 0) {
				if (unlink(name))
					die(name);
			} else {
				snprintf(name, sizeof name, "%sn%03d", want[0] ? "/" : "", i);
				strcat(want, name);
			}
		}
		str_eq("200 entries left listed", want, listing("many"));
		/* readdir while removing: nothing returned twice, all gone after */
		DIR *dp = opendir("many");
		struct dirent *e;
		int removed = 0, dup = 0;
		if (!dp)
			die("opendir many");
		while ((e = readdir(dp))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(name, sizeof name, "many/%s", e->d_name);
			if (unlink(name))
				dup++;
			else
				removed++;
		}
		closedir(dp);
		EQ("unlink while reading: no entry returned twice", 0, dup);
		EQ("unlink while reading: all removed", 200, removed);
		str_eq("dir empty after", "", listing("many"));
		OK("rmdir emptied dir", rmdir("many"));
	}
	leave();
}

/* ---- rename ---- */

static void t_rename(void)
{
	struct stat a, b, c;
	int fd;

	enter("rename");
	puts_("a", "AAA");
	puts_("b", "BB");
	a = st_of("a");
	OK("file over file", rename("a", "b"));
	ERR("source gone", access("a", F_OK), ENOENT);
	str_eq("target has source content", "AAA", content("b"));
	EQ("target is the source inode", a.st_ino, st_of("b").st_ino);
	OK("rename to itself", rename("b", "b"));
	str_eq("still there", "AAA", content("b"));
	OK("link b b2", link("b", "b2"));
	OK("rename between links of one inode", rename("b", "b2"));
	truth("both links remain", access("b", F_OK) == 0 && access("b2", F_OK) == 0,
	      "a link disappeared");
	EQ("nlink still 2", 2, st_of("b").st_nlink);
	OK("unlink b", unlink("b"));

	xmkdir("d1", 0755);
	xmkdir("d2", 0755);
	OK("file across dirs", rename("b2", "d1/moved"));
	str_eq("moved content", "AAA", content("d1/moved"));

	/* an open fd follows the file */
	fd = OK("open moved", open("d1/moved", O_RDWR));
	OK("rename while open", rename("d1/moved", "d2/moved2"));
	EQ("write via fd after rename", 3, pwrite(fd, "bbb", 3, 3));
	close(fd);
	str_eq("new name sees the write", "AAAbbb", content("d2/moved2"));

	xmkdir("x", 0755);
	puts_("x/inner", "i");
	xmkdir("y", 0755);
	OK("dir over empty dir", rename("x", "y"));
	str_eq("moved dir content", "i", content("y/inner"));
	ERR("old dir gone", access("x", F_OK), ENOENT);

	xmkdir("p", 0755);
	xmkdir("q", 0755);
	puts_("q/z", "z");
	ERR("dir over non-empty dir", rename("p", "q"), ENOTEMPTY);
	str_eq("non-empty target untouched", "z", content("q/z"));
	ERR("file over dir", rename("d2/moved2", "p"), EISDIR);
	ERR("dir over file", rename("p", "d2/moved2"), ENOTDIR);
	xmkdir("p/c", 0755);
	ERR("dir into its own subdir", rename("p", "p/c/pp"), EINVAL);
	ERR("dir into itself", rename("p", "p/x"), EINVAL);
	ERR("missing source", rename("nope", "zz"), ENOENT);
	ERR("missing target dir", rename("p", "nodir/x"), ENOENT);
	ERR("target below a file", rename("p", "d2/moved2/x"), ENOTDIR);

	/* a directory across directories: link counts and '..' */
	xmkdir("m1", 0755);
	xmkdir("m2", 0755);
	xmkdir("m1/dd", 0755);
	EQ("m1 nlink before", 3, st_of("m1").st_nlink);
	EQ("m2 nlink before", 2, st_of("m2").st_nlink);
	OK("dir across dirs", rename("m1/dd", "m2/dd"));
	EQ("old parent nlink -1", 2, st_of("m1").st_nlink);
	EQ("new parent nlink +1", 3, st_of("m2").st_nlink);
	EQ("'..' of moved dir is the new parent", st_of("m2").st_ino,
	   st_of("m2/dd/..").st_ino);

	/* times: the moved inode's ctime, both parents' mtime; not its mtime */
	puts_("m1/t", "t");
	a = st_of("m1/t");
	b = st_of("m1");
	c = st_of("m2");
	tick();
	OK("rename for times", rename("m1/t", "m2/t"));
	ts_later("rename updates ctime of the moved file", a.st_ctim, st_of("m2/t").st_ctim);
	ts_same("rename keeps mtime of the moved file", a.st_mtim, st_of("m2/t").st_mtim);
	ts_later("rename updates old parent mtime", b.st_mtim, st_of("m1").st_mtim);
	ts_later("rename updates new parent mtime", c.st_mtim, st_of("m2").st_mtim);

	/* replacing a target with other links drops its link count */
	puts_("h1", "h");
	if (link("h1", "h2"))
		die("link");
	puts_("src", "s");
	OK("rename over a linked file", rename("src", "h2"));
	EQ("other link's nlink drops to 1", 1, st_of("h1").st_nlink);
	str_eq("other link keeps content", "h", content("h1"));

	/* renameat2 */
	puts_("n1", "1");
	puts_("n2", "2");
	ERR("RENAME_NOREPLACE over existing",
	    renameat2(AT_FDCWD, "n1", AT_FDCWD, "n2", RENAME_NOREPLACE), EEXIST);
	str_eq("NOREPLACE target untouched", "2", content("n2"));
	str_eq("NOREPLACE source untouched", "1", content("n1"));
	OK("RENAME_NOREPLACE to a free name",
	   renameat2(AT_FDCWD, "n1", AT_FDCWD, "n3", RENAME_NOREPLACE));
	str_eq("NOREPLACE moved", "1", content("n3"));
	ERR("NOREPLACE source gone", access("n1", F_OK), ENOENT);

	puts_("e1", "one");
	puts_("e2", "two");
	a = st_of("e1");
	OK("RENAME_EXCHANGE files",
	   renameat2(AT_FDCWD, "e1", AT_FDCWD, "e2", RENAME_EXCHANGE));
	str_eq("e1 now has e2's content", "two", content("e1"));
	str_eq("e2 now has e1's content", "one", content("e2"));
	EQ("e2 is e1's old inode", a.st_ino, st_of("e2").st_ino);
	str_eq("exchanged names still listed", "e1/e2", listing_of("e", "."));
	ERR("RENAME_EXCHANGE with missing target",
	    renameat2(AT_FDCWD, "e1", AT_FDCWD, "e3", RENAME_EXCHANGE), ENOENT);
	ERR("RENAME_EXCHANGE|NOREPLACE",
	    renameat2(AT_FDCWD, "e1", AT_FDCWD, "e2", RENAME_EXCHANGE | RENAME_NOREPLACE),
	    EINVAL);

	xmkdir("xa", 0755);
	xmkdir("xb", 0755);
	puts_("xa/f", "F");
	xmkdir("xb/d", 0755);
	puts_("xb/d/child", "C");
	xmkdir("xb/d/sub", 0755);
	EQ("xa nlink before exchange", 2, st_of("xa").st_nlink);
	EQ("xb nlink before exchange", 3, st_of("xb").st_nlink);
	OK("RENAME_EXCHANGE file and dir across dirs",
	   renameat2(AT_FDCWD, "xa/f", AT_FDCWD, "xb/d", RENAME_EXCHANGE));
	truth("xa/f is now the dir", S_ISDIR(st_of("xa/f").st_mode), "not a dir");
	str_eq("dir's child moved with it", "C", content("xa/f/child"));
	truth("xb/d is now the file", S_ISREG(st_of("xb/d").st_mode), "not a file");
	str_eq("file content", "F", content("xb/d"));
	EQ("xa nlink after exchange", 3, st_of("xa").st_nlink);
	EQ("xb nlink after exchange", 2, st_of("xb").st_nlink);
	EQ("'..' of exchanged dir", st_of("xa").st_ino, st_of("xa/f/..").st_ino);
	EQ("exchanged dir keeps nlink", 3, st_of("xa/f").st_nlink);
	str_eq("listing of xa after exchange", "f", listing("xa"));
	str_eq("listing of xb after exchange", "d", listing("xb"));
	str_eq("listing inside the exchanged dir", "child/sub", listing("xa/f"));

	leave();
}

/* ---- symlinks ---- */

static void t_symlink(void)
{
	static char target[4001], got[4200];
	struct stat st;
	long n;
	int fd;

	enter("symlink");
	OK("symlink", symlink("target/path", "l"));
	n = readlink("l", got, sizeof got);
	mem_eq("readlink", "target/path", 11, got, n);
	st = st_of("l");
	mode_eq("lstat mode", S_IFLNK | 0777, st.st_mode);
	EQ("lstat size is target length", 11, st.st_size);
	ERR("dangling: stat fails", stat("l", &st), ENOENT);
	n = readlink("l", got, 5);
	mem_eq("readlink truncates to bufsiz", "targe", 5, got, n);

	for (int i = 0; i < 4000; i++)
		target[i] = (i % 50 == 49) ? '/' : (char)('a' + i % 26);
	target[4000] = 0;
	OK("symlink with a 4000-byte target", symlink(target, "long"));
	n = readlink("long", got, sizeof got);
	mem_eq("readlink of 4000-byte target", target, 4000, got, n);
	EQ("lstat size of long symlink", 4000, st_of("long").st_size);

	puts_("file", "content");
	OK("symlink to file", symlink("file", "lf"));
	str_eq("read through symlink", "content", content("lf"));
	OK("stat follows", stat("lf", &st));
	truth("stat of symlink to file is a file", S_ISREG(st.st_mode), "mode %o",
	      (unsigned)st.st_mode);
	xmkdir("dir", 0755);
	puts_("dir/x", "in dir");
	OK("symlink to dir", symlink("dir", "ld"));
	str_eq("path through dir symlink", "in dir", content("ld/x"));
	OK("relative symlink", symlink("../dir/x", "dir/up"));
	str_eq("relative target with ..", "in dir", content("dir/up"));
	ERR("symlink over existing", symlink("x", "l"), EEXIST);
	ERR("readlink of a file", readlink("file", got, sizeof got), EINVAL);
	ERR("symlink with empty target", symlink("", "empty"), ENOENT);
	OK("loop 1", symlink("loop2", "loop1"));
	OK("loop 2", symlink("loop1", "loop2"));
	ERR("symlink loop", stat("loop1", &st), ELOOP);
	fd = OK("open through symlink for write", open("lf", O_WRONLY | O_APPEND));
	EQ("write through symlink", 1, write(fd, "!", 1));
	close(fd);
	str_eq("written via symlink", "content!", content("file"));
	OK("unlink symlink", unlink("lf"));
	str_eq("target survives unlink of symlink", "content!", content("file"));
	leave();
}

/* ---- hard links ---- */

static void t_link(void)
{
	struct stat a, b;
	int fd;

	enter("link");
	puts_("a", "data");
	OK("link", link("a", "b"));
	a = st_of("a");
	b = st_of("b");
	EQ("nlink 2 (a)", 2, a.st_nlink);
	EQ("nlink 2 (b)", 2, b.st_nlink);
	EQ("same inode", a.st_ino, b.st_ino);
	fd = OK("write via b", open("b", O_WRONLY | O_TRUNC));
	EQ("write", 4, write(fd, "DATA", 4));
	close(fd);
	str_eq("visible via a", "DATA", content("a"));
	xmkdir("sub", 0755);
	OK("link across dirs", link("a", "sub/c"));
	EQ("nlink 3", 3, st_of("a").st_nlink);
	OK("unlink a", unlink("a"));
	EQ("nlink 2 after unlink", 2, st_of("b").st_nlink);
	OK("unlink b", unlink("b"));
	EQ("nlink 1", 1, st_of("sub/c").st_nlink);
	str_eq("last link readable", "DATA", content("sub/c"));
	ERR("link to a dir", link("sub", "sublink"), EPERM);
	ERR("link over existing", link("sub/c", "sub/c"), EEXIST);
	ERR("link missing", link("missing", "x"), ENOENT);
	a = st_of("sub/c");
	tick();
	OK("link for ctime", link("sub/c", "e"));
	ts_later("link updates ctime", a.st_ctim, st_of("e").st_ctim);
	ts_same("link keeps mtime", a.st_mtim, st_of("e").st_mtim);
	a = st_of("e");
	tick();
	OK("unlink for ctime", unlink("e"));
	ts_later("unlink updates ctime of remaining link", a.st_ctim, st_of("sub/c").st_ctim);
	if (symlink("sub/c", "sym"))
		die("symlink");
	OK("hard link to a symlink", linkat(AT_FDCWD, "sym", AT_FDCWD, "sym2", 0));
	truth("link to symlink is a symlink", S_ISLNK(st_of("sym2").st_mode), "not a symlink");
	EQ("symlink nlink 2", 2, st_of("sym").st_nlink);
	leave();
}

/* ---- ownership, mode and times ---- */

static void t_attrs(void)
{
	struct timespec ts[2];
	struct stat st, s0;
	int fd;

	enter("attrs");
	puts_("f", "x");
	OK("chmod 0640", chmod("f", 0640));
	mode_eq("mode 0640", S_IFREG | 0640, st_of("f").st_mode);
	OK("chmod 04755", chmod("f", 04755));
	mode_eq("setuid kept for root", S_IFREG | 04755, st_of("f").st_mode);
	fd = OK("open", open("f", O_RDWR));
	OK("fchmod 0600", fchmod(fd, 0600));
	mode_eq("fchmod", S_IFREG | 0600, st_of("f").st_mode);
	OK("chown 1234:5678", chown("f", 1234, 5678));
	st = st_of("f");
	EQ("uid 1234", 1234, st.st_uid);
	EQ("gid 5678", 5678, st.st_gid);
	OK("chown -1:42", chown("f", (uid_t)-1, 42));
	st = st_of("f");
	EQ("uid unchanged", 1234, st.st_uid);
	EQ("gid 42", 42, st.st_gid);
	OK("fchown 0:0", fchown(fd, 0, 0));
	EQ("fchown uid", 0, st_of("f").st_uid);
	close(fd);
	OK("chmod 06755", chmod("f", 06755));
	OK("chown executable setuid file", chown("f", 1234, 5678));
	mode_eq("chown clears setuid and setgid", S_IFREG | 0755, st_of("f").st_mode);
	OK("chmod 04755 again", chmod("f", 04755));
	fd = OK("open setuid file", open("f", O_WRONLY | O_APPEND));
	EQ("root writes a setuid file", 1, write(fd, "w", 1));
	OK("fsync", fsync(fd));
	close(fd);
	mode_eq("root's write keeps setuid", S_IFREG | 04755, st_of("f").st_mode);
	OK("symlink", symlink("f", "l"));
	OK("lchown symlink", lchown("l", 1234, 5678));
	st = st_of("l");
	EQ("symlink uid", 1234, st.st_uid);
	EQ("symlink gid", 5678, st.st_gid);

	ts[0].tv_sec = 1000000000; ts[0].tv_nsec = 123456789;
	ts[1].tv_sec = 1500000000; ts[1].tv_nsec = 987654321;
	OK("utimensat explicit", utimensat(AT_FDCWD, "f", ts, 0));
	st = st_of("f");
	ts_is("explicit atime", 1000000000, 123456789, st.st_atim);
	ts_is("explicit mtime", 1500000000, 987654321, st.st_mtim);
	ts_now("utimensat updates ctime", st.st_ctim);
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = 1600000000; ts[1].tv_nsec = 5;
	OK("utimensat UTIME_OMIT atime", utimensat(AT_FDCWD, "f", ts, 0));
	st = st_of("f");
	ts_is("UTIME_OMIT keeps atime", 1000000000, 123456789, st.st_atim);
	ts_is("mtime set next to UTIME_OMIT", 1600000000, 5, st.st_mtim);
	ts[1].tv_nsec = UTIME_NOW;
	OK("utimensat UTIME_NOW mtime", utimensat(AT_FDCWD, "f", ts, 0));
	st = st_of("f");
	ts_now("UTIME_NOW mtime", st.st_mtim);
	ts_is("atime still kept", 1000000000, 123456789, st.st_atim);
	OK("utimensat NULL", utimensat(AT_FDCWD, "f", NULL, 0));
	st = st_of("f");
	ts_now("NULL sets atime now", st.st_atim);
	ts_now("NULL sets mtime now", st.st_mtim);
	fd = OK("open for futimens", open("f", O_RDONLY));
	ts[0].tv_sec = 1100000000; ts[0].tv_nsec = 1;
	ts[1].tv_sec = 1200000000; ts[1].tv_nsec = 2;
	OK("futimens", futimens(fd, ts));
	close(fd);
	st = st_of("f");
	ts_is("futimens atime", 1100000000, 1, st.st_atim);
	ts_is("futimens mtime", 1200000000, 2, st.st_mtim);
	ts[0].tv_nsec = UTIME_OMIT;
	OK("utimensat on symlink (nofollow)", utimensat(AT_FDCWD, "l", ts, AT_SYMLINK_NOFOLLOW));
	ts_is("symlink mtime", 1200000000, 2, st_of("l").st_mtim);

	/* update rules */
	puts_("t", "t");
	s0 = st_of("t");
	tick();
	fd = open("t", O_WRONLY);
	EQ("write for times", 1, write(fd, "u", 1));
	st = st_of("t");
	ts_later("write updates mtime", s0.st_mtim, st.st_mtim);
	ts_later("write updates ctime", s0.st_ctim, st.st_ctim);
	s0 = st;
	tick();
	OK("ftruncate for times", ftruncate(fd, 0));
	close(fd);
	st = st_of("t");
	ts_later("truncate updates mtime", s0.st_mtim, st.st_mtim);
	ts_later("truncate updates ctime", s0.st_ctim, st.st_ctim);
	s0 = st;
	tick();
	OK("chmod for times", chmod("t", 0600));
	st = st_of("t");
	ts_later("chmod updates ctime", s0.st_ctim, st.st_ctim);
	ts_same("chmod keeps mtime", s0.st_mtim, st.st_mtim);
	s0 = st;
	tick();
	OK("chown for times", chown("t", 7, 7));
	st = st_of("t");
	ts_later("chown updates ctime", s0.st_ctim, st.st_ctim);
	ts_same("chown keeps mtime", s0.st_mtim, st.st_mtim);
	s0 = st;
	tick();
	OK("setxattr for times", setxattr("t", "user.k", "v", 1, 0));
	st = st_of("t");
	ts_later("setxattr updates ctime", s0.st_ctim, st.st_ctim);
	ts_same("setxattr keeps mtime", s0.st_mtim, st.st_mtim);
	s0 = st;
	tick();
	EQ("read for times", 1, slurp("f") >= 0);
	st = st_of("t");
	ts_same("read keeps mtime", s0.st_mtim, st.st_mtim);
	ts_same("read keeps ctime", s0.st_ctim, st.st_ctim);
	s0 = st_of(".");
	tick();
	puts_("new", "n");
	st = st_of(".");
	ts_later("create updates dir mtime", s0.st_mtim, st.st_mtim);
	ts_later("create updates dir ctime", s0.st_ctim, st.st_ctim);
	s0 = st;
	tick();
	OK("unlink for times", unlink("new"));
	st = st_of(".");
	ts_later("unlink updates dir mtime", s0.st_mtim, st.st_mtim);
	s0 = st;
	tick();
	OK("mkdir for times", mkdir("sub", 0755));
	ts_later("mkdir updates dir mtime", s0.st_mtim, st_of(".").st_mtim);
	leave();
}

/* ---- sync calls and statfs ---- */

static void t_sync(void)
{
	struct statfs sf;
	struct statvfs sv;
	int fd;

	enter("sync");
	fd = OK("open", open("f", O_CREAT | O_RDWR, 0644));
	EQ("write", 4, write(fd, "sync", 4));
	OK("fsync", fsync(fd));
	EQ("write 2", 4, write(fd, "more", 4));
	OK("fdatasync", fdatasync(fd));
	OK("syncfs", syncfs(fd));
	close(fd);
	fd = OK("open read-only", open("f", O_RDONLY));
	OK("fsync on read-only fd", fsync(fd));
	close(fd);
	fd = OK("open dir", open(".", O_RDONLY | O_DIRECTORY));
	OK("fsync on dir fd", fsync(fd));
	OK("fdatasync on dir fd", fdatasync(fd));
	close(fd);
	str_eq("content after syncs", "syncmore", content("f"));

	OK("statfs", statfs(".", &sf));
	truth("f_bsize sane", sf.f_bsize >= 512 && sf.f_bsize <= 1 << 20,
	      "f_bsize %ld", (long)sf.f_bsize);
	EQ("f_namelen 255", 255, sf.f_namelen);
	truth("f_bfree <= f_blocks", sf.f_bfree <= sf.f_blocks, "%llu > %llu",
	      (unsigned long long)sf.f_bfree, (unsigned long long)sf.f_blocks);
	truth("f_bavail <= f_bfree", sf.f_bavail <= sf.f_bfree, "%llu > %llu",
	      (unsigned long long)sf.f_bavail, (unsigned long long)sf.f_bfree);
	truth("f_blocks nonzero", sf.f_blocks > 0, "0");
	OK("statvfs", statvfs(".", &sv));
	EQ("f_namemax 255", 255, sv.f_namemax);
	truth("f_frsize sane", sv.f_frsize >= 512, "f_frsize %lu", sv.f_frsize);
	leave();
}

/* ---- xattrs ---- */

/* Sorted user.* names of path, joined by ','. */
static const char *user_xattrs(const char *path)
{
	static char out[4096];
	char list[4096], *names[64];
	long n = llistxattr(path, list, sizeof list);
	int k = 0;

	out[0] = 0;
	if (n < 0)
		return "(error)";
	for (char *p = list; p < list + n && k < 64; p += strlen(p) + 1)
		if (!strncmp(p, "user.", 5))
			names[k++] = p;
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	for (int i = 0; i < k; i++) {
		if (i)
			strcat(out, ",");
		strncat(out, names[i], sizeof out - strlen(out) - 1);
	}
	return out;
}

static void t_xattr(void)
{
	char buf[4096], big[3000], name[300];
	long n;
	int fd;

	enter("xattr");
	puts_("f", "x");
	OK("setxattr", setxattr("f", "user.a", "v1", 2, 0));
	n = getxattr("f", "user.a", buf, sizeof buf);
	mem_eq("getxattr", "v1", 2, buf, n);
	EQ("size query", 2, getxattr("f", "user.a", NULL, 0));
	ERR("small buffer", getxattr("f", "user.a", buf, 1), ERANGE);
	ERR("XATTR_CREATE on existing", setxattr("f", "user.a", "v2", 2, XATTR_CREATE), EEXIST);
	ERR("XATTR_REPLACE on missing", setxattr("f", "user.b", "v2", 2, XATTR_REPLACE), ENODATA);
	OK("XATTR_REPLACE on existing", setxattr("f", "user.a", "longer", 6, XATTR_REPLACE));
	n = getxattr("f", "user.a", buf, sizeof buf);
	mem_eq("replaced value", "longer", 6, buf, n);
	OK("XATTR_CREATE new", setxattr("f", "user.b", "\0bin\0", 5, XATTR_CREATE));
	n = getxattr("f", "user.b", buf, sizeof buf);
	mem_eq("binary value with NULs", "\0bin\0", 5, buf, n);
	ERR("getxattr missing", getxattr("f", "user.none", buf, sizeof buf), ENODATA);
	ERR("size query missing", getxattr("f", "user.none", NULL, 0), ENODATA);
	OK("empty value", setxattr("f", "user.empty", "", 0, 0));
	EQ("empty value size", 0, getxattr("f", "user.empty", buf, sizeof buf));
	str_eq("listxattr", "user.a,user.b,user.empty", user_xattrs("f"));
	n = listxattr("f", NULL, 0);
	truth("listxattr size query covers the names", n >= 7 + 7 + 11,
	      "got %ld", n);
	ERR("listxattr small buffer", listxattr("f", buf, 3), ERANGE);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 13);
	OK("3000-byte value", setxattr("f", "user.big", big, sizeof big, 0));
	n = getxattr("f", "user.big", buf, sizeof buf);
	mem_eq("3000-byte value read back", big, sizeof big, buf, n);
	OK("removexattr", removexattr("f", "user.a"));
	ERR("removed is gone", getxattr("f", "user.a", buf, sizeof buf), ENODATA);
	ERR("removexattr missing", removexattr("f", "user.a"), ENODATA);
	str_eq("listxattr after remove", "user.b,user.big,user.empty", user_xattrs("f"));
	memset(name, 'n', sizeof name);
	memcpy(name, "user.", 5);
	name[255] = 0;
	OK("255-byte xattr name", setxattr("f", name, "z", 1, 0));
	EQ("255-byte name read back", 1, getxattr("f", name, buf, sizeof buf));
	name[255] = 'n';
	name[256] = 0;
	ERR("256-byte xattr name", setxattr("f", name, "z", 1, 0), ERANGE);
	ERR("unknown namespace", setxattr("f", "bogus.x", "z", 1, 0), EOPNOTSUPP);

	fd = OK("open for f*xattr", open("f", O_RDONLY));
	OK("fsetxattr", fsetxattr(fd, "user.fd", "via-fd", 6, 0));
	n = fgetxattr(fd, "user.fd", buf, sizeof buf);
	mem_eq("fgetxattr", "via-fd", 6, buf, n);
	OK("fremovexattr", fremovexattr(fd, "user.fd"));
	close(fd);

	xmkdir("d", 0755);
	OK("xattr on dir", setxattr("d", "user.d", "dir", 3, 0));
	n = getxattr("d", "user.d", buf, sizeof buf);
	mem_eq("dir xattr", "dir", 3, buf, n);
	if (symlink("f", "l"))
		die("symlink");
	ERR("user xattr on symlink", lsetxattr("l", "user.s", "s", 1, 0), EPERM);
	ERR("get user xattr on symlink", lgetxattr("l", "user.s", buf, sizeof buf), ENODATA);
	n = getxattr("l", "user.b", buf, sizeof buf);
	mem_eq("getxattr follows symlink", "\0bin\0", 5, buf, n);

	OK("rename keeps xattrs", rename("f", "g"));
	n = getxattr("g", "user.b", buf, sizeof buf);
	mem_eq("xattr after rename", "\0bin\0", 5, buf, n);
	OK("link", link("g", "h"));
	n = getxattr("h", "user.big", buf, sizeof buf);
	mem_eq("xattr via hard link", big, sizeof big, buf, n);
	OK("unlink g", unlink("g"));
	OK("unlink h", unlink("h"));
	puts_("g", "new");
	str_eq("a new file of that name has no xattrs", "", user_xattrs("g"));
	leave();
}

/* ---- special files ---- */

static void t_special(void)
{
	struct stat st;
	char c = 0;
	int fd;

	enter("special");
	OK("mkfifo", mkfifo("p", 0640));
	st = st_of("p");
	truth("S_ISFIFO", S_ISFIFO(st.st_mode), "mode %o", (unsigned)st.st_mode);
	mode_eq("fifo mode", S_IFIFO | 0640, st.st_mode);
	fd = OK("open fifo O_RDWR", open("p", O_RDWR | O_NONBLOCK));
	EQ("write into fifo", 1, write(fd, "q", 1));
	EQ("read from fifo", 1, read(fd, &c, 1));
	EQ("fifo byte", 'q', c);
	close(fd);
	ERR("mkfifo existing", mkfifo("p", 0640), EEXIST);
	OK("mknod char device", mknod("c", S_IFCHR | 0600, makedev(1, 3)));
	st = st_of("c");
	truth("S_ISCHR", S_ISCHR(st.st_mode), "mode %o", (unsigned)st.st_mode);
	EQ("st_rdev", makedev(1, 3), st.st_rdev);
	OK("mknod socket", mknod("s", S_IFSOCK | 0644, 0));
	truth("S_ISSOCK", S_ISSOCK(st_of("s").st_mode), "not a socket");
	OK("mknod regular", mknod("r", S_IFREG | 0600, 0));
	mode_eq("mknod regular mode", S_IFREG | 0600, st_of("r").st_mode);
	OK("rename fifo", rename("p", "p2"));
	truth("renamed fifo", S_ISFIFO(st_of("p2").st_mode), "not a fifo");
	leave();
}

/* ---- mmap ---- */

static void t_mmap(void)
{
	const long ps = sysconf(_SC_PAGESIZE);
	const size_t len = (size_t)(3 * ps + 100);
	unsigned char *want = malloc(len), *got = malloc(len + (size_t)ps), *m;
	long n;
	int fd;

	enter("mmap");
	if (!want || !got)
		die("malloc");
	fill_pat(want, 0, len, 77);
	put("w", want, len, 0644);
	fd = OK("open written file", open("w", O_RDONLY));
	m = mmap(NULL, (size_t)(4 * ps), PROT_READ, MAP_SHARED, fd, 0);
	truth("mmap read", m != MAP_FAILED, "mmap: %s", strerror(errno));
	if (m != MAP_FAILED) {
		mem_eq("mmap sees write() data", want, len, m, (long)len);
		truth("tail of last page is zero", all_zero(m + len, (size_t)(4 * ps) - len),
		      "garbage after EOF in the last page");
		OK("munmap", munmap(m, (size_t)(4 * ps)));
	}
	close(fd);

	fd = OK("open new file", open("m", O_CREAT | O_RDWR, 0644));
	OK("ftruncate", ftruncate(fd, (off_t)len));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	truth("mmap shared rw", m != MAP_FAILED, "mmap: %s", strerror(errno));
	if (m != MAP_FAILED) {
		fill_pat(want, 0, len, 99);
		memcpy(m, want, len);
		OK("msync", msync(m, len, MS_SYNC));
		n = pread(fd, got, len + 10, 0);
		mem_eq("read() sees mmap writes", want, len, got, n);
		OK("munmap", munmap(m, len));
	}
	close(fd);
	n = read_file("m", got, len + 10);
	mem_eq("mmap writes after close", want, len, got, n);
	EQ("size unchanged by mmap", (long)len, st_of("m").st_size);

	/* MAP_PRIVATE writes stay private */
	fd = OK("open for private map", open("m", O_RDWR));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	truth("mmap private", m != MAP_FAILED, "mmap: %s", strerror(errno));
	if (m != MAP_FAILED) {
		memset(m, 'P', 100);
		munmap(m, len);
	}
	close(fd);
	n = read_file("m", got, len + 10);
	mem_eq("MAP_PRIVATE writes not in file", want, len, got, n);
	free(want);
	free(got);
	leave();
}

/* ---- names ---- */

static void t_names(void)
{
	static const char *odd[] = {
		"with space", "new\nline", "\xff\xfe", "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "de",
		"-dash", ".hidden", "a:b", "#%&*?", "Case", "case",
	};
	char n255[256], n256[257], m255[256];
	struct stat st;
	int fd;

	enter("names");
	memset(n255, 'a', 255);
	n255[255] = 0;
	memset(n256, 'b', 256);
	n256[256] = 0;
	memset(m255, 'c', 255);
	m255[255] = 0;
	fd = OK("create 255-byte name", open(n255, O_CREAT | O_WRONLY, 0644));
	close(fd);
	OK("stat 255-byte name", stat(n255, &st));
	str_eq("255-byte name listed", n255, listing("."));
	OK("rename to another 255-byte name", rename(n255, m255));
	OK("unlink 255-byte name", unlink(m255));
	OK("mkdir 255-byte name", mkdir(n255, 0755));
	OK("rmdir 255-byte name", rmdir(n255));
	OK("symlink 255-byte name", symlink("x", n255));
	OK("unlink symlink 255", unlink(n255));
	ERR("create 256-byte name", open(n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
	ERR("stat 256-byte name", stat(n256, &st), ENAMETOOLONG);
	ERR("mkdir 256-byte name", mkdir(n256, 0755), ENAMETOOLONG);
	ERR("symlink 256-byte name", symlink("x", n256), ENAMETOOLONG);
	ERR("mkfifo 256-byte name", mkfifo(n256, 0644), ENAMETOOLONG);
	puts_("short", "s");
	ERR("rename to 256-byte name", rename("short", n256), ENAMETOOLONG);
	ERR("link to 256-byte name", link("short", n256), ENAMETOOLONG);
	OK("unlink short", unlink("short"));
	str_eq("nothing left", "", listing("."));

	char want[1024] = "";
	const char *sorted[10];
	for (size_t i = 0; i < 10; i++) {
		char body[64];
		snprintf(body, sizeof body, "%zu", i);
		put(odd[i], body, strlen(body), 0644);
		sorted[i] = odd[i];
	}
	for (int i = 1; i < 10; i++)
		for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			const char *t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (int i = 0; i < 10; i++) {
		if (i)
			strcat(want, "/");
		strcat(want, sorted[i]);
	}
	str_eq("odd names listed byte for byte", want, listing("."));
	for (size_t i = 0; i < 10; i++) {
		char body[64], what[64];
		snprintf(body, sizeof body, "%zu", i);
		snprintf(what, sizeof what, "content of odd name %zu", i);
		str_eq(what, body, content(odd[i]));
	}
	leave();
}

/* ---- permissions as an unprivileged user ---- */

/* Run fn as NOBODY (uid and gid, no supplementary groups) in a child. */
static void as_nobody(void (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* the cwd stays usable even if DIR's ancestors are 0700 */
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			die("drop privileges");
		fn();
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		failf("child", "unprivileged child did not finish cleanly (status %d)",
		      status);
}

static void perms_nobody(void)
{
	struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
	int fd;

	ERR("open 0600 root file", open("secret", O_RDONLY), EACCES);
	fd = OK("open 0644 root file for reading", open("public", O_RDONLY));
	if (fd >= 0)
		close(fd);
	ERR("open 0644 root file for writing", open("public", O_WRONLY), EACCES);
	ERR("lookup inside 0700 dir", access("private/x", F_OK), EACCES);
	{
		DIR *d = opendir("private");
		ERR("opendir 0700 dir", d ? 0 : -1, EACCES);
		if (d)
			closedir(d);
	}
	ERR("create in 0755 root dir", open("new", O_CREAT | O_WRONLY, 0644), EACCES);
	ERR("mkdir in 0755 root dir", mkdir("newd", 0755), EACCES);
	ERR("unlink in 0755 root dir", unlink("public"), EACCES);
	fd = OK("create in 0777 dir", open("open/mine", O_CREAT | O_WRONLY, 0644));
	if (fd >= 0)
		close(fd);
	struct stat st = st_of("open/mine");
	EQ("new file owned by the caller (uid)", NOBODY, st.st_uid);
	EQ("new file owned by the caller (gid)", NOBODY, st.st_gid);
	OK("chmod own file", chmod("open/mine", 0600));
	ERR("chmod root's file", chmod("public", 0777), EPERM);
	ERR("chown own file to root", chown("open/mine", 0, 0), EPERM);
	ERR("unlink other's file in sticky dir", unlink("sticky/rootfile"), EPERM);
	ERR("explicit utimensat on other's file", utimensat(AT_FDCWD, "public", ts, 0), EPERM);
	ERR("utimensat NULL without write access", utimensat(AT_FDCWD, "public", NULL, 0), EACCES);
	ERR("setxattr without write access", setxattr("public", "user.x", "x", 1, 0), EACCES);
	fd = OK("open other's setuid file", open("suid", O_WRONLY | O_APPEND));
	EQ("write other's setuid file", 1, write(fd, "w", 1));
	OK("fsync", fsync(fd));
	close(fd);
	mode_eq("unprivileged write clears setuid", S_IFREG | 0777, st_of("suid").st_mode);
	fd = OK("open other's setgid file", open("sgid", O_WRONLY | O_APPEND));
	EQ("write other's setgid file", 1, write(fd, "w", 1));
	OK("fsync", fsync(fd));
	close(fd);
	mode_eq("unprivileged write clears group-exec setgid", S_IFREG | 0777,
	        st_of("sgid").st_mode);
}

static void t_perms(void)
{

	enter("perms");
	if (chmod(".", 0755))
		die("chmod");
	put("secret", "s", 1, 0600);
	put("public", "p", 1, 0644);
	xmkdir("private", 0700);
	put("private/x", "x", 1, 0644);
	xmkdir("open", 0777);
	xmkdir("sticky", 01777);
	put("sticky/rootfile", "r", 1, 0666);
	put("suid", "u", 1, 0644);
	put("sgid", "g", 1, 0644);
	if (chmod("suid", 04777) || chmod("sgid", 02777))
		die("chmod");
	if (chmod("sticky/rootfile", 0666))
		die("chmod");
	as_nobody(perms_nobody);
	leave();
}

/* ---- set-user-ID and set-group-ID cleared as the VFS clears them ---- */

/* path created by root with mode (chmod after the create: no umask) and
 * group gid */
static void sx_file(const char *path, mode_t mode, gid_t gid)
{
	put(path, "0123456789", 10, 0644);
	if (chown(path, 0, gid) || chmod(path, mode))
		die(path);
}

static void privs_nobody(void)
{
	int fd;
	loff_t in = 0, out = 0;

	fd = OK("open other's setuid file for truncate", open("trunc", O_WRONLY));
	OK("ftruncate other's setuid file", ftruncate(fd, 3));
	close(fd);
	mode_eq("unprivileged truncate clears setuid", S_IFREG | 0777,
	        st_of("trunc").st_mode);
	OK("truncate other's setgid file", truncate("trunc-g", 5));
	mode_eq("unprivileged truncate clears group-exec setgid", S_IFREG | 0777,
	        st_of("trunc-g").st_mode);
	fd = OK("open O_TRUNC other's setuid file", open("otrunc", O_WRONLY | O_TRUNC));
	close(fd);
	mode_eq("unprivileged O_TRUNC clears setuid", S_IFREG | 0777,
	        st_of("otrunc").st_mode);
	EQ("O_TRUNC emptied it", 0, st_of("otrunc").st_size);
	fd = OK("open other's setuid file for fallocate", open("falloc", O_WRONLY));
	OK("fallocate other's setuid file", fallocate(fd, 0, 0, 8192));
	close(fd);
	mode_eq("unprivileged fallocate clears setuid", S_IFREG | 0777,
	        st_of("falloc").st_mode);
	{
		int src = OK("open copy source", open("public", O_RDONLY));
		fd = OK("open other's setuid file for a copy", open("copyto", O_WRONLY));
		EQ("copy_file_range into other's setuid file", 4,
		   copy_file_range(src, &in, fd, &out, 4, 0));
		close(fd);
		close(src);
	}
	mode_eq("unprivileged copy_file_range clears setuid", S_IFREG | 0777,
	        st_of("copyto").st_mode);
	fd = OK("open setgid file of another group (no group exec)",
	        open("g-noexec", O_WRONLY | O_APPEND));
	EQ("write it", 1, write(fd, "w", 1));
	close(fd);
	mode_eq("a non-member's write clears setgid without group exec",
	        S_IFREG | 0767, st_of("g-noexec").st_mode);
	fd = OK("open setgid file of its own group (no group exec)",
	        open("g-member", O_WRONLY | O_APPEND));
	EQ("write it", 1, write(fd, "w", 1));
	close(fd);
	mode_eq("a member's write keeps setgid without group exec",
	        S_IFREG | 02767, st_of("g-member").st_mode);
	fd = OK("open a plain file of another owner", open("plain", O_WRONLY | O_APPEND));
	EQ("write it", 1, write(fd, "w", 1));
	close(fd);
	mode_eq("a write leaves a plain file's mode", S_IFREG | 0777,
	        st_of("plain").st_mode);
	fd = OK("open O_RDONLY|O_TRUNC other's setuid file",
	        open("rotrunc", O_RDONLY | O_TRUNC));
	close(fd);
	mode_eq("O_RDONLY|O_TRUNC clears setuid", S_IFREG | 0777,
	        st_of("rotrunc").st_mode);
	EQ("O_RDONLY|O_TRUNC emptied it", 0, st_of("rotrunc").st_size);
	OK("chown own setuid file to nobody's ids (no change)",
	   chown("own", -1, -1));
	mode_eq("a chown of nothing clears setuid", S_IFREG | 0755,
	        st_of("own").st_mode);
	/* all capabilities in a user namespace of its own are none on the
	 * file: the copy still clears (a system that allows no unprivileged
	 * user namespace has nothing to check here, and says so) */
	if (unshare(CLONE_NEWUSER) != 0) {
		if (errno != EPERM && errno != ENOSPC && errno != EINVAL)
			OK("a user namespace of its own", -1);
		else
			printf("NOTE %s: no unprivileged user namespaces here (%s):"
			       " the namespace checks did not run\n", group,
			       ename(errno));
		return;
	}
	{
		int src = OK("open copy source", open("public", O_RDONLY));
		loff_t i2 = 0, o2 = 0;
		fd = OK("open other's setuid file for a copy", open("copy-ns", O_WRONLY));
		EQ("copy_file_range into it from the namespace", 4,
		   copy_file_range(src, &i2, fd, &o2, 4, 0));
		OK("fallocate it from the namespace", fallocate(fd, 0, 0, 8192));
		close(fd);
		close(src);
	}
	mode_eq("the namespace's capabilities do not keep setuid", S_IFREG | 0777,
	        st_of("copy-ns").st_mode);
}

static void t_privs(void)
{
	int fd;

	enter("privs");
	if (chmod(".", 0777))
		die("chmod");
	put("public", "data", 4, 0644);
	sx_file("trunc", 04777, 0);
	sx_file("trunc-g", 02777, 0);
	sx_file("otrunc", 04777, 0);
	sx_file("falloc", 04777, 0);
	sx_file("copyto", 04777, 0);
	sx_file("g-noexec", 02767, 0);
	sx_file("g-member", 02767, NOBODY);
	sx_file("plain", 0777, 0);
	sx_file("rotrunc", 04777, 0);
	sx_file("own", 04755, NOBODY);
	if (chown("own", NOBODY, NOBODY) || chmod("own", 04755))
		die("chown");
	sx_file("copy-ns", 04777, 0);
	as_nobody(privs_nobody);

	/* root (CAP_FSETID) keeps the bits on a write and a truncate */
	sx_file("rootw", 06777, 0);
	fd = OK("root opens a setuid file", open("rootw", O_WRONLY | O_APPEND));
	EQ("root writes it", 1, write(fd, "w", 1));
	OK("root truncates it", ftruncate(fd, 2));
	close(fd);
	mode_eq("root's write and truncate keep setuid and setgid",
	        S_IFREG | 06777, st_of("rootw").st_mode);
	fd = OK("root opens a setuid file O_TRUNC", open("rootw", O_WRONLY | O_TRUNC));
	close(fd);
	mode_eq("root's O_TRUNC keeps them", S_IFREG | 06777, st_of("rootw").st_mode);
	{
		struct timespec omit[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		OK("utimensat with both times omitted",
		   utimensat(AT_FDCWD, "rootw", omit, 0));
		mode_eq("it keeps the bits", S_IFREG | 06777, st_of("rootw").st_mode);
	}

	/* chown clears set-user-ID and group-exec set-group-ID of a file,
	 * even done by root; a directory keeps them */
	sx_file("chown-u", 04755, 0);
	OK("root chowns a setuid file", chown("chown-u", NOBODY, -1));
	mode_eq("chown clears setuid", S_IFREG | 0755, st_of("chown-u").st_mode);
	sx_file("chown-g", 02755, 0);
	OK("root chgrps a setgid file", chown("chown-g", -1, NOBODY));
	mode_eq("chgrp clears group-exec setgid", S_IFREG | 0755,
	        st_of("chown-g").st_mode);
	sx_file("chown-gx", 02745, 0);
	OK("root chgrps a setgid file without group exec", chown("chown-gx", -1, NOBODY));
	mode_eq("root's chgrp keeps setgid without group exec", S_IFREG | 02745,
	        st_of("chown-gx").st_mode);
	{
		/* a file capability (VFS_CAP_REVISION_2, CAP_NET_RAW permitted)
		 * goes with any write, even root's, and with a chown */
		static const unsigned char cap[20] = { 0, 0, 0, 2, 0, 0x20 };
		sx_file("capw", 0755, 0);
		sx_file("capc", 0755, 0);
		OK("set a file capability", setxattr("capw", "security.capability",
		                                     cap, sizeof cap, 0));
		OK("set a file capability", setxattr("capc", "security.capability",
		                                     cap, sizeof cap, 0));
		fd = OK("root opens the file", open("capw", O_WRONLY | O_APPEND));
		EQ("root writes it", 1, write(fd, "w", 1));
		close(fd);
		ERR("a write removes the file capability",
		    getxattr("capw", "security.capability", NULL, 0), ENODATA);
		OK("root chowns the other", chown("capc", NOBODY, -1));
		ERR("a chown removes the file capability",
		    getxattr("capc", "security.capability", NULL, 0), ENODATA);
		/* a write through a shared mapping removes nothing */
		sx_file("capm", 0755, 0);
		fd = OK("open a file to map", open("capm", O_RDWR));
		OK("set a file capability", fsetxattr(fd, "security.capability",
		                                      cap, sizeof cap, 0));
		{
			/* a mount without shared writable maps (direct I/O) has
			 * nothing to check here */
			char *m = mmap(NULL, 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (m == MAP_FAILED && errno != ENODEV)
				truth("map it shared", 0, "mmap: %s", ename(errno));
			if (m != MAP_FAILED) {
				m[0] = 'M';
				OK("msync", msync(m, 10, MS_SYNC));
				munmap(m, 10);
			}
		}
		OK("fsync", fsync(fd));
		close(fd);
		EQ("a write through a mapping keeps the file capability",
		   (long)sizeof cap, getxattr("capm", "security.capability", NULL, 0));
	}
	xmkdir("sgdir", 0755);
	if (chmod("sgdir", 02755))
		die("chmod");
	OK("root chgrps a setgid directory", chown("sgdir", -1, NOBODY));
	mode_eq("a directory keeps setgid", S_IFDIR | 02755, st_of("sgdir").st_mode);
	leave();
}

/* ---- fallocate ---- */

/* path's bytes [off, off + n) into a malloc'ed buffer (NULL on error). */
static unsigned char *range_of(const char *path, long off, long n)
{
	unsigned char *b = malloc((size_t)n + 1);
	int fd = open(path, O_RDONLY);

	if (!b || fd < 0 || pread(fd, b, (size_t)n, off) != n) {
		free(b);
		b = NULL;
	}
	if (fd >= 0)
		close(fd);
	return b;
}

/* path is pattern salt except zeros on [zlo, zhi), n bytes long. */
static void zeroed_content(const char *what, const char *path, long n,
                           long zlo, long zhi, int salt)
{
	unsigned char *b = range_of(path, 0, n);
	long bad = -1;

	if (!b) {
		failf(what, "cannot read %ld bytes", n);
		return;
	}
	for (long i = 0; i < n && bad < 0; i++)
		if (b[i] != ((i >= zlo && i < zhi) ? 0 : pat(i, salt)))
			bad = i;
	if (bad >= 0)
		failf(what, "byte %ld: expected 0x%02x, got 0x%02x", bad,
		      (bad >= zlo && bad < zhi) ? 0 : pat(bad, salt), b[bad]);
	else
		pass(what);
	free(b);
}

static void t_falloc(void)
{
	const long n = 256 * KIB;
	unsigned char *data = malloc((size_t)n);
	struct stat st, s0;
	int fd;

	enter("falloc");
	if (!data)
		die("malloc");
	fill_pat(data, 0, (size_t)n, 5);
	/* mode 0 extends, reads as zeros, keeps what was there */
	put("a", data, 1000, 0644);
	fd = OK("open", open("a", O_RDWR));
	OK("fallocate mode 0 past EOF", fallocate(fd, 0, 0, 3 * MIB));
	EQ("mode 0 sets the size", 3 * MIB, st_of("a").st_size);
	close(fd);
	zeroed_content("mode 0: old data kept, the rest zeros", "a", 3 * MIB,
	               1000, 3 * MIB, 5);
	fd = OK("open", open("a", O_RDWR));
	OK("fallocate inside the file", fallocate(fd, 0, 100, 500));
	EQ("inside: size unchanged", 3 * MIB, st_of("a").st_size);
	OK("KEEP_SIZE past EOF", fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 * MIB, MIB));
	EQ("KEEP_SIZE: size unchanged", 3 * MIB, st_of("a").st_size);
	EQ("read at EOF after KEEP_SIZE", 0, pread(fd, data, 10, 3 * MIB));
	OK("ftruncate over the kept range", ftruncate(fd, 3 * MIB + 8192));
	close(fd);
	zeroed_content("grown over KEEP_SIZE: zeros", "a", 3 * MIB + 8192, 1000,
	               3 * MIB + 8192, 5);
	fd = OK("open read-only", open("a", O_RDONLY));
	ERR("fallocate on a read-only fd", fallocate(fd, 0, 0, 10), EBADF);
	close(fd);
	fd = OK("open", open("a", O_RDWR));
	ERR("length 0", fallocate(fd, 0, 0, 0), EINVAL);
	ERR("negative offset", fallocate(fd, 0, -1, 10), EINVAL);
	ERR("PUNCH_HOLE without KEEP_SIZE", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0,
	    10), EOPNOTSUPP);
	close(fd);
	fd = open(".", O_RDONLY | O_DIRECTORY);
	ERR("fallocate on a directory", fallocate(fd, 0, 0, 10), EBADF);
	close(fd);

	/* punch: whole blocks go, partial ones are zeroed, the size stays */
	fill_pat(data, 0, (size_t)n, 6);
	put("p", data, (size_t)n, 0644);
	fd = OK("open", open("p", O_RDWR));
	OK("fsync", fsync(fd));
	OK("fstat", fstat(fd, &s0));
	OK("punch 64 KiB aligned", fallocate(fd, FALLOC_FL_PUNCH_HOLE |
	   FALLOC_FL_KEEP_SIZE, 64 * KIB, 64 * KIB));
	OK("fsync", fsync(fd));
	OK("fstat", fstat(fd, &st));
	EQ("punch keeps the size", n, st.st_size);
	truth("punch frees the blocks", st.st_blocks <= s0.st_blocks - 128,
	      "st_blocks %lld -> %lld", (long long)s0.st_blocks,
	      (long long)st.st_blocks);
	close(fd);
	zeroed_content("punched range reads zeros, the rest intact", "p", n,
	               64 * KIB, 128 * KIB, 6);
	fd = OK("open", open("p", O_RDWR));
	OK("punch unaligned", fallocate(fd, FALLOC_FL_PUNCH_HOLE |
	   FALLOC_FL_KEEP_SIZE, 1000, 5000));
	close(fd);
	{
		unsigned char *b = range_of("p", 0, n);
		int good = b != NULL;
		for (long i = 0; good && i < n; i++)
			good = b[i] == (((i >= 1000 && i < 6000) ||
			                 (i >= 64 * KIB && i < 128 * KIB)) ? 0
			                : pat(i, 6));
		truth("unaligned punch zeroes exactly its bytes", good,
		      "content differs");
		free(b);
	}
	fd = OK("open", open("p", O_RDWR));
	OK("punch across EOF", fallocate(fd, FALLOC_FL_PUNCH_HOLE |
	   FALLOC_FL_KEEP_SIZE, n - 100, 10000));
	EQ("punch across EOF keeps the size", n, st_of("p").st_size);
	OK("punch past EOF", fallocate(fd, FALLOC_FL_PUNCH_HOLE |
	   FALLOC_FL_KEEP_SIZE, 2 * n, 4096));
	EQ("punch past EOF keeps the size", n, st_of("p").st_size);
	close(fd);
	{
		unsigned char *b = range_of("p", n - 200, 200);
		truth("punched tail is zeros", b && all_zero(b + 100, 100) &&
		      b[99] == pat(n - 101, 6), "tail differs");
		free(b);
	}

	/* zero range (tmpfs has none: EOPNOTSUPP there, and only there) */
	fill_pat(data, 0, (size_t)n, 7);
	put("z", data, (size_t)n, 0644);
	fd = OK("open", open("z", O_RDWR));
	{
		struct statfs sf;
		if (fstatfs(fd, &sf) == 0 && sf.f_type == 0x01021994 /* tmpfs */ &&
		    fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 1) < 0 &&
		    errno == EOPNOTSUPP) {
			pass("tmpfs: no zero range");
			close(fd);
			free(data);
			leave();
			return;
		}
	}
	OK("zero range inside", fallocate(fd, FALLOC_FL_ZERO_RANGE, 4000,
	   70000));
	EQ("zero range inside keeps the size", n, st_of("z").st_size);
	close(fd);
	zeroed_content("zeroed range reads zeros", "z", n, 4000, 74000, 7);
	fd = OK("open", open("z", O_RDWR));
	OK("zero range past EOF", fallocate(fd, FALLOC_FL_ZERO_RANGE, n - 10,
	   1000));
	EQ("zero range extends the size", n + 990, st_of("z").st_size);
	OK("zero range KEEP_SIZE past EOF", fallocate(fd, FALLOC_FL_ZERO_RANGE |
	   FALLOC_FL_KEEP_SIZE, n + 990, 5000));
	EQ("zero range KEEP_SIZE keeps the size", n + 990, st_of("z").st_size);
	close(fd);
	{
		unsigned char *b = range_of("z", n - 20, 1010);
		truth("zero range past EOF: zeros from the offset", b &&
		      all_zero(b + 10, 1000) && b[9] == pat(n - 11, 7),
		      "content differs");
		free(b);
	}
	free(data);
	leave();
}

/* ---- SEEK_DATA / SEEK_HOLE ---- */

/*
 * The kernel sends a closed handle's RELEASE in the background: until the
 * filesystem has it, a file just written still counts as open for writing
 * there, and custodyfs then gives the generic answer (all data), as it
 * must (a writer's mmap pages may be dirty). Wait, up to 2 s, for
 * lseek(fd, off, whence) to give want before checking exact answers.
 */
static void seek_settle(int fd, off_t off, int whence, off_t want)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < 200 && lseek(fd, off, whence) != want; i++)
		nanosleep(&ts, NULL);
}

static void t_seek(void)
{
	unsigned char b[4096];
	int fd;

	enter("seek");
	fill_pat(b, 0, sizeof b, 8);
	fd = OK("create", open("s", O_CREAT | O_WRONLY, 0644));
	EQ("data at 0", 4096, pwrite(fd, b, 4096, 0));
	EQ("data at 1 MiB", 4096, pwrite(fd, b, 4096, MIB));
	OK("size 2 MiB", ftruncate(fd, 2 * MIB));
	OK("fsync", fsync(fd));
	close(fd);
	/* a file no one has open for writing: the answers are exact */
	fd = OK("open read-only", open("s", O_RDONLY));
	seek_settle(fd, 0, SEEK_HOLE, 4096);
	EQ("SEEK_DATA 0", 0, lseek(fd, 0, SEEK_DATA));
	EQ("SEEK_HOLE 0", 4096, lseek(fd, 0, SEEK_HOLE));
	EQ("SEEK_HOLE inside data", 4096, lseek(fd, 100, SEEK_HOLE));
	EQ("SEEK_DATA in the hole", MIB, lseek(fd, 4096, SEEK_DATA));
	EQ("SEEK_DATA in the hole (unaligned)", MIB, lseek(fd, 5000, SEEK_DATA));
	EQ("SEEK_HOLE in the hole", 5000, lseek(fd, 5000, SEEK_HOLE));
	EQ("SEEK_DATA at data", MIB + 10, lseek(fd, MIB + 10, SEEK_DATA));
	EQ("SEEK_HOLE after the second extent", MIB + 4096,
	   lseek(fd, MIB, SEEK_HOLE));
	ERR("SEEK_DATA in the final hole", lseek(fd, MIB + 4096, SEEK_DATA),
	    ENXIO);
	EQ("SEEK_HOLE in the final hole", MIB + 8192,
	   lseek(fd, MIB + 8192, SEEK_HOLE));
	EQ("SEEK_HOLE at the last byte", 2 * MIB - 1,
	   lseek(fd, 2 * MIB - 1, SEEK_HOLE));
	ERR("SEEK_DATA at EOF", lseek(fd, 2 * MIB, SEEK_DATA), ENXIO);
	ERR("SEEK_HOLE at EOF", lseek(fd, 2 * MIB, SEEK_HOLE), ENXIO);
	ERR("SEEK_DATA past EOF", lseek(fd, 3 * MIB, SEEK_DATA), ENXIO);
	ERR("SEEK_DATA negative", lseek(fd, -1, SEEK_DATA), ENXIO);
	EQ("the offset moved to the answer", MIB, (lseek(fd, 4096, SEEK_DATA),
	   lseek(fd, 0, SEEK_CUR)));
	close(fd);
	/* a file that is all data: its only hole is the end */
	put("full", b, sizeof b, 0644);
	fd = OK("open read-only", open("full", O_RDONLY));
	EQ("full file: SEEK_HOLE is EOF", 4096, lseek(fd, 0, SEEK_HOLE));
	EQ("full file: SEEK_DATA", 10, lseek(fd, 10, SEEK_DATA));
	close(fd);
	/* an empty file has neither */
	put("empty", b, 0, 0644);
	fd = OK("open read-only", open("empty", O_RDONLY));
	ERR("empty: SEEK_DATA", lseek(fd, 0, SEEK_DATA), ENXIO);
	ERR("empty: SEEK_HOLE", lseek(fd, 0, SEEK_HOLE), ENXIO);
	close(fd);
	/* a punched block is a hole */
	{
		unsigned char *z = calloc(1, 64 * KIB);
		if (!z)
			die("calloc");
		fill_pat(z, 0, 64 * KIB, 9);
		put("punched", z, 64 * KIB, 0644);
		fd = OK("open", open("punched", O_RDWR));
		OK("punch 16..32 KiB", fallocate(fd, FALLOC_FL_PUNCH_HOLE |
		   FALLOC_FL_KEEP_SIZE, 16 * KIB, 16 * KIB));
		close(fd);
		fd = OK("open read-only", open("punched", O_RDONLY));
		seek_settle(fd, 0, SEEK_HOLE, 16 * KIB);
		EQ("punched: SEEK_HOLE", 16 * KIB, lseek(fd, 0, SEEK_HOLE));
		EQ("punched: SEEK_DATA after", 32 * KIB, lseek(fd, 16 * KIB, SEEK_DATA));
		close(fd);
		free(z);
	}
	leave();
}

/* ---- copy_file_range ---- */

static void t_copy(void)
{
	const long n = 300 * KIB + 123;
	unsigned char *data = malloc((size_t)n), *b;
	loff_t oi, oo;
	int in, out, fd;

	enter("copy");
	if (!data)
		die("malloc");
	fill_pat(data, 0, (size_t)n, 10);
	put("src", data, (size_t)n, 0644);
	in = OK("open source", open("src", O_RDONLY));
	out = OK("create target", open("dst", O_CREAT | O_WRONLY, 0644));
	{
		long done = 0, r = 1;
		while (done < n && r > 0) {
			r = copy_file_range(in, NULL, out, NULL, (size_t)(n - done), 0);
			if (r > 0)
				done += r;
		}
		EQ("copy the whole file", n, done);
	}
	EQ("copy at the source's EOF returns 0", 0,
	   copy_file_range(in, NULL, out, NULL, 100, 0));
	close(out);
	b = range_of("dst", 0, n);
	mem_eq("copy equals the source", data, (size_t)n, b, b ? n : -1);
	free(b);
	EQ("target size", n, st_of("dst").st_size);
	/* explicit offsets: the file offsets do not move */
	out = OK("open target", open("dst", O_WRONLY));
	oi = 5000;
	oo = 2 * n;
	EQ("copy 10000 bytes to past the end", 10000,
	   copy_file_range(in, &oi, out, &oo, 10000, 0));
	EQ("source offset advanced", 15000, oi);
	EQ("target offset advanced", 2 * n + 10000, oo);
	EQ("target file offset unchanged", 0, lseek(out, 0, SEEK_CUR));
	EQ("target grew", 2 * n + 10000, st_of("dst").st_size);
	close(out);
	b = range_of("dst", n, n + 10000);
	truth("gap before the copied range is zeros", b && all_zero(b, (size_t)n),
	      "gap differs");
	mem_eq("copied range at its offset", data + 5000, 10000,
	       b ? b + n : NULL, b ? 10000 : -1);
	free(b);
	/* a copy overwriting the middle of an existing file */
	put("mid", data, (size_t)n, 0644);
	fd = OK("open", open("mid", O_RDWR));
	oi = 0;
	oo = 1001;
	EQ("copy into the middle", 4096, copy_file_range(in, &oi, fd, &oo, 4096, 0));
	close(fd);
	b = range_of("mid", 0, n);
	if (b) {
		memmove(data + 1001, data, 4096); /* what read+write would give */
		mem_eq("middle overwritten, the rest kept", data, (size_t)n, b, n);
		fill_pat(data, 0, (size_t)n, 10);
	} else
		failf("middle overwritten, the rest kept", "cannot read");
	free(b);
	/* within one file, no overlap */
	fd = OK("open rw", open("dst", O_RDWR));
	oi = 0;
	oo = 100000;
	EQ("same file, disjoint ranges", 5000, copy_file_range(fd, &oi, fd, &oo,
	   5000, 0));
	oi = 0;
	oo = 1000;
	ERR("same file, overlapping ranges", copy_file_range(fd, &oi, fd, &oo,
	    5000, 0), EINVAL);
	close(fd);
	b = range_of("dst", 100000, 5000);
	mem_eq("same-file copy", data, 5000, b, b ? 5000 : -1);
	free(b);
	/* errors */
	fd = OK("open read-only", open("dst", O_RDONLY));
	ERR("target open read-only", copy_file_range(in, NULL, fd, NULL, 10, 0),
	    EBADF);
	close(fd);
	fd = OK("open append", open("dst", O_WRONLY | O_APPEND));
	ERR("target open O_APPEND", copy_file_range(in, NULL, fd, NULL, 10, 0),
	    EBADF);
	close(fd);
	fd = OK("open target", open("dst", O_WRONLY));
	ERR("flags must be 0", copy_file_range(in, NULL, fd, NULL, 10, 1), EINVAL);
	{
		int d = open(".", O_RDONLY | O_DIRECTORY);
		ERR("source a directory", copy_file_range(d, NULL, fd, NULL, 10, 0),
		    EISDIR);
		close(d);
	}
	close(fd);
	close(in);
	free(data);
	leave();
}

/* ---- POSIX ACLs (the xattr form, without libacl) ---- */

#define A_USER_OBJ 0x01
#define A_USER 0x02
#define A_GROUP_OBJ 0x04
#define A_GROUP 0x08
#define A_MASK 0x10
#define A_OTHER 0x20
#define A_UNDEF 0xffffffffu
#define XA_ACCESS "system.posix_acl_access"
#define XA_DEFAULT "system.posix_acl_default"

struct acl_e {
	unsigned tag, perm, id;
};

/* Encode n entries (in the kernel's order) into buf; returns the size. */
static size_t acl_enc(unsigned char *buf, const struct acl_e *e, size_t n)
{
	buf[0] = 2;
	buf[1] = buf[2] = buf[3] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = buf + 4 + 8 * i;
		p[0] = (unsigned char)e[i].tag;
		p[1] = (unsigned char)(e[i].tag >> 8);
		p[2] = (unsigned char)e[i].perm;
		p[3] = 0;
		for (int k = 0; k < 4; k++)
			p[4 + k] = (unsigned char)(e[i].id >> (8 * k));
	}
	return 4 + 8 * n;
}

/* The ACL of path under name, as "tag:id:perm,..." (ids "-" if undefined),
 * "none" (ENODATA) or "error". */
static const char *acl_str(const char *path, const char *name)
{
	static char out[512];
	unsigned char v[1024];
	ssize_t n = getxattr(path, name, v, sizeof v);
	size_t used = 0;

	if (n < 0)
		return errno == ENODATA ? "none" : "error";
	out[0] = 0;
	for (ssize_t i = 4; i + 8 <= n && used < sizeof out - 40; i += 8) {
		unsigned tag = v[i] | v[i + 1] << 8, perm = v[i + 2];
		unsigned id = v[i + 4] | v[i + 5] << 8 | v[i + 6] << 16 |
		              (unsigned)v[i + 7] << 24;
		const char *t = tag == A_USER_OBJ ? "u" : tag == A_USER ? "U"
		              : tag == A_GROUP_OBJ ? "g" : tag == A_GROUP ? "G"
		              : tag == A_MASK ? "m" : tag == A_OTHER ? "o" : "?";
		if (id == A_UNDEF)
			used += (size_t)snprintf(out + used, sizeof out - used, "%s%s::%u",
			                         used ? "," : "", t, perm);
		else
			used += (size_t)snprintf(out + used, sizeof out - used,
			                         "%s%s:%u:%u", used ? "," : "", t, id, perm);
	}
	return out;
}

static int set_acl(const char *path, const char *name, const struct acl_e *e,
                   size_t n)
{
	unsigned char buf[4 + 8 * 16];
	return setxattr(path, name, buf, acl_enc(buf, e, n), 0);
}

/* NOBODY, outside the group of "sg" (its own file) and of "locked" */
static void acl_nobody_outside(void)
{
	const struct acl_e own[] = {
		{ A_USER_OBJ, 7, A_UNDEF }, { A_GROUP_OBJ, 5, A_UNDEF },
		{ A_GROUP, 5, 4321 }, { A_MASK, 5, A_UNDEF },
		{ A_OTHER, 5, A_UNDEF },
	};

	ERR("no entry: locked out", access("locked/x", R_OK), EACCES);
	OK("owner outside the group sets an ACL",
	   set_acl("sg", XA_ACCESS, own, 5));
	mode_eq("an ACL set by a non-member clears set-group-ID",
	        S_IFREG | 0755, st_of("sg").st_mode);
	ERR("non-owner cannot set an ACL",
	    set_acl("locked", XA_ACCESS, own, 5), EPERM);
}

/* NOBODY, named r-x in the ACL of "locked" */
static void acl_nobody_named(void)
{
	DIR *d;

	OK("named entry: lookup allowed", access("locked/x", R_OK));
	d = opendir("locked");
	truth("named entry: listing allowed", d != NULL, "opendir: %s",
	      ename(errno));
	if (d)
		closedir(d);
	ERR("named entry r-x: no create", open("locked/new",
	    O_CREAT | O_WRONLY, 0644), EACCES);
}

/* NOBODY, whose named entry the mask of "locked" now drops */
static void acl_nobody_masked(void)
{
	ERR("masked entry: locked out", access("locked/x", R_OK), EACCES);
}

static void t_acl(void)
{
	const struct acl_e named[] = {
		{ A_USER_OBJ, 6, A_UNDEF }, { A_USER, 5, 1234 },
		{ A_GROUP_OBJ, 4, A_UNDEF }, { A_MASK, 5, A_UNDEF },
		{ A_OTHER, 4, A_UNDEF },
	};
	const struct acl_e equiv[] = {
		{ A_USER_OBJ, 7, A_UNDEF }, { A_GROUP_OBJ, 5, A_UNDEF },
		{ A_OTHER, 0, A_UNDEF },
	};
	const struct acl_e dflt[] = {
		{ A_USER_OBJ, 7, A_UNDEF }, { A_GROUP_OBJ, 5, A_UNDEF },
		{ A_GROUP, 7, 4321 }, { A_MASK, 7, A_UNDEF }, { A_OTHER, 1, A_UNDEF },
	};
	const struct acl_e bad[] = {
		{ A_USER_OBJ, 7, A_UNDEF }, { A_USER, 5, 1234 },
		{ A_GROUP_OBJ, 5, A_UNDEF }, { A_OTHER, 0, A_UNDEF }, /* no mask */
	};
	struct stat st;
	int fd;
	mode_t old;

	enter("acl");
	put("f", "f", 1, 0644);
	if (chmod("f", 0644))
		die("chmod");
	/* an ACL the mode says in full is not kept: the mode takes it */
	if (set_acl("f", XA_ACCESS, equiv, 3)) {
		failf("set a minimal access ACL", "%s (no POSIX ACL support?)",
		      ename(errno));
		leave();
		return;
	}
	pass("set a minimal access ACL");
	mode_eq("minimal ACL: mode follows", S_IFREG | 0750, st_of("f").st_mode);
	str_eq("minimal ACL: not stored", "none", acl_str("f", XA_ACCESS));
	str_eq("no ACL: getxattr ENODATA", "none", acl_str("f", XA_DEFAULT));
	/* a named entry: kept, the group bits show the mask */
	OK("set an ACL with a named user", set_acl("f", XA_ACCESS, named, 5));
	mode_eq("named ACL: group bits are the mask", S_IFREG | 0654,
	        st_of("f").st_mode);
	str_eq("named ACL: stored as set", "u::6,U:1234:5,g::4,m::5,o::4",
	       acl_str("f", XA_ACCESS));
	{
		char list[1024];
		ssize_t n = listxattr("f", list, sizeof list);
		int seen = 0;
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
			seen |= !strcmp(list + i, XA_ACCESS);
		truth("listxattr names the ACL", seen, "not listed");
	}
	/* chmod: owner, mask and other follow; the group entry stays */
	OK("chmod 0710", chmod("f", 0710));
	str_eq("chmod updates the mask", "u::7,U:1234:5,g::4,m::1,o::0",
	       acl_str("f", XA_ACCESS));
	mode_eq("chmod mode", S_IFREG | 0710, st_of("f").st_mode);
	OK("remove the access ACL", removexattr("f", XA_ACCESS));
	mode_eq("removing the ACL keeps the mode", S_IFREG | 0710,
	        st_of("f").st_mode);
	str_eq("removed", "none", acl_str("f", XA_ACCESS));
	ERR("ACL without a mask", set_acl("f", XA_ACCESS, bad, 4), EINVAL);
	ERR("default ACL on a file", set_acl("f", XA_DEFAULT, dflt, 5), EACCES);
	{
		unsigned char junk[6] = { 2, 0, 0, 0, 1, 0 };
		ERR("malformed ACL", setxattr("f", XA_ACCESS, junk, sizeof junk, 0),
		    EINVAL);
	}

	/* no default ACL: the umask applies */
	xmkdir("plain", 0777);
	old = umask(027);
	put("plain/f", "x", 1, 0666);
	xmkdir("plain/d", 0777);
	if (mknod("plain/p", S_IFIFO | 0666, 0))
		die("mknod");
	umask(old);
	mode_eq("umask on create", S_IFREG | 0640, st_of("plain/f").st_mode);
	mode_eq("umask on mkdir", S_IFDIR | 0750, st_of("plain/d").st_mode);
	mode_eq("umask on mknod", S_IFIFO | 0640, st_of("plain/p").st_mode);
	str_eq("no default: no ACL on the new file", "none",
	       acl_str("plain/f", XA_ACCESS));

	/* a default ACL replaces the umask and is inherited */
	xmkdir("inh", 0755);
	OK("set a default ACL", set_acl("inh", XA_DEFAULT, dflt, 5));
	str_eq("default ACL stored", "u::7,g::5,G:4321:7,m::7,o::1",
	       acl_str("inh", XA_DEFAULT));
	mode_eq("a default ACL leaves the mode", S_IFDIR | 0755,
	        st_of("inh").st_mode);
	old = umask(077);
	put("inh/f", "x", 1, 0664);
	xmkdir("inh/d", 0750);
	if (mknod("inh/p", S_IFIFO | 0644, 0) || symlink("f", "inh/l"))
		die("mknod");
	umask(old);
	mode_eq("inherited: file mode from ACL and create mode", S_IFREG | 0660,
	        st_of("inh/f").st_mode);
	str_eq("inherited: file ACL masked by the create mode",
	       "u::6,g::5,G:4321:7,m::6,o::0", acl_str("inh/f", XA_ACCESS));
	str_eq("inherited: a file gets no default ACL", "none",
	       acl_str("inh/f", XA_DEFAULT));
	mode_eq("inherited: dir mode", S_IFDIR | 0750, st_of("inh/d").st_mode);
	str_eq("inherited: dir access ACL", "u::7,g::5,G:4321:7,m::5,o::0",
	       acl_str("inh/d", XA_ACCESS));
	str_eq("inherited: dir default ACL", "u::7,g::5,G:4321:7,m::7,o::1",
	       acl_str("inh/d", XA_DEFAULT));
	mode_eq("inherited: fifo", S_IFIFO | 0640, st_of("inh/p").st_mode);
	mode_eq("inherited: symlink untouched", S_IFLNK | 0777,
	        st_of("inh/l").st_mode);
	put("inh/d/g", "y", 1, 0600);
	mode_eq("inherited two levels down", S_IFREG | 0600,
	        st_of("inh/d/g").st_mode);
	str_eq("two levels down: ACL", "u::6,g::5,G:4321:7,m::0,o::0",
	       acl_str("inh/d/g", XA_ACCESS));
	OK("remove the default ACL", removexattr("inh", XA_DEFAULT));
	old = umask(022);
	put("inh/after", "z", 1, 0666);
	umask(old);
	mode_eq("after removing the default: umask again", S_IFREG | 0644,
	        st_of("inh/after").st_mode);

	/* the kernel enforces it: a named entry lets NOBODY in, the mask can
	 * take it away; an ACL set by a non-member clears set-group-ID */
	xmkdir("locked", 0750);
	put("locked/x", "x", 1, 0644);
	put("sg", "s", 1, 0644);
	if (chown("sg", NOBODY, 0) || chmod("sg", 02775))
		die("chown");
	{
		const struct acl_e let_in[] = {
			{ A_USER_OBJ, 7, A_UNDEF }, { A_USER, 5, NOBODY },
			{ A_GROUP_OBJ, 5, A_UNDEF }, { A_MASK, 5, A_UNDEF },
			{ A_OTHER, 0, A_UNDEF },
		};
		as_nobody(acl_nobody_outside);
		OK("let NOBODY in by name", set_acl("locked", XA_ACCESS, let_in, 5));
		mode_eq("named entry: group bits show the mask", S_IFDIR | 0750,
		        st_of("locked").st_mode);
		as_nobody(acl_nobody_named);
		OK("chmod 0700: the mask drops the entry", chmod("locked", 0700));
		as_nobody(acl_nobody_masked);
	}
	fd = OK("create with O_CREAT in a default-ACL dir after chmod",
	        open("locked/y", O_CREAT | O_WRONLY, 0600));
	if (fd >= 0)
		close(fd);
	st = st_of("locked/y");
	mode_eq("no default ACL there: mode as asked (umask 0)", S_IFREG | 0600,
	        st.st_mode);
	leave();
}

static const struct {
	const char *name;
	void (*fn)(void);
} checks[] = {
	{ "open", t_open }, { "rw", t_rw }, { "sparse", t_sparse },
	{ "truncate", t_truncate }, { "unlink_open", t_unlink_open },
	{ "dirs", t_dirs }, { "rename", t_rename }, { "symlink", t_symlink },
	{ "link", t_link }, { "attrs", t_attrs }, { "sync", t_sync },
	{ "xattr", t_xattr }, { "special", t_special }, { "mmap", t_mmap },
	{ "names", t_names }, { "perms", t_perms }, { "falloc", t_falloc },
	{ "seek", t_seek }, { "copy", t_copy }, { "acl", t_acl },
	{ "privs", t_privs },
};

static void usage(void)
{
	fprintf(stderr, "usage: posix [-v] [-o GROUP] DIR   (DIR must be empty)\n"
	        "groups:");
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
		fprintf(stderr, " %s", checks[i].name);
	fprintf(stderr, "\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "vo:")) != -1) {
		if (opt == 'v')
			verbose = 1;
		else if (opt == 'o')
			only = optarg;
		else
			usage();
	}
	if (optind != argc - 1)
		usage();
	if (geteuid() != 0) {
		fprintf(stderr, "posix: must run as root\n");
		return 2;
	}
	tally = mmap(NULL, sizeof *tally, PROT_READ | PROT_WRITE,
	             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tally == MAP_FAILED || chdir(argv[optind])) {
		fprintf(stderr, "posix: cannot use '%s': %s\n", argv[optind],
		        strerror(errno));
		return 2;
	}
	umask(0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
		if (!only || !strcmp(only, checks[i].name))
			checks[i].fn();
	printf("posix: %d passed, %d failed\n", tally->pass, tally->fail);
	return tally->fail ? 1 : 0;
}
