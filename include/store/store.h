/*
 * store.h - the SQLite store: schema, transactions and typed row access.
 *
 * Only store*.c include sqlite3.h. Callers see rows as C structs and blobs;
 * everything cryptographic is done above this layer, so every blob handed in
 * here is already ciphertext, tag or MAC. Every length read back from the
 * file is checked against the caller's buffer (a hostile store cannot
 * overflow anything): an oversized value is reported as -EIO.
 *
 * Errors: 0 on success or -errno: -ENOENT (no such row), -EEXIST (unique
 * key taken), -EBUSY (locked by another process past the busy timeout),
 * -EIO (SQLite error or a malformed row), -ENOSPC (disk full).
 *
 * A struct store is not thread-safe: one thread at a time (the filesystem
 * layer serialises with its own lock).
 */
#ifndef CUSTODY_STORE_H
#define CUSTODY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT_VERSION 1
#define STORE_FILE_ID_BYTES  16
#define STORE_TAG_BYTES      32
#define STORE_MAC_BYTES      32
#define STORE_PAGE_SIZE      65536 /* 4 KiB blocks fit inline; see README */
#define STORE_ROOT_INO       1

struct store;

enum store_open_flags {
	STORE_CREATE = 1,   /* create a new file (O_EXCL): init only */
	STORE_READONLY = 2, /* open read-only (check, audit list, info) */
};

/*
 * Open path. With STORE_CREATE the file must not exist and the schema is
 * created. Without it, the file must be an existing custodyfs store of a
 * format this binary understands: -ENOENT (missing), -ENOTSUP (not a
 * custodyfs store or damaged header), -EPROTO (newer format).
 * busy_ms: how long to wait for another process's lock.
 */
int store_open(const char *path, int flags, int busy_ms, struct store **out);
/* Commits nothing: callers commit first. Checkpoints the WAL if idle. */
void store_close(struct store *s);
/* Last SQLite error text, for messages. */
const char *store_errmsg(struct store *s);

/* Transactions. begin is BEGIN IMMEDIATE (takes the write lock). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
/* Rows changed by this connection so far (an operation's own count is the
 * difference), and whether a transaction is open (SQLite may have rolled
 * one back by itself after an I/O error or a full disk). */
int64_t store_changes(struct store *s);
int store_in_tx(struct store *s);
/* Why a transaction was lost: -ENOSPC (disk full) or -EIO. */
int store_tx_lost_errno(struct store *s);
int store_in_transaction(struct store *s);
/* Savepoints make one filesystem operation atomic inside a group commit. */
int store_savepoint(struct store *s);
int store_release(struct store *s);
void store_rollback_savepoint(struct store *s);
/*
 * Fold the WAL in from a background thread with its own connection
 * (store_ckpt.c) instead of in the committing thread: for a read-write
 * mount. Stopped by store_checkpointer_stop or store_close.
 */
int store_checkpointer_start(struct store *s, const char *path);
void store_checkpointer_stop(struct store *s);

/*
 * A read transaction around a run of reads outside the group transaction:
 * one WAL read lock for the run instead of one per statement (SQLite
 * takes and drops it with fcntl calls on every autocommit statement: 104
 * a MiB read before). Nothing may be written inside it. store_read_begin
 * gives -EBUSY, and store_read_end does nothing, inside a transaction.
 */
int store_read_begin(struct store *s);
void store_read_end(struct store *s);

/* Checkpoint the WAL into the main file (TRUNCATE mode). */
int store_checkpoint(struct store *s);
/* Page size, page count and free pages, WAL size (for info). */
int store_file_stats(struct store *s, uint64_t *pages, uint64_t *page_size,
                     uint64_t *free_pages);
int store_integrity_check(struct store *s, char *msg, size_t cap);

/* ---- meta: small named values ---- */
int store_meta_get(struct store *s, const char *key, void *buf, size_t cap,
                   size_t *len /* OUT */);
int store_meta_set(struct store *s, const char *key, const void *val,
                   size_t len);
int store_meta_get_int(struct store *s, const char *key, int64_t *v /* OUT */);
int store_meta_set_int(struct store *s, const char *key, int64_t v);

