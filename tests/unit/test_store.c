/*
 * test_store.c - the store module on a real SQLite file in a temp dir:
 * create/reopen, refusing to overwrite, refusing files that are not
 * stores (or newer formats), and every row type the filesystem uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cipher.h"
#include "store.h"
#include "unit.h"

static char dir[64];

static void path_of(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static int write_file(const char *p, const void *data, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	ssize_t n = len ? write(fd, data, len) : 0;
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) ? -1 : (int)sb.st_size;
}

static void fill_inode(struct store_inode *in, uint32_t mode, uint64_t size)
{
	memset(in, 0, sizeof *in);
	cipher_random(in->file_id, sizeof in->file_id);
	in->key_version = 1;
	in->mode = mode;
	in->uid = 1000;
	in->gid = 100;
	in->nlink = 1;
	in->size = size;
	in->atime = 1700000000000000001ll;
	in->mtime = 1700000000000000002ll;
	in->ctime = 1700000000000000003ll;
	in->generation = 9;
	cipher_random(in->mac, sizeof in->mac);
}

static int count_cb(void *arg, const struct store_dentry *d)
{
	(void)d;
	(*(int *)arg)++;
	return 0;
}

static int stop_cb(void *arg, const struct store_dentry *d)
{
	(void)arg;
	(void)d;
	return 42;
}

struct xseen {
	int n;
	size_t total;
};

static int xattr_cb(void *arg, const struct store_xattr *x)
{
	struct xseen *s = arg;
	s->n++;
	s->total += x->namelen + x->valuelen;
	return 0;
}

struct bseen {
	uint64_t blks[8];
	int n;
};

static int block_cb(void *arg, uint64_t blk, uint32_t kv, const void *data,
                    size_t len)
{
	struct bseen *b = arg;
	(void)kv;
	(void)data;
	(void)len;
	if (b->n < 8)
		b->blks[b->n] = blk;
	b->n++;
	return 0;
}

static void make_tag(uint8_t tag[STORE_TAG_BYTES], int seed)
{
	memset(tag, 0, STORE_TAG_BYTES);
	tag[0] = (uint8_t)seed;
	tag[31] = (uint8_t)(seed * 7);
}

static void test_create_reopen(const char *p)
{
	struct store *s = NULL;
	char buf[64];
	size_t n = 0;
	int64_t v = 0;

	CHECK_EQ(store_open(p, 0, 1000, &s), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_CREATE, 1000, &s), 0);
	if (!s)
		return;
	CHECK_EQ(store_meta_get_int(s, "format", &v), 0);
	CHECK_EQ(v, STORE_FORMAT_VERSION);
	CHECK_EQ(store_meta_set(s, "greeting", "hello", 5), 0);
	CHECK_EQ(store_meta_set_int(s, "answer", -42), 0);
	CHECK_EQ(store_meta_get(s, "nothing", buf, sizeof buf, &n), -ENOENT);
	store_close(s);

	/* never over an existing file, and that file is left alone */
	int before = file_size(p);
	s = NULL;
	CHECK_EQ(store_open(p, STORE_CREATE, 1000, &s), -EEXIST);
	CHECK(s == NULL);
	CHECK_EQ(file_size(p), before);

	CHECK_EQ(store_open(p, 0, 1000, &s), 0);
	if (!s)
		return;
	CHECK_EQ(store_meta_get(s, "greeting", buf, sizeof buf, &n), 0);
	CHECK_EQ(n, 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(store_meta_get(s, "greeting", buf, 4, &n), -EIO); /* too small */
	CHECK_EQ(store_meta_get_int(s, "answer", &v), 0);
	CHECK_EQ(v, -42);
	CHECK_EQ(store_meta_get_int(s, "greeting", &v), -EIO); /* not a number */
	CHECK_EQ(store_meta_set(s, "greeting", "bye", 3), 0); /* replace */
	CHECK_EQ(store_meta_get(s, "greeting", buf, sizeof buf, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(store_integrity_check(s, buf, sizeof buf), 0);
	CHECK(strcmp(buf, "ok") == 0);
	store_close(s);

	/* read-only open sees the same and refuses writes */
	CHECK_EQ(store_open(p, STORE_READONLY, 1000, &s), 0);
	if (!s)
		return;
	CHECK_EQ(store_meta_get(s, "greeting", buf, sizeof buf, &n), 0);
	CHECK(store_meta_set(s, "greeting", "x", 1) < 0);
	store_close(s);
}

static void test_inodes_blocks_xattrs(struct store *s)
{
	struct store_inode a, b, got;
	uint8_t data[4096 + 40], buf[8192];
	uint8_t tag1[STORE_TAG_BYTES], tag2[STORE_TAG_BYTES];
	uint32_t kv = 0;
	size_t n = 0;
	int created = -1;
	uint64_t deleted = 99, count = 0;

	CHECK_EQ(store_begin(s), 0);
	CHECK_EQ(store_in_transaction(s), 1);
	fill_inode(&a, 0100644, 12345);
	CHECK_EQ(store_inode_insert(s, &a), 0);
	CHECK(a.ino != 0);
	fill_inode(&b, 0040755, 0);
	CHECK_EQ(store_inode_insert(s, &b), 0);
	CHECK(b.ino != a.ino);
	CHECK_EQ(store_commit(s), 0);
	CHECK_EQ(store_in_transaction(s), 0);

	CHECK_EQ(store_inode_get(s, a.ino, &got), 0);
	CHECK_EQ(got.ino, a.ino);
	CHECK(memcmp(got.file_id, a.file_id, sizeof a.file_id) == 0);
	CHECK(memcmp(got.mac, a.mac, sizeof a.mac) == 0);
	CHECK_EQ(got.mode, 0100644);
	CHECK_EQ(got.uid, 1000);
	CHECK_EQ(got.gid, 100);
	CHECK_EQ(got.size, 12345);
	CHECK_EQ(got.atime, a.atime);
	CHECK_EQ(got.mtime, a.mtime);
	CHECK_EQ(got.ctime, a.ctime);
	CHECK_EQ(got.generation, 9);
	CHECK_EQ(store_inode_get(s, 999999, &got), -ENOENT);

	a.size = 1;
	a.nlink = 2;
	a.nblocks = 3;
	CHECK_EQ(store_inode_update(s, &a), 0);
	CHECK_EQ(store_inode_get(s, a.ino, &got), 0);
	CHECK_EQ(got.size, 1);
	CHECK_EQ(got.nlink, 2);
	CHECK_EQ(got.nblocks, 3);
	got.ino = 999999;
	CHECK_EQ(store_inode_update(s, &got), -ENOENT);

	/* blocks: created the first time, replaced the second */
	cipher_random(data, sizeof data);
	CHECK_EQ(store_block_put(s, a.ino, 0, 1, data, sizeof data, &created), 0);
	CHECK_EQ(created, 1);
	CHECK_EQ(store_block_put(s, a.ino, 0, 2, data, 100, &created), 0);
	CHECK_EQ(created, 0);
	CHECK_EQ(store_block_get(s, a.ino, 0, &kv, buf, sizeof buf, &n), 0);
	CHECK_EQ(kv, 2);
	CHECK_EQ(n, 100);
	CHECK(memcmp(buf, data, 100) == 0);
	CHECK_EQ(store_block_put(s, a.ino, 1, 1, data, sizeof data, &created), 0);
	CHECK_EQ(created, 1);
	CHECK_EQ(store_block_put(s, a.ino, 5, 1, data, sizeof data, &created), 0);
	CHECK_EQ(store_block_put(s, a.ino, 7, 1, data, sizeof data, &created), 0);
	CHECK_EQ(store_block_get(s, a.ino, 1, &kv, buf, sizeof buf, &n), 0);
	CHECK_EQ(n, sizeof data);
	CHECK(memcmp(buf, data, sizeof data) == 0);
	/* a buffer too small for the stored blob is an error, not an overflow */
	CHECK_EQ(store_block_get(s, a.ino, 1, &kv, buf, 10, &n), -EIO);
	CHECK_EQ(store_block_get(s, a.ino, 3, &kv, buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_block_get(s, b.ino, 0, &kv, buf, sizeof buf, &n), -ENOENT);
	struct bseen bs = { { 0 }, 0 };
	CHECK_EQ(store_block_each(s, a.ino, block_cb, &bs), 0);
	CHECK_EQ(bs.n, 4);
	CHECK(bs.blks[0] == 0 && bs.blks[1] == 1 && bs.blks[2] == 5 &&
	      bs.blks[3] == 7);
	CHECK_EQ(store_block_count(s, &count), 0);
	CHECK_EQ(count, 4);
	CHECK_EQ(store_block_truncate(s, a.ino, 2, &deleted), 0);
	CHECK_EQ(deleted, 2);
	CHECK_EQ(store_block_get(s, a.ino, 5, &kv, buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_block_get(s, a.ino, 1, &kv, buf, sizeof buf, &n), 0);
	CHECK_EQ(store_block_truncate(s, a.ino, 2, &deleted), 0);
	CHECK_EQ(deleted, 0);
	CHECK_EQ(store_block_truncate(s, a.ino, UINT64_MAX, &deleted), 0);
	CHECK_EQ(deleted, 0);

	/* xattrs */
	struct store_xattr x = { 0 };
	make_tag(tag1, 1);
	make_tag(tag2, 2);
	x.ino = a.ino;
	memcpy(x.tag, tag1, sizeof tag1);
	x.key_version = 1;
	x.name = "name-ct-1";
	x.namelen = 9;
	x.value = "value-ciphertext-1";
	x.valuelen = 18;
	CHECK_EQ(store_xattr_put(s, &x), 0);
	memcpy(x.tag, tag2, sizeof tag2);
	x.name = "name-ct-2";
	x.value = "v2";
	x.valuelen = 2;
	CHECK_EQ(store_xattr_put(s, &x), 0);
	CHECK_EQ(store_xattr_get(s, a.ino, tag1, &kv, buf, sizeof buf, &n), 0);
	CHECK_EQ(n, 18);
	CHECK(memcmp(buf, "value-ciphertext-1", 18) == 0);
	CHECK_EQ(store_xattr_get(s, a.ino, tag1, &kv, buf, 17, &n), -ERANGE);
	CHECK_EQ(store_xattr_get(s, a.ino, tag1, &kv, buf, 18, &n), 0);
	CHECK_EQ(store_xattr_get(s, b.ino, tag1, &kv, buf, sizeof buf, &n), -ENOENT);
	/* replace in place */
	memcpy(x.tag, tag1, sizeof tag1);
	x.value = "new";
	x.valuelen = 3;
	x.key_version = 4;
	CHECK_EQ(store_xattr_put(s, &x), 0);
	CHECK_EQ(store_xattr_get(s, a.ino, tag1, &kv, buf, sizeof buf, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(kv, 4);
	struct xseen xs = { 0, 0 };
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 2);
	CHECK_EQ(xs.total, 9 + 3 + 9 + 2);
	CHECK_EQ(store_xattr_delete(s, a.ino, tag2), 0);
	CHECK_EQ(store_xattr_delete(s, a.ino, tag2), -ENOENT);
	xs.n = 0;
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 1);

	/* deleting the inode takes its xattrs at once; its blocks wait in
	 * the purge queue and go in bounded batches */
	CHECK_EQ(store_inode_delete(s, a.ino), 0);
	CHECK_EQ(store_inode_get(s, a.ino, &got), -ENOENT);
	CHECK_EQ(store_block_get(s, a.ino, 0, &kv, buf, sizeof buf, &n), 0);
	{
		uint64_t del = 0, total = 0;
		int r;
		/* a batch of 1 block at a time: two steps, then the queue is empty */
		while ((r = store_purge_step(s, 1, &del)) == 1)
			total += del;
		CHECK_EQ(r, 0);
		CHECK_EQ(total, 2);
	}
	CHECK_EQ(store_block_get(s, a.ino, 0, &kv, buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_block_get(s, a.ino, 1, &kv, buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_xattr_get(s, a.ino, tag1, &kv, buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_block_count(s, &count), 0);
	CHECK_EQ(count, 0);
	CHECK_EQ(store_inode_get(s, b.ino, &got), 0); /* the other is untouched */

	/* a rolled-back transaction leaves nothing */
	CHECK_EQ(store_begin(s), 0);
	fill_inode(&a, 0100600, 0);
	CHECK_EQ(store_inode_insert(s, &a), 0);
	store_rollback(s);
	CHECK_EQ(store_inode_get(s, a.ino, &got), -ENOENT);
	/* a rolled-back savepoint inside a committed transaction */
	CHECK_EQ(store_begin(s), 0);
	CHECK_EQ(store_savepoint(s), 0);
	fill_inode(&a, 0100600, 0);
	CHECK_EQ(store_inode_insert(s, &a), 0);
	store_rollback_savepoint(s);
	CHECK_EQ(store_savepoint(s), 0);
	fill_inode(&got, 0100600, 7);
	CHECK_EQ(store_inode_insert(s, &got), 0);
	CHECK_EQ(store_release(s), 0);
	CHECK_EQ(store_commit(s), 0);
	struct store_inode t;
	CHECK_EQ(store_inode_get(s, got.ino, &t), 0);
	CHECK_EQ(t.size, 7);
	CHECK_EQ(store_inode_delete(s, got.ino), 0);
}

static void test_dentries(struct store *s)
{
	struct store_dentry d, got;
	uint8_t tag[STORE_TAG_BYTES];
	int n;

	CHECK_EQ(store_dentry_any(s, 500), 0);
	memset(&d, 0, sizeof d);
	d.parent = 500;
	d.key_version = 1;
	for (int i = 0; i < 3; i++) {
		make_tag(d.tag, 10 + i);
		d.namelen = (size_t)snprintf((char *)d.name, sizeof d.name,
		                             "enc-name-%d", i);
		d.ino = 600 + (uint64_t)i;
		CHECK_EQ(store_dentry_insert(s, &d), 0);
	}
	/* unique (parent, tag) */
	make_tag(d.tag, 10);
	CHECK_EQ(store_dentry_insert(s, &d), -EEXIST);
	d.parent = 501; /* same tag in another directory is fine */
	CHECK_EQ(store_dentry_insert(s, &d), 0);

	CHECK_EQ(store_dentry_any(s, 500), 1);
	make_tag(tag, 11);
	CHECK_EQ(store_dentry_get(s, 500, tag, &got), 0);
	CHECK_EQ(got.ino, 601);
	CHECK_EQ(got.parent, 500);
	CHECK_EQ(got.namelen, 10);
	CHECK(memcmp(got.name, "enc-name-1", 10) == 0);
	CHECK_EQ(store_dentry_get(s, 502, tag, &got), -ENOENT);

	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, 0, count_cb, &n), 0);
	CHECK_EQ(n, 3);
	/* resume after the second entry's id */
	CHECK_EQ(store_dentry_get(s, 500, tag, &got), 0);
	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, got.id, count_cb, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(store_dentry_each(s, 500, 0, stop_cb, NULL), 42);
	n = 0;
	CHECK_EQ(store_dentry_all(s, count_cb, &n), 0);
	CHECK_EQ(n, 4);

	CHECK_EQ(store_dentry_of_ino(s, 602, &got), 0);
	CHECK_EQ(got.parent, 500);
	CHECK_EQ(store_dentry_of_ino(s, 999, &got), -ENOENT);

	/* rename in place */
	CHECK_EQ(store_dentry_get(s, 500, tag, &got), 0);
	make_tag(got.tag, 20);
	memcpy(got.name, "renamed", 7);
	got.namelen = 7;
	CHECK_EQ(store_dentry_update(s, &got), 0);
	CHECK_EQ(store_dentry_get(s, 500, tag, &d), -ENOENT);
	make_tag(tag, 20);
	CHECK_EQ(store_dentry_get(s, 500, tag, &d), 0);
	CHECK_EQ(d.namelen, 7);

	CHECK_EQ(store_dentry_delete(s, 500, tag), 0);
	CHECK_EQ(store_dentry_delete(s, 500, tag), -ENOENT);
	make_tag(tag, 10);
	CHECK_EQ(store_dentry_delete(s, 500, tag), 0);
	make_tag(tag, 12);
	CHECK_EQ(store_dentry_delete(s, 500, tag), 0);
	CHECK_EQ(store_dentry_any(s, 500), 0);
	CHECK_EQ(store_dentry_any(s, 501), 1);
}

/*
 * Read transactions: one snapshot for a run of reads; refused inside any
 * transaction; ending one inside a write transaction leaves that alone; a
 * write transaction can begin once it ended.
 */
static void test_read_tx(struct store *s)
{
	struct store_inode got;

	CHECK_EQ(store_read_begin(s), 0);
	CHECK_EQ(store_in_transaction(s), 1);
	(void)store_inode_get(s, 1, &got); /* a read inside it */
	CHECK_EQ(store_read_begin(s), -EBUSY);
	CHECK(store_begin(s) != 0); /* no write transaction inside it */
	store_read_end(s);
	CHECK_EQ(store_in_transaction(s), 0);
	CHECK_EQ(store_begin(s), 0);
	CHECK_EQ(store_read_begin(s), -EBUSY);
	store_read_end(s); /* not ours: the write transaction stays */
	CHECK_EQ(store_in_transaction(s), 1);
	CHECK_EQ(store_commit(s), 0);
	CHECK_EQ(store_in_transaction(s), 0);
	store_read_end(s); /* none open: nothing happens */
	CHECK_EQ(store_in_transaction(s), 0);
}

static void test_not_a_store(void)
{
	char p[128], q[160];
	uint8_t junk[70000];
	struct store *s = NULL;

	/* random bytes */
	path_of(p, sizeof p, "random.db");
	cipher_random(junk, sizeof junk);
	CHECK_EQ(write_file(p, junk, sizeof junk), 0);
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_READONLY, 100, &s), -ENOTSUP);
	CHECK_EQ(file_size(p), (int)sizeof junk); /* untouched */
	rm_store(p);

	/* random bytes behind a real SQLite magic string */
	memcpy(junk, "SQLite format 3", 16);
	CHECK_EQ(write_file(p, junk, sizeof junk), 0);
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	rm_store(p);

	/* an empty file */
	path_of(p, sizeof p, "empty.db");
	CHECK_EQ(write_file(p, NULL, 0), 0);
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	CHECK(s == NULL);
	CHECK_EQ(file_size(p), 0); /* SQLite must not have initialised it */
	rm_store(p);

	/* a directory */
	path_of(p, sizeof p, "adir");
	CHECK_EQ(mkdir(p, 0700), 0);
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	rmdir(p);

	/* a plain SQLite database without our application_id: take a real
	 * store and zero the application_id field of its header (offset 68) */
	path_of(p, sizeof p, "plain.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s), 0);
	store_close(s);
	s = NULL;
	snprintf(q, sizeof q, "%s-wal", p);
	CHECK(access(q, F_OK) != 0); /* closing folded the WAL in */
	int fd = open(p, O_RDWR);
	CHECK(fd >= 0);
	if (fd >= 0) {
		const uint8_t zero[4] = { 0 };
		CHECK_EQ(pwrite(fd, zero, 4, 68), 4);
		close(fd);
	}
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	CHECK(s == NULL);
	rm_store(p);

	/* a store with a newer format */
	path_of(p, sizeof p, "future.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s), 0);
	if (s) {
		CHECK_EQ(store_meta_set_int(s, "format", 99), 0);
		store_close(s);
	}
	s = NULL;
	CHECK_EQ(store_open(p, 0, 100, &s), -EPROTO);
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_READONLY, 100, &s), -EPROTO);
	rm_store(p);

	/* a store whose format row is garbage or missing */
	path_of(p, sizeof p, "noformat.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s), 0);
	if (s) {
		CHECK_EQ(store_meta_set(s, "format", "x", 1), 0);
		store_close(s);
	}
	s = NULL;
	CHECK_EQ(store_open(p, 0, 100, &s), -ENOTSUP);
	rm_store(p);
}

int main(void)
{
	char p[128];
	struct store *s = NULL;

	CHECK_EQ(cipher_init(), 0);
	snprintf(dir, sizeof dir, "/var/tmp/cfs-unit-store.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	path_of(p, sizeof p, "s.db");
	test_create_reopen(p);
	CHECK_EQ(store_open(p, 0, 1000, &s), 0);
	if (s) {
		test_inodes_blocks_xattrs(s);
		test_dentries(s);
		test_read_tx(s);
		store_close(s);
	}
	/* everything above survives a reopen and is well-formed */
	s = NULL;
	CHECK_EQ(store_open(p, 0, 1000, &s), 0);
	if (s) {
		char msg[64];
		CHECK_EQ(store_integrity_check(s, msg, sizeof msg), 0);
		CHECK_EQ(store_dentry_any(s, 501), 1);
		store_close(s);
	}
	rm_store(p);
	test_not_a_store();
	CHECK_EQ(rmdir(dir), 0);
	UNIT_END("test_store");
}
