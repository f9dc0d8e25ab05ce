/*
 * store.c - the SQLite store: connection, schema and its check,
 * transactions, and the filesystem tables (meta, inodes, purge, dentries,
 * blocks, xattrs). Rights, sessions, the ledger and the trail are in
 * store_keys.c, store_audit.c and store_session.c over the same connection.
 *
 * The file is one SQLite database in WAL mode with 32 KiB pages, so a 4 KiB
 * content block (plus its 56 bytes of nonce and tag) sits inline in a
 * b-tree leaf of the WITHOUT ROWID blocks table, keyed by (ino, blk);
 * bigger blocks get 64 KiB pages (store_page_size).
 *
 * The schema belongs to custodyfs. Whoever can write the file can add a
 * trigger that SQLite would run inside our own transactions, or a view, or
 * change a table's definition; so before any statement of ours touches the
 * file, its schema (every row of sqlite_schema) must equal, text for text,
 * the schema this binary creates, built once in an in-memory database from
 * the same statements. Every connection also runs with SQLite's defensive
 * mode on and triggers and views switched off (store_harden), so even a
 * check that was somehow passed could not make SQLite run foreign code.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store_internal.h"

/* Format 2: signed rights, sessions, commits, Merkle trees (src/README.md). */
static const char *const schema_v2[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
	"CREATE TABLE authorities(epoch INTEGER PRIMARY KEY, pk BLOB NOT NULL,"
	" endorsement BLOB NOT NULL, created INTEGER NOT NULL)",
	"CREATE TABLE roster(id INTEGER PRIMARY KEY CHECK (id = 1),"
	" body BLOB NOT NULL, sig BLOB NOT NULL)",
	"CREATE TABLE credentials(user_id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE, opslimit INTEGER NOT NULL,"
	" memlimit INTEGER NOT NULL, salt BLOB NOT NULL, secret BLOB NOT NULL,"
	" created INTEGER NOT NULL)",
	/* failure counters: advisory, nothing signs them */
	"CREATE TABLE logins(user_id INTEGER PRIMARY KEY, failed INTEGER NOT NULL,"
	" locked_until INTEGER NOT NULL, last_login INTEGER NOT NULL)",
	"CREATE TABLE grants(user_id INTEGER NOT NULL, version INTEGER NOT NULL,"
	" kind INTEGER NOT NULL, sealed BLOB NOT NULL,"
	" PRIMARY KEY(user_id, version, kind)) WITHOUT ROWID",
	"CREATE TABLE key_events(id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, event TEXT NOT NULL, from_version INTEGER,"
	" to_version INTEGER, detail TEXT)",
	"CREATE TABLE sessions(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,"
	" roster_counter INTEGER NOT NULL, started INTEGER NOT NULL,"
	" pk BLOB NOT NULL, endorsement BLOB NOT NULL, host TEXT NOT NULL,"
	" pid INTEGER NOT NULL, kind TEXT NOT NULL,"
	" detail_version INTEGER NOT NULL, detail BLOB NOT NULL,"
	" detail_hash BLOB NOT NULL)",
	"CREATE INDEX sessions_kv ON sessions(detail_version)",
	"CREATE TABLE ledger(seq INTEGER PRIMARY KEY, body BLOB NOT NULL,"
	" sigs BLOB NOT NULL, proof BLOB NOT NULL)",
	/* inode numbers come from the signed state (next_ino), never from
	 * SQLite, so a number is not reused while blocks wait in purge */
	"CREATE TABLE inodes(ino INTEGER PRIMARY KEY, file_id BLOB NOT NULL,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, size INTEGER NOT NULL, nblocks INTEGER NOT NULL,"
	" rdev INTEGER NOT NULL, atime INTEGER NOT NULL, mtime INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL, generation INTEGER NOT NULL,"
	" nentries INTEGER NOT NULL, theight INTEGER NOT NULL,"
	" troot BLOB NOT NULL, xdigest BLOB NOT NULL)",
	"CREATE TABLE dentries(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	" tag BLOB NOT NULL, key_version INTEGER NOT NULL, name BLOB NOT NULL,"
	" ino INTEGER NOT NULL, UNIQUE(parent, tag))",
	"CREATE INDEX dentries_ino ON dentries(ino)",
	"CREATE TABLE blocks(ino INTEGER NOT NULL, blk INTEGER NOT NULL,"
	" key_version INTEGER NOT NULL, data BLOB NOT NULL,"
	" PRIMARY KEY(ino, blk)) WITHOUT ROWID",
	/* Merkle tree groups (include/keys/mtree.h) */
	"CREATE TABLE mtree(kind INTEGER NOT NULL, owner INTEGER NOT NULL,"
	" level INTEGER NOT NULL, idx INTEGER NOT NULL, node BLOB NOT NULL,"
	" PRIMARY KEY(kind, owner, level, idx)) WITHOUT ROWID",
	/* freed inodes whose blocks and tree are deleted in small batches */
	"CREATE TABLE purge(ino INTEGER PRIMARY KEY)",
	"CREATE TABLE xattrs(ino INTEGER NOT NULL, tag BLOB NOT NULL,"
	" key_version INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, tag)) WITHOUT ROWID",
	/* key_version indexes: reencrypt finds what is left, key list counts */
	"CREATE INDEX dentries_kv ON dentries(key_version)",
	"CREATE INDEX blocks_kv ON blocks(key_version)",
	"CREATE INDEX xattrs_kv ON xattrs(key_version)",
	"CREATE TABLE mounts(id INTEGER PRIMARY KEY, user TEXT NOT NULL,"
	" host TEXT NOT NULL, pid INTEGER NOT NULL, mountpoint TEXT NOT NULL,"
	" readonly INTEGER NOT NULL, started INTEGER NOT NULL,"
	" heartbeat INTEGER NOT NULL, ended INTEGER NOT NULL DEFAULT 0,"
	" end_reason TEXT)",
	/* failed logins and lockouts: no key is at hand when they happen, so
	 * they wait here (and go to the witness at once) until the next login
	 * moves them into the trail */
	"CREATE TABLE auth_events(id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, event TEXT NOT NULL, uid INTEGER NOT NULL,"
	" pid INTEGER NOT NULL)",
	"CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, session INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL, pid INTEGER NOT NULL, op TEXT NOT NULL,"
	" ino INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,"
	" result INTEGER NOT NULL, detail BLOB NOT NULL, hash BLOB NOT NULL)",
	NULL
};

/* Format 1, as custodyfs 0.1 created it: only custodyctl upgrade opens it. */
static const char *const schema_v1[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
	"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" role TEXT NOT NULL, opslimit INTEGER NOT NULL, memlimit INTEGER NOT NULL,"
	" salt BLOB NOT NULL, box_pk BLOB NOT NULL, secret BLOB NOT NULL,"
	" sig BLOB NOT NULL, failed INTEGER NOT NULL DEFAULT 0,"
	" locked_until INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
	" last_login INTEGER NOT NULL DEFAULT 0)",
	"CREATE TABLE master_keys(version INTEGER PRIMARY KEY, status TEXT NOT NULL,"
	" created INTEGER NOT NULL, activated INTEGER NOT NULL DEFAULT 0,"
	" expires INTEGER NOT NULL DEFAULT 0, retired INTEGER NOT NULL DEFAULT 0,"
	" checkval BLOB NOT NULL, audit_pk BLOB NOT NULL, sig BLOB NOT NULL)",
	"CREATE TABLE key_grants(user_id INTEGER NOT NULL, version INTEGER NOT NULL,"
	" kind TEXT NOT NULL, sealed BLOB NOT NULL,"
	" PRIMARY KEY(user_id, version, kind)) WITHOUT ROWID",
	"CREATE TABLE key_events(id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, event TEXT NOT NULL, from_version INTEGER,"
	" to_version INTEGER, detail TEXT)",
	"CREATE TABLE inodes(ino INTEGER PRIMARY KEY AUTOINCREMENT,"
	" file_id BLOB NOT NULL,"
	" key_version INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL, nlink INTEGER NOT NULL, size INTEGER NOT NULL,"
	" nblocks INTEGER NOT NULL, rdev INTEGER NOT NULL, atime INTEGER NOT NULL,"
	" mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,"
	" generation INTEGER NOT NULL, mac BLOB NOT NULL)",
	"CREATE TABLE dentries(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	" tag BLOB NOT NULL, key_version INTEGER NOT NULL, name BLOB NOT NULL,"
	" ino INTEGER NOT NULL, UNIQUE(parent, tag))",
	"CREATE INDEX dentries_ino ON dentries(ino)",
	"CREATE TABLE blocks(ino INTEGER NOT NULL, blk INTEGER NOT NULL,"
	" key_version INTEGER NOT NULL, data BLOB NOT NULL,"
	" PRIMARY KEY(ino, blk)) WITHOUT ROWID",
	"CREATE TABLE purge(ino INTEGER PRIMARY KEY)",
	"CREATE TABLE xattrs(ino INTEGER NOT NULL, tag BLOB NOT NULL,"
	" key_version INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, tag)) WITHOUT ROWID",
	"CREATE INDEX inodes_kv ON inodes(key_version)",
	"CREATE INDEX dentries_kv ON dentries(key_version)",
	"CREATE INDEX blocks_kv ON blocks(key_version)",
	"CREATE INDEX xattrs_kv ON xattrs(key_version)",
	"CREATE TABLE mounts(id INTEGER PRIMARY KEY, user TEXT NOT NULL,"
	" host TEXT NOT NULL, pid INTEGER NOT NULL, mountpoint TEXT NOT NULL,"
	" readonly INTEGER NOT NULL, started INTEGER NOT NULL,"
	" heartbeat INTEGER NOT NULL, ended INTEGER NOT NULL DEFAULT 0,"
	" end_reason TEXT)",
	"CREATE TABLE auth_events(id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, event TEXT NOT NULL, pid INTEGER NOT NULL)",
	"CREATE TABLE audit_keys(id INTEGER PRIMARY KEY,"
	" key_version INTEGER NOT NULL, sealed BLOB NOT NULL)",
	"CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
	" user TEXT NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" pid INTEGER NOT NULL, op TEXT NOT NULL, ino INTEGER NOT NULL,"
	" offset INTEGER NOT NULL, length INTEGER NOT NULL, result INTEGER NOT NULL,"
	" session INTEGER NOT NULL, detail BLOB NOT NULL, mac BLOB NOT NULL)",
	NULL
};

