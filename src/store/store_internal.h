/*
 * store_internal.h - shared by the src/store files only: the connection,
 * the prepared-statement cache and small helpers over sqlite3.
 */
#ifndef CUSTODY_STORE_INTERNAL_H
#define CUSTODY_STORE_INTERNAL_H

#include <sqlite3.h>
#include <sys/types.h>
#include "store.h"

#define STORE_MAX_STMTS 144
/* statement ids: store.c uses 0..47, store_keys.c 48..87, store_audit.c
 * 88..103, store_session.c 104..119, store_mtree.c 120..143 (each file
 * asserts its range) */
#define STORE_Q_KEYS    48
#define STORE_Q_AUDIT   88
#define STORE_Q_SESSION 104
#define STORE_Q_MTREE   120

struct store {
	sqlite3 *db;
	int readonly;
	int format;             /* of the open file */
	int tx_open;            /* store_begin'ed and not yet ended by us */
	int last_err;           /* SQLite's code of the last failure */
	int busy_ms;
	/* waiting for another process's lock (store_set_wait_notice) */
	void (*wait_fn)(void *arg, int64_t waited_ms, int outcome);
	void *wait_arg;
	int wait_after_ms;
	int wait_said;          /* the notice of this wait was given */
	int64_t wait_start;     /* ms (CLOCK_MONOTONIC) the wait began */
	int64_t waited_total;   /* ms spent waiting since open */
	int64_t schema_version; /* as last checked (store_schema_verify) */
	int64_t data_version;   /* as last seen (store_changed) */
	int data_version_seen;
	struct store_ckpt *ckpt; /* background checkpointer, or NULL */
	char *shm_path;         /* the -shm this process's index is (store_guard.c) */
	dev_t shm_dev;
	ino_t shm_ino;
	int shm_known;
	int wal_fd;             /* store_defer_sync: the WAL, for store_sync
	                           (-1: commits wait for the disk) */
	int dir_fd;             /* its directory, synced once (dir_synced) */
	int dir_synced;
	sqlite3_stmt *stmt[STORE_MAX_STMTS]; /* cache, indexed by statement id */
};

/* SQLite's own WAL autocheckpoint, in pages, when no checkpointer runs
 * (custodyctl's connections): 64 MiB of 32 KiB pages, 128 MiB of 64 KiB. */
#define STORE_AUTOCHECKPOINT 2048

/* The one integer a PRAGMA (or other one-value query) answers: header
 * fields (application_id, user_version: signed 32-bit values in the file
 * header) as the signed integers they are, page_size, page_count. */
int store_pragma_i64(struct store *s, const char *sql, int64_t *v);
/* Set the journal mode ("wal", "delete"): 0 once SQLite reports it in
 * force, -EBUSY if it could not switch (another connection has the file). */
int store_journal_mode(struct store *s, const char *mode);

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
/* Copy a text column (no NUL inside) into buf; -EIO if it does not fit. */
int store_col_text(sqlite3_stmt *st, int col, char *buf, size_t cap);
/*
 * An integer column lo..hi into *out: -EIO for any other type (a real, a
 * text, a blob, NULL: SQLite would convert it, 2.5 to 2 and 'x' to 0) or a
 * value out of range (never truncated into a narrower type). The _u32 one
 * takes 0..UINT32_MAX; the _i64 and _u64 ones any integer (_u64: the
 * uint64_t a row was bound from as int64_t).
 */
int store_col_int(sqlite3_stmt *st, int col, int64_t lo, int64_t hi,
                  int64_t *out);
int store_col_u32(sqlite3_stmt *st, int col, uint32_t *out);
int store_col_i64(sqlite3_stmt *st, int col, int64_t *out);
int store_col_u64(sqlite3_stmt *st, int col, uint64_t *out);
/* A blob column's bytes, never NULL (SQLite gives NULL for an empty
 * one); NULL only if the column is not a blob (an empty text passes, as
 * store_col_blob takes it). *len its length. */
const void *store_col_bytes(sqlite3_stmt *st, int col, size_t *len);
/*
 * Defensive mode on, triggers, views, double-quoted strings, extension
 * loading and untrusted schema functions off: for every connection to a
 * store, before its first statement. 0 or -EIO.
 */
int store_harden(sqlite3 *db);
/* store_guard.c: a SIGBUS of a mapping cut short is survived, once set up */
void store_guard(void);
int store_cut_err(struct store *s);
/* store_guard.c: remember which file the store's -shm is (a read-write
 * open) */
void store_shm_note(struct store *s, const char *db_path);
void store_close_db(sqlite3 *db); /* sqlite3_close, minding a cut */
/* The CREATE statements of a format (1 or 2), NULL-terminated. */
const char *const *store_schema_sql(int format);

#endif
