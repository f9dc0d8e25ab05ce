/*
 * store_keys.c - rows of the rights and key tables: authorities, the
 * roster, credentials, login counters, grants, key_events, sessions, and
 * the per-version object counts re-encryption works from. Pure row
 * access: every signature and sealed box is made and checked in src/keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

enum {
	Q_AUTH_GET = STORE_Q_KEYS, Q_AUTH_PUT, Q_AUTH_LAST,
	Q_ROSTER_GET, Q_ROSTER_PUT,
	Q_CRED_GET, Q_CRED_GET_ID, Q_CRED_PUT, Q_CRED_DELETE, Q_CRED_NEXT,
	Q_LOGIN_GET, Q_LOGIN_PUT, Q_LOGIN_DELETE,
	Q_GRANT_GET, Q_GRANT_PUT, Q_GRANT_DELETE, Q_GRANT_COUNT, Q_GRANT_EACH,
	Q_KEY_EVENT, Q_USAGE_BLOCKS, Q_USAGE_NAMES, Q_USAGE_XATTRS,
	Q_USAGE_SESSIONS, Q_STALE_B, Q_STALE_D, Q_STALE_X, Q_STALE_S,
	Q_SESS_NEXT, Q_SESS_INSERT, Q_SESS_GET, Q_SESS_DETAIL,
	Q_KEYS_LAST
};
_Static_assert(Q_KEYS_LAST <= STORE_Q_AUDIT, "statement ids overlap");

/* ---- authorities ---- */

int store_authority_get(struct store *s, uint32_t epoch,
                        struct store_authority *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUTH_GET,
	        "SELECT epoch, pk, endorsement, created FROM authorities"
	        " WHERE epoch=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, epoch);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->epoch = epoch;
		rc = (store_col_i64(st, 3, &out->created) ||
		      store_col_blob(st, 1, out->pk, sizeof out->pk, NULL, 1) ||
		      store_col_blob(st, 2, out->endorsement,
		                     sizeof out->endorsement, NULL, 1)) ? -EIO : 0;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_authority_put(struct store *s, const struct store_authority *a)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUTH_PUT,
	        "INSERT INTO authorities(epoch, pk, endorsement, created)"
	        " VALUES(?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, a->epoch);
	sqlite3_bind_blob(st, 2, a->pk, sizeof a->pk, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, a->endorsement, sizeof a->endorsement,
	                  SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, a->created);
	return store_step_done(s, st);
}

int store_authority_last(struct store *s, uint32_t *epoch)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUTH_LAST,
	        "SELECT max(epoch) FROM authorities");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		int64_t v = sqlite3_column_int64(st, 0);
		rc = (v < 1 || v > UINT32_MAX) ? -EIO : 0;
		*epoch = (uint32_t)v;
	} else
		rc = rc == SQLITE_ROW ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

/* ---- the roster ---- */

int store_roster_get(struct store *s, uint8_t **body, size_t *len,
                     uint8_t sig[STORE_SIG_BYTES])
{
	sqlite3_stmt *st = store_stmt(s, Q_ROSTER_GET,
	        "SELECT body, sig FROM roster WHERE id=1");
	int rc;

	*body = NULL;
	*len = 0;
	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
		    n > STORE_ROSTER_MAX || n == 0 ||
		    store_col_blob(st, 1, sig, STORE_SIG_BYTES, NULL, 1))
			rc = -EIO;
		else if (!(*body = malloc(n)))
			rc = -ENOMEM;
		else {
			memcpy(*body, sqlite3_column_blob(st, 0), n);
			*len = n;
			rc = 0;
		}
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_roster_put(struct store *s, const uint8_t *body, size_t len,
                     const uint8_t sig[STORE_SIG_BYTES])
{
	sqlite3_stmt *st = store_stmt(s, Q_ROSTER_PUT,
	        "INSERT OR REPLACE INTO roster(id, body, sig) VALUES(1,?,?)");

	if (!st)
		return -EIO;
	if (len > STORE_ROSTER_MAX)
		return -EINVAL;
	sqlite3_bind_blob(st, 1, body, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sig, STORE_SIG_BYTES, SQLITE_STATIC);
	return store_step_done(s, st);
}

/* ---- credentials ---- */

#define CRED_COLS "user_id, name, opslimit, memlimit, salt, secret, created"

