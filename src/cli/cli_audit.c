/*
 * cli_audit.c - custodyctl audit: reading, verifying, exporting and pruning
 * the tamper-evident trail (audit.h).
 *
 * Reading decrypts each row's process name and path, so list and export
 * need a session holding "audit" grants (admin, auditor); verify needs only
 * the chain's MAC key; prune is an admin action, recorded in the trail it
 * prunes. Rows are streamed one at a time from store_audit_each(): nothing
 * holds the whole trail in memory. Readers open the store read-only, so
 * they work while it is mounted; a read snapshot (a deferred savepoint)
 * keeps verify consistent while the daemon appends.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "cli.h"
#include "config.h"
#include "store.h"
#include "witness.h"

#define FOLLOW_POLL_MS 300
#define COMM_MAX       64

/* ---- output helpers ---- */

/* One JSON writer for every --json (cli.h): cli_json_str. */
#define json_str cli_json_str

/*
 * Text for a terminal: control characters (C0, DEL, C1) and backslashes are
 * escaped, so a file name cannot forge a line or drive the terminal.
 * esc_one writes the form of the character at p into out (at most 9 bytes
 * with the NUL) and returns how many input bytes it used.
 */
static size_t esc_one(const unsigned char *p, char out[9])
{
	if (*p == '\\') {
		snprintf(out, 9, "\\\\");
		return 1;
	}
	if (*p < 0x20 || *p == 0x7f) {
		snprintf(out, 9, "\\x%02x", *p);
		return 1;
	}
	if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
		snprintf(out, 9, "\\xc2\\x%02x", p[1]);
		return 2;
	}
	out[0] = (char)*p;
	out[1] = 0;
	return 1;
}

/* Escaped s into out (truncated to fit cap), for padded columns. */
static const char *text_esc(char *out, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	char one[9];

	while (*p) {
		size_t used = esc_one(p, one), l = strlen(one);
		if (n + l >= cap)
			break;
		memcpy(out + n, one, l);
		n += l;
		p += used;
	}
	out[n] = 0;
	return out;
}

/* Escaped s to stdout, any length (the path column). */
static void text_put(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char one[9];

	while (*p) {
		p += esc_one(p, one);
		fputs(one, stdout);
	}
}

