/*
 * auth.c - credentials and logging in (auth.h).
 *
 * Sealed secret (plaintext SECRET_PLAIN bytes): box_sk(32) || sign_sk(64)
 * || pin epoch(4) || pin authority key(32), under the Argon2id key of the
 * passphrase, with associated data "custodyfs.secret" || store id ||
 * user id || name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bytes.h"
#include "config.h"
#include "grant.h"
#include "keyring.h"
#include "passphrase.h"
#include "rights.h"
#include "session.h"
#include "state.h"
#include "store.h"
#include "witness.h"

#define SECRET_PLAIN (CIPHER_BOX_SK_BYTES + CIPHER_SIGN_SK_BYTES + 4 + 32)
_Static_assert(SECRET_PLAIN + CIPHER_OVERHEAD <= STORE_SECRET_MAX, "secret");

int auth_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > STORE_USER_NAME_MAX || name[0] == '-' ||
	    !strcmp(name, RIGHTS_RECOVERY_NAME))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void auth_policy(const struct rights_policy *p, const struct config *cfg,
                 struct rights_policy *out)
{
	*out = *p;
	if (cfg) {
		if ((uint64_t)cfg->kdf_opslimit > out->kdf_opslimit)
			out->kdf_opslimit = cfg->kdf_opslimit;
		if ((uint64_t)cfg->kdf_memlimit > out->kdf_memlimit)
			out->kdf_memlimit = cfg->kdf_memlimit;
		/* fewer tries, longer locks: stricter only */
		if (cfg->max_failures > 0 &&
		    (out->max_failures == 0 ||
		     (uint64_t)cfg->max_failures < out->max_failures))
			out->max_failures = (uint32_t)cfg->max_failures;
		if (cfg->lockout_s > 0 && (uint64_t)cfg->lockout_s > out->lockout_s)
			out->lockout_s = (uint64_t)cfg->lockout_s;
	}
	if (out->kdf_opslimit > AUTH_OPSLIMIT_MAX)
		out->kdf_opslimit = AUTH_OPSLIMIT_MAX;
	if (out->kdf_memlimit > AUTH_MEMLIMIT_MAX)
		out->kdf_memlimit = AUTH_MEMLIMIT_MAX;
	if (out->kdf_opslimit < cipher_pwhash_opslimit_min())
		out->kdf_opslimit = cipher_pwhash_opslimit_min();
	if (out->kdf_memlimit < cipher_pwhash_memlimit_min())
		out->kdf_memlimit = cipher_pwhash_memlimit_min();
}

static size_t secret_ad(uint8_t *out, const uint8_t store_id[16],
                        int64_t user_id, const char *name)
{
	struct wbuf w;

	wbuf_init(&w, out, 16 + 16 + 8 + 66);
	wbuf_bytes(&w, "custodyfs.secret", 16);
	wbuf_bytes(&w, store_id, 16);
	wbuf_u64(&w, (uint64_t)user_id);
	wbuf_str(&w, name);
	return w.len;
}

/* Seal (box_sk, sign_sk, pin) into c->secret under k, with c's salt. */
static void seal_with(struct store_cred *c, const uint8_t store_id[16],
                      const uint8_t *k, const uint8_t *box_sk,
                      const uint8_t *sign_sk, uint32_t epoch,
                      const uint8_t pin_pk[32], uint8_t *plain)
{
	uint8_t ad[16 + 16 + 8 + 66];

	memcpy(plain, box_sk, CIPHER_BOX_SK_BYTES);
	memcpy(plain + 32, sign_sk, CIPHER_SIGN_SK_BYTES);
	put_le32(plain + 96, epoch);
	memcpy(plain + 100, pin_pk, 32);
	cipher_seal(c->secret, plain, SECRET_PLAIN, ad,
	            secret_ad(ad, store_id, c->user_id, c->name), k);
	c->secretlen = SECRET_PLAIN + CIPHER_OVERHEAD;
	cipher_wipe(plain, SECRET_PLAIN);
}

