/*
 * test_fs.c - the filesystem layer without FUSE, on a real store in a temp
 * dir built as `custodyctl init` builds one (unlock_create with
 * fs_format): lookups, reads and writes across block boundaries and holes,
 * truncation, rename flags, unlink of an open file, the orphan sweep,
 * xattr flags, group-commit abort paths, a disk full half way, staged reads
 * across key versions and holes, forged, replayed, moved and deleted blocks
 * (EIO: their leaves are not the file's tree's), tampered inode and xattr
 * rows, persistence across reopen, a read-only fs.
 */
#define UNIT_WITH_STORE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bytes.h"
#include "cipher.h"
#include "fs.h"
#include "keyring.h"
#include "audit.h"
#include "store.h"
#include "unit.h"
/* white box: the op bracket, the stages and the store's connection */
#include "../../src/fs/fs_internal.h"
#include "../../src/store/store_internal.h"

#define BS 4096
#define ROOT STORE_ROOT_INO

static const struct fs_ctx ctx = { .pid = 1 };

struct env {
	struct unit_env ue;
	struct unlocked u;
	struct store *s;    /* u.s */
	struct fs *fs;
};

static struct fs_opts opts(const struct env *e)
{
	struct fs_opts o = { 0 };
	o.commit_interval_ms = 1000;
	o.idle_checkpoint_ms = 1000;
	o.store_path = e->ue.store;
	return o;
}

static int env_create(struct env *e)
{
	struct fs_opts o;
	int rc;

	memset(e, 0, sizeof *e);
	if ((rc = unit_env_init(&e->ue, "fs")))
		return rc;
	o = opts(e);
	if ((rc = unit_create(&e->ue, NULL, &e->u, NULL)))
		return rc;
	e->s = e->u.s;
	return fs_new(&e->u, &o, &e->fs);
}

static void env_free(struct env *e)
{
	if (e->fs)
		CHECK_EQ(fs_free(e->fs), 0);
	e->fs = NULL;
	if (e->s)
		unlock_free(&e->u);
	e->s = NULL;
}

/* Detach and close everything, log in again (unlock_store) and attach. */
static int env_reopen_opts(struct env *e, const struct fs_opts *o)
{
	int st;

	env_free(e);
	if ((st = unit_login(&e->ue.o, &e->u)))
		return -EIO;
	e->s = e->u.s;
	return fs_new(&e->u, o, &e->fs);
}

static int env_reopen(struct env *e)
{
	struct fs_opts o = opts(e);
	return env_reopen_opts(e, &o);
}

/* Plain SQL on the store's connection: the file writer's sqlite3. */
static int sql(struct env *e, const char *q)
{
	int rc = sqlite3_exec(e->s->db, q, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", q, sqlite3_errmsg(e->s->db));
	return rc;
}

struct bcopy {
	uint32_t kv;
	size_t n;
};

static int note_block(void *arg, uint32_t kv, const void *data, size_t len)
{
	struct bcopy *b = arg;
	(void)data;
	b->kv = kv;
	b->n = len;
	return 0;
}

/* 0 if block (ino, blk) has a row, -ENOENT if not. */
static int block_row(struct env *e, uint64_t ino, uint64_t blk)
{
	struct bcopy b;
	return store_block_with(e->s, ino, blk, note_block, &b);
}

static void print_problem(void *arg, uint64_t ino, const char *path,
                          const char *what)
{
	(void)arg;
	fprintf(stderr, "  check: inode %llu (%s): %s\n", (unsigned long long)ino,
	        path ? path : "?", what);
}

/* fs_check with every finding printed: the number of problems. */
static int check_fs(struct fs *fs)
{
	struct fs_check_ops ck = { 0 };
	struct fs_check_stats st;


	ck.problem = print_problem;
	return fs_check(fs, &ck, &st);
}

static uint64_t mkfile(struct fs *fs, uint64_t parent, const char *name)
{
	struct fs_attr a;
	int rc = fs_mknod(fs, &ctx, parent, name, S_IFREG | 0644, 0, 0, &a);
	CHECK_EQ(rc, 0);
	return rc ? 0 : a.ino;
}

static int write_all(struct fs *fs, uint64_t ino, const void *buf, size_t n,
                     uint64_t off)
{
	ssize_t w = fs_write(fs, &ctx, ino, buf, n, off);
	return w == (ssize_t)n ? 0 : (w < 0 ? (int)w : -EIO);
}

/* Read the whole file and compare with ref (len bytes). */
static int same_content(struct fs *fs, uint64_t ino, const uint8_t *ref,
                        size_t len)
{
	struct fs_attr a;
	char *buf = malloc(len + 100);
	ssize_t r;
	int ok;

	if (!buf || fs_getattr(fs, &ctx, ino, &a) || a.size != len) {
		free(buf);
		return 0;
	}
	r = fs_read(fs, &ctx, ino, buf, len + 100, 0);
	ok = r == (ssize_t)len && memcmp(buf, ref, len) == 0;
	free(buf);
	return ok;
}

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_rw(struct fs *fs)
{
	enum { LEN = 3 * BS + 1000, HOLE_OFF = 1 << 20 };
	static uint8_t ref[HOLE_OFF + 1];
	static char buf[HOLE_OFF + 100];
	struct fs_attr a;
	uint64_t ino;
	ssize_t r;

	ino = mkfile(fs, ROOT, "data");
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "data", &a), 0);
	CHECK_EQ(a.ino, ino);
	CHECK(S_ISREG(a.mode));
	CHECK_EQ(a.size, 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "nope", &a), -ENOENT);
	CHECK_EQ(fs_mknod(fs, &ctx, ROOT, "data", S_IFREG | 0644, 0, 0, &a), -EEXIST);
	CHECK_EQ(fs_open(fs, &ctx, ino, O_RDWR, NULL), 0);

	/* empty file reads nothing */
	CHECK_EQ(fs_read(fs, &ctx, ino, buf, 100, 0), 0);

	/* unaligned write that spans four blocks */
	cipher_random(ref + 1000, LEN - 1000);
	memset(ref, 0, 1000);
	CHECK_EQ(write_all(fs, ino, ref + 1000, LEN - 1000, 1000), 0);
	CHECK(same_content(fs, ino, ref, LEN));
	/* reads that start and end inside blocks */
	r = fs_read(fs, &ctx, ino, buf, BS, BS - 7);
	CHECK_EQ(r, BS);
	CHECK(memcmp(buf, ref + BS - 7, BS) == 0);
	r = fs_read(fs, &ctx, ino, buf, 10000, LEN - 5); /* short at EOF */
	CHECK_EQ(r, 5);
	CHECK(memcmp(buf, ref + LEN - 5, 5) == 0);
	CHECK_EQ(fs_read(fs, &ctx, ino, buf, 10, LEN), 0);
	CHECK_EQ(fs_read(fs, &ctx, ino, buf, 10, LEN + 12345), 0);

	/* overwrite straddling a boundary, one byte, and a whole block */
	memset(ref + 2 * BS - 3, 'x', 6);
	CHECK_EQ(write_all(fs, ino, ref + 2 * BS - 3, 6, 2 * BS - 3), 0);
	ref[5] = 'y';
	CHECK_EQ(write_all(fs, ino, ref + 5, 1, 5), 0);
	memset(ref + BS, 'z', BS);
	CHECK_EQ(write_all(fs, ino, ref + BS, BS, BS), 0);
	CHECK(same_content(fs, ino, ref, LEN));

	/* a write far past EOF leaves a hole that reads as zeros */
	memset(ref + LEN, 0, HOLE_OFF - LEN);
	ref[HOLE_OFF] = 'E';
	CHECK_EQ(write_all(fs, ino, "E", 1, HOLE_OFF), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, ino, &a), 0);
	CHECK_EQ(a.size, HOLE_OFF + 1);
	/* holes store nothing: far fewer 512-byte units than the size */
	CHECK(a.blocks < (uint64_t)(HOLE_OFF / 512) / 4);
	CHECK(a.blocks >= 5 * BS / 512);
	r = fs_read(fs, &ctx, ino, buf, 3 * BS, HOLE_OFF / 2 - 100);
	CHECK_EQ(r, 3 * BS);
	CHECK(all_zero(buf, 3 * BS));
	CHECK(same_content(fs, ino, ref, HOLE_OFF + 1));

	/* shrink into the middle of a block, then grow: the cut bytes must
	 * come back as zeros, never as old data */
	struct fs_attr set = { 0 };
	set.size = BS + 100;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_SIZE, &a), 0);
	CHECK_EQ(a.size, BS + 100);
	CHECK(same_content(fs, ino, ref, BS + 100));
	set.size = 3 * BS;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_SIZE, &a), 0);
	CHECK_EQ(a.size, 3 * BS);
	memset(ref + BS + 100, 0, 3 * BS - (BS + 100));
	CHECK(same_content(fs, ino, ref, 3 * BS));
	/* a write past EOF inside the last block after a shrink */
	set.size = 10;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_SIZE, &a), 0);
	CHECK_EQ(write_all(fs, ino, "Q", 1, 20), 0);
	memset(ref + 10, 0, 10);
	ref[20] = 'Q';
	CHECK(same_content(fs, ino, ref, 21));
	/* truncate to zero and to a block boundary */
	set.size = 0;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_SIZE, &a), 0);
	CHECK_EQ(a.size, 0);
	CHECK_EQ(a.blocks, 0);
	set.size = 2 * BS;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_SIZE, &a), 0);
	memset(ref, 0, 2 * BS);
	CHECK(same_content(fs, ino, ref, 2 * BS));

	/* O_TRUNC through open */
	CHECK_EQ(write_all(fs, ino, "abc", 3, 0), 0);
	CHECK_EQ(fs_open(fs, &ctx, ino, O_WRONLY | O_TRUNC, NULL), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, ino, &a), 0);
	CHECK_EQ(a.size, 0);
	fs_release(fs, &ctx, ino, 0);

	/* mode change keeps the type */
	set.mode = 0600;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_MODE, &a), 0);
	CHECK_EQ(a.mode, S_IFREG | 0600);

	/* leave known content for the reopen test */
	CHECK_EQ(write_all(fs, ino, "persist me", 10, 0), 0);
	fs_release(fs, &ctx, ino, 0);

	/* errors */
	CHECK_EQ(fs_write(fs, &ctx, ROOT, "x", 1, 0), -EISDIR);
	CHECK_EQ(fs_read(fs, &ctx, ROOT, buf, 1, 0), -EISDIR);
	set.size = 0;
	CHECK_EQ(fs_setattr(fs, &ctx, ROOT, &set, FS_SET_SIZE, &a), -EISDIR);
	CHECK_EQ(fs_read(fs, &ctx, 987654, buf, 1, 0), -ENOENT);
	char longname[300];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	CHECK_EQ(fs_mknod(fs, &ctx, ROOT, longname, S_IFREG | 0644, 0, 0, &a),
	         -ENAMETOOLONG);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, longname, &a), -ENAMETOOLONG);
	CHECK_EQ(fs_mknod(fs, &ctx, ino, "child", S_IFREG | 0644, 0, 0, &a), -ENOTDIR);
}

