#!/usr/bin/env bash
# The rest of the Linux file API on a real mount (issue 17): fallocate in
# each mode (what it stores, what it refuses, what check and the trail
# say, a row planted past EOF), SEEK_DATA/SEEK_HOLE from the stored blocks
# (cp --sparse=auto of a 5 GiB file, the generic answer where the kernel
# may hold dirty pages), copy_file_range inside the daemon (one audit row
# naming both files, found by --op read/write; blocks sealed under the
# target's keys), and POSIX ACLs enforced by the kernel for real uids on
# an allow_other mount (setfacl -m g:GROUP:rx, default ACLs, cp -a, tar
# --acls, chmod and the mask, remount, -o noacl).
. "$(dirname "$0")/../lib.sh"

# ino FILE; blocks FILE: its stored block rows (fsync first: it commits)
ino() { stat -c %i "$1"; }
blocks() { sync "$1"; q "SELECT count(*) FROM blocks WHERE ino=$(ino "$1")"; }
py() { python3 -c "$@"; }
# seek FILE OFF data|hole: the answer, or the errno name
seek() {
	py "import os,sys,errno
fd=os.open(sys.argv[1],os.O_RDONLY)
try: print(os.lseek(fd,int(sys.argv[2]),os.SEEK_DATA if sys.argv[3]=='data' else os.SEEK_HOLE))
except OSError as e: print(errno.errorcode[e.errno])" "$@"
}
# errno_of CMD...: the errno name a python statement raises, or OK
errno_of() { py "import os,errno
try:
    $1
    print('OK')
except OSError as e: print(errno.errorcode[e.errno])"; }
# falloc FILE MODE OFF LEN: fallocate(2) with a raw mode: OK or the errno
# name (python calls EOPNOTSUPP by its alias ENOTSUP)
falloc() {
	py "import os,sys,ctypes,errno
l=ctypes.CDLL(None,use_errno=True)
fd=os.open(sys.argv[1],os.O_RDWR)
r=l.fallocate(fd,int(sys.argv[2]),ctypes.c_long(int(sys.argv[3])),ctypes.c_long(int(sys.argv[4])))
print('OK' if r==0 else errno.errorcode[ctypes.get_errno()])" "$@"
}

t_setup
check "mount" t_mount
cd "$MNT" || exit 1

# ---- fallocate ----
echo hello > pre
check "fallocate -l 1G (mode 0)" fallocate -l 1G pre
expect_eq "mode 0 sets the size" 1073741824 "$(stat -c %s pre)"
expect_eq "mode 0 stores no block for the range" 1 "$(blocks pre)"
expect_eq "the old data is still there" "hello" "$(head -c 5 pre)"
expect_eq "the range reads zeros" "0000000000000000" \
	"$(dd if=pre bs=1 skip=100000000 count=8 status=none | od -An -tx1 | tr -d ' \n')"
s0=$(date +%s%N); fallocate -l 4G pre4; s1=$(date +%s%N)
check "fallocate -l 4G takes well under a second" test $(((s1 - s0) / 1000000)) -lt 500
check "fallocate -n (KEEP_SIZE) past EOF" fallocate -n -o 1G -l 1M pre
expect_eq "KEEP_SIZE keeps the size" 1073741824 "$(stat -c %s pre)"
expect_eq "KEEP_SIZE stores nothing either" 1 "$(blocks pre)"
check_not "fallocate beyond the backing filesystem's room: refused" fallocate -l 1P huge
expect_eq "... with ENOSPC" ENOSPC "$(errno_of "fd=os.open('huge',os.O_RDWR|os.O_CREAT); os.posix_fallocate(fd,0,1<<50)")"
expect_eq "... and nothing changed" 0 "$(stat -c %s huge)"
head -c 1M /dev/urandom > data
cp data "$T/ref"
i=$(ino data)
expect_eq "a 1 MiB file has 256 blocks" 256 "$(blocks data)"
check "punch a hole (whole and partial blocks)" fallocate -p -o 10000 -l 100000 data
expect_eq "punch keeps the size" 1048576 "$(stat -c %s data)"
# blocks 3..25 lie whole inside [10000, 110000): gone; 2 and 26 are
# zeroed in place
expect_eq "the whole blocks are deleted" 233 "$(blocks data)"
dd if=/dev/zero of="$T/ref" bs=1 seek=10000 count=100000 conv=notrunc status=none
expect_eq "content after punching" "$(md5sum < "$T/ref")" "$(md5sum < data)"
check "zero a range past EOF" fallocate -z -o 1040000 -l 20000 data
expect_eq "zero range extends the size" 1060000 "$(stat -c %s data)"
expect_eq "the zeroed range reads zeros" "$(head -c 20000 /dev/zero | md5sum)" \
	"$(tail -c 20000 data | md5sum)"
expect_eq "zero range: blocks 254 and 255 deleted, 253 zeroed in place" 231 "$(blocks data)"
expect_eq "collapse range: EOPNOTSUPP" ENOTSUP "$(falloc data 8 0 4096)"
expect_eq "insert range: EOPNOTSUPP" ENOTSUP "$(falloc data 32 0 4096)"
expect_eq "punch without KEEP_SIZE: EOPNOTSUPP" ENOTSUP "$(falloc data 2 0 4096)"
expect_eq "length 0: EINVAL" EINVAL "$(falloc data 0 0 0)"
expect_eq "a directory: EISDIR or EBADF" EBADF \
	"$(errno_of "fd=os.open('.',os.O_RDONLY); os.posix_fallocate(fd,0,10)")"
printf 'tiny' > keep
check "KEEP_SIZE on a small file" fallocate -n -l 1M keep
i_keep=$(ino keep)
sync
cd / || exit 1
sleep 1.2 # the group commit
expect_eq "fallocate, punch_hole and zero_range rows in the trail" "fallocate punch_hole zero_range" \
	"$(ctl audit list --json | jq -r '[.[] | select(.op == "fallocate" or .op == "punch_hole" or .op == "zero_range") | .op] | unique | join(" ")')"
expect_eq "the punch row has its offset and length" "10000 100000" \
	"$(ctl audit list --op punch_hole --json | jq -r '.[0] | "\(.offset) \(.length)"')"
check "unmount" t_umount
expect_status "check after fallocate, punch and zero range" 0 ctl check
# a row planted past the end of the preallocated file is no part of it
k=$i_keep
q "INSERT INTO blocks SELECT ino, 100, key_version, data FROM blocks WHERE ino=$k AND blk=0"
expect_status "a block planted past EOF: check exit 4" 4 ctl check
check "check names it as not part of the signed file" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' check 2>&1 | grep -q 'not part of the signed file'"
q "DELETE FROM blocks WHERE ino=$k AND blk=100"
expect_status "removed again: check clean" 0 ctl check
check "remount" t_mount
cd "$MNT" || exit 1

# ---- SEEK_DATA / SEEK_HOLE ----
truncate -s 5G sparse
head -c 1M /dev/urandom | dd of=sparse bs=1M seek=3072 conv=notrunc status=none
expect_eq "SEEK_DATA from 0" 3221225472 "$(seek sparse 0 data)"
expect_eq "SEEK_HOLE from 0" 0 "$(seek sparse 0 hole)"
expect_eq "SEEK_HOLE inside the data" 3222274048 "$(seek sparse 3221225473 hole)"
expect_eq "SEEK_DATA in the final hole: ENXIO" ENXIO "$(seek sparse 3222274048 data)"
expect_eq "SEEK_HOLE at EOF: ENXIO" ENXIO "$(seek sparse 5368709120 hole)"
s0=$(date +%s%N)
cp --sparse=auto sparse sparse2
s1=$(date +%s%N)
ms=$(((s1 - s0) / 1000000))
t_log "cp --sparse=auto of a 5 GiB file with 1 MiB of data: $ms ms"
check "cp --sparse=auto 5 GiB with 1 MiB of data: under a second ($ms ms)" test "$ms" -lt 1000
expect_eq "the copy stores only the data (256 blocks)" 256 "$(blocks sparse2)"
expect_eq "the copy reads the same" "$(dd if=sparse bs=1M skip=3072 count=1 status=none | md5sum)" \
	"$(dd if=sparse2 bs=1M skip=3072 count=1 status=none | md5sum)"
expect_eq "the copy's size" 5368709120 "$(stat -c %s sparse2)"
# a handle open for writing (a writable mmap may hold dirty pages): the
# generic answer, all data
exec 7<>sparse
expect_eq "with a writer open: SEEK_DATA says data at once" 0 "$(seek sparse 0 data)"
expect_eq "with a writer open: SEEK_HOLE says EOF" 5368709120 "$(seek sparse 0 hole)"
exec 7>&-
expect_eq "writer closed: exact again" 3221225472 "$(seek sparse 0 data)"

# ---- copy_file_range ----
head -c 3000000 /dev/urandom > csrc
expect_eq "copy_file_range copies (at most 16 MiB a call)" 3000000 \
	"$(py "import os; a=os.open('csrc',os.O_RDONLY); b=os.open('cdst',os.O_WRONLY|os.O_CREAT,0o644); print(os.copy_file_range(a,b,10000000))")"
expect_eq "the copy equals the source" "$(md5sum < csrc)" "$(md5sum < cdst)"
expect_eq "copy with offsets" 5000 \
	"$(py "import os; a=os.open('csrc',os.O_RDONLY); b=os.open('cdst',os.O_WRONLY); print(os.copy_file_range(a,b,5000,100,4000000))")"
expect_eq "... as read + write" "$(dd if=csrc bs=1 skip=100 count=5000 status=none | md5sum)" \
	"$(dd if=cdst bs=1 skip=4000000 count=5000 status=none | md5sum)"
expect_eq "... the gap reads zeros" "$(head -c 1000000 /dev/zero | md5sum)" \
	"$(dd if=cdst bs=1000000 skip=3 count=1 status=none | md5sum)"
# a source with holes: zero blocks stay holes in the target
truncate -s 8M holey; printf 'x' | dd of=holey bs=1 seek=6000000 conv=notrunc status=none
py "import os; a=os.open('holey',os.O_RDONLY); b=os.open('holey2',os.O_WRONLY|os.O_CREAT,0o644)
n=0
while True:
    r=os.copy_file_range(a,b,1<<30)
    if r<=0: break"
expect_eq "copying a sparse source: one block stored" 1 "$(blocks holey2)"
expect_eq "... and the same content" "$(md5sum < holey)" "$(md5sum < holey2)"
cp csrc ccp
expect_eq "cp inside the mount" "$(md5sum < csrc)" "$(md5sum < ccp)"
# long copies: requests of several pieces (the daemon pipelines them),
# zero blocks among the data (holes in the target), an unaligned source,
# an unaligned target and a tail, each as the same calls on a plain
# directory give them
P=$T/plain; mkdir -p "$P"
py "import random
b=bytearray(random.Random(7).randbytes(40*1048576+12345))
b[5*65536:6*65536]=bytes(65536); b[480*65536:483*65536]=bytes(3*65536)
open('$P/lsrc','wb').write(b)"
cp "$P/lsrc" lsrc
copies='import os,sys
d=sys.argv[1]
def cfr(t,n,oi,oo):
    a=os.open(d+"/lsrc",os.O_RDONLY); b=os.open(d+"/"+t,os.O_WRONLY|os.O_CREAT,0o644)
    done=0
    while done<n:
        r=os.copy_file_range(a,b,n-done,oi+done,oo+done)
        if r<=0: break
        done+=r
    print(t,done)
cfr("l1",1<<40,0,0)
cfr("l2",30000000,100,0)
cfr("l3",30000000,0,777)
cfr("l4",20000000,65536*3+5,65536*7+5)'
expect_eq "long copies copy what they do on a plain directory" "$(py "$copies" "$P")" "$(py "$copies" "$PWD")"
for f in l1 l2 l3 l4; do
	expect_eq "long copy $f reads as on a plain directory" "$(md5sum < "$P/$f")" "$(md5sum < $f)"
done
expect_eq "the zero blocks of a long copy are holes, the rest stored" \
	"$(py "import os
bs=os.stat('l1').st_blksize; b=open('$P/l1','rb').read()
print(sum(1 for i in range(0,len(b),bs) if b[i:i+bs].count(0)!=len(b[i:i+bs])))")" "$(blocks l1)"
cd / || exit 1
sleep 1.2
n=$(ctl audit list --op copy_file_range --json | jq '[.[] | select(.path == "/csrc -> /cdst")] | length')
expect_eq "one copy row for the first copy, naming both files" 1 "$n"
expect_eq "a copy with another source offset says so" "/csrc@100 -> /cdst 4000000 5000" \
	"$(ctl audit list --op copy_file_range --json | jq -r '.[] | select(.path | startswith("/csrc@")) | "\(.path) \(.offset) \(.length)"')"
check "audit list --op read finds the copy" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --op read | grep -q '/csrc -> /cdst'"
check "audit list --op write finds the copy" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --op write | grep -q '/csrc -> /cdst'"
check "audit list --path finds the copy by its target" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --op copy_file_range --path /cdst | grep -q '/csrc -> /cdst'"
check "cp used copy_file_range (a copy row names ccp)" \
	sh -c "'$CUSTODYCTL' -s '$STORE' -u admin -c '$CONF' --passfile '$PASSFILE' audit list --op copy_file_range | grep -q '/csrc -> /ccp'"
expect_eq "seek rows are recorded" "seek_data seek_hole" \
	"$(ctl audit list --json | jq -r '[.[] | select(.op | startswith("seek_")) | .op] | unique | join(" ")')"
check "unmount" t_umount
expect_status "check after the copies" 0 ctl check
expect_status "the trail verifies" 0 ctl audit verify
# the copy was sealed under the target's keys: the source's own sealed
# block put in its place does not open there
s=$(q "SELECT ino FROM inodes WHERE size=3000000 ORDER BY ino LIMIT 1")
d=$(q "SELECT ino FROM inodes WHERE size=4005000")
expect_eq "source and target blocks differ as stored" 0 \
	"$(q "SELECT count(*) FROM blocks a JOIN blocks b ON a.blk=b.blk WHERE a.ino=$s AND b.ino=$d AND a.data=b.data")"
q "UPDATE blocks SET data=(SELECT data FROM blocks WHERE ino=$s AND blk=0) WHERE ino=$d AND blk=0"
check "mount" t_mount
check_not "the source's block in the target: EIO" head -c 10 "$MNT/cdst"
check "unmount" t_umount
expect_status "check names it" 4 ctl check

# ---- POSIX ACLs with real uids on an allow_other mount ----
t_setup
chmod 711 "$T"
STAFF=61000
# the admin makes each passfile (its own), then hands it to its uid
pf staffer staffer-passphrase
pf outsider outsider-passphrase
check "store user staffer" ctl user add staffer --role writer --new-passfile "$T/staffer.pass"
check "store user outsider" ctl user add outsider --role writer --new-passfile "$T/outsider.pass"
chown 61001 "$T/staffer.pass"; chown 61002 "$T/outsider.pass"
check "mount -o allow_other" t_mount -o allow_other
# run_as UID GROUPS CMD...: a real uid (with those groups) runs CMD
run_as() { local u=$1 g=$2; shift 2; setpriv --reuid="$u" --regid="${g%%,*}" --groups="$g" "$@"; }
login_as() { run_as "$1" "$2" env XDG_STATE_HOME="$T/state-$1" "$CUSTODYCTL" -u "$3" -c "$CONF" \
	--passfile "$T/$3.pass" login -m "$MNT" >/dev/null; }
check "uid 61001 (in group $STAFF) logs in as staffer" login_as 61001 "$STAFF,61001" staffer
check "uid 61002 (not in it) logs in as outsider" login_as 61002 61002 outsider
mkdir "$MNT/proj"; echo plan > "$MNT/proj/plan"
chmod 750 "$MNT/proj"; chmod 640 "$MNT/proj/plan"
check_not "before the ACL: the staff member is out" run_as 61001 "$STAFF,61001" ls "$MNT/proj"
check "setfacl -m g:$STAFF:rx dir" setfacl -m "g:$STAFF:rx" "$MNT/proj"
check "setfacl -m g:$STAFF:r file" setfacl -m "g:$STAFF:r" "$MNT/proj/plan"
expect_eq "getfacl shows the entry and the mask" "group:$STAFF:r-x mask::r-x" \
	"$(getfacl -n -p "$MNT/proj" 2>/dev/null | grep -E "^(group:$STAFF|mask)" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "ls -l shows the ACL" "drwxr-x---+" "$(ls -ld "$MNT/proj" | cut -c1-11)"
check "the staff member lists the dir" run_as 61001 "$STAFF,61001" ls "$MNT/proj"
expect_eq "the staff member reads the file" plan "$(run_as 61001 "$STAFF,61001" cat "$MNT/proj/plan" 2>&1)"
check_not "r-x: the staff member cannot create there" run_as 61001 "$STAFF,61001" touch "$MNT/proj/new"
check_not "the outsider is kept out" run_as 61002 61002 ls "$MNT/proj"
check_not "the outsider cannot read the file" run_as 61002 61002 cat "$MNT/proj/plan"
check "chmod 700 the dir" chmod 700 "$MNT/proj"
expect_eq "chmod sets the mask, the entry stays" "group:$STAFF:r-x	#effective:--- mask::---" \
	"$(getfacl -n -p "$MNT/proj" 2>/dev/null | grep -E "^(group:$STAFF|mask)" | tr '\n' ' ' | sed 's/ $//')"
check_not "masked out: the staff member is out" run_as 61001 "$STAFF,61001" ls "$MNT/proj"
check "chmod 750 again" chmod 750 "$MNT/proj"
check "and in again" run_as 61001 "$STAFF,61001" ls "$MNT/proj"
# default ACL: what staff members create there stays theirs
mkdir "$MNT/share"; chmod 770 "$MNT/share"
check "setfacl -m g:$STAFF:rwx" setfacl -m "g:$STAFF:rwx" "$MNT/share"
check "setfacl -d -m g:$STAFF:rwx" setfacl -d -m "g:$STAFF:rwx" "$MNT/share"
check "the staff member creates a file (umask 077)" run_as 61001 "$STAFF,61001" sh -c "umask 077; echo mine > '$MNT/share/doc'"
expect_eq "the default ACL replaced the umask" "-rw-rw----" "$(stat -c %A "$MNT/share/doc")"
expect_eq "the new file inherited the group entry" "group:$STAFF:rwx	#effective:rw-" \
	"$(getfacl -n -p "$MNT/share/doc" 2>/dev/null | grep "^group:$STAFF")"
check "the staff member makes a subdirectory" run_as 61001 "$STAFF,61001" mkdir "$MNT/share/sub"
expect_eq "the subdirectory inherits the default ACL" "default:group:$STAFF:rwx" \
	"$(getfacl -n -p "$MNT/share/sub" 2>/dev/null | grep "^default:group:$STAFF")"
check_not "the outsider cannot read it" run_as 61002 61002 cat "$MNT/share/doc"
# cp -a and tar --acls keep them
check "cp -a keeps ACLs" cp -a "$MNT/proj" "$MNT/proj-copy"
expect_eq "cp -a: the same ACL" "$(getfacl -n -p "$MNT/proj" 2>/dev/null | tail -n +2)" \
	"$(getfacl -n -p "$MNT/proj-copy" 2>/dev/null | tail -n +2)"
check "tar --acls out" tar --acls -cf "$T/share.tar" -C "$MNT" share
mkdir "$MNT/untar"
check "tar --acls in" tar --acls -xf "$T/share.tar" -C "$MNT/untar"
expect_eq "tar --acls: the same ACLs" "$(cd "$MNT" && getfacl -R -n -p share 2>/dev/null)" \
	"$(cd "$MNT/untar" && getfacl -R -n -p share 2>/dev/null)"
if command -v rsync >/dev/null; then
	check "rsync -A keeps ACLs" rsync -aA "$MNT/share/" "$MNT/share-rsync/"
	expect_eq "rsync -A: the same ACL" "$(getfacl -n -p "$MNT/share/doc" | tail -n +2)" \
		"$(getfacl -n -p "$MNT/share-rsync/doc" | tail -n +2)"
fi
before=$(cd "$MNT" && getfacl -R -n -p . 2>/dev/null)
check "unmount" t_umount
expect_status "check with ACLs" 0 ctl check
# an ACL is a sealed xattr under the inode's digest: swapping two files'
# rows is caught
i1=$(q "SELECT ino FROM xattrs ORDER BY ino LIMIT 1")
i2=$(q "SELECT ino FROM xattrs WHERE ino > $i1 ORDER BY ino LIMIT 1")
check "mount again" t_mount -o allow_other
after=$(cd "$MNT" && getfacl -R -n -p . 2>/dev/null)
expect_eq "ACLs survive a remount" "$before" "$after"
check "-o noacl: unmount" t_umount
check "-o noacl: mount" t_mount -o noacl
check_not "-o noacl: setfacl refused" setfacl -m u:1234:r "$MNT/proj/plan"
check_not "-o noacl: the stored ACL is not offered" sh -c "getfattr -m - '$MNT/proj' 2>/dev/null | grep -q posix_acl"
check "-o noacl: unmount" t_umount
q "UPDATE xattrs SET ino=-ino WHERE ino=$i1; UPDATE xattrs SET ino=$i1 WHERE ino=$i2; UPDATE xattrs SET ino=$i2 WHERE ino=-$i1"
expect_status "ACL rows swapped between two files: check exit 4" 4 ctl check
t_finish
