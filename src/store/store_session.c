/*
 * store_session.c - rows of the mounts and auth_events tables (advisory).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"

enum {
	Q_MOUNT_BEGIN = STORE_Q_SESSION, Q_MOUNT_END, Q_MOUNT_OPEN,
	Q_AEV_ADD, Q_AEV_ALL, Q_AEV_DEL, Q_SESSION_LAST
};
_Static_assert(Q_SESSION_LAST <= STORE_Q_MTREE, "statement ids overlap");

int store_mount_begin(struct store *s, struct store_mount *m)
{
	sqlite3_stmt *st = store_stmt(s, Q_MOUNT_BEGIN,
	        "INSERT INTO mounts(user, host, pid, mountpoint, readonly, started,"
	        " heartbeat) VALUES(?,?,?,?,?,?,?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, m->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, m->pid);
	sqlite3_bind_text(st, 4, m->mountpoint, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, m->readonly);
	sqlite3_bind_int64(st, 6, m->started);
	sqlite3_bind_int64(st, 7, m->started);
	rc = store_step_done(s, st);
	if (!rc)
		m->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_mount_end(struct store *s, int64_t id, const char *reason)
{
	sqlite3_stmt *st = store_stmt(s, Q_MOUNT_END,
	        "UPDATE mounts SET ended=?, end_reason=? WHERE id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(s, st);
}

static void text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

int store_mount_each_open(struct store *s,
                          int (*fn)(void *arg, const struct store_mount *m),
                          void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_MOUNT_OPEN,
	        "SELECT id, user, host, pid, mountpoint, readonly, started"
	        " FROM mounts WHERE ended=0 ORDER BY id");
	struct store_mount *m = calloc(1, sizeof *m);
	int rc, stop = 0;

	if (!st || !m) {
		free(m);
		return st ? -ENOMEM : -EIO;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		m->id = sqlite3_column_int64(st, 0);
		text(st, 1, m->user, sizeof m->user);
		text(st, 2, m->host, sizeof m->host);
		m->pid = sqlite3_column_int64(st, 3);
		text(st, 4, m->mountpoint, sizeof m->mountpoint);
		m->readonly = sqlite3_column_int64(st, 5) != 0;
		m->started = sqlite3_column_int64(st, 6);
		if ((stop = fn(arg, m)))
			break;
	}
	sqlite3_reset(st);
	free(m);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_auth_event_add(struct store *s, int64_t time, const char *user,
                         const char *event, uint32_t uid, int64_t pid)
{
	sqlite3_stmt *st = store_stmt(s, Q_AEV_ADD,
	        "INSERT INTO auth_events(time, user, event, uid, pid)"
	        " VALUES(?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, time);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, event, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, uid);
	sqlite3_bind_int64(st, 5, pid);
	return store_step_done(s, st);
}

int store_auth_event_take(struct store *s,
                          int (*fn)(void *arg, int64_t time, const char *user,
                                    const char *event, uint32_t uid,
                                    int64_t pid),
                          void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_AEV_ALL,
	        "SELECT time, user, event, uid, pid FROM auth_events ORDER BY id");
	int rc, stop = 0;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char user[STORE_USER_NAME_MAX + 1], event[32];
		uint32_t uid;
		text(st, 1, user, sizeof user);
		text(st, 2, event, sizeof event);
		if (store_col_u32(st, 3, &uid))
			uid = UINT32_MAX; /* advisory: unknown, never truncated */
		if ((stop = fn(arg, sqlite3_column_int64(st, 0), user, event, uid,
		               sqlite3_column_int64(st, 4))))
			break;
	}
	sqlite3_reset(st);
	if (stop)
		return stop;
	if (rc != SQLITE_DONE)
		return store_err(s, rc);
	st = store_stmt(s, Q_AEV_DEL, "DELETE FROM auth_events");
	return st ? store_step_done(s, st) : -EIO;
}
