/*
 * store.h - the SQLite store: schema, transactions and typed row access.
 *
 * Only src/store includes sqlite3.h. Callers see rows as C structs and
 * blobs; everything cryptographic is done above this layer, so every blob
 * handed in here is already ciphertext, a hash, a signature or a sealed
 * box. Every length read back from the file is checked against the
 * caller's buffer (a hostile store cannot overflow anything): an oversized
 * or malformed value is reported as -EIO.
 *
 * The schema is ours alone: store_open refuses a file whose schema holds
 * anything custodyfs did not create (a trigger, a view, an extra table or
 * index, an altered definition), before any statement of ours runs on it,
 * and every connection runs with SQLite's defensive mode on and triggers
 * and views disabled (src/README.md).
 *
 * Errors: 0 on success or -errno: -ENOENT (no such row), -EEXIST (unique
 * key taken), -EBUSY (locked by another process past the busy timeout),
 * -EIO (SQLite error or a malformed row), -ENOSPC (disk full), -EROFS.
 *
 * A struct store is not thread-safe: one thread at a time (the filesystem
 * layer serialises with its own lock).
 */
#ifndef CUSTODY_STORE_H
#define CUSTODY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT_VERSION 2
#define STORE_ID_BYTES       16  /* the store id (and instance ids) */
#define STORE_FILE_ID_BYTES  16
#define STORE_TAG_BYTES      32
#define STORE_HASH_BYTES     32
#define STORE_PK_BYTES       32  /* X25519 and Ed25519 public keys */
#define STORE_SIG_BYTES      64
/* SQLite page sizes (store_page_size): 4 KiB blocks sit inline on 32 KiB
 * pages, bigger ones on 64 KiB pages (README, "Store") */
#define STORE_PAGE_SIZE      32768
#define STORE_PAGE_SIZE_BIG  65536
#define STORE_ROOT_INO       1

/* store_open failures beyond errno's own: */
#define STORE_E_OLDFORMAT (-ENOEXEC)  /* an older format: custodyctl upgrade */
#define STORE_E_SCHEMA    (-EUCLEAN)  /* the schema is not ours (see why) */

struct store;

enum store_open_flags {
	STORE_CREATE = 1,   /* create a new file (O_EXCL): init only */
	STORE_READONLY = 2, /* open read-only (check, audit list, info) */
	STORE_ANYFORMAT = 4,/* accept an older format (custodyctl upgrade) */
	STORE_BIG_PAGES = 8,/* with STORE_CREATE: STORE_PAGE_SIZE_BIG pages */
};

/*
 * The page size a store of block_size-byte blocks is created and compacted
 * with: the smallest of STORE_PAGE_SIZE and STORE_PAGE_SIZE_BIG on whose
 * b-tree leaves a sealed block sits inline (a WITHOUT ROWID leaf holds a
 * cell of up to (page - 12) * 64 / 255 - 23 bytes: 8,198 on 32 KiB pages,
 * 16,422 on 64 KiB). Blocks beyond 8 KiB spill into overflow pages on
 * either, so they keep the big pages. store_create_flags: the flags that
 * create such a store.
 */
uint32_t store_page_size(uint32_t block_size);
int store_create_flags(uint32_t block_size);

/*
 * Open path. With STORE_CREATE the file must not exist and the format-2
 * schema is created. Without it, the file must be an existing custodyfs
 * store: -ENOENT (missing), -EACCES (not readable, or not writable without
 * STORE_READONLY), -EISDIR, -EROFS (read-write on a read-only file system),
 * -ENOTSUP (not a custodyfs store or a damaged header), -EPROTO (a newer
 * format), STORE_E_OLDFORMAT (older: run upgrade; accepted with
 * STORE_ANYFORMAT), STORE_E_SCHEMA (a schema object that is not ours, or
 * a meta row 'format' in a format-2 file: why names it). why (may be
 * NULL) receives a one-line reason on failure.
 * A read-only open of a store whose lock file cannot be made beside it
 * (read-only media, a snapshot, a directory only its owner may write)
 * reads the file as it is (SQLite's immutable mode) when its WAL is empty,
 * and is refused with -EACCES (why says so) when it is not; a read-write
 * open where STORE-wal cannot be made is -EACCES too.
 * busy_ms: how long to wait for another process's lock.
 */
