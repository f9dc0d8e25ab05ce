/*
 * handover.c - the login socket between custodyctl and custodyfs
 * (handover.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bytes.h"
#include "cipher.h"
#include "handover.h"
#include "mountinfo.h"

#define MAGIC "CFH1"
#define REQ_MAX (4 + 1 + 1 + 64 + 4 + 4 + 2 + PASSPHRASE_MAX)
#define ANS_MAX (4 + 1 + 2 + HANDOVER_MSG_MAX)

#define WHY(...) do { if (why) snprintf(why, whylen, __VA_ARGS__); } while (0)

/* ---- finding the mount ---- */

/* The canonical form of mnt without looking inside it: the parent's real
 * path and the last component (a mount point is looked up in its parent). */
static int canonical(const char *mnt, char out[PATH_MAX])
{
	char copy[PATH_MAX], parent[PATH_MAX], *slash, *base;
	size_t n = strlen(mnt);

	if (!n || n >= sizeof copy)
		return -EINVAL;
	memcpy(copy, mnt, n + 1);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = 0;
	if (!strcmp(copy, "/")) {
		snprintf(out, PATH_MAX, "/");
		return 0;
	}
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = 0;
		base = slash + 1;
		if (!realpath(copy[0] ? copy : "/", parent))
			return -errno;
	} else {
		base = copy;
		if (!getcwd(parent, sizeof parent))
			return -errno;
	}
	if (!strcmp(base, ".") || !strcmp(base, ".."))
		return -EINVAL;
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent
	                                                                 : "",
	                     base) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

struct find {
	const char *want[2];
	int any;                 /* no mount named: every shared one */
	int found, shared;
	char point[PATH_MAX];
	uint32_t owner;
};

static int find_one(void *arg, const struct mountinfo *m)
{
	struct find *f = arg;
	unsigned long uid;
	int shared = strstr(m->super, "allow_other") != NULL;

	if (strcmp(m->fstype, "fuse.custodyfs"))
		return 0;
	if (f->any ? !shared
	           : (!f->want[0] || strcmp(m->point, f->want[0])) &&
	             (!f->want[1] || strcmp(m->point, f->want[1])))
		return 0;
	if (f->any && f->found && strcmp(f->point, m->point))
		f->found++;
	else if (!f->found)
		f->found = 1;
	snprintf(f->point, sizeof f->point, "%s", m->point);
	f->owner = mountinfo_option(m->super, "user_id", &uid) == 0
	                   ? (uint32_t)uid : 0;
	f->shared = shared;
	return 0;
}

int handover_mount(const char *mnt, char point[PATH_MAX], uint32_t *owner,
                   char *why, size_t whylen)
{
	struct find f;
	char c1[PATH_MAX], c2[PATH_MAX];
	int rc;

	memset(&f, 0, sizeof f);
	if (mnt) {
		if (canonical(mnt, c1) == 0)
			f.want[0] = c1;
		if (realpath(mnt, c2))
			f.want[1] = c2;
	} else
		f.any = 1;
	if ((rc = mountinfo_each("fuse", find_one, &f)) < 0) {
		WHY("cannot read the list of mounts: %s", strerror(-rc));
		return rc;
	}
	if (!f.found) {
		if (mnt)
			WHY("no custodyfs mount at '%s'", mnt);
		else
			WHY("no custodyfs mount is open to other users (mounted"
			    " with -o allow_other); name one with -m MOUNTPOINT");
		return -ENOENT;
	}
	if (f.found > 1) {
		WHY("several custodyfs mounts are open to other users: name one"
		    " with -m MOUNTPOINT");
		return -EEXIST;
	}
	if (!f.shared) {
		WHY("the custodyfs mount at '%s' was mounted without -o"
		    " allow_other: only the user who mounted it can use it", f.point);
		return -EPERM;
	}
	snprintf(point, PATH_MAX, "%s", f.point);
	*owner = f.owner;
	return 0;
}

void handover_path(const char *point, char *out, size_t n)
{
	struct cipher_part p = { point, strlen(point) };
	uint8_t h[CIPHER_MAC_BYTES];
	char hex[33];

	cipher_hash(h, &p, 1);
	cipher_hex(hex, h, 16);
	snprintf(out, n, "%s/%s.sock", HANDOVER_DIR, hex);
}

/* ---- the daemon ---- */

static int set_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path)
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, strlen(path));
	return 0;
}

