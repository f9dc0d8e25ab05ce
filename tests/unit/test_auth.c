/*
 * test_auth.c - credentials and logging in (auth.h) on a real store made
 * as custodyctl init makes one: a good login; a wrong passphrase, an
 * unknown user and a locked account all give -EACCES and cost exactly one
 * Argon2id each (the calls are counted: crypto_pwhash is interposed), and
 * count as the header says (the failure counter, auth_events rows); a
 * credential with an out-of-bounds cost is refused before any hashing; a
 * raised cost and a re-pin to a newer authority give the rewritten
 * credential; a credential row put back from before a passwd no longer
 * matches the signed state; a rolled-back roster; the login policy
 * (auth_policy) only ever tightened by the configuration; and an admin
 * logged in holds the authority key key administration needs.
 */
#define UNIT_WITH_STORE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "keyring.h"
#include "state.h"
#include "store.h"
#include "unit.h"
/* white box: plain SQL on a store connection (the file writer) */
#include "../../src/store/store_internal.h"

/* ---- counting Argon2id: libsodium's crypto_pwhash, interposed ---- */

static int pwhash_calls;

int crypto_pwhash(unsigned char *const out, unsigned long long outlen,
                  const char *const passwd, unsigned long long passwdlen,
                  const unsigned char *const salt, unsigned long long opslimit,
                  size_t memlimit, int alg);
int crypto_pwhash(unsigned char *const out, unsigned long long outlen,
                  const char *const passwd, unsigned long long passwdlen,
                  const unsigned char *const salt, unsigned long long opslimit,
                  size_t memlimit, int alg)
{
	typedef int (*fn_t)(unsigned char *, unsigned long long, const char *,
	                    unsigned long long, const unsigned char *,
	                    unsigned long long, size_t, int);
	static fn_t real;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "crypto_pwhash");
	pwhash_calls++;
	return real ? real(out, outlen, passwd, passwdlen, salt, opslimit,
	                   memlimit, alg) : -1;
}

static struct unit_env e;
static struct config cfg;

