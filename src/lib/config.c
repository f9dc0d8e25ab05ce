/*
 * config.c - custodyfs.ini via inih. The only file that includes ini.h.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
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
	c->spin_us = 50;
	c->max_failures = 5;
	c->lockout_s = 60;
	c->key_max_age_s = 0;
	c->audit_flush_ms = 1000;
	snprintf(c->audit_syslog_socket, sizeof c->audit_syslog_socket,
	         "/dev/log");
}

int64_t config_parse_duration_ms(const char *s)
{
	const char *p;
	char *end;
	double v;

	/* a plain decimal number: strtod would also take "nan", "inf",
	 * hexadecimal and leading blanks or signs */
	if (!((*s >= '0' && *s <= '9') ||
	      (*s == '.' && s[1] >= '0' && s[1] <= '9')))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	for (p = s; p < end; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
		      *p == 'E' || *p == '+' || *p == '-'))
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
	if (!(v >= 0 && v <= 9e15))
		return -1;
	return (int64_t)v;
}

int64_t config_parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1; /* no sign, no blank: strtoull would take both */
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return -1;
	}
	if ((*end == 'B' || *end == 'b') && end[1] == 0)
		end++;
	/* compare before scaling: a shifted number must not wrap */
	if (*end || v > ((1ull << 40) >> shift))
		return -1;
	return (int64_t)(v << shift);
}

struct load {
	struct config *c;
	char *err;
	size_t errlen;
	const char *path;
	FILE *f;
	int line;       /* the line the reader gave inih last */
	int bad_line;   /* the first line a setting was refused on, or 0 */
	char *buf;      /* getline's */
	size_t cap;
};

/*
 * The first refused setting is the one reported, with its own line
 * (Debian's inih passes no line numbers to the handler, and goes on after
 * an error): the reader counts the lines it hands to inih.
 */
static int bad(struct load *l, const char *sec, const char *key,
               const char *why)
{
	if (!l->bad_line) {
		l->bad_line = l->line;
		snprintf(l->err, l->errlen, "%s:%d: [%s] %s: %s", l->path, l->line,
		         sec, key, why);
	}
	return 0;
}

/*
 * inih's reader (fgets-like), one whole line a call, so that inih's line
 * numbers are the file's: a line inih could not take whole (it would read
 * the rest as a line of its own; a long comment is handed on as just its
 * mark) or one holding a NUL byte (inih would see only what comes before
 * it) ends the parse as a refusal of its own.
 */
static char *reader(char *str, int num, void *stream)
{
	struct load *l = stream;
	ssize_t n;

	if (l->bad_line)
		return NULL;
	n = getline(&l->buf, &l->cap, l->f);
	if (n < 0)
		return NULL;
	l->line++;
	if ((size_t)n == strlen(l->buf) && n >= num && num >= 3) {
		const char *p = l->buf + strspn(l->buf, " \t");
		if (*p == ';' || *p == '#') { /* a long comment: only its mark */
			memcpy(str, ";\n", 3);
			return str;
		}
	}
	if ((size_t)n != strlen(l->buf) || n >= num) {
		l->bad_line = l->line;
		snprintf(l->err, l->errlen, "%s:%d: %s", l->path, l->line,
		         (size_t)n != strlen(l->buf) ? "a NUL byte in the line"
		                                      : "line too long");
		return NULL;
	}
	memcpy(str, l->buf, (size_t)n + 1);
	return str;
}

