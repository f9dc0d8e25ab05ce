/*
 * handover.h - a login handed to a running daemon: `custodyctl login` on
 * one side, `custodyfs -o allow_other` on the other, over a local socket.
 *
 * The daemon of the mount at point P listens on
 *   HANDOVER_DIR/<hex of BLAKE2b(P), 16 bytes>.sock
 * (SOCK_SEQPACKET, mode 0666: anyone may ask, the passphrase decides).
 * The caller is whom the kernel says: the peer credentials of the
 * connection (SO_PEERCRED, taken at connect) and the credentials the
 * kernel attaches to the request itself (SCM_CREDENTIALS, which it checks
 * against the sender) must name the same uid, so a connection opened by
 * one user and passed to another is refused. Nothing the client writes
 * names its uid. The client, in turn, talks only to a daemon running as
 * root or as the user who mounted (the mount's user_id), so no other user
 * can pose as the daemon to collect passphrases.
 *
 * One request per connection: login (user name, passphrase, the session's
 * own idle and maximum age limits), logout, or status; one answer: an
 * exit status (unlock.h) and one line.
 */
#ifndef CUSTODY_HANDOVER_H
#define CUSTODY_HANDOVER_H

#include <limits.h>
#include <stdint.h>
#include "passphrase.h"

#define HANDOVER_DIR "/run/custodyfs"
#define HANDOVER_MSG_MAX 512

enum { HANDOVER_LOGIN = 1, HANDOVER_LOGOUT = 2, HANDOVER_STATUS = 3 };

struct handover_req {
	int op;
	char name[65];
	uint32_t idle_s, maxage_s;  /* 0: no limit of the session's own */
	struct passphrase pw;       /* login only: locked memory */
};

struct handover_peer {
	uint32_t uid, gid;
	int32_t pid;
};

/*
 * The custodyfs mount at mnt, found in the kernel's mount list without
 * asking its daemon anything (a request from a user without a session
 * would be refused): its canonical point and the uid that mounted it.
 * mnt NULL: the only custodyfs mount open to other users. 0, or -ENOENT /
 * -EEXIST (several, name one) with one line in why.
 */
int handover_mount(const char *mnt, char point[PATH_MAX], uint32_t *owner,
                   char *why, size_t whylen);
/* The socket of the mount at the canonical point. */
void handover_path(const char *point, char *out, size_t n);

/* ---- the daemon ---- */
/* Create the socket (and HANDOVER_DIR). 0 or -errno (why). */
int handover_listen(const char *path, int *fd, char *why, size_t whylen);
/* Read one request from an accepted connection, with its caller. 0, or
 * -EPERM (the credentials disagree: why), -EBADMSG, -errno. */
int handover_read(int fd, struct handover_req *rq, struct handover_peer *peer,
                  char *why, size_t whylen);
int handover_answer(int fd, int status, const char *msg);
void handover_req_free(struct handover_req *rq);

/* ---- the client ---- */
/* Connect and check who listens: root or owner. 0 or -errno (why). */
int handover_connect(const char *path, uint32_t owner, int *fd, char *why,
                     size_t whylen);
int handover_send(int fd, const struct handover_req *rq);
/* The daemon's answer: 0 with *status and msg, or -errno. */
int handover_result(int fd, int *status, char *msg, size_t n);

#endif
