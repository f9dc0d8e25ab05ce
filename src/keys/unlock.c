/*
 * unlock.c - open a store, log its user in, verify what the store claims
 * against what this user and host have seen, start the session; and the
 * one audited transaction (unlock.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "bytes.h"
#include "cipher.h"
#include "keyadmin.h"
#include "keyring.h"
#include "ledger.h"
#include "mtree.h"
#include "passphrase.h"
#include "rights.h"
#include "session.h"
#include "state.h"
#include "store.h"
#include "unlock.h"
#include "witness.h"

#define CREDS_CACHE (256u << 10)

void unlock_harden(void)
{
	struct rlimit no = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int unlock_writer_lock(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	close(fd);
	return -EBUSY;
}

const char *unlock_user(const struct unlock_opts *o)
{
	struct passwd *pw;
	const char *u;

	if (o->user)
		return o->user;
	if ((pw = getpwuid(getuid())) && pw->pw_name)
		return pw->pw_name;
	u = getenv("USER");
	return u ? u : "root";
}

const char *unlock_open_error(int rc)
{
	switch (rc) {
	case -ENOENT: return "no such file";
	case -ENOTSUP: return "not a custodyfs store (or its header is damaged)";
	case -EPROTO: return "made by a newer custodyfs: upgrade this binary";
	case STORE_E_OLDFORMAT: return "an older format: run 'custodyctl upgrade'";
	case STORE_E_SCHEMA: return "its schema holds objects custodyfs did not"
	                            " create";
	case -EBUSY: return "locked by another process";
	case -EACCES: return "permission denied";
	case -EISDIR: return "is a directory";
	case -EROFS: return "on a read-only file system";
	case -EEXIST: return "file exists";
	default: return strerror(-rc);
	}
}

int unlock_config(const struct unlock_opts *o, struct config *cfg)
{
	char err[512];

	config_defaults(cfg);
	if (config_load(o->config, cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", o->prog, err);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

void unlock_state(const struct unlocked *u, struct ledger_state *out)
{
	*out = u->head.st;
	out->flags = 0;
	out->roster_counter = u->r->counter;
	memcpy(out->roster_hash, u->r->hash, 32);
	audit_trail_head(u->trail, &out->audit_seq, out->audit_hash);
}

/* The roster the head commit vouches for must be the one we loaded. */
static int roster_matches(const struct unlocked *u,
                          const struct ledger_commit *h)
{
	return h->st.roster_counter == u->r->counter &&
	       cipher_memeq(h->st.roster_hash, u->r->hash, 32);
}

/* Reload the roster after others changed it (or our change rolled back):
 * follow the chain from the authority we trust now. */
static int reload_rights(struct unlocked *u, char *why, size_t whylen)
{
	struct rights *r = NULL;
	uint8_t pk[32];
	uint32_t epoch;
	int rc;

	if ((rc = rights_chain(u->s, u->r->store_id, u->ss->authority_epoch,
	                       u->ss->authority_pk, &epoch, pk))) {
		snprintf(why, whylen, "the authority chain no longer contains the"
		         " authority this session verified");
		return rc == -ENOENT ? -EBADMSG : rc; /* none at all */
	}
	if ((rc = rights_load(u->s, u->r->store_id, epoch, pk, &r))) {
		snprintf(why, whylen, "the roster fails its signature");
		return rc == -ENOENT ? -EBADMSG : rc;
	}
	if (r->counter < u->r->counter) {
		rights_free(r);
		snprintf(why, whylen, "the roster went back to an older one");
		return -EBADMSG;
	}
	r->legacy_ok = u->r->legacy_ok;
	rights_free(u->r);
	u->r = r;
	u->ss->authority_epoch = epoch;
	memcpy(u->ss->authority_pk, pk, 32);
	return 0;
}

/* After the roster moved: this session (and a daemon's others) follow
 * it, or end (session_follow): -EACCES when this one ended. */
static int follow_rights(struct unlocked *u)
{
	int rc = session_follow(u->ss, u->s, u->r);

	if (!rc && u->follow_others)
		u->follow_others(u, u->follow_arg);
	return rc;
}

/* The schema again, if SQLite's schema_version moved since it was last
 * checked (someone created a trigger, a view, a table under us). */
static int check_schema(struct unlocked *u, char *why, size_t whylen)
{
	char what[192];
	int rc = store_schema_verify(u->s, what, sizeof what);

	if (rc == STORE_E_SCHEMA) {
		snprintf(why, whylen, "its schema changed while it was open: %s",
		         what);
		return -EBADMSG;
	}
	return rc;
}

/* Every audit row must lie under the head commit: a row beyond it was
 * planted (a transaction's rows and its commit go in together). */
static int check_tail(struct unlocked *u, char *why, size_t whylen)
{
	struct store_audit *a = malloc(sizeof *a);
	int rc;

	if (!a)
		return -ENOMEM;
	rc = store_audit_last(u->s, a);
	if (rc == -ENOENT)
		rc = 0;
	else if (rc == -EIO) {
		snprintf(why, whylen, "the newest audit row is malformed");
		rc = -EBADMSG;
	} else if (!rc && a->seq > u->head.st.audit_seq) {
		snprintf(why, whylen, "audit row %lld lies beyond the newest commit"
		         " (%lld), which ends the trail at row %lld: a row no commit"
		         " covers was put in the file", (long long)a->seq,
		         (long long)u->head.seq, (long long)u->head.st.audit_seq);
		rc = -EBADMSG;
	}
	free(a);
	return rc;
}

/* Catch up with commits others made since u->head (inside a read or write
 * transaction). 1 if something moved, 0 if not, or -errno. */