/* One RFC 4180 field: quoted when it holds a comma, quote, CR or LF. */
static void csv_str(const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static const char *errno_name(int64_t e)
{
	static const struct { int e; const char *name; } t[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
		{ ENXIO, "ENXIO" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { EXDEV, "EXDEV" }, { ENOTDIR, "ENOTDIR" },
		{ EISDIR, "EISDIR" }, { EINVAL, "EINVAL" }, { ETXTBSY, "ETXTBSY" },
		{ EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" }, { EROFS, "EROFS" },
		{ EMLINK, "EMLINK" }, { ERANGE, "ERANGE" },
		{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOSYS, "ENOSYS" },
		{ ENOTEMPTY, "ENOTEMPTY" }, { ELOOP, "ELOOP" },
		{ ENODATA, "ENODATA" }, { EPROTO, "EPROTO" },
		{ EBADMSG, "EBADMSG" }, { EOVERFLOW, "EOVERFLOW" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { EDQUOT, "EDQUOT" },
		{ ENOKEY, "ENOKEY" }, { EKEYREJECTED, "EKEYREJECTED" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].e == e)
			return t[i].name;
	return NULL;
}

/* "ok", or the errno name ("ENOTEMPTY"), or the number ("-200"). */
static const char *result_str(int64_t result, char *buf, size_t len)
{
	const char *n;

	if (result >= 0)
		return "ok";
	if ((n = errno_name(-result)))
		return n;
	snprintf(buf, len, "%lld", (long long)result);
	return buf;
}

/* Unix user name of uid, or "-" (a small cache: a trail names few). */
static const char *unix_name(uint32_t uid)
{
	static struct { uint32_t uid; char name[33]; } cache[32];
	static size_t n, next;
	struct passwd *pw;
	size_t i;

	for (i = 0; i < n; i++)
		if (cache[i].uid == uid)
			return cache[i].name;
	i = n < 32 ? n++ : next++ % 32;
	cache[i].uid = uid;
	pw = getpwuid((uid_t)uid);
	snprintf(cache[i].name, sizeof cache[i].name, "%s",
	         pw && pw->pw_name ? pw->pw_name : "-");
	return cache[i].name;
}

/* The kernel's O_LARGEFILE (the C library hides it on 64-bit x86). */
#if defined(__x86_64__) || defined(__i386__)
#define K_O_LARGEFILE 0100000
#else
#define K_O_LARGEFILE __O_LARGEFILE
#endif

/* An open row's flags (its OFFSET) by name: "O_WRONLY|O_APPEND". */
static const char *open_flags(uint64_t f, char *out, size_t cap)
{
	static const struct { uint64_t v; const char *name; } t[] = {
		{ O_CREAT, "O_CREAT" }, { O_EXCL, "O_EXCL" },
		{ O_NOCTTY, "O_NOCTTY" }, { O_TRUNC, "O_TRUNC" },
		{ O_APPEND, "O_APPEND" }, { O_NONBLOCK, "O_NONBLOCK" },
		{ O_SYNC, "O_SYNC" }, { O_DSYNC, "O_DSYNC" },
		{ O_ASYNC, "O_ASYNC" }, { O_DIRECT, "O_DIRECT" },
		{ K_O_LARGEFILE, "O_LARGEFILE" }, { O_DIRECTORY, "O_DIRECTORY" },
		{ O_NOFOLLOW, "O_NOFOLLOW" }, { O_NOATIME, "O_NOATIME" },
		{ O_CLOEXEC, "O_CLOEXEC" }, { O_PATH, "O_PATH" },
	};
	const char *acc = (f & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
	                  : (f & O_ACCMODE) == O_RDWR ? "O_RDWR"
	                  : (f & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : "3";
	size_t n = (size_t)snprintf(out, cap, "%s", acc);

	f &= ~(uint64_t)O_ACCMODE;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].v && (f & t[i].v) == t[i].v) {
			f &= ~t[i].v;
			if (n < cap)
				n += (size_t)snprintf(out + n, cap - n, "|%s", t[i].name);
		}
	if (f && n < cap)
		snprintf(out + n, cap - n, "|0%llo", (unsigned long long)f);
	return out;
}

/*
 * The operations custodyfs records: --op must name one of them (or one
 * found in the trail, written by a newer custodyfs). Keep in step with
 * the recording code; 'audit list --help' and custodyctl(8) list them.
 */
static const char *const known_ops[] = {
	"open", "read", "write", "create", "mkdir", "mknod", "symlink", "link",
	"unlink", "rmdir", "rename", "setattr", "truncate", "setxattr",
	"removexattr", "opendir", "fallocate", "punch_hole", "zero_range",
	"seek_data", "seek_hole", "copy_file_range", "mount", "unmount",
	"mount failed", "rollback accepted", "login", "login-failed",
	"login-locked", "lockout", "login-denied", "logout", "session-end",
	"init", "info", "check", "check repair", "backup", "copy", "compact",
	"upgrade", "user add", "user del", "user revoke", "user passwd",
	"user role", "user unlock", "user list", "key list", "key rotate",
	"key auto-rotate", "key retire", "key destroy", "authority rotate",
	"reencrypt", "audit list", "audit export", "audit verify",
	"audit prune",
};

static int op_known(const char *op)
{
	for (size_t i = 0; i < sizeof known_ops / sizeof known_ops[0]; i++)
		if (!strcmp(op, known_ops[i]))
			return 1;
	return 0;
}

/* ---- times ---- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* n decimal digits at *p into *v; advances *p. */
static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

/*
 * A point in time, as ns since the epoch:
 *   2026-11-24T10:00:00Z, 2026-11-24T10:00:00.5+01:00  (UTC or an offset)
 *   2026-11-24T10:00[:00]   2026-11-24 10:00:00       (local time)
 *   2026-11-24                                         (local midnight)
 *   30s, 10m, 1h, 2d, 1w, 500ms                        (that long ago)
 *   now, @1795000000                                   (epoch seconds)
 */
static int parse_time(const char *s, int64_t *out)
{
	const char *p = s;
	int Y, M, D, h = 0, m = 0, sec = 0, utc = 0, offmin = 0;
	int64_t frac = 0, t;
	struct tm tm;

	if (!strcmp(s, "now")) {
		*out = now_ns();
		return 0;
	}
	if (*s == '@') {
		char *end;
		long long v;
		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1 || *end || v < 0 || v > 9000000000LL)
			return -1;
		*out = (int64_t)v * 1000000000;
		return 0;
	}
	if (strlen(s) < 10 || s[4] != '-') {
		int64_t ms = config_parse_duration_ms(s);
		if (ms < 0)
			return -1;
		*out = now_ns() - ms * 1000000;
		return 0;
	}
	if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) ||
	    *p++ != '-' || digits(&p, 2, &D))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m))
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec))
				return -1;
			if (*p == '.' || *p == ',') {
				int64_t scale = 100000000;
				p++;
				if (*p < '0' || *p > '9')
					return -1;
				for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
					frac += (*p - '0') * scale;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			utc = 1;
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
			if (digits(&p, 2, &oh))
				return -1;
			if (*p == ':')
				p++;
			if (*p && digits(&p, 2, &om))
				return -1;
			if (oh > 23 || om > 59)
				return -1;
			utc = 1;
			offmin = sign * (oh * 60 + om);
		}
	}
	if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 ||
	    sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	t = utc ? (int64_t)timegm(&tm) - offmin * 60 : (int64_t)mktime(&tm);
	if (t < 0 || t > 9000000000LL)
		return -1;
	*out = t * 1000000000 + frac;
	return 0;
}

/* ---- argument parsing ---- */

/* cli_opt_value has already said which value is missing. */
static int missing_value(const char *cmd, const char *opt)
{
	(void)cmd;
	(void)opt;
	return EXIT_USAGE;
}

static int bad_time(const char *cmd, const char *opt, const char *v)
{
	fprintf(stderr, "custodyctl: audit %s: %s '%s': expected an ISO 8601 time"
	        " (2026-11-24T10:00:00Z) or an age (30s, 10m, 1h, 2d, 1w)\n", cmd,
	        opt, v);
	return EXIT_USAGE;
}

/* ---- reading rows ---- */

enum out_format { OUT_TEXT, OUT_JSON, OUT_JSON_LINES, OUT_CSV };

struct filter {
	int64_t since, until;   /* ns, inclusive */
	const char *user, *op, *path;
	int64_t uid;            /* Unix uid, -1: any */
	int result;             /* 0 any, 1 ok, 2 failed */
};

