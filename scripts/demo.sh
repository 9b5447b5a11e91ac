#!/usr/bin/env bash
# make demo: build, make a small two-layer OCI image with umoci, import it,
# mount it lazily, show it, and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ostree-mount
WORK=$(mktemp -d /var/tmp/ostree-mount-demo.XXXXXX)
MNT=$WORK/mnt
cleanup() { "$BIN" umount "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export OSTREE_REPO=$WORK/repo

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A small image: a base layer, then a layer that edits, deletes and adds.
IMG=$WORK/img
umoci init --layout "$IMG" >/dev/null
umoci new --image "$IMG:base" >/dev/null
umoci unpack --image "$IMG:base" "$WORK/b" >/dev/null
R=$WORK/b/rootfs
mkdir -p "$R/etc" "$R/bin" "$R/usr/share/doc"
echo "hello from layer 1" > "$R/etc/motd"
printf '#!/bin/sh\necho hi\n' > "$R/bin/hi"; chmod 0755 "$R/bin/hi"
echo "docs" > "$R/usr/share/doc/README"
umoci repack --image "$IMG:v1" "$WORK/b" >/dev/null
echo "hello from layer 2" > "$R/etc/motd"
rm -rf "$R/usr/share/doc"
ln -s ../etc/motd "$R/bin/motd"
umoci repack --image "$IMG:v2" "$WORK/b" >/dev/null

step "$BIN" init --mode=bare-user
step "$BIN" import --ref demo/app "oci:$IMG:v2"
step "$BIN" show --print-related demo/app
mkdir -p "$MNT"
step "$BIN" demo/app "$MNT"
step ls -lR "$MNT"
step cat "$MNT/etc/motd"
step "$BIN" umount "$MNT"
step ostree fsck --repo="$OSTREE_REPO"
