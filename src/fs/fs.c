/*
 * fs.c - the filesystem API: every fs_* entry point, the group-commit
 * transaction, kernel reference counts and the periodic tick.
 *
 * Each entry point takes fs->lock, runs its work in the open group
 * transaction, records its audit row in the same transaction, and
 * releases. fs_tick() commits the group every commit_interval (or when a
 * lot was written), and folds the WAL into the store file once the mount
 * has been idle, so a copy of the .db file alone is then a complete store.
 *
 * Operations check everything that can fail (names, permissions, loading
 * and authenticating rows) before they change the store, so a failed
 * operation normally leaves no trace without a savepoint. A savepoint per
 * operation would copy every 64 KiB page it touches into a statement
 * journal first (untar 16 s -> 10 s, streaming writes +25% without). If an
 * operation does fail after changing rows (the disk is full, an I/O error,
 * a row found damaged half way), fs_op_end rolls the whole group
 * transaction back: the store stays consistent and loses at most the
 * operations since the last commit, as a crash would; fsync'ed work is
 * never lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>


#include "fs_internal.h"

#define FS_TX_MAX_BYTES (64u << 20) /* commit early past this much data */

int64_t fs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* File times use the coarse clock, as the kernel's own file times do, so
 * times the kernel sets (writeback cache, utimensat UTIME_NOW) and ours
 * never appear out of order. */
int64_t fs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Path of ino by walking parent entries up to the root (cached). */
static void path_walk(struct fs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct fs_path_slot *sl = fs->paths ? &fs->paths[ino % FS_PATH_SLOTS] : NULL;
	char tmp[FS_PATH_MAX], name[FS_NAME_MAX + 1];
	size_t pos = sizeof tmp - 1;
	uint64_t cur = ino;
	int depth = 0;

	if (sl && sl->path && sl->ino == ino && sl->gen == fs->path_gen) {
		snprintf(buf, cap, "%s", sl->path);
		return;
	}
	tmp[pos] = 0;
	while (cur != STORE_ROOT_INO && depth++ < 256) {
		struct store_dentry d;
		struct store_inode dir;
		size_t n;

		if (store_dentry_of_ino(fs->s, cur, &d) ||
		    inode_load(fs, d.parent, &dir) || dir_name(fs, &dir, &d, name)) {
			snprintf(buf, cap, "<ino %llu>", (unsigned long long)ino);
			return;
		}
		n = strlen(name);
		if (n + 1 > pos)
			break;
		pos -= n;
		memcpy(tmp + pos, name, n);
		tmp[--pos] = '/';
		cur = d.parent;
	}
	if (tmp[pos] == 0)
		tmp[--pos] = '/';
	snprintf(buf, cap, "%s", tmp + pos);
	cipher_wipe(name, sizeof name);
	if (sl) {
		free(sl->path);
		sl->path = strdup(tmp + pos);
		sl->ino = ino;
		sl->gen = fs->path_gen;
	}
}

/* A file's path changed: drop its entry; a directory's: drop them all
 * (every path below it changed). */
static void path_forget(struct fs *fs, uint64_t ino, int dir)
{
	struct fs_path_slot *sl;

	if (dir || !fs->paths) {
		fs->path_gen++;
		return;
	}
	sl = &fs->paths[ino % FS_PATH_SLOTS];
	if (sl->ino == ino) {
		free(sl->path);
		sl->path = NULL;
	}
}

void fs_path_of(struct fs *fs, uint64_t dir, const char *name, char *buf,
                size_t cap)
{
	path_walk(fs, dir, buf, cap);
	if (name) {
		size_t n = strlen(buf);
		snprintf(buf + n, cap - n, "%s%s", (n == 1 && buf[0] == '/') ? "" : "/",
		         name);
	}
}

/* Write the pending read row (opening the group transaction if needed). */
static void read_flush(struct fs *fs)
{
	struct fs_pending_read p = fs->pread;
	char buf[FS_PATH_MAX];

	if (!p.valid || !fs->audit)
		return;
	fs->pread.valid = 0;
	if (!fs->in_tx) {
		if (fs_op_begin(fs))
			return;
		fs_op_end(fs, 0);
	}
	path_walk(fs, p.ino, buf, sizeof buf);
	audit_record_at(fs->audit, &(struct audit_who){ p.c.uid, p.c.gid, p.c.pid },
	                p.when_ns, "read", p.ino, buf, p.off, p.len, 0);
}

void fs_audit(struct fs *fs, const struct fs_ctx *c, const char *op,
              uint64_t ino, const char *path, uint64_t off, uint64_t len,
              int64_t result)
{
	char buf[FS_PATH_MAX];

#ifdef CUSTODY_NO_AUDIT
	/* measurement build only (make NO_AUDIT=1): what auditing costs */
	(void)buf; (void)op; (void)ino; (void)path; (void)off; (void)len;
	(void)result; (void)c; (void)fs;
	return;
#endif
	if (!fs->audit || !c)
		return;
	read_flush(fs); /* rows stay in the order things happened */
	if (!path) {
		path_walk(fs, ino, buf, sizeof buf);
		path = buf;
	}
	audit_record(fs->audit, &(struct audit_who){ c->uid, c->gid, c->pid }, op,
	             ino, path, off, len, (int)result);
}

/* Path of dir/name for the audit trail, only computed with a trail. */
#define AUDIT_PATH(fs, buf, dir, name) \
	((fs)->audit ? (fs_path_of((fs), (dir), (name), (buf), sizeof(buf)), (buf)) \
	             : NULL)

