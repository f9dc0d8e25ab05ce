/*
 * unlock.h - what custodyfs and custodyctl share between argument parsing
 * and real work: exit statuses, opening and authenticating a store, and
 * the one audited transaction every command and the daemon's own events
 * go through.
 *
 * unlock_store opens the store (one line naming the real cause on
 * failure), logs the user in (auth.h), verifies the commit chain from the
 * newest commit this user and host have seen (state.h) to the store's
 * head (ledger.h), refuses a rolled-back or replaced store (or, with
 * accept_rollback, accepts it: a warning line, an audit row, and the local
 * state re-based on it), refuses records beyond the signed head (a commit
 * record that does not verify, an audit row no commit covers), checks that
 * the roster and the user's credential are the ones the head commit
 * vouches for, and starts the session (its row, the login audit row and a
 * commit, in one transaction).
 *
 * The audited transaction: unlock_begin takes the write lock and first
 * catches up with whatever other processes committed (checking the
 * schema again if SQLite's schema_version moved, verifying each new
 * commit, reloading the roster if it moved, refusing audit rows beyond the
 * head); unlock_finish records the
 * operation in the trail and appends the commit signed by the session,
 * or, when the operation failed, rolls it back and records the refusal in
 * a transaction of its own. Fail closed: when the row cannot be recorded,
 * the operation is rolled back.
 */
#ifndef CUSTODY_UNLOCK_H
#define CUSTODY_UNLOCK_H

#include <limits.h>
#include <stdint.h>
#include "config.h"
#include "ledger.h"

/* Exit statuses (documented in README.md and the man pages). */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,  /* I/O error, missing file, not a store, ... */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_AUTH = 3,     /* unknown user, wrong passphrase, locked account */
	EXIT_DAMAGE = 4,   /* damage, tampering, a rolled-back store */
	EXIT_DENIED = 5,   /* the user's role does not allow this */
	EXIT_BUSY = 6,     /* the store is mounted read-write elsewhere */
};

#define CUSTODY_VERSION "0.2.6"

struct store;
struct rights;
struct session;
struct audit_trail;
struct state;
struct mtree;

/* Where a passphrase and a store come from (command-line options). */
struct unlock_opts {
	const char *prog;      /* "custodyfs" or "custodyctl", for messages */
	const char *store;     /* path (or $CUSTODY_STORE) */
	const char *user;      /* NULL: login name */
	const char *passfile;
	const char *extpass;
	const char *config;    /* NULL: default path if present */
	const char *kind;      /* session kind: "mount" or "ctl" */
	const uint8_t *recovery; /* log in with the recovery secret instead
	                          * (KEYADMIN_RECOVERY_BYTES, locked memory) */
	int accept_rollback;   /* accept an older copy deliberately */
	int quiet_state;       /* do not warn about missing local state */
	int legacy_roster;     /* accept a roster of 0.2.0 without an anchor
	                        * (custodyctl upgrade, which anchors it) */
	int inspect;           /* a command that only reads: it runs on a
	                        * store with rows beyond its signed head (said
	                        * in one line; nothing recorded: u->damaged) */
	/* waits of a second or more for another process's lock on the
	 * store, from the login on (store_set_wait_notice); NULL: none */
	void (*wait_notice)(void *arg, int64_t waited_ms, int outcome);
	void *wait_arg;
};

struct unlocked {
	struct config cfg;
	const struct unlock_opts *o;
	char path[PATH_MAX];        /* the store's real path */
	struct store *s;
	struct rights *r;           /* the verified roster */
	struct session *ss;         /* this process's session */
	struct audit_trail *trail;
	struct mtree *creds;        /* the credentials tree */
	struct ledger_commit head;  /* the newest verified commit */
	struct state *state;        /* NULL: no local state */
	int readonly;               /* the store file is read-only for us */
	int older_copy;             /* an older copy, opened read-only */
	int rolled_back;            /* accepted with accept_rollback */
	int rebase;                 /* ... so the local state of this
	                             * instance restarts from the accepted
	                             * head at the next save (state_rebase) */
	int fork_pending;           /* a copy: its next commit forks it */
	int damaged;                /* opened with o->inspect although rows
	                             * lie beyond the signed head: read-only,
	                             * nothing recorded; the command's exit
	                             * status is EXIT_DAMAGE */
	int in_tx;
	/* Set by a mount whose commits are made durable after they are
	 * written (fs.h): a commit of this layer (a login's, a session's
	 * end) is handed to it, in commit order with the filesystem's own,
	 * instead of being witnessed and saved at once. NULL: commits wait
	 * for the disk (synchronous=FULL) and are witnessed and saved here. */
	void (*commit_hook)(void *arg);
	void *commit_arg;
	/* the highest session id this process started, its own and (a
	 * daemon) its users': every later one must be above it, or a file
	 * handle naming an ended session would name the new one */
	int64_t sid_high;
	/* the credential the open transaction changes (0: none, -1: several)
	 * and its leaf before, for the next commit's proof */
	int64_t cred_user;
	uint8_t cred_old[32];
	size_t prooflen;
	uint8_t proof[LEDGER_PROOF_MAX];
	/* a daemon serving other users' sessions too: called when the
	 * roster moved, after this session followed it, so they follow
	 * (session_follow) under the caller's lock */
	void (*follow_others)(struct unlocked *u, void *arg);
	void *follow_arg;
};

