/*
 * test_rights.c - the roster and the authority chain (rights.h): the
 * roster's encoding round trip and its strict parser (every malformed body
 * refused: truncations at every byte, bad counts, unsorted users and
 * versions, duplicate live names, two active versions, trailing bytes, and
 * each field out of range), signing and loading it (the wrong authority,
 * another store, another epoch, a non-canonical body, one byte changed),
 * the questions asked of it, the changes made to it, and the chain of
 * authorities (endorsements followed from a pin, a forged endorsement, a
 * cut chain, a missing link, a fork at the pinned epoch).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "cipher.h"
#include "rights.h"
#include "store.h"
#include "unit.h"
/* white box: plain SQL on the store's connection (the file writer) */
#include "../../src/store/store_internal.h"

static char dir[64];

static const uint8_t store_id[16] = "unit-store-id-00";

static void keypair(uint8_t pk[32], uint8_t sk[64])
{
	cipher_sign_keypair(pk, sk);
}

static void fill_key(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

static void policy(struct rights_policy *p)
{
	memset(p, 0, sizeof *p);
	p->kdf_opslimit = 3;
	p->kdf_memlimit = 1 << 20;
	p->max_failures = 5;
	p->lockout_s = 60;
	p->block_size = 4096;
	fill_key(p->recovery_box_pk, 32, 1);
	fill_key(p->recovery_sign_pk, 32, 2);
}

static struct rights_key key(uint32_t v, int status)
{
	struct rights_key k;

	memset(&k, 0, sizeof k);
	k.version = v;
	k.status = (uint8_t)status;
	k.cipher = KEY_CIPHER_ETM;
	k.created = 1000 + v;
	k.activated = 1100 + v;
	k.expires = v == 3 ? 99999 : 0;
	k.retired = status >= KEY_RETIRED ? 1200 + v : 0;
	fill_key(k.check, 32, (uint8_t)(40 + v));
	fill_key(k.audit_pk, 32, (uint8_t)(80 + v));
	return k;
}

/* A roster with four users (one removed, one with two periods) and
 * three key versions, as a store's would look after some changes. */
static struct rights *sample(const uint8_t auth_pk[32])
{
	struct rights_policy p;
	struct rights *r = NULL;
	uint8_t box[32], sig[32];
	struct rights_key k;

	policy(&p);
	if (rights_new(store_id, 1, auth_pk, &p, &r))
		return NULL;
	fill_key(box, 32, 10);
	fill_key(sig, 32, 11);
	CHECK_EQ(rights_user_add(r, 1, "admin", ROLE_ADMIN, box, sig), 0);
	fill_key(box, 32, 12);
	fill_key(sig, 32, 13);
	CHECK_EQ(rights_user_add(r, 2, "writer.one", ROLE_WRITER, box, sig), 0);
	fill_key(box, 32, 14);
	fill_key(sig, 32, 15);
	CHECK_EQ(rights_user_add(r, 3, "gone_user", ROLE_READER, box, sig), 0);
	fill_key(box, 32, 16);
	fill_key(sig, 32, 17);
	CHECK_EQ(rights_user_add(r, 5, "aud-itor", ROLE_AUDITOR, box, sig), 0);
	k = key(1, KEY_DECRYPT_ONLY);
	CHECK_EQ(rights_key_put(r, &k), 0);
	k = key(2, KEY_RETIRED);
	CHECK_EQ(rights_key_put(r, &k), 0);
	k = key(3, KEY_ACTIVE);
	CHECK_EQ(rights_key_put(r, &k), 0);
	/* later changes: counters as rights_sign would raise them */
	r->counter = 4;
	fill_key(sig, 32, 18);
	CHECK_EQ(rights_user_change(r, 2, ROLE_READER, NULL, sig), 0);
	CHECK_EQ(rights_user_change(r, 3, ROLE_REMOVED, NULL, NULL), 0);
	r->counter = 5;
	r->time = 1700000000;
	return r;
}

static int encode(const struct rights *r, uint8_t **body, size_t *len)
{
	return rights_encode(r, body, len);
}

/* Parsing body must be refused. */
static int refused(const uint8_t *body, size_t len)
{
	struct rights *r = NULL;
	int rc = rights_parse(body, len, &r);

	if (rc == 0)
		rights_free(r);
	return rc == -EBADMSG && r == NULL;
}

/* Encode r as changed by the caller (encode does not judge) and say
 * whether the parser refuses it. */
static int refused_struct(const struct rights *r)
{
	uint8_t *body = NULL;
	size_t len = 0;
	int ok;

	if (encode(r, &body, &len))
		return 0;
	ok = refused(body, len);
	free(body);
	return ok;
}

static void test_round_trip(void)
{
	uint8_t pk[32], sk[64], *body = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	struct rights *r, *p = NULL;

	keypair(pk, sk);
	r = sample(pk);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK_EQ(encode(r, &body, &len), 0);
	CHECK_EQ(rights_parse(body, len, &p), 0);
	CHECK(p != NULL);
	if (!p) {
		free(body);
		rights_free(r);
		return;
	}
	CHECK(!memcmp(p->store_id, store_id, 16));
	CHECK_EQ(p->epoch, 1);
	CHECK_EQ(p->counter, 5);
	CHECK_EQ(p->time, 1700000000);
	CHECK_EQ(p->policy.kdf_opslimit, 3);
	CHECK_EQ(p->policy.kdf_memlimit, 1 << 20);
	CHECK_EQ(p->policy.max_failures, 5);
	CHECK_EQ(p->policy.lockout_s, 60);
	CHECK_EQ(p->policy.block_size, 4096);
	CHECK(!memcmp(p->policy.recovery_box_pk, r->policy.recovery_box_pk, 32));
	CHECK(!memcmp(p->policy.recovery_sign_pk, r->policy.recovery_sign_pk, 32));
	CHECK_EQ(p->nusers, 4);
	CHECK_EQ(p->nkeys, 3);
	for (size_t i = 0; i < 4 && i < p->nusers; i++) {
		const struct rights_user *a = &r->users[i], *b = &p->users[i];
		CHECK_EQ(a->id, b->id);
		CHECK(!strcmp(a->name, b->name));
		CHECK(!memcmp(a->box_pk, b->box_pk, 32));
		CHECK_EQ(a->nperiods, b->nperiods);
		for (size_t j = 0; j < a->nperiods && j < b->nperiods; j++) {
			CHECK_EQ(a->periods[j].from, b->periods[j].from);
			CHECK_EQ(a->periods[j].role, b->periods[j].role);
			CHECK(!memcmp(a->periods[j].sign_pk, b->periods[j].sign_pk, 32));
		}
	}
	for (size_t i = 0; i < 3 && i < p->nkeys; i++)
		CHECK(!memcmp(&r->keys[i], &p->keys[i], sizeof r->keys[i]));
	/* the same bytes again: one roster, one encoding */
	CHECK_EQ(encode(p, &again, &len2), 0);
	CHECK_EQ(len2, len);
	CHECK(again && !memcmp(again, body, len));
	free(again);

	/* the questions */
	const struct rights_user *u = rights_user(p, 2);
	CHECK(u != NULL);
	CHECK(rights_user(p, 4) == NULL);
	/* user 0 is the recovery secret: an admin with the policy's keys */
	{
		const struct rights_user *rec = rights_user(p, RIGHTS_RECOVERY_ID);
		CHECK(rec != NULL);
		if (rec) {
			CHECK(!strcmp(rec->name, RIGHTS_RECOVERY_NAME));
			CHECK_EQ(rights_role(rec), ROLE_ADMIN);
			CHECK_EQ(rights_role_at(rec, 0), ROLE_ADMIN);
			CHECK(!memcmp(rec->box_pk, p->policy.recovery_box_pk, 32));
			CHECK(!memcmp(rights_sign_pk(rec), p->policy.recovery_sign_pk,
			              32));
		}
		CHECK(rights_user_named(p, RIGHTS_RECOVERY_NAME) == NULL);
	}
	CHECK(rights_user(p, -1) == NULL);
	CHECK(rights_user(p, 99) == NULL);
	CHECK_EQ(rights_role(u), ROLE_READER);
	CHECK_EQ(rights_role_at(u, 0), ROLE_NONE); /* before it existed */
	CHECK_EQ(rights_role_at(u, 1), ROLE_WRITER);
	CHECK_EQ(rights_role_at(u, 4), ROLE_WRITER);
	CHECK_EQ(rights_role_at(u, 5), ROLE_READER);
	CHECK_EQ(rights_role_at(u, 1000), ROLE_READER);
	CHECK(rights_sign_pk_at(u, 0) == NULL);
	CHECK(rights_sign_pk_at(u, 1) && rights_sign_pk_at(u, 1)[0] == 13);
	CHECK(rights_sign_pk_at(u, 5) && rights_sign_pk_at(u, 5)[0] == 18);
	CHECK(rights_sign_pk(u) == rights_sign_pk_at(u, 9));
	CHECK(rights_user_named(p, "writer.one") == u);
	CHECK(rights_user_named(p, "gone_user") == NULL); /* removed */
	CHECK_EQ(rights_role(rights_user(p, 3)), ROLE_REMOVED);
	CHECK_EQ(rights_role_at(rights_user(p, 3), 4), ROLE_READER);
	CHECK(rights_user_named(p, "nobody") == NULL);
	CHECK_EQ(rights_role(NULL), ROLE_NONE);
	CHECK_EQ(rights_role_at(NULL, 3), ROLE_NONE);
	CHECK_EQ(rights_active(p), 3);
	CHECK_EQ(rights_newest(p), 3);
	CHECK(rights_key(p, 2) && rights_key(p, 2)->status == KEY_RETIRED);
	CHECK(rights_key(p, 4) == NULL);
	CHECK(!strcmp(key_status_name(KEY_ACTIVE), "active"));
	CHECK(!strcmp(key_status_name(KEY_DECRYPT_ONLY), "decrypt-only"));
	CHECK(!strcmp(key_status_name(KEY_RETIRED), "retired"));
	CHECK(!strcmp(key_status_name(KEY_DESTROYED), "destroyed"));
	CHECK(!strcmp(key_status_name(9), "?"));

	/* an empty roster round-trips too */
	{
		struct rights_policy pol;
		struct rights *e = NULL, *ep = NULL;
		uint8_t *eb = NULL;
		size_t el = 0;
		policy(&pol);
		CHECK_EQ(rights_new(store_id, 7, pk, &pol, &e), 0);
		CHECK(e && e->dirty);
		CHECK_EQ(rights_active(e), 0);
		CHECK_EQ(rights_newest(e), 0);
		CHECK_EQ(encode(e, &eb, &el), 0);
		CHECK_EQ(rights_parse(eb, el, &ep), 0);
		CHECK(ep && ep->epoch == 7 && ep->nusers == 0 && ep->nkeys == 0);
		CHECK(ep && rights_user(ep, RIGHTS_RECOVERY_ID) != NULL);
		if (ep) {
			/* no recovery keys: no user 0 */
			memset(ep->policy.recovery_box_pk, 0, 32);
			memset(ep->policy.recovery_sign_pk, 0, 32);
			free(eb);
			eb = NULL;
			CHECK_EQ(encode(ep, &eb, &el), 0);
			rights_free(ep);
			ep = NULL;
			CHECK_EQ(rights_parse(eb, el, &ep), 0);
			CHECK(ep && rights_user(ep, RIGHTS_RECOVERY_ID) == NULL);
		}
		rights_free(ep);
		free(eb);
		rights_free(e);
	}
	rights_free(p);
	rights_free(r);
	free(body);
}

/* Every malformed body is refused. */
static void test_malformed(void)
{
	uint8_t pk[32], sk[64], *body = NULL;
	size_t len = 0;
	struct rights *r;
	int all;

	keypair(pk, sk);
	r = sample(pk);
	if (!r || encode(r, &body, &len)) {
		CHECK(0);
		rights_free(r);
		return;
	}
	/* truncated at every byte */
	all = 1;
	for (size_t n = 0; n < len; n++)
		if (!refused(body, n)) {
			fprintf(stderr, "  truncation at %zu accepted\n", n);
			all = 0;
		}
	CHECK(all);
	/* one byte more, anywhere it cannot belong */
	{
		uint8_t *longer = malloc(len + 8);
		memcpy(longer, body, len);
		memset(longer + len, 0, 8);
		CHECK(refused(longer, len + 1));
		CHECK(refused(longer, len + 8));
		free(longer);
	}
	/* the fixed header: magic, version, epoch */
	{
		uint8_t *b = malloc(len);
		memcpy(b, body, len);
		b[0] ^= 1;
		CHECK(refused(b, len));
		memcpy(b, body, len);
		b[16] = RIGHTS_VERSION_ANCHORED + 1; /* a version to come */
		CHECK(refused(b, len));
		b[16] = 0;
		CHECK(refused(b, len));
		/* a roster of custodyfs 0.2.0 (version 1) parses, keeps its
		 * version (so it encodes back to the same bytes), and is what
		 * ledger_verify refuses without legacy_ok */
		b[16] = 1;
		{
			struct rights *v1 = NULL;
			uint8_t *again = NULL;
			size_t alen = 0;
			CHECK_EQ(rights_parse(b, len, &v1), 0);
			if (v1) {
				CHECK_EQ(v1->version, 1);
				CHECK_EQ(rights_encode(v1, &again, &alen), 0);
				CHECK(alen == len && again && !memcmp(again, b, len));
				free(again);
				rights_free(v1);
			}
		}
		memcpy(b, body, len);
		put_le32(b + 16 + 1 + 16, 0); /* epoch 0 */
		CHECK(refused(b, len));
		free(b);
	}
	/* counts: users and keys claimed beyond what follows, or past the
	 * maximum */
	{
		const size_t users_at = 16 + 1 + 16 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 +
		                        32 + 32;
		uint8_t *b = malloc(len);
		memcpy(b, body, len);
		CHECK_EQ(get_le32(b + users_at), 4);
		put_le32(b + users_at, 5);
		CHECK(refused(b, len));
		put_le32(b + users_at, 3);
		CHECK(refused(b, len));
		put_le32(b + users_at, RIGHTS_USERS_MAX + 1);
		CHECK(refused(b, len));
		put_le32(b + users_at, UINT32_MAX);
		CHECK(refused(b, len));
		memcpy(b, body, len);
		/* the key count is 3 keys (4+1+1+4*8+32+32 = 102 bytes each)
		 * before the end */
		CHECK_EQ(get_le32(b + len - 3 * 102 - 4), 3);
		put_le32(b + len - 3 * 102 - 4, 4);
		CHECK(refused(b, len));
		put_le32(b + len - 3 * 102 - 4, 2);
		CHECK(refused(b, len));
		put_le32(b + len - 3 * 102 - 4, RIGHTS_KEYS_MAX + 1);
		CHECK(refused(b, len));
		/* a user's period count: 0, or more than the maximum */
		memcpy(b, body, len);
		{
			size_t nper_at = users_at + 4 + 8 + 1 + strlen("admin") + 32;
			CHECK_EQ(b[nper_at], 1);
			b[nper_at] = 0;
			CHECK(refused(b, len));
			b[nper_at] = RIGHTS_PERIODS_MAX + 1;
			CHECK(refused(b, len));
			b[nper_at] = 2;
			CHECK(refused(b, len));
			/* a name length that runs past its field */
			memcpy(b, body, len);
			b[users_at + 4 + 8] = 200;
			CHECK(refused(b, len));
			b[users_at + 4 + 8] = 0; /* an empty name */
			CHECK(refused(b, len));
		}
		free(b);
	}
	free(body);

	/* users not in ascending id order, or the same id twice */
	{
		struct rights_user t = r->users[0];
		r->users[0] = r->users[1];
		r->users[1] = t;
		CHECK(refused_struct(r));
		r->users[1] = r->users[0];
		r->users[0] = t;
		CHECK(!refused_struct(r)); /* restored: fine again */
		int64_t id = r->users[1].id;
		r->users[1].id = r->users[0].id;
		CHECK(refused_struct(r));
		r->users[1].id = 0;
		CHECK(refused_struct(r));
		r->users[1].id = -3;
		CHECK(refused_struct(r));
		r->users[1].id = id;
	}
	/* duplicate live names; a removed user's name may be taken again */
	{
		char keep[65];
		memcpy(keep, r->users[1].name, sizeof keep);
		snprintf(r->users[1].name, sizeof r->users[1].name, "admin");
		CHECK(refused_struct(r));
		snprintf(r->users[1].name, sizeof r->users[1].name, "gone_user");
		CHECK(!refused_struct(r)); /* users[2] is removed */
		memcpy(r->users[1].name, keep, sizeof keep);
		snprintf(r->users[3].name, sizeof r->users[3].name, "writer.one");
		CHECK(refused_struct(r));
		snprintf(r->users[3].name, sizeof r->users[3].name, "aud-itor");
	}
	/* names outside the rules */
	{
		static const char *const bad[] = { "-dash", "sp ace", "sla/sh",
		                                   "uni\xc3\xa9", "semi;colon",
		                                   RIGHTS_RECOVERY_NAME };
		char keep[65];
		memcpy(keep, r->users[0].name, sizeof keep);
		for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
			snprintf(r->users[0].name, sizeof r->users[0].name, "%s", bad[i]);
			CHECK(refused_struct(r));
		}
		memset(r->users[0].name, 'a', 64); /* 64 is the longest */
		r->users[0].name[64] = 0;
		CHECK(!refused_struct(r));
		memcpy(r->users[0].name, keep, sizeof keep);
	}
	/* periods: roles that are none, periods out of order or from the
	 * same counter, a period from after the roster's own counter */
	{
		struct rights_user *u = &r->users[1];
		uint8_t role = u->periods[1].role;
		u->periods[1].role = 7;
		CHECK(refused_struct(r));
		u->periods[1].role = 254;
		CHECK(refused_struct(r));
		u->periods[1].role = role;
		uint64_t from = u->periods[1].from;
		u->periods[1].from = u->periods[0].from - 1;
		CHECK(refused_struct(r));
		u->periods[1].from = r->counter + 1;
		CHECK(refused_struct(r));
		/* two periods from the same counter: which role held there? */
		u->periods[1].from = u->periods[0].from;
		CHECK(refused_struct(r));
		u->periods[1].from = from;
		CHECK(!refused_struct(r));
	}
	/* key versions: unsorted, repeated, 0, a bad status or cipher, two
	 * active */
	{
		struct rights_key t = r->keys[0];
		r->keys[0] = r->keys[1];
		r->keys[1] = t;
		CHECK(refused_struct(r));
		r->keys[1] = r->keys[0];
		r->keys[0] = t;
		uint32_t v = r->keys[1].version;
		r->keys[1].version = r->keys[0].version;
		CHECK(refused_struct(r));
		r->keys[1].version = v;
		r->keys[0].version = 0;
		CHECK(refused_struct(r));
		r->keys[0].version = 1;
		r->keys[0].status = KEY_DESTROYED + 1;
		CHECK(refused_struct(r));
		r->keys[0].status = KEY_DECRYPT_ONLY;
		r->keys[0].cipher = 0;
		CHECK(refused_struct(r));
		r->keys[0].cipher = KEY_CIPHER_ETM + 1;
		CHECK(refused_struct(r));
		r->keys[0].cipher = KEY_CIPHER_AEAD; /* a format-1 version: fine */
		CHECK(!refused_struct(r));
		r->keys[0].status = KEY_ACTIVE; /* 1 and 3 both active */
		CHECK(refused_struct(r));
		r->keys[0].status = KEY_DECRYPT_ONLY;
		CHECK(!refused_struct(r));
	}
	rights_free(r);
}

