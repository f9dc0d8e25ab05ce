/*
 * check.c - verify a whole store: every object is the signed one (its leaf
 * in the trees of the newest verified commit), decrypts and authenticates,
 * and the directory tree is whole. Used by `custodyctl check`.
 *
 * The inode and entry trees are walked first (every stored group checked
 * from the roots down), giving the leaf each row must have; the inodes are
 * then loaded into a sorted array (with bookkeeping), every directory
 * entry is checked and counted, a walk from the root gives each inode its
 * path, and each file's block tree is walked and its blocks decrypted one
 * by one (nothing else is held in memory).
 *
 * Repair (check --repair) runs the same analysis in passes, each one
 * transaction with its own signed commit: a pass that changes the tree
 * (drops entries naming nothing, removes files unlinked while open, links
 * orphans into /lost+found) ends there and the next pass recounts; a pass
 * with a settled tree fixes link counts and, only when asked
 * (zero_unreadable), drops blocks that cannot be read so they read as
 * zeros. Nothing that is not the signed row is rewritten as if it were
 * genuine: a forged or replayed inode, entry or xattr is only reported. A
 * last, read-only pass reports what is still wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"
#include "session.h"
#include "unlock.h"
#include "rights.h"

static const uint8_t zero_leaf[MTREE_HASH_BYTES];

struct ck_inode {
	struct store_inode in;
	int bad;            /* not the signed row */
	uint32_t links;     /* entries naming it */
	uint32_t subdirs;   /* entries of it that are directories */
	uint32_t parents;   /* for directories: entries naming it */
	uint64_t entries;   /* for directories: signed entries in it */
	char *path;         /* first path found from the root */
};

struct ck_edge {
	uint64_t parent, child;
	char *name;
};

/* An entry to drop (repair): its directory or its target does not exist. */
struct ck_dangling {
	uint64_t parent, ino;
	int64_t id;
};

/* The non-empty leaves of one tree, in position order (mtree_walk). */
struct ck_leaves {
	struct ck_leaf {
		uint64_t pos;
		uint8_t leaf[MTREE_HASH_BYTES];
		int seen;       /* a row matched it */
		int present;    /* a row is stored at its position */
	} *v;
	size_t n, cap;
	int err;
};

struct ck {
	struct fs *fs;
	const struct fs_check_ops *ops;
	struct fs_check_stats *st;
	struct ck_inode *v;
	size_t n, cap;
	struct ck_edge *e;
	size_t ne, ecap;
	struct ck_dangling *dg;
	size_t ndg, dgcap;
	struct ck_later {
		uint64_t ino;
		char *name;     /* the entry's name (may be NULL): the path is
		                 * ino's joined with it */
		char *what;
	} *later;               /* entry problems, reported once paths are known */
	size_t nlater, latercap;
	struct ck_leaves inodes, dentries; /* the signed leaves */
	uint64_t problems;
	int repairing;          /* a repair pass: fix, do not report */
	uint64_t fixed;         /* repairs made in this pass */
	uint64_t unsure;        /* rows at a signed leaf that are not the
	                         * signed ones: the tree's shape is unknown */
};

/*
 * Room for one more element in a growing array: arrp is the address of the
 * array pointer (of any element type; read and written with memcpy, so no
 * pointer is accessed as another type). 0 or -ENOMEM.
 */
static int grow(void *arrp, size_t n, size_t *cap, size_t elem)
{
	size_t nc;
	void *old, *p;

	if (n < *cap)
		return 0;
	nc = *cap ? 2 * *cap : 64;
	memcpy(&old, arrp, sizeof old);
	if (!(p = realloc(old, nc * elem)))
		return -ENOMEM;
	memcpy(arrp, &p, sizeof p);
	*cap = nc;
	return 0;
}

static int take_leaf(void *arg, uint64_t pos,
                     const uint8_t leaf[MTREE_HASH_BYTES])
{
	struct ck_leaves *l = arg;

	if (grow(&l->v, l->n, &l->cap, sizeof *l->v)) {
		l->err = -ENOMEM;
		return 1;
	}
	l->v[l->n].pos = pos;
	memcpy(l->v[l->n].leaf, leaf, MTREE_HASH_BYTES);
	l->v[l->n].seen = 0;
	l->v[l->n].present = 0;
	l->n++;
	return 0;
}

static struct ck_leaf *leaf_at(struct ck_leaves *l, uint64_t pos)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->v[mid].pos < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < l->n && l->v[lo].pos == pos) ? &l->v[lo] : NULL;
}

/* Walk a stored tree into out: -EIO if a stored group fails. */
static int walk_tree(struct fs *fs, int kind, uint64_t owner,
                     const struct mtree_root *root, struct ck_leaves *out,
                     uint64_t *stray)
{
	int rc;

	memset(out, 0, sizeof *out);
	rc = mtree_walk(fs->mt, kind, owner, root, take_leaf, out, stray);
	if (out->err)
		rc = out->err;
	return rc < 0 ? rc : 0;
}

static struct ck_inode *find(struct ck *c, uint64_t ino)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->v[mid].in.ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < c->n && c->v[lo].in.ino == ino) ? &c->v[lo] : NULL;
}

