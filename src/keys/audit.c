/*
 * audit.c - appending to, verifying and reading the audit trail.
 *
 * Details (process name and path) are sealed with a per-session key; that
 * key is sealed to the audit public key of the active master-key version
 * (audit_keys table), whose secret half only admins and auditors hold. One
 * public-key operation per session, one XChaCha20-Poly1305 seal per row.
 *
 * The chain: mac_n = MAC(K_audit, mac_{n-1} || row_n) where row_n covers
 * every column. meta "audit_head" holds (seq, mac) of the last row with a
 * MAC over it, so cutting the tail is detected; meta "audit_base" holds the
 * (seq, mac) the chain starts from after a prune.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "cipher.h"
#include "keyring.h"
#include "store.h"

#define COMM_CACHE 64

struct comm_slot {
	uint32_t pid;
	int64_t when;
	char comm[17];
};

struct audit {
	struct store *s;
	const struct session *ss;
	uint8_t *mac_key;     /* borrowed from the session (locked) */
	uint8_t *sess_key;    /* locked; the detail key of this session */
	int64_t session_id;   /* 0: not created yet */
	const char *as_user;  /* row's user instead of the session's, if set */
	/* batch mode (the daemon's group transaction): the chain's last
	 * (seq, mac) is kept here and the head mark written once, by
	 * audit_batch_end() before the commit */
	int batch;
	int head_valid, head_dirty;
	int64_t head_seq;
	uint8_t head_mac[STORE_MAC_BYTES];
	uint32_t version;     /* version the session key is sealed under */
	struct comm_slot comm[COMM_CACHE];
};

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct active_ctx {
	const struct session *ss;
	struct store_key k;
	int found, bad;
};

static int find_active(void *arg, const struct store_key *k)
{
	struct active_ctx *c = arg;
	uint8_t row[256];
	size_t n = keyring_key_row_bytes(k, c->ss->store_id, row, sizeof row);

	if (!n || cipher_sign_verify(k->sig, row, n, c->ss->authority_pk)) {
		c->bad = 1;
		return 1;
	}
	if (!strcmp(k->status, "active")) {
		c->k = *k;
		c->found = 1;
	}
	return 0;
}

int audit_new(struct store *s, struct keyring *kr, const struct session *ss,
              int64_t mount_id, struct audit **out)
{
	struct audit *a;

	(void)kr;
	(void)mount_id;
	*out = NULL;
	if (!ss->audit_mac_key)
		return -EPERM;
	a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->sess_key = secmem_alloc(CIPHER_KEY_BYTES);
	if (!a->sess_key) {
		free(a);
		return -ENOMEM;
	}
	a->s = s;
	a->ss = ss;
	a->mac_key = ss->audit_mac_key;
	*out = a;
	return 0;
}

void audit_rekey(struct audit *a)
{
	if (a)
		a->session_id = 0;
}

void audit_free(struct audit *a)
{
	if (!a)
		return;
	secmem_free(a->sess_key);
	free(a);
}

/* Create this session's detail key, sealed to the active audit key. */
static int session_start(struct audit *a)
{
	struct active_ctx c = { a->ss, { 0 }, 0, 0 };
	uint8_t sealed[CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD];
	int rc = store_key_each(a->s, find_active, &c);

	if (rc < 0)
		return rc;
	if (c.bad)
		return -EBADMSG;
	if (!c.found)
		return -ENOKEY;
	cipher_random(a->sess_key, CIPHER_KEY_BYTES);
	if ((rc = cipher_box_seal(sealed, a->sess_key, CIPHER_KEY_BYTES,
	                          c.k.audit_pk)))
		return rc;
	if ((rc = store_audit_key_insert(a->s, c.k.version, sealed, sizeof sealed,
	                                 &a->session_id)))
		return rc;
	a->version = c.k.version;
	return 0;
}

static const char *comm_of(struct audit *a, uint32_t pid)
{
	struct comm_slot *sl = &a->comm[pid % COMM_CACHE];
	int64_t now = time(NULL);
	char path[64];
	ssize_t n;
	int fd;

	if (sl->pid == pid && now - sl->when < 2 && pid)
		return sl->comm;
	sl->pid = pid;
	sl->when = now;
	snprintf(sl->comm, sizeof sl->comm, "?");
	if (!pid)
		return sl->comm;
	snprintf(path, sizeof path, "/proc/%u/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, sl->comm, sizeof sl->comm - 1);
		close(fd);
		if (n > 0) {
			sl->comm[n] = 0;
			sl->comm[strcspn(sl->comm, "\n")] = 0;
		}
	}
	return sl->comm;
}

