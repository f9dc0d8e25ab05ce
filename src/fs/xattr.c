/*
 * xattr.c - extended attributes, names and values encrypted, the set of
 * each inode covered by a digest in the inode row.
 *
 * Like directory entries: a keyed tag of the name (per file, per version)
 * is the lookup key; the name and the value are sealed under the file's
 * xattr key, bound to (file id, tag, version). The inode row carries the
 * digest of all its xattr rows (zero: none), and the row is covered by the
 * inode tree, so an xattr that was forged, removed or put back from an
 * older copy makes the whole set fail (-EIO). Sets are small; every access
 * reads and checks the whole set, and a change writes the new digest.
 *
 * Only the user., trusted. and security. namespaces are stored, and with
 * POSIX ACLs on the two system.posix_acl_* names (acl.c keeps their
 * meaning: the mode follows them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fs_internal.h"
#include "session.h"
#include "unlock.h"

#define XATTR_AD_BYTES (STORE_FILE_ID_BYTES + STORE_TAG_BYTES + 4 + 1)
#define XATTR_MAX_PER_INODE 4096
#define XATTR_MAX_BYTES (32u << 20)


/* Under fs->lock (fs->posix_acl). */
static int namespace_ok(const struct fs *fs, const char *name)
{
	static const char *const ns[] = { "user.", "trusted.", "security." };

	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
		if (!strncmp(name, ns[i], strlen(ns[i])))
			return name[strlen(ns[i])] ? 0 : -EINVAL; /* "user." alone */
	if (fs->posix_acl && acl_name(name))
		return 0;
	return -EOPNOTSUPP;
}

/* One row of a set, with its own copies of the ciphertexts. */
struct xrow {
	uint8_t tag[STORE_TAG_BYTES];
	uint32_t kv;
	uint8_t *name, *value;
	size_t namelen, valuelen;
};

struct xset {
	struct xrow *v;
	size_t n;
	size_t bytes;
	int err;
	/* rows stored beside the signed set (xset_load): their tags */
	uint8_t (*stray)[STORE_TAG_BYTES];
	size_t nstray;
};

static void xrow_free(struct xrow *r)
{
	free(r->name);
	free(r->value);
}

static void xset_free(struct xset *x)
{
	for (size_t i = 0; i < x->n; i++)
		xrow_free(&x->v[i]);
	free(x->v);
	free(x->stray);
	memset(x, 0, sizeof *x);
}

static int collect(void *arg, const struct store_xattr *r)
{
	struct xset *x = arg;
	struct xrow *row;

	if (x->n >= XATTR_MAX_PER_INODE ||
	    x->bytes + r->namelen + r->valuelen > XATTR_MAX_BYTES) {
		x->err = -EIO;
		return 1;
	}
	row = realloc(x->v, (x->n + 1) * sizeof *row);
	if (!row) {
		x->err = -ENOMEM;
		return 1;
	}
	x->v = row;
	row = &x->v[x->n];
	memset(row, 0, sizeof *row);
	memcpy(row->tag, r->tag, sizeof row->tag);
	row->kv = r->key_version;
	row->name = malloc(r->namelen ? r->namelen : 1);
	row->value = malloc(r->valuelen ? r->valuelen : 1);
	x->n++;
	if (!row->name || !row->value) {
		x->err = -ENOMEM;
		return 1;
	}
	/* (an empty one may come as NULL: memcpy must not see it) */
	if (r->namelen)
		memcpy(row->name, r->name, r->namelen);
	if (r->valuelen)
		memcpy(row->value, r->value, r->valuelen);
	row->namelen = r->namelen;
	row->valuelen = r->valuelen;
	x->bytes += r->namelen + r->valuelen;
	return 0;
}

