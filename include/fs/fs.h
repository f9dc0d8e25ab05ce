/*
 * fs.h - the filesystem layer: inodes, directories, block I/O and xattrs on
 * top of the store and the keys layer. Knows nothing about FUSE: fsops.c
 * translates requests into these calls, and custodyctl (check, reencrypt)
 * and the unit tests call them directly.
 *
 * Every object read from the store is checked against the Merkle trees of
 * the newest verified commit before it is used (mtree.h, ledger.h): a
 * block, entry, inode or xattr that was forged with a data key or put back
 * from an older copy gives -EIO for that object. Every group transaction
 * ends in a commit record signed by the sessions whose requests it holds.
 *
 * Every function returns 0 (or a byte count) on success and -errno on
 * failure, with Linux's errno for each case (ENOENT, EEXIST, ENOTEMPTY,
 * EISDIR, ENOTDIR, EINVAL, ENAMETOOLONG, ENODATA, ERANGE, EROFS, ...).
 * A row that fails authentication gives -EIO for that object only.
 *
 * Concurrency: one mutex (fs->lock) serialises every call; SQLite sees one
 * thread at a time. Mutations run in a group transaction that fs_tick()
 * commits every commit_interval, and fs_fsync() at once; an operation that
 * fails after changing rows rolls the group back (fs.c).
 */
#ifndef CUSTODY_FS_H
#define CUSTODY_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/statvfs.h>
#include <time.h>

#define FS_NAME_MAX   255
#define FS_PATH_MAX   4096
#define FS_XATTR_NAME_MAX 255
#define FS_XATTR_SIZE_MAX 65536
#define FS_XATTR_LIST_MAX 65536 /* all of a file's names, NUL-ended */

struct fs;
struct unlocked;
struct session;
struct ledger_state;

/* Who is asking: recorded in the audit trail, owner of new files. The
 * store session the request is served under is ss if set; else, with a
 * session resolver (fs_opts.session_of), the one it gives for (uid, sid)
 * (sid: the session that opened the file handle, 0: the uid's); else the
 * mount's own. Its role is checked and only its keys are used; a request
 * without a session gets EACCES. */
struct fs_ctx {
	uint32_t uid, gid, pid;
	struct session *ss;
	int64_t sid;
	/* for clearing set-user-ID and set-group-ID (fs_kill_privs): 1 when
	 * the kernel said the caller lacks CAP_FSETID, 0 when it said nothing
	 * (so the caller holds it), -1 when the operation carries no word
	 * (ask->has_fsetid) */
	int no_fsetid;
	/* what the request does not carry, asked only when needed (NULL: no
	 * one to ask: the gid is the only group, CAP_FSETID held) */
	const struct fs_caller *ask;
	void *req;
	/* the kernel writing back cached pages, no caller's write: nothing
	 * is cleared */
	int page_writeback;
	/* a direct-I/O write, before which the kernel did not remove a file
	 * capability itself (it does before every other change): the
	 * filesystem does */
	int direct_io;
};

struct fs_caller {
	int (*in_group)(void *req, uint32_t gid); /* 1: one of the caller's */
	int (*has_fsetid)(void *req);             /* 1: it holds CAP_FSETID */
};

struct fs_attr {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, blocks /* 512-byte units */, rdev;
	uint32_t blksize;
	struct timespec atime, mtime, ctime;
	uint64_t generation;
};

struct fs_opts {
	int read_only;
	int shared;             /* another process owns the mount: custodyctl
	                           (no orphan sweep, no checkpoints) */
	int64_t commit_interval_ms;
	int64_t idle_checkpoint_ms;
	int64_t audit_flush_ms;  /* longest a coalesced read row may wait */
	const char *store_path; /* for statfs of the backing filesystem */
	/* one line about something the layer cannot return (a planted purge
	 * entry, a row that could not be recorded); NULL: dropped. The
	 * layers never print themselves. */
	void (*warn)(const char *line);
	/* several users' sessions on one mount (custodyfs -o allow_other):
	 * the session serving (uid, sid), NULL: none (EACCES). Called under
	 * the filesystem lock; a session it returns stays valid until the
	 * lock is released (sessions end and are freed only in fs_exclusive). */
	struct session *(*session_of)(void *arg, uint32_t uid, int64_t sid);
	void *session_arg;
};

