/*
 * xattr.c - extended attributes, names and values encrypted.
 *
 * Like directory entries: a keyed tag of the name (per file, per version)
 * is the lookup key; the name and the value are sealed under the file's
 * xattr key, bound to (file id, tag, version). Only the user., trusted. and
 * security. namespaces are stored; POSIX ACLs are not supported (EOPNOTSUPP)
 * because permissions are checked by the kernel from the mode bits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

#define XATTR_AD_BYTES (STORE_FILE_ID_BYTES + STORE_TAG_BYTES + 4 + 1)

static int namespace_ok(const char *name)
{
	if (!strncmp(name, "user.", 5) || !strncmp(name, "trusted.", 8) ||
	    !strncmp(name, "security.", 9))
		return 0;
	return -EOPNOTSUPP;
}

static int xkey(struct fs *fs, const struct store_inode *in, uint32_t v,
                const char *name, uint8_t tag[STORE_TAG_BYTES])
{
	int rc = keyring_derive(fs->kr, v, KR_XATTR, in->file_id,
	                        sizeof in->file_id, FS_KEY(fs, FS_KEY_XATTR));
	if (rc)
		return rc;
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
	for (int i = 0; i < 4; i++)
		ad[48 + i] = (uint8_t)(v >> (8 * i));
	ad[52] = (uint8_t)what;
	return XATTR_AD_BYTES;
}

static void xwipe(struct fs *fs)
{
	cipher_wipe(FS_KEY(fs, FS_KEY_XATTR), CIPHER_KEY_BYTES);
}

/* Find name's tag under any held version: -ENODATA if absent. */
static int xfind(struct fs *fs, const struct store_inode *in,
                 const char *name, uint8_t tag[STORE_TAG_BYTES],
                 uint8_t *cbuf, size_t cap, size_t *clen, uint32_t *kv)
{
	uint32_t vs[KEYRING_MAX_VERSIONS];
	size_t nv = keyring_versions(fs->kr, vs, KEYRING_MAX_VERSIONS);
	int rc = -ENODATA;

	for (size_t i = 0; i < nv; i++) {
		if ((rc = xkey(fs, in, vs[i], name, tag)))
			return rc;
		rc = store_xattr_get(fs->s, in->ino, tag, kv, cbuf, cap, clen);
		if (rc == -ENOENT) {
			rc = -ENODATA;
			continue;
		}
		if (!rc && *kv != vs[i])
			rc = -EIO;
		return rc;
	}
	return rc;
}

int fs_setxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                const char *name, const void *value, size_t size, int flags)
{
	struct store_inode in;
	struct store_xattr x;
	uint8_t tag[STORE_TAG_BYTES], ad[XATTR_AD_BYTES];
	uint8_t *cv = NULL, *cn = NULL;
	size_t nlen = strlen(name), clen;
	uint32_t kv, v;
	int rc;

	if ((rc = namespace_ok(name)))
		return rc;
	if (nlen > FS_XATTR_NAME_MAX)
		return -ERANGE;
	if (size > FS_XATTR_SIZE_MAX)
		return -E2BIG;
	pthread_mutex_lock(&fs->lock);
	if (fs->o.read_only || !(v = keyring_active(fs->kr))) {
		rc = -EROFS;
		goto out;
	}
	if ((rc = fs_op_begin(fs)))
		goto out;
	cv = malloc(size + CIPHER_OVERHEAD);
	cn = malloc(nlen + CIPHER_OVERHEAD);
	if (!cv || !cn) {
		rc = -ENOMEM;
		goto end;
	}
	if ((rc = inode_load(fs, ino, &in)))
		goto end;
	rc = xfind(fs, &in, name, tag, cv, size + CIPHER_OVERHEAD, &clen, &kv);
	if (rc == -ERANGE)
		rc = 0; /* exists, larger than the new value */
	if (rc && rc != -ENODATA)
		goto end;
	if ((flags & FS_XATTR_CREATE) && rc == 0) {
		rc = -EEXIST;
		goto end;
	}
	if ((flags & FS_XATTR_REPLACE) && rc == -ENODATA)
		goto end;
	if (rc == 0 && kv != v && (rc = store_xattr_delete(fs->s, ino, tag)))
		goto end; /* an older version's row: replace it */
	if ((rc = xkey(fs, &in, v, name, tag)))
		goto end;
	cipher_seal(cn, (const uint8_t *)name, nlen, ad, xad(ad, &in, tag, v, 'n'),
	            FS_KEY(fs, FS_KEY_XATTR));
	cipher_seal(cv, value, size, ad, xad(ad, &in, tag, v, 'v'),
	            FS_KEY(fs, FS_KEY_XATTR));
	x = (struct store_xattr){ .ino = ino, .key_version = v, .name = cn,
	                          .namelen = nlen + CIPHER_OVERHEAD, .value = cv,
	                          .valuelen = size + CIPHER_OVERHEAD };
	memcpy(x.tag, tag, sizeof tag);
	if ((rc = store_xattr_put(fs->s, &x)))
		goto end;
	inode_touch(&in, 0, 0, 1);
	rc = inode_save(fs, &in);
end:
	xwipe(fs);
	rc = fs_op_end(fs, rc);
	fs_audit(fs, c, "setxattr", ino, NULL, 0, size, rc);
out:
	pthread_mutex_unlock(&fs->lock);
	free(cv);
	free(cn);
	return rc;
}