/* The changes rights.h makes in memory refuse what would break the
 * roster's rules. */
static void test_changes(void)
{
	uint8_t pk[32], sk[64], box[32], sig[32];
	struct rights *r;
	struct rights_key k;

	keypair(pk, sk);
	r = sample(pk);
	if (!r)
		return;
	fill_key(box, 32, 90);
	fill_key(sig, 32, 91);
	CHECK_EQ(rights_user_add(r, 5, "fresh", ROLE_WRITER, box, sig), -EEXIST);
	CHECK_EQ(rights_user_add(r, 6, "admin", ROLE_WRITER, box, sig), -EEXIST);
	CHECK_EQ(rights_user_add(r, 4, "fresh", ROLE_WRITER, box, sig), -EINVAL);
	CHECK_EQ(rights_user_add(r, 0, "fresh", ROLE_WRITER, box, sig), -EINVAL);
	CHECK_EQ(rights_user_add(r, 6, "bad name", ROLE_WRITER, box, sig), -EINVAL);
	CHECK_EQ(rights_user_add(r, 6, RIGHTS_RECOVERY_NAME, ROLE_ADMIN, box, sig),
	         -EINVAL);
	CHECK_EQ(rights_user_add(r, 6, "fresh", ROLE_REMOVED, box, sig), -EINVAL);
	CHECK_EQ(rights_user_add(r, 6, "fresh", (enum role)9, box, sig), -EINVAL);
	CHECK_EQ(rights_user_add(r, 6, "gone_user", ROLE_WRITER, box, sig), 0);
	CHECK_EQ(rights_user(r, 6)->periods[0].from, r->counter + 1);
	CHECK_EQ(rights_user_change(r, 3, ROLE_WRITER, NULL, NULL), -ENOENT);
	CHECK_EQ(rights_user_change(r, 77, ROLE_WRITER, NULL, NULL), -ENOENT);
	CHECK_EQ(rights_user_change(r, 6, (enum role)9, NULL, NULL), -EINVAL);
	/* two changes before one signature make one period */
	CHECK_EQ(rights_user_change(r, 1, ROLE_WRITER, NULL, NULL), 0);
	CHECK_EQ(rights_user_change(r, 1, ROLE_READER, box, NULL), 0);
	CHECK_EQ(rights_user(r, 1)->nperiods, 2);
	CHECK_EQ(rights_role(rights_user(r, 1)), ROLE_READER);
	CHECK(!memcmp(rights_user(r, 1)->box_pk, box, 32));
	/* every period is kept for old commits: at most RIGHTS_PERIODS_MAX */
	{
		int rc = 0;
		for (int i = 0; i < RIGHTS_PERIODS_MAX + 2 && !rc; i++) {
			r->counter++;
			rc = rights_user_change(r, 5, i % 2 ? ROLE_AUDITOR : ROLE_READER,
			                        NULL, NULL);
		}
		CHECK_EQ(rc, -ENOSPC);
		CHECK_EQ(rights_user(r, 5)->nperiods, RIGHTS_PERIODS_MAX);
	}
	k = key(4, KEY_ACTIVE);
	k.cipher = 0;
	CHECK_EQ(rights_key_put(r, &k), -EINVAL);
	k = key(0, KEY_ACTIVE);
	CHECK_EQ(rights_key_put(r, &k), -EINVAL);
	k = key(2, KEY_DESTROYED); /* replace in place */
	CHECK_EQ(rights_key_put(r, &k), 0);
	CHECK_EQ(rights_key(r, 2)->status, KEY_DESTROYED);
	k = key(9, KEY_DECRYPT_ONLY);
	CHECK_EQ(rights_key_put(r, &k), 0);
	k = key(8, KEY_DECRYPT_ONLY); /* versions only grow */
	CHECK_EQ(rights_key_put(r, &k), -EINVAL);
	CHECK(r->dirty);
	rights_free(r);
}