static int catch_up(struct unlocked *u, char *why, size_t whylen)
{
	struct ledger_commit *h = malloc(sizeof *h);
	int rc;

	if (!h)
		return -ENOMEM;
	if ((rc = check_schema(u, why, whylen)))
		goto out;
	rc = ledger_head(u->s, h);
	if (rc) {
		rc = rc == -ENOENT ? -EBADMSG : rc;
		snprintf(why, whylen, "the commit records are gone");
		goto out;
	}
	if (h->seq == u->head.seq && cipher_memeq(h->hash, u->head.hash, 32)) {
		rc = check_tail(u, why, whylen);
		goto out;
	}
	if (h->st.roster_counter != u->r->counter ||
	    !cipher_memeq(h->st.roster_hash, u->r->hash, 32)) {
		if ((rc = reload_rights(u, why, whylen)))
			goto out;
	}
	if ((rc = ledger_verify(u->s, u->r, u->head.seq, u->head.hash, h, NULL,
	                        NULL, why, whylen)))
		goto out;
	if (!roster_matches(u, h)) {
		snprintf(why, whylen, "the roster is not the one commit %lld names",
		         (long long)h->seq);
		rc = -EBADMSG;
		goto out;
	}
	u->head = *h;
	if ((rc = follow_rights(u)))
		goto out;
	if ((rc = mtree_invalidate(u->creds)))
		goto out;
	if ((rc = check_tail(u, why, whylen)))
		goto out;
	rc = 1;
out:
	free(h);
	return rc;
}

int unlock_begin(struct unlocked *u)
{
	char why[512];
	int rc;

	if (u->readonly)
		return -EROFS;
	if ((rc = store_begin(u->s)))
		return rc;
	rc = catch_up(u, why, sizeof why);
	if (rc < 0) {
		store_rollback(u->s);
		if (rc == -EBADMSG || rc == -ESTALE)
			fprintf(stderr, "%s: store '%s' fails verification: %s\n",
			        u->o->prog, u->path, why);
		return rc;
	}
	audit_trail_begin(u->trail, &u->head);
	u->in_tx = 1;
	u->cred_user = 0;
	u->prooflen = 0;
	return rc;
}

/* Append the commit for the open transaction with state st and remember
 * it as the head; does not COMMIT (unlock_commit does both). */
static int unlock_append(struct unlocked *u, const struct ledger_state *st)
{
	struct session *signers[LEDGER_MAX_SIGNERS];
	struct ledger_commit *c = malloc(sizeof *c);
	size_t n = audit_trail_signers(u->trail, signers, LEDGER_MAX_SIGNERS);
	int rc;

	if (!c)
		return -ENOMEM;
	if (!n) {
		signers[0] = u->ss; /* a commit is always somebody's */
		n = 1;
	}
	rc = ledger_append(u->s, u->r->store_id, &u->head, st, signers, n,
	                   u->proof, u->prooflen, c);
	/* a commit that adopts a roster is anchored by its authority, in the
	 * same transaction (ledger_anchor) */
	if (!rc && (st->roster_counter != u->head.st.roster_counter ||
	            !cipher_memeq(st->roster_hash, u->head.st.roster_hash, 32)))
		rc = ledger_anchor(u->s, u->r, u->ss->authority_sk, c);
	if (!rc)
		u->head = *c;
	u->prooflen = 0;
	free(c);
	return rc;
}

int unlock_commit(struct unlocked *u, const struct ledger_state *st)
{
	struct ledger_commit *before = malloc(sizeof *before);
	int rc;

	if (!before)
		return -ENOMEM;
	*before = u->head;
	/* a COMMIT that fails (the disk is full) leaves the file at the old
	 * head: so must the memory, or the next commit, the local state and
	 * the witness would name one the file never held */
	if (!(rc = unlock_append(u, st)) && (rc = store_commit(u->s)))
		u->head = *before;
	free(before);
	return rc;
}

/* The proof that the commit changes one credential only (ledger.h). */
static int cred_proof(struct unlocked *u, const struct mtree_root *after)
{
	size_t n;
	int rc;

	put_le64(u->proof, (uint64_t)u->cred_user);
	memcpy(u->proof + 8, u->cred_old, 32);
	rc = mtree_proof(u->creds, MTREE_CREDS, 0, after, (uint64_t)u->cred_user,
	                 u->proof + 40, sizeof u->proof - 40, &n);
	if (rc)
		return rc;
	u->prooflen = 40 + n;
	return 0;
}

/* Undo what a rolled-back transaction left in memory. */
static void forget_tx(struct unlocked *u, const struct ledger_commit *before)
{
	mtree_abort(u->creds);
	u->cred_user = 0;
	u->prooflen = 0;
	if (before)
		u->head = *before;
	if (u->r->dirty || u->r->counter != u->head.st.roster_counter) {
		char why[256];
		if (reload_rights(u, why, sizeof why) == 0)
			follow_rights(u);
	}
	u->in_tx = 0;
}

/* A credential leaf is about to change in the open transaction: remember
 * whose and what it was, for the proof a non-admin commit carries. */
static int note_cred(struct unlocked *u, int64_t user_id)
{
	if (u->cred_user == 0) {
		int rc = mtree_leaf(u->creds, MTREE_CREDS, 0, &u->head.st.creds,
		                    (uint64_t)user_id, u->cred_old);
		if (rc)
			return rc;
		u->cred_user = user_id;
	} else if (u->cred_user != user_id)
		u->cred_user = -1; /* several: only an admin may */
	return 0;
}

int unlock_cred_changed_id(struct unlocked *u, int64_t user_id)
{
	static const uint8_t zero[32];
	struct store_cred c;
	uint8_t leaf[32];
	int rc = store_cred_get_id(u->s, user_id, &c);

	if (rc == -ENOENT)
		memcpy(leaf, zero, sizeof leaf);
	else if (rc)
		return rc;
	else
		auth_cred_leaf(&c, leaf);
	if ((rc = note_cred(u, user_id)))
		return rc;
	return mtree_put(u->creds, MTREE_CREDS, 0, &u->head.st.creds,
	                 (uint64_t)user_id, leaf);
}

int unlock_cred_changed(struct unlocked *u)
{
	return unlock_cred_changed_id(u, u->ss->user_id);
}

