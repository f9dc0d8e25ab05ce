/*
 * fuzz_ledger.c - libFuzzer harness: ledger_parse, the parser of commit
 * records read from the store. The input is split in two: its first two
 * bytes (little endian) give the body's length, the body follows, and the
 * rest is the signature list. What must hold: no crash, UB or leak; a
 * record that parses has 1..LEDGER_MAX_SIGNERS signers with ascending ids
 * >= 1, sane tree heights and flags, and its hash is the body's BLAKE2b.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cipher.h"
#include "ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "ORACLE: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ledger_commit c;
	size_t blen;
	uint8_t h[32];

	if (cipher_init())
		abort();
	if (size < 2)
		return 0;
	blen = (size_t)(data[0] | data[1] << 8);
	if (blen > size - 2)
		blen = size - 2;
	if (ledger_parse(data + 2, blen, data + 2 + blen, size - 2 - blen, &c))
		return 0;
	if (c.nsig < 1 || c.nsig > LEDGER_MAX_SIGNERS)
		fail("signer count");
	for (size_t i = 0; i < c.nsig; i++)
		if (c.signer[i] < 1 || (i && c.signer[i] <= c.signer[i - 1]))
			fail("signers not ascending");
	if (c.seq < 1 || c.st.audit_seq < 0 ||
	    c.st.inodes.height > MTREE_MAX_HEIGHT ||
	    c.st.dentries.height > MTREE_MAX_HEIGHT ||
	    c.st.creds.height > MTREE_MAX_HEIGHT || (c.st.flags & ~LEDGER_FORK))
		fail("field out of range");
	{
		struct cipher_part p = { data + 2, blen };
		cipher_hash(h, &p, 1);
		if (memcmp(h, c.hash, 32))
			fail("hash is not the body's");
	}
	return 0;
}
