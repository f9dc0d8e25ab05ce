/*
 * fuzz_rows.c - libFuzzer harness at the store-row boundary: whatever a
 * file writer puts into the columns of any row, custodyfs must neither
 * crash, leak nor misbehave, and must notice it.
 *
 * Once: a real store made as custodyctl init makes one (two key versions,
 * two authority epochs, an admin and a writer with sessions, files, a
 * directory, a hole, a symlink, xattrs, audit rows from both), kept open
 * as the admin (the trusted state is in memory: roster, head commit).
 *
 * Per input, inside one transaction on the store's connection that is
 * rolled back afterwards (so every input starts from the same store): the
 * input is read as up to 8 operations on rows of any table, the way a file
 * writer with sqlite3 works (set a column to a fuzzed integer, real, text,
 * blob or NULL; delete a row; insert a copy of a row with one column
 * changed; flip a byte of a value; cut or extend a value; copy a column
 * from another row), then every reader of those rows runs: the store_*
 * getters and walks of every table, the authority chain and rights_load,
 * ledger_read and ledger_verify, audit_verify and the detail reader,
 * session_row_verify, grant_open and keyring_load, a login (auth_login),
 * the credentials tree, mtree walks, and a read-only fs over it all
 * (getattr, lookup, readdir, read, readlink, xattrs, inode_load,
 * dir_verify, fs_check).
 *
 * The oracle, besides no crash, no UB, no leak: with nothing changed,
 * nothing is reported; with a row that carries rights or state changed
 * (the roster, authorities, credentials, the ledger, the trail, inodes,
 * entries, blocks, xattrs, and the endorsed columns of sessions), at least
 * one of the checks a user runs (login, the chain, rights_load, the head,
 * ledger_verify, audit_verify, the credentials tree, fs_check) fails.
 * Test code may include sqlite3.h (tests/layers.sh checks src/ and
 * include/ only).
 */
#define UNIT_WITH_STORE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "bytes.h"
#include "grant.h"
#include "keyring.h"
#include "ledger.h"
#include "mtree.h"
#include "unit.h"
#include "../../src/fs/fs_internal.h"
#include "../../src/store/store_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the tables as a file writer sees them ---- */

struct table {
	const char *name, *pk;
	const char *cols[18];
	const char *types;      /* per column: i(nteger) b(lob) t(ext) u(int32) */
	const char *signed_cols; /* per column: 1 if a check must see it */
	const char *signed_where; /* rows the promise covers (NULL: all) */
	const char *signed_expr;  /* the signed columns as one expression (NULL:
	                           * from signed_cols) */
};

static char sessions_where[64], blocks_where[256], xattrs_where[128];

static struct table tables[] = {
	{ "meta", "key", { "key", "value" }, "tb", "00", NULL, NULL },
	{ "authorities", "epoch", { "epoch", "pk", "endorsement", "created" },
	  "ibbi", "1110", "epoch >= 1",
	  /* the pinned epoch's self-endorsement is never consulted: the pin
	   * is the trust anchor */
	  "quote(CAST(epoch AS INTEGER)), hex(pk), typeof(pk), CASE WHEN"
	  " CAST(epoch AS INTEGER) = 1 THEN '-' ELSE typeof(endorsement) ||"
	  " hex(endorsement) END" },
	{ "roster", "id", { "id", "body", "sig" }, "ibb", "111", NULL, NULL },
	{ "credentials", "user_id", { "user_id", "name", "opslimit", "memlimit",
	  "salt", "secret", "created" }, "itiibbi", "1111110", NULL, NULL },
	{ "logins", "user_id", { "user_id", "failed", "locked_until",
	  "last_login" }, "iiii", "0000", NULL, NULL },
	{ "grants", "user_id, version, kind", { "user_id", "version", "kind",
	  "sealed" }, "iiib", "0000", NULL, NULL },
	{ "key_events", "id", { "id", "time", "user", "event", "from_version",
	  "to_version", "detail" }, "iittiit", "0000000", NULL, NULL },
	{ "sessions", "id", { "id", "user_id", "roster_counter", "started", "pk",
	  "endorsement", "host", "pid", "kind", "detail_version", "detail" },
	  "iiiibbtitib", "11111111100", sessions_where, NULL },
	{ "ledger", "seq", { "seq", "body", "sigs", "proof" }, "ibbb", "1110",
	  NULL, NULL },
	{ "inodes", "ino", { "ino", "file_id", "mode", "uid", "gid", "nlink",
	  "size", "nblocks", "rdev", "atime", "mtime", "ctime", "generation",
	  "nentries", "theight", "troot", "xdigest" }, "ibuuuuiiiiiiiiibb",
	  "11111111111111111", NULL, NULL },
	{ "dentries", "id", { "id", "parent", "tag", "key_version", "name",
	  "ino" }, "iibibi", "111111", NULL, NULL },
	{ "blocks", "ino, blk", { "ino", "blk", "key_version", "data" }, "iiib",
	  "1111", blocks_where, NULL },
	{ "mtree", "kind, owner, level, idx", { "kind", "owner", "level", "idx",
	  "node" }, "iiiib", "00000", NULL, NULL },
	{ "purge", "ino", { "ino" }, "i", "0", NULL, NULL },
	{ "xattrs", "ino, tag", { "ino", "tag", "key_version", "name", "value" },
	  "ibibb", "11111", xattrs_where, NULL },
	{ "mounts", "id", { "id", "user", "host", "pid", "mountpoint", "readonly",
	  "started", "heartbeat", "ended", "end_reason" }, "ittitiiiit",
	  "0000000000", NULL, NULL },
	{ "auth_events", "id", { "id", "time", "user", "event", "pid" }, "iitti",
	  "00000", NULL, NULL },
	{ "audit", "seq", { "seq", "time", "user", "session", "uid", "gid", "pid",
	  "op", "ino", "offset", "length", "result", "detail", "hash" },
	  "iitiuuutiiiibb", "11111111111111",
	  /* a row before the first (seq < 1) is test_audit.c's (a known defect) */
	  "seq >= 1", NULL },
};
#define NTABLES (sizeof tables / sizeof *tables)

