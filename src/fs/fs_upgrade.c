/*
 * fs_upgrade.c - the filesystem of a format-1 store, copied into a new
 * format-2 store and checked with the format-2 readers (fs_upgrade.h).
 *
 * Three passes over the format-1 store, all inside the caller's
 * transaction on the new one: the inodes (each with its blocks and
 * xattrs), the directory entries (each name opened with its directory's
 * key, as a lookup or a listing will), and the blocks of inodes that are
 * gone (the purge queue). The per-file block trees are folded as each
 * file is done; the inode and entry trees at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"
#include "fs_upgrade.h"
#include "ledger.h"
#include "rights.h"
#include "store_v1.h"
#include "unlock.h"

static const struct mtree_root empty_root;

struct up {
	struct fs *fs;
	struct unlocked *u;
	struct upgrade_v1 *v;
	upgrade_progress_fn progress;
	void *arg;
	struct fs_upgrade_stats *st;
	struct store_v1_counts n;
	uint64_t blocks_done, entries_done;
	char *why;
	size_t whylen;
	int err;
};

static void show(struct up *c, const char *what, uint64_t done,
                 uint64_t total)
{
	if (c->progress && (done % 256 == 0 || done == total))
		c->progress(c->arg, what, done, total);
}

/* ---- inodes, with their blocks and xattrs ---- */

struct blk {
	struct up *c;
	struct store_inode *in;
	uint64_t count;
};

static int copy_block(void *arg, uint64_t blk, uint32_t kv, const void *data,
                      size_t len)
{
	struct blk *b = arg;
	struct up *c = b->c;
	struct fs *fs = c->fs;
	uint8_t leaf[MTREE_HASH_BYTES];
	int created, rc;

	if (blk >= (b->in->size + fs->block_size - 1) / fs->block_size) {
		snprintf(c->why, c->whylen, "inode %llu has a block (%llu) past its"
		         " end", (unsigned long long)b->in->ino,
		         (unsigned long long)blk);
		c->err = -EBADMSG;
		return 1;
	}
	/* the leaf the format-2 reader expects (cipher 1: BLAKE2b of the
	 * stored bytes), and the block opens against it */
	if (blockio_leaf(fs, kv, data, len, leaf) ||
	    blockio_verify(fs, b->in, blk, kv, data, len, leaf)) {
		snprintf(c->why, c->whylen, "block %llu of inode %llu (key version"
		         " %u) fails authentication", (unsigned long long)blk,
		         (unsigned long long)b->in->ino, kv);
		c->err = -EBADMSG;
		return 1;
	}
	if ((rc = store_block_put(fs->s, b->in->ino, blk, kv, data, len,
	                          &created)) ||
	    (rc = mtree_put(fs->mt, MTREE_BLOCKS, b->in->ino, &empty_root, blk,
	                    leaf))) {
		c->err = rc;
		return 1;
	}
	b->count++;
	c->st->blocks++;
	c->st->bytes += len - CIPHER_OVERHEAD;
	show(c, "blocks", ++c->blocks_done, c->n.blocks);
	return 0;
}

static int copy_xattr(void *arg, const struct store_xattr *x)
{
	struct up *c = arg;
	int rc = store_xattr_put(c->fs->s, x);

	if (rc) {
		c->err = rc;
		return 1;
	}
	c->st->xattrs++;
	return 0;
}

