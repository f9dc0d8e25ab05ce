/*
 * difftest - randomized differential tester for custodyfs.
 *
 * Runs one seeded pseudo-random sequence of filesystem operations on two
 * initially empty directories: DIR_A on the filesystem under test (a
 * custodyfs FUSE mount) and DIR_B on a trusted reference filesystem (ext4,
 * tmpfs).  Every operation is applied to A and then to B with identical
 * arguments; the success/failure of each call, errno, returned byte counts
 * and returned bytes must agree (fallocate, copy_file_range; SEEK_DATA and
 * SEEK_HOLE answers are checked against the content, since filesystems may
 * place holes differently).  Every CHECK_EVERY operations, and at the
 * end, the two trees are compared: names, types, permission bits, link
 * counts, sizes, file contents, symlink targets, user.* xattrs and readdir
 * d_type.  Targets are picked by scanning the reference tree, so the whole
 * run depends only on the seed: a seed reproduces a run on any machine.
 *
 * Exit status: 0 trees stayed identical, 1 mismatch, 2 usage/setup error.
 * DIFFTEST_CORRUPT=1..4 damages A behind the tester's back after op 50 to
 * prove that the checker fails (see usage()).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef ENODATA
#define ENODATA ENOATTR
#endif

#define KIB 1024LL
#define MIB (1024LL * 1024LL)

#define RELMAX 512              /* longest relative path the tester tracks */
#define PATHBUF 4096
#define MAX_ENTS 4096           /* entries tracked from the reference scan */
#define MAX_MKDIR_DEPTH 3       /* mkdir normally nests at most this deep */
#define TREE_SOFT_MAX 60        /* above this many entries, favour deletes */
#define IOBUF (512 * 1024)      /* op data / result buffers */
#define CMPBUF (1024 * 1024)    /* tree-compare read chunk */
#define XBUF (64 * 1024)        /* xattr list / value buffer */
#define FAR_MAX (64 * MIB)      /* far writes/truncates land below this */
#define SIZE_BUDGET (192 * MIB) /* soft cap on the sum of file sizes */
#define SMALL_FILE (16 * KIB)   /* always content-compared */
#define MARGIN (64 * KIB)       /* compared around changed ranges */
#define TO_EOF (1LL << 62)     /* "up to the end of the file" */
#define XATTR_BUDGET 3000       /* per-inode user.* bytes (ext4 fits 4 KiB) */
#define DIRTY_MAX 256
#define OWN_MAX 1024
#define DEFAULT_FULL_EVERY 50
#define CORRUPT_AT 50

enum optype {
	OP_OPEN, OP_WRITE, OP_READ, OP_TRUNC, OP_RENAME, OP_LINK, OP_UNLINK,
	OP_MKDIR, OP_RMDIR, OP_SYMLINK, OP_READLINK, OP_CHMOD, OP_XATTR,
	OP_UNLINKED, OP_FSYNC, OP_MMAP, OP_FALLOC, OP_SEEK, OP_COPY, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"open", "write", "read", "truncate", "rename", "link", "unlink",
	"mkdir", "rmdir", "symlink", "readlink", "chmod", "xattr",
	"open-unlink", "fsync", "mmap", "fallocate", "lseek-data-hole",
	"copy_file_range",
};

/* relative frequencies, in the same order as enum optype */
static const int op_weight[OP_COUNT] = {
	9, 16, 12, 7, 10, 4, 6, 5, 4, 4, 3, 4, 7, 3, 2, 4, 6, 5, 6,
};

enum { T_REG = 1, T_DIR = 2, T_LNK = 4, T_ANY = 7 };
enum { CMP_EXACT, CMP_SIGN };

static const char *const fnames[] = { "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7" };
static const char *const dnames[] = { "d0", "d1", "d2", "d3" };
#define NFNAMES (sizeof(fnames) / sizeof(fnames[0]))
#define NDNAMES (sizeof(dnames) / sizeof(dnames[0]))

struct ent {                    /* one object of the reference tree */
	char path[RELMAX];
	int type;
	int depth;              /* number of path components */
	int empty;              /* directories: no children */
	long long size;
};

struct dname {
	char name[NAME_MAX + 1];
	unsigned char dtype;
};

struct res {
	long ret;
	int err;
};

struct dirty {
	dev_t dev;
	ino_t ino;
	long long lo, hi;       /* changed byte range */
};

static struct {
	const char *root[2];
	unsigned long long seed;
	uint64_t rng;
	long nops, check_every, full_every;
	int verbose;
	int corrupt;
	int xattr_ok;
	int no_mmap;            /* -M: A has no shared mmap (direct I/O) */
	int skip[OP_COUNT];     /* DIFFTEST_SKIP=name,name: ops left out */
	long opno;
	int in_check;
	int full_content;
	char desc[1024];
	char detail[4096];
	struct ent *ents;
	size_t nents, cap_ents;
	long long total_size;
	int fd[2];
	int cfd[2];
	unsigned char *data;
	unsigned char *buf[2];
	unsigned char *cbuf[2];
	struct dirty dirty[DIRTY_MAX];
	size_t ndirty;
	int dirty_all;
	int heads_all;
	void *own[OWN_MAX];
	int nown;
	long checks;
	long counts[OP_COUNT];
	long pagesize;
	char longname[256];
	char longtarget[128];
} G;

/* ------------------------------------------------------------------ */
/* PRNG: splitmix64 for seeding, xorshift64* for the stream            */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_next(void)
{
	uint64_t x = G.rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	G.rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* uniform-ish integer in [0, n); n == 0 yields 0 */
static uint64_t rnd(uint64_t n)
{
	return n ? (rng_next() >> 8) % n : 0;
}

static int chance(int percent)
{
	return (int)rnd(100) < percent;
}

static void fill_random(unsigned char *p, size_t len)
{
	while (len >= 8) {
		uint64_t v = rng_next();
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rng_next();
		memcpy(p, &v, len);
	}
}

/* ------------------------------------------------------------------ */
/* bookkeeping, reporting                                              */

static void own(void *p)
{
	if (G.nown < OWN_MAX)
		G.own[G.nown++] = p;
}

static void release(void *p)
{
	for (int i = G.nown - 1; i >= 0; i--) {
		if (G.own[i] == p) {
			G.own[i] = G.own[--G.nown];
			break;
		}
	}
	free(p);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void cleanup(void)
{
	for (int s = 0; s < 2; s++) {
		close_fd(&G.fd[s]);
		close_fd(&G.cfd[s]);
		free(G.buf[s]);
		free(G.cbuf[s]);
		G.buf[s] = G.cbuf[s] = NULL;
	}
	while (G.nown > 0)
		free(G.own[--G.nown]);
	free(G.data);
	free(G.ents);
	G.data = NULL;
	G.ents = NULL;
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	case ENODATA: return "ENODATA";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	default: return "E?";
	}
}

static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void detail(const char *fmt, ...)
{
	size_t used = strlen(G.detail);
	va_list ap;

	if (used >= sizeof(G.detail) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(G.detail + used, sizeof(G.detail) - used, fmt, ap);
	va_end(ap);
}

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...)
{
	char msg[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "difftest: MISMATCH at op %ld (seed %llu): %s\n",
		G.opno, G.seed, msg);
	if (G.in_check)
		fprintf(stderr, "  found by the tree check after op %ld\n", G.opno);
	if (G.desc[0])
		fprintf(stderr, "  %s %ld: %s\n", G.in_check ? "last op" : "op", G.opno, G.desc);
	if (G.detail[0])
		fputs(G.detail, stderr);
	fprintf(stderr, "  A = %s, B = %s\n  reproduce with: difftest -s %llu -n %ld -c %ld -F %ld DIR_A DIR_B\n",
		G.root[0], G.root[1], G.seed, G.opno, G.check_every, G.full_every);
	cleanup();
	exit(1);
}

static void setdesc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void setdesc(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(G.desc, sizeof(G.desc), fmt, ap);
	va_end(ap);
	if (G.verbose) {
		printf("op %ld: %s\n", G.opno, G.desc);
		fflush(stdout);
	}
}

static void fmtres(char *out, size_t n, const struct res *r)
{
	if (r->ret < 0)
		snprintf(out, n, "%ld %s (%s)", r->ret, errname(r->err), strerror(r->err));
	else
		snprintf(out, n, "%ld", r->ret);
}

/* Both sides must fail with the same errno, or both succeed (with the same
 * return value for CMP_EXACT). */
static void compare_res(const struct res r[2], int cmp, const char *what)
{
	int ok;

	if (r[0].ret < 0 || r[1].ret < 0)
		ok = r[0].ret < 0 && r[1].ret < 0 && r[0].err == r[1].err;
	else
		ok = cmp == CMP_SIGN || r[0].ret == r[1].ret;
	if (!ok) {
		char a[128], b[128];

		fmtres(a, sizeof(a), &r[0]);
		fmtres(b, sizeof(b), &r[1]);
		detail("  %s: A -> %s\n  %s: B -> %s\n", what, a, what, b);
		fail("%s: A returned %s, B returned %s", what, a, b);
	}
}

/* Evaluate EXPR once per side (A first, s == 0; then B, s == 1), record
 * return value and errno in RES[s] and compare the two outcomes. */
#define BOTH(res, cmp, what, expr)                                       \
	do {                                                             \
		for (int s = 0; s < 2; s++) {                            \
			errno = 0;                                       \
			long r_ = (long)(expr);                          \
			(res)[s].ret = r_;                               \
			(res)[s].err = r_ < 0 ? errno : 0;               \
		}                                                        \
		compare_res((res), (cmp), (what));                       \
	} while (0)

/* ------------------------------------------------------------------ */
/* paths                                                               */

static void full(int s, const char *rel, char *out)
{
	int n;

	if (rel[0])
		n = snprintf(out, PATHBUF, "%s/%s", G.root[s], rel);
	else
		n = snprintf(out, PATHBUF, "%s", G.root[s]);
	if (n < 0 || n >= PATHBUF)
		fail("path too long: %s", rel);
}

static void full2(const char *rel, char p[2][PATHBUF])
{
	full(0, rel, p[0]);
	full(1, rel, p[1]);
}

static int join(char *out, size_t n, const char *dir, const char *name)
{
	int r = dir[0] ? snprintf(out, n, "%s/%s", dir, name)
		       : snprintf(out, n, "%s", name);
	return r >= 0 && (size_t)r < n;
}

static int type_of(mode_t m)
{
	if (S_ISREG(m))
		return T_REG;
	if (S_ISDIR(m))
		return T_DIR;
	if (S_ISLNK(m))
		return T_LNK;
	return 0;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "char device";
	case S_IFBLK: return "block device";
	default: return "unknown";
	}
}