/*
 * One filter option of audit list and export at argv[*i]: 1 taken, 0 not
 * a filter option, -1 a usage error (one line printed).
 */
static int filter_opt(const char *cmd, int argc, char **argv, int *i,
                      struct filter *f)
{
	const char *v;
	int r;

	if ((r = cli_opt_value(argc, argv, i, "--since", &v))) {
		if (r > 0 && parse_time(v, &f->since))
			return bad_time(cmd, "--since", v), -1;
	} else if ((r = cli_opt_value(argc, argv, i, "--until", &v))) {
		if (r > 0 && parse_time(v, &f->until))
			return bad_time(cmd, "--until", v), -1;
	} else if ((r = cli_opt_value(argc, argv, i, "--user", &v))) {
		f->user = v;
	} else if ((r = cli_opt_value(argc, argv, i, "--uid", &v))) {
		char *end;
		long long n;
		if (r < 0)
			return -1;
		errno = 0;
		n = strtoll(v, &end, 10);
		if (*v && !*end && !errno && n >= 0 && n <= UINT32_MAX)
			f->uid = n;
		else {
			struct passwd *pw = getpwnam(v);
			if (!pw) {
				fprintf(stderr, "custodyctl: audit %s: --uid '%s': not a"
				        " uid or a Unix user name\n", cmd, v);
				return -1;
			}
			f->uid = pw->pw_uid;
		}
	} else if ((r = cli_opt_value(argc, argv, i, "--op", &v))) {
		f->op = v;
	} else if ((r = cli_opt_value(argc, argv, i, "--path", &v))) {
		f->path = v;
	} else if ((r = cli_opt_value(argc, argv, i, "--result", &v))) {
		if (r < 0)
			return -1;
		if (!strcmp(v, "ok"))
			f->result = 1;
		else if (!strcmp(v, "fail") || !strcmp(v, "failed"))
			f->result = 2;
		else {
			fprintf(stderr, "custodyctl: audit %s: --result '%s': expected"
			        " ok or fail\n", cmd, v);
			return -1;
		}
	}
	return r;
}

/*
 * --op must name an operation custodyfs records, or one the trail holds:
 * a typo is a usage error, not an empty listing. EXIT_OK or EXIT_USAGE.
 */
static int check_op(struct cli *c, const char *cmd, const char *op)
{
	int rc;

	if (!op || op_known(op))
		return EXIT_OK;
	if ((rc = store_audit_has_op(c->un.s, op)) > 0)
		return EXIT_OK;
	fprintf(stderr, "custodyctl: audit %s: --op '%s': no such operation"
	        " (see custodyctl audit list --help for the list)\n", cmd, op);
	return EXIT_USAGE;
}

struct reader {
	struct audit_reader *r;
	const struct filter *f;
	enum out_format fmt;
	int full;               /* export: every column */
	uint64_t shown, malformed;
	uint64_t replaced;      /* rows whose session's detail key was replaced */
	int64_t first_row;      /* the first row of the signed trail */
	uint64_t unsigned_rows; /* rows before it: not shown */
	int64_t last_seq;       /* highest seq seen, for --follow */
	int err;                /* -errno that stopped the walk */
};

static int path_matches(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *arrow;

	if (!strncmp(path, prefix, n))
		return 1;
	/* rename rows hold "from -> to": either side matches */
	arrow = strstr(path, " -> ");
	return arrow && !strncmp(arrow + 4, prefix, n);
}

static void print_header(enum out_format fmt)
{
	if (fmt == OUT_TEXT)
		printf("%-27s %-12s %6s %-10s %7s %-15s %-11s %12s %10s %-9s %s\n",
		       "TIME", "USER", "UID", "UNIX USER", "PID", "PROCESS", "OP",
		       "OFFSET", "LENGTH", "RESULT", "PATH");
	else if (fmt == OUT_CSV)
		printf("seq,time,time_ns,user,uid,gid,pid,process,op,ino,path,"
		       "offset,length,result,status,session,hash,unix_user,"
		       "flags\r\n");
	else if (fmt == OUT_JSON)
		putchar('[');
}