static struct unit_env env;
static struct unlocked u;         /* the admin: the trusted state */
static sqlite3 *db;               /* u.s->db */
static uint8_t pin_pk[32];        /* authority epoch 1 */
static uint8_t full_before[32], signed_before[32];
static int64_t max_ino;

static void oracle(const char *what, const char *detail)
{
	fprintf(stderr, "ORACLE: %s%s%s\n", what, detail ? ": " : "",
	        detail ? detail : "");
	abort();
}

static int ncols(const struct table *t)
{
	return (int)strlen(t->types);
}

/* ---- digests of table contents ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t nc = (b->cap + n) * 2;
		uint8_t *q = realloc(b->p, nc);
		if (!q)
			abort();
		b->p = q;
		b->cap = nc;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

/* One table's rows as text: raw (every value exactly, with its type) or
 * as custodyfs reads them (signed columns and rows only). */
static void table_text(const struct table *t, int raw, struct buf *b)
{
	char q[2048];
	size_t at = 0;
	int any = 0;
	sqlite3_stmt *st;

	at += (size_t)snprintf(q + at, sizeof q - at, "SELECT '%s'", t->name);
	if (!raw && t->signed_expr) {
		at += (size_t)snprintf(q + at, sizeof q - at, ", %s", t->signed_expr);
		any = 1;
	} else
	for (int c = 0; c < ncols(t); c++) {
		const char *n = t->cols[c];
		if (!raw && t->signed_cols[c] != '1')
			continue;
		any = 1;
		if (raw) /* exact: every byte (quote() stops at a NUL), every bit */
			at += (size_t)snprintf(q + at, sizeof q - at, ", typeof(%s) ||"
			                       " CASE typeof(%s) WHEN 'real' THEN"
			                       " printf('%%!.17g', %s) ELSE hex(%s) END",
			                       n, n, n, n);
		else if (t->types[c] == 'i')
			at += (size_t)snprintf(q + at, sizeof q - at,
			                       ", quote(CAST(%s AS INTEGER))", n);
		else if (t->types[c] == 'u') /* read as uint32_t */
			at += (size_t)snprintf(q + at, sizeof q - at,
			                       ", quote(CAST(%s AS INTEGER) & 4294967295)",
			                       n);
		else if (t->types[c] == 't')
			at += (size_t)snprintf(q + at, sizeof q - at,
			                       ", hex(CAST(%s AS TEXT))", n);
		else
			at += (size_t)snprintf(q + at, sizeof q - at,
			                       ", CASE WHEN typeof(%s)='blob' OR"
			                       " (typeof(%s)='text' AND length(%s)=0)"
			                       " THEN hex(%s) ELSE typeof(%s)||quote(%s)"
			                       " END", n, n, n, n, n, n);
	}
	if (!any)
		return;
	at += (size_t)snprintf(q + at, sizeof q - at, " FROM %s", t->name);
	if (!raw && t->signed_where)
		at += (size_t)snprintf(q + at, sizeof q - at, " WHERE %s",
		                       t->signed_where);
	snprintf(q + at, sizeof q - at, " ORDER BY %s", t->pk);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		oracle("digest query", sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW)
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const unsigned char *v = sqlite3_column_text(st, c);
			int n = sqlite3_column_bytes(st, c);
			buf_add(b, v ? (const void *)v : "~", v ? (size_t)n : 1);
			buf_add(b, "|", 1);
		}
	sqlite3_finalize(st);
	buf_add(b, "\n", 1);
}

