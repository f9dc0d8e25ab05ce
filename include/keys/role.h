/*
 * role.h - the four roles and what each may do. The one place the rules
 * live: every check of a right asks these predicates about a role read
 * from the verified roster (rights.h), never about a string in a row.
 */
#ifndef CUSTODY_ROLE_H
#define CUSTODY_ROLE_H

enum role {
	ROLE_NONE = -1,
	ROLE_ADMIN = 0,   /* everything: users, keys, the trail */
	ROLE_WRITER = 1,  /* changes files */
	ROLE_READER = 2,  /* reads files, changes nothing */
	ROLE_AUDITOR = 3, /* reads the trail, holds no data key */
	ROLE_REMOVED = 255, /* in the roster only: removed or revoked */
};

const char *role_name(enum role r);  /* "admin" ... "removed", "?" */
enum role role_parse(const char *s); /* ROLE_NONE if unknown (and for "removed") */
int role_valid(int r);               /* one of the four live roles */
int role_holds_data(enum role r);    /* admin, writer, reader */
int role_writes(enum role r);        /* admin, writer: may move the fs roots */
int role_reads_audit(enum role r);   /* admin, auditor */
int role_administers(enum role r);   /* admin */

#endif
