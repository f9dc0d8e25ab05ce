/*
 * custodyfs.c - the mount daemon: parse the command line, authenticate,
 * mount, detach, serve, and unmount with everything committed.
 *
 * Daemonizing: the process forks first and the child does all the work
 * (asking for the passphrase on the terminal it still shares, opening the
 * store, mounting); the parent waits on a pipe for one status byte and
 * exits with it, so `custodyfs ...; echo $?` reports auth failures and
 * mount errors even though the server runs in the background. No SQLite
 * connection or locked memory ever crosses a fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cipher.h"
#include "fs.h"
#include "fsops.h"
#include "keyring.h"
#include "rights.h"
#include "session.h"
#include "sessions.h"
#include "store.h"
#include "unlock.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: custodyfs [-u USER] [--passfile FILE | --extpass CMD] [-c CONFIG]\n"
"                 [-f] [-d] [-o OPTIONS] STORE MOUNTPOINT\n"
"\n"
"Mount the encrypted custodyfs store STORE (or $CUSTODY_STORE) on MOUNTPOINT.\n"
"\n"
"  -u USER          store user (default: your login name)\n"
"  --passfile FILE  read the passphrase from FILE's first line\n"
"  --extpass CMD    run CMD (with /bin/sh) and read the passphrase from it\n"
"  -c CONFIG        configuration file (default " CONFIG_DEFAULT_PATH ")\n"
"  -f               stay in the foreground\n"
"  -d               FUSE debug output (implies -f)\n"
"  -o OPTIONS       comma-separated mount options:\n"
"      ro             read-only mount\n"
"      idle=DURATION  unmount after DURATION without activity (e.g. 30m)\n"
"      maxage=DURATION end the session after DURATION\n"
"      exact_reads    no page cache: every read reaches the audit trail\n"
"      writeback      kernel writeback cache (faster small writes)\n"
"      noacl          no POSIX ACLs (system.posix_acl_* refused)\n"
"      accept_rollback mount a store older than one seen on this machine\n"
"      allow_other    let other local users in, each under the store user\n"
"                     they log in as (custodyctl login); uids without a\n"
"                     session are refused (permission bits apply too)\n"
"      user=NAME, passfile=FILE, config=FILE  as the flags above\n"
"      other options are passed to FUSE\n"
"  -h, --help       this help;  -V, --version  the version\n"
"\n"
"Without --passfile or --extpass the passphrase is read from the terminal.\n"
"Unmount with: fusermount3 -u MOUNTPOINT (or SIGINT/SIGTERM to the daemon).\n"
"Exit status: 0 mounted, 1 error, 2 usage, 3 authentication failed,\n"
"5 role may not mount, 6 store mounted read-write elsewhere.\n");
}

struct args {
	struct unlock_opts u;
	struct fsops_opts f;
	char extra[1024];
};

/* Split -o into our options and FUSE's. Returns 0 or -1 (message printed). */
static int parse_o(struct args *a, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "ro"))
			a->f.read_only = 1;
		else if (!strcmp(tok, "rw"))
			a->f.read_only = 0;
		else if (!strcmp(tok, "exact_reads"))
			a->f.exact_reads = 1;
		else if (!strcmp(tok, "writeback"))
			a->f.writeback = 1;
		else if (!strcmp(tok, "accept_rollback"))
			a->f.accept_rollback = 1;
		else if (!strcmp(tok, "nowriteback"))
			a->f.writeback = 0;
		else if (!strcmp(tok, "noacl"))
			a->f.no_acl = 1;
		else if (!strcmp(tok, "acl"))
			a->f.no_acl = 0;
		else if (!strcmp(tok, "allow_other"))
			a->f.allow_other = 1;
		else if (!strncmp(tok, "idle=", 5) || !strncmp(tok, "maxage=", 7)) {
			int idle = tok[0] == 'i';
			int64_t ms = config_parse_duration_ms(strchr(tok, '=') + 1);
			if (ms <= 0) {
				fprintf(stderr, "custodyfs: bad duration in '%s'\n", tok);
				rc = -1;
				break;
			}
			if (idle)
				a->f.idle_ms = ms;
			else
				a->f.maxage_ms = ms;
		} else if (!strncmp(tok, "user=", 5))
			a->u.user = strdup(tok + 5);
		else if (!strncmp(tok, "passfile=", 9))
			a->u.passfile = strdup(tok + 9);
		else if (!strncmp(tok, "config=", 7))
			a->u.config = strdup(tok + 7);
		else if (!strcmp(tok, "dev") || !strcmp(tok, "suid") ||
		         !strcmp(tok, "nodev") || !strcmp(tok, "nosuid") ||
		         !strcmp(tok, "exec") || !strcmp(tok, "noexec") ||
		         !strcmp(tok, "auto") || !strcmp(tok, "noauto") ||
		         !strcmp(tok, "_netdev") || !strcmp(tok, "nofail") ||
		         !strncmp(tok, "x-", 2) || !strcmp(tok, "defaults"))
			; /* mount(8)/fstab words: nothing for us to do */
		else {
			size_t n = strlen(a->extra);
			snprintf(a->extra + n, sizeof a->extra - n, "%s%s",
			         n ? "," : "", tok);
		}
	}
	free(copy);
	return rc;
}

