/*
 * test_audit.c - the audit trail (audit.h) on a real store: rows appended
 * by two sessions under one commit (signed by both) verify, and so do
 * failed-login rows about other users; an edited row, a deleted row, an
 * inserted row, a reordered pair, a row re-attributed to another session
 * or user, a malformed row and a cut tail each make audit_verify fail with
 * -EBADMSG and the right bad_seq. Each tampering is also tried the way a
 * file writer would do it properly: renumbering the rows and recomputing
 * every chain hash after it (the hash is unkeyed); then the commit whose
 * signed head no longer matches names the first row after it. Details are
 * readable by admins only; audit_prune leaves a trail that verifies.
 */
#define UNIT_WITH_STORE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "bytes.h"
#include "ledger.h"
#include "store.h"
#include "unit.h"
/* white box: plain SQL on the store's connection (the file writer) */
#include "../../src/store/store_internal.h"

static struct unit_env e;
static struct unlocked adm, wr;

static int sql(const char *q)
{
	int rc = sqlite3_exec(adm.s->db, q, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", q, sqlite3_errmsg(adm.s->db));
	return rc;
}

static int64_t sql_int(const char *q)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(adm.s->db, q, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The chain hash of a row after prev, as a file writer recomputes it. */
static void row_hash(const uint8_t prev[32], const struct store_audit *r,
                     uint8_t out[32])
{
	uint8_t f[8 * 11 + 4];
	uint8_t ul = (uint8_t)strlen(r->user), ol = (uint8_t)strlen(r->op);
	struct cipher_part p[6];

	put_le64(f, (uint64_t)r->seq);
	put_le64(f + 8, (uint64_t)r->time);
	put_le64(f + 16, (uint64_t)r->session);
	put_le64(f + 24, r->uid);
	put_le64(f + 32, r->gid);
	put_le64(f + 40, r->pid);
	put_le64(f + 48, r->ino);
	put_le64(f + 56, r->offset);
	put_le64(f + 64, r->length);
	put_le64(f + 72, (uint64_t)r->result);
	f[80] = ul;
	f[81] = ol;
	put_le16(f + 82, 0);
	put_le64(f + 84, r->detaillen);
	p[0] = (struct cipher_part){ "custodyfs.audit", 16 };
	p[1] = (struct cipher_part){ prev, 32 };
	p[2] = (struct cipher_part){ f, sizeof f };
	p[3] = (struct cipher_part){ r->user, ul };
	p[4] = (struct cipher_part){ r->op, ol };
	p[5] = (struct cipher_part){ r->detail, r->detaillen };
	cipher_hash(out, p, 6);
}

struct rehash {
	int64_t from;
	uint8_t prev[32];
	int64_t *seqs;
	uint8_t (*hashes)[32];
	size_t n, cap;
};

static int rehash_row(void *arg, const struct store_audit *a)
{
	struct rehash *h = arg;

	if (a->seq >= h->from) {
		if (h->n == h->cap) {
			size_t nc = h->cap ? 2 * h->cap : 64;
			h->seqs = realloc(h->seqs, nc * sizeof *h->seqs);
			h->hashes = realloc(h->hashes, nc * sizeof *h->hashes);
			h->cap = nc;
		}
		h->seqs[h->n] = a->seq;
		row_hash(h->prev, a, h->hashes[h->n]);
		memcpy(h->prev, h->hashes[h->n], 32);
		h->n++;
	} else
		memcpy(h->prev, a->hash, 32);
	return 0;
}

/* Recompute every chain hash from row `from` on (the file writer's fix
 * after an edit). Rows must read back well-formed. */
static void rehash_from(int64_t from)
{
	struct rehash h = { from, { 0 }, NULL, NULL, 0, 0 };
	sqlite3_stmt *st;

	CHECK_EQ(store_audit_each(adm.s, 0, rehash_row, &h), 0);
	CHECK_EQ(sqlite3_prepare_v2(adm.s->db, "UPDATE audit SET hash=? WHERE"
	                            " seq=?", -1, &st, NULL), SQLITE_OK);
	for (size_t i = 0; i < h.n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, h.hashes[i], 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, h.seqs[i]);
		CHECK_EQ(sqlite3_step(st), SQLITE_DONE);
	}
	sqlite3_finalize(st);
	free(h.seqs);
	free(h.hashes);
}

/* audit_verify on the store as it is now: its result, bad_seq, rows. */
struct verdict {
	int rc;
	int64_t bad;
	uint64_t rows;
	char why[256];
};

static struct verdict verify(void)
{
	struct verdict v;

	memset(&v, 0, sizeof v);
	v.rc = audit_verify(adm.s, adm.r, &v.bad, &v.rows, v.why, sizeof v.why);
	return v;
}

/* The audit head of the first commit that covers row seq. */
static int64_t end_of(int64_t seq)
{
	char q[160];
	int64_t last = 0, c;

	store_ledger_last(adm.s, &last);
	for (c = 1; c <= last; c++) {
		struct ledger_commit lc;
		if (ledger_read(adm.s, c, &lc) == 0 && lc.st.audit_seq >= seq)
			return lc.st.audit_seq;
	}
	snprintf(q, sizeof q, "SELECT max(seq) FROM audit");
	return sql_int(q);
}

#define TAMPER(desc, stmts, want_bad) do { \
	CHECK_EQ(sql("BEGIN"), SQLITE_OK); \
	stmts; \
	struct verdict _v = verify(); \
	CHECK_EQ(_v.rc, -EBADMSG); \
	CHECK_EQ(_v.bad, (want_bad)); \
	if (_v.rc != -EBADMSG || _v.bad != (want_bad)) \
		fprintf(stderr, "  %s: rc %d bad %lld: %s\n", desc, _v.rc, \
		        (long long)_v.bad, _v.why); \
	CHECK_EQ(sql("ROLLBACK"), SQLITE_OK); \
} while (0)

