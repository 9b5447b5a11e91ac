#!/bin/bash
# make bench, export part: `ostree-mount export` of the benchmark image
# (scripts/bench.sh builds it: $BENCH_WORK/img, tag bench) to an OCI
# layout, against `skopeo copy oci: oci:` of the same image, gzip both.
# skopeo copying gzip layers to gzip keeps the blobs as they are (it
# only reads and hashes them); export regenerates every layer tar from
# the repository and compresses it. For the same work on skopeo's side,
# a second row has skopeo compress the layers from an uncompressed
# layout (made by export --compress-format none). Each command runs BENCH_RUNS times (default 5) under
# /usr/bin/time -v; the table gives the median wall time and the
# largest peak RSS, and is written to $BENCH_WORK/out/export.md.
. "$(dirname "$0")/bench_env.sh"
IMG=$W/img
mkdir -p "$OUT"
[ -d "$IMG" ] || { echo "bench_export: no $IMG (run scripts/bench.sh first)"; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_export: /usr/bin/time missing (apt-get install time)"; exit 1; }
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

EW=$(mktemp -d "$W/export.XXXXXX")
trap 'rm -rf "$EW"' EXIT
log "importing the benchmark image; an uncompressed copy for skopeo"
"$BIN" init --repo "$EW/repo" --mode bare-user
"$BIN" import -q --repo "$EW/repo" --ref bench "oci:$IMG:bench" >/dev/null
# skopeo decompresses only into dir:, so the uncompressed layout (layer
# media type ...tar) is ostree-mount's export without compression.
"$BIN" export --repo "$EW/repo" --compress-format none bench "oci:$EW/plain:bench" >/dev/null
grep -q 'image.layer.v1.tar"' "$EW/plain/blobs/sha256/"* || { echo "bench_export: no uncompressed layout"; exit 1; }

# measure NAME PREPARE COMMAND: RUNS runs; one line "NAME median_s max_rss_kib".
measure() {
  local name=$1 prep=$2 cmd=$3 i
  : > "$EW/$name.times"
  for ((i = 0; i < RUNS; i++)); do
    bash -c "$prep"
    sync
    /usr/bin/time -v -o "$EW/$name.tv" bash -c "exec $cmd" >/dev/null
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (j = 1; j <= n; j++) s = s * 60 + p[j]; w = s }
      /Maximum resident set size/ { r = $2 } END { print w, r }' "$EW/$name.tv" >> "$EW/$name.times"
  done
  sort -n "$EW/$name.times" | awk -v n="$name" '{ w[NR] = $1; if ($2 > r) r = $2 } END { print n, w[int((NR + 1) / 2)], r }'
}

log "measuring ($RUNS runs each)"
{
  measure om-gzip "rm -rf $EW/o" "$BIN export --repo $EW/repo bench oci:$EW/o:bench"
  measure skopeo-gzip "rm -rf $EW/s" "skopeo --insecure-policy copy -q oci:$IMG:bench oci:$EW/s:bench"
  measure skopeo-compress "rm -rf $EW/c" "skopeo --insecure-policy copy -q --dest-compress-format gzip oci:$EW/plain:bench oci:$EW/c:bench"
  measure om-none "rm -rf $EW/n" "$BIN export --repo $EW/repo --compress-format none bench oci:$EW/n:bench"
} > "$EW/results"

# The exports reproduce the image: the same config (image ID).
cfg() {
  python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
m = [m for m in json.load(open(d + "/index.json"))["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "bench"][0]
print(json.load(open(d + "/blobs/" + m["digest"].replace(":", "/")))["config"]["digest"])
PY
}
[ "$(cfg "$EW/o")" = "$(cfg "$IMG")" ] || { echo "bench_export: the export's config differs from the image's"; exit 1; }

python3 - "$EW/results" "$OUT/export.md" "$(du -sb "$EW/plain/blobs" | cut -f1)" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    n, w, r = line.split()
    rows[n] = (float(w), int(r))
mb = int(sys.argv[3]) / 1e6
ref = rows["skopeo-gzip"][0]
label = {
    "om-gzip": "ostree-mount export (gzip)",
    "skopeo-gzip": "skopeo copy oci: oci: (gzip layers, kept as they are)",
    "skopeo-compress": "skopeo copy oci: oci: (uncompressed layers, compressed to gzip)",
    "om-none": "ostree-mount export --compress-format none",
}
out = [f"Export of the benchmark image ({mb:.0f} MB of layer tars), median of the runs, peak RSS the largest:", "",
       "| command | wall (s) | vs skopeo copy | peak RSS (MiB) |", "|---|---:|---:|---:|"]
for n in ["om-gzip", "skopeo-gzip", "skopeo-compress", "om-none"]:
    w, r = rows[n]
    out.append(f"| {label[n]} | {w:.2f} | {w / ref:.2f}x | {r / 1024:.0f} |")
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text, end="")
PY
