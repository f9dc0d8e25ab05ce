/*
 * unit.h - a tiny assertion kit for the unit tests (tests/unit/test_*.c).
 * Each CHECK counts; main() ends with UNIT_END, which prints
 * "<name>: N passed, M failed" and returns non-zero on any failure.
 */
#ifndef CUSTODY_UNIT_H
#define CUSTODY_UNIT_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int unit_pass, unit_fail;

#define CHECK(cond) do { \
	if (cond) unit_pass++; \
	else { unit_fail++; fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a == _b) unit_pass++; \
	else { unit_fail++; fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", \
	                            __FILE__, __LINE__, #a, #b, _a, _b); } \
} while (0)

/* Remove a store file and whatever SQLite keeps beside it. */
static inline void rm_store(const char *p)
{
	static const char *const side[] = { "-wal", "-shm", "-journal" };
	char b[4096];

	unlink(p);
	for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
		snprintf(b, sizeof b, "%s%s", p, side[i]);
		unlink(b);
	}
}

#define UNIT_END(name) do { \
	printf("%s: %d passed, %d failed\n", name, unit_pass, unit_fail); \
	return unit_fail ? 1 : 0; \
} while (0)

#endif
