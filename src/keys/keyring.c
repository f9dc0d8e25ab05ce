/*
 * keyring.c - master-key versions held in locked memory, and derivation of
 * per-file, per-directory and metadata keys from them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "store.h"
#include <stdio.h>
#include <time.h>

struct kr_slot {
	uint32_t version;       /* 0: free */
	uint8_t *key;           /* locked memory */
};

struct keyring {
	struct kr_slot slot[KEYRING_MAX_VERSIONS];
	uint32_t active;
	int expired;            /* the active version's time is up */
	/* remembered by keyring_load for keyring_refresh */
	int loaded;
	int64_t user_id;
	uint8_t box_pk[CIPHER_BOX_PK_BYTES];
	uint8_t *box_sk;        /* locked */
	uint8_t authority_pk[CIPHER_SIGN_PK_BYTES];
	uint8_t store_id[16];
	uint8_t fingerprint[CIPHER_MAC_BYTES]; /* of all master_keys rows */
};

int keyring_new(struct keyring **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	for (int i = 0; i < KEYRING_MAX_VERSIONS; i++)
		secmem_free(kr->slot[i].key);
	secmem_free(kr->box_sk);
	free(kr);
}

static struct kr_slot *find(const struct keyring *kr, uint32_t v)
{
	for (int i = 0; i < KEYRING_MAX_VERSIONS; i++)
		if (kr->slot[i].version == v && v)
			return (struct kr_slot *)&kr->slot[i];
	return NULL;
}

int keyring_add(struct keyring *kr, uint32_t version,
                const uint8_t key[CIPHER_KEY_BYTES])
{
	struct kr_slot *sl = find(kr, version);

	if (!version)
		return -EINVAL;
	if (!sl) {
		sl = find(kr, 0);
		for (int i = 0; !sl && i < KEYRING_MAX_VERSIONS; i++)
			if (!kr->slot[i].version)
				sl = &kr->slot[i];
		if (!sl)
			return -ENOSPC;
		sl->key = secmem_alloc(CIPHER_KEY_BYTES);
		if (!sl->key)
			return -ENOMEM;
		sl->version = version;
	}
	memcpy(sl->key, key, CIPHER_KEY_BYTES);
	return 0;
}

void keyring_drop(struct keyring *kr, uint32_t version)
{
	struct kr_slot *sl = find(kr, version);

	if (!sl)
		return;
	secmem_free(sl->key);
	sl->key = NULL;
	sl->version = 0;
	if (kr->active == version)
		kr->active = 0;
}

void keyring_set_active(struct keyring *kr, uint32_t version)
{
	kr->active = version;
}

uint32_t keyring_active(const struct keyring *kr)
{
	return kr->active;
}

