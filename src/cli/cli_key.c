/*
 * cli_key.c - the master-key life cycle: key list, rotate, retire, destroy,
 * and reencrypt. Every step is logged in key_events and the audit trail.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "cli.h"
#include "fs.h"
#include "keyring.h"
#include "store.h"

#define ADMIN (1 << ROLE_ADMIN)

/*
 * End the command's transaction and record op: on success in the same
 * transaction; on failure the work is rolled back first and the refusal is
 * recorded in a transaction of its own (so it is never rolled back with it).
 */
static int finish_tx(struct cli *c, const char *op, const char *target, int rc)
{
	if (!rc) {
		cli_record(c, op, target, 0);
		return store_commit(c->un.s);
	}
	store_rollback(c->un.s);
	if (store_begin(c->un.s) == 0) {
		if (cli_record(c, op, target, rc) == 0)
			store_commit(c->un.s);
		else
			store_rollback(c->un.s);
	}
	return rc;
}

/* ---- key list ---- */

struct list_ctx {
	struct cli *c;
	int n;
};

static int list_one(void *arg, const struct store_key *k)
{
	struct list_ctx *l = arg;
	char cr[32], ac[32], ex[32], re[32];
	uint64_t objects = 0;

	store_key_usage(l->c->un.s, k->version, &objects);
	cli_time(cr, sizeof cr, k->created);
	cli_time(ac, sizeof ac, k->activated);
	cli_time(ex, sizeof ex, k->expires);
	cli_time(re, sizeof re, k->retired);
	if (l->c->json) {
		printf("%s\n  {\"version\":%u,\"status\":", l->n ? "," : "", k->version);
		cli_json_str(k->status);
		printf(",\"created\":");
		cli_json_str(cr);
		printf(",\"activated\":");
		cli_json_str(ac);
		printf(",\"expires\":");
		if (k->expires)
			cli_json_str(ex);
		else
			printf("null");
		printf(",\"retired\":");
		if (k->retired)
			cli_json_str(re);
		else
			printf("null");
		printf(",\"objects\":%llu}", (unsigned long long)objects);
	} else {
		if (!l->n)
			printf("%-8s %-13s %-21s %-21s %-21s %s\n", "VERSION", "STATUS",
			       "CREATED", "ACTIVATED", "EXPIRES", "OBJECTS");
		printf("v%-7u %-13s %-21s %-21s %-21s %llu\n", k->version, k->status,
		       cr, ac, ex, (unsigned long long)objects);
	}
	l->n++;
	return 0;
}

static int key_list(struct cli *c, int argc, char **argv)
{
	struct list_ctx l = { c, 0 };
	int st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else {
			fprintf(stderr, "custodyctl: key list: unknown argument '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY, ADMIN | (1 << ROLE_AUDITOR),
	                     "key list")))
		return st;
	if (c->json)
		printf("[");
	store_key_each(c->un.s, list_one, &l);
	if (c->json)
		printf("\n]\n");
	return EXIT_OK;
}

/* ---- rotate ---- */

