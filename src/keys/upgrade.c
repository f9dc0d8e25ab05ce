/*
 * upgrade.c - the format-2 rights and trail of an upgraded store
 * (upgrade.h). Everything format 1 said comes from struct upgrade_v1,
 * which upgrade_v1.c verified; nothing here reads a format-1 row.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "cipher.h"
#include "config.h"
#include "grant.h"
#include "keyadmin.h"
#include "keyring.h"
#include "ledger.h"
#include "mtree.h"
#include "rights.h"
#include "session.h"
#include "store.h"
#include "store_backup.h"
#include "store_v1.h"
#include "unlock.h"
#include "upgrade.h"

#define CREDS_CACHE (256u << 10)
#define RESET_BYTES 16 /* 128 bits: 32 hex digits */

#define WHY(...) do { if (why && !why[0]) snprintf(why, whylen, __VA_ARGS__); \
	} while (0)

void upgrade_result_free(struct upgrade_result *res)
{
	for (size_t i = 0; i < res->nresets; i++)
		passphrase_free(&res->resets[i].pass);
	free(res->resets);
	memset(res, 0, sizeof *res);
}

/* A one-time passphrase: 32 hex digits from the CSPRNG. */
static int new_passphrase(struct passphrase *out)
{
	uint8_t raw[RESET_BYTES];

	out->buf = secmem_alloc(2 * RESET_BYTES + 1);
	out->len = 0;
	if (!out->buf)
		return -ENOMEM;
	cipher_random(raw, sizeof raw);
	cipher_hex(out->buf, raw, sizeof raw);
	cipher_wipe(raw, sizeof raw);
	out->len = 2 * RESET_BYTES;
	return 0;
}

/* Every format-1 version as a roster entry (cipher 1). */
static int put_keys(struct rights *r, const struct upgrade_v1 *v)
{
	int rc;

	for (size_t i = 0; i < v->nkeys; i++) {
		const struct upgrade_v1_key *k1 = &v->keys[i];
		struct rights_key k;
		memset(&k, 0, sizeof k);
		k.version = k1->version;
		k.status = (uint8_t)k1->status;
		k.cipher = KEY_CIPHER_AEAD;
		k.created = k1->created;
		k.activated = k1->activated;
		k.expires = k1->expires;
		k.retired = k1->retired;
		memcpy(k.check, k1->check, 32);
		memcpy(k.audit_pk, k1->audit_pk, 32);
		if ((rc = rights_key_put(r, &k)))
			return rc;
	}
	return 0;
}

/* Every format-1 user, same id, name and role, with a new credential. */
static int put_users(struct store *s, struct rights *r,
                     const struct rights_policy *pol, struct upgrade_v1 *v,
                     const struct passphrase *pw, struct session *admin,
                     struct upgrade_result *res, const struct upgrade_plan *p)
{
	uint8_t box_pk[32], sign_pk[32];
	int rc;

	if (!(res->resets = calloc(v->nusers ? v->nusers : 1,
	                           sizeof *res->resets)))
		return -ENOMEM;
	for (size_t i = 0; i < v->nusers; i++) {
		const struct upgrade_v1_user *u1 = &v->users[i];
		if (u1->id == v->me.id) {
			rc = auth_enrol(s, r, pol, u1->id, u1->name, pw, box_pk, sign_pk,
			                admin);
		} else {
			struct upgrade_reset *rs = &res->resets[res->nresets];
			rs->id = u1->id;
			rs->role = u1->role;
			snprintf(rs->name, sizeof rs->name, "%s", u1->name);
			if ((rc = new_passphrase(&rs->pass)))
				return rc;
			res->nresets++;
			rc = auth_enrol(s, r, pol, u1->id, u1->name, &rs->pass, box_pk,
			                sign_pk, NULL);
		}
		if (rc || (rc = rights_user_add(r, u1->id, u1->name, u1->role, box_pk,
		                                sign_pk)))
			return rc;
		if (p->progress)
			p->progress(p->arg, "users", i + 1, v->nusers);
	}
	res->nusers = v->nusers;
	return 0;
}