void unlock_abort(struct unlocked *u)
{
	store_rollback(u->s);
	forget_tx(u, NULL);
}

int unlock_finish_fs(struct unlocked *u, const char *op, const char *target,
                     int rc, const struct ledger_state *fs)
{
	struct ledger_commit *before = malloc(sizeof *before);
	struct ledger_state st;
	int err;

	if (!before) {
		store_rollback(u->s);
		u->in_tx = 0;
		return -ENOMEM;
	}
	*before = u->head;
	if (rc) {
		store_rollback(u->s);
		forget_tx(u, before);
		free(before);
		unlock_record(u, op, target, rc);
		return rc;
	}
	err = op ? audit_command(u->trail, u->ss, op, target, 0) : 0;
	if (!err) {
		unlock_state(u, &st);
		if (fs) {
			st.inodes = fs->inodes;
			st.dentries = fs->dentries;
			st.next_ino = fs->next_ino;
			memcpy(st.instance, fs->instance, 16);
			st.flags = fs->flags;
		}
		if (u->fork_pending) {
			/* a copy becomes a store instance of its own */
			cipher_random(st.instance, sizeof st.instance);
			st.flags |= LEDGER_FORK;
		}
		if (!err && mtree_dirty(u->creds, MTREE_CREDS, 0)) {
			err = mtree_fold(u->creds, MTREE_CREDS, 0, &st.creds);
			if (!err && u->cred_user > 0)
				err = cred_proof(u, &st.creds);
		}
	}
	if (!err)
		err = unlock_commit(u, &st);
	if (err) {
		store_rollback(u->s);
		forget_tx(u, before);
		free(before);
		return err;
	}
	u->in_tx = 0;
	u->fork_pending = 0;
	free(before);
	if (u->commit_hook) {
		u->commit_hook(u->commit_arg); /* durable, then witnessed */
		return 0;
	}
	unlock_committed(u);
	unlock_save_state(u);
	return 0;
}

int unlock_finish(struct unlocked *u, const char *op, const char *target,
                  int rc)
{
	return unlock_finish_fs(u, op, target, rc, NULL);
}

int unlock_record(struct unlocked *u, const char *op, const char *target,
                  int rc)
{
	int err;

	if (u->readonly || !u->ss->id)
		return 0; /* nowhere to write: said once at open */
	if ((err = unlock_begin(u)) < 0)
		return err;
	if ((err = audit_command(u->trail, u->ss, op, target, rc))) {
		store_rollback(u->s);
		forget_tx(u, NULL);
		return err;
	}
	return unlock_finish(u, NULL, NULL, 0) ? -EIO : 0;
}

int unlock_catch_up(struct unlocked *u)
{
	char why[512];
	int rc = catch_up(u, why, sizeof why);

	if (rc == -EBADMSG || rc == -ESTALE)
		fprintf(stderr, "%s: store '%s' fails verification: %s\n",
		        u->o->prog, u->path, why);
	return rc;
}

int unlock_refresh(struct unlocked *u, int *changed)
{
	int rc;

	*changed = 0;
	if ((rc = store_changed(u->s)) <= 0)
		return rc;
	if ((rc = store_read_begin(u->s)))
		return rc == -EBUSY ? 0 : rc;
	rc = unlock_catch_up(u);
	store_read_end(u->s);
	if (rc > 0) {
		*changed = 1;
		unlock_save_state(u);
		rc = 0;
	}
	return rc;
}

void unlock_committed(struct unlocked *u)
{
	witness_commit(&u->cfg, &u->head);
}

void unlock_witness(struct unlocked *u, const struct ledger_commit *c)
{
	witness_commit(&u->cfg, c);
}

/* What this process verified of the store: its head, roster, authority. */
static void seen_of(const struct unlocked *u, struct state_seen *seen)
{
	memset(seen, 0, sizeof *seen);
	seen->seq = u->head.seq;
	memcpy(seen->hash, u->head.hash, 32);
	seen->roster = u->r->counter;
	seen->epoch = u->r->epoch;
	memcpy(seen->pk, u->r->authority_pk, 32);
}

void unlock_save_state(struct unlocked *u)
{
	struct state_seen seen;
	char why[512];

	/* after the store's -shm was cut or replaced under this process
	 * (store_guard.c), what it read may come from an index that is not
	 * the file's: nothing it saw is saved as what this host saw */
	if (!u->state || u->older_copy || store_shm_cut())
		return;
	/* never forwards past a commit this host saw and the store lost:
	 * it stays, for the next open (and a mount's next tick) to refuse */
	if (unlock_check_seen(u, why, sizeof why))
		return;
	seen_of(u, &seen);
	if (u->rebase)
		state_rebase(u->state, u->head.st.instance, &seen);
	else
		state_set_seen(u->state, u->head.st.instance, &seen);
	state_set_path(u->state, u->path, u->head.st.instance);
	if (state_save(u->state) == 0)
		u->rebase = 0;
}

int unlock_check_seen(struct unlocked *u, char *why, size_t whylen)
{
	struct state *fresh = NULL;
	struct state_seen seen;
	struct ledger_commit *c;
	int64_t first;
	char w[256];
	int rc;

	if (!u->state || u->older_copy || u->readonly || u->rebase ||
	    u->fork_pending || u->rolled_back)
		return 0; /* no memory to compare, or one this process replaces */
	if (state_open(u->r->store_id, &fresh, w, sizeof w))
		return 0; /* said at open */
	rc = state_seen(fresh, u->head.st.instance, &seen);
	state_free(fresh);
	if (rc || store_ledger_first(u->s, &first) || seen.seq < first)
		return 0; /* not seen, or pruned since (the base vouches) */
	if (!(c = malloc(sizeof *c)))
		return 0;
	rc = ledger_read(u->s, seen.seq, c);
	if (rc == 0 && cipher_memeq(c->hash, seen.hash, 32))
		rc = 0; /* in the chain (or just ahead of us: caught up next) */
	else if (rc == 0 || rc == -ENOENT || rc == -EBADMSG) {
		snprintf(why, whylen, "this host saw its commit %lld (roster %llu),"
		         " which the store no longer holds: rows were put back"
		         " under the running mount", (long long)seen.seq,
		         (unsigned long long)seen.roster);
		rc = -ESTALE;
	} else
		rc = 0; /* a store error: not a verdict */
	free(c);
	return rc;
}