static int cmp_dname(const void *a, const void *b)
{
	return strcmp(((const struct dname *)a)->name, ((const struct dname *)b)->name);
}

/* Sorted names of a directory (without . and ..); the array is own()ed. */
static long list_dir(const char *path, struct dname **out)
{
	DIR *d = opendir(path);
	struct dname *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	*out = NULL;
	if (!d)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct dname *nv = realloc(v, ncap * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				errno = ENOMEM;
				return -1;
			}
			v = nv;
			cap = ncap;
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].dtype = de->d_type;
		n++;
	}
	if (errno) {
		int e = errno;

		free(v);
		closedir(d);
		errno = e;
		return -1;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_dname);
	if (v)
		own(v);
	*out = v;
	return (long)n;
}

/* ------------------------------------------------------------------ */
/* reference tree scan and target selection                            */

static void scan_dir(const char *rel, int depth, int *empty)
{
	char p[PATHBUF];
	struct dname *v;
	long n;

	full(1, rel, p);
	n = list_dir(p, &v);
	if (n < 0)
		fail("reference tree: cannot list %s: %s", p, strerror(errno));
	*empty = n == 0;
	for (long i = 0; i < n; i++) {
		char crel[RELMAX], cp[PATHBUF];
		struct stat st;
		struct ent *e;

		if (!join(crel, sizeof(crel), rel, v[i].name))
			continue;
		full(1, crel, cp);
		if (lstat(cp, &st) < 0)
			fail("reference tree: lstat %s: %s", cp, strerror(errno));
		if (G.nents == G.cap_ents) {
			size_t ncap = G.cap_ents ? G.cap_ents * 2 : 256;
			struct ent *ne;

			if (ncap > MAX_ENTS)
				break;
			ne = realloc(G.ents, ncap * sizeof(*ne));
			if (!ne)
				fail("out of memory");
			G.ents = ne;
			G.cap_ents = ncap;
		}
		e = &G.ents[G.nents++];
		memcpy(e->path, crel, sizeof(crel));
		e->type = type_of(st.st_mode);
		e->depth = depth + 1;
		e->size = st.st_size;
		e->empty = 0;
		if (S_ISREG(st.st_mode))
			G.total_size += st.st_size;
		if (S_ISDIR(st.st_mode)) {
			size_t idx = G.nents - 1;
			int emp;

			scan_dir(crel, depth + 1, &emp);
			G.ents[idx].empty = emp;
		}
	}
	release(v);
}

static void scan_b(void)
{
	int emp;

	G.nents = 0;
	G.total_size = 0;
	scan_dir("", 0, &emp);
}

static long count_type(int mask)
{
	long n = 0;

	for (size_t i = 0; i < G.nents; i++)
		if (G.ents[i].type & mask)
			n++;
	return n;
}

/* Uniformly pick an existing entry of the given types; NULL if none. */
static const struct ent *pick_ent(int mask)
{
	long n = count_type(mask), k;

	if (n == 0)
		return NULL;
	k = (long)rnd((uint64_t)n);
	for (size_t i = 0; i < G.nents; i++)
		if ((G.ents[i].type & mask) && k-- == 0)
			return &G.ents[i];
	return NULL;
}

/* A parent directory: mostly an existing one of depth < maxdepth (the root
 * included), sometimes a made-up one that may not exist or be a file. */
static void rand_parent(char *out, int maxdepth)
{
	if (chance(88)) {
		long n = 1;

		for (size_t i = 0; i < G.nents; i++)
			if (G.ents[i].type == T_DIR && G.ents[i].depth < maxdepth)
				n++;
		long k = (long)rnd((uint64_t)n);
		out[0] = 0;
		if (k-- == 0)
			return;
		for (size_t i = 0; i < G.nents; i++) {
			if (G.ents[i].type == T_DIR && G.ents[i].depth < maxdepth && k-- == 0) {
				snprintf(out, RELMAX, "%s", G.ents[i].path);
				return;
			}
		}
		return;
	}
	int comps = 1 + (int)rnd(2);
	out[0] = 0;
	for (int i = 0; i < comps; i++) {
		char tmp[RELMAX];
		const char *nm = chance(85) ? dnames[rnd(NDNAMES)] : fnames[rnd(NFNAMES)];

		if (join(tmp, sizeof(tmp), out, nm))
			memcpy(out, tmp, RELMAX);
	}
}

static const char *rand_leaf(int isdir)
{
	if (chance(10))
		isdir = !isdir;
	return isdir ? dnames[rnd(NDNAMES)] : fnames[rnd(NFNAMES)];
}

static void rand_path(char *out, int isdir)
{
	char parent[RELMAX];

	rand_parent(parent, MAX_MKDIR_DEPTH);
	if (!join(out, RELMAX, parent, rand_leaf(isdir)))
		snprintf(out, RELMAX, "%s", rand_leaf(isdir));
}

/* Existing entry of the given types if there is one, else a random path. */
static int pick_path(char *out, int mask)
{
	const struct ent *e = pick_ent(mask);

	if (e) {
		snprintf(out, RELMAX, "%s", e->path);
		return e->type;
	}
	rand_path(out, mask == T_DIR);
	return 0;
}

/* Typical target choice: mostly existing entries of MASK, sometimes any
 * existing entry, sometimes a random (often non-existent) path. */
static void pick_target(char *out, int mask, int p_mask, int p_any)
{
	int r = (int)rnd(100);

	if (r < p_mask)
		pick_path(out, mask);
	else if (r < p_mask + p_any)
		pick_path(out, T_ANY);
	else
		rand_path(out, mask == T_DIR);
}

/* stat() of the reference object (following symlinks) */
static int b_stat(const char *rel, struct stat *st)
{
	char p[PATHBUF];

	full(1, rel, p);
	return stat(p, st);
}

static int b_lstat(const char *rel, struct stat *st)
{
	char p[PATHBUF];

	full(1, rel, p);
	return lstat(p, st);
}

/* ------------------------------------------------------------------ */
/* dirty tracking: files whose content changed since the last check    */

/* Record that bytes [lo, hi) of the reference file ST (identified by its
 * inode, so hard links and renames are followed) changed.  A directory
 * (a directory rename) makes the next check look at the head of every file. */
static void mark_st(const struct stat *st, long long lo, long long hi)
{
	struct dirty *d;

	if (S_ISDIR(st->st_mode)) {
		G.heads_all = 1;
		return;
	}
	if (!S_ISREG(st->st_mode))
		return;
	if (lo < 0)
		lo = 0;
	if (hi > TO_EOF)
		hi = TO_EOF;
	for (size_t i = 0; i < G.ndirty; i++) {
		d = &G.dirty[i];
		if (d->dev == st->st_dev && d->ino == st->st_ino &&
		    lo <= d->hi + 2 * MARGIN && d->lo <= hi + 2 * MARGIN) {
			if (lo < d->lo)
				d->lo = lo;
			if (hi > d->hi)
				d->hi = hi;
			return;
		}
	}
	if (G.ndirty == DIRTY_MAX) {
		G.dirty_all = 1;
		return;
	}
	d = &G.dirty[G.ndirty++];
	d->dev = st->st_dev;
	d->ino = st->st_ino;
	d->lo = lo;
	d->hi = hi;
}

static void mark_fd(int fd, long long lo, long long hi)
{
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0)
		mark_st(&st, lo, hi);
}

static void mark_rel(const char *rel, int follow, long long lo, long long hi)
{
	struct stat st;

	if ((follow ? b_stat(rel, &st) : b_lstat(rel, &st)) == 0)
		mark_st(&st, lo, hi);
}

