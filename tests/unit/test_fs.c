/*
 * test_fs.c - the filesystem layer without FUSE, on a real store in a temp
 * dir built as `custodyctl init` builds one: lookups, reads and writes
 * across block boundaries and holes, truncation, rename flags, unlink of
 * an open file, the orphan sweep, xattr flags, persistence across reopen.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cipher.h"
#include "config.h"
#include "fs.h"
#include "keyring.h"
#include "passphrase.h"
#include "store.h"
#include "unit.h"
/* white box: the op bracket and the store's connection */
#include "../../src/fs/fs_internal.h"
#include "../../src/store/store_internal.h"

#define BS 4096
#define ROOT STORE_ROOT_INO

static char dir[64], path[128];
static const struct fs_ctx ctx = { 0, 0, 1 };

struct env {
	struct store *s;
	struct keyring *kr;
	struct session *ss;
	struct fs *fs;
};

static struct fs_opts opts(void)
{
	struct fs_opts o = { 0 };
	o.commit_interval_ms = 1000;
	o.idle_checkpoint_ms = 1000;
	o.store_path = path;
	return o;
}

/* As cmd_init: authority, first admin, key v1, root directory. */
static int env_create(struct env *e)
{
	struct config cfg;
	struct passphrase pw;
	uint32_t v = 0;
	int rc;

	memset(e, 0, sizeof *e);
	config_defaults(&cfg);
	cfg.kdf_opslimit = 1;
	cfg.kdf_memlimit = 8192 * 1024;
	pw.buf = secmem_alloc(32);
	if (!pw.buf)
		return -ENOMEM;
	strcpy(pw.buf, "unit-test-pass");
	pw.len = strlen(pw.buf);
	if ((rc = store_open(path, STORE_CREATE, 1000, &e->s)))
		goto out;
	if ((rc = store_begin(e->s)) ||
	    (rc = auth_bootstrap(e->s, &cfg, "admin", &pw, &e->ss)) ||
	    (rc = keyring_new(&e->kr)) ||
	    (rc = keyring_rotate(e->kr, e->s, e->ss, 0, &v)) ||
	    (rc = fs_format(e->s, e->kr, 0, 0, BS)) ||
	    (rc = store_commit(e->s))) {
		store_rollback(e->s);
		goto out;
	}
	rc = v == 1 ? 0 : -EIO;
out:
	secmem_free(pw.buf);
	return rc;
}

static void env_free(struct env *e)
{
	if (e->fs)
		CHECK_EQ(fs_free(e->fs), 0);
	e->fs = NULL;
	keyring_free(e->kr);
	session_free(e->ss);
	store_close(e->s);
	memset(e, 0, sizeof *e);
}

/* Close the fs and the store (keeping the keyring), then reopen both. */
static int env_reopen(struct env *e)
{
	struct fs_opts o = opts();
	int rc;

	if (e->fs)
		CHECK_EQ(fs_free(e->fs), 0);
	e->fs = NULL;
	store_close(e->s);
	e->s = NULL;
	if ((rc = store_open(path, 0, 1000, &e->s)))
		return rc;
	return fs_new(e->s, e->kr, NULL, &o, &e->fs);
}

