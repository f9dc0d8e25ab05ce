/*
 * grant.h - secrets sealed to one user's public key (the grants table):
 * master key versions, audit secret keys, the authority signing key, and
 * a signing identity handed over at upgrade. The only code that seals or
 * opens a grant; *what* may be granted to whom is decided by the callers
 * from the verified roster (keyadmin.c, keyring.c, auth.c).
 */
#ifndef CUSTODY_GRANT_H
#define CUSTODY_GRANT_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* Seal secret (len bytes) to box_pk as grant (user, version, kind). */
int grant_seal(struct store *s, int64_t user_id, uint32_t version, int kind,
               const uint8_t *secret, size_t len, const uint8_t box_pk[32]);
/*
 * Open grant (user, version, kind) into out (exactly len bytes, locked
 * memory): 0, -ENOENT (no such grant), -EBADMSG (wrong length or it does
 * not open with this key pair).
 */
int grant_open(struct store *s, int64_t user_id, uint32_t version, int kind,
               uint8_t *out, size_t len, const uint8_t box_pk[32],
               const uint8_t *box_sk);
/* Delete grants (user_id, version -1 and kind 0 match all). */
int grant_revoke(struct store *s, int64_t user_id, int64_t version, int kind);

#endif