static const char *path_of(struct ck *c, uint64_t ino)
{
	struct ck_inode *ci = find(c, ino);
	return ci && ci->path ? ci->path : NULL;
}

static void problem(struct ck *c, uint64_t ino, const char *what)
{
	struct ck_inode *ci = find(c, ino);

	c->problems++;
	if (c->repairing)
		return; /* the final pass reports what repair left */
	if (c->ops->problem)
		c->ops->problem(c->ops->arg, ino, ci && ci->path ? ci->path : NULL,
		                what);
}

/* A problem of a directory's entry: reported after the walk, with a path
 * (ino's, joined with name when it is given). */
static int problem_later_named(struct ck *c, uint64_t ino, const char *name,
                               const char *what)
{
	struct ck_later *l;

	if (grow(&c->later, c->nlater, &c->latercap, sizeof *c->later))
		return -ENOMEM;
	l = &c->later[c->nlater];
	l->name = NULL;
	if (!(l->what = strdup(what)))
		return -ENOMEM;
	if (name && !(l->name = strdup(name))) {
		free(l->what);
		return -ENOMEM;
	}
	l->ino = ino;
	c->nlater++;
	return 0;
}

static int problem_later(struct ck *c, uint64_t ino, const char *what)
{
	return problem_later_named(c, ino, NULL, what);
}

/* Report a later problem: by the entry's own path when its directory has
 * one and the name is known. */
static void report_later(struct ck *c, const struct ck_later *l)
{
	const char *dir = path_of(c, l->ino);
	char *path;
	size_t need;

	if (!l->name || !dir) {
		problem(c, l->ino, l->what);
		return;
	}
	need = strlen(dir) + strlen(l->name) + 2;
	if (!(path = malloc(need))) {
		problem(c, l->ino, l->what);
		return;
	}
	snprintf(path, need, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
	         l->name);
	c->problems++;
	if (!c->repairing && c->ops->problem)
		c->ops->problem(c->ops->arg, l->ino, path, l->what);
	free(path);
}

/* A name for a finding line: control characters become '?'. */
static void printable(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
}

static void fixed(struct ck *c, uint64_t ino, const char *path,
                  const char *what)
{
	c->fixed++;
	if (c->ops->repaired)
		c->ops->repaired(c->ops->arg, ino, path, what);
}

static int add_dangling(struct ck *c, const struct store_dentry *d)
{
	if (!c->repairing)
		return 0;
	if (grow(&c->dg, c->ndg, &c->dgcap, sizeof *c->dg))
		return -ENOMEM;
	c->dg[c->ndg].parent = d->parent;
	c->dg[c->ndg].ino = d->ino;
	c->dg[c->ndg].id = d->id;
	c->ndg++;
	return 0;
}

static int collect_inode(void *arg, const struct store_inode *in)
{
	struct ck *c = arg;
	struct ck_leaf *lf = leaf_at(&c->inodes, in->ino);
	uint8_t have[MTREE_HASH_BYTES];
	char what[200];

	if (grow(&c->v, c->n, &c->cap, sizeof *c->v))
		return -ENOMEM;
	memset(&c->v[c->n], 0, sizeof c->v[c->n]);
	c->v[c->n].in = *in;
	inode_leaf(in, have);
	if (!lf || !cipher_memeq(lf->leaf, have, sizeof have)) {
		c->v[c->n].bad = 1;
		if (lf)
			c->unsure++;
		if (!lf) {
			/* not an inode of the signed state at all: left out of the
			 * tree analysis, reported once */
			snprintf(what, sizeof what, "inode %llu is not in the signed"
			         " state (inserted, or put back from an older copy)",
			         (unsigned long long)in->ino);
			c->problems++;
			if (!c->repairing && c->ops->problem)
				c->ops->problem(c->ops->arg, in->ino, NULL, what);
			return 0;
		}
	}
	if (lf)
		lf->seen = 1;
	c->n++;
	return 0;
}