int keyring_has(const struct keyring *kr, uint32_t version)
{
	return find(kr, version) != NULL;
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
	cipher_kdf(out, key, "custodyfs.check", NULL, 0);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

size_t keyring_key_row_bytes(const struct store_key *k,
                             const uint8_t store_id[16], uint8_t *out,
                             size_t cap)
{
	size_t n = 0, sl = strlen(k->status);

	if (cap < 16 + 8 * 5 + 16 + 32 + 32 + 16)
		return 0;
	memcpy(out, "custodyfs.key\0\0\0", 16); n += 16;
	memcpy(out + n, store_id, 16); n += 16;
	put64(out + n, k->version); n += 8;
	put64(out + n, (uint64_t)k->created); n += 8;
	put64(out + n, (uint64_t)k->activated); n += 8;
	put64(out + n, (uint64_t)k->expires); n += 8;
	put64(out + n, (uint64_t)k->retired); n += 8;
	memcpy(out + n, k->check, 32); n += 32;
	memcpy(out + n, k->audit_pk, 32); n += 32;
	memset(out + n, 0, 16);
	memcpy(out + n, k->status, sl < 16 ? sl : 15); n += 16;
	return n;
}

struct load_ctx {
	struct keyring *kr;
	struct store *s;
	int64_t user_id;
	const uint8_t *pk, *sk, *authority_pk, *store_id;
	int err;
};

static int load_one(void *arg, const struct store_key *k)
{
	struct load_ctx *c = arg;
	struct store_grant g;
	uint8_t row[256], check[CIPHER_MAC_BYTES];
	uint8_t *key;
	size_t n;
	int rc;

	n = keyring_key_row_bytes(k, c->store_id, row, sizeof row);
	if (!n || cipher_sign_verify(k->sig, row, n, c->authority_pk)) {
		c->err = -EBADMSG;
		return 1;
	}
	if (strcmp(k->status, "active") && strcmp(k->status, "decrypt-only"))
		return 0; /* retired and destroyed versions never decrypt */
	rc = store_grant_get(c->s, c->user_id, k->version, "data", &g);
	if (rc == -ENOENT)
		return 0; /* not granted to this user (auditor, revoked) */
	if (rc) {
		c->err = rc;
		return 1;
	}
	if (g.sealedlen != CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD) {
		c->err = -EBADMSG;
		return 1;
	}
	key = secmem_alloc(CIPHER_KEY_BYTES);
	if (!key) {
		c->err = -ENOMEM;
		return 1;
	}
	rc = cipher_box_open(key, g.sealed, g.sealedlen, c->pk, c->sk);
	if (!rc) {
		keyring_check_value(key, check);
		if (!cipher_memeq(check, k->check, sizeof check))
			rc = -EBADMSG;
	}
	if (!rc)
		rc = keyring_add(c->kr, k->version, key);
	secmem_free(key);
	if (rc) {
		c->err = rc;
		return 1;
	}
	if (!strcmp(k->status, "active")) {
		if (k->expires && k->expires <= (int64_t)time(NULL))
			c->kr->expired = 1; /* an expired version never encrypts */
		else
			keyring_set_active(c->kr, k->version);
	}
	return 0;
}

int keyring_load(struct keyring *kr, struct store *s, int64_t user_id,
                 const uint8_t box_pk[CIPHER_BOX_PK_BYTES],
                 const uint8_t box_sk[CIPHER_BOX_SK_BYTES],
                 const uint8_t authority_pk[CIPHER_SIGN_PK_BYTES],
                 const uint8_t store_id[16])
{
	struct load_ctx c = { kr, s, user_id, box_pk, box_sk, authority_pk,
	                      store_id, 0 };
	int rc;

	keyring_set_active(kr, 0);
	kr->expired = 0;
	rc = store_key_each(s, load_one, &c);
	if (c.err)
		return c.err;
	if (rc < 0)
		return rc;
	if (!kr->loaded) {
		kr->box_sk = secmem_alloc(CIPHER_BOX_SK_BYTES);
		if (!kr->box_sk)
			return -ENOMEM;
		memcpy(kr->box_sk, box_sk, CIPHER_BOX_SK_BYTES);
		memcpy(kr->box_pk, box_pk, sizeof kr->box_pk);
		memcpy(kr->authority_pk, authority_pk, sizeof kr->authority_pk);
		memcpy(kr->store_id, store_id, sizeof kr->store_id);
		kr->user_id = user_id;
		kr->loaded = 1;
	}
	return keyring_fingerprint(s, kr->fingerprint);
}

struct fp_ctx {
	uint8_t acc[CIPHER_MAC_BYTES];
	uint8_t zero[CIPHER_KEY_BYTES];
};

static int fp_one(void *arg, const struct store_key *k)
{
	struct fp_ctx *f = arg;
	struct cipher_part p[2] = { { f->acc, sizeof f->acc },
	                            { k->sig, sizeof k->sig } };
	cipher_mac(f->acc, f->zero, p, 2);
	return 0;
}

int keyring_fingerprint(struct store *s, uint8_t out[CIPHER_MAC_BYTES])
{
	struct fp_ctx f;
	int rc;

	memset(&f, 0, sizeof f);
	rc = store_key_each(s, fp_one, &f);
	memcpy(out, f.acc, sizeof f.acc);
	return rc < 0 ? rc : 0;
}

int keyring_refresh(struct keyring *kr, struct store *s, int *changed)
{
	uint8_t fp[CIPHER_MAC_BYTES];
	int rc, was_expired = kr->expired;

	*changed = 0;
	if (!kr->loaded)
		return -EINVAL;
	if ((rc = keyring_fingerprint(s, fp)))
		return rc;
	if (cipher_memeq(fp, kr->fingerprint, sizeof fp) && !kr->active &&
	    !was_expired)
		return 0;
	if (cipher_memeq(fp, kr->fingerprint, sizeof fp)) {
		/* rows unchanged: only time can have expired the active one */
		uint32_t a = kr->active;
		struct store_key k;
		if (a && store_key_get(s, a, &k) == 0 && k.expires &&
		    k.expires <= (int64_t)time(NULL)) {
			kr->active = 0;
			kr->expired = 1;
			*changed = 1;
		}
		return 0;
	}
	for (int i = 0; i < KEYRING_MAX_VERSIONS; i++)
		if (kr->slot[i].version)
			keyring_drop(kr, kr->slot[i].version);
	rc = keyring_load(kr, s, kr->user_id, kr->box_pk, kr->box_sk,
	                  kr->authority_pk, kr->store_id);
	*changed = 1;
	return rc;
}

int keyring_expired(const struct keyring *kr)
{
	return kr->expired;
}

/* ---- administration ---- */

#include <stdio.h>
#include <time.h>
#include "auth.h"

int keyring_sign_row(struct store_key *k, const struct session *admin)
{
	uint8_t row[256];
	size_t n;

	if (!admin->authority_sk)
		return -EPERM;
	n = keyring_key_row_bytes(k, admin->store_id, row, sizeof row);
	if (!n)
		return -EINVAL;
	cipher_sign(k->sig, row, n, admin->authority_sk);
	return 0;
}

int keyring_seal_grant(struct store *s, int64_t user_id, uint32_t version,
                       const char *kind, const uint8_t *secret, size_t len,
                       const uint8_t pk[CIPHER_BOX_PK_BYTES])
{
	struct store_grant g = { .user_id = user_id, .version = version };
	int rc;

	if (len + CIPHER_BOX_OVERHEAD > sizeof g.sealed)
		return -EINVAL;
	snprintf(g.kind, sizeof g.kind, "%s", kind);
	if ((rc = cipher_box_seal(g.sealed, secret, len, pk)))
		return rc;
	g.sealedlen = len + CIPHER_BOX_OVERHEAD;
	return store_grant_put(s, &g);
}

struct rotate_ctx {
	struct store *s;
	uint32_t v;
	const uint8_t *key, *audit_sk;
	int err;
};

static int grant_new_version(void *arg, const struct store_user *u)
{
	struct rotate_ctx *c = arg;
	enum role r = role_parse(u->role);
	int rc = 0;

	if (role_holds_data(r))
		rc = keyring_seal_grant(c->s, u->id, c->v, "data", c->key,
		             CIPHER_KEY_BYTES, u->box_pk);
	if (!rc && role_reads_audit(r))
		rc = keyring_seal_grant(c->s, u->id, c->v, "audit", c->audit_sk,
		             CIPHER_BOX_SK_BYTES, u->box_pk);
	if (rc) {
		c->err = rc;
		return 1;
	}
	return 0;
}

struct newest_ctx {
	uint32_t newest;
	struct store_key active;
	int has_active;
};

static int find_newest(void *arg, const struct store_key *k)
{
	struct newest_ctx *c = arg;

	if (k->version > c->newest)
		c->newest = k->version;
	if (!strcmp(k->status, "active")) {
		c->active = *k;
		c->has_active = 1;
	}
	return 0;
}

int keyring_rotate(struct keyring *kr, struct store *s,
                   const struct session *admin, int64_t expires,
                   uint32_t *version)
{
	struct newest_ctx nc = { 0 };
	struct store_key k;
	struct rotate_ctx rc_ = { 0 };
	uint8_t *key = secmem_alloc(CIPHER_KEY_BYTES + CIPHER_BOX_SK_BYTES);
	int64_t now = time(NULL);
	int rc;

	if (!key)
		return -ENOMEM;
	if (!admin->authority_sk) {
		rc = -EPERM;
		goto out;
	}
	if ((rc = store_key_each(s, find_newest, &nc)) < 0)
		goto out;
	if (nc.has_active) {
		snprintf(nc.active.status, sizeof nc.active.status,
		         "decrypt-only");
		if ((rc = keyring_sign_row(&nc.active, admin)) ||
		    (rc = store_key_put(s, &nc.active)))
			goto out;
	}
	memset(&k, 0, sizeof k);
	k.version = nc.newest + 1;
	snprintf(k.status, sizeof k.status, "active");
	k.created = k.activated = now;
	k.expires = expires;
	cipher_random(key, CIPHER_KEY_BYTES);
	keyring_check_value(key, k.check);
	cipher_box_keypair(k.audit_pk, key + CIPHER_KEY_BYTES);
	if ((rc = keyring_sign_row(&k, admin)) || (rc = store_key_put(s, &k)))
		goto out;
	rc_.s = s;
	rc_.v = k.version;
	rc_.key = key;
	rc_.audit_sk = key + CIPHER_KEY_BYTES;
	rc = store_user_each(s, grant_new_version, &rc_);
	if (rc_.err)
		rc = rc_.err;
	if (rc < 0)
		goto out;
	if ((rc = keyring_add(kr, k.version, key)))
		goto out;
	keyring_set_active(kr, k.version);
	*version = k.version;
	rc = 0;
out:
	secmem_free(key);
	return rc;
}

int keyring_rotate_logged(struct keyring *kr, struct store *s,
                          const struct session *admin, int64_t max_age_s,
                          const char *event, const char *detail,
                          uint32_t *from, uint32_t *to)
{
	uint32_t vs[KEYRING_MAX_VERSIONS];
	int64_t now = time(NULL);
	int rc;

	*from = keyring_versions(kr, vs, KEYRING_MAX_VERSIONS) ? vs[0] : 0;
	*to = 0;
	if ((rc = keyring_rotate(kr, s, admin, max_age_s ? now + max_age_s : 0,
	                         to)))
		return rc;
	return store_key_event(s, now, admin->name, event, *from, *to, detail);
}

int keyring_grant_user(struct keyring *kr, struct store *s,
                       const struct session *admin, int64_t user_id,
                       int role)
{
	struct store_user u;
	uint32_t vs[KEYRING_MAX_VERSIONS];
	size_t n = keyring_versions(kr, vs, KEYRING_MAX_VERSIONS);
	int rc;

	(void)admin;
	if ((rc = store_user_get_id(s, user_id, &u)))
		return rc;
	if ((rc = store_grant_delete(s, user_id, -1, "data")))
		return rc;
	if (!role_holds_data((enum role)role))
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct kr_slot *sl = find(kr, vs[i]);
		if ((rc = keyring_seal_grant(s, user_id, vs[i], "data", sl->key,
		                  CIPHER_KEY_BYTES, u.box_pk)))
			return rc;
	}
	return 0;
}