/* ---- transactions ---- */

/* End the operation's read transaction, if it has one (see fs_lock). */
static void read_tx_end(struct fs *fs)
{
	if (fs->rtx)
		store_read_end(fs->s);
	fs->rtx = 0;
}

int fs_op_begin(struct fs *fs)
{
	int rc;

	fs->last_activity_ms = fs_now_ms();
	/* only this process writes: what the operation read stays true */
	read_tx_end(fs);
	if (fs->in_tx && !store_in_tx(fs->s))
		fs_abort_locked(fs); /* SQLite gave up the transaction itself */
	if (!fs->in_tx) {
		if ((rc = store_begin(fs->s)))
			return rc;
		audit_batch_begin(fs->audit);
		fs->in_tx = 1;
		fs->tx_started_ms = fs->last_activity_ms;
		fs->tx_bytes = 0;
	}
	fs->op_changes = store_changes(fs->s);
	return 0;
}

int fs_op_end(struct fs *fs, int rc)
{
	if (rc >= 0 && store_in_tx(fs->s))
		return rc;
	if (rc >= 0 || !store_in_tx(fs->s))
		rc = store_tx_lost_errno(fs->s); /* the transaction is gone */
	else if (store_in_tx(fs->s) && store_changes(fs->s) == fs->op_changes)
		return rc; /* failed before changing anything */
	fs_abort_locked(fs);
	return rc;
}

void fs_abort_locked(struct fs *fs)
{
	fprintf(stderr, "custodyfs: an operation failed after changing the"
	        " store: the uncommitted group transaction is rolled back\n");
	store_rollback(fs->s);
	audit_batch_end(fs->audit, 0);
	fs->pread.valid = 0;  /* its row would go into a rolled-back tx */
	fs->in_tx = 0;
	fs->path_gen++;       /* names cached from rolled-back work */
	fs->purging = 1;
}

int fs_commit_locked(struct fs *fs)
{
	int rc = 0;

	read_flush(fs);
	if (fs->in_tx) {
		/* the audit head mark and the generation go into the same
		 * transaction */
		rc = audit_batch_end(fs->audit, 1);
		if (!rc && !fs->o.read_only && !fs->o.shared)
			generation_bump(fs); /* checked at mount; never blocks data */
		if (!rc)
			rc = store_commit(fs->s);
		if (rc) {
			store_rollback(fs->s);
		}
		fs->in_tx = 0;
		fs->checkpointed = 0;
	}
	return rc;
}

