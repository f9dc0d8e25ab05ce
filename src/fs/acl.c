/*
 * acl.c - POSIX ACLs. Once custodyfs declares FUSE_CAP_POSIX_ACL the
 * kernel checks access against the ACLs itself (with default_permissions)
 * and stops doing what ext4 does around them: it no longer applies the
 * umask (FUSE_CAP_DONT_MASK: the umask comes with the request), inherits
 * no default ACL, keeps no mode in step with an ACL and no ACL with a
 * chmod. This file does those, on the two xattrs system.posix_acl_access
 * and system.posix_acl_default, which are stored sealed and covered by
 * the inode's xattr digest like any other (xattr.c).
 *
 * The value is the kernel's xattr form: a 4-byte version (2), then 8-byte
 * entries (tag 16 bits, permissions 16 bits, id 32 bits, little endian) in
 * the order user::, user:ID..., group::, group:ID..., mask::, other::.
 * Each rule below is the one of fs/posix_acl.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "fs_internal.h"

#define ACL_VERSION 2
#define ACL_HDR 4
#define ACL_ENT 8

enum {
	TAG_USER_OBJ = 0x01, TAG_USER = 0x02, TAG_GROUP_OBJ = 0x04,
	TAG_GROUP = 0x08, TAG_MASK = 0x10, TAG_OTHER = 0x20,
};

struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

struct acl {
	struct acl_ent *e;
	size_t n;
};

int acl_name(const char *name)
{
	return !strcmp(name, ACL_NAME_ACCESS) || !strcmp(name, ACL_NAME_DEFAULT);
}

/* Decode and validate (posix_acl_valid's order): 0 or -EINVAL. */
static int acl_parse(const uint8_t *v, size_t size, struct acl *a)
{
	enum { S_UO, S_U, S_G, S_O, S_DONE } state = S_UO;
	int needs_mask = 0;

	a->e = NULL;
	a->n = 0;
	if (size < ACL_HDR || (size - ACL_HDR) % ACL_ENT ||
	    get_le32(v) != ACL_VERSION)
		return -EINVAL;
	a->n = (size - ACL_HDR) / ACL_ENT;
	if (!a->n || !(a->e = calloc(a->n, sizeof *a->e)))
		return a->n ? -ENOMEM : -EINVAL;
	for (size_t i = 0; i < a->n; i++) {
		const uint8_t *p = v + ACL_HDR + i * ACL_ENT;
		struct acl_ent *e = &a->e[i];

		e->tag = get_le16(p);
		e->perm = get_le16(p + 2);
		e->id = get_le32(p + 4);
		if (e->perm & ~7u)
			goto bad;
		switch (e->tag) {
		case TAG_USER_OBJ:
			if (state != S_UO)
				goto bad;
			state = S_U;
			break;
		case TAG_USER:
			if (state != S_U)
				goto bad;
			needs_mask = 1;
			break;
		case TAG_GROUP_OBJ:
			if (state != S_U)
				goto bad;
			state = S_G;
			break;
		case TAG_GROUP:
			if (state != S_G)
				goto bad;
			needs_mask = 1;
			break;
		case TAG_MASK:
			if (state != S_G)
				goto bad;
			state = S_O;
			break;
		case TAG_OTHER:
			if (state != S_O && !(state == S_G && !needs_mask))
				goto bad;
			state = S_DONE;
			break;
		default:
			goto bad;
		}
	}
	if (state == S_DONE)
		return 0;
bad:
	free(a->e);
	a->e = NULL;
	return -EINVAL;
}

static uint8_t *acl_encode(const struct acl *a, size_t *len)
{
	uint8_t *v = malloc(ACL_HDR + a->n * ACL_ENT);

	if (!v)
		return NULL;
	put_le32(v, ACL_VERSION);
	for (size_t i = 0; i < a->n; i++) {
		uint8_t *p = v + ACL_HDR + i * ACL_ENT;
		put_le16(p, a->e[i].tag);
		put_le16(p + 2, a->e[i].perm);
		put_le32(p + 4, a->e[i].id);
	}
	*len = ACL_HDR + a->n * ACL_ENT;
	return v;
}