/* The same, when the verifier can only tell at a commit boundary: bad_seq
 * is a row in [lo, hi]. */
#define TAMPER_IN(desc, stmts, lo, hi) do { \
	CHECK_EQ(sql("BEGIN"), SQLITE_OK); \
	stmts; \
	struct verdict _v = verify(); \
	CHECK_EQ(_v.rc, -EBADMSG); \
	CHECK(_v.bad >= (lo) && _v.bad <= (hi)); \
	if (_v.rc != -EBADMSG || _v.bad < (lo) || _v.bad > (hi)) \
		fprintf(stderr, "  %s: rc %d bad %lld: %s\n", desc, _v.rc, \
		        (long long)_v.bad, _v.why); \
	CHECK_EQ(sql("ROLLBACK"), SQLITE_OK); \
} while (0)

static void exec_fmt(const char *fmt, long long a, long long b)
{
	char q[512];
	snprintf(q, sizeof q, fmt, a, b);
	CHECK_EQ(sql(q), SQLITE_OK);
}

/* Two sessions' rows under one commit; more commits by each. Returns the
 * first and last seq of the shared commit's rows in *lo, *hi. */
static void build_trail(int64_t *lo, int64_t *hi)
{
	struct audit_who who = { 1000, 100, (uint32_t)getpid() };
	struct ledger_commit head;
	int rc;

	CHECK(unlock_begin(&adm) >= 0);
	*lo = 0;
	audit_trail_head(adm.trail, lo, head.hash);
	(*lo)++;
	rc = audit_command(adm.trail, adm.ss, "op-a", "first", 0);
	if (!rc)
		rc = audit_append(adm.trail, wr.ss, &who, 0, "write", 12, "/f", 0, 10,
		                  0);
	if (!rc)
		rc = audit_append(adm.trail, wr.ss, &who, 0, "read", 12, "/f", 0, 10,
		                  -5);
	if (!rc)
		rc = audit_command(adm.trail, adm.ss, "op-b", "second", 0);
	if (!rc)
		rc = audit_append(adm.trail, wr.ss, &who, 0, "unlink", 12, "/f", 0, 0,
		                  0);
	CHECK_EQ(rc, 0);
	CHECK_EQ(unlock_finish(&adm, NULL, NULL, rc), 0);
	*hi = adm.head.st.audit_seq;
	CHECK_EQ(*hi, *lo + 4);
	CHECK_EQ(adm.head.nsig, 2);
	CHECK(adm.head.signer[0] == adm.ss->id || adm.head.signer[1] == adm.ss->id);
	CHECK(adm.head.signer[0] == wr.ss->id || adm.head.signer[1] == wr.ss->id);
	/* a session without a row appends nothing */
	{
		struct session *none = session_new();
		CHECK(unlock_begin(&adm) >= 0);
		CHECK_EQ(audit_append(adm.trail, none, &who, 0, "x", 0, NULL, 0, 0, 0),
		         -EPERM);
		unlock_abort(&adm);
		session_free(none);
	}
	/* more commits, each session on its own connection */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(unlock_record(&adm, "admin-op", "more", 0), 0);
		CHECK_EQ(unlock_record(&wr, "writer-op", "more", -13), 0);
	}
	/* failed logins about others, adopted into the trail by the admin */
	{
		struct unlock_opts o;
		struct unlocked u;
		char bad[160];
		CHECK_EQ(unit_passfile(&e, "bad", "wrong", bad, sizeof bad), 0);
		unit_opts(&e, &o, "mallory", bad);
		CHECK_EQ(unit_login(&o, &u), EXIT_AUTH);
		unit_opts(&e, &o, "writer", bad);
		CHECK_EQ(unit_login(&o, &u), EXIT_AUTH);
		CHECK(unlock_begin(&adm) >= 0);
		CHECK_EQ(audit_adopt_auth_events(adm.trail, adm.ss), 0);
		CHECK_EQ(unlock_finish(&adm, "adopt", "", 0), 0);
		CHECK_EQ(sql_int("SELECT count(*) FROM audit WHERE user='mallory'"
		                 " AND op='login-failed'"), 1);
		CHECK_EQ(sql_int("SELECT count(*) FROM auth_events"), 0);
	}
	CHECK_EQ(unlock_record(&adm, "admin-op", "last", 0), 0);
	CHECK_EQ(unlock_record(&adm, "admin-op", "last", 0), 0);
}