const char *const *store_schema_sql(int format)
{
	return format == 1 ? schema_v1 : format == 2 ? schema_v2 : NULL;
}

/* Statement ids of this file (store_keys.c etc. number from STORE_Q_*). */
enum {
	Q_META_GET, Q_META_SET, Q_META_DELETE,
	Q_INODE_GET, Q_INODE_INSERT, Q_INODE_UPDATE, Q_INODE_DELETE,
	Q_INODE_PURGE, Q_INODE_DEL_XATTRS, Q_INODE_COUNT, Q_INODE_MAX,
	Q_DENTRY_GET, Q_DENTRY_GET_ID, Q_DENTRY_INSERT, Q_DENTRY_DELETE,
	Q_DENTRY_UPDATE, Q_DENTRY_EACH, Q_DENTRY_OF_INO,
	Q_BLOCK_GET, Q_BLOCK_INSERT, Q_BLOCK_UPDATE, Q_BLOCK_TRUNC,
	Q_BLOCK_RANGE, Q_BLOCK_NEXT, Q_BLOCK_EACH, Q_BLOCK_COUNT, Q_BLOCK_DELETE,
	Q_BLOCK_NEXT_INO, Q_BLOCK_DEL_INO, Q_DENTRY_DEL_PARENT,
	Q_PURGE_QUEUE, Q_PURGE_NEXT, Q_PURGE_BLOCKS, Q_PURGE_TREE, Q_PURGE_DONE,
	Q_PURGE_PENDING,
	Q_XATTR_PUT, Q_XATTR_DELETE, Q_XATTR_EACH, Q_XATTR_NEXT_INO,
	Q_TX_BEGIN, Q_TX_COMMIT, Q_TX_ROLLBACK, Q_TX_READ, Q_DATA_VERSION,
	Q_SCHEMA_VERSION,
	Q_FS_LAST /* store_keys.c and store_audit.c number from here */
};
_Static_assert(Q_FS_LAST <= STORE_Q_KEYS, "statement ids overlap");

sqlite3_stmt *store_stmt(struct store *s, int id, const char *sql)
{
	if (id < 0 || id >= STORE_MAX_STMTS)
		return NULL;
	if (!s->stmt[id] &&
	    sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	                       &s->stmt[id], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(s->stmt[id]);
	sqlite3_clear_bindings(s->stmt[id]);
	return s->stmt[id];
}

int store_err(struct store *s, int rc)
{
	if (s && rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		s->last_err = rc & 0xff;
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_CONSTRAINT: return -EEXIST;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_NOTADB: return -ENOTSUP;
	case SQLITE_CANTOPEN: return -EACCES;
	case SQLITE_PERM: return -EACCES;
	case SQLITE_CORRUPT: return -EIO;
	default: return -EIO;
	}
}

int store_exec(struct store *s, const char *sql)
{
	return store_err(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static void wait_done(struct store *s, int rc);

int store_step_done(struct store *s, sqlite3_stmt *st)
{
	int rc;

	if (!st)
		return -EIO;
	if (s->tx_open && sqlite3_get_autocommit(s->db)) {
		/* SQLite rolled our transaction back by itself (a full disk, an
		 * I/O error): the rest of it must not autocommit piecemeal */
		sqlite3_reset(st);
		return -EIO;
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? 0 : store_err(s, rc);
	if (s->wait_start)
		wait_done(s, rc);
	return rc;
}

int store_col_blob(sqlite3_stmt *st, int col, void *buf, size_t cap,
                   size_t *len, int exact)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_BLOB && n != 0)
		return -EIO;
	if (n > cap || (exact && n != cap))
		return -EIO;
	if (n)
		memcpy(buf, p, n);
	if (len)
		*len = n;
	return 0;
}

int store_col_text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!t || n >= cap || memchr(t, 0, n))
		return -EIO;
	memcpy(buf, t, n);
	buf[n] = 0;
	return 0;
}

int store_col_int(sqlite3_stmt *st, int col, int64_t lo, int64_t hi,
                  int64_t *out)
{
	int64_t v;

	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return -EIO;
	v = sqlite3_column_int64(st, col);
	if (v < lo || v > hi)
		return -EIO;
	*out = v;
	return 0;
}

