/*
 * unlock.c - open a store and authenticate its user, with one clear error
 * line and a documented exit status for each way that can fail.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "cipher.h"
#include "keyring.h"
#include "passphrase.h"
#include "store.h"
#include "unlock.h"

void unlock_harden(void)
{
	struct rlimit no = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int unlock_writer_lock(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	close(fd);
	return -EBUSY;
}

const char *unlock_user(const struct unlock_opts *o)
{
	struct passwd *pw;
	const char *u;

	if (o->user)
		return o->user;
	if ((pw = getpwuid(getuid())) && pw->pw_name)
		return pw->pw_name;
	u = getenv("USER");
	return u ? u : "root";
}

const char *unlock_open_error(int rc)
{
	switch (rc) {
	case -ENOENT: return "no such file";
	case -ENOTSUP: return "not a custodyfs store (or its header is damaged)";
	case -EPROTO: return "made by a newer custodyfs: upgrade this binary";
	case -EBUSY: return "locked by another process";
	case -EACCES: return "permission denied";
	case -EEXIST: return "file exists";
	default: return strerror(-rc);
	}
}

int unlock_config(const struct unlock_opts *o, struct config *cfg)
{
	char err[512];

	config_defaults(cfg);
	if (config_load(o->config, cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", o->prog, err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int unlock_store(const struct unlock_opts *o, int store_flags,
                 struct unlocked *u)
{
	struct passphrase pw = { 0 };
	char err[512], prompt[128];
	const char *user = unlock_user(o);
	int64_t locked_for = 0;
	int rc, st;

	memset(u, 0, sizeof *u);
	if ((st = unlock_config(o, &u->cfg)))
		return st;
	if (!o->store) {
		fprintf(stderr, "%s: no store given (-s STORE or $CUSTODY_STORE)\n",
		        o->prog);
		return EXIT_USAGE;
	}
	/* even read-only commands open read-write when they can, so that a
	 * failed login is always counted (lockout cannot be dodged) */
	rc = store_open(o->store, store_flags & ~STORE_READONLY,
	                (int)u->cfg.busy_timeout_ms, &u->s);
	if ((rc == -EACCES || rc == -EROFS) && (store_flags & STORE_READONLY))
		rc = store_open(o->store, store_flags, (int)u->cfg.busy_timeout_ms,
		                &u->s);
	if (rc) {
		fprintf(stderr, "%s: cannot open store '%s': %s\n", o->prog,
		        o->store, unlock_open_error(rc));
		return EXIT_RUNTIME;
	}
	snprintf(prompt, sizeof prompt, "Passphrase for %s: ", user);
	if (passphrase_get(o->passfile, o->extpass, prompt, 0, &pw, err,
	                   sizeof err)) {
		fprintf(stderr, "%s: %s\n", o->prog, err);
		st = EXIT_USAGE;
		goto fail;
	}
	rc = auth_login(u->s, &u->cfg, user, &pw, &u->ss, &locked_for);
	passphrase_free(&pw);
	switch (rc) {
	case 0:
		break;
	case -EACCES:
		fprintf(stderr, "%s: authentication failed (unknown user or wrong"
		        " passphrase)\n", o->prog);
		st = EXIT_AUTH;
		goto fail;
	case -EAGAIN:
		fprintf(stderr, "%s: authentication failed: account '%s' is locked"
		        " for %lld more seconds\n", o->prog, user,
		        (long long)locked_for);
		st = EXIT_AUTH;
		goto fail;
	case -EBADMSG:
		fprintf(stderr, "%s: store '%s' fails verification: user '%s' or"
		        " its keys were tampered with\n", o->prog, o->store, user);
		st = EXIT_DAMAGE;
		goto fail;
	default:
		fprintf(stderr, "%s: cannot authenticate: %s\n", o->prog,
		        rc == -EBUSY ? "store is locked by another process"
		                     : strerror(-rc));
		st = EXIT_RUNTIME;
		goto fail;
	}
	if ((rc = keyring_new(&u->kr)) ||
	    (rc = keyring_load(u->kr, u->s, u->ss->user_id, u->ss->box_pk,
	                       u->ss->box_sk, u->ss->authority_pk,
	                       u->ss->store_id))) {
		if (rc == -EBADMSG) {
			fprintf(stderr, "%s: store '%s' fails verification: a master"
			        " key row or grant was tampered with\n", o->prog,
			        o->store);
			st = EXIT_DAMAGE;
		} else {
			fprintf(stderr, "%s: cannot load keys: %s\n", o->prog,
			        strerror(-rc));
			st = EXIT_RUNTIME;
		}
		goto fail;
	}
	return EXIT_OK;
fail:
	unlock_free(u);
	return st;
}

void unlock_free(struct unlocked *u)
{
	keyring_free(u->kr);
	session_free(u->ss);
	store_close(u->s);
	u->kr = NULL;
	u->ss = NULL;
	u->s = NULL;
}
