/*
 * cli_store.c - custodyctl commands about the store as a whole: init, info.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "cipher.h"
#include "cli.h"
#include "fs.h"
#include "keyring.h"
#include "passphrase.h"
#include "store.h"

int cmd_init(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl -s STORE [-u USER] [--passfile F|--extpass C] init\n"
	        "Create a new store file (never overwrites anything); USER becomes\n"
	        "its first admin. Without a passfile the passphrase is asked twice.\n";
	struct passphrase pw = { 0 };
	struct config cfg;
	struct store *s = NULL;
	struct session *ss = NULL;
	struct keyring *kr = NULL;
	struct audit *au = NULL;
	const char *user = unlock_user(&c->u);
	char err[512];
	uint32_t v0, v = 0;
	int rc, st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	if (argc > 1) {
		fprintf(stderr, "custodyctl: init takes no arguments\n");
		return EXIT_USAGE;
	}
	if ((st = unlock_config(&c->u, &cfg)))
		return st;
	if (!c->u.store) {
		fprintf(stderr, "custodyctl: no store given (-s STORE or $CUSTODY_STORE)\n");
		return EXIT_USAGE;
	}
	if (!auth_name_valid(user)) {
		fprintf(stderr, "custodyctl: invalid user name '%s' (1-64 of A-Z a-z 0-9 . _ -)\n",
		        user);
		return EXIT_USAGE;
	}
	if (access(c->u.store, F_OK) == 0 || errno != ENOENT) {
		fprintf(stderr, "custodyctl: cannot create store '%s': %s\n",
		        c->u.store, access(c->u.store, F_OK) == 0 ? "file exists"
		                                                   : strerror(errno));
		return EXIT_RUNTIME;
	}
	if (passphrase_get(c->u.passfile, c->u.extpass, "New store passphrase: ",
	                   1, &pw, err, sizeof err)) {
		fprintf(stderr, "custodyctl: %s\n", err);
		return EXIT_USAGE;
	}
	rc = store_open(c->u.store, STORE_CREATE, (int)cfg.busy_timeout_ms, &s);
	if (rc) {
		fprintf(stderr, "custodyctl: cannot create store '%s': %s\n",
		        c->u.store, unlock_open_error(rc));
		passphrase_free(&pw);
		return EXIT_RUNTIME;
	}
	if ((rc = store_begin(s)) ||
	    (rc = auth_bootstrap(s, &cfg, user, &pw, &ss)) ||
	    (rc = keyring_new(&kr)) ||
	    (rc = keyring_rotate_logged(kr, s, ss, cfg.key_max_age_s, "create",
	                                "init", &v0, &v)) ||
	    (rc = fs_format(s, kr, (uint32_t)getuid(), (uint32_t)getgid(),
	                    cfg.block_size)) ||
	    (rc = audit_new(s, kr, ss, 0, &au)) ||
	    (rc = audit_admin(au, "init", user, 0)) ||
	    (rc = store_commit(s))) {
		fprintf(stderr, "custodyctl: cannot create store '%s': %s\n",
		        c->u.store, rc == -ENOMEM ? "out of memory (Argon2id memlimit?)"
		                                  : strerror(-rc));
		store_rollback(s);
		st = EXIT_RUNTIME;
	} else {
		st = EXIT_OK;
	}
	audit_free(au);
	keyring_free(kr);
	session_free(ss);
	passphrase_free(&pw);
	store_close(s);
	if (st)
		unlink(c->u.store);
	else
		printf("created store '%s' with admin '%s' (key version %u)\n",
		       c->u.store, user, v);
	return st;
}

struct info_users {
	int n;
	int json;
};

static int info_user(void *arg, const struct store_user *u)
{
	struct info_users *iu = arg;

	if (iu->json) {
		printf("%s{\"name\":", iu->n ? "," : "");
		cli_json_str(u->name);
		printf(",\"role\":");
		cli_json_str(u->role);
		printf("}");
	} else
		printf("%s%s (%s)", iu->n ? ", " : "", u->name, u->role);
	iu->n++;
	return 0;
}

static int info_mount(void *arg, const struct store_mount *m)
{
	struct info_users *iu = arg;
	char t[32];

	cli_time(t, sizeof t, m->started);
	if (iu->json) {
		printf("%s{\"user\":", iu->n ? "," : "");
		cli_json_str(m->user);
		printf(",\"host\":");
		cli_json_str(m->host);
		printf(",\"pid\":%lld,\"mountpoint\":", (long long)m->pid);
		cli_json_str(m->mountpoint);
		printf(",\"readonly\":%s,\"started\":", m->readonly ? "true" : "false");
		cli_json_str(t);
		printf("}");
	} else
		printf("%s%s@%s pid %lld on %s (%s, since %s)", iu->n ? "; " : "",
		       m->user, m->host, (long long)m->pid, m->mountpoint,
		       m->readonly ? "ro" : "rw", t);
	iu->n++;
	return 0;
}

static int info_key(void *arg, const struct store_key *k)
{
	struct info_users *iu = arg;

	if (iu->json) {
		printf("%s{\"version\":%u,\"status\":", iu->n ? "," : "", k->version);
		cli_json_str(k->status);
		printf("}");
	} else
		printf("%sv%u %s", iu->n ? ", " : "", k->version, k->status);
	iu->n++;
	return 0;
}

int cmd_info(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl -s STORE info [--json]\n"
	        "Format version, cipher, block size, file and WAL sizes, counts,\n"
	        "key versions and users. Any authenticated user may run it.\n";
	uint64_t pages, psize, freep, files = 0, dirs = 0, bytes = 0, blocks = 0,
	         arows = 0;
	int64_t fmt = 0, bs = 0;
	char cipher[64] = "?", wal[4200];
	size_t n;
	struct stat sb;
	off_t fsize = 0, wsize = 0;
	struct info_users iu = { 0, 0 };
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else {
			fprintf(stderr, "custodyctl: info: unknown argument '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY, 0, "info")))
		return st;
	iu.json = c->json;
	store_meta_get_int(c->un.s, "format", &fmt);
	store_meta_get_int(c->un.s, "block_size", &bs);
	if (store_meta_get(c->un.s, "cipher", cipher, sizeof cipher - 1, &n) == 0)
		cipher[n] = 0;
	store_file_stats(c->un.s, &pages, &psize, &freep);
	store_inode_count(c->un.s, &files, &dirs, &bytes);
	store_block_count(c->un.s, &blocks);
	store_audit_count(c->un.s, &arows);
	if (stat(c->u.store, &sb) == 0)
		fsize = sb.st_size;
	snprintf(wal, sizeof wal, "%s-wal", c->u.store);
	if (stat(wal, &sb) == 0)
		wsize = sb.st_size;
	if (c->json) {
		printf("{\"format\":%lld,\"cipher\":", (long long)fmt);
		cli_json_str(cipher);
		printf(",\"block_size\":%lld,\"page_size\":%llu,\"file_bytes\":%lld,"
		       "\"wal_bytes\":%lld,\"free_bytes\":%llu,\"files\":%llu,"
		       "\"directories\":%llu,\"data_bytes\":%llu,\"blocks\":%llu,"
		       "\"audit_rows\":%llu,\"keys\":[",
		       (long long)bs, (unsigned long long)psize, (long long)fsize,
		       (long long)wsize, (unsigned long long)(freep * psize),
		       (unsigned long long)files, (unsigned long long)dirs,
		       (unsigned long long)bytes, (unsigned long long)blocks,
		       (unsigned long long)arows);
		store_key_each(c->un.s, info_key, &iu);
		printf("],\"users\":[");
		iu.n = 0;
		store_user_each(c->un.s, info_user, &iu);
		printf("],\"mounts\":[");
		iu.n = 0;
		store_mount_each_open(c->un.s, info_mount, &iu);
		printf("]}\n");
	} else {
		printf("store:       %s\n", c->u.store);
		printf("format:      %lld\n", (long long)fmt);
		printf("cipher:      %s, %lld-byte blocks\n", cipher, (long long)bs);
		printf("file:        %lld bytes (%llu pages of %llu, %llu free), WAL %lld bytes\n",
		       (long long)fsize, (unsigned long long)pages,
		       (unsigned long long)psize, (unsigned long long)freep,
		       (long long)wsize);
		printf("contents:    %llu files, %llu directories, %llu bytes in %llu blocks\n",
		       (unsigned long long)(files), (unsigned long long)dirs,
		       (unsigned long long)bytes, (unsigned long long)blocks);
		printf("audit rows:  %llu\n", (unsigned long long)arows);
		printf("keys:        ");
		store_key_each(c->un.s, info_key, &iu);
		printf("\nusers:       ");
		iu.n = 0;
		store_user_each(c->un.s, info_user, &iu);
		printf("\nmounts:      ");
		iu.n = 0;
		store_mount_each_open(c->un.s, info_mount, &iu);
		if (!iu.n)
			printf("none");
		printf("\n");
	}
	return EXIT_OK;
}
