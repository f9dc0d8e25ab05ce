/*
 * rights.c - the authority chain and the roster (rights.h).
 *
 * The roster's encoding is fixed and parsed strictly: every count and
 * length is checked, users and versions must be in ascending order, names
 * valid and unique, role periods strictly ascending, at most one active
 * version, and nothing may follow the last field. A body that is not exactly what
 * rights_encode would write for the struct it parses to is refused, so
 * two different byte strings never mean the same roster.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "cipher.h"
#include "rights.h"
#include "store.h"

#define ROSTER_MAGIC "custodyfs.roster" /* 16 bytes, no NUL */
#define ENDORSE_MAGIC "custodyfs.author"

const char *key_status_name(int status)
{
	switch (status) {
	case KEY_ACTIVE: return "active";
	case KEY_DECRYPT_ONLY: return "decrypt-only";
	case KEY_RETIRED: return "retired";
	case KEY_DESTROYED: return "destroyed";
	default: return "?";
	}
}

/* ---- the chain ---- */

static size_t endorse_msg(uint8_t *out, const uint8_t store_id[16],
                          uint32_t epoch, const uint8_t pk[32])
{
	struct wbuf w;

	wbuf_init(&w, out, 16 + 16 + 4 + 32);
	wbuf_bytes(&w, ENDORSE_MAGIC, 16);
	wbuf_bytes(&w, store_id, 16);
	wbuf_u32(&w, epoch);
	wbuf_bytes(&w, pk, 32);
	return w.len;
}

int rights_chain(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                 uint32_t pin_epoch, const uint8_t pin_pk[RIGHTS_PK_BYTES],
                 uint32_t *epoch, uint8_t pk[RIGHTS_PK_BYTES])
{
	struct store_authority a;
	uint8_t cur[32], msg[68];
	uint32_t last, e;
	int rc;

	if ((rc = store_authority_last(s, &last)))
		return rc == -EIO ? -EBADMSG : rc; /* -ENOENT: none at all */
	if (pin_epoch < 1 || pin_epoch > last)
		return -EBADMSG; /* the chain was cut below what we pinned */
	if ((rc = store_authority_get(s, pin_epoch, &a)))
		return rc == -ENOENT ? -EBADMSG : rc;
	if (!cipher_memeq(a.pk, pin_pk, 32))
		return -EBADMSG; /* a fork: another key at our epoch */
	memcpy(cur, a.pk, 32);
	for (e = pin_epoch + 1; e <= last; e++) {
		if ((rc = store_authority_get(s, e, &a)))
			return rc == -ENOENT ? -EBADMSG : rc;
		if (cipher_sign_verify(a.endorsement, msg,
		                       endorse_msg(msg, store_id, e, a.pk), cur))
			return -EBADMSG;
		memcpy(cur, a.pk, 32);
	}
	*epoch = last;
	memcpy(pk, cur, 32);
	return 0;
}

int rights_store_id_check(struct store *s,
                          const uint8_t store_id[RIGHTS_ID_BYTES],
                          char *why, size_t whylen)
{
	struct store_authority a;
	struct rights *r = NULL;
	uint8_t msg[68], *body = NULL, sig[64];
	size_t len = 0;
	int rc;

	if ((rc = store_authority_get(s, 1, &a))) {
		if (rc != -ENOENT && rc != -EIO)
			return rc;
		snprintf(why, whylen, "the store has no valid first authority");
		return -EBADMSG;
	}
	if (cipher_sign_verify(a.endorsement, msg,
	                       endorse_msg(msg, store_id, 1, a.pk), a.pk)) {
		snprintf(why, whylen, "the store id is not the one its first"
		         " authority signed (an edited store id, or a forged"
		         " authority)");
		return -EBADMSG;
	}
	rc = store_roster_get(s, &body, &len, sig);
	if (!rc && rights_parse(body, len, &r) == 0 &&
	    !cipher_memeq(r->store_id, store_id, 16)) {
		snprintf(why, whylen, "the store id is not the one the roster is"
		         " signed for (an edited store id)");
		rc = -EBADMSG;
	} else if (rc == -ENOENT || rc == -EIO)
		rc = 0; /* no roster to compare: the login says so */
	rights_free(r);
	free(body);
	return rc;
}

int rights_chain_start(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                       const uint8_t pk[RIGHTS_PK_BYTES], const uint8_t *sk)
{
	struct store_authority a = { .epoch = 1, .created = time(NULL) };
	uint8_t msg[68];

	memcpy(a.pk, pk, 32);
	cipher_sign(a.endorsement, msg, endorse_msg(msg, store_id, 1, pk), sk);
	return store_authority_put(s, &a);
}

