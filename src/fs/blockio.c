/*
 * blockio.c - file content as fixed-size sealed blocks in a per-file tree.
 *
 * Block b of a file holds plaintext bytes [b*bs, b*bs + len) sealed under
 * the file's keys of the block's own key version, with associated data
 * (file id, b, version): a block copied to another file or offset, or
 * relabelled with another version, fails to open. The block's leaf in its
 * file's tree is its keyed BLAKE2b tag (cipher 2), or for blocks of a
 * format-1 version the BLAKE2b of the stored bytes (cipher 1), so a block
 * forged with the key or put back from an older copy is not the signed
 * one. Holes store nothing and have an empty leaf; a stored row under an
 * empty leaf is not part of the file (check reports it). No stored byte
 * ever lies beyond EOF: shrinking rewrites the new last block, so growing
 * later exposes zeros, never old data; preallocation (fallocate) stores
 * nothing, and punching or zeroing a range deletes its whole blocks and
 * rewrites the partial ones at their stored length.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "fs_internal.h"
#include "par.h"
#include "rights.h"

#define BLOCK_AD_BYTES (STORE_FILE_ID_BYTES + 8 + 4)

static const uint8_t zero_leaf[MTREE_HASH_BYTES];

static size_t block_ad(uint8_t *ad, const uint8_t *file_id, uint64_t blk,
                       uint32_t version)
{
	memcpy(ad, file_id, STORE_FILE_ID_BYTES);
	put_le64(ad + 16, blk);
	put_le32(ad + 24, version);
	return BLOCK_AD_BYTES;
}

static struct mtree_root root_of(const struct store_inode *in)
{
	struct mtree_root r;

	r.height = in->theight;
	memcpy(r.hash, in->troot, sizeof r.hash);
	return r;
}

static size_t overhead(int cipher)
{
	return cipher == KEY_CIPHER_ETM ? CIPHER_BLOCK_OVERHEAD : CIPHER_OVERHEAD;
}

/* A stored block's length is sane: at least one byte of data, at most a
 * block (a hostile store must not choose our copy sizes). */
static int stored_len_ok(uint32_t bs, int cipher, size_t clen)
{
	return clen >= overhead(cipher) + 1 && clen <= bs + overhead(cipher);
}

/* The keys of one version for one file, derived once per call. */
struct keycache {
	uint32_t version; /* 0: none derived yet */
	int cipher;
};

static int file_keys(struct fs *fs, const uint8_t *file_id,
                     struct keycache *kc, uint32_t version, uint8_t *enc,
                     uint8_t *mac)
{
	int cipher, rc;

	if (kc->version == version && enc == FS_KEY(fs, FS_KEY_FILE))
		return 0;
	cipher = keyring_cipher(fs->kr, version);
	if (!cipher)
		return -EIO; /* a version this session does not hold */
	if (cipher == KEY_CIPHER_ETM)
		rc = keyring_derive(fs->kr, version, KR_BENC, file_id,
		                    STORE_FILE_ID_BYTES, enc) ||
		     keyring_derive(fs->kr, version, KR_BMAC, file_id,
		                    STORE_FILE_ID_BYTES, mac);
	else
		rc = keyring_derive(fs->kr, version, KR_FILE, file_id,
		                    STORE_FILE_ID_BYTES, enc);
	if (rc)
		return -EIO;
	if (enc == FS_KEY(fs, FS_KEY_FILE)) {
		kc->version = version;
		kc->cipher = cipher;
	}
	return 0;
}

static void wipe_keys(struct fs *fs)
{
	cipher_wipe(FS_KEY(fs, FS_KEY_FILE), 2 * CIPHER_KEY_BYTES);
}

int blockio_leaf(struct fs *fs, uint32_t version, const void *data,
                 size_t len, uint8_t leaf[MTREE_HASH_BYTES])
{
	int cipher = keyring_cipher(fs->kr, version);

	if (!cipher)
		return -EIO;
	if (!stored_len_ok(fs->block_size, cipher, len))
		return -EIO;
	if (cipher == KEY_CIPHER_ETM) {
		memcpy(leaf, (const uint8_t *)data + len - MTREE_HASH_BYTES,
		       MTREE_HASH_BYTES);
	} else {
		struct cipher_part p = { data, len };
		cipher_hash(leaf, &p, 1);
	}
	return 0;
}

