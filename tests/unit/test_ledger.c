/*
 * test_ledger.c - the chain of signed commit records (ledger.h) on a real
 * store: records appended through the audited transaction verify, from
 * the genesis record and from any trusted one; the parser refuses every
 * malformed record; and every rule of ledger_check is violated once, by a
 * validly signed record a user holding their own keys could write: a
 * reader's session moving the inode root (and the entry root, and the next
 * inode number), a non-admin changing the roster, a removed user's session
 * signing, a broken previous hash, a skipped sequence number, an instance
 * change without FORK (and a FORK that moves files or keeps the instance),
 * a forged signature, an unendorsed session, and the counters that must
 * not go backwards. ledger_verify gives -ESTALE for a trusted commit that
 * is no longer in the chain and -EBADMSG for a broken chain.
 */
#define UNIT_WITH_STORE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "ledger.h"
#include "session.h"
#include "store.h"
#include "unit.h"
#include "witness.h"
/* white box: plain SQL on the store's connection (the file writer) */
#include "../../src/store/store_internal.h"

#define BODY_LEN (16 + 1 + 16 + 8 + 32 + 8 + 8 + 32 + 3 * 36 + 8 + 8 + 32 + 16 + 4)

static struct unit_env e;
static struct unlocked adm;      /* the first admin, as init made it */
static struct unlocked rd, wr, vi, ad2; /* reader, writer, victim, admin 2 */

