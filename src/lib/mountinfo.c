/*
 * mountinfo.c - /proc/self/mountinfo (mountinfo.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"

/* Copy a mountinfo field, undoing its \ooo escapes. */
static void unescape(const char *in, char *out, size_t n)
{
	size_t k = 0;

	while (*in && k + 1 < n) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' &&
		    in[2] >= '0' && in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
			out[k++] = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 +
			                  (in[3] - '0'));
			in += 4;
		} else
			out[k++] = *in++;
	}
	out[k] = 0;
}

int mountinfo_each(const char *prefix,
                   int (*fn)(void *arg, const struct mountinfo *m), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, point[PATH_MAX], source[PATH_MAX], super[1024];
	struct mountinfo *m;
	size_t cap = 0;
	int rc = 0;

	if (!f)
		return -errno;
	if (!(m = malloc(sizeof *m))) {
		fclose(f);
		return -ENOMEM;
	}
	while (!rc && getline(&line, &cap, f) > 0) {
		const char *sep = strstr(line, " - ");
		/* id parent major:minor root mountpoint ... - fstype source super */
		memset(m, 0, sizeof *m);
		super[0] = source[0] = 0;
		if (!sep || sscanf(line, "%*s %*s %31s %*s %4095s", m->dev, point) != 2 ||
		    sscanf(sep + 3, "%63s %4095s %1023s", m->fstype, source,
		           super) < 1)
			continue;
		if (prefix && strncmp(m->fstype, prefix, strlen(prefix)))
			continue;
		unescape(point, m->point, sizeof m->point);
		unescape(source, m->source, sizeof m->source);
		unescape(super, m->super, sizeof m->super);
		rc = fn(arg, m);
	}
	free(line);
	free(m);
	fclose(f);
	return rc;
}

int mountinfo_option(const char *opts, const char *name, unsigned long *out)
{
	size_t n = strlen(name);
	const char *p = opts;

	while (p && *p) {
		if (!strncmp(p, name, n) && p[n] == '=') {
			char *end;
			errno = 0;
			*out = strtoul(p + n + 1, &end, 10);
			if (errno || end == p + n + 1 || (*end && *end != ','))
				return -1;
			return 0;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return -1;
}
