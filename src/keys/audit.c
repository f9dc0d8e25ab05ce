/*
 * audit.c - appending to, verifying and reading the audit trail (audit.h).
 *
 * Row hash: BLAKE2b-256 of "custodyfs.audit\0", the previous row's hash,
 * then every column in a fixed layout (bytes.h). Details (process name,
 * NUL, path) are sealed with the recording session's detail key under
 * associated data (seq, session), so a detail cannot be moved to another
 * row either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "bytes.h"
#include "cipher.h"
#include "grant.h"
#include "ledger.h"
#include "rights.h"
#include "role.h"
#include "session.h"
#include "store.h"

#define COMM_CACHE 64

struct comm_slot {
	uint32_t pid;
	int64_t when;
	char comm[17];
};

struct audit_trail {
	struct store *s;
	int64_t seq;                 /* the chain's head in the open tx */
	uint8_t hash[32];
	struct session *signers[LEDGER_MAX_SIGNERS];
	size_t nsigners;
	struct comm_slot comm[COMM_CACHE];
};

int audit_trail_new(struct store *s, struct audit_trail **out)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return -ENOMEM;
	(*out)->s = s;
	return 0;
}

void audit_trail_free(struct audit_trail *t)
{
	free(t);
}

void audit_trail_begin(struct audit_trail *t, const struct ledger_commit *head)
{
	t->nsigners = 0;
	if (head) {
		t->seq = head->st.audit_seq;
		memcpy(t->hash, head->st.audit_hash, 32);
	} else {
		t->seq = 0;
		memset(t->hash, 0, 32);
	}
}

void audit_trail_head(const struct audit_trail *t, int64_t *seq,
                      uint8_t hash[32])
{
	*seq = t->seq;
	memcpy(hash, t->hash, 32);
}

size_t audit_trail_signers(const struct audit_trail *t, struct session **out,
                           size_t cap)
{
	size_t n = t->nsigners < cap ? t->nsigners : cap;

	if (n)
		memcpy(out, t->signers, n * sizeof *out);
	return t->nsigners;
}

size_t audit_trail_new_signers(const struct audit_trail *t,
                               struct session *const *ss, size_t n)
{
	size_t add = 0;

	for (size_t i = 0; i < n; i++) {
		int seen = !ss[i];
		for (size_t j = 0; !seen && j < t->nsigners; j++)
			seen = t->signers[j] == ss[i];
		for (size_t j = 0; !seen && j < i; j++)
			seen = ss[j] == ss[i];
		add += !seen;
	}
	return add;
}

int audit_trail_sign(struct audit_trail *t, struct session *ss)
{
	if (ss->id < 1 || ss->ended)
		return -EPERM; /* an ended session's key is gone */
	for (size_t i = 0; i < t->nsigners; i++)
		if (t->signers[i] == ss)
			return 0;
	if (t->nsigners == LEDGER_MAX_SIGNERS)
		return -ENOSPC; /* the caller commits first */
	t->signers[t->nsigners++] = ss;
	return 0;
}