static int sql(struct store *s, const char *q)
{
	int rc = sqlite3_exec(s->db, q, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", q, sqlite3_errmsg(s->db));
	return rc;
}

/* The admin's view of the newest state (other processes committed). */
static void refresh(void)
{
	int changed = 0;
	CHECK_EQ(unlock_refresh(&adm, &changed), 0);
}

/*
 * Append the successor of *prev with state st signed by the given
 * sessions (inside a transaction of the admin's connection that is rolled
 * back afterwards), read it back and check it: ledger_check's result.
 */
static int try_commit(const struct ledger_commit *prev,
                      const struct ledger_state *st, struct session **ss,
                      size_t n, void (*mangle)(struct ledger_commit *c),
                      char *why, size_t whylen)
{
	struct ledger_commit *c = malloc(sizeof *c);
	struct store *s = adm.s;
	int rc;

	if (!c)
		return -ENOMEM;
	if ((rc = store_begin(s))) {
		free(c);
		return rc;
	}
	rc = ledger_append(s, adm.r->store_id, prev, st, ss, n, NULL, 0, NULL);
	if (!rc)
		rc = ledger_read(s, prev ? prev->seq + 1 : 1, c);
	if (!rc) {
		if (mangle)
			mangle(c);
		why[0] = 0;
		rc = ledger_check(s, adm.r, NULL, &adm.head, c, why, whylen);
	}
	store_rollback(s);
	free(c);
	return rc;
}

static int check_by(struct session *ss, const struct ledger_state *st,
                    char *why, size_t whylen)
{
	return try_commit(&adm.head, st, &ss, 1, NULL, why, whylen);
}

/*
 * The successor of the admin's head with state st, validly signed by ss,
 * written as a file writer holding ss's key would write it: encoded here
 * (the layout in ledger.c) and put with store_ledger_put, since
 * ledger_append itself refuses a record that lowers a counter (a guard
 * against a process's own stale roots). Read back and checked in a
 * transaction that is rolled back: ledger_check's result.
 */
static int forge_by(struct session *ss, const struct ledger_state *st,
                    char *why, size_t whylen)
{
	static const char magic[16] = "custodyfs.commit";
	const struct ledger_state *r = st;
	struct ledger_commit *c = malloc(sizeof *c);
	uint8_t body[BODY_LEN], sigs[1 + 72], h[32];
	struct cipher_part part = { body, sizeof body };
	struct wbuf w;
	int rc;

	if (!c)
		return -ENOMEM;
	wbuf_init(&w, body, sizeof body);
	wbuf_bytes(&w, magic, 16);
	wbuf_u8(&w, 1);
	wbuf_bytes(&w, adm.r->store_id, 16);
	wbuf_u64(&w, (uint64_t)adm.head.seq + 1);
	wbuf_bytes(&w, adm.head.hash, 32);
	wbuf_u64(&w, (uint64_t)adm.head.time + 1);
	wbuf_u64(&w, r->roster_counter);
	wbuf_bytes(&w, r->roster_hash, 32);
	wbuf_u32(&w, r->inodes.height);
	wbuf_bytes(&w, r->inodes.hash, 32);
	wbuf_u32(&w, r->dentries.height);
	wbuf_bytes(&w, r->dentries.hash, 32);
	wbuf_u32(&w, r->creds.height);
	wbuf_bytes(&w, r->creds.hash, 32);
	wbuf_u64(&w, r->next_ino);
	wbuf_u64(&w, (uint64_t)r->audit_seq);
	wbuf_bytes(&w, r->audit_hash, 32);
	wbuf_bytes(&w, r->instance, 16);
	wbuf_u32(&w, r->flags);
	CHECK(!w.err && w.len == BODY_LEN);
	cipher_hash(h, &part, 1);
	sigs[0] = 1;
	put_le64(sigs + 1, (uint64_t)ss->id);
	session_sign(ss, "custodyfs.cmtsig", h, 32, sigs + 9);
	if ((rc = store_begin(adm.s))) {
		free(c);
		return rc;
	}
	rc = store_ledger_put(adm.s, adm.head.seq + 1, body, sizeof body, sigs,
	                      sizeof sigs, NULL, 0);
	if (!rc)
		rc = ledger_read(adm.s, adm.head.seq + 1, c);
	if (!rc) {
		why[0] = 0;
		rc = ledger_check(adm.s, adm.r, NULL, &adm.head, c, why, whylen);
	}
	store_rollback(adm.s);
	free(c);
	return rc;
}

static void test_parse(void)
{
	struct ledger_commit *c = malloc(sizeof *c), *p = malloc(sizeof *p);
	uint8_t body[STORE_COMMIT_BODY_MAX], sigs[1 + 3 * 72 + 8];
	size_t len = 0, siglen = 0;
	int all;

	if (!c || !p) {
		free(c);
		free(p);
		CHECK(0);
		return;
	}
	{
		uint8_t proof[64];
		size_t prooflen = 99;
		CHECK_EQ(store_ledger_get(adm.s, adm.head.seq, body, sizeof body, &len,
		                          sigs, sizeof sigs, &siglen, proof,
		                          sizeof proof, &prooflen), 0);
		CHECK_EQ(prooflen, 0); /* a login changes no credential */
	}
	CHECK_EQ(len, BODY_LEN);
	CHECK_EQ(siglen, 1 + 72);
	CHECK_EQ(ledger_parse(body, len, sigs, siglen, c), 0);
	CHECK_EQ(c->seq, adm.head.seq);
	CHECK(!memcmp(c->hash, adm.head.hash, 32));
	CHECK_EQ(c->nsig, 1);
	CHECK_EQ(c->signer[0], vi.ss->id); /* the last login */
	CHECK(!memcmp(c->store_id, adm.r->store_id, 16));
	CHECK_EQ(c->st.roster_counter, adm.r->counter);
	CHECK(!memcmp(c->st.roster_hash, adm.r->hash, 32));
	/* the body hash is BLAKE2b of the body */
	{
		uint8_t h[32];
		struct cipher_part part = { body, len };
		cipher_hash(h, &part, 1);
		CHECK(!memcmp(h, c->hash, 32));
	}
	/* truncations of the body and of the signatures */
	all = 1;
	for (size_t n = 0; n < len; n++)
		if (ledger_parse(body, n, sigs, siglen, p) != -EBADMSG)
			all = 0;
	for (size_t n = 0; n < siglen; n++)
		if (ledger_parse(body, len, sigs, n, p) != -EBADMSG)
			all = 0;
	CHECK(all);
	/* trailing bytes */
	body[len] = 0;
	sigs[siglen] = 0;
	CHECK_EQ(ledger_parse(body, len + 1, sigs, siglen, p), -EBADMSG);
	CHECK_EQ(ledger_parse(body, len, sigs, siglen + 1, p), -EBADMSG);
	/* each field out of range */
	{
		static const struct { size_t at; uint8_t v; } bad[] = {
			{ 0, 'C' },          /* magic */
			{ 16, 2 },           /* version */
		};
		for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
			uint8_t keep = body[bad[i].at];
			body[bad[i].at] = bad[i].v;
			CHECK_EQ(ledger_parse(body, len, sigs, siglen, p), -EBADMSG);
			body[bad[i].at] = keep;
		}
		uint8_t b[BODY_LEN];
		const size_t seq_at = 33, inodes_at = 33 + 8 + 32 + 8 + 8 + 32;
		const size_t aseq_at = inodes_at + 3 * 36 + 8;
		const size_t flags_at = BODY_LEN - 4;
		memcpy(b, body, len);
		put_le64(b + seq_at, 0);
		CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), -EBADMSG);
		put_le64(b + seq_at, (uint64_t)-5);
		CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), -EBADMSG);
		memcpy(b, body, len);
		for (int t = 0; t < 3; t++) {
			memcpy(b, body, len);
			put_le32(b + inodes_at + 36 * (size_t)t, MTREE_MAX_HEIGHT + 1);
			CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), -EBADMSG);
			put_le32(b + inodes_at + 36 * (size_t)t, MTREE_MAX_HEIGHT);
			CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), 0);
		}
		memcpy(b, body, len);
		put_le64(b + aseq_at, (uint64_t)-1);
		CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), -EBADMSG);
		memcpy(b, body, len);
		put_le32(b + flags_at, 2);
		CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), -EBADMSG);
		put_le32(b + flags_at, LEDGER_FORK);
		CHECK_EQ(ledger_parse(b, len, sigs, siglen, p), 0);
		CHECK_EQ(p->st.flags, LEDGER_FORK);
	}
	/* signatures: none, too many, ids not ascending, id 0 */
	{
		uint8_t sg[1 + 3 * 72];
		memset(sg, 0, sizeof sg);
		sg[0] = 0;
		CHECK_EQ(ledger_parse(body, len, sg, 1, p), -EBADMSG);
		sg[0] = LEDGER_MAX_SIGNERS + 1;
		CHECK_EQ(ledger_parse(body, len, sg, sizeof sg, p), -EBADMSG);
		sg[0] = 2;
		put_le64(sg + 1, 5);
		put_le64(sg + 1 + 72, 5);
		CHECK_EQ(ledger_parse(body, len, sg, 1 + 2 * 72, p), -EBADMSG);
		put_le64(sg + 1 + 72, 4);
		CHECK_EQ(ledger_parse(body, len, sg, 1 + 2 * 72, p), -EBADMSG);
		put_le64(sg + 1 + 72, 6);
		CHECK_EQ(ledger_parse(body, len, sg, 1 + 2 * 72, p), 0);
		CHECK_EQ(p->nsig, 2);
		put_le64(sg + 1, 0);
		CHECK_EQ(ledger_parse(body, len, sg, 1 + 2 * 72, p), -EBADMSG);
		put_le64(sg + 1, (uint64_t)-7);
		CHECK_EQ(ledger_parse(body, len, sg, 1 + 2 * 72, p), -EBADMSG);
	}
	/* a record moved to another row is not that row's */
	CHECK_EQ(store_begin(adm.s), 0);
	CHECK_EQ(sql(adm.s, "INSERT INTO ledger SELECT seq + 1000, body, sigs,"
	             " proof FROM ledger WHERE seq = 1"), SQLITE_OK);
	CHECK_EQ(ledger_read(adm.s, 1001, p), -EBADMSG);
	CHECK_EQ(ledger_read(adm.s, 1, p), 0);
	CHECK_EQ(ledger_read(adm.s, 999, p), -ENOENT);
	CHECK_EQ(sql(adm.s, "UPDATE ledger SET body=zeroblob(1025) WHERE seq=1"),
	         SQLITE_OK);
	CHECK_EQ(ledger_read(adm.s, 1, p), -EBADMSG);
	store_rollback(adm.s);
	free(c);
	free(p);
}

