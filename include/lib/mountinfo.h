/*
 * mountinfo.h - reading /proc/self/mountinfo, the kernel's own list of
 * mounts: the only way to learn about a FUSE mount without sending its
 * daemon a request (stat, realpath), which the daemon may refuse.
 */
#ifndef CUSTODY_MOUNTINFO_H
#define CUSTODY_MOUNTINFO_H

#include <limits.h>
#include <stddef.h>

struct mountinfo {
	char dev[32];             /* "major:minor" */
	char point[PATH_MAX];     /* the mount point, unescaped */
	char fstype[64];          /* e.g. "fuse.custodyfs" */
	char source[PATH_MAX];    /* what was mounted (custodyfs: the store) */
	char super[1024];         /* the super block options */
};

/*
 * Call fn for each mount whose fstype starts with prefix (NULL: every
 * mount), in the kernel's order (a later one is mounted over an earlier
 * one at the same point). fn returns nonzero to stop; that value is
 * returned. 0 at the end, -errno if the list cannot be read.
 */
int mountinfo_each(const char *prefix,
                   int (*fn)(void *arg, const struct mountinfo *m), void *arg);
/* The numeric value of option name=N in a comma-separated list: 0, or -1
 * if absent or not a number. */
int mountinfo_option(const char *opts, const char *name, unsigned long *out);

#endif
