/*
 * fs.c - the filesystem object: attaching to an unlocked store (with the
 * orphan sweep a crash may have left to do), detaching, formatting a new
 * store's root directory, and the small settings of a mount.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"
#include "par.h"
#include "ledger.h"
#include "rights.h"
#include "session.h"
#include "unlock.h"

void fs_warn(struct fs *fs, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!fs->o.warn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fs->o.warn(line);
}

void fs_destroy(struct fs *fs)
{
	fs_refs_free(fs);
	fs_paths_free(fs);
	inode_forget_dirty(fs);
	free(fs->icache);
	for (int i = 0; i < FS_STAGES; i++)
		blockio_stage_free(fs->stage[i]);
	secmem_free(fs->scratch);
	secmem_free(fs->blockbuf);
	blockio_seal_free(fs);
	par_free(fs->par);
	secmem_free(fs->copybuf);
	blockio_stage_free(fs->cstage[0]);
	blockio_stage_free(fs->cstage[1]);
	mtree_free(fs->mt);
	session_free(fs->nobody);
	free(fs->unsynced);
	free(fs->syncing);
	pthread_mutex_destroy(&fs->sync_lock);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

/* The parts every fs needs, with the signed state of u's head. */
int fs_alloc(struct unlocked *u, const struct fs_opts *o, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof *fs);
	uint32_t bs = u->r->policy.block_size;
	int rc = -ENOMEM;

	*out = NULL;
	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->sync_lock, NULL);
	fs->u = u;
	fs->s = u->s;
	fs->actor = u->ss;
	fs->kr = u->ss->kr;
	if (!(fs->nobody = session_new()))
		goto fail;
	fs->nobody->ended = 1;
	fs->nobody->role = ROLE_NONE;
	snprintf(fs->nobody->name, sizeof fs->nobody->name, "-");
	if (o)
		fs->o = *o;
	if (fs->o.audit_flush_ms <= 0)
		fs->o.audit_flush_ms = 1000;
	/* the block size is signed (the roster's policy): a file writer must
	 * not choose our buffer sizes */
	if (bs < 512 || bs > 65536 || (bs & (bs - 1))) {
		rc = -EIO;
		goto fail;
	}
	fs->block_size = bs;
	fs->scratch = secmem_alloc(FS_KEY_SLOTS * CIPHER_KEY_BYTES);
	fs->blockbuf = secmem_alloc(bs);
	fs->par = par_new(); /* NULL: everything on one core */
	fs->paths = calloc(FS_PATH_SLOTS, sizeof *fs->paths);
	fs->icache = calloc(FS_ICACHE_SLOTS, sizeof *fs->icache);
	fs->unsynced = calloc(FS_UNSYNCED_MAX, sizeof *fs->unsynced);
	fs->syncing = calloc(FS_UNSYNCED_MAX, sizeof *fs->syncing);
	if (!fs->scratch || !fs->blockbuf || !fs->paths || !fs->icache ||
	    !fs->unsynced || !fs->syncing)
		goto fail;
	if ((rc = mtree_new(fs->s, FS_MTREE_CACHE, &fs->mt)))
		goto fail;
	for (int i = 0; i < FS_STAGES; i++)
		if (!(fs->stage[i] = blockio_stage_new(bs, FS_STAGE_MAX))) {
			rc = -ENOMEM;
			goto fail;
		}
	fs->inodes = u->head.st.inodes;
	fs->dentries = u->head.st.dentries;
	fs->next_ino = u->head.st.next_ino;
	fs->base_seq = u->head.seq;
	memcpy(fs->base_hash, u->head.hash, sizeof fs->base_hash);
	fs->last_activity_ms = fs_now_ms();
	*out = fs;
	return 0;
fail:
	fs_destroy(fs);
	return rc;
}

int fs_format(struct unlocked *u, uint32_t uid, uint32_t gid,
              uint32_t block_size, struct ledger_state *st)
{
	struct fs_ctx c = { .uid = uid, .gid = gid };
	struct store_inode root;
	struct fs *fs;
	int rc;

	(void)block_size; /* the roster's policy holds it */
	if ((rc = fs_alloc(u, NULL, &fs)))
		return rc;
	fs->next_ino = STORE_ROOT_INO;
	if ((rc = inode_alloc(fs, &c, S_IFDIR | 0755, 0, &root)))
		goto out;
	if (root.ino != STORE_ROOT_INO) {
		rc = -EIO;
		goto out;
	}
	if ((rc = inode_fold_all(fs)) || (rc = fs_fold_roots(fs)))
		goto out;
	fs_state(fs, st);
out:
	fs_destroy(fs);
	return rc;
}