int fs_commit(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = fs_commit_locked(fs);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int fs_tick(struct fs *fs)
{
	int64_t now = fs_now_ms();
	int idle;

	pthread_mutex_lock(&fs->lock);
	if (fs->pread.valid && now - fs->pread.when_ms >= fs->o.audit_flush_ms)
		read_flush(fs);
	if (fs->purging && !fs->o.read_only && !fs->o.shared) {
		/* freed files' blocks, 16 MiB a tick, in the group transaction */
		uint64_t n;
		int64_t keep = fs->last_activity_ms;
		if (fs_op_begin(fs) == 0) {
			int r = store_purge_step(fs->s, 4096, &n);
			fs_op_end(fs, r < 0 ? r : 0);
			if (r == 0)
				fs->purging = 0;
		}
		fs->last_activity_ms = keep; /* housekeeping is not activity */
	}
	if (fs->in_tx && (now - fs->tx_started_ms >= fs->o.commit_interval_ms ||
	                  fs->tx_bytes >= FS_TX_MAX_BYTES))
		fs_commit_locked(fs);
	idle = !fs->in_tx && now - fs->last_activity_ms >= fs->o.idle_checkpoint_ms;
	if (idle && !fs->checkpointed && !fs->o.read_only) {
		if (store_checkpoint(fs->s) == 0)
			fs->checkpointed = 1;
	}
	pthread_mutex_unlock(&fs->lock);
	return idle;
}

int fs_exclusive(struct fs *fs, int (*fn)(void *arg), void *arg)
{
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = fs_commit_locked(fs);
	if (!rc)
		rc = fn(arg);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

void fs_kernel_times(struct fs *fs, int on)
{
	pthread_mutex_lock(&fs->lock);
	fs->kernel_times = on;
	pthread_mutex_unlock(&fs->lock);
}

int64_t fs_idle_ms(struct fs *fs)
{
	int64_t t;

	pthread_mutex_lock(&fs->lock);
	t = fs_now_ms() - fs->last_activity_ms;
	pthread_mutex_unlock(&fs->lock);
	return t;
}

/* ---- kernel references ---- */

struct fs_ref *fs_ref_get(struct fs *fs, uint64_t ino, int create)
{
	struct fs_ref **b = &fs->refs[ino % FS_REF_BUCKETS], *r;

	for (r = *b; r; r = r->next)
		if (r->ino == ino)
			return r;
	if (!create)
		return NULL;
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->ino = ino;
	r->next = *b;
	*b = r;
	return r;
}

void fs_ref_put_if_unused(struct fs *fs, struct fs_ref *r)
{
	struct fs_ref **p;

	if (!r || r->nlookup || r->nopen)
		return;
	for (p = &fs->refs[r->ino % FS_REF_BUCKETS]; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			free(r);
			return;
		}
}

static void ref_lookup(struct fs *fs, uint64_t ino)
{
	struct fs_ref *r = fs_ref_get(fs, ino, 1);
	if (r)
		r->nlookup++;
}

/* ---- setup ---- */

struct orphan_ctx {
	struct fs *fs;
	uint64_t *inos;
	size_t n, cap;
};

static int collect_orphan(void *arg, const struct store_inode *in)
{
	struct orphan_ctx *o = arg;
	uint8_t mac[STORE_MAC_BYTES];

	/* only authentic rows: a tampered or malformed row (nlink edited to
	 * 0, a zeroed key version) is evidence for check, never swept */
	if (in->nlink == 0 && in->ino != STORE_ROOT_INO && in->key_version &&
	    inode_mac(o->fs, in, mac) == 0 &&
	    cipher_memeq(mac, in->mac, sizeof mac)) {
		if (o->n == o->cap) {
			size_t nc = o->cap ? 2 * o->cap : 64;
			uint64_t *p = realloc(o->inos, nc * sizeof *p);
			if (!p)
				return -ENOMEM;
			o->inos = p;
			o->cap = nc;
		}
		o->inos[o->n++] = in->ino;
	}
	return 0;
}

int fs_format(struct store *s, struct keyring *kr, uint32_t uid,
              uint32_t gid, uint32_t block_size)
{
	struct fs fs;
	struct fs_ctx c = { uid, gid, 0 };
	struct store_inode root;
	int rc;

	memset(&fs, 0, sizeof fs);
	fs.s = s;
	fs.kr = kr;
	fs.block_size = block_size;
	fs.scratch = secmem_alloc(FS_KEY_SLOTS * CIPHER_KEY_BYTES);
	if (!fs.scratch)
		return -ENOMEM;
	if ((rc = store_meta_set_int(s, "block_size", block_size)) ||
	    (rc = store_meta_set(s, "cipher", cipher_aead_name(),
	                         strlen(cipher_aead_name()))))
		goto out;
	memset(&root, 0, sizeof root);
	root.ino = STORE_ROOT_INO;
	rc = inode_alloc(&fs, &c, S_IFDIR | 0755, 0, &root);
	if (!rc && root.ino != STORE_ROOT_INO)
		rc = -EIO;
out:
	secmem_free(fs.scratch);
	return rc;
}

int fs_new(struct store *s, struct keyring *kr, struct audit *audit,
           const struct fs_opts *o, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof *fs);
	struct orphan_ctx orph = { fs, NULL, 0, 0 };
	int64_t bs;
	int rc;

	*out = NULL;
	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->lock, NULL);
	fs->s = s;
	fs->kr = kr;
	fs->audit = audit;
	fs->o = *o;
	if (fs->o.audit_flush_ms <= 0)
		fs->o.audit_flush_ms = 1000;
	if ((rc = store_meta_get_int(s, "block_size", &bs)))
		goto fail;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1))) {
		rc = -EIO; /* a hostile store must not choose our buffer sizes */
		goto fail;
	}
	fs->block_size = (uint32_t)bs;
	fs->scratch = secmem_alloc(FS_KEY_SLOTS * CIPHER_KEY_BYTES);
	fs->blockbuf = secmem_alloc(2 * ((size_t)bs + CIPHER_OVERHEAD));
	fs->paths = calloc(FS_PATH_SLOTS, sizeof *fs->paths);
	if (!fs->scratch || !fs->blockbuf || !fs->paths) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < FS_STAGES; i++)
		if (!(fs->stage[i] = blockio_stage_new(fs->block_size, FS_STAGE_MAX))) {
			rc = -ENOMEM;
			goto fail;
		}
	fs->last_activity_ms = fs_now_ms();
	if (!o->read_only && !o->shared) {
		/* files unlinked while open when the last session died */
		rc = store_inode_each(s, collect_orphan, &orph);
		if (rc < 0)
			goto fail;
		if (orph.n) {
			if ((rc = store_begin(s)))
				goto fail;
			for (size_t i = 0; i < orph.n && !rc; i++)
				rc = store_inode_delete(s, orph.inos[i]);
			if (rc) {
				store_rollback(s);
				goto fail;
			}
			if ((rc = store_commit(s)))
				goto fail;
		}
	}
	free(orph.inos);
	/* the WAL is folded in beside the writer, not inside its commits */
	if (!o->read_only && !o->shared && o->store_path &&
	    (rc = store_checkpointer_start(s, o->store_path)))
		goto fail;
	fs->purging = 1; /* the tick finds out whether anything is queued */
	*out = fs;
	return 0;
fail:
	free(orph.inos);
	free(fs->paths);
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_free(fs->stage[i]);
	secmem_free(fs->scratch);
	secmem_free(fs->blockbuf);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
	return rc;
}

int fs_free(struct fs *fs)
{
	int rc;

	if (!fs)
		return 0;
	pthread_mutex_lock(&fs->lock);
	rc = fs_commit_locked(fs);
	store_checkpointer_stop(fs->s);
	for (int i = 0; i < FS_REF_BUCKETS; i++) {
		struct fs_ref *r = fs->refs[i], *n;
		for (; r; r = n) {
			n = r->next;
			free(r);
		}
	}
	for (int i = 0; fs->paths && i < FS_PATH_SLOTS; i++)
		free(fs->paths[i].path);
	free(fs->paths);
	pthread_mutex_unlock(&fs->lock);
	pthread_mutex_destroy(&fs->lock);
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_free(fs->stage[i]);
	secmem_free(fs->scratch);
	secmem_free(fs->blockbuf);
	free(fs);
	return rc;
}