/* What fs_setattr changes (bit set in `valid`). */
enum {
	FS_SET_MODE = 1, FS_SET_UID = 2, FS_SET_GID = 4, FS_SET_SIZE = 8,
	FS_SET_ATIME = 16, FS_SET_MTIME = 32, FS_SET_ATIME_NOW = 64,
	FS_SET_MTIME_NOW = 128, FS_SET_CTIME = 256,
	/* the kernel asks for set-user-ID/-group-ID to be cleared
	 * (fs_kill_privs): with SIZE the caller lacks CAP_FSETID; alone,
	 * its privilege removal (a chown of nothing, before a copy) */
	FS_SET_KILL_PRIVS = 512,
};

/*
 * Create the root directory of a new store inside the caller's open
 * transaction (unlock_begin), and give the roots and next inode number
 * for its first commit in st.
 */
int fs_format(struct unlocked *u, uint32_t uid, uint32_t gid,
              uint32_t block_size, struct ledger_state *st);

/* Attach to an unlocked store (its session is the mount's own). Sweeps
 * orphans left by a crash (read-write mounts). The fs borrows u. */
int fs_new(struct unlocked *u, const struct fs_opts *o, struct fs **out);
/* Commit everything and detach. */
int fs_free(struct fs *fs);
/* Inside fs_exclusive: every commit of this mount is on disk (none waits
 * for its sync, none is being synced), so this host's local state may
 * record the head. */
int fs_durable_locked(struct fs *fs);
/* Inside fs_exclusive: make every commit of this mount durable now,
 * under the lock. 0 or -errno. */
int fs_sync_locked(struct fs *fs);

/*
 * Periodic work (every ~100 ms): group commit when due, WAL checkpoint
 * after idle time, audit flush, purging. Returns 1 if the fs is idle.
 *
 * Purging: a freed file's blocks and block tree leave the store after the
 * file does, at most FS_PURGE_BATCH blocks at a time (the queue is the
 * store's purge table, so the work survives a crash and the next
 * read-write fs carries on). While requests come, a tick purges one batch
 * inside the group transaction; when none came since the last tick, it
 * purges batches back to back, each in a transaction of its own ending in
 * a signed commit, until the queue is empty, a request arrives or about a
 * second has passed. The idle checkpoint then empties the WAL (TRUNCATE):
 * a reader's snapshot in another process delays it (it is retried every
 * tick, and after a few seconds fs_opts.warn says so once), as does
 * another process's commit found in the WAL while idle.
 */
#define FS_PURGE_BATCH 4096
int fs_tick(struct fs *fs);
/*
 * Purge everything queued, each batch in a group transaction of its own
 * ending in a signed commit (unmount, compact). progress (may be NULL)
 * sees the blocks deleted so far and the total queued when it began
 * (counted only when progress is given) after each batch; a non-zero
 * return stops with -ECANCELED, the rest staying queued. Returns 0 once
 * the queue is empty, -EROFS on a read-only fs, or -errno (the batch in
 * progress is rolled back; what was committed stays purged).
 */
typedef int (*fs_progress_fn)(void *arg, uint64_t done, uint64_t total);
int fs_purge_all(struct fs *fs, fs_progress_fn progress, void *arg);
/* Commit the group transaction now. */
int fs_commit(struct fs *fs);
/*
 * Run fn with the filesystem lock held and no transaction open (the group
 * transaction is committed first): for work that changes what the layers
 * below hold, such as reloading keys after a rotation. fn's result is
 * returned.
 */
int fs_exclusive(struct fs *fs, int (*fn)(void *arg), void *arg);
/* The inodes the kernel refers to (looked up or open), at most cap into
 * out; returns how many there are (for invalidating its caches). */
