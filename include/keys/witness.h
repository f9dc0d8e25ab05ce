/*
 * witness.h - the system log as a witness of the trail ([audit] syslog).
 *
 * With syslog on, every commit's signed head goes to the system log as it
 * commits, and every failed login or lockout at once (before any key is at
 * hand, so before it can reach the trail):
 *   custodyfs[PID]: commit store=ID instance=I seq=N hash=H audit=S:A
 *   custodyfs[PID]: login-failed store=ID user=NAME uid=U pid=P
 * journald stamps each line with the sender's trusted _UID and _PID,
 * which a local user cannot forge; what the log holds is outside the
 * store file, so a file writer cannot take it back.
 *
 * `custodyctl audit verify --witness FILE` reads such a log (the plain
 * lines of a syslog file, or `journalctl -t custodyfs -o json`) and checks
 * every commit it saw for this store instance against the ledger: a
 * commit the witness saw that the store lacks, or holds with another
 * hash, is a cut tail or a rollback (-ESTALE). A line anyone could send
 * can make verify fail, never pass: the ledger's own signatures decide
 * what is genuine.
 *
 * Sending is best effort (a datagram to [audit] syslog_socket, default
 * /dev/log, never blocking): a witness that is down loses lines, it never
 * stops the filesystem. The README says what each side proves.
 */
#ifndef CUSTODY_WITNESS_H
#define CUSTODY_WITNESS_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct store;
struct ledger_commit;

/* One line to the witness, if cfg turns it on. */
void witness_line(const struct config *cfg, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* The signed head c of store store_id, just committed. */
void witness_commit(const struct config *cfg, const struct ledger_commit *c);

struct witness_report {
	uint64_t lines;      /* commit lines for this store */
	uint64_t checked;    /* found in the ledger with the same hash */
	uint64_t before;     /* older than the oldest record kept (pruned) */
	uint64_t other;      /* of another instance (a copy) */
};
/*
 * Check the ledger of s (head: its verified newest record) against the
 * witness log at path. 0, -ESTALE (why names the commit), or -errno.
 */
int witness_verify(struct store *s, const struct ledger_commit *head,
                   const char *path, struct witness_report *rep, char *why,
                   size_t whylen);

#endif
