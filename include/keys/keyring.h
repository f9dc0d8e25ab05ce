/*
 * keyring.h - the unlocked master-key versions of one session, and every key
 * derived from them.
 *
 * Master key version N is 32 random bytes K_N. It is never stored in the
 * clear: each user who may use it holds a copy sealed to their X25519 public
 * key (key_grants, kind "data"), and the master_keys row carries a commitment
 * MAC(K_N, "check") signed by the store authority, so a grant that was
 * swapped for an attacker's key is refused. From K_N derive:
 *   file key     = KDF(K_N, "custodyfs.file",  file_id)   content blocks
 *   name key     = KDF(K_N, "custodyfs.name",  dir file_id) names, tags
 *   xattr key    = KDF(K_N, "custodyfs.xattr", file_id)   xattr names/values
 *   inode MAC key= KDF(K_N, "custodyfs.inode")            inode row MACs
 * Derived keys are never stored; callers derive into locked memory and wipe.
 *
 * A keyring is shared by the filesystem threads: keyring_* functions that
 * read are safe under the filesystem lock; keyring_reload takes the same.
 */
#ifndef CUSTODY_KEYRING_H
#define CUSTODY_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include "cipher.h"

#define KEYRING_MAX_VERSIONS 64

struct keyring;
struct store;

/* Purposes for keyring_derive. */
#define KR_FILE  "custodyfs.file"
#define KR_NAME  "custodyfs.name"
#define KR_XATTR "custodyfs.xattr"
#define KR_INODE "custodyfs.inode"
#define KR_META  "custodyfs.meta"

int keyring_new(struct keyring **out);
void keyring_free(struct keyring *kr);

/* Add version v (key is copied into locked memory). */
int keyring_add(struct keyring *kr, uint32_t version,
                const uint8_t key[CIPHER_KEY_BYTES]);
/* Forget version v (wiped). */
void keyring_drop(struct keyring *kr, uint32_t version);
/* Mark the version new data is encrypted under (0: none, read-only). */
void keyring_set_active(struct keyring *kr, uint32_t version);
uint32_t keyring_active(const struct keyring *kr);
/* 1 if version v is held. */
int keyring_has(const struct keyring *kr, uint32_t version);
/* Versions held, newest first, into out (at most cap); returns the count. */
size_t keyring_versions(const struct keyring *kr, uint32_t *out, size_t cap);

/*
 * out = KDF(K_v, purpose, in). Returns 0, or -ENOKEY when version v is not
 * held by this session (destroyed, retired, or never granted).
 */
int keyring_derive(const struct keyring *kr, uint32_t version,
                   const char *purpose, const void *in, size_t inlen,
                   uint8_t out[CIPHER_KEY_BYTES]);

/* Commitment value of a key: MAC(K, "custodyfs.check"). */
void keyring_check_value(const uint8_t key[CIPHER_KEY_BYTES],
                         uint8_t out[CIPHER_MAC_BYTES]);

/*
 * Load every live version granted to user_id from the store, verifying each
 * master_keys row's authority signature and each key's commitment. The
 * active version is set if it was granted. Returns 0 or -errno (-EBADMSG if
 * a row or grant fails verification).
 */
int keyring_load(struct keyring *kr, struct store *s, int64_t user_id,
                 const uint8_t box_pk[CIPHER_BOX_PK_BYTES],
                 const uint8_t box_sk[CIPHER_BOX_SK_BYTES],
                 const uint8_t authority_pk[CIPHER_SIGN_PK_BYTES],
                 const uint8_t store_id[16]);

/*
 * Reload when the master_keys rows changed since the last load (a rotation,
 * retirement or destruction by custodyctl) or the active version expired.
 * *changed is set to 1 when the active version or the held set changed.
 * Needs a prior keyring_load (whose credentials it reuses).
 */
int keyring_refresh(struct keyring *kr, struct store *s, int *changed);
/* Digest of all master_keys rows (cheap change detection). */
int keyring_fingerprint(struct store *s, uint8_t out[CIPHER_MAC_BYTES]);
/* 1 when the active version has expired (nothing encrypts until a
 * rotation). */
int keyring_expired(const struct keyring *kr);

/* Bytes an authority signs for a master_keys row. */
struct store_key;
size_t keyring_key_row_bytes(const struct store_key *k,
                             const uint8_t store_id[16], uint8_t *out,
                             size_t cap);

#endif

/* ---- administration (admin session with the authority key) ---- */
struct session;

/*
 * Create master key version N+1 (N = newest existing), seal it to every
 * user whose role holds data (and its audit secret to admins/auditors),
 * sign its row, make it active and demote the previous active version to
 * decrypt-only. The new key is added to kr. expires: 0 or a time.
 * Runs inside the caller's transaction. *version receives N+1.
 */
int keyring_rotate(struct keyring *kr, struct store *s,
                   const struct session *admin, int64_t expires,
                   uint32_t *version /* OUT */);

/*
 * keyring_rotate with the life-cycle bookkeeping every caller needs: the
 * new version expires max_age_s from now (0: never), and the step is logged
 * in key_events as event (with detail) by the admin. *from receives the
 * newest version held before (0 if none), *to the new one.
 */
int keyring_rotate_logged(struct keyring *kr, struct store *s,
                          const struct session *admin, int64_t max_age_s,
                          const char *event, const char *detail,
                          uint32_t *from, uint32_t *to);

/* Seal every live version held in kr to user_id according to role. */
int keyring_grant_user(struct keyring *kr, struct store *s,
                       const struct session *admin, int64_t user_id,
                       int role);

/*
 * Seal secret (len bytes) to pk and store it as the grant (user_id,
 * version, kind). The one place grants are written.
 */
int keyring_seal_grant(struct store *s, int64_t user_id, uint32_t version,
                       const char *kind, const uint8_t *secret, size_t len,
                       const uint8_t pk[CIPHER_BOX_PK_BYTES]);

/* Re-sign a master_keys row after a status change (admin). */
int keyring_sign_row(struct store_key *k, const struct session *admin);