static const char *comm_of(struct audit_trail *t, uint32_t pid)
{
	struct comm_slot *sl = &t->comm[pid % COMM_CACHE];
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

/* The chain hash of row r after prev. */
static void row_hash(const uint8_t prev[32], const struct store_audit *r,
                     uint8_t out[32])
{
	uint8_t f[8 * 11 + 4];
	uint8_t ul = (uint8_t)strlen(r->user), ol = (uint8_t)strlen(r->op);
	struct cipher_part p[6];

	put_le64(f, (uint64_t)r->seq);
	put_le64(f + 8, (uint64_t)r->time);
	put_le64(f + 16, (uint64_t)r->session);
	put_le64(f + 24, r->uid);
	put_le64(f + 32, r->gid);
	put_le64(f + 40, r->pid);
	put_le64(f + 48, r->ino);
	put_le64(f + 56, r->offset);
	put_le64(f + 64, r->length);
	put_le64(f + 72, (uint64_t)r->result);
	f[80] = ul;
	f[81] = ol;
	put_le16(f + 82, 0);
	put_le64(f + 84, r->detaillen);
	p[0] = (struct cipher_part){ "custodyfs.audit", 16 };
	p[1] = (struct cipher_part){ prev, 32 };
	p[2] = (struct cipher_part){ f, sizeof f };
	p[3] = (struct cipher_part){ r->user, ul };
	p[4] = (struct cipher_part){ r->op, ol };
	p[5] = (struct cipher_part){ r->detail, r->detaillen };
	cipher_hash(out, p, 6);
}

static int append(struct audit_trail *t, struct session *ss, const char *user,
                  const struct audit_who *w, int64_t when_ns, const char *op,
                  uint64_t ino, const char *comm, const char *path,
                  uint64_t off, uint64_t len, int result)
{
	struct store_audit *r;
	uint8_t ad[16], *plain;
	size_t cl = strlen(comm), pl = path ? strlen(path) : 0;
	int rc;

	if (ss->id < 1)
		return -EPERM; /* an unrecorded session appends nothing */
	if ((rc = audit_trail_sign(t, ss)))
		return rc;
	if (!(r = calloc(1, sizeof *r)))
		return -ENOMEM;
	if (!(plain = malloc(STORE_DETAIL_MAX))) {
		free(r);
		return -ENOMEM;
	}
	if (!when_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		when_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (cl > 16)
		cl = 16;
	if (cl + 1 + pl + CIPHER_OVERHEAD > STORE_DETAIL_MAX)
		pl = STORE_DETAIL_MAX - CIPHER_OVERHEAD - cl - 1;
	r->seq = t->seq + 1;
	r->time = when_ns;
	snprintf(r->user, sizeof r->user, "%s", user);
	r->session = ss->id;
	r->uid = w->uid;
	r->gid = w->gid;
	r->pid = w->pid;
	snprintf(r->op, sizeof r->op, "%s", op);
	r->ino = ino;
	r->offset = off;
	r->length = len;
	r->result = result;
	memcpy(plain, comm, cl);
	plain[cl] = 0;
	if (pl)
		memcpy(plain + cl + 1, path, pl);
	put_le64(ad, (uint64_t)r->seq);
	put_le64(ad + 8, (uint64_t)r->session);
	cipher_seal(r->detail, plain, cl + 1 + pl, ad, sizeof ad, ss->detail_key);
	r->detaillen = cl + 1 + pl + CIPHER_OVERHEAD;
	cipher_wipe(plain, cl + 1 + pl);
	row_hash(t->hash, r, r->hash);
	rc = store_audit_insert(t->s, r);
	if (!rc) {
		t->seq = r->seq;
		memcpy(t->hash, r->hash, 32);
	}
	free(plain);
	free(r);
	return rc;
}

int audit_append(struct audit_trail *t, struct session *ss,
                 const struct audit_who *w, int64_t when_ns, const char *op,
                 uint64_t ino, const char *path, uint64_t off, uint64_t len,
                 int result)
{
	return append(t, ss, ss->name, w, when_ns, op, ino, comm_of(t, w->pid),
	              path, off, len, result);
}

int audit_append_about(struct audit_trail *t, struct session *ss,
                       const char *user, const struct audit_who *w,
                       int64_t when_ns, const char *op, const char *what,
                       int result)
{
	return append(t, ss, user, w, when_ns, op, 0, comm_of(t, w->pid), what,
	              0, 0, result);
}

int audit_append_carried(struct audit_trail *t, struct session *ss,
                         const char *user, const struct audit_who *w,
                         int64_t when_ns, const char *op, uint64_t ino,
                         const char *comm, const char *path, uint64_t off,
                         uint64_t len, int result)
{
	return append(t, ss, user, w, when_ns, op, ino, comm, path, off, len,
	              result);
}

int audit_command(struct audit_trail *t, struct session *ss, const char *op,
                  const char *target, int result)
{
	struct audit_who w = { (uint32_t)getuid(), (uint32_t)getgid(),
	                       (uint32_t)getpid() };
	return audit_append(t, ss, &w, 0, op, 0, target, 0, 0, result);
}

#define ADOPT_MAX 4096          /* events one login takes into the trail */
#define ADOPT_PID_MAX 4194304   /* PID_MAX_LIMIT */
#define ADOPT_FUTURE_S 86400    /* clock skew between hosts */

struct adopt_ctx {
	struct audit_trail *t;
	struct session *ss;
	int64_t now;
	uint64_t adopted, dropped;
};

/* What count_failure (auth.c) queues, and nothing else: a failed or
 * refused login or a lockout, of a well-formed user name, at a time that
 * is not before the epoch or in the future, by a plausible process. The
 * table is advisory and anyone who can write the file can fill it, so an
 * event is never taken as an action of its own. */
static int adoptable(const struct adopt_ctx *a, int64_t when,
                     const char *user, const char *event, int64_t pid)
{
	return (!strcmp(event, "login-failed") || !strcmp(event, "login-locked") ||
	        !strcmp(event, "lockout")) &&
	       auth_name_valid(user) && when > 0 &&
	       when <= a->now + ADOPT_FUTURE_S && pid > 0 &&
	       pid <= ADOPT_PID_MAX && a->adopted < ADOPT_MAX;
}

static int adopt_one(void *arg, int64_t when, const char *user,
                     const char *event, uint32_t uid, int64_t pid)
{
	struct adopt_ctx *a = arg;
	struct audit_who w = { uid, 0, (uint32_t)pid };
	char what[160], tm_s[32];
	time_t tt = (time_t)when;
	struct tm tm;

	if (!adoptable(a, when, user, event, pid)) {
		a->dropped++;
		return 0;
	}
	a->adopted++;
	gmtime_r(&tt, &tm);
	strftime(tm_s, sizeof tm_s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(what, sizeof what, "user %s at %s (recorded by %s)", user, tm_s,
	         a->ss->name);
	/* the row names who failed; the session that adopted it signs it */
	return audit_append_about(a->t, a->ss, user, &w,
	                          when * 1000000000, event, what, -EACCES) ? 1 : 0;
}

int audit_adopt_auth_events(struct audit_trail *t, struct session *ss)
{
	struct adopt_ctx a = { t, ss, (int64_t)time(NULL), 0, 0 };
	char what[200];
	int rc = store_auth_event_take(t->s, adopt_one, &a);

	if (rc)
		return rc > 0 ? -EIO : rc;
	if (!a.dropped)
		return 0;
	/* one row for all of them: what was there, not what it claimed */
	snprintf(what, sizeof what, "%llu queued authentication event%s dropped:"
	         " not a failed login or lockout of a valid user name at a sane"
	         " time and process (planted in auth_events?)%s",
	         (unsigned long long)a.dropped, a.dropped == 1 ? "" : "s",
	         a.adopted >= ADOPT_MAX ? "; more than the per-login limit" : "");
	return audit_command(t, ss, "auth-events-dropped", what, -EBADMSG);
}

/* ---- verification ---- */

static int about_other(const char *op)
{
	return !strcmp(op, "login-failed") || !strcmp(op, "login-locked") ||
	       !strcmp(op, "lockout") || !strcmp(op, "login-denied") ||
	       !strcmp(op, "no-session") ||
	       !strcmp(op, "session-end");
}

struct verify_ctx {
	struct store *s;
	const struct rights *r;
	struct ledger_cache *cache;
	struct ledger_commit cur;   /* the commit covering the next rows */
	int64_t last_seq;           /* of the ledger */
	uint8_t prev[32];
	int64_t expect;
	int64_t bad;
	uint64_t rows;
	int err;
	char *why;
	size_t whylen;
};

/* Advance v->cur to the first commit whose audit head is >= seq. */
static int cover(struct verify_ctx *v, int64_t seq)
{
	int rc;

	while (v->cur.st.audit_seq < seq) {
		uint8_t want[32];
		if (v->cur.st.audit_seq != v->expect - 1 ||
		    !cipher_memeq(v->prev, v->cur.st.audit_hash, 32)) {
			memcpy(want, v->cur.st.audit_hash, 32);
			(void)want;
			v->bad = v->expect;
			snprintf(v->why, v->whylen, "commit %lld says the trail ends at"
			         " row %lld, but its rows do not lead there: rows were"
			         " edited, deleted, inserted or reordered",
			         (long long)v->cur.seq, (long long)v->cur.st.audit_seq);
			return -EBADMSG;
		}
		if (v->cur.seq >= v->last_seq) {
			v->bad = seq;
			snprintf(v->why, v->whylen, "row %lld is not covered by any"
			         " signed commit: it was added outside custodyfs",
			         (long long)seq);
			return -EBADMSG;
		}
		if ((rc = ledger_read(v->s, v->cur.seq + 1, &v->cur)))
			return rc == -EBADMSG || rc == -ENOENT ? (v->bad = seq,
			        snprintf(v->why, v->whylen, "a commit record after"
			                 " row %lld is missing or malformed",
			                 (long long)(seq - 1)), -EBADMSG) : rc;
	}
	return 0;
}

/*
 * A row of a format-1 trail carried by custodyctl upgrade names the user
 * it was about then, and is recorded by the upgrading admin's session: it
 * may name another user only in the first commit (the upgrade's), and
 * only if its session is an admin's endorsed session of kind "upgrade".
 */
static int carried(struct verify_ctx *v, const struct store_audit *a,
                   int role)
{
	struct store_session row;
	const struct rights_user *u;

	if (v->cur.seq != 1 || role != ROLE_ADMIN ||
	    store_session_get(v->s, a->session, &row) ||
	    session_row_verify(v->r, &row, &u))
		return 0;
	return !strcmp(row.kind, "upgrade");
}

static int verify_row(void *arg, const struct store_audit *a)
{
	struct verify_ctx *v = arg;
	uint8_t h[32];
	int64_t user_id = 0;
	int role, signed_by = 0, rc;
	const struct rights_user *u;

	if (!a->op[0]) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld is malformed",
		         (long long)a->seq);
		return 1;
	}
	if (a->seq != v->expect) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld follows row %lld: rows were"
		         " deleted or inserted", (long long)a->seq,
		         (long long)(v->expect - 1));
		return 1;
	}
	row_hash(v->prev, a, h);
	if (!cipher_memeq(h, a->hash, 32)) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld does not chain to the row"
		         " before it: edited, replaced or reordered",
		         (long long)a->seq);
		return 1;
	}
	if ((rc = cover(v, a->seq))) {
		v->err = rc;
		return 1;
	}
	for (size_t i = 0; i < v->cur.nsig; i++)
		if (v->cur.signer[i] == a->session)
			signed_by = 1;
	if (!signed_by) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld names session %lld, which did"
		         " not sign commit %lld that adds it: re-attributed or"
		         " forged", (long long)a->seq, (long long)a->session,
		         (long long)v->cur.seq);
		return 1;
	}
	rc = ledger_signer(v->s, v->r, v->cache, a->session,
	                   v->cur.st.roster_counter, &user_id, &role);
	u = rc ? NULL : rights_user(v->r, user_id);
	if (!u) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld: its session %lld is unknown",
		         (long long)a->seq, (long long)a->session);
		return 1;
	}
	if (strcmp(a->user, u->name) && !about_other(a->op) &&
	    !carried(v, a, role)) {
		v->bad = a->seq;
		snprintf(v->why, v->whylen, "row %lld names user '%s', but session"
		         " %lld that recorded it is '%s's: re-attributed",
		         (long long)a->seq, a->user, (long long)a->session, u->name);
		return 1;
	}
	memcpy(v->prev, a->hash, 32);
	v->expect++;
	v->rows++;
	return 0;
}

