/*
 * fs_range.c - the calls on ranges of a file beyond read and write:
 * fallocate (preallocate, punch a hole, zero a range), lseek SEEK_DATA /
 * SEEK_HOLE from the signed block tree, and copy_file_range done inside
 * the daemon (decrypted from the source, sealed again under the target's
 * keys, never through the kernel).
 *
 * Each is one operation of the group transaction with its audit row in
 * the same transaction (fail closed), like the entry points of fs_ops.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs_internal.h"
#include "session.h"
#include "unlock.h"

/* ---- fallocate ---- */

/*
 * Mode 0 and KEEP_SIZE store nothing (a sealed zero block costs as much
 * as data and SQLite cannot hold pages for a file anyway): the range must
 * fit the backing filesystem's free space now, counting the blocks it
 * does not store yet. free_bytes was taken before the lock.
 */
static int room(struct fs *fs, const struct store_inode *in, uint64_t off,
                uint64_t len, uint64_t free_bytes)
{
	uint32_t bs = fs->block_size;
	uint64_t first = off / bs, end = (off + len + bs - 1) / bs;
	uint64_t in_file = (in->size + bs - 1) / bs, stored = 0;
	uint64_t per = bs + CIPHER_BLOCK_OVERHEAD;
	int rc;

	if (end - first <= free_bytes / per)
		return 0; /* fits even if nothing is stored */
	if (first < in_file &&
	    (rc = blockio_stored_in(fs, in, first, end < in_file ? end : in_file,
	                            &stored)))
		return rc;
	return end - first - stored <= free_bytes / per ? 0 : -ENOSPC;
}

int fs_fallocate(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                 int mode, uint64_t off, uint64_t len)
{
	const char *op = (mode & FS_FALLOC_PUNCH) ? "punch_hole"
	                 : (mode & FS_FALLOC_ZERO) ? "zero_range" : "fallocate";
	struct store_inode in;
	struct statvfs sv;
	uint64_t free_bytes = UINT64_MAX;
	int rc;

	if (mode & ~(FS_FALLOC_KEEP_SIZE | FS_FALLOC_PUNCH | FS_FALLOC_ZERO))
		return -EOPNOTSUPP;
	if ((mode & FS_FALLOC_PUNCH) &&
	    (!(mode & FS_FALLOC_KEEP_SIZE) || (mode & FS_FALLOC_ZERO)))
		return -EOPNOTSUPP; /* as the kernel: punching keeps the size */
	if (len == 0)
		return -EINVAL;
	if (off + len < off || off + len > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (!(mode & (FS_FALLOC_PUNCH | FS_FALLOC_ZERO)) &&
	    fs_backing_statvfs(fs, &sv) == 0)
		free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	fs_lock(fs, c);
	if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
		goto out;
	rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISREG(in.mode))
		rc = S_ISDIR(in.mode) ? -EISDIR : -ENODEV;
	if (!rc) {
		uint64_t size = in.size;
		if (mode & (FS_FALLOC_PUNCH | FS_FALLOC_ZERO))
			rc = blockio_zero(fs, &in, off, len);
		else
			rc = room(fs, &in, off, len, free_bytes);
		if (!rc && !(mode & FS_FALLOC_KEEP_SIZE) && off + len > in.size)
			rc = blockio_truncate(fs, &in, off + len);
		if (!rc) {
			int changed = in.size != size ||
			              (mode & (FS_FALLOC_PUNCH | FS_FALLOC_ZERO));
			/* as the VFS's file_modified: every mode */
			if ((rc = inode_kill_privs(fs, &in, c, INODE_KILL_DATA)) >= 0) {
				if (!fs->kernel_times)
					inode_touch(&in, 0, changed, 1);
				rc = inode_save(fs, &in);
			}
		}
	}
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, op, ino, NULL, off, len, rc);
out:
	fs_unlock(fs);
	return rc;
}

/* ---- SEEK_DATA / SEEK_HOLE ---- */

