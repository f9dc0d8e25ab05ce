/*
 * store_audit.c - rows of the audit and audit_keys tables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

enum {
	Q_AUDIT_INSERT = STORE_Q_AUDIT, Q_AUDIT_LAST, Q_AUDIT_COUNT,
	Q_AUDIT_DELETE, Q_AKEY_INSERT, Q_AKEY_GET, Q_AKEY_UPDATE, Q_AUDIT_LAST_ID
};
_Static_assert(Q_AUDIT_LAST_ID <= STORE_Q_SESSION, "statement ids overlap");

#define AUDIT_COLS "seq, time, user, uid, gid, pid, op, ino, offset, length," \
	" result, session, detail, mac"

static int audit_from_row(sqlite3_stmt *st, struct store_audit *a)
{
	const unsigned char *t;
	size_t n;

	memset(a, 0, sizeof *a);
	a->seq = sqlite3_column_int64(st, 0);
	a->time = sqlite3_column_int64(st, 1);
	t = sqlite3_column_text(st, 2);
	n = (size_t)sqlite3_column_bytes(st, 2);
	if (!t || n >= sizeof a->user)
		return -EIO;
	memcpy(a->user, t, n);
	a->uid = (uint32_t)sqlite3_column_int64(st, 3);
	a->gid = (uint32_t)sqlite3_column_int64(st, 4);
	a->pid = (uint32_t)sqlite3_column_int64(st, 5);
	t = sqlite3_column_text(st, 6);
	n = (size_t)sqlite3_column_bytes(st, 6);
	if (!t || n >= sizeof a->op)
		return -EIO;
	memcpy(a->op, t, n);
	a->ino = (uint64_t)sqlite3_column_int64(st, 7);
	a->offset = (uint64_t)sqlite3_column_int64(st, 8);
	a->length = (uint64_t)sqlite3_column_int64(st, 9);
	a->result = sqlite3_column_int64(st, 10);
	a->session = sqlite3_column_int64(st, 11);
	if (store_col_blob(st, 12, a->detail, sizeof a->detail, &a->detaillen, 0) ||
	    store_col_blob(st, 13, a->mac, sizeof a->mac, NULL, 1))
		return -EIO;
	return 0;
}

int store_audit_insert(struct store *s, struct store_audit *a)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_INSERT,
	        "INSERT INTO audit(" AUDIT_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
	int rc;

	if (!st)
		return -EIO;
	if (a->seq)
		sqlite3_bind_int64(st, 1, a->seq);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_int64(st, 2, a->time);
	sqlite3_bind_text(st, 3, a->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, a->uid);
	sqlite3_bind_int64(st, 5, a->gid);
	sqlite3_bind_int64(st, 6, a->pid);
	sqlite3_bind_text(st, 7, a->op, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (int64_t)a->ino);
	sqlite3_bind_int64(st, 9, (int64_t)a->offset);
	sqlite3_bind_int64(st, 10, (int64_t)a->length);
	sqlite3_bind_int64(st, 11, a->result);
	sqlite3_bind_int64(st, 12, a->session);
	sqlite3_bind_blob(st, 13, a->detail, (int)a->detaillen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 14, a->mac, sizeof a->mac, SQLITE_STATIC);
	rc = store_step_done(s, st);
	if (!rc && !a->seq)
		a->seq = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_audit_last(struct store *s, struct store_audit *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_LAST,
	        "SELECT " AUDIT_COLS " FROM audit ORDER BY seq DESC LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = audit_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_audit_each(struct store *s, int64_t after,
                     int (*fn)(void *arg, const struct store_audit *a),
                     void *arg)
{
	sqlite3_stmt *st;
	struct store_audit *a = malloc(sizeof *a);
	int rc, stop = 0;

	if (!a)
		return -ENOMEM;
	if (sqlite3_prepare_v2(s->db, "SELECT " AUDIT_COLS " FROM audit WHERE seq>?"
	                       " ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
		free(a);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (audit_from_row(st, a)) {
			int64_t seq = sqlite3_column_int64(st, 0);
			memset(a, 0, sizeof *a);
			a->seq = seq;
		}
		if ((stop = fn(arg, a)))
			break;
	}
	sqlite3_finalize(st);
	free(a);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_audit_count(struct store *s, uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_COUNT, "SELECT count(*) FROM audit");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_audit_delete_before(struct store *s, int64_t seq)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_DELETE,
	        "DELETE FROM audit WHERE seq<?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	return store_step_done(s, st);
}

int store_audit_key_insert(struct store *s, uint32_t version,
                           const void *sealed, size_t len, int64_t *id)
{
	sqlite3_stmt *st = store_stmt(s, Q_AKEY_INSERT,
	        "INSERT INTO audit_keys(key_version, sealed) VALUES(?,?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_blob(st, 2, sealed, (int)len, SQLITE_STATIC);
	rc = store_step_done(s, st);
	if (!rc)
		*id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_audit_key_get(struct store *s, int64_t id, uint32_t *version,
                        void *sealed, size_t cap, size_t *len)
{
	sqlite3_stmt *st = store_stmt(s, Q_AKEY_GET,
	        "SELECT key_version, sealed FROM audit_keys WHERE id=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);
		rc = (v < 1 || v > UINT32_MAX) ? -EIO
		        : store_col_blob(st, 1, sealed, cap, len, 0);
		*version = (uint32_t)v;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_audit_key_update(struct store *s, int64_t id, uint32_t version,
                           const void *sealed, size_t len)
{
	sqlite3_stmt *st = store_stmt(s, Q_AKEY_UPDATE,
	        "UPDATE audit_keys SET key_version=?, sealed=? WHERE id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_blob(st, 2, sealed, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(s, st);
}