static uint64_t mkfile(struct fs *fs, uint64_t parent, const char *name)
{
	struct fs_attr a;
	int rc = fs_mknod(fs, &ctx, parent, name, S_IFREG | 0644, 0, &a);
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

	if (!buf || fs_getattr(fs, ino, &a) || a.size != len) {
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
	CHECK_EQ(fs_mknod(fs, &ctx, ROOT, "data", S_IFREG | 0644, 0, &a), -EEXIST);
	CHECK_EQ(fs_open(fs, &ctx, ino, O_RDWR), 0);

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
	CHECK_EQ(fs_getattr(fs, ino, &a), 0);
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
	CHECK_EQ(fs_open(fs, &ctx, ino, O_WRONLY | O_TRUNC), 0);
	CHECK_EQ(fs_getattr(fs, ino, &a), 0);
	CHECK_EQ(a.size, 0);
	fs_release(fs, &ctx, ino);

	/* mode change keeps the type */
	set.mode = 0600;
	CHECK_EQ(fs_setattr(fs, &ctx, ino, &set, FS_SET_MODE, &a), 0);
	CHECK_EQ(a.mode, S_IFREG | 0600);

	/* leave known content for the reopen test */
	CHECK_EQ(write_all(fs, ino, "persist me", 10, 0), 0);
	fs_release(fs, &ctx, ino);

	/* errors */
	CHECK_EQ(fs_write(fs, &ctx, ROOT, "x", 1, 0), -EISDIR);
	CHECK_EQ(fs_read(fs, &ctx, ROOT, buf, 1, 0), -EISDIR);
	set.size = 0;
	CHECK_EQ(fs_setattr(fs, &ctx, ROOT, &set, FS_SET_SIZE, &a), -EISDIR);
	CHECK_EQ(fs_read(fs, &ctx, 987654, buf, 1, 0), -ENOENT);
	char longname[300];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	CHECK_EQ(fs_mknod(fs, &ctx, ROOT, longname, S_IFREG | 0644, 0, &a),
	         -ENAMETOOLONG);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, longname, &a), -ENAMETOOLONG);
	CHECK_EQ(fs_mknod(fs, &ctx, ino, "child", S_IFREG | 0644, 0, &a), -ENOTDIR);
}

static int count_entry(void *arg, const char *name, uint64_t ino,
                       uint32_t mode, int64_t next)
{
	(void)name; (void)ino; (void)mode; (void)next;
	(*(int *)arg)++;
	return 0;
}

static void test_dirs_links(struct fs *fs)
{
	struct fs_attr a, d;
	char buf[256];
	uint64_t f;
	int n;

	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "dir", 0755, &d), 0);
	CHECK(S_ISDIR(d.mode));
	CHECK_EQ(d.nlink, 2);
	f = mkfile(fs, d.ino, "inner");
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "dir"), -ENOTEMPTY);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "dir"), -EISDIR);
	CHECK_EQ(fs_rmdir(fs, &ctx, d.ino, "inner"), -ENOTDIR);
	n = 0;
	CHECK_EQ(fs_readdir(fs, &ctx, d.ino, 0, count_entry, &n), 0);
	CHECK_EQ(n, 3); /* . .. inner */

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
	CHECK(S_ISLNK(a.mode));
	CHECK_EQ(a.size, 9);
	CHECK_EQ(fs_readlink(fs, &ctx, a.ino, buf, sizeof buf), 9);
	CHECK(strcmp(buf, "dir/inner") == 0);
	CHECK(fs_readlink(fs, &ctx, f, buf, sizeof buf) < 0);

	/* remove them */
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "sym"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "hard"), 0);
	CHECK_EQ(fs_getattr(fs, f, &a), 0);
	CHECK_EQ(a.nlink, 1);
	CHECK_EQ(fs_unlink(fs, &ctx, d.ino, "inner"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, d.ino, "inner"), -ENOENT);
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "dir"), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "dir", &a), -ENOENT);
}

static void test_rename(struct fs *fs)
{
	struct fs_attr a, d1, d2;
	uint64_t x, y;
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
	CHECK_EQ(fs_getattr(fs, y, &a), -ENOENT);

	/* directories */
	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "d1", 0755, &d1), 0);
	CHECK_EQ(fs_mkdir(fs, &ctx, ROOT, "d2", 0755, &d2), 0);
	mkfile(fs, d2.ino, "f");
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "d2", 0), -ENOTEMPTY);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "x", ROOT, "d1", 0), -EISDIR);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "x", 0), -ENOTDIR);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d2", d2.ino, "sub", 0), -EINVAL);
	/* move a dir into another: link counts follow */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", d2.ino, "d1", 0), 0);
	CHECK_EQ(fs_getattr(fs, d2.ino, &a), 0);
	CHECK_EQ(a.nlink, 3);
	CHECK_EQ(fs_getattr(fs, ROOT, &a), 0);
	uint32_t root_links = a.nlink;
	/* and a dir cannot move below its own child */
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d2", d1.ino, "loop", 0), -EINVAL);
	CHECK_EQ(fs_rename(fs, &ctx, d2.ino, "d1", ROOT, "d1", 0), 0);
	CHECK_EQ(fs_getattr(fs, ROOT, &a), 0);
	CHECK_EQ(a.nlink, root_links + 1);
	/* replace an empty dir with a dir */
	CHECK_EQ(fs_unlink(fs, &ctx, d2.ino, "f"), 0);
	CHECK_EQ(fs_rename(fs, &ctx, ROOT, "d1", ROOT, "d2", 0), 0);
	CHECK_EQ(fs_getattr(fs, ROOT, &a), 0);
	CHECK_EQ(a.nlink, root_links); /* one subdirectory fewer */
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "d2", &a), 0);
	CHECK_EQ(a.ino, d1.ino);
	CHECK_EQ(fs_rmdir(fs, &ctx, ROOT, "d2"), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "x"), 0);
}