int audit_verify(struct store *s, const struct rights *r, int64_t *bad_seq,
                 uint64_t *rows, char *why, size_t whylen)
{
	struct verify_ctx *v = calloc(1, sizeof *v);
	struct ledger_commit *head = malloc(sizeof *head);
	int64_t first;
	int rc;

	*bad_seq = 0;
	*rows = 0;
	why[0] = 0;
	if (!v || !head) {
		rc = -ENOMEM;
		goto out;
	}
	/* the commit chain itself first: signatures and rules */
	if ((rc = ledger_verify(s, r, 0, NULL, head, NULL, NULL, why, whylen))) {
		if (rc == -EBADMSG || rc == -ESTALE)
			rc = -EBADMSG;
		goto out;
	}
	if ((rc = store_ledger_first(s, &first)) ||
	    (rc = ledger_cache_new(&v->cache)))
		goto out;
	v->s = s;
	v->r = r;
	v->why = why;
	v->whylen = whylen;
	v->last_seq = head->seq;
	if ((rc = ledger_read(s, first, &v->cur)))
		goto out;
	if (first == 1) {
		/* the genesis commit covers the trail from its first row */
		v->expect = 1;
		memset(v->prev, 0, 32);
	} else {
		/* a prune left this commit as the start: its head is the
		 * last pruned row */
		v->expect = v->cur.st.audit_seq + 1;
		memcpy(v->prev, v->cur.st.audit_hash, 32);
		if (v->cur.seq < v->last_seq &&
		    (rc = ledger_read(s, v->cur.seq + 1, &v->cur)))
			goto out;
	}
	/* a row numbered before the start is no part of the signed history */
	{
		uint64_t nbelow = 0;
		int64_t lowest = 0;
		if ((rc = store_audit_below(s, v->expect, &nbelow, &lowest)))
			goto out;
		if (nbelow) {
			*bad_seq = lowest;
			snprintf(why, whylen, "%llu row%s numbered before the start of"
			         " the signed trail (row %lld), the first %lld: no"
			         " commit covers them, they were added outside"
			         " custodyfs", (unsigned long long)nbelow,
			         nbelow == 1 ? "" : "s", (long long)v->expect,
			         (long long)lowest);
			rc = -EBADMSG;
			goto out;
		}
	}
	rc = store_audit_each(s, v->expect - 1, verify_row, v);
	*rows = v->rows;
	if (v->err && !v->bad) {
		rc = v->err;
		goto out;
	}
	if (v->bad) {
		*bad_seq = v->bad;
		rc = -EBADMSG;
		goto out;
	}
	if (rc < 0)
		goto out;
	/* the last rows must be the head's */
	if (head->st.audit_seq != v->expect - 1 ||
	    !cipher_memeq(head->st.audit_hash, v->prev, 32)) {
		*bad_seq = v->expect;
		snprintf(why, whylen, "the trail ends at row %lld, but the newest"
		         " commit (%lld) says %lld: rows were cut from the end",
		         (long long)(v->expect - 1), (long long)head->seq,
		         (long long)head->st.audit_seq);
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
out:
	if (v)
		ledger_cache_free(v->cache);
	free(v);
	free(head);
	return rc;
}

int audit_first_row(struct store *s, int64_t *first_row)
{
	struct ledger_commit *c;
	int64_t first;
	int rc;

	*first_row = 1;
	if ((rc = store_ledger_first(s, &first)))
		return rc;
	if (first == 1)
		return 0;
	if (!(c = malloc(sizeof *c)))
		return -ENOMEM;
	rc = ledger_read(s, first, c);
	if (!rc)
		*first_row = c->st.audit_seq + 1;
	free(c);
	return rc;
}

/* ---- reading details ---- */

#define READER_KEYS 64

struct audit_reader {
	struct store *s;
	const struct rights *r;
	const struct session *ss;
	struct {
		int64_t id;
		int ok;         /* 1: key opened and matches its commitment;
		                 * 0: this reader holds no key for it;
		                 * -1: replaced or damaged (bad says how) */
		uint8_t *key;
		char user[65];
		const char *bad;
	} cache[READER_KEYS];
};

int audit_reader_new(struct store *s, const struct rights *r,
                     const struct session *ss, struct audit_reader **out)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return -ENOMEM;
	(*out)->s = s;
	(*out)->r = r;
	(*out)->ss = ss;
	return 0;
}