static void print_row(struct reader *rd, const struct store_audit *a,
                      const char *comm, const char *path, const char *why)
{
	char t[48], rb[24], mac[2 * STORE_HASH_BYTES + 1], fl[256];
	const char *res = result_str(a->result, rb, sizeof rb);
	const char *flags = !strcmp(a->op, "open")
	                    ? open_flags(a->offset, fl, sizeof fl) : NULL;

	/* text: microseconds; JSON and CSV: RFC 3339 with nanoseconds, as
	 * exact as time_ns (which jq, with doubles, cannot hold exactly) */
	cli_time_ns(t, sizeof t, a->time, rd->fmt == OUT_TEXT ? 6 : 9);
	for (size_t i = 0; i < STORE_HASH_BYTES; i++)
		snprintf(mac + 2 * i, 3, "%02x", a->hash[i]);
	switch (rd->fmt) {
	case OUT_TEXT: {
		char u[4 * sizeof a->user], cm[4 * COMM_MAX], o[4 * sizeof a->op];

		printf("%-27s %-12s %6u %-10s %7u %-15s %-11s ", t,
		       text_esc(u, sizeof u, a->user), a->uid, unix_name(a->uid),
		       a->pid, why ? "?" : text_esc(cm, sizeof cm, comm),
		       text_esc(o, sizeof o, a->op));
		if (flags) /* open: OFFSET holds the flags, LENGTH nothing */
			printf("%-23s ", flags);
		else
			printf("%12llu %10llu ", (unsigned long long)a->offset,
			       (unsigned long long)a->length);
		printf("%-9s ", res);
		if (why)
			printf("<%s>", why);
		else
			text_put(path);
		putchar('\n');
		break;
	}
	case OUT_CSV:
		printf("%lld,%s,%lld,", (long long)a->seq, t, (long long)a->time);
		csv_str(a->user);
		printf(",%u,%u,%u,", a->uid, a->gid, a->pid);
		csv_str(why ? "" : comm);
		putchar(',');
		csv_str(a->op);
		printf(",%llu,", (unsigned long long)a->ino);
		csv_str(why ? "" : path);
		printf(",%llu,%llu,%lld,%s,%lld,%s,",
		       (unsigned long long)a->offset, (unsigned long long)a->length,
		       (long long)a->result, res, (long long)a->session, mac);
		csv_str(unix_name(a->uid));
		printf(",%s\r\n", flags ? flags : "");
		break;
	case OUT_JSON:
	case OUT_JSON_LINES:
		if (rd->fmt == OUT_JSON)
			fputs(rd->shown ? ",\n" : "\n", stdout);
		printf("{\"seq\":%lld,\"time\":\"%s\",\"time_ns\":%lld,\"user\":",
		       (long long)a->seq, t, (long long)a->time);
		json_str(a->user);
		printf(",\"uid\":%u,\"unix_user\":", a->uid);
		if (strcmp(unix_name(a->uid), "-"))
			json_str(unix_name(a->uid));
		else
			fputs("null", stdout);
		printf(",\"gid\":%u,\"pid\":%u,\"process\":", a->gid, a->pid);
		if (why)
			fputs("null", stdout);
		else {
			json_str(comm);
			cli_json_b64("process", comm);
		}
		printf(",\"op\":");
		json_str(a->op);
		printf(",\"ino\":%llu,\"path\":", (unsigned long long)a->ino);
		if (why)
			fputs("null", stdout);
		else {
			json_str(path);
			cli_json_b64("path", path);
		}
		printf(",\"offset\":%llu,\"length\":%llu,\"flags\":",
		       (unsigned long long)a->offset, (unsigned long long)a->length);
		if (flags)
			json_str(flags);
		else
			fputs("null", stdout);
		printf(",\"result\":%lld,\"status\":\"%s\"", (long long)a->result,
		       res);
		if (why)
			printf(",\"detail_error\":\"%s\"", why);
		if (rd->full)
			printf(",\"session\":%lld,\"hash\":\"%s\"",
			       (long long)a->session, mac);
		putchar('}');
		if (rd->fmt == OUT_JSON_LINES)
			putchar('\n');
		break;
	}
	rd->shown++;
}

/* --op OP: a copy_file_range both reads and writes, so "read" and
 * "write" list its rows too. */
static int op_matches(const char *op, const char *want)
{
	return !strcmp(op, want) || (!strcmp(op, "copy_file_range") &&
	       (!strcmp(want, "read") || !strcmp(want, "write")));
}

static int reader_row(void *arg, const struct store_audit *a)
{
	struct reader *rd = arg;
	const struct filter *f = rd->f;
	char comm[COMM_MAX], *path = NULL;
	const char *why = NULL;
	int rc;

	if (a->seq > rd->last_seq)
		rd->last_seq = a->seq;
	if (!a->op[0]) {
		rd->malformed++;
		fprintf(stderr, "custodyctl: audit row %lld is malformed"
		        " (run 'custodyctl audit verify')\n", (long long)a->seq);
		return 0;
	}
	if (f && ((a->time < f->since || a->time > f->until) ||
	          (f->user && strcmp(a->user, f->user)) ||
	          (f->uid >= 0 && a->uid != (uint64_t)f->uid) ||
	          (f->op && !op_matches(a->op, f->op)) ||
	          (f->result == 1 && a->result < 0) ||
	          (f->result == 2 && a->result >= 0)))
		return 0;
	if (!(path = malloc(STORE_DETAIL_MAX))) {
		rd->err = -ENOMEM;
		return 1;
	}
	rc = audit_reader_detail(rd->r, a, comm, sizeof comm, path,
	                         STORE_DETAIL_MAX);
	if (rc == -EACCES)
		why = "no key for this row";
	else if (rc == -EBADMSG) {
		why = "its session's detail key was replaced";
		if (!rd->replaced++) {
			const char *how = NULL;
			audit_reader_check(rd->r, a->session, &how);
			fprintf(stderr, "custodyctl: audit row %lld: session %lld: %s"
			        " (run 'custodyctl audit verify')\n", (long long)a->seq,
			        (long long)a->session, how ? how : "replaced");
		}
	} else if (rc)
		why = "detail does not decrypt";
	if (f && f->path && (why || !path_matches(path, f->path))) {
		free(path);
		return 0;
	}
	print_row(rd, a, comm, path, why);
	free(path);
	return 0;
}

/* Rows numbered before the start of the signed trail are no part of its
 * history: never shown, and said once. */
static void unsigned_rows_said(const struct reader *rd, const char *cmd)
{
	fprintf(stderr, "custodyctl: %s: %llu rows numbered before the start of"
	        " the signed trail (row %lld) not shown: no commit covers them,"
	        " they were added outside custodyfs (run 'custodyctl audit"
	        " verify')\n", cmd, (unsigned long long)rd->unsigned_rows,
	        (long long)rd->first_row);
}

