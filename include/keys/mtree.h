/*
 * mtree.h - authenticated positional trees: sparse Merkle trees of fanout
 * 16 kept in the store, with a bounded cache of verified nodes.
 *
 * What they are for: the whole filesystem state is covered by two global
 * trees (inodes by inode number, directory entries by entry id) and one
 * tree per file (its blocks by block number). The roots of the global trees
 * go into each signed commit record (ledger.h); a file's block root goes
 * into its inode row, so it is covered by the inode tree. A row read from
 * the store is accepted only if its leaf hash matches the tree, and the
 * tree is accepted only if it leads to a root the caller trusts: a block,
 * entry or inode that was forged with a data key, or replayed from an older
 * copy, no longer matches. One change costs O(log n) hashes.
 *
 * Shape. A tree is identified by (kind, owner). Positions are 64-bit.
 * Leaves are 32-byte hashes supplied by the caller; the all-zero hash means
 * "empty". A *group* at level L, index i holds the 16 child hashes of
 * positions (level 0: leaves) i*16 .. i*16+15; its hash is the child at
 * level L+1. A tree of height h (1..16) has one top group at level h-1,
 * index 0, covering positions [0, 16^h); height 0 is the empty tree. The
 * root is (height, hash of the top group). Height grows when a position
 * beyond 16^h is written and never shrinks, except that truncating to 0
 * gives the empty tree: height is part of the root, so it needs no
 * canonical value.
 *
 * Hashes. An all-zero group is not stored and hashes to 32 zero bytes. A
 * non-empty group hashes to
 *   BLAKE2b-256( "custodyfs.mtree\0" (16 bytes) || kind (1) || level (1) ||
 *                bitmap (2, little endian: bit s set = slot s non-zero) ||
 *                the non-zero slots' hashes in slot order )
 * and is stored in that compact form: bitmap || non-zero slots (2 + 32k
 * bytes), in the store's mtree table (store_mtree_*).
 *
 * Trust. The cache holds groups verified against a root the caller
 * supplied (or written by this process in the open transaction). Before a
 * leaf is returned every group on its path has been checked against its
 * parent, up to the root; a group that fails gives -EIO. If the caller
 * passes a clean tree a different root than the one its cached groups were
 * verified under, that tree's cache is dropped first. When another
 * connection may have written the store (mtree_invalidate), everything
 * cached is dropped.
 *
 * Transactions. mtree_put changes the working copy of a tree (dirty groups,
 * pinned in memory). mtree_fold writes one tree's dirty groups into the
 * store, inside the caller's open transaction, and returns its new root;
 * until then mtree_leaf of that tree answers from the working copy without
 * asking for a root. mtree_abort forgets every dirty group (the caller's
 * transaction rolled back).
 *
 * Errors: 0 or -errno: -EIO (a stored group fails verification, or is
 * malformed), -ENOMEM, -EINVAL (bad argument), errors of the store.
 * Not thread-safe: the filesystem lock serialises callers.
 */
#ifndef CUSTODY_MTREE_H
#define CUSTODY_MTREE_H

#include <stddef.h>
#include <stdint.h>

#define MTREE_FANOUT 16
#define MTREE_HASH_BYTES 32
#define MTREE_MAX_HEIGHT 16
/* stored form of one group: bitmap + up to 16 hashes */
#define MTREE_NODE_MAX (2 + MTREE_FANOUT * MTREE_HASH_BYTES)

enum mtree_kind {
	MTREE_INODES = 1,   /* owner 0, position = inode number */
	MTREE_DENTRIES = 2, /* owner 0, position = directory entry id */
	MTREE_BLOCKS = 3,   /* owner = inode number, position = block number */
	MTREE_CREDS = 4,    /* owner 0, position = user id */
};

struct mtree_root {
	uint32_t height;                 /* 0: empty tree */
	uint8_t hash[MTREE_HASH_BYTES];  /* hash of the top group, zero if empty */
};

struct store;
struct mtree;

/* A forest over store s with at most cache_bytes of cached groups (dirty
 * groups are pinned and may exceed it until the next fold). */
int mtree_new(struct store *s, size_t cache_bytes, struct mtree **out);
void mtree_free(struct mtree *mt);

/* 1 if the two roots are equal. */
int mtree_root_eq(const struct mtree_root *a, const struct mtree_root *b);

