/*
 * forge.c - an attacker's tool for test_attack_more_rights.sh: what a store
 * user with their own passphrase and the source code can sign, linked with
 * custodyfs's own layers (lib, store, keys) so the records are exactly the
 * product's. The test compiles it against the build under test.
 *
 *   forge prune-base STORE CONFIG USER PASSFILE SEQ
 *     Log in as USER (a demoted admin: their identity key is the one the
 *     roster lists for their admin period too), endorse a session that
 *     claims a roster counter at which USER was an admin, and with it
 *     sign a prune record ("ledger_base") naming a commit of the forger's
 *     own making at SEQ that copies the file's current signed state; every
 *     older commit is deleted. Exit 0 when the rows are written.
 *   forge commit-as OLDSTORE STORE CONFIG USER OLDPASSFILE
 *     (see commit_as) a commit signed with an identity key a reset
 *     replaced.
 *   forge genesis STORE CONFIG USER PASSFILE
 *     (see genesis) a whole history of the forger's own.
 *   forge legacy-roster STORE CONFIG ADMIN PASSFILE
 *     (see legacy_roster) the roster as custodyfs 0.2.0 signed it.
 *   forge prune-base-epoch ...
 *     The same, with the roster's authority epoch where the record names
 *     its signer (the record's layout once the authority signs it), still
 *     signed by that session: the forger holds no authority secret.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "bytes.h"
#include "cipher.h"
#include "config.h"
#include "ledger.h"
#include "passphrase.h"
#include "rights.h"
#include "role.h"
#include "session.h"
#include "store.h"

static int die(const char *what, int rc, const char *why)
{
	fprintf(stderr, "forge: %s: %s%s%s\n", what, strerror(rc < 0 ? -rc : rc),
	        why && why[0] ? ": " : "", why ? why : "");
	return 1;
}

/* USER logged in to STORE (opened with flags) as custodyctl would: the
 * session and the verified roster. 0, or 1 with the reason said. */
struct forger {
	struct config cfg;
	struct store *s;
	struct passphrase pw;
	struct session *ss;
	struct rights *r;
};

static int forger_login(struct forger *f, const char *store, int flags,
                        const char *config, const char *user,
                        const char *passfile)
{
	struct store_cred cur, upd;
	char why[512] = "", err[256];
	int has = 0, rc;

	memset(f, 0, sizeof *f);
	if (cipher_init())
		return die("cipher_init", EIO, NULL);
	config_defaults(&f->cfg);
	if (config_load(config, &f->cfg, err, sizeof err))
		return die("config", EINVAL, err);
	if ((rc = store_open(store, flags, 10000, &f->s, why, sizeof why)))
		return die("open", rc, why);
	if (passphrase_get(passfile, NULL, "", 0, &f->pw, err, sizeof err))
		return die("passphrase", EINVAL, err);
	if ((rc = auth_login(f->s, &f->cfg, user, &f->pw, NULL, NULL, &f->ss,
	                     &f->r, &cur, &upd, &has, why, sizeof why)))
		return die("login", rc, why);
	return 0;
}

static void forger_free(struct forger *f)
{
	session_free(f->ss);
	rights_free(f->r);
	passphrase_free(&f->pw);
	store_close(f->s);
}

/* Start f's session in s claiming the newest roster counter at which f's
 * user was an admin (*then): endorsed by their own identity key. */
static int admin_days_session(struct forger *f, struct store *s,
                              uint64_t *then)
{
	const struct rights_user *me = rights_user(f->r, f->ss->user_id);
	uint64_t now = f->r->counter;
	int rc;

	*then = 0;
	for (uint64_t k = 1; k <= now; k++)
		if (role_administers(rights_role_at(me, k)))
			*then = k;
	if (!*then)
		return die("never an admin", EPERM, NULL);
	f->r->counter = *then;
	rc = session_start(f->ss, s, f->r, "ctl", getpid());
	f->r->counter = now;
	return rc ? die("session", rc, NULL) : 0;
}