/* ---- helpers ---- */

static int check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static int load_dir(struct fs *fs, uint64_t ino, struct store_inode *dir)
{
	int rc = inode_load(fs, ino, dir);

	if (rc)
		return rc;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (dir->nlink == 0)
		return -ENOENT; /* removed while a process sat in it */
	return 0;
}

static int writable(struct fs *fs)
{
	if (fs->o.read_only || !keyring_active(fs->kr))
		return -EROFS;
	return 0;
}

/*
 * The entry points below run under fs->lock. Outside the group
 * transaction an operation's reads share one read transaction: SQLite
 * takes and drops the WAL read lock (fcntl calls) once per operation
 * instead of once per statement; a streaming read made 104 of those calls
 * a MiB. fs_op_begin ends it before it opens the group transaction.
 */
static void fs_lock(struct fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	if (!fs->in_tx && store_read_begin(fs->s) == 0)
		fs->rtx = 1;
}

static void fs_unlock(struct fs *fs)
{
	read_tx_end(fs);
	pthread_mutex_unlock(&fs->lock);
}

#define LOCK(fs) fs_lock(fs)
#define UNLOCK(fs) fs_unlock(fs)

/* ---- lookups and attributes ---- */

int fs_lookup(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	(void)c;
	LOCK(fs);
	fs->last_activity_ms = fs_now_ms();
	if (!(rc = check_name(name)) && !(rc = load_dir(fs, parent, &dir))) {
		if (!strcmp(name, "."))
			rc = inode_load(fs, parent, &in);
		else if (!(rc = dir_find(fs, &dir, name, &d))) {
			rc = inode_load(fs, d.ino, &in);
			if (rc == -ENOENT)
				rc = -EIO; /* an authentic entry whose inode is gone */
		}
	}
	if (!rc) {
		inode_to_attr(fs, &in, out);
		ref_lookup(fs, in.ino);
	}
	UNLOCK(fs);
	return rc;
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct fs_ref *r;

	LOCK(fs);
	r = fs_ref_get(fs, ino, 0);
	if (r) {
		r->nlookup = r->nlookup > nlookup ? r->nlookup - nlookup : 0;
		if (!r->nlookup && !r->nopen) {
			fs_ref_put_if_unused(fs, r);
			if (!fs->o.read_only && fs_op_begin(fs) == 0)
				fs_op_end(fs, inode_maybe_free(fs, ino));
		}
	}
	UNLOCK(fs);
}

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *out)
{
	struct store_inode in;
	int rc;

	LOCK(fs);
	rc = inode_load(fs, ino, &in);
	if (!rc)
		inode_to_attr(fs, &in, out);
	UNLOCK(fs);
	return rc;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int fs_setattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               const struct fs_attr *a, int valid, struct fs_attr *out)
{
	struct store_inode in;
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	rc = inode_load(fs, ino, &in);
	if (!rc && (valid & FS_SET_SIZE)) {
		if (S_ISDIR(in.mode))
			rc = -EISDIR;
		else if (!S_ISREG(in.mode))
			rc = -EINVAL;
		else {
			rc = blockio_truncate(fs, &in, a->size);
			inode_touch(&in, 0, 1, 1);
		}
	}
	if (!rc) {
		if (valid & FS_SET_MODE)
			in.mode = (in.mode & S_IFMT) | (a->mode & 07777);
		if (valid & FS_SET_UID)
			in.uid = a->uid;
		if (valid & FS_SET_GID)
			in.gid = a->gid;
		if (valid & FS_SET_ATIME_NOW)
			inode_touch(&in, 1, 0, 0);
		else if (valid & FS_SET_ATIME)
			in.atime = ts_ns(&a->atime);
		if (valid & FS_SET_MTIME_NOW)
			inode_touch(&in, 0, 1, 0);
		else if (valid & FS_SET_MTIME)
			in.mtime = ts_ns(&a->mtime);
		if (valid & FS_SET_CTIME)
			in.ctime = ts_ns(&a->ctime);
		else
			inode_touch(&in, 0, 0, 1);
		rc = inode_save(fs, &in);
	}
	if (!rc)
		inode_to_attr(fs, &in, out);
	/* the row goes in after the op ends: a failure is recorded too */
	rc = fs_op_end(fs, rc);
	fs_audit(fs, c, (valid & FS_SET_SIZE) ? "truncate" : "setattr", ino,
	         NULL, (valid & FS_SET_SIZE) ? a->size : 0, (uint64_t)valid, rc);
out:
	UNLOCK(fs);
	return rc;
}

/* ---- creation ---- */

/* Create name in parent as a new inode of mode; for symlinks, target. */
static int create_locked(struct fs *fs, const struct fs_ctx *c,
                         uint64_t parent, const char *name, uint32_t mode,
                         uint64_t rdev, const char *target,
                         struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	if ((rc = check_name(name)) || (rc = load_dir(fs, parent, &dir)))
		return rc;
	rc = dir_find(fs, &dir, name, &d);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	if (S_ISDIR(mode) && dir.nlink >= 0xfffffff0u)
		return -EMLINK;
	/* setgid directories pass their group (and the bit) on */
	{
		struct fs_ctx cc = *c;
		if (dir.mode & S_ISGID) {
			cc.gid = dir.gid;
			if (S_ISDIR(mode))
				mode |= S_ISGID;
		}
		if ((rc = inode_alloc(fs, &cc, mode, rdev, &in)))
			return rc;
	}
	if (target) {
		ssize_t w = blockio_write(fs, &in, target, strlen(target), 0);
		if (w < 0)
			return (int)w;
		if ((rc = inode_save(fs, &in)))
			return rc;
	}
	if ((rc = dir_add(fs, &dir, name, in.ino)))
		return rc;
	if (S_ISDIR(mode))
		dir.nlink++;
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &dir)))
		return rc;
	inode_to_attr(fs, &in, out);
	ref_lookup(fs, in.ino);
	return 0;
}