int store_col_u32(sqlite3_stmt *st, int col, uint32_t *out)
{
	int64_t v;
	int rc = store_col_int(st, col, 0, UINT32_MAX, &v);

	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

int store_col_i64(sqlite3_stmt *st, int col, int64_t *out)
{
	return store_col_int(st, col, INT64_MIN, INT64_MAX, out);
}

int store_col_u64(sqlite3_stmt *st, int col, uint64_t *out)
{
	int64_t v;
	int rc = store_col_i64(st, col, &v);

	if (!rc)
		*out = (uint64_t)v;
	return rc;
}

const void *store_col_bytes(sqlite3_stmt *st, int col, size_t *len)
{
	int type = sqlite3_column_type(st, col);
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	*len = 0;
	if (type != SQLITE_BLOB && !(type == SQLITE_TEXT && n == 0))
		return NULL;
	*len = n;
	return p && n ? p : (const void *)"";
}

const char *store_errmsg(struct store *s)
{
	if (store_shm_cut())
		return STORE_CUT_MSG;
	return s && s->db ? sqlite3_errmsg(s->db) : "out of memory";
}

void store_close_db(sqlite3 *db)
{
	/* SQLite's checkpoint at the last close would copy pages by this
	 * process's index of the WAL, zeros since the cut (store_guard.c) */
	if (store_shm_cut())
		sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_close(db);
}

int store_cut_err(struct store *s)
{
	s->last_err = SQLITE_IOERR;
	return -EIO;
}

int store_format(struct store *s)
{
	return s->format;
}

int store_readonly(struct store *s)
{
	return s->readonly;
}

int store_harden(sqlite3 *db)
{
	/* before any statement: no trigger or view of anyone else's ever
	 * runs, schema-changing pragmas and shadow-table writes are refused,
	 * functions in the schema are limited to the innocuous ones */
	static const int off[] = { SQLITE_DBCONFIG_ENABLE_TRIGGER,
	                           SQLITE_DBCONFIG_ENABLE_VIEW,
	                           SQLITE_DBCONFIG_TRUSTED_SCHEMA,
	                           SQLITE_DBCONFIG_DQS_DML,
	                           SQLITE_DBCONFIG_DQS_DDL,
	                           SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION };
	int v = -1;

	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &v) != SQLITE_OK ||
	    v != 1)
		return -EIO;
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		v = -1;
		if (sqlite3_db_config(db, off[i], 0, &v) != SQLITE_OK || v != 0)
			return -EIO;
	}
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * SQLite's busy handler: wait up to busy_ms for another process's lock,
 * as sqlite3_busy_timeout would (the same growing naps, capped lower, so
 * a lock freed between another process's commits is taken sooner), and
 * tell the wait notice once the wait is long.
 */
static int busy_wait(void *arg, int count)
{
	static const int naps[] = { 1, 2, 5, 10, 15, 20, 25, 25, 25, 50 };
	struct store *s = arg;
	int64_t now = mono_ms(), waited;
	int nap = naps[count < 10 ? count : 9];
	struct timespec ts;

	if (count == 0) {
		s->wait_start = now;
		s->wait_said = 0;
	}
	waited = now - s->wait_start;
	if (waited >= s->busy_ms) {
		s->waited_total += waited;
		if (s->wait_said && s->wait_fn)
			s->wait_fn(s->wait_arg, waited, -1);
		s->wait_said = 0;
		s->wait_start = 0;
		return 0;
	}
	if (!s->wait_said && s->wait_fn && waited >= s->wait_after_ms) {
		s->wait_said = 1;
		s->wait_fn(s->wait_arg, waited, 0);
	}
	if (nap > s->busy_ms - waited)
		nap = (int)(s->busy_ms - waited);
	ts.tv_sec = 0;
	ts.tv_nsec = (long)nap * 1000000;
	nanosleep(&ts, NULL);
	return 1;
}

static void busy_on(struct store *s)
{
	sqlite3_busy_handler(s->db, busy_wait, s);
}

/* After a statement that may have waited: the wait is over. */
static void wait_done(struct store *s, int rc)
{
	if (!s->wait_start)
		return;
	if (rc != -EBUSY) {
		int64_t waited = mono_ms() - s->wait_start;
		s->waited_total += waited;
		if (s->wait_said && s->wait_fn)
			s->wait_fn(s->wait_arg, waited, rc ? -1 : 1);
	}
	s->wait_said = 0;
	s->wait_start = 0;
}

void store_set_wait_notice(struct store *s, int after_ms,
                           void (*fn)(void *arg, int64_t waited_ms,
                                      int outcome),
                           void *arg)
{
	s->wait_fn = fn;
	s->wait_arg = arg;
	s->wait_after_ms = after_ms;
}

int64_t store_waited_ms(const struct store *s)
{
	return s->waited_total;
}

static int store_configure(struct store *s, int busy_ms)
{
	int rc;

	s->busy_ms = busy_ms;
	busy_on(s);
	sqlite3_extended_result_codes(s->db, 0);
	if ((rc = store_harden(s->db)))
		return rc;
	/* secure_delete=ON: deleted cells and freed pages are zeroed, so
	 * deleted ciphertext and crypto-shredded key grants do not linger in
	 * the file. FAST zeroes cells but not freed pages: after a 64 MiB
	 * file was purged, 57% of 32-byte pieces of its blocks were still in
	 * free pages; with ON none. ON costs nothing measurable here: purging
	 * 1 GiB at unmount 2.3-2.8 s either way, mounted 2.9-5 s either way
	 * (README, backup). The WAL's older frames go with the TRUNCATE
	 * checkpoint (store_checkpoint). */
	/* cache_size: 56 MiB (1,792 pages of 32 KiB). A 4 KiB random access
	 * costs a whole page (copied from the OS cache on every miss: a fifth of a
	 * random read's time); 8 -> 32 MiB gave random reads +1-10% and
	 * random writes +3-7% on a 256 MiB file, 32 -> 56 MiB random reads
	 * +20% and writes +30%. It fills after login (the 64 MiB of
	 * Argon2id freed by then): the daemon's peak on an untar of 22k
	 * files went from 68 to 85 MiB, within the 128 MiB it may use. */
	rc = store_exec(s, "PRAGMA secure_delete=ON; PRAGMA foreign_keys=OFF;"
	                   " PRAGMA cache_size=-57344; PRAGMA temp_store=FILE;"
	                   " PRAGMA trusted_schema=OFF");
	if (rc)
		return rc;
	if (!s->readonly) {
		/* FULL: a commit (fsync, group commit) is on disk when it returns */
		rc = store_exec(s, "PRAGMA synchronous=FULL");
		if (!rc)
			sqlite3_wal_autocheckpoint(s->db, STORE_AUTOCHECKPOINT);
	}
	return rc;
}

int store_pragma_i64(struct store *s, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : store_err(s, rc);
}

/* ---- the schema check ---- */

struct schema_row {
	char *type, *name, *tbl, *sql; /* sql NULL for autoindexes */
};

struct schema {
	struct schema_row *rows;
	size_t n;
};

static char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

static void schema_free(struct schema *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->rows[i].type);
		free(sc->rows[i].name);
		free(sc->rows[i].tbl);
		free(sc->rows[i].sql);
	}
	free(sc->rows);
	sc->rows = NULL;
	sc->n = 0;
}

/* Every row of db's sqlite_schema, ordered by name. */
static int schema_read(sqlite3 *db, struct schema *out)
{
	sqlite3_stmt *st;
	int rc;

	out->rows = NULL;
	out->n = 0;
	if (sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, sql FROM"
	                       " sqlite_schema ORDER BY name", -1, &st,
	                       NULL) != SQLITE_OK)
		return -ENOTSUP; /* not a database, encrypted, damaged header */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct schema_row *r = realloc(out->rows, (out->n + 1) * sizeof *r);
		if (!r) {
			rc = SQLITE_NOMEM;
			break;
		}
		out->rows = r;
		r = &out->rows[out->n++];
		r->type = dup_col(st, 0);
		r->name = dup_col(st, 1);
		r->tbl = dup_col(st, 2);
		r->sql = dup_col(st, 3);
		if (!r->type || !r->name || !r->tbl) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		schema_free(out);
		return rc == SQLITE_BUSY ? -EBUSY : rc == SQLITE_NOMEM ? -ENOMEM
		                                                        : -ENOTSUP;
	}
	return 0;
}

/* The schema a format creates, read back from an in-memory database (so
 * the texts are exactly as SQLite stores them). Built once per format. */
static struct schema expected[3];
static int expected_rc[3];
static pthread_once_t expected_once = PTHREAD_ONCE_INIT;

static void expected_build(void)
{
	for (int f = 1; f <= 2; f++) {
		const char *const *sql = store_schema_sql(f);
		sqlite3 *db = NULL;
		int rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE,
		                         NULL) == SQLITE_OK ? 0 : -ENOMEM;
		for (int i = 0; !rc && sql[i]; i++)
			if (sqlite3_exec(db, sql[i], NULL, NULL, NULL) != SQLITE_OK)
				rc = -EIO;
		if (!rc)
			rc = schema_read(db, &expected[f]);
		expected_rc[f] = rc;
		sqlite3_close(db);
	}
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int schema_check(struct store *s, int format, char *why, size_t whylen)
{
	struct schema have;
	struct schema *want;
	size_t i = 0, j = 0;
	int rc;

	pthread_once(&expected_once, expected_build);
	if (format < 1 || format > 2)
		return -ENOTSUP;
	if (expected_rc[format])
		return expected_rc[format];
	want = &expected[format];
	if ((rc = schema_read(s->db, &have)))
		return rc;
	/* both lists are sorted by name: walk them together */
	while (i < have.n || j < want->n) {
		int c = i == have.n ? 1 : j == want->n ? -1
		        : strcmp(have.rows[i].name, want->rows[j].name);
		if (c < 0) {
			if (why)
				snprintf(why, whylen, "the store holds a %s '%s' that"
				         " custodyfs did not create", have.rows[i].type,
				         have.rows[i].name);
			rc = STORE_E_SCHEMA;
			break;
		}
		if (c > 0) {
			if (why)
				snprintf(why, whylen, "the store lacks the %s '%s'",
				         want->rows[j].type, want->rows[j].name);
			rc = STORE_E_SCHEMA;
			break;
		}
		if (!same(have.rows[i].type, want->rows[j].type) ||
		    !same(have.rows[i].tbl, want->rows[j].tbl) ||
		    !same(have.rows[i].sql, want->rows[j].sql)) {
			if (why)
				snprintf(why, whylen, "the definition of %s '%s' was"
				         " changed", have.rows[i].type, have.rows[i].name);
			rc = STORE_E_SCHEMA;
			break;
		}
		i++;
		j++;
	}
	schema_free(&have);
	return rc;
}

static int pragma_int(struct store *s, int id, const char *sql, int64_t *v)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : store_err(s, rc);
}

int store_schema_verify(struct store *s, char *why, size_t whylen)
{
	int64_t v = 0;
	int rc = pragma_int(s, Q_SCHEMA_VERSION, "PRAGMA schema_version", &v);

	if (rc)
		return rc;
	if (v == s->schema_version)
		return 0;
	if ((rc = schema_check(s, s->format, why, whylen)))
		return rc;
	s->schema_version = v;
	return 0;
}

int store_changed(struct store *s)
{
	int64_t v = 0;
	int rc = pragma_int(s, Q_DATA_VERSION, "PRAGMA data_version", &v);

	if (rc)
		return rc;
	if (s->data_version_seen && v == s->data_version)
		return 0;
	s->data_version = v;
	s->data_version_seen = 1;
	return 1;
}

