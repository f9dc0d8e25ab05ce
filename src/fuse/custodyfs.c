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

#include "audit.h"
#include "auth.h"
#include "cipher.h"
#include "fs.h"
#include "fsops.h"
#include "keyring.h"
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
"      accept_rollback mount a store older than one seen on this machine\n"
"      allow_other    let other local users in (permission bits apply)\n"
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

/* Record a mount-session event in the trail, in its own transaction. */
static void audit_event(struct store *s, struct audit *au, const char *op,
                        const char *what)
{
	if (!au || store_begin(s))
		return;
	if (audit_admin(au, op, what, 0) == 0)
		store_commit(s);
	else
		store_rollback(s);
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

/*
 * Rollback awareness: the newest generation this local user has seen of
 * each store (by store id) lives in ~/.local/state/custodyfs/<id>. Mounting
 * an older copy (a restored backup, a replayed file) is refused unless
 * -o accept_rollback.
 */
static int state_path(const struct unlocked *u, char *buf, size_t cap)
{
	const char *home = getenv("XDG_STATE_HOME");
	struct passwd *pw;
	char id[33];

	cipher_hex(id, u->ss->store_id, 16);
	if (home && *home)
		return snprintf(buf, cap, "%s/custodyfs/%s", home, id) >= (int)cap;
	pw = getpwuid(getuid());
	if (!pw || !pw->pw_dir)
		return -1;
	return snprintf(buf, cap, "%s/.local/state/custodyfs/%s", pw->pw_dir, id)
	       >= (int)cap;
}

static uint64_t state_read(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

static void state_write(const char *path, uint64_t gen)
{
	char tmp[PATH_MAX + 8], dir[PATH_MAX], line[32];
	char *slash;
	int fd, n;

	snprintf(dir, sizeof dir, "%s", path);
	/* mkdir -p of the state directory, private */
	for (slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = 0;
		mkdir(dir, 0700);
		*slash = '/';
	}
	if (state_read(path) >= gen)
		return; /* never move backwards */
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)gen);
	if (write(fd, line, (size_t)n) == n && fsync(fd) == 0)
		rename(tmp, path);
	else
		unlink(tmp);
	close(fd);
}

/* Once a second: notice rotations made by custodyctl, and (for an admin
 * session) rotate an expired active key automatically. */
struct maint {
	struct unlocked *u;
	struct audit *au;
	struct fs *fs;
	const char *statefile;  /* "" or NULL: no rollback state */
	int ticks;
};

static int maintain_locked(void *arg)
{
	struct maint *m = arg;
	struct unlocked *u = m->u;
	int changed = 0, rc;

	rc = keyring_refresh(u->kr, u->s, &changed);
	if (rc == -EBUSY)
		return 0;
	if (rc)
		return rc;
	if (changed)
		audit_rekey(m->au);
	if (keyring_expired(u->kr) && u->ss->authority_sk &&
	    store_begin(u->s) == 0) {
		uint32_t old, v;
		rc = keyring_rotate_logged(u->kr, u->s, u->ss, u->cfg.key_max_age_s,
		                           "auto-rotate", "active key expired", &old,
		                           &v);
		audit_rekey(m->au);
		if (!rc && m->au)
			rc = audit_admin(m->au, "key auto-rotate", "expired", 0);
		if (!rc)
			rc = store_commit(u->s);
		if (rc)
			store_rollback(u->s);
		keyring_refresh(u->kr, u->s, &changed);
	}
	return 0;
}

static void maintain(void *arg)
{
	struct maint *m = arg;
	uint64_t gen;

	fs_exclusive(m->fs, maintain_locked, m);
	/* every 10 s, remember how far this store has come */
	if (m->statefile && m->statefile[0] && ++m->ticks % 10 == 0 &&
	    fs_generation(m->fs, &gen) == 0)
		state_write(m->statefile, gen);
}

