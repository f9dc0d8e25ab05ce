/*
 * fs_tx.c - the group transaction: operations share one SQLite write
 * transaction that commits every commit_interval, at fsync and at
 * unmount, and ends in one signed commit record (ledger.h) carrying the
 * roots of the inode and entry trees.
 *
 * Operations check everything that can fail (names, permissions, loading
 * and verifying rows) before they change the store, so a failed operation
 * normally leaves no trace without a savepoint. A savepoint per operation
 * would copy every page it touches into a statement journal first (untar
 * 16 s -> 10 s, streaming writes +25% without, on 64 KiB pages). If an operation does
 * fail after changing rows (the disk is full, an I/O error, a row found
 * damaged half way, a row that cannot be recorded), fs_op_end rolls the
 * whole group transaction back: the store stays consistent and loses at
 * most the operations since the last commit, as a crash would; fsync'ed
 * work is never lost.
 *
 * Commit, in order: the pending read row; the block trees of changed
 * files are folded (their roots go into the inode rows); each changed
 * inode's leaf goes into the inode tree; the inode and entry trees are
 * folded; the commit record, signed by every session whose rows the
 * transaction holds, is appended; COMMIT.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "fs_internal.h"
#include "ledger.h"
#include "mtree.h"
#include "session.h"
#include "unlock.h"

#define FS_TX_MAX_BYTES (64u << 20) /* commit early past this much data */
/* FS_PURGE_BATCH (fs.h): blocks a batch (16 MiB of 4 KiB blocks) */
#define FS_PURGE_SLICE_MS 1000      /* longest run of idle batches a tick */
#define FS_CKPT_WARN_TICKS 30       /* refused idle checkpoints: say so */

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

/* End the operation's read transaction, if it has one (see fs_lock). */
static void read_tx_end(struct fs *fs)
{
	if (fs->rtx)
		store_read_end(fs->s);
	fs->rtx = 0;
}

int fs_catch_up(struct fs *fs)
{
	const struct ledger_commit *h = &fs->u->head;
	int rc;

	/* only between transactions: nothing of ours is dirty */
	if ((rc = mtree_invalidate(fs->mt)))
		return rc;
	inode_cache_clear(fs);
	fs->inodes = h->st.inodes;
	fs->dentries = h->st.dentries;
	fs->next_ino = h->st.next_ino;
	fs->path_gen++;
	fs->base_seq = h->seq;
	memcpy(fs->base_hash, h->hash, sizeof fs->base_hash);
	return 0;
}

/* The working roots were derived from u's head. */
static int on_head(const struct fs *fs)
{
	const struct ledger_commit *h = &fs->u->head;

	return fs->base_seq == h->seq &&
	       cipher_memeq(fs->base_hash, h->hash, sizeof fs->base_hash);
}

int fs_head_sync(struct fs *fs)
{
	const struct ledger_commit *h = &fs->u->head;

	if (on_head(fs))
		return 0;
	if (mtree_root_eq(&fs->inodes, &h->st.inodes) &&
	    mtree_root_eq(&fs->dentries, &h->st.dentries) &&
	    fs->next_ino == h->st.next_ino) {
		/* commits that left the files as they were: what we verified
		 * under these roots stays verified */
		fs->base_seq = h->seq;
		memcpy(fs->base_hash, h->hash, sizeof fs->base_hash);
		return 0;
	}
	return fs_catch_up(fs);
}

static void follow_others(struct fs *fs);

/* The session a request is served under (fs.h, struct fs_ctx). */
static struct session *acting(struct fs *fs, const struct fs_ctx *c)
{
	struct session *ss;

	if (c && c->ss)
		return c->ss;
	if (!c || !fs->o.session_of)
		return fs->u->ss;
	ss = fs->o.session_of(fs->o.session_arg, c->uid, c->sid);
	return ss ? ss : fs->nobody;
}

struct session *fs_recorder(struct fs *fs, struct session *ss)
{
	return ss && ss->id > 0 && !ss->ended ? ss : fs->u->ss;
}

/*
 * The entry points run under fs->lock. Outside the group transaction an
 * operation's reads share one read transaction: SQLite takes and drops the
 * WAL read lock (fcntl calls) once per operation instead of once per
 * statement; a streaming read made 104 of those calls a MiB. fs_op_begin
 * ends it before it opens the group transaction.
 */