int store_open(const char *path, int flags, int busy_ms, struct store **out,
               char *why, size_t whylen);
/* Commits nothing: callers commit first. Checkpoints the WAL if idle. */
void store_close(struct store *s);
/* Last SQLite error text, for messages. */
const char *store_errmsg(struct store *s);
/* The format of an open store (1 only with STORE_ANYFORMAT): the file
 * header's user_version as store_open read it, the only place it is read
 * from. From format 2 on no meta row names it: a store_open of a file
 * holding a meta row 'format' fails with STORE_E_SCHEMA. */
int store_format(struct store *s);
/* The header's user_version read again (signed: a damaged header may
 * hold a negative one). 0 or -errno. */
int store_header_format(struct store *s, int64_t *fmt);
int store_readonly(struct store *s);

/*
 * The schema check again (a running mount does it whenever SQLite's
 * schema_version moves): 0, or STORE_E_SCHEMA with why naming the object.
 */
int store_schema_verify(struct store *s, char *why, size_t whylen);
/*
 * 1 if another connection committed since the last call (SQLite's
 * data_version), 0 if not, or -errno; the first call after open says 1.
 */
int store_changed(struct store *s);

/*
 * Waiting for another process's lock (up to the busy timeout): fn is told
 * once a wait passes after_ms (outcome 0), and again when that wait ends
 * (1: the lock was had, -1: given up; the end of a wait is seen by
 * statements that change rows or transactions, where waits happen). NULL
 * fn: no notices. store_waited_ms is the total waited since open.
 */
void store_set_wait_notice(struct store *s, int after_ms,
                           void (*fn)(void *arg, int64_t waited_ms,
                                      int outcome),
                           void *arg);
int64_t store_waited_ms(const struct store *s);

/* Transactions. begin is BEGIN IMMEDIATE (takes the write lock). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
/* Whether a transaction is open (SQLite may have rolled one back by
 * itself after an I/O error or a full disk), and rows changed by this
 * connection so far (an operation's own count is the difference). */
int store_in_transaction(struct store *s);
int64_t store_changes(struct store *s);
/*
 * Whether another process cut this process's mapping of a store's -shm
 * file short, or removed or replaced that file (store_guard.c): from then
 * on every store_begin, store_commit and checkpoint fails with -EIO, and
 * store_errmsg says STORE_CUT_MSG.
 */
int store_shm_cut(void);
/* Whether this store's -shm path is still the file it was at open (a
 * read-write store): 0, or -EIO with the flag of store_shm_cut set. */
int store_shm_check(struct store *s);
#define STORE_CUT_MSG "the store's -shm file was cut short, removed or" \
                      " replaced by another process while in use: nothing" \
                      " more is written"
/* Whether the last failure was SQLite finding the file malformed (a page
 * or the WAL damaged under SQLite's own structures: exit 4, not 1). */
int store_damaged(const struct store *s);
/* Why a transaction was lost: -ENOSPC (disk full) or -EIO. */
int store_tx_lost_errno(struct store *s);
/*
 * Fold the WAL in from a background thread with its own connection
 * (store_ckpt.c) instead of in the committing thread: for a read-write
 * mount. Stopped by store_checkpointer_stop or store_close.
 */
int store_checkpointer_start(struct store *s, const char *path);
void store_checkpointer_stop(struct store *s);

/*
 * Durability outside the committing lock (a read-write mount): commits
 * write the WAL without waiting for the disk (synchronous=NORMAL), and
 * store_sync makes every commit returned so far durable (fdatasync of the
 * WAL through a descriptor of its own, kept open from store_defer_sync
 * on; the first time its directory too).
 * store_sync may run in any thread, beside the connection's own work:
 * frames a commit wrote are in the file before the commit returns.
 */