static int collect_dentry(void *arg, const struct store_dentry *d)
{
	struct ck *c = arg;
	struct ck_inode *p = find(c, d->parent), *ch = find(c, d->ino);
	struct ck_leaf *lf = leaf_at(&c->dentries, (uint64_t)d->id);
	char name[FS_NAME_MAX + 1], what[400];
	uint8_t have[MTREE_HASH_BYTES];

	c->st->names++;
	dentry_leaf(d, have);
	if (lf)
		lf->present = 1;
	if (!lf || !cipher_memeq(lf->leaf, have, sizeof have)) {
		/* a replayed entry's name still decrypts: name it by path */
		int named = p && !p->bad && S_ISDIR(p->in.mode) &&
		            dir_name(c->fs, &p->in, d, name) == 0;
		if (named)
			printable(name);
		if (lf)
			c->unsure++;
		snprintf(what, sizeof what, "directory entry %lld%s%.255s%s is not"
		         " the signed one (%s)", (long long)d->id,
		         named ? " ('" : "", named ? name : "", named ? "')" : "",
		         lf ? "forged, edited or replaced"
		            : "inserted, or put back after a rename or removal");
		return problem_later_named(c, p ? d->parent : STORE_ROOT_INO,
		                           named ? name : NULL, what);
	}
	lf->seen = 1;
	if (!p || (!p->bad && !S_ISDIR(p->in.mode))) {
		snprintf(what, sizeof what, "directory entry %lld: its directory"
		         " %llu does not exist", (long long)d->id,
		         (unsigned long long)d->parent);
		if (problem_later(c, d->ino, what))
			return -ENOMEM;
		return add_dangling(c, d);
	}
	if (p->bad) {
		/* a signed entry of a directory whose row is not the signed
		 * one: neither dangling nor counted (the directory is reported) */
		snprintf(what, sizeof what, "directory entry %lld: its directory"
		         " %llu is not the signed one", (long long)d->id,
		         (unsigned long long)d->parent);
		return problem_later(c, d->parent, what);
	}
	if (dir_name(c->fs, &p->in, d, name)) {
		snprintf(what, sizeof what, "directory entry %lld fails"
		         " authentication (name or target tampered with)",
		         (long long)d->id);
		return problem_later(c, d->parent, what);
	}
	if (!ch) {
		snprintf(what, sizeof what, "entry '%.255s' names inode %llu,"
		         " which does not exist", name, (unsigned long long)d->ino);
		if (problem_later(c, d->parent, what))
			return -ENOMEM;
		return add_dangling(c, d);
	}
	ch->links++;
	p->entries++;
	if (S_ISDIR(ch->in.mode)) {
		p->subdirs++;
		ch->parents++;
	}
	if (grow(&c->e, c->ne, &c->ecap, sizeof *c->e))
		return -ENOMEM;
	c->e[c->ne].parent = d->parent;
	c->e[c->ne].child = d->ino;
	c->e[c->ne].name = strdup(name);
	if (!c->e[c->ne].name)
		return -ENOMEM;
	c->ne++;
	return 0;
}

static int edge_cmp(const void *a, const void *b)
{
	const struct ck_edge *x = a, *y = b;
	return x->parent < y->parent ? -1 : x->parent > y->parent;
}

/* Breadth-first from the root: give every reachable inode a path. */
static int walk(struct ck *c)
{
	uint64_t *queue = malloc((c->n + 1) * sizeof *queue);
	size_t qh = 0, qt = 0;
	struct ck_inode *root = find(c, STORE_ROOT_INO);

	if (!queue)
		return -ENOMEM;
	if (c->ne) /* c->e is NULL when no entry was kept (qsort: UB) */
		qsort(c->e, c->ne, sizeof *c->e, edge_cmp);
	if (root) {
		root->path = strdup("/");
		queue[qt++] = STORE_ROOT_INO;
	}
	while (qh < qt) {
		uint64_t dir = queue[qh++];
		struct ck_inode *d = find(c, dir);
		size_t lo = 0, hi = c->ne;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (c->e[mid].parent < dir)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i < c->ne && c->e[i].parent == dir; i++) {
			struct ck_inode *ch = find(c, c->e[i].child);
			size_t need;
			if (!ch || ch->path)
				continue;
			need = strlen(d->path) + strlen(c->e[i].name) + 2;
			ch->path = malloc(need);
			if (!ch->path)
				break;
			snprintf(ch->path, need, "%s%s%s", d->path,
			         strcmp(d->path, "/") ? "/" : "", c->e[i].name);
			if (S_ISDIR(ch->in.mode) && qt < c->n)
				queue[qt++] = ch->in.ino;
		}
	}
	free(queue);
	return 0;
}

struct blk_ctx {
	struct ck *c;
	struct ck_inode *ci;
	struct ck_leaves leaves;   /* the file's signed blocks */
	uint64_t count;
	uint64_t bad, beyond, nokey, planted;
	int zero;               /* repair: unreadable blocks go (zero_unreadable,
	                         * regular files only) */
	uint64_t *drop;         /* repair: blocks to drop */
	size_t ndrop, dropcap;
	int err;
};

/* Repair: remember a row to delete. A row with no leaf (planted) is no
 * part of the file and always goes; an unreadable one of the signed file
 * only when asked (zero_unreadable). */
static void drop_block(struct blk_ctx *b, uint64_t blk, int planted)
{
	if (!b->c->repairing || b->err || (!planted && !b->zero))
		return;
	if (grow(&b->drop, b->ndrop, &b->dropcap, sizeof *b->drop)) {
		b->err = -ENOMEM;
		return;
	}
	b->drop[b->ndrop++] = blk;
}

static int check_block(void *arg, uint64_t blk, uint32_t kv, const void *data,
                       size_t len)
{
	struct blk_ctx *b = arg;
	struct ck_leaf *lf = leaf_at(&b->leaves, blk);
	int rc, cipher;

	b->count++;
	if (!kv) {
		/* a malformed row (key version or data): not readable */
		if (lf)
			lf->seen = 1;
		b->bad++;
		drop_block(b, blk, !lf);
		return 0;
	}
	if (!lf) {
		/* a row where the signed file has a hole: not part of it */
		b->planted++;
		drop_block(b, blk, 1);
		return 0;
	}
	lf->seen = 1;
	if (!b->c->repairing)
		b->c->st->blocks++;
	if (b->c->repairing && !b->zero)
		return 0; /* only planted rows and the count are repaired */
	if (blk * b->c->fs->block_size >= b->ci->in.size) {
		b->beyond++;
		drop_block(b, blk, 0);
		return 0;
	}
	rc = blockio_verify(b->c->fs, &b->ci->in, blk, kv, data, len, lf->leaf);
	cipher = keyring_cipher(b->c->fs->kr, kv);
	if (rc == -ENOKEY)
		b->nokey++;
	else if (rc)
		b->bad++;
	else if (!b->c->repairing)
		b->c->st->bytes += len - (cipher == KEY_CIPHER_ETM
		                          ? CIPHER_BLOCK_OVERHEAD : CIPHER_OVERHEAD);
	if (rc)
		drop_block(b, blk, 0);
	return 0;
}

