/*
 * upgrade.h - the format-2 rights and trail of a store upgraded from
 * format 1, built from what upgrade_v1.h verified (custodyctl upgrade).
 *
 * In one transaction on a new file (the caller's STORE.upgrade.tmp):
 *   - the same store id; a new authority (epoch 1) and a new recovery
 *     secret (user 0), as init makes them;
 *   - the roster: every format-1 user with the same id, name and role,
 *     every key version with its status, dates, commitment and audit key
 *     (cipher 1: format-1 content stays readable as it is), and the login
 *     policy of the configuration with the format-1 block size;
 *   - credentials: the upgrading admin keeps their passphrase (with a new
 *     identity key); every other user gets a new key pair sealed under a
 *     random one-time passphrase (returned in the result, for the caller to
 *     hand out): their format-1 passphrase cannot be turned into format-2
 *     keys by anyone but themselves, so it no longer works;
 *   - grants by role, re-sealed from the versions and audit secrets the
 *     admin holds (keyadmin_grant_role);
 *   - the admin's session (kind "upgrade"), which records the verified
 *     format-1 trail row by row (audit_append_carried: original time, user,
 *     uid, gid, pid, operation, inode, range, result, and the process name
 *     and path re-sealed under its detail key, or a marker saying the
 *     detail could not be opened), the failed logins format 1 had not yet
 *     recorded, the filesystem (plan->fs: fs_upgrade.h), an "upgrade" row
 *     with the counts, and the first commit, signed by that session.
 * On failure nothing is left committed; the caller removes the file.
 */
#ifndef CUSTODY_UPGRADE_H
#define CUSTODY_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include "passphrase.h"
#include "role.h"
#include "upgrade_v1.h"

struct config;
struct unlocked;
struct unlock_opts;
struct ledger_state;

struct upgrade_plan {
	const struct unlock_opts *o;   /* prog, for messages */
	const struct config *cfg;      /* policy, busy timeout */
	const char *tmp;               /* the new file (created, O_EXCL) */
	const struct passphrase *pw;   /* the upgrading admin's */
	uint8_t *recovery;             /* OUT: KEYADMIN_RECOVERY_BYTES, locked */
	upgrade_progress_fn progress;
	void *arg;
	/* the filesystem inside the transaction: the roots and next inode
	 * number into st, one line of counts into summary */
	int (*fs)(void *arg, struct unlocked *u, struct upgrade_v1 *v,
	          struct ledger_state *st, char *summary, size_t cap,
	          char *why, size_t whylen);
	void *fs_arg;
};

/* A user who got a one-time passphrase. */
struct upgrade_reset {
	int64_t id;
	char name[65];
	enum role role;
	struct passphrase pass;        /* locked */
};

struct upgrade_result {
	struct upgrade_reset *resets;
	size_t nresets;
	size_t nusers, nkeys;
	uint64_t audit_rows;           /* format-1 rows carried */
	uint64_t audit_unreadable;     /* ... whose details did not open */
	uint64_t auth_events;
	char summary[512];             /* the "upgrade" row's text */
};

/*
 * Build the format-2 store at plan->tmp from the verified v (an admin's).
 * 0 with u filled (the new store open, its roster, the admin's session, the
 * head: free with unlock_free) and res, or -errno with why (u freed by the
 * caller, the file removed by the caller).
 */
int upgrade_build(struct upgrade_v1 *v, const struct upgrade_plan *plan,
                  struct unlocked *u, struct upgrade_result *res, char *why,
                  size_t whylen);
void upgrade_result_free(struct upgrade_result *res);

#endif
