/*
 * upgrade_v1.c - the format-1 login and verification (upgrade_v1.h).
 *
 * The byte layouts below are custodyfs 0.1's (git 177cb34: auth.c
 * user_row_bytes and secret_ad, keyring.c keyring_key_row_bytes, audit.c
 * row_mac and mark_make, inode.c inode_mac), ported unchanged: a store
 * 0.1 accepted verifies here, and one it would have refused does not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "bytes.h"
#include "cipher.h"
#include "config.h"
#include "keyring.h"
#include "passphrase.h"
#include "rights.h"
#include "store.h"
#include "store_v1.h"
#include "upgrade_v1.h"

#define V1_SECRET_PLAIN (CIPHER_BOX_SK_BYTES + CIPHER_SIGN_PK_BYTES)
#define V1_GRANT_KEY (CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD)
#define V1_MARK_BYTES (8 + 32 + 32)

#define WHY(...) do { if (why) snprintf(why, whylen, __VA_ARGS__); } while (0)

static const char *const v1_roles[] = { "admin", "writer", "reader",
                                        "auditor" };

static enum role v1_role(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, v1_roles[i]))
			return (enum role)i;
	return ROLE_NONE;
}

static int v1_status(const char *s)
{
	if (!strcmp(s, "active"))
		return KEY_ACTIVE;
	if (!strcmp(s, "decrypt-only"))
		return KEY_DECRYPT_ONLY;
	if (!strcmp(s, "retired"))
		return KEY_RETIRED;
	if (!strcmp(s, "destroyed"))
		return KEY_DESTROYED;
	return -1;
}

/* What the format-1 authority signs of a users row. */
static size_t user_row_bytes(const struct store_v1_user *u,
                             const uint8_t store_id[16], uint8_t *out)
{
	size_t n = 0;

	memcpy(out, "custodyfs.user\0\0", 16); n += 16;
	memcpy(out + n, store_id, 16); n += 16;
	put_le64(out + n, (uint64_t)u->id); n += 8;
	memset(out + n, 0, 65 + 16);
	memcpy(out + n, u->name, strlen(u->name)); n += 65;
	memcpy(out + n, u->role, strlen(u->role)); n += 16;
	memcpy(out + n, u->box_pk, 32); n += 32;
	return n;
}

/* ... and of a master_keys row. */
static size_t key_row_bytes(const struct store_v1_key *k,
                            const uint8_t store_id[16], uint8_t *out)
{
	size_t n = 0, sl = strlen(k->status);

	memcpy(out, "custodyfs.key\0\0\0", 16); n += 16;
	memcpy(out + n, store_id, 16); n += 16;
	put_le64(out + n, k->version); n += 8;
	put_le64(out + n, (uint64_t)k->created); n += 8;
	put_le64(out + n, (uint64_t)k->activated); n += 8;
	put_le64(out + n, (uint64_t)k->expires); n += 8;
	put_le64(out + n, (uint64_t)k->retired); n += 8;
	memcpy(out + n, k->check, 32); n += 32;
	memcpy(out + n, k->audit_pk, 32); n += 32;
	memset(out + n, 0, 16);
	memcpy(out + n, k->status, sl < 16 ? sl : 15); n += 16;
	return n;
}

void upgrade_v1_free(struct upgrade_v1 *v)
{
	if (!v)
		return;
	secmem_free(v->box_sk);
	secmem_free(v->mac_key);
	secmem_free(v->audit_sk);
	keyring_free(v->kr);
	free(v->users);
	free(v->keys);
	cipher_wipe(v, sizeof *v);
	free(v);
}

const struct upgrade_v1_user *upgrade_v1_user(const struct upgrade_v1 *v,
                                              int64_t id)
{
	for (size_t i = 0; i < v->nusers; i++)
		if (v->users[i].id == id)
			return &v->users[i];
	return NULL;
}