static void test_unlink_open(struct env *e)
{
	struct fs *fs = e->fs;
	struct store_inode si;
	struct fs_attr a;
	char buf[64];
	uint64_t u, o;

	u = mkfile(fs, ROOT, "open-unlinked"); /* nlookup 1 */
	CHECK_EQ(fs_open(fs, &ctx, u, O_RDWR), 0);
	CHECK_EQ(write_all(fs, u, "still here", 10, 0), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "open-unlinked"), 0);
	CHECK_EQ(fs_lookup(fs, &ctx, ROOT, "open-unlinked", &a), -ENOENT);
	CHECK_EQ(fs_read(fs, &ctx, u, buf, sizeof buf, 0), 10);
	CHECK(memcmp(buf, "still here", 10) == 0);
	CHECK_EQ(write_all(fs, u, "!", 1, 10), 0); /* writable too */
	CHECK_EQ(fs_getattr(fs, u, &a), 0);
	CHECK_EQ(a.nlink, 0);
	CHECK_EQ(a.size, 11);
	fs_release(fs, &ctx, u);
	/* the kernel still holds a lookup reference */
	CHECK_EQ(store_inode_get(e->s, u, &si), 0);
	fs_forget(fs, u, 1);
	CHECK_EQ(store_inode_get(e->s, u, &si), -ENOENT);
	CHECK_EQ(fs_getattr(fs, u, &a), -ENOENT);

	/* forget before release: the open handle keeps it alive */
	u = mkfile(fs, ROOT, "second");
	CHECK_EQ(fs_open(fs, &ctx, u, O_RDONLY), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "second"), 0);
	fs_forget(fs, u, 1);
	CHECK_EQ(store_inode_get(e->s, u, &si), 0);
	fs_release(fs, &ctx, u);
	CHECK_EQ(store_inode_get(e->s, u, &si), -ENOENT);

	/* a crash while an unlinked file is open leaves an orphan that the
	 * next fs_new sweeps away (with its blocks) */
	o = mkfile(fs, ROOT, "orphan");
	CHECK_EQ(fs_open(fs, &ctx, o, O_RDWR), 0);
	CHECK_EQ(write_all(fs, o, "orphaned data", 13, 0), 0);
	CHECK_EQ(fs_unlink(fs, &ctx, ROOT, "orphan"), 0);
	CHECK_EQ(env_reopen(e), 0); /* no release, no forget */
	if (!e->fs)
		return;
	uint32_t kv;
	size_t n;
	uint8_t cbuf[BS + 64];
	CHECK_EQ(store_inode_get(e->s, o, &si), -ENOENT);
	/* its blocks wait in the purge queue until the daemon's tick */
	CHECK_EQ(store_block_get(e->s, o, 0, &kv, cbuf, sizeof cbuf, &n), 0);
	for (int i = 0; i < 50; i++) /* one queued inode per tick */
		fs_tick(e->fs);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(store_block_get(e->s, o, 0, &kv, cbuf, sizeof cbuf, &n), -ENOENT);
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

/*
 * Operations run without savepoints: one that fails after changing rows
 * rolls the whole uncommitted group back (fs_op_end), so the store stays
 * consistent, committed data survives and later operations work. And a
 * write that runs out of space part way is short, never half-applied.
 */
/*
 * Large reads are staged: ciphertext copied under the lock, decrypted
 * after it (blockio_stage/unstage). Same bytes as the plain path for an
 * aligned read, an unaligned one, a hole, a short last block and blocks of
 * two key versions; a tampered block and a block missing from a dense file
 * give EIO; with every stage busy the plain path answers the same.
 */