/* Records appended through the audited transaction verify as one chain. */
static void test_chain(void)
{
	struct ledger_commit *head = malloc(sizeof *head);
	struct ledger_commit *mid = malloc(sizeof *mid);
	char why[256];
	int64_t first = 0, last = 0;

	if (!head || !mid) {
		free(head);
		free(mid);
		CHECK(0);
		return;
	}
	refresh();
	*mid = adm.head;
	for (int i = 0; i < 5; i++)
		CHECK_EQ(unlock_record(&adm, "test", "chain", 0), 0);
	CHECK_EQ(adm.head.seq, mid->seq + 5);
	CHECK_EQ(store_ledger_first(adm.s, &first), 0);
	CHECK_EQ(store_ledger_last(adm.s, &last), 0);
	CHECK_EQ(first, 1);
	CHECK_EQ(last, adm.head.seq);
	CHECK_EQ(ledger_head(adm.s, head), 0);
	CHECK(!memcmp(head->hash, adm.head.hash, 32));
	/* from the genesis record */
	memset(head, 0, sizeof *head);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), 0);
	CHECK_EQ(head->seq, adm.head.seq);
	CHECK(!memcmp(head->hash, adm.head.hash, 32));
	/* from a trusted record in the middle, and from the head itself */
	CHECK_EQ(ledger_verify(adm.s, adm.r, mid->seq, mid->hash, head, NULL,
	                       NULL, why, sizeof why), 0);
	CHECK_EQ(head->seq, adm.head.seq);
	CHECK_EQ(ledger_verify(adm.s, adm.r, adm.head.seq, adm.head.hash, head,
	                       NULL, NULL, why, sizeof why), 0);
	/* each record follows the one before it */
	{
		struct ledger_commit *a = malloc(sizeof *a), *b = malloc(sizeof *b);
		struct ledger_cache *cache = NULL;
		int ok = a && b && !ledger_cache_new(&cache);
		CHECK(ok);
		if (ok && !ledger_read(adm.s, 1, a)) {
			CHECK_EQ(ledger_check(adm.s, adm.r, cache, NULL, a, why,
			                      sizeof why), 0);
			for (int64_t q = 2; q <= last; q++) {
				CHECK_EQ(ledger_read(adm.s, q, b), 0);
				CHECK_EQ(ledger_check(adm.s, adm.r, cache, a, b, why,
				                      sizeof why), 0);
				CHECK_EQ(b->seq, a->seq + 1);
				CHECK(!memcmp(b->prev, a->hash, 32));
				*a = *b;
			}
			/* the second record is not a genesis record */
			CHECK_EQ(ledger_read(adm.s, 2, b), 0);
			CHECK_EQ(ledger_check(adm.s, adm.r, cache, NULL, b, why,
			                      sizeof why), -EBADMSG);
		}
		ledger_cache_free(cache);
		free(a);
		free(b);
	}
	/* the signer of a record: user and role at a roster counter */
	{
		int64_t uid = 0;
		int role = -9;
		CHECK_EQ(ledger_signer(adm.s, adm.r, NULL, wr.ss->id, adm.r->counter,
		                       &uid, &role), 0);
		CHECK_EQ(uid, wr.ss->user_id);
		CHECK_EQ(role, ROLE_WRITER);
		CHECK_EQ(ledger_signer(adm.s, adm.r, NULL, 9999, adm.r->counter,
		                       &uid, &role), -EBADMSG);
	}
	free(head);
	free(mid);
}

