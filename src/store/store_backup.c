/*
 * store_backup.c - the store file as a whole: online backup with SQLite's
 * backup API, VACUUM, and forward format migrations (see store_backup.h).
 *
 * These are the operations that must coexist with a live mount in another
 * process. The backup never holds a lock for more than one small step
 * unless commits keep restarting it, and then only a WAL read snapshot,
 * which writers do not wait for. Compaction and migrations instead need
 * the file to themselves and say so (-EBUSY) rather than stalling a mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_backup.h"
#include "store_internal.h"

static void say(char *why, size_t whylen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Directory part of path into buf ("." if none). */
static void dir_of(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(buf, cap, ".");
	else if (slash == path)
		snprintf(buf, cap, "/");
	else
		snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) |
	                            O_NOFOLLOW | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* rename that refuses to replace an existing dest unless replace is set. */
static int rename_into(const char *tmp, const char *dest, int replace)
{
	if (replace)
		return rename(tmp, dest) == 0 ? 0 : -errno;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* file systems without RENAME_NOREPLACE: link is just as exclusive */
	if (link(tmp, dest) != 0)
		return -errno;
	unlink(tmp);
	return 0;
}

int store_size(struct store *s, struct store_size *out)
{
	const char *path = sqlite3_db_filename(s->db, "main");
	char wal[PATH_MAX];
	int64_t pages = 0, psize = 0, freep = 0;
	struct stat sb;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = store_pragma_i64(s, "PRAGMA page_count", &pages)) ||
	    (rc = store_pragma_i64(s, "PRAGMA page_size", &psize)) ||
	    (rc = store_pragma_i64(s, "PRAGMA freelist_count", &freep)))
		return rc;
	if (pages < 0 || psize < 0 || freep < 0)
		return -EIO;
	if (freep > pages)
		freep = pages;
	out->used_bytes = (uint64_t)(pages - freep) * (uint64_t)psize;
	out->free_bytes = (uint64_t)freep * (uint64_t)psize;
	if (path && stat(path, &sb) == 0)
		out->file_bytes = (uint64_t)sb.st_size;
	if (path && (size_t)snprintf(wal, sizeof wal, "%s-wal", path) < sizeof wal &&
	    stat(wal, &sb) == 0)
		out->wal_bytes = (uint64_t)sb.st_size;
	return 0;
}

/* ---- backup ---- */

/* Copy s into the open, empty database dst. */
static int backup_copy(struct store *s, sqlite3 *dst, int busy_ms,
                       store_progress_fn fn, void *arg, uint64_t *pages,
                       char *why, size_t whylen)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
	uint64_t done = 0, last = 0, total = 0;
	int rc, restarts = 0, snapshot = 0, waited = 0;

	if (!b) {
		say(why, whylen, "cannot start the copy: %s", sqlite3_errmsg(dst));
		return -EIO;
	}
	for (;;) {
		rc = sqlite3_backup_step(b, STORE_BACKUP_STEP_PAGES);
		total = (uint64_t)sqlite3_backup_pagecount(b);
		done = total - (uint64_t)sqlite3_backup_remaining(b);
		if (rc == SQLITE_DONE)
			break;
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
			/* rare in WAL mode (recovery, a WAL reset): wait a little */
			if (waited >= busy_ms) {
				say(why, whylen, "the store stayed locked for %d ms",
				    busy_ms);
				rc = -EBUSY;
				goto out;
			}
			sleep_ms(5);
			waited += 5;
			continue;
		}
		if (rc != SQLITE_OK) {
			say(why, whylen, "copying failed: %s", sqlite3_errstr(rc));
			rc = store_err(s, rc);
			goto out;
		}
		waited = 0;
		/* every step copies new pages unless a commit restarted us */
		if (last && done <= last && !snapshot &&
		    ++restarts >= STORE_BACKUP_MAX_RESTARTS) {
			/* Commits keep coming: copy from one read snapshot. The
			 * new read transaction notices the change and restarts
			 * the copy once more, from the pinned snapshot. */
			rc = sqlite3_exec(s->db, "BEGIN; SELECT count(*) FROM meta",
			                  NULL, NULL, NULL);
			if (rc != SQLITE_OK) {
				say(why, whylen, "cannot pin a snapshot: %s",
				    sqlite3_errmsg(s->db));
				rc = store_err(s, rc);
				goto out;
			}
			snapshot = 1;
		}
		last = done;
		if (fn && fn(arg, done, total)) {
			say(why, whylen, "interrupted");
			rc = -ECANCELED;
			goto out;
		}
	}
	rc = 0;
	if (fn)
		fn(arg, total, total);
	if (pages)
		*pages = total;