size_t fs_referenced(struct fs *fs, uint64_t *out, size_t cap);

/*
 * 1 when the filesystem must stop: a row of an operation already answered
 * (a coalesced read) could not be recorded, or the store failed
 * verification under the mount; 2 when another process cut the store's
 * -shm file short under it (store_shm_cut: nothing was said yet). *why
 * receives one line.
 */
int fs_fatal(struct fs *fs, const char **why);
/* 1 (once) when a group transaction was rolled back since the last call:
 * what the kernel caches of its work is gone from the store. */
int fs_take_rollback(struct fs *fs);
/* From a function fs_exclusive runs: the filesystem must stop (fs_fatal). */
void fs_fail_locked(struct fs *fs);

/*
 * With the kernel's writeback cache the kernel owns mtime and ctime of
 * written files (it sends them with SETATTR); writes then leave them alone
 * instead of racing it with the daemon's clock.
 */
void fs_kernel_times(struct fs *fs, int on);

/* Milliseconds since the last request (for idle unmount). */
int64_t fs_idle_ms(struct fs *fs);

/* Lookup increments the kernel's reference count on the result. */
int fs_lookup(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, struct fs_attr *out);
void fs_forget(struct fs *fs, uint64_t ino, uint64_t nlookup);
/* The kernel's connection ended (unmount, abort): its lookups and handles
 * went with it, unforgotten. Files unlinked while referenced are freed
 * (queued for purge) as their last FORGET would have, then the group
 * commits. 0 or -errno of the commit. */
int fs_kernel_gone(struct fs *fs);
int fs_getattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               struct fs_attr *out);
int fs_setattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               const struct fs_attr *in, int valid, struct fs_attr *out);

/* Creation: the result's reference count is incremented, as lookup.
 * umask: the caller's, applied here when ACLs are on (fs_posix_acl) and
 * the parent has no default ACL; otherwise ignored (the kernel applied
 * it to mode). */
int fs_mknod(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, uint32_t umask, uint64_t rdev,
             struct fs_attr *out);
int fs_mkdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, uint32_t umask,
             struct fs_attr *out);
int fs_symlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
               const char *name, const char *target, struct fs_attr *out);
int fs_link(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
            uint64_t newparent, const char *newname, struct fs_attr *out);
int fs_unlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name);
int fs_rmdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name);
#define FS_RENAME_NOREPLACE 1
#define FS_RENAME_EXCHANGE  2
int fs_rename(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, uint64_t newparent, const char *newname,
              unsigned flags);
/* Returns the target length; buf gets it NUL-terminated (cap > length). */
int fs_readlink(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t cap);

/* Open/close bookkeeping (an unlinked file lives until its last close).
 * flags are open(2) flags; O_TRUNC truncates. *sid (may be NULL) gets the
 * id of the session the open was served under: requests on the handle
 * pass it back in fs_ctx.sid. */
int fs_open(struct fs *fs, const struct fs_ctx *c, uint64_t ino, int flags,
            int64_t *sid);
/* flags: the open's (a handle open for writing stops counting). */
void fs_release(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                int flags);
ssize_t fs_read(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t size, uint64_t off);
ssize_t fs_write(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                 const char *buf, size_t size, uint64_t off);
int fs_fsync(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
             int datasync);

/*
 * Directory listing from cookie off (0 at the start). fill is called per
 * entry with the cookie of the next one; a non-zero return stops (buffer
 * full) without consuming that entry. "." and ".." come first.
 * With plus (the kernel's READDIRPLUS), an entry whose inode verifies
 * also comes with its attributes (a NULL a: none, as for "." and ".."),
 * and every entry fill takes with attributes counts as a lookup (the
 * kernel forgets it like one).
 */
typedef int (*fs_fill_fn)(void *arg, const char *name, uint64_t ino,
                          uint32_t mode, const struct fs_attr *a,
                          int64_t next_off);
