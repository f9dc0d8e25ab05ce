/*
 * config.c - custodyfs.ini via inih. The only file that includes ini.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <ini.h>

#include "config.h"

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	/* 64 MiB (as gocryptfs's scrypt) with 4 passes: about libsodium's
	 * MODERATE cost, without a 256 MiB spike in the daemon at login */
	c->kdf_opslimit = 4;
	c->kdf_memlimit = 64ull << 20;
	c->block_size = 4096;
	c->busy_timeout_ms = 10000;
	c->commit_interval_ms = 1000;
	c->idle_checkpoint_ms = 3000;
	c->attr_timeout_ms = 1000;
	c->readahead = 4 << 20;
	c->max_failures = 5;
	c->lockout_s = 60;
	c->key_max_age_s = 0;
	c->audit_flush_ms = 1000;
	snprintf(c->audit_syslog_socket, sizeof c->audit_syslog_socket,
	         "/dev/log");
}

int64_t config_parse_duration_ms(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	if (!strcasecmp(end, "ms"))
		;
	else if (!*end || !strcasecmp(end, "s"))
		v *= 1000;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "min"))
		v *= 60e3;
	else if (!strcasecmp(end, "h"))
		v *= 3600e3;
	else if (!strcasecmp(end, "d"))
		v *= 86400e3;
	else if (!strcasecmp(end, "w"))
		v *= 7 * 86400e3;
	else
		return -1;
	if (v > 9e15)
		return -1;
	return (int64_t)v;
}

int64_t config_parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: return -1;
	}
	if ((*end == 'B' || *end == 'b') && end[1] == 0)
		end++;
	if (*end || v > (1ull << 40))
		return -1;
	return (int64_t)v;
}

struct load {
	struct config *c;
	char *err;
	size_t errlen;
	const char *path;
};

static int bad(struct load *l, int line, const char *sec, const char *key,
               const char *why)
{
	(void)line;
	snprintf(l->err, l->errlen, "%s: [%s] %s: %s", l->path, sec, key, why);
	return 0;
}

static int handler(void *user, const char *sec, const char *key,
                   const char *val)
{
	const int line = 0; /* Debian's inih does not pass line numbers */
	struct load *l = user;
	struct config *c = l->c;
	int64_t v;

#define IS(s, k) (!strcmp(sec, s) && !strcmp(key, k))
	if (IS("kdf", "opslimit")) {
		char *end;
		unsigned long long o = strtoull(val, &end, 10);
		if (*end || o < 1 || o > 64)
			return bad(l, line, sec, key, "expected 1..64");
		c->kdf_opslimit = o;
	} else if (IS("kdf", "memlimit")) {
		if ((v = config_parse_size(val)) < 8192 || v > (4ll << 30))
			return bad(l, line, sec, key, "expected a size 8K..4G");
		c->kdf_memlimit = (uint64_t)v;
	} else if (IS("store", "block_size")) {
		if ((v = config_parse_size(val)) < 512 || v > 65536 ||
		    (v & (v - 1)))
			return bad(l, line, sec, key,
			           "expected a power of two 512..64K");
		c->block_size = (uint32_t)v;
	} else if (IS("store", "busy_timeout")) {
		if ((c->busy_timeout_ms = config_parse_duration_ms(val)) < 0)
			return bad(l, line, sec, key, "expected a duration");
	} else if (IS("mount", "commit_interval")) {
		if ((v = config_parse_duration_ms(val)) < 1 || v > 60000)
			return bad(l, line, sec, key, "expected 1ms..60s");
		c->commit_interval_ms = v;
	} else if (IS("mount", "idle_checkpoint")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, line, sec, key, "expected a duration");
		c->idle_checkpoint_ms = v;
	} else if (IS("mount", "attr_timeout")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, line, sec, key, "expected a duration");
		c->attr_timeout_ms = v;
	} else if (IS("mount", "readahead")) {
		if ((v = config_parse_size(val)) < 0 ||
		    (v && (v < 4096 || v > (64ll << 20))))
			return bad(l, line, sec, key,
			           "expected 0 (the kernel's) or a size 4K..64M");
		c->readahead = v;
	} else if (IS("auth", "max_failures")) {
		char *end;
		long n = strtol(val, &end, 10);
		if (*end || n < 0 || n > 1000)
			return bad(l, line, sec, key, "expected 0..1000 (0: never lock)");
		c->max_failures = n;
	} else if (IS("auth", "lockout")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, line, sec, key, "expected a duration");
		c->lockout_s = (v + 999) / 1000;
	} else if (IS("keys", "max_age")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, line, sec, key, "expected a duration (0: never)");
		c->key_max_age_s = (v + 999) / 1000;
	} else if (IS("audit", "syslog")) {
		if (!strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true"))
			c->audit_syslog = 1;
		else if (!strcmp(val, "off") || !strcmp(val, "no") ||
		         !strcmp(val, "false"))
			c->audit_syslog = 0;
		else
			return bad(l, line, sec, key, "expected on or off");
	} else if (IS("audit", "syslog_socket")) {
		if (val[0] != '/' || strlen(val) >= sizeof c->audit_syslog_socket)
			return bad(l, line, sec, key, "expected an absolute path"
			           " shorter than 108 bytes");
		snprintf(c->audit_syslog_socket, sizeof c->audit_syslog_socket,
		         "%s", val);
	} else if (IS("audit", "flush_interval")) {
		if ((v = config_parse_duration_ms(val)) < 1 || v > 60000)
			return bad(l, line, sec, key, "expected 1ms..60s");
		c->audit_flush_ms = v;
	} else
		return bad(l, line, sec, key, "unknown setting");
#undef IS
	return 1;
}

