/*
 * audit.h - the audit trail: one row per operation, in one hash chain,
 * each row attributed to the session that recorded it.
 *
 * A row says who (the store user it is about, the session that recorded
 * it, uid, gid, pid, process name), what (operation, inode, path, offset,
 * length), when (ns) and the result (0 or -errno). Process name and path
 * are sealed with the recording session's detail key (session.h), which
 * only admins and auditors can open. Each row's hash covers the previous
 * row's hash and every column, and every commit record (ledger.h) carries
 * the head of the chain and the signatures of the sessions whose rows it
 * adds. So a row cannot be edited, deleted, inserted, reordered or
 * re-attributed to another user without a commit signature failing, and
 * a tail cut back behind the newest commit no longer matches it.
 *
 * Rows are appended inside the caller's transaction, so a write's row
 * commits with the data it describes.
 */
#ifndef CUSTODY_AUDIT_H
#define CUSTODY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct session;
struct rights;
struct store_audit;
struct ledger_commit;

/* The store user of a row about a uid without a session (recorded by a
 * shared mount's own session): no user of the roster may take the name. */
#define AUDIT_NO_SESSION "-"

/* Who is asking, in Unix terms. */
struct audit_who {
	uint32_t uid, gid, pid;
};

/*
 * The chain's head for one connection, and the sessions that appended in
 * the open transaction (the commit's signers). Not thread-safe.
 */
struct audit_trail;
int audit_trail_new(struct store *s, struct audit_trail **out);
void audit_trail_free(struct audit_trail *t);
/* A write transaction begins after the commit `head` (NULL: none yet). */
void audit_trail_begin(struct audit_trail *t, const struct ledger_commit *head);
void audit_trail_head(const struct audit_trail *t, int64_t *seq,
                      uint8_t hash[32]);
/* The sessions that appended since audit_trail_begin: at most cap into
 * out, and how many there are. */
size_t audit_trail_signers(const struct audit_trail *t, struct session **out,
                           size_t cap);
/* Count ss among the signers without a row (housekeeping it did). */
int audit_trail_sign(struct audit_trail *t, struct session *ss);
/* How many of the n sessions given (NULL entries skipped, repeats counted
 * once) are not signers yet: the caller commits first when they would
 * not fit (LEDGER_MAX_SIGNERS). */
size_t audit_trail_new_signers(const struct audit_trail *t,
                               struct session *const *ss, size_t n);

/*
 * Append one row recorded by session ss (which must have a sessions row).
 * path may be NULL. when_ns 0: now. -EPERM for a session without a row.
 */
int audit_append(struct audit_trail *t, struct session *ss,
                 const struct audit_who *w, int64_t when_ns, const char *op,
                 uint64_t ino, const char *path, uint64_t off, uint64_t len,
                 int result);
/* The same for an event about another user (a failed login). */
int audit_append_about(struct audit_trail *t, struct session *ss,
                       const char *user, const struct audit_who *w,
                       int64_t when_ns, const char *op, const char *what,
                       int result);
/*
 * A row of a format-1 trail carried into this one by custodyctl upgrade
 * (ss: the upgrade's session, kind "upgrade"): the original user, process,
 * time, operation, inode, range, result, process name and path, recorded
 * and signed by ss. audit_verify accepts such a row naming another user
 * in the upgrade's first commit only.
 */
int audit_append_carried(struct audit_trail *t, struct session *ss,
                         const char *user, const struct audit_who *w,
                         int64_t when_ns, const char *op, uint64_t ino,
                         const char *comm, const char *path, uint64_t off,
                         uint64_t len, int result);
/* An admin action or command of ss's own process. */
int audit_command(struct audit_trail *t, struct session *ss, const char *op,
                  const char *target, int result);
/* Move failed-login and lockout events waiting in auth_events into the
 * trail, recorded by ss. Inside the caller's transaction. */
int audit_adopt_auth_events(struct audit_trail *t, struct session *ss);

/*
 * Verify the whole trail: the hash chain from its start (or the pruned
 * base) to the last row, that the chain's head is the newest commit's,
 * that every row lies under a commit signed by the session it names, and
 * that a row's user is that session's user (or, for a login failure, any
 * name). A row numbered before the chain's start (audit_first_row) fails. 0, or -EBADMSG with *bad_seq (the first bad row, or a commit) and
 * a one-line reason. *rows counts the rows checked.
 */
int audit_verify(struct store *s, const struct rights *r, int64_t *bad_seq,
                 uint64_t *rows, char *why, size_t whylen);

/*
 * The first row the signed chain covers: 1, or after a prune the row after
 * the base commit's audit head. Rows numbered below it are no part of the
 * signed history (audit_verify flags them). 0 or -errno.
 */
int audit_first_row(struct store *s, int64_t *first_row);

/* Reading details: a session whose role reads the trail. */
struct audit_reader;
int audit_reader_new(struct store *s, const struct rights *r,
                     const struct session *ss, struct audit_reader **out);
void audit_reader_free(struct audit_reader *rd);
/* comm and path of a row: -EACCES if this reader lacks the key, -EBADMSG
 * if its session's detail key was replaced (audit_reader_check), -EIO if
 * the row's detail does not open. */
int audit_reader_detail(struct audit_reader *rd, const struct store_audit *a,
                        char *comm, size_t commlen, char *path,
                        size_t pathlen);
/* The detail key of a session, as this reader finds it: 0 (it opens and
 * is the one its user endorsed), -EACCES (this reader holds no key for
 * it), -EBADMSG (replaced or damaged: *why says how). */
int audit_reader_check(struct audit_reader *rd, int64_t session,
                       const char **why);
/*
 * For a session whose role reads the trail (admin, auditor; others: 0 at
 * once): every session's detail key against the commitment its user
 * endorsed. 0, or -EBADMSG with *bad_session and why. *checked counts the
 * keys found intact.
 */
int audit_verify_details(struct store *s, const struct rights *r,
                         const struct session *ss, int64_t *bad_session,
                         uint64_t *checked, char *why, size_t whylen);
/* The store user name of a row's recording session ("?" if unknown). */
const char *audit_reader_session_user(struct audit_reader *rd, int64_t session);

/*
 * Prune rows older than before_seq and the commit records before the one
 * whose audit head covers them (admin ss; inside the caller's
 * transaction), leaving an authority-signed base so the chain stays
 * verifiable from there. *removed counts rows.
 */
int audit_prune(struct store *s, const struct rights *r,
                const struct session *admin, int64_t before_seq,
                uint64_t *removed);

/*
 * Re-seal up to limit session detail keys still sealed under versions
 * older than the active one to its audit key (reencrypt). The session
 * must hold audit grants (admin). *moved counts them.
 */
int audit_reseal_sessions(struct store *s, const struct rights *r,
                          const struct session *ss, size_t limit,
                          uint64_t *moved);

#endif