/* Load the configuration, printing one line on error. Returns an exit
 * status (EXIT_OK or EXIT_USAGE). */
int unlock_config(const struct unlock_opts *o, struct config *cfg);

/*
 * Open o->store (store_flags as store_open: STORE_READONLY for commands
 * that only read; they still open read-write when they can, so failed
 * logins always count), log in, verify and start the session. On failure
 * prints one line and returns the exit status; on success returns EXIT_OK
 * and fills u (free with unlock_free).
 */
int unlock_store(const struct unlock_opts *o, int store_flags,
                 struct unlocked *u);
void unlock_free(struct unlocked *u);

/*
 * Create a new store at o->store for the first admin o->user with
 * passphrase pw (init): the store id, authority, roster with the login
 * policy, first key version, recovery secret (into recovery,
 * KEYADMIN_RECOVERY_BYTES of locked memory), the admin's session, the root
 * directory (fs_format, passed in to keep the layers apart) and the first
 * commit, in one transaction. On failure prints one line, removes the file
 * and returns the exit status; on success fills u.
 */
struct passphrase;
struct rights_policy;
typedef int (*unlock_format_fn)(struct unlocked *u, struct ledger_state *st);
int unlock_create(const struct unlock_opts *o,
                  const struct rights_policy *policy,
                  const struct passphrase *pw, uint8_t *recovery,
                  unlock_format_fn format, struct unlocked *u);

/*
 * Make the store copy at path (just written by a backup) a store instance
 * of its own: a commit in the copy, signed by this session, that names a
 * new instance (LEDGER_FORK) and records the backup in the copy's trail.
 * Checking or mounting the copy then never moves the original's freshness
 * (state.h). 0 or -errno (why says what).
 */
int unlock_fork(struct unlocked *u, const char *path, char *why,
                size_t whylen);

/* Begin an audited transaction (see above): 0 or -errno (-EBUSY: the
 * write lock was not had within the busy timeout; -EBADMSG: a commit made
 * meanwhile fails verification; -EACCES: this session's user lost the
 * right meanwhile). */
int unlock_begin(struct unlocked *u);
/*
 * End it: with rc 0 record (op, target) and commit (op NULL: the caller
 * recorded its rows itself); otherwise roll back and record (op, target,
 * rc) in a transaction of its own. fs (may be
 * NULL: unchanged) carries new filesystem roots. Returns rc, or the
 * failure of recording or committing (then nothing of it happened).
 */
int unlock_finish(struct unlocked *u, const char *op, const char *target,
                  int rc);
/* The same, for a transaction the filesystem layer changed: its new
 * inode and entry roots and next inode number in fs. */
int unlock_finish_fs(struct unlocked *u, const char *op, const char *target,
                     int rc, const struct ledger_state *fs);
/*
 * A user's credential row changed in the open transaction (added, reset,
 * re-sealed, deleted): its leaf in the credentials tree follows, so the
 * commit covers it. unlock_cred_changed is for this session's own user.
 */
int unlock_cred_changed_id(struct unlocked *u, int64_t user_id);
int unlock_cred_changed(struct unlocked *u);
/* Roll the open transaction back and forget what it changed in memory
 * (the filesystem layer's abort). */
void unlock_abort(struct unlocked *u);
/* Record one row in a transaction of its own (an event, a refusal). */
int unlock_record(struct unlocked *u, const char *op, const char *target,
                  int rc);
