/*
 * auth.c - users, roles, passphrase checks, lockout, and the store
 * authority that signs user and key rows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "keyring.h"
#include "passphrase.h"
#include "store.h"

/* Plaintext of a user's sealed secret. */
#define SECRET_PLAIN (CIPHER_BOX_SK_BYTES + CIPHER_SIGN_PK_BYTES)

static const char *const role_names[] = { "admin", "writer", "reader", "auditor" };

const char *role_name(enum role r)
{
	return (r >= ROLE_ADMIN && r <= ROLE_AUDITOR) ? role_names[r] : "?";
}

enum role role_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, role_names[i]))
			return (enum role)i;
	return ROLE_NONE;
}

int role_holds_data(enum role r)
{
	return r == ROLE_ADMIN || r == ROLE_WRITER || r == ROLE_READER;
}

int role_reads_audit(enum role r)
{
	return r == ROLE_ADMIN || r == ROLE_AUDITOR;
}

int auth_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > STORE_USER_NAME_MAX || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* What the authority signs of a user row: identity, role, public key. */
static size_t user_row_bytes(const struct store_user *u,
                             const uint8_t store_id[16], uint8_t *out)
{
	size_t n = 0;

	memcpy(out, "custodyfs.user\0\0", 16); n += 16;
	memcpy(out + n, store_id, 16); n += 16;
	put64(out + n, (uint64_t)u->id); n += 8;
	memset(out + n, 0, 65 + 16);
	memcpy(out + n, u->name, strlen(u->name)); n += 65;
	memcpy(out + n, u->role, strlen(u->role)); n += 16;
	memcpy(out + n, u->box_pk, 32); n += 32;
	return n;
}

int auth_user_verify(const struct store_user *u, const uint8_t store_id[16],
                     const uint8_t authority_pk[CIPHER_SIGN_PK_BYTES])
{
	uint8_t buf[256];
	size_t n = user_row_bytes(u, store_id, buf);
	return cipher_sign_verify(u->sig, buf, n, authority_pk);
}

int auth_user_sign(struct store_user *u, const uint8_t store_id[16],
                   const uint8_t authority_sk[CIPHER_SIGN_SK_BYTES])
{
	uint8_t buf[256];
	size_t n = user_row_bytes(u, store_id, buf);
	cipher_sign(u->sig, buf, n, authority_sk);
	return 0;
}

/* AD for the sealed secret: store id and user name, so a secret cannot be
 * moved to another user or store. */
static size_t secret_ad(const uint8_t store_id[16], const char *name,
                        uint8_t *out)
{
	size_t n = strlen(name);
	memcpy(out, store_id, 16);
	memcpy(out + 16, name, n);
	return 16 + n;
}

/* Seal box_sk || authority_pk under Argon2id(pw) into u->secret. */
static int seal_secret(struct store_user *u, const struct config *cfg,
                       const uint8_t store_id[16], const uint8_t *box_sk,
                       const uint8_t authority_pk[CIPHER_SIGN_PK_BYTES],
                       const struct passphrase *pw)
{
	uint8_t *k = secmem_alloc(CIPHER_KEY_BYTES + SECRET_PLAIN);
	uint8_t ad[16 + 65];
	int rc;

	if (!k)
		return -ENOMEM;
	u->opslimit = cfg->kdf_opslimit;
	u->memlimit = cfg->kdf_memlimit;
	cipher_random(u->salt, sizeof u->salt);
	rc = cipher_pwhash(k, pw->buf, pw->len, u->salt, u->opslimit,
	                   u->memlimit);
	if (!rc) {
		uint8_t *plain = k + CIPHER_KEY_BYTES;
		memcpy(plain, box_sk, CIPHER_BOX_SK_BYTES);
		memcpy(plain + CIPHER_BOX_SK_BYTES, authority_pk,
		       CIPHER_SIGN_PK_BYTES);
		cipher_seal(u->secret, plain, SECRET_PLAIN, ad,
		            secret_ad(store_id, u->name, ad), k);
		u->secretlen = SECRET_PLAIN + CIPHER_OVERHEAD;
	}
	secmem_free(k);
	return rc;
}

/* Open grant (user, version, kind) into out (len bytes, locked). */
static int open_grant(struct store *s, const struct session *ss,
                      uint32_t version, const char *kind, uint8_t *out,
                      size_t len)
{
	struct store_grant g;
	int rc = store_grant_get(s, ss->user_id, version, kind, &g);

	if (rc)
		return rc;
	if (g.sealedlen != len + CIPHER_BOX_OVERHEAD)
		return -EBADMSG;
	return cipher_box_open(out, g.sealed, g.sealedlen, ss->box_pk,
	                       ss->box_sk);
}

