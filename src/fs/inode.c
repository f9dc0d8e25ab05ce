/*
 * inode.c - inode rows: their leaves in the inode tree, loading (checked
 * against the tree, then cached), saving, allocation, link counting and
 * freeing.
 *
 * Sizes, modes, owners and times are stored in the clear so the kernel can
 * stat without decryption; the row's leaf covers every column, its block
 * tree's root and the digest of its xattrs, so a row that was edited, or
 * put back from an older copy, is not the signed one and gives -EIO.
 *
 * Two maps: the inodes this transaction changed (their newest values,
 * which the commit folds into the tree: fs_tx.c), and a direct-mapped
 * cache of inodes verified against the current roots, which makes a
 * repeated stat cost no SQL at all. The cache is dropped when another
 * process commits (fs_catch_up).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fs_internal.h"

void inode_leaf(const struct store_inode *in, uint8_t leaf[MTREE_HASH_BYTES])
{
	uint8_t f[8 * 14 + 4];
	struct cipher_part p[5];

	put_le64(f + 0, in->ino);
	put_le64(f + 8, in->mode);
	put_le64(f + 16, in->uid);
	put_le64(f + 24, in->gid);
	put_le64(f + 32, in->nlink);
	put_le64(f + 40, in->size);
	put_le64(f + 48, in->nblocks);
	put_le64(f + 56, in->rdev);
	put_le64(f + 64, (uint64_t)in->atime);
	put_le64(f + 72, (uint64_t)in->mtime);
	put_le64(f + 80, (uint64_t)in->ctime);
	put_le64(f + 88, in->generation);
	put_le64(f + 96, in->nentries);
	put_le64(f + 104, 0);
	put_le32(f + 112, in->theight);
	p[0] = (struct cipher_part){ "custodyfs.inode\0", 16 };
	p[1] = (struct cipher_part){ in->file_id, sizeof in->file_id };
	p[2] = (struct cipher_part){ f, sizeof f };
	p[3] = (struct cipher_part){ in->troot, sizeof in->troot };
	p[4] = (struct cipher_part){ in->xdigest, sizeof in->xdigest };
	cipher_hash(leaf, p, 5);
}

/* ---- the transaction's changed inodes ---- */

static struct fs_dirty *dirty_find(struct fs *fs, uint64_t ino)
{
	struct fs_dirty *d;

	for (d = fs->dirty[ino % FS_DIRTY_BUCKETS]; d; d = d->next)
		if (d->in.ino == ino)
			return d;
	return NULL;
}

static int dirty_put(struct fs *fs, const struct store_inode *in)
{
	struct fs_dirty *d = dirty_find(fs, in->ino);

	if (!d) {
		if (!(d = malloc(sizeof *d)))
			return -ENOMEM;
		d->next = fs->dirty[in->ino % FS_DIRTY_BUCKETS];
		fs->dirty[in->ino % FS_DIRTY_BUCKETS] = d;
		fs->ndirty++;
	}
	d->in = *in;
	return 0;
}

static void dirty_drop(struct fs *fs, uint64_t ino)
{
	struct fs_dirty **p;

	for (p = &fs->dirty[ino % FS_DIRTY_BUCKETS]; *p; p = &(*p)->next)
		if ((*p)->in.ino == ino) {
			struct fs_dirty *d = *p;
			*p = d->next;
			free(d);
			fs->ndirty--;
			return;
		}
}

static void cache_put(struct fs *fs, const struct store_inode *in)
{
	struct fs_inode_slot *sl = &fs->icache[in->ino & (FS_ICACHE_SLOTS - 1)];

	sl->valid = 1;
	sl->in = *in;
}

static void cache_drop(struct fs *fs, uint64_t ino)
{
	struct fs_inode_slot *sl = &fs->icache[ino & (FS_ICACHE_SLOTS - 1)];

	if (sl->valid && sl->in.ino == ino)
		sl->valid = 0;
}

void inode_cache_clear(struct fs *fs)
{
	memset(fs->icache, 0, FS_ICACHE_SLOTS * sizeof *fs->icache);
}

void inode_forget_dirty(struct fs *fs)
{
	for (int i = 0; i < FS_DIRTY_BUCKETS; i++) {
		struct fs_dirty *d = fs->dirty[i], *n;
		for (; d; d = n) {
			n = d->next;
			cache_drop(fs, d->in.ino);
			free(d);
		}
		fs->dirty[i] = NULL;
	}
	fs->ndirty = 0;
}

/* A block tree changed in this transaction: fold it, its root into the
 * inode. */
