/*
 * session.h - one authenticated user for one mount, command or login:
 * their keys in locked memory, and the session's own signing key.
 *
 * A user's long-term identity is an Ed25519 key (the roster lists it); it
 * signs only one thing per session: the endorsement of a fresh session key
 * (sessions table), which then signs the session's commits. So the daemon
 * can wipe the identity key once the session is endorsed, and a commit is
 * attributable to one session of one user. The session also holds an
 * audit detail key that seals the process names and paths of its audit
 * rows, itself sealed to the audit key of the active master key version
 * (readable by admins and auditors only).
 *
 * Secrets (box_sk, sign_sk, authority_sk, sk, detail_key) live in
 * sodium_malloc'ed memory and are wiped by session_free.
 */
#ifndef CUSTODY_SESSION_H
#define CUSTODY_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "role.h"

struct store;
struct rights;
struct rights_user;
struct keyring;
struct store_session;

struct session {
	int64_t user_id;
	char name[65];
	enum role role;              /* from the verified roster */
	uint8_t store_id[16];
	uint8_t box_pk[32];
	uint8_t *box_sk;             /* locked */
	uint8_t sign_pk[32];
	uint8_t *sign_sk;            /* locked; NULL once forgotten */
	uint32_t authority_epoch;    /* the newest the login verified */
	uint8_t authority_pk[32];
	uint8_t *authority_sk;       /* locked; admins in commands only */
	struct keyring *kr;          /* the data keys this user holds */
	/* the session proper (session_start) */
	int64_t id;                  /* sessions row; 0: none (read-only store) */
	uint8_t pk[32];
	uint8_t *sk;                 /* locked */
	uint8_t *detail_key;         /* locked */
	uint32_t detail_version;
	uint32_t uid;                /* the Unix user it serves (daemon) */
	int ended;                   /* revoked or expired: refuse requests */
};

/* A session with its secret buffers allocated (zero). NULL on ENOMEM. */
struct session *session_new(void);
void session_free(struct session *ss);
/* Wipe the identity and authority keys (a long-lived daemon needs only
 * the session key from here on). */
void session_forget_identity(struct session *ss);
/* End the session: wipe every secret it holds (data keys, session key,
 * detail key, identity) and refuse its requests from here on (ended). */
void session_end(struct session *ss);
/*
 * After the roster moved: a session lives under the role and keys it
 * started with. If its user was removed, changed role or keys, or lost
 * the grant of the active version while their role holds data (revoked),
 * or a grant of theirs fails its commitment, the session ends
 * (session_end) and -EACCES is returned. Otherwise its data keys follow
 * the roster (retired and destroyed versions drop out, new ones come in)
 * and 0 is returned.
 */
int session_follow(struct session *ss, struct store *s, const struct rights *r);

/*
 * Make the session key, have the user's identity endorse it, seal a fresh
 * audit detail key to the active version's audit key (from the verified
 * roster r), and insert the sessions row (inside the caller's transaction).
 * kind: "mount", "ctl", "login". On a read-only store nothing is written
 * and ss->id stays 0 (such a session cannot sign commits).
 */
int session_start(struct session *ss, struct store *s, const struct rights *r,
                  const char *kind, int64_t pid);
/* sig = Ed25519 by the session key over (domain || msg). */
void session_sign(const struct session *ss, const char domain[16],
                  const uint8_t *msg, size_t len, uint8_t sig[64]);
/* Verify the same with the public key of a session row. 0 or -EBADMSG. */
int session_verify_sig(const uint8_t pk[32], const char domain[16],
                       const uint8_t *msg, size_t len, const uint8_t sig[64]);
/*
 * The commitment to a session's audit detail key that its endorsement
 * covers (sessions.detail_hash): BLAKE2b-256 of a domain, the store id,
 * the session id and the key. A reader who opens the sealed key checks it.
 */
void session_detail_hash(const uint8_t store_id[16], int64_t id,
                         const uint8_t key[32], uint8_t out[32]);
/*
 * A sessions row is genuine if its user's identity (the signing key the
 * roster gives that user under the row's roster counter) endorsed it.
 * 0 with *user set, or -EBADMSG.
 */
int session_row_verify(const struct rights *r, const struct store_session *row,
                       const struct rights_user **user);

#endif