uint32_t store_page_size(uint32_t block_size)
{
	/* the sealed block (nonce and tag), its key and record header */
	uint32_t cell = block_size + 56 + 32;

	return cell <= (STORE_PAGE_SIZE - 12) * 64 / 255 - 23 ? STORE_PAGE_SIZE
	                                                       : STORE_PAGE_SIZE_BIG;
}

int store_create_flags(uint32_t block_size)
{
	return STORE_CREATE |
	       (store_page_size(block_size) == STORE_PAGE_SIZE ? 0 : STORE_BIG_PAGES);
}

static int store_create_schema(struct store *s, int flags)
{
	const char *const *sql = schema_v2;
	int rc;
	char q[64];

	snprintf(q, sizeof q, "PRAGMA page_size=%d", flags & STORE_BIG_PAGES ?
	         STORE_PAGE_SIZE_BIG : STORE_PAGE_SIZE);
	if ((rc = store_exec(s, q)) ||
	    (rc = store_exec(s, "PRAGMA journal_mode=WAL")) ||
	    (rc = store_exec(s, "BEGIN")))
		return rc;
	for (int i = 0; sql[i]; i++)
		if ((rc = store_exec(s, sql[i]))) {
			store_exec(s, "ROLLBACK");
			return rc;
		}
	/* the format is the header's user_version and nothing else: no meta
	 * row repeats it (one a file writer adds is never read) */
	if ((rc = store_exec(s, "PRAGMA application_id=1129600070")) ||
	    (rc = store_exec(s, "PRAGMA user_version=2")) ||
	    (rc = store_exec(s, "COMMIT"))) {
		store_exec(s, "ROLLBACK");
		return rc;
	}
	s->format = STORE_FORMAT_VERSION;
	return 0;
}

/*
 * From format 2 on no meta row names the format (format 1 kept one): a
 * row 'format' is not ours, and whatever it claims is not believed. It is
 * refused like a schema object custodyfs did not create (after the schema
 * check: the statement runs on a schema known to be ours).
 */
static int meta_format_check(struct store *s, char *why, size_t whylen)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM meta WHERE key='format'",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_err(s, rc);
	if (why)
		snprintf(why, whylen, "it fails verification: it holds a meta row"
		         " 'format' that custodyfs does not write (the format is the"
		         " file header's, %d)", s->format);
	return STORE_E_SCHEMA;
}

int store_header_format(struct store *s, int64_t *fmt)
{
	return store_pragma_i64(s, "PRAGMA user_version", fmt);
}

int store_journal_mode(struct store *s, const char *mode)
{
	sqlite3_stmt *st;
	char q[48];
	int rc, ok = 0;

	snprintf(q, sizeof q, "PRAGMA journal_mode=%s", mode);
	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *now = sqlite3_column_text(st, 0);
		ok = now && !strcmp((const char *)now, mode);
	}
	sqlite3_finalize(st);
	/* our own switch (compact's page size) removes and remakes the -shm:
	 * the file it is now is learnt again (store_shm_check) */
	s->shm_known = 0;
	if (rc != SQLITE_ROW)
		return store_err(s, rc);
	return ok ? 0 : -EBUSY;
}

/*
 * A read-write connection runs in WAL mode and nothing else: durability
 * (store_sync syncs the WAL), the checkpointer and readers beside the
 * writer all rest on it. The mode is a header field any writer of the file
 * can change, and an interrupted compact that changed the page size leaves
 * the file in rollback mode; either way it is put back here, or the open
 * fails (another process has the file open in the other mode).
 */
static int store_wal_check(struct store *s, char *why, size_t whylen)
{
	/* a no-op (and no lock) when the file is in WAL mode already */
	int rc = store_journal_mode(s, "wal");

	if (rc && why && whylen)
		snprintf(why, whylen, "the store is not in WAL mode and cannot be"
		         " put back into it (another process has it open?)");
	return rc;
}

/*
 * A custodyfs store has our application_id, a schema that is exactly ours
 * and a known format. application_id and user_version are in the file
 * header, so reading them runs nothing of the schema's; the header's
 * user_version is the format, the only place it is read from.
 */
static int store_validate(struct store *s, int flags, char *why,
                          size_t whylen)
{
	int64_t appid = 0, fmt = 0;
	int rc;

	if ((rc = store_pragma_i64(s, "PRAGMA application_id", &appid)) ||
	    (rc = store_header_format(s, &fmt)))
		return rc == -EBUSY ? rc : -ENOTSUP;
	if (appid != 1129600070)
		return -ENOTSUP;
	if (fmt < 1)
		return -ENOTSUP; /* 0 or negative: not a format, a damaged header */
	if (fmt > STORE_FORMAT_VERSION) {
		if (why)
			snprintf(why, whylen, "made by a newer custodyfs (format %lld):"
			         " upgrade this binary", (long long)fmt);
		return -EPROTO;
	}
	if ((rc = schema_check(s, (int)fmt, why, whylen)))
		return rc;
	if (fmt < STORE_FORMAT_VERSION && !(flags & STORE_ANYFORMAT)) {
		if (why)
			snprintf(why, whylen, "format %lld, older than this custodyfs"
			         " (%d): run 'custodyctl upgrade' as an admin",
			         (long long)fmt, STORE_FORMAT_VERSION);
		return STORE_E_OLDFORMAT;
	}
	s->format = (int)fmt;
	if (fmt >= 2 && (rc = meta_format_check(s, why, whylen)))
		return rc;
	return pragma_int(s, Q_SCHEMA_VERSION, "PRAGMA schema_version",
	                  &s->schema_version);
}

/* Whether the directory holding path lets us create files in it (SQLite
 * keeps STORE-wal and STORE-shm beside the store). */
static int dir_writable(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct statvfs fs;

	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if (statvfs(dir, &fs) == 0 && (fs.f_flag & ST_RDONLY))
		return 0;
	return access(dir, W_OK | X_OK) == 0;
}

/* path + suffix exists and is writable for us. */
static int side_writable(const char *path, const char *suffix)
{
	char p[PATH_MAX + 8];

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return access(p, R_OK | W_OK) == 0;
}

/* path + suffix holds something (a WAL with frames not folded in yet). */
static int side_nonempty(const char *path, const char *suffix)
{
	char p[PATH_MAX + 8];
	struct stat sb;

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &sb) == 0 && sb.st_size > 0;
}

/*
 * Why path cannot be opened as asked, in errno terms, before SQLite, with
 * the reason in why. *immutable is set for a read-only open of a store
 * whose lock file (STORE-shm) cannot be made (read-only media, a snapshot,
 * a directory only its owner may write) and whose WAL is empty: nobody can
 * be writing it then, and SQLite reads the file as it is.
 */
static int path_check(const char *path, int readonly, int *immutable,
                      char *why, size_t whylen)
{
	struct stat sb;
	struct statvfs fs;

	*immutable = 0;
	if (stat(path, &sb) != 0)
		return -errno;
	if (S_ISDIR(sb.st_mode))
		return -EISDIR;
	if (!S_ISREG(sb.st_mode))
		return -ENOTSUP;
	if (access(path, R_OK) != 0)
		return -errno;
	if (!readonly) {
		if (statvfs(path, &fs) == 0 && (fs.f_flag & ST_RDONLY))
			return -EROFS;
		if (access(path, W_OK) != 0)
			return -errno;
		if (!dir_writable(path) &&
		    !(side_writable(path, "-wal") && side_writable(path, "-shm"))) {
			if (why && whylen)
				snprintf(why, whylen, "permission denied: its directory is"
				         " not writable for you (SQLite keeps '%s-wal' and"
				         " '%s-shm' beside it)", path, path);
			return -EACCES;
		}
		return 0;
	}
	if (dir_writable(path) || side_writable(path, "-shm"))
		return 0;
	if (side_nonempty(path, "-wal")) {
		if (why && whylen)
			snprintf(why, whylen, "permission denied: its write-ahead log"
			         " '%s-wal' holds commits not yet in the file, and they"
			         " cannot be read without a '%s-shm' beside it, which you"
			         " cannot create (its owner folds them in by unmounting)",
			         path, path);
		return -EACCES;
	}
	*immutable = 1;
	return 0;
}

/* A file: URI for SQLite, the path percent-encoded, read-only and
 * immutable. */
static void immutable_uri(const char *path, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = (size_t)snprintf(out, cap, "file:");

	for (const unsigned char *p = (const unsigned char *)path; *p && n + 4 < cap;
	     p++) {
		if (*p == '%' || *p == '?' || *p == '#' || *p < 0x21 || *p > 0x7e) {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		} else
			out[n++] = (char)*p;
	}
	out[n] = 0;
	snprintf(out + n, cap - n, "?mode=ro&immutable=1");
}

