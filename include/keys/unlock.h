/*
 * unlock.h - what custodyfs and custodyctl share between argument parsing
 * and real work: exit statuses, and opening + authenticating a store.
 */
#ifndef CUSTODY_UNLOCK_H
#define CUSTODY_UNLOCK_H

#include "config.h"

/* Exit statuses (documented in README.md and the man pages). */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,  /* I/O error, missing file, not a store, ... */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_AUTH = 3,     /* unknown user, wrong passphrase, locked account */
	EXIT_DAMAGE = 4,   /* check / audit verify found damage or tampering */
	EXIT_DENIED = 5,   /* the user's role does not allow this */
	EXIT_BUSY = 6,     /* the store is mounted read-write elsewhere */
};

#define CUSTODY_VERSION "0.1.0"

struct store;
struct keyring;
struct session;

/* Where a passphrase and a store come from (command-line options). */
struct unlock_opts {
	const char *prog;      /* "custodyfs" or "custodyctl", for messages */
	const char *store;     /* path (or $CUSTODY_STORE) */
	const char *user;      /* NULL: login name */
	const char *passfile;
	const char *extpass;
	const char *config;    /* NULL: default path if present */
};

struct unlocked {
	struct config cfg;
	struct store *s;
	struct session *ss;
	struct keyring *kr;
};

/* Load the configuration, printing one line on error. Returns an exit
 * status (EXIT_OK or EXIT_USAGE). */
int unlock_config(const struct unlock_opts *o, struct config *cfg);

/*
 * Open o->store (store_flags as store_open), read the passphrase, log in
 * and load the user's keys. On failure prints one line and returns the exit
 * status; on success returns EXIT_OK and fills u (free with unlock_free).
 */
int unlock_store(const struct unlock_opts *o, int store_flags,
                 struct unlocked *u);
void unlock_free(struct unlocked *u);

/* The user name to use: o->user, else the login name. */
/*
 * One read-write user of a store at a time (a mount, check --repair): an
 * exclusive flock on the store file, which the kernel drops when the holder
 * dies, so a stale lock can never block. Returns the lock fd (close it to
 * release), -EBUSY if another process holds it, or -errno.
 */
int unlock_writer_lock(const char *path);

const char *unlock_user(const struct unlock_opts *o);

/* Message for a store_open error code. */
const char *unlock_open_error(int rc);

/* Disable core dumps and ptrace attach for this process. */
void unlock_harden(void);

#endif
