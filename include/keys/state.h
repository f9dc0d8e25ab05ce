/*
 * state.h - what this Unix user on this host has seen of a store: the
 * local half of freshness.
 *
 * Signatures prove who made a state, not that it is the newest: an old
 * copy of the store file still verifies. So each user keeps, per store id,
 * in $XDG_STATE_HOME/custodyfs/<store id> (else ~/.local/state/custodyfs):
 *   - the newest authority epoch and key seen (a fork or a cut chain shows),
 *   - the newest roster counter seen (an older roster put back shows),
 *   - per store instance, the newest commit verified (seq and hash): an
 *     open must find that commit in the store's chain (ancestry, not a
 *     counter: audit-only commits appended to an old copy do not pass),
 *   - per store path, the instance last seen there (another copy put in
 *     the original's place shows).
 * A copy made by `custodyctl backup` is a new instance, so checking or
 * mounting a backup never makes the original look rolled back.
 *
 * The file is written atomically (a temporary file, fsync, rename) under
 * an advisory lock, merged with what other processes of the same user
 * wrote meanwhile, and never moves backwards. Mode 0600 in a 0700 folder.
 * A state file that exists but cannot be read (a symbolic link, a
 * directory, no permission) is an error, never taken for an empty one,
 * and never replaced.
 */
#ifndef CUSTODY_STATE_H
#define CUSTODY_STATE_H

#include <stddef.h>
#include <stdint.h>

struct state;

/*
 * Read the state of store_id. 0 with *out (empty if nothing was recorded
 * yet), or -ENOENT when this user has no place for state at all (no
 * XDG_STATE_HOME, no home directory: why says so; callers go on without
 * rollback detection and say that they do), -EBADMSG for a state file
 * that is not one (why names it), or another -errno for one that exists
 * but cannot be read (why names it and the cause).
 */
int state_open(const uint8_t store_id[16], struct state **out, char *why,
               size_t whylen);
void state_free(struct state *st);
const char *state_file(const struct state *st);

int state_authority(const struct state *st, uint32_t *epoch, uint8_t pk[32]);
uint64_t state_roster(const struct state *st);
/* The newest commit seen of an instance: 0 or -ENOENT. */
int state_commit(const struct state *st, const uint8_t instance[16],
                 int64_t *seq, uint8_t hash[32]);
/* The instance last seen at path (a real path): 0 or -ENOENT. */
int state_path(const struct state *st, const char *path,
               uint8_t instance[16]);

/* Record (in memory; state_save writes). Older values are ignored. */
void state_set_authority(struct state *st, uint32_t epoch,
                         const uint8_t pk[32]);
void state_set_roster(struct state *st, uint64_t counter);
void state_set_commit(struct state *st, const uint8_t instance[16],
                      int64_t seq, const uint8_t hash[32]);
void state_set_path(struct state *st, const char *path,
                    const uint8_t instance[16]);
/* Write if anything changed: 0 or -errno. A state file that cannot be
 * read back for the merge (other than missing) is left alone: -errno. */
int state_save(struct state *st);

#endif