/* The admin's own grants: every live version and audit secret held, the
 * authority. keyadmin_grant_role then seals the rest from these. */
static int admin_grants(struct store *s, const struct rights *r,
                        struct upgrade_v1 *v, struct session *admin)
{
	uint8_t *key = secmem_alloc(CIPHER_KEY_BYTES);
	int64_t now = time(NULL);
	int rc = 0;

	if (!key)
		return -ENOMEM;
	for (size_t i = 0; i < v->nkeys && !rc; i++) {
		const struct upgrade_v1_key *k = &v->keys[i];
		const uint8_t *ask = upgrade_v1_audit_sk(v, k->version);
		if (k->held &&
		    (k->status == KEY_ACTIVE || k->status == KEY_DECRYPT_ONLY)) {
			if ((rc = keyring_key(v->kr, k->version, key)) ||
			    (rc = keyring_add(admin->kr, k->version, KEY_CIPHER_AEAD,
			                      key)) ||
			    (rc = grant_seal(s, admin->user_id, k->version, GRANT_DATA,
			                     key, CIPHER_KEY_BYTES, admin->box_pk)))
				break;
			if (k->status == KEY_ACTIVE) {
				if (k->expires && k->expires <= now)
					keyring_expire(admin->kr);
				else
					keyring_set_active(admin->kr, k->version);
			}
		}
		if (ask && k->status != KEY_DESTROYED)
			rc = grant_seal(s, admin->user_id, k->version, GRANT_AUDIT, ask,
			                CIPHER_BOX_SK_BYTES, admin->box_pk);
	}
	if (!rc)
		rc = grant_seal(s, admin->user_id, r->epoch, GRANT_AUTHORITY,
		                admin->authority_sk, CIPHER_SIGN_SK_BYTES,
		                admin->box_pk);
	secmem_free(key);
	return rc;
}

struct cred_ctx {
	struct mtree *mt;
	int err;
};

static int cred_leaf(void *arg, const struct store_cred *c)
{
	struct cred_ctx *x = arg;
	static const struct mtree_root empty;
	uint8_t leaf[32];

	auth_cred_leaf(c, leaf);
	if ((x->err = mtree_put(x->mt, MTREE_CREDS, 0, &empty,
	                        (uint64_t)c->user_id, leaf)))
		return 1;
	return 0;
}

static int copy_key_event(void *arg, int64_t time_s, const char *user,
                          const char *event, int64_t from, int64_t to,
                          const char *detail)
{
	return store_key_event(arg, time_s, user, event, from, to, detail) ? 1 : 0;
}

static int copy_auth_event(void *arg, int64_t time_s, const char *user,
                           const char *event, int64_t pid)
{
	struct upgrade_result *res = ((void **)arg)[1];

	res->auth_events++;
	return store_auth_event_add(((void **)arg)[0], time_s, user, event, 0,
	                            pid) ? 1 : 0;
}

struct carry_ctx {
	struct unlocked *u;
	struct upgrade_result *res;
	const struct upgrade_plan *p;
	uint64_t total;
	int err;
};

static int carry_row(void *arg, const struct store_v1_audit *a,
                     const char *comm, const char *path, int readable)
{
	struct carry_ctx *c = arg;
	struct audit_who w = { a->uid, a->gid, a->pid };
	char marker[160];

	if (!readable) {
		/* honest: the detail was sealed to an audit key this admin
		 * does not hold (or it does not open) */
		snprintf(marker, sizeof marker, "(format-1 detail of row %lld not"
		         " readable at the upgrade)", (long long)a->seq);
		c->res->audit_unreadable++;
		comm = "?";
		path = marker;
	}
	c->err = audit_append_carried(c->u->trail, c->u->ss, a->user, &w,
	                              a->time ? a->time : 1, a->op, a->ino, comm,
	                              path, a->offset, a->length, (int)a->result);
	if (c->err)
		return 1;
	c->res->audit_rows++;
	if (c->p->progress && (c->res->audit_rows % 1024 == 0 ||
	                       c->res->audit_rows == c->total))
		c->p->progress(c->p->arg, "audit rows", c->res->audit_rows, c->total);
	return 0;
}