/* Open a stored block whose leaf must be `expect` into out. */
static int open_block(uint32_t bs, const uint8_t *file_id, uint64_t blk,
                      uint32_t v, int cipher, const uint8_t *enc,
                      const uint8_t *mac, const uint8_t *data, size_t clen,
                      const uint8_t expect[MTREE_HASH_BYTES], uint8_t *out)
{
	uint8_t ad[BLOCK_AD_BYTES];

	if (!stored_len_ok(bs, cipher, clen))
		return -EIO;
	block_ad(ad, file_id, blk, v);
	if (cipher == KEY_CIPHER_ETM)
		return cipher_block_open(out, data, clen, ad, sizeof ad, enc, mac,
		                         expect) ? -EIO : 0;
	{
		uint8_t h[MTREE_HASH_BYTES];
		struct cipher_part p = { data, clen };
		cipher_hash(h, &p, 1);
		if (!cipher_memeq(h, expect, sizeof h))
			return -EIO;
	}
	return cipher_open(out, data, clen, ad, sizeof ad, enc) ? -EIO : 0;
}

/* One stored block, opened in place (store_block_with). */
struct block_open {
	struct fs *fs;
	const struct store_inode *in;
	struct keycache *kc;
	uint64_t blk;
	const uint8_t *expect;
	uint8_t *out;
	size_t len;
};

static int open_stored(void *arg, uint32_t v, const void *data, size_t clen)
{
	struct block_open *b = arg;
	struct fs *fs = b->fs;
	int rc;

	if ((rc = file_keys(fs, b->in->file_id, b->kc, v, FS_KEY(fs, FS_KEY_FILE),
	                    FS_KEY(fs, FS_KEY_MAC))))
		return rc;
	if ((rc = open_block(fs->block_size, b->in->file_id, b->blk, v, b->kc->cipher,
	                     FS_KEY(fs, FS_KEY_FILE), FS_KEY(fs, FS_KEY_MAC),
	                     data, clen, b->expect, b->out)))
		return rc;
	b->len = clen - overhead(b->kc->cipher);
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
	struct mtree_root root = root_of(in);
	uint8_t expect[MTREE_HASH_BYTES];
	struct block_open b = { fs, in, kc, blk, expect, out, 0 };
	int rc;

	if ((rc = mtree_leaf(fs->mt, MTREE_BLOCKS, in->ino, &root, blk, expect)))
		return rc == -EINVAL ? -EFBIG : rc;
	if (cipher_memeq(expect, zero_leaf, sizeof expect)) {
		memset(out, 0, bs); /* a hole, whatever a row may say */
		*len = 0;
		return 0;
	}
	rc = store_block_with(fs->s, in->ino, blk, open_stored, &b);
	if (rc == -ENOENT)
		return -EIO; /* the signed file has it: deleted behind our back */
	if (rc)
		return rc;
	*len = b.len;
	memset(out + b.len, 0, bs - b.len);
	return 0;
}


/*
 * A run of whole blocks of one write, sealed at once: the seals (the
 * cipher and the MAC, most of a write's CPU) split between this thread and
 * the fs's helper (par_for), then stored and put in the tree in order, as
 * block_store would one by one. Plaintext comes straight from the
 * caller's buffer; the ciphertext buffers are not secret.
 *
 * Three steps, so that a caller can seal on another thread while it does
 * other store work under the lock (copy_file_range stages the next piece
 * of its source meanwhile): run_prepare (under the lock: the tree's old
 * leaves, the places, the keys), run_seal (no store access), run_store
 * (under the lock).
 */
#define SEAL_RUN_MAX 32

struct seal_item {
	const uint8_t *plain;
	uint8_t *out;
	uint8_t ad[BLOCK_AD_BYTES];
	uint8_t leaf[MTREE_HASH_BYTES];
	uint8_t old[MTREE_HASH_BYTES];
};

struct seal_run {
	struct fs *fs;
	int cipher;
	uint32_t version;
	uint64_t blk;               /* first block of the run */
	size_t n;                   /* blocks prepared */
	size_t len;                 /* bytes per block */
	size_t cap;                 /* blocks it can hold */
	uint8_t *ct;                /* cap * (bs + overhead) */
	struct seal_item *it;       /* cap */
	struct par_loop loop;       /* blockio_run_seal's, under way */
	int sealing;
};

void blockio_seal_free(struct fs *fs)
{
	if (!fs->seal)
		return;
	free(fs->seal->ct);
	free(fs->seal->it);
	free(fs->seal);
	fs->seal = NULL;
}

/* The fs's run, allocated on first use: room for a write's run and for
 * a copy's piece (FS_STAGE_MAX). */
