/*
 * fs_internal.h - shared by fs.c, inode.c, dir.c, blockio.c and xattr.c.
 *
 * Lock order: fs->lock is the only lock of the filesystem layer; it is
 * taken by every fs_* entry point and never while holding another.
 */
#ifndef CUSTODY_FS_INTERNAL_H
#define CUSTODY_FS_INTERNAL_H

#include <pthread.h>
#include "fs.h"
#include "store.h"
#include "keyring.h"
#include "audit.h"

/* Kernel references and open handles of one inode (fs->lock). */
struct fs_ref {
	uint64_t ino;
	uint64_t nlookup;
	uint64_t nopen;
	struct fs_ref *next;
};

#define FS_REF_BUCKETS 4096
#define FS_PATH_SLOTS 1024
/* Reads of at least FS_STAGE_MIN bytes decrypt outside fs->lock (one
 * stage per FUSE worker; the largest request is 1 MiB). */
#define FS_STAGES 2
#define FS_STAGE_MIN (64u << 10)
#define FS_STAGE_MAX (1u << 20)

struct fs {
	pthread_mutex_t lock;
	struct store *s;
	struct keyring *kr;
	struct audit *audit;
	struct fs_opts o;
	uint32_t block_size;
	/* fields below: fs->lock */
	struct fs_ref *refs[FS_REF_BUCKETS];
	int in_tx;              /* a group transaction is open */
	int rtx;                /* the operation's read transaction is open */
	int64_t op_changes;     /* store_changes() when the op began */
	int64_t tx_started_ms;
	uint64_t tx_bytes;      /* bytes written in the open transaction */
	int64_t last_activity_ms;
	int checkpointed;       /* the WAL was folded in since the last commit */
	int purging;            /* freed blocks may be waiting in purge */
	int kernel_times;       /* writeback cache: the kernel sets m/ctime */
	/* contiguous reads of one file by one process, not yet in the trail:
	 * one row covers the whole range; written before any other row, at
	 * every commit and after [audit] flush_interval */
	struct fs_pending_read {
		int valid;
		struct fs_ctx c;
		uint64_t ino, off, len;
		int64_t when_ns, when_ms;
	} pread;
	uint64_t path_gen;      /* bumped by renames and removals */
	uint64_t generation;    /* the store's, as last committed by us */
	struct fs_path_slot {
		uint64_t ino, gen;
		char *path;
	} *paths;               /* FS_PATH_SLOTS direct-mapped cache */
	uint8_t *blockbuf;      /* locked: plaintext + ciphertext block */
	struct read_stage *stage[FS_STAGES]; /* for large reads (fs_read) */
	uint8_t *scratch;       /* locked memory for derived keys, by slot */
};

/* Slots of fs->scratch (each CIPHER_KEY_BYTES), one per kind of derived
 * key, so nested derivations never overwrite each other. */
enum { FS_KEY_INODE, FS_KEY_FILE, FS_KEY_NAME, FS_KEY_TAG, FS_KEY_XATTR,
       FS_KEY_SLOTS };
#define FS_KEY(fs, slot) ((fs)->scratch + (slot) * CIPHER_KEY_BYTES)

int64_t fs_now_ms(void);
int64_t fs_now_ns(void);

/* Open the group transaction if needed and start counting the op's
 * changes (no savepoint: see fs.c). */
int fs_op_begin(struct fs *fs);
/* End the op with result rc: a failure after the op changed rows (or a
 * transaction SQLite dropped) rolls the whole group back. Returns rc. */
int fs_op_end(struct fs *fs, int rc);
/* Roll the group transaction back and forget what depended on it. */
void fs_abort_locked(struct fs *fs);

/* Commit the group transaction (fs->lock held): audit head mark and, for a
 * read-write mount, the store generation go in with it. */
int fs_commit_locked(struct fs *fs);

/* Reference bookkeeping. */
struct fs_ref *fs_ref_get(struct fs *fs, uint64_t ino, int create);
void fs_ref_put_if_unused(struct fs *fs, struct fs_ref *r);

