/*
 * cli_login.c - custodyctl login, logout, whoami: the caller's session on a
 * running mount shared with other users (custodyfs -o allow_other). The
 * passphrase goes to the mount's daemon over its login socket
 * (handover.h); the daemon knows the caller from the kernel, not from
 * anything said here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "handover.h"
#include "passphrase.h"

/* Parse the common options; 0, or an exit status. */
static int parse(struct cli *c, int argc, char **argv, int login,
                 const char **mnt, struct handover_req *rq)
{
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		int r;
		if ((r = cli_opt_value(argc, argv, &i, "-m", &v)) ||
		    (r = cli_opt_value(argc, argv, &i, "--mount", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			*mnt = v;
		} else if (login && ((r = cli_opt_value(argc, argv, &i, "--idle",
		                                        &v)) ||
		                     (r = 2 * cli_opt_value(argc, argv, &i,
		                                            "--maxage", &v)))) {
			int64_t ms;
			if (r < 0)
				return EXIT_USAGE;
			ms = config_parse_duration_ms(v);
			if (ms < 1000 || ms / 1000 > UINT32_MAX) {
				fprintf(stderr, "custodyctl: login: bad duration '%s' (e.g."
				        " 30m, 8h; at least 1s)\n", v);
				return EXIT_USAGE;
			}
			if (r == 1)
				rq->idle_s = (uint32_t)(ms / 1000);
			else
				rq->maxage_s = (uint32_t)(ms / 1000);
		} else if (login && (r = cli_opt_value(argc, argv, &i, "-u", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			c->u.user = v;
		} else if (login && (r = cli_opt_value(argc, argv, &i, "--passfile",
		                                       &v))) {
			if (r < 0)
				return EXIT_USAGE;
			c->u.passfile = v;
		} else if (login && (r = cli_opt_value(argc, argv, &i, "--extpass",
		                                       &v))) {
			if (r < 0)
				return EXIT_USAGE;
			c->u.extpass = v;
		} else if (argv[i][0] != '-' && !*mnt) {
			*mnt = argv[i];
		} else {
			fprintf(stderr, "custodyctl: %s: unexpected '%s' (see %s"
			        " --help)\n", argv[0], argv[i], argv[0]);
			return EXIT_USAGE;
		}
	}
	if (c->u.passfile && c->u.extpass) {
		fprintf(stderr, "custodyctl: --passfile and --extpass exclude each"
		        " other\n");
		return EXIT_USAGE;
	}
	return 0;
}

/* Send rq to the daemon of the mount at mnt and print its answer. */
static int ask(const char *cmd, const char *mnt, struct handover_req *rq)
{
	char point[PATH_MAX], path[256], why[512], msg[HANDOVER_MSG_MAX + 1];
	uint32_t owner;
	int fd, rc, status;

	if ((rc = handover_mount(mnt, point, &owner, why, sizeof why))) {
		fprintf(stderr, "custodyctl: %s: %s\n", cmd, why);
		return rc == -EEXIST ? EXIT_USAGE : EXIT_RUNTIME;
	}
	handover_path(point, path, sizeof path);
	if ((rc = handover_connect(path, owner, &fd, why, sizeof why))) {
		fprintf(stderr, "custodyctl: %s: %s\n", cmd, why);
		return EXIT_RUNTIME;
	}
	rc = handover_send(fd, rq);
	/* a daemon that refused at once (busy) has answered already: read
	 * its answer even when the request could not be sent */
	if (!rc || rc == -EPIPE || rc == -ECONNRESET)
		rc = handover_result(fd, &status, msg, sizeof msg);
	close(fd);
	if (rc) {
		fprintf(stderr, "custodyctl: %s: no answer from the daemon of %s:"
		        " %s\n", cmd, point, strerror(-rc));
		return EXIT_RUNTIME;
	}
	if (status == EXIT_OK)
		printf("%s\n", msg);
	else
		fprintf(stderr, "custodyctl: %s: %s\n", cmd, msg);
	return status;
}

int cmd_login(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl [-u USER] [--passfile F|--extpass C] login\n"
	"                  [-m|--mount MOUNTPOINT] [--idle DURATION] [--maxage DURATION]\n"
	"Start your session on a mount shared with other users (custodyfs -o\n"
	"allow_other): from now on the daemon serves your uid's requests as store\n"
	"user USER (default: your login name) with USER's role and keys only.\n"
	"The passphrase goes to the mount's daemon over its login socket; the\n"
	"daemon knows your uid from the kernel. One session per uid: logging in\n"
	"again replaces it. It ends on logout, after --idle without requests or\n"
	"--maxage in all, at unmount, and at once when an admin removes, demotes,\n"
	"resets or revokes USER. Without -m: the only shared custodyfs mount.\n"
	"Exit status: 0 logged in, 1 error, 2 usage, 3 authentication failed,\n"
	"4 the store fails verification, 5 the role has nothing on a mount.\n";
	struct handover_req rq;
	const char *mnt = NULL, *user;
	char prompt[128], err[512];
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	memset(&rq, 0, sizeof rq);
	if ((st = parse(c, argc, argv, 1, &mnt, &rq)))
		return st;
	user = unlock_user(&c->u);
	if (!user || strlen(user) >= sizeof rq.name) {
		fprintf(stderr, "custodyctl: login: no user name (-u USER)\n");
		return EXIT_USAGE;
	}
	snprintf(rq.name, sizeof rq.name, "%s", user);
	snprintf(prompt, sizeof prompt, "Passphrase for %s: ", user);
	if (passphrase_get(c->u.passfile, c->u.extpass, prompt, 0, &rq.pw, err,
	                   sizeof err)) {
		fprintf(stderr, "custodyctl: %s\n", err);
		return EXIT_USAGE;
	}
	rq.op = HANDOVER_LOGIN;
	st = ask("login", mnt, &rq);
	passphrase_free(&rq.pw);
	return st;
}

int cmd_logout(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl logout [-m|--mount MOUNTPOINT]\n"
	"End your uid's session on a shared mount: its keys are wiped in the\n"
	"daemon and your requests are refused from then on.\n";
	struct handover_req rq;
	const char *mnt = NULL;
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	memset(&rq, 0, sizeof rq);
	if ((st = parse(c, argc, argv, 0, &mnt, &rq)))
		return st;
	rq.op = HANDOVER_LOGOUT;
	return ask("logout", mnt, &rq);
}

int cmd_whoami(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl whoami [-m|--mount MOUNTPOINT]\n"
	"Which store user a shared mount serves your uid as, and since when.\n"
	"Exit status 3 when your uid has no session there.\n";
	struct handover_req rq;
	const char *mnt = NULL;
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	memset(&rq, 0, sizeof rq);
	if ((st = parse(c, argc, argv, 0, &mnt, &rq)))
		return st;
	rq.op = HANDOVER_STATUS;
	return ask("whoami", mnt, &rq);
}