int store_defer_sync(struct store *s, int on); /* off: FULL again */
int store_sync(struct store *s);

/*
 * A read transaction around a run of reads outside a write transaction:
 * one WAL read lock for the run instead of one per statement. Nothing may
 * be written inside it. store_read_begin gives -EBUSY, and store_read_end
 * does nothing, inside a transaction.
 */
int store_read_begin(struct store *s);
void store_read_end(struct store *s);

/*
 * Checkpoint the WAL into the main file and empty it (TRUNCATE mode: the
 * -wal file is cut to 0 bytes, so no older page image stays in it).
 * Never waits: -EBUSY when another connection's read snapshot (or a
 * checkpoint in progress) keeps the WAL from being emptied; the frames
 * that could be copied are copied.
 */
int store_checkpoint(struct store *s);
/* store_checkpoint, retried every STORE_CKPT_RETRY_MS for up to ms while
 * it gives -EBUSY (readers' snapshots last one operation). */
#define STORE_CKPT_RETRY_MS 50
int store_checkpoint_wait(struct store *s, int64_t ms);
/* Bytes in the store's -wal file (0 when absent), or -errno. */
int64_t store_wal_bytes(struct store *s);
/* Page size, page count and free pages (for info). */
int store_file_stats(struct store *s, uint64_t *pages, uint64_t *page_size,
                     uint64_t *free_pages);
int store_integrity_check(struct store *s, char *msg, size_t cap);

/* ---- meta: small named values (advisory: nothing here is trusted) ---- */
int store_meta_get(struct store *s, const char *key, void *buf, size_t cap,
                   size_t *len /* OUT */);
int store_meta_set(struct store *s, const char *key, const void *val,
                   size_t len);
int store_meta_delete(struct store *s, const char *key);
int store_meta_get_int(struct store *s, const char *key, int64_t *v /* OUT */);
int store_meta_set_int(struct store *s, const char *key, int64_t v);

/* ---- inodes ---- */
struct store_inode {
	uint64_t ino;
	uint8_t file_id[STORE_FILE_ID_BYTES];
	uint32_t mode, uid, gid, nlink;
	uint64_t size;        /* bytes (symlink: target length) */
	uint64_t nblocks;     /* stored (non-hole) blocks */
	uint64_t rdev;
	int64_t atime, mtime, ctime; /* nanoseconds since the epoch */
	uint64_t generation;
	uint64_t nentries;    /* directories: entries besides . and .. */
	uint32_t theight;     /* its tree (blocks; directories: unused) */
	uint8_t troot[STORE_HASH_BYTES];
	uint8_t xdigest[STORE_HASH_BYTES]; /* of its xattrs; zero: none */
};
int store_inode_get(struct store *s, uint64_t ino, struct store_inode *out);
/* Insert with the number in in->ino (the caller allocates numbers from
 * the signed state; a row already there is replaced). */
int store_inode_insert(struct store *s, const struct store_inode *in);
int store_inode_update(struct store *s, const struct store_inode *in);
/*
 * Delete every row keyed by inode number ino but its inode row: its
 * xattrs, blocks, the entries naming it as their directory, a purge entry
 * (a number the signed state never used is being allocated: whatever is
 * there was planted or left over). *removed counts the rows.
 */
int store_inode_clear(struct store *s, uint64_t ino, uint64_t *removed);
/* Delete the inode and its xattrs; its blocks and block tree are queued
 * for purging. */
int store_inode_delete(struct store *s, uint64_t ino);
/*
 * The next inode number queued for purging (its blocks and block-tree
 * groups), -ENOENT when the queue is empty.
 */
int store_purge_next(struct store *s, uint64_t *ino);
/* Delete up to limit blocks of ino; *deleted counts them; when none are
 * left, its tree groups are deleted and ino leaves the queue (*done 1). */
