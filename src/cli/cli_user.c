/*
 * cli_user.c - custodyctl user add | del | passwd | role | unlock | list.
 *
 * Every change runs in one transaction together with its audit row, so the
 * trail never shows a change that did not happen or misses one that did.
 * Refusals (duplicate names, the last admin, tampered rows) are recorded in
 * a transaction of their own. Before re-signing or re-granting to a user
 * row, the row's authority signature is checked: an admin action must never
 * launder a row that was edited with sqlite3.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cipher.h"
#include "cli.h"
#include "keyring.h"
#include "passphrase.h"
#include "store.h"

/* Plaintext of a user's sealed secret: box_sk || authority_pk (auth.c). */

static const char user_help[] =
        "usage: custodyctl [global options] user COMMAND [ARGS...]\n"
        "\n"
        "  add NAME --role ROLE [--new-passfile FILE]  new user (admin)\n"
        "  del NAME                                    remove a user and their grants (admin)\n"
        "  revoke NAME [--destroy] [--rate MiB/s]      remove, rotate, re-encrypt, retire the\n"
        "                                              versions they held (admin, resumable)\n"
        "  passwd [NAME] [--new-passfile FILE]         change your passphrase, or reset\n"
        "                                              another user's (admin)\n"
        "  role NAME ROLE                              change a user's role (admin)\n"
        "  unlock NAME                                 clear a lockout (admin)\n"
        "  list [--json]                               users and their state (admin, auditor)\n"
        "\n"
        "Roles: admin (everything), writer (mount read-write), reader (mount\n"
        "read-only), auditor (read the audit trail; holds no data key).\n"
        "Each command takes --help.\n";

/* Exit status and one line for a failed store operation. */
static int report(const char *what, const char *name, int rc)
{
	switch (rc) {
	case -EBADMSG:
		fprintf(stderr, "custodyctl: %s '%s': store fails verification"
		        " (a row was tampered with)\n", what, name);
		return EXIT_DAMAGE;
	case -EBUSY:
		fprintf(stderr, "custodyctl: %s '%s': store is locked by another"
		        " process\n", what, name);
		return EXIT_BUSY;
	case -EPERM:
		fprintf(stderr, "custodyctl: %s '%s': this session holds no"
		        " authority key\n", what, name);
		return EXIT_DENIED;
	case -ENOMEM:
		fprintf(stderr, "custodyctl: %s '%s': out of memory (Argon2id"
		        " memlimit?)\n", what, name);
		return EXIT_RUNTIME;
	default:
		fprintf(stderr, "custodyctl: %s '%s': %s\n", what, name,
		        strerror(rc < 0 ? -rc : rc));
		return EXIT_RUNTIME;
	}
}

/* Record a refusal or failure in a transaction of its own. Only call when
 * no audit row was appended in a transaction that was rolled back. */
static void record_refusal(struct cli *c, const char *op, const char *target,
                           int rc)
{
	if (store_in_transaction(c->un.s))
		store_rollback(c->un.s);
	if (store_begin(c->un.s))
		return;
	if (cli_record(c, op, target, rc) || store_commit(c->un.s))
		store_rollback(c->un.s);
}

/*
 * Finish the transaction of op: with rc == 0 append the audit row and
 * commit; otherwise roll back and record the failure separately.
 */
static int finish(struct cli *c, const char *op, const char *target, int rc)
{
	if (rc) {
		record_refusal(c, op, target, rc);
		return rc;
	}
	if ((rc = cli_record(c, op, target, 0)) ||
	    (rc = store_commit(c->un.s)))
		store_rollback(c->un.s);
	return rc;
}

/* Load a user row by name: EXIT_OK, or prints one line and returns the
 * status (and records the refusal as op). */
static int load_user(struct cli *c, const char *op, const char *name,
                     struct store_user *u)
{
	int rc = store_user_get(c->un.s, name, u);

	if (rc == -ENOENT) {
		fprintf(stderr, "custodyctl: %s: no user '%s'\n", op, name);
		record_refusal(c, op, name, -ENOENT);
		return EXIT_RUNTIME;
	}
	if (rc)
		return report(op, name, rc);
	return EXIT_OK;
}

