/*
 * check.c - verify a whole store: every object decrypts and authenticates,
 * and the directory tree is whole. Used by `custodyctl check`.
 *
 * Inodes are loaded into a sorted array first (16 bytes of bookkeeping per
 * inode besides the row), then every directory entry is authenticated and
 * counted, then a walk from the root gives each inode its path, then each
 * file's blocks are decrypted one by one (nothing is held in memory).
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

struct ck {
	struct fs *fs;
	const struct fs_check_ops *ops;
	struct fs_check_stats *st;
	struct ck_inode *v;
	size_t n, cap;
	struct ck_edge *e;
	size_t ne, ecap;
	uint64_t problems;
	int err;
};

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

static void problem(struct ck *c, uint64_t ino, const char *what)
{
	struct ck_inode *ci = find(c, ino);

	c->problems++;
	if (c->ops->problem)
		c->ops->problem(c->ops->arg, ino, ci && ci->path ? ci->path : NULL,
		                what);
}

static int collect_inode(void *arg, const struct store_inode *in)
{
	struct ck *c = arg;

	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 1024;
		struct ck_inode *p = realloc(c->v, nc * sizeof *p);
		if (!p)
			return -ENOMEM;
		c->v = p;
		c->cap = nc;
	}
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
		problem(c, d->ino, what);
		return 0;
	}
	if (p->bad || dir_name(c->fs, &p->in, d, name)) {
		snprintf(what, sizeof what, "directory entry %lld fails"
		         " authentication (name or target tampered with)",
		         (long long)d->id);
		problem(c, d->parent, what);
		return 0;
	}
	if (!ch) {
		snprintf(what, sizeof what, "entry '%.255s' names inode %llu,"
		         " which does not exist", name, (unsigned long long)d->ino);
		problem(c, d->parent, what);
		return 0;
	}
	ch->links++;
	if (S_ISDIR(ch->in.mode)) {
		p->subdirs++;
		ch->parents++;
	}
	if (c->ne == c->ecap) {
		size_t nc = c->ecap ? 2 * c->ecap : 1024;
		struct ck_edge *e = realloc(c->e, nc * sizeof *e);
		if (!e)
			return -ENOMEM;
		c->e = e;
		c->ecap = nc;
	}
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
};

static int check_block(void *arg, uint64_t blk, uint32_t kv, const void *data,
                       size_t len)
{
	struct blk_ctx *b = arg;
	int rc;

	b->count++;
	b->c->st->blocks++;
	if (blk * b->c->fs->block_size >= b->ci->in.size)
		b->beyond++;
	rc = blockio_verify(b->c->fs, &b->ci->in, blk, kv, data, len);
	if (rc == -ENOKEY)
		b->nokey++;
	else if (rc)
		b->bad++;
	else
		b->c->st->bytes += len - CIPHER_OVERHEAD;
	return 0;
}

static void check_file(struct ck *c, struct ck_inode *ci)
{
	struct blk_ctx b = { c, ci, 0, 0, 0, 0 };
	char what[160];
	int rc = store_block_each(c->fs->s, ci->in.ino, check_block, &b);

	if (rc < 0) {
		problem(c, ci->in.ino, "its blocks cannot be read from the store");
		return;
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
}

int fs_check(struct fs *fs, const struct fs_check_ops *ops,
             struct fs_check_stats *stats)
{
	struct ck c;
	char what[160];
	int rc;

	memset(&c, 0, sizeof c);
	memset(stats, 0, sizeof *stats);
	c.fs = fs;
	c.ops = ops;
	c.st = stats;
	pthread_mutex_lock(&fs->lock);
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
		if (ops->problem)
			ops->problem(ops->arg, STORE_ROOT_INO, "/",
			             "the root directory is missing");
	}
	rc = store_dentry_all(fs->s, collect_dentry, &c);
	if (rc < 0)
		goto out;
	if ((rc = walk(&c)))
		goto out;
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
		}
		if (S_ISREG(ci->in.mode) || S_ISLNK(ci->in.mode))
			check_file(&c, ci);
		if (xattr_verify(fs, &ci->in)) {
			problem(&c, ci->in.ino, "extended attributes fail authentication");
		}
		stats->xattrs += 0;
	}
	if (ops->progress)
		ops->progress(ops->arg, c.n, c.n);
	rc = 0;
out:
	pthread_mutex_unlock(&fs->lock);
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].path);
	for (size_t i = 0; i < c.ne; i++)
		free(c.e[i].name);
	free(c.v);
	free(c.e);
	if (rc < 0)
		return rc;
	return (int)(c.problems > INT32_MAX ? INT32_MAX : c.problems);
}