/*
 * Repair: rows that are no part of the signed file (planted in its holes)
 * are deleted and the block count is set to the blocks of its tree; with
 * zero_unreadable, the blocks that cannot be read and the signed blocks
 * whose rows are gone are dropped too, so the file reads zeros there.
 */
static int repair_blocks(struct ck *c, struct ck_inode *ci, struct blk_ctx *b)
{
	struct mtree_root root;
	uint64_t missing = 0, left, planted = 0;
	char what[200];
	int rc = 0;

	root.height = ci->in.theight;
	memcpy(root.hash, ci->in.troot, sizeof root.hash);
	left = b->leaves.n;
	for (size_t i = 0; i < b->ndrop; i++)
		planted += !leaf_at(&b->leaves, b->drop[i]);
	for (size_t i = 0; i < b->leaves.n && !rc && b->zero; i++)
		if (!b->leaves.v[i].seen) {
			missing++;
			left--;
			rc = mtree_put(c->fs->mt, MTREE_BLOCKS, ci->in.ino, &root,
			               b->leaves.v[i].pos, zero_leaf);
		}
	for (size_t i = 0; i < b->ndrop && !rc; i++) {
		if (leaf_at(&b->leaves, b->drop[i])) {
			left--;
			rc = mtree_put(c->fs->mt, MTREE_BLOCKS, ci->in.ino, &root,
			               b->drop[i], zero_leaf);
		}
		if (!rc)
			rc = store_block_delete(c->fs->s, ci->in.ino, b->drop[i]);
	}
	if (rc)
		return rc;
	if (planted) {
		snprintf(what, sizeof what, "deleted %llu stored block%s that are"
		         " no part of the signed file (planted, or left over)",
		         (unsigned long long)planted, planted == 1 ? "" : "s");
		fixed(c, ci->in.ino, ci->path, what);
	}
	if (b->ndrop == planted && !missing && ci->in.nblocks == left)
		return 0;
	ci->in.nblocks = left;
	if ((rc = inode_save(c->fs, &ci->in)))
		return rc;
	if (b->ndrop > planted || missing)
		snprintf(what, sizeof what, "dropped %llu unreadable or missing"
		         " block%s (they read as zeros now)",
		         (unsigned long long)(b->ndrop - planted + missing),
		         b->ndrop - planted + missing == 1 ? "" : "s");
	else
		snprintf(what, sizeof what, "block count set to the %llu blocks of"
		         " its tree", (unsigned long long)left);
	fixed(c, ci->in.ino, ci->path, what);
	return 0;
}

static int check_file(struct ck *c, struct ck_inode *ci)
{
	struct blk_ctx b = { .c = c, .ci = ci };
	struct mtree_root root;
	uint64_t stray = 0, missing = 0;
	char what[200];
	int rc;

	b.zero = c->repairing && c->ops->zero_unreadable && S_ISREG(ci->in.mode);
	root.height = ci->in.theight;
	memcpy(root.hash, ci->in.troot, sizeof root.hash);
	if ((rc = walk_tree(c->fs, MTREE_BLOCKS, ci->in.ino, &root, &b.leaves,
	                    &stray))) {
		free(b.leaves.v);
		if (rc == -ENOMEM)
			return rc;
		problem(c, ci->in.ino, "its block tree fails verification (its"
		        " blocks' hashes were edited or replaced)");
		return 0;
	}
	rc = store_block_each(c->fs->s, ci->in.ino, check_block, &b);
	if (rc < 0) {
		problem(c, ci->in.ino, "its blocks cannot be read from the store");
		free(b.drop);
		free(b.leaves.v);
		return 0;
	}
	for (size_t i = 0; i < b.leaves.n; i++)
		missing += !b.leaves.v[i].seen;
	if (b.bad) {
		snprintf(what, sizeof what, "%llu of %llu blocks are not the signed"
		         " ones (forged, damaged, or put back from an older copy)",
		         (unsigned long long)b.bad, (unsigned long long)b.count);
		problem(c, ci->in.ino, what);
	}
	if (missing) {
		snprintf(what, sizeof what, "%llu blocks of the signed file are"
		         " gone from the store (deleted behind custodyfs' back)",
		         (unsigned long long)missing);
		problem(c, ci->in.ino, what);
	}
	if (b.planted) {
		snprintf(what, sizeof what, "%llu stored blocks are not part of the"
		         " signed file (planted, or left over)",
		         (unsigned long long)b.planted);
		problem(c, ci->in.ino, what);
	}
	if (b.nokey) {
		snprintf(what, sizeof what, "%llu blocks are under a key version"
		         " this user does not hold (retired or destroyed)",
		         (unsigned long long)b.nokey);
		problem(c, ci->in.ino, what);
	}
	if (b.beyond) {
		snprintf(what, sizeof what, "%llu blocks lie beyond the end of the"
		         " file", (unsigned long long)b.beyond);
		problem(c, ci->in.ino, what);
	}
	if (stray) {
		snprintf(what, sizeof what, "%llu stored tree groups are not part"
		         " of its block tree", (unsigned long long)stray);
		problem(c, ci->in.ino, what);
	}
	if (b.leaves.n != ci->in.nblocks) {
		snprintf(what, sizeof what, "its inode counts %llu blocks, its"
		         " tree holds %llu", (unsigned long long)ci->in.nblocks,
		         (unsigned long long)b.leaves.n);
		problem(c, ci->in.ino, what);
	}
	if (S_ISLNK(ci->in.mode) && (ci->in.size == 0 || ci->in.size >= FS_PATH_MAX))
		problem(c, ci->in.ino, "symlink target has an impossible length");
	rc = b.err;
	if (!rc && c->repairing)
		rc = repair_blocks(c, ci, &b);
	free(b.drop);
	free(b.leaves.v);
	return rc;
}

