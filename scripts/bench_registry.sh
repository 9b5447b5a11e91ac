#!/bin/bash
# make bench, registry part: `ostree-mount import docker://` against
# `skopeo copy docker:// oci:` of the same image from the same local
# registry (Debian's docker-registry on a free 127.0.0.1 port). Uses the
# image scripts/bench.sh built ($BENCH_WORK/img, tag bench); prints both
# timings and writes $BENCH_WORK/out/registry-{om,skopeo}.json.
. "$(dirname "$0")/bench_env.sh"
IMG=$W/img
mkdir -p "$OUT"
[ -d "$IMG" ] || { echo "bench_registry: no $IMG (run scripts/bench.sh first)"; exit 1; }
RW=$(mktemp -d "$W/registry.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$RW/config.yml" <<YML
version: 0.1
log: {accesslog: {disabled: true}, level: warn}
storage: {filesystem: {rootdirectory: $RW/storage}}
http: {addr: "127.0.0.1:$PORT"}
YML
docker-registry serve "$RW/config.yml" > "$RW/log" 2>&1 &
REG=$!
trap 'kill $REG 2>/dev/null; wait $REG 2>/dev/null || true; rm -rf "$RW"' EXIT
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/"); break
    except Exception:
        time.sleep(0.1)
PY
SRC=docker://127.0.0.1:$PORT/bench:latest
# Each run's output is moved aside, not removed, until the end: on ext4
# without a journal (this VM's root filesystem), the allocator skips, one
# by one, every inode freed in the last minute or more (recently_deleted
# in fs/ext4/ialloc.c), so removing the previous run's 22k-file
# repository right before a run made that run's file creation take
# seconds more of system time, a cost of the harness, not of the import.
mkdir -p "$RW/old"
aside() { echo "[ ! -e $RW/$1 ] || mv $RW/$1 $RW/old/$1.\$(date +%s%N)"; }
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$IMG:bench" "$SRC"
# Every run starts with the previous runs' writes on disk and the page
# cache empty (sync, drop_caches), for both tools alike. Without the
# sync, the previous run's 1.3 GB, which skopeo leaves dirty, was
# written back during the next run, and the import's syncfs, which
# waits for every dirty page of the filesystem, waited for it too.
clean="sync; echo 3 > /proc/sys/vm/drop_caches"
hyperfine --runs "$RUNS" --export-json "$OUT/registry-skopeo.json" \
  --prepare "$(aside oci); $clean" "skopeo --insecure-policy copy -q --src-tls-verify=false $SRC oci:$RW/oci:bench" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/registry-om.json" \
  --prepare "$(aside repo) && $BIN init --repo $RW/repo --mode bare-user && $clean" \
  "$BIN import -q --tls-verify=false --repo $RW/repo $SRC" >&2
python3 - "$OUT" <<'PY'
import json, sys
r = lambda n: json.load(open(f"{sys.argv[1]}/registry-{n}.json"))["results"][0]
s, o = r("skopeo"), r("om")
print(f"registry pull (s): skopeo copy docker:// oci: {s['mean']:.2f}, ostree-mount import docker:// {o['mean']:.2f} ({o['mean']/s['mean']:.2f}x)")
# On a shared machine the wall time varies most; the fastest run and the
# CPU time (user + system) vary less.
print(f"  fastest run: skopeo {s['min']:.2f}, ostree-mount {o['min']:.2f}; "
      f"CPU (user+sys): skopeo {s['user']+s['system']:.2f}, ostree-mount {o['user']+o['system']:.2f}")
PY