int handover_listen(const char *path, int *fd, char *why, size_t whylen)
{
	struct sockaddr_un a;
	struct stat st;
	int s, one = 1, probe, rc;

	*fd = -1;
	if ((rc = set_addr(&a, path)))
		return rc;
	if (mkdir(HANDOVER_DIR, 0755) && errno != EEXIST) {
		rc = -errno;
		WHY("cannot create %s: %s", HANDOVER_DIR, strerror(errno));
		return rc;
	}
	/* a directory someone else could write would let them replace the
	 * socket with their own */
	if (lstat(HANDOVER_DIR, &st) || !S_ISDIR(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
		WHY("%s is not a directory only root (or this user) can write",
		    HANDOVER_DIR);
		return -EPERM;
	}
	/* a socket left by a daemon that died: replace it; a live one: no */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			WHY("%s exists and is not a socket", path);
			return -EEXIST;
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof a) == 0) {
			close(probe);
			WHY("another daemon serves logins for this mount point (%s)",
			    path);
			return -EADDRINUSE;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if ((s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0) {
		rc = -errno;
		WHY("socket: %s", strerror(errno));
		return rc;
	}
	if (bind(s, (struct sockaddr *)&a, sizeof a) || chmod(path, 0666) ||
	    setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) ||
	    listen(s, 16)) {
		rc = -errno;
		WHY("cannot listen on %s: %s", path, strerror(errno));
		close(s);
		unlink(path);
		return rc;
	}
	*fd = s;
	return 0;
}

void handover_req_free(struct handover_req *rq)
{
	passphrase_free(&rq->pw);
	memset(rq, 0, sizeof *rq);
}

/* Close every descriptor a message carried (nobody may make us hold
 * theirs) and find its credentials. */
static int take_cmsgs(struct msghdr *m, struct ucred *cred)
{
	int have = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *fds = (int *)CMSG_DATA(c);
			for (size_t i = 0; i < n; i++) {
				int f;
				memcpy(&f, fds + i, sizeof f);
				close(f);
			}
		} else if (c->cmsg_type == SCM_CREDENTIALS &&
		           c->cmsg_len == CMSG_LEN(sizeof *cred)) {
			memcpy(cred, CMSG_DATA(c), sizeof *cred);
			have = 1;
		}
	}
	return have;
}

int handover_read(int fd, struct handover_req *rq, struct handover_peer *peer,
                  char *why, size_t whylen)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
		         CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct ucred pc, mc;
	socklen_t len = sizeof pc;
	uint8_t *buf = secmem_alloc(REQ_MAX + 1);
	struct iovec iov = { buf, REQ_MAX + 1 };
	struct msghdr m;
	struct rbuf r;
	uint8_t magic[4], op, nlen;
	uint16_t plen;
	ssize_t n;
	int one = 1, rc = -EBADMSG;

	memset(rq, 0, sizeof *rq);
	memset(peer, 0, sizeof *peer);
	if (!buf)
		return -ENOMEM;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &pc, &len) ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one)) {
		rc = -errno;
		goto out;
	}
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof ctl.buf;
	do
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		rc = -errno;
		WHY("no request: %s", strerror(errno));
		goto out;
	}
	if (!take_cmsgs(&m, &mc)) {
		WHY("the request carries no credentials");
		rc = -EPERM;
		goto out;
	}
	if (mc.uid != pc.uid) {
		WHY("the connection was opened by uid %u but the request comes from"
		    " uid %u (a passed socket)", (unsigned)pc.uid, (unsigned)mc.uid);
		rc = -EPERM;
		goto out;
	}
	if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n > REQ_MAX) {
		WHY("the request is too long");
		goto out;
	}
	rbuf_init(&r, buf, (size_t)n);
	rbuf_bytes(&r, magic, 4);
	op = rbuf_u8(&r);
	nlen = rbuf_u8(&r);
	if (r.err || memcmp(magic, MAGIC, 4) || op < HANDOVER_LOGIN ||
	    op > HANDOVER_STATUS || nlen > 64) {
		WHY("not a custodyctl request");
		goto out;
	}
	rbuf_bytes(&r, rq->name, nlen);
	rq->name[nlen] = 0;
	rq->idle_s = rbuf_u32(&r);
	rq->maxage_s = rbuf_u32(&r);
	plen = rbuf_u16(&r);
	if (r.err || plen > PASSPHRASE_MAX || r.len - r.pos != plen ||
	    memchr(rq->name, 0, nlen)) {
		WHY("a malformed request");
		goto out;
	}
	rq->op = op;
	if (op == HANDOVER_LOGIN) {
		if (!(rq->pw.buf = secmem_alloc((size_t)plen + 1))) {
			rc = -ENOMEM;
			goto out;
		}
		rbuf_bytes(&r, (uint8_t *)rq->pw.buf, plen);
		rq->pw.buf[plen] = 0;
		rq->pw.len = plen;
	}
	peer->uid = pc.uid;
	peer->gid = pc.gid;
	peer->pid = pc.pid;
	rc = 0;
