/*
 * state.h - what this Unix user on this host has seen of a store: the
 * local half of freshness.
 *
 * Signatures prove who made a state, not that it is the newest: an old
 * copy of the store file still verifies. So each user keeps, per store id,
 * in $XDG_STATE_HOME/custodyfs/<store id> (else ~/.local/state/custodyfs):
 *   - per store instance, what was last verified of it: the newest commit
 *     (seq and hash: an open must find that commit in the store's chain;
 *     ancestry, not a counter, so audit-only commits appended to an old
 *     copy do not pass), its roster counter (an older roster put back
 *     shows) and the newest authority epoch and key (a fork or a cut
 *     chain shows);
 *   - per store path, the instance last seen there (another copy put in
 *     the original's place shows).
 * All of it is per instance: a copy opened at a path of its own (a cp of
 * the file, or a backup) is measured against nothing the original moved
 * on to, and never makes the original look rolled back; an older file put
 * at a path this user knows is measured against that path's instance.
 *
 * The file is written atomically (a temporary file, fsync, rename) under
 * an advisory lock, merged with what other processes of the same user
 * wrote meanwhile, and never moves backwards, except for an instance this
 * process re-based deliberately (state_rebase: an accepted rollback).
 * Mode 0600 in a 0700 folder. A state file that exists but cannot be read
 * (a symbolic link, a directory, no permission) is an error, never taken
 * for an empty one, and never replaced.
 */
#ifndef CUSTODY_STATE_H
#define CUSTODY_STATE_H

#include <stddef.h>
#include <stdint.h>

struct state;

/* What was last verified of one store instance. */
struct state_seen {
	int64_t seq;          /* the newest commit verified */
	uint8_t hash[32];     /* its hash */
	uint64_t roster;      /* its roster counter */
	uint32_t epoch;       /* the newest authority epoch (0: none known) */
	uint8_t pk[32];       /* and its key */
};

/*
 * Read the state of store_id. 0 with *out (empty if nothing was recorded
 * yet: no file), or -ENOENT when this user has no place for state at all
 * (no XDG_STATE_HOME, no home directory: why says so; callers go on
 * without rollback detection and say that they do), -EBADMSG for a state
 * file that is not one (why names it), or another -errno for one that
 * exists but cannot be read (why names it and the cause).
 */
int state_open(const uint8_t store_id[16], struct state **out, char *why,
               size_t whylen);
void state_free(struct state *st);
const char *state_file(const struct state *st);

/* What was seen of an instance: 0 or -ENOENT. */
int state_seen(const struct state *st, const uint8_t instance[16],
               struct state_seen *out);
/* The instance last seen at path (a real path): 0 or -ENOENT. */
int state_path(const struct state *st, const char *path,
               uint8_t instance[16]);

/* Record (in memory; state_save writes). Each field only moves forwards:
 * a newer commit, a higher roster counter, a newer authority. */
void state_set_seen(struct state *st, const uint8_t instance[16],
                    const struct state_seen *seen);
/* Replace what was seen of an instance, even with older values (an
 * accepted rollback): the next state_save keeps it over the file's. */
void state_rebase(struct state *st, const uint8_t instance[16],
                  const struct state_seen *seen);
void state_set_path(struct state *st, const char *path,
                    const uint8_t instance[16]);
/* Write if anything changed: 0 or -errno. A state file that cannot be
 * read back for the merge (other than missing) is left alone: -errno. */
int state_save(struct state *st);

#endif