/*
 * The leaf at pos (zero-filled if empty) of tree (kind, owner). For a tree
 * with uncommitted changes the working copy answers and root is ignored;
 * otherwise every group on the path is verified against *root.
 */
int mtree_leaf(struct mtree *mt, int kind, uint64_t owner,
               const struct mtree_root *root, uint64_t pos,
               uint8_t leaf[MTREE_HASH_BYTES] /* OUT */);
/* n consecutive leaves from first (a staged read), as mtree_leaf. */
int mtree_leaves(struct mtree *mt, int kind, uint64_t owner,
                 const struct mtree_root *root, uint64_t first, size_t n,
                 uint8_t (*leaves)[MTREE_HASH_BYTES] /* OUT: n entries */);

/*
 * Set the leaf at pos (NULL or all-zero: make it empty). A clean tree is
 * first verified against *root along pos's path; the tree is dirty from
 * then on until mtree_fold.
 */
int mtree_put(struct mtree *mt, int kind, uint64_t owner,
              const struct mtree_root *root, uint64_t pos,
              const uint8_t leaf[MTREE_HASH_BYTES]);
/*
 * Make every position >= first empty (file truncation). first 0 empties the
 * tree (its stored groups are deleted at fold; the root becomes height 0).
 */
int mtree_truncate(struct mtree *mt, int kind, uint64_t owner,
                   const struct mtree_root *root, uint64_t first);

/* 1 if (kind, owner) has uncommitted changes. */
int mtree_dirty(struct mtree *mt, int kind, uint64_t owner);
/* Call fn for every dirty tree of kind (owner order not specified); fn may
 * fold the tree it is given. fn returning non-zero stops with that value. */
int mtree_dirty_each(struct mtree *mt, int kind,
                     int (*fn)(void *arg, uint64_t owner), void *arg);
/*
 * Write the dirty groups of (kind, owner) into the store (inside the
 * caller's transaction) and give its new root. A clean tree: *out is its
 * current root as last verified or folded (-ENOENT if it was never seen).
 */
int mtree_fold(struct mtree *mt, int kind, uint64_t owner,
               struct mtree_root *out);
/* Forget a tree entirely (its inode was freed): no dirty state, no cache.
 * Its stored groups are deleted by store_mtree_delete_owner (purge). */
void mtree_forget(struct mtree *mt, int kind, uint64_t owner);

/* The caller's transaction rolled back: drop every dirty group (and the
 * working roots). Clean cached groups stay. */
void mtree_abort(struct mtree *mt);
/* Another connection may have changed the store: drop everything cached.
 * Must not be called with dirty trees (-EBUSY). */
int mtree_invalidate(struct mtree *mt);

/*
 * Verify a whole stored tree against root (check): every stored group on a
 * path from the root is checked, and fn is called for each non-empty leaf
 * in position order; fn non-zero stops (returned). Stored groups that lie
 * under no path (left behind) are counted in *stray (may be NULL). Does
 * not use or fill the cache.
 */
int mtree_walk(struct mtree *mt, int kind, uint64_t owner,
               const struct mtree_root *root,
               int (*fn)(void *arg, uint64_t pos,
                         const uint8_t leaf[MTREE_HASH_BYTES]),
               void *arg, uint64_t *stray);

/* Bytes of cached groups now (for tests and memory accounting). */
size_t mtree_cached_bytes(const struct mtree *mt);

/*
 * Proofs that two roots of one tree differ in the leaf at pos only (a
 * user's own credential, changed by a commit only that user signed).
 * mtree_proof writes the groups on pos's path of the tree under root
 * (clean: folded or verified), leaf level first: height (1) then per level
 * length (2, LE) and the compact group. mtree_proof_check: 0 if those
 * groups lead to *after and, with the leaf at pos replaced by old_leaf, to
 * *before (both of the proof's height); -EBADMSG if not.
 */
#define MTREE_PROOF_MAX (1 + 5 * (2 + MTREE_NODE_MAX))
int mtree_proof(struct mtree *mt, int kind, uint64_t owner,
                const struct mtree_root *root, uint64_t pos, uint8_t *out,
                size_t cap, size_t *len);
int mtree_proof_check(int kind, uint64_t pos, const uint8_t *proof,
                      size_t len, const uint8_t old_leaf[MTREE_HASH_BYTES],
                      const struct mtree_root *before,
                      const struct mtree_root *after);

#endif
