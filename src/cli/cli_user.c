/*
 * cli_user.c - custodyctl user add | del | passwd | role | unlock | list.
 *
 * Every change runs in one audited transaction (cli_begin/cli_finish)
 * together with its audit row and commit, so the trail never shows a change
 * that did not happen or misses one that did; refusals are recorded in a
 * transaction of their own. Users are looked up in the verified roster,
 * never in a row: a row inserted or edited with sqlite3 names nobody.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cli.h"
#include "keyadmin.h"
#include "passphrase.h"
#include "rights.h"
#include "session.h"
#include "store.h"

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

/* The live user called name in the verified roster: EXIT_OK, or one
 * line and the status (the caller's cli_finish records the refusal). */
static int find_user(struct cli *c, const char *op, const char *name,
                     const struct rights_user **u)
{
	*u = rights_user_named(c->un.r, name);
	if (!*u) {
		fprintf(stderr, "custodyctl: %s: no user '%s'\n", op, name);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
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
	struct rights_policy pol;
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
	if (rights_user_named(c->un.r, name)) {
		fprintf(stderr, "custodyctl: user '%s' exists\n", name);
		cli_record(c, "user add", name, -EEXIST);
		return EXIT_RUNTIME;
	}
	if ((st = cli_new_passphrase(c, newpass, name, &pw)))
		return st;
	if ((rc = cli_begin(c))) {
		passphrase_free(&pw);
		return cli_report("user add", name, rc);
	}
	auth_policy(&c->un.r->policy, &c->un.cfg, &pol);
	rc = keyadmin_user_add(c->un.s, c->un.r, c->un.ss, &pol, name, role, &pw,
	                       &id);
	passphrase_free(&pw);
	if (!rc)
		rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
	if (!rc)
		rc = unlock_cred_changed_id(&c->un, id);
	if ((rc = cli_finish(c, "user add", name, rc))) {
		if (rc == -EEXIST) {
			fprintf(stderr, "custodyctl: user '%s' exists\n", name);
			return EXIT_RUNTIME;
		}
		return cli_report("user add", name, rc);
	}
	printf("added user '%s' (%s)\n", name, role_name(role));
	return EXIT_OK;
}

/* ---- del ---- */

static int user_del(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user del NAME\n"
	        "Remove a user and every key grant they hold (admin only). Removing\n"
	        "an admin replaces the store authority, so their copy of it signs\n"
	        "nothing anyone accepts. The last admin cannot be removed, and an\n"
	        "admin cannot remove themself. To lock the user out of copies of\n"
	        "the store made before, rotate the key and re-encrypt afterwards\n"
	        "(or use user revoke, which does all of it).\n";
	const struct rights_user *u;
	char name[65];
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "custodyctl: user del needs exactly one NAME\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user del")))
		return st;
	if ((rc = cli_begin(c)))
		return cli_report("user del", argv[1], rc);
	if ((st = find_user(c, "user del", argv[1], &u))) {
		cli_finish(c, "user del", argv[1], -ENOENT);
		return st;
	}
	snprintf(name, sizeof name, "%s", u->name);
	if (u->id == c->un.ss->user_id) {
		fprintf(stderr, "custodyctl: user del: an admin cannot remove"
		        " themself%s\n", keyadmin_admins(c->un.r) <= 1
		        ? " (and this is the last admin)" : "");
		cli_finish(c, "user del", name, -EPERM);
		return EXIT_RUNTIME;
	}
	if (rights_role(u) == ROLE_ADMIN && keyadmin_admins(c->un.r) <= 1) {
		fprintf(stderr, "custodyctl: user del: '%s' is the last admin and"
		        " cannot be removed\n", name);
		cli_finish(c, "user del", name, -EPERM);
		return EXIT_RUNTIME;
	}
	{
		int64_t id = u->id;
		rc = keyadmin_user_remove(c->un.s, c->un.r, c->un.ss, id);
		if (!rc)
			rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
		if (!rc)
			rc = unlock_cred_changed_id(&c->un, id);
	}
	if ((rc = cli_finish(c, "user del", name, rc)))
		return cli_report("user del", name, rc);
	printf("deleted user '%s'\n", name);
	return EXIT_OK;
}

/* ---- passwd ---- */

static int user_passwd(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user passwd [NAME] [--new-passfile FILE]\n"
	        "Without NAME (or with your own), change your own passphrase; no\n"
	        "data is re-encrypted. With another user's NAME (admin only), reset\n"
	        "their passphrase: they get new key pairs, every grant is re-sealed\n"
	        "to them, and a lockout is cleared. The new passphrase comes from\n"
	        "FILE's first line, or is asked twice on the terminal.\n";
	const char *name = NULL, *newpass = NULL, *v, *self = unlock_user(&c->u);
	struct passphrase pw = { 0 };
	struct rights_policy pol;
	const struct rights_user *u;
	char who[65];
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
	if ((st = cli_unlock(c, 0, other ? 1 << ROLE_ADMIN : 0, "user passwd")))
		return st;
	if ((st = cli_new_passphrase(c, newpass, other ? name : c->un.ss->name,
	                             &pw)))
		return st;
	if ((rc = cli_begin(c))) {
		passphrase_free(&pw);
		return cli_report("user passwd", name ? name : self, rc);
	}
	auth_policy(&c->un.r->policy, &c->un.cfg, &pol);
	if (!other) {
		snprintf(who, sizeof who, "%s", c->un.ss->name);
		rc = auth_passwd(c->un.s, &pol, c->un.ss, &pw);
		if (!rc)
			rc = unlock_cred_changed(&c->un);
	} else if ((st = find_user(c, "user passwd", name, &u))) {
		passphrase_free(&pw);
		cli_finish(c, "user passwd", name, -ENOENT);
		return st;
	} else {
		/* an admin resetting another user */
		snprintf(who, sizeof who, "%s", u->name);
		int64_t id = u->id;
		rc = keyadmin_user_reset(c->un.s, c->un.r, c->un.ss, &pol, id, &pw);
		if (!rc)
			rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
		if (!rc)
			rc = unlock_cred_changed_id(&c->un, id);
	}
	passphrase_free(&pw);
	if ((rc = cli_finish(c, "user passwd", who, rc)))
		return cli_report("user passwd", who, rc);
	printf("%s the passphrase of '%s'\n", other ? "reset" : "changed", who);
	return EXIT_OK;
}