static struct seal_run *seal_run(struct fs *fs)
{
	uint32_t bs = fs->block_size;
	size_t cap = FS_STAGE_MAX / bs, stride = (size_t)bs + CIPHER_BLOCK_OVERHEAD;
	struct seal_run *r;

	if (fs->seal)
		return fs->seal;
	if (cap < SEAL_RUN_MAX)
		cap = SEAL_RUN_MAX;
	if (!(r = calloc(1, sizeof *r)) || !(r->it = calloc(cap, sizeof *r->it)) ||
	    !(r->ct = malloc(cap * stride))) {
		if (r)
			free(r->it);
		free(r);
		return NULL;
	}
	r->cap = cap;
	return fs->seal = r;
}

static void seal_one(void *arg, size_t i)
{
	struct seal_run *r = arg;
	struct seal_item *it = &r->it[i];
	struct fs *fs = r->fs;

	if (r->cipher == KEY_CIPHER_ETM) {
		cipher_block_seal(it->out, it->plain, r->len, it->ad, sizeof it->ad,
		                  FS_KEY(fs, FS_KEY_FILE), FS_KEY(fs, FS_KEY_MAC),
		                  it->leaf);
	} else {
		struct cipher_part p = { it->out, r->len + CIPHER_OVERHEAD };
		cipher_seal(it->out, it->plain, r->len, it->ad, sizeof it->ad,
		            FS_KEY(fs, FS_KEY_FILE));
		cipher_hash(it->leaf, &p, 1);
	}
}

/* Prepare n (1..cap) blocks of len bytes each from blk on (len < bs only
 * for one block) for sealing into the fs's run: 0 or an error. */
static int run_prepare(struct fs *fs, const struct store_inode *in,
                       struct keycache *kc, uint64_t blk,
                       const uint8_t *plain, size_t n, size_t len)
{
	uint32_t v = keyring_active(fs->kr), bs = fs->block_size;
	struct mtree_root root = root_of(in);
	struct seal_run *r = seal_run(fs);
	size_t stride = (size_t)bs + CIPHER_BLOCK_OVERHEAD;
	int rc = 0;

	if (!v)
		return -EROFS;
	if (!r)
		return -ENOMEM;
	if (n > r->cap)
		return -EINVAL;
	r->n = 0;
	for (size_t k = 0; k < n; k++) {
		struct seal_item *it = &r->it[k];
		/* as block_store: the signed tree says which blocks are new */
		if ((rc = mtree_leaf(fs->mt, MTREE_BLOCKS, in->ino, &root, blk + k,
		                     it->old)))
			break;
		it->plain = plain + k * bs;
		it->out = r->ct + k * stride;
		block_ad(it->ad, in->file_id, blk + k, v);
	}
	if (!rc)
		rc = file_keys(fs, in->file_id, kc, v, FS_KEY(fs, FS_KEY_FILE),
		               FS_KEY(fs, FS_KEY_MAC));
	if (rc)
		return rc == -EINVAL ? -EFBIG : rc;
	r->fs = fs;
	r->cipher = kc->cipher;
	r->version = v;
	r->blk = blk;
	r->len = len;
	r->n = n;
	return 0;
}

/* Seal the prepared run: CPU only, split over par (NULL: this thread). */
static void run_seal(struct fs *fs, struct par *par)
{
	par_for(par, fs->seal->n, seal_one, fs->seal);
}

/* Store the sealed run and put it in the tree, in order: the number of
 * blocks stored, all of them, or fewer and *err set. A new block is one
 * the signed tree does not have: a row the store happens to hold there
 * (planted, left over) is overwritten and never counted as the file's. */
static size_t run_store(struct fs *fs, struct store_inode *in, int *err)
{
	struct seal_run *r = fs->seal;
	struct mtree_root root = root_of(in);
	size_t clen = r->len + overhead(r->cipher), k;
	int rc;

	*err = 0;
	for (k = 0; k < r->n; k++) {
		struct seal_item *it = &r->it[k];
		int created;
		if ((rc = store_block_put(fs->s, in->ino, r->blk + k, r->version,
		                          it->out, clen, &created)) ||
		    (rc = mtree_put(fs->mt, MTREE_BLOCKS, in->ino, &root, r->blk + k,
		                    it->leaf))) {
			*err = rc == -EINVAL ? -EFBIG : rc;
			break;
		}
		if (cipher_memeq(it->old, zero_leaf, sizeof it->old))
			in->nblocks++;
	}
	r->n = 0;
	return k;
}

