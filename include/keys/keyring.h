/*
 * keyring.h - the master key versions one session holds, and every key
 * derived from them.
 *
 * Master key version N is 32 random bytes K_N. It is never stored in the
 * clear: each user whose role holds data has a copy sealed to their X25519
 * key (grant.h, GRANT_DATA), and the roster carries the commitment
 * KDF(K_N, "custodyfs.check") for it, so a grant that was swapped for an
 * attacker's key is refused. A version is loaded only if the verified
 * roster says it is active or decrypt-only and the user's role holds data:
 * a grant found for anyone else is ignored. From K_N derive:
 *   file key  = KDF(K_N, "custodyfs.file",  file_id)   content (cipher 1)
 *   block enc = KDF(K_N, "custodyfs.benc",  file_id)   content (cipher 2)
 *   block mac = KDF(K_N, "custodyfs.bmac",  file_id)
 *   name key  = KDF(K_N, "custodyfs.name",  dir file_id), tags: ".tag"
 *   xattr key = KDF(K_N, "custodyfs.xattr", file_id)
 * Derived keys are never stored; callers derive into locked memory and wipe.
 *
 * Not thread-safe: the filesystem lock serialises its users.
 */
#ifndef CUSTODY_KEYRING_H
#define CUSTODY_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include "cipher.h"

#define KEYRING_MAX_VERSIONS 64

struct keyring;
struct store;
struct rights;

/* Purposes for keyring_derive. */
#define KR_FILE  "custodyfs.file"
#define KR_BENC  "custodyfs.benc"
#define KR_BMAC  "custodyfs.bmac"
#define KR_NAME  "custodyfs.name"
#define KR_TAG   "custodyfs.tag"
#define KR_XATTR "custodyfs.xattr"
#define KR_CHECK "custodyfs.check"

int keyring_new(struct keyring **out);
void keyring_free(struct keyring *kr);
/* Drop (and wipe) every version held. */
void keyring_clear(struct keyring *kr);

/*
 * (Re)load every version the verified roster r lets user_id hold, opening
 * the user's data grants with (box_pk, box_sk) and checking each against
 * its commitment. The active version is the roster's, unless it expired
 * (then nothing encrypts: keyring_expired). Returns 0 or -errno (-EBADMSG
 * if a grant opens to a key that does not match its commitment).
 */
int keyring_load(struct keyring *kr, struct store *s, const struct rights *r,
                 int64_t user_id, const uint8_t box_pk[CIPHER_BOX_PK_BYTES],
                 const uint8_t *box_sk);
/* Add version v (key copied into locked memory), as rotation does. */
int keyring_add(struct keyring *kr, uint32_t version, int cipher,
                const uint8_t key[CIPHER_KEY_BYTES]);
/* The version new data is encrypted under (0: none: read-only). */
uint32_t keyring_active(const struct keyring *kr);
void keyring_set_active(struct keyring *kr, uint32_t version);
/* 1 when the active version has expired (nothing encrypts until a
 * rotation); keyring_expire says so when its time runs out. */
int keyring_expired(const struct keyring *kr);
void keyring_expire(struct keyring *kr);
/* Versions held, newest first, into out (at most cap); returns the count. */
size_t keyring_versions(const struct keyring *kr, uint32_t *out, size_t cap);
/* The content cipher of version v (enum key_cipher), 0 if not held. */
int keyring_cipher(const struct keyring *kr, uint32_t version);
/* A copy of K_v itself (key administration), -ENOKEY if not held. */
int keyring_key(const struct keyring *kr, uint32_t version,
                uint8_t out[CIPHER_KEY_BYTES]);

/*
 * out = KDF(K_v, purpose, in). Returns 0, or -ENOKEY when version v is not
 * held by this session (destroyed, retired, or never granted).
 */
int keyring_derive(const struct keyring *kr, uint32_t version,
                   const char *purpose, const void *in, size_t inlen,
                   uint8_t out[CIPHER_KEY_BYTES]);

/* The commitment of a key: KDF(K, "custodyfs.check"). */
void keyring_check_value(const uint8_t key[CIPHER_KEY_BYTES],
                         uint8_t out[CIPHER_MAC_BYTES]);

#endif