static int cred_from_row(sqlite3_stmt *st, struct store_cred *c)
{
	memset(c, 0, sizeof *c);
	c->user_id = sqlite3_column_int64(st, 0); /* the rowid */
	if (store_col_text(st, 1, c->name, sizeof c->name) ||
	    store_col_blob(st, 4, c->salt, sizeof c->salt, NULL, 1) ||
	    store_col_blob(st, 5, c->secret, sizeof c->secret, &c->secretlen, 0) ||
	    store_col_u64(st, 2, &c->opslimit) ||
	    store_col_u64(st, 3, &c->memlimit) ||
	    store_col_i64(st, 6, &c->created))
		return -EIO;
	return 0;
}

static int cred_one(struct store *s, sqlite3_stmt *st, struct store_cred *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = cred_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_cred_get(struct store *s, const char *name, struct store_cred *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_CRED_GET,
	        "SELECT " CRED_COLS " FROM credentials WHERE name=?");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return cred_one(s, st, out);
}

int store_cred_get_id(struct store *s, int64_t id, struct store_cred *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_CRED_GET_ID,
	        "SELECT " CRED_COLS " FROM credentials WHERE user_id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	return cred_one(s, st, out);
}

int store_cred_put(struct store *s, const struct store_cred *c)
{
	sqlite3_stmt *st = store_stmt(s, Q_CRED_PUT,
	        /* an upsert by user id: OR REPLACE would also delete another
	         * user's row that holds the name (-EEXIST instead) */
	        "INSERT INTO credentials(" CRED_COLS ")"
	        " VALUES(?,?,?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET"
	        " name=excluded.name, opslimit=excluded.opslimit,"
	        " memlimit=excluded.memlimit, salt=excluded.salt,"
	        " secret=excluded.secret, created=excluded.created");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, c->user_id);
	sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)c->opslimit);
	sqlite3_bind_int64(st, 4, (int64_t)c->memlimit);
	sqlite3_bind_blob(st, 5, c->salt, sizeof c->salt, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, c->secret, (int)c->secretlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, c->created);
	return store_step_done(s, st);
}

