#!/usr/bin/env bash
# READDIRPLUS and the kernel's lookup counts: an entry the daemon returns
# with attributes is a lookup only when the kernel gets it. A file removed
# after a listing must be freed (inode row, blocks) while still mounted:
#   (a) a plain listing, then rm: the listing's lookup is forgotten with
#       the file, which is freed
#   (b) a listing answered with EIO (a signed entry of the directory was
#       deleted with sqlite3: "signed entries are missing"): the kernel
#       linked nothing, so the entries it was sent count no lookup; a file
#       of that directory removed afterwards is freed as in (a), not kept
#       (blocks and all) until the unmount
#   (c) the kernel forgetting the entries a listing gave it (its caches
#       dropped) is no change: no group transaction, no commit
. "$(dirname "$0")/../lib.sh"
t_setup

# freed_within INO: 0 when inode INO has no row and no block within 10 s
freed_within() {
	for _ in $(seq 100); do
		[ "$(q "SELECT (SELECT count(*) FROM inodes WHERE ino=$1) +
		             (SELECT count(*) FROM blocks WHERE ino=$1)")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

check "mount" t_mount
mkdir "$MNT/a" "$MNT/b"
for d in a b; do
	head -c $((256 << 10)) /dev/urandom > "$MNT/$d/f"
	printf 'other\n' > "$MNT/$d/g"
done
FA=$(stat -c %i "$MNT/a/f"); FB=$(stat -c %i "$MNT/b/f"); GB=$(stat -c %i "$MNT/b/g")
check "unmount" t_umount

# ---- (a) a listing, then rm ----
check "mount again (cold: the kernel holds nothing)" t_mount
expect_eq "(a) the listing" "f g" "$(ls "$MNT/a" | tr '\n' ' ' | sed 's/ $//')"
check "(a) rm a/f" rm "$MNT/a/f"
check "(a) a/f is freed while mounted (no inode row, no block)" freed_within "$FA"
check "unmount" t_umount

# ---- (b) a listing that ends in EIO, then rm ----
q "DELETE FROM dentries WHERE ino=$GB"
check "mount with b/g's entry deleted" t_mount
check_not "(b) listing b/ fails (a signed entry is missing)" ls "$MNT/b"
check_not "(b) and again" ls "$MNT/b"
check "(b) b/f itself still reads" cmp -s "$MNT/b/f" "$MNT/b/f"
check "(b) rm b/f" rm "$MNT/b/f"
check "(b) b/f is freed while mounted (no inode row, no block)" freed_within "$FB"
check "unmount" t_umount
expect_eq "(b) nothing of b/f after the unmount either" 0 \
	"$(q "SELECT (SELECT count(*) FROM inodes WHERE ino=$FB) + (SELECT count(*) FROM blocks WHERE ino=$FB)")"

# ---- (c) the kernel forgets the listed entries ----
check "mount for (c)" t_mount
ls -l "$MNT/a" > /dev/null
sleep 2.5 # the listing's opendir row is committed
S1=$(q 'SELECT max(seq) FROM ledger')
sync
echo 2 > /proc/sys/vm/drop_caches # the kernel evicts (FORGETs) what it holds
sleep 2.5
expect_eq "(c) FORGETs of linked files write no commit" "$S1" "$(q 'SELECT max(seq) FROM ledger')"
check "unmount" t_umount

t_finish
