/*
 * fs_ops.c - the filesystem's entry points (fs.h): lookups and attributes,
 * creation, removal, rename, open files and data, directories.
 *
 * Each entry point takes fs->lock (fs_lock: it also selects the acting
 * session, whose role is checked and whose keys are used), runs its work
 * in the open group transaction (fs_tx.c), records its audit row in the
 * same transaction (fail closed: no row, no operation), and releases.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "audit.h"
#include "fs_internal.h"
#include "session.h"
#include "unlock.h"

/* ---- helpers ---- */

static int check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return -ENOENT;
	if (n > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static int load_dir(struct fs *fs, uint64_t ino, struct store_inode *dir)
{
	int rc = inode_load(fs, ino, dir);

	if (rc)
		return rc;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (dir->nlink == 0)
		return -ENOENT; /* removed while a process sat in it */
	return 0;
}

/*
 * A request from a uid without a session (or whose session ended): one
 * "no-session" row per uid and second at most, naming the uid and its
 * process, recorded by the mount's own session under the store user "-".
 * The request's own operation row is not written (fs_audit): no store user
 * did it.
 */
static void no_session(struct fs *fs)
{
	const struct fs_ctx *c = fs->req;
	int64_t now = fs_now_ms();
	struct fs_denied *slot = &fs->denied[0];
	struct audit_who w;

	if (!c || fs->u->readonly)
		return;
	for (size_t i = 0; i < sizeof fs->denied / sizeof fs->denied[0]; i++) {
		if (fs->denied[i].uid == c->uid && fs->denied[i].ms) {
			slot = &fs->denied[i];
			break;
		}
		if (fs->denied[i].ms < slot->ms)
			slot = &fs->denied[i];
	}
	if (slot->uid == c->uid && slot->ms && now - slot->ms < 1000)
		return;
	slot->uid = c->uid;
	slot->ms = now;
	if (fs_read_flush(fs) || (!fs->in_tx && fs_op_begin(fs)))
		return;
	w = (struct audit_who){ c->uid, c->gid, c->pid };
	if (audit_append_about(fs->u->trail, fs->u->ss, AUDIT_NO_SESSION, &w, 0,
	                       "no-session", "refused: this uid has no session",
	                       -EACCES)) {
		fs_warn(fs, "a refusal could not be recorded in the audit trail:"
		        " the group transaction is rolled back");
		fs_abort_locked(fs);
	}
}

int fs_may_write(struct fs *fs)
{
	if (fs->actor == fs->nobody)
		no_session(fs);
	if (fs->actor->ended)
		return -EACCES;
	if (fs->o.read_only || !keyring_active(fs->kr) ||
	    !role_writes(fs->actor->role))
		return -EROFS;
	return 0;
}

int fs_may_read(struct fs *fs)
{
	if (fs->actor == fs->nobody)
		no_session(fs);
	if (fs->actor->ended || !role_holds_data(fs->actor->role))
		return -EACCES;
	return 0;
}

/* Path of dir/name for the audit trail (only computed with a trail). */
static const char *audit_path(struct fs *fs, char *buf, size_t cap,
                              uint64_t dir, const char *name)
{
	if (fs->u->readonly)
		return NULL;
	fs_path_of(fs, dir, name, buf, cap);
	return buf;
}

/* ---- lookups and attributes ---- */

int fs_lookup(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	fs_lock(fs, c);
	fs->last_activity_ms = fs_now_ms();
	if (!(rc = fs_may_read(fs)) && !(rc = check_name(name)) &&
	    !(rc = load_dir(fs, parent, &dir))) {
		if (!strcmp(name, "."))
			rc = inode_load(fs, parent, &in);
		else if (!(rc = dir_find(fs, &dir, name, &d))) {
			rc = inode_load(fs, d.ino, &in);
			if (rc == -ENOENT)
				rc = -EIO; /* an authentic entry whose inode is gone */
		}
	}
	if (!rc) {
		inode_to_attr(fs, &in, out);
		fs_ref_lookup(fs, in.ino);
	}
	fs_unlock(fs);
	return rc;
}

/* The kernel's last reference to ino went: free it if it is unlinked.
 * A linked one (most FORGETs: the kernel evicting its cache, every entry
 * of a READDIRPLUS listing among them) opens no group transaction: that
 * was an empty commit signed by the mount, and activity for the idle
 * clock, for nothing. */
static void free_if_unlinked(struct fs *fs, uint64_t ino)
{
	struct store_inode in;

	if (fs->o.read_only || fs->u->readonly ||
	    inode_load(fs, ino, &in) || in.nlink != 0)
		return;
	if (fs_op_begin(fs) == 0)
		fs_op_end(fs, inode_maybe_free(fs, ino, 0));
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct fs_ref *r;

	fs_lock(fs, NULL);
	r = fs_ref_get(fs, ino, 0);
	if (r) {
		r->nlookup = r->nlookup > nlookup ? r->nlookup - nlookup : 0;
		if (!r->nlookup && !r->nopen) {
			fs_ref_put_if_unused(fs, r);
			free_if_unlinked(fs, ino);
		}
	}
	fs_unlock(fs);
}

/*
 * At unmount the kernel sends no FORGET for the inodes it still holds, and
 * a FORGET still queued when the unmount came is dropped with the
 * connection: a file removed just before fusermount -u would stay as an
 * orphan (blocks and all) until the next mount swept it, and check in
 * between would report it. Every reference is gone now: free what the
 * last one kept.
 */
int fs_kernel_gone(struct fs *fs)
{
	struct fs_inos gone = { NULL, 0, 0 };
	int rc = 0, c;

	fs_lock(fs, NULL);
	/* the unlinked ones first: a mount with none writes no commit here
	 * (a session ended or revoked meanwhile signs nothing more) */
	for (int i = 0; i < FS_REF_BUCKETS && !rc; i++)
		for (struct fs_ref *r = fs->refs[i]; r && !rc; r = r->next) {
			struct store_inode in;
			if (inode_load(fs, r->ino, &in) == 0 && in.nlink == 0)
				rc = fs_inos_add(&gone, r->ino);
		}
	fs_refs_free(fs);
	if (!rc && gone.n && !fs->o.read_only && !fs->u->readonly &&
	    fs_op_begin(fs) == 0) {
		for (size_t i = 0; i < gone.n && !rc; i++)
			rc = inode_maybe_free(fs, gone.v[i], 0);
		rc = fs_op_end(fs, rc);
	}
	fs_inos_free(&gone);
	fs_unlock(fs);
	c = fs_commit(fs);
	if (!rc)
		rc = c;
	return rc;
}

int fs_getattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               struct fs_attr *out)
{
	struct store_inode in;
	int rc;

	fs_lock(fs, c);
	rc = fs_may_read(fs);
	if (!rc)
		rc = inode_load(fs, ino, &in);
	if (!rc)
		inode_to_attr(fs, &in, out);
	fs_unlock(fs);
	return rc;
}