/* Where the signed trail starts (audit_first_row), into rd. */
static int reader_start(struct cli *c, struct reader *rd, const char *cmd)
{
	int64_t lowest;
	int rc = audit_first_row(c->un.s, &rd->first_row);

	if (!rc)
		rc = store_audit_below(c->un.s, rd->first_row, &rd->unsigned_rows,
		                       &lowest);
	if (rc) {
		fprintf(stderr, "custodyctl: %s: cannot read the commit records:"
		        " %s\n", cmd, strerror(-rc));
		return EXIT_RUNTIME;
	}
	rd->last_seq = rd->first_row - 1;
	return EXIT_OK;
}

/*
 * Every row through rd, in one read snapshot (one statement). Exit status:
 * 0, 1 (cannot read or write) or 4 (malformed rows were skipped, or rows
 * before the start of the signed trail were left out).
 */
static int dump(struct cli *c, struct reader *rd, const char *cmd)
{
	int rc;

	print_header(rd->fmt);
	rc = store_audit_each(c->un.s, rd->first_row - 1, reader_row, rd);
	if (rd->err)
		rc = rd->err;
	if (rd->fmt == OUT_JSON)
		fputs(rd->shown ? "\n]\n" : "]\n", stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "custodyctl: %s: cannot write: %s\n", cmd,
		        strerror(errno));
		return EXIT_RUNTIME;
	}
	if (rc < 0) {
		fprintf(stderr, "custodyctl: %s: cannot read the trail: %s\n", cmd,
		        strerror(-rc));
		return EXIT_RUNTIME;
	}
	if (rd->unsigned_rows)
		unsigned_rows_said(rd, cmd);
	if (rd->replaced)
		fprintf(stderr, "custodyctl: %s: %llu rows of sessions whose detail"
		        " key was replaced: their process names and paths are lost\n",
		        cmd, (unsigned long long)rd->replaced);
	if (rd->malformed) {
		fprintf(stderr, "custodyctl: %s: %llu malformed rows skipped\n", cmd,
		        (unsigned long long)rd->malformed);
		return EXIT_DAMAGE;
	}
	return rd->unsigned_rows || rd->replaced ? EXIT_DAMAGE : EXIT_OK;
}

/* ---- audit list ---- */

static volatile sig_atomic_t follow_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int follow(struct cli *c, struct reader *rd)
{
	struct sigaction sa;
	struct timespec nap = { 0, FOLLOW_POLL_MS * 1000000L };
	int busy = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal; /* no SA_RESTART: wake the sleep */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!follow_stop) {
		int rc = store_audit_each(c->un.s, rd->last_seq, reader_row, rd);
		if (fflush(stdout) != 0 || ferror(stdout))
			return EXIT_RUNTIME;
		if (rd->err)
			rc = rd->err;
		if (rc == -EBUSY && ++busy < 100)
			rc = 0; /* a checkpoint or recovery in progress: retry */
		else if (rc == 0)
			busy = 0;
		if (store_shm_cut()) {
			fprintf(stderr, "custodyctl: audit list: %s\n", STORE_CUT_MSG);
			return EXIT_DAMAGE;
		}
		if (rc < 0) {
			fprintf(stderr, "custodyctl: audit list: cannot read the trail:"
			        " %s\n", strerror(-rc));
			return EXIT_RUNTIME;
		}
		nanosleep(&nap, NULL);
	}
	return EXIT_OK;
}

/* The filter options' help, shared by list and export. */
#define FILTER_HELP \
"  --since T, --until T  rows at or after / at or before T. T is one of\n" \
"                        2026-11-24T10:00:00Z     UTC (fraction allowed)\n" \
"                        2026-11-24T10:00:00+01:00  with a UTC offset\n" \
"                        2026-11-24T10:00[:00]    local time (no zone)\n" \
"                        2026-11-24               local midnight\n" \
"                        30s, 10m, 1h, 2d, 1w, 500ms  that long ago\n" \
"                        now, @EPOCH_SECONDS\n" \
"  --user U              rows of store user U\n" \
"  --uid UID             rows of one Unix user (a uid or a Unix user name)\n" \
"  --op OP               rows of one operation: open read write create\n" \
"                        mkdir mknod symlink link unlink rmdir rename\n" \
"                        setattr truncate setxattr removexattr opendir\n" \
"                        fallocate punch_hole zero_range seek_data\n" \
"                        seek_hole copy_file_range (read and write list\n" \
"                        its rows too); mount unmount \"mount failed\" \"rollback accepted\";\n" \
"                        login login-failed login-locked lockout\n" \
"                        login-denied logout session-end; or a custodyctl\n" \
"                        command: init info check \"check repair\" backup\n" \
"                        copy compact upgrade \"user add\" \"user del\"\n" \
"                        \"user revoke\" \"user passwd\" \"user role\"\n" \
"                        \"user unlock\" \"user list\" \"key list\"\n" \
"                        \"key rotate\" \"key auto-rotate\" \"key retire\"\n" \
"                        \"key destroy\" \"authority rotate\" reencrypt\n" \
"                        \"audit list\" \"audit export\" \"audit verify\"\n" \
"                        \"audit prune\". Another name is a usage error\n" \
"                        (exit 2) unless the trail holds it.\n" \
"  --path PREFIX         rows whose path starts with PREFIX (either side\n" \
"                        of a rename's \"from -> to\"); admin actions keep\n" \
"                        their target (a user name, ...) as the path\n" \
"  --result ok|fail      only successes / only failures\n"

