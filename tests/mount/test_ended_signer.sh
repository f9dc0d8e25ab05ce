#!/usr/bin/env bash
# A mount whose own session ends while it runs (its user revoked) signs
# nothing more: its key is wiped and its user may no longer sign. Deleted
# data still queued for purge when the revocation lands must not be
# purged in commits signed by that session (each would break the chain
# for everyone: the revocation's re-encryption stops with EIO, check and
# audit verify report tampering, a host that never saw the store refuses
# it). The queue is left for the next mount, which finishes it.
. "$(dirname "$0")/../lib.sh"
t_setup

pf bob bob-passphrase
expect_status "add writer bob" 0 ctl user add bob --role writer --new-passfile "$T/bob.pass"
check "bob mounts" mount_as bob
BPID=$(t_pid)
mkdir "$MNT/bob"
# big enough that its purge (16 MiB a batch) is still running when the
# revocation lands; statfs requests keep the daemon busy meanwhile, so it
# purges one batch a tick instead of back to back
head -c $((384 << 20)) /dev/zero > "$MNT/bob/big"
sync "$MNT/bob/big"
( while stat -f "$MNT" > /dev/null 2>&1; do :; done ) &
BUSY=$!
rm "$MNT/bob/big"
for _ in $(seq 100); do [ "$(q 'SELECT count(*) FROM purge')" != 0 ] && break; sleep 0.05; done
QUEUED=$(q 'SELECT count(*) FROM blocks')
ctl user revoke bob > "$T/revoke.out" 2>&1
expect_eq "user revoke bob while his mount purges: exit 0 ($(tail -n 1 "$T/revoke.out"))" 0 "$?"
kill "$BUSY" 2>/dev/null; wait "$BUSY" 2>/dev/null
for _ in $(seq 300); do
	st=$(awk '{ print $3 }' "/proc/$BPID/stat" 2>/dev/null) || break
	[ "$st" = Z ] && break
	sleep 0.1
done
check "bob's mount ended" sh -c "! grep -q ' $MNT fuse' /proc/mounts || fusermount3 -u -z '$MNT'"
[ "$QUEUED" != 0 ] || t_log "the purge was over before the revocation: nothing tested below (raise the size)"
expect_eq "the purge had blocks left when the revocation began" 1 "$([ "$QUEUED" != 0 ] && echo 1 || echo 0)"
t_expect_out "audit verify: the chain holds" 0 ctl audit verify
expect_status "check: clean" 0 ctl check
rm -rf "$T/state" # a host that never saw the store
check "an admin on a fresh host mounts" t_mount
check "and writes" sh -c "echo after > '$MNT/after.txt'"
for _ in $(seq 100); do [ "$(q 'SELECT count(*) FROM purge')" = 0 ] && break; sleep 0.1; done
expect_eq "the next mount finished the purge" "0 0" "$(q 'SELECT count(*) FROM purge') $(q 'SELECT count(*) FROM blocks WHERE ino NOT IN (SELECT ino FROM inodes)')" 
check "unmount" t_umount
expect_status "check after: clean" 0 ctl check
t_finish