/* Store n blocks from blk on, sealed on both cores: the number stored,
 * all n, or fewer and *err set. */
static size_t store_run(struct fs *fs, struct store_inode *in,
                        struct keycache *kc, uint64_t blk,
                        const uint8_t *plain, size_t n, size_t len, int *err)
{
	if ((*err = run_prepare(fs, in, kc, blk, plain, n, len)))
		return 0;
	run_seal(fs, fs->par);
	return run_store(fs, in, err);
}

/* The three steps for a caller outside this file (fs_internal.h). */
int blockio_run_prepare(struct fs *fs, const struct store_inode *in,
                        uint64_t off, const uint8_t *plain, size_t n)
{
	uint32_t bs = fs->block_size;
	int rc;

	if (off % bs || n % bs || n == 0 || off + n < off ||
	    off + n > (uint64_t)INT64_MAX)
		return -EINVAL;
	rc = run_prepare(fs, in, &(struct keycache){ 0, 0 }, off / bs, plain,
	                 n / bs, bs);
	if (rc)
		wipe_keys(fs);
	return rc;
}

void blockio_run_seal(struct fs *fs)
{
	struct seal_run *r = fs->seal;

	par_begin(fs->par, &r->loop, r->n, seal_one, r);
	r->sealing = 1;
}

void blockio_run_sealed(struct fs *fs)
{
	struct seal_run *r = fs->seal;

	if (r && r->sealing) {
		par_end(&r->loop);
		r->sealing = 0;
	}
}

int blockio_run_store(struct fs *fs, struct store_inode *in)
{
	uint64_t blk = fs->seal->blk, end;
	size_t k;
	int rc;

	blockio_run_sealed(fs);
	k = run_store(fs, in, &rc);
	end = (blk + k) * fs->block_size;
	if (k && end > in->size)
		in->size = end;
	fs->tx_bytes += k * fs->block_size;
	wipe_keys(fs);
	return rc;
}

void blockio_run_cancel(struct fs *fs)
{
	blockio_run_sealed(fs);
	if (fs->seal)
		fs->seal->n = 0;
	wipe_keys(fs);
}

static int block_store(struct fs *fs, struct store_inode *in,
                       struct keycache *kc, uint64_t blk,
                       const uint8_t *plain, size_t len)
{
	int err;

	store_run(fs, in, kc, blk, plain, 1, len, &err);
	return err;
}

/* How many blocks of the signed file lie at first or beyond: the stored
 * rows there whose leaf is not empty (a row in a hole of the tree is not
 * the file's, and holes cost nothing to skip). */
static int signed_from(struct fs *fs, const struct store_inode *in,
                       uint64_t first, uint64_t *count)
{
	struct mtree_root root = root_of(in);
	uint8_t leaf[MTREE_HASH_BYTES];
	uint64_t blk = first, b;
	int rc;

	*count = 0;
	if (!first) {
		*count = in->nblocks; /* all of them */
		return 0;
	}
	while ((rc = store_block_next(fs->s, in->ino, blk, &b)) == 0) {
		if ((rc = mtree_leaf(fs->mt, MTREE_BLOCKS, in->ino, &root, b, leaf)))
			return rc == -EINVAL ? 0 : rc;
		if (!cipher_memeq(leaf, zero_leaf, sizeof leaf))
			(*count)++;
		if (b == UINT64_MAX)
			break;
		blk = b + 1;
	}
	return rc == -ENOENT || rc == 0 ? 0 : rc;
}

/* One block of plaintext in locked memory (the ciphertext of a write is
 * in fs->seal, not secret). One per fs: calls are serialised by
 * fs->lock. */
static uint8_t *block_buffers(struct fs *fs)
{
	return fs->blockbuf;
}

ssize_t blockio_read(struct fs *fs, const struct store_inode *in, char *buf,
                     size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0, 0 };
	uint8_t *plain;
	size_t done = 0;
	int rc = 0;

	if (off >= in->size || size == 0)
		return 0;
	if (size > in->size - off)
		size = (size_t)(in->size - off);
	plain = block_buffers(fs);
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
	wipe_keys(fs);
	return rc ? rc : (ssize_t)done;
}

