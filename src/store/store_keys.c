/*
 * store_keys.c - rows of the users, master_keys, key_grants and key_events
 * tables. Pure row access: signatures and sealing are checked by auth.c and
 * keyring.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store_internal.h"

enum {
	Q_USER_GET = STORE_Q_KEYS, Q_USER_GET_ID, Q_USER_INSERT, Q_USER_UPDATE,
	Q_USER_DELETE, Q_USER_EACH,
	Q_KEY_GET, Q_KEY_PUT, Q_KEY_EACH,
	Q_GRANT_GET, Q_GRANT_PUT, Q_GRANT_DELETE,
	Q_KEY_EVENT, Q_USAGE_BLOCKS, Q_USAGE_NAMES, Q_USAGE_XATTRS, Q_USAGE_INODES,
	Q_USAGE_AUDIT, Q_STALE_B, Q_STALE_D, Q_STALE_X, Q_STALE_I, Q_STALE_K,
	Q_DENTRY_ID, Q_KEYS_LAST
};
_Static_assert(Q_KEYS_LAST <= STORE_Q_AUDIT, "statement ids overlap");

#define USER_COLS "id, name, role, opslimit, memlimit, salt, box_pk, secret," \
	" sig, failed, locked_until, created, last_login"

static int copy_text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!t || n >= cap)
		return -EIO;
	memcpy(buf, t, n);
	buf[n] = 0;
	return 0;
}

static int user_from_row(sqlite3_stmt *st, struct store_user *u)
{
	memset(u, 0, sizeof *u);
	u->id = sqlite3_column_int64(st, 0);
	if (copy_text(st, 1, u->name, sizeof u->name) ||
	    copy_text(st, 2, u->role, sizeof u->role) ||
	    store_col_blob(st, 5, u->salt, sizeof u->salt, NULL, 1) ||
	    store_col_blob(st, 6, u->box_pk, sizeof u->box_pk, NULL, 1) ||
	    store_col_blob(st, 7, u->secret, sizeof u->secret, &u->secretlen, 0) ||
	    store_col_blob(st, 8, u->sig, sizeof u->sig, NULL, 1))
		return -EIO;
	u->opslimit = (uint64_t)sqlite3_column_int64(st, 3);
	u->memlimit = (uint64_t)sqlite3_column_int64(st, 4);
	u->failed = sqlite3_column_int64(st, 9);
	u->locked_until = sqlite3_column_int64(st, 10);
	u->created = sqlite3_column_int64(st, 11);
	u->last_login = sqlite3_column_int64(st, 12);
	return 0;
}

static int user_one(struct store *s, sqlite3_stmt *st, struct store_user *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = user_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_user_get(struct store *s, const char *name, struct store_user *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_GET,
	        "SELECT " USER_COLS " FROM users WHERE name=?");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return user_one(s, st, out);
}

int store_user_get_id(struct store *s, int64_t id, struct store_user *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_GET_ID,
	        "SELECT " USER_COLS " FROM users WHERE id=?");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return user_one(s, st, out);
}

static void user_bind(sqlite3_stmt *st, const struct store_user *u)
{
	sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)u->opslimit);
	sqlite3_bind_int64(st, 4, (int64_t)u->memlimit);
	sqlite3_bind_blob(st, 5, u->salt, sizeof u->salt, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, u->box_pk, sizeof u->box_pk, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, u->secret, (int)u->secretlen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, u->sig, sizeof u->sig, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, u->failed);
	sqlite3_bind_int64(st, 10, u->locked_until);
	sqlite3_bind_int64(st, 11, u->created);
	sqlite3_bind_int64(st, 12, u->last_login);
}

int store_user_insert(struct store *s, struct store_user *u)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_INSERT,
	        "INSERT INTO users(id, name, role, opslimit, memlimit, salt, box_pk,"
	        " secret, sig, failed, locked_until, created, last_login)"
	        " VALUES(?13,?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)");
	int rc;

	if (!st)
		return -EIO;
	user_bind(st, u);
	if (u->id)
		sqlite3_bind_int64(st, 13, u->id);
	else
		sqlite3_bind_null(st, 13);
	rc = store_step_done(s, st);
	if (!rc && !u->id)
		u->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_user_update(struct store *s, const struct store_user *u)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_UPDATE,
	        "UPDATE users SET name=?1, role=?2, opslimit=?3, memlimit=?4,"
	        " salt=?5, box_pk=?6, secret=?7, sig=?8, failed=?9,"
	        " locked_until=?10, created=?11, last_login=?12 WHERE id=?13");
	int rc;

	if (!st)
		return -EIO;
	user_bind(st, u);
	sqlite3_bind_int64(st, 13, u->id);
	rc = store_step_done(s, st);
	if (!rc && sqlite3_changes(s->db) != 1)
		rc = -ENOENT;
	return rc;
}

int store_user_delete(struct store *s, int64_t id)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_DELETE,
	        "DELETE FROM users WHERE id=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = store_step_done(s, st);
	if (!rc && sqlite3_changes(s->db) != 1)
		rc = -ENOENT;
	return rc;
}

int store_user_each(struct store *s,
                    int (*fn)(void *arg, const struct store_user *u),
                    void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_USER_EACH,
	        "SELECT " USER_COLS " FROM users ORDER BY id");
	struct store_user u;
	int rc, stop = 0;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (user_from_row(st, &u)) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, &u)))
			break;
	}
	sqlite3_reset(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

/* ---- master keys ---- */

