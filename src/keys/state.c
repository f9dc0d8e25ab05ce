/*
 * state.c - the local freshness state file (state.h).
 *
 * Format, one record per line, every field checked on read:
 *   custodyfs-state 3
 *   commit INSTANCE-HEX SEQ HASH-HEX ROSTER EPOCH PK-HEX
 *   path INSTANCE-HEX PATH-HEX
 * Version 2 (before the roster and authority were per instance) is read
 * too: its "commit INSTANCE-HEX SEQ HASH-HEX" lines, its "path" lines, and
 * its store-wide "authority" and "roster" lines, which are dropped (they
 * belonged to no instance; the commit ancestry still protects).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cipher.h"
#include "state.h"

#define STATE_MAX_ENTRIES 4096

struct st_commit {
	uint8_t instance[16];
	struct state_seen seen;
	int rebased;             /* state_rebase: the file's does not win */
};

struct st_path {
	uint8_t instance[16];
	char *path;
};

struct state {
	char dir[PATH_MAX];
	char file[PATH_MAX];
	struct st_commit *commits;
	size_t ncommits;
	struct st_path *paths;
	size_t npaths;
	int changed;
};

static int state_dir(char *buf, size_t cap, char *why, size_t whylen)
{
	const char *x = getenv("XDG_STATE_HOME");
	struct passwd *pw;
	const char *home;

	if (x && x[0] == '/')
		return snprintf(buf, cap, "%s/custodyfs", x) >= (int)cap ? -ENAMETOOLONG
		                                                         : 0;
	home = getenv("HOME");
	if (!home || home[0] != '/') {
		pw = getpwuid(getuid());
		home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
	}
	if (!home) {
		snprintf(why, whylen, "no home directory and no XDG_STATE_HOME for"
		         " uid %u", (unsigned)getuid());
		return -ENOENT;
	}
	return snprintf(buf, cap, "%s/.local/state/custodyfs", home) >= (int)cap
	               ? -ENAMETOOLONG : 0;
}

static int hexfield(const char *hex, uint8_t *out, size_t len)
{
	return cipher_unhex(out, len, hex);
}

static struct st_commit *find_commit(const struct state *st,
                                     const uint8_t instance[16])
{
	for (size_t i = 0; i < st->ncommits; i++)
		if (!memcmp(st->commits[i].instance, instance, 16))
			return &st->commits[i];
	return NULL;
}

static struct st_path *find_path(const struct state *st, const char *path)
{
	for (size_t i = 0; i < st->npaths; i++)
		if (!strcmp(st->paths[i].path, path))
			return &st->paths[i];
	return NULL;
}

/* Merge what was seen of an instance: each field only forwards. */
static void merge_seen(struct state *st, struct st_commit *c,
                       const struct state_seen *n)
{
	struct state_seen *o = &c->seen;

	if (n->seq > o->seq) {
		o->seq = n->seq;
		memcpy(o->hash, n->hash, 32);
		st->changed = 1;
	}
	if (n->roster > o->roster) {
		o->roster = n->roster;
		st->changed = 1;
	}
	if (n->epoch > o->epoch) {
		o->epoch = n->epoch;
		memcpy(o->pk, n->pk, 32);
		st->changed = 1;
	}
}

/* The entry of an instance, added (empty) if there is none; NULL when
 * the table is full or memory is short. */
static struct st_commit *get_commit(struct state *st,
                                    const uint8_t instance[16])
{
	struct st_commit *c = find_commit(st, instance);

	if (c)
		return c;
	if (st->ncommits >= STATE_MAX_ENTRIES)
		return NULL;
	c = realloc(st->commits, (st->ncommits + 1) * sizeof *c);
	if (!c)
		return NULL;
	st->commits = c;
	c = &st->commits[st->ncommits++];
	memset(c, 0, sizeof *c);
	memcpy(c->instance, instance, 16);
	st->changed = 1;
	return c;
}

static void merge_commit(struct state *st, const uint8_t instance[16],
                         const struct state_seen *seen, int from_file)
{
	struct st_commit *c = find_commit(st, instance);

	if (c && from_file && c->rebased)
		return; /* re-based on purpose: what the file says is what we
		         * accepted to go back from */
	if (!c && !(c = get_commit(st, instance)))
		return;
	merge_seen(st, c, seen);
}

static void merge_path(struct state *st, const char *path,
                       const uint8_t instance[16], int override)
{
	struct st_path *p = find_path(st, path);

	if (p) {
		if (override && memcmp(p->instance, instance, 16)) {
			memcpy(p->instance, instance, 16);
			st->changed = 1;
		}
		return;
	}
	if (st->npaths >= STATE_MAX_ENTRIES)
		return;
	p = realloc(st->paths, (st->npaths + 1) * sizeof *p);
	if (!p)
		return;
	st->paths = p;
	p = &st->paths[st->npaths];
	if (!(p->path = strdup(path)))
		return;
	memcpy(p->instance, instance, 16);
	st->npaths++;
	st->changed = 1;
}