void fs_lock(struct fs *fs, const struct fs_ctx *c)
{
	atomic_fetch_add(&fs->arrivals, 1);
	fs_lock_raw(fs);
	fs->actor = acting(fs, c);
	fs->kr = fs->actor->kr;
	fs->req = c;
	if (fs->in_tx) {
		/* a commit holds at most LEDGER_MAX_SIGNERS signatures: when this
		 * op's recorder, the pending read's and the mount's own would
		 * not fit, the group commits now, before the op does anything */
		struct session *who[3] = { fs_recorder(fs, fs->actor),
		                           fs->pread.valid ? fs_recorder(fs, fs->pread.c.ss)
		                                           : NULL,
		                           fs->u->ss };
		if (audit_trail_signers(fs->u->trail, NULL, 0) +
		            audit_trail_new_signers(fs->u->trail, who, 3) >
		        LEDGER_MAX_SIGNERS && fs_commit_locked(fs))
			fs->fatal = 1;
	}
	if (fs->in_tx || store_read_begin(fs->s) != 0)
		return;
	fs->rtx = 1;
	follow_others(fs);
}

/* Inside a read transaction, outside the group: another process (an
 * admin command, reencrypt) committed: its commits are verified and its
 * roots become ours before we read; sessions follow a moved roster. The
 * head may also have moved by a commit of this process that did not pass
 * through here (a command's record): its roots become ours too. */
static void follow_others(struct fs *fs)
{
	int rc = 0;

	if (store_changed(fs->s) > 0)
		rc = unlock_catch_up(fs->u);
	if (rc >= 0)
		rc = fs_head_sync(fs);
	if (rc < 0)
		fs->fatal = 1;
}

int fs_lock_committed(struct fs *fs, const struct fs_ctx *c)
{
	int rc;

	fs_lock(fs, c);
	if (!fs->in_tx)
		return 0;
	if ((rc = fs_commit_locked(fs)))
		return rc;
	/* as fs_lock outside a group transaction: one read transaction, on
	 * the newest commit */
	if (store_read_begin(fs->s) == 0) {
		fs->rtx = 1;
		follow_others(fs);
	}
	return 0;
}

void fs_act(struct fs *fs, const struct fs_ctx *c)
{
	fs->actor = acting(fs, c);
	fs->kr = fs->actor->kr;
}

/*
 * Durability. A mount's commits do not wait for the disk under fs->lock
 * (synchronous=NORMAL): a streaming writer spent a quarter of its time
 * blocked behind commits fsyncing 64 MiB of WAL. Instead the thread
 * that releases the lock after a commit syncs the WAL once the lock is
 * free, and only then returns to its caller (the FUSE reply, the tick):
 * an fsync() returns after its data is on disk, as before, and a group
 * commit is on disk a sync's time after it is written, as before. Until
 * its sync a commit is not witnessed (syslog) and the local state does
 * not record it (fs_durable_locked), so a power cut can never leave a
 * witness line or this host's state ahead of the store.
 */
/* Sync the queued commits (fs->lock held); release: let fs->lock go
 * once sync_lock is ours, so others work while the disk does. With none
 * queued it waits for a sync another thread has under way. */
static int sync_queued(struct fs *fs, int release)
{
	size_t n = fs->nunsynced;
	int rc = 0;

	/* in commit order: a later committer waits here, lock held, until
	 * the sync before is done (rare: commits are a second apart) */
	pthread_mutex_lock(&fs->sync_lock);
	memcpy(fs->syncing, fs->unsynced, n * sizeof *fs->syncing);
	fs->nunsynced = 0;
	atomic_store(&fs->sync_busy, 1);
	if (release)
		pthread_mutex_unlock(&fs->lock);
	if (n && (rc = store_sync(fs->s))) {
		atomic_store(&fs->sync_err, rc);
		fs_warn(fs, "cannot sync the store's WAL to disk (%s): the mount"
		        " stops writing", strerror(-rc));
	} else
		for (size_t i = 0; i < n; i++)
			unlock_witness(fs->u, &fs->syncing[i]);
	atomic_store(&fs->sync_busy, 0);
	pthread_mutex_unlock(&fs->sync_lock);
	return rc ? rc : atomic_load(&fs->sync_err);
}