/* A time as the store keeps it, signed 64-bit nanoseconds (1677-09-21 to
 * 2262-04-11): one outside that range is clamped to its end, as ext4
 * clamps to its own, instead of wrapping to the other century. */
static int64_t ts_ns(const struct timespec *t)
{
	int64_t ns;

	if (__builtin_mul_overflow((int64_t)t->tv_sec, (int64_t)1000000000, &ns) ||
	    __builtin_add_overflow(ns, (int64_t)t->tv_nsec, &ns))
		return t->tv_sec < 0 ? INT64_MIN : INT64_MAX;
	return ns;
}

int fs_setattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               const struct fs_attr *a, int valid, struct fs_attr *out)
{
	struct store_inode in;
	int rc, k;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	rc = inode_load(fs, ino, &in);
	if (!rc && (valid & FS_SET_SIZE)) {
		if (S_ISDIR(in.mode))
			rc = -EISDIR;
		else if (!S_ISREG(in.mode))
			rc = -EINVAL;
		else {
			struct fs_ctx t = c ? *c : (struct fs_ctx){ .ss = NULL };
			t.no_fsetid = !!(valid & FS_SET_KILL_PRIVS);
			rc = blockio_truncate(fs, &in, a->size);
			inode_touch(&in, 0, 1, 1);
			if (!rc && (k = inode_kill_privs(fs, &in, &t, INODE_KILL_DATA)) < 0)
				rc = k;
		}
	}
	/* a chown clears set-user-ID (fs_kill_privs), by the rights of the
	 * caller and the group from before; so does the kernel's removal of
	 * privileges, which comes with nothing to set */
	if (!rc && ((valid & (FS_SET_UID | FS_SET_GID)) ||
	            (valid & (FS_SET_KILL_PRIVS | FS_SET_SIZE)) == FS_SET_KILL_PRIVS) &&
	    (k = inode_kill_privs(fs, &in, c, INODE_KILL_OWNER)) < 0)
		rc = k;
	if (!rc) {
		if (valid & FS_SET_MODE) {
			in.mode = (in.mode & S_IFMT) | (a->mode & 07777);
			/* as ext4's posix_acl_chmod: an access ACL follows */
			if (fs->posix_acl)
				rc = acl_chmod(fs, &in);
		}
		if (valid & FS_SET_UID)
			in.uid = a->uid;
		if (valid & FS_SET_GID)
			in.gid = a->gid;
		if (valid & FS_SET_ATIME_NOW)
			inode_touch(&in, 1, 0, 0);
		else if (valid & FS_SET_ATIME)
			in.atime = ts_ns(&a->atime);
		if (valid & FS_SET_MTIME_NOW)
			inode_touch(&in, 0, 1, 0);
		else if (valid & FS_SET_MTIME)
			in.mtime = ts_ns(&a->mtime);
		if (valid & FS_SET_CTIME)
			in.ctime = ts_ns(&a->ctime);
		else
			inode_touch(&in, 0, 0, 1);
		if (!rc)
			rc = inode_save(fs, &in);
	}
	if (!rc)
		inode_to_attr(fs, &in, out);
	/* the row goes in after the op ends: a failure is recorded too */
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, (valid & FS_SET_SIZE) ? "truncate" : "setattr", ino,
	              NULL, (valid & FS_SET_SIZE) ? a->size : 0, (uint64_t)valid,
	              rc);
