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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cipher.h"
#include "fs.h"
#include "fsops.h"
#include "keyring.h"
#include "mountinfo.h"
#include "rights.h"
#include "session.h"
#include "sessions.h"
#include "store.h"
#include "unlock.h"

/* How long unmount waits for another process's reader to let the WAL be
 * emptied. */
#define CUSTODYFS_UNMOUNT_CKPT_MS 3000

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
"      ro, rw         read-only mount, or read-write (the default)\n"
"      idle=DURATION  unmount after DURATION without activity (e.g. 30m)\n"
"      maxage=DURATION end the session after DURATION\n"
"      exact_reads    no page cache: every read reaches the audit trail\n"
"      writeback, nowriteback  kernel writeback cache (faster small\n"
"                     writes) on, or off (the default)\n"
"      acl, noacl     POSIX ACLs on (the default where the kernel offers\n"
"                     them), or off (system.posix_acl_* refused)\n"
"      accept_rollback mount a store older than one seen on this machine\n"
"      nonempty       mount over a directory that is not empty (its files\n"
"                     are hidden while mounted)\n"
"      allow_other    let other local users in, each under the store user\n"
"                     they log in as (custodyctl login); uids without a\n"
"                     session are refused (permission bits apply too)\n"
"      user=NAME, passfile=FILE, config=FILE  as the flags above\n"
"      other options are passed to FUSE\n"
"  -h, --help       this help;  -V, --version  the version\n"
"\n"
"Without --passfile or --extpass the passphrase is read from the terminal.\n"
"Unmount with: fusermount3 -u MOUNTPOINT (or SIGINT/SIGTERM to the daemon:\n"
"files still open are served until closed, for at most 10 s).\n"
"Exit status: 0 mounted, 1 error, 2 usage, 3 authentication failed,\n"
"4 damage, tampering or a rolled-back store, 5 role may not mount,\n"
"6 store mounted read-write elsewhere.\n");
}

struct args {
	struct unlock_opts u;
	struct fsops_opts f;
	char extra[1024];
	int nonempty;              /* -o nonempty */
	char status[PATH_MAX + 128];  /* the line systemd shows once mounted */
};

/* A usage error: one line, exit 2. */
static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "custodyfs: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see custodyfs --help)\n");
	return EXIT_USAGE;
}

/*
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram to the socket $NOTIFY_SOCKET names (a path, or "@" for an
 * abstract one). Taken at start and removed from the environment, so
 * nothing this process runs (--extpass) can speak for it.
 */
static char notify_path[sizeof ((struct sockaddr_un *)0)->sun_path];

static void notify_init(void)
{
	const char *p = getenv("NOTIFY_SOCKET");

	if (p && (p[0] == '/' || p[0] == '@') && p[1] &&
	    strlen(p) < sizeof notify_path)
		snprintf(notify_path, sizeof notify_path, "%s", p);
	unsetenv("NOTIFY_SOCKET");
}

static void notify(const char *msg)
{
	struct sockaddr_un a;
	size_t n = strlen(notify_path);
	int fd;

	if (!n)
		return;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path, notify_path, n);
	if (a.sun_path[0] == '@')
		a.sun_path[0] = 0;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		/* not under systemd after all: nothing to tell */
	}
	close(fd);
}

/* The session starts to end (fsops): tell systemd, which shows the line. */
static void stopping(void *arg, const char *line)
{
	char msg[PATH_MAX + 300];

	(void)arg;
	snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s", line);
	notify(msg);
}

/* A copy of an -o value that lives as long as the process (reachable, so
 * no leak is reported on an early exit). */
static const char *keep(const char *v)
{
	static char *kept[16];
	static size_t n;
	char *d = strdup(v);

	if (d && n < sizeof kept / sizeof kept[0])
		kept[n++] = d;
	return d;
}

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
		else if (!strcmp(tok, "nonempty"))
			a->nonempty = 1;
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
				fprintf(stderr, "custodyfs: -o %s: expected a duration such"
				        " as 30s, 10m, 8h (see custodyfs --help)\n", tok);
				rc = -1;
				break;
			}
			if (idle)
				a->f.idle_ms = ms;
			else
				a->f.maxage_ms = ms;
		} else if (!strncmp(tok, "user=", 5))
			a->u.user = keep(tok + 5);
		else if (!strncmp(tok, "passfile=", 9))
			a->u.passfile = keep(tok + 9);
		else if (!strncmp(tok, "config=", 7))
			a->u.config = keep(tok + 7);
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

	{
		char msg[sizeof a->status + 32];
		snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", a->status);
		notify(msg);
	}
	if (status_fd < 0)
		return;
	if (write(status_fd, &ok, 1) != 1) {
		/* the parent is gone; keep serving */
	}
	close(status_fd);
	status_fd = -1;
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
	dev_t dev;              /* the file the mount opened at u->path */
	ino_t ino;
	int fd;                 /* ... held open: its link count */
	int said;
};