int fs_readdir(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               int64_t off, int plus, fs_fill_fn fill, void *arg);
int fs_opendir(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               int64_t *sid);

int fs_statfs(struct fs *fs, struct statvfs *out);

/*
 * fallocate(2). mode: 0 (reserve and extend the size), FS_FALLOC_KEEP_SIZE
 * (reserve only), FS_FALLOC_PUNCH | FS_FALLOC_KEEP_SIZE (the range reads
 * as zeros: whole blocks are deleted, partial ones zeroed in place),
 * FS_FALLOC_ZERO (the same, extending the size unless KEEP_SIZE). Nothing
 * is stored to reserve space: SQLite has no way to hold pages for a file.
 * Mode 0 and KEEP_SIZE check that the backing filesystem has room for
 * the range's unstored blocks now (-ENOSPC), which later writes are not
 * promised. Other modes (collapse, insert, unshare): -EOPNOTSUPP.
 * Recorded as "fallocate", "punch_hole" or "zero_range" (offset, length).
 */
#define FS_FALLOC_KEEP_SIZE 1
#define FS_FALLOC_PUNCH     2
#define FS_FALLOC_ZERO      4
int fs_fallocate(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                 int mode, uint64_t off, uint64_t len);

/*
 * lseek(2) SEEK_DATA (data 1) / SEEK_HOLE (data 0) from off, answered from
 * the signed block tree (a stored block is data, an unstored one a hole,
 * the end of file a hole): the offset into *out, or -ENXIO (off at or past
 * the end; SEEK_DATA in a final hole). kernel_pages: the kernel may hold
 * dirty mmap pages of a file open for writing (page-cache mounts); such a
 * file then gets the answer that calls it all data (off, or the size), so
 * data is never reported as a hole. Recorded as "seek_data"/"seek_hole"
 * (offset asked, length to the answer).
 */
int fs_seek(struct fs *fs, const struct fs_ctx *c, uint64_t ino, uint64_t off,
            int data, int kernel_pages, uint64_t *out);

/*
 * copy_file_range(2) inside the daemon: up to len bytes of ino_in at off_in
 * (decrypted under the source's keys, cin's session must read) into ino_out
 * at off_out (sealed under the target's keys, cout's session must write),
 * as read + write would, except that whole target blocks the source has as
 * zeros become holes. At most FS_COPY_MAX bytes per call (FS_COPY_BUF
 * when the two are one file or under two sessions; fewer past 4 MiB once
 * the call has held the lock 100 ms), in one operation
 * of the group transaction with one audit row "copy" (path "SOURCE ->
 * TARGET", or "SOURCE@SRCOFFSET -> TARGET" when the offsets differ; offset
 * and length the target's): returns the bytes copied (0 at the source's
 * end, fewer than len is normal) or -errno.
 */
#define FS_COPY_MAX (16u << 20)
ssize_t fs_copy_range(struct fs *fs, const struct fs_ctx *cin, uint64_t ino_in,
                      uint64_t off_in, const struct fs_ctx *cout,
                      uint64_t ino_out, uint64_t off_out, size_t len);

/*
 * POSIX ACLs (custodyfs declared FUSE_CAP_POSIX_ACL and the kernel enforces
 * them): system.posix_acl_access and system.posix_acl_default are stored
 * as sealed xattrs like the others, and the filesystem does what the
 * kernel then leaves to it: the umask or the parent's default ACL on
 * create (fs_mknod, fs_mkdir), the mode from an access ACL set and the ACL
 * mask from chmod, the set-group-ID bit cleared by an ACL set of a caller
 * outside the file's group (FS_XATTR_ACL_KILL_SGID). Off: those names are
 * refused (-EOPNOTSUPP) and the umask argument is ignored.
 */
void fs_posix_acl(struct fs *fs, int on);