int fs_seek(struct fs *fs, const struct fs_ctx *c, uint64_t ino, uint64_t off,
            int data, int kernel_pages, uint64_t *out)
{
	struct store_inode in;
	struct fs_ref *r;
	int rc;

	*out = off;
	fs_lock(fs, c);
	if (!(rc = fs_may_read(fs)))
		rc = inode_load(fs, ino, &in);
	if (!rc && !S_ISREG(in.mode))
		rc = S_ISDIR(in.mode) ? -EISDIR : -EINVAL;
	if (!rc) {
		r = fs_ref_get(fs, ino, 0);
		if (kernel_pages && r && r->nwrite) {
			/* a writer may have dirtied mmap pages the store has not
			 * seen: the generic answer (all data) is the safe one */
			if (off >= in.size)
				rc = -ENXIO;
			else
				*out = data ? off : in.size;
		} else
			rc = blockio_seek(fs, &in, off, data, out);
	}
	rc = fs_audit(fs, c, data ? "seek_data" : "seek_hole", ino, NULL, off,
	              rc ? 0 : *out - off, rc);
	fs_unlock(fs);
	return rc;
}

/* ---- copy_file_range ---- */

static int all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/*
 * Write buf (n bytes) into dst at off as blockio_write would, except that
 * a run of whole target blocks holding only zeros is punched (stored as
 * holes). Grows the size to off + n. Caller saves dst.
 */
static int copy_into(struct fs *fs, struct store_inode *dst,
                     const uint8_t *buf, size_t n, uint64_t off)
{
	uint32_t bs = fs->block_size;
	size_t pos = 0;
	int rc = 0;

	while (pos < n && !rc) {
		uint64_t t = off + pos;
		size_t e;

		if (t % bs == 0 && n - pos >= bs && all_zero(buf + pos, bs)) {
			for (e = pos + bs; n - e >= bs && all_zero(buf + e, bs); e += bs)
				;
			rc = blockio_zero(fs, dst, t, e - pos);
		} else {
			size_t first = bs - (size_t)(t % bs);
			ssize_t w;

			e = pos + (first < n - pos ? first : n - pos);
			while (e < n && !(n - e >= bs && all_zero(buf + e, bs)))
				e += n - e < bs ? n - e : bs;
			w = blockio_write(fs, dst, (const char *)buf + pos, e - pos, t);
			if (w < 0)
				rc = (int)w;
			else if ((size_t)w != e - pos)
				rc = -EIO;
		}
		pos = e;
	}
	if (!rc && off + n > dst->size)
		rc = blockio_truncate(fs, dst, off + n);
	return rc;
}

/*
 * The source is read in pieces of FS_STAGE_MAX, and the copy is a
 * pipeline over the two cores with the lock held throughout (nothing else
 * changes the store meanwhile). Only this thread touches the store; the
 * fs's helper (par.h) starts on each piece's cryptography while this
 * thread does the store work beside it, then this thread joins in:
 *
 *   this thread:  stage j+1, then seal j     store j, then decrypt j+1
 *   helper:       seal j                     decrypt j+1
 *
 * A piece that is not whole target blocks of data (an unaligned target,
 * a zero block to punch, the tail) goes through copy_into; a piece that
 * does not stage (-EAGAIN) is read the plain way. The plaintext of two
 * pieces is all the copy holds (buf: FS_COPY_BUF, piece j in half j % 2),
 * so a request can be long (FS_COPY_MAX): the first piece of each, staged
 * and decrypted with nothing beside it, is rarer. The lock is held
 * throughout, so past FS_COPY_SHORT bytes a request that has taken
 * FS_COPY_BUDGET_MS stops at the end of a piece and returns a short copy
 * (normal for copy_file_range; cp asks again): a slow disk does not keep
 * the rest of the mount waiting for 16 MiB.
 */
#define FS_COPY_SHORT (4u << 20)
#define FS_COPY_BUDGET_MS 100

/* How many leading bytes of piece [p, p + len) written at t are whole
 * target blocks of data, sealed as one run (0: none). */