static int prune_base(char **argv, int with_epoch)
{
	struct forger f;
	struct store *s;
	struct session *ss;
	struct rights *r;
	struct ledger_commit *head = calloc(1, sizeof *head);
	struct ledger_commit *prev = calloc(1, sizeof *prev);
	struct ledger_commit *c = calloc(1, sizeof *c);
	uint64_t then;
	int64_t seq = atoll(argv[4]);
	int rc;

	if (forger_login(&f, argv[0], 0, argv[1], argv[2], argv[3]))
		return 1;
	s = f.s;
	ss = f.ss;
	r = f.r;
	if ((rc = store_begin(s)) || (rc = ledger_head(s, head)))
		return die("head", rc, NULL);
	/* the session: endorsed by the user's own identity key, claiming
	 * the counter of their admin days */
	if (admin_days_session(&f, s, &then))
		return 1;
	/* a commit nobody verifies: the base's own */
	*prev = *head;
	prev->seq = seq - 1;
	cipher_random(prev->hash, 32);
	if ((rc = ledger_append(s, r->store_id, prev, &head->st, &ss, 1, NULL, 0,
	                        c)))
		return die("commit", rc, NULL);
	/* the prune record as a session signs it (the record an admin's
	 * session wrote before the fix: seq, hash, session id, signature
	 * over store id, seq and hash); with with_epoch, the roster's
	 * epoch where the session id was */
	{
		uint8_t rec[8 + 32 + 8 + 64], msg[16 + 8 + 32];
		put_le64(rec, (uint64_t)c->seq);
		memcpy(rec + 8, c->hash, 32);
		put_le64(rec + 40, with_epoch ? r->epoch : (uint64_t)ss->id);
		memcpy(msg, r->store_id, 16);
		put_le64(msg + 16, (uint64_t)c->seq);
		memcpy(msg + 24, c->hash, 32);
		session_sign(ss, "custodyfs.ledbas", msg, sizeof msg, rec + 48);
		if ((rc = store_meta_set(s, "ledger_base", rec, sizeof rec)) ||
		    (rc = store_ledger_delete_before(s, seq)) ||
		    (rc = store_commit(s)))
			return die("base", rc, NULL);
	}
	printf("forged base at commit %lld (session %lld claims roster %llu)\n",
	       (long long)seq, (long long)ss->id, (unsigned long long)then);
	forger_free(&f);
	free(head);
	free(prev);
	free(c);
	return 0;
}

/*
 * commit-as OLDSTORE STORE CONFIG USER OLDPASSFILE: log in to OLDSTORE (a
 * copy from before USER's keys were reset) with USER's old passphrase,
 * endorse a session in STORE with the old identity key, claiming the
 * roster counter of the old copy (when that key was USER's), and append a
 * commit on top of STORE's head that moves the files (the next inode
 * number) signed by it.
 */
static int commit_as(char **argv)
{
	struct forger f;
	struct store *s = NULL;
	struct session *ss;
	struct rights *r_old, *r = NULL;
	struct ledger_commit *head = calloc(1, sizeof *head);
	struct ledger_commit *c = calloc(1, sizeof *c);
	struct ledger_state st;
	char why[512] = "";
	uint8_t pk[32];
	uint32_t epoch;
	uint64_t now;
	int rc;

	/* logged in to the old copy */
	if (forger_login(&f, argv[0], STORE_READONLY, argv[2], argv[3], argv[4]))
		return 1;
	ss = f.ss;
	r_old = f.r;
	if ((rc = store_open(argv[1], 0, 10000, &s, why, sizeof why)))
		return die("open", rc, why);
	if ((rc = rights_chain(s, r_old->store_id, r_old->epoch,
	                       r_old->authority_pk, &epoch, pk)) ||
	    (rc = rights_load(s, r_old->store_id, epoch, pk, &r)))
		return die("roster", rc, NULL);
	if ((rc = store_begin(s)) || (rc = ledger_head(s, head)))
		return die("head", rc, NULL);
	now = r->counter;
	r->counter = r_old->counter;
	rc = session_start(ss, s, r, "ctl", getpid());
	r->counter = now;
	if (rc)
		return die("session", rc, NULL);
	st = head->st;
	st.next_ino++;
	if ((rc = ledger_append(s, r->store_id, head, &st, &ss, 1, NULL, 0, c)) ||
	    (rc = store_commit(s)))
		return die("commit", rc, NULL);
	printf("commit %lld signed by session %lld (roster %llu claimed)\n",
	       (long long)c->seq, (long long)ss->id,
	       (unsigned long long)r_old->counter);
	forger_free(&f);
	rights_free(r);
	store_close(s);
	free(head);
	free(c);
	return 0;
}

/*
 * genesis STORE CONFIG USER PASSFILE: a whole new history. Log in as USER
 * (a demoted admin), endorse a session claiming a roster counter of
 * USER's admin days, and replace every commit by two of the forger's own:
 * commit 1 at that counter, commit 2 moving to the store's current roster
 * and credentials with the files as they are, and an empty audit trail
 * (every row deleted).
 */