/* Parse the file at path into st (merging). 0, -ENOENT (no file),
 * -EBADMSG (not a state file), or -errno (it cannot be read). */
static int state_read(struct state *st, const char *path, int override_paths)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char line[8192], a[8192], b[8192], c[8192];
	struct stat sb;
	FILE *f;
	int rc = 0, n = 0, version = 0, v1 = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
		close(fd);
		return rc;
	}
	if (!(f = fdopen(fd, "r"))) {
		close(fd);
		return -ENOMEM;
	}
	while (fgets(line, sizeof line, f)) {
		struct state_seen seen;
		uint8_t inst[16];
		unsigned long long u, roster, epoch;
		long long seq;
		char *nl = strchr(line, '\n');
		int end = 0;

		if (!nl) {
			rc = -EBADMSG;
			break;
		}
		*nl = 0;
		if (v1) {
			rc = -EBADMSG;
			break;
		}
		if (n++ == 0) {
			/* custodyfs 0.1 kept a mount's generation counter, one
			 * decimal line, at this same path; a store upgraded from
			 * format 1 keeps its id: nothing recorded yet, and the
			 * next save replaces it */
			if (line[0] && strlen(line) <= 20 &&
			    strspn(line, "0123456789") == strlen(line)) {
				v1 = 1;
				continue;
			}
			if (!strcmp(line, "custodyfs-state 3"))
				version = 3;
			else if (!strcmp(line, "custodyfs-state 2"))
				version = 2;
			else {
				rc = -EBADMSG;
				break;
			}
			continue;
		}
		memset(&seen, 0, sizeof seen);
		if (version == 3 && !strchr(line, '-') && /* no negative counts */
		    sscanf(line, "commit %8191s %lld %8191s %llu %llu %8191s%n", a,
		           &seq, b, &roster, &epoch, c, &end) == 6 &&
		    line[end] == 0 && !hexfield(a, inst, 16) &&
		    !hexfield(b, seen.hash, 32) && seq >= 1 && epoch <= UINT32_MAX &&
		    !hexfield(c, seen.pk, 32)) {
			seen.seq = seq;
			seen.roster = roster;
			seen.epoch = (uint32_t)epoch;
			merge_commit(st, inst, &seen, 1);
		} else if (version == 2 &&
		           sscanf(line, "commit %8191s %lld %8191s%n", a, &seq, b,
		                  &end) == 3 && line[end] == 0 &&
		           !hexfield(a, inst, 16) && !hexfield(b, seen.hash, 32) &&
		           seq >= 1) {
			seen.seq = seq;
			merge_commit(st, inst, &seen, 1);
		} else if (version == 2 &&
		           ((sscanf(line, "authority %llu %8191s", &u, a) == 2 &&
		             u >= 1 && u <= UINT32_MAX && !hexfield(a, seen.pk, 32)) ||
		            sscanf(line, "roster %llu", &u) == 1)) {
			/* store-wide in version 2: no instance to give them to */
		} else if (sscanf(line, "path %8191s %8191s", a, b) == 2 &&
		           !hexfield(a, inst, 16) && strlen(b) % 2 == 0 &&
		           strlen(b) / 2 < sizeof c &&
		           !cipher_unhex((uint8_t *)c, strlen(b) / 2, b)) {
			c[strlen(b) / 2] = 0;
			if (strlen(c) == strlen(b) / 2)
				merge_path(st, c, inst, override_paths);
		} else {
			rc = -EBADMSG;
			break;
		}
	}
	if (!rc && ferror(f))
		rc = -EIO;
	fclose(f);
	if (!rc && n == 0)
		rc = -EBADMSG;
	return rc;
}

static int make_dirs(const char *dir);

int state_open(const uint8_t store_id[16], struct state **out, char *why,
               size_t whylen)
{
	struct state *st = calloc(1, sizeof *st);
	char id[33];
	int rc;

	*out = NULL;
	if (why && whylen)
		why[0] = 0;
	if (!st)
		return -ENOMEM;
	if ((rc = state_dir(st->dir, sizeof st->dir, why, whylen))) {
		free(st);
		return rc;
	}
	/* a home that does not exist (a system user's) would drop every
	 * save silently: say so now, once */
	if ((rc = make_dirs(st->dir))) {
		/* no place for state (a home that does not exist): the caller
		 * goes on without rollback detection and says so */
		snprintf(why, whylen, "cannot create '%s': %s (set XDG_STATE_HOME)",
		         st->dir, strerror(-rc));
		free(st);
		return -ENOENT;
	}
	cipher_hex(id, store_id, 16);
	if (strlen(st->dir) + 34 >= sizeof st->file) {
		free(st);
		return -ENAMETOOLONG;
	}
	memcpy(st->file, st->dir, strlen(st->dir));
	st->file[strlen(st->dir)] = '/';
	memcpy(st->file + strlen(st->dir) + 1, id, 33);
	rc = state_read(st, st->file, 1);
	if (rc == -EBADMSG) {
		snprintf(why, whylen, "'%s' is not a custodyfs state file", st->file);
		state_free(st);
		return rc;
	}
	if (rc && rc != -ENOENT) {
		/* it is there but cannot be read: taking it for empty would turn
		 * rollback detection off, and the next save would replace it */
		if (rc == -ELOOP)
			snprintf(why, whylen, "the state file '%s' is a symbolic link,"
			         " which is neither followed nor replaced", st->file);
		else
			snprintf(why, whylen, "cannot read the state file '%s': %s",
			         st->file, strerror(-rc));
		state_free(st);
		return rc;
	}
	st->changed = 0;
	*out = st;
	return 0;
}

