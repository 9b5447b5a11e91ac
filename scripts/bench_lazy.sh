#!/bin/bash
# make bench, lazy part (#13): time from an empty repository to the first
# shell command of an image served over HTTP, with nginx limiting each
# connection to 25 MB/s (limit_rate 25m, a CDN-like link) on 127.0.0.1.
#
#   ostree-mount   remote add + mount REMOTE:REF + chroot sh -c 'ls / && id'
#   ostree         remote add + pull + checkout + the same chroot
#                  (of the precomposed import: ostree pulls its composed tree)
#   skopeo+umoci   skopeo copy docker:// oci: + umoci unpack + the same chroot
#                  (the registry behind the same nginx, same limit)
#
# The image: a debootstrap minbase rootfs plus the Go toolchain, two layers.
# Built once under $BENCH_WORK/lazy. Prints the timings, ostree-mount's
# bytes fetched from nginx's log against the served repository's size,
# and writes $BENCH_WORK/out/lazy-*.json.
. "$(dirname "$0")/bench_env.sh"
L=$W/lazy
mkdir -p "$OUT" "$L"
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    python3 - "$f" <<'PY' && return 0
import sys
for st in open(sys.argv[1]).read().split("\n\n"):
    d = {}
    for l in st.splitlines():
        if ":" in l and not l.startswith((" ", "#")):
            k, v = l.split(":", 1); d[k.strip().lower()] = v.strip()
    if "deb" in d.get("types", "").split() and "bookworm" in d.get("suites", "").split() and d.get("uris"):
        print(d["uris"].split()[0]); sys.exit(0)
sys.exit(1)
PY
  done
  awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null | grep . || echo http://deb.debian.org/debian
}

if [ ! -f "$L/image.done" ]; then
  log "building the lazy benchmark image (debootstrap minbase + Go toolchain)"
  rm -rf "$L/img" "$L/b"
  umoci init --layout "$L/img"
  umoci new --image "$L/img:empty"
  umoci unpack --image "$L/img:empty" "$L/b" >/dev/null
  debootstrap --variant=minbase bookworm "$L/b/rootfs" "$(mirror)" >/dev/null
  umoci repack --refresh-bundle --image "$L/img:base" "$L/b"
  mkdir -p "$L/b/rootfs/usr/local"
  cp -a "$(go env GOROOT)" "$L/b/rootfs/usr/local/go"
  umoci repack --refresh-bundle --image "$L/img:lazy" "$L/b"
  rm -rf "$L/b"
  touch "$L/image.done"
fi