int rights_chain_extend(struct store *s,
                        const uint8_t store_id[RIGHTS_ID_BYTES],
                        uint32_t epoch, const uint8_t *sk,
                        const uint8_t new_pk[RIGHTS_PK_BYTES])
{
	struct store_authority a = { .epoch = epoch + 1, .created = time(NULL) };
	uint8_t msg[68];

	if (epoch < 1 || epoch == UINT32_MAX)
		return -EINVAL;
	memcpy(a.pk, new_pk, 32);
	cipher_sign(a.endorsement, msg,
	            endorse_msg(msg, store_id, epoch + 1, new_pk), sk);
	return store_authority_put(s, &a);
}

/* ---- encoding ---- */

int rights_encode(const struct rights *r, uint8_t **body, size_t *len)
{
	size_t cap = 256 + r->nusers * (8 + 66 + 32 + 1 +
	                                RIGHTS_PERIODS_MAX * (8 + 1 + 32)) +
	             r->nkeys * (4 + 2 + 32 + 64);
	uint8_t *buf = malloc(cap);
	const struct rights_policy *p = &r->policy;
	struct wbuf w;

	*body = NULL;
	if (!buf)
		return -ENOMEM;
	wbuf_init(&w, buf, cap);
	wbuf_bytes(&w, ROSTER_MAGIC, 16);
	wbuf_u8(&w, r->version);
	wbuf_bytes(&w, r->store_id, 16);
	wbuf_u32(&w, r->epoch);
	wbuf_u64(&w, r->counter);
	wbuf_u64(&w, (uint64_t)r->time);
	wbuf_u64(&w, p->kdf_opslimit);
	wbuf_u64(&w, p->kdf_memlimit);
	wbuf_u32(&w, p->max_failures);
	wbuf_u64(&w, p->lockout_s);
	wbuf_u32(&w, p->block_size);
	wbuf_bytes(&w, p->recovery_box_pk, 32);
	wbuf_bytes(&w, p->recovery_sign_pk, 32);
	wbuf_u32(&w, (uint32_t)r->nusers);
	for (size_t i = 0; i < r->nusers; i++) {
		const struct rights_user *u = &r->users[i];
		wbuf_u64(&w, (uint64_t)u->id);
		wbuf_str(&w, u->name);
		wbuf_bytes(&w, u->box_pk, 32);
		wbuf_u8(&w, (uint8_t)u->nperiods);
		for (size_t j = 0; j < u->nperiods; j++) {
			wbuf_u64(&w, u->periods[j].from);
			wbuf_u8(&w, u->periods[j].role);
			wbuf_bytes(&w, u->periods[j].sign_pk, 32);
		}
	}
	wbuf_u32(&w, (uint32_t)r->nkeys);
	for (size_t i = 0; i < r->nkeys; i++) {
		const struct rights_key *k = &r->keys[i];
		wbuf_u32(&w, k->version);
		wbuf_u8(&w, k->status);
		wbuf_u8(&w, k->cipher);
		wbuf_u64(&w, (uint64_t)k->created);
		wbuf_u64(&w, (uint64_t)k->activated);
		wbuf_u64(&w, (uint64_t)k->expires);
		wbuf_u64(&w, (uint64_t)k->retired);
		wbuf_bytes(&w, k->check, 32);
		wbuf_bytes(&w, k->audit_pk, 32);
	}
	if (w.err) {
		free(buf);
		return -EINVAL;
	}
	*body = buf;
	*len = w.len;
	return 0;
}

/* The recovery secret as the roster's user 0: an admin from the start,
 * whose keys are the policy's (rights.h). */
static void fill_recovery(struct rights *r)
{
	struct rights_user *u = &r->recovery;
	static const uint8_t zero[RIGHTS_PK_BYTES];

	memset(u, 0, sizeof *u);
	if (!memcmp(r->policy.recovery_box_pk, zero, sizeof zero))
		return;
	u->id = RIGHTS_RECOVERY_ID;
	snprintf(u->name, sizeof u->name, "%s", RIGHTS_RECOVERY_NAME);
	memcpy(u->box_pk, r->policy.recovery_box_pk, RIGHTS_PK_BYTES);
	u->nperiods = 1;
	u->periods[0].from = 0;
	u->periods[0].role = ROLE_ADMIN;
	memcpy(u->periods[0].sign_pk, r->policy.recovery_sign_pk, RIGHTS_PK_BYTES);
}

