/*
 * sessions.h - one mount, many users: the store sessions a daemon serves,
 * one per Unix user, and the login socket that starts them.
 *
 * The mounting uid is served by the mount's own session. Any other uid is
 * served by the session it started with `custodyctl login` (handover.h),
 * or not at all (EACCES). A request on an open file is served by the
 * session that opened it. Sessions end on `custodyctl logout`, on their
 * own idle and maximum-age limits, when their user's rights change
 * (session_follow: removed, role changed, keys reset, revoked), and at
 * unmount; an ended session's keys are wiped at once and the kernel's
 * caches dropped (fsops maintain).
 *
 * Threads: the resolver (sessions_of) runs under the filesystem lock, and
 * every change to the set happens under it too (fs_exclusive), so a
 * session the filesystem layer is using cannot go away. The login
 * thread does the Argon2id work without any lock.
 */
#ifndef CUSTODY_SESSIONS_H
#define CUSTODY_SESSIONS_H

#include <stdint.h>

struct sessions;
struct session;
struct unlocked;
struct fs;

/* The set for the daemon of u, whose own session serves mount_uid; it
 * follows roster changes through u->follow_others. */
int sessions_new(struct unlocked *u, uint32_t mount_uid,
                 struct sessions **out);
/* The resolver for fs_opts.session_of (arg: the set). */
struct session *sessions_of(void *arg, uint32_t uid, int64_t sid);
/*
 * Serve logins for the mount at the canonical point (a thread on the
 * socket handover_path(point)). 0, or -errno with one line in why (the
 * mount goes on; other users are refused).
 */
int sessions_serve(struct sessions *set, struct fs *fs, const char *point,
                   char *why, size_t whylen);
/* Under the filesystem lock (fs_exclusive), once a second: end sessions
 * past their limits, expire keys, record and free ended sessions.
 * Returns how many ended since the last call. */
int sessions_tick(struct sessions *set);
/* 1 once after a session ended (any thread, no lock): the ticker drops
 * the kernel's caches at once rather than at the next tick. */
int sessions_stale(void *set);
/* Stop the login thread, remove the socket, end every session (under the
 * filesystem lock: call from fs_exclusive before the fs goes), free. */
void sessions_stop(struct sessions *set);
int sessions_end_all(void *set);
void sessions_free(struct sessions *set);

#endif