/* /lost+found, created (0700, owned by root) when missing. */
static int lost_found(struct ck *c, struct store_inode *lf)
{
	struct fs *fs = c->fs;
	struct store_inode root;
	struct store_dentry d;
	struct fs_ctx owner = { .ss = NULL };
	int rc;

	if ((rc = inode_load(fs, STORE_ROOT_INO, &root)))
		return rc;
	rc = dir_find(fs, &root, "lost+found", &d);
	if (rc == 0) {
		if ((rc = inode_load(fs, d.ino, lf)))
			return rc;
		return S_ISDIR(lf->mode) ? 0 : -ENOTDIR;
	}
	if (rc != -ENOENT)
		return rc;
	if ((rc = inode_alloc(fs, &owner, S_IFDIR | 0700, 0, lf)) ||
	    (rc = dir_add(fs, &root, "lost+found", lf->ino)))
		return rc;
	root.nlink++;
	inode_touch(&root, 0, 1, 1);
	if ((rc = inode_save(fs, &root)))
		return rc;
	fixed(c, lf->ino, "/lost+found", "created, for orphans");
	return 0;
}

/* Link an unreachable inode into /lost+found as "#<ino>". */
static int adopt(struct ck *c, struct ck_inode *ci)
{
	struct store_inode lf;
	struct store_dentry d;
	char name[48], path[80], what[160];
	int rc;

	if ((rc = lost_found(c, &lf)))
		return rc;
	for (int i = 0; i < 100; i++) {
		if (i)
			snprintf(name, sizeof name, "#%llu.%d",
			         (unsigned long long)ci->in.ino, i);
		else
			snprintf(name, sizeof name, "#%llu",
			         (unsigned long long)ci->in.ino);
		rc = dir_find(c->fs, &lf, name, &d);
		if (rc == -ENOENT)
			break;
		if (rc)
			return rc;
	}
	if (rc != -ENOENT)
		return -EEXIST;
	if ((rc = dir_add(c->fs, &lf, name, ci->in.ino)))
		return rc;
	if (S_ISDIR(ci->in.mode))
		lf.nlink++;
	inode_touch(&lf, 0, 1, 1);
	if ((rc = inode_save(c->fs, &lf)))
		return rc;
	snprintf(path, sizeof path, "/lost+found/%s", name);
	snprintf(what, sizeof what, "orphan (not reachable from the root):"
	         " linked as %s", path);
	fixed(c, ci->in.ino, path, what);
	return 0;
}

/*
 * Rows no reader finds by their key (a key column that is no integer: a
 * file writer's junk; store_key_junk), and xattr rows of inode numbers
 * that do not exist (an inode's xattrs go with it, so these were
 * planted): reported, and deleted by a repair.
 */
static int check_junk(struct ck *c)
{
	static const struct { char table; const char *what; } junk[] = {
		{ 'b', "block" }, { 'x', "extended attribute" } };
	uint64_t ino = 0, n;
	char what[200];
	int rc;

	for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
		if ((rc = store_key_junk(c->fs->s, junk[i].table, c->repairing, &n)))
			return rc;
		if (!n)
			continue;
		snprintf(what, sizeof what, "%llu %s row%s whose key is not an"
		         " integer or out of range (no file's: planted)",
		         (unsigned long long)n, junk[i].what, n == 1 ? "" : "s");
		if (c->repairing) {
			snprintf(what + strlen(what), sizeof what - strlen(what),
			         ": deleted");
			fixed(c, 0, NULL, what);
		} else
			problem(c, 0, what);
	}
	while ((rc = store_xattr_next_ino(c->fs->s, ino, &ino)) == 0) {
		uint64_t removed = 0;
		if (find(c, ino))
			continue; /* an inode of the signed state: xattr_verify's */
		if (c->repairing) {
			/* the number is no signed inode's: nothing under it is
			 * signed either */
			if ((rc = store_xattr_delete_all(c->fs->s, ino, &removed)))
				return rc;
			snprintf(what, sizeof what, "deleted %llu extended attribute"
			         " row%s of inode %llu, which does not exist",
			         (unsigned long long)removed, removed == 1 ? "" : "s",
			         (unsigned long long)ino);
			fixed(c, ino, NULL, what);
		} else {
			snprintf(what, sizeof what, "extended attributes are left of"
			         " inode %llu, which does not exist (planted)",
			         (unsigned long long)ino);
			problem(c, ino, what);
		}
	}
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Blocks whose inode is gone (its row deleted behind the filesystem's
 * back) and that are not queued for purging: reported, and queued by a
 * repair (the next read-write mount frees them in bounded batches). A
 * queued inode that is alive is reported too (a planted purge entry).
 */
