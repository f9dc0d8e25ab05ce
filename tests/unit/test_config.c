/*
 * test_config.c - custodyfs.ini (config.h): the defaults; every key of
 * every section accepted with good values and refused with bad ones; an
 * unknown section or key refused with the file and line; a syntax error;
 * a missing file; and the duration and size parsers on their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char dir[64], path[128];

static int write_ini(const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* Load text over the defaults: config_load's result, err in *err. */
static int load(const char *text, struct config *c, char *err, size_t cap)
{
	config_defaults(c);
	err[0] = 0;
	if (write_ini(text))
		return -99;
	return config_load(path, c, err, cap);
}

/* One setting with value: accepted (1) or refused (0), with the check
 * that a refusal names the file, the line and the key. */
static int accepts(const char *sec, const char *key, const char *val,
                   struct config *c)
{
	char text[512], err[512], want[256];
	int rc;

	snprintf(text, sizeof text, "; a comment\n[%s]\n%s = %s\n", sec, key, val);
	rc = load(text, c, err, sizeof err);
	if (rc == 0)
		return 1;
	/* one line naming this file, line 3 and the key (the exact form
	 * "file:line: what" is checked once, in test_messages) */
	snprintf(want, sizeof want, "%s:", path);
	CHECK(strstr(err, want) == err);
	if (strstr(err, "unknown section")) {
		/* an unknown section is named at its header, line 2 */
		char sect[80];
		snprintf(sect, sizeof sect, "[%s]", sec);
		CHECK(strstr(err, ":2:") != NULL);
		CHECK(strstr(err, sect) != NULL);
	} else {
		CHECK(strstr(err, ":3:") || strstr(err, "line 3"));
		CHECK(strstr(err, key) != NULL);
	}
	CHECK(strchr(err, '\n') == NULL);
	return 0;
}

static void test_defaults(void)
{
	struct config c;
	char err[256] = "untouched";

	config_defaults(&c);
	CHECK_EQ(c.kdf_opslimit, 4);
	CHECK_EQ(c.kdf_memlimit, 64ull << 20);
	CHECK_EQ(c.block_size, 4096);
	CHECK_EQ(c.busy_timeout_ms, 10000);
	CHECK_EQ(c.commit_interval_ms, 1000);
	CHECK_EQ(c.idle_checkpoint_ms, 3000);
	CHECK_EQ(c.attr_timeout_ms, 1000);
	CHECK_EQ(c.readahead, 4 << 20);
	CHECK_EQ(c.spin_us, 50);
	CHECK_EQ(c.max_failures, 5);
	CHECK_EQ(c.lockout_s, 60);
	CHECK_EQ(c.key_max_age_s, 0);
	CHECK_EQ(c.audit_syslog, 0);
	CHECK(!strcmp(c.audit_syslog_socket, "/dev/log"));
	CHECK_EQ(c.audit_flush_ms, 1000);
	/* an empty file changes nothing */
	CHECK_EQ(load("", &c, err, sizeof err), 0);
	CHECK_EQ(c.kdf_opslimit, 4);
	CHECK_EQ(load("; only comments\n# and these\n\n[kdf]\n", &c, err,
	              sizeof err), 0);
	CHECK_EQ(c.kdf_memlimit, 64ull << 20);
	/* a named file that does not exist is an error; none named (and no
	 * default file) is fine */
	{
		char missing[160];
		snprintf(missing, sizeof missing, "%s/none.ini", dir);
		config_defaults(&c);
		CHECK_EQ(config_load(missing, &c, err, sizeof err), -1);
		CHECK(strstr(err, missing) != NULL);
		if (access(CONFIG_DEFAULT_PATH, F_OK) != 0) {
			CHECK_EQ(config_load(NULL, &c, err, sizeof err), 0);
			CHECK_EQ(c.kdf_opslimit, 4);
		}
	}
	/* a whole file with every key */
	CHECK_EQ(load("[kdf]\nopslimit = 2\nmemlimit = 16M\n"
	              "[store]\nblock_size = 8K\nbusy_timeout = 3s\n"
	              "[mount]\ncommit_interval = 250ms\nidle_checkpoint = 1m\n"
	              "attr_timeout = 0\nreadahead = 1M\nspin_us = 120\n"
	              "[auth]\nmax_failures = 7\nlockout = 2h\n"
	              "[keys]\nmax_age = 90d\n"
	              "[audit]\nflush_interval = 2s\n", &c, err, sizeof err), 0);
	CHECK(err[0] == 0);
	CHECK_EQ(c.kdf_opslimit, 2);
	CHECK_EQ(c.kdf_memlimit, 16 << 20);
	CHECK_EQ(c.block_size, 8192);
	CHECK_EQ(c.busy_timeout_ms, 3000);
	CHECK_EQ(c.commit_interval_ms, 250);
	CHECK_EQ(c.idle_checkpoint_ms, 60000);
	CHECK_EQ(c.attr_timeout_ms, 0);
	CHECK_EQ(c.readahead, 1 << 20);
	CHECK_EQ(c.spin_us, 120);
	CHECK_EQ(c.max_failures, 7);
	CHECK_EQ(c.lockout_s, 7200);
	CHECK_EQ(c.key_max_age_s, 90 * 86400);
	CHECK_EQ(c.audit_flush_ms, 2000);
}