static int key_rotate(struct cli *c, int argc, char **argv)
{
	uint32_t old = 0, v = 0;
	char what[32];
	int rc, st;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "custodyctl: key rotate takes no arguments\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, ADMIN, "key rotate")))
		return st;
	if (c->auto_rotated) {
		printf("rotated: v%u is active (the expired active version was"
		       " rotated on login)\n", keyring_active(c->un.kr));
		return EXIT_OK;
	}
	if ((rc = store_begin(c->un.s)) == 0) {
		rc = keyring_rotate_logged(c->un.kr, c->un.s, c->un.ss,
		                           c->un.cfg.key_max_age_s, "rotate", NULL,
		                           &old, &v);
		snprintf(what, sizeof what, "v%u", v);
		rc = finish_tx(c, "key rotate", what, rc);
	}
	if (rc) {
		fprintf(stderr, "custodyctl: key rotate failed: %s\n",
		        rc == -EBUSY ? "store is busy" : strerror(-rc));
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	printf("rotated: v%u is active, v%u is decrypt-only\n", v, old);
	return EXIT_OK;
}

/* ---- retire / destroy ---- */

static int parse_version(const char *s, uint32_t *v)
{
	char *end;
	unsigned long n;

	if (*s == 'v' || *s == 'V')
		s++;
	n = strtoul(s, &end, 10);
	if (*end || n < 1 || n > UINT32_MAX)
		return -1;
	*v = (uint32_t)n;
	return 0;
}

static int key_change(struct cli *c, int argc, char **argv, int destroy)
{
	const char *verb = destroy ? "destroy" : "retire";
	char op[32], what[32];
	struct store_key k;
	uint64_t objects = 0;
	uint32_t v;
	int rc, st;

	if (argc != 2 || parse_version(argv[1], &v)) {
		fprintf(stderr, "usage: custodyctl key %s VERSION\n", verb);
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, ADMIN, destroy ? "key destroy" : "key retire")))
		return st;
	snprintf(op, sizeof op, "key %s", verb);
	snprintf(what, sizeof what, "v%u", v);
	if ((rc = store_begin(c->un.s))) {
		fprintf(stderr, "custodyctl: store is busy\n");
		return EXIT_BUSY;
	}
	rc = store_key_get(c->un.s, v, &k);
	if (rc == -ENOENT) {
		fprintf(stderr, "custodyctl: no key version %u\n", v);
		finish_tx(c, op, what, -ENOENT);
		return EXIT_RUNTIME;
	}
	if (!rc)
		rc = store_key_usage(c->un.s, v, &objects);
	if (rc)
		goto fail;
	if (!destroy) {
		if (!strcmp(k.status, "active")) {
			fprintf(stderr, "custodyctl: v%u is the active version: rotate"
			        " first\n", v);
			finish_tx(c, op, what, -EBUSY);
			return EXIT_RUNTIME;
		}
		if (strcmp(k.status, "decrypt-only")) {
			fprintf(stderr, "custodyctl: v%u is %s, not decrypt-only\n", v,
			        k.status);
			finish_tx(c, op, what, -EINVAL);
			return EXIT_RUNTIME;
		}
		if (objects) {
			fprintf(stderr, "custodyctl: v%u still encrypts %llu objects:"
			        " run custodyctl reencrypt first\n", v,
			        (unsigned long long)objects);
			finish_tx(c, op, what, -EBUSY);
			return EXIT_RUNTIME;
		}
		snprintf(k.status, sizeof k.status, "retired");
		k.retired = time(NULL);
	} else {
		if (strcmp(k.status, "retired")) {
			fprintf(stderr, "custodyctl: v%u is %s: only a retired version"
			        " can be destroyed\n", v, k.status);
			finish_tx(c, op, what, -EINVAL);
			return EXIT_RUNTIME;
		}
		/* crypto-shredding: every sealed copy goes (secure_delete
		 * zeroes the freed pages) */
		if ((rc = store_grant_delete(c->un.s, -1, v, NULL)))
			goto fail;
		snprintf(k.status, sizeof k.status, "destroyed");
	}
	if ((rc = keyring_sign_row(&k, c->un.ss)) ||
	    (rc = store_key_put(c->un.s, &k)) ||
	    (rc = store_key_event(c->un.s, time(NULL), c->un.ss->name, verb, v, 0,
	                          NULL)))
		goto fail;
	if ((rc = finish_tx(c, op, what, 0)))
		goto fail2;
	if (destroy)
		store_checkpoint(c->un.s); /* fold the WAL: no old pages linger */
	printf("v%u %s\n", v, destroy ? "destroyed" : "retired");
	return EXIT_OK;
fail:
	finish_tx(c, op, what, rc);
fail2:
	fprintf(stderr, "custodyctl: key %s failed: %s\n", verb, strerror(-rc));
	return EXIT_RUNTIME;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl key list [--json]     versions, status, dates, objects\n"
	"       custodyctl key rotate            new active version (admin)\n"
	"       custodyctl key retire VERSION    refuse while anything uses it\n"
	"       custodyctl key destroy VERSION   crypto-shred a retired version\n";

	if (argc < 2 || cli_wants_help(2, argv, help)) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[1], "list"))
		return key_list(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "rotate"))
		return key_rotate(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "retire"))
		return key_change(c, argc - 1, argv + 1, 0);
	if (!strcmp(argv[1], "destroy"))
		return key_change(c, argc - 1, argv + 1, 1);
	fprintf(stderr, "custodyctl: unknown key command '%s'\n", argv[1]);
	return EXIT_USAGE;
}

