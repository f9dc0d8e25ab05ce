/*
 * session.c - session keys and their endorsement (session.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "cipher.h"
#include "keyring.h"
#include "rights.h"
#include "session.h"
#include "store.h"

#define ENDORSE_DOMAIN "custodyfs.sessio"
#define DETAIL_DOMAIN "custodyfs.detail"

struct session *session_new(void)
{
	struct session *ss = calloc(1, sizeof *ss);

	if (!ss)
		return NULL;
	ss->box_sk = secmem_alloc(CIPHER_BOX_SK_BYTES);
	ss->sign_sk = secmem_alloc(CIPHER_SIGN_SK_BYTES);
	ss->sk = secmem_alloc(CIPHER_SIGN_SK_BYTES);
	ss->detail_key = secmem_alloc(CIPHER_KEY_BYTES);
	if (!ss->box_sk || !ss->sign_sk || !ss->sk || !ss->detail_key ||
	    keyring_new(&ss->kr)) {
		session_free(ss);
		return NULL;
	}
	return ss;
}

void session_free(struct session *ss)
{
	if (!ss)
		return;
	keyring_free(ss->kr);
	secmem_free(ss->box_sk);
	secmem_free(ss->sign_sk);
	secmem_free(ss->authority_sk);
	secmem_free(ss->sk);
	secmem_free(ss->detail_key);
	cipher_wipe(ss, sizeof *ss);
	free(ss);
}

void session_forget_identity(struct session *ss)
{
	secmem_free(ss->sign_sk);
	secmem_free(ss->authority_sk);
	ss->sign_sk = NULL;
	ss->authority_sk = NULL;
}

void session_end(struct session *ss)
{
	keyring_clear(ss->kr);
	cipher_wipe(ss->box_sk, CIPHER_BOX_SK_BYTES);
	cipher_wipe(ss->sk, CIPHER_SIGN_SK_BYTES);
	cipher_wipe(ss->detail_key, CIPHER_KEY_BYTES);
	session_forget_identity(ss);
	ss->ended = 1;
}

int session_follow(struct session *ss, struct store *s, const struct rights *r)
{
	const struct rights_user *me = rights_user(r, ss->user_id);
	uint32_t v = rights_active(r);

	if (ss->ended)
		return -EACCES;
	if (!me || rights_role(me) != ss->role ||
	    !cipher_memeq(rights_sign_pk(me), ss->sign_pk, 32) ||
	    !cipher_memeq(me->box_pk, ss->box_pk, 32))
		goto end;
	if (keyring_load(ss->kr, s, r, ss->user_id, ss->box_pk, ss->box_sk))
		goto end;
	if (role_holds_data(ss->role) && v && !keyring_cipher(ss->kr, v))
		goto end; /* revoked: every other holder got the new version */
	return 0;
end:
	session_end(ss);
	return -EACCES;
}

void session_detail_hash(const uint8_t store_id[16], int64_t id,
                         const uint8_t key[32], uint8_t out[32])
{
	uint8_t idb[8];
	struct cipher_part p[4];

	put_le64(idb, (uint64_t)id);
	p[0] = (struct cipher_part){ DETAIL_DOMAIN, 16 };
	p[1] = (struct cipher_part){ store_id, 16 };
	p[2] = (struct cipher_part){ idb, sizeof idb };
	p[3] = (struct cipher_part){ key, 32 };
	cipher_hash(out, p, 4);
}

/* What a user's identity signs for a session: the session key, where and
 * what it runs, and the commitment to its audit detail key (the sealed
 * key itself is not covered: reencrypt seals it again under a newer
 * version). */
static size_t endorsement_msg(uint8_t *out, size_t cap,
                              const uint8_t store_id[16],
                              const struct store_session *row)
{
	struct wbuf w;

	wbuf_init(&w, out, cap);
	wbuf_bytes(&w, ENDORSE_DOMAIN, 16);
	wbuf_bytes(&w, store_id, 16);
	wbuf_u64(&w, (uint64_t)row->id);
	wbuf_u64(&w, (uint64_t)row->user_id);
	wbuf_u64(&w, row->roster_counter);
	wbuf_u64(&w, (uint64_t)row->started);
	wbuf_bytes(&w, row->pk, 32);
	wbuf_str(&w, row->host);
	wbuf_u64(&w, (uint64_t)row->pid);
	wbuf_str(&w, row->kind);
	wbuf_bytes(&w, row->detail_hash, 32);
	return w.err ? 0 : w.len;
}

