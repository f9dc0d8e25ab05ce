/*
 * audit.h - the tamper-evident audit trail.
 *
 * One row per operation: who (store user, uid, gid, pid, process name), what
 * (operation, inode, path or name, offset, length), when (ns) and the result
 * (0 or -errno). Process name and path are sealed to the active key
 * version's audit public key, so only admins and auditors can read them.
 * Every row carries MAC(audit_mac_key, previous MAC || row), and the meta
 * row "audit_head" holds a MAC of the last (seq, MAC), so edits, deletions,
 * insertions, reordering and tail truncation are all detected.
 *
 * Rows are appended to the store inside the caller's transaction, so a
 * write's row commits with the data it describes.
 */
#ifndef CUSTODY_AUDIT_H
#define CUSTODY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit;
struct store;
struct keyring;
struct session;
struct audit_who {
	uint32_t uid, gid, pid;
};

/*
 * Start appending for session ss (its audit MAC key is needed; -EPERM
 * without). kr supplies the active version's audit public key.
 */
int audit_new(struct store *s, struct keyring *kr, const struct session *ss,
              int64_t mount_id, struct audit **out);
void audit_free(struct audit *a);

/* Append one row (inside the caller's transaction). name may be NULL. */
int audit_record(struct audit *a, const struct audit_who *c, const char *op,
                 uint64_t ino, const char *name, uint64_t off, uint64_t len,
                 int result);
/* The same, for an event that happened at when_ns (ns since the epoch). */
int audit_record_at(struct audit *a, const struct audit_who *c, int64_t when_ns,
                    const char *op, uint64_t ino, const char *name,
                    uint64_t off, uint64_t len, int result);

#endif

/*
 * Batch mode, for a long transaction owned by one writer (the daemon's
 * group commit): the chain's head is kept in memory between rows and its
 * mark written once by audit_batch_end(a, 1) just before COMMIT (with 0
 * after a rollback: nothing is written, the cache is dropped).
 */
void audit_batch_begin(struct audit *a);
int audit_batch_end(struct audit *a, int commit);

/* Start a new detail key under the (new) active version: after rotation,
 * new rows' paths are sealed under the new version's audit key. */
void audit_rekey(struct audit *a);

/* Move failed-login and lockout events (recorded without a key while
 * they happened) into the chained trail. Inside the caller's transaction. */
int audit_adopt_auth_events(struct audit *a);

/* Record an admin action (custodyctl): op, target name, result. */
int audit_admin(struct audit *a, const char *op, const char *target,
                int result);

/*
 * Verify the whole chain with the audit MAC key. Returns 0 if intact, or
 * -EBADMSG with *bad_seq set to the first bad row (or the head's seq) and a
 * one-line reason in why.
 */
int audit_verify(struct store *s, const uint8_t *mac_key, int64_t *bad_seq,
                 uint64_t *rows, char *why, size_t whylen);

/* Decrypting details: needs a session holding "audit" grants. */
struct audit_reader;
int audit_reader_new(struct store *s, const struct session *ss,
                     struct audit_reader **out);
void audit_reader_free(struct audit_reader *r);
struct store_audit;
/* comm and path of a row: -EACCES if this reader lacks the key. */
int audit_reader_detail(struct audit_reader *r, const struct store_audit *a,
                        char *comm, size_t commlen, char *path,
                        size_t pathlen);

/* Prune rows older than seq (admin), keeping the chain verifiable. */
int audit_prune(struct store *s, const uint8_t *mac_key, int64_t before_seq,
                uint64_t *removed);

/*
 * Re-seal up to limit per-session detail keys still sealed under versions
 * older than `active` to the active version's audit key (reencrypt). The
 * session must hold "audit" grants (admin). *moved counts them.
 */
int audit_reseal_sessions(struct store *s, const struct session *ss,
                          uint32_t active, size_t limit, uint64_t *moved);
