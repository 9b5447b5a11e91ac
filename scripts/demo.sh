#!/usr/bin/env bash
# make demo: build, make a small two-layer OCI image with umoci, import it,
# mount it lazily, show it; then serve it from an archive repository with
# nginx on 127.0.0.1 and mount it lazily into a fresh repository, printing
# what a listing and one file read fetched; and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ostree-mount
WORK=$(mktemp -d /var/tmp/ostree-mount-demo.XXXXXX)
MNT=$WORK/mnt
NGINX_PID=
cleanup() {
	"$BIN" umount "$MNT" 2>/dev/null || true
	"$BIN" umount "$WORK/lazy-mnt" 2>/dev/null || true
	if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
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

# Lazily, from a remote: an archive repository served by nginx on
# 127.0.0.1, mounted into a fresh repository.
SRV=$WORK/srv
step "$BIN" init --repo="$SRV" --mode=archive
step "$BIN" import --repo="$SRV" --ref demo/app "oci:$IMG:v2"
step "$BIN" summary -u --repo="$SRV"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NG=$WORK/nginx
mkdir -p "$NG"
USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root root;"
printf '%s\n' "daemon off; master_process off; worker_processes 1; $USER_LINE" \
	"pid $NG/nginx.pid; error_log $NG/error.log warn;" \
	"events { worker_connections 64; }" \
	"http { log_format counted '\$body_bytes_sent'; access_log $NG/access.log counted;" \
	"client_body_temp_path $NG/cb; proxy_temp_path $NG/p; fastcgi_temp_path $NG/f; uwsgi_temp_path $NG/u; scgi_temp_path $NG/s;" \
	"server { listen 127.0.0.1:$PORT; root $SRV; } }" > "$NG/nginx.conf"
/usr/sbin/nginx -c "$NG/nginx.conf" -p "$NG" -e "$NG/error.log" &
NGINX_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
fetched() { awk '{s += $1} END {print s + 0}' "$NG/access.log"; }
export OSTREE_REPO=$WORK/client
step "$BIN" init --mode=bare-user
step "$BIN" remote add --no-gpg-verify origin "http://127.0.0.1:$PORT"
LMNT=$WORK/lazy-mnt
mkdir -p "$LMNT"
step "$BIN" origin:demo/app "$LMNT"
step ls -l "$LMNT"
AFTER_LS=$(fetched)
step cat "$LMNT/etc/motd"
AFTER_CAT=$(fetched)
step "$BIN" umount "$LMNT"
SIZE=$(find "$SRV/objects" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
printf '\nfetched from nginx: %s bytes for the mount (config and summary included) and the listing, %s more for the file read (the listing prefetched etc/); the served objects are %s bytes\n' \
	"$AFTER_LS" "$((AFTER_CAT - AFTER_LS))" "$SIZE"
step ostree fsck --repo="$OSTREE_REPO"
