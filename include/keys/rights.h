/*
 * rights.h - who may do what: the authority chain and the signed roster.
 *
 * The store authority is an Ed25519 key pair whose secret half only admins
 * hold (a grant of kind GRANT_AUTHORITY, version = epoch). It changes when
 * an admin is removed, demoted or has their keys reset, and on demand: epoch n's public key is
 * endorsed by epoch n-1 (the authorities table). Every user's sealed
 * secret pins an epoch and its key; a login follows the endorsements from
 * there to the newest epoch and refuses a chain that forks from, or falls
 * short of, what the user (or this host, state.h) has seen.
 *
 * The roster is one record signed by the newest authority: a counter that
 * every change raises, the login policy, every user (removed users stay,
 * so the commits they signed stay verifiable) with their public keys and
 * the periods of their roles, and every master key version with its
 * status, dates, cipher, key commitment and audit key. Nothing else in the
 * store grants a right: a users or keys row that is inserted, edited,
 * deleted or put back from an older copy is simply not what the roster
 * says. An older roster put back wholesale is older than the counter in
 * the newest signed commit and in the local state.
 *
 * struct rights is a roster that has been verified (rights_load) or built
 * by this process (rights_new); changes are made to it in memory and
 * signed whole (rights_sign), never to rows.
 */
#ifndef CUSTODY_RIGHTS_H
#define CUSTODY_RIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "role.h"

#define RIGHTS_ID_BYTES 16
#define RIGHTS_PK_BYTES 32
#define RIGHTS_HASH_BYTES 32
#define RIGHTS_PERIODS_MAX 64   /* role changes kept per user */
#define RIGHTS_USERS_MAX 4096
#define RIGHTS_KEYS_MAX 1024
/* The recovery secret acts as user 0, named "recovery" (a name no user
 * may take): an admin whose box and signing keys are the policy's
 * recovery keys. It holds the authority and every data and audit version
 * like an admin, has no credential (no passphrase opens it) and is not in
 * r->users; rights_user(r, 0) gives it. */
#define RIGHTS_RECOVERY_ID 0
#define RIGHTS_RECOVERY_NAME "recovery"

struct store;

/* Key version status and content cipher. */
enum key_status { KEY_ACTIVE = 0, KEY_DECRYPT_ONLY = 1, KEY_RETIRED = 2,
                  KEY_DESTROYED = 3 };
enum key_cipher {
	KEY_CIPHER_AEAD = 1, /* format 1: XChaCha20-Poly1305 blocks */
	KEY_CIPHER_ETM = 2,  /* XChaCha20 + keyed BLAKE2b (cipher.h) */
};
const char *key_status_name(int status);

/* From roster counter `from` on, the user has `role` and signs with
 * sign_pk (ROLE_REMOVED: no longer a user). */
struct rights_period {
	uint64_t from;
	uint8_t role;
	uint8_t sign_pk[RIGHTS_PK_BYTES];
};

struct rights_user {
	int64_t id;
	char name[65];
	uint8_t box_pk[RIGHTS_PK_BYTES];
	size_t nperiods;
	struct rights_period periods[RIGHTS_PERIODS_MAX];
};

struct rights_key {
	uint32_t version;
	uint8_t status;    /* enum key_status */
	uint8_t cipher;    /* enum key_cipher */
	int64_t created, activated, expires, retired; /* seconds; 0: not */
	uint8_t check[32];     /* commitment: KDF(K, "custodyfs.check") */
	uint8_t audit_pk[RIGHTS_PK_BYTES]; /* seals audit details */
};

struct rights_policy {
	uint64_t kdf_opslimit, kdf_memlimit; /* the Argon2id floor */
	uint32_t max_failures;               /* 0: no lockout */
	uint64_t lockout_s;                  /* first lock; doubles */
	uint32_t block_size;
	uint8_t recovery_box_pk[RIGHTS_PK_BYTES];  /* the recovery secret's */
	uint8_t recovery_sign_pk[RIGHTS_PK_BYTES];
};

#define RIGHTS_VERSION_ANCHORED 2

struct rights {
	uint8_t store_id[RIGHTS_ID_BYTES];
	uint32_t epoch;                       /* authority that signs it */
	uint8_t authority_pk[RIGHTS_PK_BYTES];
	uint64_t counter;
	int64_t time;
	/* RIGHTS_VERSION_ANCHORED (2, every roster signed now): its adoption
	 * is bound to a commit by the authority (ledger.h, the anchor); 1: a
	 * roster of custodyfs 0.2.0, which has none: refused unless legacy_ok
	 * (custodyctl upgrade, which signs it again with its anchor) */
	uint8_t version;
	int legacy_ok;                        /* not signed: the caller's */
	struct rights_policy policy;
	size_t nusers, nkeys;
	struct rights_user *users;            /* by id, ascending */
	struct rights_key *keys;              /* by version, ascending */
	uint8_t hash[RIGHTS_HASH_BYTES];      /* of the signed roster */
	struct rights_user recovery;          /* user 0 (none: nperiods 0) */
	int dirty;                            /* changed since signed */
};