/*
 * The roster's anchor: the commit that adopted the roster, signed by its
 * authority. A history without it, or whose anchor is not its own (gone,
 * another roster's, edited, naming a commit this chain does not hold),
 * does not verify; a trusted start already under the roster does.
 */
static void test_anchor(void)
{
	struct ledger_commit *head = malloc(sizeof *head);
	uint8_t rec[256], saved[256];
	size_t n = 0, sn = 0;
	char why[256];

	if (!head) {
		CHECK(0);
		return;
	}
	refresh();
	CHECK_EQ(adm.r->version, RIGHTS_VERSION_ANCHORED);
	CHECK_EQ(store_meta_get(adm.s, "roster_anchor", saved, sizeof saved, &sn),
	         0);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), 0);
	/* gone */
	CHECK_EQ(store_begin(adm.s), 0);
	CHECK_EQ(store_meta_delete(adm.s, "roster_anchor"), 0);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), -EBADMSG);
	CHECK(strstr(why, "no valid anchor") != NULL);
	store_rollback(adm.s);
	/* each byte edited in turn (every field is signed) */
	for (size_t i = 0; i < sn; i += 7) {
		memcpy(rec, saved, sn);
		rec[i] ^= 1;
		CHECK_EQ(store_begin(adm.s), 0);
		CHECK_EQ(store_meta_set(adm.s, "roster_anchor", rec, sn), 0);
		CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
		                       sizeof why), -EBADMSG);
		store_rollback(adm.s);
	}
	/* the authority's, naming a commit this history does not hold (one
	 * beyond the head), or the head under another roster: refused */
	{
		struct ledger_commit *fake = malloc(sizeof *fake);
		CHECK(fake != NULL);
		if (fake) {
			*fake = adm.head;
			fake->seq = adm.head.seq + 1;
			CHECK_EQ(store_begin(adm.s), 0);
			CHECK_EQ(ledger_anchor(adm.s, adm.r, adm.ss->authority_sk, fake),
			         0);
			CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL,
			                       why, sizeof why), -EBADMSG);
			CHECK(strstr(why, "adopted at commit") != NULL);
			store_rollback(adm.s);
			*fake = adm.head;
			fake->hash[0] ^= 1;
			CHECK_EQ(store_begin(adm.s), 0);
			CHECK_EQ(ledger_anchor(adm.s, adm.r, adm.ss->authority_sk, fake),
			         0);
			CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL,
			                       why, sizeof why), -EBADMSG);
			store_rollback(adm.s);
			/* only the roster's own authority anchors, only its commits */
			*fake = adm.head;
			fake->st.roster_counter--;
			CHECK_EQ(ledger_anchor(adm.s, adm.r, adm.ss->authority_sk, fake),
			         -EPERM);
			{
				uint8_t opk[32], osk[64];
				cipher_sign_keypair(opk, osk);
				CHECK_EQ(ledger_anchor(adm.s, adm.r, osk, &adm.head), -EPERM);
			}
			CHECK_EQ(ledger_anchor(adm.s, adm.r, NULL, &adm.head), -EPERM);
			/* an anchor on the head, a trusted start under the roster */
			CHECK_EQ(store_begin(adm.s), 0);
			CHECK_EQ(ledger_anchor(adm.s, adm.r, adm.ss->authority_sk,
			                       &adm.head), 0);
			CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL,
			                       why, sizeof why), 0);
			CHECK_EQ(ledger_verify(adm.s, adm.r, adm.head.seq, adm.head.hash,
			                       head, NULL, NULL, why, sizeof why), 0);
			store_rollback(adm.s);
			free(fake);
		}
	}
	CHECK_EQ(store_meta_get(adm.s, "roster_anchor", rec, sizeof rec, &n), 0);
	CHECK(n == sn && !memcmp(rec, saved, sn));
	free(head);
}