ssize_t fs_getxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                    const char *name, void *value, size_t size)
{
	struct store_inode in;
	uint8_t tag[STORE_TAG_BYTES], ad[XATTR_AD_BYTES];
	size_t cap = FS_XATTR_SIZE_MAX + CIPHER_OVERHEAD, clen;
	uint8_t *cbuf = malloc(cap), *plain = malloc(FS_XATTR_SIZE_MAX + 1);
	uint32_t kv;
	ssize_t rc;

	(void)c;
	if (!cbuf || !plain) {
		free(cbuf);
		free(plain);
		return -ENOMEM;
	}
	if ((rc = namespace_ok(name)) == 0 && strlen(name) > FS_XATTR_NAME_MAX)
		rc = -ERANGE;
	pthread_mutex_lock(&fs->lock);
	if (!rc)
		rc = inode_load(fs, ino, &in);
	if (!rc)
		rc = xfind(fs, &in, name, tag, cbuf, cap, &clen, &kv);
	if (rc == -ERANGE)
		rc = -EIO; /* larger than any value we write */
	if (!rc) {
		if (clen < CIPHER_OVERHEAD ||
		    cipher_open(plain, cbuf, clen, ad, xad(ad, &in, tag, kv, 'v'),
		                FS_KEY(fs, FS_KEY_XATTR)))
			rc = -EIO;
		else {
			size_t n = clen - CIPHER_OVERHEAD;
			if (size == 0)
				rc = (ssize_t)n;
			else if (n > size)
				rc = -ERANGE;
			else {
				memcpy(value, plain, n);
				rc = (ssize_t)n;
			}
		}
	}
	xwipe(fs);
	pthread_mutex_unlock(&fs->lock);
	free(cbuf);
	free(plain);
	return rc;
}

struct list_ctx {
	struct fs *fs;
	const struct store_inode *in;
	char *list;
	size_t size, used;
	int err;
};

static int list_one(void *arg, const struct store_xattr *x)
{
	struct list_ctx *l = arg;
	uint8_t ad[XATTR_AD_BYTES];
	char name[FS_XATTR_NAME_MAX + 1];
	size_t n;

	if (x->namelen < CIPHER_OVERHEAD + 1 ||
	    x->namelen > CIPHER_OVERHEAD + FS_XATTR_NAME_MAX ||
	    xkey(l->fs, l->in, x->key_version, NULL, NULL) ||
	    cipher_open((uint8_t *)name, x->name, x->namelen, ad,
	                xad(ad, l->in, x->tag, x->key_version, 'n'),
	                FS_KEY(l->fs, FS_KEY_XATTR))) {
		l->err = -EIO;
		return 1;
	}
	n = x->namelen - CIPHER_OVERHEAD;
	name[n] = 0;
	if (strlen(name) != n) {
		l->err = -EIO;
		return 1;
	}
	if (l->size) {
		if (l->used + n + 1 > l->size) {
			l->err = -ERANGE;
			return 1;
		}
		memcpy(l->list + l->used, name, n + 1);
	}
	l->used += n + 1;
	return 0;
}

ssize_t fs_listxattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                     char *list, size_t size)
{
	struct store_inode in;
	struct list_ctx l = { fs, &in, list, size, 0, 0 };
	int rc;

	(void)c;
	pthread_mutex_lock(&fs->lock);
	rc = inode_load(fs, ino, &in);
	if (!rc)
		rc = store_xattr_each(fs->s, ino, list_one, &l);
	xwipe(fs);
	pthread_mutex_unlock(&fs->lock);
	if (l.err)
		return l.err;
	if (rc < 0)
		return rc;
	return (ssize_t)l.used;
}

