/*
 * cli_common.c - what every custodyctl command shares: unlocking with a
 * role check, recording admin actions, new passphrases, progress output,
 * JSON strings and times.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "cli.h"
#include "keyadmin.h"
#include "keyring.h"
#include "passphrase.h"
#include "role.h"
#include "session.h"
#include "store.h"

int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_report(const char *what, const char *name, int rc)
{
	switch (rc) {
	case -EBADMSG:
		fprintf(stderr, "custodyctl: %s '%s': store fails verification"
		        " (a row was tampered with)\n", what, name);
		return EXIT_DAMAGE;
	case -EBUSY:
		fprintf(stderr, "custodyctl: %s '%s': store is locked by another"
		        " process\n", what, name);
		return EXIT_BUSY;
	case -EPERM:
		fprintf(stderr, "custodyctl: %s '%s': this session holds no"
		        " authority key\n", what, name);
		return EXIT_DENIED;
	case -EACCES:
		fprintf(stderr, "custodyctl: %s '%s': this user's rights changed"
		        " meanwhile\n", what, name);
		return EXIT_DENIED;
	case -ENOMEM:
		fprintf(stderr, "custodyctl: %s '%s': out of memory (Argon2id"
		        " memlimit?)\n", what, name);
		return EXIT_RUNTIME;
	case -EROFS:
		fprintf(stderr, "custodyctl: %s '%s': the store is read-only for"
		        " this user\n", what, name);
		return EXIT_RUNTIME;
	default:
		fprintf(stderr, "custodyctl: %s '%s': %s\n", what, name,
		        strerror(rc < 0 ? -rc : rc));
		return EXIT_RUNTIME;
	}
}

static const char *roles_text(int roles)
{
	if (roles == (1 << ROLE_ADMIN))
		return "admin";
	if (roles == ((1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR)))
		return "admin or auditor";
	return "admin, writer or reader";
}

/* --recovery FILE: the hex line init printed, into locked memory. */
static int read_recovery(struct cli *c)
{
	struct passphrase line = { 0 };
	char err[512];
	const char *file = strcmp(c->recovery_file, "-") ? c->recovery_file : NULL;

	if (passphrase_get(file, NULL, "Recovery secret: ", 0, &line, err,
	                   sizeof err)) {
		fprintf(stderr, "custodyctl: --recovery: %s\n", err);
		return EXIT_USAGE;
	}
	if (!(c->recovery = secmem_alloc(KEYADMIN_RECOVERY_BYTES)) ||
	    line.len != 2 * KEYADMIN_RECOVERY_BYTES ||
	    cipher_unhex(c->recovery, KEYADMIN_RECOVERY_BYTES, line.buf)) {
		passphrase_free(&line);
		fprintf(stderr, "custodyctl: --recovery: not a recovery secret (%d"
		        " hex digits expected)\n", 2 * KEYADMIN_RECOVERY_BYTES);
		return EXIT_USAGE;
	}
	passphrase_free(&line);
	c->u.recovery = c->recovery;
	c->u.kind = "recovery";
	return EXIT_OK;
}

/*
 * Who holds the store's write lock: SQLite's WAL write lock is a POSIX
 * lock on byte 120 of STORE-shm, and /proc/locks names its process. Into
 * out: "custodyfs pid 123 (mount on /mnt)" or "" if not found.
 */
