/*
 * store_internal.h - shared by the store*.c files only: the connection, the
 * prepared-statement cache and small helpers over sqlite3.
 */
#ifndef CUSTODY_STORE_INTERNAL_H
#define CUSTODY_STORE_INTERNAL_H

#include <sqlite3.h>
#include "store.h"

#define STORE_MAX_STMTS 128
/* statement ids: store.c uses 0..47, store_keys.c 48..79, store_audit.c
 * 80..95, store_session.c 96..111, store_mtree.c 112..127 (each file
 * asserts its range) */
#define STORE_Q_KEYS  48
#define STORE_Q_AUDIT 80
#define STORE_Q_SESSION 96
#define STORE_Q_MTREE 112

struct store {
	sqlite3 *db;
	int readonly;
	int savepoint_depth;
	int tx_open;            /* store_begin'ed and not yet ended by us */
	int last_err;           /* SQLite's code of the last failure */
	int busy_ms;
	struct store_ckpt *ckpt; /* background checkpointer, or NULL */
	sqlite3_stmt *stmt[STORE_MAX_STMTS]; /* cache, indexed by statement id */
};

/* SQLite's own WAL autocheckpoint, in pages, when no checkpointer runs. */
#define STORE_AUTOCHECKPOINT 2048

/* Prepared (and cached) statement number id for sql; reset before use. */
sqlite3_stmt *store_stmt(struct store *s, int id, const char *sql);
/* Map an SQLite result code to -errno. */
int store_err(struct store *s, int rc);
/* Run one statement without results. */
int store_exec(struct store *s, const char *sql);
/* Step a prepared write statement to completion and reset it. */
int store_step_done(struct store *s, sqlite3_stmt *st);
/* Copy a blob column into buf; -EIO if it is not exactly/at most cap. */
int store_col_blob(sqlite3_stmt *st, int col, void *buf, size_t cap,
                   size_t *len, int exact);

#endif