#define KEY_COLS "version, status, created, activated, expires, retired," \
	" checkval, audit_pk, sig"

static int key_from_row(sqlite3_stmt *st, struct store_key *k)
{
	int64_t v = sqlite3_column_int64(st, 0);

	memset(k, 0, sizeof *k);
	if (v < 1 || v > UINT32_MAX ||
	    copy_text(st, 1, k->status, sizeof k->status) ||
	    store_col_blob(st, 6, k->check, sizeof k->check, NULL, 1) ||
	    store_col_blob(st, 7, k->audit_pk, sizeof k->audit_pk, NULL, 1) ||
	    store_col_blob(st, 8, k->sig, sizeof k->sig, NULL, 1))
		return -EIO;
	k->version = (uint32_t)v;
	k->created = sqlite3_column_int64(st, 2);
	k->activated = sqlite3_column_int64(st, 3);
	k->expires = sqlite3_column_int64(st, 4);
	k->retired = sqlite3_column_int64(st, 5);
	return 0;
}

int store_key_get(struct store *s, uint32_t version, struct store_key *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_KEY_GET,
	        "SELECT " KEY_COLS " FROM master_keys WHERE version=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = key_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_key_put(struct store *s, const struct store_key *k)
{
	sqlite3_stmt *st = store_stmt(s, Q_KEY_PUT,
	        "INSERT OR REPLACE INTO master_keys(" KEY_COLS ")"
	        " VALUES(?,?,?,?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, k->version);
	sqlite3_bind_text(st, 2, k->status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, k->created);
	sqlite3_bind_int64(st, 4, k->activated);
	sqlite3_bind_int64(st, 5, k->expires);
	sqlite3_bind_int64(st, 6, k->retired);
	sqlite3_bind_blob(st, 7, k->check, sizeof k->check, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, k->audit_pk, sizeof k->audit_pk, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, k->sig, sizeof k->sig, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_key_each(struct store *s,
                   int (*fn)(void *arg, const struct store_key *k), void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_KEY_EACH,
	        "SELECT " KEY_COLS " FROM master_keys ORDER BY version");
	struct store_key k;
	int rc, stop = 0;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (key_from_row(st, &k)) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, &k)))
			break;
	}
	sqlite3_reset(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

/* ---- grants ---- */

int store_grant_get(struct store *s, int64_t user_id, uint32_t version,
                    const char *kind, struct store_grant *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_GET,
	        "SELECT sealed FROM key_grants WHERE user_id=? AND version=?"
	        " AND kind=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->user_id = user_id;
		out->version = version;
		snprintf(out->kind, sizeof out->kind, "%s", kind);
		rc = store_col_blob(st, 0, out->sealed, sizeof out->sealed,
		                    &out->sealedlen, 0);
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_grant_put(struct store *s, const struct store_grant *g)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_PUT,
	        "INSERT OR REPLACE INTO key_grants(user_id, version, kind, sealed)"
	        " VALUES(?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, g->user_id);
	sqlite3_bind_int64(st, 2, g->version);
	sqlite3_bind_text(st, 3, g->kind, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, g->sealed, (int)g->sealedlen, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_grant_delete(struct store *s, int64_t user_id, int64_t version,
                       const char *kind)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_DELETE,
	        "DELETE FROM key_grants WHERE (?1 < 0 OR user_id=?1)"
	        " AND (?2 < 0 OR version=?2) AND (?3 IS NULL OR kind=?3)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, version);
	if (kind)
		sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	return store_step_done(s, st);
}

int store_key_event(struct store *s, int64_t time, const char *user,
                    const char *event, int64_t from, int64_t to,
                    const char *detail)
{
	sqlite3_stmt *st = store_stmt(s, Q_KEY_EVENT,
	        "INSERT INTO key_events(time, user, event, from_version,"
	        " to_version, detail) VALUES(?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, time);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, event, -1, SQLITE_STATIC);
	if (from > 0)
		sqlite3_bind_int64(st, 4, from);
	if (to > 0)
		sqlite3_bind_int64(st, 5, to);
	if (detail)
		sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
	return store_step_done(s, st);
}

static int count_one(struct store *s, int id, const char *sql, uint32_t v,
                     uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, v);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n += (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_key_usage(struct store *s, uint32_t version, uint64_t *objects)
{
	int rc;

	*objects = 0;
	if ((rc = count_one(s, Q_USAGE_BLOCKS,
	                    "SELECT count(*) FROM blocks WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_NAMES,
	                    "SELECT count(*) FROM dentries WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_XATTRS,
	                    "SELECT count(*) FROM xattrs WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_INODES,
	                    "SELECT count(*) FROM inodes WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_AUDIT,
	                    "SELECT count(*) FROM audit JOIN audit_keys"
	                    " ON audit.session = audit_keys.id"
	                    " WHERE audit_keys.key_version=?",
	                    version, objects)))
		return rc;
	return 0;
}

int store_stale(struct store *s, char kind, uint32_t below, size_t limit,
                struct store_stale *out, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	switch (kind) {
	case 'b': st = store_stmt(s, Q_STALE_B, "SELECT ino, blk FROM blocks"
	                          " WHERE key_version<? LIMIT ?"); break;
	case 'd': st = store_stmt(s, Q_STALE_D, "SELECT id, 0 FROM dentries"
	                          " WHERE key_version<? LIMIT ?"); break;
	case 'x': st = store_stmt(s, Q_STALE_X, "SELECT ino, 0, tag FROM xattrs"
	                          " WHERE key_version<? LIMIT ?"); break;
	case 'i': st = store_stmt(s, Q_STALE_I, "SELECT ino, 0 FROM inodes"
	                          " WHERE key_version<? LIMIT ?"); break;
	case 'k': st = store_stmt(s, Q_STALE_K, "SELECT id, key_version FROM"
	                          " audit_keys WHERE key_version<? LIMIT ?"); break;
	default: return -EINVAL;
	}
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, below);
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < limit) {
		struct store_stale *o = &out[*n];
		o->a = sqlite3_column_int64(st, 0);
		o->b = sqlite3_column_int64(st, 1);
		if (kind == 'x' &&
		    store_col_blob(st, 2, o->tag, sizeof o->tag, NULL, 1)) {
			rc = SQLITE_CORRUPT;
			break;
		}
		(*n)++;
	}
	sqlite3_reset(st);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : store_err(s, rc);
}

int store_dentry_get_id(struct store *s, int64_t id, struct store_dentry *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_ID,
	        "SELECT id, parent, tag, key_version, name, ino FROM dentries"
	        " WHERE id=?");
	const void *p;
	int rc;
	int64_t kv;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->parent = (uint64_t)sqlite3_column_int64(st, 1);
		kv = sqlite3_column_int64(st, 3);
		out->ino = (uint64_t)sqlite3_column_int64(st, 5);
		p = sqlite3_column_blob(st, 2);
		(void)p;
		rc = (store_col_blob(st, 2, out->tag, sizeof out->tag, NULL, 1) ||
		      store_col_blob(st, 4, out->name, sizeof out->name,
		                     &out->namelen, 0) || kv < 1 || kv > UINT32_MAX)
		             ? -EIO : 0;
		out->key_version = (uint32_t)kv;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}