void session_free(struct session *ss)
{
	if (!ss)
		return;
	secmem_free(ss->box_sk);
	secmem_free(ss->authority_sk);
	secmem_free(ss->audit_mac_key);
	cipher_wipe(ss, sizeof *ss);
	free(ss);
}

static struct session *session_new(void)
{
	struct session *ss = calloc(1, sizeof *ss);

	if (!ss)
		return NULL;
	ss->box_sk = secmem_alloc(CIPHER_BOX_SK_BYTES);
	if (!ss->box_sk) {
		free(ss);
		return NULL;
	}
	return ss;
}

static int load_store_identity(struct store *s, uint8_t store_id[16],
                               uint8_t authority_pk[32])
{
	size_t n;
	int rc;

	if ((rc = store_meta_get(s, "store_id", store_id, 16, &n)))
		return rc == -ENOENT ? -EBADMSG : rc;
	if (n != 16)
		return -EBADMSG;
	if ((rc = store_meta_get(s, "authority_pk", authority_pk, 32, &n)))
		return rc == -ENOENT ? -EBADMSG : rc;
	return n == 32 ? 0 : -EBADMSG;
}

/* Fill in the role-dependent secrets of a freshly unlocked session. */
static int session_unlock_grants(struct store *s, struct session *ss)
{
	int rc;

	if (ss->role == ROLE_ADMIN) {
		uint8_t pk[CIPHER_SIGN_PK_BYTES];
		ss->authority_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES);
		if (!ss->authority_sk)
			return -ENOMEM;
		rc = open_grant(s, ss, 0, "authority", ss->authority_sk,
		                CIPHER_SIGN_SK_BYTES);
		if (rc)
			return rc == -ENOENT ? -EBADMSG : rc;
		/* the granted authority key must be the pinned one */
		memcpy(pk, ss->authority_sk + 32, sizeof pk);
		if (!cipher_memeq(pk, ss->authority_pk, sizeof pk))
			return -EBADMSG;
	}
	ss->audit_mac_key = secmem_alloc(CIPHER_KEY_BYTES);
	if (!ss->audit_mac_key)
		return -ENOMEM;
	rc = open_grant(s, ss, 0, "auditmac", ss->audit_mac_key,
	                CIPHER_KEY_BYTES);
	if (rc == -ENOENT) {
		secmem_free(ss->audit_mac_key);
		ss->audit_mac_key = NULL;
		rc = 0;
	}
	return rc;
}

int auth_bootstrap(struct store *s, const struct config *cfg,
                   const char *name, const struct passphrase *pw,
                   struct session **out)
{
	struct session *ss = session_new();
	struct store_user u;
	uint8_t *mac = secmem_alloc(CIPHER_KEY_BYTES);
	int rc = -ENOMEM;

	*out = NULL;
	if (!ss || !mac)
		goto fail;
	ss->authority_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES);
	if (!ss->authority_sk)
		goto fail;
	cipher_random(ss->store_id, sizeof ss->store_id);
	cipher_sign_keypair(ss->authority_pk, ss->authority_sk);
	if ((rc = store_meta_set(s, "store_id", ss->store_id, 16)) ||
	    (rc = store_meta_set(s, "authority_pk", ss->authority_pk, 32)))
		goto fail;

	memset(&u, 0, sizeof u);
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.role, sizeof u.role, "%s", role_name(ROLE_ADMIN));
	u.created = time(NULL);
	cipher_box_keypair(u.box_pk, ss->box_sk);
	if ((rc = seal_secret(&u, cfg, ss->store_id, ss->box_sk,
	                      ss->authority_pk, pw)))
		goto fail;
	u.id = 1;
	auth_user_sign(&u, ss->store_id, ss->authority_sk);
	if ((rc = store_user_insert(s, &u)))
		goto fail;
	ss->user_id = u.id;
	ss->role = ROLE_ADMIN;
	snprintf(ss->name, sizeof ss->name, "%s", name);
	memcpy(ss->box_pk, u.box_pk, sizeof ss->box_pk);
	cipher_random(mac, CIPHER_KEY_BYTES);
	if ((rc = keyring_seal_grant(s, u.id, 0, "authority", ss->authority_sk,
	                       CIPHER_SIGN_SK_BYTES, u.box_pk)) ||
	    (rc = keyring_seal_grant(s, u.id, 0, "auditmac", mac, CIPHER_KEY_BYTES,
	                       u.box_pk)))
		goto fail;
	ss->audit_mac_key = mac;
	*out = ss;
	return 0;