int store_purge_step(struct store *s, uint64_t ino, size_t limit,
                     uint64_t *deleted, int *done);
/* Drop ino from the queue without deleting anything (it is not free). */
int store_purge_drop(struct store *s, uint64_t ino);
/* Pending purge work: inodes queued and blocks (and bytes) they hold. */
int store_purge_pending(struct store *s, uint64_t *inodes, uint64_t *blocks,
                        uint64_t *bytes);
/* Queue an inode number's blocks for purging (check --repair). */
int store_purge_queue(struct store *s, uint64_t ino);
/* Call fn for every inode (check, reencrypt). A malformed row is passed
 * with every field zero but ino. fn returns non-zero to stop; that value
 * is returned. */
int store_inode_each(struct store *s, int (*fn)(void *arg,
                     const struct store_inode *in), void *arg);
int store_inode_count(struct store *s, uint64_t *files, uint64_t *dirs,
                      uint64_t *bytes);
/* The highest inode number in the table (0 if none). */
int store_inode_max(struct store *s, uint64_t *ino);

/* ---- directory entries ---- */
#define STORE_NAME_MAX 1024 /* ciphertext of a 255-byte name fits easily */
struct store_dentry {
	int64_t id;          /* stable cursor for readdir; the tree position */
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
int store_dentry_get_id(struct store *s, int64_t id, struct store_dentry *out);
/* Insert; d->id receives the new id. */
int store_dentry_insert(struct store *s, struct store_dentry *d);
int store_dentry_delete_id(struct store *s, int64_t id);
/* Rewrite an existing entry (by id): parent, tag, version, name, ino. */
int store_dentry_update(struct store *s, const struct store_dentry *d);
/* Entries of parent with id > after, in id order; fn non-zero stops. A
 * malformed row is passed with namelen 0 and key_version 0. */
int store_dentry_each(struct store *s, uint64_t parent, int64_t after,
                      int (*fn)(void *arg, const struct store_dentry *d),
                      void *arg);
/* All entries of the store in id order (check, reencrypt). */
int store_dentry_all(struct store *s,
                     int (*fn)(void *arg, const struct store_dentry *d),
                     void *arg);
/* The entry naming ino with the lowest id above after_id (to find a
 * parent; rows may be planted: the caller verifies each and asks again
 * from its id), -ENOENT if none. */
int store_dentry_of_ino(struct store *s, uint64_t ino, int64_t after_id,
                        struct store_dentry *out);

/* ---- content blocks ---- */
/*
 * fn sees the stored bytes of one block in place (valid only during the
 * call: no copy on the read path) and its key version; fn's result is
 * returned, or -ENOENT for a hole.
 */
int store_block_with(struct store *s, uint64_t ino, uint64_t blk,
                     int (*fn)(void *arg, uint32_t key_version,
                               const void *data, size_t len), void *arg);
/* Insert or replace; *created is 1 if the block did not exist. */
int store_block_put(struct store *s, uint64_t ino, uint64_t blk,
                    uint32_t key_version, const void *data, size_t len,
                    int *created /* OUT */);
/* Delete blocks with number >= first; *deleted counts them. */
int store_block_truncate(struct store *s, uint64_t ino, uint64_t first,
                         uint64_t *deleted /* OUT */);
/* Delete blocks first <= blk < end (punching holes); *deleted counts. */
int store_block_delete_range(struct store *s, uint64_t ino, uint64_t first,
                             uint64_t end, uint64_t *deleted /* OUT */);
/* The first stored block >= from (SEEK_DATA), -ENOENT if none. */
int store_block_next(struct store *s, uint64_t ino, uint64_t from,
                     uint64_t *blk /* OUT */);
/*
 * The first inode number above `after` that has blocks, and whether it is
 * queued for purging (check: blocks whose inode is gone). -ENOENT past the
 * last. Rows whose inode number is no integer are never returned
 * (store_key_junk).
 */
int store_block_next_ino(struct store *s, uint64_t after, uint64_t *ino,
                         int *queued);
/* Delete one block (check --repair). */
int store_block_delete(struct store *s, uint64_t ino, uint64_t blk);
/* Blocks of ino in order (check); fn non-zero stops. A row whose block
 * number is no integer or negative is skipped (store_key_junk); one whose key version
 * or data is malformed is passed with kv 0. */
int store_block_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, uint64_t blk, uint32_t kv,
                               const void *data, size_t len), void *arg);
