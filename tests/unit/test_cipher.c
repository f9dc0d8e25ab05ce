/*
 * test_cipher.c - the cipher module: AEAD seal/open and what breaks it,
 * fresh nonces (also across pool refills and fork), identifiers from the
 * nonce pool, purpose-separated KDF, MAC part boundaries, Argon2id
 * parameters, sealed boxes, signatures and constant-time comparison.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cipher.h"
#include "unit.h"

#define MSG_LEN 100

static uint8_t key[CIPHER_KEY_BYTES], key2[CIPHER_KEY_BYTES];
static const uint8_t ad[] = "file-id|blk=7|kv=1";

/* Flip bit `bit` of byte `at` of a sealed message and try to open it. */
static int open_flipped(const uint8_t *sealed, size_t len, size_t at, int bit)
{
	uint8_t bad[MSG_LEN + CIPHER_OVERHEAD], out[MSG_LEN];

	memcpy(bad, sealed, len);
	bad[at] ^= (uint8_t)(1u << bit);
	memset(out, 0xAA, sizeof out);
	int rc = cipher_open(out, bad, len, ad, sizeof ad, key);
	/* a failed open wipes the output buffer */
	for (size_t i = 0; rc && i < len - CIPHER_OVERHEAD; i++)
		if (out[i])
			return -1000;
	return rc;
}

static void test_aead(void)
{
	uint8_t msg[MSG_LEN], sealed[MSG_LEN + CIPHER_OVERHEAD],
	        sealed2[MSG_LEN + CIPHER_OVERHEAD], out[MSG_LEN];
	const size_t len = sizeof sealed;

	cipher_random(msg, sizeof msg);
	cipher_seal(sealed, msg, sizeof msg, ad, sizeof ad, key);
	CHECK_EQ(cipher_open(out, sealed, len, ad, sizeof ad, key), 0);
	CHECK(memcmp(out, msg, sizeof msg) == 0);
	/* the ciphertext does not contain the plaintext */
	CHECK(memcmp(sealed + CIPHER_NONCE_BYTES, msg, sizeof msg) != 0);

	/* a flipped bit anywhere: nonce, ciphertext, tag */
	CHECK_EQ(open_flipped(sealed, len, 0, 0), -EBADMSG);
	CHECK_EQ(open_flipped(sealed, len, CIPHER_NONCE_BYTES - 1, 7), -EBADMSG);
	CHECK_EQ(open_flipped(sealed, len, CIPHER_NONCE_BYTES, 3), -EBADMSG);
	CHECK_EQ(open_flipped(sealed, len, CIPHER_NONCE_BYTES + MSG_LEN / 2, 5),
	         -EBADMSG);
	CHECK_EQ(open_flipped(sealed, len, len - CIPHER_TAG_BYTES, 0), -EBADMSG);
	CHECK_EQ(open_flipped(sealed, len, len - 1, 7), -EBADMSG);

	/* wrong associated data: another block number, shorter, none */
	uint8_t ad2[sizeof ad];
	memcpy(ad2, ad, sizeof ad);
	ad2[13] = '8';
	CHECK_EQ(cipher_open(out, sealed, len, ad2, sizeof ad2, key), -EBADMSG);
	CHECK_EQ(cipher_open(out, sealed, len, ad, sizeof ad - 1, key), -EBADMSG);
	CHECK_EQ(cipher_open(out, sealed, len, NULL, 0, key), -EBADMSG);
	/* wrong key */
	CHECK_EQ(cipher_open(out, sealed, len, ad, sizeof ad, key2), -EBADMSG);
	/* truncated: one byte short, shorter than the overhead, empty */
	CHECK_EQ(cipher_open(out, sealed, len - 1, ad, sizeof ad, key), -EBADMSG);
	CHECK_EQ(cipher_open(out, sealed, CIPHER_OVERHEAD - 1, ad, sizeof ad, key),
	         -EBADMSG);
	CHECK_EQ(cipher_open(out, sealed, 0, ad, sizeof ad, key), -EBADMSG);

	/* fresh nonces: sealing the same message twice differs */
	cipher_seal(sealed2, msg, sizeof msg, ad, sizeof ad, key);
	CHECK(memcmp(sealed, sealed2, CIPHER_NONCE_BYTES) != 0);
	CHECK(memcmp(sealed, sealed2, len) != 0);
	CHECK_EQ(cipher_open(out, sealed2, len, ad, sizeof ad, key), 0);
	CHECK(memcmp(out, msg, sizeof msg) == 0);

	/* the empty message: only nonce and tag, still authenticated */
	uint8_t empty[CIPHER_OVERHEAD];
	cipher_seal(empty, NULL, 0, ad, sizeof ad, key);
	CHECK_EQ(cipher_open(out, empty, sizeof empty, ad, sizeof ad, key), 0);
	empty[CIPHER_NONCE_BYTES] ^= 1;
	CHECK_EQ(cipher_open(out, empty, sizeof empty, ad, sizeof ad, key),
	         -EBADMSG);
}