static int count_entry(void *arg, const char *name, uint64_t ino,
                       uint32_t mode, const struct fs_attr *a, int64_t next)
{
	(void)name; (void)ino; (void)mode; (void)next;
	CHECK(a == NULL); /* attributes only when asked for (plus) */
	(*(int *)arg)++;
	return 0;
}

struct plus_seen {
	int n, dots_bare, named_ok;
	uint64_t ino;
	struct fs_attr want;
};

static int plus_entry(void *arg, const char *name, uint64_t ino,
                      uint32_t mode, const struct fs_attr *a, int64_t next)
{
	struct plus_seen *p = arg;

	(void)next;
	p->n++;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		p->dots_bare += a == NULL && S_ISDIR(mode);
	else if (a && ino == p->ino && a->ino == ino && a->mode == p->want.mode &&
	         a->size == p->want.size && a->nlink == p->want.nlink &&
	         a->uid == p->want.uid && a->mtime.tv_sec == p->want.mtime.tv_sec &&
	         a->mtime.tv_nsec == p->want.mtime.tv_nsec)
		p->named_ok++;
	return 0;
}

static void test_dirs_links(struct fs *fs)
{
	struct fs_attr a, d;
	char buf[256];
	uint64_t f, sym;
	int n;

	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "dir", 0755, 0, &d), 0);
	CHECK(S_ISDIR(d.mode));
	CHECK_EQ(d.nlink, 2);
	f = mkfile(fs, d.ino, "inner");
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "dir"), -ENOTEMPTY);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "dir"), -EISDIR);
	CHECK_EQ(fs_rmdir(fs, &ctx, d.ino, "inner"), -ENOTDIR);
	n = 0;
	CHECK_EQ(fs_readdir(fs, &ctx, d.ino, 0, 0, count_entry, &n), 0);
	CHECK_EQ(n, 3); /* . .. inner */
	{
		/* READDIRPLUS: the entry's attributes are its lookup's, the dots
		 * come bare; each entry with attributes is a lookup: the file
		 * unlinked now lives on until the kernel forgets it */
		struct plus_seen p = { 0, 0, 0, f, { 0 } };
		CHECK_EQ(fs_lookup(fs, &ctx, d.ino, "inner", &p.want), 0);
		fs_forget(fs, f, 1);
		CHECK_EQ(fs_readdir(fs, &ctx, d.ino, 0, 1, plus_entry, &p), 0);
		CHECK_EQ(p.n, 3);
		CHECK_EQ(p.dots_bare, 2);
		CHECK_EQ(p.named_ok, 1);
		fs_forget(fs, f, 1); /* the listing's lookup */
	}
	{
		struct fs_attr pd, x;
		struct plus_seen p = { 0, 0, 0, 0, { 0 } };
		CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "plusdir", 0755, 0, &pd), 0);
		p.ino = mkfile(fs, pd.ino, "solo");
		fs_forget(fs, p.ino, 1000); /* the kernel holds nothing now */
		CHECK_EQ(fs_getattr(fs, &ctx, p.ino, &p.want), 0);
		CHECK_EQ(fs_readdir(fs, &ctx, pd.ino, 0, 1, plus_entry, &p), 0);
		CHECK_EQ(p.named_ok, 1);
		CHECK_EQ(fs_unlink(fs, &ctx, pd.ino, "solo"), 0);
		CHECK_EQ(fs_getattr(fs, &ctx, p.ino, &x), 0); /* held by the listing */
		CHECK_EQ(x.nlink, 0);
		fs_forget(fs, p.ino, 1);
		CHECK(fs_getattr(fs, &ctx, p.ino, &x) != 0); /* freed */
		CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "plusdir"), 0);
		fs_forget(fs, pd.ino, 1000); /* mkdir's lookup */
	}

	/* hard link */
	CHECK_EQ(fs_link(fs, &ctx, f, ROOT, "hard", &a), 0);
	CHECK_EQ(a.ino, f);
	CHECK_EQ(a.nlink, 2);
	CHECK_EQ(write_all(fs, f, "shared", 6, 0), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "hard", &a), 0);
	CHECK_EQ(fs_read(fs, &ctx, a.ino, buf, sizeof buf, 0), 6);
	CHECK(memcmp(buf, "shared", 6) == 0);
	CHECK_EQ(fs_link(fs, &ctx, d.ino, ROOT, "dirlink", &a), -EPERM);

	/* symlink */
	CHECK_EQ(fs_symlink(fs, &ctx, ROOT, "sym", "dir/inner", &a), 0);
	sym = a.ino;
	CHECK(S_ISLNK(a.mode));
	CHECK_EQ(a.size, 9);
	CHECK_EQ(fs_readlink(fs, &ctx, a.ino, buf, sizeof buf), 9);
	CHECK(strcmp(buf, "dir/inner") == 0);
	CHECK(fs_readlink(fs, &ctx, f, buf, sizeof buf) < 0);

	/* remove them */
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "sym"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "hard"), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, f, &a), 0);
	CHECK_EQ(a.nlink, 1);
	CHECK_EQ(fs_unlink(fs, &ctx, d.ino, "inner"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, d.ino, "inner"), -ENOENT);
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "dir"), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "dir", &a), -ENOENT);
	/* the kernel forgets what was removed: then it is gone */
	CHECK_EQ(fs_getattr(fs, &ctx, sym, &a), 0);
	CHECK_EQ(a.nlink, 0);
	fs_forget(fs, sym, 100);
	fs_forget(fs, f, 100);
	fs_forget(fs, d.ino, 100);
	CHECK_EQ(fs_getattr(fs, &ctx, sym, &a), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, f, &a), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, d.ino, &a), -ENOENT);
}