static void test_staged_read(struct env *e)
{
	enum { DATA = 300 * 1024, TAIL = 700 * 1024 + 3, LEN = TAIL + 1 };
	static uint8_t want[LEN];
	static char got[FS_STAGE_MAX];
	struct fs *fs = e->fs;
	uint64_t f, d;
	uint32_t v = 0;
	char sql[128];
	ssize_t r;

	for (size_t i = 0; i < DATA; i++)
		want[i] = (uint8_t)(i * 31 + 7 + i / 4096);
	memset(want + DATA, 0, LEN - DATA);
	want[TAIL] = 'Z';
	f = mkfile(fs, ROOT, "staged");
	CHECK_EQ(write_all(fs, f, want, DATA / 2, 0), 0);
	/* the second half under a new key version */
	CHECK_EQ(fs_commit(fs), 0);
	pthread_mutex_lock(&fs->lock);
	CHECK_EQ(store_begin(e->s), 0);
	CHECK_EQ(keyring_rotate(e->kr, e->s, e->ss, 0, &v), 0);
	CHECK_EQ(store_commit(e->s), 0);
	pthread_mutex_unlock(&fs->lock);
	CHECK_EQ(v, 2);
	CHECK_EQ(write_all(fs, f, want + DATA / 2, DATA - DATA / 2, DATA / 2), 0);
	CHECK_EQ(write_all(fs, f, "Z", 1, TAIL), 0); /* a hole before it */
	CHECK_EQ(fs_commit(fs), 0);

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

	/* a forged block in the middle of a large read (the original is put
	 * back afterwards, so later checks see a sound store) */
	snprintf(sql, sizeof sql, "CREATE TEMP TABLE keep AS SELECT * FROM blocks"
	         " WHERE ino=%llu AND blk=40", (unsigned long long)f);
	CHECK_EQ(sqlite3_exec(e->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof sql, "UPDATE blocks SET data=randomblob(length(data))"
	         " WHERE ino=%llu AND blk=40", (unsigned long long)f);
	CHECK_EQ(sqlite3_exec(e->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), -EIO);
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 39 * BS), BS); /* its neighbour */
	CHECK_EQ(fs_read(fs, &ctx, f, got, BS, 40 * BS), -EIO);
	CHECK_EQ(sqlite3_exec(e->s->db, "REPLACE INTO blocks SELECT * FROM keep;"
	                      " DELETE FROM keep", NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(fs_read(fs, &ctx, f, got, sizeof got, 0), LEN);
	/* a block deleted from a dense file */
	d = mkfile(fs, ROOT, "dense");
	CHECK_EQ(write_all(fs, d, want, DATA, 0), 0);
	CHECK_EQ(fs_commit(fs), 0);
	snprintf(sql, sizeof sql, "INSERT INTO keep SELECT * FROM blocks"
	         " WHERE ino=%llu AND blk=5", (unsigned long long)d);
	CHECK_EQ(sqlite3_exec(e->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof sql, "DELETE FROM blocks WHERE ino=%llu AND blk=5",
	         (unsigned long long)d);
	CHECK_EQ(sqlite3_exec(e->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(fs_read(fs, &ctx, d, got, sizeof got, 0), -EIO);
	CHECK_EQ(sqlite3_exec(e->s->db, "INSERT INTO blocks SELECT * FROM keep;"
	                      " DROP TABLE keep", NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(fs_read(fs, &ctx, d, got, sizeof got, 0), DATA);
	CHECK(memcmp(got, want, DATA) == 0);
}

static void test_failed_op(struct env *e)
{
	static char big[256 * 1024];
	struct fs_check_ops ck = { 0 };
	struct fs_check_stats st;
	struct store_inode junk;
	struct fs_attr a;
	char buf[BS], sql[64];
	sqlite3_stmt *q;
	uint64_t kept, gone;
	int64_t pages = 0;
	ssize_t n;

	kept = mkfile(e->fs, ROOT, "kept");
	memset(buf, 'A', sizeof buf);
	CHECK_EQ(write_all(e->fs, kept, buf, BS, 0), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
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
	/* with no group transaction, an operation's read transaction ends
	 * with it: nothing stays open, and the next write can begin */
	CHECK_EQ(store_in_transaction(e->s), 0);
	CHECK_EQ(fs_getattr(e->fs, junk.ino, &a), -ENOENT);
	CHECK_EQ(store_in_transaction(e->s), 0);
	CHECK_EQ(fs_read(e->fs, &ctx, kept, buf, BS, 0), BS);
	CHECK(buf[0] == 'A' && buf[BS - 1] == 'A');
	CHECK_EQ(fs_check(e->fs, &ck, &st), 0);

	/* an op that fails before changing anything leaves the group alone */
	gone = mkfile(e->fs, ROOT, "stays");
	CHECK_EQ(fs_mknod(e->fs, &ctx, ROOT, "stays", S_IFREG | 0644, 0, &a),
	         -EEXIST);
	CHECK_EQ(fs_lookup(e->fs, &ctx, ROOT, "stays", &a), 0);

	/* the disk fills half way through a write: a short write */
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(sqlite3_prepare_v2(e->s->db, "PRAGMA page_count", -1, &q, NULL),
	         SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		pages = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)pages);
	CHECK_EQ(sqlite3_exec(e->s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	memset(big, 'B', sizeof big);
	n = fs_write(e->fs, &ctx, kept, big, sizeof big, 0);
	CHECK(n == -ENOSPC || (n > 0 && n < (ssize_t)sizeof big));
	CHECK_EQ(sqlite3_exec(e->s->db, "PRAGMA max_page_count=1073741823",
	                      NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(fs_getattr(e->fs, kept, &a), 0);
	CHECK_EQ(a.size, n > 0 ? (uint64_t)(n > BS ? n : BS) : (uint64_t)BS);
	CHECK_EQ(fs_check(e->fs, &ck, &st), 0);
	CHECK_EQ(write_all(e->fs, kept, big, sizeof big, 0), 0);
	CHECK_EQ(fs_commit(e->fs), 0);
	CHECK_EQ(fs_check(e->fs, &ck, &st), 0);
}

int main(void)
{
	struct env e;
	struct fs_opts o = opts();
	struct fs_attr a;
	char buf[32];

	CHECK_EQ(cipher_init(), 0);
	snprintf(dir, sizeof dir, "/var/tmp/cfs-unit-fs.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/s.db", dir);
	int rc = env_create(&e);
	CHECK_EQ(rc, 0);
	if (!rc) {
		CHECK_EQ(fs_new(e.s, e.kr, NULL, &o, &e.fs), 0);
	}
	if (e.fs) {
		CHECK_EQ(fs_getattr(e.fs, ROOT, &a), 0);
		CHECK(S_ISDIR(a.mode));
		test_rw(e.fs);
		test_dirs_links(e.fs);
		test_rename(e.fs);
		test_xattr(e.fs);
		CHECK_EQ(fs_commit(e.fs), 0);
		test_unlink_open(&e);
		test_staged_read(&e);
		test_failed_op(&e);
	}
	/* everything persists across a reopen */
	if (e.s) {
		CHECK_EQ(env_reopen(&e), 0);
	}
	if (e.fs) {
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "data", &a), 0);
		CHECK_EQ(fs_read(e.fs, &ctx, a.ino, buf, sizeof buf, 0), 10);
		CHECK(memcmp(buf, "persist me", 10) == 0);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "xf", &a), 0);
		CHECK_EQ(fs_getxattr(e.fs, &ctx, a.ino, "user.b", buf, sizeof buf), 7);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "x", &a), -ENOENT);
	}
	/* a read-only fs refuses changes */
	if (e.s) {
		fs_free(e.fs);
		o.read_only = 1;
		e.fs = NULL;
		CHECK_EQ(fs_new(e.s, e.kr, NULL, &o, &e.fs), 0);
	}
	if (e.fs) {
		CHECK_EQ(fs_mknod(e.fs, &ctx, ROOT, "ro", S_IFREG | 0644, 0, &a),
		         -EROFS);
		CHECK_EQ(fs_lookup(e.fs, &ctx, ROOT, "data", &a), 0);
		CHECK_EQ(fs_write(e.fs, &ctx, a.ino, "x", 1, 0), -EROFS);
		CHECK_EQ(fs_read(e.fs, &ctx, a.ino, buf, sizeof buf, 0), 10);
	}
	env_free(&e);
	rm_store(path);
	CHECK_EQ(rmdir(dir), 0);
	UNIT_END("test_fs");
}