void audit_reader_free(struct audit_reader *rd)
{
	if (!rd)
		return;
	for (int i = 0; i < READER_KEYS; i++)
		secmem_free(rd->cache[i].key);
	free(rd);
}

/*
 * Open the detail key of session id (cached). A genuine sessions row (its
 * endorsement verifies) always holds its key sealed to a version's audit
 * key, and the key matches the commitment its user endorsed: a reader who
 * holds that version's audit key and cannot open it, or opens another
 * key, has found a replaced detail (ok -1).
 */
static int reader_slot(struct audit_reader *rd, int64_t id)
{
	int slot = (int)((uint64_t)id % READER_KEYS);
	struct store_session row;
	const struct rights_key *k;
	const struct rights_user *u;
	uint8_t *ask, h[32];

	if (rd->cache[slot].key && rd->cache[slot].id == id)
		return slot;
	if (!rd->cache[slot].key &&
	    !(rd->cache[slot].key = secmem_alloc(CIPHER_KEY_BYTES)))
		return -ENOMEM;
	rd->cache[slot].id = id;
	rd->cache[slot].ok = 0;
	rd->cache[slot].bad = NULL;
	snprintf(rd->cache[slot].user, sizeof rd->cache[slot].user, "?");
	if (store_session_get(rd->s, id, &row))
		return slot;
	if ((u = rights_user(rd->r, row.user_id)))
		snprintf(rd->cache[slot].user, sizeof rd->cache[slot].user, "%s",
		         u->name);
	if (!role_reads_audit(rd->ss->role))
		return slot;
	if (session_row_verify(rd->r, &row, &u)) {
		rd->cache[slot].ok = -1;
		rd->cache[slot].bad = "its sessions row is not the one its user"
		                      " endorsed";
		return slot;
	}
	k = rights_key(rd->r, row.detail_version);
	if (!k || k->status == KEY_DESTROYED) {
		/* nothing legitimate is left under a destroyed version
		 * (reencrypt moves it first) */
		rd->cache[slot].ok = -1;
		rd->cache[slot].bad = "its detail key is sealed under a key version"
		                      " that does not hold it (replaced)";
		return slot;
	}
	if (!(ask = secmem_alloc(CIPHER_BOX_SK_BYTES)))
		return -ENOMEM;
	if (grant_open(rd->s, rd->ss->user_id, row.detail_version, GRANT_AUDIT,
	               ask, CIPHER_BOX_SK_BYTES, rd->ss->box_pk,
	               rd->ss->box_sk)) {
		secmem_free(ask);
		return slot; /* no key for this reader */
	}
	if (row.detaillen != CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD ||
	    cipher_box_open(rd->cache[slot].key, row.detail, row.detaillen,
	                    k->audit_pk, ask)) {
		rd->cache[slot].ok = -1;
		rd->cache[slot].bad = "its sealed detail key does not open"
		                      " (replaced or damaged)";
	} else {
		session_detail_hash(rd->r->store_id, id, rd->cache[slot].key, h);
		if (cipher_memeq(h, row.detail_hash, sizeof h))
			rd->cache[slot].ok = 1;
		else {
			rd->cache[slot].ok = -1;
			rd->cache[slot].bad = "its detail key is not the one its user"
			                      " endorsed (replaced)";
		}
	}
	if (rd->cache[slot].ok != 1)
		cipher_wipe(rd->cache[slot].key, CIPHER_KEY_BYTES);
	secmem_free(ask);
	return slot;
}

