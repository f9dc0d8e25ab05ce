/*
 * ledger.h - the chain of signed commit records: what the store's state
 * is, who made it, and in what order.
 *
 * Every write transaction of every mount and command ends with one commit
 * record (the ledger table): its sequence number, the hash of the previous
 * record, the roster in force (counter and hash), the roots of the Merkle
 * trees over inodes, directory entries and credentials (mtree.h), the next
 * inode number, the head of the audit hash chain, the store instance, and
 * the signatures of the sessions that took part. A record is valid only
 * as the successor of the one before it:
 *   - its previous hash and sequence number follow on;
 *   - every signer is a session endorsed by a user the roster knows, who
 *     was not removed under the roster in force before it;
 *   - it may move the inode or entry roots (or the next inode number) only
 *     if a signer's role writes (admin, writer) under that roster, change
 *     the roster only if a signer is an admin, change the instance only as
 *     a fork (a backup) that leaves the filesystem as it was;
 *   - the audit head and the roster counter never go backwards.
 * Anyone may append their own audit rows and change their own credential.
 * So a reader or auditor with a data key and write access to the file can
 * append only commits that leave the filesystem as it was, and a keyless
 * writer can append none.
 *
 * Errors: 0 or -errno; -EBADMSG for a record that fails (why explains).
 */
#ifndef CUSTODY_LEDGER_H
#define CUSTODY_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include "mtree.h"

#define LEDGER_MAX_SIGNERS 64
#define LEDGER_HASH_BYTES 32
#define LEDGER_FORK 1u
#define LEDGER_PROOF_MAX (8 + 32 + MTREE_PROOF_MAX)       /* flags: a new instance (a backup copy) */

struct store;
struct rights;
struct session;

struct ledger_state {
	uint64_t roster_counter;
	uint8_t roster_hash[LEDGER_HASH_BYTES];
	struct mtree_root inodes, dentries, creds;
	uint64_t next_ino;
	int64_t audit_seq;                       /* the last row (0: none) */
	uint8_t audit_hash[LEDGER_HASH_BYTES];   /* its chain hash */
	uint8_t instance[16];
	uint32_t flags;
};

struct ledger_commit {
	int64_t seq;
	uint8_t store_id[16];
	uint8_t prev[LEDGER_HASH_BYTES];
	int64_t time;                            /* ns, as the signer said */
	struct ledger_state st;
	uint8_t hash[LEDGER_HASH_BYTES];         /* of the body */
	size_t nsig;
	int64_t signer[LEDGER_MAX_SIGNERS];      /* session ids, ascending */
	uint8_t sig[LEDGER_MAX_SIGNERS][64];
	/* a commit that changes one user's credential without an admin's
	 * signature carries the proof that it changes only that one: user id
	 * (8) || the old leaf (32) || mtree_proof of the credentials tree.
	 * Unsigned: it is checked against the signed roots. */
	size_t prooflen;
	uint8_t proof[LEDGER_PROOF_MAX];
};

/* Parse a stored record (the boundary of hostile bytes: fuzzed). Checks
 * form only, not signatures. 0 or -EBADMSG. */
int ledger_parse(const uint8_t *body, size_t len, const uint8_t *sigs,
                 size_t siglen, struct ledger_commit *out);
int ledger_read(struct store *s, int64_t seq, struct ledger_commit *out);
/* The newest record: -ENOENT if there is none. */
int ledger_head(struct store *s, struct ledger_commit *out);

/*
 * Append the successor of *prev (the current head; NULL for the genesis
 * record) with state st, signed by the n sessions given (at least one;
 * each must have a sessions row), inside the caller's transaction. *out
 * (may be NULL) receives the record.
 */
int ledger_append(struct store *s, const uint8_t store_id[16],
                  const struct ledger_commit *prev,
                  const struct ledger_state *st,
                  struct session *const *signers, size_t n,
                  const uint8_t *proof, size_t prooflen,
                  struct ledger_commit *out);

