/*
 * blockio.c - file content as fixed-size AEAD blocks.
 *
 * Block b of a file holds plaintext bytes [b*bs, b*bs + len) sealed under
 * the file key of the block's own key version, with associated data
 * (file id, b, version): a block copied to another file or offset, or
 * relabelled with another version, fails to open. Holes store nothing and
 * read as zeros. No stored byte ever lies beyond EOF: shrinking rewrites
 * the new last block, so growing later exposes zeros, never old data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

#define BLOCK_AD_BYTES (STORE_FILE_ID_BYTES + 8 + 4)

static size_t block_ad(uint8_t *ad, const uint8_t *file_id, uint64_t blk,
                       uint32_t version)
{
	memcpy(ad, file_id, STORE_FILE_ID_BYTES);
	for (int i = 0; i < 8; i++)
		ad[16 + i] = (uint8_t)(blk >> (8 * i));
	for (int i = 0; i < 4; i++)
		ad[24 + i] = (uint8_t)(version >> (8 * i));
	return BLOCK_AD_BYTES;
}

/* The file key of `version`, derived into its scratch slot once per call. */
struct keycache {
	uint32_t version; /* 0: none derived yet */
};

static int file_key(struct fs *fs, const struct store_inode *in,
                    struct keycache *kc, uint32_t version)
{
	int rc;

	if (kc->version == version)
		return 0;
	rc = keyring_derive(fs->kr, version, KR_FILE, in->file_id,
	                    sizeof in->file_id, FS_KEY(fs, FS_KEY_FILE));
	if (rc)
		return rc == -ENOKEY ? -EIO : rc;
	kc->version = version;
	return 0;
}

/* A stored block's length is sane: at least one byte of data, at most a
 * block (a hostile store must not choose our copy sizes). */
static int stored_len_ok(uint32_t bs, size_t clen)
{
	return clen >= CIPHER_OVERHEAD + 1 && clen <= bs + CIPHER_OVERHEAD;
}

/*
 * A block not in the store reads as a hole, unless the inode's
 * authenticated block count says the file has no holes: then it was
 * deleted behind our back.
 */
static int missing_block(const struct store_inode *in, uint32_t bs,
                         uint64_t blk)
{
	uint64_t span = (in->size + bs - 1) / bs;
	return (blk < span && in->nblocks >= span) ? -EIO : 0;
}

/* One stored block, opened in place (store_block_with). */
struct block_open {
	struct fs *fs;
	const struct store_inode *in;
	struct keycache *kc;
	uint64_t blk;
	uint8_t *out;
	size_t len;
};

static int open_stored(void *arg, uint32_t v, const void *data, size_t clen)
{
	struct block_open *b = arg;
	uint8_t ad[BLOCK_AD_BYTES];
	int rc;

	if (!stored_len_ok(b->fs->block_size, clen))
		return -EIO;
	if ((rc = file_key(b->fs, b->in, b->kc, v)))
		return rc;
	if (cipher_open(b->out, data, clen, ad,
	                block_ad(ad, b->in->file_id, b->blk, v),
	                FS_KEY(b->fs, FS_KEY_FILE)))
		return -EIO;
	b->len = clen - CIPHER_OVERHEAD;
	return 0;
}

/*
 * Read block blk into out (block_size bytes, zero-filled past the stored
 * length), decrypting straight from the store's page. *len receives the
 * stored length (0 for a hole).
 */
static int block_load(struct fs *fs, const struct store_inode *in,
                      struct keycache *kc, uint64_t blk, uint8_t *out,
                      size_t *len)
{
	uint32_t bs = fs->block_size;
	struct block_open b = { fs, in, kc, blk, out, 0 };
	int rc = store_block_with(fs->s, in->ino, blk, open_stored, &b);

	if (rc == -ENOENT) {
		if ((rc = missing_block(in, bs, blk)))
			return rc;
		memset(out, 0, bs);
		*len = 0;
		return 0;
	}
	if (rc)
		return rc;
	*len = b.len;
	memset(out + b.len, 0, bs - b.len);
	return 0;
}

