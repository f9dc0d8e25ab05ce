/*
 * test_par.c - par_for and par_begin/par_end: every item of every loop
 * runs exactly once, with its own loop's function and argument, when
 * several callers share one helper at once (a caller that finds it busy
 * runs inline) and loops of every size come and go while the helper is
 * still waking from the last; a posted loop makes progress on the helper
 * while its caller is away doing other work.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "par.h"
#include "unit.h"

#define CALLERS 4
#define ROUNDS 4000
#define MAXN 40

struct job {
	int caller;
	size_t n;
	atomic_int hits[MAXN];
	atomic_int wrong;
};

static struct par *shared;

static void item(void *arg, size_t i)
{
	struct job *j = arg;

	/* a little work, so that loops overlap */
	for (volatile int k = 0; k < (int)(i % 7) * 50; k++)
		;
	if (i >= j->n)
		atomic_fetch_add(&j->wrong, 1);
	else
		atomic_fetch_add(&j->hits[i], 1);
}

static atomic_int bad_items, bad_loops;

static void *caller(void *arg)
{
	int id = (int)(size_t)arg;
	unsigned seed = (unsigned)id * 7919u + 1;

	for (int r = 0; r < ROUNDS; r++) {
		struct job j;
		memset(&j, 0, sizeof j);
		j.caller = id;
		j.n = (size_t)(rand_r(&seed) % MAXN);
		for (size_t i = 0; i < MAXN; i++)
			atomic_init(&j.hits[i], 0);
		atomic_init(&j.wrong, 0);
		if (r % 2) {
			par_for(shared, j.n, item, &j);
		} else {
			/* posted, some other work here, then joined */
			struct par_loop l;
			par_begin(shared, &l, j.n, item, &j);
			for (volatile int k = 0; k < (r % 5) * 100; k++)
				;
			par_end(&l);
		}
		/* the loop has returned: nothing may touch j any more */
		for (size_t i = 0; i < j.n; i++)
			if (atomic_load(&j.hits[i]) != 1)
				atomic_fetch_add(&bad_items, 1);
		if (atomic_load(&j.wrong))
			atomic_fetch_add(&bad_loops, 1);
	}
	return NULL;
}

static void sum(void *arg, size_t i)
{
	atomic_fetch_add((atomic_ulong *)arg, (unsigned long)i + 1);
}

int main(void)
{
	pthread_t th[CALLERS];
	atomic_ulong total;

	/* one caller, every size: the sum of 1..n */
	shared = par_new();
	CHECK(shared != NULL);
	for (size_t n = 0; n < 200; n++) {
		atomic_init(&total, 0);
		par_for(shared, n, sum, &total);
		CHECK_EQ(atomic_load(&total), n * (n + 1) / 2);
	}
	/* NULL runs inline */
	atomic_init(&total, 0);
	par_for(NULL, 10, sum, &total);
	CHECK_EQ(atomic_load(&total), 55);
	/* a posted loop runs on the helper while its caller is away: the
	 * caller waits (up to 10 s) for the helper to finish items alone */
	{
		struct par_loop l;
		atomic_init(&total, 0);
		par_begin(shared, &l, 100, sum, &total);
		for (int k = 0; k < 10000 && atomic_load(&total) == 0; k++) {
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
		}
		CHECK(atomic_load(&total) > 0);
		par_end(&l);
		CHECK_EQ(atomic_load(&total), 5050);
		/* n = 0 and a NULL helper: par_end runs it all, or nothing */
		atomic_init(&total, 0);
		par_begin(shared, &l, 0, sum, &total);
		par_end(&l);
		par_begin(NULL, &l, 10, sum, &total);
		CHECK_EQ(atomic_load(&total), 0);
		par_end(&l);
		CHECK_EQ(atomic_load(&total), 55);
	}
	/* several callers at once on one helper */
	atomic_init(&bad_items, 0);
	atomic_init(&bad_loops, 0);
	for (int i = 0; i < CALLERS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, caller, (void *)(size_t)i), 0);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(atomic_load(&bad_items), 0);
	CHECK_EQ(atomic_load(&bad_loops), 0);
	par_free(shared);
	par_free(NULL);
	/* a helper never started is freed too */
	par_free(par_new());
	UNIT_END("test_par");
}
