/*
 * bytes.h - little-endian integers and bounded record encoding.
 *
 * Every byte string custodyfs hashes, signs or MACs (rows, records, tree
 * nodes, associated data) is built from these, so the byte order lives in
 * one place. struct wbuf writes into a caller's buffer and struct rbuf reads
 * a record from the store; both stop at the end of their buffer and set
 * `err` instead of overrunning it, so a parser of hostile bytes checks one
 * flag at the end (rbuf_done) rather than every length on the way.
 */
#ifndef CUSTODY_BYTES_H
#define CUSTODY_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* A writer into buf[cap]: err is set once something did not fit. */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static inline void wbuf_init(struct wbuf *w, void *buf, size_t cap)
{
	w->p = buf;
	w->len = 0;
	w->cap = cap;
	w->err = 0;
}

static inline uint8_t *wbuf_room(struct wbuf *w, size_t n)
{
	uint8_t *at;

	if (w->err || n > w->cap - w->len) {
		w->err = 1;
		return NULL;
	}
	at = w->p + w->len;
	w->len += n;
	return at;
}

static inline void wbuf_bytes(struct wbuf *w, const void *src, size_t n)
{
	uint8_t *at = wbuf_room(w, n);
	if (at && n)
		memcpy(at, src, n);
}

static inline void wbuf_u8(struct wbuf *w, uint8_t v)
{
	wbuf_bytes(w, &v, 1);
}

static inline void wbuf_u16(struct wbuf *w, uint16_t v)
{
	uint8_t *at = wbuf_room(w, 2);
	if (at)
		put_le16(at, v);
}

static inline void wbuf_u32(struct wbuf *w, uint32_t v)
{
	uint8_t *at = wbuf_room(w, 4);
	if (at)
		put_le32(at, v);
}

static inline void wbuf_u64(struct wbuf *w, uint64_t v)
{
	uint8_t *at = wbuf_room(w, 8);
	if (at)
		put_le64(at, v);
}

/* A short string: one length byte (so at most 255 bytes), then the bytes. */
static inline void wbuf_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);

	if (n > 255) {
		w->err = 1;
		return;
	}
	wbuf_u8(w, (uint8_t)n);
	wbuf_bytes(w, s, n);
}

/* A reader of len bytes at p: err is set on the first read past the end. */
struct rbuf {
	const uint8_t *p;
	size_t len, pos;
	int err;
};

static inline void rbuf_init(struct rbuf *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->err = 0;
}

static inline const uint8_t *rbuf_take(struct rbuf *r, size_t n)
{
	const uint8_t *at;

	if (r->err || n > r->len - r->pos) {
		r->err = 1;
		return NULL;
	}
	at = r->p + r->pos;
	r->pos += n;
	return at;
}

static inline void rbuf_bytes(struct rbuf *r, void *dst, size_t n)
{
	const uint8_t *at = rbuf_take(r, n);

	if (at)
		memcpy(dst, at, n);
	else
		memset(dst, 0, n);
}

static inline uint8_t rbuf_u8(struct rbuf *r)
{
	const uint8_t *at = rbuf_take(r, 1);
	return at ? *at : 0;
}

static inline uint16_t rbuf_u16(struct rbuf *r)
{
	const uint8_t *at = rbuf_take(r, 2);
	return at ? get_le16(at) : 0;
}

static inline uint32_t rbuf_u32(struct rbuf *r)
{
	const uint8_t *at = rbuf_take(r, 4);
	return at ? get_le32(at) : 0;
}

static inline uint64_t rbuf_u64(struct rbuf *r)
{
	const uint8_t *at = rbuf_take(r, 8);
	return at ? get_le64(at) : 0;
}

/* A string written by wbuf_str into buf[cap] (NUL-terminated); a string
 * that does not fit, or holds a NUL, sets err. */
static inline void rbuf_str(struct rbuf *r, char *buf, size_t cap)
{
	size_t n = rbuf_u8(r);
	const uint8_t *at = rbuf_take(r, n);

	buf[0] = 0;
	if (!at)
		return;
	if (n >= cap || memchr(at, 0, n)) {
		r->err = 1;
		return;
	}
	memcpy(buf, at, n);
	buf[n] = 0;
}

/* 1 if the whole record was read without error and nothing is left. */
static inline int rbuf_done(const struct rbuf *r)
{
	return !r->err && r->pos == r->len;
}

#endif