int store_block_count(struct store *s, uint64_t *count);
/*
 * Rows no reader ever finds by their key, because a key column is not an
 * integer or out of range (a file writer's junk): table 'b' (blocks: ino
 * or blk) or 'x' (xattrs: ino). Counted into *n, or deleted (drop: *n says
 * how many).
 */
int store_key_junk(struct store *s, char table, int drop, uint64_t *n);

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
int store_xattr_put(struct store *s, const struct store_xattr *x);
int store_xattr_delete(struct store *s, uint64_t ino,
                       const uint8_t tag[STORE_TAG_BYTES]);
/* Every xattr of ino in tag order; the pointers in *x are valid during fn
 * only, and never NULL (an empty name or value points at ""). A malformed
 * row stops with -EIO. */
int store_xattr_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, const struct store_xattr *x),
                     void *arg);
/* Delete every xattr row of ino; *removed counts them (check --repair:
 * rows no signed set holds). */
int store_xattr_delete_all(struct store *s, uint64_t ino, uint64_t *removed);
/* The first inode number above `after` that has xattr rows; -ENOENT past
 * the last (check: xattrs of an inode that does not exist). */
int store_xattr_next_ino(struct store *s, uint64_t after, uint64_t *ino);

/* ---- the authority chain ---- */
struct store_authority {
	uint32_t epoch;
	uint8_t pk[STORE_PK_BYTES];
	uint8_t endorsement[STORE_SIG_BYTES];
	int64_t created;
};
int store_authority_get(struct store *s, uint32_t epoch,
                        struct store_authority *out);
int store_authority_put(struct store *s, const struct store_authority *a);
/* The highest epoch: -ENOENT if none. */
int store_authority_last(struct store *s, uint32_t *epoch);

/* ---- the roster (one signed record, rights.h gives its meaning) ---- */
#define STORE_ROSTER_MAX (1u << 20)
/* *body is malloc'ed (free it); -ENOENT if there is none. */
int store_roster_get(struct store *s, uint8_t **body, size_t *len,
                     uint8_t sig[STORE_SIG_BYTES]);
int store_roster_put(struct store *s, const uint8_t *body, size_t len,
                     const uint8_t sig[STORE_SIG_BYTES]);

/* ---- credentials: what a passphrase opens ---- */
#define STORE_USER_NAME_MAX 64
#define STORE_SECRET_MAX    256
struct store_cred {
	int64_t user_id;
	char name[STORE_USER_NAME_MAX + 1];
	uint64_t opslimit, memlimit;
	uint8_t salt[16];
	uint8_t secret[STORE_SECRET_MAX]; /* sealed secret keys (auth.c) */
	size_t secretlen;
	int64_t created;
};
int store_cred_get(struct store *s, const char *name, struct store_cred *out);
int store_cred_get_id(struct store *s, int64_t id, struct store_cred *out);
/* Insert, or replace the row of c->user_id; -EEXIST (nothing written) if
 * another user's row holds the name. */
int store_cred_put(struct store *s, const struct store_cred *c);
int store_cred_delete(struct store *s, int64_t user_id);
int store_cred_each(struct store *s,
                    int (*fn)(void *arg, const struct store_cred *c),
                    void *arg);
/* The next unused user id (max + 1, at least 1). */
int store_cred_next_id(struct store *s, int64_t *id);