int store_open(const char *path, int flags, int busy_ms, struct store **out,
               char *why, size_t whylen)
{
	struct store *s;
	char uri[3 * PATH_MAX + 32];
	int rc, oflags, immutable = 0;

	*out = NULL;
	if (why && whylen)
		why[0] = 0;
	store_guard();
	if (flags & STORE_CREATE) {
		/* refuse to touch anything that exists, and create 0600 */
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		                        O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
	} else if ((rc = path_check(path, flags & STORE_READONLY, &immutable,
	                            why, whylen)))
		return rc;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->wal_fd = s->dir_fd = -1;
	s->readonly = !!(flags & STORE_READONLY);
	oflags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (immutable) {
		immutable_uri(path, uri, sizeof uri);
		rc = sqlite3_open_v2(uri, &s->db, oflags | SQLITE_OPEN_NOMUTEX |
		                     SQLITE_OPEN_URI, NULL);
	} else
		rc = sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = store_err(s, rc);
		goto fail;
	}
	if ((rc = store_configure(s, busy_ms)))
		goto fail;
	if (flags & STORE_CREATE)
		rc = store_create_schema(s, flags);
	else if (!(rc = store_validate(s, flags, why, whylen)) && !s->readonly)
		rc = store_wal_check(s, why, whylen);
	if (rc)
		goto fail;
	store_shm_note(s, path);
	*out = s;
	return 0;
fail:
	if (rc == -EIO)
		rc = -ENOTSUP;
	store_close(s);
	if (flags & STORE_CREATE)
		unlink(path);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_checkpointer_stop(s);
	for (int i = 0; i < STORE_MAX_STMTS; i++)
		if (s->stmt[i])
			sqlite3_finalize(s->stmt[i]);
	if (s->db) {
		/* fold the WAL in if nobody else is using the store; never wait
		 * for a mount that is */
		if (!s->readonly && s->format && sqlite3_get_autocommit(s->db))
			store_checkpoint(s);
		store_close_db(s->db);
	}
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	free(s->shm_path);
	free(s);
}

/* One descriptor for the mount's life: a write error of the WAL is
 * reported to every descriptor open when it happens, but to one opened
 * afterwards only if nobody has seen it yet (SQLite's own and the
 * checkpointer's syncs may have), so a fresh open per sync could miss
 * it and call lost data durable. */
int store_defer_sync(struct store *s, int on)
{
	const char *db = sqlite3_db_filename(s->db, "main");
	const char *wal = db ? sqlite3_filename_wal(db) : NULL;
	char dir[PATH_MAX], *slash;
	int rc;

	if (!on) {
		if (s->wal_fd < 0)
			return 0;
		rc = store_exec(s, "PRAGMA synchronous=FULL");
		close(s->wal_fd);
		if (s->dir_fd >= 0)
			close(s->dir_fd);
		s->wal_fd = s->dir_fd = -1;
		return rc;
	}
	if (s->readonly || !wal || !*wal || s->wal_fd >= 0 ||
	    strlen(wal) >= sizeof dir)
		return -EINVAL;
	/* the names SQLite gives are absolute */
	strcpy(dir, wal);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	if ((s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = -errno;
		close(s->wal_fd);
		s->wal_fd = -1;
		return rc;
	}
	s->dir_synced = 0;
	if ((rc = store_exec(s, "PRAGMA synchronous=NORMAL"))) {
		close(s->wal_fd);
		close(s->dir_fd);
		s->wal_fd = s->dir_fd = -1;
	}
	return rc;
}

int store_sync(struct store *s)
{
	if (s->wal_fd < 0)
		return 0; /* commits wait for the disk themselves */
	if (fdatasync(s->wal_fd) != 0)
		return -errno;
	if (!s->dir_synced && fsync(s->dir_fd) != 0)
		return -errno;
	s->dir_synced = 1;
	return 0;
}

/* Transaction control runs on every filesystem operation: prepared once. */
static int tx_stmt(struct store *s, int id, const char *sql)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	return st ? store_step_done(s, st) : -EIO;
}

int store_begin(struct store *s)
{
	int rc;

	if (store_shm_check(s))
		return store_cut_err(s); /* store_guard.c: write nothing more */
	s->wait_start = 0;
	rc = tx_stmt(s, Q_TX_BEGIN, "BEGIN IMMEDIATE");
	s->tx_open = !rc;
	return rc;
}

int store_read_begin(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return -EBUSY; /* inside a transaction already */
	s->wait_start = 0;
	return tx_stmt(s, Q_TX_READ, "BEGIN DEFERRED");
}

void store_read_end(struct store *s)
{
	/* nothing was written in it: COMMIT only drops the read snapshot */
	if (!s->tx_open && !sqlite3_get_autocommit(s->db))
		tx_stmt(s, Q_TX_COMMIT, "COMMIT");
}

int store_commit(struct store *s)
{
	int rc;

	if (store_shm_cut()) {
		store_rollback(s);
		return store_cut_err(s);
	}
	rc = tx_stmt(s, Q_TX_COMMIT, "COMMIT");

	s->tx_open = !sqlite3_get_autocommit(s->db);
	return rc;
}

int64_t store_changes(struct store *s)
{
	return (int64_t)sqlite3_total_changes64(s->db);
}

int store_tx_lost_errno(struct store *s)
{
	return s->last_err == SQLITE_FULL ? -ENOSPC : -EIO;
}

void store_rollback(struct store *s)
{
	s->tx_open = 0;
	if (!sqlite3_get_autocommit(s->db))
		tx_stmt(s, Q_TX_ROLLBACK, "ROLLBACK");
}

int store_in_transaction(struct store *s)
{
	return !sqlite3_get_autocommit(s->db);
}

int store_damaged(const struct store *s)
{
	return s->last_err == SQLITE_CORRUPT;
}

int store_checkpoint(struct store *s)
{
	int rc, log = 0, done = 0;

	if (store_shm_check(s))
		return store_cut_err(s); /* its index of the WAL is not the file's */
	/* PASSIVE never waits; TRUNCATE (empties the WAL file) only if it
	 * can have every lock at once: the busy timeout is off meanwhile, so
	 * a reader holding an old snapshot costs a retry, not a stall */
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
	                               &log, &done);
	if (rc != SQLITE_OK)
		return store_err(s, rc);
	sqlite3_busy_timeout(s->db, 0);
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
	                               NULL, NULL);
	busy_on(s);
	return store_err(s, rc);
}

int store_checkpoint_wait(struct store *s, int64_t ms)
{
	struct timespec nap = { 0, STORE_CKPT_RETRY_MS * 1000000L };
	int64_t waited = 0;
	int rc;

	/* a mount's read transactions last one operation, a checkpoint of
	 * the background checkpointer a few ms: retry until they move on */
	while ((rc = store_checkpoint(s)) == -EBUSY && waited < ms) {
		nanosleep(&nap, NULL);
		waited += STORE_CKPT_RETRY_MS;
	}
	return rc;
}

/* Whether the file at path holds one of the needles (chunks overlap by
 * len - 1 bytes, so none is missed at a chunk's edge). */
static int path_holds(const char *path, const uint8_t *needles, size_t n,
                      size_t len)
{
	enum { CHUNK = 8 << 20 };
	uint8_t *buf;
	size_t have = 0;
	int fd, rc = 0;

	if (len == 0 || len > 4096)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!(buf = malloc(CHUNK + len))) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t got = read(fd, buf + have, CHUNK);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		have += (size_t)got;
		for (size_t i = 0; i < n && have >= len; i++)
			if (memmem(buf, have, needles + i * len, len)) {
				rc = 1;
				break;
			}
		if (rc || got == 0)
			break;
		if (have >= len) {
			memmove(buf, buf + have - (len - 1), len - 1);
			have = len - 1;
		}
	}
	free(buf);
	close(fd);
	return rc;
}

int store_file_holds(struct store *s, const uint8_t *needles, size_t n,
                     size_t len)
{
	const char *db = sqlite3_db_filename(s->db, "main");
	char wal[4096];
	int a, b;

	if (!db || !db[0] ||
	    (size_t)snprintf(wal, sizeof wal, "%s-wal", db) >= sizeof wal)
		return -EINVAL;
	if (n == 0)
		return 0;
	if ((a = path_holds(db, needles, n, len)) < 0)
		return a;
	if ((b = path_holds(wal, needles, n, len)) < 0)
		return b;
	return (a ? STORE_IN_FILE : 0) | (b ? STORE_IN_WAL : 0);
}

int64_t store_wal_bytes(struct store *s)
{
	const char *db = sqlite3_db_filename(s->db, "main");
	char wal[4096];
	struct stat sb;

	if (!db || !db[0] ||
	    (size_t)snprintf(wal, sizeof wal, "%s-wal", db) >= sizeof wal)
		return -EINVAL;
	if (stat(wal, &sb) != 0)
		return errno == ENOENT ? 0 : -errno;
	return (int64_t)sb.st_size;
}