static int block_store(struct fs *fs, struct store_inode *in,
                       struct keycache *kc, uint64_t blk,
                       const uint8_t *plain, size_t len, uint8_t *cbuf)
{
	uint32_t v = keyring_active(fs->kr);
	uint8_t ad[BLOCK_AD_BYTES];
	int created, rc;

	if (!v)
		return -EROFS;
	if ((rc = file_key(fs, in, kc, v)))
		return rc;
	cipher_seal(cbuf, plain, len, ad, block_ad(ad, in->file_id, blk, v),
	            FS_KEY(fs, FS_KEY_FILE));
	rc = store_block_put(fs->s, in->ino, blk, v, cbuf, len + CIPHER_OVERHEAD,
	                     &created);
	if (!rc && created)
		in->nblocks++;
	fs->tx_bytes += len;
	return rc;
}

/* Two buffers of a block plus overhead, in locked memory: plaintext and
 * ciphertext. One pair per fs: calls are serialised by fs->lock. */
static uint8_t *block_buffers(struct fs *fs)
{
	return fs->blockbuf;
}

ssize_t blockio_read(struct fs *fs, const struct store_inode *in, char *buf,
                     size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0 };
	uint8_t *plain;
	size_t done = 0;
	int rc = 0;

	if (off >= in->size || size == 0)
		return 0;
	if (size > in->size - off)
		size = (size_t)(in->size - off);
	plain = block_buffers(fs);
	if (!plain)
		return -ENOMEM;
	while (done < size) {
		uint64_t pos = off + done, blk = pos / bs;
		size_t in_blk = (size_t)(pos % bs), n = bs - in_blk, len;

		if (n > size - done)
			n = size - done;
		if (in_blk == 0 && n == bs) {
			/* a whole block: decrypt straight into the caller's buffer */
			if ((rc = block_load(fs, in, &kc, blk, (uint8_t *)buf + done,
			                     &len)))
				break;
		} else {
			if ((rc = block_load(fs, in, &kc, blk, plain, &len)))
				break;
			memcpy(buf + done, plain + in_blk, n);
		}
		done += n;
	}
	cipher_wipe(FS_KEY(fs, FS_KEY_FILE), CIPHER_KEY_BYTES);
	return rc ? rc : (ssize_t)done;
}

ssize_t blockio_write(struct fs *fs, struct store_inode *in, const char *buf,
                      size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0 };
	uint8_t *plain, *cbuf;
	size_t done = 0;
	int rc = 0;

	if (size == 0)
		return 0;
	if (off + size < off || off + size > (uint64_t)INT64_MAX)
		return -EFBIG;
	plain = block_buffers(fs);
	if (!plain)
		return -ENOMEM;
	cbuf = plain + bs + CIPHER_OVERHEAD;
	while (done < size) {
		uint64_t pos = off + done, blk = pos / bs;
		size_t in_blk = (size_t)(pos % bs), n = bs - in_blk, len = 0;
		uint64_t blk_start = blk * bs;

		if (n > size - done)
			n = size - done;
		if (in_blk == 0 && n == bs) {
			/* a whole block: sealed straight from the caller's buffer */
			if ((rc = block_store(fs, in, &kc, blk,
			                      (const uint8_t *)buf + done, bs, cbuf)))
				break;
			done += n;
			continue;
		}
		if (blk_start < in->size) {
			/* partial block inside the file: read-modify-write */
			if ((rc = block_load(fs, in, &kc, blk, plain, &len)))
				break;
		} else {
			memset(plain, 0, bs);
		}
		memcpy(plain + in_blk, buf + done, n);
		if (len < in_blk + n)
			len = in_blk + n;
		if ((rc = block_store(fs, in, &kc, blk, plain, len, cbuf)))
			break;
		done += n;
	}
	if (done && off + done > in->size)
		in->size = off + done;
	cipher_wipe(FS_KEY(fs, FS_KEY_FILE), CIPHER_KEY_BYTES);
	if (rc && done == 0)
		return rc;
	return (ssize_t)done;
}

int blockio_truncate(struct fs *fs, struct store_inode *in, uint64_t size)
{
	uint32_t bs = fs->block_size;
	uint64_t first_gone, deleted;
	int rc = 0;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (size < in->size) {
		size_t tail = (size_t)(size % bs);
		first_gone = size / bs + (tail ? 1 : 0);
		if (tail) {
			/* rewrite the new last block without the cut bytes */
			struct keycache kc = { 0 };
			uint8_t *plain = block_buffers(fs), *cbuf;
			size_t len;

			if (!plain)
				return -ENOMEM;
			cbuf = plain + bs + CIPHER_OVERHEAD;
			rc = block_load(fs, in, &kc, size / bs, plain, &len);
			if (!rc && len > tail)
				rc = block_store(fs, in, &kc, size / bs, plain, tail,
				                 cbuf);
			cipher_wipe(FS_KEY(fs, FS_KEY_FILE), CIPHER_KEY_BYTES);
					if (rc)
				return rc;
		}
		if ((rc = store_block_truncate(fs->s, in->ino, first_gone,
		                               &deleted)))
			return rc;
		in->nblocks = in->nblocks >= deleted ? in->nblocks - deleted : 0;
	}
	in->size = size;
	return 0;
}

