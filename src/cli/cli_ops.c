/*
 * cli_ops.c - custodyctl's day-two commands: backup (a consistent copy,
 * safe while mounted), compact (the purge queue through the filesystem
 * layer, then VACUUM) and upgrade (format migrations).
 * The work itself is in store_backup.c; this file parses arguments, checks
 * roles, shows progress, and records each action in the audit trail.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "fs.h"
#include "keyadmin.h"
#include "rights.h"
#include "store.h"
#include "store_backup.h"

/* Record op in the trail in its own short transaction (waits for the
 * write lock up to the busy timeout). Prints a warning if that fails. */
static void record(struct cli *c, const char *op, const char *target, int rc)
{
	int err;

	if (c->un.readonly)
		return;
	if ((err = cli_record(c, op, target, rc)))
		fprintf(stderr, "custodyctl: warning: %s not recorded in the audit"
		        " trail: %s\n", op, err == -EBUSY ? "store is busy"
		                                          : strerror(-err));
}

/* ---- backup ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct progress {
	struct cli *c;
	const char *what;
	int64_t started;
};

static int show_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;

	cli_progress(p->c, p->what, done, total, p->started, done >= total);
	return interrupted;
}

int cmd_backup(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl -s STORE backup DEST [--force]\n"
"Write a consistent copy of the store to DEST, also while it is mounted and\n"
"being written (SQLite's online backup, a few MiB at a time, so the mount\n"
"is never held up). The copy goes to DEST.tmp (mode 0600), is synced, then\n"
"renamed to DEST: DEST is complete or absent, never half written. The copy\n"
"is a store like the original, marked as a copy of its own (a new store\n"
"instance, signed by your session): mount it, or check it with custodyctl\n"
"check, without the original ever looking rolled back.\n"
"Any store user may back up; the backup is recorded in the audit trail when\n"
"the store file is writable for you.\n"
"  --force   replace an existing DEST\n"
"Exit status: 0 done, 1 error (DEST exists without --force, I/O error),\n"
"2 usage, 3 authentication failed, 6 store busy.\n";
	struct sigaction sa, old_int, old_term, old_hup;
	struct progress p = { c, "backup", 0 };
	const char *dest = NULL;
	char why[512];
	uint64_t pages = 0;
	struct stat sb;
	int force = 0, writable, rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
			force = 1;
		else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "custodyctl: backup: unknown option '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		} else if (!dest)
			dest = argv[i];
		else {
			fprintf(stderr, "custodyctl: backup takes one DEST\n");
			return EXIT_USAGE;
		}
	}
	if (!dest || !dest[0]) {
		fprintf(stderr, "custodyctl: backup: no DEST given (see custodyctl"
		        " backup --help)\n");
		return EXIT_USAGE;
	}
	/* before asking for a passphrase: store_backup checks again, atomically */
	if (!force && lstat(dest, &sb) == 0) {
		fprintf(stderr, "custodyctl: cannot back up to '%s': file exists"
		        " (--force replaces it)\n", dest);
		return EXIT_RUNTIME;
	}
	writable = c->u.store && access(c->u.store, W_OK) == 0;
	if ((st = cli_unlock(c, writable ? 0 : STORE_READONLY, 0, "backup")))
		return st;
	if (c->un.damaged)
		return EXIT_DAMAGE; /* no copy of records beyond the signed head */

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: stop between steps */
	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	p.started = cli_now_ms();
	rc = store_backup(c->un.s, dest, force, (int)c->un.cfg.busy_timeout_ms,
	                  show_progress, &p, &pages, why, sizeof why);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);

	if (!rc && !c->un.readonly &&
	    (rc = unlock_fork(&c->un, dest, why, sizeof why))) {
		/* a copy that is not an instance of its own would look like a
		 * rollback of the original when checked: it goes */
		unlink(dest);
		record(c, "backup", dest, rc);
		fprintf(stderr, "custodyctl: cannot back up to '%s': the copy could"
		        " not be made a store of its own: %s\n", dest, why);
		return EXIT_RUNTIME;
	}
	if (writable)
		record(c, "backup", dest, rc);
	if (rc) {
		fprintf(stderr, "custodyctl: cannot back up to '%s': %s\n", dest, why);
		return rc == -EBUSY ? EXIT_BUSY : rc == -EINVAL ? EXIT_USAGE
		                                                : EXIT_RUNTIME;
	}
	{
		int64_t ms = cli_now_ms() - p.started;
		off_t bytes = stat(dest, &sb) == 0 ? sb.st_size : 0;
		printf("backed up '%s' to '%s': %llu pages, %lld bytes in %lld.%03llds\n",
		       c->u.store, dest, (unsigned long long)pages, (long long)bytes,
		       (long long)(ms / 1000), (long long)(ms % 1000));
	}
	if (!writable)
		fprintf(stderr, "custodyctl: note: the store is read-only for you:"
		        " this backup is not in the audit trail\n");
	return EXIT_OK;
}

