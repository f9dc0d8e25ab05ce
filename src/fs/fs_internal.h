/*
 * fs_internal.h - shared by the src/fs files only.
 *
 * Files: fs.c (the object: setup, teardown, format, statfs), fs_tx.c (the
 * group transaction and the commit), fs_ops.c (the entry points), refs.c
 * (kernel reference counts), pathcache.c (paths for the trail), inode.c,
 * dir.c, blockio.c, xattr.c (the objects, each checked against the trees),
 * fs_range.c (fallocate, SEEK_DATA/SEEK_HOLE, copy_file_range), acl.c
 * (POSIX ACLs on xattrs), check.c, reencrypt.c.
 *
 * Lock order: fs->lock is the only lock of the filesystem layer; it is
 * taken by every fs_* entry point and never while holding another. All
 * fields below `lock` are guarded by it.
 *
 * Trust: an inode, entry, block or xattr read from the store is used only
 * after its leaf matched the tree (mtree.h) under the roots of the newest
 * verified commit (fs->inodes, fs->dentries), or when this process wrote
 * it in the open transaction (the dirty inode map, the trees' working
 * copies).
 */
#ifndef CUSTODY_FS_INTERNAL_H
#define CUSTODY_FS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/statvfs.h>
#include "fs.h"
#include "keyring.h"
#include "mtree.h"
#include "store.h"

struct unlocked;
struct session;
struct keyring;

/* Kernel references and open handles of one inode (fs->lock). */
struct fs_ref {
	uint64_t ino;
	uint64_t nlookup;
	uint64_t nopen;
	uint64_t nwrite;        /* open handles that may write */
	struct fs_ref *next;
};

#define FS_REF_BUCKETS 4096
#define FS_PATH_SLOTS 1024
#define FS_ICACHE_SLOTS 16384     /* verified inodes (power of two) */
#define FS_DIRTY_BUCKETS 1024
#define FS_RDCURSORS 16
#define FS_MTREE_CACHE (16u << 20) /* verified tree groups */
/* Reads of at least FS_STAGE_MIN bytes decrypt outside fs->lock (one
 * stage per FUSE worker; the largest request is 1 MiB). */
#define FS_STAGES 2
#define FS_STAGE_MIN (64u << 10)
#define FS_STAGE_MAX (1u << 20)
/* copy_file_range's plaintext: two pieces of FS_STAGE_MAX (fs_range.c) */
#define FS_COPY_BUF (2u * FS_STAGE_MAX)

/* An inode this transaction changed (its newest value), or a verified
 * one (the clean cache). */
struct fs_inode_slot {
	int valid;
	struct store_inode in;
};
struct fs_dirty {
	struct store_inode in;
	struct fs_dirty *next;
};

