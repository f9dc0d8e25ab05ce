/*
 * auth.h - credentials: what a passphrase opens, and logging in.
 *
 * Each user has an X25519 key pair (grants are sealed to it) and an
 * Ed25519 identity (it endorses the user's sessions); the roster (rights.h)
 * holds the public halves. The secret halves, with the authority epoch and
 * key the user trusts (their pin), are sealed under a key derived from the
 * passphrase with Argon2id (per-user salt and cost) in the user's
 * credentials row, bound to the store id, user id and name.
 *
 * Logging in opens that secret, follows the authority chain from the pin
 * (and from what this host has seen: state.h) to the newest authority,
 * verifies the roster under it, and checks that the roster lists this
 * user, alive, with exactly these public keys. The role comes from the
 * roster only. Every failure the user could have caused (unknown user,
 * wrong passphrase, locked account) costs one Argon2id at the store's
 * cost and gives the same -EACCES; the failure counters (logins table) are
 * advisory: a file writer can lock anyone out, and an admin (or the
 * recovery secret) unlocks.
 */
#ifndef CUSTODY_AUTH_H
#define CUSTODY_AUTH_H

#include <stdint.h>
#include "cipher.h"
#include "role.h"

struct store;
struct config;
struct passphrase;
struct session;
struct rights;
struct rights_policy;
struct state_seen;
struct store_cred;

/* Sane bounds on a stored Argon2id cost, checked before hashing. */
#define AUTH_OPSLIMIT_MAX 16
#define AUTH_MEMLIMIT_MAX (2ull << 30)

/* Validate a user name: 1..64 of [A-Za-z0-9._-], not starting with '-'. */
int auth_name_valid(const char *name);

/* The login policy in force: the roster's, made stricter (never looser)
 * by the configuration. */
void auth_policy(const struct rights_policy *signed_policy,
                 const struct config *cfg, struct rights_policy *out);

/* Whom a login attempt is for (failed attempts name them). */
struct auth_who {
	uint32_t uid;
	int64_t pid;
};

/*
 * Log name in with pw. Returns 0 with a session (keys unlocked, role from
 * the roster, no session key yet: session_start) and the verified roster,
 * or:
 *   -EACCES   unknown user, wrong passphrase or locked (the same for all)
 *   -EBADMSG  the store id is not the one its authority and roster are
 *             signed for (checked before any Argon2id, so nothing is
 *             counted), or the roster, the chain or the user's entry fails
 *             verification (why names it)
 *   -ESTALE   the authority chain or the roster is older than what this
 *             user or host has seen of this store instance (seen), or
 *             forks from it: a rolled-back file
 *   other -errno from the store.
 * seen (may be NULL: nothing seen, as at a path this user never opened)
 * is what state.h holds of the instance expected at the store's path.
 * who (NULL: this process) is whom a failed attempt is recorded for.
 * Nothing but the advisory counters is written: *current receives the
 * credential row as found (the caller checks it against the signed
 * state), and when it should be rewritten (a re-pin to a newer authority,
 * a raised cost) *has_update is set and *update holds the new row, for
 * the caller to write in its first transaction, under its commit.
 */
int auth_login(struct store *s, const struct config *cfg, const char *name,
               const struct passphrase *pw, const struct state_seen *seen,
               const struct auth_who *who, struct session **out, struct rights **rights,
               struct store_cred *current, struct store_cred *update,
               int *has_update, char *why, size_t whylen);

/*
 * A new user's keys and credential (admin, inside the caller's
 * transaction): generate the key pairs, seal their secrets under pw
 * pinning r's authority, and write the credential row for id. The public
 * keys are returned for the roster (rights_user_add); keys (init only)
 * receives the secret halves too.
 */
int auth_enrol(struct store *s, const struct rights *r,
               const struct rights_policy *policy, int64_t id,
               const char *name, const struct passphrase *pw,
               uint8_t box_pk[32] /* OUT */, uint8_t sign_pk[32] /* OUT */,
               struct session *keys /* OUT, may be NULL: the secret keys */);
/* The user changes their own passphrase: re-seal the same keys. */
int auth_passwd(struct store *s, const struct rights_policy *policy,
                const struct session *self, const struct passphrase *pw);
/* Clear a user's failure counter and lock (advisory). */
int auth_unlock(struct store *s, int64_t user_id);

/*
 * The recovery secret (KEYADMIN_RECOVERY_BYTES): its box and signing key
 * pairs (the roster's policy holds the public halves), and logging in
 * with it as user 0, "recovery" (rights.h), an admin: the chain is
 * followed from what this host saw (seen), else from the store's first
 * authority. 0, -EACCES (not this store's secret), -EBADMSG, -ESTALE.
 */
void auth_recovery_keys(const uint8_t *secret, uint8_t box_pk[32],
                        uint8_t *box_sk, uint8_t sign_pk[32], uint8_t *sign_sk);
struct state_seen;
int auth_recover(struct store *s, const uint8_t *secret,
                 const struct state_seen *seen, struct session **out,
                 struct rights **rights, char *why, size_t whylen);

/* The leaf of a credential row in the credentials tree (zero if none). */
void auth_cred_leaf(const struct store_cred *c, uint8_t leaf[32]);

#endif