static void test_keys(void)
{
	struct config c;

	/* [kdf] */
	CHECK(accepts("kdf", "opslimit", "1", &c) && c.kdf_opslimit == 1);
	CHECK(accepts("kdf", "opslimit", "64", &c) && c.kdf_opslimit == 64);
	CHECK(!accepts("kdf", "opslimit", "0", &c));
	CHECK(!accepts("kdf", "opslimit", "65", &c));
	CHECK(!accepts("kdf", "opslimit", "-1", &c));
	CHECK(!accepts("kdf", "opslimit", "4x", &c));
	CHECK(!accepts("kdf", "opslimit", "", &c));
	CHECK(!accepts("kdf", "opslimit", "99999999999999999999999", &c));
	CHECK(accepts("kdf", "memlimit", "8K", &c) && c.kdf_memlimit == 8192);
	CHECK(accepts("kdf", "memlimit", "4G", &c) && c.kdf_memlimit == 4ull << 30);
	CHECK(accepts("kdf", "memlimit", "65536", &c) && c.kdf_memlimit == 65536);
	CHECK(!accepts("kdf", "memlimit", "8191", &c));
	CHECK(!accepts("kdf", "memlimit", "4097M", &c));
	CHECK(!accepts("kdf", "memlimit", "lots", &c));
	CHECK(!accepts("kdf", "memlimit", "", &c));
	/* [store] */
	CHECK(accepts("store", "block_size", "512", &c) && c.block_size == 512);
	CHECK(accepts("store", "block_size", "64K", &c) && c.block_size == 65536);
	CHECK(accepts("store", "block_size", "4096", &c) && c.block_size == 4096);
	CHECK(!accepts("store", "block_size", "256", &c));
	CHECK(!accepts("store", "block_size", "128K", &c));
	CHECK(!accepts("store", "block_size", "5000", &c));
	CHECK(!accepts("store", "block_size", "0", &c));
	CHECK(accepts("store", "busy_timeout", "0", &c) && c.busy_timeout_ms == 0);
	CHECK(accepts("store", "busy_timeout", "1.5s", &c) &&
	      c.busy_timeout_ms == 1500);
	CHECK(!accepts("store", "busy_timeout", "-1s", &c));
	CHECK(!accepts("store", "busy_timeout", "soon", &c));
	/* the store's busy timeout is an int of milliseconds (store_open):
	 * a longer one must be refused, not wrap around */
	CHECK(!accepts("store", "busy_timeout", "30d", &c) ||
	      c.busy_timeout_ms <= INT32_MAX);
	/* [mount] */
	CHECK(accepts("mount", "commit_interval", "1ms", &c) &&
	      c.commit_interval_ms == 1);
	CHECK(accepts("mount", "commit_interval", "60s", &c) &&
	      c.commit_interval_ms == 60000);
	CHECK(!accepts("mount", "commit_interval", "0", &c));
	CHECK(!accepts("mount", "commit_interval", "61s", &c));
	CHECK(!accepts("mount", "commit_interval", "0.5ms", &c));
	CHECK(accepts("mount", "idle_checkpoint", "0", &c) &&
	      c.idle_checkpoint_ms == 0);
	CHECK(accepts("mount", "idle_checkpoint", "2h", &c) &&
	      c.idle_checkpoint_ms == 7200000);
	CHECK(!accepts("mount", "idle_checkpoint", "-3s", &c));
	CHECK(!accepts("mount", "idle_checkpoint", "3 weeks", &c));
	CHECK(accepts("mount", "attr_timeout", "10s", &c) &&
	      c.attr_timeout_ms == 10000);
	CHECK(!accepts("mount", "attr_timeout", "1y", &c));
	CHECK(accepts("mount", "readahead", "0", &c) && c.readahead == 0);
	CHECK(accepts("mount", "readahead", "4K", &c) && c.readahead == 4096);
	CHECK(accepts("mount", "readahead", "64M", &c) &&
	      c.readahead == 64 << 20);
	CHECK(!accepts("mount", "readahead", "4095", &c));
	CHECK(!accepts("mount", "readahead", "65M", &c));
	CHECK(!accepts("mount", "readahead", "-4K", &c));
	CHECK(accepts("mount", "spin_us", "0", &c) && c.spin_us == 0);
	CHECK(accepts("mount", "spin_us", "10000", &c) && c.spin_us == 10000);
	CHECK(!accepts("mount", "spin_us", "10001", &c));
	CHECK(!accepts("mount", "spin_us", "-1", &c));
	CHECK(!accepts("mount", "spin_us", "50us", &c));
	/* [auth] */
	CHECK(accepts("auth", "max_failures", "0", &c) && c.max_failures == 0);
	CHECK(accepts("auth", "max_failures", "1000", &c) &&
	      c.max_failures == 1000);
	CHECK(!accepts("auth", "max_failures", "1001", &c));
	CHECK(!accepts("auth", "max_failures", "-1", &c));
	CHECK(!accepts("auth", "max_failures", "3 tries", &c));
	/* an empty value is no number: it must not turn the lockout off */
	CHECK(!accepts("auth", "max_failures", "", &c));
	CHECK(accepts("auth", "lockout", "90s", &c) && c.lockout_s == 90);
	CHECK(accepts("auth", "lockout", "1500ms", &c) && c.lockout_s == 2);
	CHECK(accepts("auth", "lockout", "0", &c) && c.lockout_s == 0);
	CHECK(!accepts("auth", "lockout", "forever", &c));
	/* [keys] */
	CHECK(accepts("keys", "max_age", "0", &c) && c.key_max_age_s == 0);
	CHECK(accepts("keys", "max_age", "90d", &c) &&
	      c.key_max_age_s == 90 * 86400);
	CHECK(accepts("keys", "max_age", "1ms", &c) && c.key_max_age_s == 1);
	CHECK(!accepts("keys", "max_age", "-1d", &c));
	CHECK(!accepts("keys", "max_age", "never", &c));
	/* [audit] */
	CHECK(accepts("audit", "flush_interval", "1ms", &c) &&
	      c.audit_flush_ms == 1);
	CHECK(accepts("audit", "flush_interval", "1min", &c) &&
	      c.audit_flush_ms == 60000);
	CHECK(!accepts("audit", "flush_interval", "0", &c));
	CHECK(!accepts("audit", "flush_interval", "2m", &c));
	CHECK(accepts("audit", "syslog", "on", &c) && c.audit_syslog == 1);
	CHECK(accepts("audit", "syslog", "yes", &c) && c.audit_syslog == 1);
	CHECK(accepts("audit", "syslog", "true", &c) && c.audit_syslog == 1);
	CHECK(accepts("audit", "syslog", "off", &c) && c.audit_syslog == 0);
	CHECK(accepts("audit", "syslog", "no", &c) && c.audit_syslog == 0);
	CHECK(accepts("audit", "syslog", "false", &c) && c.audit_syslog == 0);
	CHECK(!accepts("audit", "syslog", "maybe", &c));
	CHECK(!accepts("audit", "syslog", "1", &c));
	CHECK(!accepts("audit", "syslog", "", &c));
	CHECK(accepts("audit", "syslog_socket", "/run/log.sock", &c) &&
	      !strcmp(c.audit_syslog_socket, "/run/log.sock"));
	CHECK(!accepts("audit", "syslog_socket", "relative/log", &c));
	CHECK(!accepts("audit", "syslog_socket", "", &c));
	{
		char longpath[140];
		longpath[0] = '/';
		memset(longpath + 1, 'p', 107);
		longpath[108] = 0; /* 108 bytes: one too many for sun_path */
		CHECK(!accepts("audit", "syslog_socket", longpath, &c));
		longpath[107] = 0;
		CHECK(accepts("audit", "syslog_socket", longpath, &c) &&
		      strlen(c.audit_syslog_socket) == 107);
	}
	/* unknown keys and sections, and keys in the wrong section */
	CHECK(!accepts("kdf", "opslimits", "4", &c));
	CHECK(!accepts("kdf", "block_size", "4096", &c));
	CHECK(!accepts("store", "opslimit", "4", &c));
	CHECK(!accepts("mounts", "readahead", "0", &c));
	CHECK(!accepts("KDF", "opslimit", "4", &c));
	CHECK(!accepts("", "opslimit", "4", &c));
}