static void digest(int raw, uint8_t out[32], int *changed_table)
{
	struct buf b = { NULL, 0, 0 };
	struct cipher_part p;

	for (size_t i = 0; i < NTABLES; i++) {
		size_t before = b.n;
		table_text(&tables[i], raw, &b);
		(void)before;
	}
	p = (struct cipher_part){ b.p, b.n };
	cipher_hash(out, &p, 1);
	free(b.p);
	(void)changed_table;
}

/* ---- the input: operations on rows ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static int take(struct in *in, void *out, size_t n)
{
	if (in->n < n) {
		memset(out, 0, n);
		if (in->n)
			memcpy(out, in->p, in->n);
		in->p += in->n;
		in->n = 0;
		return 0;
	}
	memcpy(out, in->p, n);
	in->p += n;
	in->n -= n;
	return 1;
}

static uint8_t take8(struct in *in)
{
	uint8_t v = 0;
	take(in, &v, 1);
	return v;
}

static int64_t row_count(const struct table *t)
{
	char q[128];
	sqlite3_stmt *st;
	int64_t n = 0;

	snprintf(q, sizeof q, "SELECT count(*) FROM %s", t->name);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Bind a value read from the input: integer, real, text, blob or NULL. */
static void bind_value(sqlite3_stmt *st, int at, struct in *in)
{
	uint8_t kind = take8(in) % 6, len;
	uint8_t raw[8];
	uint8_t bytes[256];
	double d;

	switch (kind) {
	case 0: /* a small integer near the interesting edges */
		take(in, raw, 1);
		sqlite3_bind_int64(st, at, (int64_t)(int8_t)raw[0]);
		break;
	case 1:
		take(in, raw, 8);
		sqlite3_bind_int64(st, at, (int64_t)get_le64(raw));
		break;
	case 2:
		take(in, raw, 8);
		memcpy(&d, raw, 8);
		sqlite3_bind_double(st, at, d);
		break;
	case 3:
		len = take8(in);
		take(in, bytes, len);
		sqlite3_bind_text(st, at, (const char *)bytes, len, SQLITE_TRANSIENT);
		break;
	case 4:
		len = take8(in);
		take(in, bytes, len);
		sqlite3_bind_blob(st, at, bytes, len, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_bind_null(st, at);
		break;
	}
}

static void run(sqlite3_stmt *st)
{
	if (st) {
		(void)sqlite3_step(st); /* constraint failures are fine */
		sqlite3_finalize(st);
	}
}

static sqlite3_stmt *prep(const char *q)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		oracle("mutation query", sqlite3_errmsg(db));
	return st;
}