static int plain_sql(struct store *s, const char *q)
{
	return sqlite3_exec(s->db, q, NULL, NULL, NULL);
}

/* Sign and load: only the right authority, store and epoch, only the
 * canonical body the authority signed. */
static void test_sign_load(struct store *s)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64], *body = NULL;
	uint8_t other_id[16];
	size_t len = 0;
	struct rights *r, *l = NULL;

	keypair(pk, sk);
	keypair(pk2, sk2);
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -ENOENT); /* none yet */
	r = sample(pk);
	if (!r)
		return;
	/* only the authority this roster is under signs it */
	CHECK_EQ(rights_sign(r, s, sk2), -EPERM);
	CHECK_EQ(r->counter, 5);
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -ENOENT); /* nothing written */
	CHECK_EQ(rights_sign(r, s, sk), 0);
	CHECK_EQ(r->counter, 6); /* every signature raises it */
	CHECK_EQ(r->dirty, 0);
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), 0);
	CHECK(l != NULL);
	if (l) {
		CHECK_EQ(l->counter, 6);
		CHECK(!memcmp(l->hash, r->hash, 32));
		CHECK(!memcmp(l->authority_pk, pk, 32));
		CHECK_EQ(l->nusers, 4);
		CHECK_EQ(l->dirty, 0);
		/* the hash is of the signed row: body and signature */
		{
			uint8_t b2[64], h[32];
			uint8_t *b = NULL;
			size_t n = 0;
			CHECK_EQ(store_roster_get(s, &b, &n, b2), 0);
			struct cipher_part p[2] = { { b, n }, { b2, 64 } };
			cipher_hash(h, p, 2);
			CHECK(!memcmp(h, l->hash, 32));
			free(b);
		}
		rights_free(l);
		l = NULL;
	}
	CHECK_EQ(rights_sign(r, s, sk), 0);
	CHECK_EQ(r->counter, 7);
	/* the wrong authority key, epoch or store */
	CHECK_EQ(rights_load(s, store_id, 1, pk2, &l), -EBADMSG);
	CHECK(l == NULL);
	CHECK_EQ(rights_load(s, store_id, 2, pk, &l), -EBADMSG);
	memcpy(other_id, store_id, 16);
	other_id[15] ^= 1;
	CHECK_EQ(rights_load(s, other_id, 1, pk, &l), -EBADMSG);
	/* a roster of another store, validly signed by this authority */
	{
		struct rights *o = sample(pk);
		if (o) {
			memcpy(o->store_id, other_id, 16);
			CHECK_EQ(rights_sign(o, s, sk), 0);
			CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
			CHECK_EQ(rights_load(s, other_id, 1, pk, &l), 0);
			rights_free(l);
			l = NULL;
			rights_free(o);
		}
	}
	/* a roster under epoch 2 signed by epoch 1's key is not epoch 2's */
	r->epoch = 2;
	CHECK_EQ(rights_sign(r, s, sk), 0);
	CHECK_EQ(rights_load(s, store_id, 2, pk, &l), 0);
	rights_free(l);
	l = NULL;
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
	r->epoch = 1;
	CHECK_EQ(rights_sign(r, s, sk), 0);
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), 0);
	rights_free(l);
	l = NULL;

	/* any byte of the body or signature changed */
	CHECK_EQ(encode(r, &body, &len), 0);
	{
		uint8_t *b = malloc(len + 1);
		int all = 1;
		memcpy(b, body, len);
		for (size_t i = 0; i < len; i += 7) {
			b[i] ^= 0x20;
			cipher_sign(sig, body, len, sk);
			CHECK_EQ(store_roster_put(s, b, len, sig), 0);
			if (rights_load(s, store_id, 1, pk, &l) != -EBADMSG)
				all = 0;
			rights_free(l);
			l = NULL;
			b[i] ^= 0x20;
		}
		CHECK(all);
		cipher_sign(sig, body, len, sk);
		sig[10] ^= 1;
		CHECK_EQ(store_roster_put(s, body, len, sig), 0);
		CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
		/* a non-canonical body signed by the authority itself: trailing
		 * bytes, a malformed one, an empty one */
		b[len] = 0;
		cipher_sign(sig, b, len + 1, sk);
		CHECK_EQ(store_roster_put(s, b, len + 1, sig), 0);
		CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
		CHECK(l == NULL);
		b[16] = 9;
		cipher_sign(sig, b, len, sk);
		CHECK_EQ(store_roster_put(s, b, len, sig), 0);
		CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
		cipher_sign(sig, b, 0, sk);
		CHECK_EQ(plain_sql(s, "UPDATE roster SET body=x''"), SQLITE_OK);
		CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
		CHECK_EQ(plain_sql(s, "UPDATE roster SET body='text'"), SQLITE_OK);
		CHECK_EQ(rights_load(s, store_id, 1, pk, &l), -EBADMSG);
		free(b);
	}
	/* and the genuine one loads again */
	cipher_sign(sig, body, len, sk);
	CHECK_EQ(store_roster_put(s, body, len, sig), 0);
	CHECK_EQ(rights_load(s, store_id, 1, pk, &l), 0);
	rights_free(l);
	free(body);
	rights_free(r);
}