static int maintain_locked(void *arg)
{
	struct maint *m = arg;
	struct unlocked *u = m->u;
	uint32_t a = keyring_active(u->ss->kr);
	const struct rights_key *k = a ? rights_key(u->r, a) : NULL;
	char why[512];

	if (k && k->expires && k->expires <= (int64_t)time(NULL))
		keyring_expire(u->ss->kr);
	/* the path still names the file this mount writes: another file
	 * renamed over it would take every commit from here on with the
	 * file no one opens again (found at the next open as a rollback) */
	if (m->ino) {
		struct stat sb, own;
		/* replaced: another file at the path; removed: ours has no
		 * name left. A path that names nothing while ours still has a
		 * name (its directory renamed) loses nothing: it goes on */
		int replaced = stat(u->path, &sb) == 0 &&
		               (sb.st_dev != m->dev || sb.st_ino != m->ino);
		int removed = m->fd >= 0 && fstat(m->fd, &own) == 0 &&
		              own.st_nlink == 0;
		if (replaced || removed) {
			if (!m->said++)
				fprintf(stderr, "custodyfs: store '%s' is no longer the"
				        " file this mount opened (%s under it):"
				        " stopping\n", u->path,
				        replaced ? "replaced" : "removed");
			fs_fail_locked(m->fs);
			return 0;
		}
	}
	/* caught up (fs_exclusive): what this host saw must still be there */
	if (unlock_check_seen(u, why, sizeof why)) {
		fprintf(stderr, "custodyfs: store '%s' fails verification: %s\n",
		        u->path, why);
		fs_fail_locked(m->fs);
		return 0;
	}
	m->ended = m->set ? sessions_tick(m->set) : 0;
	/* under the lock: the save reads the store (unlock_check_seen); and
	 * only a head on disk: never ahead of what a power cut leaves */
	if (++m->ticks >= 10) {
		m->ticks = 0;
		if (fs_durable_locked(m->fs) || fs_sync_locked(m->fs) == 0)
			unlock_save_state(u);
	}
	return 0;
}

/* Once a second (fsops ticker): 1 when a session ended, so the kernel's
 * caches are dropped. */