out:
	if (sqlite3_backup_finish(b) != SQLITE_OK && rc == 0) {
		say(why, whylen, "finishing the copy failed: %s",
		    sqlite3_errmsg(dst));
		rc = -EIO;
	}
	if (snapshot)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int store_backup(struct store *s, const char *dest, int replace, int busy_ms,
                 store_progress_fn fn, void *arg, uint64_t *pages,
                 char *why, size_t whylen)
{
	const char *src = sqlite3_db_filename(s->db, "main");
	char tmp[PATH_MAX], journal[PATH_MAX + 16], dir[PATH_MAX];
	struct stat ssb, dsb;
	sqlite3 *dst = NULL;
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dest) >= sizeof tmp) {
		say(why, whylen, "name too long");
		return -ENAMETOOLONG;
	}
	snprintf(journal, sizeof journal, "%s-journal", tmp);
	if (stat(dest, &dsb) == 0) {
		if (src && stat(src, &ssb) == 0 && ssb.st_dev == dsb.st_dev &&
		    ssb.st_ino == dsb.st_ino) {
			say(why, whylen, "that is the store itself");
			return -EINVAL;
		}
		if (S_ISDIR(dsb.st_mode)) {
			say(why, whylen, "is a directory");
			return -EISDIR;
		}
		if (!replace) {
			say(why, whylen, "file exists (--force replaces it)");
			return -EEXIST;
		}
	}
	/* 0600 and exclusive: the copy holds everything the store holds */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0600);
	if (fd < 0) {
		rc = -errno;
		if (rc == -EEXIST)
			say(why, whylen, "'%s' exists: another backup is running or"
			    " was interrupted; remove it", tmp);
		else
			say(why, whylen, "cannot create '%s': %s", tmp,
			    strerror(-rc));
		return rc;
	}
	/* closed before SQLite opens it: closing a second descriptor later
	 * would drop SQLite's POSIX locks on the file */
	close(fd);
	rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
	                     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		say(why, whylen, "cannot open '%s': %s", tmp,
		    dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
		rc = store_err(s, rc);
		goto fail;
	}
	if (store_harden(dst)) {
		say(why, whylen, "cannot set up '%s'", tmp);
		rc = -EIO;
		goto fail;
	}
	/* No journal and no syncs while copying: dest.tmp is invisible until
	 * the one fsync below and the rename, so a crash leaves only a .tmp.
	 * (An empty file takes the source's page size; the copied header
	 * keeps saying WAL, so the copy opens in WAL mode like the store.) */
	rc = sqlite3_exec(dst, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
	                  " PRAGMA cache_size=-8192", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		say(why, whylen, "cannot set up '%s': %s", tmp, sqlite3_errmsg(dst));
		rc = store_err(s, rc);
		goto fail;
	}
	if ((rc = backup_copy(s, dst, busy_ms, fn, arg, pages, why, whylen)))
		goto fail;
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		say(why, whylen, "closing '%s' failed: %s", tmp, sqlite3_errstr(rc));
		rc = -EIO;
		goto fail;
	}
	if ((rc = fsync_path(tmp, 0))) {
		say(why, whylen, "cannot sync '%s': %s", tmp, strerror(-rc));
		goto fail;
	}
	if ((rc = rename_into(tmp, dest, replace))) {
		if (rc == -EEXIST)
			say(why, whylen, "file exists (--force replaces it)");
		else
			say(why, whylen, "cannot rename '%s': %s", tmp,
			    strerror(-rc));
		goto fail;
	}
	dir_of(dest, dir, sizeof dir);
	fsync_path(dir, 1); /* best effort: the file itself is synced */
	return 0;
fail:
	if (dst)
		sqlite3_close(dst);
	unlink(journal);
	unlink(tmp);
	return rc;
}

/* ---- exclusive operations ---- */

/*
 * Take the file for ourselves: in EXCLUSIVE locking mode a write
 * transaction locks the database file itself, which fails while any other
 * connection (every WAL connection holds a shared lock on the file while
 * open) still has it. The lock is kept until the connection closes.
 */
int store_lock_exclusive(struct store *s, char *why, size_t whylen)
{
	int rc;

	if (s->readonly) {
		say(why, whylen, "the store was opened read-only");
		return -EROFS;
	}
	rc = sqlite3_exec(s->db, "PRAGMA locking_mode=EXCLUSIVE; BEGIN IMMEDIATE;"
	                  " COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int err = store_err(s, rc);
		store_rollback(s);
		sqlite3_exec(s->db, "PRAGMA locking_mode=NORMAL", NULL, NULL, NULL);
		if (err == -EBUSY)
			say(why, whylen, "store is busy: another process has it"
			    " open (mounted?); unmount it first");
		else
			say(why, whylen, "cannot lock the store: %s",
			    sqlite3_errmsg(s->db));
		return err;
	}
	return 0;
}

struct vacuum_progress {
	store_progress_fn fn;
	void *arg;
	uint64_t calls;
	uint64_t total;
};

