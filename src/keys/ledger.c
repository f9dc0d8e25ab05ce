/*
 * ledger.c - commit records: encoding, signing, and the rules a record
 * must keep to follow the one before it (ledger.h).
 *
 * Record body (little endian, fixed layout, LEDGER_BODY bytes):
 *   "custodyfs.commit" version(1) store_id(16) seq(8) prev(32) time(8)
 *   roster_counter(8) roster_hash(32) inodes(4+32) dentries(4+32)
 *   creds(4+32) next_ino(8) audit_seq(8) audit_hash(32) instance(16)
 *   flags(4)
 * Signatures: count(1), then per signer session id(8) and Ed25519(64) over
 * ("custodyfs.cmtsig" || BLAKE2b(body)), signers in ascending id order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "cipher.h"
#include "ledger.h"
#include "rights.h"
#include "role.h"
#include "session.h"
#include "store.h"

#define COMMIT_MAGIC "custodyfs.commit"
#define COMMIT_VERSION 1
#define SIG_DOMAIN "custodyfs.cmtsig"
#define BASE_DOMAIN "custodyfs.ledbas"
#define ANCHOR_DOMAIN "custodyfs.anchor"
#define LEDGER_BODY (16 + 1 + 16 + 8 + 32 + 8 + 8 + 32 + 3 * 36 + 8 + 8 + 32 + \
                     16 + 4)

static void put_root(struct wbuf *w, const struct mtree_root *r)
{
	wbuf_u32(w, r->height);
	wbuf_bytes(w, r->hash, 32);
}

static void get_root(struct rbuf *b, struct mtree_root *r)
{
	r->height = rbuf_u32(b);
	rbuf_bytes(b, r->hash, 32);
}

static size_t encode(const struct ledger_commit *c, uint8_t out[LEDGER_BODY])
{
	struct wbuf w;

	wbuf_init(&w, out, LEDGER_BODY);
	wbuf_bytes(&w, COMMIT_MAGIC, 16);
	wbuf_u8(&w, COMMIT_VERSION);
	wbuf_bytes(&w, c->store_id, 16);
	wbuf_u64(&w, (uint64_t)c->seq);
	wbuf_bytes(&w, c->prev, 32);
	wbuf_u64(&w, (uint64_t)c->time);
	wbuf_u64(&w, c->st.roster_counter);
	wbuf_bytes(&w, c->st.roster_hash, 32);
	put_root(&w, &c->st.inodes);
	put_root(&w, &c->st.dentries);
	put_root(&w, &c->st.creds);
	wbuf_u64(&w, c->st.next_ino);
	wbuf_u64(&w, (uint64_t)c->st.audit_seq);
	wbuf_bytes(&w, c->st.audit_hash, 32);
	wbuf_bytes(&w, c->st.instance, 16);
	wbuf_u32(&w, c->st.flags);
	return w.err ? 0 : w.len;
}

static void body_hash(const uint8_t *body, size_t len, uint8_t out[32])
{
	struct cipher_part p = { body, len };
	cipher_hash(out, &p, 1);
}

int ledger_parse(const uint8_t *body, size_t len, const uint8_t *sigs,
                 size_t siglen, struct ledger_commit *out)
{
	struct rbuf b;
	const uint8_t *magic;
	size_t n;

	memset(out, 0, sizeof *out);
	if (len != LEDGER_BODY)
		return -EBADMSG;
	rbuf_init(&b, body, len);
	magic = rbuf_take(&b, 16);
	if (!magic || memcmp(magic, COMMIT_MAGIC, 16) ||
	    rbuf_u8(&b) != COMMIT_VERSION)
		return -EBADMSG;
	rbuf_bytes(&b, out->store_id, 16);
	out->seq = (int64_t)rbuf_u64(&b);
	rbuf_bytes(&b, out->prev, 32);
	out->time = (int64_t)rbuf_u64(&b);
	out->st.roster_counter = rbuf_u64(&b);
	rbuf_bytes(&b, out->st.roster_hash, 32);
	get_root(&b, &out->st.inodes);
	get_root(&b, &out->st.dentries);
	get_root(&b, &out->st.creds);
	out->st.next_ino = rbuf_u64(&b);
	out->st.audit_seq = (int64_t)rbuf_u64(&b);
	rbuf_bytes(&b, out->st.audit_hash, 32);
	rbuf_bytes(&b, out->st.instance, 16);
	out->st.flags = rbuf_u32(&b);
	if (!rbuf_done(&b) || out->seq < 1 || out->st.audit_seq < 0 ||
	    out->st.inodes.height > MTREE_MAX_HEIGHT ||
	    out->st.dentries.height > MTREE_MAX_HEIGHT ||
	    out->st.creds.height > MTREE_MAX_HEIGHT ||
	    (out->st.flags & ~LEDGER_FORK))
		return -EBADMSG;
	body_hash(body, len, out->hash);
	rbuf_init(&b, sigs, siglen);
	n = rbuf_u8(&b);
	if (n < 1 || n > LEDGER_MAX_SIGNERS)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		out->signer[i] = (int64_t)rbuf_u64(&b);
		rbuf_bytes(&b, out->sig[i], 64);
		if (out->signer[i] < 1 || (i && out->signer[i] <= out->signer[i - 1]))
			return -EBADMSG;
	}
	if (!rbuf_done(&b))
		return -EBADMSG;
	out->nsig = n;
	return 0;
}

int ledger_read(struct store *s, int64_t seq, struct ledger_commit *out)
{
	uint8_t body[STORE_COMMIT_BODY_MAX], *sigs = malloc(STORE_COMMIT_SIGS_MAX);
	uint8_t *proof = malloc(STORE_COMMIT_PROOF_MAX);
	size_t len, siglen, prooflen = 0;
	int rc;

	if (!sigs || !proof) {
		free(sigs);
		free(proof);
		return -ENOMEM;
	}
	rc = store_ledger_get(s, seq, body, sizeof body, &len, sigs,
	                      STORE_COMMIT_SIGS_MAX, &siglen, proof,
	                      STORE_COMMIT_PROOF_MAX, &prooflen);
	if (rc == -EIO)
		rc = -EBADMSG;
	if (!rc && prooflen > LEDGER_PROOF_MAX)
		rc = -EBADMSG;
	if (!rc) {
		rc = ledger_parse(body, len, sigs, siglen, out);
		out->prooflen = prooflen;
		if (prooflen)
			memcpy(out->proof, proof, prooflen);
		if (!rc && out->seq != seq)
			rc = -EBADMSG; /* a record moved to another row */
	}
	free(sigs);
	free(proof);
	return rc;
}

