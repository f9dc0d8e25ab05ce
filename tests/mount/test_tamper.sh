#!/usr/bin/env bash
# Tampering with an unmounted store (sqlite3 CLI, dd): flipped, swapped,
# moved and deleted block rows, edited inode and dentry rows, edited
# xattrs, random bytes in the file. Each group of edits runs on a fresh
# copy of one pristine store, each edit on its own file(s). Every damaged
# object must fail with EIO while every other file reads back exactly; the
# daemon never crashes: it stays mounted, `ls` works, and it destroys
# nothing (the damaged rows are still there after unmount, for check);
# or, for random bytes, it refuses to mount with one clear line.
. "$(dirname "$0")/../lib.sh"
t_setup
PRISTINE=$T/pristine.db

# ---- the pristine store ----
check "mount" t_mount
FILES=()
for i in $(seq 16); do
	head -c 12000 /dev/urandom > "$MNT/f$i"   # 3 blocks each
	FILES+=("f$i")
done
mkdir "$MNT/d"
printf 'echo in a dir\n' > "$MNT/d/e.txt"
for i in 1 2 3; do
	printf 'xattr holder %s\n' "$i" > "$MNT/x$i"
	setfattr -n user.one -v "first-value-$i" "$MNT/x$i"
	setfattr -n user.two -v "second-value-$i" "$MNT/x$i"
done
head -c 20000 /dev/urandom > "$MNT/keep.bin"
ln -s f1 "$MNT/link"
FILES+=(d/e.txt x1 x2 x3 keep.bin)
declare -A SUM INO
for f in "${FILES[@]}" d; do
	INO[$f]=$(stat -c %i "$MNT/$f")
done
for f in "${FILES[@]}"; do
	SUM[$f]=$(md5sum < "$MNT/$f")
done
check "unmount" t_umount
check "WAL folded in after unmount" test ! -s "$STORE-wal"
cp "$STORE" "$PRISTINE"
expect_eq "pristine: f1 has 3 block rows" 3 \
	"$(sqlite3 "$PRISTINE" "SELECT count(*) FROM blocks WHERE ino=${INO[f1]}")"

# i NAME: inode number of a pristine file
i() { echo "${INO[$1]}"; }
# flip COLUMN POS: SQL for blob COLUMN with byte POS (1-based) changed
# (|| yields text: cast back, or the row is merely of the wrong type)
flip() {
	echo "CAST(substr($1,1,$(($2 - 1))) || CASE WHEN substr($1,$2,1) = X'41' THEN X'42' ELSE X'41' END || substr($1,$(($2 + 1))) AS BLOB)"
}
# rows: block, inode, dentry and xattr row counts of $STORE
rows() {
	sqlite3 "$STORE" "SELECT (SELECT count(*) FROM blocks) || ' blocks, ' ||
	  (SELECT count(*) FROM inodes) || ' inodes, ' ||
	  (SELECT count(*) FROM dentries) || ' dentries, ' ||
	  (SELECT count(*) FROM xattrs) || ' xattrs'"
}

N=0
# fresh: a new copy of the pristine store as $STORE
fresh() {
	N=$((N + 1))
	STORE=$T/case$N.db
	cp "$PRISTINE" "$STORE"
}

# edit DESC SQL: one edit of the unmounted store
edit() {
	if sqlite3 "$STORE" "$2" > "$T/.sqlerr" 2>&1; then
		ok "$1: edited"
	else
		fail "$1: sqlite3 failed: $(head -c 200 "$T/.sqlerr")"
	fi
}

# umount_quick: unmount and wait for the daemon to be gone (or a zombie
# nobody reaped yet)
umount_quick() {
	local pid st
	pid=$(t_pid)
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	for _ in $(seq 250); do
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
		if [ -z "$st" ] || [ "$st" = Z ]; then return 0; fi
		sleep 0.02
	done
	fail "daemon $pid did not exit after unmount"
}