static int check_strays(struct ck *c)
{
	uint64_t ino = 0;
	int queued, rc;
	char what[160];

	if ((rc = check_junk(c)))
		return rc;

	while ((rc = store_block_next_ino(c->fs->s, ino, &ino, &queued)) == 0) {
		struct ck_inode *ci = find(c, ino);
		if (queued && ci && !ci->bad) {
			snprintf(what, sizeof what, "inode %llu is queued for purging but"
			         " alive (a planted purge entry)", (unsigned long long)ino);
			if (c->repairing) {
				if ((rc = store_purge_drop(c->fs->s, ino)))
					return rc;
				fixed(c, ino, ci->path, "dropped from the purge queue: alive");
			} else
				problem(c, ino, what);
			continue;
		}
		if (queued)
			continue;
		if (ci && !ci->bad && !S_ISREG(ci->in.mode) &&
		    !S_ISLNK(ci->in.mode)) {
			/* a directory or a device has no content: no block of it
			 * is signed (check_file walks the others) */
			if (c->repairing) {
				uint64_t gone = 0;
				if ((rc = store_block_truncate(c->fs->s, ino, 0, &gone)))
					return rc;
				fixed(c, ino, ci->path, "deleted blocks stored under an inode"
				      " that holds no content (planted)");
			} else
				problem(c, ino, "blocks are stored under an inode that holds"
				        " no content (planted)");
			continue;
		}
		if (ci)
			continue;
		if (c->repairing) {
			if ((rc = store_purge_queue(c->fs->s, ino)))
				return rc;
			fixed(c, ino, NULL, "blocks of a deleted inode: queued for"
			      " purging (the next read-write mount frees them)");
		} else {
			snprintf(what, sizeof what, "blocks are left of inode %llu,"
			         " which does not exist", (unsigned long long)ino);
			problem(c, ino, what);
		}
	}
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Tree repairs: entries naming nothing are dropped, files unlinked while
 * open are removed (as the next mount would), orphans with no entry left
 * go to /lost+found (their subtrees come along).
 */
static int repair_tree(struct ck *c)
{
	char what[200];
	int rc = check_strays(c);

	for (size_t i = 0; i < c->ndg && !rc; i++) {
		struct ck_dangling *g = &c->dg[i];
		struct ck_inode *p = find(c, g->parent);
		struct store_dentry d;

		memset(&d, 0, sizeof d);
		d.id = g->id;
		d.parent = g->parent;
		d.ino = g->ino;
		if (p && !p->bad && S_ISDIR(p->in.mode)) {
			if ((rc = dir_remove(c->fs, &p->in, &d)) ||
			    (rc = inode_save(c->fs, &p->in)))
				break;
		} else if ((rc = store_dentry_delete_id(c->fs->s, g->id)) ||
		           (rc = mtree_put(c->fs->mt, MTREE_DENTRIES, 0,
		                           &c->fs->dentries, (uint64_t)g->id,
		                           zero_leaf)))
			break;
		snprintf(what, sizeof what, "dropped directory entry %lld (its"
		         " directory %llu or its inode %llu does not exist)",
		         (long long)g->id, (unsigned long long)g->parent,
		         (unsigned long long)g->ino);
		fixed(c, g->parent, path_of(c, g->parent), what);
	}
	for (size_t i = 0; i < c->n && !rc; i++) {
		struct ck_inode *ci = &c->v[i];
		if (ci->bad || ci->path || ci->links)
			continue; /* forged, reachable, or inside an orphan */
		if (c->unsure && ci->in.nlink)
			continue; /* its entry may be one that is not the signed
			           * row: left where it is (check_pass) */
		if (ci->in.nlink == 0) {
			rc = inode_maybe_free(c->fs, ci->in.ino, 0);
			if (!rc)
				fixed(c, ci->in.ino, NULL, "removed: unlinked while open"
				      " when a session ended (a mount does the same)");
		} else {
			rc = adopt(c, ci);
		}
	}
	return rc;
}

/*
 * Repair: a leaf of the signed state whose row is gone (an inode or an
 * entry deleted behind the filesystem's back) is made empty in this
 * pass's commit, as repair_blocks does for a file's blocks: what is left
 * then follows (entries naming the inode are dropped as dangling, its
 * blocks are queued for purging, counts are fixed), and check stops
 * reporting a deletion it cannot undo. gone describes the finding.
 */
static int forget_leaf(struct ck *c, int kind, uint64_t pos, const char *gone)
{
	struct fs *fs = c->fs;
	char what[300];
	int rc;

	if (kind == MTREE_INODES) {
		rc = mtree_put(fs->mt, MTREE_INODES, 0, &fs->inodes, pos, zero_leaf);
		if (!rc)
			mtree_forget(fs->mt, MTREE_BLOCKS, pos);
	} else {
		rc = mtree_put(fs->mt, MTREE_DENTRIES, 0, &fs->dentries, pos,
		               zero_leaf);
	}
	if (rc)
		return rc;
	snprintf(what, sizeof what, "%.200s: dropped from the signed state",
	         gone);
	fixed(c, kind == MTREE_INODES ? pos : STORE_ROOT_INO,
	      kind == MTREE_INODES ? NULL : "/", what);
	return 0;
}

static void ck_free(struct ck *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].path);
	for (size_t i = 0; i < c->ne; i++)
		free(c->e[i].name);
	free(c->v);
	free(c->e);
	free(c->dg);
	for (size_t i = 0; i < c->nlater; i++) {
		free(c->later[i].what);
		free(c->later[i].name);
	}
	free(c->later);
	free(c->inodes.v);
	free(c->dentries.v);
}