static int copy_inode(void *arg, const struct store_v1_inode *i1)
{
	struct up *c = arg;
	struct fs *fs = c->fs;
	struct store_inode in;
	struct blk b = { c, &in, 0 };
	uint8_t leaf[MTREE_HASH_BYTES];
	int rc;

	memset(&in, 0, sizeof in);
	in.ino = i1->ino;
	memcpy(in.file_id, i1->file_id, sizeof in.file_id);
	in.mode = i1->mode;
	in.uid = i1->uid;
	in.gid = i1->gid;
	in.nlink = i1->nlink;
	in.size = i1->size;
	in.nblocks = i1->nblocks;
	in.rdev = i1->rdev;
	in.atime = i1->atime;
	in.mtime = i1->mtime;
	in.ctime = i1->ctime;
	in.generation = i1->generation;
	if (in.ino > INT64_MAX || in.size > INT64_MAX) {
		snprintf(c->why, c->whylen, "inode %llu is malformed",
		         (unsigned long long)in.ino);
		c->err = -EBADMSG;
		return 1;
	}
	if (S_ISDIR(in.mode) &&
	    (rc = store_v1_dentry_count(c->v->s, in.ino, &in.nentries))) {
		c->err = rc;
		return 1;
	}
	rc = store_block_each(c->v->s, in.ino, copy_block, &b);
	if (c->err)
		return 1;
	if (rc < 0) {
		snprintf(c->why, c->whylen, "the blocks of inode %llu cannot be"
		         " read", (unsigned long long)in.ino);
		c->err = rc == -EIO ? -EBADMSG : rc;
		return 1;
	}
	if (b.count != in.nblocks) {
		snprintf(c->why, c->whylen, "inode %llu counts %llu blocks, the store"
		         " holds %llu (blocks deleted or planted)",
		         (unsigned long long)in.ino, (unsigned long long)in.nblocks,
		         (unsigned long long)b.count);
		c->err = -EBADMSG;
		return 1;
	}
	if (b.count) {
		struct mtree_root root;
		if ((rc = mtree_fold(fs->mt, MTREE_BLOCKS, in.ino, &root))) {
			c->err = rc;
			return 1;
		}
		in.theight = root.height;
		memcpy(in.troot, root.hash, sizeof in.troot);
		mtree_forget(fs->mt, MTREE_BLOCKS, in.ino); /* bounded memory */
	}
	rc = store_xattr_each(c->v->s, in.ino, copy_xattr, c);
	if (c->err)
		return 1;
	if (rc < 0 || (rc = xattr_digest_rows(fs, in.ino, in.xdigest)) ||
	    (rc = xattr_verify(fs, &in))) {
		snprintf(c->why, c->whylen, "the extended attributes of inode %llu"
		         " fail authentication", (unsigned long long)in.ino);
		c->err = rc == -ENOMEM ? rc : -EBADMSG;
		return 1;
	}
	inode_leaf(&in, leaf);
	if ((rc = store_inode_insert(fs->s, &in)) ||
	    (rc = mtree_put(fs->mt, MTREE_INODES, 0, &empty_root, in.ino, leaf))) {
		c->err = rc;
		return 1;
	}
	c->st->inodes++;
	if (S_ISDIR(in.mode))
		c->st->dirs++;
	else if (S_ISLNK(in.mode))
		c->st->symlinks++;
	else
		c->st->files++;
	if (in.ino >= c->st->next_ino)
		c->st->next_ino = in.ino + 1;
	return 0;
}

/* ---- directory entries ---- */

static int copy_entry(void *arg, const struct store_dentry *d1)
{
	struct up *c = arg;
	struct fs *fs = c->fs;
	struct store_inode dir, child;
	struct store_dentry d = *d1;
	uint8_t leaf[MTREE_HASH_BYTES];
	char name[FS_NAME_MAX + 1];
	int rc;

	if (!d.namelen || !d.key_version) {
		snprintf(c->why, c->whylen, "directory entry %lld is malformed",
		         (long long)d1->id);
		c->err = -EBADMSG;
		return 1;
	}
	rc = store_inode_get(fs->s, d.parent, &dir);
	if (!rc && !S_ISDIR(dir.mode))
		rc = -ENOTDIR;
	if (!rc)
		rc = store_inode_get(fs->s, d.ino, &child);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		snprintf(c->why, c->whylen, "directory entry %lld (in %llu, naming"
		         " %llu) leads nowhere: its directory or its inode does not"
		         " exist", (long long)d1->id, (unsigned long long)d.parent,
		         (unsigned long long)d.ino);
		c->err = -EBADMSG;
		return 1;
	}
	if (rc) {
		c->err = rc;
		return 1;
	}
	if (dir_name(fs, &dir, &d, name)) {
		snprintf(c->why, c->whylen, "directory entry %lld of directory %llu"
		         " fails authentication (its name or target was tampered"
		         " with)", (long long)d1->id, (unsigned long long)d.parent);
		c->err = -EBADMSG;
		return 1;
	}
	cipher_wipe(name, sizeof name);
	/* a new id (the entry tree's position); the name's associated data
	 * does not involve it */
	if ((rc = store_dentry_insert(fs->s, &d))) {
		c->err = rc;
		return 1;
	}
	dentry_leaf(&d, leaf);
	if ((rc = mtree_put(fs->mt, MTREE_DENTRIES, 0, &empty_root,
	                    (uint64_t)d.id, leaf))) {
		c->err = rc;
		return 1;
	}
	c->st->entries++;
	show(c, "entries", ++c->entries_done, c->n.dentries);
	return 0;
}

