/*
 * fuzz_roster.c - libFuzzer harness: rights_parse on the input as a roster
 * body (the bytes of the roster row, before its signature is checked by
 * rights_load; auth_login also parses the unverified roster to choose the
 * cost of a failed attempt). What must hold: no crash, UB or leak; a body
 * that parses keeps every rule rights.h states (users by ascending id, at
 * least one period each, in order, none after the roster's counter, roles
 * valid, names valid and unique among the live, versions ascending, at most
 * one active) and encodes back to exactly the same bytes (one roster, one
 * encoding); the questions answer within it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "ORACLE: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rights *r = NULL;
	uint8_t *again = NULL;
	size_t len = 0;
	int active = 0;

	if (rights_parse(data, size, &r)) {
		if (r)
			fail("a refused body left a roster");
		return 0;
	}
	if (!r)
		fail("no roster");
	if (rights_encode(r, &again, &len) || len != size ||
	    memcmp(again, data, size))
		fail("a parsed roster does not encode to the same bytes");
	free(again);
	if (r->epoch < 1 || r->nusers > RIGHTS_USERS_MAX ||
	    r->nkeys > RIGHTS_KEYS_MAX)
		fail("header out of range");
	for (size_t i = 0; i < r->nusers; i++) {
		const struct rights_user *u = &r->users[i];
		if (u->id < 1 || (i && u->id <= r->users[i - 1].id))
			fail("users not ascending");
		if (u->nperiods < 1 || u->nperiods > RIGHTS_PERIODS_MAX)
			fail("period count");
		for (size_t j = 0; j < u->nperiods; j++) {
			if (u->periods[j].from > r->counter)
				fail("period after the counter");
			if (j && u->periods[j].from <= u->periods[j - 1].from)
				fail("periods not strictly ascending (two roles at one counter)");
			if (!role_valid(u->periods[j].role) &&
			    u->periods[j].role != ROLE_REMOVED)
				fail("role");
		}
		if (rights_user(r, u->id) != u)
			fail("rights_user");
		if (rights_role(u) != ROLE_REMOVED &&
		    rights_user_named(r, u->name) != u)
			fail("two live users of one name");
		(void)rights_role_at(u, 0);
		(void)rights_sign_pk_at(u, r->counter);
		if (!rights_sign_pk(u))
			fail("no signing key");
	}
	for (size_t i = 0; i < r->nkeys; i++) {
		const struct rights_key *k = &r->keys[i];
		if (k->version < 1 || (i && k->version <= r->keys[i - 1].version))
			fail("versions not ascending");
		if (k->status > KEY_DESTROYED || k->cipher < KEY_CIPHER_AEAD ||
		    k->cipher > KEY_CIPHER_ETM)
			fail("key status or cipher");
		active += k->status == KEY_ACTIVE;
		if (rights_key(r, k->version) != k)
			fail("rights_key");
	}
	if (active > 1)
		fail("two active versions");
	if (rights_active(r) && !rights_key(r, rights_active(r)))
		fail("rights_active");
	(void)rights_newest(r);
	rights_free(r);
	return 0;
}
