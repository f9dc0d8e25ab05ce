/*
 * sessions.c - the store sessions of one mount's users and the login
 * socket (sessions.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "fs.h"
#include "handover.h"
#include "keyring.h"
#include "rights.h"
#include "session.h"
#include "sessions.h"
#include "unlock.h"

struct member {
	struct session *ss;
	uint32_t uid;
	int64_t started_ms, last_ms;
	int64_t idle_ms, maxage_ms;   /* the session's own limits; 0: none */
	const char *why;              /* how it ended, once it has */
	int recorded;                 /* its end is in the trail */
};

#define WORKERS 16
#define PER_UID 2

struct sessions {
	struct unlocked *u;
	struct fs *fs;
	uint32_t mount_uid;
	/* under the filesystem lock */
	struct member *m;
	size_t n, cap;
	int ended;                    /* since the last tick */
	int stale;                    /* the kernel's caches must go (atomic) */
	/* the login thread, and a worker per connection: no client can hold
	 * up another's login (at most WORKERS at once, PER_UID per uid) */
	int lfd, wake[2];
	int serving;
	pthread_t th;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	int workers;
	struct { uint32_t uid; int n; } busy[WORKERS];
	pthread_mutex_t auth_mu;      /* one Argon2id at a time: bounded memory */
	char path[128];
	char point[4096];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the set (filesystem lock held) ---- */

static void follow(struct unlocked *u, void *arg)
{
	struct sessions *set = arg;

	for (size_t i = 0; i < set->n; i++) {
		struct member *m = &set->m[i];
		if (m->why || m->ss->ended)
			continue;
		if (session_follow(m->ss, u->s, u->r)) {
			m->why = "rights changed";
			set->ended++;
			__atomic_store_n(&set->stale, 1, __ATOMIC_RELEASE);
		}
	}
}

int sessions_new(struct unlocked *u, uint32_t mount_uid,
                 struct sessions **out)
{
	struct sessions *set = calloc(1, sizeof *set);

	*out = NULL;
	if (!set)
		return -ENOMEM;
	set->u = u;
	set->mount_uid = mount_uid;
	set->lfd = set->wake[0] = set->wake[1] = -1;
	pthread_mutex_init(&set->wmu, NULL);
	pthread_cond_init(&set->wcv, NULL);
	pthread_mutex_init(&set->auth_mu, NULL);
	u->follow_others = follow;
	u->follow_arg = set;
	*out = set;
	return 0;
}

static struct member *live(struct sessions *set, uint32_t uid)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->m[i].uid == uid && !set->m[i].why && !set->m[i].ss->ended)
			return &set->m[i];
	return NULL;
}

struct session *sessions_of(void *arg, uint32_t uid, int64_t sid)
{
	struct sessions *set = arg;
	struct member *m = NULL;

	if (sid) {
		if (sid == set->u->ss->id)
			return set->u->ss;
		for (size_t i = 0; i < set->n && !m; i++)
			if (set->m[i].ss->id == sid)
				m = &set->m[i];
		if (m && (m->why || m->ss->ended))
			return NULL;
	} else {
		if (uid == set->mount_uid)
			return set->u->ss;
		m = live(set, uid);
	}
	if (!m)
		return NULL;
	m->last_ms = now_ms();
	return m->ss;
}

/* End m: its last row (signed by itself while it still can), then its
 * keys are wiped. */
static void end_member(struct sessions *set, struct member *m,
                       const char *why)
{
	struct audit_who w = { m->uid, 0, 0 };

	if (!m->ss->ended) {
		unlock_record_for(set->u, m->ss, NULL, &w, "logout", why, 0);
		m->recorded = 1;
		session_end(m->ss);
	}
	if (!m->why)
		m->why = why;
	set->ended++;
	__atomic_store_n(&set->stale, 1, __ATOMIC_RELEASE);
}

int sessions_stale(void *arg)
{
	struct sessions *set = arg;
	return set ? __atomic_exchange_n(&set->stale, 0, __ATOMIC_ACQ_REL) : 0;
}

static void expire_keys(struct sessions *set, struct session *ss)
{
	uint32_t a = keyring_active(ss->kr);
	const struct rights_key *k = a ? rights_key(set->u->r, a) : NULL;

	if (k && k->expires && k->expires <= (int64_t)time(NULL))
		keyring_expire(ss->kr);
}