static int fold_blocks(void *arg, uint64_t ino)
{
	struct fs *fs = arg;
	struct store_inode in;
	struct mtree_root root;
	int rc;

	if ((rc = inode_load(fs, ino, &in)) == -ENOENT) {
		mtree_forget(fs->mt, MTREE_BLOCKS, ino); /* freed meanwhile */
		return 0;
	}
	if (rc || (rc = mtree_fold(fs->mt, MTREE_BLOCKS, ino, &root)))
		return rc;
	in.theight = root.height;
	memcpy(in.troot, root.hash, sizeof in.troot);
	if ((rc = store_inode_update(fs->s, &in)))
		return rc;
	return dirty_put(fs, &in);
}

int inode_fold_all(struct fs *fs)
{
	uint8_t leaf[MTREE_HASH_BYTES];
	int rc = mtree_dirty_each(fs->mt, MTREE_BLOCKS, fold_blocks, fs);

	if (rc)
		return rc;
	for (int i = 0; i < FS_DIRTY_BUCKETS; i++)
		for (struct fs_dirty *d = fs->dirty[i]; d; d = d->next) {
			inode_leaf(&d->in, leaf);
			if ((rc = mtree_put(fs->mt, MTREE_INODES, 0, &fs->inodes,
			                    d->in.ino, leaf)))
				return rc;
		}
	/* folded: the changed inodes are now the verified ones */
	for (int i = 0; i < FS_DIRTY_BUCKETS; i++) {
		struct fs_dirty *d = fs->dirty[i], *n;
		for (; d; d = n) {
			n = d->next;
			cache_put(fs, &d->in);
			free(d);
		}
		fs->dirty[i] = NULL;
	}
	fs->ndirty = 0;
	return 0;
}

/* ---- load and save ---- */

int inode_load(struct fs *fs, uint64_t ino, struct store_inode *in)
{
	struct fs_dirty *d = fs->ndirty ? dirty_find(fs, ino) : NULL;
	struct fs_inode_slot *sl = &fs->icache[ino & (FS_ICACHE_SLOTS - 1)];
	uint8_t want[MTREE_HASH_BYTES], have[MTREE_HASH_BYTES];
	int rc;

	if (d) {
		*in = d->in;
		return 0;
	}
	if (sl->valid && sl->in.ino == ino) {
		*in = sl->in;
		return 0;
	}
	if ((rc = mtree_leaf(fs->mt, MTREE_INODES, 0, &fs->inodes, ino, want)))
		return rc == -EINVAL ? -ENOENT : rc;
	rc = store_inode_get(fs->s, ino, in);
	if (rc == -ENOENT) {
		static const uint8_t zero[MTREE_HASH_BYTES];
		/* gone from the store, but the signed state has it */
		return cipher_memeq(want, zero, sizeof zero) ? -ENOENT : -EIO;
	}
	if (rc)
		return rc;
	inode_leaf(in, have);
	if (!cipher_memeq(want, have, sizeof have)) {
		static const uint8_t zero[MTREE_HASH_BYTES];
		/* a row where the signed state has none is not an inode */
		return cipher_memeq(want, zero, sizeof zero) ? -ENOENT : -EIO;
	}
	cache_put(fs, in);
	return 0;
}

int inode_save(struct fs *fs, struct store_inode *in)
{
	int rc = store_inode_update(fs->s, in);

	if (rc)
		return rc == -ENOENT ? -EIO : rc;
	cache_drop(fs, in->ino);
	return dirty_put(fs, in);
}

/* c holds CAP_FSETID (no caller: an internal change, nothing cleared) */
static int has_fsetid(const struct fs_ctx *c, int ask)
{
	if (!c)
		return 1;
	if (c->no_fsetid > 0 && !ask)
		return 0;
	if (c->no_fsetid == 0 && !ask)
		return 1;
	return c->ask ? c->ask->has_fsetid(c->req) != 0 : 1;
}

static int in_group(const struct fs_ctx *c, uint32_t gid)
{
	if (!c || c->gid == gid)
		return 1;
	return c->ask ? c->ask->in_group(c->req, gid) != 0 : 0;
}

int inode_kill_privs(struct fs *fs, struct store_inode *in,
                     const struct fs_ctx *c, int why)
{
	static const uint8_t none[MTREE_HASH_BYTES];
	uint32_t m = in->mode, kill = 0;
	int rc;

	if (!fs->kill_privs || (c && c->page_writeback) ||
	    (why == INODE_KILL_DATA ? !S_ISREG(m) : S_ISDIR(m)))
		return 0;
	/* a file capability goes with any such change, whoever makes it: the
	 * kernel removes it itself (a REMOVEXATTR before the change), except
	 * before a direct-I/O write; a file without xattrs has none */
	if (c && c->direct_io && !cipher_memeq(in->xdigest, none, sizeof none) &&
	    (rc = xattr_remove(fs, in, "security.capability")) && rc != -ENODATA)
		return rc;
	if (!(m & (S_ISUID | S_ISGID)))
		return 0;
	if (why == INODE_KILL_DATA) {
		/* the VFS's setattr_should_drop_suidgid */
		if (has_fsetid(c, 0))
			return 0;
		kill = m & S_ISUID;
		if ((m & S_ISGID) && ((m & S_IXGRP) || !in_group(c, in->gid)))
			kill |= S_ISGID;
	} else {
		/* chown_common: set-user-ID always, set-group-ID as
		 * setattr_should_drop_sgid (the kernel's word on a chown is
		 * always "clear": CAP_FSETID is asked) */
		kill = m & S_ISUID;
		if ((m & S_ISGID) && ((m & S_IXGRP) ||
		                      (!in_group(c, in->gid) && !has_fsetid(c, 1))))
			kill |= S_ISGID;
	}
	in->mode = m & ~kill;
	return kill != 0;
}