/* Apply one operation; 0 when the input is used up. */
static int mutate(struct in *in)
{
	const struct table *t;
	uint8_t h[4];
	int64_t rows, row;
	int col;
	char q[1024];
	sqlite3_stmt *st;

	if (!take(in, h, 4))
		return 0;
	t = &tables[h[0] % NTABLES];
	col = h[3] % ncols(t);
	rows = row_count(t);
	if (rows == 0)
		return 1;
	row = h[2] % rows;
#define WHERE_ROW "(%s) = (SELECT %s FROM %s ORDER BY %s LIMIT 1 OFFSET ?2)"
	switch (h[1] % 6) {
	case 0: /* set a column */
		snprintf(q, sizeof q, "UPDATE %s SET %s=?1 WHERE " WHERE_ROW, t->name,
		         t->cols[col], t->pk, t->pk, t->name, t->pk);
		st = prep(q);
		bind_value(st, 1, in);
		sqlite3_bind_int64(st, 2, row);
		run(st);
		break;
	case 1: /* delete a row */
		snprintf(q, sizeof q, "DELETE FROM %s WHERE " WHERE_ROW, t->name, t->pk,
		         t->pk, t->name, t->pk);
		st = prep(q);
		sqlite3_bind_int64(st, 2, row);
		run(st);
		break;
	case 2: { /* a copy of a row, one column changed (maybe its key) */
		size_t at = 0;
		char cols[512], sel[512];
		size_t ca = 0;
		cols[0] = sel[0] = 0;
		for (int c = 0; c < ncols(t); c++) {
			ca += (size_t)snprintf(cols + ca, sizeof cols - ca, "%s%s",
			                       c ? ", " : "", t->cols[c]);
			at += (size_t)snprintf(sel + at, sizeof sel - at, "%s%s",
			                       c ? ", " : "", c == col ? "?1" : t->cols[c]);
		}
		snprintf(q, sizeof q, "INSERT OR REPLACE INTO %s(%s) SELECT %s FROM %s"
		         " ORDER BY %s LIMIT 1 OFFSET ?2", t->name, cols, sel, t->name,
		         t->pk);
		st = prep(q);
		bind_value(st, 1, in);
		sqlite3_bind_int64(st, 2, row);
		run(st);
		break;
	}
	case 3: /* flip a byte, or cut / extend a value */
	case 4: {
		uint8_t arg[3], *v = NULL;
		int type, n;
		int64_t iv = 0;
		take(in, arg, 3);
		snprintf(q, sizeof q, "SELECT %s FROM %s ORDER BY %s LIMIT 1 OFFSET ?1",
		         t->cols[col], t->name, t->pk);
		st = prep(q);
		sqlite3_bind_int64(st, 1, row);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			break;
		}
		type = sqlite3_column_type(st, 0);
		n = sqlite3_column_bytes(st, 0);
		iv = sqlite3_column_int64(st, 0);
		v = calloc(1, (size_t)n + 300);
		if (!v)
			abort();
		if (n)
			memcpy(v, type == SQLITE_BLOB ? sqlite3_column_blob(st, 0)
			                              : (const void *)sqlite3_column_text(st, 0),
			       (size_t)n);
		sqlite3_finalize(st);
		if (h[1] % 6 == 3) {
			if (type == SQLITE_INTEGER)
				iv = (int64_t)((uint64_t)iv ^ (1ull << (arg[0] % 64)));
			else if (n)
				v[get_le16(arg) % n] ^= arg[2] ? arg[2] : 1;
		} else {
			int want = (int)(get_le16(arg) % ((unsigned)n + 257));
			if (want > n) {
				memset(v + n, arg[2], (size_t)(want - n));
				if (want - n < 300)
					take(in, v + n, (size_t)(want - n));
			}
			n = want;
			iv = (int64_t)((uint64_t)iv * 257 + arg[2]);
		}
		snprintf(q, sizeof q, "UPDATE %s SET %s=?1 WHERE " WHERE_ROW, t->name,
		         t->cols[col], t->pk, t->pk, t->name, t->pk);
		st = prep(q);
		if (type == SQLITE_INTEGER)
			sqlite3_bind_int64(st, 1, iv);
		else if (type == SQLITE_TEXT)
			sqlite3_bind_text(st, 1, (const char *)v, n, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, 1, v, n, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, row);
		run(st);
		free(v);
		break;
	}
	default: { /* a column copied from another row of the table */
		int64_t other = take8(in) % rows;
		snprintf(q, sizeof q, "UPDATE %s SET %s=(SELECT %s FROM %s ORDER BY %s"
		         " LIMIT 1 OFFSET ?1) WHERE " WHERE_ROW, t->name, t->cols[col],
		         t->cols[col], t->name, t->pk, t->pk, t->pk, t->name, t->pk);
		st = prep(q);
		sqlite3_bind_int64(st, 1, other);
		sqlite3_bind_int64(st, 2, row);
		run(st);
		break;
	}
	}
	return 1;
}

/* ---- readers of everything ---- */

static int each_inode(void *arg, const struct store_inode *in)
{
	(*(uint64_t *)arg) ^= in->ino + in->size;
	return 0;
}

static int each_dentry(void *arg, const struct store_dentry *d)
{
	(*(uint64_t *)arg) += d->namelen + d->key_version;
	return 0;
}

static int each_block(void *arg, uint64_t blk, uint32_t kv, const void *data,
                      size_t len)
{
	(void)data;
	(*(uint64_t *)arg) += blk + kv + len;
	return 0;
}

static int each_xattr(void *arg, const struct store_xattr *x)
{
	(*(uint64_t *)arg) += x->namelen + x->valuelen;
	return 0;
}

static int each_cred(void *arg, const struct store_cred *c)
{
	(*(uint64_t *)arg) += c->secretlen;
	return 0;
}

static int each_audit(void *arg, const struct store_audit *a)
{
	struct audit_reader *rd = arg;
	char comm[64], path[512];
	(void)audit_reader_detail(rd, a, comm, sizeof comm, path, sizeof path);
	(void)audit_reader_session_user(rd, a->session);
	return 0;
}

static int each_mount(void *arg, const struct store_mount *m)
{
	(*(uint64_t *)arg) += (uint64_t)m->pid;
	return 0;
}

static int each_event(void *arg, int64_t t, const char *user, const char *ev,
                      uint32_t uid, int64_t pid)
{
	(*(uint64_t *)arg) += (uint64_t)(t + pid) + uid + strlen(user) + strlen(ev);
	return 0;
}

static int each_group(void *arg, int level, uint64_t idx, const void *node,
                      size_t len)
{
	(void)node;
	(*(uint64_t *)arg) += (uint64_t)level + idx + len;
	return 0;
}

