/*
 * test_store.c - the store module on a real SQLite file in a temp dir:
 * create/reopen, refusing to overwrite, refusing files that are not
 * stores (newer formats, older ones without STORE_ANYFORMAT, a schema
 * with anything custodyfs did not create), transactions, and every row
 * type of format 2, including what a hostile file can put in a column.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cipher.h"
#include "mtree.h"
#include "store.h"
#include "unit.h"
/* white box: the connection, to play the file writer with plain SQL */
#include "../../src/store/store_internal.h"

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

/* Plain SQL on the store's own connection, as an attacker would write. */
static int sql(struct store *s, const char *q)
{
	return sqlite3_exec(s->db, q, NULL, NULL, NULL);
}

static void fill_inode(struct store_inode *in, uint64_t ino, uint32_t mode,
                       uint64_t size)
{
	memset(in, 0, sizeof *in);
	in->ino = ino;
	cipher_random(in->file_id, sizeof in->file_id);
	in->mode = mode;
	in->uid = 1000;
	in->gid = 100;
	in->nlink = 1;
	in->size = size;
	in->atime = 1700000000000000001ll;
	in->mtime = 1700000000000000002ll;
	in->ctime = 1700000000000000003ll;
	in->generation = 9;
	in->nentries = 4;
	in->theight = 2;
	cipher_random(in->troot, sizeof in->troot);
	cipher_random(in->xdigest, sizeof in->xdigest);
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

/* store_block_with: copy the block out */
struct bcopy {
	uint32_t kv;
	uint8_t buf[8192];
	size_t n;
};

static int copy_block(void *arg, uint32_t kv, const void *data, size_t len)
{
	struct bcopy *b = arg;

	if (len > sizeof b->buf)
		return -E2BIG;
	b->kv = kv;
	memcpy(b->buf, data, len);
	b->n = len;
	return 0;
}

static int block_get(struct store *s, uint64_t ino, uint64_t blk,
                     struct bcopy *b)
{
	memset(b, 0, sizeof *b);
	return store_block_with(s, ino, blk, copy_block, b);
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
	char buf[64], why[256];
	size_t n = 0;
	int64_t v = 0;

	CHECK_EQ(store_open(p, 0, 1000, &s, why, sizeof why), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_CREATE, 1000, &s, why, sizeof why), 0);
	if (!s)
		return;
	CHECK_EQ(store_format(s), STORE_FORMAT_VERSION);
	CHECK_EQ(store_readonly(s), 0);
	/* format 2 keeps the format in the file header only: no meta row
	 * names it (a planted one is refused at open, test_ops.sh) */
	CHECK_EQ(store_meta_get_int(s, "format", &v), -ENOENT);
	CHECK_EQ(store_meta_set(s, "greeting", "hello", 5), 0);
	CHECK_EQ(store_meta_set_int(s, "answer", -42), 0);
	CHECK_EQ(store_meta_get(s, "nothing", buf, sizeof buf, &n), -ENOENT);
	CHECK_EQ(store_meta_set(s, "gone", "x", 1), 0);
	CHECK_EQ(store_meta_delete(s, "gone"), 0);
	CHECK_EQ(store_meta_get(s, "gone", buf, sizeof buf, &n), -ENOENT);
	/* the first store_changed says 1, then only another writer moves it */
	CHECK_EQ(store_changed(s), 1);
	CHECK_EQ(store_changed(s), 0);
	CHECK_EQ(store_schema_verify(s, why, sizeof why), 0);
	{
		uint64_t pages = 0, psize = 0, freep = 0;
		CHECK_EQ(store_file_stats(s, &pages, &psize, &freep), 0);
		CHECK_EQ(psize, STORE_PAGE_SIZE);
	}
	store_close(s);

	/* the page size follows the block size: a sealed block inline in a
	 * leaf of the blocks table (32 KiB pages hold up to 8,198 bytes) */
	CHECK_EQ(store_page_size(512), STORE_PAGE_SIZE);
	CHECK_EQ(store_page_size(4096), STORE_PAGE_SIZE);
	CHECK_EQ(store_page_size(8192), STORE_PAGE_SIZE_BIG);
	CHECK_EQ(store_page_size(65536), STORE_PAGE_SIZE_BIG);
	CHECK_EQ(store_create_flags(4096), STORE_CREATE);
	CHECK_EQ(store_create_flags(16384), STORE_CREATE | STORE_BIG_PAGES);
	{
		char big[4096];
		uint64_t pages = 0, psize = 0, freep = 0;
		struct store *b = NULL;
		snprintf(big, sizeof big, "%s.big", p);
		CHECK_EQ(store_open(big, store_create_flags(16384), 1000, &b, why,
		                    sizeof why), 0);
		if (b) {
			CHECK_EQ(store_file_stats(b, &pages, &psize, &freep), 0);
			CHECK_EQ(psize, STORE_PAGE_SIZE_BIG);
			store_close(b);
		}
		unlink(big);
		snprintf(big + strlen(big), sizeof big - strlen(big), "-wal");
		unlink(big);
	}

	/* never over an existing file, and that file is left alone */
	int before = file_size(p);
	s = NULL;
	CHECK_EQ(store_open(p, STORE_CREATE, 1000, &s, why, sizeof why), -EEXIST);
	CHECK(s == NULL);
	CHECK_EQ(file_size(p), before);

	CHECK_EQ(store_open(p, 0, 1000, &s, NULL, 0), 0);
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
	{
		uint64_t pages = 0, psz = 0, freep = 0;
		CHECK_EQ(store_file_stats(s, &pages, &psz, &freep), 0);
		CHECK_EQ(psz, STORE_PAGE_SIZE);
		CHECK(pages > 0);
	}

	/* another connection's commit shows in store_changed */
	{
		struct store *t = NULL;
		CHECK_EQ(store_changed(s), 1);
		CHECK_EQ(store_open(p, 0, 1000, &t, NULL, 0), 0);
		if (t) {
			CHECK_EQ(store_meta_set(t, "other", "1", 1), 0);
			store_close(t);
		}
		CHECK_EQ(store_changed(s), 1);
		CHECK_EQ(store_changed(s), 0);
	}
	store_close(s);

	/* read-only open sees the same and refuses writes */
	CHECK_EQ(store_open(p, STORE_READONLY, 1000, &s, NULL, 0), 0);
	if (!s)
		return;
	CHECK_EQ(store_readonly(s), 1);
	CHECK_EQ(store_meta_get(s, "greeting", buf, sizeof buf, &n), 0);
	CHECK(store_meta_set(s, "greeting", "x", 1) < 0);
	store_close(s);

	/* a store the user cannot write opens read-only only */
	if (getuid() != 0) {
		CHECK_EQ(chmod(p, 0400), 0);
		CHECK_EQ(store_open(p, 0, 1000, &s, NULL, 0), -EACCES);
		CHECK_EQ(store_open(p, STORE_READONLY, 1000, &s, NULL, 0), 0);
		store_close(s);
		CHECK_EQ(chmod(p, 0600), 0);
	}
}

