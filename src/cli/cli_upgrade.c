/*
 * cli_upgrade.c - custodyctl upgrade of a format-1 store (custodyfs 0.1):
 * verify it as 0.1 did, rebuild it as format 2 in a new file beside it,
 * and put that file in its place. README.md (Backups and operations) and
 * src/README.md describe what carries over; the work is in
 * src/keys/upgrade_v1.c (reading format 1), src/keys/upgrade.c (rights,
 * credentials, grants, the trail) and src/fs/fs_upgrade.c (files).
 *
 * Steps, and what a failure leaves:
 *   1. the store's writer lock (a 0.1 mount holds it: exit 6) and SQLite's
 *      write lock on it for the whole run (nobody commits meanwhile; the
 *      upgrade itself writes nothing to it);
 *   2. the admin's format-1 login and the verification (exit 3, 4, 5);
 *   3. STORE.upgrade.tmp, discarded first if an interrupted run left one,
 *      built in one transaction and closed (on failure it is removed);
 *   4. fsync and rename over STORE: up to here STORE is as it was;
 *   5. the admin's local state takes the new head (freshness starts here);
 *      the one-time passphrases and the recovery secret are written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "cipher.h"
#include "cli.h"
#include "fs_upgrade.h"
#include "keyadmin.h"
#include "ledger.h"
#include "mtree.h"
#include "passphrase.h"
#include "rights.h"
#include "state.h"
#include "store.h"
#include "store_backup.h"
#include "upgrade.h"
#include "upgrade_v1.h"

struct up_progress {
	struct cli *c;
	const char *what;
	int64_t started;
};

static void show(void *arg, const char *what, uint64_t done, uint64_t total)
{
	struct up_progress *p = arg;

	if (!p->what || strcmp(p->what, what)) {
		p->what = what;
		p->started = cli_now_ms();
	}
	cli_progress(p->c, what, done, total, p->started, done >= total);
}

struct fs_arg {
	upgrade_progress_fn progress;
	void *arg;
	struct fs_upgrade_stats stats;
};

static int build_fs(void *arg, struct unlocked *u, struct upgrade_v1 *v,
                    struct ledger_state *st, char *summary, size_t cap,
                    char *why, size_t whylen)
{
	struct fs_arg *f = arg;
	struct fs_upgrade_stats *s = &f->stats;
	int rc = fs_upgrade_v1(u, v, f->progress, f->arg, st, s, why, whylen);

	if (!rc)
		snprintf(summary, cap, "%llu inodes (%llu files, %llu directories,"
		         " %llu symlinks), %llu entries, %llu blocks (%llu bytes),"
		         " %llu xattrs, %llu deleted inodes (%llu blocks) queued for"
		         " purging", (unsigned long long)s->inodes,
		         (unsigned long long)s->files, (unsigned long long)s->dirs,
		         (unsigned long long)s->symlinks,
		         (unsigned long long)s->entries,
		         (unsigned long long)s->blocks, (unsigned long long)s->bytes,
		         (unsigned long long)s->xattrs,
		         (unsigned long long)s->purge_inodes,
		         (unsigned long long)s->purge_blocks);
	return rc;
}

/* Create path 0600 (never replacing anything) holding line and a newline. */
static int write_new(const char *path, const char *line, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	              0600);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, line, len) == (ssize_t)len && write(fd, "\n", 1) == 1 &&
	     fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

static int reset_path(char *buf, size_t cap, const char *dir,
                      const char *name)
{
	return (size_t)snprintf(buf, cap, "%s/%s.pass", dir, name) < cap ? 0
	                                                                 : -1;
}

/* Before anything is built: DIR takes a new NAME.pass for every other
 * user, and the recovery file is new. */