/* ---- opening ---- */

/* The credential a login opened must be the one the head commit covers. */
static int check_cred(struct unlocked *u, const struct session *ss,
                      const struct store_cred *cur, char *why, size_t whylen)
{
	uint8_t leaf[32], have[32];
	int rc;

	auth_cred_leaf(cur, leaf);
	rc = mtree_leaf(u->creds, MTREE_CREDS, 0, &u->head.st.creds,
	                (uint64_t)ss->user_id, have);
	if (!rc && !cipher_memeq(leaf, have, 32)) {
		snprintf(why, whylen, "the credential of user '%s' is not the one"
		         " the signed state holds (edited, or put back from an"
		         " older copy)", ss->name);
		rc = -EBADMSG;
	} else if (rc == -EIO) {
		snprintf(why, whylen, "the credentials tree fails verification");
		rc = -EBADMSG;
	}
	return rc;
}

/* Write a login's credential update under the open transaction. */
static int put_cred(struct unlocked *u, const struct store_cred *upd)
{
	uint8_t leaf[32];
	int rc;

	auth_cred_leaf(upd, leaf);
	if ((rc = note_cred(u, upd->user_id)))
		return rc;
	rc = store_cred_put(u->s, upd);
	if (!rc)
		rc = mtree_put(u->creds, MTREE_CREDS, 0, &u->head.st.creds,
		               (uint64_t)upd->user_id, leaf);
	return rc;
}

static int open_error(const struct unlock_opts *o, int rc, const char *why)
{
	if (why && why[0])
		fprintf(stderr, "%s: cannot open store '%s': %s\n", o->prog, o->store,
		        why);
	else
		fprintf(stderr, "%s: cannot open store '%s': %s\n", o->prog, o->store,
		        unlock_open_error(rc));
	return rc == STORE_E_SCHEMA ? EXIT_DAMAGE
	       : rc == -EBUSY ? EXIT_BUSY /* held open elsewhere */
	                      : EXIT_RUNTIME;
}

/*
 * Verify the chain from (seq, hash) (0: from the start) to the signed
 * head: u->head. A record after it that does not verify is beyond the
 * head: tail receives what it is (else it stays empty).
 */
static int verify_from(struct unlocked *u, int64_t seq, const uint8_t *hash,
                       char *why, size_t whylen, char *tail, size_t taillen)
{
	char w[512];
	int64_t beyond = 0;
	int rc = ledger_verify_head(u->s, u->r, seq, hash, &u->head, &beyond, w,
	                            sizeof w);

	tail[0] = 0;
	if (rc)
		snprintf(why, whylen, "%s", w);
	else if (beyond)
		snprintf(tail, taillen, "%s", w);
	return rc;
}

/*
 * Freshness: the newest commit this user saw of this instance must be in
 * the chain (verified from there), and the path must still hold the
 * instance seen there. A file at a path this user never opened, of an
 * instance seen at another path, is a copy (a cp or rsync of the store):
 * it may be older, and it must not move what the original is measured
 * against, so its first commit makes it an instance of its own (a fork,
 * like a backup's), or, opened read-only, it records nothing.
 *
 * With accept_rollback, a file older than the one seen at this path is
 * accepted (u->rolled_back, accepted says what it was): of the same
 * instance, the local state re-bases on it (u->rebase); another copy put
 * here that is an instance seen elsewhere forks, like any copy.
 *
 * Fills u->head with the signed head; tail as verify_from.
 */
static int check_fresh(struct unlocked *u, char *why, size_t whylen,
                       char *accepted, size_t acclen, char *tail,
                       size_t taillen)
{
	struct ledger_commit *cand = malloc(sizeof *cand);
	struct state_seen seen;
	uint8_t here[16], inst[16];
	int known_here, have_inst = 0, verified = 0, rc;

	accepted[0] = tail[0] = 0;
	if (!cand)
		return -ENOMEM;
	known_here = u->state && state_path(u->state, u->path, here) == 0;
	/* the instance the file claims: its newest record's (not verified
	 * yet; a newest record that does not even parse lies beyond the
	 * head, and the path's instance stands in for it) */
	rc = ledger_head(u->s, cand);
	if (rc == -ENOENT) {
		snprintf(why, whylen, "it has no commit records");
		rc = -EBADMSG;
		goto out;
	}
	if (rc && rc != -EBADMSG)
		goto out;
	if (!rc) {
		memcpy(inst, cand->st.instance, 16);
		have_inst = 1;
	} else if (known_here) {
		memcpy(inst, here, 16);
		have_inst = 1;
	}
	if (!have_inst) {
		if ((rc = verify_from(u, 0, NULL, why, whylen, tail, taillen)))
			goto out;
		memcpy(inst, u->head.st.instance, 16);
		verified = 1;
	}
	if (known_here && memcmp(here, inst, 16)) {
		if (!u->o->accept_rollback) {
			snprintf(why, whylen, "it is not the copy this user last opened"
			         " at this path (another copy of the store was put in"
			         " its place)");
			rc = -ESTALE;
			goto out;
		}
		u->rolled_back = 1;
		snprintf(accepted, acclen, "another copy of the store was put in"
		         " place of the one last opened at this path");
		known_here = 0; /* measured as a file of its own */
	}
	if (!u->state || state_seen(u->state, inst, &seen)) {
		/* never seen: verify the whole chain */
		rc = verified ? 0 : verify_from(u, 0, NULL, why, whylen, tail,
		                                taillen);
		goto out;
	}
	if (!known_here) {
		/* seen, but at another path: this file is a copy */
		u->fork_pending = 1;
		rc = verified ? 0 : verify_from(u, 0, NULL, why, whylen, tail,
		                                taillen);
		goto out;
	}
	rc = verify_from(u, seen.seq, seen.hash, why, whylen, tail, taillen);
	if (rc == -ESTALE && u->o->accept_rollback) {
		/* the same instance, older (or changed since): it becomes what
		 * this user measures the instance from */
		snprintf(accepted, acclen, "%s", why);
		u->rolled_back = 1;
		u->rebase = 1;
		rc = verify_from(u, 0, NULL, why, whylen, tail, taillen);
	}
	if (!rc && memcmp(u->head.st.instance, here, 16)) {
		/* a fork appended after the commit seen here: not this path's
		 * instance any more */
		if (!u->o->accept_rollback) {
			snprintf(why, whylen, "it is not the copy this user last opened"
			         " at this path (its newest commits make it another"
			         " store instance)");
			rc = -ESTALE;
			goto out;
		}
		u->rolled_back = 1;
		u->rebase = 0;
		snprintf(accepted, acclen, "its newest commits make it another store"
		         " instance than the one last opened at this path");
		if (state_seen(u->state, u->head.st.instance, &seen) == 0)
			u->fork_pending = 1;
	}
out:
	free(cand);
	return rc;
}