static void test_inodes_blocks_xattrs(struct store *s)
{
	struct store_inode a, b, got;
	uint8_t data[4096 + 56];
	uint8_t tag1[STORE_TAG_BYTES], tag2[STORE_TAG_BYTES];
	struct bcopy bc;
	int created = -1;
	uint64_t deleted = 99, count = 0, ino = 0, blk = 0;
	int queued = -1, done = -1;

	CHECK_EQ(store_begin(s), 0);
	CHECK_EQ(store_in_transaction(s), 1);
	fill_inode(&a, 2, 0100644, 12345);
	CHECK_EQ(store_inode_insert(s, &a), 0);
	fill_inode(&b, 3, 0040755, 0);
	CHECK_EQ(store_inode_insert(s, &b), 0);
	/* inode numbers come from the caller: 0 and > INT64_MAX are refused */
	fill_inode(&got, 0, 0100644, 0);
	CHECK_EQ(store_inode_insert(s, &got), -EINVAL);
	got.ino = (uint64_t)INT64_MAX + 1;
	CHECK_EQ(store_inode_insert(s, &got), -EINVAL);
	CHECK_EQ(store_commit(s), 0);
	CHECK_EQ(store_in_transaction(s), 0);

	CHECK_EQ(store_inode_get(s, a.ino, &got), 0);
	CHECK_EQ(got.ino, a.ino);
	CHECK(memcmp(got.file_id, a.file_id, sizeof a.file_id) == 0);
	CHECK(memcmp(got.troot, a.troot, sizeof a.troot) == 0);
	CHECK(memcmp(got.xdigest, a.xdigest, sizeof a.xdigest) == 0);
	CHECK_EQ(got.mode, 0100644);
	CHECK_EQ(got.uid, 1000);
	CHECK_EQ(got.gid, 100);
	CHECK_EQ(got.size, 12345);
	CHECK_EQ(got.atime, a.atime);
	CHECK_EQ(got.mtime, a.mtime);
	CHECK_EQ(got.ctime, a.ctime);
	CHECK_EQ(got.generation, 9);
	CHECK_EQ(got.nentries, 4);
	CHECK_EQ(got.theight, 2);
	CHECK_EQ(store_inode_get(s, 999999, &got), -ENOENT);
	CHECK_EQ(store_inode_get(s, UINT64_MAX, &got), -ENOENT);
	CHECK_EQ(store_inode_max(s, &ino), 0);
	CHECK_EQ(ino, 3);
	{
		uint64_t files = 0, dirs = 0, bytes = 0;
		CHECK_EQ(store_inode_count(s, &files, &dirs, &bytes), 0);
		CHECK_EQ(files, 1);
		CHECK_EQ(dirs, 1);
		CHECK_EQ(bytes, 12345);
	}

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
	/* insert over an existing number replaces the row */
	b.size = 77;
	CHECK_EQ(store_inode_insert(s, &b), 0);
	CHECK_EQ(store_inode_get(s, b.ino, &got), 0);
	CHECK_EQ(got.size, 77);

	/* a hostile row: a blob of the wrong size, a tree height out of range */
	CHECK_EQ(sql(s, "UPDATE inodes SET troot=x'00' WHERE ino=3"), SQLITE_OK);
	CHECK_EQ(store_inode_get(s, 3, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE inodes SET troot=zeroblob(32), theight=65"
	             " WHERE ino=3"), SQLITE_OK);
	CHECK_EQ(store_inode_get(s, 3, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE inodes SET theight=-1 WHERE ino=3"), SQLITE_OK);
	CHECK_EQ(store_inode_get(s, 3, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE inodes SET theight=2, file_id='text-16-bytes..'"
	             " WHERE ino=3"), SQLITE_OK);
	CHECK_EQ(store_inode_get(s, 3, &got), -EIO);
	CHECK_EQ(store_inode_update(s, &b), 0); /* put it right */
	CHECK_EQ(store_inode_get(s, 3, &got), 0);

	/* blocks: created the first time, replaced the second */
	cipher_random(data, sizeof data);
	CHECK_EQ(store_block_put(s, a.ino, 0, 1, data, sizeof data, &created), 0);
	CHECK_EQ(created, 1);
	CHECK_EQ(store_block_put(s, a.ino, 0, 2, data, 100, &created), 0);
	CHECK_EQ(created, 0);
	CHECK_EQ(block_get(s, a.ino, 0, &bc), 0);
	CHECK_EQ(bc.kv, 2);
	CHECK_EQ(bc.n, 100);
	CHECK(memcmp(bc.buf, data, 100) == 0);
	CHECK_EQ(store_block_put(s, a.ino, 1, 1, data, sizeof data, &created), 0);
	CHECK_EQ(created, 1);
	CHECK_EQ(store_block_put(s, a.ino, 5, 1, data, sizeof data, &created), 0);
	CHECK_EQ(store_block_put(s, a.ino, 7, 1, data, sizeof data, &created), 0);
	CHECK_EQ(block_get(s, a.ino, 1, &bc), 0);
	CHECK_EQ(bc.n, sizeof data);
	CHECK(memcmp(bc.buf, data, sizeof data) == 0);
	CHECK_EQ(block_get(s, a.ino, 3, &bc), -ENOENT); /* a hole */
	CHECK_EQ(block_get(s, b.ino, 0, &bc), -ENOENT);
	struct bseen bs = { { 0 }, 0 };
	CHECK_EQ(store_block_each(s, a.ino, block_cb, &bs), 0);
	CHECK_EQ(bs.n, 4);
	CHECK(bs.blks[0] == 0 && bs.blks[1] == 1 && bs.blks[2] == 5 &&
	      bs.blks[3] == 7);
	CHECK_EQ(store_block_count(s, &count), 0);
	CHECK_EQ(count, 4);
	CHECK_EQ(store_block_next(s, a.ino, 2, &blk), 0); /* SEEK_DATA */
	CHECK_EQ(blk, 5);
	CHECK_EQ(store_block_next(s, a.ino, 8, &blk), -ENOENT);
	CHECK_EQ(store_block_next_ino(s, 0, &ino, &queued), 0);
	CHECK_EQ(ino, a.ino);
	CHECK_EQ(queued, 0);
	CHECK_EQ(store_block_next_ino(s, a.ino, &ino, &queued), -ENOENT);
	/* a hostile block row: version out of range, or no data at all */
	CHECK_EQ(sql(s, "UPDATE blocks SET key_version=0 WHERE ino=2 AND blk=7"),
	         SQLITE_OK);
	CHECK_EQ(block_get(s, a.ino, 7, &bc), -EIO);
	CHECK_EQ(sql(s, "UPDATE blocks SET key_version=4294967296 WHERE ino=2"
	             " AND blk=7"), SQLITE_OK);
	CHECK_EQ(block_get(s, a.ino, 7, &bc), -EIO);
	CHECK_EQ(sql(s, "UPDATE blocks SET key_version=1, data=x'' WHERE ino=2"
	             " AND blk=7"), SQLITE_OK);
	CHECK_EQ(block_get(s, a.ino, 7, &bc), -EIO);
	/* punching a hole, then truncation */
	CHECK_EQ(store_block_delete_range(s, a.ino, 1, 6, &deleted), 0);
	CHECK_EQ(deleted, 2);
	CHECK_EQ(block_get(s, a.ino, 5, &bc), -ENOENT);
	CHECK_EQ(block_get(s, a.ino, 0, &bc), 0);
	CHECK_EQ(store_block_put(s, a.ino, 1, 1, data, sizeof data, &created), 0);
	CHECK_EQ(store_block_put(s, a.ino, 5, 1, data, sizeof data, &created), 0);
	CHECK_EQ(store_block_truncate(s, a.ino, 2, &deleted), 0);
	CHECK_EQ(deleted, 2);
	CHECK_EQ(block_get(s, a.ino, 5, &bc), -ENOENT);
	CHECK_EQ(block_get(s, a.ino, 1, &bc), 0);
	CHECK_EQ(store_block_truncate(s, a.ino, 2, &deleted), 0);
	CHECK_EQ(deleted, 0);
	CHECK_EQ(store_block_truncate(s, a.ino, UINT64_MAX, &deleted), 0);
	CHECK_EQ(deleted, 0);
	CHECK_EQ(store_block_delete(s, a.ino, 1), 0);
	CHECK_EQ(block_get(s, a.ino, 1, &bc), -ENOENT);
	CHECK_EQ(store_block_put(s, a.ino, 1, 1, data, sizeof data, &created), 0);

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
	struct xseen xs = { 0, 0 };
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 2);
	CHECK_EQ(xs.total, 9 + 18 + 9 + 2);
	/* replace in place */
	memcpy(x.tag, tag1, sizeof tag1);
	x.value = "new";
	x.valuelen = 3;
	x.key_version = 4;
	CHECK_EQ(store_xattr_put(s, &x), 0);
	xs.n = 0;
	xs.total = 0;
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 2);
	CHECK_EQ(xs.total, 9 + 3 + 9 + 2);
	CHECK_EQ(store_xattr_delete(s, a.ino, tag2), 0);
	CHECK_EQ(store_xattr_delete(s, a.ino, tag2), -ENOENT);
	xs.n = 0;
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 1);
	/* a hostile xattr row stops the walk with -EIO */
	CHECK_EQ(sql(s, "UPDATE xattrs SET key_version=0 WHERE ino=2"), SQLITE_OK);
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), -EIO);
	CHECK_EQ(sql(s, "UPDATE xattrs SET key_version=4, tag=x'01' WHERE ino=2"),
	         SQLITE_OK);
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), -EIO);
	memcpy(x.tag, tag1, sizeof tag1);
	CHECK_EQ(sql(s, "DELETE FROM xattrs WHERE ino=2"), SQLITE_OK);
	CHECK_EQ(store_xattr_put(s, &x), 0);

	/* deleting the inode takes its xattrs at once; its blocks and its
	 * block tree wait in the purge queue and go in bounded batches */
	CHECK_EQ(store_mtree_put(s, 3, a.ino, 0, 0, "\1\0", 2), 0);
	CHECK_EQ(store_inode_delete(s, a.ino), 0);
	CHECK_EQ(store_inode_get(s, a.ino, &got), -ENOENT);
	CHECK_EQ(block_get(s, a.ino, 0, &bc), 0);
	xs.n = 0;
	CHECK_EQ(store_xattr_each(s, a.ino, xattr_cb, &xs), 0);
	CHECK_EQ(xs.n, 0);
	CHECK_EQ(store_block_next_ino(s, 0, &ino, &queued), 0);
	CHECK_EQ(ino, a.ino);
	CHECK_EQ(queued, 1);
	{
		uint64_t qi = 0, qb = 0, qbytes = 0, total = 0, del = 0;
		CHECK_EQ(store_purge_pending(s, &qi, &qb, &qbytes), 0);
		CHECK_EQ(qi, 1);
		CHECK_EQ(qb, 2);
		CHECK_EQ(qbytes, 100 + sizeof data);
		CHECK_EQ(store_purge_next(s, &ino), 0);
		CHECK_EQ(ino, a.ino);
		/* a batch of 1 block at a time: two steps with blocks, a third
		 * finds none, deletes the tree and leaves the queue */
		for (int i = 0; i < 5; i++) {
			CHECK_EQ(store_purge_step(s, a.ino, 1, &del, &done), 0);
			total += del;
			if (done)
				break;
		}
		CHECK_EQ(done, 1);
		CHECK_EQ(total, 2);
		CHECK_EQ(store_purge_next(s, &ino), -ENOENT);
		CHECK_EQ(store_purge_pending(s, &qi, &qb, &qbytes), 0);
		CHECK_EQ(qi, 0);
	}
	{
		uint8_t node[MTREE_NODE_MAX];
		size_t nl;
		CHECK_EQ(store_mtree_get(s, 3, a.ino, 0, 0, node, sizeof node, &nl),
		         -ENOENT);
	}
	CHECK_EQ(block_get(s, a.ino, 0, &bc), -ENOENT);
	CHECK_EQ(store_block_count(s, &count), 0);
	CHECK_EQ(count, 0);
	CHECK_EQ(store_inode_get(s, b.ino, &got), 0); /* the other is untouched */
	/* a queue entry can be dropped untouched, or queued by hand */
	CHECK_EQ(store_purge_queue(s, b.ino), 0);
	CHECK_EQ(store_purge_next(s, &ino), 0);
	CHECK_EQ(ino, b.ino);
	CHECK_EQ(store_purge_drop(s, b.ino), 0);
	CHECK_EQ(store_purge_next(s, &ino), -ENOENT);
	CHECK_EQ(store_purge_queue(s, UINT64_MAX), -EINVAL);

	/* a rolled-back transaction leaves nothing */
	CHECK_EQ(store_begin(s), 0);
	fill_inode(&a, 50, 0100600, 0);
	CHECK_EQ(store_inode_insert(s, &a), 0);
	CHECK(store_changes(s) > 0);
	store_rollback(s);
	CHECK_EQ(store_in_transaction(s), 0);
	CHECK_EQ(store_inode_get(s, 50, &got), -ENOENT);
}

