/*
 * store_v1.c - reading the format-1 tables for the upgrade (store_v1.h).
 *
 * Statements are prepared per call and finalized (they run once per
 * upgrade), so this file takes no ids of the statement cache.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "store_v1.h"

static int prep(struct store *s, const char *sql, sqlite3_stmt **st)
{
	*st = NULL;
	if (s->format != 1)
		return -EINVAL;
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return store_err(s, sqlite3_errcode(s->db));
	return 0;
}

/* Step st to its end: SQLITE_DONE -> 0. */
static int done(struct store *s, sqlite3_stmt *st, int rc, int stop)
{
	sqlite3_finalize(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

static int col_u32(sqlite3_stmt *st, int col, uint32_t *v)
{
	int64_t x = sqlite3_column_int64(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_INTEGER || x < 0 ||
	    x > UINT32_MAX)
		return -EIO;
	*v = (uint32_t)x;
	return 0;
}

/* ---- users ---- */

#define USER_COLS "id, name, role, opslimit, memlimit, salt, box_pk, secret," \
	" sig, failed, locked_until, created, last_login"

static int user_row(sqlite3_stmt *st, struct store_v1_user *u)
{
	memset(u, 0, sizeof *u);
	u->id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
	    store_col_text(st, 1, u->name, sizeof u->name) ||
	    store_col_text(st, 2, u->role, sizeof u->role) ||
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

int store_v1_user_get(struct store *s, const char *name,
                      struct store_v1_user *out)
{
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT " USER_COLS " FROM users WHERE name=?", &st);

	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = user_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_finalize(st);
	return rc;
}

int store_v1_user_each(struct store *s,
                       int (*fn)(void *arg, const struct store_v1_user *u),
                       void *arg)
{
	struct store_v1_user *u = malloc(sizeof *u);
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (!u)
		return -ENOMEM;
	if ((rc = prep(s, "SELECT " USER_COLS " FROM users ORDER BY id", &st))) {
		free(u);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((stop = user_row(st, u)) || (stop = fn(arg, u)))
			break;
	}
	free(u);
	return done(s, st, rc, stop);
}

/* ---- master keys and grants ---- */

int store_v1_key_each(struct store *s,
                      int (*fn)(void *arg, const struct store_v1_key *k),
                      void *arg)
{
	struct store_v1_key k;
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT version, status, created, activated, expires,"
	              " retired, checkval, audit_pk, sig FROM master_keys"
	              " ORDER BY version", &st), stop = 0;

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&k, 0, sizeof k);
		if (col_u32(st, 0, &k.version) || k.version < 1 ||
		    store_col_text(st, 1, k.status, sizeof k.status) ||
		    store_col_blob(st, 6, k.check, sizeof k.check, NULL, 1) ||
		    store_col_blob(st, 7, k.audit_pk, sizeof k.audit_pk, NULL, 1) ||
		    store_col_blob(st, 8, k.sig, sizeof k.sig, NULL, 1)) {
			stop = -EIO;
			break;
		}
		k.created = sqlite3_column_int64(st, 2);
		k.activated = sqlite3_column_int64(st, 3);
		k.expires = sqlite3_column_int64(st, 4);
		k.retired = sqlite3_column_int64(st, 5);
		if ((stop = fn(arg, &k)))
			break;
	}
	return done(s, st, rc, stop);
}

int store_v1_grant_get(struct store *s, int64_t user_id, uint32_t version,
                       const char *kind, uint8_t *sealed, size_t cap,
                       size_t *len)
{
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT sealed FROM key_grants WHERE user_id=? AND"
	              " version=? AND kind=?", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = store_col_blob(st, 0, sealed, cap, len, 0);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_finalize(st);
	return rc;
}

int store_v1_audit_key_get(struct store *s, int64_t id, uint32_t *version,
                           uint8_t *sealed, size_t cap, size_t *len)
{
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT key_version, sealed FROM audit_keys WHERE id=?",
	              &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = col_u32(st, 0, version);
		if (!rc)
			rc = store_col_blob(st, 1, sealed, cap, len, 0);
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_finalize(st);
	return rc;
}