static void test_rename(struct fs *fs)
{
	struct fs_attr a, d1, d2;
	uint64_t x, y, inner;
	char buf[16];

	x = mkfile(fs, ROOT, "x");
	y = mkfile(fs, ROOT, "y");
	CHECK_EQ(write_all(fs, x, "xx", 2, 0), 0);
	CHECK_EQ(write_all(fs, y, "yyy", 3, 0), 0);

	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "y", FS_RENAME_NOREPLACE),
	         -EEXIST);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "absent",
	                   FS_RENAME_EXCHANGE), -ENOENT);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "y",
	                   FS_RENAME_EXCHANGE | FS_RENAME_NOREPLACE), -EINVAL);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "absent", ROOT, "z", 0), -ENOENT);

	/* exchange swaps the two names */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "y", FS_RENAME_EXCHANGE), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "x", &a), 0);
	CHECK_EQ(a.ino, y);
	CHECK_EQ(fs_read(fs, &ctx, a.ino, buf, sizeof buf, 0), 3);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "y", &a), 0);
	CHECK_EQ(a.ino, x);

	/* NOREPLACE to a free name works */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "y", ROOT, "z", FS_RENAME_NOREPLACE), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "y", &a), -ENOENT);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "z", &a), 0);
	CHECK_EQ(a.ino, x);

	/* plain rename replaces, and the replaced inode goes away once the
	 * kernel forgets it */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "z", ROOT, "x", 0), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "x", &a), 0);
	CHECK_EQ(a.ino, x);
	CHECK_EQ(fs_read(fs, &ctx, x, buf, sizeof buf, 0), 2);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "z", &a), -ENOENT);
	fs_forget(fs, y, 100);
	CHECK_EQ(fs_getattr(fs, &ctx, y, &a), -ENOENT);

	/* directories */
	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "d1", 0755, 0, &d1), 0);
	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "d2", 0755, 0, &d2), 0);
	inner = mkfile(fs, d2.ino, "f");
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "d2", 0), -ENOTEMPTY);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "d1", 0), -EISDIR);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "x", 0), -ENOTDIR);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d2", d2.ino, "sub", 0), -EINVAL);
	/* move a dir into another: link counts follow */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", d2.ino, "d1", 0), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, d2.ino, &a), 0);
	CHECK_EQ(a.nlink, 3);
	CHECK_EQ(fs_getattr(fs, &ctx, ROOT, &a), 0);
	uint32_t root_links = a.nlink;
	/* and a dir cannot move below its own child */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d2", d1.ino, "loop", 0), -EINVAL);
	CHECK_EQ(fs_rename(fs, &ctx, d2.ino, "d1", ROOT, "d1", 0), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, ROOT, &a), 0);
	CHECK_EQ(a.nlink, root_links + 1);
	/* replace an empty dir with a dir */
	CHECK_EQ(fs_unlink(fs, &ctx, d2.ino, "f"), 0);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "d2", 0), 0);
	CHECK_EQ(fs_getattr(fs, &ctx, ROOT, &a), 0);
	CHECK_EQ(a.nlink, root_links); /* one subdirectory fewer */
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "d2", &a), 0);
	CHECK_EQ(a.ino, d1.ino);
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "d2"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "x"), 0);
	fs_forget(fs, x, 100);
	fs_forget(fs, d1.ino, 100);
	fs_forget(fs, d2.ino, 100);
	fs_forget(fs, inner, 100);
	CHECK_EQ(fs_getattr(fs, &ctx, x, &a), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, d1.ino, &a), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, d2.ino, &a), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, inner, &a), -ENOENT);
}

static void test_unlink_open(struct env *e)
{
	struct fs *fs = e->fs;
	struct store_inode si;
	struct fs_attr a;
	char buf[64];
	uint64_t u, o;

	u = mkfile(fs, ROOT, "open-unlinked"); /* nlookup 1 */
	CHECK_EQ(fs_open(fs, &ctx, u, O_RDWR, NULL), 0);
	CHECK_EQ(write_all(fs, u, "still here", 10, 0), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "open-unlinked"), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "open-unlinked", &a), -ENOENT);
	CHECK_EQ(fs_read(fs, &ctx, u, buf, sizeof buf, 0), 10);
	CHECK(memcmp(buf, "still here", 10) == 0);
	CHECK_EQ(write_all(fs, u, "!", 1, 10), 0); /* writable too */
	CHECK_EQ(fs_getattr(fs, &ctx, u, &a), 0);
	CHECK_EQ(a.nlink, 0);
	CHECK_EQ(a.size, 11);
	fs_release(fs, &ctx, u, 0);
	/* the kernel still holds a lookup reference */
	CHECK_EQ(store_inode_get(e->s, u, &si), 0);
	fs_forget(fs, u, 1);
	CHECK_EQ(store_inode_get(e->s, u, &si), -ENOENT);
	CHECK_EQ(fs_getattr(fs, &ctx, u, &a), -ENOENT);

	/* forget before release: the open handle keeps it alive */
	u = mkfile(fs, ROOT, "second");
	CHECK_EQ(fs_open(fs, &ctx, u, O_RDONLY, NULL), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "second"), 0);
	fs_forget(fs, u, 1);
	CHECK_EQ(store_inode_get(e->s, u, &si), 0);
	fs_release(fs, &ctx, u, 0);
	CHECK_EQ(store_inode_get(e->s, u, &si), -ENOENT);

	/* a crash while an unlinked file is open leaves an orphan that the
	 * next fs_new sweeps away (with its blocks) */
	o = mkfile(fs, ROOT, "orphan");
	CHECK_EQ(fs_open(fs, &ctx, o, O_RDWR, NULL), 0);
	CHECK_EQ(write_all(fs, o, "orphaned data", 13, 0), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "orphan"), 0);
	CHECK_EQ(env_reopen(e), 0); /* no release, no forget */
	if (!e->fs)
		return;
	CHECK_EQ(store_inode_get(e->s, o, &si), -ENOENT);
	/* its blocks wait in the purge queue until the daemon's tick */
	CHECK_EQ(block_row(e, o, 0), 0);
	for (int i = 0; i < 50; i++) /* one queued inode per tick */
		fs_tick(e->fs);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(block_row(e, o, 0), -ENOENT);
}