struct iseen {
	int n, flagged;
};

static int inode_cb(void *arg, const struct store_inode *in)
{
	struct iseen *i = arg;
	static const uint8_t zero[16];

	i->n++;
	if (!memcmp(in->file_id, zero, 16) && in->mode == 0)
		i->flagged++;
	return 0;
}

static void test_inode_each(struct store *s)
{
	struct store_inode in;
	struct iseen seen = { 0, 0 };

	fill_inode(&in, 10, 0100644, 1);
	CHECK_EQ(store_inode_insert(s, &in), 0);
	fill_inode(&in, 11, 0100644, 1);
	CHECK_EQ(store_inode_insert(s, &in), 0);
	/* a malformed row is passed on with every field zero but ino */
	CHECK_EQ(sql(s, "UPDATE inodes SET xdigest=x'abcd' WHERE ino=11"),
	         SQLITE_OK);
	CHECK_EQ(store_inode_each(s, inode_cb, &seen), 0);
	CHECK_EQ(seen.n, 3); /* 3, 10, 11 */
	CHECK_EQ(seen.flagged, 1);
	CHECK_EQ(store_inode_delete(s, 10), 0);
	CHECK_EQ(store_inode_delete(s, 11), 0);
	CHECK_EQ(sql(s, "DELETE FROM purge"), SQLITE_OK);
}

static int bad_dentry_cb(void *arg, const struct store_dentry *d)
{
	int *n = arg;
	if (d->namelen == 0 && d->key_version == 0)
		(*n)++;
	return 0;
}

static void test_dentries(struct store *s)
{
	struct store_dentry d, got;
	uint8_t tag[STORE_TAG_BYTES];
	int64_t ids[3], other;
	int n;

	memset(&d, 0, sizeof d);
	d.parent = 500;
	d.key_version = 1;
	for (int i = 0; i < 3; i++) {
		make_tag(d.tag, 10 + i);
		d.namelen = (size_t)snprintf((char *)d.name, sizeof d.name,
		                             "enc-name-%d", i);
		d.ino = 600 + (uint64_t)i;
		CHECK_EQ(store_dentry_insert(s, &d), 0);
		ids[i] = d.id;
		CHECK(d.id > 0);
		CHECK(i == 0 || ids[i] > ids[i - 1]);
	}
	/* unique (parent, tag) */
	make_tag(d.tag, 10);
	CHECK_EQ(store_dentry_insert(s, &d), -EEXIST);
	d.parent = 501; /* same tag in another directory is fine */
	CHECK_EQ(store_dentry_insert(s, &d), 0);
	other = d.id;

	make_tag(tag, 11);
	CHECK_EQ(store_dentry_get(s, 500, tag, &got), 0);
	CHECK_EQ(got.ino, 601);
	CHECK_EQ(got.id, ids[1]);
	CHECK_EQ(got.parent, 500);
	CHECK_EQ(got.key_version, 1);
	CHECK_EQ(got.namelen, 10);
	CHECK(memcmp(got.name, "enc-name-1", 10) == 0);
	CHECK_EQ(store_dentry_get(s, 502, tag, &got), -ENOENT);
	CHECK_EQ(store_dentry_get_id(s, ids[2], &got), 0);
	CHECK_EQ(got.ino, 602);
	CHECK_EQ(store_dentry_get_id(s, 987654, &got), -ENOENT);

	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, 0, count_cb, &n), 0);
	CHECK_EQ(n, 3);
	/* resume after the second entry's id */
	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, ids[1], count_cb, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(store_dentry_each(s, 500, 0, stop_cb, NULL), 42);
	n = 0;
	CHECK_EQ(store_dentry_all(s, count_cb, &n), 0);
	CHECK_EQ(n, 4);

	CHECK_EQ(store_dentry_of_ino(s, 602, INT64_MIN, &got), 0);
	CHECK_EQ(got.parent, 500);
	CHECK_EQ(store_dentry_of_ino(s, 999, INT64_MIN, &got), -ENOENT);

	/* rename in place: same id */
	CHECK_EQ(store_dentry_get(s, 500, tag, &got), 0);
	make_tag(got.tag, 20);
	memcpy(got.name, "renamed", 7);
	got.namelen = 7;
	CHECK_EQ(store_dentry_update(s, &got), 0);
	CHECK_EQ(store_dentry_get(s, 500, tag, &d), -ENOENT);
	make_tag(tag, 20);
	CHECK_EQ(store_dentry_get(s, 500, tag, &d), 0);
	CHECK_EQ(d.namelen, 7);
	CHECK_EQ(d.id, ids[1]);

	/* hostile rows: a read gives -EIO, a walk passes them on flagged */
	CHECK_EQ(sql(s, "UPDATE dentries SET key_version=0 WHERE ino=600"),
	         SQLITE_OK);
	CHECK_EQ(store_dentry_get_id(s, ids[0], &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE dentries SET key_version=1, name=randomblob(1025)"
	             " WHERE ino=602 AND parent=500"), SQLITE_OK);
	CHECK_EQ(store_dentry_get_id(s, ids[2], &got), -EIO);
	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, 0, bad_dentry_cb, &n), 0);
	CHECK_EQ(n, 2);
	n = 0;
	CHECK_EQ(store_dentry_all(s, bad_dentry_cb, &n), 0);
	CHECK_EQ(n, 2);

	CHECK_EQ(store_dentry_delete_id(s, ids[1]), 0);
	CHECK_EQ(store_dentry_delete_id(s, ids[1]), -ENOENT);
	CHECK_EQ(store_dentry_delete_id(s, ids[0]), 0);
	CHECK_EQ(store_dentry_delete_id(s, ids[2]), 0);
	n = 0;
	CHECK_EQ(store_dentry_each(s, 500, 0, count_cb, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_dentry_get_id(s, other, &got), 0);
}

