/*
 * store_backup.h - operations on the store file as a whole: an online
 * backup, compaction (VACUUM) and forward format migrations. Part of the
 * store module (store_backup.c is the only other place that sees SQLite);
 * custodyctl's backup, compact and upgrade commands drive it.
 *
 * Errors are 0 or -errno as in store.h; functions that take why/whylen also
 * leave a one-line reason there (without the program name) on failure.
 */
#ifndef CUSTODY_STORE_BACKUP_H
#define CUSTODY_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* Pages copied per backup step: 64 pages of 64 KiB = 4 MiB, a few ms. */
#define STORE_BACKUP_STEP_PAGES 64
/* A backup restarted this often by concurrent commits pins a snapshot:
 * once, so at most one pass is wasted under a steady write load. */
#define STORE_BACKUP_MAX_RESTARTS 1

/* Progress: done of total units (pages). Return non-zero to cancel. */
typedef int (*store_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Copy the store s into a new file dest, consistently, while other
 * processes (a mount) keep reading and writing it.
 *
 * The copy is written to "dest.tmp" (created O_EXCL | O_NOFOLLOW, 0600)
 * with SQLite's online backup API, STORE_BACKUP_STEP_PAGES pages per step,
 * so no lock is held for long: between steps the mount commits and
 * checkpoints freely. A commit by another process restarts the copy; after
 * STORE_BACKUP_MAX_RESTARTS restarts the copy pins one read snapshot (WAL
 * readers never block writers) and finishes from it. The finished file is
 * fsynced and renamed to dest (atomically replacing it only if replace is
 * set; otherwise an existing dest is an error), and the directory fsynced.
 * The copy is one complete file (no -wal beside it) whose header still says
 * WAL, so custodyfs opens it as it opens the original.
 *
 * s may be read-only. busy_ms bounds how long a locked source is waited
 * for. fn (may be NULL) sees pages done/total after each step; *pages
 * (may be NULL) receives the page count of the copy.
 *
 * Returns 0, -EEXIST (dest or dest.tmp exists), -EINVAL (dest is the store
 * itself), -ECANCELED (fn asked to stop), -EBUSY, -ENOSPC, -EIO or another
 * -errno from the file system. On failure dest.tmp is removed and dest is
 * untouched.
 */
int store_backup(struct store *s, const char *dest, int replace, int busy_ms,
                 store_progress_fn fn, void *arg, uint64_t *pages,
                 char *why, size_t whylen);

/*
 * Sizes of the store: the main file and its WAL in bytes, and the bytes
 * in pages that hold data (page_count - freelist) * page_size.
 */
struct store_size {
	uint64_t file_bytes;
	uint64_t wal_bytes;
	uint64_t used_bytes;
	uint64_t free_bytes;
};
int store_size(struct store *s, struct store_size *out);

/*
 * Take the store for this connection alone (SQLite's exclusive locking
 * mode), waiting up to the busy timeout: -EBUSY while another process (a
 * mount, another custodyctl) has it open, -EROFS if s is read-only. Kept
 * until store_close; this connection's transactions go on as usual.
 */
int store_lock_exclusive(struct store *s, char *why, size_t whylen);

/*
 * Rebuild the file without free pages (VACUUM) and truncate the WAL; with
 * page_size (not 0) other than the file's, in pages of that size.
 * Needs the store to itself: it takes SQLite's exclusive locking mode,
 * waiting up to the busy timeout, and returns -EBUSY if another process
 * (a mount, another custodyctl) still has the store open. The exclusive
 * lock is kept until store_close. The rebuild's temporary copy goes to a
 * file (SQLITE_TMPDIR, else /var/tmp), not memory. fn sees an estimate
 * of pages done (it may not cancel). before/after (may be NULL) receive
 * the sizes around the rebuild. s must be read-write.
 */
int store_vacuum(struct store *s, uint32_t page_size, store_progress_fn fn,
                 void *arg, struct store_size *before,
                 struct store_size *after, char *why, size_t whylen);

/*
 * Migrate the file forward to STORE_FORMAT_VERSION in one transaction.
 * *from and *to receive the format before and after (equal: nothing to
 * do, and nothing is locked). A migration needs the store to itself, as
 * store_vacuum. -ENOTSUP if no migration path exists from *from.
 */
int store_upgrade(struct store *s, int64_t *from /* OUT */,
                  int64_t *to /* OUT */, char *why, size_t whylen);

/*
 * A store rebuilt into a new file (custodyctl upgrade from format 1):
 * store_upgrade_discard removes what an interrupted run left at tmp (the
 * file and its -wal, -shm, -journal; a directory there is refused);
 * store_upgrade_install fsyncs tmp (closed and complete, no log of its
 * own) and renames it over path, after checking that path has no
 * write-ahead log with commits in it (SQLite would apply it to the new
 * file: -EBUSY), then fsyncs the directory. Until the rename path is
 * untouched; a failure after it (the directory sync) is reported, with
 * the new file in place.
 */
int store_upgrade_discard(const char *tmp);
/* store_begin for one long transaction on a file store_open just created
 * (the whole store written at once): its page cache stays bounded. */
int store_bulk_begin(struct store *s);
int store_upgrade_install(const char *tmp, const char *path, char *why,
                          size_t whylen);

#endif