ssize_t blockio_write(struct fs *fs, struct store_inode *in, const char *buf,
                      size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0, 0 };
	uint8_t *plain;
	size_t done = 0;
	int rc = 0;

	if (size == 0)
		return 0;
	if (off + size < off || off + size > (uint64_t)INT64_MAX)
		return -EFBIG;
	plain = block_buffers(fs);
	while (done < size) {
		uint64_t pos = off + done, blk = pos / bs;
		size_t in_blk = (size_t)(pos % bs), n = bs - in_blk, len = 0;
		uint64_t blk_start = blk * bs;

		if (n > size - done)
			n = size - done;
		if (in_blk == 0 && size - done >= 2 * (size_t)bs) {
			/* whole blocks: sealed at once, from the caller's buffer */
			size_t k = (size - done) / bs, got;
			if (k > SEAL_RUN_MAX)
				k = SEAL_RUN_MAX;
			got = store_run(fs, in, &kc, blk, (const uint8_t *)buf + done, k,
			                bs, &rc);
			done += got * bs;
			if (rc)
				break;
			continue;
		}
		if (in_blk == 0 && n == bs) {
			/* a whole block: sealed straight from the caller's buffer */
			if ((rc = block_store(fs, in, &kc, blk,
			                      (const uint8_t *)buf + done, bs)))
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
		if ((rc = block_store(fs, in, &kc, blk, plain, len)))
			break;
		done += n;
	}
	if (done && off + done > in->size)
		in->size = off + done;
	wipe_keys(fs);
	fs->tx_bytes += done;
	if (rc && done == 0)
		return rc;
	return (ssize_t)done;
}

int blockio_truncate(struct fs *fs, struct store_inode *in, uint64_t size)
{
	uint32_t bs = fs->block_size;
	uint64_t first_gone, deleted, gone;
	int rc = 0;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (size < in->size) {
		size_t tail = (size_t)(size % bs);
		struct mtree_root root;
		first_gone = size / bs + (tail ? 1 : 0);
		if (tail) {
			/* rewrite the new last block without the cut bytes */
			struct keycache kc = { 0, 0 };
			uint8_t *plain = block_buffers(fs);
			size_t len;

			rc = block_load(fs, in, &kc, size / bs, plain, &len);
			if (!rc && len > tail)
				rc = block_store(fs, in, &kc, size / bs, plain, tail);
			wipe_keys(fs);
			if (rc)
				return rc;
		}
		root = root_of(in);
		if ((rc = signed_from(fs, in, first_gone, &gone)) ||
		    (rc = store_block_truncate(fs->s, in->ino, first_gone,
		                               &deleted)) ||
		    (rc = mtree_truncate(fs->mt, MTREE_BLOCKS, in->ino, &root,
		                         first_gone)))
			return rc;
		in->nblocks = in->nblocks >= gone ? in->nblocks - gone : 0;
	}
	in->size = size;
	return 0;
}

/* Leaves of a file's tree are scanned this many at a time (seek, zero). */
#define SCAN_LEAVES 1024

/*
 * Make blocks [first, end) holes: every position whose signed leaf is
 * non-empty gets the empty leaf and its row is deleted (so are rows the
 * tree does not know: none of them is part of the file).
 */
static int punch_blocks(struct fs *fs, struct store_inode *in, uint64_t first,
                        uint64_t end)
{
	uint8_t (*leaves)[MTREE_HASH_BYTES];
	uint64_t cleared = 0, deleted;
	int rc = 0;

	if (first >= end)
		return 0;
	if (!(leaves = malloc(SCAN_LEAVES * sizeof *leaves)))
		return -ENOMEM;
	for (uint64_t b = first; b < end && !rc;) {
		size_t n = end - b < SCAN_LEAVES ? (size_t)(end - b) : SCAN_LEAVES;
		struct mtree_root root = root_of(in);

		if ((rc = mtree_leaves(fs->mt, MTREE_BLOCKS, in->ino, &root, b, n,
		                       leaves)))
			break;
		for (size_t i = 0; i < n && !rc; i++) {
			if (cipher_memeq(leaves[i], zero_leaf, MTREE_HASH_BYTES))
				continue;
			root = root_of(in);
			rc = mtree_put(fs->mt, MTREE_BLOCKS, in->ino, &root, b + i, NULL);
			cleared++;
		}
		b += n;
	}
	free(leaves);
	if (!rc)
		rc = store_block_delete_range(fs->s, in->ino, first, end, &deleted);
	if (rc)
		return rc == -EINVAL ? -EFBIG : rc;
	in->nblocks = in->nblocks >= cleared ? in->nblocks - cleared : 0;
	return 0;
}