/* ---- logins: failure counters (advisory, never signed) ---- */
struct store_login {
	int64_t user_id;
	int64_t failed;
	int64_t locked_until;  /* seconds since the epoch */
	int64_t last_login;
};
/* A user without a row has all zero (and -ENOENT is not an error). */
int store_login_get(struct store *s, int64_t user_id, struct store_login *out);
int store_login_put(struct store *s, const struct store_login *l);
int store_login_delete(struct store *s, int64_t user_id);

/* ---- grants: secrets sealed to a user's public key ---- */
enum store_grant_kind {
	GRANT_DATA = 1,      /* master key version `version` */
	GRANT_AUDIT = 2,     /* audit secret key of version `version` */
	GRANT_AUTHORITY = 3, /* authority signing key of epoch `version` */
	GRANT_IDENTITY = 4,  /* a signing key handed over at upgrade (0) */
};
#define STORE_GRANT_MAX 256
struct store_grant {
	int64_t user_id;
	uint32_t version;
	int kind;
	uint8_t sealed[STORE_GRANT_MAX];
	size_t sealedlen;
};
/* The name of a kind, for messages. */
const char *store_grant_kind_name(int kind);
int store_grant_get(struct store *s, int64_t user_id, uint32_t version,
                    int kind, struct store_grant *out);
int store_grant_put(struct store *s, const struct store_grant *g);
/* user_id, version -1 and kind 0 match all. */
int store_grant_delete(struct store *s, int64_t user_id, int64_t version,
                       int kind);
/* Grants of one version and kind (any user): count (key destroy checks). */
int store_grant_count(struct store *s, int64_t version, int kind,
                      uint64_t *n);
/* fn for each grant of a version (-1: all) and kind (0: all); a non-zero
 * return stops and is returned. */
int store_grant_each(struct store *s, int64_t version, int kind,
                     int (*fn)(void *arg, const struct store_grant *g),
                     void *arg);
/*
 * Whether the raw store file or its -wal file holds any of n byte strings
 * of len bytes each (needles, back to back), read as plain files: page
 * images the database no longer uses included. Returns a bit set
 * (STORE_IN_FILE, STORE_IN_WAL), 0 when neither holds any, or -errno.
 */
#define STORE_IN_FILE 1
#define STORE_IN_WAL  2
int store_file_holds(struct store *s, const uint8_t *needles, size_t n,
                     size_t len);

/* Rotation log (advisory; the audit trail is the record). */
int store_key_event(struct store *s, int64_t time, const char *user,
                    const char *event, int64_t from, int64_t to,
                    const char *detail);

/*
 * Up to limit objects written under a version older than `below`, for
 * re-encryption. kind: 'b' blocks (a = ino, b = blk), 'd' dentries
 * (a = id), 'x' xattrs (a = ino, tag), 's' session detail keys (a = id).
 */
struct store_stale {
	int64_t a, b;
	uint8_t tag[STORE_TAG_BYTES];
};
int store_stale(struct store *s, char kind, uint32_t below, size_t limit,
                struct store_stale *out, size_t *n);
/*
 * Objects (blocks, names, xattrs, session keys) still under a version:
 * by the key-version indexes (quick, for listings and progress), or with
 * full 1 by reading the tables themselves (what a command that destroys
 * keys, or says nothing is left, must rely on: an index can be made to
 * hide rows by anyone who can write the file).
 */
int store_key_usage(struct store *s, uint32_t version, int full,
                    uint64_t *objects);

