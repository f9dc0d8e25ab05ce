/*
 * cipher.c - thin, checked wrappers around libsodium.
 *
 * This is the only file that includes sodium.h. Everything here is a direct
 * use of a libsodium primitive with the project's conventions applied:
 * random nonces prepended to ciphertexts, -errno results, wiping on failure.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "cipher.h"

_Static_assert(CIPHER_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(CIPHER_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(CIPHER_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(CIPHER_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(CIPHER_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "box pk size");
_Static_assert(CIPHER_BOX_SK_BYTES == crypto_box_SECRETKEYBYTES, "box sk size");
_Static_assert(CIPHER_BOX_OVERHEAD == crypto_box_SEALBYTES, "box seal size");
_Static_assert(CIPHER_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "sign pk size");
_Static_assert(CIPHER_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "sign sk size");
_Static_assert(CIPHER_SIG_BYTES == crypto_sign_BYTES, "sig size");

int cipher_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

const char *cipher_aead_name(void)
{
	return "xchacha20poly1305";
}

void *secmem_alloc(size_t len)
{
	return sodium_malloc(len);
}

void secmem_free(void *p)
{
	if (p)
		sodium_free(p);
}

void cipher_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

void cipher_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

int cipher_memeq(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len) == 0;
}

/*
 * Nonces come from a pool refilled 64 KiB at a time by ChaCha20 keyed with
 * 32 bytes of fresh OS randomness (randombytes_buf_deterministic): one
 * getrandom() per 2730 nonces instead of one per block (libsodium reads
 * the OS 256 bytes per syscall, and syscalls are the dominant cost of
 * small writes on virtual machines). Random 192-bit nonces never repeat in
 * practice; they need not be secret, and keys never come from this pool
 * (file ids and inode generations do: cipher_unique).
 * A forked child starts with an empty pool (pthread_atfork), so it never
 * replays its parent's nonces.
 */
#define NONCE_POOL 65520 /* a multiple of CIPHER_NONCE_BYTES */
static struct {
	pthread_mutex_t lock;
	uint8_t buf[NONCE_POOL];
	size_t pos;
} pool = { PTHREAD_MUTEX_INITIALIZER, { 0 }, NONCE_POOL };
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forked(void)
{
	pool.pos = NONCE_POOL; /* the child refills before its first nonce */
}

static void pool_register(void)
{
	pthread_atfork(NULL, NULL, pool_forked);
}

/* len bytes from the pool, each handed out once; len <= NONCE_POOL */
static void pool_take(uint8_t *out, size_t len)
{
	pthread_once(&pool_once, pool_register);
	pthread_mutex_lock(&pool.lock);
	if (pool.pos + len > NONCE_POOL) {
		uint8_t seed[randombytes_SEEDBYTES];
		randombytes_buf(seed, sizeof seed);
		randombytes_buf_deterministic(pool.buf, NONCE_POOL, seed);
		sodium_memzero(seed, sizeof seed);
		pool.pos = 0;
	}
	memcpy(out, pool.buf + pool.pos, len);
	sodium_memzero(pool.buf + pool.pos, len); /* used once */
	pool.pos += len;
	pthread_mutex_unlock(&pool.lock);
}

static void nonce_fill(uint8_t *out)
{
	pool_take(out, CIPHER_NONCE_BYTES);
}

void cipher_unique(void *buf, size_t len)
{
	if (len > CIPHER_UNIQUE_MAX) /* a caller's bug: fall back, stay safe */
		cipher_random(buf, len);
	else
		pool_take(buf, len);
}

void cipher_seal(uint8_t *out, const uint8_t *msg, size_t len,
                 const uint8_t *ad, size_t adlen,
                 const uint8_t key[CIPHER_KEY_BYTES])
{
	nonce_fill(out);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + CIPHER_NONCE_BYTES,
	                                           NULL, msg, len, ad, adlen,
	                                           NULL, out, key);
}

int cipher_open(uint8_t *out, const uint8_t *in, size_t inlen,
                const uint8_t *ad, size_t adlen,
                const uint8_t key[CIPHER_KEY_BYTES])
{
	if (inlen < CIPHER_OVERHEAD)
		return -EBADMSG;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	            out, NULL, NULL, in + CIPHER_NONCE_BYTES,
	            inlen - CIPHER_NONCE_BYTES, ad, adlen, in, key) != 0) {
		sodium_memzero(out, inlen - CIPHER_OVERHEAD);
		return -EBADMSG;
	}
	return 0;
}