/* MAC of a row chained to prev. */
static void row_mac(const uint8_t *key, const uint8_t prev[STORE_MAC_BYTES],
                    const struct store_audit *r, uint8_t out[STORE_MAC_BYTES])
{
	uint8_t f[8 * 10];
	struct cipher_part p[6];

	le64(f, (uint64_t)r->seq);
	le64(f + 8, (uint64_t)r->time);
	le64(f + 16, r->uid);
	le64(f + 24, r->gid);
	le64(f + 32, r->pid);
	le64(f + 40, r->ino);
	le64(f + 48, r->offset);
	le64(f + 56, r->length);
	le64(f + 64, (uint64_t)r->result);
	le64(f + 72, (uint64_t)r->session);
	p[0] = (struct cipher_part){ prev, STORE_MAC_BYTES };
	p[1] = (struct cipher_part){ f, sizeof f };
	p[2] = (struct cipher_part){ r->user, strlen(r->user) };
	p[3] = (struct cipher_part){ r->op, strlen(r->op) };
	p[4] = (struct cipher_part){ r->detail, r->detaillen };
	p[5] = (struct cipher_part){ "custodyfs.audit", 15 };
	cipher_mac(out, key, p, 6);
}

/* (seq, mac) with a MAC over both, as stored in meta head/base. */
#define MARK_BYTES (8 + STORE_MAC_BYTES + STORE_MAC_BYTES)

static void mark_make(const uint8_t *key, const char *what, int64_t seq,
                      const uint8_t mac[STORE_MAC_BYTES], uint8_t *out)
{
	struct cipher_part p[2];

	le64(out, (uint64_t)seq);
	memcpy(out + 8, mac, STORE_MAC_BYTES);
	p[0] = (struct cipher_part){ what, strlen(what) };
	p[1] = (struct cipher_part){ out, 8 + STORE_MAC_BYTES };
	cipher_mac(out + 8 + STORE_MAC_BYTES, key, p, 2);
}

/* Read and check a mark: 0, -ENOENT (absent) or -EBADMSG. */
static int mark_read(struct store *s, const uint8_t *key, const char *what,
                     int64_t *seq, uint8_t mac[STORE_MAC_BYTES])
{
	uint8_t buf[MARK_BYTES], want[MARK_BYTES];
	size_t n;
	int rc = store_meta_get(s, what, buf, sizeof buf, &n);
	uint64_t v = 0;

	if (rc)
		return rc == -EIO ? -EBADMSG : rc;
	if (n != MARK_BYTES)
		return -EBADMSG;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | buf[i];
	mark_make(key, what, (int64_t)v, buf + 8, want);
	if (!cipher_memeq(want, buf, MARK_BYTES))
		return -EBADMSG;
	*seq = (int64_t)v;
	memcpy(mac, buf + 8, STORE_MAC_BYTES);
	return 0;
}

void audit_batch_begin(struct audit *a)
{
	if (!a)
		return;
	a->batch = 1;
	a->head_valid = a->head_dirty = 0;
}

int audit_batch_end(struct audit *a, int commit)
{
	uint8_t mark[MARK_BYTES];
	int rc = 0;

	if (!a)
		return 0;
	if (commit && a->head_dirty) {
		mark_make(a->mac_key, "audit_head", a->head_seq, a->head_mac, mark);
		rc = store_meta_set(a->s, "audit_head", mark, sizeof mark);
	}
	a->batch = 0;
	a->head_valid = a->head_dirty = 0;
	return rc;
}