/* A trusted commit that is not (or no longer) in the chain: -ESTALE. */
static void test_stale(void)
{
	struct ledger_commit *head = malloc(sizeof *head);
	uint8_t other[32];
	char why[256];
	int64_t seq = adm.head.seq;

	if (!head)
		return;
	memcpy(other, adm.head.hash, 32);
	other[3] ^= 1;
	/* seen before, later than the history now ends: a rollback */
	CHECK_EQ(ledger_verify(adm.s, adm.r, seq + 3, adm.head.hash, head, NULL,
	                       NULL, why, sizeof why), -ESTALE);
	CHECK(strstr(why, "rolled") != NULL);
	/* the same seq with another hash: another copy, or rolled back and
	 * changed since */
	CHECK_EQ(ledger_verify(adm.s, adm.r, seq, other, head, NULL, NULL, why,
	                       sizeof why), -ESTALE);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 2, other, head, NULL, NULL, why,
	                       sizeof why), -ESTALE);
	/* the file rolled back: the records after seq-2 gone */
	CHECK_EQ(store_begin(adm.s), 0);
	{
		char q[96];
		snprintf(q, sizeof q, "DELETE FROM ledger WHERE seq > %lld",
		         (long long)(seq - 2));
		CHECK_EQ(sql(adm.s, q), SQLITE_OK);
	}
	CHECK_EQ(ledger_verify(adm.s, adm.r, seq, adm.head.hash, head, NULL, NULL,
	                       why, sizeof why), -ESTALE);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), 0); /* in itself, a sound chain */
	CHECK_EQ(head->seq, seq - 2);
	store_rollback(adm.s);
	/* broken chains: a record edited, a record deleted in the middle, no
	 * records at all */
	CHECK_EQ(store_begin(adm.s), 0);
	/* a byte changed, whatever it was (set to a constant, it is that
	 * constant once in 256 runs) */
	CHECK_EQ(sql(adm.s, "UPDATE ledger SET body=CAST(substr(body, 1, 60) ||"
	             " CASE WHEN substr(body, 61, 1) = x'ff' THEN x'fe'"
	             " ELSE x'ff' END || substr(body, 62) AS BLOB) WHERE seq = 3"),
	         SQLITE_OK);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), -EBADMSG);
	{
		struct ledger_commit *two = malloc(sizeof *two);
		CHECK_EQ(ledger_read(adm.s, 2, two), 0);
		CHECK_EQ(ledger_verify(adm.s, adm.r, 2, two->hash, head, NULL, NULL,
		                       why, sizeof why), -EBADMSG);
		CHECK_EQ(ledger_verify(adm.s, adm.r, 3, two->hash, head, NULL, NULL,
		                       why, sizeof why), -ESTALE); /* not the one seen */
		free(two);
	}
	store_rollback(adm.s);
	CHECK_EQ(store_begin(adm.s), 0);
	CHECK_EQ(sql(adm.s, "DELETE FROM ledger WHERE seq = 3"), SQLITE_OK);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), -EBADMSG);
	CHECK_EQ(sql(adm.s, "DELETE FROM ledger WHERE seq = 1"), SQLITE_OK);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), -EBADMSG); /* no valid prune base */
	CHECK_EQ(sql(adm.s, "DELETE FROM ledger"), SQLITE_OK);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), -EBADMSG);
	CHECK_EQ(ledger_head(adm.s, head), -ENOENT);
	store_rollback(adm.s);
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, head, NULL, NULL, why,
	                       sizeof why), 0);
	free(head);
}

static void flip_sig(struct ledger_commit *c)
{
	c->sig[0][7] ^= 1;
}

static void other_signer(struct ledger_commit *c)
{
	c->signer[0] = wr.ss->id; /* the reader's signature, named the writer's */
}