int store_cred_delete(struct store *s, int64_t user_id)
{
	sqlite3_stmt *st = store_stmt(s, Q_CRED_DELETE,
	        "DELETE FROM credentials WHERE user_id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	return store_step_done(s, st);
}

int store_cred_each(struct store *s,
                    int (*fn)(void *arg, const struct store_cred *c),
                    void *arg)
{
	sqlite3_stmt *st;
	struct store_cred c;
	int rc, stop = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT " CRED_COLS " FROM credentials"
	                       " ORDER BY user_id", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cred_from_row(st, &c)) {
			memset(&c, 0, sizeof c);
			c.user_id = sqlite3_column_int64(st, 0);
		}
		if ((stop = fn(arg, &c)))
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_cred_next_id(struct store *s, int64_t *id)
{
	sqlite3_stmt *st = store_stmt(s, Q_CRED_NEXT,
	        "SELECT coalesce(max(user_id), 0) + 1 FROM credentials");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = *id >= 1 ? 0 : -EIO;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

/* ---- logins (advisory counters) ---- */

int store_login_get(struct store *s, int64_t user_id, struct store_login *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_LOGIN_GET,
	        "SELECT failed, locked_until, last_login FROM logins"
	        " WHERE user_id=?");
	int rc;

	memset(out, 0, sizeof *out);
	out->user_id = user_id;
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->failed = sqlite3_column_int64(st, 0);
		out->locked_until = sqlite3_column_int64(st, 1);
		out->last_login = sqlite3_column_int64(st, 2);
		if (out->failed < 0)
			out->failed = 0;
		rc = 0;
	} else
		rc = rc == SQLITE_DONE ? 0 : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_login_put(struct store *s, const struct store_login *l)
{
	sqlite3_stmt *st = store_stmt(s, Q_LOGIN_PUT,
	        "INSERT OR REPLACE INTO logins(user_id, failed, locked_until,"
	        " last_login) VALUES(?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, l->user_id);
	sqlite3_bind_int64(st, 2, l->failed);
	sqlite3_bind_int64(st, 3, l->locked_until);
	sqlite3_bind_int64(st, 4, l->last_login);
	return store_step_done(s, st);
}

int store_login_delete(struct store *s, int64_t user_id)
{
	sqlite3_stmt *st = store_stmt(s, Q_LOGIN_DELETE,
	        "DELETE FROM logins WHERE user_id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	return store_step_done(s, st);
}

/* ---- grants ---- */

const char *store_grant_kind_name(int kind)
{
	switch (kind) {
	case GRANT_DATA: return "data";
	case GRANT_AUDIT: return "audit";
	case GRANT_AUTHORITY: return "authority";
	case GRANT_IDENTITY: return "identity";
	default: return "?";
	}
}

int store_grant_get(struct store *s, int64_t user_id, uint32_t version,
                    int kind, struct store_grant *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_GET,
	        "SELECT sealed FROM grants WHERE user_id=? AND version=?"
	        " AND kind=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_int64(st, 3, kind);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->user_id = user_id;
		out->version = version;
		out->kind = kind;
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
	        "INSERT OR REPLACE INTO grants(user_id, version, kind, sealed)"
	        " VALUES(?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, g->user_id);
	sqlite3_bind_int64(st, 2, g->version);
	sqlite3_bind_int64(st, 3, g->kind);
	sqlite3_bind_blob(st, 4, g->sealed, (int)g->sealedlen, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_grant_delete(struct store *s, int64_t user_id, int64_t version,
                       int kind)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_DELETE,
	        "DELETE FROM grants WHERE (?1 < 0 OR user_id=?1)"
	        " AND (?2 < 0 OR version=?2) AND (?3 = 0 OR kind=?3)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_int64(st, 3, kind);
	return store_step_done(s, st);
}

int store_grant_count(struct store *s, int64_t version, int kind, uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_COUNT,
	        "SELECT count(*) FROM grants WHERE (?1 < 0 OR version=?1)"
	        " AND (?2 = 0 OR kind=?2)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_int64(st, 2, kind);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_grant_each(struct store *s, int64_t version, int kind,
                     int (*fn)(void *arg, const struct store_grant *g),
                     void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_GRANT_EACH,
	        "SELECT user_id, version, kind, sealed FROM grants"
	        " WHERE (?1 < 0 OR version=?1) AND (?2 = 0 OR kind=?2)"
	        " ORDER BY user_id, version, kind");
	struct store_grant g;
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_int64(st, 2, kind);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t kind;
		memset(&g, 0, sizeof g);
		if (store_col_i64(st, 0, &g.user_id) ||
		    store_col_u32(st, 1, &g.version) ||
		    store_col_int(st, 2, INT32_MIN, INT32_MAX, &kind) ||
		    store_col_blob(st, 3, g.sealed, sizeof g.sealed, &g.sealedlen, 0))
			continue; /* malformed: nothing to hand on */
		g.kind = (int)kind;
		if ((rc = fn(arg, &g))) {
			sqlite3_reset(st);
			return rc;
		}
	}
	rc = rc == SQLITE_DONE ? 0 : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
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

/* ---- re-encryption's view: objects per key version ---- */

/* Add the count st finds for version v to *n. */
static int count_add(struct store *s, sqlite3_stmt *st, uint32_t v,
                     uint64_t *n)
{
	int rc;

	sqlite3_bind_int64(st, 1, v);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_err(s, rc);
	*n += (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

static int count_one(struct store *s, int id, const char *sql, uint32_t v,
                     uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	int rc;

	if (!st)
		return -EIO;
	rc = count_add(s, st, v, n);
	sqlite3_reset(st);
	return rc;
}

/*
 * count_one on the table itself, prepared for the call (the commands that
 * need it run it a few times at most). NOT INDEXED alone is not enough:
 * SQLite 3.40 still reads a WITHOUT ROWID table's rows through an index
 * that covers the query (seen with EXPLAIN QUERY PLAN). The unary + keeps
 * the version's index out of the WHERE, and a column no index holds (a
 * test that is always true) keeps every index from covering the query:
 * what is counted is the table's own b-tree.
 */
#define FULL_SCAN(col) " AND typeof(" col ") <> ''"
static int count_full(struct store *s, const char *sql, uint32_t v,
                      uint64_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return store_err(s, rc);
	rc = count_add(s, st, v, n);
	sqlite3_finalize(st);
	return rc;
}

int store_key_usage(struct store *s, uint32_t version, int full,
                    uint64_t *objects)
{
	int rc;

	*objects = 0;
	if (full) {
		/* an index is a part of the file any store user can write: a
		 * partial one under the name and SQL of blocks_kv passes the
		 * schema check and hides rows (check finds it; this must not
		 * depend on check having run) */
		if ((rc = count_full(s, "SELECT count(*) FROM blocks NOT INDEXED"
		                     " WHERE +key_version=?" FULL_SCAN("data"),
		                     version, objects)) ||
		    (rc = count_full(s, "SELECT count(*) FROM dentries NOT INDEXED"
		                     " WHERE +key_version=?" FULL_SCAN("name"),
		                     version, objects)) ||
		    (rc = count_full(s, "SELECT count(*) FROM xattrs NOT INDEXED"
		                     " WHERE +key_version=?" FULL_SCAN("value"),
		                     version, objects)) ||
		    (rc = count_full(s, "SELECT count(*) FROM sessions NOT INDEXED"
		                     " WHERE +detail_version=?" FULL_SCAN("detail"),
		                     version, objects)))
			return rc;
		return 0;
	}
	if ((rc = count_one(s, Q_USAGE_BLOCKS,
	                    "SELECT count(*) FROM blocks WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_NAMES,
	                    "SELECT count(*) FROM dentries WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_XATTRS,
	                    "SELECT count(*) FROM xattrs WHERE key_version=?",
	                    version, objects)) ||
	    (rc = count_one(s, Q_USAGE_SESSIONS,
	                    "SELECT count(*) FROM sessions WHERE detail_version=?",
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
	/* rows whose keys are no integers are no object of anyone's
	 * (store_key_junk): re-sealing them would not move them */
	case 'b': st = store_stmt(s, Q_STALE_B, "SELECT ino, blk FROM blocks"
	                          " WHERE key_version<? AND typeof(ino)='integer'"
	                          " AND typeof(blk)='integer' LIMIT ?"); break;
	case 'd': st = store_stmt(s, Q_STALE_D, "SELECT id, 0 FROM dentries"
	                          " WHERE key_version<? LIMIT ?"); break;
	case 'x': st = store_stmt(s, Q_STALE_X, "SELECT ino, 0, tag FROM xattrs"
	                          " WHERE key_version<? AND typeof(ino)='integer'"
	                          " LIMIT ?"); break;
	case 's': st = store_stmt(s, Q_STALE_S, "SELECT id, detail_version FROM"
	                          " sessions WHERE detail_version<? LIMIT ?"); break;
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

/* ---- sessions ---- */

int store_session_next_id(struct store *s, int64_t *id)
{
	sqlite3_stmt *st = store_stmt(s, Q_SESS_NEXT,
	        "SELECT coalesce(max(id), 0) + 1 FROM sessions");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = *id >= 1 ? 0 : -EIO;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_session_insert(struct store *s, const struct store_session *ss)
{
	sqlite3_stmt *st = store_stmt(s, Q_SESS_INSERT,
	        "INSERT INTO sessions(id, user_id, roster_counter, started, pk,"
	        " endorsement, host, pid, kind, detail_version, detail,"
	        " detail_hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, ss->id);
	sqlite3_bind_int64(st, 2, ss->user_id);
	sqlite3_bind_int64(st, 3, (int64_t)ss->roster_counter);
	sqlite3_bind_int64(st, 4, ss->started);
	sqlite3_bind_blob(st, 5, ss->pk, sizeof ss->pk, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, ss->endorsement, sizeof ss->endorsement,
	                  SQLITE_STATIC);
	sqlite3_bind_text(st, 7, ss->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, ss->pid);
	sqlite3_bind_text(st, 9, ss->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, ss->detail_version);
	sqlite3_bind_blob(st, 11, ss->detail, (int)ss->detaillen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 12, ss->detail_hash, sizeof ss->detail_hash,
	                  SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_session_get(struct store *s, int64_t id, struct store_session *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_SESS_GET,
	        "SELECT user_id, roster_counter, started, pk, endorsement, host,"
	        " pid, kind, detail_version, detail, detail_hash FROM sessions"
	        " WHERE id=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof *out);
		out->id = id;
		rc = (store_col_i64(st, 0, &out->user_id) ||
		      store_col_u64(st, 1, &out->roster_counter) ||
		      store_col_i64(st, 2, &out->started) ||
		      store_col_i64(st, 6, &out->pid) ||
		      store_col_u32(st, 8, &out->detail_version) ||
		      store_col_blob(st, 3, out->pk, sizeof out->pk, NULL, 1) ||
		      store_col_blob(st, 4, out->endorsement,
		                     sizeof out->endorsement, NULL, 1) ||
		      store_col_text(st, 5, out->host, sizeof out->host) ||
		      store_col_text(st, 7, out->kind, sizeof out->kind) ||
		      store_col_blob(st, 9, out->detail, sizeof out->detail,
		                     &out->detaillen, 0) ||
		      store_col_blob(st, 10, out->detail_hash,
		                     sizeof out->detail_hash, NULL, 1)) ? -EIO : 0;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_session_set_detail(struct store *s, int64_t id, uint32_t version,
                             const void *sealed, size_t len)
{
	sqlite3_stmt *st = store_stmt(s, Q_SESS_DETAIL,
	        "UPDATE sessions SET detail_version=?, detail=? WHERE id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_blob(st, 2, sealed, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(s, st);
}
