/*
 * keyadmin.c - changes of rights and the grants that follow (keyadmin.h).
 *
 * Every decision here reads the verified roster in memory (r), never a
 * row: a users or keys row inserted or edited with sqlite3 is not in r, so
 * nothing is ever sealed to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cipher.h"
#include "grant.h"
#include "keyadmin.h"
#include "keyring.h"
#include "ledger.h"
#include "rights.h"
#include "session.h"
#include "store.h"

static int need_admin(const struct session *admin)
{
	return role_administers(admin->role) && admin->authority_sk ? 0 : -EPERM;
}

size_t keyadmin_admins(const struct rights *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nusers; i++)
		n += rights_role(&r->users[i]) == ROLE_ADMIN;
	return n;
}

int keyadmin_sign(struct store *s, struct rights *r,
                  const struct session *admin)
{
	if (!r->dirty)
		return 0;
	if (!admin->authority_sk)
		return -EPERM;
	return rights_sign(r, s, admin->authority_sk);
}


void keyadmin_recovery_public(const uint8_t *secret, uint8_t box_pk[32],
                              uint8_t sign_pk[32])
{
	uint8_t *sk = secmem_alloc(32 + 64);

	if (!sk) {
		memset(box_pk, 0, 32); /* no recovery key rather than a wrong one */
		memset(sign_pk, 0, 32);
		return;
	}
	auth_recovery_keys(secret, box_pk, sk, sign_pk, sk + 32);
	secmem_free(sk);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Seal the authority key of r->epoch to every admin and the recovery key. */
static int grant_authority(struct store *s, const struct rights *r,
                           const uint8_t *sk)
{
	int rc;

	for (size_t i = 0; i < r->nusers; i++) {
		const struct rights_user *u = &r->users[i];
		if (rights_role(u) != ROLE_ADMIN)
			continue;
		if ((rc = grant_seal(s, u->id, r->epoch, GRANT_AUTHORITY, sk,
		                     CIPHER_SIGN_SK_BYTES, u->box_pk)))
			return rc;
	}
	if (!is_zero(r->policy.recovery_box_pk, 32) &&
	    (rc = grant_seal(s, 0, r->epoch, GRANT_AUTHORITY, sk,
	                     CIPHER_SIGN_SK_BYTES, r->policy.recovery_box_pk)))
		return rc;
	return 0;
}

/*
 * Every grant of user u according to their role in r, replacing what they
 * had: the live data versions admin holds, the audit secrets admin can
 * open, the authority for admins.
 */
static int grant_by_role(struct store *s, const struct rights *r,
                         const struct session *admin,
                         const struct rights_user *u)
{
	enum role role = rights_role(u);
	uint8_t *key = secmem_alloc(CIPHER_KEY_BYTES + CIPHER_BOX_SK_BYTES);
	uint32_t vs[KEYRING_MAX_VERSIONS];
	size_t nv = keyring_versions(admin->kr, vs, KEYRING_MAX_VERSIONS);
	int rc;

	if (!key)
		return -ENOMEM;
	if ((rc = grant_revoke(s, u->id, -1, 0)))
		goto out;
	if (role_holds_data(role))
		for (size_t i = 0; i < nv; i++) {
			const struct rights_key *k = rights_key(r, vs[i]);
			if (!k || (k->status != KEY_ACTIVE &&
			           k->status != KEY_DECRYPT_ONLY))
				continue;
			if ((rc = keyring_key(admin->kr, vs[i], key)) ||
			    (rc = grant_seal(s, u->id, vs[i], GRANT_DATA, key,
			                     CIPHER_KEY_BYTES, u->box_pk)))
				goto out;
		}
	if (role_reads_audit(role))
		for (size_t i = 0; i < r->nkeys; i++) {
			const struct rights_key *k = &r->keys[i];
			uint8_t *ask = key + CIPHER_KEY_BYTES;
			if (k->status == KEY_DESTROYED)
				continue;
			rc = grant_open(s, admin->user_id, k->version, GRANT_AUDIT, ask,
			                CIPHER_BOX_SK_BYTES, admin->box_pk,
			                admin->box_sk);
			if (rc == -ENOENT) {
				rc = 0; /* this admin never held it */
				continue;
			}
			if (rc || (rc = grant_seal(s, u->id, k->version, GRANT_AUDIT,
			                           ask, CIPHER_BOX_SK_BYTES, u->box_pk)))
				goto out;
		}
	if (role == ROLE_ADMIN)
		rc = grant_seal(s, u->id, r->epoch, GRANT_AUTHORITY,
		                admin->authority_sk, CIPHER_SIGN_SK_BYTES, u->box_pk);
out:
	secmem_free(key);
	return rc;
}