static size_t run_bytes(uint32_t bs, const uint8_t *p, size_t len, uint64_t t)
{
	size_t k = 0;

	if (t % bs)
		return 0;
	while (len - k >= bs && !all_zero(p + k, bs))
		k += bs;
	return k;
}

/* Copy n bytes, or fewer past the budget: *done is what was copied. */
static int copy_pieces(struct fs *fs, const struct store_inode *src,
                       uint64_t off_in, struct store_inode *dst,
                       uint64_t off_out, uint8_t *buf, size_t n, size_t *done)
{
	const size_t piece = FS_STAGE_MAX;
	size_t npieces = (n + piece - 1) / piece;
	int64_t start = fs_now_ms();
	ssize_t got;
	int rc = 0;

	*done = 0;
	for (int i = 0; i < 2; i++)
		if (!fs->cstage[i] &&
		    !(fs->cstage[i] = blockio_stage_new(fs->block_size, piece)))
			return -ENOMEM;
	/* the first piece, decrypted on both cores (nothing else to do yet) */
	got = blockio_stage(fs, src, fs->cstage[0], n < piece ? n : piece, off_in);
	if (got > 0)
		got = blockio_unstage(fs->par, fs->cstage[0], (char *)buf);
	else if (got == -EAGAIN || got == 0)
		got = blockio_read(fs, src, (char *)buf, n < piece ? n : piece,
		                   off_in);
	if (got < 0)
		return (int)got;
	if ((size_t)got != (n < piece ? n : piece))
		return -EIO;
	for (size_t j = 0; j < npieces && !rc; j++) {
		size_t at = j * piece, len = n - at < piece ? n - at : piece;
		size_t nat = at + piece, nlen = 0, run;
		struct read_stage *next = fs->cstage[(j + 1) % 2];
		uint8_t *cur = buf + (j % 2) * piece, *nbuf = buf + ((j + 1) % 2) * piece;
		int staged = 0;

		run = run_bytes(fs->block_size, cur, len, off_out + at);
		if (run && (rc = blockio_run_prepare(fs, dst, off_out + at, cur, run)))
			break;
		if (run)
			blockio_run_seal(fs);
		if (j + 1 < npieces) {
			nlen = n - nat < piece ? n - nat : piece;
			got = blockio_stage(fs, src, next, nlen, off_in + nat);
			if (got > 0)
				staged = 1;
			else if (got != -EAGAIN && got != 0)
				rc = (int)got;
		}
		if (run)
			blockio_run_sealed(fs);
		if (staged)
			blockio_unstage_begin(fs->par, next, (char *)nbuf);
		if (run)
			rc = rc ? (blockio_run_cancel(fs), rc) : blockio_run_store(fs, dst);
		if (!rc && run < len)
			rc = copy_into(fs, dst, cur + run, len - run, off_out + at + run);
		if (staged)
			got = blockio_unstage_end(next);
		else if (!rc && j + 1 < npieces)
			got = blockio_read(fs, src, (char *)nbuf, nlen, off_in + nat);
		if (!rc && j + 1 < npieces) {
			if (got < 0)
				rc = (int)got;
			else if ((size_t)got != nlen)
				rc = -EIO;
		}
		if (!rc)
			*done = at + len;
		if (!rc && *done >= FS_COPY_SHORT && j + 1 < npieces &&
		    fs_now_ms() - start > FS_COPY_BUDGET_MS)
			break; /* a short copy: the next piece is wiped unused */
	}
	return rc;
}

/* "SOURCE -> TARGET" (or "SOURCE@OFFSET -> TARGET") for the copy's row. */
static const char *copy_path(struct fs *fs, char *p, size_t cap, uint64_t in,
                             uint64_t off_in, uint64_t out, uint64_t off_out)
{
	size_t n;

	if (fs->u->readonly)
		return NULL;
	fs_path_of(fs, in, NULL, p, FS_PATH_MAX);
	n = strlen(p);
	if (off_in != off_out)
		snprintf(p + n, cap - n, "@%llu", (unsigned long long)off_in);
	n = strlen(p);
	snprintf(p + n, cap - n, " -> ");
	n = strlen(p);
	fs_path_of(fs, out, NULL, p + n, cap - n);
	return p;
}

