/*
 * wire.h - the FUSE device under libfuse (src/fuse/wire.c): the one
 * capability libfuse 3.14 cannot negotiate (FUSE_HANDLE_KILLPRIV_V2) and
 * the per-request flags that come with it.
 */
#ifndef CUSTODY_WIRE_H
#define CUSTODY_WIRE_H

#include <stdint.h>

struct fuse_session;

/* Read and write the session's device through wire.c (after
 * fuse_session_mount, before the loop); killpriv_v2: offer the kernel to
 * clear set-user-ID, set-group-ID and file capabilities ourselves;
 * spin_us: how long a worker polls the device after a reply before it
 * sleeps (0: never). 0 or -errno (the session then keeps libfuse's own
 * I/O). */
int wire_attach(struct fuse_session *se, int killpriv_v2, uint32_t spin_us);

/* 1 when the INIT reply offers FUSE_HANDLE_KILLPRIV_V2 (the kernel
 * offered it, we want it): from the init handler on, before the reply */
int wire_killpriv_v2(void);

/* 1 when the request this thread serves carries the kernel's "the caller
 * lacks CAP_FSETID: clear set-user-ID/set-group-ID" bit (WRITE, and OPEN
 * and CREATE with O_TRUNC; SETATTR's libfuse passes on itself) */
int wire_kill(void);

#endif