static void test_rules(int64_t victim)
{
	struct ledger_state st, base;
	char why[256];
	int rc;

	refresh();
	/* what the head says (unlock_state is for inside a transaction: its
	 * audit head moves at unlock_begin) */
	base = adm.head.st;
	base.flags = 0;

	/* controls: each signer may append a commit that changes nothing, a
	 * writer and an admin may move the files, an admin the roster */
	st = base;
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), 0);
	CHECK_EQ(check_by(wr.ss, &st, why, sizeof why), 0);
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), 0);
	st.inodes.hash[0] ^= 1;
	CHECK_EQ(check_by(wr.ss, &st, why, sizeof why), 0);
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), 0);
	st = base;
	st.roster_hash[0] ^= 1;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), 0);
	st = base;
	st.audit_seq += 3; /* anyone may append audit rows */
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), 0);
	/* the credentials root: an admin may move it; anyone else only with
	 * the proof that one leaf changed, their own (test_own_credential) */
	st = base;
	st.creds.hash[1] ^= 1;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), 0);
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	CHECK_EQ(check_by(wr.ss, &st, why, sizeof why), -EBADMSG);

	/* a reader's session moves the inode root, the entry root, the next
	 * inode number */
	st = base;
	st.inodes.hash[0] ^= 1;
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "may write") != NULL);
	st = base;
	st.inodes.height++;
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	st = base;
	st.dentries.hash[5] ^= 1;
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	st = base;
	st.next_ino++;
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	/* with a writer signing as well, the commit is the writer's too */
	{
		struct session *two[2] = { rd.ss, wr.ss };
		st = base;
		st.inodes.hash[0] ^= 1;
		CHECK_EQ(try_commit(&adm.head, &st, two, 2, NULL, why, sizeof why), 0);
	}
	/* a non-admin changes the roster */
	st = base;
	st.roster_hash[0] ^= 1;
	CHECK_EQ(check_by(wr.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "admin") != NULL);
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), -EBADMSG);
	/* the roster counter: never backwards, never beyond the store's.
	 * ledger_append refuses to write a record that lowers a counter (a
	 * process's own stale roots): one that does is a file writer's, put
	 * with its own key (forge_by), and ledger_check must refuse it */
	st = base;
	st.roster_counter--;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EIO);
	CHECK_EQ(forge_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	st = base;
	CHECK_EQ(forge_by(adm.ss, &st, why, sizeof why), 0); /* the control */
	st.roster_counter++;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "newer") != NULL);
	/* the audit head and the next inode number never go backwards */
	st = base;
	st.audit_seq--;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EIO);
	CHECK_EQ(forge_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "audit") != NULL);
	st = base;
	st.next_ino--;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EIO);
	CHECK_EQ(forge_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "next inode") != NULL);
	/* a reader's session lowering the next inode number: refused for
	 * that too (a reader never moves the files) */
	CHECK_EQ(forge_by(rd.ss, &st, why, sizeof why), -EBADMSG);

	/* a broken previous hash, a skipped seq */
	{
		struct ledger_commit *fake = malloc(sizeof *fake);
		if (fake) {
			*fake = adm.head;
			fake->hash[0] ^= 1;
			st = base;
			CHECK_EQ(try_commit(fake, &st, &wr.ss, 1, NULL, why, sizeof why),
			         -EBADMSG);
			CHECK(strstr(why, "does not follow") != NULL);
			*fake = adm.head;
			fake->seq++;
			CHECK_EQ(try_commit(fake, &st, &wr.ss, 1, NULL, why, sizeof why),
			         -EBADMSG);
			free(fake);
		}
	}
	/* the instance: changed only by a FORK that leaves the files alone */
	st = base;
	st.instance[0] ^= 1;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "instance") != NULL);
	st.flags = LEDGER_FORK;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), 0);
	CHECK_EQ(check_by(rd.ss, &st, why, sizeof why), 0); /* a reader's backup */
	st.inodes.hash[0] ^= 1;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	st = base;
	st.flags = LEDGER_FORK;
	CHECK_EQ(check_by(adm.ss, &st, why, sizeof why), -EBADMSG);
	CHECK(strstr(why, "fork") != NULL);

	/* a forged signature; a signature presented as another session's */
	st = base;
	CHECK_EQ(try_commit(&adm.head, &st, &wr.ss, 1, flip_sig, why, sizeof why),
	         -EBADMSG);
	CHECK(strstr(why, "signature") != NULL);
	CHECK_EQ(try_commit(&adm.head, &st, &rd.ss, 1, other_signer, why,
	                    sizeof why), -EBADMSG);
	/* a commit of another store */
	{
		struct ledger_commit *c = malloc(sizeof *c);
		uint8_t other[16];
		memcpy(other, adm.r->store_id, 16);
		other[0] ^= 1;
		CHECK_EQ(store_begin(adm.s), 0);
		CHECK_EQ(ledger_append(adm.s, other, &adm.head, &base, &wr.ss, 1, NULL, 0,
		                       c), 0);
		CHECK_EQ(ledger_check(adm.s, adm.r, NULL, &adm.head, c, why,
		                      sizeof why), -EBADMSG);
		CHECK(strstr(why, "another store") != NULL);
		store_rollback(adm.s);
		free(c);
	}

	/* an unendorsed session: a row with a key of its own, claiming the
	 * writer, endorsed by nobody's identity (or by the reader's) */
	{
		struct session *fake = session_new();
		struct store_session row;
		if (fake) {
			memset(&row, 0, sizeof row);
			CHECK_EQ(store_session_next_id(adm.s, &row.id), 0);
			cipher_sign_keypair(fake->pk, fake->sk);
			fake->id = row.id;
			row.user_id = wr.ss->user_id;
			row.roster_counter = adm.r->counter;
			row.started = 1;
			memcpy(row.pk, fake->pk, 32);
			cipher_random(row.endorsement, 64);
			snprintf(row.host, sizeof row.host, "h");
			snprintf(row.kind, sizeof row.kind, "ctl");
			CHECK_EQ(store_begin(adm.s), 0);
			CHECK_EQ(store_session_insert(adm.s, &row), 0);
			CHECK_EQ(store_commit(adm.s), 0);
			st = base;
			CHECK_EQ(check_by(fake, &st, why, sizeof why), -EBADMSG);
			CHECK(strstr(why, "endorsed") != NULL);
			/* no row at all */
			fake->id = row.id + 100;
			CHECK_EQ(check_by(fake, &st, why, sizeof why), -EBADMSG);
			/* a session row signed with another user's identity */
			{
				uint8_t msg[512];
				struct wbuf w;
				fake->id = row.id;
				wbuf_init(&w, msg, sizeof msg);
				wbuf_bytes(&w, "custodyfs.sessio", 16);
				wbuf_bytes(&w, adm.r->store_id, 16);
				wbuf_u64(&w, (uint64_t)row.id);
				wbuf_u64(&w, (uint64_t)row.user_id);
				wbuf_u64(&w, row.roster_counter);
				wbuf_u64(&w, (uint64_t)row.started);
				wbuf_bytes(&w, row.pk, 32);
				wbuf_str(&w, row.host);
				wbuf_u64(&w, (uint64_t)row.pid);
				wbuf_str(&w, row.kind);
				/* the endorsement commits to the detail key too
				 * (session.c, 5999eb7): here, to none */
				wbuf_bytes(&w, row.detail_hash, 32);
				CHECK(rd.ss->sign_sk != NULL);
				if (rd.ss->sign_sk) {
					cipher_sign(row.endorsement, msg, w.len, rd.ss->sign_sk);
					CHECK_EQ(store_begin(adm.s), 0);
					CHECK_EQ(sql(adm.s, "DELETE FROM sessions WHERE id ="
					             " (SELECT max(id) FROM sessions)"), SQLITE_OK);
					CHECK_EQ(store_session_insert(adm.s, &row), 0);
					CHECK_EQ(store_commit(adm.s), 0);
					CHECK_EQ(check_by(fake, &st, why, sizeof why), -EBADMSG);
					/* the same message signed by the writer's identity
					 * is a genuine session of the writer */
					CHECK(wr.ss->sign_sk != NULL);
					cipher_sign(row.endorsement, msg, w.len, wr.ss->sign_sk);
					CHECK_EQ(store_begin(adm.s), 0);
					CHECK_EQ(sql(adm.s, "UPDATE sessions SET endorsement=NULL"
					             " WHERE 0"), SQLITE_OK);
					CHECK_EQ(sql(adm.s, "DELETE FROM sessions WHERE id ="
					             " (SELECT max(id) FROM sessions)"), SQLITE_OK);
					CHECK_EQ(store_session_insert(adm.s, &row), 0);
					CHECK_EQ(store_commit(adm.s), 0);
					CHECK_EQ(check_by(fake, &st, why, sizeof why), 0);
				}
			}
			session_free(fake);
		}
	}

	/* a removed user's session: it signed before, it may not sign now */
	st = base;
	CHECK_EQ(check_by(vi.ss, &st, why, sizeof why), 0);
	CHECK_EQ(unit_user_remove(&adm, victim), 0);
	st = adm.head.st;
	st.flags = 0;
	rc = check_by(vi.ss, &st, why, sizeof why);
	CHECK_EQ(rc, -EBADMSG);
	CHECK(strstr(why, "no longer") != NULL);
	/* and the commits it signed before stay verifiable */
	{
		struct ledger_commit *h = malloc(sizeof *h);
		CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, h, NULL, NULL, why,
		                       sizeof why), 0);
		free(h);
	}
}

