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

#include <fcntl.h>

#include "auth.h"
#include "cipher.h"
#include "cli.h"
#include "fs.h"
#include "keyadmin.h"
#include "passphrase.h"
#include "rights.h"
#include "session.h"
#include "store.h"

static int format_root(struct unlocked *u, struct ledger_state *st)
{
	return fs_format(u, (uint32_t)getuid(), (uint32_t)getgid(),
	                 u->r->policy.block_size, st);
}

/* Write the recovery secret to path (created 0600, never overwriting). */
static int write_recovery(const char *path, const char *hex)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	              0600);
	size_t n = strlen(hex);
	int ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, hex, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
	     fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl -s STORE [-u USER] [--passfile F|--extpass C] init\n"
	        "                  [--recovery-file FILE]\n"
	        "Create a new store file (never overwrites anything); USER becomes\n"
	        "its first admin. Without a passfile the passphrase is asked twice.\n"
	        "The login policy (Argon2id floor, lockout) and the block size are\n"
	        "taken from the configuration now and signed into the store; later\n"
	        "a configuration may ask for more, never less.\n"
	        "A recovery secret is made, to which the store authority and\n"
	        "every key version are sealed as well: it acts as an admin\n"
	        "(custodyctl --recovery FILE ...). It is printed once, or written\n"
	        "to FILE (created 0600): keep it offline.\n";
	struct passphrase pw = { 0 };
	struct rights_policy pol;
	uint8_t *recovery = secmem_alloc(KEYADMIN_RECOVERY_BYTES);
	char *hex = secmem_alloc(2 * KEYADMIN_RECOVERY_BYTES + 1);
	const char *user = unlock_user(&c->u), *rfile = NULL, *v;
	struct config cfg;
	char err[512];
	int st, rc, r;

	if (!recovery || !hex) {
		secmem_free(recovery);
		secmem_free(hex);
		fprintf(stderr, "custodyctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	st = EXIT_USAGE;
	if (cli_wants_help(argc, argv, help)) {
		st = EXIT_OK;
		goto out;
	}
	for (int i = 1; i < argc; i++) {
		if ((r = cli_opt_value(argc, argv, &i, "--recovery-file", &v))) {
			if (r < 0)
				goto out;
			rfile = v;
		} else {
			fprintf(stderr, "custodyctl: init: unexpected argument '%s'\n",
			        argv[i]);
			goto out;
		}
	}
	if ((st = unlock_config(&c->u, &cfg)))
		goto out;
	st = EXIT_USAGE;
	if (!c->u.store) {
		fprintf(stderr, "custodyctl: no store given (-s STORE or $CUSTODY_STORE)\n");
		goto out;
	}
	if (!auth_name_valid(user)) {
		fprintf(stderr, "custodyctl: invalid user name '%s' (1-64 of A-Z a-z 0-9 . _ -)\n",
		        user);
		goto out;
	}
	st = EXIT_RUNTIME;
	if (access(c->u.store, F_OK) == 0 || errno != ENOENT) {
		fprintf(stderr, "custodyctl: cannot create store '%s': %s\n",
		        c->u.store, access(c->u.store, F_OK) == 0 ? "file exists"
		                                                   : strerror(errno));
		goto out;
	}
	if (rfile && access(rfile, F_OK) == 0) {
		fprintf(stderr, "custodyctl: recovery file '%s' exists\n", rfile);
		goto out;
	}
	if (passphrase_get(c->u.passfile, c->u.extpass, "New store passphrase: ",
	                   1, &pw, err, sizeof err)) {
		fprintf(stderr, "custodyctl: %s\n", err);
		st = EXIT_USAGE;
		goto out;
	}
	memset(&pol, 0, sizeof pol);
	pol.kdf_opslimit = cfg.kdf_opslimit;
	pol.kdf_memlimit = cfg.kdf_memlimit;
	pol.max_failures = cfg.max_failures > 0 ? (uint32_t)cfg.max_failures : 0;
	pol.lockout_s = cfg.lockout_s > 0 ? (uint64_t)cfg.lockout_s : 0;
	pol.block_size = cfg.block_size;
	c->u.kind = "ctl";
	st = unlock_create(&c->u, &pol, &pw, recovery, format_root, &c->un);
	passphrase_free(&pw);
	if (st)
		goto out;
	c->unlocked = 1;
	cipher_hex(hex, recovery, KEYADMIN_RECOVERY_BYTES);
	if (rfile && (rc = write_recovery(rfile, hex))) {
		fprintf(stderr, "custodyctl: cannot write the recovery file '%s': %s"
		        " (the store was created; the secret follows)\n", rfile,
		        strerror(-rc));
		rfile = NULL;
	}
	printf("created store '%s' with admin '%s' (key version %u)\n",
	       c->u.store, user, rights_active(c->un.r));
	if (rfile)
		printf("recovery secret written to '%s': keep it offline\n", rfile);
	else
		printf("recovery secret (shown once; keep it offline): %s\n", hex);
	st = EXIT_OK;
out:
	secmem_free(recovery);
	secmem_free(hex);
	return st;
}

struct info_mounts {
	struct cli *c;
	int n;
};

static int info_mount(void *arg, const struct store_mount *m)
{
	struct info_mounts *im = arg;
	struct cli *c = im->c;
	int n = im->n++;
	char t[32];

	cli_time(t, sizeof t, m->started);
	if (c->json) {
		printf("%s{\"user\":", n ? "," : "");
		cli_json_str(m->user);
		printf(",\"host\":");
		cli_json_str(m->host);
		printf(",\"pid\":%lld,\"mountpoint\":", (long long)m->pid);
		cli_json_str(m->mountpoint);
		cli_json_b64("mountpoint", m->mountpoint);
		printf(",\"readonly\":%s,\"started\":", m->readonly ? "true" : "false");
		cli_json_str(t);
		printf("}");
	} else
		printf("%s%s@%s pid %lld on %s (%s, since %s)", n ? "; " : "",
		       m->user, m->host, (long long)m->pid, m->mountpoint,
		       m->readonly ? "ro" : "rw", t);
	return 0;
}

int cmd_info(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	        "usage: custodyctl -s STORE info [--json]\n"
	        "Format version, cipher, block size, file and WAL sizes, counts,\n"
	        "pending purge work, key versions, users, the newest commit and\n"
	        "open mounts. Any authenticated user may run it.\n";
	uint64_t pages = 0, psize = 0, freep = 0, files = 0, dirs = 0,
	         bytes = 0, blocks = 0, arows = 0, pi = 0, pb = 0, pbytes = 0;
	const struct rights *r;
	char wal[4200], hh[65];
	struct stat sb;
	off_t fsize = 0, wsize = 0;
	struct info_mounts im = { c, 0 };
	int st, n = 0;

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
	cli_record(c, "info", "", 0);
	r = c->un.r;
	store_file_stats(c->un.s, &pages, &psize, &freep);
	store_inode_count(c->un.s, &files, &dirs, &bytes);
	store_block_count(c->un.s, &blocks);
	store_audit_count(c->un.s, &arows);
	store_purge_pending(c->un.s, &pi, &pb, &pbytes);
	if (stat(c->u.store, &sb) == 0)
		fsize = sb.st_size;
	snprintf(wal, sizeof wal, "%s-wal", c->u.store);
	if (stat(wal, &sb) == 0)
		wsize = sb.st_size;
	cipher_hex(hh, c->un.head.hash, 32);
	if (c->json) {
		printf("{\"format\":%d,\"block_size\":%u,\"page_size\":%llu,"
		       "\"file_bytes\":%lld,\"wal_bytes\":%lld,\"free_bytes\":%llu,"
		       "\"files\":%llu,\"directories\":%llu,\"data_bytes\":%llu,"
		       "\"blocks\":%llu,\"audit_rows\":%llu,\"purge_pending\":"
		       "{\"inodes\":%llu,\"blocks\":%llu,\"bytes\":%llu},"
		       "\"roster\":%llu,\"authority_epoch\":%u,\"commit\":"
		       "{\"seq\":%lld,\"hash\":\"%s\"},\"keys\":[",
		       store_format(c->un.s), r->policy.block_size,
		       (unsigned long long)psize, (long long)fsize, (long long)wsize,
		       (unsigned long long)(freep * psize), (unsigned long long)files,
		       (unsigned long long)dirs, (unsigned long long)bytes,
		       (unsigned long long)blocks, (unsigned long long)arows,
		       (unsigned long long)pi, (unsigned long long)pb,
		       (unsigned long long)pbytes, (unsigned long long)r->counter,
		       r->epoch, (long long)c->un.head.seq, hh);
		for (size_t i = 0; i < r->nkeys; i++) {
			printf("%s{\"version\":%u,\"status\":", i ? "," : "",
			       r->keys[i].version);
			cli_json_str(key_status_name(r->keys[i].status));
			printf("}");
		}
		printf("],\"users\":[");
		for (size_t i = 0; i < r->nusers; i++) {
			if (rights_role(&r->users[i]) == ROLE_REMOVED)
				continue;
			printf("%s{\"name\":", n++ ? "," : "");
			cli_json_str(r->users[i].name);
			printf(",\"role\":");
			cli_json_str(role_name(rights_role(&r->users[i])));
			printf("}");
		}
		printf("],\"mounts\":[");
		store_mount_each_open(c->un.s, info_mount, &im);
		printf("]}\n");
	} else {
		printf("store:       %s\n", c->u.store);
		printf("format:      %d\n", store_format(c->un.s));
		printf("cipher:      xchacha20 + blake2b (earlier versions may differ),"
		       " %u-byte blocks\n", r->policy.block_size);
		printf("file:        %lld bytes (%llu pages of %llu, %llu free), WAL %lld bytes\n",
		       (long long)fsize, (unsigned long long)pages,
		       (unsigned long long)psize, (unsigned long long)freep,
		       (long long)wsize);
		printf("contents:    %llu files, %llu directories, %llu bytes in %llu blocks\n",
		       (unsigned long long)(files), (unsigned long long)dirs,
		       (unsigned long long)bytes, (unsigned long long)blocks);
		printf("purge:       %llu deleted files, %llu blocks (%llu bytes) pending\n",
		       (unsigned long long)pi, (unsigned long long)pb,
		       (unsigned long long)pbytes);
		printf("audit rows:  %llu\n", (unsigned long long)arows);
		printf("signed:      roster %llu, authority %u, commit %lld (%.16s...)\n",
		       (unsigned long long)r->counter, r->epoch,
		       (long long)c->un.head.seq, hh);
		printf("keys:        ");
		for (size_t i = 0; i < r->nkeys; i++)
			printf("%sv%u %s", i ? ", " : "", r->keys[i].version,
			       key_status_name(r->keys[i].status));
		printf("\nusers:       ");
		for (size_t i = 0; i < r->nusers; i++) {
			if (rights_role(&r->users[i]) == ROLE_REMOVED)
				continue;
			printf("%s%s (%s)", n++ ? ", " : "", r->users[i].name,
			       role_name(rights_role(&r->users[i])));
		}
		printf("\nmounts:      ");
		store_mount_each_open(c->un.s, info_mount, &im);
		if (!im.n)
			printf("none");
		printf("\n");
	}
	return EXIT_OK;
}