/* ---- compact ---- */

static void fs_warn_line(const char *line)
{
	fprintf(stderr, "custodyctl: %s\n", line);
}

struct purge_count {
	struct progress p;
	uint64_t done;
};

static int show_purge(void *arg, uint64_t done, uint64_t total)
{
	struct purge_count *pc = arg;

	pc->done = done;
	cli_progress(pc->p.c, pc->p.what, done, total, pc->p.started, 0);
	return 0;
}

/*
 * Finish the purge queue through the filesystem layer (each batch its own
 * signed commit), with the store already ours alone: files a crashed
 * mount left unlinked while open are freed first, as a mount would.
 */
static int purge_first(struct cli *c, uint64_t *blocks, char *why,
                       size_t whylen)
{
	struct fs_opts fo = { .warn = fs_warn_line };
	struct purge_count pc = { { c, "purge", cli_now_ms() }, 0 };
	struct fs *fs = NULL;
	int rc, r;

	*blocks = 0;
	if ((rc = fs_new(&c->un, &fo, &fs))) {
		snprintf(why, whylen, "cannot open the filesystem to purge deleted"
		         " files: %s", rc == -EIO ? "it fails verification"
		                                  : strerror(-rc));
		return rc;
	}
	rc = fs_purge_all(fs, show_purge, &pc);
	if (pc.done)
		cli_progress(c, "purge", pc.done, pc.done, pc.p.started, 1);
	r = fs_free(fs);
	if (!rc)
		rc = r;
	if (rc)
		snprintf(why, whylen, "purging deleted files failed: %s",
		         strerror(-rc));
	*blocks = pc.done;
	return rc;
}