/* A fresh salt and Argon2id cost, then seal: the credential of pw. */
static int seal_new(struct store_cred *c, const struct rights_policy *p,
                    const uint8_t store_id[16], const uint8_t *box_sk,
                    const uint8_t *sign_sk, uint32_t epoch,
                    const uint8_t pin_pk[32], const struct passphrase *pw)
{
	uint8_t *k = secmem_alloc(CIPHER_KEY_BYTES + SECRET_PLAIN);
	int rc;

	if (!k)
		return -ENOMEM;
	c->opslimit = p->kdf_opslimit;
	c->memlimit = p->kdf_memlimit;
	cipher_random(c->salt, sizeof c->salt);
	rc = cipher_pwhash(k, pw->buf, pw->len, c->salt, c->opslimit,
	                   c->memlimit);
	if (!rc)
		seal_with(c, store_id, k, box_sk, sign_sk, epoch, pin_pk,
		          k + CIPHER_KEY_BYTES);
	secmem_free(k);
	return rc;
}

void auth_cred_leaf(const struct store_cred *c, uint8_t leaf[32])
{
	uint8_t f[8 * 4];
	struct cipher_part p[5];
	uint8_t nl = (uint8_t)strlen(c->name);

	put_le64(f, (uint64_t)c->user_id);
	put_le64(f + 8, c->opslimit);
	put_le64(f + 16, c->memlimit);
	put_le64(f + 24, c->secretlen);
	p[0] = (struct cipher_part){ "custodyfs.creds\0", 16 };
	p[1] = (struct cipher_part){ f, sizeof f };
	p[2] = (struct cipher_part){ c->salt, sizeof c->salt };
	p[3] = (struct cipher_part){ c->secret, c->secretlen };
	p[4] = (struct cipher_part){ &nl, 1 };
	cipher_hash(leaf, p, 5);
	/* the name too, after its length */
	{
		uint8_t tmp[32];
		struct cipher_part q[2] = { { leaf, 32 }, { c->name, nl } };
		cipher_hash(tmp, q, 2);
		memcpy(leaf, tmp, 32);
	}
}

int auth_enrol(struct store *s, const struct rights *r,
               const struct rights_policy *policy, int64_t id,
               const char *name, const struct passphrase *pw,
               uint8_t box_pk[32], uint8_t sign_pk[32], struct session *keys)
{
	uint8_t *sk = secmem_alloc(CIPHER_BOX_SK_BYTES + CIPHER_SIGN_SK_BYTES);
	struct store_cred c;
	int rc;

	if (!sk)
		return -ENOMEM;
	if (!auth_name_valid(name)) {
		rc = -EINVAL;
		goto out;
	}
	memset(&c, 0, sizeof c);
	c.user_id = id;
	snprintf(c.name, sizeof c.name, "%s", name);
	c.created = time(NULL);
	cipher_box_keypair(box_pk, sk);
	cipher_sign_keypair(sign_pk, sk + CIPHER_BOX_SK_BYTES);
	if ((rc = seal_new(&c, policy, r->store_id, sk, sk + CIPHER_BOX_SK_BYTES,
	                   r->epoch, r->authority_pk, pw)))
		goto out;
	rc = store_cred_put(s, &c);
	if (!rc)
		rc = store_login_delete(s, id); /* a new credential, a clean slate */
	if (!rc && keys) {
		memcpy(keys->box_sk, sk, CIPHER_BOX_SK_BYTES);
		memcpy(keys->sign_sk, sk + CIPHER_BOX_SK_BYTES, CIPHER_SIGN_SK_BYTES);
		memcpy(keys->box_pk, box_pk, 32);
		memcpy(keys->sign_pk, sign_pk, 32);
	}
out:
	secmem_free(sk);
	return rc;
}

int auth_passwd(struct store *s, const struct rights_policy *policy,
                const struct session *self, const struct passphrase *pw)
{
	struct store_cred c;
	int rc;

	if (!self->sign_sk)
		return -EPERM;
	if ((rc = store_cred_get_id(s, self->user_id, &c)))
		return rc;
	if ((rc = seal_new(&c, policy, self->store_id, self->box_sk,
	                   self->sign_sk, self->authority_epoch,
	                   self->authority_pk, pw)))
		return rc;
	return store_cred_put(s, &c);
}

int auth_unlock(struct store *s, int64_t user_id)
{
	return store_login_delete(s, user_id);
}

/* The policy to hash an attempt with before anything is verified: the
 * roster's as it stands (unverified, within the sane bounds), else the
 * configuration's. */
