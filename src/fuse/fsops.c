/*
 * fsops.c - FUSE low-level operations: each one translates a request into
 * one fs_* call and its reply. Nothing here knows about SQLite or crypto.
 *
 * Kernel caching is on (entry and attribute timeouts, keep_cache, a 4 MiB
 * read-ahead window, 1 MiB requests, and with -o writeback the writeback
 * cache): the daemon is the only writer of the store, so what the kernel
 * caches cannot go stale behind its back. There is no flush handler: the
 * kernel then stops sending FLUSH (one round trip per close).
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "fs.h"
#include "fsops.h"
#include "mountinfo.h"
#include "wire.h"

struct ctx {
	struct fs *fs;
	const struct fsops_opts *o;
	struct fuse_session *se;
	volatile int stop_ticker;
	const char *why;
	char dev[32];               /* the mount's "major:minor", or "" */
	char where[PATH_MAX];       /* the mount point, resolved ("": unknown) */
	int stop_fd[2];             /* wakes the stopper thread (stop_*) */
	pthread_t main;             /* the thread running the session loop */
	volatile int ending;        /* the loop is being ended (end_loop) */
};

static struct ctx *C(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The caller's supplementary groups and capabilities, which a request
 * does not carry: asked only to clear set-group-ID (fs_kill_privs). A
 * caller that is gone or cannot be read is neither in the group nor holds
 * CAP_FSETID: the bits are cleared. */
static int caller_in_group(void *arg, uint32_t gid)
{
	gid_t small[256], *g = small;
	int n = fuse_req_getgroups(arg, 256, g), in = 0;

	if (n > 256 && (g = malloc((size_t)n * sizeof *g)) != NULL) {
		int m = fuse_req_getgroups(arg, n, g);
		n = m < n ? m : n; /* the groups may have changed in between */
	} else if (n > 256) {
		g = small;
		n = 256;
	}
	for (int i = 0; i < n && !in; i++)
		in = g[i] == gid;
	if (g != small)
		free(g);
	return in;
}

/* the initial user namespace's inode number (PROC_USER_INIT_INO): the
 * kernel's capable(), which decides FUSE_WRITE_KILL_SUIDGID, asks there;
 * CapEff in /proc is relative to the task's own user namespace */
#define USER_NS_INIT_INO 0xEFFFFFFDu

static int caller_has_fsetid(void *arg)
{
	char p[64], line[256];
	unsigned long long eff = 0;
	int found = 0, dfd, sfd;
	struct stat ns;
	FILE *f;
	long pid = (long)fuse_req_ctx(arg)->pid;

	if (pid <= 0)
		return 0;
	snprintf(p, sizeof p, "/proc/%ld", pid);
	if ((dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	if (fstatat(dfd, "ns/user", &ns, 0) != 0 ||
	    ns.st_ino != USER_NS_INIT_INO ||
	    (sfd = openat(dfd, "status", O_RDONLY | O_CLOEXEC)) < 0) {
		close(dfd);
		return 0;
	}
	close(dfd);
	if (!(f = fdopen(sfd, "r"))) {
		close(sfd);
		return 0;
	}
	while (!found && fgets(line, sizeof line, f))
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	fclose(f);
	return found && (eff & (1ull << 4)) != 0; /* CAP_FSETID */
}

static const struct fs_caller caller = { caller_in_group, caller_has_fsetid };

/* Who asks: the request's uid, gid and pid (the session serving that uid
 * is found by the filesystem layer, under its lock), and the kernel's word
 * on its CAP_FSETID (wire.c). */
static struct fs_ctx who(fuse_req_t req)
{
	const struct fuse_ctx *f = fuse_req_ctx(req);
	struct fs_ctx c = { .uid = f->uid, .gid = f->gid, .pid = (uint32_t)f->pid,
	                    .no_fsetid = wire_kill(), .ask = &caller, .req = req };
	return c;
}

/* The same for a request on an open file: served under the session that
 * opened it (its id is the file handle), whoever holds the descriptor
 * now (a passed descriptor, the kernel writing back pages). */
static struct fs_ctx who_fh(fuse_req_t req, const struct fuse_file_info *fi)
{
	struct fs_ctx c = who(req);
	if (fi)
		c.sid = (int64_t)fi->fh;
	return c;
}

static void to_stat(const struct fs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize;
	st->st_rdev = a->rdev;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void reply_entry(fuse_req_t req, int rc, const struct fs_attr *a)
{
	struct fuse_entry_param e;
	double t = C(req)->o->attr_timeout;

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&e, 0, sizeof e);
	e.ino = a->ino;
	e.generation = a->generation;
	e.attr_timeout = t;
	e.entry_timeout = t;
	to_stat(a, &e.attr);
	fuse_reply_entry(req, &e);
}

struct topmost {
	const char *path;
	char *dev;
	size_t n;
};

static int topmost_one(void *arg, const struct mountinfo *m)
{
	struct topmost *t = arg;
	if (!strcmp(m->point, t->path))
		snprintf(t->dev, t->n, "%s", m->dev); /* the last one wins */
	return 0;
}

/*
 * The "major:minor" of the topmost FUSE mount on path (absolute, resolved),
 * from the kernel's list: nothing in the mount itself is touched, so this
 * is safe before the session serves requests. dev is "" if none is found.
 */
static void mount_dev(const char *path, char *dev, size_t n)
{
	struct topmost t = { path, dev, n };

	dev[0] = 0;
	mountinfo_each(NULL, topmost_one, &t);
}

/* Set the mount's kernel read-ahead window (sysfs, needs root). */
static int set_readahead(const char *dev, uint32_t bytes)
{
	char p[96];
	FILE *f;
	int ok;

	snprintf(p, sizeof p, "/sys/class/bdi/%s/read_ahead_kb", dev);
	if (!(f = fopen(p, "we")))
		return -1;
	ok = fprintf(f, "%u\n", bytes / 1024) > 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ctx *c = userdata;

	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE && !c->o->read_only &&
	    !c->o->exact_reads && c->o->writeback) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		fs_kernel_times(c->fs, 1);
	} else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want &= ~FUSE_CAP_PARALLEL_DIROPS; /* one lock anyway */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* AUTO_INVAL_DATA (libfuse's default) drops a file's cached pages
	 * whenever a GETATTR shows a new mtime, and without the writeback
	 * cache every write makes the next read fetch attributes: each read
	 * after a write went to the daemon (sqlite3 on the mount: 15,669
	 * GETATTRs, as many GETXATTRs, since a refresh also clears S_NOSEC,
	 * and 10,101 READs for 56,007 WRITEs). The read-write mount is the
	 * store's only writer of content (unlock_writer_lock; check --repair
	 * takes the same lock), so its pages cannot go stale; a read-only
	 * mount beside a writer keeps the invalidation */
	if (!c->o->read_only)
		conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* a mount shared with other uids (allow_other): no READDIRPLUS. The
	 * kernel would keep every listed name with its attributes for
	 * attr_timeout, and answer any uid's stat of it (one without a
	 * session too) from there: a listing would do what only a lookup
	 * of that very name does (README, "What a uid without a session
	 * still sees") */
	if (c->o->allow_other)
		conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	/* POSIX ACLs: the kernel enforces them; the umask, default ACLs, the
	 * mode/ACL sync and set-group-ID clearing on an ACL set are ours */
	if (!c->o->no_acl && (conn->capable & FUSE_CAP_POSIX_ACL) &&
	    (conn->capable & FUSE_CAP_DONT_MASK)) {
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
		fs_posix_acl(c->fs, 1);
	} else {
		conn->want &= ~(FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK);
		fs_posix_acl(c->fs, 0);
	}
	/* set-user-ID and set-group-ID are cleared here, not by the kernel,
	 * which then stops asking for security.capability before every
	 * write (wire.c) */
	fs_kill_privs(c->fs, wire_killpriv_v2());
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	/* libfuse wants -o max_read=N said again here, or it ends the
	 * session ("init() and fuse_session_new() requested different
	 * maximum read size") */
	if (c->o->extra_options) {
		const char *m = strstr(c->o->extra_options, "max_read=");
		if (m && (m == c->o->extra_options || m[-1] == ','))
			conn->max_read = (unsigned)strtoul(m + 9, NULL, 10);
	}
	/* The kernel takes the smaller of max_readahead and the mount's
	 * backing-device window, which starts at 128 KiB: raise the window
	 * first (root only; elsewhere it stays). Streaming reads then arrive as
	 * 1 MiB requests with more in flight. */
	if (c->o->readahead && !c->o->exact_reads && c->dev[0] &&
	    set_readahead(c->dev, c->o->readahead) == 0)
		conn->max_readahead = c->o->readahead;
}

static void op_destroy(void *userdata)
{
	struct ctx *c = userdata;
	fs_kernel_gone(c->fs);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx w = who(req);
	struct fs_attr a;
	int rc = fs_lookup(C(req)->fs, &w, parent, name, &a);

	if (rc == -ENOENT) {
		/* negative entry: the kernel may cache the absence */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		e.entry_timeout = C(req)->o->attr_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, rc, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget(C(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_forget(C(req)->fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	struct fs_attr a;
	struct stat st;
	int rc = fs_getattr(C(req)->fs, &w, ino, &a);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	to_stat(&a, &st);
	fuse_reply_attr(req, &st, C(req)->o->attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st,
                       int to_set, struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	struct fs_attr a, out;
	struct stat res;
	int valid = 0, rc;

	memset(&a, 0, sizeof a);
	a.mode = st->st_mode;
	a.uid = st->st_uid;
	a.gid = st->st_gid;
	a.size = (uint64_t)st->st_size;
	a.atime = st->st_atim;
	a.mtime = st->st_mtim;
	a.ctime = st->st_ctim;
	if (to_set & FUSE_SET_ATTR_MODE) valid |= FS_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID) valid |= FS_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID) valid |= FS_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE) valid |= FS_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME) valid |= FS_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME) valid |= FS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) valid |= FS_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) valid |= FS_SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME) valid |= FS_SET_CTIME;
	/* the kernel's verdict that privileges go: the bit on a truncate (the
	 * caller lacks CAP_FSETID) or a chown, and a SETATTR with nothing to
	 * set (with the writeback cache: but the ctime), which is what its
	 * privilege removal leaves (a chown of nothing, or before a copy or
	 * fallocate) once it leaves the bits to us */
	if (!(to_set & ~(FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID |
	                 (C(req)->o->writeback ? FUSE_SET_ATTR_CTIME : 0))))
		valid |= FS_SET_KILL_PRIVS;
	if (to_set & FUSE_SET_ATTR_KILL_SUID) valid |= FS_SET_KILL_PRIVS;
	rc = fs_setattr(C(req)->fs, &w, ino, &a, valid, &out);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	to_stat(&out, &res);
	fuse_reply_attr(req, &res, C(req)->o->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx w = who(req);
	char buf[FS_PATH_MAX + 1];
	int rc = fs_readlink(C(req)->fs, &w, ino, buf, sizeof buf);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
	struct fs_ctx w = who(req);
	struct fs_attr a;
	reply_entry(req, fs_mknod(C(req)->fs, &w, parent, name, mode,
	                          fuse_req_ctx(req)->umask, rdev, &a), &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
	struct fs_ctx w = who(req);
	struct fs_attr a;
	reply_entry(req, fs_mkdir(C(req)->fs, &w, parent, name, mode,
	                          fuse_req_ctx(req)->umask, &a), &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
	struct fs_ctx w = who(req);
	struct fs_attr a;
	reply_entry(req, fs_symlink(C(req)->fs, &w, parent, name, link, &a), &a);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
	struct fs_ctx w = who(req);
	struct fs_attr a;
	reply_entry(req, fs_link(C(req)->fs, &w, ino, newparent, newname, &a),
	            &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx w = who(req);
	fuse_reply_err(req, -fs_unlink(C(req)->fs, &w, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx w = who(req);
	fuse_reply_err(req, -fs_rmdir(C(req)->fs, &w, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
	struct fs_ctx w = who(req);
	unsigned f = 0;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE) f |= FS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE) f |= FS_RENAME_EXCHANGE;
	fuse_reply_err(req, -fs_rename(C(req)->fs, &w, parent, name, newparent,
	                               newname, f));
}

static void set_caching(fuse_req_t req, struct fuse_file_info *fi)
{
	if (C(req)->o->exact_reads) {
		fi->direct_io = 1;
		fi->keep_cache = 0;
	} else {
		fi->keep_cache = 1;
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx w = who(req);
	int64_t sid = 0;
	int rc = fs_open(C(req)->fs, &w, ino, fi->flags, &sid);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)sid;
	set_caching(req, fi);
	fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
	struct fs_ctx w = who(req);
	struct fuse_entry_param e;
	struct fs_attr a;
	int64_t sid = 0;
	int rc = fs_mknod(C(req)->fs, &w, parent, name, mode,
	                  fuse_req_ctx(req)->umask, 0, &a);

	if (!rc && (rc = fs_open(C(req)->fs, &w, a.ino, fi->flags & ~O_TRUNC,
	                         &sid))) {
		fs_forget(C(req)->fs, a.ino, 1);
	}
	fi->fh = (uint64_t)sid;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&e, 0, sizeof e);
	e.ino = a.ino;
	e.generation = a.generation;
	e.attr_timeout = e.entry_timeout = C(req)->o->attr_timeout;
	to_stat(&a, &e.attr);
	set_caching(req, fi);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* the kernel did not take it: undo the open and the lookup */
		w.sid = sid;
		fs_release(C(req)->fs, &w, a.ino, fi->flags);
		fs_forget(C(req)->fs, a.ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_read(C(req)->fs, &w, ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	ssize_t n;

	/* the kernel writing back cached pages (mmap, -o writeback): no
	 * caller's write() (a set-ID file is written through instead) */
	w.page_writeback = fi->writepage;
	w.direct_io = C(req)->o->exact_reads; /* every file FOPEN_DIRECT_IO */
	n = fs_write(C(req)->fs, &w, ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	fs_release(C(req)->fs, &w, ino, fi->flags);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	fuse_reply_err(req, -fs_fsync(C(req)->fs, &w, ino, datasync));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx w = who(req);
	int64_t sid = 0;
	int rc = fs_opendir(C(req)->fs, &w, ino, &sid);

	if (rc)
		fuse_reply_err(req, -rc);
	else {
		fi->fh = (uint64_t)sid;
		fuse_reply_open(req, fi);
	}
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;
};

static int fill(void *arg, const char *name, uint64_t ino, uint32_t mode,
                const struct fs_attr *a, int64_t next)
{
	struct dirbuf *d = arg;
	size_t need;

	if (d->plus) {
		/* nodeid 0 ("." and "..", an inode that did not verify): a
		 * plain entry, the kernel links nothing and looks it up */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		if (a) {
			e.ino = a->ino;
			e.generation = a->generation;
			e.attr_timeout = e.entry_timeout = C(d->req)->o->attr_timeout;
			to_stat(a, &e.attr);
		} else {
			e.attr.st_ino = ino;
			e.attr.st_mode = mode;
		}
		need = fuse_add_direntry_plus(d->req, d->buf + d->used,
		                              d->size - d->used, name, &e, next);
	} else {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = ino;
		st.st_mode = mode;
		need = fuse_add_direntry(d->req, d->buf + d->used,
		                         d->size - d->used, name, &st, next);
	}
	if (need > d->size - d->used)
		return 1;
	d->used += need;
	return 0;
}

static void readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size,
                        off_t off, struct fuse_file_info *fi, int plus)
{
	struct fs_ctx w = who_fh(req, fi);
	struct dirbuf d = { req, malloc(size), size, 0, plus };
	int rc;

	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = fs_readdir(C(req)->fs, &w, ino, off, plus, fill, &d);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	readdir_any(req, ino, size, off, fi, 0);
}

/* Entries with their attributes: ls -l, find, rm -rf and git status of a
 * cold directory without a LOOKUP per name (the daemon verifies each
 * entry's inode for the listing anyway). Each entry returned with
 * attributes is a lookup the kernel forgets later. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
	readdir_any(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
	(void)ino; (void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
	op_fsync(req, ino, datasync, fi);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc = fs_statfs(C(req)->fs, &sv);

	(void)ino;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

/*
 * An access ACL set by a caller outside the file's group (primary or
 * supplementary) without CAP_FSETID clears set-group-ID, as on ext4. The
 * kernel would say so in FUSE_SETXATTR_ACL_KILL_SGID, but libfuse 3.14
 * does not negotiate FUSE_SETXATTR_EXT, so the daemon decides from the
 * caller's groups (/proc, through libfuse); root counts as privileged.
 */
static int acl_kills_sgid(fuse_req_t req, fuse_ino_t ino)
{
	const struct fuse_ctx *f = fuse_req_ctx(req);
	struct fs_ctx w = who(req);
	struct fs_attr a;

	if (f->uid == 0 || fs_getattr(C(req)->fs, &w, ino, &a) != 0 ||
	    !(a.mode & S_ISGID) || a.gid == f->gid)
		return 0;
	return !caller_in_group(req, a.gid);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
	struct fs_ctx w = who(req);
	int f = 0;

	if (flags & XATTR_CREATE) f |= FS_XATTR_CREATE;
	if (flags & XATTR_REPLACE) f |= FS_XATTR_REPLACE;
	if (!strcmp(name, "system.posix_acl_access") && acl_kills_sgid(req, ino))
		f |= FS_XATTR_ACL_KILL_SGID;
	fuse_reply_err(req, -fs_setxattr(C(req)->fs, &w, ino, name, value, size,
	                                 f));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        size_t size)
{
	struct fs_ctx w = who(req);
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_getxattr(C(req)->fs, &w, ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ctx w = who(req);
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_listxattr(C(req)->fs, &w, ino, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_ctx w = who(req);
	fuse_reply_err(req, -fs_removexattr(C(req)->fs, &w, ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                         off_t off, off_t len, struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	int m = 0;

	w.no_fsetid = -1; /* FALLOCATE carries no word on it */
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
	             FALLOC_FL_ZERO_RANGE)) {
		fuse_reply_err(req, EOPNOTSUPP); /* collapse, insert, unshare */
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (mode & FALLOC_FL_KEEP_SIZE) m |= FS_FALLOC_KEEP_SIZE;
	if (mode & FALLOC_FL_PUNCH_HOLE) m |= FS_FALLOC_PUNCH;
	if (mode & FALLOC_FL_ZERO_RANGE) m |= FS_FALLOC_ZERO;
	fuse_reply_err(req, -fs_fallocate(C(req)->fs, &w, ino, m, (uint64_t)off,
	                                  (uint64_t)len));
}

/*
 * SEEK_DATA/SEEK_HOLE from the stored blocks. With the writeback cache
 * the kernel holds dirty pages the daemon has not seen and sends LSEEK
 * without flushing them: ENOSYS makes it answer generically (all data)
 * from then on. In the other page-cache mode only a writable mmap dirties
 * pages, and it needs a handle open for writing: fs_seek gives such files
 * the generic answer. exact_reads (direct I/O, no shared mmap) never has
 * dirty pages.
 */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
	struct fs_ctx w = who_fh(req, fi);
	uint64_t at = 0;
	int rc;

	if (C(req)->o->writeback && !C(req)->o->exact_reads &&
	    !C(req)->o->read_only) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO); /* as ext4 */
		return;
	}
	rc = fs_seek(C(req)->fs, &w, ino, (uint64_t)off, whence == SEEK_DATA,
	             !C(req)->o->exact_reads, &at);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_lseek(req, (off_t)at);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
                               off_t off_in, struct fuse_file_info *fi_in,
                               fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len,
                               int flags)
{
	struct fs_ctx win = who_fh(req, fi_in), wout = who_fh(req, fi_out);
	ssize_t n;

	wout.no_fsetid = -1; /* COPY_FILE_RANGE carries no word on it */
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = fs_copy_range(C(req)->fs, &win, ino_in, (uint64_t)off_in, &wout,
	                  ino_out, (uint64_t)off_out, len);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
};

/*
 * A session ended (logout, expiry, revocation): the kernel keeps pages
 * (keep_cache) and attributes it may answer other uids from without
 * asking us. Drop them for every inode it holds, so each uid's next read
 * or stat reaches the daemon and is checked against its own session.
 * Cached names expire on their own after attr_timeout.
 */
static void drop_caches(struct ctx *c)
{
	size_t n = fs_referenced(c->fs, NULL, 0), cap = n + 64;
	uint64_t *inos = malloc(cap * sizeof *inos);

	if (!inos)
		return;
	n = fs_referenced(c->fs, inos, cap);
	fuse_lowlevel_notify_inval_inode(c->se, FUSE_ROOT_ID, 0, 0);
	for (size_t i = 0; i < n && i < cap; i++)
		if (inos[i] != FUSE_ROOT_ID)
			fuse_lowlevel_notify_inval_inode(c->se, inos[i], 0, 0);
	free(inos);
}

/* ---- stopping: SIGTERM, SIGINT, SIGHUP, idle, maxage, fatal ----
 *
 * A signal does not end the session loop by itself. It wakes the stopper
 * thread, which unmounts first while the loop still serves: a plain
 * unmount when nothing is open on the mount (the kernel then ends the
 * connection and the loop returns); when files are open (EBUSY), a lazy
 * unmount (MNT_DETACH, as fusermount3 -u -z): the mount point is free at
 * once (a restart can mount there again, nothing dead is left in the
 * mount table), and the files still open keep working, served and
 * committed, until their holders close them or STOP_GRACE_MS passes. Only
 * then does the loop end. A second signal ends it at once. The unmount
 * touches the mount point only while the topmost mount there is still
 * this one (its device), so another mount made there meanwhile is never
 * taken down.
 */
#define STOP_GRACE_MS 10000

enum { STOP_SIGNAL = 'S', STOP_LIMIT = 'L', STOP_NOW = 'N', STOP_QUIT = 'Q' };

static struct ctx *sig_ctx;
static volatile sig_atomic_t sig_first, sig_count;

static void stop_request(struct ctx *c, char what)
{
	ssize_t n = write(c->stop_fd[1], &what, 1);
	(void)n; /* a full pipe already holds a request */
}

static void on_stop_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	(void)uc;
	/* end_loop's own wake-up of the session loop: nothing to do */
	if (si && si->si_code == SI_TKILL && si->si_pid == getpid()) {
		errno = saved;
		return;
	}
	if (sig_ctx) {
		if (!sig_count++)
			sig_first = sig;
		stop_request(sig_ctx, sig_count > 1 ? STOP_NOW : STOP_SIGNAL);
	}
	errno = saved;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line about stopping: on stderr (the journal under systemd) and to
 * the caller's hook (custodyfs tells systemd). */
static void stop_say(struct ctx *c, const char *fmt, ...)
{
	char line[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "custodyfs: %s\n", line);
	if (c->o->stopping)
		c->o->stopping(c->o->stopping_arg, line);
}

/* Run fusermount3 -u -q [-z] on the mount point: its exit status. */
static int fusermount_u(const char *where, int lazy)
{
	extern char **environ;
	char *argv[7];
	pid_t pid;
	int st, n = 0;

	argv[n++] = (char *)"fusermount3";
	argv[n++] = (char *)"-u";
	argv[n++] = (char *)"-q";
	if (lazy)
		argv[n++] = (char *)"-z";
	argv[n++] = (char *)"--";
	argv[n++] = (char *)where;
	argv[n] = NULL;
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Unmount this session's mount: 0, -EBUSY (files are open: plain unmount
 * only), -ESTALE (the topmost mount at the point is not this one any
 * more: nothing done), or -errno.
 */
static int self_unmount(struct ctx *c, int lazy)
{
	char top[32];

	if (!c->where[0] || !c->dev[0])
		return -ENOENT;
	mount_dev(c->where, top, sizeof top);
	if (strcmp(top, c->dev))
		return -ESTALE;
	if (umount2(c->where, (lazy ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	/* not root: fusermount3 may unmount what this user mounted */
	if (fusermount_u(c->where, lazy) == 0)
		return 0;
	return lazy ? -EPERM : -EBUSY;
}

/* End the session loop (its workers are cancelled in their reads). */
static void end_loop(struct ctx *c)
{
	c->ending = 1;
	fuse_session_exit(c->se);
	pthread_kill(c->main, SIGTERM); /* wakes its sem_wait: see the handler */
}

static const char *sig_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM";
}

static void *stopper(void *arg)
{
	struct ctx *c = arg;
	int64_t deadline = -1;     /* the end of the grace period, or -1 */
	int detached = 0;

	for (;;) {
		struct pollfd p = { c->stop_fd[0], POLLIN, 0 };
		int timeout = -1, n, rc;
		char what;

		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		n = poll(&p, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			/* the grace period is over */
			if (!c->ending && detached == 2)
				stop_say(c, "files on '%s' were still open after %d s:"
				         " ending the session (their holders now get"
				         " ENOTCONN)", c->where, STOP_GRACE_MS / 1000);
			deadline = -1;
			if (!c->ending)
				end_loop(c);
			continue;
		}
		if (n < 0 || read(c->stop_fd[0], &what, 1) != 1)
			continue;
		if (what == STOP_QUIT)
			break;
		if (c->ending)
			continue;
		if (what == STOP_SIGNAL && !c->why)
			c->why = "signal";
		if (what == STOP_NOW) {
			if (!detached && self_unmount(c, 1) == 0)
				detached = 1;
			end_loop(c);
			continue;
		}
		if (detached)
			continue; /* already unmounting: the grace period runs */
		stop_say(c, "%s: unmounting '%s'", what == STOP_SIGNAL
		         ? sig_name(sig_first) : c->why ? c->why : "stop",
		         c->where[0] ? c->where : c->o->mountpoint);
		rc = self_unmount(c, 0);
		if (rc == 0) {
			/* the kernel ends the connection: the loop returns */
			detached = 1;
			deadline = mono_ms() + 2000;
			continue;
		}
		if (rc == -EBUSY && (rc = self_unmount(c, 1)) == 0) {
			detached = 2;
			deadline = mono_ms() + STOP_GRACE_MS;
			stop_say(c, "'%s' is busy (files are open on it): detached it"
			         " (lazy unmount); the open files are served until"
			         " they are closed, for at most %d s", c->where,
			         STOP_GRACE_MS / 1000);
			continue;
		}
		if (rc != -ESTALE && rc != -ENOENT)
			stop_say(c, "cannot unmount '%s': %s", c->where, strerror(-rc));
		end_loop(c);
	}
	return NULL;
}

/* A fresh /dev/fuse descriptor in place of the session's: the old one is
 * closed (the connection ends) and libfuse's unmount, which polls it,
 * finds nothing connected and leaves the mount point alone. */
static void disconnect(struct ctx *c)
{
	int fd = fuse_session_fd(c->se), nfd;

	if (fd < 0 || (nfd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0)
		return;
	dup2(nfd, fd);
	close(nfd);
}

static int signals_set(struct ctx *c, struct sigaction old[4])
{
	static const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;

	if (pipe2(c->stop_fd, O_CLOEXEC) != 0)
		return -1;
	fcntl(c->stop_fd[1], F_SETFL, O_NONBLOCK);
	sig_ctx = c;
	sig_first = sig_count = 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_stop_signal;
	sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: the loop's wait wakes */
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old[3]);
	return 0;
}

static void signals_restore(struct ctx *c, struct sigaction old[4])
{
	static const int sigs[4] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE };

	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	sig_ctx = NULL;
	close(c->stop_fd[0]);
	close(c->stop_fd[1]);
}

/* Periodic work: group commit, idle checkpoint, purging, idle/maxage
 * unmount. */
static void *ticker(void *arg)
{
	struct ctx *c = arg;
	int64_t started = mono_ms(), last_maint = started, elapsed = 0;
	int dropped, fatal;
	const char *fatal_why = NULL;

	while (!c->stop_ticker) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL);
		/* a tick may take longer than its 100 ms (an idle purge runs
		 * up to a second): the clock, not a count of ticks */
		fs_tick(c->fs);
		elapsed = mono_ms() - started;
		if ((fatal = fs_fatal(c->fs, &fatal_why))) {
			/* a row could not be recorded, or the store failed
			 * verification under us: stop serving at once */
			c->why = "fatal";
			if (fatal == 2) /* the others say why where they happen */
				fprintf(stderr, "custodyfs: %s: stopping\n",
				        fatal_why);
			stop_request(c, STOP_NOW);
			break;
		}
		/* a lost group transaction: the kernel must not keep serving
		 * its pages (from here, not the request that failed: an
		 * invalidation there could wait on that request's own locks) */
		dropped = fs_take_rollback(c->fs);
		if (dropped)
			drop_caches(c);
		if (!dropped && c->o->maintain && mono_ms() - last_maint >= 1000) {
			last_maint += 1000 * ((mono_ms() - last_maint) / 1000);
			if (c->o->maintain(c->o->maintain_arg) > 0) {
				drop_caches(c);
				dropped = 1;
			}
		}
		if (!dropped && c->o->stale && c->o->stale(c->o->stale_arg))
			drop_caches(c);
		if ((c->o->idle_ms && fs_idle_ms(c->fs) >= c->o->idle_ms) ||
		    (c->o->maxage_ms && elapsed >= c->o->maxage_ms)) {
			c->why = (c->o->idle_ms && fs_idle_ms(c->fs) >= c->o->idle_ms)
			                 ? "idle" : "maxage";
			stop_request(c, STOP_LIMIT);
			break;
		}
	}
	return NULL;
}

/* Append s to the option list at opts (length n), escaping the commas
 * and backslashes that FUSE's option parser would split on. */
static void opt_escaped(char *opts, size_t cap, const char *s)
{
	size_t n = strlen(opts);

	for (; *s && n + 2 < cap; s++) {
		if (*s == ',' || *s == '\\')
			opts[n++] = '\\';
		opts[n++] = *s;
	}
	opts[n] = 0;
}

/* The FUSE arguments of a session for o. 0 or -ENOMEM. */
static int session_args(const struct fsops_opts *o, struct fuse_args *args)
{
	char opts[3 * PATH_MAX];

	snprintf(opts, sizeof opts, "default_permissions,subtype=custodyfs,"
	         "fsname=");
	opt_escaped(opts, sizeof opts, o->fsname ? o->fsname : "custodyfs");
	snprintf(opts + strlen(opts), sizeof opts - strlen(opts), "%s%s%s%s",
	         o->read_only ? ",ro" : "", o->allow_other ? ",allow_other" : "",
	         o->extra_options ? "," : "",
	         o->extra_options ? o->extra_options : "");
	if (fuse_opt_add_arg(args, "custodyfs") ||
	    fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts) ||
	    (o->debug && fuse_opt_add_arg(args, "-d")))
		return -ENOMEM;
	return 0;
}

static char check_msg[512];

static void check_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t n = strlen(check_msg);

	(void)level;
	if (n + 1 < sizeof check_msg)
		vsnprintf(check_msg + n, sizeof check_msg - n, fmt, ap);
}

int fsops_check_options(const struct fsops_opts *o, char *why, size_t whylen)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	const char *p, *q;

	why[0] = 0;
	if (session_args(o, &args)) {
		fuse_opt_free_args(&args);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	check_msg[0] = 0;
	fuse_set_log_func(check_log);
	se = fuse_session_new(&args, &none, sizeof none, NULL);
	fuse_set_log_func(NULL);
	fuse_opt_free_args(&args);
	if (se) {
		fuse_session_destroy(se);
		return 0;
	}
	/* "fuse: unknown option(s): `-o bogus'": name the options */
	if ((p = strstr(check_msg, "`-o ")) && (q = strchr(p, '\'')))
		snprintf(why, whylen, "unknown mount option '%.*s'",
		         (int)(q - p - 4), p + 4);
	else {
		size_t n = strcspn(check_msg, "\n");
		snprintf(why, whylen, "bad mount options: %.*s", (int)n,
		         check_msg[0] ? check_msg : "refused by FUSE");
	}
	return -EINVAL;
}

int fsops_run(struct fs *fs, const struct fsops_opts *o,
              fsops_mounted_fn mounted, void *arg, const char **why)
{
	struct ctx c;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct sigaction old[4];
	pthread_t tick, stop;
	char top[32];
	int rc = -EIO;

	memset(&c, 0, sizeof c);
	c.fs = fs;
	c.o = o;
	c.stop_fd[0] = c.stop_fd[1] = -1;
	*why = "unmount";
	if (session_args(o, &args))
		goto out;
	c.se = fuse_session_new(&args, &ops, sizeof ops, &c);
	if (!c.se) {
		fprintf(stderr, "custodyfs: cannot start a FUSE session"
		        " (bad mount option?)\n");
		rc = -EINVAL;
		goto out;
	}
	if (signals_set(&c, old) != 0)
		goto out_session;
	/* resolved before mounting: afterwards the path leads into the mount;
	 * libfuse keeps the path it mounted for its unmount, so give it the
	 * resolved one (the daemon leaves its working directory) */
	if (!realpath(o->mountpoint, c.where))
		c.where[0] = 0;
	if (fuse_session_mount(c.se, c.where[0] ? c.where : o->mountpoint) != 0) {
		fprintf(stderr, "custodyfs: cannot mount on '%s'\n", o->mountpoint);
		rc = -EIO;
		goto out_signals;
	}
	if (c.where[0])
		mount_dev(c.where, c.dev, sizeof c.dev);
	if (wire_attach(c.se, 1, o->spin_us) != 0) {
		fprintf(stderr, "custodyfs: cannot attach to the FUSE device\n");
		rc = -EIO;
		goto out_unmount;
	}
	c.main = pthread_self();
	if (pthread_create(&stop, NULL, stopper, &c) != 0)
		goto out_unmount;
	if (mounted)
		mounted(arg);
	if (pthread_create(&tick, NULL, ticker, &c) != 0) {
		stop_request(&c, STOP_QUIT);
		pthread_join(stop, NULL);
		goto out_unmount;
	}
	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 0);
	/* every operation runs under the one filesystem lock: a second worker
	 * reads the next request while the first works; more only add
	 * wake-ups and lock hand-offs (unlinks 6.3-6.7k -> 7.7-8.2k ops/s).
	 * One worker creates files 8% faster but streams reads at 304-495
	 * instead of 563-604 MiB/s (read-ahead keeps requests in flight). */
	fuse_loop_cfg_set_max_threads(lc, 2);
	fuse_session_loop_mt(c.se, lc);
	fuse_loop_cfg_destroy(lc);
	c.stop_ticker = 1;
	pthread_join(tick, NULL);
	c.ending = 1;
	stop_request(&c, STOP_QUIT);
	pthread_join(stop, NULL);
	if (c.why)
		*why = c.why;
	rc = 0;
out_unmount:
	/* libfuse's unmount is a lazy one of the path: only while the topmost
	 * mount there is still ours (not unmounted, detached or covered) */
	if (c.where[0] && c.dev[0]) {
		mount_dev(c.where, top, sizeof top);
		if (strcmp(top, c.dev))
			disconnect(&c);
	}
	fuse_session_unmount(c.se);
out_signals:
	signals_restore(&c, old);
out_session:
	fuse_session_destroy(c.se);
out:
	fuse_opt_free_args(&args);
	return rc;
}