/* VM instructions VACUUM spends per 64 KiB of 4 KiB blocks stored, measured
 * (about 16 rows); only shapes the progress estimate, counted in units of
 * VACUUM_UNIT bytes whatever the page size. */
#define VACUUM_UNIT 65536
#define VACUUM_OPS_PER_PAGE 2000
#define VACUUM_OPS_PER_CALL 1000

static int vacuum_tick(void *arg)
{
	struct vacuum_progress *vp = arg;
	uint64_t done;

	vp->calls++;
	done = vp->calls * VACUUM_OPS_PER_CALL / VACUUM_OPS_PER_PAGE;
	if (done >= vp->total)
		done = vp->total ? vp->total - 1 : 0;
	vp->fn(vp->arg, done, vp->total);
	return 0;
}

int store_vacuum(struct store *s, uint32_t page_size, store_progress_fn fn,
                 void *arg, struct store_size *before,
                 struct store_size *after, char *why, size_t whylen)
{
	struct vacuum_progress vp = { fn, arg, 0, 0 };
	struct store_size sz;
	int64_t psize = 0;
	int rc, repage;
	char q[64];

	if ((rc = store_lock_exclusive(s, why, whylen)))
		return rc;
	if ((rc = store_size(s, &sz))) {
		say(why, whylen, "cannot read the store's size");
		return rc;
	}
	if (before)
		*before = sz;
	if ((rc = store_pragma_i64(s, "PRAGMA page_size", &psize)) || psize < 512) {
		say(why, whylen, "cannot read the store's page size");
		return rc ? rc : -EIO;
	}
	vp.total = sz.used_bytes / VACUUM_UNIT;
	/* the rebuilt copy can be as large as the store: not in memory */
	if ((rc = store_exec(s, "PRAGMA temp_store=FILE"))) {
		say(why, whylen, "cannot prepare: %s", sqlite3_errmsg(s->db));
		return rc;
	}
	/* SQLite changes the page size only outside WAL mode: the rebuild
	 * then goes through a rollback journal (as crash-safe: an interrupted
	 * one is rolled back at the next open, which puts the store back
	 * into WAL mode, store_open) */
	repage = page_size && page_size != (uint64_t)psize;
	if (repage) {
		snprintf(q, sizeof q, "PRAGMA page_size=%u", page_size);
		if ((rc = store_journal_mode(s, "delete")) ||
		    (rc = store_exec(s, q))) {
			say(why, whylen, "cannot leave WAL mode to change the page"
			    " size: %s", sqlite3_errmsg(s->db));
			store_journal_mode(s, "wal");
			store_exec(s, "PRAGMA temp_store=MEMORY");
			return rc;
		}
	}
	if (fn)
		sqlite3_progress_handler(s->db, VACUUM_OPS_PER_CALL, vacuum_tick,
		                         &vp);
	rc = sqlite3_exec(s->db, "VACUUM", NULL, NULL, NULL);
	sqlite3_progress_handler(s->db, 0, NULL, NULL);
	if (rc != SQLITE_OK) {
		say(why, whylen, "rebuilding failed: %s", sqlite3_errmsg(s->db));
		rc = store_err(s, rc);
		store_exec(s, "PRAGMA temp_store=MEMORY");
		if (repage)
			store_journal_mode(s, "wal");
		return rc;
	}
	store_exec(s, "PRAGMA temp_store=MEMORY");
	if (repage && (rc = store_journal_mode(s, "wal"))) {
		say(why, whylen, "rebuilt, but cannot return to WAL mode: %s (the"
		    " next open does)", sqlite3_errmsg(s->db));
		return rc;
	}
	/* the rebuilt pages are in the WAL: fold them in and shrink */
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
	                               NULL, NULL);
	if (rc != SQLITE_OK) {
		say(why, whylen, "checkpoint failed: %s", sqlite3_errmsg(s->db));
		return store_err(s, rc);
	}
	if (fn)
		fn(arg, vp.total, vp.total);
	if (after && (rc = store_size(s, after))) {
		say(why, whylen, "cannot read the store's size");
		return rc;
	}
	return 0;
}

/* ---- format migrations ---- */

/*
 * migrations[i] turns format migrations[i].from into from + 1, in place,
 * with SQL only. There is none from format 1: format 2 signs what format
 * 1 kept in rows (rights, trees, the trail's attribution), so custodyctl
 * upgrade rebuilds a format-1 store into a new file above this layer
 * (src/keys/upgrade*.c, src/fs/fs_upgrade.c) and the two functions below
 * it put that file in the store's place.
 */
struct migration {
	int64_t from;
	const char *const *sql; /* NULL-terminated */
};
static const struct migration migrations[] = {
	{ 0, NULL },
};

