/*
 * par.h - fork-join over two cores: a loop's items split between the
 * caller and one helper thread that sleeps between loops.
 *
 * par_for(p, n, fn, arg) calls fn(arg, i) once for every i < n and
 * returns when all calls have returned: the caller and the helper claim
 * items one at a time, so whichever core is free does more. Calls for different i must not touch
 * the same memory. With p NULL, n < PAR_MIN (waking the helper costs
 * more than it would take of so small a loop), or the helper busy with
 * another caller's loop, every call runs on the caller's thread: never
 * an error, only less parallel.
 *
 * par_begin/par_end split par_for in two, so that the caller can do other
 * work while the helper starts on the items: par_begin posts the loop
 * (any n, as the caller's other work is the reason to share it) and
 * returns at once; par_end claims what is left on the caller's thread and
 * returns when every call has returned. Between the two the caller must
 * not touch what the items touch; a par_for it makes on p meanwhile is
 * allowed (it runs inline while the helper is taken).
 */
#ifndef CUSTODY_PAR_H
#define CUSTODY_PAR_H

#include <stdatomic.h>
#include <stddef.h>

#define PAR_MIN 4

struct par;

/* NULL when out of memory (callers then run everything inline). The
 * thread is started at the first loop that uses it. */
struct par *par_new(void);
/* Stops and joins the helper; p may be NULL. No loop may be running. */
void par_free(struct par *p);
void par_for(struct par *p, size_t n, void (*fn)(void *arg, size_t i),
             void *arg);

/* One posted loop, in the caller's storage until par_end returns. */
struct par_loop {
	struct par *p;              /* the helper it was posted to, or NULL */
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t n;
	atomic_size_t next;         /* the next item to claim */
};
void par_begin(struct par *p, struct par_loop *l, size_t n,
               void (*fn)(void *arg, size_t i), void *arg);
void par_end(struct par_loop *l);

#endif
