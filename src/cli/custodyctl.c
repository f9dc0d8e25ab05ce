/*
 * custodyctl.c - the admin CLI: global options, then a command table
 * dispatching to cmd_<verb>() in cli_*.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cipher.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: custodyctl [-s STORE] [-u USER] [--passfile FILE | --extpass CMD]\n"
"                  [-c CONFIG] [--accept-rollback] [--recovery FILE]\n"
"                  COMMAND [ARGS...]\n"
"\n"
"Commands:\n"
"  init [--recovery-file FILE]  create a new store; USER is its first admin\n"
"  info [--json]                format, sizes, counts, key versions, users\n"
"  check [--json] [--repair [--zero-unreadable]]\n"
"                               decrypt and verify everything (exit 4 on\n"
"                               damage); --repair fixes what it can\n"
"  backup DEST [--force]        consistent copy, safe while mounted\n"
"  compact                      reclaim free space (refused while mounted)\n"
"  upgrade [--reset-dir DIR] [--recovery-file F]\n"
"                               migrate the store format forward (0.1: --help)\n"
"  user add NAME --role ROLE [--new-passfile FILE]\n"
"  user del NAME | user revoke NAME [--destroy] [--rate MiB/s]\n"
"  user passwd [NAME] [--new-passfile FILE] | user role NAME ROLE\n"
"  user unlock NAME | user list [--json] [--all]\n"
"  key list [--json] | key rotate [--authority] | key retire V\n"
"  key destroy V [--yes]\n"
"  reencrypt [--rate MiB/s]     move everything to the active key version\n"
"  audit list [FILTERS] [--json] [--follow] | audit verify [--json]\n"
"  audit export [--format json|csv] [FILTERS] | audit prune --before T\n"
"      FILTERS: --since T --until T --user U --uid UID --op OP\n"
"               --path PREFIX --result ok|fail\n"
"  login [-m|--mount MNT] [--idle D] [--maxage D]  your session on a\n"
"                               shared mount (custodyfs -o allow_other)\n"
"  logout [-m|--mount MNT] | whoami [-m|--mount MNT]\n"
"\n"
"Global options:\n"
"  -s STORE          the store file (default: $CUSTODY_STORE)\n"
"  -u USER           store user (default: your login name)\n"
"  --passfile FILE   passphrase from FILE's first line\n"
"  --extpass CMD     passphrase from the output of CMD\n"
"  -c CONFIG         configuration file\n"
"  --accept-rollback open a store older than one this user saw at its path\n"
"                    (put back from an older copy) and make it the current\n"
"                    one: a warning, an audit row, and the local state of\n"
"                    the store restarts from it\n"
"  --recovery FILE   act as the recovery secret (the hex line init gave;\n"
"                    FILE '-': asked on the terminal) instead of a user: an\n"
"                    admin, e.g. 'user passwd NAME' resets a lost admin\n"
"  -h, --help        help (also COMMAND --help);  -V, --version\n"
"\n"
"Exit status: 0 ok, 1 error, 2 usage, 3 authentication failed,\n"
"4 damage or tampering found, 5 not allowed for this role, 6 store busy.\n");
}

static const struct {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
	{ "init", cmd_init },
	{ "info", cmd_info },
	{ "check", cmd_check },
	{ "backup", cmd_backup },
	{ "compact", cmd_compact },
	{ "upgrade", cmd_upgrade },
	{ "user", cmd_user },
	{ "key", cmd_key },
	{ "reencrypt", cmd_reencrypt },
	{ "audit", cmd_audit },
	{ "login", cmd_login },
	{ "logout", cmd_logout },
	{ "whoami", cmd_whoami },
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "passfile", required_argument, NULL, 'P' },
		{ "extpass", required_argument, NULL, 'E' },
		{ "accept-rollback", no_argument, NULL, 'R' },
		{ "recovery", required_argument, NULL, 'Y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c;
	int opt;

	memset(&c, 0, sizeof c);
	c.u.prog = "custodyctl";
	c.u.store = getenv("CUSTODY_STORE");
	c.started_ms = cli_now_ms();
	c.tty = isatty(STDERR_FILENO);
	c.u.wait_notice = cli_wait_notice;
	c.u.wait_arg = &c;
	/* "+": stop at the command; its own options follow it. ":": our own
	 * one-line messages for a missing value */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:u:c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': c.u.store = optarg; break;
		case 'u': c.u.user = optarg; break;
		case 'c': c.u.config = optarg; break;
		case 'P': c.u.passfile = optarg; break;
		case 'E': c.u.extpass = optarg; break;
		case 'Y': c.recovery_file = optarg; break;
		case 'R': c.u.accept_rollback = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("custodyctl %s\n", CUSTODY_VERSION); return EXIT_OK;
		case ':':
			fprintf(stderr, "custodyctl: option '%s' needs a value (see"
			        " custodyctl --help)\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "custodyctl: unknown option '%s' (see custodyctl"
			        " --help)\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "custodyctl: no command given (see custodyctl"
		        " --help)\n");
		return EXIT_USAGE;
	}
	if (c.u.passfile && c.u.extpass) {
		fprintf(stderr, "custodyctl: --passfile and --extpass exclude each"
		        " other\n");
		return EXIT_USAGE;
	}
	unlock_harden();
	if (cipher_init() != 0) {
		fprintf(stderr, "custodyctl: cannot initialise libsodium\n");
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[optind], commands[i].name)) {
			int st;
			optind++;
			st = commands[i].fn(&c, argc - optind + 1, argv + optind - 1);
			/* a damaged store read as it stands: whatever the command
			 * found, the store fails verification (said at open) */
			if (st == EXIT_OK && c.unlocked && c.un.damaged)
				st = EXIT_DAMAGE;
			cli_done(&c);
			return st;
		}
	fprintf(stderr, "custodyctl: unknown command '%s' (see custodyctl --help)\n",
	        argv[optind]);
	return EXIT_USAGE;
}