int keyadmin_grant_role(struct store *s, const struct rights *r,
                        const struct session *admin,
                        const struct rights_user *u)
{
	return grant_by_role(s, r, admin, u);
}

int keyadmin_rotate(struct store *s, struct rights *r, struct session *admin,
                    int64_t max_age_s, uint32_t *from, uint32_t *to)
{
	uint8_t *key = secmem_alloc(CIPHER_KEY_BYTES + CIPHER_BOX_SK_BYTES);
	struct rights_key k;
	uint32_t active = rights_active(r);
	int64_t now = time(NULL);
	int rc;

	*from = rights_newest(r);
	*to = 0;
	if (!key)
		return -ENOMEM;
	if ((rc = need_admin(admin)))
		goto out;
	if (active) {
		k = *rights_key(r, active);
		k.status = KEY_DECRYPT_ONLY;
		if ((rc = rights_key_put(r, &k)))
			goto out;
	}
	memset(&k, 0, sizeof k);
	k.version = *from + 1;
	k.status = KEY_ACTIVE;
	k.cipher = KEY_CIPHER_ETM;
	k.created = k.activated = now;
	k.expires = max_age_s > 0 ? now + max_age_s : 0;
	cipher_random(key, CIPHER_KEY_BYTES);
	keyring_check_value(key, k.check);
	cipher_box_keypair(k.audit_pk, key + CIPHER_KEY_BYTES);
	if ((rc = rights_key_put(r, &k)))
		goto out;
	for (size_t i = 0; i <= r->nusers; i++) {
		const struct rights_user *u = i < r->nusers ? &r->users[i]
		                                            : rights_user(r, 0);
		enum role role = u ? rights_role(u) : ROLE_NONE;
		if (!u)
			break; /* no recovery secret */
		if (role_holds_data(role) &&
		    (rc = grant_seal(s, u->id, k.version, GRANT_DATA, key,
		                     CIPHER_KEY_BYTES, u->box_pk)))
			goto out;
		if (role_reads_audit(role) &&
		    (rc = grant_seal(s, u->id, k.version, GRANT_AUDIT,
		                     key + CIPHER_KEY_BYTES, CIPHER_BOX_SK_BYTES,
		                     u->box_pk)))
			goto out;
	}
	if ((rc = keyring_add(admin->kr, k.version, k.cipher, key)))
		goto out;
	keyring_set_active(admin->kr, k.version);
	*to = k.version;
out:
	secmem_free(key);
	return rc;
}

int keyadmin_retire(struct store *s, struct rights *r, struct session *admin,
                    uint32_t version)
{
	const struct rights_key *cur = rights_key(r, version);
	struct rights_key k;
	int rc;

	(void)s;
	if ((rc = need_admin(admin)))
		return rc;
	if (!cur)
		return -ENOENT;
	if (cur->status != KEY_DECRYPT_ONLY)
		return -EINVAL;
	k = *cur;
	k.status = KEY_RETIRED;
	k.retired = time(NULL);
	return rights_key_put(r, &k);
}

/* Fingerprints of destroyed grants: the first CIPHER_BOX_PK_BYTES of a
 * sealed box are its ephemeral public key (nothing secret), kept XORed
 * with TRACE_MASK so that the meta row is not itself a match. */
#define TRACE_BYTES CIPHER_BOX_PK_BYTES
#define TRACE_MASK 0x5a
#define TRACE_MAX 256

struct traces {
	uint8_t fp[TRACE_MAX * TRACE_BYTES];
	size_t n;
};

static int collect_trace(void *arg, const struct store_grant *g)
{
	struct traces *t = arg;

	if (g->sealedlen < TRACE_BYTES || t->n == TRACE_MAX)
		return 0;
	for (size_t i = 0; i < TRACE_BYTES; i++)
		t->fp[t->n * TRACE_BYTES + i] = g->sealed[i] ^ TRACE_MASK;
	t->n++;
	return 0;
}

static void trace_key(char *buf, size_t cap, uint32_t version)
{
	snprintf(buf, cap, "destroyed_v%u", version);
}

