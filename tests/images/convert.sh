# convert.sh OUT LAYOUT TAG: skopeo conversions of the image LAYOUT:TAG
# (docs/oci-layers.md §4, "Conversions"): OUT/oci.tar (oci-archive, tag
# final), OUT/docker.tar (docker-archive named example/final:latest),
# OUT/zstd (OCI layout with tar+zstd layers, tag final) and OUT/v2s2 (OCI
# layout with Docker media types, tag final).
set -e
cd "$1"
src="oci:$2:$3"
sk() { skopeo --insecure-policy copy -q "$@"; }
sk "$src" oci-archive:oci.tar:final
sk "$src" docker-archive:docker.tar:example/final:latest
sk --dest-compress-format zstd "$src" oci:zstd:final
sk --format v2s2 "$src" oci:v2s2:final
