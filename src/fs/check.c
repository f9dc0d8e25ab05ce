/*
 * check.c - verify a whole store: every object decrypts and authenticates,
 * and the directory tree is whole. Used by `custodyctl check`.
 *
 * Inodes are loaded into a sorted array first (16 bytes of bookkeeping per
 * inode besides the row), then every directory entry is authenticated and
 * counted, then a walk from the root gives each inode its path, then each
 * file's blocks are decrypted one by one (nothing is held in memory).
 *
 * Repair (check --repair) runs the same analysis in passes, each one
 * transaction: a pass that changes the tree (drops entries naming nothing,
 * removes files unlinked while open, links orphans into /lost+found) ends
 * there and the next pass recounts; a pass with a settled tree fixes link
 * counts and, only when asked (zero_unreadable), drops blocks that cannot
 * be read so they read as zeros. Nothing that fails authentication is
 * rewritten as if it were genuine: a tampered inode, name or xattr is only
 * reported. A last, read-only pass reports what is still wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

struct ck_inode {
	struct store_inode in;
	int bad;            /* failed authentication */
	uint32_t links;     /* entries naming it */
	uint32_t subdirs;   /* entries of it that are directories */
	uint32_t parents;   /* for directories: entries naming it */
	char *path;         /* first path found from the root */
};

struct ck_edge {
	uint64_t parent, child;
	char *name;
};

/* An entry to drop (repair): its directory or its target does not exist. */
struct ck_dangling {
	uint64_t parent, ino;
	uint8_t tag[STORE_TAG_BYTES];
	int64_t id;
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
		char *what;
	} *later;               /* entry problems, reported once paths are known */
	size_t nlater, latercap;
	uint64_t problems;
	int repairing;          /* a repair pass: fix, do not report */
	uint64_t fixed;         /* repairs made in this pass */
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

/* A problem of a directory's entry: reported after the walk, with a path. */
static int problem_later(struct ck *c, uint64_t ino, const char *what)
{
	if (grow(&c->later, c->nlater, &c->latercap, sizeof *c->later))
		return -ENOMEM;
	if (!(c->later[c->nlater].what = strdup(what)))
		return -ENOMEM;
	c->later[c->nlater++].ino = ino;
	return 0;
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
	memcpy(c->dg[c->ndg].tag, d->tag, sizeof d->tag);
	c->ndg++;
	return 0;
}

static int collect_inode(void *arg, const struct store_inode *in)
{
	struct ck *c = arg;

	if (grow(&c->v, c->n, &c->cap, sizeof *c->v))
		return -ENOMEM;
	memset(&c->v[c->n], 0, sizeof c->v[c->n]);
	c->v[c->n].in = *in;
	c->n++;
	return 0;
}

