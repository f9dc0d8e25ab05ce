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

static int help_wanted(int argc, char **argv, const char *text)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(text, stdout);
			return 1;
		}
	return 0;
}

/* Run body inside one transaction and record op; commits on success. */
static int finish_tx(struct cli *c, const char *op, const char *target, int rc)
{
	cli_record(c, op, target, rc);
	if (rc) {
		store_rollback(c->un.s);
		return rc;
	}
	return store_commit(c->un.s);
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
	uint32_t vs[KEYRING_MAX_VERSIONS], old = 0, v = 0;
	char what[32];
	int rc, st;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "custodyctl: key rotate takes no arguments\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, ADMIN, "key rotate")))
		return st;
	if (keyring_versions(c->un.kr, vs, KEYRING_MAX_VERSIONS))
		old = vs[0];
	if ((rc = store_begin(c->un.s)) == 0) {
		rc = keyring_rotate(c->un.kr, c->un.s, c->un.ss,
		                    c->un.cfg.key_max_age_s
		                            ? (int64_t)time(NULL) + c->un.cfg.key_max_age_s
		                            : 0, &v);
		if (!rc)
			rc = store_key_event(c->un.s, time(NULL), c->un.ss->name,
			                     "rotate", old, v, NULL);
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

	if (argc < 2 || help_wanted(2, argv, help)) {
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

int cmd_reencrypt(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl reencrypt [--rate MiB/s]\n"
	"Move every block, name, xattr, inode MAC and audit detail key still under\n"
	"an older master-key version to the active one. Runs while the store is\n"
	"mounted and in use; each step is atomic, so it can be interrupted (Ctrl-C,\n"
	"kill -9) and resumed by running it again. --rate limits the content\n"
	"rewritten per second.\n";
	struct fs_opts fo = { .shared = 1 };
	struct fs *fs = NULL;
	double rate = 0;
	uint64_t total = 0, done = 0, bytes = 0, moved, b;
	int64_t started, last_log;
	uint32_t v;
	char detail[128];
	int rc, st;

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
	cli_progress(c, "reencrypt", done, total, started, 1);
	fs_free(fs);
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
		         " %.1f s", (unsigned long long)done,
		         (double)bytes / 1048576.0, secs);
		log_event(c, "reencrypt-end", v, detail);
		printf("reencrypt %s\n", detail);
	}
	return EXIT_OK;
}