/* A reader changes their own passphrase: the commit carries the proof
 * that only their credential's leaf moved, and it verifies; the same
 * commit presented for another user's leaf, or without its proof, does
 * not. */
static void test_own_credential(void)
{
	struct rights_policy pol;
	struct passphrase pw;
	static struct ledger_commit c, prev, h;
	char why[256];
	int rc;

	CHECK_EQ(unit_pw(&pw, "r-pass-2"), 0);
	CHECK(unlock_begin(&rd) >= 0);
	auth_policy(&rd.r->policy, &rd.cfg, &pol);
	rc = auth_passwd(rd.s, &pol, rd.ss, &pw);
	if (!rc)
		rc = unlock_cred_changed(&rd);
	CHECK_EQ(unlock_finish(&rd, "user passwd", "reader", rc), 0);
	passphrase_free(&pw);
	refresh();
	CHECK_EQ(ledger_verify(adm.s, adm.r, 0, NULL, &h, NULL, NULL, why,
	                       sizeof why), 0);
	CHECK_EQ(ledger_read(adm.s, adm.head.seq, &c), 0);
	CHECK(c.prooflen >= 40);
	CHECK_EQ(get_le64(c.proof), (uint64_t)rd.ss->user_id);
	CHECK_EQ(ledger_read(adm.s, adm.head.seq - 1, &prev), 0);
	CHECK_EQ(ledger_check(adm.s, adm.r, NULL, &prev, &c, why, sizeof why), 0);
	/* the proof is unsigned but checked: another leaf, no proof, a byte
	 * of it changed */
	put_le64(c.proof, (uint64_t)wr.ss->user_id);
	CHECK_EQ(ledger_check(adm.s, adm.r, NULL, &prev, &c, why, sizeof why),
	         -EBADMSG);
	put_le64(c.proof, (uint64_t)rd.ss->user_id);
	c.proof[20] ^= 1;
	CHECK_EQ(ledger_check(adm.s, adm.r, NULL, &prev, &c, why, sizeof why),
	         -EBADMSG);
	c.proof[20] ^= 1;
	c.prooflen = 0;
	CHECK_EQ(ledger_check(adm.s, adm.r, NULL, &prev, &c, why, sizeof why),
	         -EBADMSG);
}

/*
 * The witness against a file whose chain left an instance: a reader's
 * session forks (FORK, a new instance) and later forks back to the old
 * instance's id. The witness saw the old instance go on at the seqs
 * where the file holds the fork's commits: the file is an older copy
 * (-ESTALE), however the instances of its chain run.
 */