int sessions_tick(struct sessions *set)
{
	int64_t t = now_ms();
	size_t k = 0;
	int ended;

	for (size_t i = 0; i < set->n; i++) {
		struct member *m = &set->m[i];
		if (!m->why && m->idle_ms && t - m->last_ms >= m->idle_ms)
			end_member(set, m, "idle");
		else if (!m->why && m->maxage_ms && t - m->started_ms >= m->maxage_ms)
			end_member(set, m, "maxage");
		else if (!m->why)
			expire_keys(set, m->ss);
	}
	/* free the ended ones: the group is committed (fs_exclusive), so no
	 * row of theirs waits to be signed */
	for (size_t i = 0; i < set->n; i++) {
		struct member *m = &set->m[i];
		if (!m->why && !m->ss->ended) {
			set->m[k++] = *m;
			continue;
		}
		if (!m->recorded) {
			struct audit_who w = { m->uid, 0, 0 };
			unlock_record_for(set->u, NULL, m->ss->name, &w, "session-end",
			                  m->why ? m->why : "ended", 0);
		}
		session_free(m->ss);
	}
	set->n = k;
	ended = set->ended;
	set->ended = 0;
	return ended;
}

int sessions_end_all(void *arg)
{
	struct sessions *set = arg;

	for (size_t i = 0; i < set->n; i++)
		if (!set->m[i].why)
			end_member(set, &set->m[i], "unmount");
	sessions_tick(set);
	return 0;
}

/* ---- the login thread ---- */

struct login {
	struct sessions *set;
	struct unlock_other *p;
	struct handover_req *rq;
	struct handover_peer *peer;
	char msg[HANDOVER_MSG_MAX];
	int status;
};

/* Under the lock: start the session and put it in the set. */
static int login_locked(void *arg)
{
	struct login *l = arg;
	struct sessions *set = l->set;
	struct audit_who w = { l->peer->uid, l->peer->gid,
	                       (uint32_t)l->peer->pid };
	struct member *old, *m;
	struct session *ss;
	char why[256] = "";
	int rc;

	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		struct member *nm = realloc(set->m, cap * sizeof *nm);
		if (!nm) {
			l->status = EXIT_RUNTIME;
			snprintf(l->msg, sizeof l->msg, "out of memory");
			return 0;
		}
		set->m = nm;
		set->cap = cap;
	}
	rc = unlock_other_start(set->u, l->p, &w, &ss, why, sizeof why);
	if (rc) {
		l->status = rc == -EAGAIN ? EXIT_RUNTIME
		            : rc == -EBADMSG ? EXIT_DAMAGE : EXIT_RUNTIME;
		snprintf(l->msg, sizeof l->msg, "cannot start the session: %s",
		         why[0] ? why : strerror(-rc));
		return 0;
	}
	/* one session per uid: a new login replaces the old one */
	if ((old = live(set, l->peer->uid)))
		end_member(set, old, "replaced by a new login");
	m = &set->m[set->n++];
	memset(m, 0, sizeof *m);
	m->ss = ss;
	m->uid = l->peer->uid;
	m->started_ms = m->last_ms = now_ms();
	m->idle_ms = (int64_t)l->rq->idle_s * 1000;
	m->maxage_ms = (int64_t)l->rq->maxage_s * 1000;
	l->status = EXIT_OK;
	snprintf(l->msg, sizeof l->msg, "uid %u works as '%s' (%s) on %.300s",
	         (unsigned)m->uid, ss->name, role_name(ss->role), set->point);
	return 0;
}

/* Under the lock: a refused login, into the trail now. */
static int refused_locked(void *arg)
{
	struct login *l = arg;
	struct audit_who w = { l->peer->uid, l->peer->gid,
	                       (uint32_t)l->peer->pid };

	/* failed passphrases wait in auth_events: adopt them now */
	if (l->status == EXIT_AUTH) {
		if (unlock_begin(l->set->u) >= 0) {
			int rc = audit_adopt_auth_events(l->set->u->trail,
			                                 l->set->u->ss);
			unlock_finish(l->set->u, NULL, NULL, rc);
		}
	} else
		unlock_record_for(l->set->u, NULL, l->rq->name, &w, "login-denied",
		                  l->msg, -EPERM);
	return 0;
}

static int logout_locked(void *arg)
{
	struct login *l = arg;
	struct member *m = live(l->set, l->peer->uid);

	if (!m) {
		l->status = EXIT_RUNTIME;
		snprintf(l->msg, sizeof l->msg, "uid %u has no session on %.300s",
		         (unsigned)l->peer->uid, l->set->point);
		return 0;
	}
	snprintf(l->msg, sizeof l->msg, "uid %u: session of '%s' ended",
	         (unsigned)m->uid, m->ss->name);
	end_member(l->set, m, "logout");
	l->status = EXIT_OK;
	return 0;
}