static void test_kdf(void)
{
	uint8_t a[CIPHER_KEY_BYTES], b[CIPHER_KEY_BYTES], c[CIPHER_KEY_BYTES],
	        d[CIPHER_KEY_BYTES], e[CIPHER_KEY_BYTES];
	const uint8_t fid[16] = { 1, 2, 3 };
	uint8_t fid2[16];

	cipher_kdf(a, key, "custodyfs.file", fid, sizeof fid);
	cipher_kdf(b, key, "custodyfs.name", fid, sizeof fid);
	cipher_kdf(c, key, "custodyfs.file", fid, sizeof fid);
	CHECK(memcmp(a, b, sizeof a) != 0);  /* purposes differ */
	CHECK(memcmp(a, c, sizeof a) == 0);  /* deterministic */
	cipher_kdf(d, key2, "custodyfs.file", fid, sizeof fid);
	CHECK(memcmp(a, d, sizeof a) != 0);  /* master keys differ */
	memcpy(fid2, fid, sizeof fid2);
	fid2[15] ^= 1;
	cipher_kdf(e, key, "custodyfs.file", fid2, sizeof fid2);
	CHECK(memcmp(a, e, sizeof a) != 0);  /* file ids differ */
	/* the context is separated from the input: ("ab", "") != ("a", "b") */
	cipher_kdf(d, key, "ab", NULL, 0);
	cipher_kdf(e, key, "a", "b", 1);
	CHECK(memcmp(d, e, sizeof d) != 0);
	/* the derived key is not the master key */
	CHECK(memcmp(a, key, sizeof a) != 0);
}

static void test_mac(void)
{
	uint8_t m1[CIPHER_MAC_BYTES], m2[CIPHER_MAC_BYTES], m3[CIPHER_MAC_BYTES];
	struct cipher_part p1[] = { { "ab", 2 }, { "c", 1 } };
	struct cipher_part p2[] = { { "a", 1 }, { "bc", 2 } };
	struct cipher_part p3[] = { { "abc", 3 } };
	struct cipher_part p4[] = { { "abc", 3 }, { "", 0 } };

	cipher_mac(m1, key, p1, 2);
	cipher_mac(m2, key, p2, 2);
	CHECK(memcmp(m1, m2, sizeof m1) != 0);
	cipher_mac(m2, key, p3, 1);
	CHECK(memcmp(m1, m2, sizeof m1) != 0);
	cipher_mac(m3, key, p4, 2);
	CHECK(memcmp(m2, m3, sizeof m2) != 0); /* an empty part counts */
	cipher_mac(m2, key, p1, 2);
	CHECK(memcmp(m1, m2, sizeof m1) == 0); /* deterministic */
	cipher_mac(m2, key2, p1, 2);
	CHECK(memcmp(m1, m2, sizeof m1) != 0); /* keyed */
}

static void test_pwhash(void)
{
	uint8_t salt[CIPHER_SALT_BYTES], salt2[CIPHER_SALT_BYTES];
	uint8_t a[CIPHER_KEY_BYTES], b[CIPHER_KEY_BYTES], c[CIPHER_KEY_BYTES];
	const uint64_t ops = cipher_pwhash_opslimit_min();
	const uint64_t mem = 8192 * 1024;

	CHECK(cipher_pwhash_opslimit_min() >= 1);
	CHECK(cipher_pwhash_memlimit_min() >= 8192);
	cipher_random(salt, sizeof salt);
	memcpy(salt2, salt, sizeof salt2);
	salt2[0] ^= 1;
	CHECK_EQ(cipher_pwhash(a, "correct horse", 13, salt, ops, mem), 0);
	CHECK_EQ(cipher_pwhash(b, "correct horse", 13, salt, ops, mem), 0);
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK_EQ(cipher_pwhash(c, "correct horse", 13, salt2, ops, mem), 0);
	CHECK(memcmp(a, c, sizeof a) != 0);
	CHECK_EQ(cipher_pwhash(c, "correct horsf", 13, salt, ops, mem), 0);
	CHECK(memcmp(a, c, sizeof a) != 0);
	/* limits a hostile store could write */
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, 0, mem), -EINVAL);
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, ops, 0), -EINVAL);
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, ops,
	                       cipher_pwhash_memlimit_min() - 1), -EINVAL);
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, ops, (uint64_t)1 << 62), -EINVAL);
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, UINT64_MAX, mem), -EINVAL);
	CHECK_EQ(cipher_pwhash(c, "x", 1, salt, ops, UINT64_MAX), -EINVAL);
}