/* ---- inodes ---- */

int store_v1_inode_each(struct store *s,
                        int (*fn)(void *arg, const struct store_v1_inode *in),
                        void *arg)
{
	struct store_v1_inode in;
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT ino, file_id, key_version, mode, uid, gid, nlink,"
	              " size, nblocks, rdev, atime, mtime, ctime, generation, mac"
	              " FROM inodes ORDER BY ino", &st), stop = 0;

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ino = sqlite3_column_int64(st, 0);
		memset(&in, 0, sizeof in);
		in.ino = (uint64_t)ino;
		if (ino < 1 ||
		    store_col_blob(st, 1, in.file_id, sizeof in.file_id, NULL, 1) ||
		    col_u32(st, 2, &in.key_version) || col_u32(st, 3, &in.mode) ||
		    col_u32(st, 4, &in.uid) || col_u32(st, 5, &in.gid) ||
		    col_u32(st, 6, &in.nlink) ||
		    store_col_blob(st, 14, in.mac, sizeof in.mac, NULL, 1)) {
			stop = -EIO;
			break;
		}
		in.size = (uint64_t)sqlite3_column_int64(st, 7);
		in.nblocks = (uint64_t)sqlite3_column_int64(st, 8);
		in.rdev = (uint64_t)sqlite3_column_int64(st, 9);
		in.atime = sqlite3_column_int64(st, 10);
		in.mtime = sqlite3_column_int64(st, 11);
		in.ctime = sqlite3_column_int64(st, 12);
		in.generation = (uint64_t)sqlite3_column_int64(st, 13);
		if ((stop = fn(arg, &in)))
			break;
	}
	return done(s, st, rc, stop);
}

/* ---- the trail ---- */

int store_v1_audit_each(struct store *s, int64_t after,
                        int (*fn)(void *arg, const struct store_v1_audit *a),
                        void *arg)
{
	struct store_v1_audit *a = malloc(sizeof *a);
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (!a)
		return -ENOMEM;
	if ((rc = prep(s, "SELECT seq, time, user, uid, gid, pid, op, ino, offset,"
	               " length, result, session, detail, mac FROM audit"
	               " WHERE seq>? ORDER BY seq", &st))) {
		free(a);
		return rc;
	}
	sqlite3_bind_int64(st, 1, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(a, 0, offsetof(struct store_v1_audit, detail));
		a->seq = sqlite3_column_int64(st, 0);
		a->time = sqlite3_column_int64(st, 1);
		if (store_col_text(st, 2, a->user, sizeof a->user) ||
		    col_u32(st, 3, &a->uid) || col_u32(st, 4, &a->gid) ||
		    col_u32(st, 5, &a->pid) ||
		    store_col_text(st, 6, a->op, sizeof a->op) ||
		    store_col_blob(st, 12, a->detail, sizeof a->detail,
		                   &a->detaillen, 0) ||
		    store_col_blob(st, 13, a->mac, sizeof a->mac, NULL, 1)) {
			stop = -EIO;
			break;
		}
		a->ino = (uint64_t)sqlite3_column_int64(st, 7);
		a->offset = (uint64_t)sqlite3_column_int64(st, 8);
		a->length = (uint64_t)sqlite3_column_int64(st, 9);
		a->result = sqlite3_column_int64(st, 10);
		a->session = sqlite3_column_int64(st, 11);
		if ((stop = fn(arg, a)))
			break;
	}
	free(a);
	return done(s, st, rc, stop);
}

/* ---- advisory tables ---- */

int store_v1_auth_event_each(struct store *s,
                             int (*fn)(void *arg, int64_t time,
                                       const char *user, const char *event,
                                       int64_t pid), void *arg)
{
	char user[65], event[64];
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT time, user, event, pid FROM auth_events"
	              " ORDER BY id", &st), stop = 0;

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (store_col_text(st, 1, user, sizeof user) ||
		    store_col_text(st, 2, event, sizeof event)) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, sqlite3_column_int64(st, 0), user, event,
		               sqlite3_column_int64(st, 3))))
			break;
	}
	return done(s, st, rc, stop);
}