/* A plain decimal integer lo..hi (no sign, no blank, not empty). */
static int int_in(const char *val, long long lo, long long hi, int64_t *out)
{
	long long n = 0;
	const char *p = val;

	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || n > hi)
			return -1;
		n = n * 10 + (*p - '0');
	}
	if (n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

static int handler(void *user, const char *sec, const char *key,
                   const char *val)
{
	struct load *l = user;
	struct config *c = l->c;
	int64_t v;

	if (!*val) /* "key =" sets nothing: never read it as 0 or off */
		return bad(l, sec, key, "no value");
#define IS(s, k) (!strcmp(sec, s) && !strcmp(key, k))
	if (IS("kdf", "opslimit")) {
		if (int_in(val, 1, 64, &v))
			return bad(l, sec, key, "expected 1..64");
		c->kdf_opslimit = (uint64_t)v;
	} else if (IS("kdf", "memlimit")) {
		if ((v = config_parse_size(val)) < 8192 || v > (4ll << 30))
			return bad(l, sec, key, "expected a size 8K..4G");
		c->kdf_memlimit = (uint64_t)v;
	} else if (IS("store", "block_size")) {
		if ((v = config_parse_size(val)) < 512 || v > 65536 ||
		    (v & (v - 1)))
			return bad(l, sec, key,
			           "expected a power of two 512..64K");
		c->block_size = (uint32_t)v;
	} else if (IS("store", "busy_timeout")) {
		/* store_open takes an int of milliseconds */
		if ((v = config_parse_duration_ms(val)) < 0 || v > INT_MAX)
			return bad(l, sec, key, "expected a duration up to 24d");
		c->busy_timeout_ms = v;
	} else if (IS("mount", "commit_interval")) {
		if ((v = config_parse_duration_ms(val)) < 1 || v > 60000)
			return bad(l, sec, key, "expected 1ms..60s");
		c->commit_interval_ms = v;
	} else if (IS("mount", "idle_checkpoint")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, sec, key, "expected a duration");
		c->idle_checkpoint_ms = v;
	} else if (IS("mount", "attr_timeout")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, sec, key, "expected a duration");
		c->attr_timeout_ms = v;
	} else if (IS("mount", "readahead")) {
		if ((v = config_parse_size(val)) < 0 ||
		    (v && (v < 4096 || v > (64ll << 20))))
			return bad(l, sec, key,
			           "expected 0 (the kernel's) or a size 4K..64M");
		c->readahead = v;
	} else if (IS("mount", "spin_us")) {
		if (int_in(val, 0, 10000, &v))
			return bad(l, sec, key, "expected 0..10000 microseconds (0: off)");
		c->spin_us = v;
	} else if (IS("auth", "max_failures")) {
		if (int_in(val, 0, 1000, &v))
			return bad(l, sec, key, "expected 0..1000 (0: never lock)");
		c->max_failures = v;
	} else if (IS("auth", "lockout")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, sec, key, "expected a duration");
		c->lockout_s = (v + 999) / 1000;
	} else if (IS("keys", "max_age")) {
		if ((v = config_parse_duration_ms(val)) < 0)
			return bad(l, sec, key, "expected a duration (0: never)");
		c->key_max_age_s = (v + 999) / 1000;
	} else if (IS("audit", "syslog")) {
		if (!strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true"))
			c->audit_syslog = 1;
		else if (!strcmp(val, "off") || !strcmp(val, "no") ||
		         !strcmp(val, "false"))
			c->audit_syslog = 0;
		else
			return bad(l, sec, key, "expected on or off");
	} else if (IS("audit", "syslog_socket")) {
		if (val[0] != '/' || strlen(val) >= sizeof c->audit_syslog_socket)
			return bad(l, sec, key, "expected an absolute path"
			           " shorter than 108 bytes");
		snprintf(c->audit_syslog_socket, sizeof c->audit_syslog_socket,
		         "%s", val);
	} else if (IS("audit", "flush_interval")) {
		if ((v = config_parse_duration_ms(val)) < 1 || v > 60000)
			return bad(l, sec, key, "expected 1ms..60s");
		c->audit_flush_ms = v;
	} else
		return bad(l, sec, key, "unknown setting");
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
	struct load l;
	int rc;

	memset(&l, 0, sizeof l);
	l.c = c;
	l.err = err;
	l.errlen = errlen;
	l.path = path;
	if (!path) {
		if (access(CONFIG_DEFAULT_PATH, F_OK) != 0)
			return 0;
		path = l.path = CONFIG_DEFAULT_PATH;
	}
	l.f = fopen(path, "re");
	if (!l.f) {
		snprintf(err, errlen, "cannot read config '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	if (errlen)
		err[0] = 0;
	if (check_sections(l.f, &l)) {
		fclose(l.f);
		return -1;
	}
	rc = ini_parse_stream(reader, &l, handler, &l);
	fclose(l.f);
	free(l.buf);
	/* inih's result is its first bad line (a syntax error or a refused
	 * setting); the message is about that line, whichever it was */
	if (rc > 0 && (!l.bad_line || rc < l.bad_line))
		snprintf(err, errlen, "%s:%d: syntax error", path, rc);
	else if (rc < 0 && !l.bad_line)
		snprintf(err, errlen, "%s: cannot parse: %s", path,
		         strerror(ENOMEM));
	return rc || l.bad_line ? -1 : 0;
}