/* Zero bytes [from, to) of block blk in place; a block left all zeros
 * becomes a hole. */
static int zero_partial(struct fs *fs, struct store_inode *in, uint64_t blk,
                        size_t from, size_t to)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0, 0 };
	uint8_t *plain = block_buffers(fs);
	size_t len, i;
	int rc;

	if ((rc = block_load(fs, in, &kc, blk, plain, &len)) || from >= len)
		goto out; /* a hole, or past the stored bytes: zeros already */
	if (to > len)
		to = len;
	memset(plain + from, 0, to - from);
	for (i = 0; i < len && !plain[i]; i++)
		;
	if (i == len)
		rc = punch_blocks(fs, in, blk, blk + 1);
	else
		rc = block_store(fs, in, &kc, blk, plain, len);
out:
	cipher_wipe(plain, bs);
	wipe_keys(fs);
	return rc;
}

int blockio_zero(struct fs *fs, struct store_inode *in, uint64_t off,
                 uint64_t len)
{
	uint32_t bs = fs->block_size;
	uint64_t end = off + len, first, last;
	int rc;

	if (end < off || end > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (end > in->size)
		end = in->size;
	if (off >= end)
		return 0;
	first = (off + bs - 1) / bs;  /* the first whole block */
	last = end / bs;              /* the end of the whole blocks */
	if (first > last) /* inside one block */
		return zero_partial(fs, in, off / bs, (size_t)(off % bs),
		                    (size_t)(end - off / bs * bs));
	if (off % bs &&
	    (rc = zero_partial(fs, in, off / bs, (size_t)(off % bs), bs)))
		return rc;
	if (end % bs && (rc = zero_partial(fs, in, last, 0, (size_t)(end % bs))))
		return rc;
	return punch_blocks(fs, in, first, last);
}

int blockio_seek(struct fs *fs, const struct store_inode *in, uint64_t off,
                 int data, uint64_t *out)
{
	uint32_t bs = fs->block_size;
	uint64_t nblk = (in->size + bs - 1) / bs;
	uint8_t (*leaves)[MTREE_HASH_BYTES];
	int rc = 0;

	if (off >= in->size)
		return -ENXIO;
	if (!(leaves = malloc(SCAN_LEAVES * sizeof *leaves)))
		return -ENOMEM;
	for (uint64_t b = off / bs; b < nblk;) {
		size_t n = nblk - b < SCAN_LEAVES ? (size_t)(nblk - b) : SCAN_LEAVES;
		struct mtree_root root = root_of(in);

		if ((rc = mtree_leaves(fs->mt, MTREE_BLOCKS, in->ino, &root, b, n,
		                       leaves)))
			break;
		for (size_t i = 0; i < n; i++)
			if (!cipher_memeq(leaves[i], zero_leaf, MTREE_HASH_BYTES) ==
			    !!data) {
				uint64_t at = (b + i) * bs;
				*out = at > off ? at : off;
				free(leaves);
				return 0;
			}
		b += n;
	}
	free(leaves);
	if (rc)
		return rc == -EINVAL ? -EFBIG : rc;
	if (data)
		return -ENXIO; /* only holes up to the end */
	*out = in->size;      /* the end of file is a hole */
	return 0;
}

int blockio_stored_in(struct fs *fs, const struct store_inode *in,
                      uint64_t first, uint64_t end, uint64_t *count)
{
	uint8_t (*leaves)[MTREE_HASH_BYTES];
	int rc = 0;

	*count = 0;
	if (!(leaves = malloc(SCAN_LEAVES * sizeof *leaves)))
		return -ENOMEM;
	for (uint64_t b = first; b < end && !rc;) {
		size_t n = end - b < SCAN_LEAVES ? (size_t)(end - b) : SCAN_LEAVES;
		struct mtree_root root = root_of(in);

		if (!(rc = mtree_leaves(fs->mt, MTREE_BLOCKS, in->ino, &root, b, n,
		                        leaves)))
			for (size_t i = 0; i < n; i++)
				*count += !cipher_memeq(leaves[i], zero_leaf,
				                        MTREE_HASH_BYTES);
		b += n;
	}
	free(leaves);
	return rc == -EINVAL ? -EFBIG : rc;
}

int blockio_rekey(struct fs *fs, struct store_inode *in, uint64_t blk)
{
	uint32_t bs = fs->block_size;
	struct keycache kc = { 0, 0 };
	uint8_t *plain = block_buffers(fs);
	uint64_t nb = in->nblocks;
	size_t len;
	int rc;

	rc = block_load(fs, in, &kc, blk, plain, &len);
	if (!rc && len) {
		kc.version = 0; /* the next derivation is for the active version */
		rc = block_store(fs, in, &kc, blk, plain, len);
	} else if (!rc) {
		/* a hole of the signed file: the row reencrypt found there is
		 * none of the file's (planted); left, it would be found again
		 * at every step */
		struct mtree_root root = root_of(in);
		uint8_t leaf[MTREE_HASH_BYTES];
		if (!(rc = mtree_leaf(fs->mt, MTREE_BLOCKS, in->ino, &root, blk,
		                      leaf)) &&
		    cipher_memeq(leaf, zero_leaf, sizeof leaf))
			rc = store_block_delete(fs->s, in->ino, blk);
	}
	in->nblocks = nb; /* an existing block: the count does not change */
	cipher_wipe(plain, bs);
	wipe_keys(fs);
	return rc;
}

int blockio_verify(struct fs *fs, const struct store_inode *in, uint64_t blk,
                   uint32_t version, const void *data, size_t len,
                   const uint8_t leaf[MTREE_HASH_BYTES])
{
	uint8_t *plain = block_buffers(fs);
	int cipher = keyring_cipher(fs->kr, version), rc;

	if (!cipher)
		return -ENOKEY;
	if ((rc = file_keys(fs, in->file_id, &(struct keycache){ 0, 0 }, version,
	                    FS_KEY(fs, FS_KEY_FILE), FS_KEY(fs, FS_KEY_MAC))))
		return rc;
	rc = open_block(fs->block_size, in->file_id, blk, version, cipher,
	                FS_KEY(fs, FS_KEY_FILE), FS_KEY(fs, FS_KEY_MAC), data, len,
	                leaf, plain);
	cipher_wipe(plain, fs->block_size);
	wipe_keys(fs);
	return rc;
}

/*
 * Staged reads. A large read copies its blocks' ciphertext, their leaves
 * and their keys out of the store under fs->lock (blockio_stage), then
 * authenticates and decrypts after the lock is released (blockio_unstage):
 * two FUSE workers hash and decrypt at once instead of one after the
 * other. What is checked and decrypted is the private copy, never the
 * store's page.
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
	uint8_t (*leaf)[MTREE_HASH_BYTES]; /* per block: what the tree says */
	uint8_t *ct;                /* per block: bs + overhead */
	uint8_t *plain;             /* locked: two blocks (a partial first, last) */
	uint8_t *keys;              /* locked: STAGE_KEYS (enc, mac) pairs */
	uint32_t key_v[STAGE_KEYS];
	int key_cipher[STAGE_KEYS];
	int nkeys;
	/* the unstaging under way */
	struct par_loop loop;
	char *out;
	atomic_int rc;
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
	st->leaf = calloc(st->cap, sizeof *st->leaf);
	st->ct = malloc(st->cap * ((size_t)bs + CIPHER_BLOCK_OVERHEAD));
	st->plain = secmem_alloc(2 * (size_t)bs);
	st->keys = secmem_alloc(STAGE_KEYS * 2 * CIPHER_KEY_BYTES);
	if (!st->kv || !st->clen || !st->leaf || !st->ct || !st->plain ||
	    !st->keys) {
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
	free(st->leaf);
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

	if (clen < CIPHER_OVERHEAD + 1 || clen > st->bs + CIPHER_BLOCK_OVERHEAD)
		return -EIO;
	memcpy(st->ct + c->i * ((size_t)st->bs + CIPHER_BLOCK_OVERHEAD), data,
	       clen);
	st->kv[c->i] = v;
	st->clen[c->i] = (uint32_t)clen;
	return 0;
}

/* The slot of version v's keys, derived on first use; -EAGAIN when full. */
static int stage_key(struct fs *fs, struct read_stage *st, uint32_t v)
{
	int k, rc;

	for (k = 0; k < st->nkeys; k++)
		if (st->key_v[k] == v)
			return k;
	if (st->nkeys == STAGE_KEYS)
		return -EAGAIN;
	rc = file_keys(fs, st->file_id, &(struct keycache){ 0, 0 }, v,
	               st->keys + (size_t)k * 2 * CIPHER_KEY_BYTES,
	               st->keys + ((size_t)k * 2 + 1) * CIPHER_KEY_BYTES);
	if (rc)
		return rc;
	st->key_v[st->nkeys] = v;
	st->key_cipher[st->nkeys] = keyring_cipher(fs->kr, v);
	return st->nkeys++;
}

static void stage_wipe(struct read_stage *st)
{
	cipher_wipe(st->keys, STAGE_KEYS * 2 * CIPHER_KEY_BYTES);
	st->nkeys = 0;
}

ssize_t blockio_stage(struct fs *fs, const struct store_inode *in,
                      struct read_stage *st, size_t size, uint64_t off)
{
	uint32_t bs = fs->block_size;
	struct mtree_root root = root_of(in);
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
	if ((rc = mtree_leaves(fs->mt, MTREE_BLOCKS, in->ino, &root, st->first,
	                       st->nblk, st->leaf)))
		return rc == -EINVAL ? -EFBIG : rc;
	for (size_t i = 0; i < st->nblk && !rc; i++) {
		struct stage_copy c = { st, i };

		st->clen[i] = 0; /* a hole */
		if (cipher_memeq(st->leaf[i], zero_leaf, MTREE_HASH_BYTES))
			continue;
		rc = store_block_with(fs->s, in->ino, st->first + i, stage_stored, &c);
		if (rc == -ENOENT)
			rc = -EIO; /* the signed file has it */
		else if (!rc) {
			int k = stage_key(fs, st, st->kv[i]);
			rc = k < 0 ? k : 0;
		}
	}
	if (rc) {
		stage_wipe(st);
		return rc;
	}
	return (ssize_t)size;
}

/* Authenticate and decrypt staged block i into out (bs bytes, zeros past
 * the stored data): 0 or -EIO. */
static int unstage_block(const struct read_stage *st, size_t i, uint8_t *out)
{
	size_t bs = st->bs, clen = st->clen[i];
	const uint8_t *enc;
	int k;

	if (clen == 0) {
		memset(out, 0, bs);
		return 0;
	}
	/* blockio_stage staged the keys of every stored block */
	for (k = 0; k < st->nkeys && st->key_v[k] != st->kv[i]; k++)
		;
	if (k == st->nkeys)
		return -EIO;
	enc = st->keys + (size_t)k * 2 * CIPHER_KEY_BYTES;
	if (open_block(st->bs, st->file_id, st->first + i, st->kv[i],
	               st->key_cipher[k], enc, enc + CIPHER_KEY_BYTES,
	               st->ct + i * (bs + CIPHER_BLOCK_OVERHEAD), clen,
	               st->leaf[i], out))
		return -EIO;
	clen -= overhead(st->key_cipher[k]);
	memset(out + clen, 0, bs - clen);
	return 0;
}

/* The blocks of a staged read, each an item of one loop over two cores
 * (par.h): a whole block is decrypted straight into the caller's buffer,
 * a partial first or last one through its own half of st->plain. */
static size_t unstage_at(const struct read_stage *st, size_t i)
{
	return i ? st->bs - st->in_blk + (i - 1) * st->bs : 0;
}

static void unstage_one(void *arg, size_t i)
{
	struct read_stage *st = arg;
	size_t bs = st->bs, from = i ? 0 : st->in_blk, at = unstage_at(st, i);
	size_t n = bs - from < st->size - at ? bs - from : st->size - at;
	uint8_t *out = (uint8_t *)st->out + at;

	if (n != bs) {
		uint8_t *tmp = st->plain + (i ? bs : 0);
		if (unstage_block(st, i, tmp))
			atomic_store(&st->rc, -EIO);
		else
			memcpy(out, tmp + from, n);
	} else if (unstage_block(st, i, out)) {
		atomic_store(&st->rc, -EIO);
	}
}

void blockio_unstage_begin(struct par *par, struct read_stage *st, char *buf)
{
	st->out = buf;
	atomic_init(&st->rc, 0);
	par_begin(par, &st->loop, st->nblk, unstage_one, st);
}

ssize_t blockio_unstage_end(struct read_stage *st)
{
	int rc;

	par_end(&st->loop);
	rc = atomic_load(&st->rc);
	if (rc)
		memset(st->out, 0, st->size); /* nothing half-checked */
	cipher_wipe(st->plain, 2 * (size_t)st->bs);
	stage_wipe(st);
	return rc ? rc : (ssize_t)st->size;
}

ssize_t blockio_unstage(struct par *par, struct read_stage *st, char *buf)
{
	/* a small read on this thread: waking the helper costs more */
	blockio_unstage_begin(st->nblk >= PAR_MIN ? par : NULL, st, buf);
	return blockio_unstage_end(st);
}
