#!/usr/bin/env bash
# make bench: one run measuring ostree-mount (layered and precomposed)
# against kernel overlayfs, fuse-overlayfs and an ostree checkout of the
# same image. Prints a table with ratios to kernel overlayfs and writes
# bench/results/{latest,<date>}.{json,md}.
#
# Environment: BENCH_WORK (default /var/tmp/ostree-mount-bench; the image
# is built once and reused), BENCH_RUNS (hyperfine runs, default 5),
# BENCH_BIG_MB (size of the large file, default 1024), BENCH_ONLY (a
# space-separated list of parts to run, out of import checkout mount find
# lslR readall seqread verify passthrough fio rss density prune; unset:
# all, and the report; set: the selected parts' JSON in $BENCH_WORK/out,
# no report, and the repository kept when BENCH_KEEP_REPO=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/bin/ostree-mount
W=${BENCH_WORK:-/var/tmp/ostree-mount-bench}
RUNS=${BENCH_RUNS:-5}
# Mounts take tens of milliseconds and vary most from run to run on a VM:
# four times the runs, after two warmups.
MOUNT_RUNS=$((RUNS * 4))
BIG_MB=${BENCH_BIG_MB:-1024}
OUT=$W/out
ONLY=${BENCH_ONLY:-}
# want PART: whether this run measures PART.
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
mkdir -p "$W" "$OUT"
# FUSE over io_uring (Linux 6.14+) is off unless the fuse module's
# enable_uring is set, as a machine that runs ostree-mount would set it
# (modprobe fuse enable_uring=1). The layered and precomposed rows use it;
# the devfuse row is the layered mount with every request on /dev/fuse.
URING=/sys/module/fuse/parameters/enable_uring
if [ -w "$URING" ]; then echo Y > "$URING"; fi
# BENCH_SKIP_IMPORT=1 keeps the import timings of the previous run.
if [ -n "$ONLY" ]; then
  :
elif [ -n "${BENCH_SKIP_IMPORT:-}" ]; then
  find "$OUT" -name '*.json' ! -name 'import-*' -delete