static int status_locked(void *arg)
{
	struct login *l = arg;
	struct sessions *set = l->set;
	struct member *m = live(set, l->peer->uid);
	char lim[96] = "";

	if (l->peer->uid == set->mount_uid) {
		snprintf(l->msg, sizeof l->msg, "uid %u mounted %.300s: served as '%s'"
		         " (%s), the mount's own session", (unsigned)l->peer->uid,
		         set->point, set->u->ss->name, role_name(set->u->ss->role));
		l->status = EXIT_OK;
		return 0;
	}
	if (!m) {
		snprintf(l->msg, sizeof l->msg, "uid %u has no session on %.300s: its"
		         " requests are refused", (unsigned)l->peer->uid, set->point);
		l->status = EXIT_AUTH;
		return 0;
	}
	if (m->idle_ms || m->maxage_ms)
		snprintf(lim, sizeof lim, "; ends after %llds idle or %llds in all",
		         (long long)(m->idle_ms / 1000), (long long)(m->maxage_ms / 1000));
	snprintf(l->msg, sizeof l->msg, "uid %u works as '%s' (%s) on %.300s, for"
	         " %llds%s", (unsigned)m->uid, m->ss->name, role_name(m->ss->role),
	         set->point, (long long)((now_ms() - m->started_ms) / 1000), lim);
	l->status = EXIT_OK;
	return 0;
}

static void do_login(struct login *l)
{
	struct sessions *set = l->set;
	struct auth_who aw = { l->peer->uid, l->peer->pid };
	const struct session *who;
	char why[256] = "";
	int rc;

	if (l->peer->uid == set->mount_uid) {
		l->status = EXIT_USAGE;
		snprintf(l->msg, sizeof l->msg, "uid %u mounted %.300s: it is served as"
		         " '%s' already", (unsigned)l->peer->uid, set->point,
		         set->u->ss->name);
		return;
	}
	if (!auth_name_valid(l->rq->name)) {
		l->status = EXIT_USAGE;
		snprintf(l->msg, sizeof l->msg, "'%s' is not a valid user name",
		         l->rq->name);
		return;
	}
	pthread_mutex_lock(&set->auth_mu);
	rc = unlock_other_auth(set->u, l->rq->name, &l->rq->pw, &aw, &l->p, why,
	                       sizeof why);
	pthread_mutex_unlock(&set->auth_mu);
	if (rc) {
		l->status = rc == -EACCES ? EXIT_AUTH
		            : rc == -EBADMSG || rc == -ESTALE ? EXIT_DAMAGE
		            : EXIT_RUNTIME;
		if (rc == -EACCES)
			snprintf(l->msg, sizeof l->msg, "authentication failed for user"
			         " '%s' (unknown user, wrong passphrase, or an account"
			         " locked after too many failures)", l->rq->name);
		else
			snprintf(l->msg, sizeof l->msg, "cannot log in: %s",
			         why[0] ? why : strerror(-rc));
		fs_exclusive(set->fs, refused_locked, l);
		if (rc == -EACCES)
			sleep(1); /* a guess costs the guesser a second more */
		return;
	}
	who = unlock_other_user(l->p);
	if (!role_holds_data(who->role)) {
		l->status = EXIT_DENIED;
		snprintf(l->msg, sizeof l->msg, "user '%s' is an %s: auditors read"
		         " the trail with custodyctl and have nothing on a mount",
		         who->name, role_name(who->role));
		fs_exclusive(set->fs, refused_locked, l);
		return;
	}
	fs_exclusive(set->fs, login_locked, l);
}

static void serve_one(struct sessions *set, int fd)
{
	struct timeval tv = { 5, 0 };
	struct handover_req rq;
	struct handover_peer peer;
	struct login l;
	char why[256] = "";
	int rc;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	memset(&l, 0, sizeof l);
	l.set = set;
	l.rq = &rq;
	l.peer = &peer;
	if ((rc = handover_read(fd, &rq, &peer, why, sizeof why))) {
		handover_answer(fd, rc == -EPERM ? EXIT_DENIED : EXIT_USAGE,
		                why[0] ? why : "a malformed request");
		return;
	}
	switch (rq.op) {
	case HANDOVER_LOGIN:
		do_login(&l);
		break;
	case HANDOVER_LOGOUT:
		fs_exclusive(set->fs, logout_locked, &l);
		break;
	default:
		fs_exclusive(set->fs, status_locked, &l);
		break;
	}
	handover_req_free(&rq);
	unlock_other_free(l.p);
	handover_answer(fd, l.status, l.msg);
}