void fs_lock_raw(struct fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	if (atomic_load(&fs->sync_err))
		fs->fatal = 1; /* a commit may not be on disk: write no more */
}

static void committed(struct fs *fs);

void fs_keys_committed(void *arg)
{
	committed(arg);
}

static void committed(struct fs *fs)
{
	if (!fs->defer_sync) {
		unlock_committed(fs->u);
		return;
	}
	if (fs->nunsynced == FS_UNSYNCED_MAX)
		sync_queued(fs, 0); /* never more than a few: here, locked */
	fs->unsynced[fs->nunsynced++] = fs->u->head;
}

int fs_lock_release(struct fs *fs)
{
	if (!fs->nunsynced) {
		pthread_mutex_unlock(&fs->lock);
		return atomic_load(&fs->sync_err);
	}
	return sync_queued(fs, 1);
}

int fs_sync_locked(struct fs *fs)
{
	return sync_queued(fs, 0);
}

int fs_durable_locked(struct fs *fs)
{
	return !fs->nunsynced && !atomic_load(&fs->sync_busy) &&
	       !atomic_load(&fs->sync_err);
}

int fs_wait_durable(struct fs *fs)
{
	pthread_mutex_lock(&fs->sync_lock);
	pthread_mutex_unlock(&fs->sync_lock);
	return atomic_load(&fs->sync_err);
}

int fs_unlock(struct fs *fs)
{
	read_tx_end(fs);
	return fs_lock_release(fs);
}

int fs_op_begin(struct fs *fs)
{
	int rc;

	fs->last_activity_ms = fs_now_ms();
	/* another process (reencrypt) may commit between the read transaction
	 * and the write one: an operation loads what it changes after this */
	read_tx_end(fs);
	if (fs->in_tx && !store_in_transaction(fs->s))
		fs_abort_locked(fs); /* SQLite gave up the transaction itself */
	if (!fs->in_tx) {
		rc = unlock_begin(fs->u);
		if (rc < 0) {
			if (rc == -EBADMSG || rc == -ESTALE || rc == -EACCES)
				fs->fatal = 1; /* the store moved under us, wrongly */
			return rc == -EBADMSG || rc == -ESTALE ? -EIO : rc;
		}
		/* the head unlock_begin verified in this write transaction is
		 * the one every root of this transaction derives from */
		if ((rc = fs_head_sync(fs))) {
			unlock_abort(fs->u);
			return rc;
		}
		fs->in_tx = 1;
		fs->tx_started_ms = fs->last_activity_ms;
		fs->tx_bytes = 0;
	}
	fs->op_changes = store_changes(fs->s);
	return 0;
}

int fs_op_end(struct fs *fs, int rc)
{
	if (rc >= 0 && store_in_transaction(fs->s))
		return rc;
	if (rc >= 0 || !store_in_transaction(fs->s))
		rc = store_tx_lost_errno(fs->s); /* the transaction is gone */
	else if (store_changes(fs->s) == fs->op_changes)
		return rc; /* failed before changing anything */
	fs_abort_locked(fs);
	return rc;
}

void fs_abort_locked(struct fs *fs)
{
	if (fs->in_tx) {
		unlock_abort(fs->u);
		/* the kernel may cache pages and attributes of the lost work
		 * (nothing drops them on an mtime change: fsops.c op_init) */
		atomic_store(&fs->rolled_back, 1);
	}
	mtree_abort(fs->mt);
	inode_forget_dirty(fs);
	/* a commit that failed after its fold (COMMIT itself: the disk is
	 * full) had moved the changed inodes into the verified cache, which
	 * serves without checking the tree: all go */
	inode_cache_clear(fs);
	fs->pread.valid = 0;  /* its row would go into a rolled-back tx */
	fs->in_tx = 0;
	fs->path_gen++;       /* names cached from rolled-back work */
	fs->purging = 1;
	if (on_head(fs)) {
		/* the transaction began on the head: back to its roots */
		fs->inodes = fs->u->head.st.inodes;
		fs->dentries = fs->u->head.st.dentries;
		fs->next_ino = fs->u->head.st.next_ino;
	} else if (fs_catch_up(fs)) {
		fs->fatal = 1;
	}
}