static int append(struct audit *a, struct store_audit *r, const char *comm,
                  const char *path)
{
	struct store_audit *last = malloc(sizeof *last);
	uint8_t prev[STORE_MAC_BYTES] = { 0 }, mark[MARK_BYTES], ad[16];
	uint8_t plain[STORE_DETAIL_MAX];
	size_t cl = strlen(comm), pl = path ? strlen(path) : 0;
	int64_t base = 0;
	int rc;

	if (!last)
		return -ENOMEM;
	if (!a->session_id && (rc = session_start(a)))
		goto out;
	if (a->batch && a->head_valid) {
		r->seq = a->head_seq + 1;
		memcpy(prev, a->head_mac, sizeof prev);
		rc = 1; /* skip the lookup below */
	} else
		rc = store_audit_last(a->s, last);
	if (rc == 1) {
		rc = 0;
	} else if (rc == 0) {
		r->seq = last->seq + 1;
		memcpy(prev, last->mac, sizeof prev);
	} else if (rc == -ENOENT) {
		rc = mark_read(a->s, a->mac_key, "audit_base", &base, prev);
		if (rc == -ENOENT) {
			base = 0;
			memset(prev, 0, sizeof prev);
		} else if (rc)
			goto out;
		r->seq = base + 1;
	} else
		goto out;
	if (cl + 1 + pl + CIPHER_OVERHEAD > STORE_DETAIL_MAX)
		pl = STORE_DETAIL_MAX - CIPHER_OVERHEAD - cl - 1;
	memcpy(plain, comm, cl);
	plain[cl] = 0;
	if (pl)
		memcpy(plain + cl + 1, path, pl);
	snprintf(r->user, sizeof r->user, "%s", a->as_user ? a->as_user : a->ss->name);
	r->session = a->session_id;
	le64(ad, (uint64_t)r->seq);
	le64(ad + 8, (uint64_t)r->session);
	cipher_seal(r->detail, plain, cl + 1 + pl, ad, sizeof ad, a->sess_key);
	r->detaillen = cl + 1 + pl + CIPHER_OVERHEAD;
	cipher_wipe(plain, cl + 1 + pl);
	row_mac(a->mac_key, prev, r, r->mac);
	if ((rc = store_audit_insert(a->s, r)))
		goto out;
	if (a->batch) {
		a->head_valid = a->head_dirty = 1;
		a->head_seq = r->seq;
		memcpy(a->head_mac, r->mac, sizeof a->head_mac);
		goto out;
	}
	mark_make(a->mac_key, "audit_head", r->seq, r->mac, mark);
	rc = store_meta_set(a->s, "audit_head", mark, sizeof mark);
out:
	free(last);
	return rc;
}

int audit_record_at(struct audit *a, const struct audit_who *c, int64_t when_ns,
                    const char *op, uint64_t ino, const char *name,
                    uint64_t off, uint64_t len, int result)
{
	struct store_audit *r = calloc(1, sizeof *r);
	int rc;

	if (!r)
		return -ENOMEM;
	r->time = when_ns;
	r->uid = c->uid;
	r->gid = c->gid;
	r->pid = c->pid;
	snprintf(r->op, sizeof r->op, "%s", op);
	r->ino = ino;
	r->offset = off;
	r->length = len;
	r->result = result;
	rc = append(a, r, comm_of(a, c->pid), name);
	free(r);
	return rc;
}

int audit_record(struct audit *a, const struct audit_who *c, const char *op,
                 uint64_t ino, const char *name, uint64_t off, uint64_t len,
                 int result)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return audit_record_at(a, c, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
	                       op, ino, name, off, len, result);
}

static int adopt_one(void *arg, int64_t when, const char *user,
                     const char *event, int64_t pid)
{
	struct audit *a = arg;
	struct audit_who c = { 0, 0, (uint32_t)pid };
	char what[160], t[32];
	time_t tt = (time_t)when;
	struct tm tm;
	int rc;

	gmtime_r(&tt, &tm);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(what, sizeof what, "user %s at %s", user, t);
	a->as_user = user; /* the row names who failed, not who recorded it */
	rc = audit_record(a, &c, event, 0, what, 0, 0, -EACCES);
	a->as_user = NULL;
	return rc ? 1 : 0;
}

int audit_adopt_auth_events(struct audit *a)
{
	int rc = store_auth_event_take(a->s, adopt_one, a);
	return rc > 0 ? -EIO : rc;
}

int audit_admin(struct audit *a, const char *op, const char *target,
                int result)
{
	struct audit_who c = { (uint32_t)getuid(), (uint32_t)getgid(),
	                    (uint32_t)getpid() };
	return audit_record(a, &c, op, 0, target, 0, 0, result);
}

/* ---- verification ---- */

struct verify_ctx {
	const uint8_t *key;
	uint8_t prev[STORE_MAC_BYTES];
	int64_t expect;
	int64_t bad;
	uint64_t rows;
	char *why;
	size_t whylen;
};

static int verify_row(void *arg, const struct store_audit *r)
{
	struct verify_ctx *v = arg;
	uint8_t mac[STORE_MAC_BYTES];

	if (!r->op[0]) {
		v->bad = r->seq;
		snprintf(v->why, v->whylen, "row %lld is malformed",
		         (long long)r->seq);
		return 1;
	}
	if (r->seq != v->expect) {
		v->bad = r->seq;
		snprintf(v->why, v->whylen, "row %lld follows row %lld: rows"
		         " were deleted or inserted", (long long)r->seq,
		         (long long)(v->expect - 1));
		return 1;
	}
	row_mac(v->key, v->prev, r, mac);
	if (!cipher_memeq(mac, r->mac, sizeof mac)) {
		v->bad = r->seq;
		snprintf(v->why, v->whylen, "row %lld fails its MAC: edited,"
		         " replaced or reordered", (long long)r->seq);
		return 1;
	}
	memcpy(v->prev, r->mac, sizeof mac);
	v->expect++;
	v->rows++;
	return 0;
}

