#!/usr/bin/env bash
# Rollback awareness (issue 8): the store's authenticated generation grows
# with every commit; mounting a copy older than one this user has seen is
# refused (exit 4) unless -o accept_rollback; a forged generation is refused.
. "$(dirname "$0")/../lib.sh"
t_setup
gen() { sqlite3 "$STORE" "SELECT hex(substr(value,1,8)) FROM meta WHERE key='generation'"; }

check "mount" t_mount
echo one > "$MNT/a"
check "unmount" t_umount
cp "$STORE" "$T/old.db"               # the idle store file alone is a backup
g1=$(gen)
check "mount again" t_mount
echo two > "$MNT/b"
check "unmount again" t_umount
g2=$(gen)
[ "$g1" != "$g2" ] && ok "generation grows with commits ($g1 -> $g2)" || fail "generation did not grow"
state=$(cat "$XDG_STATE_HOME"/custodyfs/* 2>/dev/null)
[ -n "$state" ] && ok "state file remembers generation $state" || fail "no state file"

# put the older copy back: refused, with a clear line, nothing mounted
cp "$T/old.db" "$STORE"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "older copy refused: exit 4" 4 "$?"
check "the message says why and how to accept" grep -q "older than a copy this machine has seen.*accept_rollback" "$T/err"
check_not "nothing mounted" grep -q " $MNT fuse" /proc/mounts
# accepted on request: it mounts, warns, and the trail says so
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" -o accept_rollback "$STORE" "$MNT" 2> "$T/err"
expect_eq "accept_rollback mounts" 0 "$?"
T_MOUNTS+=("$MNT")
check "with a warning" grep -q "warning: mounting an older copy" "$T/err"
expect_eq "the old copy's content" "one" "$(cat "$MNT/a")"
check_not "the newer file is not in the old copy" test -e "$MNT/b"
check "unmount" t_umount
check "rollback acceptance is in the trail" sh -c "sqlite3 '$STORE' \"SELECT op FROM audit\" | grep -q 'rollback accepted'"

# a forged generation (counter raised without the key) is refused
sqlite3 "$STORE" "UPDATE meta SET value = X'FFFFFFFF00000000' || substr(value, 9) WHERE key='generation'"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$MNT" 2> "$T/err"
expect_eq "forged generation refused: exit 4" 4 "$?"
check "the message names tampering" grep -q "generation was tampered with" "$T/err"
t_finish