static int each_leaf(void *arg, uint64_t pos, const uint8_t leaf[32])
{
	(*(uint64_t *)arg) += pos + leaf[0];
	return 0;
}

static void store_readers(void)
{
	struct store *s = u.s;
	struct store_inode in;
	struct store_dentry d;
	struct store_cred c;
	struct store_login l;
	struct store_grant g;
	struct store_authority a;
	struct store_session ss;
	struct store_stale stale[8];
	static struct store_audit au;
	uint64_t x = 0, y = 0, z = 0, ino = 0;
	uint8_t *body = NULL, sig[64], node[MTREE_NODE_MAX], meta[256];
	uint32_t epoch = 0;
	int64_t seq = 0, id = 0;
	size_t n = 0;
	int queued, done;

	store_inode_each(s, each_inode, &x);
	store_inode_count(s, &x, &y, &z);
	store_inode_max(s, &ino);
	for (uint64_t i = 0; i <= (uint64_t)max_ino + 2; i++) {
		store_inode_get(s, i, &in);
		store_block_each(s, i, each_block, &x);
		store_xattr_each(s, i, each_xattr, &x);
		store_dentry_each(s, i, 0, each_dentry, &x);
		store_dentry_of_ino(s, i, INT64_MIN, &d);
		store_block_next(s, i, 0, &y);
		store_mtree_each(s, MTREE_BLOCKS, i, each_group, &x);
	}
	/* every call moves on: a key that is no integer (text sorts above
	 * every number, a real reads back truncated) must not come back */
	ino = 0;
	for (uint64_t prev = 0;
	     store_block_next_ino(s, ino, &ino, &queued) == 0; prev = ino)
		if (ino <= prev)
			oracle("store_block_next_ino does not move on", NULL);
	store_dentry_all(s, each_dentry, &x);
	for (int64_t i = 0; i < 40; i++)
		store_dentry_get_id(s, i, &d);
	store_block_count(s, &x);
	store_purge_next(s, &ino);
	store_purge_pending(s, &x, &y, &z);
	store_cred_each(s, each_cred, &x);
	store_cred_get(s, "admin", &c);
	store_cred_get(s, "writer", &c);
	store_cred_next_id(s, &id);
	for (int64_t i = 0; i < 5; i++) {
		store_cred_get_id(s, i, &c);
		store_login_get(s, i, &l);
		for (uint32_t v = 0; v < 4; v++)
			for (int k = 1; k <= 4; k++)
				store_grant_get(s, i, v, k, &g);
	}
	store_grant_count(s, -1, 0, &x);
	store_authority_last(s, &epoch);
	for (uint32_t e = 0; e < 5; e++)
		store_authority_get(s, e, &a);
	if (store_roster_get(s, &body, &n, sig) == 0)
		free(body);
	store_session_next_id(s, &id);
	for (int64_t i = 0; i < 12; i++) {
		const struct rights_user *ru;
		if (store_session_get(s, i, &ss) == 0)
			(void)session_row_verify(u.r, &ss, &ru);
	}
	store_ledger_first(s, &seq);
	store_ledger_last(s, &seq);
	store_ledger_count(s, &x);
	for (int64_t i = 0; i < 30; i++) {
		static struct ledger_commit lc;
		(void)ledger_read(s, i, &lc);
	}
	store_audit_last(s, &au);
	store_audit_count(s, &x);
	store_mount_each_open(s, each_mount, &x);
	store_auth_event_take(s, each_event, &x);
	for (int k = 1; k <= 5; k++)
		store_mtree_each(s, k, 0, each_group, &x);
	store_mtree_get(s, MTREE_INODES, 0, 0, 0, node, sizeof node, &n);
	for (int k = 0; k < 4; k++) {
		static const char kinds[] = "bdxs";
		store_stale(s, kinds[k], 9, 8, stale, &n);
	}
	for (uint32_t v = 0; v < 4; v++) {
		store_key_usage(s, v, 0, &x);
		store_key_usage(s, v, 1, &x); /* the tables themselves */
	}
	store_meta_get(s, "store_id", meta, sizeof meta, &n);
	store_meta_get(s, "ledger_base", meta, sizeof meta, &n);
	store_meta_get_int(s, "format", &seq);
	(void)done;
}

/* ---- the checks a user runs: 1 if any says something is wrong ---- */