int fs_fold_roots(struct fs *fs)
{
	int rc = 0;

	if (mtree_dirty(fs->mt, MTREE_INODES, 0))
		rc = mtree_fold(fs->mt, MTREE_INODES, 0, &fs->inodes);
	if (!rc && mtree_dirty(fs->mt, MTREE_DENTRIES, 0))
		rc = mtree_fold(fs->mt, MTREE_DENTRIES, 0, &fs->dentries);
	return rc;
}

void fs_state(struct fs *fs, struct ledger_state *st)
{
	st->inodes = fs->inodes;
	st->dentries = fs->dentries;
	st->next_ino = fs->next_ino;
}

int fs_commit_locked(struct fs *fs)
{
	struct ledger_state st;
	int rc;

	if ((rc = atomic_load(&fs->sync_err))) {
		/* an earlier commit may not be on disk: none after it */
		if (fs->in_tx)
			fs_abort_locked(fs);
		return rc;
	}
	if ((rc = fs_read_flush(fs)))
		return rc;
	if (!fs->in_tx)
		return 0;
	if ((rc = inode_fold_all(fs)) || (rc = fs_fold_roots(fs)))
		goto fail;
	if (!on_head(fs) || !fs->u->in_tx) {
		/* roots derived from another commit than the head verified in
		 * this write transaction: never appended */
		fs_warn(fs, "the filesystem's roots are not those of the head"
		        " commit %lld: nothing committed",
		        (long long)fs->u->head.seq);
		fs->fatal = 1;
		rc = -EIO;
		goto fail;
	}
	unlock_state(fs->u, &st);
	fs_state(fs, &st);
	/* a commit that changes files is co-signed by the mount's own
	 * session: the daemon vouches for what it served (housekeeping such as
	 * freeing a forgotten inode has no row of anyone's) */
	if ((!mtree_root_eq(&st.inodes, &fs->u->head.st.inodes) ||
	     !mtree_root_eq(&st.dentries, &fs->u->head.st.dentries) ||
	     st.next_ino != fs->u->head.st.next_ino) &&
	    (rc = audit_trail_sign(fs->u->trail, fs->u->ss)))
		goto fail;
	if ((rc = unlock_commit(fs->u, &st)))
		goto fail;
	committed(fs);
	fs->base_seq = fs->u->head.seq;
	memcpy(fs->base_hash, fs->u->head.hash, sizeof fs->base_hash);
	fs->u->in_tx = 0;
	fs->in_tx = 0;
	fs->checkpointed = 0;
	return 0;
fail:
	fs_abort_locked(fs);
	return rc;
}

int fs_commit(struct fs *fs)
{
	int rc;

	fs_lock_raw(fs);
	fs->actor = fs->u->ss;
	fs->kr = fs->actor->kr;
	rc = fs_commit_locked(fs);
	{
		int srel = fs_lock_release(fs);
		if (!rc)
			rc = srel ? srel : fs_wait_durable(fs);
	}
	return rc;
}

/* Up to limit blocks of the first queued inode. Only an inode that the
 * signed state says is gone is purged: a live inode number planted in the
 * queue is dropped from it untouched. 0 when the queue is empty, 1 if it
 * did something; *deleted counts the blocks deleted. */
static int purge_one(struct fs *fs, size_t limit, uint64_t *deleted)
{
	uint8_t leaf[MTREE_HASH_BYTES], zero[MTREE_HASH_BYTES] = { 0 };
	struct store_inode in;
	uint64_t ino;
	int done, rc;

	*deleted = 0;
	rc = store_purge_next(fs->s, &ino);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = mtree_leaf(fs->mt, MTREE_INODES, 0, &fs->inodes, ino, leaf);
	if (rc == 0 && (!cipher_memeq(leaf, zero, sizeof leaf) ||
	                inode_load(fs, ino, &in) == 0)) {
		fs_warn(fs, "the purge queue names inode %llu,"
		        " which is alive: not purged", (unsigned long long)ino);
		rc = store_purge_drop(fs->s, ino);
		return rc ? rc : 1;
	}
	if (rc)
		return rc;
	if ((rc = store_purge_step(fs->s, ino, limit, deleted, &done)))
		return rc;
	if (done)
		mtree_forget(fs->mt, MTREE_BLOCKS, ino);
	return 1;
}