int keyadmin_destroy(struct store *s, struct rights *r, struct session *admin,
                     uint32_t version)
{
	const struct rights_key *cur = rights_key(r, version);
	struct rights_key k;
	struct traces *t;
	char key[32];
	int rc;

	if ((rc = need_admin(admin)))
		return rc;
	if (!cur)
		return -ENOENT;
	if (cur->status != KEY_RETIRED)
		return -EINVAL;
	/* what check looks for in the raw file afterwards */
	if (!(t = calloc(1, sizeof *t)))
		return -ENOMEM;
	rc = store_grant_each(s, version, GRANT_DATA, collect_trace, t);
	if (!rc)
		rc = store_grant_each(s, version, GRANT_AUDIT, collect_trace, t);
	trace_key(key, sizeof key, version);
	if (!rc && t->n)
		rc = store_meta_set(s, key, t->fp, t->n * TRACE_BYTES);
	free(t);
	if (rc)
		return rc;
	/* crypto-shredding: every sealed copy of the version goes */
	if ((rc = grant_revoke(s, -1, version, GRANT_DATA)) ||
	    (rc = grant_revoke(s, -1, version, GRANT_AUDIT)))
		return rc;
	k = *cur;
	k.status = KEY_DESTROYED;
	return rights_key_put(r, &k);
}

int keyadmin_destroyed_traces(struct store *s, const struct rights *r,
                              uint32_t *version)
{
	struct traces *t = calloc(1, sizeof *t);
	int found = 0, rc = 0;

	*version = 0;
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < r->nkeys && !found && rc >= 0; i++) {
		const struct rights_key *k = &r->keys[i];
		uint64_t n = 0, m = 0;
		size_t len = 0;
		char key[32];

		if (k->status != KEY_DESTROYED)
			continue;
		if ((rc = store_grant_count(s, k->version, GRANT_DATA, &n)) ||
		    (rc = store_grant_count(s, k->version, GRANT_AUDIT, &m)))
			break;
		if (n + m)
			found |= KEYADMIN_TRACE_ROWS;
		trace_key(key, sizeof key, k->version);
		rc = store_meta_get(s, key, t->fp, sizeof t->fp, &len);
		if (rc || len % TRACE_BYTES) {
			rc = 0; /* none recorded (or mangled: advisory) */
		} else {
			for (size_t j = 0; j < len; j++)
				t->fp[j] ^= TRACE_MASK;
			rc = store_file_holds(s, t->fp, len / TRACE_BYTES, TRACE_BYTES);
			if (rc > 0)
				found |= rc;
		}
		if (found)
			*version = k->version;
	}
	free(t);
	return rc < 0 ? rc : found;
}

int keyadmin_authority_rotate(struct store *s, struct rights *r,
                              struct session *admin)
{
	uint8_t pk[32], *sk = secmem_alloc(CIPHER_SIGN_SK_BYTES);
	int rc;

	if (!sk)
		return -ENOMEM;
	if ((rc = need_admin(admin)))
		goto out;
	cipher_sign_keypair(pk, sk);
	if ((rc = rights_chain_extend(s, r->store_id, r->epoch,
	                              admin->authority_sk, pk)) ||
	    (rc = ledger_base_resign(s, r, r->epoch + 1, sk)) ||
	    (rc = grant_revoke(s, -1, -1, GRANT_AUTHORITY)))
		goto out;
	r->epoch++;
	memcpy(r->authority_pk, pk, 32);
	r->dirty = 1;
	if ((rc = grant_authority(s, r, sk)))
		goto out;
	/* from here on this session signs as the new authority */
	memcpy(admin->authority_sk, sk, CIPHER_SIGN_SK_BYTES);
	admin->authority_epoch = r->epoch;
	memcpy(admin->authority_pk, pk, 32);
out:
	secmem_free(sk);
	return rc;
}

int keyadmin_user_add(struct store *s, struct rights *r, struct session *admin,
                      const struct rights_policy *policy, const char *name,
                      enum role role, const struct passphrase *pw,
                      int64_t *id)
{
	uint8_t box_pk[32], sign_pk[32];
	int64_t next = r->nusers ? r->users[r->nusers - 1].id + 1 : 1;
	int rc;

	*id = 0;
	if ((rc = need_admin(admin)))
		return rc;
	if (!role_valid(role) || !auth_name_valid(name))
		return -EINVAL;
	if (rights_user_named(r, name))
		return -EEXIST;
	/* ids are never reused: the roster remembers removed users */
	if ((rc = auth_enrol(s, r, policy, next, name, pw, box_pk, sign_pk,
	                     NULL)) ||
	    (rc = rights_user_add(r, next, name, role, box_pk, sign_pk)) ||
	    (rc = grant_by_role(s, r, admin, rights_user(r, next))))
		return rc;
	*id = next;
	return 0;
}

int keyadmin_user_remove(struct store *s, struct rights *r,
                         struct session *admin, int64_t id)
{
	const struct rights_user *u = rights_user(r, id);
	enum role was;
	int rc;