int ledger_head(struct store *s, struct ledger_commit *out)
{
	int64_t seq;
	int rc = store_ledger_last(s, &seq);

	if (rc)
		return rc;
	return ledger_read(s, seq, out);
}

static int by_id(const void *a, const void *b)
{
	const struct session *x = *(struct session *const *)a;
	const struct session *y = *(struct session *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

int ledger_append(struct store *s, const uint8_t store_id[16],
                  const struct ledger_commit *prev,
                  const struct ledger_state *st,
                  struct session *const *signers, size_t n,
                  const uint8_t *proof, size_t prooflen,
                  struct ledger_commit *out)
{
	struct ledger_commit *c = calloc(1, sizeof *c);
	struct session *sorted[LEDGER_MAX_SIGNERS];
	uint8_t body[LEDGER_BODY], *sigs = malloc(STORE_COMMIT_SIGS_MAX);
	struct timespec ts;
	struct wbuf w;
	size_t len, k = 0;
	int rc;

	if (!c || !sigs) {
		rc = -ENOMEM;
		goto out;
	}
	if (n < 1 || n > LEDGER_MAX_SIGNERS || prooflen > LEDGER_PROOF_MAX) {
		rc = -EINVAL;
		goto out;
	}
	c->prooflen = prooflen;
	if (prooflen)
		memcpy(c->proof, proof, prooflen);
	memcpy(sorted, signers, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, by_id);
	memcpy(c->store_id, store_id, 16);
	c->seq = prev ? prev->seq + 1 : 1;
	if (prev)
		memcpy(c->prev, prev->hash, 32);
	clock_gettime(CLOCK_REALTIME, &ts);
	c->time = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	c->st = *st;
	/* never a record the chain's own rules refuse (a caller that lost
	 * track of the head): nothing is appended */
	if (prev && (st->next_ino < prev->st.next_ino ||
	             st->audit_seq < prev->st.audit_seq ||
	             st->roster_counter < prev->st.roster_counter)) {
		rc = -EIO;
		goto out;
	}
	if (!(len = encode(c, body))) {
		rc = -EINVAL;
		goto out;
	}
	body_hash(body, len, c->hash);
	wbuf_init(&w, sigs, STORE_COMMIT_SIGS_MAX);
	wbuf_u8(&w, 0);
	for (size_t i = 0; i < n; i++) {
		if (sorted[i]->id < 1 || sorted[i]->ended) {
			/* a session without a row signs nothing; nor does one that
			 * ended (revoked, demoted, logged out): its key is wiped,
			 * and its user may no longer sign at all (a commit of
			 * housekeeping, such as a purge batch, after the mount's
			 * own session ended would break the chain for everyone) */
			rc = -EPERM;
			goto out;
		}
		if (k && sorted[i]->id == c->signer[k - 1])
			continue; /* the same session twice */
		c->signer[k] = sorted[i]->id;
		session_sign(sorted[i], SIG_DOMAIN, c->hash, 32, c->sig[k]);
		wbuf_u64(&w, (uint64_t)c->signer[k]);
		wbuf_bytes(&w, c->sig[k], 64);
		k++;
	}
	c->nsig = k;
	sigs[0] = (uint8_t)k;
	if (w.err) {
		rc = -EINVAL;
		goto out;
	}
	rc = store_ledger_put(s, c->seq, body, len, sigs, w.len, c->proof,
	                      c->prooflen);
	if (!rc && out)
		*out = *c;
out:
	free(sigs);
	free(c);
	return rc;
}

/* ---- checking ---- */

struct cached_session {
	int64_t id, user_id;
	uint64_t roster_counter;
	uint8_t pk[32];
	int bad;
};

struct ledger_cache {
	struct cached_session *v;
	size_t n, cap;
};

int ledger_cache_new(struct ledger_cache **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void ledger_cache_free(struct ledger_cache *c)
{
	if (!c)
		return;
	free(c->v);
	free(c);
}

/* The verified sessions row id (remembered in cache). */
static int session_of(struct store *s, const struct rights *r,
                      struct ledger_cache *cache, int64_t id,
                      struct cached_session *out)
{
	struct store_session row;
	const struct rights_user *u;
	int rc;

	if (cache) {
		size_t lo = 0, hi = cache->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (cache->v[mid].id == id) {
				*out = cache->v[mid];
				return out->bad ? -EBADMSG : 0;
			}
			if (cache->v[mid].id < id)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	memset(out, 0, sizeof *out);
	out->id = id;
	rc = store_session_get(s, id, &row);
	if (rc && rc != -ENOENT && rc != -EIO)
		return rc; /* a store error, not a verdict: do not remember */
	if (rc || session_row_verify(r, &row, &u))
		out->bad = 1;
	else {
		out->user_id = row.user_id;
		out->roster_counter = row.roster_counter;
		memcpy(out->pk, row.pk, 32);
	}
	if (cache) {
		size_t at = cache->n;
		if (cache->n == cache->cap) {
			size_t nc = cache->cap ? 2 * cache->cap : 64;
			struct cached_session *v = realloc(cache->v, nc * sizeof *v);
			if (v) {
				cache->v = v;
				cache->cap = nc;
			}
		}
		if (cache->n < cache->cap) {
			while (at > 0 && cache->v[at - 1].id > id) {
				cache->v[at] = cache->v[at - 1];
				at--;
			}
			cache->v[at] = *out;
			cache->n++;
		}
	}
	return out->bad ? -EBADMSG : 0;
}

int ledger_signer(struct store *s, const struct rights *r,
                  struct ledger_cache *cache, int64_t session,
                  uint64_t at, int64_t *user_id, int *role)
{
	struct cached_session cs;
	int rc = session_of(s, r, cache, session, &cs);

	if (rc)
		return rc;
	*user_id = cs.user_id;
	*role = (int)rights_role_at(rights_user(r, cs.user_id), at);
	return 0;
}

static int root_eq(const struct mtree_root *a, const struct mtree_root *b)
{
	return a->height == b->height && !memcmp(a->hash, b->hash, 32);
}

#define FAIL(...) do { if (why) snprintf(why, whylen, __VA_ARGS__); \
	return -EBADMSG; } while (0)

/* The commit's proof shows that only one leaf of the credentials tree
 * changed, and that leaf is a signer's own. */
static int own_credential(const struct ledger_commit *c,
                          const struct ledger_commit *prev,
                          const int64_t *users)
{
	uint64_t pos;

	if (c->prooflen < 8 + 32)
		return 0;
	pos = get_le64(c->proof);
	if (mtree_proof_check(MTREE_CREDS, pos, c->proof + 40, c->prooflen - 40,
	                      c->proof + 8, &prev->st.creds, &c->st.creds))
		return 0;
	for (size_t i = 0; i < c->nsig; i++)
		if (users[i] > 0 && (uint64_t)users[i] == pos)
			return 1;
	return 0;
}

int ledger_check(struct store *s, const struct rights *r,
                 struct ledger_cache *cache, const struct ledger_commit *prev,
                 const struct ledger_commit *c, char *why, size_t whylen)
{
	uint64_t at = prev ? prev->st.roster_counter : c->st.roster_counter;
	int writes = 0, admin = 0, fs_moved, roster_moved;
	int64_t users[LEDGER_MAX_SIGNERS];
	const struct rights_user *u;

	if (!cipher_memeq(c->store_id, r->store_id, 16))
		FAIL("commit %lld belongs to another store", (long long)c->seq);
	if (prev) {
		uint8_t zero[32] = { 0 };
		(void)zero;
		if (c->seq != prev->seq + 1 || !cipher_memeq(c->prev, prev->hash, 32))
			FAIL("commit %lld does not follow commit %lld: records were"
			     " removed, replaced or reordered", (long long)c->seq,
			     (long long)prev->seq);
	} else {
		uint8_t zero[32] = { 0 };
		if (c->seq != 1 || !cipher_memeq(c->prev, zero, 32))
			FAIL("commit %lld is not the first of the chain",
			     (long long)c->seq);
	}
	if (c->st.roster_counter > r->counter)
		FAIL("commit %lld names roster %llu, newer than the store's (%llu)",
		     (long long)c->seq, (unsigned long long)c->st.roster_counter,
		     (unsigned long long)r->counter);
	for (size_t i = 0; i < c->nsig; i++) {
		struct cached_session cs;
		enum role role;
		int rc = session_of(s, r, cache, c->signer[i], &cs);
		if (rc == -EBADMSG)
			FAIL("commit %lld is signed by session %lld, which no user of"
			     " the roster endorsed", (long long)c->seq,
			     (long long)c->signer[i]);
		if (rc)
			return rc;
		u = rights_user(r, cs.user_id);
		role = rights_role_at(u, at);
		if (!role_valid(role))
			FAIL("commit %lld is signed by session %lld of a user who was"
			     " not (or no longer) a user then", (long long)c->seq,
			     (long long)c->signer[i]);
		/* the rights (role and identity key) its endorsement was made
		 * under must be the ones in force: a session row names the
		 * counter it claims, and an identity key a reset replaced (or a
		 * role since changed) would otherwise sign on under today's */
		if (rights_sign_pk_at(u, at) != rights_sign_pk_at(u, cs.roster_counter))
			FAIL("commit %lld is signed by session %lld, endorsed under"
			     " rights of its user (role, identity key) that ended"
			     " before it", (long long)c->seq, (long long)c->signer[i]);
		if (cs.roster_counter > c->st.roster_counter)
			FAIL("commit %lld is signed by session %lld, which is newer"
			     " than it", (long long)c->seq, (long long)c->signer[i]);
		if (session_verify_sig(cs.pk, SIG_DOMAIN, c->hash, 32, c->sig[i]))
			FAIL("commit %lld: the signature of session %lld does not"
			     " verify", (long long)c->seq, (long long)c->signer[i]);
		writes |= role_writes(role);
		admin |= role_administers(role);
		users[i] = cs.user_id;
	}
	if (!prev) {
		if (!admin)
			FAIL("the first commit is not signed by an admin");
		return 0;
	}
	roster_moved = c->st.roster_counter != prev->st.roster_counter ||
	               !cipher_memeq(c->st.roster_hash, prev->st.roster_hash, 32);
	fs_moved = !root_eq(&c->st.inodes, &prev->st.inodes) ||
	           !root_eq(&c->st.dentries, &prev->st.dentries) ||
	           c->st.next_ino != prev->st.next_ino;
	if (c->st.roster_counter < prev->st.roster_counter)
		FAIL("commit %lld goes back to an older roster", (long long)c->seq);
	if (roster_moved && !admin)
		FAIL("commit %lld changes the roster without an admin's signature",
		     (long long)c->seq);
	if (!root_eq(&c->st.creds, &prev->st.creds) && !admin &&
	    !own_credential(c, prev, users))
		FAIL("commit %lld changes a credential that none of its signers"
		     " owns (only an admin changes another user's)",
		     (long long)c->seq);
	if (fs_moved && !writes)
		FAIL("commit %lld changes files, but none of its signers may write"
		     " (a reader's or auditor's session)", (long long)c->seq);
	if (c->st.next_ino < prev->st.next_ino)
		FAIL("commit %lld lowers the next inode number", (long long)c->seq);
	if (c->st.audit_seq < prev->st.audit_seq)
		FAIL("commit %lld cuts the audit trail back", (long long)c->seq);
	if (memcmp(c->st.instance, prev->st.instance, 16)) {
		if (!(c->st.flags & LEDGER_FORK) || fs_moved)
			FAIL("commit %lld changes the store instance outside a backup",
			     (long long)c->seq);
	} else if (c->st.flags & LEDGER_FORK)
		FAIL("commit %lld claims a fork but keeps the instance",
		     (long long)c->seq);
	return 0;
}

/* ---- the chain ---- */

/*
 * The prune record (meta "ledger_base"): seq(8) hash(32) epoch(8) and the
 * Ed25519 signature of the store authority of that epoch over
 * (BASE_DOMAIN, store id, epoch, seq, hash). It is a right like the
 * roster (it decides where the chain starts, and so what a user whose
 * seen commit was pruned must accept), so it is the authority's, verified
 * against the newest epoch only: a session's signature would let anyone
 * who was ever an admin vouch for a commit of their own, their session
 * claiming the roster counter of their admin days. An authority rotation
 * signs the (verified) record again under the new epoch
 * (ledger_base_resign).
 */
#define BASE_BYTES (8 + 32 + 8 + 64)

static size_t base_msg(uint8_t *out, const uint8_t store_id[16],
                       uint32_t epoch, int64_t seq, const uint8_t hash[32])
{
	struct wbuf w;

	wbuf_init(&w, out, 16 + 16 + 8 + 8 + 32);
	wbuf_bytes(&w, BASE_DOMAIN, 16);
	wbuf_bytes(&w, store_id, 16);
	wbuf_u64(&w, epoch);
	wbuf_u64(&w, (uint64_t)seq);
	wbuf_bytes(&w, hash, 32);
	return w.len;
}

static int write_base(struct store *s, const uint8_t store_id[16],
                      uint32_t epoch, const uint8_t *sk, int64_t seq,
                      const uint8_t hash[32])
{
	uint8_t rec[BASE_BYTES], msg[80];

	put_le64(rec, (uint64_t)seq);
	memcpy(rec + 8, hash, 32);
	put_le64(rec + 40, epoch);
	cipher_sign(rec + 48, msg, base_msg(msg, store_id, epoch, seq, hash), sk);
	return store_meta_set(s, "ledger_base", rec, sizeof rec);
}

int ledger_set_base(struct store *s, const struct rights *r,
                    const uint8_t *authority_sk,
                    const struct ledger_commit *base)
{
	uint8_t pk[32];

	if (!authority_sk)
		return -EPERM;
	cipher_sign_public(pk, authority_sk);
	if (!cipher_memeq(pk, r->authority_pk, 32))
		return -EPERM; /* not the authority the roster is under */
	return write_base(s, r->store_id, r->epoch, authority_sk, base->seq,
	                  base->hash);
}

/* The authority-signed base (seq, hash): 0, -ENOENT or -EBADMSG. */
static int read_base(struct store *s, const struct rights *r, int64_t *seq,
                     uint8_t hash[32])
{
	uint8_t rec[BASE_BYTES], msg[80];
	size_t n;
	int rc = store_meta_get(s, "ledger_base", rec, sizeof rec, &n);

	if (rc)
		return rc == -EIO ? -EBADMSG : rc;
	if (n != sizeof rec)
		return -EBADMSG;
	*seq = (int64_t)get_le64(rec);
	memcpy(hash, rec + 8, 32);
	if (get_le64(rec + 40) != r->epoch ||
	    cipher_sign_verify(rec + 48, msg,
	                       base_msg(msg, r->store_id, r->epoch, *seq, hash),
	                       r->authority_pk))
		return -EBADMSG;
	return 0;
}

int ledger_base_resign(struct store *s, const struct rights *r,
                       uint32_t epoch, const uint8_t *sk)
{
	int64_t seq;
	uint8_t hash[32];
	int rc = read_base(s, r, &seq, hash);

	if (rc == -ENOENT || rc == -EBADMSG)
		return 0; /* none, or none that verifies: nothing to vouch for */
	if (rc)
		return rc;
	return write_base(s, r->store_id, epoch, sk, seq, hash);
}

/*
 * The anchor (meta "roster_anchor", ledger.h): seq(8) hash(32) epoch(8)
 * counter(8) roster hash(32), then the Ed25519 signature of the roster's
 * authority over (ANCHOR_DOMAIN, store id, those fields).
 */
#define ANCHOR_FIELDS (8 + 32 + 8 + 8 + 32)
#define ANCHOR_BYTES (ANCHOR_FIELDS + 64)

static void anchor_msg(uint8_t out[16 + 16 + ANCHOR_FIELDS],
                       const uint8_t store_id[16], const uint8_t *fields)
{
	memcpy(out, ANCHOR_DOMAIN, 16);
	memcpy(out + 16, store_id, 16);
	memcpy(out + 32, fields, ANCHOR_FIELDS);
}

int ledger_anchor(struct store *s, const struct rights *r,
                  const uint8_t *authority_sk, const struct ledger_commit *c)
{
	uint8_t rec[ANCHOR_BYTES], msg[32 + ANCHOR_FIELDS], pk[32];

	if (!authority_sk)
		return -EPERM;
	cipher_sign_public(pk, authority_sk);
	if (!cipher_memeq(pk, r->authority_pk, 32) ||
	    c->st.roster_counter != r->counter ||
	    !cipher_memeq(c->st.roster_hash, r->hash, 32))
		return -EPERM; /* not this roster's authority, or not its commit */
	put_le64(rec, (uint64_t)c->seq);
	memcpy(rec + 8, c->hash, 32);
	put_le64(rec + 40, r->epoch);
	put_le64(rec + 48, r->counter);
	memcpy(rec + 56, r->hash, 32);
	anchor_msg(msg, r->store_id, rec);
	cipher_sign(rec + ANCHOR_FIELDS, msg, sizeof msg, authority_sk);
	return store_meta_set(s, "roster_anchor", rec, sizeof rec);
}

/* The anchor of r: 0 with the commit's (seq, hash), -EBADMSG when there is
 * none or it is not r's (another roster's, another authority's, edited). */
static int read_anchor(struct store *s, const struct rights *r, int64_t *seq,
                       uint8_t hash[32])
{
	uint8_t rec[ANCHOR_BYTES], msg[32 + ANCHOR_FIELDS];
	size_t n;
	int rc = store_meta_get(s, "roster_anchor", rec, sizeof rec, &n);

	if (rc)
		return rc == -EIO || rc == -ENOENT ? -EBADMSG : rc;
	anchor_msg(msg, r->store_id, rec);
	if (n != sizeof rec || get_le64(rec + 40) != r->epoch ||
	    get_le64(rec + 48) != r->counter ||
	    !cipher_memeq(rec + 56, r->hash, 32) ||
	    cipher_sign_verify(rec + ANCHOR_FIELDS, msg, sizeof msg,
	                       r->authority_pk))
		return -EBADMSG;
	*seq = (int64_t)get_le64(rec);
	memcpy(hash, rec + 8, 32);
	return *seq >= 1 ? 0 : -EBADMSG;
}

static int under_roster(const struct ledger_commit *c, const struct rights *r)
{
	return c->st.roster_counter == r->counter &&
	       cipher_memeq(c->st.roster_hash, r->hash, 32);
}

/* Does commit c settle the anchor (aseq, ahash)? 1 if it is the anchored
 * commit, 0 if not that one, -EBADMSG if it has its number but not its
 * hash or roster (a history that is not the one the authority saw). */
static int anchor_at(const struct ledger_commit *c, const struct rights *r,
                     int64_t aseq, const uint8_t ahash[32])
{
	if (c->seq != aseq)
		return 0;
	return cipher_memeq(c->hash, ahash, 32) && under_roster(c, r) ? 1
	                                                              : -EBADMSG;
}

/*
 * The chain from (from_seq, from_hash) (0: the oldest record kept) up to
 * the last record. With beyond NULL every record must verify. Otherwise a
 * record that does not verify after at least one that does ends the walk:
 * *head is the newest record that verifies (the signed head) and *beyond
 * the first one that does not (why names it); 0 is returned.
 */
static int verify_chain(struct store *s, const struct rights *r,
                        int64_t from_seq, const uint8_t *from_hash,
                        struct ledger_commit *head, int64_t *beyond,
                        void (*progress)(void *arg, uint64_t done,
                                         uint64_t total),
                        void *arg, char *why, size_t whylen)
{
	struct ledger_commit *prev = malloc(sizeof *prev);
	struct ledger_commit *c = malloc(sizeof *c);
	struct ledger_cache *cache = NULL;
	int64_t first, last, start, at = 0, aseq = 0;
	uint8_t ahash[32] = { 0 };
	int have_prev = 0, rc, anchored = 0, trusted = 0;

	if (why && whylen)
		why[0] = 0;
	if (beyond)
		*beyond = 0;
	if (!prev || !c || ledger_cache_new(&cache)) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = store_ledger_first(s, &first)) ||
	    (rc = store_ledger_last(s, &last))) {
		if (rc == -ENOENT && why)
			snprintf(why, whylen, "the store has no commit records");
		rc = rc == -ENOENT ? -EBADMSG : rc;
		goto out;
	}
	if (r->version < RIGHTS_VERSION_ANCHORED) {
		/* a roster of 0.2.0: every one its authority signed would pass,
		 * an ex-admin's replayed one with a history of their own too */
		if (!r->legacy_ok) {
			if (why)
				snprintf(why, whylen, "roster %llu was signed by custodyfs"
				         " 0.2.0, without an anchor binding it to this"
				         " history: an admin runs 'custodyctl upgrade' once",
				         (unsigned long long)r->counter);
			rc = -EBADMSG;
			goto out;
		}
		anchored = 1;
	} else if ((rc = read_anchor(s, r, &aseq, ahash))) {
		if (rc == -EBADMSG && why)
			snprintf(why, whylen, "roster %llu has no valid anchor: nothing"
			         " its authority signed says which history adopted it"
			         " (a history written by someone else)",
			         (unsigned long long)r->counter);
		goto out;
	}
	if (from_seq > 0) {
		if (from_seq > last) {
			if (why)
				snprintf(why, whylen, "its history ends at commit %lld, but"
				         " commit %lld was seen before: the file was rolled"
				         " back", (long long)last, (long long)from_seq);
			rc = -ESTALE;
			goto out;
		}
		if (from_seq >= first) {
			if ((rc = ledger_read(s, at = from_seq, prev)))
				goto bad_read;
			if (!cipher_memeq(prev->hash, from_hash, 32)) {
				if (why)
					snprintf(why, whylen, "commit %lld is not the one seen"
					         " before: the store was rolled back and changed"
					         " since, or replaced by another copy",
					         (long long)from_seq);
				rc = -ESTALE;
				goto out;
			}
			have_prev = trusted = 1;
			start = from_seq + 1;
		} else
			from_seq = 0; /* pruned since: the base vouches for it */
	}
	if (!have_prev) {
		if (first == 1) {
			if ((rc = ledger_read(s, at = 1, c)))
				goto bad_read;
			if ((rc = ledger_check(s, r, cache, NULL, c, why, whylen)))
				goto out;
			*prev = *c;
		} else {
			int64_t bseq = 0;
			uint8_t bhash[32];
			rc = read_base(s, r, &bseq, bhash);
			if (rc == -ENOENT || rc == -EBADMSG || bseq != first) {
				if (why)
					snprintf(why, whylen, "the chain starts at commit %lld"
					         " without a valid record of the prune that cut"
					         " it", (long long)first);
				rc = -EBADMSG;
				goto out;
			}
			if (rc)
				goto out;
			if ((rc = ledger_read(s, at = first, prev)))
				goto bad_read;
			if (!cipher_memeq(prev->hash, bhash, 32)) {
				if (why)
					snprintf(why, whylen, "commit %lld is not the one the"
					         " prune record names", (long long)first);
				rc = -EBADMSG;
				goto out;
			}
			trusted = 1; /* the authority's */
		}
		have_prev = 1;
		start = prev->seq + 1;
	}
	/* the start: the anchored commit itself, or one seen before (or the
	 * authority's prune base) that already lies under the roster */
	if (!anchored && (rc = anchor_at(prev, r, aseq, ahash)) != 0) {
		if (rc < 0)
			goto bad_anchor;
		anchored = 1;
	} else if (!anchored && trusted && aseq < prev->seq) {
		if (!under_roster(prev, r))
			goto bad_anchor;
		anchored = 1;
	}
	for (int64_t seq = start; seq <= last; seq++) {
		if ((rc = ledger_read(s, at = seq, c)))
			goto bad_read;
		if ((rc = ledger_check(s, r, cache, prev, c, why, whylen)))
			goto bad_record;
		if (!anchored && (rc = anchor_at(c, r, aseq, ahash)) != 0) {
			if (rc < 0)
				goto bad_anchor;
			anchored = 1;
		}
		*prev = *c;
		if (progress && (seq - start) % 1024 == 0)
			progress(arg, (uint64_t)(seq - start + 1),
			         (uint64_t)(last - start + 1));
	}
	if (!anchored)
		goto bad_anchor;
	*head = *prev;
	rc = 0;
	goto out;
bad_anchor:
	if (why)
		snprintf(why, whylen, "roster %llu was adopted at commit %lld, which"
		         " is not in this history: commits rewritten by someone"
		         " else than its authority", (unsigned long long)r->counter,
		         (long long)aseq);
	rc = -EBADMSG;
	goto out;
bad_read:
	if (rc != -ENOENT && rc != -EBADMSG)
		goto out;
	/* name the record that is missing or malformed, and the last one
	 * that is not (none before it: the start itself) */
	if (why) {
		if (have_prev)
			snprintf(why, whylen, "commit %lld is missing or malformed (the"
			         " chain verifies up to commit %lld)", (long long)at,
			         (long long)prev->seq);
		else
			snprintf(why, whylen, "commit %lld is missing or malformed",
			         (long long)at);
	}
	rc = -EBADMSG;
bad_record:
	/* a signed head short of the anchored commit is no head at all: the
	 * history is not the one the authority saw (a junk record after a
	 * forged chain must not turn the anchor's verdict into "damage") */
	if (rc == -EBADMSG && beyond && have_prev && at > prev->seq &&
	    !anchored) {
		if (why) {
			size_t l = strlen(why);
			snprintf(why + l, whylen - l, "; roster %llu was adopted at"
			         " commit %lld, beyond it: no signed head",
			         (unsigned long long)r->counter, (long long)aseq);
		}
		goto out;
	}
	if (rc == -EBADMSG && beyond && have_prev && at > prev->seq) {
		*head = *prev;
		*beyond = at;
		rc = 0;
	}
out:
	ledger_cache_free(cache);
	free(prev);
	free(c);
	return rc;
}

int ledger_verify(struct store *s, const struct rights *r,
                  int64_t from_seq, const uint8_t *from_hash,
                  struct ledger_commit *head,
                  void (*progress)(void *arg, uint64_t done, uint64_t total),
                  void *arg, char *why, size_t whylen)
{
	return verify_chain(s, r, from_seq, from_hash, head, NULL, progress, arg,
	                    why, whylen);
}

int ledger_verify_head(struct store *s, const struct rights *r,
                       int64_t from_seq, const uint8_t *from_hash,
                       struct ledger_commit *head, int64_t *beyond,
                       char *why, size_t whylen)
{
	return verify_chain(s, r, from_seq, from_hash, head, beyond, NULL, NULL,
	                    why, whylen);
}