/* Messages: one line, the right file and line, the first error's. */
static void test_messages(void)
{
	struct config c;
	char err[512], want[256];

	/* an unknown section (its header on line 4) */
	CHECK_EQ(load("[kdf]\nopslimit = 2\n\n[nonsense]\nx = 1\n", &c, err,
	              sizeof err), -1);
	snprintf(want, sizeof want, "%s:4:", path);
	CHECK(strstr(err, want) == err);
	CHECK(strstr(err, "nonsense") != NULL);
	/* a syntax error (no '=') */
	CHECK_EQ(load("[kdf]\nopslimit 2\n", &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2:", path);
	CHECK(strstr(err, want) == err);
	/* two bad lines: the message is about the first one, whose line it
	 * gives */
	CHECK_EQ(load("[kdf]\nopslimit = 99\nmemlimit = 1\n", &c, err, sizeof err),
	         -1);
	snprintf(want, sizeof want, "%s:2:", path);
	CHECK(strstr(err, want) == err);
	CHECK(strstr(err, "opslimit") != NULL);
	CHECK(strstr(err, "memlimit") == NULL);
	if (strstr(err, "memlimit"))
		fprintf(stderr, "  two errors: '%s'\n", err);
	/* a long message is cut, never overrun */
	{
		char small[24];
		memset(small, 'Z', sizeof small);
		CHECK_EQ(load("[nonsense-section-with-a-long-name]\nkey = v\n", &c,
		              small, 16), -1);
		CHECK(memchr(small, 0, 16) != NULL);
		CHECK_EQ(small[16], 'Z');
	}
}

static void test_parsers(void)
{
	/* durations, in milliseconds */
	CHECK_EQ(config_parse_duration_ms("0"), 0);
	CHECK_EQ(config_parse_duration_ms("10"), 10000);
	CHECK_EQ(config_parse_duration_ms("10s"), 10000);
	CHECK_EQ(config_parse_duration_ms("10S"), 10000);
	CHECK_EQ(config_parse_duration_ms("1.5s"), 1500);
	CHECK_EQ(config_parse_duration_ms("500ms"), 500);
	CHECK_EQ(config_parse_duration_ms("500MS"), 500);
	CHECK_EQ(config_parse_duration_ms("2m"), 120000);
	CHECK_EQ(config_parse_duration_ms("2min"), 120000);
	CHECK_EQ(config_parse_duration_ms("3h"), 10800000);
	CHECK_EQ(config_parse_duration_ms("90d"), 90ll * 86400000);
	CHECK_EQ(config_parse_duration_ms("10 s"), 10000);
	CHECK_EQ(config_parse_duration_ms("0.001s"), 1);
	CHECK_EQ(config_parse_duration_ms("-1"), -1);
	CHECK_EQ(config_parse_duration_ms("-0.5s"), -1);
	CHECK_EQ(config_parse_duration_ms(""), -1);
	CHECK_EQ(config_parse_duration_ms("s"), -1);
	CHECK_EQ(config_parse_duration_ms("10x"), -1);
	CHECK_EQ(config_parse_duration_ms("10sec"), -1);
	CHECK_EQ(config_parse_duration_ms("10s5"), -1);
	CHECK_EQ(config_parse_duration_ms("1e400"), -1);
	CHECK_EQ(config_parse_duration_ms("inf"), -1);
	CHECK_EQ(config_parse_duration_ms("infinity"), -1);
	CHECK_EQ(config_parse_duration_ms("1000000000d"), -1);
	/* not a number at all: no number of milliseconds comes out of it */
	CHECK_EQ(config_parse_duration_ms("nan"), -1);
	CHECK_EQ(config_parse_duration_ms("nans"), -1);
	/* sizes, in bytes */
	CHECK_EQ(config_parse_size("0"), 0);
	CHECK_EQ(config_parse_size("4096"), 4096);
	CHECK_EQ(config_parse_size("4K"), 4096);
	CHECK_EQ(config_parse_size("4k"), 4096);
	CHECK_EQ(config_parse_size("64M"), 64 << 20);
	CHECK_EQ(config_parse_size("64MB"), 64 << 20);
	CHECK_EQ(config_parse_size("64mb"), 64 << 20);
	CHECK_EQ(config_parse_size("1G"), 1 << 30);
	CHECK_EQ(config_parse_size("1024G"), 1ll << 40);
	CHECK_EQ(config_parse_size("1025G"), -1);
	CHECK_EQ(config_parse_size("1099511627777"), -1);
	CHECK_EQ(config_parse_size("-1"), -1);
	CHECK_EQ(config_parse_size("-4K"), -1);
	CHECK_EQ(config_parse_size(""), -1);
	CHECK_EQ(config_parse_size("K"), -1);
	CHECK_EQ(config_parse_size("1T"), -1);
	CHECK_EQ(config_parse_size("1.5M"), -1);
	CHECK_EQ(config_parse_size("1KiB"), -1);
	CHECK_EQ(config_parse_size("1MBB"), -1);
	CHECK_EQ(config_parse_size("0x10"), -1);
	CHECK_EQ(config_parse_size("99999999999999999999999"), -1);
	/* a number that overflows when scaled is too big, not small */
	CHECK_EQ(config_parse_size("17179869184G"), -1);       /* 2^64 */
	CHECK_EQ(config_parse_size("18014398509481985K"), -1); /* 2^64 + 1K */
}

int main(void)
{
	snprintf(dir, sizeof dir, "/var/tmp/cfs-unit-config.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/custodyfs.ini", dir);
	test_defaults();
	test_keys();
	test_messages();
	test_parsers();
	unlink(path);
	CHECK_EQ(rmdir(dir), 0);
	UNIT_END("test_config");
}
