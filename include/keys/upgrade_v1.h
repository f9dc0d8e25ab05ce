/*
 * upgrade_v1.h - reading a format-1 store (custodyfs 0.1) the way
 * custodyfs 0.1 trusted it, for `custodyctl upgrade` only.
 *
 * Everything of format 1 that the upgrade needs is here and nowhere else:
 * no format-2 path calls into it. In format 1 the store authority (an
 * Ed25519 key whose public half every user's sealed secret pins) signs
 * each users row (id, name, role, box key) and each master_keys row
 * (version, status, dates, commitment, audit key); a user's passphrase
 * (Argon2id, per-user salt and cost) opens their X25519 secret and the
 * pinned authority key; the trail is a MAC chain under a key every user
 * holds ("auditmac" grant), with signed marks for its head and start; and
 * each inode row carries a MAC under KDF(K_version, "custodyfs.inode").
 *
 * upgrade_v1_login is the format-1 login of one user, without writing
 * anything (no failure counter moves): the passphrase, the sealed secret,
 * the pinned authority against the one the store names, and the
 * signatures of every users and master_keys row. upgrade_v1_verify (an
 * admin's login only) opens the admin's grants (each data key checked
 * against its commitment, each audit key against its public key, the
 * authority grant against the pin), verifies the whole MAC chain of the
 * trail from its start mark to its head mark, and every inode's MAC. Only
 * then are its users, versions and keys handed to the format-2 builder.
 *
 * Errors: -EACCES (unknown user, wrong passphrase, locked: one answer),
 * -EBADMSG (the store fails verification: why names what), -ENOKEY (the
 * admin lacks a key that data still needs: why names it), -errno.
 */
#ifndef CUSTODY_UPGRADE_V1_H
#define CUSTODY_UPGRADE_V1_H

#include <stddef.h>
#include <stdint.h>
#include "role.h"

struct store;
struct config;
struct passphrase;
struct keyring;
struct store_v1_audit;

/* Progress of a long step: done of total units. */
typedef void (*upgrade_progress_fn)(void *arg, const char *what,
                                    uint64_t done, uint64_t total);

struct upgrade_v1_user {
	int64_t id;
	char name[65];
	enum role role;
	int64_t created;
};

struct upgrade_v1_key {
	uint32_t version;
	int status;                 /* enum key_status (rights.h) */
	int64_t created, activated, expires, retired;
	uint8_t check[32];          /* KDF(K, "custodyfs.check") */
	uint8_t audit_pk[32];
	int held;                   /* its data key is in kr */
	int audit_held;             /* its audit secret is in audit_sk */
};

struct upgrade_v1 {
	struct store *s;            /* borrowed: the format-1 store */
	uint8_t store_id[16];
	uint8_t authority_pk[32];   /* the authority the user's secret pins */
	uint32_t block_size;
	struct upgrade_v1_user me;  /* who logged in */
	uint8_t box_pk[32];
	uint8_t *box_sk;            /* locked */
	size_t nusers, nkeys;
	struct upgrade_v1_user *users;      /* by id */
	struct upgrade_v1_key *keys;        /* by version */
	/* filled by upgrade_v1_verify */
	struct keyring *kr;         /* live versions held, cipher 1 */
	uint8_t *audit_sk;          /* locked: 32 bytes per key, by index */
	uint8_t *mac_key;           /* locked: the trail's MAC key */
	int64_t audit_first;        /* the trail's first kept row (0: none) */
	int64_t audit_last;
	uint64_t audit_rows;
	uint64_t inodes;
};

/* Log name in with pw as custodyfs 0.1 would (writing nothing). cfg gives
 * the cost of the equal-time attempt for an unknown name. */
int upgrade_v1_login(struct store *s, const struct config *cfg,
                     const char *name, const struct passphrase *pw,
                     struct upgrade_v1 **out, char *why, size_t whylen);
/* The rest of the verification, for an admin (-EPERM otherwise). */
int upgrade_v1_verify(struct upgrade_v1 *v, upgrade_progress_fn progress,
                      void *arg, char *why, size_t whylen);
void upgrade_v1_free(struct upgrade_v1 *v);

/* The user and version lists. */
const struct upgrade_v1_user *upgrade_v1_user(const struct upgrade_v1 *v,
                                              int64_t id);
const struct upgrade_v1_key *upgrade_v1_key(const struct upgrade_v1 *v,
                                            uint32_t version);
/* The audit secret of version `version` (NULL if the admin lacks it). */
const uint8_t *upgrade_v1_audit_sk(const struct upgrade_v1 *v,
                                   uint32_t version);

/*
 * Every verified row of the trail in order, with its process name and
 * path opened (readable 1) when the admin holds the audit secret its
 * session's detail key was sealed to; otherwise comm and path are empty
 * and readable 0. fn non-zero stops (returned).
 */
int upgrade_v1_audit_each(struct upgrade_v1 *v,
                          int (*fn)(void *arg, const struct store_v1_audit *a,
                                    const char *comm, const char *path,
                                    int readable), void *arg);

#endif