static int status_fd = -1;

/* After the mount: tell the waiting parent, and detach. */
static void mounted(void *arg)
{
	struct args *a = arg;
	unsigned char ok = EXIT_OK;
	int fd;

	if (status_fd < 0)
		return;
	if (write(status_fd, &ok, 1) != 1) {
		/* the parent is gone; keep serving */
	}
	close(status_fd);
	status_fd = -1;
	(void)a;
	setsid();
	if (chdir("/") != 0) {
		/* not fatal */
	}
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
}

static int fail(int st)
{
	if (status_fd >= 0) {
		unsigned char b = (unsigned char)st;
		if (write(status_fd, &b, 1) != 1) {
			/* parent gone */
		}
	}
	return st;
}

struct holder {
	struct store_mount m;
	int found;
};

static int find_writer(void *arg, const struct store_mount *m)
{
	struct holder *h = arg;

	if (!m->readonly) {
		h->m = *m;
		h->found = 1;
	}
	return 0;
}

/* Sessions left open by a daemon that died: ours is now the only writer. */
static int reap_one(void *arg, const struct store_mount *m)
{
	struct store *s = arg;
	char host[256] = "";

	gethostname(host, sizeof host - 1);
	if (!m->readonly || (!strcmp(m->host, host) &&
	                     kill((pid_t)m->pid, 0) != 0 && errno == ESRCH))
		store_mount_end(s, m->id, "crashed");
	return 0;
}

/*
 * One read-write mount at a time (unlock_writer_lock); when the lock is
 * held, name the holder from the mounts table. Returns the lock fd, or -1
 * (printed).
 */
static int lock_writer(struct store *s, const char *path)
{
	int fd = unlock_writer_lock(path);
	struct holder h = { .found = 0 };

	if (fd >= 0)
		return fd;
	if (fd != -EBUSY) {
		fprintf(stderr, "custodyfs: cannot open store '%s': %s\n", path,
		        strerror(-fd));
		return -1;
	}
	store_mount_each_open(s, find_writer, &h);
	if (h.found)
		fprintf(stderr, "custodyfs: store '%s' is in use by %s@%s pid %lld"
		        " (mounted read-write on %s)\n", path, h.m.user, h.m.host,
		        (long long)h.m.pid, h.m.mountpoint);
	else
		fprintf(stderr, "custodyfs: store '%s' is in use by another"
		        " read-write user (a mount or check --repair)\n", path);
	return -1;
}

/* What the filesystem layer cannot return: to stderr (a log once
 * detached: the daemon's stderr is the journal under systemd). */
static void warn_line(const char *line)
{
	fprintf(stderr, "custodyfs: %s\n", line);
}

/* Once a second: an active key that expired stops encrypting (writes get
 * EROFS until an admin rotates); every 10 s the local state is saved. */
struct maint {
	struct unlocked *u;
	struct fs *fs;
	struct sessions *set;   /* other users' sessions (allow_other) */
	int ticks;
	int ended;
};

static int maintain_locked(void *arg)
{
	struct maint *m = arg;
	struct unlocked *u = m->u;
	uint32_t a = keyring_active(u->ss->kr);
	const struct rights_key *k = a ? rights_key(u->r, a) : NULL;

	if (k && k->expires && k->expires <= (int64_t)time(NULL))
		keyring_expire(u->ss->kr);
	m->ended = m->set ? sessions_tick(m->set) : 0;
	return 0;
}

/* Once a second (fsops ticker): 1 when a session ended, so the kernel's
 * caches are dropped. */