/* posix_acl_equiv_mode: the permission bits the ACL gives (into *mode);
 * 0 if the ACL says no more than those bits, 1 if it says more. */
static int equiv_mode(const struct acl *a, uint32_t *mode)
{
	uint32_t m = 0;
	int not_equiv = 0;

	for (size_t i = 0; i < a->n; i++) {
		const struct acl_ent *e = &a->e[i];
		switch (e->tag) {
		case TAG_USER_OBJ:
			m |= (uint32_t)(e->perm & 7) << 6;
			break;
		case TAG_GROUP_OBJ:
			m |= (uint32_t)(e->perm & 7) << 3;
			break;
		case TAG_OTHER:
			m |= e->perm & 7;
			break;
		case TAG_MASK:
			m = (m & ~(uint32_t)S_IRWXG) | (uint32_t)(e->perm & 7) << 3;
			not_equiv = 1;
			break;
		default:
			not_equiv = 1;
		}
	}
	*mode = (*mode & ~(uint32_t)0777) | m;
	return not_equiv;
}

/* posix_acl_create_masq: the ACL and the create mode mask each other. */
static int create_masq(struct acl *a, uint32_t *mode)
{
	struct acl_ent *group = NULL, *mask = NULL;
	uint32_t m = *mode;
	int not_equiv = 0;

	for (size_t i = 0; i < a->n; i++) {
		struct acl_ent *e = &a->e[i];
		switch (e->tag) {
		case TAG_USER_OBJ:
			e->perm &= (m >> 6) & 7;
			m &= ((uint32_t)e->perm << 6) | ~(uint32_t)S_IRWXU;
			break;
		case TAG_USER:
		case TAG_GROUP:
			not_equiv = 1;
			break;
		case TAG_GROUP_OBJ:
			group = e;
			break;
		case TAG_OTHER:
			e->perm &= m & 7;
			m &= (uint32_t)e->perm | ~(uint32_t)S_IRWXO;
			break;
		case TAG_MASK:
			mask = e;
			not_equiv = 1;
			break;
		}
	}
	if (mask) {
		mask->perm &= (m >> 3) & 7;
		m &= ((uint32_t)mask->perm << 3) | ~(uint32_t)S_IRWXG;
	} else if (group) {
		group->perm &= (m >> 3) & 7;
		m &= ((uint32_t)group->perm << 3) | ~(uint32_t)S_IRWXG;
	}
	*mode = m;
	return not_equiv;
}

/* __posix_acl_chmod: owner, mask (or group) and other follow mode. */
static void chmod_masq(struct acl *a, uint32_t mode)
{
	struct acl_ent *group = NULL, *mask = NULL;

	for (size_t i = 0; i < a->n; i++) {
		struct acl_ent *e = &a->e[i];
		switch (e->tag) {
		case TAG_USER_OBJ:
			e->perm = (mode >> 6) & 7;
			break;
		case TAG_GROUP_OBJ:
			group = e;
			break;
		case TAG_MASK:
			mask = e;
			break;
		case TAG_OTHER:
			e->perm = mode & 7;
			break;
		}
	}
	if (mask)
		mask->perm = (mode >> 3) & 7;
	else if (group)
		group->perm = (mode >> 3) & 7;
}

/* The ACL stored under name on in: 1 (parsed into *a, raw copy in *raw
 * when raw is not NULL), 0 none, or -errno (-EIO: what is stored does not
 * parse). */