const struct upgrade_v1_key *upgrade_v1_key(const struct upgrade_v1 *v,
                                            uint32_t version)
{
	for (size_t i = 0; i < v->nkeys; i++)
		if (v->keys[i].version == version)
			return &v->keys[i];
	return NULL;
}

const uint8_t *upgrade_v1_audit_sk(const struct upgrade_v1 *v,
                                   uint32_t version)
{
	for (size_t i = 0; i < v->nkeys; i++)
		if (v->keys[i].version == version)
			return v->keys[i].audit_held && v->audit_sk
			       ? v->audit_sk + i * CIPHER_BOX_SK_BYTES : NULL;
	return NULL;
}

/* ---- the login ---- */

struct rows_ctx {
	struct upgrade_v1 *v;
	int64_t bad_id;
	char bad[160];
	int err;
	int reserved;           /* a user named as format 2's recovery user */
};

static int take_user(void *arg, const struct store_v1_user *u)
{
	struct rows_ctx *c = arg;
	struct upgrade_v1 *v = c->v;
	uint8_t buf[256];
	enum role role = v1_role(u->role);
	struct upgrade_v1_user *nu;

	if (!cipher_sign_verify(u->sig, buf, user_row_bytes(u, v->store_id, buf),
	                        v->authority_pk) &&
	    !strcmp(u->name, RIGHTS_RECOVERY_NAME)) {
		c->reserved = 1;
		return 1;
	}
	if (cipher_sign_verify(u->sig, buf, user_row_bytes(u, v->store_id, buf),
	                       v->authority_pk) || role == ROLE_NONE ||
	    !auth_name_valid(u->name) || u->id < 1) {
		snprintf(c->bad, sizeof c->bad, "the users row of '%.64s' (id %lld)",
		         u->name, (long long)u->id);
		return 1;
	}
	nu = realloc(v->users, (v->nusers + 1) * sizeof *nu);
	if (!nu) {
		c->err = -ENOMEM;
		return 1;
	}
	v->users = nu;
	nu = &v->users[v->nusers++];
	memset(nu, 0, sizeof *nu);
	nu->id = u->id;
	snprintf(nu->name, sizeof nu->name, "%s", u->name);
	nu->role = role;
	nu->created = u->created;
	return 0;
}

static int take_key(void *arg, const struct store_v1_key *k)
{
	struct rows_ctx *c = arg;
	struct upgrade_v1 *v = c->v;
	uint8_t buf[256];
	int status = v1_status(k->status);
	struct upgrade_v1_key *nk;

	if (cipher_sign_verify(k->sig, buf, key_row_bytes(k, v->store_id, buf),
	                       v->authority_pk) || status < 0) {
		snprintf(c->bad, sizeof c->bad, "the master_keys row of version %u",
		         k->version);
		return 1;
	}
	nk = realloc(v->keys, (v->nkeys + 1) * sizeof *nk);
	if (!nk) {
		c->err = -ENOMEM;
		return 1;
	}
	v->keys = nk;
	nk = &v->keys[v->nkeys++];
	memset(nk, 0, sizeof *nk);
	nk->version = k->version;
	nk->status = status;
	nk->created = k->created;
	nk->activated = k->activated;
	nk->expires = k->expires;
	nk->retired = k->retired;
	memcpy(nk->check, k->check, 32);
	memcpy(nk->audit_pk, k->audit_pk, 32);
	return 0;
}

/* Every users and master_keys row must carry the pinned authority's
 * signature (format 1 checked them one by one as they were used; the
 * upgrade uses them all). */