static int create_op(struct fs *fs, const struct fs_ctx *c, const char *op,
                     uint64_t parent, const char *name, uint32_t mode,
                     uint64_t rdev, const char *target, struct fs_attr *out)
{
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	rc = create_locked(fs, c, parent, name, mode, rdev, target, out);
	rc = fs_op_end(fs, rc);
	{
		char p[FS_PATH_MAX];
		fs_audit(fs, c, op, rc ? 0 : out->ino,
		         AUDIT_PATH(fs, p, parent, name), 0, 0, rc);
	}
	if (rc) {
		/* undo the reference taken for a create that rolled back */
		struct fs_ref *r = fs_ref_get(fs, out->ino, 0);
		if (r && out->ino && r->nlookup) {
			r->nlookup--;
			fs_ref_put_if_unused(fs, r);
		}
	}
out:
	UNLOCK(fs);
	return rc;
}

int fs_mknod(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, uint64_t rdev,
             struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) &&
	    !S_ISCHR(mode) && !S_ISBLK(mode))
		return -EINVAL;
	return create_op(fs, c, "create", parent, name, mode, rdev, NULL, out);
}

int fs_mkdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	return create_op(fs, c, "mkdir", parent, name,
	                 S_IFDIR | (mode & 07777), 0, NULL, out);
}

int fs_symlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
               const char *name, const char *target, struct fs_attr *out)
{
	size_t n = strlen(target);

	memset(out, 0, sizeof *out);
	if (n == 0)
		return -ENOENT;
	if (n >= FS_PATH_MAX)
		return -ENAMETOOLONG;
	return create_op(fs, c, "symlink", parent, name, S_IFLNK | 0777, 0,
	                 target, out);
}

int fs_link(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
            uint64_t newparent, const char *newname, struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	if ((rc = check_name(newname)) || (rc = load_dir(fs, newparent, &dir)) ||
	    (rc = inode_load(fs, ino, &in)))
		goto end;
	if (S_ISDIR(in.mode)) {
		rc = -EPERM;
		goto end;
	}
	if (in.nlink == 0) {
		rc = -ENOENT;
		goto end;
	}
	if (in.nlink >= 0xfffffff0u) {
		rc = -EMLINK;
		goto end;
	}
	rc = dir_find(fs, &dir, newname, &d);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto end;
	if ((rc = dir_add(fs, &dir, newname, ino)))
		goto end;
	in.nlink++;
	inode_touch(&in, 0, 0, 1);
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &in)) || (rc = inode_save(fs, &dir)))
		goto end;
	inode_to_attr(fs, &in, out);
	ref_lookup(fs, ino);
end:
	rc = fs_op_end(fs, rc);
	{
		char p[FS_PATH_MAX];
		fs_audit(fs, c, "link", ino, AUDIT_PATH(fs, p, newparent, newname),
		         0, 0, rc);
	}
out:
	UNLOCK(fs);
	return rc;
}

/* ---- removal ---- */

static int remove_locked(struct fs *fs, uint64_t parent, const char *name,
                         int want_dir, uint64_t *ino)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	if ((rc = check_name(name)) || (rc = load_dir(fs, parent, &dir)))
		return rc;
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	if ((rc = dir_find(fs, &dir, name, &d)) ||
	    (rc = inode_load(fs, d.ino, &in)))
		return rc;
	*ino = in.ino;
	if (want_dir && !S_ISDIR(in.mode))
		return -ENOTDIR;
	if (!want_dir && S_ISDIR(in.mode))
		return -EISDIR;
	if (want_dir) {
		rc = store_dentry_any(fs->s, in.ino);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return -ENOTEMPTY;
	}
	if ((rc = store_dentry_delete(fs->s, parent, d.tag)))
		return rc;
	if (want_dir && dir.nlink > 2)
		dir.nlink--;
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &dir)))
		return rc;
	return inode_unlink(fs, &in);
}

static int remove_op(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
                     const char *name, int want_dir)
{
	uint64_t ino = 0;
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	{
		char p[FS_PATH_MAX];
		const char *path = AUDIT_PATH(fs, p, parent, name);
		rc = remove_locked(fs, parent, name, want_dir, &ino);
		path_forget(fs, ino, want_dir);
		rc = fs_op_end(fs, rc);
		fs_audit(fs, c, want_dir ? "rmdir" : "unlink", ino, path, 0, 0, rc);
	}
out:
	UNLOCK(fs);
	return rc;
}

int fs_unlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name)
{
	return remove_op(fs, c, parent, name, 0);
}

int fs_rmdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name)
{
	return remove_op(fs, c, parent, name, 1);
}

/* ---- rename ---- */

