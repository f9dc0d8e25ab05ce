/*
 * fsops.h - the FUSE low-level operations table and the session runner.
 * The only module that includes the FUSE headers.
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
};

/* Called in the daemon after the mount succeeded (e.g. to detach). */
typedef void (*fsops_mounted_fn)(void *arg);

/*
 * Mount fs at o->mountpoint and serve requests with a multi-threaded loop
 * until unmounted, signalled (SIGINT, SIGTERM, SIGHUP), idle or too old.
 * *why receives how it ended ("unmount", "signal", "idle", "maxage").
 * Returns 0 after a clean session, or -errno if the mount failed (the
 * error is printed).
 */
int fsops_run(struct fs *fs, const struct fsops_opts *o,
              fsops_mounted_fn mounted, void *arg, const char **why);

#endif