/* ---- role ---- */

static int user_role(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user role NAME admin|writer|reader|auditor\n"
	        "Change a user's role (admin only) and their key grants with it.\n"
	        "Demoting an admin replaces the store authority. The last admin\n"
	        "cannot be demoted. A user who loses data access still knows the\n"
	        "keys they held: rotate and re-encrypt to lock them out of copies\n"
	        "of the store.\n";
	const struct rights_user *u;
	enum role role, old;
	char name[65];
	int rc, st;

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
	if ((rc = cli_begin(c)))
		return cli_report("user role", argv[1], rc);
	if ((st = find_user(c, "user role", argv[1], &u))) {
		cli_finish(c, "user role", argv[1], -ENOENT);
		return st;
	}
	snprintf(name, sizeof name, "%s", u->name);
	old = rights_role(u);
	if (old == ROLE_ADMIN && role != ROLE_ADMIN &&
	    keyadmin_admins(c->un.r) <= 1) {
		fprintf(stderr, "custodyctl: user role: '%s' is the last admin and"
		        " cannot be demoted\n", name);
		cli_finish(c, "user role", name, -EPERM);
		return EXIT_RUNTIME;
	}
	rc = keyadmin_user_role(c->un.s, c->un.r, c->un.ss, u->id, role);
	if (!rc)
		rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
	if ((rc = cli_finish(c, "user role", name, rc)))
		return cli_report("user role", name, rc);
	printf("user '%s' is now %s (was %s)\n", name, role_name(role),
	       role_name(old));
	return EXIT_OK;
}

/* ---- unlock ---- */

static int user_unlock(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user unlock NAME\n"
	        "Clear a user's failed-attempt count and lockout (admin only).\n";
	const struct rights_user *u;
	char name[65];
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "custodyctl: user unlock needs exactly one NAME\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "user unlock")))
		return st;
	if ((rc = cli_begin(c)))
		return cli_report("user unlock", argv[1], rc);
	if ((st = find_user(c, "user unlock", argv[1], &u))) {
		cli_finish(c, "user unlock", argv[1], -ENOENT);
		return st;
	}
	snprintf(name, sizeof name, "%s", u->name);
	rc = auth_unlock(c->un.s, u->id);
	if ((rc = cli_finish(c, "user unlock", name, rc)))
		return cli_report("user unlock", name, rc);
	printf("unlocked user '%s'\n", name);
	return EXIT_OK;
}

/* ---- list ---- */

static int user_list(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl user list [--json] [--all]\n"
	        "Users of the signed roster with role, creation and last login\n"
	        "times, failed attempts and lockout (admin or auditor). --all also\n"
	        "lists removed users (the roster keeps them: commits they signed\n"
	        "stay verifiable).\n";
	int64_t now = (int64_t)time(NULL);
	int all = 0, n = 0, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--all"))
			all = 1;
		else {
			fprintf(stderr, "custodyctl: user list: unknown argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY,
	                     (1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR), "user list")))
		return st;
	cli_record(c, "user list", "", 0);
	if (c->json)
		printf("[");
	for (size_t i = 0; i < c->un.r->nusers; i++) {
		const struct rights_user *u = &c->un.r->users[i];
		enum role role = rights_role(u);
		struct store_login l;
		struct store_cred cr;
		char created[32], last[32], until[32];
		int locked;

		if (role == ROLE_REMOVED && !all)
			continue;
		store_login_get(c->un.s, u->id, &l);
		memset(&cr, 0, sizeof cr);
		store_cred_get_id(c->un.s, u->id, &cr);
		locked = l.locked_until > now;
		cli_time(created, sizeof created, cr.created);
		cli_time(last, sizeof last, l.last_login);
		cli_time(until, sizeof until, l.locked_until);
		if (c->json) {
			printf("%s\n  {\"name\":", n ? "," : "");
			cli_json_str(u->name);
			printf(",\"id\":%lld,\"role\":", (long long)u->id);
			cli_json_str(role_name(role));
			printf(",\"created\":");
			if (cr.created > 0)
				cli_json_str(created);
			else
				printf("null");
			printf(",\"last_login\":");
			if (l.last_login > 0)
				cli_json_str(last);
			else
				printf("null");
			printf(",\"failed\":%lld,\"locked\":%s,\"locked_until\":",
			       (long long)l.failed, locked ? "true" : "false");
			if (locked)
				cli_json_str(until);
			else
				printf("null");
			printf("}");
		} else {
			if (!n)
				printf("%-20s %-8s %-20s %-20s %6s  %s\n", "NAME", "ROLE",
				       "CREATED", "LAST LOGIN", "FAILED", "LOCKED UNTIL");
			printf("%-20s %-8s %-20s %-20s %6lld  %s\n", u->name,
			       role_name(role), created, last, (long long)l.failed,
			       locked ? until : "-");
		}
		n++;
	}
	if (c->json)
		printf("%s]\n", n ? "\n" : "");
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
		fprintf(stderr, "custodyctl: user needs a command (add, del, revoke,"
		        " passwd, role, unlock, list; see custodyctl user --help)\n");
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