static void test_rights_rows(struct store *s)
{
	struct store_authority a, got;
	uint8_t sig[STORE_SIG_BYTES], sig2[STORE_SIG_BYTES], *body = NULL;
	size_t len = 0;
	uint32_t epoch = 0;

	/* authorities */
	CHECK_EQ(store_authority_last(s, &epoch), -ENOENT);
	memset(&a, 0, sizeof a);
	a.epoch = 1;
	cipher_random(a.pk, sizeof a.pk);
	cipher_random(a.endorsement, sizeof a.endorsement);
	a.created = 1234;
	CHECK_EQ(store_authority_put(s, &a), 0);
	CHECK_EQ(store_authority_put(s, &a), -EEXIST); /* never replaced */
	a.epoch = 2;
	CHECK_EQ(store_authority_put(s, &a), 0);
	CHECK_EQ(store_authority_last(s, &epoch), 0);
	CHECK_EQ(epoch, 2);
	CHECK_EQ(store_authority_get(s, 1, &got), 0);
	CHECK_EQ(got.epoch, 1);
	CHECK_EQ(got.created, 1234);
	CHECK(!memcmp(got.pk, a.pk, 32));
	CHECK(!memcmp(got.endorsement, a.endorsement, 64));
	CHECK_EQ(store_authority_get(s, 3, &got), -ENOENT);
	CHECK_EQ(sql(s, "UPDATE authorities SET pk=x'0102' WHERE epoch=2"),
	         SQLITE_OK);
	CHECK_EQ(store_authority_get(s, 2, &got), -EIO);
	CHECK_EQ(sql(s, "INSERT INTO authorities VALUES(4294967296, zeroblob(32),"
	             " zeroblob(64), 0)"), SQLITE_OK);
	CHECK_EQ(store_authority_last(s, &epoch), -EIO);
	CHECK_EQ(sql(s, "DELETE FROM authorities WHERE epoch > 2"), SQLITE_OK);

	/* the roster: one row */
	CHECK_EQ(store_roster_get(s, &body, &len, sig), -ENOENT);
	CHECK(body == NULL);
	cipher_random(sig, sizeof sig);
	CHECK_EQ(store_roster_put(s, (const uint8_t *)"roster-v1", 9, sig), 0);
	cipher_random(sig, sizeof sig);
	CHECK_EQ(store_roster_put(s, (const uint8_t *)"roster-v2!", 10, sig), 0);
	CHECK_EQ(store_roster_get(s, &body, &len, sig2), 0);
	CHECK_EQ(len, 10);
	CHECK(body && !memcmp(body, "roster-v2!", 10));
	CHECK(!memcmp(sig, sig2, 64));
	free(body);
	body = NULL;
	{
		uint8_t *big = calloc(1, STORE_ROSTER_MAX + 1);
		CHECK_EQ(store_roster_put(s, big, STORE_ROSTER_MAX + 1, sig), -EINVAL);
		free(big);
	}
	/* hostile: a second row is refused by the schema; a text body, an
	 * empty one, a short signature read as -EIO */
	CHECK(sql(s, "INSERT INTO roster VALUES(2, x'00', zeroblob(64))") !=
	      SQLITE_OK);
	CHECK_EQ(sql(s, "UPDATE roster SET body='text'"), SQLITE_OK);
	CHECK_EQ(store_roster_get(s, &body, &len, sig2), -EIO);
	CHECK(body == NULL);
	CHECK_EQ(sql(s, "UPDATE roster SET body=x''"), SQLITE_OK);
	CHECK_EQ(store_roster_get(s, &body, &len, sig2), -EIO);
	CHECK_EQ(sql(s, "UPDATE roster SET body=x'00', sig=x'00'"), SQLITE_OK);
	CHECK_EQ(store_roster_get(s, &body, &len, sig2), -EIO);
	CHECK_EQ(sql(s, "UPDATE roster SET body=zeroblob(1048577),"
	             " sig=zeroblob(64)"), SQLITE_OK);
	CHECK_EQ(store_roster_get(s, &body, &len, sig2), -EIO);
}

static int cred_count(void *arg, const struct store_cred *c)
{
	int *n = arg;
	n[0]++;
	if (!c->name[0])
		n[1]++; /* flagged as malformed */
	return 0;
}

static void test_credentials(struct store *s)
{
	struct store_cred c, got;
	struct store_login l;
	int64_t id = 0;
	int n[2] = { 0, 0 };

	CHECK_EQ(store_cred_next_id(s, &id), 0);
	CHECK_EQ(id, 1);
	memset(&c, 0, sizeof c);
	c.user_id = 1;
	snprintf(c.name, sizeof c.name, "alice");
	c.opslimit = 2;
	c.memlimit = 1 << 20;
	cipher_random(c.salt, sizeof c.salt);
	cipher_random(c.secret, 172);
	c.secretlen = 172;
	c.created = 99;
	CHECK_EQ(store_cred_put(s, &c), 0);
	c.user_id = 2;
	snprintf(c.name, sizeof c.name, "bob");
	CHECK_EQ(store_cred_put(s, &c), 0);
	c.user_id = 3;
	snprintf(c.name, sizeof c.name, "alice"); /* names are unique: */
	/* "insert or replace by user id" must not replace another user's row
	 * that holds the name (SQLite's REPLACE would delete alice's) */
	CHECK_EQ(store_cred_put(s, &c), -EEXIST);
	CHECK_EQ(store_cred_get_id(s, 1, &got), 0);
	/* put things back as they were, so what follows tests the rest */
	CHECK_EQ(store_cred_delete(s, 3), 0);
	c.user_id = 1;
	CHECK_EQ(store_cred_put(s, &c), 0);
	CHECK_EQ(store_cred_next_id(s, &id), 0);
	CHECK_EQ(id, 3);
	CHECK_EQ(store_cred_get(s, "alice", &got), 0);
	CHECK_EQ(got.user_id, 1);
	CHECK_EQ(got.opslimit, 2);
	CHECK_EQ(got.memlimit, 1 << 20);
	CHECK_EQ(got.secretlen, 172);
	CHECK(!memcmp(got.salt, c.salt, 16));
	CHECK(!memcmp(got.secret, c.secret, 172));
	CHECK_EQ(got.created, 99);
	CHECK_EQ(store_cred_get_id(s, 2, &got), 0);
	CHECK(!strcmp(got.name, "bob"));
	CHECK_EQ(store_cred_get(s, "carol", &got), -ENOENT);
	CHECK_EQ(store_cred_get_id(s, 7, &got), -ENOENT);
	/* replace by user id (a passwd) */
	c.user_id = 2;
	snprintf(c.name, sizeof c.name, "bob");
	c.opslimit = 3;
	CHECK_EQ(store_cred_put(s, &c), 0);
	CHECK_EQ(store_cred_get_id(s, 2, &got), 0);
	CHECK_EQ(got.opslimit, 3);
	/* hostile: an oversized secret, a short salt, a name with a NUL or
	 * too long */
	CHECK_EQ(sql(s, "UPDATE credentials SET secret=zeroblob(257)"
	             " WHERE user_id=2"), SQLITE_OK);
	CHECK_EQ(store_cred_get_id(s, 2, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE credentials SET secret=zeroblob(10), salt=x'01'"
	             " WHERE user_id=2"), SQLITE_OK);
	CHECK_EQ(store_cred_get_id(s, 2, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE credentials SET salt=zeroblob(16),"
	             " name=CAST(x'626f6200' AS TEXT) WHERE user_id=2"), SQLITE_OK);
	CHECK_EQ(store_cred_get_id(s, 2, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE credentials SET name=printf('%.65c', 'x')"
	             " WHERE user_id=2"), SQLITE_OK);
	CHECK_EQ(store_cred_get_id(s, 2, &got), -EIO);
	CHECK_EQ(store_cred_each(s, cred_count, n), 0);
	CHECK_EQ(n[0], 2);
	CHECK_EQ(n[1], 1);
	CHECK_EQ(store_cred_delete(s, 2), 0);
	CHECK_EQ(store_cred_get_id(s, 2, &got), -ENOENT);

	/* logins: no row reads as all zero */
	CHECK_EQ(store_login_get(s, 1, &l), 0);
	CHECK_EQ(l.user_id, 1);
	CHECK_EQ(l.failed, 0);
	CHECK_EQ(l.locked_until, 0);
	l.failed = 2;
	l.locked_until = 5000;
	l.last_login = 4000;
	CHECK_EQ(store_login_put(s, &l), 0);
	memset(&l, 0, sizeof l);
	CHECK_EQ(store_login_get(s, 1, &l), 0);
	CHECK_EQ(l.failed, 2);
	CHECK_EQ(l.locked_until, 5000);
	CHECK_EQ(l.last_login, 4000);
	CHECK_EQ(sql(s, "UPDATE logins SET failed=-5 WHERE user_id=1"), SQLITE_OK);
	CHECK_EQ(store_login_get(s, 1, &l), 0);
	CHECK_EQ(l.failed, 0); /* a negative count is no count */
	CHECK_EQ(store_login_delete(s, 1), 0);
	CHECK_EQ(store_login_get(s, 1, &l), 0);
	CHECK_EQ(l.locked_until, 0);
}