int store_file_stats(struct store *s, uint64_t *pages, uint64_t *page_size,
                     uint64_t *free_pages)
{
	int64_t v[3] = { 0, 0, 0 };
	int rc;

	if ((rc = store_pragma_i64(s, "PRAGMA page_count", &v[0])) ||
	    (rc = store_pragma_i64(s, "PRAGMA page_size", &v[1])) ||
	    (rc = store_pragma_i64(s, "PRAGMA freelist_count", &v[2])))
		return rc;
	*pages = v[0] > 0 ? (uint64_t)v[0] : 0;
	*page_size = v[1] > 0 ? (uint64_t)v[1] : 0;
	*free_pages = v[2] > 0 ? (uint64_t)v[2] : 0;
	return 0;
}

int store_integrity_check(struct store *s, char *msg, size_t cap)
{
	sqlite3_stmt *st;
	int rc, ok = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st,
	                       NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		snprintf(msg, cap, "%s", t ? t : "?");
		ok = t && strcmp(t, "ok") == 0;
	}
	sqlite3_finalize(st);
	return ok ? 0 : -EIO;
}

/* ---- meta ---- */

int store_meta_get(struct store *s, const char *key, void *buf, size_t cap,
                   size_t *len)
{
	sqlite3_stmt *st = store_stmt(s, Q_META_GET,
	        "SELECT value FROM meta WHERE key=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (n > cap)
			rc = -EIO;
		else {
			if (n)
				memcpy(buf, p, n);
			*len = n;
			rc = 0;
		}
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_meta_set(struct store *s, const char *key, const void *val,
                   size_t len)
{
	sqlite3_stmt *st = store_stmt(s, Q_META_SET,
	        "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_meta_delete(struct store *s, const char *key)
{
	sqlite3_stmt *st = store_stmt(s, Q_META_DELETE,
	        "DELETE FROM meta WHERE key=?");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_meta_get_int(struct store *s, const char *key, int64_t *v)
{
	char buf[32];
	size_t n;
	int rc = store_meta_get(s, key, buf, sizeof buf - 1, &n);
	char *end;

	if (rc)
		return rc;
	buf[n] = 0;
	*v = strtoll(buf, &end, 10);
	return (n == 0 || *end) ? -EIO : 0;
}

int store_meta_set_int(struct store *s, const char *key, int64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
	return store_meta_set(s, key, buf, (size_t)n);
}

/* ---- inodes ---- */

#define INODE_COLS "ino, file_id, mode, uid, gid, nlink, size, nblocks," \
	" rdev, atime, mtime, ctime, generation, nentries, theight, troot," \
	" xdigest"

static int inode_from_row(sqlite3_stmt *st, struct store_inode *in)
{
	int64_t h;

	memset(in, 0, sizeof *in);
	in->ino = (uint64_t)sqlite3_column_int64(st, 0); /* the rowid */
	/* every column as stored: a value that does not fit its field, or
	 * is not an integer, is damage (never truncated into the row the
	 * tree signed) */
	if (store_col_blob(st, 1, in->file_id, sizeof in->file_id, NULL, 1) ||
	    store_col_blob(st, 15, in->troot, sizeof in->troot, NULL, 1) ||
	    store_col_blob(st, 16, in->xdigest, sizeof in->xdigest, NULL, 1) ||
	    store_col_u32(st, 2, &in->mode) || store_col_u32(st, 3, &in->uid) ||
	    store_col_u32(st, 4, &in->gid) || store_col_u32(st, 5, &in->nlink) ||
	    store_col_u64(st, 6, &in->size) || store_col_u64(st, 7, &in->nblocks) ||
	    store_col_u64(st, 8, &in->rdev) || store_col_i64(st, 9, &in->atime) ||
	    store_col_i64(st, 10, &in->mtime) ||
	    store_col_i64(st, 11, &in->ctime) ||
	    store_col_u64(st, 12, &in->generation) ||
	    store_col_u64(st, 13, &in->nentries) ||
	    store_col_int(st, 14, 0, 64, &h)) {
		uint64_t ino = in->ino;
		memset(in, 0, sizeof *in);
		in->ino = ino;
		return -EIO;
	}
	in->theight = (uint32_t)h;
	return 0;
}

static void inode_bind(sqlite3_stmt *st, const struct store_inode *in,
                       int first)
{
	int i = first;

	sqlite3_bind_blob(st, i++, in->file_id, sizeof in->file_id, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, in->mode);
	sqlite3_bind_int64(st, i++, in->uid);
	sqlite3_bind_int64(st, i++, in->gid);
	sqlite3_bind_int64(st, i++, in->nlink);
	sqlite3_bind_int64(st, i++, (int64_t)in->size);
	sqlite3_bind_int64(st, i++, (int64_t)in->nblocks);
	sqlite3_bind_int64(st, i++, (int64_t)in->rdev);
	sqlite3_bind_int64(st, i++, in->atime);
	sqlite3_bind_int64(st, i++, in->mtime);
	sqlite3_bind_int64(st, i++, in->ctime);
	sqlite3_bind_int64(st, i++, (int64_t)in->generation);
	sqlite3_bind_int64(st, i++, (int64_t)in->nentries);
	sqlite3_bind_int64(st, i++, in->theight);
	sqlite3_bind_blob(st, i++, in->troot, sizeof in->troot, SQLITE_STATIC);
	sqlite3_bind_blob(st, i++, in->xdigest, sizeof in->xdigest, SQLITE_STATIC);
}

int store_inode_get(struct store *s, uint64_t ino, struct store_inode *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_INODE_GET,
	        "SELECT " INODE_COLS " FROM inodes WHERE ino=?");
	int rc;

	if (!st)
		return -EIO;
	if (ino > INT64_MAX)
		return -ENOENT;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = inode_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_inode_insert(struct store *s, const struct store_inode *in)
{
	sqlite3_stmt *st = store_stmt(s, Q_INODE_INSERT,
	        "INSERT OR REPLACE INTO inodes(" INODE_COLS ")"
	        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	if (!in->ino || in->ino > INT64_MAX)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, (int64_t)in->ino);
	inode_bind(st, in, 2);
	return store_step_done(s, st);
}

int store_inode_update(struct store *s, const struct store_inode *in)
{
	sqlite3_stmt *st = store_stmt(s, Q_INODE_UPDATE,
	        "UPDATE inodes SET file_id=?, mode=?, uid=?, gid=?, nlink=?,"
	        " size=?, nblocks=?, rdev=?, atime=?, mtime=?, ctime=?,"
	        " generation=?, nentries=?, theight=?, troot=?, xdigest=?"
	        " WHERE ino=?");
	int rc;

	if (!st)
		return -EIO;
	inode_bind(st, in, 1);
	sqlite3_bind_int64(st, 17, (int64_t)in->ino);
	rc = store_step_done(s, st);
	if (!rc && sqlite3_changes(s->db) != 1)
		rc = -ENOENT;
	return rc;
}

int store_inode_delete(struct store *s, uint64_t ino)
{
	sqlite3_stmt *st;
	int rc;

	/* the blocks and the block tree go later, in bounded batches
	 * (store_purge_step): one DELETE of a big file's blocks would rewrite
	 * every leaf page in one statement */
	if ((rc = store_purge_queue(s, ino)))
		return rc;
	st = store_stmt(s, Q_INODE_DEL_XATTRS, "DELETE FROM xattrs WHERE ino=?");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if ((rc = store_step_done(s, st)))
		return rc;
	st = store_stmt(s, Q_INODE_DELETE, "DELETE FROM inodes WHERE ino=?");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return store_step_done(s, st);
}

/* One DELETE of statement id, sql, with ?1 = ino; adds the rows to *n. */
static int delete_by_ino(struct store *s, int id, const char *sql,
                         uint64_t ino, uint64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if (!(rc = store_step_done(s, st)))
		*n += (uint64_t)sqlite3_changes(s->db);
	return rc;
}

int store_inode_clear(struct store *s, uint64_t ino, uint64_t *removed)
{
	int rc;

	*removed = 0;
	if (!ino || ino > INT64_MAX)
		return -EINVAL;
	if ((rc = delete_by_ino(s, Q_INODE_DEL_XATTRS,
	                        "DELETE FROM xattrs WHERE ino=?", ino, removed)) ||
	    (rc = delete_by_ino(s, Q_BLOCK_DEL_INO,
	                        "DELETE FROM blocks WHERE ino=?", ino, removed)) ||
	    (rc = delete_by_ino(s, Q_DENTRY_DEL_PARENT,
	                        "DELETE FROM dentries WHERE parent=?", ino,
	                        removed)))
		return rc;
	return delete_by_ino(s, Q_PURGE_DONE, "DELETE FROM purge WHERE ino=?",
	                     ino, removed);
}

int store_purge_queue(struct store *s, uint64_t ino)
{
	sqlite3_stmt *st = store_stmt(s, Q_PURGE_QUEUE,
	        "INSERT OR IGNORE INTO purge(ino) VALUES (?)");

	if (!st)
		return -EIO;
	if (ino > INT64_MAX)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return store_step_done(s, st);
}

int store_purge_next(struct store *s, uint64_t *ino)
{
	sqlite3_stmt *st = store_stmt(s, Q_PURGE_NEXT,
	        /* inode numbers only: a number no inode can have (0 or
	         * negative, planted) would be handed out as another and never
	         * leave the queue, and the purge would go round for ever */
	        "SELECT ino FROM purge WHERE ino > 0 ORDER BY ino LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_purge_drop(struct store *s, uint64_t ino)
{
	sqlite3_stmt *st = store_stmt(s, Q_PURGE_DONE,
	        "DELETE FROM purge WHERE ino=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return store_step_done(s, st);
}

int store_purge_step(struct store *s, uint64_t ino, size_t limit,
                     uint64_t *deleted, int *done)
{
	sqlite3_stmt *st = store_stmt(s, Q_PURGE_BLOCKS,
	        "DELETE FROM blocks WHERE ino=?1 AND blk IN"
	        " (SELECT blk FROM blocks WHERE ino=?1 ORDER BY blk LIMIT ?2)");
	int rc;

	*deleted = 0;
	*done = 0;
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	if ((rc = store_step_done(s, st)))
		return rc;
	*deleted = (uint64_t)sqlite3_changes(s->db);
	if (*deleted < limit) {
		st = store_stmt(s, Q_PURGE_TREE,
		        "DELETE FROM mtree WHERE kind=3 AND owner=?");
		if (!st)
			return -EIO;
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		if ((rc = store_step_done(s, st)) || (rc = store_purge_drop(s, ino)))
			return rc;
		*done = 1;
	}
	return 0;
}

int store_purge_pending(struct store *s, uint64_t *inodes, uint64_t *blocks,
                        uint64_t *bytes)
{
	sqlite3_stmt *st = store_stmt(s, Q_PURGE_PENDING,
	        "SELECT (SELECT count(*) FROM purge), count(b.blk),"
	        " coalesce(sum(length(b.data)), 0) FROM blocks b"
	        " WHERE b.ino IN (SELECT ino FROM purge)");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*inodes = (uint64_t)sqlite3_column_int64(st, 0);
		*blocks = (uint64_t)sqlite3_column_int64(st, 1);
		*bytes = (uint64_t)sqlite3_column_int64(st, 2);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_inode_each(struct store *s, int (*fn)(void *arg,
                     const struct store_inode *in), void *arg)
{
	/* not cached: callers may nest other inode queries inside fn */
	sqlite3_stmt *st;
	struct store_inode in;
	int rc, stop = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT " INODE_COLS " FROM inodes"
	                       " ORDER BY ino", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* a malformed row is handed on zeroed but for its number (its
		 * leaf then matches nothing) */
		(void)inode_from_row(st, &in);
		if ((stop = fn(arg, &in)))
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_inode_count(struct store *s, uint64_t *files, uint64_t *dirs,
                      uint64_t *bytes)
{
	sqlite3_stmt *st = store_stmt(s, Q_INODE_COUNT,
	        "SELECT coalesce(sum((mode & 61440) != 16384), 0),"
	        " coalesce(sum((mode & 61440) = 16384), 0),"
	        " coalesce(sum(size), 0) FROM inodes");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*files = (uint64_t)sqlite3_column_int64(st, 0);
		*dirs = (uint64_t)sqlite3_column_int64(st, 1);
		*bytes = (uint64_t)sqlite3_column_int64(st, 2);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_inode_max(struct store *s, uint64_t *ino)
{
	sqlite3_stmt *st = store_stmt(s, Q_INODE_MAX,
	        "SELECT coalesce(max(ino), 0) FROM inodes");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);
		*ino = v > 0 ? (uint64_t)v : 0;
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

/* ---- directory entries ---- */

static int dentry_from_row(sqlite3_stmt *st, struct store_dentry *d)
{
	int64_t kv;

	d->id = sqlite3_column_int64(st, 0); /* the rowid */
	if (store_col_u64(st, 1, &d->parent) ||
	    store_col_blob(st, 2, d->tag, sizeof d->tag, NULL, 1) ||
	    store_col_blob(st, 4, d->name, sizeof d->name, &d->namelen, 0) ||
	    store_col_int(st, 3, 1, UINT32_MAX, &kv) ||
	    store_col_u64(st, 5, &d->ino))
		return -EIO;
	d->key_version = (uint32_t)kv;
	return 0;
}

#define DENTRY_COLS "id, parent, tag, key_version, name, ino"

int store_dentry_get_id(struct store *s, int64_t id, struct store_dentry *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_GET_ID,
	        "SELECT " DENTRY_COLS " FROM dentries WHERE id=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = dentry_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_dentry_get(struct store *s, uint64_t parent,
                     const uint8_t tag[STORE_TAG_BYTES],
                     struct store_dentry *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_GET,
	        "SELECT " DENTRY_COLS " FROM dentries WHERE parent=? AND tag=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	sqlite3_bind_blob(st, 2, tag, STORE_TAG_BYTES, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = dentry_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_dentry_insert(struct store *s, struct store_dentry *d)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_INSERT,
	        "INSERT INTO dentries(parent, tag, key_version, name, ino)"
	        " VALUES(?,?,?,?,?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)d->parent);
	sqlite3_bind_blob(st, 2, d->tag, STORE_TAG_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, d->key_version);
	sqlite3_bind_blob(st, 4, d->name, (int)d->namelen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)d->ino);
	rc = store_step_done(s, st);
	if (!rc)
		d->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_dentry_delete_id(struct store *s, int64_t id)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_DELETE,
	        "DELETE FROM dentries WHERE id=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = store_step_done(s, st);
	if (!rc && sqlite3_changes(s->db) != 1)
		rc = -ENOENT;
	return rc;
}

int store_dentry_update(struct store *s, const struct store_dentry *d)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_UPDATE,
	        "UPDATE dentries SET parent=?, tag=?, key_version=?, name=?, ino=?"
	        " WHERE id=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)d->parent);
	sqlite3_bind_blob(st, 2, d->tag, STORE_TAG_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, d->key_version);
	sqlite3_bind_blob(st, 4, d->name, (int)d->namelen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)d->ino);
	sqlite3_bind_int64(st, 6, d->id);
	return store_step_done(s, st);
}

/* A malformed row is passed on with namelen 0 (it then fails
 * authentication: readdir hides it, check reports it), so one bad row never
 * makes a whole directory unreadable. */
static int dentry_iterate(struct store *s, sqlite3_stmt *st,
                          int (*fn)(void *arg, const struct store_dentry *d),
                          void *arg, int finalize)
{
	struct store_dentry d;
	int rc, stop = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (dentry_from_row(st, &d)) {
			d.id = sqlite3_column_int64(st, 0);
			d.parent = (uint64_t)sqlite3_column_int64(st, 1);
			d.ino = (uint64_t)sqlite3_column_int64(st, 5);
			d.key_version = 0;
			d.namelen = 0;
		}
		if ((stop = fn(arg, &d)))
			break;
	}
	if (finalize)
		sqlite3_finalize(st);
	else
		sqlite3_reset(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_dentry_each(struct store *s, uint64_t parent, int64_t after,
                      int (*fn)(void *arg, const struct store_dentry *d),
                      void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_EACH,
	        "SELECT " DENTRY_COLS " FROM dentries WHERE parent=? AND id>?"
	        " ORDER BY id");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	sqlite3_bind_int64(st, 2, after);
	return dentry_iterate(s, st, fn, arg, 0);
}

int store_dentry_all(struct store *s,
                     int (*fn)(void *arg, const struct store_dentry *d),
                     void *arg)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db, "SELECT " DENTRY_COLS " FROM dentries ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	return dentry_iterate(s, st, fn, arg, 1);
}

int store_dentry_of_ino(struct store *s, uint64_t ino, int64_t after_id,
                        struct store_dentry *out)
{
	sqlite3_stmt *st = store_stmt(s, Q_DENTRY_OF_INO,
	        "SELECT " DENTRY_COLS " FROM dentries WHERE ino=? AND id>?"
	        " ORDER BY id LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, after_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = dentry_from_row(st, out);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

/* ---- blocks ---- */

int store_block_with(struct store *s, uint64_t ino, uint64_t blk,
                     int (*fn)(void *arg, uint32_t key_version,
                               const void *data, size_t len), void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_GET,
	        "SELECT key_version, data FROM blocks WHERE ino=? AND blk=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)blk);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t kv;
		size_t n;
		const void *data = store_col_bytes(st, 1, &n);
		if (store_col_int(st, 0, 1, UINT32_MAX, &kv) || !data || n == 0)
			rc = -EIO;
		else
			rc = fn(arg, (uint32_t)kv, data, n);
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_block_put(struct store *s, uint64_t ino, uint64_t blk,
                    uint32_t key_version, const void *data, size_t len,
                    int *created)
{
	/* INSERT OR IGNORE then UPDATE tells a new block from an overwrite,
	 * which keeps the inode's authenticated block count exact. */
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_INSERT,
	        "INSERT OR IGNORE INTO blocks(ino, blk, key_version, data)"
	        " VALUES(?,?,?,?)");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)blk);
	sqlite3_bind_int64(st, 3, key_version);
	sqlite3_bind_blob(st, 4, data, (int)len, SQLITE_STATIC);
	if ((rc = store_step_done(s, st)))
		return rc;
	if (sqlite3_changes(s->db) == 1) {
		*created = 1;
		return 0;
	}
	*created = 0;
	st = store_stmt(s, Q_BLOCK_UPDATE,
	        "UPDATE blocks SET key_version=?, data=? WHERE ino=? AND blk=?");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, key_version);
	sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)ino);
	sqlite3_bind_int64(st, 4, (int64_t)blk);
	return store_step_done(s, st);
}

int store_block_truncate(struct store *s, uint64_t ino, uint64_t first,
                         uint64_t *deleted)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_TRUNC,
	        "DELETE FROM blocks WHERE ino=? AND blk>=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, first > INT64_MAX ? INT64_MAX : (int64_t)first);
	rc = store_step_done(s, st);
	*deleted = rc ? 0 : (uint64_t)sqlite3_changes(s->db);
	return rc;
}

int store_block_delete_range(struct store *s, uint64_t ino, uint64_t first,
                             uint64_t end, uint64_t *deleted)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_RANGE,
	        "DELETE FROM blocks WHERE ino=? AND blk>=? AND blk<?");
	int rc;

	*deleted = 0;
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, first > INT64_MAX ? INT64_MAX : (int64_t)first);
	sqlite3_bind_int64(st, 3, end > INT64_MAX ? INT64_MAX : (int64_t)end);
	rc = store_step_done(s, st);
	if (!rc)
		*deleted = (uint64_t)sqlite3_changes(s->db);
	return rc;
}

