/*
 * par.h - fork-join over two cores: a loop's items split between the
 * caller and one helper thread that sleeps between loops.
 *
 * par_for(p, n, fn, arg) calls fn(arg, i) once for every i < n and
 * returns when all calls have returned: items [0, n/2) on the caller's
 * thread, [n/2, n) on the helper's. Calls for different i must not touch
 * the same memory. With p NULL, n < PAR_MIN (waking the helper costs
 * more than it would take of so small a loop), or the helper busy with
 * another caller's loop, every call runs on the caller's thread: never
 * an error, only less parallel.
 */
#ifndef CUSTODY_PAR_H
#define CUSTODY_PAR_H

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

#endif
