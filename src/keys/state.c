/*
 * state.c - the local freshness state file (state.h).
 *
 * Format, one record per line, every field checked on read:
 *   custodyfs-state 2
 *   authority EPOCH PK-HEX
 *   roster COUNTER
 *   commit INSTANCE-HEX SEQ HASH-HEX
 *   path INSTANCE-HEX PATH-HEX
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
	int64_t seq;
	uint8_t hash[32];
};

struct st_path {
	uint8_t instance[16];
	char *path;
};

struct state {
	char dir[PATH_MAX];
	char file[PATH_MAX];
	uint32_t epoch;          /* 0: none */
	uint8_t pk[32];
	uint64_t roster;
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

static void merge_commit(struct state *st, const uint8_t instance[16],
                         int64_t seq, const uint8_t hash[32])
{
	struct st_commit *c = find_commit(st, instance);

	if (c) {
		if (seq > c->seq) {
			c->seq = seq;
			memcpy(c->hash, hash, 32);
			st->changed = 1;
		}
		return;
	}
	if (st->ncommits >= STATE_MAX_ENTRIES)
		return;
	c = realloc(st->commits, (st->ncommits + 1) * sizeof *c);
	if (!c)
		return;
	st->commits = c;
	c = &st->commits[st->ncommits++];
	memcpy(c->instance, instance, 16);
	c->seq = seq;
	memcpy(c->hash, hash, 32);
	st->changed = 1;
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

/* Parse the file at path into st (merging). 0, -ENOENT, -EBADMSG. */
static int state_read(struct state *st, const char *path, int override_paths)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char line[8192], a[8192], b[8192], c[8192];
	FILE *f;
	int rc = 0, n = 0;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if (!(f = fdopen(fd, "r"))) {
		close(fd);
		return -ENOMEM;
	}
	while (fgets(line, sizeof line, f)) {
		uint8_t inst[16], hash[32], pk[32];
		unsigned long long u;
		long long seq;
		char *nl = strchr(line, '\n');

		if (!nl) {
			rc = -EBADMSG;
			break;
		}
		*nl = 0;
		if (n++ == 0) {
			if (strcmp(line, "custodyfs-state 2")) {
				rc = -EBADMSG;
				break;
			}
			continue;
		}
		if (sscanf(line, "authority %llu %8191s", &u, a) == 2 &&
		    u >= 1 && u <= UINT32_MAX && !hexfield(a, pk, 32)) {
			if ((uint32_t)u > st->epoch) {
				st->epoch = (uint32_t)u;
				memcpy(st->pk, pk, 32);
			}
		} else if (sscanf(line, "roster %llu", &u) == 1) {
			if (u > st->roster)
				st->roster = u;
		} else if (sscanf(line, "commit %8191s %lld %8191s", a, &seq, b) == 3 &&
		           !hexfield(a, inst, 16) && !hexfield(b, hash, 32) &&
		           seq >= 1) {
			merge_commit(st, inst, seq, hash);
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
		snprintf(why, whylen, "cannot create '%s': %s (set XDG_STATE_HOME)",
		         st->dir, strerror(-rc));
		free(st);
		return rc;
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

int state_authority(const struct state *st, uint32_t *epoch, uint8_t pk[32])
{
	if (!st->epoch)
		return -ENOENT;
	*epoch = st->epoch;
	memcpy(pk, st->pk, 32);
	return 0;
}

uint64_t state_roster(const struct state *st)
{
	return st->roster;
}

int state_commit(const struct state *st, const uint8_t instance[16],
                 int64_t *seq, uint8_t hash[32])
{
	const struct st_commit *c = find_commit(st, instance);

	if (!c)
		return -ENOENT;
	*seq = c->seq;
	memcpy(hash, c->hash, 32);
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

void state_set_authority(struct state *st, uint32_t epoch,
                         const uint8_t pk[32])
{
	if (epoch > st->epoch) {
		st->epoch = epoch;
		memcpy(st->pk, pk, 32);
		st->changed = 1;
	}
}

void state_set_roster(struct state *st, uint64_t counter)
{
	if (counter > st->roster) {
		st->roster = counter;
		st->changed = 1;
	}
}

void state_set_commit(struct state *st, const uint8_t instance[16],
                      int64_t seq, const uint8_t hash[32])
{
	merge_commit(st, instance, seq, hash);
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
	if (state_read(mine, st->file, 1) == 0) {
		state_set_authority(st, mine->epoch, mine->pk);
		state_set_roster(st, mine->roster);
		for (size_t i = 0; i < mine->ncommits; i++)
			merge_commit(st, mine->commits[i].instance, mine->commits[i].seq,
			             mine->commits[i].hash);
		for (size_t i = 0; i < mine->npaths; i++)
			merge_path(st, mine->paths[i].path, mine->paths[i].instance, 0);
	}
	state_free(mine);
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
	fprintf(f, "custodyfs-state 2\n");
	if (st->epoch) {
		cipher_hex(hex, st->pk, 32);
		fprintf(f, "authority %u %s\n", st->epoch, hex);
	}
	fprintf(f, "roster %llu\n", (unsigned long long)st->roster);
	for (size_t i = 0; i < st->ncommits; i++) {
		char ih[33], hh[65];
		cipher_hex(ih, st->commits[i].instance, 16);
		cipher_hex(hh, st->commits[i].hash, 32);
		fprintf(f, "commit %s %lld %s\n", ih, (long long)st->commits[i].seq,
		        hh);
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
	else
		st->changed = 0;
out:
	flock(lfd, LOCK_UN);
	close(lfd);
	return rc;
}