/* What this user saw of the instance expected at this path, for the
 * login's authority and roster checks: NULL at a path never opened, for
 * a file that claims another instance (check_fresh names that), and when
 * a rollback may be accepted. */
static const struct state_seen *seen_here(struct unlocked *u,
                                          struct state_seen *out)
{
	struct ledger_commit *cand;
	uint8_t here[16];
	const struct state_seen *res = NULL;

	if (!u->state || u->o->accept_rollback ||
	    state_path(u->state, u->path, here) || state_seen(u->state, here, out))
		return NULL;
	if (!(cand = malloc(sizeof *cand)))
		return out;
	if (ledger_head(u->s, cand) != 0 || !memcmp(cand->st.instance, here, 16))
		res = out;
	free(cand);
	return res;
}

/* SQLite found the file malformed under its own structures: damage. */
static void malformed(const struct unlock_opts *o)
{
	fprintf(stderr, "%s: the store file '%s' is damaged (SQLite finds it"
	        " malformed): put back a backup (custodyctl backup makes"
	        " them)\n", o->prog, o->store);
}

static void warn_accepted(struct unlocked *u, const char *accepted)
{
	if (u->older_copy)
		fprintf(stderr, "%s: warning: accepted an older copy of store '%s'"
		        " (%s), for this read-only session only\n", u->o->prog,
		        u->o->store, accepted);
	else
		fprintf(stderr, "%s: warning: accepted an older copy of store '%s'"
		        " (%s): this user measures the store from its commit %lld"
		        " from now on\n", u->o->prog, u->o->store, accepted,
		        (long long)u->head.seq);
}

int unlock_store(const struct unlock_opts *o, int store_flags,
                 struct unlocked *u)
{
	struct passphrase pw = { 0 };
	struct store_cred cur, upd;
	struct state_seen seen;
	char err[512], why[512], prompt[128], accepted[512], tail[512];
	const char *user = unlock_user(o);
	uint8_t store_id[16];
	size_t n;
	int rc, st, has_upd = 0;