static int sql(struct store *s, const char *q)
{
	int rc = sqlite3_exec(s->db, q, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", q, sqlite3_errmsg(s->db));
	return rc;
}

static int64_t sql_int(struct store *s, const char *q)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t events(struct store *s, const char *user, const char *event)
{
	char q[256];
	snprintf(q, sizeof q, "SELECT count(*) FROM auth_events WHERE user='%s'"
	         " AND event='%s'", user, event);
	return sql_int(s, q);
}

static int64_t failed(struct store *s, int64_t id)
{
	struct store_login l;
	return store_login_get(s, id, &l) ? -1 : l.failed;
}

/* One auth_login: its result, with the Argon2id calls it made in *calls. */
struct attempt {
	int rc;
	int calls;
	int has_update;
	struct session *ss;
	struct rights *r;
	struct store_cred cur, upd;
	char why[256];
};

static void login(struct store *s, const struct config *c, const char *name,
                  const char *pass, const struct state_seen *st, struct attempt *a)
{
	struct passphrase pw;

	memset(a, 0, sizeof *a);
	if (unit_pw(&pw, pass)) {
		a->rc = -ENOMEM;
		return;
	}
	pwhash_calls = 0;
	a->rc = auth_login(s, c, name, &pw, st, NULL, &a->ss, &a->r, &a->cur, &a->upd,
	                   &a->has_update, a->why, sizeof a->why);
	a->calls = pwhash_calls;
	passphrase_free(&pw);
}

static void done(struct attempt *a)
{
	session_free(a->ss);
	rights_free(a->r);
	a->ss = NULL;
	a->r = NULL;
}

static void test_names(void)
{
	CHECK(auth_name_valid("a"));
	CHECK(auth_name_valid("Alice.B_c-9"));
	CHECK(!auth_name_valid(""));
	CHECK(!auth_name_valid("-x"));
	CHECK(!auth_name_valid("a b"));
	CHECK(!auth_name_valid("a/b"));
	CHECK(!auth_name_valid("caf\xc3\xa9"));
	char n[80];
	memset(n, 'x', 64);
	n[64] = 0;
	CHECK(auth_name_valid(n));
	n[64] = 'x';
	n[65] = 0;
	CHECK(!auth_name_valid(n));
}

static void test_policy(void)
{
	struct rights_policy p, out;
	struct config c;

	memset(&p, 0, sizeof p);
	p.kdf_opslimit = 3;
	p.kdf_memlimit = 1 << 20;
	p.max_failures = 5;
	p.lockout_s = 60;
	p.block_size = 4096;
	config_defaults(&c);
	c.kdf_opslimit = 1;
	c.kdf_memlimit = 8192;
	c.max_failures = 0;
	c.lockout_s = 0;
	/* a looser configuration changes nothing */
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.kdf_opslimit, 3);
	CHECK_EQ(out.kdf_memlimit, 1 << 20);
	CHECK_EQ(out.max_failures, 5);
	CHECK_EQ(out.lockout_s, 60);
	CHECK_EQ(out.block_size, 4096);
	c.max_failures = 9;
	c.lockout_s = 10;
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.max_failures, 5);
	CHECK_EQ(out.lockout_s, 60);
	/* a stricter one wins, field by field */
	c.kdf_opslimit = 4;
	c.kdf_memlimit = 2 << 20;
	c.max_failures = 2;
	c.lockout_s = 600;
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.kdf_opslimit, 4);
	CHECK_EQ(out.kdf_memlimit, 2 << 20);
	CHECK_EQ(out.max_failures, 2);
	CHECK_EQ(out.lockout_s, 600);
	/* a store that never locks: the configuration may make it lock */
	p.max_failures = 0;
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.max_failures, 2);
	/* without a configuration: the signed policy */
	auth_policy(&p, NULL, &out);
	CHECK_EQ(out.max_failures, 0);
	CHECK_EQ(out.kdf_opslimit, 3);
	/* sane bounds either way */
	p.kdf_opslimit = 1000;
	p.kdf_memlimit = 64ull << 30;
	auth_policy(&p, NULL, &out);
	CHECK_EQ(out.kdf_opslimit, AUTH_OPSLIMIT_MAX);
	CHECK_EQ(out.kdf_memlimit, AUTH_MEMLIMIT_MAX);
	c.kdf_opslimit = 64;
	c.kdf_memlimit = 4ull << 30;
	p.kdf_opslimit = 0;
	p.kdf_memlimit = 0;
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.kdf_opslimit, AUTH_OPSLIMIT_MAX);
	CHECK_EQ(out.kdf_memlimit, AUTH_MEMLIMIT_MAX);
	config_defaults(&c);
	c.kdf_opslimit = 0;
	c.kdf_memlimit = 0;
	auth_policy(&p, &c, &out);
	CHECK_EQ(out.kdf_opslimit, cipher_pwhash_opslimit_min());
	CHECK_EQ(out.kdf_memlimit, cipher_pwhash_memlimit_min());
}

/* The three failures the user could cause look the same and cost the
 * same: one Argon2id, -EACCES. */
