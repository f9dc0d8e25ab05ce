/*
 * dir.c - directory entries: encrypted names found by keyed tags, each
 * entry checked against the entry tree.
 *
 * A name is stored twice, neither in the clear: as a tag (keyed BLAKE2b of
 * the name under the directory's tag key), which is the lookup key, and as
 * AEAD ciphertext under the directory's name key, bound to (parent inode,
 * child inode, tag, version) so an entry moved to another directory or
 * pointed at another inode fails to open. Keys come from the master key
 * version recorded in the entry; lookups try each held version, newest
 * first, so entries written before a rotation stay reachable until
 * reencrypt moves them.
 *
 * Each entry's leaf (position: its id) covers every column, so an entry
 * forged with a data key or put back after a rename or removal is not the
 * signed one (-EIO). A removed entry cannot be told from a name that never
 * existed by a lookup, but the directory's entry count is in its inode
 * row: a listing that finds fewer entries says -EIO, and check names them.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "bytes.h"
#include "fs_internal.h"

void dentry_leaf(const struct store_dentry *d, uint8_t leaf[MTREE_HASH_BYTES])
{
	uint8_t f[8 * 4 + 4];
	struct cipher_part p[4];

	put_le64(f, (uint64_t)d->id);
	put_le64(f + 8, d->parent);
	put_le64(f + 16, d->ino);
	put_le64(f + 24, d->namelen);
	put_le32(f + 32, d->key_version);
	p[0] = (struct cipher_part){ "custodyfs.dentry", 16 };
	p[1] = (struct cipher_part){ f, sizeof f };
	p[2] = (struct cipher_part){ d->tag, sizeof d->tag };
	p[3] = (struct cipher_part){ d->name, d->namelen };
	cipher_hash(leaf, p, 4);
}

int dir_verify(struct fs *fs, const struct store_dentry *d)
{
	uint8_t want[MTREE_HASH_BYTES], have[MTREE_HASH_BYTES];
	int rc;

	if (d->id < 1)
		return -EIO;
	if ((rc = mtree_leaf(fs->mt, MTREE_DENTRIES, 0, &fs->dentries,
	                     (uint64_t)d->id, want)))
		return rc == -EINVAL ? -EIO : rc;
	dentry_leaf(d, have);
	return cipher_memeq(want, have, sizeof have) ? 0 : -EIO;
}

int dir_entry_of(struct fs *fs, uint64_t ino, struct store_dentry *out)
{
	int64_t after = INT64_MIN;
	int rc, seen = 0;

	while ((rc = store_dentry_of_ino(fs->s, ino, after, out)) == 0) {
		if ((rc = dir_verify(fs, out)) != -EIO)
			return rc;
		seen = 1;
		after = out->id;
	}
	return rc == -ENOENT && seen ? -EIO : rc;
}

static int name_keys(struct fs *fs, const struct store_inode *dir,
                     uint32_t version)
{
	int rc = keyring_derive(fs->kr, version, KR_NAME, dir->file_id,
	                        sizeof dir->file_id, FS_KEY(fs, FS_KEY_NAME));
	if (rc)
		return rc;
	return keyring_derive(fs->kr, version, KR_TAG, dir->file_id,
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
	put_le64(ad, parent);
	put_le64(ad + 8, ino);
	memcpy(ad + 16, tag, STORE_TAG_BYTES);
	put_le32(ad + 48, version);
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
	if (!nv)
		return -EACCES; /* no data key: no names */
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
		/* the signed entry, and its name (and inode pointer) open */
		if ((rc = dir_verify(fs, d)))
			break;
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

static int put_leaf(struct fs *fs, const struct store_dentry *d)
{
	uint8_t leaf[MTREE_HASH_BYTES];

	dentry_leaf(d, leaf);
	return mtree_put(fs->mt, MTREE_DENTRIES, 0, &fs->dentries,
	                 (uint64_t)d->id, leaf);
}

int dir_add(struct fs *fs, struct store_inode *dir, const char *name,
            uint64_t ino)
{
	struct store_dentry d;
	int rc;

	memset(&d, 0, sizeof d);
	d.ino = ino;
	if ((rc = seal_entry(fs, dir, name, &d)) ||
	    (rc = store_dentry_insert(fs->s, &d)) || (rc = put_leaf(fs, &d)))
		return rc;
	dir->nentries++;
	return 0;
}

int dir_remove(struct fs *fs, struct store_inode *dir,
               const struct store_dentry *d)
{
	static const uint8_t zero[MTREE_HASH_BYTES];
	int rc;

	if ((rc = store_dentry_delete_id(fs->s, d->id)) ||
	    (rc = mtree_put(fs->mt, MTREE_DENTRIES, 0, &fs->dentries,
	                    (uint64_t)d->id, zero)))
		return rc == -ENOENT ? -EIO : rc;
	if (dir->nentries)
		dir->nentries--;
	return 0;
}

int dir_reseal(struct fs *fs, const struct store_inode *dir,
               struct store_dentry *d, const char *name)
{
	int rc = seal_entry(fs, dir, name, d);

	if (rc || (rc = store_dentry_update(fs->s, d)))
		return rc;
	return put_leaf(fs, d);
}