static int genesis(char **argv)
{
	struct forger f;
	struct store *s;
	struct session *ss;
	struct rights *r;
	struct ledger_commit *head = calloc(1, sizeof *head);
	struct ledger_commit *c1 = calloc(1, sizeof *c1);
	struct ledger_commit *c2 = calloc(1, sizeof *c2);
	struct ledger_state st;
	uint64_t then;
	int rc;

	if (forger_login(&f, argv[0], 0, argv[1], argv[2], argv[3]))
		return 1;
	s = f.s;
	ss = f.ss;
	r = f.r;
	if ((rc = store_begin(s)) || (rc = ledger_head(s, head)))
		return die("head", rc, NULL);
	if (admin_days_session(&f, s, &then))
		return 1;
	if ((rc = store_ledger_delete_before(s, head->seq + 1)) ||
	    (rc = store_audit_delete_before(s, INT64_MAX)) ||
	    ((rc = store_meta_delete(s, "ledger_base")) && rc != -ENOENT))
		return die("delete", rc, NULL);
	st = head->st;
	st.audit_seq = 0;
	memset(st.audit_hash, 0, 32);
	st.roster_counter = then;
	cipher_random(st.roster_hash, 32);
	if ((rc = ledger_append(s, r->store_id, NULL, &st, &ss, 1, NULL, 0, c1)))
		return die("commit 1", rc, NULL);
	st.roster_counter = head->st.roster_counter;
	memcpy(st.roster_hash, head->st.roster_hash, 32);
	if ((rc = ledger_append(s, r->store_id, c1, &st, &ss, 1, NULL, 0, c2)) ||
	    (rc = store_commit(s)))
		return die("commit 2", rc, NULL);
	printf("a history of 2 commits (session %lld claims roster %llu)\n",
	       (long long)ss->id, (unsigned long long)then);
	forger_free(&f);
	free(head);
	free(c1);
	free(c2);
	return 0;
}

/*
 * legacy-roster STORE CONFIG ADMIN PASSFILE: the store as custodyfs 0.2.0
 * left it: the roster signed again by the authority (ADMIN holds it) as
 * version 1, adopted by a commit of ADMIN's session, and no anchor.
 */
static int legacy_roster(char **argv)
{
	struct forger f;
	struct store *s;
	struct session *ss;
	struct rights *r, *r2 = NULL;
	struct ledger_commit *head = calloc(1, sizeof *head);
	struct ledger_commit *c = calloc(1, sizeof *c);
	struct ledger_state st;
	uint8_t *body = NULL, sig[64];
	size_t len = 0;
	int rc;

	if (forger_login(&f, argv[0], 0, argv[1], argv[2], argv[3]))
		return 1;
	s = f.s;
	ss = f.ss;
	r = f.r;
	if (!ss->authority_sk)
		return die("not holding the authority", EPERM, NULL);
	if ((rc = store_begin(s)) || (rc = ledger_head(s, head)))
		return die("head", rc, NULL);
	if ((rc = session_start(ss, s, r, "ctl", getpid())))
		return die("session", rc, NULL);
	r->version = 1;
	r->counter++;
	if ((rc = rights_encode(r, &body, &len)))
		return die("encode", rc, NULL);
	cipher_sign(sig, body, len, ss->authority_sk);
	if ((rc = store_roster_put(s, body, len, sig)) ||
	    (rc = rights_load(s, r->store_id, r->epoch, r->authority_pk, &r2)))
		return die("roster", rc, NULL);
	st = head->st;
	st.roster_counter = r2->counter;
	memcpy(st.roster_hash, r2->hash, 32);
	if ((rc = ledger_append(s, r->store_id, head, &st, &ss, 1, NULL, 0, c)) ||
	    ((rc = store_meta_delete(s, "roster_anchor")) && rc != -ENOENT) ||
	    (rc = store_commit(s)))
		return die("commit", rc, NULL);
	printf("roster %llu as version 1, commit %lld, no anchor\n",
	       (unsigned long long)r2->counter, (long long)c->seq);
	free(body);
	rights_free(r2);
	forger_free(&f);
	free(head);
	free(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "legacy-roster"))
		return legacy_roster(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "genesis"))
		return genesis(argv + 2);
	if (argc == 7 && !strcmp(argv[1], "commit-as"))
		return commit_as(argv + 2);
	if (argc == 7 && !strcmp(argv[1], "prune-base"))
		return prune_base(argv + 2, 0);
	if (argc == 7 && !strcmp(argv[1], "prune-base-epoch"))
		return prune_base(argv + 2, 1);
	fprintf(stderr, "usage: forge prune-base[-epoch] STORE CONFIG USER"
	        " PASSFILE SEQ\n"
	        "       forge commit-as OLDSTORE STORE CONFIG USER OLDPASSFILE\n"
	        "       forge genesis STORE CONFIG USER PASSFILE\n"
	        "       forge legacy-roster STORE CONFIG ADMIN PASSFILE\n");
	return 2;
}