static int maintain(void *arg)
{
	struct maint *m = arg;

	m->ended = 0;
	fs_exclusive(m->fs, maintain_locked, m);
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

/* ---- unmount: the purge queue is finished before the daemon exits ---- */

static volatile sig_atomic_t stop_purge;

static void on_stop(int sig)
{
	(void)sig;
	stop_purge = 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct purge_view {
	int64_t started, last;
	uint64_t block_size;
	int shown;
};

/* A progress line on a terminal once the purge has taken a second (the
 * detached daemon's stderr is no terminal: it says nothing). */
static int purge_progress(void *arg, uint64_t done, uint64_t total)
{
	struct purge_view *p = arg;
	int64_t now = mono_ms();

	if (now - p->started >= 1000 && now - p->last >= 200) {
		fprintf(stderr, "\rcustodyfs: purging deleted files: %llu/%llu MiB ",
		        (unsigned long long)(done * p->block_size >> 20),
		        (unsigned long long)(total * p->block_size >> 20));
		fflush(stderr);
		p->last = now;
		p->shown = 1;
	}
	return stop_purge;
}

/*
 * Delete what freed files left queued, in batches (each its own signed
 * commit: a kill loses at most one batch and the next mount carries on).
 * SIGINT/SIGTERM stop it between batches; the rest stays queued.
 */
static void purge_at_unmount(struct fs *fs, uint32_t block_size)
{
	struct sigaction sa, old_int, old_term;
	struct purge_view pv = { mono_ms(), 0, block_size, 0 };
	int tty = isatty(STDERR_FILENO), rc;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	stop_purge = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = fs_purge_all(fs, tty ? purge_progress : NULL, &pv);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (pv.shown)
		fprintf(stderr, "%s\n", rc == 0 ? "done" : "stopped");
	if (rc && rc != -ECANCELED && rc != -EROFS)
		fprintf(stderr, "custodyfs: purging deleted files stopped: %s (the"
		        " next mount carries on)\n", strerror(-rc));
	else if (rc == -ECANCELED && tty)
		fprintf(stderr, "custodyfs: purging interrupted: the next mount"
		        " carries on\n");
}

static int serve(struct args *a)
{
	struct maint mt;
	struct sessions *set = NULL;
	struct store_mount sess;
	int lock_fd = -1, frc;
	struct unlocked u;
	struct fs *fs = NULL;
	struct fs_opts fo;
	const char *why = "unmount";
	char real[PATH_MAX];
	int st, rc, have_first;
	struct stat first;

	unlock_harden();
	a->u.kind = "mount";
	a->u.accept_rollback = a->f.accept_rollback;
	/* which file the path names, before the store is opened: a file
	 * swapped in between is found at the first look (maintain_locked) */
	have_first = stat(a->u.store, &first) == 0;
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
	a->f.spin_us = (uint32_t)u.cfg.spin_us;
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
	mt = (struct maint){ &u, fs, set, 0, 0, 0, 0, -1, 0 };
	if (have_first) {
		mt.dev = first.st_dev;
		mt.ino = first.st_ino;
		mt.fd = open(u.path, O_RDONLY | O_CLOEXEC);
	}
	a->f.maintain = maintain;
	a->f.maintain_arg = &mt;
	a->f.stale = set ? sessions_stale : NULL;
	a->f.stale_arg = set;
	a->f.stopping = stopping;
	snprintf(a->status, sizeof a->status, "Mounted %.2000s on %.1000s as %s"
	         " (%s)", u.path, sess.mountpoint, u.ss->name,
	         a->f.read_only ? "read-only" : "read-write");
	rc = fsops_run(fs, &a->f, mounted, a, &why);
	if (rc)
		why = "mount failed";
	if (set) {
		sessions_stop(set);
		fs_exclusive(fs, sessions_end_all, set);
	}
	if (!a->f.read_only)
		purge_at_unmount(fs, u.r->policy.block_size);
	if ((frc = fs_free(fs)) != 0) {
		/* SQLite's message when SQLite failed, else the errno (a flush) */
		const char *m = store_errmsg(u.s);
		fprintf(stderr, "custodyfs: final commit failed: %s\n",
		        strcmp(m, "not an error") ? m : strerror(-frc));
	}
	if (!u.readonly && unlock_begin(&u) >= 0) {
		int r = sess.id ? store_mount_end(u.s, sess.id, why) : 0;
		if (rc && !r) {
			/* the mount row said "mount ok" at login: this one says
			 * the kernel mount then failed, with its error */
			r = audit_command(u.trail, u.ss, "mount failed",
			                  sess.mountpoint, rc);
			unlock_finish(&u, NULL, NULL, r);
		} else
			unlock_finish(&u, rc ? "mount failed" : "unmount", why, r);
	}
	unlock_save_state(&u);
	/* the WAL's older page images (deleted blocks among them) go: a
	 * reader in another process delays it a few seconds at most */
	if (!a->f.read_only &&
	    store_checkpoint_wait(u.s, CUSTODYFS_UNMOUNT_CKPT_MS) == -EBUSY)
		fprintf(stderr, "custodyfs: the WAL could not be emptied at unmount:"
		        " another process holds a read snapshot; its next"
		        " checkpoint empties it\n");
	if (lock_fd >= 0)
		close(lock_fd);
	if (mt.fd >= 0)
		close(mt.fd);
	sessions_free(set);
	unlock_free(&u);
	if (rc)
		return fail(EXIT_RUNTIME);
	/* tampering under the mount: its -shm cut (store_guard.c), another
	 * file at its path; another stop that had to be (fs_fatal) is 1 */
	if (store_shm_cut() || mt.said)
		return EXIT_DAMAGE;
	return why && !strcmp(why, "fatal") ? EXIT_RUNTIME : EXIT_OK;
}

/* The absolute form of path, resolved when it can be (a FUSE mount that
 * refuses us cannot be), else made absolute as written. */
static void abs_path(const char *path, char out[PATH_MAX])
{
	char cwd[PATH_MAX];

	if (realpath(path, out))
		return;
	if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
		snprintf(out, PATH_MAX, "%s", path);
	else
		snprintf(out, PATH_MAX, "%.2000s/%.2000s", cwd, path);
}

struct fuse_at {
	const char *point;
	struct mountinfo m;
	int found;
};

static int fuse_at_one(void *arg, const struct mountinfo *m)
{
	struct fuse_at *f = arg;

	if (!strcmp(m->point, f->point)) {
		f->m = *m; /* the last one is the topmost */
		f->found = 1;
	}
	return 0;
}

/*
 * The mount point must be a directory that is no FUSE mount already
 * (stacking would hide a live mount from every user; a dead one is
 * named) and empty unless -o nonempty (its files would be hidden).
 * Returns EXIT_OK, or an exit status with one line printed.
 */
static int check_mountpoint(const struct args *a)
{
	const char *mp = a->f.mountpoint;
	static struct fuse_at f;
	char where[PATH_MAX];
	struct stat sb;
	int st_err = 0;
	DIR *d;

	abs_path(mp, where);
	if (stat(mp, &sb) != 0)
		st_err = errno;
	memset(&f, 0, sizeof f);
	f.point = where;
	mountinfo_each("fuse", fuse_at_one, &f);
	if (f.found && st_err != ENOTCONN) {
		/* attributes may come from the kernel's cache: statfs always
		 * asks the daemon, and a dead one answers ENOTCONN */
		struct statvfs vfs;
		if (statvfs(mp, &vfs) != 0 && errno == ENOTCONN)
			st_err = ENOTCONN;
	}
	if (f.found && st_err == ENOTCONN) {
		fprintf(stderr, "custodyfs: mount point '%s' is a dead FUSE mount"
		        " (its daemon is gone): clear it with fusermount3 -uz '%s'\n",
		        mp, where);
		return EXIT_RUNTIME;
	}
	if (f.found) {
		fprintf(stderr, "custodyfs: mount point '%s' is a live FUSE mount"
		        " already (%s of '%s'): mounting over it would hide it from"
		        " every user; unmount it first\n", mp, f.m.fstype,
		        f.m.source);
		return EXIT_RUNTIME;
	}
	if (st_err) {
		fprintf(stderr, "custodyfs: mount point '%s': %s\n", mp,
		        st_err == ENOENT ? "does not exist" : strerror(st_err));
		return EXIT_RUNTIME;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "custodyfs: mount point '%s' is not a directory\n",
		        mp);
		return EXIT_RUNTIME;
	}
	if (a->nonempty)
		return EXIT_OK;
	if (!(d = opendir(mp))) {
		fprintf(stderr, "custodyfs: mount point '%s': %s\n", mp,
		        strerror(errno));
		return EXIT_RUNTIME;
	}
	for (struct dirent *e; (e = readdir(d)); ) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		closedir(d);
		fprintf(stderr, "custodyfs: mount point '%s' is not empty: the mount"
		        " would hide its files (-o nonempty mounts anyway)\n", mp);
		return EXIT_RUNTIME;
	}
	closedir(d);
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
	static char fsname[PATH_MAX];
	struct args a;
	struct stat sb;
	char why[512];
	int c, fds[2], st;
	pid_t pid;

	memset(&a, 0, sizeof a);
	a.u.prog = "custodyfs";
	notify_init();
	opterr = 0; /* our own one-line messages */
	while ((c = getopt_long(argc, argv, ":u:c:o:fdhV", longopts, NULL)) != -1) {
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
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind == 2) {
		a.u.store = argv[optind];
		a.f.mountpoint = argv[optind + 1];
	} else if (argc - optind == 1 && getenv("CUSTODY_STORE")) {
		a.u.store = getenv("CUSTODY_STORE");
		a.f.mountpoint = argv[optind];
	} else if (argc - optind == 1)
		return usage_error("no mount point given: custodyfs [OPTIONS] STORE"
		                   " MOUNTPOINT (STORE may come from $CUSTODY_STORE)%s",
		                   "");
	else if (argc == optind)
		return usage_error("no store and mount point given: custodyfs"
		                   " [OPTIONS] STORE MOUNTPOINT%s", "");
	else
		return usage_error("too many arguments, from '%s' on",
		                   argv[optind + 2]);
	if (a.u.passfile && a.u.extpass) {
		fprintf(stderr, "custodyfs: --passfile and --extpass exclude each"
		        " other (see custodyfs --help)\n");
		return EXIT_USAGE;
	}
	a.f.extra_options = a.extra[0] ? a.extra : NULL;
	/* findmnt and /proc/mounts show the store as the mount's source */
	abs_path(a.u.store, fsname);
	a.f.fsname = fsname;
	if (fsops_check_options(&a.f, why, sizeof why))
		return usage_error("%s", why);
	if ((st = check_mountpoint(&a)))
		return st;
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
