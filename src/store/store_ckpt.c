/*
 * store_ckpt.c - fold the WAL into the database file in a background
 * thread, with a connection of its own, while the mount keeps writing.
 *
 * SQLite's autocheckpoint copies the WAL into the database file inside the
 * commit that crosses its threshold, in the committing thread: a streaming
 * writer then waits for every byte to be written a second time. Here the
 * commit only signals (sqlite3_wal_hook) and a PASSIVE checkpoint on the
 * second connection copies what is committed, on the other core, without
 * taking any lock the writer needs.
 *
 * SQLite starts the WAL over only when a transaction begins with every
 * frame already copied, which a writer that never pauses never sees. So
 * when a commit leaves CKPT_SYNC_BYTES in the WAL, the committer waits
 * for the background run (which has kept up, so little is left) and copies
 * the rest itself: the WAL stays within about 256 MiB plus one group
 * transaction, and the pause is a fraction of what autocheckpoint costs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sqlite3.h>

#include "store.h"
#include "store_internal.h"

/* WAL sizes (counted in frames of the store's page size) */
#define CKPT_SOFT_BYTES (64 << 20)  /* wake the thread */
#define CKPT_SYNC_BYTES (256 << 20) /* the committer finishes the job */

struct store_ckpt {
	struct store *s;        /* the mount's (its -shm, store_shm_check) */
	sqlite3 *db;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake, idle;
	int want, stop, busy;
	int soft_frames, sync_frames;
	uint64_t runs;
};

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store_ckpt *k = arg;

	if (store_shm_check(k->s))
		return SQLITE_OK;
	pthread_mutex_lock(&k->lock);
	if (frames >= k->sync_frames) {
		while (k->busy)
			pthread_cond_wait(&k->idle, &k->lock);
		pthread_mutex_unlock(&k->lock);
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
		                          NULL, NULL);
		return SQLITE_OK;
	}
	if (frames >= k->soft_frames) {
		k->want = 1;
		pthread_cond_signal(&k->wake);
	}
	pthread_mutex_unlock(&k->lock);
	return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
	struct store_ckpt *k = arg;

	pthread_mutex_lock(&k->lock);
	for (;;) {
		while (!k->want && !k->stop)
			pthread_cond_wait(&k->wake, &k->lock);
		if (k->stop)
			break;
		k->want = 0;
		if (store_shm_check(k->s))
			continue; /* store_guard.c: copy nothing more */
		k->busy = 1;
		pthread_mutex_unlock(&k->lock);
		/* PASSIVE: copies what is committed, never waits for the writer;
		 * a busy result (another checkpoint running) is simply retried
		 * at the next signal */
		sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
		                          NULL, NULL);
		pthread_mutex_lock(&k->lock);
		k->busy = 0;
		k->runs++;
		pthread_cond_broadcast(&k->idle);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

int store_checkpointer_start(struct store *s, const char *path)
{
	struct store_ckpt *k;
	int64_t page = 0;
	int rc;

	if (s->readonly || s->ckpt)
		return 0;
	if (store_pragma_i64(s, "PRAGMA page_size", &page) || page < 512)
		return -EIO;
	if (!(k = calloc(1, sizeof *k)))
		return -ENOMEM;
	k->s = s;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->wake, NULL);
	pthread_cond_init(&k->idle, NULL);
	k->soft_frames = (int)(CKPT_SOFT_BYTES / page);
	k->sync_frames = (int)(CKPT_SYNC_BYTES / page);
	rc = sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE |
	                     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK && store_harden(k->db))
		rc = SQLITE_ERROR;
	/* FULL: the checkpoint syncs the WAL before and the file after */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(k->db, "PRAGMA synchronous=FULL;"
		                  " PRAGMA cache_size=-256; PRAGMA trusted_schema=OFF",
		                  NULL, NULL, NULL);
	if (rc == SQLITE_OK && pthread_create(&k->thread, NULL, ckpt_main, k))
		rc = SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		store_close_db(k->db);
		pthread_cond_destroy(&k->wake);
		pthread_cond_destroy(&k->idle);
		pthread_mutex_destroy(&k->lock);
		free(k);
		return -EIO;
	}
	s->ckpt = k;
	sqlite3_wal_hook(s->db, wal_hook, k); /* replaces autocheckpoint */
	return 0;
}

void store_checkpointer_stop(struct store *s)
{
	struct store_ckpt *k = s ? s->ckpt : NULL;

	if (!k)
		return;
	sqlite3_wal_autocheckpoint(s->db, STORE_AUTOCHECKPOINT); /* the hook */
	pthread_mutex_lock(&k->lock);
	k->stop = 1;
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	store_close_db(k->db);
	pthread_cond_destroy(&k->wake);
	pthread_cond_destroy(&k->idle);
	pthread_mutex_destroy(&k->lock);
	free(k);
	s->ckpt = NULL;
}
