#!/usr/bin/env bash
# Prune at scale: a repository of 1,000 commits and ~100k objects (10
# branches of 100 commits, each commit adding 100 unique files), half of
# the branches deleted, then `ostree-mount prune` and `ostree prune
# --refs-only` timed on identical copies. Writes OUT/prune-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/ostree-mount
W=${BENCH_WORK:-/var/tmp/ostree-mount-bench}/prune
OUT=${1:-$W/out}
RUNS=${BENCH_RUNS:-5}
mkdir -p "$W" "$OUT"
if [ ! -f "$W/repo.done" ]; then
  rm -rf "$W/base" "$W/src"
  "$BIN" init --repo "$W/base" --mode bare-user
  mkdir -p "$W/src"
  for i in $(seq 1 1000); do
    python3 - "$W/src" "$i" <<'PY'
import os, sys
root, i = sys.argv[1], int(sys.argv[2])
d = os.path.join(root, "d%02d" % (i % 7))
os.makedirs(d, exist_ok=True)
for f in range(100):
    with open(os.path.join(d, "f%03d" % f), "w") as fh:
        fh.write("commit %d file %d\n" % (i, f))
PY
    "$BIN" commit --repo "$W/base" -b "branch$((i % 10))" --no-bindings --timestamp "@$((1600000000 + i))" "$W/src" >/dev/null
  done
  for b in 0 1 2 3 4; do "$BIN" refs --repo "$W/base" --delete "branch$b"; done
  touch "$W/repo.done"
fi
echo "objects: $(find "$W/base/objects" -type f | wc -l)" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/prune-om.json" \
  --prepare "rm -rf $W/a && cp -a $W/base $W/a && sync && echo 3 > /proc/sys/vm/drop_caches" \
  "$BIN prune --repo $W/a" >&2
hyperfine --runs "$RUNS" --export-json "$OUT/prune-ostree.json" \
  --prepare "rm -rf $W/a && cp -a $W/base $W/a && sync && echo 3 > /proc/sys/vm/drop_caches" \
  "ostree prune --repo=$W/a --refs-only" >&2
rm -rf "$W/a"