static int collect_dentry(void *arg, const struct store_dentry *d)
{
	struct ck *c = arg;
	struct ck_inode *p = find(c, d->parent), *ch = find(c, d->ino);
	char name[FS_NAME_MAX + 1], what[400];

	c->st->names++;
	if (!p || !S_ISDIR(p->in.mode)) {
		snprintf(what, sizeof what, "directory entry %lld: its directory"
		         " %llu does not exist", (long long)d->id,
		         (unsigned long long)d->parent);
		if (problem_later(c, d->ino, what))
			return -ENOMEM;
		return add_dangling(c, d);
	}
	if (p->bad || dir_name(c->fs, &p->in, d, name)) {
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
	uint64_t count;
	uint64_t bad, beyond, nokey;
	uint64_t *drop;         /* repair: blocks to drop */
	size_t ndrop, dropcap;
	int err;
};

static void drop_block(struct blk_ctx *b, uint64_t blk)
{
	if (!b->c->repairing || !b->c->ops->zero_unreadable || b->err)
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
	int rc;

	b->count++;
	if (!b->c->repairing)
		b->c->st->blocks++;
	if (blk * b->c->fs->block_size >= b->ci->in.size) {
		b->beyond++;
		drop_block(b, blk);
		return 0;
	}
	rc = blockio_verify(b->c->fs, &b->ci->in, blk, kv, data, len);
	if (rc == -ENOKEY)
		b->nokey++;
	else if (rc)
		b->bad++;
	else if (!b->c->repairing)
		b->c->st->bytes += len - CIPHER_OVERHEAD;
	if (rc)
		drop_block(b, blk);
	return 0;
}

/*
 * Repair (zero_unreadable): drop the blocks that cannot be read and accept
 * the count that is left, so the file reads with zeros where they were.
 */
static int repair_blocks(struct ck *c, struct ck_inode *ci, struct blk_ctx *b)
{
	uint64_t left = b->count - b->ndrop;
	char what[200];
	int rc = 0;

	if (!b->ndrop && ci->in.nblocks == b->count)
		return 0;
	for (size_t i = 0; i < b->ndrop && !rc; i++)
		rc = store_block_delete(c->fs->s, ci->in.ino, b->drop[i]);
	if (!rc) {
		ci->in.nblocks = left;
		rc = inode_save(c->fs, &ci->in);
	}
	if (rc)
		return rc;
	if (b->ndrop)
		snprintf(what, sizeof what, "dropped %llu unreadable or stray"
		         " block%s (they read as zeros now)",
		         (unsigned long long)b->ndrop, b->ndrop == 1 ? "" : "s");
	else
		snprintf(what, sizeof what, "block count set to the %llu blocks"
		         " stored (missing ones read as zeros now)",
		         (unsigned long long)left);
	fixed(c, ci->in.ino, ci->path, what);
	return 0;
}

static int check_file(struct ck *c, struct ck_inode *ci)
{
	struct blk_ctx b = { .c = c, .ci = ci };
	char what[160];
	int rc = store_block_each(c->fs->s, ci->in.ino, check_block, &b);

	if (rc < 0) {
		problem(c, ci->in.ino, "its blocks cannot be read from the store");
		free(b.drop);
		return 0;
	}
	if (b.bad) {
		snprintf(what, sizeof what, "%llu of %llu blocks fail"
		         " authentication (content damaged or tampered with)",
		         (unsigned long long)b.bad, (unsigned long long)b.count);
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
	if (b.count != ci->in.nblocks) {
		snprintf(what, sizeof what, "has %llu stored blocks, its inode says"
		         " %llu (blocks deleted or added)",
		         (unsigned long long)b.count,
		         (unsigned long long)ci->in.nblocks);
		problem(c, ci->in.ino, what);
	}
	if (S_ISLNK(ci->in.mode) && (ci->in.size == 0 || ci->in.size >= FS_PATH_MAX))
		problem(c, ci->in.ino, "symlink target has an impossible length");
	rc = b.err;
	if (!rc && c->repairing && c->ops->zero_unreadable && S_ISREG(ci->in.mode))
		rc = repair_blocks(c, ci, &b);
	free(b.drop);
	return rc;
}

/* /lost+found, created (0700, owned by root) when missing. */
static int lost_found(struct ck *c, struct store_inode *lf)
{
	struct fs *fs = c->fs;
	struct store_inode root;
	struct store_dentry d;
	struct fs_ctx owner = { 0, 0, 0 };
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
		rc = dir_add(c->fs, &lf, name, ci->in.ino);
		if (rc != -EEXIST)
			break;
	}
	if (rc)
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
 * Blocks whose inode is gone (its row deleted behind the filesystem's
 * back) and that are not queued for purging: reported, and queued by a
 * repair (the next read-write mount frees them in bounded batches).
 */
static int check_strays(struct ck *c)
{
	uint64_t ino = 0;
	int queued, rc;
	char what[160];

	while ((rc = store_block_next_ino(c->fs->s, ino, &ino, &queued)) == 0) {
		if (queued || find(c, ino))
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
		rc = store_dentry_delete(c->fs->s, g->parent, g->tag);
		if (rc)
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
		if (ci->in.nlink == 0) {
			rc = store_inode_delete(c->fs->s, ci->in.ino);
			if (!rc)
				fixed(c, ci->in.ino, NULL, "removed: unlinked while open"
				      " when a session ended (a mount does the same)");
		} else {
			rc = adopt(c, ci);
		}
	}
	return rc;
}

/* One pass over the store; in a repair pass *changed says the tree moved. */
static int check_pass(struct fs *fs, const struct fs_check_ops *ops,
                      struct fs_check_stats *stats, int repairing,
                      uint64_t *changed)
{
	struct ck c;
	char what[160];
	int rc;

	memset(&c, 0, sizeof c);
	memset(stats, 0, sizeof *stats);
	c.fs = fs;
	c.ops = ops;
	c.st = stats;
	c.repairing = repairing;
	rc = store_inode_each(fs->s, collect_inode, &c);
	if (rc < 0)
		goto out;
	stats->inodes = c.n;
	for (size_t i = 0; i < c.n; i++) {
		struct ck_inode *ci = &c.v[i];
		uint8_t mac[STORE_MAC_BYTES];
		int r = ci->in.key_version ? inode_mac(fs, &ci->in, mac) : -EIO;
		if (r || !cipher_memeq(mac, ci->in.mac, sizeof mac))
			ci->bad = 1;
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
	if ((rc = walk(&c)))
		goto out;
	for (size_t i = 0; i < c.nlater; i++)
		problem(&c, c.later[i].ino, c.later[i].what);
	if (!repairing && (rc = check_strays(&c)))
		goto out;
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
			problem(&c, ci->in.ino, "inode fails authentication (size, mode,"
			        " owner or times tampered with)");
			continue;
		}
		if (!ci->path) {
			problem(&c, ci->in.ino, ci->in.nlink == 0
			        ? "orphan: unlinked while open when a session ended"
			        : "orphan: not reachable from the root");
		}
		if (S_ISDIR(ci->in.mode)) {
			want = 2 + ci->subdirs;
			if (ci->in.ino != STORE_ROOT_INO && ci->parents > 1)
				problem(&c, ci->in.ino, "directory has more than one parent");
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
		if (S_ISREG(ci->in.mode) || S_ISLNK(ci->in.mode)) {
			if ((!repairing || ops->zero_unreadable) &&
			    (rc = check_file(&c, ci)))
				goto out;
		}
		if (!repairing && xattr_verify(fs, &ci->in))
			problem(&c, ci->in.ino, "extended attributes fail authentication");
	}
	if (ops->progress)
		ops->progress(ops->arg, c.n, c.n);
	rc = 0;
out:
	if (changed)
		*changed = c.fixed;
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].path);
	for (size_t i = 0; i < c.ne; i++)
		free(c.e[i].name);
	free(c.v);
	free(c.e);
	free(c.dg);
	for (size_t i = 0; i < c.nlater; i++)
		free(c.later[i].what);
	free(c.later);
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
		if (rc >= 0 && changed)
			rc = generation_bump(fs);
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
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (ops->repair) {
		if (fs->o.read_only)
			rc = -EROFS;
		else
			rc = repair(fs, ops, stats);
	}
	if (rc == 0)
		rc = check_pass(fs, ops, stats, 0, NULL);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}