static void attempt_policy(struct store *s, const struct config *cfg,
                           struct rights_policy *out)
{
	uint8_t *body = NULL, sig[64];
	struct rights *r = NULL;
	struct rights_policy p;
	size_t len;

	memset(&p, 0, sizeof p);
	p.kdf_opslimit = cfg->kdf_opslimit;
	p.kdf_memlimit = cfg->kdf_memlimit;
	p.max_failures = (uint32_t)cfg->max_failures;
	p.lockout_s = (uint64_t)cfg->lockout_s;
	if (store_roster_get(s, &body, &len, sig) == 0 &&
	    rights_parse(body, len, &r) == 0) {
		p = r->policy;
		rights_free(r);
	}
	free(body);
	auth_policy(&p, cfg, out);
}

/* Count a failed attempt (advisory) and queue its events. */
static void count_failure(struct store *s, const struct rights_policy *p,
                          const char *name, int64_t user_id, int locked,
                          const struct auth_who *w, const struct config *cfg,
                          const uint8_t store_id[16])
{
	int64_t now = time(NULL);
	struct store_login l;
	char id[33];

	/* the witness hears of it at once, whatever happens to the file */
	cipher_hex(id, store_id, 16);
	witness_line(cfg, "%s store=%s user=%s uid=%u pid=%lld",
	             locked ? "login-locked" : "login-failed", id, name,
	             (unsigned)w->uid, (long long)w->pid);
	if (store_readonly(s))
		return;
	store_auth_event_add(s, now, name, locked ? "login-locked"
	                                         : "login-failed", w->uid, w->pid);
	if (user_id < 1 || locked || store_login_get(s, user_id, &l))
		return;
	l.failed++;
	if (p->max_failures > 0 && l.failed >= p->max_failures) {
		int64_t over = l.failed - p->max_failures;
		l.locked_until = now + (int64_t)(p->lockout_s << (over > 20 ? 20 : over));
		store_auth_event_add(s, now, name, "lockout", w->uid, w->pid);
	}
	store_login_put(s, &l);
}

/*
 * An admin's copy of the newest authority's secret key (their grant of
 * kind GRANT_AUTHORITY for the roster's epoch), checked against the
 * public key the chain gives. An admin without one (an epoch that was
 * never granted to them) simply cannot sign: commands needing it say so.
 */
static int open_authority(struct store *s, const struct rights *r,
                          struct session *ss)
{
	uint8_t pk[CIPHER_SIGN_PK_BYTES];
	int rc;

	if (!ss->authority_sk &&
	    !(ss->authority_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES)))
		return -ENOMEM;
	rc = grant_open(s, ss->user_id, r->epoch, GRANT_AUTHORITY,
	                ss->authority_sk, CIPHER_SIGN_SK_BYTES, ss->box_pk,
	                ss->box_sk);
	if (!rc) {
		cipher_sign_public(pk, ss->authority_sk);
		if (!cipher_memeq(pk, r->authority_pk, sizeof pk))
			rc = -EBADMSG;
	}
	if (rc) {
		secmem_free(ss->authority_sk);
		ss->authority_sk = NULL;
	}
	return rc == -ENOENT ? 0 : rc;
}

void auth_recovery_keys(const uint8_t *secret, uint8_t box_pk[32],
                        uint8_t *box_sk, uint8_t sign_pk[32], uint8_t *sign_sk)
{
	uint8_t seed[CIPHER_KEY_BYTES];

	cipher_kdf(seed, secret, "custodyfs.rbox", NULL, 0);
	cipher_box_seed_keypair(box_pk, box_sk, seed);
	cipher_kdf(seed, secret, "custodyfs.rsig", NULL, 0);
	cipher_sign_seed_keypair(sign_pk, sign_sk, seed);
	cipher_wipe(seed, sizeof seed);
}

#define WHY(...) do { if (why) snprintf(why, whylen, __VA_ARGS__); } while (0)