static void test_box(void)
{
	uint8_t pk[CIPHER_BOX_PK_BYTES], sk[CIPHER_BOX_SK_BYTES],
	        pk2[CIPHER_BOX_PK_BYTES], sk2[CIPHER_BOX_SK_BYTES];
	uint8_t msg[32], sealed[32 + CIPHER_BOX_OVERHEAD], out[32];

	cipher_box_keypair(pk, sk);
	cipher_box_keypair(pk2, sk2);
	cipher_random(msg, sizeof msg);
	CHECK_EQ(cipher_box_seal(sealed, msg, sizeof msg, pk), 0);
	CHECK_EQ(cipher_box_open(out, sealed, sizeof sealed, pk, sk), 0);
	CHECK(memcmp(out, msg, sizeof msg) == 0);
	CHECK_EQ(cipher_box_open(out, sealed, sizeof sealed, pk2, sk2), -EBADMSG);
	CHECK_EQ(cipher_box_open(out, sealed, CIPHER_BOX_OVERHEAD - 1, pk, sk),
	         -EBADMSG);
	sealed[sizeof sealed - 1] ^= 0x80;
	CHECK_EQ(cipher_box_open(out, sealed, sizeof sealed, pk, sk), -EBADMSG);
	sealed[sizeof sealed - 1] ^= 0x80;
	sealed[0] ^= 1; /* the ephemeral public key */
	CHECK_EQ(cipher_box_open(out, sealed, sizeof sealed, pk, sk), -EBADMSG);
}

static void test_sign(void)
{
	uint8_t pk[CIPHER_SIGN_PK_BYTES], sk[CIPHER_SIGN_SK_BYTES],
	        pk2[CIPHER_SIGN_PK_BYTES], sk2[CIPHER_SIGN_SK_BYTES];
	uint8_t sig[CIPHER_SIG_BYTES];
	uint8_t msg[] = "user admin role admin";

	cipher_sign_keypair(pk, sk);
	cipher_sign_keypair(pk2, sk2);
	cipher_sign(sig, msg, sizeof msg, sk);
	CHECK_EQ(cipher_sign_verify(sig, msg, sizeof msg, pk), 0);
	CHECK_EQ(cipher_sign_verify(sig, msg, sizeof msg, pk2), -EBADMSG);
	CHECK_EQ(cipher_sign_verify(sig, msg, sizeof msg - 1, pk), -EBADMSG);
	msg[17] = 'X'; /* "role Xdmin" */
	CHECK_EQ(cipher_sign_verify(sig, msg, sizeof msg, pk), -EBADMSG);
	msg[17] = 'a';
	sig[5] ^= 4;
	CHECK_EQ(cipher_sign_verify(sig, msg, sizeof msg, pk), -EBADMSG);
}

static void test_misc(void)
{
	uint8_t a[40], b[40];
	char hex[2 * 3 + 1];
	const uint8_t h[3] = { 0x00, 0xab, 0xFF };

	cipher_random(a, sizeof a);
	memcpy(b, a, sizeof b);
	CHECK_EQ(cipher_memeq(a, b, sizeof a), 1);
	b[39] ^= 1;
	CHECK_EQ(cipher_memeq(a, b, sizeof a), 0);
	CHECK_EQ(cipher_memeq(a, b, 39), 1);
	b[0] ^= 1;
	CHECK_EQ(cipher_memeq(a, b, sizeof a), 0);
	CHECK_EQ(cipher_memeq(a, b, 0), 1);

	cipher_hex(hex, h, sizeof h);
	CHECK(strcmp(hex, "00abff") == 0);

	/* two random draws differ; secure memory works and wipes on free */
	cipher_random(b, sizeof b);
	CHECK(memcmp(a, b, sizeof a) != 0);
	uint8_t *p = secmem_alloc(64);
	CHECK(p != NULL);
	if (p) {
		memset(p, 0x5A, 64);
		cipher_wipe(p, 64);
		CHECK(p[0] == 0 && p[63] == 0);
		secmem_free(p);
	}
	secmem_free(NULL);
	CHECK(strlen(cipher_aead_name()) > 0);
}