/* Is dir `ino` equal to or below `ancestor`? Walks parent entries up. */
static int is_within(struct fs *fs, uint64_t ino, uint64_t ancestor)
{
	struct store_dentry d;
	int depth = 0, rc;

	while (ino != STORE_ROOT_INO && depth++ < 100000) {
		if (ino == ancestor)
			return 1;
		rc = store_dentry_of_ino(fs->s, ino, &d);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		ino = d.parent;
	}
	return ino == ancestor;
}

static int rename_locked(struct fs *fs, uint64_t parent, const char *name,
                         uint64_t newparent, const char *newname,
                         unsigned flags, uint64_t *ino)
{
	struct store_inode sdir, ddir, src, dst;
	struct store_dentry sd, dd;
	int rc, have_dst, same_dir = parent == newparent;

	if ((rc = check_name(name)) || (rc = check_name(newname)))
		return rc;
	if (!strcmp(name, ".") || !strcmp(name, "..") ||
	    !strcmp(newname, ".") || !strcmp(newname, ".."))
		return -EINVAL;
	if ((flags & FS_RENAME_NOREPLACE) && (flags & FS_RENAME_EXCHANGE))
		return -EINVAL;
	if ((rc = load_dir(fs, parent, &sdir)))
		return rc;
	if (same_dir)
		ddir = sdir;
	else if ((rc = load_dir(fs, newparent, &ddir)))
		return rc;
	if ((rc = dir_find(fs, &sdir, name, &sd)) ||
	    (rc = inode_load(fs, sd.ino, &src)))
		return rc;
	*ino = src.ino;
	rc = dir_find(fs, &ddir, newname, &dd);
	if (rc && rc != -ENOENT)
		return rc;
	have_dst = rc == 0;
	if (have_dst && (rc = inode_load(fs, dd.ino, &dst)))
		return rc;
	if (flags & FS_RENAME_EXCHANGE) {
		if (!have_dst)
			return -ENOENT;
	} else if (have_dst && (flags & FS_RENAME_NOREPLACE))
		return -EEXIST;
	if (have_dst && dst.ino == src.ino)
		return 0; /* same file (or hard links to it): nothing to do */
	/* a directory cannot move below itself */
	if (S_ISDIR(src.mode) && !same_dir) {
		rc = is_within(fs, newparent, src.ino);
		if (rc < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}
	if ((flags & FS_RENAME_EXCHANGE) && S_ISDIR(dst.mode) && !same_dir) {
		rc = is_within(fs, parent, dst.ino);
		if (rc < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}

	if (flags & FS_RENAME_EXCHANGE) {
		/* swap what the two entries point to */
		sd.ino = dst.ino;
		dd.ino = src.ino;
		if ((rc = dir_reseal(fs, &sdir, &sd, name)) ||
		    (rc = dir_reseal(fs, &ddir, &dd, newname)))
			return rc;
		if (!same_dir && S_ISDIR(src.mode) != S_ISDIR(dst.mode)) {
			if (S_ISDIR(src.mode)) {
				sdir.nlink--;
				ddir.nlink++;
			} else {
				sdir.nlink++;
				ddir.nlink--;
			}
		}
		inode_touch(&src, 0, 0, 1);
		inode_touch(&dst, 0, 0, 1);
		if ((rc = inode_save(fs, &src)) || (rc = inode_save(fs, &dst)))
			return rc;
	} else {
		if (have_dst) {
			if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
				return -ENOTDIR;
			if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
				return -EISDIR;
			if (S_ISDIR(dst.mode)) {
				rc = store_dentry_any(fs->s, dst.ino);
				if (rc < 0)
					return rc;
				if (rc > 0)
					return -ENOTEMPTY;
				ddir.nlink--;
			}
			if ((rc = store_dentry_delete(fs->s, newparent, dd.tag)) ||
			    (rc = inode_unlink(fs, &dst)))
				return rc;
		}
		if ((rc = store_dentry_delete(fs->s, parent, sd.tag)))
			return rc;
		if ((rc = dir_add(fs, &ddir, newname, src.ino)))
			return rc;
		if (S_ISDIR(src.mode) && !same_dir) {
			sdir.nlink--;
			ddir.nlink++;
		}
		inode_touch(&src, 0, 0, 1);
		if ((rc = inode_save(fs, &src)))
			return rc;
	}
	if (same_dir) {
		/* sdir and ddir are the same row: keep the later copy */
		inode_touch(&ddir, 0, 1, 1);
		return inode_save(fs, &ddir);
	}
	inode_touch(&sdir, 0, 1, 1);
	inode_touch(&ddir, 0, 1, 1);
	if ((rc = inode_save(fs, &sdir)))
		return rc;
	return inode_save(fs, &ddir);
}

int fs_rename(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, uint64_t newparent, const char *newname,
              unsigned flags)
{
	uint64_t ino = 0;
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	{
		char p[2 * FS_PATH_MAX + 8];
		if (fs->audit) {
			size_t n;
			fs_path_of(fs, parent, name, p, FS_PATH_MAX);
			n = strlen(p);
			snprintf(p + n, sizeof p - n, " -> ");
			n = strlen(p);
			fs_path_of(fs, newparent, newname, p + n, sizeof p - n);
		}
		rc = rename_locked(fs, parent, name, newparent, newname, flags, &ino);
		/* an exchange or a replaced target may have moved a directory */
		path_forget(fs, ino, 1);
		rc = fs_op_end(fs, rc);
		fs_audit(fs, c, "rename", ino, fs->audit ? p : NULL, 0, flags, rc);
	}
out:
	UNLOCK(fs);
	return rc;
}

int fs_readlink(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t cap)
{
	struct store_inode in;
	ssize_t n;
	int rc;

	(void)c;
	LOCK(fs);
	rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISLNK(in.mode))
		rc = -EINVAL;
	if (!rc && (in.size == 0 || in.size >= cap || in.size >= FS_PATH_MAX))
		rc = -EIO;
	if (!rc) {
		n = blockio_read(fs, &in, buf, (size_t)in.size, 0);
		if (n < 0)
			rc = (int)n;
		else if ((uint64_t)n != in.size)
			rc = -EIO;
		else {
			buf[n] = 0;
			rc = (int)n;
		}
	}
	UNLOCK(fs);
	return rc;
}

/* ---- open files and data ---- */

int fs_open(struct fs *fs, const struct fs_ctx *c, uint64_t ino, int flags)
{
	struct store_inode in;
	struct fs_ref *r;
	int rc, acc = flags & O_ACCMODE;

	LOCK(fs);
	rc = inode_load(fs, ino, &in);
	if (!rc && S_ISDIR(in.mode) && acc != O_RDONLY)
		rc = -EISDIR;
	if (!rc && acc != O_RDONLY && (rc = writable(fs)) == 0 &&
	    (flags & O_TRUNC) && S_ISREG(in.mode)) {
		if (!(rc = fs_op_begin(fs))) {
			if (in.size) {
				rc = blockio_truncate(fs, &in, 0);
				inode_touch(&in, 0, 1, 1);
				if (!rc)
					rc = inode_save(fs, &in);
			}
			rc = fs_op_end(fs, rc);
		}
	}
	if (!rc) {
		r = fs_ref_get(fs, ino, 1);
		if (r)
			r->nopen++;
		else
			rc = -ENOMEM;
	}
	if (fs->audit) {
		if (!fs_op_begin(fs)) {
			fs_audit(fs, c, "open", ino, NULL, (uint64_t)flags, 0, rc);
			fs_op_end(fs, 0);
		}
	}
	UNLOCK(fs);
	return rc;
}

void fs_release(struct fs *fs, const struct fs_ctx *c, uint64_t ino)
{
	struct fs_ref *r;

	(void)c;
	LOCK(fs);
	r = fs_ref_get(fs, ino, 0);
	if (r && r->nopen) {
		r->nopen--;
		if (!r->nopen && !r->nlookup) {
			fs_ref_put_if_unused(fs, r);
			if (!fs->o.read_only && fs_op_begin(fs) == 0)
				fs_op_end(fs, inode_maybe_free(fs, ino));
		}
	}
	UNLOCK(fs);
}

/* relatime: update atime when it is older than mtime/ctime or a day old */
static int atime_due(const struct store_inode *in)
{
	int64_t now = fs_now_ns();
	return in->atime <= in->mtime || in->atime <= in->ctime ||
	       now - in->atime >= 86400ll * 1000000000;
}

/*
 * The data of a read, under fs->lock on entry and return. A large read is
 * staged and decrypted with the lock released, so another worker's request
 * proceeds meanwhile; *in is then loaded again (it may have changed) and
 * *in_ok says whether it still exists.
 */
static ssize_t read_data(struct fs *fs, struct store_inode *in, int *in_ok,
                         char *buf, size_t size, uint64_t off)
{
	struct read_stage *st = NULL;
	uint64_t ino = in->ino;
	ssize_t n;

	for (int i = 0; size >= FS_STAGE_MIN && i < FS_STAGES && !st; i++)
		if (!blockio_stage_busy(fs->stage[i]))
			st = fs->stage[i];
	if (!st || (n = blockio_stage(fs, in, st, size, off)) == -EAGAIN)
		return blockio_read(fs, in, buf, size, off);
	if (n <= 0)
		return n;
	blockio_stage_hold(st, 1);
	UNLOCK(fs);
	n = blockio_unstage(st, buf);
	LOCK(fs);
	blockio_stage_hold(st, 0);
	*in_ok = inode_load(fs, ino, in) == 0;
	return n;
}

ssize_t fs_read(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t size, uint64_t off)
{
	struct store_inode in;
	struct fs_pending_read *p = &fs->pread;
	ssize_t n;
	int rc, in_ok = 1;

	LOCK(fs);
	rc = inode_load(fs, ino, &in);
	if (!rc && S_ISDIR(in.mode))
		rc = -EISDIR;
	if (rc) {
		n = rc;
		if (fs->audit && fs_op_begin(fs) == 0) {
			fs_audit(fs, c, "read", ino, NULL, off, size, n);
			fs_op_end(fs, 0);
		}
		goto out;
	}
	n = read_data(fs, &in, &in_ok, buf, size, off);
	if (n >= 0 && in_ok && atime_due(&in) && !writable(fs) &&
	    fs_op_begin(fs) == 0) {
		inode_touch(&in, 1, 0, 0);
		fs_op_end(fs, inode_save(fs, &in));
	}
	if (!fs->audit)
		goto out;
	if (n < 0) {
		if (fs_op_begin(fs) == 0) {
			fs_audit(fs, c, "read", ino, NULL, off, size, n);
			fs_op_end(fs, 0);
		}
		goto out;
	}
	/* a read continuing the pending one extends its row: every byte is
	 * accounted for, one row per contiguous run */
	if (p->valid && p->ino == ino && p->c.pid == c->pid &&
	    p->c.uid == c->uid && p->c.gid == c->gid && off == p->off + p->len) {
		p->len += (uint64_t)n;
	} else {
		struct timespec ts;
		read_flush(fs);
		clock_gettime(CLOCK_REALTIME, &ts);
		*p = (struct fs_pending_read){ 1, *c, ino, off, (uint64_t)n,
		        (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, fs_now_ms() };
	}
out:
	UNLOCK(fs);
	return n;
}

ssize_t fs_write(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                 const char *buf, size_t size, uint64_t off)
{
	struct store_inode in;
	ssize_t n;
	int rc;

	LOCK(fs);
	if ((rc = writable(fs)) || (rc = fs_op_begin(fs))) {
		n = rc;
		goto out;
	}
	rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISREG(in.mode))
		rc = S_ISDIR(in.mode) ? -EISDIR : -EINVAL;
	if (rc)
		n = rc;
	else {
		n = blockio_write(fs, &in, buf, size, off);
		if (n > 0) {
			/* set-user-ID is cleared by the kernel (a SETATTR before an
			 * unprivileged write: we do not claim HANDLE_KILLPRIV), so a
			 * write by root keeps it, as on ext4 */
			if (!fs->kernel_times)
				inode_touch(&in, 0, 1, 1);
			rc = inode_save(fs, &in);
			if (rc)
				n = rc;
		}
	}
	n = n < 0 ? fs_op_end(fs, (int)n) : (fs_op_end(fs, 0) ? -EIO : n);
	fs_audit(fs, c, "write", ino, NULL, off, size, n);
out:
	UNLOCK(fs);
	return n;
}

int fs_fsync(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
             int datasync)
{
	int rc;

	(void)c; (void)ino; (void)datasync;
	LOCK(fs);
	rc = fs_commit_locked(fs);
	UNLOCK(fs);
	return rc;
}

/* ---- directories ---- */

int fs_opendir(struct fs *fs, const struct fs_ctx *c, uint64_t ino)
{
	struct store_inode in;
	int rc;

	LOCK(fs);
	rc = load_dir(fs, ino, &in);
	if (fs->audit && fs_op_begin(fs) == 0) {
		fs_audit(fs, c, "opendir", ino, NULL, 0, 0, rc);
		fs_op_end(fs, 0);
	}
	UNLOCK(fs);
	return rc;
}

struct rd_ctx {
	struct fs *fs;
	struct store_inode *dir;
	fs_fill_fn fill;
	void *arg;
	int full;
};

static int rd_entry(void *arg, const struct store_dentry *d)
{
	struct rd_ctx *r = arg;
	struct store_inode in;
	char name[FS_NAME_MAX + 1];
	uint32_t mode = 0;

	if (dir_name(r->fs, r->dir, d, name))
		return 0; /* an entry that fails authentication is hidden */
	if (inode_load(r->fs, d->ino, &in) == 0)
		mode = in.mode;
	if (r->fill(r->arg, name, d->ino, mode, d->id + 2)) {
		r->full = 1;
		return 1;
	}
	return 0;
}

int fs_readdir(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               int64_t off, fs_fill_fn fill, void *arg)
{
	struct store_inode dir;
	struct store_dentry pd;
	struct rd_ctx r;
	int rc;

	(void)c;
	LOCK(fs);
	if ((rc = inode_load(fs, ino, &dir)))
		goto out;
	if (!S_ISDIR(dir.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (off < 1) {
		if (fill(arg, ".", ino, S_IFDIR, 1))
			goto out;
		off = 1;
	}
	if (off < 2) {
		uint64_t up = ino;
		if (ino != STORE_ROOT_INO && store_dentry_of_ino(fs->s, ino, &pd) == 0)
			up = pd.parent;
		if (fill(arg, "..", up, S_IFDIR, 2))
			goto out;
		off = 2;
	}
	r = (struct rd_ctx){ fs, &dir, fill, arg, 0 };
	rc = store_dentry_each(fs->s, ino, off - 2, rd_entry, &r);
	if (rc > 0)
		rc = 0;
out:
	UNLOCK(fs);
	return rc;
}

int fs_statfs(struct fs *fs, struct statvfs *out)
{
	struct statvfs sv;
	uint64_t files = 0, dirs = 0, bytes = 0;
	const char *p = fs->o.store_path ? fs->o.store_path : "/";
	char dir[4096];
	char *slash;

	memset(out, 0, sizeof *out);
	snprintf(dir, sizeof dir, "%s", p);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else if (slash)
		dir[1] = 0;
	else
		snprintf(dir, sizeof dir, ".");
	if (statvfs(dir, &sv) != 0)
		return -errno;
	LOCK(fs);
	store_inode_count(fs->s, &files, &dirs, &bytes);
	UNLOCK(fs);
	out->f_bsize = fs->block_size;
	out->f_frsize = fs->block_size;
	out->f_blocks = (uint64_t)sv.f_blocks * sv.f_frsize / fs->block_size;
	out->f_bfree = (uint64_t)sv.f_bfree * sv.f_frsize / fs->block_size;
	out->f_bavail = (uint64_t)sv.f_bavail * sv.f_frsize / fs->block_size;
	out->f_files = files + dirs + sv.f_ffree;
	out->f_ffree = sv.f_ffree;
	out->f_favail = sv.f_favail;
	out->f_namemax = FS_NAME_MAX;
	return 0;
}