/*
 * Set-user-ID and set-group-ID cleared here (the kernel took
 * FUSE_HANDLE_KILLPRIV_V2, src/fuse/wire.c), by the VFS's rules: when a
 * regular file's data changes (write, truncate, O_TRUNC, fallocate, a copy
 * into it) by a caller without CAP_FSETID, set-user-ID, and set-group-ID
 * if the group may execute or the caller is not in the file's group; when
 * a non-directory's owner or group changes, set-user-ID, and set-group-ID
 * if the group may execute or the caller is neither in the group nor holds
 * CAP_FSETID. File capabilities (security.capability) the kernel still
 * removes itself. Off: the kernel clears the bits (a SETATTR of the mode).
 */
void fs_kill_privs(struct fs *fs, int on);

#define FS_XATTR_CREATE  1
#define FS_XATTR_REPLACE 2
/* setting system.posix_acl_access: the caller is neither in the file's
 * group nor privileged, so set-group-ID goes (as the kernel's own flag) */
#define FS_XATTR_ACL_KILL_SGID 4
int fs_setxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                const char *name, const void *value, size_t size, int flags);
/* size 0: return the value's length. -ERANGE if it does not fit. */
ssize_t fs_getxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                    const char *name, void *value, size_t size);
/* NUL-separated names; size 0: return the needed length. */
ssize_t fs_listxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                     char *list, size_t size);
int fs_removexattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                   const char *name);

/*
 * Check: authenticate and decrypt everything (every inode MAC, block,
 * name, xattr, symlink), and check the tree: reachability from the root,
 * link counts, orphans, directories with more than one parent, stored
 * blocks against each inode's count and size, rows no signed object holds
 * (planted blocks and xattrs, keys that are no integers). problem() is
 * called once per finding with the inode, its path when known, and what
 * is wrong. An open group transaction of this fs is committed first, so
 * the rows checked are those of one signed state.
 *
 * With repair set (a read-write fs nobody else writes to), what can be
 * fixed without guessing is fixed first, each change reported through
 * repaired(): entries naming nothing are dropped, files unlinked while
 * open are removed, orphans are linked into /lost+found as "#<ino>", link
 * counts are corrected, and with zero_unreadable blocks that fail
 * authentication (or lie past the end, or are missing) are dropped so they
 * read as zeros. Anything forged (an inode, name or xattr failing its MAC)
 * is left as it is. problem() then reports what is still wrong.
 *
 * With live_writer set (a read-write mount holds the store now: its
 * writer lock is taken), a file unlinked while open is what that mount
 * still serves, not damage: note() (may be NULL) is told instead of
 * problem().
 *
 * Returns the number of problems left, or -errno if the check could not run.
 */
struct fs_check_ops {
	void (*problem)(void *arg, uint64_t ino, const char *path,
	                const char *what);
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *arg;
	int repair, zero_unreadable;
	void (*repaired)(void *arg, uint64_t ino, const char *path,
	                 const char *what);
	int live_writer;
	void (*note)(void *arg, uint64_t ino, const char *path,
	             const char *what);
};
struct fs_check_stats {
	uint64_t inodes, files, dirs, symlinks, blocks, bytes, names, xattrs;
};
int fs_check(struct fs *fs, const struct fs_check_ops *ops,
             struct fs_check_stats *stats);

/*
 * Re-encryption: move up to `limit` objects (blocks, names, xattrs, inode
 * MACs) still under versions older than the active one to the active
 * version, in one transaction. *moved counts objects, *bytes the content
 * bytes rewritten. Returns 0 (with *moved 0 when nothing is left) or
 * -errno. Safe while the store is mounted elsewhere: each step is atomic.
 */
int fs_reencrypt_step(struct fs *fs, size_t limit, uint64_t *moved,
                      uint64_t *bytes);
/* Objects under versions older than the active one (full: by the tables,
 * not their indexes; store_key_usage). */
int fs_reencrypt_remaining(struct fs *fs, int full, uint64_t *objects);
/* The roots and next inode number the filesystem's next commit carries
 * (into st; the rest of st untouched). */
void fs_state(struct fs *fs, struct ledger_state *st);

#endif
