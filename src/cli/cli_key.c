/*
 * cli_key.c - the master-key life cycle: key list, rotate, retire, destroy,
 * reencrypt, and user revoke. Every step is one audited transaction
 * (cli_begin/cli_finish) that changes the signed roster and is logged in
 * key_events and the audit trail.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "fs.h"
#include "keyadmin.h"
#include "keyring.h"
#include "rights.h"
#include "session.h"
#include "store.h"

#define ADMIN (1 << ROLE_ADMIN)
/* How long key destroy waits for readers before leaving it to a mount. */
#define CLI_SHRED_WAIT_MS 5000

/* ---- key list ---- */

static int key_list(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl key list [--json]\n"
	"Master key versions of the signed roster: status, dates, and OBJECTS,\n"
	"the number of stored objects (content blocks, names, xattrs, session\n"
	"audit keys) still encrypted under each (admin or auditor).\n";
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
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
	cli_record(c, "key list", "", 0);
	if (c->json)
		printf("[");
	for (size_t i = 0; i < c->un.r->nkeys; i++) {
		const struct rights_key *k = &c->un.r->keys[i];
		char cr[32], ac[32], ex[32], re[32];
		uint64_t objects = 0;

		store_key_usage(c->un.s, k->version, 0, &objects);
		cli_time(cr, sizeof cr, k->created);
		cli_time(ac, sizeof ac, k->activated);
		cli_time(ex, sizeof ex, k->expires);
		cli_time(re, sizeof re, k->retired);
		if (c->json) {
			printf("%s\n  {\"version\":%u,\"status\":", i ? "," : "",
			       k->version);
			cli_json_str(key_status_name(k->status));
			printf(",\"cipher\":");
			cli_json_str(k->cipher == KEY_CIPHER_ETM ? "xchacha20-blake2b"
			                                        : "xchacha20poly1305");
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
			if (!i)
				printf("%-8s %-13s %-21s %-21s %-21s %s\n", "VERSION",
				       "STATUS", "CREATED", "ACTIVATED", "EXPIRES", "OBJECTS");
			printf("v%-7u %-13s %-21s %-21s %-21s %llu\n", k->version,
			       key_status_name(k->status), cr, ac, ex,
			       (unsigned long long)objects);
		}
	}
	if (c->json)
		printf("\n]\n");
	return EXIT_OK;
}

/* ---- rotate ---- */