/* The state the next commit starts from (roster, roots, audit head). */
void unlock_state(const struct unlocked *u, struct ledger_state *out);
/* Append the commit for the open transaction with state st (the caller
 * filled the fs roots), COMMIT, and remember it as the head. On failure
 * the head stays what it was; the caller rolls the transaction back. */
int unlock_commit(struct unlocked *u, const struct ledger_state *st);
/*
 * Catch up outside a transaction (a long-lived daemon, once a second): if
 * another process committed, verify the new commits, reload the roster
 * and this session's keys. *changed is set when anything moved.
 */
int unlock_refresh(struct unlocked *u, int *changed);
/* The same inside a read transaction the caller holds: 1 if the head
 * moved, 0 if not, or -errno (-EBADMSG: a new commit fails verification,
 * the schema is no longer custodyfs's, or an audit row lies beyond the
 * head; a line is printed). Fail closed: a mount stops serving. */
int unlock_catch_up(struct unlocked *u);
/* A commit just became durable (u->head): tell the witness (witness.h).
 * unlock_finish does it; the filesystem layer's group commit too. */
void unlock_committed(struct unlocked *u);
/* The witness line (syslog) of commit c of this store: unlock_committed
 * for a commit that was made durable after it was written (any thread:
 * the configuration does not change once loaded). */
void unlock_witness(struct unlocked *u, const struct ledger_commit *c);
/* Remember the head in the local state (after a commit, at exit); never
 * when the state names a commit the store lost (unlock_check_seen). Reads
 * the store: a daemon calls it under its filesystem lock. */
void unlock_save_state(struct unlocked *u);
/*
 * A long-lived process (a mount, once a second, after catching up): the
 * local state file as other processes of this Unix user wrote it since
 * (custodyctl commands) must name a commit of this instance that the
 * store still holds. -ESTALE (why says which) when it does not: rows were
 * put back under this process, taking away a commit this host saw (a
 * demotion or revocation it has not caught up with, say); fail closed.
 * 0 otherwise, and when there is nothing to compare.
 */
int unlock_check_seen(struct unlocked *u, char *why, size_t whylen);

/* ---- another user's session in a running daemon (custodyctl login) ---- */
struct unlock_other;
struct auth_who;
struct audit_who;
/*
 * Authenticate name with pw for the process `who` on a connection of its
 * own, so the daemon's requests go on during the Argon2id work. Failed
 * attempts are counted and queued for the trail as for any login. 0 with
 * *out, or -EACCES (one answer for unknown, wrong and locked), -EBADMSG,
 * -ESTALE, -errno (why says what).
 */
int unlock_other_auth(const struct unlocked *u, const char *name,
                      const struct passphrase *pw, const struct auth_who *who,
                      struct unlock_other **out, char *why, size_t whylen);
/* The user it authenticated (role from the verified roster). */
const struct session *unlock_other_user(const struct unlock_other *p);
/*
 * Under the caller's lock, with no transaction of u's open: check the
 * login against u's verified roster and head (-EAGAIN: the rights moved
 * meanwhile; log in again), and start the session: its row, the login
 * row (for w) and a commit it signs. 0 with *out (the caller owns it; its
 * identity key is wiped), or -errno.
 */
int unlock_other_start(struct unlocked *u, struct unlock_other *p,
                       const struct audit_who *w, struct session **out,
                       char *why, size_t whylen);
void unlock_other_free(struct unlock_other *p);
/*
 * Record one row for another process w in a transaction of its own,
 * signed by ss (NULL, or ended: u's own session); about names the user it
 * concerns when that is not the signer's (a refused login).
 */
int unlock_record_for(struct unlocked *u, struct session *ss,
                      const char *about, const struct audit_who *w,
                      const char *op, const char *what, int rc);

/* The user name to use: o->user, else the login name. */
const char *unlock_user(const struct unlock_opts *o);
/*
 * One read-write user of a store at a time (a mount, check --repair): an
 * exclusive flock on the store file, which the kernel drops when the holder
 * dies, so a stale lock can never block. Returns the lock fd (close it to
 * release), -EBUSY if another process holds it, or -errno.
 */
int unlock_writer_lock(const char *path);
/* Message for a store_open error code. */
const char *unlock_open_error(int rc);
/* Disable core dumps and ptrace attach for this process. */
void unlock_harden(void);

#endif
