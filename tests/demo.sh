#!/usr/bin/env bash
# make demo: create a demo store with a random passphrase, mount it, and say
# how to use and unmount it. Works without a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEMO_DIR:-$PWD/demo}
STORE=$DIR/demo.db
MNT=$DIR/mnt
PASS=$DIR/passphrase
USER_NAME=${DEMO_USER:-demo}

mkdir -p "$DIR" "$MNT"
if mountpoint -q "$MNT"; then
	echo "demo: already mounted at $MNT (unmount with: fusermount3 -u $MNT)"
	exit 0
fi
if [ ! -e "$STORE" ]; then
	umask 077
	head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$PASS"
	./custodyctl -s "$STORE" -u "$USER_NAME" --passfile "$PASS" init
fi
./custodyfs -u "$USER_NAME" --passfile "$PASS" "$STORE" "$MNT"
echo "demo: hello from custodyfs" > "$MNT/README.txt"
cat <<MSG

custodyfs demo is mounted.
  store (one encrypted SQLite file): $STORE
  mount point:                       $MNT
  user / passphrase file:            $USER_NAME / $PASS

Try:
  ls -l $MNT && cat $MNT/README.txt
  cp -r /usr/share/doc/fuse3 $MNT/
  ./custodyctl -s $STORE -u $USER_NAME --passfile $PASS info
  ./custodyctl -s $STORE -u $USER_NAME --passfile $PASS audit list | tail
  grep -c "hello from custodyfs" $STORE   # 0: nothing readable in the store

Unmount with:
  fusermount3 -u $MNT
Remount later with:
  ./custodyfs -u $USER_NAME --passfile $PASS $STORE $MNT
MSG