int auth_login(struct store *s, const struct config *cfg, const char *name,
               const struct passphrase *pw, const struct state_seen *seen,
               const struct auth_who *who, struct session **out, struct rights **rights,
               struct store_cred *current, struct store_cred *update,
               int *has_update, char *why, size_t whylen)
{
	struct session *ss = NULL;
	struct rights *r = NULL;
	struct rights_policy attempt, pol;
	const struct rights_user *u;
	struct store_cred c;
	struct store_login l;
	uint8_t *k = secmem_alloc(CIPHER_KEY_BYTES + SECRET_PLAIN);
	uint8_t ad[16 + 16 + 8 + 66], store_id[16], pin_pk[32], pk[32];
	uint8_t newest_pk[32];
	uint32_t pin_epoch, newest;
	int64_t now = time(NULL);
	size_t n;
	struct auth_who self = { (uint32_t)getuid(), getpid() };
	const struct auth_who *w = who ? who : &self;
	int rc, known, locked = 0;

	*out = NULL;
	*rights = NULL;
	*has_update = 0;
	if (why && whylen)
		why[0] = 0;
	if (!k)
		return -ENOMEM;
	if (!(ss = session_new())) {
		rc = -ENOMEM;
		goto out;
	}
	/* the store id as the file says; the sealed secret's associated data
	 * must agree, so a wrong one simply fails to open */
	if ((rc = store_meta_get(s, "store_id", store_id, sizeof store_id, &n)) ||
	    n != sizeof store_id) {
		WHY("the store has no valid store id");
		rc = rc && rc != -ENOENT && rc != -EIO ? rc : -EBADMSG;
		goto out;
	}
	/* ... and it must be the id the store's authority and roster are
	 * signed for, before any hashing or counting: an edited id would
	 * otherwise fail every passphrase, look like a wrong one, and count
	 * failures (and lock out) everyone */
	if ((rc = rights_store_id_check(s, store_id, why, whylen)))
		goto out;
	attempt_policy(s, cfg, &attempt);
	rc = auth_name_valid(name) ? store_cred_get(s, name, &c) : -ENOENT;
	if (rc && rc != -ENOENT && rc != -EIO)
		goto out;
	known = rc == 0;
	if (known && (c.opslimit < cipher_pwhash_opslimit_min() ||
	              c.opslimit > AUTH_OPSLIMIT_MAX ||
	              c.memlimit < cipher_pwhash_memlimit_min() ||
	              c.memlimit > AUTH_MEMLIMIT_MAX)) {
		WHY("user '%s' has an Argon2id cost outside sane bounds (ops %llu,"
		    " %llu bytes)", name, (unsigned long long)c.opslimit,
		    (unsigned long long)c.memlimit);
		rc = -EBADMSG; /* never hash at a cost a file writer chose */
		goto out;
	}
	if (known && store_login_get(s, c.user_id, &l) == 0 &&
	    l.locked_until > now)
		locked = 1;
	if (!known) {
		/* the same work as a real attempt, so timing does not tell */
		uint8_t salt[CIPHER_SALT_BYTES] = { 0 };
		cipher_pwhash(k, pw->buf, pw->len, salt, attempt.kdf_opslimit,
		              attempt.kdf_memlimit);
		count_failure(s, &attempt, name, 0, 0, w, cfg, store_id);
		rc = -EACCES;
		goto out;
	}
	rc = cipher_pwhash(k, pw->buf, pw->len, c.salt, c.opslimit, c.memlimit);
	if (rc)
		goto out;
	if (locked || c.secretlen != SECRET_PLAIN + CIPHER_OVERHEAD ||
	    cipher_open(k + CIPHER_KEY_BYTES, c.secret, c.secretlen, ad,
	                secret_ad(ad, store_id, c.user_id, c.name), k)) {
		count_failure(s, &attempt, name, c.user_id, locked, w, cfg,
		              store_id);
		rc = -EACCES;
		goto out;
	}
	{
		uint8_t *plain = k + CIPHER_KEY_BYTES;
		memcpy(ss->box_sk, plain, CIPHER_BOX_SK_BYTES);
		memcpy(ss->sign_sk, plain + 32, CIPHER_SIGN_SK_BYTES);
		pin_epoch = get_le32(plain + 96);
		memcpy(pin_pk, plain + 100, 32);
	}
	/* the authority: from the user's pin, and no older than what this
	 * host saw of this store instance */
	{
		uint32_t seen_epoch = seen ? seen->epoch : 0;
		const uint8_t *seen_pk = seen ? seen->pk : NULL;
		if (seen_epoch > pin_epoch) {
			/* start from what this host has seen; it must still be
			 * in the chain */
			rc = rights_chain(s, store_id, seen_epoch, seen_pk, &newest,
			                  newest_pk);
			if (rc == -ENOENT) {
				WHY("the store has no authority at all");
				rc = -EBADMSG;
				goto out;
			}
			if (rc == -EBADMSG) {
				WHY("the store's authority chain does not contain"
				    " authority %u as this host saw it: a rolled-back or"
				    " forked store", seen_epoch);
				rc = -ESTALE;
				goto out;
			}
			if (rc)
				goto out;
		}
		rc = rights_chain(s, store_id, pin_epoch, pin_pk, &newest,
		                  newest_pk);
		if (rc == -ENOENT) {
			WHY("the store has no authority at all");
			rc = -EBADMSG;
			goto out;
		}
		if (rc == -EBADMSG) {
			WHY("the authority user '%s' trusts is not in the store's"
			    " chain (a forged or rolled-back authority)", name);
			goto out;
		}
		if (rc)
			goto out;
		if (seen_epoch > newest) {
			WHY("the store's newest authority is %u, but this host has"
			    " seen %u: a rolled-back store", newest, seen_epoch);
			rc = -ESTALE;
			goto out;
		}
	}
	if ((rc = rights_load(s, store_id, newest, newest_pk, &r))) {
		if (rc == -EBADMSG || rc == -ENOENT) {
			WHY("the roster is missing or fails its signature");
			rc = -EBADMSG;
		}
		goto out;
	}
	if (seen && r->counter < seen->roster) {
		WHY("the roster is number %llu, older than number %llu seen"
		    " before: a rolled-back store", (unsigned long long)r->counter,
		    (unsigned long long)seen->roster);
		rc = -ESTALE;
		goto out;
	}
	u = rights_user(r, c.user_id);
	cipher_box_public(pk, ss->box_sk);
	if (!u || strcmp(u->name, c.name) || !cipher_memeq(pk, u->box_pk, 32)) {
		WHY("user '%s' is not in the roster with these keys (removed, or"
		    " a credential that is not theirs)", name);
		rc = u ? -EBADMSG : -EACCES;
		if (!u)
			count_failure(s, &attempt, name, c.user_id, 0, w, cfg,
			              store_id);
		goto out;
	}
	cipher_sign_public(pk, ss->sign_sk);
	if (!role_valid(rights_role(u)) ||
	    !cipher_memeq(pk, rights_sign_pk(u), 32)) {
		WHY("user '%s' is %s in the roster", name,
		    rights_role(u) == ROLE_REMOVED ? "removed"
		                                   : "listed with another identity");
		rc = rights_role(u) == ROLE_REMOVED ? -EACCES : -EBADMSG;
		goto out;
	}
	ss->user_id = u->id;
	snprintf(ss->name, sizeof ss->name, "%s", u->name);
	ss->role = rights_role(u);
	memcpy(ss->store_id, store_id, 16);
	memcpy(ss->box_pk, u->box_pk, 32);
	memcpy(ss->sign_pk, pk, 32);
	ss->authority_epoch = newest;
	memcpy(ss->authority_pk, newest_pk, 32);
	auth_policy(&r->policy, cfg, &pol);
	*current = c;
	if (!store_readonly(s)) {
		/* re-pin a newer authority (the Argon2id key we already have,
		 * so no second hash), or raise the cost (a new hash) */
		*update = c;
		if (c.opslimit < pol.kdf_opslimit || c.memlimit < pol.kdf_memlimit) {
			if ((rc = seal_new(update, &pol, store_id, ss->box_sk,
			                   ss->sign_sk, newest, newest_pk, pw)))
				goto out;
			*has_update = 1;
		} else if (pin_epoch != newest) {
			seal_with(update, store_id, k, ss->box_sk, ss->sign_sk, newest,
			          newest_pk, k + CIPHER_KEY_BYTES);
			*has_update = 1;
		}
		l.user_id = c.user_id;
		l.failed = 0;
		l.locked_until = 0;
		l.last_login = now;
		store_login_put(s, &l);
	}
	if ((rc = keyring_load(ss->kr, s, r, ss->user_id, ss->box_pk,
	                       ss->box_sk))) {
		if (rc == -EBADMSG)
			WHY("a key grant of user '%s' does not match the roster's"
			    " commitment", name);
		goto out;
	}
	if (role_administers(ss->role) &&
	    (rc = open_authority(s, r, ss)) == -EBADMSG) {
		WHY("the authority grant of user '%s' is not the roster's"
		    " authority key", name);
		goto out;
	} else if (rc)
		goto out;
	*out = ss;
	*rights = r;
	ss = NULL;
	r = NULL;
	rc = 0;
out:
	secmem_free(k);
	session_free(ss);
	rights_free(r);
	return rc;
}