int audit_reader_check(struct audit_reader *rd, int64_t session,
                       const char **why)
{
	int slot = reader_slot(rd, session);

	*why = NULL;
	if (slot < 0)
		return slot;
	if (rd->cache[slot].ok == 1)
		return 0;
	if (rd->cache[slot].ok == 0)
		return -EACCES;
	*why = rd->cache[slot].bad;
	return -EBADMSG;
}

int audit_verify_details(struct store *s, const struct rights *r,
                         const struct session *ss, int64_t *bad_session,
                         uint64_t *checked, char *why, size_t whylen)
{
	struct audit_reader *rd;
	int64_t next = 0;
	int rc;

	*bad_session = 0;
	*checked = 0;
	why[0] = 0;
	if (!role_reads_audit(ss->role))
		return 0;
	if ((rc = store_session_next_id(s, &next)) ||
	    (rc = audit_reader_new(s, r, ss, &rd)))
		return rc;
	for (int64_t id = 1; id < next && !rc; id++) {
		struct store_session row;
		const char *bad;
		int e;
		if (store_session_get(s, id, &row))
			continue; /* no such row, or malformed: the ledger's concern */
		e = audit_reader_check(rd, id, &bad);
		if (e == -EBADMSG) {
			*bad_session = id;
			snprintf(why, whylen, "session %lld of user '%s': %s: the paths"
			         " and process names of its rows are lost", (long long)id,
			         audit_reader_session_user(rd, id), bad);
			rc = -EBADMSG;
		} else if (e == 0)
			(*checked)++;
		else if (e != -EACCES)
			rc = e;
	}
	audit_reader_free(rd);
	return rc;
}