static int key_rotate(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl key rotate [--authority]\n"
	"Make a new active master key version (admin); the previous one becomes\n"
	"decrypt-only. New writes use the new version at once; run reencrypt\n"
	"to move existing data. With --authority, replace the store authority\n"
	"key instead (endorsed by the old one; logins follow the chain).\n";
	uint32_t old = 0, v = 0;
	int authority = 0, rc, st;
	char what[32];

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--authority"))
			authority = 1;
		else {
			fprintf(stderr, "custodyctl: key rotate: unexpected argument"
			        " '%s' (see key rotate --help)\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, 0, ADMIN, "key rotate")))
		return st;
	if (c->auto_rotated && !authority) {
		printf("rotated: v%u is active (the expired active version was"
		       " rotated on login)\n", keyring_active(c->un.ss->kr));
		return EXIT_OK;
	}
	if ((rc = cli_begin(c)) == 0) {
		if (authority) {
			rc = keyadmin_authority_rotate(c->un.s, c->un.r, c->un.ss);
			snprintf(what, sizeof what, "authority %u", c->un.r->epoch);
		} else {
			rc = keyadmin_rotate(c->un.s, c->un.r, c->un.ss,
			                     c->un.cfg.key_max_age_s, &old, &v);
			if (!rc)
				rc = store_key_event(c->un.s, time(NULL), c->un.ss->name,
				                     "rotate", old, v, NULL);
			snprintf(what, sizeof what, "v%u", v);
		}
		if (!rc)
			rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
		rc = cli_finish(c, authority ? "authority rotate" : "key rotate",
		                what, rc);
	}
	if (rc) {
		fprintf(stderr, "custodyctl: key rotate failed: %s\n",
		        rc == -EBUSY ? "store is busy" : strerror(-rc));
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	if (authority)
		printf("rotated: authority %u is the store's, endorsed by the one"
		       " before\n", c->un.r->epoch);
	else
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

/*
 * The destroyed grants are deleted (their cells zeroed: secure_delete),
 * but the WAL still holds the page images from before: the checkpoint
 * empties it (TRUNCATE). A mount's read transactions last one operation,
 * so a snapshot that keeps it from being emptied moves on within moments:
 * wait a few seconds, then say in one line that the mount's next
 * checkpoint finishes the job (its idle checkpoint sees the WAL is not
 * empty).
 */
static void shred_wal(struct cli *c)
{
	if (store_checkpoint_wait(c->un.s, CLI_SHRED_WAIT_MS))
		fprintf(stderr, "custodyctl: note: another process holds a read"
		        " snapshot of the store: destruction completes at its next"
		        " checkpoint, when the WAL's older copies are emptied\n");
}

/* A refusal: one line, rolled back and recorded. */
static int refuse(struct cli *c, const char *op, const char *what, int rc,
                  int status)
{
	cli_finish(c, op, what, rc);
	return status;
}

static int key_change(struct cli *c, int argc, char **argv, int destroy)
{
	static const char help_retire[] =
	"usage: custodyctl key retire VERSION\n"
	"Retire a decrypt-only version (admin): refused while anything is still\n"
	"encrypted under it (run reencrypt first) or while it is active.\n";
	static const char help_destroy[] =
	"usage: custodyctl key destroy VERSION [--yes]\n"
	"Crypto-shred a retired version (admin): every sealed copy of it is\n"
	"deleted, and no copy stays in the store file or its WAL: the deleted\n"
	"rows are zeroed in place and the WAL is emptied before it returns.\n"
	"If a mount holds a read snapshot for more than a few seconds, one line\n"
	"says that destruction completes at the mount's next checkpoint (when\n"
	"it goes idle or unmounts). Backups made before keep their copies.\n"
	"Irreversible: asks on a terminal unless --yes.\n";
	const char *verb = destroy ? "destroy" : "retire";
	const struct rights_key *k;
	char op[32], what[32];
	uint64_t objects = 0;
	uint32_t v = 0;
	int rc, st, yes = 0, have = 0;

	if (cli_wants_help(argc, argv, destroy ? help_destroy : help_retire))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (destroy && !strcmp(argv[i], "--yes"))
			yes = 1;
		else if (!have && parse_version(argv[i], &v) == 0)
			have = 1;
		else {
			fprintf(stderr, "custodyctl: key %s: unexpected argument '%s'"
			        " (see key %s --help)\n", verb, argv[i], verb);
			return EXIT_USAGE;
		}
	}
	if (!have) {
		fprintf(stderr, "custodyctl: key %s needs a VERSION (see key %s"
		        " --help)\n", verb, verb);
		return EXIT_USAGE;
	}
	if (destroy && !yes) {
		char line[16];
		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr, "custodyctl: key destroy is irreversible: confirm"
			        " with --yes\n");
			return EXIT_USAGE;
		}
		fprintf(stderr, "Destroy key v%u for good (every sealed copy is"
		        " deleted)? Type YES: ", v);
		if (!fgets(line, sizeof line, stdin) || strcmp(line, "YES\n")) {
			fprintf(stderr, "custodyctl: not destroyed\n");
			return EXIT_USAGE;
		}
	}
	snprintf(op, sizeof op, "key %s", verb);
	snprintf(what, sizeof what, "v%u", v);
	if ((st = cli_unlock(c, 0, ADMIN, op)))
		return st;
	if ((rc = cli_begin(c))) {
		fprintf(stderr, "custodyctl: key %s: %s\n", verb,
		        rc == -EBUSY ? "store is busy" : strerror(-rc));
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	if (!(k = rights_key(c->un.r, v))) {
		fprintf(stderr, "custodyctl: no key version %u\n", v);
		return refuse(c, op, what, -ENOENT, EXIT_RUNTIME);
	}
	if ((rc = store_key_usage(c->un.s, v, 1, &objects)))
		goto fail;
	if (!destroy) {
		if (k->status == KEY_ACTIVE) {
			fprintf(stderr, "custodyctl: v%u is the active version: rotate"
			        " first\n", v);
			return refuse(c, op, what, -EBUSY, EXIT_RUNTIME);
		}
		if (k->status != KEY_DECRYPT_ONLY) {
			fprintf(stderr, "custodyctl: v%u is %s, not decrypt-only\n", v,
			        key_status_name(k->status));
			return refuse(c, op, what, -EINVAL, EXIT_RUNTIME);
		}
		if (objects) {
			fprintf(stderr, "custodyctl: v%u still encrypts %llu objects:"
			        " run custodyctl reencrypt first\n", v,
			        (unsigned long long)objects);
			return refuse(c, op, what, -EBUSY, EXIT_RUNTIME);
		}
		rc = keyadmin_retire(c->un.s, c->un.r, c->un.ss, v);
	} else {
		if (k->status != KEY_RETIRED) {
			fprintf(stderr, "custodyctl: v%u is %s: only a retired version"
			        " can be destroyed\n", v, key_status_name(k->status));
			return refuse(c, op, what, -EINVAL, EXIT_RUNTIME);
		}
		rc = keyadmin_destroy(c->un.s, c->un.r, c->un.ss, v);
	}
	if (!rc)
		rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
	if (!rc)
		rc = store_key_event(c->un.s, time(NULL), c->un.ss->name, verb, v, 0,
		                     NULL);
	if ((rc = cli_finish(c, op, what, rc)))
		goto fail2;
	if (destroy)
		shred_wal(c);
	printf("v%u %s\n", v, destroy ? "destroyed" : "retired");
	return EXIT_OK;
fail:
	cli_finish(c, op, what, rc);
fail2:
	fprintf(stderr, "custodyctl: key %s failed: %s\n", verb, strerror(-rc));
	return EXIT_RUNTIME;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl key list [--json]         versions, status, dates, objects\n"
	"       custodyctl key rotate [--authority]  new active version (admin)\n"
	"       custodyctl key retire VERSION        refuse while anything uses it\n"
	"       custodyctl key destroy VERSION       crypto-shred a retired version\n"
	"Each command takes --help.\n";

	if (argc < 2) {
		fprintf(stderr, "custodyctl: key needs a command (list, rotate,"
		        " retire, destroy; see custodyctl key --help)\n");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "list"))
		return key_list(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "rotate"))
		return key_rotate(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "retire"))
		return key_change(c, argc - 1, argv + 1, 0);
	if (!strcmp(argv[1], "destroy"))
		return key_change(c, argc - 1, argv + 1, 1);
	fprintf(stderr, "custodyctl: unknown key command '%s' (see key --help)\n",
	        argv[1]);
	return EXIT_USAGE;
}