struct fs {
	pthread_mutex_t lock;
	struct store *s;
	struct unlocked *u;     /* the keys context (unlock.h) */
	struct mtree *mt;       /* inode, entry and block trees */
	struct fs_opts o;
	uint32_t block_size;
	/* requests that came for the lock (fs_lock counts them before it
	 * waits): an idle purge gives way as soon as one does */
	atomic_uint_fast64_t arrivals;
	/* Commits made durable outside fs->lock (fs_tx.c, "durability"):
	 * commits of this mount wait in `unsynced` (fs->lock) until the
	 * thread that releases the lock after them syncs the WAL; sync_lock
	 * (taken with fs->lock held, never the other way round) keeps the
	 * syncs and their witness lines in commit order. */
	int defer_sync;         /* set once, before any request */
	pthread_mutex_t sync_lock;
	struct ledger_commit *unsynced, *syncing; /* FS_UNSYNCED_MAX each */
	size_t nunsynced;       /* fs->lock */
	atomic_int sync_busy;   /* a sync is under way */
	atomic_int sync_err;    /* the first failed sync's -errno: fatal */
	atomic_int rolled_back; /* a group transaction was lost (fs_take_rollback) */
	/* fields below: fs->lock */
	struct keyring *kr;     /* the keys of the operation in progress */
	struct session *actor;  /* its session */
	struct session *nobody; /* the actor of a request without a session */
	const struct fs_ctx *req; /* the request in progress (fs_lock) */
	struct fs_denied {
		uint32_t uid;
		int64_t ms;
	} denied[8];            /* the last no-session rows, by uid */
	struct fs_ref *refs[FS_REF_BUCKETS];
	int in_tx;              /* a group transaction is open */
	int rtx;                /* the operation's read transaction is open */
	int fatal;              /* a row could not be recorded: stop */
	int64_t op_changes;     /* store_changes() when the op began */
	int64_t tx_started_ms;
	uint64_t tx_bytes;      /* bytes written in the open transaction */
	int64_t last_activity_ms;
	int checkpointed;       /* the WAL was folded in since the last commit */
	int ckpt_busy;          /* idle checkpoints refused since the last one */
	uint64_t tick_arrivals; /* arrivals at the last tick */
	int purging;            /* freed blocks may be waiting in purge */
	int kernel_times;       /* writeback cache: the kernel sets m/ctime */
	int posix_acl;          /* the kernel enforces POSIX ACLs: we keep them */
	int kill_privs;         /* we clear set-user-ID/-group-ID (killpriv v2) */
	/* the signed state as of the last commit, and the working values */
	struct mtree_root inodes, dentries;
	uint64_t next_ino;
	/* the commit those were derived from (seq, hash): always u's head
	 * before a commit is appended (fs_head_sync, fs_commit_locked) */
	int64_t base_seq;
	uint8_t base_hash[32];
	struct fs_dirty *dirty[FS_DIRTY_BUCKETS];
	size_t ndirty;
	struct fs_inode_slot *icache;   /* FS_ICACHE_SLOTS */
	/* contiguous reads (or writes) of one file by one process, not yet
	 * in the trail: one row covers the whole range; written before any
	 * other row, at every commit (a write's row so in the transaction of
	 * its data) and after [audit] flush_interval */
	struct fs_pending_read {
		int valid;
		int write;              /* a "write" row, else "read" */
		struct fs_ctx c;
		uint64_t ino, off, len;
		int64_t when_ns, when_ms;
	} pread;
	uint64_t path_gen;      /* bumped by renames and removals */
	struct fs_path_slot {
		uint64_t ino, gen;
		char *path;
	} *paths;               /* FS_PATH_SLOTS direct-mapped cache */
	/* listings in progress, for their completeness check (fs_ops.c) */
	struct fs_rdcursor {
		uint64_t ino;
		int64_t next_off;
		uint64_t seen;
	} rdcur[FS_RDCURSORS];
	uint8_t *blockbuf;      /* locked: one plaintext block */
	struct par *par;        /* a second core for sealing (may be NULL) */
	struct seal_run *seal;  /* a write's whole blocks, sealed at once
	                           (blockio.c; allocated on first use) */
	uint8_t *copybuf;       /* locked: copy_file_range's plaintext
	                           (FS_COPY_BUF), allocated on first use,
	                           wiped after each */
	struct read_stage *cstage[2]; /* copy_file_range's source pieces */
	struct read_stage *stage[FS_STAGES]; /* for large reads (fs_read) */
	uint8_t *scratch;       /* locked memory for derived keys, by slot */
};

/* Slots of fs->scratch (each CIPHER_KEY_BYTES), one per kind of derived
 * key, so nested derivations never overwrite each other. */
enum { FS_KEY_FILE, FS_KEY_MAC, FS_KEY_NAME, FS_KEY_TAG, FS_KEY_XATTR,
       FS_KEY_SLOTS };
#define FS_KEY(fs, slot) ((fs)->scratch + (slot) * CIPHER_KEY_BYTES)