void inode_touch(struct store_inode *in, int a, int m, int c)
{
	int64_t now = fs_now_ns();

	if (a)
		in->atime = now;
	if (m)
		in->mtime = now;
	if (c)
		in->ctime = now;
}

int inode_alloc(struct fs *fs, const struct fs_ctx *c, uint32_t mode,
                uint64_t rdev, struct store_inode *out)
{
	uint64_t debris;
	int rc;

	if (!keyring_active(fs->kr))
		return -EROFS;
	if (fs->next_ino < STORE_ROOT_INO || fs->next_ino >= (1ull << 62))
		return -ENOSPC;
	memset(out, 0, sizeof *out);
	out->ino = fs->next_ino;
	cipher_unique(out->file_id, sizeof out->file_id);
	out->mode = mode;
	out->uid = c->uid;
	out->gid = c->gid;
	out->nlink = S_ISDIR(mode) ? 2 : 1;
	out->rdev = rdev;
	inode_touch(out, 1, 1, 1);
	cipher_unique(&out->generation, sizeof out->generation);
	out->generation &= 0x7fffffffffffffffull;
	/* a row already there is none of ours (the signed state says the
	 * number is unused): store_inode_insert replaces it, and every other
	 * row under the number (blocks, xattrs, entries, tree groups, a purge
	 * entry) goes, so nothing planted there joins the new file */
	if ((rc = store_inode_clear(fs->s, out->ino, &debris)) ||
	    (rc = store_mtree_delete_owner(fs->s, MTREE_BLOCKS, out->ino)) ||
	    (rc = store_inode_insert(fs->s, out)))
		return rc;
	mtree_forget(fs->mt, MTREE_BLOCKS, out->ino);
	if (debris)
		fs_warn(fs, "inode %llu: %llu rows stored under the new inode"
		        " number before it was used (planted) were removed",
		        (unsigned long long)out->ino, (unsigned long long)debris);
	fs->next_ino++;
	return dirty_put(fs, out);
}

/* Nanoseconds as a timespec: a time before 1970 has a whole second below
 * it and a fraction above (-1.25 s is -2 s + 0.75 s), as the kernel's. */
static struct timespec ns_ts(int64_t ns)
{
	struct timespec t = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	if (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000;
		t.tv_sec--;
	}
	return t;
}

void inode_to_attr(const struct fs *fs, const struct store_inode *in,
                   struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	out->ino = in->ino;
	out->mode = in->mode;
	out->uid = in->uid;
	out->gid = in->gid;
	out->nlink = in->nlink;
	out->size = in->size;
	out->blocks = in->nblocks * (fs->block_size / 512);
	out->rdev = in->rdev;
	out->blksize = fs->block_size;
	out->atime = ns_ts(in->atime);
	out->mtime = ns_ts(in->mtime);
	out->ctime = ns_ts(in->ctime);
	out->generation = in->generation;
}

int inode_maybe_free(struct fs *fs, uint64_t ino, int held)
{
	static const uint8_t zero[MTREE_HASH_BYTES];
	struct store_inode in;
	int rc;

	if (held)
		return 0;
	rc = inode_load(fs, ino, &in);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (in.nlink != 0 || ino == STORE_ROOT_INO)
		return 0;
	if ((rc = store_inode_delete(fs->s, ino)) ||
	    (rc = mtree_put(fs->mt, MTREE_INODES, 0, &fs->inodes, ino, zero)))
		return rc;
	dirty_drop(fs, ino);
	cache_drop(fs, ino);
	mtree_forget(fs->mt, MTREE_BLOCKS, ino);
	fs->purging = 1;
	return 0;
}

int inode_unlink(struct fs *fs, struct store_inode *in, int held)
{
	int rc;

	if (S_ISDIR(in->mode))
		in->nlink = 0;
	else if (in->nlink > 0)
		in->nlink--;
	inode_touch(in, 0, 0, 1);
	if ((rc = inode_save(fs, in)))
		return rc;
	if (in->nlink == 0)
		return inode_maybe_free(fs, in->ino, held);
	return 0;
}