void cipher_kdf(uint8_t out[CIPHER_KEY_BYTES],
                const uint8_t key[CIPHER_KEY_BYTES], const char *context,
                const void *in, size_t inlen)
{
	crypto_generichash_state st;
	static const uint8_t zero = 0;

	crypto_generichash_init(&st, key, CIPHER_KEY_BYTES, CIPHER_KEY_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)context, strlen(context));
	crypto_generichash_update(&st, &zero, 1);
	if (inlen)
		crypto_generichash_update(&st, in, inlen);
	crypto_generichash_final(&st, out, CIPHER_KEY_BYTES);
	sodium_memzero(&st, sizeof st);
}

void cipher_mac(uint8_t out[CIPHER_MAC_BYTES],
                const uint8_t key[CIPHER_KEY_BYTES],
                const struct cipher_part *parts, size_t nparts)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, CIPHER_KEY_BYTES, CIPHER_MAC_BYTES);
	for (size_t i = 0; i < nparts; i++) {
		/* length-prefix each part so boundaries cannot be shifted */
		uint8_t l[8];
		uint64_t n = parts[i].len;
		for (int b = 0; b < 8; b++)
			l[b] = (uint8_t)(n >> (8 * b));
		crypto_generichash_update(&st, l, sizeof l);
		if (parts[i].len)
			crypto_generichash_update(&st, parts[i].p, parts[i].len);
	}
	crypto_generichash_final(&st, out, CIPHER_MAC_BYTES);
	sodium_memzero(&st, sizeof st);
}

void cipher_hash(uint8_t out[CIPHER_MAC_BYTES], const struct cipher_part *parts,
                 size_t nparts)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, CIPHER_MAC_BYTES);
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].len)
			crypto_generichash_update(&st, parts[i].p, parts[i].len);
	crypto_generichash_final(&st, out, CIPHER_MAC_BYTES);
}

uint64_t cipher_pwhash_opslimit_min(void)
{
	return crypto_pwhash_OPSLIMIT_MIN;
}

uint64_t cipher_pwhash_memlimit_min(void)
{
	return crypto_pwhash_MEMLIMIT_MIN;
}

int cipher_pwhash(uint8_t out[CIPHER_KEY_BYTES], const char *pass,
                  size_t passlen, const uint8_t salt[CIPHER_SALT_BYTES],
                  uint64_t opslimit, uint64_t memlimit)
{
	if (opslimit < crypto_pwhash_OPSLIMIT_MIN ||
	    opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    memlimit < crypto_pwhash_MEMLIMIT_MIN ||
	    memlimit > (uint64_t)4 << 30) /* a hostile store must not OOM us */
		return -EINVAL;
	if (crypto_pwhash(out, CIPHER_KEY_BYTES, pass, passlen, salt, opslimit,
	                  (size_t)memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	return 0;
}

void cipher_box_keypair(uint8_t pk[CIPHER_BOX_PK_BYTES],
                        uint8_t sk[CIPHER_BOX_SK_BYTES])
{
	crypto_box_keypair(pk, sk);
}

int cipher_box_seal(uint8_t *out, const uint8_t *msg, size_t len,
                    const uint8_t pk[CIPHER_BOX_PK_BYTES])
{
	return crypto_box_seal(out, msg, len, pk) == 0 ? 0 : -EINVAL;
}

int cipher_box_open(uint8_t *out, const uint8_t *in, size_t inlen,
                    const uint8_t pk[CIPHER_BOX_PK_BYTES],
                    const uint8_t sk[CIPHER_BOX_SK_BYTES])
{
	if (inlen < CIPHER_BOX_OVERHEAD)
		return -EBADMSG;
	if (crypto_box_seal_open(out, in, inlen, pk, sk) != 0) {
		sodium_memzero(out, inlen - CIPHER_BOX_OVERHEAD);
		return -EBADMSG;
	}
	return 0;
}

void cipher_sign_keypair(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                         uint8_t sk[CIPHER_SIGN_SK_BYTES])
{
	crypto_sign_keypair(pk, sk);
}

void cipher_sign(uint8_t sig[CIPHER_SIG_BYTES], const uint8_t *msg,
                 size_t len, const uint8_t sk[CIPHER_SIGN_SK_BYTES])
{
	crypto_sign_detached(sig, NULL, msg, len, sk);
}

int cipher_sign_verify(const uint8_t sig[CIPHER_SIG_BYTES],
                       const uint8_t *msg, size_t len,
                       const uint8_t pk[CIPHER_SIGN_PK_BYTES])
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -EBADMSG;
}

void cipher_hex(char *out, const uint8_t *in, size_t len)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

int cipher_unhex(uint8_t *out, size_t len, const char *hex)
{
	size_t bin = 0;

	if (strlen(hex) != 2 * len ||
	    sodium_hex2bin(out, len, hex, 2 * len, NULL, &bin, NULL) != 0 ||
	    bin != len)
		return -EINVAL;
	return 0;
}

void cipher_sign_seed_keypair(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                              uint8_t sk[CIPHER_SIGN_SK_BYTES],
                              const uint8_t seed[CIPHER_KEY_BYTES])
{
	crypto_sign_seed_keypair(pk, sk, seed);
}

void cipher_box_seed_keypair(uint8_t pk[CIPHER_BOX_PK_BYTES],
                             uint8_t sk[CIPHER_BOX_SK_BYTES],
                             const uint8_t seed[CIPHER_KEY_BYTES])
{
	crypto_box_seed_keypair(pk, sk, seed);
}

void cipher_sign_public(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                        const uint8_t sk[CIPHER_SIGN_SK_BYTES])
{
	crypto_sign_ed25519_sk_to_pk(pk, sk);
}

void cipher_box_public(uint8_t pk[CIPHER_BOX_PK_BYTES],
                       const uint8_t sk[CIPHER_BOX_SK_BYTES])
{
	crypto_scalarmult_base(pk, sk);
}

/* ---- the block cipher: XChaCha20 + keyed BLAKE2b (encrypt-then-MAC) ---- */

_Static_assert(CIPHER_BLOCK_TAG_BYTES == crypto_generichash_BYTES, "block tag");

static void block_mac(uint8_t tag[CIPHER_BLOCK_TAG_BYTES], const uint8_t *ad,
                      size_t adlen, const uint8_t *nonce_ct, size_t len,
                      const uint8_t mac_key[CIPHER_KEY_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, mac_key, CIPHER_KEY_BYTES,
	                        CIPHER_BLOCK_TAG_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)"custodyfs.block", 16);
	crypto_generichash_update(&st, ad, adlen);
	crypto_generichash_update(&st, nonce_ct, len);
	crypto_generichash_final(&st, tag, CIPHER_BLOCK_TAG_BYTES);
	sodium_memzero(&st, sizeof st);
}

