/*
 * store_v1.h - the rows of a format-1 store (custodyfs 0.1) that exist in
 * format 1 only, read for `custodyctl upgrade` and nothing else: users,
 * master_keys, key_grants (kind as text), audit_keys, the format-1 inodes
 * (with key version and MAC), the format-1 trail (MAC chain), the pending
 * auth_events and key_events, and the counts a migration shows progress
 * against. Tables whose definition is the same in both formats (meta,
 * dentries, blocks, xattrs, purge) are read with the ordinary store.h
 * functions on the same connection.
 *
 * Every function refuses a store that is not open as format 1 (-EINVAL:
 * store_open with STORE_ANYFORMAT), writes nothing, and checks every
 * length against its buffer: a malformed row gives -EIO. Nothing here is
 * trusted: upgrade_v1.c (keys layer) verifies every row as custodyfs 0.1
 * did before anything of it is used.
 */
#ifndef CUSTODY_STORE_V1_H
#define CUSTODY_STORE_V1_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_V1_SECRET_MAX 256
#define STORE_V1_GRANT_MAX 256

struct store_v1_user {
	int64_t id;
	char name[65];
	char role[16];
	uint64_t opslimit, memlimit;
	uint8_t salt[16];
	uint8_t box_pk[32];
	uint8_t secret[STORE_V1_SECRET_MAX];
	size_t secretlen;
	uint8_t sig[64];
	int64_t failed, locked_until, created, last_login;
};
int store_v1_user_get(struct store *s, const char *name,
                      struct store_v1_user *out);
/* In id order; fn non-zero stops (returned). */
int store_v1_user_each(struct store *s,
                       int (*fn)(void *arg, const struct store_v1_user *u),
                       void *arg);

struct store_v1_key {
	uint32_t version;
	char status[16];        /* active | decrypt-only | retired | destroyed */
	int64_t created, activated, expires, retired;
	uint8_t check[32];
	uint8_t audit_pk[32];
	uint8_t sig[64];
};
/* In version order. */
int store_v1_key_each(struct store *s,
                      int (*fn)(void *arg, const struct store_v1_key *k),
                      void *arg);

/* key_grants(user, version, kind): the sealed bytes, -ENOENT if none. */
int store_v1_grant_get(struct store *s, int64_t user_id, uint32_t version,
                       const char *kind, uint8_t *sealed, size_t cap,
                       size_t *len);
/* audit_keys(id): a session's detail key sealed to a version's audit key. */
int store_v1_audit_key_get(struct store *s, int64_t id, uint32_t *version,
                           uint8_t *sealed, size_t cap, size_t *len);

struct store_v1_inode {
	uint64_t ino;
	uint8_t file_id[16];
	uint32_t key_version;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, nblocks, rdev;
	int64_t atime, mtime, ctime;
	uint64_t generation;
	uint8_t mac[32];
};
/* In inode order. */
int store_v1_inode_each(struct store *s,
                        int (*fn)(void *arg, const struct store_v1_inode *in),
                        void *arg);

#define STORE_V1_DETAIL_MAX 8192
struct store_v1_audit {
	int64_t seq;
	int64_t time;
	char user[65];
	uint32_t uid, gid, pid;
	char op[24];
	uint64_t ino, offset, length;
	int64_t result;
	int64_t session;        /* the audit_keys id sealing detail */
	uint8_t detail[STORE_V1_DETAIL_MAX];
	size_t detaillen;
	uint8_t mac[32];
};
/* Rows with seq > after, in order. A malformed row stops with -EIO. */
int store_v1_audit_each(struct store *s, int64_t after,
                        int (*fn)(void *arg, const struct store_v1_audit *a),
                        void *arg);

/* Failed logins not yet moved into the trail. */
int store_v1_auth_event_each(struct store *s,
                             int (*fn)(void *arg, int64_t time,
                                       const char *user, const char *event,
                                       int64_t pid), void *arg);
/* The rotation log. */
int store_v1_key_event_each(struct store *s,
                            int (*fn)(void *arg, int64_t time,
                                      const char *user, const char *event,
                                      int64_t from, int64_t to,
                                      const char *detail), void *arg);
/* Inode numbers queued for purging. */
int store_v1_purge_each(struct store *s,
                        int (*fn)(void *arg, uint64_t ino), void *arg);

struct store_v1_counts {
	uint64_t users, keys, inodes, dentries, blocks, xattrs, audit;
	uint64_t max_ino;       /* the highest inode number ever handed out */
};
int store_v1_counts(struct store *s, struct store_v1_counts *out);
/* Entries of one directory. */
int store_v1_dentry_count(struct store *s, uint64_t parent, uint64_t *n);
/* Objects (blocks, names, xattrs, inode MACs, detail keys) under a
 * version. */
int store_v1_key_usage(struct store *s, uint32_t version, uint64_t *n);

#endif