else
  rm -f "$OUT"/*.json
fi
[ "$(id -u)" = 0 ] || { echo "bench: run as root (mounts, drop_caches)"; exit 1; }

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- image --
IMG=$W/img
if [ ! -f "$W/image.done" ]; then
  log "building the benchmark image (Go distribution + 5 layers)"
  rm -rf "$IMG" "$W/bundle" "$W/newmisc"
  umoci init --layout "$IMG"
  umoci new --image "$IMG:empty"
  umoci unpack --image "$IMG:empty" "$W/bundle" >/dev/null
  R=$W/bundle/rootfs
  mkdir -p "$R/usr/local"
  cp -a "$(go env GOROOT)" "$R/usr/local/go"                  # L1: ~17k entries
  umoci repack --refresh-bundle --image "$IMG:l1" "$W/bundle"
  find "$R/usr/local/go/src/fmt" "$R/usr/local/go/src/strings" -name '*.go' | head -100 |
    while read -r f; do echo "// modified" >> "$f"; done      # L2: modify files
  umoci repack --refresh-bundle --image "$IMG:l2" "$W/bundle"
  rm -rf "$R/usr/local/go/test"                                # L3: delete a large dir
  umoci repack --refresh-bundle --image "$IMG:l3" "$W/bundle"
  # L4: replace a directory with an opaque whiteout (a hand-made tar, since
  # umoci repack writes only explicit whiteouts).
  python3 - "$W/opaque.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in [("usr/local/go/misc/.wh..wh..opq", b""), ("usr/local/go/misc/new/", None), ("usr/local/go/misc/new/file", b"replaced\n")]:
        ti = tarfile.TarInfo(name.rstrip("/"))
        if data is None:
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        else:
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
PY
  umoci raw add-layer --image "$IMG:l3" --tag l4 "$W/opaque.tar"
  rm -rf "$W/bundle"; umoci unpack --image "$IMG:l4" "$W/bundle" >/dev/null; R=$W/bundle/rootfs
  python3 - "$R/srv/small" <<'PY'                              # L5: 5000 small files
import os, sys
root = sys.argv[1]
for d in range(50):
    p = os.path.join(root, "d%02d" % d)
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        with open(os.path.join(p, "f%03d" % f), "w") as fh:
            fh.write(("file %d/%d\n" % (d, f)) * (1 + f % 20))
PY
  umoci repack --refresh-bundle --image "$IMG:l5" "$W/bundle"
  head -c "${BIG_MB}M" /dev/urandom > "$R/srv/big"             # L6: one large file
  umoci repack --refresh-bundle --image "$IMG:bench" "$W/bundle"
  # 50 small layers, for the mount-time-versus-layers measure.
  umoci new --image "$IMG:e50"; umoci unpack --image "$IMG:e50" "$W/b50" >/dev/null
  tag=e50
  for i in $(seq 1 50); do
    mkdir -p "$W/b50/rootfs/layer$i"; echo "$i" > "$W/b50/rootfs/layer$i/f"
    umoci repack --refresh-bundle --image "$IMG:l50-$i" "$W/b50" >/dev/null
  done
  rm -rf "$W/b50"
  touch "$W/image.done"
fi

# Per-layer directories in the overlay dialect, from the same blobs.
LAYERS=$W/layers
if [ ! -f "$W/layers.done" ]; then
  log "unpacking layers for overlayfs"
  rm -rf "$LAYERS"; mkdir -p "$LAYERS"
  mf=$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1]+"/index.json")); print([m for m in i["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")=="bench"][0]["digest"].split(":")[1])' "$IMG")
  n=0
  for blob in $(python3 -c 'import json,sys; print(" ".join(l["digest"].split(":")[1] for l in json.load(open(sys.argv[1]))["layers"]))' "$IMG/blobs/sha256/$mf"); do
    n=$((n+1)); d=$LAYERS/$n; mkdir -p "$d"
    tar --numeric-owner --xattrs --xattrs-include='*' -xf "$IMG/blobs/sha256/$blob" -C "$d"
    find "$d" -name '.wh..wh..opq' | while read -r o; do setfattr -n trusted.overlay.opaque -v y "$(dirname "$o")"; rm "$o"; done
    find "$d" -name '.wh.*' | while read -r w; do b=$(basename "$w"); rm "$w"; mknod "$(dirname "$w")/${b#.wh.}" c 0 0; done
  done
  echo $n > "$W/layers.count"
  touch "$W/layers.done"
fi
NL=$(cat "$W/layers.count")
LOWER=$(for i in $(seq "$NL" -1 1); do printf '%s:' "$LAYERS/$i"; done); LOWER=${LOWER%:}

# ---------------------------------------------------------------- import --
log "import: ostree-mount import vs ostree commit --tree=tar= of the same layers"
BLOBS=$(python3 -c '
import json,sys
i=json.load(open(sys.argv[1]+"/index.json"))
m=[m for m in i["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")=="bench"][0]
man=json.load(open(sys.argv[1]+"/blobs/sha256/"+m["digest"].split(":")[1]))
print(" ".join(sys.argv[1]+"/blobs/sha256/"+l["digest"].split(":")[1] for l in man["layers"]))' "$IMG")
cat > "$W/ostree-commit-layers.sh" <<SH
#!/bin/sh
set -e
rm -rf $W/orepo; ostree init --repo=$W/orepo --mode=bare-user
for b in $BLOBS; do ostree commit --repo=$W/orepo --orphan --tree=tar=\$b --tar-autocreate-parents --no-bindings >/dev/null; done
SH
chmod +x "$W/ostree-commit-layers.sh"
if [ -z "${BENCH_SKIP_IMPORT:-}" ] && want import; then
hyperfine --runs "$RUNS" --export-json "$OUT/import-ostree.json" "$W/ostree-commit-layers.sh" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/import-umoci.json" \
  --prepare "rm -rf $W/unpacked" "umoci unpack --image $IMG:bench $W/unpacked" >&2
rm -rf "$W/unpacked"
hyperfine --runs "$RUNS" --export-json "$OUT/import-om.json" \
  --prepare "rm -rf $W/irepo && $BIN init --repo $W/irepo --mode bare-user" \
  "$BIN import -q --repo $W/irepo oci:$IMG:bench" >&2
fi

REPO=$W/repo
if [ -z "${BENCH_KEEP_REPO:-}" ] || [ ! -f "$W/repo.done" ]; then
rm -rf "$REPO" "$W/repo.done"; $BIN init --repo "$REPO" --mode bare-user
$BIN import -q --repo "$REPO" --ref bench/layered oci:"$IMG":bench >/dev/null
$BIN import -q --repo "$REPO" --ref bench/precomposed --mode precomposed oci:"$IMG":bench >/dev/null
$BIN import -q --repo "$REPO" --ref bench/l50 oci:"$IMG":l50-50 >/dev/null
touch "$W/repo.done"
fi

# ---------------------------------------------------------------- mounts --
MNT=$W/mnt; mkdir -p "$MNT"/{layered,devfuse,precomposed,overlay,fuseovl,l50,verify,passthrough,svc,svc50}
CO=$W/checkout
cleanup() {
  for m in layered devfuse precomposed overlay fuseovl l50 verify passthrough; do umount "$MNT/$m" 2>/dev/null || umount -l "$MNT/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

declare -A MOUNT UMOUNT
MOUNT[layered]="$BIN --repo $REPO bench/layered $MNT/layered"
# The same mount with every request on /dev/fuse, as on a kernel without
# FUSE over io_uring (before 6.14, or enable_uring unset).
MOUNT[devfuse]="$BIN --repo $REPO --io-uring=false bench/layered $MNT/devfuse"
MOUNT[precomposed]="$BIN --repo $REPO bench/precomposed $MNT/precomposed"
MOUNT[overlay]="mount -t overlay overlay -o ro,lowerdir=$LOWER $MNT/overlay"
MOUNT[fuseovl]="fuse-overlayfs -o lowerdir=$LOWER $MNT/fuseovl"
MOUNT[verify]="$BIN --repo $REPO --verify bench/layered $MNT/verify"
# The other way of opening files: FUSE passthrough, a round trip per open.
MOUNT[passthrough]="$BIN --repo $REPO --passthrough bench/layered $MNT/passthrough"
for s in layered devfuse precomposed overlay fuseovl verify passthrough; do UMOUNT[$s]="umount $MNT/$s"; done
# BENCH_SYSTEMS narrows the systems of the find, ls, read and fio rows.
SYSTEMS=${BENCH_SYSTEMS:-overlay fuseovl layered devfuse precomposed checkout}

if want checkout; then
log "checkout: materialize the composed tree with ostree checkout"
hyperfine --runs "$RUNS" --export-json "$OUT/materialize-checkout.json" \
  --prepare "rm -rf $CO; sync; echo 3 > /proc/sys/vm/drop_caches" \
  "ostree checkout --repo=$REPO -U bench/precomposed $CO" >&2
fi
if want checkout || want find || want lslR || want readall || want seqread || want fio; then
rm -rf "$CO"; ostree checkout --repo="$REPO" -U bench/precomposed "$CO"
fi

path_of() { if [ "$1" = checkout ]; then echo "$CO"; else echo "$MNT/$1"; fi; }

if want mount; then
log "mount: ready and first stat"
for s in layered devfuse precomposed overlay fuseovl; do
  # hyperfine 1.15 has no --conclude: each run unmounts the previous one first.
  hyperfine --runs "$MOUNT_RUNS" --warmup 2 --export-json "$OUT/mount-$s.json" --prepare "${UMOUNT[$s]} 2>/dev/null || true" \
    "${MOUNT[$s]} && stat $MNT/$s/usr/local/go/VERSION" >&2
  ${UMOUNT[$s]}
done
hyperfine --runs "$MOUNT_RUNS" --warmup 2 --export-json "$OUT/mount50-layered.json" --prepare "umount $MNT/l50 2>/dev/null || true" \
  "$BIN --repo $REPO bench/l50 $MNT/l50 && stat $MNT/l50/layer50/f" >&2
umount "$MNT/l50"
log "mount: ready and first stat, through the mount service (ostree-mount serve)"
SOCK=$W/mount.sock
"$BIN" serve --socket "$SOCK" 2>>"$OUT/serve.log" &
SVC=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
hyperfine --runs "$MOUNT_RUNS" --warmup 2 --export-json "$OUT/mount-service.json" --prepare "umount $MNT/svc 2>/dev/null || true" \
  "$BIN --repo $REPO --socket $SOCK bench/layered $MNT/svc && stat $MNT/svc/usr/local/go/VERSION" >&2
umount "$MNT/svc"
hyperfine --runs "$MOUNT_RUNS" --warmup 2 --export-json "$OUT/mount50-service.json" --prepare "umount $MNT/svc50 2>/dev/null || true" \
  "$BIN --repo $REPO --socket $SOCK bench/l50 $MNT/svc50 && stat $MNT/svc50/layer50/f" >&2
umount "$MNT/svc50"
kill "$SVC"; wait "$SVC" || true
fi

for s in layered devfuse precomposed overlay fuseovl; do eval "${MOUNT[$s]}"; done

# A cold run remounts FUSE daemons too, so their own caches start empty.
cold_prep() {
  local s=$1
  if [ "$s" = checkout ] || [ "$s" = overlay ]; then echo "sync; echo 3 > /proc/sys/vm/drop_caches"
  else echo "${UMOUNT[$s]}; sync; echo 3 > /proc/sys/vm/drop_caches; ${MOUNT[$s]}"; fi
}
measure() { # name command-template (with {P} for the tree)
  local name=$1 tmpl=$2 s p cmd
  want "$name" || return 0
  for s in $SYSTEMS; do
    p=$(path_of "$s"); cmd=${tmpl//\{P\}/$p}
    log "$name cold: $s"
    hyperfine --runs "$RUNS" --export-json "$OUT/$name-cold-$s.json" --prepare "$(cold_prep "$s")" "$cmd" >&2
    log "$name warm: $s"
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$OUT/$name-warm-$s.json" "$cmd" >&2
  done
}
measure find "find {P} -printf '%s %m\n' > /dev/null"
measure lslR "ls -lR {P} > /dev/null"
measure readall "tar cf - -C {P} . | cat > /dev/null"
measure seqread "dd if={P}/srv/big of=/dev/null bs=1M status=none"
if want verify; then
log "the cost of --verify: read all, layered with --verify"
eval "${MOUNT[verify]}"
SYSTEMS=verify measure readall "tar cf - -C {P} . | cat > /dev/null"
${UMOUNT[verify]}
fi
eval "${MOUNT[passthrough]}"
if want passthrough; then
log "reads with --passthrough"
SYSTEMS=passthrough measure readall "tar cf - -C {P} . | cat > /dev/null"
SYSTEMS=passthrough measure seqread "dd if={P}/srv/big of=/dev/null bs=1M status=none"
fi
SYSTEMS=${BENCH_SYSTEMS:-overlay fuseovl layered devfuse precomposed checkout}" passthrough"

want fio && log "4k random reads (fio)"
for s in $SYSTEMS; do
  want fio || break
  p=$(path_of "$s")
  drop # every system starts from a cold page cache (ours would be warm from earlier reads)
  fio --name=rr --filename="$p/srv/big" --rw=randread --bs=4k --size="${BIG_MB}M" --runtime=10 --time_based \
      --ioengine=psync --readonly --output-format=json > "$OUT/fio-$s.json" 2>/dev/null || echo '{}' > "$OUT/fio-$s.json"
done

${UMOUNT[passthrough]}
SYSTEMS="overlay fuseovl layered devfuse precomposed checkout"

want rss && log "daemon RSS after a full walk"
rss_of_mount() { # RSS (kB) of the process serving mountpoint $1
  local pid
  for pid in $(pgrep -f "$1" || true); do
    grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null && awk '/VmRSS/ {print $2}' "/proc/$pid/status" && return
  done
  echo 0
}
for s in layered devfuse precomposed fuseovl; do
  want rss || break
  ${UMOUNT[$s]}; eval "${MOUNT[$s]}"
  find "$MNT/$s" -printf '%s %m\n' > /dev/null; ls -lR "$MNT/$s" > /dev/null
  echo "{\"rss_kb\": $(rss_of_mount "$MNT/$s")}" > "$OUT/rss-$s.json"
done

want density && "$ROOT/scripts/bench_density.sh" "$BIN" "$REPO" bench/layered "$OUT"

if want prune; then
log "prune at scale"
"$ROOT/scripts/bench_prune.sh" "$OUT"
fi
[ -z "$ONLY" ] || { log "BENCH_ONLY=$ONLY: results in $OUT, no report"; exit 0; }

# ---------------------------------------------------------------- report --
python3 "$ROOT/scripts/bench_report.py" "$OUT" "$ROOT/bench/results" "$BIG_MB" "$RUNS"