/* The digest of a set in tag order (zero for the empty set). */
static void xset_digest(const struct xset *x, uint8_t out[MTREE_HASH_BYTES])
{
	size_t cap = 16;
	uint8_t *buf;
	struct wbuf w;

	if (!x->n) {
		memset(out, 0, MTREE_HASH_BYTES);
		return;
	}
	for (size_t i = 0; i < x->n; i++)
		cap += STORE_TAG_BYTES + 4 + 16 + x->v[i].namelen + x->v[i].valuelen;
	if (!(buf = malloc(cap))) {
		memset(out, 0xff, MTREE_HASH_BYTES); /* matches nothing */
		return;
	}
	wbuf_init(&w, buf, cap);
	wbuf_bytes(&w, "custodyfs.xattrs", 16);
	for (size_t i = 0; i < x->n; i++) {
		wbuf_bytes(&w, x->v[i].tag, STORE_TAG_BYTES);
		wbuf_u32(&w, x->v[i].kv);
		wbuf_u64(&w, x->v[i].namelen);
		wbuf_bytes(&w, x->v[i].name, x->v[i].namelen);
		wbuf_u64(&w, x->v[i].valuelen);
		wbuf_bytes(&w, x->v[i].value, x->v[i].valuelen);
	}
	{
		struct cipher_part p = { buf, w.len };
		cipher_hash(out, &p, 1);
	}
	free(buf);
}

static int by_tag(const void *a, const void *b)
{
	return memcmp(((const struct xrow *)a)->tag, ((const struct xrow *)b)->tag,
	              STORE_TAG_BYTES);
}

static int xkey(struct fs *fs, const struct store_inode *in, uint32_t v,
                const char *name, uint8_t tag[STORE_TAG_BYTES])
{
	int rc = keyring_derive(fs->kr, v, KR_XATTR, in->file_id,
	                        sizeof in->file_id, FS_KEY(fs, FS_KEY_XATTR));
	if (rc)
		return rc == -ENOKEY ? -EIO : rc;
	if (name) {
		struct cipher_part p[2] = { { "tag", 3 }, { name, strlen(name) } };
		cipher_mac(tag, FS_KEY(fs, FS_KEY_XATTR), p, 2);
	}
	return 0;
}

static size_t xad(uint8_t *ad, const struct store_inode *in,
                  const uint8_t tag[STORE_TAG_BYTES], uint32_t v, char what)
{
	memcpy(ad, in->file_id, STORE_FILE_ID_BYTES);
	memcpy(ad + 16, tag, STORE_TAG_BYTES);
	put_le32(ad + 48, v);
	ad[52] = (uint8_t)what;
	return XATTR_AD_BYTES;
}

static void xwipe(struct fs *fs)
{
	cipher_wipe(FS_KEY(fs, FS_KEY_XATTR), CIPHER_KEY_BYTES);
}

/* The row of name in x under any held version (-1 if none). */
static int xfind(struct fs *fs, const struct store_inode *in,
                 const struct xset *x, const char *name)
{
	uint32_t vs[KEYRING_MAX_VERSIONS];
	size_t nv = keyring_versions(fs->kr, vs, KEYRING_MAX_VERSIONS);

	for (size_t i = 0; i < nv; i++) {
		uint8_t tag[STORE_TAG_BYTES];
		if (xkey(fs, in, vs[i], name, tag))
			return -1;
		for (size_t j = 0; j < x->n; j++)
			if (!memcmp(x->v[j].tag, tag, sizeof tag) && x->v[j].kv == vs[i])
				return (int)j;
	}
	return -1;
}

/* Open row r's name (what 'n') or value ('v') into out. */
static int xopen(struct fs *fs, const struct store_inode *in,
                 const struct xrow *r, char what, uint8_t *out, size_t cap,
                 size_t *len)
{
	uint8_t ad[XATTR_AD_BYTES];
	const uint8_t *ct = what == 'n' ? r->name : r->value;
	size_t clen = what == 'n' ? r->namelen : r->valuelen;

	if (clen < CIPHER_OVERHEAD || clen - CIPHER_OVERHEAD > cap ||
	    xkey(fs, in, r->kv, NULL, NULL) ||
	    cipher_open(out, ct, clen, ad, xad(ad, in, r->tag, r->kv, what),
	                FS_KEY(fs, FS_KEY_XATTR)))
		return -EIO;
	*len = clen - CIPHER_OVERHEAD;
	return 0;
}

/* Row r opens under in's keys, name and value (a row sealed for this
 * file, at its tag and version). */
static int xrow_opens(struct fs *fs, const struct store_inode *in,
                      const struct xrow *r, uint8_t *plain)
{
	size_t n;

	return xopen(fs, in, r, 'n', plain, FS_XATTR_NAME_MAX, &n) == 0 &&
	       xopen(fs, in, r, 'v', plain, FS_XATTR_SIZE_MAX, &n) == 0;
}