int blockio_rekey(struct fs *fs, struct store_inode *in, uint64_t blk)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0 };
	uint8_t *plain = block_buffers(fs), *cbuf = plain + bs + CIPHER_OVERHEAD;
	uint64_t nb = in->nblocks;
	size_t len;
	int rc;

	rc = block_load(fs, in, &kc, blk, plain, &len);
	if (!rc && len) {
		kc.version = 0; /* the next derivation is for the active version */
		rc = block_store(fs, in, &kc, blk, plain, len, cbuf);
	}
	in->nblocks = nb; /* an existing block: the count does not change */
	cipher_wipe(plain, bs);
	cipher_wipe(FS_KEY(fs, FS_KEY_FILE), CIPHER_KEY_BYTES);
	return rc;
}

int blockio_verify(struct fs *fs, const struct store_inode *in, uint64_t blk,
                   uint32_t version, const void *data, size_t len)
{
	uint8_t ad[BLOCK_AD_BYTES];
	uint8_t *plain = block_buffers(fs);
	int rc;

	if (len < CIPHER_OVERHEAD + 1 || len > fs->block_size + CIPHER_OVERHEAD ||
	    !version)
		return -EIO;
	rc = keyring_derive(fs->kr, version, KR_FILE, in->file_id,
	                    sizeof in->file_id, FS_KEY(fs, FS_KEY_FILE));
	if (rc)
		return rc == -ENOKEY ? -ENOKEY : rc;
	rc = cipher_open(plain, data, len, ad, block_ad(ad, in->file_id, blk, version),
	                 FS_KEY(fs, FS_KEY_FILE)) ? -EIO : 0;
	cipher_wipe(plain, len - CIPHER_OVERHEAD);
	cipher_wipe(FS_KEY(fs, FS_KEY_FILE), CIPHER_KEY_BYTES);
	return rc;
}

/*
 * Staged reads. A large read copies its blocks' ciphertext out of the
 * store and derives their file keys under fs->lock (blockio_stage), then
 * decrypts after the lock is released (blockio_unstage): two FUSE workers
 * decrypt at once instead of one after the other. What is authenticated
 * and decrypted is the private copy, never the store's page.
 */
#define STAGE_KEYS 4

struct read_stage {
	uint32_t bs;
	size_t cap;                 /* blocks it can hold */
	int busy;                   /* fs->lock: handed to a reader */
	/* the staged read */
	uint8_t file_id[STORE_FILE_ID_BYTES];
	uint64_t first;             /* first block */
	size_t nblk, in_blk, size;  /* blocks, offset into the first, bytes */
	uint32_t *kv, *clen;        /* per block: key version, stored bytes */
	uint8_t *ct;                /* per block: bs + overhead */
	uint8_t *plain;             /* locked: one block */
	uint8_t *keys;              /* locked: STAGE_KEYS file keys */
	uint32_t key_v[STAGE_KEYS];
	int nkeys;
};

struct read_stage *blockio_stage_new(uint32_t bs, size_t max_bytes)
{
	struct read_stage *st = calloc(1, sizeof *st);

	if (!st)
		return NULL;
	st->bs = bs;
	st->cap = max_bytes / bs + 2; /* an unaligned read touches two more */
	st->kv = calloc(st->cap, sizeof *st->kv);
	st->clen = calloc(st->cap, sizeof *st->clen);
	st->ct = malloc(st->cap * ((size_t)bs + CIPHER_OVERHEAD));
	st->plain = secmem_alloc(bs);
	st->keys = secmem_alloc(STAGE_KEYS * CIPHER_KEY_BYTES);
	if (!st->kv || !st->clen || !st->ct || !st->plain || !st->keys) {
		blockio_stage_free(st);
		return NULL;
	}
	return st;
}

void blockio_stage_free(struct read_stage *st)
{
	if (!st)
		return;
	free(st->kv);
	free(st->clen);
	free(st->ct);
	secmem_free(st->plain);
	secmem_free(st->keys);
	free(st);
}