static int audit_list(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl audit list [--since T] [--until T] [--user U] [--uid UID]\n"
"                             [--op OP] [--path PREFIX] [--result ok|fail]\n"
"                             [--json] [--follow]\n"
"List the audit trail, oldest first, with process names and paths\n"
"decrypted (admin or auditor; others get exit 5). Works while mounted.\n"
"Reading the trail is itself recorded (op \"audit list\").\n"
"\n"
FILTER_HELP
"  --json                one JSON array of objects (seq, time, time_ns,\n"
"                        user, uid, unix_user, gid, pid, process, op, ino,\n"
"                        path, offset, length, flags, result, status);\n"
"                        time is RFC 3339 UTC with nanoseconds (time_ns is\n"
"                        above 2^53: jq rounds it)\n"
"  --follow              after the existing rows, keep printing new ones as\n"
"                        they are written (polls every 300 ms) until\n"
"                        SIGINT or SIGTERM, then exit 0. With --json it\n"
"                        prints one JSON object per line, not an array.\n"
"\n"
"Columns: TIME (UTC, microseconds), USER (store user), UID, UNIX USER\n"
"(the uid's name on this machine, - if none), PID, PROCESS, OP, OFFSET,\n"
"LENGTH, RESULT (ok, or the errno name such as ENOTEMPTY), PATH. For\n"
"read and write, OFFSET/LENGTH are the request's; for open, the flags\n"
"by name (O_WRONLY|O_APPEND) stand in their place; for truncate, OFFSET\n"
"is the new size; for copy_file_range (one row per request) PATH is\n"
"\"SOURCE -> TARGET\" (with \"@OFFSET\" after SOURCE when the source offset\n"
"differs), OFFSET/LENGTH the target's; for seek_data/seek_hole, OFFSET is\n"
"where the search began and LENGTH the distance to the answer. Control\n"
"characters in names are shown as \\xNN.\n"
"Denials the kernel makes itself (the mode bits, checked under\n"
"default_permissions) never reach the daemon and are not in the trail.\n";
	struct filter f = { INT64_MIN, INT64_MAX, NULL, NULL, NULL, -1, 0 };
	struct reader rd;
	int followp = 0, st, rc;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		int r = filter_opt("list", argc, argv, &i, &f);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f"))
			followp = 1;
		else {
			fprintf(stderr, "custodyctl: audit list: unknown argument '%s'"
			        " (see audit list --help)\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY,
	                     (1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR), "audit list")))
		return st;
	if ((st = check_op(c, "list", f.op)))
		return st;
	cli_record(c, "audit list", "", 0); /* reading the trail is recorded */
	memset(&rd, 0, sizeof rd);
	rd.f = &f;
	rd.fmt = !c->json ? OUT_TEXT : followp ? OUT_JSON_LINES : OUT_JSON;
	if ((st = reader_start(c, &rd, "audit list")))
		return st;
	if ((rc = audit_reader_new(c->un.s, c->un.r, c->un.ss, &rd.r))) {
		fprintf(stderr, "custodyctl: audit list: %s\n", strerror(-rc));
		return EXIT_RUNTIME;
	}
	if (followp) {
		if (rd.unsigned_rows)
			unsigned_rows_said(&rd, "audit list");
		print_header(rd.fmt);
		st = follow(c, &rd);
	} else
		st = dump(c, &rd, "audit list");
	audit_reader_free(rd.r);
	return st;
}

/* ---- audit export ---- */

static int audit_export(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl audit export [--format json|csv] [--since T] [--until T]\n"
"                               [--user U] [--uid UID] [--op OP]\n"
"                               [--path PREFIX] [--result ok|fail]\n"
"Write the trail (every row, or those the filters of 'audit list' select)\n"
"to stdout, every column, with process names and paths decrypted (admin\n"
"or auditor), streamed row by row. Recorded (op \"audit export\").\n"
"  --format json   one JSON array of objects (the default); each has seq,\n"
"                  time (RFC 3339 UTC, nanoseconds), time_ns, user, uid,\n"
"                  unix_user, gid, pid, process, op, ino, path, offset,\n"
"                  length, flags (an open's, by name, else null), result,\n"
"                  status, session, hash\n"
"  --format csv    RFC 4180: a header line, then one line per row, CRLF\n"
"                  line ends, fields quoted when they hold , \" CR or LF;\n"
"                  the columns of JSON, unix_user and flags last\n"
FILTER_HELP
"A row whose detail cannot be decrypted has an empty (CSV) or null (JSON)\n"
"process and path. Check the chain with 'custodyctl audit verify'.\n";
	struct filter f = { INT64_MIN, INT64_MAX, NULL, NULL, NULL, -1, 0 };
	struct reader rd;
	const char *v;
	enum out_format fmt = OUT_JSON;
	int st, rc;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		int r = filter_opt("export", argc, argv, &i, &f);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if ((r = cli_opt_value(argc, argv, &i, "--format", &v))) {
			if (r < 0)
				return missing_value("export", "--format");
			if (!strcmp(v, "json"))
				fmt = OUT_JSON;
			else if (!strcmp(v, "csv"))
				fmt = OUT_CSV;
			else {
				fprintf(stderr, "custodyctl: audit export: --format '%s':"
				        " expected json or csv\n", v);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "custodyctl: audit export: unknown argument"
			        " '%s' (see audit export --help)\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY,
	                     (1 << ROLE_ADMIN) | (1 << ROLE_AUDITOR),
	                     "audit export")))
		return st;
	if ((st = check_op(c, "export", f.op)))
		return st;
	cli_record(c, "audit export", "", 0);
	memset(&rd, 0, sizeof rd);
	rd.f = &f;
	rd.fmt = fmt;
	rd.full = 1;
	if ((st = reader_start(c, &rd, "audit export")))
		return st;
	if ((rc = audit_reader_new(c->un.s, c->un.r, c->un.ss, &rd.r))) {
		fprintf(stderr, "custodyctl: audit export: %s\n", strerror(-rc));
		return EXIT_RUNTIME;
	}
	st = dump(c, &rd, "audit export");
	audit_reader_free(rd.r);
	return st;
}