int audit_verify(struct store *s, const uint8_t *mac_key, int64_t *bad_seq,
                 uint64_t *rows, char *why, size_t whylen)
{
	struct verify_ctx v = { mac_key, { 0 }, 1, 0, 0, why, whylen };
	uint8_t head_mac[STORE_MAC_BYTES];
	int64_t base = 0, head = 0;
	int rc;

	*bad_seq = 0;
	*rows = 0;
	why[0] = 0;
	rc = mark_read(s, mac_key, "audit_base", &base, v.prev);
	if (rc == -ENOENT)
		base = 0;
	else if (rc) {
		snprintf(why, whylen, "the chain's start mark is damaged");
		return -EBADMSG;
	}
	v.expect = base + 1;
	rc = store_audit_each(s, base, verify_row, &v);
	*rows = v.rows;
	if (v.bad) {
		*bad_seq = v.bad;
		return -EBADMSG;
	}
	if (rc < 0)
		return rc;
	rc = mark_read(s, mac_key, "audit_head", &head, head_mac);
	if (rc == -ENOENT && v.rows == 0) {
		/* init writes the first row: an empty trail without a head
		 * means rows and head were deleted together */
		*bad_seq = v.expect;
		snprintf(why, whylen, "the trail is empty and its head mark is"
		         " gone: every row was deleted");
		return -EBADMSG;
	}
	if (rc) {
		*bad_seq = v.expect;
		snprintf(why, whylen, "the chain's head mark is missing or damaged");
		return -EBADMSG;
	}
	if (head != v.expect - 1 ||
	    !cipher_memeq(head_mac, v.prev, sizeof head_mac)) {
		*bad_seq = v.expect;
		snprintf(why, whylen, "the trail ends at row %lld but its head"
		         " says %lld: rows were cut from the end",
		         (long long)(v.expect - 1), (long long)head);
		return -EBADMSG;
	}
	return 0;
}

struct first_ctx {
	struct store_audit *r;
	int found;
};

static int take_first(void *arg, const struct store_audit *a)
{
	struct first_ctx *f = arg;

	*f->r = *a;
	f->found = 1;
	return 1;
}

int audit_prune(struct store *s, const uint8_t *mac_key, int64_t before_seq,
                uint64_t *removed)
{
	struct store_audit *r = malloc(sizeof *r);
	struct first_ctx f = { r, 0 };
	uint8_t mark[MARK_BYTES];
	uint64_t n0 = 0, n1 = 0;
	int rc;

	*removed = 0;
	if (!r)
		return -ENOMEM;
	/* the new chain start is the last pruned row's (seq, mac) */
	rc = store_audit_each(s, before_seq - 2, take_first, &f);
	if (rc < 0)
		goto out;
	rc = 0;
	if (!f.found || r->seq != before_seq - 1)
		goto out; /* nothing older than before_seq */
	mark_make(mac_key, "audit_base", r->seq, r->mac, mark);
	if ((rc = store_audit_count(s, &n0)) ||
	    (rc = store_meta_set(s, "audit_base", mark, sizeof mark)) ||
	    (rc = store_audit_delete_before(s, before_seq)) ||
	    (rc = store_audit_count(s, &n1)))
		goto out;
	*removed = n0 - n1;
out:
	free(r);
	return rc;
}

/* ---- reading details ---- */

#define READER_KEYS 64

struct audit_reader {
	struct store *s;
	const struct session *ss;
	struct {
		int64_t id;
		int ok;
		uint8_t *key;
	} cache[READER_KEYS];
};

int audit_reader_new(struct store *s, const struct session *ss,
                     struct audit_reader **out)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return -ENOMEM;
	(*out)->s = s;
	(*out)->ss = ss;
	return 0;
}

void audit_reader_free(struct audit_reader *r)
{
	if (!r)
		return;
	for (int i = 0; i < READER_KEYS; i++)
		secmem_free(r->cache[i].key);
	free(r);
}