/*
 * Nonces across fork: a child must not replay the nonces its parent is
 * about to use (the pool is emptied in the child), and many nonces in a
 * row (across pool refills) never repeat.
 */
static void test_nonces(void)
{
	enum { N = 8000 }; /* about three pool refills */
	uint8_t msg[1] = { 0 }, p[CIPHER_OVERHEAD + 1], c[CIPHER_OVERHEAD + 1];
	uint8_t (*seen)[CIPHER_NONCE_BYTES] = malloc(N * sizeof *seen);
	int fds[2], dup = 0, st = 0;
	pid_t pid;

	CHECK(seen != NULL);
	if (!seen)
		return;
	for (int i = 0; i < N; i++) {
		cipher_seal(p, msg, 1, ad, sizeof ad, key);
		memcpy(seen[i], p, CIPHER_NONCE_BYTES);
	}
	for (int i = 0; i < N && !dup; i++)
		for (int j = i + 1; j < N; j++)
			if (!memcmp(seen[i], seen[j], CIPHER_NONCE_BYTES)) {
				dup = 1;
				break;
			}
	CHECK_EQ(dup, 0);
	free(seen);
	CHECK_EQ(pipe(fds), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		cipher_seal(c, msg, 1, ad, sizeof ad, key);
		_exit(write(fds[1], c, CIPHER_NONCE_BYTES) == CIPHER_NONCE_BYTES ? 0 : 1);
	}
	cipher_seal(p, msg, 1, ad, sizeof ad, key);
	CHECK_EQ(read(fds[0], c, CIPHER_NONCE_BYTES), CIPHER_NONCE_BYTES);
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(memcmp(p, c, CIPHER_NONCE_BYTES) != 0);
	close(fds[0]);
	close(fds[1]);
}

/*
 * Identifiers from the pool (cipher_unique): 16- and 8-byte draws mixed
 * with nonces across refills never repeat and are never all zero (the pool
 * wipes what it hands out, so a bug re-reading it would give zeros); a
 * forked child draws different ones; oversized requests still work.
 */
static void test_unique(void)
{
	enum { N = 12000 }; /* 16 + 8 + 24 bytes a round: about nine refills */
	uint8_t (*ids)[16] = malloc(N * sizeof *ids), zero[16] = { 0 };
	uint64_t *gens = malloc(N * sizeof *gens);
	uint8_t msg[1] = { 0 }, p[CIPHER_OVERHEAD + 1], big[CIPHER_UNIQUE_MAX + 40];
	int dup = 0, zeros = 0, fds[2], st = 0;
	uint8_t mine[16], child[16];
	pid_t pid;

	CHECK(ids != NULL && gens != NULL);
	if (!ids || !gens) {
		free(ids);
		free(gens);
		return;
	}
	for (int i = 0; i < N; i++) {
		cipher_unique(ids[i], sizeof ids[i]);
		cipher_unique(&gens[i], sizeof gens[i]);
		cipher_seal(p, msg, 1, ad, sizeof ad, key);
		zeros += !memcmp(ids[i], zero, sizeof ids[i]) + (gens[i] == 0);
	}
	for (int i = 0; i < N && !dup; i++)
		for (int j = i + 1; j < N; j++)
			if (!memcmp(ids[i], ids[j], sizeof ids[i]) || gens[i] == gens[j]) {
				dup = 1;
				break;
			}
	CHECK_EQ(dup, 0);
	CHECK_EQ(zeros, 0);
	free(ids);
	free(gens);
	memset(big, 0, sizeof big);
	cipher_unique(big, sizeof big);
	CHECK(memcmp(big + sizeof big - 16, zero, 16) != 0);
	CHECK_EQ(pipe(fds), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		cipher_unique(child, sizeof child);
		_exit(write(fds[1], child, sizeof child) == sizeof child ? 0 : 1);
	}
	cipher_unique(mine, sizeof mine);
	CHECK_EQ(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(memcmp(mine, child, sizeof mine) != 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	CHECK_EQ(cipher_init(), 0);
	cipher_random(key, sizeof key);
	cipher_random(key2, sizeof key2);
	test_aead();
	test_nonces();
	test_unique();
	test_kdf();
	test_mac();
	test_pwhash();
	test_box();
	test_sign();
	test_misc();
	UNIT_END("test_cipher");
}