/*
 * The signed set among the rows, when the stored rows are not exactly it:
 * the signed set is empty (a zero digest: every row is a stray), or it is
 * the rows that open under this file's keys (rows copied from another
 * file or sealed under another one's keys do not) and their digest is the
 * signed one. The others move to x->stray. -EIO if that is not the signed
 * set either (a row of it forged, edited or gone).
 */
static int xset_split(struct fs *fs, const struct store_inode *in,
                      struct xset *x)
{
	static const uint8_t none[MTREE_HASH_BYTES];
	uint8_t d[MTREE_HASH_BYTES], *plain = NULL;
	size_t keep = 0;
	char *opens;
	int zero = cipher_memeq(in->xdigest, none, sizeof none);

	if (!x->n)
		return -EIO; /* a signed set, and no row of it */
	if (!(x->stray = malloc(x->n * sizeof *x->stray)) ||
	    !(opens = calloc(x->n, 1)))
		return -ENOMEM;
	if (!zero && !(plain = malloc(FS_XATTR_SIZE_MAX + 1))) {
		free(opens);
		return -ENOMEM;
	}
	for (size_t i = 0; i < x->n && !zero; i++)
		opens[i] = (char)xrow_opens(fs, in, &x->v[i], plain);
	xwipe(fs);
	if (plain) {
		cipher_wipe(plain, FS_XATTR_SIZE_MAX + 1);
		free(plain);
	}
	for (size_t i = 0; i < x->n; i++) {
		if (opens[i]) {
			x->v[keep++] = x->v[i];
			continue;
		}
		memcpy(x->stray[x->nstray++], x->v[i].tag, STORE_TAG_BYTES);
		x->bytes -= x->v[i].namelen + x->v[i].valuelen;
		xrow_free(&x->v[i]);
	}
	free(opens);
	x->n = keep;
	xset_digest(x, d);
	return cipher_memeq(d, in->xdigest, sizeof d) ? 0 : -EIO;
}

/*
 * The xattrs of in, checked against its digest. Rows stored beside the
 * signed set (planted: copied from another file, put back after a
 * removal, or under an inode whose signed digest says none) are never
 * part of it: they are left out (their tags in x->stray, for check and
 * for xset_drop_strays) and the signed set is served as it is. A set
 * that is not the signed one (a row of it forged, edited or deleted)
 * gives -EIO.
 */
static int xset_load(struct fs *fs, const struct store_inode *in,
                     struct xset *x)
{
	uint8_t d[MTREE_HASH_BYTES];
	int rc;

	memset(x, 0, sizeof *x);
	rc = store_xattr_each(fs->s, in->ino, collect, x);
	if (x->err)
		rc = x->err;
	if (rc >= 0) {
		xset_digest(x, d);
		rc = cipher_memeq(d, in->xdigest, sizeof d) ? 0 : xset_split(fs, in, x);
	}
	if (rc < 0)
		xset_free(x);
	return rc < 0 ? rc : 0;
}

/*
 * Before a change of the set: the stray rows go (the new digest covers
 * the signed set only; a stray left at a tag the change writes would be
 * overwritten, and strays would stand in the way of every later load).
 */
static int xset_drop_strays(struct fs *fs, uint64_t ino, struct xset *x)
{
	int rc = 0;

	for (size_t i = 0; i < x->nstray && !rc; i++) {
		rc = store_xattr_delete(fs->s, ino, x->stray[i]);
		if (rc == -ENOENT)
			rc = 0;
	}
	if (!rc && x->nstray)
		fs_warn(fs, "inode %llu: %zu extended attribute row%s that %s not"
		        " part of its signed set (planted) removed",
		        (unsigned long long)ino, x->nstray,
		        x->nstray == 1 ? "" : "s", x->nstray == 1 ? "was" : "were");
	if (!rc)
		x->nstray = 0;
	return rc;
}

/* Seal (name, value) under the active version as row out (ciphertexts
 * malloc'ed). */