/* One batch, in the group transaction: FS_PURGE_BATCH blocks, of as
 * many queued inodes as that takes (at most FS_PURGE_INODES: a batch of
 * small files is one commit, not one per file). 1 if work may remain, 0
 * when the queue is (now) empty; *deleted counts the blocks deleted. */
#define FS_PURGE_INODES 1024
static int purge_step(struct fs *fs, uint64_t *deleted)
{
	uint64_t n;
	int rc = 1;

	*deleted = 0;
	for (int i = 0; i < FS_PURGE_INODES && *deleted < FS_PURGE_BATCH; i++) {
		if ((rc = purge_one(fs, FS_PURGE_BATCH - *deleted, &n)) <= 0)
			break;
		*deleted += n;
	}
	return rc;
}

/* Whether anything waits in the queue (a read, outside any transaction
 * of ours: no empty group transaction, no empty commit). */
static int purge_queued(struct fs *fs)
{
	uint64_t ino;
	int rc = store_purge_next(fs->s, &ino);

	return rc == -ENOENT ? 0 : rc ? rc : 1;
}

/* The acting session of housekeeping: the fs's own. */
static void act_as_fs(struct fs *fs)
{
	fs->actor = fs->u->ss;
	fs->kr = fs->actor->kr;
}

/*
 * One batch in a group transaction of its own (joining and committing an
 * open one), ending in a signed commit (fs->lock held). Housekeeping is
 * not activity: the idle clock is left as it was. 1 if work remains, 0
 * when the queue is empty, or -errno (the batch is rolled back).
 */
static int purge_batch(struct fs *fs, uint64_t *deleted)
{
	int64_t keep = fs->last_activity_ms;
	int rc;

	*deleted = 0;
	if (!fs->in_tx && (rc = purge_queued(fs)) <= 0) {
		if (rc == 0)
			fs->purging = 0;
		return rc;
	}
	rc = fs_op_begin(fs);
	if (rc == 0) {
		rc = fs_op_end(fs, purge_step(fs, deleted));
		if (rc >= 0) {
			int c = fs_commit_locked(fs);
			if (c)
				rc = c;
		}
	}
	fs->last_activity_ms = keep;
	if (rc == 0)
		fs->purging = 0;
	if (rc < 0)
		*deleted = 0; /* rolled back */
	return rc;
}

/* No request came since the last tick: batches back to back until the
 * queue is empty, a request arrives, or FS_PURGE_SLICE_MS has passed.
 * Takes and leaves fs->lock held; drops it between batches. */
static void purge_idle(struct fs *fs)
{
	int64_t start = fs_now_ms();
	uint64_t seen = atomic_load(&fs->arrivals), n;

	for (;;) {
		if (purge_batch(fs, &n) <= 0 ||
		    fs_now_ms() - start >= FS_PURGE_SLICE_MS)
			break;
		fs_lock_release(fs);
		if (atomic_load(&fs->arrivals) != seen) {
			fs_lock_raw(fs);
			act_as_fs(fs);
			break;
		}
		fs_lock_raw(fs);
		act_as_fs(fs); /* a request may have come in between */
	}
}

int fs_purge_all(struct fs *fs, fs_progress_fn progress, void *arg)
{
	uint64_t inodes = 0, total = 0, bytes = 0, done = 0, n;
	int rc = 0;

	if (fs->o.read_only || store_readonly(fs->s))
		return -EROFS;
	if (progress) {
		fs_lock_raw(fs);
		rc = store_purge_pending(fs->s, &inodes, &total, &bytes);
		fs_lock_release(fs);
		if (rc)
			return rc;
	}
	for (;;) {
		int srel;
		fs_lock_raw(fs);
		act_as_fs(fs);
		rc = purge_batch(fs, &n);
		if ((srel = fs_lock_release(fs)) && rc >= 0)
			rc = srel; /* the batch is not on disk: stop, say so */
		done += n;
		if (rc <= 0)
			break;
		if (done > total)
			total = done;
		if (progress && progress(arg, done, total))
			return -ECANCELED;
	}
	return rc;
}