static int creds_tree_bad(void)
{
	struct mtree *mt = NULL;
	struct store_cred c;
	uint8_t leaf[32], have[32];
	uint64_t x = 0, stray = 0;
	int bad = 0;

	if (mtree_new(u.s, 1 << 20, &mt))
		return 1;
	for (int64_t id = 1; id <= 4; id++) {
		int rc = store_cred_get_id(u.s, id, &c);
		if (rc == -ENOENT)
			memset(leaf, 0, 32);
		else if (rc) {
			bad = 1;
			continue;
		} else
			auth_cred_leaf(&c, leaf);
		if (mtree_leaf(mt, MTREE_CREDS, 0, &u.head.st.creds, (uint64_t)id,
		               have) || memcmp(leaf, have, 32))
			bad = 1;
	}
	/* rows under ids the tree does not know */
	if (store_cred_next_id(u.s, &c.user_id) == 0 && c.user_id > 5)
		bad = 1;
	if (mtree_walk(mt, MTREE_CREDS, 0, &u.head.st.creds, each_leaf, &x,
	               &stray))
		bad = 1;
	mtree_free(mt);
	return bad;
}

static int fill_count(void *arg, const char *name, uint64_t ino, uint32_t mode,
                      const struct fs_attr *a, int64_t next)
{
	(void)name; (void)ino; (void)mode; (void)a; (void)next;
	(*(uint64_t *)arg)++;
	return 0;
}

static int fs_bad(void)
{
	struct fs_opts o = { 0 };
	struct fs_check_ops ck = { 0 };
	struct fs_check_stats cs;
	struct fs *fs = NULL;
	static const struct fs_ctx ctx = { .pid = 1 };
	struct fs_attr a;
	static char buf[64 << 10];
	char list[1024];
	int bad = 0, rc;

	o.read_only = 1;
	o.shared = 1;
	o.commit_interval_ms = 1000;
	o.idle_checkpoint_ms = 1000;
	u.readonly = 1; /* records nothing, writes nothing */
	rc = fs_new(&u, &o, &fs);
	if (rc) {
		u.readonly = 0;
		return 1;
	}
	/* everything a process could ask */
	for (uint64_t i = 0; i <= (uint64_t)max_ino + 2; i++) {
		struct store_inode in;
		if (fs_getattr(fs, &ctx, i, &a))
			continue;
		fs_forget(fs, i, 0);
		if (S_ISDIR(a.mode)) {
			; /* listed below */
		} else if (S_ISLNK(a.mode)) {
			(void)fs_readlink(fs, &ctx, i, list, sizeof list);
		} else {
			(void)fs_read(fs, &ctx, i, buf, sizeof buf, 0);
			(void)fs_read(fs, &ctx, i, buf, 100, 4000);
		}
		if (fs_listxattr(fs, &ctx, i, list, sizeof list) > 0)
			(void)fs_getxattr(fs, &ctx, i, list, buf, sizeof buf);
		(void)fs_getxattr(fs, &ctx, i, "user.big", buf, sizeof buf);
		pthread_mutex_lock(&fs->lock);
		(void)inode_load(fs, i, &in);
		pthread_mutex_unlock(&fs->lock);
	}
	{
		static const char *const names[] = { "a", "dir", "sparse", "ln",
		                                     "nothing" };
		for (size_t i = 0; i < sizeof names / sizeof *names; i++)
			if (fs_lookup(fs, &ctx, STORE_ROOT_INO, names[i], &a) == 0) {
				fs_forget(fs, a.ino, 1);
				if (S_ISDIR(a.mode) &&
				    fs_lookup(fs, &ctx, a.ino, "b", &a) == 0)
					fs_forget(fs, a.ino, 1);
			}
	}
	{
		uint64_t cnt = 0;
		for (uint64_t i = 1; i <= (uint64_t)max_ino; i++)
			(void)fs_readdir(fs, &ctx, i, 0, i & 1, fill_count, &cnt);
	}
	/* every entry row against the tree */
	{
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "SELECT id FROM dentries", -1, &st,
		                       NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW) {
				struct store_dentry d;
				if (store_dentry_get_id(u.s, sqlite3_column_int64(st, 0),
				                        &d) == 0) {
					pthread_mutex_lock(&fs->lock);
					(void)dir_verify(fs, &d);
					pthread_mutex_unlock(&fs->lock);
				}
			}
			sqlite3_finalize(st);
		}
	}
	/* fs_check ends, whatever the rows hold (a blocks row whose ino is no
	 * integer made it loop for ever: test_fs.c test_check_terminates) */
	rc = fs_check(fs, &ck, &cs);
	if (rc != 0)
		bad = 1;
	if (fs_free(fs))
		bad = 1;
	u.readonly = 0;
	return bad;
}