/* ---- audit verify ---- */

/* The first row recorded by a session (0 if none). */
struct first_row {
	int64_t session, seq;
};

static int first_row_fn(void *arg, const struct store_audit *a)
{
	struct first_row *f = arg;

	if (a->session != f->session)
		return 0;
	f->seq = a->seq;
	return 1;
}

static int64_t first_row_of(struct cli *c, int64_t session)
{
	struct first_row f = { session, 0 };

	store_audit_each(c->un.s, INT64_MIN, first_row_fn, &f);
	return f.seq;
}

/*
 * Verify inside one read snapshot, so rows and the head mark agree even
 * while a mount appends. Returns an exit status and prints the outcome.
 */
static int verify_chain(struct cli *c, const char *cmd, int quiet,
                        uint64_t *rows_out)
{
	char why[512];
	int64_t bad = 0;
	uint64_t rows = 0;
	int rc, snap = !store_in_transaction(c->un.s);

	if (snap && (rc = store_read_begin(c->un.s))) {
		fprintf(stderr, "custodyctl: %s: cannot read the trail: %s\n", cmd,
		        strerror(-rc));
		return EXIT_RUNTIME;
	}
	rc = audit_verify(c->un.s, c->un.r, &bad, &rows, why, sizeof why);
	if (!rc) {
		/* a reader who holds the audit keys also checks each session's
		 * detail key against what its user endorsed */
		uint64_t keys;
		int64_t bad_session;
		rc = audit_verify_details(c->un.s, c->un.r, c->un.ss, &bad_session,
		                          &keys, why, sizeof why);
		if (rc == -EBADMSG)
			bad = first_row_of(c, bad_session);
	}
	if (snap)
		store_read_end(c->un.s);
	if (rows_out)
		*rows_out = rows;
	if (rc == -EBADMSG) {
		if (c->json && !quiet) {
			printf("{\"intact\":false,\"row\":%lld,\"reason\":",
			       (long long)bad);
			json_str(why);
			printf("}\n");
		} else
			fprintf(quiet ? stderr : stdout, "audit: tampering detected"
			        " at row %lld: %s\n", (long long)bad, why);
		return EXIT_DAMAGE;
	}
	if (rc) {
		fprintf(stderr, "custodyctl: %s: cannot read the trail: %s\n", cmd,
		        strerror(-rc));
		return EXIT_RUNTIME;
	}
	if (!quiet) {
		if (c->json)
			printf("{\"intact\":true,\"rows\":%llu}\n",
			       (unsigned long long)rows);
		else
			printf("audit trail intact: %llu rows\n",
			       (unsigned long long)rows);
	}
	return EXIT_OK;
}