# alive DESC: the daemon still serves, and lists the root
alive() {
	local pid
	pid=$(t_pid)
	if [ -n "$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
	   mountpoint -q "$MNT"; then
		ok "$1: daemon alive"
	else
		fail "$1: daemon died or mount gone"
		return
	fi
	if ls "$MNT" > "$T/.ls" 2> "$T/.err" && grep -qx keep.bin "$T/.ls"; then
		ok "$1: ls works"
	else
		fail "$1: ls fails: $(head -c 200 "$T/.err")"
	fi
}

# eio DESC FILE: reading FILE fails with EIO
eio() {
	if cat "$MNT/$2" > /dev/null 2> "$T/.err"; then
		fail "$1: $2 read without error (tampering not detected)"
	elif grep -q "Input/output error" "$T/.err"; then
		ok "$1: $2 gives EIO"
	else
		fail "$1: $2 fails, but not with EIO: $(head -c 200 "$T/.err")"
	fi
}

# xeio DESC FILE ATTR: reading the xattr fails with EIO
xeio() {
	if getfattr -n "$3" "$MNT/$2" > /dev/null 2> "$T/.err"; then
		fail "$1: $2 $3 read without error (tampering not detected)"
	elif grep -q "Input/output error" "$T/.err"; then
		ok "$1: $2 $3 gives EIO"
	else
		fail "$1: $2 $3 fails, but not with EIO: $(head -c 200 "$T/.err")"
	fi
}

# intact DESC EXCEPT...: every file not in EXCEPT reads back exactly
intact() {
	local d=$1 f bad=""; shift
	for f in "${FILES[@]}"; do
		[[ " $* " == *" $f "* ]] && continue
		[ "$(md5sum < "$MNT/$f" 2>/dev/null)" == "${SUM[$f]}" ] || bad="$bad $f"
	done
	expect_eq "$d: other files intact" "" "$bad"
}

# group DESC: start a group of edits on a fresh copy
group() {
	G=$1
	DAMAGED=()
	fresh
}
# serve: mount the edited copy (rows counted first)
BEFORE=""
serve() {
	BEFORE=$(rows)
	check "$G: mounts" t_mount -o accept_rollback  # each group replays a pristine copy
}
# done_group: others intact, daemon alive, nothing destroyed
done_group() {
	intact "$G" "${DAMAGED[@]}"
	alive "$G"
	umount_quick
	expect_eq "$G: no rows removed" "$BEFORE" "$(rows)"
}
# case DESC SQL DAMAGED...: an edit whose files must give EIO
CASES=()
case_() {
	edit "$1" "$2"
	local d=$1; shift 2
	DAMAGED+=("$@")
	CASES+=("$d|$*")
}
check_cases() {
	local c f
	for c in "${CASES[@]}"; do
		for f in ${c#*|}; do eio "$G: ${c%%|*}" "$f"; done
	done
	CASES=()
}

# ---- content blocks ----
group "blocks"
case_ "flipped ciphertext byte" \
	"UPDATE blocks SET data = $(flip data 100) WHERE ino=$(i f1) AND blk=1" f1
case_ "flipped nonce byte" \
	"UPDATE blocks SET data = $(flip data 3) WHERE ino=$(i f2) AND blk=0" f2
case_ "flipped tag byte" \
	"UPDATE blocks SET data = CAST(substr(data,1,length(data)-1) || CASE WHEN substr(data,-1,1) = X'00' THEN X'01' ELSE X'00' END AS BLOB) WHERE ino=$(i f3) AND blk=2" f3
case_ "truncated block" \
	"UPDATE blocks SET data = substr(data,1,length(data)-1) WHERE ino=$(i f4) AND blk=2" f4
case_ "empty block" \
	"UPDATE blocks SET data = X'' WHERE ino=$(i f5) AND blk=1" f5
case_ "oversized block" \
	"UPDATE blocks SET data = CAST(data || zeroblob(70000) AS BLOB) WHERE ino=$(i f6) AND blk=1" f6
case_ "block data stored as text" \
	"UPDATE blocks SET data = 'text' WHERE ino=$(i f7) AND blk=1" f7
case_ "swapped blocks in one file" \
	"CREATE TEMP TABLE t AS SELECT blk, data FROM blocks WHERE ino=$(i f8) AND blk IN (0,1);
	 UPDATE blocks SET data = (SELECT data FROM t WHERE t.blk = 1 - blocks.blk)
	 WHERE ino=$(i f8) AND blk IN (0,1)" f8
case_ "swapped blocks of two files" \
	"CREATE TEMP TABLE t2 AS SELECT ino, data FROM blocks WHERE blk=0 AND ino IN ($(i f9),$(i f10));
	 UPDATE blocks SET data = (SELECT data FROM t2 WHERE t2.ino != blocks.ino)
	 WHERE blk=0 AND ino IN ($(i f9),$(i f10))" f9 f10
case_ "block moved to another offset" \
	"DELETE FROM blocks WHERE ino=$(i f11) AND blk=1;
	 UPDATE blocks SET blk=1 WHERE ino=$(i f11) AND blk=2" f11
case_ "block relabelled with another key version" \
	"UPDATE blocks SET key_version=2 WHERE ino=$(i f12) AND blk=0" f12
case_ "block key version out of range" \
	"UPDATE blocks SET key_version=-1 WHERE ino=$(i f13) AND blk=0" f13
# a block moved into another file: the receiver fails; the donor has a
# hole where the block was (as a deleted row, below)
case_ "block moved to another file" \
	"DELETE FROM blocks WHERE ino=$(i f14) AND blk=1;
	 UPDATE blocks SET ino=$(i f14) WHERE ino=$(i f15) AND blk=1" f14
DAMAGED+=(f15)
# a deleted block row: the file's authenticated block count says it has no
# holes, so the missing block is an error, not zeros (`check` reports it too)
edit "deleted block row" "DELETE FROM blocks WHERE ino=$(i f16) AND blk=1"
DAMAGED+=(f16)
serve
check_cases
for f in f15 f16; do
	if cat "$MNT/$f" > /dev/null 2> "$T/.err"; then
		fail "$G: $f lost a block row but reads (zeros instead of EIO)"
	else
		check "$G: $f with a lost row fails with EIO" grep -q "Input/output error" "$T/.err"
	fi
done
done_group

# ---- inode rows ----
group "inodes"
case_ "size grown" "UPDATE inodes SET size=size+1 WHERE ino=$(i f1)" f1
case_ "size shrunk" "UPDATE inodes SET size=100 WHERE ino=$(i f2)" f2
case_ "mode changed" "UPDATE inodes SET mode=mode|2 WHERE ino=$(i f3)" f3
case_ "uid changed" "UPDATE inodes SET uid=4242 WHERE ino=$(i f4)" f4
case_ "nlink changed" "UPDATE inodes SET nlink=5 WHERE ino=$(i f5)" f5
case_ "nlink set to 0" "UPDATE inodes SET nlink=0 WHERE ino=$(i f6)" f6
case_ "key version zero" "UPDATE inodes SET key_version=0 WHERE ino=$(i f7)" f7
case_ "file id changed" "UPDATE inodes SET file_id=randomblob(16) WHERE ino=$(i f8)" f8
case_ "file id too short" "UPDATE inodes SET file_id=X'00' WHERE ino=$(i f9)" f9
case_ "mac zeroed" "UPDATE inodes SET mac=zeroblob(32) WHERE ino=$(i f10)" f10
case_ "rows swapped" \
	"CREATE TEMP TABLE t AS SELECT * FROM inodes WHERE ino IN ($(i f11),$(i f12));
	 DELETE FROM inodes WHERE ino IN ($(i f11),$(i f12));
	 INSERT INTO inodes SELECT CASE ino WHEN $(i f11) THEN $(i f12) ELSE $(i f11) END,
	   file_id, key_version, mode, uid, gid, nlink, size, nblocks, rdev, atime,
	   mtime, ctime, generation, mac FROM t" f11 f12
case_ "mtime changed" "UPDATE inodes SET mtime=mtime+1000000000 WHERE ino=$(i f13)" f13
case_ "directory mode changed" "UPDATE inodes SET mode=mode|2 WHERE ino=$(i d)" d/e.txt
serve
check_cases
done_group

# an inode row deleted: its entry dangles
group "inode row deleted"
case_ "inode row deleted" "DELETE FROM inodes WHERE ino=$(i f1)" f1
serve
check_cases
done_group

# ---- directory entries ----
group "dentries"
case_ "names swapped" \
	"CREATE TEMP TABLE t AS SELECT ino, tag, name FROM dentries WHERE ino IN ($(i f1),$(i f2));
	 UPDATE dentries SET tag=randomblob(32) WHERE ino=$(i f1);
	 UPDATE dentries SET tag=(SELECT tag FROM t WHERE ino=$(i f1)),
	                     name=(SELECT name FROM t WHERE ino=$(i f1)) WHERE ino=$(i f2);
	 UPDATE dentries SET tag=(SELECT tag FROM t WHERE ino=$(i f2)),
	                     name=(SELECT name FROM t WHERE ino=$(i f2)) WHERE ino=$(i f1)" f1 f2
case_ "inodes swapped" \
	"UPDATE dentries SET ino = CASE ino WHEN $(i f3) THEN $(i f4) ELSE $(i f3) END
	 WHERE ino IN ($(i f3),$(i f4))" f3 f4
case_ "entry points at another inode" "UPDATE dentries SET ino=$(i f6) WHERE ino=$(i f5)" f5
case_ "name flipped" "UPDATE dentries SET name = $(flip name 30) WHERE ino=$(i f7)" f7
case_ "name truncated" "UPDATE dentries SET name = substr(name,1,10) WHERE ino=$(i f8)" f8
case_ "name key version changed" "UPDATE dentries SET key_version=2 WHERE ino=$(i f9)" f9
# an entry moved into another directory: gone from its own, and its name
# (bound to the parent) does not open in the other
edit "entry moved to another directory" "UPDATE dentries SET parent=$(i d) WHERE ino=$(i f10)"
DAMAGED+=(f10)
serve
check_cases
check_not "$G: moved entry gone from /" cat "$MNT/f10"
check_not "$G: moved entry not readable in d/" cat "$MNT/d/f10"
check_not "$G: no forged name listed in d/" sh -c "ls '$MNT/d' | grep -q f10"
check "$G: d/ still lists its own entry" sh -c "ls '$MNT/d' | grep -qx e.txt"
done_group

# a row of the wrong type (name stored as text): that entry fails, the
# rest of the directory still lists
group "dentry of the wrong type"
case_ "name stored as text" "UPDATE dentries SET name = 'text' WHERE ino=$(i f1)" f1
serve
check_cases
done_group

# ---- xattrs ----
group "xattrs"
TAG1=$(sqlite3 "$STORE" "SELECT hex(tag) FROM xattrs WHERE ino=$(i x1) ORDER BY tag LIMIT 1")
edit "value flipped" \
	"UPDATE xattrs SET value = $(flip value 30) WHERE ino=$(i x1) AND tag = X'$TAG1'"
edit "values swapped" \
	"CREATE TEMP TABLE t AS SELECT tag, value FROM xattrs WHERE ino=$(i x2);
	 UPDATE xattrs SET value = (SELECT value FROM t WHERE t.tag != xattrs.tag) WHERE ino=$(i x2)"
edit "xattrs moved to another file" "UPDATE xattrs SET ino=$(i f1) WHERE ino=$(i x3)"
serve
getfattr -n user.one "$MNT/x1" > /dev/null 2> "$T/.e1"; s1=$?
getfattr -n user.two "$MNT/x1" > /dev/null 2> "$T/.e2"; s2=$?
expect_eq "$G: value flipped: exactly one attribute fails" 1 $(( (s1 != 0) + (s2 != 0) ))
check "$G: value flipped: with EIO" grep -q "Input/output error" "$T/.e1" "$T/.e2"
xeio "$G: values swapped" x2 user.one
xeio "$G: values swapped" x2 user.two
check_not "$G: moved: x3 lost them" getfattr -n user.one "$MNT/x3"
getfattr -d "$MNT/f1" > "$T/.out" 2>&1
check_not "$G: moved: f1 does not show them" grep -q "first-value" "$T/.out"
done_group

# ---- random bytes in the middle of the file ----
# The daemon refuses to mount with one clear line (1 or 4), or serves:
# every file then reads exactly or fails with EIO; it never crashes.
size=$(stat -c %s "$PRISTINE")
for _trial in 1 2 3; do
	fresh
	offs=""
	for _ in 1 2 3 4; do
		off=$(( (RANDOM * 32768 + RANDOM) % (size - 200) + 100 ))
		offs="$offs $off"
		head -c 64 /dev/urandom | dd of="$STORE" bs=1 seek="$off" conv=notrunc 2>/dev/null
	done
	d="random bytes at$offs"
	timeout 60 "$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o accept_rollback "$STORE" "$MNT" \
		> /dev/null 2> "$T/.err"
	st=$?
	if [ $st -eq 0 ]; then
		T_MOUNTS+=("$MNT")
		ok "$d: mounted"
		wrong=""
		for f in "${FILES[@]}"; do
			if timeout 30 cat "$MNT/$f" > "$T/.data" 2> "$T/.err"; then
				[ "$(md5sum < "$T/.data")" == "${SUM[$f]}" ] || wrong="$wrong $f"
			elif ! grep -q "Input/output error\|No such file" "$T/.err"; then
				fail "$d: $f: $(head -c 200 "$T/.err")"
			fi
		done
		timeout 30 ls -lR "$MNT" > /dev/null 2>&1
		# different content can only come from a lost block row (a hole):
		# log it; `custodyctl check` must catch it
		[ -n "$wrong" ] && t_log "$d: read differently:$wrong"
		pid=$(t_pid)
		if [ -n "$pid" ] && mountpoint -q "$MNT"; then
			ok "$d: daemon alive"
		else
			fail "$d: daemon died"
		fi
		umount_quick
	elif [ $st -eq 1 ] || [ $st -eq 4 ]; then
		ok "$d: refused to mount (exit $st)"
		expect_eq "$d: one line on stderr" 1 "$(wc -l < "$T/.err")"
		check_not "$d: no mount left" mountpoint -q "$MNT"
	else
		fail "$d: exit $st: $(head -c 300 "$T/.err")"
		mountpoint -q "$MNT" && umount_quick
	fi
done

# the header itself: not a store any more
fresh
printf 'garbage!' | dd of="$STORE" bs=1 seek=0 conv=notrunc 2>/dev/null
t_mount -o accept_rollback > /dev/null 2> "$T/.err"
expect_eq "damaged header: exit" 1 "$?"
check "damaged header: says so" grep -q "not a custodyfs store" "$T/.err"
check_not "damaged header: no mount" mountpoint -q "$MNT"

# and the pristine store is still fine
STORE=$PRISTINE
check "pristine mounts" t_mount -o accept_rollback
intact "pristine"
check "pristine unmount" t_umount
t_finish