/* ---- inodes ---- */
struct store_inode {
	uint64_t ino;
	uint8_t file_id[STORE_FILE_ID_BYTES];
	uint32_t key_version; /* version whose key MACs this row */
	uint32_t mode, uid, gid, nlink;
	uint64_t size;        /* bytes (symlink: target length) */
	uint64_t nblocks;     /* stored (non-hole) blocks, so deletions show */
	uint64_t rdev;
	int64_t atime, mtime, ctime; /* nanoseconds since the epoch */
	uint64_t generation;
	uint8_t mac[STORE_MAC_BYTES];
};
int store_inode_get(struct store *s, uint64_t ino, struct store_inode *out);
/* Insert with a new inode number (written to in->ino). */
int store_inode_insert(struct store *s, struct store_inode *in);
int store_inode_update(struct store *s, const struct store_inode *in);
/* Delete the inode and its xattrs; its blocks are queued for purging. */
int store_inode_delete(struct store *s, uint64_t ino);
/*
 * Delete up to limit blocks of one purged inode. Returns 1 if there was
 * work (*deleted counts blocks), 0 when the queue is empty, or -errno.
 */
int store_purge_step(struct store *s, size_t limit, uint64_t *deleted);
/* Call fn for every inode (check, reencrypt, orphan sweep). fn returns
 * non-zero to stop; that value is returned. */
int store_inode_each(struct store *s, int (*fn)(void *arg,
                     const struct store_inode *in), void *arg);
int store_inode_count(struct store *s, uint64_t *files, uint64_t *dirs,
                      uint64_t *bytes);

/* ---- directory entries ---- */
#define STORE_NAME_MAX 1024 /* ciphertext of a 255-byte name fits easily */
struct store_dentry {
	int64_t id;          /* stable cursor for readdir */
	uint64_t parent;
	uint8_t tag[STORE_TAG_BYTES];
	uint32_t key_version;
	uint8_t name[STORE_NAME_MAX];
	size_t namelen;
	uint64_t ino;
};
int store_dentry_get(struct store *s, uint64_t parent,
                     const uint8_t tag[STORE_TAG_BYTES],
                     struct store_dentry *out);
int store_dentry_insert(struct store *s, const struct store_dentry *d);
int store_dentry_delete(struct store *s, uint64_t parent,
                        const uint8_t tag[STORE_TAG_BYTES]);
/* Rewrite an existing entry (by id): parent, tag, version, name, ino. */
int store_dentry_update(struct store *s, const struct store_dentry *d);
/* 1 if the directory has any entry, 0 if empty, or -errno. */
int store_dentry_any(struct store *s, uint64_t parent);
/* Entries of parent with id > after, in id order; fn non-zero stops. */
int store_dentry_each(struct store *s, uint64_t parent, int64_t after,
                      int (*fn)(void *arg, const struct store_dentry *d),
                      void *arg);
/* All entries of the store (check, reencrypt). */
int store_dentry_all(struct store *s,
                     int (*fn)(void *arg, const struct store_dentry *d),
                     void *arg);
/* One entry naming ino (to find a parent), -ENOENT if none. */
int store_dentry_of_ino(struct store *s, uint64_t ino,
                        struct store_dentry *out);

/* ---- content blocks ---- */
/*
 * fn sees the stored nonce||ciphertext||tag of one block in place (valid
 * only during the call: no copy on the read path) and its key version;
 * fn's result is returned, or -ENOENT for a hole.
 */
int store_block_with(struct store *s, uint64_t ino, uint64_t blk,
                     int (*fn)(void *arg, uint32_t key_version,
                               const void *data, size_t len), void *arg);
/* buf receives nonce||ciphertext||tag; -ENOENT for a hole. */
int store_block_get(struct store *s, uint64_t ino, uint64_t blk,
                    uint32_t *key_version /* OUT */, void *buf, size_t cap,
                    size_t *len /* OUT */);
/* Insert or replace; *created is 1 if the block did not exist. */
int store_block_put(struct store *s, uint64_t ino, uint64_t blk,
                    uint32_t key_version, const void *data, size_t len,
                    int *created /* OUT */);
/* Delete blocks with number >= first; *deleted counts them. */
int store_block_truncate(struct store *s, uint64_t ino, uint64_t first,
                         uint64_t *deleted /* OUT */);
/*
 * The first inode number above `after` that has blocks, and whether it is
 * queued for purging (check: blocks whose inode is gone). -ENOENT past the
 * last.
 */
int store_block_next_ino(struct store *s, uint64_t after, uint64_t *ino,
                         int *queued);
