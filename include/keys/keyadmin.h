/*
 * keyadmin.h - key administration: every change of rights, made by an
 * admin session on the verified roster, with the grants that follow from
 * it. The one place that decides who is sealed what:
 *   data key of each live version   -> every user whose role holds data
 *   audit secret of each version    -> every admin and auditor
 *   authority key of the epoch      -> every admin, and the recovery key
 * Each function runs inside the caller's transaction, changes the roster
 * in memory (r) and writes grants; the caller signs the roster
 * (keyadmin_sign) and commits, in the same transaction.
 *
 * Removing or demoting an admin replaces the authority (a new epoch
 * endorsed by the old): the removed admin's copy of the old authority key
 * signs nothing anyone accepts afterwards.
 *
 * Errors: 0 or -errno; -EPERM when admin holds no authority key, -ENOENT
 * for an unknown user or version, -EBADMSG when a grant the admin holds
 * does not open (tampering), -EEXIST for a name in use.
 */
#ifndef CUSTODY_KEYADMIN_H
#define CUSTODY_KEYADMIN_H

#include <stddef.h>
#include <stdint.h>
#include "role.h"

struct store;
struct rights;
struct rights_policy;
struct session;
struct passphrase;

#define KEYADMIN_RECOVERY_BYTES 32

/*
 * A new store (inside the caller's transaction on a fresh file): the store
 * id, authority epoch 1, the first admin `name` with passphrase pw, the
 * login policy, the first master key version, and a recovery secret
 * (recovery, KEYADMIN_RECOVERY_BYTES, locked memory of the caller) whose
 * public keys the roster records; the first version expires max_age_s
 * from now (0: never). Returns the admin's session (not started) and the
 * roster, signed.
 */
int keyadmin_init(struct store *s, const struct rights_policy *policy,
                  const char *name, const struct passphrase *pw,
                  uint8_t *recovery, int64_t max_age_s, struct session **out,
                  struct rights **rights);

/*
 * A new active master key version (the previous active one becomes
 * decrypt-only), sealed by role, expiring max_age_s from now (0: never);
 * it is added to admin's keyring. *from: the newest version before (0 if
 * none), *to: the new one.
 */
int keyadmin_rotate(struct store *s, struct rights *r, struct session *admin,
                    int64_t max_age_s, uint32_t *from, uint32_t *to);
/* Retire a decrypt-only version nothing uses (the caller checks usage),
 * or destroy a retired one (every sealed copy deleted). Destroying also
 * leaves, in meta (advisory), the destroyed grants' fingerprints: the
 * public ephemeral key that begins each sealed box, masked so that the
 * row itself never matches (keyadmin_destroyed_traces). */
int keyadmin_retire(struct store *s, struct rights *r, struct session *admin,
                    uint32_t version);
int keyadmin_destroy(struct store *s, struct rights *r, struct session *admin,
                     uint32_t version);
/*
 * For check: whether a destroyed version's sealed key material still
 * exists. Returns a bit set: KEYADMIN_TRACE_ROWS (grants of a destroyed
 * version in the grants table, e.g. put back from a copy), and the
 * STORE_IN_FILE / STORE_IN_WAL bits of store_file_holds for the recorded
 * fingerprints (a page image the database no longer uses: the WAL not yet
 * emptied, a free page not zeroed). *version receives the first such
 * version. 0: none; -errno.
 */
#define KEYADMIN_TRACE_ROWS 4
int keyadmin_destroyed_traces(struct store *s, const struct rights *r,
                              uint32_t *version);
/* A new authority epoch, granted to the admins and the recovery key. */
int keyadmin_authority_rotate(struct store *s, struct rights *r,
                              struct session *admin);

/* A new user (credential, roster entry, grants by role). *id: theirs. */
int keyadmin_user_add(struct store *s, struct rights *r, struct session *admin,
                      const struct rights_policy *policy, const char *name,
                      enum role role, const struct passphrase *pw,
                      int64_t *id);
/* Remove a user: roster entry "removed", credential and grants deleted;
 * an admin's removal replaces the authority. */
int keyadmin_user_remove(struct store *s, struct rights *r,
                         struct session *admin, int64_t id);
/* A new role, grants adjusted; an admin's demotion replaces the authority. */
int keyadmin_user_role(struct store *s, struct rights *r,
                       struct session *admin, int64_t id, enum role role);
/* Reset another user's passphrase: new key pairs, credential, grants; an
 * admin's reset replaces the authority (the old keys open its grant). */
int keyadmin_user_reset(struct store *s, struct rights *r,
                        struct session *admin,
                        const struct rights_policy *policy, int64_t id,
                        const struct passphrase *pw);
/* Number of live admins in the roster. */
size_t keyadmin_admins(const struct rights *r);

/*
 * For custodyctl upgrade, which builds a whole roster at once: the public
 * keys of a recovery secret (as keyadmin_init records them), and every
 * grant of user u by their role in r (data versions admin holds, audit
 * secrets admin's own grants open, the authority for admins), replacing
 * what u had.
 */
struct rights_user;
void keyadmin_recovery_public(const uint8_t *secret, uint8_t box_pk[32],
                              uint8_t sign_pk[32]);
int keyadmin_grant_role(struct store *s, const struct rights *r,
                        const struct session *admin,
                        const struct rights_user *u);

/* Sign the changed roster with admin's authority key (no-op if clean). */
int keyadmin_sign(struct store *s, struct rights *r,
                  const struct session *admin);

#endif