static int load_rows(struct upgrade_v1 *v, char *why, size_t whylen)
{
	struct rows_ctx c = { v, 0, "", 0, 0 };
	size_t active = 0;
	int rc;

	rc = store_v1_user_each(v->s, take_user, &c);
	if (!c.err && !c.bad[0] && rc >= 0)
		rc = store_v1_key_each(v->s, take_key, &c);
	if (c.err)
		return c.err;
	if (c.reserved) {
		WHY("it has a user named '%s', a name format 2 keeps for the"
		    " recovery secret: with custodyfs 0.1, add that user again under"
		    " another name and delete this one, then upgrade",
		    RIGHTS_RECOVERY_NAME);
		return -ENOTSUP;
	}
	if (c.bad[0]) {
		WHY("%s is not signed by the store authority (edited, or forged)",
		    c.bad);
		return -EBADMSG;
	}
	if (rc == -EIO) {
		WHY("a users or master_keys row is malformed");
		return -EBADMSG;
	}
	if (rc)
		return rc;
	for (size_t i = 0; i < v->nkeys; i++)
		active += v->keys[i].status == KEY_ACTIVE;
	if (active > 1) {
		WHY("more than one key version is active");
		return -EBADMSG;
	}
	return 0;
}

int upgrade_v1_login(struct store *s, const struct config *cfg,
                     const char *name, const struct passphrase *pw,
                     struct upgrade_v1 **out, char *why, size_t whylen)
{
	struct upgrade_v1 *v = calloc(1, sizeof *v);
	struct store_v1_user *u = malloc(sizeof *u);
	uint8_t *k = secmem_alloc(CIPHER_KEY_BYTES + V1_SECRET_PLAIN);
	uint8_t ad[16 + 65], pk[32];
	size_t n;
	int rc;

	*out = NULL;
	if (why && whylen)
		why[0] = 0;
	if (!v || !u || !k || !(v->box_sk = secmem_alloc(CIPHER_BOX_SK_BYTES))) {
		rc = -ENOMEM;
		goto out;
	}
	v->s = s;
	if ((rc = store_meta_get(s, "store_id", v->store_id, 16, &n)) ||
	    n != 16 ||
	    (rc = store_meta_get(s, "authority_pk", v->authority_pk, 32, &n)) ||
	    n != 32) {
		WHY("its store id or authority key is missing");
		rc = rc && rc != -ENOENT && rc != -EIO ? rc : -EBADMSG;
		goto out;
	}
	rc = auth_name_valid(name) ? store_v1_user_get(s, name, u) : -ENOENT;
	if (rc == -EIO) {
		WHY("the users row of '%s' is malformed", name);
		rc = -EBADMSG;
		goto out;
	}
	if (rc && rc != -ENOENT)
		goto out;
	if (rc == -ENOENT) {
		/* the same work as a real attempt, so timing does not tell */
		uint8_t salt[CIPHER_SALT_BYTES] = { 0 };
		cipher_pwhash(k, pw->buf, pw->len, salt, cfg->kdf_opslimit,
		              cfg->kdf_memlimit);
		rc = -EACCES;
		goto out;
	}
	if (u->opslimit < cipher_pwhash_opslimit_min() ||
	    u->opslimit > AUTH_OPSLIMIT_MAX ||
	    u->memlimit < cipher_pwhash_memlimit_min() ||
	    u->memlimit > AUTH_MEMLIMIT_MAX) {
		WHY("user '%s' has an Argon2id cost outside sane bounds", name);
		rc = -EBADMSG;
		goto out;
	}
	if (u->locked_until > (int64_t)time(NULL)) {
		rc = -EACCES; /* format 1 refused a locked account */
		goto out;
	}
	if ((rc = cipher_pwhash(k, pw->buf, pw->len, u->salt, u->opslimit,
	                        u->memlimit)))
		goto out;
	memcpy(ad, v->store_id, 16);
	memcpy(ad + 16, u->name, strlen(u->name));
	if (u->secretlen != V1_SECRET_PLAIN + CIPHER_OVERHEAD ||
	    cipher_open(k + CIPHER_KEY_BYTES, u->secret, u->secretlen, ad,
	                16 + strlen(u->name), k)) {
		rc = -EACCES;
		goto out;
	}
	memcpy(v->box_sk, k + CIPHER_KEY_BYTES, CIPHER_BOX_SK_BYTES);
	/* the authority this user pinned at enrolment must be the store's:
	 * meta can be edited, the sealed secret cannot */
	if (!cipher_memeq(k + CIPHER_KEY_BYTES + CIPHER_BOX_SK_BYTES,
	                  v->authority_pk, 32)) {
		WHY("the authority key the store names is not the one user '%s'"
		    " trusts", name);
		rc = -EBADMSG;
		goto out;
	}
	cipher_box_public(pk, v->box_sk);
	if (!cipher_memeq(pk, u->box_pk, 32)) {
		WHY("the users row of '%s' names another public key", name);
		rc = -EBADMSG;
		goto out;
	}
	memcpy(v->box_pk, u->box_pk, 32);
	if ((rc = load_rows(v, why, whylen)))
		goto out;
	{
		const struct upgrade_v1_user *me = upgrade_v1_user(v, u->id);
		if (!me) {
			WHY("the users row of '%s' is not signed", name);
			rc = -EBADMSG;
			goto out;
		}
		v->me = *me;
	}
	{
		/* unsigned in format 1: upgrade_v1_verify checks it, and every
		 * block against it (fs_upgrade.c) */
		int64_t bs = 0;
		if (store_meta_get_int(s, "block_size", &bs) == 0 && bs > 0 &&
		    bs <= 65536)
			v->block_size = (uint32_t)bs;
	}
	rc = 0;
	*out = v;
	v = NULL;
out:
	secmem_free(k);
	free(u);
	upgrade_v1_free(v);
	return rc;
}