fail:
	secmem_free(mac);
	if (ss && ss->audit_mac_key == mac)
		ss->audit_mac_key = NULL;
	session_free(ss);
	return rc;
}

int auth_login(struct store *s, const struct config *cfg, const char *name,
               const struct passphrase *pw, struct session **out,
               int64_t *locked_for)
{
	struct session *ss = NULL;
	struct store_user u;
	uint8_t *k = secmem_alloc(CIPHER_KEY_BYTES + SECRET_PLAIN);
	uint8_t ad[16 + 65];
	int64_t now = time(NULL);
	int rc, known;

	*out = NULL;
	*locked_for = 0;
	if (!k)
		return -ENOMEM;
	ss = session_new();
	if (!ss) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = load_store_identity(s, ss->store_id, ss->authority_pk)))
		goto out;
	rc = auth_name_valid(name) ? store_user_get(s, name, &u) : -ENOENT;
	if (rc && rc != -ENOENT)
		goto out;
	known = rc == 0;
	if (!known) {
		/* same work as a real attempt, so timing does not tell */
		uint8_t salt[CIPHER_SALT_BYTES] = { 0 };
		cipher_pwhash(k, pw->buf, pw->len, salt, cfg->kdf_opslimit,
		              cfg->kdf_memlimit);
		store_auth_event_add(s, now, name, "login-failed", getpid());
		rc = -EACCES;
		goto out;
	}
	if (u.locked_until > now) {
		*locked_for = u.locked_until - now;
		store_auth_event_add(s, now, name, "login-locked", getpid());
		rc = -EAGAIN;
		goto out;
	}
	rc = cipher_pwhash(k, pw->buf, pw->len, u.salt, u.opslimit, u.memlimit);
	if (rc == -EINVAL) {
		rc = -EBADMSG; /* limits outside sane bounds: a tampered row */
		goto out;
	}
	if (rc)
		goto out;
	if (u.secretlen != SECRET_PLAIN + CIPHER_OVERHEAD ||
	    cipher_open(k + CIPHER_KEY_BYTES, u.secret, u.secretlen, ad,
	                secret_ad(ss->store_id, u.name, ad), k)) {
		/* wrong passphrase: count it, maybe lock */
		u.failed++;
		if (cfg->max_failures > 0 && u.failed >= cfg->max_failures) {
			int64_t over = u.failed - cfg->max_failures;
			int64_t secs = cfg->lockout_s << (over > 20 ? 20 : over);
			u.locked_until = now + secs;
		}
		store_user_update(s, &u);
		store_auth_event_add(s, now, name, "login-failed", getpid());
		if (u.locked_until > now)
			store_auth_event_add(s, now, name, "lockout", getpid());
		rc = -EACCES;
		goto out;
	}
	memcpy(ss->box_sk, k + CIPHER_KEY_BYTES, CIPHER_BOX_SK_BYTES);
	/* the authority key this user pinned at enrolment is the one that
	 * must have signed their row; meta can be edited, the secret cannot */
	if (!cipher_memeq(k + CIPHER_KEY_BYTES + CIPHER_BOX_SK_BYTES,
	                  ss->authority_pk, CIPHER_SIGN_PK_BYTES) ||
	    auth_user_verify(&u, ss->store_id, ss->authority_pk)) {
		rc = -EBADMSG;
		goto out;
	}
	ss->user_id = u.id;
	ss->role = role_parse(u.role);
	snprintf(ss->name, sizeof ss->name, "%s", u.name);
	memcpy(ss->box_pk, u.box_pk, sizeof ss->box_pk);
	if (ss->role == ROLE_NONE) {
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = session_unlock_grants(s, ss)))
		goto out;
	u.failed = 0;
	u.locked_until = 0;
	u.last_login = now;
	if (u.opslimit < cfg->kdf_opslimit || u.memlimit < cfg->kdf_memlimit) {
		/* raise the Argon2id cost transparently */
		if ((rc = seal_secret(&u, cfg, ss->store_id, ss->box_sk,
		                      ss->authority_pk, pw)))
			goto out;
	}
	store_user_update(s, &u);
	*out = ss;
	ss = NULL;
	rc = 0;
out:
	secmem_free(k);
	session_free(ss);
	return rc;
}