static int acl_load(struct fs *fs, const struct store_inode *in,
                    const char *name, struct acl *a, uint8_t **raw,
                    size_t *rawlen)
{
	ssize_t n = xattr_get(fs, in, name, NULL, 0);
	uint8_t *v;
	int rc;

	if (n == -ENODATA)
		return 0;
	if (n < 0)
		return (int)n;
	if (!(v = malloc(n ? (size_t)n : 1)))
		return -ENOMEM;
	if ((n = xattr_get(fs, in, name, v, (size_t)n)) < 0) {
		free(v);
		return (int)n;
	}
	if ((rc = acl_parse(v, (size_t)n, a))) {
		free(v);
		return rc == -EINVAL ? -EIO : rc;
	}
	if (raw) {
		*raw = v;
		*rawlen = (size_t)n;
	} else
		free(v);
	return 1;
}

int acl_create(struct fs *fs, const struct store_inode *dir, uint32_t *mode,
               uint32_t umask, struct acl_new *out)
{
	struct acl a;
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int rc;

	memset(out, 0, sizeof *out);
	rc = acl_load(fs, dir, ACL_NAME_DEFAULT, &a, &raw, &rawlen);
	if (rc <= 0) {
		if (rc == 0)
			*mode &= ~(umask & 0777); /* no default ACL: the umask */
		return rc;
	}
	if (create_masq(&a, mode) &&
	    !(out->access = acl_encode(&a, &out->access_len)))
		rc = -ENOMEM;
	free(a.e);
	if (rc >= 0 && S_ISDIR(*mode)) {
		out->dflt = raw; /* a directory inherits the default ACL too */
		out->dflt_len = rawlen;
		raw = NULL;
	}
	free(raw);
	if (rc < 0) {
		acl_new_free(out);
		return rc;
	}
	return 0;
}

int acl_inherit(struct fs *fs, struct store_inode *in,
                const struct acl_new *n)
{
	int rc = 0;

	if (n->access)
		rc = xattr_set(fs, in, ACL_NAME_ACCESS, n->access, n->access_len, 0);
	if (!rc && n->dflt)
		rc = xattr_set(fs, in, ACL_NAME_DEFAULT, n->dflt, n->dflt_len, 0);
	return rc;
}

void acl_new_free(struct acl_new *n)
{
	free(n->access);
	free(n->dflt);
	memset(n, 0, sizeof *n);
}

int acl_set(struct fs *fs, struct store_inode *in, const char *name,
            const void *value, size_t size, int flags)
{
	struct acl a;
	uint32_t mode = in->mode;
	int rc, xflags = flags & (FS_XATTR_CREATE | FS_XATTR_REPLACE);

	if (strcmp(name, ACL_NAME_ACCESS)) {
		/* a default ACL: directories only */
		if (!S_ISDIR(in->mode))
			return -EACCES;
		if ((rc = acl_parse(value, size, &a)))
			return rc;
		free(a.e);
		return xattr_set(fs, in, name, value, size, xflags);
	}
	if ((rc = acl_parse(value, size, &a)))
		return rc;
	/* posix_acl_update_mode: the mode takes the ACL's bits; an ACL that
	 * says no more than the mode is not kept */
	if (equiv_mode(&a, &mode))
		rc = xattr_set(fs, in, name, value, size, xflags);
	else if ((rc = xattr_remove(fs, in, name)) == -ENODATA)
		rc = (xflags & FS_XATTR_REPLACE) ? -ENODATA : 0;
	free(a.e);
	if (rc)
		return rc;
	if (flags & FS_XATTR_ACL_KILL_SGID)
		mode &= ~(uint32_t)S_ISGID;
	in->mode = mode;
	inode_touch(in, 0, 0, 1);
	return 0;
}

int acl_chmod(struct fs *fs, struct store_inode *in)
{
	struct acl a;
	uint8_t *v;
	size_t len;
	int rc = acl_load(fs, in, ACL_NAME_ACCESS, &a, NULL, NULL);

	if (rc <= 0)
		return rc;
	chmod_masq(&a, in->mode);
	v = acl_encode(&a, &len);
	free(a.e);
	if (!v)
		return -ENOMEM;
	rc = xattr_set(fs, in, ACL_NAME_ACCESS, v, len, 0);
	free(v);
	return rc;
}
