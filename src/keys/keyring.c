/*
 * keyring.c - master key versions held in locked memory, and derivation of
 * per-file, per-directory and per-purpose keys from them (keyring.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grant.h"
#include "keyring.h"
#include "rights.h"
#include "role.h"
#include "store.h"

struct kr_slot {
	uint32_t version;       /* 0: free */
	int cipher;
	uint8_t *key;           /* locked memory */
};

struct keyring {
	struct kr_slot slot[KEYRING_MAX_VERSIONS];
	uint32_t active;
	int expired;            /* the roster's active version's time is up */
};

int keyring_new(struct keyring **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

static void drop_all(struct keyring *kr)
{
	for (int i = 0; i < KEYRING_MAX_VERSIONS; i++) {
		secmem_free(kr->slot[i].key);
		kr->slot[i].key = NULL;
		kr->slot[i].version = 0;
	}
	kr->active = 0;
	kr->expired = 0;
}

void keyring_clear(struct keyring *kr)
{
	drop_all(kr);
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	drop_all(kr);
	free(kr);
}

static struct kr_slot *find(const struct keyring *kr, uint32_t v)
{
	for (int i = 0; v && i < KEYRING_MAX_VERSIONS; i++)
		if (kr->slot[i].version == v)
			return (struct kr_slot *)&kr->slot[i];
	return NULL;
}

int keyring_add(struct keyring *kr, uint32_t version, int cipher,
                const uint8_t key[CIPHER_KEY_BYTES])
{
	struct kr_slot *sl = find(kr, version);

	if (!version)
		return -EINVAL;
	for (int i = 0; !sl && i < KEYRING_MAX_VERSIONS; i++)
		if (!kr->slot[i].version)
			sl = &kr->slot[i];
	if (!sl)
		return -ENOSPC;
	if (!sl->key && !(sl->key = secmem_alloc(CIPHER_KEY_BYTES)))
		return -ENOMEM;
	sl->version = version;
	sl->cipher = cipher;
	memcpy(sl->key, key, CIPHER_KEY_BYTES);
	return 0;
}

void keyring_set_active(struct keyring *kr, uint32_t version)
{
	kr->active = version;
	kr->expired = 0;
}

uint32_t keyring_active(const struct keyring *kr)
{
	return kr->active;
}

int keyring_expired(const struct keyring *kr)
{
	return kr->expired;
}

void keyring_expire(struct keyring *kr)
{
	kr->active = 0;
	kr->expired = 1;
}

size_t keyring_versions(const struct keyring *kr, uint32_t *out, size_t cap)
{
	size_t n = 0;

	for (int i = 0; i < KEYRING_MAX_VERSIONS; i++)
		if (kr->slot[i].version && n < cap)
			out[n++] = kr->slot[i].version;
	/* newest first: insertion sort, n is tiny */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && out[j] > out[j - 1]; j--) {
			uint32_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

int keyring_cipher(const struct keyring *kr, uint32_t version)
{
	const struct kr_slot *sl = find(kr, version);
	return sl ? sl->cipher : 0;
}

int keyring_key(const struct keyring *kr, uint32_t version,
                uint8_t out[CIPHER_KEY_BYTES])
{
	const struct kr_slot *sl = find(kr, version);

	if (!sl)
		return -ENOKEY;
	memcpy(out, sl->key, CIPHER_KEY_BYTES);
	return 0;
}

int keyring_derive(const struct keyring *kr, uint32_t version,
                   const char *purpose, const void *in, size_t inlen,
                   uint8_t out[CIPHER_KEY_BYTES])
{
	const struct kr_slot *sl = find(kr, version);

	if (!sl)
		return -ENOKEY;
	cipher_kdf(out, sl->key, purpose, in, inlen);
	return 0;
}

void keyring_check_value(const uint8_t key[CIPHER_KEY_BYTES],
                         uint8_t out[CIPHER_MAC_BYTES])
{
	cipher_kdf(out, key, KR_CHECK, NULL, 0);
}

int keyring_load(struct keyring *kr, struct store *s, const struct rights *r,
                 int64_t user_id, const uint8_t box_pk[CIPHER_BOX_PK_BYTES],
                 const uint8_t *box_sk)
{
	const struct rights_user *u = rights_user(r, user_id);
	uint8_t *key = secmem_alloc(CIPHER_KEY_BYTES);
	uint8_t check[CIPHER_MAC_BYTES];
	int64_t now = time(NULL);
	int rc = 0;

	if (!key)
		return -ENOMEM;
	drop_all(kr);
	/* the roster, not the grants table, decides who holds data: an
	 * auditor's (or a removed user's) data grant is never opened */
	if (!u || !role_holds_data(rights_role(u)))
		goto out;
	for (size_t i = 0; i < r->nkeys && !rc; i++) {
		const struct rights_key *k = &r->keys[i];
		if (k->status != KEY_ACTIVE && k->status != KEY_DECRYPT_ONLY)
			continue; /* retired and destroyed versions never decrypt */
		rc = grant_open(s, user_id, k->version, GRANT_DATA, key,
		                CIPHER_KEY_BYTES, box_pk, box_sk);
		if (rc == -ENOENT) {
			rc = 0; /* not granted to this user (revoked, added later) */
			continue;
		}
		if (rc)
			break;
		keyring_check_value(key, check);
		if (!cipher_memeq(check, k->check, sizeof check)) {
			rc = -EBADMSG;
			break;
		}
		if ((rc = keyring_add(kr, k->version, k->cipher, key)))
			break;
		if (k->status == KEY_ACTIVE) {
			if (k->expires && k->expires <= now)
				kr->expired = 1; /* an expired version never encrypts */
			else
				kr->active = k->version;
		}
	}
out:
	secmem_free(key);
	if (rc)
		drop_all(kr);
	return rc;
}
