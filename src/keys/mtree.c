/*
 * mtree.c - the authenticated positional trees of mtree.h: sparse Merkle
 * trees of fanout 16 whose groups live in the store's mtree table. Every
 * row the filesystem reads is accepted only if its leaf leads, group by
 * group, to a root the caller trusts; this file finds leaves, keeps the
 * working copy of changed trees and writes it back (fold) inside the
 * caller's transaction.
 *
 * The cache. Groups in memory are decoded (16 slots of 32 bytes) and found
 * by one hash table keyed (tree record, level, idx). A tree record
 * remembers the root its clean groups were verified under, and a clean
 * group is in memory only because it was checked against its parent, up to
 * that root; so finding the level-0 group of a position is enough to trust
 * its leaf (one probe), and otherwise the path is walked from the top, one
 * probe per level, loading and checking what is missing. A caller's root
 * that differs from the remembered one drops the tree's groups first.
 * Changed groups are dirty: off the LRU, pinned on their tree's dirty list,
 * and every ancestor of a dirty group is dirty too, so fold hashes each
 * exactly once, level by level from the leaves up, and finds each parent in
 * memory. A parent's slot for a dirty child is stale until fold; nothing
 * reads it, because every lookup tries the cache before the parent's slot.
 * Clean groups are on an LRU bounded by cache_bytes, trimmed at the end of
 * a call (so pointers taken during a call stay valid). A tree record with
 * no group left and no change is idle: it only remembers a root, for
 * mtree_fold, and the idle ones have their own small bound (IDLE_MIN, or
 * one per 4 KiB of cache), oldest dropped first.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cipher.h"
#include "mtree.h"
#include "store.h"

_Static_assert(MTREE_HASH_BYTES == CIPHER_MAC_BYTES, "tree hash size");

/* positions (and so every idx) must fit the store's int64 */
#define POS_LIMIT ((uint64_t)1 << 63)
#define NO_TRUNC UINT64_MAX
#define TAB_MIN 64 /* buckets; tables are powers of two */
#define IDLE_MIN 1024 /* idle tree records remembered at least */
#define HB MTREE_HASH_BYTES

/* the domain of a group hash: 15 characters and their NUL */
static const uint8_t hash_prefix[16] = "custodyfs.mtree";

struct link {
	struct link *prev, *next;
};

struct tree;

struct group {
	struct link lru;     /* clean: the LRU; dirty: its tree's dirty list */
	struct link tl;      /* its tree's groups */
	struct group *hnext; /* hash chain */
	struct tree *tree;
	uint64_t idx;
	uint8_t level;
	uint8_t dirty;
	uint8_t stored;      /* the store may hold its row: delete it if emptied */
	uint8_t slot[MTREE_FANOUT][HB];
};

struct tree {
	struct link ilink;   /* mt->idle while idle: clean and no groups */
	struct tree *hnext;  /* hash chain */
	struct link groups;  /* every group of this tree in memory (group.tl) */
	struct link dirty;   /* its dirty groups (group.lru) */
	struct link dlink;   /* mt->dirty_trees while dirty */
	uint64_t owner;
	uint64_t trunc;      /* lowest truncation point since the last fold */
	size_t ngroups;
	struct mtree_root clean; /* what the clean groups were verified under */
	struct mtree_root work;  /* the working copy's; its hash is stale while
	                          * the top group is dirty */
	uint8_t kind;
	uint8_t is_dirty;
	uint8_t idle;
	uint8_t folded;      /* clean came from our own fold, not from a caller */
	uint8_t unsure;      /* folded, then a rollback: maybe never committed */
};

struct mtree {
	struct store *s;
	size_t cap, bytes;   /* bytes: of groups in memory */
	struct group **gtab;
	size_t gsize, ngroups;
	struct tree **ttab;
	size_t tsize, ntrees;
	struct link lru;     /* clean groups, most recently used first */
	struct link idle;    /* idle tree records, most recently used first */
	size_t nidle, idle_max;
	struct link dirty_trees;
	size_t ndirty;
};

#define CONTAINER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- small helpers ---- */

static void link_init(struct link *h)
{
	h->prev = h->next = h;
}

static int link_empty(const struct link *h)
{
	return h->next == h;
}

static void link_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

static void link_add_head(struct link *h, struct link *l)
{
	l->next = h->next;
	l->prev = h;
	h->next->prev = l;
	h->next = l;
}