/* Queue an inode number's blocks for purging (check --repair). */
int store_purge_queue(struct store *s, uint64_t ino);
/* Delete one block (check --repair). */
int store_block_delete(struct store *s, uint64_t ino, uint64_t blk);
/* Blocks of ino in order (check); fn non-zero stops. */
int store_block_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, uint64_t blk, uint32_t kv,
                               const void *data, size_t len), void *arg);
int store_block_count(struct store *s, uint64_t *count);

/* ---- extended attributes ---- */
#define STORE_XATTR_MAX (65536 + 64)
struct store_xattr {
	uint64_t ino;
	uint8_t tag[STORE_TAG_BYTES];
	uint32_t key_version;
	const void *name;  /* ciphertext (points into statement memory) */
	size_t namelen;
	const void *value; /* ciphertext */
	size_t valuelen;
};
/* value is copied into buf (cap bytes); -ERANGE if it does not fit. */
int store_xattr_get(struct store *s, uint64_t ino,
                    const uint8_t tag[STORE_TAG_BYTES],
                    uint32_t *key_version /* OUT */, void *buf, size_t cap,
                    size_t *len /* OUT */);
int store_xattr_put(struct store *s, const struct store_xattr *x);
int store_xattr_delete(struct store *s, uint64_t ino,
                       const uint8_t tag[STORE_TAG_BYTES]);
/* Every xattr of ino; the pointers in *x are valid during fn only. */
int store_xattr_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, const struct store_xattr *x),
                     void *arg);

/* ---- users ---- */
#define STORE_USER_NAME_MAX 64
#define STORE_SECRET_MAX    256
struct store_user {
	int64_t id;
	char name[STORE_USER_NAME_MAX + 1];
	char role[16];
	uint64_t opslimit, memlimit;
	uint8_t salt[16];
	uint8_t box_pk[32];
	uint8_t secret[STORE_SECRET_MAX]; /* AEAD of the user's secret keys */
	size_t secretlen;
	uint8_t sig[64];                  /* authority signature over the row */
	int64_t failed;
	int64_t locked_until;             /* seconds since the epoch */
	int64_t created, last_login;
};
int store_user_get(struct store *s, const char *name, struct store_user *out);
int store_user_get_id(struct store *s, int64_t id, struct store_user *out);
int store_user_insert(struct store *s, struct store_user *u /* id OUT */);
int store_user_update(struct store *s, const struct store_user *u);
int store_user_delete(struct store *s, int64_t id);
int store_user_each(struct store *s,
                    int (*fn)(void *arg, const struct store_user *u),
                    void *arg);

/* ---- master key versions and grants ---- */
struct store_key {
	uint32_t version;
	char status[16];  /* active | decrypt-only | retired | destroyed */
	int64_t created, activated, expires, retired;
	uint8_t check[32]; /* MAC(K, "check"): commits the key */
	uint8_t audit_pk[32]; /* audit sealing key of this version */
	uint8_t sig[64];  /* authority signature over the row */
};
int store_key_get(struct store *s, uint32_t version, struct store_key *out);
int store_key_put(struct store *s, const struct store_key *k);
int store_key_each(struct store *s,
                   int (*fn)(void *arg, const struct store_key *k), void *arg);

#define STORE_GRANT_MAX 256
struct store_grant {
	int64_t user_id;
	uint32_t version;
	char kind[16];   /* data | authority | audit */
	uint8_t sealed[STORE_GRANT_MAX];
	size_t sealedlen;
};
int store_grant_get(struct store *s, int64_t user_id, uint32_t version,
                    const char *kind, struct store_grant *out);
int store_grant_put(struct store *s, const struct store_grant *g);
int store_grant_delete(struct store *s, int64_t user_id, int64_t version,
                       const char *kind); /* version/kind -1/NULL = all */

/* Rotation log. */
int store_key_event(struct store *s, int64_t time, const char *user,
                    const char *event, int64_t from, int64_t to,
                    const char *detail);

/*
 * Up to limit objects written under a version older than `below`, for
 * re-encryption. Keys are collected first, so fn may rewrite them.
 * kind: 'b' blocks (a = ino, b = blk), 'd' dentries (a = id),
 * 'x' xattrs (a = ino, tag), 'i' inodes (a = ino), 'k' audit keys (a = id).
 */