/* The idle checkpoint: empty the WAL once after our commits, and again
 * when another process committed into it while we were idle. */
static void idle_checkpoint(struct fs *fs)
{
	int rc;

	if (fs->checkpointed && store_wal_bytes(fs->s) > 0)
		fs->checkpointed = 0;
	if (fs->checkpointed)
		return;
	rc = store_checkpoint(fs->s);
	if (rc == 0) {
		fs->checkpointed = 1;
		fs->ckpt_busy = 0;
	} else if (rc == -EBUSY && ++fs->ckpt_busy == FS_CKPT_WARN_TICKS) {
		fs_warn(fs, "the WAL could not be emptied for %d s: another"
		        " process holds a read snapshot of the store; retrying",
		        FS_CKPT_WARN_TICKS / 10);
	}
}

int fs_tick(struct fs *fs)
{
	int64_t now = fs_now_ms();
	uint64_t arrived;
	int idle, quiet;

	fs_lock_raw(fs);
	act_as_fs(fs);
	arrived = atomic_load(&fs->arrivals);
	quiet = arrived == fs->tick_arrivals; /* no request since the last tick */
	if (fs->pread.valid && now - fs->pread.when_ms >= fs->o.audit_flush_ms &&
	    fs_read_flush(fs))
		fs->fatal = 1;
	if (fs->purging && !fs->o.read_only && !fs->o.shared) {
		if (quiet) {
			purge_idle(fs);
		} else if (purge_queued(fs) > 0 || fs->in_tx) {
			/* busy: one batch rides along in the group transaction */
			int64_t keep = fs->last_activity_ms;
			uint64_t n;
			if (fs_op_begin(fs) == 0) {
				int r = purge_step(fs, &n);
				fs_op_end(fs, r < 0 ? r : 0);
				if (r == 0)
					fs->purging = 0;
			}
			fs->last_activity_ms = keep;
		} else
			fs->purging = 0;
		now = fs_now_ms();
	}
	fs->tick_arrivals = atomic_load(&fs->arrivals);
	if (fs->in_tx && (now - fs->tx_started_ms >= fs->o.commit_interval_ms ||
	                  fs->tx_bytes >= FS_TX_MAX_BYTES))
		fs_commit_locked(fs);
	idle = !fs->in_tx && now - fs->last_activity_ms >= fs->o.idle_checkpoint_ms;
	if (idle && !fs->o.read_only && !fs->o.shared)
		idle_checkpoint(fs);
	fs_lock_release(fs);
	return idle;
}

int fs_exclusive(struct fs *fs, int (*fn)(void *arg), void *arg)
{
	int rc;

	fs_lock_raw(fs);
	fs->actor = fs->u->ss;
	fs->kr = fs->actor->kr;
	rc = fs_commit_locked(fs);
	if (!rc && store_read_begin(fs->s) == 0) {
		follow_others(fs);
		store_read_end(fs->s);
	}
	if (!rc && !fs->fatal)
		rc = fn(arg);
	/* fn's own transactions (or those it caught up with) moved the head:
	 * take its roots */
	if (!fs->in_tx && fs_head_sync(fs))
		fs->fatal = 1;
	fs->actor = fs->u->ss;
	fs->kr = fs->actor->kr;
	fs_lock_release(fs);
	return rc;
}

void fs_fail_locked(struct fs *fs)
{
	fs->fatal = 1;
}

int fs_take_rollback(struct fs *fs)
{
	return atomic_exchange(&fs->rolled_back, 0);
}

int fs_fatal(struct fs *fs, const char **why)
{
	int f;

	/* the store's -shm cut, removed or replaced (store_guard.c): seen
	 * here within a tick even on an idle mount */
	if (store_shm_check(fs->s)) {
		if (why)
			*why = STORE_CUT_MSG;
		return 2;
	}
	fs_lock_raw(fs);
	f = fs->fatal;
	pthread_mutex_unlock(&fs->lock);
	if (f && why)
		*why = atomic_load(&fs->sync_err)
		       ? "a commit could not be flushed to disk"
		       : "an operation could not be recorded in the audit trail, or"
		         " the store failed verification while mounted";
	return f;
}
