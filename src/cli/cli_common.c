/*
 * cli_common.c - what every custodyctl command shares: unlocking with a
 * role check, recording admin actions, new passphrases, progress output,
 * JSON strings and times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "keyring.h"
#include "cli.h"
#include "passphrase.h"
#include "store.h"

int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_unlock(struct cli *c, int store_flags, int roles, const char *what)
{
	int st = unlock_store(&c->u, store_flags, &c->un);

	if (st)
		return st;
	if (roles && !(roles & (1 << c->un.ss->role))) {
		fprintf(stderr, "custodyctl: %s needs the role %s; user '%s' is %s\n",
		        what,
		        roles == (1 << ROLE_ADMIN) ? "admin"
		        : roles == ((1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR))
		                ? "admin or auditor" : "admin, writer or reader",
		        c->un.ss->name, role_name(c->un.ss->role));
		if (!(store_flags & STORE_READONLY) && store_begin(c->un.s) == 0) {
			struct audit *a = NULL;
			if (audit_new(c->un.s, c->un.kr, c->un.ss, 0, &a) == 0 &&
			    audit_admin(a, what, "denied", -EPERM) == 0)
				store_commit(c->un.s);
			else
				store_rollback(c->un.s);
			audit_free(a);
		}
		return EXIT_DENIED;
	}
	if (audit_new(c->un.s, c->un.kr, c->un.ss, 0, &c->audit) != 0)
		c->audit = NULL;
	if (keyring_expired(c->un.kr) && c->un.ss->authority_sk &&
	    store_begin(c->un.s) == 0) {
		/* [keys] max_age: the next admin command rotates */
		uint32_t old, v;
		int rc = keyring_rotate_logged(c->un.kr, c->un.s, c->un.ss,
		                               c->un.cfg.key_max_age_s, "auto-rotate",
		                               "active key expired", &old, &v);
		audit_rekey(c->audit);
		if (!rc && c->audit)
			rc = audit_admin(c->audit, "key auto-rotate", "expired", 0);
		if (!rc && !(rc = store_commit(c->un.s))) {
			fprintf(stderr, "custodyctl: key v%u expired: rotated to v%u\n",
			        old, v);
			c->auto_rotated = 1;
		} else
			store_rollback(c->un.s);
	}
	/* read-only commands (list, verify, info, check) write nothing, so
	 * reading the trail never changes it */
	if (c->audit && !(store_flags & STORE_READONLY) &&
	    store_begin(c->un.s) == 0) {
		/* the login itself, and failures waiting to enter the trail */
		if (audit_adopt_auth_events(c->audit) == 0 &&
		    audit_admin(c->audit, "login", what, 0) == 0)
			store_commit(c->un.s);
		else
			store_rollback(c->un.s);
	}
	return EXIT_OK;
}

void cli_done(struct cli *c)
{
	audit_free(c->audit);
	c->audit = NULL;
	if (c->un.s && store_in_transaction(c->un.s))
		store_rollback(c->un.s);
	unlock_free(&c->un);
}

int cli_record(struct cli *c, const char *op, const char *target, int rc)
{
	if (!c->audit)
		return 0;
	return audit_admin(c->audit, op, target, rc);
}

int cli_new_passphrase(struct cli *c, const char *file, const char *who,
                       struct passphrase *out)
{
	char err[512], prompt[128];

	(void)c;
	snprintf(prompt, sizeof prompt, "New passphrase for %s: ", who);
	if (passphrase_get(file, NULL, prompt, 1, out, err, sizeof err)) {
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

void cli_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
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

void cli_time_ns(char *buf, size_t len, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char b[32];

	gmtime_r(&t, &tm);
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", b, (long)(ns % 1000000000 / 1000));
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
