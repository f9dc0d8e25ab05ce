/*
 * cipher.h - the only door to libsodium.
 *
 * Every cryptographic primitive custodyfs uses goes through here: AEAD for
 * content, names and secret keys; keyed BLAKE2b for key derivation, lookup
 * tags and MACs; Argon2id for passphrases; X25519 sealed boxes for key grants;
 * Ed25519 signatures for rights, sessions and commits; the block cipher;
 * locked memory for secrets.
 *
 * All functions are thread-safe once cipher_init() has returned 0.
 */
#ifndef CUSTODY_CIPHER_H
#define CUSTODY_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#define CIPHER_KEY_BYTES    32u  /* symmetric keys, derived keys */
#define CIPHER_NONCE_BYTES  24u  /* XChaCha20-Poly1305 nonce, random per seal */
#define CIPHER_TAG_BYTES    16u  /* Poly1305 tag */
#define CIPHER_OVERHEAD     (CIPHER_NONCE_BYTES + CIPHER_TAG_BYTES)
#define CIPHER_MAC_BYTES    32u  /* keyed BLAKE2b-256 */
#define CIPHER_SALT_BYTES   16u  /* Argon2id salt */
#define CIPHER_BOX_PK_BYTES 32u  /* X25519 public key */
#define CIPHER_BOX_SK_BYTES 32u  /* X25519 secret key */
#define CIPHER_BOX_OVERHEAD 48u  /* crypto_box_seal: ephemeral pk + tag */
#define CIPHER_SIGN_PK_BYTES 32u /* Ed25519 public key */
#define CIPHER_SIGN_SK_BYTES 64u /* Ed25519 secret key (seed + pk) */
#define CIPHER_SIG_BYTES    64u  /* Ed25519 signature */

/* Initialise libsodium. Returns 0, or -1 if the library cannot start. */
int cipher_init(void);

/* Name of the content AEAD, recorded in the store's metadata. */
const char *cipher_aead_name(void);

/*
 * Locked, guarded memory for secrets (sodium_malloc: mlocked, guard pages,
 * wiped on free). secmem_alloc returns NULL on failure; secmem_free(NULL) is
 * a no-op. secmem_free wipes before releasing.
 */
void *secmem_alloc(size_t len);
void secmem_free(void *p);
/* Wipe memory in a way the compiler cannot elide. */
void cipher_wipe(void *p, size_t len);

/* Fill buf with len bytes from the system CSPRNG. */
void cipher_random(void *buf, size_t len);
/*
 * Fill buf with len (at most CIPHER_UNIQUE_MAX) unpredictable bytes that
 * are never handed out twice, for public identifiers (file ids, inode
 * generations): drawn from the nonce pool, so no system call. Never for
 * keys or other secrets.
 */
#define CIPHER_UNIQUE_MAX 64
void cipher_unique(void *buf, size_t len);

/* Constant-time equality: 1 if equal, 0 if not. */
int cipher_memeq(const void *a, const void *b, size_t len);

/*
 * AEAD seal: out receives nonce || ciphertext || tag, that is
 * len + CIPHER_OVERHEAD bytes. The nonce is fresh and random (192 bits, so
 * random nonces never collide in practice). ad binds the ciphertext to its
 * place (file id, block number, key version, ...). out must not overlap msg.
 */
void cipher_seal(uint8_t *out, const uint8_t *msg, size_t len,
                 const uint8_t *ad, size_t adlen,
                 const uint8_t key[CIPHER_KEY_BYTES]);

/*
 * AEAD open: in is nonce || ciphertext || tag (inlen >= CIPHER_OVERHEAD);
 * out receives inlen - CIPHER_OVERHEAD bytes. Returns 0, or -EBADMSG when the
 * ciphertext, its associated data or the key do not match (out is then wiped).
 */
int cipher_open(uint8_t *out, const uint8_t *in, size_t inlen,
                const uint8_t *ad, size_t adlen,
                const uint8_t key[CIPHER_KEY_BYTES]);

/*
 * Key derivation: out = BLAKE2b-256 keyed with key over
 * (context || 0 || in). context names the purpose ("custodyfs.file", ...),
 * so keys for different purposes never coincide.
 */
void cipher_kdf(uint8_t out[CIPHER_KEY_BYTES],
                const uint8_t key[CIPHER_KEY_BYTES], const char *context,
                const void *in, size_t inlen);

/* MAC over several parts: out = keyed BLAKE2b-256 of the concatenation. */
struct cipher_part {
	const void *p;
	size_t len;
};
void cipher_mac(uint8_t out[CIPHER_MAC_BYTES],
                const uint8_t key[CIPHER_KEY_BYTES],
                const struct cipher_part *parts, size_t nparts);

/*
 * Unkeyed BLAKE2b-256 of the plain concatenation of parts (no length
 * prefixes: for fixed-layout encodings such as tree nodes and records,
 * whose layout already fixes every boundary).
 */
void cipher_hash(uint8_t out[CIPHER_MAC_BYTES], const struct cipher_part *parts,
                 size_t nparts);

/*
 * Argon2id: derive a key from a passphrase. Returns 0, or -ENOMEM if the
 * memory limit cannot be met. ops/mem are checked against libsodium's bounds
 * (-EINVAL outside them, as a hostile store could put anything there).
 */
