/*
 * fuzz_config.c - libFuzzer harness: config_load on a file holding the
 * input (custodyfs.ini is read from anywhere -c points), and the duration
 * and size parsers on its first line. What must hold: no crash, no
 * undefined behaviour, no leak; a refusal is one NUL-terminated line; a
 * file that loads gives values inside the documented ranges.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static int fd = -1;

static void fail(const char *what)
{
	fprintf(stderr, "ORACLE: %s\n", what);
	abort();
}

static void cleanup(void)
{
	unlink(path);
}

/* A plain size (digits, a K, M or G, a B) worked out exactly: what
 * config_parse_size must give (-1 past 1 TiB). */
static void size_check(const char *s, int64_t got)
{
	unsigned __int128 v = 0;
	size_t i = 0;

	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i >= 30)
			return;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0)
		return;
	switch (s[i]) {
	case 'k': case 'K': v <<= 10; i++; break;
	case 'm': case 'M': v <<= 20; i++; break;
	case 'g': case 'G': v <<= 30; i++; break;
	default: if (s[i]) return; /* a B only after a unit */
	}
	if (s[i] == 'b' || s[i] == 'B')
		i++;
	if (s[i])
		return;
	if (v > ((unsigned __int128)1 << 40) ? got != -1 : got != (int64_t)v)
		fail("a size parsed to another number");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[512], line[256];
	size_t n;

	if (fd < 0) {
		const char *tmp = getenv("CFS_UNIT_TMPDIR");
		if (!tmp || tmp[0] != '/' || strlen(tmp) > 32)
			tmp = "/tmp";
		snprintf(path, sizeof path, "%s/cfs-fuzz-config.XXXXXX", tmp);
		if ((fd = mkstemp(path)) < 0)
			abort();
		atexit(cleanup);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	config_defaults(&c);
	memset(err, 'Z', sizeof err);
	if (config_load(path, &c, err, sizeof err) == 0) {
		if (c.kdf_opslimit < 1 || c.kdf_opslimit > 64 ||
		    c.kdf_memlimit < 8192 || c.kdf_memlimit > (4ull << 30))
			fail("kdf out of range");
		if (c.block_size < 512 || c.block_size > 65536 ||
		    (c.block_size & (c.block_size - 1)))
			fail("block_size out of range");
		if (c.busy_timeout_ms < 0 || c.idle_checkpoint_ms < 0 ||
		    c.attr_timeout_ms < 0 || c.lockout_s < 0 || c.key_max_age_s < 0)
			fail("negative duration");
		if (c.commit_interval_ms < 1 || c.commit_interval_ms > 60000 ||
		    c.audit_flush_ms < 1 || c.audit_flush_ms > 60000)
			fail("interval out of range");
		if (c.readahead < 0 || (c.readahead &&
		    (c.readahead < 4096 || c.readahead > (64ll << 20))))
			fail("readahead out of range");
		if (c.max_failures < 0 || c.max_failures > 1000)
			fail("max_failures out of range");
	} else {
		if (!memchr(err, 0, sizeof err))
			fail("error message not terminated");
		if (strchr(err, '\n'))
			fail("error message of more than one line");
	}
	/* the parsers on the first line */
	n = 0;
	while (n < size && n < sizeof line - 1 && data[n] != '\n' && data[n])
		n++;
	memcpy(line, data, n);
	line[n] = 0;
	(void)config_parse_duration_ms(line);
	{
		int64_t v = config_parse_size(line);
		if (v < -1 || v > (1ll << 40))
			fail("size out of range");
		size_check(line, v);
	}
	return 0;
}