int64_t fs_now_ms(void);
int64_t fs_now_ns(void);
/* One line through fs->o.warn (fs.c). */
void fs_warn(struct fs *fs, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* ---- fs.c ---- */
/* An fs over u's store and head without the orphan sweep or the
 * checkpointer (fs_format, fs_upgrade.c); fs_destroy frees it. */
int fs_alloc(struct unlocked *u, const struct fs_opts *o, struct fs **out);
void fs_destroy(struct fs *fs);

/* ---- fs_tx.c: the group transaction ---- */
#define FS_UNSYNCED_MAX 4 /* commits awaiting their sync, at most */
/*
 * Release fs->lock; when commits of this mount await their sync, sync
 * them after releasing it (others take the lock meanwhile) and before
 * returning: 0, or the sync's -errno. Every holder of fs->lock releases
 * it through here (or fs_unlock), so no commit returns to a caller
 * before it is durable.
 */
int fs_lock_release(struct fs *fs);
/* fs->lock, and a failed sync made fatal (every taker but fs_lock) */
void fs_lock_raw(struct fs *fs);
/* unlocked.commit_hook of a mount: a commit of the keys layer, made
 * under fs->lock (fs_exclusive), queued for its sync like ours */
void fs_keys_committed(void *fs);
/* Without fs->lock: wait until a sync under way (another thread's) is
 * done; 0 or the -errno of a failed one (an fsync's last step). */
int fs_wait_durable(struct fs *fs);
/*
 * Open the group transaction if needed (catching up with commits other
 * processes made: their roots become ours and the caches are dropped) and
 * start counting the op's changes (no savepoint: see fs_tx.c).
 */
int fs_op_begin(struct fs *fs);
/* End the op with result rc: a failure after the op changed rows (or a
 * transaction SQLite dropped) rolls the whole group back. Returns rc. */
int fs_op_end(struct fs *fs, int rc);
/* Roll the group transaction back and forget what depended on it. */
void fs_abort_locked(struct fs *fs);
/* Fold the inode and entry trees if changed (their roots into fs). */
int fs_fold_roots(struct fs *fs);
/* Fold the trees, append the commit record and commit (fs->lock held). */
int fs_commit_locked(struct fs *fs);
/* Another process committed: take the head's roots, drop the caches. */
int fs_catch_up(struct fs *fs);
/*
 * Between transactions, or just after unlock_begin opened one: make the
 * working roots those of u's head (the head just verified), whoever moved
 * it (another process, or a commit of this process's keys layer that did
 * not pass through the filesystem: a command's own record, a login). The
 * caches are kept when the roots did not move. 0 or -errno.
 */
int fs_head_sync(struct fs *fs);
/* Operations take the lock (and outside a group transaction one read
 * transaction for the whole operation) with fs_lock, and leave with
 * fs_unlock. c selects the acting session (fs->actor, fs->kr). */
void fs_lock(struct fs *fs, const struct fs_ctx *c);
/* 0, or -errno of a failed sync (fs_lock_release) */
int fs_unlock(struct fs *fs);
/* fs_lock, then commit an open group transaction, so that what follows
 * reads rows and roots of one signed state (check): 0, or the commit's
 * error (the lock is held either way; leave with fs_unlock). */
int fs_lock_committed(struct fs *fs, const struct fs_ctx *c);
/* Under fs->lock: act for c from now on (fs->actor, fs->kr), as fs_lock
 * chose (an operation on two handles: copy_file_range). */
void fs_act(struct fs *fs, const struct fs_ctx *c);

/* ---- refs.c ---- */
struct fs_ref *fs_ref_get(struct fs *fs, uint64_t ino, int create);
void fs_ref_put_if_unused(struct fs *fs, struct fs_ref *r);
void fs_ref_lookup(struct fs *fs, uint64_t ino);
/* 1 if the kernel still refers to ino (looked up or open). */
int fs_ref_held(struct fs *fs, uint64_t ino);
/* The acting session may change files now: 0, -EACCES (no session, or
 * it ended), -EROFS (a read-only mount, no active key, a role that does
 * not write). (fs_ops.c) */
int fs_may_write(struct fs *fs);
/* ... may see names, attributes and data: 0 or -EACCES (no session, an
 * ended one, an auditor's). */
int fs_may_read(struct fs *fs);
/* statvfs of the filesystem holding the store (fs_ops.c). */
int fs_backing_statvfs(struct fs *fs, struct statvfs *sv);
/* Who signs a row the acting session makes: itself if it can sign, else
 * (a request without a session, an ended one) the mount's own. */
struct session *fs_recorder(struct fs *fs, struct session *ss);
void fs_refs_free(struct fs *fs);
/* A growing list of inode numbers (refs.c): the inodes an operation frees
 * or counts once it knows it may. fs_inos_room makes room for one more
 * (0 or -ENOMEM), fs_inos_add appends one. */
struct fs_inos {
	uint64_t *v;
	size_t n, cap;
};
int fs_inos_room(struct fs_inos *l);
int fs_inos_add(struct fs_inos *l, uint64_t ino);
void fs_inos_free(struct fs_inos *l);

/* ---- pathcache.c ---- */
/* Path of dir joined with name (name NULL: path of dir) into buf. */
void fs_path_of(struct fs *fs, uint64_t dir, const char *name, char *buf,
                size_t cap);
/* A file's path changed: drop its entry; a directory's: all of them. */
void fs_path_forget(struct fs *fs, uint64_t ino, int dir);
void fs_paths_free(struct fs *fs);
/*
 * Record an operation in the trail, attributed to the acting session
 * (no-op without a trail): path as given, or, when NULL, the path of ino.
 * A failure to record makes the caller's operation fail (fail closed):
 * the return value is the op's result, or the recording error.
 */
int fs_audit(struct fs *fs, const struct fs_ctx *c, const char *op,
             uint64_t ino, const char *path, uint64_t off, uint64_t len,
             int64_t result);
/* Write the pending coalesced read row (opening the group transaction if
 * needed). */
int fs_read_flush(struct fs *fs);

/* ---- inode.c ---- */
/* The inode's leaf in the inode tree. */
void inode_leaf(const struct store_inode *in, uint8_t leaf[MTREE_HASH_BYTES]);
/* Load an inode: from this transaction's changes, the verified cache, or
 * the store checked against the tree: -ENOENT, -EIO (not the signed one). */
int inode_load(struct fs *fs, uint64_t ino, struct store_inode *in);
/* Write back (and remember as changed in this transaction). */
int inode_save(struct fs *fs, struct store_inode *in);
/* A new inode with the next inode number of the signed state. */
int inode_alloc(struct fs *fs, const struct fs_ctx *c, uint32_t mode,
                uint64_t rdev, struct store_inode *out);
void inode_to_attr(const struct fs *fs, const struct store_inode *in,
                   struct fs_attr *out);
/* Drop one link; frees the inode when it has no link and the kernel
 * holds no reference (held). */
int inode_unlink(struct fs *fs, struct store_inode *in, int held);
/* Free ino if it has no link and is not held. */
int inode_maybe_free(struct fs *fs, uint64_t ino, int held);
void inode_touch(struct store_inode *in, int a, int m, int c);
/* Clear set-user-ID and set-group-ID of in, and its file capability (on a
 * direct-I/O write: c->direct_io), as the VFS would for c (fs_kill_privs):
 * INODE_KILL_DATA when a regular
 * file's data changes, INODE_KILL_OWNER when a non-directory's owner or
 * group is about to change. Inside the write transaction; in changes (the
 * caller saves). 1 if the mode changed, 0, or -errno (the xattr set did
 * not verify). */
#define INODE_KILL_DATA  1
#define INODE_KILL_OWNER 2
int inode_kill_privs(struct fs *fs, struct store_inode *in,
                     const struct fs_ctx *c, int why);
/* The transaction's changed inodes: fold their block trees and put their
 * leaves (commit), or forget them (abort). */
int inode_fold_all(struct fs *fs);
void inode_forget_dirty(struct fs *fs);
/* Drop the verified cache (another process committed). */
void inode_cache_clear(struct fs *fs);

/* ---- dir.c ---- */
void dentry_leaf(const struct store_dentry *d, uint8_t leaf[MTREE_HASH_BYTES]);
/* Check a dentry row against the entry tree: 0 or -EIO. */
int dir_verify(struct fs *fs, const struct store_dentry *d);
/* The first signed entry naming ino (its parent's), rows that are not
 * the signed ones (planted beside it) passed over: 0, -ENOENT if no row
 * names it, -EIO if none that does is signed. */
int dir_entry_of(struct fs *fs, uint64_t ino, struct store_dentry *out);
/* Find name in dir; fills *d on success. */
int dir_find(struct fs *fs, const struct store_inode *dir, const char *name,
             struct store_dentry *d);
/* Add name -> ino to dir (its nentries rises: the caller saves dir). */
int dir_add(struct fs *fs, struct store_inode *dir, const char *name,
            uint64_t ino);
/* Remove the entry d from dir (nentries falls: the caller saves dir). */
int dir_remove(struct fs *fs, struct store_inode *dir,
               const struct store_dentry *d);
/* Decrypt a dentry's name into buf (FS_NAME_MAX + 1). */
int dir_name(struct fs *fs, const struct store_inode *dir,
             const struct store_dentry *d, char *buf);
/* Re-encrypt a dentry's name under the active version (rename exchange,
 * reencrypt), same id. */
int dir_reseal(struct fs *fs, const struct store_inode *dir,
               struct store_dentry *d, const char *name);

/* ---- blockio.c ---- */
ssize_t blockio_read(struct fs *fs, const struct store_inode *in, char *buf,
                     size_t size, uint64_t off);
/*
 * Staged reads: blockio_stage copies a read's ciphertext, its leaves and
 * keys under fs->lock; blockio_unstage authenticates and decrypts into buf
 * without the lock and wipes the keys. blockio_stage returns the bytes the
 * read delivers, -EAGAIN when it does not fit (use blockio_read), or an
 * error. A stage is handed out under fs->lock (blockio_stage_hold).
 */
struct read_stage;
struct read_stage *blockio_stage_new(uint32_t bs, size_t max_bytes);
void blockio_stage_free(struct read_stage *st);
int blockio_stage_busy(const struct read_stage *st);
void blockio_stage_hold(struct read_stage *st, int busy);
ssize_t blockio_stage(struct fs *fs, const struct store_inode *in,
                      struct read_stage *st, size_t size, uint64_t off);
ssize_t blockio_unstage(struct par *par, struct read_stage *st, char *buf);
/* blockio_unstage in two (par_begin/par_end): the helper starts on it and
 * this thread may do other work (nothing that touches st or buf; a
 * par_for on the same par runs inline) before _end joins in, waits and
 * returns what _unstage would. */
void blockio_unstage_begin(struct par *par, struct read_stage *st, char *buf);
ssize_t blockio_unstage_end(struct read_stage *st);
/*
 * A write of whole blocks in steps, for a caller that overlaps the
 * sealing with other work under the lock (copy_file_range):
 * blockio_run_prepare (off and n whole blocks, at most FS_STAGE_MAX
 * bytes) reads the tree and derives the keys; blockio_run_seal posts the
 * seals to the fs's helper (par.h) and returns at once: until
 * blockio_run_sealed (this thread joins in and waits) the caller may do
 * store work that leaves this file's blocks, the plaintext and the fs's
 * key slots alone (a par_for on fs->par meanwhile runs inline: the
 * helper is this run's);
 * blockio_run_store (sealed first if need be) stores the run, grows the
 * size to its end and wipes the keys, as blockio_write does. After a
 * prepare that returned 0 comes a store or blockio_run_cancel.
 */
int blockio_run_prepare(struct fs *fs, const struct store_inode *in,
                        uint64_t off, const uint8_t *plain, size_t n);
void blockio_run_seal(struct fs *fs);
void blockio_run_sealed(struct fs *fs);
int blockio_run_store(struct fs *fs, struct store_inode *in);
void blockio_run_cancel(struct fs *fs);
/* The buffers of the batched sealing path, freed (fs_destroy). */
void blockio_seal_free(struct fs *fs);
/* Writes and updates in->size, in->nblocks (caller saves the inode). */
ssize_t blockio_write(struct fs *fs, struct store_inode *in, const char *buf,
                      size_t size, uint64_t off);
/* Shrink or grow to size (caller saves the inode). */
int blockio_truncate(struct fs *fs, struct store_inode *in, uint64_t size);
/* Zero [off, off + len) clipped to the size: whole blocks become holes
 * (rows deleted, leaves emptied), partial ones are rewritten with zeros
 * in place (one left all zeros becomes a hole). Caller saves the inode. */
int blockio_zero(struct fs *fs, struct store_inode *in, uint64_t off,
                 uint64_t len);
/* SEEK_DATA (data 1) or SEEK_HOLE (data 0) from off, from the signed block
 * tree: *out is the answer; -ENXIO at or past the end, or (SEEK_DATA) when
 * only holes follow. Data is reported per block (a stored block is data
 * even where it holds zeros); the end of file is a hole. */
int blockio_seek(struct fs *fs, const struct store_inode *in, uint64_t off,
                 int data, uint64_t *out);
/* How many blocks of [first, end) are stored (signed non-empty leaves). */
int blockio_stored_in(struct fs *fs, const struct store_inode *in,
                      uint64_t first, uint64_t end, uint64_t *count);
/* Re-seal one block under the active version (reencrypt). */
int blockio_rekey(struct fs *fs, struct store_inode *in, uint64_t blk);
/* Authenticate one stored block against its leaf (check): 0 or -EIO. */
int blockio_verify(struct fs *fs, const struct store_inode *in, uint64_t blk,
                   uint32_t version, const void *data, size_t len,
                   const uint8_t leaf[MTREE_HASH_BYTES]);
/* The leaf a stored block should have: its tag (cipher 2) or its hash
 * (cipher 1); -EIO if malformed. */
int blockio_leaf(struct fs *fs, uint32_t version, const void *data,
                 size_t len, uint8_t leaf[MTREE_HASH_BYTES]);

/* ---- xattr.c ---- */
/* Inside an operation (fs->lock; a change inside the group transaction):
 * one xattr of in by name, any namespace. xattr_get: the value's length
 * (cap 0: only that), -ENODATA, -ERANGE. xattr_set / xattr_remove change
 * in->xdigest and ctime: the caller saves in. */
ssize_t xattr_get(struct fs *fs, const struct store_inode *in,
                  const char *name, void *value, size_t cap);
int xattr_set(struct fs *fs, struct store_inode *in, const char *name,
              const void *value, size_t size, int flags);
int xattr_remove(struct fs *fs, struct store_inode *in, const char *name);
/*
 * Authenticate every xattr of in against its digest (check): 0 or -EIO;
 * *strays counts the rows stored beside the signed set (planted: never
 * served, never folded into a digest).
 */
int xattr_check(struct fs *fs, const struct store_inode *in, size_t *strays);
/* The same, and stray rows are damage too: 0 or -EIO. */
int xattr_verify(struct fs *fs, const struct store_inode *in);
/* Delete the rows stored beside in's signed set (check --repair);
 * *dropped counts them. 0, or -EIO if the signed set is not there. */
int xattr_drop_strays(struct fs *fs, const struct store_inode *in,
                      size_t *dropped);
/* The digest of the xattr rows stored for ino, as they are (upgrade:
 * the digest its inode row is to carry). */
int xattr_digest_rows(struct fs *fs, uint64_t ino,
                      uint8_t out[MTREE_HASH_BYTES]);
/* Re-seal the xattrs of in under the active version (reencrypt); the
 * caller saves in (its digest changes). */
int xattr_rekey(struct fs *fs, struct store_inode *in);


/* ---- acl.c: POSIX ACLs (fs->posix_acl) ---- */
#define ACL_NAME_ACCESS  "system.posix_acl_access"
#define ACL_NAME_DEFAULT "system.posix_acl_default"
/* 1 for the two ACL names, else 0. */
int acl_name(const char *name);
/* A new inode of *mode in dir: the umask, or the parent's default ACL
 * (masked by the mode, which it then masks), as the kernel's
 * posix_acl_create. acl_inherit stores what was decided on the new
 * inode once it exists (the caller saves it). */
struct acl_new {
	uint8_t *access, *dflt;       /* xattr values to store, or NULL */
	size_t access_len, dflt_len;
};
int acl_create(struct fs *fs, const struct store_inode *dir, uint32_t *mode,
               uint32_t umask, struct acl_new *out);
int acl_inherit(struct fs *fs, struct store_inode *in,
                const struct acl_new *n);
void acl_new_free(struct acl_new *n);
/* Set an ACL xattr of in (the mode follows an access ACL; an access ACL
 * the mode says in full is not kept). Caller saves in. */
int acl_set(struct fs *fs, struct store_inode *in, const char *name,
            const void *value, size_t size, int flags);
/* chmod: an access ACL follows the new mode (owner, mask or group, other). */
int acl_chmod(struct fs *fs, struct store_inode *in);

#endif
