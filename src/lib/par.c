/*
 * par.c - fork-join over two cores (par.h).
 *
 * A loop lives in its caller's storage (par_for: its stack): its items
 * are claimed one at a time from its counter by the caller and, once it
 * wakes, the helper, so whichever core is free does more. The caller owns
 * the helper from posting the loop until par_end returns (busy): no other
 * loop is posted
 * meanwhile, and a helper that has not taken the loop by the time the
 * caller has claimed the last item is called off (the caller never
 * waits for a wake-up that would bring nothing).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "par.h"

struct par {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	pthread_t th;
	int started, failed, quit;  /* mu, as all below */
	int busy;                   /* a caller's loop owns the helper */
	struct par_loop *job;           /* posted, not yet taken by the helper */
	int running;                /* the helper works on the owner's loop */
};

static void run(struct par_loop *l)
{
	size_t i;

	while ((i = atomic_fetch_add_explicit(&l->next, 1,
	                                      memory_order_relaxed)) < l->n)
		l->fn(l->arg, i);
}

static void *helper(void *arg)
{
	struct par *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct par_loop *l;
		while (!p->job && !p->quit)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		l = p->job;
		p->job = NULL;
		p->running = 1;
		pthread_mutex_unlock(&p->mu);
		run(l);
		pthread_mutex_lock(&p->mu);
		p->running = 0;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct par *par_new(void)
{
	struct par *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	return p;
}

void par_free(struct par *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->quit = 1;
		pthread_cond_signal(&p->go);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->th, NULL);
	}
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Post l to p's helper unless it is busy: 1 if posted (p owned by l). */
static int post(struct par *p, struct par_loop *l)
{
	int shared = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->started && !p->failed) {
		if (pthread_create(&p->th, NULL, helper, p) == 0)
			p->started = 1;
		else
			p->failed = 1; /* inline from now on */
	}
	if (p->started && !p->busy) {
		p->busy = 1;
		p->job = l;
		pthread_cond_signal(&p->go);
		shared = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return shared;
}

void par_begin(struct par *p, struct par_loop *l, size_t n,
               void (*fn)(void *arg, size_t i), void *arg)
{
	l->fn = fn;
	l->arg = arg;
	l->n = n;
	atomic_init(&l->next, 0);
	l->p = p && n > 0 && post(p, l) ? p : NULL;
}

void par_end(struct par_loop *l)
{
	struct par *p = l->p;

	run(l);
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->job == l)
		p->job = NULL; /* never taken: called off */
	while (p->running)
		pthread_cond_wait(&p->done, &p->mu);
	p->busy = 0;
	pthread_mutex_unlock(&p->mu);
	l->p = NULL;
}

void par_for(struct par *p, size_t n, void (*fn)(void *arg, size_t i),
             void *arg)
{
	struct par_loop l;

	par_begin(n >= PAR_MIN ? p : NULL, &l, n, fn, arg);
	par_end(&l);
}
