/*
 * reencrypt.c - moving every object to the active master-key version.
 *
 * Each step picks a bounded batch of objects written under an older version
 * (via the key_version indexes), re-seals each under the active version,
 * puts the new leaves into the trees and commits, with its own signed
 * commit record. A step is one transaction, so an interrupted run (Ctrl-C,
 * kill -9) loses nothing and the next run carries on where it stopped. A
 * running mount verifies each step's commit before it reads again (its
 * caches of tree nodes are dropped), as it would any other process's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"
#include "rights.h"
#include "unlock.h"

int fs_reencrypt_remaining(struct fs *fs, int full, uint64_t *objects)
{
	uint32_t v = keyring_active(fs->kr);
	uint64_t n = 0;
	int rc = 0;

	*objects = 0;
	if (!v)
		return -EROFS;
	pthread_mutex_lock(&fs->lock);
	for (uint32_t old = 1; old < v && !rc; old++) {
		rc = store_key_usage(fs->s, old, full, &n);
		*objects += n;
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static int rekey_dentry(struct fs *fs, int64_t id)
{
	struct store_dentry d;
	struct store_inode dir;
	char name[FS_NAME_MAX + 1];
	int rc;

	if ((rc = store_dentry_get_id(fs->s, id, &d)) ||
	    (rc = dir_verify(fs, &d)) ||
	    (rc = inode_load(fs, d.parent, &dir)) ||
	    (rc = dir_name(fs, &dir, &d, name)))
		return rc;
	rc = dir_reseal(fs, &dir, &d, name);
	cipher_wipe(name, sizeof name);
	return rc;
}

int fs_reencrypt_step(struct fs *fs, size_t limit, uint64_t *moved,
                      uint64_t *bytes)
{
	static const char kinds[] = { 'b', 'x', 'd' };
	struct store_stale *st = calloc(limit ? limit : 1, sizeof *st);
	struct store_inode in;
	uint64_t cur_ino = 0;
	uint32_t v;
	size_t n = 0;
	int rc = 0, have = 0;

	*moved = 0;
	*bytes = 0;
	if (!st)
		return -ENOMEM;
	fs_lock(fs, NULL);
	v = keyring_active(fs->kr);
	if (!v) {
		rc = -EROFS;
		goto out;
	}
	if ((rc = fs_op_begin(fs)))
		goto out;
	for (size_t k = 0; k < sizeof kinds && *moved < limit && !rc; k++) {
		if ((rc = store_stale(fs->s, kinds[k], v, limit - *moved, st, &n)))
			break;
		for (size_t i = 0; i < n && !rc; i++) {
			switch (kinds[k]) {
			case 'b':
				if (!have || cur_ino != (uint64_t)st[i].a) {
					if (have && (rc = inode_save(fs, &in)))
						break;
					have = 0;
					rc = inode_load(fs, (uint64_t)st[i].a, &in);
					if (rc == -ENOENT) {
						/* blocks of a freed file waiting for purge:
						 * nothing to keep */
						uint64_t gone;
						rc = store_block_truncate(fs->s,
						        (uint64_t)st[i].a, 0, &gone);
						break;
					}
					if (rc)
						break;
					have = 1;
					cur_ino = in.ino;
				}
				rc = blockio_rekey(fs, &in, (uint64_t)st[i].b);
				*bytes += fs->block_size;
				break;
			case 'x':
				if (!(rc = inode_load(fs, (uint64_t)st[i].a, &in)) &&
				    !(rc = xattr_rekey(fs, &in)))
					rc = inode_save(fs, &in);
				break;
			case 'd':
				rc = rekey_dentry(fs, st[i].a);
				break;
			}
			(*moved)++;
		}
		if (!rc && have && kinds[k] == 'b') {
			rc = inode_save(fs, &in);
			have = 0;
		}
	}
	rc = fs_op_end(fs, rc);
	if (!rc)
		rc = fs_commit_locked(fs);
out:
	fs_unlock(fs);
	free(st);
	return rc;
}