out:
	fs_unlock(fs);
	return rc;
}

/* ---- creation ---- */

/* Create name in parent as a new inode of mode; for symlinks, target. */
static int create_locked(struct fs *fs, const struct fs_ctx *c,
                         uint64_t parent, const char *name, uint32_t mode,
                         uint32_t umask, uint64_t rdev, const char *target,
                         struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	struct fs_ctx cc = *c;
	struct acl_new acl = { 0 };
	int rc;

	if ((rc = check_name(name)) || (rc = load_dir(fs, parent, &dir)))
		return rc;
	rc = dir_find(fs, &dir, name, &d);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	if (S_ISDIR(mode) && dir.nlink >= 0xfffffff0u)
		return -EMLINK;
	/* setgid directories pass their group (and the bit) on */
	if (dir.mode & S_ISGID) {
		cc.gid = dir.gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	}
	/* with ACLs on, the kernel leaves the umask and the parent's default
	 * ACL to us (symlinks are 0777 and carry no ACL) */
	if (fs->posix_acl && !target &&
	    (rc = acl_create(fs, &dir, &mode, umask, &acl)))
		return rc;
	rc = inode_alloc(fs, &cc, mode, rdev, &in);
	if (!rc && (acl.access || acl.dflt) && !(rc = acl_inherit(fs, &in, &acl)))
		rc = inode_save(fs, &in);
	acl_new_free(&acl);
	if (rc)
		return rc;
	if (target) {
		ssize_t w = blockio_write(fs, &in, target, strlen(target), 0);
		if (w < 0)
			return (int)w;
		if ((rc = inode_save(fs, &in)))
			return rc;
	}
	if ((rc = dir_add(fs, &dir, name, in.ino)))
		return rc;
	if (S_ISDIR(mode))
		dir.nlink++;
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &dir)))
		return rc;
	inode_to_attr(fs, &in, out);
	fs_ref_lookup(fs, in.ino);
	return 0;
}

static int create_op(struct fs *fs, const struct fs_ctx *c, const char *op,
                     uint64_t parent, const char *name, uint32_t mode,
                     uint32_t umask, uint64_t rdev, const char *target,
                     struct fs_attr *out)
{
	char p[FS_PATH_MAX];
	int rc;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	rc = create_locked(fs, c, parent, name, mode, umask, rdev, target, out);
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, op, rc ? 0 : out->ino,
	              audit_path(fs, p, sizeof p, parent, name), 0, 0, rc);
	if (rc) {
		/* undo the reference taken for a create that rolled back */
		struct fs_ref *r = out->ino ? fs_ref_get(fs, out->ino, 0) : NULL;
		if (r && r->nlookup) {
			r->nlookup--;
			fs_ref_put_if_unused(fs, r);
		}
	}
out:
	fs_unlock(fs);
	return rc;
}

int fs_mknod(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, uint32_t umask, uint64_t rdev,
             struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) &&
	    !S_ISCHR(mode) && !S_ISBLK(mode))
		return -EINVAL;
	return create_op(fs, c, "create", parent, name, mode, umask, rdev, NULL,
	                 out);
}

int fs_mkdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name, uint32_t mode, uint32_t umask,
             struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	return create_op(fs, c, "mkdir", parent, name,
	                 S_IFDIR | (mode & 07777), umask, 0, NULL, out);
}

int fs_symlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
               const char *name, const char *target, struct fs_attr *out)
{
	size_t n = strlen(target);

	memset(out, 0, sizeof *out);
	if (n == 0)
		return -ENOENT;
	if (n >= FS_PATH_MAX)
		return -ENAMETOOLONG;
	return create_op(fs, c, "symlink", parent, name, S_IFLNK | 0777, 0, 0,
	                 target, out);
}