int auth_user_add(struct store *s, const struct config *cfg,
                  const struct session *admin, const char *name,
                  enum role role, const struct passphrase *pw, int64_t *id)
{
	struct store_user u;
	uint8_t *sk = secmem_alloc(CIPHER_BOX_SK_BYTES);
	int rc;

	if (!sk)
		return -ENOMEM;
	if (!admin->authority_sk) {
		rc = -EPERM;
		goto out;
	}
	memset(&u, 0, sizeof u);
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.role, sizeof u.role, "%s", role_name(role));
	u.created = time(NULL);
	cipher_box_keypair(u.box_pk, sk);
	if ((rc = seal_secret(&u, cfg, admin->store_id, sk,
	                      admin->authority_pk, pw)))
		goto out;
	/* insert first to learn the id, then sign the complete row */
	if ((rc = store_user_insert(s, &u)))
		goto out;
	auth_user_sign(&u, admin->store_id, admin->authority_sk);
	if ((rc = store_user_update(s, &u)))
		goto out;
	if (admin->audit_mac_key &&
	    (rc = keyring_seal_grant(s, u.id, 0, "auditmac", admin->audit_mac_key,
	                       CIPHER_KEY_BYTES, u.box_pk)))
		goto out;
	if (role == ROLE_ADMIN &&
	    (rc = keyring_seal_grant(s, u.id, 0, "authority", admin->authority_sk,
	                       CIPHER_SIGN_SK_BYTES, u.box_pk)))
		goto out;
	*id = u.id;
out:
	secmem_free(sk);
	return rc;
}

int auth_user_passwd(struct store *s, const struct config *cfg,
                     const struct session *self, const struct passphrase *pw)
{
	struct store_user u;
	int rc = store_user_get_id(s, self->user_id, &u);

	if (rc)
		return rc;
	if ((rc = seal_secret(&u, cfg, self->store_id, self->box_sk,
	                      self->authority_pk, pw)))
		return rc;
	return store_user_update(s, &u);
}

int auth_user_set_role(struct store *s, const struct session *admin,
                       int64_t user_id, enum role role)
{
	struct store_user u;
	int rc;

	if (!admin->authority_sk)
		return -EPERM;
	if ((rc = store_user_get_id(s, user_id, &u)))
		return rc;
	snprintf(u.role, sizeof u.role, "%s", role_name(role));
	auth_user_sign(&u, admin->store_id, admin->authority_sk);
	if ((rc = store_user_update(s, &u)))
		return rc;
	/* authority follows the admin role */
	if ((rc = store_grant_delete(s, user_id, 0, "authority")))
		return rc;
	if (role == ROLE_ADMIN)
		rc = keyring_seal_grant(s, user_id, 0, "authority", admin->authority_sk,
		                  CIPHER_SIGN_SK_BYTES, u.box_pk);
	return rc;
}

int auth_user_unlock(struct store *s, int64_t user_id)
{
	struct store_user u;
	int rc = store_user_get_id(s, user_id, &u);

	if (rc)
		return rc;
	u.failed = 0;
	u.locked_until = 0;
	return store_user_update(s, &u);
}

int auth_user_reset(struct store *s, const struct config *cfg,
                    const struct session *admin, struct store_user *u,
                    const struct passphrase *pw)
{
	uint8_t *sk = secmem_alloc(CIPHER_BOX_SK_BYTES);
	int rc;

	if (!sk)
		return -ENOMEM;
	if (!admin->authority_sk) {
		rc = -EPERM;
		goto out;
	}
	/* a new key pair: whatever the old secret opened is gone with it */
	cipher_box_keypair(u->box_pk, sk);
	if ((rc = seal_secret(u, cfg, admin->store_id, sk, admin->authority_pk,
	                      pw)))
		goto out;
	u->failed = 0;
	u->locked_until = 0;
	auth_user_sign(u, admin->store_id, admin->authority_sk);
	if ((rc = store_user_update(s, u)) ||
	    (rc = store_grant_delete(s, u->id, -1, NULL)))
		goto out;
	if (admin->audit_mac_key &&
	    (rc = keyring_seal_grant(s, u->id, 0, "auditmac", admin->audit_mac_key,
	                       CIPHER_KEY_BYTES, u->box_pk)))
		goto out;
	if (role_parse(u->role) == ROLE_ADMIN)
		rc = keyring_seal_grant(s, u->id, 0, "authority", admin->authority_sk,
		                  CIPHER_SIGN_SK_BYTES, u->box_pk);
out:
	secmem_free(sk);
	return rc;
}