int session_start(struct session *ss, struct store *s, const struct rights *r,
                  const char *kind, int64_t pid)
{
	struct store_session row;
	const struct rights_key *k = NULL;
	uint8_t msg[512];
	uint32_t v = rights_active(r);
	size_t n;
	int rc;

	if (!ss->sign_sk)
		return -EPERM;
	cipher_sign_keypair(ss->pk, ss->sk);
	cipher_random(ss->detail_key, CIPHER_KEY_BYTES);
	ss->id = 0;
	if (store_readonly(s))
		return 0;
	memset(&row, 0, sizeof row);
	if ((rc = store_session_next_id(s, &row.id)))
		return rc;
	row.user_id = ss->user_id;
	row.roster_counter = r->counter;
	row.started = time(NULL);
	memcpy(row.pk, ss->pk, 32);
	gethostname(row.host, sizeof row.host - 1);
	row.pid = pid;
	snprintf(row.kind, sizeof row.kind, "%s", kind);
	session_detail_hash(ss->store_id, row.id, ss->detail_key,
	                    row.detail_hash);
	/* the detail key goes to the active version's audit key, else the
	 * newest's (an expired store still records who did what) */
	if (!v)
		v = rights_newest(r);
	if (v)
		k = rights_key(r, v);
	if (k) {
		if ((rc = cipher_box_seal(row.detail, ss->detail_key,
		                          CIPHER_KEY_BYTES, k->audit_pk)))
			return rc;
		row.detaillen = CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD;
		row.detail_version = v;
	}
	if (!(n = endorsement_msg(msg, sizeof msg, ss->store_id, &row)))
		return -EINVAL;
	cipher_sign(row.endorsement, msg, n, ss->sign_sk);
	if ((rc = store_session_insert(s, &row)))
		return rc;
	ss->id = row.id;
	ss->detail_version = row.detail_version;
	return 0;
}

static size_t domain_msg(uint8_t **buf, const char domain[16],
                         const uint8_t *msg, size_t len)
{
	*buf = malloc(16 + len);
	if (!*buf)
		return 0;
	memcpy(*buf, domain, 16);
	memcpy(*buf + 16, msg, len);
	return 16 + len;
}

void session_sign(const struct session *ss, const char domain[16],
                  const uint8_t *msg, size_t len, uint8_t sig[64])
{
	uint8_t small[256 + 16], *buf = small;
	size_t n = 16 + len;

	if (len > 256 && !(n = domain_msg(&buf, domain, msg, len))) {
		memset(sig, 0, 64); /* out of memory: a signature nobody accepts */
		return;
	}
	if (buf == small) {
		memcpy(small, domain, 16);
		memcpy(small + 16, msg, len);
	}
	cipher_sign(sig, buf, n, ss->sk);
	if (buf != small)
		free(buf);
}

int session_verify_sig(const uint8_t pk[32], const char domain[16],
                       const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	uint8_t small[256 + 16], *buf = small;
	size_t n = 16 + len;
	int rc;

	if (len > 256 && !(n = domain_msg(&buf, domain, msg, len)))
		return -ENOMEM;
	if (buf == small) {
		memcpy(small, domain, 16);
		memcpy(small + 16, msg, len);
	}
	rc = cipher_sign_verify(sig, buf, n, pk);
	if (buf != small)
		free(buf);
	return rc;
}

int session_row_verify(const struct rights *r, const struct store_session *row,
                       const struct rights_user **user)
{
	const struct rights_user *u = rights_user(r, row->user_id);
	const uint8_t *pk = u ? rights_sign_pk_at(u, row->roster_counter) : NULL;
	uint8_t msg[512];
	size_t n;

	*user = NULL;
	if (!pk || row->roster_counter > r->counter)
		return -EBADMSG;
	n = endorsement_msg(msg, sizeof msg, r->store_id, row);
	if (!n || cipher_sign_verify(row->endorsement, msg, n, pk))
		return -EBADMSG;
	*user = u;
	return 0;
}