/* ---- the admin's grants ---- */

static int open_v1_grant(struct upgrade_v1 *v, uint32_t version,
                         const char *kind, uint8_t *out, size_t len)
{
	uint8_t sealed[STORE_V1_GRANT_MAX];
	size_t n;
	int rc = store_v1_grant_get(v->s, v->me.id, version, kind, sealed,
	                            sizeof sealed, &n);

	if (rc)
		return rc == -EIO ? -EBADMSG : rc;
	if (n != len + CIPHER_BOX_OVERHEAD)
		return -EBADMSG;
	return cipher_box_open(out, sealed, n, v->box_pk, v->box_sk);
}

static int open_grants(struct upgrade_v1 *v, char *why, size_t whylen)
{
	uint8_t *key = secmem_alloc(CIPHER_SIGN_SK_BYTES), check[32], pk[32];
	int rc = 0;

	if (!key || (rc = keyring_new(&v->kr)) ||
	    !(v->mac_key = secmem_alloc(CIPHER_KEY_BYTES)) ||
	    !(v->audit_sk = secmem_alloc(v->nkeys ? v->nkeys * 32 : 32))) {
		rc = rc ? rc : -ENOMEM;
		goto out;
	}
	/* the authority grant of an admin is the pinned authority */
	if ((rc = open_v1_grant(v, 0, "authority", key, CIPHER_SIGN_SK_BYTES))) {
		WHY("the authority grant of admin '%s' %s", v->me.name,
		    rc == -ENOENT ? "is missing" : "does not open");
		rc = rc == -ENOMEM ? rc : -EBADMSG;
		goto out;
	}
	cipher_sign_public(pk, key);
	if (!cipher_memeq(pk, v->authority_pk, 32)) {
		WHY("the authority grant of admin '%s' is not the store authority",
		    v->me.name);
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = open_v1_grant(v, 0, "auditmac", v->mac_key,
	                        CIPHER_KEY_BYTES))) {
		WHY("the trail's MAC key grant of admin '%s' %s", v->me.name,
		    rc == -ENOENT ? "is missing" : "does not open");
		rc = rc == -ENOMEM ? rc : -EBADMSG;
		goto out;
	}
	for (size_t i = 0; i < v->nkeys; i++) {
		struct upgrade_v1_key *k = &v->keys[i];
		uint8_t *ask = v->audit_sk + i * CIPHER_BOX_SK_BYTES;
		if (k->status == KEY_ACTIVE || k->status == KEY_DECRYPT_ONLY) {
			rc = open_v1_grant(v, k->version, "data", key, CIPHER_KEY_BYTES);
			if (rc == -ENOENT)
				rc = 0; /* not held: checked against usage below */
			else if (rc) {
				WHY("the data grant of version %u for '%s' does not open",
				    k->version, v->me.name);
				rc = rc == -ENOMEM ? rc : -EBADMSG;
				goto out;
			} else {
				keyring_check_value(key, check);
				if (!cipher_memeq(check, k->check, 32)) {
					WHY("the data grant of version %u for '%s' is not the"
					    " key its master_keys row commits to", k->version,
					    v->me.name);
					rc = -EBADMSG;
					goto out;
				}
				if ((rc = keyring_add(v->kr, k->version, KEY_CIPHER_AEAD,
				                      key)))
					goto out;
				k->held = 1;
				if (k->status == KEY_ACTIVE)
					keyring_set_active(v->kr, k->version);
			}
		}
		if (k->status == KEY_DESTROYED)
			continue;
		rc = open_v1_grant(v, k->version, "audit", ask, CIPHER_BOX_SK_BYTES);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc) {
			WHY("the audit grant of version %u for '%s' does not open",
			    k->version, v->me.name);
			rc = rc == -ENOMEM ? rc : -EBADMSG;
			goto out;
		}
		cipher_box_public(pk, ask);
		if (!cipher_memeq(pk, k->audit_pk, 32)) {
			WHY("the audit grant of version %u for '%s' is not the audit key"
			    " of its master_keys row", k->version, v->me.name);
			rc = -EBADMSG;
			goto out;
		}
		k->audit_held = 1;
	}
	/* a version this admin does not hold must hold no data */
	for (size_t i = 0; i < v->nkeys; i++) {
		struct upgrade_v1_key *k = &v->keys[i];
		uint64_t used = 0;
		if (k->held)
			continue;
		if ((rc = store_v1_key_usage(v->s, k->version, &used)))
			goto out;
		if (used) {
			WHY("%llu objects are under key version %u (%s), which admin"
			    " '%s' does not hold: run the upgrade as an admin who holds"
			    " it", (unsigned long long)used, k->version,
			    key_status_name(k->status), v->me.name);
			rc = -ENOKEY;
			goto out;
		}
	}
