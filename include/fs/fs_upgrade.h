/*
 * fs_upgrade.h - the filesystem of a format-1 store carried into a new
 * format-2 store (custodyctl upgrade), inside the caller's transaction on
 * the new store (upgrade.h: plan->fs).
 *
 * Every inode, directory entry, content block and xattr of the verified
 * format-1 store (upgrade_v1.h: inode MACs checked) is copied as it is
 * stored (ciphertext under its own key version, cipher 1), and checked on
 * the way with the format-2 code that will read it: each block is opened
 * against its leaf (the BLAKE2b of its stored bytes), each name with its
 * directory's key, each xattr set against its digest. The trees follow:
 * each file's block tree (root into its inode row), the inode tree with
 * each directory's entry count and xattr digest, the entry tree. Blocks of
 * deleted inodes (format 1's purge queue) are carried with the queue; the
 * next inode number lies above every number format 1 handed out.
 *
 * Anything that does not authenticate, or a tree that does not hold
 * together (an entry of a directory that does not exist, or naming an
 * inode that does not exist, a block past the end of its file, a block
 * count the blocks do not match), refuses the upgrade with -EBADMSG and
 * why: format 1 would have given EIO for it, and the upgrade signs only
 * what is genuine (custodyfs 0.1's check --repair fixes what it can).
 */
#ifndef CUSTODY_FS_UPGRADE_H
#define CUSTODY_FS_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include "upgrade_v1.h"

struct unlocked;
struct ledger_state;

struct fs_upgrade_stats {
	uint64_t inodes, files, dirs, symlinks, entries, blocks, bytes, xattrs;
	uint64_t purge_inodes, purge_blocks;
	uint64_t next_ino;
};

/*
 * Copy and check the filesystem of v into u's store (u: the new store with
 * its roster and the admin's session, whose keyring holds v's versions).
 * st receives the inode and entry roots and the next inode number.
 */
int fs_upgrade_v1(struct unlocked *u, struct upgrade_v1 *v,
                  upgrade_progress_fn progress, void *arg,
                  struct ledger_state *st, struct fs_upgrade_stats *stats,
                  char *why, size_t whylen);

#endif