static void test_verify_and_tamper(void)
{
	int64_t lo = 0, hi = 0, last, solo, wrow, end_lo;
	struct verdict v;
	int changed = 0;

	build_trail(&lo, &hi);
	CHECK_EQ(unlock_refresh(&adm, &changed), 0);
	v = verify();
	CHECK_EQ(v.rc, 0);
	if (v.rc)
		fprintf(stderr, "  verify: %s\n", v.why);
	CHECK_EQ(v.bad, 0);
	last = sql_int("SELECT max(seq) FROM audit");
	CHECK_EQ((int64_t)v.rows, sql_int("SELECT count(*) FROM audit"));
	CHECK_EQ(last, adm.head.st.audit_seq);
	/* rows of one session only, in an admin-only commit */
	solo = sql_int("SELECT min(seq) FROM audit WHERE op='admin-op'");
	wrow = lo + 1; /* the writer's first row of the shared commit */
	end_lo = end_of(lo);
	CHECK_EQ(end_lo, hi);
	CHECK(sql_int("SELECT count(*) FROM audit WHERE seq=1") == 1);

	/* an edited row: any column */
	TAMPER("edit result", exec_fmt("UPDATE audit SET result=result+1 WHERE"
	       " seq=%lld%.0lld", (long long)lo, 0), lo);
	TAMPER("edit time", exec_fmt("UPDATE audit SET time=time-1 WHERE"
	       " seq=%lld%.0lld", (long long)wrow, 0), wrow);
	TAMPER("edit op", exec_fmt("UPDATE audit SET op='read' WHERE"
	       " seq=%lld%.0lld", (long long)(lo + 4), 0), lo + 4);
	TAMPER("edit detail", exec_fmt("UPDATE audit SET detail=randomblob("
	       "length(detail)) WHERE seq=%lld%.0lld", (long long)lo, 0), lo);
	TAMPER("edit ino", exec_fmt("UPDATE audit SET ino=99 WHERE"
	       " seq=%lld%.0lld", (long long)last, 0), last);
	/* ... and the chain recomputed after it: the shared commit's head no
	 * longer matches, the first row after it is named */
	TAMPER("edit+rehash", (exec_fmt("UPDATE audit SET result=0 WHERE"
	       " seq=%lld%.0lld", (long long)(lo + 2), 0), rehash_from(lo + 2)),
	       hi + 1);
	TAMPER("edit last+rehash", (exec_fmt("UPDATE audit SET length=1 WHERE"
	       " seq=%lld%.0lld", (long long)last, 0), rehash_from(last)),
	       last + 1);
	/* a deleted row */
	TAMPER("delete", exec_fmt("DELETE FROM audit WHERE seq=%lld%.0lld",
	       (long long)(lo + 1), 0), lo + 2);
	TAMPER("delete first", exec_fmt("DELETE FROM audit WHERE seq=%lld%.0lld",
	       1, 0), 2);
	TAMPER_IN("delete+renumber+rehash", (exec_fmt("DELETE FROM audit WHERE"
	          " seq=%lld%.0lld", (long long)(lo + 1), 0),
	          exec_fmt("UPDATE audit SET seq=seq-1 WHERE seq>%lld%.0lld",
	                   (long long)(lo + 1), 0), rehash_from(lo + 1)),
	          lo + 1, hi + 1);
	/* an inserted row: at the end (covered by no commit), in the middle
	 * (the rows after it renumbered, the chain recomputed) */
	TAMPER("insert at end", (exec_fmt("INSERT INTO audit SELECT seq+1, time,"
	       " user, session, uid, gid, pid, op, ino, offset, length, result,"
	       " detail, hash FROM audit WHERE seq=%lld%.0lld", (long long)last, 0),
	       rehash_from(last + 1)), last + 1);
	TAMPER_IN("insert+renumber+rehash", (exec_fmt("UPDATE audit SET"
	          " seq=-seq WHERE seq>%lld%.0lld", (long long)lo, 0),
	          exec_fmt("UPDATE audit SET seq=1-seq WHERE seq<0%.0lld%.0lld", 0,
	                   0),
	          exec_fmt("INSERT INTO audit SELECT seq+1, time, user, session,"
	                   " uid, gid, pid, 'forged', ino, offset, length, result,"
	                   " detail, hash FROM audit WHERE seq=%lld%.0lld",
	                   (long long)lo, 0), rehash_from(lo + 1)),
	          lo + 1, hi + 1);
	/* a reordered pair (every column but seq swapped) */
	TAMPER("swap", (exec_fmt("UPDATE audit SET seq=-1 WHERE seq=%lld%.0lld",
	       (long long)(lo + 1), 0),
	       exec_fmt("UPDATE audit SET seq=%lld WHERE seq=%lld",
	                (long long)(lo + 1), (long long)(lo + 2)),
	       exec_fmt("UPDATE audit SET seq=%lld WHERE seq=-1%.0lld",
	                (long long)(lo + 2), 0)), lo + 1);
	TAMPER_IN("swap+rehash", (exec_fmt("UPDATE audit SET seq=-1 WHERE"
	          " seq=%lld%.0lld", (long long)(lo + 1), 0),
	          exec_fmt("UPDATE audit SET seq=%lld WHERE seq=%lld",
	                   (long long)(lo + 1), (long long)(lo + 2)),
	          exec_fmt("UPDATE audit SET seq=%lld WHERE seq=-1%.0lld",
	                   (long long)(lo + 2), 0), rehash_from(lo + 1)),
	          lo + 1, hi + 1);
	/* a row re-attributed to another session, or user */
	TAMPER("reattribute", exec_fmt("UPDATE audit SET session=%lld WHERE"
	       " seq=%lld", (long long)wr.ss->id, (long long)solo), solo);
	TAMPER("reattribute+rehash", (exec_fmt("UPDATE audit SET session=%lld,"
	       " user='writer' WHERE seq=%lld", (long long)wr.ss->id,
	       (long long)solo), rehash_from(solo)), solo);
	TAMPER("reuser+rehash", (exec_fmt("UPDATE audit SET user='writer' WHERE"
	       " seq=%lld%.0lld", (long long)solo, 0), rehash_from(solo)), solo);
	/* in the commit both sessions signed: only its head tells */
	TAMPER("reattribute shared+rehash", (exec_fmt("UPDATE audit SET"
	       " session=%lld, user='admin' WHERE seq=%lld", (long long)adm.ss->id,
	       (long long)wrow), rehash_from(wrow)), hi + 1);
	/* a row naming a session that does not exist */
	TAMPER("unknown session", (exec_fmt("UPDATE audit SET session=9999 WHERE"
	       " seq=%lld%.0lld", (long long)solo, 0), rehash_from(solo)), solo);
	/* a malformed row */
	TAMPER("malformed", exec_fmt("UPDATE audit SET hash=x'00' WHERE"
	       " seq=%lld%.0lld", (long long)wrow, 0), wrow);
	TAMPER("malformed user", exec_fmt("UPDATE audit SET user=printf('%%.70c',"
	       " 'u') WHERE seq=%lld%.0lld", (long long)wrow, 0), wrow);
	/* a cut tail: the last row, the last few, everything after lo */
	TAMPER("cut 1", exec_fmt("DELETE FROM audit WHERE seq=%lld%.0lld",
	       (long long)last, 0), last);
	TAMPER("cut 3", exec_fmt("DELETE FROM audit WHERE seq>%lld%.0lld",
	       (long long)(last - 3), 0), last - 2);
	TAMPER("cut to lo", exec_fmt("DELETE FROM audit WHERE seq>%lld%.0lld",
	       (long long)lo, 0), lo + 1);
	TAMPER("cut all", exec_fmt("DELETE FROM audit%.0lld%.0lld", 0, 0), 1);
	/* a row inserted before the first one (seq 0, or negative): audit list
	 * counts it and it is no part of the chain */
	TAMPER("insert at seq 0", exec_fmt("INSERT INTO audit SELECT %lld, time,"
	       " user, session, uid, gid, pid, op, ino, offset, length, result,"
	       " detail, hash FROM audit WHERE seq=%lld", 0, 1), 0);
	TAMPER("insert at seq -5", exec_fmt("INSERT INTO audit SELECT %lld, time,"
	       " user, session, uid, gid, pid, op, ino, offset, length, result,"
	       " detail, hash FROM audit WHERE seq=%lld", -5, 1), -5);
	/* the verifier's commit chain must hold too */
	CHECK_EQ(sql("BEGIN"), SQLITE_OK);
	CHECK_EQ(sql("DELETE FROM ledger WHERE seq = 2"), SQLITE_OK);
	v = verify();
	CHECK_EQ(v.rc, -EBADMSG);
	CHECK_EQ(sql("ROLLBACK"), SQLITE_OK);
	/* after all that, the real trail still verifies */
	v = verify();
	CHECK_EQ(v.rc, 0);
}

