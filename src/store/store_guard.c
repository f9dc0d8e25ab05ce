/*
 * store_guard.c - a store's -shm file cut short under us.
 *
 * SQLite maps the WAL index (the store's -shm file) into every process
 * that uses the store, and every store user can write that file: one who
 * truncates it makes the next access to the mapping a SIGBUS, which would
 * kill the mount (and a custodyctl running then) on the spot. So a SIGBUS
 * for an address past the end of a mapped file (BUS_ADRERR; SQLite maps no
 * other file of ours: mmap_size stays 0, see "Tried and not kept") puts a
 * private page of zeros where the lost one was and records the fact; the
 * access then completes, SQLite finds the index damaged, and from here
 * every store_begin and store_commit of this process fails: the mount
 * stops writing and stops (fs_fatal), with one line saying why, and the
 * next opener rebuilds the index from the WAL. Any other SIGBUS is left
 * to the default action.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>

#include "store.h"
#include "store_internal.h"

static atomic_int shm_cut; /* lock-free: safe in a handler, seen by every thread */
static uintptr_t page_mask;
static struct sigaction old_bus;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (si->si_code == BUS_ADRERR && si->si_addr && page_mask) {
		void *page = (void *)((uintptr_t)si->si_addr & page_mask);
		if (mmap(page, ~page_mask + 1, PROT_READ | PROT_WRITE,
		         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == page) {
			atomic_store(&shm_cut, 1);
			errno = saved;
			return; /* the access is made again, on the zeros */
		}
	}
	/* not ours: what the signal would have done without us */
	if (old_bus.sa_flags & SA_SIGINFO && old_bus.sa_sigaction) {
		old_bus.sa_sigaction(sig, si, uc);
		return;
	}
	signal(SIGBUS, SIG_DFL);
	errno = saved; /* returning repeats the access: the default kills */
}

static void guard_install(void)
{
	struct sigaction sa;
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0 || (ps & (ps - 1)))
		return;
	page_mask = ~((uintptr_t)ps - 1);
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
}

void store_guard(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, guard_install);
}

/*
 * The same end for a -shm removed or replaced under us (rm, mv, a stale
 * copy put back): no signal comes, but the next process to open the store
 * builds a new index beside ours, checkpoints and may empty the WAL, and
 * a checkpoint of ours by the old index would then copy holes into the
 * file. So a read-write store checks that its -shm path is still the file
 * it noted at open, before each transaction and each checkpoint; when it
 * is not, the cut flag is set as above.
 */
void store_shm_note(struct store *s, const char *db_path)
{
	struct stat sb;
	size_t n = strlen(db_path);

	if (s->readonly || s->shm_path || !(s->shm_path = malloc(n + 5)))
		return;
	memcpy(s->shm_path, db_path, n);
	memcpy(s->shm_path + n, "-shm", 5);
	if (stat(s->shm_path, &sb) == 0) {
		s->shm_dev = sb.st_dev;
		s->shm_ino = sb.st_ino;
		s->shm_known = 1;
	}
}

int store_shm_check(struct store *s)
{
	struct stat sb;

	if (store_shm_cut())
		return -EIO;
	if (!s->shm_path)
		return 0;
	if (stat(s->shm_path, &sb) != 0) {
		size_t n = strlen(s->shm_path) - 4;
		int gone;

		if (errno != ENOENT || !s->shm_known)
			return 0; /* not ours to judge (EACCES, ...) */
		/* the store itself gone from the path too (its directory
		 * renamed, say): the files moved together, nothing to fear */
		s->shm_path[n] = 0;
		gone = stat(s->shm_path, &sb) != 0 && errno == ENOENT;
		s->shm_path[n] = '-';
		if (gone)
			return 0;
	} else if (!s->shm_known) {
		s->shm_dev = sb.st_dev; /* SQLite made it after our open */
		s->shm_ino = sb.st_ino;
		s->shm_known = 1;
		return 0;
	} else if (sb.st_dev == s->shm_dev && sb.st_ino == s->shm_ino)
		return 0;
	atomic_store(&shm_cut, 1);
	return -EIO;
}

int store_shm_cut(void)
{
	return atomic_load(&shm_cut);
}