static void test_chain(struct store *s)
{
	uint8_t pk[4][32], sk[4][64], got[32], mpk[32], msk[64];
	uint8_t other_id[16];
	uint32_t epoch = 0;
	struct store_authority a;

	for (int i = 0; i < 4; i++)
		keypair(pk[i], sk[i]);
	keypair(mpk, msk);
	memcpy(other_id, store_id, 16);
	other_id[0] ^= 1;
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities"), SQLITE_OK);
	/* no authority at all */
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -ENOENT);
	CHECK_EQ(rights_chain_start(s, store_id, pk[1], sk[1]), 0);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), 0);
	CHECK_EQ(epoch, 1);
	CHECK(!memcmp(got, pk[1], 32));
	/* epoch 1 is self-endorsed */
	{
		uint8_t msg[68];
		CHECK_EQ(store_authority_get(s, 1, &a), 0);
		memcpy(msg, "custodyfs.author", 16);
		memcpy(msg + 16, store_id, 16);
		put_le32(msg + 32, 1);
		memcpy(msg + 36, pk[1], 32);
		CHECK_EQ(cipher_sign_verify(a.endorsement, msg, sizeof msg, pk[1]), 0);
	}
	CHECK_EQ(rights_chain_extend(s, store_id, 1, sk[1], pk[2]), 0);
	CHECK_EQ(rights_chain_extend(s, store_id, 2, sk[2], pk[3]), 0);
	CHECK_EQ(rights_chain_extend(s, store_id, 0, sk[2], pk[3]), -EINVAL);
	CHECK_EQ(rights_chain_extend(s, store_id, UINT32_MAX, sk[2], pk[3]),
	         -EINVAL);
	/* followed from any pinned epoch to the newest */
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), 0);
	CHECK_EQ(epoch, 3);
	CHECK(!memcmp(got, pk[3], 32));
	CHECK_EQ(rights_chain(s, store_id, 2, pk[2], &epoch, got), 0);
	CHECK_EQ(epoch, 3);
	CHECK_EQ(rights_chain(s, store_id, 3, pk[3], &epoch, got), 0);
	CHECK_EQ(epoch, 3);
	CHECK(!memcmp(got, pk[3], 32));
	/* a fork at the pinned epoch: another key there */
	CHECK_EQ(rights_chain(s, store_id, 2, mpk, &epoch, got), -EBADMSG);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[2], &epoch, got), -EBADMSG);
	/* a pin outside the chain */
	CHECK_EQ(rights_chain(s, store_id, 0, pk[1], &epoch, got), -EBADMSG);
	/* the chain of another store (the endorsements name the store id) */
	CHECK_EQ(rights_chain(s, other_id, 1, pk[1], &epoch, got), -EBADMSG);
	CHECK_EQ(rights_chain(s, other_id, 3, pk[3], &epoch, got), 0);
	/* a forged endorsement: epoch 4 endorsed by a key that is not epoch
	 * 3's */
	CHECK_EQ(rights_chain_extend(s, store_id, 3, msk, mpk), 0);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -EBADMSG);
	CHECK_EQ(rights_chain(s, store_id, 3, pk[3], &epoch, got), -EBADMSG);
	/* the same with its endorsement made for another epoch or store */
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities WHERE epoch=4"), SQLITE_OK);
	CHECK_EQ(rights_chain_extend(s, other_id, 3, sk[3], mpk), 0);
	CHECK_EQ(rights_chain(s, store_id, 3, pk[3], &epoch, got), -EBADMSG);
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities WHERE epoch=4"), SQLITE_OK);
	CHECK_EQ(store_authority_get(s, 3, &a), 0);
	a.epoch = 4; /* epoch 3's row copied to 4: signed for epoch 3 */
	CHECK_EQ(store_authority_put(s, &a), 0);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -EBADMSG);
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities WHERE epoch=4"), SQLITE_OK);
	/* a forged endorsement in the middle (epoch 2's key swapped) */
	CHECK_EQ(plain_sql(s, "UPDATE authorities SET pk=randomblob(32) WHERE"
	                   " epoch=2"), SQLITE_OK);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -EBADMSG);
	CHECK_EQ(plain_sql(s, "UPDATE authorities SET endorsement=randomblob(64)"
	                   " WHERE epoch=2"), SQLITE_OK);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -EBADMSG);
	/* a missing link */
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities WHERE epoch=2"), SQLITE_OK);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), -EBADMSG);
	CHECK_EQ(rights_chain(s, store_id, 2, pk[2], &epoch, got), -EBADMSG);
	/* rebuilt, then cut below what was pinned */
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities"), SQLITE_OK);
	CHECK_EQ(rights_chain_start(s, store_id, pk[1], sk[1]), 0);
	CHECK_EQ(rights_chain_extend(s, store_id, 1, sk[1], pk[2]), 0);
	CHECK_EQ(rights_chain_extend(s, store_id, 2, sk[2], pk[3]), 0);
	CHECK_EQ(plain_sql(s, "DELETE FROM authorities WHERE epoch=3"), SQLITE_OK);
	CHECK_EQ(rights_chain(s, store_id, 3, pk[3], &epoch, got), -EBADMSG);
	CHECK_EQ(rights_chain(s, store_id, 1, pk[1], &epoch, got), 0);
	CHECK_EQ(epoch, 2); /* what a rollback looks like from epoch 1 */
	/* a hostile row: a key that is not 32 bytes */
	CHECK_EQ(plain_sql(s, "UPDATE authorities SET pk=x'00' WHERE epoch=2"),
	         SQLITE_OK);
	CHECK(rights_chain(s, store_id, 1, pk[1], &epoch, got) < 0);
}

int main(void)
{
	char p[128];
	struct store *s = NULL;

	CHECK_EQ(cipher_init(), 0);
	snprintf(dir, sizeof dir, "/var/tmp/cfs-unit-rights.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trip();
	test_malformed();
	test_changes();
	snprintf(p, sizeof p, "%s/s.db", dir);
	CHECK_EQ(store_open(p, STORE_CREATE, 1000, &s, NULL, 0), 0);
	if (s) {
		test_sign_load(s);
		test_chain(s);
		store_close(s);
	}
	rm_store(p);
	CHECK_EQ(rmdir(dir), 0);
	UNIT_END("test_rights");
}