static void test_failures(struct store *s, int64_t bob)
{
	struct attempt a;
	time_t now = time(NULL);
	struct store_login l;

	/* a good login: one hash, the counter cleared, last_login set */
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.has_update, 0);
	CHECK(a.ss && a.r);
	if (a.ss) {
		CHECK_EQ(a.ss->user_id, bob);
		CHECK(!strcmp(a.ss->name, "bob"));
		CHECK_EQ(a.ss->role, ROLE_WRITER);
		CHECK_EQ(a.ss->authority_epoch, 1);
		CHECK_EQ(a.ss->id, 0); /* no session key yet */
		CHECK_EQ(keyring_active(a.ss->kr), 1);
		CHECK(!memcmp(a.ss->sign_pk, rights_sign_pk(rights_user(a.r, bob)), 32));
	}
	CHECK_EQ(a.cur.user_id, bob);
	CHECK_EQ(store_login_get(s, bob, &l), 0);
	CHECK_EQ(l.failed, 0);
	CHECK(l.last_login >= now);
	done(&a);

	/* a wrong passphrase */
	int64_t ev0 = events(s, "bob", "login-failed");
	login(s, &cfg, "bob", "not-bobs", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	CHECK(a.ss == NULL && a.r == NULL);
	CHECK_EQ(failed(s, bob), 1);
	CHECK_EQ(events(s, "bob", "login-failed"), ev0 + 1);
	done(&a);
	/* an empty one */
	login(s, &cfg, "bob", "", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(failed(s, bob), 2);
	done(&a);
	/* a good login clears the count */
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(failed(s, bob), 0);
	done(&a);

	/* an unknown user, and a name no user could have: the same */
	int64_t evn = events(s, "nobody", "login-failed");
	login(s, &cfg, "nobody", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(events(s, "nobody", "login-failed"), evn + 1);
	CHECK_EQ(sql_int(s, "SELECT count(*) FROM logins WHERE user_id NOT IN"
	                    " (SELECT user_id FROM credentials)"), 0);
	done(&a);
	login(s, &cfg, "no body", "x", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	done(&a);
	{
		char longname[80];
		memset(longname, 'q', 70);
		longname[70] = 0;
		login(s, &cfg, longname, "x", NULL, &a);
		CHECK_EQ(a.rc, -EACCES);
		CHECK_EQ(a.calls, 1);
		done(&a);
	}

	/* three failures in a row lock the account (max_failures 3) */
	int64_t lk0 = events(s, "bob", "lockout");
	for (int i = 0; i < 3; i++) {
		login(s, &cfg, "bob", "guess", NULL, &a);
		CHECK_EQ(a.rc, -EACCES);
		CHECK_EQ(a.calls, 1);
		done(&a);
	}
	CHECK_EQ(failed(s, bob), 3);
	CHECK_EQ(store_login_get(s, bob, &l), 0);
	CHECK(l.locked_until >= now + 60);
	CHECK(l.locked_until <= time(NULL) + 60);
	CHECK_EQ(events(s, "bob", "lockout"), lk0 + 1);
	/* locked: even the right passphrase fails, with one hash, and is
	 * recorded as such without counting further */
	int64_t lkd = events(s, "bob", "login-locked");
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	CHECK(a.ss == NULL);
	CHECK_EQ(events(s, "bob", "login-locked"), lkd + 1);
	CHECK_EQ(failed(s, bob), 3);
	done(&a);
	login(s, &cfg, "bob", "guess", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	done(&a);
	/* each further failure doubles the lock */
	CHECK_EQ(sql(s, "UPDATE logins SET locked_until=0"), SQLITE_OK);
	login(s, &cfg, "bob", "guess", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(failed(s, bob), 4);
	CHECK_EQ(store_login_get(s, bob, &l), 0);
	CHECK(l.locked_until >= now + 120);
	done(&a);
	/* unlocked by an admin: the right passphrase works again */
	CHECK_EQ(auth_unlock(s, bob), 0);
	CHECK_EQ(failed(s, bob), 0);
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(a.calls, 1);
	done(&a);

	/* a read-only store counts nothing, and still costs one hash */
	{
		struct store *ro = NULL;
		int64_t before = sql_int(s, "SELECT count(*) FROM auth_events");
		CHECK_EQ(store_open(e.store, STORE_READONLY, 1000, &ro, NULL, 0), 0);
		if (ro) {
			login(ro, &cfg, "bob", "guess", NULL, &a);
			CHECK_EQ(a.rc, -EACCES);
			CHECK_EQ(a.calls, 1);
			done(&a);
			login(ro, &cfg, "bob", "bob-pass", NULL, &a);
			CHECK_EQ(a.rc, 0);
			CHECK_EQ(a.has_update, 0);
			done(&a);
			store_close(ro);
		}
		CHECK_EQ(sql_int(s, "SELECT count(*) FROM auth_events"), before);
		CHECK_EQ(failed(s, bob), 0);
	}
}

/* A stored cost outside sane bounds is never hashed with. */
static void test_cost_bounds(struct store *s)
{
	static const char *const bad[] = {
		"opslimit=17", "opslimit=0", "opslimit=-1",
		"memlimit=2147483649", "memlimit=4096", "memlimit=-8192",
		"memlimit=9223372036854775807",
	};
	struct attempt a;
	char q[128];

	CHECK_EQ(sql(s, "CREATE TEMP TABLE keep AS SELECT * FROM credentials"
	             " WHERE name='bob'"), SQLITE_OK);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(q, sizeof q, "UPDATE credentials SET %s WHERE name='bob'",
		         bad[i]);
		CHECK_EQ(sql(s, q), SQLITE_OK);
		login(s, &cfg, "bob", "bob-pass", NULL, &a);
		CHECK_EQ(a.rc, -EBADMSG);
		CHECK_EQ(a.calls, 0);
		CHECK(strstr(a.why, "bounds") != NULL);
		done(&a);
		CHECK_EQ(sql(s, "REPLACE INTO credentials SELECT * FROM keep"),
		         SQLITE_OK);
	}
	/* the largest sane cost is hashed (once) */
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(a.calls, 1);
	done(&a);
	/* a secret of the wrong length, a salt changed: a failed login */
	CHECK_EQ(sql(s, "UPDATE credentials SET secret=substr(secret, 2)"
	             " WHERE name='bob'"), SQLITE_OK);
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	done(&a);
	CHECK_EQ(sql(s, "REPLACE INTO credentials SELECT * FROM keep"), SQLITE_OK);
	CHECK_EQ(sql(s, "UPDATE credentials SET salt=randomblob(16)"
	             " WHERE name='bob'"), SQLITE_OK);
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	done(&a);
	/* another user's sealed secret under bob's name does not open: it is
	 * bound to its user id and name */
	CHECK_EQ(sql(s, "UPDATE credentials SET (opslimit, memlimit, salt, secret)"
	             " = (SELECT opslimit, memlimit, salt, secret FROM credentials"
	             " WHERE name='admin') WHERE name='bob'"), SQLITE_OK);
	login(s, &cfg, "bob", UNIT_ADMIN_PASS, NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	done(&a);
	CHECK_EQ(sql(s, "REPLACE INTO credentials SELECT * FROM keep;"
	             " DROP TABLE keep; DELETE FROM logins"), SQLITE_OK);
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	done(&a);
}

/* A configuration asking for more: the login rewrites the credential at
 * the new cost (a second hash) for the caller to store. */
static void test_raise_cost(struct store *s)
{
	struct config c = cfg;
	struct attempt a;

	c.kdf_opslimit = 2;
	login(s, &c, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(a.calls, 2);
	CHECK_EQ(a.has_update, 1);
	CHECK_EQ(a.upd.opslimit, 2);
	CHECK_EQ(a.cur.opslimit, 1);
	CHECK(memcmp(a.upd.salt, a.cur.salt, 16) != 0);
	CHECK_EQ(a.upd.user_id, a.cur.user_id);
	CHECK(!strcmp(a.upd.name, "bob"));
	/* nothing was written: the credential is the caller's to commit */
	{
		struct store_cred now;
		CHECK_EQ(store_cred_get(s, "bob", &now), 0);
		CHECK_EQ(now.opslimit, 1);
	}
	done(&a);
}

static int exit_of(const char *user, const char *passfile)
{
	struct unlock_opts o;
	struct unlocked u;
	int st;

	unit_opts(&e, &o, user, passfile);
	st = unit_login(&o, &u);
	if (!st)
		unlock_free(&u);
	return st;
}

/* A credential row put back from before a passwd opens with the old
 * passphrase, but it is not the one the signed state holds. */
static void test_restored_credential(struct store *s, char *bobpass)
{
	struct unlock_opts o;
	struct unlocked u;
	struct store_cred old, cur;
	struct passphrase pw;
	struct attempt a;
	char newpass[160];
	int rc;

	CHECK_EQ(exit_of("bob", bobpass), EXIT_OK);
	CHECK_EQ(store_cred_get(s, "bob", &old), 0);
	unit_opts(&e, &o, "bob", bobpass);
	CHECK_EQ(unit_login(&o, &u), EXIT_OK);
	if (!u.s)
		return;
	CHECK_EQ(unit_pw(&pw, "bob-new-pass"), 0);
	CHECK(unlock_begin(&u) >= 0);
	{
		struct rights_policy pol;
		auth_policy(&u.r->policy, &u.cfg, &pol);
		rc = auth_passwd(u.s, &pol, u.ss, &pw);
	}
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = unlock_cred_changed(&u);
	CHECK_EQ(unlock_finish(&u, "user passwd", "bob", rc), 0);
	passphrase_free(&pw);
	unlock_free(&u);
	CHECK_EQ(unit_passfile(&e, "bob-new", "bob-new-pass", newpass,
	                       sizeof newpass), 0);
	CHECK_EQ(exit_of("bob", newpass), EXIT_OK);
	CHECK_EQ(exit_of("bob", bobpass), EXIT_AUTH);
	CHECK_EQ(store_cred_get(s, "bob", &cur), 0);
	/* the old row back */
	CHECK_EQ(store_cred_put(s, &old), 0);
	login(s, &cfg, "bob", "bob-pass", NULL, &a);
	CHECK_EQ(a.rc, 0); /* it opens: only the signed state tells */
	done(&a);
	CHECK_EQ(exit_of("bob", bobpass), EXIT_DAMAGE);
	CHECK_EQ(exit_of("bob", newpass), EXIT_AUTH);
	/* the current one back: fine again */
	CHECK_EQ(store_cred_put(s, &cur), 0);
	CHECK_EQ(exit_of("bob", newpass), EXIT_OK);
	/* an edited cost in the current row (within bounds) does not open:
	 * the key differs; and the leaf of a row is not its edit's */
	{
		uint8_t l1[32], l2[32];
		struct store_cred ed = cur;
		auth_cred_leaf(&cur, l1);
		ed.memlimit += 1024;
		auth_cred_leaf(&ed, l2);
		CHECK(memcmp(l1, l2, 32) != 0);
		ed = cur;
		ed.name[0] = 'B';
		auth_cred_leaf(&ed, l2);
		CHECK(memcmp(l1, l2, 32) != 0);
		ed = cur;
		ed.secret[5] ^= 1;
		auth_cred_leaf(&ed, l2);
		CHECK(memcmp(l1, l2, 32) != 0);
		auth_cred_leaf(&cur, l2);
		CHECK(!memcmp(l1, l2, 32));
	}
	/* bob's passfile from here on */
	memcpy(bobpass, newpass, strlen(newpass) + 1);
}

/* An older roster put back: refused with the local state, and by the
 * head commit without it. */
static void test_rolled_back_roster(struct store *s, struct unlocked *adm,
                                    const char *bobpass)
{
	uint8_t *body = NULL, sig[64];
	size_t len = 0;
	uint8_t *nbody = NULL, nsig[64];
	size_t nlen = 0;
	int64_t id = 0;
	struct state *st = NULL;
	struct state_seen seen;
	uint8_t sid[16];
	size_t n;
	char why[256];
	struct attempt a;

	CHECK_EQ(store_roster_get(s, &body, &len, sig), 0);
	CHECK_EQ(unit_user_add(adm, "dave", ROLE_READER, "dave-pass", &id), 0);
	CHECK_EQ(store_roster_get(s, &nbody, &nlen, nsig), 0);
	CHECK_EQ(store_meta_get(s, "store_id", sid, sizeof sid, &n), 0);
	CHECK_EQ(state_open(sid, &st, why, sizeof why), 0);
	CHECK(st && state_seen(st, adm->head.st.instance, &seen) == 0 &&
	      seen.roster == adm->r->counter);
	CHECK_EQ(store_roster_put(s, body, len, sig), 0);
	login(s, &cfg, "bob", "bob-new-pass", &seen, &a);
	CHECK_EQ(a.rc, -ESTALE);
	CHECK(strstr(a.why, "rolled-back") != NULL);
	done(&a);
	login(s, &cfg, "bob", "bob-new-pass", NULL, &a);
	CHECK_EQ(a.rc, 0); /* validly signed: only history tells */
	done(&a);
	CHECK_EQ(exit_of("bob", bobpass), EXIT_DAMAGE);
	state_free(st);
	/* a roster signed by anyone but the authority */
	{
		uint8_t pk[32], sk[64], fake[64];
		cipher_sign_keypair(pk, sk);
		cipher_sign(fake, body, len, sk);
		CHECK_EQ(store_roster_put(s, body, len, fake), 0);
		login(s, &cfg, "bob", "bob-new-pass", NULL, &a);
		CHECK_EQ(a.rc, -EBADMSG);
		CHECK(a.why[0] != 0);
		done(&a);
	}
	free(body);
	/* the newest back */
	CHECK_EQ(store_roster_put(s, nbody, nlen, nsig), 0);
	free(nbody);
	CHECK_EQ(exit_of("bob", bobpass), EXIT_OK);
}

/* After the authority moved on, a user's login follows the chain and
 * re-pins the newest (no second hash). */
static void test_repin(struct store *s, struct unlocked *adm)
{
	struct attempt a;
	int rc = unlock_begin(adm);

	CHECK(rc >= 0);
	rc = keyadmin_authority_rotate(adm->s, adm->r, adm->ss);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = keyadmin_sign(adm->s, adm->r, adm->ss);
	CHECK_EQ(unlock_finish(adm, "authority rotate", "", rc), 0);
	login(s, &cfg, "carl", "carl-pass", NULL, &a);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.has_update, 1);
	if (a.ss) {
		CHECK_EQ(a.ss->authority_epoch, 2);
		CHECK_EQ(a.ss->role, ROLE_READER);
	}
	CHECK_EQ(a.upd.opslimit, a.cur.opslimit);
	CHECK(!memcmp(a.upd.salt, a.cur.salt, 16)); /* the same Argon2id key */
	CHECK(memcmp(a.upd.secret, a.cur.secret, a.cur.secretlen) != 0);
	done(&a);
}

/* A removed user is not let in. */
static void test_removed(struct store *s, struct unlocked *adm, int64_t carl)
{
	struct attempt a;

	CHECK_EQ(unit_user_remove(adm, carl), 0);
	login(s, &cfg, "carl", "carl-pass", NULL, &a);
	CHECK_EQ(a.rc, -EACCES);
	CHECK_EQ(a.calls, 1);
	done(&a);
	/* their old credential row put back: removed in the roster */
	CHECK_EQ(rights_role(rights_user(adm->r, carl)), ROLE_REMOVED);
}

/* An admin who logs in (not the one init made) can administer keys:
 * the session holds the authority key of the newest epoch. */
static void test_admin_login(void)
{
	struct unlocked u;
	uint32_t v = 0;

	CHECK_EQ(unit_login(&e.o, &u), EXIT_OK);
	if (!u.s)
		return;
	CHECK_EQ(u.ss->role, ROLE_ADMIN);
	CHECK(u.ss->authority_sk != NULL);
	CHECK_EQ(unit_rotate(&u, &v), 0);
	unlock_free(&u);
}

int main(void)
{
	struct unlocked adm;
	struct store *s = NULL;
	int64_t bob = 0, carl = 0;
	char bobpass[160], carlpass[160];
	char err[256];

	CHECK_EQ(cipher_init(), 0);
	test_names();
	test_policy();
	if (unit_env_init(&e, "auth")) {
		perror("unit_env_init");
		return 1;
	}
	config_defaults(&cfg);
	CHECK_EQ(config_load(e.conf, &cfg, err, sizeof err), 0);
	pwhash_calls = 0;
	CHECK_EQ(unit_create(&e, NULL, &adm, NULL), 0);
	CHECK(pwhash_calls >= 1);
	if (!adm.s)
		return 1;
	CHECK_EQ(unit_user_add(&adm, "bob", ROLE_WRITER, "bob-pass", &bob), 0);
	CHECK_EQ(unit_user_add(&adm, "carl", ROLE_READER, "carl-pass", &carl), 0);
	CHECK_EQ(unit_passfile(&e, "bob", "bob-pass", bobpass, sizeof bobpass), 0);
	CHECK_EQ(unit_passfile(&e, "carl", "carl-pass", carlpass,
	                       sizeof carlpass), 0);
	CHECK_EQ(store_open(e.store, 0, 2000, &s, NULL, 0), 0);
	if (s) {
		test_failures(s, bob);
		test_cost_bounds(s);
		test_raise_cost(s);
		test_restored_credential(s, bobpass);
		test_repin(s, &adm);
		test_removed(s, &adm, carl);
		test_rolled_back_roster(s, &adm, bobpass);
		store_close(s);
	}
	unlock_free(&adm);
	test_admin_login();
	CHECK_EQ(unit_env_done(&e), 0);
	UNIT_END("test_auth");
}