int cmd_compact(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl -s STORE compact\n"
"Give the space of deleted files back to the file system. First the purge\n"
"queue is finished: the blocks of deleted files that a mount had not yet\n"
"removed are deleted (in batches, each a signed commit; `info` shows what\n"
"is pending). Then the store file is rebuilt without its free pages\n"
"(SQLite VACUUM) and the WAL emptied, in the page size the store's block\n"
"size calls for (32 KiB for 4 KiB blocks; stores made by custodyfs 0.2.5 or\n"
"older have 64 KiB pages). Freed pages hold zeros already\n"
"(secure_delete), so deleted content is gone from the file either way;\n"
"compact makes it smaller. It needs the store to itself: unmount it first\n"
"(otherwise it waits for the busy timeout and exits 6). The rebuild needs\n"
"free disk space about the size of the store, for a temporary copy in\n"
"$SQLITE_TMPDIR (default /var/tmp); one that changes the page size about\n"
"twice that (it goes through a rollback journal). Admin only.\n"
"Exit status: 0 done, 1 error, 2 usage, 3 authentication failed,\n"
"5 not an admin, 6 store busy (mounted or open elsewhere).\n";
	struct progress p = { c, "compact", 0 };
	struct store_size before, after;
	uint64_t purged = 0, pages, psize = 0, psize_after = 0, freep, total;
	char why[512];
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc > 1) {
		fprintf(stderr, "custodyctl: compact takes no arguments\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "compact")))
		return st;
	p.started = cli_now_ms();
	rc = store_lock_exclusive(c->un.s, why, sizeof why);
	if (!rc && ((rc = store_size(c->un.s, &before)) ||
	            (rc = store_file_stats(c->un.s, &pages, &psize, &freep))))
		snprintf(why, sizeof why, "cannot read the store's size");
	if (!rc)
		rc = purge_first(c, &purged, why, sizeof why);
	if (!rc) {
		struct store_size mid;
		rc = store_vacuum(c->un.s, store_page_size(c->un.r->policy.block_size),
		                  show_progress, &p, &mid, &after, why, sizeof why);
	}
	if (!rc && store_file_stats(c->un.s, &pages, &psize_after, &freep))
		psize_after = 0;
	record(c, "compact", c->u.store, rc);
	if (rc) {
		fprintf(stderr, "custodyctl: cannot compact '%s': %s\n", c->u.store,
		        why);
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	if (purged)
		printf("purged %llu blocks of deleted files\n",
		       (unsigned long long)purged);
	total = before.file_bytes + before.wal_bytes;
	printf("compacted '%s': %llu bytes (WAL %llu) -> %llu bytes, ",
	       c->u.store, (unsigned long long)before.file_bytes,
	       (unsigned long long)before.wal_bytes,
	       (unsigned long long)after.file_bytes);
	if (after.file_bytes > total)
		printf("%llu more", (unsigned long long)(after.file_bytes - total));
	else
		printf("%llu freed", (unsigned long long)(total - after.file_bytes));
	if (psize_after && psize != psize_after)
		/* smaller pages hold a little less (README, "Store") */
		printf("; in %llu KiB pages (were %llu KiB)",
		       (unsigned long long)psize_after / 1024,
		       (unsigned long long)psize / 1024);
	printf("\n");
	return EXIT_OK;
}

/* ---- upgrade ---- */

/* The format of the file at path (0 if it cannot be told: the ordinary
 * open then says why). */
static int format_of(const char *path)
{
	struct store *s = NULL;
	int fmt = 0;

	if (path && store_open(path, STORE_READONLY | STORE_ANYFORMAT, 1000, &s,
	                       NULL, 0) == 0)
		fmt = store_format(s);
	store_close(s);
	return fmt;
}

int cmd_upgrade(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl -s STORE -u ADMIN upgrade [--reset-dir DIR]\n"
"                  [--recovery-file FILE]\n"
"Migrate the store file to this binary's format (see custodyctl info).\n"
"A store made by a newer custodyfs is refused by every command (exit 1):\n"
"upgrade the binaries instead. Admin only.\n"
"A store whose roster custodyfs 0.2.0 signed (no anchor: every other\n"
"command refuses it, exit 4) gets it signed again with its anchor.\n"
"From format 1 (custodyfs 0.1), run it as a format-1 admin with their\n"
"passphrase, with the store unmounted. The store is verified as 0.1 did\n"
"(exit 4 if it fails, nothing changed), then rebuilt as format 2 in\n"
"STORE.upgrade.tmp in one transaction, synced and renamed over STORE:\n"
"STORE is untouched until then, and an interrupted run is simply run\n"
"again. Users, ids, names, roles, key versions, files and the audit trail\n"
"carry over; the admin keeps their passphrase. Every other user gets a\n"
"one-time passphrase in DIR/NAME.pass (mode 0600, never overwritten):\n"
"their format-1 passphrase no longer works, and each must log in with it\n"
"once and run 'custodyctl user passwd'. A new recovery secret is printed\n"
"once, or written to FILE (as init).\n"
"  --reset-dir DIR       where the one-time passphrases go (required when\n"
"                        the store has other users)\n"
"  --recovery-file FILE  write the recovery secret to FILE (created 0600)\n"
"Exit status: 0 done (or nothing to do), 1 error, 2 usage,\n"
"3 authentication failed, 4 the store fails verification, 5 not an admin,\n"
"6 store busy (mounted).\n";
	const char *reset_dir = NULL, *rfile = NULL, *val;
	char why[512], target[64];
	int64_t from = 0, to = 0;
	int rc, st, r;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if ((r = cli_opt_value(argc, argv, &i, "--reset-dir", &val))) {
			if (r < 0)
				return EXIT_USAGE;
			reset_dir = val;
		} else if ((r = cli_opt_value(argc, argv, &i, "--recovery-file",
		                              &val))) {
			if (r < 0)
				return EXIT_USAGE;
			rfile = val;
		} else {
			fprintf(stderr, "custodyctl: upgrade takes no arguments but"
			        " --reset-dir DIR and --recovery-file FILE\n");
			return EXIT_USAGE;
		}
	}
	if (format_of(c->u.store) == 1)
		return cli_upgrade_v1(c, reset_dir, rfile);
	c->u.legacy_roster = 1; /* a roster of 0.2.0: anchored below */
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "upgrade")))
		return st;
	if (c->un.r->version < RIGHTS_VERSION_ANCHORED) {
		/* sign it again (version 2) in a commit of its own, whose anchor
		 * binds it to this history (ledger.h) */
		if ((rc = cli_begin(c)) >= 0) {
			c->un.r->dirty = 1;
			rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
			rc = cli_finish(c, "upgrade", "roster 1 -> 2 (anchored)", rc);
		}
		if (rc) {
			fprintf(stderr, "custodyctl: cannot anchor the roster of '%s':"
			        " %s\n", c->u.store, strerror(rc < 0 ? -rc : rc));
			return EXIT_RUNTIME;
		}
		printf("signed the roster again with its anchor (roster %llu)\n",
		       (unsigned long long)c->un.r->counter);
	}
	rc = store_upgrade(c->un.s, &from, &to, why, sizeof why);
	snprintf(target, sizeof target, "format %lld -> %lld", (long long)from,
	         (long long)(rc ? from : to));
	if (rc || from != to)
		record(c, "upgrade", target, rc);
	if (rc) {
		fprintf(stderr, "custodyctl: cannot upgrade '%s': %s\n", c->u.store,
		        why);
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	if (from == to)
		printf("store is already at format %lld\n", (long long)to);
	else
		printf("upgraded '%s' from format %lld to %lld\n", c->u.store,
		       (long long)from, (long long)to);
	return EXIT_OK;
}