/* The row must carry the authority's signature before we sign or grant
 * anything for it. */
static int verify_user(struct cli *c, const char *op,
                       const struct store_user *u)
{
	if (auth_user_verify(u, c->un.ss->store_id, c->un.ss->authority_pk) ||
	    role_parse(u->role) == ROLE_NONE) {
		fprintf(stderr, "custodyctl: %s: user '%s' fails verification:"
		        " its row was tampered with (delete and re-add it)\n",
		        op, u->name);
		record_refusal(c, op, u->name, -EBADMSG);
		return EXIT_DAMAGE;
	}
	return EXIT_OK;
}

struct admin_count {
	const struct session *ss;
	int n;
};

static int count_admin(void *arg, const struct store_user *u)
{
	struct admin_count *ac = arg;

	/* only rows the authority signed count: an edited row is no admin */
	if (role_parse(u->role) == ROLE_ADMIN &&
	    auth_user_verify(u, ac->ss->store_id, ac->ss->authority_pk) == 0)
		ac->n++;
	return 0;
}

static int admins(struct cli *c, int *n)
{
	struct admin_count ac = { c->un.ss, 0 };
	int rc = store_user_each(c->un.s, count_admin, &ac);

	*n = ac.n;
	return rc < 0 ? rc : 0;
}

struct audit_grant_ctx {
	struct cli *c;
	int64_t user_id;
	const uint8_t *pk;
	uint8_t *sk;   /* locked scratch */
	int err;
};

static int audit_grant_one(void *arg, const struct store_key *k)
{
	struct audit_grant_ctx *a = arg;
	const struct session *ss = a->c->un.ss;
	struct store_grant g;
	int rc = store_grant_get(a->c->un.s, ss->user_id, k->version, "audit", &g);

	if (rc == -ENOENT)
		return 0; /* the admin holds none for this version: skip it */
	if (!rc && g.sealedlen != CIPHER_BOX_SK_BYTES + CIPHER_BOX_OVERHEAD)
		rc = -EBADMSG;
	if (!rc)
		rc = cipher_box_open(a->sk, g.sealed, g.sealedlen, ss->box_pk,
		                     ss->box_sk);
	if (!rc)
		rc = keyring_seal_grant(a->c->un.s, a->user_id, k->version, "audit", a->sk,
		                CIPHER_BOX_SK_BYTES, a->pk);
	cipher_wipe(a->sk, CIPHER_BOX_SK_BYTES);
	if (rc) {
		a->err = rc;
		return 1;
	}
	return 0;
}

/* Re-seal every "audit" grant the admin holds to pk, for user_id. */
static int grant_audit(struct cli *c, int64_t user_id,
                       const uint8_t pk[CIPHER_BOX_PK_BYTES])
{
	struct audit_grant_ctx a = { c, user_id, pk, NULL, 0 };
	int rc;

	if (!(a.sk = secmem_alloc(CIPHER_BOX_SK_BYTES)))
		return -ENOMEM;
	rc = store_key_each(c->un.s, audit_grant_one, &a);
	secmem_free(a.sk);
	if (a.err)
		return a.err;
	return rc < 0 ? rc : 0;
}

/* Data and audit grants of user_id according to role (replacing old ones). */
static int grant_by_role(struct cli *c, int64_t user_id, enum role role,
                         const uint8_t pk[CIPHER_BOX_PK_BYTES])
{
	int rc;

	if ((rc = keyring_grant_user(c->un.kr, c->un.s, c->un.ss, user_id,
	                             (int)role)) ||
	    (rc = store_grant_delete(c->un.s, user_id, -1, "audit")))
		return rc;
	if (role_reads_audit(role))
		rc = grant_audit(c, user_id, pk);
	return rc;
}

/* ---- add ---- */