int upgrade_build(struct upgrade_v1 *v, const struct upgrade_plan *p,
                  struct unlocked *u, struct upgrade_result *res, char *why,
                  size_t whylen)
{
	const struct config *cfg = p->cfg;
	struct rights_policy pol;
	struct ledger_state st;
	struct carry_ctx cc = { u, res, p, 0, 0 };
	struct cred_ctx xc = { NULL, 0 };
	char fs_summary[320];
	uint8_t apk[32];
	void *ae[2];
	int rc;

	memset(u, 0, sizeof *u);
	memset(res, 0, sizeof *res);
	if (why && whylen)
		why[0] = 0;
	fs_summary[0] = 0;
	u->o = p->o;
	u->cfg = *cfg;
	if (v->me.role != ROLE_ADMIN)
		return -EPERM;
	cc.total = v->audit_rows;
	if ((rc = store_open(p->tmp, store_create_flags(v->block_size),
	                     (int)cfg->busy_timeout_ms, &u->s, why, whylen))) {
		WHY("cannot create '%s': %s", p->tmp, strerror(-rc));
		return rc;
	}
	if (!realpath(p->tmp, u->path))
		snprintf(u->path, sizeof u->path, "%s", p->tmp);
	if ((rc = store_bulk_begin(u->s)))
		return rc;
	u->in_tx = 1;
	memset(&pol, 0, sizeof pol);
	pol.kdf_opslimit = cfg->kdf_opslimit;
	pol.kdf_memlimit = cfg->kdf_memlimit;
	pol.max_failures = cfg->max_failures > 0 ? (uint32_t)cfg->max_failures : 0;
	pol.lockout_s = cfg->lockout_s > 0 ? (uint64_t)cfg->lockout_s : 0;
	pol.block_size = v->block_size;   /* the content is laid out in it */
	cipher_random(p->recovery, KEYADMIN_RECOVERY_BYTES);
	keyadmin_recovery_public(p->recovery, pol.recovery_box_pk,
	                         pol.recovery_sign_pk);
	if (!(u->ss = session_new()) ||
	    !(u->ss->authority_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES))) {
		rc = -ENOMEM;
		goto fail;
	}
	cipher_sign_keypair(apk, u->ss->authority_sk);
	if ((rc = store_meta_set(u->s, "store_id", v->store_id, 16)) ||
	    (rc = rights_chain_start(u->s, v->store_id, apk,
	                             u->ss->authority_sk)) ||
	    (rc = rights_new(v->store_id, 1, apk, &pol, &u->r)) ||
	    (rc = put_keys(u->r, v)))
		goto fail;
	u->ss->user_id = v->me.id;
	snprintf(u->ss->name, sizeof u->ss->name, "%s", v->me.name);
	u->ss->role = ROLE_ADMIN;
	memcpy(u->ss->store_id, v->store_id, 16);
	u->ss->authority_epoch = 1;
	memcpy(u->ss->authority_pk, apk, 32);
	if ((rc = put_users(u->s, u->r, &pol, v, p->pw, u->ss, res, p))) {
		WHY("cannot make the format-2 credentials: %s", strerror(-rc));
		goto fail;
	}
	res->nkeys = v->nkeys;
	if ((rc = admin_grants(u->s, u->r, v, u->ss)))
		goto fail;
	for (size_t i = 0; i < u->r->nusers; i++) {
		const struct rights_user *ru = &u->r->users[i];
		if (ru->id != v->me.id &&
		    (rc = keyadmin_grant_role(u->s, u->r, u->ss, ru)))
			goto fail;
	}
	if (rights_user(u->r, RIGHTS_RECOVERY_ID) &&
	    (rc = keyadmin_grant_role(u->s, u->r, u->ss,
	                              rights_user(u->r, RIGHTS_RECOVERY_ID))))
		goto fail;
	if ((rc = keyadmin_sign(u->s, u->r, u->ss)))
		goto fail;
	/* the session, and the credentials tree */
	if ((rc = audit_trail_new(u->s, &u->trail)) ||
	    (rc = mtree_new(u->s, CREDS_CACHE, &u->creds)))
		goto fail;
	audit_trail_begin(u->trail, NULL);
	memset(&u->head, 0, sizeof u->head);
	if ((rc = session_start(u->ss, u->s, u->r, "upgrade", getpid())))
		goto fail;
	xc.mt = u->creds;
	rc = store_cred_each(u->s, cred_leaf, &xc);
	if (xc.err)
		rc = xc.err;
	if (rc < 0)
		goto fail;
	/* the advisory logs, then the trail as it was, row by row */
	rc = store_v1_key_event_each(v->s, copy_key_event, u->s);
	if (rc) {
		rc = rc > 0 ? -EIO : rc;
		goto fail;
	}
	rc = upgrade_v1_audit_each(v, carry_row, &cc);
	if (cc.err)
		rc = cc.err;
	else if (rc == -EIO) {
		WHY("a format-1 audit row is malformed");
		rc = -EBADMSG;
	}
	if (rc < 0) {
		WHY("cannot carry the format-1 trail: %s", strerror(-rc));
		goto fail;
	}
	ae[0] = u->s;
	ae[1] = res;
	rc = store_v1_auth_event_each(v->s, copy_auth_event, ae);
	if (rc) {
		rc = rc > 0 ? -EIO : rc;
		goto fail;
	}
	if ((rc = audit_adopt_auth_events(u->trail, u->ss)))
		goto fail;
	/* the filesystem */
	memset(&st, 0, sizeof st);
	if ((rc = p->fs(p->fs_arg, u, v, &st, fs_summary, sizeof fs_summary, why,
	                whylen)))
		goto fail;
	if (v->audit_rows)
		snprintf(res->summary, sizeof res->summary, "format 1 -> 2: %zu"
		         " users, %zu key versions, %s, %llu audit rows carried"
		         " (format-1 rows %lld-%lld; %llu details not readable)",
		         res->nusers, res->nkeys, fs_summary,
		         (unsigned long long)res->audit_rows,
		         (long long)v->audit_first, (long long)v->audit_last,
		         (unsigned long long)res->audit_unreadable);
	else
		snprintf(res->summary, sizeof res->summary, "format 1 -> 2: %zu"
		         " users, %zu key versions, %s, no audit rows", res->nusers,
		         res->nkeys, fs_summary);
	if ((rc = audit_command(u->trail, u->ss, "upgrade", res->summary, 0)))
		goto fail;
	/* the first commit, signed by the upgrade's session */
	st.roster_counter = u->r->counter;
	memcpy(st.roster_hash, u->r->hash, 32);
	audit_trail_head(u->trail, &st.audit_seq, st.audit_hash);
	cipher_random(st.instance, sizeof st.instance);
	st.flags = 0;
	if ((rc = mtree_fold(u->creds, MTREE_CREDS, 0, &st.creds)) ||
	    (rc = ledger_append(u->s, v->store_id, NULL, &st, &u->ss, 1,
	                        NULL, 0, &u->head)) ||
	    (rc = ledger_anchor(u->s, u->r, u->ss->authority_sk, &u->head)) ||
	    (rc = store_commit(u->s)))
		goto fail;
	u->in_tx = 0;
	return 0;
fail:
	if (u->in_tx) {
		store_rollback(u->s);
		u->in_tx = 0;
	}
	WHY("%s", rc == -ENOMEM ? "out of memory (Argon2id memlimit?)"
	                        : strerror(-rc));
	return rc;
}