int auth_recover(struct store *s, const uint8_t *secret,
                 const struct state_seen *seen, struct session **out,
                 struct rights **rights, char *why, size_t whylen)
{
	struct session *ss = session_new();
	struct rights *r = NULL;
	struct store_authority gen;
	uint8_t store_id[16], newest_pk[32], pin_pk[32];
	uint32_t pin_epoch, newest;
	size_t n;
	int rc;

	*out = NULL;
	*rights = NULL;
	if (why && whylen)
		why[0] = 0;
	if (!ss)
		return -ENOMEM;
	if ((rc = store_meta_get(s, "store_id", store_id, sizeof store_id, &n)) ||
	    n != sizeof store_id) {
		WHY("the store has no valid store id");
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = rights_store_id_check(s, store_id, why, whylen)))
		goto out;
	/* no credential pins an authority for the secret: trust what this
	 * host saw of the store, else its first authority (said on use) */
	if (seen && seen->epoch) {
		pin_epoch = seen->epoch;
		memcpy(pin_pk, seen->pk, 32);
	} else if ((rc = store_authority_get(s, 1, &gen)) == 0) {
		pin_epoch = 1;
		memcpy(pin_pk, gen.pk, 32);
	} else {
		WHY("the store has no first authority");
		rc = -EBADMSG;
		goto out;
	}
	rc = rights_chain(s, store_id, pin_epoch, pin_pk, &newest, newest_pk);
	if (rc) {
		WHY("the store's authority chain does not contain authority %u as"
		    " %s", pin_epoch, pin_epoch > 1 ? "this host saw it: a"
		    " rolled-back or forked store" : "the store began with it");
		rc = rc == -EBADMSG && pin_epoch > 1 ? -ESTALE : -EBADMSG;
		goto out;
	}
	if ((rc = rights_load(s, store_id, newest, newest_pk, &r))) {
		WHY("the roster is missing or fails its signature");
		rc = -EBADMSG;
		goto out;
	}
	if (seen && r->counter < seen->roster) {
		WHY("the roster is number %llu, older than number %llu seen"
		    " before: a rolled-back store", (unsigned long long)r->counter,
		    (unsigned long long)seen->roster);
		rc = -ESTALE;
		goto out;
	}
	auth_recovery_keys(secret, ss->box_pk, ss->box_sk, ss->sign_pk,
	                   ss->sign_sk);
	if (!r->recovery.nperiods ||
	    !cipher_memeq(ss->box_pk, r->policy.recovery_box_pk, 32) ||
	    !cipher_memeq(ss->sign_pk, r->policy.recovery_sign_pk, 32)) {
		WHY("not the recovery secret of this store");
		rc = -EACCES;
		goto out;
	}
	ss->user_id = RIGHTS_RECOVERY_ID;
	snprintf(ss->name, sizeof ss->name, "%s", RIGHTS_RECOVERY_NAME);
	ss->role = ROLE_ADMIN;
	memcpy(ss->store_id, store_id, 16);
	ss->authority_epoch = newest;
	memcpy(ss->authority_pk, newest_pk, 32);
	if ((rc = keyring_load(ss->kr, s, r, RIGHTS_RECOVERY_ID, ss->box_pk,
	                       ss->box_sk))) {
		WHY("a key grant of the recovery secret does not match the"
		    " roster's commitment");
		goto out;
	}
	if ((rc = open_authority(s, r, ss)) == -EBADMSG) {
		WHY("the recovery secret's authority grant is not the roster's"
		    " authority key");
		goto out;
	} else if (rc)
		goto out;
	if (!ss->authority_sk) {
		WHY("the recovery secret holds no grant of authority %u", newest);
		rc = -EBADMSG;
		goto out;
	}
	*out = ss;
	*rights = r;
	ss = NULL;
	r = NULL;
	rc = 0;
out:
	session_free(ss);
	rights_free(r);
	return rc;
}