/* ---- reencrypt ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int log_event(struct cli *c, const char *event, uint32_t v,
                     const char *detail)
{
	int rc = store_begin(c->un.s);

	if (rc)
		return rc;
	rc = store_key_event(c->un.s, time(NULL), c->un.ss->name, event, 0, v,
	                     detail);
	return finish_tx(c, "reencrypt", detail, rc);
}

/* Move everything to the active version; an unlocked admin session. */
int cli_reencrypt_run(struct cli *c, double rate)
{
	struct fs_opts fo = { .shared = 1 };
	struct fs *fs = NULL;
	uint64_t total = 0, done = 0, bytes = 0, moved, b;
	int64_t started, last_log;
	uint32_t v;
	char detail[128];
	int rc;

	v = keyring_active(c->un.kr);
	if (!v) {
		fprintf(stderr, "custodyctl: no active key version to move to\n");
		return EXIT_RUNTIME;
	}
	if ((rc = fs_new(c->un.s, c->un.kr, NULL, &fo, &fs))) {
		fprintf(stderr, "custodyctl: cannot open the filesystem: %s\n",
		        strerror(-rc));
		return EXIT_RUNTIME;
	}
	fs_reencrypt_remaining(fs, &total);
	interrupted = 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(detail, sizeof detail, "start: %llu objects to v%u",
	         (unsigned long long)total, v);
	log_event(c, "reencrypt-start", v, detail);
	started = last_log = cli_now_ms();
	while (!interrupted) {
		rc = fs_reencrypt_step(fs, 256, &moved, &b);
		if (rc == -EBUSY)
			continue; /* the mount held the lock past the timeout */
		if (rc)
			break;
		if (!moved) {
			/* content is done; then the audit trail's detail keys */
			if ((rc = store_begin(c->un.s)) == 0) {
				rc = audit_reseal_sessions(c->un.s, c->un.ss, v, 256,
				                           &moved);
				rc = rc ? (store_rollback(c->un.s), rc)
				        : store_commit(c->un.s);
			}
			if (rc || !moved)
				break;
		}
		done += moved;
		bytes += b;
		if (done > total)
			total = done;
		cli_progress(c, "reencrypt", done, total, started, 0);
		if (cli_now_ms() - last_log >= 10000) {
			snprintf(detail, sizeof detail, "progress: %llu/%llu objects",
			         (unsigned long long)done, (unsigned long long)total);
			log_event(c, "reencrypt-progress", v, detail);
			last_log = cli_now_ms();
		}
		if (rate > 0) {
			/* sleep until the average is back under the limit */
			double el = (double)(cli_now_ms() - started) / 1000.0;
			double need = (double)bytes / (rate * 1048576.0);
			if (need > el) {
				struct timespec ts;
				double d = need - el;
				ts.tv_sec = (time_t)d;
				ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
			}
		}
	}
	cli_progress(c, "reencrypt", done, done > total ? done : (rc || interrupted ? total : done),
	             started, 1);
	fs_free(fs);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (rc) {
		fprintf(stderr, "custodyctl: reencrypt stopped: %s (run it again to"
		        " resume)\n", strerror(-rc));
		snprintf(detail, sizeof detail, "failed after %llu objects: %s",
		         (unsigned long long)done, strerror(-rc));
		log_event(c, "reencrypt-fail", v, detail);
		return rc == -EIO ? EXIT_DAMAGE : EXIT_RUNTIME;
	}
	if (interrupted) {
		snprintf(detail, sizeof detail, "interrupted after %llu objects",
		         (unsigned long long)done);
		log_event(c, "reencrypt-interrupted", v, detail);
		fprintf(stderr, "custodyctl: reencrypt interrupted after %llu"
		        " objects; run it again to resume\n", (unsigned long long)done);
		return EXIT_RUNTIME;
	}
	{
		double secs = (double)(cli_now_ms() - started) / 1000.0;
		snprintf(detail, sizeof detail, "done: %llu objects, %.1f MiB in"
		         " %.2f s (%.1f MiB/s)", (unsigned long long)done,
		         (double)bytes / 1048576.0, secs,
		         secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0);
		log_event(c, "reencrypt-end", v, detail);
		printf("reencrypt %s\n", detail);
	}
	return EXIT_OK;
}