static void test_xattr(struct fs *fs)
{
	char val[128], list[256];
	uint64_t f = mkfile(fs, ROOT, "xf");
	ssize_t n;

	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.a", "one", 3, 0), 0);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.a", "uno", 3, FS_XATTR_CREATE),
	         -EEXIST);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.b", "two", 3, FS_XATTR_REPLACE),
	         -ENODATA);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.b", "two-two", 7,
	                     FS_XATTR_CREATE), 0);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.a", "ONE!", 4, FS_XATTR_REPLACE),
	         0);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.empty", "", 0, 0), 0);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "bogus.ns", "x", 1, 0), -EOPNOTSUPP);

	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.a", NULL, 0), 4);
	n = fs_getxattr(fs, &ctx, f, "user.a", val, sizeof val);
	CHECK_EQ(n, 4);
	CHECK(memcmp(val, "ONE!", 4) == 0);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.b", val, 3), -ERANGE);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.b", val, 7), 7);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.empty", val, sizeof val), 0);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.none", val, sizeof val), -ENODATA);

	const char want[] = "user.a\0user.b\0user.empty\0";
	n = fs_listxattr(fs, &ctx, f, NULL, 0);
	CHECK_EQ(n, sizeof want - 1);
	CHECK_EQ(fs_listxattr(fs, &ctx, f, list, 5), -ERANGE);
	n = fs_listxattr(fs, &ctx, f, list, sizeof list);
	CHECK_EQ(n, sizeof want - 1);
	/* order is not promised: check membership */
	int seen = 0;
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(list + i) + 1)
		seen += !strcmp(list + i, "user.a") + !strcmp(list + i, "user.b") +
		        !strcmp(list + i, "user.empty");
	CHECK_EQ(seen, 3);

	CHECK_EQ(fs_removexattr(fs, &ctx, f, "user.a"), 0);
	CHECK_EQ(fs_removexattr(fs, &ctx, f, "user.a"), -ENODATA);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.a", val, sizeof val), -ENODATA);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.b", val, sizeof val), 7);

	/* a big value */
	static char big[FS_XATTR_SIZE_MAX], back[FS_XATTR_SIZE_MAX];
	cipher_random(big, sizeof big);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.big", big, sizeof big, 0), 0);
	CHECK_EQ(fs_getxattr(fs, &ctx, f, "user.big", back, sizeof back),
	         (ssize_t)sizeof big);
	CHECK(memcmp(big, back, sizeof big) == 0);
	CHECK_EQ(fs_setxattr(fs, &ctx, f, "user.big2", big, sizeof big + 1, 0),
	         -E2BIG);
}


static int rotate_fn(void *arg)
{
	struct env *e = arg;
	uint32_t v = 0;
	int rc = unit_rotate(&e->u, &v);

	return rc ? rc : (int)v;
}

/* Seal plain as block blk of file in under version v with the file's real
 * keys: what a writer holding the data key can forge. */
static int forge_block(struct env *e, const struct store_inode *in,
                       uint64_t blk, uint32_t v, const uint8_t *plain,
                       size_t len, uint8_t *out)
{
	uint8_t *k = secmem_alloc(2 * CIPHER_KEY_BYTES), ad[28];
	int rc;

	if (!k)
		return -ENOMEM;
	rc = keyring_derive(e->u.ss->kr, v, KR_BENC, in->file_id, 16, k);
	if (!rc)
		rc = keyring_derive(e->u.ss->kr, v, KR_BMAC, in->file_id, 16,
		                    k + CIPHER_KEY_BYTES);
	if (!rc) {
		memcpy(ad, in->file_id, 16);
		put_le64(ad + 16, blk);
		put_le32(ad + 24, v);
		cipher_block_seal(out, plain, len, ad, sizeof ad, k,
		                  k + CIPHER_KEY_BYTES, NULL);
	}
	secmem_free(k);
	return rc;
}

/* Replace the data of block (ino, blk) with data[len] (a file writer). */
static int put_row(struct env *e, uint64_t ino, uint64_t blk, const void *data,
                   size_t len)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(e->s->db, "UPDATE blocks SET data=? WHERE ino=?"
	                       " AND blk=?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_blob(st, 1, data, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (int64_t)ino);
	sqlite3_bind_int64(st, 3, (int64_t)blk);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE && sqlite3_changes(e->s->db) == 1 ? 0 : -EIO;
}

