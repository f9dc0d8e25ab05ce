/*
 * grant.c - sealing and opening grants (grant.h).
 */
#include <errno.h>
#include <string.h>

#include "cipher.h"
#include "grant.h"
#include "store.h"

int grant_seal(struct store *s, int64_t user_id, uint32_t version, int kind,
               const uint8_t *secret, size_t len, const uint8_t box_pk[32])
{
	struct store_grant g = { .user_id = user_id, .version = version,
	                         .kind = kind };
	int rc;

	if (len + CIPHER_BOX_OVERHEAD > sizeof g.sealed)
		return -EINVAL;
	if ((rc = cipher_box_seal(g.sealed, secret, len, box_pk)))
		return rc;
	g.sealedlen = len + CIPHER_BOX_OVERHEAD;
	return store_grant_put(s, &g);
}

int grant_open(struct store *s, int64_t user_id, uint32_t version, int kind,
               uint8_t *out, size_t len, const uint8_t box_pk[32],
               const uint8_t *box_sk)
{
	struct store_grant g;
	int rc = store_grant_get(s, user_id, version, kind, &g);

	if (rc)
		return rc == -EIO ? -EBADMSG : rc;
	if (g.sealedlen != len + CIPHER_BOX_OVERHEAD)
		return -EBADMSG;
	return cipher_box_open(out, g.sealed, g.sealedlen, box_pk, box_sk);
}

int grant_revoke(struct store *s, int64_t user_id, int64_t version, int kind)
{
	return store_grant_delete(s, user_id, version, kind);
}
