#!/usr/bin/env bash
# One JSON writer for every --json: output parses (jq, Python) even when a
# mount point, a path or a process name holds bytes that are not UTF-8
# (U+FFFD stands in), and the exact bytes are in a sibling KEY_b64 field.
. "$(dirname "$0")/../lib.sh"
t_setup
BAD=$(printf 'mnt-\377-x')
M2="$T/$BAD"
mkdir -p "$M2"
"$CUSTODYFS" -u admin -c "$CONF" --passfile "$PASSFILE" "$STORE" "$M2" || fail "mount on a non-UTF-8 path"
T_MOUNTS+=("$M2"); t_track "$M2"
printf 'x\n' > "$M2/$(printf 'f\376le')"
cat "$M2/$(printf 'f\376le')" > /dev/null
ctl info --json > "$T/info.json" 2>/dev/null
check "info --json parses" jq -e . "$T/info.json"
check "info --json parses in Python too" python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$T/info.json"
expect_eq "mountpoint_b64 holds the exact bytes" "$M2" \
	"$(jq -r '.mounts[]? | select(.mountpoint_b64) | .mountpoint_b64' "$T/info.json" | head -1 | base64 -d)"
fusermount3 -u "$M2"; sleep 0.5
ctl audit list --json > "$T/audit.json"
check "audit list --json parses" jq -e . "$T/audit.json"
expect_eq "path_b64 holds the file's exact name" "/$(printf 'f\376le')" \
	"$(jq -r '[.[] | select(.op == "create" and .path_b64)][0].path_b64' "$T/audit.json" | base64 -d)"
check "a valid UTF-8 path has no _b64 sibling" \
	jq -e 'all(.[]; (.path_b64 == null) or ((.path | test("\ufffd"))))' "$T/audit.json"
t_finish