const char *audit_reader_session_user(struct audit_reader *rd, int64_t session)
{
	int slot = reader_slot(rd, session);
	return slot < 0 ? "?" : rd->cache[slot].user;
}

int audit_reader_detail(struct audit_reader *rd, const struct store_audit *a,
                        char *comm, size_t commlen, char *path,
                        size_t pathlen)
{
	int slot = reader_slot(rd, a->session);
	uint8_t *plain, ad[16];
	size_t n, cl;

	comm[0] = path[0] = 0;
	if (slot < 0)
		return slot;
	if (rd->cache[slot].ok < 0)
		return -EBADMSG;
	if (!rd->cache[slot].ok)
		return -EACCES;
	if (a->detaillen < CIPHER_OVERHEAD + 1 || a->detaillen > STORE_DETAIL_MAX)
		return -EIO;
	if (!(plain = malloc(STORE_DETAIL_MAX)))
		return -ENOMEM;
	put_le64(ad, (uint64_t)a->seq);
	put_le64(ad + 8, (uint64_t)a->session);
	if (cipher_open(plain, a->detail, a->detaillen, ad, sizeof ad,
	                rd->cache[slot].key)) {
		free(plain);
		return -EIO;
	}
	n = a->detaillen - CIPHER_OVERHEAD;
	cl = strnlen((char *)plain, n);
	snprintf(comm, commlen, "%.*s", (int)cl, (char *)plain);
	if (cl + 1 < n)
		snprintf(path, pathlen, "%.*s", (int)(n - cl - 1),
		         (char *)plain + cl + 1);
	cipher_wipe(plain, n);
	free(plain);
	return 0;
}