int cipher_pwhash(uint8_t out[CIPHER_KEY_BYTES], const char *pass,
                  size_t passlen, const uint8_t salt[CIPHER_SALT_BYTES],
                  uint64_t opslimit, uint64_t memlimit);
/* Lowest accepted Argon2id parameters (for configuration checks). */
uint64_t cipher_pwhash_opslimit_min(void);
uint64_t cipher_pwhash_memlimit_min(void);

/*
 * The content block cipher (key version cipher 2): XChaCha20 under enc_key
 * with a keyed BLAKE2b-256 tag under mac_key over
 * ("custodyfs.block\0" || ad || nonce || ciphertext), encrypt-then-MAC.
 * out receives nonce || ciphertext || tag (len + CIPHER_BLOCK_OVERHEAD).
 * The tag is collision resistant even for whoever holds the keys (keyed
 * BLAKE2b is a hash; Poly1305 is not), so it doubles as the block's leaf in
 * its file's Merkle tree: tag_out (may be NULL) receives it.
 */
#define CIPHER_BLOCK_TAG_BYTES 32u
#define CIPHER_BLOCK_OVERHEAD (CIPHER_NONCE_BYTES + CIPHER_BLOCK_TAG_BYTES)
void cipher_block_seal(uint8_t *out, const uint8_t *msg, size_t len,
                       const uint8_t *ad, size_t adlen,
                       const uint8_t enc_key[CIPHER_KEY_BYTES],
                       const uint8_t mac_key[CIPHER_KEY_BYTES],
                       uint8_t tag_out[CIPHER_BLOCK_TAG_BYTES]);
/*
 * Open in (inlen >= CIPHER_BLOCK_OVERHEAD) into out (inlen -
 * CIPHER_BLOCK_OVERHEAD bytes). The tag is recomputed and must equal the
 * stored one and, when expect is not NULL, expect (the leaf the tree
 * vouches for). Returns 0 or -EBADMSG (out is then wiped). tag_out (may be
 * NULL) receives the recomputed tag.
 */
int cipher_block_open(uint8_t *out, const uint8_t *in, size_t inlen,
                      const uint8_t *ad, size_t adlen,
                      const uint8_t enc_key[CIPHER_KEY_BYTES],
                      const uint8_t mac_key[CIPHER_KEY_BYTES],
                      const uint8_t expect[CIPHER_BLOCK_TAG_BYTES]);
/* The tag of a stored block without decrypting it (check, upgrade). */
void cipher_block_tag(uint8_t tag[CIPHER_BLOCK_TAG_BYTES], const uint8_t *in,
                      size_t inlen, const uint8_t *ad, size_t adlen,
                      const uint8_t mac_key[CIPHER_KEY_BYTES]);

/* X25519 sealed boxes: anonymous encryption to a public key. */
void cipher_box_keypair(uint8_t pk[CIPHER_BOX_PK_BYTES],
                        uint8_t sk[CIPHER_BOX_SK_BYTES]);
/* out receives len + CIPHER_BOX_OVERHEAD bytes. */
int cipher_box_seal(uint8_t *out, const uint8_t *msg, size_t len,
                    const uint8_t pk[CIPHER_BOX_PK_BYTES]);
/* Returns 0 or -EBADMSG; out receives inlen - CIPHER_BOX_OVERHEAD bytes. */
int cipher_box_open(uint8_t *out, const uint8_t *in, size_t inlen,
                    const uint8_t pk[CIPHER_BOX_PK_BYTES],
                    const uint8_t sk[CIPHER_BOX_SK_BYTES]);

/* Ed25519 detached signatures. */
void cipher_sign_keypair(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                         uint8_t sk[CIPHER_SIGN_SK_BYTES]);
/* The same key pairs from a 32-byte seed (the recovery secret), and the
 * public half of a secret key (to check a secret against its row). */
void cipher_sign_seed_keypair(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                              uint8_t sk[CIPHER_SIGN_SK_BYTES],
                              const uint8_t seed[CIPHER_KEY_BYTES]);
void cipher_box_seed_keypair(uint8_t pk[CIPHER_BOX_PK_BYTES],
                             uint8_t sk[CIPHER_BOX_SK_BYTES],
                             const uint8_t seed[CIPHER_KEY_BYTES]);
void cipher_sign_public(uint8_t pk[CIPHER_SIGN_PK_BYTES],
                        const uint8_t sk[CIPHER_SIGN_SK_BYTES]);
void cipher_box_public(uint8_t pk[CIPHER_BOX_PK_BYTES],
                       const uint8_t sk[CIPHER_BOX_SK_BYTES]);
void cipher_sign(uint8_t sig[CIPHER_SIG_BYTES], const uint8_t *msg,
                 size_t len, const uint8_t sk[CIPHER_SIGN_SK_BYTES]);
/* Returns 0 if sig is valid for msg under pk, -EBADMSG otherwise. */
int cipher_sign_verify(const uint8_t sig[CIPHER_SIG_BYTES],
                       const uint8_t *msg, size_t len,
                       const uint8_t pk[CIPHER_SIGN_PK_BYTES]);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void cipher_hex(char *out, const uint8_t *in, size_t len);
/* Parse exactly 2*len hex digits: 0, or -EINVAL. */
int cipher_unhex(uint8_t *out, size_t len, const char *hex);

#endif