static int serve(struct args *a)
{
	struct maint mt;
	char statefile[PATH_MAX];
	struct store_mount sess;
	int lock_fd = -1;
	struct unlocked u;
	struct audit *au = NULL;
	struct fs *fs = NULL;
	struct fs_opts fo;
	const char *why = "unmount";
	char real[PATH_MAX];
	int st, rc;

	unlock_harden();
	if ((st = unlock_store(&a->u, 0, &u)))
		return fail(st);
	if (u.ss->role == ROLE_AUDITOR) {
		fprintf(stderr, "custodyfs: user '%s' is an auditor: auditors read"
		        " the trail with custodyctl and cannot mount\n", u.ss->name);
		unlock_free(&u);
		return fail(EXIT_DENIED);
	}
	if (u.ss->role == ROLE_READER)
		a->f.read_only = 1;
	if (!keyring_active(u.kr) && !keyring_expired(u.kr) && !a->f.read_only) {
		/* an expired key only pauses writing (EROFS) until an admin
		 * rotates; a user with no key at all gets a read-only mount */
		fprintf(stderr, "custodyfs: user '%s' holds no active key: mounting"
		        " read-only\n", u.ss->name);
		a->f.read_only = 1;
	}
	if (keyring_expired(u.kr) && u.ss->authority_sk && !a->f.read_only) {
		struct maint m0 = { &u, NULL, NULL, NULL, 0 };
		maintain_locked(&m0); /* rotate before serving */
	}
	if (!a->f.read_only && (lock_fd = lock_writer(u.s, a->u.store)) < 0) {
		unlock_free(&u);
		return fail(EXIT_BUSY);
	}
	if (audit_new(u.s, u.kr, u.ss, 0, &au) != 0)
		au = NULL;
	/* the session row, the login, and failed logins waiting for a key */
	memset(&sess, 0, sizeof sess);
	snprintf(sess.user, sizeof sess.user, "%s", u.ss->name);
	gethostname(sess.host, sizeof sess.host - 1);
	sess.pid = getpid();
	snprintf(sess.mountpoint, sizeof sess.mountpoint, "%.1000s",
	         realpath(a->f.mountpoint, real) ? real : a->f.mountpoint);
	sess.readonly = a->f.read_only;
	sess.started = time(NULL);
	if (store_begin(u.s) == 0) {
		if (lock_fd >= 0)
			store_mount_each_open(u.s, reap_one, u.s);
		if (store_mount_begin(u.s, &sess) == 0 &&
		    (!au || (audit_adopt_auth_events(au) == 0 &&
		             audit_admin(au, "login", "mount", 0) == 0)))
			store_commit(u.s);
		else
			store_rollback(u.s);
	}
	memset(&fo, 0, sizeof fo);
	fo.read_only = a->f.read_only;
	fo.commit_interval_ms = u.cfg.commit_interval_ms;
	fo.idle_checkpoint_ms = u.cfg.idle_checkpoint_ms;
	fo.audit_flush_ms = u.cfg.audit_flush_ms;
	fo.store_path = realpath(a->u.store, real) ? real : a->u.store;
	a->f.attr_timeout = (double)u.cfg.attr_timeout_ms / 1000.0;
	a->f.readahead = (uint32_t)u.cfg.readahead;
	if ((rc = fs_new(u.s, u.kr, au, &fo, &fs))) {
		fprintf(stderr, "custodyfs: cannot open the filesystem in '%s': %s\n",
		        a->u.store, rc == -EIO ? "damaged store" : strerror(-rc));
		audit_free(au);
		unlock_free(&u);
		return fail(rc == -EIO ? EXIT_DAMAGE : EXIT_RUNTIME);
	}
	{
		uint64_t gen = 0, seen;
		int have_state = state_path(&u, statefile, sizeof statefile) == 0;
		rc = fs_generation(fs, &gen);
		if (rc == -ENOKEY) {
			fprintf(stderr, "custodyfs: user '%s' holds no key for the"
			        " store's current version (revoked?)\n", u.ss->name);
			fs_free(fs);
			audit_free(au);
			unlock_free(&u);
			return fail(EXIT_DENIED);
		}
		if (rc) {
			fprintf(stderr, "custodyfs: store '%s' fails verification: its"
			        " generation was tampered with\n", a->u.store);
			fs_free(fs);
			audit_free(au);
			unlock_free(&u);
			return fail(EXIT_DAMAGE);
		}
		seen = have_state ? state_read(statefile) : 0;
		if (gen < seen) {
			if (!a->f.accept_rollback) {
				fprintf(stderr, "custodyfs: store '%s' is older than a copy"
				        " this machine has seen (generation %llu < %llu): a"
				        " restored backup or a replayed file; mount with -o"
				        " accept_rollback to accept it\n", a->u.store,
				        (unsigned long long)gen, (unsigned long long)seen);
				fs_free(fs);
				audit_free(au);
				unlock_free(&u);
				return fail(EXIT_DAMAGE);
			}
			fprintf(stderr, "custodyfs: warning: mounting an older copy of"
			        " store '%s' (generation %llu < %llu), as accepted\n",
			        a->u.store, (unsigned long long)gen,
			        (unsigned long long)seen);
			audit_event(u.s, au, "rollback accepted", a->u.store);
		}
		if (!have_state)
			statefile[0] = 0;
	}
	audit_event(u.s, au, "mount", a->f.mountpoint);
	if (statefile[0] && !a->f.read_only) {
		uint64_t gen;
		if (fs_generation(fs, &gen) == 0)
			state_write(statefile, gen);
	}
	mt = (struct maint){ &u, au, fs, a->f.read_only ? NULL : statefile, 0 };
	a->f.maintain = maintain;
	a->f.maintain_arg = &mt;
	rc = fsops_run(fs, &a->f, mounted, a, &why);
	if (statefile[0] && !a->f.read_only && fs_commit(fs) == 0) {
		uint64_t gen;
		if (fs_generation(fs, &gen) == 0)
			state_write(statefile, gen);
	}
	if (fs_free(fs) != 0)
		fprintf(stderr, "custodyfs: final commit failed: %s\n",
		        store_errmsg(u.s));
	audit_event(u.s, au, "unmount", why);
	if (sess.id && store_begin(u.s) == 0) {
		if (store_mount_end(u.s, sess.id, why) == 0)
			store_commit(u.s);
		else
			store_rollback(u.s);
	}
	audit_free(au);
	if (lock_fd >= 0)
		close(lock_fd);
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