out:
	secmem_free(key);
	return rc;
}

/* ---- the trail's MAC chain ---- */

static void row_mac(const uint8_t *key, const uint8_t prev[32],
                    const struct store_v1_audit *r, uint8_t out[32])
{
	uint8_t f[8 * 10];
	struct cipher_part p[6];

	put_le64(f, (uint64_t)r->seq);
	put_le64(f + 8, (uint64_t)r->time);
	put_le64(f + 16, r->uid);
	put_le64(f + 24, r->gid);
	put_le64(f + 32, r->pid);
	put_le64(f + 40, r->ino);
	put_le64(f + 48, r->offset);
	put_le64(f + 56, r->length);
	put_le64(f + 64, (uint64_t)r->result);
	put_le64(f + 72, (uint64_t)r->session);
	p[0] = (struct cipher_part){ prev, 32 };
	p[1] = (struct cipher_part){ f, sizeof f };
	p[2] = (struct cipher_part){ r->user, strlen(r->user) };
	p[3] = (struct cipher_part){ r->op, strlen(r->op) };
	p[4] = (struct cipher_part){ r->detail, r->detaillen };
	p[5] = (struct cipher_part){ "custodyfs.audit", 15 };
	cipher_mac(out, key, p, 6);
}

/* A signed (seq, mac) mark in meta: 0, -ENOENT or -EBADMSG. */
static int mark_read(struct store *s, const uint8_t *key, const char *what,
                     int64_t *seq, uint8_t mac[32])
{
	uint8_t buf[V1_MARK_BYTES], want[32];
	struct cipher_part p[2];
	size_t n;
	int rc = store_meta_get(s, what, buf, sizeof buf, &n);

	if (rc)
		return rc == -EIO ? -EBADMSG : rc;
	if (n != V1_MARK_BYTES)
		return -EBADMSG;
	p[0] = (struct cipher_part){ what, strlen(what) };
	p[1] = (struct cipher_part){ buf, 8 + 32 };
	cipher_mac(want, key, p, 2);
	if (!cipher_memeq(want, buf + 40, 32))
		return -EBADMSG;
	*seq = (int64_t)get_le64(buf);
	memcpy(mac, buf + 8, 32);
	return 0;
}