static void lock_holder(const char *store, char *out, size_t cap)
{
	char shm[PATH_MAX + 8], line[256], p[64], comm[64] = "";
	struct stat sb;
	FILE *f;
	long pid = 0;

	out[0] = 0;
	snprintf(shm, sizeof shm, "%s-shm", store);
	if (stat(shm, &sb) != 0 || !(f = fopen("/proc/locks", "re")))
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned maj, min;
		unsigned long long ino;
		long lp;
		char start[32], end[32];
		const char *q = strchr(line, ':');
		if (!q || sscanf(q + 1, " POSIX ADVISORY WRITE %ld %x:%x:%llu %31s %31s",
		                 &lp, &maj, &min, &ino, start, end) != 6)
			continue;
		if (maj == major(sb.st_dev) && min == minor(sb.st_dev) &&
		    ino == (unsigned long long)sb.st_ino && !strcmp(start, "120")) {
			pid = lp;
			break;
		}
	}
	fclose(f);
	if (pid <= 0)
		return;
	snprintf(p, sizeof p, "/proc/%ld/comm", pid);
	if ((f = fopen(p, "re"))) {
		if (fgets(comm, sizeof comm, f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(out, cap, "%s pid %ld%s", comm[0] ? comm : "process", pid,
	         !strcmp(comm, "custodyfs")
	         ? ", a mount of this store, which holds it while it gathers"
	           " writes into a group commit" : "");
}

void cli_wait_notice(void *arg, int64_t waited_ms, int outcome)
{
	struct cli *c = arg;
	const char *what = c->what ? c->what : "login";
	char holder[256];

	if (outcome == 0) {
		lock_holder(c->u.store, holder, sizeof holder);
		fprintf(stderr, "custodyctl: %s: waiting for the store's write lock,"
		        " held by %s (giving up after %.0f s, [store] busy_timeout)\n",
		        what, holder[0] ? holder : "another process",
		        (double)c->un.cfg.busy_timeout_ms / 1000.0);
	} else if (outcome > 0)
		fprintf(stderr, "custodyctl: %s: got the write lock after %.1f s\n",
		        what, (double)waited_ms / 1000.0);
	else
		fprintf(stderr, "custodyctl: %s: gave up waiting for the write lock"
		        " after %.1f s\n", what, (double)waited_ms / 1000.0);
}

int cli_unlock(struct cli *c, int store_flags, int roles, const char *what)
{
	int st, rc;

	c->what = what;
	c->u.kind = "ctl";
	if (c->recovery_file && (st = read_recovery(c)))
		return st;
	/* a command that only reads may inspect a damaged store */
	c->u.inspect = !!(store_flags & STORE_READONLY);
	if ((st = unlock_store(&c->u, store_flags, &c->un)))
		return st;
	c->unlocked = 1;
	if (roles && !(roles & (1 << c->un.ss->role))) {
		fprintf(stderr, "custodyctl: %s needs the role %s; user '%s' is %s\n",
		        what, roles_text(roles), c->un.ss->name,
		        role_name(c->un.ss->role));
		cli_record(c, what, "denied", -EPERM);
		return EXIT_DENIED;
	}
	if (keyring_expired(c->un.ss->kr) && role_administers(c->un.ss->role) &&
	    !c->un.readonly) {
		/* [keys] max_age: the next admin command rotates */
		uint32_t old = 0, v = 0;
		if ((rc = cli_begin(c)) >= 0) {
			rc = keyadmin_rotate(c->un.s, c->un.r, c->un.ss,
			                     c->un.cfg.key_max_age_s, &old, &v);
			if (!rc)
				rc = keyadmin_sign(c->un.s, c->un.r, c->un.ss);
			if (!rc)
				store_key_event(c->un.s, time(NULL), c->un.ss->name,
				                "auto-rotate", old, v, "active key expired");
			rc = cli_finish(c, "key auto-rotate", "expired", rc);
		}
		if (!rc) {
			fprintf(stderr, "custodyctl: key v%u expired: rotated to v%u\n",
			        old, v);
			c->auto_rotated = 1;
		} else
			fprintf(stderr, "custodyctl: warning: the expired key v%u could"
			        " not be rotated: %s\n", old, strerror(-rc));
	}
	return EXIT_OK;
}

void cli_done(struct cli *c)
{
	if (c->unlocked)
		unlock_free(&c->un);
	c->unlocked = 0;
	secmem_free(c->recovery);
	c->recovery = NULL;
}

int cli_begin(struct cli *c)
{
	int rc = unlock_begin(&c->un);
	return rc < 0 ? rc : 0;
}

int cli_finish(struct cli *c, const char *op, const char *target, int rc)
{
	return unlock_finish(&c->un, op, target ? target : "", rc);
}

int cli_record(struct cli *c, const char *op, const char *target, int rc)
{
	return unlock_record(&c->un, op, target ? target : "", rc);
}

int cli_new_passphrase(struct cli *c, const char *file, const char *who,
                       struct passphrase *out)
{
	char err[512], prompt[128];

	(void)c;
	snprintf(prompt, sizeof prompt, "New passphrase for %s: ", who);
	if (passphrase_get(file, NULL, prompt, 1, out, err, sizeof err)) {
		if (!file && !strncmp(err, "no terminal", 11))
			/* --passfile is the login's: the new one has its own */
			fprintf(stderr, "custodyctl: no terminal to ask for the new"
			        " passphrase of '%s': give it with --new-passfile"
			        " FILE\n", who);
		else
			fprintf(stderr, "custodyctl: %s\n", err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

void cli_progress(struct cli *c, const char *what, uint64_t done,
                  uint64_t total, int64_t started_ms, int final)
{
	static int64_t last;
	int64_t now = cli_now_ms(), el = now - started_ms;
	double rate = el > 0 ? (double)done * 1000.0 / (double)el : 0;
	double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
	int pct = total ? (int)(done * 100 / total) : 100;

	/* not a terminal: quiet for short work, a line every 5 s for long */
	if (!c->tty && el < 5000)
		return;
	if (!final && now - last < (c->tty ? 200 : 5000))
		return;
	last = now;
	if (c->tty) {
		char bar[31];
		int fill = pct * 30 / 100;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = 0;
		fprintf(stderr, "\r%s [%s] %3d%% %llu/%llu  %.1f/s  ETA %.0fs ", what,
		        bar, pct, (unsigned long long)done, (unsigned long long)total,
		        rate, eta);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "%s: %llu/%llu (%d%%), %.1f/s, eta %.0fs\n", what,
		        (unsigned long long)done, (unsigned long long)total, pct,
		        rate, eta);
	}
	fflush(stderr);
}

/* Length of the valid UTF-8 sequence at p, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

void cli_json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	while (*p) {
		size_t n = utf8_len(p);
		if (!n) {
			fputs("\\ufffd", stdout); /* not UTF-8: see cli_json_b64 */
			p++;
		} else if (n > 1) {
			fwrite(p, 1, n, stdout);
			p += n;
		} else {
			unsigned char ch = *p++;
			if (ch == '"' || ch == '\\')
				printf("\\%c", ch);
			else if (ch == '\n')
				fputs("\\n", stdout);
			else if (ch == '\t')
				fputs("\\t", stdout);
			else if (ch < 0x20 || ch == 0x7f)
				printf("\\u%04x", ch);
			else
				putchar(ch);
		}
	}
	putchar('"');
}

void cli_json_b64(const char *key, const char *s)
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (utf8_valid(s))
		return;
	printf(",\"%s_b64\":\"", key);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 |
		             (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		putchar(tab[v >> 18 & 63]);
		putchar(tab[v >> 12 & 63]);
		putchar(i + 1 < n ? tab[v >> 6 & 63] : '=');
		putchar(i + 2 < n ? tab[v & 63] : '=');
	}
	putchar('"');
}

void cli_time(char *buf, size_t len, int64_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (secs <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cli_time_ns(char *buf, size_t len, int64_t ns, int digits)
{
	time_t t = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	char b[32];

	if (frac < 0) {
		t--;
		frac += 1000000000;
	}
	gmtime_r(&t, &tm);
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits >= 9)
		snprintf(buf, len, "%s.%09ldZ", b, frac);
	else
		snprintf(buf, len, "%s.%06ldZ", b, frac / 1000);
}

int cli_wants_help(int argc, char **argv, const char *text)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(text, stdout);
			return 1;
		}
	return 0;
}

int cli_opt_value(int argc, char **argv, int *i, const char *opt,
                  const char **val)
{
	size_t n = strlen(opt);

	*val = NULL;
	if (strncmp(argv[*i], opt, n))
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n])
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "custodyctl: %s needs a value\n", opt);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}