static int name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64 || name[0] == '-' || !strcmp(name, RIGHTS_RECOVERY_NAME))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void rights_free(struct rights *r)
{
	if (!r)
		return;
	free(r->users);
	free(r->keys);
	free(r);
}

int rights_parse(const uint8_t *body, size_t len, struct rights **out)
{
	struct rights *r = calloc(1, sizeof *r);
	struct rbuf b;
	uint32_t n;
	int active = 0;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	rbuf_init(&b, body, len);
	if (len < 16 || memcmp(rbuf_take(&b, 16), ROSTER_MAGIC, 16))
		goto bad;
	r->version = rbuf_u8(&b);
	if (r->version < 1 || r->version > RIGHTS_VERSION_ANCHORED)
		goto bad;
	rbuf_bytes(&b, r->store_id, 16);
	r->epoch = rbuf_u32(&b);
	r->counter = rbuf_u64(&b);
	r->time = (int64_t)rbuf_u64(&b);
	r->policy.kdf_opslimit = rbuf_u64(&b);
	r->policy.kdf_memlimit = rbuf_u64(&b);
	r->policy.max_failures = rbuf_u32(&b);
	r->policy.lockout_s = rbuf_u64(&b);
	r->policy.block_size = rbuf_u32(&b);
	rbuf_bytes(&b, r->policy.recovery_box_pk, 32);
	rbuf_bytes(&b, r->policy.recovery_sign_pk, 32);
	n = rbuf_u32(&b);
	if (b.err || n > RIGHTS_USERS_MAX || r->epoch < 1)
		goto bad;
	if (n && !(r->users = calloc(n, sizeof *r->users)))
		goto nomem;
	for (uint32_t i = 0; i < n; i++) {
		struct rights_user *u = &r->users[i];
		u->id = (int64_t)rbuf_u64(&b);
		rbuf_str(&b, u->name, sizeof u->name);
		rbuf_bytes(&b, u->box_pk, 32);
		u->nperiods = rbuf_u8(&b);
		if (b.err || u->id < 1 || !name_ok(u->name) ||
		    u->nperiods < 1 || u->nperiods > RIGHTS_PERIODS_MAX ||
		    (i && u->id <= r->users[i - 1].id))
			goto bad;
		for (size_t j = 0; j < u->nperiods; j++) {
			struct rights_period *p = &u->periods[j];
			p->from = rbuf_u64(&b);
			p->role = rbuf_u8(&b);
			rbuf_bytes(&b, p->sign_pk, 32);
			if (b.err || (!role_valid(p->role) && p->role != ROLE_REMOVED) ||
			    p->from > r->counter ||
			    /* strictly ascending: one role at each counter
			     * (rights_set_role merges changes before a signature) */
			    (j && p->from <= u->periods[j - 1].from))
				goto bad;
		}
		/* a name belongs to one live user (removed ones keep theirs,
		 * for the commits and rows they signed) */
		if (u->periods[u->nperiods - 1].role != ROLE_REMOVED)
			for (uint32_t j = 0; j < i; j++)
				if (rights_role(&r->users[j]) != ROLE_REMOVED &&
				    !strcmp(r->users[j].name, u->name))
					goto bad;
		r->nusers++;
	}
	n = rbuf_u32(&b);
	if (b.err || n > RIGHTS_KEYS_MAX)
		goto bad;
	if (n && !(r->keys = calloc(n, sizeof *r->keys)))
		goto nomem;
	for (uint32_t i = 0; i < n; i++) {
		struct rights_key *k = &r->keys[i];
		k->version = rbuf_u32(&b);
		k->status = rbuf_u8(&b);
		k->cipher = rbuf_u8(&b);
		k->created = (int64_t)rbuf_u64(&b);
		k->activated = (int64_t)rbuf_u64(&b);
		k->expires = (int64_t)rbuf_u64(&b);
		k->retired = (int64_t)rbuf_u64(&b);
		rbuf_bytes(&b, k->check, 32);
		rbuf_bytes(&b, k->audit_pk, 32);
		if (b.err || k->version < 1 || k->status > KEY_DESTROYED ||
		    k->cipher < KEY_CIPHER_AEAD || k->cipher > KEY_CIPHER_ETM ||
		    (i && k->version <= r->keys[i - 1].version))
			goto bad;
		if (k->status == KEY_ACTIVE && active++)
			goto bad;
		r->nkeys++;
	}
	if (!rbuf_done(&b))
		goto bad;
	fill_recovery(r);
	*out = r;
	return 0;
nomem:
	rights_free(r);
	return -ENOMEM;
bad:
	rights_free(r);
	return -EBADMSG;
}

