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
  rm -rf "$W/base"
  go build -o "$W/genrepo" ./scripts/genrepo
  "$W/genrepo" -repo "$W/base" -commits 1000 -branches 10 -files 100
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