/* next dirty range of ST after index *I (start with *I == 0) */
static const struct dirty *next_dirty(const struct stat *st, size_t *i)
{
	for (; *i < G.ndirty; (*i)++)
		if (G.dirty[*i].dev == st->st_dev && G.dirty[*i].ino == st->st_ino)
			return &G.dirty[(*i)++];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* small shared helpers for ops                                        */

static void flagstr(char *out, size_t n, int flags)
{
	int acc = flags & O_ACCMODE;

	snprintf(out, n, "%s%s%s%s%s%s",
		 acc == O_RDONLY ? "O_RDONLY" : acc == O_WRONLY ? "O_WRONLY" : "O_RDWR",
		 flags & O_CREAT ? "|O_CREAT" : "", flags & O_EXCL ? "|O_EXCL" : "",
		 flags & O_TRUNC ? "|O_TRUNC" : "", flags & O_APPEND ? "|O_APPEND" : "",
		 flags & O_NOFOLLOW ? "|O_NOFOLLOW" : "");
}

static int close_keep_errno(int *fd)
{
	int r = close(*fd);
	int e = errno;

	*fd = -1;
	errno = e;
	return r;
}

/* open REL on both sides into G.fd[]; 1 if both opened, 0 if both failed */
static int open_both(const char *rel, int flags, mode_t mode)
{
	char p[2][PATHBUF];
	struct res r[2];

	full2(rel, p);
	BOTH(r, CMP_SIGN, "open", (G.fd[s] = open(p[s], flags | O_CLOEXEC, mode)));
	return r[0].ret >= 0;
}

static void close_both(void)
{
	struct res r[2];

	BOTH(r, CMP_EXACT, "close", close_keep_errno(&G.fd[s]));
}

/* Compare the stat data the tester cares about (not times, inode numbers,
 * owners, st_blocks, directory sizes, symlink permission bits). */
static void cmp_stat(const char *what, const struct stat *a, const struct stat *b)
{
	if ((a->st_mode & S_IFMT) != (b->st_mode & S_IFMT))
		fail("%s: type differs (A %s, B %s)", what, type_name(a->st_mode),
		     type_name(b->st_mode));
	if (!S_ISLNK(b->st_mode) && (a->st_mode & 07777) != (b->st_mode & 07777))
		fail("%s: permission bits differ (A %04o, B %04o)", what,
		     (unsigned)(a->st_mode & 07777), (unsigned)(b->st_mode & 07777));
	if (a->st_nlink != b->st_nlink)
		fail("%s: nlink differs (A %lu, B %lu)", what,
		     (unsigned long)a->st_nlink, (unsigned long)b->st_nlink);
	if (!S_ISDIR(b->st_mode) && a->st_size != b->st_size)
		fail("%s: size differs (A %lld, B %lld)", what,
		     (long long)a->st_size, (long long)b->st_size);
}

static void fstat_both(const char *what, struct stat st[2])
{
	struct res r[2];

	BOTH(r, CMP_EXACT, "fstat", fstat(G.fd[s], &st[s]));
	cmp_stat(what, &st[0], &st[1]);
}

static void cmp_bytes(const char *what, const unsigned char *a,
		      const unsigned char *b, size_t len, long long base)
{
	if (memcmp(a, b, len) == 0)
		return;
	for (size_t i = 0; i < len; i++) {
		if (a[i] != b[i]) {
			detail("  first difference at byte %lld: A 0x%02x, B 0x%02x\n",
			       base + (long long)i, a[i], b[i]);
			fail("%s: data differs at offset %lld", what, base + (long long)i);
		}
	}
}

/* I/O lengths: mostly small, up to MAX */
static size_t rand_len(size_t max)
{
	int r = (int)rnd(100);
	size_t lim = r < 45 ? 4096 : r < 80 ? 16384 : max;

	if (lim > max)
		lim = max;
	return 1 + (size_t)rnd(lim);
}

static long long rand_offset(long long size, size_t len, int allow_far)
{
	int r = (int)rnd(100);
	long long off;

	if (r < 55) {
		off = (long long)rnd((uint64_t)size + 1);
	} else if (r < 70) {        /* around a block boundary */
		long long blocks = size / 4096 + 2;
		off = (long long)rnd((uint64_t)blocks) * 4096 + (long long)rnd(3) - 1;
	} else if (r < 95 || !allow_far) {
		off = size + (long long)rnd(256 * KIB);
	} else {
		off = (long long)rnd(FAR_MAX);
	}
	if (off < 0)
		off = 0;
	if (allow_far) {
		long long newsize = off + (long long)len > size ? off + (long long)len : size;
		if (G.total_size - size + newsize > SIZE_BUDGET)
			off = (long long)rnd((uint64_t)size + 1);
	}
	return off;
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

static void op_open(void)
{
	char rel[RELMAX], fl[96];
	int r = (int)rnd(100), flags, acc;
	mode_t mode;

	if (r < 50)
		pick_path(rel, T_REG);
	else if (r < 60)
		pick_path(rel, T_ANY);
	else
		rand_path(rel, 0);
	r = (int)rnd(100);
	acc = r < 45 ? O_RDWR : r < 90 ? O_WRONLY : O_RDONLY;
	flags = acc;
	if (chance(60))
		flags |= O_CREAT;
	if ((flags & O_CREAT) && chance(30))
		flags |= O_EXCL;
	if (acc != O_RDONLY && chance(25))
		flags |= O_TRUNC;
	if (chance(25))
		flags |= O_APPEND;
	if (chance(5))
		flags |= O_NOFOLLOW;
	mode = 0600 | (mode_t)rnd(0200);
	flagstr(fl, sizeof(fl), flags);
	setdesc("open %s %s mode %04o", rel, fl, (unsigned)mode);
	if (!open_both(rel, flags, mode))
		return;
	struct stat st[2];
	fstat_both("fstat after open", st);
	if (flags & (O_CREAT | O_TRUNC))
		mark_fd(G.fd[1], 0, 1);
	close_both();
}

static void op_write(void)
{
	char rel[RELMAX], fl[96];
	struct stat st, fst[2], before;
	struct res r[2];
	int append = chance(15), use_write = 0, flags;
	long long size, off;
	size_t len;

	pick_target(rel, T_REG, 88, 4);
	flags = (chance(50) ? O_RDWR : O_WRONLY) | (append ? O_APPEND : 0) |
		(chance(5) ? O_CREAT : 0);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	len = rand_len(64 * KIB);
	off = rand_offset(size, len, 1);
	if (append)
		use_write = chance(75);
	fill_random(G.data, len);
	flagstr(fl, sizeof(fl), flags);
	setdesc("write %s (%s) %s off %lld len %zu", rel, fl,
		use_write ? "write()" : "pwrite()", off, len);
	if (!open_both(rel, flags, 0644))
		return;
	if (fstat(G.fd[0], &before) < 0)
		fail("fstat on A failed: %s", strerror(errno));
	if (use_write)
		BOTH(r, CMP_EXACT, "write", write(G.fd[s], G.data, len));
	else
		BOTH(r, CMP_EXACT, "pwrite", pwrite(G.fd[s], G.data, len, (off_t)off));
	fstat_both("fstat after write", fst);
	if (r[0].ret > 0 &&
	    (fst[0].st_mtim.tv_sec < before.st_mtim.tv_sec ||
	     (fst[0].st_mtim.tv_sec == before.st_mtim.tv_sec &&
	      fst[0].st_mtim.tv_nsec < before.st_mtim.tv_nsec)))
		fail("mtime of A went backwards after a write (%lld.%09ld -> %lld.%09ld)",
		     (long long)before.st_mtim.tv_sec, before.st_mtim.tv_nsec,
		     (long long)fst[0].st_mtim.tv_sec, fst[0].st_mtim.tv_nsec);
	if (r[1].ret >= 0) {
		long long lo = append ? fst[1].st_size - r[1].ret : off;

		mark_fd(G.fd[1], lo, lo + r[1].ret);
		/* a write past EOF leaves a hole that must read as zeros:
		 * look at its start now, all of it on the next full check */
		if (lo > size)
			mark_fd(G.fd[1], size, size + 1);
	}
	close_both();
}

static void op_read(void)
{
	char rel[RELMAX];
	struct stat st, fst[2];
	struct res r[2];
	long long size, off;
	size_t len;
	int rdwr = chance(10), use_read = chance(20);

	pick_target(rel, T_REG, 88, 6);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	len = rand_len(128 * KIB);
	if (chance(15))
		off = size - (long long)rnd(8192);
	else
		off = rand_offset(size, len, 0);
	if (off < 0)
		off = 0;
	setdesc("read %s %s off %lld len %zu", rel, use_read ? "lseek+read()" : "pread()",
		off, len);
	if (!open_both(rel, rdwr ? O_RDWR : O_RDONLY, 0))
		return;
	fstat_both("fstat before read", fst);
	if (use_read) {
		BOTH(r, CMP_EXACT, "lseek", lseek(G.fd[s], (off_t)off, SEEK_SET));
		BOTH(r, CMP_EXACT, "read", read(G.fd[s], G.buf[s], len));
	} else {
		BOTH(r, CMP_EXACT, "pread", pread(G.fd[s], G.buf[s], len, (off_t)off));
	}
	if (r[0].ret > 0)
		cmp_bytes("read", G.buf[0], G.buf[1], (size_t)r[0].ret, off);
	close_both();
}

static void op_truncate(void)
{
	static const long long fixed[] = { 0, 1, 4095, 4096, 4097, 65535, 65536,
					   65537, 131071, 1000000 };
	char rel[RELMAX], p[2][PATHBUF];
	struct stat st;
	struct res r[2];
	long long size, ns;
	int r100 = (int)rnd(100), via_fd = chance(30);

	pick_target(rel, T_REG, 88, 6);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	if (G.total_size > SIZE_BUDGET / 2 && chance(50))
		ns = (long long)rnd(64 * KIB);
	else if (r100 < 35)
		ns = fixed[rnd(sizeof(fixed) / sizeof(fixed[0]))];
	else if (r100 < 60)
		ns = size + (long long)rnd(16384) - 8192;
	else if (r100 < 85)
		ns = (long long)rnd((uint64_t)size / 2 + 1);
	else if (r100 < 96)
		ns = (long long)rnd((uint64_t)(2 * size + 65536));
	else if (r100 < 99)
		ns = (long long)rnd(FAR_MAX);
	else
		ns = -1 - (long long)rnd(4096);     /* EINVAL */
	if (ns < 0 && r100 < 99)
		ns = 0;
	if (ns > size && G.total_size - size + ns > SIZE_BUDGET)
		ns = (long long)rnd((uint64_t)size + 1);
	setdesc("truncate %s to %lld via %s", rel, ns, via_fd ? "ftruncate" : "truncate");
	if (via_fd) {
		int flags = chance(90) ? O_WRONLY : O_RDONLY;   /* RDONLY: EINVAL */

		if (!open_both(rel, flags, 0))
			return;
		BOTH(r, CMP_EXACT, "ftruncate", ftruncate(G.fd[s], (off_t)ns));
		struct stat fst[2];
		fstat_both("fstat after ftruncate", fst);
		mark_fd(G.fd[1], ns < size ? ns : size, (ns < size ? ns : size) + 1);
		close_both();
	} else {
		full2(rel, p);
		BOTH(r, CMP_EXACT, "truncate", truncate(p[s], (off_t)ns));
		mark_rel(rel, 1, ns < size ? ns : size, (ns < size ? ns : size) + 1);
	}
}

static void op_rename(void)
{
	char src[RELMAX], dst[RELMAX], p[2][PATHBUF], q[2][PATHBUF];
	struct res r[2];
	struct stat st;
	unsigned flags = 0;
	int r100 = (int)rnd(100), stype;
	const char *fname;

	if (r100 < 70)
		flags = 0;
	else if (r100 < 84)
		flags = RENAME_NOREPLACE;
	else if (r100 < 98)
		flags = RENAME_EXCHANGE;
	else
		flags = RENAME_NOREPLACE | RENAME_EXCHANGE;    /* EINVAL */
	fname = flags == 0 ? "rename" : flags == RENAME_NOREPLACE ? "rename(NOREPLACE)" :
		flags == RENAME_EXCHANGE ? "rename(EXCHANGE)" : "rename(NOREPLACE|EXCHANGE)";
	if (chance(88))
		stype = pick_path(src, T_ANY);
	else {
		rand_path(src, chance(30));
		stype = b_lstat(src, &st) == 0 ? type_of(st.st_mode) : 0;
	}
	r100 = (int)rnd(100);
	if (r100 < 35 || ((flags & RENAME_EXCHANGE) && r100 < 70))
		pick_path(dst, T_ANY);
	else if (r100 < 40)
		snprintf(dst, sizeof(dst), "%s", src);
	else if (r100 < 46) {
		if (!join(dst, sizeof(dst), src, rand_leaf(stype == T_DIR)))
			snprintf(dst, sizeof(dst), "%s", src);
	} else
		rand_path(dst, stype == T_DIR);
	setdesc("%s %s -> %s", fname, src, dst);
	mark_rel(src, 0, 0, MARGIN);
	mark_rel(dst, 0, 0, MARGIN);
	full2(src, p);
	full2(dst, q);
	BOTH(r, CMP_EXACT, fname,
	     syscall(SYS_renameat2, AT_FDCWD, p[s], AT_FDCWD, q[s], flags));
}

static void op_link(void)
{
	char src[RELMAX], dst[RELMAX], p[2][PATHBUF], q[2][PATHBUF];
	struct res r[2];

	pick_target(src, T_REG, 80, 12);
	if (chance(75))
		rand_path(dst, 0);
	else
		pick_path(dst, T_ANY);
	setdesc("link %s -> %s", src, dst);
	full2(src, p);
	full2(dst, q);
	BOTH(r, CMP_EXACT, "link", link(p[s], q[s]));
	mark_rel(src, 0, 0, MARGIN);
}

static void op_unlink(void)
{
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];

	pick_target(rel, T_REG | T_LNK, 78, 8);
	setdesc("unlink %s", rel);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "unlink", unlink(p[s]));
}