static void roster_hash(const uint8_t *body, size_t len, const uint8_t sig[64],
                        uint8_t out[32])
{
	struct cipher_part p[2] = { { body, len }, { sig, 64 } };
	cipher_hash(out, p, 2);
}

int rights_load(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                uint32_t epoch, const uint8_t pk[RIGHTS_PK_BYTES],
                struct rights **out)
{
	uint8_t *body = NULL, sig[64], *again = NULL;
	size_t len = 0, len2 = 0;
	struct rights *r = NULL;
	int rc;

	*out = NULL;
	if ((rc = store_roster_get(s, &body, &len, sig)))
		return rc == -EIO ? -EBADMSG : rc;
	if (cipher_sign_verify(sig, body, len, pk)) {
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = rights_parse(body, len, &r)))
		goto out;
	/* signed by the newest authority, for this store, and canonical */
	if (r->epoch != epoch || !cipher_memeq(r->store_id, store_id, 16) ||
	    (rc = rights_encode(r, &again, &len2)) || len2 != len ||
	    memcmp(again, body, len)) {
		rc = rc ? rc : -EBADMSG;
		goto out;
	}
	memcpy(r->authority_pk, pk, 32);
	roster_hash(body, len, sig, r->hash);
	*out = r;
	r = NULL;
out:
	rights_free(r);
	free(body);
	free(again);
	return rc;
}

int rights_new(const uint8_t store_id[RIGHTS_ID_BYTES], uint32_t epoch,
               const uint8_t authority_pk[RIGHTS_PK_BYTES],
               const struct rights_policy *policy, struct rights **out)
{
	struct rights *r = calloc(1, sizeof *r);

	*out = NULL;
	if (!r)
		return -ENOMEM;
	memcpy(r->store_id, store_id, 16);
	r->epoch = epoch;
	memcpy(r->authority_pk, authority_pk, 32);
	r->version = RIGHTS_VERSION_ANCHORED;
	r->policy = *policy;
	r->dirty = 1;
	fill_recovery(r);
	*out = r;
	return 0;
}

int rights_sign(struct rights *r, struct store *s, const uint8_t *sk)
{
	uint8_t *body = NULL, sig[64], pk[32], old_version;
	size_t len;
	int rc;

	cipher_sign_public(pk, sk);
	if (!cipher_memeq(pk, r->authority_pk, 32))
		return -EPERM; /* not the authority this roster is under */
	r->counter++;
	r->time = time(NULL);
	old_version = r->version;
	r->version = RIGHTS_VERSION_ANCHORED; /* every roster signed now is */
	if ((rc = rights_encode(r, &body, &len))) {
		r->counter--;
		r->version = old_version;
		return rc;
	}
	cipher_sign(sig, body, len, sk);
	rc = store_roster_put(s, body, len, sig);
	if (!rc) {
		roster_hash(body, len, sig, r->hash);
		r->dirty = 0;
	} else {
		r->counter--;
		r->version = old_version;
	}
	free(body);
	return rc;
}

/* ---- questions ---- */

const struct rights_user *rights_user(const struct rights *r, int64_t id)
{
	size_t lo = 0, hi = r->nusers;

	if (id == RIGHTS_RECOVERY_ID)
		return r->recovery.nperiods ? &r->recovery : NULL;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->users[mid].id == id)
			return &r->users[mid];
		if (r->users[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct rights_user *rights_user_named(const struct rights *r,
                                            const char *name)
{
	for (size_t i = 0; i < r->nusers; i++)
		if (!strcmp(r->users[i].name, name) &&
		    rights_role(&r->users[i]) != ROLE_REMOVED)
			return &r->users[i];
	return NULL;
}

static const struct rights_period *period_at(const struct rights_user *u,
                                             uint64_t c)
{
	const struct rights_period *p = NULL;

	for (size_t i = 0; i < u->nperiods && u->periods[i].from <= c; i++)
		p = &u->periods[i];
	return p;
}

enum role rights_role(const struct rights_user *u)
{
	return u && u->nperiods ? (enum role)u->periods[u->nperiods - 1].role
	                        : ROLE_NONE;
}

enum role rights_role_at(const struct rights_user *u, uint64_t c)
{
	const struct rights_period *p = u ? period_at(u, c) : NULL;
	return p ? (enum role)p->role : ROLE_NONE;
}

const uint8_t *rights_sign_pk_at(const struct rights_user *u, uint64_t c)
{
	const struct rights_period *p = u ? period_at(u, c) : NULL;
	return p ? p->sign_pk : NULL;
}

const uint8_t *rights_sign_pk(const struct rights_user *u)
{
	return u && u->nperiods ? u->periods[u->nperiods - 1].sign_pk : NULL;
}

const struct rights_key *rights_key(const struct rights *r, uint32_t version)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i].version == version)
			return &r->keys[i];
	return NULL;
}