/*
 * Check that c is a valid successor of prev (NULL: c must be the genesis
 * record) under the verified roster r: the rules above. why (may be NULL)
 * receives the reason. Sessions verified once are remembered in cache
 * (ledger_cache_new; may be NULL).
 */
struct ledger_cache;
int ledger_cache_new(struct ledger_cache **out);
void ledger_cache_free(struct ledger_cache *c);
int ledger_check(struct store *s, const struct rights *r,
                 struct ledger_cache *cache, const struct ledger_commit *prev,
                 const struct ledger_commit *c, char *why, size_t whylen);
/*
 * The role (and user) of a commit's signer session under roster counter
 * `at` (audit attribution): 0, or -EBADMSG.
 */
int ledger_signer(struct store *s, const struct rights *r,
                  struct ledger_cache *cache, int64_t session,
                  uint64_t at, int64_t *user_id, int *role);

/*
 * Verify the chain from a trusted record (from_seq, from_hash) up to the
 * head: every record after it, one by one. from_seq 0 starts at the
 * oldest record kept (the genesis record, or the authority-signed base left by
 * an audit prune). *head receives the newest record. progress (may be
 * NULL) sees records done and the total. -EBADMSG with why naming the
 * record; -ESTALE if the trusted record is not in the chain (a rollback or
 * a fork: why says which).
 */
int ledger_verify(struct store *s, const struct rights *r,
                  int64_t from_seq, const uint8_t *from_hash,
                  struct ledger_commit *head,
                  void (*progress)(void *arg, uint64_t done, uint64_t total),
                  void *arg, char *why, size_t whylen);

/*
 * The same, stopping at the first record that fails after one that
 * verifies: 0 with *head the newest record that verifies (the signed
 * head) and *beyond the seq of the first record after it that does not
 * (0: every record verifies; else why names it). Records beyond the signed
 * head are never part of the store's state: a caller refuses them (or,
 * inspecting a damaged store read-only, reports them). -EBADMSG only when
 * not even the starting record verifies; -ESTALE as ledger_verify.
 */
int ledger_verify_head(struct store *s, const struct rights *r,
                       int64_t from_seq, const uint8_t *from_hash,
                       struct ledger_commit *head, int64_t *beyond,
                       char *why, size_t whylen);

/*
 * After an audit prune: the oldest kept record is vouched for by the store
 * authority (meta "ledger_base": its seq and hash, signed by the
 * authority of r's epoch, whose secret authority_sk is; -EPERM for another
 * key). ledger_verify starts from it when from_seq is 0 and the genesis
 * record is gone, and accepts it only under the newest epoch.
 */
int ledger_set_base(struct store *s, const struct rights *r,
                    const uint8_t *authority_sk,
                    const struct ledger_commit *base);

/*
 * An authority rotation: the base record, if one verifies under r (the
 * roster's authority before the rotation), signed again by the new
 * authority (epoch, sk). A record that does not verify is left as it is
 * (never vouched for again). 0 or -errno of the store.
 */
int ledger_base_resign(struct store *s, const struct rights *r,
                       uint32_t epoch, const uint8_t *sk);

/*
 * The roster's anchor (meta "roster_anchor"): the commit c that adopted
 * roster r, signed by r's authority (authority_sk) over (store id, epoch,
 * roster counter and hash, c's seq and hash). A roster of version
 * RIGHTS_VERSION_ANCHORED is accepted only in a history that holds that
 * commit (or starts, at a base or at a commit seen before, under r
 * itself): the roster's signature alone would let anyone who was ever an
 * admin write a history of their own that ends by adopting it, since a
 * first commit is judged at the roster counter it names. Written in the
 * transaction that adopts r (unlock_finish_fs, unlock_create). 0,
 * -EPERM (authority_sk is not r's) or -errno of the store.
 */
int ledger_anchor(struct store *s, const struct rights *r,
                  const uint8_t *authority_sk, const struct ledger_commit *c);

#endif
