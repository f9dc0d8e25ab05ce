#!/usr/bin/python3
"""passfd.py - a hand-made custodyctl login client for tests/mount/test_multiuser.sh.

Speaks the login socket's protocol (include/keys/handover.h, src/keys/handover.c)
itself, so a test can send what custodyctl never would:

  passfd.py path MOUNTPOINT
      the socket of the mount at MOUNTPOINT (canonical):
      /run/custodyfs/<hex of the first 16 bytes of BLAKE2b-256(point)>.sock
  passfd.py login SOCK NAME PASSFILE [--claim-uid U] [--claim-gid G] [--claim-pid P]
      connect, send a login request for store user NAME with the passphrase
      of PASSFILE (first line) and SCM_CREDENTIALS: our own pid/uid/gid, or
      the ones claimed
  passfd.py pass SOCK NAME PASSFILE UID_A GID_A UID_B GID_B [--no-cred] [--claim-a]
      (as root) a child running as A connects and hands the connected socket
      to us over a socketpair (SCM_RIGHTS); we drop to B and send the login
      request on it: with B's own SCM_CREDENTIALS, none at all (--no-cred:
      the kernel attaches B's, the daemon asked for them with SO_PASSCRED),
      or claiming A's uid and gid (--claim-a)

Prints one line, "status N: MESSAGE" (the daemon's answer), and exits N;
a sendmsg refused by the kernel prints "sendmsg: ERRNONAME" and exits 100;
no answer / a broken answer exits 101; other setup errors exit 102.
"""
import errno
import hashlib
import os
import socket
import struct
import sys

MAGIC = b"CFH1"
LOGIN = 1
DIR = "/run/custodyfs"


def sock_path(point):
    h = hashlib.blake2b(point.encode(), digest_size=32).digest()
    return "%s/%s.sock" % (DIR, h[:16].hex())


def request(name, passphrase, idle=0, maxage=0):
    n = name.encode()
    return (MAGIC + struct.pack("<BB", LOGIN, len(n)) + n +
            struct.pack("<IIH", idle, maxage, len(passphrase)) + passphrase)


def read_pass(path):
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\r\n")


def send_and_answer(s, req, cred):
    anc = []
    if cred is not None:
        anc = [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                struct.pack("iII", *cred))]
    try:
        s.sendmsg([req], anc)
    except OSError as e:
        print("sendmsg: %s" % errno.errorcode.get(e.errno, str(e.errno)))
        return 100
    try:
        ans = s.recv(4096)
    except OSError as e:
        print("recv: %s" % errno.errorcode.get(e.errno, str(e.errno)))
        return 101
    if len(ans) < 7 or ans[:4] != MAGIC:
        print("bad answer: %r" % ans[:64])
        return 101
    status = ans[4]
    (mlen,) = struct.unpack("<H", ans[5:7])
    print("status %d: %s" % (status, ans[7:7 + mlen].decode(errors="replace")))
    return status


def drop(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return int(v)
    return default


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 102
    mode, args = argv[1], argv[2:]
    if mode == "path" and len(args) == 1:
        print(sock_path(args[0]))
        return 0
    if mode == "login":
        cu = opt(args, "--claim-uid", os.getuid())
        cg = opt(args, "--claim-gid", os.getgid())
        cp = opt(args, "--claim-pid", os.getpid())
        if len(args) != 3:
            return 102
        path, name, passfile = args
        req = request(name, read_pass(passfile))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        return send_and_answer(s, req, (cp, cu, cg))
    if mode == "pass":
        no_cred = "--no-cred" in args
        claim_a = "--claim-a" in args
        args = [a for a in args if a not in ("--no-cred", "--claim-a")]
        if len(args) != 7:
            return 102
        path, name, passfile = args[:3]
        ua, ga, ub, gb = (int(x) for x in args[3:])
        req = request(name, read_pass(passfile))
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            # A: connect to the daemon, hand the connection over, go away
            try:
                here.close()
                drop(ua, ga)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.connect(path)
                socket.send_fds(there, [b"x"], [s.fileno()])
                os._exit(0)
            except Exception as e:  # noqa: BLE001 - report and fail
                print("A: %s" % e, file=sys.stderr)
                os._exit(1)
        there.close()
        _, fds, _, _ = socket.recv_fds(here, 16, 1)
        _, st = os.waitpid(pid, 0)
        if not fds or os.waitstatus_to_exitcode(st) != 0:
            print("the connecting process (uid %d) failed" % ua)
            return 102
        s = socket.socket(fileno=fds[0])
        drop(ub, gb)
        if os.getuid() != ub or os.geteuid() != ub:
            return 102
        cred = None if no_cred else (os.getpid(), ua, ga) if claim_a \
            else (os.getpid(), ub, gb)
        return send_and_answer(s, req, cred)
    print(__doc__, file=sys.stderr)
    return 102


if __name__ == "__main__":
    sys.exit(main(sys.argv))
