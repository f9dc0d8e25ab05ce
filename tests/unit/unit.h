/*
 * unit.h - a tiny assertion kit for the unit tests (tests/unit/test_*.c).
 * Each CHECK counts; main() ends with UNIT_END, which prints
 * "<name>: N passed, M failed" and returns non-zero on any failure.
 *
 * A test that defines UNIT_WITH_STORE before including this file also gets
 * unit_env: a temp dir with a cheap configuration, passfiles and local
 * state, and a real store made the way `custodyctl init` makes one
 * (unlock_create with fs_format), logins (unlock_store) and the admin's
 * audited transaction around key administration.
 */
#ifndef CUSTODY_UNIT_H
#define CUSTODY_UNIT_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int unit_pass, unit_fail;

#define CHECK(cond) do { \
	if (cond) unit_pass++; \
	else { unit_fail++; fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a == _b) unit_pass++; \
	else { unit_fail++; fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", \
	                            __FILE__, __LINE__, #a, #b, _a, _b); } \
} while (0)

/* Remove a store file and whatever SQLite keeps beside it. */
static inline void rm_store(const char *p)
{
	static const char *const side[] = { "-wal", "-shm", "-journal" };
	char b[4096];

	unlink(p);
	for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
		snprintf(b, sizeof b, "%s%s", p, side[i]);
		unlink(b);
	}
}

#define UNIT_END(name) do { \
	printf("%s: %d passed, %d failed\n", name, unit_pass, unit_fail); \
	return unit_fail ? 1 : 0; \
} while (0)

#ifdef UNIT_WITH_STORE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "auth.h"
#include "cipher.h"
#include "config.h"
#include "fs.h"
#include "keyadmin.h"
#include "passphrase.h"
#include "rights.h"
#include "session.h"
#include "unlock.h"

#define UNIT_ADMIN_PASS "admin-passphrase"

struct unit_env {
	char dir[64];
	char store[128];
	char conf[128];
	char pass[128];         /* the admin's passfile */
	struct unlock_opts o;   /* the admin, as custodyctl uses them */
};

static inline int unit_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t n = strlen(text);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, text, n) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -EIO;
}

/* A 0600 passfile dir/NAME.pass holding pass; its path into out. */
static inline int unit_passfile(const struct unit_env *e, const char *name,
                                const char *pass, char *out, size_t cap)
{
	char line[256];

	snprintf(out, cap, "%s/%s.pass", e->dir, name);
	snprintf(line, sizeof line, "%s\n", pass);
	return unit_write_file(out, line);
}

/* Options for logging in as user with passfile (the caller keeps *o
 * alive as long as the struct unlocked it is used for). */
static inline void unit_opts(const struct unit_env *e, struct unlock_opts *o,
                             const char *user, const char *passfile)
{
	memset(o, 0, sizeof *o);
	o->prog = "unit";
	o->store = e->store;
	o->user = user;
	o->passfile = passfile;
	o->config = e->conf;
	o->kind = "ctl";
	o->quiet_state = 1;
}

/* A fresh temp dir with the cheap configuration (Argon2id at its floor,
 * 3 failures lock for 60 s) and local state inside it, under
 * $CFS_UNIT_TMPDIR (an absolute path of at most 24 bytes) or /var/tmp. */
static inline int unit_env_init(struct unit_env *e, const char *name)
{
	const char *tmp = getenv("CFS_UNIT_TMPDIR");
	char state[128];

	memset(e, 0, sizeof *e);
	if (!tmp || tmp[0] != '/' || strlen(tmp) > 24)
		tmp = "/var/tmp";
	snprintf(e->dir, sizeof e->dir, "%s/cfs-unit-%s.XXXXXX", tmp, name);
	if (!mkdtemp(e->dir))
		return -errno;
	snprintf(state, sizeof state, "%s/state", e->dir);
	setenv("XDG_STATE_HOME", state, 1);
	snprintf(e->store, sizeof e->store, "%s/s.db", e->dir);
	snprintf(e->conf, sizeof e->conf, "%s/test.ini", e->dir);
	if (unit_write_file(e->conf, "[kdf]\nopslimit = 1\nmemlimit = 8K\n"
	                    "[store]\nbusy_timeout = 2s\n"
	                    "[auth]\nmax_failures = 3\nlockout = 60s\n"))
		return -EIO;
	if (unit_passfile(e, "admin", UNIT_ADMIN_PASS, e->pass, sizeof e->pass))
		return -EIO;
	unit_opts(e, &e->o, "admin", e->pass);
	return 0;
}

