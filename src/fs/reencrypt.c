/*
 * reencrypt.c - moving every object to the active master-key version.
 *
 * Each step picks a bounded batch of objects written under an older version
 * (via the key_version indexes), re-seals each under the active version and
 * commits. A step is one transaction, so an interrupted run (Ctrl-C,
 * kill -9) loses nothing and the next run carries on where it stopped. A
 * running mount sees each step as one of its own transactions would: the
 * daemon keeps no ciphertext cached, so there is nothing to go stale.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

int fs_reencrypt_remaining(struct fs *fs, uint64_t *objects)
{
	uint32_t v = keyring_active(fs->kr);
	uint64_t n = 0;
	int rc = 0;

	*objects = 0;
	if (!v)
		return -EROFS;
	pthread_mutex_lock(&fs->lock);
	for (uint32_t old = 1; old < v && !rc; old++) {
		rc = store_key_usage(fs->s, old, &n);
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
	static const char kinds[] = { 'b', 'x', 'd', 'i' };
	uint32_t v = keyring_active(fs->kr);
	struct store_stale *st = calloc(limit, sizeof *st);
	struct store_inode in;
	uint64_t cur_ino = 0;
	size_t n = 0;
	int rc = 0;

	*moved = 0;
	*bytes = 0;
	if (!st)
		return -ENOMEM;
	if (!v) {
		free(st);
		return -EROFS;
	}
	pthread_mutex_lock(&fs->lock);
	if ((rc = store_begin(fs->s)))
		goto out;
	/* the store's generation is MACed under a version too */
	if ((rc = generation_rekey(fs))) {
		store_rollback(fs->s);
		goto out;
	}
	for (size_t k = 0; k < sizeof kinds && *moved < limit && !rc; k++) {
		if ((rc = store_stale(fs->s, kinds[k], v, limit - *moved, st, &n)))
			break;
		for (size_t i = 0; i < n && !rc; i++) {
			switch (kinds[k]) {
			case 'b':
				if (cur_ino != (uint64_t)st[i].a &&
				    (rc = inode_load(fs, (uint64_t)st[i].a, &in))) {
					uint64_t gone;
					/* blocks of a freed file waiting for purge:
					 * nothing to keep, delete them now */
					if (rc == -ENOENT)
						rc = store_block_truncate(fs->s,
						        (uint64_t)st[i].a, 0, &gone);
					break;
				}
				cur_ino = in.ino;
				rc = blockio_rekey(fs, &in, (uint64_t)st[i].b);
				*bytes += fs->block_size;
				break;
			case 'x':
				if (!(rc = inode_load(fs, (uint64_t)st[i].a, &in)))
					rc = xattr_rekey(fs, &in, st[i].tag);
				break;
			case 'd':
				rc = rekey_dentry(fs, st[i].a);
				break;
			case 'i':
				/* inode_save re-MACs under the active version */
				if (!(rc = inode_load(fs, (uint64_t)st[i].a, &in)))
					rc = inode_save(fs, &in);
				break;
			}
			(*moved)++;
		}
	}
	if (rc)
		store_rollback(fs->s);
	else
		rc = store_commit(fs->s);
out:
	pthread_mutex_unlock(&fs->lock);
	free(st);
	return rc;
}