static void link_add_tail(struct link *h, struct link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static int hash_zero(const uint8_t *h)
{
	uint64_t a, b, c, d;

	memcpy(&a, h, 8);
	memcpy(&b, h + 8, 8);
	memcpy(&c, h + 16, 8);
	memcpy(&d, h + 24, 8);
	return !(a | b | c | d);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static int kind_ok(int kind)
{
	return kind >= 1 && kind <= UINT8_MAX; /* one byte of the hash */
}

static int root_ok(const struct mtree_root *r)
{
	return r && r->height <= MTREE_MAX_HEIGHT &&
	       (r->height > 0 || hash_zero(r->hash));
}

/* 1 if a tree of height h holds pos (h 16 holds every position) */
static int covers(uint32_t h, uint64_t pos)
{
	return h >= MTREE_MAX_HEIGHT || (h > 0 && !(pos >> (4 * h)));
}

static uint32_t height_for(uint64_t pos)
{
	uint32_t h = 1;

	while (!covers(h, pos))
		h++;
	return h;
}

/* ---- hashing and the compact form ---- */

static void node_hash(int kind, int level, const uint8_t *node, size_t len,
                      uint8_t out[HB])
{
	uint8_t hdr[sizeof hash_prefix + 2];
	struct cipher_part parts[2];

	memcpy(hdr, hash_prefix, sizeof hash_prefix);
	hdr[sizeof hash_prefix] = (uint8_t)kind;
	hdr[sizeof hash_prefix + 1] = (uint8_t)level;
	parts[0].p = hdr;
	parts[0].len = sizeof hdr;
	parts[1].p = node;
	parts[1].len = len;
	cipher_hash(out, parts, 2);
}

/* The compact form of g into node: its length, 0 if g is all zero. */
static size_t group_encode(const struct group *g, uint8_t node[MTREE_NODE_MAX])
{
	unsigned bm = 0;
	uint8_t *p = node + 2;

	for (unsigned s = 0; s < MTREE_FANOUT; s++)
		if (!hash_zero(g->slot[s])) {
			bm |= 1u << s;
			memcpy(p, g->slot[s], HB);
			p += HB;
		}
	if (!bm)
		return 0;
	node[0] = (uint8_t)bm;
	node[1] = (uint8_t)(bm >> 8);
	return (size_t)(p - node);
}

/* A stored node is well-formed and hashes to expect; -EIO if not. */
static int node_check(int kind, int level, const uint8_t *node, size_t len,
                      const uint8_t expect[HB])
{
	uint8_t h[HB];
	unsigned bm;

	if (len < 2)
		return -EIO;
	bm = node[0] | (unsigned)node[1] << 8;
	if (!bm || len != 2 + (size_t)__builtin_popcount(bm) * HB)
		return -EIO;
	for (size_t off = 2; off < len; off += HB)
		if (hash_zero(node + off))
			return -EIO; /* a set slot must say something */
	node_hash(kind, level, node, len, h);
	return memcmp(h, expect, HB) ? -EIO : 0;
}

/* A tree record in use again: off the idle list. */
static void tree_unidle(struct mtree *mt, struct tree *t)
{
	if (t->idle) {
		link_del(&t->ilink);
		t->idle = 0;
		mt->nidle--;
	}
}

/* ---- the group table ---- */

static size_t group_bucket(const struct mtree *mt, const struct tree *t,
                           int level, uint64_t idx)
{
	/* idx < 2^59 at level 0 and smaller above, so level fits over it */
	uint64_t k = idx ^ ((uint64_t)level << 60) ^
	             ((uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull);

	return (size_t)(mix64(k) & (mt->gsize - 1));
}

static struct group *group_find(const struct mtree *mt, const struct tree *t,
                                int level, uint64_t idx)
{
	struct group *g = mt->gtab[group_bucket(mt, t, level, idx)];

	while (g && (g->idx != idx || g->tree != t || g->level != level))
		g = g->hnext;
	return g;
}

static void gtab_resize(struct mtree *mt, size_t nsize)
{
	struct group **old = mt->gtab, **nt = calloc(nsize, sizeof *nt);
	size_t osize = mt->gsize;

	if (!nt)
		return; /* keep the old table: longer chains, still correct */
	mt->gtab = nt;
	mt->gsize = nsize;
	for (size_t i = 0; i < osize; i++) {
		struct group *g = old[i], *next;
		for (; g; g = next) {
			size_t b = group_bucket(mt, g->tree, g->level, g->idx);
			next = g->hnext;
			g->hnext = nt[b];
			nt[b] = g;
		}
	}
	free(old);
}

/* A zero-filled group of t, in the table but on no list: the caller puts
 * it on the LRU or marks it dirty. */
static struct group *group_new(struct mtree *mt, struct tree *t, int level,
                               uint64_t idx)
{
	struct group *g = malloc(sizeof *g);
	size_t b;

	if (!g)
		return NULL;
	memset(g, 0, offsetof(struct group, slot));
	memset(g->slot, 0, sizeof g->slot);
	link_init(&g->lru);
	g->tree = t;
	g->level = (uint8_t)level;
	g->idx = idx;
	if (mt->ngroups >= mt->gsize)
		gtab_resize(mt, mt->gsize * 2);
	b = group_bucket(mt, t, level, idx);
	g->hnext = mt->gtab[b];
	mt->gtab[b] = g;
	link_add_tail(&t->groups, &g->tl);
	tree_unidle(mt, t);
	t->ngroups++;
	mt->ngroups++;
	mt->bytes += sizeof *g;
	return g;
}

/* Unlink and free g, wherever it is (its tree stays as it is). */
static void group_free(struct mtree *mt, struct group *g)
{
	size_t b = group_bucket(mt, g->tree, g->level, g->idx);
	struct group **pp = &mt->gtab[b];

	while (*pp != g)
		pp = &(*pp)->hnext;
	*pp = g->hnext;
	link_del(&g->lru);
	link_del(&g->tl);
	g->tree->ngroups--;
	mt->ngroups--;
	mt->bytes -= sizeof *g;
	free(g);
}

static void lru_touch(struct link *h, struct link *l)
{
	if (h->next != l) {
		link_del(l);
		link_add_head(h, l);
	}
}

static void group_mark_dirty(struct group *g)
{
	if (!g->dirty) {
		link_del(&g->lru);
		link_add_tail(&g->tree->dirty, &g->lru);
		g->dirty = 1;
	}
}

/* ---- tree records ---- */

static size_t tree_bucket(const struct mtree *mt, int kind, uint64_t owner)
{
	uint64_t k = owner ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ull);

	return (size_t)(mix64(k) & (mt->tsize - 1));
}

static struct tree *tree_find(const struct mtree *mt, int kind, uint64_t owner)
{
	struct tree *t = mt->ttab[tree_bucket(mt, kind, owner)];

	while (t && (t->owner != owner || t->kind != kind))
		t = t->hnext;
	return t;
}

static void ttab_resize(struct mtree *mt, size_t nsize)
{
	struct tree **old = mt->ttab, **nt = calloc(nsize, sizeof *nt);
	size_t osize = mt->tsize;

	if (!nt)
		return;
	mt->ttab = nt;
	mt->tsize = nsize;
	for (size_t i = 0; i < osize; i++) {
		struct tree *t = old[i], *next;
		for (; t; t = next) {
			size_t b = tree_bucket(mt, t->kind, t->owner);
			next = t->hnext;
			t->hnext = nt[b];
			nt[b] = t;
		}
	}
	free(old);
}

/* Put t on the idle list if it has become idle. */
static void tree_settle(struct mtree *mt, struct tree *t)
{
	if (t->is_dirty || t->ngroups || t->idle)
		return;
	link_add_head(&mt->idle, &t->ilink);
	t->idle = 1;
	mt->nidle++;
}

static struct tree *tree_new(struct mtree *mt, int kind, uint64_t owner)
{
	struct tree *t = calloc(1, sizeof *t);
	size_t b;

	if (!t)
		return NULL;
	link_init(&t->ilink);
	link_init(&t->groups);
	link_init(&t->dirty);
	link_init(&t->dlink);
	t->kind = (uint8_t)kind;
	t->owner = owner;
	t->trunc = NO_TRUNC;
	if (mt->ntrees >= mt->tsize)
		ttab_resize(mt, mt->tsize * 2);
	b = tree_bucket(mt, kind, owner);
	t->hnext = mt->ttab[b];
	mt->ttab[b] = t;
	mt->ntrees++;
	tree_settle(mt, t);
	return t;
}

/* Free every group of t, dirty ones too. */
static void tree_drop_groups(struct mtree *mt, struct tree *t)
{
	while (!link_empty(&t->groups))
		group_free(mt, CONTAINER(t->groups.next, struct group, tl));
}

static void tree_set_dirty(struct mtree *mt, struct tree *t)
{
	if (t->is_dirty)
		return;
	tree_unidle(mt, t);
	t->is_dirty = 1;
	link_add_tail(&mt->dirty_trees, &t->dlink);
	mt->ndirty++;
}

static void tree_set_clean(struct mtree *mt, struct tree *t)
{
	if (!t->is_dirty)
		return;
	t->is_dirty = 0;
	t->trunc = NO_TRUNC;
	link_del(&t->dlink);
	mt->ndirty--;
}

/* Free a tree record (its groups first). */
static void tree_free(struct mtree *mt, struct tree *t)
{
	struct tree **pp = &mt->ttab[tree_bucket(mt, t->kind, t->owner)];

	tree_drop_groups(mt, t);
	tree_set_clean(mt, t);
	while (*pp != t)
		pp = &(*pp)->hnext;
	*pp = t->hnext;
	tree_unidle(mt, t);
	mt->ntrees--;
	free(t);
}

/* The smallest table for n entries at a load of at most 1/2. */
static size_t tab_size_for(size_t n)
{
	size_t sz = TAB_MIN;

	while (sz < 2 * n)
		sz *= 2;
	return sz;
}

/* Evict from the cold ends until the cache fits; keep (may be NULL) is a
 * tree record the caller still uses. */
static void cache_trim(struct mtree *mt, const struct tree *keep)
{
	while (mt->bytes > mt->cap && !link_empty(&mt->lru)) {
		struct group *g = CONTAINER(mt->lru.prev, struct group, lru);
		struct tree *t = g->tree;

		group_free(mt, g);
		tree_settle(mt, t);
	}
	while (mt->nidle > mt->idle_max) {
		struct tree *t = CONTAINER(mt->idle.prev, struct tree, ilink);

		if (t == keep)
			lru_touch(&mt->idle, &t->ilink); /* idle_max > 1 */
		else
			tree_free(mt, t);
	}
	/* give back what a large fold or a dropped tree left in the tables */
	if (mt->gsize > TAB_MIN && mt->ngroups < mt->gsize / 8)
		gtab_resize(mt, tab_size_for(mt->ngroups));
	if (mt->tsize > TAB_MIN && mt->ntrees < mt->tsize / 8)
		ttab_resize(mt, tab_size_for(mt->ntrees));
}

static void trim(struct mtree *mt)
{
	if (mt->bytes > mt->cap || mt->nidle > mt->idle_max)
		cache_trim(mt, NULL);
}

/*
 * The record of (kind, owner) for an operation. A dirty tree ignores root;
 * a clean one needs it, and a root other than the one its groups were
 * verified under drops them first.
 */
static int tree_use(struct mtree *mt, int kind, uint64_t owner,
                    const struct mtree_root *root, struct tree **out)
{
	struct tree *t = tree_find(mt, kind, owner);

	if (t && t->is_dirty) {
		*out = t;
		return 0;
	}
	if (!root_ok(root))
		return -EINVAL;
	if (!t) {
		if (!(t = tree_new(mt, kind, owner)))
			return -ENOMEM;
		t->clean = *root;
	} else if (!mtree_root_eq(root, &t->clean)) {
		tree_drop_groups(mt, t);
		t->clean = *root;
		tree_settle(mt, t);
	}
	t->work = t->clean;
	t->folded = t->unsure = 0; /* the caller vouches for this root */
	if (t->idle)
		lru_touch(&mt->idle, &t->ilink);
	*out = t;
	return 0;
}

/* ---- finding groups ---- */

/* Read (level, idx) of t from the store and check it against expect. */
static int group_load(struct mtree *mt, struct tree *t, int level,
                      uint64_t idx, const uint8_t expect[HB],
                      struct group **out)
{
	uint8_t node[MTREE_NODE_MAX];
	const uint8_t *p = node + 2;
	struct group *g;
	size_t len;
	unsigned bm;
	int rc;

	rc = store_mtree_get(mt->s, t->kind, t->owner, level, idx, node,
	                     sizeof node, &len);
	if (rc == -ENOENT)
		return -EIO; /* its parent says it is there */
	if (rc || (rc = node_check(t->kind, level, node, len, expect)))
		return rc;
	if (!(g = group_new(mt, t, level, idx)))
		return -ENOMEM;
	bm = node[0] | (unsigned)node[1] << 8;
	for (unsigned s = 0; s < MTREE_FANOUT; s++)
		if (bm >> s & 1) {
			memcpy(g->slot[s], p, HB);
			p += HB;
		}
	g->stored = 1;
	link_add_head(&mt->lru, &g->lru);
	*out = g;
	return 0;
}

/* (level, idx) of t from the cache, or loaded against expect (its hash as
 * the parent or the root gives it); *out NULL: the group is empty. */
static int group_get(struct mtree *mt, struct tree *t, int level,
                     uint64_t idx, const uint8_t expect[HB],
                     struct group **out)
{
	struct group *g = group_find(mt, t, level, idx);

	if (g) {
		if (!g->dirty)
			lru_touch(&mt->lru, &g->lru);
		*out = g;
		return 0;
	}
	if (hash_zero(expect)) {
		*out = NULL;
		return 0;
	}
	return group_load(mt, t, level, idx, expect, out);
}

/*
 * The level-0 group gidx of t (NULL: empty), every group above it checked
 * up to the root. Its positions must lie inside t's working height.
 */
static int leaf_group(struct mtree *mt, struct tree *t, uint64_t gidx,
                      struct group **out)
{
	uint8_t expect[HB];
	struct group *g = group_find(mt, t, 0, gidx);
	int rc;

	if (g) {
		if (!g->dirty)
			lru_touch(&mt->lru, &g->lru);
		*out = g;
		return 0;
	}
	/* the top group is in memory if it is dirty, so this hash is good
	 * whenever it is used */
	memcpy(expect, t->work.hash, HB);
	for (int level = (int)t->work.height - 1;; level--) {
		if ((rc = group_get(mt, t, level, gidx >> (4 * level), expect, &g)))
			return rc;
		if (!g || !level)
			break;
		memcpy(expect, g->slot[(gidx >> (4 * (level - 1))) & 15], HB);
	}
	*out = g;
	return 0;
}

/* ---- the forest ---- */

int mtree_new(struct store *s, size_t cache_bytes, struct mtree **out)
{
	struct mtree *mt;

	if (!s || !out)
		return -EINVAL;
	if (!(mt = calloc(1, sizeof *mt)))
		return -ENOMEM;
	mt->s = s;
	mt->cap = cache_bytes;
	mt->idle_max = cache_bytes / 4096 > IDLE_MIN ? cache_bytes / 4096
	                                             : IDLE_MIN;
	mt->gsize = mt->tsize = TAB_MIN;
	mt->gtab = calloc(mt->gsize, sizeof *mt->gtab);
	mt->ttab = calloc(mt->tsize, sizeof *mt->ttab);
	if (!mt->gtab || !mt->ttab) {
		free(mt->gtab);
		free(mt->ttab);
		free(mt);
		return -ENOMEM;
	}
	link_init(&mt->lru);
	link_init(&mt->idle);
	link_init(&mt->dirty_trees);
	*out = mt;
	return 0;
}

static void forest_clear(struct mtree *mt)
{
	for (size_t i = 0; i < mt->tsize; i++)
		while (mt->ttab[i])
			tree_free(mt, mt->ttab[i]);
}

void mtree_free(struct mtree *mt)
{
	if (!mt)
		return;
	forest_clear(mt);
	free(mt->gtab);
	free(mt->ttab);
	free(mt);
}

int mtree_root_eq(const struct mtree_root *a, const struct mtree_root *b)
{
	return a && b && a->height == b->height &&
	       !memcmp(a->hash, b->hash, HB);
}

size_t mtree_cached_bytes(const struct mtree *mt)
{
	return mt ? mt->bytes : 0;
}

int mtree_leaf(struct mtree *mt, int kind, uint64_t owner,
               const struct mtree_root *root, uint64_t pos,
               uint8_t leaf[MTREE_HASH_BYTES])
{
	struct group *g = NULL;
	struct tree *t;
	int rc;

	if (!mt || !leaf || !kind_ok(kind) || pos >= POS_LIMIT)
		return -EINVAL;
	memset(leaf, 0, HB);
	if ((rc = tree_use(mt, kind, owner, root, &t)))
		return rc;
	if (covers(t->work.height, pos) &&
	    !(rc = leaf_group(mt, t, pos >> 4, &g)) && g)
		memcpy(leaf, g->slot[pos & 15], HB);
	trim(mt);
	return rc;
}

int mtree_leaves(struct mtree *mt, int kind, uint64_t owner,
                 const struct mtree_root *root, uint64_t first, size_t n,
                 uint8_t (*leaves)[MTREE_HASH_BYTES])
{
	struct group *g;
	struct tree *t;
	uint64_t pos = first;
	size_t i = 0;
	int rc = 0;

	if (!mt || (!leaves && n) || !kind_ok(kind) || first >= POS_LIMIT ||
	    (n && (uint64_t)(n - 1) >= POS_LIMIT - first))
		return -EINVAL;
	if ((rc = tree_use(mt, kind, owner, root, &t)))
		return rc;
	while (i < n) {
		size_t s = (size_t)(pos & 15), cnt = MTREE_FANOUT - s;

		if (cnt > n - i)
			cnt = n - i;
		if (!covers(t->work.height, pos)) {
			memset(leaves[i], 0, (n - i) * HB);
			break;
		}
		if ((rc = leaf_group(mt, t, pos >> 4, &g)))
			break;
		if (g)
			memcpy(leaves[i], g->slot[s], cnt * HB);
		else
			memset(leaves[i], 0, cnt * HB);
		i += cnt;
		pos += cnt;
		/* a long run must not grow the cache past its bound */
		if (mt->bytes > mt->cap)
			cache_trim(mt, t);
	}
	trim(mt);
	return rc;
}

/*
 * Raise t's working height to nh (a non-empty leaf is going beyond it):
 * the old top becomes slot 0 of a chain of new top groups. New groups go
 * into fresh[] so that a failed put can take them back.
 */
static int tree_grow(struct mtree *mt, struct tree *t, uint32_t nh,
                     struct group **fresh, size_t *nfresh)
{
	uint32_t oh = t->work.height;
	struct group *top = oh ? group_find(mt, t, (int)oh - 1, 0) : NULL;

	if (oh && (!hash_zero(t->work.hash) || (top && top->dirty))) {
		for (uint32_t level = oh; level < nh; level++) {
			struct group *g = group_new(mt, t, (int)level, 0);
			if (!g)
				return -ENOMEM;
			fresh[(*nfresh)++] = g;
			/* a dirty child's slot is rewritten at fold anyway */
			if (level == oh)
				memcpy(g->slot[0], t->work.hash, HB);
			group_mark_dirty(g);
		}
	}
	/* an empty tree keeps its zero hash: the put builds the new path */
	t->work.height = nh;
	return 0;
}

int mtree_put(struct mtree *mt, int kind, uint64_t owner,
              const struct mtree_root *root, uint64_t pos,
              const uint8_t leaf[MTREE_HASH_BYTES])
{
	static const uint8_t zero[HB];
	struct group *path[MTREE_MAX_HEIGHT], *fresh[2 * MTREE_MAX_HEIGHT], *g;
	struct mtree_root saved;
	uint8_t expect[HB];
	uint64_t gidx = pos >> 4;
	size_t nfresh = 0;
	struct tree *t;
	int rc, level, h, empty;

	if (!mt || !kind_ok(kind) || pos >= POS_LIMIT)
		return -EINVAL;
	if (!leaf)
		leaf = zero;
	empty = hash_zero(leaf);
	if ((rc = tree_use(mt, kind, owner, root, &t)))
		return rc;
	/* the common case: its level-0 group is dirty, so are its ancestors */
	g = group_find(mt, t, 0, gidx);
	if (g && g->dirty) {
		memcpy(g->slot[pos & 15], leaf, HB);
		return 0;
	}
	saved = t->work;
	if (!covers(t->work.height, pos)) {
		if (empty)
			goto unchanged; /* nothing out there to empty */
		if ((rc = tree_grow(mt, t, height_for(pos), fresh, &nfresh)))
			goto undo;
	}
	h = (int)t->work.height;
	memcpy(expect, t->work.hash, HB);
	for (level = h - 1; level >= 0; level--) {
		uint64_t idx = gidx >> (4 * level);

		if ((rc = group_get(mt, t, level, idx, expect, &g)))
			goto undo;
		if (!g) {
			if (empty)
				goto unchanged; /* already empty */
			if (!(g = group_new(mt, t, level, idx))) {
				rc = -ENOMEM;
				goto undo;
			}
			fresh[nfresh++] = g;
		}
		path[level] = g;
		if (level)
			memcpy(expect, g->slot[(gidx >> (4 * (level - 1))) & 15], HB);
	}
	if (memcmp(path[0]->slot[pos & 15], leaf, HB)) {
		memcpy(path[0]->slot[pos & 15], leaf, HB);
		for (level = 0; level < h; level++)
			group_mark_dirty(path[level]);
	}
unchanged:
	tree_set_dirty(mt, t);
	trim(mt);
	return 0;
undo:
	while (nfresh)
		group_free(mt, fresh[--nfresh]);
	t->work = saved;
	tree_settle(mt, t);
	trim(mt);
	return rc;
}

int mtree_truncate(struct mtree *mt, int kind, uint64_t owner,
                   const struct mtree_root *root, uint64_t first)
{
	struct group *path[MTREE_MAX_HEIGHT], *g;
	uint8_t expect[HB];
	uint64_t last, gidx;
	struct link *l, *next;
	struct tree *t;
	int rc, h, level, low, changed = -1;

	if (!mt || !kind_ok(kind) || first >= POS_LIMIT)
		return -EINVAL;
	if ((rc = tree_use(mt, kind, owner, root, &t)))
		return rc;
	if (!first) {
		tree_drop_groups(mt, t);
		memset(&t->work, 0, sizeof t->work);
		t->trunc = 0;
		goto done;
	}
	h = (int)t->work.height;
	if (!covers((uint32_t)h, first))
		goto done; /* nothing at or after first */
	last = first - 1;
	gidx = last >> 4;
	/* the path of the last position kept: checked before anything moves */
	memcpy(expect, t->work.hash, HB);
	for (low = h, level = h - 1; level >= 0; level--) {
		if ((rc = group_get(mt, t, level, gidx >> (4 * level), expect, &g)))
			goto out;
		if (!g)
			break;
		path[level] = g;
		low = level;
		if (level)
			memcpy(expect, g->slot[(gidx >> (4 * (level - 1))) & 15], HB);
	}
	for (level = low; level < h; level++) {
		unsigned s = (unsigned)(last >> (4 * level)) & 15;
		for (unsigned k = s + 1; k < MTREE_FANOUT; k++)
			if (!hash_zero(path[level]->slot[k])) {
				memset(path[level]->slot[k], 0, HB);
				if (changed < 0)
					changed = level;
			}
	}
	if (changed >= 0)
		for (level = changed; level < h; level++)
			group_mark_dirty(path[level]);
	/* every group right of the path is gone, dirty or not; the ancestors
	 * of a dirty one are on the path and dirty already */
	for (l = t->groups.next; l != &t->groups; l = next) {
		next = l->next;
		g = CONTAINER(l, struct group, tl);
		if (g->idx > gidx >> (4 * g->level))
			group_free(mt, g);
	}
	if (first < t->trunc)
		t->trunc = first;
done:
	tree_set_dirty(mt, t);
out:
	trim(mt);
	return rc;
}

int mtree_dirty(struct mtree *mt, int kind, uint64_t owner)
{
	struct tree *t = mt ? tree_find(mt, kind, owner) : NULL;

	return t && t->is_dirty;
}

int mtree_dirty_each(struct mtree *mt, int kind,
                     int (*fn)(void *arg, uint64_t owner), void *arg)
{
	uint64_t *owners;
	size_t n = 0;
	int rc = 0;

	if (!mt || !fn)
		return -EINVAL;
	if (!mt->ndirty)
		return 0;
	/* owners first: fn may fold (and so unlink) the tree it is given */
	if (!(owners = malloc(mt->ndirty * sizeof *owners)))
		return -ENOMEM;
	for (struct link *l = mt->dirty_trees.next; l != &mt->dirty_trees;
	     l = l->next) {
		struct tree *t = CONTAINER(l, struct tree, dlink);
		if (t->kind == kind)
			owners[n++] = t->owner;
	}
	for (size_t i = 0; i < n && !rc; i++)
		if (mtree_dirty(mt, kind, owners[i]))
			rc = fn(arg, owners[i]);
	free(owners);
	return rc;
}

/* The store side of pending truncations, before the dirty groups go in. */
static int fold_truncation(struct mtree *mt, struct tree *t)
{
	uint32_t levels = t->clean.height > t->work.height ? t->clean.height
	                                                   : t->work.height;
	uint64_t gidx;
	int rc;

	if (t->trunc == NO_TRUNC)
		return 0;
	if (!t->trunc)
		return store_mtree_delete_owner(mt->s, t->kind, t->owner);
	gidx = (t->trunc - 1) >> 4;
	for (uint32_t level = 0; level < levels; level++)
		if ((rc = store_mtree_delete_from(mt->s, t->kind, t->owner,
		                                  (int)level,
		                                  (gidx >> (4 * level)) + 1)))
			return rc;
	return 0;
}

/* Write one dirty group (or delete its emptied row) and pass its hash to
 * its parent, or to the working root if it is the top. */
static int fold_group(struct mtree *mt, struct tree *t, struct group *g)
{
	uint8_t node[MTREE_NODE_MAX], h[HB];
	size_t len = group_encode(g, node);
	struct group *p;
	int rc = 0;

	if (len) {
		node_hash(t->kind, g->level, node, len, h);
		rc = store_mtree_put(mt->s, t->kind, t->owner, g->level, g->idx,
		                     node, len);
	} else {
		memset(h, 0, HB); /* all zero: not stored, hashes to zero */
		if (g->stored)
			rc = store_mtree_delete(mt->s, t->kind, t->owner, g->level,
			                        g->idx);
	}
	if (rc)
		return rc;
	g->stored = len != 0;
	if ((uint32_t)g->level + 1 == t->work.height) {
		memcpy(t->work.hash, h, HB);
		return 0;
	}
	p = group_find(mt, t, g->level + 1, g->idx >> 4);
	if (!p || !p->dirty)
		return -EIO; /* cannot happen: ancestors of dirty groups are dirty */
	memcpy(p->slot[g->idx & 15], h, HB);
	return 0;
}

int mtree_fold(struct mtree *mt, int kind, uint64_t owner,
               struct mtree_root *out)
{
	struct link lv[MTREE_MAX_HEIGHT];
	struct group *g;
	struct tree *t;
	int rc, level;

	if (!mt || !out || !kind_ok(kind))
		return -EINVAL;
	if (!(t = tree_find(mt, kind, owner)))
		return -ENOENT;
	if (!t->is_dirty) {
		if (t->unsure)
			return -ENOENT;
		*out = t->clean;
		return 0;
	}
	if ((rc = fold_truncation(mt, t)))
		return rc;
	for (level = 0; level < MTREE_MAX_HEIGHT; level++)
		link_init(&lv[level]);
	while (!link_empty(&t->dirty)) {
		struct link *l = t->dirty.next;
		g = CONTAINER(l, struct group, lru);
		link_del(l);
		link_add_tail(&lv[g->level], l);
	}
	/* leaves up: a group's children are final before it is hashed */
	for (level = 0; level < MTREE_MAX_HEIGHT; level++)
		for (struct link *l = lv[level].next; l != &lv[level];
		     l = l->next)
			if ((rc = fold_group(mt, t, CONTAINER(l, struct group, lru))))
				goto fail;
	/* written: empty groups go, the others are clean cache */
	for (level = 0; level < MTREE_MAX_HEIGHT; level++)
		while (!link_empty(&lv[level])) {
			g = CONTAINER(lv[level].next, struct group, lru);
			g->dirty = 0;
			if (!g->stored) {
				group_free(mt, g);
			} else {
				link_del(&g->lru);
				link_add_head(&mt->lru, &g->lru);
			}
		}
	tree_set_clean(mt, t);
	t->clean = t->work;
	t->folded = 1;
	t->unsure = 0;
	*out = t->clean;
	tree_settle(mt, t);
	trim(mt);
	return 0;
fail:
	/* still dirty: the caller rolls back (mtree_abort) or folds again */
	for (level = 0; level < MTREE_MAX_HEIGHT; level++)
		while (!link_empty(&lv[level])) {
			struct link *l = lv[level].next;
			link_del(l);
			link_add_tail(&t->dirty, l);
		}
	return rc;
}

void mtree_forget(struct mtree *mt, int kind, uint64_t owner)
{
	struct tree *t = mt ? tree_find(mt, kind, owner) : NULL;

	if (t)
		tree_free(mt, t);
}

void mtree_abort(struct mtree *mt)
{
	if (!mt)
		return;
	while (!link_empty(&mt->dirty_trees)) {
		struct tree *t = CONTAINER(mt->dirty_trees.next, struct tree,
		                           dlink);
		while (!link_empty(&t->dirty))
			group_free(mt, CONTAINER(t->dirty.next, struct group,
			                         lru));
		tree_set_clean(mt, t);
		t->work = t->clean;
		tree_settle(mt, t);
	}
	/*
	 * A root we folded may belong to the transaction that just rolled
	 * back, or to one that committed: we cannot tell. Its groups still
	 * hash to it, so they stay (a caller passing that root gets them; any
	 * other root drops them), but fold no longer vouches for it.
	 */
	for (size_t i = 0; i < mt->tsize; i++)
		for (struct tree *t = mt->ttab[i]; t; t = t->hnext)
			if (t->folded)
				t->unsure = 1;
	trim(mt);
}

int mtree_invalidate(struct mtree *mt)
{
	if (!mt)
		return -EINVAL;
	if (mt->ndirty)
		return -EBUSY;
	forest_clear(mt);
	gtab_resize(mt, TAB_MIN);
	ttab_resize(mt, TAB_MIN);
	return 0;
}

/* ---- whole-tree verification (check) ---- */

struct walk {
	struct store *s;
	int kind;
	uint64_t owner;
	int (*fn)(void *arg, uint64_t pos,
	          const uint8_t leaf[MTREE_HASH_BYTES]);
	void *arg;
	uint64_t visited;
	uint8_t node[MTREE_MAX_HEIGHT][MTREE_NODE_MAX]; /* one per level */
};

static int walk_group(struct walk *w, int level, uint64_t idx,
                      const uint8_t expect[HB])
{
	uint8_t *node = w->node[level];
	const uint8_t *p = node + 2;
	size_t len;
	unsigned bm;
	int rc;

	rc = store_mtree_get(w->s, w->kind, w->owner, level, idx, node,
	                     MTREE_NODE_MAX, &len);
	if (rc == -ENOENT)
		return -EIO;
	if (rc || (rc = node_check(w->kind, level, node, len, expect)))
		return rc;
	w->visited++;
	bm = node[0] | (unsigned)node[1] << 8;
	for (unsigned s = 0; s < MTREE_FANOUT; s++) {
		uint64_t c = idx * MTREE_FANOUT + s;

		if (!(bm >> s & 1))
			continue;
		if (level)
			rc = walk_group(w, level - 1, c, p);
		else if (w->fn)
			rc = w->fn(w->arg, c, p);
		if (rc)
			return rc;
		p += HB;
	}
	return 0;
}

static int walk_count(void *arg, int level, uint64_t idx, const void *node,
                      size_t len)
{
	(void)level;
	(void)idx;
	(void)node;
	(void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

int mtree_walk(struct mtree *mt, int kind, uint64_t owner,
               const struct mtree_root *root,
               int (*fn)(void *arg, uint64_t pos,
                         const uint8_t leaf[MTREE_HASH_BYTES]),
               void *arg, uint64_t *stray)
{
	struct walk *w;
	uint64_t rows = 0;
	int rc = 0;

	if (stray)
		*stray = 0;
	if (!mt || !kind_ok(kind) || !root_ok(root))
		return -EINVAL;
	if (!(w = malloc(sizeof *w)))
		return -ENOMEM;
	w->s = mt->s;
	w->kind = kind;
	w->owner = owner;
	w->fn = fn;
	w->arg = arg;
	w->visited = 0;
	if (root->height && !hash_zero(root->hash))
		rc = walk_group(w, (int)root->height - 1, 0, root->hash);
	/* every row of the tree that no path reached was left behind */
	if (!rc && stray &&
	    !(rc = store_mtree_each(mt->s, kind, owner, walk_count, &rows)))
		*stray = rows > w->visited ? rows - w->visited : 0;
	free(w);
	return rc;
}

/* ---- proofs that two roots differ in one leaf only ---- */

/* Decode a compact group into 16 slots (a well-formed, non-empty one). */
static int group_decode(const uint8_t *node, size_t len,
                        uint8_t slot[MTREE_FANOUT][HB])
{
	unsigned bm;
	size_t off = 2;

	if (len < 2)
		return -EIO;
	bm = node[0] | (unsigned)node[1] << 8;
	if (!bm || len != 2 + (size_t)__builtin_popcount(bm) * HB)
		return -EIO;
	memset(slot, 0, MTREE_FANOUT * HB);
	for (unsigned s = 0; s < MTREE_FANOUT; s++)
		if (bm & (1u << s)) {
			if (hash_zero(node + off))
				return -EIO;
			memcpy(slot[s], node + off, HB);
			off += HB;
		}
	return 0;
}

/* The hash of 16 slots (zero if all are). */
static void slots_hash(int kind, int level, uint8_t slot[MTREE_FANOUT][HB],
                       uint8_t out[HB])
{
	struct group g;
	uint8_t node[MTREE_NODE_MAX];
	size_t n;

	memcpy(g.slot, slot, sizeof g.slot);
	if (!(n = group_encode(&g, node))) {
		memset(out, 0, HB);
		return;
	}
	node_hash(kind, level, node, n, out);
}

int mtree_proof(struct mtree *mt, int kind, uint64_t owner,
                const struct mtree_root *root, uint64_t pos, uint8_t *out,
                size_t cap, size_t *len)
{
	struct tree *t;
	size_t n = 0;
	int rc;

	*len = 0;
	if (!mt || !kind_ok(kind) || pos >= POS_LIMIT || !root_ok(root) ||
	    !covers(root->height, pos))
		return -EINVAL;
	if ((rc = tree_use(mt, kind, owner, root, &t)))
		return rc;
	if (cap < 1)
		return -ENOSPC;
	{
		/* walk pos's path from the top, every group verified against
		 * its parent; written leaf level first */
		uint8_t expect[HB], (*enc)[MTREE_NODE_MAX];
		size_t klen[MTREE_MAX_HEIGHT];
		if (t->is_dirty)
			return -EINVAL; /* fold first */
		if (!(enc = malloc(MTREE_MAX_HEIGHT * sizeof *enc)))
			return -ENOMEM;
		memcpy(expect, t->work.hash, HB);
		for (int level = (int)root->height - 1; level >= 0; level--) {
			struct group *g = NULL;
			if ((rc = group_get(mt, t, level, pos >> (4 * (level + 1)), expect,
			                    &g)) ||
			    (!rc && (!g || !(klen[level] = group_encode(g, enc[level]))))) {
				free(enc);
				return rc ? rc : -EIO; /* a set leaf has a full path */
			}
			memcpy(expect, g->slot[(pos >> (4 * level)) & 15], HB);
		}
		out[n++] = (uint8_t)root->height;
		for (uint32_t level = 0; level < root->height; level++) {
			if (n + 2 + klen[level] > cap) {
				free(enc);
				return -ENOSPC;
			}
			out[n++] = (uint8_t)klen[level];
			out[n++] = (uint8_t)(klen[level] >> 8);
			memcpy(out + n, enc[level], klen[level]);
			n += klen[level];
		}
		free(enc);
	}
	trim(mt);
	*len = n;
	return 0;
}

int mtree_proof_check(int kind, uint64_t pos, const uint8_t *proof,
                      size_t len, const uint8_t old_leaf[MTREE_HASH_BYTES],
                      const struct mtree_root *before,
                      const struct mtree_root *after)
{
	uint8_t (*slots)[MTREE_FANOUT][HB] = NULL;
	uint8_t cur[HB];
	size_t off = 1;
	uint32_t h;
	int rc = -EBADMSG;

	if (!proof || len < 1 || !kind_ok(kind) || pos >= POS_LIMIT)
		return -EBADMSG;
	h = proof[0];
	if (h < 1 || h > MTREE_MAX_HEIGHT || h != after->height ||
	    h != before->height || !covers(h, pos))
		return -EBADMSG;
	if (!(slots = calloc(h, sizeof *slots)))
		return -ENOMEM;
	for (uint32_t level = 0; level < h; level++) {
		size_t k;
		if (off + 2 > len)
			goto out;
		k = proof[off] | (size_t)proof[off + 1] << 8;
		off += 2;
		if (off + k > len || group_decode(proof + off, k, slots[level]))
			goto out;
		off += k;
	}
	if (off != len)
		goto out;
	/* the groups as they are lead to the new root ... */
	slots_hash(kind, 0, slots[0], cur);
	for (uint32_t level = 1; level < h; level++) {
		if (memcmp(slots[level][(pos >> (4 * level)) & 15], cur, HB))
			goto out;
		slots_hash(kind, (int)level, slots[level], cur);
	}
	if (memcmp(cur, after->hash, HB))
		goto out;
	/* ... and with the one leaf put back, to the old one */
	memcpy(slots[0][pos & 15], old_leaf, HB);
	slots_hash(kind, 0, slots[0], cur);
	for (uint32_t level = 1; level < h; level++) {
		memcpy(slots[level][(pos >> (4 * level)) & 15], cur, HB);
		slots_hash(kind, (int)level, slots[level], cur);
	}
	rc = memcmp(cur, before->hash, HB) ? -EBADMSG : 0;
out:
	free(slots);
	return rc;
}
