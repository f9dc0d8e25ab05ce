/*
 * refs.c - the kernel's references to inodes: lookups not yet forgotten
 * and open handles. An unlinked inode lives until both are gone.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_internal.h"

struct fs_ref *fs_ref_get(struct fs *fs, uint64_t ino, int create)
{
	struct fs_ref **b = &fs->refs[ino % FS_REF_BUCKETS], *r;

	for (r = *b; r; r = r->next)
		if (r->ino == ino)
			return r;
	if (!create)
		return NULL;
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->ino = ino;
	r->next = *b;
	*b = r;
	return r;
}

void fs_ref_put_if_unused(struct fs *fs, struct fs_ref *r)
{
	struct fs_ref **p;

	if (!r || r->nlookup || r->nopen)
		return;
	for (p = &fs->refs[r->ino % FS_REF_BUCKETS]; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			free(r);
			return;
		}
}

void fs_ref_lookup(struct fs *fs, uint64_t ino)
{
	struct fs_ref *r = fs_ref_get(fs, ino, 1);
	if (r)
		r->nlookup++;
}

int fs_ref_held(struct fs *fs, uint64_t ino)
{
	struct fs_ref *r = fs_ref_get(fs, ino, 0);
	return r && (r->nlookup || r->nopen);
}

size_t fs_referenced(struct fs *fs, uint64_t *out, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&fs->lock);
	for (int i = 0; i < FS_REF_BUCKETS; i++)
		for (struct fs_ref *r = fs->refs[i]; r; r = r->next) {
			if (n < cap)
				out[n] = r->ino;
			n++;
		}
	pthread_mutex_unlock(&fs->lock);
	return n;
}

int fs_inos_room(struct fs_inos *l)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		uint64_t *p = realloc(l->v, nc * sizeof *p);
		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = nc;
	}
	return 0;
}

int fs_inos_add(struct fs_inos *l, uint64_t ino)
{
	int rc = fs_inos_room(l);
	if (!rc)
		l->v[l->n++] = ino;
	return rc;
}

void fs_inos_free(struct fs_inos *l)
{
	free(l->v);
	*l = (struct fs_inos){ NULL, 0, 0 };
}

void fs_refs_free(struct fs *fs)
{
	for (int i = 0; i < FS_REF_BUCKETS; i++) {
		struct fs_ref *r = fs->refs[i], *n;
		for (; r; r = n) {
			n = r->next;
			free(r);
		}
		fs->refs[i] = NULL;
	}
}
