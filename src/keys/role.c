/*
 * role.c - the roles and their rights (role.h).
 */
#include <string.h>

#include "role.h"

static const char *const names[] = { "admin", "writer", "reader", "auditor" };

const char *role_name(enum role r)
{
	if (r == ROLE_REMOVED)
		return "removed";
	return role_valid(r) ? names[r] : "?";
}

enum role role_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, names[i]))
			return (enum role)i;
	return ROLE_NONE;
}

int role_valid(int r)
{
	return r >= ROLE_ADMIN && r <= ROLE_AUDITOR;
}

int role_holds_data(enum role r)
{
	return r == ROLE_ADMIN || r == ROLE_WRITER || r == ROLE_READER;
}

int role_writes(enum role r)
{
	return r == ROLE_ADMIN || r == ROLE_WRITER;
}

int role_reads_audit(enum role r)
{
	return r == ROLE_ADMIN || r == ROLE_AUDITOR;
}

int role_administers(enum role r)
{
	return r == ROLE_ADMIN;
}