static int check_outputs(const struct upgrade_v1 *v, const char *dir,
                         const char *rfile)
{
	char p[PATH_MAX];
	struct stat sb;
	size_t others = v->nusers ? v->nusers - 1 : 0;

	if (others && !dir) {
		fprintf(stderr, "custodyctl: upgrade: %zu other user%s of the store"
		        " get%s a one-time passphrase: name a directory for them with"
		        " --reset-dir DIR\n", others, others == 1 ? "" : "s",
		        others == 1 ? "s" : "");
		return EXIT_USAGE;
	}
	if (others) {
		if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
		    access(dir, W_OK | X_OK) != 0) {
			fprintf(stderr, "custodyctl: upgrade: --reset-dir '%s' is not a"
			        " writable directory\n", dir);
			return EXIT_RUNTIME;
		}
		for (size_t i = 0; i < v->nusers; i++) {
			if (v->users[i].id == v->me.id)
				continue;
			if (reset_path(p, sizeof p, dir, v->users[i].name) ||
			    lstat(p, &sb) == 0 || errno != ENOENT) {
				fprintf(stderr, "custodyctl: upgrade: '%s' exists (never"
				        " overwritten): remove it or choose another"
				        " --reset-dir\n", p);
				return EXIT_RUNTIME;
			}
		}
	}
	if (rfile && (lstat(rfile, &sb) == 0 || errno != ENOENT)) {
		fprintf(stderr, "custodyctl: upgrade: recovery file '%s' exists\n",
		        rfile);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

static int refuse(const char *store, int rc, const char *why)
{
	switch (rc) {
	case -EBADMSG:
		fprintf(stderr, "custodyctl: store '%s' fails verification: %s;"
		        " nothing was changed\n", store, why[0] ? why : "tampered");
		return EXIT_DAMAGE;
	case -EBUSY:
		fprintf(stderr, "custodyctl: cannot upgrade '%s': %s\n", store,
		        why[0] ? why : "store is busy (open in another process)");
		return EXIT_BUSY;
	case -ENOMEM:
		fprintf(stderr, "custodyctl: cannot upgrade '%s': out of memory"
		        " (Argon2id memlimit?)\n", store);
		return EXIT_RUNTIME;
	default:
		fprintf(stderr, "custodyctl: cannot upgrade '%s': %s; nothing was"
		        " changed\n", store, why[0] ? why : strerror(-rc));
		return EXIT_RUNTIME;
	}
}

/* Hand out what only this run knows: after the rename, so a run that did
 * not finish leaves no passphrase of a store that does not exist. */
static void hand_out(const struct upgrade_result *res, const char *dir,
                     const char *rfile, const uint8_t *recovery)
{
	char *hex = secmem_alloc(2 * KEYADMIN_RECOVERY_BYTES + 1);
	char p[PATH_MAX];
	size_t ok = 0;
	int rc;

	for (size_t i = 0; i < res->nresets; i++) {
		const struct upgrade_reset *r = &res->resets[i];
		if (reset_path(p, sizeof p, dir, r->name) ||
		    (rc = write_new(p, r->pass.buf, r->pass.len))) {
			fprintf(stderr, "custodyctl: warning: cannot write '%s': reset"
			        " the passphrase of '%s' with custodyctl user passwd %s\n",
			        p, r->name, r->name);
			continue;
		}
		ok++;
	}
	if (res->nresets) {
		printf("one-time passphrases of %zu user%s written to '%s'"
		       " (NAME.pass, mode 0600):", ok, ok == 1 ? "" : "s", dir);
		for (size_t i = 0; i < res->nresets; i++)
			printf("%s %s (%s)", i ? "," : "", res->resets[i].name,
			       role_name(res->resets[i].role));
		printf("\nformat-1 passphrases of other users no longer work: each"
		       " logs in once with their file and sets their own with"
		       " 'custodyctl user passwd' (names, roles and ids are"
		       " unchanged)\n");
	}
	if (!hex) {
		fprintf(stderr, "custodyctl: out of memory: the recovery secret is"
		        " lost; custodyctl init has one, an upgraded store does"
		        " not\n");
		return;
	}
	cipher_hex(hex, recovery, KEYADMIN_RECOVERY_BYTES);
	if (rfile && (rc = write_new(rfile, hex, strlen(hex)))) {
		fprintf(stderr, "custodyctl: cannot write the recovery file '%s': %s"
		        " (the secret follows)\n", rfile, strerror(-rc));
		rfile = NULL;
	}
	if (rfile)
		printf("recovery secret written to '%s': keep it offline\n", rfile);
	else
		printf("recovery secret (shown once; keep it offline): %s\n", hex);
	secmem_free(hex);
}

int cli_upgrade_v1(struct cli *c, const char *reset_dir,
                   const char *recovery_file)
{
	struct up_progress pr = { c, NULL, 0 };
	struct fs_arg fa = { show, &pr, { 0 } };
	struct upgrade_result res = { 0 };
	struct upgrade_plan plan;
	struct upgrade_v1 *v = NULL;
	struct passphrase pw = { 0 };
	struct store *s1 = NULL;
	struct unlocked u2;
	struct config cfg;
	char path[PATH_MAX], tmp[PATH_MAX + 16], why[512], err[512], prompt[128];
	const char *user = unlock_user(&c->u);
	uint8_t *recovery = secmem_alloc(KEYADMIN_RECOVERY_BYTES);
	int lock = -1, st, rc, built = 0;

	memset(&u2, 0, sizeof u2);
	why[0] = 0;
	if (!recovery) {
		fprintf(stderr, "custodyctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	if ((st = unlock_config(&c->u, &cfg)))
		goto out;
	st = EXIT_RUNTIME;
	if (!realpath(c->u.store, path)) {
		fprintf(stderr, "custodyctl: cannot open store '%s': %s\n",
		        c->u.store, strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof tmp, "%s.upgrade.tmp", path);
	/* 1. nobody else writes it: a 0.1 mount holds the writer lock, and
	 * SQLite's write lock keeps 0.1's custodyctl out until we are done */
	if ((lock = unlock_writer_lock(path)) < 0) {
		if (lock == -EBUSY) {
			fprintf(stderr, "custodyctl: cannot upgrade '%s': it is mounted"
			        " (custodyfs 0.1): unmount it first\n", c->u.store);
			st = EXIT_BUSY;
		} else
			fprintf(stderr, "custodyctl: cannot open store '%s': %s\n",
			        c->u.store, strerror(-lock));
		goto out;
	}
	if ((rc = store_open(path, STORE_ANYFORMAT, (int)cfg.busy_timeout_ms, &s1,
	                     why, sizeof why))) {
		fprintf(stderr, "custodyctl: cannot open store '%s': %s\n",
		        c->u.store, why[0] ? why : unlock_open_error(rc));
		st = rc == STORE_E_SCHEMA ? EXIT_DAMAGE : EXIT_RUNTIME;
		goto out;
	}
	if (store_format(s1) != 1) {
		fprintf(stderr, "custodyctl: cannot upgrade '%s': it changed to"
		        " format %d meanwhile\n", c->u.store, store_format(s1));
		goto out;
	}
	if ((rc = store_begin(s1))) {
		fprintf(stderr, "custodyctl: cannot upgrade '%s': %s\n", c->u.store,
		        rc == -EBUSY ? "store is busy (open in another process)"
		                     : strerror(-rc));
		st = rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
		goto out;
	}
	/* 2. the admin's format-1 login, then everything 0.1 verified */
	snprintf(prompt, sizeof prompt, "Passphrase for %s: ", user);
	if (passphrase_get(c->u.passfile, c->u.extpass, prompt, 0, &pw, err,
	                   sizeof err)) {
		fprintf(stderr, "custodyctl: %s\n", err);
		st = EXIT_USAGE;
		goto out;
	}
	rc = upgrade_v1_login(s1, &cfg, user, &pw, &v, why, sizeof why);
	if (rc == -EACCES) {
		fprintf(stderr, "custodyctl: authentication failed for user '%s'"
		        " (unknown user, wrong passphrase, or an account locked after"
		        " too many failures)\n", user);
		st = EXIT_AUTH;
		goto out;
	}
	if (rc) {
		st = refuse(c->u.store, rc, why);
		goto out;
	}
	if (v->me.role != ROLE_ADMIN) {
		fprintf(stderr, "custodyctl: upgrade needs the role admin; user '%s'"
		        " is %s\n", v->me.name, role_name(v->me.role));
		st = EXIT_DENIED;
		goto out;
	}
	if ((rc = upgrade_v1_verify(v, show, &pr, why, sizeof why))) {
		st = refuse(c->u.store, rc, why);
		goto out;
	}
	if ((st = check_outputs(v, reset_dir, recovery_file)))
		goto out;
	/* 3. the new store beside the old one, in one transaction */
	st = EXIT_RUNTIME;
	if ((rc = store_upgrade_discard(tmp))) {
		fprintf(stderr, "custodyctl: cannot upgrade '%s': cannot remove the"
		        " leftover '%s': %s\n", c->u.store, tmp, strerror(-rc));
		goto out;
	}
	memset(&plan, 0, sizeof plan);
	plan.o = &c->u;
	plan.cfg = &cfg;
	plan.tmp = tmp;
	plan.pw = &pw;
	plan.recovery = recovery;
	plan.progress = show;
	plan.arg = &pr;
	plan.fs = build_fs;
	plan.fs_arg = &fa;
	built = 1;
	if ((rc = upgrade_build(v, &plan, &u2, &res, why, sizeof why))) {
		st = refuse(c->u.store, rc, why);
		goto out;
	}
	/* 4. closed and complete, then in the old one's place */
	mtree_free(u2.creds);
	u2.creds = NULL;
	audit_trail_free(u2.trail);
	u2.trail = NULL;
	store_close(u2.s);
	u2.s = NULL;
	store_rollback(s1);
	store_close(s1);
	s1 = NULL;
	if ((rc = store_upgrade_install(tmp, path, why, sizeof why))) {
		if (access(tmp, F_OK) == 0) {
			st = refuse(c->u.store, rc, why);
			goto out;
		}
		fprintf(stderr, "custodyctl: warning: %s\n", why);
	}
	built = 0;
	close(lock);
	lock = -1;
	/* 5. this host has seen the new store from its first commit on */
	snprintf(u2.path, sizeof u2.path, "%s", path);
	if (state_open(u2.r->store_id, &u2.state, err, sizeof err) == 0)
		unlock_save_state(&u2);
	else
		fprintf(stderr, "custodyctl: warning: no rollback detection: %s\n",
		        err);
	unlock_committed(&u2);
	printf("upgraded '%s': %s\n", c->u.store, res.summary);
	hand_out(&res, reset_dir, recovery_file, recovery);
	st = EXIT_OK;
out:
	unlock_free(&u2);
	if (built)
		store_upgrade_discard(tmp);
	if (s1) {
		store_rollback(s1);
		store_close(s1);
	}
	if (lock >= 0)
		close(lock);
	upgrade_result_free(&res);
	upgrade_v1_free(v);
	passphrase_free(&pw);
	secmem_free(recovery);
	return st;
}