	memset(u, 0, sizeof *u);
	u->o = o;
	why[0] = 0;
	if ((st = unlock_config(o, &u->cfg)))
		return st;
	if (!o->store) {
		fprintf(stderr, "%s: no store given (-s STORE or $CUSTODY_STORE)\n",
		        o->prog);
		return EXIT_USAGE;
	}
	/* read-only commands open read-write when they can, so that a failed
	 * login is always counted and the command recorded */
	rc = store_open(o->store, store_flags & ~STORE_READONLY,
	                (int)u->cfg.busy_timeout_ms, &u->s, why, sizeof why);
	if ((rc == -EACCES || rc == -EROFS) && (store_flags & STORE_READONLY)) {
		rc = store_open(o->store, store_flags, (int)u->cfg.busy_timeout_ms,
		                &u->s, why, sizeof why);
		u->readonly = 1;
	}
	if (rc)
		return open_error(o, rc, why);
	if (o->wait_notice)
		store_set_wait_notice(u->s, 1000, o->wait_notice, o->wait_arg);
	if (!realpath(o->store, u->path))
		snprintf(u->path, sizeof u->path, "%s", o->store);
	if (store_meta_get(u->s, "store_id", store_id, sizeof store_id, &n) == 0 &&
	    n == sizeof store_id) {
		rc = state_open(store_id, &u->state, why, sizeof why);
		if (rc == -EBADMSG) {
			fprintf(stderr, "%s: %s: remove it to start over (rollback"
			        " detection then restarts from this store)\n", o->prog,
			        why);
			st = EXIT_RUNTIME;
			goto fail;
		}
		if (rc && rc != -ENOENT) {
			/* there, but unreadable: never go on as if nothing had been
			 * seen (and never replace it) */
			fprintf(stderr, "%s: %s: rollback detection needs it (make it"
			        " a readable regular file, or remove it to start"
			        " over)\n", o->prog, why[0] ? why : strerror(-rc));
			st = EXIT_RUNTIME;
			goto fail;
		}
		if (rc && !o->quiet_state)
			fprintf(stderr, "%s: warning: no rollback detection: %s\n",
			        o->prog, why);
	}
	why[0] = 0;
	if (o->recovery) {
		/* the recovery secret logs in as user 0, "recovery" */
		rc = auth_recover(u->s, o->recovery, seen_here(u, &seen), &u->ss,
		                  &u->r, why, sizeof why);
		if (rc == -EACCES) {
			fprintf(stderr, "%s: authentication failed: %s\n", o->prog,
			        why);
			st = EXIT_AUTH;
			goto fail;
		}
	} else {
		snprintf(prompt, sizeof prompt, "Passphrase for %s: ", user);
		if (passphrase_get(o->passfile, o->extpass, prompt, 0, &pw, err,
		                   sizeof err)) {
			fprintf(stderr, "%s: %s\n", o->prog, err);
			st = EXIT_USAGE;
			goto fail;
		}
		rc = auth_login(u->s, &u->cfg, user, &pw, seen_here(u, &seen), NULL,
		                &u->ss, &u->r, &cur, &upd, &has_upd, why,
		                sizeof why);
		passphrase_free(&pw);
	}
	if (!rc && o->legacy_roster)
		u->r->legacy_ok = 1;
	switch (rc) {
	case 0:
		break;
	case -EACCES:
		fprintf(stderr, "%s: authentication failed for user '%s' (unknown"
		        " user, wrong passphrase, or an account locked after too"
		        " many failures)\n", o->prog, user);
		st = EXIT_AUTH;
		goto fail;
	case -EBADMSG:
		fprintf(stderr, "%s: store '%s' fails verification: %s\n", o->prog,
		        o->store, why[0] ? why : "tampered rights");
		st = EXIT_DAMAGE;
		goto fail;
	case -ESTALE:
		fprintf(stderr, "%s: store '%s' is older than one seen before: %s;"
		        " open it with -o accept_rollback (custodyfs) or"
		        " --accept-rollback (custodyctl) to accept it\n", o->prog,
		        o->store, why);
		st = EXIT_DAMAGE;
		goto fail;
	default:
		fprintf(stderr, "%s: cannot log in to '%s': %s\n", o->prog, o->store,
		        rc == -EBUSY ? "store is locked by another process"
		                     : strerror(-rc));
		st = rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
		goto fail;
	}
	if ((rc = audit_trail_new(u->s, &u->trail)) ||
	    (rc = mtree_new(u->s, CREDS_CACHE, &u->creds))) {
		fprintf(stderr, "%s: %s\n", o->prog, strerror(-rc));
		st = EXIT_RUNTIME;
		goto fail;
	}
	/* the signed state: the newest commit that verifies, reached from
	 * what we saw */
	why[0] = 0;
	{
		/* one read snapshot, so the head and the trail's last row are
		 * of the same moment while a mount goes on committing */
		int snap = store_read_begin(u->s) == 0;
		rc = check_fresh(u, why, sizeof why, accepted, sizeof accepted, tail,
		                 sizeof tail);
		if (!rc && !tail[0]) {
			rc = check_tail(u, tail, sizeof tail);
			if (rc == -EBADMSG)
				rc = 0; /* tail names it */
			else
				tail[0] = 0;
		}
		if (snap)
			store_read_end(u->s);
	}
	if (!rc && tail[0]) {
		/* records beyond the signed head are no part of the store: a
		 * command that only reads runs on the signed state (to say what
		 * is wrong: audit verify names the row) and records nothing;
		 * anything else is refused */
		if (!o->inspect) {
			fprintf(stderr, "%s: store '%s' fails verification: %s\n",
			        o->prog, o->store, tail);
			st = EXIT_DAMAGE;
			goto fail;
		}
		fprintf(stderr, "%s: store '%s' fails verification: %s (read as"
		        " of commit %lld; nothing is recorded)\n", o->prog, o->store,
		        tail, (long long)u->head.seq);
		u->damaged = 1;
		u->readonly = 1;
		u->older_copy = 1; /* nothing of it goes into the local state */
		u->fork_pending = 0;
	}
	if (rc == -ESTALE) {
		fprintf(stderr, "%s: store '%s' is older than one seen before: %s;"
		        " open it with -o accept_rollback (custodyfs) or"
		        " --accept-rollback (custodyctl) to accept it\n", o->prog,
		        o->store, why);
		st = EXIT_DAMAGE;
		goto fail;
	}
	if (!rc && !roster_matches(u, &u->head)) {
		snprintf(why, sizeof why, "the roster is not the one the newest"
		         " commit names (a roster put back from an older copy)");
		rc = -EBADMSG;
	}
	if (!rc && !o->recovery)
		rc = check_cred(u, u->ss, &cur, why, sizeof why);
	if (rc) {
		fprintf(stderr, "%s: store '%s' fails verification: %s\n", o->prog,
		        o->store, why[0] ? why : strerror(-rc));
		st = rc == -EBADMSG ? EXIT_DAMAGE : EXIT_RUNTIME;
		goto fail;
	}
	if (u->fork_pending && u->readonly)
		u->older_copy = 1; /* a copy read as it is: nothing recorded */
	if (u->readonly) {
		if (u->damaged)
			return EXIT_OK; /* said above */
		if (!o->quiet_state)
			fprintf(stderr, "%s: note: '%s' is read-only for this user: this"
			        " session is not recorded in its audit trail\n", o->prog,
			        o->store);
		if (u->rolled_back) {
			unlock_save_state(u); /* accepted: it sticks (unless a
			                       * copy that cannot fork) */
			warn_accepted(u, accepted);
		}
		return EXIT_OK;
	}
	/* the session: its row, a credential update, waiting failures and
	 * the login, under one commit */
	if ((rc = unlock_begin(u)) < 0) {
		if (store_damaged(u->s))
			malformed(o);
		else if (rc != -EBADMSG && rc != -ESTALE)
			fprintf(stderr, "%s: cannot start a session on '%s': %s\n",
			        o->prog, o->store, rc == -EBUSY ? "store is busy"
			                                        : strerror(-rc));
		st = rc == -EBADMSG || rc == -ESTALE || store_damaged(u->s)
		     ? EXIT_DAMAGE
		     : rc == -EACCES ? EXIT_AUTH : rc == -EBUSY ? EXIT_BUSY
		     : EXIT_RUNTIME;
		goto fail;
	}
	rc = session_start(u->ss, u->s, u->r, o->kind ? o->kind : "ctl",
	                   getpid());
	if (!rc && has_upd)
		rc = put_cred(u, &upd);
	if (!rc)
		rc = audit_adopt_auth_events(u->trail, u->ss);
	if (!rc && u->rolled_back)
		rc = audit_command(u->trail, u->ss, "rollback accepted", u->path, 0);
	if (!rc && u->fork_pending)
		rc = audit_command(u->trail, u->ss, "copy", "this file is a copy of"
		                   " the store: a store instance of its own from here",
		                   0);
	if (rc) {
		store_rollback(u->s);
		forget_tx(u, NULL);
		if (store_damaged(u->s)) {
			malformed(o);
			st = EXIT_DAMAGE;
			goto fail;
		}
		fprintf(stderr, "%s: cannot start a session on '%s': %s\n", o->prog,
		        o->store, rc == -EBUSY ? "store is locked by another process"
		                               : strerror(-rc));
		st = rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
		goto fail;
	}
	u->sid_high = u->ss->id;
	if ((rc = unlock_finish(u, "login", o->kind ? o->kind : "ctl", 0))) {
		fprintf(stderr, "%s: cannot record the login in '%s': %s\n",
		        o->prog, o->store, rc == -EBUSY ? "store is busy"
		                                        : strerror(-rc));
		st = rc == -EBUSY ? EXIT_BUSY : EXIT_RUNTIME;
		goto fail;
	}
	/* the commit saved the local state: re-based on the accepted copy */
	if (u->rolled_back)
		warn_accepted(u, accepted);
	return EXIT_OK;
fail:
	unlock_free(u);
	return st;
}