static const struct migration *migration_from(int64_t from)
{
	for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++)
		if (migrations[i].sql && migrations[i].from == from)
			return &migrations[i];
	return NULL;
}

int store_upgrade(struct store *s, int64_t *from, int64_t *to, char *why,
                  size_t whylen)
{
	int64_t fmt = 0;
	char sql[64];
	int rc;

	*from = *to = 0;
	if (why && whylen)
		why[0] = 0;
	/* the format is the file header's (store_open validated it), never a
	 * meta row: a file writer edits those freely */
	fmt = store_format(s);
	*from = *to = fmt;
	if (fmt >= STORE_FORMAT_VERSION)
		return 0; /* newer ones never open (store_open: -EPROTO) */
	if ((rc = store_lock_exclusive(s, why, whylen)))
		return rc;
	if ((rc = store_begin(s))) {
		say(why, whylen, "cannot begin: %s", sqlite3_errmsg(s->db));
		return rc;
	}
	/* re-read the header under the lock: another upgrade may have won */
	if ((rc = store_header_format(s, &fmt)))
		goto fail;
	if (fmt < 1 || fmt > STORE_FORMAT_VERSION) {
		say(why, whylen, "the file header names format %lld",
		    (long long)fmt);
		rc = -ENOTSUP;
		goto fail;
	}
	*from = fmt;
	while (fmt < STORE_FORMAT_VERSION) {
		const struct migration *m = migration_from(fmt);
		if (!m) {
			say(why, whylen, "no migration from format %lld",
			    (long long)fmt);
			rc = -ENOTSUP;
			goto fail;
		}
		for (int i = 0; m->sql[i]; i++)
			if ((rc = store_exec(s, m->sql[i]))) {
				say(why, whylen, "migration %lld -> %lld failed: %s",
				    (long long)fmt, (long long)fmt + 1,
				    sqlite3_errmsg(s->db));
				goto fail;
			}
		fmt++;
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version=%lld", (long long)fmt);
	if ((rc = store_exec(s, sql)) || (rc = store_commit(s))) {
		say(why, whylen, "cannot record the new format: %s",
		    sqlite3_errmsg(s->db));
		goto fail;
	}
	*to = fmt;
	return 0;
fail:
	if (!why || !why[0])
		say(why, whylen, "%s", strerror(-rc));
	store_rollback(s);
	return rc;
}

/* ---- rebuilding into a new file (custodyctl upgrade from format 1) ---- */

int store_bulk_begin(struct store *s)
{
	int rc;

	/* store_open set the cache size in KiB while a new file still had
	 * SQLite's default page size; set again now that pages are 64 KiB,
	 * SQLite spills dirty pages to the WAL at 32 MiB instead of holding
	 * up to 512 MiB of a long transaction in memory */
	if ((rc = store_exec(s, "PRAGMA cache_size=-32768")))
		return rc;
	return store_begin(s);
}

int store_upgrade_discard(const char *tmp)
{
	static const char *const side[] = { "", "-wal", "-shm", "-journal" };
	char p[PATH_MAX];

	for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
		struct stat sb;
		if ((size_t)snprintf(p, sizeof p, "%s%s", tmp, side[i]) >= sizeof p)
			return -ENAMETOOLONG;
		if (lstat(p, &sb) != 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (S_ISDIR(sb.st_mode))
			return -EISDIR; /* not ours: never removed */
		if (unlink(p) != 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* A write-ahead log beside path that still holds frames. */
static int wal_pending(const char *path, char *why, size_t whylen)
{
	char wal[PATH_MAX];
	struct stat sb;

	if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
		return -ENAMETOOLONG;
	if (lstat(wal, &sb) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (sb.st_size == 0)
		return 0;
	say(why, whylen, "'%s' holds commits not yet in its store (another"
	    " process has it open)", wal);
	return -EBUSY;
}

int store_upgrade_install(const char *tmp, const char *path, char *why,
                          size_t whylen)
{
	char dir[PATH_MAX];
	int rc;

	if (why && whylen)
		why[0] = 0;
	/* the new file is complete on its own; the old file's log must be
	 * empty, or SQLite would apply it to the new file */
	if ((rc = wal_pending(tmp, why, whylen)) ||
	    (rc = wal_pending(path, why, whylen)))
		return rc;
	if ((rc = fsync_path(tmp, 0))) {
		say(why, whylen, "cannot sync '%s': %s", tmp, strerror(-rc));
		return rc;
	}
	if (rename(tmp, path) != 0) {
		rc = -errno;
		say(why, whylen, "cannot rename '%s' to '%s': %s", tmp, path,
		    strerror(-rc));
		return rc;
	}
	dir_of(path, dir, sizeof dir);
	if ((rc = fsync_path(dir, 1)))
		say(why, whylen, "renamed, but the directory '%s' cannot be synced:"
		    " %s", dir, strerror(-rc));
	return rc;
}