static int get_row(struct env *e, uint64_t ino, uint64_t blk, uint8_t *buf,
                   size_t cap, size_t *len)
{
	sqlite3_stmt *st;
	int rc = -ENOENT;

	if (sqlite3_prepare_v2(e->s->db, "SELECT data FROM blocks WHERE ino=?"
	                       " AND blk=?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)blk);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*len = (size_t)sqlite3_column_bytes(st, 0);
		rc = *len <= cap ? 0 : -E2BIG;
		if (!rc)
			memcpy(buf, sqlite3_column_blob(st, 0), *len);
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Large reads are staged: ciphertext copied under the lock, decrypted
 * after it (blockio_stage/unstage). Same bytes as the plain path for an
 * aligned read, an unaligned one, a hole, a short last block and blocks of
 * two key versions (a rotation in between: keyadmin_rotate and
 * keyadmin_sign in the admin's audited transaction); a row planted in a
 * hole reads as zeros. A block row replaced by another validly sealed one
 * (garbage, the file's own older block put back, a neighbour moved over,
 * one sealed fresh with the file's real keys) and a block missing from a
 * dense file give EIO, on both paths; with every stage busy the plain path
 * answers the same.
 */
static void test_staged_read(struct env *e)
{
	enum { DATA = 300 * 1024, TAIL = 700 * 1024 + 3, LEN = TAIL + 1 };
	static uint8_t want[LEN], old40[BS + 64], cur40[BS + 64], row[BS + 64];
	static char got[FS_STAGE_MAX];
	struct fs *fs = e->fs;
	struct store_inode in;
	uint64_t f, d;
	size_t n40 = 0, ncur = 0, n = 0;
	int v;
	ssize_t r;

	for (size_t i = 0; i < DATA; i++)
		want[i] = (uint8_t)(i * 31 + 7 + i / 4096);
	memset(want + DATA, 0, LEN - DATA);
	want[TAIL] = 'Z';
	f = mkfile(fs, ROOT, "staged");
	CHECK_EQ(write_all(fs, f, want, DATA / 2, 0), 0);
	/* the second half under a new key version */
	v = fs_exclusive(fs, rotate_fn, e);
	CHECK_EQ(v, 2);
	CHECK_EQ(keyring_active(e->u.ss->kr), 2);
	CHECK_EQ(write_all(fs, f, want + DATA / 2, DATA - DATA / 2, DATA / 2), 0);
	CHECK_EQ(write_all(fs, f, "Z", 1, TAIL), 0); /* a hole before it */
	CHECK_EQ(fs_commit(fs), 0);
	CHECK_EQ(block_row(e, f, 0), 0);
	{
		struct bcopy b0, b70;
		CHECK_EQ(store_block_with(e->s, f, 0, note_block, &b0), 0);
		CHECK_EQ(store_block_with(e->s, f, 70, note_block, &b70), 0);
		CHECK_EQ(b0.kv, 1);
		CHECK_EQ(b70.kv, 2);
	}
	CHECK_EQ(block_row(e, f, 100), -ENOENT); /* the hole stores nothing */

	r = fs_read(fs, &ctx, f, got, sizeof got, 0);
	CHECK_EQ(r, LEN);
	CHECK(r == LEN && memcmp(got, want, LEN) == 0);
	r = fs_read(fs, &ctx, f, got, 200001, 1234); /* unaligned both ends */
	CHECK_EQ(r, 200001);
	CHECK(r == 200001 && memcmp(got, want + 1234, 200001) == 0);
	r = fs_read(fs, &ctx, f, got, FS_STAGE_MIN, TAIL - 100); /* to EOF */
	CHECK_EQ(r, 101);
	CHECK(r == 101 && memcmp(got, want + TAIL - 100, 101) == 0);
	/* every stage busy: the plain path, same bytes */
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_hold(fs->stage[i], 1);
	memset(got, 0, sizeof got);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), LEN);
	CHECK(memcmp(got, want, LEN) == 0);
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_hold(fs->stage[i], 0);

	/* a row planted in a hole (a copy of a real block) is not part of
	 * the file: the hole still reads as zeros */
	CHECK_EQ(get_row(e, f, 40, old40, sizeof old40, &n40), 0);
	CHECK_EQ(sql(e, "INSERT INTO blocks SELECT ino, 100, key_version, data"
	             " FROM blocks WHERE ino=(SELECT max(ino) FROM inodes)"
	             " AND blk=40"), SQLITE_OK);
	CHECK_EQ(block_row(e, f, 100), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 100 * BS), BS);
	CHECK(all_zero(got, BS));
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), LEN);
	CHECK(memcmp(got, want, LEN) == 0);
	CHECK_EQ(sql(e, "DELETE FROM blocks WHERE blk=100"), SQLITE_OK);

	/* garbage in a block in the middle of a large read */
	cipher_random(row, n40);
	CHECK_EQ(put_row(e, f, 40, row, n40), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 39 * BS), BS); /* its neighbour */
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 40 * BS), -EIO);
	/* a neighbour's validly sealed block moved over it */
	CHECK_EQ(get_row(e, f, 41, row, sizeof row, &n), 0);
	CHECK_EQ(put_row(e, f, 40, row, n), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 40 * BS), -EIO);
	/* a block sealed fresh with the file's real keys, at its own place,
	 * version and file: it opens, but its leaf is not the tree's */
	CHECK_EQ(store_inode_get(e->s, f, &in), 0);
	memset(got, 'F', BS);
	CHECK_EQ(forge_block(e, &in, 40, 1, (const uint8_t *)got, BS, row), 0);
	CHECK_EQ(put_row(e, f, 40, row, BS + CIPHER_BLOCK_OVERHEAD), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 40 * BS), -EIO);
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_hold(fs->stage[i], 1);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO); /* plain path */
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_hold(fs->stage[i], 0);
	/* the original back: sound again */
	CHECK_EQ(put_row(e, f, 40, old40, n40), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), LEN);
	CHECK(memcmp(got, want, LEN) == 0);

	/* the file's own older block 40, put back after an overwrite */
	memset(got, 'N', BS);
	CHECK_EQ(write_all(fs, f, got, BS, 40 * BS), 0);
	CHECK_EQ(fs_commit(fs), 0);
	CHECK_EQ(get_row(e, f, 40, cur40, sizeof cur40, &ncur), 0);
	CHECK(ncur != n40 || memcmp(cur40, old40, n40));
	CHECK_EQ(put_row(e, f, 40, old40, n40), 0);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 40 * BS), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO);
	CHECK_EQ(put_row(e, f, 40, cur40, ncur), 0);
	memset(want + 40 * BS, 'N', BS);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), LEN);
	CHECK(memcmp(got, want, LEN) == 0);

	/* a block deleted from a dense file */
	d = mkfile(fs, ROOT, "dense");
	CHECK_EQ(write_all(fs, d, want, DATA, 0), 0);
	CHECK_EQ(fs_commit(fs), 0);
	CHECK_EQ(get_row(e, d, 5, row, sizeof row, &n), 0);
	{
		char q[128];
		snprintf(q, sizeof q, "DELETE FROM blocks WHERE ino=%llu AND blk=5",
		         (unsigned long long)d);
		CHECK_EQ(sql(e, q), SQLITE_OK);
	}
	CHECK_EQ(block_row(e, d, 5), -ENOENT);
	CHECK_EQ(fs_read(fs, &ctx, d, got, sizeof got, 0), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, d, got, BS, 5 * BS), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, d, got, BS, 4 * BS), BS);
	{
		sqlite3_stmt *st;
		CHECK_EQ(sqlite3_prepare_v2(e->s->db, "INSERT INTO blocks VALUES"
		                            "(?, 5, 2, ?)", -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_int64(st, 1, (int64_t)d);
		sqlite3_bind_blob(st, 2, row, (int)n, SQLITE_STATIC);
		CHECK_EQ(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	CHECK_EQ(fs_read(fs, &ctx, d, got, sizeof got, 0), DATA);
	CHECK(memcmp(got, want, DATA) == 0);
	CHECK_EQ(check_fs(fs), 0);
}

/*
 * Operations run without savepoints: one that fails after changing rows
 * rolls the whole uncommitted group back (fs_op_end), so the store stays
 * consistent, committed data survives and later operations work. And a
 * write that runs out of space part way is short, never half-applied.
 */
static void test_failed_op(struct env *e)
{
	static char big[256 * 1024];
	struct store_inode junk;
	struct fs_attr a;
	char buf[BS], q[64];
	sqlite3_stmt *pq;
	uint64_t kept, gone;
	int64_t pages = 0, seq0 = 0, seq1 = 0;
	ssize_t n;

	kept = mkfile(e->fs, ROOT, "kept");
	memset(buf, 'A', sizeof buf);
	CHECK_EQ(write_all(e->fs, kept, buf, BS, 0), 0);
	/* check sees the filesystem as it stands, the open group transaction
	 * included: a file it made is no problem */
	CHECK_EQ(check_fs(e->fs), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(store_ledger_last(e->s, &seq0), 0);
	gone = mkfile(e->fs, ROOT, "uncommitted");
	CHECK_EQ(write_all(e->fs, gone, "gone", 4, 0), 0);

	/* an op that changes a row, then fails */
	pthread_mutex_lock(&e->fs->lock);
	CHECK_EQ(fs_op_begin(e->fs), 0);
	CHECK_EQ(inode_alloc(e->fs, &ctx, S_IFREG | 0600, 0, &junk), 0);
	CHECK_EQ(fs_op_end(e->fs, -EIO), -EIO);
	CHECK_EQ(e->fs->in_tx, 0);
	pthread_mutex_unlock(&e->fs->lock);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "uncommitted", &a), -ENOENT);
	/* nothing of the group was committed: no commit record either */
	CHECK_EQ(store_ledger_last(e->s, &seq1), 0);
	CHECK_EQ(seq1, seq0);
	/* with no group transaction, an operation's read transaction ends
	 * with it: nothing stays open, and the next write can begin */
	CHECK_EQ(store_in_transaction(e->s), 0);
	CHECK_EQ(fs_getattr(e->fs, &ctx, junk.ino, &a), -ENOENT);
	CHECK_EQ(store_in_transaction(e->s), 0);
	CHECK_EQ(fs_read(e->fs, &ctx, kept, buf, BS, 0), BS);
	CHECK(buf[0] == 'A' && buf[BS - 1] == 'A');
	CHECK_EQ(check_fs(e->fs), 0);

	/* an op that fails before changing anything leaves the group alone */
	gone = mkfile(e->fs, ROOT, "stays");
	CHECK_EQ(fs_mknod(e->fs, &ctx, ROOT, "stays", S_IFREG | 0644, 0, 0, &a),
	         -EEXIST);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "stays", &a), 0);
	CHECK_EQ(a.ino, gone);

	/* the disk fills half way through a write: a short write */
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(sqlite3_prepare_v2(e->s->db, "PRAGMA page_count", -1, &pq, NULL),
	         SQLITE_OK);
	if (sqlite3_step(pq) == SQLITE_ROW)
		pages = sqlite3_column_int64(pq, 0);
	sqlite3_finalize(pq);
	snprintf(q, sizeof q, "PRAGMA max_page_count=%lld", (long long)pages);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	memset(big, 'B', sizeof big);
	n = fs_write(e->fs, &ctx, kept, big, sizeof big, 0);
	CHECK(n == -ENOSPC || (n > 0 && n < (ssize_t)sizeof big));
	CHECK_EQ(sql(e, "PRAGMA max_page_count=1073741823"), SQLITE_OK);
	CHECK_EQ(fs_getattr(e->fs, &ctx, kept, &a), 0);
	CHECK_EQ(a.size, n > 0 ? (uint64_t)(n > BS ? n : BS) : (uint64_t)BS);
	CHECK_EQ(check_fs(e->fs), 0);
	CHECK_EQ(write_all(e->fs, kept, big, sizeof big, 0), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(check_fs(e->fs), 0);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "stays", &a), 0);
}