static inline int unit_rm_one(const char *p, const struct stat *sb, int flag,
                              struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	return remove(p);
}

/* Remove the temp dir and everything in it. */
static inline int unit_env_done(struct unit_env *e)
{
	return nftw(e->dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The login policy of test stores: the cheapest Argon2id libsodium takes. */
static inline void unit_policy(struct rights_policy *p)
{
	memset(p, 0, sizeof *p);
	p->kdf_opslimit = cipher_pwhash_opslimit_min();
	p->kdf_memlimit = cipher_pwhash_memlimit_min();
	p->max_failures = 3;
	p->lockout_s = 60;
	p->block_size = 4096;
}

/* pw in locked memory (passphrase_free releases it). */
static inline int unit_pw(struct passphrase *pw, const char *text)
{
	pw->len = strlen(text);
	pw->buf = secmem_alloc(pw->len + 1);
	if (!pw->buf)
		return -ENOMEM;
	memcpy(pw->buf, text, pw->len + 1);
	return 0;
}

static inline int unit_format_root(struct unlocked *u, struct ledger_state *st)
{
	return fs_format(u, 0, 0, u->r->policy.block_size, st);
}

/* The store, as custodyctl init makes it, with the admin unlocked in u
 * (policy NULL: unit_policy). recovery (may be NULL) receives the
 * recovery secret (KEYADMIN_RECOVERY_BYTES). 0 or -EIO. */
static inline int unit_create(struct unit_env *e,
                              const struct rights_policy *policy,
                              struct unlocked *u, uint8_t *recovery)
{
	struct rights_policy p;
	struct passphrase pw;
	uint8_t *rec = secmem_alloc(KEYADMIN_RECOVERY_BYTES);
	int st;

	if (!rec || unit_pw(&pw, UNIT_ADMIN_PASS)) {
		secmem_free(rec);
		return -ENOMEM;
	}
	if (!policy) {
		unit_policy(&p);
		policy = &p;
	}
	st = unlock_create(&e->o, policy, &pw, rec, unit_format_root, u);
	if (!st && recovery)
		memcpy(recovery, rec, KEYADMIN_RECOVERY_BYTES);
	passphrase_free(&pw);
	secmem_free(rec);
	return st ? -EIO : 0;
}

/* Log in with o (unit_opts): the exit status unlock_store gives. */
static inline int unit_login(const struct unlock_opts *o, struct unlocked *u)
{
	return unlock_store(o, 0, u);
}

/* Add a user as the admin u does it (custodyctl user add): credential,
 * roster, grants, the credentials tree, one commit. *id receives theirs. */
static inline int unit_user_add(struct unlocked *u, const char *name,
                                enum role role, const char *pass, int64_t *id)
{
	struct rights_policy pol;
	struct passphrase pw;
	int rc;

	*id = 0;
	if (unit_pw(&pw, pass))
		return -ENOMEM;
	if ((rc = unlock_begin(u)) < 0) {
		passphrase_free(&pw);
		return rc;
	}
	auth_policy(&u->r->policy, &u->cfg, &pol);
	rc = keyadmin_user_add(u->s, u->r, u->ss, &pol, name, role, &pw, id);
	passphrase_free(&pw);
	if (!rc)
		rc = keyadmin_sign(u->s, u->r, u->ss);
	if (!rc)
		rc = unlock_cred_changed_id(u, *id);
	return unlock_finish(u, "user add", name, rc);
}

/* Remove a user as the admin u does it (custodyctl user del). */
static inline int unit_user_remove(struct unlocked *u, int64_t id)
{
	int rc = unlock_begin(u);

	if (rc < 0)
		return rc;
	rc = keyadmin_user_remove(u->s, u->r, u->ss, id);
	if (!rc)
		rc = keyadmin_sign(u->s, u->r, u->ss);
	if (!rc)
		rc = unlock_cred_changed_id(u, id);
	return unlock_finish(u, "user del", "", rc);
}

/* A new active key version, as custodyctl key rotate makes it. */
static inline int unit_rotate(struct unlocked *u, uint32_t *to)
{
	uint32_t from = 0;
	int rc = unlock_begin(u);

	*to = 0;
	if (rc < 0)
		return rc;
	rc = keyadmin_rotate(u->s, u->r, u->ss, 0, &from, to);
	if (!rc)
		rc = keyadmin_sign(u->s, u->r, u->ss);
	return unlock_finish(u, "key rotate", "", rc);
}
#endif /* UNIT_WITH_STORE */

#endif