ssize_t fs_copy_range(struct fs *fs, const struct fs_ctx *cin, uint64_t ino_in,
                      uint64_t off_in, const struct fs_ctx *cout,
                      uint64_t ino_out, uint64_t off_out, size_t len)
{
	struct store_inode src, dst;
	char p[2 * FS_PATH_MAX + 32];
	const char *path;
	uint8_t *buf;
	size_t n = 0, used = 0;
	int rc, began = 0;

	if (len > FS_COPY_MAX)
		len = FS_COPY_MAX;
	if (off_in + len < off_in || off_in + len > (uint64_t)INT64_MAX ||
	    off_out + len < off_out || off_out + len > (uint64_t)INT64_MAX)
		return -EFBIG;
	fs_lock(fs, cin);
	/* one buffer for the mount (the copy holds the lock throughout): no
	 * fresh pages to fault in and zero for every request */
	if (!fs->copybuf && !(fs->copybuf = secmem_alloc(FS_COPY_BUF))) {
		fs_unlock(fs);
		return -ENOMEM;
	}
	buf = fs->copybuf;
	/* the source's handle must read, the target's write; both files are
	 * loaded inside the write transaction, against the head it verified */
	if (!(rc = fs_may_read(fs))) {
		fs_act(fs, cout);
		if ((rc = fs_may_write(fs)) || (rc = fs_op_begin(fs)))
			goto out; /* as a write that could not begin: no row */
		began = 1;
		fs_act(fs, cin);
		rc = inode_load(fs, ino_in, &src);
		if (!rc && !S_ISREG(src.mode))
			rc = S_ISDIR(src.mode) ? -EISDIR : -EINVAL;
		fs_act(fs, cout);
		if (!rc && (rc = inode_load(fs, ino_out, &dst)) == 0 &&
		    !S_ISREG(dst.mode))
			rc = S_ISDIR(dst.mode) ? -EISDIR : -EINVAL;
	} else {
		fs_act(fs, cout);
	}
	if (!rc && off_in < src.size) {
		n = src.size - off_in < len ? (size_t)(src.size - off_in) : len;
		if (ino_in != ino_out && cin->sid == cout->sid &&
		    cin->uid == cout->uid) {
			used = n;
			rc = copy_pieces(fs, &src, off_in, &dst, off_out, buf, used, &n);
		} else {
			/* the same file, or two sessions' keyrings: read it all
			 * first under the source's, then write under the target's
			 * (at most a buffer's worth: a short copy is normal) */
			ssize_t got;
			if (n > FS_COPY_BUF)
				n = FS_COPY_BUF;
			used = n;
			fs_act(fs, cin);
			got = blockio_read(fs, &src, (char *)buf, n, off_in);
			fs_act(fs, cout);
			if (got < 0)
				rc = (int)got;
			else if ((size_t)got != n)
				rc = -EIO;
			else
				rc = copy_into(fs, &dst, buf, n, off_out);
		}
		if (!rc) {
			if ((rc = inode_kill_privs(fs, &dst, cout, INODE_KILL_DATA)) >= 0) {
				if (!fs->kernel_times)
					inode_touch(&dst, 0, 1, 1);
				rc = inode_save(fs, &dst);
			}
		}
	}
	if (began)
		rc = fs_op_end(fs, rc);
	path = copy_path(fs, p, sizeof p, ino_in, off_in, ino_out, off_out);
	rc = fs_audit(fs, cout, "copy_file_range", ino_out, path, off_out, rc ? len : n,
	              rc ? rc : (int64_t)n);
out:
	cipher_wipe(buf, used < FS_COPY_BUF ? used : FS_COPY_BUF);
	fs_unlock(fs);
	return rc < 0 ? rc : (ssize_t)n;
}