int blockio_stage_busy(const struct read_stage *st)
{
	return st->busy;
}

void blockio_stage_hold(struct read_stage *st, int busy)
{
	st->busy = busy;
}

/* One stored block copied into its slot (store_block_with). */
struct stage_copy {
	struct read_stage *st;
	size_t i;
};

static int stage_stored(void *arg, uint32_t v, const void *data, size_t clen)
{
	struct stage_copy *c = arg;
	struct read_stage *st = c->st;

	if (!stored_len_ok(st->bs, clen))
		return -EIO;
	memcpy(st->ct + c->i * ((size_t)st->bs + CIPHER_OVERHEAD), data, clen);
	st->kv[c->i] = v;
	st->clen[c->i] = (uint32_t)clen;
	return 0;
}

/* The slot of version v's key, derived on first use; -EAGAIN when full. */
static int stage_key(struct fs *fs, const struct store_inode *in,
                     struct read_stage *st, uint32_t v)
{
	int k, rc;

	for (k = 0; k < st->nkeys; k++)
		if (st->key_v[k] == v)
			return k;
	if (st->nkeys == STAGE_KEYS)
		return -EAGAIN;
	rc = keyring_derive(fs->kr, v, KR_FILE, in->file_id, sizeof in->file_id,
	                    st->keys + (size_t)k * CIPHER_KEY_BYTES);
	if (rc)
		return rc == -ENOKEY ? -EIO : rc;
	st->key_v[st->nkeys++] = v;
	return k;
}

static void stage_wipe(struct read_stage *st)
{
	cipher_wipe(st->keys, STAGE_KEYS * CIPHER_KEY_BYTES);
	st->nkeys = 0;
}

ssize_t blockio_stage(struct fs *fs, const struct store_inode *in,
                      struct read_stage *st, size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	int rc = 0;

	if (bs != st->bs)
		return -EAGAIN;
	if (off >= in->size || size == 0)
		return 0;
	if (size > in->size - off)
		size = (size_t)(in->size - off);
	st->first = off / bs;
	st->in_blk = (size_t)(off % bs);
	st->nblk = (st->in_blk + size + bs - 1) / bs;
	st->size = size;
	st->nkeys = 0;
	if (st->nblk > st->cap)
		return -EAGAIN;
	memcpy(st->file_id, in->file_id, sizeof st->file_id);
	for (size_t i = 0; i < st->nblk && !rc; i++) {
		struct stage_copy c = { st, i };
		uint64_t blk = st->first + i;

		rc = store_block_with(fs->s, in->ino, blk, stage_stored, &c);
		if (rc == -ENOENT) {
			rc = missing_block(in, bs, blk);
			st->clen[i] = 0; /* a hole */
		} else if (!rc) {
			int k = stage_key(fs, in, st, st->kv[i]);
			rc = k < 0 ? k : 0;
		}
	}
	if (rc) {
		stage_wipe(st);
		return rc;
	}
	return (ssize_t)size;
}

ssize_t blockio_unstage(struct read_stage *st, char *buf)
{
	size_t bs = st->bs, done = 0;
	int rc = 0;

	for (size_t i = 0; i < st->nblk && !rc; i++) {
		size_t from = i ? 0 : st->in_blk, n = bs - from, clen = st->clen[i];
		uint8_t ad[BLOCK_AD_BYTES], *out;
		int k;

		if (n > st->size - done)
			n = st->size - done;
		/* a whole block goes straight into the caller's buffer */
		out = (from == 0 && n == bs) ? (uint8_t *)buf + done : st->plain;
		if (clen == 0) {
			memset(out, 0, bs);
		} else {
			/* blockio_stage staged a key for every stored block */
			for (k = 0; k < st->nkeys && st->key_v[k] != st->kv[i]; k++)
				;
			if (k == st->nkeys ||
			    cipher_open(out, st->ct + i * (bs + CIPHER_OVERHEAD), clen,
			                ad, block_ad(ad, st->file_id, st->first + i,
			                             st->kv[i]),
			                st->keys + (size_t)k * CIPHER_KEY_BYTES)) {
				rc = -EIO;
				break;
			}
			memset(out + (clen - CIPHER_OVERHEAD), 0,
			       bs - (clen - CIPHER_OVERHEAD));
		}
		if (out == st->plain)
			memcpy(buf + done, st->plain + from, n);
		done += n;
	}
	cipher_wipe(st->plain, bs);
	stage_wipe(st);
	return rc ? rc : (ssize_t)done;
}