static void op_mkdir(void)
{
	char rel[RELMAX], parent[RELMAX], p[2][PATHBUF];
	struct res r[2];
	mode_t mode = 0700 | (mode_t)rnd(0100);

	if (chance(8)) {
		pick_path(rel, T_ANY);
	} else {
		rand_parent(parent, MAX_MKDIR_DEPTH);
		if (!join(rel, sizeof(rel), parent, rand_leaf(1)))
			snprintf(rel, sizeof(rel), "%s", dnames[0]);
	}
	setdesc("mkdir %s mode %04o", rel, (unsigned)mode);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "mkdir", mkdir(p[s], mode));
}

static void op_rmdir(void)
{
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];
	int r100 = (int)rnd(100);

	if (r100 < 40) {            /* prefer empty directories */
		long n = 0;

		for (size_t i = 0; i < G.nents; i++)
			n += G.ents[i].type == T_DIR && G.ents[i].empty;
		if (n) {
			long k = (long)rnd((uint64_t)n);
			for (size_t i = 0; i < G.nents; i++) {
				if (G.ents[i].type == T_DIR && G.ents[i].empty && k-- == 0) {
					snprintf(rel, sizeof(rel), "%s", G.ents[i].path);
					break;
				}
			}
		} else {
			pick_path(rel, T_DIR);
		}
	} else if (r100 < 75) {
		pick_path(rel, T_DIR);
	} else if (r100 < 90) {
		pick_path(rel, T_REG | T_LNK);
	} else {
		rand_path(rel, 1);
	}
	setdesc("rmdir %s", rel);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "rmdir", rmdir(p[s]));
}

/* Symlink targets never contain "..", and absolute ones name a directory
 * that does not exist, so following a link never leaves the tree. */
static void rand_target(char *out, size_t n, const char *linkrel)
{
	int r = (int)rnd(100);
	char parent[RELMAX];
	const char *slash;

	snprintf(parent, sizeof(parent), "%s", linkrel);
	slash = strrchr(parent, '/');
	if (slash)
		parent[slash - parent] = 0;
	else
		parent[0] = 0;
	if (r < 40) {           /* an existing entry below the link's directory */
		size_t plen = strlen(parent);
		long cnt = 0;

		for (size_t i = 0; i < G.nents; i++)
			if (!plen || (!strncmp(G.ents[i].path, parent, plen) &&
				      G.ents[i].path[plen] == '/'))
				cnt++;
		if (cnt) {
			long k = (long)rnd((uint64_t)cnt);
			for (size_t i = 0; i < G.nents; i++) {
				if (!plen || (!strncmp(G.ents[i].path, parent, plen) &&
					      G.ents[i].path[plen] == '/')) {
					if (k-- == 0) {
						snprintf(out, n, "%s", G.ents[i].path + (plen ? plen + 1 : 0));
						return;
					}
				}
			}
		}
	}
	if (r < 65) {
		int comps = (int)rnd(3);
		out[0] = 0;
		for (int i = 0; i < comps; i++) {
			size_t l = strlen(out);
			snprintf(out + l, n - l, "%s/", dnames[rnd(NDNAMES)]);
		}
		size_t l = strlen(out);
		snprintf(out + l, n - l, "%s", chance(80) ? fnames[rnd(NFNAMES)] : dnames[rnd(NDNAMES)]);
	} else if (r < 72) {
		snprintf(out, n, "%s", chance(50) ? "." : "./f0");
	} else if (r < 80) {
		snprintf(out, n, "/nonexistent-difftest-dir/%s", fnames[rnd(NFNAMES)]);
	} else if (r < 88) {
		static const char *const weird[] = { "with space", "tab\there", "f1/",
						     "d0//f2", "-dash", "\xc3\xa9t\xc3\xa9" };
		snprintf(out, n, "%s", weird[rnd(sizeof(weird) / sizeof(weird[0]))]);
	} else if (r < 93) {
		snprintf(out, n, "%s", G.longtarget);
	} else if (r < 96) {
		out[0] = 0;             /* ENOENT */
	} else {                        /* a link to itself: ELOOP when followed */
		slash = strrchr(linkrel, '/');
		snprintf(out, n, "%s", slash ? slash + 1 : linkrel);
	}
}

static void op_symlink(void)
{
	char rel[RELMAX], target[RELMAX], p[2][PATHBUF];
	struct res r[2];

	if (chance(10))
		pick_path(rel, T_ANY);
	else
		rand_path(rel, 0);
	rand_target(target, sizeof(target), rel);
	setdesc("symlink %s -> \"%s\"", rel, target);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "symlink", symlink(target, p[s]));
}

static void op_readlink(void)
{
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];
	size_t bufsz = chance(10) ? 1 + (size_t)rnd(8) : PATHBUF;

	pick_target(rel, T_LNK, 75, 15);
	setdesc("readlink %s bufsize %zu", rel, bufsz);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "readlink", readlink(p[s], (char *)G.buf[s], bufsz));
	if (r[0].ret > 0)
		cmp_bytes("readlink", G.buf[0], G.buf[1], (size_t)r[0].ret, 0);
}

static void op_chmod(void)
{
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];
	struct stat st;
	mode_t mode;

	pick_target(rel, T_ANY, 90, 0);
	/* keep u+rw on files and u+rwx on directories so the trees stay
	 * readable for the checker even when not running as root */
	if (b_stat(rel, &st) == 0 && S_ISDIR(st.st_mode))
		mode = 0700 | (mode_t)rnd(0100);
	else
		mode = 0600 | (mode_t)rnd(0200);
	setdesc("chmod %s %04o", rel, (unsigned)mode);
	full2(rel, p);
	BOTH(r, CMP_EXACT, "chmod", chmod(p[s], mode));
}

/* user.* names of the list in BUF (LEN bytes), sorted; returns count */
static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int user_names(char *buf, long len, const char **names, int max)
{
	int n = 0;

	for (long i = 0; i < len && n < max;) {
		const char *nm = buf + i;
		size_t l = strnlen(nm, (size_t)(len - i));

		if (!strncmp(nm, "user.", 5))
			names[n++] = nm;
		i += (long)l + 1;
	}
	qsort(names, (size_t)n, sizeof(*names), cmp_cstr);
	return n;
}

