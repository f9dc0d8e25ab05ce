/*
 * generation.c - the store's generation: a counter in the authenticated
 * metadata that grows with every group commit of a read-write mount, so a
 * restored backup or a replayed copy of the store file is recognisable as
 * older than one this machine has already seen.
 *
 * meta "generation" = counter (8, LE) || key version (4) || MAC, the MAC
 * under KDF(K_v, "custodyfs.meta") over the store id and counter. Anyone
 * holding a data key can advance it; nobody without one can forge it.
 */
#include <errno.h>
#include <string.h>

#include "fs_internal.h"

#define GEN_BYTES (8 + 4 + STORE_MAC_BYTES)

static int gen_mac(struct fs *fs, uint32_t v, uint64_t counter,
                   uint8_t out[STORE_MAC_BYTES])
{
	uint8_t id[16], c[8];
	size_t n;
	struct cipher_part p[3];
	int rc = store_meta_get(fs->s, "store_id", id, sizeof id, &n);

	if (rc)
		return rc;
	if (n != sizeof id)
		return -EIO;
	for (int i = 0; i < 8; i++)
		c[i] = (uint8_t)(counter >> (8 * i));
	if ((rc = keyring_derive(fs->kr, v, KR_META, NULL, 0,
	                         FS_KEY(fs, FS_KEY_INODE))))
		return rc;
	p[0] = (struct cipher_part){ "generation", 10 };
	p[1] = (struct cipher_part){ id, sizeof id };
	p[2] = (struct cipher_part){ c, sizeof c };
	cipher_mac(out, FS_KEY(fs, FS_KEY_INODE), p, 3);
	cipher_wipe(FS_KEY(fs, FS_KEY_INODE), CIPHER_KEY_BYTES);
	return 0;
}

int generation_read(struct fs *fs, uint64_t *counter)
{
	uint8_t buf[GEN_BYTES], mac[STORE_MAC_BYTES];
	uint64_t c = 0;
	uint32_t v = 0;
	size_t n;
	int rc = store_meta_get(fs->s, "generation", buf, sizeof buf, &n);

	*counter = 0;
	if (rc == -ENOENT)
		return 0; /* a store no read-write mount has committed to yet */
	if (rc)
		return rc;
	if (n != GEN_BYTES)
		return -EBADMSG;
	for (int i = 7; i >= 0; i--)
		c = (c << 8) | buf[i];
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | buf[8 + i];
	rc = gen_mac(fs, v, c, mac);
	if (rc)
		return rc; /* -ENOKEY: this session holds no key for it */
	if (!cipher_memeq(mac, buf + 12, sizeof mac))
		return -EBADMSG;
	*counter = c;
	return 0;
}

/* Version the generation is MACed under (0 if there is none). */
static uint32_t gen_version(struct fs *fs)
{
	uint8_t buf[GEN_BYTES];
	uint32_t v = 0;
	size_t n;

	if (store_meta_get(fs->s, "generation", buf, sizeof buf, &n) ||
	    n != GEN_BYTES)
		return 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | buf[8 + i];
	return v;
}

static int gen_write(struct fs *fs, uint32_t v, uint64_t c)
{
	uint8_t buf[GEN_BYTES];
	int rc;

	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(c >> (8 * i));
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(v >> (8 * i));
	if ((rc = gen_mac(fs, v, c, buf + 12)))
		return rc;
	return store_meta_set(fs->s, "generation", buf, sizeof buf);
}

int generation_rekey(struct fs *fs)
{
	uint32_t v = keyring_active(fs->kr), old = gen_version(fs);
	uint64_t c;
	int rc;

	if (!v || !old || old >= v)
		return 0;
	if ((rc = generation_read(fs, &c)))
		return rc;
	return gen_write(fs, v, c);
}

int generation_bump(struct fs *fs)
{
	uint32_t v = keyring_active(fs->kr);
	uint64_t c;
	int rc;

	if (!v)
		return 0;
	rc = generation_read(fs, &c);
	if (rc == -EBADMSG)
		return rc; /* never paper over a tampered counter */
	if (rc)
		return rc;
	c++;
	fs->generation = c;
	return gen_write(fs, v, c);
}

int fs_generation(struct fs *fs, uint64_t *counter)
{
	int rc;

	pthread_mutex_lock(&fs->lock);
	rc = generation_read(fs, counter);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}