struct chain_ctx {
	struct upgrade_v1 *v;
	uint8_t prev[32];
	int64_t expect, bad;
	upgrade_progress_fn progress;
	void *arg;
	uint64_t total;
	char *why;
	size_t whylen;
};

static int chain_row(void *arg, const struct store_v1_audit *r)
{
	struct chain_ctx *c = arg;
	uint8_t mac[32];

	if (r->seq != c->expect) {
		c->bad = r->seq;
		snprintf(c->why, c->whylen, "format-1 audit row %lld follows row"
		         " %lld: rows were deleted or inserted", (long long)r->seq,
		         (long long)(c->expect - 1));
		return 1;
	}
	row_mac(c->v->mac_key, c->prev, r, mac);
	if (!cipher_memeq(mac, r->mac, 32)) {
		c->bad = r->seq;
		snprintf(c->why, c->whylen, "format-1 audit row %lld fails its MAC:"
		         " edited, replaced or reordered", (long long)r->seq);
		return 1;
	}
	memcpy(c->prev, r->mac, 32);
	if (!c->v->audit_first)
		c->v->audit_first = r->seq;
	c->v->audit_last = r->seq;
	c->v->audit_rows++;
	c->expect++;
	if (c->progress && (c->v->audit_rows % 4096 == 0))
		c->progress(c->arg, "verify audit", c->v->audit_rows, c->total);
	return 0;
}

static int verify_chain(struct upgrade_v1 *v, upgrade_progress_fn progress,
                        void *arg, uint64_t total, char *why, size_t whylen)
{
	struct chain_ctx c = { v, { 0 }, 1, 0, progress, arg, total, why,
	                       whylen };
	uint8_t head_mac[32];
	int64_t base = 0, head = 0;
	int rc;

	rc = mark_read(v->s, v->mac_key, "audit_base", &base, c.prev);
	if (rc == -ENOENT) {
		base = 0;
		memset(c.prev, 0, 32);
	} else if (rc) {
		WHY("the format-1 trail's start mark is damaged");
		return -EBADMSG;
	}
	c.expect = base + 1;
	rc = store_v1_audit_each(v->s, base, chain_row, &c);
	if (c.bad)
		return -EBADMSG;
	if (rc == -EIO) {
		WHY("a format-1 audit row is malformed");
		return -EBADMSG;
	}
	if (rc < 0)
		return rc;
	rc = mark_read(v->s, v->mac_key, "audit_head", &head, head_mac);
	if (rc == -ENOENT && !v->audit_rows) {
		WHY("the format-1 trail is empty and its head mark is gone: every"
		    " row was deleted");
		return -EBADMSG;
	}
	if (rc) {
		WHY("the format-1 trail's head mark is missing or damaged");
		return -EBADMSG;
	}
	if (head != c.expect - 1 || !cipher_memeq(head_mac, c.prev, 32)) {
		WHY("the format-1 trail ends at row %lld but its head mark says"
		    " %lld: rows were cut from the end", (long long)(c.expect - 1),
		    (long long)head);
		return -EBADMSG;
	}
	if (progress)
		progress(arg, "verify audit", v->audit_rows, v->audit_rows);
	return 0;
}

