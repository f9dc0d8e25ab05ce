/*
 * auth.h - users, roles, passphrases and the store authority.
 *
 * Each user has an X25519 key pair. The secret half, together with the
 * store authority's public key pinned at enrolment, is sealed under a key
 * derived from the user's passphrase with Argon2id (per-user salt and
 * limits, stored so they can be raised). The store authority is an Ed25519
 * key pair whose secret half is granted only to admins; it signs every user
 * row (name, role, public key) and every master_keys row, so editing a role
 * or a key's status with sqlite3 is detected: the row no longer verifies
 * under the authority key that each user carries inside their own sealed
 * secret.
 *
 * Grants per user (key_grants.kind, version):
 *   "authority", 0  admins: the authority signing key
 *   "auditmac",  0  everyone: the audit chain MAC key (any mount appends)
 *   "data",      v  admin, writer, reader: master key version v
 *   "audit",     v  admin, auditor: secret key that opens audit details
 */
#ifndef CUSTODY_AUTH_H
#define CUSTODY_AUTH_H

#include <stdint.h>
#include "cipher.h"

struct store;
struct config;
struct passphrase;
struct store_user;

enum role { ROLE_NONE = -1, ROLE_ADMIN, ROLE_WRITER, ROLE_READER, ROLE_AUDITOR };

const char *role_name(enum role r);
enum role role_parse(const char *s); /* ROLE_NONE if unknown */
int role_holds_data(enum role r);    /* admin, writer, reader */
int role_reads_audit(enum role r);   /* admin, auditor */

/* An authenticated user. Secrets are in locked memory. */
struct session {
	int64_t user_id;
	char name[65];
	enum role role;
	uint8_t store_id[16];
	uint8_t box_pk[CIPHER_BOX_PK_BYTES];
	uint8_t *box_sk;          /* locked */
	uint8_t authority_pk[CIPHER_SIGN_PK_BYTES];
	uint8_t *authority_sk;    /* locked; admins only, else NULL */
	uint8_t *audit_mac_key;   /* locked; NULL if not granted */
};

/*
 * Authenticate name with pw. Returns 0 and a session, or:
 *   -EACCES  unknown user or wrong passphrase (indistinguishable, same cost)
 *   -EAGAIN  account locked (*locked_for = seconds left)
 *   -EBADMSG the user row or its grants fail verification (tampering)
 *   other -errno from the store.
 * Failures and successes update the user's counters (and lock after
 * cfg->max_failures); Argon2id limits are raised to the config's if lower.
 */
int auth_login(struct store *s, const struct config *cfg, const char *name,
               const struct passphrase *pw, struct session **out,
               int64_t *locked_for);
void session_free(struct session *ss);

/*
 * Create a new store's authority, its first user (an admin) and that
 * user's session. Runs inside the caller's transaction.
 */
int auth_bootstrap(struct store *s, const struct config *cfg,
                   const char *name, const struct passphrase *pw,
                   struct session **out);

/* Add a user (admin session required). Grants auditmac; the caller grants
 * key versions (keyring_grant_all). */
int auth_user_add(struct store *s, const struct config *cfg,
                  const struct session *admin, const char *name,
                  enum role role, const struct passphrase *pw,
                  int64_t *id /* OUT */);
/* Re-seal a user's secret under a new passphrase (no data is re-encrypted).
 * The session must be the user themself. */
int auth_user_passwd(struct store *s, const struct config *cfg,
                     const struct session *self, const struct passphrase *pw);
/*
 * Admin reset of another user's passphrase: a new key pair, its secret
 * sealed under pw, the row re-signed, every grant deleted and the
 * role-independent ones (auditmac, authority for admins) re-sealed; the
 * caller re-grants key versions by role. Clears a lockout.
 */
int auth_user_reset(struct store *s, const struct config *cfg,
                    const struct session *admin, struct store_user *u,
                    const struct passphrase *pw);
/* Change role and re-sign (admin). Grants are adjusted by the caller. */
int auth_user_set_role(struct store *s, const struct session *admin,
                       int64_t user_id, enum role role);
/* Verify a user row's authority signature: 0 or -EBADMSG. */
struct store_user;
int auth_user_verify(const struct store_user *u, const uint8_t store_id[16],
                     const uint8_t authority_pk[CIPHER_SIGN_PK_BYTES]);
int auth_user_sign(struct store_user *u, const uint8_t store_id[16],
                   const uint8_t authority_sk[CIPHER_SIGN_SK_BYTES]);
/* Clear a lockout (admin). */
int auth_user_unlock(struct store *s, int64_t user_id);

/* Validate a user name: 1..64 of [A-Za-z0-9._-], not starting with '-'. */
int auth_name_valid(const char *name);

#endif