/* bytes the user.* xattrs of the reference object take (rough ext4 cost) */
static long xattr_usage(const char *bpath, const char *except)
{
	char *list = (char *)G.cbuf[1];
	const char *names[256];
	long len = llistxattr(bpath, list, XBUF), total = 0;
	int n;

	if (len <= 0)
		return 0;
	n = user_names(list, len, names, 256);
	for (int i = 0; i < n; i++) {
		if (!strcmp(names[i], except))
			continue;
		long v = lgetxattr(bpath, names[i], NULL, 0);
		total += (long)strlen(names[i]) + (v > 0 ? v : 0) + 16;
	}
	return total;
}

static void cmp_xattr_lists(const char *what, long la, long lb)
{
	const char *na[256], *nb[256];
	int ca = user_names((char *)G.buf[0], la, na, 256);
	int cb = user_names((char *)G.buf[1], lb, nb, 256);

	for (int i = 0; i < ca || i < cb; i++) {
		if (i >= ca || i >= cb || strcmp(na[i], nb[i])) {
			detail("  A has %d user.* names, B has %d\n", ca, cb);
			fail("%s: user.* xattr names differ (A %s, B %s)", what,
			     i < ca ? na[i] : "(none)", i < cb ? nb[i] : "(none)");
		}
	}
}

static void op_xattr(void)
{
	const char *xnames[] = { "user.a", "user.b", "user.difftest.c", G.longname };
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];
	struct stat st;
	int sub = (int)rnd(100);
	const char *name = xnames[rnd(sizeof(xnames) / sizeof(xnames[0]))];

	pick_target(rel, T_REG | T_DIR, 88, 0);
	if (b_lstat(rel, &st) == 0 && S_ISLNK(st.st_mode)) {
		setdesc("xattr %s: skipped (symlink)", rel);
		return;
	}
	full2(rel, p);
	if (sub < 40) {
		int fr = (int)rnd(100);
		int flags = fr < 60 ? 0 : fr < 80 ? XATTR_CREATE : XATTR_REPLACE;
		long len = chance(15) ? 0 : 1 + (long)rnd(2000);
		long room = XATTR_BUDGET - xattr_usage(p[1], name) - (long)strlen(name) - 16;

		if (len > room)
			len = room > 0 ? room : 0;
		fill_random(G.data, (size_t)len);
		setdesc("setxattr %s %s len %ld flags %s", rel, name, len,
			flags == 0 ? "0" : flags == XATTR_CREATE ? "XATTR_CREATE" : "XATTR_REPLACE");
		BOTH(r, CMP_EXACT, "setxattr", lsetxattr(p[s], name, G.data, (size_t)len, flags));
	} else if (sub < 70) {
		int br = (int)rnd(100);
		size_t bsz = br < 80 ? XBUF : br < 90 ? 0 : (size_t)rnd(16);

		setdesc("getxattr %s %s bufsize %zu", rel, name, bsz);
		BOTH(r, CMP_EXACT, "getxattr",
		     lgetxattr(p[s], name, bsz ? G.buf[s] : NULL, bsz));
		if (bsz && r[0].ret > 0)
			cmp_bytes("getxattr value", G.buf[0], G.buf[1], (size_t)r[0].ret, 0);
	} else if (sub < 85) {
		setdesc("removexattr %s %s", rel, name);
		BOTH(r, CMP_EXACT, "removexattr", lremovexattr(p[s], name));
	} else {
		setdesc("listxattr %s", rel);
		/* other namespaces (security.*, trusted.*) may differ: sign only */
		BOTH(r, CMP_SIGN, "listxattr", llistxattr(p[s], (char *)G.buf[s], XBUF));
		if (r[0].ret >= 0)
			cmp_xattr_lists("listxattr", r[0].ret, r[1].ret);
	}
}

static void op_unlinked(void)
{
	char rel[RELMAX], p[2][PATHBUF];
	struct res r[2];
	struct stat st, fst[2];
	long long size, off;
	size_t len;
	int creat = chance(20);

	if (creat)
		rand_path(rel, 0);
	else
		pick_target(rel, T_REG, 92, 0);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	len = rand_len(16 * KIB);
	off = rand_offset(size, len, 0);
	setdesc("open-unlink-use %s%s: pwrite off %lld len %zu", rel,
		creat ? " (O_CREAT)" : "", off, len);
	if (!open_both(rel, O_RDWR | (creat ? O_CREAT : 0), 0640))
		return;
	full2(rel, p);
	BOTH(r, CMP_EXACT, "unlink", unlink(p[s]));
	fill_random(G.data, len);
	BOTH(r, CMP_EXACT, "pwrite", pwrite(G.fd[s], G.data, len, (off_t)off));
	fstat_both("fstat of unlinked file", fst);
	long long nsize = fst[1].st_size;
	long long roff = (long long)rnd((uint64_t)nsize + 1);
	size_t rlen = rand_len(32 * KIB);
	BOTH(r, CMP_EXACT, "pread", pread(G.fd[s], G.buf[s], rlen, (off_t)roff));
	if (r[0].ret > 0)
		cmp_bytes("pread of unlinked file", G.buf[0], G.buf[1], (size_t)r[0].ret, roff);
	long long lo = off < size ? off : size;
	if (chance(30)) {
		long long ns = (long long)rnd((uint64_t)nsize + 8192);
		BOTH(r, CMP_EXACT, "ftruncate", ftruncate(G.fd[s], (off_t)ns));
		fstat_both("fstat after ftruncate of unlinked file", fst);
		if (ns < lo)
			lo = ns;
	}
	BOTH(r, CMP_EXACT, "fsync", fsync(G.fd[s]));
	/* other hard links may still show the data */
	mark_fd(G.fd[1], lo, TO_EOF);
	close_both();
}

static void op_fsync(void)
{
	char rel[RELMAX];
	struct res r[2];
	int r100 = (int)rnd(100), data = chance(30), flags;

	if (r100 < 80)
		pick_path(rel, T_REG);
	else if (r100 < 92)
		pick_path(rel, T_DIR);
	else
		rand_path(rel, 0);
	flags = chance(50) ? O_RDONLY : O_WRONLY;
	setdesc("%s %s (%s)", data ? "fdatasync" : "fsync", rel,
		flags == O_RDONLY ? "O_RDONLY" : "O_WRONLY");
	if (!open_both(rel, flags, 0))
		return;
	if (data)
		BOTH(r, CMP_EXACT, "fdatasync", fdatasync(G.fd[s]));
	else
		BOTH(r, CMP_EXACT, "fsync", fsync(G.fd[s]));
	close_both();
}

static void op_mmap(void)
{
	char rel[RELMAX];
	struct stat fst[2];
	struct res r[2];
	unsigned char *map[2] = { NULL, NULL };
	long n = 0, k;
	long long size = 0, off;
	size_t len;

	for (size_t i = 0; i < G.nents; i++)
		n += G.ents[i].type == T_REG && G.ents[i].size > 0;
	if (n == 0) {
		setdesc("mmap: skipped (no non-empty file)");
		return;
	}
	k = (long)rnd((uint64_t)n);
	for (size_t i = 0; i < G.nents; i++) {
		if (G.ents[i].type == T_REG && G.ents[i].size > 0 && k-- == 0) {
			snprintf(rel, sizeof(rel), "%s", G.ents[i].path);
			size = G.ents[i].size;
			break;
		}
	}
	/* choose in 4 KiB units so the PRNG stream does not depend on the
	 * machine's page size, then align down to the real page size */
	off = (long long)rnd((uint64_t)((size - 1) / 4096 + 1)) * 4096;
	off -= off % G.pagesize;
	len = (size_t)(size - off);
	if (len > 256 * KIB)
		len = 256 * KIB;
	len = 1 + (size_t)rnd(len);
	setdesc("mmap %s MAP_SHARED off %lld len %zu, modify, msync, munmap", rel, off, len);
	if (!open_both(rel, O_RDWR, 0))
		return;
	fstat_both("fstat before mmap", fst);
	BOTH(r, CMP_SIGN, "mmap",
	     (map[s] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, G.fd[s],
			    (off_t)off)) == MAP_FAILED ? -1 : 0);
	if (r[0].ret < 0) {
		close_both();
		return;
	}
	cmp_bytes("mapped data before modification", map[0], map[1], len, off);
	int spans = 1 + (int)rnd(4);
	for (int i = 0; i < spans; i++) {
		size_t so = (size_t)rnd(len), sl = 1 + (size_t)rnd(4096);

		if (sl > len - so)
			sl = len - so;
		fill_random(G.data, sl);
		memcpy(map[0] + so, G.data, sl);
		memcpy(map[1] + so, G.data, sl);
	}
	BOTH(r, CMP_EXACT, "msync", msync(map[s], len, MS_SYNC));
	BOTH(r, CMP_EXACT, "munmap", munmap(map[s], len));
	BOTH(r, CMP_EXACT, "pread after munmap", pread(G.fd[s], G.buf[s], len, (off_t)off));
	cmp_bytes("pread after mmap write", G.buf[0], G.buf[1], len, off);
	mark_fd(G.fd[1], off, off + (long long)len);
	close_both();
}

/* ------------------------------------------------------------------ */
/* whole-tree comparison                                               */

static ssize_t read_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* fallocate: preallocate (mode 0, KEEP_SIZE), punch, zero a range; also
 * the refusals both sides share (PUNCH_HOLE without KEEP_SIZE, length 0,
 * a read-only descriptor).  COLLAPSE/INSERT_RANGE are left out: ext4 has
 * them, custodyfs answers EOPNOTSUPP (checked by test_fileapi.sh). */