/* Rows edited with sqlite3 between two mounts are not the signed ones. */
static void test_tamper(struct env *e)
{
	struct fs_attr a;
	char buf[32], q[160];
	uint64_t data, xf;

	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "data", &a), 0);
	data = a.ino;
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "xf", &a), 0);
	xf = a.ino;
	CHECK_EQ(fs_commit(e->fs), 0);
	/* an inode row with another size */
	snprintf(q, sizeof q, "UPDATE inodes SET size=size+1 WHERE ino=%llu",
	         (unsigned long long)data);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(env_reopen(e), 0);
	if (!e->fs)
		return;
	CHECK_EQ(fs_getattr(e->fs, &ctx, data, &a), -EIO);
	CHECK_EQ(fs_read(e->fs, &ctx, data, buf, sizeof buf, 0), -EIO);
	CHECK_EQ(fs_getattr(e->fs, &ctx, xf, &a), 0); /* that row only */
	snprintf(q, sizeof q, "UPDATE inodes SET size=size-1 WHERE ino=%llu",
	         (unsigned long long)data);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	/* an xattr value edited (one byte more) */
	snprintf(q, sizeof q, "UPDATE xattrs SET value=CAST(value||x'00' AS"
	         " BLOB) WHERE ino=%llu", (unsigned long long)xf);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(env_reopen(e), 0);
	if (!e->fs)
		return;
	CHECK_EQ(fs_getattr(e->fs, &ctx, data, &a), 0);
	CHECK_EQ(fs_getxattr(e->fs, &ctx, xf, "user.b", buf, sizeof buf), -EIO);
	snprintf(q, sizeof q, "UPDATE xattrs SET value=CAST(substr(value, 1,"
	         " length(value) - 1) AS BLOB) WHERE ino=%llu", (unsigned long long)xf);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(env_reopen(e), 0);
	if (!e->fs)
		return;
	CHECK_EQ(fs_getxattr(e->fs, &ctx, xf, "user.b", buf, sizeof buf), 7);
	/* an xattr whose name, or value, is an empty blob: EIO, nothing worse */
	{
		uint64_t xe = mkfile(e->fs, ROOT, "xe");
		CHECK_EQ(fs_setxattr(e->fs, &ctx, xe, "user.e", "v", 1, 0), 0);
		CHECK_EQ(fs_commit(e->fs), 0);
		snprintf(q, sizeof q, "UPDATE xattrs SET name=x'' WHERE ino=%llu",
		         (unsigned long long)xe);
		CHECK_EQ(sql(e, q), SQLITE_OK);
		CHECK_EQ(env_reopen(e), 0);
		if (!e->fs)
			return;
		CHECK_EQ(fs_getxattr(e->fs, &ctx, xe, "user.e", buf, sizeof buf), -EIO);
		CHECK_EQ(fs_listxattr(e->fs, &ctx, xe, buf, sizeof buf), -EIO);
		snprintf(q, sizeof q, "UPDATE xattrs SET name=x'00', value=x''"
		         " WHERE ino=%llu", (unsigned long long)xe);
		CHECK_EQ(sql(e, q), SQLITE_OK);
		CHECK_EQ(fs_getxattr(e->fs, &ctx, xe, "user.e", buf, sizeof buf), -EIO);
		CHECK_EQ(fs_unlink(e->fs, &ctx, ROOT, "xe"), 0);
		fs_forget(e->fs, xe, 100);
		CHECK_EQ(fs_commit(e->fs), 0);
	}
}

/*
 * Rows a file writer plants for inode numbers the signed state has not
 * used yet (an xattr, a block, an entry under it) are no part of any file:
 * the file that later gets that number starts empty and works as any new
 * file, and check (after the commit) has nothing to say about it.
 */