static int checks_fail(char *first, size_t cap)
{
	struct rights *r = NULL;
	static struct ledger_commit h;
	uint8_t pk[32];
	uint32_t epoch = 0;
	char why[256];
	int64_t bad_seq = 0;
	uint64_t rows = 0;
	int bad = 0, rc;

#define NOTE(what) do { if (!bad) snprintf(first, cap, "%s", what); bad = 1; } while (0)
	first[0] = 0;
	rc = rights_chain(u.s, u.r->store_id, 1, pin_pk, &epoch, pk);
	if (rc || epoch != u.r->epoch || memcmp(pk, u.r->authority_pk, 32))
		NOTE("authority chain");
	rc = rights_load(u.s, u.r->store_id, u.r->epoch, u.r->authority_pk, &r);
	if (rc || memcmp(r->hash, u.r->hash, 32))
		NOTE("roster");
	rights_free(r);
	if (ledger_head(u.s, &h) || h.seq != u.head.seq ||
	    memcmp(h.hash, u.head.hash, 32))
		NOTE("head commit");
	if (ledger_verify(u.s, u.r, 0, NULL, &h, NULL, NULL, why, sizeof why))
		NOTE("ledger_verify");
	if (audit_verify(u.s, u.r, &bad_seq, &rows, why, sizeof why))
		NOTE("audit_verify");
	if (creds_tree_bad())
		NOTE("credentials tree");
	{
		struct passphrase pw;
		struct session *ss = NULL;
		struct rights *lr = NULL;
		struct store_cred cur, upd;
		int has = 0;
		if (unit_pw(&pw, UNIT_ADMIN_PASS))
			abort();
		rc = auth_login(u.s, &u.cfg, "admin", &pw, NULL, NULL, &ss, &lr, &cur, &upd,
		                &has, why, sizeof why);
		passphrase_free(&pw);
		if (rc)
			NOTE("login");
		else {
			/* what the login found is what the signed state holds */
			uint8_t l1[32];
			struct mtree *mt = NULL;
			uint8_t have[32];
			auth_cred_leaf(&cur, l1);
			if (mtree_new(u.s, 1 << 16, &mt) ||
			    mtree_leaf(mt, MTREE_CREDS, 0, &u.head.st.creds,
			               (uint64_t)cur.user_id, have) ||
			    memcmp(l1, have, 32))
				NOTE("login credential");
			mtree_free(mt);
			/* the admin's keys from its grants */
			{
				struct keyring *kr = NULL;
				if (keyring_new(&kr) == 0) {
					(void)keyring_load(kr, u.s, u.r, ss->user_id, ss->box_pk,
					                   ss->box_sk);
					keyring_free(kr);
				}
				uint8_t *sk = secmem_alloc(64);
				if (sk) {
					(void)grant_open(u.s, ss->user_id, u.r->epoch,
					                 GRANT_AUTHORITY, sk, 64, ss->box_pk,
					                 ss->box_sk);
					secmem_free(sk);
				}
			}
		}
		session_free(ss);
		rights_free(lr);
	}
	if (fs_bad())
		NOTE("fs_check");
	/* the trail's details, as an admin reads them */
	{
		struct audit_reader *rd = NULL;
		if (audit_reader_new(u.s, u.r, u.ss, &rd) == 0) {
			store_audit_each(u.s, 0, each_audit, rd);
			audit_reader_free(rd);
		}
	}
	return bad;
#undef NOTE
}

/* ---- the store ---- */

static int rotate_fn(void *arg)
{
	uint32_t v;
	(void)arg;
	return unit_rotate(&u, &v);
}