static void test_grants(struct store *s)
{
	struct store_grant g, got;
	uint64_t n = 0;

	CHECK(!strcmp(store_grant_kind_name(GRANT_DATA), "data"));
	CHECK(!strcmp(store_grant_kind_name(GRANT_AUDIT), "audit"));
	CHECK(!strcmp(store_grant_kind_name(GRANT_AUTHORITY), "authority"));
	CHECK(!strcmp(store_grant_kind_name(GRANT_IDENTITY), "identity"));
	CHECK(!strcmp(store_grant_kind_name(9), "?"));
	memset(&g, 0, sizeof g);
	g.sealedlen = 80;
	cipher_random(g.sealed, g.sealedlen);
	for (int64_t u = 1; u <= 2; u++)
		for (uint32_t v = 1; v <= 2; v++)
			for (int k = GRANT_DATA; k <= GRANT_AUTHORITY; k++) {
				g.user_id = u;
				g.version = v;
				g.kind = k;
				g.sealed[0] = (uint8_t)(u * 16 + v * 4 + (unsigned)k);
				CHECK_EQ(store_grant_put(s, &g), 0);
			}
	CHECK_EQ(store_grant_get(s, 2, 1, GRANT_AUDIT, &got), 0);
	CHECK_EQ(got.sealedlen, 80);
	CHECK_EQ(got.sealed[0], 2 * 16 + 4 + GRANT_AUDIT);
	CHECK_EQ(got.user_id, 2);
	CHECK_EQ(got.version, 1);
	CHECK_EQ(got.kind, GRANT_AUDIT);
	CHECK_EQ(store_grant_get(s, 3, 1, GRANT_AUDIT, &got), -ENOENT);
	CHECK_EQ(store_grant_count(s, 1, GRANT_DATA, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(store_grant_count(s, -1, 0, &n), 0);
	CHECK_EQ(n, 12);
	/* wildcards: -1 and 0 match all */
	CHECK_EQ(store_grant_delete(s, 1, 2, GRANT_DATA), 0);
	CHECK_EQ(store_grant_get(s, 1, 2, GRANT_DATA, &got), -ENOENT);
	CHECK_EQ(store_grant_delete(s, -1, 2, 0), 0);
	CHECK_EQ(store_grant_count(s, 2, 0, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_grant_delete(s, 2, -1, 0), 0);
	CHECK_EQ(store_grant_count(s, -1, 0, &n), 0);
	CHECK_EQ(n, 3); /* user 1, version 1, three kinds */
	CHECK_EQ(sql(s, "UPDATE grants SET sealed=zeroblob(257) WHERE kind=1"),
	         SQLITE_OK);
	CHECK_EQ(store_grant_get(s, 1, 1, GRANT_DATA, &got), -EIO);
	CHECK_EQ(store_grant_delete(s, -1, -1, 0), 0);
	CHECK_EQ(store_key_event(s, 1, "admin", "rotate", 1, 2, "why"), 0);
	CHECK_EQ(store_key_event(s, 2, "admin", "destroy", 0, 0, NULL), 0);
}

static void test_sessions_ledger(struct store *s)
{
	struct store_session ss, got;
	uint8_t body[STORE_COMMIT_BODY_MAX], sigs[256], proof[64];
	size_t len = 0, siglen = 0, prooflen = 0;
	int64_t id = 0, seq = 0;
	uint64_t n = 0;

	CHECK_EQ(store_session_next_id(s, &id), 0);
	CHECK_EQ(id, 1);
	memset(&ss, 0, sizeof ss);
	ss.id = 1;
	ss.user_id = 7;
	ss.roster_counter = 3;
	ss.started = 1700000000;
	cipher_random(ss.pk, 32);
	cipher_random(ss.endorsement, 64);
	snprintf(ss.host, sizeof ss.host, "host-a");
	ss.pid = 4242;
	snprintf(ss.kind, sizeof ss.kind, "mount");
	ss.detail_version = 1;
	ss.detaillen = 80;
	cipher_random(ss.detail, 80);
	CHECK_EQ(store_session_insert(s, &ss), 0);
	CHECK_EQ(store_session_insert(s, &ss), -EEXIST);
	CHECK_EQ(store_session_next_id(s, &id), 0);
	CHECK_EQ(id, 2);
	CHECK_EQ(store_session_get(s, 1, &got), 0);
	CHECK_EQ(got.user_id, 7);
	CHECK_EQ(got.roster_counter, 3);
	CHECK_EQ(got.started, 1700000000);
	CHECK_EQ(got.pid, 4242);
	CHECK(!strcmp(got.host, "host-a"));
	CHECK(!strcmp(got.kind, "mount"));
	CHECK(!memcmp(got.pk, ss.pk, 32));
	CHECK(!memcmp(got.endorsement, ss.endorsement, 64));
	CHECK_EQ(got.detaillen, 80);
	CHECK_EQ(store_session_get(s, 2, &got), -ENOENT);
	CHECK_EQ(store_session_set_detail(s, 1, 5, "sealed", 6), 0);
	CHECK_EQ(store_session_get(s, 1, &got), 0);
	CHECK_EQ(got.detail_version, 5);
	CHECK_EQ(got.detaillen, 6);
	CHECK_EQ(sql(s, "UPDATE sessions SET kind='much-too-long-kind'"), SQLITE_OK);
	CHECK_EQ(store_session_get(s, 1, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE sessions SET kind='ctl', detail_version=-1"),
	         SQLITE_OK);
	CHECK_EQ(store_session_get(s, 1, &got), -EIO);
	CHECK_EQ(sql(s, "UPDATE sessions SET detail_version=1, pk=x'00'"),
	         SQLITE_OK);
	CHECK_EQ(store_session_get(s, 1, &got), -EIO);

	/* ledger */
	memset(proof, 0x5a, sizeof proof);
	CHECK_EQ(store_ledger_last(s, &seq), -ENOENT);
	CHECK_EQ(store_ledger_first(s, &seq), -ENOENT);
	for (int i = 1; i <= 4; i++) {
		memset(body, i, 300);
		memset(sigs, i, 73);
		CHECK_EQ(store_ledger_put(s, i, body, 300, sigs, 73, proof,
		                          i == 2 ? 50 : 0), 0);
	}
	CHECK_EQ(store_ledger_put(s, 2, body, 300, sigs, 73, NULL, 0), -EEXIST);
	CHECK_EQ(store_ledger_put(s, 9, body, STORE_COMMIT_BODY_MAX + 1, sigs, 73,
	                          NULL, 0), -EINVAL);
	CHECK_EQ(store_ledger_put(s, 9, body, 10, sigs, STORE_COMMIT_SIGS_MAX + 1,
	                          NULL, 0), -EINVAL);
	CHECK_EQ(store_ledger_put(s, 9, body, 10, sigs, 10, proof,
	                          STORE_COMMIT_PROOF_MAX + 1), -EINVAL);
	CHECK_EQ(store_ledger_last(s, &seq), 0);
	CHECK_EQ(seq, 4);
	CHECK_EQ(store_ledger_first(s, &seq), 0);
	CHECK_EQ(seq, 1);
	CHECK_EQ(store_ledger_count(s, &n), 0);
	CHECK_EQ(n, 4);
	CHECK_EQ(store_ledger_get(s, 3, body, sizeof body, &len, sigs,
	                          sizeof sigs, &siglen, proof, sizeof proof, &prooflen), 0);
	CHECK_EQ(len, 300);
	CHECK_EQ(siglen, 73);
	CHECK_EQ(body[0], 3);
	CHECK_EQ(sigs[72], 3);
	CHECK_EQ(prooflen, 0);
	CHECK_EQ(store_ledger_get(s, 2, body, sizeof body, &len, sigs,
	                          sizeof sigs, &siglen, proof, sizeof proof,
	                          &prooflen), 0);
	CHECK_EQ(prooflen, 50);
	CHECK_EQ(proof[49], 0x5a);
	CHECK_EQ(store_ledger_get(s, 2, body, sizeof body, &len, sigs,
	                          sizeof sigs, &siglen, proof, 49, &prooflen), -EIO);
	CHECK_EQ(store_ledger_get(s, 3, body, 299, &len, sigs, sizeof sigs,
	                          &siglen, proof, sizeof proof, &prooflen), -EIO);
	CHECK_EQ(store_ledger_get(s, 3, body, sizeof body, &len, sigs, 72,
	                          &siglen, proof, sizeof proof, &prooflen), -EIO);
	CHECK_EQ(store_ledger_get(s, 5, body, sizeof body, &len, sigs,
	                          sizeof sigs, &siglen, proof, sizeof proof, &prooflen), -ENOENT);
	CHECK_EQ(store_ledger_delete_before(s, 3), 0);
	CHECK_EQ(store_ledger_first(s, &seq), 0);
	CHECK_EQ(seq, 3);
	CHECK_EQ(sql(s, "UPDATE ledger SET body='text' WHERE seq=3"), SQLITE_OK);
	CHECK_EQ(store_ledger_get(s, 3, body, sizeof body, &len, sigs,
	                          sizeof sigs, &siglen, proof, sizeof proof, &prooflen), -EIO);
}

struct aseen {
	int n, bad;
	int64_t last;
};

static int audit_cb(void *arg, const struct store_audit *a)
{
	struct aseen *s = arg;
	s->n++;
	if (!a->op[0])
		s->bad++;
	s->last = a->seq;
	return 0;
}

static void test_audit_rows(struct store *s)
{
	struct store_audit *a = calloc(1, sizeof *a), *got = calloc(1, sizeof *got);
	struct aseen seen = { 0, 0, 0 };
	uint64_t n = 0;

	if (!a || !got) {
		free(a);
		free(got);
		CHECK(0);
		return;
	}
	CHECK_EQ(store_audit_last(s, got), -ENOENT);
	a->seq = 0;
	CHECK_EQ(store_audit_insert(s, a), -EINVAL);
	for (int i = 1; i <= 5; i++) {
		a->seq = i;
		a->time = 1000 + i;
		snprintf(a->user, sizeof a->user, "user%d", i);
		a->session = 3;
		a->uid = 1000;
		a->gid = 100;
		a->pid = 77;
		snprintf(a->op, sizeof a->op, "write");
		a->ino = 12;
		a->offset = 4096;
		a->length = 10;
		a->result = -5;
		a->detaillen = 50;
		memset(a->detail, i, 50);
		memset(a->hash, i, 32);
		CHECK_EQ(store_audit_insert(s, a), 0);
	}
	CHECK_EQ(store_audit_insert(s, a), -EEXIST);
	CHECK_EQ(store_audit_last(s, got), 0);
	CHECK_EQ(got->seq, 5);
	CHECK_EQ(got->time, 1005);
	CHECK(!strcmp(got->user, "user5"));
	CHECK_EQ(got->session, 3);
	CHECK_EQ(got->uid, 1000);
	CHECK_EQ(got->gid, 100);
	CHECK_EQ(got->pid, 77);
	CHECK(!strcmp(got->op, "write"));
	CHECK_EQ(got->ino, 12);
	CHECK_EQ(got->offset, 4096);
	CHECK_EQ(got->length, 10);
	CHECK_EQ(got->result, -5);
	CHECK_EQ(got->detaillen, 50);
	CHECK_EQ(got->hash[0], 5);
	CHECK_EQ(store_audit_count(s, &n), 0);
	CHECK_EQ(n, 5);
	CHECK_EQ(store_audit_each(s, 2, audit_cb, &seen), 0);
	CHECK_EQ(seen.n, 3);
	CHECK_EQ(seen.last, 5);
	/* a malformed row is passed on with op "" (the verifier reports it) */
	CHECK_EQ(sql(s, "UPDATE audit SET hash=x'00' WHERE seq=4"), SQLITE_OK);
	CHECK_EQ(sql(s, "UPDATE audit SET op=printf('%.30c','o') WHERE seq=3"),
	         SQLITE_OK);
	seen = (struct aseen){ 0, 0, 0 };
	CHECK_EQ(store_audit_each(s, 0, audit_cb, &seen), 0);
	CHECK_EQ(seen.n, 5);
	CHECK_EQ(seen.bad, 2);
	CHECK_EQ(store_audit_delete_before(s, 3), 0);
	CHECK_EQ(store_audit_count(s, &n), 0);
	CHECK_EQ(n, 3);
	free(a);
	free(got);
}

static int mounts_cb(void *arg, const struct store_mount *m)
{
	(*(int *)arg)++;
	(void)m;
	return 0;
}

struct evseen {
	int n;
	uint32_t uid;
	char last[32];
};

static int event_cb(void *arg, int64_t t, const char *user, const char *ev,
                    uint32_t uid, int64_t pid)
{
	struct evseen *e = arg;
	(void)t;
	e->uid = uid;
	(void)pid;
	(void)user;
	e->n++;
	snprintf(e->last, sizeof e->last, "%s", ev);
	return 0;
}

static int mtree_cb(void *arg, int level, uint64_t idx, const void *node,
                    size_t len)
{
	int *n = arg;
	(void)level;
	(void)idx;
	(void)node;
	(void)len;
	(*n)++;
	return 0;
}

static void test_advisory_mtree(struct store *s)
{
	struct store_mount m;
	struct evseen ev = { 0, 0, "" };
	uint8_t node[MTREE_NODE_MAX];
	size_t len = 0;
	int n = 0;

	memset(&m, 0, sizeof m);
	snprintf(m.user, sizeof m.user, "admin");
	snprintf(m.host, sizeof m.host, "h");
	snprintf(m.mountpoint, sizeof m.mountpoint, "/mnt");
	m.pid = 1;
	m.started = 10;
	CHECK_EQ(store_mount_begin(s, &m), 0);
	CHECK(m.id > 0);
	CHECK_EQ(store_mount_begin(s, &m), 0);
	CHECK_EQ(store_mount_each_open(s, mounts_cb, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(store_mount_end(s, m.id, "unmount"), 0);
	n = 0;
	CHECK_EQ(store_mount_each_open(s, mounts_cb, &n), 0);
	CHECK_EQ(n, 1);

	CHECK_EQ(store_auth_event_add(s, 1, "mallory", "login-failed", 1000, 9), 0);
	CHECK_EQ(store_auth_event_add(s, 2, "mallory", "lockout", 1000, 9), 0);
	CHECK_EQ(store_auth_event_take(s, event_cb, &ev), 0);
	CHECK_EQ(ev.n, 2);
	CHECK(!strcmp(ev.last, "lockout"));
	CHECK_EQ(ev.uid, 1000);
	ev.n = 0;
	CHECK_EQ(store_auth_event_take(s, event_cb, &ev), 0); /* taken: gone */
	CHECK_EQ(ev.n, 0);

	/* tree groups */
	memset(node, 7, sizeof node);
	CHECK_EQ(store_mtree_put(s, MTREE_INODES, 0, 0, 0, node, 34), 0);
	CHECK_EQ(store_mtree_put(s, MTREE_INODES, 0, 0, 1, node, 66), 0);
	CHECK_EQ(store_mtree_put(s, MTREE_INODES, 0, 1, 0, node, 34), 0);
	CHECK_EQ(store_mtree_put(s, MTREE_BLOCKS, 9, 0, 0, node, 34), 0);
	CHECK_EQ(store_mtree_put(s, MTREE_INODES, 0, 0, (uint64_t)INT64_MAX + 1,
	                         node, 34), -EINVAL);
	CHECK_EQ(store_mtree_put(s, MTREE_INODES, 0, -1, 0, node, 34), -EINVAL);
	CHECK_EQ(store_mtree_get(s, MTREE_INODES, 0, 0, 1, node, sizeof node,
	                         &len), 0);
	CHECK_EQ(len, 66);
	CHECK_EQ(store_mtree_get(s, MTREE_INODES, 0, 0, 1, node, 65, &len), -EIO);
	CHECK_EQ(store_mtree_get(s, MTREE_INODES, 0, 0, 2, node, sizeof node,
	                         &len), -ENOENT);
	n = 0;
	CHECK_EQ(store_mtree_each(s, MTREE_INODES, 0, mtree_cb, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(store_mtree_delete_from(s, MTREE_INODES, 0, 0, 1), 0);
	n = 0;
	CHECK_EQ(store_mtree_each(s, MTREE_INODES, 0, mtree_cb, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(store_mtree_delete(s, MTREE_INODES, 0, 1, 0), 0);
	CHECK_EQ(store_mtree_get(s, MTREE_INODES, 0, 1, 0, node, sizeof node,
	                         &len), -ENOENT);
	/* a hostile group (a negative level) stops the walk */
	CHECK_EQ(sql(s, "INSERT INTO mtree VALUES(1, 0, -3, 0, x'00')"), SQLITE_OK);
	CHECK_EQ(store_mtree_each(s, MTREE_INODES, 0, mtree_cb, &n), -EIO);
	CHECK_EQ(sql(s, "UPDATE mtree SET level=0, idx=5, node='text'"
	             " WHERE level=-3"), SQLITE_OK);
	CHECK_EQ(store_mtree_each(s, MTREE_INODES, 0, mtree_cb, &n), -EIO);
	CHECK_EQ(store_mtree_delete_owner(s, MTREE_INODES, 0), 0);
	n = 0;
	CHECK_EQ(store_mtree_each(s, MTREE_INODES, 0, mtree_cb, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_mtree_each(s, MTREE_BLOCKS, 9, mtree_cb, &n), 0);
	CHECK_EQ(n, 1);
}

static void test_stale_usage(struct store *s)
{
	struct store_stale st[8];
	struct store_dentry d;
	struct store_xattr x = { 0 };
	struct store_inode in;
	uint64_t objs = 0;
	size_t n = 0;
	int created;

	CHECK_EQ(sql(s, "DELETE FROM blocks; DELETE FROM dentries;"
	             " DELETE FROM xattrs; DELETE FROM sessions"), SQLITE_OK);
	fill_inode(&in, 20, 0100644, 0);
	CHECK_EQ(store_inode_insert(s, &in), 0);
	for (uint64_t b = 0; b < 3; b++)
		CHECK_EQ(store_block_put(s, 20, b, (uint32_t)b + 1, "0123456789", 10,
		                         &created), 0);
	memset(&d, 0, sizeof d);
	d.parent = 1;
	d.key_version = 1;
	d.namelen = 3;
	d.ino = 20;
	CHECK_EQ(store_dentry_insert(s, &d), 0);
	x.ino = 20;
	make_tag(x.tag, 3);
	x.key_version = 2;
	x.name = "n";
	x.namelen = 1;
	x.value = "v";
	x.valuelen = 1;
	CHECK_EQ(store_xattr_put(s, &x), 0);
	CHECK_EQ(store_stale(s, 'b', 3, 8, st, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(st[0].a, 20);
	CHECK(st[0].b == 0 || st[0].b == 1);
	CHECK_EQ(store_stale(s, 'b', 3, 1, st, &n), 0); /* the limit holds */
	CHECK_EQ(n, 1);
	CHECK_EQ(store_stale(s, 'd', 2, 8, st, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(st[0].a, d.id);
	CHECK_EQ(store_stale(s, 'x', 3, 8, st, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(!memcmp(st[0].tag, x.tag, 32));
	CHECK_EQ(store_stale(s, 'x', 2, 8, st, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_stale(s, 's', 9, 8, st, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_stale(s, 'q', 9, 8, st, &n), -EINVAL);
	CHECK_EQ(store_key_usage(s, 1, 1, &objs), 0);
	CHECK_EQ(objs, 2); /* a block and a name */
	CHECK_EQ(store_key_usage(s, 2, 0, &objs), 0);
	CHECK_EQ(objs, 2); /* a block and an xattr */
	CHECK_EQ(store_key_usage(s, 9, 1, &objs), 0);
	CHECK_EQ(objs, 0);
	/* the tables and their indexes agree on an untouched store */
	CHECK_EQ(store_key_usage(s, 1, 0, &objs), 0);
	CHECK_EQ(objs, 2);
	CHECK_EQ(store_key_usage(s, 2, 1, &objs), 0);
	CHECK_EQ(objs, 2);
	/* a hostile xattr tag in the stale list is an error, not garbage */
	CHECK_EQ(sql(s, "UPDATE xattrs SET tag=x'0102'"), SQLITE_OK);
	CHECK(store_stale(s, 'x', 3, 8, st, &n) < 0);
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

/* Another connection holding the write lock: -EBUSY after the timeout. */
static void test_busy(const char *p)
{
	struct store *a = NULL, *b = NULL;

	CHECK_EQ(store_open(p, 0, 1000, &a, NULL, 0), 0);
	CHECK_EQ(store_open(p, 0, 50, &b, NULL, 0), 0);
	if (a && b) {
		CHECK_EQ(store_begin(a), 0);
		CHECK_EQ(store_begin(b), -EBUSY);
		CHECK_EQ(store_in_transaction(b), 0);
		store_rollback(a);
		CHECK_EQ(store_begin(b), 0);
		store_rollback(b);
	}
	store_close(a);
	store_close(b);
}

/* The disk fills inside a transaction: -ENOSPC, and the transaction is
 * known lost. */
static void test_full(const char *p)
{
	struct store *s = NULL;
	sqlite3_stmt *q;
	int64_t pages = 0;
	char buf[64];
	static uint8_t data[60000];
	int created, rc = 0;

	CHECK_EQ(store_open(p, 0, 1000, &s, NULL, 0), 0);
	if (!s)
		return;
	CHECK_EQ(sqlite3_prepare_v2(s->db, "PRAGMA page_count", -1, &q, NULL),
	         SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		pages = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	snprintf(buf, sizeof buf, "PRAGMA max_page_count=%lld",
	         (long long)pages + 2);
	CHECK_EQ(sql(s, buf), SQLITE_OK);
	CHECK_EQ(store_begin(s), 0);
	for (uint64_t b = 0; b < 50 && !rc; b++)
		rc = store_block_put(s, 30, b, 1, data, sizeof data, &created);
	CHECK_EQ(rc, -ENOSPC);
	CHECK_EQ(store_tx_lost_errno(s), -ENOSPC);
	store_rollback(s);
	CHECK_EQ(store_in_transaction(s), 0);
	store_close(s);
}

/* A schema with anything custodyfs did not create is refused before any
 * statement of ours runs on it, with why naming the object. */
static void test_schema(void)
{
	static const struct {
		const char *sql, *why;
	} cases[] = {
		{ "CREATE TRIGGER t AFTER INSERT ON audit BEGIN"
		  " DELETE FROM audit; END", "trigger 't'" },
		{ "CREATE VIEW v AS SELECT * FROM inodes", "view 'v'" },
		{ "CREATE TABLE extra(x)", "table 'extra'" },
		{ "CREATE INDEX extra_i ON blocks(data)", "index 'extra_i'" },
		{ "DROP INDEX blocks_kv", "lacks the index 'blocks_kv'" },
		{ "DROP TABLE mounts", "lacks the table 'mounts'" },
		{ "ALTER TABLE inodes ADD COLUMN evil TEXT", "table 'inodes'" },
		{ "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql="
		  "replace(sql, 'NOT NULL', '') WHERE name='roster';"
		  " PRAGMA writable_schema=OFF", "table 'roster'" },
	};
	char p[128], why[256];

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct store *s = NULL;
		sqlite3 *db = NULL;
		int rc;

		path_of(p, sizeof p, "schema.db");
		rm_store(p);
		CHECK_EQ(store_open(p, STORE_CREATE, 100, &s, NULL, 0), 0);
		store_close(s);
		s = NULL;
		/* the attacker's sqlite3, without our hardening */
		CHECK_EQ(sqlite3_open(p, &db), SQLITE_OK);
		rc = sqlite3_exec(db, cases[i].sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			fprintf(stderr, "  case %zu: %s\n", i, sqlite3_errmsg(db));
		CHECK_EQ(rc, SQLITE_OK);
		sqlite3_close(db);
		why[0] = 0;
		CHECK_EQ(store_open(p, 0, 100, &s, why, sizeof why), STORE_E_SCHEMA);
		CHECK(s == NULL);
		CHECK(strstr(why, cases[i].why) != NULL);
		if (!strstr(why, cases[i].why))
			fprintf(stderr, "  case %zu: why '%s'\n", i, why);
		CHECK_EQ(store_open(p, STORE_READONLY, 100, &s, why, sizeof why),
		         STORE_E_SCHEMA);
	}
	rm_store(p);

	/* a running connection notices a schema change (store_schema_verify) */
	{
		struct store *s = NULL;
		sqlite3 *db = NULL;

		CHECK_EQ(store_open(p, STORE_CREATE, 100, &s, NULL, 0), 0);
		if (s) {
			CHECK_EQ(store_schema_verify(s, why, sizeof why), 0);
			CHECK_EQ(sqlite3_open(p, &db), SQLITE_OK);
			CHECK_EQ(sqlite3_exec(db, "CREATE TABLE late(x)", NULL, NULL,
			                      NULL), SQLITE_OK);
			sqlite3_close(db);
			why[0] = 0;
			CHECK_EQ(store_schema_verify(s, why, sizeof why), STORE_E_SCHEMA);
			CHECK(strstr(why, "late") != NULL);
			store_close(s);
		}
		rm_store(p);
	}
}

/* A format-1 store: only with STORE_ANYFORMAT (custodyctl upgrade). */
static void test_old_format(void)
{
	const char *const *v1 = store_schema_sql(1);
	struct store *s = NULL;
	sqlite3 *db = NULL;
	char p[128], why[256];

	CHECK(v1 != NULL);
	CHECK(store_schema_sql(3) == NULL);
	if (!v1)
		return;
	path_of(p, sizeof p, "v1.db");
	CHECK_EQ(sqlite3_open(p, &db), SQLITE_OK);
	for (int i = 0; v1[i]; i++)
		CHECK_EQ(sqlite3_exec(db, v1[i], NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(db, "PRAGMA application_id=1129600070;"
	                      " PRAGMA user_version=1", NULL, NULL, NULL),
	         SQLITE_OK);
	sqlite3_close(db);
	why[0] = 0;
	CHECK_EQ(store_open(p, 0, 100, &s, why, sizeof why), STORE_E_OLDFORMAT);
	CHECK(s == NULL);
	CHECK(strstr(why, "upgrade") != NULL);
	CHECK_EQ(store_open(p, STORE_ANYFORMAT, 100, &s, why, sizeof why), 0);
	if (s) {
		CHECK_EQ(store_format(s), 1);
		store_close(s);
	}
	/* a format-1 file with a format-2 table in it is not format 1 */
	CHECK_EQ(sqlite3_open(p, &db), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(db, "CREATE TABLE roster(x)", NULL, NULL, NULL),
	         SQLITE_OK);
	sqlite3_close(db);
	CHECK_EQ(store_open(p, STORE_ANYFORMAT, 100, &s, why, sizeof why),
	         STORE_E_SCHEMA);
	rm_store(p);
}

static void test_not_a_store(void)
{
	char p[128], q[160];
	static uint8_t junk[70000];
	struct store *s = NULL;

	/* random bytes */
	path_of(p, sizeof p, "random.db");
	cipher_random(junk, sizeof junk);
	CHECK_EQ(write_file(p, junk, sizeof junk), 0);
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -ENOTSUP);
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_READONLY, 100, &s, NULL, 0), -ENOTSUP);
	CHECK_EQ(file_size(p), (int)sizeof junk); /* untouched */
	rm_store(p);

	/* random bytes behind a real SQLite magic string */
	memcpy(junk, "SQLite format 3", 16);
	CHECK_EQ(write_file(p, junk, sizeof junk), 0);
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -ENOTSUP);
	rm_store(p);

	/* an empty file */
	path_of(p, sizeof p, "empty.db");
	CHECK_EQ(write_file(p, NULL, 0), 0);
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -ENOTSUP);
	CHECK(s == NULL);
	CHECK_EQ(file_size(p), 0); /* SQLite must not have initialised it */
	rm_store(p);

	/* a directory */
	path_of(p, sizeof p, "adir");
	CHECK_EQ(mkdir(p, 0700), 0);
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -EISDIR);
	rmdir(p);

	/* a plain SQLite database without our application_id: take a real
	 * store and zero the application_id field of its header (offset 68) */
	path_of(p, sizeof p, "plain.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s, NULL, 0), 0);
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
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -ENOTSUP);
	CHECK(s == NULL);
	rm_store(p);

	/* a store with a newer format (the header's user_version) */
	path_of(p, sizeof p, "future.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s, NULL, 0), 0);
	if (s) {
		CHECK_EQ(sql(s, "PRAGMA user_version=99"), SQLITE_OK);
		store_close(s);
	}
	s = NULL;
	{
		char why[256] = "";
		CHECK_EQ(store_open(p, 0, 100, &s, why, sizeof why), -EPROTO);
		CHECK(strstr(why, "newer") != NULL);
	}
	CHECK(s == NULL);
	CHECK_EQ(store_open(p, STORE_READONLY, 100, &s, NULL, 0), -EPROTO);
	rm_store(p);

	/* a store whose format is 0 */
	path_of(p, sizeof p, "noformat.db");
	CHECK_EQ(store_open(p, STORE_CREATE, 100, &s, NULL, 0), 0);
	if (s) {
		CHECK_EQ(sql(s, "PRAGMA user_version=0"), SQLITE_OK);
		store_close(s);
	}
	s = NULL;
	CHECK_EQ(store_open(p, 0, 100, &s, NULL, 0), -ENOTSUP);
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
	CHECK_EQ(store_open(p, 0, 1000, &s, NULL, 0), 0);
	if (s) {
		test_inodes_blocks_xattrs(s);
		test_inode_each(s);
		test_dentries(s);
		test_rights_rows(s);
		test_credentials(s);
		test_grants(s);
		test_sessions_ledger(s);
		test_audit_rows(s);
		test_advisory_mtree(s);
		test_stale_usage(s);
		test_read_tx(s);
		store_close(s);
	}
	test_busy(p);
	test_full(p);
	/* everything above survives a reopen and is well-formed */
	s = NULL;
	CHECK_EQ(store_open(p, 0, 1000, &s, NULL, 0), 0);
	if (s) {
		char msg[64];
		struct store_inode in;
		CHECK_EQ(store_integrity_check(s, msg, sizeof msg), 0);
		CHECK_EQ(store_inode_get(s, 20, &in), 0);
		store_close(s);
	}
	rm_store(p);
	test_schema();
	test_old_format();
	test_not_a_store();
	CHECK_EQ(rmdir(dir), 0);
	UNIT_END("test_store");
}