int fs_link(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
            uint64_t newparent, const char *newname, struct fs_attr *out)
{
	struct store_inode dir, in;
	struct store_dentry d;
	char p[FS_PATH_MAX];
	int rc;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	if ((rc = check_name(newname)) || (rc = load_dir(fs, newparent, &dir)) ||
	    (rc = inode_load(fs, ino, &in)))
		goto end;
	if (S_ISDIR(in.mode)) {
		rc = -EPERM;
		goto end;
	}
	if (in.nlink == 0) {
		rc = -ENOENT;
		goto end;
	}
	if (in.nlink >= 0xfffffff0u) {
		rc = -EMLINK;
		goto end;
	}
	rc = dir_find(fs, &dir, newname, &d);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto end;
	if ((rc = dir_add(fs, &dir, newname, ino)))
		goto end;
	in.nlink++;
	inode_touch(&in, 0, 0, 1);
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &in)) || (rc = inode_save(fs, &dir)))
		goto end;
	inode_to_attr(fs, &in, out);
	fs_ref_lookup(fs, ino);
end:
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, "link", ino,
	              audit_path(fs, p, sizeof p, newparent, newname), 0, 0, rc);
out:
	fs_unlock(fs);
	return rc;
}

/* ---- removal ---- */

static int remove_locked(struct fs *fs, uint64_t parent, const char *name,
                         int want_dir, uint64_t *ino)
{
	struct store_inode dir, in;
	struct store_dentry d;
	int rc;

	if ((rc = check_name(name)) || (rc = load_dir(fs, parent, &dir)))
		return rc;
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	if ((rc = dir_find(fs, &dir, name, &d)) ||
	    (rc = inode_load(fs, d.ino, &in)))
		return rc;
	*ino = in.ino;
	if (want_dir && !S_ISDIR(in.mode))
		return -ENOTDIR;
	if (!want_dir && S_ISDIR(in.mode))
		return -EISDIR;
	if (want_dir && in.nentries)
		return -ENOTEMPTY;
	if ((rc = dir_remove(fs, &dir, &d)))
		return rc;
	if (want_dir && dir.nlink > 2)
		dir.nlink--;
	inode_touch(&dir, 0, 1, 1);
	if ((rc = inode_save(fs, &dir)))
		return rc;
	return inode_unlink(fs, &in, fs_ref_held(fs, in.ino));
}

static int remove_op(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
                     const char *name, int want_dir)
{
	char p[FS_PATH_MAX];
	const char *path;
	uint64_t ino = 0;
	int rc;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	path = audit_path(fs, p, sizeof p, parent, name);
	rc = remove_locked(fs, parent, name, want_dir, &ino);
	fs_path_forget(fs, ino, want_dir);
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, want_dir ? "rmdir" : "unlink", ino, path, 0, 0, rc);
out:
	fs_unlock(fs);
	return rc;
}

int fs_unlink(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name)
{
	return remove_op(fs, c, parent, name, 0);
}

int fs_rmdir(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
             const char *name)
{
	return remove_op(fs, c, parent, name, 1);
}

/* ---- rename ---- */

/* Is dir `ino` equal to or below `ancestor`? Walks parent entries up. */
static int is_within(struct fs *fs, uint64_t ino, uint64_t ancestor)
{
	struct store_dentry d;
	int depth = 0, rc;

	while (ino != STORE_ROOT_INO && depth++ < 100000) {
		if (ino == ancestor)
			return 1;
		rc = dir_entry_of(fs, ino, &d);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		ino = d.parent;
	}
	return ino == ancestor;
}

