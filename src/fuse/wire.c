/*
 * wire.c - the FUSE device under libfuse: what libfuse 3.14 cannot say.
 *
 * libfuse reads and writes /dev/fuse through these two functions
 * (fuse_session_custom_io), unchanged, except for one capability and the
 * flags that come with it:
 *
 * FUSE_HANDLE_KILLPRIV_V2. Without it the kernel asks the daemon, before
 * every write() and copy_file_range() to a file, whether the file has a
 * security.capability attribute (a GETXATTR round trip per call: 8% of a
 * streaming write, and one of the two round trips of every small write).
 * With it the kernel marks the superblock SB_NOSEC, remembers per inode
 * that there is nothing to clear, and leaves the clearing of set-user-ID,
 * set-group-ID and file capabilities to the filesystem, telling it in each
 * WRITE, SETATTR and OPEN whether the caller lacks CAP_FSETID. libfuse
 * 3.14 neither offers the flag nor passes the bits of WRITE and OPEN on
 * (SETATTR's it does: FUSE_SET_ATTR_KILL_SUID). So: the INIT
 * reply gets the flag when the kernel offered it, and the bits of the
 * request a worker thread has just read are kept for that thread, which
 * serves the request next (libfuse's loop reads and processes a request in
 * the same thread). The filesystem layer does the clearing (fs_kill_privs,
 * src/fs/inode.c), by the VFS's rules.
 *
 * A short spin before sleeping. A worker that has just replied polls the
 * device for up to [mount] spin_us before it blocks in read(): a client that
 * waits for each answer (a database, fio psync, a shell loop) sends its
 * next request within microseconds, and a worker asleep in read() is woken
 * through the scheduler, which on a VM whose idle vCPUs halt costs a
 * wake-up of the vCPU per request. One worker spins at a time, and only
 * right after a reply, so an idle mount burns nothing.
 *
 * One FUSE session per process: the state here is the session's.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "wire.h"

static struct {
	int want;                /* offer the kernel KILLPRIV_V2 */
	uint64_t init_unique;    /* the INIT request's id (0: none seen) */
	uint32_t init_flags;     /* what the kernel offered */
	int64_t spin_ns;         /* poll this long after a reply (0: never) */
} w;

/* the current request of this thread asks for the privileges to be
 * cleared (the caller lacks CAP_FSETID) */
static _Thread_local int cur_kill;

static atomic_int spinner;      /* a worker is spinning */
static _Thread_local int replied; /* this thread's last act was a reply */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Poll fd until a request is there or spin_ns have passed. */
static void spin(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int64_t until = mono_ns() + w.spin_ns;

	do {
		if (poll(&p, 1, 0) != 0)
			break; /* a request, or the end of the session */
	} while (mono_ns() < until);
}

/* the bit of a request whose argument struct T (len bytes of it read) has
 * FIELD & FLAG: 0 when the request is too short to tell */
#define KILL_BIT(T, FIELD, FLAG) \
	(len >= sizeof(T) && (((const T *)(const void *)arg)->FIELD & (FLAG)) != 0)

static void seen(const char *buf, size_t n)
{
	const struct fuse_in_header *h = (const void *)buf;
	const char *arg = buf + sizeof *h;
	size_t len = n - sizeof *h;

	cur_kill = 0;
	switch (h->opcode) {
	case FUSE_INIT:
		if (len >= offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) {
			const struct fuse_init_in *in = (const void *)arg;
			w.init_flags = in->flags;
			w.init_unique = h->unique;
		}
		break;
	case FUSE_WRITE:
		cur_kill = KILL_BIT(struct fuse_write_in, write_flags,
		                    FUSE_WRITE_KILL_SUIDGID);
		break;
	case FUSE_OPEN:
		cur_kill = KILL_BIT(struct fuse_open_in, open_flags,
		                    FUSE_OPEN_KILL_SUIDGID);
		break;
	case FUSE_CREATE:
		cur_kill = KILL_BIT(struct fuse_create_in, open_flags,
		                    FUSE_OPEN_KILL_SUIDGID);
		break;
	}
}

static ssize_t wire_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n;

	(void)userdata;
	if (replied && w.spin_ns && !atomic_exchange(&spinner, 1)) {
		spin(fd);
		atomic_store(&spinner, 0);
	}
	replied = 0;
	n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct fuse_in_header))
		seen(buf, (size_t)n);
	return n;
}

static ssize_t wire_writev(int fd, struct iovec *iov, int count,
                           void *userdata)
{
	(void)userdata;
	if (w.init_unique && count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *o = iov[0].iov_base;
		if (o->unique == w.init_unique) {
			w.init_unique = 0;
			if (o->error == 0 && wire_killpriv_v2() &&
			    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) +
			                      sizeof(uint32_t)) {
				struct fuse_init_out *out = iov[1].iov_base;
				out->flags |= FUSE_HANDLE_KILLPRIV_V2;
			}
		}
	}
	replied = 1;
	return writev(fd, iov, count);
}

int wire_attach(struct fuse_session *se, int killpriv_v2, uint32_t spin_us)
{
	static const struct fuse_custom_io io = {
		.read = wire_read, .writev = wire_writev,
	};
	int fd = fuse_session_fd(se);

	memset(&w, 0, sizeof w);
	w.want = killpriv_v2;
	w.spin_ns = (int64_t)spin_us * 1000;
	if (fd < 0)
		return -EBADF;
	return fuse_session_custom_io(se, &io, fd);
}

int wire_killpriv_v2(void)
{
	return w.want && (w.init_flags & FUSE_HANDLE_KILLPRIV_V2);
}

int wire_kill(void)
{
	return cur_kill;
}