/*
 * The section lines, checked before inih reads the file (it would take a
 * header without its ']' for no header, and an unknown section shows only
 * as its keys being unknown): 0, or -1 with one line in l->err.
 */
static int check_sections(FILE *f, struct load *l)
{
	static const char *const known[] = { "kdf", "store", "mount", "auth",
	                                     "keys", "audit" };
	char *line = NULL;
	size_t cap = 0;
	int n = 0, in_section = 0, rc = 0;

	while (!rc && getline(&line, &cap, f) > 0) {
		char *p = line, *end;
		size_t len;
		int ok = 0;

		n++;
		if (n == 1 && !strncmp(p, "\xef\xbb\xbf", 3))
			p += 3; /* a UTF-8 byte order mark, as inih allows */
		p += strspn(p, " \t");
		len = strcspn(p, "\r\n");
		p[len] = 0;
		if (!*p || *p == ';' || *p == '#')
			continue;
		if (*p != '[') {
			if (!in_section) {
				snprintf(l->err, l->errlen, "%s:%d: '%.60s' is outside any"
				         " section (sections: [kdf] [store] [mount] [auth]"
				         " [keys] [audit])", l->path, n, p);
				rc = -1;
			}
			continue;
		}
		if (!(end = strchr(p, ']'))) {
			snprintf(l->err, l->errlen, "%s:%d: '%.60s': a section header"
			         " needs its closing ']'", l->path, n, p);
			rc = -1;
			continue;
		}
		*end = 0;
		for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
			ok |= !strcmp(p + 1, known[i]);
		if (!ok) {
			snprintf(l->err, l->errlen, "%s:%d: unknown section [%.60s]"
			         " (sections: [kdf] [store] [mount] [auth] [keys]"
			         " [audit])", l->path, n, p + 1);
			rc = -1;
		}
		in_section = 1;
	}
	free(line);
	rewind(f);
	return rc;
}

int config_load(const char *path, struct config *c, char *err, size_t errlen)
{
	struct load l = { c, err, errlen, path };
	FILE *f;
	int rc;

	if (!path) {
		if (access(CONFIG_DEFAULT_PATH, F_OK) != 0)
			return 0;
		path = l.path = CONFIG_DEFAULT_PATH;
	}
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "cannot read config '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	err[0] = 0;
	if (check_sections(f, &l)) {
		fclose(f);
		return -1;
	}
	rc = ini_parse_file(f, handler, &l);
	fclose(f);
	if (rc != 0) {
		if (!err[0])
			snprintf(err, errlen, "%s:%d: syntax error (expected"
			         " 'key = value', a [section] or a ; comment)", path, rc);
		else if (rc > 0) {
			/* inih reports the first failing line: "FILE:LINE: ..." */
			char tmp[512];
			size_t n = strlen(path);
			snprintf(tmp, sizeof tmp, "%s", err);
			if (!strncmp(tmp, path, n) && !strncmp(tmp + n, ": ", 2))
				snprintf(err, errlen, "%s:%d: %s", path, rc, tmp + n + 2);
			else
				snprintf(err, errlen, "%s (line %d)", tmp, rc);
		}
		return -1;
	}
	return 0;
}