/* ---- prune and re-seal ---- */

int audit_prune(struct store *s, const struct rights *r,
                const struct session *admin, int64_t before_seq,
                uint64_t *removed)
{
	struct ledger_commit *c = malloc(sizeof *c), *base = malloc(sizeof *base);
	int64_t first, last, seq;
	uint64_t n0 = 0, n1 = 0;
	int found = 0, rc;

	*removed = 0;
	if (!c || !base) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = store_ledger_first(s, &first)) ||
	    (rc = store_ledger_last(s, &last)))
		goto out;
	/* the base: the newest commit whose rows all lie before before_seq,
	 * and never the head itself (the prune's own commit follows it) */
	for (seq = first; seq < last; seq++) {
		if ((rc = ledger_read(s, seq, c)))
			goto out;
		if (c->st.audit_seq >= before_seq)
			break;
		*base = *c;
		found = 1;
	}
	rc = 0;
	if (!found || base->seq == first)
		goto out; /* nothing older to remove */
	if ((rc = store_audit_count(s, &n0)) ||
	    (rc = ledger_set_base(s, r, admin->authority_sk, base)) ||
	    (rc = store_audit_delete_before(s, base->st.audit_seq + 1)) ||
	    (rc = store_ledger_delete_before(s, base->seq)) ||
	    (rc = store_audit_count(s, &n1)))
		goto out;
	*removed = n0 - n1;
out:
	free(c);
	free(base);
	return rc;
}

int audit_reseal_sessions(struct store *s, const struct rights *r,
                          const struct session *ss, size_t limit,
                          uint64_t *moved)
{
	uint32_t active = rights_active(r);
	const struct rights_key *nk = rights_key(r, active);
	struct store_stale *st = calloc(limit ? limit : 1, sizeof *st);
	uint8_t *ask = secmem_alloc(CIPHER_BOX_SK_BYTES + CIPHER_KEY_BYTES);
	uint8_t sealed[CIPHER_KEY_BYTES + CIPHER_BOX_OVERHEAD];
	size_t n = 0;
	int rc = 0;

	*moved = 0;
	if (!st || !ask) {
		rc = -ENOMEM;
		goto out;
	}
	if (!nk)
		goto out;
	if ((rc = store_stale(s, 's', active, limit, st, &n)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct store_session row;
		const struct rights_key *ok;
		uint8_t *key = ask + CIPHER_BOX_SK_BYTES;
		if ((rc = store_session_get(s, st[i].a, &row)))
			goto out;
		ok = rights_key(r, row.detail_version);
		if (!ok || row.detaillen != sizeof sealed ||
		    grant_open(s, ss->user_id, row.detail_version, GRANT_AUDIT, ask,
		               CIPHER_BOX_SK_BYTES, ss->box_pk, ss->box_sk) ||
		    cipher_box_open(key, row.detail, row.detaillen, ok->audit_pk,
		                    ask)) {
			if (ok && ok->status != KEY_DESTROYED) {
				rc = -EBADMSG; /* this admin cannot open it: stop */
				goto out;
			}
			/* its version was destroyed: the details are gone
			 * already; move the row on so nothing waits for it */
			cipher_random(key, CIPHER_KEY_BYTES);
		}
		if ((rc = cipher_box_seal(sealed, key, CIPHER_KEY_BYTES,
		                          nk->audit_pk)) ||
		    (rc = store_session_set_detail(s, row.id, active, sealed,
		                                   sizeof sealed)))
			goto out;
		(*moved)++;
	}
out:
	secmem_free(ask);
	free(st);
	return rc;
}