RW=$(mktemp -d "$W/lazyrun.XXXXXX")
chmod 0755 "$RW" # nginx's workers (www-data) read the served repository
MNT=$RW/mnt
mkdir -p "$MNT"
cleanup() {
  "$BIN" umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT" 2>/dev/null || true
  [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null
  [ -n "${REG:-}" ] && kill "$REG" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$RW"
}
trap cleanup EXIT

log "serving the image: an archive repository (ostree-mount import, layered and precomposed) and a registry"
SRV=$RW/srv
"$BIN" init --repo "$SRV" --mode archive
"$BIN" import -q --repo "$SRV" --ref lazy "oci:$L/img:lazy"
"$BIN" import -q --repo "$SRV" --ref lazy-pre --mode precomposed "oci:$L/img:lazy"
"$BIN" summary -u --repo "$SRV"
SIZE=$(find "$SRV/objects" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
# The image's layer blobs (compressed), what skopeo downloads.
IMGBYTES=$(python3 -c '
import json,sys
i=json.load(open(sys.argv[1]+"/index.json"))
m=[m for m in i["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")=="lazy"][0]
man=json.load(open(sys.argv[1]+"/blobs/sha256/"+m["digest"].split(":")[1]))
print(sum(l["size"] for l in man["layers"]))' "$L/img")

RPORT=$(freeport)
cat > "$RW/registry.yml" <<YML
version: 0.1
log: {accesslog: {disabled: true}, level: warn}
storage: {filesystem: {rootdirectory: $RW/registry}}
http: {addr: "127.0.0.1:$RPORT"}
YML
docker-registry serve "$RW/registry.yml" > "$RW/registry.log" 2>&1 &
REG=$!
NPORT=$(freeport)
mkdir -p "$RW/nginx"
cat > "$RW/nginx.conf" <<NGX
daemon off;
worker_processes 2;
pid $RW/nginx/pid;
error_log $RW/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log $RW/nginx/access.log combined;
  client_body_temp_path $RW/nginx/body;
  proxy_temp_path $RW/nginx/proxy;
  fastcgi_temp_path $RW/nginx/fcgi;
  uwsgi_temp_path $RW/nginx/uwsgi;
  scgi_temp_path $RW/nginx/scgi;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$NPORT;
    limit_rate 25m;
    location /repo/ { alias $SRV/; }
    location /v2/ {
      proxy_pass http://127.0.0.1:$RPORT;
      proxy_set_header Host \$http_host;
      proxy_buffering off;
      client_max_body_size 0;
    }
  }
}
NGX
nginx -c "$RW/nginx.conf" &
NGINX_PID=$!
python3 - "$RPORT" "$NPORT" <<'PY'
import sys, time, urllib.request
for port in sys.argv[1:]:
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/"); break
        except Exception:
            time.sleep(0.1)
PY
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$L/img:lazy" "docker://127.0.0.1:$RPORT/lazy:latest"
URL=http://127.0.0.1:$NPORT/repo

# Each run starts from an empty repository and a dropped page cache.
C=$RW/client
OC=$RW/oclient
SK=$RW/skopeo
SHELLCMD="/bin/sh -c 'ls / && id'"
prep_om="$BIN umount $MNT >/dev/null 2>&1 || true; rm -rf $C; $BIN init --repo $C --mode bare-user; $BIN remote add --repo $C --no-gpg-verify origin $URL; sync; echo 3 > /proc/sys/vm/drop_caches"
prep_ostree="rm -rf $OC; ostree --repo=$OC init --mode=bare-user; ostree --repo=$OC remote add --no-gpg-verify origin $URL; sync; echo 3 > /proc/sys/vm/drop_caches"
prep_skopeo="rm -rf $SK; mkdir -p $SK; sync; echo 3 > /proc/sys/vm/drop_caches"

log "ostree-mount lazy mount, ostree pull + checkout, skopeo copy + umoci unpack: $RUNS runs each"
hyperfine ${BENCH_SHOW:+--show-output} --runs "$RUNS" --export-json "$OUT/lazy-om.json" --prepare "$prep_om" \
  "$BIN --repo $C origin:lazy $MNT && chroot $MNT $SHELLCMD" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/lazy-ostree.json" --prepare "$prep_ostree" \
  "ostree --repo=$OC pull origin lazy-pre && ostree --repo=$OC checkout -U lazy-pre $OC/co && chroot $OC/co $SHELLCMD" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/lazy-skopeo.json" --prepare "$prep_skopeo" \
  "skopeo --insecure-policy copy -q --src-tls-verify=false docker://127.0.0.1:$NPORT/lazy:latest oci:$SK/oci:lazy && umoci unpack --image $SK/oci:lazy $SK/b >/dev/null && chroot $SK/b/rootfs $SHELLCMD" >&2

# Bytes one lazy start fetches: one more run, counted from nginx's log.
"$BIN" umount "$MNT" >/dev/null 2>&1 || true
rm -rf "$C"; "$BIN" init --repo "$C" --mode bare-user; "$BIN" remote add --repo "$C" --no-gpg-verify origin "$URL"
: > "$RW/nginx/access.log"; kill -USR1 "$(cat "$RW/nginx/pid")"; sleep 0.2
"$BIN" --repo "$C" origin:lazy "$MNT"
chroot "$MNT" /bin/sh -c 'ls / && id' >/dev/null
"$BIN" umount "$MNT"
kill -USR1 "$(cat "$RW/nginx/pid")"; sleep 0.2
read -r FETCHED REQS < <(awk '$7 ~ /^\/repo\// {s+=$10; n++} END {print s+0, n+0}' "$RW/nginx/access.log")
mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
python3 - "$OUT" "$FETCHED" "$REQS" "$SIZE" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)" "$IMGBYTES" <<'PY' | tee "$ROOT/bench/results/lazy-$STAMP.md" "$ROOT/bench/results/lazy-latest.md"
import json, sys
out, fetched, reqs, size, runs, load, img = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
med = lambda n: json.load(open(f"{out}/lazy-{n}.json"))["results"][0]["median"]
om, ost, sk = med("om"), med("ostree"), med("skopeo")
json.dump({"fetched": fetched, "requests": reqs, "served": size, "image": img}, open(f"{out}/lazy-bytes.json", "w"))
print(f"\nLazy start-up, medians of {runs} runs (load average at the end: {load})")
print("\n| empty repository to first shell command, 25 MB/s per connection | median |")
print("|---|---|")
print(f"| ostree-mount lazy mount | {om:.2f} s |")
print(f"| ostree pull + checkout | {ost:.2f} s ({ost/om:.1f}x ostree-mount) |")
print(f"| skopeo copy + umoci unpack | {sk:.2f} s ({sk/om:.1f}x ostree-mount) |")
print(f"\nostree-mount fetched {fetched:,} bytes in {reqs} requests: {100*fetched/img:.1f} % of the image's {img:,} bytes of layer blobs, {100*fetched/size:.1f} % of the {size:,} bytes of objects served")
PY