struct worker {
	struct sessions *set;
	int fd;
	uint32_t uid;
};

/* A slot for uid's connection: 0, or -EBUSY (too many at once). */
static int take_slot(struct sessions *set, uint32_t uid)
{
	int free_i = -1, rc = 0;

	pthread_mutex_lock(&set->wmu);
	if (set->workers >= WORKERS)
		rc = -EBUSY;
	for (int i = 0; !rc && i < WORKERS; i++) {
		if (set->busy[i].n && set->busy[i].uid == uid) {
			if (set->busy[i].n >= PER_UID)
				rc = -EBUSY;
			else
				set->busy[i].n++;
			free_i = -2;
			break;
		}
		if (!set->busy[i].n && free_i == -1)
			free_i = i;
	}
	if (!rc && free_i >= 0) {
		set->busy[free_i].uid = uid;
		set->busy[free_i].n = 1;
	}
	if (!rc)
		set->workers++;
	pthread_mutex_unlock(&set->wmu);
	return rc;
}

static void put_slot(struct sessions *set, uint32_t uid)
{
	pthread_mutex_lock(&set->wmu);
	for (int i = 0; i < WORKERS; i++)
		if (set->busy[i].n && set->busy[i].uid == uid) {
			set->busy[i].n--;
			break;
		}
	set->workers--;
	pthread_cond_broadcast(&set->wcv);
	pthread_mutex_unlock(&set->wmu);
}

static void *worker(void *arg)
{
	struct worker *w = arg;

	serve_one(w->set, w->fd);
	close(w->fd);
	put_slot(w->set, w->uid);
	free(w);
	return NULL;
}

static void *login_thread(void *arg)
{
	struct sessions *set = arg;
	struct pollfd p[2] = { { set->lfd, POLLIN, 0 }, { set->wake[0], POLLIN, 0 } };

	for (;;) {
		struct ucred pc;
		socklen_t len = sizeof pc;
		struct worker *w;
		pthread_attr_t at;
		pthread_t th;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(set->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &pc, &len)) {
			close(fd);
			continue;
		}
		if (take_slot(set, pc.uid)) {
			handover_answer(fd, EXIT_BUSY, "too many logins in progress:"
			                " try again");
			close(fd);
			continue;
		}
		w = malloc(sizeof *w);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (!w || (w->set = set, w->fd = fd, w->uid = pc.uid,
		           pthread_create(&th, &at, worker, w))) {
			free(w);
			close(fd);
			put_slot(set, pc.uid);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int sessions_serve(struct sessions *set, struct fs *fs, const char *point,
                   char *why, size_t whylen)
{
	int rc;

	set->fs = fs;
	snprintf(set->point, sizeof set->point, "%s", point);
	handover_path(point, set->path, sizeof set->path);
	if ((rc = handover_listen(set->path, &set->lfd, why, whylen)))
		return rc;
	if (pipe2(set->wake, O_CLOEXEC) ||
	    pthread_create(&set->th, NULL, login_thread, set)) {
		rc = -errno;
		snprintf(why, whylen, "cannot start the login thread: %s",
		         strerror(errno));
		close(set->lfd);
		set->lfd = -1;
		unlink(set->path);
		return rc;
	}
	set->serving = 1;
	return 0;
}

void sessions_stop(struct sessions *set)
{
	if (!set || !set->serving)
		return;
	if (write(set->wake[1], "x", 1) != 1)
		pthread_cancel(set->th);
	pthread_join(set->th, NULL);
	/* workers finish what they started (each bounded by its socket
	 * timeouts and one Argon2id) while the filesystem is still here */
	pthread_mutex_lock(&set->wmu);
	while (set->workers > 0)
		pthread_cond_wait(&set->wcv, &set->wmu);
	pthread_mutex_unlock(&set->wmu);
	close(set->lfd);
	close(set->wake[0]);
	close(set->wake[1]);
	unlink(set->path);
	set->serving = 0;
}

void sessions_free(struct sessions *set)
{
	if (!set)
		return;
	sessions_stop(set);
	for (size_t i = 0; i < set->n; i++)
		session_free(set->m[i].ss);
	if (set->u && set->u->follow_arg == set) {
		set->u->follow_others = NULL;
		set->u->follow_arg = NULL;
	}
	free(set->m);
	pthread_mutex_destroy(&set->wmu);
	pthread_cond_destroy(&set->wcv);
	pthread_mutex_destroy(&set->auth_mu);
	free(set);
}