static int xseal(struct fs *fs, const struct store_inode *in, const char *name,
                 const void *value, size_t size, struct xrow *out)
{
	uint32_t v = keyring_active(fs->kr);
	size_t nlen = strlen(name);
	uint8_t ad[XATTR_AD_BYTES];
	int rc;

	memset(out, 0, sizeof *out);
	if (!v)
		return -EROFS;
	if ((rc = xkey(fs, in, v, name, out->tag)))
		return rc;
	out->kv = v;
	out->name = malloc(nlen + CIPHER_OVERHEAD);
	out->value = malloc(size + CIPHER_OVERHEAD);
	if (!out->name || !out->value) {
		free(out->name);
		free(out->value);
		return -ENOMEM;
	}
	cipher_seal(out->name, (const uint8_t *)name, nlen, ad,
	            xad(ad, in, out->tag, v, 'n'), FS_KEY(fs, FS_KEY_XATTR));
	cipher_seal(out->value, value, size, ad, xad(ad, in, out->tag, v, 'v'),
	            FS_KEY(fs, FS_KEY_XATTR));
	out->namelen = nlen + CIPHER_OVERHEAD;
	out->valuelen = size + CIPHER_OVERHEAD;
	return 0;
}

static int xput(struct fs *fs, uint64_t ino, const struct xrow *r)
{
	struct store_xattr x = { .ino = ino, .key_version = r->kv,
	                         .name = r->name, .namelen = r->namelen,
	                         .value = r->value, .valuelen = r->valuelen };

	memcpy(x.tag, r->tag, sizeof x.tag);
	return store_xattr_put(fs->s, &x);
}

/* Replace row i of x by nr (i < 0: add), keeping tag order; the old row's
 * store row goes first if its tag differs. */
static int xset_replace(struct fs *fs, uint64_t ino, struct xset *x, int i,
                        struct xrow *nr)
{
	struct xrow *v;
	int rc;

	if (i >= 0) {
		if (memcmp(x->v[i].tag, nr->tag, STORE_TAG_BYTES) &&
		    (rc = store_xattr_delete(fs->s, ino, x->v[i].tag)))
			return rc;
		free(x->v[i].name);
		free(x->v[i].value);
		x->v[i] = *nr;
	} else {
		if (!(v = realloc(x->v, (x->n + 1) * sizeof *v)))
			return -ENOMEM;
		x->v = v;
		x->v[x->n++] = *nr;
	}
	memset(nr, 0, sizeof *nr);
	qsort(x->v, x->n, sizeof *x->v, by_tag);
	return 0;
}

ssize_t xattr_get(struct fs *fs, const struct store_inode *in,
                  const char *name, void *value, size_t cap)
{
	static const uint8_t none[MTREE_HASH_BYTES];
	struct xset x;
	uint8_t *plain = NULL;
	size_t n;
	ssize_t rc;
	int i;

	/* the signed set is empty: nothing to look up (the kernel asks for
	 * security.capability before every write; rows planted beside an
	 * empty set are never part of it, see xset_load) */
	if (cipher_memeq(in->xdigest, none, sizeof none))
		return -ENODATA;
	if (!(rc = xset_load(fs, in, &x))) {
		i = xfind(fs, in, &x, name);
		if (i < 0)
			rc = -ENODATA;
		else if (!(plain = malloc(FS_XATTR_SIZE_MAX + 1)))
			rc = -ENOMEM;
		else if ((rc = xopen(fs, in, &x.v[i], 'v', plain, FS_XATTR_SIZE_MAX,
		                     &n)) == 0) {
			if (cap == 0)
				rc = (ssize_t)n;
			else if (n > cap)
				rc = -ERANGE;
			else {
				memcpy(value, plain, n);
				rc = (ssize_t)n;
			}
		}
		xset_free(&x);
	}
	xwipe(fs);
	if (plain) {
		cipher_wipe(plain, FS_XATTR_SIZE_MAX + 1);
		free(plain);
	}
	return rc;
}

int xattr_set(struct fs *fs, struct store_inode *in, const char *name,
              const void *value, size_t size, int flags)
{
	struct xset x = { 0 };
	struct xrow nr = { 0 };
	int rc, i;

	if ((rc = xset_load(fs, in, &x)))
		goto end;
	i = xfind(fs, in, &x, name);
	if ((flags & FS_XATTR_CREATE) && i >= 0) {
		rc = -EEXIST;
		goto end;
	}
	if ((flags & FS_XATTR_REPLACE) && i < 0) {
		rc = -ENODATA;
		goto end;
	}
	if (i < 0) {
		/* the names must still fit one listxattr (the kernel's
		 * XATTR_LIST_MAX): a set nothing can list is one no backup or
		 * copy keeps. ENOSPC, as ext4 says when a file's xattrs are
		 * full */
		size_t list = strlen(name) + 1;
		for (size_t k = 0; k < x.n; k++)
			list += (x.v[k].namelen > CIPHER_OVERHEAD
			         ? x.v[k].namelen - CIPHER_OVERHEAD : 0) + 1;
		if (list > FS_XATTR_LIST_MAX) {
			rc = -ENOSPC;
			goto end;
		}
	}
	if ((rc = xset_drop_strays(fs, in->ino, &x)) ||
	    (rc = xseal(fs, in, name, value, size, &nr)) ||
	    (rc = xput(fs, in->ino, &nr)) ||
	    (rc = xset_replace(fs, in->ino, &x, i, &nr)))
		goto end;
	xset_digest(&x, in->xdigest);
	inode_touch(in, 0, 0, 1);
end:
	xwipe(fs);
	free(nr.name);
	free(nr.value);
	xset_free(&x);
	return rc;
}

