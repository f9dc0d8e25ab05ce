/*
 * dir.c - directory entries: encrypted names found by keyed tags.
 *
 * A name is stored twice, neither in the clear: as a tag (keyed BLAKE2b of
 * the name under the directory's tag key), which is the lookup key, and as
 * AEAD ciphertext under the directory's name key, bound to (parent inode,
 * child inode, tag, version) so an entry moved to another directory or
 * pointed at another inode fails to open. Keys come from the master key
 * version recorded in the entry; lookups try each held version, newest
 * first, so entries written before a rotation stay reachable until
 * reencrypt moves them.
 */
#include <errno.h>
#include <string.h>

#include "fs_internal.h"

static int name_keys(struct fs *fs, const struct store_inode *dir,
                     uint32_t version)
{
	int rc = keyring_derive(fs->kr, version, KR_NAME, dir->file_id,
	                        sizeof dir->file_id, FS_KEY(fs, FS_KEY_NAME));
	if (rc)
		return rc;
	return keyring_derive(fs->kr, version, "custodyfs.tag", dir->file_id,
	                      sizeof dir->file_id, FS_KEY(fs, FS_KEY_TAG));
}

static void wipe_keys(struct fs *fs)
{
	cipher_wipe(FS_KEY(fs, FS_KEY_NAME), 2 * CIPHER_KEY_BYTES);
}

static void name_tag(struct fs *fs, const char *name, size_t len,
                     uint8_t tag[STORE_TAG_BYTES])
{
	struct cipher_part p = { name, len };
	cipher_mac(tag, FS_KEY(fs, FS_KEY_TAG), &p, 1);
}

static size_t name_ad(uint8_t *ad, uint64_t parent, uint64_t ino,
                      const uint8_t tag[STORE_TAG_BYTES], uint32_t version)
{
	for (int i = 0; i < 8; i++) {
		ad[i] = (uint8_t)(parent >> (8 * i));
		ad[8 + i] = (uint8_t)(ino >> (8 * i));
	}
	memcpy(ad + 16, tag, STORE_TAG_BYTES);
	for (int i = 0; i < 4; i++)
		ad[48 + i] = (uint8_t)(version >> (8 * i));
	return 52;
}

/* Open d's name with the name key already derived for d->key_version. */
static int open_name(struct fs *fs, const struct store_dentry *d, char *buf)
{
	uint8_t ad[52];
	size_t n;

	if (d->namelen < CIPHER_OVERHEAD + 1 ||
	    d->namelen > CIPHER_OVERHEAD + FS_NAME_MAX)
		return -EIO;
	n = d->namelen - CIPHER_OVERHEAD;
	if (cipher_open((uint8_t *)buf, d->name, d->namelen, ad,
	                name_ad(ad, d->parent, d->ino, d->tag, d->key_version),
	                FS_KEY(fs, FS_KEY_NAME)))
		return -EIO;
	buf[n] = 0;
	if (memchr(buf, 0, n) || memchr(buf, '/', n))
		return -EIO;
	return 0;
}

int dir_name(struct fs *fs, const struct store_inode *dir,
             const struct store_dentry *d, char *buf)
{
	int rc;

	if (!d->key_version || !d->namelen)
		return -EIO; /* a malformed row */
	rc = name_keys(fs, dir, d->key_version);

	if (rc == 0)
		rc = open_name(fs, d, buf);
	wipe_keys(fs);
	return rc == -ENOKEY ? -EIO : rc;
}

int dir_find(struct fs *fs, const struct store_inode *dir, const char *name,
             struct store_dentry *d)
{
	uint32_t vs[KEYRING_MAX_VERSIONS];
	size_t nv = keyring_versions(fs->kr, vs, KEYRING_MAX_VERSIONS);
	size_t len = strlen(name);
	char buf[FS_NAME_MAX + 1];
	int rc = -ENOENT;

	if (len > FS_NAME_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < nv; i++) {
		uint8_t tag[STORE_TAG_BYTES];

		if ((rc = name_keys(fs, dir, vs[i])))
			break;
		name_tag(fs, name, len, tag);
		rc = store_dentry_get(fs->s, dir->ino, tag, d);
		if (rc == -ENOENT)
			continue;
		if (rc)
			break;
		/* authenticate the entry (and its inode pointer) */
		if (d->key_version != vs[i] || open_name(fs, d, buf) ||
		    strcmp(buf, name)) {
			rc = -EIO;
			break;
		}
		rc = 0;
		break;
	}
	wipe_keys(fs);
	cipher_wipe(buf, sizeof buf);
	return rc;
}

static int seal_entry(struct fs *fs, const struct store_inode *dir,
                      const char *name, struct store_dentry *d)
{
	uint32_t v = keyring_active(fs->kr);
	size_t len = strlen(name);
	uint8_t ad[52];
	int rc;

	if (!v)
		return -EROFS;
	if (len > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if ((rc = name_keys(fs, dir, v)))
		return rc == -ENOKEY ? -EIO : rc;
	d->parent = dir->ino;
	d->key_version = v;
	name_tag(fs, name, len, d->tag);
	cipher_seal(d->name, (const uint8_t *)name, len, ad,
	            name_ad(ad, d->parent, d->ino, d->tag, v),
	            FS_KEY(fs, FS_KEY_NAME));
	d->namelen = len + CIPHER_OVERHEAD;
	wipe_keys(fs);
	return 0;
}

int dir_add(struct fs *fs, const struct store_inode *dir, const char *name,
            uint64_t ino)
{
	struct store_dentry d;
	int rc;

	memset(&d, 0, sizeof d);
	d.ino = ino;
	if ((rc = seal_entry(fs, dir, name, &d)))
		return rc;
	return store_dentry_insert(fs->s, &d);
}

int dir_reseal(struct fs *fs, const struct store_inode *dir,
               struct store_dentry *d, const char *name)
{
	int rc = seal_entry(fs, dir, name, d);

	if (rc)
		return rc;
	return store_dentry_update(fs->s, d);
}