/* One pass over the store; in a repair pass *changed says the tree moved. */
static int check_pass(struct fs *fs, const struct fs_check_ops *ops,
                      struct fs_check_stats *stats, int repairing,
                      uint64_t *changed)
{
	struct ck c;
	char what[200];
	uint64_t stray = 0;
	int rc;

	memset(&c, 0, sizeof c);
	memset(stats, 0, sizeof *stats);
	c.fs = fs;
	c.ops = ops;
	c.st = stats;
	c.repairing = repairing;
	/* the signed leaves: every stored group from the roots down */
	if ((rc = walk_tree(fs, MTREE_INODES, 0, &fs->inodes, &c.inodes, &stray))) {
		if (rc == -ENOMEM)
			goto out;
		c.problems++;
		if (ops->problem && !repairing)
			ops->problem(ops->arg, 0, NULL, "the inode tree fails"
			             " verification against the signed commit");
		rc = 0;
		goto out; /* nothing can be told genuine without it */
	}
	if (stray && !repairing) {
		snprintf(what, sizeof what, "%llu stored groups of the inode tree"
		         " are not part of it", (unsigned long long)stray);
		problem(&c, 0, what);
	}
	stray = 0;
	if ((rc = walk_tree(fs, MTREE_DENTRIES, 0, &fs->dentries, &c.dentries,
	                    &stray))) {
		if (rc == -ENOMEM)
			goto out;
		c.problems++;
		if (ops->problem && !repairing)
			ops->problem(ops->arg, 0, NULL, "the directory entry tree fails"
			             " verification against the signed commit");
		rc = 0;
		goto out;
	}
	rc = store_inode_each(fs->s, collect_inode, &c);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < c.inodes.n; i++)
		if (!c.inodes.v[i].seen) {
			snprintf(what, sizeof what, "inode %llu of the signed state is"
			         " gone from the store (deleted behind custodyfs' back)",
			         (unsigned long long)c.inodes.v[i].pos);
			problem(&c, c.inodes.v[i].pos, what);
			if (repairing && (rc = forget_leaf(&c, MTREE_INODES,
			                                   c.inodes.v[i].pos, what)))
				goto out;
		}
	stats->inodes = c.n;
	for (size_t i = 0; i < c.n; i++) {
		struct ck_inode *ci = &c.v[i];
		if (S_ISDIR(ci->in.mode))
			stats->dirs++;
		else if (S_ISLNK(ci->in.mode))
			stats->symlinks++;
		else
			stats->files++;
	}
	if (!find(&c, STORE_ROOT_INO)) {
		c.problems++;
		if (ops->problem && !repairing)
			ops->problem(ops->arg, STORE_ROOT_INO, "/",
			             "the root directory is missing");
		if (repairing) {
			rc = 0; /* nothing to hang a tree on: report only */
			goto out;
		}
	}
	rc = store_dentry_all(fs->s, collect_dentry, &c);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < c.dentries.n; i++)
		if (!c.dentries.v[i].seen && !c.dentries.v[i].present) {
			snprintf(what, sizeof what, "directory entry %llu of the signed"
			         " state is gone from the store (a name was deleted"
			         " behind custodyfs' back)",
			         (unsigned long long)c.dentries.v[i].pos);
			if ((rc = problem_later(&c, STORE_ROOT_INO, what)))
				goto out;
			/* (a row there that is not the signed one is evidence:
			 * reported above, never dropped) */
			if (repairing &&
			    (rc = forget_leaf(&c, MTREE_DENTRIES, c.dentries.v[i].pos,
			                      what)))
				goto out;
		}
	if ((rc = walk(&c)))
		goto out;
	for (size_t i = 0; i < c.nlater; i++)
		report_later(&c, &c.later[i]);
	if (!repairing && (rc = check_strays(&c)))
		goto out;
	/* A row at a leaf of the signed state that is not the signed one (an
	 * edited or replaced inode or entry) hides part of the tree: which
	 * inode its entries name, whether it is a directory. Counting around
	 * it would take a planted row for evidence, so a repair then changes
	 * nothing that depends on the tree's shape (no orphan is adopted, no
	 * link or entry count rewritten, no entry of it dropped): the row is
	 * reported, and put back it settles everything again. */
	if (repairing) {
		if ((rc = repair_tree(&c)) || c.fixed)
			goto out; /* the next pass recounts the changed tree */
	}
	for (size_t i = 0; i < c.n; i++) {
		struct ck_inode *ci = &c.v[i];
		uint32_t want;

		if (ops->progress)
			ops->progress(ops->arg, i, c.n);
		if (ci->bad) {
			problem(&c, ci->in.ino, "inode is not the signed one (size, mode,"
			        " owner or times edited, or put back from an older copy)");
			continue;
		}
		if (!ci->path && ci->in.nlink == 0 && ops->live_writer) {
			/* the mount holding the store serves it until it is
			 * closed, then frees it */
			if (!repairing && ops->note)
				ops->note(ops->arg, ci->in.ino, NULL, "unlinked, but still"
				          " open on the read-write mount holding the store"
				          " (freed when it is closed)");
		} else if (!ci->path) {
			problem(&c, ci->in.ino, ci->in.nlink == 0
			        ? "orphan: unlinked while open when a session ended"
			        : "orphan: not reachable from the root");
		}
		if (repairing && c.unsure)
			goto counted; /* counts left alone (see above) */
		if (S_ISDIR(ci->in.mode)) {
			want = 2 + ci->subdirs;
			if (ci->in.ino != STORE_ROOT_INO && ci->parents > 1)
				problem(&c, ci->in.ino, "directory has more than one parent");
			if (ci->entries != ci->in.nentries) {
				snprintf(what, sizeof what, "directory counts %llu entries,"
				         " %llu are stored", (unsigned long long)ci->in.nentries,
				         (unsigned long long)ci->entries);
				problem(&c, ci->in.ino, what);
				if (repairing) {
					ci->in.nentries = ci->entries;
					if ((rc = inode_save(fs, &ci->in)))
						goto out;
					fixed(&c, ci->in.ino, ci->path, what);
				}
			}
		} else
			want = ci->links;
		if (ci->in.nlink != want && ci->path) {
			snprintf(what, sizeof what, "link count is %u, should be %u",
			         ci->in.nlink, want);
			problem(&c, ci->in.ino, what);
			if (repairing) {
				ci->in.nlink = want;
				if ((rc = inode_save(fs, &ci->in)))
					goto out;
				fixed(&c, ci->in.ino, ci->path, what);
			}
		}
	counted:
		if (S_ISREG(ci->in.mode) || S_ISLNK(ci->in.mode)) {
			if ((rc = check_file(&c, ci)))
				goto out;
		}
		{
			size_t strays = 0;
			int x;
			if (repairing) {
				/* rows beside the signed set are no part of it: they go
				 * (a forged set is left as it is) */
				x = xattr_drop_strays(fs, &ci->in, &strays);
				if (x < 0 && x != -EIO) {
					rc = x;
					goto out;
				}
				if (!x && strays) {
					snprintf(what, sizeof what, "deleted %zu stored extended"
					         " attribute row%s that are no part of its signed"
					         " set (planted)", strays, strays == 1 ? "" : "s");
					fixed(&c, ci->in.ino, ci->path, what);
				}
			} else if ((x = xattr_check(fs, &ci->in, &strays)) == -ENOMEM) {
				rc = x;
				goto out;
			} else if (x) {
				problem(&c, ci->in.ino, "extended attributes are not the"
				        " signed ones, or fail authentication");
			} else if (strays) {
				snprintf(what, sizeof what, "%zu stored extended attribute"
				         " row%s %s no part of its signed set (planted, or put"
				         " back after a removal)", strays, strays == 1 ? "" : "s",
				         strays == 1 ? "is" : "are");
				problem(&c, ci->in.ino, what);
			}
		}
	}
	if (ops->progress)
		ops->progress(ops->arg, c.n, c.n);
	rc = 0;