int unlock_create(const struct unlock_opts *o,
                  const struct rights_policy *policy,
                  const struct passphrase *pw, uint8_t *recovery,
                  unlock_format_fn format, struct unlocked *u)
{
	struct store_cred cred;
	struct ledger_state st;
	uint8_t leaf[32];
	char why[256];
	int rc, status = EXIT_RUNTIME;

	memset(u, 0, sizeof *u);
	u->o = o;
	if ((status = unlock_config(o, &u->cfg)))
		return status;
	status = EXIT_RUNTIME;
	rc = store_open(o->store, store_create_flags(policy->block_size),
	                (int)u->cfg.busy_timeout_ms,
	                &u->s, why, sizeof why);
	if (rc) {
		fprintf(stderr, "%s: cannot create store '%s': %s\n", o->prog,
		        o->store, unlock_open_error(rc));
		return EXIT_RUNTIME;
	}
	if (!realpath(o->store, u->path))
		snprintf(u->path, sizeof u->path, "%s", o->store);
	if ((rc = store_begin(u->s)))
		goto fail;
	u->in_tx = 1;
	if ((rc = keyadmin_init(u->s, policy, unlock_user(o), pw, recovery,
	                        u->cfg.key_max_age_s,
	                        &u->ss, &u->r)) ||
	    (rc = audit_trail_new(u->s, &u->trail)) ||
	    (rc = mtree_new(u->s, CREDS_CACHE, &u->creds)))
		goto fail;
	audit_trail_begin(u->trail, NULL);
	memset(&u->head, 0, sizeof u->head);
	if ((rc = session_start(u->ss, u->s, u->r, "ctl", getpid())) ||
	    (rc = store_cred_get_id(u->s, u->ss->user_id, &cred)))
		goto fail;
	auth_cred_leaf(&cred, leaf);
	if ((rc = mtree_put(u->creds, MTREE_CREDS, 0, &u->head.st.creds,
	                    (uint64_t)cred.user_id, leaf)))
		goto fail;
	memset(&st, 0, sizeof st);
	if ((rc = format(u, &st)) ||
	    (rc = audit_command(u->trail, u->ss, "init", u->ss->name, 0)))
		goto fail;
	st.roster_counter = u->r->counter;
	memcpy(st.roster_hash, u->r->hash, 32);
	audit_trail_head(u->trail, &st.audit_seq, st.audit_hash);
	cipher_random(st.instance, sizeof st.instance);
	if ((rc = mtree_fold(u->creds, MTREE_CREDS, 0, &st.creds)) ||
	    (rc = ledger_append(u->s, u->r->store_id, NULL, &st, &u->ss, 1,
	                        NULL, 0, &u->head)) ||
	    (rc = ledger_anchor(u->s, u->r, u->ss->authority_sk, &u->head)) ||
	    (rc = store_commit(u->s)))
		goto fail;
	u->in_tx = 0;
	if (state_open(u->r->store_id, &u->state, why, sizeof why) == 0)
		unlock_save_state(u);
	return EXIT_OK;
fail:
	fprintf(stderr, "%s: cannot create store '%s': %s\n", o->prog, o->store,
	        rc == -ENOMEM ? "out of memory (Argon2id memlimit?)"
	                      : strerror(-rc));
	unlock_free(u);
	unlink(o->store);
	{
		char side[PATH_MAX + 8];
		snprintf(side, sizeof side, "%s-wal", o->store);
		unlink(side);
		snprintf(side, sizeof side, "%s-shm", o->store);
		unlink(side);
	}
	return status;
}