int xattr_remove(struct fs *fs, struct store_inode *in, const char *name)
{
	struct xset x = { 0 };
	int rc, i;

	if ((rc = xset_load(fs, in, &x)))
		goto end;
	if ((i = xfind(fs, in, &x, name)) < 0) {
		rc = -ENODATA;
		goto end;
	}
	if ((rc = xset_drop_strays(fs, in->ino, &x)) ||
	    (rc = store_xattr_delete(fs->s, in->ino, x.v[i].tag)))
		goto end;
	free(x.v[i].name);
	free(x.v[i].value);
	memmove(&x.v[i], &x.v[i + 1], (x.n - (size_t)i - 1) * sizeof *x.v);
	x.n--;
	xset_digest(&x, in->xdigest);
	inode_touch(in, 0, 0, 1);
end:
	xwipe(fs);
	xset_free(&x);
	return rc;
}

int fs_setxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                const char *name, const void *value, size_t size, int flags)
{
	struct store_inode in;
	int rc;

	if (strlen(name) > FS_XATTR_NAME_MAX)
		return -ERANGE;
	if (size > FS_XATTR_SIZE_MAX)
		return -E2BIG;
	fs_lock(fs, c);
	if ((rc = namespace_ok(fs, name)) || (rc = fs_may_write(fs)))
		goto out;
	if ((rc = fs_op_begin(fs)))
		goto out;
	if (!(rc = inode_load(fs, ino, &in))) {
		if (acl_name(name))
			rc = acl_set(fs, &in, name, value, size, flags);
		else
			rc = xattr_set(fs, &in, name, value, size, flags);
	}
	if (!rc)
		rc = inode_save(fs, &in);
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, "setxattr", ino, NULL, 0, size, rc);
out:
	fs_unlock(fs);
	return rc;
}

ssize_t fs_getxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                    const char *name, void *value, size_t size)
{
	struct store_inode in;
	ssize_t rc;

	if (strlen(name) > FS_XATTR_NAME_MAX)
		return -ERANGE;
	fs_lock(fs, c);
	if (!(rc = namespace_ok(fs, name)))
		rc = fs_may_read(fs);
	if (!rc)
		rc = inode_load(fs, ino, &in);
	if (!rc)
		rc = xattr_get(fs, &in, name, value, size);
	fs_unlock(fs);
	return rc;
}

ssize_t fs_listxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                     char *list, size_t size)
{
	struct store_inode in;
	struct xset x = { 0 };
	char name[FS_XATTR_NAME_MAX + 1];
	size_t used = 0, n;
	int rc;

	fs_lock(fs, c);
	rc = fs_may_read(fs);
	if (!rc)
		rc = inode_load(fs, ino, &in);
	if (!rc)
		rc = xset_load(fs, &in, &x);
	for (size_t i = 0; !rc && i < x.n; i++) {
		if ((rc = xopen(fs, &in, &x.v[i], 'n', (uint8_t *)name,
		                FS_XATTR_NAME_MAX, &n)))
			break;
		name[n] = 0;
		if (strlen(name) != n) {
			rc = -EIO;
			break;
		}
		if (!fs->posix_acl && acl_name(name))
			continue; /* -o noacl: kept, but not offered */
		if (size) {
			if (used + n + 1 > size) {
				rc = -ERANGE;
				break;
			}
			memcpy(list + used, name, n + 1);
		}
		used += n + 1;
	}
	xwipe(fs);
	xset_free(&x);
	fs_unlock(fs);
	return rc ? rc : (ssize_t)used;
}