static void op_falloc(void)
{
	char rel[RELMAX];
	struct stat st, fst[2];
	struct res r[2];
	long long size, off;
	size_t len;
	int r100 = (int)rnd(100), mode, flags, grows;

	mode = r100 < 15 ? 0
	     : r100 < 25 ? FALLOC_FL_KEEP_SIZE
	     : r100 < 60 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	     : r100 < 80 ? FALLOC_FL_ZERO_RANGE
	     : r100 < 95 ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
	     : FALLOC_FL_PUNCH_HOLE;                     /* EOPNOTSUPP */
	grows = !(mode & FALLOC_FL_KEEP_SIZE);
	pick_target(rel, T_REG, 90, 5);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	len = chance(3) ? 0 : rand_len(chance(20) ? 1024 * KIB : 64 * KIB);
	off = rand_offset(size, len, grows);
	flags = chance(4) ? O_RDONLY : chance(50) ? O_RDWR : O_WRONLY;
	setdesc("fallocate %s mode %s%s%s off %lld len %zu (%s)", rel,
		mode == 0 ? "0" : "", mode & FALLOC_FL_PUNCH_HOLE ? "PUNCH_HOLE" :
		mode & FALLOC_FL_ZERO_RANGE ? "ZERO_RANGE" : "",
		mode & FALLOC_FL_KEEP_SIZE ? "|KEEP_SIZE" : "", off, len,
		flags == O_RDONLY ? "O_RDONLY" : "writable");
	if (!open_both(rel, flags, 0))
		return;
	BOTH(r, CMP_EXACT, "fallocate", fallocate(G.fd[s], mode, (off_t)off,
						   (off_t)len));
	fstat_both("fstat after fallocate", fst);
	if (r[1].ret == 0) {
		if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
			mark_fd(G.fd[1], off < size ? off : size, off + (long long)len);
		if (fst[1].st_size > size)   /* grown: the new part reads zeros */
			mark_fd(G.fd[1], size, fst[1].st_size);
	}
	close_both();
}

/* Is B's [from, to) all zeros (read through fd, in IOBUF pieces)? */
static int b_zero(int fd, long long from, long long to)
{
	while (from < to) {
		size_t want = to - from > IOBUF ? IOBUF : (size_t)(to - from);
		ssize_t n = read_full(fd, G.buf[1], want, (off_t)from);

		if (n <= 0)
			return n == 0; /* EOF: nothing more to hold data */
		for (ssize_t i = 0; i < n; i++)
			if (G.buf[1][i])
				return 0;
		from += n;
	}
	return 1;
}

/* SEEK_DATA / SEEK_HOLE.  Filesystems may place holes differently (a
 * block of zeros is data on ext4 and may be a hole elsewhere; the generic
 * answer calls everything data), so A's answer is checked against the
 * content both sides hold (the trees are compared anyway): a range
 * reported as a hole must read as zeros, an answer must lie in [off, EOF],
 * ENXIO exactly at or past EOF (and for SEEK_DATA when only zeros follow). */