/* ---- the authority chain ---- */
/*
 * Follow the chain from the pinned (epoch, pk) to the newest epoch,
 * verifying every endorsement. Returns 0 with the newest epoch and key,
 * -EBADMSG (the pinned key is not in the chain, or an endorsement fails),
 * -ENOENT (no authority at all).
 */
int rights_chain(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                 uint32_t pin_epoch, const uint8_t pin_pk[RIGHTS_PK_BYTES],
                 uint32_t *epoch /* OUT */, uint8_t pk[RIGHTS_PK_BYTES] /* OUT */);
/*
 * Before any passphrase is hashed: is store_id (the file's meta row, which
 * nothing signs) the id the store's records are signed for? Epoch 1's
 * self-endorsement covers it, and so does the roster body. 0, or -EBADMSG
 * with why naming the mismatch, or -errno from the store. It checks
 * consistency, not authenticity: the user's pin does that (rights_chain).
 */
int rights_store_id_check(struct store *s,
                          const uint8_t store_id[RIGHTS_ID_BYTES],
                          char *why, size_t whylen);
/* Write epoch 1, self-endorsed (init). */
int rights_chain_start(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                       const uint8_t pk[RIGHTS_PK_BYTES],
                       const uint8_t *sk);
/* Append epoch+1 = new_pk, endorsed by the current secret key sk. */
int rights_chain_extend(struct store *s,
                        const uint8_t store_id[RIGHTS_ID_BYTES],
                        uint32_t epoch, const uint8_t *sk,
                        const uint8_t new_pk[RIGHTS_PK_BYTES]);

/* ---- the roster ---- */
/* A new, empty roster for a new store (init): counter 0, not signed. */
int rights_new(const uint8_t store_id[RIGHTS_ID_BYTES], uint32_t epoch,
               const uint8_t authority_pk[RIGHTS_PK_BYTES],
               const struct rights_policy *policy, struct rights **out);
/*
 * Read the roster and verify it under the newest authority (epoch, pk):
 * -ENOENT (none), -EBADMSG (bad signature, signed by another epoch, for
 * another store, or malformed). *out is freed with rights_free.
 */
int rights_load(struct store *s, const uint8_t store_id[RIGHTS_ID_BYTES],
                uint32_t epoch, const uint8_t pk[RIGHTS_PK_BYTES],
                struct rights **out);
/* Parse a roster body (no signature check): the boundary of hostile bytes
 * (fuzzed). 0 or -EBADMSG; *out freed with rights_free. */
int rights_parse(const uint8_t *body, size_t len, struct rights **out);
/* Encode into a malloc'ed body (*body, *len). */
int rights_encode(const struct rights *r, uint8_t **body, size_t *len);
/*
 * Raise the counter, sign with the authority secret sk of r->epoch and
 * write the roster (inside the caller's transaction); r->hash follows.
 */
int rights_sign(struct rights *r, struct store *s, const uint8_t *sk);
void rights_free(struct rights *r);

/* ---- questions (NULL / ROLE_NONE when absent) ---- */
const struct rights_user *rights_user(const struct rights *r, int64_t id);
const struct rights_user *rights_user_named(const struct rights *r,
                                            const char *name);
/* The user's role now, and under roster counter c. */
enum role rights_role(const struct rights_user *u);
enum role rights_role_at(const struct rights_user *u, uint64_t c);
/* The signing key under roster counter c (NULL before the user existed). */
const uint8_t *rights_sign_pk_at(const struct rights_user *u, uint64_t c);
const uint8_t *rights_sign_pk(const struct rights_user *u);
const struct rights_key *rights_key(const struct rights *r, uint32_t version);
/* The active version (0 if none) and the newest version (0 if none). */
uint32_t rights_active(const struct rights *r);
uint32_t rights_newest(const struct rights *r);

/* ---- changes (in memory; rights_sign makes them real) ---- */
/* A new user: id must be unused (and never used before). */
int rights_user_add(struct rights *r, int64_t id, const char *name,
                    enum role role, const uint8_t box_pk[RIGHTS_PK_BYTES],
                    const uint8_t sign_pk[RIGHTS_PK_BYTES]);
/* A new role (ROLE_REMOVED removes) and/or new keys (NULL: unchanged). */
int rights_user_change(struct rights *r, int64_t id, enum role role,
                       const uint8_t *box_pk, const uint8_t *sign_pk);
int rights_key_put(struct rights *r, const struct rights_key *k);

#endif