int fs_removexattr(struct fs *fs, const struct fs_ctx *c, uint64_t ino,
                   const char *name)
{
	struct store_inode in;
	uint8_t tag[STORE_TAG_BYTES], cbuf[1];
	size_t clen;
	uint32_t kv;
	int rc;

	if ((rc = namespace_ok(name)))
		return rc;
	pthread_mutex_lock(&fs->lock);
	if (fs->o.read_only || !keyring_active(fs->kr)) {
		rc = -EROFS;
		goto out;
	}
	if ((rc = fs_op_begin(fs)))
		goto out;
	rc = inode_load(fs, ino, &in);
	if (!rc) {
		rc = xfind(fs, &in, name, tag, cbuf, 0, &clen, &kv);
		if (rc == -ERANGE)
			rc = 0;
	}
	if (!rc)
		rc = store_xattr_delete(fs->s, ino, tag);
	if (!rc) {
		inode_touch(&in, 0, 0, 1);
		rc = inode_save(fs, &in);
	}
	xwipe(fs);
	rc = fs_op_end(fs, rc);
	fs_audit(fs, c, "removexattr", ino, NULL, 0, 0, rc);
out:
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

struct rekey_ctx {
	struct fs *fs;
	const struct store_inode *in;
	const uint8_t *tag;
	uint8_t *name, *value;
	size_t namelen, valuelen;
	uint32_t version;
	int found, err;
};

static int rekey_find(void *arg, const struct store_xattr *x)
{
	struct rekey_ctx *r = arg;
	uint8_t ad[XATTR_AD_BYTES];

	if (memcmp(x->tag, r->tag, STORE_TAG_BYTES))
		return 0;
	r->found = 1;
	r->version = x->key_version;
	if (x->namelen < CIPHER_OVERHEAD || x->valuelen < CIPHER_OVERHEAD ||
	    x->namelen > CIPHER_OVERHEAD + FS_XATTR_NAME_MAX ||
	    x->valuelen > CIPHER_OVERHEAD + FS_XATTR_SIZE_MAX ||
	    xkey(r->fs, r->in, x->key_version, NULL, NULL) ||
	    cipher_open(r->name, x->name, x->namelen, ad,
	                xad(ad, r->in, x->tag, x->key_version, 'n'),
	                FS_KEY(r->fs, FS_KEY_XATTR)) ||
	    cipher_open(r->value, x->value, x->valuelen, ad,
	                xad(ad, r->in, x->tag, x->key_version, 'v'),
	                FS_KEY(r->fs, FS_KEY_XATTR))) {
		r->err = -EIO;
		return 1;
	}
	r->namelen = x->namelen - CIPHER_OVERHEAD;
	r->valuelen = x->valuelen - CIPHER_OVERHEAD;
	return 1;
}

int xattr_rekey(struct fs *fs, const struct store_inode *in,
                const uint8_t tag[STORE_TAG_BYTES])
{
	struct rekey_ctx r = { fs, in, tag, malloc(FS_XATTR_NAME_MAX + 1),
	                       malloc(FS_XATTR_SIZE_MAX), 0, 0, 0, 0, 0 };
	uint8_t *cn = malloc(FS_XATTR_NAME_MAX + CIPHER_OVERHEAD);
	uint8_t *cv = malloc(FS_XATTR_SIZE_MAX + CIPHER_OVERHEAD);
	uint8_t ntag[STORE_TAG_BYTES], ad[XATTR_AD_BYTES];
	uint32_t v = keyring_active(fs->kr);
	struct store_xattr x;
	int rc;

	if (!r.name || !r.value || !cn || !cv) {
		rc = -ENOMEM;
		goto out;
	}
	rc = store_xattr_each(fs->s, in->ino, rekey_find, &r);
	if (r.err)
		rc = r.err;
	if (rc < 0 || !r.found)
		goto out;
	r.name[r.namelen] = 0;
	if ((rc = store_xattr_delete(fs->s, in->ino, tag)) ||
	    (rc = xkey(fs, in, v, (char *)r.name, ntag)))
		goto out;
	cipher_seal(cn, r.name, r.namelen, ad, xad(ad, in, ntag, v, 'n'),
	            FS_KEY(fs, FS_KEY_XATTR));
	cipher_seal(cv, r.value, r.valuelen, ad, xad(ad, in, ntag, v, 'v'),
	            FS_KEY(fs, FS_KEY_XATTR));
	x = (struct store_xattr){ .ino = in->ino, .key_version = v, .name = cn,
	                          .namelen = r.namelen + CIPHER_OVERHEAD,
	                          .value = cv,
	                          .valuelen = r.valuelen + CIPHER_OVERHEAD };
	memcpy(x.tag, ntag, sizeof ntag);
	rc = store_xattr_put(fs->s, &x);
out:
	xwipe(fs);
	if (r.value)
		cipher_wipe(r.value, FS_XATTR_SIZE_MAX);
	free(r.name);
	free(r.value);
	free(cn);
	free(cv);
	return rc < 0 ? rc : 0;
}

int xattr_verify(struct fs *fs, const struct store_inode *in)
{
	struct list_ctx l = { fs, in, NULL, 0, 0, 0 };
	int rc = store_xattr_each(fs->s, in->ino, list_one, &l);

	xwipe(fs);
	if (l.err)
		return l.err;
	return rc < 0 ? rc : 0;
}
