/*
 * passphrase.h - getting a passphrase into locked memory without it ever
 * touching argv, the environment, or ordinary buffers.
 *
 * Sources, in order of precedence: a passfile (its first line), an external
 * command (--extpass: its first line of output), or the terminal (no echo).
 */
#ifndef CUSTODY_PASSPHRASE_H
#define CUSTODY_PASSPHRASE_H

#include <stddef.h>

#define PASSPHRASE_MAX 1024

struct passphrase {
	char *buf;  /* locked memory, NUL-terminated */
	size_t len;
};

/*
 * Read a passphrase. passfile and extpass may be NULL; with neither, the
 * terminal is used (prompt shown; with confirm, asked twice and compared).
 * Returns 0, or -1 with one line in err. As ssh does with private keys, a
 * regular passfile is refused when another user could read or change it:
 * owned by anyone but the caller or root; one of the caller's own with
 * any group or other permission; a root-owned one (a systemd credential,
 * a file an admin provided) writable by its group or open to others. On
 * success, free with passphrase_free.
 */
int passphrase_get(const char *passfile, const char *extpass,
                   const char *prompt, int confirm, struct passphrase *out,
                   char *err, size_t errlen);
void passphrase_free(struct passphrase *p);

#endif