static void test_planted(struct env *e)
{
	struct fs_attr a, d;
	char buf[64], q[512];
	uint64_t next = e->fs->next_ino, f;
	ssize_t n;

	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "xf", &a), 0);
	/* another file's xattr rows, block rows and an entry, copied to the
	 * next two inode numbers */
	snprintf(q, sizeof q, "INSERT INTO xattrs SELECT %llu, tag, key_version,"
	         " name, value FROM xattrs WHERE ino=%llu",
	         (unsigned long long)next, (unsigned long long)a.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "data", &a), 0);
	snprintf(q, sizeof q, "INSERT INTO blocks SELECT %llu, blk, key_version,"
	         " data FROM blocks WHERE ino=%llu", (unsigned long long)next,
	         (unsigned long long)a.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	snprintf(q, sizeof q, "INSERT INTO dentries(parent, tag, key_version, name,"
	         " ino) SELECT %llu, tag, key_version, name, ino FROM dentries"
	         " WHERE parent=%d LIMIT 2", (unsigned long long)next + 1, ROOT);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	/* the file that gets the number */
	f = mkfile(e->fs, ROOT, "newcomer");
	CHECK_EQ(f, next);
	CHECK_EQ(fs_getattr(e->fs, &ctx, f, &a), 0);
	CHECK_EQ(a.size, 0);
	CHECK_EQ(a.blocks, 0);
	CHECK_EQ(fs_listxattr(e->fs, &ctx, f, buf, sizeof buf), 0);
	CHECK_EQ(fs_getxattr(e->fs, &ctx, f, "user.b", buf, sizeof buf), -ENODATA);
	CHECK_EQ(fs_setxattr(e->fs, &ctx, f, "user.mine", "m", 1, 0), 0);
	n = fs_getxattr(e->fs, &ctx, f, "user.mine", buf, sizeof buf);
	CHECK_EQ(n, 1);
	n = fs_listxattr(e->fs, &ctx, f, buf, sizeof buf);
	CHECK_EQ(n, (ssize_t)sizeof "user.mine");
	CHECK_EQ(write_all(e->fs, f, "new", 3, 0), 0);
	CHECK_EQ(fs_getattr(e->fs, &ctx, f, &a), 0);
	CHECK_EQ(a.size, 3);
	CHECK_EQ(a.blocks, 8); /* one stored block, as for any new file */
	CHECK_EQ(fs_read(e->fs, &ctx, f, buf, sizeof buf, 0), 3);
	CHECK(!memcmp(buf, "new", 3));
	CHECK_EQ(fs_mkdir(e->fs, &ctx, ROOT, "newdir", 0755, 0, &d), 0);
	CHECK_EQ(d.ino, next + 1);
	{
		int cnt = 0;
		CHECK_EQ(fs_readdir(e->fs, &ctx, d.ino, 0, 0, count_entry, &cnt), 0);
		CHECK_EQ(cnt, 2); /* . and .. only */
	}
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(check_fs(e->fs), 0);
	/* reopened: the same */
	CHECK_EQ(env_reopen(e), 0);
	if (!e->fs)
		return;
	n = fs_getxattr(e->fs, &ctx, f, "user.mine", buf, sizeof buf);
	CHECK_EQ(n, 1);
	CHECK_EQ(fs_read(e->fs, &ctx, f, buf, sizeof buf, 0), 3);
	CHECK_EQ(fs_rmdir(e->fs, &ctx, ROOT, "newdir"), 0);
	CHECK_EQ(fs_unlink(e->fs, &ctx, ROOT, "newcomer"), 0);
	fs_forget(e->fs, f, 100);
	fs_forget(e->fs, d.ino, 100);
	CHECK_EQ(fs_commit(e->fs), 0);
	/* what the planted rows left behind, gone */
	snprintf(q, sizeof q, "DELETE FROM dentries WHERE parent=%llu;"
	         " DELETE FROM xattrs WHERE ino=%llu; DELETE FROM blocks WHERE"
	         " ino=%llu", (unsigned long long)next + 1, (unsigned long long)next,
	         (unsigned long long)next);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(check_fs(e->fs), 0);
}

static void count_problem(void *arg, uint64_t ino, const char *path,
                          const char *what)
{
	(void)ino;
	(void)path;
	(void)what;
	(*(long *)arg)++;
}

/*
 * The same on a live file that has no xattrs: a row planted under it is
 * no part of the signed state (check names it), and the file's own first
 * xattr works.
 */
static void test_planted_live(struct env *e)
{
	struct fs_attr a, x;
	char buf[64], q[256];
	uint64_t f;
	ssize_t n;

	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "xf", &x), 0);
	f = mkfile(e->fs, ROOT, "bare");
	CHECK_EQ(fs_commit(e->fs), 0);
	snprintf(q, sizeof q, "INSERT INTO xattrs SELECT %llu, tag, key_version,"
	         " name, value FROM xattrs WHERE ino=%llu",
	         (unsigned long long)f, (unsigned long long)x.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK(check_fs(e->fs) >= 1);
	CHECK_EQ(fs_listxattr(e->fs, &ctx, f, buf, sizeof buf), 0);
	CHECK_EQ(fs_setxattr(e->fs, &ctx, f, "user.own", "o", 1, 0), 0);
	n = fs_getxattr(e->fs, &ctx, f, "user.own", buf, sizeof buf);
	CHECK_EQ(n, 1);
	CHECK_EQ(fs_commit(e->fs), 0);
	n = fs_getxattr(e->fs, &ctx, f, "user.own", buf, sizeof buf);
	CHECK_EQ(n, 1);
	snprintf(q, sizeof q, "DELETE FROM xattrs WHERE ino=%llu",
	         (unsigned long long)f);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(fs_unlink(e->fs, &ctx, ROOT, "bare"), 0);
	fs_forget(e->fs, f, 100);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(fs_getattr(e->fs, &ctx, f, &a), -ENOENT);
}

/*
 * A block row whose key a file writer made a real that truncates to the
 * block's own number: the block can no longer be read (EIO), and check
 * must say so, not find it where the tree wants it. And a block row
 * under a directory.
 */
static void test_block_key(struct env *e)
{
	struct fs_attr a;
	static char buf[2 * BS];
	char q[160];

	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "kept", &a), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
	snprintf(q, sizeof q, "UPDATE blocks SET blk=0.5 WHERE ino=%llu AND blk=0",
	         (unsigned long long)a.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(fs_read(e->fs, &ctx, a.ino, buf, BS, 0), -EIO);
	CHECK(check_fs(e->fs) >= 1);
	snprintf(q, sizeof q, "UPDATE blocks SET blk=0 WHERE ino=%llu AND blk=0.5",
	         (unsigned long long)a.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(fs_read(e->fs, &ctx, a.ino, buf, BS, 0), BS);
	CHECK_EQ(fs_commit(e->fs), 0); /* the read may have set atime */
	CHECK_EQ(check_fs(e->fs), 0);
	/* a copy of the block under a directory (the root): no block of a
	 * directory is signed, check names it (fuzz_rows found it) */
	snprintf(q, sizeof q, "INSERT INTO blocks SELECT %d, blk, key_version,"
	         " data FROM blocks WHERE ino=%llu AND blk=0", ROOT,
	         (unsigned long long)a.ino);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK(check_fs(e->fs) >= 1);
	snprintf(q, sizeof q, "DELETE FROM blocks WHERE ino=%d", ROOT);
	CHECK_EQ(sql(e, q), SQLITE_OK);
	CHECK_EQ(check_fs(e->fs), 0);
}

/*
 * check ends, whatever a row holds: a blocks row whose inode number is
 * not an integer (text, a real) is one problem, reported once. Run in a
 * child with a time limit, so a check that never ends fails this test
 * instead of hanging the suite.
 */
static void test_check_terminates(struct env *e)
{
	static const char *const plant[] = {
		"INSERT INTO blocks VALUES('x', 0, 1, x'00')",
		"INSERT INTO blocks VALUES(2.5, 0, 1, x'00')",
	};

	CHECK_EQ(fs_commit(e->fs), 0);
	for (size_t i = 0; i < sizeof plant / sizeof *plant; i++) {
		pid_t pid;
		int status = 0;

		CHECK_EQ(sql(e, plant[i]), SQLITE_OK);
		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			struct fs_check_ops ck = { 0 };
			struct fs_check_stats cs;
			long problems = 0;
			int rc;

			alarm(2);
			ck.problem = count_problem;
			ck.arg = &problems;
			rc = fs_check(e->fs, &ck, &cs);
			_exit(rc >= 1 && problems >= 1 && problems < 100 ? 0 : 3);
		}
		CHECK(pid > 0);
		if (pid > 0)
			CHECK_EQ(waitpid(pid, &status, 0), pid);
		/* exited by itself, with the row reported */
		CHECK(WIFEXITED(status));
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (!WIFEXITED(status))
			fprintf(stderr, "  fs_check did not end (%s)\n", plant[i]);
		CHECK_EQ(sql(e, "DELETE FROM blocks WHERE typeof(ino) != 'integer'"),
		         SQLITE_OK);
	}
	CHECK_EQ(check_fs(e->fs), 0);
}