int cmd_reencrypt(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl reencrypt [--rate MiB/s]\n"
	"Move every block, name, xattr, inode MAC and audit detail key still under\n"
	"an older master-key version to the active one. Runs while the store is\n"
	"mounted and in use; each step is atomic, so it can be interrupted (Ctrl-C,\n"
	"kill -9) and resumed by running it again. --rate limits the content\n"
	"rewritten per second.\n";
	double rate = 0;
	int st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			char *end;
			rate = strtod(argv[++i], &end);
			if (*end || rate <= 0) {
				fprintf(stderr, "custodyctl: bad --rate '%s'\n", argv[i]);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "custodyctl: reencrypt: unknown argument '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, 0, ADMIN, "reencrypt")))
		return st;
	return cli_reencrypt_run(c, rate);
}

/* ---- revoke ---- */

struct retire_ctx {
	struct cli *c;
	uint32_t active;
	int destroy;
	int err;
};

static int retire_old(void *arg, const struct store_key *k0)
{
	struct retire_ctx *r = arg;
	struct store_key k = *k0;
	uint64_t objects = 0;
	int rc;

	if (k.version == r->active || !strcmp(k.status, "destroyed") ||
	    (!r->destroy && !strcmp(k.status, "retired")))
		return 0;
	if ((rc = store_key_usage(r->c->un.s, k.version, &objects)))
		goto fail;
	if (objects)
		return 0; /* still in use: reencrypt did not finish */
	if (strcmp(k.status, "retired")) {
		snprintf(k.status, sizeof k.status, "retired");
		k.retired = time(NULL);
		if ((rc = keyring_sign_row(&k, r->c->un.ss)) ||
		    (rc = store_key_put(r->c->un.s, &k)) ||
		    (rc = store_key_event(r->c->un.s, time(NULL), r->c->un.ss->name,
		                          "retire", k.version, 0, "revoke")))
			goto fail;
	}
	if (r->destroy) {
		snprintf(k.status, sizeof k.status, "destroyed");
		if ((rc = store_grant_delete(r->c->un.s, -1, k.version, NULL)) ||
		    (rc = keyring_sign_row(&k, r->c->un.ss)) ||
		    (rc = store_key_put(r->c->un.s, &k)) ||
		    (rc = store_key_event(r->c->un.s, time(NULL), r->c->un.ss->name,
		                          "destroy", k.version, 0, "revoke")))
			goto fail;
	}
	return 0;
fail:
	r->err = rc;
	return 1;
}

int cli_user_revoke(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl user revoke NAME [--destroy] [--rate MiB/s]\n"
	"Lock NAME out for good, in one resumable command: delete the user and\n"
	"every key grant they hold, rotate to a new master-key version they never\n"
	"see, re-encrypt everything to it, and retire the versions they held\n"
	"(--destroy also crypto-shreds them, so even an old copy of their key\n"
	"material opens no block of the current store). Each step is also a\n"
	"command of its own (user del, key rotate, reencrypt, key retire/destroy).\n"
	"Interrupted? Run the same command again: it carries on.\n";
	const char *name = NULL;
	struct store_user u;
	struct retire_ctx r;
	double rate = 0;
	uint32_t old = 0, v = 0;
	int destroy = 0, rc, st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--destroy"))
			destroy = 1;
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = strtod(argv[++i], NULL);
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else {
			fprintf(stderr, "custodyctl: user revoke: unexpected '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!name) {
		fputs(help, stderr);
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, ADMIN, "user revoke")))
		return st;
	if (!strcmp(name, c->un.ss->name)) {
		fprintf(stderr, "custodyctl: an admin cannot revoke themself\n");
		return EXIT_USAGE;
	}
	if ((rc = store_begin(c->un.s))) {
		fprintf(stderr, "custodyctl: store is busy\n");
		return EXIT_BUSY;
	}
	rc = store_user_get(c->un.s, name, &u);
	if (rc == 0) {
		/* step 1: the user and every grant they hold go, then a
		 * version they never held becomes active */
		if ((rc = store_grant_delete(c->un.s, u.id, -1, NULL)) ||
		    (rc = store_user_delete(c->un.s, u.id)) ||
		    (rc = keyring_rotate_logged(c->un.kr, c->un.s, c->un.ss,
		                                c->un.cfg.key_max_age_s, "revoke",
		                                name, &old, &v)))
			goto fail;
		cli_record(c, "user revoke", name, 0);
		if ((rc = store_commit(c->un.s)))
			goto fail;
		printf("revoked '%s': grants removed, v%u active\n", name, v);
	} else if (rc == -ENOENT) {
		store_rollback(c->un.s);
		printf("'%s' is already removed: resuming re-encryption\n", name);
	} else
		goto fail;
	/* step 2: everything moves to the new version */
	if ((st = cli_reencrypt_run(c, rate)))
		return st;
	/* step 3: the versions they held retire (and are destroyed) */
	r = (struct retire_ctx){ c, keyring_active(c->un.kr), destroy, 0 };
	if ((rc = store_begin(c->un.s)))
		goto fail;
	rc = store_key_each(c->un.s, retire_old, &r);
	if (r.err)
		rc = r.err;
	if (rc < 0)
		goto fail;
	cli_record(c, destroy ? "key destroy" : "key retire", "revoke", 0);
	if ((rc = store_commit(c->un.s)))
		goto fail;
	if (destroy)
		store_checkpoint(c->un.s);
	printf("older versions %s\n", destroy ? "retired and destroyed" : "retired");
	return EXIT_OK;
fail:
	if (store_in_transaction(c->un.s))
		store_rollback(c->un.s);
	fprintf(stderr, "custodyctl: user revoke failed: %s (run it again to"
	        " resume)\n", strerror(-rc));
	return EXIT_RUNTIME;
}