int fs_removexattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                   const char *name)
{
	struct store_inode in;
	int rc;

	fs_lock(fs, c);
	if ((rc = namespace_ok(fs, name)) || (rc = fs_may_write(fs)))
		goto out;
	if ((rc = fs_op_begin(fs)))
		goto out;
	if (!(rc = inode_load(fs, ino, &in)) &&
	    !(rc = xattr_remove(fs, &in, name)))
		rc = inode_save(fs, &in);
	rc = fs_op_end(fs, rc);
	rc = fs_audit(fs, c, "removexattr", ino, NULL, 0, 0, rc);
out:
	fs_unlock(fs);
	return rc;
}

int xattr_digest_rows(struct fs *fs, uint64_t ino,
                      uint8_t out[MTREE_HASH_BYTES])
{
	struct xset x;
	int rc;

	memset(&x, 0, sizeof x);
	rc = store_xattr_each(fs->s, ino, collect, &x);
	if (x.err)
		rc = x.err;
	if (rc >= 0)
		xset_digest(&x, out);
	xset_free(&x);
	return rc < 0 ? rc : 0;
}

int xattr_check(struct fs *fs, const struct store_inode *in, size_t *strays)
{
	struct xset x;
	uint8_t *plain = malloc(FS_XATTR_SIZE_MAX + 1);
	size_t n;
	int rc;

	*strays = 0;
	if (!plain)
		return -ENOMEM;
	rc = xset_load(fs, in, &x);
	for (size_t i = 0; !rc && i < x.n; i++)
		if (xopen(fs, in, &x.v[i], 'n', plain, FS_XATTR_NAME_MAX, &n) ||
		    xopen(fs, in, &x.v[i], 'v', plain, FS_XATTR_SIZE_MAX, &n))
			rc = -EIO;
	if (!rc)
		*strays = x.nstray;
	xwipe(fs);
	xset_free(&x);
	cipher_wipe(plain, FS_XATTR_SIZE_MAX + 1);
	free(plain);
	return rc;
}

int xattr_verify(struct fs *fs, const struct store_inode *in)
{
	size_t strays;
	int rc = xattr_check(fs, in, &strays);

	return rc ? rc : strays ? -EIO : 0;
}

int xattr_drop_strays(struct fs *fs, const struct store_inode *in,
                      size_t *dropped)
{
	struct xset x;
	int rc;

	*dropped = 0;
	if ((rc = xset_load(fs, in, &x)))
		return rc;
	*dropped = x.nstray;
	rc = xset_drop_strays(fs, in->ino, &x);
	xset_free(&x);
	if (rc)
		*dropped = 0;
	return rc;
}

int xattr_rekey(struct fs *fs, struct store_inode *in)
{
	uint32_t v = keyring_active(fs->kr);
	uint8_t *name = malloc(FS_XATTR_NAME_MAX + 1);
	uint8_t *value = malloc(FS_XATTR_SIZE_MAX);
	struct xset x;
	size_t nl, vl;
	int rc;

	if (!name || !value) {
		free(name);
		free(value);
		return -ENOMEM;
	}
	rc = xset_load(fs, in, &x);
	if (!rc)
		rc = xset_drop_strays(fs, in->ino, &x); /* or reencrypt finds them
		                                          * again and again */
	for (size_t i = 0; !rc && i < x.n; i++) {
		struct xrow nr;
		if (x.v[i].kv >= v)
			continue;
		if ((rc = xopen(fs, in, &x.v[i], 'n', name, FS_XATTR_NAME_MAX, &nl)) ||
		    (rc = xopen(fs, in, &x.v[i], 'v', value, FS_XATTR_SIZE_MAX, &vl)))
			break;
		name[nl] = 0;
		if ((rc = xseal(fs, in, (char *)name, value, vl, &nr)))
			break;
		if ((rc = xput(fs, in->ino, &nr)) ||
		    (rc = xset_replace(fs, in->ino, &x, (int)i, &nr))) {
			free(nr.name);
			free(nr.value);
			break;
		}
		i = (size_t)-1; /* the order changed: start over (few rows) */
	}
	if (!rc)
		xset_digest(&x, in->xdigest);
	xwipe(fs);
	xset_free(&x);
	cipher_wipe(value, FS_XATTR_SIZE_MAX);
	free(name);
	free(value);
	return rc;
}