int store_block_next(struct store *s, uint64_t ino, uint64_t from,
                     uint64_t *blk)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_NEXT,
	        /* a key that is no integer is no block: text sorts above every
	         * number (and would come back at every call) */
	        "SELECT blk FROM blocks WHERE ino=? AND blk>=?"
	        " AND typeof(blk)='integer' ORDER BY blk LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	if (from > INT64_MAX)
		return -ENOENT;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)from);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(st, 0);
		*blk = v > 0 ? (uint64_t)v : 0;
		rc = 0;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_block_delete(struct store *s, uint64_t ino, uint64_t blk)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_DELETE,
	        "DELETE FROM blocks WHERE ino=? AND blk=?");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, blk > INT64_MAX ? INT64_MAX : (int64_t)blk);
	return store_step_done(s, st);
}

int store_block_next_ino(struct store *s, uint64_t after, uint64_t *ino,
                         int *queued)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_NEXT_INO,
	        /* integer numbers only, each once: a text sorts above every
	         * number and a real reads back truncated (2.5 as 2), either
	         * would be found again after itself for ever
	         * (store_block_junk counts those rows) */
	        "SELECT b.ino, EXISTS (SELECT 1 FROM purge p WHERE p.ino=b.ino)"
	        " FROM blocks b WHERE b.ino > ? AND typeof(b.ino)='integer'"
	        " ORDER BY b.ino LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, after > INT64_MAX ? INT64_MAX : (int64_t)after);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_err(s, rc);
	*ino = (uint64_t)sqlite3_column_int64(st, 0);
	*queued = sqlite3_column_int64(st, 1) != 0;
	sqlite3_reset(st);
	return 0;
}