static int rename_locked(struct fs *fs, uint64_t parent, const char *name,
                         uint64_t newparent, const char *newname,
                         unsigned flags, uint64_t *ino)
{
	struct store_inode sdir, ddir_own, src, dst, *ddir;
	struct store_dentry sd, dd;
	int rc, have_dst, same_dir = parent == newparent;

	if ((rc = check_name(name)) || (rc = check_name(newname)))
		return rc;
	if (!strcmp(name, ".") || !strcmp(name, "..") ||
	    !strcmp(newname, ".") || !strcmp(newname, ".."))
		return -EINVAL;
	if ((flags & FS_RENAME_NOREPLACE) && (flags & FS_RENAME_EXCHANGE))
		return -EINVAL;
	if ((rc = load_dir(fs, parent, &sdir)))
		return rc;
	/* one directory is one row: both names change the same struct */
	ddir = same_dir ? &sdir : &ddir_own;
	if (!same_dir && (rc = load_dir(fs, newparent, ddir)))
		return rc;
	if ((rc = dir_find(fs, &sdir, name, &sd)) ||
	    (rc = inode_load(fs, sd.ino, &src)))
		return rc;
	*ino = src.ino;
	rc = dir_find(fs, ddir, newname, &dd);
	if (rc && rc != -ENOENT)
		return rc;
	have_dst = rc == 0;
	if (have_dst && (rc = inode_load(fs, dd.ino, &dst)))
		return rc;
	if (flags & FS_RENAME_EXCHANGE) {
		if (!have_dst)
			return -ENOENT;
	} else if (have_dst && (flags & FS_RENAME_NOREPLACE))
		return -EEXIST;
	if (have_dst && dst.ino == src.ino)
		return 0; /* same file (or hard links to it): nothing to do */
	/* a directory cannot move below itself */
	if (S_ISDIR(src.mode) && !same_dir) {
		rc = is_within(fs, newparent, src.ino);
		if (rc < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}
	if ((flags & FS_RENAME_EXCHANGE) && S_ISDIR(dst.mode) && !same_dir) {
		rc = is_within(fs, parent, dst.ino);
		if (rc < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}

	if (flags & FS_RENAME_EXCHANGE) {
		/* swap what the two entries point to */
		sd.ino = dst.ino;
		dd.ino = src.ino;
		if ((rc = dir_reseal(fs, &sdir, &sd, name)) ||
		    (rc = dir_reseal(fs, ddir, &dd, newname)))
			return rc;
		if (!same_dir && S_ISDIR(src.mode) != S_ISDIR(dst.mode)) {
			if (S_ISDIR(src.mode)) {
				sdir.nlink--;
				ddir->nlink++;
			} else {
				sdir.nlink++;
				ddir->nlink--;
			}
		}
		inode_touch(&src, 0, 0, 1);
		inode_touch(&dst, 0, 0, 1);
		if ((rc = inode_save(fs, &src)) || (rc = inode_save(fs, &dst)))
			return rc;
	} else {
		if (have_dst) {
			if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
				return -ENOTDIR;
			if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
				return -EISDIR;
			if (S_ISDIR(dst.mode)) {
				if (dst.nentries)
					return -ENOTEMPTY;
				ddir->nlink--;
			}
			if ((rc = dir_remove(fs, ddir, &dd)) ||
			    (rc = inode_unlink(fs, &dst, fs_ref_held(fs, dst.ino))))
				return rc;
		}
		if ((rc = dir_remove(fs, &sdir, &sd)))
			return rc;
		if ((rc = dir_add(fs, ddir, newname, src.ino)))
			return rc;
		if (S_ISDIR(src.mode) && !same_dir) {
			sdir.nlink--;
			ddir->nlink++;
		}
		inode_touch(&src, 0, 0, 1);
		if ((rc = inode_save(fs, &src)))
			return rc;
	}
	inode_touch(&sdir, 0, 1, 1);
	if ((rc = inode_save(fs, &sdir)))
		return rc;
	if (same_dir)
		return 0;
	inode_touch(ddir, 0, 1, 1);
	return inode_save(fs, ddir);
}

int fs_rename(struct fs *fs, const struct fs_ctx *c, uint64_t parent,
              const char *name, uint64_t newparent, const char *newname,
              unsigned flags)
{
	char p[2 * FS_PATH_MAX + 8];
	uint64_t ino = 0;
	int rc;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	if (!fs->u->readonly) {
		size_t n;
		fs_path_of(fs, parent, name, p, FS_PATH_MAX);
		n = strlen(p);
		snprintf(p + n, sizeof p - n, " -> ");
		n = strlen(p);
		fs_path_of(fs, newparent, newname, p + n, sizeof p - n);
	}
	rc = rename_locked(fs, parent, name, newparent, newname, flags, &ino);
	/* an exchange or a replaced target may have moved a directory */
	fs_path_forget(fs, ino, 1);
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, "rename", ino, fs->u->readonly ? NULL : p, 0, flags,
	              rc);
out:
	fs_unlock(fs);
	return rc;
}

int fs_readlink(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t cap)
{
	struct store_inode in;
	ssize_t n;
	int rc;

	fs_lock(fs, c);
	if (!(rc = fs_may_read(fs)))
		rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISLNK(in.mode))
		rc = -EINVAL;
	if (!rc && (in.size == 0 || in.size >= cap || in.size >= FS_PATH_MAX))
		rc = -EIO;
	if (!rc) {
		n = blockio_read(fs, &in, buf, (size_t)in.size, 0);
		if (n < 0)
			rc = (int)n;
		else if ((uint64_t)n != in.size)
			rc = -EIO;
		else {
			buf[n] = 0;
			rc = (int)n;
		}
	}
	fs_unlock(fs);
	return rc;
}

/* ---- open files and data ---- */

