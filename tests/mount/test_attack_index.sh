#!/usr/bin/env bash
# A store user disguises a partial index as the full one: blocks_kv
# rebuilt WHERE ino<>N, then its SQL in sqlite_schema put back to the
# declared text (the schema check compares the text; quick_check passes).
# The index then hides file N's blocks from every query that uses it.
# The commands that destroy keys, or say nothing is left under a version,
# must not rely on it: before store_key_usage counted by the table itself
# (NOT INDEXED), reencrypt skipped the file and said all was moved, key
# retire and key destroy went ahead, and the file was unreadable for good.
. "$(dirname "$0")/../lib.sh"
t_setup
check "mount" t_mount
head -c 20000 /dev/urandom > "$T/big"
mkdir "$MNT/d"
cp "$T/big" "$MNT/d/big"
echo small > "$MNT/a"
ino=$(stat -c %i "$MNT/d/big")
check "unmount" t_umount
t_log "ino $ino; blocks: $(sqlite3 "$STORE" "SELECT group_concat(ino || ':' || blk || ':v' || key_version, ' ') FROM blocks NOT INDEXED")"

q "DROP INDEX blocks_kv; CREATE INDEX blocks_kv ON blocks(key_version) WHERE ino<>$ino;
   PRAGMA writable_schema=ON;
   UPDATE sqlite_schema SET sql='CREATE INDEX blocks_kv ON blocks(key_version)' WHERE name='blocks_kv';
   PRAGMA writable_schema=RESET;"
t_log "the index lists $(sqlite3 "$STORE" "SELECT count(*) FROM blocks INDEXED BY blocks_kv WHERE key_version=1") of $(sqlite3 "$STORE" "SELECT count(*) FROM blocks WHERE +key_version=1 AND typeof(data) <> ''") v1 blocks"

expect_status "key rotate" 0 ctl key rotate
ctl reencrypt > "$T/re.out" 2> "$T/.stderr"
expect_eq "reencrypt does not say all was moved: exit 4" 4 "$?"
stderr_has "it names the index" "missing from the store's key-version indexes"
ctl key retire 1 > /dev/null 2> "$T/.stderr"
st=$?
check "key retire 1 is refused: v1 is still used" test "$st" -ne 0
ctl key destroy 1 --yes > /dev/null 2> "$T/.stderr"
st=$?
check "key destroy 1 is refused" test "$st" -ne 0
check "mount" t_mount
check "the hidden file is still readable" cmp "$T/big" "$MNT/d/big"
check "unmount" t_umount
t_finish
