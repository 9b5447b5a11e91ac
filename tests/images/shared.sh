# shared.sh OUT: two images sharing their base layer, in one OCI layout
# OUT/shared: tag one and tag two are base + a different top layer (each
# top layer adds files and whiteouts a base file). References:
# OUT/ref-one/rootfs and OUT/ref-two/rootfs.
set -e
cd "$1"
umoci init --layout shared
umoci new --image shared:empty
umoci unpack --image shared:empty b
R=b/rootfs
mkdir -p $R/etc $R/usr/bin $R/usr/share/data $R/var/empty
echo base > $R/etc/os-release
for i in $(seq 1 20); do echo "base data $i" > $R/usr/share/data/f$i; done
printf '#!/bin/sh\necho tool\n' > $R/usr/bin/tool; chmod 755 $R/usr/bin/tool
ln -s usr/bin $R/bin
umoci repack --refresh-bundle --image shared:base b
umoci unpack --image shared:base b1
R=b1/rootfs
echo one > $R/etc/one; rm $R/usr/share/data/f1
mkdir -p $R/opt/one; for i in 1 2 3; do echo "one $i" > $R/opt/one/o$i; done
umoci repack --image shared:one b1
umoci unpack --image shared:base b2
R=b2/rootfs
echo two > $R/etc/two; rm $R/usr/share/data/f2
mkdir -p $R/srv/two/sub; for i in 1 2 3 4; do echo "two $i" > $R/srv/two/sub/t$i; done
umoci repack --image shared:two b2
umoci unpack --image shared:one ref-one
umoci unpack --image shared:two ref-two