int fs_open(struct fs *fs, const struct fs_ctx *c, uint64_t ino, int flags,
            int64_t *sid)
{
	struct store_inode in;
	struct fs_ref *r;
	int rc, trunc, acc = flags & O_ACCMODE;

	fs_lock(fs, c);
	if (!(rc = fs_may_read(fs)))
		rc = inode_load(fs, ino, &in);
	if (!rc && S_ISDIR(in.mode) && acc != O_RDONLY)
		rc = -EISDIR;
	/* O_TRUNC truncates whatever the access mode (the kernel checked
	 * write permission), as on ext4 */
	trunc = !rc && (flags & O_TRUNC) && S_ISREG(in.mode);
	if (!rc && (acc != O_RDONLY || trunc) && (rc = fs_may_write(fs)) == 0 &&
	    trunc) {
		/* loaded again inside the write transaction: what the read
		 * transaction saw may be older than the head it verified */
		if (!(rc = fs_op_begin(fs)) && !(rc = inode_load(fs, ino, &in))) {
			/* an unprivileged O_TRUNC clears set-user-ID, even of an
			 * empty file (fs_kill_privs) */
			int killed = inode_kill_privs(fs, &in, c, INODE_KILL_DATA);
			int had = in.size != 0;
			if (killed < 0)
				rc = killed;
			else {
				/* an empty file's times move too, as on ext4 (the
				 * VFS truncates with ATTR_MTIME | ATTR_CTIME): a
				 * stamp file made with `: > f` must look new */
				if (had)
					rc = blockio_truncate(fs, &in, 0);
				inode_touch(&in, 0, 1, 1);
			}
			if (!rc)
				rc = inode_save(fs, &in);
			rc = fs_op_end(fs, rc);
		}
	}
	if (!rc) {
		r = fs_ref_get(fs, ino, 1);
		if (r) {
			r->nopen++;
			r->nwrite += acc != O_RDONLY;
		} else
			rc = -ENOMEM;
	}
	{
		int ar = fs_audit(fs, c, "open", ino, NULL, (uint64_t)flags, 0, rc);
		if (ar != rc && !rc) {
			/* not recorded: the open does not happen */
			if ((r = fs_ref_get(fs, ino, 0)) && r->nopen) {
				r->nopen--;
				if (acc != O_RDONLY && r->nwrite)
					r->nwrite--;
				fs_ref_put_if_unused(fs, r);
			}
			rc = ar;
		}
	}
	if (sid)
		*sid = fs->actor->id;
	fs_unlock(fs);
	return rc;
}

void fs_release(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                int flags)
{
	struct fs_ref *r;

	fs_lock(fs, c);
	r = fs_ref_get(fs, ino, 0);
	if (r && r->nopen) {
		r->nopen--;
		if ((flags & O_ACCMODE) != O_RDONLY && r->nwrite)
			r->nwrite--;
		if (!r->nopen && !r->nlookup) {
			fs_ref_put_if_unused(fs, r);
			free_if_unlinked(fs, ino);
		}
	}
	fs_unlock(fs);
}

/* relatime: update atime when it is older than mtime/ctime or a day old */
static int atime_due(const struct store_inode *in)
{
	int64_t now = fs_now_ns();
	return in->atime <= in->mtime || in->atime <= in->ctime ||
	       now - in->atime >= 86400ll * 1000000000;
}

/*
 * The data of a read, under fs->lock on entry and return. A large read is
 * staged and decrypted with the lock released, so another worker's request
 * proceeds meanwhile; *in is then loaded again (it may have changed) and
 * *in_ok says whether it still exists.
 */
static ssize_t read_data(struct fs *fs, const struct fs_ctx *c,
                         struct store_inode *in, int *in_ok, char *buf,
                         size_t size, uint64_t off)
{
	struct read_stage *st = NULL;
	uint64_t ino = in->ino;
	ssize_t n;

	for (int i = 0; size >= FS_STAGE_MIN && i < FS_STAGES && !st; i++)
		if (!blockio_stage_busy(fs->stage[i]))
			st = fs->stage[i];
	if (!st || (n = blockio_stage(fs, in, st, size, off)) == -EAGAIN)
		return blockio_read(fs, in, buf, size, off);
	if (n <= 0)
		return n;
	blockio_stage_hold(st, 1);
	fs_unlock(fs);
	n = blockio_unstage(fs->par, st, buf);
	fs_lock(fs, c);
	blockio_stage_hold(st, 0);
	if (n > 0 && fs_may_read(fs)) {
		/* the session ended meanwhile (revoked): nothing goes out */
		memset(buf, 0, (size_t)n);
		n = -EACCES;
	}
	*in_ok = inode_load(fs, ino, in) == 0;
	return n;
}

/*
 * A successful read or write of n bytes at off, into the pending row: a
 * run continuing it (same file, process, ids, session and kind) extends
 * it, so every byte is accounted for with one row per contiguous run;
 * anything else writes the pending row first and starts a new one. 0, or
 * the error of writing the old row (then nothing is pending).
 */