static void build(void)
{
	static const struct fs_ctx ctx = { .pid = 1 };
	struct fs_opts o = { 0 };
	struct fs *fs = NULL;
	struct fs_attr a, d;
	static char data[10000];
	int64_t id = 0;
	int changed = 0, rc;
	char wpass[160];
	struct store_authority auth;

	if (unit_env_init(&env, "fuzz-rows") || unit_create(&env, NULL, &u, NULL))
		oracle("cannot create the store", NULL);
	o.commit_interval_ms = 1000;
	o.idle_checkpoint_ms = 1000;
	if (fs_new(&u, &o, &fs))
		oracle("fs_new", NULL);
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 7 + 3);
	rc = fs_mknod(fs, &ctx, STORE_ROOT_INO, "a", S_IFREG | 0644, 0, 0, &a);
	rc = rc ? rc : (int)(fs_write(fs, &ctx, a.ino, data, sizeof data, 0) < 0);
	rc = rc ? rc : fs_setxattr(fs, &ctx, a.ino, "user.x", "1", 1, 0);
	rc = rc ? rc : fs_setxattr(fs, &ctx, a.ino, "user.big", data, 300, 0);
	rc = rc ? rc : fs_exclusive(fs, rotate_fn, NULL);
	rc = rc ? rc : fs_mkdir(fs, &ctx, STORE_ROOT_INO, "dir", 0755, 0, &d);
	rc = rc ? rc : fs_mknod(fs, &ctx, d.ino, "b", S_IFREG | 0600, 0, 0, &a);
	rc = rc ? rc : (int)(fs_write(fs, &ctx, a.ino, "bee", 3, 0) < 0);
	rc = rc ? rc : fs_mknod(fs, &ctx, STORE_ROOT_INO, "sparse", S_IFREG | 0644, 0,
	                        0, &a);
	rc = rc ? rc : (int)(fs_write(fs, &ctx, a.ino, "S", 1, 40000) < 0);
	rc = rc ? rc : (int)(fs_write(fs, &ctx, a.ino, data, 4096, 0) < 0);
	rc = rc ? rc : fs_symlink(fs, &ctx, STORE_ROOT_INO, "ln", "a", &a);
	rc = rc ? rc : fs_commit(fs);
	if (rc || fs_free(fs))
		oracle("cannot fill the store", NULL);
	max_ino = (int64_t)a.ino;
	/* a second authority epoch (the pin stays epoch 1's) */
	if (store_authority_get(u.s, 1, &auth))
		oracle("no authority", NULL);
	memcpy(pin_pk, auth.pk, 32);
	if (unlock_begin(&u) < 0 ||
	    unlock_finish(&u, "authority rotate", "",
	                  keyadmin_authority_rotate(u.s, u.r, u.ss) ||
	                  keyadmin_sign(u.s, u.r, u.ss)))
		oracle("cannot rotate the authority", NULL);
	/* a writer with a session of its own, and rows in the trail */
	if (unit_user_add(&u, "writer", ROLE_WRITER, "w-pass", &id) ||
	    unit_passfile(&env, "writer", "w-pass", wpass, sizeof wpass))
		oracle("cannot add the writer", NULL);
	{
		struct unlock_opts ow;
		struct unlocked w;
		unit_opts(&env, &ow, "writer", wpass);
		if (unit_login(&ow, &w))
			oracle("writer login", NULL);
		unlock_record(&w, "writer-op", "x", 0);
		/* the writer's own passphrase: a commit with a proof */
		{
			struct rights_policy pol;
			struct passphrase pw;
			int prc;
			if (unit_pw(&pw, "w-pass") || unlock_begin(&w) < 0)
				oracle("writer passwd", NULL);
			auth_policy(&w.r->policy, &w.cfg, &pol);
			prc = auth_passwd(w.s, &pol, w.ss, &pw);
			if (!prc)
				prc = unlock_cred_changed(&w);
			if (unlock_finish(&w, "user passwd", "writer", prc))
				oracle("writer passwd", NULL);
			passphrase_free(&pw);
		}
		unlock_free(&w);
	}
	if (unlock_refresh(&u, &changed))
		oracle("refresh", NULL);
	db = u.s->db;
	{
		sqlite3_stmt *st;
		int64_t maxs = 0;
		if (sqlite3_prepare_v2(db, "SELECT max(id) FROM sessions", -1, &st,
		                       NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			maxs = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		snprintf(sessions_where, sizeof sessions_where, "id BETWEEN 1 AND %lld",
		         (long long)maxs);
		/* every blocks and xattrs row: one planted for an inode number
		 * the signed state never used, one beside a signed xattr set or
		 * in a hole, one whose key is no integer, check reports
		 * (test_fs.c test_planted, test_planted_live, test_block_key,
		 * test_check_terminates); the blocks of a queued inode wait
		 * for the purge, unread */
		snprintf(blocks_where, sizeof blocks_where,
		         "ino NOT IN (SELECT ino FROM purge)");
		snprintf(xattrs_where, sizeof xattrs_where, "1");
	}
}

static void cleanup(void)
{
	unit_env_done(&env); /* the store's temp dir */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char why[64];

	(void)argc;
	(void)argv;
	if (cipher_init())
		abort();
	build();
	atexit(cleanup);
	(void)unit_pass;
	(void)unit_fail;
	digest(1, full_before, NULL);
	digest(0, signed_before, NULL);
	/* the untouched store passes every check */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	if (checks_fail(why, sizeof why))
		oracle("the untouched store fails a check", why);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	uint8_t full[32], sig[32];
	char first[64];
	int failed;

	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		oracle("BEGIN", sqlite3_errmsg(db));
	for (int i = 0; i < 8 && mutate(&in); i++)
		;
	digest(1, full, NULL);
	digest(0, sig, NULL);
	store_readers();
	failed = checks_fail(first, sizeof first);
	if (!memcmp(full, full_before, 32) && failed)
		oracle("nothing was changed, yet a check fails", first);
	if (memcmp(sig, signed_before, 32) && !failed)
		oracle("a row that carries rights or state was changed, and no"
		       " check noticed", NULL);
	if (sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		oracle("ROLLBACK", sqlite3_errmsg(db));
	return 0;
}