/* ---- blocks of inodes that are gone ---- */

static int copy_raw(void *arg, uint64_t blk, uint32_t kv, const void *data,
                    size_t len)
{
	struct blk *b = arg;
	int created, rc = store_block_put(b->c->fs->s, b->in->ino, blk, kv, data,
	                                  len, &created);

	if (rc) {
		b->c->err = rc;
		return 1;
	}
	b->count++;
	return 0;
}

static int queue_purged(struct up *c)
{
	struct store_inode in;
	uint64_t ino = 0;
	int queued, rc;

	while ((rc = store_block_next_ino(c->v->s, ino, &ino, &queued)) == 0) {
		struct blk b = { c, &in, 0 };
		if (store_inode_get(c->fs->s, ino, &in) == 0)
			continue; /* alive: copied with its inode */
		memset(&in, 0, sizeof in);
		in.ino = ino;
		rc = store_block_each(c->v->s, ino, copy_raw, &b);
		if (c->err)
			return c->err;
		if (rc < 0)
			return rc;
		if ((rc = store_purge_queue(c->fs->s, ino)))
			return rc;
		c->st->purge_inodes++;
		c->st->purge_blocks += b.count;
		if (ino >= c->st->next_ino)
			c->st->next_ino = ino + 1;
	}
	return rc == -ENOENT ? 0 : rc;
}

static int queue_one(void *arg, uint64_t ino)
{
	struct up *c = arg;
	struct store_inode in;
	int rc;

	if (store_inode_get(c->fs->s, ino, &in) == 0)
		return 0; /* a live inode in the queue: never purge it */
	if ((rc = store_purge_queue(c->fs->s, ino))) {
		c->err = rc;
		return 1;
	}
	return 0;
}

static int fold_root(struct fs *fs, int kind, struct mtree_root *out)
{
	int rc = mtree_fold(fs->mt, kind, 0, out);

	if (rc == -ENOENT) {
		memset(out, 0, sizeof *out); /* never written: the empty tree */
		rc = 0;
	}
	return rc;
}

int fs_upgrade_v1(struct unlocked *u, struct upgrade_v1 *v,
                  upgrade_progress_fn progress, void *arg,
                  struct ledger_state *st, struct fs_upgrade_stats *stats,
                  char *why, size_t whylen)
{
	struct up c;
	struct store_inode root;
	int rc;

	memset(&c, 0, sizeof c);
	memset(stats, 0, sizeof *stats);
	c.u = u;
	c.v = v;
	c.progress = progress;
	c.arg = arg;
	c.st = stats;
	c.why = why;
	c.whylen = whylen;
	stats->next_ino = STORE_ROOT_INO + 1;
	if ((rc = store_v1_counts(v->s, &c.n)) || (rc = fs_alloc(u, NULL, &c.fs)))
		return rc;
	rc = store_v1_inode_each(v->s, copy_inode, &c);
	if (c.err)
		rc = c.err;
	else if (rc == -EIO) {
		snprintf(why, whylen, "a format-1 inode row is malformed");
		rc = -EBADMSG;
	}
	if (rc)
		goto out;
	if (progress)
		progress(arg, "blocks", c.blocks_done, c.blocks_done);
	if (store_inode_get(c.fs->s, STORE_ROOT_INO, &root) ||
	    !S_ISDIR(root.mode)) {
		snprintf(why, whylen, "the root directory (inode 1) is missing");
		rc = -EBADMSG;
		goto out;
	}
	rc = store_dentry_all(v->s, copy_entry, &c);
	if (c.err)
		rc = c.err;
	if (rc)
		goto out;
	if (progress)
		progress(arg, "entries", c.entries_done, c.entries_done);
	if ((rc = queue_purged(&c)))
		goto out;
	rc = store_v1_purge_each(v->s, queue_one, &c);
	if (c.err)
		rc = c.err;
	if (rc)
		goto out;
	if (c.n.max_ino >= stats->next_ino)
		stats->next_ino = c.n.max_ino + 1;
	if ((rc = fold_root(c.fs, MTREE_INODES, &st->inodes)) ||
	    (rc = fold_root(c.fs, MTREE_DENTRIES, &st->dentries)))
		goto out;
	st->next_ino = stats->next_ino;
out:
	if (rc && !why[0])
		snprintf(why, whylen, "%s", strerror(rc < 0 ? -rc : rc));
	fs_destroy(c.fs);
	return rc;
}