int unlock_fork(struct unlocked *u, const char *path, char *why,
                size_t whylen)
{
	struct unlocked copy;
	struct ledger_state st;
	char what[PATH_MAX + 64];
	int rc;

	memset(&copy, 0, sizeof copy);
	copy.o = u->o;
	copy.cfg = u->cfg;
	copy.ss = u->ss;
	if ((rc = store_open(path, 0, (int)u->cfg.busy_timeout_ms, &copy.s, why,
	                     whylen)))
		return rc;
	if (!realpath(path, copy.path))
		snprintf(copy.path, sizeof copy.path, "%s", path);
	if ((rc = rights_load(copy.s, u->r->store_id, u->r->epoch,
	                      u->r->authority_pk, &copy.r)) ||
	    (rc = ledger_head(copy.s, &copy.head)) ||
	    (rc = audit_trail_new(copy.s, &copy.trail)) ||
	    (rc = mtree_new(copy.s, CREDS_CACHE, &copy.creds))) {
		snprintf(why, whylen, "the copy does not verify: %s",
		         strerror(-rc));
		goto out;
	}
	if (!roster_matches(&copy, &copy.head)) {
		snprintf(why, whylen, "the copy's roster is not its head's");
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = store_begin(copy.s)))
		goto out;
	copy.in_tx = 1;
	audit_trail_begin(copy.trail, &copy.head);
	snprintf(what, sizeof what, "copy of %s at commit %lld", u->path,
	         (long long)copy.head.seq);
	if ((rc = audit_command(copy.trail, u->ss, "backup", what, 0)))
		goto out;
	unlock_state(&copy, &st);
	cipher_random(st.instance, sizeof st.instance);
	st.flags = LEDGER_FORK;
	if ((rc = unlock_commit(&copy, &st)))
		goto out;
	copy.in_tx = 0;
	if (u->state) {
		struct state_seen seen;
		seen_of(&copy, &seen);
		state_set_seen(u->state, copy.head.st.instance, &seen);
		state_set_path(u->state, copy.path, copy.head.st.instance);
		state_save(u->state);
	}
	rc = 0;
out:
	if (copy.in_tx)
		store_rollback(copy.s);
	copy.ss = NULL; /* borrowed */
	mtree_free(copy.creds);
	audit_trail_free(copy.trail);
	rights_free(copy.r);
	store_close(copy.s);
	if (rc && why && !why[0])
		snprintf(why, whylen, "%s", strerror(-rc));
	return rc;
}

/* ---- another user's session in a running daemon ---- */

struct unlock_other {
	struct store *s;            /* the login's own connection */
	struct session *ss;
	struct rights *r;
	struct store_cred cur, upd;
	int has_upd;
};

void unlock_other_free(struct unlock_other *p)
{
	if (!p)
		return;
	session_free(p->ss);
	rights_free(p->r);
	store_close(p->s);
	cipher_wipe(p, sizeof *p);
	free(p);
}

int unlock_other_auth(const struct unlocked *u, const char *name,
                      const struct passphrase *pw, const struct auth_who *who,
                      struct unlock_other **out, char *why, size_t whylen)
{
	struct unlock_other *p = calloc(1, sizeof *p);
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	rc = store_open(u->path, 0, (int)u->cfg.busy_timeout_ms, &p->s, why,
	                whylen);
	if (!rc)
		rc = auth_login(p->s, &u->cfg, name, pw, NULL, who, &p->ss, &p->r,
		                &p->cur, &p->upd, &p->has_upd, why, whylen);
	if (rc) {
		unlock_other_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

const struct session *unlock_other_user(const struct unlock_other *p)
{
	return p->ss;
}

int unlock_other_start(struct unlocked *u, struct unlock_other *p,
                       const struct audit_who *w, struct session **out,
                       char *why, size_t whylen)
{
	int rc;

	*out = NULL;
	if ((rc = unlock_begin(u)) < 0)
		return rc;
	/* the login verified the roster from the user's own pin; it must be
	 * the one this daemon verified, which is fresh */
	if (p->r->counter != u->r->counter ||
	    !cipher_memeq(p->r->hash, u->r->hash, 32)) {
		unlock_abort(u);
		snprintf(why, whylen, "the store's rights changed during the"
		         " login");
		return -EAGAIN;
	}
	rc = check_cred(u, p->ss, &p->cur, why, whylen);
	if (!rc)
		rc = keyring_load(p->ss->kr, u->s, u->r, p->ss->user_id,
		                  p->ss->box_pk, p->ss->box_sk);
	if (!rc) {
		p->ss->uid = w->uid;
		rc = session_start(p->ss, u->s, u->r, "login", w->pid);
		/* ids are max + 1 of the sessions table: one that comes again
		 * (its newest rows deleted) would give this login an ended
		 * session's open files */
		if (!rc && p->ss->id <= u->sid_high) {
			snprintf(why, whylen, "the store's sessions table lost rows"
			         " (session id %lld was handed out before)",
			         (long long)p->ss->id);
			rc = -EBADMSG;
		}
	}
	if (!rc && p->has_upd)
		rc = put_cred(u, &p->upd);
	if (!rc)
		rc = audit_adopt_auth_events(u->trail, p->ss);
	if (!rc)
		rc = audit_append(u->trail, p->ss, w, 0, "login", 0, "session", 0, 0,
		                  0);
	if (rc) {
		unlock_abort(u);
		return rc;
	}
	if ((rc = unlock_finish(u, NULL, NULL, 0)))
		return rc;
	u->sid_high = p->ss->id;
	session_forget_identity(p->ss);
	*out = p->ss;
	p->ss = NULL;
	return 0;
}

int unlock_record_for(struct unlocked *u, struct session *ss,
                      const char *about, const struct audit_who *w,
                      const char *op, const char *what, int rc)
{
	struct session *by = ss && ss->id > 0 && !ss->ended ? ss : u->ss;
	int err;

	if (u->readonly || !u->ss->id)
		return 0;
	if ((err = unlock_begin(u)) < 0)
		return err;
	err = about ? audit_append_about(u->trail, by, about, w, 0, op, what, rc)
	            : audit_append(u->trail, by, w, 0, op, 0, what, 0, 0, rc);
	if (err) {
		unlock_abort(u);
		return err;
	}
	return unlock_finish(u, NULL, NULL, 0) ? -EIO : 0;
}

void unlock_free(struct unlocked *u)
{
	if (u->s && u->in_tx)
		store_rollback(u->s);
	mtree_free(u->creds);
	audit_trail_free(u->trail);
	session_free(u->ss);
	rights_free(u->r);
	state_free(u->state);
	store_close(u->s);
	memset(u, 0, sizeof *u);
}
