/*
 * inode.c - inode rows: authentication (a MAC over every field under the
 * inode key of the row's version), allocation, link counting and freeing.
 *
 * Sizes, modes, owners and times are stored in the clear so the kernel can
 * stat without decryption, but each row's MAC binds them to its inode
 * number, file id and key version: a flipped bit or a row copied over
 * another gives EIO for that file.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int inode_mac(struct fs *fs, const struct store_inode *in,
              uint8_t out[STORE_MAC_BYTES])
{
	uint8_t f[8 * 13];
	uint8_t *key = FS_KEY(fs, FS_KEY_INODE);
	struct cipher_part parts[3];
	int rc = keyring_derive(fs->kr, in->key_version, KR_INODE, NULL, 0, key);

	if (rc)
		return rc;
	le64(f + 0, in->ino);
	le64(f + 8, in->key_version);
	le64(f + 16, in->mode);
	le64(f + 24, in->uid);
	le64(f + 32, in->gid);
	le64(f + 40, in->nlink);
	le64(f + 48, in->size);
	le64(f + 56, in->nblocks);
	le64(f + 64, in->rdev);
	le64(f + 72, (uint64_t)in->atime);
	le64(f + 80, (uint64_t)in->mtime);
	le64(f + 88, (uint64_t)in->ctime);
	le64(f + 96, in->generation);
	parts[0] = (struct cipher_part){ "custodyfs.inode", 15 };
	parts[1] = (struct cipher_part){ in->file_id, sizeof in->file_id };
	parts[2] = (struct cipher_part){ f, sizeof f };
	cipher_mac(out, key, parts, 3);
	cipher_wipe(key, CIPHER_KEY_BYTES);
	return 0;
}

int inode_load(struct fs *fs, uint64_t ino, struct store_inode *in)
{
	uint8_t mac[STORE_MAC_BYTES];
	int rc = store_inode_get(fs->s, ino, in);

	if (rc)
		return rc;
	rc = inode_mac(fs, in, mac);
	if (rc == -ENOKEY)
		return -EIO; /* written under a version this session lacks */
	if (rc)
		return rc;
	if (!cipher_memeq(mac, in->mac, sizeof mac))
		return -EIO;
	return 0;
}

int inode_save(struct fs *fs, struct store_inode *in)
{
	int rc;

	/* re-MAC under the active version when possible */
	if (keyring_active(fs->kr))
		in->key_version = keyring_active(fs->kr);
	if ((rc = inode_mac(fs, in, in->mac)))
		return rc == -ENOKEY ? -EIO : rc;
	return store_inode_update(fs->s, in);
}

void inode_touch(struct store_inode *in, int a, int m, int c)
{
	int64_t now = fs_now_ns();

	if (a)
		in->atime = now;
	if (m)
		in->mtime = now;
	if (c)
		in->ctime = now;
}

int inode_alloc(struct fs *fs, const struct fs_ctx *c, uint32_t mode,
                uint64_t rdev, struct store_inode *out)
{
	int rc;

	if (!keyring_active(fs->kr))
		return -EROFS;
	memset(out, 0, sizeof *out);
	cipher_unique(out->file_id, sizeof out->file_id);
	out->key_version = keyring_active(fs->kr);
	out->mode = mode;
	out->uid = c->uid;
	out->gid = c->gid;
	out->nlink = S_ISDIR(mode) ? 2 : 1;
	out->rdev = rdev;
	inode_touch(out, 1, 1, 1);
	cipher_unique(&out->generation, sizeof out->generation);
	out->generation &= 0x7fffffffffffffffull;
	/* insert a placeholder to learn the inode number, then MAC it */
	if ((rc = store_inode_insert(fs->s, out)))
		return rc;
	return inode_save(fs, out);
}

void inode_to_attr(const struct fs *fs, const struct store_inode *in,
                   struct fs_attr *out)
{
	memset(out, 0, sizeof *out);
	out->ino = in->ino;
	out->mode = in->mode;
	out->uid = in->uid;
	out->gid = in->gid;
	out->nlink = in->nlink;
	out->size = in->size;
	out->blocks = in->nblocks * (fs->block_size / 512);
	out->rdev = in->rdev;
	out->blksize = fs->block_size;
	out->atime.tv_sec = in->atime / 1000000000;
	out->atime.tv_nsec = in->atime % 1000000000;
	out->mtime.tv_sec = in->mtime / 1000000000;
	out->mtime.tv_nsec = in->mtime % 1000000000;
	out->ctime.tv_sec = in->ctime / 1000000000;
	out->ctime.tv_nsec = in->ctime % 1000000000;
	out->generation = in->generation;
}

int inode_maybe_free(struct fs *fs, uint64_t ino)
{
	struct store_inode in;
	struct fs_ref *r = fs_ref_get(fs, ino, 0);
	int rc;

	if (r && (r->nlookup || r->nopen))
		return 0;
	rc = store_inode_get(fs->s, ino, &in);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (in.nlink != 0 || ino == STORE_ROOT_INO)
		return 0;
	fs->purging = 1;
	return store_inode_delete(fs->s, ino);
}

int inode_unlink(struct fs *fs, struct store_inode *in)
{
	int rc;

	if (S_ISDIR(in->mode))
		in->nlink = 0;
	else if (in->nlink > 0)
		in->nlink--;
	inode_touch(in, 0, 0, 1);
	if ((rc = inode_save(fs, in)))
		return rc;
	if (in->nlink == 0)
		return inode_maybe_free(fs, in->ino);
	return 0;
}