void state_free(struct state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->npaths; i++)
		free(st->paths[i].path);
	free(st->paths);
	free(st->commits);
	free(st);
}

const char *state_file(const struct state *st)
{
	return st->file;
}

int state_seen(const struct state *st, const uint8_t instance[16],
               struct state_seen *out)
{
	const struct st_commit *c = find_commit(st, instance);

	if (!c || c->seen.seq < 1)
		return -ENOENT;
	*out = c->seen;
	return 0;
}

int state_path(const struct state *st, const char *path,
               uint8_t instance[16])
{
	const struct st_path *p = find_path(st, path);

	if (!p)
		return -ENOENT;
	memcpy(instance, p->instance, 16);
	return 0;
}

void state_set_seen(struct state *st, const uint8_t instance[16],
                    const struct state_seen *seen)
{
	merge_commit(st, instance, seen, 0);
}

void state_rebase(struct state *st, const uint8_t instance[16],
                  const struct state_seen *seen)
{
	struct st_commit *c = get_commit(st, instance);

	if (!c)
		return;
	c->seen = *seen;
	c->rebased = 1;
	st->changed = 1;
}

void state_set_path(struct state *st, const char *path,
                    const uint8_t instance[16])
{
	merge_path(st, path, instance, 1);
}

/* mkdir -p of the state folder, private */
static int make_dirs(const char *dir)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = strchr(buf + 1, '/'); ; p = strchr(p + 1, '/')) {
		if (p)
			*p = 0;
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		if (!p)
			break;
		*p = '/';
	}
	return 0;
}

int state_save(struct state *st)
{
	char tmp[PATH_MAX + 8], lockf[PATH_MAX + 8], hex[2 * 4096 + 1];
	struct state *mine;
	FILE *f;
	int fd, lfd, rc = 0;

	if (!st->changed)
		return 0;
	if ((rc = make_dirs(st->dir)))
		return rc;
	snprintf(lockf, sizeof lockf, "%s/.lock", st->dir);
	lfd = open(lockf, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0)
		return -errno;
	flock(lfd, LOCK_EX);
	/* what other processes wrote meanwhile; ours wins only forwards */
	mine = calloc(1, sizeof *mine);
	if (!mine) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(mine->dir, st->dir, sizeof st->dir);
	rc = state_read(mine, st->file, 1);
	if (rc == 0) {
		for (size_t i = 0; i < mine->ncommits; i++)
			merge_commit(st, mine->commits[i].instance,
			             &mine->commits[i].seen, 1);
		for (size_t i = 0; i < mine->npaths; i++)
			merge_path(st, mine->paths[i].path, mine->paths[i].instance, 0);
	}
	state_free(mine);
	if (rc == -ENOENT)
		rc = 0;
	if (rc)
		goto out; /* never replace a file we cannot read back */
	snprintf(tmp, sizeof tmp, "%s.tmp", st->file);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (!(f = fdopen(fd, "w"))) {
		close(fd);
		unlink(tmp);
		rc = -ENOMEM;
		goto out;
	}
	fprintf(f, "custodyfs-state 3\n");
	for (size_t i = 0; i < st->ncommits; i++) {
		const struct state_seen *e = &st->commits[i].seen;
		char ih[33], hh[65], ph[65];
		if (e->seq < 1)
			continue;
		cipher_hex(ih, st->commits[i].instance, 16);
		cipher_hex(hh, e->hash, 32);
		cipher_hex(ph, e->pk, 32);
		fprintf(f, "commit %s %lld %s %llu %u %s\n", ih, (long long)e->seq,
		        hh, (unsigned long long)e->roster, e->epoch, ph);
	}
	for (size_t i = 0; i < st->npaths; i++) {
		char ih[33];
		size_t n = strlen(st->paths[i].path);
		if (n > 4096)
			continue;
		cipher_hex(ih, st->paths[i].instance, 16);
		cipher_hex(hex, (const uint8_t *)st->paths[i].path, n);
		fprintf(f, "path %s %s\n", ih, hex);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -errno;
	if (fclose(f) != 0 && !rc)
		rc = -EIO;
	if (!rc && rename(tmp, st->file) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	else {
		st->changed = 0;
		for (size_t i = 0; i < st->ncommits; i++)
			st->commits[i].rebased = 0; /* written: forwards from here */
	}
out:
	flock(lfd, LOCK_UN);
	close(lfd);
	return rc;
}
