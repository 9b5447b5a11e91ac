#!/usr/bin/env bash
# Density: many mounts of one image. Called by scripts/bench.sh (make
# bench) as: bench_density.sh BIN REPO REF OUT_DIR.
#
# Through one mount service (ostree-mount serve), mounts of REF are added
# until there are 1, 10, 20, 50 and 100, each walked with find; at each of
# those counts it records the service's RSS and the time of the N-th
# mount (hyperfine, that mount remounted each run), after walking every
# mount again. Then 20 separate
# daemons of the same image, each walked, for comparison. Writes
# OUT_DIR/density-N.json and OUT_DIR/density-daemons.json.
# Composefs, a kernel mount, is the anchor: it costs no process memory.
set -euo pipefail
BIN=$1 REPO=$2 REF=$3 OUT=$4
RUNS=${BENCH_DENSITY_RUNS:-5}
D=$(mktemp -d /var/tmp/ostree-mount-density.XXXXXX)
SOCK=$D/mount.sock
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
SVC=
cleanup() {
  for m in "$D"/m[0-9]*; do [ -d "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }; done
  [ -n "$SVC" ] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
# The service is a supervisor and its worker (its child): their sum.
svc_pids() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null; }
rss_kb() { local t=0 p; for p in $(svc_pids "$1"); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
hwm_kb() { local t=0 p; for p in $(svc_pids "$1"); do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
walk() { find "$1" -printf '%p %s %m\n' > /dev/null; }
# drops counts drop_caches of slab objects (dentries, inodes) since boot.
drops() { awk '/^drop_slab / {print $2}' /proc/vmstat; }

log "density: N mounts of one image through the mount service, each walked with find"
"$BIN" serve --socket "$SOCK" 2>"$D/serve.log" &
SVC=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
have=0
for n in 1 10 20 50 100; do
  while [ "$have" -lt $((n - 1)) ]; do
    have=$((have + 1)); mkdir -p "$D/m$have"
    "$BIN" --repo "$REPO" --socket "$SOCK" "$REF" "$D/m$have"
    walk "$D/m$have"
  done
  have=$n; mkdir -p "$D/m$n"
  hyperfine --runs "$RUNS" --warmup 1 --export-json "$D/mount-$n.json" --prepare "umount $D/m$n 2>/dev/null || true" \
    "$BIN --repo $REPO --socket $SOCK $REF $D/m$n && stat $D/m$n/ >/dev/null" >&2
  # Every mount walked again, and the RSS read, with no drop_caches
  # (another benchmark's) in between: a drop makes the kernel forget
  # the mounts' inodes, and the service its nodes.
  for try in 1 2 3; do
    drops=$(drops)
    for i in $(seq 1 "$n"); do walk "$D/m$i"; done
    rss=$(rss_kb "$SVC")
    [ "$(drops)" = "$drops" ] && break
    log "density: caches dropped during the walks of $n mounts (try $try)"
  done
  hwm=$(hwm_kb "$SVC")
  mount_s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$D/mount-$n.json")
  echo "{\"mounts\": $n, \"rss_kb\": $rss, \"hwm_kb\": $hwm, \"mount_s\": $mount_s}" > "$OUT/density-$n.json"
  log "density: $n mounts: service RSS $((rss / 1024)) MB (peak $((hwm / 1024)) MB), the ${n}th mount ${mount_s}s"
done
for m in "$D"/m[0-9]*; do umount "$m"; done
kill "$SVC"; wait "$SVC" || true; SVC=

log "density: 20 daemons of the same image, each walked with find"
total=0
for i in $(seq 1 20); do
  mkdir -p "$D/d$i"; "$BIN" --repo "$REPO" "$REF" "$D/d$i"; walk "$D/d$i"
done
for i in $(seq 1 20); do
  for pid in $(pgrep -f "$D/d$i" || true); do
    grep -qz "^$D/d$i\$" "/proc/$pid/cmdline" 2>/dev/null || continue
    total=$((total + $(rss_kb "$pid"))); break
  done
done
for i in $(seq 1 20); do umount "$D/d$i"; done
echo "{\"mounts\": 20, \"rss_kb\": $total}" > "$OUT/density-daemons.json"
log "density: 20 daemons: $((total / 1024)) MB in all"