int store_v1_key_event_each(struct store *s,
                            int (*fn)(void *arg, int64_t time,
                                      const char *user, const char *event,
                                      int64_t from, int64_t to,
                                      const char *detail), void *arg)
{
	char user[65], event[64], detail[512];
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT time, user, event, from_version, to_version,"
	              " detail FROM key_events ORDER BY id", &st), stop = 0;

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		detail[0] = 0;
		if (store_col_text(st, 1, user, sizeof user) ||
		    store_col_text(st, 2, event, sizeof event) ||
		    (sqlite3_column_type(st, 5) != SQLITE_NULL &&
		     store_col_text(st, 5, detail, sizeof detail))) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, sqlite3_column_int64(st, 0), user, event,
		               sqlite3_column_int64(st, 3),
		               sqlite3_column_int64(st, 4), detail)))
			break;
	}
	return done(s, st, rc, stop);
}

int store_v1_purge_each(struct store *s,
                        int (*fn)(void *arg, uint64_t ino), void *arg)
{
	sqlite3_stmt *st;
	int rc = prep(s, "SELECT ino FROM purge ORDER BY ino", &st), stop = 0;

	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ino = sqlite3_column_int64(st, 0);
		if (ino < 1) {
			stop = -EIO;
			break;
		}
		if ((stop = fn(arg, (uint64_t)ino)))
			break;
	}
	return done(s, st, rc, stop);
}

/* ---- counts ---- */

static int one_u64(struct store *s, const char *sql, int64_t bind,
                   uint64_t *v)
{
	sqlite3_stmt *st;
	int rc = prep(s, sql, &st);

	if (rc)
		return rc;
	if (bind >= 0)
		sqlite3_bind_int64(st, 1, bind);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t x = sqlite3_column_int64(st, 0);
		*v = x > 0 ? (uint64_t)x : 0;
		rc = 0;
	} else
		rc = rc == SQLITE_DONE ? 0 : store_err(s, rc);
	sqlite3_finalize(st);
	return rc;
}

int store_v1_counts(struct store *s, struct store_v1_counts *out)
{
	static const char *const max_q[] = {
		"SELECT max(ino) FROM inodes",
		"SELECT max(ino) FROM purge",
		"SELECT max(ino) FROM blocks",
		/* AUTOINCREMENT: numbers of deleted inodes are never reused */
		"SELECT max(seq) FROM sqlite_sequence WHERE name='inodes'",
	};
	uint64_t m;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = one_u64(s, "SELECT count(*) FROM users", -1, &out->users)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM master_keys", -1,
	                  &out->keys)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM inodes", -1, &out->inodes)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM dentries", -1,
	                  &out->dentries)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM blocks", -1, &out->blocks)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM xattrs", -1, &out->xattrs)) ||
	    (rc = one_u64(s, "SELECT count(*) FROM audit", -1, &out->audit)))
		return rc;
	for (size_t i = 0; i < sizeof max_q / sizeof max_q[0]; i++) {
		m = 0;
		if ((rc = one_u64(s, max_q[i], -1, &m)))
			return rc;
		if (m > out->max_ino)
			out->max_ino = m;
	}
	return 0;
}

int store_v1_dentry_count(struct store *s, uint64_t parent, uint64_t *n)
{
	*n = 0;
	if (parent > INT64_MAX)
		return -EINVAL;
	return one_u64(s, "SELECT count(*) FROM dentries WHERE parent=?",
	               (int64_t)parent, n);
}

int store_v1_key_usage(struct store *s, uint32_t version, uint64_t *n)
{
	static const char *const q[] = {
		"SELECT count(*) FROM blocks WHERE key_version=?",
		"SELECT count(*) FROM dentries WHERE key_version=?",
		"SELECT count(*) FROM xattrs WHERE key_version=?",
		"SELECT count(*) FROM inodes WHERE key_version=?",
	};
	uint64_t c;
	int rc;

	*n = 0;
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		c = 0;
		if ((rc = one_u64(s, q[i], version, &c)))
			return rc;
		*n += c;
	}
	return 0;
}