/* ---- inode MACs ---- */

static int inode_mac(const struct upgrade_v1 *v, const struct store_v1_inode *in,
                     uint8_t out[32])
{
	uint8_t f[8 * 13], *key = secmem_alloc(CIPHER_KEY_BYTES);
	struct cipher_part parts[3];
	int rc;

	if (!key)
		return -ENOMEM;
	if ((rc = keyring_derive(v->kr, in->key_version, "custodyfs.inode", NULL,
	                         0, key))) {
		secmem_free(key);
		return rc;
	}
	put_le64(f + 0, in->ino);
	put_le64(f + 8, in->key_version);
	put_le64(f + 16, in->mode);
	put_le64(f + 24, in->uid);
	put_le64(f + 32, in->gid);
	put_le64(f + 40, in->nlink);
	put_le64(f + 48, in->size);
	put_le64(f + 56, in->nblocks);
	put_le64(f + 64, in->rdev);
	put_le64(f + 72, (uint64_t)in->atime);
	put_le64(f + 80, (uint64_t)in->mtime);
	put_le64(f + 88, (uint64_t)in->ctime);
	put_le64(f + 96, in->generation);
	parts[0] = (struct cipher_part){ "custodyfs.inode", 15 };
	parts[1] = (struct cipher_part){ in->file_id, sizeof in->file_id };
	parts[2] = (struct cipher_part){ f, sizeof f };
	cipher_mac(out, key, parts, 3);
	secmem_free(key);
	return 0;
}

struct inode_ctx {
	struct upgrade_v1 *v;
	upgrade_progress_fn progress;
	void *arg;
	uint64_t done, total;
	int err;
	char *why;
	size_t whylen;
};

static int check_inode(void *arg, const struct store_v1_inode *in)
{
	struct inode_ctx *c = arg;
	uint8_t mac[32];
	int rc = inode_mac(c->v, in, mac);

	if (rc == -ENOKEY) {
		snprintf(c->why, c->whylen, "inode %llu is under key version %u,"
		         " which admin '%s' does not hold",
		         (unsigned long long)in->ino, in->key_version,
		         c->v->me.name);
		c->err = -EBADMSG;
		return 1;
	}
	if (rc) {
		c->err = rc;
		return 1;
	}
	if (!cipher_memeq(mac, in->mac, 32)) {
		snprintf(c->why, c->whylen, "inode %llu fails its format-1 MAC (its"
		         " size, mode, owner or times were edited)",
		         (unsigned long long)in->ino);
		c->err = -EBADMSG;
		return 1;
	}
	c->done++;
	if (c->progress && c->done % 4096 == 0)
		c->progress(c->arg, "verify inodes", c->done, c->total);
	return 0;
}

int upgrade_v1_verify(struct upgrade_v1 *v, upgrade_progress_fn progress,
                      void *arg, char *why, size_t whylen)
{
	struct inode_ctx ic = { v, progress, arg, 0, 0, 0, why, whylen };
	struct store_v1_counts n;
	uint32_t bs = v->block_size;
	int rc;

	if (why && whylen)
		why[0] = 0;
	if (v->me.role != ROLE_ADMIN)
		return -EPERM;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1))) {
		WHY("its block size (meta block_size) is not a power of two between"
		    " 512 and 65536");
		return -EBADMSG;
	}
	if ((rc = store_v1_counts(v->s, &n)))
		return rc;
	if ((rc = open_grants(v, why, whylen)) ||
	    (rc = verify_chain(v, progress, arg, n.audit, why, whylen)))
		return rc;
	ic.total = n.inodes;
	rc = store_v1_inode_each(v->s, check_inode, &ic);
	if (ic.err)
		return ic.err;
	if (rc == -EIO) {
		WHY("a format-1 inode row is malformed");
		return -EBADMSG;
	}
	if (rc < 0)
		return rc;
	v->inodes = ic.done;
	if (progress)
		progress(arg, "verify inodes", ic.done, ic.done);
	return 0;
}

