/*
 * store_mtree.c - rows of the mtree table: the stored groups of the
 * authenticated positional trees (include/fs/mtree.h gives their meaning).
 * Pure row access: what a node says is checked by src/fs/mtree.c against
 * its parent. idx is a uint64 here and an INTEGER (int64) in SQLite, so an
 * idx of 2^63 or more is refused (-EINVAL) rather than stored as a negative
 * number that would sort before every other group of its level.
 */
#include <errno.h>
#include <limits.h>

#include "store_internal.h"

enum {
	Q_MT_GET = STORE_Q_MTREE, Q_MT_PUT, Q_MT_DELETE, Q_MT_DELETE_FROM,
	Q_MT_DELETE_OWNER, Q_MT_LAST
};
_Static_assert(Q_MT_LAST <= STORE_MAX_STMTS, "statement ids overlap");

/* level and idx as SQLite can hold them; owner is any uint64 (only ever
 * compared for equality, so its sign in SQLite does not matter) */
static int key_ok(int level, uint64_t idx)
{
	return level >= 0 && idx <= (uint64_t)INT64_MAX;
}

static void bind_key(sqlite3_stmt *st, int kind, uint64_t owner, int level,
                     uint64_t idx)
{
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, (int64_t)owner);
	sqlite3_bind_int(st, 3, level);
	sqlite3_bind_int64(st, 4, (int64_t)idx);
}

int store_mtree_get(struct store *s, int kind, uint64_t owner, int level,
                    uint64_t idx, void *buf, size_t cap, size_t *len)
{
	sqlite3_stmt *st;
	int rc;

	if (!key_ok(level, idx))
		return -EINVAL;
	st = store_stmt(s, Q_MT_GET, "SELECT node FROM mtree"
	        " WHERE kind=? AND owner=? AND level=? AND idx=?");
	if (!st)
		return -EIO;
	bind_key(st, kind, owner, level, idx);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = store_col_blob(st, 0, buf, cap, len, 0);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_mtree_put(struct store *s, int kind, uint64_t owner, int level,
                    uint64_t idx, const void *node, size_t len)
{
	sqlite3_stmt *st;

	if (!key_ok(level, idx) || len > INT_MAX || (!node && len))
		return -EINVAL;
	st = store_stmt(s, Q_MT_PUT, "INSERT OR REPLACE INTO"
	        " mtree(kind, owner, level, idx, node) VALUES(?,?,?,?,?)");
	if (!st)
		return -EIO;
	bind_key(st, kind, owner, level, idx);
	/* a non-NULL pointer even for len 0: NULL would bind SQL NULL */
	sqlite3_bind_blob(st, 5, len ? node : (const void *)"", (int)len,
	                  SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_mtree_delete(struct store *s, int kind, uint64_t owner, int level,
                       uint64_t idx)
{
	sqlite3_stmt *st;

	if (!key_ok(level, idx))
		return -EINVAL;
	st = store_stmt(s, Q_MT_DELETE, "DELETE FROM mtree"
	        " WHERE kind=? AND owner=? AND level=? AND idx=?");
	if (!st)
		return -EIO;
	bind_key(st, kind, owner, level, idx);
	return store_step_done(s, st);
}

int store_mtree_delete_from(struct store *s, int kind, uint64_t owner,
                            int level, uint64_t first_idx)
{
	sqlite3_stmt *st;

	if (!key_ok(level, first_idx))
		return -EINVAL;
	st = store_stmt(s, Q_MT_DELETE_FROM, "DELETE FROM mtree"
	        " WHERE kind=? AND owner=? AND level=? AND idx>=?");
	if (!st)
		return -EIO;
	bind_key(st, kind, owner, level, first_idx);
	return store_step_done(s, st);
}

int store_mtree_delete_owner(struct store *s, int kind, uint64_t owner)
{
	sqlite3_stmt *st = store_stmt(s, Q_MT_DELETE_OWNER,
	        "DELETE FROM mtree WHERE kind=? AND owner=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, (int64_t)owner);
	return store_step_done(s, st);
}

int store_mtree_each(struct store *s, int kind, uint64_t owner,
                     int (*fn)(void *arg, int level, uint64_t idx,
                               const void *node, size_t len), void *arg)
{
	/* not cached: fn may read or write other groups (check, repair) */
	sqlite3_stmt *st;
	int rc, stop = 0;

	rc = sqlite3_prepare_v2(s->db, "SELECT level, idx, node FROM mtree"
	                        " WHERE kind=? AND owner=? ORDER BY level, idx",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_err(s, rc);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, (int64_t)owner);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t level = sqlite3_column_int64(st, 0);
		int64_t idx = sqlite3_column_int64(st, 1);
		const void *node = sqlite3_column_blob(st, 2);
		size_t len = (size_t)sqlite3_column_bytes(st, 2);

		/* a hostile store can put anything in a column */
		if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 2) != SQLITE_BLOB ||
		    level < 0 || level > INT_MAX || idx < 0) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, (int)level, (uint64_t)idx,
		               node ? node : (const void *)"", len)))
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}