	if ((rc = need_admin(admin)))
		return rc;
	if (!u || rights_role(u) == ROLE_REMOVED)
		return -ENOENT;
	was = rights_role(u);
	if ((rc = rights_user_change(r, id, ROLE_REMOVED, NULL, NULL)) ||
	    (rc = grant_revoke(s, id, -1, 0)) ||
	    (rc = store_cred_delete(s, id)) || (rc = store_login_delete(s, id)))
		return rc;
	if (was == ROLE_ADMIN)
		rc = keyadmin_authority_rotate(s, r, admin);
	return rc;
}

int keyadmin_user_role(struct store *s, struct rights *r,
                       struct session *admin, int64_t id, enum role role)
{
	const struct rights_user *u = rights_user(r, id);
	enum role was;
	int rc;

	if ((rc = need_admin(admin)))
		return rc;
	if (!u || rights_role(u) == ROLE_REMOVED)
		return -ENOENT;
	if (!role_valid(role))
		return -EINVAL;
	was = rights_role(u);
	if ((rc = rights_user_change(r, id, role, NULL, NULL)) ||
	    (rc = grant_by_role(s, r, admin, rights_user(r, id))))
		return rc;
	if (was == ROLE_ADMIN && role != ROLE_ADMIN)
		rc = keyadmin_authority_rotate(s, r, admin);
	return rc;
}

int keyadmin_user_reset(struct store *s, struct rights *r,
                        struct session *admin,
                        const struct rights_policy *policy, int64_t id,
                        const struct passphrase *pw)
{
	const struct rights_user *u = rights_user(r, id);
	uint8_t box_pk[32], sign_pk[32];
	char name[65];
	int rc;

	if ((rc = need_admin(admin)))
		return rc;
	if (!u || rights_role(u) == ROLE_REMOVED)
		return -ENOENT;
	memcpy(name, u->name, sizeof name);
	/* new key pairs: whatever the old secret opened is gone with it */
	if ((rc = auth_enrol(s, r, policy, id, name, pw, box_pk, sign_pk,
	                     NULL)) ||
	    (rc = rights_user_change(r, id, rights_role(u), box_pk, sign_pk)) ||
	    (rc = grant_by_role(s, r, admin, rights_user(r, id))))
		return rc;
	/* whoever holds the old keys opens the old authority grant */
	if (rights_role(rights_user(r, id)) == ROLE_ADMIN)
		rc = keyadmin_authority_rotate(s, r, admin);
	return rc;
}

int keyadmin_init(struct store *s, const struct rights_policy *policy,
                  const char *name, const struct passphrase *pw,
                  uint8_t *recovery, int64_t max_age_s, struct session **out,
                  struct rights **rights)
{
	struct session *ss = session_new();
	struct rights *r = NULL;
	struct rights_policy p = *policy;
	uint8_t store_id[16], pk[32], *rsk = secmem_alloc(32 + 64);
	uint32_t from, to;
	int rc = -ENOMEM;

	*out = NULL;
	*rights = NULL;
	if (!ss || !rsk || !(ss->authority_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES)))
		goto fail;
	cipher_random(store_id, sizeof store_id);
	cipher_random(recovery, KEYADMIN_RECOVERY_BYTES);
	auth_recovery_keys(recovery, p.recovery_box_pk, rsk, p.recovery_sign_pk,
	              rsk + 32);
	cipher_sign_keypair(pk, ss->authority_sk);
	if ((rc = store_meta_set(s, "store_id", store_id, sizeof store_id)) ||
	    (rc = rights_chain_start(s, store_id, pk, ss->authority_sk)) ||
	    (rc = rights_new(store_id, 1, pk, &p, &r)))
		goto fail;
	ss->user_id = 1;
	snprintf(ss->name, sizeof ss->name, "%s", name);
	ss->role = ROLE_ADMIN;
	memcpy(ss->store_id, store_id, 16);
	ss->authority_epoch = 1;
	memcpy(ss->authority_pk, pk, 32);
	if ((rc = auth_enrol(s, r, &p, 1, name, pw, ss->box_pk, ss->sign_pk,
	                     ss)) ||
	    (rc = rights_user_add(r, 1, name, ROLE_ADMIN, ss->box_pk,
	                          ss->sign_pk)) ||
	    (rc = grant_authority(s, r, ss->authority_sk)) ||
	    (rc = keyadmin_rotate(s, r, ss, max_age_s, &from, &to)) ||
	    (rc = keyadmin_sign(s, r, ss)))
		goto fail;
	secmem_free(rsk);
	*out = ss;
	*rights = r;
	return 0;
fail:
	secmem_free(rsk);
	session_free(ss);
	rights_free(r);
	return rc;
}