static int audit_verify_cmd(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl audit verify [--json] [--witness FILE]\n"
"Verify the signed commit chain and the trail's hash chain under it: every\n"
"row lies under a commit signed by the session it names, and the newest\n"
"commit holds the trail's last row. Prints\n"
"  audit trail intact: N rows                        and exits 0, or\n"
"  audit: tampering detected at row S: REASON        and exits 4\n"
"(an edited, deleted, inserted, reordered, re-attributed or cut-off row,\n"
"or a forged commit). Any user may run it. An admin or auditor also opens\n"
"each session's sealed detail key (no row's detail is decrypted) and\n"
"checks it is the one its user endorsed: a replaced key, whose rows'\n"
"process names and paths can no longer be read, is tampering too. Works\n"
"while the store is mounted.\n"
"  --json   {\"intact\":true,\"rows\":N} or {\"intact\":false,\"row\":S,\"reason\":...}\n"
"  --witness FILE  also check every commit a system log saw ([audit] syslog:\n"
"           a syslog file, or `journalctl -t custodyfs -o json` output):\n"
"           one the store lacks or holds otherwise is a cut tail or a\n"
"           rollback (exit 4)\n";
	const char *witness = NULL;
	int st;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int r;
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if ((r = cli_opt_value(argc, argv, &i, "--witness", &v))) {
			if (r < 0)
				return EXIT_USAGE;
			witness = v;
		} else {
			fprintf(stderr, "custodyctl: audit verify: unknown argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((st = cli_unlock(c, STORE_READONLY, 0, "audit verify")))
		return st;
	cli_record(c, "audit verify", witness ? witness : "", 0);
	if (witness) {
		struct witness_report rep;
		char why[512];
		int rc = witness_verify(c->un.s, &c->un.head, witness, &rep, why,
		                        sizeof why);
		if (rc == -ESTALE) {
			if (c->json) {
				printf("{\"intact\":false,\"witness\":false,\"reason\":");
				json_str(why);
				printf("}\n");
			} else
				printf("audit: the witness disagrees: %s\n", why);
			return EXIT_DAMAGE;
		}
		if (rc) {
			fprintf(stderr, "custodyctl: audit verify: %s\n", why);
			return EXIT_RUNTIME;
		}
		if (!c->json)
			printf("witness: %llu commits of this store seen, %llu match the"
		       " ledger, %llu older than its oldest record, %llu of copies\n",
		       (unsigned long long)rep.lines, (unsigned long long)rep.checked,
		       (unsigned long long)rep.before, (unsigned long long)rep.other);
	}
	return verify_chain(c, "audit verify", 0, NULL);
}

/* ---- audit prune ---- */

struct prune_find {
	int64_t before_ns;
	int64_t first_kept;  /* seq of the first row at or after before_ns */
	int64_t last;
};

static int prune_row(void *arg, const struct store_audit *a)
{
	struct prune_find *p = arg;

	p->last = a->seq;
	if (a->time >= p->before_ns) {
		p->first_kept = a->seq;
		return 1;
	}
	return 0;
}

static int audit_prune_cmd(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl audit prune --before T\n"
"Delete the rows written before T (admin only). T is an ISO 8601 time or\n"
"an age, as in 'audit list --help' (--before 90d: rows older than 90 days).\n"
"Rows go from the oldest up to the first row at or after T, so the trail\n"
"stays one unbroken chain. The chain is verified first: a broken chain is\n"
"not pruned (exit 4), so pruning cannot hide tampering. The prune is itself\n"
"recorded (op \"audit prune\") in the same transaction, and 'audit verify'\n"
"passes afterwards.\n";
	const char *v, *when = NULL;
	struct prune_find pf = { 0, 0, 0 };
	uint64_t removed = 0, rows = 0;
	int st, rc;

	if (cli_wants_help(argc, argv, help))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (cli_opt_value(argc, argv, &i, "--before", &v)) {
			if (!(when = v))
				return missing_value("prune", "--before");
			if (parse_time(v, &pf.before_ns))
				return bad_time("prune", "--before", v);
		} else {
			fprintf(stderr, "custodyctl: audit prune: unknown argument"
			        " '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!when) {
		fprintf(stderr, "custodyctl: audit prune: --before T is required\n");
		return EXIT_USAGE;
	}
	if ((st = cli_unlock(c, 0, 1 << ROLE_ADMIN, "audit prune")))
		return st;
	if ((rc = cli_begin(c))) {
		fprintf(stderr, "custodyctl: audit prune: cannot lock the store: %s\n",
		        rc == -EBUSY ? "busy" : strerror(-rc));
		return rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
	}
	if ((st = verify_chain(c, "audit prune", 1, &rows))) {
		cli_finish(c, "audit prune", "refused: the chain does not verify",
		           -EBADMSG);
		if (st == EXIT_DAMAGE)
			fprintf(stderr, "custodyctl: audit prune: refusing to prune a"
			        " broken chain\n");
		return st;
	}
	rc = store_audit_each(c->un.s, 0, prune_row, &pf);
	if (rc >= 0) {
		rc = 0;
		if (!pf.first_kept)
			pf.first_kept = pf.last + 1; /* every row is older */
		if (pf.last)
			rc = audit_prune(c->un.s, c->un.r, c->un.ss, pf.first_kept,
			                 &removed);
	}
	{
		char target[96];
		snprintf(target, sizeof target, "before %s (%llu rows)", when,
		         (unsigned long long)removed);
		rc = cli_finish(c, "audit prune", target, rc);
	}
	if (rc) {
		fprintf(stderr, "custodyctl: audit prune: %s\n", strerror(-rc));
		return EXIT_RUNTIME;
	}
	printf("pruned %llu of %llu audit rows\n", (unsigned long long)removed,
	       (unsigned long long)rows);
	return EXIT_OK;
}

/* ---- dispatch ---- */

int cmd_audit(struct cli *c, int argc, char **argv)
{
	static const char help[] =
"usage: custodyctl audit list [FILTERS] [--json] [--follow]\n"
"       custodyctl audit verify [--json]\n"
"       custodyctl audit export [--format json|csv] [FILTERS]\n"
"       custodyctl audit prune --before T\n"
"FILTERS: --since T --until T --user U --uid UID --op OP --path PREFIX\n"
"         --result ok|fail (see audit list --help).\n"
"Read (admin, auditor), verify (any user) and prune (admin) the audit\n"
"trail. 'custodyctl audit COMMAND --help' for each. Exit status: 0 ok,\n"
"1 error, 2 usage, 3 authentication failed, 4 tampering found, 5 role not\n"
"allowed, 6 store busy.\n";
	static const struct {
		const char *name;
		int (*fn)(struct cli *c, int argc, char **argv);
	} sub[] = {
		{ "list", audit_list },
		{ "verify", audit_verify_cmd },
		{ "export", audit_export },
		{ "prune", audit_prune_cmd },
	};

	if (argc < 2) {
		fprintf(stderr, "custodyctl: audit needs a command (list, verify,"
		        " export, prune; see custodyctl audit --help)\n");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(help, stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
		if (!strcmp(argv[1], sub[i].name))
			return sub[i].fn(c, argc - 1, argv + 1);
	fprintf(stderr, "custodyctl: audit: unknown command '%s' (list, verify,"
	        " export, prune)\n", argv[1]);
	return EXIT_USAGE;
}