static void op_seek(void)
{
	char rel[RELMAX];
	struct stat st;
	struct res r[2];
	long long size, off, a;
	int data = chance(50), r100 = (int)rnd(100), flags;

	pick_target(rel, T_REG, 92, 4);
	size = b_stat(rel, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	if (r100 < 8)
		off = size;
	else if (r100 < 14)
		off = size + (long long)rnd(100000);
	else if (r100 < 16)
		off = -1 - (long long)rnd(10);
	else if (r100 < 40)
		off = (long long)rnd((uint64_t)size / 4096 + 1) * 4096 +
		      (long long)rnd(3) - 1;
	else
		off = (long long)rnd((uint64_t)size + 1);
	flags = chance(70) ? O_RDONLY : O_RDWR;     /* RDWR: maybe generic */
	setdesc("lseek %s %s from %lld (size %lld, %s)", rel,
		data ? "SEEK_DATA" : "SEEK_HOLE", off, size,
		flags == O_RDONLY ? "O_RDONLY" : "O_RDWR");
	if (!open_both(rel, flags, 0))
		return;
	if (fstat(G.fd[1], &st) || !S_ISREG(st.st_mode)) {
		close_both(); /* directories seek by their own rules */
		return;
	}
	for (int s = 0; s < 2; s++) {
		errno = 0;
		r[s].ret = (long)lseek(G.fd[s], (off_t)off, data ? SEEK_DATA : SEEK_HOLE);
		r[s].err = r[s].ret < 0 ? errno : 0;
	}
	if (off < 0 || off >= size) {
		compare_res(r, CMP_EXACT, "lseek at or past EOF");
		close_both();
		return;
	}
	a = r[0].ret;
	if (a < 0) {
		if (!(data && r[0].err == ENXIO && b_zero(G.fd[1], off, size)))
			fail("lseek: A failed with %s where the file has data after %lld",
			     errname(r[0].err), off);
	} else if (a < off || a > size || (data && a == size)) {
		fail("lseek: A answered %lld, outside [%lld, %lld%s", a, off, size,
		     data ? ")" : "]");
	} else if (data && !b_zero(G.fd[1], off, a)) {
		fail("lseek SEEK_DATA: A skipped data in [%lld, %lld)", off, a);
	} else if (!data && a < size) {
		long long end = (a / 4096 + 1) * 4096;
		if (end > size)
			end = size;
		if (!b_zero(G.fd[1], a, end))
			fail("lseek SEEK_HOLE: A reports a hole at %lld over data", a);
	}
	if (a >= 0 && lseek(G.fd[0], 0, SEEK_CUR) != a)
		fail("lseek: A's file offset is not at its answer %lld", a);
	close_both();
}

/* copy_file_range between two regular files (sometimes the same one):
 * the result, the target's size and content as read + write would. */
static void op_copy(void)
{
	char src[RELMAX], dst[RELMAX], p[2][PATHBUF];
	struct stat st, fst[2];
	struct res r[2];
	long long ssize, dsize, oi, oo;
	loff_t li[2], lo[2];
	size_t len;
	int dfd[2] = { -1, -1 }, fin, fout, r100 = (int)rnd(100), use_pos, flags;

	pick_target(src, T_REG, 92, 4);
	if (chance(20))
		snprintf(dst, sizeof(dst), "%s", src);
	else
		pick_target(dst, T_REG, 85, 10);
	ssize = b_stat(src, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	dsize = b_stat(dst, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
	len = rand_len(chance(15) ? 2048 * KIB : 128 * KIB);
	oi = chance(10) ? ssize + (long long)rnd(5000) : rand_offset(ssize, len, 0);
	oo = rand_offset(dsize, len, 1);
	use_pos = chance(85);
	if (!use_pos)
		oi = oo = 0;
	fin = chance(3) ? O_WRONLY : chance(80) ? O_RDONLY : O_RDWR;
	fout = r100 < 4 ? O_RDONLY : r100 < 8 ? O_WRONLY | O_APPEND
	     : r100 < 25 ? O_WRONLY | O_CREAT : chance(50) ? O_RDWR : O_WRONLY;
	flags = chance(2) ? 1 : 0;                   /* EINVAL */
	setdesc("copy_file_range %s off %lld -> %s off %lld len %zu%s%s", src, oi,
		dst, oo, len, use_pos ? "" : " (file offsets)", flags ? " flags 1" : "");
	if (!open_both(src, fin, 0))
		return;
	full2(dst, p);
	BOTH(r, CMP_SIGN, "open target", (dfd[s] = open(p[s], fout | O_CLOEXEC, 0644)));
	if (r[0].ret < 0) {
		close_both();
		return;
	}
	for (int s = 0; s < 2; s++) {
		li[s] = oi;
		lo[s] = oo;
	}
	BOTH(r, CMP_EXACT, "copy_file_range",
	     copy_file_range(G.fd[s], use_pos ? &li[s] : NULL, dfd[s],
			     use_pos ? &lo[s] : NULL, len, (unsigned)flags));
	if (use_pos && r[1].ret >= 0 && (li[0] != li[1] || lo[0] != lo[1]))
		fail("copy_file_range: offsets moved differently (A %lld/%lld, B %lld/%lld)",
		     (long long)li[0], (long long)lo[0], (long long)li[1], (long long)lo[1]);
	for (int s = 0; s < 2; s++)
		if (fstat(dfd[s], &fst[s]))
			fail("fstat of the target failed: %s", strerror(errno));
	cmp_stat("fstat of the copy's target", &fst[0], &fst[1]);
	if (r[1].ret > 0) {
		mark_fd(dfd[1], oo, oo + r[1].ret);
		if (oo > dsize)
			mark_fd(dfd[1], dsize, oo);
	}
	if (fout & O_CREAT)
		mark_fd(dfd[1], 0, 1);
	BOTH(r, CMP_EXACT, "close target", close_keep_errno(&dfd[s]));
	close_both();
}

/* Compare bytes [from, to) of the open files G.cfd[]; TO may lie past EOF. */
static void cmp_span(const char *rel, long long from, long long to)
{
	long long off = from;

	while (off < to) {
		size_t want = to - off < CMPBUF ? (size_t)(to - off) : CMPBUF;
		ssize_t a = read_full(G.cfd[0], G.cbuf[0], want, (off_t)off);
		ssize_t b = read_full(G.cfd[1], G.cbuf[1], want, (off_t)off);

		if (a < 0)
			fail("%s: read error on A at offset %lld: %s", rel, off, strerror(errno));
		if (b < 0)
			fail("%s: read error on B at offset %lld: %s", rel, off, strerror(errno));
		if (a != b) {
			detail("  reading %zu bytes at %lld: A got %zd, B got %zd\n", want, off, a, b);
			fail("%s: content length differs (A %lld, B %lld bytes)", rel,
			     off + a, off + b);
		}
		if (memcmp(G.cbuf[0], G.cbuf[1], (size_t)a)) {
			for (ssize_t i = 0; i < a; i++) {
				if (G.cbuf[0][i] != G.cbuf[1][i]) {
					detail("  byte at %lld: A 0x%02x, B 0x%02x\n", off + i,
					       G.cbuf[0][i], G.cbuf[1][i]);
					fail("%s: content differs at offset %lld", rel, off + i);
				}
			}
		}
		off += a;
		if ((size_t)a < want)
			break;
	}
}

/* Compare file contents: everything on full checks and for small files,
 * otherwise the ranges changed since the last check (plus a margin for
 * neighbouring-block damage) and the tail; always check EOF lies at SIZE. */
static void cmp_content(const char *rel, const char *pa, const char *pb,
			const struct stat *sb)
{
	long long size = sb->st_size;
	const struct dirty *d;
	size_t di = 0;
	unsigned char c;

	if (!G.full_content && size > SMALL_FILE && !G.heads_all && !next_dirty(sb, &di))
		return;
	G.cfd[0] = open(pa, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (G.cfd[0] < 0)
		fail("%s: cannot open on A for comparison: %s", rel, strerror(errno));
	G.cfd[1] = open(pb, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (G.cfd[1] < 0)
		fail("%s: cannot open on B (reference) for comparison: %s", rel, strerror(errno));
	if (G.full_content || size <= SMALL_FILE) {
		cmp_span(rel, 0, size);
	} else {
		if (G.heads_all)
			cmp_span(rel, 0, MARGIN);
		di = 0;
		while ((d = next_dirty(sb, &di)) != NULL) {
			long long lo = d->lo > MARGIN ? (d->lo - MARGIN) & ~4095LL : 0;
			long long hi = d->hi < size - MARGIN ? d->hi + MARGIN : size;

			cmp_span(rel, lo, hi);
		}
		cmp_span(rel, size > MARGIN ? size - MARGIN : 0, size);
	}
	ssize_t a = pread(G.cfd[0], &c, 1, (off_t)size);
	if (a != 0)
		fail("%s: %s at st_size %lld (expected EOF)", rel,
		     a < 0 ? strerror(errno) : "A has data", size);
	close_fd(&G.cfd[0]);
	close_fd(&G.cfd[1]);
}

static void cmp_xattrs(const char *rel, const char *pa, const char *pb)
{
	long la = llistxattr(pa, (char *)G.buf[0], XBUF);
	long lb = llistxattr(pb, (char *)G.buf[1], XBUF);
	const char *names[256];
	int n;

	if (la < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		la = 0;
	if (lb < 0)
		lb = 0;
	if (la < 0)
		fail("%s: listxattr on A failed: %s", rel, strerror(errno));
	cmp_xattr_lists(rel, la, lb);
	n = user_names((char *)G.buf[1], lb, names, 256);
	for (int i = 0; i < n; i++) {
		long va = lgetxattr(pa, names[i], G.cbuf[0], XBUF);
		int ea = errno;
		long vb = lgetxattr(pb, names[i], G.cbuf[1], XBUF);

		if (va < 0)
			fail("%s: getxattr %s on A failed: %s", rel, names[i], strerror(ea));
		if (vb < 0)
			fail("%s: getxattr %s on B failed: %s", rel, names[i], strerror(errno));
		if (va != vb)
			fail("%s: xattr %s length differs (A %ld, B %ld)", rel, names[i], va, vb);
		if (memcmp(G.cbuf[0], G.cbuf[1], (size_t)va)) {
			char what[RELMAX + 300];

			snprintf(what, sizeof(what), "%s: xattr %s", rel, names[i]);
			cmp_bytes(what, G.cbuf[0], G.cbuf[1], (size_t)va, 0);
		}
	}
}

static int dtype_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	default: return DT_UNKNOWN;
	}
}

static void cmp_dir(const char *rel);

static void cmp_entry(const char *rel, unsigned char dtype_a)
{
	char pa[PATHBUF], pb[PATHBUF];
	struct stat sa, sb;

	full(0, rel, pa);
	full(1, rel, pb);
	if (lstat(pa, &sa) < 0)
		fail("%s: listed but lstat on A fails: %s", rel, strerror(errno));
	if (lstat(pb, &sb) < 0)
		fail("%s: lstat on B (reference) fails: %s", rel, strerror(errno));
	cmp_stat(rel, &sa, &sb);
	if (dtype_a != DT_UNKNOWN && dtype_a != dtype_of(sa.st_mode))
		fail("%s: readdir d_type %d on A does not match lstat type %s", rel,
		     dtype_a, type_name(sa.st_mode));
	if (S_ISLNK(sb.st_mode)) {
		ssize_t la = readlink(pa, (char *)G.buf[0], PATHBUF);
		ssize_t lb = readlink(pb, (char *)G.buf[1], PATHBUF);

		if (la < 0)
			fail("%s: readlink on A fails: %s", rel, strerror(errno));
		if (la != lb || memcmp(G.buf[0], G.buf[1], (size_t)la))
			fail("%s: symlink target differs (A \"%.*s\", B \"%.*s\")", rel,
			     (int)la, (char *)G.buf[0], (int)(lb > 0 ? lb : 0), (char *)G.buf[1]);
		return;         /* user.* xattrs cannot exist on symlinks */
	}
	if (S_ISREG(sb.st_mode))
		cmp_content(rel, pa, pb, &sb);
	cmp_xattrs(rel, pa, pb);
	if (S_ISDIR(sb.st_mode))
		cmp_dir(rel);
}

static void cmp_dir(const char *rel)
{
	char pa[PATHBUF], pb[PATHBUF];
	struct dname *va, *vb;
	long na, nb, i = 0, j = 0;

	full(0, rel, pa);
	full(1, rel, pb);
	na = list_dir(pa, &va);
	if (na < 0)
		fail("%s: cannot list directory on A: %s", rel[0] ? rel : ".", strerror(errno));
	nb = list_dir(pb, &vb);
	if (nb < 0)
		fail("%s: cannot list directory on B: %s", rel[0] ? rel : ".", strerror(errno));
	while (i < na || j < nb) {
		int c = i >= na ? 1 : j >= nb ? -1 : strcmp(va[i].name, vb[j].name);
		char crel[RELMAX];

		if (c)
			fail("%s%s%s exists only in %s", rel, rel[0] ? "/" : "",
			     c < 0 ? va[i].name : vb[j].name, c < 0 ? "A" : "B");
		if (!join(crel, sizeof(crel), rel, va[i].name))
			fail("path too long below %s", rel);
		cmp_entry(crel, va[i].dtype);
		i++;
		j++;
	}
	if (vb)
		release(vb);
	if (va)
		release(va);
}

static void check_trees(int full_content)
{
	G.in_check = 1;
	G.full_content = full_content || G.dirty_all;
	cmp_dir("");
	G.ndirty = 0;
	G.dirty_all = 0;
	G.heads_all = 0;
	G.in_check = 0;
	G.checks++;
}

/* ------------------------------------------------------------------ */
/* fault injection (DIFFTEST_CORRUPT)                                  */

/* Damage A behind the tester's back (DIFFTEST_CORRUPT=K).  Returns 0 while
 * the tree has nothing suitable yet, unless LAST: then K=1,2,4 fall back
 * to K=3 (a stray file), so a mismatch is always provoked. */
static int corrupt_a(int last)
{
	char pa[PATHBUF];
	const struct ent *best = NULL, *any = NULL;
	int fd;

	for (size_t i = 0; i < G.nents; i++) {
		if (G.ents[i].type == T_REG && G.ents[i].size > 0 &&
		    (!best || G.ents[i].size < best->size))
			best = &G.ents[i];
		if (G.ents[i].type != T_LNK && !any)
			any = &G.ents[i];
	}
	if (G.corrupt == 1 && best) {
		unsigned char c;
		long long off = best->size / 2;
		int done = 0;

		full(0, best->path, pa);
		fd = open(pa, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && pread(fd, &c, 1, (off_t)off) == 1) {
			c ^= 0x5a;
			done = pwrite(fd, &c, 1, (off_t)off) == 1;
		}
		if (fd >= 0)
			close(fd);
		if (done) {
			fprintf(stderr, "difftest: DIFFTEST_CORRUPT: flipped byte %lld of A/%s\n",
				off, best->path);
			mark_rel(best->path, 0, off, off + 1);
			return 1;
		}
	}
	if (G.corrupt == 2 && any) {
		struct stat st;

		full(0, any->path, pa);
		if (lstat(pa, &st) == 0 && chmod(pa, (st.st_mode & 07777) ^ 0004) == 0) {
			fprintf(stderr, "difftest: DIFFTEST_CORRUPT: chmod o^r on A/%s\n", any->path);
			return 1;
		}
	}
	if (G.corrupt == 4 && any) {
		full(0, any->path, pa);
		if (lsetxattr(pa, "user.difftest-corrupt", "x", 1, 0) == 0) {
			fprintf(stderr, "difftest: DIFFTEST_CORRUPT: added user.difftest-corrupt to A/%s\n",
				any->path);
			return 1;
		}
	}
	if (G.corrupt != 3 && !last)
		return 0;
	full(0, "difftest-corrupt", pa);
	fd = open(pa, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "difftest: DIFFTEST_CORRUPT: created stray file A/difftest-corrupt\n");
	return 1;
}

/* ------------------------------------------------------------------ */
/* driver                                                              */

static enum optype choose_op(void)
{
	int total = 0, r;

	if (G.nents > TREE_SOFT_MAX && chance(40))
		return chance(70) ? OP_UNLINK : OP_RMDIR;
	if (G.total_size > SIZE_BUDGET && chance(50))
		return OP_TRUNC;
	for (int i = 0; i < OP_COUNT; i++)
		total += op_weight[i];
	for (;;) {
		r = (int)rnd((uint64_t)total);
		for (int i = 0; i < OP_COUNT; i++) {
			if (r < op_weight[i]) {
				if ((i == OP_XATTR && !G.xattr_ok) ||
				    (i == OP_MMAP && G.no_mmap) || G.skip[i])
					break;
				return (enum optype)i;
			}
			r -= op_weight[i];
		}
	}
}

static void run_op(enum optype op)
{
	switch (op) {
	case OP_OPEN: op_open(); break;
	case OP_WRITE: op_write(); break;
	case OP_READ: op_read(); break;
	case OP_TRUNC: op_truncate(); break;
	case OP_RENAME: op_rename(); break;
	case OP_LINK: op_link(); break;
	case OP_UNLINK: op_unlink(); break;
	case OP_MKDIR: op_mkdir(); break;
	case OP_RMDIR: op_rmdir(); break;
	case OP_SYMLINK: op_symlink(); break;
	case OP_READLINK: op_readlink(); break;
	case OP_CHMOD: op_chmod(); break;
	case OP_XATTR: op_xattr(); break;
	case OP_UNLINKED: op_unlinked(); break;
	case OP_FSYNC: op_fsync(); break;
	case OP_MMAP: op_mmap(); break;
	case OP_FALLOC: op_falloc(); break;
	case OP_SEEK: op_seek(); break;
	case OP_COPY: op_copy(); break;
	case OP_COUNT: break;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: difftest [-s SEED] [-n OPS] [-c CHECK_EVERY] [-F FULL_EVERY] [-v] [-M]\n"
		"                DIR_A DIR_B\n"
		"\n"
		"Runs the same seeded random sequence of filesystem operations on DIR_A (the\n"
		"filesystem under test) and DIR_B (a reference directory on ext4/tmpfs), both\n"
		"initially empty, and reports the first difference in results or tree state.\n"
		"\n"
		"  -s SEED         PRNG seed (default: from the clock; always printed)\n"
		"  -n OPS          number of operations (default 3000)\n"
		"  -c CHECK_EVERY  compare the whole trees every N ops and at the end (default 1)\n"
		"  -F FULL_EVERY   every Nth tree check reads all file contents (default %d;\n"
		"                  1 = always); the other checks read files <= 16 KiB whole\n"
		"                  and, of larger files, the last 64 KiB and 64 KiB around\n"
		"                  each range changed since the previous check.  The final\n"
		"                  check always reads everything.\n"
		"  -v              print each operation as it runs\n"
		"  -M              no mmap operations (DIR_A is on a direct-I/O mount, such\n"
		"                  as custodyfs -o exact_reads, where MAP_SHARED gives ENODEV)\n"
		"\n"
		"Exit status: 0 no difference, 1 mismatch, 2 usage or setup error.\n"
		"\n"
		"Environment: DIFFTEST_CORRUPT=K damages DIR_A behind the tester's back just\n"
		"before the first tree check after op %d (or the final check if there are\n"
		"fewer ops), so that a MISMATCH must be reported:\n"
		"K=1 flips a byte of a non-empty file, 2 changes permission bits, 3 creates\n"
		"a stray file, 4 adds a user.* xattr; 1, 2 and 4 wait for a suitable\n"
		"object and fall back to 3 at the last op.  Used to prove the checker fails.\n"
		"DIFFTEST_SKIP=NAME,NAME leaves those operations out (names as in the final\n"
		"count line: fallocate, lseek-data-hole, copy_file_range, mmap, ...).\n",
		DEFAULT_FULL_EVERY, CORRUPT_AT);
}

static int parse_num(const char *s, unsigned long long *out)
{
	char *end;

	if (!s[0] || s[0] == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

static int check_empty_dir(const char *path, struct stat *st)
{
	struct dname *v;
	long n;

	if (stat(path, st) < 0 || !S_ISDIR(st->st_mode)) {
		fprintf(stderr, "difftest: %s is not a directory\n", path);
		return -1;
	}
	n = list_dir(path, &v);
	if (n < 0) {
		fprintf(stderr, "difftest: cannot list %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (v)
		release(v);
	if (n > 0) {
		fprintf(stderr, "difftest: %s is not empty\n", path);
		return -1;
	}
	return 0;
}

/* Does the reference filesystem support user.* xattrs? */
static int probe_xattr(void)
{
	char p[PATHBUF];
	int fd, ok;

	full(1, ".difftest-probe", p);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	close(fd);
	ok = lsetxattr(p, "user.probe", "1", 1, 0) == 0;
	unlink(p);
	return ok;
}

int main(int argc, char **argv)
{
	unsigned long long v;
	struct stat sta, stb;
	struct timespec t0, t1;
	int opt, have_seed = 0;
	const char *env;

	G.nops = 3000;
	G.check_every = 1;
	G.full_every = DEFAULT_FULL_EVERY;
	G.fd[0] = G.fd[1] = G.cfd[0] = G.cfd[1] = -1;
	while ((opt = getopt(argc, argv, "s:n:c:F:vMh")) != -1) {
		switch (opt) {
		case 's':
			if (parse_num(optarg, &G.seed) < 0)
				goto bad;
			have_seed = 1;
			break;
		case 'n':
			if (parse_num(optarg, &v) < 0 || v > 100000000ULL)
				goto bad;
			G.nops = (long)v;
			break;
		case 'c':
			if (parse_num(optarg, &v) < 0 || v < 1 || v > 100000000ULL)
				goto bad;
			G.check_every = (long)v;
			break;
		case 'F':
			if (parse_num(optarg, &v) < 0 || v < 1 || v > 100000000ULL)
				goto bad;
			G.full_every = (long)v;
			break;
		case 'v':
			G.verbose = 1;
			break;
		case 'M':
			G.no_mmap = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	{
		const char *sk = getenv("DIFFTEST_SKIP");
		for (int i = 0; sk && i < OP_COUNT; i++) {
			size_t n = strlen(op_names[i]);
			for (const char *p = sk; (p = strstr(p, op_names[i])); p += n)
				if ((p == sk || p[-1] == ',') && (p[n] == ',' || !p[n]))
					G.skip[i] = 1;
		}
	}
	if (argc - optind != 2)
		goto bad;
	G.root[0] = argv[optind];
	G.root[1] = argv[optind + 1];
	if (strlen(G.root[0]) > PATHBUF - RELMAX - 64 || strlen(G.root[1]) > PATHBUF - RELMAX - 64) {
		fprintf(stderr, "difftest: directory path too long\n");
		return 2;
	}
	env = getenv("DIFFTEST_CORRUPT");
	if (env && env[0]) {
		if (parse_num(env, &v) < 0 || v > 4) {
			fprintf(stderr, "difftest: DIFFTEST_CORRUPT must be 0..4\n");
			return 2;
		}
		G.corrupt = (int)v;
	}
	if (check_empty_dir(G.root[0], &sta) < 0 || check_empty_dir(G.root[1], &stb) < 0)
		return 2;
	if (sta.st_dev == stb.st_dev && sta.st_ino == stb.st_ino) {
		fprintf(stderr, "difftest: DIR_A and DIR_B are the same directory\n");
		return 2;
	}
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec +
			     ((uint64_t)getpid() << 32);
		G.seed = splitmix64(&x) % 1000000000ULL;
	}
	{
		uint64_t x = G.seed;

		G.rng = splitmix64(&x);
		if (!G.rng)
			G.rng = 0x9e3779b97f4a7c15ULL;
	}
	G.pagesize = sysconf(_SC_PAGESIZE);
	if (G.pagesize <= 0)
		G.pagesize = 4096;
	memcpy(G.longname, "user.", 5);
	memset(G.longname + 5, 'x', 200);
	G.longname[205] = 0;
	for (int i = 0; i < 100; i++)
		G.longtarget[i] = (char)('a' + i % 26);
	G.longtarget[100] = 0;
	G.data = malloc(IOBUF);
	for (int s = 0; s < 2; s++) {
		G.buf[s] = malloc(IOBUF);
		G.cbuf[s] = malloc(CMPBUF);
	}
	if (!G.data || !G.buf[0] || !G.buf[1] || !G.cbuf[0] || !G.cbuf[1]) {
		fprintf(stderr, "difftest: out of memory\n");
		cleanup();
		return 2;
	}
	umask(0);
	G.xattr_ok = probe_xattr();
	printf("difftest: seed %llu, %ld ops\n", G.seed, G.nops);
	if (!G.xattr_ok)
		printf("difftest: note: %s has no user.* xattrs, xattr ops disabled\n", G.root[1]);
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	long corrupt_at = G.nops < CORRUPT_AT ? G.nops : CORRUPT_AT;
	for (G.opno = 1; G.opno <= G.nops; G.opno++) {
		enum optype op;

		G.desc[0] = 0;
		G.detail[0] = 0;
		scan_b();
		op = choose_op();
		run_op(op);
		G.counts[op]++;
		if (G.opno % G.check_every == 0 || G.opno == G.nops) {
			/* damage right before a check, so no op can repair it */
			if (G.corrupt && G.opno >= corrupt_at) {
				scan_b();
				if (corrupt_a(G.opno == G.nops))
					G.corrupt = 0;
			}
			int last = G.opno == G.nops;

			check_trees(last || (G.checks + 1) % G.full_every == 0);
		}
	}
	G.opno = G.nops;
	if (G.nops == 0)
		check_trees(1);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	char counts[1024];
	size_t used = 0;
	counts[0] = 0;
	for (int i = 0; i < OP_COUNT && used < sizeof(counts); i++) {
		int n = snprintf(counts + used, sizeof(counts) - used, "%s%s %ld",
				 i ? ", " : "", op_names[i], G.counts[i]);
		if (n > 0)
			used += (size_t)n;
	}
	printf("difftest: ok, seed %llu, %ld ops (%s), %ld tree checks, %.1fs\n",
	       G.seed, G.nops, counts, G.checks,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	cleanup();
	return 0;

bad:
	usage(stderr);
	return 2;
}