uint32_t rights_active(const struct rights *r)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i].status == KEY_ACTIVE)
			return r->keys[i].version;
	return 0;
}

uint32_t rights_newest(const struct rights *r)
{
	return r->nkeys ? r->keys[r->nkeys - 1].version : 0;
}

/* ---- changes ---- */

int rights_user_add(struct rights *r, int64_t id, const char *name,
                    enum role role, const uint8_t box_pk[RIGHTS_PK_BYTES],
                    const uint8_t sign_pk[RIGHTS_PK_BYTES])
{
	struct rights_user *u;
	size_t at = r->nusers;

	if (id < 1 || !name_ok(name) || !role_valid(role) ||
	    r->nusers >= RIGHTS_USERS_MAX)
		return -EINVAL;
	if (rights_user(r, id) || rights_user_named(r, name))
		return -EEXIST;
	if (r->nusers && r->users[r->nusers - 1].id > id)
		return -EINVAL; /* ids only grow: one is never reused */
	u = realloc(r->users, (r->nusers + 1) * sizeof *u);
	if (!u)
		return -ENOMEM;
	r->users = u;
	u = &r->users[at];
	memset(u, 0, sizeof *u);
	u->id = id;
	memcpy(u->name, name, strlen(name) + 1);
	memcpy(u->box_pk, box_pk, 32);
	u->nperiods = 1;
	u->periods[0].from = r->counter + 1;
	u->periods[0].role = (uint8_t)role;
	memcpy(u->periods[0].sign_pk, sign_pk, 32);
	r->nusers++;
	r->dirty = 1;
	return 0;
}

int rights_user_change(struct rights *r, int64_t id, enum role role,
                       const uint8_t *box_pk, const uint8_t *sign_pk)
{
	struct rights_user *u = (struct rights_user *)rights_user(r, id);
	struct rights_period *last, *p;

	if (!u)
		return -ENOENT;
	if (!role_valid(role) && role != ROLE_REMOVED)
		return -EINVAL;
	last = &u->periods[u->nperiods - 1];
	if (last->role == ROLE_REMOVED)
		return -ENOENT; /* removed for good */
	if (last->from != r->counter + 1 && u->nperiods == RIGHTS_PERIODS_MAX)
		return -ENOSPC; /* every period stays: old commits need it */
	if (box_pk)
		memcpy(u->box_pk, box_pk, 32);
	if (last->from == r->counter + 1) {
		/* changed twice before one signature: one period */
		p = last;
	} else {
		p = &u->periods[u->nperiods++];
		*p = *last;
		p->from = r->counter + 1;
	}
	p->role = (uint8_t)role;
	if (sign_pk)
		memcpy(p->sign_pk, sign_pk, 32);
	r->dirty = 1;
	return 0;
}

int rights_key_put(struct rights *r, const struct rights_key *k)
{
	struct rights_key *keys;
	size_t i;

	if (k->version < 1 || k->status > KEY_DESTROYED ||
	    k->cipher < KEY_CIPHER_AEAD || k->cipher > KEY_CIPHER_ETM)
		return -EINVAL;
	for (i = 0; i < r->nkeys; i++)
		if (r->keys[i].version == k->version) {
			r->keys[i] = *k;
			r->dirty = 1;
			return 0;
		}
	if (r->nkeys >= RIGHTS_KEYS_MAX ||
	    (r->nkeys && r->keys[r->nkeys - 1].version > k->version))
		return -EINVAL;
	keys = realloc(r->keys, (r->nkeys + 1) * sizeof *keys);
	if (!keys)
		return -ENOMEM;
	r->keys = keys;
	r->keys[r->nkeys++] = *k;
	r->dirty = 1;
	return 0;
}
