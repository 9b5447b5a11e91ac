#!/usr/bin/env bash
# make demo: build, make a small tree, commit it into a fresh repository,
# and show what ostree-mount and real ostree see.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ostree-mount
WORK=$(mktemp -d /var/tmp/ostree-mount-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export OSTREE_REPO=$WORK/repo

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

mkdir -p "$WORK/tree/etc" "$WORK/tree/bin"
echo "hello from ostree-mount" > "$WORK/tree/etc/motd"
printf '#!/bin/sh\necho hi\n' > "$WORK/tree/bin/hi"; chmod 0755 "$WORK/tree/bin/hi"
ln -s ../etc/motd "$WORK/tree/bin/motd-link"

step "$BIN" init --mode=bare-user
step "$BIN" commit -b demo/base -s "demo tree" --canonical-permissions "$WORK/tree"
step "$BIN" ls -R demo/base
step "$BIN" cat demo/base /etc/motd
step "$BIN" show demo/base
step ostree fsck --repo="$OSTREE_REPO"
step "$BIN" prune --dry-run