int store_key_junk(struct store *s, char table, int drop, uint64_t *n)
{
	const char *where;
	char q[160];
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	switch (table) {
	case 'b': where = "blocks WHERE typeof(ino)!='integer'"
	                  " OR typeof(blk)!='integer' OR ino < 1 OR blk < 0"; break;
	case 'x': where = "xattrs WHERE typeof(ino)!='integer' OR ino < 1"; break;
	default: return -EINVAL;
	}
	snprintf(q, sizeof q, "%s FROM %s", drop ? "DELETE" : "SELECT count(*)",
	         where);
	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	rc = sqlite3_step(st);
	if (drop && rc == SQLITE_DONE) {
		*n = (uint64_t)sqlite3_changes(s->db);
		rc = 0;
	} else if (!drop && rc == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_finalize(st);
	return rc;
}

int store_block_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, uint64_t blk, uint32_t kv,
                               const void *data, size_t len), void *arg)
{
	/* a row whose blk is no integer is no block of the file (reads look
	 * blocks up by their exact number): store_key_junk counts it */
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_EACH,
	        "SELECT blk, key_version, data FROM blocks WHERE ino=?"
	        " AND typeof(blk)='integer' AND blk >= 0 ORDER BY blk");
	int rc, stop = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t kv;
		size_t n;
		const void *data = store_col_bytes(st, 2, &n);
		if (store_col_int(st, 1, 1, UINT32_MAX, &kv) || !data)
			kv = 0; /* malformed */
		if ((stop = fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		               (uint32_t)kv, data ? data : "", n)))
			break;
	}
	sqlite3_reset(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}

int store_block_count(struct store *s, uint64_t *count)
{
	sqlite3_stmt *st = store_stmt(s, Q_BLOCK_COUNT, "SELECT count(*) FROM blocks");
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

/* ---- xattrs ---- */


int store_xattr_put(struct store *s, const struct store_xattr *x)
{
	sqlite3_stmt *st = store_stmt(s, Q_XATTR_PUT,
	        "INSERT OR REPLACE INTO xattrs(ino, tag, key_version, name, value)"
	        " VALUES(?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)x->ino);
	sqlite3_bind_blob(st, 2, x->tag, STORE_TAG_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, x->key_version);
	sqlite3_bind_blob(st, 4, x->name, (int)x->namelen, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, x->value, (int)x->valuelen, SQLITE_STATIC);
	return store_step_done(s, st);
}

int store_xattr_delete(struct store *s, uint64_t ino,
                       const uint8_t tag[STORE_TAG_BYTES])
{
	sqlite3_stmt *st = store_stmt(s, Q_XATTR_DELETE,
	        "DELETE FROM xattrs WHERE ino=? AND tag=?");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_blob(st, 2, tag, STORE_TAG_BYTES, SQLITE_STATIC);
	rc = store_step_done(s, st);
	if (!rc && sqlite3_changes(s->db) != 1)
		rc = -ENOENT;
	return rc;
}

int store_xattr_delete_all(struct store *s, uint64_t ino, uint64_t *removed)
{
	*removed = 0;
	return delete_by_ino(s, Q_INODE_DEL_XATTRS,
	                     "DELETE FROM xattrs WHERE ino=?", ino, removed);
}

int store_xattr_next_ino(struct store *s, uint64_t after, uint64_t *ino)
{
	sqlite3_stmt *st = store_stmt(s, Q_XATTR_NEXT_INO,
	        "SELECT ino FROM xattrs WHERE ino > ? AND typeof(ino)='integer'"
	        " ORDER BY ino LIMIT 1");
	int rc;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, after > INT64_MAX ? INT64_MAX : (int64_t)after);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_xattr_each(struct store *s, uint64_t ino,
                     int (*fn)(void *arg, const struct store_xattr *x),
                     void *arg)
{
	sqlite3_stmt *st = store_stmt(s, Q_XATTR_EACH,
	        "SELECT tag, key_version, name, value FROM xattrs WHERE ino=?"
	        " ORDER BY tag");
	struct store_xattr x;
	int rc, stop = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t kv;
		x.ino = ino;
		x.name = store_col_bytes(st, 2, &x.namelen);
		x.value = store_col_bytes(st, 3, &x.valuelen);
		if (store_col_blob(st, 0, x.tag, sizeof x.tag, NULL, 1) ||
		    store_col_int(st, 1, 1, UINT32_MAX, &kv) || !x.name || !x.value) {
			stop = -EIO;
			break;
		}
		x.key_version = (uint32_t)kv;
		if ((stop = fn(arg, &x)))
			break;
	}
	sqlite3_reset(st);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : store_err(s, rc);
}