/* ---- sessions: one per mount or command, signed by its user ---- */
#define STORE_DETAIL_SEALED_MAX 96
struct store_session {
	int64_t id;
	int64_t user_id;
	uint64_t roster_counter;   /* the roster it was endorsed under */
	int64_t started;           /* seconds since the epoch */
	uint8_t pk[STORE_PK_BYTES];
	uint8_t endorsement[STORE_SIG_BYTES];
	char host[256];
	int64_t pid;
	char kind[16];             /* mount | ctl | login */
	uint32_t detail_version;   /* version whose audit key seals detail */
	uint8_t detail[STORE_DETAIL_SEALED_MAX];
	size_t detaillen;
	/* commits to the detail key (session_detail_hash): endorsed, so the
	 * sealed key can be re-sealed (reencrypt) but never replaced */
	uint8_t detail_hash[STORE_HASH_BYTES];
};
/* The next unused session id. */
int store_session_next_id(struct store *s, int64_t *id);
int store_session_insert(struct store *s, const struct store_session *ss);
int store_session_get(struct store *s, int64_t id, struct store_session *out);
int store_session_set_detail(struct store *s, int64_t id, uint32_t version,
                             const void *sealed, size_t len);

/* ---- the commit ledger (ledger.h gives the meaning) ---- */
#define STORE_COMMIT_BODY_MAX 1024
#define STORE_COMMIT_SIGS_MAX (1 + 64 * (8 + STORE_SIG_BYTES))
#define STORE_COMMIT_PROOF_MAX 4096
/* proof: unsigned, self-verifying (ledger.h); empty for most commits */
int store_ledger_put(struct store *s, int64_t seq, const void *body,
                     size_t len, const void *sigs, size_t siglen,
                     const void *proof, size_t prooflen);
int store_ledger_get(struct store *s, int64_t seq, void *body, size_t cap,
                     size_t *len, void *sigs, size_t sigcap, size_t *siglen,
                     void *proof, size_t proofcap, size_t *prooflen);
/* Highest and lowest seq: -ENOENT if the ledger is empty. */
int store_ledger_last(struct store *s, int64_t *seq);
int store_ledger_first(struct store *s, int64_t *seq);
int store_ledger_delete_before(struct store *s, int64_t seq);
int store_ledger_count(struct store *s, uint64_t *n);

/* ---- audit trail rows ---- */
#define STORE_DETAIL_MAX 8192
struct store_audit {
	int64_t seq;
	int64_t time;            /* ns since the epoch */
	char user[STORE_USER_NAME_MAX + 1]; /* who it is about */
	int64_t session;         /* the session that recorded (and signed) it */
	uint32_t uid, gid, pid;
	char op[24];
	uint64_t ino;
	uint64_t offset, length;
	int64_t result;
	uint8_t detail[STORE_DETAIL_MAX]; /* sealed process name and path */
	size_t detaillen;
	uint8_t hash[STORE_HASH_BYTES];   /* the chain: covers the previous */
};
int store_audit_insert(struct store *s, const struct store_audit *a);
/* The row with the highest seq: -ENOENT if the trail is empty. */
int store_audit_last(struct store *s, struct store_audit *out);
/* Rows with seq > after in order; fn non-zero stops. Malformed rows are
 * passed with op "" so the verifier can report them. */
int store_audit_each(struct store *s, int64_t after,
                     int (*fn)(void *arg, const struct store_audit *a),
                     void *arg);
int store_audit_count(struct store *s, uint64_t *n);
/* How many rows have seq < seq, and the lowest of them (0 if none). */
int store_audit_below(struct store *s, int64_t seq, uint64_t *n,
                      int64_t *lowest);
/* 1 if a row with operation op exists, 0 if not, or -errno. */
int store_audit_has_op(struct store *s, const char *op);
int store_audit_delete_before(struct store *s, int64_t seq);

/* ---- mount sessions (advisory: for messages and info) ---- */
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

/* ---- authentication events waiting for the trail (advisory) ---- */
int store_auth_event_add(struct store *s, int64_t time, const char *user,
                         const char *event, uint32_t uid, int64_t pid);
/* Hand each pending event to fn, then delete them all. */
int store_auth_event_take(struct store *s,
                          int (*fn)(void *arg, int64_t time, const char *user,
                                    const char *event, uint32_t uid,
                                    int64_t pid),
                          void *arg);

/* ---- Merkle tree groups (include/keys/mtree.h gives the meaning) ---- */
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
