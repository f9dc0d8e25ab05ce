/*
 * store_audit.c - rows of the audit trail and of the commit ledger.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

enum {
	Q_AUDIT_INSERT = STORE_Q_AUDIT, Q_AUDIT_LAST, Q_AUDIT_COUNT,
	Q_AUDIT_DELETE, Q_LEDGER_PUT, Q_LEDGER_GET, Q_LEDGER_LAST,
	Q_LEDGER_FIRST, Q_LEDGER_DELETE, Q_LEDGER_COUNT, Q_AUDIT_BELOW,
	Q_AUDIT_HAS_OP,
	Q_AUDIT_LAST_ID
};
_Static_assert(Q_AUDIT_LAST_ID <= STORE_Q_SESSION, "statement ids overlap");

#define AUDIT_COLS "seq, time, user, session, uid, gid, pid, op, ino," \
	" offset, length, result, detail, hash"

static int audit_from_row(sqlite3_stmt *st, struct store_audit *a)
{
	memset(a, 0, sizeof *a);
	a->seq = sqlite3_column_int64(st, 0); /* the rowid */
	/* a value that is no integer or does not fit its field is damage,
	 * never truncated into the row the chain hashed */
	if (store_col_i64(st, 1, &a->time) ||
	    store_col_text(st, 2, a->user, sizeof a->user) ||
	    store_col_text(st, 7, a->op, sizeof a->op) ||
	    store_col_blob(st, 12, a->detail, sizeof a->detail, &a->detaillen, 0) ||
	    store_col_blob(st, 13, a->hash, sizeof a->hash, NULL, 1) ||
	    store_col_i64(st, 3, &a->session) || store_col_u32(st, 4, &a->uid) ||
	    store_col_u32(st, 5, &a->gid) || store_col_u32(st, 6, &a->pid) ||
	    store_col_u64(st, 8, &a->ino) || store_col_u64(st, 9, &a->offset) ||
	    store_col_u64(st, 10, &a->length) || store_col_i64(st, 11, &a->result))
		return -EIO;
	return 0;
}

int store_audit_insert(struct store *s, const struct store_audit *a)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_INSERT,
	        "INSERT INTO audit(" AUDIT_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	if (a->seq < 1)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, a->seq);
	sqlite3_bind_int64(st, 2, a->time);
	sqlite3_bind_text(st, 3, a->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, a->session);
	sqlite3_bind_int64(st, 5, a->uid);
	sqlite3_bind_int64(st, 6, a->gid);
	sqlite3_bind_int64(st, 7, a->pid);
	sqlite3_bind_text(st, 8, a->op, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (int64_t)a->ino);
	sqlite3_bind_int64(st, 10, (int64_t)a->offset);
	sqlite3_bind_int64(st, 11, (int64_t)a->length);
	sqlite3_bind_int64(st, 12, a->result);
	sqlite3_bind_blob(st, 13, a->detail, (int)a->detaillen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 14, a->hash, sizeof a->hash, SQLITE_STATIC);
	return store_step_done(s, st);
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

int store_audit_below(struct store *s, int64_t seq, uint64_t *n,
                      int64_t *lowest)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_BELOW,
	        "SELECT count(*), min(seq) FROM audit WHERE seq<?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		*lowest = sqlite3_column_int64(st, 1);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_audit_has_op(struct store *s, const char *op)
{
	sqlite3_stmt *st = store_stmt(s, Q_AUDIT_HAS_OP,
	        "SELECT 1 FROM audit WHERE op=? LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, op, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : store_err(s, rc);
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

/* ---- the commit ledger ---- */

int store_ledger_put(struct store *s, int64_t seq, const void *body,
                     size_t len, const void *sigs, size_t siglen,
                     const void *proof, size_t prooflen)
{
	static const uint8_t none[1];
	sqlite3_stmt *st = store_stmt(s, Q_LEDGER_PUT,
	        "INSERT INTO ledger(seq, body, sigs, proof) VALUES(?,?,?,?)");

	if (!st)
		return -EIO;
	if (len > STORE_COMMIT_BODY_MAX || siglen > STORE_COMMIT_SIGS_MAX ||
	    prooflen > STORE_COMMIT_PROOF_MAX)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_blob(st, 2, body, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sigs, (int)siglen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, prooflen ? proof : none, (int)prooflen,
	                  SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_ledger_get(struct store *s, int64_t seq, void *body, size_t cap,
                     size_t *len, void *sigs, size_t sigcap, size_t *siglen,
                     void *proof, size_t proofcap, size_t *prooflen)
{
	sqlite3_stmt *st = store_stmt(s, Q_LEDGER_GET,
	        "SELECT body, sigs, proof FROM ledger WHERE seq=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = (store_col_blob(st, 0, body, cap, len, 0) ||
		      store_col_blob(st, 1, sigs, sigcap, siglen, 0) ||
		      store_col_blob(st, 2, proof, proofcap, prooflen, 0)) ? -EIO
		                                                          : 0;
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

static int ledger_end(struct store *s, int id, const char *sql, int64_t *seq)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*seq = sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = rc == SQLITE_ROW ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_ledger_last(struct store *s, int64_t *seq)
{
	return ledger_end(s, Q_LEDGER_LAST, "SELECT max(seq) FROM ledger", seq);
}

int store_ledger_first(struct store *s, int64_t *seq)
{
	return ledger_end(s, Q_LEDGER_FIRST, "SELECT min(seq) FROM ledger", seq);
}

int store_ledger_delete_before(struct store *s, int64_t seq)
{
	sqlite3_stmt *st = store_stmt(s, Q_LEDGER_DELETE,
	        "DELETE FROM ledger WHERE seq<?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, seq);
	return store_step_done(s, st);
}

int store_ledger_count(struct store *s, uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, Q_LEDGER_COUNT,
	        "SELECT count(*) FROM ledger");
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