static int pending_extend(struct fs *fs, const struct fs_ctx *c, int write,
                          uint64_t ino, uint64_t off, uint64_t n)
{
	struct fs_pending_read *p = &fs->pread;
	struct timespec ts;

	if (p->valid && p->write == write && p->ino == ino &&
	    p->c.pid == c->pid && p->c.uid == c->uid && p->c.gid == c->gid &&
	    p->c.ss == fs->actor && off == p->off + p->len) {
		p->len += n;
		return 0;
	}
	if (fs_read_flush(fs))
		return -EIO;
	clock_gettime(CLOCK_REALTIME, &ts);
	*p = (struct fs_pending_read){ 1, write, *c, ino, off, n,
	        (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, fs_now_ms() };
	p->c.ss = fs->actor;
	return 0;
}

ssize_t fs_read(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                char *buf, size_t size, uint64_t off)
{
	struct store_inode in;
	ssize_t n;
	int rc, in_ok = 1;

	fs_lock(fs, c);
	if (!(rc = fs_may_read(fs)))
		rc = inode_load(fs, ino, &in);
	if (!rc && S_ISDIR(in.mode))
		rc = -EISDIR;
	if (rc) {
		n = fs_audit(fs, c, "read", ino, NULL, off, size, rc);
		goto out;
	}
	n = read_data(fs, c, &in, &in_ok, buf, size, off);
	if (n >= 0 && in_ok && atime_due(&in) && !fs_may_write(fs) &&
	    fs_op_begin(fs) == 0) {
		/* loaded again inside the write transaction (see fs_open) */
		int r = inode_load(fs, ino, &in);
		if (!r && atime_due(&in)) {
			inode_touch(&in, 1, 0, 0);
			r = inode_save(fs, &in);
		}
		fs_op_end(fs, r);
	}
	if (fs->u->readonly)
		goto out;
	if (n < 0) {
		n = fs_audit(fs, c, "read", ino, NULL, off, size, n);
		goto out;
	}
	/* a read continuing the pending one extends its row: every byte is
	 * accounted for, one row per contiguous run */
	if (pending_extend(fs, c, 0, ino, off, (uint64_t)n))
		n = -EIO; /* not recorded: not answered */
out:
	fs_unlock(fs);
	return n;
}

ssize_t fs_write(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                 const char *buf, size_t size, uint64_t off)
{
	struct store_inode in;
	ssize_t n;
	int rc;

	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs))) {
		n = rc;
		goto out;
	}
	rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISREG(in.mode))
		rc = S_ISDIR(in.mode) ? -EISDIR : -EINVAL;
	if (rc)
		n = rc;
	else {
		n = blockio_write(fs, &in, buf, size, off);
		if (n > 0) {
			/* an unprivileged write clears set-user-ID (fs_kill_privs;
			 * without it the kernel does, with a SETATTR before) */
			if ((rc = inode_kill_privs(fs, &in, c, INODE_KILL_DATA)) >= 0) {
				if (!fs->kernel_times)
					inode_touch(&in, 0, 1, 1);
				rc = inode_save(fs, &in);
			}
			if (rc)
				n = rc;
		}
	}
	/* a partial write that then failed has changed rows: fs_op_end
	 * rolls back; a whole one keeps its byte count */
	if (n < 0)
		n = fs_op_end(fs, (int)n);
	else if ((rc = fs_op_end(fs, 0)))
		n = rc;
	/* a whole write joins the pending row (its data and its row go in
	 * one transaction: the row is written at the latest at the commit);
	 * a short or failed one gets its own */
	if (n > 0 && (size_t)n == size && c && !fs->u->readonly &&
	    fs->actor != fs->nobody) {
		if (pending_extend(fs, c, 1, ino, off, (uint64_t)n)) {
			/* the write's row cannot be: neither can the write (the
			 * failed flush rolled the group back) */
			n = -EIO;
		}
	} else
		n = fs_audit(fs, c, "write", ino, NULL, off, size, n);
out:
	fs_unlock(fs);
	return n;
}

int fs_fsync(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
             int datasync)
{
	int rc, src;

	(void)ino; (void)datasync;
	fs_lock(fs, c);
	rc = fs_commit_locked(fs);
	/* durable when this returns: our commit is synced by fs_unlock, one
	 * another thread made before is waited for */
	if ((src = fs_unlock(fs)) && !rc)
		rc = src;
	if (!rc)
		rc = fs_wait_durable(fs);
	return rc;
}

/* ---- directories ---- */

int fs_opendir(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               int64_t *sid)
{
	struct store_inode in;
	int rc;

	fs_lock(fs, c);
	if (!(rc = fs_may_read(fs)))
		rc = load_dir(fs, ino, &in);
	rc = fs_audit(fs, c, "opendir", ino, NULL, 0, 0, rc);
	if (sid)
		*sid = fs->actor->id;
	fs_unlock(fs);
	return rc;
}

struct rd_ctx {
	struct fs *fs;
	struct store_inode *dir;
	fs_fill_fn fill;
	void *arg;
	uint64_t seen;   /* verified entries passed to fill */
	int64_t next;    /* the offset after the last entry passed */
	int full;
	int plus;        /* attributes too, each one a lookup */
	int err;
	/* the entries given with attributes: lookups only once the listing
	 * is answered (an error reply links nothing in the kernel, which
	 * would never forget them) */
	struct fs_inos looked;
};