/* The trail's session detail keys, as custodyctl reencrypt moves them once
 * the content is done: fs_exclusive's fn. */
static int reseal_fn(void *arg)
{
	struct env *e = arg;
	uint64_t moved = 0;
	int rc = unlock_begin(&e->u);

	if (rc < 0)
		return rc;
	rc = audit_reseal_sessions(e->u.s, e->u.r, e->u.ss, 256, &moved);
	rc = unlock_finish(&e->u, "reencrypt", "session audit keys", rc);
	return rc ? rc : (int)moved;
}

/*
 * Re-encryption after the rotation of test_staged_read: every object still
 * under version 1 moves to version 2 in bounded steps, each its own signed
 * commit; the bytes read the same, nothing is left under version 1, and a
 * block row of version 1 put back afterwards (validly sealed under the key
 * it names) is not the signed one.
 */
static void test_reencrypt(struct env *e)
{
	static char before[400 * 1024], after[400 * 1024];
	static uint8_t old[BS + 64];
	struct fs_attr a;
	uint64_t left = 0, moved = 0, bytes = 0, total = 0, f;
	int64_t seq0 = 0, seq1 = 0;
	size_t n = 0;
	ssize_t r0, r1;
	int steps = 0;

	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "staged", &a), 0);
	f = a.ino;
	r0 = fs_read(e->fs, &ctx, f, before, sizeof before, 0);
	CHECK(r0 > 0);
	CHECK_EQ(get_row(e, f, 0, old, sizeof old, &n), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(fs_reencrypt_remaining(e->fs, 0, &left), 0);
	CHECK(left > 0);
	/* rows a file writer planted under the old version: one in a hole of
	 * the file, xattr rows beside its (empty) signed set. Reencrypt moves
	 * the file's own objects and drops these (re-sealing would not move
	 * them: every step would find them again), so it ends and leaves
	 * nothing under version 1. (left, the count of the genuine objects,
	 * is from before: several planted rows may go in one move) */
	{
		char q[256];
		CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "xf", &a), 0);
		snprintf(q, sizeof q, "INSERT INTO blocks SELECT ino, 100, key_version,"
		         " data FROM blocks WHERE ino=%llu AND blk=0;"
		         " INSERT INTO xattrs SELECT %llu, tag, 1, name, value FROM"
		         " xattrs WHERE ino=%llu", (unsigned long long)f,
		         (unsigned long long)f, (unsigned long long)a.ino);
		CHECK_EQ(sql(e, q), SQLITE_OK);
		CHECK_EQ(block_row(e, f, 100), 0);
	}
	CHECK_EQ(store_ledger_last(e->s, &seq0), 0);
	do {
		moved = 0;
		CHECK_EQ(fs_reencrypt_step(e->fs, 16, &moved, &bytes), 0);
		total += moved;
		CHECK(moved <= 16);
	} while (moved && ++steps < 1000);
	CHECK(steps < 1000);
	CHECK_EQ(block_row(e, f, 100), -ENOENT); /* the planted one went */
	/* content done; then the sessions' detail keys */
	{
		int rs = fs_exclusive(e->fs, reseal_fn, e);
		CHECK(rs >= 1);
		CHECK_EQ(fs_exclusive(e->fs, reseal_fn, e), 0);
		CHECK(total + (uint64_t)(rs > 0 ? rs : 0) >= left);
	}
	CHECK_EQ(fs_reencrypt_remaining(e->fs, 1, &left), 0);
	CHECK_EQ(left, 0);
	CHECK_EQ(store_ledger_last(e->s, &seq1), 0);
	CHECK(seq1 >= seq0 + steps); /* one signed commit a step */
	{
		uint64_t objs = 1;
		CHECK_EQ(store_key_usage(e->s, 1, 1, &objs), 0);
		CHECK_EQ(objs, 0);
	}
	r1 = fs_read(e->fs, &ctx, f, after, sizeof after, 0);
	CHECK_EQ(r1, r0);
	CHECK(r0 > 0 && r1 == r0 && !memcmp(before, after, (size_t)r0));
	CHECK_EQ(check_fs(e->fs), 0);
	/* the version-1 block put back: it opens under version 1's key, but
	 * its leaf is not the tree's */
	{
		char q[128];
		snprintf(q, sizeof q, "UPDATE blocks SET key_version=1 WHERE ino=%llu"
		         " AND blk=0", (unsigned long long)f);
		CHECK_EQ(put_row(e, f, 0, old, n), 0);
		CHECK_EQ(sql(e, q), SQLITE_OK);
		CHECK_EQ(fs_read(e->fs, &ctx, f, after, BS, 0), -EIO);
	}
	{
		/* back as it was: re-write block 0 from the known bytes */
		CHECK_EQ(write_all(e->fs, f, before, BS, 0), 0);
		CHECK_EQ(fs_commit(e->fs), 0);
		CHECK_EQ(fs_read(e->fs, &ctx, f, after, sizeof after, 0), r0);
		CHECK(!memcmp(before, after, (size_t)r0));
	}
}

int main(void)
{
	static struct env e;
	struct fs_opts o;
	struct fs_attr a;
	char buf[32];

	CHECK_EQ(cipher_init(), 0);
	int rc = env_create(&e);
	CHECK_EQ(rc, 0);
	if (e.fs) {
		CHECK_EQ(fs_getattr(e.fs, &ctx, ROOT, &a), 0);
		CHECK(S_ISDIR(a.mode));
		test_rw(e.fs);
		test_dirs_links(e.fs);
		test_rename(e.fs);
		test_xattr(e.fs);
		CHECK_EQ(fs_commit(e.fs), 0);
		CHECK_EQ(check_fs(e.fs), 0);
		/* the rotation needs the admin session init made */
		test_staged_read(&e);
		test_reencrypt(&e);
		test_unlink_open(&e);
	}
	if (e.fs)
		test_failed_op(&e);
	/* everything persists across a reopen */
	if (e.s)
		CHECK_EQ(env_reopen(&e), 0);
	if (e.fs) {
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "data", &a), 0);
		CHECK_EQ(fs_read(e.fs, &ctx, a.ino, buf, sizeof buf, 0), 10);
		CHECK(memcmp(buf, "persist me", 10) == 0);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "xf", &a), 0);
		CHECK_EQ(fs_getxattr(e.fs, &ctx, a.ino, "user.b", buf, sizeof buf), 7);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "x", &a), -ENOENT);
		test_tamper(&e);
		if (e.fs)
			test_planted(&e);
		if (e.fs)
			test_planted_live(&e);
		if (e.fs)
			test_check_terminates(&e);
		if (e.fs)
			test_block_key(&e);
	}
	/* a read-only fs refuses changes */
	o = opts(&e);
	o.read_only = 1;
	if (e.s)
		CHECK_EQ(env_reopen_opts(&e, &o), 0);
	if (e.fs) {
		CHECK_EQ(fs_mknod(e.fs, &ctx, ROOT, "ro", S_IFREG | 0644, 0, 0, &a),
		         -EROFS);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "data", &a), 0);
		CHECK_EQ(fs_write(e.fs, &ctx, a.ino, "x", 1, 0), -EROFS);
		CHECK_EQ(fs_read(e.fs, &ctx, a.ino, buf, sizeof buf, 0), 10);
	}
	env_free(&e);
	CHECK_EQ(unit_env_done(&e.ue), 0);
	UNIT_END("test_fs");
}