/* Details are sealed with the recording session's key, readable by
 * admins and auditors only, and bound to their row. */
static void test_reader(void)
{
	struct audit_reader *rd = NULL;
	struct store_audit *a = calloc(1, sizeof *a);
	char comm[64], path[256];
	int64_t seq = sql_int("SELECT min(seq) FROM audit WHERE op='write'");

	if (!a)
		return;
	CHECK_EQ(store_audit_last(adm.s, a), 0);
	{
		/* the shared commit's writer row */
		sqlite3_stmt *st;
		CHECK_EQ(sqlite3_prepare_v2(adm.s->db, "SELECT detail, session, user"
		                            " FROM audit WHERE seq=?", -1, &st, NULL),
		         SQLITE_OK);
		sqlite3_bind_int64(st, 1, seq);
		CHECK_EQ(sqlite3_step(st), SQLITE_ROW);
		a->seq = seq;
		a->detaillen = (size_t)sqlite3_column_bytes(st, 0);
		memcpy(a->detail, sqlite3_column_blob(st, 0), a->detaillen);
		a->session = sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
	}
	CHECK_EQ(audit_reader_new(adm.s, adm.r, adm.ss, &rd), 0);
	CHECK_EQ(audit_reader_detail(rd, a, comm, sizeof comm, path, sizeof path),
	         0);
	CHECK(!strcmp(path, "/f"));
	CHECK(comm[0] != 0);
	CHECK(!strcmp(audit_reader_session_user(rd, a->session), "writer"));
	CHECK(!strcmp(audit_reader_session_user(rd, 9999), "?"));
	/* a detail moved to another row does not open there */
	a->seq++;
	CHECK_EQ(audit_reader_detail(rd, a, comm, sizeof comm, path, sizeof path),
	         -EIO);
	a->seq--;
	audit_reader_free(rd);
	rd = NULL;
	/* a writer holds no audit key */
	CHECK_EQ(audit_reader_new(wr.s, wr.r, wr.ss, &rd), 0);
	CHECK_EQ(audit_reader_detail(rd, a, comm, sizeof comm, path, sizeof path),
	         -EACCES);
	audit_reader_free(rd);
	free(a);
}

