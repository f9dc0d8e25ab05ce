/*
 * pathcache.c - paths of inodes for the audit trail, and recording an
 * operation there.
 *
 * The store is inode-based; a row in the trail names a path so that a
 * reader of the trail need not resolve inode numbers. A path is built by
 * walking entries up to the root, decrypting each name, and cached per
 * inode until a rename or removal may have changed it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "fs_internal.h"
#include "session.h"
#include "unlock.h"

/* Path of ino by walking parent entries up to the root (cached). */
static void path_walk(struct fs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct fs_path_slot *sl = fs->paths ? &fs->paths[ino % FS_PATH_SLOTS] : NULL;
	char tmp[FS_PATH_MAX], name[FS_NAME_MAX + 1];
	size_t pos = sizeof tmp - 1;
	uint64_t cur = ino;
	int depth = 0;

	if (sl && sl->path && sl->ino == ino && sl->gen == fs->path_gen) {
		snprintf(buf, cap, "%s", sl->path);
		return;
	}
	tmp[pos] = 0;
	while (cur != STORE_ROOT_INO && depth++ < 256) {
		struct store_dentry d;
		struct store_inode dir;
		size_t n;

		if (dir_entry_of(fs, cur, &d) ||
		    inode_load(fs, d.parent, &dir) || dir_name(fs, &dir, &d, name)) {
			snprintf(buf, cap, "<ino %llu>", (unsigned long long)ino);
			return;
		}
		n = strlen(name);
		if (n + 1 > pos)
			break;
		pos -= n;
		memcpy(tmp + pos, name, n);
		tmp[--pos] = '/';
		cur = d.parent;
	}
	if (tmp[pos] == 0)
		tmp[--pos] = '/';
	snprintf(buf, cap, "%s", tmp + pos);
	cipher_wipe(name, sizeof name);
	if (sl) {
		free(sl->path);
		sl->path = strdup(tmp + pos);
		sl->ino = ino;
		sl->gen = fs->path_gen;
	}
}

void fs_path_forget(struct fs *fs, uint64_t ino, int dir)
{
	struct fs_path_slot *sl;

	if (dir || !fs->paths) {
		fs->path_gen++;
		return;
	}
	sl = &fs->paths[ino % FS_PATH_SLOTS];
	if (sl->ino == ino) {
		free(sl->path);
		sl->path = NULL;
	}
}

void fs_paths_free(struct fs *fs)
{
	for (int i = 0; fs->paths && i < FS_PATH_SLOTS; i++)
		free(fs->paths[i].path);
	free(fs->paths);
	fs->paths = NULL;
}

void fs_path_of(struct fs *fs, uint64_t dir, const char *name, char *buf,
                size_t cap)
{
	path_walk(fs, dir, buf, cap);
	if (name) {
		size_t n = strlen(buf);
		snprintf(buf + n, cap - n, "%s%s", (n == 1 && buf[0] == '/') ? "" : "/",
		         name);
	}
}

/* Can this process record anything at all? A store opened read-only (a
 * backup on read-only media) has nowhere to write: said once at open. */
static int recording(struct fs *fs)
{
	return !fs->u->readonly;
}

int fs_read_flush(struct fs *fs)
{
	struct fs_pending_read p = fs->pread;
	struct audit_who w = { p.c.uid, p.c.gid, p.c.pid };
	char buf[FS_PATH_MAX];
	int rc;

	if (!p.valid || !recording(fs))
		return 0;
	fs->pread.valid = 0;
	if (!fs->in_tx && (rc = fs_op_begin(fs)))
		return rc;
	path_walk(fs, p.ino, buf, sizeof buf);
	rc = audit_append(fs->u->trail, fs_recorder(fs, p.c.ss), &w,
	                  p.when_ns, p.write ? "write" : "read", p.ino, buf, p.off,
	                  p.len, 0);
	if (rc) {
		/* the read was answered already (a write too, and its data goes
		 * with the transaction rolled back here): the mount must stop
		 * rather than go on unrecorded */
		fs->fatal = 1;
		fs_warn(fs, "a %s could not be recorded in the audit trail (%s):"
		        " stopping", p.write ? "write" : "read", strerror(-rc));
		fs_abort_locked(fs);
	}
	return rc;
}

int fs_audit(struct fs *fs, const struct fs_ctx *c, const char *op,
             uint64_t ino, const char *path, uint64_t off, uint64_t len,
             int64_t result)
{
	char buf[FS_PATH_MAX];
	struct audit_who w;
	int rc;

#ifdef CUSTODY_NO_AUDIT
	/* measurement build only (make NO_AUDIT=1): what auditing costs */
	(void)buf; (void)op; (void)ino; (void)path; (void)off; (void)len;
	(void)c; (void)fs; (void)w; (void)rc;
	return (int)result;
#endif
	if (!c || !recording(fs) || fs->actor == fs->nobody)
		return (int)result; /* a uid without a session: no_session() */
	/* rows stay in the order things happened */
	if ((rc = fs_read_flush(fs)))
		return result < 0 ? (int)result : rc;
	if (!fs->in_tx && (rc = fs_op_begin(fs)))
		return result < 0 ? (int)result : rc;
	if (!path) {
		path_walk(fs, ino, buf, sizeof buf);
		path = buf;
	}
	w = (struct audit_who){ c->uid, c->gid, c->pid };
	rc = audit_append(fs->u->trail, fs_recorder(fs, fs->actor), &w, 0, op,
	                  ino, path, off, len,
	                  (int)result);
	if (rc) {
		/* fail closed: no row, no operation */
		fs_warn(fs, "%s could not be recorded in the audit"
		        " trail (%s): the group transaction is rolled back", op,
		        strerror(-rc));
		fs_abort_locked(fs);
		return result < 0 ? (int)result : -EIO;
	}
	return (int)result;
}