struct store_stale {
	int64_t a, b;
	uint8_t tag[STORE_TAG_BYTES];
};
int store_stale(struct store *s, char kind, uint32_t below, size_t limit,
                struct store_stale *out, size_t *n);
/* A dentry by id. */
int store_dentry_get_id(struct store *s, int64_t id, struct store_dentry *out);

/* Objects (blocks, names, xattrs) still under a key version. */
int store_key_usage(struct store *s, uint32_t version, uint64_t *objects);

/* ---- audit trail rows ---- */
#define STORE_DETAIL_MAX 8192
struct store_audit {
	int64_t seq;
	int64_t time;            /* ns since the epoch */
	char user[STORE_USER_NAME_MAX + 1];
	uint32_t uid, gid, pid;
	char op[24];
	uint64_t ino;
	uint64_t offset, length;
	int64_t result;
	int64_t session;         /* audit_keys id whose key seals detail */
	uint8_t detail[STORE_DETAIL_MAX];
	size_t detaillen;
	uint8_t mac[STORE_MAC_BYTES];
};
/* Append (seq assigned if 0). */
int store_audit_insert(struct store *s, struct store_audit *a);
/* The row with the highest seq: -ENOENT if the trail is empty. */
int store_audit_last(struct store *s, struct store_audit *out);
/* Rows with seq > after in order; fn non-zero stops. Malformed rows are
 * passed with op "" so the verifier can report them. */
int store_audit_each(struct store *s, int64_t after,
                     int (*fn)(void *arg, const struct store_audit *a),
                     void *arg);
int store_audit_count(struct store *s, uint64_t *n);
int store_audit_delete_before(struct store *s, int64_t seq);

/* Per-session audit keys, sealed to a version's audit public key. */
int store_audit_key_insert(struct store *s, uint32_t version,
                           const void *sealed, size_t len, int64_t *id);
int store_audit_key_get(struct store *s, int64_t id, uint32_t *version,
                        void *sealed, size_t cap, size_t *len);
int store_audit_key_update(struct store *s, int64_t id, uint32_t version,
                           const void *sealed, size_t len);

/* ---- mount sessions ---- */
struct store_mount {
	int64_t id;
	char user[STORE_USER_NAME_MAX + 1];
	char host[256];
	int64_t pid;
	char mountpoint[1024];
	int readonly;
	int64_t started, ended;   /* seconds since the epoch */
	char end_reason[64];
};
int store_mount_begin(struct store *s, struct store_mount *m /* id OUT */);
int store_mount_end(struct store *s, int64_t id, const char *reason);
/* Sessions not ended, in start order; fn non-zero stops. */
int store_mount_each_open(struct store *s,
                          int (*fn)(void *arg, const struct store_mount *m),
                          void *arg);

/* ---- authentication events waiting for the trail ---- */
int store_auth_event_add(struct store *s, int64_t time, const char *user,
                         const char *event, int64_t pid);
/* Hand each pending event to fn, then delete them all. */
int store_auth_event_take(struct store *s,
                          int (*fn)(void *arg, int64_t time, const char *user,
                                    const char *event, int64_t pid),
                          void *arg);

/* ---- Merkle tree groups (include/fs/mtree.h gives the meaning) ---- */
/*
 * One stored group of tree (kind, owner) at (level, idx): node is its
 * compact form (at most MTREE_NODE_MAX bytes). get gives -ENOENT for an
 * absent group and -EIO for one longer than cap.
 */
int store_mtree_get(struct store *s, int kind, uint64_t owner, int level,
                    uint64_t idx, void *buf, size_t cap, size_t *len /* OUT */);
int store_mtree_put(struct store *s, int kind, uint64_t owner, int level,
                    uint64_t idx, const void *node, size_t len);
int store_mtree_delete(struct store *s, int kind, uint64_t owner, int level,
                       uint64_t idx);
/* Delete the groups of one level with idx >= first_idx (truncation). */
int store_mtree_delete_from(struct store *s, int kind, uint64_t owner,
                            int level, uint64_t first_idx);
/* Delete every group of one tree (a freed file's block tree). */
int store_mtree_delete_owner(struct store *s, int kind, uint64_t owner);
/* Every stored group of one tree, by (level, idx); fn non-zero stops. The
 * node pointer is valid during the call only. */
int store_mtree_each(struct store *s, int kind, uint64_t owner,
                     int (*fn)(void *arg, int level, uint64_t idx,
                               const void *node, size_t len), void *arg);

#endif