struct orphan_ctx {
	struct fs *fs;
	struct fs_inos inos;
	int err;
};

static int collect_orphan(void *arg, const struct store_inode *in)
{
	struct orphan_ctx *o = arg;
	struct store_inode v;

	/* only signed rows: a row edited to nlink 0 is evidence for check,
	 * never swept */
	if (in->nlink != 0 || in->ino == STORE_ROOT_INO ||
	    inode_load(o->fs, in->ino, &v) || v.nlink != 0)
		return 0;
	if ((o->err = fs_inos_add(&o->inos, in->ino)))
		return 1;
	return 0;
}

int fs_new(struct unlocked *u, const struct fs_opts *o, struct fs **out)
{
	struct orphan_ctx orph = { NULL, { NULL, 0, 0 }, 0 };
	struct fs *fs;
	int rc;

	*out = NULL;
	if ((rc = fs_alloc(u, o, &fs)))
		return rc;
	orph.fs = fs;
	if (!o->read_only && !o->shared && !u->readonly) {
		/* files unlinked while open when the last session died */
		pthread_mutex_lock(&fs->lock);
		rc = store_inode_each(fs->s, collect_orphan, &orph);
		if (orph.err)
			rc = orph.err;
		if (rc >= 0 && orph.inos.n && !(rc = fs_op_begin(fs))) {
			for (size_t i = 0; i < orph.inos.n && !rc; i++)
				rc = inode_maybe_free(fs, orph.inos.v[i], 0);
			rc = fs_op_end(fs, rc);
			if (!rc)
				rc = fs_commit_locked(fs);
		}
		pthread_mutex_unlock(&fs->lock);
		fs_inos_free(&orph.inos);
		if (rc < 0)
			goto fail;
		/* the WAL is folded in beside the writer, not inside commits */
		if (o->store_path &&
		    (rc = store_checkpointer_start(fs->s, o->store_path)))
			goto fail;
		/* and commits wait for the disk outside the lock (fs_lock_release) */
		if (o->store_path) {
			if ((rc = store_defer_sync(fs->s, 1)))
				goto fail;
			fs->defer_sync = 1;
			/* the keys layer's commits on this connection (logins,
			 * sessions' ends, under fs_exclusive) join the queue */
			u->commit_hook = fs_keys_committed;
			u->commit_arg = fs;
		}
	}
	fs->purging = 1; /* the tick finds out whether anything is queued */
	*out = fs;
	return 0;
fail:
	fs_destroy(fs);
	return rc;
}

int fs_free(struct fs *fs)
{
	int rc;

	if (!fs)
		return 0;
	fs_lock_raw(fs);
	fs->actor = fs->u->ss;
	fs->kr = fs->actor->kr;
	rc = fs_commit_locked(fs);
	store_checkpointer_stop(fs->s);
	{
		int srel = fs_lock_release(fs);
		if (!rc)
			rc = srel;
	}
	if (fs->defer_sync) {
		/* what the keys layer commits after us (the unmount's record)
		 * waits for the disk itself again, and is witnessed and saved
		 * there */
		fs->u->commit_hook = NULL;
		fs->u->commit_arg = NULL;
		int r = store_defer_sync(fs->s, 0);
		if (!rc)
			rc = r;
	}
	fs_destroy(fs);
	return rc;
}

void fs_kernel_times(struct fs *fs, int on)
{
	pthread_mutex_lock(&fs->lock);
	fs->kernel_times = on;
	pthread_mutex_unlock(&fs->lock);
}

void fs_posix_acl(struct fs *fs, int on)
{
	pthread_mutex_lock(&fs->lock);
	fs->posix_acl = on;
	pthread_mutex_unlock(&fs->lock);
}

void fs_kill_privs(struct fs *fs, int on)
{
	pthread_mutex_lock(&fs->lock);
	fs->kill_privs = on;
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