/* ---- reencrypt ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void log_event(struct cli *c, const char *event, uint32_t v,
                      const char *detail)
{
	int rc = cli_begin(c);

	if (rc)
		return;
	rc = store_key_event(c->un.s, time(NULL), c->un.ss->name, event, 0, v,
	                     detail);
	cli_finish(c, "reencrypt", detail, rc);
}

static void fs_warn_line(const char *line)
{
	fprintf(stderr, "custodyctl: %s\n", line);
}

/* Move everything to the active version; an unlocked admin session. */
int cli_reencrypt_run(struct cli *c, double rate)
{
	struct fs_opts fo = { .shared = 1, .warn = fs_warn_line };
	struct fs *fs = NULL;
	uint64_t total = 0, done = 0, bytes = 0, moved, b, start_total, left = 0, listed = 0;
	int64_t started = cli_now_ms(), last_log;
	uint32_t v;
	char detail[256];
	int rc;

	v = keyring_active(c->un.ss->kr);
	if (!v) {
		fprintf(stderr, "custodyctl: no active key version to move to\n");
		return EXIT_RUNTIME;
	}
	if ((rc = fs_new(&c->un, &fo, &fs))) {
		fprintf(stderr, "custodyctl: cannot open the filesystem: %s\n",
		        strerror(-rc));
		return EXIT_RUNTIME;
	}
	fs_reencrypt_remaining(fs, 0, &total);
	start_total = total;
	interrupted = 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(detail, sizeof detail, "start: %llu objects to v%u (blocks,"
	         " names, xattrs, session audit keys)", (unsigned long long)total,
	         v);
	log_event(c, "reencrypt-start", v, detail);
	last_log = cli_now_ms();
	while (!interrupted) {
		rc = fs_reencrypt_step(fs, 256, &moved, &b);
		if (rc == -EBUSY) {
			/* the lock stayed held past the busy timeout (said by the
			 * wait notice): a step is atomic, so try again */
			fprintf(stderr, "custodyctl: reencrypt: trying again (Ctrl-C"
			        " stops; running reencrypt again resumes)\n");
			continue;
		}
		if (rc)
			break;
		if (!moved) {
			/* content is done; then the trail's session detail keys */
			if ((rc = cli_begin(c)) == 0) {
				rc = audit_reseal_sessions(c->un.s, c->un.r, c->un.ss, 256,
				                           &moved);
				rc = cli_finish(c, "reencrypt", "session audit keys", rc);
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
	if (!rc && !interrupted) {
		/* what is left, by the tables themselves: objects the index
		 * does not show are no object the steps above could find */
		fs_reencrypt_remaining(fs, 1, &left);
		fs_reencrypt_remaining(fs, 0, &listed);
	}
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
		/* the rate over the moving itself; the time over the whole
		 * command (login and waits for another process's write lock
		 * included), so what is printed is what was seen */
		double secs = (double)(cli_now_ms() - started) / 1000.0;
		double all = (double)(cli_now_ms() - c->started_ms) / 1000.0;
		double wait = (double)store_waited_ms(c->un.s) / 1000.0;
		uint64_t gone = start_total > done + left
		                ? start_total - done - left : 0;
		char also[96] = "", waits[64] = "";
		if (gone)
			snprintf(also, sizeof also, " (%llu more left the old versions"
			         " meanwhile: rewritten or deleted by a mount)",
			         (unsigned long long)gone);
		if (wait >= 0.01)
			snprintf(waits, sizeof waits, ", %.2f s of it waiting for the"
			         " store's write lock", wait);
		snprintf(detail, sizeof detail, "done: %llu of %llu objects moved%s,"
		         " %.1f MiB rewritten at %.1f MiB/s; the command took %.2f s%s",
		         (unsigned long long)done, (unsigned long long)start_total,
		         also, (double)bytes / 1048576.0,
		         secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0, all,
		         waits);
		log_event(c, "reencrypt-end", v, detail);
		printf("reencrypt %s\n", detail);
		if (left > listed) {
			fprintf(stderr, "custodyctl: reencrypt: %llu objects under"
			        " older versions are missing from the store's"
			        " key-version indexes (altered by someone who can"
			        " write the file): run check; no key version may be"
			        " retired or destroyed before\n",
			        (unsigned long long)(left - listed));
			return EXIT_DAMAGE;
		}
		if (left)
			printf("reencrypt: %llu objects are still under older versions"
			       " (written meanwhile by a mount that had not seen the"
			       " rotation yet): run reencrypt again\n",
			       (unsigned long long)left);
	}
	return EXIT_OK;
}

int cmd_reencrypt(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl reencrypt [--rate MiB/s]\n"
	"Move every object still under an older master-key version to the\n"
	"active one (admin). Objects are what key list counts: content blocks,\n"
	"names (directory entries), xattrs and session audit keys. Runs while\n"
	"the store is mounted and in use; each step is atomic, so it can be\n"
	"interrupted (Ctrl-C, kill -9) and resumed by running it again. --rate\n"
	"limits the content rewritten per second. A step that finds the store's\n"
	"write lock held waits (up to [store] busy_timeout) and says for whom.\n"
	"The last line gives the objects moved of those counted at the start\n"
	"(others may leave the old versions meanwhile: rewritten or deleted by\n"
	"a mount), and the wall time, with the part spent waiting for the lock.\n";
	double rate = 0;
	int st;

	for (int i = 1; i < argc; i++) {
		const char *val;
		int r;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return EXIT_OK;
		} else if ((r = cli_opt_value(argc, argv, &i, "--rate", &val))) {
			char *end;
			if (r < 0)
				return EXIT_USAGE;
			rate = strtod(val, &end);
			if (*end || rate <= 0) {
				fprintf(stderr, "custodyctl: bad --rate '%s'\n", val);
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

/* Retire (and destroy) every version older than the active one that
 * nothing uses any more. */
static int retire_old(struct cli *c, int destroy)
{
	uint32_t active = rights_active(c->un.r);
	int rc = 0;

	for (size_t i = 0; i < c->un.r->nkeys && !rc; i++) {
		struct rights_key k = c->un.r->keys[i];
		uint64_t objects = 0;

		if (k.version == active || k.status == KEY_DESTROYED ||
		    (!destroy && k.status == KEY_RETIRED))
			continue;
		if ((rc = store_key_usage(c->un.s, k.version, 1, &objects)))
			break;
		if (objects)
			continue; /* still in use: reencrypt did not finish */
		if (k.status == KEY_DECRYPT_ONLY) {
			if ((rc = keyadmin_retire(c->un.s, c->un.r, c->un.ss, k.version)) ||
			    (rc = store_key_event(c->un.s, time(NULL), c->un.ss->name,
			                          "retire", k.version, 0, "revoke")))
				break;
		}
		if (destroy &&
		    ((rc = keyadmin_destroy(c->un.s, c->un.r, c->un.ss, k.version)) ||
		     (rc = store_key_event(c->un.s, time(NULL), c->un.ss->name,
		                           "destroy", k.version, 0, "revoke"))))
			break;
	}
	if (!rc)
		rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
	return rc;
}

int cli_user_revoke(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl user revoke NAME [--destroy] [--rate MiB/s]\n"
	"Lock NAME out for good, in one resumable command: remove the user and\n"
	"every key grant they hold, rotate to a new master-key version they never\n"
	"see, re-encrypt everything to it, and retire the versions they held\n"
	"(--destroy also crypto-shreds them, so even an old copy of their key\n"
	"material opens no block of the current store). Each step is also a\n"
	"command of its own (user del, key rotate, reencrypt, key retire/destroy).\n"
	"Interrupted? Run the same command again: it carries on.\n";
	const char *name = NULL;
	const struct rights_user *u;
	double rate = 0;
	uint32_t old = 0, v = 0;
	int destroy = 0, rc, st;

	for (int i = 1; i < argc; i++) {
		const char *val;
		int r;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--destroy"))
			destroy = 1;
		else if ((r = cli_opt_value(argc, argv, &i, "--rate", &val))) {
			char *end;
			if (r < 0)
				return EXIT_USAGE;
			rate = strtod(val, &end);
			if (*end || rate <= 0) {
				fprintf(stderr, "custodyctl: user revoke: bad --rate '%s'"
				        " (MiB/s, a number above 0)\n", val);
				return EXIT_USAGE;
			}
		} else if (!name && argv[i][0] != '-')
			name = argv[i];
		else {
			fprintf(stderr, "custodyctl: user revoke: unexpected '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!name) {
		fprintf(stderr, "custodyctl: user revoke needs a NAME (see user"
		        " revoke --help)\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, ADMIN, "user revoke")))
		return st;
	if (!strcmp(name, c->un.ss->name)) {
		fprintf(stderr, "custodyctl: an admin cannot revoke themself\n");
		return EXIT_RUNTIME;
	}
	if ((rc = cli_begin(c))) {
		fprintf(stderr, "custodyctl: store is busy\n");
		return EXIT_BUSY;
	}
	u = rights_user_named(c->un.r, name);
	if (u) {
		int64_t id = u->id;
		if (rights_role(u) == ROLE_ADMIN && keyadmin_admins(c->un.r) <= 1) {
			fprintf(stderr, "custodyctl: user revoke: '%s' is the last"
			        " admin\n", name);
			cli_finish(c, "user revoke", name, -EPERM);
			return EXIT_RUNTIME;
		}
		/* step 1: the user and every grant they hold go, then a
		 * version they never held becomes active */
		if (!(rc = keyadmin_user_remove(c->un.s, c->un.r, c->un.ss, id)) &&
		    !(rc = keyadmin_rotate(c->un.s, c->un.r, c->un.ss,
		                           c->un.cfg.key_max_age_s, &old, &v)) &&
		    !(rc = store_key_event(c->un.s, time(NULL), c->un.ss->name,
		                           "revoke", old, v, name)) &&
		    !(rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss)))
			rc = unlock_cred_changed_id(&c->un, id);
		if ((rc = cli_finish(c, "user revoke", name, rc)))
			goto fail;
		printf("revoked '%s': grants removed, v%u active\n", name, v);
	} else {
		cli_finish(c, "user revoke", name, -ENOENT);
		printf("'%s' is already removed: resuming re-encryption\n", name);
	}
	/* step 2: everything moves to the new version */
	if ((st = cli_reencrypt_run(c, rate)))
		return st;
	/* step 3: the versions they held retire (and are destroyed) */
	if ((rc = cli_begin(c)))
		goto fail;
	rc = retire_old(c, destroy);
	if ((rc = cli_finish(c, destroy ? "key destroy" : "key retire", "revoke",
	                     rc)))
		goto fail;
	if (destroy)
		shred_wal(c);
	printf("older versions %s\n", destroy ? "retired and destroyed" : "retired");
	return EXIT_OK;
fail:
	fprintf(stderr, "custodyctl: user revoke failed: %s (run it again to"
	        " resume)\n", strerror(-rc));
	return EXIT_RUNTIME;
}