out:
	if (changed)
		*changed = c.fixed;
	ck_free(&c);
	if (rc < 0)
		return rc;
	return (int)(c.problems > INT32_MAX ? INT32_MAX : c.problems);
}

/* Repair passes, each one transaction, until the tree settles. */
static int repair(struct fs *fs, const struct fs_check_ops *ops,
                  struct fs_check_stats *stats)
{
	for (int pass = 0; pass < 8; pass++) {
		uint64_t changed = 0;
		int rc = fs_op_begin(fs);

		if (rc)
			return rc;
		rc = check_pass(fs, ops, stats, 1, &changed);
		rc = fs_op_end(fs, rc < 0 ? rc : 0);
		if (!rc)
			rc = fs_commit_locked(fs);
		if (rc)
			return rc;
		if (!changed)
			break;
	}
	return 0;
}

int fs_check(struct fs *fs, const struct fs_check_ops *ops,
             struct fs_check_stats *stats)
{
	/* the signed state and the rows must be the same state: the rows of
	 * an open group transaction are checked once committed (its roots
	 * are folded only then) */
	int rc = fs_lock_committed(fs, NULL);

	if (rc == 0 && ops->repair) {
		if (fs->o.read_only || fs->u->readonly)
			rc = -EROFS;
		else
			rc = repair(fs, ops, stats);
	}
	if (rc == 0)
		rc = check_pass(fs, ops, stats, 0, NULL);
	fs_unlock(fs);
	return rc;
}