/* ---- inode.c ---- */
/* Load and authenticate an inode: -ENOENT, -EIO (bad MAC), -ENOKEY->-EIO */
int inode_load(struct fs *fs, uint64_t ino, struct store_inode *in);
/* MAC and write back. */
int inode_save(struct fs *fs, struct store_inode *in);
int inode_alloc(struct fs *fs, const struct fs_ctx *c, uint32_t mode,
                uint64_t rdev, struct store_inode *out);
void inode_to_attr(const struct fs *fs, const struct store_inode *in,
                   struct fs_attr *out);
/* Drop one link; frees the inode when unreferenced. */
int inode_unlink(struct fs *fs, struct store_inode *in);
/* Free if nlink == 0 and nothing references it. */
int inode_maybe_free(struct fs *fs, uint64_t ino);
int inode_mac(struct fs *fs, const struct store_inode *in,
              uint8_t out[STORE_MAC_BYTES]);
void inode_touch(struct store_inode *in, int a, int m, int c);

/* ---- dir.c ---- */
/* Find name in dir; fills *d on success. */
int dir_find(struct fs *fs, const struct store_inode *dir, const char *name,
             struct store_dentry *d);
int dir_add(struct fs *fs, const struct store_inode *dir, const char *name,
            uint64_t ino);
/* Decrypt a dentry's name into buf (FS_NAME_MAX + 1). */
int dir_name(struct fs *fs, const struct store_inode *dir,
             const struct store_dentry *d, char *buf);
/* Re-encrypt a dentry's name under the active version (reencrypt). */
int dir_reseal(struct fs *fs, const struct store_inode *dir,
               struct store_dentry *d, const char *name);

/* ---- blockio.c ---- */
ssize_t blockio_read(struct fs *fs, const struct store_inode *in, char *buf,
                     size_t size, uint64_t off);
/*
 * Staged reads (blockio.c): blockio_stage copies a read's ciphertext and
 * derives its keys under fs->lock; blockio_unstage decrypts into buf
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
ssize_t blockio_unstage(struct read_stage *st, char *buf);
/* Writes and updates in->size, in->nblocks (caller saves the inode). */
ssize_t blockio_write(struct fs *fs, struct store_inode *in, const char *buf,
                      size_t size, uint64_t off);
/* Shrink or grow to size (caller saves the inode). */
int blockio_truncate(struct fs *fs, struct store_inode *in, uint64_t size);

/* ---- generation.c ---- */
int generation_read(struct fs *fs, uint64_t *counter);
/* Advance the generation inside the open transaction. */
int generation_bump(struct fs *fs);
/* Re-MAC the generation under the active version (reencrypt). */
int generation_rekey(struct fs *fs);

/* Authenticate one stored block (check): 0, -EIO, -ENOKEY. */
int blockio_verify(struct fs *fs, const struct store_inode *in, uint64_t blk,
                   uint32_t version, const void *data, size_t len);
/* Authenticate every xattr of in (check): 0 or -EIO. */
int xattr_verify(struct fs *fs, const struct store_inode *in);

/* Re-seal one block / xattr under the active version (reencrypt). */
int blockio_rekey(struct fs *fs, struct store_inode *in, uint64_t blk);
int xattr_rekey(struct fs *fs, const struct store_inode *in,
                const uint8_t tag[STORE_TAG_BYTES]);

/*
 * Audit hook (no-op without a trail): path is recorded as given, or, when
 * NULL, as the path of ino. fs_path_of builds "dir path/name".
 */
void fs_audit(struct fs *fs, const struct fs_ctx *c, const char *op,
              uint64_t ino, const char *path, uint64_t off, uint64_t len,
              int64_t result);
/* Path of dir joined with name (name NULL: path of dir) into buf. */
void fs_path_of(struct fs *fs, uint64_t dir, const char *name, char *buf,
                size_t cap);

#endif