out:
	secmem_free(buf);
	if (rc)
		handover_req_free(rq);
	return rc;
}

int handover_answer(int fd, int status, const char *msg)
{
	uint8_t buf[ANS_MAX];
	size_t n = strlen(msg) > HANDOVER_MSG_MAX ? HANDOVER_MSG_MAX : strlen(msg);
	struct wbuf w;

	wbuf_init(&w, buf, sizeof buf);
	wbuf_bytes(&w, MAGIC, 4);
	wbuf_u8(&w, (uint8_t)status);
	wbuf_u16(&w, (uint16_t)n);
	wbuf_bytes(&w, msg, n);
	return send(fd, buf, w.len, MSG_NOSIGNAL) == (ssize_t)w.len ? 0 : -errno;
}

/* ---- the client ---- */

int handover_connect(const char *path, uint32_t owner, int *fd, char *why,
                     size_t whylen)
{
	struct sockaddr_un a;
	struct ucred pc;
	socklen_t len = sizeof pc;
	int s, rc;

	*fd = -1;
	if ((rc = set_addr(&a, path)))
		return rc;
	if ((s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, sizeof a)) {
		rc = -errno;
		WHY("the mount's daemon takes no logins (%s: %s): it must run as"
		    " root to serve other users", path, strerror(errno));
		close(s);
		return rc;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &pc, &len)) {
		rc = -errno;
		close(s);
		return rc;
	}
	if (pc.uid != 0 && pc.uid != owner) {
		WHY("%s is served by uid %u, neither root nor the mount's owner:"
		    " not sending a passphrase there", path, (unsigned)pc.uid);
		close(s);
		return -EPERM;
	}
	*fd = s;
	return 0;
}

int handover_send(int fd, const struct handover_req *rq)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} ctl;
	struct ucred me = { getpid(), geteuid(), getegid() };
	uint8_t *buf = secmem_alloc(REQ_MAX);
	size_t nlen = strlen(rq->name), plen = rq->pw.buf ? rq->pw.len : 0;
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	struct wbuf w;
	ssize_t n;
	int rc;

	if (!buf)
		return -ENOMEM;
	if (nlen > 64 || plen > PASSPHRASE_MAX) {
		secmem_free(buf);
		return -EINVAL;
	}
	wbuf_init(&w, buf, REQ_MAX);
	wbuf_bytes(&w, MAGIC, 4);
	wbuf_u8(&w, (uint8_t)rq->op);
	wbuf_u8(&w, (uint8_t)nlen);
	wbuf_bytes(&w, rq->name, nlen);
	wbuf_u32(&w, rq->idle_s);
	wbuf_u32(&w, rq->maxage_s);
	wbuf_u16(&w, (uint16_t)plen);
	if (plen)
		wbuf_bytes(&w, rq->pw.buf, plen);
	iov.iov_base = buf;
	iov.iov_len = w.len;
	memset(&m, 0, sizeof m);
	memset(&ctl, 0, sizeof ctl);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof ctl.buf;
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof me);
	memcpy(CMSG_DATA(c), &me, sizeof me);
	n = sendmsg(fd, &m, MSG_NOSIGNAL);
	rc = n == (ssize_t)w.len ? 0 : n < 0 ? -errno : -EIO;
	secmem_free(buf);
	return rc;
}

int handover_result(int fd, int *status, char *msg, size_t n)
{
	uint8_t buf[ANS_MAX + 1], magic[4];
	struct rbuf r;
	uint16_t len;
	ssize_t got;

	do
		got = recv(fd, buf, sizeof buf, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	if (got == 0 || got > ANS_MAX)
		return -EBADMSG;
	rbuf_init(&r, buf, (size_t)got);
	rbuf_bytes(&r, magic, 4);
	*status = rbuf_u8(&r);
	len = rbuf_u16(&r);
	if (r.err || memcmp(magic, MAGIC, 4) || r.len - r.pos != len)
		return -EBADMSG;
	if (n) {
		size_t k = len < n - 1 ? len : n - 1;
		memcpy(msg, buf + r.pos, k);
		msg[k] = 0;
		for (size_t i = 0; i < k; i++)
			if ((unsigned char)msg[i] < 0x20)
				msg[i] = '?'; /* one line, nothing for the terminal */
	}
	return 0;
}
