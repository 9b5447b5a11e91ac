# multiarch.sh OUT: two tiny single-layer images in the OCI layout
# OUT/multi, tags amd64 and arm64, whose configs say linux/amd64 and
# linux/arm64 (umoci config). The Go side assembles the nested index.
# References: OUT/ref-amd64/rootfs and OUT/ref-arm64/rootfs.
set -e
cd "$1"
umoci init --layout multi
for arch in amd64 arm64; do
	umoci new --image multi:$arch
	umoci unpack --image multi:$arch b-$arch
	mkdir -p b-$arch/rootfs/etc
	echo "$arch" > b-$arch/rootfs/etc/arch
	echo "only on $arch" > b-$arch/rootfs/$arch.txt
	umoci repack --image multi:$arch b-$arch
	umoci config --image multi:$arch --architecture=$arch --os=linux
	umoci unpack --image multi:$arch ref-$arch
done