static void test_prune(void)
{
	uint64_t removed = 0, before_rows;
	int64_t first = 0, cut;
	struct verdict v;
	int rc;

	before_rows = (uint64_t)sql_int("SELECT count(*) FROM audit");
	cut = sql_int("SELECT max(seq) FROM audit") - 6;
	CHECK(unlock_begin(&adm) >= 0);
	rc = audit_prune(adm.s, adm.r, adm.ss, cut, &removed);
	CHECK_EQ(rc, 0);
	CHECK_EQ(unlock_finish(&adm, "audit prune", "", rc), 0);
	CHECK(removed > 0);
	CHECK(sql_int("SELECT min(seq) FROM audit") > 1);
	CHECK(sql_int("SELECT min(seq) FROM audit") <= cut);
	CHECK_EQ(store_ledger_first(adm.s, &first), 0);
	CHECK(first > 1);
	v = verify();
	CHECK_EQ(v.rc, 0);
	if (v.rc)
		fprintf(stderr, "  after prune: %s\n", v.why);
	/* the prune's own row is in the trail */
	CHECK_EQ((uint64_t)v.rows, before_rows - removed + 1);
	{
		struct ledger_commit h;
		char why[256];
		CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, &h, NULL, NULL, why,
		                       sizeof why), 0);
		CHECK_EQ(h.seq, adm.head.seq);
	}
	/* the trail goes on and still verifies, from either connection */
	CHECK_EQ(unlock_record(&wr, "writer-op", "after prune", 0), 0);
	CHECK_EQ(unlock_record(&adm, "admin-op", "after prune", 0), 0);
	v = verify();
	CHECK_EQ(v.rc, 0);
	/* tampering after a prune: the base record, the first kept row, the
	 * rows the prune kept cut further from the front */
	CHECK_EQ(sql("BEGIN"), SQLITE_OK);
	CHECK_EQ(sql("DELETE FROM meta WHERE key='ledger_base'"), SQLITE_OK);
	v = verify();
	CHECK_EQ(v.rc, -EBADMSG);
	CHECK_EQ(sql("ROLLBACK"), SQLITE_OK);
	CHECK_EQ(sql("BEGIN"), SQLITE_OK);
	CHECK_EQ(sql("UPDATE meta SET value=CAST(substr(value, 1, 100) ||"
	             " CASE WHEN substr(value, 101, 1) = x'00' THEN x'01'"
	             " ELSE x'00' END || substr(value, 102) AS BLOB)"
	             " WHERE key='ledger_base'"), SQLITE_OK);
	v = verify();
	CHECK_EQ(v.rc, -EBADMSG);
	CHECK_EQ(sql("ROLLBACK"), SQLITE_OK);
	{
		int64_t k = sql_int("SELECT min(seq) FROM audit");
		TAMPER("pruned further", exec_fmt("DELETE FROM audit WHERE"
		       " seq=%lld%.0lld", (long long)k, 0), k + 1);
		TAMPER("first kept edited", exec_fmt("UPDATE audit SET pid=1 WHERE"
		       " seq=%lld%.0lld", (long long)k, 0), k);
		/* a row put before the first kept one (as if it had survived the
		 * prune): audit list shows it, so verify must not pass it */
		TAMPER("inserted before the kept rows", exec_fmt("INSERT INTO audit"
		       " SELECT %lld, time, user, session, uid, gid, pid, 'user del',"
		       " ino, offset, length, result, detail, hash FROM audit WHERE"
		       " seq=%lld", (long long)(k - 1), (long long)k), k - 1);
	}
	/* a prune with nothing older than the oldest kept commit does nothing */
	CHECK(unlock_begin(&adm) >= 0);
	rc = audit_prune(adm.s, adm.r, adm.ss, 1, &removed);
	CHECK_EQ(rc, 0);
	CHECK_EQ(removed, 0);
	CHECK_EQ(unlock_finish(&adm, "audit prune", "", rc), 0);
	v = verify();
	CHECK_EQ(v.rc, 0);
}

int main(void)
{
	struct unlock_opts owr;
	char pwr[160];
	int64_t id = 0;

	CHECK_EQ(cipher_init(), 0);
	if (unit_env_init(&e, "audit") || unit_create(&e, NULL, &adm, NULL)) {
		fprintf(stderr, "test_audit: cannot create a store\n");
		return 1;
	}
	CHECK_EQ(unit_user_add(&adm, "writer", ROLE_WRITER, "w-pass", &id), 0);
	CHECK_EQ(unit_passfile(&e, "writer", "w-pass", pwr, sizeof pwr), 0);
	unit_opts(&e, &owr, "writer", pwr);
	CHECK_EQ(unit_login(&owr, &wr), EXIT_OK);
	if (wr.ss) {
		test_verify_and_tamper();
		test_reader();
		test_prune();
		unlock_free(&wr);
	}
	unlock_free(&adm);
	CHECK_EQ(unit_env_done(&e), 0);
	UNIT_END("test_audit");
}