void cipher_block_seal(uint8_t *out, const uint8_t *msg, size_t len,
                       const uint8_t *ad, size_t adlen,
                       const uint8_t enc_key[CIPHER_KEY_BYTES],
                       const uint8_t mac_key[CIPHER_KEY_BYTES],
                       uint8_t tag_out[CIPHER_BLOCK_TAG_BYTES])
{
	uint8_t *tag = out + CIPHER_NONCE_BYTES + len;

	nonce_fill(out);
	crypto_stream_xchacha20_xor(out + CIPHER_NONCE_BYTES, msg, len, out,
	                            enc_key);
	block_mac(tag, ad, adlen, out, CIPHER_NONCE_BYTES + len, mac_key);
	if (tag_out)
		memcpy(tag_out, tag, CIPHER_BLOCK_TAG_BYTES);
}

void cipher_block_tag(uint8_t tag[CIPHER_BLOCK_TAG_BYTES], const uint8_t *in,
                      size_t inlen, const uint8_t *ad, size_t adlen,
                      const uint8_t mac_key[CIPHER_KEY_BYTES])
{
	if (inlen < CIPHER_BLOCK_OVERHEAD) {
		memset(tag, 0, CIPHER_BLOCK_TAG_BYTES);
		return;
	}
	block_mac(tag, ad, adlen, in, inlen - CIPHER_BLOCK_TAG_BYTES, mac_key);
}

int cipher_block_open(uint8_t *out, const uint8_t *in, size_t inlen,
                      const uint8_t *ad, size_t adlen,
                      const uint8_t enc_key[CIPHER_KEY_BYTES],
                      const uint8_t mac_key[CIPHER_KEY_BYTES],
                      const uint8_t expect[CIPHER_BLOCK_TAG_BYTES])
{
	uint8_t tag[CIPHER_BLOCK_TAG_BYTES];
	size_t len;

	if (inlen < CIPHER_BLOCK_OVERHEAD)
		return -EBADMSG;
	len = inlen - CIPHER_BLOCK_OVERHEAD;
	block_mac(tag, ad, adlen, in, CIPHER_NONCE_BYTES + len, mac_key);
	if (sodium_memcmp(tag, in + CIPHER_NONCE_BYTES + len, sizeof tag) ||
	    (expect && sodium_memcmp(tag, expect, sizeof tag)))
		return -EBADMSG;
	crypto_stream_xchacha20_xor(out, in + CIPHER_NONCE_BYTES, len, in,
	                            enc_key);
	return 0;
}