static void test_witness_forks(void)
{
	struct ledger_commit *c = malloc(sizeof *c), *prev = malloc(sizeof *prev);
	struct ledger_state st;
	struct witness_report rep;
	struct store *s = adm.s;
	char why[300], path[300], id[33], inst[33], h[65];
	int64_t h0;
	FILE *f;

	if (!c || !prev) {
		free(c);
		free(prev);
		CHECK(0);
		return;
	}
	refresh();
	*prev = adm.head;
	h0 = prev->seq;
	snprintf(path, sizeof path, "%s/witness.log", e.dir);
	cipher_hex(id, prev->store_id, 16);
	cipher_hex(inst, prev->st.instance, 16);
	CHECK_EQ(store_begin(s), 0);
	/* h0+1, h0+2: the fork's; h0+3, h0+4: back to the old instance */
	for (int k = 1; k <= 4; k++) {
		st = prev->st;
		if (k == 1) {
			st.instance[0] ^= 0x5a;
			st.flags = LEDGER_FORK;
		} else if (k == 3) {
			memcpy(st.instance, adm.head.st.instance, 16);
			st.flags = LEDGER_FORK;
		} else
			st.flags = 0;
		CHECK_EQ(ledger_append(s, adm.r->store_id, prev, &st, &rd.ss, 1, NULL,
		                       0, c), 0);
		*prev = *c;
	}
	/* the witness: the head the file shares, then the old instance's
	 * own commits h0+1 and h0+2, which the file does not hold */
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		cipher_hex(h, adm.head.hash, 32);
		fprintf(f, "<85>Dec  1 00:00:00 custodyfs[1]: commit store=%s"
		        " instance=%s seq=%lld hash=%s audit=0:00\n", id, inst,
		        (long long)h0, h);
		for (int k = 1; k <= 2; k++) {
			memset(h, 'a' + k, 64);
			h[64] = 0;
			fprintf(f, "<85>Dec  1 00:00:0%d custodyfs[1]: commit store=%s"
			        " instance=%s seq=%lld hash=%s audit=0:00\n", k, id, inst,
			        (long long)(h0 + k), h);
		}
		fclose(f);
		why[0] = 0;
		CHECK_EQ(witness_verify(s, prev, path, &rep, why, sizeof why), -ESTALE);
		CHECK(strstr(why, "older copy") != NULL);
		/* the witness of the fork's own instance only: a copy's */
		f = fopen(path, "w");
		if (f) {
			cipher_hex(h, adm.head.hash, 32);
			fprintf(f, "commit store=%s instance=%s seq=%lld hash=%s\n", id,
			        inst, (long long)h0, h);
			fclose(f);
		}
		CHECK_EQ(witness_verify(s, prev, path, &rep, why, sizeof why), 0);
		CHECK_EQ(rep.checked, 1);
		unlink(path);
	}
	store_rollback(s);
	free(c);
	free(prev);
}

int main(void)
{
	struct unlock_opts ord, owr, ovi;
	char prd[160], pwr[160], pvi[160];
	int64_t id = 0, victim = 0;

	CHECK_EQ(cipher_init(), 0);
	if (unit_env_init(&e, "ledger") || unit_create(&e, NULL, &adm, NULL)) {
		fprintf(stderr, "test_ledger: cannot create a store\n");
		return 1;
	}
	CHECK_EQ(unit_user_add(&adm, "reader", ROLE_READER, "r-pass", &id), 0);
	CHECK_EQ(unit_user_add(&adm, "writer", ROLE_WRITER, "w-pass", &id), 0);
	CHECK_EQ(unit_user_add(&adm, "victim", ROLE_WRITER, "v-pass", &victim), 0);
	CHECK_EQ(unit_passfile(&e, "reader", "r-pass", prd, sizeof prd), 0);
	CHECK_EQ(unit_passfile(&e, "writer", "w-pass", pwr, sizeof pwr), 0);
	CHECK_EQ(unit_passfile(&e, "victim", "v-pass", pvi, sizeof pvi), 0);
	unit_opts(&e, &ord, "reader", prd);
	unit_opts(&e, &owr, "writer", pwr);
	unit_opts(&e, &ovi, "victim", pvi);
	CHECK_EQ(unit_login(&ord, &rd), EXIT_OK);
	CHECK_EQ(unit_login(&owr, &wr), EXIT_OK);
	CHECK_EQ(unit_login(&ovi, &vi), EXIT_OK);
	if (rd.ss && wr.ss && vi.ss) {
		CHECK(rd.ss->id > 0 && wr.ss->id > 0 && vi.ss->id > 0);
		refresh();
		test_parse();
		test_chain();
		test_anchor();
		test_stale();
		test_own_credential();
		test_rules(victim);
		test_witness_forks();
	}
	if (rd.s)
		unlock_free(&rd);
	if (wr.s)
		unlock_free(&wr);
	if (vi.s)
		unlock_free(&vi);
	(void)ad2;
	unlock_free(&adm);
	CHECK_EQ(unit_env_done(&e), 0);
	UNIT_END("test_ledger");
}