static const uint8_t *reader_key(struct audit_reader *r, int64_t id)
{
	int slot = (int)((uint64_t)id % READER_KEYS);
	uint8_t sealed[CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD];
	uint8_t *ask = NULL, pk[CIPHER_BOX_PK_BYTES];
	struct store_grant g;
	struct store_key k;
	uint32_t v;
	size_t n;

	if (r->cache[slot].key && r->cache[slot].id == id)
		return r->cache[slot].ok ? r->cache[slot].key : NULL;
	if (!r->cache[slot].key &&
	    !(r->cache[slot].key = secmem_alloc(CIPHER_KEY_BYTES)))
		return NULL;
	r->cache[slot].id = id;
	r->cache[slot].ok = 0;
	if (store_audit_key_get(r->s, id, &v, sealed, sizeof sealed, &n) ||
	    n != sizeof sealed || store_key_get(r->s, v, &k) ||
	    store_grant_get(r->s, r->ss->user_id, v, "audit", &g) ||
	    g.sealedlen != CIPHER_BOX_SK_BYTES + CIPHER_BOX_OVERHEAD)
		return NULL;
	ask = secmem_alloc(CIPHER_BOX_SK_BYTES);
	if (!ask)
		return NULL;
	memcpy(pk, k.audit_pk, sizeof pk);
	if (cipher_box_open(ask, g.sealed, g.sealedlen, r->ss->box_pk,
	                    r->ss->box_sk) == 0 &&
	    cipher_box_open(r->cache[slot].key, sealed, n, pk, ask) == 0)
		r->cache[slot].ok = 1;
	secmem_free(ask);
	return r->cache[slot].ok ? r->cache[slot].key : NULL;
}

int audit_reader_detail(struct audit_reader *r, const struct store_audit *a,
                        char *comm, size_t commlen, char *path,
                        size_t pathlen)
{
	const uint8_t *key = reader_key(r, a->session);
	uint8_t plain[STORE_DETAIL_MAX], ad[16];
	size_t n, cl;

	comm[0] = path[0] = 0;
	if (!key)
		return -EACCES;
	if (a->detaillen < CIPHER_OVERHEAD + 1 || a->detaillen > STORE_DETAIL_MAX)
		return -EIO;
	le64(ad, (uint64_t)a->seq);
	le64(ad + 8, (uint64_t)a->session);
	if (cipher_open(plain, a->detail, a->detaillen, ad, sizeof ad, key))
		return -EIO;
	n = a->detaillen - CIPHER_OVERHEAD;
	cl = strnlen((char *)plain, n);
	snprintf(comm, commlen, "%.*s", (int)cl, (char *)plain);
	if (cl + 1 < n)
		snprintf(path, pathlen, "%.*s", (int)(n - cl - 1),
		         (char *)plain + cl + 1);
	cipher_wipe(plain, n);
	return 0;
}

int audit_reseal_sessions(struct store *s, const struct session *ss,
                          uint32_t active, size_t limit, uint64_t *moved)
{
	struct store_stale *st = calloc(limit, sizeof *st);
	uint8_t sealed[CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD];
	uint8_t *ask = secmem_alloc(CIPHER_BOX_SK_BYTES + CIPHER_KEY_BYTES);
	struct store_key newk, oldk;
	struct store_grant g;
	size_t n = 0, len;
	uint32_t v;
	int rc;

	*moved = 0;
	if (!st || !ask) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = store_key_get(s, active, &newk)) ||
	    (rc = store_stale(s, 'k', active, limit, st, &n)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint8_t *key = ask + CIPHER_BOX_SK_BYTES;
		if ((rc = store_audit_key_get(s, st[i].a, &v, sealed, sizeof sealed,
		                              &len)) ||
		    (rc = store_key_get(s, v, &oldk)) ||
		    (rc = store_grant_get(s, ss->user_id, v, "audit", &g)))
			goto out;
		if (len != sizeof sealed ||
		    g.sealedlen != CIPHER_BOX_SK_BYTES + CIPHER_BOX_OVERHEAD ||
		    cipher_box_open(ask, g.sealed, g.sealedlen, ss->box_pk,
		                    ss->box_sk) ||
		    cipher_box_open(key, sealed, len, oldk.audit_pk, ask)) {
			rc = -EBADMSG;
			goto out;
		}
		if ((rc = cipher_box_seal(sealed, key, CIPHER_KEY_BYTES,
		                          newk.audit_pk)) ||
		    (rc = store_audit_key_update(s, st[i].a, active, sealed,
		                                 sizeof sealed)))
			goto out;
		(*moved)++;
	}
out:
	secmem_free(ask);
	free(st);
	return rc;
}