/* ---- the trail, opened ---- */

#define DETAIL_KEYS 64

struct each_ctx {
	struct upgrade_v1 *v;
	int (*fn)(void *arg, const struct store_v1_audit *a, const char *comm,
	          const char *path, int readable);
	void *arg;
	struct {
		int64_t id;
		int ok;
	} slot[DETAIL_KEYS];
	uint8_t *keys;          /* locked: DETAIL_KEYS * 32 */
	uint8_t *plain;
	char *comm, *path;
};

/* The detail key of format-1 session id (an audit_keys row), cached. */
static const uint8_t *detail_key(struct each_ctx *c, int64_t id)
{
	int i = (int)((uint64_t)id % DETAIL_KEYS);
	uint8_t sealed[V1_GRANT_KEY + 16];
	uint8_t *key = c->keys + i * CIPHER_KEY_BYTES;
	const struct upgrade_v1_key *k;
	const uint8_t *ask;
	uint32_t version;
	size_t n;

	if (c->slot[i].id == id && id)
		return c->slot[i].ok ? key : NULL;
	c->slot[i].id = id;
	c->slot[i].ok = 0;
	if (store_v1_audit_key_get(c->v->s, id, &version, sealed, sizeof sealed,
	                           &n) || n != V1_GRANT_KEY ||
	    !(k = upgrade_v1_key(c->v, version)) ||
	    !(ask = upgrade_v1_audit_sk(c->v, version)))
		return NULL;
	if (cipher_box_open(key, sealed, n, k->audit_pk, ask))
		return NULL;
	c->slot[i].ok = 1;
	return key;
}

static int each_row(void *arg, const struct store_v1_audit *a)
{
	struct each_ctx *c = arg;
	const uint8_t *key = detail_key(c, a->session);
	uint8_t ad[16];
	size_t n, cl;

	c->comm[0] = c->path[0] = 0;
	put_le64(ad, (uint64_t)a->seq);
	put_le64(ad + 8, (uint64_t)a->session);
	if (!key || a->detaillen < CIPHER_OVERHEAD + 1 ||
	    cipher_open(c->plain, a->detail, a->detaillen, ad, sizeof ad, key))
		return c->fn(c->arg, a, "", "", 0);
	n = a->detaillen - CIPHER_OVERHEAD;
	cl = strnlen((char *)c->plain, n);
	snprintf(c->comm, 17, "%.*s", (int)(cl > 16 ? 16 : cl),
	         (char *)c->plain);
	if (cl + 1 < n)
		snprintf(c->path, STORE_V1_DETAIL_MAX, "%.*s", (int)(n - cl - 1),
		         (char *)c->plain + cl + 1);
	cipher_wipe(c->plain, n);
	return c->fn(c->arg, a, c->comm, c->path, 1);
}

int upgrade_v1_audit_each(struct upgrade_v1 *v,
                          int (*fn)(void *arg, const struct store_v1_audit *a,
                                    const char *comm, const char *path,
                                    int readable), void *arg)
{
	struct each_ctx *c = calloc(1, sizeof *c);
	int rc;

	if (!c)
		return -ENOMEM;
	c->v = v;
	c->fn = fn;
	c->arg = arg;
	c->keys = secmem_alloc(DETAIL_KEYS * CIPHER_KEY_BYTES);
	c->plain = malloc(STORE_V1_DETAIL_MAX);
	c->comm = malloc(32);
	c->path = malloc(STORE_V1_DETAIL_MAX + 1);
	if (!c->keys || !c->plain || !c->comm || !c->path)
		rc = -ENOMEM;
	else
		rc = store_v1_audit_each(v->s, v->audit_first ? v->audit_first - 1
		                                              : 0, each_row, c);
	secmem_free(c->keys);
	free(c->plain);
	free(c->comm);
	free(c->path);
	free(c);
	return rc;
}
