/*
 * fsops.h - the FUSE low-level operations table and the session runner.
 * It and src/fuse/wire.c (the device I/O under libfuse) are the only
 * modules that include the FUSE headers.
 */
#ifndef CUSTODY_FSOPS_H
#define CUSTODY_FSOPS_H

#include <stdint.h>

struct fs;

struct fsops_opts {
	const char *mountpoint;
	const char *fsname;         /* shown in /proc/mounts */
	const char *extra_options;  /* comma list passed to FUSE, or NULL */
	int read_only;
	int allow_other;
	double attr_timeout;        /* seconds */
	uint32_t readahead;         /* kernel read-ahead window, bytes (0: kernel's) */
	uint32_t spin_us;           /* poll the device this long after a reply */
	int exact_reads;            /* no page cache: every read is audited */
	int writeback;              /* kernel writeback cache (-o writeback) */
	int no_acl;                 /* no POSIX ACLs (-o noacl) */
	int accept_rollback;        /* mount a store older than one seen before */
	int64_t idle_ms;            /* unmount after this much idle (0: off) */
	int64_t maxage_ms;          /* end the session after this long (0: off) */
	int foreground;
	int debug;
	/* called about once a second from the ticker thread; returns 1 when
	 * a session ended, so the kernel's caches (pages, attributes) of
	 * everything it holds are dropped and the next request of each uid
	 * reaches the daemon */
	int (*maintain)(void *arg);
	void *maintain_arg;
	/* polled every 100 ms (any thread, no lock): 1 when the kernel's
	 * caches must be dropped now (a session just ended) */
	int (*stale)(void *arg);
	void *stale_arg;
	/* called (from a thread of its own) with one line when the session
	 * starts to end: a signal, idle, maxage, a busy mount detached */
	void (*stopping)(void *arg, const char *line);
	void *stopping_arg;
};

/* Called in the daemon after the mount succeeded (e.g. to detach). */
typedef void (*fsops_mounted_fn)(void *arg);

/*
 * Whether FUSE accepts the mount options of o (before any work is done):
 * 0, or -EINVAL with one line in why ("unknown mount option 'x'").
 */
int fsops_check_options(const struct fsops_opts *o, char *why, size_t whylen);

/*
 * Mount fs at o->mountpoint and serve requests with a multi-threaded loop
 * until unmounted, signalled (SIGINT, SIGTERM, SIGHUP), idle or too old.
 * On a signal (and idle, maxage) the daemon unmounts itself while it still
 * serves: a plain unmount, or, when files are open, a lazy one (the mount
 * point is free at once) after which the open files are served until they
 * are closed or 10 s pass; a second signal ends it at once. No dead mount
 * is left behind.
 * *why receives how it ended ("unmount", "signal", "idle", "maxage",
 * "fatal"). Returns 0 after a clean session, or -errno if the mount
 * failed (the error is printed).
 */
int fsops_run(struct fs *fs, const struct fsops_opts *o,
              fsops_mounted_fn mounted, void *arg, const char **why);

#endif