static int user_add(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user add NAME --role admin|writer|reader|auditor\n"
	        "                           [--new-passfile FILE]\n"
	        "Create a user (admin only). The new passphrase comes from FILE's\n"
	        "first line, or is asked twice on the terminal. Admins, writers and\n"
	        "readers are granted every live key version; admins and auditors\n"
	        "can read the audit trail's details.\n";
	const char *name = NULL, *rolestr = NULL, *newpass = NULL, *v;
	struct passphrase pw = { 0 };
	struct store_user u;
	enum role role;
	int64_t id = 0;
	int rc, st, r;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if ((r = cli_opt_value(argc, argv, &i, "--role", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			rolestr = v;
		} else if ((r = cli_opt_value(argc, argv, &i, "--new-passfile", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			newpass = v;
		} else if (argv[i][0] == '-' || name) {
			fprintf(stderr, "custodyctl: user add: unexpected argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else
			name = argv[i];
	}
	if (!name || !rolestr) {
		fprintf(stderr, "custodyctl: user add needs NAME and --role ROLE"
		        " (see user add --help)\n");
		return EXIT_USAGE;
	}
	if (!auth_name_valid(name)) {
		fprintf(stderr, "custodyctl: invalid user name '%s' (1-64 of"
		        " A-Z a-z 0-9 . _ -, not starting with '-')\n", name);
		return EXIT_USAGE;
	}
	if ((role = role_parse(rolestr)) == ROLE_NONE) {
		fprintf(stderr, "custodyctl: unknown role '%s' (admin, writer,"
		        " reader or auditor)\n", rolestr);
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user add")))
		return st;
	rc = store_user_get(c->un.s, name, &u);
	if (rc == 0) {
		fprintf(stderr, "custodyctl: user '%s' exists\n", name);
		record_refusal(c, "user add", name, -EEXIST);
		return EXIT_RUNTIME;
	}
	if (rc != -ENOENT)
		return report("user add", name, rc);
	if ((st = cli_new_passphrase(c, newpass, name, &pw)))
		return st;
	if ((rc = store_begin(c->un.s))) {
		passphrase_free(&pw);
		return report("user add", name, rc);
	}
	rc = auth_user_add(c->un.s, &c->un.cfg, c->un.ss, name, role, &pw, &id);
	passphrase_free(&pw);
	if (!rc)
		rc = store_user_get_id(c->un.s, id, &u);
	if (!rc)
		rc = grant_by_role(c, id, role, u.box_pk);
	if ((rc = finish(c, "user add", name, rc))) {
		if (rc == -EEXIST) {
			fprintf(stderr, "custodyctl: user '%s' exists\n", name);
			return EXIT_RUNTIME;
		}
		return report("user add", name, rc);
	}
	printf("added user '%s' (%s)\n", name, role_name(role));
	return EXIT_OK;
}

/* ---- del ---- */

static int user_del(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user del NAME\n"
	        "Remove a user and every key grant they hold (admin only). The last\n"
	        "admin cannot be removed. To lock the user out of copies of the\n"
	        "store made before, rotate the key and re-encrypt afterwards.\n";
	struct store_user u;
	int n, rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "custodyctl: user del needs exactly one NAME\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user del")))
		return st;
	if ((st = load_user(c, "user del", argv[1], &u)))
		return st;
	if ((rc = store_begin(c->un.s)))
		return report("user del", argv[1], rc);
	if ((rc = admins(c, &n)))
		return report("user del", argv[1], finish(c, "user del", argv[1], rc));
	if (role_parse(u.role) == ROLE_ADMIN && n <= 1 &&
	    auth_user_verify(&u, c->un.ss->store_id, c->un.ss->authority_pk) == 0) {
		fprintf(stderr, "custodyctl: user del: '%s' is the last admin and"
		        " cannot be removed\n", u.name);
		finish(c, "user del", u.name, -EPERM);
		return EXIT_DENIED;
	}
	if (!(rc = store_grant_delete(c->un.s, u.id, -1, NULL)))
		rc = store_user_delete(c->un.s, u.id);
	if ((rc = finish(c, "user del", u.name, rc)))
		return report("user del", u.name, rc);
	printf("deleted user '%s'\n", u.name);
	return EXIT_OK;
}

/* ---- passwd ---- */

/* Admin reset: new key pair and passphrase (auth.c), then grants by role. */
static int reset_user(struct cli *c, struct store_user *u,
                      const struct passphrase *pw)
{
	int rc = auth_user_reset(c->un.s, &c->un.cfg, c->un.ss, u, pw);

	if (rc)
		return rc;
	return grant_by_role(c, u->id, role_parse(u->role), u->box_pk);
}

static int user_passwd(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user passwd [NAME] [--new-passfile FILE]\n"
	        "Without NAME (or with your own), change your own passphrase; no\n"
	        "data is re-encrypted. With another user's NAME (admin only), reset\n"
	        "their passphrase: they get a new key pair, every grant is re-sealed\n"
	        "to it, and a lockout is cleared. The new passphrase comes from\n"
	        "FILE's first line, or is asked twice on the terminal.\n";
	const char *name = NULL, *newpass = NULL, *v, *self = unlock_user(&c->u);
	struct passphrase pw = { 0 };
	struct store_user u;
	int rc, st, r, other;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if ((r = cli_opt_value(argc, argv, &i, "--new-passfile", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			newpass = v;
		} else if (argv[i][0] == '-' || name) {
			fprintf(stderr, "custodyctl: user passwd: unexpected argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		} else
			name = argv[i];
	}
	other = name && strcmp(name, self);
	if ((st = cli_unlock(c, 0, other ? 1 << ROLE_ADMIN : 0,
	                     "user passwd")))
		return st;
	if (!other) {
		if ((st = cli_new_passphrase(c, newpass, c->un.ss->name, &pw)))
			return st;
		if ((rc = store_begin(c->un.s)) == 0)
			rc = finish(c, "user passwd", c->un.ss->name,
			            auth_user_passwd(c->un.s, &c->un.cfg, c->un.ss,
			                             &pw));
		passphrase_free(&pw);
		if (rc)
			return report("user passwd", c->un.ss->name, rc);
		printf("changed the passphrase of '%s'\n", c->un.ss->name);
		return EXIT_OK;
	}
	if ((st = load_user(c, "user passwd", name, &u)) ||
	    (st = verify_user(c, "user passwd", &u)))
		return st;
	if ((st = cli_new_passphrase(c, newpass, name, &pw)))
		return st;
	if ((rc = store_begin(c->un.s)) == 0)
		rc = finish(c, "user passwd", u.name, reset_user(c, &u, &pw));
	passphrase_free(&pw);
	if (rc)
		return report("user passwd", name, rc);
	printf("reset the passphrase of '%s'\n", u.name);
	return EXIT_OK;
}

/* ---- role ---- */

static int user_role(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user role NAME admin|writer|reader|auditor\n"
	        "Change a user's role (admin only) and their key grants with it.\n"
	        "The last admin cannot be demoted. A user who loses data access\n"
	        "still knows the keys they held: rotate and re-encrypt to lock\n"
	        "them out of copies of the store.\n";
	struct store_user u;
	enum role role, old;
	int n, rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc != 3 || argv[1][0] == '-') {
		fprintf(stderr, "custodyctl: user role needs NAME and ROLE\n");
		return EXIT_USAGE;
	}
	if ((role = role_parse(argv[2])) == ROLE_NONE) {
		fprintf(stderr, "custodyctl: unknown role '%s' (admin, writer,"
		        " reader or auditor)\n", argv[2]);
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user role")))
		return st;
	if ((st = load_user(c, "user role", argv[1], &u)) ||
	    (st = verify_user(c, "user role", &u)))
		return st;
	old = role_parse(u.role);
	if ((rc = store_begin(c->un.s)))
		return report("user role", u.name, rc);
	if ((rc = admins(c, &n)))
		return report("user role", u.name, finish(c, "user role", u.name, rc));
	if (old == ROLE_ADMIN && role != ROLE_ADMIN && n <= 1) {
		fprintf(stderr, "custodyctl: user role: '%s' is the last admin and"
		        " cannot be demoted\n", u.name);
		finish(c, "user role", u.name, -EPERM);
		return EXIT_DENIED;
	}
	if (!(rc = auth_user_set_role(c->un.s, c->un.ss, u.id, role)))
		rc = grant_by_role(c, u.id, role, u.box_pk);
	if ((rc = finish(c, "user role", u.name, rc)))
		return report("user role", u.name, rc);
	printf("user '%s' is now %s (was %s)\n", u.name, role_name(role),
	       role_name(old));
	return EXIT_OK;
}

/* ---- unlock ---- */

static int user_unlock(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user unlock NAME\n"
	        "Clear a user's failed-attempt count and lockout (admin only).\n";
	struct store_user u;
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "custodyctl: user unlock needs exactly one NAME\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user unlock")))
		return st;
	if ((st = load_user(c, "user unlock", argv[1], &u)))
		return st;
	if ((rc = store_begin(c->un.s)) == 0)
		rc = finish(c, "user unlock", u.name,
		            auth_user_unlock(c->un.s, u.id));
	if (rc)
		return report("user unlock", u.name, rc);
	printf("unlocked user '%s'\n", u.name);
	return EXIT_OK;
}

/* ---- list ---- */

struct list_ctx {
	struct cli *c;
	int n;
	int64_t now;
};

static int list_one(void *arg, const struct store_user *u)
{
	struct list_ctx *l = arg;
	const struct session *ss = l->c->un.ss;
	int ok = auth_user_verify(u, ss->store_id, ss->authority_pk) == 0;
	int locked = u->locked_until > l->now;
	char created[32], last[32], until[32];

	cli_time(created, sizeof created, u->created);
	cli_time(last, sizeof last, u->last_login);
	cli_time(until, sizeof until, u->locked_until);
	if (l->c->json) {
		printf("%s\n  {\"name\":", l->n ? "," : "");
		cli_json_str(u->name);
		printf(",\"role\":");
		cli_json_str(u->role);
		printf(",\"created\":");
		cli_json_str(created);
		printf(",\"last_login\":");
		if (u->last_login > 0)
			cli_json_str(last);
		else
			printf("null");
		printf(",\"failed\":%lld,\"locked\":%s,\"locked_until\":",
		       (long long)u->failed, locked ? "true" : "false");
		if (locked)
			cli_json_str(until);
		else
			printf("null");
		printf(",\"verified\":%s}", ok ? "true" : "false");
	} else {
		if (!l->n)
			printf("%-20s %-8s %-20s %-20s %6s  %s\n", "NAME", "ROLE",
			       "CREATED", "LAST LOGIN", "FAILED", "LOCKED UNTIL");
		printf("%-20s %-8s %-20s %-20s %6lld  %s%s\n", u->name, u->role,
		       created, last, (long long)u->failed, locked ? until : "-",
		       ok ? "" : "  TAMPERED (row fails verification)");
	}
	l->n++;
	return 0;
}

static int user_list(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user list [--json]\n"
	        "Users with role, creation and last login times, failed attempts\n"
	        "and lockout (admin or auditor). A row whose authority signature\n"
	        "does not verify is marked TAMPERED (\"verified\": false in JSON).\n";
	struct list_ctx l = { c, 0, (int64_t)time(NULL) };
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else {
			fprintf(stderr, "custodyctl: user list: unknown argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	/* opened read-write so failed logins count towards the lockout */
	if ((st = cli_unlock(c, 0, (1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR),
	                     "user list")))
		return st;
	if (c->json)
		printf("[");
	rc = store_user_each(c->un.s, list_one, &l);
	if (c->json)
		printf("%s]\n", l.n ? "\n" : "");
	if (rc < 0)
		return report("user list", c->u.store, rc);
	return EXIT_OK;
}

int cmd_user(struct cli *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *c, int argc, char **argv);
	} sub[] = {
		{ "add", user_add },
		{ "del", user_del },
		{ "revoke", cli_user_revoke },
		{ "passwd", user_passwd },
		{ "role", user_role },
		{ "unlock", user_unlock },
		{ "list", user_list },
	};

	if (argc < 2) {
		fputs(user_help, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(user_help, stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
		if (!strcmp(argv[1], sub[i].name))
			return sub[i].fn(c, argc - 1, argv + 1);
	fprintf(stderr, "custodyctl: unknown user command '%s' (see user --help)\n",
	        argv[1]);
	return EXIT_USAGE;
}