static int rd_entry(void *arg, const struct store_dentry *d)
{
	struct rd_ctx *r = arg;
	struct store_inode in;
	struct fs_attr a;
	char name[FS_NAME_MAX + 1];
	uint32_t mode = 0;
	int have = 0;

	/* an entry that is not the signed one (forged, put back) is hidden;
	 * a signed one that is missing shows in the count at the end */
	if (dir_verify(r->fs, d) || dir_name(r->fs, r->dir, d, name))
		return 0;
	if (inode_load(r->fs, d->ino, &in) == 0) {
		mode = in.mode;
		/* an entry named "." or ".." (no name the kernel creates) the
		 * kernel never links: it comes bare, as the real ones do */
		if (r->plus && strcmp(name, ".") && strcmp(name, "..")) {
			inode_to_attr(r->fs, &in, &a);
			have = 1;
		}
	}
	if (have && (r->err = fs_inos_room(&r->looked)))
		return 1;
	if (r->fill(r->arg, name, d->ino, mode, have ? &a : NULL, d->id + 2)) {
		r->full = 1;
		return 1;
	}
	if (have)
		r->looked.v[r->looked.n++] = d->ino; /* room made above */
	r->seen++;
	r->next = d->id + 2;
	return 0;
}

/*
 * Listings are checked for completeness: a directory's inode row counts
 * its entries (covered by the inode tree), and a listing that reached the
 * end having seen fewer verified entries than that gives -EIO (an entry
 * was deleted behind custodyfs' back). The count runs over consecutive
 * calls of one listing (the kernel asks for the next offset each time).
 */
int fs_readdir(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
               int64_t off, int plus, fs_fill_fn fill, void *arg)
{
	struct store_inode dir;
	struct store_dentry pd;
	struct fs_rdcursor *cur = &fs->rdcur[ino % FS_RDCURSORS];
	struct rd_ctx r = { 0 };
	int rc, counting;

	fs_lock(fs, c);
	if ((rc = fs_may_read(fs)) || (rc = inode_load(fs, ino, &dir)))
		goto out;
	if (!S_ISDIR(dir.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	counting = off < 1 || (cur->ino == ino && cur->next_off == off);
	fs->last_activity_ms = fs_now_ms();
	r = (struct rd_ctx){ fs, &dir, fill, arg, off < 1 ? 0 : cur->seen, off,
	                     0, plus, 0, { NULL, 0, 0 } };
	if (off < 1) {
		if (fill(arg, ".", ino, S_IFDIR, NULL, 1))
			goto out;
		off = 1;
	}
	if (off < 2) {
		uint64_t up = ino;
		if (ino != STORE_ROOT_INO && dir_entry_of(fs, ino, &pd) == 0)
			up = pd.parent;
		if (fill(arg, "..", up, S_IFDIR, NULL, 2))
			goto out;
		off = 2;
	}
	r.next = off;
	rc = store_dentry_each(fs->s, ino, off - 2, rd_entry, &r);
	if (rc > 0)
		rc = 0;
	if (!rc && r.err)
		rc = r.err;
	if (!rc && counting) {
		if (r.full) {
			cur->ino = ino;
			cur->seen = r.seen;
			cur->next_off = r.next;
		} else {
			cur->ino = 0;
			if (r.seen < dir.nentries)
				rc = -EIO; /* signed entries are missing */
		}
	}
	/* the reply carries the entries: each one with attributes is the
	 * kernel's lookup now (none when the reply is an error) */
	for (size_t i = 0; !rc && i < r.looked.n; i++)
		fs_ref_lookup(fs, r.looked.v[i]);
out:
	fs_inos_free(&r.looked);
	fs_unlock(fs);
	return rc;
}

int fs_backing_statvfs(struct fs *fs, struct statvfs *sv)
{
	const char *p = fs->o.store_path ? fs->o.store_path : "/";
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof dir, "%s", p);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else if (slash)
		dir[1] = 0;
	else
		snprintf(dir, sizeof dir, ".");
	return statvfs(dir, sv) != 0 ? -errno : 0;
}

int fs_statfs(struct fs *fs, struct statvfs *out)
{
	struct statvfs sv;
	uint64_t files = 0, dirs = 0, bytes = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = fs_backing_statvfs(fs, &sv)))
		return rc;
	fs_lock(fs, NULL);
	store_inode_count(fs->s, &files, &dirs, &bytes);
	fs_unlock(fs);
	out->f_bsize = fs->block_size;
	out->f_frsize = fs->block_size;
	out->f_blocks = (uint64_t)sv.f_blocks * sv.f_frsize / fs->block_size;
	out->f_bfree = (uint64_t)sv.f_bfree * sv.f_frsize / fs->block_size;
	out->f_bavail = (uint64_t)sv.f_bavail * sv.f_frsize / fs->block_size;
	out->f_files = files + dirs + sv.f_ffree;
	out->f_ffree = sv.f_ffree;
	out->f_favail = sv.f_favail;
	out->f_namemax = FS_NAME_MAX;
	return 0;
}