static int maintain(void *arg)
{
	struct maint *m = arg;

	fs_exclusive(m->fs, maintain_locked, m);
	if (++m->ticks % 10 == 0)
		unlock_save_state(m->u);
	return m->ended > 0;
}

/* The mount as an event of the trail, in its own transaction. */
static void record(struct unlocked *u, const char *op, const char *what,
                   int rc)
{
	if (unlock_record(u, op, what, rc))
		fprintf(stderr, "custodyfs: %s could not be recorded in the audit"
		        " trail\n", op);
}

static int serve(struct args *a)
{
	struct maint mt;
	struct sessions *set = NULL;
	struct store_mount sess;
	int lock_fd = -1;
	struct unlocked u;
	struct fs *fs = NULL;
	struct fs_opts fo;
	const char *why = "unmount";
	char real[PATH_MAX];
	int st, rc;

	unlock_harden();
	a->u.kind = "mount";
	a->u.accept_rollback = a->f.accept_rollback;
	if ((st = unlock_store(&a->u, a->f.read_only ? STORE_READONLY : 0, &u)))
		return fail(st);
	if (u.ss->role == ROLE_AUDITOR) {
		fprintf(stderr, "custodyfs: user '%s' is an auditor: auditors read"
		        " the trail with custodyctl and cannot mount\n", u.ss->name);
		record(&u, "mount", "denied: auditor", -EPERM);
		unlock_free(&u);
		return fail(EXIT_DENIED);
	}
	if (u.ss->role == ROLE_READER || u.readonly)
		a->f.read_only = 1;
	if (!keyring_active(u.ss->kr) && !a->f.read_only) {
		/* an expired key only pauses writing (EROFS) until an admin
		 * rotates; a user with no key at all gets a read-only mount */
		fprintf(stderr, "custodyfs: user '%s' holds no active key: mounting"
		        " read-only%s\n", u.ss->name, keyring_expired(u.ss->kr)
		        ? " (the active key expired: an admin command rotates it)" : "");
		a->f.read_only = 1;
	}
	if (!a->f.read_only && (lock_fd = lock_writer(u.s, u.path)) < 0) {
		unlock_free(&u);
		return fail(EXIT_BUSY);
	}
	/* the session row in mounts (advisory: messages and info) */
	memset(&sess, 0, sizeof sess);
	snprintf(sess.user, sizeof sess.user, "%s", u.ss->name);
	gethostname(sess.host, sizeof sess.host - 1);
	sess.pid = getpid();
	snprintf(sess.mountpoint, sizeof sess.mountpoint, "%.1000s",
	         realpath(a->f.mountpoint, real) ? real : a->f.mountpoint);
	sess.readonly = a->f.read_only;
	sess.started = time(NULL);
	if (!u.readonly && unlock_begin(&u) >= 0) {
		if (lock_fd >= 0)
			store_mount_each_open(u.s, reap_one, u.s);
		rc = store_mount_begin(u.s, &sess);
		if (unlock_finish(&u, "mount", sess.mountpoint, rc) || rc)
			sess.id = 0;
	}
	memset(&fo, 0, sizeof fo);
	fo.read_only = a->f.read_only;
	fo.commit_interval_ms = u.cfg.commit_interval_ms;
	fo.idle_checkpoint_ms = u.cfg.idle_checkpoint_ms;
	fo.audit_flush_ms = u.cfg.audit_flush_ms;
	fo.store_path = u.path;
	fo.warn = warn_line;
	if (a->f.allow_other) {
		/* other uids: each under their own login, or refused */
		if ((rc = sessions_new(&u, (uint32_t)getuid(), &set))) {
			fprintf(stderr, "custodyfs: %s\n", strerror(-rc));
			unlock_free(&u);
			return fail(EXIT_RUNTIME);
		}
		fo.session_of = sessions_of;
		fo.session_arg = set;
	}
	a->f.attr_timeout = (double)u.cfg.attr_timeout_ms / 1000.0;
	a->f.readahead = (uint32_t)u.cfg.readahead;
	if ((rc = fs_new(&u, &fo, &fs))) {
		fprintf(stderr, "custodyfs: cannot open the filesystem in '%s': %s\n",
		        a->u.store, rc == -EIO ? "it fails verification"
		                               : strerror(-rc));
		record(&u, "mount failed", sess.mountpoint, rc);
		sessions_free(set);
		unlock_free(&u);
		return fail(rc == -EIO ? EXIT_DAMAGE : EXIT_RUNTIME);
	}
	/* a long-lived daemon keeps only the session key: the user's
	 * identity and any authority key are wiped */
	session_forget_identity(u.ss);
	if (set) {
		char why2[256] = "";
		if (sessions_serve(set, fs, sess.mountpoint, why2, sizeof why2))
			fprintf(stderr, "custodyfs: warning: other users cannot log in"
			        " (%s): their requests are refused\n", why2);
	}
	mt = (struct maint){ &u, fs, set, 0, 0 };
	a->f.maintain = maintain;
	a->f.maintain_arg = &mt;
	rc = fsops_run(fs, &a->f, mounted, a, &why);
	if (rc)
		why = "mount failed";
	if (set) {
		sessions_stop(set);
		fs_exclusive(fs, sessions_end_all, set);
	}
	if (fs_free(fs) != 0)
		fprintf(stderr, "custodyfs: final commit failed: %s\n",
		        store_errmsg(u.s));
	if (!u.readonly && unlock_begin(&u) >= 0) {
		int r = sess.id ? store_mount_end(u.s, sess.id, why) : 0;
		unlock_finish(&u, rc ? "mount failed" : "unmount", why, r);
	}
	unlock_save_state(&u);
	if (lock_fd >= 0)
		close(lock_fd);
	sessions_free(set);
	unlock_free(&u);
	if (rc)
		return fail(EXIT_RUNTIME);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "passfile", required_argument, NULL, 'P' },
		{ "extpass", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a;
	struct stat sb;
	int c, fds[2];
	pid_t pid;

	memset(&a, 0, sizeof a);
	a.u.prog = "custodyfs";
	while ((c = getopt_long(argc, argv, "u:c:o:fdhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': a.u.user = optarg; break;
		case 'c': a.u.config = optarg; break;
		case 'P': a.u.passfile = optarg; break;
		case 'E': a.u.extpass = optarg; break;
		case 'f': a.f.foreground = 1; break;
		case 'd': a.f.debug = a.f.foreground = 1; break;
		case 'o':
			if (parse_o(&a, optarg))
				return EXIT_USAGE;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("custodyfs %s\n", CUSTODY_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind == 2) {
		a.u.store = argv[optind];
		a.f.mountpoint = argv[optind + 1];
	} else if (argc - optind == 1 && getenv("CUSTODY_STORE")) {
		a.u.store = getenv("CUSTODY_STORE");
		a.f.mountpoint = argv[optind];
	} else {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (a.u.passfile && a.u.extpass) {
		fprintf(stderr, "custodyfs: --passfile and --extpass exclude each other\n");
		return EXIT_USAGE;
	}
	a.f.extra_options = a.extra[0] ? a.extra : NULL;
	a.f.fsname = "custodyfs";
	if (stat(a.f.mountpoint, &sb) != 0) {
		fprintf(stderr, "custodyfs: mount point '%s': %s\n", a.f.mountpoint,
		        errno == ENOENT ? "does not exist" : strerror(errno));
		return EXIT_RUNTIME;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "custodyfs: mount point '%s' is not a directory\n",
		        a.f.mountpoint);
		return EXIT_RUNTIME;
	}
	if (stat(a.u.store, &sb) != 0) {
		fprintf(stderr, "custodyfs: cannot open store '%s': %s\n", a.u.store,
		        strerror(errno));
		return EXIT_RUNTIME;
	}
	if (cipher_init() != 0) {
		fprintf(stderr, "custodyfs: cannot initialise libsodium\n");
		return EXIT_RUNTIME;
	}
	if (a.f.foreground)
		return serve(&a);

	if (pipe2(fds, O_CLOEXEC) != 0) {
		fprintf(stderr, "custodyfs: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "custodyfs: fork: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	if (pid == 0) {
		close(fds[0]);
		status_fd = fds[1];
		_exit(serve(&a));
	}
	close(fds[1]);
	{
		unsigned char b;
		ssize_t n;
		while ((n = read(fds[0], &b, 1)) < 0 && errno == EINTR)
			;
		if (n == 1)
			return b;
		/* the child died before reporting */
		{
			int status = 0;
			waitpid(pid, &status, 0);
			if (WIFEXITED(status) && WEXITSTATUS(status))
				return WEXITSTATUS(status);
		}
		fprintf(stderr, "custodyfs: the daemon died while mounting\n");
		return EXIT_RUNTIME;
	}
}
